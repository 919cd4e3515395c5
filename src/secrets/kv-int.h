/* kv-int.h: what the parts of the KV engine share and no other module may use: kv.c (storage,
 * the metadata cache, reads and writes), kv-current.c (the current-version record's format),
 * kv-scan.c (listing, and the walks over every path), kv-data.c (the data a version holds:
 * canonical JSON and its fingerprint) and kv-versions.c (the metadata model: versions and
 * stages, and the JSON form of format 1). */
#ifndef REKEY_SECRETS_KV_INT_H
#define REKEY_SECRETS_KV_INT_H

#include <jansson.h>
#include <pthread.h>

#include "secrets/kv.h"
#include "store/barrier.h"

#define KV_META_PREFIX "kv/meta/"
#define KV_DATA_PREFIX "kv/data/"
#define META_SUFFIX "@meta"
#define MARKER_VALUE "P"

/* Decoded metadata, keyed by (path, mod_rev): parsing the JSON costs far more than the two
 * barrier reads of a get, and a mod_rev names one immutable value (revisions only grow), so a
 * hit is exact. The metadata read itself still happens on every call; only the decode is saved.
 * Direct-mapped slots; a collision replaces. Metadata holds no secret values. */
#define KV_CACHE_SLOTS 1024
#define KV_CACHE_LOCKS 64

struct cache_slot {
    char *path;
    int64_t rev;
    struct kv_meta *meta;
};

struct kv {
    struct barrier *br;
    pthread_mutex_t locks[KV_CACHE_LOCKS];
    struct cache_slot slots[KV_CACHE_SLOTS];
};

/* Metadata format 1 (JSON) as kv_meta_encode writes it. */
#define KV_META_FORMAT 1

/* Wipes every string inside v, then drops the reference (kv-data.c). */
void json_wipe_decref(json_t *v);

/* Parses s as one JSON object into *out (owned; free with json_wipe_decref). what names it in
 * errors. Returns 0 or -RK_ECORRUPT / -RK_EINVAL; never quotes the data. */
int secret_json_object(const struct secret *s, const char *what, json_t **out,
                       struct rk_error *err);

/* The canonical bytes of obj into *out (a secret) and their keyed fingerprint. */
int data_canonical(const struct fp_key *key, json_t *obj, struct secret **out,
                   char fp[FINGERPRINT_LEN + 1], struct rk_error *err);

/* Drops the versions beyond max_versions, calling del for each (kv-versions.c). */
int meta_prune(struct kv_meta *meta, int (*del)(void *, uint64_t), void *arg);

/* RFC 7386 merge of patch into target (both objects); patch values are copied. Returns 0 or -1
 * (out of memory) (kv-data.c). */
int merge_patch(json_t *target, json_t *patch);

/* ---- kv.c ---- */

/* Loads path's metadata into *meta (owned) and its revision into *mod_rev; keep 1 keeps the
 * decode in the cache. Returns 0, -RK_ENOTFOUND or another -RK_E*. */
int meta_load(struct kv *kv, const char *path, int keep, struct kv_meta **meta, int64_t *mod_rev,
              struct rk_error *err);

/* kv_stage_put; touch 0 keeps updated_time (a rewrite that changes nothing a user did). */
int stage_put(struct kv *kv, struct barrier_txn *t, const char *path, struct kv_meta *meta,
              int64_t mod_rev, uint64_t version, const struct secret *data, int touch,
              struct rk_error *err);

/* Waits a little before retrying after losing a race on a path's metadata. */
void conflict_backoff(int attempt);

/* ---- kv-current.c: the current-version record ---- */

/* Where the custom_metadata text lies in a decoded record. */
struct cur_custom {
    int known; /* 0: a format 1 record, which does not hold it */
    size_t off, len;
};

/* The record's key, "kv/data/<path>@cur", for path (plen bytes) into buf. */
int cur_key(const char *path, size_t plen, char *buf, size_t buflen, struct rk_error *err);

/* Encodes vm, the custom_metadata text (custom, cl bytes; cl 0 for none) and data (may be NULL)
 * into a new secret; NULL when out of memory. */
struct secret *cur_encode(const struct kv_version_meta *vm, const char *custom, size_t cl,
                          const struct secret *data);

/* Decodes a current-version record: fills *vm and *cc, and returns the offset of the data in
 * raw, or 0 when the record does not parse. */
size_t cur_decode(const struct secret *raw, struct kv_version_meta *vm, struct cur_custom *cc);

#endif
