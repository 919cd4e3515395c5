/* kvjson.c: the JSON shapes of the KV v2 and rekey routes (see kvjson.h). */
#include "api/kvjson.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/envelope.h"
#include "rotators/rotator.h"
#include "util/parse.h"
#include "util/timeutil.h"

/* ---- helpers ---- */

/* The type name jansson uses in its own unpack errors. */
static const char *
type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    default: return "unknown";
    }
}

static int
type_error(struct rk_error *err, const char *field, const char *want, const json_t *v)
{
    return rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected %s, got %s", field, want,
                        type_name(v));
}

/* An integer in [min, max] given as a JSON integer, an integral real, or a decimal string
 * (Vault's weak decoding). Returns 0, -1 for the wrong type, -2 for out of range. */
static int
weak_int(const json_t *v, int64_t min, int64_t max, int64_t *out)
{
    int64_t n;

    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* Range first (the cast of an out-of-range double is undefined), then integrality;
         * no libm needed. */
        if (!(d >= -9.2e18 && d <= 9.2e18) || (double)(int64_t)d != d)
            return -1;
        n = (int64_t)d;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || parse_int64(s, INT64_MIN, INT64_MAX, &n) != 0)
            return -1;
    } else {
        return -1;
    }
    if (n < min || n > max)
        return -2;
    *out = n;
    return 0;
}

static int
int_field(const json_t *v, const char *field, int64_t min, int64_t max, int64_t *out,
          struct rk_error *err)
{
    int r = weak_int(v, min, max, out);

    if (r == -1)
        return type_error(err, field, "an integer", v);
    if (r == -2)
        return rk_error_set(err, RK_EINVAL,
                            "invalid \"%s\": must be between %" PRId64 " and %" PRId64, field, min,
                            max);
    return 0;
}

/* A boolean: true/false, or one of Go's strconv.ParseBool strings. */
static int
bool_field(const json_t *v, const char *field, int *out, struct rk_error *err)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};

    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (strcmp(s, yes[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcmp(s, no[i]) == 0) {
                *out = 0;
                return 0;
            }
        }
    }
    return type_error(err, field, "a boolean", v);
}

/* A field that is present and not null, or NULL. */
static json_t *
field(const json_t *body, const char *name)
{
    json_t *v = json_object_get(body, name);

    return json_is_null(v) ? NULL : v;
}

static int
body_check(const json_t *body, struct rk_error *err)
{
    json_error_t jerr;

    /* json_unpack_ex gives jansson's precise wording when the body is not an object. */
    if (body == NULL)
        return rk_error_set(err, RK_EINVAL, "missing request body");
    if (json_unpack_ex((json_t *)body, &jerr, JSON_VALIDATE_ONLY, "{}") != 0)
        return rk_error_set(err, RK_EINVAL, "invalid request body: %s", jerr.text);
    return 0;
}

/* ---- decoders ---- */

static int
reason_field(const json_t *body, const char **reason, struct rk_error *err)
{
    json_t *v;

    *reason = NULL;
    if ((v = field(body, "reason")) == NULL)
        return 0;
    if (!json_is_string(v))
        return type_error(err, "reason", "a string", v);
    if (json_string_length(v) >= KV_REASON_MAX ||
        strlen(json_string_value(v)) != json_string_length(v))
        return rk_error_set(err, RK_EINVAL,
                            "invalid \"reason\": at most %d bytes, without NUL characters",
                            KV_REASON_MAX - 1);
    if (json_string_length(v) > 0)
        *reason = json_string_value(v);
    return 0;
}

int
kvjson_decode_write(const json_t *body, struct kvjson_write *out, struct rk_error *err)
{
    json_t *data, *opts, *cas;
    int64_t n;
    int r;

    out->data = NULL;
    out->cas = -1;
    out->reason = NULL;
    if ((r = body_check(body, err)) != 0)
        return r;
    if ((data = field(body, "data")) == NULL)
        return rk_error_set(err, RK_EINVAL, "no data provided");
    if (!json_is_object(data))
        return type_error(err, "data", "an object", data);
    if ((opts = field(body, "options")) != NULL) {
        if (!json_is_object(opts))
            return type_error(err, "options", "an object", opts);
        if ((cas = field(opts, "cas")) != NULL) {
            if (weak_int(cas, 0, INT64_MAX, &n) != 0)
                return rk_error_set(err, RK_EINVAL, "error parsing check-and-set parameter");
            out->cas = n;
        }
        if ((r = reason_field(opts, &out->reason, err)) != 0)
            return r;
    }
    out->data = data;
    return 0;
}

int
kvjson_data_text(const json_t *data, struct secret **out, struct rk_error *err)
{
    char *txt;
    size_t len;

    *out = NULL;
    if (!json_is_object(data))
        return rk_error_set(err, RK_EINVAL, "secret data must be a JSON object");
    if ((txt = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "encoding secret data failed");
    len = strlen(txt);
    *out = secret_from(txt, len);
    freezero(txt, len);
    if (*out == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

int
kvjson_data_parse(const struct secret *text, json_t **out, struct rk_error *err)
{
    json_error_t jerr;
    json_t *j;

    *out = NULL;
    if (text == NULL || text->data == NULL)
        return rk_error_set(err, RK_ECORRUPT, "stored secret data is missing");
    /* jansson's message may quote the text, a secret: report the position only. */
    j = json_loadb((const char *)text->data, text->len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return rk_error_set(err, RK_ECORRUPT, "stored secret data does not parse (column %d)",
                            jerr.column);
    if (!json_is_object(j)) {
        json_decref(j);
        return rk_error_set(err, RK_ECORRUPT, "stored secret data is not an object");
    }
    *out = j;
    return 0;
}

/* Parses "1,2, 3" into versions. */
static int
versions_from_string(const char *s, uint64_t **vs, size_t *n, struct rk_error *err)
{
    const char *p = s;

    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char buf[32];
        int64_t v;
        uint64_t *grown;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == 0 || len >= sizeof(buf))
            return rk_error_set(err, RK_EINVAL, "invalid \"versions\": expected integers");
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (parse_int64(buf, 0, INT64_MAX, &v) != 0)
            return rk_error_set(err, RK_EINVAL, "invalid \"versions\": expected integers");
        if (*n >= KVJSON_VERSIONS_MAX)
            return rk_error_set(err, RK_EINVAL, "too many versions (limit %d)",
                                KVJSON_VERSIONS_MAX);
        if ((grown = realloc(*vs, (*n + 1) * sizeof(**vs))) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        *vs = grown;
        (*vs)[(*n)++] = (uint64_t)v;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

int
kvjson_decode_versions(const json_t *body, uint64_t **versions, size_t *n, struct rk_error *err)
{
    uint64_t *vs = NULL;
    size_t cnt = 0, i;
    json_t *v, *e;
    int64_t x;
    int r;

    *versions = NULL;
    *n = 0;
    if ((r = body_check(body, err)) != 0)
        return r;
    v = field(body, "versions");
    if (v == NULL)
        return rk_error_set(err, RK_EINVAL, "no version number provided");
    if (json_is_array(v)) {
        if (json_array_size(v) > KVJSON_VERSIONS_MAX)
            return rk_error_set(err, RK_EINVAL, "too many versions (limit %d)",
                                KVJSON_VERSIONS_MAX);
        if (json_array_size(v) > 0 && (vs = calloc(json_array_size(v), sizeof(*vs))) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        json_array_foreach(v, i, e)
        {
            if (weak_int(e, 0, INT64_MAX, &x) != 0) {
                free(vs);
                return rk_error_set(err, RK_EINVAL,
                                    "invalid \"versions\": element %zu: expected a non-negative "
                                    "integer, got %s",
                                    i, type_name(e));
            }
            vs[cnt++] = (uint64_t)x;
        }
    } else if (json_is_string(v)) {
        if ((r = versions_from_string(json_string_value(v), &vs, &cnt, err)) != 0) {
            free(vs);
            return r;
        }
    } else if (weak_int(v, 0, INT64_MAX, &x) == 0) {
        if ((vs = malloc(sizeof(*vs))) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        vs[cnt++] = (uint64_t)x;
    } else {
        return type_error(err, "versions", "an array of integers", v);
    }
    if (cnt == 0) {
        free(vs);
        return rk_error_set(err, RK_EINVAL, "no version number provided");
    }
    *versions = vs;
    *n = cnt;
    return 0;
}

int
kvjson_duration_value(const json_t *v, const char *fname, int64_t *secs, struct rk_error *err)
{
    struct rk_error e2 = {0};
    int64_t n;

    if (json_is_integer(v) || json_is_real(v)) {
        if (weak_int(v, 0, INT64_MAX / 1000000, &n) != 0)
            return rk_error_set(err, RK_EINVAL,
                                "invalid \"%s\": expected a non-negative whole number of seconds",
                                fname);
        *secs = n;
        return 0;
    }
    if (!json_is_string(v))
        return type_error(err, fname, "a duration string", v);
    if (strlen(json_string_value(v)) != json_string_length(v) ||
        duration_parse(json_string_value(v), json_string_length(v), &n, &e2) != 0)
        return rk_error_set(err, RK_EINVAL,
                            "invalid \"%s\": expected a duration such as \"0s\", \"30m\" or "
                            "\"768h\"",
                            fname);
    if (n > INT64_MAX / 1000000)
        return rk_error_set(err, RK_EINVAL, "invalid \"%s\": too large", fname);
    *secs = n;
    return 0;
}

int
kvjson_decode_meta_settings(const json_t *body, struct kv_meta_settings *s, struct rk_error *err)
{
    struct kv_meta_settings t;
    const char *k;
    json_t *v, *e;
    int64_t n;
    int r;

    memset(&t, 0, sizeof(t));
    if ((r = body_check(body, err)) != 0)
        return r;
    if ((v = field(body, "max_versions")) != NULL) {
        if ((r = int_field(v, "max_versions", 0, UINT32_MAX, &n, err)) != 0)
            return r;
        t.has_max_versions = 1;
        t.max_versions = (uint32_t)n;
    }
    if ((v = field(body, "cas_required")) != NULL) {
        if ((r = bool_field(v, "cas_required", &t.cas_required, err)) != 0)
            return r;
        t.has_cas_required = 1;
    }
    if ((v = field(body, "delete_version_after")) != NULL) {
        if ((r = kvjson_duration_value(v, "delete_version_after", &n, err)) != 0)
            return r;
        t.has_delete_version_after = 1;
        t.delete_version_after = n;
    }
    if ((v = field(body, "custom_metadata")) != NULL) {
        if (!json_is_object(v))
            return type_error(err, "custom_metadata", "an object of strings", v);
        if (json_object_size(v) > KV_CUSTOM_MAX_KEYS)
            return rk_error_set(err, RK_EINVAL, "custom_metadata has %zu keys; the limit is %d",
                                json_object_size(v), KV_CUSTOM_MAX_KEYS);
        json_object_foreach(v, k, e)
        {
            size_t klen = strlen(k);
            if (klen == 0 || klen > KV_CUSTOM_KEY_MAX)
                return rk_error_set(err, RK_EINVAL,
                                    "custom_metadata: a key must be 1 to %d bytes long",
                                    KV_CUSTOM_KEY_MAX);
            if (!json_is_string(e))
                return rk_error_set(err, RK_EINVAL,
                                    "invalid \"custom_metadata\": the value of \"%.128s\" must "
                                    "be a string, got %s",
                                    k, type_name(e));
            if (json_string_length(e) > KV_CUSTOM_VALUE_MAX)
                return rk_error_set(err, RK_EINVAL,
                                    "custom_metadata: the value of \"%.128s\" is longer than %d "
                                    "bytes",
                                    k, KV_CUSTOM_VALUE_MAX);
        }
        t.has_custom_metadata = 1;
        t.custom_metadata = v;
    }
    *s = t;
    return 0;
}

int
kvjson_decode_config(const json_t *body, struct kvjson_config *cfg, struct rk_error *err)
{
    struct kvjson_config c = *cfg;
    json_t *v;
    int64_t n;
    int r;

    if ((r = body_check(body, err)) != 0)
        return r;
    if ((v = field(body, "max_versions")) != NULL) {
        if ((r = int_field(v, "max_versions", 0, UINT32_MAX, &n, err)) != 0)
            return r;
        c.max_versions = (uint32_t)n;
    }
    if ((v = field(body, "cas_required")) != NULL &&
        (r = bool_field(v, "cas_required", &c.cas_required, err)) != 0)
        return r;
    if ((v = field(body, "delete_version_after")) != NULL) {
        if ((r = kvjson_duration_value(v, "delete_version_after", &n, err)) != 0)
            return r;
        c.delete_version_after = n;
    }
    *cfg = c;
    return 0;
}

int
kvjson_config_load(const char *text, size_t len, struct kvjson_config *cfg, struct rk_error *err)
{
    json_error_t jerr;
    json_int_t mv = 0, dva = 0;
    int cas = 0;
    json_t *j;
    int r = 0;

    if ((j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        return rk_error_set(err, RK_ECORRUPT, "stored KV config does not parse: %s", jerr.text);
    if (json_unpack_ex(j, &jerr, JSON_STRICT, "{s:I, s:b, s:I}", "max_versions", &mv,
                       "cas_required", &cas, "delete_version_after", &dva) != 0) {
        r = rk_error_set(err, RK_ECORRUPT, "stored KV config: %s", jerr.text);
    } else if (mv < 0 || mv > (json_int_t)UINT32_MAX || dva < 0) {
        r = rk_error_set(err, RK_ECORRUPT, "stored KV config: value out of range");
    } else {
        cfg->max_versions = (uint32_t)mv;
        cfg->cas_required = cas;
        cfg->delete_version_after = dva;
    }
    json_decref(j);
    return r;
}

char *
kvjson_config_dump(const struct kvjson_config *cfg)
{
    json_t *j =
        json_pack("{s:I, s:b, s:I}", "max_versions", (json_int_t)cfg->max_versions, "cas_required",
                  cfg->cas_required, "delete_version_after", (json_int_t)cfg->delete_version_after);
    char *s;

    if (j == NULL)
        return NULL;
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

int
kvjson_decode_rotate(const json_t *body, const char **reason, int *dry_run, struct rk_error *err)
{
    const char *rs = NULL;
    int dry = 0, r;
    json_t *v;

    if ((r = body_check(body, err)) != 0)
        return r;
    if ((r = reason_field(body, &rs, err)) != 0)
        return r;
    if ((v = field(body, "dry_run")) != NULL && (r = bool_field(v, "dry_run", &dry, err)) != 0)
        return r;
    *reason = rs;
    *dry_run = dry;
    return 0;
}

int
kvjson_decode_rollback(const json_t *body, uint64_t *to_version, const char **reason, int *dry_run,
                       struct rk_error *err)
{
    const char *rs = NULL;
    int64_t n = 0;
    int dry = 0, r;
    json_t *v;

    if ((r = body_check(body, err)) != 0)
        return r;
    if ((r = reason_field(body, &rs, err)) != 0)
        return r;
    if ((v = field(body, "to_version")) != NULL &&
        (r = int_field(v, "to_version", 0, INT64_MAX, &n, err)) != 0)
        return r;
    if ((v = field(body, "dry_run")) != NULL && (r = bool_field(v, "dry_run", &dry, err)) != 0)
        return r;
    *to_version = (uint64_t)n;
    *dry_run = dry;
    *reason = rs;
    return 0;
}

int
kvjson_parse_version_query(const char *q, uint64_t *version, struct rk_error *err)
{
    int64_t n;

    *version = 0;
    if (q == NULL || q[0] == '\0')
        return 0;
    if (parse_int64(q, 0, INT64_MAX, &n) != 0)
        return rk_error_set(err, RK_EINVAL, "invalid \"version\": expected a non-negative integer");
    *version = (uint64_t)n;
    return 0;
}

/* ---- encoders ---- */

void
kvjson_duration_go(int64_t secs, char *out, size_t outlen)
{
    const char *sign = "";
    uint64_t u;

    if (secs < 0) {
        sign = "-";
        u = (uint64_t)(-(secs + 1)) + 1;
    } else {
        u = (uint64_t)secs;
    }
    if (u >= 3600)
        snprintf(out, outlen, "%s%" PRIu64 "h%" PRIu64 "m%" PRIu64 "s", sign, u / 3600,
                 (u / 60) % 60, u % 60);
    else if (u >= 60)
        snprintf(out, outlen, "%s%" PRIu64 "m%" PRIu64 "s", sign, u / 60, u % 60);
    else
        snprintf(out, outlen, "%s%" PRIu64 "s", sign, u);
}

static void
fmt_time(int64_t us, char *out, size_t outlen)
{
    if (us == 0)
        out[0] = '\0';
    else
        time_format_rfc3339(us, out, outlen);
}

/* custom_metadata as Vault shows it: null when there is none. */
static json_t *
custom_or_null(const json_t *custom)
{
    if (custom == NULL || !json_is_object(custom) || json_object_size(custom) == 0)
        return json_null();
    return json_deep_copy(custom);
}

json_t *
kvjson_version_meta(const struct kv_version_meta *vm, const json_t *custom)
{
    char created[40], deleted[40];

    fmt_time(vm->created_us, created, sizeof(created));
    fmt_time(vm->deletion_us, deleted, sizeof(deleted));
    return json_pack("{s:s, s:o, s:s, s:b, s:I}", "created_time", created, "custom_metadata",
                     custom_or_null(custom), "deletion_time", deleted, "destroyed",
                     vm->destroyed ? 1 : 0, "version", (json_int_t)vm->version);
}

char *
kvjson_read_response(const struct secret *text, const struct kv_version_meta *vm,
                     const json_t *custom, size_t *len)
{
    char head[API_ENVELOPE_HEAD_MAX], created[40], deleted[40], meta[256], *cm = NULL, *out = NULL;
    const char *tail;
    size_t hl, tl, ml, cml, tail_len, n, off = 0;
    int k;

    *len = 0;
    if (text == NULL || text->data == NULL || text->len < 2 || text->data[0] != '{' ||
        text->data[text->len - 1] != '}')
        return NULL;
    tl = text->len;
    /* The envelope (api/envelope.h) around {"data": <text>, "metadata": {…}}. */
    if ((hl = api_envelope_head(head)) == 0)
        return NULL;
    tail = api_envelope_tail(&tail_len);
    if (custom != NULL && json_is_object(custom) && json_object_size(custom) > 0 &&
        (cm = json_dumps(custom, JSON_COMPACT)) == NULL)
        return NULL;
    cml = cm != NULL ? strlen(cm) : 4; /* "null" */
    fmt_time(vm->created_us, created, sizeof(created));
    fmt_time(vm->deletion_us, deleted, sizeof(deleted));
    /* The part of the metadata after custom_metadata (times are plain ASCII: no escaping). */
    k = snprintf(meta, sizeof(meta),
                 ",\"deletion_time\":\"%s\",\"destroyed\":%s,\"version\":%" PRIu64 "}", deleted,
                 vm->destroyed ? "true" : "false", vm->version);
    if (k < 0 || (size_t)k >= sizeof(meta))
        goto out;
    ml = (size_t)k;
    n = hl + strlen("{\"data\":") + tl + strlen(",\"metadata\":{\"created_time\":\"") +
        strlen(created) + strlen("\",\"custom_metadata\":") + cml + ml + strlen("}") + tail_len;
    if ((out = malloc(n + 1)) == NULL)
        goto out;
#define PUT(p, l)                                                                                  \
    do {                                                                                           \
        memcpy(out + off, (p), (l));                                                               \
        off += (l);                                                                                \
    } while (0)
#define PUTS(s) PUT((s), strlen(s))
    PUT(head, hl);
    PUTS("{\"data\":");
    PUT(text->data, tl);
    PUTS(",\"metadata\":{\"created_time\":\"");
    PUTS(created);
    PUTS("\",\"custom_metadata\":");
    PUT(cm != NULL ? cm : "null", cml);
    PUT(meta, ml);
    PUTS("}");
    PUT(tail, tail_len);
#undef PUTS
#undef PUT
    out[off] = '\0';
    *len = off;
out:
    free(cm);
    return out;
}

json_t *
kvjson_metadata(const struct kv_meta *m)
{
    char created[40], updated[40], dva[40];
    json_t *versions, *j;

    if ((versions = json_object()) == NULL)
        return NULL;
    for (size_t i = 0; i < m->nversions; i++) {
        const struct kv_version_meta *vm = &m->versions[i];
        char key[24], vc[40], vd[40];
        json_t *e;

        snprintf(key, sizeof(key), "%" PRIu64, vm->version);
        fmt_time(vm->created_us, vc, sizeof(vc));
        fmt_time(vm->deletion_us, vd, sizeof(vd));
        e = json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:s}", "created_time", vc, "deletion_time",
                      vd, "destroyed", vm->destroyed ? 1 : 0, "stage", kv_stage_name(vm->stage),
                      "fingerprint", vm->destroyed ? "" : vm->fingerprint, "author", vm->author,
                      "reason", vm->reason);
        if (e == NULL || json_object_set_new(versions, key, e) != 0) {
            json_decref(versions);
            return NULL;
        }
    }
    fmt_time(m->created_us, created, sizeof(created));
    fmt_time(m->updated_us, updated, sizeof(updated));
    kvjson_duration_go(m->delete_version_after, dva, sizeof(dva));
    j = json_pack("{s:b, s:s, s:I, s:I, s:o, s:s, s:I, s:I, s:s, s:o}", "cas_required",
                  m->cas_required ? 1 : 0, "created_time", created, "current_version",
                  (json_int_t)m->latest_version, "current_stage_version",
                  (json_int_t)m->current_version, "custom_metadata",
                  custom_or_null(m->custom_metadata), "delete_version_after", dva, "max_versions",
                  (json_int_t)m->max_versions, "oldest_version", (json_int_t)m->oldest_version,
                  "updated_time", updated, "versions", versions);
    return j;
}

json_t *
kvjson_keys(char *const *names)
{
    json_t *a = json_array();

    if (a == NULL)
        return NULL;
    for (size_t i = 0; names != NULL && names[i] != NULL; i++) {
        if (json_array_append_new(a, json_string(names[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return json_pack("{s:o}", "keys", a);
}

json_t *
kvjson_config_encode(const struct kvjson_config *cfg)
{
    char dva[40];

    kvjson_duration_go(cfg->delete_version_after, dva, sizeof(dva));
    return json_pack("{s:b, s:s, s:I}", "cas_required", cfg->cas_required ? 1 : 0,
                     "delete_version_after", dva, "max_versions", (json_int_t)cfg->max_versions);
}

/* Adds "needs_input" to a status element j (taken): the entry's rotator flags say a person
 * types the value, and no candidate is pending (a rotation takes that one up again). */
static json_t *
status_needs_input(json_t *j, const struct secret_status *st)
{
    unsigned flags = rotator_flags(rotator_find(st->secret->kind), st->secret);
    int needs = (flags & ROT_F_MANUAL_INPUT) != 0 && st->state != STATE_PENDING;

    if (j != NULL && json_object_set_new(j, "needs_input", json_boolean(needs)) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *
kvjson_status(const struct secret_status *st)
{
    char last[40] = "", next[40] = "", exp[40] = "";
    json_t *j;

    if (st->last_rotated > 0)
        time_format_rfc3339(st->last_rotated * 1000000, last, sizeof(last));
    if (st->next_due > 0)
        time_format_rfc3339(st->next_due * 1000000, next, sizeof(next));
    if (st->expires_at > 0)
        time_format_rfc3339(st->expires_at * 1000000, exp, sizeof(exp));
    /* expires_at: from the kind's status op (null when it does not say); source: "config" for
     * an inventory entry, "store" for one defined through the API. */
    j = json_pack("{s:s, s:s, s:I, s:s?, s:s?, s:s?, s:s?, s:s, s:b, s:s, s:s}", "path",
                  st->secret->path, "kind", st->secret->kind, "version", (json_int_t)st->version,
                  "fingerprint", st->fingerprint[0] ? st->fingerprint : NULL, "last_rotated",
                  last[0] ? last : NULL, "next_due", next[0] ? next : NULL, "expires_at",
                  exp[0] ? exp : NULL, "state", secret_state_name(st->state), "auto",
                  st->secret->auto_rotate ? 1 : 0, "detail", st->detail, "source",
                  st->in_store ? "store" : "config");
    return status_needs_input(j, st);
}

/* A fixed-size char array from a struct may lack its NUL if a writer filled it: bound it. */
static json_t *
bounded_string(const char *s, size_t cap)
{
    size_t len = strnlen(s, cap);
    json_t *j = json_stringn(s, len);

    return j != NULL ? j : json_string("");
}

json_t *
kvjson_event(const struct rot_event *ev)
{
    char when[40];

    fmt_time(ev->time_us, when, sizeof(when));
    return json_pack("{s:s, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:I}", "time", when, "op",
                     bounded_string(ev->op, sizeof(ev->op)), "result",
                     bounded_string(ev->result, sizeof(ev->result)), "from_version",
                     (json_int_t)ev->from_version, "to_version", (json_int_t)ev->to_version,
                     "author", bounded_string(ev->author, sizeof(ev->author)), "reason",
                     bounded_string(ev->reason, sizeof(ev->reason)), "message",
                     bounded_string(ev->message, sizeof(ev->message)), "duration_ms",
                     (json_int_t)ev->duration_ms);
}

json_t *
kvjson_rotate_result(const char *path, const struct rotate_result *res)
{
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:b, s:o}", "path", path, "old_version",
                     (json_int_t)res->old_version, "new_version", (json_int_t)res->new_version,
                     "old_fingerprint", res->old_fp, "new_fingerprint", res->new_fp, "rolled_back",
                     res->rolled_back ? 1 : 0, "message",
                     bounded_string(res->message, sizeof(res->message)));
}
