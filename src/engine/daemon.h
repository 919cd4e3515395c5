/* daemon.h: the rotation daemon: keeps one timer per scheduled event in a min-heap and sleeps
 * until the earliest one, with no periodic wake-ups. It runs either as the whole process
 * (`rekey run`) or as a thread of `rekey server`. See docs/daemon.md.
 *
 * Timers: ROTATE (an auto secret is due), RETRY (a failed rotation, or a candidate left pending
 * by an unavailable target, with util/backoff.h's backoff), REMIND (a manual secret is due:
 * logged once per due period, never a value invented), FINISH (a grace period ends: the
 * previous value is retired). Rotations run synchronously in the loop. The secrets are the
 * inventory's and the entries defined in the store (engine/entries.h); when each is due comes
 * from engine/schedule.h (its kind's status op, or last rotation + every).
 *
 * `rekey run` (opts->embed NULL): SIGTERM and SIGINT are blocked and read through a signalfd
 * between timers, so a rotation in flight always completes (or fails and is undone by the
 * engine) before the daemon stops. SIGHUP reloads the configuration, keeping the old one when
 * the new one does not load.
 *
 * Embedded (opts->embed set, daemon_thread_*): the daemon touches no signal; it waits on its
 * timerfd and a control pipe whose messages say stop (after the timer in flight) or re-plan
 * (the host swapped the inventory). It takes the host's read lock around each timer it runs
 * and each re-plan, and reads *inv only under that lock, so the host may replace and free the
 * inventory under its write lock. */
#ifndef REKEY_DAEMON_H
#define REKEY_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "engine/inventory.h"

struct kv;

/* Control messages on an embedded daemon's pipe (one byte each). */
#define DAEMON_MSG_STOP 'S'   /* stop after the timer in flight (the end of the pipe too) */
#define DAEMON_MSG_REPLAN 'R' /* the host reloaded: re-plan every timer from *inv */

/* How a host process runs the daemon inside itself (see the header comment). */
struct daemon_embed {
    int control_fd;            /* read end of a pipe (O_NONBLOCK) carrying DAEMON_MSG_* */
    void (*rdlock)(void *arg); /* the host's read lock: held while *inv is used */
    void (*unlock)(void *arg);
    void *lock_arg;
    const uint64_t *generation; /* bumped by the host under its write lock each time it
                                 * replaces *inv (read under rdlock); may be NULL */
};

struct daemon_opts {
    int once;                         /* run what is due now, then return (cron, tests) */
    const char *pid_file;             /* written at start (0644), removed at exit; may be NULL */
    const char *config_file;          /* reloaded on SIGHUP; NULL: (*inv)->file */
    const struct daemon_embed *embed; /* NULL: `rekey run` (owns the signals) */
};

struct daemon_stats {
    unsigned long rotated, failed, finished, reminded, reloads;
    unsigned long unavailable; /* tries that left the candidate pending (target unavailable) */
};

/* Runs the daemon on an unsealed store's KV until SIGTERM/SIGINT (or, with opts->once, until
 * what was due at the start has run). *inv is the loaded configuration; after a successful
 * SIGHUP reload the daemon frees the old one and stores the new one in *inv, so the caller
 * always frees whatever *inv holds at the end. stats may be NULL.
 * Embedded (opts->embed): runs until DAEMON_MSG_STOP or the end of the control pipe; never
 * writes or frees *inv (the host owns it); pid_file and once are ignored.
 * Returns 0 after a clean stop, or -RK_E* when it cannot start (pid file held, signalfd,
 * engine) with the message in err. Failed rotations are not errors: they are logged, counted
 * in stats->failed and retried with backoff (util/backoff.h). */
int daemon_run(struct kv *kv, struct inventory **inv, const struct daemon_opts *opts,
               struct daemon_stats *stats, struct rk_error *err);

/* The daemon as a thread of a host process (rekey server). */
struct daemon_thread;

/* Starts daemon_run in a new thread (every signal blocked in it) with a control pipe, on kv and
 * *inv, taking rdlock(lock_arg)/unlock(lock_arg) around its use of *inv; generation as in
 * struct daemon_embed (may be NULL). kv and inv must outlive daemon_thread_stop. Returns 0
 * with *out, or -RK_E* (pipe, thread) with the message in err. */
int daemon_thread_start(struct kv *kv, struct inventory **inv, void (*rdlock)(void *),
                        void (*unlock)(void *), void *lock_arg, const uint64_t *generation,
                        struct daemon_thread **out, struct rk_error *err);

/* Wakes the thread to re-plan every timer from the current *inv (after the host swapped it,
 * or to pick up changes in the store). Never blocks; async-signal-safe. Accepts NULL. */
void daemon_thread_replan(struct daemon_thread *t);

/* Asks the thread to stop after the timer in flight; returns at once. Accepts NULL. */
void daemon_thread_request_stop(struct daemon_thread *t);

/* Asks the thread to stop, waits for it (the rotation in flight finishes first), frees t.
 * Must not be called while holding the host's write lock (the thread may be waiting for the
 * read lock). Returns the thread's daemon_run result (0 after a clean stop). *stats (may be
 * NULL) gets its counters. Accepts NULL (returns 0). */
int daemon_thread_stop(struct daemon_thread *t, struct daemon_stats *stats);

/* Formats a duration in seconds for log lines: "45s", "2m", "1h30m", "3d". */
void daemon_fmt_duration(int64_t secs, char *buf, size_t len);

#endif
