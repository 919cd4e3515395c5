/* routes-database.h: the lease manager of the server (routes-database.c), started when the
 * store is unsealed and stopped when it is sealed (cli/cmd-server.c's hooks). */
#ifndef REKEY_API_ROUTES_DATABASE_H
#define REKEY_API_ROUTES_DATABASE_H

#include <stddef.h>

#include "api/router.h"

struct api_app;

/* database/..., sys/leases/... (routes-database.c) */
extern const struct route routes_database[];
extern const size_t routes_database_count;

/* Opens the lease manager on app->br and starts its expiry thread (which loads the records).
 * Called from on_unseal (the app's write lock is held: takes no app lock). Idempotent. */
void api_leases_start(struct api_app *app);

/* Stops the expiry thread, frees the manager and closes the database pools (on_seal, without
 * the app's lock). Idempotent. */
void api_leases_stop(void);

#endif
