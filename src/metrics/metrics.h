/* metrics.h: what rekey exports to Prometheus (docs/metrics.md lists every family).
 *
 * Two sources, kept apart on purpose:
 * - Counters of this process (API requests and their latency by route family and status,
 *   rotations run here, audit sink failures) are counted by subscribing to the event stream
 *   (util/events.h): the router and the engine publish events and never name a metric.
 * - Everything that describes an entry's rotations (last and next rotation, overdue, state,
 *   consecutive failures, version, action required, expiry) is read from the store at each
 *   scrape through the functions `rekey status` uses (engine/schedule.h), so a rotation run
 *   by another process (a `rekey rotate` beside the server) shows at the next scrape.
 *
 * The server keeps one struct metrics for the process (metrics_server_start); the sys/metrics
 * route renders it with the store's part. `rekey metrics` renders only the store's part.
 *
 * Thread safety: the event callback and the render functions may run in any threads at once.
 * Request counting takes no lock once a (route, status) pair has been seen; rotation results
 * take a mutex (they are rare). */
#ifndef REKEY_METRICS_H
#define REKEY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/prom.h"
#include "util/err.h"
#include "util/events.h"

struct metrics;
struct kv;
struct inventory;
struct secret_status;

/* A new, empty set of counters, not yet subscribed. Returns 0 or -RK_ENOMEM. */
int metrics_new(struct metrics **out, struct rk_error *err);

/* Unsubscribes (when subscribed) and frees m; accepts NULL. */
void metrics_free(struct metrics *m);

/* Subscribes m to the events it counts (EV_API_RESPONSE, EV_ROTATION_RESULT). Returns 0 or
 * -RK_ELIMIT (no subscriber slot left). Idempotent. */
int metrics_subscribe(struct metrics *m, struct rk_error *err);

/* The event callback metrics_subscribe registers (arg is the struct metrics); never fails. */
int metrics_on_event(void *arg, const struct rk_event *ev, struct rk_error *err);

/* Counts one failure of an audit sink to record an entry (the audit module calls it each time a
 * write or fsync fails, whether or not another sink took the entry). Process-wide, lock-free,
 * callable before anything is set up. */
void metrics_audit_failure(void);

/* The process-wide count metrics_audit_failure has made. */
uint64_t metrics_audit_failures(void);

/* Where the lease gauges (rekey_leases, rekey_leases_irrevocable) come from: fn fills both
 * counts at each scrape (the server's lease manager sets it; NULL: not rendered). */
void metrics_leases_source(void (*fn)(size_t *total, size_t *irrevocable));

/* --- the server's instance --- */

/* Creates and subscribes the process's instance (once; later calls do nothing). Call it before
 * the server takes requests. Returns 0, -RK_ENOMEM or -RK_ELIMIT. */
int metrics_server_start(struct rk_error *err);

/* Unsubscribes and frees the process's instance; accepts being called when none was started. */
void metrics_server_stop(void);

/* The process's instance, or NULL before metrics_server_start. */
struct metrics *metrics_server(void);

/* --- rendering --- */

/* What the server knows of its seal when scraped. */
struct metrics_seal {
    int initialized; /* 1 once the store was initialised */
    int sealed;      /* 1 while sealed */
};

/* Appends rekey_build_info: every exposition carries it (the server's and `rekey metrics`). */
void metrics_render_build(struct prom_buf *b);

/* Appends the server's own families: start time, seal state, requests and their latency,
 * rotations run in this process and their duration, audit sink failures. m may be NULL (the
 * counter families are then written with no samples, the audit counter as the process's). */
void metrics_render_server(struct metrics *m, const struct metrics_seal *seal, struct prom_buf *b);

/* Appends the per-entry families for st[0..n) as of now (seconds), labelled path and kind.
 * collect_us (the time reading the store took; < 0: not written) goes into
 * rekey_secrets_collect_duration_seconds. Returns 0 or -RK_ENOMEM (b->oom). */
int metrics_render_secrets(struct prom_buf *b, const struct secret_status *st, size_t n,
                           int64_t now, int64_t collect_us, struct rk_error *err);

/* Reads every entry's status (the inventory's and those defined in the store: what
 * `rekey status` shows, schedule_status_list) at now and appends metrics_render_secrets of it.
 * Returns 0, or the store's error (-RK_ESEALED when sealed) with nothing appended, or
 * -RK_ENOMEM. */
int metrics_render_store(struct prom_buf *b, struct kv *kv, const struct inventory *inv,
                         int64_t now, struct rk_error *err);

#endif
