/* entries.h: the entries the engine rotates, found in one place: the inventory (the YAML
 * configuration) first, then the entries defined in the store through the API.
 *
 * A store entry is the record "rot/entry/<path>" (encrypted by the barrier): the JSON object of
 * the same settings a YAML entry has, without its path ({"kind":"generated","format":
 * "tk-{hex:32}","every":"30d","auto":true,"apply":["render"]}). It is validated by the YAML
 * loader itself (the entry is handed to it as a one-secret document: JSON is YAML), so a store
 * entry and a YAML entry obey the same kind settings, defaults and checks; hook names (apply,
 * test, reload) refer to the hooks of the configuration. A store entry may not use a path the
 * inventory names (put refuses it); if a configuration reloaded later names it, the inventory's
 * entry wins and the store entry is ignored until it is deleted.
 *
 * Costs: finding one entry is one inventory bsearch and at most one store read (O(log n));
 * nothing here scans all entries except engine_entries_load and engine_entry_list, which the
 * callers use to plan or show everything.
 *
 * Change notices: engine_entry_put and engine_entry_delete tell every subscriber of the same
 * KV (the daemon in this process) which path changed, after the commit, so it re-plans that
 * path alone. Another process writing the same store is seen at the next re-plan. */
#ifndef REKEY_ENTRIES_H
#define REKEY_ENTRIES_H

#include <jansson.h>
#include <stddef.h>

#include "engine/inventory.h"
#include "util/err.h"

struct kv;

#define ENTRY_PREFIX "rot/entry/"
#define ENTRY_JSON_MAX (64u * 1024) /* bytes of one entry's definition */

/* One entry found by path: borrowed from the inventory, or a store entry owned by the ref.
 * Valid while the inventory it was found with is (hooks are borrowed from it). */
struct entry_ref {
    const struct inv_secret *s;
    int in_store;           /* 1: defined in the store through the API */
    struct inventory *own_; /* internal: holds a store entry */
};

/* Finds path: the inventory's entry, else the store's. Returns 0 with ref filled (release it
 * with entry_ref_release), -RK_ENOTFOUND (neither has it), -RK_ECONFIG (the stored definition
 * no longer loads, e.g. it names a hook the configuration dropped; err says why), or a store
 * error. */
int engine_entry_find(struct kv *kv, const struct inventory *inv, const char *path,
                      struct entry_ref *ref, struct rk_error *err);

/* Frees what ref holds (a store entry); accepts a zeroed ref. */
void entry_ref_release(struct entry_ref *ref);

/* Defines (or replaces) the store entry path from def (a JSON object: the settings of a YAML
 * entry; a "path" member, if any, must equal path). Validated by the loader and the hooks of
 * inv. *created (may be NULL) is 1 when the entry did not exist. Returns 0, -RK_EINVAL (bad
 * path or definition; err says which key and why), -RK_EEXISTS (the inventory names path),
 * -RK_ELIMIT (larger than ENTRY_JSON_MAX), or a store error. */
int engine_entry_put(struct kv *kv, const struct inventory *inv, const char *path,
                     const json_t *def, int *created, struct rk_error *err);

/* The stored definition of path (*out: a new reference, with "path" added). Returns 0,
 * -RK_ENOTFOUND, -RK_ECORRUPT, or a store error. */
int engine_entry_get(struct kv *kv, const char *path, json_t **out, struct rk_error *err);

/* Deletes the store entry path and its rotation state record; the secret's versions and
 * history stay in the store (as when a YAML entry is removed). Returns 0, -RK_ENOTFOUND,
 * -RK_EBUSY (a rotation of path is in flight, or its finish step is still to run: the old
 * value must be retired first), or a store error. */
int engine_entry_delete(struct kv *kv, const char *path, struct rk_error *err);

/* Calls cb for each store entry's path that starts with prefix (NULL or "": every one), in
 * byte order, after the path `after` (NULL or "": from the start), at most limit paths (0:
 * all). cb returns 0 to go on, 1 to stop, or -RK_E* (returned). Returns 0 or a store error. */
typedef int (*entry_list_cb)(void *arg, const char *path);
int engine_entry_list(struct kv *kv, const char *prefix, const char *after, size_t limit,
                      entry_list_cb cb, void *arg, struct rk_error *err);

/* Every store entry that inv does not name, loaded into one inventory (*out, inventory_free;
 * secrets in path order, by_path set, hooks borrowed from inv: free *out before inv). A stored
 * definition that no longer loads is left out and logged; *nbad (may be NULL) counts them.
 * Returns 0 or a store error / -RK_ENOMEM. */
int engine_entries_load(struct kv *kv, const struct inventory *inv, struct inventory **out,
                        size_t *nbad, struct rk_error *err);

/* Change notices (see the header comment). fn runs in the writer's thread after its commit,
 * must not block nor call back into this module. Returns 0 or -RK_ENOMEM. */
typedef void (*entry_change_fn)(void *arg, const char *path);
int engine_entries_subscribe(struct kv *kv, entry_change_fn fn, void *arg);
void engine_entries_unsubscribe(struct kv *kv, entry_change_fn fn, void *arg);

#endif
