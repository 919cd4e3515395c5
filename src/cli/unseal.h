/* unseal.h: getting the root key: a key file, or Shamir shares typed at a no-echo prompt. */
#ifndef REKEY_UNSEAL_H
#define REKEY_UNSEAL_H

#include "util/err.h"
#include "util/secret.h"

/* Reads a root key file (64 hex characters and an optional newline). Refuses a file readable by
 * group or others. Returns 0 with *key (caller frees), -RK_ENOTFOUND, -RK_EPERM, -RK_EBADKEY. */
int keyfile_read(const char *path, struct secret **key, struct rk_error *err);

/* Writes key as hex to a new file with mode 0600 (fails if it exists). Returns 0 or -RK_E*. */
int keyfile_write(const char *path, const struct secret *key, struct rk_error *err);

/* Parses the seal configuration JSON written at init: type "shamir" or "keyfile", shares,
 * threshold. Returns 0 or -RK_ECORRUPT. */
int seal_config_parse(const char *json, char *type, size_t typelen, int *shares, int *threshold,
                      struct rk_error *err);

#endif
