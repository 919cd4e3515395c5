/* barrier-keys.c: the two store-wide keys kept behind the barrier beside the keyring: the
 * fingerprint key (core/fpkey: keyed fingerprints, util/enc.h) and the audit salt
 * (core/auditsalt: the audit log's HMACs). Formats and the reasons: the top of barrier.c. */
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/barrier-int.h"

/* ---- the fingerprint key -------------------------------------------------------------------- */

/* Draws a fresh fingerprint key: *raw (FP_KEY_LEN bytes, secret_free) and its record sealed under
 * kr's active data key (*blob, *blen, malloc'd). */
int
fpkey_make(const struct keyring *kr, struct secret **raw, unsigned char **blob, size_t *blen,
           struct rk_error *err)
{
    const struct kr_entry *e = keyring_find(kr, kr->active);
    struct secret *pt = NULL;
    int r;

    *raw = NULL;
    if (e == NULL)
        return rk_error_set(err, RK_EINTERNAL, "the keyring has no active key");
    if ((pt = secret_new(FPKEY_PLAIN)) == NULL || (*raw = secret_new(FP_KEY_LEN)) == NULL) {
        secret_free(pt);
        return rk_error_set(err, RK_ENOMEM, "fingerprint key: out of secure memory");
    }
    if (RAND_priv_bytes((*raw)->data, FP_KEY_LEN) != 1) {
        r = rk_error_set(err, RK_EINTERNAL, "the random generator failed");
        goto out;
    }
    pt->data[0] = FPKEY_FORMAT;
    memcpy(pt->data + 1, (*raw)->data, FP_KEY_LEN);
    r = envelope_seal(e->key, e->term, KEY_FPKEY, pt->data, pt->len, blob, blen, err);
out:
    secret_free(pt);
    if (r != 0) {
        secret_free(*raw);
        *raw = NULL;
    }
    return r;
}

/* Prepares raw (FP_KEY_LEN bytes) as the in-memory key *out. */
int
fpkey_prepare(const struct secret *raw, struct fp_key **out, struct rk_error *err)
{
    int r = fp_key_new(raw->data, raw->len, out);

    if (r == -RK_ENOMEM)
        return rk_error_set(err, RK_ENOMEM, "fingerprint key: out of memory");
    if (r != 0)
        return rk_error_set(err, RK_EINTERNAL, "OpenSSL has no HMAC-SHA256");
    return 0;
}

/* Reads core/fpkey and opens it with the data key of its term in kr. Returns 0 with *out,
 * -RK_ENOTFOUND (no record), -RK_ECORRUPT, -RK_EVERSION, -RK_EIO, -RK_ENOMEM. */
static int
fpkey_load(struct backend *b, const struct keyring *kr, struct fp_key **out, struct rk_error *err)
{
    const struct kr_entry *e;
    unsigned char *blob = NULL;
    struct secret *pt = NULL, *raw = NULL;
    size_t blen = 0;
    uint32_t term = 0;
    int r;

    *out = NULL;
    if ((r = b->ops->get(b, KEY_FPKEY, &blob, &blen, NULL, err)) != 0)
        goto out;
    if ((r = envelope_check(KEY_FPKEY, blob, blen, &term, err)) != 0)
        goto out;
    if ((e = keyring_find(kr, term)) == NULL) {
        r = rk_error_set(err, RK_ECORRUPT,
                         "core/fpkey is sealed under term %u, which the keyring "
                         "does not hold",
                         term);
        goto out;
    }
    if ((pt = secret_new(blen - OVERHEAD)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "fingerprint key: out of secure memory");
        goto out;
    }
    if ((r = envelope_open(e->key, KEY_FPKEY, blob, blen, pt->data)) != 0) {
        r = r == 1 ? rk_error_set(err, RK_ECORRUPT, "core/fpkey fails authentication")
                   : rk_error_set(err, -r, "opening core/fpkey failed in OpenSSL");
        goto out;
    }
    if (pt->len < 1 || pt->data[0] != FPKEY_FORMAT) {
        r = pt->len >= 1 && pt->data[0] > FPKEY_FORMAT
                ? rk_error_set(err, RK_EVERSION,
                               "core/fpkey was written by format %u; this rekey reads up to %d: "
                               "upgrade rekey",
                               pt->data[0], FPKEY_FORMAT)
                : rk_error_set(err, RK_ECORRUPT, "core/fpkey has a bad format");
        goto out;
    }
    if (pt->len != FPKEY_PLAIN) {
        r = rk_error_set(err, RK_ECORRUPT, "core/fpkey has a bad length");
        goto out;
    }
    if ((raw = secret_from(pt->data + 1, FP_KEY_LEN)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "fingerprint key: out of secure memory");
        goto out;
    }
    r = fpkey_prepare(raw, out, err);
out:
    secret_free(raw);
    secret_free(pt);
    free(blob);
    return r;
}

/* The store's fingerprint key under the keyring kr: loads it, or, for a store from before keyed
 * fingerprints, makes and stores one (compared absent; on losing that race, loads the winner's),
 * and then sets *made. *out is NULL (and 0 returned) when the record is absent and cannot be
 * written: see the top of this file. Other errors (a damaged record) fail. Caller holds wmu. */
int
fpkey_ensure(struct barrier *br, const struct keyring *kr, struct fp_key **out, int *made,
             struct rk_error *err)
{
    struct rk_error werr = {0};
    struct secret *raw = NULL;
    unsigned char *blob = NULL;
    size_t blen = 0;
    int r;

    if ((r = fpkey_load(br->b, kr, out, err)) != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    if ((r = fpkey_make(kr, &raw, &blob, &blen, err)) != 0)
        return r;
    {
        const struct store_cmp cmp = {KEY_FPKEY, 0};
        const struct store_op op = {STORE_PUT, KEY_FPKEY, blob, blen};
        r = br->b->ops->txn(br->b, &cmp, 1, &op, 1, NULL, &werr);
    }
    if (r == 0) {
        if ((r = fpkey_prepare(raw, out, err)) == 0)
            *made = 1;
    } else if (r == -RK_ECONFLICT) {
        r = fpkey_load(br->b, kr, out, err);
    } else {
        r = 0; /* no write access: unsealed without fingerprints */
    }
    secret_free(raw);
    free(blob);
    return r;
}

struct fp_key *
barrier_fp_key(struct barrier *br)
{
    struct fp_key *k = NULL;

    if (br == NULL)
        return NULL;
    pthread_rwlock_rdlock(&br->lock);
    if (br->kr != NULL)
        k = fp_key_ref(br->fpk);
    pthread_rwlock_unlock(&br->lock);
    return k;
}

int
barrier_fp_key_take_new(struct barrier *br)
{
    return br != NULL && atomic_exchange(&br->fpk_new, 0) != 0;
}

int
barrier_fingerprint(struct barrier *br, const void *data, size_t len, char out[FINGERPRINT_LEN + 1],
                    struct rk_error *err)
{
    struct fp_key *k = barrier_fp_key(br);
    int r;

    out[0] = '\0';
    if (k == NULL)
        return barrier_no_fp_key(br, err);
    r = fingerprint(k, data, len, out);
    fp_key_unref(k);
    if (r != 0)
        return rk_error_set(err, -r, "computing a fingerprint failed");
    return 0;
}

int
barrier_no_fp_key(struct barrier *br, struct rk_error *err)
{
    if (barrier_sealed(br))
        return rk_error_set(err, RK_ESEALED, "the store is sealed");
    return rk_error_set(err, RK_EIO,
                        "the store has no fingerprint key: it was unsealed without write access; "
                        "unseal it once with write access to create one");
}

/* ---- the audit salt ------------------------------------------------------------------------- */

/* Opens the audit salt record blob (already read) with the data key of its term. Returns 0 with
 * *out (AUDIT_SALT_LEN bytes), -RK_ESEALED, -RK_ECORRUPT, -RK_EVERSION, -RK_ENOMEM. */
static int
auditsalt_open(struct barrier *br, const unsigned char *blob, size_t blen, struct secret **out,
               struct rk_error *err)
{
    const struct kr_entry *e;
    struct secret *pt = NULL;
    uint32_t term = 0;
    int r;

    if ((r = envelope_check(KEY_AUDITSALT, blob, blen, &term, err)) != 0)
        return r;
    if ((pt = secret_new(blen - OVERHEAD)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "audit salt: out of secure memory");
    pthread_rwlock_rdlock(&br->lock);
    if (br->kr == NULL)
        r = rk_error_set(err, RK_ESEALED, "the store is sealed");
    else if ((e = keyring_find(br->kr, term)) == NULL)
        r = rk_error_set(err, RK_ECORRUPT,
                         KEY_AUDITSALT " is sealed under term %u, which the "
                                       "keyring does not hold",
                         term);
    else if ((r = envelope_open(e->key, KEY_AUDITSALT, blob, blen, pt->data)) != 0)
        r = r == 1 ? rk_error_set(err, RK_ECORRUPT, KEY_AUDITSALT " fails authentication")
                   : rk_error_set(err, -r, "opening " KEY_AUDITSALT " failed in OpenSSL");
    pthread_rwlock_unlock(&br->lock);
    if (r == 0 && (pt->len < 1 || pt->data[0] != AUDITSALT_FORMAT))
        r = pt->len >= 1 && pt->data[0] > AUDITSALT_FORMAT
                ? rk_error_set(err, RK_EVERSION,
                               KEY_AUDITSALT " was written by format %u; "
                                             "upgrade rekey",
                               pt->data[0])
                : rk_error_set(err, RK_ECORRUPT, KEY_AUDITSALT " has a bad format");
    if (r == 0 && pt->len != 1 + AUDIT_SALT_LEN)
        r = rk_error_set(err, RK_ECORRUPT, KEY_AUDITSALT " has a bad length");
    if (r == 0 && (*out = secret_from(pt->data + 1, AUDIT_SALT_LEN)) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "audit salt: out of secure memory");
    secret_free(pt);
    return r;
}

/* Draws a salt and seals its record under the active data key (*blob, *blen, malloc'd). */
static int
auditsalt_make(struct barrier *br, unsigned char **blob, size_t *blen, struct rk_error *err)
{
    const struct kr_entry *e;
    struct secret *pt = secret_new(1 + AUDIT_SALT_LEN);
    int r;

    if (pt == NULL)
        return rk_error_set(err, RK_ENOMEM, "audit salt: out of secure memory");
    pt->data[0] = AUDITSALT_FORMAT;
    pthread_rwlock_rdlock(&br->lock);
    if (br->kr == NULL)
        r = rk_error_set(err, RK_ESEALED, "the store is sealed");
    else if ((e = keyring_find(br->kr, br->kr->active)) == NULL)
        r = rk_error_set(err, RK_EINTERNAL, "the keyring has no active key");
    else if (RAND_priv_bytes(pt->data + 1, AUDIT_SALT_LEN) != 1)
        r = rk_error_set(err, RK_EINTERNAL, "the random generator failed");
    else
        r = envelope_seal(e->key, e->term, KEY_AUDITSALT, pt->data, pt->len, blob, blen, err);
    pthread_rwlock_unlock(&br->lock);
    secret_free(pt);
    return r;
}

int
barrier_audit_salt(struct barrier *br, struct secret **out, struct rk_error *err)
{
    unsigned char *blob = NULL;
    size_t blen = 0;
    int r;

    *out = NULL;
    if (br == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_audit_salt: no barrier");
    if (barrier_sealed(br))
        return rk_error_set(err, RK_ESEALED, "the store is sealed");
    for (int attempt = 0; attempt < 2; attempt++) {
        r = br->b->ops->get(br->b, KEY_AUDITSALT, &blob, &blen, NULL, err);
        if (r == 0) {
            r = auditsalt_open(br, blob, blen, out, err);
            break;
        }
        if (r != -RK_ENOTFOUND)
            break;
        rk_error_clear(err);
        /* First use: compared absent, so concurrent first uses (two processes) agree on one. */
        if ((r = auditsalt_make(br, &blob, &blen, err)) != 0)
            break;
        {
            const struct store_cmp cmp = {KEY_AUDITSALT, 0};
            const struct store_op op = {STORE_PUT, KEY_AUDITSALT, blob, blen};
            r = br->b->ops->txn(br->b, &cmp, 1, &op, 1, NULL, err);
        }
        if (r == 0)
            r = auditsalt_open(br, blob, blen, out, err);
        if (r != -RK_ECONFLICT)
            break;
        rk_error_clear(err); /* another writer made it first: read theirs */
        free(blob);
        blob = NULL;
    }
    free(blob);
    return r;
}
