/* inventory.h: the inventory model: the store and server settings, the hooks and the secrets of
 * a loaded configuration, as plain data, with the lookups everyone needs (inventory_find,
 * inv_param*) and the declaration of a kind's settings (struct inv_setting).
 *
 * This module sits just above util: rotators, hooks and the engine all read the model, so it
 * holds no YAML (the loader is engine/inventory.c and engine/config-*.c) and calls no rotator
 * or hook. Everything here is owned by the struct inventory it hangs from and freed by
 * inventory_free. */
#ifndef REKEY_INVENTORY_INVENTORY_H
#define REKEY_INVENTORY_INVENTORY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "inventory/setting.h"
#include "util/err.h"

enum hook_type { HOOK_EXEC = 1, HOOK_HTTP, HOOK_FILE, HOOK_TLS };

/* What an exec hook gets on stdin. */
enum hook_stdin { HOOK_STDIN_NONE = 0, HOOK_STDIN_NEW, HOOK_STDIN_OLD };

struct inv_pair {
    char *key;
    char *value;
};

/* A hook, defined once under `hooks:` and referenced by name from secrets. Templates use the
 * grammar of util/template.h: {{new}}, {{old}}, {{new.FIELD}}, {{old.FIELD}}, {{path}},
 * {{version}}. The members below `kind settings` are filled from the hook kind's settings table
 * (hooks/hook-*.c); a kind's setting without a member of its own is kept in params. */
struct hook_def {
    char *name;
    enum hook_type type;
    int line, col;
    int64_t timeout_ms;       /* `timeout`, default 30s */
    int64_t wait_interval_ms; /* `wait: {interval, timeout}`: repeat until it passes; 0 = once */
    int64_t wait_timeout_ms;
    /* kind settings: exec */
    char **argv; /* `command: [prog, arg…]`, NULL-terminated */
    size_t argc;
    char *workdir;
    enum hook_stdin stdin_mode; /* `stdin: none|new|old` */
    /* http */
    char *method; /* default GET */
    char *url;
    struct inv_pair *headers;
    size_t nheaders;
    char *body;
    int expect_status; /* default 200 */
    int tls_verify;    /* default 1 */
    /* file */
    char *path;
    char *template;
    mode_t mode; /* default 0600 */
    /* settings of the hook's kind that have no member above, as text */
    struct inv_pair *params;
    size_t nparams;
    unsigned used; /* number of secrets referencing it (for lint) */
};

struct inv_secret {
    char *path;
    char *kind; /* a row of the rotator registry (rotators/registry.c) */
    int line, col;
    int64_t every;   /* seconds */
    int auto_rotate; /* `auto` */
    int64_t grace;   /* seconds the previous version stays valid; default 0 */
    char *field;     /* the field that holds the value ("key", "api_key", "password"…) */
    char *format;    /* the `format` setting of the kinds that take one (generated) */
    char *pattern;   /* the `pattern` setting (manual, provider-key): a POSIX ERE */
    char *description;
    struct hook_def **apply, **test, **reload; /* borrowed from inventory->hooks */
    size_t napply, ntest, nreload;
    struct inv_pair *params; /* the other settings of the kind, as text (inv_param) */
    size_t nparams;
};

struct inventory {
    char *file;            /* the path it was loaded from */
    int version;           /* `version`, always 1 for now */
    char *store_backend;   /* "sqlite" (default) or "etcd" */
    char *store_path;      /* resolved relative to the config file's directory */
    char *store_endpoints; /* etcd: `endpoints`, comma-joined ("http://127.0.0.1:2379,…") */
    char *store_location;  /* "sqlite:<store_path>" or "etcd:<endpoints>"; see below */
    char *key_file;        /* optional: root key file for unattended unseal */
    char *listen;          /* server: "127.0.0.1:8200" */
    char *api_addr;        /* server: `api_addr`, the URL other servers of one store reach this
                            * one at ("https://rekey-1.internal:8200", no trailing '/'): what
                            * sys/leader shows and where a standby forwards; NULL = from listen */
    char *tls_cert, *tls_key;
    int tls_disable;
    int64_t check_interval;  /* server: `check_interval`, seconds between scheduler checks (60) */
    int64_t request_timeout; /* server: `request_timeout`, seconds a request (headers and body)
                              * may take to arrive, from the connection opening or the previous
                              * response (30; 1..3600); http_config.conn_timeout_s */
    int64_t max_lease_ttl;   /* server: `max_lease_ttl`, the longest TTL a token gets, at
                              * creation or renewal (0 = unset: token.h's default, 768h) */
    char *trusted_proxies;   /* server: `trusted_proxies`, addresses/CIDRs comma-joined, checked
                              * (netaddr.h); http_config.trusted_proxies; NULL = none */
    int unauthenticated_metrics_access; /* server: GET sys/metrics without a token (as Vault's
                                         * telemetry setting of that name); default 0 */
    int audit_enabled; /* an `audit:` block is present: the audit log is on (audit/audit.h) */
    char *audit_path;  /* its `path`; audit.log next to the config file when unset */
    struct hook_def *hooks;
    size_t nhooks;
    struct inv_secret *secrets;
    size_t nsecrets;
    size_t *by_path; /* internal: indexes into secrets sorted by path (inventory_find) */
};

void inventory_free(struct inventory *inv);

/* Finds a secret by exact path (O(log n) or O(1)); NULL when absent. */
const struct inv_secret *inventory_find(const struct inventory *inv, const char *path);

/* A kind-specific setting, or NULL. */
const char *inv_param(const struct inv_secret *s, const char *key);

/* A kind-specific duration setting (ttl, max_ttl, renew_before, min_interval) in seconds: *out is
 * def when the setting is absent. Returns 0, or -RK_ECONFIG when it does not parse. */
int inv_param_duration(const struct inv_secret *s, const char *key, int64_t def, int64_t *out);

/* Sets a kind-specific setting of s to a copy of value, replacing an earlier one. For a kind's
 * derived defaults (rotator_ops.defaults). Returns 0 or -RK_ENOMEM (s unchanged). */
int inv_param_set(struct inv_secret *s, const char *key, const char *value);

/* A setting of a hook's kind kept as text (one without a member of struct hook_def), or NULL. */
const char *inv_hook_param(const struct hook_def *h, const char *key);

/* A hook by name (linear search), or NULL. */
const struct hook_def *inventory_hook(const struct inventory *inv, const char *name);

/* Where the store lives: $REKEY_STORE when set and not empty, else inv->store_location
 * ("sqlite:<store_path>" or "etcd:<endpoints>"). Borrowed; valid while inv and the
 * environment are unchanged. */
const char *inventory_store_location(const struct inventory *inv);

/* The config path to use: explicit (from -c) if not NULL, else $REKEY_CONFIG, else "rekey.yaml".*/
const char *inventory_default_path(const char *explicit_path);

/* ---- lint findings of a kind's own rules ---- */

/* How a rotator or hook kind reports a lint finding: severity "error" or "warning", and a
 * message without position or path (the linter adds file:line:col and the entry's path or
 * the hook's name). */
typedef void (*inv_lint_report_fn)(void *arg, const char *severity, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
