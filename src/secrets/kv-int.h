/* kv-int.h: what the parts of the KV engine share and no other module may use: kv.c (storage,
 * the current-version record, the metadata cache, reads and writes), kv-data.c (the data a
 * version holds: canonical JSON and its fingerprint) and kv-versions.c (the metadata model:
 * versions and stages, and the JSON form of format 1). */
#ifndef REKEY_SECRETS_KV_INT_H
#define REKEY_SECRETS_KV_INT_H

#include <jansson.h>

#include "secrets/kv.h"
#include "store/barrier.h"

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

#endif
