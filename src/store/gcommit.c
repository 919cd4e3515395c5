/* gcommit.c: group commit (gcommit.h), moved out of the SQLite backend so that every durable
 * backend batches its writers the same way. */
#include "store/gcommit.h"

#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define GC_GATHER_MIN_NS 20000L /* bounds of a leader's wait for more transactions */
#define GC_GATHER_MAX_NS 1000000L

int64_t
gcommit_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
gcommit_key_ok(const char *key, struct rk_error *err)
{
    size_t n;

    if (key == NULL || key[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "store key is empty");
    n = strnlen(key, STORE_KEY_MAX + 1);
    if (n > STORE_KEY_MAX)
        return rk_error_set(err, RK_EINVAL, "store key longer than %d bytes", STORE_KEY_MAX);
    return 0;
}

void
gcommit_init(struct gcommit *gc, gc_run_fn run, void *arg)
{
    pthread_condattr_t ca;

    memset(gc, 0, sizeof(*gc));
    gc->run = run;
    gc->arg = arg;
    gc->expect = 1;
    pthread_mutex_init(&gc->qlock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&gc->lcond, &ca);
    pthread_condattr_destroy(&ca);
}

void
gcommit_destroy(struct gcommit *gc)
{
    pthread_mutex_destroy(&gc->qlock);
    pthread_cond_destroy(&gc->lcond);
}

/* The new leader waits (qlock held) until gc->expect transactions are queued or the deadline
 * passes. Returns 1 when the deadline cut the wait short. */
static int
gather(struct gcommit *gc)
{
    int64_t wait_ns = gc->last_commit_ns / 2, deadline;
    struct timespec ts;

    if (gc->qlen >= gc->expect)
        return 0;
    if (wait_ns < GC_GATHER_MIN_NS)
        wait_ns = GC_GATHER_MIN_NS;
    if (wait_ns > GC_GATHER_MAX_NS)
        wait_ns = GC_GATHER_MAX_NS;
    deadline = gcommit_mono_ns() + wait_ns;
    ts.tv_sec = (time_t)(deadline / 1000000000);
    ts.tv_nsec = (long)(deadline % 1000000000);
    gc->leader_gathering = 1;
    while (gc->qlen < gc->expect) {
        if (pthread_cond_timedwait(&gc->lcond, &gc->qlock, &ts) != 0 && gc->qlen < gc->expect) {
            gc->leader_gathering = 0;
            return 1;
        }
    }
    gc->leader_gathering = 0;
    return 0;
}

static void
futex_wait(_Atomic uint32_t *word, uint32_t val)
{
    /* Returns at once when *word != val (EAGAIN), on a wake, or on a signal (EINTR): the caller
     * re-checks its state in every case. */
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void
futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* Wakes to make once qlock is released, so that a woken caller does not block on it. */
struct wakes {
    int batch;   /* seq word of a finished batch whose other callers sleep, or -1 */
    int handoff; /* seq word of the queue when a caller there must lead, or -1 */
};

/* Frees the leader's slot. With callers queued, one of them must lead the next batch: every
 * caller sleeping on seq[qpar] is in the queue (the batch in flight sleeps on the other word),
 * so waking one wakes a caller that can lead. Called with qlock held. */
static void
handoff(struct gcommit *gc, struct wakes *w)
{
    gc->leader_active = 0;
    if (gc->qhead == NULL)
        return;
    atomic_fetch_add_explicit(&gc->seq[gc->qpar], 1, memory_order_release);
    w->handoff = (int)gc->qpar;
}

static void
do_wakes(struct gcommit *gc, const struct wakes *w)
{
    if (w->batch >= 0)
        futex_wake(&gc->seq[w->batch], INT_MAX);
    if (w->handoff >= 0)
        futex_wake(&gc->seq[w->handoff], 1);
}

/* Leads one batch: gathers, runs it, marks its callers done and hands the queue on; *w gets
 * the wakes to make. Called and returns with qlock held; leader_active is set. */
static void
lead(struct gcommit *gc, struct gc_req *self, struct wakes *w)
{
    struct gc_req *batch, *next;
    size_t n;
    int64_t t0;
    uint64_t nok;
    unsigned par;
    int short_cut, others = 0;

    short_cut = gather(gc);
    batch = gc->qhead;
    n = gc->qlen;
    par = gc->qpar;
    gc->qpar ^= 1; /* callers queued from now on are the next batch: they sleep on the other word */
    gc->qhead = gc->qtail = NULL;
    gc->qlen = 0;
    pthread_mutex_unlock(&gc->qlock);
    t0 = gcommit_mono_ns();
    nok = gc->run(gc->arg, batch);
    pthread_mutex_lock(&gc->qlock);
    gc->last_commit_ns = gcommit_mono_ns() - t0;
    /* The batch size is the load estimate: a batch the deadline cut short lowers it. */
    if (short_cut)
        gc->expect = n > 0 ? n : 1;
    else if (n > gc->expect)
        gc->expect = n;
    if (nok > 0) {
        gc->n_commits++;
        gc->n_txns += nok;
    }
    for (; batch != NULL; batch = next) {
        next = batch->next; /* read before done: a woken caller may return at once */
        others |= batch != self;
        atomic_store_explicit(&batch->done, 1, memory_order_release);
    }
    w->batch = -1;
    w->handoff = -1;
    if (others) {
        atomic_fetch_add_explicit(&gc->seq[par], 1, memory_order_release);
        w->batch = (int)par;
    }
    handoff(gc, w);
}

/* Queues q and returns when it has been committed or has failed. A caller that finds no leader
 * leads; the others sleep on their batch's futex word until their batch is done or a leader is
 * wanted. */
static void
submit(struct gcommit *gc, struct gc_req *q)
{
    struct wakes w = {-1, -1};

    pthread_mutex_lock(&gc->qlock);
    q->next = NULL;
    q->par = gc->qpar;
    if (gc->qtail != NULL)
        gc->qtail->next = q;
    else
        gc->qhead = q;
    gc->qtail = q;
    gc->qlen++;
    /* Only the arrival that completes the expected batch wakes the gathering leader: waking it
     * for each one would cost it a context switch per writer. */
    if (gc->leader_gathering && gc->qlen >= gc->expect)
        pthread_cond_signal(&gc->lcond);
    for (;;) {
        uint32_t seen;

        if (atomic_load_explicit(&q->done, memory_order_acquire))
            break;
        /* Still queued (not taken into a batch, which flips qpar) and nobody leads: lead. The
         * batch led includes q, so q is done after it. */
        if (!gc->leader_active && q->par == gc->qpar) {
            gc->leader_active = 1;
            lead(gc, q, &w);
            break;
        }
        seen = atomic_load_explicit(&gc->seq[q->par], memory_order_acquire);
        pthread_mutex_unlock(&gc->qlock);
        /* done is set before seq moves (release), so a change that seen missed shows here or
         * makes the wait return at once. */
        if (!atomic_load_explicit(&q->done, memory_order_acquire))
            futex_wait(&gc->seq[q->par], seen);
        /* Done: result and rev were written before done (release), so no lock is needed to
         * read them, and the callers of a batch do not all queue for qlock as they wake. */
        if (atomic_load_explicit(&q->done, memory_order_acquire))
            return;
        pthread_mutex_lock(&gc->qlock);
    }
    pthread_mutex_unlock(&gc->qlock);
    do_wakes(gc, &w);
}

static int
finish(struct gc_req *q, int64_t *rev, struct rk_error *err)
{
    if (q->result == 0) {
        if (rev != NULL)
            *rev = q->rev;
        return 0;
    }
    return rk_error_set(err, -q->result, "%s", q->msg);
}

int
gcommit_txn(struct gcommit *gc, const struct store_cmp *cmps, size_t ncmps,
            const struct store_op *ops, size_t nops, int64_t *rev, struct rk_error *err)
{
    struct gc_req q = {0};
    int r;

    if ((ncmps > 0 && cmps == NULL) || (nops > 0 && ops == NULL))
        return rk_error_set(err, RK_EINVAL, "transaction without its compares or operations");
    for (size_t i = 0; i < ncmps; i++) {
        if ((r = gcommit_key_ok(cmps[i].key, err)) != 0)
            return r;
        if (cmps[i].mod_rev < 0)
            return rk_error_set(err, RK_EINVAL, "negative mod_rev in a compare");
    }
    for (size_t i = 0; i < nops; i++) {
        if ((r = gcommit_key_ok(ops[i].key, err)) != 0)
            return r;
        if (ops[i].kind != STORE_PUT && ops[i].kind != STORE_DELETE)
            return rk_error_set(err, RK_EINVAL, "unknown store operation %d", (int)ops[i].kind);
        if (ops[i].kind == STORE_PUT && ops[i].vlen > 0 && ops[i].val == NULL)
            return rk_error_set(err, RK_EINVAL, "store value is NULL");
        if (ops[i].kind == STORE_PUT && ops[i].vlen > INT_MAX / 2)
            return rk_error_set(err, RK_ELIMIT, "store value too large");
    }
    q.cmps = cmps;
    q.ncmps = ncmps;
    q.ops = ops;
    q.nops = nops;
    submit(gc, &q);
    return finish(&q, rev, err);
}

int
gcommit_put(struct gcommit *gc, const char *key, const void *val, size_t vlen, int64_t *rev,
            struct rk_error *err)
{
    struct store_op op = {.kind = STORE_PUT, .key = key, .val = val, .vlen = vlen};

    return gcommit_txn(gc, NULL, 0, &op, 1, rev, err);
}

int
gcommit_del(struct gcommit *gc, const char *key, int64_t *rev, struct rk_error *err)
{
    struct store_op op = {.kind = STORE_DELETE, .key = key};
    struct gc_req q = {0};
    int r;

    if ((r = gcommit_key_ok(key, err)) != 0)
        return r;
    q.ops = &op;
    q.nops = 1;
    q.must_exist = 1;
    submit(gc, &q);
    return finish(&q, rev, err);
}

int
gcommit_try_pause(struct gcommit *gc)
{
    int taken = 0;

    pthread_mutex_lock(&gc->qlock);
    if (!gc->leader_active) {
        gc->leader_active = 1;
        taken = 1;
    }
    pthread_mutex_unlock(&gc->qlock);
    return taken;
}

void
gcommit_resume(struct gcommit *gc)
{
    struct wakes w = {-1, -1};

    pthread_mutex_lock(&gc->qlock);
    handoff(gc, &w); /* callers that queued meanwhile wait for a leader */
    pthread_mutex_unlock(&gc->qlock);
    do_wakes(gc, &w);
}

void
gcommit_stats(struct gcommit *gc, uint64_t *commits, uint64_t *txns)
{
    pthread_mutex_lock(&gc->qlock);
    *commits = gc->n_commits;
    *txns = gc->n_txns;
    pthread_mutex_unlock(&gc->qlock);
}
