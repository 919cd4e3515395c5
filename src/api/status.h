/* status.h: the HTTP status of an error code, in one table (Vault's choices, and rekey's for
 * what Vault has no code for), so the server core, the Vault-compatible routes and rekey's own
 * routes answer a code alike. Every RK_E* code has a row chosen on purpose: a code added to
 * util/err.h without a row here fails tests/unit/test_status.c until it gets one.
 *
 *   400 bad input: RK_EINVAL, RK_EEXISTS, RK_ECONFLICT (Vault answers a check-and-set mismatch
 *       400), RK_EBADKEY (Vault answers a wrong unseal key 400)
 *   403 RK_EPERM          404 RK_ENOTFOUND
 *   409 RK_EBUSY (another holder has the lock), RK_EACTION (a person must act first)
 *   413 RK_ELIMIT (too large: the body, a value, a definition)
 *   500 RK_EINTERNAL, RK_ENOMEM, RK_EIO, RK_ECORRUPT, RK_EVERSION, RK_ECONFIG
 *   501 RK_ENOTIMPL       502 RK_EHOOK, RK_EREJECTED (the target refused the value)
 *   503 RK_ESEALED, RK_EUNAVAILABLE (the target did not answer), RK_ECANCELED (stopping)
 *   504 RK_ETIMEOUT
 * 405 (a known route, another method) and 429 (throttled authentication) have no code: the
 * server core answers them before a handler runs. */
#ifndef REKEY_API_STATUS_H
#define REKEY_API_STATUS_H

/* The status for rc (0, a negative -RK_E* or a positive RK_E*): 200 for 0, the table's row
 * otherwise; a code without a row (never in a tested build) and an unknown number give 500. */
unsigned api_status_for(int rc);

/* 1 when rc has a row of its own in the table (tests enumerate every code with it), else 0. */
int api_status_mapped(int rc);

#endif
