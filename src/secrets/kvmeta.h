/* kvmeta.h: the compact binary codec for a path's KV metadata (struct kv_meta), format 2.
 *
 * Why: the JSON metadata (format 1, kv_meta_encode) of a path with 10 versions is ~2.5 KB, which
 * spills into SQLite overflow pages; this encoding of the same record is ~450 bytes.
 *
 * Telling the formats apart: format 1 is JSON and always starts with '{' (0x7B); format 2 starts
 * with the byte 0x02. A reader dispatches on the first byte (KV_META_BIN_FORMAT).
 *
 * Format 2, all integers unsigned LEB128 varints ("v": 7 bits a byte, least significant group
 * first, high bit = more follows; at most 10 bytes, minimal length, no overflow past 64 bits, so
 * every value has exactly one encoding):
 *   0x02 | created_us v | updated_us v | current_version v | latest_version v |
 *   oldest_version v | max_versions v | flags u8 (bit 0 cas_required, other bits 0) |
 *   delete_version_after v | ncustom v | ncustom x (key_len v | key | value_len v | value) |
 *   nversions v | nversions x version record
 * version record:
 *   version v | created_us v | deletion_us v (0 = none) |
 *   bits u8 (bits 0-2 stage, bit 3 destroyed, bit 4 compact unkeyed fingerprint, bit 5 compact
 *     keyed fingerprint, never both; bits 6-7 0) |
 *   author_len v | author | reason_len v | reason |
 *   fingerprint: with bit 5, 6 bytes whose 12 lowercase hex digits follow "hmac:" (the keyed
 *   fingerprint, util/enc.h); with bit 4, the same after "sha256:" (the unkeyed one of rekey
 *   before keyed fingerprints: still read, blanked by kv.c, see kv.h); with neither,
 *   fp_len v | fp (used only for a fingerprint in neither compact form, e.g. "").
 * A rekey from before bit 5 refuses a record that uses it (-RK_ECORRUPT, "unknown flag bits").
 * Times are microseconds since the epoch; every valid time is positive (see kv_meta_validate),
 * so they are stored as plain unsigned varints. custom_metadata keys are in strictly ascending
 * byte order. Strings hold no NUL and no length terminator. Nothing may follow the last record.
 * The encoding is canonical: decode then encode reproduces the input byte for byte. */
#ifndef REKEY_KVMETA_H
#define REKEY_KVMETA_H

#include <stddef.h>

#include "util/err.h"
#include "secrets/kv.h"

#define KV_META_BIN_FORMAT 0x02

/* The latest time the JSON format can hold: 9999-12-31T23:59:59.999999Z, in microseconds. */
#define KV_META_TIME_MAX INT64_C(253402300799999999)

/* Encodes meta (which must pass kv_meta_validate) in format 2 into *out (malloc'd, caller frees)
 * and its length into *len. Returns 0, -RK_EINVAL (meta fails kv_meta_validate: the message says
 * why) or -RK_ENOMEM; *out is NULL on failure. */
int kv_meta_encode_bin(const struct kv_meta *meta, unsigned char **out, size_t *len,
                       struct rk_error *err);

/* Decodes format 2 metadata (len bytes at p, at most KV_META_MAX) into *out (kv_meta_free) and
 * checks it with kv_meta_validate. Returns 0, -RK_EVERSION (the first byte is not 0x02),
 * -RK_ECORRUPT (truncated, trailing bytes, a non-canonical varint, a bad field or a failed
 * invariant; the message names the field and never quotes the input) or -RK_ENOMEM; *out is
 * NULL on failure. */
int kv_meta_decode_bin(const unsigned char *p, size_t len, struct kv_meta **out,
                       struct rk_error *err);

/* Checks m against everything the JSON decoder (kv_meta_decode) accepts: times in
 * 1..KV_META_TIME_MAX (a deletion time may also be 0), version numbers at most INT64_MAX,
 * delete_version_after in 0..INT64_MAX/1000000, cas_required and destroyed 0 or 1, versions
 * strictly ascending in 1..latest_version, at most one current (numbered current_version) and
 * one previous, current_version != 0 only with a current version, oldest_version the first
 * version (0 with none), stages valid, author/reason/fingerprint NUL-terminated within their
 * arrays and valid UTF-8, custom_metadata as kv_custom_check with NUL-free UTF-8 keys and
 * values. It does not bound nversions (a huge record may still exceed KV_META_MAX as JSON).
 * err may be NULL. Returns 0 or -RK_ECORRUPT naming what failed. */
int kv_meta_validate(const struct kv_meta *m, struct rk_error *err);

#endif
