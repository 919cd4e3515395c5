/* bench_pgcreate.c: the baseline of bench/database.sh: raw libpq CREATE ROLE with a client-side
 * SCRAM-SHA-256 verifier (PQencryptPasswordConn, as rekey does), THREADS connections in
 * parallel for SECONDS; prints "logins/s p50_ms p99_ms". The admin password comes from libpq's
 * own PGPASSFILE (never argv). Each thread's logins are named raw-<thread>-<n>; they are left in
 * the (temporary) cluster.
 * Usage: bench_pgcreate CONNINFO [THREADS] [SECONDS] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bench_common.h"

#define MAXOPS 200000

struct worker {
    const char *conninfo;
    int id;
    double end;
    double *lat;
    long n;
    int failed;
};

static void *
worker_main(void *arg)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct worker *w = arg;
    PGconn *c = PQconnectdb(w->conninfo);

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_pgcreate: %s", PQerrorMessage(c));
        w->failed = 1;
        PQfinish(c);
        return NULL;
    }
    while (w->n < MAXOPS) {
        unsigned char r[32];
        char pw[33], name[64], sql[512], *ver;
        double t0 = now_s();
        PGresult *res;
        if (t0 >= w->end)
            break;
        (void)RAND_bytes(r, sizeof(r));
        for (size_t i = 0; i < 32; i++)
            pw[i] = a[r[i] % 62];
        pw[32] = '\0';
        snprintf(name, sizeof(name), "raw-%d-%ld-%ld", w->id, (long)time(NULL), w->n);
        if ((ver = PQencryptPasswordConn(c, pw, name, "scram-sha-256")) == NULL) {
            w->failed = 1;
            break;
        }
        snprintf(sql, sizeof(sql),
                 "CREATE ROLE \"%s\" WITH LOGIN PASSWORD '%s' VALID UNTIL '2099-01-01 00:00:00+00'",
                 name, ver);
        OPENSSL_cleanse(pw, sizeof(pw));
        OPENSSL_cleanse(ver, strlen(ver));
        PQfreemem(ver);
        res = PQexec(c, sql);
        OPENSSL_cleanse(sql, sizeof(sql));
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "bench_pgcreate: %s", PQresultErrorMessage(res));
            PQclear(res);
            w->failed = 1;
            break;
        }
        PQclear(res);
        w->lat[w->n++] = now_s() - t0;
    }
    PQfinish(c);
    return NULL;
}

static int
cmp_d(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int
main(int argc, char **argv)
{
    int nt = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    double secs = argc > 3 ? strtod(argv[3], NULL) : 10, t0, el;
    struct worker w[64];
    pthread_t th[64];
    double *all;
    long total = 0, k = 0;
    int failed = 0;

    if (argc < 2 || nt < 1 || nt > 64 || secs <= 0) {
        fprintf(stderr, "usage: bench_pgcreate CONNINFO [THREADS] [SECONDS]\n");
        return 2;
    }
    t0 = now_s();
    for (int i = 0; i < nt; i++) {
        w[i] = (struct worker){argv[1], i, t0 + secs, calloc(MAXOPS, sizeof(double)), 0, 0};
        if (w[i].lat == NULL)
            return 1;
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < nt; i++) {
        pthread_join(th[i], NULL);
        total += w[i].n;
        failed |= w[i].failed;
    }
    el = now_s() - t0;
    if ((all = calloc((size_t)total + 1, sizeof(double))) == NULL)
        return 1;
    for (int i = 0; i < nt; i++) {
        memcpy(all + k, w[i].lat, (size_t)w[i].n * sizeof(double));
        k += w[i].n;
        free(w[i].lat);
    }
    qsort(all, (size_t)total, sizeof(double), cmp_d);
    printf("%.1f %.2f %.2f\n", (double)total / el, total ? all[total / 2] * 1000 : 0,
           total ? all[(size_t)((double)total * 0.99)] * 1000 : 0);
    free(all);
    return failed;
}
