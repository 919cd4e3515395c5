/* leases.c: the lease manager (leases.h). Lock order: m->mu only; no store write of a
 * revocation and no ops call is made while holding it, except the store writes of add, forget
 * and the bookkeeping after an outcome (short, and the barrier takes no lock of ours). */
#include "engine/leases.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "engine/timerheap.h"
#include "store/barrier.h"
#include "util/backoff.h"
#include "util/log.h"
#include "util/timeutil.h"

#define KEY_PREFIX "lease/"
#define NBUCKETS_MIN 1024
#define RETRY_BASE 5   /* seconds before the first retry of a failed revocation */
#define RETRY_CAP 3600 /* the longest wait between two */

struct lease {
    struct lease_info i;
    uint32_t timer;     /* TIMER_ID_NONE: not in the heap (irrevocable, being revoked) */
    int busy;           /* a revocation or renewal is running without the lock */
    struct lease *next; /* hash chain */
};

struct leases {
    struct barrier *br;
    struct lease_ops ops;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the thread waits on it; loaders wait on it too */
    struct lease **buckets;
    size_t nbuckets, n, nirrevocable;
    struct lease **slots; /* the heap's timers carry a slot index */
    size_t nslots, capslots, *freeslots, nfree;
    struct timerheap *heap;
    int loaded, loading, stop, running;
    pthread_t th;
};

static size_t
hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct lease *
find(struct leases *m, const char *id)
{
    for (struct lease *l = m->buckets[hash(id) & (m->nbuckets - 1)]; l != NULL; l = l->next)
        if (strcmp(l->i.id, id) == 0)
            return l;
    return NULL;
}

static int
grow(struct leases *m)
{
    size_t nb = m->nbuckets * 2;
    struct lease **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return -RK_ENOMEM;
    for (size_t k = 0; k < m->nbuckets; k++)
        for (struct lease *l = m->buckets[k], *nx; l != NULL; l = nx) {
            nx = l->next;
            l->next = b[hash(l->i.id) & (nb - 1)];
            b[hash(l->i.id) & (nb - 1)] = l;
        }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

/* Finds l's slot (a linear search is avoided: slots are looked up through the heap only). */
static int
slot_alloc(struct leases *m, struct lease *l, size_t *slot)
{
    if (m->nfree > 0) {
        *slot = m->freeslots[--m->nfree];
    } else {
        if (m->nslots == m->capslots) {
            size_t cap = m->capslots ? m->capslots * 2 : 1024;
            struct lease **s = realloc(m->slots, cap * sizeof(*s));
            size_t *f;
            if (s == NULL)
                return -RK_ENOMEM;
            m->slots = s;
            if ((f = realloc(m->freeslots, cap * sizeof(*f))) == NULL)
                return -RK_ENOMEM;
            m->freeslots = f;
            m->capslots = cap;
        }
        *slot = m->nslots++;
    }
    m->slots[*slot] = l;
    return 0;
}

/* Puts l in the heap at due (seconds), replacing its timer. */
static int
schedule(struct leases *m, struct lease *l, int64_t due)
{
    struct timer t = {.due_ms = due * 1000, .kind = TIMER_ROTATE};
    size_t slot;
    int r;

    if (l->timer != TIMER_ID_NONE)
        return timerheap_update(m->heap, l->timer, due * 1000, TIMER_ROTATE);
    if ((r = slot_alloc(m, l, &slot)) != 0)
        return r;
    t.index = slot;
    if ((r = timerheap_push(m->heap, &t, &l->timer)) != 0) {
        m->slots[slot] = NULL;
        m->freeslots[m->nfree++] = slot;
        return r;
    }
    pthread_cond_signal(&m->cv);
    return 0;
}

static void
unschedule(struct leases *m, struct lease *l)
{
    struct timer t;

    if (l->timer == TIMER_ID_NONE)
        return;
    if (timerheap_get(m->heap, l->timer, &t) == 0) {
        m->slots[t.index] = NULL;
        m->freeslots[m->nfree++] = t.index;
        (void)timerheap_remove(m->heap, l->timer);
    }
    l->timer = TIMER_ID_NONE;
}

static int
insert(struct leases *m, struct lease *l)
{
    size_t b;

    if (m->n + 1 > m->nbuckets && grow(m) != 0)
        return -RK_ENOMEM;
    b = hash(l->i.id) & (m->nbuckets - 1);
    l->next = m->buckets[b];
    m->buckets[b] = l;
    m->n++;
    if (l->i.irrevocable)
        m->nirrevocable++;
    return 0;
}

static void
unlink_lease(struct leases *m, struct lease *l)
{
    struct lease **pp = &m->buckets[hash(l->i.id) & (m->nbuckets - 1)];

    unschedule(m, l);
    for (; *pp != NULL; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    m->n--;
    if (l->i.irrevocable)
        m->nirrevocable--;
}

/* ---- records ---- */

static int
record_put(struct leases *m, const struct lease_info *i, struct rk_error *err)
{
    char key[sizeof(KEY_PREFIX) + LEASE_ID_MAX];
    json_t *j;
    char *text;
    int r;

    j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:i,s:b,s:s}", "id", i->id, "db", i->db,
                  "role", i->role, "username", i->username, "accessor", i->accessor, "issued",
                  (json_int_t)i->issued, "expires", (json_int_t)i->expires, "max_expires",
                  (json_int_t)i->max_expires, "last_renewal", (json_int_t)i->last_renewal,
                  "failures", i->failures, "irrevocable", i->irrevocable, "last_error",
                  i->last_error);
    text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    snprintf(key, sizeof(key), KEY_PREFIX "%s", i->id);
    r = barrier_put(m->br, key, text, strlen(text), err);
    free(text);
    return r;
}

static int
record_del(struct leases *m, const char *id, struct rk_error *err)
{
    char key[sizeof(KEY_PREFIX) + LEASE_ID_MAX];

    snprintf(key, sizeof(key), KEY_PREFIX "%s", id);
    return barrier_del(m->br, key, err);
}

static void
copy_str(char *dst, size_t len, const json_t *v)
{
    snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static int
record_parse(const unsigned char *val, size_t len, struct lease_info *i)
{
    json_t *j = json_loadb((const char *)val, len, 0, NULL);

    if (j == NULL || !json_is_string(json_object_get(j, "id"))) {
        json_decref(j);
        return -RK_ECORRUPT;
    }
    memset(i, 0, sizeof(*i));
    copy_str(i->id, sizeof(i->id), json_object_get(j, "id"));
    copy_str(i->db, sizeof(i->db), json_object_get(j, "db"));
    copy_str(i->role, sizeof(i->role), json_object_get(j, "role"));
    copy_str(i->username, sizeof(i->username), json_object_get(j, "username"));
    copy_str(i->accessor, sizeof(i->accessor), json_object_get(j, "accessor"));
    copy_str(i->last_error, sizeof(i->last_error), json_object_get(j, "last_error"));
    i->issued = json_integer_value(json_object_get(j, "issued"));
    i->expires = json_integer_value(json_object_get(j, "expires"));
    i->max_expires = json_integer_value(json_object_get(j, "max_expires"));
    i->last_renewal = json_integer_value(json_object_get(j, "last_renewal"));
    i->failures = (int)json_integer_value(json_object_get(j, "failures"));
    i->irrevocable = json_is_true(json_object_get(j, "irrevocable"));
    json_decref(j);
    return 0;
}

/* ---- open, load ---- */

int
leases_open(struct barrier *br, const struct lease_ops *ops, struct leases **out,
            struct rk_error *err)
{
    struct leases *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (m == NULL || (m->buckets = calloc(NBUCKETS_MIN, sizeof(*m->buckets))) == NULL ||
        timerheap_new(&m->heap, err) != 0) {
        if (m != NULL)
            free(m->buckets);
        free(m);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    m->nbuckets = NBUCKETS_MIN;
    m->br = br;
    m->ops = *ops;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    *out = m;
    return 0;
}

struct load_ctx {
    struct leases *m;
    struct rk_error *err;
    size_t n, bad;
};

static int
load_one(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    struct load_ctx *c = arg;
    struct secret *v = NULL;
    struct lease *l;
    struct rk_error e = {0};
    int r;

    (void)val, (void)vlen, (void)rev;
    if ((r = barrier_get(c->m->br, key, &v, NULL, &e)) != 0) {
        if (r == -RK_ENOTFOUND)
            return 0;
        *c->err = e;
        return r;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        secret_free(v);
        return rk_error_set(c->err, RK_ENOMEM, "out of memory");
    }
    l->timer = TIMER_ID_NONE;
    r = record_parse(v->data, v->len, &l->i);
    secret_free(v);
    if (r != 0 || find(c->m, l->i.id) != NULL) {
        log_warn("leases: the record %s does not parse; it is left in the store", key);
        c->bad++;
        free(l);
        return 0;
    }
    pthread_mutex_lock(&c->m->mu);
    r = insert(c->m, l);
    if (r == 0 && !l->i.irrevocable)
        r = schedule(c->m, l, l->i.expires);
    pthread_mutex_unlock(&c->m->mu);
    if (r != 0) {
        free(l);
        return rk_error_set(c->err, RK_ENOMEM, "out of memory");
    }
    c->n++;
    return 0;
}

int
leases_load(struct leases *m, struct rk_error *err)
{
    struct load_ctx c = {m, err, 0, 0};
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
    r = barrier_list(m->br, KEY_PREFIX, NULL, 0, load_one, &c, err);
    pthread_mutex_lock(&m->mu);
    m->loading = 0;
    m->loaded = r == 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (r == 0 && (c.n > 0 || c.bad > 0))
        log_info("leases: %zu lease%s loaded (%zu irrevocable)", c.n, c.n == 1 ? "" : "s",
                 m->nirrevocable);
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

/* ---- outcomes of a revocation ---- */

/* Called with m->mu held, l->busy set. Returns 1 when l was freed. */
static int
revoked(struct leases *m, struct lease *l, int r, int force, const struct rk_error *e)
{
    struct rk_error e2 = {0};
    int64_t now = time_now();

    l->busy = 0;
    if (r == 0 || force) {
        if (r != 0)
            log_warn("leases: %s: revoke-force drops the record although the revocation failed "
                     "(%s); drop login %s by hand",
                     l->i.id, e->msg, l->i.username);
        if (record_del(m, l->i.id, &e2) != 0 && e2.code != RK_ENOTFOUND) {
            log_warn("leases: %s: revoked, but its record stays: %s (retried)", l->i.id, e2.msg);
            (void)schedule(m, l, now + RETRY_BASE);
            return 0;
        }
        unlink_lease(m, l);
        free(l);
        return 1;
    }
    l->i.failures++;
    snprintf(l->i.last_error, sizeof(l->i.last_error), "%s", e->msg);
    if (l->i.failures >= LEASE_MAX_FAILURES) {
        if (!l->i.irrevocable)
            m->nirrevocable++;
        l->i.irrevocable = 1;
        unschedule(m, l);
        log_error("leases: %s (login %s) is irrevocable after %d failed revocations: %s; "
                  "retry with `rekey lease revoke %s` or sys/leases/revoke-force",
                  l->i.id, l->i.username, l->i.failures, e->msg, l->i.id);
    } else {
        struct backoff_policy p = {RETRY_BASE, 2, RETRY_CAP, 10};
        int64_t d = backoff_delay(&p, l->i.failures);
        (void)schedule(m, l, now + d);
        log_warn("leases: revoking %s failed (%s); try %d of %d in %llds", l->i.id, e->msg,
                 l->i.failures + 1, LEASE_MAX_FAILURES, (long long)d);
    }
    if (record_put(m, &l->i, &e2) != 0)
        log_warn("leases: %s: the failure count was not stored: %s", l->i.id, e2.msg);
    return 0;
}

/* Revokes l (m->mu held; released during the call). */
static int
revoke_locked(struct leases *m, struct lease *l, int force, struct rk_error *err)
{
    struct lease_info copy = l->i;
    struct rk_error e = {0};
    int r;

    l->busy = 1;
    unschedule(m, l);
    pthread_mutex_unlock(&m->mu);
    r = m->ops.revoke(m->ops.ctx, &copy, &e);
    pthread_mutex_lock(&m->mu);
    revoked(m, l, r, force, &e);
    if (r != 0 && err != NULL)
        *err = e;
    return force ? 0 : r;
}

/* ---- the thread ---- */

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
        struct timer t;
        uint32_t id;
        int64_t now = time_now();

        if (timerheap_peek(m->heap, &t, &id) != 0) {
            pthread_cond_wait(&m->cv, &m->mu);
            continue;
        }
        if (t.due_ms > now * 1000) {
            struct timespec ts;
            int64_t wait = t.due_ms / 1000 - now;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait > 0 ? wait : 1);
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
            continue;
        }
        {
            struct lease *l = m->slots[t.index];
            if (l == NULL || l->busy) { /* stale: should not happen; drop the timer */
                (void)timerheap_remove(m->heap, id);
                continue;
            }
            log_info("leases: %s expired; revoking login %s", l->i.id, l->i.username);
            (void)revoke_locked(m, l, 0, NULL);
        }
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
        else
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
    m->running = 0;
    m->stop = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (running)
        pthread_join(m->th, NULL);
}

void
leases_close(struct leases *m)
{
    if (m == NULL)
        return;
    leases_stop(m);
    for (size_t k = 0; k < m->nbuckets; k++)
        for (struct lease *l = m->buckets[k], *nx; l != NULL; l = nx) {
            nx = l->next;
            free(l);
        }
    free(m->buckets);
    free(m->slots);
    free(m->freeslots);
    timerheap_free(m->heap);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

/* ---- requests ---- */

int
leases_add(struct leases *m, const struct lease_info *i, struct rk_error *err)
{
    struct lease *l;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    l->i = *i;
    l->i.failures = 0;
    l->i.irrevocable = 0;
    l->i.last_error[0] = '\0';
    l->timer = TIMER_ID_NONE;
    pthread_mutex_lock(&m->mu);
    if (find(m, i->id) != NULL) {
        pthread_mutex_unlock(&m->mu);
        free(l);
        return rk_error_set(err, RK_EEXISTS, "lease %s exists", i->id);
    }
    if ((r = record_put(m, &l->i, err)) == 0 && (r = insert(m, l)) == 0 &&
        (r = schedule(m, l, l->i.expires)) != 0)
        unlink_lease(m, l);
    pthread_mutex_unlock(&m->mu);
    if (r != 0) {
        free(l);
        if (err->code == 0)
            rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    return r;
}

int
leases_forget(struct leases *m, const char *id, struct rk_error *err)
{
    struct lease *l;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    if ((l = find(m, id)) == NULL) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_ENOTFOUND, "no lease %s", id);
    }
    if ((r = record_del(m, id, err)) == 0) {
        unlink_lease(m, l);
        free(l);
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

int
leases_lookup(struct leases *m, const char *id, struct lease_info *out, struct rk_error *err)
{
    struct lease *l;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    if ((l = find(m, id)) != NULL)
        *out = l->i;
    pthread_mutex_unlock(&m->mu);
    return l != NULL ? 0 : rk_error_set(err, RK_ENOTFOUND, "lease not found");
}

int
leases_renew(struct leases *m, const char *id, int64_t increment, int64_t default_ttl,
             int64_t sys_max, int64_t now, struct lease_info *out, struct rk_error *err)
{
    struct lease *l;
    struct lease_info copy;
    int64_t exp, cap;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    if (sys_max <= 0)
        sys_max = LEASE_SYS_MAX_TTL;
    pthread_mutex_lock(&m->mu);
    if ((l = find(m, id)) == NULL) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_ENOTFOUND, "lease not found");
    }
    if (l->busy || l->i.irrevocable) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_EINVAL, "lease %s is %s and cannot be renewed", id,
                            l->busy ? "being revoked" : "irrevocable");
    }
    if (l->i.expires <= now) {
        pthread_mutex_unlock(&m->mu);
        return rk_error_set(err, RK_EINVAL, "lease expired");
    }
    if (increment <= 0)
        increment = default_ttl > 0 ? default_ttl : l->i.expires - l->i.issued;
    exp = now + increment;
    cap = l->i.issued + sys_max;
    if (l->i.max_expires > 0 && l->i.max_expires < cap)
        cap = l->i.max_expires;
    if (exp > cap)
        exp = cap;
    l->busy = 1;
    copy = l->i;
    pthread_mutex_unlock(&m->mu);
    r = exp == copy.expires ? 0 : m->ops.renew(m->ops.ctx, &copy, exp, err);
    pthread_mutex_lock(&m->mu);
    l->busy = 0;
    if (r == 0) {
        l->i.expires = exp;
        l->i.last_renewal = now;
        if ((r = record_put(m, &l->i, err)) == 0)
            (void)schedule(m, l, exp);
        *out = l->i;
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

int
leases_revoke(struct leases *m, const char *id, int force, struct rk_error *err)
{
    struct lease *l;
    int r;

    if ((r = ready(m, err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    if ((l = find(m, id)) == NULL)
        r = rk_error_set(err, RK_ENOTFOUND, "lease not found");
    else if (l->busy)
        r = rk_error_set(err, RK_EBUSY, "lease %s is being revoked or renewed", id);
    else
        r = revoke_locked(m, l, force, err);
    pthread_mutex_unlock(&m->mu);
    return r;
}

int
leases_revoke_prefix(struct leases *m, const char *prefix, int force, size_t *nrevoked,
                     size_t *nfailed, struct rk_error *err)
{
    size_t plen = strlen(prefix), ok = 0, bad = 0, nids = 0, cap = 0;
    char **ids = NULL;
    int r, last = 0;

    if (plen == 0)
        return rk_error_set(err, RK_EINVAL, "an empty prefix is refused");
    if ((r = ready(m, err)) != 0)
        return r;
    /* The ids first (one pass under the lock), then one revocation at a time: reads and
     * renewals of other leases go on between two. */
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < m->nbuckets && r == 0; k++)
        for (struct lease *l = m->buckets[k]; l != NULL; l = l->next) {
            if (strncmp(l->i.id, prefix, plen) != 0)
                continue;
            if (nids == cap) {
                char **v = realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof(*v));
                if (v == NULL) {
                    r = rk_error_set(err, RK_ENOMEM, "out of memory");
                    break;
                }
                ids = v;
            }
            if ((ids[nids] = strdup(l->i.id)) == NULL) {
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                break;
            }
            nids++;
        }
    pthread_mutex_unlock(&m->mu);
    for (size_t k = 0; k < nids; k++) {
        struct rk_error e = {0};
        if (r == 0) {
            int x = leases_revoke(m, ids[k], force, &e);
            if (x == 0)
                ok++;
            else if (x != -RK_ENOTFOUND) {
                bad++;
                last = x;
                *err = e;
            }
        }
        free(ids[k]);
    }
    free(ids);
    if (nrevoked != NULL)
        *nrevoked = ok;
    if (nfailed != NULL)
        *nfailed = bad;
    return r != 0 ? r : last;
}

int
leases_each(struct leases *m, const char *prefix, int (*cb)(void *, const struct lease_info *),
            void *arg)
{
    struct rk_error err = {0};
    size_t plen = strlen(prefix);
    int r, stop = 0;

    if ((r = ready(m, &err)) != 0)
        return r;
    pthread_mutex_lock(&m->mu);
    for (size_t k = 0; k < m->nbuckets && !stop; k++)
        for (struct lease *l = m->buckets[k]; l != NULL && !stop; l = l->next)
            if (strncmp(l->i.id, prefix, plen) == 0)
                stop = cb(arg, &l->i);
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
