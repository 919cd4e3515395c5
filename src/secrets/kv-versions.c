/* kv-versions.c: the metadata model of a KV path: its versions in ascending order, their stages
 * (at most one current, at most one previous), adding, promoting and pruning versions, and the
 * JSON form of metadata format 1 (kv_meta_encode / kv_meta_decode; the binary format 2 is
 * kvmeta.c's). Pure functions on struct kv_meta: no store access. See kv.h for the contracts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secrets/kv-int.h"
#include "secrets/kvmeta.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define NSTAGES ((unsigned)KV_STAGE_FAILED + 1)

/* ---- metadata records ---- */

struct kv_meta *
kv_meta_new(void)
{
    struct kv_meta *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    if ((m->custom_metadata = json_object()) == NULL) {
        free(m);
        return NULL;
    }
    m->created_us = m->updated_us = time_now_us();
    return m;
}

void
kv_meta_free(struct kv_meta *meta)
{
    if (meta == NULL)
        return;
    json_decref(meta->custom_metadata);
    free(meta->versions);
    free(meta);
}

struct kv_meta *
kv_meta_dup(const struct kv_meta *meta)
{
    struct kv_meta *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    *m = *meta;
    m->versions = NULL;
    m->custom_metadata = json_deep_copy(meta->custom_metadata);
    if (m->custom_metadata == NULL)
        goto fail;
    if (meta->nversions > 0) {
        m->versions = malloc(meta->nversions * sizeof(*m->versions));
        if (m->versions == NULL)
            goto fail;
        memcpy(m->versions, meta->versions, meta->nversions * sizeof(*m->versions));
    }
    return m;
fail:
    kv_meta_free(m);
    return NULL;
}

struct kv_version_meta *
kv_meta_find(const struct kv_meta *meta, uint64_t version)
{
    size_t lo = 0, hi = meta->nversions;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t v = meta->versions[mid].version;
        if (v == version)
            return &meta->versions[mid];
        if (v < version)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void
meta_recount(struct kv_meta *meta)
{
    meta->current_version = 0;
    for (size_t i = 0; i < meta->nversions; i++)
        if (meta->versions[i].stage == KV_STAGE_CURRENT)
            meta->current_version = meta->versions[i].version;
    meta->oldest_version = meta->nversions > 0 ? meta->versions[0].version : 0;
}

static void
demote_previous(struct kv_meta *meta, uint64_t except)
{
    for (size_t i = 0; i < meta->nversions; i++)
        if (meta->versions[i].stage == KV_STAGE_PREVIOUS && meta->versions[i].version != except)
            meta->versions[i].stage = KV_STAGE_RETIRED;
}

static int
check_usable(const struct kv_version_meta *vm, struct rk_error *err)
{
    if (vm->destroyed)
        return rk_error_set(err, RK_EINVAL, "version %" PRIu64 " is destroyed", vm->version);
    if (kv_version_deleted(vm, time_now_us()))
        return rk_error_set(err, RK_EINVAL, "version %" PRIu64 " is deleted", vm->version);
    return 0;
}

int
kv_meta_set_current(struct kv_meta *meta, uint64_t version, enum kv_stage old_stage,
                    struct rk_error *err)
{
    struct kv_version_meta *vm = kv_meta_find(meta, version), *old;
    int r;

    if (vm == NULL)
        return rk_error_set(err, RK_ENOTFOUND, "no version %" PRIu64, version);
    if ((unsigned)old_stage >= NSTAGES || old_stage == KV_STAGE_CURRENT)
        return rk_error_set(err, RK_EINVAL, "the old current version needs another stage");
    if ((r = check_usable(vm, err)) != 0)
        return r;
    if (meta->current_version == version)
        return 0;
    old = meta->current_version != 0 ? kv_meta_find(meta, meta->current_version) : NULL;
    if (old_stage == KV_STAGE_PREVIOUS && old != NULL)
        demote_previous(meta, 0);
    if (old != NULL)
        old->stage = old_stage;
    vm->stage = KV_STAGE_CURRENT;
    meta->current_version = version;
    return 0;
}

int
kv_meta_promote(struct kv_meta *meta, uint64_t version, struct rk_error *err)
{
    return kv_meta_set_current(meta, version, KV_STAGE_PREVIOUS, err);
}

int
kv_meta_set_stage(struct kv_meta *meta, uint64_t version, enum kv_stage stage, struct rk_error *err)
{
    struct kv_version_meta *vm = kv_meta_find(meta, version);

    if ((unsigned)stage >= NSTAGES)
        return rk_error_set(err, RK_EINVAL, "unknown stage %d", (int)stage);
    if (vm == NULL)
        return rk_error_set(err, RK_ENOTFOUND, "no version %" PRIu64, version);
    if (stage == KV_STAGE_CURRENT)
        return kv_meta_promote(meta, version, err);
    if (vm->stage == KV_STAGE_CURRENT)
        return rk_error_set(err, RK_EINVAL,
                            "version %" PRIu64 " is current; make another version current first",
                            version);
    if (stage == KV_STAGE_PREVIOUS)
        demote_previous(meta, version);
    vm->stage = stage;
    return 0;
}

int
kv_meta_add_version(struct kv_meta *meta, enum kv_stage stage, const char *author,
                    const char *reason, const char *fp, uint64_t *version, struct rk_error *err)
{
    struct kv_version_meta *nv, *vm;

    if (stage != KV_STAGE_CURRENT && stage != KV_STAGE_PENDING)
        return rk_error_set(err, RK_EINVAL, "a new version is either current or pending");
    if (author != NULL && strlen(author) >= KV_AUTHOR_MAX)
        return rk_error_set(err, RK_EINVAL, "author is longer than %d bytes", KV_AUTHOR_MAX - 1);
    if (reason != NULL && strlen(reason) >= KV_REASON_MAX)
        return rk_error_set(err, RK_EINVAL, "reason is longer than %d bytes", KV_REASON_MAX - 1);
    if ((author != NULL && !utf8_valid((const unsigned char *)author, strlen(author))) ||
        (reason != NULL && !utf8_valid((const unsigned char *)reason, strlen(reason))))
        return rk_error_set(err, RK_EINVAL, "author and reason must be UTF-8 text");
    if (!fingerprint_valid(fp))
        return rk_error_set(err, RK_EINVAL, "bad fingerprint");
    if (meta->latest_version == UINT64_MAX)
        return rk_error_set(err, RK_ELIMIT, "version numbers exhausted");
    nv = realloc(meta->versions, (meta->nversions + 1) * sizeof(*nv));
    if (nv == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    meta->versions = nv;
    vm = &nv[meta->nversions++];
    memset(vm, 0, sizeof(*vm));
    vm->version = ++meta->latest_version;
    vm->created_us = time_now_us();
    /* Capped at the latest time the metadata formats hold (and far from overflowing). */
    if (meta->delete_version_after > 0)
        vm->deletion_us =
            meta->delete_version_after >= (KV_META_TIME_MAX - vm->created_us) / 1000000
                ? KV_META_TIME_MAX
                : vm->created_us + meta->delete_version_after * 1000000;
    vm->stage = KV_STAGE_PENDING;
    snprintf(vm->author, sizeof(vm->author), "%s", author != NULL ? author : "");
    snprintf(vm->reason, sizeof(vm->reason), "%s", reason != NULL ? reason : "");
    memcpy(vm->fingerprint, fp, FINGERPRINT_LEN + 1);
    meta->updated_us = vm->created_us;
    if (meta->oldest_version == 0)
        meta->oldest_version = vm->version;
    if (version != NULL)
        *version = vm->version;
    if (stage == KV_STAGE_CURRENT) {
        /* Promoted directly: kv_meta_promote's usability check is moot for a fresh version. */
        struct kv_version_meta *old =
            meta->current_version != 0 ? kv_meta_find(meta, meta->current_version) : NULL;
        if (old != NULL) {
            demote_previous(meta, 0);
            old->stage = KV_STAGE_PREVIOUS;
        }
        vm->stage = KV_STAGE_CURRENT;
        meta->current_version = vm->version;
    }
    return 0;
}

/* Removes the oldest versions beyond max_versions that are not current, previous or pending.
 * Calls del(arg, version) for each removed version. */
int
meta_prune(struct kv_meta *meta, int (*del)(void *, uint64_t), void *arg)
{
    size_t max = meta->max_versions != 0 ? meta->max_versions : KV_DEFAULT_MAX_VERSIONS;
    size_t excess, j = 0;
    int r;

    if (meta->nversions <= max)
        return 0;
    excess = meta->nversions - max;
    for (size_t i = 0; i < meta->nversions; i++) {
        struct kv_version_meta *vm = &meta->versions[i];
        if (excess > 0 && vm->stage != KV_STAGE_CURRENT && vm->stage != KV_STAGE_PREVIOUS &&
            vm->stage != KV_STAGE_PENDING) {
            if ((r = del(arg, vm->version)) != 0)
                return r;
            excess--;
            continue;
        }
        if (j != i)
            meta->versions[j] = *vm;
        j++;
    }
    meta->nversions = j;
    meta_recount(meta);
    return 0;
}

/* ---- encoding ---- */

/* The encoder writes the JSON itself (the put path encodes metadata on every write, and building
 * a jansson tree for it cost more than the rest of the put's CPU work). Its output is byte for
 * byte what json_dumps(JSON_COMPACT) of the equivalent tree gives: same key order, same escapes
 * ("\"", "\\", \b \f \n \r \t, other control characters as \u00XX, UTF-8 as is), and invalid
 * UTF-8 is refused as json_string would. */
struct jbuf {
    char *p;
    size_t len, cap;
    int bad;
};

static void
jb_grow(struct jbuf *b, size_t n)
{
    size_t ncap;
    char *np;

    if (b->bad || b->len + n + 1 <= b->cap)
        return;
    ncap = b->cap ? b->cap : 1024;
    while (ncap < b->len + n + 1)
        ncap *= 2;
    if ((np = realloc(b->p, ncap)) == NULL) {
        b->bad = 1;
        return;
    }
    b->p = np;
    b->cap = ncap;
}

static void
jb_raw(struct jbuf *b, const char *s, size_t n)
{
    jb_grow(b, n);
    if (b->bad)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

#define JB_LIT(b, s) jb_raw((b), (s), sizeof(s) - 1)

static void
jb_int(struct jbuf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[--i] = '-';
    jb_raw(b, tmp + i, sizeof(tmp) - i);
}

static void
jb_str(struct jbuf *b, const char *str)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), run = 0, i = 0;

    JB_LIT(b, "\"");
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        char esc[6];
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\') {
            if ((k = utf8_seq(s + i, n - i)) == 0) {
                b->bad = 1;
                return;
            }
            i += k;
            run += k;
            continue;
        }
        jb_raw(b, (const char *)s + i - run, run);
        run = 0;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            elen = 6;
        }
        jb_raw(b, esc, elen);
        i++;
    }
    jb_raw(b, (const char *)s + n - run, run);
    JB_LIT(b, "\"");
}

static void
jb_2(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

/* A time as time_format_rfc3339 writes it ("" for 0). */
static void
jb_time(struct jbuf *b, int64_t us)
{
    char buf[40];
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    int frac = (int)(us % 1000000), year;

    if (us == 0) {
        JB_LIT(b, "\"\"");
        return;
    }
    if (gmtime_r(&t, &tm) == NULL || (year = tm.tm_year + 1900) < 1000 || year > 9999 || frac < 0) {
        time_format_rfc3339(us, buf, sizeof(buf));
        jb_str(b, buf);
        return;
    }
    buf[0] = '"';
    jb_2(buf + 1, year / 100);
    jb_2(buf + 3, year % 100);
    buf[5] = '-';
    jb_2(buf + 6, tm.tm_mon + 1);
    buf[8] = '-';
    jb_2(buf + 9, tm.tm_mday);
    buf[11] = 'T';
    jb_2(buf + 12, tm.tm_hour);
    buf[14] = ':';
    jb_2(buf + 15, tm.tm_min);
    buf[17] = ':';
    jb_2(buf + 18, tm.tm_sec);
    if (frac != 0) {
        buf[20] = '.';
        jb_2(buf + 21, frac / 10000);
        jb_2(buf + 23, frac / 100 % 100);
        jb_2(buf + 25, frac % 100);
        memcpy(buf + 27, "Z\"", 2);
        jb_raw(b, buf, 29);
    } else {
        memcpy(buf + 20, "Z\"", 2);
        jb_raw(b, buf, 22);
    }
}

int
kv_meta_encode(const struct kv_meta *meta, char **out, size_t *len, struct rk_error *err)
{
    struct jbuf b = {0};

    *out = NULL;
    JB_LIT(&b, "{\"format\":");
    jb_int(&b, KV_META_FORMAT);
    JB_LIT(&b, ",\"created_time\":");
    jb_time(&b, meta->created_us);
    JB_LIT(&b, ",\"updated_time\":");
    jb_time(&b, meta->updated_us);
    JB_LIT(&b, ",\"current_version\":");
    jb_int(&b, (int64_t)meta->current_version);
    JB_LIT(&b, ",\"latest_version\":");
    jb_int(&b, (int64_t)meta->latest_version);
    JB_LIT(&b, ",\"oldest_version\":");
    jb_int(&b, (int64_t)meta->oldest_version);
    JB_LIT(&b, ",\"max_versions\":");
    jb_int(&b, meta->max_versions);
    if (meta->cas_required)
        JB_LIT(&b, ",\"cas_required\":true");
    else
        JB_LIT(&b, ",\"cas_required\":false");
    JB_LIT(&b, ",\"delete_version_after\":");
    jb_int(&b, meta->delete_version_after);
    JB_LIT(&b, ",\"custom_metadata\":");
    if (meta->custom_metadata == NULL || json_object_size(meta->custom_metadata) == 0) {
        JB_LIT(&b, "{}");
    } else {
        char *c = json_dumps(meta->custom_metadata, JSON_COMPACT | JSON_SORT_KEYS);
        if (c == NULL)
            b.bad = 1;
        else
            jb_raw(&b, c, strlen(c));
        free(c);
    }
    JB_LIT(&b, ",\"versions\":[");
    for (size_t i = 0; i < meta->nversions && !b.bad; i++) {
        const struct kv_version_meta *vm = &meta->versions[i];

        if (i > 0)
            JB_LIT(&b, ",");
        JB_LIT(&b, "{\"version\":");
        jb_int(&b, (int64_t)vm->version);
        JB_LIT(&b, ",\"created_time\":");
        jb_time(&b, vm->created_us);
        JB_LIT(&b, ",\"deletion_time\":");
        jb_time(&b, vm->deletion_us);
        if (vm->destroyed)
            JB_LIT(&b, ",\"destroyed\":true,\"stage\":");
        else
            JB_LIT(&b, ",\"destroyed\":false,\"stage\":");
        jb_str(&b, kv_stage_name(vm->stage));
        JB_LIT(&b, ",\"author\":");
        jb_str(&b, vm->author);
        JB_LIT(&b, ",\"reason\":");
        jb_str(&b, vm->reason);
        JB_LIT(&b, ",\"fingerprint\":");
        jb_str(&b, vm->fingerprint);
        JB_LIT(&b, "}");
    }
    JB_LIT(&b, "]}");
    if (b.bad) {
        free(b.p);
        return rk_error_set(err, RK_ENOMEM, "encoding metadata failed");
    }
    *out = b.p;
    if (len != NULL)
        *len = b.len;
    return 0;
}

static int
get_uint(json_t *o, const char *k, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(o, k);

    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int
get_time(json_t *o, const char *k, int allow_empty, int64_t *us)
{
    json_t *v = json_object_get(o, k);
    const char *s;

    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    if (s[0] == '\0') {
        *us = 0;
        return allow_empty ? 0 : -1;
    }
    if (time_parse_rfc3339(s, us) != 0 || *us <= 0)
        return -1;
    return 0;
}

static int
get_bool(json_t *o, const char *k, int *out)
{
    json_t *v = json_object_get(o, k);

    if (!json_is_boolean(v))
        return -1;
    *out = json_is_true(v);
    return 0;
}

static int
get_str(json_t *o, const char *k, char *out, size_t outlen)
{
    json_t *v = json_object_get(o, k);

    if (!json_is_string(v) || json_string_length(v) >= outlen ||
        strlen(json_string_value(v)) != json_string_length(v))
        return -1;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* Checks a custom_metadata object against Vault's limits. Returns 0 or -RK_EINVAL. */
int
kv_custom_check(const json_t *c, struct rk_error *err)
{
    const char *k;
    json_t *v;

    if (!json_is_object(c))
        return rk_error_set(err, RK_EINVAL, "custom_metadata must be an object");
    if (json_object_size(c) > KV_CUSTOM_MAX_KEYS)
        return rk_error_set(err, RK_EINVAL, "custom_metadata has more than %d keys",
                            KV_CUSTOM_MAX_KEYS);
    json_object_foreach((json_t *)c, k, v)
    {
        size_t kl = strlen(k);
        if (kl == 0 || kl > KV_CUSTOM_KEY_MAX)
            return rk_error_set(err, RK_EINVAL, "custom_metadata keys are 1 to %d bytes long",
                                KV_CUSTOM_KEY_MAX);
        if (!json_is_string(v) || json_string_length(v) > KV_CUSTOM_VALUE_MAX)
            return rk_error_set(err, RK_EINVAL,
                                "custom_metadata values are strings of at most %d bytes",
                                KV_CUSTOM_VALUE_MAX);
    }
    return 0;
}

int
kv_meta_decode(const char *json, size_t len, struct kv_meta **out, struct rk_error *err)
{
    struct kv_meta *m = NULL;
    json_error_t jerr;
    json_t *root, *arr, *custom, *v;
    uint64_t u;
    int64_t dva;
    const char *what = "metadata";
    int r = -RK_ECORRUPT;
    size_t i;

    *out = NULL;
    if (len > KV_META_MAX)
        return rk_error_set(err, RK_ECORRUPT, "metadata is too large");
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return rk_error_set(err, RK_ECORRUPT, "metadata does not parse: %s (line %d)", jerr.text,
                            jerr.line);
    if (!json_is_object(root))
        goto bad;
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    what = "format";
    if (get_uint(root, "format", INT64_MAX, &u) != 0)
        goto bad;
    if (u != KV_META_FORMAT) {
        r = rk_error_set(err, RK_EVERSION, "metadata format %" PRIu64 " is not supported", u);
        goto out;
    }
    what = "times";
    if (get_time(root, "created_time", 0, &m->created_us) != 0 ||
        get_time(root, "updated_time", 0, &m->updated_us) != 0)
        goto bad;
    what = "version numbers";
    if (get_uint(root, "current_version", INT64_MAX, &m->current_version) != 0 ||
        get_uint(root, "latest_version", INT64_MAX, &m->latest_version) != 0 ||
        get_uint(root, "oldest_version", INT64_MAX, &m->oldest_version) != 0)
        goto bad;
    what = "settings";
    if (get_uint(root, "max_versions", UINT32_MAX, &u) != 0)
        goto bad;
    m->max_versions = (uint32_t)u;
    if (get_bool(root, "cas_required", &m->cas_required) != 0)
        goto bad;
    if (get_uint(root, "delete_version_after", INT64_MAX / 1000000, &u) != 0)
        goto bad;
    dva = (int64_t)u;
    m->delete_version_after = dva;
    custom = json_object_get(root, "custom_metadata");
    if (kv_custom_check(custom, NULL) != 0)
        goto bad;
    m->custom_metadata = json_incref(custom);
    what = "versions";
    arr = json_object_get(root, "versions");
    if (!json_is_array(arr))
        goto bad;
    m->nversions = json_array_size(arr);
    if (m->nversions > 0) {
        m->versions = calloc(m->nversions, sizeof(*m->versions));
        if (m->versions == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
    }
    json_array_foreach(arr, i, v)
    {
        struct kv_version_meta *vm = &m->versions[i];
        json_t *st;
        if (!json_is_object(v) || get_uint(v, "version", INT64_MAX, &vm->version) != 0 ||
            vm->version == 0 || vm->version > m->latest_version ||
            (i > 0 && vm->version <= m->versions[i - 1].version) ||
            get_time(v, "created_time", 0, &vm->created_us) != 0 ||
            get_time(v, "deletion_time", 1, &vm->deletion_us) != 0 ||
            get_bool(v, "destroyed", &vm->destroyed) != 0 ||
            get_str(v, "author", vm->author, sizeof(vm->author)) != 0 ||
            get_str(v, "reason", vm->reason, sizeof(vm->reason)) != 0 ||
            get_str(v, "fingerprint", vm->fingerprint, sizeof(vm->fingerprint)) != 0)
            goto bad;
        st = json_object_get(v, "stage");
        if (!json_is_string(st) || kv_stage_parse(json_string_value(st), &vm->stage) != 0)
            goto bad;
    }
    /* The invariants between fields (stages, oldest_version, …) are the binary format's too. */
    if ((r = kv_meta_validate(m, err)) != 0)
        goto out;
    *out = m;
    m = NULL;
    r = 0;
    goto out;
bad:
    r = rk_error_set(err, RK_ECORRUPT, "metadata is corrupt (%s)", what);
out:
    kv_meta_free(m);
    json_decref(root);
    return r;
}
