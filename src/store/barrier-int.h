/* barrier-int.h: what the parts of the barrier share and no other module may use: barrier.c
 * (open, init, seal, the per-thread contexts, reads, transactions), keyring.c (the value
 * envelope and the keyring) and barrier-keys.c (the fingerprint key and the audit salt). The
 * record formats and the lock order are described at the top of barrier.c. */
#ifndef REKEY_STORE_BARRIER_INT_H
#define REKEY_STORE_BARRIER_INT_H

#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "store/barrier.h"

#define DATA_KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define VALUE_FORMAT 1
#define HDR_LEN (1 + 4 + NONCE_LEN)
#define OVERHEAD (HDR_LEN + TAG_LEN)
#define KEYRING_FORMAT 1
#define KEYRING_HDR (1 + 4 + 4)
#define KEYRING_ENTRY (4 + 8 + DATA_KEY_LEN)
#define KEYRING_MAX_KEYS 4096
#define ROOT_TERM 0 /* the envelope term of the keyring itself: sealed by the root key */
#define VALUE_MAX ((size_t)INT_MAX - OVERHEAD)
#define ROTATE_ATTEMPTS 3

#define KEY_FORMAT "core/format"
#define KEY_SEAL "core/seal"
#define KEY_KEYRING "core/keyring"
#define KEY_FPKEY "core/fpkey"
#define KEY_AUDITSALT "core/auditsalt"
#define AUDITSALT_FORMAT 1
#define FPKEY_FORMAT 1
#define FPKEY_PLAIN (1 + FP_KEY_LEN)
#define CORE_PREFIX "core/"

struct kr_entry {
    uint32_t term;
    int64_t created;
    unsigned char key[DATA_KEY_LEN];
};

struct keyring {
    struct secret *mem; /* nkeys struct kr_entry, in the secure heap */
    size_t nkeys;
    uint32_t active;
    int64_t mod_rev; /* of core/keyring as loaded or last written */
};

#define NONCE_BATCH 32 /* nonces drawn per RAND_bytes call (they are public, not secrets) */

/* One thread's cached cipher contexts for one barrier. */
struct tctx {
    pthread_mutex_t mu;  /* held while ctx or ectx is used or replaced */
    EVP_CIPHER_CTX *ctx; /* decryption; NULL until first use or after a seal wiped it */
    uint64_t gen;        /* the barrier generation ctx was keyed under */
    uint32_t term;
    EVP_CIPHER_CTX *ectx; /* encryption under the active key; same rules as ctx */
    uint64_t egen;
    uint32_t eterm;
    unsigned char nonces[NONCE_BATCH * NONCE_LEN]; /* fresh random nonces, used once each */
    size_t nnonces;                                /* how many of them are left */
    unsigned nonce_fork;                           /* fork_count when they were drawn */
    struct barrier *br;
    struct tctx *prev, *next;
};

struct barrier {
    struct backend *b;
    pthread_rwlock_t lock;
    pthread_mutex_t wmu;
    struct keyring *kr;       /* NULL when sealed */
    struct secret *root;      /* kept while unsealed: rotation re-seals the keyring with it */
    struct fp_key *fpk;       /* NULL when sealed, or when the store has no fingerprint key */
    atomic_int fpk_new;       /* the last unseal made fpk for a store that had none */
    atomic_uint_fast64_t gen; /* bumped on every keyring change */
    atomic_int unsealed;      /* kr != NULL, readable without the rwlock */
    pthread_key_t tkey;       /* this thread's struct tctx */
    int tkey_ok;
    pthread_mutex_t tclock; /* guards tcs */
    struct tctx *tcs;
};

struct bt_op {
    enum store_op_kind kind;
    char *key;
    struct secret *val; /* STORE_PUT: the plaintext */
};

struct barrier_txn {
    struct barrier *br;
    struct store_cmp *cmps;
    size_t ncmps, capc;
    struct bt_op *ops;
    size_t nops, capo;
    int failed; /* an add ran out of memory: commit refuses a partial transaction */
};

/* Forks seen by this process (pthread_atfork): a child draws fresh nonces. */
extern atomic_uint fork_count;

/* ---- keyring.c ---- */
const EVP_CIPHER *barrier_cipher(void);
int envelope_check(const char *key, const unsigned char *in, size_t inlen, uint32_t *term,
                   struct rk_error *err);
int envelope_open(const unsigned char *key, const char *aad, const unsigned char *in, size_t inlen,
                  unsigned char *pt);
int envelope_seal(const unsigned char *key, uint32_t term, const char *aad, const unsigned char *pt,
                  size_t ptlen, unsigned char **out, size_t *outlen, struct rk_error *err);
int keyring_extend(const struct keyring *old, struct keyring **out, struct rk_error *err);
const struct kr_entry *keyring_find(const struct keyring *kr, uint32_t term);
void keyring_free(struct keyring *kr);
int keyring_load(struct backend *b, const struct secret *root, struct keyring **out,
                 struct rk_error *err);
int keyring_seal(const struct keyring *kr, const struct secret *root, unsigned char **out,
                 size_t *outlen, struct rk_error *err);
void barrier_put_u32(unsigned char *p, uint32_t v);

/* ---- barrier-keys.c ---- */
int fpkey_ensure(struct barrier *br, const struct keyring *kr, struct fp_key **out, int *made,
                 struct rk_error *err);
int fpkey_make(const struct keyring *kr, struct secret **raw, unsigned char **blob, size_t *blen,
               struct rk_error *err);
int fpkey_prepare(const struct secret *raw, struct fp_key **out, struct rk_error *err);

#endif
