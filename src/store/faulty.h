/* faulty.h: fault injection for the store (SQLite's test VFS, curl's torture tests).
 *
 * Always compiled; backend_open reads REKEY_FAULT only in a test build (util/testsw.h). Forms:
 *   "txn:N"   the Nth write call (txn, put or del) fails with -RK_EIO before writing
 *   "put:N"   the Nth put fails;  "del:N" the Nth del fails
 *   "get:N"   the Nth get fails;  "list:N" the Nth list fails
 *   "any:N"   the Nth call of any kind (get, list, put, del, txn) fails
 *   "fsync:N" the Nth fsync issued by SQLite after the open fails (SQLITE_IOERR_FSYNC), so the
 *             commit it belongs to fails and leaves the previous state (sqlite backend only)
 * Only the Nth call fails; the ones after it succeed again. N counts from 1. */
#ifndef REKEY_STORE_FAULTY_H
#define REKEY_STORE_FAULTY_H

#include <stdint.h>

#include "util/err.h"
#include "store/backend.h"

enum fault_kind {
    FAULT_NONE = 0,
    FAULT_TXN, /* txn, put and del */
    FAULT_PUT,
    FAULT_DEL,
    FAULT_GET,
    FAULT_LIST,
    FAULT_ANY,
    FAULT_FSYNC, /* handled by the SQLite VFS shim, not by the wrapper */
};

struct fault_spec {
    enum fault_kind kind;
    uint64_t nth;
};

extern const struct backend_ops faulty_backend_ops;

/* Parses a REKEY_FAULT value. NULL or "" gives FAULT_NONE. Returns 0 or -RK_EINVAL. */
int fault_spec_parse(const char *s, struct fault_spec *out, struct rk_error *err);

/* Wraps inner (taking ownership: closing the wrapper closes inner) in a backend that fails the
 * call spec selects. On error inner is closed. Returns 0, -RK_EINVAL, -RK_ENOMEM. */
int faulty_wrap(struct backend *inner, const struct fault_spec *spec, struct backend **out,
                struct rk_error *err);

/* The SQLite VFS shim: wraps the default VFS and fails the nth xSync after faulty_vfs_arm.
 * faulty_vfs_new registers it under a unique name (*name, owned by the shim). */
struct faulty_vfs;
int faulty_vfs_new(uint64_t nth, struct faulty_vfs **out, const char **name, struct rk_error *err);
void faulty_vfs_arm(struct faulty_vfs *fv);
/* Unregisters and frees; accepts NULL. Every connection using it must be closed first. */
void faulty_vfs_free(struct faulty_vfs *fv);

#endif
