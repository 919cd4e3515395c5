/* enc.h: hex and base64 encodings, the human fingerprint of a secret, a string hash.
 *
 * Fingerprints: what a person sees of a secret value ("hmac:" + 12 hex) is the first 48 bits of
 * HMAC-SHA256 under the store's own fingerprint key (a random 32-byte key kept behind the
 * barrier, store/barrier.h), never a plain hash: a plain hash of a guessable value can be
 * checked by anyone who sees it ("sha256:f52fbd32b2b3" is SHA-256("hunter2")), a keyed one only
 * by someone holding the key. The same value has the same fingerprint everywhere in one store
 * (KV metadata, history, logs, hook output), across restarts and key-ring rotations, and a
 * different one in another store. fingerprint() is the only producer. */
#ifndef REKEY_ENC_H
#define REKEY_ENC_H

#include <stddef.h>
#include <stdint.h>

#define FINGERPRINT_PREFIX "hmac:"
#define FINGERPRINT_PREFIX_LEN 5
#define FINGERPRINT_HEX 12
#define FINGERPRINT_LEN (FINGERPRINT_PREFIX_LEN + FINGERPRINT_HEX) /* "hmac:" + 12 hex */
#define FP_KEY_LEN 32                                              /* bytes of a fingerprint key */

/* A store's fingerprint key, prepared for HMAC-SHA256 once. Reference counted: the barrier holds
 * one while unsealed; a user takes its own (barrier_fp_key) for as long as it computes. */
struct fp_key;

/* Writes 2*len lowercase hex chars and a NUL to out (size >= 2*len+1). */
void hex_encode(const unsigned char *in, size_t len, char *out);

/* The value of one hex digit (0-9, a-f, A-F), or -1. */
int hex_digit_value(int c);

/* Decodes 2*outlen hex chars; returns 0, or -1 on a bad char or wrong length. */
int hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);

/* Standard base64 with padding. Returns a malloc'd NUL-terminated string or NULL. */
char *base64_encode(const unsigned char *in, size_t len);

/* Decodes standard base64 (padding required). Returns a malloc'd buffer (*outlen set; one extra
 * NUL byte after it) or NULL on bad input. The caller wipes and frees it. */
unsigned char *base64_decode(const char *in, size_t inlen, size_t *outlen);

/* base64url without padding into out (size >= 4*((len+2)/3)+1). Returns the length written. */
size_t base64url_encode(const unsigned char *in, size_t len, char *out);

/* A fingerprint key holding a copy of key[0..len) (len >= 16) with one reference. Returns 0,
 * -RK_EINVAL (short key), -RK_ENOMEM or -RK_EINTERNAL (OpenSSL has no HMAC-SHA256); *out is
 * released with fp_key_unref. */
int fp_key_new(const unsigned char *key, size_t len, struct fp_key **out);

/* Takes another reference to k (NULL gives NULL) and returns k. */
struct fp_key *fp_key_ref(struct fp_key *k);

/* Drops a reference; the last one wipes and frees the key. Accepts NULL. */
void fp_key_unref(struct fp_key *k);

/* "hmac:" + the first 12 hex digits of HMAC-SHA256(k, data) into out (NUL-terminated). Safe
 * from several threads on one key. Returns 0, -RK_EINVAL (k is NULL), -RK_ENOMEM or
 * -RK_EINTERNAL; out is "" on failure. Never holds a secret beyond the 48 bits it shows. */
int fingerprint(const struct fp_key *k, const void *data, size_t len,
                char out[FINGERPRINT_LEN + 1]);

/* 1 when s is a fingerprint of the current scheme ("hmac:" + 12 lowercase hex), else 0 (also
 * for the unkeyed "sha256:" + 12 hex of rekey before keyed fingerprints, which must not be
 * shown: see kv.h). */
int fingerprint_valid(const char *s);

/* A 64-bit hash of the string s for in-memory hash tables (never stored: it may change), eight
 * bytes at a time, then a final mix so that the low and the top bits depend on every byte. Reads at
 * most limit + 1 bytes (enough to tell a string too long); *len gets the number hashed: strlen(s)
 * when that is at most limit. */
uint64_t str_hash(const char *s, size_t limit, size_t *len);

#endif
