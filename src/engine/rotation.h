/* rotation.h: the rotation state machine (DESIGN.md §2), one engine for every kind.
 *
 * A rotation is create → apply → test → promote → reload → finish. Each step's effect and its
 * journal record ("rot/journal/<path>") are committed in one store transaction, and each step is
 * safe to run twice, so after a crash the next start resumes from the journal (see
 * docs/rotation.md for what happens at each step). One rotation per secret at a time: a lock
 * record ("rot/lock/<path>") with an owner and an expiry. The previous value stays valid at the
 * target for `grace`; then finish retires it ("rot/finish/<path>" holds the due time), or opens
 * an action-required item where only a person can. Every rotation appends one event to the
 * secret's history ("rot/history/<path>/<seq>"). */
#ifndef REKEY_ROTATION_H
#define REKEY_ROTATION_H

#include <stddef.h>
#include <stdint.h>

#include "rotators/rotator.h"
#include "util/enc.h"
#include "util/err.h"
#include "engine/inventory.h"

struct kv;
struct engine;

enum rot_op { ROT_OP_ROTATE = 0, ROT_OP_ROLLBACK, ROT_OP_REVOKE };

/* Progress reports: step is "create", "apply", "test", "promote", "reload", "finish", "undo";
 * msg never holds a secret. */
typedef void (*rot_progress_cb)(void *arg, const char *path, const char *step, const char *msg);

struct rotate_opts {
    enum rot_op op;
    const char *reason;            /* may be NULL */
    const char *author;            /* may be NULL: "rekey" */
    int dry_run;                   /* report the plan through progress, touch nothing */
    uint64_t to_version;           /* rollback: the version to return to (0 = previous) */
    const struct rot_input *input; /* manual values; may be NULL */
    int64_t lock_wait_ms;          /* how long to wait for another rotation of the path */
    rot_progress_cb progress;      /* may be NULL */
    void *arg;
};

struct rotate_result {
    uint64_t old_version, new_version;
    char old_fp[FINGERPRINT_LEN + 1], new_fp[FINGERPRINT_LEN + 1];
    int rolled_back;   /* the candidate failed and the old value was kept */
    int pending;       /* the target was unavailable: the candidate waits (new_version) */
    char message[256]; /* what happened, for people; never a secret */
};

/* Creates an engine on an unsealed store's KV and an inventory (both borrowed; the inventory
 * may be swapped with engine_set_inventory). Returns 0 or -RK_ENOMEM. */
int engine_open(struct kv *kv, const struct inventory *inv, struct engine **out,
                struct rk_error *err);
void engine_free(struct engine *e);
void engine_set_inventory(struct engine *e, const struct inventory *inv);

/* Rotates (or rolls back, or revokes) path. Returns 0 when the new value is current and the
 * consumers reloaded; -RK_EHOOK when a step failed and the old value was kept
 * (res->rolled_back = 1); -RK_EUNAVAILABLE when the target did not answer (timeout, refused
 * connection, 429, 5xx) and the candidate stays pending (res->pending = 1; the journal keeps it
 * and the rotation record says `pending`); -RK_EBUSY when another rotation holds the lock;
 * -RK_ENOTIMPL for a kind with no rotator ("kind X is not implemented yet"); -RK_ENOTFOUND for
 * a path not in the inventory; -RK_EINVAL for a new value given while a candidate is pending;
 * or a store error (the journal then lets the next start finish or undo the step).
 * A pending candidate is taken up again, never replaced: a rotate (or revoke) of its path runs
 * its step again with the same value and asks for no other; a rollback drops it first. */
int engine_rotate(struct engine *e, const char *path, const struct rotate_opts *opts,
                  struct rotate_result *res, struct rk_error *err);

/* What recovery did for one path: "resumed", "rolled back", "finished", "pending", "busy",
 * "failed". */
typedef void (*recover_cb)(void *arg, const char *path, const char *what, const char *msg);

/* Finishes or undoes every interrupted rotation (journals whose lock holder is gone; a pending
 * candidate is not interrupted: it is reported as "pending" and left alone), then runs
 * the finish step of every rotation whose grace has passed at now. Returns 0, or the first error
 * (the other paths are still processed). *count (may be NULL) gets the number of paths acted on. */
int engine_recover(struct engine *e, int64_t now, recover_cb cb, void *arg, size_t *count,
                   struct rk_error *err);

/* Runs the finish step of path if its grace has passed at now (or at once when force). Returns 0,
 * -RK_ENOTFOUND when nothing waits, -RK_EBUSY when the grace has not passed. */
int engine_finish(struct engine *e, const char *path, int64_t now, int force, struct rk_error *err);

/* Calls cb for every pending finish (path, due time in seconds). */
typedef int (*finish_cb)(void *arg, const char *path, int64_t due);
int engine_pending_finishes(struct engine *e, finish_cb cb, void *arg, struct rk_error *err);

/* What path's open action-required item asks a person to do (the rotator's action hint, e.g.
 * "v3: delete the old key at https://…"), into buf. Returns 0 or -RK_ENOTFOUND when none is
 * open. Never a secret. */
int engine_action(struct engine *e, const char *path, char *buf, size_t len, struct rk_error *err);

/* Closes path's action-required item (a person retired the old value). Returns 0 or
 * -RK_ENOTFOUND when none is open. */
int engine_done(struct engine *e, const char *path, const char *author, struct rk_error *err);

/* One event of a secret's history. */
struct rot_event {
    int64_t time_us;
    char op[16];     /* rotate, rollback, revoke, put, finish, done, recover */
    char result[16]; /* ok, failed, rolled-back, pending */
    uint64_t from_version, to_version;
    char author[64];
    char reason[160];
    char message[200];
    int64_t duration_ms;
};

/* Calls cb for each event of path, oldest first. */
typedef int (*history_cb)(void *arg, const struct rot_event *ev);
int engine_history(struct engine *e, const char *path, history_cb cb, void *arg,
                   struct rk_error *err);

#endif
