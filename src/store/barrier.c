/* barrier.c: the encryption barrier between the engine and the storage backend.
 *
 * Records it owns (never reachable through barrier_get/put/list):
 *   core/format   plaintext JSON {"format":1}: refused with -RK_EVERSION when newer
 *   core/seal     plaintext: the seal configuration (shares, threshold) for status output
 *   core/keyring  the keyring, sealed under the root key in the value envelope with term 0
 *   core/fpkey    the fingerprint key (util/enc.h), sealed in the value envelope under the data
 *                 key that was active when it was made (aad "core/fpkey")
 *   core/auditsalt  the key of the audit log's HMACs (audit/audit.h), made on first use
 *                 (barrier_audit_salt), sealed like core/fpkey (aad "core/auditsalt");
 *                 plaintext (version 1): 0x01 | salt 32
 *
 * Keyring plaintext (version 1), all integers big-endian:
 *   0x01 | active term u32 | count u32 | count * (term u32 | created unix seconds i64 | key 32)
 * Fingerprint key plaintext (version 1): 0x01 | key 32.
 *
 * The fingerprint key is random, made once per store (by init, or for a store from before keyed
 * fingerprints by its first unseal that can write: compared absent, so two servers sharing a
 * store agree on one; that unseal is flagged, barrier_fp_key_take_new, so the KV layer
 * recomputes the stored fingerprints) and never derived from a data key: rotating the keyring
 * keeps every term readable and leaves the record alone, so fingerprints stay what they were. An
 * unseal that finds no record and cannot write one still unseals; fingerprints then cannot be
 * computed (barrier_fp_key fails) until an unseal with write access. An older rekey ignores the
 * record.
 *
 * Locking: `lock` (a writer-preferring rwlock) guards kr, root and fpk. Readers (get, commit) hold
 * it shared while they use a data key. Everything that replaces the keyring (init, unseal, seal,
 * rotate, reload) first takes `wmu`, so such writers are serialised among themselves and may
 * read kr/root without the rwlock; they take it exclusively only to swap the pointers.
 *
 * Key schedules: setting up an AES-GCM context (EVP_CIPHER_CTX_new + key expansion) costs more
 * than decrypting a small value, so each thread keeps one decryption context per barrier, keyed
 * by (generation, term), and only changes the nonce per value. `gen` grows on every keyring
 * change (install); a context built under an older generation is rebuilt under the rwlock before
 * use. Every such context is registered in the barrier (`tcs`, under `tclock`) and has its own
 * mutex, held while it is used: sealing bumps `gen` and then wipes and frees every registered
 * context (EVP_CIPHER_CTX_free cleanses the key schedule), waiting for one in use to be put down.
 * So no key schedule outlives a seal. The common read takes no shared lock at all: its own
 * thread's mutex is uncontended. Writes do the same with a second per-thread context (`ectx`)
 * keyed to the active term, and draw their random nonces NONCE_BATCH at a time (a forked child
 * discards the batch it inherited). Lock order: a thread's tctx mutex, then the rwlock. */
#include "store/barrier.h"

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

/* ---- per-thread decryption contexts ---------------------------------------------------------- */

/* Wipes every thread's cached key schedule (after a seal), waiting for one in use. */
static void
tctx_wipe_all(struct barrier *br)
{
    pthread_mutex_lock(&br->tclock);
    for (struct tctx *tc = br->tcs; tc != NULL; tc = tc->next) {
        pthread_mutex_lock(&tc->mu);
        EVP_CIPHER_CTX_free(tc->ctx); /* cleanses the key schedule */
        tc->ctx = NULL;
        tc->gen = 0;
        EVP_CIPHER_CTX_free(tc->ectx);
        tc->ectx = NULL;
        tc->egen = 0;
        pthread_mutex_unlock(&tc->mu);
    }
    pthread_mutex_unlock(&br->tclock);
}

static void
tctx_free(struct tctx *tc)
{
    EVP_CIPHER_CTX_free(tc->ctx);
    EVP_CIPHER_CTX_free(tc->ectx);
    pthread_mutex_destroy(&tc->mu);
    OPENSSL_cleanse(tc, sizeof(*tc));
    free(tc);
}

/* Thread exit: unregister and free this thread's context. */
static void
tctx_destroy(void *p)
{
    struct tctx *tc = p;
    struct barrier *br = tc->br;

    pthread_mutex_lock(&br->tclock);
    if (tc->prev != NULL)
        tc->prev->next = tc->next;
    else
        br->tcs = tc->next;
    if (tc->next != NULL)
        tc->next->prev = tc->prev;
    pthread_mutex_unlock(&br->tclock);
    tctx_free(tc);
}

/* This thread's context record for br (created on first use), or NULL without memory. */
static struct tctx *
tctx_get(struct barrier *br)
{
    struct tctx *tc;

    if (!br->tkey_ok)
        return NULL;
    if ((tc = pthread_getspecific(br->tkey)) != NULL)
        return tc;
    if ((tc = calloc(1, sizeof(*tc))) == NULL)
        return NULL;
    pthread_mutex_init(&tc->mu, NULL);
    tc->br = br;
    if (pthread_setspecific(br->tkey, tc) != 0) {
        tctx_free(tc);
        return NULL;
    }
    pthread_mutex_lock(&br->tclock);
    tc->next = br->tcs;
    if (br->tcs != NULL)
        br->tcs->prev = tc;
    br->tcs = tc;
    pthread_mutex_unlock(&br->tclock);
    return tc;
}

/* Replaces the in-memory keyring (and root and the fingerprint key when root_new is not NULL,
 * taking both over; a seal, kr NULL, drops all three). Caller holds wmu. */
static void
keyring_install(struct barrier *br, struct keyring *kr, struct secret *root_new,
                struct fp_key *fpk_new)
{
    struct keyring *old_kr;
    struct secret *old_root = NULL;
    struct fp_key *old_fpk = NULL;

    pthread_rwlock_wrlock(&br->lock);
    old_kr = br->kr;
    br->kr = kr;
    if (root_new != NULL || kr == NULL) {
        old_root = br->root;
        br->root = root_new;
        old_fpk = br->fpk;
        br->fpk = fpk_new;
    }
    atomic_fetch_add(&br->gen, 1);
    atomic_store(&br->unsealed, kr != NULL);
    pthread_rwlock_unlock(&br->lock);
    if (kr == NULL)
        tctx_wipe_all(br);
    keyring_free(old_kr);
    secret_free(old_root);
    fp_key_unref(old_fpk); /* a user's own reference keeps it until that user is done */
}

/* Another server may have rotated the keyring (shared etcd store): reload it if the stored one
 * changed. Returns 0 (reloaded or unchanged), or a negative RK_E*. */
static int
keyring_refresh(struct barrier *br, struct rk_error *err)
{
    struct keyring *kr = NULL;
    int r = 0;

    pthread_mutex_lock(&br->wmu);
    if (br->kr == NULL) {
        r = rk_error_set(err, RK_ESEALED, "the store is sealed");
        goto out;
    }
    if ((r = keyring_load(br->b, br->root, &kr, err)) != 0)
        goto out;
    if (kr->mod_rev != br->kr->mod_rev) {
        keyring_install(br, kr, NULL, NULL);
        kr = NULL;
    }
out:
    pthread_mutex_unlock(&br->wmu);
    keyring_free(kr);
    return r;
}

/* ---- open, init, seal ----------------------------------------------------------------------- */

static int
format_check(const unsigned char *val, size_t vlen, struct rk_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)val, vlen, JSON_REJECT_DUPLICATES, &jerr);
    json_t *f = root != NULL ? json_object_get(root, "format") : NULL;
    json_int_t v;
    int r;

    if (f == NULL || !json_is_integer(f)) {
        r = rk_error_set(err, RK_ECORRUPT,
                         "core/format does not parse (expected {\"format\": N}): the store is "
                         "damaged or not a rekey store");
        goto out;
    }
    v = json_integer_value(f);
    if (v > BARRIER_FORMAT_VERSION) {
        r = rk_error_set(err, RK_EVERSION,
                         "store was written by format %lld; this rekey reads up to %d: upgrade "
                         "rekey",
                         (long long)v, BARRIER_FORMAT_VERSION);
        goto out;
    }
    if (v < 1) {
        r = rk_error_set(err, RK_ECORRUPT, "core/format holds an impossible format %lld",
                         (long long)v);
        goto out;
    }
    r = 0;
out:
    json_decref(root);
    return r;
}

int
barrier_open(struct backend *b, struct barrier **out, struct rk_error *err)
{
    struct barrier *br = NULL;
    pthread_rwlockattr_t attr;
    unsigned char *val = NULL;
    size_t vlen = 0;
    int r;

    if (b == NULL || out == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_open: no backend");
    *out = NULL;
    if (barrier_cipher() == NULL)
        return rk_error_set(err, RK_EINTERNAL, "OpenSSL has no AES-256-GCM");
    r = b->ops->get(b, KEY_FORMAT, &val, &vlen, NULL, err);
    if (r == 0) {
        r = format_check(val, vlen, err);
    } else if (r == -RK_ENOTFOUND) {
        /* A fresh store, unless a keyring exists without its format record. */
        free(val);
        val = NULL;
        r = b->ops->get(b, KEY_KEYRING, &val, &vlen, NULL, err);
        if (r == 0)
            r = rk_error_set(err, RK_ECORRUPT, "the store has a keyring but no core/format");
        else if (r == -RK_ENOTFOUND)
            r = 0;
    }
    if (r != 0)
        goto out;

    if ((br = calloc(1, sizeof(*br))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "barrier_open: out of memory");
        goto out;
    }
    br->b = b;
    /* Writer preference: a seal or rotation must not wait behind an endless stream of reads. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (pthread_rwlock_init(&br->lock, &attr) != 0) {
        pthread_rwlockattr_destroy(&attr);
        free(br);
        br = NULL;
        r = rk_error_set(err, RK_EINTERNAL, "barrier_open: cannot create a lock");
        goto out;
    }
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&br->wmu, NULL);
    pthread_mutex_init(&br->tclock, NULL);
    atomic_init(&br->gen, 1);
    atomic_init(&br->unsealed, 0);
    atomic_init(&br->fpk_new, 0);
    br->tkey_ok = pthread_key_create(&br->tkey, tctx_destroy) == 0;
    *out = br;
    r = 0;
out:
    free(val);
    return r;
}

void
barrier_free(struct barrier *br)
{
    if (br == NULL)
        return;
    barrier_seal(br);
    if (br->tkey_ok)
        pthread_key_delete(br->tkey); /* no destructor runs for it from now on */
    while (br->tcs != NULL) {
        struct tctx *next = br->tcs->next;
        tctx_free(br->tcs);
        br->tcs = next;
    }
    pthread_rwlock_destroy(&br->lock);
    pthread_mutex_destroy(&br->wmu);
    pthread_mutex_destroy(&br->tclock);
    free(br);
}

int
barrier_initialized(struct barrier *br)
{
    unsigned char *val = NULL;
    size_t vlen = 0;
    int r;

    if (br == NULL)
        return 0;
    r = br->b->ops->get(br->b, KEY_KEYRING, &val, &vlen, NULL, NULL);
    free(val);
    return r == 0;
}

static int
root_check(const struct secret *root_key, struct rk_error *err)
{
    if (root_key == NULL || root_key->data == NULL || root_key->len != ROOT_KEY_LEN)
        return rk_error_set(err, RK_EINVAL, "the root key must be %d bytes", ROOT_KEY_LEN);
    return 0;
}

int
barrier_init(struct barrier *br, const struct secret *root_key, const char *seal_config,
             struct rk_error *err)
{
    static const char format_rec[] = "{\"format\":1}";
    struct keyring *kr = NULL;
    struct secret *root = NULL, *fpraw = NULL;
    struct fp_key *fpk = NULL;
    unsigned char *blob = NULL, *fpblob = NULL;
    size_t blen = 0, fpblen = 0;
    int64_t rev = 0;
    int r, locked = 0;

    if (br == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_init: no barrier");
    if ((r = root_check(root_key, err)) != 0)
        return r;
    if (seal_config == NULL)
        seal_config = "{}";
    pthread_mutex_lock(&br->wmu);
    locked = 1;
    if ((r = keyring_extend(NULL, &kr, err)) != 0 ||
        (r = keyring_seal(kr, root_key, &blob, &blen, err)) != 0 ||
        (r = fpkey_make(kr, &fpraw, &fpblob, &fpblen, err)) != 0 ||
        (r = fpkey_prepare(fpraw, &fpk, err)) != 0)
        goto out;
    if ((root = secret_from(root_key->data, root_key->len)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "barrier_init: out of secure memory");
        goto out;
    }
    {
        const struct store_cmp cmp = {KEY_KEYRING, 0};
        const struct store_op ops[4] = {
            {STORE_PUT, KEY_FORMAT, format_rec, sizeof(format_rec) - 1},
            {STORE_PUT, KEY_SEAL, seal_config, strlen(seal_config)},
            {STORE_PUT, KEY_KEYRING, blob, blen},
            {STORE_PUT, KEY_FPKEY, fpblob, fpblen},
        };
        r = br->b->ops->txn(br->b, &cmp, 1, ops, 4, &rev, err);
    }
    if (r == -RK_ECONFLICT) {
        r = rk_error_set(err, RK_EEXISTS, "the store is already initialised");
        goto out;
    }
    if (r != 0)
        goto out;
    kr->mod_rev = rev;
    keyring_install(br, kr, root, fpk);
    kr = NULL;
    root = NULL;
    fpk = NULL;
out:
    if (locked)
        pthread_mutex_unlock(&br->wmu);
    keyring_free(kr);
    secret_free(root);
    secret_free(fpraw);
    fp_key_unref(fpk);
    free(blob);
    free(fpblob);
    return r;
}

char *
barrier_seal_config(struct barrier *br)
{
    unsigned char *val = NULL;
    size_t vlen = 0;
    char *s = NULL;

    if (br == NULL || br->b->ops->get(br->b, KEY_SEAL, &val, &vlen, NULL, NULL) != 0)
        goto out;
    if ((s = malloc(vlen + 1)) != NULL) {
        memcpy(s, val, vlen);
        s[vlen] = '\0';
    }
out:
    free(val);
    return s;
}

int
barrier_unseal(struct barrier *br, const struct secret *root_key, struct rk_error *err)
{
    struct keyring *kr = NULL;
    struct secret *root = NULL;
    struct fp_key *fpk = NULL;
    int r, made = 0;

    if (br == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_unseal: no barrier");
    if ((r = root_check(root_key, err)) != 0)
        return r;
    pthread_mutex_lock(&br->wmu);
    if ((r = keyring_load(br->b, root_key, &kr, err)) != 0 ||
        (r = fpkey_ensure(br, kr, &fpk, &made, err)) != 0)
        goto out;
    if ((root = secret_from(root_key->data, root_key->len)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "barrier_unseal: out of secure memory");
        goto out;
    }
    keyring_install(br, kr, root, fpk);
    atomic_store(&br->fpk_new, made);
    kr = NULL;
    root = NULL;
    fpk = NULL;
out:
    pthread_mutex_unlock(&br->wmu);
    keyring_free(kr);
    secret_free(root);
    fp_key_unref(fpk);
    return r;
}

void
barrier_seal(struct barrier *br)
{
    if (br == NULL)
        return;
    pthread_mutex_lock(&br->wmu);
    keyring_install(br, NULL, NULL, NULL);
    pthread_mutex_unlock(&br->wmu);
}

int
barrier_sealed(struct barrier *br)
{
    int sealed;

    if (br == NULL)
        return 1;
    sealed = !atomic_load(&br->unsealed);
    return sealed;
}

int
barrier_rotate_keyring(struct barrier *br, uint32_t *term, struct rk_error *err)
{
    struct keyring *kr = NULL;
    unsigned char *blob = NULL;
    size_t blen = 0;
    int64_t rev = 0;
    int r = -RK_EINTERNAL;

    if (br == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_rotate_keyring: no barrier");
    pthread_mutex_lock(&br->wmu);
    for (int attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
        struct keyring *fresh = NULL;

        if (br->kr == NULL) {
            r = rk_error_set(err, RK_ESEALED, "the store is sealed");
            goto out;
        }
        if ((r = keyring_extend(br->kr, &kr, err)) != 0 ||
            (r = keyring_seal(kr, br->root, &blob, &blen, err)) != 0)
            goto out;
        {
            const struct store_cmp cmp = {KEY_KEYRING, br->kr->mod_rev};
            const struct store_op op = {STORE_PUT, KEY_KEYRING, blob, blen};
            r = br->b->ops->txn(br->b, &cmp, 1, &op, 1, &rev, err);
        }
        free(blob);
        blob = NULL;
        if (r == 0) {
            kr->mod_rev = rev;
            if (term != NULL)
                *term = kr->active;
            keyring_install(br, kr, NULL, NULL);
            kr = NULL;
            goto out;
        }
        keyring_free(kr);
        kr = NULL;
        if (r != -RK_ECONFLICT)
            goto out;
        /* Another server wrote the keyring: take its version and extend that one. */
        if ((r = keyring_load(br->b, br->root, &fresh, err)) != 0)
            goto out;
        keyring_install(br, fresh, NULL, NULL);
        r = rk_error_set(err, RK_ECONFLICT, "the keyring kept changing during the rotation");
    }
out:
    pthread_mutex_unlock(&br->wmu);
    keyring_free(kr);
    free(blob);
    return r;
}

struct backend *
barrier_backend(struct barrier *br)
{
    return br->b;
}

void
barrier_keyring_info(struct barrier *br, uint32_t *active_term, size_t *nkeys)
{
    uint32_t a = 0;
    size_t n = 0;

    if (br != NULL) {
        pthread_rwlock_rdlock(&br->lock);
        if (br->kr != NULL) {
            a = br->kr->active;
            n = br->kr->nkeys;
        }
        pthread_rwlock_unlock(&br->lock);
    }
    if (active_term != NULL)
        *active_term = a;
    if (nkeys != NULL)
        *nkeys = n;
}

/* ---- reads ---------------------------------------------------------------------------------- */

static int
is_reserved(const char *key)
{
    return strncmp(key, CORE_PREFIX, sizeof(CORE_PREFIX) - 1) == 0;
}

/* Keys callers may use: 1..STORE_KEY_MAX bytes, not under core/. */
static int
key_check(const char *key, struct rk_error *err)
{
    size_t n;

    if (key == NULL || (n = strnlen(key, STORE_KEY_MAX + 1)) == 0)
        return rk_error_set(err, RK_EINVAL, "empty storage key");
    if (n > STORE_KEY_MAX)
        return rk_error_set(err, RK_EINVAL, "storage key longer than %d bytes", STORE_KEY_MAX);
    if (is_reserved(key))
        return rk_error_set(err, RK_EPERM, "storage key %.200s is reserved for the barrier", key);
    return 0;
}

/* Decrypts the envelope with this thread's cached context. Returns 0, 1 if the term is
 * unknown, 2 when no cached context can be used (the caller takes the slow path), or -RK_E*. */
static int
get_decrypt_cached(struct barrier *br, const char *key, const unsigned char *blob, size_t blen,
                   uint32_t term, struct secret **val, struct rk_error *err)
{
    struct tctx *tc = tctx_get(br);
    const struct kr_entry *e;
    struct secret *s = NULL;
    size_t ctlen = blen - OVERHEAD;
    int n1 = 0, n2 = 0, r;

    if (tc == NULL || term == ROOT_TERM)
        return 2;
    pthread_mutex_lock(&tc->mu);
    if (tc->ctx == NULL || tc->term != term || tc->gen != atomic_load(&br->gen)) {
        /* (Re)key under the read lock: the keyring cannot change meanwhile. */
        pthread_rwlock_rdlock(&br->lock);
        if (br->kr == NULL) {
            pthread_rwlock_unlock(&br->lock);
            r = rk_error_set(err, RK_ESEALED, "the store is sealed");
            goto out;
        }
        if ((e = keyring_find(br->kr, term)) == NULL) {
            pthread_rwlock_unlock(&br->lock);
            r = 2; /* unknown term: the slow path reports it */
            goto out;
        }
        if (tc->ctx == NULL && (tc->ctx = EVP_CIPHER_CTX_new()) == NULL) {
            pthread_rwlock_unlock(&br->lock);
            r = 2;
            goto out;
        }
        tc->gen = atomic_load(&br->gen);
        if (EVP_DecryptInit_ex2(tc->ctx, barrier_cipher(), e->key, NULL, NULL) != 1) {
            pthread_rwlock_unlock(&br->lock);
            EVP_CIPHER_CTX_free(tc->ctx);
            tc->ctx = NULL;
            r = 2;
            goto out;
        }
        tc->term = term;
        pthread_rwlock_unlock(&br->lock);
    }
    if ((s = secret_new(ctlen)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "reading %.200s: out of secure memory", key);
        goto out;
    }
    /* Only the nonce changes: the key schedule set above is kept. */
    if (EVP_DecryptInit_ex2(tc->ctx, NULL, NULL, blob + 5, NULL) != 1 ||
        EVP_DecryptUpdate(tc->ctx, NULL, &n1, (const unsigned char *)key, (int)strlen(key)) != 1 ||
        EVP_DecryptUpdate(tc->ctx, s->data, &n1, blob + HDR_LEN, (int)ctlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(tc->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN,
                            (void *)(blob + HDR_LEN + ctlen)) != 1) {
        r = rk_error_set(err, RK_EINTERNAL, "decrypting %.200s failed in OpenSSL", key);
    } else if (EVP_DecryptFinal_ex(tc->ctx, s->data + n1, &n2) != 1) {
        r = rk_error_set(err, RK_ECORRUPT,
                         "value at %.200s fails authentication: it was altered or moved from "
                         "another key",
                         key);
    } else {
        r = 0;
    }
out:
    pthread_mutex_unlock(&tc->mu);
    if (r == 0)
        *val = s;
    else
        secret_free(s); /* wipes unauthenticated plaintext */
    return r;
}

/* Decrypts the envelope under the read lock. Returns 0, 1 if the term is unknown, or -RK_E*. */
static int
get_decrypt(struct barrier *br, const char *key, const unsigned char *blob, size_t blen,
            uint32_t term, struct secret **val, struct rk_error *err)
{
    const struct kr_entry *e;
    struct secret *s = NULL;
    int r;

    pthread_rwlock_rdlock(&br->lock);
    if (br->kr == NULL) {
        r = rk_error_set(err, RK_ESEALED, "the store is sealed");
        goto out;
    }
    if (term == ROOT_TERM || (e = keyring_find(br->kr, term)) == NULL) {
        r = term > br->kr->active ? 1
                                  : rk_error_set(err, RK_ECORRUPT,
                                                 "value at %.200s is encrypted under key "
                                                 "term %u, which the keyring does not hold",
                                                 key, term);
        goto out;
    }
    if ((s = secret_new(blen - OVERHEAD)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "reading %.200s: out of secure memory", key);
        goto out;
    }
    r = envelope_open(e->key, key, blob, blen, s->data);
    if (r == 1)
        r = rk_error_set(err, RK_ECORRUPT,
                         "value at %.200s fails authentication: it was altered or moved from "
                         "another key",
                         key);
    else if (r != 0)
        r = rk_error_set(err, -r, "decrypting %.200s failed in OpenSSL", key);
out:
    pthread_rwlock_unlock(&br->lock);
    if (r == 0)
        *val = s;
    else
        secret_free(s);
    return r;
}

int
barrier_get(struct barrier *br, const char *key, struct secret **val, int64_t *mod_rev,
            struct rk_error *err)
{
    unsigned char *blob = NULL;
    size_t blen = 0;
    int64_t rev = 0;
    uint32_t term = 0;
    int r;

    if (br == NULL || val == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_get: no barrier or output");
    *val = NULL;
    if ((r = key_check(key, err)) != 0)
        return r;
    if (barrier_sealed(br)) /* before the read: a sealed store says nothing about its keys */
        return rk_error_set(err, RK_ESEALED, "the store is sealed");
    if ((r = br->b->ops->get(br->b, key, &blob, &blen, &rev, err)) != 0)
        goto out;
    if ((r = envelope_check(key, blob, blen, &term, err)) != 0)
        goto out;
    if ((r = get_decrypt_cached(br, key, blob, blen, term, val, err)) == 2)
        r = get_decrypt(br, key, blob, blen, term, val, err);
    if (r == 1) {
        /* A newer term than ours: another server may have rotated. Reload once and retry. */
        if ((r = keyring_refresh(br, err)) != 0)
            goto out;
        r = get_decrypt(br, key, blob, blen, term, val, err);
        if (r == 1)
            r = rk_error_set(err, RK_ECORRUPT,
                             "value at %.200s is encrypted under key term %u, which the keyring "
                             "does not hold",
                             key, term);
    }
    if (r == 0 && mod_rev != NULL)
        *mod_rev = rev;
out:
    free(blob);
    return r;
}

struct list_ctx {
    store_list_cb cb;
    void *arg;
    size_t limit, count;
};

static int
list_filter(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct list_ctx *lc = arg;
    int r;

    (void)val;
    (void)vlen;
    if (is_reserved(key))
        return 0;
    if ((r = lc->cb(lc->arg, key, NULL, 0, mod_rev)) != 0)
        return r;
    if (lc->limit > 0 && ++lc->count >= lc->limit)
        return 1;
    return 0;
}

int
barrier_list(struct barrier *br, const char *prefix, const char *start_after, size_t limit,
             store_list_cb cb, void *arg, struct rk_error *err)
{
    struct list_ctx lc = {cb, arg, limit, 0};
    size_t plen;

    if (br == NULL || cb == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_list: no barrier or callback");
    if (prefix == NULL)
        prefix = "";
    plen = strlen(prefix);
    if (is_reserved(prefix))
        return rk_error_set(err, RK_EPERM, "keys under %s are reserved for the barrier",
                            CORE_PREFIX);
    if (barrier_sealed(br))
        return rk_error_set(err, RK_ESEALED, "the store is sealed");
    /* Only a prefix of "core/" ("", "c", "co"...) can reach the barrier's own keys. Then they are
     * filtered out, and the limit is counted here so that they do not use it up. */
    if (strncmp(CORE_PREFIX, prefix, plen) == 0)
        return br->b->ops->list(br->b, prefix, start_after, 0, 1, list_filter, &lc, err);
    return br->b->ops->list(br->b, prefix, start_after, limit, 1, cb, arg, err);
}

/* ---- transactions --------------------------------------------------------------------------- */

struct listv_ctx {
    struct barrier *br;
    barrier_value_cb cb;
    void *arg;
    struct rk_error *err;
};

static int
listv_one(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    struct listv_ctx *c = arg;
    struct secret *s = NULL;
    uint32_t term = 0;
    int r;

    if (is_reserved(key))
        return 0;
    if ((r = envelope_check(key, val, vlen, &term, c->err)) != 0)
        return r;
    if ((r = get_decrypt_cached(c->br, key, val, vlen, term, &s, c->err)) == 2)
        r = get_decrypt(c->br, key, val, vlen, term, &s, c->err);
    if (r == 1) /* a newer term than ours: barrier_get reloads the keyring */
        r = barrier_get(c->br, key, &s, NULL, c->err);
    if (r != 0)
        return r;
    r = c->cb(c->arg, key, s, rev);
    secret_free(s);
    return r;
}

int
barrier_list_values(struct barrier *br, const char *prefix, barrier_value_cb cb, void *arg,
                    struct rk_error *err)
{
    struct listv_ctx c = {br, cb, arg, err};

    if (br == NULL || cb == NULL || prefix == NULL || prefix[0] == '\0' || is_reserved(prefix))
        return rk_error_set(err, RK_EINVAL, "barrier_list_values: a prefix outside core/");
    if (barrier_sealed(br))
        return rk_error_set(err, RK_ESEALED, "the store is sealed");
    return br->b->ops->list(br->b, prefix, NULL, 0, 0, listv_one, &c, err);
}

struct barrier_txn *
barrier_txn_new(struct barrier *br)
{
    struct barrier_txn *t;

    if (br == NULL || (t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->br = br;
    return t;
}

static int
grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    void *p;
    size_t ncap;

    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 4;
    if ((p = realloc(*arr, ncap * elem)) == NULL)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

int
barrier_txn_cmp(struct barrier_txn *t, const char *key, int64_t mod_rev)
{
    char *k;

    if (t == NULL || key == NULL)
        return -RK_EINVAL;
    if (grow((void **)&t->cmps, &t->capc, t->ncmps, sizeof(*t->cmps)) != 0 ||
        (k = strdup(key)) == NULL) {
        t->failed = 1;
        return -RK_ENOMEM;
    }
    t->cmps[t->ncmps].key = k;
    t->cmps[t->ncmps].mod_rev = mod_rev;
    t->ncmps++;
    return 0;
}

static int
txn_add(struct barrier_txn *t, enum store_op_kind kind, const char *key, const void *val,
        size_t vlen)
{
    struct bt_op *op;

    if (t == NULL || key == NULL || (kind == STORE_PUT && val == NULL && vlen > 0))
        return -RK_EINVAL;
    if (grow((void **)&t->ops, &t->capo, t->nops, sizeof(*t->ops)) != 0)
        goto nomem;
    op = &t->ops[t->nops];
    op->kind = kind;
    op->val = NULL;
    if ((op->key = strdup(key)) == NULL)
        goto nomem;
    if (kind == STORE_PUT && (op->val = secret_from(val, vlen)) == NULL) {
        free(op->key);
        goto nomem;
    }
    t->nops++;
    return 0;
nomem:
    t->failed = 1;
    return -RK_ENOMEM;
}

int
barrier_txn_put(struct barrier_txn *t, const char *key, const void *val, size_t vlen)
{
    return txn_add(t, STORE_PUT, key, val, vlen);
}

int
barrier_txn_del(struct barrier_txn *t, const char *key)
{
    return txn_add(t, STORE_DELETE, key, NULL, 0);
}

size_t
barrier_txn_count(const struct barrier_txn *t)
{
    return t != NULL ? t->ncmps + t->nops : 0;
}

/* Takes a fresh random nonce from this thread's batch, drawing a new batch when it is used up or
 * was drawn before a fork. Nonces are public; each is handed out once and then zeroed. Caller
 * holds tc->mu. Returns 0 or -1 when RAND_bytes fails. */
static int
nonce_next(struct tctx *tc, unsigned char *nonce)
{
    unsigned fc = atomic_load(&fork_count);

    if (tc->nnonces == 0 || tc->nonce_fork != fc) {
        if (RAND_bytes(tc->nonces, (int)sizeof(tc->nonces)) != 1)
            return -1;
        tc->nnonces = NONCE_BATCH;
        tc->nonce_fork = fc;
    }
    tc->nnonces--;
    memcpy(nonce, tc->nonces + tc->nnonces * NONCE_LEN, NONCE_LEN);
    memset(tc->nonces + tc->nnonces * NONCE_LEN, 0, NONCE_LEN);
    return 0;
}

/* Seals pt under the active key e into buf (ptlen + OVERHEAD bytes) with this thread's cached
 * encryption context, rekeyed when the generation or the term changed. Caller holds tc->mu and
 * br->lock shared. Returns 0, -RK_ENOMEM, -RK_EINTERNAL. */
static int
seal_cached(struct barrier *br, struct tctx *tc, const struct kr_entry *e, const char *aad,
            const unsigned char *pt, size_t ptlen, unsigned char *buf)
{
    uint64_t gen = atomic_load(&br->gen);
    int n1 = 0, n2 = 0;

    if (tc->ectx == NULL || tc->egen != gen || tc->eterm != e->term) {
        if (tc->ectx == NULL && (tc->ectx = EVP_CIPHER_CTX_new()) == NULL)
            return -RK_ENOMEM;
        if (EVP_EncryptInit_ex2(tc->ectx, barrier_cipher(), e->key, NULL, NULL) != 1) {
            EVP_CIPHER_CTX_free(tc->ectx);
            tc->ectx = NULL;
            return -RK_EINTERNAL;
        }
        tc->egen = gen;
        tc->eterm = e->term;
    }
    buf[0] = VALUE_FORMAT;
    barrier_put_u32(buf + 1, e->term);
    /* Only the nonce changes: the key schedule set above is kept. */
    if (nonce_next(tc, buf + 5) != 0 ||
        EVP_EncryptInit_ex2(tc->ectx, NULL, NULL, buf + 5, NULL) != 1 ||
        EVP_EncryptUpdate(tc->ectx, NULL, &n1, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(tc->ectx, buf + HDR_LEN, &n1, pt, (int)ptlen) != 1 ||
        EVP_EncryptFinal_ex(tc->ectx, buf + HDR_LEN + n1, &n2) != 1 ||
        (size_t)n1 + (size_t)n2 != ptlen ||
        EVP_CIPHER_CTX_ctrl(tc->ectx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, buf + HDR_LEN + ptlen) != 1)
        return -RK_EINTERNAL;
    return 0;
}

int
barrier_txn_commit(struct barrier_txn *t, int64_t *rev, struct rk_error *err)
{
    struct store_op *ops = NULL;
    unsigned char *arena = NULL;
    struct tctx *tc = NULL;
    size_t total = 0, off = 0;
    int r = -RK_EINTERNAL, locked = 0;

    if (t == NULL)
        return rk_error_set(err, RK_EINVAL, "barrier_txn_commit: no transaction");
    if (t->failed)
        return rk_error_set(err, RK_ENOMEM, "the transaction is incomplete (out of memory)");
    for (size_t i = 0; i < t->ncmps; i++)
        if ((r = key_check(t->cmps[i].key, err)) != 0)
            return r;
    for (size_t i = 0; i < t->nops; i++) {
        const struct bt_op *o = &t->ops[i];

        if ((r = key_check(o->key, err)) != 0)
            return r;
        if (o->kind != STORE_PUT)
            continue;
        if (o->val->len > VALUE_MAX || total > SIZE_MAX - OVERHEAD - o->val->len)
            return rk_error_set(err, RK_ELIMIT, "value for %.200s is too large", o->key);
        total += o->val->len + OVERHEAD;
    }
    /* All envelopes go into one buffer: ciphertext only, nothing to wipe. */
    if (t->nops > 0 && ((ops = calloc(t->nops, sizeof(*ops))) == NULL ||
                        (total > 0 && (arena = malloc(total)) == NULL))) {
        r = rk_error_set(err, RK_ENOMEM, "barrier_txn_commit: out of memory");
        goto out;
    }
    if (total > 0 && (tc = tctx_get(t->br)) != NULL)
        pthread_mutex_lock(&tc->mu); /* before the rwlock, as in the read path */
    pthread_rwlock_rdlock(&t->br->lock);
    locked = 1;
    if (t->br->kr == NULL) {
        r = rk_error_set(err, RK_ESEALED, "the store is sealed");
        goto out;
    }
    {
        const struct keyring *kr = t->br->kr;
        const struct kr_entry *e = keyring_find(kr, kr->active);

        for (size_t i = 0; i < t->nops; i++) {
            const struct bt_op *o = &t->ops[i];
            unsigned char *blob = NULL;
            size_t blen = o->val != NULL ? o->val->len + OVERHEAD : 0;

            ops[i].kind = o->kind;
            ops[i].key = o->key;
            if (o->kind != STORE_PUT)
                continue;
            if (tc != NULL) {
                r = seal_cached(t->br, tc, e, o->key, o->val->data, o->val->len, arena + off);
                if (r != 0) {
                    r = rk_error_set(err, -r, "encrypting %.200s failed in OpenSSL", o->key);
                    goto out;
                }
            } else {
                r = envelope_seal(e->key, e->term, o->key, o->val->data, o->val->len, &blob, &blen,
                                  err);
                if (r != 0)
                    goto out;
                memcpy(arena + off, blob, blen);
                free(blob);
            }
            ops[i].val = arena + off;
            ops[i].vlen = blen;
            off += blen;
        }
    }
    pthread_rwlock_unlock(&t->br->lock);
    locked = 0;
    if (tc != NULL) {
        pthread_mutex_unlock(&tc->mu);
        tc = NULL;
    }

    r = t->br->b->ops->txn(t->br->b, t->cmps, t->ncmps, ops, t->nops, rev, err);
out:
    if (locked)
        pthread_rwlock_unlock(&t->br->lock);
    if (tc != NULL)
        pthread_mutex_unlock(&tc->mu);
    free(arena);
    free(ops);
    return r;
}

void
barrier_txn_free(struct barrier_txn *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ncmps; i++)
        free((char *)t->cmps[i].key);
    for (size_t i = 0; i < t->nops; i++) {
        free(t->ops[i].key);
        secret_free(t->ops[i].val);
    }
    free(t->cmps);
    free(t->ops);
    free(t);
}

int
barrier_put(struct barrier *br, const char *key, const void *val, size_t vlen, struct rk_error *err)
{
    struct barrier_txn *t = barrier_txn_new(br);
    int r;

    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "barrier_put: out of memory");
    if ((r = barrier_txn_put(t, key, val, vlen)) != 0)
        r = rk_error_set(err, -r, "barrier_put: cannot queue the write");
    else
        r = barrier_txn_commit(t, NULL, err);
    barrier_txn_free(t);
    return r;
}

int
barrier_del(struct barrier *br, const char *key, struct rk_error *err)
{
    struct barrier_txn *t = barrier_txn_new(br);
    int r;

    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "barrier_del: out of memory");
    if ((r = barrier_txn_del(t, key)) != 0)
        r = rk_error_set(err, -r, "barrier_del: cannot queue the delete");
    else
        r = barrier_txn_commit(t, NULL, err);
    barrier_txn_free(t);
    return r;
}
