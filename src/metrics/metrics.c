/* metrics.c: the counters of this process, fed by the event stream, and their rendering.
 * See metrics.h; the per-entry families read from the store are in secrets.c.
 *
 * Requests: a table of (route family, status) series, each a latency histogram whose count is
 * also rekey_http_requests_total. A publisher finds its series without a lock by scanning the
 * published prefix of the table (a handful of entries: route families times the statuses seen);
 * a pair seen for the first time is appended under the mutex and published with a release
 * store. The table is bounded: past MET_REQ_MAX pairs, requests count under route="other".
 *
 * Rotations: per path (rekey_rotation_total{path,result}) in a hash table under the mutex, and
 * per operation and result (rekey_operations_total{op,result}); results are rare next to
 * requests. Lock order: m->mu only; never held while calling out. */
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/timeutil.h"

#ifndef REKEY_VERSION
#define REKEY_VERSION "0"
#endif

#define MET_REQ_MAX 128  /* (route, status) pairs before route="other" */
#define MET_OPS_MAX 64   /* (operation, result) pairs before op="other" */
#define MET_LABEL_MAX 32 /* bytes of a route, operation or result label kept (NUL included) */

/* API latency: 0.5 ms to 10 s (a KV read answers in well under a millisecond, a rotation through
 * the API waits for its hooks). */
static const int64_t req_le_us[] = {500,    1000,   2500,   5000,    10000,   25000,   50000,
                                    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
static const char *const req_le_txt[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                         "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                         "1",      "2.5",   "5",      "10"};
static const struct prom_hist_spec req_spec = {sizeof(req_le_us) / sizeof(req_le_us[0]), req_le_us,
                                               req_le_txt};

/* Rotation duration: 10 ms to 10 min (hooks may wait for a rollout). */
static const int64_t rot_le_us[] = {10000,     50000,     100000,   500000,   1000000,
                                    2500000,   5000000,   10000000, 30000000, 60000000,
                                    120000000, 300000000, 600000000};
static const char *const rot_le_txt[] = {"0.01", "0.05", "0.1", "0.5", "1",   "2.5", "5",
                                         "10",   "30",   "60",  "120", "300", "600"};
static const struct prom_hist_spec rot_spec = {sizeof(rot_le_us) / sizeof(rot_le_us[0]), rot_le_us,
                                               rot_le_txt};

/* The results a rotation reports (the engine's history: ok, rolled-back when it failed and was
 * undone, pending when its target did not answer; failed and unavailable as events.h names
 * outcomes); anything else counts as "other". The first two are written for every entry that
 * has a result, so that rate() sees a failure's series before the first failure. */
static const char *const results[] = {"ok",      "rolled-back", "failed",
                                      "pending", "unavailable", "other"};
#define NRESULTS (sizeof(results) / sizeof(results[0]))
#define RESULT_OTHER (NRESULTS - 1)

struct req_series {
    char route[MET_LABEL_MAX];
    int code;
    struct prom_hist lat;
};

struct ops_series {
    char op[MET_LABEL_MAX], result[MET_LABEL_MAX];
    uint64_t n; /* under mu */
};

struct rot_path {
    char *path;
    uint64_t n[NRESULTS];
};

struct metrics {
    pthread_mutex_t mu;
    struct req_series req[MET_REQ_MAX + 1]; /* [MET_REQ_MAX]: route="other" */
    _Atomic size_t nreq;                    /* published entries of req */

    /* under mu */
    struct ops_series ops[MET_OPS_MAX + 1]; /* [MET_OPS_MAX]: op="other", result="other" */
    size_t nops;
    struct rot_path *paths; /* in order of first result */
    size_t npaths, cap_paths;
    size_t *index; /* open addressing over paths: slot -> index + 1, 0 = empty */
    size_t nindex; /* a power of two, >= 2 * npaths */

    struct prom_hist rot_lat; /* lock-free */
    int64_t start_us;
    int sub_id; /* -1 when not subscribed */
};

static _Atomic uint64_t audit_failures;

void
metrics_audit_failure(void)
{
    atomic_fetch_add_explicit(&audit_failures, 1, memory_order_relaxed);
}

uint64_t
metrics_audit_failures(void)
{
    return atomic_load_explicit(&audit_failures, memory_order_relaxed);
}

int
metrics_new(struct metrics **out, struct rk_error *err)
{
    struct metrics *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (m == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    memcpy(m->req[MET_REQ_MAX].route, "other", sizeof("other"));
    memcpy(m->ops[MET_OPS_MAX].op, "other", sizeof("other"));
    memcpy(m->ops[MET_OPS_MAX].result, "other", sizeof("other"));
    m->start_us = time_now_us();
    m->sub_id = -1;
    *out = m;
    return 0;
}

void
metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    if (m->sub_id >= 0)
        events_unsubscribe(m->sub_id);
    for (size_t i = 0; i < m->npaths; i++)
        free(m->paths[i].path);
    free(m->paths);
    free(m->index);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int
metrics_subscribe(struct metrics *m, struct rk_error *err)
{
    int id;

    if (m->sub_id >= 0)
        return 0;
    id = events_subscribe(EV_MASK(EV_API_RESPONSE) | EV_MASK(EV_ROTATION_RESULT), metrics_on_event,
                          m);
    if (id < 0)
        return rk_error_set(err, -id, "metrics: no event subscriber slot left");
    m->sub_id = id;
    return 0;
}

/* Copies s (NULL: def) into a label buffer, cut at MET_LABEL_MAX - 1 bytes. */
static void
label_copy(char *dst, const char *s, const char *def)
{
    size_t n;

    if (s == NULL || s[0] == '\0')
        s = def;
    n = strlen(s);
    if (n > MET_LABEL_MAX - 1)
        n = MET_LABEL_MAX - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Compares s (NULL: def) with a label kept by label_copy. */
static int
label_eq(const char *kept, const char *s, const char *def)
{
    size_t n;

    if (s == NULL || s[0] == '\0')
        s = def;
    n = strlen(s);
    if (n > MET_LABEL_MAX - 1)
        n = MET_LABEL_MAX - 1;
    return strncmp(kept, s, n) == 0 && kept[n] == '\0';
}

static struct req_series *
req_find(struct metrics *m, const char *route, int code)
{
    size_t n = atomic_load_explicit(&m->nreq, memory_order_acquire);
    struct req_series *s = NULL;

    for (size_t i = 0; i < n; i++)
        if (m->req[i].code == code && label_eq(m->req[i].route, route, "none"))
            return &m->req[i];
    pthread_mutex_lock(&m->mu);
    /* Another thread may have added it since the scan. */
    n = atomic_load_explicit(&m->nreq, memory_order_relaxed);
    for (size_t i = 0; i < n && s == NULL; i++)
        if (m->req[i].code == code && label_eq(m->req[i].route, route, "none"))
            s = &m->req[i];
    if (s == NULL && n < MET_REQ_MAX) {
        s = &m->req[n];
        label_copy(s->route, route, "none");
        s->code = code;
        atomic_store_explicit(&m->nreq, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->mu);
    return s != NULL ? s : &m->req[MET_REQ_MAX];
}

static size_t
result_index(const char *outcome)
{
    for (size_t i = 0; i < RESULT_OTHER; i++)
        if (outcome != NULL && strcmp(outcome, results[i]) == 0)
            return i;
    return RESULT_OTHER;
}

/* FNV-1a: the path table's hash. */
static size_t
hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

/* Rebuilds the index at nslots (a power of two). Under mu. */
static int
index_grow(struct metrics *m, size_t nslots)
{
    size_t *ix = calloc(nslots, sizeof(*ix));

    if (ix == NULL)
        return -RK_ENOMEM;
    for (size_t i = 0; i < m->npaths; i++) {
        size_t h = hash_str(m->paths[i].path) & (nslots - 1);
        while (ix[h] != 0)
            h = (h + 1) & (nslots - 1);
        ix[h] = i + 1;
    }
    free(m->index);
    m->index = ix;
    m->nindex = nslots;
    return 0;
}

/* The counters of path, added when new. NULL on allocation failure. Under mu. */
static struct rot_path *
path_get(struct metrics *m, const char *path)
{
    size_t h;
    char *copy;

    if (m->nindex > 0) {
        for (h = hash_str(path) & (m->nindex - 1); m->index[h] != 0; h = (h + 1) & (m->nindex - 1))
            if (strcmp(m->paths[m->index[h] - 1].path, path) == 0)
                return &m->paths[m->index[h] - 1];
    }
    if (m->npaths == m->cap_paths) {
        size_t ncap = m->cap_paths ? m->cap_paths * 2 : 16;
        struct rot_path *np = realloc(m->paths, ncap * sizeof(*np));
        if (np == NULL)
            return NULL;
        m->paths = np;
        m->cap_paths = ncap;
    }
    if ((m->npaths + 1) * 2 > m->nindex && index_grow(m, m->nindex ? m->nindex * 2 : 32) != 0)
        return NULL;
    if ((copy = strdup(path)) == NULL)
        return NULL;
    memset(&m->paths[m->npaths], 0, sizeof(m->paths[0]));
    m->paths[m->npaths].path = copy;
    for (h = hash_str(path) & (m->nindex - 1); m->index[h] != 0; h = (h + 1) & (m->nindex - 1))
        ;
    m->index[h] = ++m->npaths;
    return &m->paths[m->npaths - 1];
}

/* Under mu. */
static void
ops_count(struct metrics *m, const char *op, const char *result)
{
    struct ops_series *s = NULL;

    for (size_t i = 0; i < m->nops && s == NULL; i++)
        if (label_eq(m->ops[i].op, op, "rotate") && label_eq(m->ops[i].result, result, "unknown"))
            s = &m->ops[i];
    if (s == NULL && m->nops < MET_OPS_MAX) {
        s = &m->ops[m->nops++];
        label_copy(s->op, op, "rotate");
        label_copy(s->result, result, "unknown");
    }
    if (s == NULL)
        s = &m->ops[MET_OPS_MAX];
    s->n++;
}

/* A rotation is an EV_ROTATION_RESULT whose operation is "rotate" (or not said). */
static int
is_rotation(const struct rk_event *ev)
{
    return ev->operation == NULL || strcmp(ev->operation, "rotate") == 0;
}

int
metrics_on_event(void *arg, const struct rk_event *ev, struct rk_error *err)
{
    struct metrics *m = arg;

    (void)err;
    if (ev->type == EV_API_RESPONSE) {
        prom_hist_observe(&req_find(m, ev->route, ev->status)->lat, &req_spec, ev->duration_us);
    } else if (ev->type == EV_ROTATION_RESULT) {
        struct rot_path *p;
        /* "started" is not a result: only a rotation's end is counted. */
        if (ev->outcome != NULL && strcmp(ev->outcome, "started") == 0)
            return 0;
        pthread_mutex_lock(&m->mu);
        ops_count(m, ev->operation, ev->outcome);
        if (is_rotation(ev) && ev->path != NULL && (p = path_get(m, ev->path)) != NULL)
            p->n[result_index(ev->outcome)]++;
        pthread_mutex_unlock(&m->mu);
        if (is_rotation(ev))
            prom_hist_observe(&m->rot_lat, &rot_spec, ev->duration_us);
    }
    return 0;
}

/* --- the server's instance --- */

static pthread_mutex_t server_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metrics *_Atomic server_m;

int
metrics_server_start(struct rk_error *err)
{
    struct metrics *m = NULL;
    int r = 0;

    pthread_mutex_lock(&server_mu);
    if (atomic_load(&server_m) == NULL) {
        if ((r = metrics_new(&m, err)) == 0 && (r = metrics_subscribe(m, err)) == 0)
            atomic_store(&server_m, m);
        else
            metrics_free(m);
    }
    pthread_mutex_unlock(&server_mu);
    return r;
}

void
metrics_server_stop(void)
{
    struct metrics *m;

    pthread_mutex_lock(&server_mu);
    m = atomic_exchange(&server_m, NULL);
    pthread_mutex_unlock(&server_mu);
    metrics_free(m);
}

struct metrics *
metrics_server(void)
{
    return atomic_load(&server_m);
}

/* --- rendering --- */

void
metrics_render_build(struct prom_buf *b)
{
    prom_family(b, "rekey_build_info", "gauge",
                "Always 1; the labels say which rekey runs (test_switches: a test build that "
                "honours REKEY_NOW and friends, never for production).");
    prom_puts(b, "rekey_build_info{version=\"");
    prom_label_value(b, REKEY_VERSION);
#ifdef REKEY_TEST_SWITCHES
    prom_puts(b, "\",test_switches=\"true\"} 1\n");
#else
    prom_puts(b, "\",test_switches=\"false\"} 1\n");
#endif
}

static int
cmp_req(const void *a, const void *b)
{
    const struct req_series *x = *(const struct req_series *const *)a;
    const struct req_series *y = *(const struct req_series *const *)b;
    int c = strcmp(x->route, y->route);

    return c != 0 ? c : (x->code > y->code) - (x->code < y->code);
}

static uint64_t
hist_count(const struct prom_hist *h, const struct prom_hist_spec *spec)
{
    uint64_t n = 0;

    for (size_t i = 0; i <= spec->n; i++)
        n += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    return n;
}

/* `route="kv",code="200"` into a small buffer. */
static void
req_labels(struct prom_buf *lb, const struct req_series *s)
{
    lb->len = 0;
    prom_puts(lb, "route=\"");
    prom_label_value(lb, s->route);
    prom_puts(lb, "\",code=\"");
    prom_i64(lb, s->code);
    prom_put(lb, "\"\0", 2);
}

static void
render_requests(const struct metrics *m, struct prom_buf *b)
{
    const struct req_series *v[MET_REQ_MAX + 1];
    struct prom_buf lb = {0};
    size_t n = 0, total;

    if (m != NULL) {
        total = atomic_load_explicit(&m->nreq, memory_order_acquire);
        for (size_t i = 0; i < total; i++)
            v[n++] = &m->req[i];
        if (hist_count(&m->req[MET_REQ_MAX].lat, &req_spec) > 0)
            v[n++] = &m->req[MET_REQ_MAX];
        qsort(v, n, sizeof(v[0]), cmp_req);
    }
    prom_family(b, "rekey_http_requests_total", "counter",
                "API requests answered, by route family and HTTP status code.");
    for (size_t i = 0; i < n; i++) {
        req_labels(&lb, v[i]);
        prom_sample_start(b, "rekey_http_requests_total", lb.oom ? NULL : lb.p);
        prom_u64(b, hist_count(&v[i]->lat, &req_spec));
        prom_put(b, "\n", 1);
    }
    prom_family(b, "rekey_http_request_duration_seconds", "histogram",
                "Time from a request's arrival to its answer, by route family and status code.");
    for (size_t i = 0; i < n; i++) {
        req_labels(&lb, v[i]);
        prom_hist_write(b, "rekey_http_request_duration_seconds", lb.oom ? NULL : lb.p, &v[i]->lat,
                        &req_spec);
    }
    prom_buf_free(&lb);
}

/* Under m->mu. */
static void
render_rotations_locked(const struct metrics *m, struct prom_buf *b)
{
    prom_family(b, "rekey_rotation_total", "counter",
                "Rotations this process ran, by entry and result (ok, rolled-back: failed and "
                "undone, pending: the target did not answer, other); ok and rolled-back are "
                "written once an entry has a result.");
    for (size_t i = 0; m != NULL && i < m->npaths; i++) {
        const struct rot_path *p = &m->paths[i];
        for (size_t k = 0; k < NRESULTS; k++) {
            if (p->n[k] == 0 && k > 1)
                continue;
            prom_puts(b, "rekey_rotation_total{path=\"");
            prom_label_value(b, p->path);
            prom_puts(b, "\",result=\"");
            prom_puts(b, results[k]);
            prom_puts(b, "\"} ");
            prom_u64(b, p->n[k]);
            prom_put(b, "\n", 1);
        }
    }
    prom_family(b, "rekey_operations_total", "counter",
                "Rotation engine operations this process ran (rotate, rollback, revoke, finish, "
                "done, recover), by result.");
    for (size_t i = 0; m != NULL && i <= MET_OPS_MAX; i++) {
        const struct ops_series *s = &m->ops[i];
        if (i >= m->nops && (i < MET_OPS_MAX || s->n == 0))
            continue;
        prom_puts(b, "rekey_operations_total{op=\"");
        prom_label_value(b, s->op);
        prom_puts(b, "\",result=\"");
        prom_label_value(b, s->result);
        prom_puts(b, "\"} ");
        prom_u64(b, s->n);
        prom_put(b, "\n", 1);
    }
}

static void (*_Atomic leases_fn)(size_t *total, size_t *irrevocable);

void
metrics_leases_source(void (*fn)(size_t *total, size_t *irrevocable))
{
    leases_fn = fn;
}

/* The lease gauges, when a lease manager runs. */
static void
render_leases(struct prom_buf *b)
{
    void (*fn)(size_t *, size_t *) = leases_fn;
    size_t total = 0, irrevocable = 0;

    if (fn == NULL)
        return;
    fn(&total, &irrevocable);
    prom_family(b, "rekey_leases", "gauge", "Leases held by the lease manager (database creds).");
    prom_sample_i64(b, "rekey_leases", NULL, (int64_t)total);
    prom_family(b, "rekey_leases_irrevocable", "gauge",
                "Leases whose revocation failed too often: retried only on command.");
    prom_sample_i64(b, "rekey_leases_irrevocable", NULL, (int64_t)irrevocable);
}

void
metrics_render_server(struct metrics *m, const struct metrics_seal *seal, struct prom_buf *b)
{
    static const struct prom_hist empty;

    if (m != NULL) {
        prom_family(b, "rekey_server_start_time_seconds", "gauge",
                    "When this server process started, in seconds since the epoch.");
        prom_sample_start(b, "rekey_server_start_time_seconds", NULL);
        prom_seconds_us(b, m->start_us);
        prom_put(b, "\n", 1);
    }
    if (seal != NULL) {
        prom_family(b, "rekey_initialized", "gauge", "1 when the store is initialised.");
        prom_sample_i64(b, "rekey_initialized", NULL, seal->initialized ? 1 : 0);
        prom_family(b, "rekey_sealed", "gauge",
                    "1 while the store is sealed (or not initialised): nothing is rotated.");
        prom_sample_i64(b, "rekey_sealed", NULL, seal->sealed || !seal->initialized ? 1 : 0);
    }
    render_requests(m, b);
    if (m != NULL)
        pthread_mutex_lock(&m->mu);
    render_rotations_locked(m, b);
    if (m != NULL)
        pthread_mutex_unlock(&m->mu);
    prom_family(b, "rekey_rotation_duration_seconds", "histogram",
                "Duration of the rotations this process ran, from start to result.");
    prom_hist_write(b, "rekey_rotation_duration_seconds", NULL, m != NULL ? &m->rot_lat : &empty,
                    &rot_spec);
    render_leases(b);
    prom_family(b, "rekey_audit_failures_total", "counter",
                "Times an audit sink failed to record an entry (a request that no sink could "
                "record was refused with 500).");
    prom_sample_start(b, "rekey_audit_failures_total", NULL);
    prom_u64(b, metrics_audit_failures());
    prom_put(b, "\n", 1);
}
