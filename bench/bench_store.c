/* bench_store.c: the storage backend's throughput and latency, with raw SQLite as the baseline
 * measured in the same run.
 *
 *   bench_store DIR [SECONDS]
 *
 * For 10,000 and 100,000 keys (256-byte values, the size of a sealed small secret): gets with 1
 * and 2 threads, durable puts through the backend (group commit) with 1, 2 and 8 writer threads,
 * and raw SQLite with the same pragmas committing one fsynced transaction per row on one thread.
 * SECONDS (default 1) is the length of each measurement. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/sqlite.h"
#include "util/err.h"

#include "bench_common.h"

#define VAL_LEN 256
#define MAX_SAMPLES (1u << 20) /* latency samples kept per thread */
#define MAX_THREADS 8

static double run_seconds = 1.0;

struct worker {
    struct backend *b;
    int id;
    size_t nkeys;
    uint64_t ops;
    uint32_t *lat; /* ns, capped */
    size_t nlat;
    int failed;
    char msg[RK_ERRMSG_MAX];
    pthread_barrier_t *start;
};

static void
record(struct worker *w, uint64_t ns)
{
    if (w->nlat < MAX_SAMPLES)
        w->lat[w->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void *
get_thread(void *arg)
{
    struct worker *w = arg;
    struct rk_error err = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)w->id << 32 | 1), end;
    char key[64];

    /* warm up: opens this thread's read connection, fills caches */
    for (int i = 0; i < 2000; i++) {
        unsigned char *v = NULL;
        size_t vl;
        snprintf(key, sizeof(key), "bench/key/%08" PRIu64, xs_next(&seed) % w->nkeys);
        if (w->b->ops->get(w->b, key, &v, &vl, NULL, &err) != 0) {
            w->failed = 1;
            snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
            return NULL;
        }
        free(v);
    }
    pthread_barrier_wait(w->start);
    end = now_ns() + (uint64_t)(run_seconds * 1e9);
    for (;;) {
        unsigned char *v = NULL;
        size_t vl;
        uint64_t t0, t1;

        snprintf(key, sizeof(key), "bench/key/%08" PRIu64, xs_next(&seed) % w->nkeys);
        t0 = now_ns();
        if (w->b->ops->get(w->b, key, &v, &vl, NULL, &err) != 0) {
            w->failed = 1;
            snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
            return NULL;
        }
        t1 = now_ns();
        free(v);
        record(w, t1 - t0);
        w->ops++;
        if (t1 >= end)
            break;
    }
    return NULL;
}

static unsigned char value[VAL_LEN];

static void *
put_thread(void *arg)
{
    struct worker *w = arg;
    struct rk_error err = {0};
    uint64_t end, i = 0;
    char key[64];

    pthread_barrier_wait(w->start);
    end = now_ns() + (uint64_t)(run_seconds * 1e9);
    for (;;) {
        uint64_t t0, t1;

        snprintf(key, sizeof(key), "bench/put/%d/%08" PRIu64, w->id, i++);
        t0 = now_ns();
        if (w->b->ops->put(w->b, key, value, sizeof(value), NULL, &err) != 0) {
            w->failed = 1;
            snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
            return NULL;
        }
        t1 = now_ns();
        record(w, t1 - t0);
        w->ops++;
        if (t1 >= end)
            break;
    }
    return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

struct result {
    double ops_per_s;
    double p50_us, p99_us;
};

/* Runs fn on nthreads threads and summarises throughput and latency. Returns 0 or -1. */
static int
run_threads(struct backend *b, size_t nkeys, int nthreads, void *(*fn)(void *), struct result *res)
{
    struct worker w[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    pthread_barrier_t start;
    uint64_t t0, t1, ops = 0;
    uint32_t *all = NULL;
    size_t nall = 0;
    int r = -1;

    memset(w, 0, sizeof(w));
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        w[i].b = b;
        w[i].id = i;
        w[i].nkeys = nkeys;
        w[i].start = &start;
        if ((w[i].lat = malloc(MAX_SAMPLES * sizeof(uint32_t))) == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        pthread_create(&th[i], NULL, fn, &w[i]);
    }
    pthread_barrier_wait(&start);
    t0 = now_ns();
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    t1 = now_ns();
    pthread_barrier_destroy(&start);
    for (int i = 0; i < nthreads; i++) {
        if (w[i].failed) {
            fprintf(stderr, "bench: thread %d failed: %s\n", i, w[i].msg);
            goto out;
        }
        ops += w[i].ops;
        nall += w[i].nlat;
    }
    if ((all = malloc((nall ? nall : 1) * sizeof(uint32_t))) == NULL)
        goto out;
    nall = 0;
    for (int i = 0; i < nthreads; i++) {
        memcpy(all + nall, w[i].lat, w[i].nlat * sizeof(uint32_t));
        nall += w[i].nlat;
    }
    qsort(all, nall, sizeof(uint32_t), cmp_u32);
    res->ops_per_s = (double)ops / ((double)(t1 - t0) / 1e9);
    res->p50_us = nall ? all[nall / 2] / 1000.0 : 0;
    res->p99_us = nall ? all[(size_t)((double)nall * 0.99)] / 1000.0 : 0;
    r = 0;
out:
    for (int i = 0; i < nthreads; i++)
        free(w[i].lat);
    free(all);
    return r;
}

/* The baseline: raw SQLite, same schema and pragmas, one BEGIN/INSERT/COMMIT per row. */
static int
raw_sqlite_put(const char *path, size_t nkeys, struct result *res)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL, *begin = NULL, *commit = NULL;
    uint32_t *lat = malloc(MAX_SAMPLES * sizeof(uint32_t));
    uint64_t t0, t1, end, n = 0;
    size_t nlat = 0;
    int r = -1;

    if (lat == NULL || sqlite3_open(path, &db) != SQLITE_OK)
        goto out;
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                     "PRAGMA secure_delete = ON;"
                     "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY NOT NULL,"
                     " value BLOB NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO kv VALUES (?1, ?2, ?3)", -1, &ins, NULL) ||
        sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) ||
        sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL)) {
        fprintf(stderr, "bench: raw sqlite: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    /* the same number of keys already present as in the backend's store */
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; i < nkeys; i++) {
        char key[64];
        snprintf(key, sizeof(key), "bench/key/%08zu", i);
        sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 2, value, sizeof(value), SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, 1);
        sqlite3_step(ins);
        sqlite3_reset(ins);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench: raw sqlite: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    t0 = now_ns();
    end = t0 + (uint64_t)(run_seconds * 1e9);
    for (;;) {
        char key[64];
        uint64_t a, z;

        snprintf(key, sizeof(key), "bench/raw/%08" PRIu64, n);
        a = now_ns();
        sqlite3_step(begin);
        sqlite3_reset(begin);
        sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 2, value, sizeof(value), SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, (int64_t)n + 1);
        if (sqlite3_step(ins) != SQLITE_DONE || sqlite3_step(commit) != SQLITE_DONE) {
            fprintf(stderr, "bench: raw sqlite: %s\n", sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_reset(ins);
        sqlite3_reset(commit);
        z = now_ns();
        if (nlat < MAX_SAMPLES)
            lat[nlat++] = (uint32_t)(z - a);
        n++;
        if (z >= end)
            break;
    }
    t1 = now_ns();
    qsort(lat, nlat, sizeof(uint32_t), cmp_u32);
    res->ops_per_s = (double)n / ((double)(t1 - t0) / 1e9);
    res->p50_us = lat[nlat / 2] / 1000.0;
    res->p99_us = lat[(size_t)((double)nlat * 0.99)] / 1000.0;
    r = 0;
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    free(lat);
    return r;
}

/* Loads nkeys keys in batches of 5,000 per transaction. */
static int
populate(struct backend *b, size_t nkeys)
{
    enum { BATCH = 5000 };
    struct store_op *ops = calloc(BATCH, sizeof(*ops));
    char(*keys)[32] = calloc(BATCH, sizeof(*keys));
    struct rk_error err = {0};
    int r = -1;

    if (ops == NULL || keys == NULL)
        goto out;
    for (size_t done = 0; done < nkeys;) {
        size_t n = nkeys - done < BATCH ? nkeys - done : BATCH;
        for (size_t i = 0; i < n; i++) {
            snprintf(keys[i], sizeof(keys[i]), "bench/key/%08zu", done + i);
            ops[i] = (struct store_op){
                .kind = STORE_PUT, .key = keys[i], .val = value, .vlen = sizeof(value)};
        }
        if (b->ops->txn(b, NULL, 0, ops, n, NULL, &err) != 0) {
            fprintf(stderr, "bench: populate: %s\n", err.msg);
            goto out;
        }
        done += n;
    }
    r = 0;
out:
    free(ops);
    free(keys);
    return r;
}

static void
row(size_t nkeys, const char *what, int threads, const struct result *r, const char *extra)
{
    printf("%-8zu %-26s %7d %12.0f %9.1f %9.1f  %s\n", nkeys, what, threads, r->ops_per_s,
           r->p50_us, r->p99_us, extra);
}

int
main(int argc, char **argv)
{
    static const size_t sizes[] = {10000, 100000};
    static const int getthreads[] = {1, 2};
    static const int putthreads[] = {1, 2, 8};
    char path[4096];
    int rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_store DIR [SECONDS]\n");
        return 2;
    }
    if (argc == 3) {
        char *end;
        errno = 0;
        run_seconds = strtod(argv[2], &end);
        if (errno != 0 || *end != '\0' || run_seconds <= 0 || run_seconds > 600) {
            fprintf(stderr, "bench_store: SECONDS must be a number in (0, 600]\n");
            return 2;
        }
    }
    for (size_t i = 0; i < sizeof(value); i++)
        value[i] = (unsigned char)(i * 31 + 7);

    printf("rekey store benchmark: %.1f s per measurement, %d-byte values, SQLite %s\n",
           run_seconds, VAL_LEN, sqlite3_libversion());
    printf("%-8s %-26s %7s %12s %9s %9s\n", "keys", "operation", "threads", "ops/s", "p50 us",
           "p99 us");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        struct backend *b = NULL;
        struct rk_error err = {0};
        struct result res, base, best = {0};
        char extra[96];

        snprintf(path, sizeof(path), "%s/store-%zu.db", argv[1], sizes[s]);
        if (backend_open(path, &b, &err) != 0) {
            fprintf(stderr, "bench: %s\n", err.msg);
            goto out;
        }
        if (populate(b, sizes[s]) != 0)
            goto out;
        for (size_t t = 0; t < sizeof(getthreads) / sizeof(getthreads[0]); t++) {
            if (run_threads(b, sizes[s], getthreads[t], get_thread, &res) != 0)
                goto out;
            row(sizes[s], "get", getthreads[t], &res, "");
        }
        for (size_t t = 0; t < sizeof(putthreads) / sizeof(putthreads[0]); t++) {
            uint64_t c0, x0, c1, x1;

            sqlite_backend_stats(b, &c0, &x0);
            if (run_threads(b, sizes[s], putthreads[t], put_thread, &res) != 0)
                goto out;
            sqlite_backend_stats(b, &c1, &x1);
            snprintf(extra, sizeof(extra), "%.1f txns/commit",
                     c1 > c0 ? (double)(x1 - x0) / (double)(c1 - c0) : 0.0);
            row(sizes[s], "durable put (group commit)", putthreads[t], &res, extra);
            if (res.ops_per_s > best.ops_per_s)
                best = res;
        }
        backend_close(b);

        snprintf(path, sizeof(path), "%s/raw-%zu.db", argv[1], sizes[s]);
        if (raw_sqlite_put(path, sizes[s], &base) != 0)
            goto out;
        row(sizes[s], "raw SQLite put (baseline)", 1, &base, "one fsynced txn per row");
        printf("%-8zu ratio group-commit (best) / baseline: %.2fx\n", sizes[s],
               base.ops_per_s > 0 ? best.ops_per_s / base.ops_per_s : 0.0);
    }
    rc = 0;
out:
    return rc;
}
