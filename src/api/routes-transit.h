/* routes-transit.h: the transit route families (routes-transit.c: Vault's transit API;
 * routes-jwt.c: rekey/jwt, rekey/jwks and /.well-known/jwks.json), and the transit engine of
 * the app's store that both use. */
#ifndef REKEY_API_ROUTES_TRANSIT_H
#define REKEY_API_ROUTES_TRANSIT_H

#include <stddef.h>

#include "api/router.h"

struct api_app;
struct transit;

extern const struct route routes_transit[];
extern const size_t routes_transit_count;
extern const struct route routes_jwt[];
extern const size_t routes_jwt_count;

/* The transit engine of app's store (secrets/transit.h), kept open for the process so its cache
 * lives across requests: a new reference (transit_close it), or NULL when out of memory. */
struct transit *api_transit(struct api_app *app);

#endif
