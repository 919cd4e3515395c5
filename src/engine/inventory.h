/* inventory.h: the YAML configuration: store and server settings, hooks, and the secrets.
 * Loaded with libfyaml; every error names file:line:column, the key, and what was expected. */
#ifndef REKEY_INVENTORY_H
#define REKEY_INVENTORY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../util/err.h"

enum hook_type { HOOK_EXEC = 1, HOOK_HTTP, HOOK_FILE };

/* What an exec hook gets on stdin. */
enum hook_stdin { HOOK_STDIN_NONE = 0, HOOK_STDIN_NEW, HOOK_STDIN_OLD };

struct inv_pair {
    char *key;
    char *value;
};

/* A hook, defined once under `hooks:` and referenced by name from secrets. Templates may use
 * {{new}}, {{old}} (the field's value), {{new.FIELD}}, {{path}}, {{version}}. */
struct hook_def {
    char *name;
    enum hook_type type;
    int line, col;
    int64_t timeout_ms;       /* `timeout`, default 30s */
    int64_t wait_interval_ms; /* `wait: {interval, timeout}`: repeat until it passes; 0 = once */
    int64_t wait_timeout_ms;
    /* exec */
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
    mode_t mode;   /* default 0600 */
    unsigned used; /* number of secrets referencing it (for lint) */
};

struct inv_secret {
    char *path;
    char
        *kind; /* generated, manual, provider-key, database, transit, redis-password, certificate */
    int line, col;
    int64_t every;   /* seconds */
    int auto_rotate; /* `auto` */
    int64_t grace;   /* seconds the previous version stays valid; default 0 */
    char *field;     /* the field that holds the value ("key", "api_key", "password"…) */
    char *format;    /* generated: e.g. "sk-litellm-{hex:48}" */
    char *pattern;   /* manual / provider-key: POSIX ERE the value must match */
    char *description;
    struct hook_def **apply, **test, **reload; /* borrowed from inventory->hooks */
    size_t napply, ntest, nreload;
    struct inv_pair *params; /* the remaining kind-specific settings, as scalars */
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
    char *tls_cert, *tls_key;
    int tls_disable;
    int64_t check_interval;  /* server: `check_interval`, seconds between scheduler checks (60) */
    int64_t request_timeout; /* server: `request_timeout`, seconds a request (headers and body)
                              * may take to arrive, from the connection opening or the previous
                              * response (30; 1..3600); http_config.conn_timeout_s */
    char *audit_path;
    struct hook_def *hooks;
    size_t nhooks;
    struct inv_secret *secrets;
    size_t nsecrets;
    size_t *by_path; /* internal: indexes into secrets sorted by path (inventory_find) */
};

/* Loads a config file. Returns 0 or -RK_ECONFIG / -RK_ENOTFOUND / -RK_EIO with
 * "file:line:col: key: what was expected" in err. *out is freed with inventory_free. */
int inventory_load_file(const char *file, struct inventory **out, struct rk_error *err);

/* Same, from memory; name is used in messages. buf need not be NUL-terminated. */
int inventory_load_string(const char *name, const char *buf, size_t len, struct inventory **out,
                          struct rk_error *err);

void inventory_free(struct inventory *inv);

/* Finds a secret by exact path (O(log n) or O(1)); NULL when absent. */
const struct inv_secret *inventory_find(const struct inventory *inv, const char *path);

/* A kind-specific setting, or NULL. */
const char *inv_param(const struct inv_secret *s, const char *key);

/* A kind-specific duration setting (ttl, max_ttl, renew_before, min_interval) in seconds: *out is
 * def when the setting is absent. Returns 0, or -RK_ECONFIG when it does not parse. */
int inv_param_duration(const struct inv_secret *s, const char *key, int64_t def, int64_t *out);

/* A hook by name (linear search), or NULL. */
const struct hook_def *inventory_hook(const struct inventory *inv, const char *name);

/* Where the store lives: $REKEY_STORE when set and not empty, else inv->store_location
 * ("sqlite:<store_path>" or "etcd:<endpoints>"). Borrowed; valid while inv and the
 * environment are unchanged. */
const char *inventory_store_location(const struct inventory *inv);

/* The config path to use: explicit (from -c) if not NULL, else $REKEY_CONFIG, else "rekey.yaml".*/
const char *inventory_default_path(const char *explicit_path);

/* Lint findings are reported one by one through cb (severity "error" or "warning"). Returns the
 * number of errors found. */
typedef void (*inventory_lint_cb)(void *arg, const char *severity, const char *where,
                                  const char *msg);
int inventory_lint(const struct inventory *inv, inventory_lint_cb cb, void *arg);

#endif
