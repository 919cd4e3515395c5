/* gcommit.h: group commit, shared by the durable backends (sqlite, log).
 *
 * Callers queue their transactions; whichever caller finds no leader becomes the leader, takes
 * the whole queue and hands it to the backend's run function, which applies it as ONE durable
 * commit (one fsync) and sets each caller's own result and revision. Waiting callers sleep on one
 * of two futex words: the callers of the batch in flight on one, those queued behind it on the
 * other. A commit wakes its whole batch with one call, after releasing the queue's lock (a woken
 * caller that found it held would sleep again), and callers that queued behind the batch get a
 * leader by hand-off: one of them is woken.
 *
 * Gathering: right after a commit the callers it woke are busy preparing their next write (kv
 * work, encryption), and the first one back would otherwise commit alone, costing a whole fsync
 * for one transaction while the rest queue behind it (batches alternate 1, n-1, 1, ...). So a new
 * leader with fewer queued transactions than the last batches had waits, at most half the last
 * commit's duration (bounded), for the others to arrive. A single writer never waits: its
 * expected batch is 1. The estimate follows the load: a batch cut short by the wait lowers it. */
#ifndef REKEY_STORE_GCOMMIT_H
#define REKEY_STORE_GCOMMIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "store/backend.h"

#define GC_MSG_MAX 256

/* One caller's transaction waiting in the queue. Lives on the caller's stack. The run function
 * reads cmps, ops and must_exist and sets result (0, -RK_ECONFLICT, -RK_ENOTFOUND, -RK_E*),
 * rev (the revision it committed at, or the current one for compares only) and msg. */
struct gc_req {
    const struct store_cmp *cmps;
    size_t ncmps;
    const struct store_op *ops;
    size_t nops;
    int must_exist; /* single-key delete: a missing key is -RK_ENOTFOUND */
    int result;
    int64_t rev;
    char msg[GC_MSG_MAX];
    struct gc_req *next; /* the batch, in queue order */

    /* private to gcommit.c */
    _Atomic int done; /* set (release) once result and rev are final; read without qlock */
    unsigned par;     /* the futex word (gcommit.seq) this caller sleeps on */
};

/* Applies the batch (linked by next) durably. Called by the leader without any gcommit lock.
 * Returns the number of transactions committed. */
typedef uint64_t (*gc_run_fn)(void *arg, struct gc_req *batch);

struct gcommit {
    gc_run_fn run;
    void *arg;
    pthread_mutex_t qlock;
    pthread_cond_t lcond; /* the gathering leader waits on it for arrivals (CLOCK_MONOTONIC) */
    struct gc_req *qhead, *qtail;
    /* Futex words: the callers of the batch in flight sleep on one, those queued behind it on
     * the other (qpar), so a commit wakes its whole batch with one call and a hand-off wakes one
     * queued caller, never a caller of the other group. */
    _Atomic uint32_t seq[2];
    unsigned qpar;
    size_t qlen;
    int leader_active, leader_gathering;
    size_t expect;          /* batch size the recent load suggests (>= 1) */
    int64_t last_commit_ns; /* duration of the last batch */
    uint64_t n_commits, n_txns;
};

/* Sets gc up to run batches through run(arg, batch). gcommit_destroy undoes it. */
void gcommit_init(struct gcommit *gc, gc_run_fn run, void *arg);
void gcommit_destroy(struct gcommit *gc);

/* The backend txn/put/del ops (backend.h contracts): check the arguments, queue the transaction
 * and return its result once it is committed or failed. */
int gcommit_txn(struct gcommit *gc, const struct store_cmp *cmps, size_t ncmps,
                const struct store_op *ops, size_t nops, int64_t *rev, struct rk_error *err);
int gcommit_put(struct gcommit *gc, const char *key, const void *val, size_t vlen, int64_t *rev,
                struct rk_error *err);
int gcommit_del(struct gcommit *gc, const char *key, int64_t *rev, struct rk_error *err);

/* Takes the leader's slot when no batch is running, so none starts until gcommit_resume.
 * Returns 1 when taken, 0 when a batch is running (nothing taken). */
int gcommit_try_pause(struct gcommit *gc);
void gcommit_resume(struct gcommit *gc);

/* *commits = batches that committed something, *txns = transactions committed in them. */
void gcommit_stats(struct gcommit *gc, uint64_t *commits, uint64_t *txns);

/* Checks a store key: non-empty, at most STORE_KEY_MAX bytes. Returns 0 or -RK_EINVAL. */
int gcommit_key_ok(const char *key, struct rk_error *err);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t gcommit_mono_ns(void);

#endif
