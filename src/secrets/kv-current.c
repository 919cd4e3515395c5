/* kv-current.c: the current-version record of a KV path (see kv-int.h).
 *
 * "kv/data/<path>@cur" holds, sealed like every value, the current version's metadata, the
 * path's custom_metadata (which the API's read answers with) and the version's data, so that a
 * plain read (kv_get of version 0, kv_get_current) is ONE barrier read instead of two
 * (metadata, then data) and needs no metadata decode. It is written in the same transaction as
 * every metadata write (kv_stage_put) and deleted with the path, so it always matches the metadata;
 * it is absent when there is no current version. A reader that does not find it (no such path, no
 * current version, or a store written before this record existed) falls back to the metadata. It
 * lives under "kv/data/<path>@" on purpose: whatever removes or tampers with a path's data keys by
 * that prefix treats it like the others, and "cur" never parses as a version number.
 *
 * Format 2 (written): 0x02 | version u64 | created_us i64 | deletion_us i64 | destroyed u8 |
 *           stage u8 | author_len u16 | reason_len u16 | fp_len u8 | custom_len u32 | author |
 *           reason | fingerprint | custom | data
 * Format 1 (read only, written before custom_metadata moved in): the same without custom_len
 * and custom. custom is the path's custom_metadata as compact JSON (sorted keys); custom_len 0
 * stands for an empty map. Integers are big-endian; data is absent when the version is
 * destroyed. */
#include "secrets/kv-int.h"

#include <string.h>

#define CUR_SUFFIX "@cur"
#define CUR_FORMAT1 1
#define CUR_FORMAT 2
#define CUR_HDR1 (1 + 8 + 8 + 8 + 1 + 1 + 2 + 2 + 1)
#define CUR_HDR (CUR_HDR1 + 4)

int
cur_key(const char *path, size_t plen, char *buf, size_t buflen, struct rk_error *err)
{
    size_t a = sizeof(KV_DATA_PREFIX) - 1, b = sizeof(CUR_SUFFIX) - 1;

    if (a + plen + b + 1 > buflen)
        return rk_error_set(err, RK_EINVAL, "path is too long");
    memcpy(buf, KV_DATA_PREFIX, a);
    memcpy(buf + a, path, plen);
    memcpy(buf + a + plen, CUR_SUFFIX, b + 1);
    return 0;
}

static void
be_put(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t
be_get(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

struct secret *
cur_encode(const struct kv_version_meta *vm, const char *custom, size_t cl,
           const struct secret *data)
{
    size_t al = strnlen(vm->author, KV_AUTHOR_MAX - 1), rl = strnlen(vm->reason, KV_REASON_MAX - 1);
    size_t fl = strnlen(vm->fingerprint, KV_FP_SIZE - 1), dl = data != NULL ? data->len : 0;
    struct secret *s;
    unsigned char *p;

    if (cl > UINT32_MAX || (s = secret_new(CUR_HDR + al + rl + fl + cl + dl)) == NULL)
        return NULL;
    p = s->data;
    p[0] = CUR_FORMAT;
    be_put(p + 1, vm->version, 8);
    be_put(p + 9, (uint64_t)vm->created_us, 8);
    be_put(p + 17, (uint64_t)vm->deletion_us, 8);
    p[25] = vm->destroyed ? 1 : 0;
    p[26] = (unsigned char)vm->stage;
    be_put(p + 27, al, 2);
    be_put(p + 29, rl, 2);
    p[31] = (unsigned char)fl;
    be_put(p + 32, cl, 4);
    p += CUR_HDR;
    memcpy(p, vm->author, al);
    memcpy(p + al, vm->reason, rl);
    memcpy(p + al + rl, vm->fingerprint, fl);
    if (cl > 0)
        memcpy(p + al + rl + fl, custom, cl);
    if (dl > 0)
        memcpy(p + al + rl + fl + cl, data->data, dl);
    return s;
}

size_t
cur_decode(const struct secret *raw, struct kv_version_meta *vm, struct cur_custom *cc)
{
    const unsigned char *p = raw->data;
    size_t al, rl, fl, cl = 0, hdr;

    if (raw->len < CUR_HDR1 || (p[0] != CUR_FORMAT && p[0] != CUR_FORMAT1))
        return 0;
    hdr = p[0] == CUR_FORMAT ? CUR_HDR : CUR_HDR1;
    if (raw->len < hdr)
        return 0;
    al = (size_t)be_get(p + 27, 2);
    rl = (size_t)be_get(p + 29, 2);
    fl = p[31];
    if (p[0] == CUR_FORMAT)
        cl = (size_t)be_get(p + 32, 4);
    if (al >= KV_AUTHOR_MAX || rl >= KV_REASON_MAX || fl >= KV_FP_SIZE || cl > raw->len - hdr ||
        hdr + al + rl + fl > raw->len - cl || p[26] > KV_STAGE_FAILED)
        return 0;
    memset(vm, 0, sizeof(*vm));
    vm->version = be_get(p + 1, 8);
    vm->created_us = (int64_t)be_get(p + 9, 8);
    vm->deletion_us = (int64_t)be_get(p + 17, 8);
    vm->destroyed = p[25] != 0;
    vm->stage = (enum kv_stage)p[26];
    cc->known = p[0] == CUR_FORMAT;
    cc->off = hdr + al + rl + fl;
    cc->len = cl;
    p += hdr;
    memcpy(vm->author, p, al);
    memcpy(vm->reason, p + al, rl);
    memcpy(vm->fingerprint, p + al + rl, fl);
    if (!fingerprint_valid(vm->fingerprint))
        vm->fingerprint[0] = '\0'; /* unkeyed (older rekey): never shown, see kv.h */
    if (vm->version == 0)
        return 0;
    return hdr + al + rl + fl + cl;
}
