/* Unit tests for src/rotators: the registry, kind "generated" (formats, charsets, lengths,
 * distribution, format errors) and kind "manual" (file, stdin, the no-echo prompt on a pty,
 * pattern checks whose messages never hold the value). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rotators/rotator.h"
#include "util/enc.h"
#include "util/secret.h"

static char tmpdir[64];

/* The loose provider patterns (src/rotators/provider-key.c). */
#define PAT_OPENAI "^sk-([a-z]+-)?[A-Za-z0-9_-]{20,}$"
#define PAT_ANTHROPIC "^sk-ant-[A-Za-z0-9_-]{20,}$"
#define PAT_XAI "^xai-[A-Za-z0-9_-]{20,}$"

#define KEY_OPENAI "sk-proj-AbC_dEf-1234567890_abcdefGHIJ-klmnopQRST_uvwx"
#define KEY_OPENAI_SVC "sk-svcacct-Zz9_-Yy8xX7wW6vV5uU4tT3sS2rR1qQ0pP"
#define KEY_ANTHROPIC "sk-ant-api03-Ab_Cd-Ef_Gh-1234567890abcdefghijklmnopqrstuvwxyzAA"
#define KEY_XAI "xai-AbCdEf_GhIjKl-MnOpQrStUvWx1234567890yz"

static int
setup(void **state)
{
    (void)state;
    secure_heap_init();
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rk-rotators-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    char p[128];

    (void)state;
    snprintf(p, sizeof(p), "%s/value", tmpdir);
    unlink(p);
    return rmdir(tmpdir);
}

static struct inv_secret
mk_secret(const char *kind, const char *format, const char *pattern)
{
    struct inv_secret s;

    memset(&s, 0, sizeof(s));
    s.path = (char *)"secret/test/value";
    s.kind = (char *)kind;
    s.field = (char *)"value";
    s.format = (char *)format;
    s.pattern = (char *)pattern;
    return s;
}

/* create through the field map (ROTATOR_OPS_VERSION 2): *out gets the entry's field, the one
 * field the one-field kinds make; NULL on failure. */
static int
create_one(const struct rotator_ops *ops, struct rot_ctx *c, struct secret **out,
           struct rk_error *err)
{
    struct rot_fields f;
    const struct secret *v;
    int r;

    rot_fields_init(&f);
    *out = NULL;
    r = ops->create(c, &f, err);
    if (r == 0 && (f.n != 1 || (v = rot_fields_get(&f, rotator_field(c->secret))) == NULL))
        r = rk_error_set(err, RK_EINTERNAL, "create made %zu fields, not the entry's one", f.n);
    if (r == 0 && (*out = secret_from(v->data, v->len)) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    rot_fields_clear(&f);
    return r;
}

/* Generates one value from format; fails the test if that does not work. */
static struct secret *
gen(const char *format)
{
    const struct rotator_ops *ops = rotator_find("generated");
    struct inv_secret s = mk_secret("generated", format, NULL);
    struct rot_ctx c = {.secret = &s};
    struct rk_error err = {0};
    struct secret *v = NULL;

    assert_non_null(ops);
    assert_int_equal(ops->check(&s, &err), 0);
    if (create_one(ops, &c, &v, &err) != 0)
        fail_msg("create(%s): %s", format, err.msg);
    assert_non_null(v);
    assert_int_equal(strlen((char *)v->data), v->len);
    return v;
}

static int
all_in(const unsigned char *p, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\0' || strchr(set, p[i]) == NULL)
            return 0;
    return 1;
}

#define HEX "0123456789abcdef"
#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define B64URL ALNUM "-_"
#define B64 ALNUM "+/"

/* ---- registry ---- */

static void
test_registry(void **state)
{
    const struct rotator_ops *g = rotator_find("generated"), *m = rotator_find("manual");

    (void)state;
    assert_non_null(g);
    assert_non_null(m);
    assert_string_equal(g->kind, "generated");
    assert_string_equal(m->kind, "manual");
    assert_int_equal(g->version, ROTATOR_OPS_VERSION);
    assert_int_equal(m->version, ROTATOR_OPS_VERSION);
    assert_non_null(g->create);
    assert_non_null(m->create);
    assert_non_null(g->check);
    assert_non_null(m->check);
    {
        struct inv_secret sm = mk_secret("manual", NULL, NULL);
        struct inv_secret sg = mk_secret("generated", "{hex:32}", NULL);
        assert_true(rotator_flags(m, &sm) & ROT_F_MANUAL_INPUT);
        assert_false(rotator_flags(g, &sg) & ROT_F_MANUAL_INPUT);
    }
    assert_null(m->apply);
    assert_null(m->test);
    assert_null(m->retire);
    assert_non_null(rotator_find("provider-key")); /* implemented (issue 13) */
    assert_null(rotator_find("Generated"));
    assert_null(rotator_find(""));
}

/* ---- generated ---- */

static void
test_generated_hex(void **state)
{
    struct secret *a, *b;

    (void)state;
    a = gen("sk-litellm-{hex:48}");
    b = gen("sk-litellm-{hex:48}");
    assert_int_equal(a->len, 11 + 48);
    assert_memory_equal(a->data, "sk-litellm-", 11);
    assert_true(all_in(a->data + 11, 48, HEX));
    assert_false(secret_equal(a, b));
    secret_free(a);
    secret_free(b);

    a = gen("{hex:17}-tail"); /* odd length */
    assert_int_equal(a->len, 17 + 5);
    assert_true(all_in(a->data, 17, HEX));
    assert_memory_equal(a->data + 17, "-tail", 5);
    secret_free(a);
}

static void
test_generated_base64(void **state)
{
    struct secret *a, *b;
    unsigned char *raw;
    size_t rawlen = 0;

    (void)state;
    a = gen("{base64url:32}");
    b = gen("{base64url:32}");
    assert_int_equal(a->len, 43); /* 32 bytes, no padding */
    assert_true(all_in(a->data, a->len, B64URL));
    assert_false(secret_equal(a, b));
    secret_free(a);
    secret_free(b);

    a = gen("{base64url:16}");
    assert_int_equal(a->len, 22);
    assert_true(all_in(a->data, a->len, B64URL));
    secret_free(a);

    a = gen("{base64:32}");
    assert_int_equal(a->len, 44);
    assert_true(all_in(a->data, 43, B64));
    assert_int_equal(a->data[43], '=');
    raw = base64_decode((char *)a->data, a->len, &rawlen);
    assert_non_null(raw);
    assert_int_equal(rawlen, 32);
    freezero(raw, rawlen);
    secret_free(a);

    a = gen("pre/{base64:1024}/post");
    assert_int_equal(a->len, 4 + 4 * 342 + 5);
    raw = base64_decode((char *)a->data + 4, a->len - 9, &rawlen);
    assert_non_null(raw);
    assert_int_equal(rawlen, 1024);
    freezero(raw, rawlen);
    secret_free(a);
}

static void
test_generated_alnum_uuid_escapes(void **state)
{
    struct secret *a, *b;

    (void)state;
    a = gen("{alnum:40}");
    b = gen("{alnum:40}");
    assert_int_equal(a->len, 40);
    assert_true(all_in(a->data, 40, ALNUM));
    assert_false(secret_equal(a, b));
    secret_free(a);
    secret_free(b);

    a = gen("{uuid}");
    assert_int_equal(a->len, 36);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a->data[i], '-');
        else
            assert_non_null(strchr(HEX, a->data[i]));
    }
    assert_int_equal(a->data[14], '4');
    assert_non_null(strchr("89ab", a->data[19]));
    secret_free(a);

    /* {{ and }} are a literal brace; several generators in one format. */
    a = gen("{{id}}:{hex:8}.{alnum:20}");
    assert_int_equal(a->len, 5 + 8 + 1 + 20);
    assert_memory_equal(a->data, "{id}:", 5);
    assert_true(all_in(a->data + 5, 8, HEX));
    assert_int_equal(a->data[13], '.');
    assert_true(all_in(a->data + 14, 20, ALNUM));
    secret_free(a);
}

static void
test_generated_alnum_distribution(void **state)
{
    size_t counts[256] = {0}, lo = SIZE_MAX, hi = 0;

    (void)state;
    /* 100 values of 1000 characters: 100,000 draws, about 1613 of each of the 62. */
    for (int i = 0; i < 100; i++) {
        struct secret *v = gen("{alnum:1000}");
        for (size_t j = 0; j < v->len; j++)
            counts[v->data[j]]++;
        secret_free(v);
    }
    for (int ch = 0; ch < 256; ch++) {
        if (strchr(ALNUM, ch) != NULL && ch != 0) {
            assert_true(counts[ch] > 0);
            if (counts[ch] < lo)
                lo = counts[ch];
            if (counts[ch] > hi)
                hi = counts[ch];
        } else {
            assert_int_equal(counts[ch], 0);
        }
    }
    /* The standard deviation is about 40: a bias of b % 62 without rejection would put
     * the first 8 characters near 1,660 and the rest near 1,600; ±300 is ~7 sigma. */
    assert_true(lo > 1313);
    assert_true(hi < 1913);
}

static void
test_generated_format_errors(void **state)
{
    static const struct {
        const char *format, *want;
    } cases[] = {
        {"", "empty"},
        {"{foo:3}", "unknown generator 'foo' at position 1"},
        {"ab{hex:0}", "out of range"},
        {"ab{hex:0}", "position 3"},
        {"{hex:1025}", "expected 1..1024"},
        {"{hex:99999999999999999999999}", "out of range"},
        {"{hex:-3}", "not a number"},
        {"{hex:4a}", "not a number"},
        {"{hex}", "needs a length"},
        {"{hex:}", "needs a length"},
        {"{uuid:3}", "takes no length"},
        {"{}", "unknown generator"},
        {"abc{hex:48", "unterminated '{' at position 4"},
        {"abc{{hex:48}", "unmatched '}' at position 12"},
        {"x}{hex:48}", "unmatched '}' at position 2"},
        {"{hex:{hex:4}}", "unterminated '{' at position 1"},
        {"constant", "only 0 random bits"},
        {"{hex:8}", "only 32 random bits"},
        {"{hex:15}", "at least 64"},
        {"{alnum:10}", "only 59 random bits"},
        {"{base64:7}", "only 56 random bits"},
        {"{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}"
         "{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}"
         "{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}"
         "{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}"
         "{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}"
         "{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}"
         "{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}"
         "{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}{base64:1024}",
         "longer than 65536"},
    };
    static const char *const good[] = {"{hex:16}", "{alnum:11}",       "{base64:8}",
                                       "{uuid}",   "{base64url:1024}", "{{{hex:32}}}"};
    const struct rotator_ops *ops = rotator_find("generated");

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct inv_secret s = mk_secret("generated", cases[i].format, NULL);
        struct rot_ctx c = {.secret = &s};
        struct rk_error err = {0};
        struct secret *v = (struct secret *)&err; /* must be reset to NULL */

        assert_int_equal(ops->check(&s, &err), -RK_ECONFIG);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("format \"%s\": message \"%s\" lacks \"%s\"", cases[i].format, err.msg,
                     cases[i].want);
        /* create refuses it too, even if the load-time check was skipped */
        assert_int_equal(create_one(ops, &c, &v, &err), -RK_ECONFIG);
        assert_null(v);
    }
    {
        struct inv_secret s = mk_secret("generated", NULL, NULL);
        struct rk_error err = {0};
        assert_int_equal(ops->check(&s, &err), -RK_ECONFIG);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct secret *v = gen(good[i]);
        secret_free(v);
    }
}

/* ---- manual ---- */

/* Runs manual create with data as the value a person gave (the CLI or an API body hands it over
 * in rot_input: the rotator reads nothing itself); returns its result, *out the value. */
static int
manual_with_value(const char *pattern, const char *data, size_t len, struct secret **out,
                  struct rk_error *err)
{
    struct inv_secret s = mk_secret("manual", NULL, pattern);
    struct secret *given = secret_from(data, len);
    struct rot_input in = {.value = given};
    struct rot_ctx c = {.secret = &s, .input = &in};
    int r;

    assert_non_null(given);
    assert_int_equal(rotator_find("manual")->check(&s, err), 0);
    r = create_one(rotator_find("manual"), &c, out, err);
    secret_free(given);
    return r;
}

static void
expect_manual(const char *pattern, const char *data, const char *want)
{
    struct rk_error err = {0};
    struct secret *v = NULL;

    if (manual_with_value(pattern, data, strlen(data), &v, &err) != 0)
        fail_msg("manual create (pattern %s): %s", pattern ? pattern : "none", err.msg);
    assert_non_null(v);
    assert_int_equal(v->len, strlen(want));
    assert_memory_equal(v->data, want, v->len);
    secret_free(v);
}

static void
test_manual_value(void **state)
{
    (void)state;
    expect_manual(NULL, "plain-value\n", "plain-value");
    expect_manual(NULL, "plain-value", "plain-value");
    expect_manual(NULL, "crlf-value\r\n", "crlf-value");
    expect_manual(NULL, "two-newlines\n\n", "two-newlines\n"); /* one newline only */
    expect_manual(NULL, "multi\nline\n", "multi\nline");
    expect_manual(NULL, " spaces kept \n", " spaces kept ");
}

static void
test_manual_provider_keys(void **state)
{
    (void)state;
    expect_manual(PAT_OPENAI, KEY_OPENAI "\n", KEY_OPENAI);
    expect_manual(PAT_OPENAI, KEY_OPENAI_SVC "\n", KEY_OPENAI_SVC);
    expect_manual(PAT_OPENAI, "sk-AbCdEfGhIjKlMnOpQrStUvWx0123", "sk-AbCdEfGhIjKlMnOpQrStUvWx0123");
    expect_manual(PAT_ANTHROPIC, KEY_ANTHROPIC "\n", KEY_ANTHROPIC);
    expect_manual(PAT_XAI, KEY_XAI "\n", KEY_XAI);
}

static void
expect_refused(const char *pattern, const char *data, size_t len, int code, const char *want)
{
    struct rk_error err = {0};
    struct secret *v = (struct secret *)&err;

    assert_int_equal(manual_with_value(pattern, data, len, &v, &err), -code);
    assert_null(v);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    assert_non_null(strstr(err.msg, "secret/test/value"));
    /* The value (without its newline) never appears in the message. */
    if (len > 4) {
        char val[256];
        size_t n = len < sizeof(val) ? len : sizeof(val) - 1;
        memcpy(val, data, n);
        val[n] = '\0';
        val[strcspn(val, "\r\n")] = '\0';
        if (strlen(val) > 4 && strstr(err.msg, val) != NULL)
            fail_msg("message holds the value: %s", err.msg);
    }
}

static void
test_manual_refused(void **state)
{
    struct rk_error err = {0};
    struct secret *v = NULL;
    const char *wrong = "sk-WRONGPREFIX-0123456789abcdefghijk";

    (void)state;
    expect_refused(PAT_ANTHROPIC, wrong, strlen(wrong), RK_EINVAL,
                   "does not match the pattern for secret/test/value: expected " PAT_ANTHROPIC);
    expect_refused(PAT_ANTHROPIC, wrong, strlen(wrong), RK_EINVAL, "nothing was stored");
    /* The message carries the length instead, and no hash of the value (it would confirm a
     * guess, and a refused value has no fingerprint in the store). */
    assert_int_equal(manual_with_value(PAT_XAI, wrong, strlen(wrong), &v, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "36 bytes"));
    assert_null(strstr(err.msg, "WRONGPREFIX"));
    assert_null(strstr(err.msg, "sha256:"));
    assert_null(strstr(err.msg, "hmac:"));

    /* An OpenAI key is refused by the Anthropic pattern and vice versa. */
    expect_refused(PAT_ANTHROPIC, KEY_OPENAI "\n", strlen(KEY_OPENAI) + 1, RK_EINVAL,
                   "does not match");
    expect_refused(PAT_XAI, KEY_ANTHROPIC, strlen(KEY_ANTHROPIC), RK_EINVAL, "does not match");
    expect_refused(PAT_OPENAI, "sk-short", 8, RK_EINVAL, "does not match");
    /* Empty values, even with a pattern that allows them. */
    expect_refused(NULL, "\n", 1, RK_EINVAL, "empty");
    expect_refused(NULL, "", 0, RK_EINVAL, "empty");
    expect_refused(".*", "\r\n", 2, RK_EINVAL, "empty");
    /* A NUL would hide the rest of the value from the pattern. */
    expect_refused("^[a-z]+$", "abcdef\0XYZ!!", 12, RK_EINVAL, "NUL byte");
    /* Too long. */
    {
        size_t n = 64 * 1024 + 1;
        char *big = malloc(n);
        assert_non_null(big);
        memset(big, 'a', n);
        expect_refused(NULL, big, n, RK_ELIMIT, "longer than 65536");
        free(big);
    }
    /* Exactly 64 KiB plus a newline is accepted (the newline is not part of the value). */
    {
        size_t n = 64 * 1024 + 1;
        char *big = malloc(n);
        assert_non_null(big);
        memset(big, 'q', n);
        big[n - 1] = '\n';
        assert_int_equal(manual_with_value(NULL, big, n, &v, &err), 0);
        assert_int_equal(v->len, 64 * 1024);
        secret_free(v);
        v = NULL;
        free(big);
    }
}

static void
test_manual_no_input(void **state)
{
    const struct rotator_ops *ops = rotator_find("manual");
    struct inv_secret s = mk_secret("manual", NULL, NULL);
    struct rot_input in = {0};
    struct rot_ctx c = {.secret = &s, .input = NULL};
    struct rk_error err = {0};
    struct secret *v = NULL;

    (void)state;
    assert_int_equal(create_one(ops, &c, &v, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "kind manual needs a value: pass --from-stdin or "
                                    "--from-file FILE, or run on a terminal"));
    assert_null(v);
    c.input = &in;
    assert_int_equal(create_one(ops, &c, &v, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "kind manual needs a value"));
}

static void
test_manual_check(void **state)
{
    const struct rotator_ops *ops = rotator_find("manual");
    struct inv_secret s = mk_secret("manual", NULL, PAT_OPENAI);
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(ops->check(&s, &err), 0);
    s.pattern = NULL;
    assert_int_equal(ops->check(&s, &err), 0);
    s.pattern = (char *)"^sk-([a-z";
    assert_int_equal(ops->check(&s, &err), -RK_ECONFIG);
    assert_non_null(strstr(err.msg, "bad regular expression"));
    /* "pattern: …": the loader points at the setting by its name */
    assert_int_equal(strncmp(err.msg, "pattern: ", 9), 0);
    /* the one regex check of util/ere.h: stacked repetitions are refused before regcomp */
    s.pattern = (char *)"^x+++$";
    assert_int_equal(ops->check(&s, &err), -RK_ECONFIG);
    assert_non_null(strstr(err.msg, "position 4"));
}

/* ---- the rotator never talks to a person ----
 * Without a value, manual create refuses at once: it opens no terminal and shows no prompt,
 * even when it runs on one (the CLI reads the value first: cli/secret-input.c). */

/* Reads from fd into buf (NUL-terminated, appended at *len) until it ends or 1 s passes. */
static void
read_all(int fd, char *buf, size_t cap, size_t *len)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t rd;

        if (poll(&p, 1, 1000) <= 0)
            return;
        rd = read(fd, buf + *len, cap - 1 - *len);
        if (rd <= 0)
            return; /* EIO once the child has exited */
        *len += (size_t)rd;
        buf[*len] = '\0';
    }
}

static void
test_manual_never_prompts(void **state)
{
    char line[600] = "", out[4096] = "";
    size_t outlen = 0, n = 0;
    int res[2], master, status;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(res), 0);
    pid = forkpty(&master, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        struct inv_secret s = mk_secret("manual", NULL, NULL);
        struct rot_input in = {0};
        struct rot_ctx c = {.secret = &s, .input = &in};
        struct rk_error err = {0};
        struct secret *v = NULL;
        int r;

        close(res[0]);
        r = create_one(rotator_find("manual"), &c, &v, &err);
        snprintf(line, sizeof(line), "%d %s", r, err.msg);
        if (write(res[1], line, strlen(line)) < 0)
            _exit(2);
        secret_free(v);
        _exit(0);
    }
    close(res[1]);
    for (;;) {
        ssize_t rd = read(res[0], line + n, sizeof(line) - 1 - n);
        if (rd <= 0)
            break;
        n += (size_t)rd;
    }
    line[n] = '\0';
    read_all(master, out, sizeof(out), &outlen);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(res[0]);
    close(master);
    assert_int_equal((int)strtol(line, NULL, 10), -RK_EINVAL);
    assert_non_null(strstr(line, "kind manual needs a value"));
    assert_int_equal(outlen, 0); /* nothing was shown on the terminal */
}

/* ---- the rotator contract: every registered kind, implemented or planned ----
 * Each kind must have a row in `examples` below (a kind added without one fails here): its
 * settings table is well-formed, its example entry is completed and accepted by its check and
 * its lint, and each bad entry is refused. Entries are built the way entries defined through the
 * API are: inv_setting_parse + inv_setting_store per key, then rotator_entry_finish. */

struct kv {
    const char *k, *v;
};

#define MAX_KV 6
#define MAX_BAD 4

static const struct contract_example {
    const char *kind;
    struct kv good[MAX_KV];
    const char *bad_why[MAX_BAD]; /* a word the refusal must contain */
    struct kv bad[MAX_BAD][MAX_KV];
} examples[] = {
    {"generated",
     {{"format", "sk-litellm-{hex:48}"}},
     {"random bits", "unterminated", "unknown key"},
     {{{"format", "constant"}}, {{"format", "x{hex:"}}, {{"format", "{hex:32}"}, {"ttl", "1h"}}}},
    {"manual",
     {{"pattern", PAT_OPENAI}, {"console", "https://platform.openai.com/api-keys"}},
     {"bad regular expression", "position 4", "http://"},
     {{{"pattern", "a("}}, {{"pattern", "^x+++$"}}, {{"console", "ftp://x"}}}},
    {"provider-key",
     {{"provider", "anthropic"}, {"admin_key_path", "secret/admin/anthropic"}},
     {"openai|anthropic|xai", "missing required key 'provider'", "segments", "http://"},
     {{{"provider", "google"}},
      {{"min_interval", "7d"}},
      {{"provider", "xai"}, {"admin_key_path", "/abs"}},
      {{"provider", "xai"}, {"base_url", "api.x.ai"}}}},
    /* a held lease: the contract's every is 30d, so ttl is longer */
    {"database",
     {{"connection", "host=db dbname=app user=rekey_admin"},
      {"admin_password_path", "secret/db/admin"},
      {"ttl", "60d"},
      {"max_ttl", "90d"}},
     {"missing required key 'connection'", "greater than 0", "unknown unit", "holds a password"},
     {{{"ttl", "1h"}},
      {{"connection", "x"}, {"ttl", "0s"}},
      {{"connection", "x"}, {"max_ttl", "1y"}},
      {{"connection", "host=db password=p"}}}},
    {"transit",
     {{"key_type", "ed25519"}, {"exportable", "false"}},
     {"rsa-4096|ed25519|ecdsa-p256", "true or false"},
     {{{"key_type", "rsa-1024"}}, {{"key_type", "ed25519"}, {"exportable", "maybe"}}}},
    {"redis-password",
     {{"address", "127.0.0.1:6379"}, {"username", "litellm"}},
     {"missing required key 'address'", "non-empty"},
     {{{"username", "x"}}, {{"address", ""}}}},
    {"certificate",
     {{"common_name", "gateway.example.com"}, {"alt_names", "gateway.example.com,api.example.com"}},
     {"acme_directory", "renew_before must be shorter", "internal|acme", "needs dns-01"},
     {{{"common_name", "a"}, {"issuer", "acme"}},
      {{"common_name", "a"}, {"ttl", "10d"}, {"renew_before", "10d"}},
      {{"common_name", "a"}, {"issuer", "self"}},
      {{"common_name", "a.test"},
       {"alt_names", "*.a.test"},
       {"issuer", "acme"},
       {"acme_directory", "https://acme.test/dir"}}}},
};

/* A one-entry inventory, so inventory_free frees whatever the build set. */
static struct inventory *
contract_inv(const struct rotator_ops *ops, int64_t every)
{
    struct inventory *inv = calloc(1, sizeof(*inv));

    assert_non_null(inv);
    assert_non_null(inv->secrets = calloc(1, sizeof(*inv->secrets)));
    inv->nsecrets = 1;
    inv->check_interval = 60;
    assert_non_null(inv->secrets[0].path = strdup("secret/contract/entry"));
    assert_non_null(inv->secrets[0].kind = strdup(ops->kind));
    inv->secrets[0].every = every;
    return inv;
}

static int
contract_build(const struct rotator_ops *ops, const struct kv *kvs, struct inv_secret *s,
               struct rk_error *err)
{
    for (size_t i = 0; i < MAX_KV && kvs[i].k != NULL; i++) {
        const struct inv_setting *st = inv_setting_find(ops->settings, kvs[i].k, strlen(kvs[i].k));
        char *text = NULL;
        int r;

        if (st == NULL)
            return rk_error_set(err, RK_ECONFIG, "unknown key '%s' for kind %s", kvs[i].k,
                                ops->kind);
        if ((r = inv_setting_parse(st, kvs[i].v, strlen(kvs[i].v), &text, err)) != 0 ||
            (r = inv_setting_store(st, s, &s->params, &s->nparams, text, err)) != 0)
            return r;
    }
    return rotator_entry_finish(ops, s, err);
}

struct contract_findings {
    int errors;
    char last[300];
};

static void contract_report(void *arg, const char *severity, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
contract_report(void *arg, const char *severity, const char *fmt, ...)
{
    struct contract_findings *f = arg;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->last, sizeof(f->last), fmt, ap);
    va_end(ap);
    if (strcmp(severity, "error") == 0)
        f->errors++;
}

static const struct contract_example *
contract_example_for(const char *kind)
{
    for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++)
        if (strcmp(examples[i].kind, kind) == 0)
            return &examples[i];
    return NULL;
}

static void
test_rotator_contract(void **state)
{
    const struct rotator_ops *ops;
    size_t nkinds = 0;

    (void)state;
    for (size_t k = 0; (ops = rotator_at(k)) != NULL; k++, nkinds++) {
        const struct contract_example *ex = contract_example_for(ops->kind);
        struct rk_error err = {0};
        struct inventory *inv;
        struct inv_secret *s;
        struct contract_findings f = {0};

        print_message("    kind %s%s\n", ops->kind, ops->create == NULL ? " (planned)" : "");
        if (ex == NULL)
            fail_msg("kind %s has no example in the rotator contract suite", ops->kind);
        /* the row */
        assert_int_equal(ops->version, ROTATOR_OPS_VERSION);
        assert_true(ops->kind != NULL && ops->kind[0] != '\0');
        assert_ptr_equal(rotator_kind(ops->kind), ops);
        assert_ptr_equal(rotator_find(ops->kind), ops->create != NULL ? ops : NULL);
        for (size_t j = 0; j < k; j++)
            assert_string_not_equal(rotator_at(j)->kind, ops->kind);
        assert_non_null(ops->default_field);
        assert_true(ops->default_field[0] != '\0');
        /* the settings table */
        if (inv_settings_check_table(ops->settings, rotator_generic_keys, &err) != 0)
            fail_msg("kind %s: settings: %s", ops->kind, err.msg);
        for (const struct inv_setting *st = ops->settings; st && st->name; st++)
            if (st->offset != 0 && !inv_setting_is_text(st))
                fail_msg("kind %s: setting %s: a member of inv_secret holds text only", ops->kind,
                         st->name);

        /* the example entry: completed, checked and linted clean */
        inv = contract_inv(ops, 30 * 86400);
        s = &inv->secrets[0];
        if (contract_build(ops, ex->good, s, &err) != 0)
            fail_msg("kind %s: the example is refused: %s", ops->kind, err.msg);
        assert_non_null(s->field);
        assert_true(s->every > 0);
        for (const struct inv_setting *st = ops->settings; st && st->name; st++)
            if ((st->flags & IS_REQUIRED) && st->offset == 0)
                assert_non_null(inv_param(s, st->name));
            else if (st->def != NULL && st->offset == 0 && inv_param(s, st->name) == NULL)
                fail_msg("kind %s: %s has a default but none was filled", ops->kind, st->name);
        if (ops->check != NULL && ops->check(s, &err) != 0)
            fail_msg("kind %s: check refuses the completed example: %s", ops->kind, err.msg);
        if (ops->lint != NULL)
            ops->lint(s, inv, contract_report, &f);
        if (f.errors != 0)
            fail_msg("kind %s: lint finds an error in the example: %s", ops->kind, f.last);
        inventory_free(inv);

        /* each bad entry is refused, and says why */
        for (size_t b = 0; b < MAX_BAD && ex->bad[b][0].k != NULL; b++) {
            inv = contract_inv(ops, 0);
            rk_error_clear(&err);
            if (contract_build(ops, ex->bad[b], &inv->secrets[0], &err) == 0)
                fail_msg("kind %s: bad example %zu is accepted", ops->kind, b);
            if (ex->bad_why[b] == NULL || strstr(err.msg, ex->bad_why[b]) == NULL)
                fail_msg("kind %s: bad example %zu: \"%s\" lacks \"%s\"", ops->kind, b, err.msg,
                         ex->bad_why[b] ? ex->bad_why[b] : "(no reason given)");
            inventory_free(inv);
        }
    }
    /* every example names a registered kind */
    for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++)
        assert_non_null(rotator_kind(examples[i].kind));
    assert_int_equal(nkinds, sizeof(examples) / sizeof(examples[0]));
    /* (a planned kind, a row without create, is checked in the loop: rotator_find is NULL) */
    assert_null(rotator_kind("nonexistent"));
    assert_null(rotator_find("nonexistent"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_generated_hex),
        cmocka_unit_test(test_generated_base64),
        cmocka_unit_test(test_generated_alnum_uuid_escapes),
        cmocka_unit_test(test_generated_alnum_distribution),
        cmocka_unit_test(test_generated_format_errors),
        cmocka_unit_test(test_manual_value),
        cmocka_unit_test(test_manual_provider_keys),
        cmocka_unit_test(test_manual_refused),
        cmocka_unit_test(test_manual_no_input),
        cmocka_unit_test(test_manual_check),
        cmocka_unit_test(test_manual_never_prompts),
        cmocka_unit_test(test_rotator_contract),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
