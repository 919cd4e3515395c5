/* kv-data.c: the data a KV version holds. Data is stored in jansson's canonical form (sorted
 * keys, compact), which makes the fingerprint of equal data equal; data already in that form (a
 * flat object of plain printable strings) is copied without a jansson round trip, and anything
 * else takes the jansson path (kv_data_prepare_slow). Every intermediate copy of a value is wiped.
 * See kv.h for the contracts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/kv-int.h"
#include "util/enc.h"

/* ---- secret-holding JSON ---- */

/* Wipes every string value inside v (recursively), then drops the reference. jansson allocates
 * with plain malloc, so this is the best we can do without global allocator hooks. */
static void
json_wipe_strings(json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;

    if (v == NULL)
        return;
    if (json_is_string(v)) {
        secure_wipe((void *)json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, x) json_wipe_strings(x);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) json_wipe_strings(x);
    }
}

void
json_wipe_decref(json_t *v)
{
    if (v != NULL && v->refcount == 1)
        json_wipe_strings(v);
    json_decref(v);
}

/* Parses a JSON object held in a secret. The jansson message is not used: it may quote the
 * input, which is a secret. */
int
secret_json_object(const struct secret *s, const char *what, json_t **out, struct rk_error *err)
{
    json_error_t jerr;
    json_t *j;

    *out = NULL;
    if (s == NULL || s->data == NULL)
        return rk_error_set(err, RK_EINVAL, "%s is missing", what);
    if (s->len > KV_DATA_MAX)
        return rk_error_set(err, RK_EINVAL, "%s is %zu bytes long; the limit is %d", what, s->len,
                            KV_DATA_MAX);
    j = json_loadb((const char *)s->data, s->len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return rk_error_set(err, RK_EINVAL, "%s is not valid JSON (line %d, column %d)", what,
                            jerr.line, jerr.column);
    if (!json_is_object(j)) {
        json_wipe_decref(j);
        return rk_error_set(err, RK_EINVAL, "%s must be a JSON object", what);
    }
    *out = j;
    return 0;
}

/* fingerprint() under key into fp, with kv's errors. */
static int
data_fingerprint(const struct fp_key *key, const void *p, size_t len, char fp[FINGERPRINT_LEN + 1],
                 struct rk_error *err)
{
    int r = fingerprint(key, p, len, fp);

    if (r == -RK_EINVAL)
        return rk_error_set(err, RK_ESEALED, "no fingerprint key: the store is sealed");
    if (r != 0)
        return rk_error_set(err, -r, "computing a fingerprint failed");
    return 0;
}

/* Dumps a data object canonically (sorted keys, compact) into a secret, with its fingerprint
 * under key when fp is not NULL. */
int
data_canonical(const struct fp_key *key, json_t *obj, struct secret **out,
               char fp[FINGERPRINT_LEN + 1], struct rk_error *err)
{
    char *txt;
    size_t len;
    json_t *v;
    int r = 0;

    *out = NULL;
    txt = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (txt == NULL)
        return rk_error_set(err, RK_ENOMEM, "encoding secret data failed");
    len = strlen(txt);
    if (len > KV_DATA_MAX) {
        freezero(txt, len);
        return rk_error_set(err, RK_EINVAL, "secret data is %zu bytes long; the limit is %d", len,
                            KV_DATA_MAX);
    }
    *out = secret_from(txt, len);
    if (*out == NULL) {
        freezero(txt, len);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    if (fp != NULL) {
        v = json_object_size(obj) == 1 ? json_object_iter_value(json_object_iter(obj)) : NULL;
        if (v != NULL && json_is_string(v))
            r = data_fingerprint(key, json_string_value(v), json_string_length(v), fp, err);
        else
            r = data_fingerprint(key, txt, len, fp, err);
    }
    freezero(txt, len);
    if (r != 0) {
        secret_free(*out);
        *out = NULL;
    }
    return r;
}

int
kv_data_prepare_slow(const struct fp_key *key, const struct secret *data, struct secret **out,
                     char fp[FINGERPRINT_LEN + 1], struct rk_error *err)
{
    json_t *obj = NULL;
    int r;

    *out = NULL;
    if ((r = secret_json_object(data, "secret data", &obj, err)) != 0)
        return r;
    r = data_canonical(key, obj, out, fp, err);
    json_wipe_decref(obj);
    return r;
}

/* The fast path of kv_data_prepare: for data that is already canonical, parsing and dumping it
 * with jansson only copies it, so it is recognised in one pass and copied. For a flat object of
 * strings, json_dumps(JSON_COMPACT | JSON_SORT_KEYS) writes '{', the members "key":"value"
 * joined by ',' in key order, then '}'; in a string it writes a byte 0x20..0x7E other than '"'
 * and '\\' as itself ('/' is escaped only under JSON_ESCAPE_SLASH). jansson sorts keys by memcmp,
 * a shorter key first on a common prefix (older releases by strcmp: the same order for these
 * bytes). So an input of exactly that shape, with strictly increasing keys (so no duplicates),
 * is its own canonical form: the output is the input byte for byte, and an empty key is fine.
 * Anything else (whitespace, escapes, DEL and non-ASCII bytes, non-string values, unsorted keys,
 * over KV_DATA_MAX) takes the jansson path, with its errors. */

/* Scans a string of plain bytes whose opening quote is at p[*i], within p[0..n); on success,
 * p[*start..*start + *len) is its contents and *i is just past the closing quote. */
static int
plain_string(const unsigned char *p, size_t n, size_t *i, size_t *start, size_t *len)
{
    size_t j = *i;

    if (j >= n || p[j] != '"')
        return 0;
    *start = ++j;
    for (; j < n && p[j] != '"'; j++) {
        if (p[j] < 0x20 || p[j] > 0x7e || p[j] == '\\')
            return 0;
    }
    if (j >= n)
        return 0;
    *len = j - *start;
    *i = j + 1;
    return 1;
}

/* Whether key a sorts strictly before key b in JSON_SORT_KEYS order. Keys are field names;
 * jansson compares them the same way. */
static int
key_before(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    return c < 0 || (c == 0 && alen < blen);
}

/* Whether p[0..n) is already canonical (see above). *nmembers gets the number of members and
 * p[*val..*val + *vlen) the last value. */
static int
data_is_canonical(const unsigned char *p, size_t n, size_t *nmembers, size_t *val, size_t *vlen)
{
    size_t i = 1, m = 0, key = 0, klen = 0, pkey = 0, pklen = 0;

    if (n < 2 || p[0] != '{' || p[n - 1] != '}')
        return 0;
    n--; /* the members are in p[1..n) */
    while (i < n) {
        if (m > 0 && p[i++] != ',')
            return 0;
        if (!plain_string(p, n, &i, &key, &klen) || i >= n || p[i++] != ':' ||
            !plain_string(p, n, &i, val, vlen))
            return 0;
        if (m > 0 && !key_before(p + pkey, pklen, p + key, klen))
            return 0;
        pkey = key;
        pklen = klen;
        m++;
    }
    *nmembers = m;
    return 1;
}

int
kv_data_prepare_key(const struct fp_key *key, const struct secret *data, struct secret **out,
                    char fp[FINGERPRINT_LEN + 1], struct rk_error *err)
{
    size_t nmembers = 0, val = 0, vlen = 0;
    int r = 0;

    *out = NULL;
    if (data == NULL || data->data == NULL || data->len > KV_DATA_MAX ||
        !data_is_canonical(data->data, data->len, &nmembers, &val, &vlen))
        return kv_data_prepare_slow(key, data, out, fp, err);
    if ((*out = secret_from(data->data, data->len)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    /* As data_canonical: a single string field is fingerprinted by its value. */
    if (fp != NULL) {
        if (nmembers == 1)
            r = data_fingerprint(key, data->data + val, vlen, fp, err);
        else
            r = data_fingerprint(key, data->data, data->len, fp, err);
    }
    if (r != 0) {
        secret_free(*out);
        *out = NULL;
    }
    return r;
}

/* kv's fingerprint key when fp asks for a fingerprint (*key NULL otherwise). Returns 0 or as
 * barrier_no_fp_key. */
static int
want_key(struct kv *kv, const char *fp, struct fp_key **key, struct rk_error *err)
{
    *key = NULL;
    if (fp == NULL)
        return 0;
    if (kv == NULL)
        return rk_error_set(err, RK_ESEALED, "no fingerprint key: the store is sealed");
    if ((*key = barrier_fp_key(kv_barrier(kv))) == NULL)
        return barrier_no_fp_key(kv_barrier(kv), err);
    return 0;
}

int
kv_data_prepare(struct kv *kv, const struct secret *data, struct secret **out,
                char fp[FINGERPRINT_LEN + 1], struct rk_error *err)
{
    struct fp_key *key;
    int r;

    *out = NULL;
    if ((r = want_key(kv, fp, &key, err)) != 0)
        return r;
    r = kv_data_prepare_key(key, data, out, fp, err);
    fp_key_unref(key);
    return r;
}

int
kv_data_single(struct kv *kv, const char *field, const struct secret *value, struct secret **out,
               char fp[FINGERPRINT_LEN + 1], struct rk_error *err)
{
    struct fp_key *key = NULL;
    json_t *obj = NULL, *s;
    int r = -RK_ENOMEM;

    *out = NULL;
    if (field == NULL || field[0] == '\0' || value == NULL)
        return rk_error_set(err, RK_EINVAL, "a field name and a value are required");
    if ((s = json_stringn((const char *)value->data, value->len)) == NULL)
        return rk_error_set(err, RK_EINVAL, "the value of field %.64s is not valid UTF-8", field);
    if ((r = want_key(kv, fp, &key, err)) != 0) {
        json_wipe_decref(s);
        return r;
    }
    if ((obj = json_object()) == NULL || json_object_set_new(obj, field, s) != 0) {
        if (obj == NULL)
            json_wipe_decref(s);
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    r = data_canonical(key, obj, out, fp, err);
out:
    json_wipe_decref(obj);
    fp_key_unref(key);
    return r;
}

int
merge_patch(json_t *target, json_t *patch)
{
    const char *k;
    json_t *pv;

    json_object_foreach(patch, k, pv)
    {
        json_t *tv = json_object_get(target, k);
        if (json_is_null(pv)) {
            if (tv != NULL && json_object_del(target, k) != 0)
                return -1;
        } else if (json_is_object(pv)) {
            if (!json_is_object(tv)) {
                json_t *fresh = json_object();
                if (fresh == NULL || json_object_set_new(target, k, fresh) != 0)
                    return -1;
                tv = fresh;
            }
            if (merge_patch(tv, pv) != 0)
                return -1;
        } else if (json_object_set_new(target, k, json_deep_copy(pv)) != 0) {
            /* A copy: the patch is reused on a retry, and the result is wiped when freed. */
            return -1;
        }
    }
    return 0;
}
