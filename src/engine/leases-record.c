/* leases-record.c: a lease's store record "lease/<id>" (leases-int.h): its JSON text, read
 * with a flat-object reader for what leases.c writes (jansson for anything else). */
#include "engine/leases-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store/barrier.h"
#include "util/log.h"

/* ---- records ---- */

static json_t *
record_json(const struct lease_info *i)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:i,s:b,s:s,s:b}", "id", i->id, "db",
                     i->db, "role", i->role, "username", i->username, "accessor", i->accessor,
                     "issued", (json_int_t)i->issued, "expires", (json_int_t)i->expires,
                     "max_expires", (json_int_t)i->max_expires, "last_renewal",
                     (json_int_t)i->last_renewal, "failures", i->failures, "irrevocable",
                     i->irrevocable, "last_error", i->last_error, "pending", i->pending);
}

int
leases_record_encode(const struct lease_info *i, char **out)
{
    json_t *j = record_json(i);

    *out = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return *out != NULL ? 0 : -RK_ENOMEM;
}

int
lr_put(struct leases *m, const struct lease_info *i, struct rk_error *err)
{
    char key[KEY_MAX];
    char *text;
    int r;

    if (leases_record_encode(i, &text) != 0)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    snprintf(key, sizeof(key), KEY_PREFIX "%s", i->id);
    r = barrier_put(m->br, key, text, strlen(text), err);
    free(text);
    return r;
}

int
lr_del(struct leases *m, const char *id, struct rk_error *err)
{
    char key[KEY_MAX];

    snprintf(key, sizeof(key), KEY_PREFIX "%s", id);
    return barrier_del(m->br, key, err);
}

static void
copy_str(char *dst, size_t len, const json_t *v)
{
    snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* Copies the string value at *p (just past its opening quote) into dst (truncated to len - 1)
 * and moves *p past its closing quote. Returns 0, or 1 when it holds an escape (the caller
 * falls back to jansson) or does not end. */
static int
fast_str(const char **p, const char *end, char *dst, size_t len)
{
    const char *s = *p, *q = s;

    while (q < end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20)
            return 1;
        q++;
    }
    if (q >= end)
        return 1;
    if (dst != NULL) {
        size_t n = (size_t)(q - s) < len - 1 ? (size_t)(q - s) : len - 1;
        memcpy(dst, s, n);
        dst[n] = '\0';
    }
    *p = q + 1;
    return 0;
}

/* A stored failure count as the lease keeps it: 0..1000 whatever the record says. */
static int
failures_clamp(int64_t v)
{
    return v > 1000 ? 1000 : v < 0 ? 0 : (int)v;
}

/* The record as record_json writes it (a flat object of strings without escapes, integers and
 * booleans), read without building a JSON tree: the restart reads a million of them. Returns 0,
 * or 1 for anything else (record_parse then uses jansson). */
static int
record_parse_fast(const char *p, size_t len, struct lease_info *i)
{
    const char *end = p + len;
    int have_id = 0;

    memset(i, 0, sizeof(i[0]));
    if (len < 2 || *p++ != '{')
        return 1;
    while (p < end && *p != '}') {
        char key[16];
        struct {
            const char *name;
            char *dst;
            size_t len;
        } strs[] = {{"id", i->id, sizeof(i->id)},
                    {"db", i->db, sizeof(i->db)},
                    {"role", i->role, sizeof(i->role)},
                    {"username", i->username, sizeof(i->username)},
                    {"accessor", i->accessor, sizeof(i->accessor)},
                    {"last_error", i->last_error, sizeof(i->last_error)}};
        if (*p++ != '"' || fast_str(&p, end, key, sizeof(key)) != 0 || p >= end || *p++ != ':' ||
            p >= end)
            return 1;
        if (*p == '"') {
            char *dst = NULL;
            size_t dlen = 0;
            p++;
            for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++)
                if (strcmp(key, strs[k].name) == 0) {
                    dst = strs[k].dst;
                    dlen = strs[k].len;
                    have_id |= k == 0;
                }
            if (fast_str(&p, end, dst, dlen) != 0)
                return 1;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            int neg = *p == '-';
            int64_t v = 0;
            if (neg)
                p++;
            if (p >= end || *p < '0' || *p > '9')
                return 1;
            for (; p < end && *p >= '0' && *p <= '9'; p++) {
                if (v > (INT64_MAX - 9) / 10)
                    return 1;
                v = v * 10 + (*p - '0');
            }
            v = neg ? -v : v;
            if (strcmp(key, "issued") == 0)
                i->issued = v;
            else if (strcmp(key, "expires") == 0)
                i->expires = v;
            else if (strcmp(key, "max_expires") == 0)
                i->max_expires = v;
            else if (strcmp(key, "last_renewal") == 0)
                i->last_renewal = v;
            else if (strcmp(key, "failures") == 0)
                i->failures = failures_clamp(v);
        } else if ((size_t)(end - p) >= 4 && memcmp(p, "true", 4) == 0) {
            p += 4;
            if (strcmp(key, "irrevocable") == 0)
                i->irrevocable = 1;
            else if (strcmp(key, "pending") == 0)
                i->pending = 1;
        } else if ((size_t)(end - p) >= 5 && memcmp(p, "false", 5) == 0) {
            p += 5;
        } else {
            return 1;
        }
        if (p < end && *p == ',')
            p++;
        else if (p >= end || *p != '}')
            return 1;
    }
    return p < end && *p == '}' && have_id ? 0 : 1;
}

int
lr_parse(const unsigned char *val, size_t len, struct lease_info *i)
{
    json_t *j;

    if (record_parse_fast((const char *)val, len, i) == 0)
        return 0;
    j = json_loadb((const char *)val, len, 0, NULL);

    if (j == NULL || !json_is_string(json_object_get(j, "id"))) {
        json_decref(j);
        return -RK_ECORRUPT;
    }
    memset(i, 0, sizeof(*i));
    copy_str(i->id, sizeof(i->id), json_object_get(j, "id"));
    copy_str(i->db, sizeof(i->db), json_object_get(j, "db"));
    copy_str(i->role, sizeof(i->role), json_object_get(j, "role"));
    copy_str(i->username, sizeof(i->username), json_object_get(j, "username"));
    copy_str(i->accessor, sizeof(i->accessor), json_object_get(j, "accessor"));
    copy_str(i->last_error, sizeof(i->last_error), json_object_get(j, "last_error"));
    i->issued = json_integer_value(json_object_get(j, "issued"));
    i->expires = json_integer_value(json_object_get(j, "expires"));
    i->max_expires = json_integer_value(json_object_get(j, "max_expires"));
    i->last_renewal = json_integer_value(json_object_get(j, "last_renewal"));
    i->failures = failures_clamp(json_integer_value(json_object_get(j, "failures")));
    i->irrevocable = json_is_true(json_object_get(j, "irrevocable"));
    i->pending = json_is_true(json_object_get(j, "pending"));
    json_decref(j);
    return 0;
}

/* Reads the record of id into *i. Returns 0, -RK_ENOTFOUND, -RK_ECORRUPT or the store's. */
int
lr_get(struct leases *m, const char *id, struct lease_info *i, struct rk_error *err)
{
    char key[KEY_MAX];
    struct secret *v = NULL;
    int r;

    snprintf(key, sizeof(key), KEY_PREFIX "%s", id);
    if ((r = barrier_get(m->br, key, &v, NULL, err)) != 0)
        return r;
    r = lr_parse(v->data, v->len, i);
    secret_free(v);
    return r != 0 ? rk_error_set(err, RK_ECORRUPT, "the record of lease %s does not parse", id) : 0;
}
