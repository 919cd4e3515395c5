/* query.h: searching audit files (`rekey audit`) without parsing the lines that do not match.
 *
 * An incident asks "who touched this path", "what failed", "what did this identity do" over
 * logs of gigabytes. The chain format (chain.h, audit.c) writes its members in a fixed order
 * and spelling, so each filter is a byte pattern: the scan looks for the most selective one
 * with memmem over large blocks, checks the others on the line it lands in, compares the time
 * at its fixed offset as a string, and only a line that matches is handed on (to be parsed, or
 * copied as it is for --json). */
#ifndef REKEY_AUDIT_QUERY_H
#define REKEY_AUDIT_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "audit/chain.h"
#include "util/err.h"

#define AUDIT_NEEDLE_MAX 1024

struct audit_query {
    /* filters (NULL / 0 / "": none) */
    const char *path;  /* a prefix of the path; "secret/x" also finds the API's secret/data/x,
                        * secret/metadata/x…, and rekey/rotate/secret/x… */
    const char *actor; /* the actor exactly, or an "hmac-sha256:…" accessor */
    const char *op;    /* the operation exactly ("read", "update", "kv put", "rotate") */
    int errors;        /* only lines with an error */
    char since[AUDIT_TIME_LEN + 1]; /* inclusive */
    char until[AUDIT_TIME_LEN + 1]; /* exclusive */

    /* prepared by audit_query_prepare */
    char n_path[AUDIT_NEEDLE_MAX], n_actor[AUDIT_NEEDLE_MAX], n_op[AUDIT_NEEDLE_MAX];
    size_t l_path, l_actor, l_op;
    char path_esc[AUDIT_NEEDLE_MAX]; /* the prefix as it is written in a line */
    size_t l_path_esc;
};

/* Checks the filters and builds the byte patterns. Returns 0 or -RK_EINVAL (a filter too long
 * or not UTF-8). */
int audit_query_prepare(struct audit_query *q, struct rk_error *err);

/* Called with each matching line (without its newline; not NUL-terminated). A non-zero return
 * stops the scan and is returned. */
typedef int (*audit_match_fn)(void *arg, const char *line, size_t len);

/* Scans the file open at fd to its end, calling fn for each line that matches q (header
 * records never do). *bytes (may be NULL) gets the bytes read. Returns 0, -RK_EIO, -RK_ENOMEM
 * or fn's value. */
int audit_query_fd(const struct audit_query *q, int fd, audit_match_fn fn, void *arg,
                   uint64_t *bytes, struct rk_error *err);

/* Scans whole lines in buf[0..len) (a last line may lack its newline) as audit_query_fd does.
 * Returns 0 or fn's value. */
int audit_query_buf(const struct audit_query *q, const char *buf, size_t len, audit_match_fn fn,
                    void *arg);

/* 1 when the line matches q (the slow path of audit_query_fd, for tests). */
int audit_query_match(const struct audit_query *q, const char *line, size_t len);

/* Parses a --since/--until value: an RFC 3339 time ("2026-12-06T15:00:00Z", a fraction
 * allowed), a date ("2026-12-06", midnight UTC) or a duration back from now_us ("90m", "2d")
 * into the chain's time form. Returns 0 or -RK_EINVAL. */
int audit_time_arg(const char *s, int64_t now_us, char out[AUDIT_TIME_LEN + 1],
                   struct rk_error *err);

#endif
