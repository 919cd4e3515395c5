/* kvmeta.c: the binary metadata codec (format 2; the layout is documented in kvmeta.h).
 *
 * The decoder is strict on purpose: every accepted input is the one encoding of its value
 * (minimal varints, sorted custom keys, the compact fingerprint form whenever it applies, no
 * trailing bytes), so a fuzzer can demand decode-then-encode be the identity, and a stored record
 * never has two spellings. */
#include "secrets/kvmeta.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/enc.h"
#include "util/parse.h"

/* The two compact fingerprint forms: the keyed one (util/enc.h) and the unkeyed one of stores
 * from before keyed fingerprints (still decoded, and encoded again for the codec's round trip;
 * kv.c never shows one and rewrites them, see kv.h). */
#define FP_OLD_PREFIX "sha256:"
#define FP_RAW 6 /* bytes behind the 12 hex digits */

#define FLAG_CAS 0x01u

#define VB_STAGE 0x07u
#define VB_DESTROYED 0x08u
#define VB_FPCOMPACT 0x10u /* "sha256:" + 12 hex */
#define VB_FPKEYED 0x20u   /* FINGERPRINT_PREFIX + 12 hex */

/* The smallest version record: six one-byte varints or bytes and an empty fingerprint length. */
#define VREC_MIN 7

/* ---- validation ---- */

/* 1 when the string in arr (size bytes) is NUL-terminated within it and valid UTF-8. */
static int
str_ok(const char *arr, size_t size)
{
    const char *nul = memchr(arr, '\0', size);

    return nul != NULL && utf8_valid((const unsigned char *)arr, (size_t)(nul - arr));
}

static int
time_ok(int64_t us, int allow_zero)
{
    return (allow_zero && us == 0) || (us > 0 && us <= KV_META_TIME_MAX);
}

int
kv_meta_validate(const struct kv_meta *m, struct rk_error *err)
{
    const char *what;
    const char *k;
    json_t *v;
    size_t ncur = 0, nprev = 0;

    what = "times";
    if (!time_ok(m->created_us, 0) || !time_ok(m->updated_us, 0))
        goto bad;
    what = "version numbers";
    if (m->current_version > INT64_MAX || m->latest_version > INT64_MAX ||
        m->oldest_version > INT64_MAX)
        goto bad;
    what = "cas_required";
    if (m->cas_required != 0 && m->cas_required != 1)
        goto bad;
    what = "delete_version_after";
    if (m->delete_version_after < 0 || m->delete_version_after > INT64_MAX / 1000000)
        goto bad;
    what = "custom_metadata";
    if (kv_custom_check(m->custom_metadata, NULL) != 0)
        goto bad;
    json_object_foreach(m->custom_metadata, k, v)
    {
        const char *s = json_string_value(v);
        size_t sl = json_string_length(v);

        if (!utf8_valid((const unsigned char *)k, strlen(k)) || memchr(s, '\0', sl) != NULL ||
            !utf8_valid((const unsigned char *)s, sl))
            goto bad;
    }
    what = "versions";
    if (m->nversions > 0 && m->versions == NULL)
        goto bad;
    for (size_t i = 0; i < m->nversions; i++) {
        const struct kv_version_meta *vm = &m->versions[i];

        what = "version numbers";
        if (vm->version == 0 || vm->version > m->latest_version)
            goto bad;
        what = "version order";
        if (i > 0 && vm->version <= m->versions[i - 1].version)
            goto bad;
        what = "version times";
        if (!time_ok(vm->created_us, 0) || !time_ok(vm->deletion_us, 1))
            goto bad;
        what = "destroyed";
        if (vm->destroyed != 0 && vm->destroyed != 1)
            goto bad;
        what = "stages";
        if ((unsigned)vm->stage > KV_STAGE_FAILED)
            goto bad;
        what = "author";
        if (!str_ok(vm->author, sizeof(vm->author)))
            goto bad;
        what = "reason";
        if (!str_ok(vm->reason, sizeof(vm->reason)))
            goto bad;
        what = "fingerprint";
        if (!str_ok(vm->fingerprint, sizeof(vm->fingerprint)))
            goto bad;
        what = "stages";
        if (vm->stage == KV_STAGE_CURRENT) {
            ncur++;
            if (vm->version != m->current_version)
                goto bad;
        }
        if (vm->stage == KV_STAGE_PREVIOUS)
            nprev++;
    }
    what = "stages";
    if (ncur > 1 || nprev > 1 || (ncur == 0 && m->current_version != 0))
        goto bad;
    what = "oldest_version";
    if (m->oldest_version != (m->nversions > 0 ? m->versions[0].version : 0))
        goto bad;
    return 0;
bad:
    return rk_error_set(err, RK_ECORRUPT, "metadata is corrupt (%s)", what);
}

/* ---- encoding ---- */

/* An output cursor; with p == NULL it only counts, so the size is known before the one malloc. */
struct wbuf {
    unsigned char *p;
    size_t len;
};

static void
put_byte(struct wbuf *w, unsigned char c)
{
    if (w->p != NULL)
        w->p[w->len] = c;
    w->len++;
}

static void
put_varint(struct wbuf *w, uint64_t v)
{
    while (v >= 0x80) {
        put_byte(w, (unsigned char)(v | 0x80));
        v >>= 7;
    }
    put_byte(w, (unsigned char)v);
}

static void
put_bytes(struct wbuf *w, const void *s, size_t n)
{
    put_varint(w, n);
    if (w->p != NULL && n > 0)
        memcpy(w->p + w->len, s, n);
    w->len += n;
}

/* The compact form's bit for fp (fl bytes) with its 6 raw bytes in raw, or 0 when fp has none. */
static unsigned
fp_compact(const char *fp, size_t fl, unsigned char raw[FP_RAW])
{
    static const struct {
        const char *prefix;
        unsigned bit;
    } forms[] = {{FINGERPRINT_PREFIX, VB_FPKEYED}, {FP_OLD_PREFIX, VB_FPCOMPACT}};

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t pl = strlen(forms[i].prefix);
        const char *hex = fp + pl;

        /* Lower case only: upper case would not survive the compact form's round trip. */
        if (fl == pl + 2 * FP_RAW && memcmp(fp, forms[i].prefix, pl) == 0 &&
            strspn(hex, "0123456789abcdef") >= 2 * FP_RAW &&
            hex_decode(hex, 2 * FP_RAW, raw, FP_RAW) == 0)
            return forms[i].bit;
    }
    return 0;
}

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Writes meta (already validated) into w; keys are its custom_metadata keys, sorted. */
static void
encode_into(const struct kv_meta *m, const char *const *keys, size_t nkeys, struct wbuf *w)
{
    put_byte(w, KV_META_BIN_FORMAT);
    put_varint(w, (uint64_t)m->created_us);
    put_varint(w, (uint64_t)m->updated_us);
    put_varint(w, m->current_version);
    put_varint(w, m->latest_version);
    put_varint(w, m->oldest_version);
    put_varint(w, m->max_versions);
    put_byte(w, m->cas_required ? FLAG_CAS : 0);
    put_varint(w, (uint64_t)m->delete_version_after);
    put_varint(w, nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        json_t *v = json_object_get(m->custom_metadata, keys[i]);

        put_bytes(w, keys[i], strlen(keys[i]));
        put_bytes(w, json_string_value(v), json_string_length(v));
    }
    put_varint(w, m->nversions);
    for (size_t i = 0; i < m->nversions; i++) {
        const struct kv_version_meta *vm = &m->versions[i];
        size_t fl = strlen(vm->fingerprint);
        unsigned char raw[FP_RAW];
        unsigned compact = fp_compact(vm->fingerprint, fl, raw);
        unsigned bits = (unsigned)vm->stage | compact;

        if (vm->destroyed)
            bits |= VB_DESTROYED;
        put_varint(w, vm->version);
        put_varint(w, (uint64_t)vm->created_us);
        put_varint(w, (uint64_t)vm->deletion_us);
        put_byte(w, (unsigned char)bits);
        put_bytes(w, vm->author, strlen(vm->author));
        put_bytes(w, vm->reason, strlen(vm->reason));
        if (compact) {
            if (w->p != NULL)
                memcpy(w->p + w->len, raw, FP_RAW);
            w->len += FP_RAW;
        } else {
            put_bytes(w, vm->fingerprint, fl);
        }
    }
}

int
kv_meta_encode_bin(const struct kv_meta *meta, unsigned char **out, size_t *len,
                   struct rk_error *err)
{
    struct rk_error verr = {0};
    const char *keys[KV_CUSTOM_MAX_KEYS];
    size_t nkeys = 0;
    struct wbuf w = {0};
    const char *k;
    json_t *v;

    *out = NULL;
    *len = 0;
    /* Never write what the decoder would refuse. */
    if (kv_meta_validate(meta, &verr) != 0)
        return rk_error_set(err, RK_EINVAL, "cannot encode metadata: %s", verr.msg);
    json_object_foreach(meta->custom_metadata, k, v)
    {
        (void)v;
        keys[nkeys++] = k; /* kv_meta_validate bounded the count */
    }
    qsort(keys, nkeys, sizeof(keys[0]), key_cmp);
    encode_into(meta, keys, nkeys, &w);
    if ((w.p = malloc(w.len)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    w.len = 0;
    encode_into(meta, keys, nkeys, &w);
    *out = w.p;
    *len = w.len;
    return 0;
}

/* ---- decoding ---- */

/* An input cursor; on failure why says what was wrong with the bytes (never the bytes). */
struct rbuf {
    const unsigned char *p;
    size_t len, off;
    const char *why;
};

static int
get_byte(struct rbuf *r, unsigned char *c)
{
    if (r->off >= r->len) {
        r->why = "truncated";
        return -1;
    }
    *c = r->p[r->off++];
    return 0;
}

static int
get_varint(struct rbuf *r, uint64_t *out)
{
    uint64_t v = 0;
    unsigned char c;

    for (int i = 0; i < 10; i++) {
        if (get_byte(r, &c) != 0)
            return -1;
        if (i == 9 && c > 1) {
            r->why = "varint overflows 64 bits";
            return -1;
        }
        v |= (uint64_t)(c & 0x7F) << (7 * i);
        if (!(c & 0x80)) {
            if (c == 0 && i > 0) {
                r->why = "varint is not minimal";
                return -1;
            }
            *out = v;
            return 0;
        }
    }
    r->why = "varint is too long"; /* not reached: the 10th byte cannot continue */
    return -1;
}

/* A varint that must fit in max. */
static int
get_uint(struct rbuf *r, uint64_t max, uint64_t *out)
{
    if (get_varint(r, out) != 0)
        return -1;
    if (*out > max) {
        r->why = "value out of range";
        return -1;
    }
    return 0;
}

static int
get_i64(struct rbuf *r, int64_t *out)
{
    uint64_t u;

    if (get_uint(r, INT64_MAX, &u) != 0)
        return -1;
    *out = (int64_t)u;
    return 0;
}

/* A length-prefixed string of at most max bytes without NUL; *s points into the input. */
static int
get_str(struct rbuf *r, size_t max, const unsigned char **s, size_t *n)
{
    uint64_t u;

    if (get_varint(r, &u) != 0)
        return -1;
    if (u > max) {
        r->why = "string too long";
        return -1;
    }
    if (u > r->len - r->off) {
        r->why = "truncated";
        return -1;
    }
    *s = r->p + r->off;
    *n = (size_t)u;
    if (memchr(*s, '\0', *n) != NULL) {
        r->why = "string holds a NUL byte";
        return -1;
    }
    r->off += *n;
    return 0;
}

/* A string into a NUL-terminated array of size bytes. */
static int
get_str_into(struct rbuf *r, char *dst, size_t size)
{
    const unsigned char *s;
    size_t n;

    if (get_str(r, size - 1, &s, &n) != 0)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* Reads the custom_metadata map into obj. Returns 0, -1 (corrupt, r->why set) or -RK_ENOMEM. */
static int
get_custom(struct rbuf *r, json_t *obj)
{
    char prev[KV_CUSTOM_KEY_MAX + 1] = "", key[KV_CUSTOM_KEY_MAX + 1];
    uint64_t n;

    if (get_uint(r, KV_CUSTOM_MAX_KEYS, &n) != 0)
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *s;
        size_t kl, sl;
        json_t *str;

        if (get_str(r, KV_CUSTOM_KEY_MAX, &s, &kl) != 0)
            return -1;
        if (kl == 0 || !utf8_valid(s, kl)) {
            r->why = "bad key";
            return -1;
        }
        memcpy(key, s, kl);
        key[kl] = '\0';
        if (i > 0 && strcmp(prev, key) >= 0) {
            r->why = "keys not in ascending order";
            return -1;
        }
        memcpy(prev, key, kl + 1);
        if (get_str(r, KV_CUSTOM_VALUE_MAX, &s, &sl) != 0)
            return -1;
        if (!utf8_valid(s, sl)) {
            r->why = "value is not UTF-8";
            return -1;
        }
        if ((str = json_stringn_nocheck((const char *)s, sl)) == NULL ||
            json_object_set_new_nocheck(obj, key, str) != 0)
            return -RK_ENOMEM;
    }
    return 0;
}

static int
get_version(struct rbuf *r, struct kv_version_meta *vm)
{
    unsigned char c, raw[FP_RAW];

    if (get_varint(r, &vm->version) != 0 || get_i64(r, &vm->created_us) != 0 ||
        get_i64(r, &vm->deletion_us) != 0 || get_byte(r, &c) != 0)
        return -1;
    if ((c & ~(VB_STAGE | VB_DESTROYED | VB_FPCOMPACT | VB_FPKEYED)) ||
        (c & (VB_FPCOMPACT | VB_FPKEYED)) == (VB_FPCOMPACT | VB_FPKEYED)) {
        r->why = "unknown flag bits";
        return -1;
    }
    vm->stage = (enum kv_stage)(c & VB_STAGE);
    vm->destroyed = (c & VB_DESTROYED) != 0;
    if (get_str_into(r, vm->author, sizeof(vm->author)) != 0 ||
        get_str_into(r, vm->reason, sizeof(vm->reason)) != 0)
        return -1;
    if (c & (VB_FPCOMPACT | VB_FPKEYED)) {
        const char *prefix = (c & VB_FPKEYED) ? FINGERPRINT_PREFIX : FP_OLD_PREFIX;
        size_t pl = strlen(prefix);

        if (r->len - r->off < FP_RAW) {
            r->why = "truncated";
            return -1;
        }
        memcpy(vm->fingerprint, prefix, pl);
        hex_encode(r->p + r->off, FP_RAW, vm->fingerprint + pl);
        r->off += FP_RAW;
    } else {
        if (get_str_into(r, vm->fingerprint, sizeof(vm->fingerprint)) != 0)
            return -1;
        if (fp_compact(vm->fingerprint, strlen(vm->fingerprint), raw)) {
            r->why = "fingerprint not in its compact form";
            return -1;
        }
    }
    return 0;
}

int
kv_meta_decode_bin(const unsigned char *p, size_t len, struct kv_meta **out, struct rk_error *err)
{
    struct rbuf r = {p, len, 1, NULL};
    struct kv_meta *m = NULL;
    const char *what = "header";
    uint64_t u;
    unsigned char c;
    int rc;

    *out = NULL;
    if (len == 0)
        return rk_error_set(err, RK_ECORRUPT, "metadata is empty");
    if (len > KV_META_MAX)
        return rk_error_set(err, RK_ECORRUPT, "metadata is too large");
    if (p[0] != KV_META_BIN_FORMAT)
        return rk_error_set(err, RK_EVERSION, "metadata is not in binary format %d%s",
                            KV_META_BIN_FORMAT, p[0] == '{' ? " (it is JSON, format 1)" : "");
    if ((m = calloc(1, sizeof(*m))) == NULL || (m->custom_metadata = json_object()) == NULL)
        goto nomem;
    what = "times";
    if (get_i64(&r, &m->created_us) != 0 || get_i64(&r, &m->updated_us) != 0)
        goto bad;
    what = "version numbers";
    if (get_varint(&r, &m->current_version) != 0 || get_varint(&r, &m->latest_version) != 0 ||
        get_varint(&r, &m->oldest_version) != 0)
        goto bad;
    what = "max_versions";
    if (get_uint(&r, UINT32_MAX, &u) != 0)
        goto bad;
    m->max_versions = (uint32_t)u;
    what = "flags";
    if (get_byte(&r, &c) != 0)
        goto bad;
    if (c & ~FLAG_CAS) {
        r.why = "unknown flag bits";
        goto bad;
    }
    m->cas_required = (c & FLAG_CAS) != 0;
    what = "delete_version_after";
    if (get_i64(&r, &m->delete_version_after) != 0)
        goto bad;
    what = "custom_metadata";
    if ((rc = get_custom(&r, m->custom_metadata)) == -RK_ENOMEM)
        goto nomem;
    if (rc != 0)
        goto bad;
    what = "versions";
    if (get_varint(&r, &u) != 0)
        goto bad;
    /* Each record takes at least VREC_MIN bytes, so the count cannot outrun the input. */
    if (u > (r.len - r.off) / VREC_MIN) {
        r.why = "count exceeds the input";
        goto bad;
    }
    m->nversions = (size_t)u;
    if (m->nversions > 0 && (m->versions = calloc(m->nversions, sizeof(*m->versions))) == NULL)
        goto nomem;
    for (size_t i = 0; i < m->nversions; i++)
        if (get_version(&r, &m->versions[i]) != 0)
            goto bad;
    what = "end";
    if (r.off != r.len) {
        r.why = "trailing bytes";
        goto bad;
    }
    if ((rc = kv_meta_validate(m, err)) != 0) {
        kv_meta_free(m);
        return rc;
    }
    *out = m;
    return 0;
bad:
    kv_meta_free(m);
    return rk_error_set(err, RK_ECORRUPT, "metadata is corrupt (%s: %s)", what,
                        r.why != NULL ? r.why : "bad value");
nomem:
    kv_meta_free(m);
    return rk_error_set(err, RK_ENOMEM, "out of memory");
}
