/* rotation-finish.c: what happens after a rotation: finishing (retiring the previous value once
 * its grace has passed, or opening an action-required item when a person must retire it), the
 * pending finishes, a person's `rekey done`, the action hint, and reading a path's history. */
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
#include "util/backoff.h"

/* What a person must do for an action-required item of version: the rotator's hint (with the
 * console URL) or a generic line. Never a secret. */
static void
action_line(const struct rotator_ops *ops, const struct inv_secret *s, uint64_t version, char *buf,
            size_t len)
{
    char hint[160] = "";

    if (ops != NULL && ops->action_hint != NULL && ops->action_hint(s, hint, sizeof(hint)) == 0 &&
        hint[0] != '\0')
        snprintf(buf, len, "v%llu: %s", (unsigned long long)version, hint);
    else
        snprintf(buf, len, "retire v%llu at the provider", (unsigned long long)version);
    utf8_trim_tail(buf);
}

int
rotation_finish_locked(struct engine *e, const struct inv_secret *s, int64_t lock_rev,
                       struct rk_error *err)
{
    char fk[KEY_MAX], lk[KEY_MAX];
    json_t *rec = NULL;
    json_int_t version = 0, due = 0;
    int person = 0, rc, current_again = 0;
    int64_t frev = 0;
    char by_person[160] = "";
    struct rot r;
    struct rotate_result res;
    struct rotate_opts none;
    struct barrier_txn *t = NULL;

    rotation_key_of(fk, sizeof(fk), "finish", s->path);
    rotation_key_of(lk, sizeof(lk), "lock", s->path);
    if ((rc = rotation_json_get_record(e->br, fk, &rec, &frev, err)) != 0)
        return rc;
    if (json_unpack(rec, "{s:I, s:I, s?b}", "version", &version, "due", &due, "person", &person) !=
        0) {
        json_decref(rec);
        return rk_error_set(err, RK_ECORRUPT, "the finish record of %s does not parse", s->path);
    }
    json_decref(rec);
    memset(&r, 0, sizeof(r));
    memset(&res, 0, sizeof(res));
    memset(&none, 0, sizeof(none));
    r.e = e;
    r.s = s;
    r.ops = rotator_find(s->kind);
    r.opts = &none;
    r.res = &res;
    r.old = (uint64_t)version;
    r.lock_rev = lock_rev;
    if (r.ops == NULL)
        return rk_error_set(err, RK_ENOTIMPL, "kind %s is not implemented yet", s->kind);
    {
        /* A rollback within the grace made the version to retire current again: retiring it now
         * would take the working value away from the target. The record is dropped instead. */
        struct kv_meta *m = NULL;
        const struct kv_version_meta *vm;
        if (kv_metadata_get(e->kv, s->path, &m, err) == 0 &&
            (vm = kv_meta_find(m, r.old)) != NULL && vm->stage != KV_STAGE_PREVIOUS)
            current_again = vm->stage == KV_STAGE_CURRENT;
        kv_meta_free(m);
        rk_error_clear(err);
    }
    if (r.ops->retire != NULL && !current_again) {
        if ((rc = rotation_load_version(&r, r.old, &r.old_fields, &r.old_map, &r.old_value, err)) !=
                0 &&
            rc != -RK_ENOTFOUND)
            goto out;
        rotation_set_ctx(&r);
        /* -RK_EACTION: the rotator cannot retire this value itself (the old key was made by a
         * person, not by the admin API): a person does, through an action-required item. */
        if ((rc = r.ops->retire(&r.rctx, err)) == -RK_EACTION) {
            snprintf(by_person, sizeof(by_person), "v%llu: %s", (unsigned long long)r.old,
                     err->msg);
            utf8_trim_tail(by_person);
            rk_error_clear(err);
            rc = 0;
        } else if (rc != 0) {
            goto out;
        }
    }
    t = barrier_txn_new(e->br);
    if (t == NULL) {
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    {
        struct kv_meta *m = NULL;
        int64_t rev = 0;
        rc = kv_meta_load(e->kv, s->path, &m, &rev, err);
        if (rc == 0) {
            struct kv_version_meta *vm = kv_meta_find(m, r.old);
            if (vm != NULL && vm->stage == KV_STAGE_PREVIOUS)
                vm->stage = KV_STAGE_RETIRED;
            rc = kv_stage_put(e->kv, t, s->path, m, rev, 0, NULL, err);
        }
        kv_meta_free(m);
    }
    if (rc == 0)
        rc = barrier_txn_cmp(t, fk, frev);
    if (rc == 0)
        rc = barrier_txn_del(t, fk);
    if (rc == 0 && !current_again &&
        (person || by_person[0] != '\0' || (rotator_flags(r.ops, s) & ROT_F_PERSON_FINISHES))) {
        struct rot_state st;
        memset(&st, 0, sizeof(st));
        st.state = ROT_ACTION_REQUIRED;
        st.since = time_now();
        if (by_person[0] != '\0')
            snprintf(st.action, sizeof(st.action), "%s", by_person);
        else
            action_line(r.ops, s, r.old, st.action, sizeof(st.action));
        snprintf(st.message, sizeof(st.message), "%s, then run: rekey done %s", st.action, s->path);
        utf8_trim_tail(st.message);
        rc = rotstate_put(t, s->path, &st);
    }
    if (rc == 0)
        rc = rotation_history_add(t, s->path, "finish", "ok", r.old, r.old, "rekey", "",
                                  current_again ? "not retired: it is current again (rolled back)"
                                                : "retired the previous value",
                                  0);
    if (rc == 0 && lock_rev != 0)
        rc = barrier_txn_cmp(t, lk, lock_rev);
    if (rc == 0)
        rc = rotation_history_commit(t, NULL, err);
    if (rc == 0) {
        log_info(current_again ? "finished %s: v%llu is current again, not retired"
                               : "finished %s: retired v%llu",
                 s->path, (unsigned long long)r.old);
        test_crash_at("finish");
    }
out:
    barrier_txn_free(t);
    rotation_clear(&r);
    return rc;
}

/* engine_finish of the entry s found for path. */
static int
finish_found(struct engine *e, const struct inv_secret *s, const char *path, int64_t now, int force,
             struct rk_error *err)
{
    char fk[KEY_MAX], lk[KEY_MAX];
    json_t *rec = NULL;
    json_int_t due = 0;
    int64_t lock_rev = 0;
    int rc;

    if (s == NULL)
        return rk_error_set(err, RK_ENOTFOUND, "%s is not in the inventory", path);
    rotation_key_of(fk, sizeof(fk), "finish", path);
    if ((rc = rotation_json_get_record(e->br, fk, &rec, NULL, err)) != 0)
        return rc;
    due = json_integer_value(json_object_get(rec, "due"));
    json_decref(rec);
    if (!force && due > now)
        return rk_error_set(err, RK_EBUSY, "the grace period of %s has not passed", path);
    if ((rc = rotation_lock_acquire(e, path, 5000, &lock_rev, err)) != 0)
        return rc;
    rc = rotation_finish_locked(e, s, lock_rev, err);
    {
        struct barrier_txn *t = barrier_txn_new(e->br);
        struct rk_error e2 = {0};
        rotation_key_of(lk, sizeof(lk), "lock", path);
        if (t != NULL && barrier_txn_cmp(t, lk, lock_rev) == 0 && barrier_txn_del(t, lk) == 0)
            (void)barrier_txn_commit(t, NULL, &e2);
        barrier_txn_free(t);
    }
    return rc;
}

int
engine_finish(struct engine *e, const char *path, int64_t now, int force, struct rk_error *err)
{
    struct entry_ref ref;
    int rc;

    if ((rc = engine_entry_find(e->kv, e->inv, path, &ref, err)) != 0)
        return rc;
    rc = finish_found(e, ref.s, path, now, force, err);
    entry_ref_release(&ref);
    return rc;
}

struct finish_iter {
    struct engine *e;
    finish_cb cb;
    void *arg;
};

static int
finish_iter_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    struct finish_iter *fi = arg;
    const char *path = key + strlen("rot/finish/");
    json_t *rec = NULL;
    struct rk_error e2 = {0};
    int64_t due;

    (void)val;
    (void)vlen;
    (void)rev;
    if (rotation_json_get_record(fi->e->br, key, &rec, NULL, &e2) != 0)
        return 0;
    due = json_integer_value(json_object_get(rec, "due"));
    json_decref(rec);
    return fi->cb(fi->arg, path, due);
}

int
engine_pending_finishes(struct engine *e, finish_cb cb, void *arg, struct rk_error *err)
{
    struct finish_iter fi = {e, cb, arg};

    return barrier_list(e->br, "rot/finish/", NULL, 0, finish_iter_cb, &fi, err);
}

int
engine_action(struct engine *e, const char *path, char *buf, size_t len, struct rk_error *err)
{
    struct rot_state st;
    int rc;

    if ((rc = rotstate_get(e->br, path, &st, err)) != 0 || st.state != ROT_ACTION_REQUIRED)
        return rc == 0 || rc == -RK_ENOTFOUND
                   ? rk_error_set(err, RK_ENOTFOUND, "%s has no open action-required item", path)
                   : rc;
    snprintf(buf, len, "%s", st.action[0] != '\0' ? st.action : st.message);
    return 0;
}

int
engine_done(struct engine *e, const char *path, const char *author, struct rk_error *err)
{
    struct rot_state st;
    struct barrier_txn *t;
    int rc;

    if ((rc = rotstate_get(e->br, path, &st, err)) != 0 || st.state != ROT_ACTION_REQUIRED)
        return rc == 0 || rc == -RK_ENOTFOUND
                   ? rk_error_set(err, RK_ENOTFOUND, "%s has no open action-required item", path)
                   : rc;
    t = barrier_txn_new(e->br);
    if (t == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    memset(&st, 0, sizeof(st));
    st.state = ROT_IDLE;
    rc = rotstate_put(t, path, &st);
    if (rc == 0)
        rc = rotation_history_add(t, path, "done", "ok", 0, 0, author, "",
                                  "action confirmed by a person", 0);
    if (rc == 0)
        rc = rotation_history_commit(t, NULL, err);
    barrier_txn_free(t);
    return rc;
}

struct hist_iter {
    struct engine *e;
    history_cb cb;
    void *arg;
};

static int
hist_iter_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    struct hist_iter *hi = arg;
    struct rot_event ev;
    json_t *rec = NULL;
    struct rk_error e2 = {0};
    const char *op = "", *result = "", *author = "", *reason = "", *msg = "";
    json_int_t t = 0, from = 0, to = 0, dur = 0;

    (void)val;
    (void)vlen;
    (void)rev;
    if (rotation_json_get_record(hi->e->br, key, &rec, NULL, &e2) != 0)
        return 0;
    memset(&ev, 0, sizeof(ev));
    json_unpack(rec, "{s?I, s?s, s?s, s?I, s?I, s?s, s?s, s?s, s?I}", "time", &t, "op", &op,
                "result", &result, "from", &from, "to", &to, "author", &author, "reason", &reason,
                "message", &msg, "duration_ms", &dur);
    ev.time_us = t;
    snprintf(ev.op, sizeof(ev.op), "%s", op);
    snprintf(ev.result, sizeof(ev.result), "%s", result);
    ev.from_version = (uint64_t)from;
    ev.to_version = (uint64_t)to;
    snprintf(ev.author, sizeof(ev.author), "%s", author);
    snprintf(ev.reason, sizeof(ev.reason), "%s", reason);
    snprintf(ev.message, sizeof(ev.message), "%s", msg);
    ev.duration_ms = dur;
    json_decref(rec);
    return hi->cb(hi->arg, &ev);
}

int
engine_history(struct engine *e, const char *path, history_cb cb, void *arg, struct rk_error *err)
{
    char prefix[KEY_MAX];
    struct hist_iter hi = {e, cb, arg};

    snprintf(prefix, sizeof(prefix), "rot/history/%s ", path);
    return barrier_list(e->br, prefix, NULL, 0, hist_iter_cb, &hi, err);
}
