/* audit.c: the audit log subscriber, its sinks and devices (see audit.h).
 *
 * A line's body, after the chain's prev and time (chain.h), in this order, members absent when
 * they do not apply:
 *   "type"            request, response (API), local, local-result (CLI), rotation (engine)
 *   "request_id"      API
 *   "operation"       read, update, delete, list, patch (API, as Vault names them); the
 *                     command ("kv put", "rotate", "operator init"); rotate, rollback, … (engine)
 *   "path"            the request path without /v1/, or the secret's path
 *   "remote_address"  API: the client address
 *   "actor"           the token's display name, the local user, a rotation's author
 *   "accessor"        the token's accessor as hmac-sha256:<hex>
 *   "policies"        the token's policies
 *   "pid"             local operations: the process
 *   "step", "outcome", "from_version", "to_version", "fingerprint", "reason", "message"
 *                     rotations (the message when it says more than the error)
 *   "status"          the HTTP status (API responses), the exit status (local results)
 *   "duration_us"     responses, results
 *   "error"           present exactly when the outcome is an error (status >= 400, a non-zero
 *                     exit status, a failed rotation), "" when there is no message
 * The members are written by hand (not by jansson) so that the order is fixed and a query can
 * look for "path":"… without parsing. */
#include "audit/audit.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/chain.h"
#include "audit/sink.h"
#include "metrics/metrics.h"
#include "store/barrier.h"
#include "util/enc.h"
#include "util/events.h"
#include "util/log.h"
#include "util/secret.h"

#define BODY_STACK 2048
#define POLICIES_MAX 64

struct dev {
    char name[AUDIT_DEVICE_NAME_MAX + 1]; /* without the trailing '/' */
    char *description;
    struct audit_sink *sink;
};

struct audit {
    pthread_rwlock_t lock; /* file, devs, ndevs */
    struct audit_sink *file;
    struct dev *devs;
    size_t ndevs;
    struct barrier *br;
    pthread_mutex_t submu; /* sub; never held with lock */
    int sub;               /* the subscription while a sink is on, else -1 */
    pthread_mutex_t hmu;   /* hctx */
    EVP_MAC_CTX *hctx;     /* keyed with the salt; NULL until needed, dropped when sealed */
};

/* ---- HMAC ---------------------------------------------------------------------------------- */

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void
hmac_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* A context keyed with the store's salt. */
static int
hmac_keyed(struct barrier *br, EVP_MAC_CTX **out, struct rk_error *err)
{
    struct secret *salt = NULL;
    OSSL_PARAM params[2];
    EVP_MAC_CTX *c = NULL;
    int r;

    *out = NULL;
    pthread_once(&hmac_once, hmac_fetch);
    if (hmac_alg == NULL)
        return rk_error_set(err, RK_EINTERNAL, "OpenSSL has no HMAC");
    if ((r = barrier_audit_salt(br, &salt, err)) != 0)
        return r;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((c = EVP_MAC_CTX_new(hmac_alg)) == NULL ||
        EVP_MAC_init(c, salt->data, salt->len, params) != 1) {
        EVP_MAC_CTX_free(c);
        r = rk_error_set(err, RK_EINTERNAL, "keying HMAC-SHA256 failed in OpenSSL");
    } else {
        *out = c;
    }
    secret_free(salt);
    return r;
}

static int
hmac_hex(EVP_MAC_CTX *keyed, const void *data, size_t len, char out[AUDIT_HMAC_LEN + 1],
         struct rk_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t mdlen = 0;
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(keyed);
    int ok;

    out[0] = '\0';
    if (c == NULL)
        return rk_error_set(err, RK_ENOMEM, "audit: out of memory");
    ok = EVP_MAC_update(c, data, len) == 1 && EVP_MAC_final(c, md, &mdlen, sizeof(md)) == 1 &&
         mdlen == 32;
    EVP_MAC_CTX_free(c);
    if (!ok)
        return rk_error_set(err, RK_EINTERNAL, "HMAC-SHA256 failed in OpenSSL");
    memcpy(out, AUDIT_HMAC_PREFIX, 12);
    hex_encode(md, mdlen, out + 12);
    return 0;
}

int
audit_hash(struct barrier *br, const void *data, size_t len, char out[AUDIT_HMAC_LEN + 1],
           struct rk_error *err)
{
    EVP_MAC_CTX *c = NULL;
    int r;

    out[0] = '\0';
    if (br == NULL)
        return rk_error_set(err, RK_EINVAL, "audit hashes need a store");
    if ((r = hmac_keyed(br, &c, err)) != 0)
        return r;
    r = hmac_hex(c, data, len, out, err);
    EVP_MAC_CTX_free(c);
    return r;
}

/* The accessor's HMAC with the cached key (made on first use, dropped when the store seals). */
static int
audit_hash_cached(struct audit *a, const char *s, char out[AUDIT_HMAC_LEN + 1],
                  struct rk_error *err)
{
    int r = 0;

    pthread_mutex_lock(&a->hmu);
    if (a->br == NULL) {
        r = rk_error_set(err, RK_EINVAL, "audit: no store to key the HMAC");
    } else if (barrier_sealed(a->br)) {
        EVP_MAC_CTX_free(a->hctx);
        a->hctx = NULL;
        r = rk_error_set(err, RK_ESEALED, "audit: the store is sealed: no salt for the HMAC");
    } else if (a->hctx == NULL) {
        r = hmac_keyed(a->br, &a->hctx, err);
    }
    if (r == 0)
        r = hmac_hex(a->hctx, s, strlen(s), out, err);
    pthread_mutex_unlock(&a->hmu);
    return r;
}

/* ---- the line body --------------------------------------------------------------------------- */

struct jb {
    char *p;
    size_t len, cap;
    int oom;
    char stack[BODY_STACK];
};

static int
jb_reserve(struct jb *b, size_t more)
{
    char *np;
    size_t nc;

    if (b->oom)
        return -1;
    if (more <= b->cap - b->len)
        return 0;
    nc = b->cap * 2;
    while (nc - b->len < more)
        nc *= 2;
    if (b->p == b->stack) {
        if ((np = malloc(nc)) != NULL)
            memcpy(np, b->p, b->len);
    } else {
        np = realloc(b->p, nc);
    }
    if (np == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = np;
    b->cap = nc;
    return 0;
}

static void
jb_raw(struct jb *b, const char *s, size_t n)
{
    if (jb_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* ,"key": (the comma unless first) */
static void
jb_key(struct jb *b, const char *key)
{
    size_t kl = strlen(key);

    if (jb_reserve(b, kl + 4) != 0)
        return;
    if (b->len > 0)
        b->p[b->len++] = ',';
    b->p[b->len++] = '"';
    memcpy(b->p + b->len, key, kl);
    b->len += kl;
    b->p[b->len++] = '"';
    b->p[b->len++] = ':';
}

static void
jb_strval(struct jb *b, const char *v)
{
    size_t n = strlen(v);

    if (jb_reserve(b, 6 * n + 2) != 0)
        return;
    b->p[b->len++] = '"';
    (void)audit_json_escape(b->p, b->cap, &b->len, v, n);
    b->p[b->len++] = '"';
}

static void
jb_str(struct jb *b, const char *key, const char *v)
{
    if (v == NULL)
        return;
    jb_key(b, key);
    jb_strval(b, v);
}

static void
jb_int(struct jb *b, const char *key, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), "%lld", v);

    jb_key(b, key);
    jb_raw(b, num, (size_t)n);
}

static const char *
type_name(const struct rk_event *ev)
{
    switch (ev->type) {
    case EV_API_REQUEST: return "request";
    case EV_API_RESPONSE: return "response";
    case EV_LOCAL_OP: return ev->outcome == NULL ? "local" : "local-result";
    case EV_ROTATION_RESULT: return "rotation";
    case EV_ROTATION_STEP: return "rotation-step";
    }
    return "event";
}

/* 1 when the event reports a failure (its line gets an "error" member). */
static int
is_error(const struct rk_event *ev)
{
    switch (ev->type) {
    case EV_API_RESPONSE: return ev->status >= 400 || (ev->error != NULL && *ev->error);
    case EV_LOCAL_OP: return ev->outcome != NULL && (ev->status != 0 || strcmp(ev->outcome, "ok"));
    case EV_ROTATION_RESULT:
    case EV_ROTATION_STEP:
        return (ev->outcome != NULL && strcmp(ev->outcome, "ok") != 0 &&
                strcmp(ev->outcome, "started") != 0) ||
               (ev->error != NULL && *ev->error);
    default: return ev->error != NULL && *ev->error;
    }
}

static int
body_build(struct audit *a, const struct rk_event *ev, struct jb *b, struct rk_error *err)
{
    int r;

    jb_str(b, "type", type_name(ev));
    jb_str(b, "request_id", ev->request_id);
    jb_str(b, "operation", ev->operation);
    jb_str(b, "path", ev->path);
    jb_str(b, "remote_address", ev->remote_addr);
    jb_str(b, "actor", ev->actor);
    if (ev->accessor != NULL && *ev->accessor != '\0') {
        char h[AUDIT_HMAC_LEN + 1];
        if ((r = audit_hash_cached(a, ev->accessor, h, err)) != 0)
            return r;
        jb_str(b, "accessor", h);
    }
    if (ev->policies != NULL) {
        jb_key(b, "policies");
        jb_raw(b, "[", 1);
        for (size_t i = 0; ev->policies[i] != NULL && i < POLICIES_MAX; i++) {
            if (i > 0)
                jb_raw(b, ",", 1);
            jb_strval(b, ev->policies[i]);
        }
        jb_raw(b, "]", 1);
    }
    if (ev->type == EV_LOCAL_OP)
        jb_int(b, "pid", (long long)getpid());
    jb_str(b, "step", ev->step);
    if (ev->type != EV_LOCAL_OP)
        jb_str(b, "outcome", ev->outcome);
    if (ev->from_version != 0 || ev->to_version != 0) {
        jb_int(b, "from_version", (long long)ev->from_version);
        jb_int(b, "to_version", (long long)ev->to_version);
    }
    jb_str(b, "fingerprint", ev->fingerprint);
    jb_str(b, "reason", ev->reason);
    if (ev->message != NULL && *ev->message != '\0' &&
        (ev->error == NULL || strcmp(ev->message, ev->error) != 0))
        jb_str(b, "message", ev->message);
    if (ev->type == EV_API_RESPONSE || (ev->type == EV_LOCAL_OP && ev->outcome != NULL))
        jb_int(b, "status", ev->status);
    if (ev->duration_us != 0)
        jb_int(b, "duration_us", (long long)ev->duration_us);
    if (is_error(ev))
        jb_str(b, "error", ev->error != NULL ? ev->error : "");
    if (b->oom)
        return rk_error_set(err, RK_ENOMEM, "audit: out of memory");
    return 0;
}

/* ---- the subscriber ---------------------------------------------------------------------- */

/* An asynchronous window (audit_async_begin): its events' lines in flight. */
struct async_ctx {
    pthread_mutex_t mu;
    audit_done_fn fn;
    void *arg;
    int pending; /* events in flight, plus one while the window is open */
    int queued;  /* lines queued */
    int result;  /* the first failure */
    char msg[RK_ERRMSG_MAX];
};

/* One event's lines, one per sink. */
struct async_ev {
    struct async_ctx *ctx;
    int pending; /* sinks still to answer (under ctx->mu) */
    int ok;
    int code;
    int response;
    char msg[RK_ERRMSG_MAX]; /* the last sink failure */
};

static _Thread_local struct async_ctx *tl_async;
static atomic_int n_subscribed; /* audit logs subscribed to the event stream */

int
audit_async_wanted(void)
{
    return atomic_load_explicit(&n_subscribed, memory_order_relaxed) > 0;
}

/* Drops one of ctx's references (ctx->mu held, released here); the last calls fn. */
static void
async_release(struct async_ctx *c)
{
    int last = --c->pending == 0;

    pthread_mutex_unlock(&c->mu);
    if (!last)
        return;
    if (c->queued > 0)
        c->fn(c->arg, c->result, c->msg);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Drops one of e's references (c->mu held, released here); the last settles the event: no
 * sink wrote it, the window fails (unless the caller was told so at once: quiet). */
static void
async_ev_put(struct async_ev *e, struct async_ctx *c, int quiet)
{
    if (--e->pending > 0) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    if (e->ok == 0 && c->result == 0 && !quiet) {
        c->result = -(e->code ? e->code : RK_EIO);
        snprintf(c->msg, sizeof(c->msg), "audit: no audit sink could record the %s: %s",
                 e->response ? "response" : "request", e->msg);
    }
    free(e);
    async_release(c);
}

/* A sink's completion of one line (audit_sink_done_fn). */
static void
async_line_done(void *arg, int result, const char *msg)
{
    struct async_ev *e = arg;
    struct async_ctx *c = e->ctx;

    if (result != 0) {
        metrics_audit_failure();
        log_error("audit: %s", msg);
    }
    pthread_mutex_lock(&c->mu);
    if (result == 0) {
        e->ok++;
    } else {
        e->code = -result;
        snprintf(e->msg, sizeof(e->msg), "%s", msg);
    }
    async_ev_put(e, c, 0);
}

void
audit_async_begin(audit_done_fn fn, void *arg)
{
    struct async_ctx *c = calloc(1, sizeof(*c));

    tl_async = c;
    if (c == NULL)
        return;
    pthread_mutex_init(&c->mu, NULL);
    c->fn = fn;
    c->arg = arg;
    c->pending = 1;
}

int
audit_async_pending(void)
{
    struct async_ctx *c = tl_async;
    int q;

    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->mu);
    q = c->queued > 0;
    pthread_mutex_unlock(&c->mu);
    return q;
}

void
audit_async_end(void)
{
    struct async_ctx *c = tl_async;

    tl_async = NULL;
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    async_release(c);
}

/* Queues the line (a->lock held) to every sink for the thread's window. Returns 0 once some
 * sink queued it (the window's completion then tells whether it was written), or the error
 * when none could (then the window does not count it). */
static int
async_append(struct audit *a, struct async_ctx *c, const struct rk_event *ev, const char *tm,
             const struct jb *b, size_t nsinks, struct rk_error *err)
{
    struct async_ev *e = calloc(1, sizeof(*e));
    struct rk_error last = {0};
    size_t queued = 0;

    if (e == NULL)
        return rk_error_set(err, RK_ENOMEM, "audit: out of memory");
    e->ctx = c;
    e->response = ev->type == EV_API_RESPONSE;
    e->pending = (int)nsinks + 1; /* one for this call */
    pthread_mutex_lock(&c->mu);
    c->pending++;
    c->queued++;
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < nsinks; i++) {
        struct audit_sink *s = i < a->ndevs ? a->devs[i].sink : a->file;
        struct rk_error ek = {0};
        if (audit_sink_append_async(s, tm, b->p, b->len, async_line_done, e, &ek) == 0) {
            queued++;
        } else {
            last = ek;
            async_line_done(e, -(ek.code ? ek.code : RK_EIO), ek.msg);
        }
    }
    pthread_mutex_lock(&c->mu);
    if (queued == 0)
        c->queued--; /* the caller hears of it now */
    async_ev_put(e, c, queued == 0);
    if (queued > 0)
        return 0;
    return rk_error_set(err, last.code ? last.code : RK_EIO,
                        "audit: no audit sink could record the %s: %s",
                        ev->type == EV_API_RESPONSE ? "response" : "request", last.msg);
}

static int
on_event(void *arg, const struct rk_event *ev, struct rk_error *err)
{
    struct audit *a = arg;
    struct jb b;
    char tm[AUDIT_TIME_LEN + 1];
    struct rk_error last = {0};
    size_t nsinks, ok = 0;
    int r;

    b.p = b.stack;
    b.len = 0;
    b.cap = sizeof(b.stack);
    b.oom = 0;
    pthread_rwlock_rdlock(&a->lock);
    nsinks = (a->file != NULL) + a->ndevs;
    if (nsinks == 0) {
        pthread_rwlock_unlock(&a->lock);
        return 0;
    }
    if ((r = body_build(a, ev, &b, err)) != 0) {
        pthread_rwlock_unlock(&a->lock);
        rk_error_prefix(err, "audit");
        goto out;
    }
    audit_time_format(ev->time_us, tm);
    if (tl_async != NULL && (ev->type == EV_API_REQUEST || ev->type == EV_API_RESPONSE)) {
        r = async_append(a, tl_async, ev, tm, &b, nsinks, err);
        pthread_rwlock_unlock(&a->lock);
        goto out;
    }
    for (size_t i = 0; i < nsinks; i++) {
        struct audit_sink *s = i < a->ndevs ? a->devs[i].sink : a->file;
        struct rk_error e = {0};
        if (audit_sink_append(s, tm, b.p, b.len, &e) == 0) {
            ok++;
        } else {
            metrics_audit_failure();
            log_error("audit: %s", e.msg);
            last = e;
        }
    }
    pthread_rwlock_unlock(&a->lock);
    r = 0;
    if (ok == 0)
        r = rk_error_set(err, last.code ? last.code : RK_EIO,
                         "audit: no audit sink could record the %s: %s",
                         ev->type == EV_API_RESPONSE ? "response" : "request", last.msg);
out:
    if (b.p != b.stack)
        free(b.p);
    return r;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* Subscribed while some sink is on: with none, the API does not even work out who a request
 * comes from (events_wanted). Called without lock (unsubscribing waits for on_event). */
static int
sync_sub(struct audit *a, struct rk_error *err)
{
    size_t n = audit_sink_count(a);
    int r = 0;

    pthread_mutex_lock(&a->submu);
    if (n > 0 && a->sub < 0) {
        a->sub = events_subscribe(EV_MASK(EV_API_REQUEST) | EV_MASK(EV_API_RESPONSE) |
                                      EV_MASK(EV_LOCAL_OP) | EV_MASK(EV_ROTATION_RESULT),
                                  on_event, a);
        if (a->sub < 0) {
            a->sub = -1;
            r = rk_error_set(err, RK_ELIMIT, "audit: no event subscription left");
        } else {
            atomic_fetch_add(&n_subscribed, 1);
        }
    } else if (n == 0 && a->sub >= 0) {
        events_unsubscribe(a->sub);
        a->sub = -1;
        atomic_fetch_sub(&n_subscribed, 1);
    }
    pthread_mutex_unlock(&a->submu);
    if (r != 0 && err == NULL)
        log_error("audit: no event subscription left: nothing is recorded");
    return r;
}

static void
devs_free(struct dev *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        audit_sink_free(d[i].sink);
        free(d[i].description);
    }
    free(d);
}

static int
file_sink_open(const char *path, struct audit_sink **out, struct rk_error *err)
{
    struct rk_error e = {0};
    int r;

    if ((r = audit_sink_new(path, out, err)) != 0)
        return r;
    /* A file that cannot be written now is reported, and tried again by each event. */
    if (audit_sink_check(*out, &e) != 0)
        log_error("audit: %s (every request fails until it can be written)", e.msg);
    return 0;
}

int
audit_open(const struct audit_opts *o, struct audit **out, struct rk_error *err)
{
    struct audit *a;
    int r;

    *out = NULL;
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->hmu, NULL);
    pthread_mutex_init(&a->submu, NULL);
    a->br = o->br;
    a->sub = -1;
    if (o->file_path != NULL && (r = file_sink_open(o->file_path, &a->file, err)) != 0)
        goto fail;
    if ((r = sync_sub(a, err)) != 0)
        goto fail;
    *out = a;
    return 0;
fail:
    audit_free(a);
    return r;
}

void
audit_free(struct audit *a)
{
    if (a == NULL)
        return;
    if (a->sub >= 0)
        atomic_fetch_sub(&n_subscribed, 1);
    events_unsubscribe(a->sub);
    pthread_mutex_destroy(&a->submu);
    audit_sink_free(a->file);
    devs_free(a->devs, a->ndevs);
    EVP_MAC_CTX_free(a->hctx);
    pthread_mutex_destroy(&a->hmu);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

int
audit_set_file(struct audit *a, const char *file_path, struct rk_error *err)
{
    struct audit_sink *ns = NULL, *old;
    int r;

    pthread_rwlock_rdlock(&a->lock);
    if (a->file != NULL && file_path != NULL && strcmp(audit_sink_path(a->file), file_path) == 0) {
        audit_sink_reopen(a->file);
        pthread_rwlock_unlock(&a->lock);
        return 0;
    }
    pthread_rwlock_unlock(&a->lock);
    if (file_path != NULL && (r = file_sink_open(file_path, &ns, err)) != 0)
        return r;
    pthread_rwlock_wrlock(&a->lock);
    old = a->file;
    a->file = ns;
    pthread_rwlock_unlock(&a->lock);
    audit_sink_free(old);
    return sync_sub(a, err);
}

void
audit_reopen(struct audit *a)
{
    pthread_rwlock_rdlock(&a->lock);
    if (a->file != NULL)
        audit_sink_reopen(a->file);
    for (size_t i = 0; i < a->ndevs; i++)
        audit_sink_reopen(a->devs[i].sink);
    pthread_rwlock_unlock(&a->lock);
}

size_t
audit_sink_count(struct audit *a)
{
    size_t n;

    if (a == NULL)
        return 0;
    pthread_rwlock_rdlock(&a->lock);
    n = (a->file != NULL) + a->ndevs;
    pthread_rwlock_unlock(&a->lock);
    return n;
}

/* ---- devices ------------------------------------------------------------------------------ */

/* Copies name without a trailing '/' into out after checking it. */
static int
name_norm(const char *name, char out[AUDIT_DEVICE_NAME_MAX + 1], struct rk_error *err)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n > 0 && name[n - 1] == '/')
        n--;
    if (n == 0 || n > AUDIT_DEVICE_NAME_MAX)
        return rk_error_set(err, RK_EINVAL, "an audit device path is 1 to %d characters",
                            AUDIT_DEVICE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return rk_error_set(err, RK_EINVAL,
                                "an audit device path has letters, digits, '.', '_' and '-' only");
    }
    if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
        return rk_error_set(err, RK_EINVAL, "invalid audit device path");
    memcpy(out, name, n);
    out[n] = '\0';
    return 0;
}

struct loaded {
    struct dev *v;
    size_t n, cap;
    struct audit *a;
    int failed;
};

static int
dev_from_record(const char *name, const unsigned char *val, size_t vlen, struct dev *d,
                struct rk_error *err)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)val, vlen, 0, &je);
    const char *type = NULL, *path = NULL, *desc = "";
    int r = 0;

    memset(d, 0, sizeof(*d));
    if (j == NULL ||
        json_unpack(j, "{s:s, s?s, s:{s:s}}", "type", &type, "description", &desc, "options",
                    "file_path", &path) != 0 ||
        strcmp(type, "file") != 0) {
        r = rk_error_set(err, RK_ECORRUPT, "audit device %s: its record does not parse", name);
        goto out;
    }
    snprintf(d->name, sizeof(d->name), "%s", name);
    if ((d->description = strdup(desc)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = file_sink_open(path, &d->sink, err)) != 0) {
        free(d->description);
        d->description = NULL;
    }
out:
    json_decref(j);
    return r;
}

static int
list_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct loaded *L = arg;

    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strncmp(key, AUDIT_STORE_PREFIX, strlen(AUDIT_STORE_PREFIX)) != 0)
        return 0;
    if (L->n == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 4;
        struct dev *nv = realloc(L->v, nc * sizeof(*nv));
        if (nv == NULL)
            return -RK_ENOMEM;
        L->v = nv;
        L->cap = nc;
    }
    /* The name only; the record is read (decrypted) after the walk. */
    memset(&L->v[L->n], 0, sizeof(L->v[L->n]));
    snprintf(L->v[L->n].name, sizeof(L->v[L->n].name), "%s", key + strlen(AUDIT_STORE_PREFIX));
    L->n++;
    return 0;
}

int
audit_devices_load(struct audit *a, struct rk_error *err)
{
    struct loaded L = {0};
    struct dev *old;
    size_t nold, k = 0;
    int r;

    if (a == NULL || a->br == NULL)
        return 0;
    if ((r = barrier_list(a->br, AUDIT_STORE_PREFIX, NULL, 0, list_cb, &L, err)) != 0) {
        if (r == -RK_ENOMEM)
            rk_error_set(err, RK_ENOMEM, "out of memory");
        free(L.v);
        return r;
    }
    for (size_t i = 0; i < L.n; i++) {
        struct secret *val = NULL;
        struct rk_error e = {0};
        char key[sizeof(AUDIT_STORE_PREFIX) + AUDIT_DEVICE_NAME_MAX + 1];
        char name[AUDIT_DEVICE_NAME_MAX + 1];

        snprintf(name, sizeof(name), "%s", L.v[i].name);
        snprintf(key, sizeof(key), AUDIT_STORE_PREFIX "%s", name);
        if (barrier_get(a->br, key, &val, NULL, &e) != 0 ||
            dev_from_record(name, val->data, val->len, &L.v[k], &e) != 0) {
            log_error("audit: skipping device %s: %s", name, e.msg);
            secret_free(val);
            continue;
        }
        secret_free(val);
        k++;
    }
    pthread_rwlock_wrlock(&a->lock);
    old = a->devs;
    nold = a->ndevs;
    a->devs = L.v;
    a->ndevs = k;
    pthread_rwlock_unlock(&a->lock);
    devs_free(old, nold);
    if (k > 0)
        log_info("audit: %zu device%s enabled from the store", k, k == 1 ? "" : "s");
    return sync_sub(a, err);
}

void
audit_devices_unload(struct audit *a)
{
    struct dev *old;
    size_t nold;

    if (a == NULL)
        return;
    pthread_rwlock_wrlock(&a->lock);
    old = a->devs;
    nold = a->ndevs;
    a->devs = NULL;
    a->ndevs = 0;
    pthread_rwlock_unlock(&a->lock);
    devs_free(old, nold);
    (void)sync_sub(a, NULL);
    pthread_mutex_lock(&a->hmu);
    EVP_MAC_CTX_free(a->hctx);
    a->hctx = NULL;
    pthread_mutex_unlock(&a->hmu);
}

static int
count_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strncmp(key, AUDIT_STORE_PREFIX, strlen(AUDIT_STORE_PREFIX)) == 0)
        (*(size_t *)arg)++;
    return 0;
}

int
audit_devices_stored(struct barrier *br, size_t *n, struct rk_error *err)
{
    *n = 0;
    return barrier_list(br, AUDIT_STORE_PREFIX, NULL, 0, count_cb, n, err);
}

/* 1 when a sink of a (lock held) writes path. */
static int
path_taken_locked(struct audit *a, const char *path)
{
    if (a->file != NULL && strcmp(audit_sink_path(a->file), path) == 0)
        return 1;
    for (size_t i = 0; i < a->ndevs; i++)
        if (strcmp(audit_sink_path(a->devs[i].sink), path) == 0)
            return 1;
    return 0;
}

static struct dev *
find_locked(struct audit *a, const char *name)
{
    for (size_t i = 0; i < a->ndevs; i++)
        if (strcmp(a->devs[i].name, name) == 0)
            return &a->devs[i];
    return NULL;
}

int
audit_device_enable(struct audit *a, const char *name, const char *type, const char *description,
                    const char *file_path, struct rk_error *err)
{
    char nm[AUDIT_DEVICE_NAME_MAX + 1], key[sizeof(AUDIT_STORE_PREFIX) + AUDIT_DEVICE_NAME_MAX];
    struct audit_sink *sink = NULL;
    struct dev *nv;
    json_t *rec = NULL;
    char *text = NULL, *desc = NULL;
    int r;

    if ((r = name_norm(name, nm, err)) != 0)
        return r;
    if (strcmp(nm, AUDIT_CONFIG_DEVICE) == 0)
        return rk_error_set(err, RK_EINVAL, "audit device path \"%s\" is the configuration's",
                            AUDIT_CONFIG_DEVICE);
    if (type == NULL || strcmp(type, "file") != 0)
        return rk_error_set(err, RK_EINVAL,
                            "unsupported audit device type \"%.64s\" (only \"file\")",
                            type != NULL ? type : "");
    if (file_path == NULL || file_path[0] != '/' || strlen(file_path) > 4000)
        return rk_error_set(err, RK_EINVAL, "options.file_path must be an absolute path");
    if (a->br == NULL)
        return rk_error_set(err, RK_EINVAL, "audit devices need a store");
    pthread_rwlock_rdlock(&a->lock);
    r = find_locked(a, nm) != NULL ? rk_error_set(err, RK_EEXISTS, "path already in use")
        : path_taken_locked(a, file_path)
            ? rk_error_set(err, RK_EINVAL, "an audit sink already writes %s", file_path)
            : 0;
    pthread_rwlock_unlock(&a->lock);
    if (r != 0)
        return r;
    /* The file must be writable before the device is stored, as Vault tests a new device. */
    if ((r = audit_sink_new(file_path, &sink, err)) != 0)
        return r;
    if ((r = audit_sink_check(sink, err)) != 0) {
        rk_error_prefix(err, "enabling audit device %s", nm);
        r = -RK_EIO;
        err->code = RK_EIO;
        goto out;
    }
    rec = json_pack("{s:s, s:s, s:{s:s}, s:b}", "type", "file", "description",
                    description != NULL ? description : "", "options", "file_path", file_path,
                    "local", 0);
    if (rec == NULL || (text = json_dumps(rec, JSON_COMPACT)) == NULL ||
        (desc = strdup(description != NULL ? description : "")) == NULL) {
        r = rk_error_set(err, RK_EINVAL, "audit device: description is not UTF-8 or out of memory");
        goto out;
    }
    snprintf(key, sizeof(key), AUDIT_STORE_PREFIX "%s", nm);
    {
        struct barrier_txn *t = barrier_txn_new(a->br);
        if (t == NULL || barrier_txn_cmp(t, key, 0) != 0 ||
            barrier_txn_put(t, key, text, strlen(text)) != 0) {
            barrier_txn_free(t);
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        r = barrier_txn_commit(t, NULL, err);
        barrier_txn_free(t);
        if (r == -RK_ECONFLICT)
            r = rk_error_set(err, RK_EEXISTS, "path already in use");
        if (r != 0)
            goto out;
    }
    pthread_rwlock_wrlock(&a->lock);
    if ((nv = realloc(a->devs, (a->ndevs + 1) * sizeof(*nv))) == NULL) {
        pthread_rwlock_unlock(&a->lock);
        (void)barrier_del(a->br, key, NULL);
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    a->devs = nv;
    memset(&nv[a->ndevs], 0, sizeof(nv[a->ndevs]));
    snprintf(nv[a->ndevs].name, sizeof(nv[a->ndevs].name), "%s", nm);
    nv[a->ndevs].description = desc;
    nv[a->ndevs].sink = sink;
    a->ndevs++;
    pthread_rwlock_unlock(&a->lock);
    desc = NULL;
    sink = NULL;
    log_info("audit: enabled device %s/ (file %s)", nm, file_path);
    (void)sync_sub(a, NULL);
out:
    audit_sink_free(sink);
    free(desc);
    free(text);
    json_decref(rec);
    return r;
}

int
audit_device_disable(struct audit *a, const char *name, struct rk_error *err)
{
    char nm[AUDIT_DEVICE_NAME_MAX + 1], key[sizeof(AUDIT_STORE_PREFIX) + AUDIT_DEVICE_NAME_MAX];
    struct dev gone = {0};
    struct dev *d;
    int r;

    if ((r = name_norm(name, nm, err)) != 0)
        return r;
    if (strcmp(nm, AUDIT_CONFIG_DEVICE) == 0)
        return rk_error_set(err, RK_EINVAL,
                            "the configuration's audit file is turned off in the configuration");
    if (a->br == NULL)
        return rk_error_set(err, RK_ENOTFOUND, "no such audit device");
    snprintf(key, sizeof(key), AUDIT_STORE_PREFIX "%s", nm);
    pthread_rwlock_rdlock(&a->lock);
    d = find_locked(a, nm);
    pthread_rwlock_unlock(&a->lock);
    if (d == NULL) { /* not loaded here: it may still be stored (enabled by another server) */
        struct secret *val = NULL;
        r = barrier_get(a->br, key, &val, NULL, err);
        secret_free(val);
        if (r == -RK_ENOTFOUND)
            return rk_error_set(err, RK_ENOTFOUND, "no audit device at %s/", nm);
        if (r != 0)
            return r;
    }
    if ((r = barrier_del(a->br, key, err)) != 0 && r != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    pthread_rwlock_wrlock(&a->lock);
    if ((d = find_locked(a, nm)) != NULL) {
        gone = *d;
        *d = a->devs[--a->ndevs];
    }
    pthread_rwlock_unlock(&a->lock);
    audit_sink_free(gone.sink);
    free(gone.description);
    (void)sync_sub(a, NULL);
    log_info("audit: disabled device %s/", nm);
    return 0;
}

static json_t *
dev_json(const char *name, const char *desc, const char *path, int local)
{
    char p[AUDIT_DEVICE_NAME_MAX + 2];

    snprintf(p, sizeof(p), "%s/", name);
    return json_pack("{s:s, s:s, s:{s:s}, s:b, s:s}", "type", "file", "description", desc,
                     "options", "file_path", path, "local", local, "path", p);
}

int
audit_device_list(struct audit *a, json_t **out, struct rk_error *err)
{
    json_t *m = json_object();
    int bad = m == NULL;

    *out = NULL;
    pthread_rwlock_rdlock(&a->lock);
    if (!bad && a->file != NULL)
        bad = json_object_set_new(m, AUDIT_CONFIG_DEVICE "/",
                                  dev_json(AUDIT_CONFIG_DEVICE, "the configuration's audit: block",
                                           audit_sink_path(a->file), 1)) != 0;
    for (size_t i = 0; !bad && i < a->ndevs; i++) {
        char k[AUDIT_DEVICE_NAME_MAX + 2];
        snprintf(k, sizeof(k), "%s/", a->devs[i].name);
        bad = json_object_set_new(m, k,
                                  dev_json(a->devs[i].name, a->devs[i].description,
                                           audit_sink_path(a->devs[i].sink), 0)) != 0;
    }
    pthread_rwlock_unlock(&a->lock);
    if (bad) {
        json_decref(m);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    *out = m;
    return 0;
}

int
audit_device_exists(struct audit *a, const char *name)
{
    char nm[AUDIT_DEVICE_NAME_MAX + 1];
    int found;

    if (a == NULL || name_norm(name, nm, NULL) != 0)
        return 0;
    pthread_rwlock_rdlock(&a->lock);
    found = strcmp(nm, AUDIT_CONFIG_DEVICE) == 0 ? a->file != NULL : find_locked(a, nm) != NULL;
    pthread_rwlock_unlock(&a->lock);
    return found;
}

void
audit_note(const char *file_path, int n_devices, char *out, size_t outlen)
{
    if (file_path != NULL && n_devices > 0)
        snprintf(out, outlen, "audit: file %s and %d device%s enabled through sys/audit", file_path,
                 n_devices, n_devices == 1 ? "" : "s");
    else if (file_path != NULL)
        snprintf(out, outlen, "audit: file %s", file_path);
    else if (n_devices > 0)
        snprintf(out, outlen, "audit: %d device%s enabled through sys/audit", n_devices,
                 n_devices == 1 ? "" : "s");
    else if (n_devices == 0)
        snprintf(out, outlen,
                 "audit: off (no audit: block in the configuration and no device enabled "
                 "through sys/audit)");
    else
        snprintf(out, outlen,
                 "audit: no audit: block in the configuration (devices enabled through "
                 "sys/audit are listed by rekey status)");
}
