/* kv.h: the versioned key-value engine (HashiCorp Vault KV v2 semantics plus rotation stages).
 *
 * A secret lives at a logical path such as "secret/ai-gateway/litellm/master-key" (checked with
 * path_validate). Four kinds of storage keys, all encrypted by the barrier:
 *   "kv/meta/<path>"            the list marker (kv_list walks these), written when the path is
 *                               created and not touched by later writes
 *   "kv/data/<path>@meta"       the metadata (binary format 2, kvmeta.h), next to the path's data
 *                               keys so that a put's three writes share a B-tree page
 *   "kv/data/<path>@<version>"  the version's data: canonical JSON object text (sorted keys,
 *                               compact), e.g. {"key":"sk-litellm-..."}
 *   "kv/data/<path>@cur"        the current version's record: its kv_version_meta, the path's
 *                               custom_metadata and a copy of its data (binary, see kv.c).
 *                               Written in the same transaction as every metadata write
 *                               (kv_stage_put), deleted with the path, absent when there is no
 *                               current version.
 * A plain read (kv_get/kv_get_field of version 0, kv_get_current) is ONE barrier read of the
 * "@cur" record, with no JSON decode (kv_get_current decodes a non-empty custom_metadata only);
 * it falls back to metadata + data when the record is absent (no such path, no current version,
 * or a store last written by a rekey without it) and kv_get_current also when the record predates
 * custom_metadata in it. Reads of a given version, kv_read and the metadata calls use the
 * metadata as before. Because the record duplicates the current version, an older rekey must not
 * write a store this one has written (it would leave the record stale).
 *
 * Layout 1 (stores written before the "@meta" record): the metadata was JSON in "kv/meta/<path>".
 * It is still read there when "@meta" is absent, and the path's next metadata write moves it
 * (compared at the revision it was read at) and leaves a marker.
 *
 * Versions carry a stage: pending, current, previous, retired or failed. At most one version is
 * current and at most one is previous. A plain read returns the current version.
 *
 * Mapping to the Vault API (the API layer translates):
 *   Vault "current_version" (in metadata responses)  = kv_meta.latest_version (highest number)
 *   rekey's current_version (the stage "current")    = what a read without ?version= returns
 *   Vault "oldest_version", "max_versions", "cas_required", "custom_metadata" = same names
 *   Vault "delete_version_after" (a duration string) = kv_meta.delete_version_after (seconds)
 *   Vault versions{N: created_time, deletion_time, destroyed} = kv_meta.versions[i]
 *   Vault "check-and-set" options.cas                  = kv_put_opts.cas
 *
 * Fingerprint of a version: "hmac:" + 12 hex, keyed with the store's fingerprint key (util/enc.h
 * fingerprint, barrier_fp_key), of the value of the only field when the data has exactly one
 * field and it is a string (so it matches the fingerprint shown for a generated key and what
 * `rekey fingerprint` prints for the value), otherwise of the canonical JSON text.
 *
 * Fingerprints of rekey before keyed ones ("sha256:" + 12 hex, an unkeyed hash that confirms a
 * guessed value) are never shown: every metadata decode here blanks them (and the "@cur"
 * record's) and marks the metadata fp_stale; the next write of that metadata recomputes them
 * from the versions' data (a destroyed or unreadable version keeps ""), and
 * kv_fingerprints_migrate does so for every path after the unseal that made the store's key.
 *
 * Deleted: a version is deleted when deletion_us != 0 and deletion_us <= now (a future
 * deletion_time comes from delete_version_after, as in Vault). Destroyed: its data is gone.
 *
 * Threads: a struct kv may be used from several threads at once. It caches decoded metadata
 * keyed by (path, mod_rev) under striped locks; the metadata is still read from the barrier on
 * every call that needs it, only the decode is skipped on a hit.
 * This relies on a store's revisions only growing (true of sqlite and etcd).
 * Concurrent writers to one path are serialised by an optimistic compare on the metadata key's
 * mod_rev; kv_put/kv_patch retry internally unless a cas was given. */
#ifndef REKEY_KV_H
#define REKEY_KV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store/barrier.h"
#include "util/enc.h"
#include "util/err.h"
#include "util/secret.h"

#define KV_DEFAULT_MAX_VERSIONS 10
#define KV_AUTHOR_MAX 128 /* bytes, including the NUL */
#define KV_REASON_MAX 256 /* bytes, including the NUL */
#define KV_DATA_MAX (512 * 1024)
#define KV_META_MAX (1024 * 1024)
#define KV_CUSTOM_MAX_KEYS 64 /* Vault's limits for custom_metadata */
#define KV_CUSTOM_KEY_MAX 128
#define KV_CUSTOM_VALUE_MAX 512
#define KV_PUT_RETRIES 64 /* internal retries on a mod_rev conflict (no cas given) */
#define KV_FP_SIZE 20     /* bytes for a stored fingerprint and its NUL (see kv_version_meta) */

enum kv_stage {
    KV_STAGE_PENDING = 0,
    KV_STAGE_CURRENT,
    KV_STAGE_PREVIOUS,
    KV_STAGE_RETIRED,
    KV_STAGE_FAILED,
};

/* One version's metadata: a plain value (no pointers), copy freely. */
struct kv_version_meta {
    uint64_t version;    /* 1, 2, ...; 0 in an empty record */
    int64_t created_us;  /* microseconds since the epoch */
    int64_t deletion_us; /* 0 = not deleted; may lie in the future (delete_version_after) */
    int destroyed;       /* 1 when the data was destroyed */
    enum kv_stage stage;
    char author[KV_AUTHOR_MAX]; /* "" if none */
    char reason[KV_REASON_MAX]; /* "" if none */
    /* fingerprint_valid, or "" (destroyed before it was recomputed, or unknown). Sized for what
     * a stored record may hold (an old "sha256:" one, blanked before it leaves kv.c). */
    char fingerprint[KV_FP_SIZE];
};

/* A path's metadata. Public so the rotation engine and the API layer can read and mutate it;
 * mutate it only through the kv_meta_* functions below so the invariants hold. */
struct kv_meta {
    int64_t created_us;
    int64_t updated_us;
    uint64_t current_version; /* the version at stage current, 0 if none */
    uint64_t latest_version;  /* highest version ever written (Vault's "current_version") */
    uint64_t oldest_version;  /* lowest version still kept, 0 if none */
    uint32_t max_versions;    /* 0 = default (KV_DEFAULT_MAX_VERSIONS) */
    int cas_required;
    int64_t delete_version_after; /* seconds, 0 = never */
    json_t *custom_metadata;      /* object of string values, never NULL; owned by the meta */
    size_t nversions;
    struct kv_version_meta *versions; /* ascending by version; owned by the meta */
    int legacy;   /* kv.c's own: read from the first storage layout, moved by the next write */
    int fp_stale; /* kv.c's own: unkeyed fingerprints were blanked; the next write recomputes */
};

struct kv;

struct kv_meta_settings;

/* Options for kv_put / kv_patch. Initialise with KV_PUT_OPTS_INIT. */
struct kv_put_opts {
    int64_t cas;         /* -1: none; 0: only if the path has no version; N: only if latest == N */
    const char *author;  /* may be NULL; at most KV_AUTHOR_MAX-1 bytes */
    const char *reason;  /* may be NULL; at most KV_REASON_MAX-1 bytes */
    enum kv_stage stage; /* KV_STAGE_CURRENT (a plain put) or KV_STAGE_PENDING (rotation) */
    /* May be NULL; on success gets the new version's metadata as stored (saves a read). */
    struct kv_version_meta *out_vm;
    /* May be NULL: settings applied (as kv_metadata_put) when this write creates the path, in
     * the same transaction (the API's mount defaults). */
    const struct kv_meta_settings *new_path;
};
#define KV_PUT_OPTS_INIT                                                                           \
    {                                                                                              \
        -1, NULL, NULL, KV_STAGE_CURRENT, NULL, NULL                                               \
    }

/* Settings for kv_metadata_put: only the fields whose has_* flag is set change. */
struct kv_meta_settings {
    int has_max_versions;
    uint32_t max_versions;
    int has_cas_required;
    int cas_required;
    int has_delete_version_after;
    int64_t delete_version_after;
    int has_custom_metadata;
    const json_t *custom_metadata; /* object of strings (copied); replaces the old map */
};

/* ---- the engine handle ---- */

/* Creates a KV engine over an unsealed-or-sealed barrier (not owned: free it after kv_free).
 * Returns 0 or -RK_ENOMEM; *out is freed with kv_free. */
int kv_open(struct barrier *br, struct kv **out, struct rk_error *err);

/* Frees kv; accepts NULL. */
void kv_free(struct kv *kv);

/* The barrier this engine writes through (for building transactions). */
struct barrier *kv_barrier(struct kv *kv);

/* ---- plain operations (each one barrier transaction) ---- */

/* Writes a new version of path with data (a JSON object text; stored canonical). With
 * opts->stage == KV_STAGE_CURRENT the new version becomes current, the old current previous and
 * an older previous retired; with KV_STAGE_PENDING current is unchanged. opts may be NULL
 * (defaults). *version (may be NULL) gets the new version number, *opts->out_vm (when set) its
 * metadata. Returns 0, -RK_EINVAL (bad path or data, or cas missing while cas_required),
 * -RK_ECONFLICT ("check-and-set parameter did not match the current version", or still
 * conflicting after KV_PUT_RETRIES), -RK_ESEALED, -RK_ECORRUPT, -RK_EIO. */
int kv_put(struct kv *kv, const char *path, const struct secret *data,
           const struct kv_put_opts *opts, uint64_t *version, struct rk_error *err);

/* Reads a version (0 = the current one). *data (may be NULL) gets the canonical JSON text
 * (caller frees with secret_free); *vmeta (may be NULL) a copy of the version's metadata.
 * Returns 0, -RK_ENOTFOUND (no such path or version, no current version, or the version is
 * deleted or destroyed: in those two cases *vmeta is still filled, so the API layer can answer
 * like Vault with the deletion metadata; otherwise vmeta->version is 0), -RK_ESEALED,
 * -RK_ECORRUPT, -RK_EIO. */
int kv_get(struct kv *kv, const char *path, uint64_t version, struct secret **data,
           struct kv_version_meta *vmeta, struct rk_error *err);

/* kv_get of the current version that also returns the path's custom_metadata, for the API's
 * plain read: usually ONE barrier read (the "@cur" record); falls back to kv_read's two reads
 * when the record is absent or was written before it held custom_metadata. *data and *vm (may be
 * NULL) as kv_get. *custom (may be NULL) gets a new reference to the custom_metadata object
 * (json_decref), or NULL when the path has none (an empty map); it is set on success and on a
 * deleted/destroyed -RK_ENOTFOUND (vm->version != 0), else NULL. Returns as kv_get. */
int kv_get_current(struct kv *kv, const char *path, struct secret **data,
                   struct kv_version_meta *vm, json_t **custom, struct rk_error *err);

/* kv_get that also returns the whole metadata (*meta, caller frees with kv_meta_free; set on
 * success and on a deleted/destroyed -RK_ENOTFOUND, else NULL). Costs the same two reads. */
int kv_read(struct kv *kv, const char *path, uint64_t version, struct secret **data,
            struct kv_meta **meta, struct kv_version_meta *vmeta, struct rk_error *err);

/* Reads one field of a version (0 = current). The field must be a string; *value is a secret
 * (caller frees). Returns 0, -RK_ENOTFOUND (also for a missing field), -RK_EINVAL (the field is
 * not a string), or as kv_get. */
int kv_get_field(struct kv *kv, const char *path, uint64_t version, const char *field,
                 struct secret **value, struct rk_error *err);

/* Vault's patch: applies patch (a JSON object text, RFC 7386 merge: null removes a field) to the
 * current version and writes the result as a new version (opts as kv_put). Returns as kv_put, and
 * -RK_ENOTFOUND when there is no readable current version. */
int kv_patch(struct kv *kv, const char *path, const struct secret *patch,
             const struct kv_put_opts *opts, uint64_t *version, struct rk_error *err);

/* Soft-deletes versions (sets deletion_time to now). n == 0 deletes the latest version (as
 * Vault's DELETE on data/). Unknown or destroyed versions are skipped. Returns 0,
 * -RK_ENOTFOUND (no such path), or a store error. */
int kv_delete_versions(struct kv *kv, const char *path, const uint64_t *versions, size_t n,
                       struct rk_error *err);

/* Clears deletion_time of the given versions (destroyed ones stay destroyed). */
int kv_undelete_versions(struct kv *kv, const char *path, const uint64_t *versions, size_t n,
                         struct rk_error *err);

/* Removes the data of the given versions permanently and marks them destroyed. */
int kv_destroy_versions(struct kv *kv, const char *path, const uint64_t *versions, size_t n,
                        struct rk_error *err);

/* Call after an unseal. When that unseal made the store's fingerprint key (barrier_unseal: a
 * store from before keyed fingerprints, or one whose key record was lost), recomputes every
 * stored fingerprint under it (see the top of this file), each path in its own transaction
 * (compared, so concurrent writers are safe), keeping updated_time; otherwise returns 0 at once.
 * Runs once per such unseal (barrier_fp_key_take_new): if it fails part way, the rest is left
 * to each path's next write. A path whose metadata does not decode is skipped. *npaths (may be
 * NULL) gets the number of paths rewritten. Returns 0, -RK_ESEALED, -RK_EIO, -RK_ENOMEM. */
int kv_fingerprints_migrate(struct kv *kv, size_t *npaths, struct rk_error *err);

/* The store's fingerprint of a value (what a version holding {"field": value} shows), as
 * barrier_fingerprint. */
int kv_fingerprint(struct kv *kv, const struct secret *value, char out[FINGERPRINT_LEN + 1],
                   struct rk_error *err);

/* Removes the metadata and every version of path. Returns 0, -RK_ENOTFOUND, or a store error. */
int kv_delete_metadata(struct kv *kv, const char *path, struct rk_error *err);

/* Reads path's metadata into *meta (caller frees with kv_meta_free). Returns 0, -RK_ENOTFOUND,
 * -RK_ESEALED, -RK_ECORRUPT, -RK_EIO. */
int kv_metadata_get(struct kv *kv, const char *path, struct kv_meta **meta, struct rk_error *err);

/* Creates or updates path's settings (Vault's POST metadata/). Lowering max_versions prunes old
 * versions (never current, previous or pending). Returns 0, -RK_EINVAL, or a store error. */
int kv_metadata_put(struct kv *kv, const char *path, const struct kv_meta_settings *s,
                    struct rk_error *err);

/* Called once per child of a listed folder, in ascending order: name is the child's segment,
 * with a trailing '/' for a folder (Vault style). Return 0 to go on, 1 to stop, or -RK_E*. */
typedef int (*kv_list_cb)(void *arg, const char *name);

/* Lists the children of folder prefix ("" = the root; "a/b" and "a/b/" are the same). A folder
 * subtree is skipped with one seek, however many keys it holds. Returns 0 (also when nothing is
 * found), -RK_EINVAL (bad prefix), a callback's error, or a store error. */
int kv_list(struct kv *kv, const char *prefix, kv_list_cb cb, void *arg, struct rk_error *err);

/* kv_list into a NULL-terminated malloc'd array of malloc'd names (*n may be NULL); free with
 * kv_names_free. An empty folder gives an array holding only NULL. */
int kv_list_names(struct kv *kv, const char *prefix, char ***names, size_t *n,
                  struct rk_error *err);
void kv_names_free(char **names);

/* ---- the transactional API (for the rotation engine) ----
 *
 * The engine combines KV changes and its own journal record in one barrier transaction:
 *
 *   kv_meta_load(kv, path, &meta, &rev, err)            (or kv_meta_new on -RK_ENOTFOUND, rev 0)
 *   kv_data_prepare(kv, raw, &data, fp, err)
 *   kv_meta_add_version(meta, KV_STAGE_PENDING, author, reason, fp, &v, err)
 *   t = barrier_txn_new(kv_barrier(kv));
 *   kv_stage_put(kv, t, path, meta, rev, v, data, err); barrier_txn_put(t, journal...);
 *   barrier_txn_commit(t, ...)                          -RK_ECONFLICT: reload and redo
 */

/* A new empty metadata record (created/updated now). Returns NULL on allocation failure. */
struct kv_meta *kv_meta_new(void);

/* Frees meta; accepts NULL. */
void kv_meta_free(struct kv_meta *meta);

/* A deep copy, or NULL on allocation failure. */
struct kv_meta *kv_meta_dup(const struct kv_meta *meta);

/* Reads path's metadata and its mod_rev (for kv_stage_put's compare). Returns 0, -RK_ENOTFOUND,
 * -RK_EINVAL (bad path), -RK_ESEALED, -RK_ECORRUPT, -RK_EIO. *meta is freed with kv_meta_free. */
int kv_meta_load(struct kv *kv, const char *path, struct kv_meta **meta, int64_t *mod_rev,
                 struct rk_error *err);

/* The version record for version, or NULL. The pointer is valid until meta changes. */
struct kv_version_meta *kv_meta_find(const struct kv_meta *meta, uint64_t version);

/* Checks data (a JSON object text, at most KV_DATA_MAX bytes) and returns its canonical form in
 * *out (a secret, caller frees) and, when fp is not NULL, its fingerprint in kv's store in fp (kv
 * may be NULL when fp is). Returns 0, -RK_EINVAL, -RK_ENOMEM, and with fp -RK_ESEALED or
 * -RK_EIO (barrier_no_fp_key). */
int kv_data_prepare(struct kv *kv, const struct secret *data, struct secret **out,
                    char fp[FINGERPRINT_LEN + 1], struct rk_error *err);

/* The canonical data of a single string field {"field": value} in *out (a secret) and its
 * fingerprint (that of value; as kv_data_prepare). Returns as kv_data_prepare. */
int kv_data_single(struct kv *kv, const char *field, const struct secret *value,
                   struct secret **out, char fp[FINGERPRINT_LEN + 1], struct rk_error *err);

/* For tests and fuzzing only: kv_data_prepare with the fingerprint key given (key may be NULL
 * when fp is; a NULL key with fp gives -RK_ESEALED), and the same without its fast path for
 * already canonical input (always parses and dumps with jansson). Same results. */
int kv_data_prepare_key(const struct fp_key *key, const struct secret *data, struct secret **out,
                        char fp[FINGERPRINT_LEN + 1], struct rk_error *err);
int kv_data_prepare_slow(const struct fp_key *key, const struct secret *data, struct secret **out,
                         char fp[FINGERPRINT_LEN + 1], struct rk_error *err);

/* Adds version latest_version+1 (created now) with stage (KV_STAGE_CURRENT promotes it as
 * kv_meta_promote does) and fingerprint fp (fingerprint_valid); author and reason may be NULL.
 * Applies delete_version_after. *version gets the number. Returns 0, -RK_EINVAL (too long author
 * or reason, bad stage or fingerprint), -RK_ENOMEM. */
int kv_meta_add_version(struct kv_meta *meta, enum kv_stage stage, const char *author,
                        const char *reason, const char *fp, uint64_t *version,
                        struct rk_error *err);

/* Makes version current, the old current previous and an older previous retired.
 * Returns 0, -RK_ENOTFOUND (no such version), -RK_EINVAL (destroyed or deleted version). */
int kv_meta_promote(struct kv_meta *meta, uint64_t version, struct rk_error *err);

/* Makes version current and gives the old current old_stage (any stage but current, e.g.
 * KV_STAGE_FAILED for a rollback); other versions keep theirs (a version given previous demotes
 * the old previous to retired). Returns 0, -RK_ENOTFOUND, -RK_EINVAL. */
int kv_meta_set_current(struct kv_meta *meta, uint64_t version, enum kv_stage old_stage,
                        struct rk_error *err);

/* Sets version's stage. KV_STAGE_CURRENT acts as kv_meta_promote; setting previous demotes the
 * old previous to retired; demoting the current version this way is refused (-RK_EINVAL: use
 * kv_meta_set_current so there is always a current). Returns 0, -RK_ENOTFOUND, -RK_EINVAL. */
int kv_meta_set_stage(struct kv_meta *meta, uint64_t version, enum kv_stage stage,
                      struct rk_error *err);

/* Adds to t: a compare that path's metadata still has mod_rev (0 = must not exist), the put of
 * meta and, when data is not NULL, the put of version's data. Prunes versions beyond max_versions
 * (oldest first, never current, previous or pending: removed from meta and their data deleted in
 * t), recomputes blanked fingerprints (fp_stale, reading the versions' data) and sets
 * updated_time, so meta matches what will be stored. The caller commits t.
 * Returns 0, -RK_EINVAL, -RK_ENOMEM, and with fp_stale -RK_ESEALED, -RK_EIO. */
int kv_stage_put(struct kv *kv, struct barrier_txn *t, const char *path, struct kv_meta *meta,
                 int64_t mod_rev, uint64_t version, const struct secret *data,
                 struct rk_error *err);

/* Convenience: loads path's metadata, sets version's stage (as kv_meta_set_stage) and adds the
 * writes to t (as kv_stage_put). The caller commits t. Returns as those. */
int kv_set_stage(struct kv *kv, struct barrier_txn *t, const char *path, uint64_t version,
                 enum kv_stage stage, struct rk_error *err);

/* ---- encoding ---- */

/* "pending", "current", "previous", "retired", "failed" (or "unknown"). */
const char *kv_stage_name(enum kv_stage stage);

/* Parses a stage name. Returns 0 or -RK_EINVAL. */
int kv_stage_parse(const char *s, enum kv_stage *stage);

/* Decodes stored metadata JSON (len bytes, need not be NUL-terminated). Checks every field and
 * the invariants (ascending unique versions, at most one current and one previous, consistent
 * current/latest/oldest). Returns 0 with *out (kv_meta_free), -RK_ECORRUPT, -RK_ENOMEM. */
int kv_meta_decode(const char *json, size_t len, struct kv_meta **out, struct rk_error *err);

/* Encodes meta as JSON into *out (malloc'd, NUL-terminated, caller frees; *len may be NULL).
 * Returns 0 or -RK_ENOMEM. */
int kv_meta_encode(const struct kv_meta *meta, char **out, size_t *len, struct rk_error *err);

/* Checks a custom_metadata object against Vault's limits (an object of at most
 * KV_CUSTOM_MAX_KEYS string values; keys 1..KV_CUSTOM_KEY_MAX bytes, values at most
 * KV_CUSTOM_VALUE_MAX bytes). err may be NULL. Returns 0 or -RK_EINVAL. */
int kv_custom_check(const json_t *c, struct rk_error *err);

/* 1 when vm is deleted at time now_us (deletion_us set and not in the future). */
int kv_version_deleted(const struct kv_version_meta *vm, int64_t now_us);

#endif
