/* transit.h: Vault's transit engine: named keyrings of versioned keys that sign and verify
 * (ed25519, ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096) or encrypt and decrypt
 * (aes256-gcm96), whose private material never leaves rekey unless the key is exportable.
 *
 * A keyring is versions, not current/previous: every version at or above
 * min_decryption_version verifies and decrypts; latest_version signs and encrypts (or the
 * version a caller names, at or above min_encryption_version). A version is `active`, or
 * `pending` (made by the rotation engine: published in the keyring and the JWKS so verifiers
 * know it, never used to sign or encrypt until transit_promote), or `failed` (a rotation that
 * was undone: kept so its number is never reused, published nowhere, usable for nothing).
 *
 * Storage (barrier records, so every byte is encrypted at rest, AAD = the storage key):
 *   transit/policy/<name>       the keyring's public part, JSON: {"type","latest_version",
 *                               "min_decryption_version","min_encryption_version",
 *                               "deletion_allowed","exportable","auto_rotate_period",
 *                               "versions":[{"version","created_us","state","public_key"}]}
 *                               (public_key: base64 of the DER SubjectPublicKeyInfo; none for
 *                               aes256-gcm96)
 *   transit/key/<name>/<ver>    the version's private material, raw bytes: DER PKCS#8 (or the
 *                               algorithm's DER private key) for the asymmetric types, the 32
 *                               key bytes for aes256-gcm96. Read into the secure heap only.
 * Every change is one transaction that compares the policy record's revision, so two writers
 * (two processes on one store) never lose a version; the writers here retry on a conflict.
 *
 * Key generation (RSA-4096 takes seconds) is never done under a lock: transit_keygen makes a
 * key with no lock and no transaction open, and the writer then takes the compare-and-swap
 * path above (a lost race discards the key it made).
 *
 * Cache: one struct transit per barrier (transit_open returns the shared one), holding the
 * parsed keyrings and their loaded keys for TRANSIT_CACHE_TTL_MS; a write through it drops the
 * keyring at once, so requests and the rotation engine of one process agree at once, and a
 * change written by another process (a CLI rotation on the same store) is seen within the TTL.
 * Thread-safe. */
#ifndef REKEY_TRANSIT_H
#define REKEY_TRANSIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#define TRANSIT_NAME_MAX 128       /* bytes of a key name (Vault's generic name characters) */
#define TRANSIT_MAX_VERSIONS 10000 /* versions one keyring may hold */
#define TRANSIT_CACHE_TTL_MS 1000
#define TRANSIT_AUTO_ROTATE_MIN 3600 /* seconds: Vault's shortest auto_rotate_period */

enum transit_type {
    TRANSIT_AES256_GCM96 = 0,
    TRANSIT_ED25519,
    TRANSIT_ECDSA_P256,
    TRANSIT_ECDSA_P384,
    TRANSIT_RSA_2048,
    TRANSIT_RSA_3072,
    TRANSIT_RSA_4096,
    TRANSIT_NTYPES
};

enum transit_vstate { TRANSIT_V_ACTIVE = 0, TRANSIT_V_PENDING, TRANSIT_V_FAILED };

/* Vault's name of a type ("ed25519", "rsa-4096", ...), and back (0 or -RK_EINVAL). */
const char *transit_type_name(enum transit_type type);
int transit_type_parse(const char *s, enum transit_type *out);

/* 1 for the types that sign and verify (the asymmetric ones), 0 for aes256-gcm96. */
int transit_type_signs(enum transit_type type);

/* Checks a key name: 1..TRANSIT_NAME_MAX bytes of [A-Za-z0-9._@-], not "." nor "..". Returns 0
 * or -RK_EINVAL with the reason in err. */
int transit_name_check(const char *name, struct rk_error *err);

/* ---- the engine ---- */

struct transit;

/* The transit engine of br, shared by every caller of one process (reference counted): *out is
 * released with transit_close. Returns 0 or -RK_ENOMEM. */
int transit_open(struct barrier *br, struct transit **out, struct rk_error *err);

/* Drops a reference; the last one frees the cache. Accepts NULL. */
void transit_close(struct transit *t);

/* ---- new keys, made without any lock ---- */

/* Key material not yet stored (secure heap). */
struct transit_newkey;

/* Generates a key of type (seconds for rsa-4096: call it with no lock held). Returns 0 with
 * *out (transit_newkey_free), -RK_ENOMEM or -RK_EINTERNAL (OpenSSL failed). */
int transit_keygen(enum transit_type type, struct transit_newkey **out, struct rk_error *err);

/* A key from given material: raw[0..len) is the 32-byte private key (seed) for ed25519 and
 * aes256-gcm96, a DER private key (PKCS#8 or the algorithm's own) for the others, checked to be
 * of type. For known-answer tests and imports. Returns 0, -RK_EINVAL, -RK_ENOMEM. */
int transit_newkey_import(enum transit_type type, const unsigned char *raw, size_t len,
                          struct transit_newkey **out, struct rk_error *err);

/* Wipes and frees; accepts NULL. */
void transit_newkey_free(struct transit_newkey *k);

/* ---- keyrings ---- */

struct transit_create_opts {
    enum transit_type type;
    int exportable;
    int deletion_allowed;
    int64_t auto_rotate_period; /* seconds; 0 or >= TRANSIT_AUTO_ROTATE_MIN */
    int pending;                /* 1: version 1 is pending (the rotation engine promotes it) */
};

/* Creates keyring name with key as version 1 (key is copied; the caller frees it). When the
 * keyring exists already nothing changes and *created (may be NULL) is 0, as Vault answers a
 * create of an existing key. Returns 0, -RK_EINVAL (bad name, key of another type, bad period),
 * or a store error. */
int transit_create(struct transit *t, const char *name, const struct transit_create_opts *o,
                   const struct transit_newkey *key, int *created, struct rk_error *err);

/* 1 when keyring name exists, 0 when not, or a negative store error. */
int transit_exists(struct transit *t, const char *name, struct rk_error *err);

/* Adds key as the next version: active and latest (Vault's rotate) or, with pending, published
 * but not used until transit_promote. *version (may be NULL) gets its number. Returns 0,
 * -RK_ENOTFOUND, -RK_EINVAL (key of another type), -RK_ELIMIT (TRANSIT_MAX_VERSIONS), or a
 * store error. */
int transit_add_version(struct transit *t, const char *name, const struct transit_newkey *key,
                        int pending, uint64_t *version, struct rk_error *err);

/* The highest pending version of name (a candidate a crashed rotation left), into *version (0
 * when none). Returns 0, -RK_ENOTFOUND, or a store error. */
int transit_pending_version(struct transit *t, const char *name, uint64_t *version,
                            struct rk_error *err);

/* Makes a pending (or active) version active; latest_version becomes it when it is higher.
 * Safe to run twice. Returns 0, -RK_ENOTFOUND (no keyring or no such version), -RK_EINVAL (a
 * failed version), or a store error. */
int transit_promote(struct transit *t, const char *name, uint64_t version, struct rk_error *err);

/* Marks a version failed (an undone rotation): never used again, published nowhere; when it was
 * latest, the highest active version below it becomes latest again. Safe to run twice;
 * -RK_ENOTFOUND when the keyring or version is gone (nothing to undo: callers may ignore it).
 * Returns 0 or a store error. */
int transit_fail_version(struct transit *t, const char *name, uint64_t version,
                         struct rk_error *err);

/* What transit_config changes: each member with its set_ flag. */
struct transit_config {
    int set_min_decryption, set_min_encryption, set_deletion_allowed, set_exportable,
        set_auto_rotate;
    uint64_t min_decryption_version; /* 0 means 1, as in Vault */
    uint64_t min_encryption_version; /* 0 = latest */
    int deletion_allowed;
    int exportable;             /* may only go from false to true */
    int64_t auto_rotate_period; /* seconds: 0, or >= TRANSIT_AUTO_ROTATE_MIN */
};

/* Changes name's configuration with Vault's rules: min_decryption_version <= latest_version,
 * min_encryption_version <= latest_version and (when not 0) >= min_decryption_version,
 * exportable never goes back to false, auto_rotate_period 0 or at least an hour. Returns 0,
 * -RK_ENOTFOUND, -RK_EINVAL (the rule broken, in err), or a store error. */
int transit_configure(struct transit *t, const char *name, const struct transit_config *c,
                      struct rk_error *err);

/* Raises min_decryption_version of name to at least min (never lowers it; at most
 * latest_version), and min_encryption_version with it when it would fall below. *now (may be
 * NULL) gets the minimum after the call. For the rotation engine's finish step. Returns 0,
 * -RK_ENOTFOUND, or a store error. */
int transit_raise_min(struct transit *t, const char *name, uint64_t min, uint64_t *now,
                      struct rk_error *err);

/* Deletes keyring name and every version's material, when its deletion_allowed is set.
 * Returns 0, -RK_ENOTFOUND, -RK_EINVAL ("deletion is not allowed for this key"), or a store
 * error. */
int transit_delete(struct transit *t, const char *name, struct rk_error *err);

/* Calls cb with each keyring name in byte order; cb returns 0 to go on, 1 to stop, or -RK_E*
 * (returned). Returns 0 or a store error. */
typedef int (*transit_list_cb)(void *arg, const char *name);
int transit_list(struct transit *t, transit_list_cb cb, void *arg, struct rk_error *err);

/* ---- what a keyring looks like (public) ---- */

struct transit_version_info {
    uint64_t version;
    int64_t created_us;
    enum transit_vstate state;
};

struct transit_info {
    enum transit_type type;
    uint64_t latest_version;         /* the version that signs and encrypts; 0: none yet */
    uint64_t min_decryption_version; /* >= 1 */
    uint64_t min_encryption_version; /* 0 = latest */
    int deletion_allowed, exportable;
    int64_t auto_rotate_period; /* seconds, 0 = off */
    size_t nversions;
    struct transit_version_info *versions; /* ascending */
};

/* The public description of name. Returns 0 with *out (transit_info_free), -RK_ENOTFOUND, or a
 * store error. Served from the cache. */
int transit_info_get(struct transit *t, const char *name, struct transit_info **out,
                     struct rk_error *err);
void transit_info_free(struct transit_info *i);

/* The public key of a version as Vault shows it (ed25519: base64 of the 32 raw bytes; ECDSA and
 * RSA: PEM of the SubjectPublicKeyInfo), malloc'd into *out. Returns 0, -RK_ENOTFOUND,
 * -RK_EINVAL (aes256-gcm96 has none), or a store error. */
int transit_public_key(struct transit *t, const char *name, uint64_t version, char **out,
                       struct rk_error *err);

/* The public key of a version as PEM (SubjectPublicKeyInfo) for every asymmetric type. */
int transit_public_pem(struct transit *t, const char *name, uint64_t version, char **out,
                       struct rk_error *err);

/* The public key of a version as a JWK (RFC 7517: kty, crv/x/y or n/e, "use":"sig", "kid" =
 * "<name>:v<version>", "alg" for the types with one algorithm: EdDSA, ES256, ES384). Returns 0
 * with *out (json_decref), -RK_ENOTFOUND, -RK_EINVAL (aes256-gcm96), or a store error. */
int transit_jwk(struct transit *t, const char *name, uint64_t version, json_t **out,
                struct rk_error *err);

/* Private material as Vault's export shows it (exportable keys only): ed25519 base64 of the
 * 64-byte private key (seed and public key), ECDSA PEM "EC PRIVATE KEY", RSA PEM "RSA PRIVATE
 * KEY", aes256-gcm96 base64 of the key. *out is a secret. Returns 0, -RK_ENOTFOUND, -RK_EPERM
 * (not exportable), or a store error. */
int transit_export(struct transit *t, const char *name, uint64_t version, struct secret **out,
                   struct rk_error *err);

/* ---- signing ---- */

enum transit_pad { TRANSIT_PAD_PSS = 0, TRANSIT_PAD_PKCS1V15 };
enum transit_marshal { TRANSIT_MARSHAL_ASN1 = 0, TRANSIT_MARSHAL_JWS };

#define TRANSIT_SALT_AUTO (-1) /* sign: the largest salt; verify: any salt */
#define TRANSIT_SALT_HASH (-2) /* the digest's length (what JWS's PS256 requires) */

struct transit_sign_opts {
    const char *hash;             /* "sha2-256" (NULL), sha2-224, sha2-384, sha2-512, sha3-224..512;
                                   * ignored by ed25519 */
    int prehashed;                /* the input is the digest already (ECDSA, RSA) */
    enum transit_pad pad;         /* RSA */
    int salt_len;                 /* RSA-PSS: TRANSIT_SALT_AUTO (default), _HASH, or bytes */
    enum transit_marshal marshal; /* ECDSA: DER (asn1) or r||s (jws) */
    uint64_t key_version;         /* 0: latest_version; else >= min_encryption_version */
};

/* Signs in[0..len) with a version of name. *sig (malloc'd) gets the raw signature (ECDSA in the
 * marshaling asked), *version the version used. Returns 0, -RK_ENOTFOUND, -RK_EINVAL (type that
 * cannot sign, bad option, version below min_encryption_version or not active, no active
 * version yet), -RK_EINTERNAL, or a store error. */
int transit_sign(struct transit *t, const char *name, const struct transit_sign_opts *o,
                 const unsigned char *in, size_t len, unsigned char **sig, size_t *siglen,
                 uint64_t *version, struct rk_error *err);

/* Verifies sig[0..siglen) of in[0..len) with version of name. *valid is 1 or 0. Returns 0,
 * -RK_ENOTFOUND (no keyring), -RK_EINVAL (no such version, a failed one, one below
 * min_decryption_version: "signature version is disallowed by policy (too old)", a bad option),
 * or a store error. */
int transit_verify(struct transit *t, const char *name, const struct transit_sign_opts *o,
                   uint64_t version, const unsigned char *in, size_t len, const unsigned char *sig,
                   size_t siglen, int *valid, struct rk_error *err);

/* Vault's text forms: "vault:v<N>:" + base64 (asn1) or base64url without padding (jws). */
int transit_sig_format(uint64_t version, const unsigned char *sig, size_t siglen,
                       enum transit_marshal m, char **out);
/* Parses such a text: *version and the raw bytes (*raw malloc'd). Returns 0 or -RK_EINVAL. */
int transit_sig_parse(const char *text, enum transit_marshal m, uint64_t *version,
                      unsigned char **raw, size_t *rawlen, struct rk_error *err);

/* The rotation engine's test of a version (pending or active): signs a random message with it
 * and verifies the signature with the published public key, and checks that the message
 * changed by one bit does not verify (or, for aes256-gcm96, encrypts and decrypts it). Reads
 * the keyring fresh, not from the cache. Returns 0, -RK_EREJECTED (the check failed),
 * -RK_ENOTFOUND, -RK_EINVAL (no such version, or a failed one), or a store error. */
int transit_self_test(struct transit *t, const char *name, uint64_t version, struct rk_error *err);

/* ---- encryption (aes256-gcm96) ---- */

/* Encrypts pt[0..len) with version (0: latest) of name: *out (malloc'd) is "vault:v<N>:" +
 * base64(nonce || ciphertext || tag), as Vault writes it. Returns 0, -RK_ENOTFOUND, -RK_EINVAL
 * (not an encryption key, version refused), or a store error. */
int transit_encrypt(struct transit *t, const char *name, uint64_t version, const unsigned char *pt,
                    size_t len, char **out, uint64_t *used, struct rk_error *err);

/* Decrypts such a text into *pt (a secret). *version (may be NULL) gets its version. Returns 0,
 * -RK_ENOTFOUND, -RK_EINVAL (malformed, too old, or it does not authenticate: "cipher: message
 * authentication failed"), or a store error. */
int transit_decrypt(struct transit *t, const char *name, const char *ct, struct secret **pt,
                    uint64_t *version, struct rk_error *err);

#endif
