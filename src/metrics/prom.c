/* prom.c: the Prometheus text format writer. See prom.h. */
#include "metrics/prom.h"

#include <stdlib.h>
#include <string.h>

void
prom_buf_free(struct prom_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

int
prom_buf_reserve(struct prom_buf *b, size_t n)
{
    size_t ncap;
    char *np;

    if (b->oom)
        return -1;
    if (b->cap - b->len >= n)
        return 0;
    ncap = b->cap ? b->cap : 4096;
    while (ncap - b->len < n) {
        if (ncap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        ncap *= 2;
    }
    if ((np = realloc(b->p, ncap)) == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

void
prom_put(struct prom_buf *b, const char *s, size_t n)
{
    if (prom_buf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void
prom_puts(struct prom_buf *b, const char *s)
{
    prom_put(b, s, strlen(s));
}

void
prom_u64(struct prom_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    prom_put(b, tmp + i, sizeof(tmp) - i);
}

void
prom_i64(struct prom_buf *b, int64_t v)
{
    if (v < 0) {
        prom_put(b, "-", 1);
        prom_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        prom_u64(b, (uint64_t)v);
    }
}

void
prom_seconds_us(struct prom_buf *b, int64_t us)
{
    uint64_t u = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    unsigned frac = (unsigned)(u % 1000000);
    char digits[7];
    int n = 6;

    if (us < 0)
        prom_put(b, "-", 1);
    prom_u64(b, u / 1000000);
    if (frac == 0)
        return;
    for (int i = 5; i >= 0; i--) {
        digits[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    while (n > 0 && digits[n - 1] == '0')
        n--;
    prom_put(b, ".", 1);
    prom_put(b, digits, (size_t)n);
}

/* The length of the valid UTF-8 sequence at s[0..n) (n >= 1, s[0] >= 0x80), or 0 when it is
 * not one (stray continuation byte, overlong form, surrogate, above U+10FFFF, cut short). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */

    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

void
prom_label_value(struct prom_buf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n, i = 0;

    if (s == NULL)
        return;
    n = strlen(str);
    while (i < n) {
        size_t j = i, l;
        /* A run of bytes that need nothing is copied at once. */
        while (j < n && s[j] < 0x80 && s[j] != '\\' && s[j] != '"' && s[j] != '\n')
            j++;
        prom_put(b, (const char *)s + i, j - i);
        if ((i = j) >= n)
            break;
        if (s[i] == '\\')
            prom_put(b, "\\\\", 2);
        else if (s[i] == '"')
            prom_put(b, "\\\"", 2);
        else if (s[i] == '\n')
            prom_put(b, "\\n", 2);
        if (s[i] < 0x80) {
            i++;
        } else if ((l = utf8_len(s + i, n - i)) == 0) {
            prom_put(b, "\xef\xbf\xbd", 3); /* U+FFFD for one byte that is not UTF-8 */
            i++;
        } else {
            prom_put(b, (const char *)s + i, l);
            i += l;
        }
    }
}

void
prom_family(struct prom_buf *b, const char *name, const char *type, const char *help)
{
    prom_puts(b, "# HELP ");
    prom_puts(b, name);
    prom_put(b, " ", 1);
    prom_puts(b, help);
    prom_puts(b, "\n# TYPE ");
    prom_puts(b, name);
    prom_put(b, " ", 1);
    prom_puts(b, type);
    prom_put(b, "\n", 1);
}

void
prom_sample_start(struct prom_buf *b, const char *name, const char *labels)
{
    prom_puts(b, name);
    if (labels != NULL && labels[0] != '\0') {
        prom_put(b, "{", 1);
        prom_puts(b, labels);
        prom_put(b, "} ", 2);
    } else {
        prom_put(b, " ", 1);
    }
}

void
prom_sample_i64(struct prom_buf *b, const char *name, const char *labels, int64_t v)
{
    prom_sample_start(b, name, labels);
    prom_i64(b, v);
    prom_put(b, "\n", 1);
}

void
prom_hist_observe(struct prom_hist *h, const struct prom_hist_spec *spec, int64_t us)
{
    size_t i = 0;

    if (us < 0)
        us = 0;
    while (i < spec->n && us > spec->le_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}

/* name + suffix, then the labels with le="…" added when le is not NULL. */
static void
hist_line(struct prom_buf *b, const char *name, const char *suffix, const char *labels,
          const char *le)
{
    int any = labels != NULL && labels[0] != '\0';

    prom_puts(b, name);
    prom_puts(b, suffix);
    if (any || le != NULL) {
        prom_put(b, "{", 1);
        if (any)
            prom_puts(b, labels);
        if (le != NULL) {
            if (any)
                prom_put(b, ",", 1);
            prom_puts(b, "le=\"");
            prom_puts(b, le);
            prom_put(b, "\"", 1);
        }
        prom_put(b, "}", 1);
    }
    prom_put(b, " ", 1);
}

void
prom_hist_write(struct prom_buf *b, const char *name, const char *labels, const struct prom_hist *h,
                const struct prom_hist_spec *spec)
{
    uint64_t cum = 0;

    for (size_t i = 0; i <= spec->n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        hist_line(b, name, "_bucket", labels, i < spec->n ? spec->le_txt[i] : "+Inf");
        prom_u64(b, cum);
        prom_put(b, "\n", 1);
    }
    hist_line(b, name, "_sum", labels, NULL);
    prom_seconds_us(b, (int64_t)atomic_load_explicit(&h->sum_us, memory_order_relaxed));
    prom_put(b, "\n", 1);
    hist_line(b, name, "_count", labels, NULL);
    prom_u64(b, cum);
    prom_put(b, "\n", 1);
}
