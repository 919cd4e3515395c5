/* manual.c: kind "manual", a value a person supplies: piped on stdin (--from-stdin), read from
 * a file (--from-file FILE), or typed twice at a no-echo prompt on /dev/tty.
 *
 * One trailing newline ("\n" or "\r\n") is stripped, as `echo` and editors add one. The value
 * is checked before anything is stored: not empty, no NUL byte, at most 64 KiB, and matching
 * the entry's `pattern` (POSIX ERE) when one is set. Errors name the secret, the pattern and the
 * value's length, never the value nor a hash of it (a refused value is in no store, so it has no
 * fingerprint to compare with; an unkeyed hash would confirm a guess). Nothing is echoed. Applying
 * the value at the target, testing and retiring are left to the entry's hooks, so those steps are
 * NULL here. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "util/enc.h"
#include "util/fsutil.h"
#include "util/secret.h"
#include "rotators/rotator.h"
#include "util/ere.h"

#define MANUAL_MAX_VALUE (64 * 1024)

/* Drops one trailing "\n" or "\r\n", wiping the bytes dropped. */
static void
strip_newline(struct secret *v)
{
    if (v->len > 0 && v->data[v->len - 1] == '\n') {
        v->data[--v->len] = '\0';
        if (v->len > 0 && v->data[v->len - 1] == '\r')
            v->data[--v->len] = '\0';
    }
}

/* Copies the first len bytes of a scratch secret into an exact-size one (*out). */
static int
exact_copy(const struct secret *buf, size_t len, struct secret **out, struct rk_error *err)
{
    if ((*out = secret_from(buf->data, len)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

static int
read_stdin(const char *path, struct secret **out, struct rk_error *err)
{
    struct secret *buf = NULL;
    size_t n = 0;
    int r;

    /* Typing a secret into a terminal with --from-stdin would echo it. */
    if (isatty(STDIN_FILENO))
        return rk_error_set(err, RK_EINVAL,
                            "--from-stdin: stdin is a terminal and the value would be echoed; "
                            "pipe it in, or leave out --from-stdin to be prompted for %s",
                            path);
    /* Room for the limit plus a "\r\n" and one byte to detect an overlong value. */
    if ((buf = secret_new(MANUAL_MAX_VALUE + 3)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (;;) {
        ssize_t rd = read(STDIN_FILENO, buf->data + n, buf->len - n);
        if (rd < 0 && errno == EINTR)
            continue;
        if (rd < 0) {
            r = rk_error_set(err, RK_EIO, "reading the value for %s from stdin: %s", path,
                             strerror(errno));
            goto out;
        }
        if (rd == 0)
            break;
        n += (size_t)rd;
        if (n == buf->len) {
            r = rk_error_set(err, RK_ELIMIT,
                             "the value for %s on stdin is longer than %d bytes; nothing was "
                             "stored",
                             path, MANUAL_MAX_VALUE);
            goto out;
        }
    }
    r = exact_copy(buf, n, out, err);
out:
    secret_free(buf);
    return r;
}

static int
read_file(const char *file, struct secret **out, struct rk_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int r;

    if ((r = fs_read_all(file, MANUAL_MAX_VALUE + 2, &buf, &len, err)) != 0)
        return rk_error_prefix(err, "--from-file");
    if ((*out = secret_from(buf, len)) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    freezero(buf, len + 1);
    return r;
}

/* ---- the no-echo prompt ---- */

static volatile sig_atomic_t prompt_signal;

static void
prompt_on_signal(int sig)
{
    prompt_signal = sig;
}

static const int prompt_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
#define NPROMPT_SIGNALS (sizeof(prompt_signals) / sizeof(prompt_signals[0]))

/* Writes msg to the terminal; errors are ignored (the read that follows reports them). */
static void
tty_say(int fd, const char *msg)
{
    size_t len = strlen(msg), off = 0;

    while (off < len) {
        ssize_t w = write(fd, msg + off, len - off);
        if (w < 0 && errno == EINTR && prompt_signal == 0)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* Reads one line from fd into buf (at most buf->len - 1 bytes before the newline); *n gets
 * its length without the newline. */
static int
tty_read_line(int fd, struct secret *buf, size_t *n, const char *path, struct rk_error *err)
{
    *n = 0;
    for (;;) {
        unsigned char ch;
        ssize_t rd = read(fd, &ch, 1);

        if (prompt_signal != 0)
            return rk_error_set(err, RK_ECANCELED, "prompt for %s interrupted", path);
        if (rd < 0 && errno == EINTR)
            continue;
        if (rd < 0)
            return rk_error_set(err, RK_EIO, "reading the value for %s from the terminal: %s", path,
                                strerror(errno));
        if (rd == 0 || ch == '\n')
            return 0;
        if (*n + 1 >= buf->len) {
            ch = 0;
            return rk_error_set(err, RK_ELIMIT,
                                "the value typed for %s is longer than %d bytes; nothing was "
                                "stored",
                                path, MANUAL_MAX_VALUE);
        }
        buf->data[(*n)++] = ch;
        ch = 0;
    }
}

static int
read_tty(const char *path, struct secret **out, struct rk_error *err)
{
    struct sigaction sa, old_sa[NPROMPT_SIGNALS];
    struct termios old_tio, tio;
    struct secret *a = NULL, *b = NULL;
    char msg[512];
    size_t na = 0, nb = 0;
    int fd, r, tio_set = 0, caught;

    if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 ||
        tcgetattr(fd, &old_tio) != 0) {
        if (fd >= 0)
            close(fd);
        return rk_error_set(err, RK_EINVAL,
                            "kind manual needs a value: pass --from-stdin or --from-file FILE, "
                            "or run on a terminal (%s)",
                            path);
    }
    /* Ctrl-C must not leave the terminal without echo: catch the usual signals while the echo is
     * off, restore the terminal, then deliver the signal again (as readpassphrase(3) does). */
    prompt_signal = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = prompt_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the read returns EINTR */
    for (size_t i = 0; i < NPROMPT_SIGNALS; i++)
        sigaction(prompt_signals[i], &sa, &old_sa[i]);

    tio = old_tio;
    tio.c_lflag &= (tcflag_t) ~(ECHO | ECHOE | ECHOK | ECHONL);
    tio.c_lflag |= ICANON;
    if (tcsetattr(fd, TCSAFLUSH, &tio) != 0) {
        r = rk_error_set(err, RK_EIO, "turning off the terminal echo: %s", strerror(errno));
        goto out;
    }
    tio_set = 1;
    if ((a = secret_new(MANUAL_MAX_VALUE + 1)) == NULL ||
        (b = secret_new(MANUAL_MAX_VALUE + 1)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(msg, sizeof(msg), "New value for %s (not echoed): ", path);
    tty_say(fd, msg);
    r = tty_read_line(fd, a, &na, path, err);
    tty_say(fd, "\n");
    if (r != 0)
        goto out;
    snprintf(msg, sizeof(msg), "Repeat the new value for %s: ", path);
    tty_say(fd, msg);
    r = tty_read_line(fd, b, &nb, path, err);
    tty_say(fd, "\n");
    if (r != 0)
        goto out;
    if (na != nb || CRYPTO_memcmp(a->data, b->data, na) != 0) {
        r = rk_error_set(err, RK_EINVAL, "the two values typed for %s differ; nothing was stored",
                         path);
        goto out;
    }
    r = exact_copy(a, na, out, err);
out:
    if (tio_set)
        tcsetattr(fd, TCSAFLUSH, &old_tio);
    close(fd);
    caught = prompt_signal;
    for (size_t i = 0; i < NPROMPT_SIGNALS; i++)
        sigaction(prompt_signals[i], &old_sa[i], NULL);
    secret_free(a);
    secret_free(b);
    if (caught != 0) {
        if (r == 0) {
            secret_free(*out);
            *out = NULL;
            r = rk_error_set(err, RK_ECANCELED, "prompt for %s interrupted", path);
        }
        raise(caught);
    }
    return r;
}

/* ---- validation ---- */

/* Compiles the entry's pattern with the configuration's one regex check (util/ere.h); err
 * names the setting ("pattern: …") so the loader points at it. */
static int
compile_pattern(const struct inv_secret *s, regex_t *re, struct rk_error *err)
{
    struct rk_error e = {0};

    if (ere_compile(s->pattern, re, &e) != 0)
        return rk_error_set(err, RK_ECONFIG, "pattern: %s", e.msg);
    return 0;
}

/* Checks v before it is stored. Never puts v in err. */
static int
manual_validate(const struct inv_secret *s, const struct secret *v, struct rk_error *err)
{
    regex_t re;
    int r, rc;

    if (v->len == 0)
        return rk_error_set(err, RK_EINVAL, "the new value for %s is empty; nothing was stored",
                            s->path);
    if (v->len > MANUAL_MAX_VALUE)
        return rk_error_set(err, RK_ELIMIT,
                            "the new value for %s is longer than %d bytes; nothing was stored",
                            s->path, MANUAL_MAX_VALUE);
    /* A NUL would end the string regexec sees, so the rest would escape the pattern. */
    if (memchr(v->data, '\0', v->len) != NULL)
        return rk_error_set(err, RK_EINVAL,
                            "the new value for %s contains a NUL byte (%zu bytes); nothing was "
                            "stored",
                            s->path, v->len);
    if (s->pattern == NULL)
        return 0;
    if ((r = compile_pattern(s, &re, err)) != 0)
        return rk_error_prefix(err, "%s", s->path);
    rc = regexec(&re, (const char *)v->data, 0, NULL, 0);
    regfree(&re);
    if (rc == REG_NOMATCH)
        return rk_error_set(err, RK_EINVAL,
                            "the new value does not match the pattern for %s: expected %.160s "
                            "(got %zu bytes); nothing was stored",
                            s->path, s->pattern, v->len);
    if (rc != 0)
        return rk_error_set(err, RK_EINTERNAL, "matching the pattern for %s failed (%d)", s->path,
                            rc);
    return 0;
}

static int
manual_check(const struct inv_secret *s, struct rk_error *err)
{
    regex_t re;
    int r;

    if (s->pattern == NULL)
        return 0;
    if ((r = compile_pattern(s, &re, err)) != 0)
        return r;
    regfree(&re);
    return 0;
}

static int
manual_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    const struct inv_secret *s = c->secret;
    const struct rot_input *in = c->input;
    struct secret *v = NULL;
    int r;

    if (in != NULL && in->value != NULL)
        r = (v = secret_from(in->value->data, in->value->len)) != NULL
                ? 0
                : rk_error_set(err, RK_ENOMEM, "out of memory");
    else if (in != NULL && in->from_stdin)
        r = read_stdin(s->path, &v, err);
    else if (in != NULL && in->from_file != NULL)
        r = read_file(in->from_file, &v, err);
    else if (in != NULL && in->allow_prompt)
        r = read_tty(s->path, &v, err);
    else
        r = rk_error_set(err, RK_EINVAL,
                         "kind manual needs a value: pass --from-stdin or --from-file FILE, or "
                         "run on a terminal (%s)",
                         s->path);
    if (r != 0)
        goto out;
    strip_newline(v);
    if ((r = manual_validate(s, v, err)) != 0)
        goto out;
    /* One field: the entry's. rot_fields_set takes v, also on failure. */
    r = rot_fields_set(out, rotator_field(s), v, 0, err);
    v = NULL;
out:
    secret_free(v);
    return r;
}

/* A person always types the value. Retiring the old one is left to the hooks, unless the entry
 * names the `console` where values are issued: then a person revokes the old value there, and
 * the finish step opens an action-required item that says so (rekey done closes it). */
static unsigned
manual_flags_for(const struct inv_secret *s)
{
    return ROT_F_MANUAL_INPUT | (inv_param(s, "console") != NULL ? ROT_F_PERSON_FINISHES : 0);
}

/* Where the value was issued is only known to the person, or to the entry's `console` URL. */
static int
manual_action_hint(const struct inv_secret *s, char *buf, size_t len)
{
    const char *console = inv_param(s, "console");

    if (console != NULL)
        snprintf(buf, len, "revoke the old value at %s", console);
    else
        snprintf(buf, len, "revoke the old value where it was issued");
    return 0;
}

static const struct inv_setting manual_settings[] = {
    {.name = "pattern",
     .type = IS_REGEX,
     .help = "a POSIX ERE every new value must match",
     .offset = offsetof(struct inv_secret, pattern)},
    {.name = "console",
     .type = IS_URL,
     .help = "where a person issues and revokes the value (shown in action items)"},
    {0},
};

/* A person supplies every value, so the daemon can only remind. */
static void
manual_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
            void *arg)
{
    (void)inv;
    if (s->auto_rotate)
        report(arg, "error",
               "auto: true on a manual secret; a person must supply each new value (rekey opens "
               "an action item on schedule instead)");
}

const struct rotator_ops rotator_manual = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "manual",
    .flags_for = manual_flags_for,
    .check = manual_check,
    .create = manual_create,
    .action_hint = manual_action_hint,
    .settings = manual_settings,
    .default_field = "value",
    .lint = manual_lint,
};
