/* rotation-recover.c: picking up rotations a crash or an unavailable target left behind:
 * rebuilding a rotation from its journal and running it to the end (or undoing it), and
 * engine_recover, which walks the journals at start and resumes each whose lock has expired. */
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

/* Rebuilds a rotation from its journal and runs it to the end (or undoes it). op >= 0
 * replaces the journal's operation (a revoke takes up a parked rotation); drop undoes the
 * candidate instead of running it (a rollback over a parked candidate). */
static int
resume_found(struct engine *e, const struct inv_secret *s, const char *path, int64_t lock_rev,
             json_t *journal, const struct rotate_opts *opts, int op_override, int drop,
             struct rotate_result *res, struct rk_error *err)
{
    struct rot r;
    struct rotate_opts none;
    const char *op = NULL, *step = NULL, *reason = "", *author = "", *tstage = "retired";
    const char *undo = "", *unavailable = NULL;
    json_int_t cand = 0, old = 0, started = 0;
    int promoted = 0, attempts = 0, rc;

    memset(&r, 0, sizeof(r));
    memset(&none, 0, sizeof(none));
    r.e = e;
    r.opts = opts ? opts : &none;
    r.res = res;
    r.lock_rev = lock_rev;
    if (json_unpack(journal, "{s:s, s:s, s:I, s:I, s?s, s?s, s?I, s?b, s?s, s?s, s?i, s?s}", "op",
                    &op, "step", &step, "candidate", &cand, "old", &old, "reason", &reason,
                    "author", &author, "started", &started, "promoted", &promoted, "target_stage",
                    &tstage, "undo_msg", &undo, "attempts", &attempts, "unavailable",
                    &unavailable) != 0)
        return rk_error_set(err, RK_ECORRUPT, "the rotation journal of %s does not parse", path);
    r.s = s;
    r.ops = rotator_find(r.s->kind);
    if (r.ops == NULL)
        return rk_error_set(err, RK_ENOTIMPL, "kind %s is not implemented yet", r.s->kind);
    for (int i = 0; i < 3; i++)
        if (strcmp(op, rotation_op_names[i]) == 0)
            r.op = (enum rot_op)i;
    if (op_override >= 0)
        r.op = (enum rot_op)op_override;
    r.attempts = attempts;
    r.step = STEP_CREATED;
    for (int i = 0; i < 5; i++)
        if (strcmp(step, rotation_step_names[i]) == 0)
            r.step = (enum step)i;
    r.candidate = (uint64_t)cand;
    r.old = (uint64_t)old;
    r.promoted = promoted;
    r.started_us = started;
    (void)kv_stage_parse(tstage, &r.target_stage);
    snprintf(r.reason, sizeof(r.reason), "%s", reason);
    snprintf(r.author, sizeof(r.author), "%s", author);
    snprintf(r.undo_msg, sizeof(r.undo_msg), "%s", undo);
    res->old_version = r.old;
    res->new_version = r.candidate;
    rc = rotation_load_version(&r, r.candidate, &r.new_fields, &r.new_map, &r.new_value, err);
    if (rc == 0 && r.old != 0)
        rc = rotation_load_version(&r, r.old, &r.old_fields, &r.old_map, &r.old_value, err);
    if (rc == 0) {
        struct kv_version_meta vm;
        if (kv_get(e->kv, path, r.candidate, NULL, &vm, err) == 0)
            memcpy(res->new_fp, vm.fingerprint, sizeof(res->new_fp));
        rk_error_clear(err);
        if (drop && r.step != STEP_UNDOING) {
            snprintf(r.undo_msg, sizeof(r.undo_msg),
                     "v%llu dropped for a rollback (it waited for its target: %s)",
                     (unsigned long long)r.candidate, unavailable ? unavailable : "?");
            utf8_trim_tail(r.undo_msg);
            rc = rotation_do_undo(&r, err);
        } else {
            if (unavailable != NULL)
                rotation_progress(&r, "resume", "v%llu waited for its target (%s); trying again",
                                  (unsigned long long)r.candidate, unavailable);
            rc = rotation_run_from(&r, err);
        }
    }
    if (rc != 0)
        rotation_lock_release(e, path, r.lock_rev); /* as in rotation_rotate_found */
    if (rc == 0 && (r.op == ROT_OP_REVOKE || (r.s->grace == 0 && r.op != ROT_OP_ROLLBACK))) {
        struct rk_error e2 = {0};
        (void)engine_finish(e, path, time_now(), 1, &e2);
    }
    rotation_clear(&r);
    return rc;
}

/* The entry of path is found in one place (engine/entries.h: the inventory, then the store)
 * and held for the whole call. */
int
engine_rotate(struct engine *e, const char *path, const struct rotate_opts *opts,
              struct rotate_result *res, struct rk_error *err)
{
    struct entry_ref ref;
    int rc;

    if (res != NULL)
        memset(res, 0, sizeof(*res));
    if ((rc = engine_entry_find(e->kv, e->inv, path, &ref, err)) != 0)
        return rc;
    rc = rotation_rotate_found(e, ref.s, path, opts, res, err);
    entry_ref_release(&ref);
    return rc;
}

int
rotation_resume_path(struct engine *e, const char *path, int64_t lock_rev, json_t *journal,
                     const struct rotate_opts *opts, int op_override, int drop,
                     struct rotate_result *res, struct rk_error *err)
{
    struct entry_ref ref;
    int rc;

    rc = engine_entry_find(e->kv, e->inv, path, &ref, err);
    if (rc == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND,
                            "an interrupted rotation of %s is journalled but the path is no "
                            "longer in the inventory nor in the store; restore it to let rekey "
                            "finish it",
                            path);
    if (rc != 0)
        return rc;
    rc = resume_found(e, ref.s, path, lock_rev, journal, opts, op_override, drop, res, err);
    entry_ref_release(&ref);
    return rc;
}

struct collect {
    char **paths;
    size_t n, cap;
    size_t prefix_len;
};

static int
collect_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    struct collect *c = arg;

    (void)val;
    (void)vlen;
    (void)rev;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        char **np = realloc(c->paths, nc * sizeof(*np));
        if (np == NULL)
            return -RK_ENOMEM;
        c->paths = np;
        c->cap = nc;
    }
    c->paths[c->n] = strdup(key + c->prefix_len);
    if (c->paths[c->n] == NULL)
        return -RK_ENOMEM;
    c->n++;
    return 0;
}

static void
collect_free(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->paths[i]);
    free(c->paths);
}

int
engine_recover(struct engine *e, int64_t now, recover_cb cb, void *arg, size_t *count,
               struct rk_error *err)
{
    struct collect c = {NULL, 0, 0, strlen("rot/journal/")};
    int rc, first = 0;
    size_t acted = 0;

    rc = barrier_list(e->br, "rot/journal/", NULL, 0, collect_cb, &c, err);
    if (rc != 0) {
        collect_free(&c);
        return rc;
    }
    for (size_t i = 0; i < c.n; i++) {
        const char *path = c.paths[i];
        struct rk_error e2 = {0};
        struct rotate_result res;
        json_t *journal = NULL;
        char jk[KEY_MAX];
        int64_t lock_rev = 0;

        memset(&res, 0, sizeof(res));
        rc = rotation_lock_acquire(e, path, 0, &lock_rev, &e2);
        if (rc == -RK_EBUSY) {
            if (cb)
                cb(arg, path, "busy", "another process is rotating it now");
            continue;
        }
        rotation_key_of(jk, sizeof(jk), "journal", path);
        if (rc == 0 && (rc = rotation_json_get_record(e->br, jk, &journal, NULL, &e2)) != 0)
            rotation_lock_release(e, path,
                                  lock_rev); /* the journal could not be read: try again later */
        if (rc == 0 && rotation_journal_parked(journal)) {
            /* Not interrupted: a candidate waits for its target. Recovery neither undoes nor
             * retries it; `rekey rotate PATH` and the daemon (after next_retry) do. */
            char msg[400];
            snprintf(msg, sizeof(msg), "v%lld waits for its target (unavailable: %s)",
                     (long long)json_integer_value(json_object_get(journal, "candidate")),
                     json_string_value(json_object_get(journal, "unavailable")));
            utf8_trim_tail(msg);
            json_decref(journal);
            rotation_lock_release(e, path, lock_rev);
            if (cb)
                cb(arg, path, "pending", msg);
            continue;
        }
        if (rc == 0)
            rc = rotation_resume_path(e, path, lock_rev, journal, NULL, -1, 0, &res, &e2);
        json_decref(journal);
        acted++;
        if (rc == 0) {
            log_info("recovered %s: resumed and completed: %s", path, res.message);
            if (cb)
                cb(arg, path, "resumed", res.message);
        } else if (rc == -RK_EUNAVAILABLE && res.pending) {
            if (cb)
                cb(arg, path, "pending", res.message);
        } else if (rc == -RK_EHOOK && res.rolled_back) {
            log_warn("recovered %s: rolled back: %s", path, res.message);
            if (cb)
                cb(arg, path, "rolled back", res.message);
        } else {
            log_error("recovering %s failed: %s", path, e2.msg);
            if (cb)
                cb(arg, path, "failed", e2.msg);
            if (first == 0) {
                first = rc;
                rk_error_set(err, -rc, "%s: %s", path, e2.msg);
            }
        }
    }
    collect_free(&c);
    /* Finishes whose grace has passed. */
    {
        struct collect f = {NULL, 0, 0, strlen("rot/finish/")};
        rc = barrier_list(e->br, "rot/finish/", NULL, 0, collect_cb, &f, err);
        for (size_t i = 0; rc == 0 && i < f.n; i++) {
            struct rk_error e2 = {0};
            int fr = engine_finish(e, f.paths[i], now, 0, &e2);
            if (fr == 0) {
                acted++;
                if (cb)
                    cb(arg, f.paths[i], "finished", "retired the previous value");
            } else if (fr != -RK_EBUSY && fr != -RK_ENOTFOUND) {
                if (cb)
                    cb(arg, f.paths[i], "failed", e2.msg);
                if (first == 0) {
                    first = fr;
                    rk_error_set(err, -fr, "%s: %s", f.paths[i], e2.msg);
                }
            }
        }
        collect_free(&f);
        if (rc != 0 && first == 0)
            first = rc;
    }
    if (count != NULL)
        *count = acted;
    return first;
}
