/* keyidx.h: the in-memory index of a log-structured store: an ordered map from store keys to
 * where their latest values lie in the log.
 *
 * Keys are 1..STORE_KEY_MAX bytes (backend.h), NUL-terminated, ordered as strcmp orders them
 * (unsigned bytes). A lookup by key is a hash lookup; seek and next walk a balanced tree, so a
 * range scan costs O(log n) to start and O(1) amortised per step. Every operation but
 * keyidx_free is O(1) (amortised) or O(log n), so the index scales to millions of keys.
 *
 * The map does no locking: the caller serialises writers against everything else. */
#ifndef REKEY_STORE_KEYIDX_H
#define REKEY_STORE_KEYIDX_H

#include <stddef.h>
#include <stdint.h>

/* One key's record. The caller may read every public field and rewrite off, vlen and mod_rev
 * (keyidx_put does so too); the rest belongs to the map. An entry stays at its address until its
 * key is deleted or the map freed, so a pointer to it is valid until then. */
struct keyidx_ent {
    uint64_t off;    /* where the value lies in the log file */
    uint32_t vlen;   /* value length */
    int64_t mod_rev; /* revision that last wrote the key */

    /* Private to keyidx.c. */
    struct keyidx_ent *kid[2]; /* tree children: kid[0] holds smaller keys, kid[1] larger */
    struct keyidx_ent *parent; /* NULL at the root */
    struct keyidx_ent *hnext;  /* hash chain */
    uint64_t hash;
    int32_t height; /* of the subtree rooted here; a leaf is 1; 0: not in the tree yet */
    size_t pidx;    /* height 0: where it sits in the map's list of unordered entries */

    size_t klen; /* strlen(key) */
    char key[];  /* NUL-terminated copy of the key */
};

struct keyidx;

/* An empty map. Returns NULL when out of memory. */
struct keyidx *keyidx_new(void);

/* Frees the map and all its entries. Accepts NULL. */
void keyidx_free(struct keyidx *ix);

/* key's entry, or NULL if key is absent. */
struct keyidx_ent *keyidx_get(const struct keyidx *ix, const char *key);

/* Inserts key with the given record, or rewrites the record of key's existing entry in place
 * (its address does not change). Returns 0; -RK_EINVAL when key is NULL, empty or longer than
 * STORE_KEY_MAX; -RK_ENOMEM when out of memory. On error the map is unchanged. When ent is not
 * NULL, *ent gets the entry on success. */
int keyidx_put(struct keyidx *ix, const char *key, uint64_t off, uint32_t vlen, int64_t mod_rev,
               struct keyidx_ent **ent);

/* keyidx_put, but a new key goes to a list of unordered entries instead of into the tree: an
 * insert then costs a hash insert, and keyidx_order does the tree's work later, in key order and
 * many at a time, when the upper levels of the tree stay in the cache. Until then keyidx_get
 * finds the key but keyidx_seek and keyidx_next do not. Same returns as keyidx_put. */
int keyidx_put_unordered(struct keyidx *ix, const char *key, uint64_t off, uint32_t vlen,
                         int64_t mod_rev, struct keyidx_ent **ent);

/* The number of entries keyidx_put_unordered left out of the tree so far. */
size_t keyidx_pending(const struct keyidx *ix);

/* Puts every unordered entry into the tree. Cannot fail. */
void keyidx_order(struct keyidx *ix);

/* Removes key and frees its entry. Returns 1 if key was there, 0 if not. */
int keyidx_del(struct keyidx *ix, const char *key);

/* The first entry whose key is >= key (strict == 0) or > key (strict != 0); with key NULL, the
 * first entry of the map. NULL when there is none. */
struct keyidx_ent *keyidx_seek(const struct keyidx *ix, const char *key, int strict);

/* The entry after e in key order, or NULL when e is the last. */
struct keyidx_ent *keyidx_next(const struct keyidx *ix, const struct keyidx_ent *e);

/* The number of keys. */
size_t keyidx_count(const struct keyidx *ix);

/* Bytes of heap the map holds (the map, its entries and its hash table, as asked of malloc:
 * malloc's own overhead is not counted), for stats. */
size_t keyidx_bytes(const struct keyidx *ix);

/* For tests only: checks every invariant of the map (tree order, balance, heights and parent
 * links; hash chains and their buckets; the count and the byte total). O(n log n). Returns 0
 * when the map is sound, -RK_EINTERNAL when it is not. */
int keyidx_check(const struct keyidx *ix);

#endif
