/* daemon.c: the rotation daemon's loop.
 *
 * One entry per inventory secret holds the ids of its two possible timers: the schedule timer
 * (ROTATE, RETRY or REMIND) and the FINISH timer. The loop arms a timerfd at the earliest due
 * time (absolute CLOCK_REALTIME, cancelled when the clock is set, so a clock step re-plans
 * instead of oversleeping) and blocks in ppoll on it and a signalfd (`rekey run`) or the
 * host's control pipe (embedded in `rekey server`): an idle daemon makes no system call
 * between due times, however many secrets it watches. Due timers run one at a time; after
 * each, pending signals or control messages are read, so a stop happens between rotations,
 * never inside one (the engine journals each step; an interrupted one resumes at the next
 * start).
 *
 * Embedded, the host owns the inventory and may replace it (and free the old one) under its
 * write lock at any time. So the daemon reads *invp and everything planned from it (the
 * entries' indexes, the timers' borrowed paths) only while holding the host's read lock, and
 * before using them checks that the inventory is still the one it planned on; if not, it
 * re-plans. Entries then carry a copy of their path, the only thing a re-plan needs from the
 * old inventory. */
#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "../rotators/rotator.h"
#include "../secrets/kv.h"
#include "../store/backend.h"
#include "../store/barrier.h"
#include "../util/fsutil.h"
#include "../util/log.h"
#include "../util/parse.h"
#include "../util/timeutil.h"
#include "rotation.h"
#include "rotstate.h"
#include "schedule.h"
#include "timerheap.h"
#include "util/backoff.h"

#define DAEMON_AUTHOR "rekey-daemon"
#define DAEMON_REASON "scheduled"
/* A schedule timer is skipped (re-planned) when the secret's next due time, re-read just before
 * acting, lies this far ahead: someone rotated it meanwhile (`rekey rotate`, another daemon). */
#define SLACK_MS 1000

struct entry {
    uint32_t timer;  /* ROTATE / RETRY / REMIND timer id, or TIMER_ID_NONE */
    uint32_t finish; /* FINISH timer id, or TIMER_ID_NONE */
    int failures;    /* consecutive failures seen here (the engine's count wins) */
    int finish_failures;
    int64_t reminded_due; /* the due time (s) of the last reminder: one per due period */
    char *path;           /* embedded: a copy of the secret's path (see the top comment) */
};

struct daemon {
    struct kv *kv;
    struct inventory **invp;
    const struct inventory *inv; /* the inventory the entries and timers were planned on */
    const struct daemon_opts *opts;
    const struct daemon_embed *emb; /* NULL: `rekey run` */
    struct daemon_stats *stats;
    struct engine *eng;
    struct timerheap *heap;
    struct entry *ent; /* nent entries, one per secret of inv */
    size_t nent;
    uint64_t gen; /* *emb->generation when planned */
    int sfd, tfd; /* sfd: the signalfd (`rekey run`), else -1 */
    int once;
    int stop, reload;
    int stop_sig;
};

void
daemon_fmt_duration(int64_t secs, char *buf, size_t len)
{
    if (secs < 0)
        secs = 0;
    if (secs < 60)
        snprintf(buf, len, "%llds", (long long)secs);
    else if (secs < 3600)
        snprintf(buf, len, secs % 60 ? "%lldm%llds" : "%lldm", (long long)(secs / 60),
                 (long long)(secs % 60));
    else if (secs < 86400)
        snprintf(buf, len, secs % 3600 / 60 ? "%lldh%lldm" : "%lldh", (long long)(secs / 3600),
                 (long long)(secs % 3600 / 60));
    else
        snprintf(buf, len, secs % 86400 / 3600 ? "%lldd%lldh" : "%lldd", (long long)(secs / 86400),
                 (long long)(secs % 86400 / 3600));
}

static int64_t
now_ms(void)
{
    return time_now_us() / 1000;
}

static void
fmt_when(int64_t ms, char *buf, size_t len)
{
    time_format_rfc3339(ms / 1000 * 1000000, buf, len);
}

/* ---- timers ---- */

static const struct inventory *
inv_of(const struct daemon *d)
{
    return d->inv;
}

/* The host's read lock (embedded only). */
static void
host_lock(struct daemon *d)
{
    if (d->emb != NULL && d->emb->rdlock != NULL)
        d->emb->rdlock(d->emb->lock_arg);
}

static void
host_unlock(struct daemon *d)
{
    if (d->emb != NULL && d->emb->unlock != NULL)
        d->emb->unlock(d->emb->lock_arg);
}

/* Embedded, under the host's read lock: 1 when the host replaced the inventory since the plan
 * (a generation that moved also catches a new inventory allocated at the old one's address). */
static int
inventory_changed(const struct daemon *d)
{
    if (d->emb == NULL)
        return 0;
    if (*d->invp != d->inv)
        return 1;
    return d->emb->generation != NULL && *d->emb->generation != d->gen;
}

/* Sets secret i's schedule timer (creating or moving it). */
static int
set_timer(struct daemon *d, size_t i, enum timer_kind kind, int64_t due_ms)
{
    struct entry *en = &d->ent[i];
    struct timer t;

    if (en->timer != TIMER_ID_NONE)
        return timerheap_update(d->heap, en->timer, due_ms, kind);
    t.due_ms = due_ms;
    t.kind = kind;
    t.index = i;
    t.path = inv_of(d)->secrets[i].path;
    return timerheap_push(d->heap, &t, &en->timer);
}

static int
set_finish(struct daemon *d, size_t i, int64_t due_ms)
{
    struct entry *en = &d->ent[i];
    struct timer t;

    if (en->finish != TIMER_ID_NONE)
        return timerheap_update(d->heap, en->finish, due_ms, TIMER_FINISH);
    t.due_ms = due_ms;
    t.kind = TIMER_FINISH;
    t.index = i;
    t.path = inv_of(d)->secrets[i].path;
    return timerheap_push(d->heap, &t, &en->finish);
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

/* Plans secret i's schedule timer from the store: ROTATE at its next due time (now when never
 * rotated), RETRY at the engine's next_retry after a failure, REMIND for a manual secret. */
static int
plan_secret(struct daemon *d, size_t i, int64_t now_s, struct plan_counts *pc, struct rk_error *err)
{
    const struct inv_secret *s = &inv_of(d)->secrets[i];
    struct secret_status st;
    struct rot_state rs;
    int r;

    if ((r = schedule_status_one(d->kv, s, now_s, &st, err)) != 0)
        return rk_error_prefix(err, "%s", s->path);
    if (st.state == STATE_NOT_IMPLEMENTED || st.next_due <= 0 || s->every <= 0) {
        if (pc != NULL)
            pc->skipped++;
        return 0;
    }
    if (!kind_is_automatic(s)) {
        int64_t due = st.next_due;
        /* Already reminded for this period (before a reload): the next period's reminder. */
        if (d->ent[i].reminded_due != 0 && d->ent[i].reminded_due >= due)
            due = next_period(due, s->every, now_s);
        if (pc != NULL)
            pc->manual++;
        return set_timer(d, i, TIMER_REMIND, due * 1000);
    }
    r = rotstate_get(kv_barrier(d->kv), s->path, &rs, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return rk_error_prefix(err, "%s", s->path);
    if (r == 0 && rs.state == ROT_FAILED) {
        int64_t retry =
            rs.next_retry > 0 ? rs.next_retry : rs.since + backoff_retry_delay(s->every, rs.failures);
        d->ent[i].failures = rs.failures;
        if (pc != NULL)
            pc->retries++;
        return set_timer(d, i, TIMER_RETRY, retry * 1000);
    }
    rk_error_clear(err);
    if (pc != NULL)
        pc->automatic++;
    return set_timer(d, i, TIMER_ROTATE, st.next_due * 1000);
}

struct finish_plan {
    struct daemon *d;
    const char *only; /* NULL: every path */
    size_t count, orphans;
    int r;
};

static int
finish_plan_cb(void *arg, const char *path, int64_t due)
{
    struct finish_plan *fp = arg;
    const struct inv_secret *s;

    if (fp->only != NULL && strcmp(fp->only, path) != 0)
        return 0;
    s = inventory_find(inv_of(fp->d), path);
    if (s == NULL) {
        /* The engine finishes only what the inventory names (it needs the kind's rotator). */
        log_warn("%s waits for its finish step but is no longer in %s: put it back, or retire "
                 "its previous value by hand",
                 path, inv_of(fp->d)->file ? inv_of(fp->d)->file : "the configuration");
        fp->orphans++;
        return 0;
    }
    fp->r = set_finish(fp->d, (size_t)(s - inv_of(fp->d)->secrets), due * 1000);
    fp->count++;
    return fp->r;
}

/* Schedules the FINISH timer of path (NULL: of every pending finish). */
static int
plan_finishes(struct daemon *d, const char *only, size_t *count, struct rk_error *err)
{
    struct finish_plan fp = {d, only, 0, 0, 0};
    int r;

    r = engine_pending_finishes(d->eng, finish_plan_cb, &fp, err);
    if (r == 0 && fp.r != 0)
        r = rk_error_set(err, -fp.r, "out of memory");
    if (count != NULL)
        *count = fp.count;
    return r;
}

/* Clears the heap and plans every timer from the store. */
static int
build_heap(struct daemon *d, struct rk_error *err)
{
    const struct inventory *inv = inv_of(d);
    struct plan_counts pc = {0};
    int64_t now_s = time_now();
    struct timer first;
    size_t nfin = 0;
    int r;

    timerheap_clear(d->heap);
    for (size_t i = 0; i < inv->nsecrets; i++) {
        d->ent[i].timer = TIMER_ID_NONE;
        d->ent[i].finish = TIMER_ID_NONE;
    }
    for (size_t i = 0; i < inv->nsecrets; i++)
        if ((r = plan_secret(d, i, now_s, &pc, err)) != 0)
            return r;
    if ((r = plan_finishes(d, NULL, &nfin, err)) != 0)
        return r;
    log_info("scheduled %zu secret%s: %zu automatic, %zu manual (reminders), %zu retr%s, "
             "%zu finish%s; %zu not scheduled (no rotator or no period)",
             inv->nsecrets, inv->nsecrets == 1 ? "" : "s", pc.automatic, pc.manual, pc.retries,
             pc.retries == 1 ? "y" : "ies", nfin, nfin == 1 ? "" : "es", pc.skipped);
    if (timerheap_peek(d->heap, &first, NULL) == 0) {
        char when[40];
        fmt_when(first.due_ms, when, sizeof(when));
        log_info("next: %s %s at %s", timer_kind_name(first.kind), first.path, when);
    }
    return 0;
}

/* ---- running timers ---- */

static void
progress_cb(void *arg, const char *path, const char *step, const char *msg)
{
    (void)arg;
    log_debug("%s: %s: %s", path, step, msg);
}

static void
run_rotate(struct daemon *d, size_t i, enum timer_kind kind)
{
    const struct inv_secret *s = &inv_of(d)->secrets[i];
    struct entry *en = &d->ent[i];
    struct rotate_opts ro;
    struct rotate_result res;
    struct secret_status st;
    struct rot_state rs;
    struct rk_error err = {0};
    int64_t t0 = now_ms(), delay;
    char dur[32];
    int r;

    /* Re-read the schedule: a person (`rekey rotate`) or another daemon may have rotated it. */
    if (schedule_status_one(d->kv, s, t0 / 1000, &st, &err) == 0) {
        if (st.state == STATE_NOT_IMPLEMENTED)
            return;
        if (st.state != STATE_FAILED && st.last_rotated > 0 && st.next_due * 1000 > t0 + SLACK_MS) {
            daemon_fmt_duration(st.next_due - t0 / 1000, dur, sizeof(dur));
            log_info("%s was rotated meanwhile (v%llu); next due in %s", s->path,
                     (unsigned long long)st.version, dur);
            en->failures = 0;
            (void)set_timer(d, i, TIMER_ROTATE, st.next_due * 1000);
            return;
        }
    }
    rk_error_clear(&err);
    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_ROTATE;
    ro.author = DAEMON_AUTHOR;
    ro.reason = kind == TIMER_RETRY ? DAEMON_REASON " (retry)" : DAEMON_REASON;
    ro.lock_wait_ms = 0;
    ro.progress = progress_cb;
    r = engine_rotate(d->eng, s->path, &ro, &res, &err);
    if (r == 0) {
        d->stats->rotated++;
        en->failures = 0;
        log_info("rotated %s v%llu -> v%llu (%s) in %lld ms", s->path,
                 (unsigned long long)res.old_version, (unsigned long long)res.new_version,
                 res.new_fp, (long long)(now_ms() - t0));
        (void)set_timer(d, i, TIMER_ROTATE, now_ms() + s->every * 1000);
        if (s->grace > 0) {
            rk_error_clear(&err);
            if (plan_finishes(d, s->path, NULL, &err) != 0)
                log_error("%s: reading its finish record: %s", s->path, err.msg);
        }
        return;
    }
    if (r == -RK_ENOTIMPL || r == -RK_ENOTFOUND) {
        log_error("%s: %s; not scheduled any more (fix the configuration and send SIGHUP)", s->path,
                  err.msg);
        return;
    }
    if (r == -RK_EBUSY) {
        /* Another process holds the rotation lock: not a failure of the secret. */
        delay = backoff_retry_delay(s->every, 1);
        daemon_fmt_duration(delay, dur, sizeof(dur));
        log_info("%s is being rotated by another process; checking again in %s", s->path, dur);
        (void)set_timer(d, i, kind, now_ms() + delay * 1000);
        return;
    }
    d->stats->failed++;
    en->failures++;
    {
        /* The engine's count survives a restart; ours covers a record that lost it. */
        struct rk_error e2 = {0};
        if (rotstate_get(kv_barrier(d->kv), s->path, &rs, &e2) == 0 && rs.state == ROT_FAILED &&
            rs.failures > en->failures)
            en->failures = rs.failures;
    }
    delay = backoff_retry_delay(s->every, en->failures);
    daemon_fmt_duration(delay, dur, sizeof(dur));
    log_warn("rotation of %s failed: %s, retry in %s (failure %d in a row)", s->path,
             err.msg[0] ? err.msg : rk_strerror(r), dur, en->failures);
    (void)set_timer(d, i, TIMER_RETRY, now_ms() + delay * 1000);
}

static void
run_finish(struct daemon *d, size_t i)
{
    const struct inv_secret *s = &inv_of(d)->secrets[i];
    struct entry *en = &d->ent[i];
    struct rk_error err = {0};
    struct rot_state rs;
    int64_t delay;
    char dur[32];
    int r;

    r = engine_finish(d->eng, s->path, time_now(), 0, &err);
    if (r == 0) {
        /* The engine logs "finished PATH: retired vN". */
        d->stats->finished++;
        en->finish_failures = 0;
        if (rotstate_get(kv_barrier(d->kv), s->path, &rs, &err) == 0 &&
            rs.state == ROT_ACTION_REQUIRED)
            log_warn("%s: action required: %s", s->path, rs.message);
        return;
    }
    if (r == -RK_ENOTFOUND) {
        log_debug("%s: no finish waits any more", s->path);
        return;
    }
    if (r == -RK_EBUSY) {
        /* The grace has not passed (clock moved back) or the lock is held: plan again. */
        rk_error_clear(&err);
        if (plan_finishes(d, s->path, NULL, &err) == 0 && en->finish != TIMER_ID_NONE) {
            struct timer t;
            if (timerheap_get(d->heap, en->finish, &t) == 0 && t.due_ms > now_ms())
                return;
        }
    }
    en->finish_failures++;
    delay = backoff_retry_delay(s->every, en->finish_failures);
    daemon_fmt_duration(delay, dur, sizeof(dur));
    log_warn("finishing %s failed: %s, retry in %s", s->path, err.msg[0] ? err.msg : rk_strerror(r),
             dur);
    (void)set_finish(d, i, now_ms() + delay * 1000);
}

static void
run_remind(struct daemon *d, size_t i)
{
    const struct inv_secret *s = &inv_of(d)->secrets[i];
    struct entry *en = &d->ent[i];
    struct rk_error err = {0};
    struct secret_status st;
    int64_t now_s = time_now();

    if (schedule_status_one(d->kv, s, now_s, &st, &err) != 0) {
        log_error("%s: reading its status: %s; reminder in 1h", s->path, err.msg);
        (void)set_timer(d, i, TIMER_REMIND, (now_s + 3600) * 1000);
        return;
    }
    if (st.next_due <= 0 || st.state == STATE_NOT_IMPLEMENTED)
        return;
    if (st.next_due > now_s) {
        /* Someone rotated it: remind at the new due time. */
        (void)set_timer(d, i, TIMER_REMIND, st.next_due * 1000);
        return;
    }
    if (en->reminded_due != st.next_due || st.last_rotated == 0) {
        d->stats->reminded++;
        en->reminded_due = st.next_due;
        if (st.last_rotated == 0)
            log_warn("secret %s is due: it has no value yet: a person must set it: "
                     "rekey rotate %s",
                     s->path, s->path);
        else
            log_warn("secret %s is due: a person must rotate it: rekey rotate %s", s->path,
                     s->path);
    }
    (void)set_timer(d, i, TIMER_REMIND, next_period(st.next_due, s->every, now_s) * 1000);
}

/* ---- signals, reload ---- */

/* Embedded: reads every pending control message (non-blocking). The end of the pipe (the host
 * closed its end) means stop too. */
static void
drain_control(struct daemon *d)
{
    char buf[64];
    ssize_t n;

    for (;;) {
        n = read(d->emb->control_fd, buf, sizeof(buf));
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == DAEMON_MSG_STOP)
                    d->stop = 1;
                else if (buf[i] == DAEMON_MSG_REPLAN)
                    d->reload = 1;
            }
            continue;
        }
        if (n == 0) {
            d->stop = 1;
            return;
        }
        if (errno != EINTR)
            return; /* EAGAIN: nothing more */
    }
}

/* Reads every pending signal or control message (non-blocking). */
static void
drain_signals(struct daemon *d)
{
    struct signalfd_siginfo si;

    if (d->emb != NULL) {
        drain_control(d);
        return;
    }
    while (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            d->reload = 1;
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            d->stop = 1;
            d->stop_sig = (int)si.ssi_signo;
        }
    }
}

static void
entries_free(struct entry *ent, size_t n)
{
    for (size_t i = 0; ent != NULL && i < n; i++)
        free(ent[i].path);
    free(ent);
}

static int
cmp_entry_path(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a;
    const struct entry *y = *(const struct entry *const *)b;

    return strcmp(x->path, y->path);
}

/* Remaps the per-secret state (d->ent, planned on d->inv) onto inv by path. `rekey run` finds
 * the old entry through the old inventory, which is still alive; embedded, the old inventory
 * may be gone, so the entries' own path copies are searched (sorted once, O(n log n)). */
static int
remap_entries(const struct daemon *d, const struct inventory *inv, struct entry **out)
{
    struct entry *ent = calloc(inv->nsecrets ? inv->nsecrets : 1, sizeof(*ent));
    const struct entry **sorted = NULL;
    size_t nold = d->ent != NULL ? d->nent : 0;

    if (ent == NULL)
        return -RK_ENOMEM;
    if (d->emb != NULL && nold > 0) {
        if ((sorted = malloc(nold * sizeof(*sorted))) == NULL)
            goto nomem;
        for (size_t i = 0; i < nold; i++)
            sorted[i] = &d->ent[i];
        qsort(sorted, nold, sizeof(*sorted), cmp_entry_path);
    }
    for (size_t i = 0; i < inv->nsecrets; i++) {
        const struct entry *oe = NULL;
        ent[i].timer = ent[i].finish = TIMER_ID_NONE;
        if (d->emb != NULL) {
            if ((ent[i].path = strdup(inv->secrets[i].path)) == NULL)
                goto nomem;
            if (sorted != NULL) {
                const struct entry key = {.path = ent[i].path}, *kp = &key, **hit;
                hit = bsearch(&kp, sorted, nold, sizeof(*sorted), cmp_entry_path);
                oe = hit != NULL ? *hit : NULL;
            }
        } else if (nold > 0) {
            const struct inv_secret *o = inventory_find(d->inv, inv->secrets[i].path);
            oe = o != NULL ? &d->ent[o - d->inv->secrets] : NULL;
        }
        if (oe != NULL) {
            ent[i].failures = oe->failures;
            ent[i].reminded_due = oe->reminded_due;
        }
    }
    free(sorted);
    *out = ent;
    return 0;
nomem:
    free(sorted);
    entries_free(ent, inv->nsecrets);
    return -RK_ENOMEM;
}

static void
do_reload(struct daemon *d)
{
    const char *file = d->opts->config_file ? d->opts->config_file : inv_of(d)->file;
    struct inventory *ninv = NULL, *old = *d->invp;
    struct entry *nent = NULL;
    struct rk_error err = {0};
    int r;

    d->reload = 0;
    d->stats->reloads++;
    log_info("SIGHUP: reloading %s", file);
    if ((r = inventory_load_file(file, &ninv, &err)) != 0) {
        log_error("reload failed, keeping the previous configuration: %s", err.msg);
        return;
    }
    if (strcmp(inventory_store_location(ninv), inventory_store_location(old)) != 0)
        log_warn("the store location changed (%s); restart rekey run to use it",
                 inventory_store_location(ninv));
    if (remap_entries(d, ninv, &nent) != 0) {
        log_error("reload failed, keeping the previous configuration: out of memory");
        inventory_free(ninv);
        return;
    }
    /* Timers borrow paths from the old inventory: clear them before it goes. */
    timerheap_clear(d->heap);
    engine_set_inventory(d->eng, ninv);
    *d->invp = ninv;
    d->inv = ninv;
    entries_free(d->ent, d->nent);
    d->ent = nent;
    d->nent = ninv->nsecrets;
    inventory_free(old);
    if (build_heap(d, &err) != 0)
        log_error("planning after the reload: %s (some secrets are not scheduled)", err.msg);
    else
        log_info("reloaded %s", file);
    backend_trim(barrier_backend(kv_barrier(d->kv)));
    malloc_trim(0);
}

/* Embedded, under the host's read lock: plans every timer again from the current *invp (the
 * host reloaded its configuration, or asked for a re-plan). Returns 0, or -RK_ENOMEM when the
 * entries cannot be remapped: the old plan cannot be kept then (it may point into a freed
 * inventory), so the daemon stops. */
static int
replan(struct daemon *d, struct rk_error *err)
{
    const struct inventory *ninv = *d->invp;
    struct entry *nent = NULL;
    struct rk_error e2 = {0};

    d->reload = 0;
    d->stats->reloads++;
    timerheap_clear(d->heap); /* the timers may borrow paths from a freed inventory */
    if (remap_entries(d, ninv, &nent) != 0) {
        entries_free(d->ent, d->nent);
        d->ent = NULL;
        d->nent = 0;
        return rk_error_set(err, RK_ENOMEM, "scheduler: out of memory while re-planning");
    }
    entries_free(d->ent, d->nent);
    d->ent = nent;
    d->nent = ninv->nsecrets;
    d->inv = ninv;
    d->gen = d->emb->generation != NULL ? *d->emb->generation : 0;
    engine_set_inventory(d->eng, ninv);
    log_info("scheduler: re-planning from %s", ninv->file ? ninv->file : "the configuration");
    if (build_heap(d, &e2) != 0)
        log_error("scheduler: planning: %s (some secrets are not scheduled)", e2.msg);
    backend_trim(barrier_backend(kv_barrier(d->kv)));
    malloc_trim(0);
    return 0;
}

/* Arms the timerfd at the earliest timer. The schedule is in time_now() terms, which tests may
 * pin with REKEY_NOW: the offset to the real clock keeps the sleep right in both cases. */
static int
arm_timer(struct daemon *d, struct rk_error *err)
{
    struct itimerspec its;
    struct timespec real;
    struct timer t;
    int64_t at_ms, now = now_ms(), real_ms;

    memset(&its, 0, sizeof(its));
    if (timerheap_peek(d->heap, &t, NULL) == 0) {
        clock_gettime(CLOCK_REALTIME, &real);
        real_ms = (int64_t)real.tv_sec * 1000 + real.tv_nsec / 1000000;
        at_ms = real_ms + (t.due_ms > now ? t.due_ms - now : 1);
        its.it_value.tv_sec = at_ms / 1000;
        its.it_value.tv_nsec = (long)(at_ms % 1000) * 1000000;
    } /* else: disarmed; only a signal wakes us */
    if (timerfd_settime(d->tfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) != 0)
        return rk_error_set(err, RK_EINTERNAL, "timerfd_settime: %s", strerror(errno));
    return 0;
}

/* Runs every timer due at now; stops early on a signal or a control message. Embedded, each
 * timer runs under the host's read lock, released between timers so a reload or a seal does
 * not wait for a long batch; a replaced inventory ends the batch (the loop re-plans). */
static void
run_due(struct daemon *d)
{
    struct timer t;
    int64_t now = now_ms();

    while (!d->stop && !d->reload && timerheap_peek(d->heap, &t, NULL) == 0 && t.due_ms <= now) {
        if (d->emb != NULL) {
            host_lock(d);
            drain_signals(d);
            if (!d->stop && inventory_changed(d))
                d->reload = 1;
            if (d->stop || d->reload) {
                host_unlock(d);
                break;
            }
        }
        (void)timerheap_pop(d->heap, &t, NULL);
        if (t.kind == TIMER_FINISH)
            d->ent[t.index].finish = TIMER_ID_NONE;
        else
            d->ent[t.index].timer = TIMER_ID_NONE;
        switch (t.kind) {
        case TIMER_ROTATE:
        case TIMER_RETRY: run_rotate(d, t.index, t.kind); break;
        case TIMER_FINISH: run_finish(d, t.index); break;
        case TIMER_REMIND: run_remind(d, t.index); break;
        }
        if (d->emb != NULL)
            host_unlock(d);
        drain_signals(d);
        if (d->once)
            continue; /* only what was due at the start: `now` is not advanced */
        now = now_ms();
    }
}

static void
on_recover(void *arg, const char *path, const char *what, const char *msg)
{
    (void)arg;
    /* The engine logs resumed / rolled back / failed / finished itself. */
    if (strcmp(what, "busy") == 0)
        log_info("recovery: %s: %s", path, msg);
}

static int
write_pid_file(const char *file, struct rk_error *err)
{
    char buf[32], *old = NULL;
    size_t n;
    int64_t pid;
    int r;

    r = fs_read_all(file, 64, &old, &n, NULL);
    if (r == 0) {
        old[strcspn(old, "\n")] = '\0';
        if (parse_int64(old, 1, INT32_MAX, &pid) == 0 && pid != getpid() &&
            (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
            free(old);
            return rk_error_set(err, RK_EBUSY,
                                "%s: another rekey run (pid %lld) is running; stop it first, or "
                                "remove the file if that process is not rekey",
                                file, (long long)pid);
        }
        free(old);
    }
    n = (size_t)snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if ((r = fs_write_atomic(file, buf, n, 0644, err)) != 0)
        return rk_error_prefix(err, "writing the pid file");
    return 0;
}

int
daemon_run(struct kv *kv, struct inventory **inv, const struct daemon_opts *opts,
           struct daemon_stats *stats, struct rk_error *err)
{
    struct daemon d;
    struct daemon_stats dummy;
    sigset_t mask, oldmask;
    int masked = 0, pid_written = 0, locked = 0, r;
    size_t nrec = 0;

    memset(&d, 0, sizeof(d));
    memset(&dummy, 0, sizeof(dummy));
    d.kv = kv;
    d.invp = inv;
    d.opts = opts;
    d.emb = opts->embed;
    d.once = opts->once && d.emb == NULL;
    d.stats = stats ? stats : &dummy;
    d.sfd = d.tfd = -1;
    memset(d.stats, 0, sizeof(*d.stats));

    if (d.emb == NULL) {
        /* Signals first, so a SIGTERM during recovery waits for it to end instead of killing
         * us half-way (the journal would still save us, but a clean stop is better). */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, &oldmask) != 0) {
            r = rk_error_set(err, RK_EINTERNAL, "sigprocmask: %s", strerror(errno));
            goto out;
        }
        masked = 1;
        d.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (d.sfd < 0) {
            r = rk_error_set(err, RK_EINTERNAL, "signalfd: %s", strerror(errno));
            goto out;
        }
    } else if (d.emb->control_fd < 0) {
        r = rk_error_set(err, RK_EINVAL, "scheduler: no control descriptor");
        goto out;
    }
    d.tfd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d.tfd < 0) {
        r = rk_error_set(err, RK_EINTERNAL, "timerfd: %s", strerror(errno));
        goto out;
    }
    if (opts->pid_file != NULL && d.emb == NULL) {
        if ((r = write_pid_file(opts->pid_file, err)) != 0)
            goto out;
        pid_written = 1;
    }
    if ((r = timerheap_new(&d.heap, err)) != 0)
        goto out;
    /* Embedded: *inv is the host's, read only under its read lock. */
    host_lock(&d);
    locked = d.emb != NULL;
    d.inv = *inv;
    d.gen = d.emb != NULL && d.emb->generation != NULL ? *d.emb->generation : 0;
    if ((r = remap_entries(&d, d.inv, &d.ent)) != 0) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    d.nent = d.inv->nsecrets;
    if ((r = engine_open(kv, d.inv, &d.eng, err)) != 0)
        goto out;
    if (d.emb == NULL)
        log_info("rekey run %s: pid %ld, %s, store %s%s", REKEY_VERSION, (long)getpid(),
                 d.inv->file ? d.inv->file : "(config)", inventory_store_location(d.inv),
                 d.once ? ", once" : "");
    else
        log_info("scheduler started: %s", d.inv->file ? d.inv->file : "(config)");
    {
        struct rk_error e2 = {0};
        if (engine_recover(d.eng, time_now(), on_recover, &d, &nrec, &e2) != 0)
            log_error("recovery: %s (the other paths were recovered)", e2.msg);
        log_info("recovery: %zu interrupted rotation%s or due finish%s handled", nrec,
                 nrec == 1 ? "" : "s", nrec == 1 ? "" : "es");
    }
    if ((r = build_heap(&d, err)) != 0)
        goto out;
    if (locked) {
        host_unlock(&d);
        locked = 0;
    }
    /* Loading a large configuration and reading every secret's metadata leaves freed memory
     * in malloc's arenas; an idle daemon should not keep it. */
    backend_trim(barrier_backend(kv_barrier(d.kv)));
    malloc_trim(0);

    for (;;) {
        struct pollfd pfd[2];
        uint64_t exp;

        drain_signals(&d);
        if (d.stop)
            break;
        if (d.emb != NULL) {
            host_lock(&d);
            locked = 1;
            drain_signals(&d); /* a re-plan asked for before we held the lock */
            if (!d.stop && (d.reload || inventory_changed(&d)) && (r = replan(&d, err)) != 0)
                goto out;
            host_unlock(&d);
            locked = 0;
            if (d.stop)
                break;
        } else if (d.reload) {
            do_reload(&d);
            continue;
        }
        run_due(&d);
        if (d.stop || d.once)
            break;
        if (d.reload)
            continue;
        if ((r = arm_timer(&d, err)) != 0)
            goto out;
        pfd[0].fd = d.emb != NULL ? d.emb->control_fd : d.sfd;
        pfd[0].events = POLLIN;
        pfd[1].fd = d.tfd;
        pfd[1].events = POLLIN;
        if (ppoll(pfd, 2, NULL, NULL) < 0 && errno != EINTR) {
            r = rk_error_set(err, RK_EINTERNAL, "ppoll: %s", strerror(errno));
            goto out;
        }
        /* Expired, or ECANCELED after a clock step: either way, look at the heap again. */
        if (pfd[1].revents & POLLIN)
            (void)!read(d.tfd, &exp, sizeof(exp));
    }
    if (d.emb != NULL)
        log_info("scheduler stopped: %lu rotated, %lu failed, %lu finished, %lu reminders",
                 d.stats->rotated, d.stats->failed, d.stats->finished, d.stats->reminded);
    else if (d.stop)
        log_info("stopped (%s): %lu rotated, %lu failed, %lu finished, %lu reminders",
                 d.stop_sig == SIGINT ? "SIGINT" : "SIGTERM", d.stats->rotated, d.stats->failed,
                 d.stats->finished, d.stats->reminded);
    else
        log_info("stopped (once): %lu rotated, %lu failed, %lu finished, %lu reminders",
                 d.stats->rotated, d.stats->failed, d.stats->finished, d.stats->reminded);
    r = 0;
out:
    if (locked)
        host_unlock(&d);
    engine_free(d.eng);
    timerheap_free(d.heap);
    entries_free(d.ent, d.nent);
    if (d.sfd >= 0)
        close(d.sfd);
    if (d.tfd >= 0)
        close(d.tfd);
    if (pid_written)
        (void)unlink(opts->pid_file);
    /* After a stop signal the process is about to exit: a second SIGTERM must not kill it
     * with the default action (exit status 143) on the way out, so the mask stays. */
    if (masked && !d.stop)
        sigprocmask(SIG_SETMASK, &oldmask, NULL);
    return r;
}

/* ---- the daemon as a thread of a host process ---- */

struct daemon_thread {
    pthread_t tid;
    int rfd, wfd; /* the control pipe */
    struct kv *kv;
    struct inventory **inv;
    struct daemon_embed emb;
    struct daemon_opts opts;
    struct daemon_stats stats;
    struct rk_error err;
    int result;
};

static void *
thread_main(void *arg)
{
    struct daemon_thread *t = arg;

    t->result = daemon_run(t->kv, t->inv, &t->opts, &t->stats, &t->err);
    if (t->result != 0)
        log_error("scheduler stopped: %s", t->err.msg);
    return NULL;
}

static void
thread_send(struct daemon_thread *t, char msg)
{
    ssize_t n;

    if (t == NULL || t->wfd < 0)
        return;
    /* EAGAIN: the pipe is full of unread messages, which wake the thread anyway. */
    do
        n = write(t->wfd, &msg, 1);
    while (n < 0 && errno == EINTR);
}

int
daemon_thread_start(struct kv *kv, struct inventory **inv, void (*rdlock)(void *),
                    void (*unlock)(void *), void *lock_arg, const uint64_t *generation,
                    struct daemon_thread **out, struct rk_error *err)
{
    struct daemon_thread *t;
    sigset_t all, old;
    int fds[2], e;

    *out = NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        e = errno;
        free(t);
        return rk_error_set(err, RK_EINTERNAL, "scheduler: pipe: %s", strerror(e));
    }
    t->rfd = fds[0];
    t->wfd = fds[1];
    t->kv = kv;
    t->inv = inv;
    t->emb.control_fd = t->rfd;
    t->emb.rdlock = rdlock;
    t->emb.unlock = unlock;
    t->emb.lock_arg = lock_arg;
    t->emb.generation = generation;
    t->opts.embed = &t->emb;
    /* The thread never takes a signal: the host's main thread handles them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    e = pthread_create(&t->tid, NULL, thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        close(t->rfd);
        close(t->wfd);
        free(t);
        return rk_error_set(err, RK_EINTERNAL, "scheduler: starting its thread: %s", strerror(e));
    }
    *out = t;
    return 0;
}

void
daemon_thread_replan(struct daemon_thread *t)
{
    thread_send(t, DAEMON_MSG_REPLAN);
}

void
daemon_thread_request_stop(struct daemon_thread *t)
{
    thread_send(t, DAEMON_MSG_STOP);
}

int
daemon_thread_stop(struct daemon_thread *t, struct daemon_stats *stats)
{
    int r;

    if (t == NULL)
        return 0;
    thread_send(t, DAEMON_MSG_STOP);
    /* The end of the pipe also means stop, should the message not fit. */
    close(t->wfd);
    t->wfd = -1;
    pthread_join(t->tid, NULL);
    close(t->rfd);
    r = t->result;
    if (stats != NULL)
        *stats = t->stats;
    free(t);
    return r;
}
