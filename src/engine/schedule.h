/* schedule.h: when each secret was rotated, when it is due next, and its state; the calendar of
 * rotations that follows from the inventory and the history. Used by `rekey status`,
 * `rekey schedule`, the daemon and the API. */
#ifndef REKEY_SCHEDULE_H
#define REKEY_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "../util/enc.h"
#include "../util/err.h"
#include "inventory.h"

struct kv;

enum secret_state {
    STATE_OK = 0,
    STATE_DUE,             /* in its reminder window or just past due (the daemon will act) */
    STATE_OVERDUE,         /* past due beyond the tolerance */
    STATE_ROTATING,        /* a rotation is in flight (journal present) */
    STATE_FAILED,          /* the last rotation failed */
    STATE_ACTION_REQUIRED, /* a person must finish something (rekey done PATH) */
    STATE_NOT_IMPLEMENTED, /* the kind has no rotator yet */
    STATE_PENDING,         /* a candidate waits for its target (unavailable); retried */
};

struct secret_status {
    const struct inv_secret *secret; /* borrowed from the inventory */
    uint64_t version;                /* current version, 0 = none yet */
    char fingerprint[FINGERPRINT_LEN + 1];
    int64_t last_rotated; /* seconds; 0 = never */
    int64_t next_due;     /* seconds; 0 = not scheduled */
    enum secret_state state;
    char detail[160]; /* why (e.g. the failure message), may be "" */
};

/* The state's name: ok, due, overdue, rotating, failed, action-required, not-implemented,
 * pending. */
const char *secret_state_name(enum secret_state st);

/* 1 when st makes `rekey status` exit 1 (overdue, failed). */
int secret_state_is_problem(enum secret_state st);

/* Computes next_due and the time-based state from last rotation and the entry's period:
 * next_due = last + every (now when never rotated); due from the reminder window before it
 * (manual kinds: min(7d, every/4); auto: at next_due); overdue past next_due + tolerance (auto:
 * min(1h, every/10); manual: none). */
void schedule_compute(const struct inv_secret *s, int64_t last_rotated, int64_t now,
                      int64_t *next_due, enum secret_state *state);

/* Fills st[0..inv->nsecrets) for every secret of the inventory, reading the KV metadata and the
 * engine's state records. *out is malloc'd (free it). Returns 0 or a store error. */
int schedule_status_all(struct kv *kv, const struct inventory *inv, int64_t now,
                        struct secret_status **out, struct rk_error *err);

/* One secret's status. Returns 0 or a store error. */
int schedule_status_one(struct kv *kv, const struct inv_secret *s, int64_t now,
                        struct secret_status *st, struct rk_error *err);

/* The rotations of st's secret that fall in [from, to): calls cb for each time, stopping after
 * max calls (0 = no limit). Returns the number of occurrences (counting past max). */
typedef void (*schedule_occ_cb)(void *arg, int64_t when);
size_t schedule_occurrences(const struct secret_status *st, int64_t from, int64_t to, size_t max,
                            schedule_occ_cb cb, void *arg);

/* 1 when a rotator exists for the kind (rotators/ registry). */
int schedule_kind_implemented(const char *kind);

#endif
