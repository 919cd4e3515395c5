/* routes-sys.c: Vault's sys/ routes: health, seal status, init, unseal, seal, mounts, the UI
 * mount preflight used by `vault kv`, ACL policies and sys/capabilities-self. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/server.h"
#include "api/status.h"
#include "api/sysbody.h"
#include "store/leader.h"
#include "util/enc.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/timeutil.h"

#ifndef REKEY_VERSION
#define REKEY_VERSION "0"
#endif

/* The mounts rekey serves (read only). */
struct mount {
    const char *path, *type, *description, *accessor, *version;
};

static const struct mount mounts[] = {
    {"secret/", "kv", "key/value secret storage (versioned, rotated by rekey)", "kv_5ec7e7a1", "2"},
    {"sys/", "system", "system endpoints used for control, policy and debugging", "system_0a1b2c3d",
     NULL},
};

static const struct mount auth_mounts[] = {
    {"token/", "token", "token based credentials", "auth_token_6e1b2a9f", NULL},
};

/* --- seal status --- */

static json_t *
seal_status(struct api_app *app)
{
    int init, sealed, t, n;
    size_t progress;
    char nonce[40], type[16];
    const char *storage = app->be != NULL ? app->be->ops->name : "sqlite";

    api_app_rdlock(app);
    init = api_app_initialized(app);
    sealed = api_app_sealed(app);
    t = app->threshold;
    n = app->shares;
    progress = app->nprogress;
    snprintf(nonce, sizeof(nonce), "%s", app->nonce);
    snprintf(type, sizeof(type), "%s", app->seal_type[0] != '\0' ? app->seal_type : "shamir");
    api_app_unlock(app);
    if (strcmp(type, "keyfile") == 0)
        t = n = 1;
    return json_pack("{s:s, s:b, s:b, s:i, s:i, s:i, s:s, s:s, s:s, s:b, s:s, s:s, s:b, s:s}",
                     "type", type, "initialized", init, "sealed", sealed, "t", t, "n", n,
                     "progress", (int)progress, "nonce", nonce, "version", API_VERSION_STRING,
                     "build_date", "2026-11-27T00:00:00Z", "migration", 0, "cluster_name",
                     init ? app->cluster_name : "", "cluster_id", init ? app->cluster_id : "",
                     "recovery_seal", 0, "storage_type", storage);
}

static int
h_seal_status(struct http_request *req, void *vapp, struct rk_error *err)
{
    (void)err;
    return http_respond_json(req, 200, seal_status(vapp));
}

/* --- health --- */

static unsigned
code_arg(struct http_request *req, const char *name, unsigned def)
{
    const char *v = http_request_query(req, name);
    int64_t c;

    if (v == NULL || parse_int64(v, 100, 599, &c) != 0)
        return def;
    return (unsigned)c;
}

static int
h_health(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    int init = api_app_initialized(app), sealed = api_app_sealed(app), standby;
    struct leader_status ls;
    unsigned status;
    char now[40];
    const char *ok;

    (void)err;
    /* A standby (several servers on one store, another leads) answers 429 so a load balancer
     * sends writes to the leader; ?standbyok=true makes it 200 (Vault's codes). */
    leader_status(&ls);
    standby = init && !sealed && ls.ha_enabled && !ls.is_self;
    ok = http_request_query(req, "standbyok");
    if (!init)
        status = code_arg(req, "uninitcode", 501);
    else if (sealed)
        status = code_arg(req, "sealedcode", 503);
    else if (standby && !(ok != NULL && (strcmp(ok, "true") == 0 || strcmp(ok, "1") == 0)))
        status = code_arg(req, "standbycode", 429);
    else
        status = code_arg(req, "activecode", 200);
    time_format_rfc3339(time_now() * 1000000, now, sizeof(now));
    return http_respond_json(
        req, status,
        json_pack("{s:b, s:b, s:b, s:b, s:s, s:s, s:I, s:s, s:s, s:s, s:s}", "initialized", init,
                  "sealed", sealed, "standby", standby, "performance_standby", 0,
                  "replication_performance_mode", "disabled", "replication_dr_mode", "disabled",
                  "server_time_utc", (json_int_t)time_now(), "server_time", now, "version",
                  API_VERSION_STRING, "cluster_name", init ? app->cluster_name : "", "cluster_id",
                  init ? app->cluster_id : ""));
}

/* --- HA: sys/leader, sys/ha-status --- */

/* Unauthenticated, as in Vault: who leads. */
static int
h_leader(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct leader_status ls;
    char since[40] = "0001-01-01T00:00:00Z";

    (void)err;
    if (api_app_sealed(vapp))
        return http_respond_error(req, 503, "Vault is sealed");
    leader_status(&ls);
    if (ls.is_self && ls.active_since > 0)
        time_format_rfc3339(ls.active_since * 1000000, since, sizeof(since));
    return http_respond_json(
        req, 200,
        json_pack("{s:b, s:b, s:s, s:s, s:s, s:b, s:i, s:i, s:i}", "ha_enabled", ls.ha_enabled,
                  "is_self", ls.is_self, "active_time", since, "leader_address", ls.leader_addr,
                  "leader_cluster_address", ls.leader_addr, "performance_standby", 0,
                  "performance_standby_last_remote_wal", 0, "raft_committed_index", 0,
                  "raft_applied_index", 0));
}

#define HA_NODES_MAX 64

static int
h_ha_status(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct leader_node *nodes;
    json_t *arr, *body;
    size_t n = 0;

    if (api_authorize(req, vapp, "sys/ha-status", CAP_READ, NULL) != 0)
        return 0;
    if ((nodes = calloc(HA_NODES_MAX, sizeof(*nodes))) == NULL)
        return http_respond_error(req, 500, "out of memory");
    if (leader_nodes(nodes, HA_NODES_MAX, &n, err) != 0) {
        free(nodes);
        return http_respond_error(req, 503, "%s", err->msg);
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:s, s:b, s:n, s:s, s:s, s:s}", "hostname",
                                        nodes[i].hostname, "api_address", nodes[i].api_addr,
                                        "cluster_address", nodes[i].api_addr, "active_node",
                                        nodes[i].active, "last_echo", "version", API_VERSION_STRING,
                                        "upgrade_version", "", "redundancy_zone", ""));
    free(nodes);
    /* Vault answers both at the top and under data. */
    body = json_pack("{s:O, s:{s:o}}", "nodes", arr, "data", "nodes", arr);
    return http_respond_json(req, 200, body);
}

/* --- init --- */

static int
h_init(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct secret **shares = NULL, *root = NULL;
    json_t *body = NULL, *keys = NULL, *keys64 = NULL;
    struct sys_init_body b;
    int n, k, r;

    if (http_request_method(req) == HTTP_GET)
        return http_respond_json(req, 200,
                                 json_pack("{s:b}", "initialized", api_app_initialized(app)));
    if (http_request_json(req, &body) != 0)
        return 0;
    r = sys_init_body_decode(body, &b, err);
    json_decref(body);
    if (r == -RK_EINVAL)
        return http_respond_error(req, 400, "%s", err->msg);
    /* A key-file server says so before a range error (-RK_ELIMIT), as it always has. */
    if (app->key_file != NULL)
        return http_respond_error(req, 400,
                                  "this server unseals with a key file (%s); initialise it with "
                                  "'rekey operator init -key-file PATH' instead",
                                  app->key_file);
    if (r != 0)
        return http_respond_error(req, 400, "%s", err->msg);
    n = b.secret_shares;
    k = b.secret_threshold;
    r = api_app_init_shares(app, n, k, &shares, &root, err);
    if (r == -RK_EEXISTS)
        return http_respond_error(req, 400, "Vault is already initialized");
    if (r != 0)
        return api_respond_rk(req, r, err);
    keys = json_array();
    keys64 = json_array();
    for (int i = 0; i < n; i++) {
        size_t blen = shares[i]->len / 2;
        unsigned char *bin = malloc(blen + 1);
        char *b64 = NULL;
        if (bin != NULL &&
            hex_decode((const char *)shares[i]->data, shares[i]->len, bin, blen) == 0)
            b64 = base64_encode(bin, blen);
        json_array_append_new(keys, json_string((const char *)shares[i]->data));
        json_array_append_new(keys64, json_string(b64 != NULL ? b64 : ""));
        if (b64 != NULL)
            freezero(b64, strlen(b64));
        freezero(bin, blen + 1);
        secret_free(shares[i]);
    }
    free(shares);
    log_info("sys/init from %s: %d shares, threshold %d; root token issued", http_request_ip(req),
             n, k);
    r = http_respond_json(req, 200,
                          json_pack("{s:o, s:o, s:s}", "keys", keys, "keys_base64", keys64,
                                    "root_token", (const char *)root->data));
    secret_free(root);
    return r;
}

/* --- unseal and seal --- */

static int
h_unseal(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    json_t *body = NULL;
    struct sys_unseal_body b;
    int r = 0;

    if (http_request_json(req, &body) != 0)
        return 0;
    if (sys_unseal_body_decode(body, &b, err) != 0) {
        json_decref(body);
        return http_respond_error(req, 400, "%s", err->msg);
    }
    if (b.reset)
        api_app_unseal_reset(app);
    else
        r = api_app_unseal_share(app, b.key, err);
    /* b.key (the share) points into body: freeing body wipes it (json_wipe_on_free). */
    json_decref(body);
    if (r != 0) {
        log_warn("sys/unseal from %s: %s", http_request_ip(req), err->msg);
        /* Vault: a wrong or malformed share is 400, a failure of the server's own 500. */
        return http_respond_error(req, api_status_for(r), "%s", err->msg);
    }
    return http_respond_json(req, 200, seal_status(app));
}

static int
h_seal(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};

    (void)err;
    if (api_authorize(req, app, "sys/seal", CAP_UPDATE | CAP_SUDO, &ti) != 0)
        return 0;
    log_info("sys/seal by %s (accessor %s) from %s", ti.display_name, ti.accessor,
             http_request_ip(req));
    token_info_clear(&ti);
    api_app_seal(app);
    return http_respond_no_content(req);
}

/* --- mounts --- */

static json_t *
mount_json(const struct mount *m)
{
    json_t *opts = m->version != NULL ? json_pack("{s:s}", "version", m->version) : json_null();

    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:{s:i, s:i, s:b}, s:b, s:b, s:b, s:s, s:s}",
                     "path", m->path, "type", m->type, "description", m->description, "accessor",
                     m->accessor, "options", opts, "config", "default_lease_ttl", 0,
                     "max_lease_ttl", 0, "force_no_cache", 0, "local", 0, "seal_wrap", 0,
                     "external_entropy_access", 0, "uuid", m->accessor, "plugin_version", "");
}

static int
respond_mounts(struct http_request *req, const struct mount *ms, size_t n)
{
    json_t *data = json_object(), *body;

    for (size_t i = 0; i < n; i++)
        json_object_set_new(data, ms[i].path, mount_json(&ms[i]));
    body = api_envelope(json_deep_copy(data), NULL);
    /* Vault also puts the mounts at the top level (older clients read them there). */
    if (body != NULL)
        json_object_update_missing(body, data);
    json_decref(data);
    return http_respond_json(req, 200, body);
}

static int
h_mounts(struct http_request *req, void *vapp, struct rk_error *err)
{
    (void)err;
    if (api_authorize(req, vapp, "sys/mounts", CAP_READ, NULL) != 0)
        return 0;
    return respond_mounts(req, mounts, sizeof(mounts) / sizeof(mounts[0]));
}

static int
h_auth_mounts(struct http_request *req, void *vapp, struct rk_error *err)
{
    (void)err;
    if (api_authorize(req, vapp, "sys/auth", CAP_READ, NULL) != 0)
        return 0;
    return respond_mounts(req, auth_mounts, sizeof(auth_mounts) / sizeof(auth_mounts[0]));
}

/* The preflight of `vault kv`: which mount serves this path, and its KV version. Any valid
 * token may ask; an unknown path is 403, as in Vault (so mounts cannot be enumerated). */
static int
h_ui_mount(struct http_request *req, void *vapp, struct rk_error *err)
{
    const char *p = http_request_param(req);
    const struct mount *m = NULL;

    (void)err;
    if (api_authenticate(req, vapp, 1, NULL) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
        size_t ml = strlen(mounts[i].path);
        if (strncmp(p, mounts[i].path, ml - 1) == 0 && (p[ml - 1] == '\0' || p[ml - 1] == '/')) {
            m = &mounts[i];
            break;
        }
    }
    if (m == NULL)
        return http_respond_error(req, 403, "permission denied");
    return http_respond_json(req, 200, api_envelope(mount_json(m), NULL));
}

/* --- policies --- */

/* GET/PUT/DELETE sys/policies/acl/<name>, LIST sys/policies/acl; old = sys/policy/<name>. */
static int
policy_route(struct http_request *req, struct api_app *app, int old, struct rk_error *err)
{
    const char *name = http_request_param(req);
    unsigned m = http_request_method(req);
    char acl[64 + POLICY_NAME_MAX];
    const char *base = old ? "sys/policy" : "sys/policies/acl";
    int r;

    if (*name == '\0' && (m == HTTP_LIST || m == HTTP_GET)) {
        char **names = NULL;
        size_t n = 0;
        json_t *keys, *body;

        if (api_authorize(req, app, base, m == HTTP_LIST || !old ? CAP_LIST : CAP_READ, NULL) != 0)
            return 0;
        if ((r = api_policy_list(app, &names, &n, err)) != 0)
            return api_respond_rk(req, r, err);
        keys = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(keys, json_string(names[i]));
        api_names_free(names, n);
        if (old) {
            body = api_envelope(json_pack("{s:O, s:O}", "keys", keys, "policies", keys), NULL);
            if (body != NULL) {
                json_object_set(body, "keys", keys);
                json_object_set(body, "policies", keys);
            }
            json_decref(keys);
        } else {
            body = api_envelope(json_pack("{s:o}", "keys", keys), NULL);
        }
        return http_respond_json(req, 200, body);
    }
    /* LIST names no policy (Vault answers it on the collection only); it is not a write. */
    if (*name == '\0' || m == HTTP_LIST)
        return http_respond_error(req, 405, NULL);
    /* name was lowercased by the router (ROUTE_PARAM_NAME_FOLD), so this is the path the
     * policy is stored under, whatever case the client sent. */
    snprintf(acl, sizeof(acl), "%s/%s", base, name);
    if (m == HTTP_GET) {
        struct policy *p = NULL;
        json_t *body;

        if (api_authorize(req, app, acl, CAP_READ, NULL) != 0)
            return 0;
        if ((r = api_policy_get(app, name, &p, err)) != 0)
            return api_respond_rk(req, r, err);
        if (old) {
            body = api_envelope(
                json_pack("{s:s, s:s}", "name", policy_name(p), "rules", policy_text(p, NULL)),
                NULL);
            if (body != NULL) {
                json_object_set_new(body, "name", json_string(policy_name(p)));
                json_object_set_new(body, "rules", json_string(policy_text(p, NULL)));
            }
        } else {
            body = api_envelope(
                json_pack("{s:s, s:s}", "name", policy_name(p), "policy", policy_text(p, NULL)),
                NULL);
        }
        policy_free(p);
        return http_respond_json(req, 200, body);
    }
    if (m == HTTP_DELETE) {
        if (api_authorize(req, app, acl, CAP_DELETE, NULL) != 0)
            return 0;
        if ((r = api_policy_delete(app, name, err)) != 0)
            return api_respond_rk(req, r, err);
        log_info("policy %s deleted", name);
        return http_respond_no_content(req);
    }
    /* PUT / POST: write. */
    {
        json_t *body = NULL;
        struct sys_policy_body b;
        struct policy *p = NULL;
        unsigned cap = CAP_UPDATE;

        if (api_require_unsealed(req, app) != 0)
            return 0;
        if (api_policy_get(app, name, &p, err) == -RK_ENOTFOUND)
            cap = CAP_CREATE;
        policy_free(p);
        if (api_authorize(req, app, acl, cap, NULL) != 0)
            return 0;
        if (http_request_json(req, &body) != 0)
            return 0;
        if (sys_policy_body_decode(body, &b, err) != 0) {
            json_decref(body);
            return http_respond_error(req, 400, "%s", err->msg);
        }
        r = api_policy_put(app, name, b.text, b.len, err);
        json_decref(body);
        if (r == -RK_EINVAL || r == -RK_ELIMIT)
            return http_respond_error(req, 400, "failed to parse policy: %s", err->msg);
        if (r != 0)
            return api_respond_rk(req, r, err);
        log_info("policy %s written", name);
        return http_respond_no_content(req);
    }
}

static int
h_policies_acl(struct http_request *req, void *vapp, struct rk_error *err)
{
    return policy_route(req, vapp, 0, err);
}

static int
h_policy_old(struct http_request *req, void *vapp, struct rk_error *err)
{
    return policy_route(req, vapp, 1, err);
}

/* --- capabilities-self --- */

static int
cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *
caps_json(unsigned caps)
{
    const char *names[16];
    size_t n = 0;
    json_t *a = json_array();

    if (caps == 0 || (caps & CAP_DENY) != 0) {
        json_array_append_new(a, json_string("deny"));
        return a;
    }
    if ((caps & CAP_ROOT) != 0) {
        json_array_append_new(a, json_string("root"));
        return a;
    }
    for (unsigned bit = 1; bit <= CAP_RECOVER && n < 16; bit <<= 1)
        if ((caps & bit) != 0 && cap_name(bit) != NULL)
            names[n++] = cap_name(bit);
    qsort(names, n, sizeof(names[0]), cmp_cstr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

static int
h_capabilities_self(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    json_t *body = NULL, *out = NULL, *one = NULL;
    struct sys_caps_body b;
    int r = 0;

    if (api_authorize(req, app, "sys/capabilities-self", CAP_UPDATE, &ti) != 0)
        return 0;
    if (http_request_json(req, &body) != 0)
        goto out;
    if (sys_caps_body_decode(body, &b, err) != 0) {
        http_respond_error(req, 400, "%s", err->msg);
        goto out;
    }
    out = json_object();
    for (size_t i = 0; i < b.npaths; i++) {
        const char *p = sys_caps_body_path(&b, i);
        unsigned caps = 0;
        if ((r = api_token_capabilities(app, &ti, p, &caps, err)) != 0) {
            api_respond_rk(req, r, err);
            goto out;
        }
        if (ti.root)
            caps = CAP_ROOT | CAP_ALL;
        json_object_set_new(out, p, caps_json(caps));
        if (one == NULL)
            one = json_object_get(out, p);
    }
    {
        json_t *resp = api_envelope(json_deep_copy(out), NULL);
        if (resp != NULL) {
            json_object_update_missing(resp, out);
            if (json_object_size(out) == 1 && one != NULL)
                json_object_set(resp, "capabilities", one);
        }
        http_respond_json(req, 200, resp);
    }
out:
    json_decref(out);
    json_decref(body);
    token_info_clear(&ti);
    return 0;
}

const struct route routes_sys[] = {
    {HTTP_GET, "/v1/sys/health", h_health, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/seal-status", h_seal_status, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/leader", h_leader, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/ha-status", h_ha_status, ROUTE_PARAM_NONE},
    {HTTP_GET | HTTP_WRITE, "/v1/sys/init", h_init, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/sys/unseal", h_unseal, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/sys/seal", h_seal, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/mounts", h_mounts, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/auth", h_auth_mounts, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/internal/ui/mounts/", h_ui_mount, ROUTE_PARAM_PATH},
    /* Policy names are case-insensitive (Vault lowercases them): folded before the ACL check. */
    {HTTP_GET | HTTP_WRITE | HTTP_DELETE | HTTP_LIST, "/v1/sys/policies/acl/", h_policies_acl,
     ROUTE_PARAM_NAME_FOLD},
    {HTTP_GET | HTTP_WRITE | HTTP_DELETE | HTTP_LIST, "/v1/sys/policy/", h_policy_old,
     ROUTE_PARAM_NAME_FOLD},
    {HTTP_WRITE, "/v1/sys/capabilities-self", h_capabilities_self, ROUTE_PARAM_NONE},
};
const size_t routes_sys_count = sizeof(routes_sys) / sizeof(routes_sys[0]);
