/* audit-fuzzer: the readers of audit files, which may hold anything (a damaged disk, a forged
 * line): the chain check and the verifier over every line, the tail reader, the query scan
 * over the whole input (with filters that exercise every path), and the JSON escaper, with
 * checks: a line the verifier accepts re-seals to the same bytes, and the escaper's output is
 * valid JSON string content. (audit_query_fd reads a file into the same scan.) */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/chain.h"
#include "audit/query.h"
#include "util/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
count(void *arg, const char *line, size_t len)
{
    (void)line;
    (void)len;
    (*(size_t *)arg)++;
    return 0;
}

static void
check_line(struct audit_verifier *v, const char *p, size_t len, int first)
{
    char why[256], prev[AUDIT_HASH_HEX + 1], hash[AUDIT_HASH_HEX + 1];

    if (audit_line_check(p, len, prev, hash, why, sizeof(why)) == 0) {
        /* An accepted line is exactly what audit_line_seal makes of its parts. */
        size_t blen = len - AUDIT_LINE_MIN, olen = 0;
        char *buf = malloc(len + 2), time[AUDIT_TIME_LEN + 1], h2[AUDIT_HASH_HEX + 1];

        memcpy(time, p + AUDIT_TIME_OFF, AUDIT_TIME_LEN);
        time[AUDIT_TIME_LEN] = '\0';
        if (buf == NULL ||
            audit_line_seal(buf, len + 2, &olen, prev, time, p + AUDIT_BODY_OFF, blen, h2) != 0 ||
            olen != len + 1 || memcmp(buf, p, len) != 0 || strcmp(h2, hash) != 0)
            abort();
        free(buf);
    }
    (void)audit_verify_line(v, p, len, first, why, sizeof(why));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct audit_verifier v;
    const char *p = (const char *)data, *end = p + size;
    char hash[AUDIT_HASH_HEX + 1];
    size_t n = 0;
    int first = 1;

    memset(&v, 0, sizeof(v));
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            nl = end;
        check_line(&v, p, (size_t)(nl - p), first);
        first = 0;
        p = nl + 1;
    }
    if (size >= AUDIT_TAIL_LEN + 1)
        (void)audit_tail_hash((const char *)data + size - AUDIT_TAIL_LEN - 1, AUDIT_TAIL_LEN + 1,
                              hash);

    /* The escaper: valid UTF-8 out, no raw quote or control byte, every backslash an escape. */
    {
        size_t cap = 6 * size + 1, olen = 0;
        char *out = malloc(cap);
        if (out != NULL && audit_json_escape(out, cap, &olen, (const char *)data, size) == 0) {
            if (!utf8_valid((const unsigned char *)out, olen))
                abort();
            for (size_t i = 0; i < olen; i++) {
                unsigned char c = (unsigned char)out[i];
                if (c < 0x20 || c == '"')
                    abort();
                if (c == '\\')
                    i++; /* an escape: the next byte is its letter */
            }
        }
        free(out);
    }

    /* The scan, with and without a pattern to look for. */
    {
        struct audit_query q[3];
        memset(q, 0, sizeof(q));
        q[0].path = "secret/app";
        q[0].errors = 1;
        q[1].actor = "token-ci";
        q[1].op = "read";
        memcpy(q[1].since, "2026-01-01T00:00:00.000000Z", AUDIT_TIME_LEN + 1);
        q[2].path = "secret";
        for (int i = 0; i < 3; i++) {
            if (audit_query_prepare(&q[i], NULL) != 0)
                abort();
            (void)audit_query_buf(&q[i], (const char *)data, size, count, &n);
        }
    }
    return 0;
}
