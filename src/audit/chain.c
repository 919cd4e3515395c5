/* chain.c: the audit line format and its hash chain (see chain.h). */
#include "audit/chain.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/enc.h"
#include "util/parse.h"

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up on every
 * digest, which costs more than hashing a line. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int
sha256_hex(const void *data, size_t len, char out[AUDIT_HASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;

    pthread_once(&sha256_once, sha256_fetch);
    if (EVP_Digest(data, len, md, &mdlen, sha256_md != NULL ? sha256_md : EVP_sha256(), NULL) !=
            1 ||
        mdlen != AUDIT_HASH_HEX / 2)
        return -RK_EINTERNAL;
    hex_encode(md, mdlen, out);
    return 0;
}

void
audit_time_format(int64_t us, char out[AUDIT_TIME_LEN + 1])
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;

    if (us < 0)
        t = 0, us = 0;
    gmtime_r(&t, &tm);
    snprintf(out, AUDIT_TIME_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
}

static int
is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int
audit_line_seal(char *buf, size_t cap, size_t *len, const char *prev, const char *time,
                const char *body, size_t blen, char hash[AUDIT_HASH_HEX + 1])
{
    size_t start = *len, need = AUDIT_LINE_MIN + blen + 1;
    char *p = buf + start;

    if (cap - start < need)
        return -RK_ELIMIT;
    memcpy(p, "{\"prev\":\"", AUDIT_PREV_OFF);
    memcpy(p + AUDIT_PREV_OFF, prev, AUDIT_HASH_HEX);
    memcpy(p + AUDIT_PREV_OFF + AUDIT_HASH_HEX, "\",\"time\":\"", 10);
    memcpy(p + AUDIT_TIME_OFF, time, AUDIT_TIME_LEN);
    memcpy(p + AUDIT_TIME_OFF + AUDIT_TIME_LEN, "\",", 2);
    memcpy(p + AUDIT_BODY_OFF, body, blen);
    if (sha256_hex(p, AUDIT_BODY_OFF + blen, hash) != 0)
        return -RK_EINTERNAL;
    p += AUDIT_BODY_OFF + blen;
    memcpy(p, ",\"hash\":\"", 9);
    memcpy(p + 9, hash, AUDIT_HASH_HEX);
    memcpy(p + 9 + AUDIT_HASH_HEX, "\"}\n", 3);
    *len = start + need;
    return 0;
}

int
audit_line_check(const char *line, size_t len, char prev[AUDIT_HASH_HEX + 1],
                 char hash[AUDIT_HASH_HEX + 1], char *why, size_t whylen)
{
    char want[AUDIT_HASH_HEX + 1];
    const char *tail;

    if (len < AUDIT_LINE_MIN || memcmp(line, "{\"prev\":\"", AUDIT_PREV_OFF) != 0 ||
        !is_hex(line + AUDIT_PREV_OFF, AUDIT_HASH_HEX) ||
        memcmp(line + AUDIT_PREV_OFF + AUDIT_HASH_HEX, "\",\"time\":\"", 10) != 0 ||
        memcmp(line + AUDIT_TIME_OFF + AUDIT_TIME_LEN, "\",", 2) != 0) {
        snprintf(why, whylen,
                 "not an audit chain line (the prev and time fields are not in place)");
        return -RK_ECORRUPT;
    }
    tail = line + len - AUDIT_TAIL_LEN;
    if (memcmp(tail, ",\"hash\":\"", 9) != 0 || !is_hex(tail + 9, AUDIT_HASH_HEX) ||
        memcmp(tail + 9 + AUDIT_HASH_HEX, "\"}", 2) != 0) {
        snprintf(why, whylen, "not an audit chain line (no hash field at its end)");
        return -RK_ECORRUPT;
    }
    memcpy(prev, line + AUDIT_PREV_OFF, AUDIT_HASH_HEX);
    prev[AUDIT_HASH_HEX] = '\0';
    memcpy(hash, tail + 9, AUDIT_HASH_HEX);
    hash[AUDIT_HASH_HEX] = '\0';
    if (sha256_hex(line, len - AUDIT_TAIL_LEN, want) != 0) {
        snprintf(why, whylen, "SHA-256 is not available");
        return -RK_EINTERNAL;
    }
    if (memcmp(want, hash, AUDIT_HASH_HEX) != 0) {
        snprintf(why, whylen, "the line was changed (its content does not match its hash)");
        return -RK_ECORRUPT;
    }
    return 0;
}

int
audit_line_is_header(const char *line, size_t len)
{
    static const char t[] = "\"type\":\"header\"";

    return len >= AUDIT_BODY_OFF + sizeof(t) - 1 &&
           memcmp(line + AUDIT_BODY_OFF, t, sizeof(t) - 1) == 0;
}

int
audit_tail_hash(const char *tail, size_t len, char hash[AUDIT_HASH_HEX + 1])
{
    if (len != AUDIT_TAIL_LEN + 1 || memcmp(tail, ",\"hash\":\"", 9) != 0 ||
        !is_hex(tail + 9, AUDIT_HASH_HEX) || memcmp(tail + 9 + AUDIT_HASH_HEX, "\"}\n", 3) != 0)
        return -RK_ECORRUPT;
    memcpy(hash, tail + 9, AUDIT_HASH_HEX);
    hash[AUDIT_HASH_HEX] = '\0';
    return 0;
}

int
audit_verify_line(struct audit_verifier *v, const char *line, size_t len, int first, char *why,
                  size_t whylen)
{
    char prev[AUDIT_HASH_HEX + 1], hash[AUDIT_HASH_HEX + 1];
    int r;

    if (first)
        v->files++;
    if ((r = audit_line_check(line, len, prev, hash, why, whylen)) != 0)
        return r;
    if (first && !audit_line_is_header(line, len)) {
        snprintf(why, whylen,
                 "the file does not start with a header record (its first lines "
                 "were removed)");
        return -RK_ECORRUPT;
    }
    if (!first && audit_line_is_header(line, len)) {
        snprintf(why, whylen, "a header record inside a file (lines from another chain)");
        return -RK_ECORRUPT;
    }
    if (v->have_last && memcmp(prev, v->last, AUDIT_HASH_HEX) != 0) {
        snprintf(why, whylen,
                 first ? "the file does not continue the previous file's chain (a file is "
                         "missing, out of order, or its predecessor was cut short)"
                       : "the link to the line before is broken (a line was removed, inserted "
                         "or moved here)");
        return -RK_ECORRUPT;
    }
    memcpy(v->last, hash, sizeof(hash));
    v->have_last = 1;
    v->lines++;
    return 0;
}

int
audit_json_escape(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t o = *len;

    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k;

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7f) {
            if (o + 1 > cap)
                return -RK_ELIMIT;
            buf[o++] = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80 && (k = utf8_seq(p + i, n - i)) > 0) {
            if (o + k > cap)
                return -RK_ELIMIT;
            memcpy(buf + o, p + i, k);
            o += k;
            i += k;
            continue;
        }
        if (o + 6 > cap)
            return -RK_ELIMIT;
        buf[o++] = '\\';
        switch (c) {
        case '"': buf[o++] = '"'; break;
        case '\\': buf[o++] = '\\'; break;
        case '\n': buf[o++] = 'n'; break;
        case '\r': buf[o++] = 'r'; break;
        case '\t': buf[o++] = 't'; break;
        default:
            if (c >= 0x80) { /* not UTF-8: the replacement character */
                memcpy(buf + o, "ufffd", 5);
            } else {
                buf[o] = 'u';
                buf[o + 1] = '0';
                buf[o + 2] = '0';
                buf[o + 3] = hx[c >> 4];
                buf[o + 4] = hx[c & 15];
            }
            o += 5;
            break;
        }
        i++;
    }
    *len = o;
    return 0;
}
