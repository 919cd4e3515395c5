/* routes-audit.c: Vault's audit device routes: GET sys/audit (list), PUT/POST/DELETE
 * sys/audit/<path> (enable a file device, disable it) and POST sys/audit-hash/<path> (the
 * audit HMAC of a value, so an operator can search the log for a known secret or accessor).
 * Managing devices needs sudo on the path, as in Vault; the configuration's own file is listed
 * as "config/" and only the configuration turns it off. The devices themselves live in
 * src/audit (audit.h); this file only speaks HTTP. */
#include <stdio.h>
#include <string.h>

#include "api/app.h"
#include "api/server.h"
#include "audit/audit.h"
#include "util/secret.h"

/* GET sys/audit */
static int
h_list(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    json_t *m = NULL, *body;
    const char *k;
    json_t *v;
    int r;

    if (api_authorize(req, app, "sys/audit", CAP_READ | CAP_SUDO, NULL) != 0)
        return 0;
    if ((r = audit_device_list(app->audit, &m, err)) != 0)
        return api_respond_rk(req, r, err);
    /* Vault answers the map at the top level and under data. */
    body = api_envelope(json_deep_copy(m), NULL);
    if (body != NULL)
        json_object_foreach(m, k, v) json_object_set(body, k, v);
    json_decref(m);
    return http_respond_json(req, 200, body);
}

static int
enable(struct http_request *req, struct api_app *app, const char *name, struct rk_error *err)
{
    const char *type = NULL, *desc = NULL, *path = NULL;
    json_t *body = NULL, *opts;
    int r;

    if (http_request_json(req, &body) != 0)
        return 0;
    if (json_unpack(body, "{s?s, s?s}", "type", &type, "description", &desc) != 0) {
        http_respond_error(req, 400, "type and description must be strings");
        goto out;
    }
    opts = json_object_get(body, "options");
    if (opts != NULL && !json_is_object(opts) && !json_is_null(opts)) {
        http_respond_error(req, 400, "options must be an object");
        goto out;
    }
    if (opts != NULL) {
        json_t *fp = json_object_get(opts, "file_path");
        if (fp == NULL)
            fp = json_object_get(opts, "path"); /* the older name */
        if (fp != NULL && !json_is_string(fp)) {
            http_respond_error(req, 400, "options.file_path must be a string");
            goto out;
        }
        path = json_string_value(fp);
    }
    if (type == NULL) {
        http_respond_error(req, 400, "missing audit device type");
        goto out;
    }
    if (path == NULL) {
        http_respond_error(req, 400, "options.file_path is required for a file audit device");
        goto out;
    }
    if ((r = audit_device_enable(app->audit, name, type, desc, path, err)) != 0) {
        api_respond_rk(req, r == -RK_EIO ? -RK_EINVAL : r, err);
        goto out;
    }
    http_respond_no_content(req);
out:
    json_decref(body);
    return 0;
}

/* PUT/POST/DELETE sys/audit/<path> */
static int
h_device(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    const char *name = http_request_param(req);
    unsigned m = http_request_method(req);
    char acl[sizeof("sys/audit/") + AUDIT_DEVICE_NAME_MAX + 64];
    int r;

    if (*name == '\0')
        return http_respond_error(req, 405, NULL);
    snprintf(acl, sizeof(acl), "sys/audit/%.*s", AUDIT_DEVICE_NAME_MAX + 1, name);
    if (api_authorize(req, app, acl, (m == HTTP_DELETE ? CAP_DELETE : CAP_UPDATE) | CAP_SUDO,
                      NULL) != 0)
        return 0;
    if (m != HTTP_DELETE)
        return enable(req, app, name, err);
    if ((r = audit_device_disable(app->audit, name, err)) != 0)
        return api_respond_rk(req, r == -RK_ENOTFOUND ? -RK_EINVAL : r, err);
    return http_respond_no_content(req);
}

/* POST sys/audit-hash/<path> {"input": "..."} -> {"hash": "hmac-sha256:..."} */
static int
h_hash(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    const char *name = http_request_param(req), *input = NULL;
    char acl[sizeof("sys/audit-hash/") + AUDIT_DEVICE_NAME_MAX + 64];
    char h[AUDIT_HMAC_LEN + 1];
    json_t *body = NULL, *out;
    size_t len = 0;
    int r;

    snprintf(acl, sizeof(acl), "sys/audit-hash/%.*s", AUDIT_DEVICE_NAME_MAX + 1, name);
    if (api_authorize(req, app, acl, CAP_UPDATE, NULL) != 0)
        return 0;
    if (!audit_device_exists(app->audit, name))
        return http_respond_error(req, 400, "unknown audit backend %.*s", AUDIT_DEVICE_NAME_MAX,
                                  name);
    if (http_request_json(req, &body) != 0)
        return 0;
    if (json_unpack(body, "{s:s%}", "input", &input, &len) != 0) {
        json_decref(body);
        return http_respond_error(req, 400, "input must be a string");
    }
    r = audit_hash(app->br, input, len, h, err);
    json_decref(body); /* jansson wipes strings on free (json_wipe_on_free) */
    if (r != 0)
        return api_respond_rk(req, r, err);
    out = api_envelope(json_pack("{s:s}", "hash", h), NULL);
    if (out != NULL)
        json_object_set_new(out, "hash", json_string(h));
    return http_respond_json(req, 200, out);
}

const struct route routes_audit[] = {
    {HTTP_GET, "/v1/sys/audit", h_list, ROUTE_PARAM_NONE},
    {HTTP_WRITE | HTTP_DELETE, "/v1/sys/audit/", h_device, ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/sys/audit-hash/", h_hash, ROUTE_PARAM_PATH},
};
const size_t routes_audit_count = sizeof(routes_audit) / sizeof(routes_audit[0]);
