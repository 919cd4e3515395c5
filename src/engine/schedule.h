/* schedule.h: when each entry was rotated, when it is due next, and its state; the calendar of
 * rotations that follows from the entries (the inventory's and the store's, engine/entries.h)
 * and the history. Used by `rekey status`, `rekey schedule`, the daemon and the API.
 *
 * When an entry is due: its kind's `status` op says so when it has one (a certificate from its
 * notAfter, a lease from its expiry); otherwise the last rotation + every. */
#ifndef REKEY_SCHEDULE_H
#define REKEY_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/inventory.h"
#include "util/enc.h"
#include "util/err.h"

struct kv;
struct rotator_ops;

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
    const struct inv_secret *secret; /* borrowed from the inventory (or a schedule_list) */
    int in_store;                    /* defined in the store through the API */
    uint64_t version;                /* current version, 0 = none yet */
    char fingerprint[FINGERPRINT_LEN + 1];
    int64_t last_rotated; /* seconds; 0 = never */
    int64_t next_due;     /* seconds; 0 = not scheduled */
    int64_t expires_at;   /* seconds; 0 = unknown (the kind's status op may say) */
    int64_t period;       /* seconds between rotations after next_due (calendar); 0 = none */
    enum secret_state state;
    char detail[160]; /* why (e.g. the failure message), may be "" */
    /* For the metrics: the calendar's state alone (ok, due, overdue; not-implemented), before a
     * rotation record overrides state (rotating, failed, action-required, pending), so a failed
     * entry past its due time still counts as overdue; and the rotation record's consecutive
     * failures and when its state began (seconds; 0 when there is no record). */
    enum secret_state due_state;
    int failures;
    int64_t state_since;
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

/* Fills st[0..inv->nsecrets) for every secret of the inventory (store entries are not in it:
 * see schedule_status_list), reading the KV metadata and the engine's state records. *out is
 * malloc'd (free it). Returns 0 or a store error. */
int schedule_status_all(struct kv *kv, const struct inventory *inv, int64_t now,
                        struct secret_status **out, struct rk_error *err);

/* The status of every entry: the inventory's (in its order), then the store's that the
 * inventory does not name (in path order). */
struct schedule_list {
    struct secret_status *st;
    size_t n;               /* entries in st */
    size_t ninv;            /* st[0..ninv) are the inventory's */
    struct inventory *own_; /* internal: the store entries st[ninv..n) borrow */
};

/* Fills *out (free with schedule_list_free; valid while inv is). Store entries that no longer
 * load are left out (and logged). Returns 0 or a store error / -RK_ENOMEM. */
int schedule_status_list(struct kv *kv, const struct inventory *inv, int64_t now,
                         struct schedule_list *out, struct rk_error *err);

/* Frees what l holds; accepts a zeroed list. */
void schedule_list_free(struct schedule_list *l);

/* One entry's status. Returns 0 or a store error. */
int schedule_status_one(struct kv *kv, const struct inv_secret *s, int64_t now,
                        struct secret_status *st, struct rk_error *err);

/* schedule_status_one with the kind's ops given (NULL: the kind is not implemented) instead of
 * rotator_find(s->kind): for tests of a kind's status op without a registry row. */
int schedule_status_ops(struct kv *kv, const struct inv_secret *s, const struct rotator_ops *ops,
                        int64_t now, struct secret_status *st, struct rk_error *err);

/* The rotations of st's secret that fall in [from, to): next_due, then every st->period (only
 * next_due when the period is 0); calls cb for each time, stopping after max calls (0 = no
 * limit). Returns the number of occurrences (counting past max). */
typedef void (*schedule_occ_cb)(void *arg, int64_t when);
size_t schedule_occurrences(const struct secret_status *st, int64_t from, int64_t to, size_t max,
                            schedule_occ_cb cb, void *arg);

/* 1 when a rotator exists for the kind (rotators/ registry) and it can create values. */
int schedule_kind_implemented(const char *kind);

#endif
