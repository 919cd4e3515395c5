/* store_test.h: helpers shared by the storage backends' unit tests (test_store.c for SQLite,
 * test_logstore.c for the log store): opening a store, a put that must succeed, the writer
 * threads of the group-commit tests, and removing a test directory. Include it once, after
 * cmocka.h and the store headers. */
#ifndef REKEY_TEST_STORE_TEST_H
#define REKEY_TEST_STORE_TEST_H

#define NTHREADS 8
#define PER_THREAD 40

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

static void
put_ok(struct backend *b, const char *key, const char *val, int64_t *rev)
{
    struct rk_error err = {0};
    int r = b->ops->put(b, key, val, strlen(val), rev, &err);

    if (r != 0)
        fail_msg("put %s: %d %s", key, r, err.msg);
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

#endif
