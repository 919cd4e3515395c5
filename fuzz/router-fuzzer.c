/* router-fuzzer.c: the request-line checks and the router on arbitrary method strings and
 * paths. Input: a method up to the first NUL byte, then the path (raw; then checked decoded).
 * Invariants: a path router_path_check accepts has no empty, "." or ".." segment and no
 * control byte; a match lies inside the path and its pattern is a prefix of it (or the path is
 * the prefix pattern without its '/'); a 405 names at least one method. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
h(struct http_request *req, void *app, struct rk_error *err)
{
    (void)req;
    (void)app;
    (void)err;
    return 0;
}

static const struct route routes[] = {
    {HTTP_GET, "/v1/sys/health", h, ROUTE_PARAM_NONE},
    {HTTP_PUT, "/v1/sys/health", h, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/", h, ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_LIST, "/v1/sys/policy/", h, ROUTE_PARAM_NAME_FOLD},
    {HTTP_GET | HTTP_PUT | HTTP_DELETE, "/v1/secret/data/", h, ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_LIST, "/v1/secret/metadata/", h, ROUTE_PARAM_PATH},
    {HTTP_PUT | HTTP_POST, "/v1/transit/sign/", h, ROUTE_PARAM_NAME},
    {HTTP_GET, "/v1/database/creds/", h, ROUTE_PARAM_NAME},
    {HTTP_PUT, "/v1/auth/token/create", h, ROUTE_PARAM_NONE},
};

static struct router *rt;

static void
check_clean(const char *p, size_t len)
{
    if (len == 0 || p[0] != '/' || memchr(p, '\0', len) != NULL)
        abort();
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f)
            abort();
        if (c == '/' && i + 1 < len) {
            const char *s = p + i + 1;
            size_t rest = len - i - 1;
            if (s[0] == '/')
                abort();
            if (s[0] == '.' && (rest == 1 || s[1] == '/'))
                abort();
            if (rest >= 2 && s[0] == '.' && s[1] == '.' && (rest == 2 || s[2] == '/'))
                abort();
        }
    }
}

/* router_path_canon keeps the length and everything but the name, which it accepts only in
 * Vault's name characters and folds only for a case-insensitive name. */
static void
check_canon(const struct route *m, const char *p, size_t len, size_t off)
{
    char *c = malloc(len + 1);
    size_t end = off;

    if (c == NULL)
        return;
    while (end < len && p[end] != '/')
        end++;
    if (router_path_canon(m, p, len, off, c, len + 1) == 0) {
        if (c[len] != '\0' || memcmp(c, p, off) != 0 || memcmp(c + end, p + end, len - end) != 0)
            abort();
        for (size_t i = off; i < end; i++) {
            if (!router_route_names(m) && c[i] != p[i])
                abort();
            if (router_route_names(m) && router_name_check(c + i, 1) != 0)
                abort();
            if (m->param == ROUTE_PARAM_NAME_FOLD && c[i] >= 'A' && c[i] <= 'Z')
                abort();
        }
    } else if (!router_route_names(m) || router_name_check(p + off, end - off) == 0) {
        abort();
    }
    free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_error err = {0};
    const char *nul = memchr(data, '\0', size);
    size_t mlen = nul ? (size_t)(nul - (const char *)data) : 0;
    char method[16], *path, allowbuf[64];
    size_t plen = nul ? size - mlen - 1 : size, off;
    const struct route *m;
    unsigned allow, meth;

    if (rt == NULL && router_new(routes, sizeof(routes) / sizeof(routes[0]), &rt, &err) != 0)
        abort();
    if (mlen >= sizeof(method))
        mlen = sizeof(method) - 1;
    memcpy(method, data, mlen);
    method[mlen] = '\0';
    if ((path = malloc(plen + 1)) == NULL)
        return 0;
    memcpy(path, nul ? (const char *)nul + 1 : (const char *)data, plen);
    path[plen] = '\0';

    (void)router_raw_path_check(path);
    meth = router_method_parse(method, (plen & 1) ? "true" : NULL);
    if (router_path_check(path, plen) == 0) {
        check_clean(path, plen);
        switch (router_match(rt, meth, path, plen, &m, &off, &allow)) {
        case ROUTER_OK: {
            size_t pl = strlen(m->pattern);
            if (m == NULL || off > plen)
                abort();
            if (!(pl <= plen && memcmp(m->pattern, path, pl) == 0) &&
                !(pl == plen + 1 && m->pattern[plen] == '/' && memcmp(m->pattern, path, plen) == 0))
                abort();
            if ((m->methods & (meth == HTTP_HEAD ? HTTP_GET : meth)) == 0)
                abort();
            check_canon(m, path, plen, off);
            break;
        }
        case ROUTER_BAD_METHOD:
            if (allow == 0 || router_allow_format(allow, allowbuf, sizeof(allowbuf)) == 0)
                abort();
            break;
        case ROUTER_NOT_FOUND: break;
        }
    }
    free(path);
    return 0;
}
