/* log.h: one-line event logging to stderr. Never pass a secret value; use fingerprints.
 *
 * Every line is written by log_msg in one write(2), and the message is escaped there, so no
 * caller can break the one-event-one-line rule: a newline, carriage return or tab in a message
 * (from a token's display_name, a client's path, a hook's output) is written as \n, \r or \t;
 * any other C0 control character, DEL and the C1 controls U+0080..U+009F as \xNN (each byte of
 * their UTF-8 form). Other bytes, backslash included, are written as they are. */
#ifndef REKEY_LOG_H
#define REKEY_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the minimum level printed (default LOG_INFO; REKEY_LOG=debug|info|warn|error overrides). */
void log_set_level(enum log_level lvl);

/* Prints "2026-11-27T04:05:06Z level message" to stderr in one write(2), the message escaped as
 * above and cut (at a whole character or escape) past about 2 KiB. */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes s escaped as log_msg does into out[0..outlen) (outlen > 0), NUL-terminated, cut
 * before an escape that does not fit. Returns the length written. */
size_t log_escape(const char *s, char *out, size_t outlen);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
