/* Unit tests for src/audit: the chain format, verification (an edited, removed or moved line is
 * named), the file sink (batches of threads, two writer processes at once, rotation by rename
 * and by reopen, a damaged tail, a failing disk), the subscriber (accessors as HMACs under the
 * store's salt, a request refused when no sink can write it), devices stored in the barrier,
 * and the query scan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/audit.h"
#include "audit/chain.h"
#include "audit/query.h"
#include "audit/sink.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/events.h"
#include "util/secret.h"

struct fx {
    char dir[64];
    char path[160];
};

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/rekey-test-audit-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void
append_n(struct audit_sink *s, int from, int n)
{
    char body[128], tm[AUDIT_TIME_LEN + 1];
    struct rk_error err = {0};

    for (int i = from; i < from + n; i++) {
        int len =
            snprintf(body, sizeof(body), "\"type\":\"test\",\"path\":\"p/%d\",\"n\":%d", i, i);
        audit_time_format(1700000000000000LL + i, tm);
        if (audit_sink_append(s, tm, body, (size_t)len, &err) != 0)
            fail_msg("append %d: %s", i, err.msg);
    }
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void
spill(const char *path, const char *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    fclose(fp);
}

/* Verifies files in order; returns 0, or the 1-based line (within its file) that breaks the
 * chain, with *which the index of that file. */
static long
verify_files(const char *const *paths, size_t n, size_t *which, uint64_t *lines)
{
    struct audit_verifier v = {0};
    char why[256];

    for (size_t k = 0; k < n; k++) {
        size_t len;
        char *buf = slurp(paths[k], &len), *p = buf, *end = buf + len;
        long no = 0;
        while (p < end) {
            char *e = memchr(p, '\n', (size_t)(end - p));
            if (e == NULL)
                e = end;
            no++;
            if (audit_verify_line(&v, p, (size_t)(e - p), no == 1, why, sizeof(why)) != 0) {
                free(buf);
                if (which != NULL)
                    *which = k;
                return no;
            }
            p = e + 1;
        }
        free(buf);
    }
    if (lines != NULL)
        *lines = v.lines;
    return 0;
}

static long
verify_one(const char *path)
{
    const char *p[1] = {path};
    return verify_files(p, 1, NULL, NULL);
}

/* The offsets of the lines of buf: starts[i] for line i+1; returns the count. */
static size_t
line_starts(const char *buf, size_t len, size_t *starts, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n < max; i++)
        if (i == 0 || buf[i - 1] == '\n')
            starts[n++] = i;
    return n;
}

/* ---- the chain ------------------------------------------------------------------------------ */

static void
test_chain_and_verify(void **state)
{
    struct fx *f = *state;
    struct audit_sink *s = NULL;
    struct rk_error err = {0};
    uint64_t lines = 0;
    const char *p[1] = {f->path};
    size_t len;
    char *buf;

    assert_int_equal(audit_sink_new(f->path, &s, &err), 0);
    append_n(s, 0, 20);
    audit_sink_free(s);
    assert_int_equal(verify_files(p, 1, NULL, &lines), 0);
    assert_int_equal(lines, 21); /* the header and 20 */
    buf = slurp(f->path, &len);
    assert_non_null(strstr(buf, "\"type\":\"header\""));
    assert_non_null(strstr(buf, "\"anchor\":true"));
    /* Every line has the fixed fields. */
    assert_int_equal(memcmp(buf, "{\"prev\":\"", 9), 0);
    assert_int_equal(memcmp(buf + AUDIT_TIME_OFF - 10, "\",\"time\":\"", 10), 0);
    free(buf);
}

static void
test_verify_detects_at_the_line(void **state)
{
    struct fx *f = *state;
    struct audit_sink *s = NULL;
    struct rk_error err = {0};
    size_t len, st[64], n;
    char *orig, *buf, work[200];

    snprintf(work, sizeof(work), "%s/work.log", f->dir);
    assert_int_equal(audit_sink_new(f->path, &s, &err), 0);
    append_n(s, 0, 20);
    audit_sink_free(s);
    orig = slurp(f->path, &len);
    n = line_starts(orig, len, st, 64);
    assert_int_equal(n, 21);

    /* An edit of line 8 (a digit of its path) is named at line 8. */
    buf = malloc(len);
    memcpy(buf, orig, len);
    {
        char *q = strstr(buf + st[7], "p/");
        assert_non_null(q);
        q[2] = q[2] == '9' ? '8' : '9';
    }
    spill(work, buf, len);
    assert_int_equal(verify_one(work), 8);

    /* Removing line 8: the line now at 8 does not link to line 7. */
    memcpy(buf, orig, st[7]);
    memcpy(buf + st[7], orig + st[8], len - st[8]);
    spill(work, buf, len - (st[8] - st[7]));
    assert_int_equal(verify_one(work), 8);

    /* Swapping lines 8 and 9. */
    {
        size_t l8 = st[8] - st[7], l9 = st[9] - st[8];
        memcpy(buf, orig, len);
        memcpy(buf + st[7], orig + st[8], l9);
        memcpy(buf + st[7] + l9, orig + st[7], l8);
        spill(work, buf, len);
        assert_int_equal(verify_one(work), 8);
    }

    /* An edit of the last line is seen too (its own hash). */
    memcpy(buf, orig, len);
    {
        char *q = strstr(buf + st[20], "p/");
        q[2] = q[2] == '9' ? '8' : '9';
    }
    spill(work, buf, len);
    assert_int_equal(verify_one(work), 21);

    /* Removing the header (the first lines). */
    spill(work, orig + st[1], len - st[1]);
    assert_int_equal(verify_one(work), 1);

    /* The untouched file passes. */
    spill(work, orig, len);
    assert_int_equal(verify_one(work), 0);
    free(buf);
    free(orig);
}

/* ---- the sink ------------------------------------------------------------------------------- */

struct tw {
    struct audit_sink *s;
    int id;
};

static void *
thread_writer(void *arg)
{
    struct tw *w = arg;
    append_n(w->s, w->id * 1000, 100);
    return NULL;
}

static void
test_threads_share_fsyncs(void **state)
{
    struct fx *f = *state;
    struct audit_sink *s = NULL;
    struct rk_error err = {0};
    pthread_t th[8];
    struct tw w[8];
    unsigned long long batches = 0, lines = 0;
    uint64_t nl = 0;
    const char *p[1] = {f->path};

    assert_int_equal(audit_sink_new(f->path, &s, &err), 0);
    for (int i = 0; i < 8; i++) {
        w[i] = (struct tw){s, i};
        pthread_create(&th[i], NULL, thread_writer, &w[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    audit_sink_stats(s, &batches, &lines);
    audit_sink_free(s);
    assert_int_equal(lines, 801);
    assert_true(batches < 800); /* concurrent appends shared batches */
    assert_int_equal(verify_files(p, 1, NULL, &nl), 0);
    assert_int_equal(nl, 801);
}

static void
test_two_processes_one_chain(void **state)
{
    struct fx *f = *state;
    pid_t kids[2];
    uint64_t lines = 0;
    const char *p[1] = {f->path};

    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            struct audit_sink *s = NULL;
            struct rk_error err = {0};
            if (audit_sink_new(f->path, &s, &err) != 0)
                _exit(2);
            append_n(s, k * 10000, 500);
            audit_sink_free(s);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st = 0;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(verify_files(p, 1, NULL, &lines), 0);
    assert_int_equal(lines, 1001); /* one header: the second process continued the chain */
}

static void
test_rotation_continues_chain(void **state)
{
    struct fx *f = *state;
    struct audit_sink *s = NULL, *fresh = NULL;
    struct rk_error err = {0};
    char r1[200], r2[200];
    const char *p[3];
    uint64_t lines = 0;
    size_t len;
    char *buf;

    snprintf(r1, sizeof(r1), "%s.2", f->path);
    snprintf(r2, sizeof(r2), "%s.1", f->path);
    assert_int_equal(audit_sink_new(f->path, &s, &err), 0);
    append_n(s, 0, 5);
    /* logrotate renames the file; the sink sees it before its next line. */
    assert_int_equal(rename(f->path, r1), 0);
    append_n(s, 5, 5);
    /* SIGHUP without a rename: the same file goes on. */
    audit_sink_reopen(s);
    append_n(s, 10, 2);
    audit_sink_free(s);
    buf = slurp(f->path, &len);
    assert_non_null(strstr(buf, "\"anchor\":false"));
    free(buf);
    p[0] = r1;
    p[1] = f->path;
    assert_int_equal(verify_files(p, 2, NULL, &lines), 0);
    assert_int_equal(lines, 1 + 5 + 1 + 7);

    /* A process that never held the old file continues from "<path>.1". */
    assert_int_equal(rename(f->path, r2), 0);
    assert_int_equal(audit_sink_new(f->path, &fresh, &err), 0);
    append_n(fresh, 20, 3);
    audit_sink_free(fresh);
    p[0] = r1;
    p[1] = r2;
    p[2] = f->path;
    assert_int_equal(verify_files(p, 3, NULL, &lines), 0);

    /* Files out of order: the second file does not continue the first. */
    {
        size_t which = 9;
        p[0] = r2;
        p[1] = r1;
        assert_int_equal(verify_files(p, 2, &which, NULL), 1);
        assert_int_equal(which, 1);
    }
}

static void
test_damaged_tail_refused(void **state)
{
    struct fx *f = *state;
    struct audit_sink *s = NULL;
    struct rk_error err = {0};
    char tm[AUDIT_TIME_LEN + 1];
    FILE *fp;

    assert_int_equal(audit_sink_new(f->path, &s, &err), 0);
    append_n(s, 0, 2);
    audit_sink_free(s);
    fp = fopen(f->path, "ab");
    fputs("{\"prev\":\"cut sho", fp);
    fclose(fp);
    assert_int_equal(audit_sink_new(f->path, &s, &err), 0);
    audit_time_format(1, tm);
    assert_int_equal(audit_sink_append(s, tm, "\"type\":\"x\"", 10, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "rekey audit verify"));
    audit_sink_free(s);
}

static void
test_unwritable_fails_and_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct audit_sink *s = NULL;
    struct rk_error err = {0};
    char bad[200], tm[AUDIT_TIME_LEN + 1];
    struct stat st1, st2;

    snprintf(bad, sizeof(bad), "%s/no-such-dir/audit.log", f->dir);
    assert_int_equal(audit_sink_new(bad, &s, &err), 0);
    audit_time_format(1, tm);
    assert_int_equal(audit_sink_append(s, tm, "\"type\":\"x\"", 10, &err), -RK_EIO);
    audit_sink_free(s);

    /* A failing fsync cuts the batch back out of the file. */
    setenv("REKEY_AUDIT_FAULT", "fsync:3", 1);
    assert_int_equal(audit_sink_new(f->path, &s, &err), 0);
    unsetenv("REKEY_AUDIT_FAULT");
    append_n(s, 0, 2); /* fsyncs 1 and 2 */
    assert_int_equal(stat(f->path, &st1), 0);
    err.msg[0] = '\0';
    if (audit_sink_append(s, tm, "\"type\":\"x\"", 10, &err) == 0) {
        /* a build without the test switches: nothing to inject */
        audit_sink_free(s);
        skip();
    }
    assert_int_equal(stat(f->path, &st2), 0);
    assert_int_equal(st1.st_size, st2.st_size);
    audit_sink_free(s);
    assert_int_equal(verify_one(f->path), 0);
}

/* ---- the subscriber, with a store --------------------------------------------------------- */

struct store {
    struct backend *b;
    struct barrier *br;
};

static void
store_open(struct fx *f, struct store *st, int init)
{
    struct rk_error err = {0};
    char loc[200];
    struct secret *root = secret_new(ROOT_KEY_LEN);

    memset(root->data, 7, ROOT_KEY_LEN);
    snprintf(loc, sizeof(loc), "sqlite:%s/store.db", f->dir);
    if (backend_open(loc, &st->b, &err) != 0 || barrier_open(st->b, &st->br, &err) != 0)
        fail_msg("store: %s", err.msg);
    if (init) {
        if (barrier_init(st->br, root, "{}", &err) != 0)
            fail_msg("init: %s", err.msg);
    } else if (barrier_unseal(st->br, root, &err) != 0) {
        fail_msg("unseal: %s", err.msg);
    }
    secret_free(root);
}

static void
store_close(struct store *st)
{
    barrier_free(st->br);
    backend_close(st->b);
}

static void
test_subscriber_hmacs_and_fails_closed(void **state)
{
    struct fx *f = *state;
    struct store st;
    struct audit *a = NULL;
    struct audit_opts o = {0};
    struct rk_error err = {0};
    const char *pols[] = {"default", "ops", NULL};
    struct rk_event ev = {.type = EV_API_REQUEST,
                          .request_id = "r-1",
                          .operation = "read",
                          .path = "secret/data/app/db",
                          .actor = "token-ci",
                          .accessor = "accessor-plain-Zq9",
                          .policies = pols,
                          .remote_addr = "127.0.0.1"};
    char h[AUDIT_HMAC_LEN + 1], h2[AUDIT_HMAC_LEN + 1];
    size_t len;
    char *buf;

    store_open(f, &st, 1);
    o.file_path = f->path;
    o.br = st.br;
    assert_int_equal(audit_open(&o, &a, &err), 0);
    assert_int_equal(audit_sink_count(a), 1);
    assert_int_equal(events_publish(&ev, &err), 0);
    ev.type = EV_API_RESPONSE;
    ev.status = 403;
    ev.error = "permission denied";
    assert_int_equal(events_publish(&ev, &err), 0);
    buf = slurp(f->path, &len);
    assert_null(strstr(buf, "accessor-plain-Zq9"));
    assert_int_equal(audit_hash(st.br, "accessor-plain-Zq9", 18, h, &err), 0);
    assert_int_equal(strncmp(h, "hmac-sha256:", 12), 0);
    assert_non_null(strstr(buf, h));
    assert_non_null(strstr(buf, "\"policies\":[\"default\",\"ops\"]"));
    assert_non_null(strstr(buf, "\"status\":403"));
    assert_non_null(strstr(buf, "\"error\":\"permission denied\""));
    free(buf);
    assert_int_equal(verify_one(f->path), 0);

    /* The salt is the store's: the same after closing and opening it again. */
    audit_free(a);
    store_close(&st);
    store_open(f, &st, 0);
    assert_int_equal(audit_hash(st.br, "accessor-plain-Zq9", 18, h2, &err), 0);
    assert_string_equal(h, h2);

    /* No sink that can write: the request and the response are refused. */
    {
        char bad[200];
        snprintf(bad, sizeof(bad), "%s/missing/audit.log", f->dir);
        o.file_path = bad;
        o.br = st.br;
        assert_int_equal(audit_open(&o, &a, &err), 0);
        ev.type = EV_API_REQUEST;
        assert_int_not_equal(events_publish(&ev, &err), 0);
        assert_non_null(strstr(err.msg, "no audit sink could record"));
        ev.type = EV_API_RESPONSE;
        assert_int_not_equal(events_publish(&ev, &err), 0);
        audit_free(a);
    }
    /* No sink at all: no audit, nothing refused. */
    o.file_path = NULL;
    assert_int_equal(audit_open(&o, &a, &err), 0);
    assert_int_equal(audit_sink_count(a), 0);
    ev.type = EV_API_REQUEST;
    assert_int_equal(events_publish(&ev, &err), 0);
    audit_free(a);
    store_close(&st);
}

/* ---- asynchronous windows (the server's requests wait for their lines suspended) ---------- */

struct done_rec {
    pthread_mutex_t mu;
    int calls;
    int result;
    char msg[RK_ERRMSG_MAX];
};

static void
on_done(void *arg, int result, const char *msg)
{
    struct done_rec *d = arg;

    pthread_mutex_lock(&d->mu);
    d->calls++;
    d->result = result;
    snprintf(d->msg, sizeof(d->msg), "%s", msg);
    pthread_mutex_unlock(&d->mu);
}

/* Waits up to 10 s for the completion; returns its call count. */
static int
done_wait(struct done_rec *d)
{
    int n = 0;

    for (int i = 0; i < 1000 && n == 0; i++) {
        pthread_mutex_lock(&d->mu);
        n = d->calls;
        pthread_mutex_unlock(&d->mu);
        if (n == 0)
            usleep(10000);
    }
    return n;
}

static void
test_async_window(void **state)
{
    struct fx *f = *state;
    struct store st;
    struct audit *a = NULL;
    struct audit_opts o = {0};
    struct rk_error err = {0};
    struct done_rec d = {.calls = 0};
    struct rk_event ev = {.type = EV_API_REQUEST,
                          .request_id = "r-async-1",
                          .operation = "read",
                          .path = "secret/data/app/async",
                          .actor = "token-ci"};
    char bad[200], *buf, *req_at, *resp_at;
    size_t len;

    pthread_mutex_init(&d.mu, NULL);
    store_open(f, &st, 1);
    o.file_path = f->path;
    o.br = st.br;
    assert_int_equal(audit_open(&o, &a, &err), 0);
    assert_int_equal(audit_async_wanted(), 1);

    /* The request and the response of one window: one completion, once both are written, in
     * their order. */
    audit_async_begin(on_done, &d);
    assert_int_equal(audit_async_pending(), 0);
    assert_int_equal(events_publish(&ev, &err), 0);
    assert_int_equal(audit_async_pending(), 1);
    ev.type = EV_API_RESPONSE;
    ev.status = 200;
    assert_int_equal(events_publish(&ev, &err), 0);
    audit_async_end();
    assert_int_equal(done_wait(&d), 1);
    assert_int_equal(d.result, 0);
    buf = slurp(f->path, &len);
    req_at = strstr(buf, "\"type\":\"request\",\"request_id\":\"r-async-1\"");
    resp_at = strstr(buf, "\"type\":\"response\",\"request_id\":\"r-async-1\"");
    assert_non_null(req_at);
    assert_non_null(resp_at);
    assert_true(req_at < resp_at);
    free(buf);
    assert_int_equal(verify_one(f->path), 0);
    usleep(50000);
    assert_int_equal(d.calls, 1); /* exactly once */
    audit_free(a);

    /* A sink that cannot write: the window's completion says so (the server answers 500). */
    snprintf(bad, sizeof(bad), "%s/missing/audit.log", f->dir);
    o.file_path = bad;
    assert_int_equal(audit_open(&o, &a, &err), 0);
    d.calls = 0;
    audit_async_begin(on_done, &d);
    ev.type = EV_API_REQUEST;
    assert_int_equal(events_publish(&ev, &err), 0); /* queued: the failure comes later */
    assert_int_equal(audit_async_pending(), 1);
    audit_async_end();
    assert_int_equal(done_wait(&d), 1);
    assert_int_not_equal(d.result, 0);
    assert_non_null(strstr(d.msg, "no audit sink could record the request"));
    audit_free(a);

    /* No sink: nothing is queued and the completion is never called. */
    o.file_path = NULL;
    assert_int_equal(audit_open(&o, &a, &err), 0);
    assert_int_equal(audit_async_wanted(), 0);
    d.calls = 0;
    audit_async_begin(on_done, &d);
    assert_int_equal(events_publish(&ev, &err), 0);
    assert_int_equal(audit_async_pending(), 0);
    audit_async_end();
    usleep(20000);
    assert_int_equal(d.calls, 0);
    audit_free(a);
    store_close(&st);
    pthread_mutex_destroy(&d.mu);
}

static void
test_devices_in_store(void **state)
{
    struct fx *f = *state;
    struct store st;
    struct audit *a = NULL;
    struct audit_opts o = {0};
    struct rk_error err = {0};
    char dpath[200];
    json_t *list = NULL;
    size_t n = 0;
    struct rk_event ev = {
        .type = EV_LOCAL_OP, .operation = "kv put", .path = "secret/x", .actor = "alice"};

    snprintf(dpath, sizeof(dpath), "%s/dev.log", f->dir);
    store_open(f, &st, 1);
    o.br = st.br;
    assert_int_equal(audit_open(&o, &a, &err), 0);
    assert_int_equal(audit_device_enable(a, "file/", "file", "test", dpath, &err), 0);
    assert_int_equal(audit_device_enable(a, "file", "file", NULL, "/tmp/x", &err), -RK_EEXISTS);
    assert_int_equal(audit_device_enable(a, "f2", "syslog", NULL, "/tmp/x", &err), -RK_EINVAL);
    assert_int_equal(audit_device_enable(a, "f2", "file", NULL, "rel.log", &err), -RK_EINVAL);
    assert_int_equal(audit_device_enable(a, "f2", "file", NULL, dpath, &err), -RK_EINVAL);
    assert_int_equal(audit_device_enable(a, "../x", "file", NULL, "/tmp/y", &err), -RK_EINVAL);
    assert_int_equal(audit_device_list(a, &list, &err), 0);
    assert_non_null(json_object_get(list, "file/"));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(list, "file/"), "options"), "file_path")),
        dpath);
    json_decref(list);
    assert_int_equal(events_publish(&ev, &err), 0);
    audit_free(a);

    /* A new process: the device comes back from the store. */
    assert_int_equal(audit_devices_stored(st.br, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(audit_open(&o, &a, &err), 0);
    assert_int_equal(audit_sink_count(a), 0);
    assert_int_equal(audit_devices_load(a, &err), 0);
    assert_int_equal(audit_sink_count(a), 1);
    assert_true(audit_device_exists(a, "file/"));
    ev.outcome = "ok";
    assert_int_equal(events_publish(&ev, &err), 0);
    assert_int_equal(audit_device_disable(a, "file", &err), 0);
    assert_int_equal(audit_device_disable(a, "file", &err), -RK_ENOTFOUND);
    assert_int_equal(audit_sink_count(a), 0);
    audit_free(a);
    assert_int_equal(audit_devices_stored(st.br, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(verify_one(dpath), 0);
    store_close(&st);
}

/* ---- queries -------------------------------------------------------------------------------- */

struct hits {
    int n;
    char last[512];
};

static int
on_hit(void *arg, const char *line, size_t len)
{
    struct hits *h = arg;
    h->n++;
    snprintf(h->last, sizeof(h->last), "%.*s", (int)len, line);
    return 0;
}

static int
query(const char *path, struct audit_query *q)
{
    struct rk_error err = {0};
    struct hits h = {0};
    int fd = open(path, O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(audit_query_prepare(q, &err), 0);
    assert_int_equal(audit_query_fd(q, fd, on_hit, &h, NULL, &err), 0);
    close(fd);
    return h.n;
}

static void
test_queries(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    struct audit_opts o = {0};
    struct rk_error err = {0};
    struct audit_query q;
    struct {
        int type;
        const char *op, *path, *actor;
        int status;
        int64_t t;
    } evs[] = {
        {EV_API_REQUEST, "read", "secret/data/app/db", "token-ci", 0, 1000},
        {EV_API_RESPONSE, "read", "secret/data/app/db", "token-ci", 200, 2000},
        {EV_API_RESPONSE, "update", "secret/data/app/other", "token-ci", 403, 3000},
        {EV_LOCAL_OP, "kv get", "secret/app/db", "alice", 0, 4000},
        {EV_API_RESPONSE, "update", "rekey/rotate/secret/app/db", "token-ops", 200, 5000},
        {EV_API_RESPONSE, "read", "secret/data/application", "token-ci", 500, 6000},
    };

    o.file_path = f->path;
    assert_int_equal(audit_open(&o, &a, &err), 0);
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        struct rk_event ev = {.type = (enum rk_event_type)evs[i].type,
                              .operation = evs[i].op,
                              .path = evs[i].path,
                              .actor = evs[i].actor,
                              .status = evs[i].status,
                              .time_us = 1765000000000000LL + evs[i].t * 1000000};
        assert_int_equal(events_publish(&ev, &err), 0);
    }
    audit_free(a);

    memset(&q, 0, sizeof(q));
    assert_int_equal(query(f->path, &q), 6); /* everything but the header */
    memset(&q, 0, sizeof(q));
    q.path = "secret/app/db"; /* the CLI's, the API's and the rekey route's spelling */
    assert_int_equal(query(f->path, &q), 4);
    memset(&q, 0, sizeof(q));
    q.path = "secret/data/app";
    assert_int_equal(query(f->path, &q), 4); /* app/db twice, app/other, application */
    memset(&q, 0, sizeof(q));
    q.path = "secret/app/";
    assert_int_equal(query(f->path, &q), 5);
    memset(&q, 0, sizeof(q));
    q.errors = 1;
    assert_int_equal(query(f->path, &q), 2);
    memset(&q, 0, sizeof(q));
    q.actor = "alice";
    assert_int_equal(query(f->path, &q), 1);
    memset(&q, 0, sizeof(q));
    q.actor = "token-ci";
    q.op = "read";
    assert_int_equal(query(f->path, &q), 3);
    memset(&q, 0, sizeof(q));
    audit_time_format(1765000000000000LL + 3000 * 1000000LL, q.since);
    audit_time_format(1765000000000000LL + 5000 * 1000000LL, q.until);
    assert_int_equal(query(f->path, &q), 2);
    /* Time arguments. */
    assert_int_equal(audit_time_arg("2026-12-06", 0, q.since, &err), 0);
    assert_string_equal(q.since, "2026-12-06T00:00:00.000000Z");
    assert_int_equal(audit_time_arg("2026-12-06T15:00:00.5Z", 0, q.since, &err), 0);
    assert_string_equal(q.since, "2026-12-06T15:00:00.500000Z");
    assert_int_equal(audit_time_arg("1h", 7200000000LL, q.since, &err), 0);
    assert_string_equal(q.since, "1970-01-01T01:00:00.000000Z");
    assert_int_equal(audit_time_arg("yesterday", 0, q.since, &err), -RK_EINVAL);
}

static void
test_escape(void **state)
{
    char out[64];
    size_t len = 0;
    (void)state;

    assert_int_equal(audit_json_escape(out, sizeof(out), &len, "a\"b\\c\n\x01\xff\xc3\xa9", 10), 0);
    out[len] = '\0';
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001\\ufffd\xc3\xa9");
    len = 0;
    assert_int_equal(audit_json_escape(out, 4, &len, "abcdef", 6), -RK_ELIMIT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_and_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_detects_at_the_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_fsyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_processes_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_continues_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_tail_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_fails_and_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_hmacs_and_fails_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices_in_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queries, setup, teardown),
        cmocka_unit_test(test_escape),
    };
    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
