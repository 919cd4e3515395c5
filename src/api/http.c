/* http.c: the libmicrohttpd server: limits, request objects, responses, the MHD callbacks and the
 * server's entry points.
 *
 * Per connection we keep a struct conn (MHD's socket context) holding the peer address, the
 * deadline the reaper enforces and the one request object reused for each request on the
 * connection, so the keep-alive hot path allocates only the response. A handler is called on
 * the last access-handler call of a request (never the first: queueing a response on the first
 * call makes MHD close the connection).
 *
 * The parts: reqhead.c (framing checks, the client address), http-events.c (request and response
 * events), http-listen.c (the daemons, TLS, the listener); http-int.h is what they share. */
#include "api/http.h"

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
#include "api/http-int.h"
#include "api/status.h"
#include "api/throttle.h"
#include "util/events.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/netaddr.h"
#include "util/parse.h"
#include "util/secret.h"
#include "util/timeutil.h"

/* Marks a request whose raw target failed router_raw_path_check (MHD's URI log callback runs
 * before it decodes the path, which would hide "%00" by truncation). */
static char raw_bad_marker;

/* ---------------------------------------------------------------------------------------- */
/* Response buffers are wiped when MHD is done with them: bodies may hold secrets. */

struct wbuf {
    size_t len;
    size_t cap;
    char data[];
};

static struct wbuf *
wbuf_new(size_t cap)
{
    struct wbuf *b = malloc(sizeof(*b) + cap + 1);

    if (b != NULL) {
        b->len = 0;
        b->cap = cap;
    }
    return b;
}

static void
wbuf_free(struct wbuf *b)
{
    if (b != NULL)
        freezero(b, sizeof(*b) + b->cap + 1);
}

static void
wbuf_free_data(void *data)
{
    wbuf_free((struct wbuf *)(void *)((char *)data - offsetof(struct wbuf, data)));
}

static int
wbuf_append(const char *buf, size_t len, void *arg)
{
    struct wbuf **bp = arg, *b = *bp;

    if (len > b->cap - b->len) {
        size_t cap = b->cap * 2;
        while (cap - b->len < len)
            cap *= 2;
        struct wbuf *n = wbuf_new(cap);
        if (n == NULL)
            return -1;
        memcpy(n->data, b->data, b->len);
        n->len = b->len;
        wbuf_free(b);
        *bp = b = n;
    }
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Requests */

static void
request_reset(struct http_request *req)
{
    if (req->presp != NULL)
        MHD_destroy_response(req->presp);
    freezero(req->body, req->body_cap);
    free(req->canon);
    for (size_t i = 0; i < req->nhdrs; i++) {
        free(req->hdrs[i].name);
        free(req->hdrs[i].value);
    }
    struct conn *c = req->conn;
    memset(req, 0, sizeof(*req));
    req->conn = c;
}

unsigned
http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *
http_request_method_str(const struct http_request *req)
{
    return req->method_str;
}

const char *
http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *
http_request_param(const struct http_request *req)
{
    return req->path + req->param_off;
}

const char *
http_request_query(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->mc, MHD_GET_ARGUMENT_KIND, name);
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->mc, MHD_HEADER_KIND, name);
}

const char *
http_request_token(const struct http_request *req)
{
    const char *t = http_request_header(req, "X-Vault-Token");

    if (t != NULL && *t != '\0')
        return t;
    t = http_request_header(req, "Authorization");
    if (t != NULL && strncasecmp(t, "Bearer ", 7) == 0) {
        t += 7;
        while (*t == ' ')
            t++;
        return *t != '\0' ? t : NULL;
    }
    return NULL;
}

const char *
http_request_ip(const struct http_request *req)
{
    return req->ip != NULL ? req->ip : req->conn->ip;
}

const unsigned char *
http_request_body(const struct http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body != NULL ? req->body : (const unsigned char *)"";
}

struct http_server *
http_request_server(const struct http_request *req)
{
    return req->inst->srv;
}

void *
http_request_app(const struct http_request *req)
{
    return req->inst->srv->app;
}

int
http_response_header(struct http_request *req, const char *name, const char *value)
{
    if (req->nhdrs >= MAX_RESP_HEADERS)
        return -RK_ELIMIT;
    if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
        return -RK_EINVAL;
    char *n = strdup(name), *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return -RK_ENOMEM;
    }
    req->hdrs[req->nhdrs].name = n;
    req->hdrs[req->nhdrs].value = v;
    req->nhdrs++;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Responses */

/* Adds the headers and hands the answer to MHD; resp is released. */
static int
send_response(struct http_request *req, unsigned status, struct MHD_Response *resp,
              const char *ctype)
{
    int rc = -RK_EINTERNAL;
    size_t hi;

    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES)
        goto out;
    /* no-store, unless the handler chose a Cache-Control of its own (a public JWKS) */
    for (hi = 0; hi < req->nhdrs && strcasecmp(req->hdrs[hi].name, "Cache-Control") != 0; hi++)
        ;
    if (hi == req->nhdrs &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES)
        goto out;
    for (size_t i = 0; i < req->nhdrs; i++)
        if (MHD_add_response_header(resp, req->hdrs[i].name, req->hdrs[i].value) != MHD_YES)
            goto out;
    if (atomic_load_explicit(&req->inst->draining, memory_order_relaxed) &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES)
        goto out;
    if (MHD_queue_response(req->mc, status, resp) == MHD_YES)
        rc = 0;
out:
    MHD_destroy_response(resp);
    return rc;
}

/* Records the answer in the audit log, then sends it. In the final access call the answer may
 * wait in req->presp, the connection suspended, until its line is fsynced (finish_pending). */
static int
queue(struct http_request *req, unsigned status, struct MHD_Response *resp, const char *ctype)
{
    int pending = 0;

    req->responded = 1;
    if (req->can_defer) {
        status = http_audit_response_defer(req, resp != NULL ? status : 0, &resp, &ctype, &pending);
        if (pending) {
            req->presp = resp;
            req->pstatus = status;
            snprintf(req->pctype, sizeof(req->pctype), "%s", ctype);
            return 0;
        }
    } else if (resp != NULL) {
        status = http_audit_response(req, status, &resp, &ctype);
    }
    if (resp == NULL) {
        log_error("http: cannot create a response (out of memory)");
        return -RK_EINTERNAL;
    }
    if (status == 0) {
        MHD_destroy_response(resp);
        return -RK_EINTERNAL;
    }
    return send_response(req, status, resp, ctype);
}

/* Sends the answer held back while its audit line was written (the connection resumed), or a
 * 500 when the line could not be. */
static void
finish_pending(struct http_request *req)
{
    struct MHD_Response *resp = req->presp;
    unsigned status = req->pstatus;
    const char *ctype = req->pctype;

    req->presp = NULL;
    req->aw = AW_NONE;
    if (req->aw_result != 0 || status == 0 || resp == NULL)
        status = http_audit_fail_response(req, req->aw_result != 0 ? req->aw_msg : "out of memory",
                                          &resp, &ctype);
    if (status == 0) {
        if (resp != NULL)
            MHD_destroy_response(resp);
        return;
    }
    (void)send_response(req, status, resp, ctype);
}

static int
respond_wbuf(struct http_request *req, unsigned status, struct wbuf *b, const char *ctype)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(b->len, b->data, wbuf_free_data);

    if (resp == NULL)
        wbuf_free(b);
    return queue(req, status, resp, ctype);
}

int
http_respond_text(struct http_request *req, unsigned status, const char *content_type,
                  const void *buf, size_t len)
{
    struct wbuf *b;

    if (req->responded)
        return -RK_EINTERNAL;
    if ((b = wbuf_new(len)) == NULL)
        return queue(req, status, NULL, content_type);
    memcpy(b->data, buf, len);
    b->len = len;
    return respond_wbuf(req, status, b, content_type);
}

static int
respond_literal(struct http_request *req, unsigned status, const char *body)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_PERSISTENT);
    return queue(req, status, resp, "application/json");
}

int
http_respond_json(struct http_request *req, unsigned status, json_t *body)
{
    struct wbuf *b = NULL;
    int rc = -RK_EINTERNAL;

    if (req->responded)
        goto out;
    if (body == NULL) {
        rc = respond_literal(req, 500, API_ERRORS_TEXT("internal error: no response body"));
        goto out;
    }
    if ((b = wbuf_new(256)) == NULL ||
        json_dump_callback(body, wbuf_append, &b, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        rc = respond_literal(req, 500, API_ERRORS_TEXT("internal error: cannot encode JSON"));
        goto out;
    }
    rc = respond_wbuf(req, status, b, "application/json");
    b = NULL;
out:
    wbuf_free(b);
    json_decref(body);
    return rc;
}

static int respond_verror(struct http_request *req, unsigned status, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static int
respond_verror(struct http_request *req, unsigned status, const char *fmt, va_list ap)
{
    char msg[RK_ERRMSG_MAX];

    if (req->responded)
        return -RK_EINTERNAL;
    if (fmt == NULL)
        return respond_literal(req, status, API_ERRORS_NONE);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(req->audit_err, sizeof(req->audit_err), "%s", msg);
    return http_respond_json(req, status, api_errors(msg, NULL));
}

int
http_respond_error(struct http_request *req, unsigned status, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = respond_verror(req, status, fmt, ap);
    va_end(ap);
    return rc;
}

int
http_respond_no_content(struct http_request *req)
{
    if (req->responded)
        return -RK_EINTERNAL;
    return queue(req, MHD_HTTP_NO_CONTENT,
                 MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT),
                 "application/json");
}

int
http_respond_throttled(struct http_request *req)
{
    if (req->responded)
        return -RK_EINTERNAL;
    (void)http_response_header(req, "Retry-After", "1");
    return http_respond_error(req, 429, "too many failed authentication attempts; retry later");
}

/* ---------------------------------------------------------------------------------------- */
/* JSON bodies */

static int
json_depth_ok(json_t *j, unsigned depth, unsigned max)
{
    const char *k;
    json_t *v;
    size_t i;

    if (!json_is_object(j) && !json_is_array(j))
        return 1;
    if (depth > max)
        return 0;
    if (json_is_object(j)) {
        json_object_foreach(j, k, v) if (!json_depth_ok(v, depth + 1, max)) return 0;
    } else {
        json_array_foreach(j, i, v) if (!json_depth_ok(v, depth + 1, max)) return 0;
    }
    return 1;
}

int
http_request_json(struct http_request *req, json_t **out)
{
    unsigned max = req->inst->srv->json_depth;
    json_error_t jerr;
    json_t *j;

    *out = NULL;
    if (req->body_len == 0) {
        if ((*out = json_object()) == NULL) {
            http_respond_error(req, 500, "out of memory");
            return -RK_ENOMEM;
        }
        return 0;
    }
    j = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        /* jansson quotes the input ("invalid token near 'sk-…'"): that part may be a secret and
         * must not reach a response or a log, so only the reason and the position are kept. */
        char *near = strstr(jerr.text, " near ");
        if (near != NULL)
            *near = '\0';
        http_respond_error(req, 400, "failed to parse JSON input: %s (line %d, column %d)",
                           jerr.text, jerr.line, jerr.column);
        secure_wipe(&jerr, sizeof(jerr));
        return -RK_EINVAL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_error(req, 400, "failed to parse JSON input: expected a JSON object");
        return -RK_EINVAL;
    }
    if (!json_depth_ok(j, 1, max)) {
        json_decref(j);
        http_respond_error(req, 400, "failed to parse JSON input: nesting deeper than %u", max);
        return -RK_EINVAL;
    }
    *out = j;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Throttling lives in api/throttle.c; these are the server's entry points to it. */

int
http_throttle_fail(struct http_server *s, const char *ip)
{
    return throttle_fail(s->throttle, ip);
}

int
http_throttle_blocked(struct http_server *s, const char *ip)
{
    return throttle_blocked(s->throttle, ip);
}

/* ---------------------------------------------------------------------------------------- */
/* MHD callbacks */

static void
respond_early(struct http_request *req)
{
    char allow[64];

    if (req->bad_frame != NULL) {
        /* Where this request ends is in doubt, so nothing after it on the connection can be
         * trusted to start a request: close. */
        (void)http_response_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        http_respond_error(req, 400, "malformed request: %s", req->bad_frame);
        return;
    }
    switch (req->err_status) {
    case 404: respond_literal(req, 404, API_ERRORS_NONE); break;
    case 405:
        router_allow_format(req->allow, allow, sizeof(allow));
        (void)http_response_header(req, MHD_HTTP_HEADER_ALLOW, allow);
        http_respond_error(req, 405, "unsupported operation");
        break;
    case 413:
        http_respond_error(req, 413, "request body too large (limit %zu bytes)",
                           req->inst->srv->max_body);
        break;
    default: http_respond_error(req, 400, "invalid request path"); break;
    }
}

/* Runs the handler once the request's audit line is recorded. In the final access call the
 * line is queued and the connection suspended until it is fsynced (no worker waits for the
 * disk); MHD calls the access handler again on resume, which comes back here (req->aw). A KV
 * read instead runs at once and its answer waits for its request and response lines together
 * (http_audit_window_open). */
static void
dispatch(struct http_request *req)
{
    struct rk_error err = {0};
    int rc;

    if (req->aw == AW_REQUEST) {
        req->aw = AW_NONE;
        if (req->aw_result != 0) {
            snprintf(err.msg, sizeof(err.msg), "%s", req->aw_msg);
            goto refused;
        }
    } else if (http_audit_window_open(req)) {
        if (http_audit_request(req, &err) != 0)
            goto refused;
    } else if ((rc = http_audit_request_defer(req, &err)) == 1) {
        return; /* suspended until the line is written */
    } else if (rc != 0) {
        goto refused;
    }
    rc = req->route->handler(req, req->inst->srv->app, &err);
    if (req->responded)
        return;
    if (rc == 0) {
        log_error("http: the handler for %s %s returned without a response", req->method_str,
                  req->path);
        http_respond_error(req, 500, "internal error");
        return;
    }
    if (api_status_for(rc) >= 500)
        log_error("http: %s %s: %s", req->method_str, req->path,
                  err.msg[0] ? err.msg : rk_strerror(rc));
    http_respond_error(req, api_status_for(rc), "%s", err.msg[0] ? err.msg : rk_strerror(rc));
    return;
refused:
    /* The request's entry is recorded before the handler runs, or the handler does not run. */
    log_error("http: %s %s refused: %s", req->method_str, req->path, err.msg);
    http_respond_error(req, 500, "%s", err.msg);
}

static int
body_reserve(struct http_request *req, size_t need)
{
    if (need <= req->body_cap)
        return 0;
    size_t cap = req->body_cap ? req->body_cap : 1024;
    while (cap < need)
        cap *= 2;
    unsigned char *n = malloc(cap + 1);
    if (n == NULL)
        return -RK_ENOMEM;
    if (req->body_len > 0)
        memcpy(n, req->body, req->body_len);
    freezero(req->body, req->body_cap);
    req->body = n;
    req->body_cap = cap;
    return 0;
}

#define WELL_KNOWN "/.well-known/"
#define WELL_KNOWN_ROUTE "/v1/rekey/well-known/"

static void
request_begin(struct inst *in, struct conn *c, struct MHD_Connection *mc, const char *url,
              const char *method, const char *version, int raw_bad)
{
    struct http_server *s = in->srv;
    struct http_request *req = &c->req;
    const char *list = NULL, *cl;
    struct head_walk w;
    int64_t len;

    request_reset(req);
    req->mc = mc;
    req->inst = in;
    req->t0_us = time_now_us();
    req->counted = 1;
    atomic_fetch_add(&in->inflight, 1);
    req->method_str = method;
    req->path = url;
    req->path_len = strlen(url);
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        list = MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "list");
    req->method = router_method_parse(method, list);
    if ((req->bad_frame = http_head_check(s, c, mc, method, url, version, &w)) != NULL) {
        req->err_status = 400;
        return;
    }
    http_client_address(s, req, &w);
    if (raw_bad || router_path_check(url, req->path_len) != 0) {
        req->err_status = 400;
        return;
    }
    cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && (parse_int64(cl, 0, INT64_MAX, &len) != 0 || (uint64_t)len > s->max_body)) {
        req->err_status = 413;
        return;
    }
    /* A well-known URI (RFC 8615) is served by the route of its name under /v1/rekey/ (public,
     * read-only documents such as /.well-known/jwks.json): the one path outside /v1/. */
    if (strncmp(url, WELL_KNOWN, sizeof(WELL_KNOWN) - 1) == 0) {
        size_t n = sizeof(WELL_KNOWN_ROUTE) + req->path_len;
        if ((req->canon = malloc(n)) == NULL) {
            req->err_status = 500;
            return;
        }
        snprintf(req->canon, n, WELL_KNOWN_ROUTE "%s", url + sizeof(WELL_KNOWN) - 1);
        req->path = url = req->canon;
        req->path_len = strlen(url);
    }
    switch (router_match(s->router, req->method, url, req->path_len, &req->route, &req->param_off,
                         &req->allow)) {
    case ROUTER_OK: break;
    case ROUTER_BAD_METHOD: req->err_status = 405; return;
    default: req->err_status = 404; return;
    }
    /* A name in the path gets its one spelling here, before the handler's ACL check. */
    if (router_route_names(req->route) && req->canon != NULL) {
        req->err_status = 404; /* a well-known alias names exact routes only */
        return;
    }
    if (router_route_names(req->route)) {
        if ((req->canon = malloc(req->path_len + 1)) == NULL) {
            req->err_status = 500;
            return;
        }
        if (router_path_canon(req->route, url, req->path_len, req->param_off, req->canon,
                              req->path_len + 1) != 0) {
            req->err_status = 400;
            return;
        }
        req->path = req->canon;
    }
    if (cl != NULL && len > 0 && body_reserve(req, (size_t)len) != 0)
        req->err_status = 500;
}

enum MHD_Result
http_on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
               const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct inst *in = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *c = ci != NULL ? ci->socket_context : NULL;
    struct http_request *req;

    if (c == NULL)
        return MHD_NO; /* no per-connection state (out of memory): drop it */
    req = &c->req;
    if (*con_cls != req) {
        request_begin(in, c, mc, url, method, version, *con_cls == &raw_bad_marker);
        *con_cls = req;
        /* 413 and bad framing at once (before "100 Continue", before reading a body whose
         * length is in doubt); MHD closes since the body stays unread. */
        if (req->err_status == 413 || req->bad_frame != NULL)
            respond_early(req);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        /* MHD 0.9.75 refuses a response queued while the body is arriving: read and drop the
         * rest (up to another max_body, then cut the connection) and answer at the end. */
        if (req->err_status != 0 || req->responded) {
            req->discarded += n;
            return req->discarded > in->srv->max_body ? MHD_NO : MHD_YES;
        }
        if (n > in->srv->max_body - req->body_len) {
            req->err_status = 413;
            req->discarded = n;
            return MHD_YES;
        }
        if (body_reserve(req, req->body_len + n) != 0) {
            req->err_status = 500;
            req->discarded = n;
            return MHD_YES;
        }
        memcpy(req->body + req->body_len, upload_data, n);
        req->body_len += n;
        return MHD_YES;
    }
    if (req->responded) {
        if (req->aw == AW_RESPONSE && atomic_load(&req->aw_done))
            finish_pending(req); /* resumed: its line is written (or failed) */
        return MHD_YES;
    }
    if (req->aw == AW_REQUEST && !atomic_load(&req->aw_done))
        return MHD_YES; /* not resumed by the audit log (cannot happen) */
    atomic_store_explicit(&c->deadline_ms, 0, memory_order_relaxed);
    if (req->body != NULL)
        req->body[req->body_len] = '\0';
    req->can_defer = in->suspendable;
    if (req->err_status == 500)
        http_respond_error(req, 500, "out of memory");
    else if (req->err_status != 0)
        respond_early(req);
    else
        dispatch(req);
    req->can_defer = 0;
    return MHD_YES;
}

void
http_on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    struct inst *in = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *c = ci != NULL ? ci->socket_context : NULL;

    (void)toe;
    if (c == NULL)
        return;
    if (*con_cls == &c->req) {
        if (c->req.counted)
            atomic_fetch_sub(&in->inflight, 1);
        request_reset(&c->req);
    }
    *con_cls = NULL;
    atomic_store_explicit(&c->deadline_ms, time_mono_ms() + (int64_t)in->srv->timeout_s * 1000,
                          memory_order_relaxed);
}

void
http_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                   enum MHD_ConnectionNotificationCode toe)
{
    struct inst *in = cls;
    struct http_server *s = in->srv;
    struct conn *c;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = NULL;
        if (fd == NULL || (c = calloc(1, sizeof(*c))) == NULL)
            return;
        c->fd = fd->connect_fd;
        c->req.conn = c;
        snprintf(c->ip, sizeof(c->ip), "unknown");
        if (ad != NULL && ad->client_addr != NULL) {
            const struct sockaddr *sa = ad->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, c->ip,
                          sizeof(c->ip));
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                          c->ip, sizeof(c->ip));
        }
        c->peer_ok = netaddr_parse(c->ip, strlen(c->ip), &c->peer) == 0;
        atomic_store(&c->deadline_ms, time_mono_ms() + (int64_t)s->timeout_s * 1000);
        pthread_mutex_lock(&s->reap_lock);
        c->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = c;
        s->conns = c;
        pthread_mutex_unlock(&s->reap_lock);
        *socket_context = c;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED comes before MHD closes the socket, so once c is unlinked
     * here the reaper can never shut down a reused descriptor. */
    if ((c = *socket_context) == NULL)
        return;
    pthread_mutex_lock(&s->reap_lock);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&s->reap_lock);
    request_reset(&c->req);
    free(c);
    *socket_context = NULL;
}

void *
http_on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *c = ci != NULL ? ci->socket_context : NULL;

    (void)cls;
    /* http_head_check compares the raw length with where the version starts: measured now,
     * before MHD splits off the query and decodes the path in place. */
    if (c != NULL) {
        c->raw_uri = uri;
        c->raw_uri_len = strlen(uri);
    }
    return router_raw_path_check(uri) != 0 ? &raw_bad_marker : NULL;
}

void
http_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct inst *in = cls;
    char line[256];
    size_t n;

    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    snprintf(in->srv->mhd_msg, sizeof(in->srv->mhd_msg), "%s", line);
    log_debug("http: libmicrohttpd: %s", line);
}

/* Cuts connections whose request has not fully arrived by its deadline (slow loris): MHD's
 * connection timeout restarts with every byte, so it alone cannot. */
static void *
reaper_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;

    pthread_mutex_lock(&s->reap_lock);
    while (!s->reap_stop) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += REAPER_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->reap_cv, &s->reap_lock, &ts);
        int64_t now = time_mono_ms();
        for (struct conn *c = s->conns; c != NULL; c = c->next) {
            int64_t d = atomic_load_explicit(&c->deadline_ms, memory_order_relaxed);
            if (d != 0 && now > d && !c->cut) {
                c->cut = 1;
                shutdown(c->fd, SHUT_RDWR);
                log_info("http: closing a connection from %s: request not received within %us",
                         c->ip, s->timeout_s);
            }
        }
    }
    pthread_mutex_unlock(&s->reap_lock);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Server */

static void
server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    if (s->reaper_running) {
        pthread_mutex_lock(&s->reap_lock);
        s->reap_stop = 1;
        pthread_cond_signal(&s->reap_cv);
        pthread_mutex_unlock(&s->reap_lock);
        pthread_join(s->reaper, NULL);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    router_free(s->router);
    free(s->cert_file);
    free(s->key_file);
    throttle_free(s->throttle);
    free(s->proxies);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->reap_lock);
    pthread_cond_destroy(&s->reap_cv);
    free(s);
}

int
http_server_start(const struct http_config *cfg, const struct route *routes, size_t nroutes,
                  void *app, struct http_server **out, struct rk_error *err)
{
    struct http_server *s = NULL;
    pthread_condattr_t ca;
    long ncpu;
    int rc = -RK_ENOMEM;

    *out = NULL;
    if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL))
        return rk_error_set(err, RK_ECONFIG, "tls_cert_file and tls_key_file go together");
    if (cfg->tls_cert_file != NULL && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return rk_error_set(err, RK_ECONFIG, "this libmicrohttpd was built without TLS");
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    s->listen_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->reap_lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->reap_cv, &ca);
    pthread_condattr_destroy(&ca);

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers block (an fsync, a rotation), and a worker serves only its own connections:
     * one worker per core would allow one durable write per core at a time, which starves
     * the store's group commit (measured here on 2 cores, 64 connections: 2 workers ~2,300
     * writes/s, 16 workers ~4,900; reads also gain, 16 workers doing no worse than 2). */
    if (ncpu < 1)
        ncpu = 2;
    s->threads = cfg->threads ? cfg->threads
                              : (unsigned)(ncpu * 8 < HTTP_THREADS_MIN   ? HTTP_THREADS_MIN
                                           : ncpu * 8 > HTTP_THREADS_MAX ? HTTP_THREADS_MAX
                                                                         : ncpu * 8);
    s->max_connections = cfg->max_connections ? cfg->max_connections : 1024;
    s->per_ip = cfg->per_ip_connections ? cfg->per_ip_connections : 256;
    s->timeout_s = cfg->conn_timeout_s ? cfg->conn_timeout_s : 30;
    s->json_depth = cfg->json_max_depth ? cfg->json_max_depth : 64;
    s->drain_ms = cfg->drain_timeout_ms ? cfg->drain_timeout_ms : 10000;
    s->max_body = cfg->max_body ? cfg->max_body : 1024 * 1024;
    s->max_header = cfg->max_header_bytes ? cfg->max_header_bytes : 32 * 1024;
    if (s->max_header < 4096)
        s->max_header = 4096;
    s->app = app;
    if (cfg->tls_cert_file != NULL && ((s->cert_file = strdup(cfg->tls_cert_file)) == NULL ||
                                       (s->key_file = strdup(cfg->tls_key_file)) == NULL)) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = throttle_new(cfg->throttle_burst, cfg->throttle_per_s, cfg->throttle_slots,
                           &s->throttle)) != 0) {
        rk_error_set(err, -rc, "cannot set up the throttle table");
        goto out;
    }
    if ((rc = netaddr_cidr_list_parse(cfg->trusted_proxies, &s->proxies, &s->nproxies, err)) != 0) {
        if (rc == -RK_EINVAL)
            rc = -RK_ECONFIG;
        if (err != NULL)
            err->code = -rc;
        rk_error_prefix(err, "server.trusted_proxies");
        goto out;
    }
    /* The NUL check reads MHD's buffer as 0.9's parser leaves it (see http_head_check). */
    s->head_check = strncmp(MHD_get_version(), "0.9.", 4) == 0;
    if (!s->head_check)
        log_warn("http: libmicrohttpd %s: a NUL byte hidden in the request target or a header "
                 "is not detected (the check knows the 0.9 parser only)",
                 MHD_get_version());
    if ((rc = router_new(routes, nroutes, &s->router, err)) != 0)
        goto out;
    if ((rc = http_listen_open(s, cfg->listen ? cfg->listen : DEFAULT_LISTEN, s->cert_file != NULL,
                               cfg->tls_disable, err)) != 0)
        goto out;
    if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        rc = rk_error_set(err, RK_EINTERNAL, "cannot start the connection reaper thread");
        goto out;
    }
    s->reaper_running = 1;
    if ((rc = http_inst_start(s, &s->cur, err)) != 0)
        goto out;
    log_info("http: listening on %s port %u (%s, %u threads)",
             cfg->listen ? cfg->listen : DEFAULT_LISTEN, s->port, s->cert_file ? "TLS" : "no TLS",
             s->threads);
    *out = s;
    s = NULL;
    rc = 0;
out:
    server_free(s);
    return rc;
}

void
http_server_stop(struct http_server *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    http_inst_drain(s, s->cur);
    s->cur = NULL;
    pthread_mutex_unlock(&s->lock);
    server_free(s);
}

int
http_server_reload_tls(struct http_server *s, struct rk_error *err)
{
    struct inst *in = NULL, *old;
    int rc;

    if (s->cert_file == NULL)
        return rk_error_set(err, RK_EINVAL, "TLS is not configured; nothing to reload");
    pthread_mutex_lock(&s->lock);
    /* The new daemon shares the listening socket; only then does the old one stop accepting,
     * so no connection attempt is refused during the switch. */
    if ((rc = http_inst_start(s, &in, err)) != 0) {
        pthread_mutex_unlock(&s->lock);
        rk_error_prefix(err, "reloading TLS (still serving the old certificate)");
        return rc;
    }
    old = s->cur;
    s->cur = in;
    http_inst_drain(s, old);
    pthread_mutex_unlock(&s->lock);
    log_info("http: TLS certificate reloaded from %s", s->cert_file);
    return 0;
}

unsigned
http_server_port(const struct http_server *s)
{
    return s->port;
}
