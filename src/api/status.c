/* status.c: error code -> HTTP status, one row per code (see status.h for why each). A table,
 * not a switch with a default: a code without a row stays 0 here, which api_status_mapped
 * reports and the unit test catches, instead of falling silently into 500. */
#include "api/status.h"

#include "util/err.h"

static const unsigned short status_of[RK_ECODE_MAX] = {
    [RK_OK] = 200,
    [RK_EINTERNAL] = 500,
    [RK_ENOMEM] = 500,
    [RK_EINVAL] = 400,
    [RK_ENOTFOUND] = 404,
    [RK_EEXISTS] = 400,   /* Vault: "already exists" is a bad request */
    [RK_ECONFLICT] = 400, /* Vault: "check-and-set parameter did not match" */
    [RK_EIO] = 500,
    [RK_ESEALED] = 503,
    [RK_EBADKEY] = 400, /* Vault: a wrong unseal key */
    [RK_ECORRUPT] = 500,
    [RK_EVERSION] = 500,
    [RK_EBUSY] = 409, /* another rotation holds the lock: retry (rotate --wait does) */
    [RK_EPERM] = 403,
    [RK_ENOTIMPL] = 501,
    [RK_ETIMEOUT] = 504,
    [RK_EHOOK] = 502,
    [RK_ECONFIG] = 500,   /* the server's own configuration, not the request */
    [RK_ECANCELED] = 503, /* stopping */
    [RK_ELIMIT] = 413,
    [RK_EREJECTED] = 502,
    [RK_EUNAVAILABLE] = 503,
    [RK_EACTION] = 409, /* a person must act first (the engine makes it an action item) */
};

static unsigned
row(int rc)
{
    long code = rc < 0 ? -(long)rc : rc; /* -INT_MIN does not fit an int */

    if (code >= RK_ECODE_MAX)
        return 0;
    return status_of[code];
}

unsigned
api_status_for(int rc)
{
    unsigned s = row(rc);

    return s != 0 ? s : 500;
}

int
api_status_mapped(int rc)
{
    return row(rc) != 0;
}
