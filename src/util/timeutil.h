/* timeutil.h: wall-clock and monotonic time, RFC 3339 formatting. */
#ifndef REKEY_TIMEUTIL_H
#define REKEY_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Seconds since the epoch. REKEY_NOW (an epoch number; a test switch, util/testsw.h) overrides it
 * so schedules can be tested without waiting. */
int64_t time_now(void);

/* Microseconds since the epoch (wall clock), for metadata timestamps. */
int64_t time_now_us(void);

/* Monotonic milliseconds, for timeouts. */
int64_t time_mono_ms(void);

/* "2026-11-27T04:05:06Z" (or with ".123456Z" when us is not a whole second) into out (>= 32). */
void time_format_rfc3339(int64_t us, char *out, size_t outlen);

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac]Z" into microseconds. Returns 0 or -1. */
int time_parse_rfc3339(const char *s, int64_t *us);

#endif
