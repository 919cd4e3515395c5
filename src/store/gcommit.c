/* gcommit.c: group commit (gcommit.h), moved out of the SQLite backend so that every durable
 * backend batches its writers the same way. */
#include "gcommit.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* Passes the queue to its first caller, who leads the next batch; or, with nothing queued,
 * frees the leader's slot. Called with qlock held by the leader (or by gcommit_resume). */
static void
handoff(struct gcommit *gc)
{
    if (gc->qhead == NULL) {
        gc->leader_active = 0;
        return;
    }
    gc->qhead->lead = 1;
    sem_post(&gc->qhead->wake);
}

/* Leads one batch: gathers, runs it, then wakes each of its callers on its own semaphore and
 * hands the queue on. Called and returns with qlock held; leader_active is set. */
static void
lead(struct gcommit *gc, struct gc_req *self)
{
    struct gc_req *batch, *next;
    size_t n;
    int64_t t0;
    uint64_t nok;
    int short_cut;

    short_cut = gather(gc);
    batch = gc->qhead;
    n = gc->qlen;
    gc->qhead = gc->qtail = NULL;
    gc->qlen = 0;
    pthread_mutex_unlock(&gc->qlock);
    t0 = gcommit_mono_ns();
    nok = gc->run(gc->arg, batch);
    pthread_mutex_lock(&gc->qlock);
    gc->last_commit_ns = gcommit_mono_ns() - t0;
    /* Those that queued meanwhile plus the callers of this batch form the load. */
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
        atomic_store_explicit(&batch->done, 1, memory_order_release);
        if (batch != self)
            sem_post(&batch->wake);
    }
    handoff(gc);
}

/* Queues q and returns when it has been committed or has failed. The first caller to find no
 * leader leads; the others sleep on their own semaphore until their batch is done or the queue
 * is handed to them. */
static void
submit(struct gcommit *gc, struct gc_req *q)
{
    sem_init(&q->wake, 0, 0);
    pthread_mutex_lock(&gc->qlock);
    q->next = NULL;
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
    if (!gc->leader_active) {
        gc->leader_active = 1;
        lead(gc, q);
    }
    while (!atomic_load_explicit(&q->done, memory_order_acquire)) {
        pthread_mutex_unlock(&gc->qlock);
        while (sem_wait(&q->wake) != 0)
            ; /* EINTR */
        /* Done: result and rev were written before done (release), so no lock is needed to
         * read them, and the callers of a batch do not all queue for qlock as they wake. */
        if (atomic_load_explicit(&q->done, memory_order_acquire))
            goto out;
        pthread_mutex_lock(&gc->qlock);
        if (q->lead) {
            q->lead = 0;
            lead(gc, q);
        }
    }
    pthread_mutex_unlock(&gc->qlock);
out:
    sem_destroy(&q->wake);
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
    pthread_mutex_lock(&gc->qlock);
    handoff(gc); /* callers that queued meanwhile wait for a leader */
    pthread_mutex_unlock(&gc->qlock);
}

void
gcommit_stats(struct gcommit *gc, uint64_t *commits, uint64_t *txns)
{
    pthread_mutex_lock(&gc->qlock);
    *commits = gc->n_commits;
    *txns = gc->n_txns;
    pthread_mutex_unlock(&gc->qlock);
}
