/* libFuzzer target: the KV metadata decoder (kv_meta_decode) and the secret-data canonicaliser
 * (kv_data_prepare_key). A decoded record must re-encode to JSON that decodes to the same encoding;
 * kv_data_prepare (with its fast path for canonical input) must give exactly what the jansson
 * path (kv_data_prepare_slow) gives. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed fingerprint key: the fast and the slow path must fingerprint the same bytes. */
static const struct fp_key *
fuzz_key(void)
{
    static struct fp_key *k;
    static const unsigned char raw[FP_KEY_LEN] = "kvjson-fuzzer fingerprint key..";

    if (k == NULL && fp_key_new(raw, sizeof(raw), &k) != 0)
        abort();
    return k;
}

/* Aborts unless kv_data_prepare_key and kv_data_prepare_slow agree on s: return code, error,
 * bytes, fingerprint. */
static void
check_prepare_paths(const struct secret *s)
{
    struct rk_error e1 = {0}, e2 = {0};
    struct secret *o1 = NULL, *o2 = NULL;
    char f1[FINGERPRINT_LEN + 1] = "", f2[FINGERPRINT_LEN + 1] = "";
    int r1 = kv_data_prepare_key(fuzz_key(), s, &o1, f1, &e1);
    int r2 = kv_data_prepare_slow(fuzz_key(), s, &o2, f2, &e2);

    if (r1 != r2 || e1.code != e2.code || strcmp(e1.msg, e2.msg) != 0 || strcmp(f1, f2) != 0)
        abort();
    if (r1 == 0 && (o1 == NULL || o2 == NULL || !secret_equal(o1, o2)))
        abort();
    if (r1 != 0 && (o1 != NULL || o2 != NULL))
        abort();
    secret_free(o1);
    secret_free(o2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_error err = {0};
    struct kv_meta *m = NULL, *m2 = NULL;
    struct secret *s, *canon = NULL;
    char fp[FINGERPRINT_LEN + 1];
    char *e1 = NULL, *e2 = NULL;
    size_t l1 = 0, l2 = 0;

    if (kv_meta_decode((const char *)data, size, &m, &err) == 0) {
        if (kv_meta_encode(m, &e1, &l1, &err) != 0)
            abort();
        if (kv_meta_decode(e1, l1, &m2, &err) != 0)
            abort();
        if (kv_meta_encode(m2, &e2, &l2, &err) != 0 || l1 != l2 || memcmp(e1, e2, l1) != 0)
            abort();
        /* The mutators keep the invariants the decoder checks. */
        if (m2->nversions > 0) {
            uint64_t v = m2->versions[m2->nversions - 1].version;
            (void)kv_meta_set_stage(m2, v, KV_STAGE_PREVIOUS, &err);
            (void)kv_meta_promote(m2, v, &err);
            free(e2);
            e2 = NULL;
            if (kv_meta_encode(m2, &e2, &l2, &err) != 0)
                abort();
            kv_meta_free(m);
            m = NULL;
            if (kv_meta_decode(e2, l2, &m, &err) != 0)
                abort();
        }
    }
    kv_meta_free(m);
    kv_meta_free(m2);
    free(e1);
    free(e2);

    if ((s = secret_from(data, size)) != NULL) {
        check_prepare_paths(s);
        if (kv_data_prepare_key(fuzz_key(), s, &canon, fp, &err) == 0) {
            check_prepare_paths(canon);
            struct secret *again = NULL;
            char fp2[FINGERPRINT_LEN + 1];
            /* Canonical form is a fixed point. */
            if (kv_data_prepare_key(fuzz_key(), canon, &again, fp2, &err) != 0 ||
                !secret_equal(canon, again) || strcmp(fp, fp2) != 0)
                abort();
            secret_free(again);
        }
        secret_free(canon);
        secret_free(s);
    }
    return 0;
}
