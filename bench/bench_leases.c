/* bench_leases.c: the lease manager (engine/leases.h) at a million leases, rekey alone: the
 * revocations go to a no-op plug-in (struct lease_ops whose revoke and renew return 0), so what
 * is measured is the manager and the store. In one run, on the store backend given:
 *   1. N lease records written in transactions of 5,000 (not timed: the setup);
 *   2. restore: leases_load of all N (what a restart costs) and the memory it takes per lease
 *      (VmRSS before and after, after malloc_trim);
 *   3. expiry throughput: EXP of them were written already expired; the expiry thread and its
 *      worker pool revoke them (a store read and a batched delete each);
 *   4. revoke-prefix of one role's PREFIX_N leases (batches of 1,000 per store transaction),
 *      and the longest leases_lookup seen meanwhile from another thread (reads are not blocked).
 * Usage: bench_leases STORE_LOCATION [N] (e.g. sqlite:/tmp/x/leases.db, log:/tmp/x/leases.log);
 * the store must not exist. Prints one Markdown row. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "engine/leases.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#include "bench_common.h"

#define ROOT_KEY_LEN 32
#define ROLES 10
#define TXN 5000

static int
noop_revoke(void *ctx, const struct lease_info *l, struct rk_error *err)
{
    (void)ctx, (void)l, (void)err;
    return 0;
}

static int
noop_renew(void *ctx, const struct lease_info *l, int64_t expires, struct rk_error *err)
{
    (void)ctx, (void)l, (void)expires, (void)err;
    return 0;
}

static double
cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kb;
}

static void
rand_tail(char *out, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[64];

    (void)RAND_bytes(r, (int)n);
    for (size_t i = 0; i < n; i++)
        out[i] = a[r[i] % 62];
    out[n] = '\0';
}

struct reader {
    struct leases *m;
    const char *id;
    volatile int stop;
    double worst;
    long n;
};

static void *
reader_main(void *arg)
{
    struct reader *rd = arg;

    while (!rd->stop) {
        struct lease_info l;
        struct rk_error e = {0};
        double t0 = now_s(), dt;
        (void)leases_lookup(rd->m, rd->id, &l, &e);
        dt = now_s() - t0;
        if (dt > rd->worst)
            rd->worst = dt;
        rd->n++;
        usleep(1000);
    }
    return NULL;
}

static int
first_id(void *arg, const struct lease_info *li)
{
    snprintf(arg, LEASE_ID_MAX + 1, "%s", li->id);
    return 1;
}

int
main(int argc, char **argv)
{
    struct rk_error err = {0};
    struct backend *b = NULL;
    struct barrier *br = NULL;
    struct secret *root = NULL;
    struct leases *m = NULL;
    struct lease_ops ops = {noop_revoke, noop_renew, NULL};
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1000000, nexp, nprefix = 0;
    long rss0, rss1;
    double t0, c0, t_load, c_load, t_exp, t_prefix;
    size_t total, irr, ok = 0, bad = 0;
    time_t now = time(NULL);

    if (argc < 2 || n <= 0) {
        fprintf(stderr, "usage: bench_leases STORE_LOCATION [N]\n");
        return 2;
    }
    nexp = n / 5;
    if ((root = secret_new(ROOT_KEY_LEN)) == NULL || RAND_bytes(root->data, ROOT_KEY_LEN) != 1 ||
        backend_open(argv[1], &b, &err) != 0 || barrier_open(b, &br, &err) != 0 ||
        barrier_init(br, root, "{}", &err) != 0) {
        fprintf(stderr, "bench_leases: %s\n", err.msg);
        return 1;
    }
    /* 1. the records: the first nexp expired, the rest in an hour, over ROLES roles. */
    for (long i = 0; i < n;) {
        struct barrier_txn *t = barrier_txn_new(br);
        for (long k = 0; k < TXN && i < n; k++, i++) {
            struct lease_info l;
            char key[LEASE_ID_MAX + 16], *text = NULL, tail[25];
            memset(&l, 0, sizeof(l));
            rand_tail(tail, 24);
            if (i < nexp)
                snprintf(l.id, sizeof(l.id), "database/creds/bench-exp/%s", tail);
            else
                snprintf(l.id, sizeof(l.id), "database/creds/bench-%ld/%s", i % ROLES, tail);
            snprintf(l.db, sizeof(l.db), "pg");
            snprintf(l.role, sizeof(l.role), "%s", i < nexp ? "bench-exp" : "bench");
            snprintf(l.username, sizeof(l.username), "v-bench-%ld-%s", i, tail);
            snprintf(l.accessor, sizeof(l.accessor), "acc%04ld", i % 1000);
            l.issued = now - 60;
            l.expires = i < nexp ? now - 10 : now + 3600;
            l.max_expires = now + 7200;
            if (i >= nexp && i % ROLES == 0)
                nprefix++;
            snprintf(key, sizeof(key), "lease/%s", l.id);
            if (leases_record_encode(&l, &text) != 0 ||
                barrier_txn_put(t, key, text, strlen(text)) != 0) {
                fprintf(stderr, "bench_leases: out of memory\n");
                return 1;
            }
            free(text);
        }
        if (barrier_txn_commit(t, NULL, &err) != 0) {
            fprintf(stderr, "bench_leases: writing: %s\n", err.msg);
            return 1;
        }
        barrier_txn_free(t);
    }
    /* 2. restore */
    fprintf(stderr, "bench_leases: loading\n");
    if (getenv("BENCH_LEASES_PAUSE") != NULL)
        sleep(2); /* time to attach a profiler */
    malloc_trim(0);
    rss0 = rss_kb();
    t0 = now_s();
    c0 = cpu_s();
    if (leases_open(br, &ops, &m, &err) != 0 || leases_load(m, &err) != 0) {
        fprintf(stderr, "bench_leases: load: %s\n", err.msg);
        return 1;
    }
    t_load = now_s() - t0;
    c_load = cpu_s() - c0;
    malloc_trim(0);
    rss1 = rss_kb();
    /* 3. expiry */
    t0 = now_s();
    if (leases_start(m, &err) != 0) {
        fprintf(stderr, "bench_leases: %s\n", err.msg);
        return 1;
    }
    for (;;) {
        leases_count(m, &total, &irr);
        if ((long)total <= n - nexp)
            break;
        usleep(2000);
    }
    t_exp = now_s() - t0;
    /* 4. revoke-prefix of bench-0 with a reader of another role's lease meanwhile */
    {
        struct reader rd = {m, NULL, 0, 0, 0};
        char other[LEASE_ID_MAX + 1] = "";
        pthread_t th;
        leases_each(m, "database/creds/bench-1/", first_id, other); /* another role's */
        rd.id = other;
        pthread_create(&th, NULL, reader_main, &rd);
        t0 = now_s();
        if (leases_revoke_prefix(m, "database/creds/bench-0/", 0, &ok, &bad, &err) != 0)
            fprintf(stderr, "bench_leases: revoke-prefix: %s\n", err.msg);
        t_prefix = now_s() - t0;
        rd.stop = 1;
        pthread_join(th, NULL);
        printf("| %s | %ld | %.0f | %.2f (cpu %.2f) | %.0f | %.2f (%zu leases, %.0f/s) | %.1f |\n",
               strncmp(argv[1], "log:", 4) == 0 ? "log" : "sqlite", n,
               (double)(rss1 - rss0) * 1024.0 / (double)n, t_load, c_load, (double)nexp / t_exp,
               t_prefix, ok, (double)ok / t_prefix, rd.worst * 1000.0);
    }
    if ((long)ok != nprefix)
        fprintf(stderr, "bench_leases: revoke-prefix revoked %zu of %ld\n", ok, nprefix);
    leases_close(m);
    barrier_free(br);
    backend_close(b);
    secret_free(root);
    return bad == 0 ? 0 : 1;
}
