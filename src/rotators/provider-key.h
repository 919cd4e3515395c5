/* provider-key.h: the part of kind provider-key (provider-key.c) that the unit tests reach
 * directly: the check of a new key before anything is stored. (The providers' endpoints and the
 * partial-hint match are in provider-api.h.) */
#ifndef REKEY_ROTATORS_PROVIDER_KEY_H
#define REKEY_ROTATORS_PROVIDER_KEY_H

#include "inventory/inventory.h"
#include "util/err.h"
#include "util/secret.h"

struct fp_key;

/* Checks v as a new API key of entry s (provider, pattern): not empty, printable ASCII without
 * spaces, not an admin key (sk-admin-…, sk-ant-admin…), not another provider's key (with the
 * provider's own pattern), and matching the entry's pattern. Returns 0, -RK_EINVAL or
 * -RK_ELIMIT (longer than 4 KiB); err then names the path and the expected shape, the value's
 * length and its fingerprint under fpk (or says that none can be shown when fpk is NULL), and
 * never the value. */
int provider_key_validate(const struct inv_secret *s, const struct secret *v,
                          const struct fp_key *fpk, struct rk_error *err);

#endif
