#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int level = -1;

static const char *const names[] = {"error", "warn", "info", "debug"};

void
log_set_level(enum log_level lvl)
{
    level = (int)lvl;
}

static int
current_level(void)
{
    if (level < 0) {
        const char *e = getenv("REKEY_LOG");
        level = LOG_INFO;
        for (int i = 0; e != NULL && i < 4; i++)
            if (strcasecmp(e, names[i]) == 0)
                level = i;
    }
    return level;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
    char line[2048];
    struct tm tm;
    time_t now = time(NULL);
    size_t off;
    va_list ap;

    if ((int)lvl > current_level())
        return;
    gmtime_r(&now, &tm);
    off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    off += (size_t)snprintf(line + off, sizeof(line) - off, "%-5s ", names[lvl]);
    va_start(ap, fmt);
    vsnprintf(line + off, sizeof(line) - off, fmt, ap);
    va_end(ap);
    off = strnlen(line, sizeof(line) - 2);
    line[off++] = '\n';
    (void)!write(STDERR_FILENO, line, off);
}
