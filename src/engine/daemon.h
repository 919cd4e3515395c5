/* daemon.h: the rotation daemon (`rekey run`): keeps one timer per scheduled event in a min-heap
 * and sleeps until the earliest one, with no periodic wake-ups. See docs/daemon.md.
 *
 * Timers: ROTATE (an auto secret is due), RETRY (a failed rotation, with backoff), REMIND (a
 * manual secret is due: logged once per due period, never a value invented), FINISH (a grace
 * period ends: the previous value is retired). Rotations run synchronously in the loop; SIGTERM
 * and SIGINT are blocked and read through a signalfd between steps, so a rotation in flight always
 * completes (or fails and is undone by the engine) before the daemon stops. SIGHUP reloads the
 * configuration, keeping the old one when the new one does not load. */
#ifndef REKEY_DAEMON_H
#define REKEY_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"
#include "inventory.h"

struct kv;

struct daemon_opts {
    int once;                /* run what is due now, then return (cron, tests) */
    const char *pid_file;    /* written at start (0644), removed at exit; may be NULL */
    const char *config_file; /* reloaded on SIGHUP; NULL: (*inv)->file */
};

struct daemon_stats {
    unsigned long rotated, failed, finished, reminded, reloads;
};

/* Runs the daemon on an unsealed store's KV until SIGTERM/SIGINT (or, with opts->once, until
 * what was due at the start has run). *inv is the loaded configuration; after a successful
 * SIGHUP reload the daemon frees the old one and stores the new one in *inv, so the caller
 * always frees whatever *inv holds at the end. stats may be NULL.
 * Returns 0 after a clean stop, or -RK_E* when it cannot start (pid file held, signalfd,
 * engine) with the message in err. Failed rotations are not errors: they are logged, counted
 * in stats->failed and retried with backoff. */
int daemon_run(struct kv *kv, struct inventory **inv, const struct daemon_opts *opts,
               struct daemon_stats *stats, struct rk_error *err);

/* The delay in seconds before retrying a rotation that failed `failures` times in a row (>= 1):
 * base = min(60 s, max(1 s, every/10)), doubled per further failure, capped at min(6 h, every)
 * (6 h when every <= 0). Always >= 1. */
int64_t daemon_backoff(int64_t every, int failures);

/* Formats a duration in seconds for log lines: "45s", "2m", "1h30m", "3d". */
void daemon_fmt_duration(int64_t secs, char *buf, size_t len);

#endif
