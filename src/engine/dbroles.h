/* dbroles.h: Vault's database engine on top of secrets/database.h: connection configs
 * (database/config/:name) and roles (database/roles/:name) kept as barrier records
 * ("dbengine/config/<name>", "dbengine/role/<name>"), one admin pool per config kept open
 * between requests, and the issue of a login with a lease (database/creds/:role) through the
 * lease manager (engine/leases.h), whose revoke and renew come back here (db_lease_ops).
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

/* Issues a login for role: a record in m first, then the login (creation statements in one
 * transaction). display: the token's display name (in the login name). The lease's duration
 * is the role's default_ttl (0: sys_max), capped at its max_ttl and sys_max (<= 0:
 * LEASE_SYS_MAX_TTL). *lease gets the lease, *password the password (secret_free). A creation
 * the server refused leaves neither login nor record; one whose outcome is unknown (the server
 * went away) is revoked at once, or, failing that, keeps its record so the expiry retries the
 * drop. Returns 0, -RK_ENOTFOUND (no role / config), -RK_EPERM (role not in allowed_roles),
 * -RK_EUNAVAILABLE, -RK_EREJECTED, store errors. */
int db_creds_issue(struct barrier *br, struct leases *m, const char *role, const char *display,
                   const char *accessor, int64_t sys_max, struct lease_info *lease,
                   struct secret **password, struct rk_error *err);

/* The role's default TTL in seconds (0 when none or the role is gone). */
int64_t db_role_default_ttl(struct barrier *br, const char *role);

/* The lease manager's operations for database leases (ctx = the barrier). */
void db_lease_ops(struct barrier *br, struct lease_ops *ops);

/* Closes every cached pool (at seal). */
void db_pools_close(void);

#endif
