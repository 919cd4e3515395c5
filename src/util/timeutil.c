#include "util/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/parse.h"
#include "util/testsw.h"

int64_t
time_now(void)
{
    return time_now_us() / 1000000;
}

int64_t
time_now_us(void)
{
    struct timespec ts;
    const char *fake = test_switch("REKEY_NOW");
    int64_t v;

    if (fake != NULL && parse_int64(fake, 0, INT64_MAX / 1000000, &v) == 0)
        return v * 1000000;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
time_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
time_format_rfc3339(int64_t us, char *out, size_t outlen)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    size_t n;

    gmtime_r(&t, &tm);
    n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    if (us % 1000000 != 0)
        snprintf(out + n, outlen - n, ".%06lldZ", (long long)(us % 1000000));
    else
        snprintf(out + n, outlen - n, "Z");
}

int
time_parse_rfc3339(const char *s, int64_t *us)
{
    struct tm tm;
    const char *p;
    int64_t frac = 0, scale = 1000000;

    memset(&tm, 0, sizeof(tm));
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
            p++;
        }
    }
    if (strcmp(p, "Z") != 0)
        return -1;
    *us = (int64_t)timegm(&tm) * 1000000 + frac;
    return 0;
}
