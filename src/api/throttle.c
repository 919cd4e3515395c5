/* throttle.c: failed-authentication throttling for the HTTP server (see throttle.h and the
 * "Failed-authentication throttling" section of docs/server.md).
 * Token buckets in a bounded chained hash table keyed by SipHash-2-4 (keyed at
 * random, so clients cannot aim at one chain), with an LRU list for eviction. */
#include "api/throttle.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/log.h"
#include "util/timeutil.h"

struct tb_entry {
    unsigned char key[16];
    double tokens;
    int64_t last_ms;
    int64_t logged_ms;
    unsigned suppressed;
    uint32_t hnext;
    uint32_t lru_prev, lru_next;
};

#define TB_NONE UINT32_MAX

struct throttle {
    pthread_mutex_t lock;
    struct tb_entry *tb;
    uint32_t *tb_buckets;
    uint32_t tb_nbuckets; /* power of two */
    uint32_t tb_slots, tb_used;
    uint32_t lru_head, lru_tail; /* head = most recently seen */
    double tb_burst, tb_rate;
    uint64_t sip_k0, sip_k1;
};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t
siphash16(uint64_t k0, uint64_t k1, const unsigned char in[16])
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t m;

    for (int i = 0; i < 2; i++) {
        memcpy(&m, in + 8 * i, 8);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    m = (uint64_t)16 << 56;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* IPv4 as v4-mapped IPv6; IPv6 reduced to its /64 (one host usually holds a whole /64). */
static void
ip_key(const char *ip, unsigned char key[16])
{
    struct in_addr a4;
    struct in6_addr a6;

    memset(key, 0, 16);
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a4, 4);
    } else if (inet_pton(AF_INET6, ip, &a6) == 1) {
        memcpy(key, &a6, 16);
        if (!IN6_IS_ADDR_V4MAPPED(&a6))
            memset(key + 8, 0, 8);
    } else {
        memset(key, 0xff, 16); /* unparseable: all such callers share one bucket */
    }
}

static void
lru_unlink(struct throttle *s, uint32_t i)
{
    struct tb_entry *e = &s->tb[i];

    if (e->lru_prev != TB_NONE)
        s->tb[e->lru_prev].lru_next = e->lru_next;
    else
        s->lru_head = e->lru_next;
    if (e->lru_next != TB_NONE)
        s->tb[e->lru_next].lru_prev = e->lru_prev;
    else
        s->lru_tail = e->lru_prev;
}

static void
lru_push_front(struct throttle *s, uint32_t i)
{
    struct tb_entry *e = &s->tb[i];

    e->lru_prev = TB_NONE;
    e->lru_next = s->lru_head;
    if (s->lru_head != TB_NONE)
        s->tb[s->lru_head].lru_prev = i;
    s->lru_head = i;
    if (s->lru_tail == TB_NONE)
        s->lru_tail = i;
}

static uint32_t
tb_bucket(const struct throttle *s, const unsigned char key[16])
{
    return (uint32_t)(siphash16(s->sip_k0, s->sip_k1, key) & (s->tb_nbuckets - 1));
}

static uint32_t
tb_find(struct throttle *s, const unsigned char key[16])
{
    for (uint32_t i = s->tb_buckets[tb_bucket(s, key)]; i != TB_NONE; i = s->tb[i].hnext)
        if (memcmp(s->tb[i].key, key, 16) == 0)
            return i;
    return TB_NONE;
}

static uint32_t
tb_insert(struct throttle *s, const unsigned char key[16], int64_t now)
{
    uint32_t i;

    if (s->tb_used < s->tb_slots) {
        i = s->tb_used++;
    } else {
        i = s->lru_tail; /* evict the least recently seen client */
        uint32_t *pp = &s->tb_buckets[tb_bucket(s, s->tb[i].key)];
        while (*pp != i)
            pp = &s->tb[*pp].hnext;
        *pp = s->tb[i].hnext;
        lru_unlink(s, i);
    }
    struct tb_entry *e = &s->tb[i];
    memcpy(e->key, key, 16);
    e->tokens = s->tb_burst;
    e->last_ms = now;
    e->logged_ms = 0;
    e->suppressed = 0;
    uint32_t b = tb_bucket(s, key);
    e->hnext = s->tb_buckets[b];
    s->tb_buckets[b] = i;
    lru_push_front(s, i);
    return i;
}

static void
tb_refill(struct throttle *s, struct tb_entry *e, int64_t now)
{
    if (now > e->last_ms) {
        e->tokens += (double)(now - e->last_ms) * s->tb_rate / 1000.0;
        if (e->tokens > s->tb_burst)
            e->tokens = s->tb_burst;
        e->last_ms = now;
    }
}

int
throttle_fail(struct throttle *s, const char *ip)
{
    unsigned char key[16];
    int64_t now = time_mono_ms();
    int throttled;
    double left;

    ip_key(ip, key);
    pthread_mutex_lock(&s->lock);
    uint32_t i = tb_find(s, key);
    if (i == TB_NONE)
        i = tb_insert(s, key, now);
    else {
        lru_unlink(s, i);
        lru_push_front(s, i);
    }
    struct tb_entry *e = &s->tb[i];
    tb_refill(s, e, now);
    e->tokens -= 1.0;
    if (e->tokens < -1.0) /* failures while throttled do not dig the hole deeper than one */
        e->tokens = -1.0;
    left = e->tokens;
    throttled = e->tokens < 1.0;
    pthread_mutex_unlock(&s->lock);
    if (throttled)
        log_warn("auth: failed authentication from %s; client throttled", ip);
    else
        log_warn("auth: failed authentication from %s (%.0f more before throttling)", ip, left);
    return throttled;
}

int
throttle_blocked(struct throttle *s, const char *ip)
{
    unsigned char key[16];
    int64_t now = time_mono_ms();
    int blocked = 0, do_log = 0;
    unsigned suppressed = 0;

    ip_key(ip, key);
    pthread_mutex_lock(&s->lock);
    uint32_t i = tb_find(s, key);
    if (i != TB_NONE) {
        struct tb_entry *e = &s->tb[i];
        tb_refill(s, e, now);
        blocked = e->tokens < 1.0;
        if (blocked) {
            /* one log line per client per second, so a flood cannot fill the log */
            if (now - e->logged_ms >= 1000) {
                do_log = 1;
                suppressed = e->suppressed;
                e->suppressed = 0;
                e->logged_ms = now;
            } else {
                e->suppressed++;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (do_log)
        log_warn("auth: throttled request from %s (%u more not logged)", ip, suppressed);
    return blocked;
}

int
throttle_new(unsigned burst, unsigned rate, unsigned slots, struct throttle **out)
{
    struct throttle *s = calloc(1, sizeof(*s));
    uint64_t k[2];

    *out = NULL;
    if (s == NULL)
        return -RK_ENOMEM;
    pthread_mutex_init(&s->lock, NULL);

    s->tb_burst = burst ? burst : 10;
    s->tb_rate = rate ? rate : 1;
    s->tb_slots = slots ? slots : 4096;
    s->tb_nbuckets = 1;
    while (s->tb_nbuckets < s->tb_slots)
        s->tb_nbuckets <<= 1;
    s->lru_head = s->lru_tail = TB_NONE;
    if (RAND_bytes((unsigned char *)k, sizeof(k)) != 1) {
        throttle_free(s);
        return -RK_EINTERNAL;
    }
    s->sip_k0 = k[0];
    s->sip_k1 = k[1];
    if ((s->tb = calloc(s->tb_slots, sizeof(*s->tb))) == NULL ||
        (s->tb_buckets = malloc(s->tb_nbuckets * sizeof(*s->tb_buckets))) == NULL) {
        throttle_free(s);
        return -RK_ENOMEM;
    }
    for (uint32_t i = 0; i < s->tb_nbuckets; i++)
        s->tb_buckets[i] = TB_NONE;
    *out = s;
    return 0;
}

void
throttle_free(struct throttle *s)
{
    if (s == NULL)
        return;
    free(s->tb);
    free(s->tb_buckets);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
