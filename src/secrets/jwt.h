/* jwt.h: JSON Web Tokens signed by transit keys (what Vault's transit lacks): issue a compact
 * JWS (RFC 7515/7519) with the latest version of a key, verify one against the key's versions,
 * and the key's public JWKs (RFC 7517) for a JWKS document.
 *
 * The header's kid is "<key name>:v<version>", so a verifier picks the version from the token
 * and the JWKS; alg follows the key type: ed25519 EdDSA, ecdsa-p256 ES256, ecdsa-p384 ES384,
 * RSA RS256 (or RS384, RS512, PS256, PS384, PS512 when asked). A token verifies while its
 * version is at or above the key's min_decryption_version: raising the minimum (the rotation's
 * finish step, or transit/keys/NAME/config) is what makes older tokens stop verifying. */
#ifndef REKEY_JWT_H
#define REKEY_JWT_H

#include <jansson.h>
#include <stdint.h>

#include "secrets/transit.h"
#include "util/err.h"

#define JWT_MAX_LEN (64 * 1024) /* bytes of a token verify accepts */

/* The algorithms key type signs JWTs with, '|'-separated (first = the default), or NULL for a
 * type that cannot sign. */
const char *jwt_algs_for(enum transit_type type);

/* Signs claims (a JSON object, serialized compactly as given) with the latest version of key
 * name. alg NULL takes the type's default. *out (malloc'd) is the compact token, *version (may
 * be NULL) the version that signed. Returns 0, -RK_ENOTFOUND, -RK_EINVAL (claims not an object,
 * alg not one of the type's, a key that cannot sign, no active version), or a store error. */
int jwt_issue(struct transit *t, const char *name, const json_t *claims, const char *alg,
              char **out, uint64_t *version, struct rk_error *err);

struct jwt_result {
    int valid;
    uint64_t version; /* from the kid, when it parsed */
    json_t *header;   /* the parsed header and claims when they parsed (jwt_result_clear) */
    json_t *claims;
    char reason[256]; /* why not valid; never a secret */
};

/* Verifies token against key name at time now (seconds): the kid names this key and a version
 * at or above its minimum, alg is one of the type's, the signature verifies, exp has not passed
 * and nbf has come (leeway seconds either way). Returns 0 with res filled (valid or not, and
 * why), or -RK_ENOTFOUND (no such key) or a store error. */
int jwt_verify(struct transit *t, const char *name, const char *token, int64_t now, int64_t leeway,
               struct jwt_result *res, struct rk_error *err);

/* Releases what res holds; accepts a zeroed res. */
void jwt_result_clear(struct jwt_result *res);

/* Appends to keys (a JSON array) the JWK of every version of key name that verifies: at or above
 * min_decryption_version, active or pending (a pending version is published before it signs
 * anything), never failed. *period (may be NULL) gets the key's auto_rotate_period. Returns 0,
 * -RK_ENOTFOUND, -RK_EINVAL (aes256-gcm96 has no public key), -RK_ENOMEM, or a store error. */
int jwt_jwks_add(struct transit *t, const char *name, json_t *keys, int64_t *period,
                 struct rk_error *err);

#endif
