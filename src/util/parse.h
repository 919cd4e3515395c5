/* parse.h: parsers for the small grammars users type: durations and secret paths. */
#ifndef REKEY_PARSE_H
#define REKEY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PATH_MAX_LEN 512

/* Parses a duration such as "90d", "24h", "168h", "1h30m", "45s", "2w" or a plain number of
 * seconds into *secs. Units: s, m, h, d, w. Returns 0 or -RK_EINVAL (message in err). */
int duration_parse(const char *s, size_t len, int64_t *secs, struct rk_error *err);

/* Formats secs as the shortest exact form ("90d", "1h30m", "0s") into out. */
void duration_format(int64_t secs, char *out, size_t outlen);

/* Checks a secret path: 1..512 bytes, printable ASCII without spaces, segments separated by one
 * '/', no empty segment, no leading or trailing '/', no "." or ".." segment.
 * Returns 0 or -RK_EINVAL with the reason in err. */
int path_validate(const char *p, size_t len, struct rk_error *err);

/* strtoll with full checks: the whole string, base 10, within [min,max]. Returns 0 or -1. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
