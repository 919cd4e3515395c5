#include "util/parse.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
duration_parse(const char *s, size_t len, int64_t *secs, struct rk_error *err)
{
    int64_t total = 0;
    size_t i = 0;
    int nparts = 0;

    if (len == 0)
        return rk_error_set(err, RK_EINVAL, "empty duration (expected e.g. 90d, 24h, 30m, 45s)");
    while (i < len) {
        int64_t n = 0, mul;
        size_t start = i;

        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (n > (INT64_MAX - 9) / 10)
                return rk_error_set(err, RK_EINVAL, "duration '%.*s' is too large", (int)len, s);
            n = n * 10 + (s[i] - '0');
            i++;
        }
        if (i == start)
            return rk_error_set(err, RK_EINVAL,
                                "bad duration '%.*s': expected a number at position %zu "
                                "(e.g. 90d, 24h, 1h30m)",
                                (int)(len > 64 ? 64 : len), s, start + 1);
        if (i == len) {
            if (nparts > 0)
                return rk_error_set(err, RK_EINVAL,
                                    "bad duration '%.*s': missing unit after the last number",
                                    (int)(len > 64 ? 64 : len), s);
            mul = 1; /* plain seconds */
        } else {
            switch (s[i]) {
            case 's': mul = 1; break;
            case 'm': mul = 60; break;
            case 'h': mul = 3600; break;
            case 'd': mul = 86400; break;
            case 'w': mul = 7 * 86400; break;
            default:
                return rk_error_set(
                    err, RK_EINVAL, "bad duration '%.*s': unknown unit '%c' (use s, m, h, d or w)",
                    (int)(len > 64 ? 64 : len), s, (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?');
            }
            i++;
        }
        if (n > (INT64_MAX / mul) || total > INT64_MAX - n * mul)
            return rk_error_set(err, RK_EINVAL, "duration '%.*s' is too large",
                                (int)(len > 64 ? 64 : len), s);
        total += n * mul;
        nparts++;
    }
    *secs = total;
    return 0;
}

void
duration_format(int64_t secs, char *out, size_t outlen)
{
    static const struct {
        char u;
        int64_t m;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    size_t off = 0;

    if (secs <= 0) {
        snprintf(out, outlen, "0s");
        return;
    }
    out[0] = '\0';
    for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
        if (secs >= units[k].m) {
            int w = snprintf(out + off, outlen - off, "%lld%c", (long long)(secs / units[k].m),
                             units[k].u);
            if (w < 0 || (size_t)w >= outlen - off)
                return;
            off += (size_t)w;
            secs %= units[k].m;
        }
    }
}

int
path_validate(const char *p, size_t len, struct rk_error *err)
{
    size_t seg = 0;

    if (len == 0)
        return rk_error_set(err, RK_EINVAL, "empty path");
    if (len > PATH_MAX_LEN)
        return rk_error_set(err, RK_EINVAL, "path is %zu bytes long; the limit is %d", len,
                            PATH_MAX_LEN);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\0')
            return rk_error_set(err, RK_EINVAL, "path contains a NUL byte at position %zu", i + 1);
        if (c <= 0x20 || c >= 0x7f)
            return rk_error_set(
                err, RK_EINVAL,
                "path contains a space or non-printable byte 0x%02x at position %zu", c, i + 1);
    }
    if (p[0] == '/')
        return rk_error_set(err, RK_EINVAL, "path must not start with '/'");
    if (p[len - 1] == '/')
        return rk_error_set(err, RK_EINVAL, "path must not end with '/'");
    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '/') {
            size_t n = i - seg;
            if (n == 0)
                return rk_error_set(err, RK_EINVAL, "path has an empty segment at position %zu",
                                    i + 1);
            if ((n == 1 && p[seg] == '.') || (n == 2 && p[seg] == '.' && p[seg + 1] == '.'))
                return rk_error_set(err, RK_EINVAL, "path must not contain '.' or '..' segments");
            seg = i + 1;
        }
    }
    return 0;
}

int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

size_t
utf8_seq(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        len = 2, cp = s[0] & 0x1Fu;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        len = 3, cp = s[0] & 0x0Fu;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        len = 4, cp = s[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int
utf8_valid(const unsigned char *s, size_t n)
{
    size_t k;

    for (size_t i = 0; i < n; i += k)
        if ((k = utf8_seq(s + i, n - i)) == 0)
            return 0;
    return 1;
}

void
utf8_trim_tail(char *s)
{
    size_t n = strlen(s), start = n;

    /* The last character starts at most 3 bytes before the end, at a non-continuation byte. */
    while (start > 0 && n - start < 4 && ((unsigned char)s[start - 1] & 0xC0) == 0x80)
        start--;
    if (start == 0 || ((unsigned char)s[start - 1] & 0x80) == 0)
        return;
    start--; /* the lead byte of the last character */
    if (utf8_seq((const unsigned char *)s + start, n - start) != n - start)
        s[start] = '\0';
}
