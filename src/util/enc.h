/* enc.h: hex and base64 encodings, the human fingerprint of a secret, a string hash. */
#ifndef REKEY_ENC_H
#define REKEY_ENC_H

#include <stddef.h>
#include <stdint.h>

#define FINGERPRINT_LEN 19 /* "sha256:" + 12 hex */

/* Writes 2*len lowercase hex chars and a NUL to out (size >= 2*len+1). */
void hex_encode(const unsigned char *in, size_t len, char *out);

/* Decodes 2*outlen hex chars; returns 0, or -1 on a bad char or wrong length. */
int hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen);

/* Standard base64 with padding. Returns a malloc'd NUL-terminated string or NULL. */
char *base64_encode(const unsigned char *in, size_t len);

/* Decodes standard base64 (padding required). Returns a malloc'd buffer (*outlen set; one extra
 * NUL byte after it) or NULL on bad input. The caller wipes and frees it. */
unsigned char *base64_decode(const char *in, size_t inlen, size_t *outlen);

/* base64url without padding into out (size >= 4*((len+2)/3)+1). Returns the length written. */
size_t base64url_encode(const unsigned char *in, size_t len, char *out);

/* "sha256:" + first 12 hex of SHA-256(data) into out (size >= FINGERPRINT_LEN + 1). */
void fingerprint(const void *data, size_t len, char out[FINGERPRINT_LEN + 1]);

/* A 64-bit hash of the string s for in-memory hash tables (never stored: it may change), eight
 * bytes at a time, then a final mix so that the low and the top bits depend on every byte. Reads at
 * most limit + 1 bytes (enough to tell a string too long); *len gets the number hashed: strlen(s)
 * when that is at most limit. */
uint64_t str_hash(const char *s, size_t limit, size_t *len);

#endif
