/* rotation-journal.c: the rotation engine's records. The per-path lock (taken, refreshed at every
 * step, taken over when stale, released), the journal committed with each step's effect in one
 * transaction fenced by the lock's revision, the history records and the events published once
 * a step's transaction commits, and the KV stage changes a step makes. Formats: the top of
 * rotation.c. */
#include "engine/rotation-int.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hooks/hook.h"
#include "secrets/kv.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/timeutil.h"
#include "engine/entries.h"
#include "util/events.h"
#include "util/testsw.h"
#include "engine/rotstate.h"
#include "store/leader.h"
#include "util/backoff.h"

/* ---- the lock ---- */

/* 1 when the lock record belongs to a holder that is gone: expired, a server of several on one
 * store whose election lease has ended (its "node"; another host's process cannot be looked
 * at), or on this host with a process id that no longer runs. */
static int
lock_is_stale(struct engine *e, json_t *lock, int64_t now)
{
    const char *owner = json_string_value(json_object_get(lock, "owner"));
    const char *node = json_string_value(json_object_get(lock, "node"));
    json_int_t expires = json_integer_value(json_object_get(lock, "expires"));
    char host[64];
    long pid = 0;

    if (owner == NULL || expires <= now)
        return 1;
    if (node != NULL && leader_node_gone(node))
        return 1;
    if (sscanf(owner, "%63[^:]:%ld:", host, &pid) == 2 && strcmp(host, e->host) == 0 && pid > 0 &&
        pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
        return 1;
    return 0;
}

static json_t *
lock_record(struct engine *e)
{
    char node[40];
    json_t *j =
        json_pack("{s:s, s:I}", "owner", e->owner, "expires", (json_int_t)(time_now() + LOCK_TTL));

    leader_self_id(node, sizeof(node));
    if (j != NULL && node[0] != '\0' && json_object_set_new(j, "node", json_string(node)) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Takes path's lock, waiting up to wait_ms. *rev gets the lock's revision. */
int
rotation_lock_acquire(struct engine *e, const char *path, int64_t wait_ms, int64_t *rev,
                      struct rk_error *err)
{
    char key[KEY_MAX];
    int64_t deadline = time_mono_ms() + wait_ms;
    int r;

    rotation_key_of(key, sizeof(key), "lock", path);
    for (;;) {
        json_t *lock = NULL;
        int64_t cur = 0;
        struct barrier_txn *t;

        r = rotation_json_get_record(e->br, key, &lock, &cur, err);
        if (r == -RK_ENOTFOUND)
            cur = 0;
        else if (r != 0)
            return r;
        if (cur == 0 || lock_is_stale(e, lock, time_now())) {
            json_decref(lock);
            t = barrier_txn_new(e->br);
            if (t == NULL)
                return rk_error_set(err, RK_ENOMEM, "out of memory");
            r = barrier_txn_cmp(t, key, cur);
            if (r == 0)
                r = rotation_txn_put_json(t, key, lock_record(e));
            if (r == 0)
                r = barrier_txn_commit(t, rev, err);
            barrier_txn_free(t);
            if (r == 0)
                return 0;
            if (r != -RK_ECONFLICT)
                return r;
        } else {
            const char *owner = json_string_value(json_object_get(lock, "owner"));
            if (time_mono_ms() >= deadline) {
                r = rk_error_set(err, RK_EBUSY,
                                 "another rotation of %s is running (held by %s); wait for it or "
                                 "run 'rekey recover' if that process is gone",
                                 path, owner ? owner : "?");
                json_decref(lock);
                return r;
            }
            json_decref(lock);
        }
        if (time_mono_ms() >= deadline)
            return rk_error_set(err, RK_EBUSY, "another rotation of %s is running", path);
        usleep(100 * 1000);
    }
}

/* 1 when a journal record parks a candidate whose target was unavailable. */
int
rotation_journal_parked(json_t *journal)
{
    return json_is_string(json_object_get(journal, "unavailable"));
}

/* 1 when a journal record is of operation op ("rotate", "rollback", "revoke"). */
int
rotation_journal_op_is(json_t *journal, const char *op)
{
    const char *v = json_string_value(json_object_get(journal, "op"));

    return v != NULL && strcmp(v, op) == 0;
}

/* Releases path's lock (best effort: a lock left behind expires and is taken over). */
void
rotation_lock_release(struct engine *e, const char *path, int64_t rev)
{
    struct barrier_txn *t = barrier_txn_new(e->br);
    struct rk_error e2 = {0};
    char lk[KEY_MAX];

    rotation_key_of(lk, sizeof(lk), "lock", path);
    if (t != NULL && barrier_txn_cmp(t, lk, rev) == 0 && barrier_txn_del(t, lk) == 0)
        (void)barrier_txn_commit(t, NULL, &e2);
    barrier_txn_free(t);
}

/* ---- journal and step commits ---- */

static json_t *
journal_record(struct rot *r)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:I, s:s, s:s, s:I, s:b, s:s, s:s, s:i}", "op", rotation_op_names[r->op],
        "step", rotation_step_names[r->step], "candidate", (json_int_t)r->candidate, "old",
        (json_int_t)r->old, "reason", r->reason, "author", r->author, "started",
        (json_int_t)r->started_us, "promoted", r->promoted, "target_stage",
        kv_stage_name(r->target_stage), "undo_msg", r->undo_msg, "attempts", r->attempts);

    if (j != NULL && r->unavailable[0] != '\0' &&
        json_object_set_new(j, "unavailable", json_string(r->unavailable)) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* What a step's commit does with the lock and the journal. */
/* Adds the lock refresh or removal (fenced by the lock's revision) and the journal to t,
 * commits it. */
int
rotation_commit_step(struct rot *r, struct barrier_txn *t, enum commit_mode mode,
                     struct rk_error *err)
{
    char lk[KEY_MAX], jk[KEY_MAX];
    int rc;

    rotation_key_of(lk, sizeof(lk), "lock", r->s->path);
    rotation_key_of(jk, sizeof(jk), "journal", r->s->path);
    rc = barrier_txn_cmp(t, lk, r->lock_rev);
    if (rc == 0)
        rc = mode == COMMIT_STEP ? rotation_txn_put_json(t, lk, lock_record(r->e))
                                 : barrier_txn_del(t, lk);
    if (rc == 0)
        rc = mode != COMMIT_DONE ? rotation_txn_put_json(t, jk, journal_record(r))
                                 : barrier_txn_del(t, jk);
    if (rc != 0)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    rc = rotation_history_commit(t, &r->lock_rev, err);
    if (rc == -RK_ECONFLICT)
        return rk_error_set(err, RK_EBUSY,
                            "lost the lock on %s: another process took over this rotation",
                            r->s->path);
    return rc;
}

/* The result of a rotation reaches the event stream (util/events.h: the audit log, the metrics)
 * only once the transaction that records it in the history has committed: rotation_history_add arms
 * this per-thread slot, rotation_history_commit publishes it after a successful commit and drops it
 * otherwise. */
struct ev_slot {
    int armed;
    char path[PATH_MAX_LEN + 1];
    char op[16], result[16];
    uint64_t from, to;
    char author[64], reason[160], msg[256], fp[FINGERPRINT_LEN + 1];
    int64_t duration_ms;
};
static __thread struct ev_slot ev_slot;

int
rotation_history_commit(struct barrier_txn *t, int64_t *rev, struct rk_error *err)
{
    int rc = barrier_txn_commit(t, rev, err);

    if (rc == 0 && ev_slot.armed && events_wanted(EV_ROTATION_RESULT)) {
        struct rk_event ev = {
            .type = EV_ROTATION_RESULT,
            .operation = ev_slot.op,
            .path = ev_slot.path,
            .outcome = ev_slot.result,
            .from_version = ev_slot.from,
            .to_version = ev_slot.to,
            .fingerprint = ev_slot.fp[0] ? ev_slot.fp : NULL,
            .actor = ev_slot.author,
            .reason = ev_slot.reason,
            .message = ev_slot.msg,
            .error = strcmp(ev_slot.result, "ok") != 0 ? ev_slot.msg : NULL,
            .duration_us = ev_slot.duration_ms * 1000,
        };
        (void)events_publish(&ev, NULL);
    }
    ev_slot.armed = 0;
    return rc;
}

/* The fingerprint of the new value, for the armed result event. */
void
rotation_history_event_fp(const char *fp)
{
    snprintf(ev_slot.fp, sizeof(ev_slot.fp), "%s", fp != NULL ? fp : "");
}

int
rotation_history_add(struct barrier_txn *t, const char *path, const char *op, const char *result,
                     uint64_t from, uint64_t to, const char *author, const char *reason,
                     const char *msg, int64_t duration_ms)
{
    char key[KEY_MAX];
    unsigned char rnd[2];
    char hex[5];
    int64_t now = time_now_us();

    RAND_bytes(rnd, sizeof(rnd));
    hex_encode(rnd, sizeof(rnd), hex);
    snprintf(key, sizeof(key), "rot/history/%s %020lld%s", path, (long long)now, hex);
    memset(&ev_slot, 0, sizeof(ev_slot));
    ev_slot.armed = 1;
    snprintf(ev_slot.path, sizeof(ev_slot.path), "%s", path);
    snprintf(ev_slot.op, sizeof(ev_slot.op), "%s", op);
    snprintf(ev_slot.result, sizeof(ev_slot.result), "%s", result);
    ev_slot.from = from;
    ev_slot.to = to;
    snprintf(ev_slot.author, sizeof(ev_slot.author), "%s", author ? author : "");
    snprintf(ev_slot.reason, sizeof(ev_slot.reason), "%s", reason ? reason : "");
    snprintf(ev_slot.msg, sizeof(ev_slot.msg), "%s", msg ? msg : "");
    ev_slot.duration_ms = duration_ms;
    return rotation_txn_put_json(
        t, key,
        json_pack("{s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I}", "time", (json_int_t)now, "op",
                  op, "result", result, "from", (json_int_t)from, "to", (json_int_t)to, "author",
                  author ? author : "", "reason", reason ? reason : "", "message", msg ? msg : "",
                  "duration_ms", (json_int_t)duration_ms));
}

/* Changes the candidate's or the old version's stage inside t (metadata read fresh). */
int
rotation_stage_in_txn(struct rot *r, struct barrier_txn *t,
                      int (*mutate)(struct rot *, struct kv_meta *, struct rk_error *),
                      struct rk_error *err)
{
    struct kv_meta *m = NULL;
    int64_t rev = 0;
    int rc;

    rc = kv_meta_load(r->e->kv, r->s->path, &m, &rev, err);
    if (rc == 0)
        rc = mutate(r, m, err);
    if (rc == 0)
        rc = kv_stage_put(r->e->kv, t, r->s->path, m, rev, 0, NULL, err);
    kv_meta_free(m);
    return rc;
}

int
rotation_mut_promote(struct rot *r, struct kv_meta *m, struct rk_error *err)
{
    if (m->current_version == r->candidate)
        return 0; /* promoted already (a resumed step) */
    if (r->op == ROT_OP_ROLLBACK)
        return kv_meta_set_current(m, r->candidate, KV_STAGE_PREVIOUS, err);
    return kv_meta_promote(m, r->candidate, err);
}

int
rotation_mut_fail_candidate(struct rot *r, struct kv_meta *m, struct rk_error *err)
{
    struct kv_version_meta *c = kv_meta_find(m, r->candidate);

    if (r->op == ROT_OP_ROLLBACK) {
        /* The rollback target goes back to the stage it had; the old current stays current. */
        if (r->old != 0 && m->current_version != r->old) {
            int rc = kv_meta_set_current(m, r->old, r->target_stage, err);
            if (rc != 0)
                return rc;
        }
        if (c != NULL && m->current_version != r->candidate)
            c->stage = r->target_stage;
        return 0;
    }
    if (r->old != 0 && m->current_version != r->old) {
        struct kv_version_meta *o = kv_meta_find(m, r->old);
        if (o != NULL && !o->destroyed)
            return kv_meta_set_current(m, r->old, KV_STAGE_FAILED, err);
    }
    if (c != NULL && m->current_version != r->candidate)
        c->stage = KV_STAGE_FAILED;
    return 0;
}
