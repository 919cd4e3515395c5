/* server.c: assembles the route table from the route families (see server.h). */
#include "api/server.h"
#include "api/routes-database.h"
#include "api/routes-transit.h"

#include <stdlib.h>
#include <string.h>

/* routes-kv.c and routes-rekey.c are written separately; meson defines HAVE_ROUTES_KV /
 * HAVE_ROUTES_REKEY when they exist, so the server builds before they land. */
#ifndef HAVE_ROUTES_KV
const struct route routes_kv[] = {{0, NULL, NULL, ROUTE_PARAM_NONE}};
const size_t routes_kv_count = 0;
#endif
#ifndef HAVE_ROUTES_REKEY
const struct route routes_rekey[] = {{0, NULL, NULL, ROUTE_PARAM_NONE}};
const size_t routes_rekey_count = 0;
#endif

int
api_routes(struct route **routes, size_t *n, struct rk_error *err)
{
    const struct {
        const struct route *t;
        size_t n;
    } fam[] = {
        {routes_sys, routes_sys_count},
        {routes_token, routes_token_count},
        {routes_kv, routes_kv_count},
        {routes_rekey, routes_rekey_count},
        {routes_audit, routes_audit_count},
        {routes_metrics, routes_metrics_count},
        {routes_transit, routes_transit_count},
        {routes_jwt, routes_jwt_count},
        {routes_database, routes_database_count},
        {routes_pki, routes_pki_count},
    };
    size_t total = 0, k = 0;
    struct route *v;

    for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++)
        total += fam[i].n;
    if ((v = calloc(total, sizeof(*v))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (size_t i = 0; i < sizeof(fam) / sizeof(fam[0]); i++) {
        memcpy(v + k, fam[i].t, fam[i].n * sizeof(*v));
        k += fam[i].n;
    }
    *routes = v;
    *n = total;
    return 0;
}
