/* dbroles.h: Vault's database engine on top of secrets/database.h: connection configs
 * (database/config/:name) and roles (database/roles/:name) kept as barrier records
 * ("dbengine/config/<name>", "dbengine/role/<name>"), one admin pool per config kept open
 * between requests, and the issue of a login with a lease (database/creds/:role) through the
 * lease manager (engine/leases.h), whose revoke and renew come back here (db_lease_ops).
 * dbconf.c holds the configs (dbconf_*), their pools (db_pool_*, db_pools_close) and
 * rotate-root; dbroles.c the records, the roles (dbrole_*, db_role_*, dbengine_list) and the
 * leased logins (db_creds_issue, db_lease_ops); dbroles-int.h what the two share.
 *
 * A config's connection_url is a libpq conninfo or a postgresql:// URL, with Vault's
 * {{username}} and {{password}} placeholders: {{username}} becomes `username`, the password
 * placeholder is taken out (the admin password is given to libpq as its own parameter, never in
 * the text). The password is stored in the record (the barrier encrypts it) and never read back
 * by dbconf_read. */
#ifndef REKEY_SECRETS_DBROLES_H
#define REKEY_SECRETS_DBROLES_H

#include <stdint.h>

#include <jansson.h>

#include "engine/leases.h"
#include "util/err.h"
#include "util/secret.h"

struct barrier;
struct inv_secret;
struct kv;

/* A role defined by the configuration: a `kind: database` entry (with or without `every`) whose
 * `role` names it. It wins over an API role of the same name. Its logins' leases name the
 * entry's path as their database (db), which an API config name (no '/') never is. */
struct db_role_def {
    char db[LEASE_NAME_MAX + 1];         /* the entry's path: the pool's and the lease's db */
    char *conninfo;                      /* `connection` (no password) */
    char *creation, *revocation, *renew; /* statements, NULL: the defaults */
    char *pw_path, *pw_field;            /* admin_password_path (NULL: none) and its field */
    int64_t ttl, max_ttl;
};

/* Fills *out from entry s (strings copied; db_role_def_clear frees them). Returns 0,
 * -RK_EINVAL (path too long), -RK_ENOMEM. */
int db_role_from_entry(const struct inv_secret *s, struct db_role_def *out, struct rk_error *err);
void db_role_def_clear(struct db_role_def *d);

/* Finds the configuration's role named role into *out (db_role_from_entry). Returns 0 or
 * -RK_ENOTFOUND (no such entry), another -RK_E* on failure. */
typedef int (*db_role_lookup_fn)(void *arg, const char *role, struct db_role_def *out,
                                 struct rk_error *err);

/* Sets where roles of the configuration come from (fn NULL: nowhere) and the KV store their
 * admin passwords are read from. Issue, renew, revoke and db_role_default_ttl ask it first. */
void db_role_source_set(db_role_lookup_fn fn, void *arg, struct kv *kv);

/* Writes config name from a request body (Vault's fields: plugin_name, connection_url,
 * username, password, allowed_roles (list or comma-joined), password_authentication
 * ("scram-sha-256" only), verify_connection (default true: the pool must connect)). Fields not
 * given keep their stored value (the password too). Returns 0, -RK_EINVAL (bad field: message
 * names it), -RK_EUNAVAILABLE / -RK_EREJECTED (verify failed), store errors. */
int dbconf_write(struct barrier *br, const char *name, const json_t *body, struct rk_error *err);

/* The config as Vault shows it, without the password: *out is the caller's. -RK_ENOTFOUND. */
int dbconf_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err);

/* Deletes config name (0 also when absent) and closes its pool. */
int dbconf_delete(struct barrier *br, const char *name, struct rk_error *err);

/* Writes role name (db_name, creation_statements, revocation_statements, renew_statements,
 * rollback_statements: a string or a list of strings; default_ttl (or ttl), max_ttl: seconds or
 * a duration). Templates are checked (pgdb_template_check). Returns 0, -RK_EINVAL, store
 * errors. */
int dbrole_write(struct barrier *br, const char *name, const json_t *body, struct rk_error *err);

/* The role as Vault shows it (statements as lists, TTLs in seconds). -RK_ENOTFOUND. */
int dbrole_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err);

int dbrole_delete(struct barrier *br, const char *name, struct rk_error *err);

/* The names of configs (which 0) or roles (which 1) as a JSON array into *out. */
int dbengine_list(struct barrier *br, int which, json_t **out, struct rk_error *err);

/* Issues a login for role (the configuration's role of that name if there is one, its admin
 * password read from the KV store, else the API's): a record in m first, then the login (creation
 * statements in one transaction). display: the token's display name (in the login name). The
 * lease's duration is the role's default_ttl (0: sys_max), capped at its max_ttl and sys_max (<= 0:
 * LEASE_SYS_MAX_TTL). *lease gets the lease, *password the password (secret_free). A creation
 * the server refused leaves neither login nor record; one whose outcome is unknown (the server
 * went away) is revoked at once, or, failing that, keeps its record so the expiry retries the
 * drop. Returns 0, -RK_ENOTFOUND (no role / config), -RK_EPERM (role not in allowed_roles),
 * -RK_EUNAVAILABLE, -RK_EREJECTED, store errors. */
int db_creds_issue(struct barrier *br, struct leases *m, const char *role, const char *display,
                   const char *accessor, int64_t sys_max, struct lease_info *lease,
                   struct secret **password, struct rk_error *err);

/* The role's default TTL in seconds (the configuration's role first; 0 when none or gone). */
int64_t db_role_default_ttl(struct barrier *br, const char *role);

/* The lease manager's operations for database leases (ctx = the barrier). */
void db_lease_ops(struct barrier *br, struct lease_ops *ops);

/* rotate-root: a new admin password for config name, through the engine's steps: the intent
 * (the new one stored as "pending_password" beside the old), apply (ALTER ROLE through the pool,
 * logged in with the old), test (a fresh login with the new), promote (the new one becomes the
 * password, the pool reopens). A test that fails puts the old one back. A crash after the apply
 * leaves the old one refused and the pending one working: the next pool open tries the pending
 * one and completes the rotation, so rekey never locks itself out. Returns 0, -RK_ENOTFOUND,
 * -RK_EINVAL (no username), -RK_EUNAVAILABLE, -RK_EREJECTED, store errors. */
int dbconf_rotate_root(struct barrier *br, const char *name, struct rk_error *err);

/* The libpq conninfo of config name (no password) into *out (free). -RK_ENOTFOUND. */
int dbconf_conninfo(struct barrier *br, const char *name, char **out, struct rk_error *err);

/* The cached admin pool of API config name (db_pool_put when done); db_pool_pgdb its
 * connections. Returns 0, -RK_ENOTFOUND, -RK_EUNAVAILABLE, -RK_EREJECTED. */
struct pool;
int db_pool_get(struct barrier *br, const char *name, struct pool **out, struct rk_error *err);
struct pgdb *db_pool_pgdb(struct pool *p);
void db_pool_put(struct pool *p);

/* Closes every cached pool (at seal). */
void db_pools_close(void);

#endif
