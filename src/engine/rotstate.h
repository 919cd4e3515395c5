/* rotstate.h: the per-secret rotation record ("rot/state/<path>" in the store): whether a
 * rotation is running, failed, or waits for a person. Written by the engine in the same
 * transaction as the step it describes; read by status. */
#ifndef REKEY_ROTSTATE_H
#define REKEY_ROTSTATE_H

#include <stdint.h>

#include "util/err.h"

struct barrier;
struct barrier_txn;

enum rot_run_state {
    ROT_IDLE = 0,        /* nothing to report */
    ROT_RUNNING,         /* a journal is open */
    ROT_FAILED,          /* the last rotation failed; retry after next_retry */
    ROT_ACTION_REQUIRED, /* a person must finish (rekey done PATH) */
    ROT_PENDING,         /* a candidate waits for its target (unavailable); the journal keeps it
                          * and `rekey rotate PATH` (or the daemon after next_retry) resumes it */
};
#define ROT_NSTATES 5

struct rot_state {
    enum rot_run_state state;
    int64_t since;      /* seconds */
    int failures;       /* consecutive failures (ROT_PENDING: unavailable attempts), for backoff */
    int64_t next_retry; /* seconds; 0 = none */
    char message[160];  /* never holds a secret */
    char action[160];   /* ROT_ACTION_REQUIRED: what a person must do (the rotator's hint) */
};

/* Reads path's record. Returns 0, -RK_ENOTFOUND, or a store error. */
int rotstate_get(struct barrier *br, const char *path, struct rot_state *st, struct rk_error *err);

/* Adds the write of st (or its deletion when st->state == ROT_IDLE) to t. 0 or -RK_ENOMEM. */
int rotstate_put(struct barrier_txn *t, const char *path, const struct rot_state *st);

/* "idle", "running", "failed", "action-required", "pending". */
const char *rot_run_state_name(enum rot_run_state s);

#endif
