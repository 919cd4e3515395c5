/* sqlite.h: the embedded SQLite backend (the default). Most callers go through backend_open;
 * this header is for tests, benchmarks and the fault-injecting open. */
#ifndef REKEY_STORE_SQLITE_H
#define REKEY_STORE_SQLITE_H

#include <stdint.h>

#include "util/err.h"
#include "store/backend.h"

extern const struct backend_ops sqlite_backend_ops;

/* Opens (creating with mode 0600 if missing) the SQLite store at path. When fail_fsync_nth > 0
 * the database goes through a fault-injecting VFS that fails the fail_fsync_nth-th fsync issued
 * after the open completed (SQLITE_IOERR_FSYNC). Returns 0, -RK_ECORRUPT (not an SQLite
 * database, truncated, or not a rekey store), -RK_EVERSION (newer schema), -RK_EINVAL, -RK_EIO.
 * *out is closed with backend_close. */
int sqlite_backend_open_ex(const char *path, uint64_t fail_fsync_nth, struct backend **out,
                           struct rk_error *err);

/* Group-commit counters of an SQLite backend: *commits = SQLite transactions committed,
 * *txns = caller transactions (txn/put/del) committed in them. Both 0 if b is not sqlite. */
void sqlite_backend_stats(struct backend *b, uint64_t *commits, uint64_t *txns);

/* The read cache's counters (sqcache.h); all zero when b has no cache or is not sqlite. The
 * cache's budget is $REKEY_STORE_CACHE MiB when set (0: no cache), else 64 MiB. */
struct sqcache_stats;
void sqlite_backend_cache_stats(struct backend *b, struct sqcache_stats *st);

#endif
