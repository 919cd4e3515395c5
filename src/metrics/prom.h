/* prom.h: the Prometheus text exposition format (version 0.0.4), written into a growing buffer.
 *
 * Why by hand: a scrape of 10,000 secrets is about 70,000 lines (7 MB) and must take well under
 * 50 ms, so values are formatted without printf and each entry's label set is escaped once and
 * copied into every line that needs it (metrics/secrets.c).
 *
 * The format, as far as it matters here: `# HELP name text` and `# TYPE name type` once per
 * family, before its samples, which follow each other; a sample is `name{l1="v1",l2="v2"} value`
 * (no braces without labels). Label values escape backslash, double quote and newline as \\, \"
 * and \n, and must be UTF-8: bytes that are not are written as U+FFFD. Histograms are
 * `name_bucket{…,le="…"}` cumulative counts ending with le="+Inf", then `name_sum` and
 * `name_count`.
 *
 * The histogram cells are atomics: observing takes no lock, and a scrape reads each cell once,
 * so the buckets it writes are cumulative and end at _count even while requests go on. */
#ifndef REKEY_METRICS_PROM_H
#define REKEY_METRICS_PROM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The content type of the text format, for the HTTP answer. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A growing output buffer. After an allocation failure it stops growing and sets oom; the
 * writers below become no-ops, so a caller checks oom once at the end. */
struct prom_buf {
    char *p;
    size_t len, cap;
    int oom;
};

/* Frees the buffer (p may be NULL) and zeroes it; a zeroed struct is an empty buffer. */
void prom_buf_free(struct prom_buf *b);

/* Makes room for n more bytes. Returns 0 or -1 (oom set). */
int prom_buf_reserve(struct prom_buf *b, size_t n);

/* Appends s[0..n) / the string s. */
void prom_put(struct prom_buf *b, const char *s, size_t n);
void prom_puts(struct prom_buf *b, const char *s);

/* Appends a decimal integer. */
void prom_u64(struct prom_buf *b, uint64_t v);
void prom_i64(struct prom_buf *b, int64_t v);

/* Appends us / 1e6 in decimal with at most six digits after the point ("0.00025", "3", "-1.5"):
 * a duration kept in microseconds, written in the base unit, seconds. */
void prom_seconds_us(struct prom_buf *b, int64_t us);

/* Appends s escaped as a label value (without the quotes). NULL appends nothing. */
void prom_label_value(struct prom_buf *b, const char *s);

/* Appends `# HELP name help\n# TYPE name type\n`; type is counter, gauge, histogram or untyped.
 * help must not hold a backslash or a newline (the callers pass constants). */
void prom_family(struct prom_buf *b, const char *name, const char *type, const char *help);

/* Appends `name{labels} ` or `name ` when labels is NULL or "": labels is the inside of the
 * braces, already escaped (`path="a",kind="b"`). The caller appends the value and '\n'. */
void prom_sample_start(struct prom_buf *b, const char *name, const char *labels);

/* Appends one whole integer sample line. */
void prom_sample_i64(struct prom_buf *b, const char *name, const char *labels, int64_t v);

/* --- histograms --- */

#define PROM_HIST_MAX 16 /* finite buckets at most (+Inf is implicit) */

/* The bucket bounds of a histogram: le_us[i] in microseconds, ascending, with their text
 * (le_txt[i], e.g. "0.005") so that no float is formatted per scrape. */
struct prom_hist_spec {
    size_t n; /* <= PROM_HIST_MAX */
    const int64_t *le_us;
    const char *const *le_txt;
};

/* One histogram's cells: per bucket counts (not cumulative; [n] is above the last bound) and the
 * sum in microseconds. Zero-initialised is empty. */
struct prom_hist {
    _Atomic uint64_t bucket[PROM_HIST_MAX + 1];
    _Atomic uint64_t sum_us;
};

/* Counts one observation of us microseconds (negative counts as 0). Lock-free. */
void prom_hist_observe(struct prom_hist *h, const struct prom_hist_spec *spec, int64_t us);

/* Appends the samples of h (no HELP/TYPE): name_bucket{labels,le="…"} for every bound and
 * +Inf, name_sum{labels}, name_count{labels}. labels as in prom_sample_start. */
void prom_hist_write(struct prom_buf *b, const char *name, const char *labels,
                     const struct prom_hist *h, const struct prom_hist_spec *spec);

#endif
