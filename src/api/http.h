/* http.h: the HTTP server core of `rekey server` (libmicrohttpd), independent of the store.
 *
 * Threading: MHD runs a pool of worker threads (epoll); handlers run in them and may block (a
 * rotation), which holds up only the connections of that worker. A request object lives from
 * the handler call until its response is queued; its strings are borrowed and must not be kept.
 *
 * Limits: request bodies above max_body are refused with 413 as soon as Content-Length or the
 * accumulated upload says so; each request (headers and body) must arrive within
 * conn_timeout_s of the connection opening or of the previous response (a reaper thread cuts
 * slow-loris clients; MHD's own timeout only measures idleness); header memory, connection
 * count and connections per IP are bounded. Paths are checked before routing (router.h).
 *
 * Framing: a request with both Content-Length and Transfer-Encoding, more than one of either,
 * a transfer coding other than chunked, or a NUL byte in the request line or a header value
 * (which libmicrohttpd would cut the string at) is answered 400 and the connection closed,
 * before any handler runs. */
#ifndef REKEY_API_HTTP_H
#define REKEY_API_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "api/router.h"
#include "util/err.h"

struct http_server;
struct http_request;

struct http_config {
    const char *listen;          /* "127.0.0.1:8200", "[::1]:8200", port 0 = ephemeral;
                                  * NULL = "127.0.0.1:8200" */
    unsigned threads;            /* worker threads; 0 = 8 per online CPU, clamped to 16..64 */
    const char *tls_cert_file;   /* PEM certificate (chain); both or neither */
    const char *tls_key_file;    /* PEM private key */
    int tls_disable;             /* allow plain HTTP on a non-loopback address */
    size_t max_body;             /* bytes; 0 = 1 MiB */
    unsigned max_connections;    /* 0 = 1024 */
    unsigned per_ip_connections; /* 0 = 256 */
    unsigned conn_timeout_s;     /* 0 = 30; the config's server.request_timeout */
    size_t max_header_bytes;     /* per-connection header memory; 0 = 32 KiB */
    unsigned json_max_depth;     /* nesting of request JSON; 0 = 64 */
    unsigned drain_timeout_ms;   /* http_server_stop waits this long for requests; 0 = 10000 */
    unsigned throttle_burst;     /* failed auths allowed at once per client; 0 = 10 */
    unsigned throttle_per_s;     /* then this many per second; 0 = 1 */
    unsigned throttle_slots;     /* clients remembered (oldest evicted); 0 = 4096 */
    const char *trusted_proxies; /* comma-separated addresses or CIDR ranges whose
                                  * X-Forwarded-For is believed (http_request_ip); NULL = none */
};

/* Starts listening and serving routes (checked by router_new; the table and app are borrowed
 * and must outlive the server). Refuses a non-loopback address without TLS unless tls_disable,
 * TLS when MHD lacks it, and a trusted_proxies entry that is not an address or CIDR range.
 * Returns 0, -RK_ECONFIG, -RK_EINVAL, -RK_EIO (bind, TLS files) or -RK_ENOMEM; *out is stopped
 * and freed with http_server_stop. */
int http_server_start(const struct http_config *cfg, const struct route *routes, size_t nroutes,
                      void *app, struct http_server **out, struct rk_error *err);

/* Stops accepting at once, lets requests in progress finish for up to drain_timeout_ms (their
 * responses carry Connection: close), then closes every connection and frees s. Accepts NULL.
 * Must not be called from a handler. */
void http_server_stop(struct http_server *s);

/* Re-reads tls_cert_file and tls_key_file (after a SIGHUP; call it from the main loop, not the
 * signal handler). The pair is checked with OpenSSL first; then a new MHD daemon with the new
 * pair starts on the same listening socket, the old one stops accepting and drains as in
 * http_server_stop, so no connection is refused and requests in progress finish on the old
 * certificate. On failure the old daemon keeps serving. Returns 0, -RK_EINVAL (TLS not
 * configured), -RK_EIO or -RK_ECONFIG (unreadable or mismatched files). */
int http_server_reload_tls(struct http_server *s, struct rk_error *err);

/* The bound port (useful with port 0). */
unsigned http_server_port(const struct http_server *s);

/* Failed-auth throttling, a token bucket per client (IPv4 address, or IPv6 /64; the address is
 * http_request_ip's): burst failures at once, then throttle_per_s per second. It limits
 * failures, not requests: a caller answers 429 only to a request that has failed to
 * authenticate while the client is blocked, and serves one whose token is valid.
 * http_throttle_fail records one failure (logged with the IP, never a token) and returns 1 if
 * the client is now throttled, else 0. http_throttle_blocked returns 1 while the client has no
 * failure left (answer 429: see http_respond_throttled), else 0. Bounded table (throttle_slots
 * entries, only failures add one), O(1) per call, least recently seen evicted. */
int http_throttle_fail(struct http_server *s, const char *ip);
int http_throttle_blocked(struct http_server *s, const char *ip);

/* --- The request, for handlers. Strings are borrowed for the duration of the handler. --- */

/* The method bit (HTTP_LIST for LIST and GET ?list=true) and the method as sent. */
unsigned http_request_method(const struct http_request *req);
const char *http_request_method_str(const struct http_request *req);

/* The decoded, checked path ("/v1/secret/data/a/b") and, for a prefix route, the rest after
 * the prefix ("a/b"; "" for an exact route). */
const char *http_request_path(const struct http_request *req);
const char *http_request_param(const struct http_request *req);

/* A query argument or a header (case-insensitive name), or NULL. */
const char *http_request_query(const struct http_request *req, const char *name);
const char *http_request_header(const struct http_request *req, const char *name);

/* The client token: X-Vault-Token, else the value of "Authorization: Bearer <token>", or NULL.
 * Never log it. */
const char *http_request_token(const struct http_request *req);

/* The client address as text ("127.0.0.1", "::1"): the peer's; or, when the peer is one of
 * trusted_proxies, the right-most address of X-Forwarded-For (all such headers, in order) that
 * is not a trusted proxy. X-Forwarded-For from any other peer is ignored. */
const char *http_request_ip(const struct http_request *req);

/* The body (may hold secrets; wiped when the request ends) and its length. */
const unsigned char *http_request_body(const struct http_request *req, size_t *len);

/* Parses the body as a JSON object (an empty body gives {}), rejecting duplicate keys and
 * nesting deeper than json_max_depth. Returns 0 with *out owned by the caller (json_decref),
 * or -RK_EINVAL after having answered 400 {"errors":["failed to parse JSON input: ..."]}. */
int http_request_json(struct http_request *req, json_t **out);

/* The server and the app pointer given to http_server_start. */
struct http_server *http_request_server(const struct http_request *req);
void *http_request_app(const struct http_request *req);

/* Adds a header to the response this request will get (copied; at most 8). Returns 0 or
 * -RK_ELIMIT / -RK_ENOMEM / -RK_EINVAL (CR or LF in it). */
int http_response_header(struct http_request *req, const char *name, const char *value);

/* --- Events: each request is published to the event stream (util/events.h) as EV_API_REQUEST
 * before its handler runs, and as EV_API_RESPONSE as its response is queued (also an answer
 * given before routing: 400, 404, 405, 413). A request whose request event a subscriber cannot
 * record (the audit log) is answered 500 and its handler does not run; a response whose event
 * cannot be recorded becomes a 500 (as Vault does when no audit device can write). --- */

#define HTTP_ID_MAX 128
#define HTTP_ID_POLBUF 1024
#define HTTP_ID_POLICIES 32

/* Who a request comes from, as far as the server can tell before the handler authenticates. */
struct http_identity {
    char actor[HTTP_ID_MAX];     /* the token's display name; "" when unknown */
    char accessor[HTTP_ID_MAX];  /* the token's accessor; "" when unknown; never the token */
    char polbuf[HTTP_ID_POLBUF]; /* the policies, each NUL-terminated, one after the other */
    size_t npolicies;
};

/* Fills id for req (app is the server's app pointer); leaves it empty for a request without a
 * valid token. Must not answer the request, spend a token use or count a failed attempt. */
typedef void (*http_identify_fn)(struct http_request *req, void *app, struct http_identity *id);

/* Sets the identify function the server calls before a request's event (process-wide; the
 * application sets it once; NULL: requests are published without identity). */
void http_set_identify(http_identify_fn fn);

/* Adds a policy name to id (cut when HTTP_ID_POLICIES or the buffer are full). */
void http_identity_add_policy(struct http_identity *id, const char *name);

/* --- Responses: one per request. All carry Content-Type and Cache-Control: no-store. Each
 * returns 0, or -RK_EINTERNAL if the request already has a response or MHD refused it. --- */

/* Sends body as compact JSON. Steals the reference to body (like json_object_set_new); a NULL
 * body (a failed json_pack) gives 500. The serialized text is wiped after sending. */
int http_respond_json(struct http_request *req, unsigned status, json_t *body);

/* Sends Vault's error shape {"errors":["<message>"]}; a NULL fmt sends {"errors":[]}. */
int http_respond_error(struct http_request *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends 204 with no body. */
int http_respond_no_content(struct http_request *req);

/* Sends buf[0..len) (copied, wiped after sending) with content_type. */
int http_respond_text(struct http_request *req, unsigned status, const char *content_type,
                      const void *buf, size_t len);

/* Sends 429 with Retry-After for a throttled client. */
int http_respond_throttled(struct http_request *req);

#endif
