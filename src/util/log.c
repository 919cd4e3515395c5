/* log.c: one-line event logging to stderr (see log.h). The escaping happens here, at the one
 * place a line is put together, so that a value a client chose (a display_name with a newline,
 * a path with an escape sequence) can neither forge a line nor drive the terminal of whoever
 * reads the log. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util/parse.h"

#define LOG_MSG_MAX 2048  /* the message before escaping */
#define LOG_LINE_MAX 4096 /* the line written: prefix, escaped message, newline */

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

/* The length of the UTF-8 sequence led by p[0] when it is whole (1 for ASCII or a stray byte),
 * so that a cut never splits a character. */
static size_t
seq_len(const unsigned char *p)
{
    size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 1;

    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

size_t
log_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t off = 0;

    while (*p != '\0') {
        char esc[8];
        size_t n = 0, used = seq_len(p);
        unsigned c = *p;
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[n++] = '\\';
            esc[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20 || c == 0x7f || (used == 2 && c == 0xc2 && p[1] <= 0x9f)) {
            /* a C1 control is two bytes in UTF-8 (C2 80..C2 9F): both are escaped */
            for (size_t k = 0; k < used; k++) {
                esc[n++] = '\\';
                esc[n++] = 'x';
                esc[n++] = hex[p[k] >> 4];
                esc[n++] = hex[p[k] & 15];
            }
        } else {
            memcpy(esc, p, used);
            n = used;
        }
        if (n >= outlen - off)
            break;
        memcpy(out + off, esc, n);
        off += n;
        p += used;
    }
    out[off] = '\0';
    return off;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX], line[LOG_LINE_MAX];
    struct tm tm;
    time_t now = time(NULL);
    size_t off;
    va_list ap;

    if ((int)lvl > current_level())
        return;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof(msg), fmt, ap) >= (int)sizeof(msg))
        utf8_trim_tail(msg); /* the cut may have split a character */
    va_end(ap);
    gmtime_r(&now, &tm);
    off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    off += (size_t)snprintf(line + off, sizeof(line) - off, "%-5s ", names[lvl]);
    off += log_escape(msg, line + off, sizeof(line) - off - 1);
    line[off++] = '\n';
    (void)!write(STDERR_FILENO, line, off);
}
