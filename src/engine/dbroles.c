/* dbroles.c: the database engine's records (configs' and roles' alike), its roles (the API's,
 * database/roles/:name, and the configuration's, through db_role_source_set) and the logins it
 * issues with leases, whose revoke and renew the lease manager calls back (db_lease_ops)
 * (dbroles.h). The configs, their admin pools and rotate-root are in dbconf.c; what the two
 * share is in dbroles-int.h. */
#include "engine/dbroles.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "engine/dbroles-int.h"
#include "inventory/inventory.h"
#include "secrets/database.h"
#include "secrets/kv.h"
#include "store/barrier-json.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/testsw.h"
#include "util/timeutil.h"

#define KEY_MAX (sizeof(CONF_PREFIX) + LEASE_NAME_MAX + 1)

/* ---- records ---- */

int
db_rec_get(struct barrier *br, const char *prefix, const char *name, json_t **out,
           struct rk_error *err)
{
    char key[KEY_MAX];

    *out = NULL;
    if (strlen(name) == 0 || strlen(name) > LEASE_NAME_MAX)
        return rk_error_set(err, RK_EINVAL, "bad name");
    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return barrier_get_json(br, key, out, err);
}

int
db_rec_put(struct barrier *br, const char *prefix, const char *name, const json_t *j,
           struct rk_error *err)
{
    char key[KEY_MAX];

    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return barrier_put_json(br, key, j, err);
}

int
db_rec_del(struct barrier *br, const char *prefix, const char *name, struct rk_error *err)
{
    char key[KEY_MAX];
    int r;

    snprintf(key, sizeof(key), "%s%s", prefix, name);
    r = barrier_del(br, key, err);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        r = 0;
    }
    return r;
}

int
db_rec_get_or_new(struct barrier *br, const char *prefix, const char *name, json_t **out,
                  struct rk_error *err)
{
    int r = db_rec_get(br, prefix, name, out, err);

    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    if (*out == NULL && (*out = json_object()) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

int
db_rec_view(struct barrier *br, const char *prefix, const char *name,
            json_t *(*view)(const json_t *rec), json_t **out, struct rk_error *err)
{
    json_t *c = NULL;
    int r;

    *out = NULL;
    if ((r = db_rec_get(br, prefix, name, &c, err)) != 0)
        return r;
    *out = view(c);
    json_decref(c);
    return *out != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

/* ---- roles of the configuration ---- */

static pthread_mutex_t src_mu = PTHREAD_MUTEX_INITIALIZER;
static db_role_lookup_fn src_fn;
static void *src_arg;
static struct kv *src_kv;

void
db_role_source_set(db_role_lookup_fn fn, void *arg, struct kv *kv)
{
    pthread_mutex_lock(&src_mu);
    src_fn = fn;
    src_arg = arg;
    src_kv = kv;
    pthread_mutex_unlock(&src_mu);
}

static int
dup_opt(const char *v, char **out)
{
    *out = NULL;
    if (v == NULL)
        return 0;
    return (*out = strdup(v)) != NULL ? 0 : -RK_ENOMEM;
}

void
db_role_def_clear(struct db_role_def *d)
{
    free(d->conninfo);
    free(d->creation);
    free(d->revocation);
    free(d->renew);
    free(d->pw_path);
    free(d->pw_field);
    memset(d, 0, sizeof(*d));
}

int
db_role_from_entry(const struct inv_secret *s, struct db_role_def *out, struct rk_error *err)
{
    const char *f = inv_param(s, "admin_password_field");

    memset(out, 0, sizeof(*out));
    if (strlen(s->path) > LEASE_NAME_MAX)
        return rk_error_set(err, RK_EINVAL,
                            "%.64s...: a database entry's path is longer than %d "
                            "bytes",
                            s->path, LEASE_NAME_MAX);
    snprintf(out->db, sizeof(out->db), "%s", s->path);
    (void)inv_param_duration(s, "ttl", 3600, &out->ttl);
    (void)inv_param_duration(s, "max_ttl", 86400, &out->max_ttl);
    if (dup_opt(inv_param(s, "connection"), &out->conninfo) != 0 ||
        dup_opt(inv_param(s, "creation_statements"), &out->creation) != 0 ||
        dup_opt(inv_param(s, "revocation_statements"), &out->revocation) != 0 ||
        dup_opt(inv_param(s, "renew_statements"), &out->renew) != 0 ||
        dup_opt(inv_param(s, "admin_password_path"), &out->pw_path) != 0 ||
        dup_opt(f != NULL ? f : "password", &out->pw_field) != 0) {
        db_role_def_clear(out);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- roles ---- */

/* A statements field (string or list of strings) as one text, or NULL when absent. */
static int
stmts_field(const json_t *body, const char *key, char **out, struct rk_error *err)
{
    const json_t *v = json_object_get(body, key), *e;
    size_t i, n = 1;
    char *s;

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        s = strdup(json_string_value(v));
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return rk_error_set(err, RK_EINVAL, "%s: expected strings", key);
            n += json_string_length(e) + 2;
        }
        if ((s = calloc(1, n)) != NULL)
            json_array_foreach(v, i, e)
            {
                size_t at = strlen(s), l = json_string_length(e);
                const char *t = json_string_value(e);
                memcpy(s + at, t, l);
                at += l;
                while (at > 0 && (s[at - 1] == ' ' || s[at - 1] == '\n'))
                    at--;
                if (at > 0 && s[at - 1] != ';')
                    s[at++] = ';';
                s[at++] = '\n';
                s[at] = '\0';
            }
    } else {
        return rk_error_set(err, RK_EINVAL, "%s: expected a string or a list of strings", key);
    }
    if (s == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (pgdb_template_check(s, err) != 0) {
        free(s);
        return rk_error_set(err, RK_EINVAL, "%s: %s", key, err->msg);
    }
    *out = s;
    return 0;
}

static int
ttl_field(const json_t *body, const char *key, int *set, int64_t *out, struct rk_error *err)
{
    const json_t *v = json_object_get(body, key);
    struct rk_error e2 = {0};

    *set = 0;
    if (v == NULL || json_is_null(v))
        return 0;
    *set = 1;
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        return (*out = json_integer_value(v), 0);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (parse_int64(s, 0, INT64_MAX / 2, out) == 0)
            return 0;
        if (duration_parse(s, strlen(s), out, &e2) == 0)
            return 0;
    }
    return rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected seconds or a duration (1h)", key);
}

int
dbrole_write(struct barrier *br, const char *name, const json_t *body, struct rk_error *err)
{
    static const char *const keys[] = {"creation_statements", "revocation_statements",
                                       "renew_statements", "rollback_statements"};
    const char *dbn;
    json_t *rec = NULL;
    int64_t ttl = 0, max = 0;
    int r, set;

    if ((r = db_field_str(body, "db_name", &dbn, err)) != 0)
        return r;
    if ((r = db_rec_get_or_new(br, ROLE_PREFIX, name, &rec, err)) != 0)
        return r;
    if (dbn != NULL)
        json_object_set_new(rec, "db_name", json_string(dbn));
    if (!json_is_string(json_object_get(rec, "db_name"))) {
        json_decref(rec);
        return rk_error_set(err, RK_EINVAL, "db_name is required");
    }
    for (size_t i = 0; i < 4; i++) {
        char *s = NULL;
        if ((r = stmts_field(body, keys[i], &s, err)) != 0) {
            json_decref(rec);
            return r;
        }
        if (s != NULL)
            json_object_set_new(rec, keys[i], json_string(s));
        free(s);
    }
    if ((r = ttl_field(body, "default_ttl", &set, &ttl, err)) != 0 ||
        (!set && (r = ttl_field(body, "ttl", &set, &ttl, err)) != 0)) {
        json_decref(rec);
        return r;
    }
    if (set)
        json_object_set_new(rec, "default_ttl", json_integer(ttl));
    if ((r = ttl_field(body, "max_ttl", &set, &max, err)) != 0) {
        json_decref(rec);
        return r;
    }
    if (set)
        json_object_set_new(rec, "max_ttl", json_integer(max));
    ttl = json_integer_value(json_object_get(rec, "default_ttl"));
    max = json_integer_value(json_object_get(rec, "max_ttl"));
    if (max > 0 && ttl > max) {
        json_decref(rec);
        return rk_error_set(err, RK_EINVAL, "default_ttl cannot be greater than max_ttl");
    }
    r = db_rec_put(br, ROLE_PREFIX, name, rec, err);
    json_decref(rec);
    return r;
}

static json_t *
stmts_list(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(rec, key);

    return json_is_string(v) ? json_pack("[O]", v) : json_array();
}

/* The role as dbrole_read shows it. */
static json_t *
role_view(const json_t *c)
{
    return json_pack("{s:O,s:o,s:o,s:o,s:o,s:I,s:I,s:s}", "db_name", json_object_get(c, "db_name"),
                     "creation_statements", stmts_list(c, "creation_statements"),
                     "revocation_statements", stmts_list(c, "revocation_statements"),
                     "renew_statements", stmts_list(c, "renew_statements"), "rollback_statements",
                     stmts_list(c, "rollback_statements"), "default_ttl",
                     json_integer_value(json_object_get(c, "default_ttl")), "max_ttl",
                     json_integer_value(json_object_get(c, "max_ttl")), "source", "api");
}

int
dbrole_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err)
{
    return db_rec_view(br, ROLE_PREFIX, name, role_view, out, err);
}

int
dbrole_delete(struct barrier *br, const char *name, struct rk_error *err)
{
    return db_rec_del(br, ROLE_PREFIX, name, err);
}

static int
list_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    const char *slash = strrchr(key, '/');

    (void)val, (void)vlen, (void)rev;
    json_array_append_new(arg, json_string(slash != NULL ? slash + 1 : key));
    return 0;
}

int
dbengine_list(struct barrier *br, int which, json_t **out, struct rk_error *err)
{
    json_t *a = json_array();
    int r;

    *out = NULL;
    if (a == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r = barrier_list(br, which ? ROLE_PREFIX : CONF_PREFIX, NULL, 0, list_cb, a, err);
    if (r != 0) {
        json_decref(a);
        return r;
    }
    *out = a;
    return 0;
}

/* Role role into *d (db_role_def_clear). from: -1 the configuration's first, then the API's;
 * 0 the API's only; 1 the configuration's only. *inv is 1 when it is the configuration's (d->db
 * is then the entry's path, else the API role's db_name). Returns 0, -RK_ENOTFOUND, others. */
static int
role_load(struct barrier *br, const char *role, int from, struct db_role_def *d, int *inv,
          struct rk_error *err)
{
    db_role_lookup_fn fn;
    void *arg;
    json_t *rc = NULL;
    const char *dbn;
    int r;

    memset(d, 0, sizeof(*d));
    *inv = 0;
    if (from != 0) {
        pthread_mutex_lock(&src_mu);
        fn = src_fn;
        arg = src_arg;
        pthread_mutex_unlock(&src_mu);
        r = fn != NULL ? fn(arg, role, d, err) : -RK_ENOTFOUND;
        if (r == 0 && d->conninfo == NULL) {
            db_role_def_clear(d);
            return rk_error_set(err, RK_ECONFIG, "role %s: its entry has no connection", role);
        }
        if (r == 0) {
            *inv = 1;
            return 0;
        }
        db_role_def_clear(d);
        if (r == -RK_ENOTFOUND && from == 1)
            return rk_error_set(err, RK_ENOTFOUND, "the configuration defines no role %s", role);
        if (r != -RK_ENOTFOUND)
            return r;
        rk_error_clear(err);
    }
    if ((r = db_rec_get(br, ROLE_PREFIX, role, &rc, err)) != 0) {
        if (r == -RK_ENOTFOUND)
            return rk_error_set(err, RK_ENOTFOUND, "unknown role: %s", role);
        return r;
    }
    dbn = json_string_value(json_object_get(rc, "db_name"));
    snprintf(d->db, sizeof(d->db), "%s", dbn != NULL ? dbn : "");
    d->ttl = json_integer_value(json_object_get(rc, "default_ttl"));
    d->max_ttl = json_integer_value(json_object_get(rc, "max_ttl"));
    if (dup_opt(json_string_value(json_object_get(rc, "creation_statements")), &d->creation) != 0 ||
        dup_opt(json_string_value(json_object_get(rc, "revocation_statements")), &d->revocation) !=
            0 ||
        dup_opt(json_string_value(json_object_get(rc, "renew_statements")), &d->renew) != 0) {
        db_role_def_clear(d);
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    json_decref(rc);
    return r;
}

/* The admin pool of a role loaded by role_load: the API config's, or the entry's with its admin
 * password read from the KV store. */
static int
role_pool(struct barrier *br, const struct db_role_def *d, int inv, struct pool **p,
          struct rk_error *err)
{
    struct secret *pw = NULL;
    struct kv *kv;
    int r;

    *p = NULL;
    if (!inv)
        return db_pool_get(br, d->db, p, err);
    pthread_mutex_lock(&src_mu);
    kv = src_kv;
    pthread_mutex_unlock(&src_mu);
    if (d->pw_path != NULL) {
        if (kv == NULL)
            return rk_error_set(err, RK_EUNAVAILABLE, "%s: the KV store is not open", d->db);
        if ((r = kv_get_field(kv, d->pw_path, 0, d->pw_field, &pw, err)) != 0)
            return rk_error_prefix(err, "%s: the admin password (field %.64s of %.256s)", d->db,
                                   d->pw_field, d->pw_path);
    }
    r = db_pool_get_inv(br, d->db, d->conninfo, pw, p, err);
    secret_free(pw);
    return r;
}

int64_t
db_role_default_ttl(struct barrier *br, const char *role)
{
    struct rk_error err = {0};
    struct db_role_def d;
    int64_t ttl = 0;
    int inv;

    if (role_load(br, role, -1, &d, &inv, &err) == 0)
        ttl = d.ttl;
    db_role_def_clear(&d);
    return ttl;
}

/* ---- logins with leases ---- */

static int
role_allowed(const json_t *conf, const char *role)
{
    const json_t *e;
    size_t i;

    json_array_foreach(json_object_get(conf, "allowed_roles"), i,
                       e) if (strcmp(json_string_value(e), "*") == 0 ||
                              strcmp(json_string_value(e), role) == 0) return 1;
    return 0;
}

int
db_creds_issue(struct barrier *br, struct leases *m, const char *role, const char *display,
               const char *accessor, int64_t sys_max, struct lease_info *lease,
               struct secret **password, struct rk_error *err)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    json_t *conf = NULL;
    struct db_role_def d;
    struct pool *p = NULL;
    struct secret *pw = NULL;
    unsigned char rnd[24];
    char rid[25];
    const char *dbn;
    int64_t now = time_now(), ttl, max;
    int r, inv = 0;

    *password = NULL;
    memset(lease, 0, sizeof(*lease));
    if (sys_max <= 0)
        sys_max = LEASE_SYS_MAX_TTL;
    /* The configuration's role first (it wins), then the API's. */
    if ((r = role_load(br, role, -1, &d, &inv, err)) != 0)
        return r;
    dbn = d.db;
    if (!inv && (r = db_rec_get(br, CONF_PREFIX, dbn, &conf, err)) != 0) {
        if (r == -RK_ENOTFOUND)
            r = rk_error_set(err, RK_ENOTFOUND,
                             "role %s names database config %s, which does "
                             "not exist",
                             role, dbn);
        goto out;
    }
    if (!inv && !role_allowed(conf, role)) {
        r = rk_error_set(err, RK_EPERM, "\"%s\" is not an allowed role of database config %s", role,
                         dbn);
        goto out;
    }
    ttl = d.ttl;
    max = d.max_ttl;
    if (max <= 0 || max > sys_max)
        max = sys_max;
    if (ttl <= 0 || ttl > max)
        ttl = max;
    if ((r = role_pool(br, &d, inv, &p, err)) != 0)
        goto out;
    if ((r = pgdb_username(display, role, now, lease->username, sizeof(lease->username), err)) !=
            0 ||
        (r = pgdb_password(&pw, err)) != 0)
        goto out;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        r = rk_error_set(err, RK_EINTERNAL, "no random bytes");
        goto out;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        rid[i] = alnum[rnd[i] % 62];
    rid[24] = '\0';
    snprintf(lease->id, sizeof(lease->id), "database/creds/%s/%s", role, rid);
    snprintf(lease->db, sizeof(lease->db), "%s", dbn);
    snprintf(lease->role, sizeof(lease->role), "%s", role);
    snprintf(lease->accessor, sizeof(lease->accessor), "%s", accessor != NULL ? accessor : "");
    lease->issued = now;
    lease->expires = now + ttl;
    lease->max_expires = now + max;
    /* The record first, as an intent (pending): a crash after CREATE ROLE leaves a pending
     * lease, which the next start revokes at once (leases.h). */
    lease->pending = 1;
    if ((r = leases_add(m, lease, err)) != 0)
        goto out;
    r = pgdb_login_create(db_pool_pgdb(p), d.creation, lease->username, pw, lease->expires, err);
    if (r == 0) {
        test_crash_at("db-created");
        if ((r = leases_confirm(m, lease, err)) != 0)
            r = -RK_EUNAVAILABLE; /* the login exists and its record says pending: drop it */
        lease->pending = 0;
    }
    if (r != 0) {
        struct rk_error e2 = {0};
        if (r == -RK_EUNAVAILABLE) {
            /* Did the COMMIT happen? Drop it if it did; if nothing answers, the record stays
             * and the expiry (with retries) drops the login later. */
            if (leases_revoke(m, lease->id, 0, &e2) != 0)
                log_warn("database: issuing %s failed and the drop of its login waits for "
                         "PostgreSQL: %s",
                         lease->id, e2.msg);
        } else if (leases_forget(m, lease->id, &e2) != 0) {
            log_warn("database: %s: %s", lease->id, e2.msg);
        }
        goto out;
    }
    *password = pw;
    pw = NULL;
out:
    secret_free(pw);
    db_pool_put(p);
    db_role_def_clear(&d);
    json_decref(conf);
    return r;
}

/* The pool and the role's statements (which: 0 revocation, 1 renew) for a lease. A lease
 * whose db is a path ('/') is a configuration role's: its entry must still define the role
 * with that path. An API role that is gone leaves NULL statements (the defaults). */
static int
lease_target(struct barrier *br, const struct lease_info *l, int which, struct pool **p,
             char **stmts, struct rk_error *err)
{
    struct db_role_def d;
    struct rk_error e2 = {0};
    int r, inv = 0, from = strchr(l->db, '/') != NULL ? 1 : 0;

    *stmts = NULL;
    *p = NULL;
    if (from == 1) {
        if ((r = role_load(br, l->role, 1, &d, &inv, err)) != 0)
            return rk_error_prefix(err, "lease %s", l->id);
        if (strcmp(d.db, l->db) != 0) {
            db_role_def_clear(&d);
            return rk_error_set(err, RK_ENOTFOUND,
                                "lease %s: role %s is now defined by %s, not %s (drop login %s "
                                "by hand, then revoke-force)",
                                l->id, l->role, d.db, l->db, l->username);
        }
        r = role_pool(br, &d, 1, p, err);
    } else {
        if (role_load(br, l->role, 0, &d, &inv, &e2) != 0)
            memset(&d, 0, sizeof(d));
        r = db_pool_get(br, l->db, p, err);
    }
    if (r == 0) {
        *stmts = which == 0 ? d.revocation : d.renew;
        if (which == 0)
            d.revocation = NULL;
        else
            d.renew = NULL;
    }
    db_role_def_clear(&d);
    return r;
}

static int
op_revoke(void *ctx, const struct lease_info *l, struct rk_error *err)
{
    struct pool *p = NULL;
    char *stmts = NULL;
    int r;

    if ((r = lease_target(ctx, l, 0, &p, &stmts, err)) != 0)
        return r;
    r = pgdb_login_revoke(db_pool_pgdb(p), stmts, l->username, err);
    free(stmts);
    db_pool_put(p);
    return r;
}

static int
op_renew(void *ctx, const struct lease_info *l, int64_t expires, struct rk_error *err)
{
    struct pool *p = NULL;
    char *stmts = NULL;
    int r;

    if ((r = lease_target(ctx, l, 1, &p, &stmts, err)) != 0)
        return r;
    r = pgdb_login_renew(db_pool_pgdb(p), stmts, l->username, expires, err);
    free(stmts);
    db_pool_put(p);
    return r;
}

void
db_lease_ops(struct barrier *br, struct lease_ops *ops)
{
    ops->revoke = op_revoke;
    ops->renew = op_renew;
    ops->ctx = br;
}
