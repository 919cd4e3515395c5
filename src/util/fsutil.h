/* fsutil.h: file helpers that do not lose data on a crash. */
#ifndef REKEY_FSUTIL_H
#define REKEY_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/* Writes buf to path atomically: a temporary file in the same directory created with mode,
 * written, fsynced, renamed over path, then the directory fsynced. Returns 0 or -RK_EIO. */
int fs_write_atomic(const char *path, const void *buf, size_t len, mode_t mode,
                    struct rk_error *err);

/* Reads a whole file (at most maxlen bytes) into a malloc'd NUL-terminated buffer.
 * Returns 0, -RK_ENOTFOUND, -RK_ELIMIT or -RK_EIO. The caller frees *out (freezero for secrets). */
int fs_read_all(const char *path, size_t maxlen, char **out, size_t *outlen, struct rk_error *err);

/* fsyncs the directory containing path. Returns 0 or -RK_EIO. */
int fs_sync_dir_of(const char *path, struct rk_error *err);

#endif
