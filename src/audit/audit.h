/* audit.h: the audit log: a subscriber of the event stream (util/events.h) that writes one
 * chain line (audit/chain.h) per API request and response, local CLI operation on a store and
 * rotation outcome to every enabled file sink (audit/sink.h).
 *
 * Sinks: the configuration's `audit:` block (one file, always on while the process runs) and
 * the devices enabled through Vault's sys/audit API, whose settings live in the store under
 * "sys/audit/<name>" (behind the barrier: loaded at unseal, dropped at seal). No sink: no
 * audit, and nothing is written or refused.
 *
 * Durability: a request's or a local operation's line is written and fsynced before the
 * operation runs; when no enabled sink can write it, the subscriber fails the event, so the
 * publisher refuses the operation (the API answers 500). A response line that cannot be
 * written fails the response event too (the API answers 500, as Vault does). One sink out of
 * several failing is logged, not fatal. One exception, in the server (api/http.c): a KV read,
 * whose handler changes nothing, runs before its request line is fsynced, and its answer waits
 * until that line and its response line (written together) are; when they cannot be, the
 * answer is a 500 instead, so no value read goes out unrecorded.
 *
 * Secrets: events never carry a secret value or a token (events.h); the token accessor, which
 * can look a token up or revoke it, is written as "hmac-sha256:<hex>", HMAC-SHA256 keyed by the
 * store's audit salt (store/barrier.h barrier_audit_salt). audit_hash computes the same for a
 * value an operator wants to search for (sys/audit-hash, `rekey audit hash`).
 *
 * Threads: the subscriber runs in the publishing threads; sinks batch them (sink.h). Devices
 * are swapped under a rwlock: enable and disable wait for lines in flight. A server thread
 * may instead open an asynchronous window (audit_async_begin) and be told when its request's
 * lines are durable, so that no thread waits for an fsync (api/http.c suspends the request's
 * connection meanwhile). */
#ifndef REKEY_AUDIT_AUDIT_H
#define REKEY_AUDIT_AUDIT_H

#include <jansson.h>
#include <stddef.h>

#include "util/err.h"

struct barrier;
struct audit;

#define AUDIT_HMAC_PREFIX "hmac-sha256:"
#define AUDIT_HMAC_LEN (12 + 64) /* the prefix and 64 hex digits */
#define AUDIT_DEVICE_NAME_MAX 64
#define AUDIT_STORE_PREFIX "sys/audit/"
#define AUDIT_CONFIG_DEVICE "config" /* the name the configuration's block is listed under */

struct audit_opts {
    const char *file_path; /* the configuration's audit block (audit.path), or NULL: none */
    struct barrier *br;    /* the store, for the salt and the devices; may be NULL */
};

/* Creates the audit log and subscribes it to the event stream. With file_path, the file is
 * opened (and given its header) now; a file that cannot be opened is logged and tried again by
 * every event (which fails until it can be written). Returns 0 with *out (audit_free),
 * -RK_ELIMIT (no subscriber slot left), -RK_ENOMEM. */
int audit_open(const struct audit_opts *o, struct audit **out, struct rk_error *err);

/* Unsubscribes (waiting for events in flight), closes every sink, wipes the salt; accepts
 * NULL. */
void audit_free(struct audit *a);

/* Replaces the configuration's file (a reloaded configuration): NULL turns it off. The new
 * file continues the old one's chain when it is new. Returns 0 or -RK_ENOMEM. */
int audit_set_file(struct audit *a, const char *file_path, struct rk_error *err);

/* Loads the devices stored under AUDIT_STORE_PREFIX (after an unseal), replacing those loaded
 * before. A device whose record does not parse is skipped with a log line. Returns 0,
 * -RK_ESEALED, -RK_EIO. */
int audit_devices_load(struct audit *a, struct rk_error *err);

/* Drops the devices and the cached salt (before a seal). */
void audit_devices_unload(struct audit *a);

/* Every sink reopens its file before its next line (SIGHUP after logrotate). */
void audit_reopen(struct audit *a);

/* The number of enabled sinks (0: no audit). */
size_t audit_sink_count(struct audit *a);

/* Enables a file device name (1..AUDIT_DEVICE_NAME_MAX of [A-Za-z0-9._-], a trailing '/'
 * allowed) writing to file_path (absolute), with a description (may be NULL): opens the file
 * (it must be writable), then stores the device. Returns 0, -RK_EINVAL (bad name, type other
 * than "file", relative path, a path a sink writes already), -RK_EEXISTS (the name is taken),
 * -RK_EIO (the file cannot be written), -RK_ESEALED. */
int audit_device_enable(struct audit *a, const char *name, const char *type,
                        const char *description, const char *file_path, struct rk_error *err);

/* Disables a device and removes it from the store. Returns 0, -RK_ENOTFOUND, -RK_EINVAL
 * (the configuration's file, which only the configuration turns off), -RK_ESEALED, -RK_EIO. */
int audit_device_disable(struct audit *a, const char *name, struct rk_error *err);

/* The enabled devices as Vault lists them: {"<name>/": {"type":"file","description":…,
 * "options":{"file_path":…},"local":false,"path":"<name>/"}}, the configuration's file as
 * "config/". Returns 0 with *out (json_decref) or -RK_ENOMEM. */
int audit_device_list(struct audit *a, json_t **out, struct rk_error *err);

/* 1 when name (with or without a trailing '/') is an enabled device or "config" while the
 * configuration's file is on. */
int audit_device_exists(struct audit *a, const char *name);

/* The number of devices stored in the store (for `rekey status`; the store unsealed). Returns
 * 0 with *n, or -RK_ESEALED / -RK_EIO. */
int audit_devices_stored(struct barrier *br, size_t *n, struct rk_error *err);

/* "hmac-sha256:" + hex HMAC-SHA256 of data under the store's audit salt, into out
 * (AUDIT_HMAC_LEN + 1). Creates the salt on first use. Returns 0, -RK_ESEALED, -RK_E*. */
int audit_hash(struct barrier *br, const void *data, size_t len, char out[AUDIT_HMAC_LEN + 1],
               struct rk_error *err);

/* ---- asynchronous recording: a server that must not hold a thread while a line is fsynced --- */

/* Told once that the lines of a window were written and fsynced (result 0), or that some event
 * of it could not be recorded by any sink (-RK_E*, msg says why; borrowed for the call). Runs
 * in a sink's flusher thread, or in audit_async_end's caller. */
typedef void (*audit_done_fn)(void *arg, int result, const char *msg);

/* 1 while some audit log of this process records API events (a window is worth opening). */
int audit_async_wanted(void);

/* Opens a window on this thread: until audit_async_end, the API request and response events
 * this thread publishes are queued to the sinks without waiting for their fsync (the
 * subscriber returns 0 once every sink has queued the line; failures found before that are
 * returned as before). Other event types are written and waited for as usual. A window that
 * cannot be allocated leaves this thread synchronous (audit_async_pending then says 0). No
 * window may already be open on this thread. */
void audit_async_begin(audit_done_fn fn, void *arg);

/* 1 when a line of the open window was queued: fn will be called once the window is closed. */
int audit_async_pending(void);

/* Closes this thread's window (no-op without one). When lines were queued, fn(arg, …) is
 * called exactly once when all of them are done: perhaps from within this call, so the caller
 * prepares for it (suspends its connection) first. */
void audit_async_end(void);

/* The note `rekey lint` and `rekey status` print about the audit log: "audit: file PATH" and
 * devices, or "audit: off (…)". n_devices < 0 when they are unknown (no store). Writes into
 * out (NUL-terminated). */
void audit_note(const char *file_path, int n_devices, char *out, size_t outlen);

#endif
