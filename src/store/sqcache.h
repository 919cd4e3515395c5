/* sqcache.h: the SQLite backend's read cache, shared by all threads of a process.
 *
 * It maps store keys to their stored (sealed: the barrier encrypts above the backend) values and
 * mod_revs, so that a read of a hot key costs a hash lookup instead of a read transaction and a
 * B-tree walk on the calling thread's connection, whose page cache SQLite drops after every
 * commit and which holds only a part of a large store. One byte budget bounds the whole cache;
 * each of its shards evicts its least recently used entries.
 *
 * Coherence with the writer is by a token (a sequence number):
 *   - a reader takes the token BEFORE its SQLite read, and fills the cache with what it read only
 *     if the token has not moved since (sqcache_fill checks under the shard's lock);
 *   - the writer makes the token odd before its COMMIT (sqcache_publish_begin), refreshes or
 *     drops the keys it wrote once the commit is done, and makes it even again
 *     (sqcache_publish_end); while it is odd, readers do not use the cache at all;
 *   - sqcache_clear moves the token too, so that no read from before the clear lands after it.
 * So a value read before a commit can never be filled after that commit has been published, and
 * readers see either the state before a commit or the state after it, for every key at once.
 * Changes made by other processes are the caller's business (sqlite.c watches the WAL index). */
#ifndef REKEY_STORE_SQCACHE_H
#define REKEY_STORE_SQCACHE_H

#include <stddef.h>
#include <stdint.h>

struct sqcache;

struct sqcache_stats {
    uint64_t hits, misses, fills, evictions;
    size_t entries, bytes, budget;
};

/* A cache of at most budget bytes (entries, keys, values and their bookkeeping). Returns NULL
 * when out of memory or when budget is 0 (no cache). */
struct sqcache *sqcache_new(size_t budget);
void sqcache_free(struct sqcache *c);

/* The current token; odd while a commit is being published (then do not use the cache). */
uint64_t sqcache_token(struct sqcache *c);

/* 1 with *val a malloc'd copy (caller frees), *vlen and *mod_rev set; 0 when key is not cached;
 * -1 when out of memory. */
int sqcache_lookup(struct sqcache *c, const char *key, unsigned char **val, size_t *vlen,
                   int64_t *mod_rev);

/* Caches key -> (val, mod_rev) as read from SQLite, if the token is still token. */
void sqcache_fill(struct sqcache *c, uint64_t token, const char *key, const unsigned char *val,
                  size_t vlen, int64_t mod_rev);

/* The writer's side. Between begin and end: refresh replaces a cached key's value (a key not
 * cached stays out: a write does not make a key hot), drop removes a key. */
void sqcache_publish_begin(struct sqcache *c);
void sqcache_refresh(struct sqcache *c, const char *key, const unsigned char *val, size_t vlen,
                     int64_t mod_rev);
void sqcache_drop(struct sqcache *c, const char *key);
void sqcache_publish_end(struct sqcache *c);

/* Empties the cache (and moves the token). Safe at any time, from any thread. */
void sqcache_clear(struct sqcache *c);

void sqcache_get_stats(struct sqcache *c, struct sqcache_stats *st);

#endif
