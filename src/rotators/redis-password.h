/* redis-password.h: the pieces of kind "redis-password" (rotators/redis-password.c) that its
 * unit test calls directly: how a command is built (values go to Redis as RESP bulk strings,
 * length-prefixed arguments, never formatted into a command line), how an address is read,
 * and how a Redis error reply is made safe to show. The kind itself is a row of the registry
 * (rotator_redis_password). */
#ifndef REKEY_ROTATORS_REDIS_PASSWORD_H
#define REKEY_ROTATORS_REDIS_PASSWORD_H

#include <stddef.h>

#include "util/err.h"
#include "util/secret.h"

#define REDIS_HOST_MAX 256 /* bytes of a host name or address, with its NUL */
#define REDIS_NODES_MAX 16 /* nodes of one entry (`addresses`) */

/* Builds the RESP array of argc bulk strings argv[i][0..lens[i]) ("*N\r\n$L\r\narg\r\n…"), the
 * form in which a client sends a command, into *out (secure heap: an argument may be a
 * password; the caller frees it with secret_free, which wipes it). Every byte of an argument
 * is allowed (spaces, CR, LF, NUL): the length says where it ends. argc is 1..16. Returns 0,
 * -RK_EINVAL (argc out of range, an argument NULL with a length) or -RK_ENOMEM. */
int redis_resp_command(size_t argc, const void *const *argv, const size_t *lens,
                       struct secret **out, struct rk_error *err);

/* Reads one node address text[0..len): "host:port", "[v6addr]:port", or "host" (port 6379).
 * host gets the name or address without brackets (NUL-terminated, at most REDIS_HOST_MAX - 1
 * bytes of [A-Za-z0-9.-_:]), *port 1..65535. Returns 0 or -RK_ECONFIG with what was expected in
 * err. */
int redis_address_parse(const char *text, size_t len, char *host, size_t hostlen, int *port,
                        struct rk_error *err);

/* Writes the message of a Redis error reply msg[0..len) into buf[0..buflen) as it may be shown
 * and logged: printable ASCII only (other bytes become '?'), a quoted part ('…', where Redis
 * repeats an argument such as "modifier '>…'") replaced by '…', cut to fit. Each hide[i]
 * (nhide of them; NULL entries skipped) is a value that must never be shown: when one still
 * occurs in msg the whole message after its first word ("ERR", "WRONGPASS") is withheld. */
void redis_error_text(const char *msg, size_t len, const struct secret *const *hide, size_t nhide,
                      char *buf, size_t buflen);

#endif
