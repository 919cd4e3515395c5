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

/* What the parameter of a prefix route carries. The server canonicalises a name in a path
 * once, before the handler runs and so before any ACL check (router_path_canon), so that the
 * ACL check, the handler and the store see one spelling of it: checking the path as sent and
 * storing a lowercased name let "sys/policies/acl/SelfPol" slip past a deny on ".../selfpol".
 * Vault's rules are kept: policy names are case-insensitive, every other name (token roles,
 * mounts, transit keys, database and PKI roles) and every path is case-sensitive. A handler
 * of a ROUTE_PARAM_NAME route must store the name as sent, never folded. Every prefix route
 * must say which it is (router_new refuses ROUTE_PARAM_NONE on one); see docs/server.md,
 * "Names in paths". */
enum route_param {
    ROUTE_PARAM_NONE = 0,  /* exact routes, and only they (no parameter) */
    ROUTE_PARAM_PATH,      /* a free path (KV, rekey/…): kept as sent; the handler checks it */
    ROUTE_PARAM_NAME,      /* the parameter's first segment is a case-sensitive name: checked
                            * with router_name_check, kept as sent */
    ROUTE_PARAM_NAME_FOLD, /* the first segment is a case-insensitive name: checked, then
                            * lowercased (ACL policies, as in Vault) */
};

struct route {
    unsigned methods;    /* mask of HTTP_* bits */
    const char *pattern; /* "/v1/..." exact, or ending in '/' for a prefix; must outlive */
    http_handler_fn handler;
    enum route_param param; /* what the rest of the path is; ROUTE_PARAM_NONE when exact */
};

struct router;

enum router_result {
    ROUTER_OK = 0,
    ROUTER_NOT_FOUND = 1,  /* no pattern matches the path: 404 */
    ROUTER_BAD_METHOD = 2, /* the path matches but not the method: 405, *allow says which */
};

/* Checks and compiles a route table (patterns under /v1/, valid paths, a non-zero method mask, a
 * handler, a known param kind and none on an exact pattern, no two rows with the same pattern
 * and a common method). The table is borrowed: it
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

/* The longest name router_name_check accepts (as POLICY_NAME_MAX). */
#define ROUTER_NAME_MAX 128

/* Checks a name carried in a path (a policy, a role, a key): 1 to ROUTER_NAME_MAX bytes, each
 * an ASCII letter or digit or one of ". _ - @" (Vault's generic name characters), so no
 * control character, space, '%', byte above 0x7e or anything a terminal or log would act on.
 * Returns 0, or -RK_EINVAL. */
int router_name_check(const char *s, size_t len);

/* 1 when rt's parameter carries a name (ROUTE_PARAM_NAME, ROUTE_PARAM_NAME_FOLD), which the
 * server must pass through router_path_canon before the handler runs; else 0. */
int router_route_names(const struct route *rt);

/* Canonicalises path[0..len), matched to rt with the parameter at param_off (router_match),
 * into out[0..len] (NUL-terminated; outlen must exceed len): the first segment of the
 * parameter (up to '/' or its end; none when the parameter is empty) must pass
 * router_name_check when rt carries a name, and is lowercased for ROUTE_PARAM_NAME_FOLD; the
 * rest is copied as it is. Returns 0, or -RK_EINVAL for an invalid name (answer 400) or a
 * too small out. Does not allocate. */
int router_path_canon(const struct route *rt, const char *path, size_t len, size_t param_off,
                      char *out, size_t outlen);

/* Writes the Allow header value for mask ("GET, HEAD, LIST") into buf. Returns the length. */
size_t router_allow_format(unsigned mask, char *buf, size_t buflen);

#endif
