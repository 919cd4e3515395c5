/* server.h: the route table of `rekey server`, assembled from every routes-*.c file.
 *
 * Each route family exports one table and its length (const data, no constructor):
 *   routes-sys.c    routes_sys[]    sys/health, seal-status, init, unseal, seal, mounts,
 *                                   internal/ui/mounts, policies, capabilities-self
 *   routes-token.c  routes_token[]  auth/token/...
 *   routes-kv.c     routes_kv[]     secret/data, metadata, ... (when built)
 *   routes-rekey.c  routes_rekey[]  rekey/... (when built)
 *   routes-audit.c  routes_audit[]  sys/audit, sys/audit/<path>, sys/audit-hash/<path>
 *   routes-metrics.c routes_metrics[] sys/metrics (Prometheus text)
 * Every handler takes the struct api_app (app.h) as its app pointer. */
#ifndef REKEY_API_SERVER_H
#define REKEY_API_SERVER_H

#include <stddef.h>

#include "api/router.h"
#include "util/err.h"

extern const struct route routes_sys[];
extern const size_t routes_sys_count;
extern const struct route routes_token[];
extern const size_t routes_token_count;
extern const struct route routes_kv[];
extern const size_t routes_kv_count;
extern const struct route routes_rekey[];
extern const size_t routes_rekey_count;
extern const struct route routes_audit[];
extern const size_t routes_audit_count;
extern const struct route routes_metrics[];
extern const size_t routes_metrics_count;
extern const struct route routes_pki[];
extern const size_t routes_pki_count;

/* Concatenates every family's table into one array. Returns 0 with *routes (free with free;
 * the patterns and handlers are static) and *n, or -RK_ENOMEM. */
int api_routes(struct route **routes, size_t *n, struct rk_error *err);

#endif
