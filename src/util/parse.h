/* parse.h: parsers for the small grammars users type: durations and secret paths. */
#ifndef REKEY_PARSE_H
#define REKEY_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

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

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), 0 if invalid. The rules are
 * jansson's (no overlong forms, no surrogates, nothing above U+10FFFF), so text that passes
 * survives a JSON round trip. */
size_t utf8_seq(const unsigned char *s, size_t n);

/* 1 when the n bytes at s are valid UTF-8 (as utf8_seq), else 0. */
int utf8_valid(const unsigned char *s, size_t n);

/* Cuts the NUL-terminated UTF-8 string s (which snprintf may have cut anywhere) back to its
 * last whole character, so a truncated text stays valid UTF-8; invalid bytes before the end
 * are left for utf8_valid to refuse. */
void utf8_trim_tail(char *s);

/* strtoll with full checks: the whole string, base 10, within [min,max]. Returns 0 or -1. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
