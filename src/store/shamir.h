/* shamir.h: splitting the root key into shares and joining them (libgfshare, GF(2^8)),
 * with OpenSSL's RAND_bytes as the random source. */
#ifndef REKEY_SHAMIR_H
#define REKEY_SHAMIR_H

#include <stddef.h>

#include "util/err.h"
#include "util/secret.h"

#define SHAMIR_MAX_SHARES 255

/* Splits secret into n shares, any k of which rebuild it (2 <= k <= n <= 255, or k == n == 1).
 * Each share is returned as a printable string (hex: 2 chars of x-coordinate, then the share
 * bytes) in a secret; shares[0..n) are owned by the caller (secret_free each).
 * Returns 0, -RK_EINVAL, -RK_ENOMEM. */
int shamir_split(const struct secret *secret, unsigned n, unsigned k, struct secret **shares,
                 struct rk_error *err);

/* Checks one share as a person or a client gives it and returns it as shamir_split prints it
 * (lowercase hex). Accepted: that hex (either case), or standard base64 of the same bytes
 * (Vault's keys_base64); whitespace around it is forgiven. The share must hold 1 + secret_len
 * bytes, an x-coordinate of 1..255 then one byte per byte of the secret, so a share of another
 * length or encoding is refused here, before it can count towards a threshold.
 * Returns 0 with *out (caller frees with secret_free), -RK_EINVAL (the message says what is
 * wrong and never quotes the share), -RK_ENOMEM. */
int shamir_share_parse(const char *text, size_t len, size_t secret_len, struct secret **out,
                       struct rk_error *err);

/* Joins k printable shares into *out (caller frees). Returns 0, -RK_EINVAL (malformed share,
 * duplicate x-coordinate, length mismatch). A wrong but well-formed share yields a wrong secret;
 * the barrier's unseal then answers -RK_EBADKEY. */
int shamir_combine(struct secret *const *shares, unsigned k, struct secret **out,
                   struct rk_error *err);

#endif
