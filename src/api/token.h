/* token.h: Vault-style service tokens, kept behind the barrier as SHA-256 hashes.
 *
 * A token is "hvs." + 43 base64url characters (32 random bytes). Only SHA-256(token) is stored:
 *   "auth/token/id/<hex>"                 JSON record (accessor, policies, ttl, times, uses...)
 *   "auth/token/accessor/<accessor>"      the hex hash of the token with that accessor
 *   "auth/token/parent/<phex>/<chex>"     child index: revoking a parent revokes its children
 *   "auth/token/expiry/<20 digits>/<hex>" expiry index: the expire_time (zero-padded, so key
 *                                         order is time order) of every token that has one
 *   "auth/token/expiry-indexed"           set once the index covers every record (records
 *                                         written before the index existed: token_expiry_backfill)
 * The token itself never reaches the store, a log line or an error message. A looked-up token
 * is compared with its record's hash with CRYPTO_memcmp.
 *
 * Lifetimes (docs/server.md, "Token lifetimes"): ttl 0 means no expiry (root tokens only; any
 * other token without a ttl gets the system maximum). Every ttl, period and renewal is capped by
 * the system maximum (max_lease_ttl: server.max_lease_ttl, default 768h); a renewal also by
 * creation + max_lease_ttl (not for periodic tokens), by creation + explicit_max_ttl, and, for a
 * child, by its parent's expire_time: a child's expiry is never later than its parent's, at
 * creation and at every renewal. A parent renewed to an EARLIER expiry than its children's (or
 * a record from before these rules) is handled by the expiry index: token_sweep revokes every
 * expired token with its subtree, as revocation does, without waiting for anyone to present it.
 * An expired record is treated as absent (and also removed lazily on lookup). Durations above
 * TOKEN_DURATION_MAX are refused (-RK_EINVAL); all arithmetic on times saturates.
 * num_uses > 0 counts down on every authorised request (token_use); the
 * record is revoked when it reaches 0. The decrement is a compare-and-set on the record's
 * revision, retried on conflict, so concurrent requests never spend a use twice.
 *
 * Threads: every function may be called from several threads at once (state is in the store).
 *
 * Code: token.c (the records: creation, lookup, revocation, uses, renewal), token-expiry.c (the
 * expiry index, below), token-cache.c (the validated-token cache, below); token-int.h holds what
 * they share; token_create_body_decode is in routes-token.c. */
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
/* The system maximum TTL when none is configured: Vault's default max_lease_ttl (32 days). */
#define TOKEN_MAX_LEASE_TTL_DEFAULT ((int64_t)768 * 3600)
/* The largest duration accepted anywhere (a ttl, period, increment, max_lease_ttl): what Vault's
 * Go durations hold (2^63-1 ns, about 292 years); a larger one is refused, a smaller one capped. */
#define TOKEN_DURATION_MAX ((int64_t)(INT64_MAX / 1000000000))

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
    int64_t period;           /* 0 = not periodic; else a renewal grants exactly this */
    int64_t num_uses;         /* 0 = unlimited; remaining uses otherwise */
    int renewable;
    int orphan;
    int root;        /* 1 when "root" is among the policies */
    int64_t mod_rev; /* the record's revision when read */
    int64_t granted; /* seconds the create or renew that returned this record granted, counted
                      * from its own clock reading (0 otherwise; not stored) */
};

/* Frees the policies and meta of ti and zeroes it. Accepts NULL and a zeroed struct. */
void token_info_clear(struct token_info *ti);

struct token_create_opts {
    const char *const *policies; /* names (checked: policy names or "root"); may be NULL if n 0 */
    size_t npolicies;
    int no_default_policy;    /* else "default" is added (never to a root token) */
    int64_t ttl;              /* seconds; 0 = the system maximum, or no expiry for a root token
                               * (the caller enforces who may create one) */
    int64_t explicit_max_ttl; /* seconds; 0 = none; caps ttl and renewals */
    int64_t period;           /* seconds; 0 = none; else the ttl and every renewal's grant */
    int64_t max_lease_ttl;    /* the system maximum (server.max_lease_ttl); 0 = the default */
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

/* Creates a token and stores its record (and the accessor, child and expiry index) in one
 * transaction. The ttl (or period) is capped by max_lease_ttl and explicit_max_ttl, and a
 * child's expiry by its parent's (see "Lifetimes" above; ti->ttl is what was granted).
 * *token gets the token text (caller frees with secret_free), *ti (may be NULL) its record.
 * Returns 0, -RK_EINVAL (bad option or a duration above TOKEN_DURATION_MAX, message in err),
 * -RK_EEXISTS (a chosen id already exists), -RK_ENOTFOUND (the parent is gone), -RK_ECONFLICT
 * (the parent changed meanwhile), -RK_ESEALED, -RK_EIO, -RK_ENOMEM. */
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

/* Renews the token with hash: new expiry = now + increment (increment 0: the token's ttl; a
 * periodic token always gets its period), capped by max_lease_ttl (0 = the default) from now
 * and, unless periodic, from creation; by explicit_max_ttl from creation; and by the parent's
 * expiry. Never past TOKEN_DURATION_MAX arithmetic. Returns 0 with *ti updated (may be NULL),
 * -RK_ENOTFOUND (also when its parent is gone: the token is revoked then), -RK_EINVAL (not
 * renewable, no ttl to renew, an increment above TOKEN_DURATION_MAX, or nothing left of its
 * maximum), -RK_ECONFLICT after retries, -RK_ESEALED, -RK_EIO. */
int token_renew(struct barrier *br, const char *hash, int64_t increment, int64_t max_lease_ttl,
                struct token_info *ti, struct rk_error *err);

/* Revokes the token with hash and, recursively, every token created from it (children first,
 * so a crash leaves no orphan that thinks it has a parent). Returns 0, -RK_ENOTFOUND (no such
 * token), -RK_ESEALED, -RK_EIO. *count (may be NULL) gets the number of tokens revoked. */
int token_revoke_hash(struct barrier *br, const char *hash, size_t *count, struct rk_error *err);

/* Called with the accessor of each token revoked (after its records are gone), e.g. to revoke
 * the leases issued to it (engine/leases.h). fn NULL: nothing is called. */
void token_revoke_hook_set(void (*fn)(const char *accessor));

/* Counts stored tokens (for tests and status). */
int token_count(struct barrier *br, size_t *count, struct rk_error *err);

/* --- Expiry: revoking expired tokens with their children without waiting for a lookup ---
 * (token-expiry.c)
 *
 * token_sweep reads the expiry index in time order from its start: every token whose expiry
 * is <= now is revoked with its subtree (token_revoke_hash), at most max (0 = 256) per call;
 * stale index entries (no record, or a record with another expiry) are dropped. Its cost is the
 * number of due entries, never the number of tokens. *revoked (may be NULL) gets the number of
 * tokens revoked (children included); *next_due (may be NULL) the earliest expiry still in the
 * index (0 = none; <= now when max was reached and more are due). A server calls it from one
 * thread at the next due time (it also learns of new expiries through token_expiry_watch).
 * Returns 0, -RK_ESEALED, -RK_EIO, -RK_ECORRUPT, -RK_ENOMEM. */
int token_sweep(struct barrier *br, int64_t now, size_t max, size_t *revoked, int64_t *next_due,
                struct rk_error *err);

/* Adds the expiry index entries of records written before the index existed, once per store
 * (marked done at "auth/token/expiry-indexed"; later calls read that one key). O(tokens) the one
 * time it runs. *added (may be NULL) gets the number of entries written. Returns 0 or -RK_E*. */
int token_expiry_backfill(struct barrier *br, size_t *added, struct rk_error *err);

/* Registers fn (NULL: none) to be called with every expiry token_create and token_renew commit
 * in this process (a sweeper sleeping until a later time wakes earlier). One per process; fn
 * runs on the caller's thread and must not call back into this module. */
void token_expiry_watch(void (*fn)(void *arg, int64_t expire_time), void *arg);

/* --- The validated-token cache of a server (token-cache.c) ---
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
 * touching any store: a pure function, fuzzed by fuzz/tokenbody-fuzzer.c. A duration above
 * TOKEN_DURATION_MAX is refused (Vault cannot parse one either); a smaller one is capped later.
 * Returns 0 or -RK_EINVAL with a message fit for a 400 answer (it never quotes a value). */
int token_create_body_decode(json_t *body, struct token_create_body *b, struct rk_error *err);

#endif
