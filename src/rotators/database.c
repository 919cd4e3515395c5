/* database.c: kind "database": PostgreSQL logins (secrets/database.h). An entry is used one of
 * two ways:
 *   role template (no `every`): defines a role; each database/creds/ROLE read through the API
 *       issues a new login with its own lease (secrets/database.c, api/routes-database.c). The
 *       entry is never scheduled (ROT_F_ON_DEMAND) and `rekey rotate` refuses it.
 *   held lease (`every` < `ttl`): rekey holds one login for a consumer that reads it from a file
 *       (hooks render {{new.username}} and {{new.password}}) and replaces it before it expires:
 *   create   a new name (v-<display>-<role>-<random>-<time>), a random password and the expiry
 *            now + ttl (internal field `expires_at`), stored as pending before PostgreSQL is
 *            touched, so a crash never leaves a login rekey does not know about
 *   apply    the login: creation_statements in one transaction, the password hashed here
 *            (SCRAM), so neither it nor the statement text holds the plaintext; a step run twice
 *            sets the password of the login it made the first time
 *   test     a fresh connection as the new login, SELECT 1
 *   unapply  (a refused candidate) and retire (the previous login, after `grace`): the
 *            revocation (default: NOLOGIN, end its sessions, REASSIGN OWNED, DROP OWNED, DROP
 *            ROLE; secrets/database.h)
 *   status   due at expires_at - (ttl - every) (= made + every), expires at expires_at
 * rekey connects with `connection` (libpq conninfo, without a password) and the admin password
 * read from the secret `admin_password_path` (field `admin_password_field`, default password)
 * through the narrow reader, only once the server answers: a PostgreSQL that is down reads as
 * down (-RK_EUNAVAILABLE: the candidate waits), not as a refused value. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotators/rotator.h"
#include "secrets/database.h"
#include "util/parse.h"
#include "util/timeutil.h"

static const struct inv_setting database_settings[] = {
    {.name = "connection",
     .type = IS_STRING,
     .flags = IS_REQUIRED,
     .help = "a libpq connection string for the admin role, without a password"},
    {.name = "role",
     .type = IS_STRING,
     .help = "the role's name (default: the path's last segment)"},
    {.name = "ttl", .type = IS_DURATION, .def = "1h", .help = "how long a lease lasts"},
    {.name = "max_ttl",
     .type = IS_DURATION,
     .def = "24h",
     .help = "the longest a lease is renewed"},
    {.name = "creation_statements",
     .type = IS_STRING,
     .help = "SQL run to create a login ({{name}}, {{password}}, {{expiration}})"},
    {.name = "revocation_statements",
     .type = IS_STRING,
     .help = "SQL run to drop a login (default: end its sessions, reassign and drop what it "
             "owns, drop it)"},
    {.name = "renew_statements",
     .type = IS_STRING,
     .help = "SQL run to move a login's expiry ({{name}}, {{expiration}})"},
    {.name = "admin_password_path",
     .type = IS_SECRET_PATH,
     .help = "the secret holding the admin role's password"},
    {.name = "admin_password_field", .type = IS_STRING, .def = "password", .help = "its field"},
    {0},
};

static unsigned
database_flags(const struct inv_secret *s)
{
    return s->every > 0 ? 0 : ROT_F_ON_DEMAND;
}

static int
database_defaults(struct inv_secret *s, struct rk_error *err)
{
    const char *slash;

    if (inv_param(s, "role") != NULL)
        return 0;
    slash = strrchr(s->path, '/');
    if (inv_param_set(s, "role", slash != NULL ? slash + 1 : s->path) != 0)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

static int
database_check(const struct inv_secret *s, struct rk_error *err)
{
    static const char *const stmts[] = {"creation_statements", "revocation_statements",
                                        "renew_statements"};
    const char *conn = inv_param(s, "connection");
    int rc;

    if (conn != NULL && (rc = pgdb_conninfo_check(conn, err)) != 0)
        return rc;
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        const char *t = inv_param(s, stmts[i]);
        if (t != NULL && (rc = pgdb_template_check(t, err)) != 0)
            return rk_error_prefix(err, "%s", stmts[i]);
    }
    return 0;
}

static void
database_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
              void *arg)
{
    int64_t ttl = 0, max_ttl = 0;
    char a[32], b[32];

    inv_param_duration(s, "ttl", 0, &ttl);
    inv_param_duration(s, "max_ttl", 0, &max_ttl);
    duration_format(ttl, b, sizeof(b));
    if (ttl > 0 && max_ttl > 0 && max_ttl < ttl) {
        duration_format(max_ttl, a, sizeof(a));
        report(arg, "error", "max_ttl %s is shorter than ttl %s", a, b);
    }
    /* A held lease is replaced every `every`: at or past its ttl the login would be dead
     * before the next one exists. */
    if (s->every > 0 && ttl > 0 && s->every >= ttl) {
        duration_format(s->every, a, sizeof(a));
        report(arg, "error",
               "every %s is not shorter than ttl %s: the held login would expire before it is "
               "replaced (use every < ttl, or no every for a role template)",
               a, b);
    }
    /* A lease is renewed by the scheduler, which wakes every check_interval: a lease shorter
     * than two intervals can lapse between two checks. */
    if (ttl > 0 && inv != NULL && inv->check_interval > 0 && ttl / 2 < inv->check_interval) {
        duration_format(inv->check_interval, a, sizeof(a));
        report(arg, "warning",
               "lease ttl %s is shorter than twice the check interval %s; leases may expire "
               "before they are renewed",
               b, a);
    }
    if (inv_param(s, "admin_password_path") == NULL)
        report(arg, "warning",
               "no admin_password_path: rekey connects as the admin role without a password "
               "(peer or trust authentication only)");
}

/* ---- the held lease ---- */

/* Opens the admin pool (once per rotation, kept in c->priv). */
static int
db_admin(struct rot_ctx *c, struct pgdb **out, struct rk_error *err)
{
    const struct inv_secret *s = c->secret;
    const char *conn = inv_param(s, "connection"), *pwpath = inv_param(s, "admin_password_path");
    const char *pwfield = inv_param(s, "admin_password_field");
    struct secret *pw = NULL;
    int rc;

    if (c->priv != NULL) {
        *out = c->priv;
        return 0;
    }
    if (conn == NULL)
        return rk_error_set(err, RK_ECONFIG, "%s: no connection", s->path);
    /* Down reads as down before any secret is read. */
    if ((rc = pgdb_ping(conn, err)) != 0)
        return rk_error_prefix(err, "%s", s->path);
    if (pwpath != NULL &&
        (rc = c->read_secret(c->read_arg, pwpath, pwfield != NULL ? pwfield : "password", &pw,
                             err)) != 0)
        return rc;
    rc = pgdb_open(conn, pw, 1, out, err);
    secret_free(pw);
    if (rc != 0)
        return rk_error_prefix(err, "%s: the admin connection", s->path);
    c->priv = *out;
    return 0;
}

static void
database_cleanup(struct rot_ctx *c)
{
    pgdb_close(c->priv);
    c->priv = NULL;
}

/* The login of a version: its name, password and expiry. Returns 0 or -RK_ENOTFOUND. */
static int
login_of(const struct rot_fields *f, const char **name, const struct secret **pw, int64_t *expires)
{
    const struct secret *u, *e;

    if (f == NULL || (u = rot_fields_get(f, "username")) == NULL)
        return -RK_ENOTFOUND;
    *name = (const char *)u->data;
    if (pw != NULL && (*pw = rot_fields_get(f, "password")) == NULL)
        return -RK_ENOTFOUND;
    if (expires != NULL) {
        *expires = 0;
        if ((e = rot_fields_get(f, "expires_at")) != NULL &&
            parse_int64((const char *)e->data, 0, INT64_MAX, expires) != 0)
            *expires = 0;
    }
    return 0;
}

static int
database_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    const struct inv_secret *s = c->secret;
    char name[PGDB_NAME_MAX + 1], exp[24];
    struct secret *pw = NULL;
    int64_t ttl = 0, now = time_now();
    int rc;

    if (s->every <= 0)
        return rk_error_set(err, RK_ECONFIG,
                            "a role template (no every): issue logins with database/creds/%s, "
                            "or give it an every to hold one",
                            inv_param(s, "role") ? inv_param(s, "role") : "ROLE");
    inv_param_duration(s, "ttl", 3600, &ttl);
    if ((rc = pgdb_username("rekey", inv_param(s, "role"), now, name, sizeof(name), err)) != 0 ||
        (rc = pgdb_password(&pw, err)) != 0)
        return rc;
    snprintf(exp, sizeof(exp), "%lld", (long long)(now + ttl));
    if ((rc = rot_fields_put(out, "username", name, strlen(name), 0, err)) != 0 ||
        (rc = rot_fields_set(out, "password", pw, 0, err)) != 0 ||
        (rc = rot_fields_put(out, "expires_at", exp, strlen(exp), ROT_FIELD_INTERNAL, err)) != 0)
        return rc;
    return 0;
}

static int
database_apply(struct rot_ctx *c, struct rk_error *err)
{
    const char *name;
    const struct secret *pw;
    int64_t expires;
    struct pgdb *db;
    int rc;

    if (login_of(c->new_fields, &name, &pw, &expires) != 0)
        return rk_error_set(err, RK_EINTERNAL, "%s: the candidate has no login", c->secret->path);
    if ((rc = db_admin(c, &db, err)) != 0)
        return rc;
    if ((rc = pgdb_login_create(db, inv_param(c->secret, "creation_statements"), name, pw, expires,
                                err)) != 0)
        return rk_error_prefix(err, "%s: login %s", c->secret->path, name);
    return 0;
}

static int
revoke_login(struct rot_ctx *c, const struct rot_fields *f, struct rk_error *err)
{
    const char *name;
    struct pgdb *db;
    int rc;

    if (login_of(f, &name, NULL, NULL) != 0)
        return 0; /* nothing was made */
    if ((rc = db_admin(c, &db, err)) != 0)
        return rc;
    if ((rc = pgdb_login_revoke(db, inv_param(c->secret, "revocation_statements"), name, err)) != 0)
        return rk_error_prefix(err, "%s: revoking login %s", c->secret->path, name);
    return 0;
}

static int
database_unapply(struct rot_ctx *c, struct rk_error *err)
{
    return revoke_login(c, c->new_fields, err);
}

static int
database_retire(struct rot_ctx *c, struct rk_error *err)
{
    const char *oldname, *newname;

    /* A rollback made the previous login current again: it stays. */
    if (login_of(c->old_fields, &oldname, NULL, NULL) == 0 &&
        login_of(c->new_fields, &newname, NULL, NULL) == 0 && strcmp(oldname, newname) == 0)
        return 0;
    return revoke_login(c, c->old_fields, err);
}

static int
database_test(struct rot_ctx *c, struct rk_error *err)
{
    const char *name;
    const struct secret *pw;
    int rc;

    if (login_of(c->new_fields, &name, &pw, NULL) != 0)
        return rk_error_set(err, RK_EINTERNAL, "%s: the candidate has no login", c->secret->path);
    if ((rc = pgdb_login_test(inv_param(c->secret, "connection"), name, pw, err)) != 0)
        return rk_error_prefix(err, "%s: login %s", c->secret->path, name);
    return 0;
}

static int
database_status(const struct inv_secret *s, const struct rot_status_in *in, struct rot_due *out,
                struct rk_error *err)
{
    struct secret *v = NULL, *u = NULL;
    int64_t ttl = 0, expires = 0;
    char when[40];
    int rc;

    if (s->every <= 0) {
        snprintf(out->detail, sizeof(out->detail), "role template: logins on request");
        return 0;
    }
    if (in->version == 0)
        return 0;
    if ((rc = in->read_current(in->read_arg, "expires_at", &v, err)) != 0)
        return rc == -RK_ENOTFOUND ? (rk_error_clear(err), 0) : rc;
    if (parse_int64((const char *)v->data, 1, INT64_MAX, &expires) != 0) {
        secret_free(v);
        return 0;
    }
    secret_free(v);
    inv_param_duration(s, "ttl", 3600, &ttl);
    out->expires_at = expires;
    out->next_due = expires - (ttl - s->every);
    out->overdue_at = expires;
    out->period = s->every;
    time_format_rfc3339(expires * 1000000, when, sizeof(when));
    if (in->read_current(in->read_arg, "username", &u, err) == 0)
        snprintf(out->detail, sizeof(out->detail), "login %.63s expires %s", (const char *)u->data,
                 when);
    else
        snprintf(out->detail, sizeof(out->detail), "login expires %s", when);
    rk_error_clear(err);
    secret_free(u);
    return 0;
}

/* Every entry of this kind defines a database role: a template (no every) or a static role. */
static const char *
database_role(const struct inv_secret *s, const char *engine)
{
    return strcmp(engine, "database") == 0 ? inv_param(s, "role") : NULL;
}

const struct rotator_ops rotator_database = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "database",
    .flags_for = database_flags,
    .check = database_check,
    .create = database_create,
    .apply = database_apply,
    .unapply = database_unapply,
    .test = database_test,
    .retire = database_retire,
    .cleanup = database_cleanup,
    .status = database_status,
    .settings = database_settings,
    .default_field = "password",
    .fixed_field = 1,
    .defaults = database_defaults,
    .lint = database_lint,
    .role = database_role,
};
