/* keyidx.c: the store's in-memory key index (see keyidx.h).
 *
 * Each entry sits in two structures at once: a chained hash table (power-of-two buckets, doubled
 * before the load passes 3/4) for keyidx_get, and an AVL tree with parent links for seek and
 * next. One allocation per entry holds both sets of links and the key. An AVL tree rather than a
 * red-black one because its rebalancing fits in one short loop (rebalance) and its invariant is
 * easy to check; it is also the shallower of the two, which favours seeks. */
#include "store/keyidx.h"

#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "util/enc.h"
#include "util/err.h"

#define MIN_BUCKETS 16
#define CHECK_DEPTH_MAX 128 /* an AVL tree of 2^64 entries is less than 93 deep */

struct keyidx {
    struct keyidx_ent *root;
    struct keyidx_ent **tab;
    size_t nbuckets; /* a power of two */
    size_t n;
    size_t bytes;
    struct keyidx_ent **pend; /* entries not in the tree yet (keyidx_put_unordered) */
    size_t npend, pcap;
};

/* The hash covers at most STORE_KEY_MAX + 1 bytes: enough to tell a key too long. */
static uint64_t
key_hash(const char *key, size_t *klen)
{
    return str_hash(key, STORE_KEY_MAX, klen);
}

static size_t
ent_size(size_t klen)
{
    return sizeof(struct keyidx_ent) + klen + 1;
}

/* The address of the chain link that points at key's entry (or at NULL). */
static struct keyidx_ent **
find_link(const struct keyidx *ix, uint64_t h, const char *key, size_t klen)
{
    struct keyidx_ent **pp = &ix->tab[h & (ix->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->hnext) {
        const struct keyidx_ent *e = *pp;
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            break;
    }
    return pp;
}

/* Doubles the bucket array. Returns 0, or -RK_ENOMEM with the old array kept. */
static int
grow(struct keyidx *ix)
{
    size_t nb = ix->nbuckets * 2;
    struct keyidx_ent **tab = calloc(nb, sizeof(*tab));

    if (tab == NULL)
        return -RK_ENOMEM;
    for (size_t i = 0; i < ix->nbuckets; i++) {
        struct keyidx_ent *e = ix->tab[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = tab[e->hash & (nb - 1)];
            tab[e->hash & (nb - 1)] = e;
        }
    }
    free(ix->tab);
    ix->tab = tab;
    ix->bytes += (nb - ix->nbuckets) * sizeof(*tab);
    ix->nbuckets = nb;
    return 0;
}

static int32_t
height(const struct keyidx_ent *e)
{
    return e != NULL ? e->height : 0;
}

static void
fix_height(struct keyidx_ent *e)
{
    int32_t l = height(e->kid[0]), r = height(e->kid[1]);

    e->height = 1 + (l > r ? l : r);
}

/* Makes n (a child of p, or the root when p is NULL) take old's place under p. */
static void
replace_child(struct keyidx *ix, struct keyidx_ent *p, const struct keyidx_ent *old,
              struct keyidx_ent *n)
{
    if (p == NULL)
        ix->root = n;
    else
        p->kid[p->kid[1] == old] = n;
    if (n != NULL)
        n->parent = p;
}

/* Lifts e's child on side d into e's place; e becomes that child's child on the other side. */
static void
rotate(struct keyidx *ix, struct keyidx_ent *e, int d)
{
    struct keyidx_ent *c = e->kid[d];

    e->kid[d] = c->kid[!d];
    if (e->kid[d] != NULL)
        e->kid[d]->parent = e;
    replace_child(ix, e->parent, e, c);
    c->kid[!d] = e;
    e->parent = c;
    fix_height(e);
    fix_height(c);
}

/* Restores heights and balance from e up after an insert or a removal below e. It stops at the
 * first subtree whose height comes out as before: nothing above it can have changed. */
static void
rebalance(struct keyidx *ix, struct keyidx_ent *e)
{
    while (e != NULL) {
        struct keyidx_ent *p = e->parent;
        int32_t old = e->height, bal = height(e->kid[1]) - height(e->kid[0]);

        if (bal > 1 || bal < -1) {
            int d = bal > 1; /* the heavy side */
            struct keyidx_ent *c = e->kid[d];

            /* A child heavy on the inner side is turned first, or the rotation below would
             * only move the imbalance to the other side. */
            if (height(c->kid[!d]) > height(c->kid[d]))
                rotate(ix, c, !d);
            rotate(ix, e, d);
            e = e->parent; /* the subtree's new root */
        } else {
            fix_height(e);
        }
        if (e->height == old)
            break;
        e = p;
    }
}

static struct keyidx_ent *
leftmost(struct keyidx_ent *e)
{
    while (e->kid[0] != NULL)
        e = e->kid[0];
    return e;
}

/* Unlinks e from the tree (not from the hash table). */
static void
tree_remove(struct keyidx *ix, struct keyidx_ent *e)
{
    struct keyidx_ent *start;

    if (e->kid[0] == NULL || e->kid[1] == NULL) {
        start = e->parent;
        replace_child(ix, e->parent, e, e->kid[e->kid[0] == NULL]);
    } else {
        /* Entries are handed out by address, so e's successor s is moved into e's place
         * instead of copying s's contents into e. */
        struct keyidx_ent *s = leftmost(e->kid[1]);

        if (s->parent == e) {
            start = s;
        } else {
            start = s->parent;
            replace_child(ix, s->parent, s, s->kid[1]);
            s->kid[1] = e->kid[1];
            s->kid[1]->parent = s;
        }
        s->kid[0] = e->kid[0];
        s->kid[0]->parent = s;
        s->height = e->height;
        replace_child(ix, e->parent, e, s);
    }
    rebalance(ix, start);
}

struct keyidx *
keyidx_new(void)
{
    struct keyidx *ix = calloc(1, sizeof(*ix));

    if (ix == NULL)
        return NULL;
    if ((ix->tab = calloc(MIN_BUCKETS, sizeof(*ix->tab))) == NULL) {
        free(ix);
        return NULL;
    }
    ix->nbuckets = MIN_BUCKETS;
    ix->bytes = sizeof(*ix) + MIN_BUCKETS * sizeof(*ix->tab);
    return ix;
}

void
keyidx_free(struct keyidx *ix)
{
    if (ix == NULL)
        return;
    /* Through the hash chains: a walk of the tree would need a stack or would have to undo
     * the links as it went. */
    for (size_t i = 0; i < ix->nbuckets; i++) {
        struct keyidx_ent *e = ix->tab[i], *next;
        for (; e != NULL; e = next) {
            next = e->hnext;
            free(e);
        }
    }
    free(ix->tab);
    free(ix->pend);
    free(ix);
}

struct keyidx_ent *
keyidx_get(const struct keyidx *ix, const char *key)
{
    size_t klen;
    uint64_t h = key_hash(key, &klen);

    if (klen == 0 || klen > STORE_KEY_MAX)
        return NULL;
    return *find_link(ix, h, key, klen);
}

/* Links e, in the hash table already, into the tree. */
static void
tree_insert(struct keyidx *ix, struct keyidx_ent *e)
{
    struct keyidx_ent *p = NULL, **at = &ix->root;
    int d;

    while (*at != NULL) {
        p = *at;
        d = strcmp(e->key, p->key) > 0;
        at = &p->kid[d];
    }
    *at = e;
    e->parent = p;
    e->kid[0] = e->kid[1] = NULL;
    e->height = 1;
    rebalance(ix, p);
}

static int
put(struct keyidx *ix, const char *key, uint64_t off, uint32_t vlen, int64_t mod_rev,
    struct keyidx_ent **ent, int ordered)
{
    struct keyidx_ent *e;
    struct keyidx_ent **link;
    size_t klen;
    uint64_t h;

    if (key == NULL)
        return -RK_EINVAL;
    h = key_hash(key, &klen);
    if (klen == 0 || klen > STORE_KEY_MAX)
        return -RK_EINVAL;
    link = find_link(ix, h, key, klen);
    if ((e = *link) == NULL) {
        /* Grow first, so that a failure leaves the map as it was; 4 * (n + 1) cannot
         * overflow since every entry takes far more than 4 bytes. */
        if (4 * (ix->n + 1) > 3 * ix->nbuckets) {
            if (grow(ix) != 0)
                return -RK_ENOMEM;
            link = find_link(ix, h, key, klen);
        }
        if (!ordered && ix->npend == ix->pcap) {
            size_t cap = ix->pcap ? 2 * ix->pcap : 64;
            struct keyidx_ent **np = realloc(ix->pend, cap * sizeof(*np));

            if (np == NULL)
                return -RK_ENOMEM;
            ix->bytes += (cap - ix->pcap) * sizeof(*np);
            ix->pend = np;
            ix->pcap = cap;
        }
        if ((e = malloc(ent_size(klen))) == NULL)
            return -RK_ENOMEM;
        memset(e, 0, sizeof(*e));
        e->hash = h;
        e->klen = klen;
        memcpy(e->key, key, klen + 1);
        *link = e;
        if (ordered) {
            tree_insert(ix, e);
        } else {
            e->height = 0;
            e->pidx = ix->npend;
            ix->pend[ix->npend++] = e;
        }
        ix->n++;
        ix->bytes += ent_size(klen);
    }
    e->off = off;
    e->vlen = vlen;
    e->mod_rev = mod_rev;
    if (ent != NULL)
        *ent = e;
    return 0;
}

int
keyidx_put(struct keyidx *ix, const char *key, uint64_t off, uint32_t vlen, int64_t mod_rev,
           struct keyidx_ent **ent)
{
    return put(ix, key, off, vlen, mod_rev, ent, 1);
}

int
keyidx_put_unordered(struct keyidx *ix, const char *key, uint64_t off, uint32_t vlen,
                     int64_t mod_rev, struct keyidx_ent **ent)
{
    return put(ix, key, off, vlen, mod_rev, ent, 0);
}

size_t
keyidx_pending(const struct keyidx *ix)
{
    return ix->npend;
}

static int
cmp_ent(const void *a, const void *b)
{
    return strcmp((*(struct keyidx_ent *const *)a)->key, (*(struct keyidx_ent *const *)b)->key);
}

void
keyidx_order(struct keyidx *ix)
{
    if (ix->npend == 0)
        return; /* and qsort must not see the list's NULL */
    qsort(ix->pend, ix->npend, sizeof(*ix->pend), cmp_ent);
    for (size_t i = 0; i < ix->npend; i++)
        tree_insert(ix, ix->pend[i]);
    ix->npend = 0;
}

int
keyidx_del(struct keyidx *ix, const char *key)
{
    struct keyidx_ent **link, *e;
    size_t klen;
    uint64_t h = key_hash(key, &klen);

    if (klen == 0 || klen > STORE_KEY_MAX)
        return 0;
    link = find_link(ix, h, key, klen);
    if ((e = *link) == NULL)
        return 0;
    *link = e->hnext;
    if (e->height == 0) {
        ix->pend[e->pidx] = ix->pend[--ix->npend];
        ix->pend[e->pidx]->pidx = e->pidx;
    } else {
        tree_remove(ix, e);
    }
    ix->n--;
    ix->bytes -= ent_size(e->klen);
    free(e);
    return 1;
}

struct keyidx_ent *
keyidx_seek(const struct keyidx *ix, const char *key, int strict)
{
    struct keyidx_ent *e = ix->root, *best = NULL;

    if (e == NULL)
        return NULL;
    if (key == NULL)
        return leftmost(e);
    while (e != NULL) {
        int c = strcmp(e->key, key);

        if (c > 0 || (c == 0 && !strict)) {
            best = e; /* a candidate; a smaller one may lie to its left */
            e = e->kid[0];
        } else {
            e = e->kid[1];
        }
    }
    return best;
}

struct keyidx_ent *
keyidx_next(const struct keyidx *ix, const struct keyidx_ent *e)
{
    (void)ix;
    if (e->kid[1] != NULL)
        return leftmost(e->kid[1]);
    /* Up to the first ancestor that e lies to the left of. */
    while (e->parent != NULL && e->parent->kid[1] == e)
        e = e->parent;
    return e->parent;
}

size_t
keyidx_count(const struct keyidx *ix)
{
    return ix->n;
}

size_t
keyidx_bytes(const struct keyidx *ix)
{
    return ix->bytes;
}

struct check {
    const struct keyidx *ix;
    const struct keyidx_ent *prev; /* the last entry visited in order */
    size_t n, bytes;
};

/* Checks the subtree at e, whose parent must be parent, in order. Returns its height, or -1.
 * The recursion is bounded by CHECK_DEPTH_MAX, so a broken tree cannot overflow the stack. */
static int32_t
check_tree(struct check *ck, const struct keyidx_ent *e, const struct keyidx_ent *parent, int depth)
{
    int32_t l, r;

    if (e == NULL)
        return 0;
    if (depth > CHECK_DEPTH_MAX || e->parent != parent || ck->n >= ck->ix->n)
        return -1;
    if ((l = check_tree(ck, e->kid[0], e, depth + 1)) < 0)
        return -1;
    if (ck->prev != NULL && strcmp(ck->prev->key, e->key) >= 0)
        return -1;
    if (e->klen == 0 || e->klen > STORE_KEY_MAX || strlen(e->key) != e->klen || e->height == 0)
        return -1;
    if (keyidx_get(ck->ix, e->key) != e)
        return -1;
    ck->prev = e;
    ck->n++;
    ck->bytes += ent_size(e->klen);
    if ((r = check_tree(ck, e->kid[1], e, depth + 1)) < 0)
        return -1;
    if (l - r > 1 || r - l > 1 || e->height != 1 + (l > r ? l : r))
        return -1;
    return e->height;
}

int
keyidx_check(const struct keyidx *ix)
{
    struct check ck = {.ix = ix, .prev = NULL, .n = 0, .bytes = 0};
    size_t chained = 0;

    if (ix->nbuckets < MIN_BUCKETS || (ix->nbuckets & (ix->nbuckets - 1)) != 0)
        return -RK_EINTERNAL;
    if (4 * ix->n > 3 * ix->nbuckets)
        return -RK_EINTERNAL;
    /* Every chained entry has its own hash and sits in its bucket; the count bounds each walk,
     * so a cycle is caught instead of followed forever. */
    for (size_t i = 0; i < ix->nbuckets; i++) {
        for (const struct keyidx_ent *e = ix->tab[i]; e != NULL; e = e->hnext) {
            size_t klen;

            if (++chained > ix->n || (e->hash & (ix->nbuckets - 1)) != i ||
                key_hash(e->key, &klen) != e->hash || klen != e->klen)
                return -RK_EINTERNAL;
        }
    }
    /* The tree holds n distinct keys, each found by the hash table, which holds n entries:
     * so both hold the same ones. */
    if (chained != ix->n || check_tree(&ck, ix->root, NULL, 0) < 0 || ck.n + ix->npend != ix->n ||
        ix->npend > ix->pcap)
        return -RK_EINTERNAL;
    /* The unordered ones: each out of the tree, where its index says, found by the hash. */
    for (size_t i = 0; i < ix->npend; i++) {
        const struct keyidx_ent *e = ix->pend[i];

        if (e->height != 0 || e->pidx != i || keyidx_get(ix, e->key) != e)
            return -RK_EINTERNAL;
        ck.bytes += ent_size(e->klen);
    }
    if (ix->bytes !=
        sizeof(*ix) + ix->nbuckets * sizeof(*ix->tab) + ix->pcap * sizeof(*ix->pend) + ck.bytes)
        return -RK_EINTERNAL;
    return 0;
}
