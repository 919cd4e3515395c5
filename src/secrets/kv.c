/* kv.c: versioned key-value engine over the barrier (see kv.h for the model and the layout).
 *
 * Stored metadata is written in the binary format 2 (kvmeta.c, ~450 bytes for 10 versions, so
 * it stays inside one B-tree page); format 1, one JSON object, is still read (dispatch on the
 * first byte: '{' or 0x02) and is what kv_meta_encode/kv_meta_decode speak:
 *   {"format":1,"created_time":"…","updated_time":"…","current_version":3,"latest_version":3,
 *    "oldest_version":1,"max_versions":0,"cas_required":false,"delete_version_after":0,
 *    "custom_metadata":{…},"versions":[{"version":1,"created_time":"…","deletion_time":"",
 *    "destroyed":false,"stage":"previous","author":"","reason":"","fingerprint":"hmac:…"},…]}
 * Versions are kept in ascending order, so lookups are a binary search. */
#include "secrets/kv.h"
#include "secrets/kv-int.h"
#include "secrets/kvmeta.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/parse.h"
#include "util/timeutil.h"

static const char *const stage_names[] = {
    [KV_STAGE_PENDING] = "pending",   [KV_STAGE_CURRENT] = "current",
    [KV_STAGE_PREVIOUS] = "previous", [KV_STAGE_RETIRED] = "retired",
    [KV_STAGE_FAILED] = "failed",
};

#define NSTAGES (sizeof(stage_names) / sizeof(stage_names[0]))

const char *
kv_stage_name(enum kv_stage stage)
{
    if ((unsigned)stage >= NSTAGES)
        return "unknown";
    return stage_names[stage];
}

int
kv_stage_parse(const char *s, enum kv_stage *stage)
{
    for (size_t i = 0; i < NSTAGES; i++) {
        if (strcmp(s, stage_names[i]) == 0) {
            *stage = (enum kv_stage)i;
            return 0;
        }
    }
    return -RK_EINVAL;
}

int
kv_version_deleted(const struct kv_version_meta *vm, int64_t now_us)
{
    return vm->deletion_us != 0 && vm->deletion_us <= now_us;
}

/* ---- storage ---- */

int
kv_open(struct barrier *br, struct kv **out, struct rk_error *err)
{
    struct kv *kv;

    *out = NULL;
    if (br == NULL)
        return rk_error_set(err, RK_EINVAL, "no barrier");
    if ((kv = calloc(1, sizeof(*kv))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    kv->br = br;
    for (size_t i = 0; i < KV_CACHE_LOCKS; i++)
        pthread_mutex_init(&kv->locks[i], NULL);
    *out = kv;
    return 0;
}

void
kv_free(struct kv *kv)
{
    if (kv == NULL)
        return;
    for (size_t i = 0; i < KV_CACHE_SLOTS; i++) {
        free(kv->slots[i].path);
        kv_meta_free(kv->slots[i].meta);
    }
    for (size_t i = 0; i < KV_CACHE_LOCKS; i++)
        pthread_mutex_destroy(&kv->locks[i]);
    free(kv);
}

static size_t
cache_index(const char *path)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % KV_CACHE_SLOTS);
}

/* Looks up (path, rev). With want_meta, *meta gets a private copy; otherwise the version record
 * of version (0 = current) is copied to *vm (vm->version stays 0 when there is none) and
 * *current gets the current version. Returns 1 on a hit, 0 on a miss or allocation failure. */
static int
cache_lookup(struct kv *kv, const char *path, int64_t rev, int want_meta, struct kv_meta **meta,
             uint64_t version, struct kv_version_meta *vm, uint64_t *current)
{
    size_t i = cache_index(path);
    struct cache_slot *sl = &kv->slots[i];
    pthread_mutex_t *lk = &kv->locks[i % KV_CACHE_LOCKS];
    int hit = 0;

    pthread_mutex_lock(lk);
    if (sl->meta != NULL && sl->rev == rev && strcmp(sl->path, path) == 0) {
        if (want_meta) {
            *meta = kv_meta_dup(sl->meta);
            hit = *meta != NULL;
        } else {
            struct kv_version_meta *f;
            *current = sl->meta->current_version;
            f = kv_meta_find(sl->meta, version != 0 ? version : *current);
            if (f != NULL)
                *vm = *f;
            else
                vm->version = 0;
            hit = 1;
        }
    }
    pthread_mutex_unlock(lk);
    return hit;
}

/* Stores meta for (path, rev), taking it over (it is freed when not kept), unless the slot
 * holds a newer revision of path. */
static void
cache_take(struct kv *kv, const char *path, int64_t rev, struct kv_meta *meta)
{
    size_t i = cache_index(path);
    struct cache_slot *sl = &kv->slots[i];
    pthread_mutex_t *lk = &kv->locks[i % KV_CACHE_LOCKS];
    struct kv_meta *old;
    char *pcopy, *oldpath;

    if (rev <= 0 || meta == NULL || (pcopy = strdup(path)) == NULL) {
        kv_meta_free(meta);
        return;
    }
    pthread_mutex_lock(lk);
    if (sl->meta != NULL && sl->rev >= rev && strcmp(sl->path, path) == 0) {
        pthread_mutex_unlock(lk);
        free(pcopy);
        kv_meta_free(meta);
        return;
    }
    oldpath = sl->path;
    old = sl->meta;
    sl->path = pcopy;
    sl->rev = rev;
    sl->meta = meta;
    pthread_mutex_unlock(lk);
    free(oldpath);
    kv_meta_free(old);
}

/* Stores a copy of meta for (path, rev) unless the slot holds a newer revision of path. */
static void
cache_store(struct kv *kv, const char *path, int64_t rev, const struct kv_meta *meta)
{
    if (rev > 0)
        cache_take(kv, path, rev, kv_meta_dup(meta));
}

struct barrier *
kv_barrier(struct kv *kv)
{
    return kv->br;
}

static int
check_path(const char *path, struct rk_error *err)
{
    if (path == NULL)
        return rk_error_set(err, RK_EINVAL, "no path");
    return path_validate(path, strlen(path), err);
}

/* The list marker "kv/meta/<path>": one per path, what kv_list walks. In the first layout it
 * held the metadata itself; a marker written since holds MARKER_VALUE. */
static int
marker_key(const char *path, char *buf, size_t buflen, struct rk_error *err)
{
    int n = snprintf(buf, buflen, KV_META_PREFIX "%s", path);

    if (n < 0 || (size_t)n >= buflen)
        return rk_error_set(err, RK_EINVAL, "path is too long");
    return 0;
}

/* The metadata record "kv/data/<path>@meta", next to the path's data keys: a put rewrites the
 * metadata, the new version and the "@cur" record, and with the three side by side in the
 * B-tree a commit usually writes one leaf page per put instead of two or three. */
static int
meta_key(const char *path, char *buf, size_t buflen, struct rk_error *err)
{
    int n = snprintf(buf, buflen, KV_DATA_PREFIX "%s" META_SUFFIX, path);

    if (n < 0 || (size_t)n >= buflen)
        return rk_error_set(err, RK_EINVAL, "path is too long");
    return 0;
}

static int
data_key(const char *path, uint64_t version, char *buf, size_t buflen, struct rk_error *err)
{
    int n = snprintf(buf, buflen, KV_DATA_PREFIX "%s@%" PRIu64, path, version);

    if (n < 0 || (size_t)n >= buflen)
        return rk_error_set(err, RK_EINVAL, "path is too long");
    return 0;
}

/* ---- the current-version record ----
 * "kv/data/<path>@cur" (its format and codec: kv-current.c) is written in the same transaction
 * as every metadata write, so a plain read is one barrier read. */
/* Adds to t the current-version record matching meta (or its delete when there is no current
 * version). data is version's data when known; the current version's data is otherwise read
 * from the store (its data key is immutable once written, and t's compare on the metadata makes
 * the whole write fail if anything changed since). If that data is missing the record is
 * deleted instead, so readers take the metadata path and report the problem. */
static int
stage_cur(struct kv *kv, struct barrier_txn *t, const char *path, const struct kv_meta *meta,
          uint64_t version, const struct secret *data, struct rk_error *err)
{
    char key[STORE_KEY_MAX];
    const struct kv_version_meta *vm = NULL;
    struct secret *own = NULL, *rec = NULL;
    char *custom = NULL;
    int r;

    if ((r = cur_key(path, strlen(path), key, sizeof(key), err)) != 0)
        return r;
    if (meta->current_version != 0)
        vm = kv_meta_find(meta, meta->current_version);
    if (vm != NULL && !vm->destroyed && (data == NULL || version != vm->version)) {
        char dkey[STORE_KEY_MAX];
        struct rk_error e2 = {0};

        data = NULL;
        if ((r = data_key(path, vm->version, dkey, sizeof(dkey), err)) != 0)
            return r;
        r = barrier_get(kv->br, dkey, &own, NULL, &e2);
        if (r == 0)
            data = own;
        else if (r == -RK_ESEALED || r == -RK_EIO || r == -RK_ENOMEM)
            return rk_error_set(err, -r, "%s", e2.msg);
        else
            vm = NULL; /* missing or corrupt: no record */
    }
    if (vm == NULL) {
        r = barrier_txn_del(t, key) != 0 ? rk_error_set(err, RK_ENOMEM, "out of memory") : 0;
        goto out;
    }
    /* Not secret: custom_metadata is shown to anyone who may read the metadata. */
    if (meta->custom_metadata != NULL && json_object_size(meta->custom_metadata) > 0 &&
        (custom = json_dumps(meta->custom_metadata, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((rec = cur_encode(vm, custom, custom != NULL ? strlen(custom) : 0,
                          vm->destroyed ? NULL : data)) == NULL ||
        barrier_txn_put(t, key, rec->data, rec->len) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    r = 0;
out:
    free(custom);
    secret_free(rec);
    secret_free(own);
    return r;
}

/* The fast plain read: the current version from its record. custom (may be NULL) asks for the
 * path's custom_metadata too (set as kv_get_current's). Returns 0, -RK_ENOTFOUND with vmeta
 * filled for a deleted or destroyed current version (as read_version), 1 when the record is
 * absent or unusable, or lacks the custom_metadata asked for (the caller falls back to the
 * metadata), or another -RK_E*. */
static int
read_current(struct kv *kv, const char *path, struct secret **data, struct kv_version_meta *vmeta,
             json_t **custom, struct rk_error *err)
{
    char key[STORE_KEY_MAX];
    struct kv_version_meta vm;
    struct cur_custom cc;
    struct secret *raw = NULL;
    json_t *cj = NULL;
    size_t off, plen;
    int r;

    if (path == NULL)
        return rk_error_set(err, RK_EINVAL, "no path");
    plen = strlen(path);
    if ((r = path_validate(path, plen, err)) != 0 ||
        (r = cur_key(path, plen, key, sizeof(key), err)) != 0)
        return r;
    r = barrier_get(kv->br, key, &raw, NULL, err);
    if (r == -RK_ENOTFOUND)
        return 1;
    if (r != 0)
        return r;
    if ((off = cur_decode(raw, &vm, &cc)) == 0 || (custom != NULL && !cc.known)) {
        r = 1;
        goto out;
    }
    if (custom != NULL && cc.len > 0) {
        cj = json_loadb((const char *)raw->data + cc.off, cc.len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(cj)) {
            r = 1; /* the metadata path reports a corrupt record properly */
            goto out;
        }
    }
    if (vmeta != NULL)
        *vmeta = vm;
    if (custom != NULL) {
        *custom = cj;
        cj = NULL;
    }
    if (vm.destroyed) {
        r = rk_error_set(err, RK_ENOTFOUND, "version %" PRIu64 " of %s is destroyed", vm.version,
                         path);
        goto out;
    }
    if (kv_version_deleted(&vm, time_now_us())) {
        r = rk_error_set(err, RK_ENOTFOUND, "version %" PRIu64 " of %s is deleted", vm.version,
                         path);
        goto out;
    }
    if (data != NULL) {
        /* Hand the record's buffer over: the data moves to its front, the rest is wiped. */
        size_t dl = raw->len - off;
        memmove(raw->data, raw->data + off, dl);
        secure_wipe(raw->data + dl, off);
        raw->len = dl;
        *data = raw;
        raw = NULL;
    }
    r = 0;
out:
    json_decref(cj);
    secret_free(raw);
    return r;
}

/* Reads path's raw metadata and its revision. *legacy is set when it came from the first
 * layout (the metadata in the list marker; see kv.h), which the next write moves. */
static int
meta_fetch(struct kv *kv, const char *path, struct secret **raw, int64_t *rev, int *legacy,
           struct rk_error *err)
{
    char key[STORE_KEY_MAX];
    int r;

    *raw = NULL;
    *legacy = 0;
    if ((r = check_path(path, err)) != 0 || (r = meta_key(path, key, sizeof(key), err)) != 0)
        return r;
    *rev = 0;
    r = barrier_get(kv->br, key, raw, rev, err);
    if (r != -RK_ENOTFOUND)
        return r;
    if ((r = marker_key(path, key, sizeof(key), err)) != 0)
        return r;
    r = barrier_get(kv->br, key, raw, rev, err);
    if (r == 0 && (*raw)->len > 0 && (*raw)->data[0] == '{') {
        *legacy = 1;
        return 0;
    }
    secret_free(*raw);
    *raw = NULL;
    if (r == 0) {
        /* A marker without "@meta": the write that created the path (both in one transaction)
         * may have committed between the two reads. Only if "@meta" is still absent is it lost. */
        if ((r = meta_key(path, key, sizeof(key), err)) != 0)
            return r;
        *rev = 0;
        if ((r = barrier_get(kv->br, key, raw, rev, err)) != -RK_ENOTFOUND)
            return r;
        return rk_error_set(err, RK_ECORRUPT, "%s: the metadata record is missing", path);
    }
    if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no secret at %s", path);
    return r;
}

/* Blanks every fingerprint that is not a keyed one (written by rekey before keyed fingerprints:
 * an unkeyed hash confirms a guessed value) and marks meta so the next write recomputes them. */
static void
meta_scrub_fps(struct kv_meta *meta)
{
    for (size_t i = 0; i < meta->nversions; i++) {
        char *fp = meta->versions[i].fingerprint;
        if (fp[0] != '\0' && !fingerprint_valid(fp)) {
            memset(fp, 0, sizeof(meta->versions[i].fingerprint));
            meta->fp_stale = 1;
        }
    }
}

/* Decodes raw, the metadata of path at rev, into *meta (the caller's own copy). With keep, a
 * decode that missed the cache is cached too; a writer passes 0: it caches the metadata it
 * writes once it is committed (cache_take), so a copy of the old one would only be thrown away. */
static int
meta_decode_cached(struct kv *kv, const char *path, const struct secret *raw, int64_t rev,
                   int legacy, int keep, struct kv_meta **meta, struct rk_error *err)
{
    int r;

    if (cache_lookup(kv, path, rev, 1, meta, 0, NULL, NULL))
        return 0;
    if (raw->len > 0 && raw->data[0] == '{')
        r = kv_meta_decode((const char *)raw->data, raw->len, meta, err);
    else
        r = kv_meta_decode_bin(raw->data, raw->len, meta, err);
    if (r != 0)
        return rk_error_prefix(err, "%s", path);
    (*meta)->legacy = legacy;
    meta_scrub_fps(*meta);
    if (keep)
        cache_store(kv, path, rev, *meta);
    return 0;
}

int
meta_load(struct kv *kv, const char *path, int keep, struct kv_meta **meta, int64_t *mod_rev,
          struct rk_error *err)
{
    struct secret *raw = NULL;
    int64_t rev = 0;
    int r, legacy;

    *meta = NULL;
    if ((r = meta_fetch(kv, path, &raw, &rev, &legacy, err)) == 0)
        r = meta_decode_cached(kv, path, raw, rev, legacy, keep, meta, err);
    if (r == 0 && mod_rev != NULL)
        *mod_rev = rev;
    secret_free(raw);
    return r;
}

int
kv_meta_load(struct kv *kv, const char *path, struct kv_meta **meta, int64_t *mod_rev,
             struct rk_error *err)
{
    return meta_load(kv, path, 1, meta, mod_rev, err);
}

struct del_ctx {
    struct barrier_txn *t;
    const char *path;
    struct rk_error *err;
};

static int
prune_del(void *arg, uint64_t version)
{
    struct del_ctx *c = arg;
    char key[STORE_KEY_MAX];
    int r;

    if ((r = data_key(c->path, version, key, sizeof(key), c->err)) != 0)
        return r;
    if (barrier_txn_del(c->t, key) != 0)
        return rk_error_set(c->err, RK_ENOMEM, "out of memory");
    return 0;
}

/* Recomputes the fingerprints meta_scrub_fps blanked, from the versions' data (version's is
 * data when given); a destroyed version, or one whose data is missing or does not parse, keeps
 * "". Clears fp_stale. Returns 0, -RK_ESEALED, -RK_EIO, -RK_ENOMEM. */
static int
fp_recompute(struct kv *kv, const char *path, struct kv_meta *meta, uint64_t version,
             const struct secret *data, struct rk_error *err)
{
    struct fp_key *key = NULL;
    char dkey[STORE_KEY_MAX];
    int r = 0;

    for (size_t i = 0; i < meta->nversions && r == 0; i++) {
        struct kv_version_meta *vm = &meta->versions[i];
        struct secret *own = NULL, *canon = NULL;
        const struct secret *src = data;
        struct rk_error e2 = {0};
        char fp[FINGERPRINT_LEN + 1];

        if (vm->fingerprint[0] != '\0' || vm->destroyed)
            continue;
        if (key == NULL && (key = barrier_fp_key(kv->br)) == NULL) {
            r = barrier_no_fp_key(kv->br, err);
            break;
        }
        if (data == NULL || vm->version != version) {
            if ((r = data_key(path, vm->version, dkey, sizeof(dkey), err)) != 0)
                break;
            r = barrier_get(kv->br, dkey, &own, NULL, &e2);
            if (r == -RK_ESEALED || r == -RK_EIO || r == -RK_ENOMEM) {
                r = rk_error_set(err, -r, "%s", e2.msg);
                break;
            }
            r = 0;
            if ((src = own) == NULL)
                continue; /* missing or corrupt: stays unknown, reads report it */
        }
        if (kv_data_prepare_key(key, src, &canon, fp, &e2) == 0)
            memcpy(vm->fingerprint, fp, sizeof(fp));
        secret_free(canon);
        secret_free(own);
    }
    fp_key_unref(key);
    if (r == 0)
        meta->fp_stale = 0;
    return r;
}

int
kv_stage_put(struct kv *kv, struct barrier_txn *t, const char *path, struct kv_meta *meta,
             int64_t mod_rev, uint64_t version, const struct secret *data, struct rk_error *err)
{
    return stage_put(kv, t, path, meta, mod_rev, version, data, 1, err);
}

/* kv_stage_put; touch 0 keeps updated_time (a rewrite that changes nothing a user did). */
int
stage_put(struct kv *kv, struct barrier_txn *t, const char *path, struct kv_meta *meta,
          int64_t mod_rev, uint64_t version, const struct secret *data, int touch,
          struct rk_error *err)
{
    char key[STORE_KEY_MAX];
    unsigned char *enc = NULL;
    size_t enclen = 0;
    struct del_ctx dc = {t, path, err};
    int r;

    if ((r = check_path(path, err)) != 0 || (r = meta_key(path, key, sizeof(key), err)) != 0)
        return r;
    if (data != NULL) {
        if (kv_meta_find(meta, version) == NULL)
            return rk_error_set(err, RK_EINVAL, "version %" PRIu64 " is not in the metadata",
                                version);
        if (data->len > KV_DATA_MAX)
            return rk_error_set(err, RK_EINVAL, "secret data is too large");
    }
    if ((r = meta_prune(meta, prune_del, &dc)) != 0)
        return r;
    if (meta->fp_stale && (r = fp_recompute(kv, path, meta, version, data, err)) != 0)
        return r;
    if (touch)
        meta->updated_us = time_now_us();
    if ((r = kv_meta_encode_bin(meta, &enc, &enclen, err)) != 0)
        return r;
    if (barrier_txn_cmp(t, key, meta->legacy ? 0 : mod_rev) != 0 ||
        barrier_txn_put(t, key, enc, enclen) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    /* A new path gets its list marker; a path of the first layout has its metadata moved out of
     * the marker (compared at the revision it was read at). */
    if (mod_rev == 0 || meta->legacy) {
        if ((r = marker_key(path, key, sizeof(key), err)) != 0)
            goto out;
        if ((meta->legacy && barrier_txn_cmp(t, key, mod_rev) != 0) ||
            barrier_txn_put(t, key, MARKER_VALUE, sizeof(MARKER_VALUE) - 1) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        meta->legacy = 0;
    }
    /* The pruned version may be the one being written only if it was not current/pending. */
    if (data != NULL && kv_meta_find(meta, version) != NULL) {
        if ((r = data_key(path, version, key, sizeof(key), err)) != 0)
            goto out;
        if (barrier_txn_put(t, key, data->data, data->len) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
    }
    r = stage_cur(kv, t, path, meta, version, data, err);
out:
    free(enc);
    return r;
}

int
kv_set_stage(struct kv *kv, struct barrier_txn *t, const char *path, uint64_t version,
             enum kv_stage stage, struct rk_error *err)
{
    struct kv_meta *meta = NULL;
    int64_t rev = 0;
    int r;

    if ((r = kv_meta_load(kv, path, &meta, &rev, err)) != 0)
        return r;
    if ((r = kv_meta_set_stage(meta, version, stage, err)) == 0)
        r = kv_stage_put(kv, t, path, meta, rev, 0, NULL, err);
    kv_meta_free(meta);
    return r;
}

/* Waits a little before retrying after losing a race on a path's metadata. */
void
conflict_backoff(int attempt)
{
    struct timespec ts = {0, 0};

    if (attempt < 2)
        return;
    ts.tv_nsec = (long)(attempt < 40 ? attempt : 40) * 50000L;
    nanosleep(&ts, NULL);
}

/* ---- reads ---- */

static int
read_version(struct kv *kv, const char *path, uint64_t version, struct secret **data,
             struct kv_meta **metap, struct kv_version_meta *vmeta, struct rk_error *err)
{
    struct kv_meta *meta = NULL;
    struct kv_version_meta vm, *f;
    struct secret *raw = NULL;
    uint64_t current = 0;
    char key[STORE_KEY_MAX];
    int64_t rev = 0;
    int r, filled = 0, legacy;

    if (data != NULL)
        *data = NULL;
    if (metap != NULL)
        *metap = NULL;
    if (vmeta != NULL)
        memset(vmeta, 0, sizeof(*vmeta));
    if (version == 0 && metap == NULL && (r = read_current(kv, path, data, vmeta, NULL, err)) != 1)
        return r;
    if (vmeta != NULL)
        memset(vmeta, 0, sizeof(*vmeta));
    memset(&vm, 0, sizeof(vm));
    if ((r = meta_fetch(kv, path, &raw, &rev, &legacy, err)) != 0)
        goto out;
    /* The common read (no whole metadata wanted) copies one record out of the cache. */
    if (metap != NULL || !cache_lookup(kv, path, rev, 0, NULL, version, &vm, &current)) {
        if ((r = meta_decode_cached(kv, path, raw, rev, legacy, 1, &meta, err)) != 0)
            goto out;
        current = meta->current_version;
        f = kv_meta_find(meta, version != 0 ? version : current);
        if (f != NULL)
            vm = *f;
    }
    if (version == 0 && (version = current) == 0) {
        r = rk_error_set(err, RK_ENOTFOUND, "%s has no current version", path);
        goto out;
    }
    if (vm.version == 0) {
        r = rk_error_set(err, RK_ENOTFOUND, "%s has no version %" PRIu64, path, version);
        goto out;
    }
    if (vmeta != NULL)
        *vmeta = vm;
    filled = 1;
    if (vm.destroyed) {
        r = rk_error_set(err, RK_ENOTFOUND, "version %" PRIu64 " of %s is destroyed", version,
                         path);
        goto out;
    }
    if (kv_version_deleted(&vm, time_now_us())) {
        r = rk_error_set(err, RK_ENOTFOUND, "version %" PRIu64 " of %s is deleted", version, path);
        goto out;
    }
    if (data != NULL) {
        if ((r = data_key(path, version, key, sizeof(key), err)) != 0)
            goto out;
        r = barrier_get(kv->br, key, data, NULL, err);
        if (r == -RK_ENOTFOUND)
            r = rk_error_set(err, RK_ECORRUPT, "data of version %" PRIu64 " of %s is missing",
                             version, path);
        if (r != 0) {
            filled = 0;
            goto out;
        }
    }
    r = 0;
out:
    if (metap != NULL && filled) {
        *metap = meta;
        meta = NULL;
    }
    kv_meta_free(meta);
    secret_free(raw);
    return r;
}

int
kv_get(struct kv *kv, const char *path, uint64_t version, struct secret **data,
       struct kv_version_meta *vmeta, struct rk_error *err)
{
    return read_version(kv, path, version, data, NULL, vmeta, err);
}

int
kv_read(struct kv *kv, const char *path, uint64_t version, struct secret **data,
        struct kv_meta **meta, struct kv_version_meta *vmeta, struct rk_error *err)
{
    return read_version(kv, path, version, data, meta, vmeta, err);
}

int
kv_get_current(struct kv *kv, const char *path, struct secret **data, struct kv_version_meta *vm,
               json_t **custom, struct rk_error *err)
{
    struct kv_meta *meta = NULL;
    int r;

    if (data != NULL)
        *data = NULL;
    if (vm != NULL)
        memset(vm, 0, sizeof(*vm));
    if (custom == NULL)
        return read_version(kv, path, 0, data, NULL, vm, err);
    *custom = NULL;
    if ((r = read_current(kv, path, data, vm, custom, err)) != 1)
        return r;
    if (vm != NULL)
        memset(vm, 0, sizeof(*vm));
    r = read_version(kv, path, 0, data, &meta, vm, err);
    if (meta != NULL && json_object_size(meta->custom_metadata) > 0)
        *custom = json_incref(meta->custom_metadata);
    kv_meta_free(meta);
    return r;
}

int
kv_get_field(struct kv *kv, const char *path, uint64_t version, const char *field,
             struct secret **value, struct rk_error *err)
{
    struct secret *data = NULL;
    json_t *obj = NULL, *v;
    int r;

    *value = NULL;
    if ((r = kv_get(kv, path, version, &data, NULL, err)) != 0)
        return r;
    if ((r = secret_json_object(data, "stored data", &obj, err)) != 0) {
        r = rk_error_set(err, RK_ECORRUPT, "stored data of %s does not parse", path);
        goto out;
    }
    v = json_object_get(obj, field);
    if (v == NULL) {
        r = rk_error_set(err, RK_ENOTFOUND, "%s has no field %.128s", path, field);
        goto out;
    }
    if (!json_is_string(v)) {
        r = rk_error_set(err, RK_EINVAL, "field %.128s of %s is not a string", field, path);
        goto out;
    }
    if ((*value = secret_from(json_string_value(v), json_string_length(v))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    r = 0;
out:
    json_wipe_decref(obj);
    secret_free(data);
    return r;
}

/* ---- writes ---- */

static int
cas_check(const struct kv_meta *meta, const struct kv_put_opts *o, struct rk_error *err)
{
    if (o->cas < 0) {
        if (meta->cas_required)
            return rk_error_set(err, RK_EINVAL, "check-and-set parameter required for this call");
        return 0;
    }
    if ((uint64_t)o->cas != meta->latest_version)
        return rk_error_set(err, RK_ECONFLICT,
                            "check-and-set parameter did not match the current version");
    return 0;
}

/* Builds the patched data of the current version in *out (canonical) with its fingerprint. */
static int
patch_data(struct kv *kv, const struct fp_key *key, const char *path, const struct kv_meta *meta,
           json_t *patch, struct secret **out, char fp[FINGERPRINT_LEN + 1], struct rk_error *err)
{
    struct kv_version_meta *vm;
    struct secret *cur = NULL;
    json_t *obj = NULL;
    char dkey[STORE_KEY_MAX];
    int r;

    *out = NULL;
    if (meta->current_version == 0 || (vm = kv_meta_find(meta, meta->current_version)) == NULL)
        return rk_error_set(err, RK_ENOTFOUND, "%s has no current version to patch", path);
    if (vm->destroyed || kv_version_deleted(vm, time_now_us()))
        return rk_error_set(err, RK_ENOTFOUND, "the current version of %s is deleted", path);
    if ((r = data_key(path, vm->version, dkey, sizeof(dkey), err)) != 0)
        return r;
    if ((r = barrier_get(kv->br, dkey, &cur, NULL, err)) != 0)
        return r == -RK_ENOTFOUND ? rk_error_set(err, RK_ECORRUPT, "data of %s is missing", path)
                                  : r;
    if (secret_json_object(cur, "stored data", &obj, err) != 0) {
        r = rk_error_set(err, RK_ECORRUPT, "stored data of %s does not parse", path);
        goto out;
    }
    if (merge_patch(obj, patch) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    r = data_canonical(key, obj, out, fp, err);
out:
    json_wipe_decref(obj);
    secret_free(cur);
    return r;
}

static int settings_mutate(struct kv_meta *meta, struct barrier_txn *t, const char *path,
                           const void *arg, struct rk_error *err);

static int
kv_write(struct kv *kv, const char *path, const struct secret *in, int is_patch,
         const struct kv_put_opts *opts, uint64_t *version, struct rk_error *err)
{
    static const struct kv_put_opts defaults = KV_PUT_OPTS_INIT;
    struct kv_meta *meta = NULL;
    struct secret *data = NULL;
    struct barrier_txn *t = NULL;
    struct fp_key *key = NULL;
    json_t *patch = NULL;
    char fp[FINGERPRINT_LEN + 1];
    struct kv_version_meta written, *f;
    uint64_t v = 0;
    int64_t rev, newrev = 0;
    int r;

    if (opts == NULL)
        opts = &defaults;
    memset(&written, 0, sizeof(written));
    if ((r = check_path(path, err)) != 0)
        return r;
    if (opts->stage != KV_STAGE_CURRENT && opts->stage != KV_STAGE_PENDING)
        return rk_error_set(err, RK_EINVAL, "a new version is either current or pending");
    if ((key = barrier_fp_key(kv->br)) == NULL)
        return barrier_no_fp_key(kv->br, err);
    if (is_patch)
        r = secret_json_object(in, "patch", &patch, err);
    else
        r = kv_data_prepare_key(key, in, &data, fp, err);
    if (r != 0)
        goto out;
    for (int attempt = 0;; attempt++) {
        rev = 0;
        r = meta_load(kv, path, 0, &meta, &rev, err);
        if (r == -RK_ENOTFOUND && !is_patch) {
            if ((meta = kv_meta_new()) == NULL) {
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                goto out;
            }
            rev = 0;
            if (opts->new_path != NULL &&
                (r = settings_mutate(meta, NULL, path, opts->new_path, err)) != 0)
                goto out;
        } else if (r != 0) {
            goto out;
        }
        if ((r = cas_check(meta, opts, err)) != 0)
            goto out;
        if (is_patch) {
            secret_free(data);
            data = NULL;
            if ((r = patch_data(kv, key, path, meta, patch, &data, fp, err)) != 0)
                goto out;
        }
        if ((r = kv_meta_add_version(meta, opts->stage, opts->author, opts->reason, fp, &v, err)) !=
            0)
            goto out;
        if ((t = barrier_txn_new(kv->br)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        if ((r = kv_stage_put(kv, t, path, meta, rev, v, data, err)) != 0)
            goto out;
        if ((f = kv_meta_find(meta, v)) != NULL)
            written = *f;
        r = barrier_txn_commit(t, &newrev, err);
        barrier_txn_free(t);
        t = NULL;
        /* meta is now exactly what was stored at newrev: the next write or read of this path
         * finds it decoded (the cache is keyed by revision, so a stale entry never hits). */
        if (r == 0)
            cache_take(kv, path, newrev, meta); /* the cache keeps it: no copy */
        else
            kv_meta_free(meta);
        meta = NULL;
        if (r != -RK_ECONFLICT)
            break;
        if (opts->cas >= 0) {
            r = rk_error_set(err, RK_ECONFLICT,
                             "check-and-set parameter did not match the current version");
            break;
        }
        if (attempt + 1 >= KV_PUT_RETRIES) {
            r = rk_error_set(err, RK_ECONFLICT, "%s: too many concurrent writers", path);
            break;
        }
        conflict_backoff(attempt);
    }
    if (r == 0 && version != NULL)
        *version = v;
    if (r == 0 && opts->out_vm != NULL)
        *opts->out_vm = written;
out:
    barrier_txn_free(t);
    kv_meta_free(meta);
    secret_free(data);
    json_wipe_decref(patch);
    fp_key_unref(key);
    return r;
}

int
kv_put(struct kv *kv, const char *path, const struct secret *data, const struct kv_put_opts *opts,
       uint64_t *version, struct rk_error *err)
{
    return kv_write(kv, path, data, 0, opts, version, err);
}

int
kv_patch(struct kv *kv, const char *path, const struct secret *patch,
         const struct kv_put_opts *opts, uint64_t *version, struct rk_error *err)
{
    return kv_write(kv, path, patch, 1, opts, version, err);
}

/* A metadata change: mutate meta (and add extra writes to t). create: start from an empty
 * record when the path does not exist. */
typedef int (*meta_mutator)(struct kv_meta *meta, struct barrier_txn *t, const char *path,
                            const void *arg, struct rk_error *err);

static int
meta_update(struct kv *kv, const char *path, int create, meta_mutator fn, const void *arg,
            struct rk_error *err)
{
    struct kv_meta *meta = NULL;
    struct barrier_txn *t = NULL;
    int64_t rev;
    int r;

    for (int attempt = 0;; attempt++) {
        rev = 0;
        r = meta_load(kv, path, 0, &meta, &rev, err);
        if (r == -RK_ENOTFOUND && create) {
            if ((meta = kv_meta_new()) == NULL) {
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                goto out;
            }
            rev = 0;
        } else if (r != 0) {
            goto out;
        }
        if ((t = barrier_txn_new(kv->br)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        if ((r = fn(meta, t, path, arg, err)) != 0)
            goto out;
        if ((r = kv_stage_put(kv, t, path, meta, rev, 0, NULL, err)) != 0)
            goto out;
        r = barrier_txn_commit(t, NULL, err);
        barrier_txn_free(t);
        t = NULL;
        kv_meta_free(meta);
        meta = NULL;
        if (r != -RK_ECONFLICT || attempt + 1 >= KV_PUT_RETRIES)
            break;
        conflict_backoff(attempt);
    }
out:
    barrier_txn_free(t);
    kv_meta_free(meta);
    return r;
}

struct version_list {
    const uint64_t *v;
    size_t n;
    int op; /* 0 delete, 1 undelete, 2 destroy */
};

static int
versions_mutate(struct kv_meta *meta, struct barrier_txn *t, const char *path, const void *arg,
                struct rk_error *err)
{
    const struct version_list *vl = arg;
    uint64_t latest = meta->latest_version;
    const uint64_t *vs = vl->v;
    size_t n = vl->n;
    int64_t now = time_now_us();
    char key[STORE_KEY_MAX];
    int r;

    if (n == 0) {
        if (vl->op != 0)
            return 0;
        vs = &latest;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        struct kv_version_meta *vm = kv_meta_find(meta, vs[i]);
        if (vm == NULL || vm->destroyed)
            continue;
        switch (vl->op) {
        case 0:
            if (!kv_version_deleted(vm, now))
                vm->deletion_us = now;
            break;
        case 1: vm->deletion_us = 0; break;
        default:
            if ((r = data_key(path, vm->version, key, sizeof(key), err)) != 0)
                return r;
            if (barrier_txn_del(t, key) != 0)
                return rk_error_set(err, RK_ENOMEM, "out of memory");
            vm->destroyed = 1;
            break;
        }
    }
    return 0;
}

int
kv_delete_versions(struct kv *kv, const char *path, const uint64_t *versions, size_t n,
                   struct rk_error *err)
{
    struct version_list vl = {versions, n, 0};

    return meta_update(kv, path, 0, versions_mutate, &vl, err);
}

int
kv_undelete_versions(struct kv *kv, const char *path, const uint64_t *versions, size_t n,
                     struct rk_error *err)
{
    struct version_list vl = {versions, n, 1};

    return meta_update(kv, path, 0, versions_mutate, &vl, err);
}

int
kv_destroy_versions(struct kv *kv, const char *path, const uint64_t *versions, size_t n,
                    struct rk_error *err)
{
    struct version_list vl = {versions, n, 2};

    return meta_update(kv, path, 0, versions_mutate, &vl, err);
}

static int
settings_mutate(struct kv_meta *meta, struct barrier_txn *t, const char *path, const void *arg,
                struct rk_error *err)
{
    const struct kv_meta_settings *s = arg;
    int r;

    (void)t;
    (void)path;
    if (s->has_delete_version_after &&
        (s->delete_version_after < 0 || s->delete_version_after > INT64_MAX / 1000000))
        return rk_error_set(err, RK_EINVAL, "delete_version_after must not be negative");
    if (s->has_custom_metadata) {
        json_t *c;
        if ((r = kv_custom_check(s->custom_metadata, err)) != 0)
            return r;
        if ((c = json_deep_copy(s->custom_metadata)) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        json_decref(meta->custom_metadata);
        meta->custom_metadata = c;
    }
    if (s->has_max_versions)
        meta->max_versions = s->max_versions;
    if (s->has_cas_required)
        meta->cas_required = s->cas_required ? 1 : 0;
    if (s->has_delete_version_after)
        meta->delete_version_after = s->delete_version_after;
    return 0;
}

int
kv_metadata_put(struct kv *kv, const char *path, const struct kv_meta_settings *s,
                struct rk_error *err)
{
    if (s == NULL)
        return rk_error_set(err, RK_EINVAL, "no settings");
    return meta_update(kv, path, 1, settings_mutate, s, err);
}

int
kv_metadata_get(struct kv *kv, const char *path, struct kv_meta **meta, struct rk_error *err)
{
    return kv_meta_load(kv, path, meta, NULL, err);
}

int
kv_delete_metadata(struct kv *kv, const char *path, struct rk_error *err)
{
    struct kv_meta *meta = NULL;
    struct barrier_txn *t = NULL;
    char key[STORE_KEY_MAX];
    int64_t rev;
    int r;

    for (int attempt = 0;; attempt++) {
        rev = 0;
        if ((r = kv_meta_load(kv, path, &meta, &rev, err)) != 0)
            goto out;
        if ((t = barrier_txn_new(kv->br)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        if ((r = meta_key(path, key, sizeof(key), err)) != 0)
            goto out;
        if ((!meta->legacy && barrier_txn_cmp(t, key, rev) != 0) || barrier_txn_del(t, key) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        if ((r = marker_key(path, key, sizeof(key), err)) != 0)
            goto out;
        if ((meta->legacy && barrier_txn_cmp(t, key, rev) != 0) || barrier_txn_del(t, key) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < meta->nversions; i++) {
            if ((r = data_key(path, meta->versions[i].version, key, sizeof(key), err)) != 0)
                goto out;
            if (barrier_txn_del(t, key) != 0) {
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                goto out;
            }
        }
        if ((r = cur_key(path, strlen(path), key, sizeof(key), err)) != 0)
            goto out;
        if (barrier_txn_del(t, key) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        r = barrier_txn_commit(t, NULL, err);
        barrier_txn_free(t);
        t = NULL;
        kv_meta_free(meta);
        meta = NULL;
        if (r != -RK_ECONFLICT || attempt + 1 >= KV_PUT_RETRIES)
            break;
        conflict_backoff(attempt);
    }
out:
    barrier_txn_free(t);
    kv_meta_free(meta);
    return r;
}
