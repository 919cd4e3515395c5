/* err.h: error codes and the caller-owned error buffer (OpenSSH ssherr + curl errbuf style). */
#ifndef REKEY_ERR_H
#define REKEY_ERR_H

#include <stddef.h>
#include <stdint.h>

/* Functions return 0 or a negative RK_E* code; the human message goes into struct rk_error. */
enum rk_code {
    RK_OK = 0,
    RK_EINTERNAL = 1, /* a bug or an unexpected library failure */
    RK_ENOMEM,        /* out of memory */
    RK_EINVAL,        /* bad input from a user or client */
    RK_ENOTFOUND,     /* no such key, path, version or entry */
    RK_EEXISTS,       /* already exists */
    RK_ECONFLICT,     /* check-and-set or revision compare failed */
    RK_EIO,           /* a read, write or fsync failed */
    RK_ESEALED,       /* the store is sealed */
    RK_EBADKEY,       /* wrong root key, share or key file */
    RK_ECORRUPT,      /* stored data fails authentication or does not parse */
    RK_EVERSION,      /* data written by a newer format version */
    RK_EBUSY,         /* locked by another holder */
    RK_EPERM,         /* permission denied */
    RK_ENOTIMPL,      /* kind or feature not implemented yet */
    RK_ETIMEOUT,      /* an operation timed out */
    RK_EHOOK,         /* a hook or a check failed */
    RK_ECONFIG,       /* the configuration is invalid */
    RK_ECANCELED,     /* stopped by the user or a signal */
    RK_ELIMIT,        /* a size or count limit was exceeded */
    RK_EREJECTED,     /* a target refused a value (wrong or revoked): the candidate is undone */
    RK_EUNAVAILABLE,  /* a target did not answer (timeout, refused connection, 429, 5xx): the
                       * candidate stays pending and is tried again */
    RK_EACTION,       /* a person must act (retire an old key at a provider's console): a
                       * rotator's retire says so; the engine opens an action-required item */
    RK_ECODE_MAX
};

#define RK_ERRMSG_MAX 512

struct rk_error {
    int code;                /* positive rk_code, or 0 */
    char msg[RK_ERRMSG_MAX]; /* never contains a secret value */
    int64_t retry_after_s;   /* > 0: the target asked not to be tried again before this many
                              * seconds (HTTP Retry-After with RK_EUNAVAILABLE); 0: no word */
};

/* Records code and a formatted message in err (err may be NULL). Returns -code, so callers can
 * write `return rk_error_set(err, RK_EINVAL, "...")`. The message must never hold a secret. */
int rk_error_set(struct rk_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the current message with a context ("opening store: <old msg>"). Returns -err->code. */
int rk_error_prefix(struct rk_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears err. */
void rk_error_clear(struct rk_error *err);

/* A short constant name for a code ("not found"); accepts positive or negative codes. */
const char *rk_strerror(int code);

#endif
