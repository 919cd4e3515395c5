/* routes-token.c: Vault's token auth method: auth/token/create, create-orphan, lookup-self,
 * lookup, lookup-accessor, renew-self, renew, revoke-self, revoke, revoke-accessor. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/router.h"
#include "api/server.h"
#include "engine/inventory.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/timeutil.h"

/* A duration given as a number of seconds or a string ("1h", "90m", "3600"), at most
 * TOKEN_DURATION_MAX (a larger one is refused as Vault refuses it; a smaller one is capped by
 * the system maximum later, token.h "Lifetimes"). */
static int
get_duration(json_t *body, const char *name, int64_t *out, struct rk_error *err)
{
    json_t *v = json_object_get(body, name);
    int64_t d = -1;

    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        d = json_integer_value(v);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        struct rk_error e2;
        if (*s == '\0')
            return 0;
        if (duration_parse(s, strlen(s), &d, &e2) != 0)
            d = -1;
    }
    if (d < 0)
        return rk_error_set(err, RK_EINVAL, "'%s' must be a duration such as \"1h\" or seconds",
                            name);
    if (d > TOKEN_DURATION_MAX)
        return rk_error_set(err, RK_EINVAL, "'%s' is too large (at most %lld seconds)", name,
                            (long long)TOKEN_DURATION_MAX);
    *out = d;
    return 0;
}

/* The system maximum TTL (server.max_lease_ttl; 0 = token.h's default), read under the app's
 * lock since a SIGHUP reload replaces the inventory. */
static int64_t
max_lease_ttl(struct api_app *app)
{
    int64_t m;

    api_app_rdlock(app);
    m = app->inv != NULL ? app->inv->max_lease_ttl : 0;
    api_app_unlock(app);
    return m > 0 ? m : TOKEN_MAX_LEASE_TTL_DEFAULT;
}

/* Vault's warning when a requested TTL was cut to the system maximum, as a one-element JSON
 * list for the envelope's "warnings" (NULL when nothing was cut). */
static json_t *
ttl_warning(int64_t asked, int64_t maxl)
{
    char a[32], m[32], msg[160];

    if (asked <= maxl)
        return NULL;
    duration_format(asked, a, sizeof(a));
    duration_format(maxl, m, sizeof(m));
    snprintf(msg, sizeof(msg),
             "TTL of \"%s\" exceeded the effective max_ttl of \"%s\"; TTL value is capped "
             "accordingly",
             a, m);
    return json_pack("[s]", msg);
}

/* Answers 200 with Vault's envelope around auth, with warnings (stolen; may be NULL). */
static int
respond_auth(struct http_request *req, json_t *auth, json_t *warnings)
{
    json_t *env = api_envelope(NULL, auth);

    if (env != NULL && warnings != NULL)
        json_object_set(env, "warnings", warnings);
    json_decref(warnings);
    return http_respond_json(req, 200, env);
}

static json_t *
policies_json(const struct token_info *ti)
{
    json_t *a = json_array();

    for (size_t i = 0; i < ti->npolicies; i++)
        json_array_append_new(a, json_string(ti->policies[i]));
    return a;
}

static json_t *
meta_json(const struct token_info *ti)
{
    json_t *m = ti->meta_json != NULL ? json_loads(ti->meta_json, 0, NULL) : NULL;

    return m != NULL ? m : json_null();
}

/* The "auth" block of create and renew responses. */
static json_t *
auth_json(const struct token_info *ti, const char *token)
{
    /* What was granted, not what is left by now: a second that ticks between the grant and
     * this answer must not turn a 2h renewal into 7199 s (Vault answers 7200). */
    int64_t left = ti->expire_time == 0 ? 0
                   : ti->granted > 0    ? ti->granted
                                        : ti->expire_time - time_now();

    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:b, s:s, s:s, s:b, s:n, s:I}", "client_token",
                     token != NULL ? token : "", "accessor", ti->accessor, "policies",
                     policies_json(ti), "token_policies", policies_json(ti), "metadata",
                     meta_json(ti), "lease_duration", (json_int_t)(left > 0 ? left : 0),
                     "renewable", ti->renewable, "entity_id", "", "token_type", "service", "orphan",
                     ti->orphan, "mfa_requirement", "num_uses", (json_int_t)ti->num_uses);
}

/* A time in seconds kept within what RFC 3339 prints (years 0..9999), so a damaged record
 * cannot overflow the conversion to microseconds. */
static int64_t
clamp_time(int64_t t)
{
    return t < 0 ? 0 : t > 253402300799 ? 253402300799 : t;
}

/* The "data" block of the lookup responses. id: the token (lookup-self, lookup), or "" when
 * looked up by accessor (Vault hides it then). */
static json_t *
lookup_json(const struct token_info *ti, const char *id)
{
    char ct[40], et[40];
    /* What was granted, not what is left by now: a second that ticks between the grant and
     * this answer must not turn a 2h renewal into 7199 s (Vault answers 7200). */
    int64_t left = ti->expire_time == 0 ? 0
                   : ti->granted > 0    ? ti->granted
                                        : ti->expire_time - time_now();
    json_t *exp, *o;

    time_format_rfc3339(clamp_time(ti->creation_time) * 1000000, ct, sizeof(ct));
    if (ti->expire_time != 0) {
        time_format_rfc3339(clamp_time(ti->expire_time) * 1000000, et, sizeof(et));
        exp = json_string(et);
    } else {
        exp = json_null();
    }
    o = json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:o, s:I, s:s, s:s, s:o, s:I, s:b, s:s, "
                  "s:o, s:b, s:I}",
                  "id", id, "accessor", ti->accessor, "creation_time",
                  (json_int_t)ti->creation_time, "creation_ttl", (json_int_t)ti->ttl,
                  "display_name", ti->display_name, "entity_id", "", "expire_time", exp,
                  "explicit_max_ttl", (json_int_t)ti->explicit_max_ttl, "issue_time", ct, "path",
                  "auth/token/create", "meta", meta_json(ti), "num_uses", (json_int_t)ti->num_uses,
                  "orphan", ti->orphan, "type", "service", "policies", policies_json(ti),
                  "renewable", ti->renewable, "ttl", (json_int_t)(left > 0 ? left : 0));
    if (o != NULL && ti->period > 0) /* Vault shows it for periodic tokens only */
        json_object_set_new(o, "period", json_integer(ti->period));
    return o;
}

/* Reads "policies" given as a list of strings. names[] are borrowed from body. */
static int
get_policies(json_t *body, const char **names, size_t *n, struct rk_error *err)
{
    json_t *v = json_object_get(body, "policies");

    *n = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return rk_error_set(err, RK_EINVAL, "'policies' must be a list of strings");
    if (json_array_size(v) > TOKEN_MAX_POLICIES)
        return rk_error_set(err, RK_EINVAL, "too many policies");
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (s == NULL)
            return rk_error_set(err, RK_EINVAL, "'policies' must be a list of strings");
        if (*s != '\0')
            names[(*n)++] = s;
    }
    return 0;
}

int
token_create_body_decode(json_t *body, struct token_create_body *b, struct rk_error *err)
{
    const char *type = NULL;
    json_int_t num_uses = 0;
    int r;

    memset(b, 0, sizeof(*b));
    b->renewable = 1;
    if (!json_is_object(body))
        return rk_error_set(err, RK_EINVAL, "the request body must be a JSON object");
    if (json_unpack(body, "{s?b, s?b, s?b, s?I, s?s, s?s, s?o, s?s}", "no_parent", &b->no_parent,
                    "no_default_policy", &b->no_default_policy, "renewable", &b->renewable,
                    "num_uses", &num_uses, "display_name", &b->display_name, "id", &b->id, "meta",
                    &b->meta, "type", &type) != 0 ||
        (b->meta != NULL && !json_is_object(b->meta) && !json_is_null(b->meta)) || num_uses < 0)
        return rk_error_set(err, RK_EINVAL,
                            "invalid parameters: no_parent, no_default_policy and renewable are "
                            "booleans, num_uses a number >= 0, meta an object of strings");
    b->num_uses = num_uses;
    if (type != NULL && strcmp(type, "service") != 0 && strcmp(type, "default") != 0)
        return rk_error_set(err, RK_EINVAL, "only service tokens are supported");
    if ((r = get_policies(body, b->policies, &b->npolicies, err)) != 0 ||
        (r = get_duration(body, "ttl", &b->ttl, err)) != 0 ||
        (r = get_duration(body, "explicit_max_ttl", &b->explicit_max_ttl, err)) != 0 ||
        (r = get_duration(body, "period", &b->period, err)) != 0)
        return r;
    if (json_is_object(b->meta)) {
        const char *k;
        json_t *v;
        json_object_foreach(b->meta, k, v)
        {
            if (!json_is_string(v))
                return rk_error_set(err, RK_EINVAL, "'meta' values must be strings");
        }
    }
    return 0;
}

/* Policy names are case-insensitive (the record holds them lowercased). */
static int
has_policy(const struct token_info *ti, const char *name)
{
    for (size_t i = 0; i < ti->npolicies; i++)
        if (strcasecmp(ti->policies[i], name) == 0)
            return 1;
    return 0;
}

static int
create(struct http_request *req, struct api_app *app, int orphan_route, struct rk_error *err)
{
    const char *acl = orphan_route ? "auth/token/create-orphan" : "auth/token/create";
    struct token_info parent = {0}, ti = {0};
    struct secret *tok = NULL;
    json_t *body = NULL;
    struct token_create_body b;
    const char *pols[TOKEN_MAX_POLICIES], *display = NULL, *id = NULL;
    char lower[TOKEN_MAX_POLICIES][ROUTER_NAME_MAX + 1];
    char *meta_s = NULL;
    size_t np = 0;
    int no_parent = 0, no_default = 0, renewable = 1, wants_root = 0, r;
    json_int_t num_uses = 0;
    int64_t ttl = 0, max_ttl = 0, period = 0, maxl;
    struct token_create_opts o = {0};
    json_t *warn = NULL;

    if (api_authorize(req, app, acl, CAP_UPDATE, &parent) != 0)
        return 0;
    if (http_request_json(req, &body) != 0)
        goto out;
    if (token_create_body_decode(body, &b, err) != 0) {
        http_respond_error(req, 400, "%s", err->msg);
        goto out;
    }
    /* Policy names are case-insensitive (Vault lowercases them): lowercased first, so every
     * check below (the parent's subset, root) sees the name as it will be stored. */
    np = b.npolicies;
    for (size_t i = 0; i < np; i++) {
        size_t n = strlen(b.policies[i]);
        if (router_name_check(b.policies[i], n) != 0) {
            http_respond_error(req, 400, "invalid policy name");
            goto out;
        }
        for (size_t k = 0; k <= n; k++)
            lower[i][k] = (char)tolower((unsigned char)b.policies[i][k]);
        pols[i] = lower[i];
    }
    no_parent = b.no_parent;
    no_default = b.no_default_policy;
    renewable = b.renewable;
    num_uses = b.num_uses;
    display = b.display_name;
    id = b.id;
    ttl = b.ttl;
    max_ttl = b.explicit_max_ttl;
    period = b.period;
    if (json_is_object(b.meta))
        meta_s = json_dumps(b.meta, JSON_COMPACT | JSON_SORT_KEYS);
    if (id != NULL && !parent.root) {
        http_respond_error(req, 400, "root or sudo privileges required to specify token id");
        goto out;
    }
    if (no_parent && !orphan_route && !parent.root) {
        unsigned caps = 0;
        if (api_token_capabilities(app, &parent, acl, &caps, err) != 0 || (caps & CAP_SUDO) == 0) {
            http_respond_error(req, 400, "root or sudo privileges required to create orphan token");
            goto out;
        }
    }
    /* A non-root parent grants only policies it has itself (Vault's rule), "default"
     * included: a parent without it (made with no_default_policy) cannot hand it on, neither
     * asked for nor added automatically. None given: the parent's own. */
    if (!parent.root && !has_policy(&parent, "default"))
        no_default = 1;
    if (np == 0) {
        for (size_t i = 0; i < parent.npolicies && np < TOKEN_MAX_POLICIES; i++)
            if (!(no_default && strcmp(parent.policies[i], "default") == 0))
                pols[np++] = parent.policies[i];
    } else if (!parent.root) {
        for (size_t i = 0; i < np; i++) {
            if (!has_policy(&parent, pols[i])) {
                http_respond_error(req, 400, "child policies must be subset of parent");
                goto out;
            }
        }
    }
    for (size_t i = 0; i < np; i++)
        wants_root |= strcmp(pols[i], "root") == 0;
    if (wants_root && !parent.root) {
        http_respond_error(req, 400,
                           "root tokens may not be created without parent token being root");
        goto out;
    }
    if (period > 0)
        renewable = 1;
    /* token_create applies the lifetime rules (token.h "Lifetimes"): the system maximum, the
     * explicit maximum, the default for a ttl of 0 and the parent's expiry for a child. */
    maxl = max_lease_ttl(app);
    warn = ttl_warning(period > 0 ? period : ttl, maxl);
    o.policies = pols;
    o.npolicies = np;
    o.no_default_policy = no_default;
    o.ttl = ttl;
    o.period = period;
    o.max_lease_ttl = maxl;
    o.explicit_max_ttl = max_ttl;
    o.num_uses = num_uses;
    o.renewable = renewable;
    o.display_name = display;
    o.meta_json = meta_s;
    o.parent_hash = (no_parent || orphan_route) ? NULL : parent.hash;
    o.id = id;
    r = token_create(app->br, &o, &tok, &ti, err);
    if (r == -RK_EINVAL || r == -RK_EEXISTS) {
        http_respond_error(req, 400, "%s", err->msg);
        goto out;
    }
    if (r != 0) {
        api_respond_rk(req, r, err);
        goto out;
    }
    log_info("token created: accessor %s by %s (accessor %s) from %s", ti.accessor,
             parent.display_name, parent.accessor, http_request_ip(req));
    respond_auth(req, auth_json(&ti, (const char *)tok->data), warn);
    warn = NULL;
out:
    json_decref(warn);
    secret_free(tok);
    free(meta_s);
    json_decref(body);
    token_info_clear(&ti);
    token_info_clear(&parent);
    return 0;
}

static int
h_create(struct http_request *req, void *app, struct rk_error *err)
{
    return create(req, app, 0, err);
}

static int
h_create_orphan(struct http_request *req, void *app, struct rk_error *err)
{
    return create(req, app, 1, err);
}

static int
h_lookup_self(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info ti = {0};

    (void)err;
    if (api_authorize(req, vapp, "auth/token/lookup-self", CAP_READ, &ti) != 0)
        return 0;
    http_respond_json(req, 200, api_envelope(lookup_json(&ti, http_request_token(req)), NULL));
    token_info_clear(&ti);
    return 0;
}

enum target { BY_TOKEN, BY_ACCESSOR };

/* Authorises the caller on acl, then finds the target token named in the body ("token" or
 * "accessor"). Returns 0, or non-zero after having answered. *val is borrowed from *body.
 * missing_ok: an unknown token is answered 204 (Vault's revoke treats it as done). */
static int
target_lookup(struct http_request *req, struct api_app *app, const char *acl, unsigned cap,
              enum target by, int missing_ok, json_t **body, struct token_info *tgt,
              const char **val, struct rk_error *err)
{
    const char *v;
    int r;

    *val = NULL;
    if (api_authorize(req, app, acl, cap, NULL) != 0)
        return -RK_EPERM;
    if (http_request_json(req, body) != 0)
        return -RK_EINVAL;
    v = json_string_value(json_object_get(*body, by == BY_TOKEN ? "token" : "accessor"));
    if (v == NULL || *v == '\0') {
        http_respond_error(req, 400, "missing %s", by == BY_TOKEN ? "token" : "accessor");
        return -RK_EINVAL;
    }
    r = by == BY_TOKEN ? token_lookup(app->br, v, tgt, err)
                       : token_lookup_accessor(app->br, v, tgt, err);
    if ((r == -RK_ENOTFOUND || r == -RK_EINVAL) && missing_ok) {
        http_respond_no_content(req);
        return -RK_ENOTFOUND;
    }
    if (r == -RK_ENOTFOUND || r == -RK_EINVAL) {
        http_respond_error(req, strcmp(acl, "auth/token/lookup") == 0 ? 403 : 400, /* Vault */
                           by == BY_TOKEN ? "bad token" : "invalid accessor");
        return -RK_EINVAL;
    }
    if (r != 0) {
        api_respond_rk(req, r, err);
        return r;
    }
    *val = v;
    return 0;
}

static int
h_lookup(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info tgt = {0};
    json_t *body = NULL;
    const char *tok;

    if (target_lookup(req, vapp, "auth/token/lookup", CAP_UPDATE, BY_TOKEN, 0, &body, &tgt, &tok,
                      err) == 0)
        http_respond_json(req, 200, api_envelope(lookup_json(&tgt, tok), NULL));
    json_decref(body);
    token_info_clear(&tgt);
    return 0;
}

static int
h_lookup_accessor(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info tgt = {0};
    json_t *body = NULL;
    const char *acc;

    if (target_lookup(req, vapp, "auth/token/lookup-accessor", CAP_UPDATE, BY_ACCESSOR, 0, &body,
                      &tgt, &acc, err) == 0)
        http_respond_json(req, 200, api_envelope(lookup_json(&tgt, ""), NULL));
    json_decref(body);
    token_info_clear(&tgt);
    return 0;
}

static int
renew(struct http_request *req, struct api_app *app, const struct token_info *tgt, const char *tok,
      json_t *body, struct rk_error *err)
{
    struct token_info upd = {0};
    int64_t inc = 0, maxl;
    int r;

    if ((r = get_duration(body, "increment", &inc, err)) != 0)
        return http_respond_error(req, 400, "%s", err->msg);
    maxl = max_lease_ttl(app);
    r = token_renew(app->br, tgt->hash, inc, maxl, &upd, err);
    token_cache_flush(app->tokens); /* the cached record has the old expiry */
    if (r == -RK_EINVAL || r == -RK_ENOTFOUND)
        return http_respond_error(req, 400, "%s", err->msg);
    if (r != 0)
        return api_respond_rk(req, r, err);
    respond_auth(req, auth_json(&upd, tok), upd.period > 0 ? NULL : ttl_warning(inc, maxl));
    token_info_clear(&upd);
    return 0;
}

static int
h_renew_self(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info ti = {0};
    json_t *body = NULL;

    if (api_authorize(req, vapp, "auth/token/renew-self", CAP_UPDATE, &ti) != 0)
        return 0;
    if (http_request_json(req, &body) == 0)
        renew(req, vapp, &ti, http_request_token(req), body, err);
    json_decref(body);
    token_info_clear(&ti);
    return 0;
}

static int
h_renew(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info tgt = {0};
    json_t *body = NULL;
    const char *tok;

    if (target_lookup(req, vapp, "auth/token/renew", CAP_UPDATE, BY_TOKEN, 0, &body, &tgt, &tok,
                      err) == 0)
        renew(req, vapp, &tgt, tok, body, err);
    json_decref(body);
    token_info_clear(&tgt);
    return 0;
}

static int
revoke(struct http_request *req, struct api_app *app, const struct token_info *tgt,
       struct rk_error *err)
{
    size_t count = 0;
    int r = token_revoke_hash(app->br, tgt->hash, &count, err);

    /* Also on failure: some of its children may be gone already. */
    token_cache_flush(app->tokens);
    if (r != 0 && r != -RK_ENOTFOUND)
        return api_respond_rk(req, r, err);
    log_info("token revoked: accessor %s (%zu token%s with its children) from %s", tgt->accessor,
             count, count == 1 ? "" : "s", http_request_ip(req));
    return http_respond_no_content(req);
}

static int
h_revoke_self(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info ti = {0};

    if (api_authorize(req, vapp, "auth/token/revoke-self", CAP_UPDATE, &ti) != 0)
        return 0;
    revoke(req, vapp, &ti, err);
    token_info_clear(&ti);
    return 0;
}

static int
h_revoke(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info tgt = {0};
    json_t *body = NULL;
    const char *tok;

    if (target_lookup(req, vapp, "auth/token/revoke", CAP_UPDATE, BY_TOKEN, 1, &body, &tgt, &tok,
                      err) == 0)
        revoke(req, vapp, &tgt, err);
    json_decref(body);
    token_info_clear(&tgt);
    return 0;
}

static int
h_revoke_accessor(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct token_info tgt = {0};
    json_t *body = NULL;
    const char *acc;

    if (target_lookup(req, vapp, "auth/token/revoke-accessor", CAP_UPDATE, BY_ACCESSOR, 0, &body,
                      &tgt, &acc, err) == 0)
        revoke(req, vapp, &tgt, err);
    json_decref(body);
    token_info_clear(&tgt);
    return 0;
}

const struct route routes_token[] = {
    {HTTP_WRITE, "/v1/auth/token/create", h_create, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/create-orphan", h_create_orphan, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/auth/token/lookup-self", h_lookup_self, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/lookup", h_lookup, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/lookup-accessor", h_lookup_accessor, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/renew-self", h_renew_self, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/renew", h_renew, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/revoke-self", h_revoke_self, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/revoke", h_revoke, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/auth/token/revoke-accessor", h_revoke_accessor, ROUTE_PARAM_NONE},
};
const size_t routes_token_count = sizeof(routes_token) / sizeof(routes_token[0]);
