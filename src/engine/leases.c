/* leases.c: the lease manager (leases.h).
 *
 * Memory (about 90 bytes a lease): a lease is a 72-byte slot in one array (struct lease), found
 * by index, never by pointer, so the array may move when it grows. Its id is kept as an interned
 * class (the id's prefix up to its last '/', with the lease's database and role: one string for
 * all the leases of a role) and its own tail (at most TAIL_MAX - 1 bytes, the random part);
 * the issuing token's accessor is interned too; times are 32-bit seconds after EPOCH. The hash
 * table of ids and the expiry heap hold 32-bit slot indexes. The login's name and the last
 * error are not held: they are in the record ("lease/<id>"), read when a lease is revoked,
 * renewed or looked up.
 *
 * Revocations: the expiry thread pops due leases into jobs of EXPIRY_BATCH; revoke-prefix and a
 * token's revocation cut theirs into jobs of PREFIX_BATCH; WORKERS threads run the jobs (the
 * queue holds at most QUEUE_MAX expiry jobs, so the thread waits rather than piling them up). A
 * job reads each record, revokes through ops->revoke, then deletes the records of the revoked
 * ones in one store transaction. Without the threads (the CLI's local mode) jobs run in the
 * caller.
 *
 * Lock order: m->mu only; ops calls and store reads and the batched deletes run without it. */
#include "engine/leases.h"
#include "engine/leases-int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "store/barrier.h"
#include "util/backoff.h"
#include "util/log.h"
#include "util/timeutil.h"

/* ---- open, load ---- */

int
leases_open(struct barrier *br, const struct lease_ops *ops, struct leases **out,
            struct rk_error *err)
{
    struct leases *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (m == NULL || (m->buckets = malloc(NBUCKETS_MIN * sizeof(*m->buckets))) == NULL) {
        free(m);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    memset(m->buckets, 0xff, NBUCKETS_MIN * sizeof(*m->buckets));
    m->nbuckets = NBUCKETS_MIN;
    m->freehead = NONE;
    m->br = br;
    m->ops = *ops;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    pthread_cond_init(&m->work_cv, NULL);
    pthread_cond_init(&m->done_cv, NULL);
    *out = m;
    return 0;
}

struct load_ctx {
    struct leases *m;
    struct rk_error *err;
    size_t n, bad, pending;
    int64_t now;
};

static int
load_one(void *arg, const char *key, const struct secret *v, int64_t rev)
{
    struct load_ctx *c = arg;
    struct lease_info i;
    uint32_t k;
    int r;

    (void)rev;
    r = lr_parse(v->data, v->len, &i);
    /* A record is stored under its own id, and the listing gives each key once: a record whose
     * id is its key's cannot be in the table already (no lookup needed). */
    if (r == 0 && strcmp(key + strlen(KEY_PREFIX), i.id) != 0)
        r = -RK_ECORRUPT;
    pthread_mutex_lock(&c->m->mu);
    if (r != 0 || (k = lt_slot_new(c->m, &i)) == NONE) {
        pthread_mutex_unlock(&c->m->mu);
        log_warn("leases: the record %s does not parse; it is left in the store", key);
        c->bad++;
        return 0;
    }
    if ((r = lt_insert(c->m, k)) != 0)
        lt_drop(c->m, k);
    else if (i.pending) {
        /* Written before its login was made, never confirmed: whether the login exists is
         * unknown and nobody holds its password, so it is revoked now. */
        c->pending++;
        r = lt_schedule(c->m, k, c->now);
    } else if (!i.irrevocable)
        r = lt_schedule(c->m, k, i.expires);
    pthread_mutex_unlock(&c->m->mu);
    if (r != 0)
        return rk_error_set(c->err, RK_ENOMEM, "out of memory");
    c->n++;
    return 0;
}

int
leases_load(struct leases *m, struct rk_error *err)
{
    struct load_ctx c = {m, err, 0, 0, 0, time_now()};
    int r;

    pthread_mutex_lock(&m->mu);
    if (m->loaded || m->loading) {
        while (!m->loaded)
            pthread_cond_wait(&m->cv, &m->mu);
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    m->loading = 1;
    pthread_mutex_unlock(&m->mu);
    r = barrier_list_values(m->br, KEY_PREFIX, load_one, &c, err);
    pthread_mutex_lock(&m->mu);
    m->loading = 0;
    m->loaded = r == 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (r == 0 && (c.n > 0 || c.bad > 0))
        log_info("leases: %zu lease%s loaded (%zu irrevocable, %zu unconfirmed: revoked now)", c.n,
                 c.n == 1 ? "" : "s", m->nirrevocable, c.pending);
    return r;
}

/* Waits for the load (a request racing the thread's start). */
static int
ready(struct leases *m, struct rk_error *err)
{
    if (!m->loaded)
        return leases_load(m, err);
    return 0;
}

/* ---- revocation jobs ---- */

/* The outcome of a failed revocation of slot k (m->mu held): counted, retried with backoff or
 * irrevocable, and the record updated. */
static void
failed(struct leases *m, uint32_t k, struct lease_info *i, const char *msg)
{
    struct lease *l = &m->v[k];
    struct rk_error e2 = {0};
    int64_t now = time_now();

    if (l->failures < 255)
        l->failures++;
    i->failures = l->failures;
    snprintf(i->last_error, sizeof(i->last_error), "%s", msg);
    if (l->failures >= LEASE_MAX_FAILURES) {
        if (!(l->flags & F_IRREVOCABLE))
            m->nirrevocable++;
        l->flags |= F_IRREVOCABLE;
        i->irrevocable = 1;
        lt_unschedule(m, k);
        log_error("leases: %s (login %s) is irrevocable after %d failed revocations: %s; "
                  "retry with `rekey lease revoke %s` or sys/leases/revoke-force",
                  i->id, i->username, l->failures, msg, i->id);
    } else {
        struct backoff_policy p = {RETRY_BASE, 2, RETRY_CAP, 10};
        int64_t d = backoff_delay(&p, l->failures);
        (void)lt_schedule(m, k, now + d);
        log_warn("leases: revoking %s failed (%s); try %d of %d in %llds", i->id, msg,
                 l->failures + 1, LEASE_MAX_FAILURES, (long long)d);
    }
    if (i->username[0] != '\0' && lr_put(m, i, &e2) != 0)
        log_warn("leases: %s: the failure count was not stored: %s", i->id, e2.msg);
}

/* Runs job j without the lock: its slots are F_BUSY (taken out of the heap) and stay the job's
 * until it ends. Counts into j->batch when there is one. */
static void
run_job(struct leases *m, struct job *j)
{
    struct lease_info *inf = calloc(j->n, sizeof(*inf));
    int *res = calloc(j->n, sizeof(*res));
    char(*msg)[200] = calloc(j->n, sizeof(*msg));
    struct barrier_txn *t = NULL;
    struct rk_error e = {0}, last = {0};
    size_t ok = 0, bad = 0;
    int commit = 0, lastr = 0;

    if (inf == NULL || res == NULL || msg == NULL) {
        free(inf);
        free(res);
        free(msg);
        inf = NULL;
        res = NULL;
        msg = NULL;
    }
    pthread_mutex_lock(&m->mu);
    for (size_t x = 0; inf != NULL && x < j->n; x++)
        lt_fill(m, j->idx[x], &inf[x]);
    pthread_mutex_unlock(&m->mu);
    if (inf == NULL)
        goto outcomes;
    for (size_t x = 0; x < j->n; x++) {
        struct lease_info rec;
        rk_error_clear(&e);
        if ((res[x] = lr_get(m, inf[x].id, &rec, &e)) == 0) {
            snprintf(inf[x].username, sizeof(inf[x].username), "%s", rec.username);
            res[x] = m->ops.revoke(m->ops.ctx, &inf[x], &e);
        } else if (res[x] == -RK_ENOTFOUND) {
            res[x] = 0; /* its record is gone already */
        }
        if (res[x] != 0)
            snprintf(msg[x], sizeof(msg[x]), "%s", e.msg);
    }
    /* The records of the revoked (or forced) ones go in one transaction. */
    if ((t = barrier_txn_new(m->br)) != NULL) {
        char key[KEY_MAX];
        commit = 1;
        for (size_t x = 0; x < j->n; x++)
            if (res[x] == 0 || j->force) {
                snprintf(key, sizeof(key), KEY_PREFIX "%s", inf[x].id);
                if (barrier_txn_del(t, key) != 0)
                    commit = 0;
            }
        rk_error_clear(&e);
        if (commit && barrier_txn_count(t) > 0 && barrier_txn_commit(t, NULL, &e) != 0) {
            /* One missing record fails the whole batch: delete them one by one. */
            commit = 0;
            for (size_t x = 0; x < j->n; x++)
                if (res[x] == 0 || j->force) {
                    struct rk_error e2 = {0};
                    int r = lr_del(m, inf[x].id, &e2);
                    if (r != 0 && r != -RK_ENOTFOUND) {
                        res[x] = r;
                        snprintf(msg[x], sizeof(msg[x]), "revoked, but the record stays: %s",
                                 e2.msg);
                    } else if (res[x] != 0) {
                        res[x] = 1; /* forced */
                    }
                }
            commit = 2;
        }
        barrier_txn_free(t);
    }
outcomes:
    pthread_mutex_lock(&m->mu);
    for (size_t x = 0; x < j->n; x++) {
        uint32_t k = j->idx[x];
        m->v[k].flags &= (uint8_t)~F_BUSY;
        if (inf == NULL) {
            (void)lt_schedule(m, k, time_now() + RETRY_BASE);
            bad++;
            lastr = -RK_ENOMEM;
            continue;
        }
        if (commit == 1 && (res[x] == 0 || j->force)) {
            if (res[x] != 0)
                log_warn("leases: %s: revoke-force drops the record although the revocation "
                         "failed (%s); drop login %s by hand",
                         inf[x].id, msg[x], inf[x].username);
            lt_remove(m, k);
            ok++;
        } else if (commit == 2 && (res[x] == 0 || res[x] == 1)) {
            lt_remove(m, k);
            ok++;
        } else if (commit == 0 && (res[x] == 0 || j->force)) {
            failed(m, k, &inf[x], "revoked, but its record was not deleted (out of memory)");
            bad++;
        } else {
            failed(m, k, &inf[x], msg[x]);
            bad++;
            lastr = res[x];
            rk_error_set(&last, -res[x], "%s", msg[x]);
        }
    }
    if (j->batch != NULL) {
        j->batch->ok += ok;
        j->batch->bad += bad;
        if (lastr != 0) {
            j->batch->last = lastr;
            j->batch->err = last;
        }
        j->batch->jobs--;
    }
    pthread_cond_broadcast(&m->done_cv); /* batches and find_idle wait on it */
    pthread_mutex_unlock(&m->mu);
    free(inf);
    free(res);
    free(msg);
}

/* A job of n slots (taken: F_BUSY, out of the heap). m->mu held. NULL: out of memory (the
 * slots are put back). */
static struct job *
job_new(struct leases *m, uint32_t *idx, size_t n, int force, struct batch *b)
{
    struct job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        for (size_t x = 0; x < n; x++) {
            m->v[idx[x]].flags &= (uint8_t)~F_BUSY;
            (void)lt_schedule(m, idx[x], time_now() + RETRY_BASE);
        }
        free(idx);
        return NULL;
    }
    j->idx = idx;
    j->n = n;
    j->force = force;
    j->batch = b;
    if (b != NULL)
        b->jobs++;
    return j;
}

static void
job_free(struct job *j)
{
    if (j != NULL)
        free(j->idx);
    free(j);
}

/* Queues j for the workers (m->mu held). */
static void
enqueue(struct leases *m, struct job *j)
{
    if (m->qtail != NULL)
        m->qtail->next = j;
    else
        m->qhead = j;
    m->qtail = j;
    m->nqueued++;
    if (j->batch == NULL)
        m->nexpiryjobs++;
    pthread_cond_signal(&m->work_cv);
}

/* Runs j now: in the workers when they run (m->mu held; returns at once), else in the caller
 * (the lock released meanwhile). */
static void
submit(struct leases *m, struct job *j)
{
    if (m->running) {
        enqueue(m, j);
        return;
    }
    pthread_mutex_unlock(&m->mu);
    run_job(m, j);
    job_free(j);
    pthread_mutex_lock(&m->mu);
}

/* Stores the queued confirmations in one transaction (m->mu held; released meanwhile). A
 * lease that is gone is skipped (its record must not come back); one that is busy too (its
 * revocation deletes the record, or stores it from memory, unmarked, as a renewal does). The
 * ones written are busy during the write, so nothing revokes them meanwhile. */
static void
flush_confirms(struct leases *m)
{
    struct cfm *list = m->cfm, *c;
    struct barrier_txn *t = NULL;
    struct rk_error e = {0};
    uint32_t *idx = NULL;
    size_t n = 0, cap = 0;
    int r = -RK_ENOMEM;

    m->cfm = NULL;
    for (c = list; c != NULL; c = c->next)
        cap++;
    if ((idx = malloc(cap * sizeof(*idx))) == NULL || (t = barrier_txn_new(m->br)) == NULL)
        goto out;
    for (c = list; c != NULL; c = c->next) {
        char key[KEY_MAX];
        uint32_t k = lt_find(m, c->id);
        if (k == NONE || (m->v[k].flags & F_BUSY))
            continue;
        snprintf(key, sizeof(key), KEY_PREFIX "%s", c->id);
        if (barrier_txn_put(t, key, c->text, strlen(c->text)) != 0)
            goto out;
        m->v[k].flags |= F_BUSY;
        idx[n++] = k;
    }
    pthread_mutex_unlock(&m->mu);
    r = n > 0 ? barrier_txn_commit(t, NULL, &e) : 0;
    pthread_mutex_lock(&m->mu);
    for (size_t x = 0; x < n; x++)
        m->v[idx[x]].flags &= (uint8_t)~F_BUSY;
    if (n > 0)
        pthread_cond_broadcast(&m->done_cv);
out:
    if (r != 0)
        log_warn("leases: %zu confirmation%s not stored (%s): those leases are revoked at the "
                 "next start",
                 cap, cap == 1 ? "" : "s", r == -RK_ENOMEM ? "out of memory" : e.msg);
    barrier_txn_free(t);
    free(idx);
    while (list != NULL) {
        c = list->next;
        free(list->id);
        free(list->text);
        free(list);
        list = c;
    }
}

static void *
worker_main(void *arg)
{
    struct leases *m = arg;

    pthread_mutex_lock(&m->mu);
    for (;;) {
        struct job *j;
        while (m->qhead == NULL && m->cfm == NULL && !m->stop)
            pthread_cond_wait(&m->work_cv, &m->mu);
        if (m->cfm != NULL) {
            flush_confirms(m); /* returns with the lock held */
            continue;
        }
        if ((j = m->qhead) == NULL)
            break;
        m->qhead = j->next;
        if (m->qhead == NULL)
            m->qtail = NULL;
        m->nqueued--;
        if (j->batch == NULL)
            m->nexpiryjobs--;
        pthread_cond_signal(&m->cv); /* room in the queue for the expiry thread */
        pthread_mutex_unlock(&m->mu);
        run_job(m, j);
        job_free(j);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- the expiry thread ---- */

static void *
expiry_main(void *arg)
{
    struct leases *m = arg;
    struct rk_error err = {0};
    int warned = 0;

    while (leases_load(m, &err) != 0) {
        struct timespec ts;
        if (!warned++)
            log_error("leases: loading the records failed: %s; retrying every 5s", err.msg);
        pthread_mutex_lock(&m->mu);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        if (!m->stop)
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        if (m->stop) {
            pthread_mutex_unlock(&m->mu);
            return NULL;
        }
        pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        uint32_t now = rel(time_now()), *idx;
        size_t n = 0;
        struct job *j;

        if (m->nheap == 0 || m->nexpiryjobs >= QUEUE_MAX) {
            pthread_cond_wait(&m->cv, &m->mu);
            continue;
        }
        if (m->v[m->heap[0]].due > now) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(m->v[m->heap[0]].due - now);
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
            continue;
        }
        if ((idx = malloc(EXPIRY_BATCH * sizeof(*idx))) == NULL) {
            pthread_mutex_unlock(&m->mu);
            sleep(1);
            pthread_mutex_lock(&m->mu);
            continue;
        }
        while (n < EXPIRY_BATCH && m->nheap > 0 && m->v[m->heap[0]].due <= now) {
            uint32_t k = m->heap[0];
            lt_unschedule(m, k);
            m->v[k].flags |= F_BUSY;
            idx[n++] = k;
        }
        if ((j = job_new(m, idx, n, 0, NULL)) != NULL)
            enqueue(m, j);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int
leases_start(struct leases *m, struct rk_error *err)
{
    int r = 0;

    pthread_mutex_lock(&m->mu);
    if (!m->running) {
        m->stop = 0;
        if (pthread_create(&m->th, NULL, expiry_main, m) != 0)
            r = rk_error_set(err, RK_EINTERNAL, "the lease expiry thread did not start");
        for (int w = 0; r == 0 && w < WORKERS; w++)
            if (pthread_create(&m->workers[w], NULL, worker_main, m) != 0) {
                /* Stop what started: a manager runs with all its workers or none. */
                m->stop = 1;
                pthread_cond_broadcast(&m->cv);
                pthread_cond_broadcast(&m->work_cv);
                pthread_mutex_unlock(&m->mu);
                pthread_join(m->th, NULL);
                for (int x = 0; x < w; x++)
                    pthread_join(m->workers[x], NULL);
                pthread_mutex_lock(&m->mu);
                r = rk_error_set(err, RK_EINTERNAL, "the lease workers did not start");
            }
        if (r == 0)
            m->running = 1;
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

void
leases_stop(struct leases *m)
{
    int running;

    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    running = m->running;
    m->stop = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_cond_broadcast(&m->work_cv);
    pthread_mutex_unlock(&m->mu);
    if (running) {
        /* The workers end their queue first (each job is short); then nothing runs. */
        pthread_join(m->th, NULL);
        for (int w = 0; w < WORKERS; w++)
            pthread_join(m->workers[w], NULL);
    }
    pthread_mutex_lock(&m->mu);
    m->running = 0;
    pthread_mutex_unlock(&m->mu);
}

void
leases_close(struct leases *m)
{
    if (m == NULL)
        return;
    leases_stop(m);
    while (m->cfm != NULL) {
        struct cfm *c = m->cfm->next;
        free(m->cfm->id);
        free(m->cfm->text);
        free(m->cfm);
        m->cfm = c;
    }
    free(m->v);
    free(m->buckets);
    free(m->heap);
    lt_itab_free(&m->cls);
    lt_itab_free(&m->acc);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    pthread_cond_destroy(&m->work_cv);
    pthread_cond_destroy(&m->done_cv);
    free(m);
}

/* ---- requests ---- */

/* Finds id and waits (m->mu held) while it is busy for a short while: its record being
 * written (an issue, a confirmation) or a renewal. Returns its slot, NONE when it is gone (a
 * revocation ended it), or NONE with *busy set after BUSY_WAIT seconds. */
static uint32_t
find_idle(struct leases *m, const char *id, int *busy)
{
    struct timespec ts;
    uint32_t k;

    *busy = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += BUSY_WAIT;
    while ((k = lt_find(m, id)) != NONE && (m->v[k].flags & F_BUSY))
        if (pthread_cond_timedwait(&m->done_cv, &m->mu, &ts) != 0) {
            *busy = (k = lt_find(m, id)) != NONE && (m->v[k].flags & F_BUSY);
            return *busy ? NONE : k;
        }
    return k;
}

int
leases_add(struct leases *m, const struct lease_info *i, struct rk_error *err)
{
    struct lease_info c = *i;
    uint32_t k;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    c.failures = 0;
    c.irrevocable = 0;
    c.last_error[0] = '\0';
    pthread_mutex_lock(&m->mu);
    if (lt_find(m, i->id) != NONE) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_EEXISTS, "lease %s exists", i->id);
    }
    if ((k = lt_slot_new(m, &c)) == NONE) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_EINVAL, "lease id %s does not fit (or out of memory)", i->id);
    }
    if (lt_insert(m, k) != 0) {
        lt_drop(m, k);
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    /* The record is written without the lock (busy meanwhile: nobody revokes or renews it), so
     * concurrent issues share the store's group commit instead of taking turns at an fsync. */
    m->v[k].flags |= F_BUSY;
    pthread_mutex_unlock(&m->mu);
    r = lr_put(m, &c, err);
    pthread_mutex_lock(&m->mu);
    m->v[k].flags &= (uint8_t)~F_BUSY;
    pthread_cond_broadcast(&m->done_cv);
    if (r != 0) {
        lt_remove(m, k);
    } else if ((r = lt_schedule(m, k, c.expires)) != 0) {
        struct rk_error e2 = {0};
        lt_remove(m, k);
        (void)lr_del(m, c.id, &e2);
        rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

int
leases_confirm(struct leases *m, const struct lease_info *i, struct rk_error *err)
{
    struct lease_info c = *i;
    uint32_t k;

    c.pending = 0;
    pthread_mutex_lock(&m->mu);
    if ((k = lt_find(m, i->id)) != NONE)
        m->v[k].flags &= (uint8_t)~F_PENDING;
    if (m->running && k != NONE) {
        /* The workers store it, with the other confirmations of the moment, in one
         * transaction: the issue answers without waiting for a second fsync. */
        struct cfm *q = calloc(1, sizeof(*q));
        if (q != NULL && (q->id = strdup(c.id)) != NULL &&
            leases_record_encode(&c, &q->text) == 0) {
            q->next = m->cfm;
            m->cfm = q;
            pthread_cond_signal(&m->work_cv);
            pthread_mutex_unlock(&m->mu);
            return 0;
        }
        if (q != NULL)
            free(q->id);
        free(q);
    }
    pthread_mutex_unlock(&m->mu);
    if (k == NONE)
        return 0; /* revoked meanwhile: its record must not come back */
    return lr_put(m, &c, err);
}

int
leases_forget(struct leases *m, const char *id, struct rk_error *err)
{
    uint32_t k;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    if ((k = lt_find(m, id)) == NONE)
        r = rk_error_set(err, RK_ENOTFOUND, "no lease %s", id);
    else if (m->v[k].flags & F_BUSY)
        r = rk_error_set(err, RK_EBUSY, "lease %s is being revoked", id);
    else if ((r = lr_del(m, id, err)) == 0)
        lt_remove(m, k);
    pthread_mutex_unlock(&m->mu);
    return r;
}

int
leases_lookup(struct leases *m, const char *id, struct lease_info *out, struct rk_error *err)
{
    struct lease_info rec;
    uint32_t k;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    if ((k = lt_find(m, id)) != NONE)
        lt_fill(m, k, out);
    pthread_mutex_unlock(&m->mu);
    if (k == NONE)
        return rk_error_set(err, RK_ENOTFOUND, "lease not found");
    /* The login's name and the last error are only in the record. */
    if ((r = lr_get(m, id, &rec, err)) != 0)
        return r == -RK_ENOTFOUND ? rk_error_set(err, RK_ENOTFOUND, "lease not found") : r;
    memcpy(out->username, rec.username, sizeof(out->username));
    memcpy(out->last_error, rec.last_error, sizeof(out->last_error));
    return 0;
}

int
leases_renew(struct leases *m, const char *id, int64_t increment, int64_t default_ttl,
             int64_t sys_max, int64_t now, struct lease_info *out, struct rk_error *err)
{
    struct lease_info cur, rec;
    int64_t exp, cap;
    uint32_t k;
    int r, busy;

    if ((r = ready(m, err)) != 0)
        return r;
    if (sys_max <= 0)
        sys_max = LEASE_SYS_MAX_TTL;
    pthread_mutex_lock(&m->mu);
    if ((k = find_idle(m, id, &busy)) == NONE) {
        pthread_mutex_unlock(&m->mu);
        return busy ? rk_error_set(err, RK_EINVAL, "lease %s is being revoked", id)
                    : rk_error_set(err, RK_ENOTFOUND, "lease not found");
    }
    if (m->v[k].flags & (F_BUSY | F_IRREVOCABLE)) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_EINVAL, "lease %s is %s and cannot be renewed", id,
                            (m->v[k].flags & F_BUSY) ? "being revoked" : "irrevocable");
    }
    lt_fill(m, k, &cur);
    if (cur.expires <= now) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_EINVAL, "lease expired");
    }
    if (increment <= 0)
        increment = default_ttl > 0 ? default_ttl : cur.expires - cur.issued;
    exp = now + increment;
    cap = cur.issued + sys_max;
    if (cur.max_expires > 0 && cur.max_expires < cap)
        cap = cur.max_expires;
    if (exp > cap)
        exp = cap;
    m->v[k].flags |= F_BUSY;
    pthread_mutex_unlock(&m->mu);
    if ((r = lr_get(m, id, &rec, err)) == 0) {
        memcpy(cur.username, rec.username, sizeof(cur.username));
        r = exp == cur.expires ? 0 : m->ops.renew(m->ops.ctx, &cur, exp, err);
    }
    if (r == 0) {
        rec.expires = exp;
        rec.last_renewal = now;
        rec.pending = cur.pending; /* memory knows of a confirmation not stored yet */
        r = lr_put(m, &rec, err);
    }
    pthread_mutex_lock(&m->mu);
    m->v[k].flags &= (uint8_t)~F_BUSY;
    pthread_cond_broadcast(&m->done_cv);
    if (r == 0) {
        m->v[k].expires = rel(exp);
        m->v[k].renewed = rel(now);
        (void)lt_schedule(m, k, exp);
        cur.expires = exp;
        cur.last_renewal = now;
        *out = cur;
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

int
leases_revoke(struct leases *m, const char *id, int force, struct rk_error *err)
{
    struct batch b = {0};
    uint32_t k, *idx;
    struct job *j;
    int r, busy;

    if ((r = ready(m, err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    if ((k = find_idle(m, id, &busy)) == NONE) {
        pthread_mutex_unlock(&m->mu);
        return busy ? rk_error_set(err, RK_EBUSY, "lease %s is being revoked or renewed", id)
                    : rk_error_set(err, RK_ENOTFOUND, "lease not found");
    }
    if ((idx = malloc(sizeof(*idx))) == NULL) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    lt_unschedule(m, k);
    m->v[k].flags |= F_BUSY;
    idx[0] = k;
    if ((j = job_new(m, idx, 1, force, &b)) == NULL) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    /* One lease: run here, not in the pool (the caller waits anyway). */
    pthread_mutex_unlock(&m->mu);
    run_job(m, j);
    job_free(j);
    if (b.bad > 0 && !force) {
        *err = b.err;
        return b.last != 0 ? b.last : -RK_EINTERNAL;
    }
    return 0;
}

/* Whether the leases of class c match prefix: 2 all of them, 1 some (compare the tails), 0
 * none. */
static int
cls_match(const char *c, const char *prefix, size_t plen)
{
    size_t clen = (size_t)(strchr(c, SEP) - c);

    if (plen <= clen)
        return strncmp(c, prefix, plen) == 0 ? 2 : 0;
    if (strncmp(c, prefix, clen) != 0 || prefix[clen] != '/')
        return 0;
    return 1;
}

/* Takes the leases matching prefix (or, prefix NULL, those of accessor acc) into jobs of
 * PREFIX_BATCH for b (NULL: nobody waits), chained into *jobs for submit_all. m->mu held
 * throughout (a scan of a million slots takes milliseconds; the revocations run without it).
 * *ntaken counts the leases taken. */
static void
take_matching(struct leases *m, const char *prefix, uint32_t acc, int force, struct batch *b,
              struct job **jobs, size_t *ntaken)
{
    size_t plen = prefix != NULL ? strlen(prefix) : 0, n = 0;
    uint8_t *how = NULL;
    uint32_t *idx = NULL;
    struct job *j;

    *jobs = NULL;
    *ntaken = 0;
    if (prefix != NULL) {
        /* One answer per class (a role's leases share it). */
        if ((how = calloc(m->cls.n ? m->cls.n : 1, 1)) == NULL)
            return;
        for (uint32_t c = 0; c < m->cls.n; c++)
            if (m->cls.v[c].s != NULL)
                how[c] = (uint8_t)cls_match(m->cls.v[c].s, prefix, plen);
    }
    for (uint32_t k = 0; k < m->nv; k++) {
        struct lease *l = &m->v[k];
        if (l->cls == NONE || (l->flags & F_BUSY))
            continue;
        if (prefix != NULL) {
            if (how[l->cls] == 0)
                continue;
            if (how[l->cls] == 1) {
                const char *c = m->cls.v[l->cls].s;
                size_t clen = (size_t)(strchr(c, SEP) - c);
                if (strncmp(l->tail, prefix + clen + 1, plen - clen - 1) != 0)
                    continue;
            }
        } else if (l->acc != acc) {
            continue;
        }
        if (idx == NULL && (idx = malloc(PREFIX_BATCH * sizeof(*idx))) == NULL)
            break;
        lt_unschedule(m, k);
        l->flags |= F_BUSY;
        idx[n++] = k;
        (*ntaken)++;
        if (n == PREFIX_BATCH) {
            if ((j = job_new(m, idx, n, force, b)) != NULL) {
                j->next = *jobs;
                *jobs = j;
            }
            idx = NULL;
            n = 0;
        }
    }
    if (n > 0 && (j = job_new(m, idx, n, force, b)) != NULL) {
        j->next = *jobs;
        *jobs = j;
    } else if (n == 0) {
        free(idx);
    }
    free(how);
}

/* Submits a chain of jobs (m->mu held). */
static void
submit_all(struct leases *m, struct job *jobs)
{
    while (jobs != NULL) {
        struct job *nx = jobs->next;
        jobs->next = NULL;
        submit(m, jobs);
        jobs = nx;
    }
}

int
leases_revoke_prefix(struct leases *m, const char *prefix, int force, size_t *nrevoked,
                     size_t *nfailed, struct rk_error *err)
{
    struct batch b = {0};
    struct job *jobs;
    size_t n;
    int r;

    if (strlen(prefix) == 0)
        return rk_error_set(err, RK_EINVAL, "an empty prefix is refused");
    if ((r = ready(m, err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    take_matching(m, prefix, NONE, force, &b, &jobs, &n);
    submit_all(m, jobs);
    while (b.jobs > 0)
        pthread_cond_wait(&m->done_cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    if (nrevoked != NULL)
        *nrevoked = b.ok;
    if (nfailed != NULL)
        *nfailed = b.bad;
    if (b.bad > 0 && !force) {
        *err = b.err;
        return b.last != 0 ? b.last : -RK_EINTERNAL;
    }
    return 0;
}

size_t
leases_revoke_accessor(struct leases *m, const char *accessor)
{
    struct rk_error err = {0};
    struct job *jobs;
    size_t n = 0;
    uint32_t acc;

    if (accessor == NULL || accessor[0] == '\0' || ready(m, &err) != 0)
        return 0;
    pthread_mutex_lock(&m->mu);
    if ((acc = lt_itab_find(&m->acc, accessor)) == NONE) {
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    take_matching(m, NULL, acc, 0, NULL, &jobs, &n);
    submit_all(m, jobs);
    pthread_mutex_unlock(&m->mu);
    return n;
}

int
leases_each(struct leases *m, const char *prefix, int (*cb)(void *, const struct lease_info *),
            void *arg)
{
    struct rk_error err = {0};
    size_t plen = strlen(prefix);
    struct lease_info i;
    int r, stop = 0;

    if ((r = ready(m, &err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    for (uint32_t k = 0; k < m->nv && !stop; k++) {
        int how;
        if (m->v[k].cls == NONE)
            continue;
        if ((how = cls_match(m->cls.v[m->v[k].cls].s, prefix, plen)) == 0)
            continue;
        lt_fill(m, k, &i);
        if (how == 2 || strncmp(i.id, prefix, plen) == 0)
            stop = cb(arg, &i);
    }
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void
leases_count(struct leases *m, size_t *total, size_t *irrevocable)
{
    pthread_mutex_lock(&m->mu);
    *total = m->n;
    *irrevocable = m->nirrevocable;
    pthread_mutex_unlock(&m->mu);
}
