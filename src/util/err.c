#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[RK_ECODE_MAX] = {
    [RK_OK] = "ok",
    [RK_EINTERNAL] = "internal error",
    [RK_ENOMEM] = "out of memory",
    [RK_EINVAL] = "invalid input",
    [RK_ENOTFOUND] = "not found",
    [RK_EEXISTS] = "already exists",
    [RK_ECONFLICT] = "conflict",
    [RK_EIO] = "I/O error",
    [RK_ESEALED] = "sealed",
    [RK_EBADKEY] = "wrong key",
    [RK_ECORRUPT] = "corrupt data",
    [RK_EVERSION] = "unsupported format version",
    [RK_EBUSY] = "busy",
    [RK_EPERM] = "permission denied",
    [RK_ENOTIMPL] = "not implemented",
    [RK_ETIMEOUT] = "timed out",
    [RK_EHOOK] = "hook failed",
    [RK_ECONFIG] = "invalid configuration",
    [RK_ECANCELED] = "canceled",
    [RK_ELIMIT] = "limit exceeded",
    [RK_EREJECTED] = "rejected by the target",
    [RK_EUNAVAILABLE] = "target unavailable",
    [RK_EACTION] = "a person must act",
};

const char *
rk_strerror(int code)
{
    if (code < 0)
        code = -code;
    if (code >= RK_ECODE_MAX || names[code] == NULL)
        return "unknown error";
    return names[code];
}

int
rk_error_set(struct rk_error *err, int code, const char *fmt, ...)
{
    if (code < 0)
        code = -code;
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -code;
}

int
rk_error_prefix(struct rk_error *err, const char *fmt, ...)
{
    char pre[RK_ERRMSG_MAX], old[RK_ERRMSG_MAX];
    va_list ap;

    if (err == NULL)
        return -RK_EINTERNAL;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    snprintf(err->msg, sizeof(err->msg), "%s: %s", pre, old);
    return -(err->code ? err->code : RK_EINTERNAL);
}

void
rk_error_clear(struct rk_error *err)
{
    if (err != NULL) {
        err->code = 0;
        err->msg[0] = '\0';
        err->retry_after_s = 0;
    }
}
