/* database.h: PostgreSQL logins made and dropped for rekey: the `database` rotator (a held
 * lease, rotators/database.c) and the Vault-shaped database engine (database/creds/:role) both
 * come here. One admin connection pool per database (struct pgdb); the admin password is given
 * as a secret and passed to libpq as its own parameter, never inside the conninfo text.
 *
 * Passwords never reach the server: a login's password is hashed on the client
 * (PQencryptPasswordConn, SCRAM-SHA-256) and the statements get the verifier as {{password}}.
 * Statements are templates with {{name}}, {{password}} (the verifier), {{expiration}}
 * ('YYYY-MM-DD HH:MM:SS+00'); a template's statements run in one transaction, so a creation
 * that fails halfway leaves nothing behind. Utility statements take no bind parameters: names
 * are made by pgdb_username from [a-z0-9-] only, and the default statements quote them with
 * PQescapeIdentifier.
 *
 * Outcomes: 0; -RK_EUNAVAILABLE (no answer: refused connection, timeout, the server went away);
 * -RK_EREJECTED (the server answered no: a refused login, an SQL error); -RK_EINVAL / -RK_ECONFIG
 * (bad conninfo or template); -RK_ENOMEM. Messages carry the SQLSTATE and the server's primary
 * message, never a password or a verifier (a message that would quote one is dropped). */
#ifndef REKEY_SECRETS_DATABASE_H
#define REKEY_SECRETS_DATABASE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/secret.h"

#define PGDB_NAME_MAX 63 /* bytes of a PostgreSQL identifier (NAMEDATALEN - 1) */

/* Used when a role names no creation statements. */
#define PGDB_DEFAULT_CREATION                                                                      \
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"

/* Used when a static role names no rotation statements. */
#define PGDB_DEFAULT_ROTATION "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';"

struct pgdb;

/* Checks a libpq conninfo for an admin connection: it parses (PQconninfoParse) and holds no
 * password (the admin password is a secret in rekey). Returns 0 or -RK_ECONFIG. */
int pgdb_conninfo_check(const char *conninfo, struct rk_error *err);

/* Checks a statement template: only {{name}}, {{username}}, {{password}}, {{expiration}}
 * (spaces inside the braces allowed). Returns 0 or -RK_ECONFIG naming the placeholder. */
int pgdb_template_check(const char *stmts, struct rk_error *err);

/* Opens a pool of at most pool_size (1..64) admin connections to conninfo with password (copied;
 * may be NULL for a conninfo that needs none). Connects once, so a server that does not answer
 * is -RK_EUNAVAILABLE here. *out is the caller's (pgdb_close). */
int pgdb_open(const char *conninfo, const struct secret *password, int pool_size, struct pgdb **out,
              struct rk_error *err);

/* Closes every connection and wipes the password. Accepts NULL. */
void pgdb_close(struct pgdb *db);

/* Whether a server answers at conninfo at all (PQpingParams; needs no password): 0, or
 * -RK_EUNAVAILABLE, or -RK_ECONFIG for a conninfo that does not parse. */
int pgdb_ping(const char *conninfo, struct rk_error *err);

/* A new login name in Vault's default shape, v-<display ≤8>-<role ≤8>-<20 random>-<unix time>,
 * lower case, [a-z0-9-], at most PGDB_NAME_MAX bytes, into out[0..len). Returns 0 or
 * -RK_EINVAL (len too small). */
int pgdb_username(const char *display, const char *role, int64_t now, char *out, size_t len,
                  struct rk_error *err);

/* A new random password: 32 characters of [A-Za-z0-9] with at least one of each class, and a
 * "-" (some policies want a symbol). *out is the caller's (secret_free). */
int pgdb_password(struct secret **out, struct rk_error *err);

/* Creates login name with password (hashed here) valid until expires (unix seconds; 0 =
 * 'infinity') by running stmts (NULL or "": PGDB_DEFAULT_CREATION) in one transaction. A login
 * that already exists (a step run twice) gets the password and expiry set instead. Returns 0,
 * -RK_EUNAVAILABLE, -RK_EREJECTED, -RK_ECONFIG, -RK_ENOMEM. */
int pgdb_login_create(struct pgdb *db, const char *stmts, const char *name,
                      const struct secret *password, int64_t expires, struct rk_error *err);

/* Sets the password of the existing login name (a static role, the admin's own): stmts (NULL:
 * PGDB_DEFAULT_ROTATION) with the client-side SCRAM verifier as {{password}}, in one
 * transaction. Returns 0, -RK_ENOTFOUND (no such login), -RK_EUNAVAILABLE, -RK_EREJECTED,
 * -RK_ECONFIG, -RK_ENOMEM. */
int pgdb_login_set_password(struct pgdb *db, const char *stmts, const char *name,
                            const struct secret *password, struct rk_error *err);

/* Moves the expiry of login name to expires: stmts (renew statements; NULL: ALTER ROLE … VALID
 * UNTIL). Returns as pgdb_login_create; a login that does not exist is -RK_ENOTFOUND. */
int pgdb_login_renew(struct pgdb *db, const char *stmts, const char *name, int64_t expires,
                     struct rk_error *err);

/* Drops login name. stmts NULL or "": the default revocation: NOLOGIN, terminate its sessions,
 * REASSIGN OWNED BY it TO the admin, DROP OWNED BY it (its grants), DROP ROLE — in the pool's
 * database (objects it owns in other databases need statements of your own). Otherwise stmts
 * run in one transaction after its sessions are terminated. A login that does not exist is
 * done already (0). Returns 0, -RK_EUNAVAILABLE, -RK_EREJECTED, -RK_ENOMEM. */
int pgdb_login_revoke(struct pgdb *db, const char *stmts, const char *name, struct rk_error *err);

/* *exists = 1 when role name exists. Returns 0, -RK_EUNAVAILABLE, -RK_EREJECTED. */
int pgdb_login_exists(struct pgdb *db, const char *name, int *exists, struct rk_error *err);

/* Proves a login works: a fresh connection to conninfo (an admin conninfo: its user is
 * replaced) as name with password, then SELECT 1. Needs no pool, so no admin password. Returns
 * 0, -RK_EREJECTED (the server refused the login), -RK_EUNAVAILABLE. */
int pgdb_login_test(const char *conninfo, const char *name, const struct secret *password,
                    struct rk_error *err);

/* The server's own text of a unix time, 'YYYY-MM-DD HH:MM:SS+00', or "infinity" for 0. */
void pgdb_time_format(int64_t t, char *out, size_t len);

#endif
