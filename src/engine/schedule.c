#include "schedule.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../rotators/rotator.h"
#include "../secrets/kv.h"
#include "../store/barrier.h"
#include "rotstate.h"

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

int
schedule_kind_implemented(const char *kind)
{
    return rotator_find(kind) != NULL;
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

/* What is known about a secret's rotation record before reading it. */
enum rot_known { ROT_UNKNOWN, ROT_ABSENT, ROT_PRESENT };

/* One secret's status. The current version comes from kv_get without data, which reads only
 * the current-version record (no metadata decode). known says whether the rotation record needs
 * a read at all: status over a whole inventory lists the records once instead of probing each
 * secret (most have none). */
static int
status_one(struct kv *kv, const struct inv_secret *s, int64_t now, enum rot_known known,
           struct secret_status *st, struct rk_error *err)
{
    struct kv_version_meta vm;
    struct rot_state rs;
    int r;

    memset(st, 0, sizeof(*st));
    st->secret = s;
    if (!schedule_kind_implemented(s->kind)) {
        st->state = STATE_NOT_IMPLEMENTED;
        snprintf(st->detail, sizeof(st->detail), "kind %s is not implemented yet", s->kind);
        return 0;
    }
    /* -RK_ENOTFOUND with vm.version set: the current version is deleted or destroyed; its
     * record still dates the last rotation. */
    r = kv_get(kv, s->path, 0, NULL, &vm, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    if (vm.version != 0) {
        st->version = vm.version;
        memcpy(st->fingerprint, vm.fingerprint, sizeof(st->fingerprint));
        st->last_rotated = vm.created_us / 1000000;
    }
    schedule_compute(s, st->last_rotated, now, &st->next_due, &st->state);
    if (known == ROT_ABSENT)
        return 0;
    r = rotstate_get(kv_barrier(kv), s->path, &rs, err);
    if (r == -RK_ENOTFOUND)
        return 0;
    if (r != 0)
        return r;
    if (rs.state == ROT_RUNNING)
        st->state = STATE_ROTATING;
    else if (rs.state == ROT_FAILED)
        st->state = STATE_FAILED;
    else if (rs.state == ROT_ACTION_REQUIRED)
        st->state = STATE_ACTION_REQUIRED;
    else if (rs.state == ROT_PENDING)
        st->state = STATE_PENDING;
    snprintf(st->detail, sizeof(st->detail), "%s", rs.message);
    return 0;
}

int
schedule_status_one(struct kv *kv, const struct inv_secret *s, int64_t now,
                    struct secret_status *st, struct rk_error *err)
{
    return status_one(kv, s, now, ROT_UNKNOWN, st, err);
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

int
schedule_status_all(struct kv *kv, const struct inventory *inv, int64_t now,
                    struct secret_status **out, struct rk_error *err)
{
    struct secret_status *st = calloc(inv->nsecrets ? inv->nsecrets : 1, sizeof(*st));
    struct rot_paths rp = {0};
    int r;

    if (st == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r = barrier_list(kv_barrier(kv), ROT_STATE_PREFIX, NULL, 0, rot_paths_add, &rp, err);
    if (r == -RK_ENOMEM)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r != 0)
        goto out;
    /* Backends list in byte order already; sorting again costs little and is certain. */
    if (rp.n > 1)
        qsort(rp.v, rp.n, sizeof(*rp.v), cmp_str);
    for (size_t i = 0; i < inv->nsecrets; i++) {
        const char *path = inv->secrets[i].path;
        enum rot_known known =
            rp.n > 0 && bsearch(&path, rp.v, rp.n, sizeof(*rp.v), cmp_str) != NULL ? ROT_PRESENT
                                                                                   : ROT_ABSENT;
        if ((r = status_one(kv, &inv->secrets[i], now, known, &st[i], err)) != 0)
            goto out;
    }
    *out = st;
    st = NULL;
    r = 0;
out:
    rot_paths_free(&rp);
    free(st);
    return r;
}

size_t
schedule_occurrences(const struct secret_status *st, int64_t from, int64_t to, size_t max,
                     schedule_occ_cb cb, void *arg)
{
    const struct inv_secret *s = st->secret;
    int64_t t;
    size_t n = 0;

    if (s->every <= 0 || st->state == STATE_NOT_IMPLEMENTED || st->next_due == 0)
        return 0;
    t = st->next_due;
    if (t < from) {
        /* Jump, do not step: a 1h schedule over a year is 8760 steps we need not take. */
        int64_t k = (from - t + s->every - 1) / s->every;
        /* A secret that is overdue is still due once now: keep its due time if it is in range. */
        t += k * s->every;
    }
    for (; t < to; t += s->every) {
        if (max == 0 || n < max)
            cb(arg, t);
        n++;
    }
    return n;
}
