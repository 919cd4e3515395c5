/* bench_kv.c: the KV engine (kv over the barrier over sqlite) with raw SQLite as the baseline
 * measured in the same run.
 *
 *   bench_kv DIR [SECONDS [get|put]]
 *
 * (get or put: only those measurements, e.g. under perf.) The put rows also give the group
 * commit's caller transactions per SQLite commit.
 *
 * For stores of 10,000 and 100,000 secrets (one api_key field each, loaded with large barrier
 * transactions): kv_get of random paths with 1 and 2 threads (ops/s, p50, p99; target 200,000/s
 * per thread), durable kv_put with 1, 2 and 8 writer threads (ops/s), and raw SQLite committing
 * one fsynced transaction per row (WAL, synchronous=FULL, one thread; target: 8-thread kv_put
 * at least 3x that). The target's verdict row runs the 8-writer puts twice more, each followed by
 * a baseline, and compares the median of the three put runs with the median of the four
 * baselines. Ends with the peak RSS (getrusage ru_maxrss). SECONDS (default 1) is the length of
 * each measurement. Output: Markdown table rows.
 *
 *   bench_kv --populate STORE N KEYFILE
 *
 * only creates the sqlite store STORE with N secrets at secret/bench/gGGG/sNNNNNN (GGG = N/1000)
 * and writes its root key to KEYFILE (hex, mode 0600), for bench/status.sh. */
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "store/logstore.h"
#include "store/sqlite.h"
#include "util/enc.h"
#include "util/err.h"
#include "util/parse.h"
#include "util/secret.h"

#include "bench_common.h"

#define MAX_THREADS 8
#define MAX_SAMPLES (1u << 21) /* latency samples kept per thread */
#define LOAD_BATCH 2000        /* secrets per loading transaction */
#define PATH_LEN 64

static double run_seconds = 1.0;
static const char *only; /* NULL, "get" or "put": run only those measurements (profiling) */

static void
bench_path(char *buf, size_t len, size_t i)
{
    snprintf(buf, len, "secret/bench/g%03zu/s%06zu", i / 1000, i);
}

/* A value shaped like a provider key: 'sk-proj-' + 48 characters. */
static struct secret *
bench_value(uint64_t i)
{
    char v[80];

    snprintf(v, sizeof(v), "sk-proj-%016" PRIx64 "_%031" PRIu64,
             (uint64_t)(i * 0x9e3779b97f4a7c15ull), i);
    return secret_from_str(v);
}

struct worker {
    struct kv *kv;
    int id, nthreads;
    size_t nkeys;
    uint64_t ops, errors;
    uint32_t *lat;
    size_t nlat;
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
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)w->id << 32 | 7), end;
    char path[PATH_LEN];

    for (int i = 0; i < 2000; i++) { /* warm up: this thread's read connection, caches */
        struct secret *d = NULL;
        bench_path(path, sizeof(path), xs_next(&seed) % w->nkeys);
        kv_get(w->kv, path, 0, &d, NULL, &err);
        secret_free(d);
    }
    pthread_barrier_wait(w->start);
    end = now_ns() + (uint64_t)(run_seconds * 1e9);
    for (;;) {
        struct secret *d = NULL;
        uint64_t t0 = now_ns(), t1;
        int r;

        if (t0 >= end)
            break;
        bench_path(path, sizeof(path), xs_next(&seed) % w->nkeys);
        r = kv_get(w->kv, path, 0, &d, NULL, &err);
        t1 = now_ns();
        secret_free(d);
        if (r != 0) {
            if (w->errors++ == 0)
                snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
            continue;
        }
        record(w, t1 - t0);
        w->ops++;
    }
    return NULL;
}

static void *
put_thread(void *arg)
{
    struct worker *w = arg;
    struct rk_error err = {0};
    uint64_t seed = 0xda942042e4dd58b5ull ^ ((uint64_t)w->id << 32 | 3), end, n = 0;
    char path[PATH_LEN];

    pthread_barrier_wait(w->start);
    end = now_ns() + (uint64_t)(run_seconds * 1e9);
    for (;;) {
        char json[160];
        struct secret *v, *data;
        uint64_t t0 = now_ns(), t1;
        int r;

        if (t0 >= end)
            break;
        /* Each thread writes its own residue class of paths: no two writers race on a path. */
        bench_path(
            path, sizeof(path),
            (size_t)((xs_next(&seed) % (w->nkeys / (size_t)w->nthreads)) * (size_t)w->nthreads +
                     (size_t)w->id));
        v = bench_value(++n + ((uint64_t)w->id << 40));
        snprintf(json, sizeof(json), "{\"api_key\":\"%.*s\"}", (int)v->len, (const char *)v->data);
        secret_free(v);
        data = secret_from_str(json);
        secure_wipe(json, sizeof(json));
        r = kv_put(w->kv, path, data, NULL, NULL, &err);
        secret_free(data);
        t1 = now_ns();
        if (r != 0) {
            if (w->errors++ == 0)
                snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
            continue;
        }
        record(w, t1 - t0);
        w->ops++;
    }
    return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

struct result {
    double ops_s;
    double p50_us, p99_us;
    uint64_t errors;
    double txns_per_commit; /* group commit: caller transactions per SQLite commit */
    double cpu_us;          /* process CPU time (user + system) per operation */
    double sys_us;          /* ... of which in the kernel */
    uint64_t compactions;   /* log store: compactions during the run */
};

/* Process CPU time in nanoseconds: *sys gets the kernel's part. */
static uint64_t
cpu_ns(uint64_t *sys)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    *sys = (uint64_t)ru.ru_stime.tv_sec * 1000000000u + (uint64_t)ru.ru_stime.tv_usec * 1000u;
    return *sys + (uint64_t)ru.ru_utime.tv_sec * 1000000000u +
           (uint64_t)ru.ru_utime.tv_usec * 1000u;
}

static int
run_threads(struct kv *kv, size_t nkeys, int nthreads, void *(*fn)(void *), struct result *res)
{
    struct worker w[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t start;
    uint32_t *all;
    size_t nall = 0;
    uint64_t ops = 0, t0, t1, c0, c1, s0, s1;

    memset(w, 0, sizeof(w));
    memset(res, 0, sizeof(*res));
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){
            .kv = kv, .id = i, .nthreads = nthreads, .nkeys = nkeys, .start = &start};
        w[i].lat = malloc(MAX_SAMPLES * sizeof(uint32_t));
        if (w[i].lat == NULL)
            return -1;
        pthread_create(&tid[i], NULL, fn, &w[i]);
    }
    pthread_barrier_wait(&start);
    t0 = now_ns();
    c0 = cpu_ns(&s0);
    for (int i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    t1 = now_ns();
    c1 = cpu_ns(&s1);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < nthreads; i++) {
        ops += w[i].ops;
        nall += w[i].nlat;
        res->errors += w[i].errors;
        if (w[i].errors > 0)
            fprintf(stderr, "bench_kv: %" PRIu64 " errors in a thread, first: %s\n", w[i].errors,
                    w[i].msg);
    }
    all = malloc((nall ? nall : 1) * sizeof(uint32_t));
    if (all == NULL)
        return -1;
    nall = 0;
    for (int i = 0; i < nthreads; i++) {
        memcpy(all + nall, w[i].lat, w[i].nlat * sizeof(uint32_t));
        nall += w[i].nlat;
        free(w[i].lat);
    }
    qsort(all, nall, sizeof(uint32_t), cmp_u32);
    res->ops_s = (double)ops / ((double)(t1 - t0) / 1e9);
    res->cpu_us = ops > 0 ? (double)(c1 - c0) / 1000.0 / (double)ops : 0;
    res->sys_us = ops > 0 ? (double)(s1 - s0) / 1000.0 / (double)ops : 0;
    if (nall > 0) {
        res->p50_us = all[nall / 2] / 1000.0;
        res->p99_us = all[(size_t)((double)nall * 0.99)] / 1000.0;
    }
    free(all);
    return 0;
}

/* The backend under test: $BENCH_BACKEND, "sqlite" (the default) or "log". */
static const char *backend_name = "sqlite";
/* $BENCH_PUT_THREADS: measure puts with only this many writers (for profiling), 0 = all. */
static int only_threads;

/* Group-commit counters of either durable backend. */
static void
commit_stats(struct backend *be, uint64_t *commits, uint64_t *txns)
{
    struct logstore_stats ls;

    sqlite_backend_stats(be, commits, txns);
    logstore_backend_stats(be, &ls);
    if (ls.commits > 0) {
        *commits = ls.commits;
        *txns = ls.txns;
    }
}

/* ", N compactions" for a log store run that compacted, else "". */
static const char *
compact_note(const struct result *res)
{
    static char buf[48];

    if (res->compactions == 0)
        return "";
    snprintf(buf, sizeof(buf), ", %" PRIu64 " compaction%s", res->compactions,
             res->compactions == 1 ? "" : "s");
    return buf;
}

/* Creates a store at path with a random root key and nkeys secrets. */
static int
make_store(const char *path, size_t nkeys, const char *keyfile, struct backend **be,
           struct barrier **br, struct kv **kv, double *load_s)
{
    struct rk_error err = {0};
    struct secret *root = secret_new(ROOT_KEY_LEN);
    struct barrier_txn *t = NULL;
    char loc[600], p[PATH_LEN];
    uint64_t t0;
    int r = -1;

    snprintf(loc, sizeof(loc), "%s:%s", backend_name, path);
    if (root == NULL || RAND_bytes(root->data, ROOT_KEY_LEN) != 1)
        goto out;
    if (keyfile != NULL) {
        char hex[2 * ROOT_KEY_LEN + 1];
        int fd = open(keyfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ssize_t w;

        if (fd < 0) {
            rk_error_set(&err, RK_EIO, "cannot create key file %s", keyfile);
            goto out;
        }
        hex_encode(root->data, ROOT_KEY_LEN, hex);
        hex[2 * ROOT_KEY_LEN] = '\n';
        w = write(fd, hex, sizeof(hex));
        secure_wipe(hex, sizeof(hex));
        if (close(fd) != 0 || w != (ssize_t)sizeof(hex)) {
            rk_error_set(&err, RK_EIO, "cannot write key file %s", keyfile);
            goto out;
        }
    }
    if ((r = backend_open(loc, be, &err)) != 0 || (r = barrier_open(*be, br, &err)) != 0 ||
        (r = barrier_init(*br, root, "{\"type\":\"keyfile\"}", &err)) != 0 ||
        (r = kv_open(*br, kv, &err)) != 0)
        goto out;
    t0 = now_ns();
    for (size_t i = 0; i < nkeys; i++) {
        struct kv_meta *m = kv_meta_new();
        struct secret *v = bench_value(i), *data = NULL;
        char fp[FINGERPRINT_LEN + 1];
        uint64_t ver = 0;

        if (t == NULL && (t = barrier_txn_new(*br)) == NULL)
            r = -RK_ENOMEM;
        else if (m == NULL || v == NULL)
            r = -RK_ENOMEM;
        else if ((r = kv_data_single(*kv, "api_key", v, &data, fp, &err)) == 0 &&
                 (r = kv_meta_add_version(m, KV_STAGE_CURRENT, "bench", NULL, fp, &ver, &err)) ==
                     0) {
            bench_path(p, sizeof(p), i);
            r = kv_stage_put(*kv, t, p, m, 0, ver, data, &err);
        }
        secret_free(v);
        secret_free(data);
        kv_meta_free(m);
        if (r != 0)
            goto out;
        if ((i + 1) % LOAD_BATCH == 0 || i + 1 == nkeys) {
            if ((r = barrier_txn_commit(t, NULL, &err)) != 0)
                goto out;
            barrier_txn_free(t);
            t = NULL;
        }
    }
    *load_s = (double)(now_ns() - t0) / 1e9;
    r = 0;
out:
    if (r != 0)
        fprintf(stderr, "bench_kv: creating %s: %s\n", path, err.msg[0] ? err.msg : "failed");
    barrier_txn_free(t);
    secret_free(root);
    return r;
}

/* Opens path as the raw baselines' database: WAL, synchronous=FULL, the store's table. */
static int
raw_open(const char *path, sqlite3 **db)
{
    return sqlite3_open(path, db) != SQLITE_OK ||
                   sqlite3_exec(*db,
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT "
                                "NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;",
                                NULL, NULL, NULL) != SQLITE_OK
               ? -1
               : 0;
}

/* The baseline: raw SQLite, WAL, synchronous=FULL, one INSERT (its own fsynced transaction) per
 * row, one thread, values the size of a sealed secret. */
static int
raw_sqlite(const char *path, struct result *res)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    unsigned char val[160];
    uint64_t end, t0, n = 0;
    int r = -1;

    memset(res, 0, sizeof(*res));
    memset(val, 0xa5, sizeof(val));
    if (raw_open(path, &db) != 0 ||
        sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", -1, &st, NULL) !=
            SQLITE_OK) {
        fprintf(stderr, "bench_kv: raw sqlite: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    t0 = now_ns();
    end = t0 + (uint64_t)(run_seconds * 1e9);
    while (now_ns() < end) {
        char key[64];
        snprintf(key, sizeof(key), "kv/data/secret/raw/s%08" PRIu64 "@1", n);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, val, sizeof(val), SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)n);
        if (sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "bench_kv: raw sqlite: %s\n", sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_reset(st);
        n++;
    }
    res->ops_s = (double)n / ((double)(now_ns() - t0) / 1e9);
    r = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}

/* The matched baseline: the same table holding nkeys rows (keys shaped like the store's), each
 * transaction one fsynced update of a random existing row. Unlike raw_sqlite, whose appends all
 * land on one hot page, this pays what a random write pays in any B-tree (a leaf per commit,
 * checkpoints of scattered pages), so it isolates what group commit adds. */
static int
raw_sqlite_random(const char *path, size_t nkeys, struct result *res)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL, *upd = NULL;
    unsigned char val[160];
    uint64_t end, t0, n = 0, seed = 0x9e3779b97f4a7c15ull;
    char key[80];
    int r = -1;

    memset(res, 0, sizeof(*res));
    memset(val, 0x5a, sizeof(val));
    if (raw_open(path, &db) != 0 ||
        sqlite3_prepare_v2(db, "INSERT INTO kv VALUES (?, ?, ?)", -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE kv SET value = ?2, mod_rev = ?3 WHERE key = ?1", -1, &upd,
                           NULL) != SQLITE_OK)
        goto fail;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < nkeys; i++) {
        snprintf(key, sizeof(key), "kv/data/secret/bench/g%03zu/s%06zu@1", i / 1000, i);
        sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 2, val, sizeof(val), SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, 1);
        if (sqlite3_step(ins) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(ins);
    }
    if (sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL) != SQLITE_OK)
        goto fail;
    t0 = now_ns();
    end = t0 + (uint64_t)(run_seconds * 1e9);
    while (now_ns() < end) {
        size_t i = (size_t)(xs_next(&seed) % nkeys);
        snprintf(key, sizeof(key), "kv/data/secret/bench/g%03zu/s%06zu@1", i / 1000, i);
        val[n % sizeof(val)]++;
        sqlite3_bind_text(upd, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(upd, 2, val, sizeof(val), SQLITE_STATIC);
        sqlite3_bind_int64(upd, 3, (sqlite3_int64)n + 2);
        if (sqlite3_step(upd) != SQLITE_DONE)
            goto fail;
        sqlite3_reset(upd);
        n++;
    }
    res->ops_s = (double)n / ((double)(now_ns() - t0) / 1e9);
    r = 0;
    goto out;
fail:
    fprintf(stderr, "bench_kv: raw sqlite (random): %s\n", sqlite3_errmsg(db));
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(upd);
    sqlite3_close(db);
    return r;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The median of v[0..n) (sorts v). */
static double
median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The 8-writer target's verdict: two more 8-writer runs, each followed by a baseline run, then
 * the median of the three put runs against the median of the four baselines (the disk is shared
 * and noisy: one pair of runs can land on either side of the target). Prints one row. */
static int
verdict_8(struct kv *kv, size_t nkeys, const char *dir, double put8, double before, double after)
{
    double p[3] = {put8, 0, 0}, b[4] = {before, after, 0, 0}, mp, mb;
    struct result x;
    char path[512];

    for (int i = 1; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/raw-%zu-%d.db", dir, nkeys, i);
        if (run_threads(kv, nkeys, 8, put_thread, &x) != 0)
            return -1;
        p[i] = x.ops_s;
        if (raw_sqlite(path, &x) != 0)
            return -1;
        b[i + 1] = x.ops_s;
    }
    printf("| %zu | 8-thread kv_put, median of 3 runs (%.0f, %.0f, %.0f) against the median of "
           "4 baselines (%.0f, %.0f, %.0f, %.0f) |",
           nkeys, p[0], p[1], p[2], b[0], b[1], b[2], b[3]);
    mp = median(p, 3);
    mb = median(b, 4);
    printf(" 8 | %.0f | | | | ≥ 3× baseline (%.0f/s): %s (%.2f×) |\n", mp, mb,
           mb > 0 && mp >= 3 * mb ? "met" : "MISSED", mb > 0 ? mp / mb : 0);
    fflush(stdout);
    return 0;
}

static long
peak_rss_kib(void)
{
    struct rusage ru;

    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

int
main(int argc, char **argv)
{
    static const size_t sizes[] = {10000, 100000};
    static const int get_threads[] = {1, 2}, put_threads[] = {1, 2, 8};
    char path[512];
    int rc = 0;

    if (argc == 5 && strcmp(argv[1], "--populate") == 0) {
        struct backend *be = NULL;
        struct barrier *br = NULL;
        struct kv *kv = NULL;
        double load_s = 0;
        int64_t n;

        secure_heap_init();
        if (parse_int64(argv[3], 1, 10000000, &n) != 0) {
            fprintf(stderr, "bench_kv: N must be 1..10000000\n");
            return 2;
        }
        rc = make_store(argv[2], (size_t)n, argv[4], &be, &br, &kv, &load_s) != 0;
        kv_free(kv);
        barrier_free(br);
        backend_close(be);
        return rc;
    }
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: bench_kv DIR [SECONDS [get|put]]\n");
        return 2;
    }
    if (argc == 4)
        only = argv[3];
    if (argc >= 3) {
        int64_t ms;
        if (parse_int64(argv[2], 1, 60, &ms) != 0) {
            fprintf(stderr, "bench_kv: SECONDS must be 1..60\n");
            return 2;
        }
        run_seconds = (double)ms;
    }
    secure_heap_init();
    if (getenv("BENCH_BACKEND") != NULL)
        backend_name = getenv("BENCH_BACKEND");
    if (getenv("BENCH_PUT_THREADS") != NULL) {
        int64_t t;

        if (parse_int64(getenv("BENCH_PUT_THREADS"), 1, 8, &t) != 0) {
            fprintf(stderr, "bench_kv: BENCH_PUT_THREADS must be 1..8\n");
            return 2;
        }
        only_threads = (int)t;
    }
    if (strcmp(backend_name, "sqlite") != 0 && strcmp(backend_name, "log") != 0) {
        fprintf(stderr, "bench_kv: BENCH_BACKEND must be sqlite or log\n");
        return 2;
    }
    printf("store backend: %s\n\n", backend_name);
    printf("| secrets | measurement | threads | ops/s | per thread | p50 µs | p99 µs | target |\n"
           "|---:|---|---:|---:|---:|---:|---:|---|\n");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        struct backend *be = NULL;
        struct barrier *br = NULL;
        struct kv *kv = NULL;
        struct result res, base, put[3], put8 = {0};
        double load_s = 0, base_before = 0, base_after = 0;

        snprintf(path, sizeof(path), "%s/kv-%zu.db", argv[1], sizes[s]);
        if (make_store(path, sizes[s], NULL, &be, &br, &kv, &load_s) != 0) {
            rc = 1;
            goto next;
        }
        printf("| %zu | load (txns of %d secrets) | 1 | %.0f | | | | |\n", sizes[s], LOAD_BATCH,
               (double)sizes[s] / load_s);
        for (size_t k = 0; k < 2 && (only == NULL || strcmp(only, "get") == 0); k++) {
            if (run_threads(kv, sizes[s], get_threads[k], get_thread, &res) != 0) {
                rc = 1;
                goto next;
            }
            printf("| %zu | kv_get random path | %d | %.0f | %.0f | %.1f | %.1f | ≥ 200,000/s "
                   "per thread: %s |\n",
                   sizes[s], get_threads[k], res.ops_s, res.ops_s / get_threads[k], res.p50_us,
                   res.p99_us, res.ops_s / get_threads[k] >= 200000 ? "met" : "MISSED");
            fflush(stdout);
        }
        if (only != NULL && strcmp(only, "put") != 0)
            goto next;
        /* The baseline runs before and after the puts (the disk is shared and noisy); the
         * ratios use the faster of the two, so they are the conservative ones. */
        snprintf(path, sizeof(path), "%s/raw-%zu-a.db", argv[1], sizes[s]);
        if (raw_sqlite(path, &base) != 0) {
            rc = 1;
            goto next;
        }
        base_before = base.ops_s;
        for (size_t k = 0; k < 3; k++) {
            uint64_t c0, x0, c1, x1;
            struct logstore_stats ls0, ls1;

            if (only_threads > 0 && put_threads[k] != only_threads) {
                memset(&put[k], 0, sizeof(put[k]));
                continue;
            }
            commit_stats(be, &c0, &x0);
            logstore_backend_stats(be, &ls0);
            if (run_threads(kv, sizes[s], put_threads[k], put_thread, &put[k]) != 0) {
                rc = 1;
                goto next;
            }
            commit_stats(be, &c1, &x1);
            logstore_backend_stats(be, &ls1);
            put[k].txns_per_commit = c1 > c0 ? (double)(x1 - x0) / (double)(c1 - c0) : 0;
            put[k].compactions = ls1.compactions - ls0.compactions;
        }
        snprintf(path, sizeof(path), "%s/raw-%zu-b.db", argv[1], sizes[s]);
        if (raw_sqlite(path, &base) != 0) {
            rc = 1;
            goto next;
        }
        base_after = base.ops_s;
        if (base_before > base.ops_s)
            base.ops_s = base_before;
        for (size_t k = 0; k < 3; k++) {
            res = put[k];
            printf("| %zu | kv_put durable | %d | %.0f | %.0f | %.0f | %.0f | %.2f× baseline "
                   "(%.1f txns/commit, %.0f µs CPU/put, %.0f in the kernel%s) |\n",
                   sizes[s], put_threads[k], res.ops_s, res.ops_s / put_threads[k], res.p50_us,
                   res.p99_us, base.ops_s > 0 ? res.ops_s / base.ops_s : 0, res.txns_per_commit,
                   res.cpu_us, res.sys_us, compact_note(&res));
        }
        put8 = put[2];
        printf("| %zu | raw SQLite put, 1 fsynced txn/row (baseline: before %.0f, after %.0f) "
               "| 1 | %.0f | %.0f | | | 8-thread kv_put / this: %.2f× |\n",
               sizes[s], base_before, base_after, base.ops_s, base.ops_s,
               base.ops_s > 0 ? put8.ops_s / base.ops_s : 0);
        if (put8.ops_s > 0 &&
            verdict_8(kv, sizes[s], argv[1], put8.ops_s, base_before, base_after) != 0) {
            rc = 1;
            goto next;
        }
        snprintf(path, sizeof(path), "%s/rawrand-%zu.db", argv[1], sizes[s]);
        if (raw_sqlite_random(path, sizes[s], &base) != 0) {
            rc = 1;
            goto next;
        }
        printf("| %zu | raw SQLite update of a random one of %zu rows, 1 fsynced txn/row "
               "(matched baseline) | 1 | %.0f | %.0f | | | 8-thread kv_put / this: %.2f× |\n",
               sizes[s], sizes[s], base.ops_s, base.ops_s,
               base.ops_s > 0 ? put8.ops_s / base.ops_s : 0);
        fflush(stdout);
    next:
        kv_free(kv);
        barrier_free(br);
        backend_close(be);
    }
    printf("\npeak RSS (ru_maxrss): %ld KiB\n", peak_rss_kib());
    return rc;
}
