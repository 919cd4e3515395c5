/* sqcache.c: the SQLite backend's shared read cache (see sqcache.h for the coherence rules).
 *
 * 64 shards, each a chained hash table with an LRU list under its own mutex; the shard of a key
 * comes from the top bits of its hash, its bucket from the low bits. A shard owns budget/64
 * bytes and evicts from the cold end of its list when a fill or refresh would exceed them. The
 * token is one atomic counter for the whole cache. */
#include "store/sqcache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "util/enc.h"

#define NSHARDS 64
#define SHARD_BITS 6
#define MIN_BUCKETS 64
#define ENTRY_OVERHEAD 16 /* malloc's own header, counted against the budget */

struct lnk {
    struct lnk *prev, *next; /* LRU list: shard.lru.next is the most recent */
};

struct ent {
    struct lnk l;      /* first: a list link is its entry */
    struct ent *hnext; /* bucket chain */
    uint64_t hash;
    int64_t mod_rev;
    uint32_t klen, vlen;
    unsigned char data[]; /* key, NUL, value */
};

struct shard {
    pthread_mutex_t lock;
    struct ent **tab;
    size_t nbuckets, n, bytes;
    struct lnk lru; /* sentinel */
    uint64_t hits, misses, fills, evictions;
} __attribute__((aligned(64)));

struct sqcache {
    _Atomic uint64_t token;
    size_t shard_budget;
    struct shard shards[NSHARDS];
};

/* str_hash's final mix makes the top bits (the shard) depend on every byte. Keys reach the cache
 * checked (at most STORE_KEY_MAX bytes). */
static uint64_t
key_hash(const char *key, size_t *klen)
{
    return str_hash(key, SIZE_MAX - 1, klen);
}

static size_t
ent_cost(size_t klen, size_t vlen)
{
    return sizeof(struct ent) + klen + 1 + vlen + ENTRY_OVERHEAD;
}

static struct shard *
shard_of(struct sqcache *c, uint64_t h)
{
    return &c->shards[h >> (64 - SHARD_BITS)];
}

static void
lru_unlink(struct ent *e)
{
    e->l.prev->next = e->l.next;
    e->l.next->prev = e->l.prev;
}

static void
lru_push(struct shard *s, struct ent *e)
{
    e->l.next = s->lru.next;
    e->l.prev = &s->lru;
    s->lru.next->prev = &e->l;
    s->lru.next = &e->l;
}

/* The address of the chain link that points at key's entry (or at NULL). */
static struct ent **
find_link(struct shard *s, uint64_t h, const char *key, size_t klen)
{
    struct ent **pp = &s->tab[h & (s->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->hnext) {
        struct ent *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->data, key, klen) == 0)
            break;
    }
    return pp;
}

static void
remove_ent(struct shard *s, struct ent **link)
{
    struct ent *e = *link;

    *link = e->hnext;
    lru_unlink(e);
    s->n--;
    s->bytes -= ent_cost(e->klen, e->vlen);
    free(e);
}

static void
evict_for(struct shard *s, size_t need, size_t budget)
{
    while (s->bytes + need > budget && s->lru.prev != &s->lru) {
        struct ent *e = (struct ent *)s->lru.prev;
        struct ent **link = find_link(s, e->hash, (const char *)e->data, e->klen);

        remove_ent(s, link);
        s->evictions++;
    }
}

/* Doubles the bucket array when the chains grow longer than one entry on average; keeps the old
 * one if the allocation fails. */
static void
maybe_grow(struct shard *s)
{
    struct ent **tab;
    size_t nb;

    if (s->n <= s->nbuckets)
        return;
    nb = s->nbuckets * 2;
    if ((tab = calloc(nb, sizeof(*tab))) == NULL)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct ent *e = s->tab[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = tab[e->hash & (nb - 1)];
            tab[e->hash & (nb - 1)] = e;
        }
    }
    free(s->tab);
    s->tab = tab;
    s->nbuckets = nb;
}

static struct ent *
ent_new(uint64_t h, const char *key, size_t klen, const unsigned char *val, size_t vlen,
        int64_t mod_rev)
{
    struct ent *e = malloc(sizeof(*e) + klen + 1 + vlen);

    if (e == NULL)
        return NULL;
    e->hash = h;
    e->mod_rev = mod_rev;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    memcpy(e->data, key, klen);
    e->data[klen] = '\0';
    if (vlen > 0)
        memcpy(e->data + klen + 1, val, vlen);
    return e;
}

/* Puts a new entry for key in place of link's (if any). Shard locked. */
static void
install(struct sqcache *c, struct shard *s, struct ent **link, uint64_t h, const char *key,
        size_t klen, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    size_t cost = ent_cost(klen, vlen);
    struct ent *e;

    if (*link != NULL)
        remove_ent(s, link);
    if (cost > c->shard_budget / 4)
        return; /* a value this large would flush the shard; read it from SQLite */
    evict_for(s, cost, c->shard_budget);
    if ((e = ent_new(h, key, klen, val, vlen, mod_rev)) == NULL)
        return;
    link = find_link(s, h, key, klen); /* eviction may have moved the chain */
    e->hnext = NULL;
    *link = e;
    lru_push(s, e);
    s->n++;
    s->bytes += cost;
    maybe_grow(s);
}

struct sqcache *
sqcache_new(size_t budget)
{
    struct sqcache *c;

    if (budget == 0 || (c = aligned_alloc(64, sizeof(*c))) == NULL)
        return NULL;
    memset(c, 0, sizeof(*c));
    atomic_init(&c->token, 0);
    c->shard_budget = budget / NSHARDS;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *s = &c->shards[i];

        if ((s->tab = calloc(MIN_BUCKETS, sizeof(*s->tab))) == NULL) {
            for (int j = 0; j < i; j++) {
                pthread_mutex_destroy(&c->shards[j].lock);
                free(c->shards[j].tab);
            }
            free(c);
            return NULL;
        }
        s->nbuckets = MIN_BUCKETS;
        s->lru.next = s->lru.prev = &s->lru;
        pthread_mutex_init(&s->lock, NULL);
    }
    return c;
}

static void
shard_empty(struct shard *s)
{
    struct lnk *l, *next;

    for (l = s->lru.next; l != &s->lru; l = next) {
        next = l->next;
        free(l);
    }
    s->lru.next = s->lru.prev = &s->lru;
    memset(s->tab, 0, s->nbuckets * sizeof(*s->tab));
    s->n = 0;
    s->bytes = 0;
}

void
sqcache_free(struct sqcache *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < NSHARDS; i++) {
        shard_empty(&c->shards[i]);
        free(c->shards[i].tab);
        pthread_mutex_destroy(&c->shards[i].lock);
    }
    free(c);
}

uint64_t
sqcache_token(struct sqcache *c)
{
    return atomic_load(&c->token);
}

int
sqcache_lookup(struct sqcache *c, const char *key, unsigned char **val, size_t *vlen,
               int64_t *mod_rev)
{
    size_t klen;
    uint64_t h = key_hash(key, &klen);
    struct shard *s = shard_of(c, h);
    struct ent *e;
    int r = 0;

    pthread_mutex_lock(&s->lock);
    e = *find_link(s, h, key, klen);
    if (e == NULL) {
        s->misses++;
    } else if ((*val = malloc(e->vlen > 0 ? e->vlen : 1)) == NULL) {
        r = -1;
    } else {
        memcpy(*val, e->data + e->klen + 1, e->vlen);
        *vlen = e->vlen;
        *mod_rev = e->mod_rev;
        if (s->lru.next != &e->l) {
            lru_unlink(e);
            lru_push(s, e);
        }
        s->hits++;
        r = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

void
sqcache_fill(struct sqcache *c, uint64_t token, const char *key, const unsigned char *val,
             size_t vlen, int64_t mod_rev)
{
    size_t klen;
    uint64_t h = key_hash(key, &klen);
    struct shard *s = shard_of(c, h);

    if ((token & 1) != 0 || vlen > UINT32_MAX)
        return;
    pthread_mutex_lock(&s->lock);
    /* Under the shard's lock: a publish or clear that moved the token after this check finds
     * the entry and replaces or removes it. */
    if (atomic_load(&c->token) == token) {
        install(c, s, find_link(s, h, key, klen), h, key, klen, val, vlen, mod_rev);
        s->fills++;
    }
    pthread_mutex_unlock(&s->lock);
}

void
sqcache_publish_begin(struct sqcache *c)
{
    atomic_fetch_add(&c->token, 1); /* odd */
}

void
sqcache_publish_end(struct sqcache *c)
{
    atomic_fetch_add(&c->token, 1); /* even */
}

/* refresh and drop: replaces (val != NULL) or removes (val == NULL) key's entry if it has one. */
static void
update_cached(struct sqcache *c, const char *key, const unsigned char *val, size_t vlen,
              int64_t mod_rev)
{
    size_t klen;
    uint64_t h = key_hash(key, &klen);
    struct shard *s = shard_of(c, h);
    struct ent **link;

    pthread_mutex_lock(&s->lock);
    link = find_link(s, h, key, klen);
    if (*link != NULL) {
        if (val == NULL || vlen > UINT32_MAX)
            remove_ent(s, link);
        else
            install(c, s, link, h, key, klen, val, vlen, mod_rev);
    }
    pthread_mutex_unlock(&s->lock);
}

void
sqcache_refresh(struct sqcache *c, const char *key, const unsigned char *val, size_t vlen,
                int64_t mod_rev)
{
    update_cached(c, key, val != NULL ? val : (const unsigned char *)"", vlen, mod_rev);
}

void
sqcache_drop(struct sqcache *c, const char *key)
{
    update_cached(c, key, NULL, 0, 0);
}

void
sqcache_clear(struct sqcache *c)
{
    atomic_fetch_add(&c->token, 2); /* keeps its parity; fills of earlier reads now fail */
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *s = &c->shards[i];

        pthread_mutex_lock(&s->lock);
        shard_empty(s);
        pthread_mutex_unlock(&s->lock);
    }
}

void
sqcache_get_stats(struct sqcache *c, struct sqcache_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (c == NULL)
        return;
    st->budget = c->shard_budget * NSHARDS;
    for (int i = 0; i < NSHARDS; i++) {
        struct shard *s = &c->shards[i];

        pthread_mutex_lock(&s->lock);
        st->hits += s->hits;
        st->misses += s->misses;
        st->fills += s->fills;
        st->evictions += s->evictions;
        st->entries += s->n;
        st->bytes += s->bytes;
        pthread_mutex_unlock(&s->lock);
    }
}
