/* Unit tests for src/hooks: templates, exec (status, stdin, clean argv/env, masking, timeout),
 * wait, file and http hooks (against a small HTTP server on 127.0.0.1 in a thread). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hooks/hook.h"
#include "util/template.h"
#include "util/enc.h"
#include "util/timeutil.h"

#define SECRET_VALUE "sk-litellm-0123456789abcdef0123456789abcdef0123456789ab"
#define OLD_VALUE "sk-litellm-oldoldoldoldoldoldoldoldoldoldoldoldoldoldold"
#define OTHER_VALUE "OTHERSECRET-xyz-12345"

static char tmpdir[64];
static struct secret *s_new, *s_old, *s_other, *s_fields;
static const struct secret *redact_list[1];

/* ---- helpers ---- */

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int
setup(void **state)
{
    (void)state;
    secure_heap_init();
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rk-hooks-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    s_new = secret_from_str(SECRET_VALUE);
    s_old = secret_from_str(OLD_VALUE);
    s_other = secret_from_str(OTHER_VALUE);
    s_fields = secret_from_str("{\"key\": \"" SECRET_VALUE "\", \"user\": \"k\\u00e9y_1\", "
                               "\"n\": 5, \"o\": {\"a\": [1, \"}\"]}, \"esc\": \"a\\\"b\"}");
    redact_list[0] = s_other;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    secret_free(s_new);
    secret_free(s_old);
    secret_free(s_other);
    secret_free(s_fields);
    return 0;
}

/* A store's fingerprint key stand-in: masked values show as fingerprints under it. */
static const struct fp_key *
test_fp_key(void)
{
    static struct fp_key *k;
    static const unsigned char raw[FP_KEY_LEN] = "test_hooks fingerprint key.....";

    if (k == NULL)
        assert_int_equal(fp_key_new(raw, sizeof(raw), &k), 0);
    return k;
}

static struct hook_ctx
make_ctx(void)
{
    struct hook_ctx c = {0};
    c.fp_key = test_fp_key();
    c.path = "secret/ai-gateway/litellm/master-key";
    c.version = 42;
    c.new_value = s_new;
    c.old_value = s_old;
    c.new_fields_json = s_fields;
    c.redact = redact_list;
    c.nredact = 1;
    return c;
}

static struct hook_def
make_hook(enum hook_type type, const char *name)
{
    struct hook_def h;
    memset(&h, 0, sizeof(h));
    h.name = (char *)name;
    h.type = type;
    h.timeout_ms = 5000;
    h.tls_verify = 1;
    return h;
}

static void
path_in(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void
write_script(const char *name, const char *body, char *out, size_t n)
{
    FILE *f;
    path_in(out, n, name);
    f = fopen(out, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    assert_int_equal(chmod(out, 0700), 0);
}

/* Reads a whole file; returns a malloc'd NUL-terminated buffer (NULL if absent). */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n = 0, cap = 1 << 20;

    if (f == NULL)
        return NULL;
    buf = calloc(1, cap + 1);
    assert_non_null(buf);
    n = fread(buf, 1, cap, f);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static int
mem_has(const char *buf, size_t len, const char *needle)
{
    return memmem(buf, len, needle, strlen(needle)) != NULL;
}

/* stderr (where log_msg writes) redirected to a file while a hook runs. */
static int saved_stderr = -1;
static char logpath[128];

static void
capture_begin(void)
{
    int fd;
    path_in(logpath, sizeof(logpath), "log.txt");
    fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static char *
capture_end(size_t *len)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    return slurp(logpath, len);
}

static char *
render(const char *tpl, const struct hook_ctx *ctx, int expect_rc, struct rk_error *err)
{
    struct secret *out = NULL;
    char *copy;
    int r = hook_template_render(tpl, ctx, &out, err);
    assert_int_equal(r, expect_rc);
    if (r != 0) {
        assert_null(out);
        return NULL;
    }
    assert_int_equal(out->data[out->len], 0);
    copy = strdup((char *)out->data);
    secret_free(out);
    return copy;
}

/* ---- templates ---- */

static void
test_template_render(void **state)
{
    static const struct {
        const char *tpl, *want;
    } cases[] = {
        {"Bearer {{new}}", "Bearer " SECRET_VALUE},
        {"{{ old }}|{{new}}", OLD_VALUE "|" SECRET_VALUE},
        {"{{path}}@{{version}}", "secret/ai-gateway/litellm/master-key@42"},
        {"{{new.key}}", SECRET_VALUE},
        {"{{new.user}}", "k\xc3\xa9y_1"},
        {"{{new.n}}", "5"},
        {"{{new.o}}", "{\"a\": [1, \"}\"]}"},
        {"{{new.esc}}", "a\"b"},
        {"plain { text } }} {x}", "plain { text } }} {x}"},
        {"", ""},
    };
    struct hook_ctx ctx = make_ctx();
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rk_error err = {0};
        char *got = render(cases[i].tpl, &ctx, 0, &err);
        assert_string_equal(got, cases[i].want);
        free(got);
        assert_int_equal(hook_template_check(cases[i].tpl, &err), 0);
    }
}

static void
test_template_errors(void **state)
{
    struct hook_ctx ctx = make_ctx(), bare = {0};
    struct rk_error err = {0};
    char *pub = NULL;
    (void)state;

    assert_int_equal(hook_template_check("x {{nope}}", &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "{{nope}}"));
    assert_non_null(strstr(err.msg, "position 3"));
    assert_int_equal(hook_template_check("abc {{new", &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "unterminated"));
    assert_non_null(strstr(err.msg, "position 5"));
    assert_int_equal(hook_template_check("{{new.}}", &err), -RK_EINVAL);
    assert_int_equal(hook_template_check("{{new.a b}}", &err), -RK_EINVAL);
    assert_int_equal(hook_template_check("{{path.x}}", &err), -RK_EINVAL);
    assert_int_equal(hook_template_check("{{}}", &err), -RK_EINVAL);
    assert_int_equal(hook_template_check("{{old.password}}", &err), 0);

    render("{{new.missing}}", &ctx, -RK_EINVAL, &err);
    assert_non_null(strstr(err.msg, "missing"));
    assert_null(strstr(err.msg, SECRET_VALUE));
    render("{{old.key}}", &ctx, -RK_EINVAL, &err); /* no old fields given */
    render("{{new}}", &bare, -RK_EINVAL, &err);
    assert_non_null(strstr(err.msg, "no new value"));
    render("{{path}}", &bare, -RK_EINVAL, &err);
    render("{{nope}}", &ctx, -RK_EINVAL, &err);

    /* malformed fields JSON */
    struct secret *bad = secret_from_str("{\"key\": \"unterminated");
    ctx.new_fields_json = bad;
    render("{{new.key}}", &ctx, -RK_EINVAL, &err);
    assert_null(strstr(err.msg, "unterminated"));
    secret_free(bad);
    ctx = make_ctx();

    assert_true(hook_template_has_secret("a {{ new }}"));
    assert_true(hook_template_has_secret("{{old.password}}"));
    assert_false(hook_template_has_secret("{{path}} {{version}}"));
    assert_int_equal(hook_template_render_public("--key={{new}}", &ctx, &pub, &err), -RK_EINVAL);
    assert_null(pub);
    assert_non_null(strstr(err.msg, "not allowed"));
    assert_int_equal(hook_template_render_public("/v1/{{path}}/{{version}}", &ctx, &pub, &err), 0);
    assert_string_equal(pub, "/v1/secret/ai-gateway/litellm/master-key/42");
    free(pub);
}

static void
test_check(void **state)
{
    char *argv_bad[] = {(char *)"echo", (char *)"{{new}}", NULL};
    char *argv_ok[] = {(char *)"echo", (char *)"{{path}}", NULL};
    struct hook_def h = make_hook(HOOK_EXEC, "h1");
    struct rk_error err = {0};
    (void)state;

    h.argv = argv_bad;
    h.argc = 2;
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);
    assert_non_null(strstr(err.msg, "hook h1: command[1]"));
    h.argv = argv_ok;
    assert_int_equal(hook_check(&h, &err), 0);
    h.wait_interval_ms = 1000;
    h.wait_timeout_ms = 10;
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);

    h = make_hook(HOOK_HTTP, "h2");
    h.url = (char *)"https://example.invalid/?k={{new}}";
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);
    assert_non_null(strstr(err.msg, "url"));
    h.url = (char *)"ftp://x/";
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);
    h.url = (char *)"https://example.invalid/{{path}}";
    assert_int_equal(hook_check(&h, &err), 0);
    h.method = (char *)"GE T";
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);

    h = make_hook(HOOK_FILE, "h3");
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);
    h.path = (char *)"/tmp/x";
    h.template = (char *)"{{new";
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);
    assert_non_null(strstr(err.msg, "template"));
    h.template = (char *)"K={{new}}";
    assert_int_equal(hook_check(&h, &err), 0);

    h.type = (enum hook_type)99;
    assert_int_equal(hook_check(&h, &err), -RK_ECONFIG);
}

/* ---- exec ---- */

static void
test_exec_status(void **state)
{
    char *t[] = {(char *)"true", NULL}, *f[] = {(char *)"/bin/false", NULL};
    char *none[] = {(char *)"/nonexistent/prog", NULL};
    char *code[] = {(char *)"/bin/sh", (char *)"-c", (char *)"exit 7", NULL};
    struct hook_def h = make_hook(HOOK_EXEC, "status");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    (void)state;

    h.argc = 1;
    h.argv = t;
    assert_int_equal(hook_run(&h, &ctx, &err), 0);
    h.argv = f;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EHOOK);
    assert_non_null(strstr(err.msg, "hook status: /bin/false exited with status 1"));
    h.argv = none;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EHOOK);
    assert_non_null(strstr(err.msg, "cannot run"));
    h.argv = code;
    h.argc = 3;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EHOOK);
    assert_non_null(strstr(err.msg, "status 7"));

    /* stdin: new with no new value is refused before anything runs */
    ctx.new_value = NULL;
    h.argv = t;
    h.argc = 1;
    h.stdin_mode = HOOK_STDIN_NEW;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EINVAL);
}

static void
test_exec_stdin_clean_child(void **state)
{
    char script[128], file[160], *buf;
    size_t len;
    char *argv[] = {(char *)"/bin/sh",     script, tmpdir, (char *)"{{path}}",
                    (char *)"{{version}}", NULL};
    struct hook_def h = make_hook(HOOK_EXEC, "stdin");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    int leak;
    (void)state;

    write_script("copy.sh",
                 "#!/bin/sh\n"
                 "cat > \"$1/got\"\n"
                 "cat /proc/$$/cmdline > \"$1/cmdline\"\n"
                 "cat /proc/$$/environ > \"$1/environ\"\n"
                 "pwd > \"$1/pwd\"\n"
                 "ls /proc/$$/fd > \"$1/fds\"\n",
                 script, sizeof(script));
    /* The parent's environment and a non-CLOEXEC fd must not reach the child. */
    setenv("REKEY_TEST_PARENT_ENV", "parentleak", 1);
    leak = open("/dev/null", O_RDONLY);
    assert_true(dup2(leak, 77) == 77);
    close(leak);

    h.argv = argv;
    h.argc = 5;
    h.stdin_mode = HOOK_STDIN_NEW;
    h.workdir = tmpdir;
    assert_int_equal(hook_run(&h, &ctx, &err), 0);
    close(77);

    path_in(file, sizeof(file), "got");
    buf = slurp(file, &len);
    assert_non_null(buf);
    assert_int_equal(len, strlen(SECRET_VALUE));
    assert_memory_equal(buf, SECRET_VALUE, len);
    free(buf);

    path_in(file, sizeof(file), "cmdline");
    buf = slurp(file, &len);
    assert_non_null(buf);
    assert_true(mem_has(buf, len, "secret/ai-gateway/litellm/master-key"));
    assert_true(mem_has(buf, len, "42"));
    assert_false(mem_has(buf, len, SECRET_VALUE));
    assert_false(mem_has(buf, len, OLD_VALUE));
    free(buf);

    path_in(file, sizeof(file), "environ");
    buf = slurp(file, &len);
    assert_non_null(buf);
    assert_true(mem_has(buf, len, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"));
    assert_true(mem_has(buf, len, "REKEY_PATH=secret/ai-gateway/litellm/master-key"));
    assert_true(mem_has(buf, len, "REKEY_VERSION=42"));
    assert_false(mem_has(buf, len, SECRET_VALUE));
    assert_false(mem_has(buf, len, "parentleak"));
    assert_false(mem_has(buf, len, "REKEY_TEST_PARENT_ENV"));
    free(buf);

    path_in(file, sizeof(file), "pwd");
    buf = slurp(file, &len);
    assert_non_null(buf);
    assert_true(len > 0 && strncmp(buf, tmpdir, strlen(tmpdir)) == 0);
    free(buf);

    path_in(file, sizeof(file), "fds");
    buf = slurp(file, &len);
    assert_non_null(buf);
    assert_false(mem_has(buf, len, "\n77\n"));
    assert_false(strncmp(buf, "77\n", 3) == 0);
    free(buf);
    unsetenv("REKEY_TEST_PARENT_ENV");
}

static void
test_exec_output_masked(void **state)
{
    char script[128], fp_new[FINGERPRINT_LEN + 1], fp_other[FINGERPRINT_LEN + 1], *log;
    char *argv[] = {(char *)"/bin/sh", script, NULL};
    struct hook_def h = make_hook(HOOK_EXEC, "echoer");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    size_t len;
    int r;
    (void)state;

    write_script("echo.sh",
                 "#!/bin/sh\n"
                 "v=$(cat)\n"
                 "echo \"got $v here\"\n"
                 "echo \"err:$v\" >&2\n"
                 "echo \"other " OTHER_VALUE " and old " OLD_VALUE "\"\n"
                 "printf 'esc\\033[31m\\n'\n"
                 "echo plain-line\n"
                 "exit 3\n",
                 script, sizeof(script));
    h.argv = argv;
    h.argc = 2;
    h.stdin_mode = HOOK_STDIN_NEW;
    capture_begin();
    r = hook_run(&h, &ctx, &err);
    log = capture_end(&len);
    assert_int_equal(r, -RK_EHOOK);
    assert_non_null(log);
    assert_int_equal(fingerprint(test_fp_key(), SECRET_VALUE, strlen(SECRET_VALUE), fp_new), 0);
    assert_int_equal(fingerprint(test_fp_key(), OTHER_VALUE, strlen(OTHER_VALUE), fp_other), 0);
    assert_false(mem_has(log, len, SECRET_VALUE));
    assert_false(mem_has(log, len, OTHER_VALUE));
    assert_false(mem_has(log, len, OLD_VALUE));
    assert_false(mem_has(log, len, "\033"));
    assert_true(mem_has(log, len, "hook echoer: stdout: got "));
    assert_true(mem_has(log, len, fp_new));
    assert_true(mem_has(log, len, fp_other));
    assert_true(mem_has(log, len, "hook echoer: stderr: err:hmac:"));
    assert_true(mem_has(log, len, "hook echoer: stdout: plain-line"));
    assert_null(strstr(err.msg, SECRET_VALUE));
    free(log);

    /* Without the store's key a masked value still never shows: "(secret)" stands in. */
    ctx.fp_key = NULL;
    capture_begin();
    hook_log_output(&h, "stdout", (const unsigned char *)"v=" SECRET_VALUE,
                    2 + strlen(SECRET_VALUE), 0, &ctx);
    log = capture_end(&len);
    assert_true(mem_has(log, len, "stdout: v=(secret)"));
    assert_false(mem_has(log, len, SECRET_VALUE));
    free(log);
    ctx.fp_key = test_fp_key();

    /* A capture cut inside a secret must not show the part that fits. */
    static const char cut[] = "line one\nhalf sk-litellm-0123456789abc";
    capture_begin();
    hook_log_output(&h, "stdout", (const unsigned char *)cut, strlen(cut), 1, &ctx);
    log = capture_end(&len);
    assert_true(mem_has(log, len, "line one"));
    assert_false(mem_has(log, len, "sk-litellm-0123"));
    assert_true(mem_has(log, len, "truncated"));
    free(log);
}

static void
test_exec_big_output_bounded(void **state)
{
    char *argv[] = {(char *)"/bin/sh", (char *)"-c",
                    (char *)"head -c 300000 /dev/zero | tr '\\0' 'a'; echo; echo done >&2", NULL};
    struct hook_def h = make_hook(HOOK_EXEC, "big");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    char *log;
    size_t len;
    int r;
    (void)state;

    h.argv = argv;
    h.argc = 3;
    capture_begin();
    r = hook_run(&h, &ctx, &err);
    log = capture_end(&len);
    assert_int_equal(r, 0);
    assert_true(mem_has(log, len, "(output truncated)"));
    assert_true(mem_has(log, len, "stderr: done"));
    assert_true(len < 2 * HOOK_OUTPUT_MAX);
    free(log);
}

static int
proc_gone(pid_t pid)
{
    char p[64], *s;
    size_t len;
    int gone;

    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    s = slurp(p, &len);
    if (s == NULL)
        return 1;
    /* An orphan reparented to a pid 1 that does not reap stays a zombie: dead all the same. */
    char *rp = strrchr(s, ')');
    gone = rp != NULL && (rp[2] == 'Z' || rp[2] == 'X');
    free(s);
    return gone;
}

static void
test_exec_timeout(void **state)
{
    char pidfile[160], cmd[320], *buf;
    char *sleeper[] = {(char *)"sleep", (char *)"30", NULL};
    char *stubborn[] = {(char *)"/bin/sh", (char *)"-c", cmd, NULL};
    struct hook_def h = make_hook(HOOK_EXEC, "slow");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    int64_t t0;
    pid_t bg;
    (void)state;

    h.argv = sleeper;
    h.argc = 2;
    h.timeout_ms = 300;
    t0 = time_mono_ms();
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_ETIMEOUT);
    assert_true(time_mono_ms() - t0 < 1500);
    assert_non_null(strstr(err.msg, "hook slow: sleep timed out after 300 ms"));

    /* A hook that ignores SIGTERM and leaves a background child: both die (SIGKILL to the
     * group), within timeout + the 2 s grace. */
    path_in(pidfile, sizeof(pidfile), "bg.pid");
    snprintf(cmd, sizeof(cmd), "trap '' TERM; sleep 30 & echo $! > %s; wait", pidfile);
    h.argv = stubborn;
    h.argc = 3;
    t0 = time_mono_ms();
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_ETIMEOUT);
    assert_true(time_mono_ms() - t0 < 4000);
    buf = slurp(pidfile, NULL);
    assert_non_null(buf);
    bg = (pid_t)strtol(buf, NULL, 10);
    free(buf);
    assert_true(bg > 0);
    for (int i = 0; i < 100 && !proc_gone(bg); i++)
        usleep(10000);
    assert_true(proc_gone(bg));
}

/* ---- wait ---- */

static void *
make_ready_later(void *arg)
{
    char *p = arg;
    usleep(400 * 1000);
    FILE *f = fopen(p, "w");
    if (f != NULL)
        fclose(f);
    return NULL;
}

static void
test_wait_retries(void **state)
{
    char ready[160];
    char *argv[] = {(char *)"test", (char *)"-e", ready, NULL};
    struct hook_def h = make_hook(HOOK_EXEC, "ready");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    pthread_t th;
    int64_t t0, dt;
    (void)state;

    path_in(ready, sizeof(ready), "ready");
    h.argv = argv;
    h.argc = 3;
    h.wait_interval_ms = 100;
    h.wait_timeout_ms = 5000;
    pthread_create(&th, NULL, make_ready_later, ready);
    t0 = time_mono_ms();
    assert_int_equal(hook_run(&h, &ctx, &err), 0);
    dt = time_mono_ms() - t0;
    pthread_join(th, NULL);
    assert_true(dt >= 300 && dt < 3000);

    /* never ready: the last error, after about wait_timeout */
    unlink(ready);
    h.wait_timeout_ms = 500;
    t0 = time_mono_ms();
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EHOOK);
    dt = time_mono_ms() - t0;
    assert_true(dt >= 350 && dt < 2000);
    assert_non_null(strstr(err.msg, "exited with status 1"));
    assert_non_null(strstr(err.msg, "still failing after"));
}

static void
test_run_list_stops(void **state)
{
    char marker[160];
    char *ok[] = {(char *)"true", NULL}, *bad[] = {(char *)"false", NULL};
    char *touch[] = {(char *)"touch", marker, NULL};
    struct hook_def a = make_hook(HOOK_EXEC, "a"), b = make_hook(HOOK_EXEC, "b"),
                    c = make_hook(HOOK_EXEC, "c");
    struct hook_def *list[] = {&a, &b, &c};
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    (void)state;

    path_in(marker, sizeof(marker), "marker");
    a.argv = ok;
    a.argc = 1;
    b.argv = bad;
    b.argc = 1;
    c.argv = touch;
    c.argc = 2;
    assert_int_equal(hook_run_list(list, 3, &ctx, &err), -RK_EHOOK);
    assert_non_null(strstr(err.msg, "hook b:"));
    assert_int_not_equal(access(marker, F_OK), 0);
    b.argv = ok;
    assert_int_equal(hook_run_list(list, 3, &ctx, &err), 0);
    assert_int_equal(access(marker, F_OK), 0);
}

/* ---- file ---- */

static void
test_file_hook(void **state)
{
    char path[160], tpl_path[200], *buf;
    struct hook_def h = make_hook(HOOK_FILE, "render");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    struct stat st;
    struct dirent *de;
    DIR *d;
    size_t len;
    (void)state;

    path_in(path, sizeof(path), "out-42.env");
    snprintf(tpl_path, sizeof(tpl_path), "%s/out-{{version}}.env", tmpdir);
    h.path = tpl_path;
    h.template = (char *)"LITELLM_MASTER_KEY={{new}}\nPATH={{path}}\n";
    assert_int_equal(hook_run(&h, &ctx, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    buf = slurp(path, &len);
    assert_string_equal(buf, "LITELLM_MASTER_KEY=" SECRET_VALUE
                             "\nPATH=secret/ai-gateway/litellm/master-key\n");
    free(buf);

    /* rewritten in place with another mode; no temporary file left behind */
    h.mode = 0640;
    h.template = (char *)"{{old}}";
    assert_int_equal(hook_run(&h, &ctx, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    buf = slurp(path, &len);
    assert_string_equal(buf, OLD_VALUE);
    free(buf);
    d = opendir(tmpdir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        assert_null(strstr(de->d_name, ".tmp."));
    closedir(d);

    h.path = (char *)"/nonexistent-dir/x";
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EHOOK);
    assert_non_null(strstr(err.msg, "hook render:"));
    h.path = tpl_path;
    h.template = (char *)"{{new.nope}}";
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EINVAL);
}

/* ---- http: a one-thread HTTP/1.1 server on 127.0.0.1 ---- */

struct server {
    int fd, port;
    int status;       /* what to answer */
    const char *body; /* response body; NULL: never answer */
    int silent;       /* accept and never answer */
    int nreq;         /* how many connections to serve */
    char req[8192];   /* the last request */
    size_t reqlen;
    pthread_t th;
};

static void *
server_main(void *arg)
{
    struct server *s = arg;

    for (int i = 0; i < s->nreq; i++) {
        int c = accept(s->fd, NULL, NULL);
        char resp[1024];
        size_t n = 0;

        if (c < 0)
            break;
        for (;;) {
            ssize_t r = read(c, s->req + n, sizeof(s->req) - 1 - n);
            char *hdr_end, *cl;
            if (r <= 0)
                break;
            n += (size_t)r;
            s->req[n] = '\0';
            if ((hdr_end = strstr(s->req, "\r\n\r\n")) == NULL)
                continue;
            cl = strcasestr(s->req, "\r\nContent-Length:");
            if (cl == NULL || (size_t)(hdr_end + 4 - s->req) + strtoul(cl + 17, NULL, 10) <= n)
                break;
        }
        s->reqlen = n;
        if (s->silent) {
            usleep(1500 * 1000);
            close(c);
            continue;
        }
        int rl = snprintf(resp, sizeof(resp),
                          "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nLocation: http://127.0.0.2/\r\n"
                          "Connection: close\r\n\r\n%s",
                          s->status, strlen(s->body), s->body);
        (void)!write(c, resp, (size_t)rl);
        close(c);
    }
    return NULL;
}

static void
server_start(struct server *s, int status, const char *body, int nreq)
{
    struct sockaddr_in a = {0};
    socklen_t al = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->status = status;
    s->body = body;
    s->silent = body == NULL; /* accept, read, never answer */
    s->nreq = nreq;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void
server_stop(struct server *s)
{
    pthread_join(s->th, NULL);
    close(s->fd);
}

static void
test_http_hook(void **state)
{
    struct inv_pair headers[] = {{(char *)"Authorization", (char *)"Bearer {{new}}"},
                                 {(char *)"X-Version", (char *)"{{version}}"}};
    struct hook_def h = make_hook(HOOK_HTTP, "litellm-health");
    struct hook_ctx ctx = make_ctx();
    struct rk_error err = {0};
    struct server srv;
    char url[160], *log;
    size_t len;
    int r;
    (void)state;

    server_start(&srv, 200, "{\"ok\":true}", 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/{{path}}?v={{version}}", srv.port);
    h.url = url;
    h.method = (char *)"POST";
    h.headers = headers;
    h.nheaders = 2;
    h.body = (char *)"{\"key\":\"{{new}}\"}";
    r = hook_run(&h, &ctx, &err);
    if (r != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(r, 0);
    server_stop(&srv);
    assert_true(mem_has(srv.req, srv.reqlen,
                        "POST /v1/secret/ai-gateway/litellm/master-key?v=42 HTTP/1.1\r\n"));
    assert_true(mem_has(srv.req, srv.reqlen, "\r\nAuthorization: Bearer " SECRET_VALUE "\r\n"));
    assert_true(mem_has(srv.req, srv.reqlen, "\r\nX-Version: 42\r\n"));
    assert_true(mem_has(srv.req, srv.reqlen, "\r\n\r\n{\"key\":\"" SECRET_VALUE "\"}"));

    /* status mismatch: named error, response body logged masked */
    server_start(&srv, 401, "invalid token " SECRET_VALUE, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", srv.port);
    h.method = NULL;
    h.body = NULL;
    capture_begin();
    r = hook_run(&h, &ctx, &err);
    log = capture_end(&len);
    server_stop(&srv);
    assert_int_equal(r, -RK_EHOOK);
    assert_non_null(strstr(err.msg, "hook litellm-health: expected HTTP 200, got 401"));
    assert_true(mem_has(srv.req, srv.reqlen, "GET /health HTTP/1.1\r\n"));
    assert_false(mem_has(log, len, SECRET_VALUE));
    assert_true(mem_has(log, len, "response: invalid token hmac:"));
    free(log);

    /* a redirect is not followed */
    server_start(&srv, 302, "", 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/r", srv.port);
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EHOOK);
    assert_non_null(strstr(err.msg, "got 302"));
    server_stop(&srv);
    h.expect_status = 302;
    server_start(&srv, 302, "", 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/r", srv.port);
    assert_int_equal(hook_run(&h, &ctx, &err), 0);
    server_stop(&srv);
    h.expect_status = 0;

    /* no answer: timeout */
    server_start(&srv, 200, NULL, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", srv.port);
    h.timeout_ms = 300;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_ETIMEOUT);
    server_stop(&srv);

    /* nothing listening: the target is unavailable (the candidate waits), not the value wrong */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", srv.port);
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EUNAVAILABLE);
    assert_null(strstr(err.msg, SECRET_VALUE));

    /* a header value that renders a line break is refused */
    struct secret *crlf = secret_from_str("a\r\nX-Evil: 1");
    ctx.new_value = crlf;
    h.headers = headers;
    h.nheaders = 1;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EINVAL);
    assert_null(strstr(err.msg, "Evil"));
    secret_free(crlf);
}

/* ---- the hook contract: every registered hook kind ---- */

static void hook_lint_count(void *arg, const char *severity, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
hook_lint_count(void *arg, const char *severity, const char *fmt, ...)
{
    (void)fmt;
    if (strcmp(severity, "error") == 0)
        (*(int *)arg)++;
}

static void
test_hook_contract(void **state)
{
    static const char *const generic[] = {"type", "timeout", "wait", NULL};
    const struct hook_ops *ops;
    size_t n = 0;
    (void)state;

    for (size_t i = 0; (ops = hook_kind_at(i)) != NULL; i++, n++) {
        struct rk_error err = {0};

        assert_int_equal(ops->version, HOOK_OPS_VERSION);
        assert_ptr_equal(hook_kind_find(ops->name, strlen(ops->name)), ops);
        assert_string_equal(hook_type_name(ops->type), ops->name);
        assert_non_null(ops->check);
        assert_non_null(ops->run);
        if (inv_settings_check_table(ops->settings, generic, &err) != 0)
            fail_msg("hook kind %s: settings: %s", ops->name, err.msg);
        /* a hook with none of its required settings is refused by its check */
        for (const struct inv_setting *st = ops->settings; st && st->name; st++) {
            struct hook_def bare = make_hook(ops->type, "bare");
            if (st->flags & IS_REQUIRED)
                assert_int_equal(hook_check(&bare, &err), -RK_ECONFIG);
        }
    }
    assert_int_equal(n, 4); /* exec, http, file, tls */
    assert_null(hook_kind_find("smoke", 5));
    assert_null(hook_kind_at(n));

    /* the kinds' lint rules, through hook_lint */
    {
        struct hook_def f = make_hook(HOOK_FILE, "f");
        char *hv = (char *)"Bearer {{ new }}";
        struct inv_pair hdr = {(char *)"Authorization", hv};
        int errors = 0;

        f.path = (char *)"/run/x.env";
        f.template = (char *)"K={{ new }}\n";
        f.mode = 0600;
        hook_lint(&f, hook_lint_count, &errors);
        assert_int_equal(errors, 0);
        f.mode = 0644;
        hook_lint(&f, hook_lint_count, &errors);
        assert_int_equal(errors, 1);

        struct hook_def w = make_hook(HOOK_HTTP, "w");
        w.url = (char *)"http://localhost:4000/v1/models";
        w.headers = &hdr;
        w.nheaders = 1;
        errors = 0;
        hook_lint(&w, hook_lint_count, &errors);
        assert_int_equal(errors, 0);
        w.url = (char *)"http://localhost.example.com/v1/models";
        hook_lint(&w, hook_lint_count, &errors);
        assert_int_equal(errors, 1);
        w.url = (char *)"http://127.0.0.1.example.com/";
        hook_lint(&w, hook_lint_count, &errors);
        assert_int_equal(errors, 2);
    }
}

/* The grammar's field-name limit is the renderer's: a longer {{new.FIELD}} is refused by the
 * check the loader runs, not first at rotation time. */
static void
test_template_field_limit(void **state)
{
    char tpl[TEMPLATE_FIELD_MAX + 16];
    struct rk_error err = {0};
    (void)state;

    snprintf(tpl, sizeof(tpl), "{{new.%0*d}}", TEMPLATE_FIELD_MAX, 0);
    assert_int_equal(hook_template_check(tpl, &err), 0);
    snprintf(tpl, sizeof(tpl), "{{new.%0*d}}", TEMPLATE_FIELD_MAX + 1, 0);
    assert_int_equal(hook_template_check(tpl, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "at most 128"));
    assert_int_equal(template_check("{{ new }}", 0, &err), 0);
    assert_int_equal(template_check("{{ new }}", TEMPLATE_PUBLIC, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "stdin"));
    assert_int_equal(template_check("a }} {b} { {{path}}", TEMPLATE_PUBLIC, &err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_render),
        cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_hook_contract),
        cmocka_unit_test(test_template_field_limit),
        cmocka_unit_test(test_exec_status),
        cmocka_unit_test(test_exec_stdin_clean_child),
        cmocka_unit_test(test_exec_output_masked),
        cmocka_unit_test(test_exec_big_output_bounded),
        cmocka_unit_test(test_exec_timeout),
        cmocka_unit_test(test_wait_retries),
        cmocka_unit_test(test_run_list_stops),
        cmocka_unit_test(test_file_hook),
        cmocka_unit_test(test_http_hook),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
