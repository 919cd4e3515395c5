/* router.c: route table compilation and matching, method parsing, request path checks and the
 * canonical spelling of names carried in paths (router.h). */
#include "util/enc.h"
#include "api/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ROUTER_PATH_MAX 4096

/* One distinct pattern; rows sharing it are routes[first .. first+count) of the sorted copy. */
struct pattern {
    const char *str;
    size_t len;
    unsigned methods; /* union of the rows' masks */
    size_t first;
    size_t count;
};

struct router {
    const struct route **rows; /* sorted by (prefix?, pattern) */
    struct pattern *exact;
    size_t nexact;
    struct pattern *prefix;
    size_t nprefix;
};

static int
is_prefix_pattern(const char *p)
{
    size_t n = strlen(p);
    return n > 0 && p[n - 1] == '/';
}

static int
row_cmp(const void *a, const void *b)
{
    const struct route *ra = *(const struct route *const *)a;
    const struct route *rb = *(const struct route *const *)b;
    int pa = is_prefix_pattern(ra->pattern), pb = is_prefix_pattern(rb->pattern);

    if (pa != pb)
        return pa - pb;
    return strcmp(ra->pattern, rb->pattern);
}

/* Compares the key (s[0..len) followed by '/' when slash is set) with pattern p. */
static int
key_cmp(const char *s, size_t len, int slash, const struct pattern *p)
{
    size_t klen = len + (slash ? 1 : 0);
    size_t n = klen < p->len ? klen : p->len;
    size_t common = len < n ? len : n;
    int c = memcmp(s, p->str, common);

    if (c != 0)
        return c;
    if (common < n && (c = (unsigned char)'/' - (unsigned char)p->str[common]) != 0)
        return c; /* the virtual '/' against p->str[len] */
    return (klen > p->len) - (klen < p->len);
}

static const struct pattern *
find(const struct pattern *v, size_t n, const char *s, size_t len, int slash)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(s, len, slash, &v[mid]);
        if (c == 0)
            return &v[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

void
router_free(struct router *r)
{
    if (r == NULL)
        return;
    free(r->rows);
    free(r->exact);
    free(r->prefix);
    free(r);
}

int
router_new(const struct route *routes, size_t nroutes, struct router **out, struct rk_error *err)
{
    struct router *r = NULL;
    int rc = -RK_ENOMEM;

    *out = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL ||
        (r->rows = calloc(nroutes + 1, sizeof(*r->rows))) == NULL ||
        (r->exact = calloc(nroutes + 1, sizeof(*r->exact))) == NULL ||
        (r->prefix = calloc(nroutes + 1, sizeof(*r->prefix))) == NULL) {
        rk_error_set(err, RK_ENOMEM, "router: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nroutes; i++) {
        const struct route *rt = &routes[i];
        if (rt->pattern == NULL || rt->handler == NULL || rt->methods == 0 ||
            (rt->methods & ~(unsigned)(HTTP_GET | HTTP_PUT | HTTP_POST | HTTP_DELETE | HTTP_LIST |
                                       HTTP_PATCH)) != 0) {
            rc = rk_error_set(err, RK_EINVAL, "route %zu: needs a pattern, methods and a handler",
                              i);
            goto out;
        }
        if (strncmp(rt->pattern, "/v1/", 4) != 0 ||
            router_path_check(rt->pattern, strlen(rt->pattern)) != 0) {
            rc = rk_error_set(err, RK_EINVAL, "route %zu: pattern '%s' is not a clean /v1/ path", i,
                              rt->pattern);
            goto out;
        }
        /* A prefix route says what its parameter is, so no name reaches a handler (and its
         * ACL check) unchecked because a new route forgot to say so. */
        if ((unsigned)rt->param > ROUTE_PARAM_NAME_FOLD ||
            (rt->param == ROUTE_PARAM_NONE) != !is_prefix_pattern(rt->pattern)) {
            rc = rk_error_set(err, RK_EINVAL,
                              "route %zu: '%s' needs ROUTE_PARAM_NONE when exact, else the kind "
                              "of its parameter (router.h)",
                              i, rt->pattern);
            goto out;
        }
        r->rows[i] = rt;
    }
    qsort(r->rows, nroutes, sizeof(*r->rows), row_cmp);
    for (size_t i = 0; i < nroutes;) {
        const struct route *rt = r->rows[i];
        struct pattern *p =
            is_prefix_pattern(rt->pattern) ? &r->prefix[r->nprefix++] : &r->exact[r->nexact++];
        p->str = rt->pattern;
        p->len = strlen(rt->pattern);
        p->first = i;
        for (; i < nroutes && strcmp(r->rows[i]->pattern, p->str) == 0; i++) {
            if ((p->methods & r->rows[i]->methods) != 0) {
                rc = rk_error_set(err, RK_EINVAL, "routes for '%s' overlap in their methods",
                                  p->str);
                goto out;
            }
            p->methods |= r->rows[i]->methods;
            p->count++;
        }
    }
    *out = r;
    r = NULL;
    rc = 0;
out:
    router_free(r);
    return rc;
}

static enum router_result
pick(const struct router *r, const struct pattern *p, unsigned method, const struct route **route,
     unsigned *allow)
{
    unsigned m = method == HTTP_HEAD ? HTTP_GET : method;

    for (size_t i = 0; m != 0 && i < p->count; i++) {
        if ((r->rows[p->first + i]->methods & m) != 0) {
            *route = r->rows[p->first + i];
            return ROUTER_OK;
        }
    }
    *allow = p->methods;
    return ROUTER_BAD_METHOD;
}

enum router_result
router_match(const struct router *r, unsigned method, const char *path, size_t len,
             const struct route **route, size_t *param_off, unsigned *allow)
{
    const struct pattern *p;

    *route = NULL;
    *param_off = len;
    *allow = 0;
    if ((p = find(r->exact, r->nexact, path, len, 0)) != NULL)
        return pick(r, p, method, route, allow);
    if (r->nprefix == 0)
        return ROUTER_NOT_FOUND;
    /* "/v1/secret/metadata" is the prefix "/v1/secret/metadata/" with an empty parameter. */
    if (len > 0 && path[len - 1] != '/' && (p = find(r->prefix, r->nprefix, path, len, 1))) {
        *param_off = len;
        return pick(r, p, method, route, allow);
    }
    /* Longest prefix first: try each "/"-terminated leading part of the path. */
    for (size_t i = len; i > 0; i--) {
        if (path[i - 1] != '/')
            continue;
        if ((p = find(r->prefix, r->nprefix, path, i, 0)) != NULL) {
            *param_off = i;
            return pick(r, p, method, route, allow);
        }
    }
    return ROUTER_NOT_FOUND;
}

static int
vault_bool_true(const char *s)
{
    return strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcasecmp(s, "t") == 0;
}

unsigned
router_method_parse(const char *method, const char *list_query)
{
    static const struct {
        const char *name;
        unsigned bit;
    } methods[] = {{"GET", HTTP_GET},       {"PUT", HTTP_PUT},   {"POST", HTTP_POST},
                   {"DELETE", HTTP_DELETE}, {"LIST", HTTP_LIST}, {"PATCH", HTTP_PATCH},
                   {"HEAD", HTTP_HEAD}};

    if (method == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(method, methods[i].name) == 0) {
            if (methods[i].bit == HTTP_GET && list_query != NULL && vault_bool_true(list_query))
                return HTTP_LIST;
            return methods[i].bit;
        }
    }
    return 0;
}

int
router_path_check(const char *path, size_t len)
{
    if (len == 0 || len > ROUTER_PATH_MAX || path[0] != '/')
        return -RK_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f)
            return -RK_EINVAL;
        if (c != '/')
            continue;
        /* At the start of each segment (after this '/'): no empty, "." or ".." segment. */
        size_t rest = len - i - 1;
        const char *s = path + i + 1;
        if (rest > 0 && s[0] == '/')
            return -RK_EINVAL;
        if (rest >= 1 && s[0] == '.' && (rest == 1 || s[1] == '/'))
            return -RK_EINVAL;
        if (rest >= 2 && s[0] == '.' && s[1] == '.' && (rest == 2 || s[2] == '/'))
            return -RK_EINVAL;
    }
    return 0;
}

int
router_raw_path_check(const char *uri)
{
    if (uri == NULL)
        return -RK_EINVAL;
    for (const char *p = uri; *p != '\0' && *p != '?'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x21 || c == 0x7f || c == '\\')
            return -RK_EINVAL;
        if (c != '%')
            continue;
        int hi = hex_digit_value(p[1]), lo = hi < 0 ? -1 : hex_digit_value(p[2]);
        if (hi < 0 || lo < 0)
            return -RK_EINVAL;
        int v = hi * 16 + lo;
        if (v < 0x20 || v == 0x7f || v == '.' || v == '/' || v == '\\')
            return -RK_EINVAL;
        p += 2;
    }
    return 0;
}

int
router_name_check(const char *s, size_t len)
{
    if (len == 0 || len > ROUTER_NAME_MAX)
        return -RK_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Spelled out rather than isalnum(): the locale must not widen what a name may hold. */
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-' || c == '@';
        if (!ok)
            return -RK_EINVAL;
    }
    return 0;
}

int
router_route_names(const struct route *rt)
{
    return rt != NULL && (rt->param == ROUTE_PARAM_NAME || rt->param == ROUTE_PARAM_NAME_FOLD);
}

int
router_path_canon(const struct route *rt, const char *path, size_t len, size_t param_off, char *out,
                  size_t outlen)
{
    size_t end = param_off;

    if (outlen <= len || param_off > len)
        return -RK_EINVAL;
    memcpy(out, path, len);
    out[len] = '\0';
    if (!router_route_names(rt) || param_off == len)
        return 0;
    while (end < len && path[end] != '/')
        end++;
    if (router_name_check(path + param_off, end - param_off) != 0)
        return -RK_EINVAL;
    if (rt->param == ROUTE_PARAM_NAME_FOLD)
        for (size_t i = param_off; i < end; i++)
            if (out[i] >= 'A' && out[i] <= 'Z')
                out[i] = (char)(out[i] - 'A' + 'a');
    return 0;
}

size_t
router_allow_format(unsigned mask, char *buf, size_t buflen)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{HTTP_GET, "GET"},   {HTTP_GET, "HEAD"},    {HTTP_PUT, "PUT"},
                 {HTTP_POST, "POST"}, {HTTP_PATCH, "PATCH"}, {HTTP_DELETE, "DELETE"},
                 {HTTP_LIST, "LIST"}};
    size_t off = 0;

    if (buflen == 0)
        return 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if ((mask & names[i].bit) == 0)
            continue;
        int n = snprintf(buf + off, buflen - off, "%s%s", off ? ", " : "", names[i].name);
        if (n < 0 || (size_t)n >= buflen - off)
            break;
        off += (size_t)n;
    }
    return off;
}
