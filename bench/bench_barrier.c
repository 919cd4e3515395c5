/* bench_barrier.c: what the encryption barrier costs on top of the backend, measured in the same
 * run: raw backend gets (the baseline) against barrier_get (get + AES-256-GCM open into the
 * secure heap) for 100-byte values, on 1 and 2 threads, and durable barrier_put on 1 thread.
 *
 *   bench_barrier DIR [SECONDS]
 *
 * DIR must exist; the store is created in it as bench-barrier.db and removed at the end.
 * SECONDS (default 1) is the length of each measurement. */
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#include "bench_common.h"

#define NKEYS 10000
#define VAL_LEN 100
#define BATCH 500 /* puts per transaction while loading: the plaintexts sit in the secure heap */

static double run_seconds = 1.0;

enum mode { RAW_GET, BARRIER_GET, BARRIER_PUT };

struct worker {
    struct backend *b;
    struct barrier *br;
    enum mode mode;
    int id;
    uint64_t ops;
    int failed;
    char msg[RK_ERRMSG_MAX];
    pthread_barrier_t *start;
};

static int
one_op(struct worker *w, uint64_t *seed, struct rk_error *err)
{
    static const unsigned char val[VAL_LEN] = {1};
    char key[64];
    int r;

    snprintf(key, sizeof(key), "bench/key/%06" PRIu64, xs_next(seed) % NKEYS);
    if (w->mode == RAW_GET) {
        unsigned char *v = NULL;
        size_t vl = 0;
        r = w->b->ops->get(w->b, key, &v, &vl, NULL, err);
        free(v);
    } else if (w->mode == BARRIER_GET) {
        struct secret *v = NULL;
        r = barrier_get(w->br, key, &v, NULL, err);
        secret_free(v);
    } else {
        r = barrier_put(w->br, key, val, sizeof(val), err);
    }
    return r;
}

static void *
run_worker(void *arg)
{
    struct worker *w = arg;
    struct rk_error err = {0};
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)w->id << 32 | 1);
    double end;

    for (int i = 0; i < 1000 && w->mode != BARRIER_PUT; i++) /* warm up */
        if (one_op(w, &seed, &err) != 0)
            goto fail;
    pthread_barrier_wait(w->start);
    end = now_s() + run_seconds;
    do {
        for (int i = 0; i < 100; i++, w->ops++)
            if (one_op(w, &seed, &err) != 0)
                goto fail;
    } while (now_s() < end);
    return NULL;
fail:
    w->failed = 1;
    snprintf(w->msg, sizeof(w->msg), "%s", err.msg);
    return NULL;
}

static int
measure(const char *label, struct backend *b, struct barrier *br, enum mode mode, int nthreads)
{
    struct worker w[8];
    pthread_t th[8];
    pthread_barrier_t start;
    double t0, dt;
    uint64_t total = 0;

    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        w[i] = (struct worker){.b = b, .br = br, .mode = mode, .id = i, .start = &start};
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    pthread_barrier_wait(&start);
    t0 = now_s();
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    dt = now_s() - t0;
    pthread_barrier_destroy(&start);
    for (int i = 0; i < nthreads; i++) {
        if (w[i].failed) {
            fprintf(stderr, "bench_barrier: %s: %s\n", label, w[i].msg);
            return -1;
        }
        total += w[i].ops;
    }
    printf("%-34s threads=%d  %10.0f ops/s  %10.0f ops/s/thread\n", label, nthreads, total / dt,
           total / dt / nthreads);
    return 0;
}

int
main(int argc, char **argv)
{
    struct backend *b = NULL;
    struct barrier *br = NULL;
    struct secret *root = NULL;
    struct rk_error err = {0};
    char path[4096], side[4200];
    int rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_barrier DIR [SECONDS]\n");
        return 2;
    }
    if (argc == 3 && (run_seconds = strtod(argv[2], NULL)) <= 0) {
        fprintf(stderr, "bench_barrier: SECONDS must be a positive number\n");
        return 2;
    }
    secure_heap_init();
    snprintf(path, sizeof(path), "%s/bench-barrier.db", argv[1]);
    unlink(path);
    if ((root = secret_new(ROOT_KEY_LEN)) == NULL || RAND_bytes(root->data, ROOT_KEY_LEN) != 1)
        goto out;
    if (backend_open(path, &b, &err) != 0 || barrier_open(b, &br, &err) != 0 ||
        barrier_init(br, root, "{}", &err) != 0) {
        fprintf(stderr, "bench_barrier: %s\n", err.msg);
        goto out;
    }
    for (int i = 0; i < NKEYS; i += BATCH) {
        struct barrier_txn *t = barrier_txn_new(br);
        unsigned char val[VAL_LEN];
        char key[64];
        int r = t != NULL ? 0 : -RK_ENOMEM;

        memset(val, 'v', sizeof(val));
        for (int j = i; j < i + BATCH && j < NKEYS && r == 0; j++) {
            snprintf(key, sizeof(key), "bench/key/%06d", j);
            r = barrier_txn_put(t, key, val, sizeof(val));
        }
        if (r == 0)
            r = barrier_txn_commit(t, NULL, &err);
        barrier_txn_free(t);
        if (r != 0) {
            fprintf(stderr, "bench_barrier: loading: %s\n", err.msg);
            goto out;
        }
    }
    printf("# %d keys, %d-byte values, %.1f s per measurement\n", NKEYS, VAL_LEN, run_seconds);
    if (measure("backend get (baseline)", b, br, RAW_GET, 1) != 0 ||
        measure("barrier_get", b, br, BARRIER_GET, 1) != 0 ||
        measure("backend get (baseline)", b, br, RAW_GET, 2) != 0 ||
        measure("barrier_get", b, br, BARRIER_GET, 2) != 0 ||
        measure("barrier_put (durable)", b, br, BARRIER_PUT, 1) != 0)
        goto out;
    rc = 0;
out:
    barrier_free(br);
    backend_close(b);
    secret_free(root);
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    return rc;
}
