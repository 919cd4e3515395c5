/* routes-database.c: Vault's database engine (mount "database/") and lease endpoints
 * (engine/dbroles.h, engine/leases.h; docs/database.md):
 *
 *   PUT/POST, GET, DELETE  database/config/:name     LIST database/config
 *   PUT/POST, GET, DELETE  database/roles/:name      LIST database/roles
 *   GET                    database/creds/:role      a new login with a lease
 *   PUT/POST, GET, DELETE  database/static-roles/:name  LIST database/static-roles
 *   GET                    database/static-creds/:name  the static role's current login
 *   PUT/POST               database/rotate-role/:name, database/rotate-root/:name
 *   PUT  sys/leases/lookup {lease_id}                LIST sys/leases/lookup/:prefix
 *   PUT  sys/leases/renew, sys/renew {lease_id, increment}
 *   PUT  sys/leases/revoke, sys/revoke {lease_id}
 *   PUT  sys/leases/revoke-prefix/:prefix, sys/leases/revoke-force/:prefix   (sudo)
 *
 * ACL paths are the request paths without /v1/. Config and role names are case-sensitive
 * (ROUTE_PARAM_NAME). The inventory wins over the API: a name that a `kind: database` entry of
 * the configuration uses as its role cannot be written through database/config or
 * database/roles (409, naming the entry); a read of such a role shows "source": "inventory", and
 * database/creds of it issues a login from the entry (connection, admin_password_path read from
 * the KV store, statements, ttl, max_ttl) through the same code as an API role (dbroles.c). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/app.h"
#include "api/envelope.h"
#include "api/forward.h"
#include "api/http.h"
#include "api/policy.h"
#include "api/router.h"
#include "api/routes-database.h"
#include "api/token.h"
#include "engine/inventory.h"
#include "engine/dbroles.h"
#include "engine/dbstatic.h"
#include "engine/leases.h"
#include "metrics/metrics.h"
#include "rotators/rotator.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/timeutil.h"

/* ---- the manager ---- */

/* The configuration's role named name (db_role_lookup_fn of dbroles.h): the `kind: database`
 * entry whose `role` (default: the path's last segment) is name, with or without `every`. */
static int
inv_role_lookup(void *arg, const char *name, struct db_role_def *out, struct rk_error *err)
{
    struct api_app *app = arg;
    int r = -RK_ENOTFOUND;

    api_app_rdlock(app);
    for (size_t i = 0; app->inv != NULL && i < app->inv->nsecrets; i++) {
        const struct inv_secret *s = &app->inv->secrets[i];
        const char *role = rotator_role(s, "database");
        if (role != NULL && strcmp(role, name) == 0) {
            r = db_role_from_entry(s, out, err);
            break;
        }
    }
    api_app_unlock(app);
    return r;
}

static pthread_mutex_t mgr_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mgr_cv = PTHREAD_COND_INITIALIZER;
static struct leases *mgr;
static int mgr_users;

static void token_revoked(const char *accessor);
static void lease_gauges(size_t *total, size_t *irrevocable);

/* The static roles' timer: every STATIC_TICK seconds, the due ones rotate (dbstatic.h). */
#define STATIC_TICK 5
static pthread_t static_th;
static int static_running, static_stop;
static pthread_cond_t static_cv = PTHREAD_COND_INITIALIZER;

static void *
static_main(void *arg)
{
    struct api_app *app = arg;

    pthread_mutex_lock(&mgr_mu);
    while (!static_stop) {
        struct timespec ts;
        pthread_mutex_unlock(&mgr_mu);
        if (!barrier_sealed(app->br))
            (void)dbstatic_rotate_due(app->br, time_now());
        pthread_mutex_lock(&mgr_mu);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += STATIC_TICK;
        if (!static_stop)
            pthread_cond_timedwait(&static_cv, &mgr_mu, &ts);
    }
    pthread_mutex_unlock(&mgr_mu);
    return NULL;
}

void
api_leases_start(struct api_app *app)
{
    struct rk_error err = {0};
    struct lease_ops ops;
    struct leases *m = NULL;

    pthread_mutex_lock(&mgr_mu);
    if (mgr == NULL) {
        db_role_source_set(inv_role_lookup, app, app->kv);
        db_lease_ops(app->br, &ops);
        if (leases_open(app->br, &ops, &m, &err) != 0 || leases_start(m, &err) != 0) {
            log_error("the lease manager did not start: %s; leases expire after a restart",
                      err.msg);
            leases_close(m);
            m = NULL;
        }
        mgr = m;
        token_revoke_hook_set(m != NULL ? token_revoked : NULL);
        metrics_leases_source(m != NULL ? lease_gauges : NULL);
        static_stop = 0;
        if (m != NULL && !static_running)
            static_running = pthread_create(&static_th, NULL, static_main, app) == 0;
    }
    pthread_mutex_unlock(&mgr_mu);
}

void
api_leases_stop(void)
{
    struct leases *m;

    token_revoke_hook_set(NULL);
    metrics_leases_source(NULL);
    pthread_mutex_lock(&mgr_mu);
    static_stop = 1;
    pthread_cond_broadcast(&static_cv);
    pthread_mutex_unlock(&mgr_mu);
    if (static_running)
        pthread_join(static_th, NULL);
    static_running = 0;
    pthread_mutex_lock(&mgr_mu);
    m = mgr;
    mgr = NULL;
    while (mgr_users > 0)
        pthread_cond_wait(&mgr_cv, &mgr_mu);
    pthread_mutex_unlock(&mgr_mu);
    leases_close(m);
    db_role_source_set(NULL, NULL, NULL);
    db_pools_close();
}

static struct leases *
mgr_take(void)
{
    struct leases *m;

    pthread_mutex_lock(&mgr_mu);
    if ((m = mgr) != NULL)
        mgr_users++;
    pthread_mutex_unlock(&mgr_mu);
    return m;
}

static void
mgr_give(struct leases *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&mgr_mu);
    if (--mgr_users == 0)
        pthread_cond_broadcast(&mgr_cv);
    pthread_mutex_unlock(&mgr_mu);
}

/* The lease gauges of sys/metrics (metrics.h). */
static void
lease_gauges(size_t *total, size_t *irrevocable)
{
    struct leases *m = mgr_take();

    if (m != NULL)
        leases_count(m, total, irrevocable);
    mgr_give(m);
}

/* A token was revoked (token.h's hook): so are the leases issued to it (in the workers). */
static void
token_revoked(const char *accessor)
{
    struct leases *m = mgr_take();
    size_t n;

    if (m == NULL)
        return;
    if ((n = leases_revoke_accessor(m, accessor)) > 0)
        log_info("leases: %zu lease%s of a revoked token taken for revocation", n,
                 n == 1 ? "" : "s");
    mgr_give(m);
}

/* ---- helpers ---- */

/* The name in the route's parameter (no '/' after it), or answers 400/404. */
static const char *
param_name(struct http_request *req)
{
    const char *p = http_request_param(req);

    if (strchr(p, '/') != NULL || strlen(p) > LEASE_NAME_MAX) {
        http_respond_error(req, 404, NULL);
        return NULL;
    }
    return p;
}

/* The inventory entry of kind database whose role is name (under the read lock): its path and
 * line into where, 1 when there is one. */
static int
inventory_role(struct api_app *app, const char *name, char *where, size_t len, int64_t *ttl,
               int64_t *max)
{
    int found = 0;

    api_app_rdlock(app);
    for (size_t i = 0; app->inv != NULL && i < app->inv->nsecrets && !found; i++) {
        const struct inv_secret *s = &app->inv->secrets[i];
        const char *role = rotator_role(s, "database");
        if (role == NULL || strcmp(role, name) != 0)
            continue;
        found = 1;
        snprintf(where, len, "%s (%s:%d)", s->path, app->inv->file ? app->inv->file : "config",
                 s->line);
        if (ttl != NULL)
            (void)inv_param_duration(s, "ttl", 3600, ttl);
        if (max != NULL)
            (void)inv_param_duration(s, "max_ttl", 86400, max);
    }
    api_app_unlock(app);
    return found;
}

static int64_t
sys_max_ttl(struct api_app *app)
{
    int64_t v;

    api_app_rdlock(app);
    v = app->inv != NULL ? app->inv->max_lease_ttl : 0;
    api_app_unlock(app);
    return v > 0 ? v : LEASE_SYS_MAX_TTL;
}

static int
respond_data(struct http_request *req, json_t *data)
{
    return http_respond_json(req, 200, api_envelope(data, NULL));
}

static int
respond_keys(struct http_request *req, json_t *keys)
{
    if (json_array_size(keys) == 0) {
        json_decref(keys);
        return http_respond_error(req, 404, NULL);
    }
    return respond_data(req, json_pack("{s:o}", "keys", keys));
}

/* ---- database/config, database/roles ---- */

static int
h_cfg_or_role(struct http_request *req, void *vapp, struct rk_error *err, int role)
{
    struct api_app *app = vapp;
    const char *fam = role ? "database/roles" : "database/config";
    const char *name = http_request_param(req);
    unsigned method = http_request_method(req), cap;
    char acl[300], where[400];
    json_t *body = NULL, *out = NULL;
    int r;

    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (method == HTTP_LIST || name[0] == '\0') {
        if (method != HTTP_LIST && method != HTTP_GET)
            return http_respond_error(req, 405, "a name is required");
        snprintf(acl, sizeof(acl), "%s/%s", fam, name);
        if (api_authorize(req, app, acl, CAP_LIST, NULL) != 0)
            return 0;
        if (name[0] != '\0') /* nothing is listed below a name */
            return http_respond_error(req, 404, NULL);
        if ((r = dbengine_list(app->br, role, &out, err)) != 0)
            return api_respond_rk(req, r, err);
        return respond_keys(req, out);
    }
    /* The ACL first, on the path as requested: a denied caller learns nothing of what exists. */
    snprintf(acl, sizeof(acl), "%s/%s", fam, name);
    cap = method == HTTP_GET ? CAP_READ : method == HTTP_DELETE ? CAP_DELETE : CAP_UPDATE;
    if (api_authorize(req, app, acl, cap, NULL) != 0)
        return 0;
    if ((name = param_name(req)) == NULL)
        return 0;
    if (method == HTTP_GET) {
        int64_t ttl = 0, max = 0;
        if (role && inventory_role(app, name, where, sizeof(where), &ttl, &max))
            return respond_data(req, json_pack("{s:s,s:s,s:I,s:I}", "source", "inventory", "entry",
                                               where, "default_ttl", (json_int_t)ttl, "max_ttl",
                                               (json_int_t)max));
        r = role ? dbrole_read(app->br, name, &out, err) : dbconf_read(app->br, name, &out, err);
        if (r != 0)
            return api_respond_rk(req, r, err);
        return respond_data(req, out);
    }
    if (inventory_role(app, name, where, sizeof(where), NULL, NULL))
        return http_respond_error(req, 409,
                                  "%s %s is defined by the configuration (source: inventory, "
                                  "entry %s); the configuration wins, change it there",
                                  role ? "role" : "database config", name, where);
    if (method == HTTP_DELETE) {
        r = role ? dbrole_delete(app->br, name, err) : dbconf_delete(app->br, name, err);
        return r != 0 ? api_respond_rk(req, r, err) : http_respond_no_content(req);
    }
    if (http_request_json(req, &body) != 0)
        return 0;
    r = role ? dbrole_write(app->br, name, body, err) : dbconf_write(app->br, name, body, err);
    json_decref(body);
    if (r != 0)
        return api_respond_rk(req, r, err);
    return http_respond_no_content(req);
}

static int
h_config(struct http_request *req, void *vapp, struct rk_error *err)
{
    return h_cfg_or_role(req, vapp, err, 0);
}

static int
h_roles(struct http_request *req, void *vapp, struct rk_error *err)
{
    return h_cfg_or_role(req, vapp, err, 1);
}

/* ---- database/creds/:role ---- */

static json_t *
lease_envelope(json_t *data, const struct lease_info *l, int64_t now)
{
    json_t *env = api_envelope(data, NULL);

    if (env == NULL)
        return NULL;
    json_object_set_new(env, "lease_id", json_string(l->id));
    json_object_set_new(env, "lease_duration", json_integer(l->expires - now));
    json_object_set_new(env, "renewable", json_boolean(!l->irrevocable));
    return env;
}

static int
h_creds(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct lease_info l;
    struct secret *pw = NULL;
    struct leases *m;
    const char *name;
    char acl[300];
    json_t *data;
    int r;

    if (api_require_unsealed(req, app) != 0)
        return 0;
    if (api_forward_to_leader(req) != 0) /* a standby: the leader's lease manager issues it */
        return 0;
    snprintf(acl, sizeof(acl), "database/creds/%s", http_request_param(req));
    if (api_authorize(req, app, acl, CAP_READ, &ti) != 0)
        return 0;
    if ((name = param_name(req)) == NULL) {
        token_info_clear(&ti);
        return 0;
    }
    if ((m = mgr_take()) == NULL) {
        token_info_clear(&ti);
        return http_respond_error(req, 503, "the lease manager is not running");
    }
    r = db_creds_issue(app->br, m, name, ti.display_name, ti.accessor, sys_max_ttl(app), &l, &pw,
                       err);
    mgr_give(m);
    token_info_clear(&ti);
    if (r == -RK_ENOTFOUND)
        return http_respond_error(req, 400, "%s", err->msg);
    if (r != 0)
        return api_respond_rk(req, r, err);
    data = json_pack("{s:s,s:s%}", "username", l.username, "password", (const char *)pw->data,
                     pw->len);
    secret_free(pw);
    log_info("database: issued %s (login %s)", l.id, l.username);
    /* (the ttl granted, from the issue's own clock reading: a second that ticked since must
     * not make 3600 read 3599) */
    return http_respond_json(req, 200, lease_envelope(data, &l, l.issued));
}

/* ---- static roles, rotate-role, rotate-root ---- */

static int
h_static_roles(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    const char *name = http_request_param(req);
    unsigned method = http_request_method(req), cap;
    char acl[300];
    json_t *body = NULL, *out = NULL;
    int r;

    if (api_require_unsealed(req, app) != 0)
        return 0;
    snprintf(acl, sizeof(acl), "database/static-roles/%s", name);
    if (method == HTTP_LIST || name[0] == '\0') {
        if (method != HTTP_LIST && method != HTTP_GET)
            return http_respond_error(req, 405, "a name is required");
        if (api_authorize(req, app, acl, CAP_LIST, NULL) != 0)
            return 0;
        if (name[0] != '\0')
            return http_respond_error(req, 404, NULL);
        if ((r = dbstatic_list(app->br, &out, err)) != 0)
            return api_respond_rk(req, r, err);
        return respond_keys(req, out);
    }
    cap = method == HTTP_GET ? CAP_READ : method == HTTP_DELETE ? CAP_DELETE : CAP_UPDATE;
    if (api_authorize(req, app, acl, cap, NULL) != 0 || (name = param_name(req)) == NULL)
        return 0;
    if (method == HTTP_GET) {
        if ((r = dbstatic_read(app->br, name, &out, err)) != 0)
            return api_respond_rk(req, r, err);
        return respond_data(req, out);
    }
    if (method == HTTP_DELETE) {
        r = dbstatic_delete(app->br, name, err);
        return r != 0 ? api_respond_rk(req, r, err) : http_respond_no_content(req);
    }
    if (http_request_json(req, &body) != 0)
        return 0;
    r = dbstatic_write(app->br, name, body, err);
    json_decref(body);
    return r != 0 ? api_respond_rk(req, r, err) : http_respond_no_content(req);
}

static int
h_static_creds(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    const char *name;
    char acl[300];
    json_t *out = NULL;
    int r;

    if (api_require_unsealed(req, app) != 0)
        return 0;
    snprintf(acl, sizeof(acl), "database/static-creds/%s", http_request_param(req));
    if (api_authorize(req, app, acl, CAP_READ, NULL) != 0 || (name = param_name(req)) == NULL)
        return 0;
    if ((r = dbstatic_creds(app->br, name, time_now(), &out, err)) != 0)
        return api_respond_rk(req, r, err);
    return respond_data(req, out);
}

static int
h_rotate(struct http_request *req, void *vapp, struct rk_error *err, int root)
{
    struct api_app *app = vapp;
    const char *name;
    char acl[300];
    int r;

    if (api_require_unsealed(req, app) != 0)
        return 0;
    snprintf(acl, sizeof(acl), "database/%s/%s", root ? "rotate-root" : "rotate-role",
             http_request_param(req));
    if (api_authorize(req, app, acl, CAP_UPDATE, NULL) != 0 || (name = param_name(req)) == NULL)
        return 0;
    r = root ? dbconf_rotate_root(app->br, name, err) : dbstatic_rotate(app->br, name, err);
    return r != 0 ? api_respond_rk(req, r, err) : http_respond_no_content(req);
}

static int
h_rotate_role(struct http_request *req, void *vapp, struct rk_error *err)
{
    return h_rotate(req, vapp, err, 0);
}

static int
h_rotate_root(struct http_request *req, void *vapp, struct rk_error *err)
{
    return h_rotate(req, vapp, err, 1);
}

/* ---- sys/leases ---- */

static json_t *
lease_json(const struct lease_info *l, int64_t now)
{
    char iss[40], exp[40], ren[40];

    time_format_rfc3339(l->issued * 1000000, iss, sizeof(iss));
    time_format_rfc3339(l->expires * 1000000, exp, sizeof(exp));
    if (l->last_renewal > 0)
        time_format_rfc3339(l->last_renewal * 1000000, ren, sizeof(ren));
    return json_pack("{s:s,s:s,s:s,s:o,s:b,s:I,s:s,s:s,s:s,s:b,s:i,s:s}", "id", l->id, "issue_time",
                     iss, "expire_time", exp, "last_renewal",
                     l->last_renewal > 0 ? json_string(ren) : json_null(), "renewable",
                     !l->irrevocable, "ttl", (json_int_t)(l->expires > now ? l->expires - now : 0),
                     "username", l->username, "db_name", l->db, "role", l->role, "irrevocable",
                     l->irrevocable, "failures", l->failures, "last_error", l->last_error);
}

/* Starts a sys/leases handler: unsealed, forwarded when this server is a standby (forward.h),
 * authorised on acl with cap, the manager taken, the body's lease_id (when want_id). Returns the
 * manager or NULL (answered). */
static struct leases *
lease_begin(struct http_request *req, struct api_app *app, const char *acl, unsigned cap,
            json_t **body)
{
    struct leases *m;

    *body = NULL;
    if (api_require_unsealed(req, app) != 0)
        return NULL;
    if (api_forward_to_leader(req) != 0) /* the leader's lease manager answers */
        return NULL;
    if (api_authorize(req, app, acl, cap, NULL) != 0)
        return NULL;
    if (http_request_json(req, body) != 0)
        return NULL;
    if ((m = mgr_take()) == NULL) {
        json_decref(*body);
        *body = NULL;
        http_respond_error(req, 503, "the lease manager is not running");
    }
    return m;
}

static const char *
body_lease_id(struct http_request *req, const json_t *body)
{
    const char *id = json_string_value(json_object_get(body, "lease_id"));

    if (id == NULL || id[0] == '\0' || strlen(id) > LEASE_ID_MAX) {
        http_respond_error(req, 400, "missing lease ID");
        return NULL;
    }
    return id;
}

static int
h_lookup(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct lease_info l;
    struct leases *m;
    const char *id;
    json_t *body;
    int r;

    if ((m = lease_begin(req, app, "sys/leases/lookup", CAP_UPDATE, &body)) == NULL)
        return 0;
    if ((id = body_lease_id(req, body)) == NULL)
        r = 0;
    else if ((r = leases_lookup(m, id, &l, err)) == 0)
        r = respond_data(req, lease_json(&l, time_now()));
    else if (r == -RK_ENOTFOUND)
        r = http_respond_error(req, 400, "invalid lease");
    else
        r = api_respond_rk(req, r, err);
    mgr_give(m);
    json_decref(body);
    return r;
}

struct list_ctx {
    json_t *keys;
    size_t plen;
};

static int
list_one(void *arg, const struct lease_info *l)
{
    struct list_ctx *c = arg;
    const char *rest = l->id + c->plen, *slash = strchr(rest, '/');

    /* Vault lists one level: a key, or a folder with a trailing '/'. */
    if (slash != NULL) {
        json_t *k = json_stringn(rest, (size_t)(slash - rest) + 1);
        size_t i;
        json_t *e;
        json_array_foreach(c->keys, i, e) if (json_equal(e, k))
        {
            json_decref(k);
            return 0;
        }
        json_array_append_new(c->keys, k);
    } else {
        json_array_append_new(c->keys, json_string(rest));
    }
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static int
h_lookup_list(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    const char *prefix = http_request_param(req);
    char acl[LEASE_ID_MAX + 40];
    struct list_ctx c;
    struct leases *m;
    json_t *body, *sorted;
    size_t i, n;

    (void)err;
    snprintf(acl, sizeof(acl), "sys/leases/lookup/%s", prefix);
    if ((m = lease_begin(req, app, acl, CAP_LIST | CAP_SUDO, &body)) == NULL)
        return 0;
    json_decref(body);
    c.keys = json_array();
    c.plen = strlen(prefix);
    if (c.plen > 0 && prefix[c.plen - 1] != '/') { /* "database/creds/app": its folder */
        mgr_give(m);
        json_decref(c.keys);
        return http_respond_error(req, 400, "a prefix ends in '/'");
    }
    (void)leases_each(m, prefix, list_one, &c);
    mgr_give(m);
    /* sorted, for a person */
    n = json_array_size(c.keys);
    {
        json_t **v = calloc(n ? n : 1, sizeof(*v));
        if (v == NULL) {
            json_decref(c.keys);
            return http_respond_error(req, 500, "out of memory");
        }
        for (i = 0; i < n; i++)
            v[i] = json_array_get(c.keys, i);
        qsort(v, n, sizeof(*v), cmp_str);
        sorted = json_array();
        for (i = 0; i < n; i++)
            json_array_append(sorted, v[i]);
        free(v);
    }
    json_decref(c.keys);
    return respond_keys(req, sorted);
}

static int
h_renew(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct lease_info l;
    struct leases *m;
    const char *id;
    const json_t *inc;
    int64_t increment = 0, now = time_now();
    json_t *body;
    int r;

    if ((m = lease_begin(req, app, "sys/leases/renew", CAP_UPDATE, &body)) == NULL)
        return 0;
    if ((id = body_lease_id(req, body)) == NULL) {
        r = 0;
        goto out;
    }
    inc = json_object_get(body, "increment");
    if (json_is_integer(inc))
        increment = json_integer_value(inc);
    else if (json_is_string(inc)) {
        struct rk_error e2 = {0};
        const char *s = json_string_value(inc);
        if (parse_int64(s, 0, INT64_MAX / 2, &increment) != 0 &&
            duration_parse(s, strlen(s), &increment, &e2) != 0) {
            r = http_respond_error(req, 400, "invalid increment");
            goto out;
        }
    } else if (inc != NULL && !json_is_null(inc)) {
        r = http_respond_error(req, 400, "invalid increment");
        goto out;
    }
    if (increment < 0 || increment > LEASE_SYS_MAX_TTL * 100) {
        r = http_respond_error(req, 400, "invalid increment");
        goto out;
    }
    {
        char role[LEASE_NAME_MAX + 1] = "";
        struct lease_info cur;
        if (leases_lookup(m, id, &cur, err) == 0)
            snprintf(role, sizeof(role), "%s", cur.role);
        rk_error_clear(err);
        r = leases_renew(m, id, increment, role[0] ? db_role_default_ttl(app->br, role) : 0,
                         sys_max_ttl(app), now, &l, err);
    }
    if (r == 0) {
        json_t *env = lease_envelope(NULL, &l, now);
        r = http_respond_json(req, 200, env);
    } else if (r == -RK_ENOTFOUND)
        r = http_respond_error(req, 400, "lease not found");
    else if (r == -RK_EINVAL)
        r = http_respond_error(req, 400, "%s", err->msg);
    else
        r = api_respond_rk(req, r, err);
out:
    mgr_give(m);
    json_decref(body);
    return r;
}

static int
h_revoke(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct leases *m;
    const char *id;
    json_t *body;
    int r;

    if ((m = lease_begin(req, app, "sys/leases/revoke", CAP_UPDATE, &body)) == NULL)
        return 0;
    if ((id = body_lease_id(req, body)) == NULL)
        r = 0;
    else if ((r = leases_revoke(m, id, 0, err)) == 0 || r == -RK_ENOTFOUND)
        r = http_respond_no_content(req); /* Vault: revoking an unknown lease is no error */
    else
        r = api_respond_rk(req, r, err);
    mgr_give(m);
    json_decref(body);
    return r;
}

static int
revoke_prefix(struct http_request *req, void *vapp, struct rk_error *err, int force)
{
    struct api_app *app = vapp;
    const char *prefix = http_request_param(req);
    char acl[LEASE_ID_MAX + 40];
    size_t ok = 0, bad = 0;
    struct leases *m;
    json_t *body;
    int r;

    snprintf(acl, sizeof(acl), "sys/leases/revoke-%s/%s", force ? "force" : "prefix", prefix);
    if ((m = lease_begin(req, app, acl, CAP_UPDATE | CAP_SUDO, &body)) == NULL)
        return 0;
    json_decref(body);
    if (prefix[0] == '\0') {
        mgr_give(m);
        return http_respond_error(req, 400, "a prefix is required");
    }
    r = leases_revoke_prefix(m, prefix, force, &ok, &bad, err);
    mgr_give(m);
    log_info("leases: revoke-%s %s: %zu revoked, %zu failed", force ? "force" : "prefix", prefix,
             ok, bad);
    if (r != 0)
        return http_respond_error(req, r == -RK_EUNAVAILABLE ? 503 : 500,
                                  "%zu lease(s) revoked, %zu failed (kept, retried): %s", ok, bad,
                                  err->msg);
    return http_respond_no_content(req);
}

static int
h_revoke_prefix(struct http_request *req, void *vapp, struct rk_error *err)
{
    return revoke_prefix(req, vapp, err, 0);
}

static int
h_revoke_force(struct http_request *req, void *vapp, struct rk_error *err)
{
    return revoke_prefix(req, vapp, err, 1);
}

const struct route routes_database[] = {
    {HTTP_GET | HTTP_PUT | HTTP_POST | HTTP_DELETE | HTTP_LIST, "/v1/database/config/", h_config,
     ROUTE_PARAM_NAME},
    {HTTP_GET | HTTP_PUT | HTTP_POST | HTTP_DELETE | HTTP_LIST, "/v1/database/roles/", h_roles,
     ROUTE_PARAM_NAME},
    {HTTP_GET, "/v1/database/creds/", h_creds, ROUTE_PARAM_NAME},
    {HTTP_GET | HTTP_PUT | HTTP_POST | HTTP_DELETE | HTTP_LIST, "/v1/database/static-roles/",
     h_static_roles, ROUTE_PARAM_NAME},
    {HTTP_GET, "/v1/database/static-creds/", h_static_creds, ROUTE_PARAM_NAME},
    {HTTP_PUT | HTTP_POST, "/v1/database/rotate-role/", h_rotate_role, ROUTE_PARAM_NAME},
    {HTTP_PUT | HTTP_POST, "/v1/database/rotate-root/", h_rotate_root, ROUTE_PARAM_NAME},
    {HTTP_PUT | HTTP_POST, "/v1/sys/leases/lookup", h_lookup, ROUTE_PARAM_NONE},
    {HTTP_LIST, "/v1/sys/leases/lookup/", h_lookup_list, ROUTE_PARAM_PATH},
    {HTTP_PUT | HTTP_POST, "/v1/sys/leases/renew", h_renew, ROUTE_PARAM_NONE},
    {HTTP_PUT | HTTP_POST, "/v1/sys/renew", h_renew, ROUTE_PARAM_NONE},
    {HTTP_PUT | HTTP_POST, "/v1/sys/leases/revoke", h_revoke, ROUTE_PARAM_NONE},
    {HTTP_PUT | HTTP_POST, "/v1/sys/revoke", h_revoke, ROUTE_PARAM_NONE},
    {HTTP_PUT | HTTP_POST, "/v1/sys/leases/revoke-prefix/", h_revoke_prefix, ROUTE_PARAM_PATH},
    {HTTP_PUT | HTTP_POST, "/v1/sys/leases/revoke-force/", h_revoke_force, ROUTE_PARAM_PATH},
};
const size_t routes_database_count = sizeof(routes_database) / sizeof(routes_database[0]);
