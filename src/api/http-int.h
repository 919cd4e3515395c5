/* http-int.h: what the parts of the HTTP server share and no other module may use: http.c
 * (request objects, responses, the MHD callbacks, the server's entry points), reqhead.c (the
 * request head's framing checks and the client address through trusted proxies), http-events.c
 * (a request's and its response's events) and http-listen.c (the MHD daemons, TLS loading and
 * the listening socket). */
#ifndef REKEY_API_HTTP_INT_H
#define REKEY_API_HTTP_INT_H

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include "api/http.h"
#include "util/events.h"
#include "util/netaddr.h"

#define DEFAULT_LISTEN "127.0.0.1:8200"
#define MAX_RESP_HEADERS 8
#define TLS_FILE_MAX (1024 * 1024)
#define REAPER_PERIOD_MS 200
#define HTTP_THREADS_MIN 16 /* default worker count: 8 per core, within these bounds */
#define HTTP_THREADS_MAX 64
#define XFF_HEADERS_MAX 8 /* X-Forwarded-For headers looked at (the last ones) */
#define XFF_HOPS_MAX 32   /* addresses walked back through trusted proxies */

struct resp_header {
    char *name;
    char *value;
};

struct http_request {
    struct conn *conn;
    struct MHD_Connection *mc;
    struct inst *inst;
    const char *method_str;
    unsigned method;
    const char *path;
    size_t path_len;
    size_t param_off;
    const struct route *route;
    char *canon; /* path with its name canonicalised (router_path_canon), or NULL */
    unsigned char *body;
    size_t body_len;
    size_t body_cap;
    unsigned err_status;   /* an answer decided before the handler (400/404/405), or 0 */
    const char *bad_frame; /* why the request's framing was refused (400, then close), or NULL */
    const char *ip;        /* the client address (http_request_ip); NULL = the peer's */
    char fwd_ip[NETADDR_TEXT_MAX]; /* the client address X-Forwarded-For gave, when trusted */
    unsigned allow;
    size_t discarded; /* body bytes read after an early answer */
    int counted;      /* counted in inst->inflight */
    int responded;
    struct resp_header hdrs[MAX_RESP_HEADERS];
    size_t nhdrs;
    /* events (util/events.h): see audit_request */
    int audit_req;       /* its EV_API_REQUEST was published */
    int64_t t0_us;       /* when it began */
    char req_id[40];     /* the request id of its events */
    char audit_err[256]; /* the message of an error response */
    struct http_identity id;
    /* Waiting for the audit log without a thread (http-events.c): the connection is suspended
     * until the lines are fsynced, then resumed (MHD calls the access handler again). */
    int can_defer;       /* in the final access call: lines may be waited for suspended */
    int aw;              /* AW_*: what the suspended request waits for */
    int aw_window;       /* an audit window spans the handler (a KV read, see dispatch) */
    _Atomic int aw_done; /* the completion ran */
    int aw_result;       /* its result: 0, or -RK_E* with aw_msg */
    char aw_msg[RK_ERRMSG_MAX];
    struct MHD_Response *presp; /* the answer held back until its line is fsynced */
    unsigned pstatus;
    char pctype[128];
};

enum { AW_NONE, AW_REQUEST, AW_RESPONSE };

struct conn {
    struct conn *prev, *next; /* srv->conns, under srv->reap_lock */
    int fd;
    int cut;
    _Atomic int64_t deadline_ms; /* the next request must have arrived by then; 0 = none due */
    char ip[INET6_ADDRSTRLEN];
    struct netaddr peer; /* ip, parsed; peer_ok when it parsed */
    int peer_ok;
    const char *raw_uri; /* the request target as the URI log callback saw it (MHD's buffer) */
    size_t raw_uri_len;
    struct http_request req;
};

/* One MHD daemon; two exist for a moment during a TLS reload. */
struct inst {
    struct http_server *srv;
    struct MHD_Daemon *d;
    char *cert;
    size_t cert_len;
    char *key;
    size_t key_len;
    atomic_int inflight;
    atomic_int suspended; /* requests whose connection waits for the audit log (http-events.c) */
    atomic_int draining;
    int suspendable; /* started with MHD_ALLOW_SUSPEND_RESUME */
};

struct http_server {
    /* configuration, with defaults applied */
    unsigned threads, max_connections, per_ip, timeout_s, json_depth, drain_ms;
    size_t max_body, max_header;
    char *cert_file, *key_file;
    struct router *router;
    void *app;
    int listen_fd;
    int ipv6;
    unsigned port;

    pthread_mutex_t lock; /* cur, reload and stop */
    struct inst *cur;
    char mhd_msg[256]; /* MHD's last log line, for start errors */

    pthread_mutex_t reap_lock;
    pthread_cond_t reap_cv;
    int reap_stop;
    int reaper_running;
    pthread_t reaper;
    struct conn *conns;

    struct throttle *throttle; /* failed authentications, per client */

    struct netaddr_cidr *proxies; /* trusted_proxies */
    size_t nproxies;
    int head_check; /* this libmicrohttpd parses in place: NULs in the head can be found */
};

struct head_walk {
    int check;        /* look for hidden bytes (the server's head_check) */
    const char *end;  /* the end of the head in MHD's buffer (it starts at the method) */
    const char *prev; /* the end of the previous string */
    int hidden;       /* bytes hidden behind a NUL, or a layout the walk does not know */
    unsigned ncl, nte;
    const char *te;
    const char *xff[XFF_HEADERS_MAX]; /* a ring: the last XFF_HEADERS_MAX values */
    unsigned nxff;
};

/* ---- http-events.c ---- */

/* Publishes the request's EV_API_REQUEST once: before the handler (dispatch), or for an answer
 * given without one as its response is queued. Returns 0, or the subscriber's error. */
int http_audit_request(struct http_request *req, struct rk_error *err);

/* Publishes the response's event before it is queued; on a failure to record it the answer
 * becomes a 500 (resp and ctype replaced). Returns the status to send, or 0 when nothing may
 * be sent. */
unsigned http_audit_response(struct http_request *req, unsigned status, struct MHD_Response **resp,
                             const char **ctype);

/* As http_audit_request, but when the line was queued to the audit log without being written
 * yet, suspends the connection (req->aw = AW_REQUEST) and returns 1: the connection is resumed
 * once it is fsynced or failed (aw_result). Only in the final access call (req->can_defer). */
int http_audit_request_defer(struct http_request *req, struct rk_error *err);

/* For a KV read in the final access call, opens an audit window that stays open across the
 * handler, so that its request and response lines are written together and waited for once
 * (the handler changes nothing, and the answer waits for both lines): returns 1, and the
 * caller publishes the request (http_audit_request) and runs the handler, whose answer goes
 * through http_audit_response_defer (which closes the window). Returns 0 when it does not
 * apply. */
int http_audit_window_open(struct http_request *req);

/* As http_audit_response, but when lines were queued without being written yet (*pending = 1),
 * suspends the connection (req->aw = AW_RESPONSE): the caller keeps the answer in req->presp
 * until the connection is resumed. Closes a window the request opened. */
unsigned http_audit_response_defer(struct http_request *req, unsigned status,
                                   struct MHD_Response **resp, const char **ctype, int *pending);

/* Replaces *resp by the 500 answer of a request the audit log could not record. Returns 500,
 * or 0 when no answer could be made (out of memory). */
unsigned http_audit_fail_response(struct http_request *req, const char *why,
                                  struct MHD_Response **resp, const char **ctype);

/* ---- reqhead.c ---- */

/* Walks the head: returns why its framing is refused, or NULL; fills w for http_client_address. */
const char *http_head_check(struct http_server *s, struct conn *c, struct MHD_Connection *mc,
                            const char *method, const char *url, const char *version,
                            struct head_walk *w);

/* The client address: the peer, unless the peer is a trusted proxy; then, walking
 * X-Forwarded-For from the right (each proxy appends the address it was connected from), the
 * first address that is not a trusted proxy. An entry that does not parse ends the walk at the
 * last trusted hop: the proxy that wrote it is then taken as the client. */
void http_client_address(struct http_server *s, struct http_request *req,
                         const struct head_walk *w);

/* ---- http-listen.c ---- */

int http_inst_start(struct http_server *s, struct inst **out, struct rk_error *err);

/* Stops accepting, waits for requests in progress (up to drain_ms), then stops the daemon.
 * The listening socket stays open: it belongs to the server. */
void http_inst_drain(struct http_server *s, struct inst *in);

int http_listen_open(struct http_server *s, const char *addr, int tls, int tls_disable,
                     struct rk_error *err);

/* ---- http.c ---- */

enum MHD_Result http_on_access(void *cls, struct MHD_Connection *mc, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_size, void **con_cls);

void http_on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                       enum MHD_RequestTerminationCode toe);

void http_on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);

void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *mc);

void http_on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
