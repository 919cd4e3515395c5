/* inventory.c: loads the YAML configuration with libfyaml into struct inventory (the model,
 * inventory/inventory.h): the document and its top-level sections store, server and audit.
 * The hooks and the secrets are read by config-hooks.c and config-secrets.c, the YAML tree and
 * the scalar readers are config-yaml.c (engine/config.h).
 *
 * The document is walked once; every mapping is checked against a table of allowed keys so a
 * typo is an error that names file:line:column, the key and what was expected. */
#include "engine/inventory.h"

#include <ctype.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "util/fsutil.h"
#include "util/netaddr.h"
#include "util/parse.h"

#define INV_MAX_FILE (16u * 1024 * 1024)
#define DEFAULT_CHECK_INTERVAL 60
#define DEFAULT_REQUEST_TIMEOUT 30
#define MAX_REQUEST_TIMEOUT 3600
/* server.max_lease_ttl: at most what Vault's Go durations hold (~292 years), as
 * TOKEN_DURATION_MAX in api/token.h, so token arithmetic on it never overflows. */
#define MAX_LEASE_TTL_LIMIT (INT64_MAX / 1000000000)

/* ---- top level sections ---- */

static int
load_store(struct loader *L, struct ynode *v, struct pos kpos)
{
    static const char *const keys[] = {"backend", "path", "key_file", "endpoints"};
    enum { K_BACKEND, K_PATH, K_KEYFILE, K_ENDPOINTS, K_N };
    struct ment e[K_N];
    struct inventory *inv = L->inv;
    int r;

    if (is_null(v))
        return 0;
    if ((r = map_collect(L, v, kpos, "store", "", keys, K_N, e)) != 0)
        return r;
    if (has(&e[K_BACKEND]) && (r = get_enum(L, e[K_BACKEND].val, e[K_BACKEND].kpos, "store.backend",
                                            "sqlite|log|etcd", &inv->store_backend)) != 0)
        return r;
    if (has(&e[K_PATH]) &&
        (r = get_file(L, e[K_PATH].val, e[K_PATH].kpos, "store.path", &inv->store_path)) != 0)
        return r;
    if (has(&e[K_KEYFILE]) && (r = get_file(L, e[K_KEYFILE].val, e[K_KEYFILE].kpos,
                                            "store.key_file", &inv->key_file)) != 0)
        return r;
    if (has(&e[K_ENDPOINTS])) {
        struct ynode *ev = e[K_ENDPOINTS].val;
        if (y_is_seq(ev)) {
            void *it = NULL;
            struct ynode *item;
            size_t off = 0, cap = 0;
            char *acc = NULL;
            while ((item = y_seq_next(ev, &it)) != NULL) {
                const char *s = NULL;
                size_t len = 0;
                char *na;
                if ((r = get_scalar(L, item, e[K_ENDPOINTS].kpos, "store.endpoints",
                                    "a URL such as http://127.0.0.1:2379", &s, &len)) != 0) {
                    free(acc);
                    return r;
                }
                if (off + len + 2 > cap) {
                    cap = (off + len + 2) * 2;
                    if ((na = realloc(acc, cap)) == NULL) {
                        free(acc);
                        return enomem(L);
                    }
                    acc = na;
                }
                if (off > 0)
                    acc[off++] = ',';
                memcpy(acc + off, s, len);
                off += len;
                acc[off] = '\0';
            }
            free(inv->store_endpoints);
            inv->store_endpoints = acc;
        } else if ((r = get_str_ne(L, ev, e[K_ENDPOINTS].kpos, "store.endpoints",
                                   &inv->store_endpoints)) != 0) {
            return r;
        }
    }
    if (strcmp(inv->store_backend, "etcd") == 0 && inv->store_endpoints == NULL)
        return lerr(L, kpos, "store.endpoints",
                    "backend etcd needs endpoints (e.g. [http://127.0.0.1:2379])");
    return 0;
}

/* server.trusted_proxies: a list of addresses or CIDR ranges (or one string of them, comma-
 * separated), each checked by netaddr_cidr_parse, kept comma-joined for http_config. */
static int
get_proxies(struct loader *L, struct ynode *v, struct pos kpos, char **out)
{
    static const char *const key = "server.trusted_proxies";
    static const char *const what = "an IP address or CIDR range such as 10.0.0.0/8";
    struct netaddr_cidr c;
    void *it = NULL;
    struct ynode *item;
    size_t off = 0, cap = 0;
    char *acc = NULL;
    int r;

    for (item = y_is_seq(v) ? y_seq_next(v, &it) : v; item != NULL;
         item = y_is_seq(v) ? y_seq_next(v, &it) : NULL) {
        const char *s = NULL, *p, *e;
        size_t len = 0;
        if ((r = get_scalar(L, item, kpos, key, what, &s, &len)) != 0)
            goto fail;
        for (p = s; p <= s + len; p = e + 1) { /* each comma-separated part */
            const char *b = p;
            e = memchr(p, ',', (size_t)(s + len - p));
            e = e != NULL ? e : s + len;
            while (b < e && (*b == ' ' || *b == '\t'))
                b++;
            size_t n = (size_t)(e - b);
            while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\t'))
                n--;
            if (netaddr_cidr_parse(b, n, &c) != 0) {
                r = lerr(L, val_pos(item, kpos), key, "'%.*s' is not %s", (int)(n > 64 ? 64 : n), b,
                         what);
                goto fail;
            }
            if (off + n + 2 > cap) {
                char *na;
                cap = (off + n + 2) * 2;
                if ((na = realloc(acc, cap)) == NULL) {
                    r = enomem(L);
                    goto fail;
                }
                acc = na;
            }
            if (off > 0)
                acc[off++] = ',';
            memcpy(acc + off, b, n);
            off += n;
            acc[off] = '\0';
        }
    }
    free(*out);
    *out = acc;
    return 0;
fail:
    free(acc);
    return r;
}

/* server.api_addr: "http://HOST[:PORT]" or "https://…", at most API_ADDR_MAX bytes, no user
 * info, path, query or white space (a trailing '/' is dropped); HOST a name, an IPv4 address or
 * a bracketed IPv6 one. */
#define API_ADDR_MAX 255
static int
get_api_addr(struct loader *L, struct ynode *v, struct pos kpos, char **out)
{
    const char *hint = "expected a URL such as https://rekey-1.internal:8200 (scheme, host and "
                       "port only)";
    const char *rest;
    char *s = NULL;
    size_t len;
    int r;

    if ((r = get_str_ne(L, v, kpos, "server.api_addr", &s)) != 0) {
        free(s);
        return r;
    }
    len = strlen(s);
    if (len > 0 && s[len - 1] == '/')
        s[--len] = '\0';
    rest = strncmp(s, "http://", 7) == 0 ? s + 7 : strncmp(s, "https://", 8) == 0 ? s + 8 : NULL;
    r = rest == NULL || rest[0] == '\0' || rest[0] == ':' || len > API_ADDR_MAX;
    for (const char *p = rest; !r && *p != '\0'; p++)
        r = !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".-_:[]", *p) != NULL);
    if (r) {
        free(s);
        return lerr(L, val_pos(v, kpos), "server.api_addr", "%s", hint);
    }
    free(*out);
    *out = s;
    return 0;
}

static int
load_server(struct loader *L, struct ynode *v, struct pos kpos)
{
    static const char *const keys[] = {
        "listen",        "tls_cert",        "tls_key",
        "tls_disable",   "check_interval",  "request_timeout",
        "max_lease_ttl", "trusted_proxies", "unauthenticated_metrics_access",
        "api_addr"};
    enum {
        K_LISTEN,
        K_CERT,
        K_KEY,
        K_DISABLE,
        K_CHECK,
        K_REQTIMEOUT,
        K_MAXLEASE,
        K_PROXIES,
        K_UNAUTHMETRICS,
        K_APIADDR,
        K_N
    };
    struct ment e[K_N];
    struct inventory *inv = L->inv;
    int r;

    if (is_null(v))
        return 0;
    if ((r = map_collect(L, v, kpos, "server", "", keys, K_N, e)) != 0)
        return r;
    if (has(&e[K_LISTEN]) &&
        (r = get_str_ne(L, e[K_LISTEN].val, e[K_LISTEN].kpos, "server.listen", &inv->listen)) != 0)
        return r;
    if (has(&e[K_CERT]) &&
        (r = get_file(L, e[K_CERT].val, e[K_CERT].kpos, "server.tls_cert", &inv->tls_cert)) != 0)
        return r;
    if (has(&e[K_KEY]) &&
        (r = get_file(L, e[K_KEY].val, e[K_KEY].kpos, "server.tls_key", &inv->tls_key)) != 0)
        return r;
    if (has(&e[K_DISABLE]) && (r = get_bool(L, e[K_DISABLE].val, e[K_DISABLE].kpos,
                                            "server.tls_disable", &inv->tls_disable)) != 0)
        return r;
    if (has(&e[K_CHECK])) {
        if ((r = get_duration(L, e[K_CHECK].val, e[K_CHECK].kpos, "server.check_interval",
                              &inv->check_interval)) != 0)
            return r;
        if (inv->check_interval <= 0)
            return lerr(L, val_pos(e[K_CHECK].val, e[K_CHECK].kpos), "server.check_interval",
                        "expected a duration greater than 0");
    }
    if (has(&e[K_REQTIMEOUT])) {
        int64_t secs;
        if ((r = get_duration(L, e[K_REQTIMEOUT].val, e[K_REQTIMEOUT].kpos,
                              "server.request_timeout", &secs)) != 0)
            return r;
        /* Below 1s no real client gets a request through; above 1h the slow-loris protection
         * it exists for is gone (a connection slot held for hours). */
        if (secs < 1 || secs > MAX_REQUEST_TIMEOUT)
            return lerr(L, val_pos(e[K_REQTIMEOUT].val, e[K_REQTIMEOUT].kpos),
                        "server.request_timeout", "expected a duration from 1s to 1h");
        inv->request_timeout = secs;
    }
    if (has(&e[K_MAXLEASE])) {
        int64_t secs;
        if ((r = get_duration(L, e[K_MAXLEASE].val, e[K_MAXLEASE].kpos, "server.max_lease_ttl",
                              &secs)) != 0)
            return r;
        if (secs < 1 || secs > MAX_LEASE_TTL_LIMIT)
            return lerr(L, val_pos(e[K_MAXLEASE].val, e[K_MAXLEASE].kpos), "server.max_lease_ttl",
                        "expected a duration from 1s to 106751d (e.g. 768h)");
        inv->max_lease_ttl = secs;
    }
    if (has(&e[K_PROXIES]) &&
        (r = get_proxies(L, e[K_PROXIES].val, e[K_PROXIES].kpos, &inv->trusted_proxies)) != 0)
        return r;
    if (has(&e[K_UNAUTHMETRICS]) &&
        (r = get_bool(L, e[K_UNAUTHMETRICS].val, e[K_UNAUTHMETRICS].kpos,
                      "server.unauthenticated_metrics_access",
                      &inv->unauthenticated_metrics_access)) != 0)
        return r;
    if (has(&e[K_APIADDR]) &&
        (r = get_api_addr(L, e[K_APIADDR].val, e[K_APIADDR].kpos, &inv->api_addr)) != 0)
        return r;
    if ((inv->tls_cert == NULL) != (inv->tls_key == NULL))
        return lerr(L, kpos, inv->tls_cert ? "server.tls_key" : "server.tls_cert",
                    "tls_cert and tls_key go together; only one is set");
    return 0;
}

static int
load_audit(struct loader *L, struct ynode *v, struct pos kpos)
{
    static const char *const keys[] = {"path"};
    struct ment e[1];
    int r;

    if (is_null(v))
        return 0;
    if ((r = map_collect(L, v, kpos, "audit", "", keys, 1, e)) != 0)
        return r;
    L->inv->audit_enabled = 1;
    if (has(&e[0]) && (r = get_file(L, e[0].val, e[0].kpos, "audit.path", &L->inv->audit_path)))
        return r;
    return 0;
}

/* ---- the document ---- */

static int
load_doc(struct loader *L, const char *buf, size_t len)
{
    static const char *const keys[] = {"version", "store", "server", "audit", "hooks", "secrets"};
    enum { K_VERSION, K_STORE, K_SERVER, K_AUDIT, K_HOOKS, K_SECRETS, K_N };
    struct fy_diag_cfg dc;
    struct fy_diag *diag = NULL;
    struct fy_parse_cfg pc;
    struct fy_parser *fyp = NULL;
    struct ynode *root = NULL;
    struct ment e[K_N];
    struct pos top = {1, 1};
    int64_t version;
    int r = -RK_EINTERNAL;

    if ((r = check_chars(L, buf, len)) != 0)
        return r; /* nothing allocated yet */
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.output_fn = diag_output;
    dc.user = L;
    dc.colorize = false;
    dc.level = FYET_ERROR;
    if ((diag = fy_diag_create(&dc)) == NULL) {
        r = enomem(L);
        goto out;
    }
    memset(&pc, 0, sizeof(pc));
    pc.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2;
    pc.diag = diag;
    if ((fyp = fy_parser_create(&pc)) == NULL) {
        r = enomem(L);
        goto out;
    }
    /* The parser keeps pointers into buf: it is destroyed below, before buf can go. */
    if (fy_parser_set_string(fyp, buf, len) != 0) {
        r = enomem(L);
        goto out;
    }
    if ((r = build_tree(L, fyp, &root)) != 0)
        goto out;
    if (root == NULL || is_null(root)) {
        r = lerr(L, top, NULL, "the file is empty; expected a mapping with version: 1");
        goto out;
    }
    if ((r = map_collect(L, root, node_pos(root, top), "top level", "", keys, K_N, e)) != 0)
        goto out;
    if (!has(&e[K_VERSION])) {
        r = missing(L, node_pos(root, top), "top level", "version", "version: 1");
        goto out;
    }
    if ((r = get_int(L, e[K_VERSION].val, e[K_VERSION].kpos, "version", 1, 1, &version)) != 0)
        goto out;
    L->inv->version = (int)version;
    if ((r = load_store(L, e[K_STORE].val, e[K_STORE].kpos)) != 0 ||
        (r = load_server(L, e[K_SERVER].val, e[K_SERVER].kpos)) != 0 ||
        (r = load_audit(L, e[K_AUDIT].val, e[K_AUDIT].kpos)) != 0 ||
        (r = load_hooks(L, e[K_HOOKS].val, e[K_HOOKS].kpos)) != 0 ||
        (r = load_secrets(L, e[K_SECRETS].val, e[K_SECRETS].kpos)) != 0)
        goto out;
    r = 0;
out:
    fy_parser_destroy(fyp);
    fy_diag_destroy(diag);
    arena_free(L);
    return r;
}

/* Fills what the document left unset. */
static int
set_defaults(struct loader *L)
{
    struct inventory *inv = L->inv;
    const char *rel[] = {"rekey.db", "audit.log"};
    char **dst[] = {&inv->store_path, &inv->audit_path};

    for (size_t i = 0; i < 2; i++) {
        if (*dst[i] != NULL)
            continue;
        if (L->dir != NULL) {
            if (asprintf(dst[i], "%s/%s", L->dir, rel[i]) < 0) {
                *dst[i] = NULL;
                return enomem(L);
            }
        } else if ((*dst[i] = strdup(rel[i])) == NULL) {
            return enomem(L);
        }
    }
    if (inv->listen == NULL && (inv->listen = strdup("127.0.0.1:8200")) == NULL)
        return enomem(L);
    if (strcmp(inv->store_backend, "etcd") == 0) {
        if (asprintf(&inv->store_location, "etcd:%s", inv->store_endpoints) < 0)
            inv->store_location = NULL;
    } else if (asprintf(&inv->store_location, "%s:%s", inv->store_backend, inv->store_path) < 0) {
        inv->store_location = NULL;
    }
    if (inv->store_location == NULL)
        return enomem(L);
    return 0;
}

int
inventory_load_string(const char *name, const char *buf, size_t len, struct inventory **out,
                      struct rk_error *err)
{
    struct loader L;
    struct rk_error localerr;
    const char *slash;
    int r = -RK_EINTERNAL;

    *out = NULL;
    memset(&L, 0, sizeof(L));
    L.name = name != NULL ? name : "<config>";
    L.err = err != NULL ? err : &localerr;
    if ((L.inv = calloc(1, sizeof(*L.inv))) == NULL || (L.inv->file = strdup(L.name)) == NULL ||
        (L.inv->store_backend = strdup("sqlite")) == NULL) {
        r = enomem(&L);
        goto out;
    }
    L.inv->check_interval = DEFAULT_CHECK_INTERVAL;
    L.inv->request_timeout = DEFAULT_REQUEST_TIMEOUT;
    if ((slash = strrchr(L.name, '/')) != NULL) {
        size_t dlen = slash == L.name ? 1 : (size_t)(slash - L.name);
        if ((L.dir = strndup(L.name, dlen)) == NULL) {
            r = enomem(&L);
            goto out;
        }
    }
    if (buf == NULL)
        buf = "", len = 0;
    if ((r = load_doc(&L, buf, len)) != 0 || (r = set_defaults(&L)) != 0)
        goto out;
    *out = L.inv;
    L.inv = NULL;
    r = 0;
out:
    inventory_free(L.inv);
    free(L.dir);
    free(L.hooks_sorted);
    return r;
}

int
inventory_load_file(const char *file, struct inventory **out, struct rk_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int r;

    *out = NULL;
    if ((r = fs_read_all(file, INV_MAX_FILE, &buf, &len, err)) != 0) {
        if (r == -RK_ELIMIT)
            return rk_error_set(err, RK_ECONFIG, "%s: the file is larger than %u bytes", file,
                                INV_MAX_FILE);
        return r;
    }
    r = inventory_load_string(file, buf, len, out, err);
    free(buf);
    return r;
}
