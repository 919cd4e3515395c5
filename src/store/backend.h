/* backend.h: the storage backend interface (an ops table, like SQLite's VFS).
 *
 * A backend stores opaque byte values under string keys and keeps, per key, the revision that
 * last modified it (mod_rev, like etcd). Revisions are global and increase with every committed
 * transaction. The barrier above encrypts every value; a backend never sees plaintext. */
#ifndef REKEY_BACKEND_H
#define REKEY_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define BACKEND_OPS_VERSION 1
#define STORE_KEY_MAX 1024

struct backend;

enum store_op_kind { STORE_PUT = 1, STORE_DELETE = 2 };

struct store_op {
    enum store_op_kind kind;
    const char *key;
    const void *val; /* STORE_PUT only */
    size_t vlen;
};

/* A compare that must hold for the transaction to commit: the key's current mod_rev equals
 * mod_rev; mod_rev == 0 means "the key must not exist". */
struct store_cmp {
    const char *key;
    int64_t mod_rev;
};

/* Leases for electing one leader among several servers on one store (store/leader.h). Only a
 * store that several servers share has them (etcd); a backend without them (ha NULL) has one
 * server, which always leads. Keys written here are raw (not barrier-encrypted): they hold
 * only a server's id and address, which sys/leader shows to anyone. */
struct backend_ha_ops {
    /* Grants a lease of ttl_s seconds: 0 with *lease, or -RK_EUNAVAILABLE, -RK_EIO. */
    int (*grant)(struct backend *b, int ttl_s, int64_t *lease, struct rk_error *err);
    /* Renews lease: 0 with *ttl_left (<= 0: the lease is gone, its keys deleted), or -RK_E*. */
    int (*keepalive)(struct backend *b, int64_t lease, int64_t *ttl_left, struct rk_error *err);
    /* Ends lease now and deletes its keys. Returns 0 or -RK_E*. */
    int (*revoke)(struct backend *b, int64_t lease, struct rk_error *err);
    /* Puts key = val bound to lease (deleted when it ends). only_if_absent: only when key does
     * not exist; then 1 means written, 0 that it exists (*holder, when not NULL, gets its value,
     * malloc'd and NUL-terminated; *holder_lease, when not NULL, the lease it is bound to, 0 for
     * none). Returns 1, 0 or -RK_E*. */
    int (*claim)(struct backend *b, const char *key, const char *val, int64_t lease,
                 int only_if_absent, char **holder, int64_t *holder_lease, struct rk_error *err);
};

/* Called once per key in ascending key order. val is NULL when keys_only was asked. Return 0 to
 * go on, 1 to stop early without error, or a negative RK_E* to stop with that error. */
typedef int (*store_list_cb)(void *arg, const char *key, const unsigned char *val, size_t vlen,
                             int64_t mod_rev);

struct backend_ops {
    int version;      /* BACKEND_OPS_VERSION */
    const char *name; /* "sqlite", "log", "faulty", "etcd" */

    /* Opens (creating if missing) the store at location. *out is freed with close. */
    int (*open)(const char *location, struct backend **out, struct rk_error *err);
    void (*close)(struct backend *b);

    /* Returns 0 with *val malloc'd (caller frees; *vlen set; *mod_rev set when not NULL), or
     * -RK_ENOTFOUND, -RK_EIO. */
    int (*get)(struct backend *b, const char *key, unsigned char **val, size_t *vlen,
               int64_t *mod_rev, struct rk_error *err);

    /* Single-key writes; durable when they return 0. *rev (may be NULL) gets the commit revision.
     * delete of a missing key returns -RK_ENOTFOUND. */
    int (*put)(struct backend *b, const char *key, const void *val, size_t vlen, int64_t *rev,
               struct rk_error *err);
    int (*del)(struct backend *b, const char *key, int64_t *rev, struct rk_error *err);

    /* Keys starting with prefix, ascending, strictly after start_after (NULL = from the start),
     * at most limit keys (0 = no limit). */
    int (*list)(struct backend *b, const char *prefix, const char *start_after, size_t limit,
                int keys_only, store_list_cb cb, void *arg, struct rk_error *err);

    /* Applies ops atomically and durably if every compare holds. Returns 0 (with *rev set when not
     * NULL), -RK_ECONFLICT when a compare failed (nothing written), -RK_EIO. Deleting a missing
     * key inside a transaction is not an error. Safe to call from several threads at once; the
     * sqlite backend batches concurrent callers into one fsynced commit (group commit). */
    int (*txn)(struct backend *b, const struct store_cmp *cmps, size_t ncmps,
               const struct store_op *ops, size_t nops, int64_t *rev, struct rk_error *err);

    /* Optional (may be NULL): gives back cached pages and buffers, for a process about to idle. */
    void (*trim)(struct backend *b);

    /* Optional (may be NULL): leases for leader election (above). */
    const struct backend_ha_ops *ha;
};

/* Every backend object starts with this header. */
struct backend {
    const struct backend_ops *ops;
};

/* The registry. Returns the ops named name, or NULL. */
const struct backend_ops *backend_find(const char *name);

/* Opens a backend from a location: "sqlite:PATH", "log:PATH", "etcd:URL[,URL…]", or a plain PATH
 * (an existing log store file opens as one; anything else is sqlite).
 * When REKEY_FAULT (test-only: "put:N", "txn:N", "fsync:N", "any:N") is set, the backend is
 * wrapped by the fault-injecting backend, which fails the Nth such call with -RK_EIO.
 * Returns 0 or a negative RK_E*. */
int backend_open(const char *location, struct backend **out, struct rk_error *err);

/* Closes b; accepts NULL. */
void backend_close(struct backend *b);

/* Asks b to give back its caches (a no-op for backends without a trim op); accepts NULL. */
void backend_trim(struct backend *b);

#endif
