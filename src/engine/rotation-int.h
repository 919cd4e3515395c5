/* rotation-int.h: what the parts of the rotation engine share and no other module may use:
 * rotation.c (the engine, loading values, the steps, create, rotate and rollback),
 * rotation-journal.c (the lock, the journal and step commits, history records),
 * rotation-recover.c (resuming a journalled rotation, recovery at start) and rotation-finish.c
 * (finishing after grace, action-required items, done, history reads). The store records are
 * described at the top of rotation.c. */
#ifndef REKEY_ENGINE_ROTATION_INT_H
#define REKEY_ENGINE_ROTATION_INT_H

#include <jansson.h>
#include <stdint.h>

#include "engine/rotation.h"
#include "secrets/kv.h"
#include "store/barrier.h"

#define LOCK_TTL 900 /* seconds; refreshed at every step */
#define KEY_MAX (PATH_MAX_LEN + 64)

enum step {
    STEP_CREATED = 0,
    STEP_APPLIED,
    STEP_TESTED,
    STEP_PROMOTED,
    STEP_UNDOING,
};

struct engine {
    struct kv *kv;
    struct barrier *br;
    const struct inventory *inv;
    char owner[128];
    char host[64];
};

/* One rotation in flight. */
struct rot {
    struct engine *e;
    const struct inv_secret *s;
    const struct rotator_ops *ops;
    const struct rotate_opts *opts;
    struct rotate_result *res;
    enum rot_op op;
    enum step step;
    uint64_t candidate, old;
    enum kv_stage target_stage; /* rollback: the stage the target version had */
    int promoted;
    int64_t lock_rev;
    int64_t started_us;
    char reason[160];
    char author[64];
    char undo_msg[256];
    char unavailable[256]; /* why the candidate is parked ("" while it runs) */
    int attempts;          /* the candidate's tries that found the target unavailable */
    const struct secret *new_value, *old_value; /* the entry's field, borrowed from the maps */
    struct secret *new_fields, *old_fields;     /* whole data JSON */
    struct rot_fields new_map, old_map;         /* the string fields of that data */
    char **internal; /* names of fields never rendered (rot/fields/<path>), NULL-terminated */
    size_t ninternal;
    struct fp_key *fp; /* the store's fingerprint key for the rotator's messages (rot_ctx) */
    struct rot_ctx rctx;
};

/* The names of enum step and enum rot_op, as the journal records them. */
extern const char *const rotation_step_names[];
extern const char *const rotation_op_names[];

enum commit_mode {
    COMMIT_DONE = 0, /* the rotation ended: both go */
    COMMIT_STEP = 1, /* the lock is refreshed, the journal records the step */
    COMMIT_PARK = 2, /* the journal stays (parked candidate), the lock goes */
};

/* ---- rotation.c ---- */

/* The store key rot/<kind>/<path> into buf. */
void rotation_key_of(char *buf, size_t len, const char *kind, const char *path);

/* Reports a step's progress: the debug log, the caller's progress callback and, unless a dry
 * run, an EV_ROTATION_STEP event. */
void rotation_progress(struct rot *r, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads the JSON object stored at key through the barrier (*rev its revision). */
int rotation_json_get_record(struct barrier *br, const char *key, json_t **out, int64_t *rev,
                             struct rk_error *err);

/* Adds a put of j (compact, sorted keys) to t; takes j's reference. */
int rotation_txn_put_json(struct barrier_txn *t, const char *key, json_t *j);

/* Loads a version: its data (*json), the data's string fields (*map) and the entry's field
 * (*value, borrowed from *map; NULL when the version lacks it, e.g. written by hand). */
int rotation_load_version(struct rot *r, uint64_t version, struct secret **json,
                          struct rot_fields *map, const struct secret **value,
                          struct rk_error *err);

/* Fills r->rctx, the rotator's view of this rotation. */
void rotation_set_ctx(struct rot *r);

/* Runs the rotator's cleanup and frees what r holds (values wiped); r can be reused. */
void rotation_clear(struct rot *r);

/* Undoes a failed candidate: the target and the consumers go back to the old value. */
int rotation_do_undo(struct rot *r, struct rk_error *err);

/* Runs the steps from r->step to the end. */
int rotation_run_from(struct rot *r, struct rk_error *err);

/* engine_rotate of the entry s found for path. */
int rotation_rotate_found(struct engine *e, const struct inv_secret *s, const char *path,
                          const struct rotate_opts *opts, struct rotate_result *res,
                          struct rk_error *err);

/* ---- rotation-journal.c ---- */

/* Takes path's lock, waiting up to wait_ms. *rev gets the lock's revision. */
int rotation_lock_acquire(struct engine *e, const char *path, int64_t wait_ms, int64_t *rev,
                          struct rk_error *err);

/* 1 when a journal record parks a candidate whose target was unavailable. */
int rotation_journal_parked(json_t *journal);

/* 1 when a journal record is of operation op ("rotate", "rollback", "revoke"). */
int rotation_journal_op_is(json_t *journal, const char *op);

/* Releases path's lock (best effort: a lock left behind expires and is taken over). */
void rotation_lock_release(struct engine *e, const char *path, int64_t rev);

/* Adds the lock refresh or removal (fenced by the lock's revision) and the journal to t,
 * commits it. */
int rotation_commit_step(struct rot *r, struct barrier_txn *t, enum commit_mode mode,
                         struct rk_error *err);

/* Commits t; once it committed, publishes the EV_ROTATION_RESULT a history_add armed. */
int rotation_history_commit(struct barrier_txn *t, int64_t *rev, struct rk_error *err);

/* The fingerprint of the new value, for the armed result event. */
void rotation_history_event_fp(const char *fp);

/* Adds a history event of path to t and arms its EV_ROTATION_RESULT (history_commit). */
int rotation_history_add(struct barrier_txn *t, const char *path, const char *op,
                         const char *result, uint64_t from, uint64_t to, const char *author,
                         const char *reason, const char *msg, int64_t duration_ms);

/* Changes the candidate's or the old version's stage inside t (metadata read fresh). */
int rotation_stage_in_txn(struct rot *r, struct barrier_txn *t,
                          int (*mutate)(struct rot *, struct kv_meta *, struct rk_error *),
                          struct rk_error *err);

/* Stage mutations for rotation_stage_in_txn: promote the candidate (a rollback makes it current
 * and keeps the old one previous), or mark the candidate failed. */
int rotation_mut_promote(struct rot *r, struct kv_meta *m, struct rk_error *err);

int rotation_mut_fail_candidate(struct rot *r, struct kv_meta *m, struct rk_error *err);

/* ---- rotation-recover.c ---- */

/* Finds path's entry (inventory or store) and resumes its journalled rotation (resume_found). */
int rotation_resume_path(struct engine *e, const char *path, int64_t lock_rev, json_t *journal,
                         const struct rotate_opts *opts, int op_override, int drop,
                         struct rotate_result *res, struct rk_error *err);

/* ---- rotation-finish.c ---- */

/* Finishes s with its lock held (lock_rev): retires the previous value once its grace has
 * passed, or opens an action-required item when a person must retire it. */
int rotation_finish_locked(struct engine *e, const struct inv_secret *s, int64_t lock_rev,
                           struct rk_error *err);

#endif
