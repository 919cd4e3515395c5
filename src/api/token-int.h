/* token-int.h: what the parts of the token module (token.h) share and no other module may use:
 * token.c (the records: creation, lookup, revocation, uses, renewal), token-expiry.c (the expiry
 * index: its key format, the sweep, the backfill, the watcher) and token-cache.c (the
 * validated-token cache). The store layout is described in token.h. */
#ifndef REKEY_API_TOKEN_INT_H
#define REKEY_API_TOKEN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "api/token.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#define ID_PREFIX "auth/token/id/"      /* + hex hash: a token's record */
#define EXP_PREFIX "auth/token/expiry/" /* + <EXP_DIGITS digits>/<hex hash>: its expiry entry */
#define EXP_DIGITS 20 /* INT64_MAX has 19 digits: zero-padded, key order is time order */
#define EXP_KEY_LEN (sizeof(EXP_PREFIX) + EXP_DIGITS + 1 + TOKEN_HASH_HEX) /* with the NUL */

/* --- token.c --- */

/* SHA-256 of the len bytes of a presented token into md (the caller wipes it). Never fails:
 * falls back to EVP_sha256() when the digest could not be fetched once. */
void token_digest(const char *token, size_t len, unsigned char md[32]);

/* Returns 1 when h is a token hash as stored (64 lowercase hex digits), else 0. h may be NULL. */
int token_hash_ok(const char *h);

/* Decodes a stored record (val holds its JSON) into *ti, which it zeroes first; ti->mod_rev is
 * left 0 and the caller frees *ti with token_info_clear. Returns 0, -RK_ECORRUPT (the record
 * does not parse) or -RK_ENOMEM, with *ti cleared on error. */
int token_record_decode(const struct secret *val, struct token_info *ti, struct rk_error *err);

/* Reads the record of the token with hash into *ti (token_info_clear) with its revision in
 * ti->mod_rev, after checking in constant time that the record names that hash. Sets *expired
 * to 1 when the record exists but has expired; it then reads as absent (-RK_ENOTFOUND) and the
 * caller decides whether to revoke it (this function writes nothing). Returns 0, -RK_ENOTFOUND
 * (malformed hash, no record, a spent last use, expired), -RK_ECORRUPT, -RK_ESEALED, -RK_EIO,
 * -RK_ENOMEM. */
int token_read_hash(struct barrier *br, const char *hash, struct token_info *ti, int *expired,
                    struct rk_error *err);

/* --- token-expiry.c --- */

/* Writes into out the expiry index key of the token with hash expiring at t (t <= 0 is written
 * as 0). A record's entry is put and deleted in the same transaction as the record. */
void token_exp_key(char out[EXP_KEY_LEN], int64_t t, const char *hash);

/* Tells the watcher registered with token_expiry_watch (if any) of an expiry just committed;
 * expire_time 0 (none) is not told. The watcher runs on the caller's thread, under a lock. */
void token_expiry_tell(int64_t expire_time);

#endif
