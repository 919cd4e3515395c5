/* rotation.c: the rotation state machine. See rotation.h and docs/rotation.md.
 *
 * Store records (all encrypted by the barrier):
 *   rot/lock/<path>      {"owner","expires"}              who rotates path now
 *   rot/journal/<path>   {"op","step","candidate","old",…} the step reached, committed with it;
 *                        with "unavailable" (and no lock) the candidate is parked: its target
 *                        did not answer, and the step runs again on the next `rekey rotate`
 *   rot/state/<path>     see rotstate.h                    failed / action-required / pending
 *   rot/fields/<path>    {"internal":[names]}              fields never rendered into consumers
 *   rot/finish/<path>    {"version","due","person"}        the previous value to retire
 *   rot/history/<path> <seq>                               one event per rotation
 * Every step commits its effect, the journal and a refreshed lock in one transaction whose
 * compare on the lock's revision fences out a holder whose lock was taken over.
 *
 * The parts: rotation-journal.c (the lock, the journal, step commits, history records),
 * rotation-recover.c (resume and recovery), rotation-finish.c (finish, done, history reads);
 * rotation-int.h is what they share. */
#include "engine/rotation.h"

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
#include "util/backoff.h"
#include "engine/rotation-int.h"

const char *const rotation_step_names[] = {"created", "applied", "tested", "promoted", "undoing"};

const char *const rotation_op_names[] = {"rotate", "rollback", "revoke"};

/* ---- small helpers ---- */

void
rotation_key_of(char *buf, size_t len, const char *kind, const char *path)
{
    snprintf(buf, len, "rot/%s/%s", kind, path);
}

void
rotation_progress(struct rot *r, const char *step, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_debug("%s: %s: %s", r->s->path, step, msg);
    if (r->opts != NULL && r->opts->progress != NULL)
        r->opts->progress(r->opts->arg, r->s->path, step, msg);
    if (events_wanted(EV_ROTATION_STEP) && !(r->opts != NULL && r->opts->dry_run)) {
        struct rk_event ev = {
            .type = EV_ROTATION_STEP,
            .operation = rotation_op_names[r->op],
            .path = r->s->path,
            .step = step,
            .outcome = "started",
            .from_version = r->old,
            .to_version = r->candidate,
            .actor = r->author,
            .reason = r->reason,
            .message = msg, /* what the step does or why it failed; never a secret */
        };
        (void)events_publish(&ev, NULL);
    }
}

int
rotation_json_get_record(struct barrier *br, const char *key, json_t **out, int64_t *rev,
                         struct rk_error *err)
{
    struct secret *v = NULL;
    json_error_t jerr;
    int r;

    if ((r = barrier_get(br, key, &v, rev, err)) != 0)
        return r;
    *out = json_loadb((const char *)v->data, v->len, 0, &jerr);
    secret_free(v);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return rk_error_set(err, RK_ECORRUPT, "record %s does not parse", key);
    }
    return 0;
}

int
rotation_txn_put_json(struct barrier_txn *t, const char *key, json_t *j)
{
    char *text;
    int r;

    if (j == NULL)
        return -RK_ENOMEM;
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (text == NULL)
        return -RK_ENOMEM;
    r = barrier_txn_put(t, key, text, strlen(text));
    free(text);
    return r;
}

/* ---- engine ---- */

int
engine_open(struct kv *kv, const struct inventory *inv, struct engine **out, struct rk_error *err)
{
    struct engine *e = calloc(1, sizeof(*e));
    unsigned char rnd[4];
    char hex[9];

    if (e == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    e->kv = kv;
    e->br = kv_barrier(kv);
    e->inv = inv;
    if (gethostname(e->host, sizeof(e->host)) != 0)
        snprintf(e->host, sizeof(e->host), "localhost");
    e->host[sizeof(e->host) - 1] = '\0';
    RAND_bytes(rnd, sizeof(rnd));
    hex_encode(rnd, sizeof(rnd), hex);
    snprintf(e->owner, sizeof(e->owner), "%s:%ld:%s", e->host, (long)getpid(), hex);
    *out = e;
    return 0;
}

void
engine_free(struct engine *e)
{
    free(e);
}

void
engine_set_inventory(struct engine *e, const struct inventory *inv)
{
    e->inv = inv;
}

/* ---- loading values ---- */

/* Reads the names of path's internal fields (rot/fields/<path>) into r->internal, once. */
static int
load_internal(struct rot *r, struct rk_error *err)
{
    char key[KEY_MAX];
    json_t *rec = NULL, *arr, *v;
    size_t i;
    int rc;

    if (r->internal != NULL)
        return 0;
    rotation_key_of(key, sizeof(key), "fields", r->s->path);
    rc = rotation_json_get_record(r->e->br, key, &rec, NULL, err);
    if (rc == -RK_ENOTFOUND)
        rk_error_clear(err);
    else if (rc != 0)
        return rc;
    arr = json_object_get(rec, "internal");
    if ((r->internal = calloc(json_array_size(arr) + 1, sizeof(*r->internal))) == NULL) {
        json_decref(rec);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            continue;
        if ((r->internal[r->ninternal] = strdup(json_string_value(v))) == NULL) {
            json_decref(rec);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        r->ninternal++;
    }
    json_decref(rec);
    return 0;
}

/* Loads a version: its data (*json), the data's string fields (*map) and the entry's field
 * (*value, borrowed from *map; NULL when the version lacks it, e.g. written by hand). */
int
rotation_load_version(struct rot *r, uint64_t version, struct secret **json, struct rot_fields *map,
                      const struct secret **value, struct rk_error *err)
{
    int rc;

    *value = NULL;
    if ((rc = load_internal(r, err)) != 0)
        return rc;
    if ((rc = kv_get(r->e->kv, r->s->path, version, json, NULL, err)) != 0)
        return rc;
    if ((rc = rot_fields_from_json(*json, (const char *const *)r->internal, r->ninternal, map,
                                   err)) != 0)
        return rc;
    *value = rot_fields_get(map, rotator_field(r->s));
    return 0;
}

/* The narrow reader a rotator gets in rot_ctx: one field of the current version of another
 * secret (an admin key). The value goes to the rotator only; log lines and messages name the
 * path and the field, never the value. */
static int
read_secret(void *arg, const char *path, const char *field, struct secret **out,
            struct rk_error *err)
{
    struct rot *r = arg;
    int rc;

    *out = NULL;
    if (path == NULL || field == NULL || field[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "%s: reading a secret needs a path and a field",
                            r->s->path);
    if (path_validate(path, strlen(path), err) != 0)
        return rk_error_prefix(err, "%s: reading another secret", r->s->path);
    rc = kv_get_field(r->e->kv, path, 0, field, out, err);
    if (rc != 0)
        return rk_error_prefix(err, "%s: reading field %.64s of %.256s", r->s->path, field, path);
    log_debug("%s: the %s rotator read field %s of %s", r->s->path, r->s->kind, field, path);
    return 0;
}

void
rotation_set_ctx(struct rot *r)
{
    r->rctx.secret = r->s;
    r->rctx.input = r->opts ? r->opts->input : NULL;
    r->rctx.old_value = r->old_value;
    r->rctx.new_value = r->new_value;
    r->rctx.old_fields = r->old_fields != NULL ? &r->old_map : NULL;
    r->rctx.new_fields = r->new_fields != NULL ? &r->new_map : NULL;
    r->rctx.old_version = r->old;
    r->rctx.new_version = r->candidate;
    r->rctx.read_secret = read_secret;
    r->rctx.read_arg = r;
    r->rctx.kv = r->e->kv;
    if (r->fp == NULL)
        r->fp = barrier_fp_key(r->e->br);
    r->rctx.fp_key = r->fp;
}

void
rotation_clear(struct rot *r)
{
    if (r->ops != NULL && r->ops->cleanup != NULL)
        r->ops->cleanup(&r->rctx);
    rot_fields_clear(&r->new_map);
    rot_fields_clear(&r->old_map);
    secret_free(r->new_fields);
    secret_free(r->old_fields);
    r->new_value = r->old_value = NULL;
    r->new_fields = r->old_fields = NULL;
    for (size_t i = 0; i < r->ninternal; i++)
        free(r->internal[i]);
    free(r->internal);
    r->internal = NULL;
    r->ninternal = 0;
    fp_key_unref(r->fp);
    r->fp = NULL;
    r->rctx.fp_key = NULL;
}

/* ---- steps ---- */

static int
run_hooks(struct rot *r, const char *step, struct hook_def *const *hooks, size_t n,
          const struct secret *newv, const struct secret *newf, const struct secret *oldv,
          const struct secret *oldf, uint64_t version, struct rk_error *err)
{
    struct hook_ctx hc;
    struct fp_key *key;
    int rc;

    if (n == 0)
        return 0;
    memset(&hc, 0, sizeof(hc));
    hc.path = r->s->path;
    hc.version = (int64_t)version;
    hc.new_value = newv;
    hc.old_value = oldv;
    hc.new_fields_json = newf;
    hc.old_fields_json = oldf;
    hc.internal_fields = (const char *const *)r->internal;
    hc.ninternal = r->ninternal;
    /* Output that shows a value shows its fingerprint in this store (NULL: "(secret)"). */
    hc.fp_key = key = barrier_fp_key(r->e->br);
    rotation_progress(r, step, "running %zu hook%s", n, n == 1 ? "" : "s");
    rc = hook_run_list(hooks, n, &hc, err);
    fp_key_unref(key);
    return rc;
}

static int
do_apply(struct rot *r, struct rk_error *err)
{
    int rc = 0;

    rotation_set_ctx(r);
    /* A rollback applies too: its version may have been retired at the target already. */
    if (r->ops->apply != NULL)
        rc = r->ops->apply(&r->rctx, err);
    if (rc == 0)
        rc = run_hooks(r, "apply", r->s->apply, r->s->napply, r->new_value, r->new_fields,
                       r->old_value, r->old_fields, r->candidate, err);
    return rc;
}

static int
do_test(struct rot *r, struct rk_error *err)
{
    int rc = 0;

    rotation_set_ctx(r);
    if (r->ops->test != NULL)
        rc = r->ops->test(&r->rctx, err);
    if (rc == 0)
        rc = run_hooks(r, "test", r->s->test, r->s->ntest, r->new_value, r->new_fields,
                       r->old_value, r->old_fields, r->candidate, err);
    return rc;
}

static int
do_reload(struct rot *r, struct rk_error *err)
{
    return run_hooks(r, "reload", r->s->reload, r->s->nreload, r->new_value, r->new_fields,
                     r->old_value, r->old_fields, r->candidate, err);
}

/* Commits a step that changes only the journal (and the lock). */
static int
commit_journal_only(struct rot *r, enum step step, struct rk_error *err)
{
    struct barrier_txn *t = barrier_txn_new(r->e->br);
    int rc;

    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r->step = step;
    rc = rotation_commit_step(r, t, 1, err);
    barrier_txn_free(t);
    return rc;
}

static int
do_promote(struct rot *r, struct rk_error *err)
{
    struct barrier_txn *t = barrier_txn_new(r->e->br);
    int rc;

    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    rc = rotation_stage_in_txn(r, t, rotation_mut_promote, err);
    r->promoted = 1;
    r->step = STEP_PROMOTED;
    if (rc == 0)
        rc = rotation_commit_step(r, t, 1, err);
    barrier_txn_free(t);
    if (rc != 0)
        r->promoted = 0;
    return rc;
}

/* The last commit of a successful rotation: journal and lock go, the finish record and the
 * history event come, the rotation record is cleared. */
static int
do_complete(struct rot *r, struct rk_error *err)
{
    struct barrier_txn *t = barrier_txn_new(r->e->br);
    char fk[KEY_MAX], msg[200];
    struct rot_state st;
    int64_t grace = r->op == ROT_OP_REVOKE ? 0 : r->s->grace;
    int rc = 0;

    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    memset(&st, 0, sizeof(st));
    st.state = ROT_IDLE;
    rotation_key_of(fk, sizeof(fk), "finish", r->s->path);
    if (r->old != 0 && r->op != ROT_OP_ROLLBACK)
        rc = rotation_txn_put_json(
            t, fk,
            json_pack("{s:I, s:I, s:b}", "version", (json_int_t)r->old, "due",
                      (json_int_t)(time_now() + grace), "person",
                      (rotator_flags(r->ops, r->s) & ROT_F_PERSON_FINISHES) != 0));
    snprintf(msg, sizeof(msg), "v%llu -> v%llu (%s)", (unsigned long long)r->old,
             (unsigned long long)r->candidate, r->res->new_fp);
    if (rc == 0)
        rc = rotstate_put(t, r->s->path, &st);
    if (rc == 0)
        rc = rotation_history_add(t, r->s->path, rotation_op_names[r->op], "ok", r->old,
                                  r->candidate, r->author, r->reason, msg,
                                  (time_now_us() - r->started_us) / 1000);
    rotation_history_event_fp(r->res->new_fp);
    if (rc == 0)
        rc = rotation_commit_step(r, t, 0, err);
    else
        rk_error_set(err, RK_ENOMEM, "out of memory");
    barrier_txn_free(t);
    return rc;
}

/* Undoes a failed candidate: the target and the consumers go back to the old value. */
int
rotation_do_undo(struct rot *r, struct rk_error *err)
{
    struct barrier_txn *t;
    struct rot_state st;
    struct rk_error e2 = {0};
    int rc, failures = 0;

    if (r->step != STEP_UNDOING) {
        if ((rc = commit_journal_only(r, STEP_UNDOING, err)) != 0)
            return rc;
        test_crash_at("undo");
    }
    rotation_set_ctx(r);
    rotation_progress(r, "undo", "%s; returning to v%llu", r->undo_msg, (unsigned long long)r->old);
    if (r->ops->unapply != NULL && r->op != ROT_OP_ROLLBACK && r->ops->unapply(&r->rctx, &e2) != 0)
        log_error("%s: undo at the target failed: %s", r->s->path, e2.msg);
    if (r->old_value != NULL) {
        /* The apply hooks with the old value put the target back (a rendered file, a pushed
         * config); after a promote the reload hooks make the consumers follow. */
        rk_error_clear(&e2);
        if (run_hooks(r, "undo", r->s->apply, r->s->napply, r->old_value, r->old_fields,
                      r->new_value, r->new_fields, r->old, &e2) != 0)
            log_error("%s: re-applying the old value failed: %s", r->s->path, e2.msg);
        rk_error_clear(&e2);
        if (r->promoted && run_hooks(r, "undo", r->s->reload, r->s->nreload, r->old_value,
                                     r->old_fields, r->new_value, r->new_fields, r->old, &e2) != 0)
            log_error("%s: reloading the consumers with the old value failed: %s", r->s->path,
                      e2.msg);
    }
    t = barrier_txn_new(r->e->br);
    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    rc = rotation_stage_in_txn(r, t, rotation_mut_fail_candidate, err);
    if (rc == 0) {
        struct rot_state old;
        /* A running record carries the failures of the attempts before it (see do_create). */
        if (rotstate_get(r->e->br, r->s->path, &old, &e2) == 0 &&
            (old.state == ROT_FAILED || old.state == ROT_RUNNING))
            failures = old.failures;
        memset(&st, 0, sizeof(st));
        st.state = ROT_FAILED;
        st.since = time_now();
        st.failures = failures + 1;
        st.next_retry = st.since + backoff_retry_delay(r->s->every, st.failures);
        snprintf(st.message, sizeof(st.message), "%s", r->undo_msg);
        rc = rotstate_put(t, r->s->path, &st);
    }
    if (rc == 0)
        rc = rotation_history_add(t, r->s->path, rotation_op_names[r->op], "rolled-back", r->old,
                                  r->candidate, r->author, r->reason, r->undo_msg,
                                  (time_now_us() - r->started_us) / 1000);
    if (rc == 0)
        rc = rotation_commit_step(r, t, 0, err);
    barrier_txn_free(t);
    if (rc != 0)
        return rc;
    r->res->rolled_back = 1;
    snprintf(r->res->message, sizeof(r->res->message), "%s; kept v%llu", r->undo_msg,
             (unsigned long long)r->old);
    log_warn("rotation of %s failed and was rolled back: %s", r->s->path, r->undo_msg);
    return rk_error_set(err, RK_EHOOK, "%s: kept v%llu", r->undo_msg, (unsigned long long)r->old);
}

/* A step failed at the target or in a hook: record why and undo. */
static int
fail_and_undo(struct rot *r, const char *step, struct rk_error *err)
{
    snprintf(r->undo_msg, sizeof(r->undo_msg), "%s failed: %s", step, err->msg);
    return rotation_do_undo(r, err);
}

/* The target did not answer: the candidate stays pending. The journal keeps the step reached
 * and why, the lock goes, the rotation record says `pending` with a retry time, and the
 * history gets a "pending" event; `rekey rotate PATH` (or the daemon after next_retry) runs
 * the step again with the same candidate. Nothing is undone, so a value a person typed in is
 * never lost to an outage. Returns -RK_EUNAVAILABLE, or a store error. */
static int
do_park(struct rot *r, const char *step, struct rk_error *err)
{
    struct barrier_txn *t;
    struct rot_state st;
    int rc;

    r->attempts++;
    snprintf(r->unavailable, sizeof(r->unavailable), "%s: %s", step, err->msg);
    utf8_trim_tail(r->unavailable);
    if ((t = barrier_txn_new(r->e->br)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    memset(&st, 0, sizeof(st));
    st.state = ROT_PENDING;
    st.since = time_now();
    st.failures = r->attempts;
    st.next_retry = st.since + backoff_retry_delay(r->s->every, r->attempts);
    snprintf(st.message, sizeof(st.message), "target unavailable: %s", r->unavailable);
    utf8_trim_tail(st.message);
    rc = rotstate_put(t, r->s->path, &st);
    if (rc == 0)
        rc = rotation_history_add(t, r->s->path, rotation_op_names[r->op], "pending", r->old,
                                  r->candidate, r->author, r->reason, st.message,
                                  (time_now_us() - r->started_us) / 1000);
    if (rc == 0)
        rc = rotation_commit_step(r, t, COMMIT_PARK, err);
    else
        rk_error_set(err, RK_ENOMEM, "out of memory");
    barrier_txn_free(t);
    if (rc != 0)
        return rc;
    r->res->pending = 1;
    snprintf(r->res->message, sizeof(r->res->message),
             "v%llu stays pending: target unavailable: %s", (unsigned long long)r->candidate,
             r->unavailable);
    utf8_trim_tail(r->res->message);
    log_warn("%s: v%llu stays pending (try %d): target unavailable: %s", r->s->path,
             (unsigned long long)r->candidate, r->attempts, r->unavailable);
    return rk_error_set(err, RK_EUNAVAILABLE,
                        "target unavailable: %s; v%llu stays pending: 'rekey rotate %s' tries "
                        "it again",
                        r->unavailable, (unsigned long long)r->candidate, r->s->path);
}

/* A step failed: a target that did not answer parks the candidate, anything else undoes it.
 * A reload that timed out is undone (a rollout that hangs may be the new value's fault); one
 * whose target says it is unavailable waits like the others. */
static int
step_failed(struct rot *r, const char *step, int rc, struct rk_error *err)
{
    if (rc == -RK_EUNAVAILABLE || (rc == -RK_ETIMEOUT && r->step != STEP_PROMOTED))
        return do_park(r, step, err);
    return fail_and_undo(r, step, err);
}

/* Runs the retire of the previous value (finish step), inside the engine lock. */
/* Runs the steps from r->step to the end. */
int
rotation_run_from(struct rot *r, struct rk_error *err)
{
    int rc;

    switch (r->step) {
    case STEP_CREATED:
        rotation_progress(r, "apply", "making the target accept v%llu",
                          (unsigned long long)r->candidate);
        if ((rc = do_apply(r, err)) != 0)
            return rc == -RK_EBUSY || rc == -RK_EIO ? rc : step_failed(r, "apply", rc, err);
        if ((rc = commit_journal_only(r, STEP_APPLIED, err)) != 0)
            return rc;
        test_crash_at("apply");
        /* fall through */
    case STEP_APPLIED:
        rotation_progress(r, "test", "proving v%llu works", (unsigned long long)r->candidate);
        if ((rc = do_test(r, err)) != 0)
            return step_failed(r, "test", rc, err);
        if ((rc = commit_journal_only(r, STEP_TESTED, err)) != 0)
            return rc;
        test_crash_at("test");
        /* fall through */
    case STEP_TESTED:
        rotation_progress(r, "promote", "v%llu becomes current%s", (unsigned long long)r->candidate,
                          r->old ? ", the old one previous" : "");
        /* The kind's own promote (a keyring's latest version) first: run again on a resume. */
        if (r->ops->promote != NULL && r->op != ROT_OP_ROLLBACK) {
            rotation_set_ctx(r);
            if ((rc = r->ops->promote(&r->rctx, err)) != 0)
                return step_failed(r, "promote", rc, err);
        }
        if ((rc = do_promote(r, err)) != 0)
            return rc;
        test_crash_at("promote");
        /* fall through */
    case STEP_PROMOTED:
        rotation_progress(r, "reload", "telling the consumers");
        if ((rc = do_reload(r, err)) != 0)
            return step_failed(r, "reload", rc, err);
        if ((rc = do_complete(r, err)) != 0)
            return rc;
        test_crash_at("reload");
        break;
    case STEP_UNDOING: return rotation_do_undo(r, err);
    }
    snprintf(r->res->message, sizeof(r->res->message), "v%llu -> v%llu (%s)",
             (unsigned long long)r->old, (unsigned long long)r->candidate, r->res->new_fp);
    return 0;
}

/* ---- create ---- */

/* Consecutive failures before this attempt, kept so the backoff keeps growing. */
static int
prior_failures(struct rot *r)
{
    struct rot_state old;
    struct rk_error e2 = {0};

    if (rotstate_get(r->e->br, r->s->path, &old, &e2) == 0 &&
        (old.state == ROT_FAILED || old.state == ROT_RUNNING))
        return old.failures;
    return 0;
}

/* Builds the new data: the current data with every field create made set (the other fields
 * kept); one made field over a current version of at most one field is stored alone. */
static int
build_data(struct rot *r, const struct rot_fields *made, struct secret **data, char *fp,
           struct rk_error *err)
{
    json_t *obj = NULL;
    json_error_t jerr;
    char *text;
    struct secret *raw;
    int rc;

    if (r->old_fields != NULL)
        obj = json_loadb((const char *)r->old_fields->data, r->old_fields->len, 0, &jerr);
    if (obj == NULL || json_object_size(obj) <= 1) {
        json_decref(obj);
        if (made->n == 1)
            return kv_data_single(r->e->kv, made->v[0].name, made->v[0].value, data, fp, err);
        if ((obj = json_object()) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < made->n; i++) {
        const struct rot_field *f = &made->v[i];
        if (json_object_set_new(obj, f->name,
                                json_stringn((const char *)f->value->data, f->value->len)) != 0) {
            json_decref(obj);
            return rk_error_set(err, RK_EINVAL, "the new value of field %s is not valid UTF-8",
                                f->name);
        }
    }
    text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);
    if (text == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    raw = secret_from(text, strlen(text));
    freezero(text, strlen(text));
    if (raw == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    rc = kv_data_prepare(r->e->kv, raw, data, fp, err);
    secret_free(raw);
    return rc;
}

/* Checks what create made (at least one field; the entry's own field never internal) and adds
 * the names of its internal fields to r->internal. *rec gets the new rot/fields record when a
 * name was added, else NULL. */
static int
merge_internal(struct rot *r, const struct rot_fields *made, json_t **rec, struct rk_error *err)
{
    const char *field = rotator_field(r->s);
    size_t add = 0;
    char **nv;
    json_t *arr;

    *rec = NULL;
    if (made->n == 0)
        return rk_error_set(err, RK_EINTERNAL, "kind %s made no value for %s", r->s->kind,
                            r->s->path);
    for (size_t i = 0; i < made->n; i++) {
        int known = 0;
        if (!(made->v[i].flags & ROT_FIELD_INTERNAL))
            continue;
        if (strcmp(made->v[i].name, field) == 0)
            return rk_error_set(err, RK_EINTERNAL,
                                "kind %s marked the entry's field %s of %s internal", r->s->kind,
                                field, r->s->path);
        for (size_t j = 0; j < r->ninternal; j++)
            known |= strcmp(r->internal[j], made->v[i].name) == 0;
        add += !known;
    }
    if (add == 0)
        return 0;
    if ((nv = realloc(r->internal, (r->ninternal + add + 1) * sizeof(*nv))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r->internal = nv;
    for (size_t i = 0; i < made->n; i++) {
        int known = 0;
        if (!(made->v[i].flags & ROT_FIELD_INTERNAL))
            continue;
        for (size_t j = 0; j < r->ninternal; j++)
            known |= strcmp(r->internal[j], made->v[i].name) == 0;
        if (known)
            continue;
        if ((r->internal[r->ninternal] = strdup(made->v[i].name)) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        r->ninternal++;
    }
    r->internal[r->ninternal] = NULL;
    if ((arr = json_array()) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (size_t j = 0; j < r->ninternal; j++)
        if (json_array_append_new(arr, json_string(r->internal[j])) != 0) {
            json_decref(arr);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
    if ((*rec = json_pack("{s:o}", "internal", arr)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

static int
do_create(struct rot *r, struct rk_error *err)
{
    struct rot_fields made;
    struct secret *data = NULL;
    struct kv_meta *m = NULL;
    struct barrier_txn *t = NULL;
    struct rot_state st;
    json_t *internal = NULL;
    int64_t rev = 0;
    char fp[FINGERPRINT_LEN + 1], fk[KEY_MAX];
    int rc;

    rot_fields_init(&made);
    if ((rc = load_internal(r, err)) != 0)
        return rc;
    rotation_set_ctx(r);
    if ((rc = r->ops->create(&r->rctx, &made, err)) != 0)
        goto out;
    if ((rc = merge_internal(r, &made, &internal, err)) != 0)
        goto out;
    if ((rc = build_data(r, &made, &data, fp, err)) != 0)
        goto out;
    rc = kv_meta_load(r->e->kv, r->s->path, &m, &rev, err);
    if (rc == -RK_ENOTFOUND) {
        m = kv_meta_new();
        rev = 0;
        rc = m ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    if (rc != 0)
        goto out;
    if ((rc = kv_meta_add_version(m, KV_STAGE_PENDING, r->author, r->reason, fp, &r->candidate,
                                  err)) != 0)
        goto out;
    t = barrier_txn_new(r->e->br);
    if (t == NULL) {
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    memset(&st, 0, sizeof(st));
    st.state = ROT_RUNNING;
    st.since = time_now();
    st.failures = prior_failures(r);
    snprintf(st.message, sizeof(st.message), "%s to v%llu started", rotation_op_names[r->op],
             (unsigned long long)r->candidate);
    if ((rc = kv_stage_put(r->e->kv, t, r->s->path, m, rev, r->candidate, data, err)) != 0)
        goto out;
    if ((rc = rotstate_put(t, r->s->path, &st)) != 0)
        goto out;
    rotation_key_of(fk, sizeof(fk), "fields", r->s->path);
    if (internal != NULL) {
        rc = rotation_txn_put_json(t, fk, internal); /* takes internal */
        internal = NULL;
        if (rc != 0)
            goto out;
    }
    r->step = STEP_CREATED;
    if ((rc = rotation_commit_step(r, t, COMMIT_STEP, err)) != 0)
        goto out;
    memcpy(r->res->new_fp, fp, sizeof(r->res->new_fp));
    r->res->new_version = r->candidate;
    r->new_fields = data;
    data = NULL;
    /* The candidate's fields as a resumed rotation reads them: the whole stored data. */
    if ((rc = rot_fields_from_json(r->new_fields, (const char *const *)r->internal, r->ninternal,
                                   &r->new_map, err)) != 0)
        goto out;
    r->new_value = rot_fields_get(&r->new_map, rotator_field(r->s));
    rotation_progress(r, "create", "stored v%llu (%s) as pending", (unsigned long long)r->candidate,
                      fp);
out:
    barrier_txn_free(t);
    kv_meta_free(m);
    rot_fields_clear(&made);
    json_decref(internal);
    secret_free(data);
    return rc;
}

/* Rollback: the candidate is an existing version; it is journalled but not copied. */
static int
prepare_rollback(struct rot *r, struct rk_error *err)
{
    struct kv_meta *m = NULL;
    struct kv_version_meta *vm;
    struct barrier_txn *t;
    struct rot_state st;
    int rc;

    if ((rc = kv_metadata_get(r->e->kv, r->s->path, &m, err)) != 0)
        return rc;
    r->candidate = r->opts->to_version;
    if (r->candidate == 0) {
        /* The previous version; once its grace is over, the newest retired one before current. */
        for (size_t i = 0; i < m->nversions; i++)
            if (m->versions[i].stage == KV_STAGE_PREVIOUS)
                r->candidate = m->versions[i].version;
        for (size_t i = m->nversions; r->candidate == 0 && i-- > 0;) {
            const struct kv_version_meta *v = &m->versions[i];
            if (v->version < m->current_version && v->stage == KV_STAGE_RETIRED && !v->destroyed &&
                !kv_version_deleted(v, time_now_us()))
                r->candidate = v->version;
        }
    }
    vm = r->candidate ? kv_meta_find(m, r->candidate) : NULL;
    if (vm == NULL) {
        kv_meta_free(m);
        return rk_error_set(err, RK_ENOTFOUND,
                            r->candidate ? "%s has no version %llu"
                                         : "%s has no previous version to roll back to%.0llu",
                            r->s->path, (unsigned long long)r->candidate);
    }
    if (vm->destroyed || kv_version_deleted(vm, time_now_us())) {
        kv_meta_free(m);
        return rk_error_set(err, RK_EINVAL, "version %llu of %s is deleted or destroyed",
                            (unsigned long long)r->candidate, r->s->path);
    }
    if (r->candidate == m->current_version) {
        kv_meta_free(m);
        return rk_error_set(err, RK_EINVAL, "version %llu of %s is already current",
                            (unsigned long long)r->candidate, r->s->path);
    }
    r->target_stage = vm->stage;
    memcpy(r->res->new_fp, vm->fingerprint, sizeof(r->res->new_fp));
    r->res->new_version = r->candidate;
    kv_meta_free(m);
    if ((rc = rotation_load_version(r, r->candidate, &r->new_fields, &r->new_map, &r->new_value,
                                    err)) != 0)
        return rc;
    if (r->new_value == NULL)
        return rk_error_set(err, RK_EINVAL, "version %llu of %s has no field %s",
                            (unsigned long long)r->candidate, r->s->path, rotator_field(r->s));
    t = barrier_txn_new(r->e->br);
    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    memset(&st, 0, sizeof(st));
    st.state = ROT_RUNNING;
    st.since = time_now();
    st.failures = prior_failures(r);
    snprintf(st.message, sizeof(st.message), "rollback to v%llu started",
             (unsigned long long)r->candidate);
    rc = rotstate_put(t, r->s->path, &st);
    r->step = STEP_CREATED;
    if (rc == 0)
        rc = rotation_commit_step(r, t, 1, err);
    barrier_txn_free(t);
    if (rc == 0)
        rotation_progress(r, "create", "rolling back to v%llu (%s)",
                          (unsigned long long)r->candidate, r->res->new_fp);
    return rc;
}

/* ---- the public entry points ---- */

static void
dry_run(struct rot *r)
{
    unsigned flags = rotator_flags(r->ops, r->s);
    char grace[24], jk[KEY_MAX];
    json_t *journal = NULL;
    struct rk_error e2 = {0};

    rotation_key_of(jk, sizeof(jk), "journal", r->s->path);
    if (r->op != ROT_OP_ROLLBACK &&
        rotation_json_get_record(r->e->br, jk, &journal, NULL, &e2) == 0 &&
        rotation_journal_parked(journal)) {
        /* A candidate waits for its target: a rotation takes it up again, it makes no other. */
        rotation_progress(r, "resume",
                          "would try v%lld again from its %s step (target unavailable: %s)",
                          (long long)json_integer_value(json_object_get(journal, "candidate")),
                          json_string_value(json_object_get(journal, "step"))
                              ? json_string_value(json_object_get(journal, "step"))
                              : "?",
                          json_string_value(json_object_get(journal, "unavailable")));
        json_decref(journal);
        return;
    }
    json_decref(journal);
    if (r->op == ROT_OP_ROLLBACK)
        rotation_progress(r, "create", "would roll back to %s",
                          r->opts->to_version ? "the given version" : "the previous version");
    else if (flags & ROT_F_MANUAL_INPUT)
        rotation_progress(
            r, "create", "would read a new value from a person (stdin, file or prompt)%s%s",
            r->s->pattern ? " and check it against " : "", r->s->pattern ? r->s->pattern : "");
    else
        rotation_progress(r, "create", "would generate a new %s value%s%s", r->s->kind,
                          r->s->format ? " from format " : "", r->s->format ? r->s->format : "");
    rotation_progress(r, "apply", "would %s and run %zu apply hook%s",
                      r->ops->apply ? "make the target accept it" : "change nothing at the target",
                      r->s->napply, r->s->napply == 1 ? "" : "s");
    rotation_progress(r, "test", "would %s and run %zu test hook%s",
                      r->ops->test ? "check it against the target" : "run no built-in check",
                      r->s->ntest, r->s->ntest == 1 ? "" : "s");
    rotation_progress(r, "promote", "would make it current and the current value previous");
    rotation_progress(r, "reload", "would run %zu reload hook%s", r->s->nreload,
                      r->s->nreload == 1 ? "" : "s");
    duration_format(r->op == ROT_OP_REVOKE ? 0 : r->s->grace, grace, sizeof(grace));
    rotation_progress(r, "finish", "would retire the previous value after a grace of %s%s", grace,
                      (flags & ROT_F_PERSON_FINISHES) ? " (a person must confirm: rekey done)"
                                                      : "");
}

/* 1 when the caller hands create a value (a manual kind's value read by the CLI, a value in an
 * API request). */
static int
input_given(const struct rot_input *in)
{
    return in != NULL && in->value != NULL;
}

/* engine_rotate of the entry s found for path. */
int
rotation_rotate_found(struct engine *e, const struct inv_secret *s, const char *path,
                      const struct rotate_opts *opts, struct rotate_result *res,
                      struct rk_error *err)
{
    struct rot r;
    struct rotate_result dummy;
    char jk[KEY_MAX];
    json_t *journal = NULL;
    int rc;

    if (res == NULL)
        res = &dummy;
    memset(res, 0, sizeof(*res));
    memset(&r, 0, sizeof(r));
    r.e = e;
    r.opts = opts;
    r.res = res;
    r.op = opts->op;
    r.s = s;
    r.ops = rotator_find(r.s->kind);
    if (r.ops == NULL)
        return rk_error_set(err, RK_ENOTIMPL, "kind %s is not implemented yet (%s)", r.s->kind,
                            path);
    if (r.op == ROT_OP_ROLLBACK && (rotator_flags(r.ops, s) & ROT_F_NO_ROLLBACK))
        return rk_error_set(err, RK_EINVAL,
                            "%s cannot be rolled back: a %s entry keeps every version at or "
                            "above its minimum usable; rotate again for a new version, or lower "
                            "the minimum to accept an older one",
                            path, r.s->kind);
    snprintf(r.reason, sizeof(r.reason), "%s",
             opts->reason ? opts->reason : (r.op == ROT_OP_REVOKE ? "revoke" : ""));
    snprintf(r.author, sizeof(r.author), "%s", opts->author ? opts->author : "rekey");
    utf8_trim_tail(r.reason); /* a long reason is cut, but at a character boundary */
    utf8_trim_tail(r.author);
    if (opts->dry_run) {
        dry_run(&r);
        snprintf(res->message, sizeof(res->message), "dry run: nothing was changed");
        return 0;
    }
    if ((rc = rotation_lock_acquire(e, path, opts->lock_wait_ms, &r.lock_rev, err)) != 0)
        return rc;
    rotation_key_of(jk, sizeof(jk), "journal", path);
    rc = rotation_json_get_record(e->br, jk, &journal, NULL, err);
    if (rc == 0 && rotation_journal_parked(journal) &&
        (r.op != ROT_OP_ROLLBACK || rotation_journal_op_is(journal, "rollback"))) {
        /* A candidate waits for its target: this rotation is that one, tried again (a revoke
         * retires the old value at once when it passes). A second value would leave two. */
        if (input_given(opts->input)) {
            rc = rk_error_set(err, RK_EINVAL,
                              "v%lld of %s waits for its target (unavailable: %.200s); run "
                              "'rekey rotate %s' without a new value to try it again",
                              (long long)json_integer_value(json_object_get(journal, "candidate")),
                              path, json_string_value(json_object_get(journal, "unavailable")),
                              path);
            json_decref(journal);
            rotation_lock_release(e, path, r.lock_rev);
            return rc;
        }
        rc = rotation_resume_path(e, path, r.lock_rev, journal, opts,
                                  r.op == ROT_OP_REVOKE ? ROT_OP_REVOKE : -1, 0, res, err);
        json_decref(journal);
        return rc;
    }
    if (rc == 0) {
        /* An interrupted rotation of this path goes first: finish or undo it. A rollback drops a
         * candidate that waits for its target (a person asked for a known version). */
        struct rotate_result prev;
        int parked = rotation_journal_parked(journal);
        memset(&prev, 0, sizeof(prev));
        rc = rotation_resume_path(e, path, r.lock_rev, journal, NULL, -1, parked, &prev, err);
        json_decref(journal);
        if (rc == -RK_EUNAVAILABLE)
            *res = prev;
        if (rc != 0 && rc != -RK_EHOOK)
            return rc;
        log_info("%s: recovered an interrupted rotation first: %s", path, prev.message);
        rk_error_clear(err);
        if ((rc = rotation_lock_acquire(e, path, opts->lock_wait_ms, &r.lock_rev, err)) != 0)
            return rc;
    } else if (rc != -RK_ENOTFOUND) {
        rotation_lock_release(e, path,
                              r.lock_rev); /* the journal could not be read: nothing started */
        return rc;
    }
    rk_error_clear(err);
    /* A rotation ends the grace of the one before it: the value that waits to be retired is
     * retired now, before the current one becomes previous. rot/finish names one version, and
     * overwriting it would leave the older value live at the target (a provider key, a Redis
     * password) for good. A rollback keeps it: it may be returning to that very version. */
    if (r.op != ROT_OP_ROLLBACK) {
        rc = rotation_finish_locked(e, s, r.lock_rev, err);
        if (rc != 0 && rc != -RK_ENOTFOUND) {
            rotation_lock_release(e, path, r.lock_rev);
            return rc;
        }
        rk_error_clear(err);
    }
    r.started_us = time_now_us();
    /* The current value is the old one. */
    {
        struct kv_version_meta vm;
        rc = kv_get(e->kv, path, 0, NULL, &vm, err);
        if (rc == 0) {
            r.old = vm.version;
            memcpy(res->old_fp, vm.fingerprint, sizeof(res->old_fp));
            rc = rotation_load_version(&r, r.old, &r.old_fields, &r.old_map, &r.old_value, err);
        } else if (rc == -RK_ENOTFOUND) {
            rc = 0;
            rk_error_clear(err);
        }
    }
    res->old_version = r.old;
    if (rc == 0)
        rc = r.op == ROT_OP_ROLLBACK ? prepare_rollback(&r, err) : do_create(&r, err);
    if (rc != 0) {
        /* Nothing was stored: release the lock (best effort) and report. */
        rotation_lock_release(e, path, r.lock_rev);
        rotation_clear(&r);
        return rc;
    }
    test_crash_at("create");
    rc = rotation_run_from(&r, err);
    if (rc != 0)
        /* A store error stopped the rotation halfway: the journal keeps it, and the next attempt
         * (the daemon's retry, `rekey rotate`, `rekey recover`) finishes or undoes it at once
         * instead of waiting LOCK_TTL for this live process's lock to expire. A no-op when a
         * step already released or lost the lock (the compare on its revision fails). */
        rotation_lock_release(e, path, r.lock_rev);
    if (rc == 0 && (r.op == ROT_OP_REVOKE || (r.s->grace == 0 && r.op != ROT_OP_ROLLBACK))) {
        struct rk_error e2 = {0};
        int fr = engine_finish(e, path, time_now(), 1, &e2);
        if (fr != 0 && fr != -RK_ENOTFOUND)
            log_error("%s: finish failed: %s", path, e2.msg);
    }
    rotation_clear(&r);
    return rc;
}
