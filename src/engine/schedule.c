/* schedule.c: status and calendar of the entries. See schedule.h. */
#include "engine/schedule.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/entries.h"
#include "engine/rotstate.h"
#include "rotators/rotator.h"
#include "secrets/kv.h"
#include "store/barrier.h"

static const char *const state_names[] = {
    [STATE_OK] = "ok",
    [STATE_DUE] = "due",
    [STATE_OVERDUE] = "overdue",
    [STATE_ROTATING] = "rotating",
    [STATE_FAILED] = "failed",
    [STATE_ACTION_REQUIRED] = "action-required",
    [STATE_NOT_IMPLEMENTED] = "not-implemented",
    [STATE_PENDING] = "pending",
};

const char *
secret_state_name(enum secret_state st)
{
    if ((unsigned)st >= sizeof(state_names) / sizeof(state_names[0]))
        return "unknown";
    return state_names[st];
}

int
secret_state_is_problem(enum secret_state st)
{
    return st == STATE_OVERDUE || st == STATE_FAILED;
}

/* A kind can be rotated when its row has a create (planned kinds keep a row without one). */
static int
ops_implemented(const struct rotator_ops *ops)
{
    return ops != NULL && ops->create != NULL;
}

int
schedule_kind_implemented(const char *kind)
{
    return ops_implemented(rotator_find(kind));
}

static int64_t
min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

void
schedule_compute(const struct inv_secret *s, int64_t last_rotated, int64_t now, int64_t *next_due,
                 enum secret_state *state)
{
    int64_t due, window, tolerance;

    if (s->every <= 0) {
        *next_due = 0;
        *state = STATE_OK;
        return;
    }
    due = last_rotated > 0 ? last_rotated + s->every : now;
    if (s->auto_rotate) {
        window = 0;
        tolerance = min64(3600, s->every / 10);
    } else {
        window = min64(7 * 86400, s->every / 4);
        tolerance = 0;
    }
    *next_due = due;
    if (last_rotated == 0)
        *state = STATE_DUE; /* never rotated: the first value is still to be made */
    else if (now > due + tolerance)
        *state = STATE_OVERDUE;
    else if (now >= due - window)
        *state = STATE_DUE;
    else
        *state = STATE_OK;
}

/* The state of an entry due at `due` by its kind's word: due from the reminder window before
 * it (manual kinds: min(7d, period/4)), overdue past overdue_at when the kind gave one, else
 * past the tolerance (auto: min(1h, period/10)). */
static enum secret_state
state_at(const struct inv_secret *s, int64_t due, int64_t overdue_at, int64_t period, int64_t now)
{
    int64_t window = s->auto_rotate ? 0 : min64(7 * 86400, period / 4);
    int64_t late =
        overdue_at > 0 ? overdue_at : due + (s->auto_rotate ? min64(3600, period / 10) : 0);

    if (due <= 0)
        return STATE_OK;
    if (overdue_at > 0 ? now >= late : now > late)
        return STATE_OVERDUE;
    if (now >= due - window)
        return STATE_DUE;
    return STATE_OK;
}

/* What a kind's status op reads: the current version of the entry. */
struct cur_reader {
    struct kv *kv;
    const char *path;
    uint64_t version;
};

static int
read_current(void *arg, const char *field, struct secret **out, struct rk_error *err)
{
    struct cur_reader *cr = arg;

    *out = NULL;
    if (cr->version == 0)
        return rk_error_set(err, RK_ENOTFOUND, "%s has no current version", cr->path);
    return kv_get_field(cr->kv, cr->path, cr->version, field, out, err);
}

/* Errors of the store itself: a status op that meets one passes it on. */
static int
is_store_error(int r)
{
    return r == -RK_ESEALED || r == -RK_EIO || r == -RK_ECORRUPT || r == -RK_ENOMEM ||
           r == -RK_EVERSION;
}

/* Asks the kind's status op when st's entry is due (st holds the engine's rule already). */
static int
kind_status(struct kv *kv, const struct inv_secret *s, const struct rotator_ops *ops, int64_t now,
            struct secret_status *st, struct rk_error *err)
{
    struct cur_reader cr = {kv, s->path, st->version};
    struct rot_status_in in = {now, st->last_rotated, st->version, read_current, &cr, kv};
    struct rot_due due;
    struct rk_error e2 = {0};
    int r;

    memset(&due, 0, sizeof(due));
    due.next_due = st->next_due;
    due.period = st->period;
    r = ops->status(s, &in, &due, &e2);
    if (r != 0) {
        if (is_store_error(r))
            return rk_error_set(err, -r, "%s: %s", s->path, e2.msg);
        /* The engine's rule stands; say why the kind could not tell. */
        snprintf(st->detail, sizeof(st->detail), "status: %s", e2.msg[0] ? e2.msg : rk_strerror(r));
        return 0;
    }
    st->next_due = due.next_due > 0 ? due.next_due : 0;
    st->expires_at = due.expires_at > 0 ? due.expires_at : 0;
    st->period = due.period > 0 ? due.period : 0;
    st->state =
        state_at(s, st->next_due, due.overdue_at, st->period > 0 ? st->period : s->every, now);
    due.detail[sizeof(due.detail) - 1] = '\0';
    snprintf(st->detail, sizeof(st->detail), "%s", due.detail);
    return 0;
}

/* What is known about a secret's rotation record before reading it. */
enum rot_known { ROT_UNKNOWN, ROT_ABSENT, ROT_PRESENT };

/* One secret's status. The current version comes from kv_get without data, which reads only
 * the current-version record (no metadata decode). known says whether the rotation record needs
 * a read at all: status over a whole inventory lists the records once instead of probing each
 * secret (most have none). */
static int
status_one(struct kv *kv, const struct inv_secret *s, const struct rotator_ops *ops, int64_t now,
           enum rot_known known, struct secret_status *st, struct rk_error *err)
{
    struct kv_version_meta vm;
    struct rot_state rs;
    int r;

    memset(st, 0, sizeof(*st));
    st->secret = s;
    if (!ops_implemented(ops)) {
        st->state = st->due_state = STATE_NOT_IMPLEMENTED;
        snprintf(st->detail, sizeof(st->detail), "kind %s is not implemented yet", s->kind);
        return 0;
    }
    /* -RK_ENOTFOUND with vm.version set: the current version is deleted or destroyed; its
     * record still dates the last rotation. */
    r = kv_get(kv, s->path, 0, NULL, &vm, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    if (vm.version != 0) {
        st->version = vm.version;
        memcpy(st->fingerprint, vm.fingerprint, sizeof(st->fingerprint));
        st->last_rotated = vm.created_us / 1000000;
    }
    schedule_compute(s, st->last_rotated, now, &st->next_due, &st->state);
    st->period = s->every > 0 ? s->every : 0;
    if (ops->status != NULL && (r = kind_status(kv, s, ops, now, st, err)) != 0)
        return r;
    st->due_state = st->state;
    if (known == ROT_ABSENT)
        return 0;
    r = rotstate_get(kv_barrier(kv), s->path, &rs, err);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        return 0;
    }
    if (r != 0)
        return r;
    st->failures = rs.failures;
    st->state_since = rs.state != ROT_IDLE ? rs.since : 0;
    if (rs.state == ROT_RUNNING)
        st->state = STATE_ROTATING;
    else if (rs.state == ROT_FAILED)
        st->state = STATE_FAILED;
    else if (rs.state == ROT_ACTION_REQUIRED)
        st->state = STATE_ACTION_REQUIRED;
    else if (rs.state == ROT_PENDING)
        st->state = STATE_PENDING;
    if (rs.message[0] != '\0' || rs.state != ROT_IDLE)
        snprintf(st->detail, sizeof(st->detail), "%s", rs.message);
    return 0;
}

int
schedule_status_one(struct kv *kv, const struct inv_secret *s, int64_t now,
                    struct secret_status *st, struct rk_error *err)
{
    return status_one(kv, s, rotator_find(s->kind), now, ROT_UNKNOWN, st, err);
}

int
schedule_status_ops(struct kv *kv, const struct inv_secret *s, const struct rotator_ops *ops,
                    int64_t now, struct secret_status *st, struct rk_error *err)
{
    return status_one(kv, s, ops, now, ROT_UNKNOWN, st, err);
}

#define ROT_STATE_PREFIX "rot/state/"

/* The paths that have a rotation record, sorted (strcmp), collected by one listing. */
struct rot_paths {
    char **v;
    size_t n, cap;
};

static int
rot_paths_add(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct rot_paths *rp = arg;
    char *p;

    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strncmp(key, ROT_STATE_PREFIX, sizeof(ROT_STATE_PREFIX) - 1) != 0)
        return 0;
    if (rp->n == rp->cap) {
        size_t ncap = rp->cap ? rp->cap * 2 : 64;
        char **nv = realloc(rp->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return -RK_ENOMEM;
        rp->v = nv;
        rp->cap = ncap;
    }
    if ((p = strdup(key + sizeof(ROT_STATE_PREFIX) - 1)) == NULL)
        return -RK_ENOMEM;
    rp->v[rp->n++] = p;
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
rot_paths_free(struct rot_paths *rp)
{
    for (size_t i = 0; i < rp->n; i++)
        free(rp->v[i]);
    free(rp->v);
}

/* Lists the paths that have a rotation record into *rp, sorted. */
static int
rot_paths_list(struct kv *kv, struct rot_paths *rp, struct rk_error *err)
{
    int r = barrier_list(kv_barrier(kv), ROT_STATE_PREFIX, NULL, 0, rot_paths_add, rp, err);

    if (r == -RK_ENOMEM)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r != 0)
        return r;
    /* Backends list in byte order already; sorting again costs little and is certain. */
    if (rp->n > 1)
        qsort(rp->v, rp->n, sizeof(*rp->v), cmp_str);
    return 0;
}

/* Fills st[0..n) for secrets[0..n). */
static int
status_many(struct kv *kv, const struct inv_secret *secrets, size_t n, const struct rot_paths *rp,
            int64_t now, int in_store, struct secret_status *st, struct rk_error *err)
{
    int r;

    for (size_t i = 0; i < n; i++) {
        const char *path = secrets[i].path;
        enum rot_known known =
            rp->n > 0 && bsearch(&path, rp->v, rp->n, sizeof(*rp->v), cmp_str) != NULL ? ROT_PRESENT
                                                                                       : ROT_ABSENT;
        if ((r = status_one(kv, &secrets[i], rotator_find(secrets[i].kind), now, known, &st[i],
                            err)) != 0)
            return r;
        st[i].in_store = in_store;
    }
    return 0;
}

int
schedule_status_all(struct kv *kv, const struct inventory *inv, int64_t now,
                    struct secret_status **out, struct rk_error *err)
{
    struct secret_status *st = calloc(inv->nsecrets ? inv->nsecrets : 1, sizeof(*st));
    struct rot_paths rp = {0};
    int r;

    if (st == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if ((r = rot_paths_list(kv, &rp, err)) != 0 ||
        (r = status_many(kv, inv->secrets, inv->nsecrets, &rp, now, 0, st, err)) != 0)
        goto out;
    *out = st;
    st = NULL;
out:
    rot_paths_free(&rp);
    free(st);
    return r;
}

int
schedule_status_list(struct kv *kv, const struct inventory *inv, int64_t now,
                     struct schedule_list *out, struct rk_error *err)
{
    struct rot_paths rp = {0};
    struct inventory *own = NULL;
    size_t n;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = engine_entries_load(kv, inv, &own, NULL, err)) != 0)
        return r;
    n = inv->nsecrets + own->nsecrets;
    if ((out->st = calloc(n ? n : 1, sizeof(*out->st))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    out->own_ = own;
    own = NULL;
    out->ninv = inv->nsecrets;
    if ((r = rot_paths_list(kv, &rp, err)) != 0 ||
        (r = status_many(kv, inv->secrets, inv->nsecrets, &rp, now, 0, out->st, err)) != 0 ||
        (r = status_many(kv, out->own_->secrets, out->own_->nsecrets, &rp, now, 1,
                         out->st + out->ninv, err)) != 0)
        goto out;
    out->n = n;
out:
    rot_paths_free(&rp);
    inventory_free(own);
    if (r != 0)
        schedule_list_free(out);
    return r;
}

void
schedule_list_free(struct schedule_list *l)
{
    if (l == NULL)
        return;
    free(l->st);
    inventory_free(l->own_);
    memset(l, 0, sizeof(*l));
}

size_t
schedule_occurrences(const struct secret_status *st, int64_t from, int64_t to, size_t max,
                     schedule_occ_cb cb, void *arg)
{
    int64_t t, p = st->period;
    size_t n = 0;

    if (st->state == STATE_NOT_IMPLEMENTED || st->next_due <= 0)
        return 0;
    t = st->next_due;
    if (p <= 0) {
        /* The kind knows only the next due time. */
        if (t < from || t >= to)
            return 0;
        cb(arg, t); /* the first call: within any max */
        return 1;
    }
    if (t < from) {
        /* Jump, do not step: a 1h schedule over a year is 8760 steps we need not take. */
        int64_t k = (from - t + p - 1) / p;
        /* A secret that is overdue is still due once now: keep its due time if it is in range. */
        t += k * p;
    }
    for (; t < to; t += p) {
        if (max == 0 || n < max)
            cb(arg, t);
        n++;
    }
    return n;
}
