/* routes-kv.c: Vault's KV version 2 API on the mount "secret/" (docs/api.md lists what is
 * supported and how it differs from Vault).
 *
 * The KV path of /v1/secret/data/foo/bar is the logical path "secret/foo/bar" of kv.h; the ACL
 * path is the request path without /v1/ ("secret/data/foo/bar"). Every handler checks, in this
 * order: unsealed, a valid path (400 "invalid path: …"), the token's capability (Vault's
 * existence check decides between create and update for writes), then the body. The body is
 * decoded only for an authorised request. KV calls need no app lock (kv.h is thread-safe).
 *
 * A write that only `create` allows (the path did not exist, and the token may not update it)
 * is made as check-and-set 0, in the store's own transaction: of racing writers to a new path,
 * one creates version 1 and the others get Vault's failed check-and-set answer, 400 "check-and-set
 * parameter did not match the current version", so `create` never adds a second version.
 *
 * The mount configuration (secret/config) is stored behind the barrier at
 * "sys/kvconfig/secret". Its cas_required applies to every write at once, as in Vault; its
 * max_versions and delete_version_after are copied into a path's metadata when a write creates
 * the path, in the write's transaction (Vault reads them at each write instead; see
 * docs/api.md).
 *
 * Also here, since it is about KV versions: POST /v1/rekey/fingerprint (ACL path
 * "rekey/fingerprint", update), the store's fingerprint of a value in the body (see h_fingerprint).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/app.h"
#include "api/envelope.h"
#include "api/http.h"
#include "api/kvjson.h"
#include "api/policy.h"
#include "api/router.h"
#include "api/token.h"
#include "secrets/kv.h"
#include "store/barrier.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define KV_MOUNT "secret"
#define KV_CONFIG_KEY "sys/kvconfig/" KV_MOUNT

/* The paths of one request: the logical KV path and the ACL path. */
struct kv_req {
    char path[PATH_MAX_LEN + 16]; /* "secret/foo/bar" ("secret" for a root listing) */
    char acl[PATH_MAX_LEN + 64];  /* "secret/data/foo/bar" */
};

/* Builds the paths for the route family `kind` ("data", "metadata", …) from the request's
 * parameter. list: a folder listing (a trailing '/' is allowed, an empty parameter is the
 * mount's root). Answers 400 and returns -RK_EINVAL for an invalid path. */
static int
kv_paths(struct http_request *req, const char *kind, int list, struct kv_req *kr)
{
    struct rk_error err = {0};
    const char *param = http_request_param(req);
    size_t plen = strlen(param);
    int n;

    if (list && plen > 0 && param[plen - 1] == '/')
        plen--;
    if (plen == 0 && list) {
        snprintf(kr->path, sizeof(kr->path), "%s", KV_MOUNT);
        snprintf(kr->acl, sizeof(kr->acl), "%s/%s/", KV_MOUNT, kind);
        return 0;
    }
    n = snprintf(kr->path, sizeof(kr->path), "%s/%.*s", KV_MOUNT, (int)plen, param);
    if (plen == 0 || n < 0 || (size_t)n >= sizeof(kr->path) ||
        path_validate(kr->path, (size_t)n, &err) != 0) {
        http_respond_error(req, 400, "invalid path: %s",
                           err.msg[0] ? err.msg : (plen == 0 ? "empty path" : "too long"));
        return -RK_EINVAL;
    }
    snprintf(kr->acl, sizeof(kr->acl), "%s/%s/%.*s%s", KV_MOUNT, kind, (int)plen, param,
             list ? "/" : "");
    return 0;
}

/* Vault's existence check: 1 when path has metadata, 0 when not; otherwise answers the error
 * and returns it. *meta (may be NULL) keeps the metadata read (kv_meta_free), or NULL. */
static int
kv_exists(struct http_request *req, struct api_app *app, const char *path, struct kv_meta **meta)
{
    struct rk_error err = {0};
    struct kv_meta *m = NULL;
    int r = kv_metadata_get(app->kv, path, &m, &err);

    if (meta != NULL && r == 0)
        *meta = m;
    else
        kv_meta_free(m);
    if (r == 0)
        return 1;
    if (r == -RK_ENOTFOUND)
        return 0;
    api_respond_rk(req, r, &err);
    return r < 0 ? r : -RK_EINTERNAL;
}

/* Answers 200 with the data wrapped in Vault's envelope. */
static int
respond_data(struct http_request *req, unsigned status, json_t *data)
{
    /* Every caller has data to send: NULL means an encoder ran out of memory. */
    if (data == NULL)
        (void)http_respond_error(req, 500, "out of memory");
    else
        (void)http_respond_json(req, status, api_envelope(data, NULL));
    return 0;
}

static int
respond_bad(struct http_request *req, const struct rk_error *err)
{
    (void)http_respond_error(req, 400, "%s", err->msg[0] ? err->msg : "invalid request");
    return 0;
}

/* The mount configuration; defaults when none was stored. Served from app->kvcfg (see
 * app.h) when read less than API_KVCFG_TTL_MS ago. */
static int
config_get(struct api_app *app, struct kvjson_config *cfg, struct rk_error *err)
{
    struct secret *v = NULL;
    uint64_t gen;
    int64_t now = time_mono_ms();
    int r;

    memset(cfg, 0, sizeof(*cfg));
    pthread_mutex_lock(&app->kvcfg.mu);
    if (app->kvcfg.valid && now - app->kvcfg.read_ms < API_KVCFG_TTL_MS) {
        cfg->max_versions = app->kvcfg.max_versions;
        cfg->cas_required = app->kvcfg.cas_required;
        cfg->delete_version_after = app->kvcfg.delete_version_after;
        pthread_mutex_unlock(&app->kvcfg.mu);
        return 0;
    }
    gen = app->kvcfg.gen;
    pthread_mutex_unlock(&app->kvcfg.mu);
    r = barrier_get(app->br, KV_CONFIG_KEY, &v, NULL, err);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        r = 0;
    } else if (r == 0) {
        r = kvjson_config_load((const char *)v->data, v->len, cfg, err);
        secret_free(v);
    }
    if (r != 0)
        return r;
    pthread_mutex_lock(&app->kvcfg.mu);
    if (app->kvcfg.gen == gen) {
        app->kvcfg.valid = 1;
        app->kvcfg.read_ms = now;
        app->kvcfg.max_versions = cfg->max_versions;
        app->kvcfg.cas_required = cfg->cas_required;
        app->kvcfg.delete_version_after = cfg->delete_version_after;
    }
    pthread_mutex_unlock(&app->kvcfg.mu);
    return 0;
}

/* Drops the cached configuration (after a write, successful or not). */
static void
config_forget(struct api_app *app)
{
    pthread_mutex_lock(&app->kvcfg.mu);
    app->kvcfg.valid = 0;
    app->kvcfg.gen++;
    pthread_mutex_unlock(&app->kvcfg.mu);
}

/* The mount's max_versions and delete_version_after as settings for a path a write creates
 * (kv_put_opts.new_path), or NULL when there are none. */
static const struct kv_meta_settings *
config_new_path(const struct kvjson_config *cfg, struct kv_meta_settings *s)
{
    if (cfg->max_versions == 0 && cfg->delete_version_after == 0)
        return NULL;
    memset(s, 0, sizeof(*s));
    if (cfg->max_versions != 0) {
        s->has_max_versions = 1;
        s->max_versions = cfg->max_versions;
    }
    if (cfg->delete_version_after != 0) {
        s->has_delete_version_after = 1;
        s->delete_version_after = cfg->delete_version_after;
    }
    return s;
}

/* ---- secret/data/:path ---- */

static int
data_read(struct http_request *req, struct api_app *app, const struct kv_req *kr)
{
    struct rk_error err = {0};
    struct secret *text = NULL;
    struct kv_meta *meta = NULL;
    struct kv_version_meta vm;
    json_t *data = NULL, *md, *custom = NULL;
    uint64_t version;
    char *body;
    size_t blen = 0;
    int r;

    if (kvjson_parse_version_query(http_request_query(req, "version"), &version, &err) != 0)
        return respond_bad(req, &err);
    memset(&vm, 0, sizeof(vm));
    /* The hot path, a read of the current version, is one store read (kv_get_current). */
    if (version == 0) {
        r = kv_get_current(app->kv, kr->path, &text, &vm, &custom, &err);
    } else {
        r = kv_read(app->kv, kr->path, version, &text, &meta, &vm, &err);
        if (meta != NULL)
            custom = json_incref(meta->custom_metadata);
        kv_meta_free(meta);
    }
    if (r == -RK_ENOTFOUND && vm.version != 0) {
        /* Deleted or destroyed: Vault answers 404 with the version's metadata. */
        md = kvjson_version_meta(&vm, custom);
        json_decref(custom);
        return respond_data(req, 404, json_pack("{s:n, s:o}", "data", "metadata", md));
    }
    if (r != 0) {
        json_decref(custom);
        secret_free(text);
        return api_respond_rk(req, r, &err);
    }
    /* The stored text spliced into the answer, built once in one buffer. */
    body = kvjson_read_response(text, &vm, custom, &blen);
    if (body != NULL) {
        json_decref(custom);
        secret_free(text);
        (void)http_respond_text(req, 200, "application/json", body, blen);
        freezero(body, blen + 1);
        return 0;
    }
    r = kvjson_data_parse(text, &data, &err);
    secret_free(text);
    if (r != 0) {
        json_decref(custom);
        return api_respond_rk(req, r, &err);
    }
    md = kvjson_version_meta(&vm, custom);
    json_decref(custom);
    return respond_data(req, 200, json_pack("{s:o, s:o}", "data", data, "metadata", md));
}

static int
data_write(struct http_request *req, struct api_app *app, const struct kv_req *kr, int patch)
{
    struct kv_put_opts opts = KV_PUT_OPTS_INIT;
    struct rk_error err = {0};
    struct token_info ti = {0};
    struct kvjson_write w;
    struct kvjson_config cfg;
    struct kv_meta_settings fresh;
    struct secret *text = NULL;
    struct kv_meta *before = NULL;
    struct kv_version_meta wvm;
    json_t *body = NULL;
    unsigned cap, caps = 0;
    int exists, create_only = 0, r;

    if (patch) {
        const char *ct = http_request_header(req, "Content-Type");
        size_t n = strlen("application/merge-patch+json");
        if (ct == NULL || strncasecmp(ct, "application/merge-patch+json", n) != 0 ||
            (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' ')) {
            (void)http_respond_error(req, 415,
                                     "PATCH requires Content-Type of "
                                     "application/merge-patch+json");
            return 0;
        }
    }
    if ((exists = kv_exists(req, app, kr->path, &before)) < 0)
        return 0;
    cap = patch ? CAP_PATCH : (exists ? CAP_UPDATE : CAP_CREATE);
    if (api_authorize(req, app, kr->acl, cap, &ti) != 0)
        goto out; /* answered; before is freed */
    if (cap == CAP_CREATE) {
        if ((r = api_token_capabilities(app, &ti, kr->acl, &caps, &err)) != 0) {
            api_respond_rk(req, r, &err);
            goto out;
        }
        create_only = (caps & CAP_UPDATE) == 0;
    }
    if (patch && !exists) {
        (void)http_respond_error(req, 404, NULL);
        goto out;
    }
    if (http_request_json(req, &body) != 0)
        goto out;
    if (kvjson_decode_write(body, &w, &err) != 0) {
        respond_bad(req, &err);
        goto out;
    }
    if ((r = config_get(app, &cfg, &err)) != 0) {
        api_respond_rk(req, r, &err);
        goto out;
    }
    if (cfg.cas_required && w.cas < 0) {
        (void)http_respond_error(req, 400, "check-and-set parameter required for this call");
        goto out;
    }
    if (create_only && w.cas > 0) {
        /* No version N of a path that did not exist; updating one is not the token's to do. */
        (void)http_respond_error(req, 400,
                                 "check-and-set parameter did not match the current version");
        goto out;
    }
    if ((r = kvjson_data_text(w.data, &text, &err)) != 0) {
        api_respond_rk(req, r, &err);
        goto out;
    }
    opts.cas = create_only ? 0 : w.cas;
    opts.new_path = patch ? NULL : config_new_path(&cfg, &fresh);
    opts.author = ti.display_name[0] ? ti.display_name : NULL;
    opts.reason = w.reason;
    memset(&wvm, 0, sizeof(wvm));
    opts.out_vm = &wvm;
    if (patch)
        r = kv_patch(app->kv, kr->path, text, &opts, NULL, &err);
    else
        r = kv_put(app->kv, kr->path, text, &opts, NULL, &err);
    if (r == -RK_ENOTFOUND) {
        (void)http_respond_error(req, 404, NULL);
        goto out;
    }
    if (r != 0) {
        api_respond_rk(req, r, &err);
        goto out;
    }
    /* The version as kv_put stored it, and the custom_metadata read before the write (a data
     * write does not change it; NULL for a path that did not exist). */
    respond_data(req, 200,
                 kvjson_version_meta(&wvm, before != NULL ? before->custom_metadata : NULL));
out:
    kv_meta_free(before);
    secret_free(text);
    json_decref(body);
    token_info_clear(&ti);
    return 0;
}

static int
h_data(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    unsigned m = http_request_method(req);
    struct kv_req kr;
    int r;

    (void)unused;
    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (kv_paths(req, "data", 0, &kr) != 0)
        return 0;
    if (m & HTTP_WRITE)
        return data_write(req, app, &kr, 0);
    if (m == HTTP_PATCH)
        return data_write(req, app, &kr, 1);
    if (m == HTTP_DELETE) {
        if (api_authorize(req, app, kr.acl, CAP_DELETE, &ti) != 0)
            return 0;
        token_info_clear(&ti);
        r = kv_delete_versions(app->kv, kr.path, NULL, 0, &err);
        if (r != 0 && r != -RK_ENOTFOUND)
            return api_respond_rk(req, r, &err);
        (void)http_respond_no_content(req);
        return 0;
    }
    if (api_authorize(req, app, kr.acl, CAP_READ, &ti) != 0)
        return 0;
    token_info_clear(&ti);
    return data_read(req, app, &kr);
}

/* ---- secret/metadata/:path ---- */

static int
meta_list(struct http_request *req, struct api_app *app, const struct kv_req *kr)
{
    struct rk_error err = {0};
    char **names = NULL;
    size_t n = 0;
    int r;

    if ((r = kv_list_names(app->kv, kr->path, &names, &n, &err)) != 0)
        return api_respond_rk(req, r, &err);
    if (n == 0) {
        kv_names_free(names);
        (void)http_respond_error(req, 404, NULL);
        return 0;
    }
    respond_data(req, 200, kvjson_keys(names));
    kv_names_free(names);
    return 0;
}

static int
meta_write(struct http_request *req, struct api_app *app, const struct kv_req *kr)
{
    struct rk_error err = {0};
    struct token_info ti = {0};
    struct kv_meta_settings s;
    json_t *body = NULL;
    int exists, r;

    if ((exists = kv_exists(req, app, kr->path, NULL)) < 0)
        return 0;
    if (api_authorize(req, app, kr->acl, exists ? CAP_UPDATE : CAP_CREATE, &ti) != 0)
        return 0;
    token_info_clear(&ti);
    if (http_request_json(req, &body) != 0)
        return 0;
    if (kvjson_decode_meta_settings(body, &s, &err) != 0) {
        respond_bad(req, &err);
    } else if ((r = kv_metadata_put(app->kv, kr->path, &s, &err)) != 0) {
        api_respond_rk(req, r, &err);
    } else {
        (void)http_respond_no_content(req);
    }
    json_decref(body);
    return 0;
}

static int
h_metadata(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct kv_meta *meta = NULL;
    unsigned m = http_request_method(req);
    struct kv_req kr;
    int r;

    (void)unused;
    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (kv_paths(req, "metadata", m == HTTP_LIST, &kr) != 0)
        return 0;
    if (m == HTTP_LIST) {
        if (api_authorize(req, app, kr.acl, CAP_LIST, &ti) != 0)
            return 0;
        token_info_clear(&ti);
        return meta_list(req, app, &kr);
    }
    if (m & HTTP_WRITE)
        return meta_write(req, app, &kr);
    if (m == HTTP_DELETE) {
        if (api_authorize(req, app, kr.acl, CAP_DELETE, &ti) != 0)
            return 0;
        token_info_clear(&ti);
        r = kv_delete_metadata(app->kv, kr.path, &err);
        if (r != 0 && r != -RK_ENOTFOUND)
            return api_respond_rk(req, r, &err);
        (void)http_respond_no_content(req);
        return 0;
    }
    if (api_authorize(req, app, kr.acl, CAP_READ, &ti) != 0)
        return 0;
    token_info_clear(&ti);
    if ((r = kv_metadata_get(app->kv, kr.path, &meta, &err)) != 0)
        return api_respond_rk(req, r, &err);
    respond_data(req, 200, kvjson_metadata(meta));
    kv_meta_free(meta);
    return 0;
}

/* ---- secret/{delete,undelete,destroy}/:path ---- */

typedef int (*versions_fn)(struct kv *kv, const char *path, const uint64_t *versions, size_t n,
                           struct rk_error *err);

static int
versions_op(struct http_request *req, void *vapp, const char *kind, versions_fn fn)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    uint64_t *vs = NULL;
    json_t *body = NULL;
    struct kv_req kr;
    size_t n = 0;
    int r;

    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (kv_paths(req, kind, 0, &kr) != 0)
        return 0;
    if (api_authorize(req, app, kr.acl, CAP_UPDATE, &ti) != 0)
        return 0;
    token_info_clear(&ti);
    if (http_request_json(req, &body) != 0)
        return 0;
    if (kvjson_decode_versions(body, &vs, &n, &err) != 0) {
        respond_bad(req, &err);
    } else if ((r = fn(app->kv, kr.path, vs, n, &err)) != 0 && r != -RK_ENOTFOUND) {
        api_respond_rk(req, r, &err);
    } else {
        (void)http_respond_no_content(req);
    }
    free(vs);
    json_decref(body);
    return 0;
}

static int
h_delete(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return versions_op(req, vapp, "delete", kv_delete_versions);
}

static int
h_undelete(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return versions_op(req, vapp, "undelete", kv_undelete_versions);
}

static int
h_destroy(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return versions_op(req, vapp, "destroy", kv_destroy_versions);
}

/* ---- rekey/fingerprint ---- */

/* POST /v1/rekey/fingerprint {"value":"…"} answers {"data":{"fingerprint":"hmac:…"}}: this
 * store's fingerprint of the value, which is what a version holding it as its only field shows
 * (for several fields, pass the canonical JSON text of the data), so a person can check a value
 * they hold without it ever being shown. Whoever may call it can test guesses against every
 * fingerprint they can see, so the ACL path "rekey/fingerprint" (update) is granted like read
 * access to the values. The value never reaches a log or an error message. */
static int
h_fingerprint(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct secret *v = NULL;
    json_t *body = NULL, *jv;
    char fp[FINGERPRINT_LEN + 1];
    int r;

    (void)unused;
    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (api_authorize(req, app, "rekey/fingerprint", CAP_UPDATE, &ti) != 0)
        return 0;
    token_info_clear(&ti);
    if (http_request_json(req, &body) != 0)
        return 0;
    jv = json_is_object(body) ? json_object_get(body, "value") : NULL;
    if (!json_is_string(jv) || json_object_size(body) != 1) {
        (void)http_respond_error(req, 400, "expected {\"value\": \"…\"}");
    } else if ((v = secret_from(json_string_value(jv), json_string_length(jv))) == NULL) {
        (void)http_respond_error(req, 500, "out of memory");
    } else if ((r = kv_fingerprint(app->kv, v, fp, &err)) != 0) {
        api_respond_rk(req, r, &err);
    } else {
        respond_data(req, 200, json_pack("{s:s}", "fingerprint", fp));
    }
    secret_free(v);
    json_decref(body); /* wipes the value (json_wipe_on_free) */
    return 0;
}

/* ---- secret/config ---- */

static int
h_config(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct kvjson_config cfg;
    json_t *body = NULL;
    char *text = NULL;
    int write = (http_request_method(req) & HTTP_WRITE) != 0, r;

    (void)unused;
    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (api_authorize(req, app, KV_MOUNT "/config", write ? CAP_UPDATE : CAP_READ, &ti) != 0)
        return 0;
    token_info_clear(&ti);
    if ((r = config_get(app, &cfg, &err)) != 0)
        return api_respond_rk(req, r, &err);
    if (!write)
        return respond_data(req, 200, kvjson_config_encode(&cfg));
    if (http_request_json(req, &body) != 0)
        return 0;
    if (kvjson_decode_config(body, &cfg, &err) != 0) {
        respond_bad(req, &err);
    } else if ((text = kvjson_config_dump(&cfg)) == NULL) {
        (void)http_respond_error(req, 500, "out of memory");
    } else if ((r = barrier_put(app->br, KV_CONFIG_KEY, text, strlen(text), &err)) != 0) {
        config_forget(app);
        api_respond_rk(req, r, &err);
    } else {
        config_forget(app);
        (void)http_respond_no_content(req);
    }
    free(text);
    json_decref(body);
    return 0;
}

const struct route routes_kv[] = {
    {HTTP_GET | HTTP_WRITE | HTTP_PATCH | HTTP_DELETE, "/v1/" KV_MOUNT "/data/", h_data,
     ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_LIST | HTTP_WRITE | HTTP_DELETE, "/v1/" KV_MOUNT "/metadata/", h_metadata,
     ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/" KV_MOUNT "/delete/", h_delete, ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/" KV_MOUNT "/undelete/", h_undelete, ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/" KV_MOUNT "/destroy/", h_destroy, ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_WRITE, "/v1/" KV_MOUNT "/config", h_config, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/rekey/fingerprint", h_fingerprint, ROUTE_PARAM_NONE},
};
const size_t routes_kv_count = sizeof(routes_kv) / sizeof(routes_kv[0]);
