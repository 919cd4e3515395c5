/* query.c: the audit file scan (see query.h). */
#include "audit/query.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/parse.h"
#include "util/timeutil.h"

#define BLOCK (4u << 20)
#define LINE_MAX_BYTES (64u << 20) /* a longer "line" is not one of ours: skipped in pieces */

static int
needle(char *out, size_t *olen, const char *pre, const char *val, const char *post,
       struct rk_error *err)
{
    size_t o = strlen(pre), pl = strlen(post);

    memcpy(out, pre, o);
    if (!utf8_valid((const unsigned char *)val, strlen(val)) ||
        audit_json_escape(out, AUDIT_NEEDLE_MAX - pl - 1, &o, val, strlen(val)) != 0)
        return rk_error_set(err, RK_EINVAL, "filter \"%.64s\" is too long or not UTF-8", val);
    memcpy(out + o, post, pl);
    o += pl;
    out[o] = '\0';
    *olen = o;
    return 0;
}

int
audit_query_prepare(struct audit_query *q, struct rk_error *err)
{
    int r;

    q->l_path = q->l_actor = q->l_op = q->l_path_esc = 0;
    if (q->path != NULL && *q->path != '\0') {
        const char *slash = strchr(q->path, '/');
        /* The pattern the scan looks for: what every spelling of the path holds (the part after
         * the mount, "/a/b" of "secret/a/b"). */
        if ((r = needle(q->n_path, &q->l_path, "", slash != NULL ? slash : q->path, "", err)) !=
                0 ||
            (r = needle(q->path_esc, &q->l_path_esc, "", q->path, "", err)) != 0)
            return r;
    }
    if (q->actor != NULL && *q->actor != '\0' &&
        (r = needle(q->n_actor, &q->l_actor,
                    strncmp(q->actor, "hmac-sha256:", 12) == 0 ? "\"accessor\":\"" : "\"actor\":\"",
                    q->actor, "\"", err)) != 0)
        return r;
    if (q->op != NULL && *q->op != '\0' &&
        (r = needle(q->n_op, &q->l_op, "\"operation\":\"", q->op, "\"", err)) != 0)
        return r;
    return 0;
}

static const char *
seg_end(const char *p, const char *end)
{
    const char *s = memchr(p, '/', (size_t)(end - p));
    return s != NULL ? s : end;
}

static int
starts(const char *v, const char *vend, const char *pre, size_t pl)
{
    return (size_t)(vend - v) >= pl && memcmp(v, pre, pl) == 0;
}

static int
in_set(const char *s, size_t n, const char *const *set)
{
    for (size_t i = 0; set[i] != NULL; i++)
        if (strlen(set[i]) == n && memcmp(s, set[i], n) == 0)
            return 1;
    return 0;
}

/* Whether the (escaped) path value v..vend is under q's prefix in one of its spellings. */
static int
path_matches(const struct audit_query *q, const char *v, const char *vend)
{
    static const char *const kv[] = {"data", "metadata", "delete", "undelete", "destroy", NULL};
    const char *s1, *s2;
    char alt[AUDIT_NEEDLE_MAX];
    size_t n1, rest;

    if (starts(v, vend, q->path_esc, q->l_path_esc))
        return 1;
    s1 = seg_end(v, vend);
    if (s1 == vend)
        return 0;
    s2 = seg_end(s1 + 1, vend);
    /* secret/data/x -> secret/x */
    if (s2 != vend && in_set(s1 + 1, (size_t)(s2 - s1 - 1), kv)) {
        n1 = (size_t)(s1 - v);
        rest = (size_t)(vend - s2);
        if (n1 + rest < sizeof(alt)) {
            memcpy(alt, v, n1);
            memcpy(alt + n1, s2, rest);
            if (starts(alt, alt + n1 + rest, q->path_esc, q->l_path_esc))
                return 1;
        }
    }
    /* rekey/rotate/secret/x -> secret/x */
    if (s2 != vend && s1 - v == 5 && memcmp(v, "rekey", 5) == 0)
        return starts(s2 + 1, vend, q->path_esc, q->l_path_esc);
    return 0;
}

/* The escaped value of member key ("\"path\":\"") in the line, or NULL. */
static const char *
member(const char *line, size_t len, const char *key, size_t klen, const char **vend)
{
    const char *p = memmem(line, len, key, klen), *end = line + len;

    if (p == NULL)
        return NULL;
    p += klen;
    for (const char *c = p; c < end; c++) {
        if (*c == '\\') {
            c++;
            continue;
        }
        if (*c == '"') {
            *vend = c;
            return p;
        }
    }
    return NULL;
}

int
audit_query_match(const struct audit_query *q, const char *line, size_t len)
{
    if (len < AUDIT_LINE_MIN || memcmp(line, "{\"prev\":\"", AUDIT_PREV_OFF) != 0 ||
        audit_line_is_header(line, len))
        return 0;
    if (q->since[0] != '\0' && memcmp(line + AUDIT_TIME_OFF, q->since, AUDIT_TIME_LEN) < 0)
        return 0;
    if (q->until[0] != '\0' && memcmp(line + AUDIT_TIME_OFF, q->until, AUDIT_TIME_LEN) >= 0)
        return 0;
    if (q->l_actor > 0 && memmem(line, len, q->n_actor, q->l_actor) == NULL)
        return 0;
    if (q->l_op > 0 && memmem(line, len, q->n_op, q->l_op) == NULL)
        return 0;
    if (q->errors && memmem(line, len, ",\"error\":\"", 10) == NULL)
        return 0;
    if (q->l_path > 0) {
        const char *vend = NULL, *v = member(line, len, "\"path\":\"", 8, &vend);
        if (v == NULL || !path_matches(q, v, vend))
            return 0;
    }
    return 1;
}

/* The scan's first pattern: the most selective filter's. */
static const char *
primary(const struct audit_query *q, size_t *n)
{
    if (q->l_path > 0)
        return *n = q->l_path, q->n_path;
    if (q->l_actor > 0)
        return *n = q->l_actor, q->n_actor;
    if (q->l_op > 0)
        return *n = q->l_op, q->n_op;
    if (q->errors)
        return *n = 10, ",\"error\":\"";
    *n = 0;
    return NULL;
}

/* Scans buf[0..len) (whole lines). */
static int
scan(const struct audit_query *q, const char *buf, size_t len, audit_match_fn fn, void *arg)
{
    const char *end = buf + len, *p = buf;
    size_t nl;
    const char *nd = primary(q, &nl);
    int r;

    if (nd == NULL) {
        while (p < end) {
            const char *e = memchr(p, '\n', (size_t)(end - p));
            if (e == NULL)
                e = end;
            if (audit_query_match(q, p, (size_t)(e - p)) && (r = fn(arg, p, (size_t)(e - p))) != 0)
                return r;
            p = e + 1;
        }
        return 0;
    }
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), nd, nl), *ls, *le;
        if (hit == NULL)
            break;
        ls = hit;
        while (ls > p && ls[-1] != '\n') /* lines are short: a backward walk beats memrchr */
            ls--;
        le = memchr(hit, '\n', (size_t)(end - hit));
        if (le == NULL)
            le = end;
        if (audit_query_match(q, ls, (size_t)(le - ls)) &&
            (r = fn(arg, ls, (size_t)(le - ls))) != 0)
            return r;
        p = le + 1;
    }
    return 0;
}

int
audit_query_buf(const struct audit_query *q, const char *buf, size_t len, audit_match_fn fn,
                void *arg)
{
    return scan(q, buf, len, fn, arg);
}

int
audit_query_fd(const struct audit_query *q, int fd, audit_match_fn fn, void *arg, uint64_t *bytes,
               struct rk_error *err)
{
    size_t cap = BLOCK, have = 0;
    char *buf = malloc(cap);
    uint64_t total = 0;
    int r = 0, eof = 0;

    if (bytes != NULL)
        *bytes = 0;
    if (buf == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (!eof) {
        ssize_t n = read(fd, buf + have, cap - have);
        size_t upto;
        char *last;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = rk_error_set(err, RK_EIO, "reading: %s", strerror(errno));
            break;
        }
        total += (uint64_t)n;
        have += (size_t)n;
        eof = n == 0;
        if (have == 0)
            break;
        if (eof) {
            upto = have; /* a last line without its newline */
        } else {
            last = memrchr(buf, '\n', have);
            if (last == NULL) {
                if (have < cap)
                    continue;
                if (cap >= LINE_MAX_BYTES) { /* not a line of ours: drop it */
                    have = 0;
                    continue;
                }
                char *nb = realloc(buf, cap * 2);
                if (nb == NULL) {
                    r = rk_error_set(err, RK_ENOMEM, "out of memory");
                    break;
                }
                buf = nb;
                cap *= 2;
                continue;
            }
            upto = (size_t)(last - buf) + 1;
        }
        if ((r = scan(q, buf, upto, fn, arg)) != 0)
            break;
        memmove(buf, buf + upto, have - upto);
        have -= upto;
    }
    free(buf);
    if (bytes != NULL)
        *bytes = total;
    return r;
}

int
audit_time_arg(const char *s, int64_t now_us, char out[AUDIT_TIME_LEN + 1], struct rk_error *err)
{
    struct rk_error e = {0};
    int64_t us, secs;
    char tmp[64];

    if (s == NULL || *s == '\0')
        return rk_error_set(err, RK_EINVAL, "an empty time");
    if (strlen(s) == 10 && s[4] == '-' && s[7] == '-') { /* a date */
        snprintf(tmp, sizeof(tmp), "%sT00:00:00Z", s);
        s = tmp;
    }
    if (strchr(s, 'T') != NULL) {
        if (time_parse_rfc3339(s, &us) != 0)
            return rk_error_set(err, RK_EINVAL,
                                "\"%.64s\" is not a time (2026-12-06T15:00:00Z, 2026-12-06, or "
                                "a duration back from now such as 90m or 2d)",
                                s);
    } else if (duration_parse(s, strlen(s), &secs, &e) == 0) {
        us = now_us - secs * 1000000;
    } else {
        return rk_error_set(err, RK_EINVAL,
                            "\"%.64s\" is not a time (2026-12-06T15:00:00Z, 2026-12-06, or a "
                            "duration back from now such as 90m or 2d)",
                            s);
    }
    audit_time_format(us, out);
    return 0;
}
