/* token.h: Vault-style service tokens, kept behind the barrier as SHA-256 hashes.
 *
 * A token is "hvs." + 43 base64url characters (32 random bytes). Only SHA-256(token) is stored:
 *   "auth/token/id/<hex>"                 JSON record (accessor, policies, ttl, times, uses...)
 *   "auth/token/accessor/<accessor>"      the hex hash of the token with that accessor
 *   "auth/token/parent/<phex>/<chex>"     child index: revoking a parent revokes its children
 * The token itself never reaches the store, a log line or an error message. A looked-up token
 * is compared with its record's hash with CRYPTO_memcmp.
 *
 * Lifetimes: ttl 0 means no expiry (the root token). An expired record is treated as absent
 * (and removed lazily). num_uses > 0 counts down on every authorised request (token_use); the
 * record is revoked when it reaches 0. The decrement is a compare-and-set on the record's
 * revision, retried on conflict, so concurrent requests never spend a use twice.
 *
 * Threads: every function may be called from several threads at once (state is in the store). */
#ifndef REKEY_API_TOKEN_H
#define REKEY_API_TOKEN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#define TOKEN_PREFIX "hvs."
#define TOKEN_RAND_BYTES 32
#define TOKEN_MAX_LEN 256     /* a presented token longer than this is refused unread */
#define TOKEN_HASH_HEX 65     /* 64 hex + NUL */
#define TOKEN_ACCESSOR_LEN 25 /* 24 base62 characters + NUL */
#define TOKEN_MAX_POLICIES 64
#define TOKEN_DISPLAY_MAX 128
#define TOKEN_META_MAX 4096 /* bytes of the compact JSON metadata object */

/* What a token record says; a plain value except policies and meta_json (token_info_clear). */
struct token_info {
    char hash[TOKEN_HASH_HEX]; /* hex SHA-256 of the token: the record's identity */
    char accessor[TOKEN_ACCESSOR_LEN];
    char parent[TOKEN_HASH_HEX];          /* "" for an orphan */
    char display_name[TOKEN_DISPLAY_MAX]; /* "token", "root", "token-<name>" */
    char **policies;                      /* sorted, unique, lowercased; malloc'd */
    size_t npolicies;
    char *meta_json;          /* compact JSON object of string metadata, or NULL */
    int64_t creation_time;    /* seconds since the epoch */
    int64_t expire_time;      /* 0 = never */
    int64_t ttl;              /* seconds granted at create/renew (0 = no expiry) */
    int64_t explicit_max_ttl; /* 0 = none */
    int64_t num_uses;         /* 0 = unlimited; remaining uses otherwise */
    int renewable;
    int orphan;
    int root;        /* 1 when "root" is among the policies */
    int64_t mod_rev; /* the record's revision when read */
};

/* Frees the policies and meta of ti and zeroes it. Accepts NULL and a zeroed struct. */
void token_info_clear(struct token_info *ti);

struct token_create_opts {
    const char *const *policies; /* names (checked: policy names or "root"); may be NULL if n 0 */
    size_t npolicies;
    int no_default_policy;    /* else "default" is added (never to a root token) */
    int64_t ttl;              /* seconds; 0 = no expiry (only allowed when parent is root
                               * or no parent: the caller enforces Vault's rules) */
    int64_t explicit_max_ttl; /* seconds; 0 = none; caps ttl and renewals */
    int64_t num_uses;         /* 0 = unlimited */
    int renewable;
    const char *display_name; /* NULL = "token" */
    const char *meta_json;    /* compact JSON object of strings, or NULL */
    const char *parent_hash;  /* hex hash of the creating token; NULL or "" = orphan */
    const char *id;           /* a chosen token (dev root token id), or NULL for random;
                               * 1..TOKEN_MAX_LEN printable ASCII without spaces */
};

/* Hashes a presented token to hex (out: TOKEN_HASH_HEX bytes). */
void token_hash_hex(const char *token, size_t len, char out[TOKEN_HASH_HEX]);

/* Creates a token and stores its record (and the accessor and child index) in one transaction.
 * *token gets the token text (caller frees with secret_free), *ti (may be NULL) its record.
 * Returns 0, -RK_EINVAL (bad option, message in err), -RK_EEXISTS (a chosen id already exists),
 * -RK_ENOTFOUND (the parent is gone), -RK_ESEALED, -RK_EIO, -RK_ENOMEM. */
int token_create(struct barrier *br, const struct token_create_opts *o, struct secret **token,
                 struct token_info *ti, struct rk_error *err);

/* Creates a root token (policies ["root"], no expiry, orphan, display name "root"): operator
 * init, sys/init and -dev. id: a chosen token or NULL for a random one. */
int token_create_root(struct barrier *br, const char *id, struct secret **token,
                      struct rk_error *err);

/* Looks a presented token up (no use is spent). Returns 0 with *ti filled (token_info_clear),
 * -RK_ENOTFOUND for an unknown, expired or revoked token (the same code for all three, so a
 * caller cannot tell them apart), -RK_EINVAL for an empty or over-long token, -RK_ESEALED,
 * -RK_ECORRUPT, -RK_EIO. */
int token_lookup(struct barrier *br, const char *token, struct token_info *ti,
                 struct rk_error *err);

/* The same by hash or by accessor (for auth/token/lookup-accessor and revoke-accessor). */
int token_lookup_hash(struct barrier *br, const char *hash, struct token_info *ti,
                      struct rk_error *err);
int token_lookup_accessor(struct barrier *br, const char *accessor, struct token_info *ti,
                          struct rk_error *err);

/* token_lookup, then spends one use when the token has a use limit (atomically; the last use
 * revokes it after this request). Returns what token_lookup returns; -RK_ENOTFOUND when the
 * uses ran out meanwhile. ti->num_uses is the count before this use (Vault reports that). */
int token_use(struct barrier *br, const char *token, struct token_info *ti, struct rk_error *err);

/* Renews the token with hash: new expiry = now + increment (increment 0: the token's ttl),
 * capped by explicit_max_ttl from creation. Returns 0 with *ti updated (may be NULL),
 * -RK_ENOTFOUND, -RK_EINVAL (not renewable, or no ttl to renew), -RK_ECONFLICT after retries,
 * -RK_ESEALED, -RK_EIO. */
int token_renew(struct barrier *br, const char *hash, int64_t increment, struct token_info *ti,
                struct rk_error *err);

/* Revokes the token with hash and, recursively, every token created from it (children first,
 * so a crash leaves no orphan that thinks it has a parent). Returns 0, -RK_ENOTFOUND (no such
 * token), -RK_ESEALED, -RK_EIO. *count (may be NULL) gets the number of tokens revoked. */
int token_revoke_hash(struct barrier *br, const char *hash, size_t *count, struct rk_error *err);

/* Counts stored tokens (for tests and status). */
int token_count(struct barrier *br, size_t *count, struct rk_error *err);

/* --- The validated-token cache of a server ---
 *
 * Every request presents a token; looking it up costs a store read (a SQLite transaction, an
 * AES-GCM decryption) and a JSON decode. The server keeps the records it has validated in a
 * bounded in-memory cache keyed by SHA-256(token) (never the token), holding the policies, the
 * expiry and the rest of struct token_info:
 *   - an entry is served for at most ttl_ms after it was read from the store, and never past
 *     the token's own expire_time;
 *   - a token with a use limit (num_uses > 0) is never cached: every use must reach the store
 *     to count down atomically (token_use);
 *   - the caller flushes the cache (token_cache_flush) after every revocation, renewal or use
 *     count change it makes, and on seal; a lookup that read the store before such a flush never
 *     inserts what it read after it (a generation counter), so in THIS process a revocation
 *     takes effect at once;
 *   - with several processes on one store (servers sharing an etcd cluster, or the CLI revoking
 *     on the local store a server also serves), a token revoked or renewed by another process
 *     may still be accepted here, with its old record, for up to ttl_ms (TOKEN_CACHE_TTL_MS).
 * Entries are wiped when dropped. Thread-safe (striped locks). */
#define TOKEN_CACHE_TTL_MS 1000
#define TOKEN_CACHE_MAX 4096

struct token_cache;

/* Creates a cache of at most max entries (0 = TOKEN_CACHE_MAX), each served for at most
 * ttl_ms (0 = TOKEN_CACHE_TTL_MS). Returns 0 or -RK_ENOMEM; *out is freed with
 * token_cache_free. */
int token_cache_new(size_t max, int64_t ttl_ms, struct token_cache **out);

/* Wipes and frees every entry and c. Accepts NULL. */
void token_cache_free(struct token_cache *c);

/* Drops every entry (wiped) and makes lookups in flight not insert what they read. Call it
 * after a revocation, renewal or spent use, and when sealing. Accepts NULL. */
void token_cache_flush(struct token_cache *c);

/* token_lookup through the cache: a hit copies the cached record into *ti (no store access);
 * a miss is token_lookup, whose result is cached when the token is valid and unlimited. c may
 * be NULL (then it is token_lookup). Same returns and ownership as token_lookup. */
int token_lookup_cached(struct token_cache *c, struct barrier *br, const char *token,
                        struct token_info *ti, struct rk_error *err);

/* Statistics (hits, misses) since creation, for tests and benchmarks. */
void token_cache_stats(struct token_cache *c, uint64_t *hits, uint64_t *misses);

/* The body of auth/token/create as Vault clients send it. Strings and meta are borrowed from
 * the JSON body they were decoded from. */
struct token_create_body {
    const char *policies[TOKEN_MAX_POLICIES]; /* empty strings dropped */
    size_t npolicies;
    int no_parent, no_default_policy, renewable; /* renewable defaults to 1 */
    int64_t num_uses;
    const char *display_name, *id;
    json_t *meta;                          /* an object of strings, JSON null, or NULL */
    int64_t ttl, explicit_max_ttl, period; /* seconds; from numbers or "1h"-style strings */
};

/* Decodes and checks a token-create body (types, durations, policy list, meta values) without
 * touching any store: a pure function, fuzzed by fuzz/tokenbody-fuzzer.c. Returns 0 or -RK_EINVAL
 * with a message fit for a 400 answer (it never quotes a value). */
int token_create_body_decode(json_t *body, struct token_create_body *b, struct rk_error *err);

#endif
