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

int
schedule_status_one(struct kv *kv, const struct inv_secret *s, int64_t now,
                    struct secret_status *st, struct rk_error *err)
{
    struct kv_meta *m = NULL;
    struct rot_state rs;
    int r;

    memset(st, 0, sizeof(*st));
    st->secret = s;
    if (!schedule_kind_implemented(s->kind)) {
        st->state = STATE_NOT_IMPLEMENTED;
        snprintf(st->detail, sizeof(st->detail), "kind %s is not implemented yet", s->kind);
        return 0;
    }
    r = kv_metadata_get(kv, s->path, &m, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    if (r == 0 && m->current_version != 0) {
        const struct kv_version_meta *vm = kv_meta_find(m, m->current_version);
        st->version = m->current_version;
        if (vm != NULL) {
            memcpy(st->fingerprint, vm->fingerprint, sizeof(st->fingerprint));
            st->last_rotated = vm->created_us / 1000000;
        }
    }
    kv_meta_free(m);
    schedule_compute(s, st->last_rotated, now, &st->next_due, &st->state);
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
    snprintf(st->detail, sizeof(st->detail), "%s", rs.message);
    return 0;
}

int
schedule_status_all(struct kv *kv, const struct inventory *inv, int64_t now,
                    struct secret_status **out, struct rk_error *err)
{
    struct secret_status *st = calloc(inv->nsecrets ? inv->nsecrets : 1, sizeof(*st));
    int r;

    if (st == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (size_t i = 0; i < inv->nsecrets; i++) {
        if ((r = schedule_status_one(kv, &inv->secrets[i], now, &st[i], err)) != 0) {
            free(st);
            return r;
        }
    }
    *out = st;
    return 0;
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
