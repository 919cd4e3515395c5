/* Unit tests for src/store on the SQLite backend: the backend.h contract every backend passes
 * (store_contract.h), then what is SQLite's own: its read cache, backend_open's locations,
 * corruption detection, fault injection in the VFS shim (fsync) and WAL crash copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/faulty.h"
#include "store/sqcache.h"
#include "store/sqlite.h"
#include "util/err.h"

#include "store_test.h"
#include "store_contract.h"

/* ---- the contract suite on SQLite ----------------------------------------------------------- */

static void
sq_stats(struct backend *b, struct contract_stats *st)
{
    uint64_t commits = 0, txns = 0;

    sqlite_backend_stats(b, &commits, &txns);
    st->commits = (int64_t)commits;
    st->txns = (int64_t)txns;
}

/* REKEY_FAULT=fsync:N goes to the VFS shim of the SQLite backend (it is not wrapped). */
static struct backend *
sq_open_fsync_fault(const struct fixture *fx, uint64_t nth)
{
    struct backend *b;
    char spec[32];

    snprintf(spec, sizeof(spec), "fsync:%llu", (unsigned long long)nth);
    b = open_faulted(fx->loc, spec);
    assert_string_equal(b->ops->name, "sqlite");
    return b;
}

static const struct contract_backend sqlite_contract = {
    .name = "sqlite",
    .stats = sq_stats,
    .open_fsync_fault = sq_open_fsync_fault,
    .keys_only_vlen = 0, /* sq_list reads no value column */
    .list_snapshot = 1,  /* the reader connection is in the list's read transaction */
};

static int
setup(void **state)
{
    return fixture_new(state, "store", "store.db", "sqlite", &sqlite_contract);
}

static int
teardown(void **state)
{
    return fixture_free(state);
}

/* ---- the read cache -------------------------------------------------------------------------- */

static struct sqcache_stats
cache_stats(struct backend *b)
{
    struct sqcache_stats st;

    sqlite_backend_cache_stats(b, &st);
    return st;
}

/* Handle a caches what it read; writes through handle b (another process, as far as a's cache
 * can tell: its own connection, its own cache) are seen by a's next read, whatever they are. */
static void
test_cache_two_handles(void **state)
{
    struct fixture *fx = *state;
    struct backend *a = must_open(fx->path), *b = must_open(fx->path);
    struct rk_error err = {0};
    struct store_op ops[2] = {
        {.kind = STORE_PUT, .key = "k", .val = "t1", .vlen = 2},
        {.kind = STORE_PUT, .key = "j", .val = "t1", .vlen = 2},
    };
    int64_t mr;

    assert_true(cache_stats(a).budget > 0);
    put_ok(a, "k", "v1", NULL);
    put_ok(a, "j", "w1", NULL);
    expect(a, "k", "v1");
    expect(a, "j", "w1");
    assert_true(cache_stats(a).fills >= 2);
    expect(a, "k", "v1");
    assert_true(cache_stats(a).hits >= 1); /* the second read came from the cache */

    put_ok(b, "k", "v2", NULL); /* foreign put */
    expect(a, "k", "v2");
    expect(a, "j", "w1");
    expect(b, "k", "v2");
    assert_int_equal(b->ops->txn(b, NULL, 0, ops, 2, NULL, &err), 0); /* foreign transaction */
    expect(a, "k", "t1");
    expect(a, "j", "t1");
    assert_int_equal(b->ops->del(b, "k", NULL, &err), 0); /* foreign delete */
    expect(a, "k", NULL);

    /* A foreign commit right before one of a's own: a's writer sees it, and a's cached j (read
     * before b wrote it) does not survive a's commit. */
    expect(a, "j", "t1");
    put_ok(b, "j", "w2", NULL);
    put_ok(a, "other", "x", NULL);
    expect(a, "j", "w2");

    /* a's own writes refresh what it has cached; b, which cached k too, follows. */
    put_ok(a, "k", "v3", NULL);
    expect(b, "k", "v3");
    mr = expect(a, "k", "v3");
    put_ok(a, "k", "v4", NULL);
    assert_true(expect(a, "k", "v4") > mr);
    expect(b, "k", "v4");
    assert_int_equal(a->ops->del(a, "k", NULL, &err), 0);
    expect(a, "k", NULL);
    expect(b, "k", NULL);
    backend_close(a);
    backend_close(b);
}

/* The read cache maps the WAL index (the -shm file) through a descriptor of its own. Closing it
 * would drop every POSIX lock this process holds on that file, SQLite's shared "DMS" lock (byte
 * 128, which tells a newcomer the index is in use) included: the next process to open the store
 * would then truncate and rebuild the index under this one (a daemon died of SIGBUS so). Another
 * process must still see that lock held while the store is open with its cache. */
static void
test_cache_keeps_sqlite_locks(void **state)
{
    struct fixture *fx = *state;
    struct backend *a = must_open(fx->path);
    char shm[200];
    struct flock fl;
    pid_t pid;
    int st = 0, fd;

    assert_true(cache_stats(a).budget > 0);
    put_ok(a, "k", "v1", NULL);
    expect(a, "k", "v1");
    snprintf(shm, sizeof(shm), "%s-shm", fx->path);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* another process: is a read lock held on the DMS byte? */
        fd = open(shm, O_RDWR | O_CLOEXEC);
        memset(&fl, 0, sizeof(fl));
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = 128;
        fl.l_len = 1;
        _exit(fd < 0 || fcntl(fd, F_GETLK, &fl) != 0 ? 2 : fl.l_type == F_UNLCK ? 1 : 0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* 1: the lock was gone */
    backend_close(a);
}

/* A compare that fails inside a batch leaves the cache with the value that stayed. */
static void
test_cache_failed_compare(void **state)
{
    struct fixture *fx = *state;
    struct backend *a = must_open(fx->path);
    struct rk_error err = {0};
    struct store_cmp c = {.key = "k", .mod_rev = 999};
    struct store_op op = {.kind = STORE_PUT, .key = "k", .val = "bad", .vlen = 3};

    put_ok(a, "k", "good", NULL);
    expect(a, "k", "good");
    assert_int_equal(a->ops->txn(a, &c, 1, &op, 1, NULL, &err), -RK_ECONFLICT);
    expect(a, "k", "good");
    backend_close(a);
}

/* A read inside a list's callback reads in the list's snapshot, which may be older than the
 * cache: it must not fill the cache with what was true then. */
struct cache_nested_arg {
    struct backend *b;
    int calls;
};

static int
cache_nested_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct cache_nested_arg *na = arg;
    struct rk_error err = {0};
    unsigned char *v = NULL;
    size_t vl = 0;

    (void)key, (void)val, (void)vlen, (void)mod_rev;
    if (na->calls++ > 0)
        return 0;
    put_ok(na->b, "k", "v2", NULL); /* committed while the list's read transaction is open */
    if (na->b->ops->get(na->b, "k", &v, &vl, NULL, &err) != 0)
        return -RK_EIO;
    free(v);
    return 0;
}

static void
test_cache_nested_read(void **state)
{
    struct fixture *fx = *state;
    struct backend *a = must_open(fx->path);
    struct rk_error err = {0};
    struct cache_nested_arg na = {.b = a};

    put_ok(a, "k", "v1", NULL);
    put_ok(a, "l/1", "x", NULL);
    put_ok(a, "l/2", "y", NULL);
    assert_int_equal(a->ops->list(a, "l/", NULL, 0, 0, cache_nested_cb, &na, &err), 0);
    assert_int_equal(na.calls, 2);
    expect(a, "k", "v2");
    backend_close(a);
}

/* REKEY_STORE_CACHE=0 turns the cache off; the store works the same. */
static void
test_cache_off(void **state)
{
    struct fixture *fx = *state;
    struct backend *a;

    setenv("REKEY_STORE_CACHE", "0", 1);
    a = must_open(fx->path);
    unsetenv("REKEY_STORE_CACHE");
    assert_int_equal(cache_stats(a).budget, 0);
    put_ok(a, "k", "v", NULL);
    expect(a, "k", "v");
    expect(a, "k", "v");
    assert_int_equal(cache_stats(a).hits, 0);
    backend_close(a);
}

/* Counters on CACHE_KEYS keys, incremented by compare-and-set from writer threads on two handles
 * while reader threads on both read them: no reader ever sees a counter go back (a stale cached
 * value after a newer one), and at the end both handles read every counter's final value. */
#define CACHE_KEYS 4
#define CACHE_WRITERS 4
#define CACHE_INCS 40
#define CACHE_READERS 3

struct cache_ctx {
    struct backend *h[2];
    int writers_left; /* under lock */
    pthread_mutex_t lock;
    long incs[CACHE_KEYS]; /* under lock */
};

struct cache_arg {
    struct cache_ctx *cx;
    int id;
};

static long
read_counter(struct backend *b, const char *key, int64_t *mr, int *err_out)
{
    struct rk_error err = {0};
    unsigned char *v = NULL;
    size_t vl = 0;
    char buf[32];
    int r = b->ops->get(b, key, &v, &vl, mr, &err);

    if (r == -RK_ENOTFOUND) {
        *mr = 0;
        return 0;
    }
    if (r != 0 || vl >= sizeof(buf)) {
        *err_out = 1;
        free(v);
        return -1;
    }
    memcpy(buf, v, vl);
    buf[vl] = '\0';
    free(v);
    return strtol(buf, NULL, 10);
}

static void *cache_writer_run(struct cache_arg *a);

/* Whatever the outcome, the readers learn that this writer stopped. */
static void *
cache_writer(void *p)
{
    struct cache_arg *a = p;
    void *ret = cache_writer_run(a);

    pthread_mutex_lock(&a->cx->lock);
    a->cx->writers_left--;
    pthread_mutex_unlock(&a->cx->lock);
    return ret;
}

static void *
cache_writer_run(struct cache_arg *a)
{
    struct backend *b = a->cx->h[a->id % 2];
    unsigned seed = (unsigned)a->id;

    for (int i = 0; i < CACHE_INCS; i++) {
        int k = (int)(rand_r(&seed) % CACHE_KEYS), bad = 0;
        char key[8], buf[32];

        snprintf(key, sizeof(key), "c%d", k);
        for (int tries = 0;; tries++) {
            struct rk_error err = {0};
            int64_t mr = 0;
            long cur = read_counter(b, key, &mr, &bad);
            struct store_cmp c = {.key = key, .mod_rev = mr};
            struct store_op op = {.kind = STORE_PUT, .key = key, .val = buf};
            int r;

            if (bad || tries > 100000) /* a stale read would make every compare fail */
                return (void *)1;
            snprintf(buf, sizeof(buf), "%ld", cur + 1);
            op.vlen = strlen(buf);
            r = b->ops->txn(b, &c, 1, &op, 1, NULL, &err);
            if (r == 0)
                break;
            if (r != -RK_ECONFLICT)
                return (void *)1;
        }
        pthread_mutex_lock(&a->cx->lock);
        a->cx->incs[k]++;
        pthread_mutex_unlock(&a->cx->lock);
    }
    return NULL;
}

static void *
cache_reader(void *p)
{
    struct cache_arg *a = p;
    struct backend *b = a->cx->h[a->id % 2];
    long seen[CACHE_KEYS] = {0};
    unsigned seed = (unsigned)a->id * 7919u;

    for (;;) {
        int k = (int)(rand_r(&seed) % CACHE_KEYS), bad = 0, left;
        char key[8];
        int64_t mr;
        long v;

        snprintf(key, sizeof(key), "c%d", k);
        v = read_counter(b, key, &mr, &bad);
        if (bad || v < seen[k])
            return (void *)1;
        seen[k] = v;
        pthread_mutex_lock(&a->cx->lock);
        left = a->cx->writers_left;
        pthread_mutex_unlock(&a->cx->lock);
        if (left == 0)
            return NULL;
    }
}

static void
test_cache_stress(void **state)
{
    struct fixture *fx = *state;
    struct cache_ctx cx = {.writers_left = CACHE_WRITERS};
    struct cache_arg wa[CACHE_WRITERS], ra[CACHE_READERS];
    pthread_t wt[CACHE_WRITERS], rt[CACHE_READERS];

    pthread_mutex_init(&cx.lock, NULL);
    cx.h[0] = must_open(fx->path);
    cx.h[1] = must_open(fx->path);
    for (int i = 0; i < CACHE_READERS; i++) {
        ra[i] = (struct cache_arg){.cx = &cx, .id = i};
        assert_int_equal(pthread_create(&rt[i], NULL, cache_reader, &ra[i]), 0);
    }
    for (int i = 0; i < CACHE_WRITERS; i++) {
        wa[i] = (struct cache_arg){.cx = &cx, .id = i};
        assert_int_equal(pthread_create(&wt[i], NULL, cache_writer, &wa[i]), 0);
    }
    for (int i = 0; i < CACHE_WRITERS; i++) {
        void *ret = NULL;
        pthread_join(wt[i], &ret);
        assert_null(ret);
    }
    for (int i = 0; i < CACHE_READERS; i++) {
        void *ret = NULL;
        pthread_join(rt[i], &ret);
        assert_null(ret);
    }
    for (int k = 0; k < CACHE_KEYS; k++) {
        char key[8], want[32];

        snprintf(key, sizeof(key), "c%d", k);
        snprintf(want, sizeof(want), "%ld", cx.incs[k]);
        if (cx.incs[k] > 0) {
            expect(cx.h[0], key, want);
            expect(cx.h[1], key, want);
        }
    }
    assert_true(cache_stats(cx.h[0]).hits + cache_stats(cx.h[1]).hits > 0);
    backend_close(cx.h[0]);
    backend_close(cx.h[1]);
    pthread_mutex_destroy(&cx.lock);
}

/* ---- locations and files -------------------------------------------------------------------- */

static void
test_locations(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = NULL;
    struct rk_error err = {0};
    char loc[256];

    snprintf(loc, sizeof(loc), "sqlite:%s", fx->path);
    b = must_open(loc);
    assert_string_equal(b->ops->name, "sqlite");
    put_ok(b, "k", "v", NULL);
    backend_close(b);
    b = must_open(fx->path);
    expect(b, "k", "v");
    backend_close(b);

    /* etcd's own cases are in test_etcdstore.c; a bad etcd location is refused at open */
    assert_int_equal(backend_open("etcd:ftp://127.0.0.1:2379", &b, &err), -RK_EINVAL);
    assert_null(b);
    assert_true(strstr(err.msg, "etcd") != NULL);
    assert_int_equal(backend_open("", &b, &err), -RK_EINVAL);
    assert_int_equal(backend_open("sqlite:", &b, &err), -RK_EINVAL);
    assert_int_equal(backend_open("/nonexistent-dir-rekey/x.db", &b, &err), -RK_ENOTFOUND);
    assert_int_equal(backend_open(fx->dir, &b, &err), -RK_EINVAL); /* a directory */

    assert_ptr_equal(backend_find("sqlite"), &sqlite_backend_ops);
    assert_non_null(backend_find("etcd"));
    assert_null(backend_find("nope"));

    setenv("REKEY_FAULT", "bogus", 1);
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_EINVAL);
    setenv("REKEY_FAULT", "txn:0", 1);
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_EINVAL);
    setenv("REKEY_FAULT", "txn:-1", 1);
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_EINVAL);
    unsetenv("REKEY_FAULT");
}

static void
test_garbage_file(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = NULL;
    struct rk_error err = {0};
    char junk[8192];

    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7 + 3);
    write_file(fx->path, junk, sizeof(junk));
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_ECORRUPT);
    assert_null(b);
    assert_true(strstr(err.msg, "corrupted or not a rekey store") != NULL);
    assert_true(strstr(err.msg, fx->path) != NULL);

    /* a few bytes only */
    write_file(fx->path, "hello", 5);
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_ECORRUPT);

    /* a valid SQLite database that is not a rekey store */
    {
        sqlite3 *db = NULL;
        unlink(fx->path);
        assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
        assert_int_equal(
            sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", NULL, NULL, NULL),
            SQLITE_OK);
        sqlite3_close(db);
        assert_int_equal(backend_open(fx->path, &b, &err), -RK_ECORRUPT);
        assert_true(strstr(err.msg, "not a rekey store") != NULL);
    }
}

static void
test_truncated_file(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->path);
    struct rk_error err = {0};
    char val[1024], key[32];
    struct stat st;

    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        struct store_op ops[1] = {{.kind = STORE_PUT, .key = key, .val = val, .vlen = 1000}};
        snprintf(key, sizeof(key), "key/%04d", i);
        assert_int_equal(b->ops->txn(b, NULL, 0, ops, 1, NULL, &err), 0);
    }
    backend_close(b); /* checkpoints the WAL into the file and removes it */
    assert_int_equal(stat(fx->path, &st), 0);
    assert_true(st.st_size > 100000);

    /* cut at a page boundary: looks fine to SQLite until a missing page is read */
    assert_int_equal(truncate(fx->path, (st.st_size / 2) & ~(off_t)4095), 0);
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_ECORRUPT);
    assert_true(strstr(err.msg, "truncated") != NULL);
    /* cut inside a page */
    assert_int_equal(truncate(fx->path, 5000), 0);
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_ECORRUPT);
    /* cut inside the header */
    assert_int_equal(truncate(fx->path, 60), 0);
    assert_int_equal(backend_open(fx->path, &b, &err), -RK_ECORRUPT);
}

/* ---- fault injection ------------------------------------------------------------------------ */

/* Copies src to dst (missing src: dst is removed). */
static void
copy_file(const char *src, const char *dst)
{
    char buf[65536];
    int in = open(src, O_RDONLY), out;
    ssize_t n;

    unlink(dst);
    if (in < 0)
        return;
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(out >= 0);
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

static void
test_fault_fsync(void **state)
{
    struct fixture *fx = *state;
    struct backend *b;
    struct rk_error err = {0};
    int64_t rev = 0;

    known_state(fx);
    b = open_faulted(fx->path, "fsync:1");
    assert_string_equal(b->ops->name, "sqlite"); /* fsync faults live in the VFS shim */
    struct store_op ops[] = {
        {.kind = STORE_PUT, .key = "k1", .val = "changed", .vlen = 7},
        {.kind = STORE_DELETE, .key = "k2"},
        {.kind = STORE_PUT, .key = "new", .val = "n", .vlen = 1},
    };
    assert_int_equal(b->ops->txn(b, NULL, 0, ops, 3, &rev, &err), -RK_EIO);
    /* nothing half-applied, in this process either */
    expect(b, "k1", "v1");
    expect(b, "k2", "v2");
    expect(b, "new", NULL);
    /* a crash right now: copy the files as they are on disk and recover the copy. The failed
     * commit's frames may be in the WAL; recovery must not bring them back. */
    {
        char src[192], dst[192];
        snprintf(src, sizeof(src), "%s-wal", fx->path);
        snprintf(dst, sizeof(dst), "%s/crash.db-wal", fx->dir);
        copy_file(src, dst);
        snprintf(dst, sizeof(dst), "%s/crash.db", fx->dir);
        copy_file(fx->path, dst);
        expect_known_state(dst);
    }
    backend_close(b);
    expect_known_state(fx->path);

    /* later fsyncs: whichever write owns the Nth fsync fails alone; the others land. How many
     * fsyncs a commit issues is SQLite's business (the first one after opening also syncs the
     * new WAL header), so the test finds the failing write rather than predicting it. */
    for (int nth = 2; nth <= 5; nth++) {
        static const char *keys[] = {"a", "b", "c", "d"};
        char spec[32];
        int failed = -1;

        unlink(fx->path);
        known_state(fx);
        snprintf(spec, sizeof(spec), "fsync:%d", nth);
        b = open_faulted(fx->path, spec);
        for (int i = 0; i < 4; i++) {
            int r = b->ops->put(b, keys[i], keys[i], 1, &rev, &err);
            if (r != 0) {
                assert_int_equal(r, -RK_EIO);
                assert_int_equal(failed, -1); /* only one */
                failed = i;
                /* crash now: the copy must recover without the failed write */
                char src[192], dst[192];
                snprintf(src, sizeof(src), "%s-wal", fx->path);
                snprintf(dst, sizeof(dst), "%s/crash.db-wal", fx->dir);
                copy_file(src, dst);
                snprintf(dst, sizeof(dst), "%s/crash.db", fx->dir);
                copy_file(fx->path, dst);
                struct backend *cb = must_open(dst);
                for (int j = 0; j < 4; j++)
                    expect(cb, keys[j], j < i ? keys[j] : NULL);
                backend_close(cb);
            }
        }
        assert_true(failed >= 0);
        backend_close(b);
        b = must_open(fx->path);
        for (int i = 0; i < 4; i++)
            expect(b, keys[i], i == failed ? NULL : keys[i]);
        expect(b, "k1", "v1");
        put_ok(b, "last", "x", &rev);
        assert_int_equal(rev, 2 + 4); /* k1, k2, three of a..d, then this one */
        backend_close(b);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_CONTRACT_TESTS(setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_two_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_keeps_sqlite_locks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_failed_compare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_nested_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_stress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_fsync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
