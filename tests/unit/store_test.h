/* store_test.h: helpers shared by the storage backends' unit tests (test_store.c for SQLite,
 * test_logstore.c for the log store): the fixture, opening a store, reads and writes that must
 * succeed, list callbacks, test values, the writer threads of the group-commit tests, a known
 * two-key state for the fault tests, and removing a test directory. Include it once, after
 * cmocka.h and the store headers; store_contract.h (the tests both backends must pass) builds
 * on it. */
#ifndef REKEY_TEST_STORE_TEST_H
#define REKEY_TEST_STORE_TEST_H

#define NTHREADS 8
#define PER_THREAD 40

struct contract_backend; /* store_contract.h */

/* One test's store: a fresh directory, the store file in it, and the location that opens the
 * file with the backend under test ("sqlite:PATH" or "log:PATH"). */
struct fixture {
    char dir[64];
    char path[128];
    char loc[160];
    const struct contract_backend *be;
};

struct worker {
    struct backend *b;
    int id;
    int64_t revs[PER_THREAD];
    int failures;
};

struct batch_worker {
    struct backend *b;
    int id;
    int result;
};

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* A fixture for a store named file in a new directory /tmp/rekey-test-NAME-XXXXXX, opened as
 * scheme:path. Returns 0, or -1 (*state unset). */
static int
fixture_new(void **state, const char *name, const char *file, const char *scheme,
            const struct contract_backend *be)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    if (fx == NULL)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/rekey-test-%s-XXXXXX", name);
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof(fx->path), "%s/%s", fx->dir, file);
    snprintf(fx->loc, sizeof(fx->loc), "%s:%s", scheme, fx->path);
    fx->be = be;
    unsetenv("REKEY_FAULT");
    *state = fx;
    return 0;
}

static int
fixture_free(void **state)
{
    struct fixture *fx = *state;

    unsetenv("REKEY_FAULT");
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static struct backend *
must_open(const char *loc)
{
    struct backend *b = NULL;
    struct rk_error err = {0};
    int r = backend_open(loc, &b, &err);

    if (r != 0)
        fail_msg("backend_open(%s): %d %s", loc, r, err.msg);
    return b;
}

/* Opens loc with REKEY_FAULT=spec, which backend_open reads once: the fault stays with the store
 * for its whole life, and the variable is unset again before this returns. */
static struct backend *
open_faulted(const char *loc, const char *spec)
{
    struct backend *b;

    setenv("REKEY_FAULT", spec, 1);
    b = must_open(loc);
    unsetenv("REKEY_FAULT");
    return b;
}

static void
put_ok(struct backend *b, const char *key, const char *val, int64_t *rev)
{
    struct rk_error err = {0};
    int r = b->ops->put(b, key, val, strlen(val), rev, &err);

    if (r != 0)
        fail_msg("put %s: %d %s", key, r, err.msg);
}

static void
putn_ok(struct backend *b, const char *key, const void *val, size_t vlen, int64_t *rev)
{
    struct rk_error err = {0};
    int r = b->ops->put(b, key, val, vlen, rev, &err);

    if (r != 0)
        fail_msg("put %s (%zu bytes): %d %s", key, vlen, r, err.msg);
}

/* Asserts key holds val (or is missing when val is NULL); returns its mod_rev. */
static int64_t
expect(struct backend *b, const char *key, const char *val)
{
    struct rk_error err = {0};
    unsigned char *v = NULL;
    size_t vl = 0;
    int64_t mr = -1;
    int r = b->ops->get(b, key, &v, &vl, &mr, &err);

    if (val == NULL) {
        if (r != -RK_ENOTFOUND)
            fail_msg("get %s: expected not found, got %d (%s)", key, r, err.msg);
        assert_null(v);
        return 0;
    }
    if (r != 0)
        fail_msg("get %s: %d %s", key, r, err.msg);
    assert_int_equal(vl, strlen(val));
    assert_memory_equal(v, val, vl);
    free(v);
    return mr;
}

/* A value of len bytes that tells key, version and position apart. */
static void
fill_value(unsigned char *buf, size_t len, int key, int version)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(key * 131 + version * 31 + i * 7 + (i >> 8));
}

/* Whether key holds the fill_value of (k, version, len); 1 when it does, 0 when not (printed). */
static int
holds_value(struct backend *b, const char *key, int k, int version, size_t len)
{
    struct rk_error err = {0};
    unsigned char *v = NULL, *want = malloc(len > 0 ? len : 1);
    size_t vl = 0;
    int r = b->ops->get(b, key, &v, &vl, NULL, &err), ok;

    assert_non_null(want);
    fill_value(want, len, k, version);
    ok = r == 0 && vl == len && memcmp(v, want, len) == 0;
    if (!ok)
        fprintf(stderr, "  %s: get returned %d (%s), %zu bytes, %s\n", key, r, err.msg, vl,
                r == 0 && vl == len ? "wrong content" : "want the value");
    free(v);
    free(want);
    return ok;
}

static void
write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

/* Remembers what a list gave (up to 32 keys). */
struct collect {
    char keys[32][64];
    char vals[32][64];
    int64_t revs[32];
    size_t vlens[32];
    int n;
    int stop_at; /* return 1 after this many (0 = never) */
    int fail_at; /* return -RK_ECANCELED after this many */
    int saw_null_val;
};

static int
collect_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct collect *c = arg;

    assert_true(c->n < 32);
    snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
    if (val == NULL)
        c->saw_null_val = 1;
    else
        snprintf(c->vals[c->n], sizeof(c->vals[0]), "%.*s", (int)vlen, (const char *)val);
    c->revs[c->n] = mod_rev;
    c->vlens[c->n] = vlen;
    c->n++;
    if (c->fail_at && c->n == c->fail_at)
        return -RK_ECANCELED;
    if (c->stop_at && c->n == c->stop_at)
        return 1;
    return 0;
}

/* Counts keys, checks they ascend, remembers the first and the last. */
struct walk {
    int n;
    int stop_at, fail_at;
    int unordered;
    char first[64], last[64];
};

static int
walk_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct walk *w = arg;

    (void)val, (void)vlen, (void)mod_rev;
    if (w->n > 0 && strcmp(key, w->last) <= 0)
        w->unordered++;
    if (w->n == 0)
        snprintf(w->first, sizeof(w->first), "%s", key);
    snprintf(w->last, sizeof(w->last), "%s", key);
    w->n++;
    if (w->fail_at && w->n == w->fail_at)
        return -RK_ECANCELED;
    if (w->stop_at && w->n == w->stop_at)
        return 1;
    return 0;
}

/* One compare-and-set increment of key (retrying on conflict). Returns 0 or the error. */
static int
cas_increment(struct backend *b, const char *key, long *newval)
{
    for (;;) {
        struct rk_error err = {0};
        unsigned char *v = NULL;
        size_t vl = 0;
        int64_t mr = 0;
        char buf[32];
        long cur = 0;
        int r = b->ops->get(b, key, &v, &vl, &mr, &err);

        if (r == 0) {
            snprintf(buf, sizeof(buf), "%.*s", (int)vl, (const char *)v);
            cur = strtol(buf, NULL, 10);
            free(v);
        } else if (r != -RK_ENOTFOUND) {
            return r;
        }
        snprintf(buf, sizeof(buf), "%ld", cur + 1);
        struct store_cmp c = {.key = key, .mod_rev = mr};
        struct store_op op = {.kind = STORE_PUT, .key = key, .val = buf, .vlen = strlen(buf)};
        r = b->ops->txn(b, &c, 1, &op, 1, NULL, &err);
        if (r == 0) {
            if (newval != NULL)
                *newval = cur + 1;
            return 0;
        }
        if (r != -RK_ECONFLICT)
            return r;
    }
}

static void *
writer_thread(void *arg)
{
    struct worker *w = arg;
    char key[64], val[64];

    for (int i = 0; i < PER_THREAD; i++) {
        struct rk_error err = {0};
        struct store_cmp cmp = {.key = key, .mod_rev = 0};
        struct store_op op = {.kind = STORE_PUT, .key = key, .val = val};

        snprintf(key, sizeof(key), "t%d/k%d", w->id, i);
        snprintf(val, sizeof(val), "v%d-%d", w->id, i);
        op.vlen = strlen(val);
        if (w->b->ops->txn(w->b, &cmp, 1, &op, 1, &w->revs[i], &err) != 0)
            w->failures++;
    }
    return NULL;
}

static void *
batch_thread(void *arg)
{
    struct batch_worker *w = arg;
    struct rk_error err = {0};
    char key[32];

    snprintf(key, sizeof(key), "batch/%d", w->id);
    w->result = w->b->ops->put(w->b, key, "v", 1, NULL, &err);
    return NULL;
}

/* Writes a known state into fx's store: k1=v1 (rev 1), k2=v2 (rev 2). */
static void
known_state(const struct fixture *fx)
{
    struct backend *b = must_open(fx->loc);

    put_ok(b, "k1", "v1", NULL);
    put_ok(b, "k2", "v2", NULL);
    backend_close(b);
}

/* Asserts the store at loc holds known_state's keys and nothing else, and that its next write
 * gets revision 3 (a failed write in between consumed none). */
static void
expect_known_state(const char *loc)
{
    struct backend *b = must_open(loc);
    struct rk_error err = {0};
    struct collect c;
    int64_t rev;

    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "", NULL, 0, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "k1");
    assert_string_equal(c.vals[0], "v1");
    assert_int_equal(c.revs[0], 1);
    assert_string_equal(c.keys[1], "k2");
    assert_string_equal(c.vals[1], "v2");
    assert_int_equal(c.revs[1], 2);
    put_ok(b, "k3", "v3", &rev);
    assert_int_equal(rev, 3);
    backend_close(b);
}

#endif
