/* leader.h: which of several servers on one store leads (runs the scheduler, recovery, the lease
 * manager's expiry). On a store with leases (backend_ha_ops: etcd) the servers elect one through
 * a lease: each keeps a lease alive and registers itself under it ("ha/nodes/ID"); the one whose
 * claim of "ha/leader" (bound to its lease) succeeds leads until its lease ends. A standby looks
 * again every LEADER_POLL_MS and claims the key once the leader's lease has ended (it died, or
 * resigned at shutdown), so it takes over within about LEADER_TTL_S seconds. A leader that
 * cannot renew its lease for LEADER_TTL_S - 1 seconds steps down before its lease can have
 * ended, so two servers never both believe they lead (what one still writes afterwards is fenced
 * by the engine's lock revisions). On a store without leases (sqlite, log) the one server always
 * leads. One election per process (sys/leader reads it through leader_status). */
#ifndef REKEY_STORE_LEADER_H
#define REKEY_STORE_LEADER_H

#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"
#include "util/err.h"

#define LEADER_TTL_S 3
#define LEADER_POLL_MS 500
#define LEADER_KEY "ha/leader"
#define LEADER_NODES "ha/nodes/"
#define LEADER_ADDR_MAX 256

struct leader;

/* Called from the election's thread (or, on a store without leases, from leader_campaign) when
 * this server starts (leading 1) or stops (0) leading; it may block (stopping the scheduler). */
typedef void (*leader_cb)(void *arg, int leading);

/* Makes the process's election on b (which must outlive it) for a server reachable at api_addr
 * ("http://127.0.0.1:8200"). Nothing runs until leader_campaign. Returns 0 with *out
 * (leader_free), -RK_EINVAL (an address too long), -RK_EEXISTS (the process has one already),
 * -RK_ENOMEM. */
int leader_new(struct backend *b, const char *api_addr, leader_cb cb, void *arg,
               struct leader **out, struct rk_error *err);

/* Starts taking part (at an unseal): without leases, calls cb(arg, 1) before returning; with
 * them, starts the election's thread. Returns 0, or -RK_EINTERNAL when the thread cannot start.
 * A second call while taking part does nothing. */
int leader_campaign(struct leader *l, struct rk_error *err);

/* Stops taking part (at a seal, at shutdown): cb(arg, 0) if it led, the lease revoked so a
 * standby takes over at once. Waits for the thread; never call it from cb. Accepts NULL. */
void leader_resign(struct leader *l);

/* leader_resign, then frees l. Accepts NULL. */
void leader_free(struct leader *l);

struct leader_status {
    int ha_enabled;                    /* the store has leases (several servers may share it) */
    int is_self;                       /* this server leads */
    int64_t active_since;              /* unix seconds this server became leader (is_self), or 0 */
    char leader_addr[LEADER_ADDR_MAX]; /* the leader's API address, "" when none is known */
};

/* The process's election as of now (all zero when there is none). Never holds a secret. */
void leader_status(struct leader_status *st);

/* This server's id in the process's election into out (at least 33 bytes): "" when there is no
 * election or the store has no leases (one server: nothing to tell apart). */
void leader_self_id(char *out, size_t len);

/* 1 when the server id is known to be gone: the process's election runs on a store with leases
 * and id's record under LEADER_NODES (bound to its lease) no longer exists, so its lease ended.
 * 0 when it is registered, when that cannot be told (no election, no leases, a store error), or
 * for this server itself. A rotation lock held by a gone server is taken over at once. */
int leader_node_gone(const char *id);

/* One server's record under LEADER_NODES. */
struct leader_node {
    char id[40];
    char api_addr[LEADER_ADDR_MAX];
    char hostname[64];
    int active;
};

/* The servers registered on the process's store (at most max): 0 with *n, or -RK_E*. A store
 * without leases lists this server alone. */
int leader_nodes(struct leader_node *nodes, size_t max, size_t *n, struct rk_error *err);

#endif
