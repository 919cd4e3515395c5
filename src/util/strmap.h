/* strmap.h: a map from strings to indexes (open addressing, linear probing, backward-shift
 * deletion): O(1) expected per operation. The keys are borrowed: the caller keeps each key
 * alive, unchanged, until it is deleted from the map or the map is freed. Not thread-safe.
 * Used by the daemon to find a store entry's slot by path (engine/daemon.c). */
#ifndef REKEY_STRMAP_H
#define REKEY_STRMAP_H

#include <stddef.h>

#include "util/err.h"

struct strmap;

/* An empty map. Returns 0 or -RK_ENOMEM; *out is freed with strmap_free. */
int strmap_new(struct strmap **out);

/* Frees m (not the keys); accepts NULL. */
void strmap_free(struct strmap *m);

/* Number of keys. */
size_t strmap_size(const struct strmap *m);

/* Returns 0 with *val set, or -RK_ENOTFOUND. */
int strmap_get(const struct strmap *m, const char *key, size_t *val);

/* Sets key to val (replacing the value, and the borrowed key pointer, of an equal key). Returns
 * 0 or -RK_ENOMEM (the map is unchanged then). */
int strmap_put(struct strmap *m, const char *key, size_t val);

/* Removes key. Returns 0 or -RK_ENOTFOUND. */
int strmap_del(struct strmap *m, const char *key);

#endif
