/* log.h: one-line event logging to stderr. Never pass a secret value; use fingerprints. */
#ifndef REKEY_LOG_H
#define REKEY_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the minimum level printed (default LOG_INFO; REKEY_LOG=debug|info|warn|error overrides). */
void log_set_level(enum log_level lvl);

/* Prints "2026-11-27T04:05:06Z level message" to stderr in one write(2). */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
