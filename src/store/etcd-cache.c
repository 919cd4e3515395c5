/* etcd-cache.c: the etcd backend's read cache (etcd.c sends the requests).
 *
 * Reads are linearizable: a read after a write acknowledged by any member sees it. They are
 * answered from a read cache kept by a watch once it has caught up with etcd's revision at the
 * read's start (docs/etcd.md):
 *
 * A copy of the whole keyspace (key -> value, mod_revision), loaded by one range at revision L
 * and kept up to date by one watch stream from L + 1 (a background thread, "the watcher"; on a
 * compaction, a cancelled or broken stream: the cache is dropped, loaded again, watched again).
 * applied is the revision the cache holds every change through: the load's, then the
 * mod_revision of each event applied (the watch covers every key, so every revision etcd makes
 * comes as events; one revision's events come in one message).
 *
 * No stale read: a get or list first asks etcd its revision R with a small linearizable request
 * begun after the read began (read_index: one request serves every read waiting when it is sent),
 * then waits until applied >= R (at most ETCD_CACHE_WAIT_MS) and answers from the cache: every
 * write acknowledged by any member before the read began has a revision <= R. On a timeout (the
 * stream is stuck: the watcher is told to reconnect) or while the cache is loading, the read goes
 * to etcd directly. A read is thus one tiny round trip shared by concurrent readers instead of a
 * range per key.
 *
 * Memory: keys and values as etcd holds them (values are barrier ciphertext), plus ~48 bytes a
 * key; REKEY_ETCD_CACHE_MB (default 512) caps it: past it the cache turns itself off and every
 * read goes to etcd; REKEY_ETCD_CACHE_MB=0 never starts it. The watcher starts at the first read,
 * so a short-lived CLI command that only writes never loads the keyspace. */
#include "store/etcd-int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/secret.h"

#define ETCD_CACHE_WAIT_MS 1000
#define ETCD_CACHE_MB_DEFAULT 512

/* The index of key in the cache, or where it would go (*found 0). Under cmu. */
size_t
etcd_cache_find(struct etcd *e, const char *key, int *found)
{
    size_t lo = 0, hi = e->nents;

    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->ents[mid].key, key);

        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Sets key to (val, vlen, mod_rev) in the cache, taking val (malloc'd). Under cmu. */
static int
c_put(struct etcd *e, const char *key, unsigned char *val, size_t vlen, int64_t mod_rev)
{
    int found;
    size_t i = etcd_cache_find(e, key, &found);

    if (found) {
        e->bytes = e->bytes - e->ents[i].vlen + vlen;
        free(e->ents[i].val);
        e->ents[i].val = val;
        e->ents[i].vlen = vlen;
        e->ents[i].mod_rev = mod_rev;
        return 0;
    }
    if (e->nents == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 256;
        struct centry *n = realloc(e->ents, cap * sizeof(*n));

        if (n == NULL)
            return -1;
        e->ents = n;
        e->cap = cap;
    }
    char *k = strdup(key);

    if (k == NULL)
        return -1;
    memmove(e->ents + i + 1, e->ents + i, (e->nents - i) * sizeof(*e->ents));
    e->ents[i] = (struct centry){k, val, vlen, mod_rev};
    e->nents++;
    e->bytes += strlen(key) + vlen + sizeof(struct centry) + 16;
    return 0;
}

/* Removes key from the cache. Under cmu. */
static void
c_del(struct etcd *e, const char *key)
{
    int found;
    size_t i = etcd_cache_find(e, key, &found);

    if (!found)
        return;
    e->bytes -= strlen(key) + e->ents[i].vlen + sizeof(struct centry) + 16;
    free(e->ents[i].key);
    free(e->ents[i].val);
    memmove(e->ents + i, e->ents + i + 1, (e->nents - i - 1) * sizeof(*e->ents));
    e->nents--;
}

/* Empties the cache and marks it invalid. Under cmu. */
static void
c_clear(struct etcd *e)
{
    for (size_t i = 0; i < e->nents; i++) {
        free(e->ents[i].key);
        free(e->ents[i].val);
    }
    free(e->ents);
    e->ents = NULL;
    e->nents = e->cap = e->bytes = 0;
    e->applied = 0;
}

/* Waits on ccv for at most ms milliseconds. Under cmu. */
static void
c_wait_ms(struct etcd *e, long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&e->ccv, &e->cmu, &ts);
}

/* Makes the watcher's stream end now (it then reloads, or stops when cstop). Under cmu. */
static void
c_break_stream(struct etcd *e)
{
    if (e->wsock >= 0)
        shutdown(e->wsock, SHUT_RDWR);
}

static int
load_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct etcd *e = arg;
    unsigned char *v = malloc(vlen + 1);
    int r = 0;

    if (v == NULL)
        return -RK_ENOMEM;
    memcpy(v, val, vlen);
    pthread_mutex_lock(&e->cmu);
    /* etcd_list_direct gives rekey's revision: back to etcd's */
    if (c_put(e, key, v, vlen, mod_rev + 1) != 0) {
        free(v);
        r = -RK_ENOMEM;
    } else if (e->bytes > e->max_bytes) {
        r = -RK_ELIMIT;
    }
    if (e->cstop)
        r = -RK_EUNAVAILABLE;
    pthread_mutex_unlock(&e->cmu);
    return r;
}

/* The watch stream's state. */
struct wstream {
    struct etcd *e;
    struct buf line; /* what came after the last newline */
    int failed;      /* an error, cancellation or compaction came: reload */
};

/* Applies one message of the watch stream. Returns 0, or -1 when the stream must end. */
static int
w_apply(struct wstream *ws, json_t *msg)
{
    struct etcd *e = ws->e;
    json_t *res = json_object_get(msg, "result"), *evs;
    int64_t top = 0;
    int r = 0;

    if (res == NULL || json_object_get(msg, "error") != NULL)
        return -1;
    if (json_is_true(json_object_get(res, "canceled")) || etcd_j_i64(res, "compact_revision") != 0)
        return -1;
    evs = json_object_get(res, "events");
    pthread_mutex_lock(&e->cmu);
    for (size_t i = 0; i < json_array_size(evs) && r == 0; i++) {
        json_t *ev = json_array_get(evs, i), *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type"));
        unsigned char *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        int64_t mr = etcd_j_i64(kv, "mod_revision");

        if (etcd_j_unb64(kv, "key", &k, &kl) != 0) {
            r = -1;
        } else if (kl == 0 || memchr(k, '\0', kl) != NULL) {
            /* not a key rekey can name: not cached */
        } else if (type != NULL && strcmp(type, "DELETE") == 0) {
            c_del(e, (const char *)k);
        } else if (etcd_j_unb64(kv, "value", &v, &vl) != 0 ||
                   c_put(e, (const char *)k, v, vl, mr) != 0) {
            free(v);
            r = -1;
        }
        free(k);
        if (mr > top)
            top = mr;
    }
    if (r == 0 && e->bytes > e->max_bytes) {
        e->coff = 1; /* too large: reads go to etcd from now on */
        r = -1;
    }
    if (r == 0 && top > e->applied)
        e->applied = top;
    if (r != 0)
        e->applied = 0;
    pthread_cond_broadcast(&e->ccv);
    pthread_mutex_unlock(&e->cmu);
    return r;
}

static size_t
w_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct wstream *ws = arg;
    size_t n = size * nmemb;
    char *nl;

    if (etcd_on_body(data, size, nmemb, &ws->line) != n)
        return 0;
    while ((nl = memchr(ws->line.p, '\n', ws->line.len)) != NULL) {
        size_t ll = (size_t)(nl - ws->line.p);
        json_t *msg = json_loadb(ws->line.p, ll, 0, NULL);
        int r = msg != NULL ? w_apply(ws, msg) : (ll == 0 ? 0 : -1);

        json_decref(msg);
        memmove(ws->line.p, nl + 1, ws->line.len - ll - 1);
        ws->line.len -= ll + 1;
        ws->line.p[ws->line.len] = '\0';
        if (r != 0) {
            ws->failed = 1;
            return 0;
        }
    }
    return n;
}

static curl_socket_t
w_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct etcd *e = arg;
    curl_socket_t s;

    (void)purpose;
    s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    pthread_mutex_lock(&e->cmu);
    e->wsock = s;
    if (e->cstop && s >= 0)
        shutdown(s, SHUT_RDWR);
    pthread_mutex_unlock(&e->cmu);
    return s;
}

static int
w_close_socket(void *arg, curl_socket_t s)
{
    struct etcd *e = arg;

    pthread_mutex_lock(&e->cmu);
    if (e->wsock == s)
        e->wsock = -1;
    pthread_mutex_unlock(&e->cmu);
    return close(s);
}

static int
w_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct etcd *e = arg;
    int stop;

    (void)a, (void)b, (void)c, (void)d;
    pthread_mutex_lock(&e->cmu);
    stop = e->cstop;
    pthread_mutex_unlock(&e->cmu);
    return stop;
}

/* Streams the watch of every key from etcd's revision from, on endpoint ep, applying events
 * until the stream ends (error, cancellation, c_break_stream). */
static void
w_stream(struct etcd *e, size_t ep, int64_t from)
{
    char url[512], auth[1024], body[160];
    struct curl_slist *hdrs = NULL;
    struct wstream ws = {.e = e};
    CURL *h = curl_easy_init();

    if (h == NULL)
        return;
    snprintf(url, sizeof(url), "%s/v3/watch", e->endpoints[ep]);
    /* key "\0" with range_end "\0": every key */
    snprintf(body, sizeof(body),
             "{\"create_request\":{\"key\":\"AA==\",\"range_end\":\"AA==\",\"start_revision\":"
             "\"%lld\"}}",
             (long long)from);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (e->user != NULL) {
        pthread_mutex_lock(&e->lock);
        if (e->token != NULL) {
            snprintf(auth, sizeof(auth), "Authorization: %s", e->token);
            hdrs = curl_slist_append(hdrs, auth);
            secure_wipe(auth, sizeof(auth));
        }
        pthread_mutex_unlock(&e->lock);
    }
    etcd_curl_post(e, h, url, body, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, w_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ws);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, w_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, e);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, w_close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, e);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, w_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, e);
    atomic_store(&e->watch_ep, ep);
    curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(ws.line.p);
}

static void *
watcher(void *arg)
{
    struct etcd *e = arg;
    size_t ep = atomic_load(&e->cur) % e->nendpoints;
    long pause_ms = 50; /* doubles while streams keep ending at once (up to 5 s) */

    pthread_mutex_lock(&e->cmu);
    while (!e->cstop && !e->coff) {
        struct rk_error err = {0};
        int64_t at = 0;
        int r;

        c_clear(e);
        pthread_mutex_unlock(&e->cmu);
        atomic_fetch_add(&e->reloads, 1);
        r = etcd_list_direct(e, "", NULL, 0, 0, load_cb, e, &at, &err);
        pthread_mutex_lock(&e->cmu);
        if (r == -RK_ELIMIT) {
            e->coff = 1;
            break;
        }
        if (r == 0 && at > 0 && !e->cstop) {
            e->applied = at;
            pthread_cond_broadcast(&e->ccv);
            struct timespec t0, t1;

            pthread_mutex_unlock(&e->cmu);
            /* the member that answered the load, then the next one after each broken stream */
            clock_gettime(CLOCK_MONOTONIC, &t0);
            w_stream(e, ep, at + 1);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            ep = (ep + 1) % e->nendpoints;
            pause_ms = t1.tv_sec - t0.tv_sec >= 2 ? 50 : (pause_ms < 2500 ? pause_ms * 2 : 5000);
            pthread_mutex_lock(&e->cmu);
        } else {
            pause_ms = 500; /* not a busy loop when etcd is down */
        }
        if (!e->cstop)
            c_wait_ms(e, pause_ms);
    }
    c_clear(e);
    pthread_cond_broadcast(&e->ccv);
    pthread_mutex_unlock(&e->cmu);
    return NULL;
}

/* Starts the watcher once. Returns 1 when the cache may answer reads. */
static int
cache_on(struct etcd *e)
{
    int on;

    if (e->max_bytes == 0)
        return 0;
    pthread_mutex_lock(&e->cmu);
    if (!e->cstarted && !e->cstop) {
        e->cstarted = pthread_create(&e->watcher, NULL, watcher, e) == 0 ? 1 : -1;
        if (e->cstarted < 0)
            e->coff = 1;
    }
    on = !e->coff && e->cstarted == 1;
    pthread_mutex_unlock(&e->cmu);
    return on;
}

/* etcd's current revision by a small linearizable request sent after this call began (shared
 * with the other reads waiting for one). Returns 0 with *rev, or -RK_E*. */
static int
read_index(struct etcd *e, int64_t *rev, struct rk_error *err)
{
    uint64_t ticket;
    int r = 0;

    pthread_mutex_lock(&e->rmu);
    ticket = ++e->arrived;
    while (e->covered < ticket && r == 0) {
        if (!e->inflight) {
            uint64_t upto = e->arrived; /* every read that began before the request is sent */
            json_t *resp = NULL;
            int64_t got = 0;

            e->inflight = 1;
            pthread_mutex_unlock(&e->rmu);
            r = etcd_call(e, "/v3/kv/range",
                          json_pack("{s:s, s:b}", "key", "AA==", "count_only", 1), 1, &resp, err);
            if (r == 0)
                got = etcd_j_i64(json_object_get(resp, "header"), "revision");
            json_decref(resp);
            pthread_mutex_lock(&e->rmu);
            e->inflight = 0;
            if (r == 0 && got > 0) {
                if (got > e->known)
                    e->known = got;
                if (upto > e->covered)
                    e->covered = upto;
            } else if (r == 0) {
                r = rk_error_set(err, RK_EIO, "etcd sent no revision");
            }
            pthread_cond_broadcast(&e->rcv);
        } else {
            pthread_cond_wait(&e->rcv, &e->rmu);
        }
    }
    *rev = e->known;
    pthread_mutex_unlock(&e->rmu);
    return r;
}

/* Waits until the cache holds every change through etcd's revision rev. Returns 1 with cmu held,
 * or 0 (cmu not held) when it does not within ETCD_CACHE_WAIT_MS. */
static int
cache_catch_up(struct etcd *e, int64_t rev)
{
    struct timespec t0, now;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&e->cmu);
    for (;;) {
        long ms;

        if (e->coff || e->cstop)
            break;
        if (e->applied > 0 && e->applied >= rev)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ms = (now.tv_sec - t0.tv_sec) * 1000L + (now.tv_nsec - t0.tv_nsec) / 1000000L;
        if (ms >= ETCD_CACHE_WAIT_MS) {
            if (e->applied > 0)
                c_break_stream(e); /* a stream that stalls (a stopped member): go elsewhere */
            break;
        }
        c_wait_ms(e, ETCD_CACHE_WAIT_MS - ms);
    }
    pthread_mutex_unlock(&e->cmu);
    return 0;
}

/* Makes the cache ready to answer a read that begins now: 1 with cmu held, or 0 (read etcd). */
int
etcd_cache_ready(struct etcd *e)
{
    struct rk_error err = {0};
    int64_t rev;

    if (!cache_on(e))
        return 0;
    pthread_mutex_lock(&e->cmu);
    int loading = e->applied == 0;
    pthread_mutex_unlock(&e->cmu);
    if (loading || read_index(e, &rev, &err) != 0 || !cache_catch_up(e, rev)) {
        atomic_fetch_add(&e->misses, 1);
        return 0;
    }
    atomic_fetch_add(&e->hits, 1);
    return 1;
}

/* The cache's locks and budget, at open (etcd-int.h). */
int
etcd_cache_init(struct etcd *e, struct rk_error *err)
{
    pthread_condattr_t ca;
    const char *mb = getenv("REKEY_ETCD_CACHE_MB");
    char *end = NULL;
    long long n = mb != NULL && mb[0] != '\0' ? strtoll(mb, &end, 10) : ETCD_CACHE_MB_DEFAULT;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->ccv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&e->cmu, NULL);
    pthread_mutex_init(&e->rmu, NULL);
    pthread_cond_init(&e->rcv, NULL);
    e->wsock = -1;
    if ((end != NULL && *end != '\0') || n < 0 || n > (1LL << 20))
        return rk_error_set(err, RK_EINVAL, "REKEY_ETCD_CACHE_MB is not a number of MiB");
    e->max_bytes = (size_t)n << 20;
    return 0;
}

/* Stops the watcher and frees the cache, at close (etcd-int.h). */
void
etcd_cache_stop(struct etcd *e)
{
    pthread_mutex_lock(&e->cmu);
    e->cstop = 1;
    c_break_stream(e);
    pthread_cond_broadcast(&e->ccv);
    pthread_mutex_unlock(&e->cmu);
    if (e->cstarted == 1)
        pthread_join(e->watcher, NULL);
    c_clear(e);
    pthread_mutex_destroy(&e->cmu);
    pthread_cond_destroy(&e->ccv);
    pthread_mutex_destroy(&e->rmu);
    pthread_cond_destroy(&e->rcv);
}
