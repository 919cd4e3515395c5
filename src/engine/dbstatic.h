/* dbstatic.h: Vault's static database roles (database/static-roles/:name,
 * database/static-creds/:name, database/rotate-role/:name): an existing PostgreSQL login whose
 * password rekey owns and rotates every rotation_period, through the engine's steps: the intent
 * (the new password stored as pending), apply (the rotation statements, default
 * PGDB_DEFAULT_ROTATION, with a client-side SCRAM verifier), test (a fresh login with the new
 * one), promote (it becomes the role's password).
 *
 * Strategies: "single" (one login: rotated in place) and "alternating" (two logins, username and
 * alternate_username: a rotation changes the idle one and then makes it the active one, so a
 * client still holding the previous credentials keeps working until the rotation after).
 *
 * Record "dbengine/static/<name>" (barrier-encrypted): db_name, usernames [1 or 2],
 * rotation_period, rotation_statements, passwords [same length], active (index), last_rotation,
 * and while a rotation runs: pending {slot, password}. A crash anywhere leaves a working login:
 * before the apply the stored password still works; after it, the pending one does; the next
 * read or rotation tries the pending one first and promotes it when it logs in, else drops it.
 *
 * Rotation is due at last_rotation + rotation_period; a read of static-creds past it rotates
 * first (and db_static_rotate_due rotates every due role, for a timer). One rotation at a time. */
#ifndef REKEY_ENGINE_DBSTATIC_H
#define REKEY_ENGINE_DBSTATIC_H

#include <stdint.h>

#include <jansson.h>

#include "util/err.h"

struct barrier;

/* Writes static role name (db_name, username, alternate_username (alternating only),
 * rotation_strategy "single" (default) or "alternating", rotation_period (seconds or a duration,
 * >= 5 s, default 24h), rotation_statements (string or list)) and rotates its login(s) at once,
 * so rekey knows their passwords. Returns 0, -RK_EINVAL, -RK_ENOTFOUND (config), the rotation's
 * -RK_E* (the record stays; a rotate-role retries). */
int dbstatic_write(struct barrier *br, const char *name, const json_t *body, struct rk_error *err);

/* The role as Vault shows it (no password). -RK_ENOTFOUND. */
int dbstatic_read(struct barrier *br, const char *name, json_t **out, struct rk_error *err);

int dbstatic_delete(struct barrier *br, const char *name, struct rk_error *err);

/* The names of the static roles as a JSON array. */
int dbstatic_list(struct barrier *br, json_t **out, struct rk_error *err);

/* Vault's static-creds: username, password (the active login's), last_vault_rotation,
 * rotation_period, ttl. Resolves an interrupted rotation and rotates a due role first. *out is
 * the caller's and holds a password (wipe the string before json_decref: dbstatic_creds_free).
 * Returns 0, -RK_ENOTFOUND, -RK_EUNAVAILABLE, -RK_EREJECTED. */
int dbstatic_creds(struct barrier *br, const char *name, int64_t now, json_t **out,
                   struct rk_error *err);
void dbstatic_creds_free(json_t *creds);

/* Rotates static role name now (rotate-role). Returns 0 or the step's -RK_E*. */
int dbstatic_rotate(struct barrier *br, const char *name, struct rk_error *err);

/* Rotates every static role that is due at now; failures are logged. Returns how many rotated. */
int dbstatic_rotate_due(struct barrier *br, int64_t now);

#endif
