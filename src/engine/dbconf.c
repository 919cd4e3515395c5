/* dbconf.c: the database engine's connection configs (database/config/:name): their records
 * (connection_url made into a conninfo without password), one admin pool per config kept open
 * between requests (and one per configuration role, keyed by its entry's path), and
 * rotate-root of a config's admin password (dbroles.h). Roles and leased logins are in
 * dbroles.c; what the two share is in dbroles-int.h. */
#include "engine/dbroles.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "engine/dbroles-int.h"
#include "secrets/database.h"
#include "util/log.h"
#include "util/testsw.h"

#define POOL_SIZE 4

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

void
db_pool_put(struct pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&pools_mu);
    pool_unref_locked(p);
    pthread_mutex_unlock(&pools_mu);
}

struct pgdb *
db_pool_pgdb(struct pool *p)
{
    return p->db;
}

/* Puts new pool p (its db open) in the cache as name's, held by the cache and the caller. */
static void
pool_insert(struct pool *p, struct barrier *br, const char *name)
{
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->br = br;
    p->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&pools_mu);
    p->next = pools;
    pools = p;
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
    if ((r = db_rec_put(br, CONF_PREFIX, name, c, err)) != 0) {
        pgdb_close(*db);
        *db = NULL;
        return r;
    }
    log_info("database: config %s: the interrupted rotate-root is completed (the new admin "
             "password logs in)",
             name);
    return 0;
}

int
db_pool_get(struct barrier *br, const char *name, struct pool **out, struct rk_error *err)
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
    if ((r = db_rec_get(br, CONF_PREFIX, name, &c, err)) != 0) {
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
    pool_insert(p, br, name);
    *out = p;
    return 0;
}

int
db_pool_get_inv(struct barrier *br, const char *name, const char *conninfo, const struct secret *pw,
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
    memcpy(p->fp, fp, sizeof(fp));
    pool_insert(p, br, name);
    *out = p;
    return 0;
}

/* ---- configs ---- */

int
db_field_str(const json_t *body, const char *key, const char **out, struct rk_error *err)
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
    json_t *rec = NULL, *roles = NULL, *v;
    char *conninfo = NULL;
    int r, verify = 1;

    if ((r = db_field_str(body, "plugin_name", &plugin, err)) != 0 ||
        (r = db_field_str(body, "connection_url", &url, err)) != 0 ||
        (r = db_field_str(body, "username", &user, err)) != 0 ||
        (r = db_field_str(body, "password", &pw, err)) != 0 ||
        (r = db_field_str(body, "password_authentication", &auth, err)) != 0)
        return r;
    if ((v = json_object_get(body, "verify_connection")) != NULL)
        verify = !(json_is_false(v) ||
                   (json_is_string(v) && strcmp(json_string_value(v), "false") == 0));
    if ((r = db_rec_get_or_new(br, CONF_PREFIX, name, &rec, err)) != 0)
        return r;
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
    if ((r = db_rec_put(br, CONF_PREFIX, name, rec, err)) == 0)
        pool_drop(name);
out:
    free(conninfo);
    json_decref(rec);
    return r;
}

/* The config as dbconf_read shows it (Vault's fields; never the password). */
static json_t *
conf_view(const json_t *c)
{
    return json_pack("{s:O,s:{s:O,s:O,s:O},s:O,s:s,s:b,s:[]}", "plugin_name",
                     json_object_get(c, "plugin_name"), "connection_details", "connection_url",
                     json_object_get(c, "connection_url"), "username",
                     json_object_get(c, "username") ? json_object_get(c, "username") : json_null(),
                     "password_authentication", json_object_get(c, "password_authentication"),
                     "allowed_roles", json_object_get(c, "allowed_roles"), "plugin_version", "",
                     "verify_connection", 1, "root_credentials_rotate_statements");
}

int
dbconf_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err)
{
    return db_rec_view(br, CONF_PREFIX, name, conf_view, out, err);
}

int
dbconf_delete(struct barrier *br, const char *name, struct rk_error *err)
{
    int r = db_rec_del(br, CONF_PREFIX, name, err);

    pool_drop(name);
    return r;
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
    if ((r = db_pool_get(br, name, &p, err)) != 0)
        goto out;
    if ((r = db_rec_get(br, CONF_PREFIX, name, &c, err)) != 0)
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
    if ((r = db_rec_put(br, CONF_PREFIX, name, c, err)) != 0)
        goto out;
    test_crash_at("root-intent");
    /* 2. apply: through the pool, still logged in with the old one. */
    if ((r = pgdb_login_set_password(p->db, NULL, user, pw, err)) != 0) {
        rk_error_prefix(err, "rotate-root of %s (the old password stays)", name);
        goto undo;
    }
    test_crash_at("root-applied");
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
    if ((r = db_rec_put(br, CONF_PREFIX, name, c, err)) != 0)
        goto out; /* the pending record completes it at the next pool open */
    pool_drop(name);
    log_info("database: config %s: the admin password is rotated", name);
    goto out;
undo:
    json_object_del(c, "pending_password");
    {
        struct rk_error e2 = {0};
        (void)db_rec_put(br, CONF_PREFIX, name, c, &e2);
    }
out:
    db_pool_put(p);
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
dbconf_conninfo(struct barrier *br, const char *name, char **out, struct rk_error *err)
{
    json_t *c = NULL;
    int r;

    *out = NULL;
    if ((r = db_rec_get(br, CONF_PREFIX, name, &c, err)) != 0)
        return r;
    if (!json_is_string(json_object_get(c, "conninfo")))
        r = rk_error_set(err, RK_ECORRUPT, "config %s has no conninfo", name);
    else if ((*out = strdup(json_string_value(json_object_get(c, "conninfo")))) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    json_decref(c);
    return r;
}
