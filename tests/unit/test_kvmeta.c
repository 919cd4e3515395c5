/* Unit tests for src/secrets/kvmeta: the binary metadata codec (format 2) and kv_meta_validate:
 * round trips, equivalence with the JSON codec, canonical form, truncation, trailing bytes,
 * byte flips, varint strictness, the size target and the invariants.
 *
 * With KVMETA_DUMP_DIR set, test_seeds writes a few valid encodings there (the fuzz corpus). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/kv.h"
#include "secrets/kvmeta.h"
#include "util/enc.h"
#include "util/err.h"
#include "util/timeutil.h"

/* A fixed time, so encodings are reproducible: 2026-03-01T12:00:00.123456Z. */
#define T0 INT64_C(1772366400123456)

static void
meta_assert_equal(const struct kv_meta *a, const struct kv_meta *b)
{
    assert_int_equal(a->created_us, b->created_us);
    assert_int_equal(a->updated_us, b->updated_us);
    assert_int_equal(a->current_version, b->current_version);
    assert_int_equal(a->latest_version, b->latest_version);
    assert_int_equal(a->oldest_version, b->oldest_version);
    assert_int_equal(a->max_versions, b->max_versions);
    assert_int_equal(a->cas_required, b->cas_required);
    assert_int_equal(a->delete_version_after, b->delete_version_after);
    assert_true(json_equal(a->custom_metadata, b->custom_metadata));
    assert_int_equal(a->nversions, b->nversions);
    for (size_t i = 0; i < a->nversions; i++) {
        const struct kv_version_meta *x = &a->versions[i], *y = &b->versions[i];
        assert_int_equal(x->version, y->version);
        assert_int_equal(x->created_us, y->created_us);
        assert_int_equal(x->deletion_us, y->deletion_us);
        assert_int_equal(x->destroyed, y->destroyed);
        assert_int_equal(x->stage, y->stage);
        assert_string_equal(x->author, y->author);
        assert_string_equal(x->reason, y->reason);
        assert_string_equal(x->fingerprint, y->fingerprint);
    }
}

static struct kv_meta *
meta_empty(void)
{
    struct kv_meta *m = kv_meta_new();

    assert_non_null(m);
    m->created_us = m->updated_us = T0;
    return m;
}

/* Adds version n (the next one) with stage; fingerprint of "value-<n>" under a fixed key. */
static void
add(struct kv_meta *m, enum kv_stage stage, const char *author, const char *reason)
{
    static const unsigned char raw[FP_KEY_LEN] = "test_kvmeta fingerprint key....";
    struct rk_error err = {0};
    struct fp_key *key = NULL;
    char fp[FINGERPRINT_LEN + 1], val[32];
    uint64_t v;

    snprintf(val, sizeof(val), "value-%llu", (unsigned long long)m->latest_version + 1);
    assert_int_equal(fp_key_new(raw, sizeof(raw), &key), 0);
    assert_int_equal(fingerprint(key, val, strlen(val), fp), 0);
    fp_key_unref(key);
    assert_int_equal(kv_meta_add_version(m, stage, author, reason, fp, &v, &err), 0);
    assert_int_equal(v, m->latest_version);
    m->versions[m->nversions - 1].created_us = T0 + (int64_t)(v % 1000) * 1000001;
    m->updated_us = T0;
}

static struct kv_meta *
meta_one(void)
{
    struct kv_meta *m = meta_empty();

    add(m, KV_STAGE_CURRENT, "rekey", "initial");
    return m;
}

/* Ten versions: authors, reasons, custom metadata, deleted, destroyed, future deletion, every
 * stage, non-standard fingerprints and an unkeyed one of older stores, UTF-8 and control
 * characters, settings. */
static struct kv_meta *
meta_ten(void)
{
    struct kv_meta *m = meta_empty();
    struct rk_error err = {0};

    m->max_versions = 12;
    m->cas_required = 1;
    assert_int_equal(json_object_set_new(m->custom_metadata, "owner", json_string("platform")), 0);
    assert_int_equal(json_object_set_new(m->custom_metadata, "env", json_string("prod")), 0);
    assert_int_equal(json_object_set_new(m->custom_metadata, "note", json_string("")), 0);
    assert_int_equal(
        json_object_set_new(m->custom_metadata, "caf\xc3\xa9", json_string("\xe2\x82\xac 5\n")), 0);
    for (int i = 0; i < 10; i++)
        add(m, i < 8 ? KV_STAGE_CURRENT : KV_STAGE_PENDING, i % 3 ? "rekey" : "",
            i % 2 ? "scheduled rotation" : "manual \"fix\"\t\xe6\x97\xa5");
    assert_int_equal(kv_meta_set_stage(m, 2, KV_STAGE_FAILED, &err), 0);
    m->delete_version_after = 86400 * 30;
    m->versions[0].deletion_us = m->versions[0].created_us + 5;      /* deleted */
    m->versions[1].destroyed = 1;                                    /* destroyed */
    m->versions[3].deletion_us = INT64_C(253402300799999999);        /* far future */
    m->versions[4].deletion_us = T0 + INT64_C(86400) * 30 * 1000000; /* future */
    snprintf(m->versions[5].fingerprint, sizeof(m->versions[5].fingerprint), "sha256:ABCDEF012345");
    m->versions[6].fingerprint[0] = '\0';
    snprintf(m->versions[9].fingerprint, sizeof(m->versions[9].fingerprint), "md5:x");
    snprintf(m->versions[7].fingerprint, sizeof(m->versions[7].fingerprint), "sha256:0123456789ab");
    assert_int_equal(kv_meta_validate(m, &err), 0);
    return m;
}

/* A meta whose versions do not start at 1 and with 64-bit-ish numbers. */
static struct kv_meta *
meta_big(void)
{
    struct kv_meta *m = meta_empty();
    struct rk_error err = {0};

    m->latest_version = INT64_MAX - 2;
    add(m, KV_STAGE_CURRENT, "a", "b");
    add(m, KV_STAGE_CURRENT, NULL, NULL);
    assert_int_equal(m->latest_version, INT64_MAX);
    m->oldest_version = m->versions[0].version;
    m->max_versions = UINT32_MAX;
    m->delete_version_after = INT64_MAX / 1000000;
    m->created_us = 1;
    m->updated_us = KV_META_TIME_MAX;
    assert_int_equal(kv_meta_validate(m, &err), 0);
    return m;
}

typedef struct kv_meta *(*meta_fn)(void);
static const meta_fn metas[] = {meta_empty, meta_one, meta_ten, meta_big};
#define NMETAS (sizeof(metas) / sizeof(metas[0]))

static void
encode(const struct kv_meta *m, unsigned char **p, size_t *len)
{
    struct rk_error err = {0};

    assert_int_equal(kv_meta_encode_bin(m, p, len, &err), 0);
    assert_non_null(*p);
    assert_int_equal((*p)[0], KV_META_BIN_FORMAT);
}

static void
test_round_trip(void **state)
{
    (void)state;
    for (size_t k = 0; k < NMETAS; k++) {
        struct kv_meta *m = metas[k](), *d = NULL;
        struct rk_error err = {0};
        unsigned char *p, *p2;
        size_t len, len2;

        encode(m, &p, &len);
        assert_int_equal(kv_meta_decode_bin(p, len, &d, &err), 0);
        meta_assert_equal(m, d);
        /* Canonical: encoding the decoded value gives the same bytes. */
        encode(d, &p2, &len2);
        assert_int_equal(len, len2);
        assert_memory_equal(p, p2, len);
        free(p);
        free(p2);
        kv_meta_free(m);
        kv_meta_free(d);
    }
}

/* JSON encode -> JSON decode -> bin encode -> bin decode -> JSON encode: identical JSON. */
static void
test_json_equivalence(void **state)
{
    (void)state;
    for (size_t k = 0; k < NMETAS; k++) {
        struct kv_meta *m = metas[k](), *j = NULL, *b = NULL;
        struct rk_error err = {0};
        char *js1, *js2;
        size_t l1, l2, bl;
        unsigned char *bin;

        assert_int_equal(kv_meta_encode(m, &js1, &l1, &err), 0);
        assert_int_equal(kv_meta_decode(js1, l1, &j, &err), 0);
        assert_int_equal(kv_meta_validate(j, &err), 0);
        encode(j, &bin, &bl);
        assert_int_equal(kv_meta_decode_bin(bin, bl, &b, &err), 0);
        meta_assert_equal(j, b);
        assert_int_equal(kv_meta_encode(b, &js2, &l2, &err), 0);
        if (json_object_size(m->custom_metadata) <= 1) {
            assert_int_equal(l1, l2);
            assert_string_equal(js1, js2);
        } else {
            /* Same record, keys possibly reordered: compare as JSON values. */
            json_t *a = json_loads(js1, 0, NULL), *c = json_loads(js2, 0, NULL);
            assert_non_null(a);
            assert_non_null(c);
            assert_true(json_equal(a, c));
            json_decref(a);
            json_decref(c);
        }
        free(js1);
        free(js2);
        free(bin);
        kv_meta_free(m);
        kv_meta_free(j);
        kv_meta_free(b);
    }
}

/* With custom keys inserted in sorted order the JSON texts are byte-identical. */
static void
test_json_equivalence_sorted(void **state)
{
    struct kv_meta *m = meta_ten(), *j = NULL, *b = NULL;
    struct rk_error err = {0};
    const char *keys[] = {"a", "b-key", "caf\xc3\xa9", "z"};
    char *js1, *js2;
    size_t l1, l2, bl;
    unsigned char *bin;

    (void)state;
    json_object_clear(m->custom_metadata);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(json_object_set_new(m->custom_metadata, keys[i], json_string(keys[i])), 0);
    assert_int_equal(kv_meta_encode(m, &js1, &l1, &err), 0);
    assert_int_equal(kv_meta_decode(js1, l1, &j, &err), 0);
    encode(j, &bin, &bl);
    assert_int_equal(kv_meta_decode_bin(bin, bl, &b, &err), 0);
    assert_int_equal(kv_meta_encode(b, &js2, &l2, &err), 0);
    assert_int_equal(l1, l2);
    assert_string_equal(js1, js2);
    free(js1);
    free(js2);
    free(bin);
    kv_meta_free(m);
    kv_meta_free(j);
    kv_meta_free(b);
}

static void
test_truncation_and_trailing(void **state)
{
    (void)state;
    for (size_t k = 0; k < NMETAS; k++) {
        struct kv_meta *m = metas[k](), *d = NULL;
        struct rk_error err = {0};
        unsigned char *p, *q;
        size_t len;

        encode(m, &p, &len);
        for (size_t n = 0; n < len; n++) {
            assert_int_equal(kv_meta_decode_bin(p, n, &d, &err), -RK_ECORRUPT);
            assert_null(d);
        }
        q = malloc(len + 2);
        assert_non_null(q);
        memcpy(q, p, len);
        for (int c = 0; c < 256; c++) {
            q[len] = (unsigned char)c;
            assert_int_equal(kv_meta_decode_bin(q, len + 1, &d, &err), -RK_ECORRUPT);
            assert_null(d);
            assert_non_null(strstr(err.msg, "trailing"));
        }
        q[len + 1] = 0;
        assert_int_equal(kv_meta_decode_bin(q, len + 2, &d, &err), -RK_ECORRUPT);
        free(q);
        free(p);
        kv_meta_free(m);
    }
}

/* Every single-byte change either decodes to a valid record that re-encodes to the changed
 * bytes, or is refused with ECORRUPT/EVERSION. Never crashes (run under ASan too). */
static void
test_byte_flips(void **state)
{
    (void)state;
    for (size_t k = 0; k < NMETAS; k++) {
        struct kv_meta *m = metas[k]();
        unsigned char *p;
        size_t len, ok = 0;

        encode(m, &p, &len);
        for (size_t i = 0; i < len; i++) {
            unsigned char orig = p[i];
            for (int x = 1; x < 256; x++) {
                struct kv_meta *d = NULL;
                struct rk_error err = {0};
                int r;

                p[i] = (unsigned char)(orig ^ x);
                r = kv_meta_decode_bin(p, len, &d, &err);
                if (r == 0) {
                    unsigned char *p2;
                    size_t len2;
                    assert_int_equal(kv_meta_validate(d, &err), 0);
                    encode(d, &p2, &len2);
                    assert_int_equal(len, len2);
                    assert_memory_equal(p, p2, len);
                    free(p2);
                    ok++;
                } else {
                    assert_true(r == -RK_ECORRUPT || (i == 0 && r == -RK_EVERSION));
                    assert_null(d);
                }
                kv_meta_free(d);
            }
            p[i] = orig;
        }
        assert_true(ok > 0); /* some flips (times, authors) are legitimately other records */
        free(p);
        kv_meta_free(m);
    }
}

static void
test_size(void **state)
{
    struct kv_meta *m = meta_empty();
    struct rk_error err = {0};
    unsigned char *p;
    size_t len;
    char *js;
    size_t jl;

    (void)state;
    m->created_us = m->updated_us = time_now_us();
    for (int i = 0; i < 10; i++) {
        add(m, KV_STAGE_CURRENT, "rekey", "scheduled rotation");
        m->versions[i].created_us = time_now_us() + i;
    }
    encode(m, &p, &len);
    assert_int_equal(kv_meta_encode(m, &js, &jl, &err), 0);
    print_message("10 versions: binary %zu bytes, JSON %zu bytes\n", len, jl);
    assert_true(len < 600);
    free(js);
    free(p);
    kv_meta_free(m);
}

/* ---- hand-built encodings ---- */

struct hb {
    unsigned char b[256];
    size_t n;
};

static void
hb_byte(struct hb *h, unsigned c)
{
    assert_true(h->n < sizeof(h->b));
    h->b[h->n++] = (unsigned char)c;
}

static void
hb_var(struct hb *h, uint64_t v)
{
    while (v >= 0x80) {
        hb_byte(h, (unsigned)(v & 0x7F) | 0x80);
        v >>= 7;
    }
    hb_byte(h, (unsigned)v);
}

static void
hb_str(struct hb *h, const char *s)
{
    hb_var(h, strlen(s));
    for (size_t i = 0; s[i] != '\0'; i++)
        hb_byte(h, (unsigned char)s[i]);
}

/* A version record: version 1, created T0, not deleted, then bits and three strings (the
 * fingerprint in its long form). */
static void
hb_vrec(struct hb *h, unsigned char bits, const char *author, const char *reason, const char *fp)
{
    hb_var(h, 1);
    hb_var(h, (uint64_t)T0);
    hb_var(h, 0);
    hb_byte(h, bits);
    hb_str(h, author);
    hb_str(h, reason);
    hb_str(h, fp);
}

/* The header of a record with no custom metadata, up to and including nversions. */
static void
hb_header(struct hb *h, uint64_t cur, uint64_t latest, uint64_t oldest, uint64_t nv)
{
    h->n = 0;
    hb_byte(h, 0x02);
    hb_var(h, (uint64_t)T0);
    hb_var(h, (uint64_t)T0);
    hb_var(h, cur);
    hb_var(h, latest);
    hb_var(h, oldest);
    hb_var(h, 0);
    hb_byte(h, 0);
    hb_var(h, 0);
    hb_var(h, 0);
    hb_var(h, nv);
}

static int
hb_decode(const struct hb *h, struct rk_error *err)
{
    struct kv_meta *d = NULL;
    int r = kv_meta_decode_bin(h->b, h->n, &d, err);

    if (r == 0)
        assert_non_null(d);
    else
        assert_null(d);
    kv_meta_free(d);
    return r;
}

static void
test_hand_built(void **state)
{
    struct rk_error err = {0};
    struct hb h;

    (void)state;
    /* The minimal valid record decodes. */
    hb_header(&h, 0, 0, 0, 0);
    assert_int_equal(hb_decode(&h, &err), 0);

    /* A non-minimal varint (max_versions 0 as 0x80 0x00). */
    h.n = 0;
    hb_byte(&h, 0x02);
    hb_var(&h, (uint64_t)T0);
    hb_var(&h, (uint64_t)T0);
    hb_var(&h, 0);
    hb_var(&h, 0);
    hb_var(&h, 0);
    hb_byte(&h, 0x80);
    hb_byte(&h, 0x00);
    hb_byte(&h, 0);
    hb_var(&h, 0);
    hb_var(&h, 0);
    hb_var(&h, 0);
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "not minimal"));

    /* A non-minimal multi-byte varint: created_us with a trailing 0x00 group. */
    h.n = 0;
    hb_byte(&h, 0x02);
    hb_byte(&h, 0x81);
    hb_byte(&h, 0x80);
    hb_byte(&h, 0x00);
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "not minimal"));

    /* A varint beyond 64 bits, and one of 11 bytes. */
    h.n = 0;
    hb_byte(&h, 0x02);
    for (int i = 0; i < 9; i++)
        hb_byte(&h, 0xFF);
    hb_byte(&h, 0x02);
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "overflow"));
    h.n = 0;
    hb_byte(&h, 0x02);
    for (int i = 0; i < 10; i++)
        hb_byte(&h, 0x80);
    hb_byte(&h, 0x01);
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);

    /* A time above INT64_MAX (10 bytes, top bit set). */
    h.n = 0;
    hb_byte(&h, 0x02);
    hb_var(&h, UINT64_MAX);
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "times"));

    /* Unknown format bytes. */
    h.n = 0;
    hb_byte(&h, '{');
    assert_int_equal(hb_decode(&h, &err), -RK_EVERSION);
    assert_non_null(strstr(err.msg, "JSON"));
    h.b[0] = 0x03;
    assert_int_equal(hb_decode(&h, &err), -RK_EVERSION);
    h.b[0] = 0x01;
    assert_int_equal(hb_decode(&h, &err), -RK_EVERSION);

    /* Unknown meta flag bits. */
    hb_header(&h, 0, 0, 0, 0);
    h.b[h.n - 4] = 0x02; /* the flags byte: flags, dva, ncustom, nversions follow */
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "flags"));

    /* One version: valid, then with each kind of defect. */
    hb_header(&h, 1, 1, 1, 1);
    hb_var(&h, 1);
    hb_var(&h, (uint64_t)T0);
    hb_var(&h, 0);
    hb_byte(&h, KV_STAGE_CURRENT | 0x10);
    hb_str(&h, "SECRETAUTHOR");
    hb_str(&h, "");
    for (int i = 0; i < 6; i++)
        hb_byte(&h, 0xAB);
    assert_int_equal(hb_decode(&h, &err), 0);
    {
        struct kv_meta *d = NULL;
        assert_int_equal(kv_meta_decode_bin(h.b, h.n, &d, &err), 0);
        assert_string_equal(d->versions[0].fingerprint, "sha256:abababababab");
        assert_string_equal(d->versions[0].author, "SECRETAUTHOR");
        kv_meta_free(d);
    }
    /* Truncated in the author: the message does not quote it. */
    {
        struct hb t = h;
        t.n -= 10;
        assert_int_equal(hb_decode(&t, &err), -RK_ECORRUPT);
        assert_null(strstr(err.msg, "SECRET"));
    }
    /* Bit 5 (the keyed compact form) instead of bit 4; both at once; bits 6-7. */
    {
        struct hb t = h;
        struct kv_meta *d = NULL;
        size_t at = t.n - 6 - 1 - 13 - 1;
        assert_int_equal(t.b[at], KV_STAGE_CURRENT | 0x10);
        t.b[at] = KV_STAGE_CURRENT | 0x20;
        assert_int_equal(kv_meta_decode_bin(t.b, t.n, &d, &err), 0);
        assert_string_equal(d->versions[0].fingerprint, "hmac:abababababab");
        kv_meta_free(d);
        t.b[at] |= 0x10;
        assert_int_equal(hb_decode(&t, &err), -RK_ECORRUPT);
        t.b[at] = KV_STAGE_CURRENT | 0x40;
        assert_int_equal(hb_decode(&t, &err), -RK_ECORRUPT);
        t.b[at] = 0x10 | 5; /* stage 5 does not exist */
        assert_int_equal(hb_decode(&t, &err), -RK_ECORRUPT);
        assert_non_null(strstr(err.msg, "stages"));
        t.b[at] = 0x10 | KV_STAGE_PENDING; /* current_version 1 but no current version */
        assert_int_equal(hb_decode(&t, &err), -RK_ECORRUPT);
    }
    /* A compact-shaped fingerprint stored long is not canonical; another shape is fine. */
    hb_header(&h, 1, 1, 1, 1);
    hb_vrec(&h, KV_STAGE_CURRENT, "", "", "hmac:abababababab");
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "compact"));
    hb_header(&h, 1, 1, 1, 1);
    hb_vrec(&h, KV_STAGE_CURRENT, "", "", "sha256:abababababab");
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "compact"));
    h.b[h.n - 1] = 'B';
    assert_int_equal(hb_decode(&h, &err), 0);
    /* A NUL inside a string. */
    h.b[h.n - 1] = 0;
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    /* Too long fingerprint. */
    hb_header(&h, 0, 1, 1, 1);
    hb_vrec(&h, KV_STAGE_RETIRED, "", "", "sha256:abababababab0");
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    /* Invalid UTF-8 in the reason. */
    hb_header(&h, 0, 1, 1, 1);
    hb_vrec(&h, KV_STAGE_RETIRED, "", "\xc0\xaf", "");
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "reason"));

    /* nversions larger than the input could hold. */
    hb_header(&h, 0, 0, 0, 1000);
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "count"));
    hb_header(&h, 0, 0, 0, UINT64_MAX);
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
}

static void
hb_custom(struct hb *h, const char *k1, const char *v1, const char *k2, const char *v2)
{
    h->n = 0;
    hb_byte(h, 0x02);
    hb_var(h, (uint64_t)T0);
    hb_var(h, (uint64_t)T0);
    for (int i = 0; i < 4; i++)
        hb_var(h, 0);
    hb_byte(h, 0);
    hb_var(h, 0);
    hb_var(h, k2 != NULL ? 2 : 1);
    hb_str(h, k1);
    hb_str(h, v1);
    if (k2 != NULL) {
        hb_str(h, k2);
        hb_str(h, v2);
    }
    hb_var(h, 0);
}

static void
test_custom_canonical(void **state)
{
    struct rk_error err = {0};
    struct hb h;

    (void)state;
    hb_custom(&h, "a", "1", "b", "2");
    assert_int_equal(hb_decode(&h, &err), 0);
    hb_custom(&h, "ab", "1", "b", "2");
    assert_int_equal(hb_decode(&h, &err), 0);
    hb_custom(&h, "a", "1", "ab", "2");
    assert_int_equal(hb_decode(&h, &err), 0);
    hb_custom(&h, "b", "1", "a", "2"); /* unsorted */
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    assert_non_null(strstr(err.msg, "custom_metadata"));
    hb_custom(&h, "ab", "1", "a", "2"); /* unsorted, prefix */
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    hb_custom(&h, "a", "1", "a", "2"); /* duplicate */
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    hb_custom(&h, "", "1", NULL, NULL); /* empty key */
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    hb_custom(&h, "k", "\xff", NULL, NULL); /* not UTF-8 */
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    hb_custom(&h, "\xed\xa0\x80", "v", NULL, NULL); /* a surrogate */
    assert_int_equal(hb_decode(&h, &err), -RK_ECORRUPT);
    /* Unsorted keys in memory still encode canonically. */
    {
        struct kv_meta *m = meta_empty(), *d = NULL;
        unsigned char *p;
        size_t len;

        json_object_set_new(m->custom_metadata, "b", json_string("2"));
        json_object_set_new(m->custom_metadata, "a", json_string("1"));
        encode(m, &p, &len);
        hb_custom(&h, "a", "1", "b", "2");
        assert_int_equal(len, h.n);
        assert_memory_equal(p, h.b, len);
        assert_int_equal(kv_meta_decode_bin(p, len, &d, &err), 0);
        meta_assert_equal(m, d);
        free(p);
        kv_meta_free(m);
        kv_meta_free(d);
    }
}

/* kv_meta_validate refuses each broken invariant; kv_meta_encode_bin refuses with EINVAL. */
static void
test_validate(void **state)
{
    struct rk_error err = {0};
    unsigned char *p = (unsigned char *)"x";
    size_t len = 1;

    (void)state;
    for (int c = 0; c < 26; c++) {
        struct kv_meta *m = meta_ten();
        struct kv_version_meta *v = m->versions;
        const char *expect = NULL;

        switch (c) {
        case 0:
            v[3].version = v[2].version;
            expect = "order";
            break;
        case 1:
            v[0].version = 0;
            expect = "version numbers";
            break;
        case 2:
            m->latest_version = 9;
            expect = "version numbers";
            break;
        case 3:
            v[0].stage = KV_STAGE_CURRENT;
            expect = "stages";
            break;
        case 4:
            m->current_version = 5;
            expect = "stages";
            break;
        case 5:
            v[7].stage = KV_STAGE_RETIRED;
            expect = "stages";
            break; /* no current */
        case 6:
            v[3].stage = KV_STAGE_PREVIOUS;
            v[4].stage = KV_STAGE_PREVIOUS;
            expect = "stages";
            break;
        case 7:
            m->oldest_version = 2;
            expect = "oldest_version";
            break;
        case 8:
            v[2].stage = (enum kv_stage)7;
            expect = "stages";
            break;
        case 9:
            memset(v[1].author, 'a', sizeof(v[1].author));
            expect = "author";
            break;
        case 10:
            memset(v[1].reason, 'a', sizeof(v[1].reason));
            expect = "reason";
            break;
        case 11:
            memset(v[1].fingerprint, 'a', sizeof(v[1].fingerprint));
            expect = "fingerprint";
            break;
        case 12:
            snprintf(v[1].author, sizeof(v[1].author), "\xe2\x82");
            expect = "author";
            break;
        case 13:
            json_object_set_new(m->custom_metadata, "n", json_integer(1));
            expect = "custom_metadata";
            break;
        case 14:
            json_object_set_new_nocheck(m->custom_metadata, "k", json_stringn("a\0b", 3));
            expect = "custom_metadata";
            break;
        case 15:
            json_object_set_new_nocheck(m->custom_metadata, "\xff", json_string("v"));
            expect = "custom_metadata";
            break;
        case 16:
            m->created_us = 0;
            expect = "times";
            break;
        case 17:
            m->updated_us = KV_META_TIME_MAX + 1;
            expect = "times";
            break;
        case 18:
            v[2].created_us = -1;
            expect = "version times";
            break;
        case 19:
            v[2].deletion_us = -5;
            expect = "version times";
            break;
        case 20:
            m->cas_required = 2;
            expect = "cas_required";
            break;
        case 21:
            v[2].destroyed = 2;
            expect = "destroyed";
            break;
        case 22:
            m->delete_version_after = -1;
            expect = "delete_version_after";
            break;
        case 23:
            m->delete_version_after = INT64_MAX / 1000000 + 1;
            expect = "delete_version_after";
            break;
        case 24:
            m->latest_version = (uint64_t)INT64_MAX + 1;
            expect = "version numbers";
            break;
        case 25: {
            char k[KV_CUSTOM_KEY_MAX + 2];
            memset(k, 'k', sizeof(k) - 1);
            k[sizeof(k) - 1] = '\0';
            json_object_set_new(m->custom_metadata, k, json_string("v"));
            expect = "custom_metadata";
            break;
        }
        }
        assert_int_equal(kv_meta_validate(m, &err), -RK_ECORRUPT);
        assert_non_null(strstr(err.msg, expect));
        assert_int_equal(kv_meta_encode_bin(m, &p, &len, &err), -RK_EINVAL);
        assert_null(p);
        assert_int_equal(len, 0);
        kv_meta_free(m);
    }
}

/* Writes the sample encodings to $KVMETA_DUMP_DIR (the fuzz seed corpus); a no-op without it. */
static void
test_seeds(void **state)
{
    const char *dir = getenv("KVMETA_DUMP_DIR");
    static const char *const names[] = {"empty.bin", "one.bin", "ten.bin", "big.bin"};

    (void)state;
    if (dir == NULL)
        skip();
    for (size_t k = 0; k < NMETAS; k++) {
        struct kv_meta *m = metas[k]();
        unsigned char *p;
        size_t len;
        char path[512];
        FILE *f;

        encode(m, &p, &len);
        snprintf(path, sizeof(path), "%s/%s", dir, names[k]);
        assert_non_null(f = fopen(path, "wb"));
        assert_int_equal(fwrite(p, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        free(p);
        kv_meta_free(m);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_json_equivalence),
        cmocka_unit_test(test_json_equivalence_sorted),
        cmocka_unit_test(test_truncation_and_trailing),
        cmocka_unit_test(test_byte_flips),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_custom_canonical),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_seeds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
