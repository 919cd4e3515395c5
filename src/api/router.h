/* router.h: the route table of the HTTP API and the request-line checks done before routing.
 *
 * Routes are Vault-style paths under /v1/: a pattern without a trailing '/' matches exactly
 * ("/v1/sys/health"); a pattern ending in '/' is a prefix ("/v1/secret/data/") and the rest of
 * the path after it is the route's parameter (it also matches the pattern without its trailing
 * '/', with an empty parameter, so "LIST /v1/secret/metadata" works). An exact pattern beats a
 * prefix, and a longer prefix beats a shorter one. Several rows may share one pattern with
 * different methods; the best-matching pattern alone decides between 200 and 405. The router
 * does no I/O and allocates only in router_new, so the fuzzer can drive it directly. */
#ifndef REKEY_API_ROUTER_H
#define REKEY_API_ROUTER_H

#include <stddef.h>

#include "util/err.h"

struct http_request;

/* Method bits for route masks. Vault's LIST verb, and GET with ?list=true, are HTTP_LIST.
 * HEAD is routed like GET (MHD sends no body for it). */
enum http_method {
    HTTP_GET = 1u << 0,
    HTTP_PUT = 1u << 1,
    HTTP_POST = 1u << 2,
    HTTP_DELETE = 1u << 3,
    HTTP_LIST = 1u << 4,
    HTTP_PATCH = 1u << 5,
    HTTP_HEAD = 1u << 6,
};
#define HTTP_WRITE (HTTP_PUT | HTTP_POST)

/* A handler answers with one http_respond_* call and returns 0. If it returns -RK_E* without
 * having responded, the server answers with the status mapped from the code and the message in
 * err (so it must not hold a secret). app is the pointer given to http_server_start. */
typedef int (*http_handler_fn)(struct http_request *req, void *app, struct rk_error *err);

struct route {
    unsigned methods;    /* mask of HTTP_* bits */
    const char *pattern; /* "/v1/..." exact, or ending in '/' for a prefix; must outlive */
    http_handler_fn handler;
};

struct router;

enum router_result {
    ROUTER_OK = 0,
    ROUTER_NOT_FOUND = 1,  /* no pattern matches the path: 404 */
    ROUTER_BAD_METHOD = 2, /* the path matches but not the method: 405, *allow says which */
};

/* Checks and compiles a route table (patterns under /v1/, valid paths, a non-zero method mask, a
 * handler, no two rows with the same pattern and a common method). The table is borrowed: it
 * must outlive the router. Returns 0 or -RK_EINVAL / -RK_ENOMEM; *out is freed with
 * router_free. */
int router_new(const struct route *routes, size_t nroutes, struct router **out,
               struct rk_error *err);

/* Frees r; accepts NULL. */
void router_free(struct router *r);

/* Finds the route for method (one HTTP_* bit; 0 for an unknown method) and path[0..len).
 * Returns ROUTER_OK with *route and *param_off (offset of the parameter in path, == len for an
 * exact match), ROUTER_NOT_FOUND, or ROUTER_BAD_METHOD with *allow = the methods the path
 * accepts. O(log routes) per '/' in the path. */
enum router_result router_match(const struct router *r, unsigned method, const char *path,
                                size_t len, const struct route **route, size_t *param_off,
                                unsigned *allow);

/* Maps a request method to its HTTP_* bit; GET becomes HTTP_LIST when list_query is non-NULL
 * and true in Vault's sense ("true", "1", "t", case-insensitive). Unknown methods give 0. */
unsigned router_method_parse(const char *method, const char *list_query);

/* Checks a decoded request path: starts with '/', at most 4096 bytes, no NUL or control byte
 * (< 0x20, 0x7f), no "//", no "." or ".." segment. Returns 0, or -RK_EINVAL. */
int router_path_check(const char *path, size_t len);

/* Checks the raw (still percent-encoded) request target up to '?': no control byte, every '%'
 * followed by two hex digits, and no encoded NUL, control byte, '.', '/' or '\' (which would
 * only serve to smuggle a segment past the decoded check). Returns 0, or -RK_EINVAL. */
int router_raw_path_check(const char *uri);

/* Writes the Allow header value for mask ("GET, HEAD, LIST") into buf. Returns the length. */
size_t router_allow_format(unsigned mask, char *buf, size_t buflen);

#endif
