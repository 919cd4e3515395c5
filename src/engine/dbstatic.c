/* dbstatic.c: static database roles (dbstatic.h). Lock order: rot_mu (one rotation at a time),
 * then the pool's (engine/dbconf.c). */
#include "engine/dbstatic.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "engine/dbroles.h"
#include "secrets/database.h"
#include "store/barrier-json.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/testsw.h"
#include "util/timeutil.h"

#define PREFIX "dbengine/static/"
#define KEY_MAX (sizeof(PREFIX) + LEASE_NAME_MAX + 1)
#define PERIOD_DEFAULT 86400
#define PERIOD_MIN 5

static pthread_mutex_t rot_mu = PTHREAD_MUTEX_INITIALIZER;

/* Wipes every string of j that may hold a password, then frees j. */
static void
wipe_free(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;

    if (j == NULL)
        return;
    if (json_is_string(j)) {
        OPENSSL_cleanse((void *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        json_object_foreach(j, k, v)
        {
            if (v->refcount == 1)
                wipe_free(json_incref(v));
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            if (v->refcount == 1)
                wipe_free(json_incref(v));
        }
    }
    json_decref(j);
}

void
dbstatic_creds_free(json_t *creds)
{
    wipe_free(creds);
}

static int
rec_get(struct barrier *br, const char *name, json_t **out, struct rk_error *err)
{
    char key[KEY_MAX];
    int r;

    *out = NULL;
    if (strlen(name) == 0 || strlen(name) > LEASE_NAME_MAX || strchr(name, '/') != NULL)
        return rk_error_set(err, RK_EINVAL, "bad name");
    snprintf(key, sizeof(key), PREFIX "%s", name);
    if ((r = barrier_get_json(br, key, out, err)) == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no static role %s", name);
    return r;
}

static int
rec_put(struct barrier *br, const char *name, const json_t *j, struct rk_error *err)
{
    char key[KEY_MAX];

    snprintf(key, sizeof(key), PREFIX "%s", name);
    return barrier_put_json(br, key, j, err);
}

static struct secret *
str_secret(const json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    return secret_from((const unsigned char *)json_string_value(v), json_string_length(v));
}

/* ---- the steps ---- */

struct ctx {
    struct barrier *br;
    const char *name;
    json_t *rec;
    struct pool *pool;
    char *conninfo;
};

static int
ctx_open(struct ctx *c, struct rk_error *err)
{
    const char *db = json_string_value(json_object_get(c->rec, "db_name"));
    int r;

    if (db == NULL)
        return rk_error_set(err, RK_ECORRUPT, "static role %s names no database", c->name);
    if ((r = dbconf_conninfo(c->br, db, &c->conninfo, err)) != 0)
        return r;
    return db_pool_get(c->br, db, &c->pool, err);
}

static void
ctx_close(struct ctx *c)
{
    db_pool_put(c->pool);
    free(c->conninfo);
    wipe_free(c->rec);
}

static const char *
user_of(const json_t *rec, size_t slot)
{
    return json_string_value(json_array_get(json_object_get(rec, "usernames"), slot));
}

/* The pending rotation becomes the slot's password (and the active one). */
static void
promote(json_t *rec, int64_t now)
{
    json_t *pend = json_object_get(rec, "pending");
    size_t slot = (size_t)json_integer_value(json_object_get(pend, "slot"));

    json_array_set(json_object_get(rec, "passwords"), slot, json_object_get(pend, "password"));
    json_object_set_new(rec, "active", json_integer((json_int_t)slot));
    json_object_set_new(rec, "last_rotation", json_integer(now));
    json_object_del(rec, "pending");
}

/* An interrupted rotation (a pending one in the record): the pending password logs in →
 * promoted; the stored one does → dropped; neither → an error, the record unchanged. */
static int
resolve(struct ctx *c, struct rk_error *err)
{
    json_t *pend = json_object_get(c->rec, "pending");
    size_t slot;
    struct secret *pw;
    int r;

    if (pend == NULL)
        return 0;
    slot = (size_t)json_integer_value(json_object_get(pend, "slot"));
    if ((pw = str_secret(json_object_get(pend, "password"))) == NULL)
        return rk_error_set(err, RK_ECORRUPT, "static role %s: a bad pending record", c->name);
    r = pgdb_login_test(c->conninfo, user_of(c->rec, slot), pw, err);
    secret_free(pw);
    if (r == 0) {
        promote(c->rec, time_now());
        log_info("database: static role %s: an interrupted rotation is completed", c->name);
        return rec_put(c->br, c->name, c->rec, err);
    }
    if (r != -RK_EREJECTED)
        return r;
    rk_error_clear(err);
    json_object_del(c->rec, "pending");
    log_info("database: static role %s: an interrupted rotation is dropped (its password was "
             "never set)",
             c->name);
    return rec_put(c->br, c->name, c->rec, err);
}

/* Rotates the slot due: the idle one (alternating) or the only one. */
static int
rotate_locked(struct ctx *c, struct rk_error *err)
{
    json_t *users = json_object_get(c->rec, "usernames");
    size_t n = json_array_size(users), slot = 0;
    const char *stmts = json_string_value(json_object_get(c->rec, "rotation_statements"));
    struct secret *pw = NULL;
    int r;

    if ((r = resolve(c, err)) != 0)
        return r;
    if (n == 2 && json_is_string(json_array_get(json_object_get(c->rec, "passwords"), 0)) &&
        json_string_length(json_array_get(json_object_get(c->rec, "passwords"), 0)) > 0)
        slot = 1 - (size_t)json_integer_value(json_object_get(c->rec, "active"));
    if ((r = pgdb_password(&pw, err)) != 0)
        return r;
    /* 1. the intent */
    json_object_set_new(c->rec, "pending",
                        json_pack("{s:I,s:s%}", "slot", (json_int_t)slot, "password",
                                  (const char *)pw->data, pw->len));
    if ((r = rec_put(c->br, c->name, c->rec, err)) != 0)
        goto out;
    test_crash_at("static-intent");
    /* 2. apply */
    if ((r = pgdb_login_set_password(db_pool_pgdb(c->pool), stmts, user_of(c->rec, slot), pw,
                                     err)) != 0) {
        struct rk_error e2 = {0};
        json_object_del(c->rec, "pending");
        (void)rec_put(c->br, c->name, c->rec, &e2);
        rk_error_prefix(err, "static role %s", c->name);
        goto out;
    }
    test_crash_at("static-applied");
    /* 3. test: a fresh login. Refused: the pending record stays, resolve decides later. */
    if ((r = pgdb_login_test(c->conninfo, user_of(c->rec, slot), pw, err)) != 0) {
        rk_error_prefix(err, "static role %s: the new password does not log in", c->name);
        goto out;
    }
    /* 4. promote */
    promote(c->rec, time_now());
    r = rec_put(c->br, c->name, c->rec, err);
    test_crash_at("static-promoted");
    if (r == 0)
        log_info("database: static role %s: login %s rotated", c->name, user_of(c->rec, slot));
out:
    secret_free(pw);
    return r;
}

static int
due(const json_t *rec, int64_t now)
{
    int64_t last = json_integer_value(json_object_get(rec, "last_rotation"));
    int64_t period = json_integer_value(json_object_get(rec, "rotation_period"));

    return last == 0 || now >= last + period;
}

/* Loads name, resolves, rotates when force or due, (both slots of a new alternating role). */
static int
run(struct barrier *br, const char *name, int force, int64_t now, json_t **keep,
    struct rk_error *err)
{
    struct ctx c = {br, name, NULL, NULL, NULL};
    int r;

    pthread_mutex_lock(&rot_mu);
    if ((r = rec_get(br, name, &c.rec, err)) != 0 || (r = ctx_open(&c, err)) != 0)
        goto out;
    if ((r = resolve(&c, err)) != 0)
        goto out;
    if (force || due(c.rec, now)) {
        json_t *pws = json_object_get(c.rec, "passwords");
        if ((r = rotate_locked(&c, err)) != 0)
            goto out;
        /* A new alternating role: the other login gets a password of rekey's too (and becomes
         * the active one). */
        if (json_array_size(pws) == 2 &&
            json_string_length(json_array_get(json_object_get(c.rec, "passwords"), 1)) == 0) {
            if ((r = rotate_locked(&c, err)) != 0)
                goto out;
        }
    }
    if (keep != NULL) {
        *keep = c.rec;
        c.rec = NULL;
    }
out:
    ctx_close(&c);
    pthread_mutex_unlock(&rot_mu);
    return r;
}

/* ---- the API ---- */

static int
stmts_text(const json_t *v, char **out, struct rk_error *err)
{
    size_t i, len = 1;
    const json_t *e;

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v))
        return (*out = strdup(json_string_value(v))) != NULL
                   ? 0
                   : rk_error_set(err, RK_ENOMEM, "out of memory");
    if (!json_is_array(v))
        return rk_error_set(err, RK_EINVAL, "rotation_statements: a string or a list");
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return rk_error_set(err, RK_EINVAL, "rotation_statements: a list of strings");
        len += json_string_length(e) + 2;
    }
    if ((*out = calloc(1, len)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    json_array_foreach(v, i, e)
    {
        size_t at = strlen(*out);
        snprintf(*out + at, len - at, "%s;\n", json_string_value(e));
    }
    return 0;
}

static int
period_field(const json_t *v, int64_t *out, struct rk_error *err)
{
    if (v == NULL)
        return 0;
    if (json_is_integer(v))
        *out = json_integer_value(v);
    else if (!json_is_string(v) ||
             duration_parse(json_string_value(v), json_string_length(v), out, err) != 0)
        return rk_error_set(err, RK_EINVAL, "rotation_period: seconds or a duration");
    if (*out < PERIOD_MIN)
        return rk_error_set(err, RK_EINVAL, "rotation_period: at least %d seconds", PERIOD_MIN);
    return 0;
}

int
dbstatic_write(struct barrier *br, const char *name, const json_t *body, struct rk_error *err)
{
    json_t *rec = NULL, *old = NULL;
    const char *db = json_string_value(json_object_get(body, "db_name"));
    const char *user = json_string_value(json_object_get(body, "username"));
    const char *alt = json_string_value(json_object_get(body, "alternate_username"));
    const char *strat = json_string_value(json_object_get(body, "rotation_strategy"));
    char *stmts = NULL, *ci = NULL;
    int64_t period = PERIOD_DEFAULT;
    int r;

    r = rec_get(br, name, &old, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    if (old != NULL) {
        /* The logins cannot change (their passwords are rekey's); the rest may. */
        if (db == NULL)
            db = json_string_value(json_object_get(old, "db_name"));
        period = json_integer_value(json_object_get(old, "rotation_period"));
    }
    if (strat == NULL)
        strat = alt != NULL ? "alternating" : "single";
    if ((r = period_field(json_object_get(body, "rotation_period"), &period, err)) != 0 ||
        (r = stmts_text(json_object_get(body, "rotation_statements"), &stmts, err)) != 0)
        goto out;
    if (stmts != NULL && (r = pgdb_template_check(stmts, err)) != 0)
        goto out;
    if (db == NULL) {
        r = rk_error_set(err, RK_EINVAL, "db_name is required");
        goto out;
    }
    if ((r = dbconf_conninfo(br, db, &ci, err)) != 0)
        goto out;
    if (old != NULL) {
        rec = json_deep_copy(old);
        if (user != NULL && strcmp(user, user_of(old, 0)) != 0) {
            r = rk_error_set(err, RK_EINVAL, "username cannot change (delete the role first)");
            goto out;
        }
    } else {
        if (user == NULL || strlen(user) == 0 || strlen(user) > PGDB_NAME_MAX) {
            r = rk_error_set(err, RK_EINVAL, "username is required (at most 63 bytes)");
            goto out;
        }
        if (strcmp(strat, "alternating") == 0) {
            if (alt == NULL || strlen(alt) == 0 || strlen(alt) > PGDB_NAME_MAX ||
                strcmp(alt, user) == 0) {
                r = rk_error_set(err, RK_EINVAL,
                                 "rotation_strategy alternating needs alternate_username, "
                                 "another login");
                goto out;
            }
            rec = json_pack("{s:[s,s],s:[s,s]}", "usernames", user, alt, "passwords", "", "");
        } else if (strcmp(strat, "single") == 0) {
            rec = json_pack("{s:[s],s:[s]}", "usernames", user, "passwords", "");
        } else {
            r = rk_error_set(err, RK_EINVAL, "rotation_strategy: single or alternating");
            goto out;
        }
        if (rec != NULL) {
            json_object_set_new(rec, "active", json_integer(0));
            json_object_set_new(rec, "last_rotation", json_integer(0));
        }
    }
    if (rec == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    json_object_set_new(rec, "db_name", json_string(db));
    json_object_set_new(rec, "rotation_period", json_integer(period));
    if (stmts != NULL)
        json_object_set_new(rec, "rotation_statements", json_string(stmts));
    pthread_mutex_lock(&rot_mu);
    r = rec_put(br, name, rec, err);
    pthread_mutex_unlock(&rot_mu);
    if (r == 0 && old == NULL)
        r = run(br, name, 1, time_now(), NULL, err); /* rekey learns the password(s) now */
out:
    free(stmts);
    free(ci);
    wipe_free(rec);
    wipe_free(old);
    return r;
}

int
dbstatic_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err)
{
    json_t *rec = NULL;
    int r;

    *out = NULL;
    if ((r = rec_get(br, name, &rec, err)) != 0)
        return r;
    *out = json_pack(
        "{s:O,s:O,s:O,s:I,s:O,s:s}", "db_name", json_object_get(rec, "db_name"), "username",
        json_array_get(json_object_get(rec, "usernames"), 0), "usernames",
        json_object_get(rec, "usernames"), "rotation_period",
        json_integer_value(json_object_get(rec, "rotation_period")), "last_vault_rotation",
        json_object_get(rec, "last_rotation"), "rotation_strategy",
        json_array_size(json_object_get(rec, "usernames")) == 2 ? "alternating" : "single");
    if (*out != NULL && json_is_string(json_object_get(rec, "rotation_statements")))
        json_object_set_new(*out, "rotation_statements",
                            json_pack("[O]", json_object_get(rec, "rotation_statements")));
    wipe_free(rec);
    return *out != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

int
dbstatic_delete(struct barrier *br, const char *name, struct rk_error *err)
{
    char key[KEY_MAX];
    int r;

    snprintf(key, sizeof(key), PREFIX "%s", name);
    pthread_mutex_lock(&rot_mu);
    r = barrier_del(br, key, err);
    pthread_mutex_unlock(&rot_mu);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        r = 0;
    }
    return r;
}

static int
list_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    (void)val, (void)vlen, (void)rev;
    return json_array_append_new(arg, json_string(key + strlen(PREFIX))) == 0 ? 0 : -RK_ENOMEM;
}

int
dbstatic_list(struct barrier *br, json_t **out, struct rk_error *err)
{
    int r;

    if ((*out = json_array()) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if ((r = barrier_list(br, PREFIX, NULL, 0, list_cb, *out, err)) != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return r;
}

int
dbstatic_creds(struct barrier *br, const char *name, int64_t now, json_t **out,
               struct rk_error *err)
{
    json_t *rec = NULL;
    size_t act;
    int64_t last, period, ttl;
    int r;

    *out = NULL;
    if ((r = run(br, name, 0, now, &rec, err)) != 0)
        return r;
    act = (size_t)json_integer_value(json_object_get(rec, "active"));
    last = json_integer_value(json_object_get(rec, "last_rotation"));
    period = json_integer_value(json_object_get(rec, "rotation_period"));
    ttl = last + period - now;
    *out = json_pack("{s:O,s:O,s:I,s:I,s:I}", "username",
                     json_array_get(json_object_get(rec, "usernames"), act), "password",
                     json_array_get(json_object_get(rec, "passwords"), act), "last_vault_rotation",
                     (json_int_t)last, "rotation_period", (json_int_t)period, "ttl",
                     (json_int_t)(ttl > 0 ? ttl : 0));
    /* the active password is shared with *out (kept); the others are wiped */
    wipe_free(rec);
    return *out != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

int
dbstatic_rotate(struct barrier *br, const char *name, struct rk_error *err)
{
    return run(br, name, 1, time_now(), NULL, err);
}

int
dbstatic_rotate_due(struct barrier *br, int64_t now)
{
    json_t *names = NULL, *e;
    struct rk_error err = {0};
    size_t i;
    int n = 0;

    if (dbstatic_list(br, &names, &err) != 0)
        return 0;
    json_array_foreach(names, i, e)
    {
        json_t *rec = NULL;
        struct rk_error e2 = {0};
        int is_due;
        if (rec_get(br, json_string_value(e), &rec, &e2) != 0)
            continue;
        is_due = due(rec, now) || json_object_get(rec, "pending") != NULL;
        wipe_free(rec);
        if (!is_due)
            continue;
        if (run(br, json_string_value(e), 0, now, NULL, &e2) == 0)
            n++;
        else
            log_warn("database: static role %s: rotation failed: %s (retried)",
                     json_string_value(e), e2.msg);
    }
    json_decref(names);
    return n;
}
