/* dbroles-int.h: what the two parts of the database engine (dbroles.h) share and no other module
 * may use: dbroles.c (the records, the roles, the leased logins) and dbconf.c (the connection
 * configs, the admin pools, rotate-root). The pool itself (struct pool) stays opaque to
 * dbroles.c: it reaches the connections through db_pool_pgdb. */
#ifndef REKEY_ENGINE_DBROLES_INT_H
#define REKEY_ENGINE_DBROLES_INT_H

#include <jansson.h>

#include "engine/dbroles.h"
#include "util/err.h"
#include "util/secret.h"

#define CONF_PREFIX "dbengine/config/" /* + name: a connection config's record */
#define ROLE_PREFIX "dbengine/role/"   /* + name: an API role's record */

/* --- dbroles.c: the records --- */

/* Reads record prefix+name (prefix: CONF_PREFIX or ROLE_PREFIX) into *out (the caller's,
 * json_decref; a config's holds its admin password). Returns 0, -RK_EINVAL (name empty or longer
 * than LEASE_NAME_MAX), -RK_ENOTFOUND, -RK_ECORRUPT (not a JSON object), store errors. */
int db_rec_get(struct barrier *br, const char *prefix, const char *name, json_t **out,
               struct rk_error *err);

/* Writes j as record prefix+name. name is not checked here (callers read the record first,
 * which checks it). Returns 0, -RK_ENOMEM, store errors. */
int db_rec_put(struct barrier *br, const char *prefix, const char *name, const json_t *j,
               struct rk_error *err);

/* Deletes record prefix+name (name not checked). Returns 0 (also when absent) or a store
 * error. */
int db_rec_del(struct barrier *br, const char *prefix, const char *name, struct rk_error *err);

/* Record prefix+name to be rewritten into *out (the caller's): the stored one, or an empty
 * object when there is none. Returns 0, or db_rec_get's errors but -RK_ENOTFOUND, -RK_ENOMEM. */
int db_rec_get_or_new(struct barrier *br, const char *prefix, const char *name, json_t **out,
                      struct rk_error *err);

/* Reads record prefix+name (db_rec_get) and puts view(record) into *out (the caller's): a new
 * object, with its own references (the record is freed after). Returns 0, -RK_ENOMEM (view gave
 * NULL), db_rec_get's errors. */
int db_rec_view(struct barrier *br, const char *prefix, const char *name,
                json_t *(*view)(const json_t *rec), json_t **out, struct rk_error *err);

/* --- dbconf.c --- */

/* The string field key of a request body into *out (borrowed from body; NULL when absent or
 * null). Returns 0 or -RK_EINVAL (not a string: the message names key). */
int db_field_str(const json_t *body, const char *key, const char **out, struct rk_error *err);

/* The pool of a configuration role (name: the entry's path), opened with conninfo and pw (NULL:
 * none). A cached pool made with another conninfo or password (the entry changed, the admin
 * password rotated) is dropped and a new one opened. *out is the caller's (db_pool_put).
 * Returns 0, -RK_EINTERNAL (hash failed), -RK_ENOMEM, or pgdb_open's errors (-RK_EUNAVAILABLE,
 * -RK_EREJECTED). */
int db_pool_get_inv(struct barrier *br, const char *name, const char *conninfo,
                    const struct secret *pw, struct pool **out, struct rk_error *err);

#endif
