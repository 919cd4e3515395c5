/* logstore.h: the log-structured backend ("log:PATH"), for write-heavy stores. Most callers go
 * through backend_open; this header is for tests, benchmarks and the fault-injecting open. */
#ifndef REKEY_STORE_LOGSTORE_H
#define REKEY_STORE_LOGSTORE_H

#include <stdint.h>

#include "util/err.h"
#include "store/backend.h"

extern const struct backend_ops log_backend_ops;

/* Opens (creating with mode 0600 if missing) the log store at path, repairing the torn tail a
 * crash can leave. When fail_fsync_nth > 0 the fail_fsync_nth-th fsync after the open fails as
 * if the disk had failed it. Returns 0, -RK_ECORRUPT (not a log store, or damaged: committed
 * data is missing or does not check), -RK_EVERSION (newer format), -RK_EINVAL, -RK_EIO,
 * -RK_ENOMEM. *out is closed with backend_close. */
int logstore_open_ex(const char *path, uint64_t fail_fsync_nth, struct backend **out,
                     struct rk_error *err);

struct logstore_stats {
    uint64_t commits, txns; /* group commit: batches and the transactions in them */
    uint64_t compactions;
    uint64_t live_bytes, dead_bytes; /* record bytes still current / superseded or deleted */
    uint64_t end;                    /* where the next record goes */
    uint64_t keys;
};

/* Counters of a log backend; all zero when b is not one. */
void logstore_backend_stats(struct backend *b, struct logstore_stats *st);

/* Compacts now (tests): rewrites the live entries into a new file. Returns 0 or -RK_E*. */
int logstore_compact(struct backend *b, struct rk_error *err);

#endif
