/* transit-int.h: what transit.c and transit-crypto.c share (not for other modules). The crypto
 * half knows OpenSSL and no storage; the storage half knows the barrier and calls these. */
#ifndef REKEY_TRANSIT_INT_H
#define REKEY_TRANSIT_INT_H

#include <openssl/evp.h>

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

#endif
