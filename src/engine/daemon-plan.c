/* daemon-plan.c: when each entry's timers fire: the plan of every entry (the inventory's and
 * the store's) from the store at start and at each re-plan, the plan of one store entry when a
 * change notice names it, and the entries' slots. See daemon.c for the loop that runs the
 * timers, and the top comment there for the rules. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/daemon-int.h"
#include "engine/rotation.h"
#include "engine/rotstate.h"
#include "engine/schedule.h"
#include "rotators/rotator.h"
#include "secrets/kv.h"
#include "store/barrier.h"
#include "util/backoff.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/strmap.h"
#include "util/timeutil.h"

static void
fmt_when(int64_t ms, char *buf, size_t len)
{
    time_format_rfc3339(ms / 1000 * 1000000, buf, len);
}

/* ---- timers ---- */

/* Entry i: an inventory index, or a store slot with STORE_BIT. */
struct entry *
daemon_entry(struct daemon *d, size_t i)
{
    return (i & STORE_BIT) ? &d->sent[i & ~STORE_BIT] : &d->ent[i];
}

const char *
daemon_entry_path(const struct daemon *d, size_t i)
{
    return (i & STORE_BIT) ? d->sent[i & ~STORE_BIT].path : inv_of(d)->secrets[i].path;
}

/* Entry i's definition: the inventory's (borrowed), or the store's read again now. Returns 0
 * (release ref), -RK_ENOTFOUND (a store entry deleted meanwhile) or another error. */
int
daemon_entry_find(struct daemon *d, size_t i, struct entry_ref *ref, struct rk_error *err)
{
    if (!(i & STORE_BIT)) {
        memset(ref, 0, sizeof(*ref));
        ref->s = &inv_of(d)->secrets[i];
        return 0;
    }
    return engine_entry_find(d->kv, inv_of(d), d->sent[i & ~STORE_BIT].path, ref, err);
}

/* Sets entry i's schedule timer (creating or moving it). */
int
daemon_set_timer(struct daemon *d, size_t i, enum timer_kind kind, int64_t due_ms)
{
    struct entry *en = daemon_entry(d, i);
    struct timer t;

    if (en->timer != TIMER_ID_NONE)
        return timerheap_update(d->heap, en->timer, due_ms, kind);
    t.due_ms = due_ms;
    t.kind = kind;
    t.index = i;
    t.path = daemon_entry_path(d, i);
    return timerheap_push(d->heap, &t, &en->timer);
}

int
daemon_set_finish(struct daemon *d, size_t i, int64_t due_ms)
{
    struct entry *en = daemon_entry(d, i);
    struct timer t;

    if (en->finish != TIMER_ID_NONE)
        return timerheap_update(d->heap, en->finish, due_ms, TIMER_FINISH);
    t.due_ms = due_ms;
    t.kind = TIMER_FINISH;
    t.index = i;
    t.path = daemon_entry_path(d, i);
    return timerheap_push(d->heap, &t, &en->finish);
}

/* Removes entry i's timers. */
static void
clear_timers(struct daemon *d, size_t i)
{
    struct entry *en = daemon_entry(d, i);

    if (en->timer != TIMER_ID_NONE)
        (void)timerheap_remove(d->heap, en->timer);
    if (en->finish != TIMER_ID_NONE)
        (void)timerheap_remove(d->heap, en->finish);
    en->timer = en->finish = TIMER_ID_NONE;
}

/* ---- store entries' slots ---- */

/* The slot of path, or a new one. Returns 0 with *idx (STORE_BIT set) or -RK_ENOMEM. */
static int
slot_get(struct daemon *d, const char *path, size_t *idx)
{
    struct entry *en;
    size_t k;

    if (strmap_get(d->smap, path, &k) == 0) {
        *idx = k | STORE_BIT;
        return 0;
    }
    if (d->nsfree > 0) {
        k = d->sfree[--d->nsfree];
    } else {
        if (d->nsent == d->capsent) {
            size_t ncap = d->capsent ? d->capsent * 2 : 16;
            struct entry *n = realloc(d->sent, ncap * sizeof(*n));
            size_t *nf;
            if (n == NULL)
                return -RK_ENOMEM;
            d->sent = n;
            /* A free list as long as the slots can never overflow. */
            if ((nf = realloc(d->sfree, ncap * sizeof(*nf))) == NULL)
                return -RK_ENOMEM;
            d->sfree = nf;
            d->capsent = ncap;
        }
        k = d->nsent++;
    }
    en = &d->sent[k];
    memset(en, 0, sizeof(*en));
    en->timer = en->finish = TIMER_ID_NONE;
    if ((en->path = strdup(path)) == NULL || strmap_put(d->smap, en->path, k) != 0) {
        free(en->path);
        en->path = NULL;
        d->sfree[d->nsfree++] = k;
        return -RK_ENOMEM;
    }
    *idx = k | STORE_BIT;
    return 0;
}

/* Frees slot idx (STORE_BIT set) and its timers. */
void
daemon_slot_drop(struct daemon *d, size_t idx)
{
    struct entry *en = daemon_entry(d, idx);

    clear_timers(d, idx);
    (void)strmap_del(d->smap, en->path);
    free(en->path);
    en->path = NULL;
    d->sfree[d->nsfree++] = idx & ~STORE_BIT;
}

static size_t
slots_used(const struct daemon *d)
{
    return d->nsent - d->nsfree;
}

/* 1 when the daemon may rotate the kind on its own: a rotator exists and it does not need a
 * value from a person (those get reminders; the daemon never invents a value). */
static int
kind_is_automatic(const struct inv_secret *s)
{
    const struct rotator_ops *ops = rotator_find(s->kind);

    return ops != NULL && s->auto_rotate && !(rotator_flags(ops, s) & ROT_F_MANUAL_INPUT);
}

/* The first due time of secret s strictly after now in a schedule of period every starting at
 * due (seconds). */
static int64_t
next_period(int64_t due, int64_t every, int64_t now)
{
    if (every <= 0)
        return 0;
    if (due > now)
        return due;
    return due + ((now - due) / every + 1) * every;
}

struct plan_counts {
    size_t automatic, manual, retries, finishes, skipped;
};

/* The next reminder after due (reminded already): a period later, or in a day when the kind
 * knows no period (its status op is asked again then). */
int64_t
daemon_next_reminder(int64_t due, int64_t period, int64_t now)
{
    return period > 0 ? next_period(due, period, now) : now + 86400;
}

/* Plans entry i (definition s) from the store: ROTATE at its next due time (now when never
 * rotated), RETRY at the engine's next_retry after a failure or while a candidate waits for an
 * unavailable target, REMIND for an entry a person rotates. */
static int
plan_secret(struct daemon *d, size_t i, const struct inv_secret *s, int64_t now_s,
            struct plan_counts *pc, struct rk_error *err)
{
    struct entry *en = daemon_entry(d, i);
    struct secret_status st;
    struct rot_state rs;
    int r;

    if ((r = schedule_status_one(d->kv, s, now_s, &st, err)) != 0)
        return rk_error_prefix(err, "%s", s->path);
    if (st.state == STATE_NOT_IMPLEMENTED || st.next_due <= 0) {
        if (en->timer != TIMER_ID_NONE) {
            (void)timerheap_remove(d->heap, en->timer);
            en->timer = TIMER_ID_NONE;
        }
        if (pc != NULL)
            pc->skipped++;
        return 0;
    }
    if (!kind_is_automatic(s)) {
        int64_t due = st.next_due;
        /* Already reminded for this period (before a reload): the next period's reminder. */
        if (en->reminded_due != 0 && en->reminded_due >= due)
            due = daemon_next_reminder(due, st.period, now_s);
        if (pc != NULL)
            pc->manual++;
        return daemon_set_timer(d, i, TIMER_REMIND, due * 1000);
    }
    r = rotstate_get(kv_barrier(d->kv), s->path, &rs, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return rk_error_prefix(err, "%s", s->path);
    if (r == 0 && (rs.state == ROT_FAILED || rs.state == ROT_PENDING)) {
        int64_t retry = rs.next_retry > 0 ? rs.next_retry
                                          : rs.since + backoff_retry_delay(s->every, rs.failures);
        en->failures = rs.failures;
        if (pc != NULL)
            pc->retries++;
        return daemon_set_timer(d, i, TIMER_RETRY, retry * 1000);
    }
    rk_error_clear(err);
    if (pc != NULL)
        pc->automatic++;
    return daemon_set_timer(d, i, TIMER_ROTATE, st.next_due * 1000);
}

/* The FINISH timer of entry i from its record "rot/finish/<path>" (see rotation.c): one read,
 * not a listing of every pending finish. */
int
daemon_plan_finish(struct daemon *d, size_t i, struct rk_error *err)
{
    char key[PATH_MAX_LEN + 32];
    struct secret *v = NULL;
    json_t *rec;
    int r;

    snprintf(key, sizeof(key), "rot/finish/%s", daemon_entry_path(d, i));
    r = barrier_get(kv_barrier(d->kv), key, &v, NULL, err);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        return 0;
    }
    if (r != 0)
        return r;
    rec = json_loadb((const char *)v->data, v->len, 0, NULL);
    secret_free(v);
    if (!json_is_integer(json_object_get(rec, "due"))) {
        json_decref(rec);
        return rk_error_set(err, RK_ECORRUPT, "the finish record of %s does not parse",
                            daemon_entry_path(d, i));
    }
    r = daemon_set_finish(d, i, json_integer_value(json_object_get(rec, "due")) * 1000);
    json_decref(rec);
    return r == 0 ? 0 : rk_error_set(err, -r, "out of memory");
}

struct finish_plan {
    struct daemon *d;
    size_t count, orphans;
    int r;
};

static int
finish_plan_cb(void *arg, const char *path, int64_t due)
{
    struct finish_plan *fp = arg;
    const struct inv_secret *s = inventory_find(inv_of(fp->d), path);
    size_t idx;

    if (s != NULL) {
        idx = (size_t)(s - inv_of(fp->d)->secrets);
    } else if (strmap_get(fp->d->smap, path, &idx) == 0) {
        idx |= STORE_BIT;
    } else {
        /* The engine finishes only the entries it finds (it needs the kind's rotator). */
        log_warn("%s waits for its finish step but is no longer in %s nor in the store: put it "
                 "back, or retire its previous value by hand",
                 path, inv_of(fp->d)->file ? inv_of(fp->d)->file : "the configuration");
        fp->orphans++;
        return 0;
    }
    fp->r = daemon_set_finish(fp->d, idx, due * 1000);
    fp->count++;
    return fp->r;
}

/* Schedules the FINISH timer of every pending finish. */
static int
plan_finishes(struct daemon *d, size_t *count, struct rk_error *err)
{
    struct finish_plan fp = {d, 0, 0, 0};
    int r;

    r = engine_pending_finishes(d->eng, finish_plan_cb, &fp, err);
    if (r == 0 && fp.r != 0)
        r = rk_error_set(err, -fp.r, "out of memory");
    if (count != NULL)
        *count = fp.count;
    return r;
}

/* Plans every store entry the inventory does not name (one listing), keeping the slots (and
 * their failure counts) of the paths still there and freeing the others. */
static int
plan_store(struct daemon *d, int64_t now_s, struct plan_counts *pc, struct rk_error *err)
{
    struct inventory *all = NULL;
    size_t nbad = 0, idx;
    int r;

    if ((r = engine_entries_load(d->kv, inv_of(d), &all, &nbad, err)) != 0)
        return rk_error_prefix(err, "reading the store entries");
    for (size_t k = 0; k < d->nsent; k++)
        d->sent[k].seen = 0;
    for (size_t j = 0; j < all->nsecrets; j++) {
        if ((r = slot_get(d, all->secrets[j].path, &idx)) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        daemon_entry(d, idx)->seen = 1;
        if ((r = plan_secret(d, idx, &all->secrets[j], now_s, pc, err)) != 0)
            goto out;
    }
    for (size_t k = 0; k < d->nsent; k++)
        if (d->sent[k].path != NULL && !d->sent[k].seen)
            daemon_slot_drop(d, k | STORE_BIT);
    if (pc != NULL)
        pc->skipped += nbad;
    r = 0;
out:
    inventory_free(all);
    return r;
}

/* Clears the heap and plans every timer from the store. */
int
daemon_plan_all(struct daemon *d, struct rk_error *err)
{
    const struct inventory *inv = inv_of(d);
    struct plan_counts pc = {0};
    int64_t now_s = time_now();
    struct timer first;
    size_t nfin = 0, total;
    char from_store[48] = "";
    int r;

    timerheap_clear(d->heap);
    for (size_t i = 0; i < inv->nsecrets; i++) {
        d->ent[i].timer = TIMER_ID_NONE;
        d->ent[i].finish = TIMER_ID_NONE;
    }
    for (size_t k = 0; k < d->nsent; k++)
        d->sent[k].timer = d->sent[k].finish = TIMER_ID_NONE;
    for (size_t i = 0; i < inv->nsecrets; i++)
        if ((r = plan_secret(d, i, &inv->secrets[i], now_s, &pc, err)) != 0)
            return r;
    /* The store's entries not read (a store error): the configuration's are still planned. */
    if ((r = plan_store(d, now_s, &pc, err)) != 0)
        log_error("scheduler: %s; the entries defined in the store are not scheduled", err->msg);
    if ((r = plan_finishes(d, &nfin, err)) != 0)
        return r;
    total = inv->nsecrets + slots_used(d);
    if (slots_used(d) > 0)
        snprintf(from_store, sizeof(from_store), " (%zu defined in the store)", slots_used(d));
    log_info("scheduled %zu secret%s%s: %zu automatic, %zu manual (reminders), %zu retr%s, "
             "%zu finish%s; %zu not scheduled (no rotator or no period)",
             total, total == 1 ? "" : "s", from_store, pc.automatic, pc.manual, pc.retries,
             pc.retries == 1 ? "y" : "ies", nfin, nfin == 1 ? "" : "es", pc.skipped);
    if (timerheap_peek(d->heap, &first, NULL) == 0) {
        char when[40];
        fmt_when(first.due_ms, when, sizeof(when));
        log_info("next: %s %s at %s", timer_kind_name(first.kind), first.path, when);
    }
    return 0;
}

/* Re-plans the paths noticed since the last call, one at a time (the host's read lock held,
 * embedded). A path the inventory names is the inventory's; a path gone from the store loses
 * its slot. When a notice was lost, everything is planned again. */
void
daemon_plan_notices(struct daemon *d)
{
    char **paths;
    size_t n;
    int lost;
    int64_t now_s = time_now();

    d->changes = 0;
    pthread_mutex_lock(&d->nq.mu);
    paths = d->nq.paths;
    n = d->nq.n;
    lost = d->nq.lost;
    d->nq.paths = NULL;
    d->nq.n = d->nq.cap = 0;
    d->nq.lost = 0;
    pthread_mutex_unlock(&d->nq.mu);
    for (size_t j = 0; j < n; j++) {
        struct entry_ref ref;
        struct rk_error err = {0};
        size_t idx;
        int r, had;

        if (lost || inventory_find(inv_of(d), paths[j]) != NULL)
            continue;
        had = strmap_get(d->smap, paths[j], &idx) == 0;
        r = engine_entry_find(d->kv, inv_of(d), paths[j], &ref, &err);
        if (r == -RK_ENOTFOUND) {
            if (had) {
                log_info("%s: deleted from the store; not scheduled any more", paths[j]);
                daemon_slot_drop(d, idx | STORE_BIT);
            }
        } else if (r != 0) {
            log_error("%s: %s; not re-planned", paths[j], err.msg);
        } else if (slot_get(d, paths[j], &idx) != 0) {
            log_error("%s: out of memory; not re-planned", paths[j]);
        } else if (plan_secret(d, idx, ref.s, now_s, NULL, &err) != 0) {
            log_error("planning %s: %s", paths[j], err.msg);
        } else {
            log_info("%s: %s in the store; planned", paths[j], had ? "changed" : "defined");
        }
        entry_ref_release(&ref);
    }
    for (size_t j = 0; j < n; j++)
        free(paths[j]);
    free(paths);
    if (lost) {
        struct rk_error err = {0};
        log_warn("scheduler: a change notice was lost (out of memory): planning everything");
        if (daemon_plan_all(d, &err) != 0)
            log_error("scheduler: planning: %s (some secrets are not scheduled)", err.msg);
    }
}
