/* bench_pki.c: the internal CA's issuance rate (pki_issue: a new leaf key, the CA key read from
 * the barrier, the certificate signed and encoded) with ecdsa-p256 leaves and an ecdsa-p256 CA,
 * for SECONDS, single-threaded. The openssl baseline (the same signing with the openssl tool)
 * runs beside it in bench/pki.sh.
 *
 *   bench_pki DIR [SECONDS]
 *
 * DIR must exist; the store is created in it as bench-pki.db and removed at the end. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "secrets/pki.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#include "bench_common.h"

int
main(int argc, char **argv)
{
    struct backend *b = NULL;
    struct barrier *br = NULL;
    struct secret *root = NULL;
    struct rk_error err = {0};
    struct pki_ca_opts co;
    const char *names[] = {"bench.test", "www.bench.test"};
    double secs = 2.0, t0, t;
    char path[4096];
    long n = 0;
    int rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_pki DIR [SECONDS]\n");
        return 2;
    }
    if (argc == 3 && (secs = strtod(argv[2], NULL)) <= 0) {
        fprintf(stderr, "bench_pki: SECONDS must be a positive number\n");
        return 2;
    }
    secure_heap_init();
    snprintf(path, sizeof(path), "%s/bench-pki.db", argv[1]);
    unlink(path);
    memset(&co, 0, sizeof(co));
    co.key_type = PKI_KEY_ECDSA_P256;
    if ((root = secret_new(ROOT_KEY_LEN)) == NULL || RAND_bytes(root->data, ROOT_KEY_LEN) != 1)
        goto out;
    if (backend_open(path, &b, &err) != 0 || barrier_open(b, &br, &err) != 0 ||
        barrier_init(br, root, "{}", &err) != 0 || pki_ca_init(br, &co, &err) != 0) {
        fprintf(stderr, "bench_pki: %s\n", err.msg);
        goto out;
    }
    t0 = now_s();
    do {
        struct pki_issue_req req = {.common_name = "bench.test",
                                    .alt_names = names,
                                    .nalt = 2,
                                    .key_type = PKI_KEY_ECDSA_P256,
                                    .ttl = 86400};
        struct pki_issued is;

        if (pki_issue(br, &req, &is, &err) != 0) {
            fprintf(stderr, "bench_pki: %s\n", err.msg);
            goto out;
        }
        pki_issued_clear(&is);
        n++;
        t = now_s() - t0;
    } while (t < secs);
    printf("internal CA pki_issue ecdsa-p256: %ld in %.2f s = %.0f certificates/s\n", n, t,
           (double)n / t);
    rc = 0;
out:
    barrier_free(br);
    backend_close(b);
    secret_free(root);
    unlink(path);
    return rc;
}
