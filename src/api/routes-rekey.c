/* routes-rekey.c: rekey's own API under /v1/rekey/ (status, history, rotate, rollback, recover,
 * revoke, action-required, done, entries): what the CLI does on a local store, over HTTP. ACL
 * paths are "rekey/<route>[/<secret path>]", e.g.
 * "rekey/rotate/secret/ai-gateway/litellm/master-key"; reads need read, actions need update.
 * The engine and the inventory are used under the app's read lock (a seal or a reload waits for
 * a rotation in flight). docs/api.md has the shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/envelope.h"
#include "api/http.h"
#include "api/kvjson.h"
#include "api/policy.h"
#include "api/router.h"
#include "api/status.h"
#include "api/token.h"
#include "engine/entries.h"
#include "engine/inventory.h"
#include "engine/rotation.h"
#include "engine/schedule.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define ACL_MAX (PATH_MAX_LEN + 64)

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

/* The secret path in the route's parameter and the ACL path "rekey/<route>/<path>". Answers
 * 400 and returns -RK_EINVAL when the path is invalid. */
static int
secret_path(struct http_request *req, const char *route, char *acl, size_t acap)
{
    struct rk_error err = {0};
    const char *p = http_request_param(req);

    if (path_validate(p, strlen(p), &err) != 0) {
        (void)http_respond_error(req, 400, "invalid path: %s", err.msg);
        return -RK_EINVAL;
    }
    snprintf(acl, acap, "rekey/%s/%s", route, p);
    return 0;
}

/* Checks unsealed, then the capability; on success takes the read lock and checks that the
 * engine is there. Returns 0 holding the lock, or -1 having answered. */
static int
begin(struct http_request *req, struct api_app *app, const char *acl, unsigned cap,
      struct token_info *ti)
{
    if (api_require_unsealed(req, app) != 0)
        return -1;
    if (api_authorize(req, app, acl, cap, ti) != 0)
        return -1;
    api_app_rdlock(app);
    if (app->engine == NULL || app->inv == NULL) {
        api_app_unlock(app);
        token_info_clear(ti);
        (void)api_respond_rk(req, -RK_ESEALED, NULL);
        return -1;
    }
    return 0;
}

static void
end(struct api_app *app, struct token_info *ti)
{
    api_app_unlock(app);
    token_info_clear(ti);
}

/* Answers an engine error with its message (the engine's messages never hold a secret) and
 * the result so far (data, stolen; may be NULL), with the status of the one table
 * (api/status.h): 502 rejected by the target, 503 unavailable (the candidate stays pending),
 * 409 busy, 504 a step timed out. */
static int
respond_engine_error(struct http_request *req, int r, const struct rk_error *err, json_t *data)
{
    (void)http_respond_json(req, api_status_for(r),
                            api_errors(err->msg[0] ? err->msg : rk_strerror(r), data));
    return 0;
}

/* ---- GET rekey/status[/:path] ---- */

static int
h_status(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct schedule_list sl;
    struct secret_status one;
    const char *param = http_request_param(req);
    char acl[ACL_MAX];
    json_t *arr = NULL;
    size_t problems = 0;
    int r;

    (void)unused;
    if (param[0] == '\0')
        snprintf(acl, sizeof(acl), "rekey/status");
    else if (secret_path(req, "status", acl, sizeof(acl)) != 0)
        return 0;
    if (begin(req, app, acl, CAP_READ, &ti) != 0)
        return 0;
    if (param[0] != '\0') {
        /* The inventory's entry or the store's (engine/entries.h). */
        struct entry_ref ref;
        if ((r = engine_entry_find(app->kv, app->inv, param, &ref, &err)) == 0)
            r = schedule_status_one(app->kv, ref.s, time_now(), &one, &err);
        if (r == 0) {
            one.in_store = ref.in_store;
            respond_data(req, 200, kvjson_status(&one));
        } else {
            respond_engine_error(req, r, &err, NULL);
        }
        entry_ref_release(&ref);
        end(app, &ti);
        return 0;
    }
    if ((r = schedule_status_list(app->kv, app->inv, time_now(), &sl, &err)) != 0) {
        end(app, &ti);
        return respond_engine_error(req, r, &err, NULL);
    }
    if ((arr = json_array()) != NULL) {
        for (size_t i = 0; i < sl.n; i++) {
            if (secret_state_is_problem(sl.st[i].state))
                problems++;
            if (json_array_append_new(arr, kvjson_status(&sl.st[i])) != 0) {
                json_decref(arr);
                arr = NULL;
                break;
            }
        }
    }
    schedule_list_free(&sl);
    end(app, &ti);
    return respond_data(
        req, 200,
        arr ? json_pack("{s:o, s:I}", "secrets", arr, "problems", (json_int_t)problems) : NULL);
}

/* ---- GET rekey/action-required ---- */

static int
h_action_required(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct schedule_list sl;
    struct secret_status *st;
    json_t *keys, *details, *actions;
    int r;

    (void)unused;
    if (begin(req, app, "rekey/action-required", CAP_READ, &ti) != 0)
        return 0;
    /* Every entry: the inventory's and the store's. */
    if ((r = schedule_status_list(app->kv, app->inv, time_now(), &sl, &err)) != 0) {
        end(app, &ti);
        return respond_engine_error(req, r, &err, NULL);
    }
    st = sl.st;
    keys = json_array();
    details = json_object();
    actions = json_object(); /* what a person must do (the rotator's action hint) */
    for (size_t i = 0; keys != NULL && details != NULL && actions != NULL && i < sl.n; i++) {
        char what[160];
        if (st[i].state != STATE_ACTION_REQUIRED)
            continue;
        if (engine_action(app->engine, st[i].secret->path, what, sizeof(what), &err) != 0)
            snprintf(what, sizeof(what), "%s", st[i].detail);
        if (json_array_append_new(keys, json_string(st[i].secret->path)) != 0 ||
            json_object_set_new(details, st[i].secret->path, json_string(st[i].detail)) != 0 ||
            json_object_set_new(actions, st[i].secret->path, json_string(what)) != 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    schedule_list_free(&sl);
    end(app, &ti);
    if (keys == NULL || details == NULL || actions == NULL) {
        json_decref(keys);
        json_decref(details);
        json_decref(actions);
        return respond_data(req, 200, NULL);
    }
    return respond_data(
        req, 200,
        json_pack("{s:o, s:o, s:o}", "keys", keys, "details", details, "actions", actions));
}

/* ---- GET rekey/history/:path ---- */

static int
collect_event(void *arg, const struct rot_event *ev)
{
    json_t *arr = arg;

    return json_array_append_new(arr, kvjson_event(ev)) == 0 ? 0 : -RK_ENOMEM;
}

static int
h_history(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    char acl[ACL_MAX];
    json_t *arr;
    int r;

    (void)unused;
    if (secret_path(req, "history", acl, sizeof(acl)) != 0)
        return 0;
    if (begin(req, app, acl, CAP_READ, &ti) != 0)
        return 0;
    if ((arr = json_array()) == NULL) {
        end(app, &ti);
        return respond_data(req, 200, NULL);
    }
    r = engine_history(app->engine, http_request_param(req), collect_event, arr, &err);
    end(app, &ti);
    if (r != 0 && r != -RK_ENOTFOUND) {
        json_decref(arr);
        return respond_engine_error(req, r, &err, NULL);
    }
    return respond_data(req, 200,
                        json_pack("{s:s, s:o}", "path", http_request_param(req), "events", arr));
}

/* ---- POST rekey/rotate/:path, rekey/rollback/:path, rekey/revoke/:path ---- */

struct plan {
    json_t *steps;
    int failed;
};

static void
collect_step(void *arg, const char *path, const char *step, const char *msg)
{
    struct plan *p = arg;

    (void)path;
    if (p->steps == NULL || p->failed)
        return;
    if (json_array_append_new(p->steps, json_pack("{s:s, s:s}", "step", step ? step : "", "message",
                                                  msg ? msg : "")) != 0)
        p->failed = 1;
}

static int
rotate_common(struct http_request *req, struct api_app *app, enum rot_op op)
{
    const char *route = op == ROT_OP_ROLLBACK ? "rollback"
                        : op == ROT_OP_REVOKE ? "revoke"
                                              : "rotate";
    const char *path = http_request_param(req), *reason = NULL;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct rotate_opts ro;
    struct rotate_result res;
    struct plan plan = {NULL, 0};
    char acl[ACL_MAX];
    json_t *body = NULL, *out, *jv;
    struct secret *value = NULL;
    struct rot_input in;
    uint64_t to_version = 0;
    int dry = 0, r;

    if (secret_path(req, route, acl, sizeof(acl)) != 0)
        return 0;
    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (api_authorize(req, app, acl, CAP_UPDATE, &ti) != 0)
        return 0;
    if (http_request_json(req, &body) != 0)
        goto out_noapp;
    if (op == ROT_OP_ROLLBACK)
        r = kvjson_decode_rollback(body, &to_version, &reason, &dry, &err);
    else
        r = kvjson_decode_rotate(body, &reason, &dry, &err);
    if (r != 0) {
        (void)http_respond_error(req, 400, "%s", err.msg);
        goto out_noapp;
    }
    /* A manual kind's new value, read by the client (rekey rotate --from-stdin over the API). */
    if (op != ROT_OP_ROLLBACK && (jv = json_object_get(body, "value")) != NULL &&
        !json_is_null(jv)) {
        if (!json_is_string(jv) || json_string_length(jv) == 0) {
            (void)http_respond_error(req, 400, "invalid \"value\": expected a non-empty string");
            goto out_noapp;
        }
        if ((value = secret_from(json_string_value(jv), json_string_length(jv))) == NULL) {
            (void)http_respond_error(req, 500, "out of memory");
            goto out_noapp;
        }
        memset(&in, 0, sizeof(in));
        in.value = value;
    }
    memset(&ro, 0, sizeof(ro));
    memset(&res, 0, sizeof(res));
    ro.op = op;
    ro.reason = reason != NULL ? reason : (op == ROT_OP_REVOKE ? "revoke" : NULL);
    ro.author = ti.display_name[0] ? ti.display_name : "api";
    ro.dry_run = dry;
    ro.to_version = to_version;
    ro.input = value != NULL ? &in : NULL; /* no prompt, no stdin: only a value sent */
    ro.lock_wait_ms = 0;
    plan.steps = json_array();
    ro.progress = collect_step;
    ro.arg = &plan;

    api_app_rdlock(app);
    if (app->engine == NULL) {
        api_app_unlock(app);
        (void)api_respond_rk(req, -RK_ESEALED, NULL);
        goto out_noapp;
    }
    r = engine_rotate(app->engine, path, &ro, &res, &err);
    api_app_unlock(app);

    if (dry) {
        if (r != 0) {
            respond_engine_error(req, r, &err, NULL);
            goto out_noapp;
        }
        out = json_pack("{s:s, s:b, s:o}", "path", path, "dry_run", 1, "steps", plan.steps);
        plan.steps = NULL;
        respond_data(req, 200, out);
        goto out_noapp;
    }
    out = kvjson_rotate_result(path, &res);
    if (out != NULL && json_object_set_new(out, "pending", json_boolean(res.pending)) != 0) {
        json_decref(out);
        out = NULL;
    }
    if (out != NULL && plan.steps != NULL) {
        json_object_set_new(out, "steps", plan.steps);
        plan.steps = NULL;
    }
    if (r != 0)
        respond_engine_error(req, r, &err, out);
    else
        respond_data(req, 200, out);
out_noapp:
    secret_free(value);
    json_decref(plan.steps);
    json_decref(body);
    token_info_clear(&ti);
    return 0;
}

static int
h_rotate(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return rotate_common(req, vapp, ROT_OP_ROTATE);
}

static int
h_rollback(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return rotate_common(req, vapp, ROT_OP_ROLLBACK);
}

static int
h_revoke(struct http_request *req, void *vapp, struct rk_error *unused)
{
    (void)unused;
    return rotate_common(req, vapp, ROT_OP_REVOKE);
}

/* ---- POST rekey/recover ---- */

static void
collect_recover(void *arg, const char *path, const char *what, const char *msg)
{
    json_t *arr = arg;

    if (arr != NULL)
        (void)json_array_append_new(arr,
                                    json_pack("{s:s, s:s, s:s}", "path", path ? path : "", "what",
                                              what ? what : "", "message", msg ? msg : ""));
}

static int
h_recover(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    json_t *arr;
    size_t count = 0;
    int r;

    (void)unused;
    if (begin(req, app, "rekey/recover", CAP_UPDATE, &ti) != 0)
        return 0;
    arr = json_array();
    r = engine_recover(app->engine, time_now(), collect_recover, arr, &count, &err);
    end(app, &ti);
    if (arr == NULL)
        return respond_data(req, 200, NULL);
    if (r != 0)
        return respond_engine_error(
            req, r, &err, json_pack("{s:I, s:o}", "count", (json_int_t)count, "actions", arr));
    return respond_data(req, 200,
                        json_pack("{s:I, s:o}", "count", (json_int_t)count, "actions", arr));
}

/* ---- POST rekey/done/:path ---- */

static int
h_done(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct rk_error err = {0};
    char acl[ACL_MAX];
    int r;

    (void)unused;
    if (secret_path(req, "done", acl, sizeof(acl)) != 0)
        return 0;
    if (begin(req, app, acl, CAP_UPDATE, &ti) != 0)
        return 0;
    r = engine_done(app->engine, http_request_param(req),
                    ti.display_name[0] ? ti.display_name : "api", &err);
    end(app, &ti);
    if (r != 0)
        return respond_engine_error(req, r, &err, NULL);
    (void)http_respond_no_content(req);
    return 0;
}

/* ---- rekey/entries/:path: entries defined in the store (engine/entries.h) ----
 * GET     the definition ({"path", "kind", "every", ...}); ACL read
 * PUT     define or replace it (a JSON object: the settings of a YAML entry); ACL create for a
 *         new entry, update for an existing one; answers {"path", "created"}
 * DELETE  delete it (its versions and history stay); ACL delete
 * LIST    the paths under the parameter (a prefix), ?after=PATH&limit=N (1000 by default, at
 *         most 10000): {"keys": [...], "next": PATH or null}; ACL list on rekey/entries[/prefix]
 * The scheduler plans a written or deleted entry at once. */

#define ENTRIES_LIST_DEFAULT 1000
#define ENTRIES_LIST_MAX 10000

static int
collect_path(void *arg, const char *path)
{
    return json_array_append_new(arg, json_string(path)) == 0 ? 0 : -RK_ENOMEM;
}

static int
entries_list(struct http_request *req, struct api_app *app, const char *prefix)
{
    const char *after = http_request_query(req, "after"), *lim = http_request_query(req, "limit");
    struct token_info ti = {0};
    struct rk_error err = {0};
    int64_t limit = ENTRIES_LIST_DEFAULT;
    char acl[ACL_MAX];
    json_t *keys, *next = NULL;
    int r;

    if (lim != NULL && parse_int64(lim, 1, ENTRIES_LIST_MAX, &limit) != 0)
        return http_respond_error(req, 400, "invalid \"limit\": expected 1 to %d",
                                  ENTRIES_LIST_MAX);
    if (prefix[0] == '\0')
        snprintf(acl, sizeof(acl), "rekey/entries");
    else
        snprintf(acl, sizeof(acl), "rekey/entries/%s", prefix);
    if (begin(req, app, acl, CAP_LIST, &ti) != 0)
        return 0;
    if ((keys = json_array()) == NULL) {
        end(app, &ti);
        return respond_data(req, 200, NULL);
    }
    /* One more than asked: whether a next page exists. */
    r = engine_entry_list(app->kv, prefix, after, (size_t)limit + 1, collect_path, keys, &err);
    end(app, &ti);
    if (r != 0) {
        json_decref(keys);
        return respond_engine_error(req, r, &err, NULL);
    }
    if (json_array_size(keys) > (size_t)limit) {
        (void)json_array_remove(keys, (size_t)limit);
        next = json_incref(json_array_get(keys, (size_t)limit - 1));
    }
    return respond_data(req, 200, json_pack("{s:o, s:o?}", "keys", keys, "next", next));
}

static int
h_entries(struct http_request *req, void *vapp, struct rk_error *unused)
{
    struct api_app *app = vapp;
    const char *path = http_request_param(req);
    unsigned m = http_request_method(req);
    struct token_info ti = {0};
    struct rk_error err = {0};
    char acl[ACL_MAX];
    json_t *body = NULL, *def = NULL;
    int r, created = 0, exists;

    (void)unused;
    if (m == HTTP_LIST) {
        size_t len = strlen(path);
        char prefix[PATH_MAX_LEN + 2];
        /* "secret/app" and "secret/app/" both list under "secret/app/". */
        if (len > PATH_MAX_LEN ||
            (len > 0 && path_validate(path, len - (path[len - 1] == '/'), &err) != 0))
            return http_respond_error(req, 400, "invalid prefix: %s", err.msg);
        snprintf(prefix, sizeof(prefix), "%s%s", path, len > 0 && path[len - 1] != '/' ? "/" : "");
        return entries_list(req, app, prefix);
    }
    if (secret_path(req, "entries", acl, sizeof(acl)) != 0)
        return 0;
    if (m & HTTP_WRITE) {
        if (api_require_unsealed(req, app) != 0)
            return 0;
        /* create for a new entry, update for an existing one, as KV writes are checked */
        r = engine_entry_get(app->kv, path, &def, &err);
        json_decref(def);
        if (r != 0 && r != -RK_ENOTFOUND)
            return respond_engine_error(req, r, &err, NULL);
        exists = r == 0;
        rk_error_clear(&err);
        if (begin(req, app, acl, exists ? CAP_UPDATE : CAP_CREATE, &ti) != 0)
            return 0;
        if (http_request_json(req, &body) != 0) {
            end(app, &ti);
            return 0;
        }
        r = engine_entry_put(app->kv, app->inv, path, body, &created, &err);
        end(app, &ti);
        json_decref(body);
        if (r != 0)
            return respond_engine_error(req, r == -RK_EEXISTS ? -RK_EINVAL : r, &err, NULL);
        return respond_data(req, 200, json_pack("{s:s, s:b}", "path", path, "created", created));
    }
    if (m == HTTP_DELETE) {
        if (begin(req, app, acl, CAP_DELETE, &ti) != 0)
            return 0;
        if (inventory_find(app->inv, path) != NULL) {
            end(app, &ti);
            return http_respond_error(req, 400,
                                      "%s is defined in the configuration; remove it there", path);
        }
        r = engine_entry_delete(app->kv, path, &err);
        end(app, &ti);
        if (r != 0)
            return respond_engine_error(req, r, &err, NULL);
        return http_respond_no_content(req);
    }
    if (begin(req, app, acl, CAP_READ, &ti) != 0)
        return 0;
    r = engine_entry_get(app->kv, path, &def, &err);
    end(app, &ti);
    if (r != 0)
        return respond_engine_error(req, r, &err, NULL);
    return respond_data(req, 200, def);
}

const struct route routes_rekey[] = {
    {HTTP_GET, "/v1/rekey/status/", h_status, ROUTE_PARAM_PATH},
    {HTTP_GET, "/v1/rekey/action-required", h_action_required, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/rekey/history/", h_history, ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/rekey/rotate/", h_rotate, ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/rekey/rollback/", h_rollback, ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/rekey/revoke/", h_revoke, ROUTE_PARAM_PATH},
    {HTTP_WRITE, "/v1/rekey/recover", h_recover, ROUTE_PARAM_NONE},
    {HTTP_WRITE, "/v1/rekey/done/", h_done, ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_WRITE | HTTP_DELETE | HTTP_LIST, "/v1/rekey/entries/", h_entries,
     ROUTE_PARAM_PATH},
};
const size_t routes_rekey_count = sizeof(routes_rekey) / sizeof(routes_rekey[0]);
