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
 * old inventory.
 *
 * Entries defined in the store through the API (engine/entries.h) have slots of their own
 * (d->sent, found by path through d->smap; a timer's index has STORE_BIT set for them). They
 * are planned with the inventory's at start and at each re-plan (one listing of the store), and
 * one at a time when engine_entry_put/delete in this process says a path changed: the notice
 * goes through a pipe the loop polls, so a change costs O(1) here, never a re-plan of all. A
 * store slot keeps only its path and timers: each timer reads its entry's definition again
 * (O(log n)), so a definition changed by another process is used at its next timer.
 *
 * When an entry is due comes from schedule.c (the kind's status op, or last rotation + every).
 * A rotation whose target is unavailable leaves its candidate pending: it is retried, like a
 * failure, after the backoff of util/backoff.h (the engine records the same policy's
 * next_retry, which a restart uses). */
#include "engine/daemon.h"

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

#include "engine/daemon-int.h"
#include "engine/entries.h"
#include "engine/rotation.h"
#include "engine/rotstate.h"
#include "engine/schedule.h"
#include "engine/timerheap.h"
#include "rotators/rotator.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/backoff.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/strmap.h"
#include "util/timeutil.h"

/* The longest wait a Retry-After may ask for before the next attempt (seconds). */
#define RETRY_AFTER_MAX 86400

#define DAEMON_AUTHOR "rekey-daemon"
#define DAEMON_REASON "scheduled"
/* A schedule timer is skipped (re-planned) when the secret's next due time, re-read just before
 * acting, lies this far ahead: someone rotated it meanwhile (`rekey rotate`, another daemon). */
#define SLACK_MS 1000

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

/* ---- the host's lock ---- */

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

/* ---- running timers ---- */

static void
progress_cb(void *arg, const char *path, const char *step, const char *msg)
{
    (void)arg;
    log_debug("%s: %s: %s", path, step, msg);
}

/* When entry s is due after a successful rotation now: last rotation + every, or, for a kind
 * with a status op, what the op says (never sooner than a retry's delay: a kind that calls
 * its fresh value due at once must not make the daemon spin). */
static int64_t
next_after_rotation(struct daemon *d, const struct inv_secret *s)
{
    const struct rotator_ops *ops = rotator_find(s->kind);
    int64_t now = now_ms(), floor_ms = now + backoff_retry_delay(s->every, 1) * 1000;
    struct secret_status st;
    struct rk_error err = {0};

    if (ops == NULL || ops->status == NULL)
        return s->every > 0 ? now + s->every * 1000 : 0;
    if (schedule_status_one(d->kv, s, now / 1000, &st, &err) != 0 || st.next_due <= 0)
        return s->every > 0 ? now + s->every * 1000 : 0;
    return st.next_due * 1000 > floor_ms ? st.next_due * 1000 : floor_ms;
}

/* After a rotation that did not complete: when the target was unavailable (the candidate is
 * pending) or the rotation failed, the RETRY timer after the backoff. */
static void
plan_retry(struct daemon *d, size_t i, const struct inv_secret *s, int r,
           const struct rk_error *err)
{
    struct entry *en = daemon_entry(d, i);
    struct rot_state rs;
    struct rk_error e2 = {0};
    int pending = r == -RK_EUNAVAILABLE, have;
    int64_t delay;
    char dur[32];

    /* The engine's record says what became of the candidate, and its count survives a
     * restart; ours covers a record that lost it. */
    have = rotstate_get(kv_barrier(d->kv), s->path, &rs, &e2) == 0;
    if (have && rs.state == ROT_PENDING)
        pending = 1;
    en->failures++;
    if (have && (rs.state == ROT_FAILED || rs.state == ROT_PENDING) && rs.failures > en->failures)
        en->failures = rs.failures;
    delay = backoff_retry_delay(s->every, en->failures);
    /* A target that said when to come back (Retry-After) is not asked sooner; a day at most,
     * so a wrong answer cannot park the secret past its expiry. */
    if (pending && err->retry_after_s > delay)
        delay = err->retry_after_s < RETRY_AFTER_MAX ? err->retry_after_s : RETRY_AFTER_MAX;
    daemon_fmt_duration(delay, dur, sizeof(dur));
    if (pending) {
        d->stats->unavailable++;
        log_warn("%s: the candidate stays pending, retry in %s (attempt %d): %s", s->path, dur,
                 en->failures, err->msg[0] ? err->msg : "the target is unavailable");
    } else {
        d->stats->failed++;
        log_warn("rotation of %s failed: %s, retry in %s (failure %d in a row)", s->path,
                 err->msg[0] ? err->msg : rk_strerror(r), dur, en->failures);
    }
    (void)daemon_set_timer(d, i, TIMER_RETRY, now_ms() + delay * 1000);
}

static void
run_rotate(struct daemon *d, size_t i, enum timer_kind kind)
{
    struct entry *en = daemon_entry(d, i);
    const struct inv_secret *s;
    struct entry_ref ref;
    struct rotate_opts ro;
    struct rotate_result res;
    struct secret_status st;
    struct rk_error err = {0};
    int64_t t0 = now_ms(), delay, next;
    char dur[32];
    int r;

    if ((r = daemon_entry_find(d, i, &ref, &err)) != 0) {
        if (r == -RK_ENOTFOUND && (i & STORE_BIT)) {
            log_info("%s: no longer defined in the store; not scheduled any more",
                     daemon_entry_path(d, i));
            daemon_slot_drop(d, i);
            return;
        }
        delay = backoff_retry_delay(0, ++en->failures);
        daemon_fmt_duration(delay, dur, sizeof(dur));
        log_error("%s: %s; checking again in %s", daemon_entry_path(d, i), err.msg, dur);
        (void)daemon_set_timer(d, i, kind, now_ms() + delay * 1000);
        return;
    }
    s = ref.s;
    /* Re-read the schedule: a person (`rekey rotate`) or another daemon may have rotated it. */
    if (schedule_status_one(d->kv, s, t0 / 1000, &st, &err) == 0) {
        if (st.state == STATE_NOT_IMPLEMENTED)
            goto out;
        if (st.state != STATE_FAILED && st.state != STATE_PENDING && st.last_rotated > 0 &&
            st.next_due * 1000 > t0 + SLACK_MS) {
            daemon_fmt_duration(st.next_due - t0 / 1000, dur, sizeof(dur));
            log_info("%s was rotated meanwhile (v%llu); next due in %s", s->path,
                     (unsigned long long)st.version, dur);
            en->failures = 0;
            (void)daemon_set_timer(d, i, TIMER_ROTATE, st.next_due * 1000);
            goto out;
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
        if ((next = next_after_rotation(d, s)) > 0)
            (void)daemon_set_timer(d, i, TIMER_ROTATE, next);
        if (s->grace > 0) {
            rk_error_clear(&err);
            if (daemon_plan_finish(d, i, &err) != 0)
                log_error("%s: reading its finish record: %s", s->path, err.msg);
        }
        goto out;
    }
    if (r == -RK_ENOTIMPL || r == -RK_ENOTFOUND) {
        log_error("%s: %s; not scheduled any more (fix the %s)", s->path, err.msg,
                  ref.in_store ? "entry through the API" : "configuration and send SIGHUP");
        goto out;
    }
    if (r == -RK_EBUSY) {
        /* Another process holds the rotation lock: not a failure of the secret. */
        delay = backoff_retry_delay(s->every, 1);
        daemon_fmt_duration(delay, dur, sizeof(dur));
        log_info("%s is being rotated by another process; checking again in %s", s->path, dur);
        (void)daemon_set_timer(d, i, kind, now_ms() + delay * 1000);
        goto out;
    }
    plan_retry(d, i, s, r, &err);
out:
    entry_ref_release(&ref);
}

static void
run_finish(struct daemon *d, size_t i)
{
    struct entry *en = daemon_entry(d, i);
    const char *path = daemon_entry_path(d, i);
    struct entry_ref ref;
    struct rk_error err = {0};
    struct rot_state rs;
    int64_t delay, every = 0;
    char dur[32];
    int r;

    /* The engine finds the entry itself; its period only sizes the retry's backoff. */
    if (daemon_entry_find(d, i, &ref, &err) == 0)
        every = ref.s->every;
    entry_ref_release(&ref);
    rk_error_clear(&err);
    r = engine_finish(d->eng, path, time_now(), 0, &err);
    if (r == 0) {
        /* The engine logs "finished PATH: retired vN". */
        d->stats->finished++;
        en->finish_failures = 0;
        if (rotstate_get(kv_barrier(d->kv), path, &rs, &err) == 0 &&
            rs.state == ROT_ACTION_REQUIRED)
            log_warn("%s: action required: %s", path, rs.message);
        return;
    }
    if (r == -RK_ENOTFOUND) {
        log_debug("%s: no finish waits any more", path);
        return;
    }
    if (r == -RK_EBUSY) {
        /* The grace has not passed (clock moved back) or the lock is held: plan again. */
        rk_error_clear(&err);
        if (daemon_plan_finish(d, i, &err) == 0 && en->finish != TIMER_ID_NONE) {
            struct timer t;
            if (timerheap_get(d->heap, en->finish, &t) == 0 && t.due_ms > now_ms())
                return;
        }
    }
    en->finish_failures++;
    delay = backoff_retry_delay(every, en->finish_failures);
    daemon_fmt_duration(delay, dur, sizeof(dur));
    log_warn("finishing %s failed: %s, retry in %s", path, err.msg[0] ? err.msg : rk_strerror(r),
             dur);
    (void)daemon_set_finish(d, i, now_ms() + delay * 1000);
}

static void
run_remind(struct daemon *d, size_t i)
{
    struct entry *en = daemon_entry(d, i);
    const struct inv_secret *s;
    struct entry_ref ref;
    struct rk_error err = {0};
    struct secret_status st;
    int64_t now_s = time_now();
    int r;

    if ((r = daemon_entry_find(d, i, &ref, &err)) != 0) {
        if (r == -RK_ENOTFOUND && (i & STORE_BIT)) {
            daemon_slot_drop(d, i);
            return;
        }
        log_error("%s: %s; reminder in 1h", daemon_entry_path(d, i), err.msg);
        (void)daemon_set_timer(d, i, TIMER_REMIND, (now_s + 3600) * 1000);
        return;
    }
    s = ref.s;
    if (schedule_status_one(d->kv, s, now_s, &st, &err) != 0) {
        log_error("%s: reading its status: %s; reminder in 1h", s->path, err.msg);
        (void)daemon_set_timer(d, i, TIMER_REMIND, (now_s + 3600) * 1000);
        goto out;
    }
    if (st.next_due <= 0 || st.state == STATE_NOT_IMPLEMENTED)
        goto out;
    if (st.next_due > now_s) {
        /* Someone rotated it: remind at the new due time. */
        (void)daemon_set_timer(d, i, TIMER_REMIND, st.next_due * 1000);
        goto out;
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
    (void)daemon_set_timer(d, i, TIMER_REMIND,
                           daemon_next_reminder(st.next_due, st.period, now_s) * 1000);
out:
    entry_ref_release(&ref);
}

/* ---- change notices (engine_entries_subscribe) ---- */

/* In the writer's thread: queue path and wake the loop. Never blocks on the loop. */
static void
on_entry_change(void *arg, const char *path)
{
    struct notices *nq = arg;
    char *p = strdup(path);
    ssize_t n;

    pthread_mutex_lock(&nq->mu);
    if (p != NULL && nq->n == nq->cap) {
        size_t ncap = nq->cap ? nq->cap * 2 : 16;
        char **np = realloc(nq->paths, ncap * sizeof(*np));
        if (np != NULL) {
            nq->paths = np;
            nq->cap = ncap;
        }
    }
    if (p != NULL && nq->n < nq->cap) {
        nq->paths[nq->n++] = p;
    } else {
        free(p);
        nq->lost = 1;
    }
    pthread_mutex_unlock(&nq->mu);
    /* EAGAIN: the pipe is full of unread bytes, which wake the loop anyway. */
    do
        n = write(nq->fd[1], "E", 1);
    while (n < 0 && errno == EINTR);
}

static void
drain_notices(struct daemon *d)
{
    char buf[256];

    while (read(d->nq.fd[0], buf, sizeof(buf)) > 0)
        d->changes = 1;
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

    drain_notices(d);
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
    if (daemon_plan_all(d, &err) != 0)
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
    if (daemon_plan_all(d, &e2) != 0)
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
            daemon_entry(d, t.index)->finish = TIMER_ID_NONE;
        else
            daemon_entry(d, t.index)->timer = TIMER_ID_NONE;
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
    d.nq.fd[0] = d.nq.fd[1] = -1;
    pthread_mutex_init(&d.nq.mu, NULL);
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
    if (strmap_new(&d.smap) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (pipe2(d.nq.fd, O_CLOEXEC | O_NONBLOCK) != 0) {
        d.nq.fd[0] = d.nq.fd[1] = -1;
        r = rk_error_set(err, RK_EINTERNAL, "scheduler: pipe: %s", strerror(errno));
        goto out;
    }
    /* From here on, a store entry written in this process (the API) is noticed. */
    if (engine_entries_subscribe(kv, on_entry_change, &d.nq) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    d.subscribed = 1;
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
    if ((r = daemon_plan_all(&d, err)) != 0)
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
        struct pollfd pfd[3];
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
            if (!d.stop && d.changes)
                daemon_plan_notices(&d);
            host_unlock(&d);
            locked = 0;
            if (d.stop)
                break;
        } else if (d.reload) {
            do_reload(&d);
            continue;
        } else if (d.changes) {
            daemon_plan_notices(&d);
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
        pfd[2].fd = d.nq.fd[0];
        pfd[2].events = POLLIN;
        if (ppoll(pfd, 3, NULL, NULL) < 0 && errno != EINTR) {
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
    /* No notice runs once this returns: the queue and the pipe may go. */
    if (d.subscribed)
        engine_entries_unsubscribe(kv, on_entry_change, &d.nq);
    engine_free(d.eng);
    timerheap_free(d.heap);
    entries_free(d.ent, d.nent);
    entries_free(d.sent, d.nsent);
    free(d.sfree);
    strmap_free(d.smap);
    for (size_t j = 0; j < d.nq.n; j++)
        free(d.nq.paths[j]);
    free(d.nq.paths);
    for (int j = 0; j < 2; j++)
        if (d.nq.fd[j] >= 0)
            close(d.nq.fd[j]);
    pthread_mutex_destroy(&d.nq.mu);
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
