/* database.c: PostgreSQL logins for rekey (database.h): an admin connection pool per database,
 * client-side SCRAM, statement templates run in one transaction, the default revocation.
 *
 * A pool holds at most `size` connections; a caller takes one (waiting while all are busy),
 * runs its statements and gives it back. A connection that failed (CONNECTION_BAD) is dropped
 * and the operation runs once more on a new one when it had been idle in the pool, since a
 * server restart leaves every idle connection broken. Lock order: the pool's mutex only; no
 * libpq call is made while holding it. */
#include "secrets/database.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "util/log.h"

#define PGDB_POOL_MAX 64
#define PGDB_CONNECT_TIMEOUT "5"

struct pgdb {
    char *conninfo;
    struct secret *password; /* NULL: none */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PGconn *idle[PGDB_POOL_MAX];
    int nidle, nopen, size;
};

/* ---- messages that never quote a secret ---- */

static int
mentions(const char *msg, const char *s)
{
    return s != NULL && s[0] != '\0' && strstr(msg, s) != NULL;
}

/* Sets err from a failed result or connection: SQLSTATE and the primary message, unless the
 * message quotes hide1/hide2 (a password, a verifier). */
static int
pg_fail(PGconn *conn, const PGresult *res, const char *what, const char *hide1, const char *hide2,
        struct rk_error *err)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char text[240];
    size_t n;

    if (msg == NULL)
        msg = conn != NULL ? PQerrorMessage(conn) : "no connection";
    snprintf(text, sizeof(text), "%s", msg);
    n = strcspn(text, "\n");
    text[n] = '\0';
    if (mentions(text, hide1) || mentions(text, hide2))
        snprintf(text, sizeof(text), "(the server's message quotes a secret and is not shown)");
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return rk_error_set(err, RK_EUNAVAILABLE, "%s: PostgreSQL does not answer: %s", what, text);
    return rk_error_set(err, RK_EREJECTED, "%s: PostgreSQL refused it (%s): %s", what,
                        state != NULL ? state : "no SQLSTATE", text);
}

/* ---- connections ---- */

/* Connects to conninfo, overriding user and password when given. Returns the connection
 * (CONNECTION_OK) or NULL with err set: -RK_EUNAVAILABLE when nothing answers, else
 * -RK_EREJECTED (a refused login). */
static PGconn *
pg_connect(const char *conninfo, const char *user, const struct secret *password,
           struct rk_error *err)
{
    const char *keys[8], *vals[8];
    int n = 0;
    PGconn *conn;
    PGPing ping;

    keys[n] = "dbname", vals[n++] = conninfo;
    keys[n] = "connect_timeout", vals[n++] = PGDB_CONNECT_TIMEOUT;
    keys[n] = "application_name", vals[n++] = "rekey";
    /* No password from the environment or a ~/.pgpass: only the one given. */
    keys[n] = "passfile", vals[n++] = "/dev/null";
    if (user != NULL)
        keys[n] = "user", vals[n++] = user;
    if (password != NULL)
        keys[n] = "password", vals[n++] = (const char *)password->data;
    keys[n] = NULL, vals[n] = NULL;
    conn = PQconnectdbParams(keys, vals, 1);
    if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
        return conn;
    /* Nothing answered, or the server refused: ask without credentials. */
    keys[4] = NULL, vals[4] = NULL;
    ping = PQpingParams(keys, vals, 1);
    if (conn == NULL)
        rk_error_set(err, RK_ENOMEM, "out of memory");
    else if (ping == PQPING_NO_RESPONSE || ping == PQPING_NO_ATTEMPT)
        pg_fail(conn, NULL, "connecting", NULL, NULL, err);
    else {
        char text[200];
        snprintf(text, sizeof(text), "%s", PQerrorMessage(conn));
        text[strcspn(text, "\n")] = '\0';
        rk_error_set(err, RK_EREJECTED, "login refused: %s", text);
    }
    PQfinish(conn);
    return NULL;
}

int
pgdb_conninfo_check(const char *conninfo, struct rk_error *err)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    int rc = 0;

    if (opts == NULL) {
        char text[200];
        snprintf(text, sizeof(text), "%s", msg != NULL ? msg : "out of memory");
        text[strcspn(text, "\n")] = '\0';
        PQfreemem(msg);
        return rk_error_set(err, RK_ECONFIG, "connection: %s", text);
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
            rc = rk_error_set(err, RK_ECONFIG,
                              "connection: holds a password; keep the admin password a secret in "
                              "rekey (admin_password_path) and leave it out of the conninfo");
    }
    PQconninfoFree(opts);
    return rc;
}

int
pgdb_ping(const char *conninfo, struct rk_error *err)
{
    const char *keys[] = {"dbname", "connect_timeout", NULL};
    const char *vals[] = {conninfo, PGDB_CONNECT_TIMEOUT, NULL};
    PGPing p;

    if (pgdb_conninfo_check(conninfo, err) != 0)
        return -RK_ECONFIG;
    p = PQpingParams(keys, vals, 1);
    if (p == PQPING_OK || p == PQPING_REJECT)
        return 0;
    return rk_error_set(err, RK_EUNAVAILABLE, "PostgreSQL does not answer (%s)",
                        p == PQPING_NO_ATTEMPT ? "bad connection parameters" : "no response");
}

int
pgdb_open(const char *conninfo, const struct secret *password, int pool_size, struct pgdb **out,
          struct rk_error *err)
{
    struct pgdb *db;
    PGconn *conn;
    int rc;

    *out = NULL;
    if ((rc = pgdb_conninfo_check(conninfo, err)) != 0)
        return rc;
    if (pool_size < 1 || pool_size > PGDB_POOL_MAX)
        return rk_error_set(err, RK_EINVAL, "a pool has 1 to %d connections", PGDB_POOL_MAX);
    if ((db = calloc(1, sizeof(*db))) == NULL || (db->conninfo = strdup(conninfo)) == NULL ||
        (password != NULL && (db->password = secret_from(password->data, password->len)) == NULL)) {
        pgdb_close(db);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    db->size = pool_size;
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->cv, NULL);
    if ((conn = pg_connect(db->conninfo, NULL, db->password, err)) == NULL) {
        rc = -err->code;
        pgdb_close(db);
        return rc;
    }
    db->idle[db->nidle++] = conn;
    db->nopen = 1;
    *out = db;
    return 0;
}

void
pgdb_close(struct pgdb *db)
{
    if (db == NULL)
        return;
    for (int i = 0; i < db->nidle; i++)
        PQfinish(db->idle[i]);
    if (db->size > 0) {
        pthread_mutex_destroy(&db->mu);
        pthread_cond_destroy(&db->cv);
    }
    secret_free(db->password);
    free(db->conninfo);
    free(db);
}

/* Takes a connection: an idle one (*reused = 1) or a new one. NULL with err set on failure. */
static PGconn *
pool_take(struct pgdb *db, int *reused, struct rk_error *err)
{
    PGconn *conn = NULL;

    pthread_mutex_lock(&db->mu);
    while (db->nidle == 0 && db->nopen >= db->size)
        pthread_cond_wait(&db->cv, &db->mu);
    if (db->nidle > 0) {
        conn = db->idle[--db->nidle];
        *reused = 1;
    } else {
        db->nopen++;
        *reused = 0;
    }
    pthread_mutex_unlock(&db->mu);
    if (conn != NULL)
        return conn;
    if ((conn = pg_connect(db->conninfo, NULL, db->password, err)) == NULL) {
        pthread_mutex_lock(&db->mu);
        db->nopen--;
        pthread_cond_signal(&db->cv);
        pthread_mutex_unlock(&db->mu);
    }
    return conn;
}

/* Gives a connection back; a broken one (or one inside a transaction) is closed. */
static void
pool_give(struct pgdb *db, PGconn *conn)
{
    int keep = conn != NULL && PQstatus(conn) == CONNECTION_OK &&
               PQtransactionStatus(conn) == PQTRANS_IDLE;

    if (!keep)
        PQfinish(conn);
    pthread_mutex_lock(&db->mu);
    if (keep)
        db->idle[db->nidle++] = conn;
    else
        db->nopen--;
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
}

/* ---- names, passwords, times, templates ---- */

static const char lower_alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";

static size_t
name_part(const char *in, size_t max, char *out)
{
    size_t n = 0;

    for (; in != NULL && *in != '\0' && n < max; in++) {
        char ch = *in;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))
            out[n++] = ch;
        else
            out[n++] = '-';
    }
    return n;
}

int
pgdb_username(const char *display, const char *role, int64_t now, char *out, size_t len,
              struct rk_error *err)
{
    char d[9], r[9], rnd[21];
    unsigned char b[20];
    size_t nd, nr;
    int n;

    nd = name_part(display, 8, d);
    d[nd] = '\0';
    nr = name_part(role, 8, r);
    r[nr] = '\0';
    if (RAND_bytes(b, sizeof(b)) != 1)
        return rk_error_set(err, RK_EINTERNAL, "no random bytes");
    for (size_t i = 0; i < 20; i++)
        rnd[i] = lower_alnum[b[i] % 36]; /* 36 does not divide 256: a bias of < 1%, in a name */
    rnd[20] = '\0';
    n = snprintf(out, len, "v-%s%s%s-%s-%lld", d, nd > 0 ? "-" : "", r, rnd, (long long)now);
    if (n < 0 || (size_t)n >= len)
        return rk_error_set(err, RK_EINVAL, "no room for a login name");
    if ((size_t)n > PGDB_NAME_MAX)
        out[PGDB_NAME_MAX] = '\0';
    return 0;
}

int
pgdb_password(struct secret **out, struct rk_error *err)
{
    static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct secret *pw;
    unsigned char b;
    size_t at = 0;

    *out = NULL;
    if ((pw = secret_new(32)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    /* A- prefix: a letter of each case, a digit and a symbol are always present. */
    memcpy(pw->data, "A1a-", 4);
    at = 4;
    while (at < 32) {
        if (RAND_bytes(&b, 1) != 1) {
            secret_free(pw);
            return rk_error_set(err, RK_EINTERNAL, "no random bytes");
        }
        if (b >= 248) /* 248 = 4 * 62: rejection sampling keeps every character equally likely */
            continue;
        pw->data[at++] = (unsigned char)set[b % 62];
    }
    b = 0;
    *out = pw;
    return 0;
}

void
pgdb_time_format(int64_t t, char *out, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
        snprintf(out, len, "infinity");
        return;
    }
    strftime(out, len, "%Y-%m-%d %H:%M:%S+00", &tm);
}

/* The placeholder at s ("{{ name }}"): its length in *n and its name in nm (NUL-terminated).
 * Returns 1 at a placeholder, 0 otherwise. */
static int
placeholder(const char *s, size_t *n, char *nm, size_t nmlen)
{
    const char *p = s + 2, *e;
    size_t k;

    if (s[0] != '{' || s[1] != '{')
        return 0;
    while (*p == ' ')
        p++;
    e = p;
    while ((*e >= 'a' && *e <= 'z') || *e == '_')
        e++;
    k = (size_t)(e - p);
    while (*e == ' ')
        e++;
    if (e[0] != '}' || e[1] != '}' || k == 0 || k >= nmlen)
        return 0;
    memcpy(nm, p, k);
    nm[k] = '\0';
    *n = (size_t)(e + 2 - s);
    return 1;
}

int
pgdb_template_check(const char *stmts, struct rk_error *err)
{
    char nm[32];
    size_t n;

    for (const char *s = stmts; s != NULL && *s != '\0'; s++) {
        if (s[0] != '{' || s[1] != '{')
            continue;
        if (!placeholder(s, &n, nm, sizeof(nm)))
            return rk_error_set(err, RK_ECONFIG,
                                "statements: a '{{' that is not {{name}}, {{username}}, "
                                "{{password}} or {{expiration}}");
        if (strcmp(nm, "name") != 0 && strcmp(nm, "username") != 0 && strcmp(nm, "password") != 0 &&
            strcmp(nm, "expiration") != 0)
            return rk_error_set(err, RK_ECONFIG,
                                "statements: unknown placeholder {{%s}}; expected {{name}}, "
                                "{{password}} or {{expiration}}",
                                nm);
        s += n - 1;
    }
    return 0;
}

/* Expands stmts into *out (secure heap: it may hold a verifier). */
static int
expand(const char *stmts, const char *name, const char *verifier, const char *expiration,
       struct secret **out, struct rk_error *err)
{
    size_t cap = 64, at = 0, n;
    struct secret *buf;
    char nm[32];
    int rc;

    *out = NULL;
    if ((rc = pgdb_template_check(stmts, err)) != 0)
        return rc;
    for (const char *s = stmts; *s != '\0'; s++) {
        cap++;
        if (placeholder(s, &n, nm, sizeof(nm)))
            cap += 512;
    }
    if ((buf = secret_new(cap)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (const char *s = stmts; *s != '\0';) {
        const char *v = NULL;
        size_t vl;
        if (placeholder(s, &n, nm, sizeof(nm))) {
            if (strcmp(nm, "name") == 0 || strcmp(nm, "username") == 0)
                v = name;
            else if (strcmp(nm, "password") == 0)
                v = verifier;
            else
                v = expiration;
            if (v == NULL) {
                secret_free(buf);
                return rk_error_set(err, RK_ECONFIG, "statements: {{%s}} has no value here", nm);
            }
            vl = strlen(v);
            if (vl > 511 || at + vl >= cap) {
                secret_free(buf);
                return rk_error_set(err, RK_ELIMIT, "statements: a value is too long");
            }
            memcpy(buf->data + at, v, vl);
            at += vl;
            s += n;
        } else {
            buf->data[at++] = (unsigned char)*s++;
        }
    }
    buf->data[at] = '\0';
    buf->len = at;
    *out = buf;
    return 0;
}

/* ---- running statements ---- */

typedef int (*pg_job_fn)(PGconn *conn, void *arg, struct rk_error *err);

/* Runs job on a pooled connection; once more on a fresh one when a reused connection turned
 * out broken. */
static int
pool_run(struct pgdb *db, pg_job_fn job, void *arg, struct rk_error *err)
{
    int reused = 0, rc;
    PGconn *conn;

    for (int attempt = 0; attempt < 2; attempt++) {
        if ((conn = pool_take(db, &reused, err)) == NULL)
            return -err->code;
        rc = job(conn, arg, err);
        if (rc == -RK_EUNAVAILABLE && reused && PQstatus(conn) != CONNECTION_OK) {
            pool_give(db, conn);
            rk_error_clear(err);
            continue;
        }
        if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
            PGresult *res = PQexec(conn, "ROLLBACK");
            PQclear(res);
        }
        pool_give(db, conn);
        return rc;
    }
    return rc;
}

/* Runs text (one or more statements) in one transaction: one simple-query message, which the
 * server runs as a single implicit transaction (a failure rolls back what ran before it), so one
 * round trip instead of three (BEGIN, text, COMMIT). */
static int
exec_tx(PGconn *conn, const char *text, const char *what, const char *hide1, const char *hide2,
        struct rk_error *err)
{
    PGresult *res = PQexec(conn, text);
    int rc = 0;

    /* PQexec of several statements returns the last result; the first failure stops it. */
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
        PQresultStatus(res) != PGRES_EMPTY_QUERY)
        rc = pg_fail(conn, res, what, hide1, hide2, err);
    PQclear(res);
    return rc;
}

static int
role_exists(PGconn *conn, const char *name, int *exists, struct rk_error *err)
{
    const char *params[1] = {name};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", 1,
                                 NULL, params, NULL, NULL, 0);
    int rc = 0;

    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_fail(conn, res, "looking up a login", NULL, NULL, err);
    else
        *exists = PQntuples(res) > 0;
    PQclear(res);
    return rc;
}

static int
terminate_sessions(PGconn *conn, const char *name, struct rk_error *err)
{
    const char *params[1] = {name};
    PGresult *res =
        PQexecParams(conn,
                     "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity "
                     "WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()",
                     1, NULL, params, NULL, NULL, 0);
    int rc = 0;

    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_fail(conn, res, "ending the login's sessions", NULL, NULL, err);
    PQclear(res);
    return rc;
}

struct create_job {
    const char *stmts, *name;
    const struct secret *password;
    int64_t expires;
};

static int
create_job(PGconn *conn, void *arg, struct rk_error *err)
{
    struct create_job *j = arg;
    struct secret *text = NULL;
    char *verifier = NULL, *qname = NULL, exp[48];
    int rc, exists = 0;

    pgdb_time_format(j->expires, exp, sizeof(exp));
    if ((rc = role_exists(conn, j->name, &exists, err)) != 0)
        return rc;
    verifier =
        PQencryptPasswordConn(conn, (const char *)j->password->data, j->name, "scram-sha-256");
    if (verifier == NULL)
        return pg_fail(conn, NULL, "hashing the password", NULL, NULL, err);
    if (exists) {
        /* A step run twice (or a rollback to a login dropped meanwhile is recreated below). */
        char *lit = NULL;
        size_t need;
        if ((qname = PQescapeIdentifier(conn, j->name, strlen(j->name))) == NULL ||
            (lit = PQescapeLiteral(conn, verifier, strlen(verifier))) == NULL) {
            PQfreemem(qname);
            qname = NULL;
            rc = pg_fail(conn, NULL, "quoting", NULL, NULL, err);
            goto out;
        }
        need = strlen(qname) + strlen(lit) + strlen(exp) + 64;
        if ((text = secret_new(need)) == NULL) {
            OPENSSL_cleanse(lit, strlen(lit));
            PQfreemem(lit);
            rc = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        snprintf((char *)text->data, need, "ALTER ROLE %s WITH LOGIN PASSWORD %s VALID UNTIL '%s'",
                 qname, lit, exp);
        OPENSSL_cleanse(lit, strlen(lit));
        PQfreemem(lit);
    } else {
        rc = expand(j->stmts != NULL && j->stmts[0] != '\0' ? j->stmts : PGDB_DEFAULT_CREATION,
                    j->name, verifier, exp, &text, err);
        if (rc != 0)
            goto out;
    }
    rc = exec_tx(conn, (const char *)text->data, "creating the login", verifier,
                 (const char *)j->password->data, err);
out:
    secret_free(text);
    PQfreemem(qname);
    if (verifier != NULL) {
        OPENSSL_cleanse(verifier, strlen(verifier));
        PQfreemem(verifier);
    }
    return rc;
}

int
pgdb_login_create(struct pgdb *db, const char *stmts, const char *name,
                  const struct secret *password, int64_t expires, struct rk_error *err)
{
    struct create_job j = {stmts, name, password, expires};

    return pool_run(db, create_job, &j, err);
}

struct setpw_job {
    const char *stmts, *name;
    const struct secret *password;
};

static int
setpw_job(PGconn *conn, void *arg, struct rk_error *err)
{
    struct setpw_job *j = arg;
    struct secret *text = NULL;
    char *verifier;
    int rc, exists = 0;

    if ((rc = role_exists(conn, j->name, &exists, err)) != 0)
        return rc;
    if (!exists)
        return rk_error_set(err, RK_ENOTFOUND, "login %s does not exist", j->name);
    verifier =
        PQencryptPasswordConn(conn, (const char *)j->password->data, j->name, "scram-sha-256");
    if (verifier == NULL)
        return pg_fail(conn, NULL, "hashing the password", NULL, NULL, err);
    rc = expand(j->stmts != NULL && j->stmts[0] != '\0' ? j->stmts : PGDB_DEFAULT_ROTATION, j->name,
                verifier, "infinity", &text, err);
    if (rc == 0)
        rc = exec_tx(conn, (const char *)text->data, "setting the password", verifier,
                     (const char *)j->password->data, err);
    secret_free(text);
    OPENSSL_cleanse(verifier, strlen(verifier));
    PQfreemem(verifier);
    return rc;
}

int
pgdb_login_set_password(struct pgdb *db, const char *stmts, const char *name,
                        const struct secret *password, struct rk_error *err)
{
    struct setpw_job j = {stmts, name, password};

    return pool_run(db, setpw_job, &j, err);
}

struct renew_job {
    const char *stmts, *name;
    int64_t expires;
};

static int
renew_job(PGconn *conn, void *arg, struct rk_error *err)
{
    struct renew_job *j = arg;
    struct secret *text = NULL;
    char exp[48], buf[256], *qname;
    int rc, exists = 0;

    if ((rc = role_exists(conn, j->name, &exists, err)) != 0)
        return rc;
    if (!exists)
        return rk_error_set(err, RK_ENOTFOUND, "login %s does not exist", j->name);
    pgdb_time_format(j->expires, exp, sizeof(exp));
    if (j->stmts != NULL && j->stmts[0] != '\0') {
        if ((rc = expand(j->stmts, j->name, NULL, exp, &text, err)) != 0)
            return rc;
        rc = exec_tx(conn, (const char *)text->data, "renewing the login", NULL, NULL, err);
        secret_free(text);
        return rc;
    }
    if ((qname = PQescapeIdentifier(conn, j->name, strlen(j->name))) == NULL)
        return pg_fail(conn, NULL, "quoting", NULL, NULL, err);
    snprintf(buf, sizeof(buf), "ALTER ROLE %s VALID UNTIL '%s'", qname, exp);
    PQfreemem(qname);
    return exec_tx(conn, buf, "renewing the login", NULL, NULL, err);
}

int
pgdb_login_renew(struct pgdb *db, const char *stmts, const char *name, int64_t expires,
                 struct rk_error *err)
{
    struct renew_job j = {stmts, name, expires};

    return pool_run(db, renew_job, &j, err);
}

struct revoke_job {
    const char *stmts, *name;
};

static int
revoke_job(PGconn *conn, void *arg, struct rk_error *err)
{
    struct revoke_job *j = arg;
    struct secret *text = NULL;
    char buf[512], *qname = NULL;
    PGresult *res;
    int rc, exists = 0;

    if ((rc = role_exists(conn, j->name, &exists, err)) != 0 || !exists)
        return rc;
    if ((qname = PQescapeIdentifier(conn, j->name, strlen(j->name))) == NULL)
        return pg_fail(conn, NULL, "quoting", NULL, NULL, err);
    /* No new sessions, then none left: a session would keep the role in use. */
    snprintf(buf, sizeof(buf), "ALTER ROLE %s NOLOGIN", qname);
    res = PQexec(conn, buf);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = pg_fail(conn, res, "revoking the login", NULL, NULL, err);
        PQclear(res);
        goto out;
    }
    PQclear(res);
    if ((rc = terminate_sessions(conn, j->name, err)) != 0)
        goto out;
    if (j->stmts != NULL && j->stmts[0] != '\0') {
        if ((rc = expand(j->stmts, j->name, NULL, NULL, &text, err)) != 0)
            goto out;
        rc = exec_tx(conn, (const char *)text->data, "revoking the login", NULL, NULL, err);
        goto out;
    }
    /* What it owns goes to the admin (data is kept), its privileges go, then the role. */
    snprintf(buf, sizeof(buf),
             "REASSIGN OWNED BY %s TO CURRENT_USER; DROP OWNED BY %s; DROP ROLE IF EXISTS %s",
             qname, qname, qname);
    rc = exec_tx(conn, buf, "revoking the login", NULL, NULL, err);
out:
    secret_free(text);
    PQfreemem(qname);
    return rc;
}

int
pgdb_login_revoke(struct pgdb *db, const char *stmts, const char *name, struct rk_error *err)
{
    struct revoke_job j = {stmts, name};

    return pool_run(db, revoke_job, &j, err);
}

struct exists_job {
    const char *name;
    int *exists;
};

static int
exists_job(PGconn *conn, void *arg, struct rk_error *err)
{
    struct exists_job *j = arg;

    return role_exists(conn, j->name, j->exists, err);
}

int
pgdb_login_exists(struct pgdb *db, const char *name, int *exists, struct rk_error *err)
{
    struct exists_job j = {name, exists};

    *exists = 0;
    return pool_run(db, exists_job, &j, err);
}

int
pgdb_login_test(const char *conninfo, const char *name, const struct secret *password,
                struct rk_error *err)
{
    PGconn *conn = pg_connect(conninfo, name, password, err);
    PGresult *res;
    int rc = 0;

    if (conn == NULL)
        return -err->code;
    res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = pg_fail(conn, res, "testing the login", NULL, NULL, err);
    PQclear(res);
    PQfinish(conn);
    return rc;
}
