/* ere.c: checking and compiling the configuration's regular expressions (ere.h). */
#include "util/ere.h"

#include <string.h>

/* glibc's regcomp can take gigabytes for stacked repetitions such as "x++++…" (undefined in
 * POSIX ERE anyway; found by fuzz/config-fuzzer): refuse them, and over-long patterns. Returns
 * the 1-based position of the problem, or 0. */
static size_t
ere_unsafe(const char *re)
{
    size_t n = strlen(re);
    int after_quant = 0;

    if (n > ERE_MAX_LEN)
        return ERE_MAX_LEN + 1;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\') {
            i++;
            after_quant = 0;
        } else if (c == '[') {
            size_t j = i + 1;
            if (j < n && re[j] == '^')
                j++;
            if (j < n && re[j] == ']')
                j++;
            while (j < n && re[j] != ']')
                j++;
            i = j;
            after_quant = 0;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (after_quant)
                return i + 1;
            if (c == '{')
                while (i < n && re[i] != '}')
                    i++;
            after_quant = 1;
        } else {
            after_quant = 0;
        }
    }
    return 0;
}

int
ere_compile(const char *pattern, regex_t *re, struct rk_error *err)
{
    size_t bad;
    int rc;

    if (pattern == NULL || pattern[0] == '\0')
        return rk_error_set(err, RK_ECONFIG, "expected a non-empty POSIX ERE");
    if ((bad = ere_unsafe(pattern)) > ERE_MAX_LEN)
        return rk_error_set(err, RK_ECONFIG, "pattern longer than %d bytes", ERE_MAX_LEN);
    if (bad != 0)
        return rk_error_set(err, RK_ECONFIG,
                            "repeated repetition operator at position %zu (e.g. 'a++'); "
                            "expected a POSIX ERE",
                            bad);
    rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, re, why, sizeof(why));
        return rk_error_set(err, RK_ECONFIG, "bad regular expression: %s (expected POSIX ERE)",
                            why);
    }
    return 0;
}

int
ere_check(const char *pattern, struct rk_error *err)
{
    regex_t re;
    int r;

    if ((r = ere_compile(pattern, &re, err)) != 0)
        return r;
    regfree(&re);
    return 0;
}
