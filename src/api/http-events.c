/* http-events.c: the HTTP server's events (util/events.h): a request's EV_API_REQUEST, published
 * once before its handler runs (or for an answer decided before it), and its response's
 * EV_API_RESPONSE as the response is queued, with the request id, Vault's operation name, the
 * route family and the identity the handler found; and the identify hook that names the caller. */
#include "api/http-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/envelope.h"
#include "api/status.h"
#include "audit/audit.h"
#include "util/events.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/netaddr.h"
#include "util/parse.h"
#include "util/secret.h"
#include "util/timeutil.h"

/* ---------------------------------------------------------------------------------------- */
/* Events (util/events.h): a request's entry before its handler, its response's as it is queued */

static _Atomic(http_identify_fn) identify_fn;
static uint64_t reqid_prefix;
static _Atomic uint64_t reqid_seq;
static pthread_once_t reqid_once = PTHREAD_ONCE_INIT;

static void
reqid_init(void)
{
    if (RAND_bytes((unsigned char *)&reqid_prefix, sizeof(reqid_prefix)) != 1)
        reqid_prefix = (uint64_t)time_now_us();
}

void
http_set_identify(http_identify_fn fn)
{
    atomic_store(&identify_fn, fn);
}

void
http_identity_add_policy(struct http_identity *id, const char *name)
{
    size_t used = 0, n = strlen(name) + 1;

    for (size_t i = 0; i < id->npolicies; i++)
        used += strlen(id->polbuf + used) + 1;
    if (id->npolicies >= HTTP_ID_POLICIES || n > sizeof(id->polbuf) - used)
        return;
    memcpy(id->polbuf + used, name, n);
    id->npolicies++;
}

/* Vault's name of the operation. */
static const char *
op_name(const struct http_request *req)
{
    switch (req->method) {
    case HTTP_GET:
    case HTTP_HEAD: return "read";
    case HTTP_LIST: return "list";
    case HTTP_PUT:
    case HTTP_POST: return "update";
    case HTTP_DELETE: return "delete";
    case HTTP_PATCH: return "patch";
    default: return req->method_str != NULL ? req->method_str : "";
    }
}

/* The route family (for metrics): kv, token, or the first segment of the route's pattern. */
static void
route_family(const struct http_request *req, char *out, size_t outlen)
{
    const char *p = req->route != NULL ? req->route->pattern : NULL;
    size_t n;

    if (p == NULL || strncmp(p, "/v1/", 4) != 0) {
        snprintf(out, outlen, "none");
        return;
    }
    p += 4;
    n = strcspn(p, "/");
    if (n == 6 && strncmp(p, "secret", 6) == 0)
        snprintf(out, outlen, "kv");
    else if (n == 4 && strncmp(p, "auth", 4) == 0)
        snprintf(out, outlen, "token");
    else
        snprintf(out, outlen, "%.*s", (int)n, p);
}

static void
event_fill(struct http_request *req, enum rk_event_type type, struct rk_event *ev,
           const char **pols, char *family, size_t flen)
{
    const char *path = req->path != NULL ? req->path : "";
    size_t off = 0;

    if (strncmp(path, "/v1/", 4) == 0)
        path += 4;
    for (size_t i = 0; i < req->id.npolicies; i++) {
        pols[i] = req->id.polbuf + off;
        off += strlen(pols[i]) + 1;
    }
    pols[req->id.npolicies] = NULL;
    route_family(req, family, flen);
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->request_id = req->req_id;
    ev->operation = op_name(req);
    ev->path = path;
    ev->actor = req->id.actor[0] != '\0' ? req->id.actor : NULL;
    ev->accessor = req->id.accessor[0] != '\0' ? req->id.accessor : NULL;
    ev->policies = req->id.npolicies > 0 ? pols : NULL;
    ev->remote_addr = req->conn != NULL ? http_request_ip(req) : NULL;
    ev->route = family;
}

/* Publishes the request's EV_API_REQUEST once: before the handler (dispatch), or for an answer
 * given without one as its response is queued. Returns 0, or the subscriber's error. */
int
http_audit_request(struct http_request *req, struct rk_error *err)
{
    const char *pols[HTTP_ID_POLICIES + 1];
    http_identify_fn fn;
    struct rk_event ev;
    char family[32];
    uint64_t n;

    if (req->audit_req)
        return 0;
    req->audit_req = 1;
    if (!events_wanted(EV_API_REQUEST) && !events_wanted(EV_API_RESPONSE))
        return 0;
    /* A random prefix per process and a counter: unique, and no RAND_bytes per request. */
    pthread_once(&reqid_once, reqid_init);
    n = atomic_fetch_add(&reqid_seq, 1);
    snprintf(req->req_id, sizeof(req->req_id), "%08x-%04x-%04x-%04x-%012llx",
             (unsigned)(reqid_prefix >> 32), (unsigned)(reqid_prefix >> 16) & 0xffff,
             (unsigned)reqid_prefix & 0xffff, (unsigned)(n >> 48) & 0xffff,
             (unsigned long long)(n & 0xffffffffffffULL));
    if (!events_wanted(EV_API_REQUEST))
        return 0;
    if ((fn = atomic_load(&identify_fn)) != NULL && req->route != NULL)
        fn(req, req->inst->srv->app, &req->id);
    event_fill(req, EV_API_REQUEST, &ev, pols, family, sizeof(family));
    return events_publish(&ev, err);
}

unsigned
http_audit_fail_response(struct http_request *req, const char *why, struct MHD_Response **resp,
                         const char **ctype)
{
    static const char body[] =
        "{\"errors\":[\"internal error: the audit log cannot record this request\"]}";
    struct MHD_Response *nr;

    log_error("http: %s %s: answering 500: %s", req->method_str, req->path, why);
    nr = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)(uintptr_t)body,
                                         MHD_RESPMEM_PERSISTENT);
    if (nr == NULL) /* out of memory: no answer at all rather than one the log lacks */
        return 0;
    if (*resp != NULL)
        MHD_destroy_response(*resp);
    *resp = nr;
    *ctype = "application/json";
    return 500;
}

/* The audit window's completion (audit_done_fn): runs in the audit sink's flusher thread (or in
 * audit_async_end, in the worker, after the suspend), while the connection is suspended. */
static void
audit_done(void *arg, int result, const char *msg)
{
    struct http_request *req = arg;
    struct inst *in = req->inst; /* req may be gone once its connection is resumed */

    if (result != 0) { /* never clears a failure found when the lines were queued */
        req->aw_result = result;
        snprintf(req->aw_msg, sizeof(req->aw_msg), "%s", msg);
    }
    atomic_store(&req->aw_done, 1);
    MHD_resume_connection(req->mc);
    atomic_fetch_sub(&in->suspended, 1); /* last: the drain may stop the daemon now */
}

int
http_audit_request_defer(struct http_request *req, struct rk_error *err)
{
    int r;

    if (!req->can_defer || req->audit_req || !audit_async_wanted())
        return http_audit_request(req, err);
    atomic_store(&req->aw_done, 0);
    req->aw_result = 0;
    audit_async_begin(audit_done, req);
    r = http_audit_request(req, err);
    if (!audit_async_pending()) {
        audit_async_end();
        return r;
    }
    /* Some line is queued: wait for it (a failure found now fails the request then too). */
    if (r != 0) {
        req->aw_result = r;
        snprintf(req->aw_msg, sizeof(req->aw_msg), "%s", err->msg);
    }
    req->aw = AW_REQUEST;
    atomic_fetch_add(&req->inst->suspended, 1);
    MHD_suspend_connection(req->mc);
    audit_async_end(); /* may resume it already */
    return 1;
}

int
http_audit_window_open(struct http_request *req)
{
    const char *p = req->route != NULL ? req->route->pattern : NULL;

    /* KV reads only: their handler changes nothing, so it may run before its request's line is
     * fsynced, as long as the answer waits for it (other reads may: database/creds makes a
     * login). */
    if (!req->can_defer || req->audit_req ||
        !(req->method == HTTP_GET || req->method == HTTP_HEAD || req->method == HTTP_LIST) ||
        p == NULL || strncmp(p, "/v1/secret/", 11) != 0 || !audit_async_wanted())
        return 0;
    atomic_store(&req->aw_done, 0);
    req->aw_result = 0;
    audit_async_begin(audit_done, req);
    req->aw_window = 1;
    return 1;
}

unsigned
http_audit_response_defer(struct http_request *req, unsigned status, struct MHD_Response **resp,
                          const char **ctype, int *pending)
{
    *pending = 0;
    if (!req->aw_window && !audit_async_wanted())
        return http_audit_response(req, status, resp, ctype);
    if (!req->aw_window) {
        atomic_store(&req->aw_done, 0);
        req->aw_result = 0;
        audit_async_begin(audit_done, req);
    }
    req->aw_window = 0;
    status = http_audit_response(req, status, resp, ctype);
    if (!audit_async_pending()) {
        audit_async_end();
        return status;
    }
    *pending = 1;
    req->aw = AW_RESPONSE;
    atomic_fetch_add(&req->inst->suspended, 1);
    MHD_suspend_connection(req->mc);
    audit_async_end(); /* may resume it already */
    return status;
}

/* Publishes the response's event before it is queued; on a failure to record it the answer
 * becomes a 500 (resp and ctype replaced). Returns the status to send, or 0 when nothing may
 * be sent. */
unsigned
http_audit_response(struct http_request *req, unsigned status, struct MHD_Response **resp,
                    const char **ctype)
{
    const char *pols[HTTP_ID_POLICIES + 1];
    struct rk_error err = {0};
    struct rk_event ev;
    char family[32];
    int r;

    if (!events_wanted(EV_API_RESPONSE) && !events_wanted(EV_API_REQUEST))
        return status;
    r = http_audit_request(req, &err);
    if (r == 0 && events_wanted(EV_API_RESPONSE)) {
        event_fill(req, EV_API_RESPONSE, &ev, pols, family, sizeof(family));
        ev.status = (int)status;
        ev.duration_us = time_now_us() - req->t0_us;
        if (ev.duration_us <= 0)
            ev.duration_us = 1;
        if (status >= 400)
            ev.error = req->audit_err;
        r = events_publish(&ev, &err);
    }
    if (r == 0)
        return status;
    return http_audit_fail_response(req, err.msg, resp, ctype);
}
