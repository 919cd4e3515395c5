/* dbroles.c: configs, roles, pools and leased logins of the database engine (dbroles.h). */
#include "engine/dbroles.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "inventory/inventory.h"
#include "secrets/database.h"
#include "secrets/kv.h"
#include "store/barrier-json.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/testsw.h"
#include "util/timeutil.h"

#define CONF_PREFIX "dbengine/config/"
#define ROLE_PREFIX "dbengine/role/"
#define POOL_SIZE 4
#define KEY_MAX (sizeof(CONF_PREFIX) + LEASE_NAME_MAX + 1)

/* ---- records ---- */

static int
rec_get(struct barrier *br, const char *prefix, const char *name, json_t **out,
        struct rk_error *err)
{
    char key[KEY_MAX];

    *out = NULL;
    if (strlen(name) == 0 || strlen(name) > LEASE_NAME_MAX)
        return rk_error_set(err, RK_EINVAL, "bad name");
    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return barrier_get_json(br, key, out, err);
}

static int
rec_put(struct barrier *br, const char *prefix, const char *name, const json_t *j,
        struct rk_error *err)
{
    char key[KEY_MAX];

    snprintf(key, sizeof(key), "%s%s", prefix, name);
    return barrier_put_json(br, key, j, err);
}

static int
rec_del(struct barrier *br, const char *prefix, const char *name, struct rk_error *err)
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

/* ---- pools, one per config, kept open ---- */

struct pool {
    char name[LEASE_NAME_MAX + 1];
    struct barrier *br;
    struct pgdb *db;
    unsigned char fp[32]; /* a configuration role's pool: SHA-256 of conninfo and password */
    int refs, dead;
    struct pool *next;
};

static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pool *pools;

static void
pool_unref_locked(struct pool *p)
{
    if (--p->refs == 0 && p->dead) {
        pgdb_close(p->db);
        free(p);
    }
}

static void
pool_put(struct pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&pools_mu);
    pool_unref_locked(p);
    pthread_mutex_unlock(&pools_mu);
}

/* Drops the cached pool of name (all when name is NULL). */
static void
pool_drop(const char *name)
{
    pthread_mutex_lock(&pools_mu);
    for (struct pool **pp = &pools; *pp != NULL;) {
        struct pool *p = *pp;
        if (name == NULL || strcmp(p->name, name) == 0) {
            *pp = p->next;
            p->dead = 1;
            pool_unref_locked(p); /* the cache's reference: freed now, or by its last user */
        } else {
            pp = &p->next;
        }
    }
    pthread_mutex_unlock(&pools_mu);
}

void
db_pools_close(void)
{
    pool_drop(NULL);
}

/* The admin password of a config record (secure heap), or NULL when it has none. */
static struct secret *
conf_password(const json_t *c)
{
    const json_t *pw = json_object_get(c, "password");

    if (!json_is_string(pw) || json_string_length(pw) == 0)
        return NULL;
    return secret_from((const unsigned char *)json_string_value(pw), json_string_length(pw));
}

/* A rotate-root that stopped after its ALTER ROLE (a crash) left the stored password refused
 * and the new one in "pending_password": when the new one logs in, it becomes the password
 * (record c updated and stored) and *db is opened with it. Returns 0 or the open's -RK_E*. */
static int
root_resolve(struct barrier *br, const char *name, json_t *c, struct pgdb **db,
             struct rk_error *err)
{
    const json_t *pp = json_object_get(c, "pending_password");
    struct secret *pw =
        secret_from((const unsigned char *)json_string_value(pp), json_string_length(pp));
    int r;

    rk_error_clear(err);
    if (pw == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r = pgdb_open(json_string_value(json_object_get(c, "conninfo")), pw, POOL_SIZE, db, err);
    secret_free(pw);
    if (r != 0)
        return r;
    json_object_set(c, "password", json_object_get(c, "pending_password"));
    json_object_del(c, "pending_password");
    if ((r = rec_put(br, CONF_PREFIX, name, c, err)) != 0) {
        pgdb_close(*db);
        *db = NULL;
        return r;
    }
    log_info("database: config %s: the interrupted rotate-root is completed (the new admin "
             "password logs in)",
             name);
    return 0;
}

static int
pool_get(struct barrier *br, const char *name, struct pool **out, struct rk_error *err)
{
    struct pool *p;
    struct secret *pw;
    json_t *c = NULL;
    int r;

    *out = NULL;
    pthread_mutex_lock(&pools_mu);
    for (p = pools; p != NULL; p = p->next)
        if (p->br == br && strcmp(p->name, name) == 0) {
            p->refs++;
            *out = p;
            break;
        }
    pthread_mutex_unlock(&pools_mu);
    if (*out != NULL)
        return 0;
    if ((r = rec_get(br, CONF_PREFIX, name, &c, err)) != 0) {
        if (r == -RK_ENOTFOUND)
            return rk_error_set(err, RK_ENOTFOUND, "no database config %s", name);
        return r;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        json_decref(c);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    pw = conf_password(c);
    r = pgdb_open(json_string_value(json_object_get(c, "conninfo")), pw, POOL_SIZE, &p->db, err);
    secret_free(pw);
    if (r == -RK_EREJECTED && json_is_string(json_object_get(c, "pending_password")))
        r = root_resolve(br, name, c, &p->db, err);
    json_decref(c);
    if (r != 0) {
        free(p);
        return r;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->br = br;
    p->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&pools_mu);
    p->next = pools;
    pools = p;
    pthread_mutex_unlock(&pools_mu);
    *out = p;
    return 0;
}

/* The pool of a configuration role (name: the entry's path), opened with conninfo and pw. A
 * cached pool made with another conninfo or password (the entry changed, the admin password
 * rotated) is dropped and a new one opened. */
static int
pool_get_inv(struct barrier *br, const char *name, const char *conninfo, const struct secret *pw,
             struct pool **out, struct rk_error *err)
{
    unsigned char fp[32];
    unsigned int fl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    struct pool *p;
    int stale = 0, r;

    *out = NULL;
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, conninfo, strlen(conninfo) + 1) != 1 ||
        (pw != NULL && EVP_DigestUpdate(md, pw->data, pw->len) != 1) ||
        EVP_DigestFinal_ex(md, fp, &fl) != 1) {
        EVP_MD_CTX_free(md);
        return rk_error_set(err, RK_EINTERNAL, "sha-256 failed");
    }
    EVP_MD_CTX_free(md);
    pthread_mutex_lock(&pools_mu);
    for (p = pools; p != NULL; p = p->next)
        if (p->br == br && strcmp(p->name, name) == 0) {
            if (CRYPTO_memcmp(p->fp, fp, sizeof(fp)) == 0) {
                p->refs++;
                *out = p;
            } else {
                stale = 1;
            }
            break;
        }
    pthread_mutex_unlock(&pools_mu);
    if (*out != NULL)
        return 0;
    if (stale)
        pool_drop(name);
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if ((r = pgdb_open(conninfo, pw, POOL_SIZE, &p->db, err)) != 0) {
        free(p);
        return r;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    memcpy(p->fp, fp, sizeof(fp));
    p->br = br;
    p->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&pools_mu);
    p->next = pools;
    pools = p;
    pthread_mutex_unlock(&pools_mu);
    *out = p;
    return 0;
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

/* ---- configs ---- */

static int
field_str(const json_t *body, const char *key, const char **out, struct rk_error *err)
{
    const json_t *v = json_object_get(body, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected a string", key);
    *out = json_string_value(v);
    return 0;
}

/* Replaces every occurrence of pat in *s by rep (malloc'd text, rewritten). */
static int
replace_all(char **s, const char *pat, const char *rep)
{
    char *at;
    size_t pl = strlen(pat), rl = strlen(rep);

    while ((at = strstr(*s, pat)) != NULL) {
        size_t pre = (size_t)(at - *s), n = strlen(*s) - pl + rl + 1;
        char *t = malloc(n);
        if (t == NULL)
            return -RK_ENOMEM;
        memcpy(t, *s, pre);
        memcpy(t + pre, rep, rl);
        memcpy(t + pre + rl, at + pl, strlen(at + pl) + 1);
        free(*s);
        *s = t;
    }
    return 0;
}

static int
name_chars_ok(const char *s)
{
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

/* Appends " key='value'" to the growing text (libpq's quoting: \ and ' escaped). */
static int
append_kv(char **buf, size_t *len, size_t *cap, const char *k, const char *v)
{
    size_t need = *len + strlen(k) + 2 * strlen(v) + 8;

    if (need > *cap) {
        char *t = realloc(*buf, need * 2);
        if (t == NULL)
            return -RK_ENOMEM;
        *buf = t;
        *cap = need * 2;
    }
    *len += (size_t)snprintf(*buf + *len, *cap - *len, "%s%s='", *len ? " " : "", k);
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '\'')
            (*buf)[(*len)++] = '\\';
        (*buf)[(*len)++] = *v;
    }
    (*buf)[(*len)++] = '\'';
    (*buf)[*len] = '\0';
    return 0;
}

/* connection_url (conninfo or URL, Vault's placeholders) into a plain conninfo without a
 * password, with user = username when given. */
static int
build_conninfo(const char *url, const char *username, char **out, struct rk_error *err)
{
    static const char *const pwpats[] = {":{{password}}", "password='{{password}}'",
                                         "password={{password}}", "{{password}}"};
    PQconninfoOption *opts = NULL;
    char *s = strdup(url), *msg = NULL, *buf = NULL;
    size_t len = 0, cap = 0;
    int r = 0, have_user = 0;

    *out = NULL;
    if (s == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (username != NULL && !name_chars_ok(username)) {
        free(s);
        return rk_error_set(err, RK_EINVAL, "username: only letters, digits and _ - . allowed");
    }
    r = replace_all(&s, "{{username}}", username != NULL ? username : "");
    for (size_t i = 0; r == 0 && i < sizeof(pwpats) / sizeof(pwpats[0]); i++)
        r = replace_all(&s, pwpats[i], "");
    if (r != 0) {
        free(s);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    if (strstr(s, "{{") != NULL) {
        free(s);
        return rk_error_set(err, RK_EINVAL,
                            "connection_url: only the {{username}} and {{password}} "
                            "placeholders are known");
    }
    if ((opts = PQconninfoParse(s, &msg)) == NULL) {
        char text[200];
        snprintf(text, sizeof(text), "%s", msg != NULL ? msg : "out of memory");
        text[strcspn(text, "\n")] = '\0';
        PQfreemem(msg);
        free(s);
        return rk_error_set(err, RK_EINVAL, "connection_url: %s", text);
    }
    free(s);
    for (PQconninfoOption *o = opts; o->keyword != NULL && r == 0; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "password") == 0) {
            r = rk_error_set(err, RK_EINVAL,
                             "connection_url: holds a password; give it as \"password\" "
                             "(or the {{password}} placeholder)");
            break;
        }
        if (strcmp(o->keyword, "user") == 0) {
            if (username != NULL && username[0] != '\0')
                continue; /* username wins */
            have_user = 1;
        }
        if (append_kv(&buf, &len, &cap, o->keyword, o->val) != 0)
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    if (r == 0 && username != NULL && username[0] != '\0' &&
        append_kv(&buf, &len, &cap, "user", username) != 0)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    else if (r == 0 && (username == NULL || username[0] == '\0') && !have_user)
        r = rk_error_set(err, RK_EINVAL,
                         "no username: give \"username\" or a user in "
                         "connection_url");
    PQconninfoFree(opts);
    if (r == 0 && (r = pgdb_conninfo_check(buf, err)) != 0)
        r = -RK_EINVAL;
    if (r != 0) {
        free(buf);
        return r;
    }
    *out = buf;
    return 0;
}

/* allowed_roles as a JSON array of strings (from a list or "a,b"). */
static int
roles_array(const json_t *v, json_t **out, struct rk_error *err)
{
    json_t *a = json_array();
    size_t i;
    const json_t *e;

    *out = NULL;
    if (a == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        while (*s != '\0') {
            size_t n = strcspn(s, ",");
            const char *p = s;
            size_t k = n;
            while (k > 0 && *p == ' ')
                p++, k--;
            while (k > 0 && p[k - 1] == ' ')
                k--;
            if (k > 0)
                json_array_append_new(a, json_stringn(p, k));
            s += n;
            if (*s == ',')
                s++;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                json_decref(a);
                return rk_error_set(err, RK_EINVAL, "allowed_roles: expected strings");
            }
            json_array_append(a, (json_t *)e);
        }
    } else {
        json_decref(a);
        return rk_error_set(err, RK_EINVAL, "allowed_roles: expected a list or a string");
    }
    *out = a;
    return 0;
}

int
dbconf_write(struct barrier *br, const char *name, const json_t *body, struct rk_error *err)
{
    const char *plugin, *url, *user, *pw, *auth;
    json_t *old = NULL, *rec = NULL, *roles = NULL, *v;
    char *conninfo = NULL;
    int r, verify = 1;

    if ((r = field_str(body, "plugin_name", &plugin, err)) != 0 ||
        (r = field_str(body, "connection_url", &url, err)) != 0 ||
        (r = field_str(body, "username", &user, err)) != 0 ||
        (r = field_str(body, "password", &pw, err)) != 0 ||
        (r = field_str(body, "password_authentication", &auth, err)) != 0)
        return r;
    if ((v = json_object_get(body, "verify_connection")) != NULL)
        verify = !(json_is_false(v) ||
                   (json_is_string(v) && strcmp(json_string_value(v), "false") == 0));
    r = rec_get(br, CONF_PREFIX, name, &old, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    rec = old != NULL ? json_deep_copy(old) : json_object();
    json_decref(old);
    if (rec == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (plugin != NULL) {
        if (strstr(plugin, "postgres") == NULL) {
            r = rk_error_set(err, RK_EINVAL,
                             "plugin_name %s: only postgresql-database-plugin is served", plugin);
            goto out;
        }
        json_object_set_new(rec, "plugin_name", json_string(plugin));
    }
    if (auth != NULL) {
        if (strcmp(auth, "scram-sha-256") != 0) {
            r = rk_error_set(err, RK_EINVAL,
                             "password_authentication: only scram-sha-256 (the hash is made "
                             "by rekey, so no plaintext password reaches the server)");
            goto out;
        }
    }
    json_object_set_new(rec, "password_authentication", json_string("scram-sha-256"));
    if (url != NULL)
        json_object_set_new(rec, "connection_url", json_string(url));
    if (user != NULL)
        json_object_set_new(rec, "username", json_string(user));
    if (pw != NULL)
        json_object_set_new(rec, "password", json_string(pw));
    if ((v = json_object_get(body, "allowed_roles")) != NULL) {
        if ((r = roles_array(v, &roles, err)) != 0)
            goto out;
        json_object_set_new(rec, "allowed_roles", roles);
    }
    if (json_object_get(rec, "allowed_roles") == NULL)
        json_object_set_new(rec, "allowed_roles", json_array());
    if (!json_is_string(json_object_get(rec, "plugin_name")))
        json_object_set_new(rec, "plugin_name", json_string("postgresql-database-plugin"));
    if (!json_is_string(json_object_get(rec, "connection_url"))) {
        r = rk_error_set(err, RK_EINVAL, "connection_url is required");
        goto out;
    }
    if ((r = build_conninfo(json_string_value(json_object_get(rec, "connection_url")),
                            json_string_value(json_object_get(rec, "username")), &conninfo, err)) !=
        0)
        goto out;
    json_object_set_new(rec, "conninfo", json_string(conninfo));
    if (verify) {
        struct secret *spw = conf_password(rec);
        struct pgdb *db = NULL;
        r = pgdb_open(conninfo, spw, 1, &db, err);
        secret_free(spw);
        pgdb_close(db);
        if (r != 0)
            goto out;
    }
    if ((r = rec_put(br, CONF_PREFIX, name, rec, err)) == 0)
        pool_drop(name);
out:
    free(conninfo);
    json_decref(rec);
    return r;
}

int
dbconf_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err)
{
    json_t *c = NULL;
    int r;

    *out = NULL;
    if ((r = rec_get(br, CONF_PREFIX, name, &c, err)) != 0)
        return r;
    *out = json_pack("{s:O,s:{s:O,s:O,s:O},s:O,s:O,s:b,s:[]}", "plugin_name",
                     json_object_get(c, "plugin_name"), "connection_details", "connection_url",
                     json_object_get(c, "connection_url"), "username",
                     json_object_get(c, "username") ? json_object_get(c, "username") : json_null(),
                     "password_authentication", json_object_get(c, "password_authentication"),
                     "allowed_roles", json_object_get(c, "allowed_roles"), "plugin_version",
                     json_string(""), "verify_connection", 1, "root_credentials_rotate_statements");
    json_decref(c);
    return *out != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

int
dbconf_delete(struct barrier *br, const char *name, struct rk_error *err)
{
    int r = rec_del(br, CONF_PREFIX, name, err);

    pool_drop(name);
    return r;
}

/* REKEY_CRASH_AT=<name> (a test switch, util/testsw.h) kills the process there. */
static void
db_crash_point(const char *name)
{
    const char *at = test_switch("REKEY_CRASH_AT");

    if (at != NULL && strcmp(at, name) == 0) {
        log_warn("REKEY_CRASH_AT=%s: killing the process (fault injection)", name);
        raise(SIGKILL);
    }
}

void
db_crash_at(const char *name)
{
    db_crash_point(name);
}

int
dbconf_rotate_root(struct barrier *br, const char *name, struct rk_error *err)
{
    json_t *c = NULL;
    struct pool *p = NULL;
    struct secret *pw = NULL;
    const char *user;
    int r;

    /* The pool first: it completes an interrupted rotation (root_resolve). */
    if ((r = pool_get(br, name, &p, err)) != 0)
        goto out;
    if ((r = rec_get(br, CONF_PREFIX, name, &c, err)) != 0)
        goto out;
    if (!json_is_string(json_object_get(c, "username"))) {
        r = rk_error_set(err, RK_EINVAL, "config %s names no username to rotate", name);
        goto out;
    }
    user = json_string_value(json_object_get(c, "username"));
    if ((r = pgdb_password(&pw, err)) != 0)
        goto out;
    /* 1. The intent: the new password stored beside the old, which stays the one used. */
    json_object_set_new(c, "pending_password", json_stringn((const char *)pw->data, pw->len));
    if ((r = rec_put(br, CONF_PREFIX, name, c, err)) != 0)
        goto out;
    db_crash_point("root-intent");
    /* 2. apply: through the pool, still logged in with the old one. */
    if ((r = pgdb_login_set_password(p->db, NULL, user, pw, err)) != 0) {
        rk_error_prefix(err, "rotate-root of %s (the old password stays)", name);
        goto undo;
    }
    db_crash_point("root-applied");
    /* 3. test: a fresh login with the new one. Refused: put the old one back. */
    if ((r = pgdb_login_test(json_string_value(json_object_get(c, "conninfo")), user, pw, err)) !=
        0) {
        struct rk_error e2 = {0};
        struct secret *old = conf_password(c);
        if (old != NULL && pgdb_login_set_password(p->db, NULL, user, old, &e2) != 0)
            log_error("database: rotate-root of %s: the new password fails its test and the old "
                      "one could not be put back: %s (the new one is kept as pending)",
                      name, e2.msg);
        secret_free(old);
        goto undo;
    }
    /* 4. promote. */
    json_object_set(c, "password", json_object_get(c, "pending_password"));
    json_object_del(c, "pending_password");
    if ((r = rec_put(br, CONF_PREFIX, name, c, err)) != 0)
        goto out; /* the pending record completes it at the next pool open */
    pool_drop(name);
    log_info("database: config %s: the admin password is rotated", name);
    goto out;
undo:
    json_object_del(c, "pending_password");
    {
        struct rk_error e2 = {0};
        (void)rec_put(br, CONF_PREFIX, name, c, &e2);
    }
out:
    pool_put(p);
    secret_free(pw);
    if (c != NULL) {
        /* the record holds passwords: wipe the JSON strings before freeing */
        const char *k;
        json_t *v;
        json_object_foreach(c, k, v)
        {
            if (json_is_string(v) && strstr(k, "password") != NULL)
                OPENSSL_cleanse((void *)json_string_value(v), json_string_length(v));
        }
    }
    json_decref(c);
    return r;
}

int
db_pool_get(struct barrier *br, const char *name, struct pool **out, struct rk_error *err)
{
    return pool_get(br, name, out, err);
}

struct pgdb *
db_pool_pgdb(struct pool *p)
{
    return p->db;
}

void
db_pool_put(struct pool *p)
{
    pool_put(p);
}

int
dbconf_conninfo(struct barrier *br, const char *name, char **out, struct rk_error *err)
{
    json_t *c = NULL;
    int r;

    *out = NULL;
    if ((r = rec_get(br, CONF_PREFIX, name, &c, err)) != 0)
        return r;
    if (!json_is_string(json_object_get(c, "conninfo")))
        r = rk_error_set(err, RK_ECORRUPT, "config %s has no conninfo", name);
    else if ((*out = strdup(json_string_value(json_object_get(c, "conninfo")))) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    json_decref(c);
    return r;
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
    json_t *old = NULL, *rec;
    int64_t ttl = 0, max = 0;
    int r, set;

    if ((r = field_str(body, "db_name", &dbn, err)) != 0)
        return r;
    r = rec_get(br, ROLE_PREFIX, name, &old, err);
    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    rec = old != NULL ? json_deep_copy(old) : json_object();
    json_decref(old);
    if (rec == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
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
    r = rec_put(br, ROLE_PREFIX, name, rec, err);
    json_decref(rec);
    return r;
}

static json_t *
stmts_list(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(rec, key);

    return json_is_string(v) ? json_pack("[O]", v) : json_array();
}

int
dbrole_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err)
{
    json_t *c = NULL;
    int r;

    *out = NULL;
    if ((r = rec_get(br, ROLE_PREFIX, name, &c, err)) != 0)
        return r;
    *out = json_pack("{s:O,s:o,s:o,s:o,s:o,s:I,s:I,s:s}", "db_name", json_object_get(c, "db_name"),
                     "creation_statements", stmts_list(c, "creation_statements"),
                     "revocation_statements", stmts_list(c, "revocation_statements"),
                     "renew_statements", stmts_list(c, "renew_statements"), "rollback_statements",
                     stmts_list(c, "rollback_statements"), "default_ttl",
                     json_integer_value(json_object_get(c, "default_ttl")), "max_ttl",
                     json_integer_value(json_object_get(c, "max_ttl")), "source", "api");
    json_decref(c);
    return *out != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

int
dbrole_delete(struct barrier *br, const char *name, struct rk_error *err)
{
    return rec_del(br, ROLE_PREFIX, name, err);
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
    if ((r = rec_get(br, ROLE_PREFIX, role, &rc, err)) != 0) {
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
        return pool_get(br, d->db, p, err);
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
    r = pool_get_inv(br, d->db, d->conninfo, pw, p, err);
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
    if (!inv && (r = rec_get(br, CONF_PREFIX, dbn, &conf, err)) != 0) {
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
    r = pgdb_login_create(p->db, d.creation, lease->username, pw, lease->expires, err);
    if (r == 0) {
        db_crash_point("db-created");
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
    pool_put(p);
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
        r = pool_get(br, l->db, p, err);
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
    r = pgdb_login_revoke(p->db, stmts, l->username, err);
    free(stmts);
    pool_put(p);
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
    r = pgdb_login_renew(p->db, stmts, l->username, expires, err);
    free(stmts);
    pool_put(p);
    return r;
}

void
db_lease_ops(struct barrier *br, struct lease_ops *ops)
{
    ops->revoke = op_revoke;
    ops->renew = op_renew;
    ops->ctx = br;
}
