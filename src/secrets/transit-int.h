/* transit-int.h: what transit.c, transit-ring.c and transit-crypto.c share (not for other
 * modules). The crypto half knows OpenSSL and no storage; the storage half knows the barrier and
 * calls these; the keyring records are parsed and encoded in memory by transit-ring.c. */
#ifndef REKEY_TRANSIT_INT_H
#define REKEY_TRANSIT_INT_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>

#include "secrets/transit.h"

/* Key material not yet stored. */
struct transit_newkey {
    enum transit_type type;
    struct secret *priv; /* DER private key, or the 32 bytes of an AES key */
    unsigned char *pub;  /* DER SubjectPublicKeyInfo (malloc'd); NULL for aes256-gcm96 */
    size_t publen;
};

/* The private key of type in priv (DER) as an EVP_PKEY, checked to be of type. */
int tk_priv_load(enum transit_type type, const struct secret *priv, EVP_PKEY **out,
                 struct rk_error *err);

/* The public key in der[0..len) (SubjectPublicKeyInfo), checked to be of type. */
int tk_pub_load(enum transit_type type, const unsigned char *der, size_t len, EVP_PKEY **out,
                struct rk_error *err);

/* Raw signing and verifying with a loaded key (see transit_sign for the options). */
int tk_sign(EVP_PKEY *key, enum transit_type type, const struct transit_sign_opts *o,
            const unsigned char *in, size_t len, unsigned char **sig, size_t *siglen,
            struct rk_error *err);
int tk_verify(EVP_PKEY *key, enum transit_type type, const struct transit_sign_opts *o,
              const unsigned char *in, size_t len, const unsigned char *sig, size_t siglen,
              int *valid, struct rk_error *err);

/* Public key encodings: Vault's (see transit_public_key), PEM, JWK. */
int tk_pub_vault(EVP_PKEY *key, enum transit_type type, char **out, struct rk_error *err);
int tk_pub_pem(EVP_PKEY *key, char **out, struct rk_error *err);
int tk_pub_jwk(EVP_PKEY *key, enum transit_type type, const char *kid, json_t **out,
               struct rk_error *err);

/* Vault's export text of a private key (see transit_export). */
int tk_export(enum transit_type type, const struct secret *priv, struct secret **out,
              struct rk_error *err);

/* AES-256-GCM with a random 96-bit nonce: out = nonce || ciphertext || tag (malloc'd). */
int tk_aes_seal(const struct secret *key, const unsigned char *pt, size_t len, unsigned char **out,
                size_t *outlen, struct rk_error *err);
int tk_aes_open(const struct secret *key, const unsigned char *in, size_t len, struct secret **pt,
                struct rk_error *err);

/* base64url without padding -> bytes (malloc'd, *outlen), or NULL when it is not that. */
unsigned char *tk_b64url_decode(const char *in, size_t len, size_t *outlen);

/* ---- parsed keyrings (transit-ring.c) ---- */

/* One version of a parsed keyring; the EVP_PKEYs and the AES key are loaded on first use. */
struct tk_ver {
    uint64_t version;
    int64_t created_us;
    enum transit_vstate state;
    unsigned char *pub; /* DER SubjectPublicKeyInfo; NULL for aes256-gcm96 */
    size_t publen;
    EVP_PKEY *pubkey, *privkey; /* under ring->mu until set; immutable after */
    struct secret *aes;
};

/* A parsed policy record (and, in the cache, its loaded keys). */
struct tk_ring {
    atomic_int refs;
    char *name;
    int64_t loaded_ms;
    enum transit_type type;
    uint64_t latest, min_dec, min_enc;
    int deletion_allowed, exportable;
    int64_t auto_rotate_period;
    size_t nv;
    struct tk_ver *v; /* ascending */
    pthread_mutex_t mu;
};

/* Frees r and everything it holds (wiping the key material), whatever its references. */
void ring_free(struct tk_ring *r);

/* Drops a reference to r; the last one frees it. NULL is nothing. */
void ring_unref(struct tk_ring *r);

/* A new empty keyring named name with one reference; NULL when out of memory. */
struct tk_ring *ring_new(const char *name);

/* The version of r numbered version, or NULL. */
struct tk_ver *ring_find(const struct tk_ring *r, uint64_t version);

/* Parses a policy record of keyring name into *out (one reference). Returns 0 or -RK_ECORRUPT. */
int ring_parse(const char *name, const struct secret *text, struct tk_ring **out,
               struct rk_error *err);

/* The policy record of r (malloc'd JSON text); NULL when out of memory. */
char *ring_encode(const struct tk_ring *r);

/* Appends a version of key to r (memory only), in state; *version gets its number. */
int ring_append(struct tk_ring *r, const struct transit_newkey *key, enum transit_vstate state,
                uint64_t *version, struct rk_error *err);

#endif
