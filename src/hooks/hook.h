/* hook.h: the steps a rotation runs against the outside world (apply, test, reload): run a
 * command, call an HTTP endpoint, or render a file, optionally repeated until it passes (`wait`).
 * Each kind is a row in a static registry of struct hook_ops (like curl's protocol handlers).
 * Secrets reach a hook only through stdin, a request header or body, or a 0600 file; never
 * through argv, a URL, the environment, a log line or an error message.
 *
 * exec: posix_spawn, no shell; PATH is fixed (/usr/local/sbin:...:/bin) and the environment is
 *   only PATH, REKEY_PATH, REKEY_VERSION, REKEY_HOOK; stdin is /dev/null, or with `stdin: new|old`
 *   the raw value (no trailing newline) then EOF; own process group, killed (TERM, 2 s, KILL) on
 *   timeout; passes on exit status 0; status 75 (EX_TEMPFAIL) says the target is unavailable
 *   (-RK_EUNAVAILABLE: the candidate waits), any other refuses; stdout/stderr (64 KiB each)
 *   logged masked.
 * http: libcurl, http/https only, no redirects followed, no proxy (environment proxies are
 *   ignored), TLS verified when tls_verify; passes on expect_status (default 200); a failing
 *   response's first 4 KiB is logged masked.
 * file: fs_write_atomic with mode (0 = 0600). */
#ifndef REKEY_HOOK_H
#define REKEY_HOOK_H

#include <stddef.h>
#include <stdint.h>

#include "inventory/inventory.h"
#include "util/err.h"
#include "util/secret.h"

/* What a hook may use. Every value is a secret; none is copied outside secure memory by the
 * template renderer. All pointers are borrowed and may be NULL. */
struct hook_ctx {
    const char *path; /* the secret's path ({{path}}, REKEY_PATH) */
    int64_t version;  /* the candidate version ({{version}}, REKEY_VERSION) */
    const struct secret *new_value, *old_value; /* the field's value: {{new}}, {{old}} */
    /* All fields of the new / old version as a JSON object text, for {{new.FIELD}} and
     * {{old.FIELD}}. String values found there are also masked in logged output. */
    const struct secret *new_fields_json, *old_fields_json;
    /* Further values to mask in logged output (new_value and old_value always are). */
    const struct secret *const *redact;
    size_t nredact;
    /* The store's fingerprint key: a masked value shows as its fingerprint (util/enc.h); with
     * NULL as "(secret)". */
    const struct fp_key *fp_key;
    /* Fields of the new and old versions that are internal to the rotator (an id it needs at
     * retire): stored, never rendered: {{new.F}} / {{old.F}} of one of them is refused. */
    const char *const *internal_fields;
    size_t ninternal;
};

/* Runs one hook, repeating it every wait_interval_ms until it passes or wait_timeout_ms has
 * elapsed when h->wait_interval_ms > 0. Returns 0 when it passed, -RK_EHOOK ("hook NAME:
 * expected HTTP 200, got 401"), -RK_ETIMEOUT, -RK_EINVAL (a template names a value the context
 * lacks), -RK_ENOTIMPL (unknown kind) or -RK_ENOMEM; the message in err names the hook and never
 * holds a secret. Captured output is logged with log_info, secrets replaced by fingerprints. */
int hook_run(const struct hook_def *h, const struct hook_ctx *ctx, struct rk_error *err);

/* Runs hooks[0..n) in order and stops at the first failure, whose code and message it returns. */
int hook_run_list(struct hook_def *const *hooks, size_t n, const struct hook_ctx *ctx,
                  struct rk_error *err);

/* Validates a hook definition at config-load time: known kind, required settings present,
 * every template well-formed, and no secret placeholder ({{new}}, {{old}}, {{new.F}}, {{old.F}})
 * where it would leak (exec argv and workdir, HTTP URL and method, file path).
 * Returns 0 or -RK_ECONFIG with the reason (naming the hook) in err. */
int hook_check(const struct hook_def *h, struct rk_error *err);

/* "exec", "http", "file", or "unknown". */
const char *hook_type_name(enum hook_type type);

/* Checks a template's syntax and placeholder names without a context: {{new}}, {{old}},
 * {{new.FIELD}}, {{old.FIELD}}, {{path}}, {{version}}; spaces inside the braces are allowed.
 * Returns 0, or -RK_EINVAL naming the unknown placeholder or the position (1-based byte offset)
 * of an unterminated "{{". */
int hook_template_check(const char *tpl, struct rk_error *err);

/* Renders tpl with ctx into a new secret (*out, freed with secret_free; NUL-terminated).
 * Returns 0, -RK_EINVAL (syntax, unknown placeholder, or a value or field the context lacks),
 * or -RK_ENOMEM. No rendered byte is ever written outside secure memory. */
int hook_template_render(const char *tpl, const struct hook_ctx *ctx, struct secret **out,
                         struct rk_error *err);

/* As hook_template_render, but refuses secret placeholders: for argv, URLs and file paths, whose
 * rendered text may be shown in a process list, a log line or an error message. *out is an
 * ordinary malloc'd string the caller frees. Returns 0, -RK_EINVAL or -RK_ENOMEM. */
int hook_template_render_public(const char *tpl, const struct hook_ctx *ctx, char **out,
                                struct rk_error *err);

/* 1 if tpl contains a secret placeholder, else 0 (also 0 for a malformed template). */
int hook_template_has_secret(const char *tpl);

/* ---- the registry of hook kinds (the loader, lint, the contract tests) ---- */

struct hook_ops;

/* The hook kind named name[0..len) ("exec", "http", "file"), or NULL. */
const struct hook_ops *hook_kind_find(const char *name, size_t len);

/* The i-th hook kind (0-based), or NULL past the last. */
const struct hook_ops *hook_kind_at(size_t i);

/* Runs the lint rules of h's kind (nothing for an unknown kind). */
void hook_lint(const struct hook_def *h, inv_lint_report_fn report, void *arg);

/* ---- for the hook kinds (hook-*.c); not for other modules ---- */

#define HOOK_OPS_VERSION 1
/* An exec hook that exits with this status (EX_TEMPFAIL) says its target is unavailable: the
 * engine keeps the candidate pending instead of undoing it. */
#define HOOK_EXIT_UNAVAILABLE 75
#define HOOK_DEFAULT_TIMEOUT_MS 30000
#define HOOK_OUTPUT_MAX (64 * 1024) /* bytes captured per stream (one less, in fact) */

struct hook_ops {
    int version; /* HOOK_OPS_VERSION */
    enum hook_type type;
    const char *name;
    /* Config-time validation; err gets the reason without the "hook NAME: " prefix. */
    int (*check)(const struct hook_def *h, struct rk_error *err);
    /* One attempt, bounded by timeout_ms (> 0). Same returns as hook_run. */
    int (*run)(const struct hook_def *h, const struct hook_ctx *ctx, int64_t timeout_ms,
               struct rk_error *err);
    /* The kind's own keys besides type, timeout and wait (inventory/setting.h), ended by a row
     * with name NULL; the loader parses each into the member of struct hook_def the row names
     * (or params) and fills defaults. NULL: none. */
    const struct inv_setting *settings;
    /* The kind's lint rules (a secret written with a loose mode, sent over plain http…),
     * reported through report without the "hook 'NAME' " the linter puts first. May be NULL. */
    void (*lint)(const struct hook_def *h, inv_lint_report_fn report, void *arg);
};

extern const struct hook_ops hook_exec_ops;
extern const struct hook_ops hook_http_ops;
extern const struct hook_ops hook_file_ops;
extern const struct hook_ops hook_tls_ops;

/* Logs buf[0..len) line by line with log_info as "hook NAME: LABEL: line", each value of ctx
 * (new, old, redact[], string fields) replaced by its fingerprint (ctx->fp_key) and control
 * bytes by '?'.
 * truncated = 1 appends a note and drops a trailing partial match of a secret. buf is not
 * modified; the working copy lives in secure memory. */
void hook_log_output(const struct hook_def *h, const char *label, const unsigned char *buf,
                     size_t len, int truncated, const struct hook_ctx *ctx);

#endif
