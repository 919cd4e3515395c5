/* leases.h: the lease manager: every credential rekey issues with a lease (database/creds/:role)
 * has a record here, kept in the barrier at "lease/<id>" and, while the store is unsealed, in
 * memory: a hash table by id and a min-heap of expiries (engine/timerheap.h). The records are
 * read once, when the manager's thread starts (leases_start), never scanned per request or per
 * tick.
 *
 * A lease's record holds what its revocation needs (the database config's name, the role's
 * name, the login's name) and never a password; memory holds less (no login name, no last
 * error: about 90 bytes a lease, leases.c). The record is written BEFORE the login is made, as
 * an intent (leases_add with pending set, then the creation, then leases_confirm), so a crash
 * between the two leaves a pending record, which the next load revokes at once (a missing
 * login counts as dropped): no orphan login and no lease nobody holds the password of.
 *
 * Expiry: the thread pops due leases and hands them, in batches, to a pool of worker threads
 * that revoke them through ops->revoke, without the manager's lock, and delete the revoked
 * ones' records in one store transaction per batch. A failed revocation is retried with backoff
 * (util/backoff.h); after LEASE_MAX_FAILURES it is marked irrevocable: kept in the store and in
 * memory, shown by lookup (irrevocable, last_error), logged, taken out of the heap, and tried again
 * only on command (leases_revoke, revoke-prefix, revoke-force). Nothing loops silently and no
 * record is dropped unless its revocation worked or revoke-force was asked.
 *
 * Thread-safety: every function may be called from any thread once leases_open returned. */
#ifndef REKEY_SECRETS_LEASES_H
#define REKEY_SECRETS_LEASES_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct barrier;
struct leases;

#define LEASE_ID_MAX 320
#define LEASE_NAME_MAX 128
#define LEASE_MAX_FAILURES 6
#define LEASE_SYS_MAX_TTL (768 * 3600) /* Vault's default max_lease_ttl */

/* What a caller sees of a lease (copied out under the lock). */
struct lease_info {
    char id[LEASE_ID_MAX + 1];     /* "database/creds/<role>/<random>" */
    char db[LEASE_NAME_MAX + 1];   /* the database config's name */
    char role[LEASE_NAME_MAX + 1]; /* the role's name */
    char username[64];             /* the login's name (not a secret) */
    char accessor[64];             /* the issuing token's accessor, "" when none */
    int64_t issued, expires, max_expires, last_renewal; /* unix seconds; last_renewal 0: never */
    int failures;                                       /* revocations that failed in a row */
    int irrevocable;                                    /* 1 after LEASE_MAX_FAILURES failures */
    char last_error[200]; /* the last revocation's failure, "" when none */
    int pending;          /* 1: written before its credential was made, not confirmed yet */
};

/* What the manager calls to act on the credential of a lease. Both run without the manager's
 * lock, maybe in the manager's thread. revoke: drop the credential (0 also when it is gone
 * already); renew: move its expiry to expires. Return 0 or -RK_E* with err set. */
struct lease_ops {
    int (*revoke)(void *ctx, const struct lease_info *l, struct rk_error *err);
    int (*renew)(void *ctx, const struct lease_info *l, int64_t expires, struct rk_error *err);
    void *ctx;
};

/* A manager on br (borrowed: it must outlive the manager) with ops (copied). Reads nothing yet:
 * the records are loaded by leases_load (leases_start calls it in its thread). Returns 0 or
 * -RK_ENOMEM. */
int leases_open(struct barrier *br, const struct lease_ops *ops, struct leases **out,
                struct rk_error *err);

/* Stops the thread (leases_stop) and frees the memory (the records stay in the store).
 * Accepts NULL. */
void leases_close(struct leases *m);

/* Reads every record under "lease/" into the table and the heap, once (a second call does
 * nothing). Callers of the other functions wait until it ended. Returns 0 or the store's
 * -RK_E*; a record that does not parse is logged and skipped (left in the store). */
int leases_load(struct leases *m, struct rk_error *err);

/* Starts the expiry thread, which first loads the records (leases_load). Returns 0 or
 * -RK_EINTERNAL. leases_stop asks it to end and waits; both are idempotent. */
int leases_start(struct leases *m, struct rk_error *err);
void leases_stop(struct leases *m);

/* Adds and stores a lease (l->id unique, its last segment under 32 bytes; failures and
 * irrevocable ignored; pending kept). Returns 0, -RK_EEXISTS, -RK_EINVAL (the id does not
 * fit), -RK_ENOMEM or the store's -RK_E*. */
int leases_add(struct leases *m, const struct lease_info *l, struct rk_error *err);

/* Clears the pending mark of lease l (added pending) once its credential exists: rewrites its
 * record from l. Returns 0 or the store's -RK_E*. */
int leases_confirm(struct leases *m, const struct lease_info *l, struct rk_error *err);

/* Removes a lease and its record without revoking (a creation that failed and cleaned up
 * after itself). Returns 0 or -RK_ENOTFOUND / the store's -RK_E*. */
int leases_forget(struct leases *m, const char *id, struct rk_error *err);

/* Copies lease id into *out. Returns 0 or -RK_ENOTFOUND. */
int leases_lookup(struct leases *m, const char *id, struct lease_info *out, struct rk_error *err);

/* Renews lease id: the new expiry is now + increment (increment <= 0: the lease's first
 * duration, issued..expires at issue... kept as its default_ttl argument), capped at the
 * lease's max_expires and at now + sys_max (<= 0: LEASE_SYS_MAX_TTL); ops->renew moves the
 * credential's expiry, then the record and the heap follow. *out gets the lease after.
 * Returns 0, -RK_ENOTFOUND, -RK_EINVAL (irrevocable or being revoked), or ops->renew's error
 * (the lease is unchanged). */
int leases_renew(struct leases *m, const char *id, int64_t increment, int64_t default_ttl,
                 int64_t sys_max, int64_t now, struct lease_info *out, struct rk_error *err);

/* Revokes lease id now (also an irrevocable one: this is the command that retries it).
 * force: the record goes even when the revocation failed (logged with the login's name, for a
 * person to drop by hand). Returns 0, -RK_ENOTFOUND, -RK_EBUSY (being revoked by another
 * caller), or the revocation's error (not force: the lease stays, its failure counted). */
int leases_revoke(struct leases *m, const char *id, int force, struct rk_error *err);

/* Revokes every lease whose id starts with prefix ("" is refused: -RK_EINVAL). *nrevoked and
 * *nfailed (may be NULL) count them. Returns 0 when none failed, else the last failure's
 * error (the failed ones stay, scheduled for a retry). */
int leases_revoke_prefix(struct leases *m, const char *prefix, int force, size_t *nrevoked,
                         size_t *nfailed, struct rk_error *err);

/* Revokes every lease issued to the token with accessor (its revocation), in the workers
 * (without them: now, in the caller). Returns how many were taken; failures are retried as
 * for an expiry. */
size_t leases_revoke_accessor(struct leases *m, const char *accessor);

/* The JSON text of a lease record ("lease/<id>") into *out (free). For tools that write
 * records in bulk (bench/). Returns 0 or -RK_ENOMEM. */
int leases_record_encode(const struct lease_info *l, char **out);

/* Calls cb for each lease whose id starts with prefix, in no particular order, under the lock
 * (cb must not call back into the manager). username and last_error are "" (only the record
 * holds them: leases_lookup reads it). cb returns 0 to go on, non-zero to stop. */
int leases_each(struct leases *m, const char *prefix,
                int (*cb)(void *arg, const struct lease_info *l), void *arg);

/* Number of leases, and of irrevocable ones. */
void leases_count(struct leases *m, size_t *total, size_t *irrevocable);

#endif
