/* inventory.h: loading the YAML configuration into the inventory model (inventory/inventory.h:
 * store and server settings, hooks, and the secrets) and linting it. Loaded with libfyaml; every
 * error names file:line:column, the key, and what was expected. */
#ifndef REKEY_ENGINE_INVENTORY_H
#define REKEY_ENGINE_INVENTORY_H

#include <stddef.h>

#include "inventory/inventory.h"
#include "util/err.h"

/* Loads a config file. Returns 0 or -RK_ECONFIG / -RK_ENOTFOUND / -RK_EIO with
 * "file:line:col: key: what was expected" in err. *out is freed with inventory_free. */
int inventory_load_file(const char *file, struct inventory **out, struct rk_error *err);

/* Same, from memory; name is used in messages. buf need not be NUL-terminated. */
int inventory_load_string(const char *name, const char *buf, size_t len, struct inventory **out,
                          struct rk_error *err);

/* Lint findings are reported one by one through cb (severity "error" or "warning"). Returns the
 * number of errors found. */
typedef void (*inventory_lint_cb)(void *arg, const char *severity, const char *where,
                                  const char *msg);
int inventory_lint(const struct inventory *inv, inventory_lint_cb cb, void *arg);

#endif
