/* keyring.c: the barrier's value envelope (AES-256-GCM: format byte, key term, nonce, ciphertext,
 * tag; AAD = the storage key) and its keyring (the data keys by term, sealed under the root key).
 * Formats: the top of barrier.c. */
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

/* ---- AES-256-GCM ---------------------------------------------------------------------------- */

static pthread_once_t cipher_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *gcm; /* fetched once: implicit fetches on every init are slow in OpenSSL 3 */
/* Bumped in a forked child: nonces a thread drew before the fork are then thrown away, so that
 * parent and child never both use one. */
atomic_uint fork_count; /* barrier-int.h */

static void
on_fork_child(void)
{
    atomic_fetch_add(&fork_count, 1);
}

static void
cipher_init(void)
{
    gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

const EVP_CIPHER *
barrier_cipher(void)
{
    (void)pthread_once(&cipher_once, cipher_init);
    return gcm;
}

void
barrier_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t
get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put_i64(unsigned char *p, int64_t v)
{
    barrier_put_u32(p, (uint32_t)((uint64_t)v >> 32));
    barrier_put_u32(p + 4, (uint32_t)v);
}

static int64_t
get_i64(const unsigned char *p)
{
    return (int64_t)((uint64_t)get_u32(p) << 32 | get_u32(p + 4));
}

/* Seals pt under key into a malloc'd envelope (*out, *outlen): 0x01 | term | nonce | ct | tag.
 * Returns 0, -RK_ENOMEM, -RK_EINTERNAL. */
int
envelope_seal(const unsigned char *key, uint32_t term, const char *aad, const unsigned char *pt,
              size_t ptlen, unsigned char **out, size_t *outlen, struct rk_error *err)
{
    const EVP_CIPHER *c = barrier_cipher();
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    int n1 = 0, n2 = 0;
    int r = -RK_EINTERNAL;

    if (ptlen > VALUE_MAX)
        return rk_error_set(err, RK_ELIMIT, "value for %.200s is too large", aad);
    if (c == NULL)
        return rk_error_set(err, RK_EINTERNAL, "OpenSSL has no AES-256-GCM");
    buf = malloc(ptlen + OVERHEAD);
    ctx = EVP_CIPHER_CTX_new();
    if (buf == NULL || ctx == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "encrypting %.200s: out of memory", aad);
        goto out;
    }
    buf[0] = VALUE_FORMAT;
    barrier_put_u32(buf + 1, term);
    if (RAND_bytes(buf + 5, NONCE_LEN) != 1 ||
        EVP_EncryptInit_ex2(ctx, c, key, buf + 5, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n1, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(ctx, buf + HDR_LEN, &n1, pt, (int)ptlen) != 1 ||
        EVP_EncryptFinal_ex(ctx, buf + HDR_LEN + n1, &n2) != 1 ||
        (size_t)n1 + (size_t)n2 != ptlen ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, buf + HDR_LEN + ptlen) != 1) {
        r = rk_error_set(err, RK_EINTERNAL, "encrypting %.200s failed in OpenSSL", aad);
        goto out;
    }
    *out = buf;
    *outlen = ptlen + OVERHEAD;
    buf = NULL;
    r = 0;
out:
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    free(buf);
    return r;
}

/* Decrypts the envelope body in (already checked: inlen >= OVERHEAD) into pt (inlen - OVERHEAD
 * bytes). Returns 0, 1 when authentication fails, or -RK_ENOMEM/-RK_EINTERNAL. */
int
envelope_open(const unsigned char *key, const char *aad, const unsigned char *in, size_t inlen,
              unsigned char *pt)
{
    const EVP_CIPHER *c = barrier_cipher();
    size_t ctlen = inlen - OVERHEAD;
    EVP_CIPHER_CTX *ctx;
    int n1 = 0, n2 = 0, r;

    if (c == NULL)
        return -RK_EINTERNAL;
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
        return -RK_ENOMEM;
    if (EVP_DecryptInit_ex2(ctx, c, key, in + 5, NULL) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n1, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_DecryptUpdate(ctx, pt, &n1, in + HDR_LEN, (int)ctlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, (void *)(in + HDR_LEN + ctlen)) !=
            1) {
        r = -RK_EINTERNAL;
    } else if (EVP_DecryptFinal_ex(ctx, pt + n1, &n2) != 1) {
        r = 1;
    } else {
        r = 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (r != 0 && ctlen > 0)
        OPENSSL_cleanse(pt, ctlen); /* unauthenticated plaintext never leaves */
    return r;
}

/* Checks the envelope header of the value stored at key. Returns 0 with *term set, or
 * -RK_EVERSION / -RK_ECORRUPT. */
int
envelope_check(const char *key, const unsigned char *in, size_t inlen, uint32_t *term,
               struct rk_error *err)
{
    if (inlen < 1)
        return rk_error_set(err, RK_ECORRUPT, "value at %.200s is empty: not a barrier value", key);
    if (in[0] != VALUE_FORMAT)
        return rk_error_set(err, RK_EVERSION,
                            "value at %.200s was written by format %u; this rekey reads up to %d: "
                            "upgrade rekey",
                            key, in[0], VALUE_FORMAT);
    if (inlen < OVERHEAD)
        return rk_error_set(err, RK_ECORRUPT, "value at %.200s is truncated (%zu bytes)", key,
                            inlen);
    *term = get_u32(in + 1);
    return 0;
}

/* ---- keyring -------------------------------------------------------------------------------- */

static struct kr_entry *
kr_entries(const struct keyring *kr)
{
    return (struct kr_entry *)(void *)kr->mem->data;
}

void
keyring_free(struct keyring *kr)
{
    if (kr == NULL)
        return;
    secret_free(kr->mem);
    OPENSSL_cleanse(kr, sizeof(*kr));
    OPENSSL_free(kr);
}

static struct keyring *
keyring_alloc(size_t nkeys)
{
    struct keyring *kr = OPENSSL_zalloc(sizeof(*kr));

    if (kr == NULL)
        return NULL;
    if ((kr->mem = secret_new(nkeys * sizeof(struct kr_entry))) == NULL) {
        OPENSSL_free(kr);
        return NULL;
    }
    kr->nkeys = nkeys;
    return kr;
}

const struct kr_entry *
keyring_find(const struct keyring *kr, uint32_t term)
{
    const struct kr_entry *e = kr_entries(kr);

    /* Terms are appended in order from 1, so term-1 is the usual index. */
    if (term >= 1 && term <= kr->nkeys && e[term - 1].term == term)
        return &e[term - 1];
    for (size_t i = 0; i < kr->nkeys; i++)
        if (e[i].term == term)
            return &e[i];
    return NULL;
}

/* Serialises kr into a secure buffer *out (*outlen); caller frees with secret_free. */
static int
keyring_encode(const struct keyring *kr, struct secret **out, struct rk_error *err)
{
    const struct kr_entry *e = kr_entries(kr);
    struct secret *s = secret_new(KEYRING_HDR + kr->nkeys * KEYRING_ENTRY);
    unsigned char *p;

    if (s == NULL)
        return rk_error_set(err, RK_ENOMEM, "keyring: out of secure memory");
    p = s->data;
    *p++ = KEYRING_FORMAT;
    barrier_put_u32(p, kr->active);
    barrier_put_u32(p + 4, (uint32_t)kr->nkeys);
    p += 8;
    for (size_t i = 0; i < kr->nkeys; i++) {
        barrier_put_u32(p, e[i].term);
        put_i64(p + 4, e[i].created);
        memcpy(p + 12, e[i].key, DATA_KEY_LEN);
        p += KEYRING_ENTRY;
    }
    *out = s;
    return 0;
}

static int
keyring_decode(const unsigned char *p, size_t len, struct keyring **out, struct rk_error *err)
{
    struct keyring *kr = NULL;
    struct kr_entry *e;
    uint32_t n;

    if (len < 1)
        return rk_error_set(err, RK_ECORRUPT, "core/keyring is empty");
    if (p[0] != KEYRING_FORMAT)
        return rk_error_set(err, RK_EVERSION,
                            "the keyring was written by format %u; this rekey reads up to %d: "
                            "upgrade rekey",
                            p[0], KEYRING_FORMAT);
    if (len < KEYRING_HDR)
        return rk_error_set(err, RK_ECORRUPT, "core/keyring is truncated");
    n = get_u32(p + 5);
    if (n < 1 || n > KEYRING_MAX_KEYS || len != KEYRING_HDR + (size_t)n * KEYRING_ENTRY)
        return rk_error_set(err, RK_ECORRUPT, "core/keyring has a bad key count or length");
    if ((kr = keyring_alloc(n)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "keyring: out of secure memory");
    kr->active = get_u32(p + 1);
    e = kr_entries(kr);
    p += KEYRING_HDR;
    for (uint32_t i = 0; i < n; i++, p += KEYRING_ENTRY) {
        e[i].term = get_u32(p);
        e[i].created = get_i64(p + 4);
        memcpy(e[i].key, p + 12, DATA_KEY_LEN);
        if (e[i].term == ROOT_TERM || (i > 0 && e[i].term <= e[i - 1].term)) {
            keyring_free(kr);
            return rk_error_set(err, RK_ECORRUPT, "core/keyring has terms out of order");
        }
    }
    if (keyring_find(kr, kr->active) == NULL) {
        keyring_free(kr);
        return rk_error_set(err, RK_ECORRUPT, "core/keyring: the active term has no key");
    }
    *out = kr;
    return 0;
}

/* Returns a copy of old (or a new keyring when old is NULL) with one more fresh key, active. */
int
keyring_extend(const struct keyring *old, struct keyring **out, struct rk_error *err)
{
    size_t n = old != NULL ? old->nkeys : 0;
    struct keyring *kr;
    struct kr_entry *e;
    uint32_t term = n > 0 ? kr_entries(old)[n - 1].term + 1 : 1;

    if (n >= KEYRING_MAX_KEYS || term == 0)
        return rk_error_set(err, RK_ELIMIT, "the keyring already holds %zu keys", n);
    if ((kr = keyring_alloc(n + 1)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "keyring: out of secure memory");
    e = kr_entries(kr);
    if (n > 0)
        memcpy(e, kr_entries(old), n * sizeof(*e));
    e[n].term = term;
    e[n].created = (int64_t)time(NULL);
    if (RAND_priv_bytes(e[n].key, DATA_KEY_LEN) != 1) {
        keyring_free(kr);
        return rk_error_set(err, RK_EINTERNAL, "the random generator failed");
    }
    kr->active = term;
    kr->mod_rev = old != NULL ? old->mod_rev : 0;
    *out = kr;
    return 0;
}

/* Seals kr under root into a malloc'd envelope. */
int
keyring_seal(const struct keyring *kr, const struct secret *root, unsigned char **out,
             size_t *outlen, struct rk_error *err)
{
    struct secret *pt = NULL;
    int r;

    if ((r = keyring_encode(kr, &pt, err)) != 0)
        return r;
    r = envelope_seal(root->data, ROOT_TERM, KEY_KEYRING, pt->data, pt->len, out, outlen, err);
    secret_free(pt);
    return r;
}

/* Reads core/keyring and opens it with root. Returns 0, -RK_ENOTFOUND (not initialised),
 * -RK_EBADKEY, -RK_ECORRUPT, -RK_EVERSION, -RK_EIO. */
int
keyring_load(struct backend *b, const struct secret *root, struct keyring **out,
             struct rk_error *err)
{
    unsigned char *blob = NULL;
    struct secret *pt = NULL;
    size_t blen = 0;
    int64_t rev = 0;
    uint32_t term = 0;
    int r;

    r = b->ops->get(b, KEY_KEYRING, &blob, &blen, &rev, err);
    if (r == -RK_ENOTFOUND) {
        r = rk_error_set(err, RK_ENOTFOUND,
                         "the store is not initialised: run `rekey operator init` first");
        goto out;
    }
    if (r != 0)
        goto out;
    if ((r = envelope_check(KEY_KEYRING, blob, blen, &term, err)) != 0)
        goto out;
    if (term != ROOT_TERM) {
        r = rk_error_set(err, RK_ECORRUPT, "core/keyring is not sealed by a root key");
        goto out;
    }
    if ((pt = secret_new(blen - OVERHEAD)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "keyring: out of secure memory");
        goto out;
    }
    r = envelope_open(root->data, KEY_KEYRING, blob, blen, pt->data);
    if (r == 1) {
        r = rk_error_set(err, RK_EBADKEY,
                         "the root key does not open this store (wrong share or key file)");
        goto out;
    }
    if (r != 0) {
        r = rk_error_set(err, -r, "opening the keyring failed in OpenSSL");
        goto out;
    }
    if ((r = keyring_decode(pt->data, pt->len, out, err)) != 0)
        goto out;
    (*out)->mod_rev = rev;
out:
    secret_free(pt);
    free(blob);
    return r;
}
