/* sink.h: an audit file sink: appends chain lines (audit/chain.h) to one file, durably.
 *
 * Several processes (the server, CLI commands) may append to one file at once; each batch
 * holds flock(LOCK_EX) on the file while it reads the last hash from the file's tail, appends
 * and fsyncs, so the file holds one chain in one order whoever wrote each line. Within a
 * process, a flusher thread per sink writes the lines queued since its last batch with one
 * write and one fdatasync (group commit: the lines that arrive during a batch's fsync make the
 * next batch); an append waits for its batch, or (audit_sink_append_async) is told of it by a
 * completion, so that a server need not hold a thread while a line is fsynced.
 *
 * Rotation: before each batch the sink checks that its path still names the file it holds
 * open. When the file was renamed away (logrotate) or removed, or after audit_sink_reopen
 * (SIGHUP), the sink opens the path anew; an empty file starts with a header whose prev is the
 * last hash of the file before, so the chain continues across files. A process that finds an
 * empty file without having held the previous one takes that hash from "<path>.1"
 * (logrotate's name for the newest rotated file) when it is a chain file, else draws a random
 * anchor. */
#ifndef REKEY_AUDIT_SINK_H
#define REKEY_AUDIT_SINK_H

#include <stddef.h>

#include "audit/chain.h"
#include "util/err.h"

struct audit_sink;

/* A sink for path (copied). Touches nothing on disk: the file is opened by the first append
 * (or audit_sink_check). Returns 0 or -RK_ENOMEM. */
int audit_sink_new(const char *path, struct audit_sink **out, struct rk_error *err);

/* Writes what is queued (running every completion), stops the flusher, closes and frees;
 * accepts NULL. No append may be running or start. */
void audit_sink_free(struct audit_sink *s);

/* The path given to audit_sink_new (borrowed). */
const char *audit_sink_path(const struct audit_sink *s);

/* Opens (or creates, with its header) the file now and checks that the last line is a chain
 * line, to report a bad path at start-up. Returns 0, -RK_EIO, -RK_ECORRUPT. */
int audit_sink_check(struct audit_sink *s, struct rk_error *err);

/* Appends one line with the time (AUDIT_TIME_LEN chars) and body (JSON members, see
 * audit_line_seal) and returns once it is written and fsynced, or failed (then nothing of
 * the batch stays in the file). Thread-safe. Returns 0, -RK_EIO (open, lock, write, fsync),
 * -RK_ECORRUPT (the file's last line is not a chain line: see docs/audit.md), -RK_ENOMEM. */
int audit_sink_append(struct audit_sink *s, const char *time, const char *body, size_t blen,
                      struct rk_error *err);

/* The completion of an asynchronous line: result 0 when its batch was written and fsynced, else
 * -RK_E* with msg (borrowed for the call). Runs in the sink's flusher thread, without locks of
 * the sink held; it must not append to the same sink and wait. */
typedef void (*audit_sink_done_fn)(void *arg, int result, const char *msg);

/* Queues one line (time and body are copied) and returns at once; fn(arg, …) is called exactly
 * once, after its batch is written and fsynced or failed (then nothing of the batch stays in
 * the file), from the flusher thread, and before audit_sink_free returns. Lines keep the order
 * of their calls. Thread-safe. Returns 0 (fn will be called) or -RK_ENOMEM / -RK_EINTERNAL
 * (fn will not be called). */
int audit_sink_append_async(struct audit_sink *s, const char *time, const char *body, size_t blen,
                            audit_sink_done_fn fn, void *arg, struct rk_error *err);

/* The next batch reopens the path (SIGHUP), continuing the chain. Thread-safe. */
void audit_sink_reopen(struct audit_sink *s);

/* Batches and lines written by this process (for tests and benchmarks). */
void audit_sink_stats(struct audit_sink *s, unsigned long long *batches, unsigned long long *lines);

#endif
