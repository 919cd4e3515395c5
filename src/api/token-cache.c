/* token-cache.c: the validated-token cache of a server (see token.h, "The validated-token
 * cache"): records read by token_lookup, kept in memory keyed by SHA-256(token) (never the
 * token), for at most ttl_ms and never past their expiry.
 *
 * TC_STRIPES stripes, each a hash table of TC_BUCKETS chains and an insertion-ordered list (the
 * oldest entry is evicted first) under its own mutex; a token's stripe is the first byte of its
 * hash. A generation counter, bumped by every flush, keeps a lookup that read the store before a
 * flush from inserting what it read. Locks: one stripe mutex at a time, never held across a
 * store access. */
#include "api/token-int.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "api/token.h"
#include "util/enc.h"
#include "util/timeutil.h"

#define TC_STRIPES 16 /* power of two */
#define TC_BUCKETS 64 /* per stripe, power of two */

struct tc_entry {
    unsigned char key[32]; /* SHA-256 of the token */
    struct tc_entry *hnext;
    struct tc_entry *older, *newer; /* the stripe's insertion order, for eviction */
    int64_t cached_ms;
    struct token_info ti;
};

struct tc_stripe {
    pthread_mutex_t mu;
    struct tc_entry *b[TC_BUCKETS];
    struct tc_entry *oldest, *newest;
    size_t n;
};

struct token_cache {
    size_t max_per_stripe;
    int64_t ttl_ms;
    atomic_uint_fast64_t gen; /* bumped by every flush */
    atomic_uint_fast64_t hits, misses;
    struct tc_stripe s[TC_STRIPES];
};

/* Deep copy of a record; 0 or -RK_ENOMEM (dst is then cleared). */
static int
ti_copy(struct token_info *dst, const struct token_info *src)
{
    *dst = *src;
    dst->policies = NULL;
    dst->meta_json = NULL;
    dst->npolicies = 0;
    if (src->npolicies > 0) {
        if ((dst->policies = calloc(src->npolicies, sizeof(char *))) == NULL)
            goto nomem;
        for (size_t i = 0; i < src->npolicies; i++) {
            if ((dst->policies[i] = strdup(src->policies[i])) == NULL)
                goto nomem;
            dst->npolicies = i + 1;
        }
    }
    if (src->meta_json != NULL && (dst->meta_json = strdup(src->meta_json)) == NULL)
        goto nomem;
    return 0;
nomem:
    token_info_clear(dst);
    return -RK_ENOMEM;
}

/* Clears a record, wiping its strings first (accessor, metadata: not secrets, but not
 * anybody's business after a seal either). */
static void
ti_wipe(struct token_info *ti)
{
    for (size_t i = 0; i < ti->npolicies && ti->policies != NULL; i++)
        secure_wipe(ti->policies[i], strlen(ti->policies[i]));
    if (ti->meta_json != NULL)
        secure_wipe(ti->meta_json, strlen(ti->meta_json));
    token_info_clear(ti);
    secure_wipe(ti, sizeof(*ti));
}

static void
tc_entry_free(struct tc_entry *e)
{
    ti_wipe(&e->ti);
    freezero(e, sizeof(*e));
}

static unsigned
tc_bucket(const unsigned char key[32])
{
    return (unsigned)(key[1] | key[2] << 8) & (TC_BUCKETS - 1);
}

/* Unlinks e from its stripe (caller holds the lock). */
static void
tc_unlink(struct tc_stripe *st, struct tc_entry *e)
{
    struct tc_entry **pp = &st->b[tc_bucket(e->key)];

    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        st->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        st->newest = e->older;
    st->n--;
}

static struct tc_entry *
tc_find(struct tc_stripe *st, const unsigned char key[32])
{
    for (struct tc_entry *e = st->b[tc_bucket(key)]; e != NULL; e = e->hnext)
        if (CRYPTO_memcmp(e->key, key, 32) == 0)
            return e;
    return NULL;
}

int
token_cache_new(size_t max, int64_t ttl_ms, struct token_cache **out)
{
    struct token_cache *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return -RK_ENOMEM;
    if (max == 0)
        max = TOKEN_CACHE_MAX;
    c->max_per_stripe = (max + TC_STRIPES - 1) / TC_STRIPES;
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : TOKEN_CACHE_TTL_MS;
    atomic_init(&c->gen, 0);
    atomic_init(&c->hits, 0);
    atomic_init(&c->misses, 0);
    for (size_t i = 0; i < TC_STRIPES; i++)
        pthread_mutex_init(&c->s[i].mu, NULL);
    *out = c;
    return 0;
}

static void
tc_stripe_clear(struct tc_stripe *st)
{
    struct tc_entry *e = st->oldest, *next;

    for (; e != NULL; e = next) {
        next = e->newer;
        tc_entry_free(e);
    }
    memset(st->b, 0, sizeof(st->b));
    st->oldest = st->newest = NULL;
    st->n = 0;
}

void
token_cache_flush(struct token_cache *c)
{
    if (c == NULL)
        return;
    /* Bump first: a lookup that read the store before this point compares the generation
     * under its stripe's lock, so it either inserted before we clear that stripe or sees the
     * new generation and does not insert. */
    atomic_fetch_add(&c->gen, 1);
    for (size_t i = 0; i < TC_STRIPES; i++) {
        pthread_mutex_lock(&c->s[i].mu);
        tc_stripe_clear(&c->s[i]);
        pthread_mutex_unlock(&c->s[i].mu);
    }
}

void
token_cache_free(struct token_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < TC_STRIPES; i++) {
        tc_stripe_clear(&c->s[i]);
        pthread_mutex_destroy(&c->s[i].mu);
    }
    free(c);
}

void
token_cache_stats(struct token_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c != NULL ? atomic_load(&c->hits) : 0;
    *misses = c != NULL ? atomic_load(&c->misses) : 0;
}

/* Inserts a copy of ti under key unless the cache was flushed since gen was read. */
static void
tc_insert(struct token_cache *c, const unsigned char key[32], const struct token_info *ti,
          uint_fast64_t gen)
{
    struct tc_stripe *st = &c->s[key[0] & (TC_STRIPES - 1)];
    struct tc_entry *e = calloc(1, sizeof(*e)), *old;
    unsigned b;

    if (e == NULL)
        return;
    if (ti_copy(&e->ti, ti) != 0) {
        freezero(e, sizeof(*e));
        return;
    }
    memcpy(e->key, key, 32);
    e->cached_ms = time_mono_ms();
    pthread_mutex_lock(&st->mu);
    if (atomic_load(&c->gen) != gen) {
        pthread_mutex_unlock(&st->mu);
        tc_entry_free(e);
        return;
    }
    if ((old = tc_find(st, key)) != NULL) {
        tc_unlink(st, old);
        tc_entry_free(old);
    }
    while (st->n >= c->max_per_stripe && st->oldest != NULL) {
        old = st->oldest;
        tc_unlink(st, old);
        tc_entry_free(old);
    }
    b = tc_bucket(key);
    e->hnext = st->b[b];
    st->b[b] = e;
    e->older = st->newest;
    if (st->newest != NULL)
        st->newest->newer = e;
    else
        st->oldest = e;
    st->newest = e;
    st->n++;
    pthread_mutex_unlock(&st->mu);
}

int
token_lookup_cached(struct token_cache *c, struct barrier *br, const char *token,
                    struct token_info *ti, struct rk_error *err)
{
    unsigned char key[32];
    char hash[TOKEN_HASH_HEX];
    size_t len = token != NULL ? strnlen(token, TOKEN_MAX_LEN + 1) : 0;
    struct tc_stripe *st;
    struct tc_entry *e;
    uint_fast64_t gen;
    int r, expired = 0;

    if (c == NULL)
        return token_lookup(br, token, ti, err);
    memset(ti, 0, sizeof(*ti));
    if (len == 0 || len > TOKEN_MAX_LEN)
        return rk_error_set(err, RK_EINVAL, "missing or malformed token");
    token_digest(token, len, key);
    st = &c->s[key[0] & (TC_STRIPES - 1)];
    pthread_mutex_lock(&st->mu);
    if ((e = tc_find(st, key)) != NULL) {
        int64_t now_ms = time_mono_ms();
        if (now_ms - e->cached_ms < c->ttl_ms &&
            (e->ti.expire_time == 0 || e->ti.expire_time > time_now())) {
            r = ti_copy(ti, &e->ti);
            pthread_mutex_unlock(&st->mu);
            secure_wipe(key, sizeof(key));
            if (r != 0)
                return rk_error_set(err, RK_ENOMEM, "out of memory");
            atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
            return 0;
        }
        tc_unlink(st, e); /* stale: read the store again */
        tc_entry_free(e);
    }
    pthread_mutex_unlock(&st->mu);
    atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
    gen = atomic_load(&c->gen);
    hex_encode(key, sizeof(key), hash);
    r = token_read_hash(br, hash, ti, &expired, err);
    if (expired) {
        /* As token_lookup_hash: revoke it lazily, with its children, which may be cached. */
        struct rk_error e2;
        token_revoke_hash(br, hash, NULL, &e2);
        token_cache_flush(c);
        rk_error_set(err, RK_ENOTFOUND, "no such token");
    } else if (r == 0 && ti->num_uses == 0) {
        tc_insert(c, key, ti, gen);
    }
    secure_wipe(key, sizeof(key));
    secure_wipe(hash, sizeof(hash));
    return r;
}
