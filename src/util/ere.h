/* ere.h: the one check of the POSIX extended regular expressions a configuration holds (a
 * manual or provider-key `pattern`), used by the loader, lint and the rotators alike. */
#ifndef REKEY_UTIL_ERE_H
#define REKEY_UTIL_ERE_H

#include <regex.h>

#include "util/err.h"

#define ERE_MAX_LEN 512

/* Compiles pattern as a POSIX ERE (REG_EXTENDED | REG_NOSUB) into *re (regfree it). Refused
 * before regcomp: patterns over ERE_MAX_LEN bytes and stacked repetitions such as "a++" (undefined
 * in POSIX ERE; glibc's regcomp can take gigabytes on them). Returns 0, or -RK_ECONFIG with
 * the reason in err ("bad regular expression: …", "repeated repetition operator at position
 * 4…"); *re is then not to be freed. */
int ere_compile(const char *pattern, regex_t *re, struct rk_error *err);

/* ere_compile without keeping the result. Returns 0 or -RK_ECONFIG. */
int ere_check(const char *pattern, struct rk_error *err);

#endif
