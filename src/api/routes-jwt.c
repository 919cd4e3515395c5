/* routes-jwt.c: JWTs signed by transit keys and the JWKS documents verifiers fetch
 * (secrets/jwt.h); what Vault's transit lacks.
 *
 *   POST /v1/rekey/jwt/:name          {"claims":{…}, "ttl":"15m", "alg":"PS256"} -> {"token",
 *                                     "kid", "key_version", "alg"}; iat is set to now and, with
 *                                     ttl, exp = iat + ttl, unless the claims have them.
 *                                     ACL rekey/jwt/:name, update.
 *   POST /v1/rekey/jwt/:name/verify   {"token":"…", "leeway":"30s"} -> {"valid", "key_version",
 *                                     "header", "claims", "error"}. ACL rekey/jwt/:name/verify,
 *                                     update.
 *   GET  /v1/rekey/jwks/:name         the JWKS of one key: every version at or above its
 *                                     min_decryption_version (a pending version included: it is
 *                                     published before it signs). No token needed.
 *   GET  /v1/rekey/jwks               every signing key's (all asymmetric transit keys: public
 *   GET  /.well-known/jwks.json       keys are public, and a verifier needs no list of names).
 *                                     No token needed.
 * A JWKS answer carries Cache-Control: public, max-age = the rotation period / 100, from 60 s to
 * an hour (300 s when the key has no period): the key's auto_rotate_period, else the `every` of
 * the entry that rotates it; for the whole document, the shortest. A verifier that refetches on
 * an unknown kid (PyJWKClient, jose) sees a new version at once; one that does not, within
 * max-age. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/envelope.h"
#include "api/http.h"
#include "api/policy.h"
#include "api/router.h"
#include "api/routes-transit.h"
#include "api/token.h"
#include "engine/entries.h"
#include "engine/inventory.h"
#include "secrets/jwt.h"
#include "secrets/transit.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define JWKS_MAX_KEYS 1000
#define JWKS_DEFAULT_AGE 300

static int
respond_data(struct http_request *req, json_t *data)
{
    if (data == NULL)
        return http_respond_error(req, 500, "out of memory");
    return http_respond_json(req, 200, api_envelope(data, NULL));
}

/* Seconds a verifier may cache the JWKS of keys rotated every period seconds. */
static int64_t
max_age_for(int64_t period)
{
    int64_t a = period / 100;

    if (period <= 0)
        return JWKS_DEFAULT_AGE;
    return a < 60 ? 60 : a > 3600 ? 3600 : a;
}

/* The rotation period of key name: its auto_rotate_period, else the every of the entry that
 * rotates transit/keys/<name> (the configuration's or the store's), else 0. */
static int64_t
period_of(struct api_app *app, const char *name, int64_t auto_period)
{
    struct entry_ref ref;
    struct rk_error err = {0};
    char path[TRANSIT_NAME_MAX + 32];
    int64_t every = 0;

    if (auto_period > 0)
        return auto_period;
    snprintf(path, sizeof(path), "transit/keys/%s", name);
    api_app_rdlock(app);
    if (app->inv != NULL && engine_entry_find(app->kv, app->inv, path, &ref, &err) == 0) {
        every = ref.s->every;
        entry_ref_release(&ref);
    }
    api_app_unlock(app);
    return every;
}

static int
respond_jwks(struct http_request *req, json_t *keys, int64_t age)
{
    char cc[64];
    json_t *doc;

    snprintf(cc, sizeof(cc), "public, max-age=%" PRId64, age);
    if (http_response_header(req, "Cache-Control", cc) != 0) {
        json_decref(keys);
        return http_respond_error(req, 500, "out of memory");
    }
    /* A JWKS is the document itself, not Vault's envelope. */
    if ((doc = json_pack("{s:o}", "keys", keys)) == NULL)
        return http_respond_error(req, 500, "out of memory");
    return http_respond_json(req, 200, doc);
}

/* ---- GET rekey/jwks[/:name], /.well-known/jwks.json ---- */

struct all_arg {
    struct api_app *app;
    struct transit *t;
    json_t *keys;
    int64_t age;
    size_t n;
};

static int
add_key(void *arg, const char *name)
{
    struct all_arg *a = arg;
    struct rk_error err = {0};
    int64_t period = 0, age;
    size_t before = json_array_size(a->keys);
    int r;

    if (a->n++ >= JWKS_MAX_KEYS)
        return 1;
    r = jwt_jwks_add(a->t, name, a->keys, &period, &err);
    if (r == -RK_EINVAL || r == -RK_ENOTFOUND) /* an encryption key; one deleted meanwhile */
        return 0;
    if (r != 0)
        return r;
    if (json_array_size(a->keys) > before) {
        age = max_age_for(period_of(a->app, name, period));
        if (a->age == 0 || age < a->age)
            a->age = age;
    }
    return 0;
}

static int
jwks_all(struct http_request *req, struct api_app *app)
{
    struct all_arg a = {app, NULL, json_array(), 0, 0};
    struct rk_error err = {0};
    int r;

    if (a.keys == NULL || (a.t = api_transit(app)) == NULL) {
        json_decref(a.keys);
        return http_respond_error(req, 500, "out of memory");
    }
    r = transit_list(a.t, add_key, &a, &err);
    transit_close(a.t);
    if (r != 0) {
        json_decref(a.keys);
        return api_respond_rk(req, r, &err);
    }
    return respond_jwks(req, a.keys, a.age ? a.age : JWKS_DEFAULT_AGE);
}

static int
h_jwks(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    const char *name = http_request_param(req);
    struct rk_error err = {0};
    struct transit *t;
    json_t *keys;
    int64_t period = 0;
    int r;

    (void)unused;
    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (name[0] == '\0')
        return jwks_all(req, app);
    if (strchr(name, '/') != NULL)
        return http_respond_error(req, 404, NULL);
    if (transit_name_check(name, &err) != 0)
        return http_respond_error(req, 400, "%s", err.msg);
    if ((keys = json_array()) == NULL || (t = api_transit(app)) == NULL) {
        json_decref(keys);
        return http_respond_error(req, 500, "out of memory");
    }
    r = jwt_jwks_add(t, name, keys, &period, &err);
    transit_close(t);
    if (r != 0) {
        json_decref(keys);
        return api_respond_rk(req, r, &err);
    }
    return respond_jwks(req, keys, max_age_for(period_of(app, name, period)));
}

static int
h_well_known_jwks(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    if (api_require_unsealed(req, vapp) != 0)
        return 0;
    return jwks_all(req, vapp);
}

/* ---- POST rekey/jwt/:name, rekey/jwt/:name/verify ---- */

/* A duration in a body: "15m", or seconds. */
static int
body_duration(const json_t *body, const char *key, int64_t *out, struct rk_error *err)
{
    const json_t *v = json_object_get(body, key);

    *out = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) &&
        duration_parse(json_string_value(v), json_string_length(v), out, err) == 0)
        return 0;
    return rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected a duration (15m, 3600)", key);
}

static int
jwt_issue_req(struct http_request *req, struct transit *t, const char *name, const json_t *body)
{
    const json_t *given = json_object_get(body, "claims"), *jalg = json_object_get(body, "alg");
    struct rk_error err = {0};
    json_t *claims, *hdr_out;
    int64_t ttl = 0, now = time_now();
    uint64_t v = 0;
    char *tok = NULL, kid[TRANSIT_NAME_MAX + 32];
    int r;

    if (given != NULL && !json_is_object(given))
        return http_respond_error(req, 400, "invalid \"claims\": expected an object");
    if (jalg != NULL && !json_is_null(jalg) && !json_is_string(jalg))
        return http_respond_error(req, 400, "invalid \"alg\": expected a string");
    if (body_duration(body, "ttl", &ttl, &err) != 0)
        return http_respond_error(req, 400, "%s", err.msg);
    claims = given != NULL ? json_deep_copy(given) : json_object();
    if (claims == NULL)
        return http_respond_error(req, 500, "out of memory");
    if ((json_object_get(claims, "iat") == NULL &&
         json_object_set_new(claims, "iat", json_integer(now)) != 0) ||
        (ttl > 0 && json_object_get(claims, "exp") == NULL &&
         json_object_set_new(claims, "exp", json_integer(now + ttl)) != 0)) {
        json_decref(claims);
        return http_respond_error(req, 500, "out of memory");
    }
    r = jwt_issue(t, name, claims, json_string_value(jalg), &tok, &v, &err);
    json_decref(claims);
    if (r == -RK_ENOTFOUND)
        return http_respond_error(req, 400, "signing key not found");
    if (r != 0)
        return api_respond_rk(req, r, &err);
    snprintf(kid, sizeof(kid), "%s:v%" PRIu64, name, v);
    hdr_out = json_pack("{s:s, s:s, s:I}", "token", tok, "kid", kid, "key_version", (json_int_t)v);
    free(tok);
    return respond_data(req, hdr_out);
}

static int
jwt_verify_req(struct http_request *req, struct transit *t, const char *name, const json_t *body)
{
    const json_t *tok = json_object_get(body, "token");
    struct jwt_result res;
    struct rk_error err = {0};
    int64_t leeway = 0;
    json_t *d;
    int r;

    if (!json_is_string(tok))
        return http_respond_error(req, 400, "missing \"token\"");
    if (body_duration(body, "leeway", &leeway, &err) != 0)
        return http_respond_error(req, 400, "%s", err.msg);
    r = jwt_verify(t, name, json_string_value(tok), time_now(), leeway, &res, &err);
    if (r == -RK_ENOTFOUND)
        return http_respond_error(req, 400, "signature verification key not found");
    if (r != 0)
        return api_respond_rk(req, r, &err);
    d = json_pack("{s:b, s:I, s:O?, s:O?}", "valid", res.valid, "key_version",
                  (json_int_t)res.version, "header", res.header, "claims", res.claims);
    if (d != NULL && !res.valid && json_object_set_new(d, "error", json_string(res.reason)) != 0) {
        json_decref(d);
        d = NULL;
    }
    jwt_result_clear(&res);
    return respond_data(req, d);
}

static int
h_jwt(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    const char *p = http_request_param(req), *slash = strchr(p, '/');
    char name[TRANSIT_NAME_MAX + 1], acl[TRANSIT_NAME_MAX + 64];
    struct token_info ti = {0};
    struct transit *t;
    json_t *body = NULL;
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    int verify;

    (void)unused;
    if (n == 0 || n > TRANSIT_NAME_MAX)
        return http_respond_error(req, 400, "missing or invalid key name");
    verify = slash != NULL;
    memcpy(name, p, n);
    name[n] = '\0';
    snprintf(acl, sizeof(acl), "rekey/jwt/%s", p);
    if (api_require_unsealed(req, app) != 0 || api_authorize(req, app, acl, CAP_UPDATE, &ti) != 0)
        return 0;
    token_info_clear(&ti);
    if (slash != NULL && strcmp(slash, "/verify") != 0)
        return http_respond_error(req, 404, NULL);
    if (http_request_json(req, &body) != 0)
        return 0;
    if ((t = api_transit(app)) == NULL) {
        json_decref(body);
        return http_respond_error(req, 500, "out of memory");
    }
    if (verify)
        jwt_verify_req(req, t, name, body);
    else
        jwt_issue_req(req, t, name, body);
    transit_close(t);
    json_decref(body);
    return 0;
}

const struct route routes_jwt[] = {
    {HTTP_WRITE, "/v1/rekey/jwt/", h_jwt, ROUTE_PARAM_NAME},
    /* a public route: the name is checked by the handler, no ACL path carries it */
    {HTTP_GET, "/v1/rekey/jwks/", h_jwks, ROUTE_PARAM_PATH},
    {HTTP_GET, "/v1/rekey/well-known/jwks.json", h_well_known_jwks, ROUTE_PARAM_NONE},
};
const size_t routes_jwt_count = sizeof(routes_jwt) / sizeof(routes_jwt[0]);
