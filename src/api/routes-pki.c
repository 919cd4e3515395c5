/* routes-pki.c: Vault's PKI API shapes over the store's internal CA (secrets/pki.h), for services
 * that want certificates of their own:
 *
 *   GET  /v1/pki/ca/pem           the CA certificate as PEM text (public, no token, as Vault)
 *   POST /v1/pki/roles/:name      define a role {allowed_domains, allow_subdomains,
 *   GET  /v1/pki/roles/:name      allow_any_name, allow_ip_sans, key_type, ttl, max_ttl}.
 *                                 ACL pki/roles/:name, update / read.
 *   POST /v1/pki/issue/:role      {common_name, alt_names:"a,b", ip_sans:"1.2.3.4", ttl} ->
 *                                 {certificate, issuing_ca, ca_chain, private_key,
 *                                 private_key_type, serial_number, expiration}.
 *                                 ACL pki/issue/:role, update.
 * A role is a stored one, else an inventory entry of kind certificate whose path ends in
 * /<role> (pki/ai-gateway-tls is role ai-gateway-tls): it allows exactly the entry's names, with
 * its key type and ttl. The issued key is made here and sent only in this answer; rekey keeps
 * no copy (as Vault). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/envelope.h"
#include "api/http.h"
#include "api/policy.h"
#include "api/router.h"
#include "api/server.h"
#include "api/token.h"
#include "inventory/inventory.h"
#include "rotators/rotator.h"
#include "secrets/pki.h"
#include "util/parse.h"

#define NAMES_MAX PKI_NAMES_MAX

static int
h_ca_pem(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct rk_error err = {0};
    char *pem = NULL;
    int r;

    (void)unused;
    if (api_require_unsealed(req, app) != 0)
        return 0;
    if ((r = pki_ca_pem(app->br, &pem, &err)) != 0)
        return api_respond_rk(req, r, &err);
    http_respond_text(req, 200, "application/pem-certificate-chain", pem, strlen(pem));
    free(pem);
    return 0;
}

/* Checks the token against prefix + the route's whole parameter, before the parameter is judged
 * (so a path that is denied answers 403 whatever its shape). 0, or -1 after answering. */
static int
authorize(struct http_request *req, struct api_app *app, const char *prefix, unsigned cap)
{
    const char *p = http_request_param(req);
    size_t n = strlen(prefix) + strlen(p) + 1;
    struct token_info ti = {0};
    char *acl = malloc(n);
    int r;

    if (acl == NULL) {
        http_respond_error(req, 500, "out of memory");
        return -1;
    }
    snprintf(acl, n, "%s%s", prefix, p);
    r = api_require_unsealed(req, app) != 0 || api_authorize(req, app, acl, cap, &ti) != 0 ? -1 : 0;
    token_info_clear(&ti);
    free(acl);
    return r;
}

/* The role's name from the route's parameter (one segment), or -1 after answering. */
static int
role_name(struct http_request *req, char *name, size_t len)
{
    const char *p = http_request_param(req);
    size_t n = strlen(p);

    if (n == 0 || n >= len || n > PKI_ROLE_NAME_MAX || strchr(p, '/') != NULL) {
        http_respond_error(req, 400, "missing or invalid role name");
        return -1;
    }
    memcpy(name, p, n + 1);
    return 0;
}

static int
h_roles(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    char name[PKI_ROLE_NAME_MAX + 1];
    struct pki_role role;
    struct rk_error err = {0};
    json_t *body = NULL;
    char *text;
    int r, write = http_request_method(req) != HTTP_GET;

    (void)unused;
    if (authorize(req, app, "pki/roles/", write ? CAP_UPDATE : CAP_READ) != 0 ||
        role_name(req, name, sizeof(name)) != 0)
        return 0;
    if (!write) {
        json_t *d;
        json_error_t je;
        if ((r = pki_role_get(app->br, name, &role, &err)) != 0)
            return r == -RK_ENOTFOUND ? http_respond_error(req, 404, NULL)
                                      : api_respond_rk(req, r, &err);
        text = pki_role_to_json(&role);
        pki_role_clear(&role);
        d = text != NULL ? json_loads(text, 0, &je) : NULL;
        free(text);
        if (d == NULL)
            return http_respond_error(req, 500, "out of memory");
        return http_respond_json(req, 200, api_envelope(d, NULL));
    }
    if (http_request_json(req, &body) != 0)
        return 0;
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return http_respond_error(req, 500, "out of memory");
    r = pki_role_from_json(text, strlen(text), &role, &err);
    free(text);
    if (r != 0)
        return http_respond_error(req, 400, "%s", err.msg);
    r = pki_role_put(app->br, name, &role, &err);
    pki_role_clear(&role);
    if (r != 0)
        return api_respond_rk(req, r, &err);
    return http_respond_no_content(req);
}

/* A role from the inventory: the certificate entry whose path ends in /name. */
static int
role_from_inventory(struct api_app *app, const char *name, struct pki_role *out,
                    struct rk_error *err)
{
    int r = -RK_ENOTFOUND;

    memset(out, 0, sizeof(*out));
    api_app_rdlock(app);
    for (size_t i = 0; app->inv != NULL && i < app->inv->nsecrets; i++) {
        const struct inv_secret *s = &app->inv->secrets[i];
        const char *role = rotator_role(s, "pki"), *cn, *alt, *kt;
        char *copy = NULL;

        if (role == NULL || strcmp(role, name) != 0)
            continue;
        /* the entry's names exactly: its common name and alt_names */
        out->allow_ip_sans = 0;
        cn = inv_param(s, "common_name");
        alt = inv_param(s, "alt_names");
        kt = inv_param(s, "key_type");
        if (kt != NULL)
            pki_key_type_parse(kt, &out->key_type);
        inv_param_duration(s, "ttl", 0, &out->ttl);
        out->max_ttl = out->ttl;
        r = 0;
        if ((out->allowed_domains = calloc(NAMES_MAX + 1, sizeof(char *))) == NULL ||
            (cn != NULL && (out->allowed_domains[out->ndomains++] = strdup(cn)) == NULL) ||
            (alt != NULL && (copy = strdup(alt)) == NULL))
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
        for (char *p = copy, *q; r == 0 && p != NULL && out->ndomains < NAMES_MAX; p = q) {
            if ((q = strchr(p, ',')) != NULL)
                *q++ = '\0';
            if (*p == '\0')
                continue;
            if ((out->allowed_domains[out->ndomains] = strdup(p)) == NULL)
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
            else
                out->ndomains++;
        }
        free(copy);
        break;
    }
    api_app_unlock(app);
    if (r == -RK_ENOTFOUND)
        rk_error_set(err, RK_ENOTFOUND, "unknown role %.100s", name);
    if (r != 0 && r != -RK_ENOTFOUND)
        pki_role_clear(out);
    return r;
}

/* 1 if name is listed verbatim among the role's domains (an inventory role lists its IPs). */
static int
listed(const struct pki_role *role, const char *name)
{
    for (size_t i = 0; i < role->ndomains; i++)
        if (strcmp(role->allowed_domains[i], name) == 0)
            return 1;
    return 0;
}

/* Splits a comma-separated body string into names[] (pointing into buf). */
static int
add_names(const json_t *v, const char *key, char **bufs, size_t nb, const char **names, size_t *n,
          struct rk_error *err)
{
    char *p, *q;

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected a comma-separated string",
                            key);
    if ((bufs[nb] = strdup(json_string_value(v))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (p = bufs[nb]; p != NULL; p = q) {
        if ((q = strchr(p, ',')) != NULL)
            *q++ = '\0';
        while (*p == ' ')
            p++;
        if (*p == '\0')
            continue;
        if (*n >= NAMES_MAX)
            return rk_error_set(err, RK_EINVAL, "more than %d names", NAMES_MAX);
        names[(*n)++] = p;
    }
    return 0;
}

static const char *
key_type_vault(enum pki_key_type t)
{
    return t == PKI_KEY_ED25519 ? "ed25519" : t == PKI_KEY_ECDSA_P256 ? "ec" : "rsa";
}

/* Vault writes serials as lowercase hex pairs joined by ':'. */
static void
serial_vault(const char *hex, char *out, size_t len)
{
    size_t n = strlen(hex), o = 0;

    for (size_t i = 0; i < n && o + 4 < len; i += 2) {
        if (i > 0)
            out[o++] = ':';
        out[o++] = (char)(hex[i] | 0x20);
        if (i + 1 < n)
            out[o++] = (char)(hex[i + 1] | 0x20);
    }
    out[o] = '\0';
}

static int
h_issue(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    char name[PKI_ROLE_NAME_MAX + 1], serial[PKI_SERIAL_HEX_MAX * 2];
    struct pki_role role;
    struct pki_issue_req ir;
    struct pki_issued is;
    struct rk_error err = {0};
    json_t *body = NULL, *d;
    const json_t *cn;
    char *bufs[2] = {NULL, NULL};
    const char *names[NAMES_MAX];
    int64_t ttl = 0;
    int r, from_inv = 0;

    (void)unused;
    memset(&is, 0, sizeof(is));
    memset(&role, 0, sizeof(role));
    memset(&ir, 0, sizeof(ir));
    if (authorize(req, app, "pki/issue/", CAP_UPDATE) != 0 ||
        role_name(req, name, sizeof(name)) != 0)
        return 0;
    if (http_request_json(req, &body) != 0)
        return 0;
    if ((r = pki_role_get(app->br, name, &role, &err)) == -RK_ENOTFOUND) {
        rk_error_clear(&err);
        r = role_from_inventory(app, name, &role, &err);
        from_inv = 1;
    }
    if (r != 0) {
        if (r == -RK_ENOTFOUND)
            http_respond_error(req, 400, "unknown role: %s", name);
        else
            api_respond_rk(req, r, &err);
        goto out;
    }
    cn = json_object_get(body, "common_name");
    if (!json_is_string(cn)) {
        http_respond_error(req, 400, "missing \"common_name\"");
        goto out;
    }
    if ((r = add_names(json_object_get(body, "alt_names"), "alt_names", bufs, 0, names, &ir.nalt,
                       &err)) != 0 ||
        (r = add_names(json_object_get(body, "ip_sans"), "ip_sans", bufs, 1, names, &ir.nalt,
                       &err)) != 0) {
        api_respond_rk(req, r, &err);
        goto out;
    }
    ir.common_name = json_string_value(cn);
    ir.alt_names = names;
    for (size_t i = 0; i <= ir.nalt; i++) {
        const char *n = i < ir.nalt ? names[i] : ir.common_name;
        r = from_inv ? (listed(&role, n)
                            ? 0
                            : rk_error_set(&err, RK_EPERM, "%.100s is not allowed by this role", n))
                     : pki_role_allows(&role, n, &err);
        if (r != 0) {
            http_respond_error(req, 400, "%s", err.msg);
            goto out;
        }
    }
    {
        const json_t *jt = json_object_get(body, "ttl");
        if (json_is_integer(jt))
            ttl = json_integer_value(jt);
        else if (json_is_string(jt) &&
                 duration_parse(json_string_value(jt), json_string_length(jt), &ttl, &err) != 0) {
            http_respond_error(req, 400, "invalid \"ttl\": expected a duration");
            goto out;
        }
    }
    if (ttl <= 0)
        ttl = role.ttl > 0 ? role.ttl : 30 * 86400;
    if (role.max_ttl > 0 && ttl > role.max_ttl)
        ttl = role.max_ttl;
    ir.ttl = ttl;
    ir.key_type = role.key_type;
    if ((r = pki_issue(app->br, &ir, &is, &err)) != 0) {
        api_respond_rk(req, r, &err);
        goto out;
    }
    serial_vault(is.serial, serial, sizeof(serial));
    d = json_pack("{s:s, s:s, s:[s], s:s%, s:s, s:s, s:I}", "certificate", is.certificate,
                  "issuing_ca", is.ca, "ca_chain", is.ca, "private_key",
                  (const char *)is.private_key->data, is.private_key->len, "private_key_type",
                  key_type_vault(ir.key_type), "serial_number", serial, "expiration",
                  (json_int_t)is.not_after);
    if (d == NULL)
        http_respond_error(req, 500, "out of memory");
    else
        http_respond_json(req, 200, api_envelope(d, NULL));
out:
    pki_issued_clear(&is);
    pki_role_clear(&role);
    free(bufs[0]);
    free(bufs[1]);
    json_decref(body);
    return 0;
}

const struct route routes_pki[] = {
    {HTTP_GET, "/v1/pki/ca/pem", h_ca_pem, ROUTE_PARAM_NONE},
    {HTTP_GET | HTTP_WRITE, "/v1/pki/roles/", h_roles, ROUTE_PARAM_NAME},
    {HTTP_WRITE, "/v1/pki/issue/", h_issue, ROUTE_PARAM_NAME},
};
const size_t routes_pki_count = sizeof(routes_pki) / sizeof(routes_pki[0]);
