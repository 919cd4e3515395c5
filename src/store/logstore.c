/* logstore.c: the log-structured backend ("log:PATH").
 *
 * Why a second backend: SQLite writes whole B-tree pages, about 17 pages of 4 KiB for a batch of
 * 8 KV puts, and on the disks rekey runs on the cost of a durable commit follows the bytes it
 * writes. Here a commit is ONE sequential write of the batch's records plus one fdatasync, into
 * space that was written with zeros in advance, so the fdatasync has no block allocation or file
 * size to journal. Writers are batched by group commit (gcommit.h) as in the SQLite backend.
 *
 * The file: a 4 KiB header, then records, then zeros up to the file's end.
 *   header  "rekeylog", u32 version, u32 flags (SUPERSEDED), u64 end, u64 floor, u64 generation,
 *           u64 store id
 *   record  u32 tag, u32 len, u32 crc32 (of len and everything after the crc), u16 type, u16 0,
 *           i64 rev, then len bytes of operations:
 *           TXN   one caller transaction at revision rev: u8 kind (PUT, DEL), u8 0, u16 klen,
 *                 u32 vlen, key, value. Every key it puts gets mod_rev = rev.
 *           SNAP  part of a compacted image: PUT operations with an i64 mod_rev after vlen.
 * All integers are little-endian. Everything is in memory except the values: an index (keyidx.h)
 * maps each key to where its value lies, and a get is a hash lookup plus one pread.
 *
 * Durability and recovery. A commit writes its records after the end, fdatasyncs, and only then
 * publishes the new end. On open, the records are read from the start until the first one that
 * is missing, torn or fails its CRC; what follows is the remains of a commit that was never
 * acknowledged (a crash between write and fdatasync) and is overwritten with zeros. Truncation
 * and damage are caught three ways: the file grows in whole chunks of zeros (LG_CHUNK), so a
 * cut file has a size that is not a whole number of them; the header keeps a floor, an end known
 * to be durable, which the records must reach; and so must the end last published in PATH-shm
 * (below), which survives a crash of the processes. The floor is rewritten only when the header
 * is written anyway (a new chunk, a compaction, a clean close): writing it on every commit would
 * add a second region to every fdatasync.
 *
 * Several processes (a server and the CLI) may share the file. The published end lives in a
 * side file, PATH-shm, mapped shared and never synced (SQLite's -shm plays the same part): a
 * process's readers see from it that another process appended records and read them in before
 * answering. Writers serialise on flock(LOCK_EX) around each commit.
 *
 * Compaction. Overwritten and deleted values stay in the log as dead bytes. When they exceed the
 * live ones (and 4 MiB), the leader writes the live entries into a new file, renames it over the
 * old one, marks the old one SUPERSEDED (other processes then reopen the path) and, on a thread
 * of its own once this process's readers of it are done, overwrites the old records with zeros
 * before closing it, so old ciphertext does not linger on disk (the SQLite backend's
 * secure_delete).
 *
 * The parts: logstore-format.c (records, file I/O, replay, opening, damage), logstore-write.c
 * (the write path), logstore-compact.c (compaction); logstore-int.h is what they share. This
 * file keeps open and close, PATH-shm, keeping up with other processes, reads and the ops. */
#include "store/logstore.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "util/enc.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "store/logstore-int.h"

static void
lg_close(struct backend *b)
{
    struct lg_backend *lg = (struct lg_backend *)b;

    if (lg == NULL)
        return;
    lg_retire_join(lg);
    if (lg->opened) {
        /* A clean close pins the floor at the end, so that any truncation shows. */
        set_floor(lg, lg->end);
        fdatasync(lg->fd);
    }
    if (lg->shm != NULL)
        munmap(lg->shm, LG_SHM_SIZE);
    if (lg->hdr != NULL)
        munmap(lg->hdr, LG_HDR_SIZE);
    if (lg->fd >= 0)
        close(lg->fd);
    keyidx_free(lg->idx);
    gcommit_destroy(&lg->gc);
    pthread_rwlock_destroy(&lg->ilock);
    free(lg->wbuf);
    lg_overlay_free(&lg->overlay);
    free(lg->path);
    free(lg);
}

/* Opens (creating) PATH-shm, where the published end lives, and maps it. */
static int
open_shm(struct lg_backend *lg, struct rk_error *err)
{
    char path[PATH_MAX];
    struct stat st;
    void *m;
    int fd, r = 0;

    if ((size_t)snprintf(path, sizeof(path), "%s-shm", lg->path) >= sizeof(path))
        return rk_error_set(err, RK_EINVAL, "store path too long");
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return lg_io_fail(err, path, "opening");
    if (fstat(fd, &st) != 0 || (st.st_size < LG_SHM_SIZE && ftruncate(fd, LG_SHM_SIZE) != 0)) {
        r = lg_io_fail(err, path, "sizing");
    } else if ((m = mmap(NULL, LG_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
               MAP_FAILED) {
        r = lg_io_fail(err, path, "mapping");
    } else {
        lg->shm = m;
        if (memcmp(lg->shm, LG_SHM_MAGIC, 8) != 0)
            memcpy(lg->shm, LG_SHM_MAGIC, 8);
    }
    close(fd);
    return r;
}

int
logstore_open_ex(const char *path, uint64_t fail_fsync_nth, struct backend **out,
                 struct rk_error *err)
{
    struct lg_backend *lg;
    uint64_t size;
    int r;

    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "store path is empty");
    if ((lg = calloc(1, sizeof(*lg))) == NULL || (lg->path = strdup(path)) == NULL ||
        (lg->idx = keyidx_new()) == NULL) {
        if (lg != NULL)
            free(lg->path);
        free(lg);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    lg->base.ops = &log_backend_ops;
    lg->fd = -1;
    gcommit_init(&lg->gc, lg_run_batch, lg);
    pthread_rwlock_init(&lg->ilock, NULL);
    if ((r = lg_open_file(lg, 1, &lg->fd, &lg->hdr, &size, err)) != 0)
        goto out;
    r = open_shm(lg, err);
    if (r == 0)
        r = lg_load_repair(lg, lg->fd, lg->hdr, size, lg->idx, &lg->end, &lg->rev, &lg->live, err);
    if (r == 0) {
        lg->alloc_end = size;
        lg->gen = hdr_load64(lg->hdr, LG_H_GEN);
        set_floor(lg, lg->end);
        hdr_store64(lg->shm, LG_SHM_ID, hdr_load64(lg->hdr, LG_H_ID));
        publish(lg);
    }
    flock(lg->fd, LOCK_UN);
    if (r != 0)
        goto out;
    lg->fail_fsync_nth = fail_fsync_nth;
    lg->opened = 1;
    *out = &lg->base;
    return 0;
out:
    lg_close(&lg->base);
    return r;
}

static int
lg_open(const char *location, struct backend **out, struct rk_error *err)
{
    return logstore_open_ex(location, 0, out, err);
}

/* Waits until no reader is still reading the file of the epoch before the current one. */
void
lg_drain_readers(struct lg_backend *lg, uint64_t old_epoch)
{
    while (atomic_load(&lg->readers_out[old_epoch & 1]) != 0) {
        struct timespec ts = {0, 20000};

        nanosleep(&ts, NULL);
    }
}

/* ---- keeping up with other processes ----------------------------------------------------------
 */

/* Whether another process committed (or compacted) since idx was last brought up to date.
 * Called with ilock held (either way). */
static int
behind(const struct lg_backend *lg)
{
    uint64_t w = hdr_load64(lg->shm, LG_SHM_WORD);

    return (w >> 48 == (lg->gen & 0xffff) && (w & LG_END_MASK) > lg->end) ||
           (hdr_flags(lg->hdr) & LG_F_SUPERSEDED) || lg->stale;
}

/* Reopens the path after a compaction replaced the file, or reads it in again when idx missed a
 * commit (lg->stale). ilock held exclusively. */
int
lg_reload_locked(struct lg_backend *lg, struct rk_error *err)
{
    for (int tries = 0; tries < LG_REOPEN_TRIES; tries++) {
        struct keyidx *idx = keyidx_new();
        unsigned char *hdr;
        uint64_t size, end = LG_HDR_SIZE, live = 0, limit;
        int64_t rev = 0;
        int fd, damaged, r;

        if (idx == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        if ((r = lg_open_file(lg, 0, &fd, &hdr, &size, err)) != 0) {
            keyidx_free(idx);
            return r;
        }
        /* Up to the published end when it is this file's (a compaction writes the floor of its
         * new file at its end, then publishes it). */
        limit = hdr_load64(lg->shm, LG_SHM_WORD);
        if (limit >> 48 == (hdr_load64(hdr, LG_H_GEN) & 0xffff))
            limit &= LG_END_MASK;
        else
            limit = hdr_load64(hdr, LG_H_FLOOR);
        r = lg_replay(fd, idx, &end, limit, &rev, &live, &damaged);
        keyidx_order(idx);
        if (r == 0 && end < limit && !(hdr_flags(hdr) & LG_F_SUPERSEDED))
            r = lg_damaged_error(err, lg->path, end, limit);
        else if (r < 0)
            r = r == -RK_ENOMEM ? rk_error_set(err, RK_ENOMEM, "out of memory")
                                : lg_io_fail(err, lg->path, "reading");
        if (r == 0 && (hdr_flags(hdr) & LG_F_SUPERSEDED)) {
            keyidx_free(idx);
            munmap(hdr, LG_HDR_SIZE);
            close(fd);
            continue;
        }
        if (r != 0) {
            keyidx_free(idx);
            munmap(hdr, LG_HDR_SIZE);
            close(fd);
            return r;
        }
        {
            int ofd = lg->fd;
            unsigned char *ohdr = lg->hdr;

            lg->fd = fd;
            lg->hdr = hdr;
            lg->epoch++;
            lg_drain_readers(lg, lg->epoch - 1);
            munmap(ohdr, LG_HDR_SIZE);
            close(ofd);
        }
        keyidx_free(lg->idx);
        lg->idx = idx;
        lg->end = end;
        lg->alloc_end = size;
        lg->live = live;
        lg->rev = rev;
        lg->gen = hdr_load64(hdr, LG_H_GEN);
        lg->stale = 0;
        return 0;
    }
    return rk_error_set(err, RK_EBUSY, "store %s: the file keeps being replaced", lg->path);
}

/* Reads in what other processes committed. ilock held exclusively. */
int
lg_catch_up_locked(struct lg_backend *lg, struct rk_error *err)
{
    uint64_t limit;
    int damaged, r;

    if ((hdr_flags(lg->hdr) & LG_F_SUPERSEDED) || lg->stale)
        return lg_reload_locked(lg, err);
    limit = published_end(lg);
    if (limit <= lg->end)
        return 0;
    r = lg_replay(lg->fd, lg->idx, &lg->end, limit, &lg->rev, &lg->live, &damaged);
    if (r < 0)
        return r == -RK_ENOMEM ? rk_error_set(err, RK_ENOMEM, "out of memory")
                               : lg_io_fail(err, lg->path, "reading");
    if (lg->end < limit) {
        if (hdr_flags(lg->hdr) & LG_F_SUPERSEDED)
            return lg_reload_locked(lg, err);
        return lg_damaged_error(err, lg->path, lg->end, limit);
    }
    return 0;
}

/* Takes ilock shared, first bringing idx up to date when another process wrote. */
static int
rdlock_current(struct lg_backend *lg, struct rk_error *err)
{
    int r;

    for (;;) {
        pthread_rwlock_rdlock(&lg->ilock);
        if (!behind(lg))
            return 0;
        pthread_rwlock_unlock(&lg->ilock);
        pthread_rwlock_wrlock(&lg->ilock);
        r = lg_catch_up_locked(lg, err);
        pthread_rwlock_unlock(&lg->ilock);
        if (r != 0)
            return r;
    }
}

/* ---- reads ------------------------------------------------------------------------------------
 */

static int
read_value(const struct lg_backend *lg, int fd, uint64_t off, uint32_t vlen, unsigned char **val,
           struct rk_error *err)
{
    unsigned char *v = malloc(vlen > 0 ? vlen : 1);
    ssize_t got;

    if (v == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    got = lg_pread_full(fd, v, vlen, off);
    if (got != (ssize_t)vlen) {
        free(v);
        if (got < 0)
            return lg_io_fail(err, lg->path, "reading a value");
        return rk_error_set(err, RK_ECORRUPT,
                            "store file %s is truncated; restore it from a backup", lg->path);
    }
    *val = v;
    return 0;
}

static int
lg_get(struct backend *b, const char *key, unsigned char **val, size_t *vlen, int64_t *mod_rev,
       struct rk_error *err)
{
    struct lg_backend *lg = (struct lg_backend *)b;
    int r;

    if ((r = gcommit_key_ok(key, err)) != 0)
        return r;
    for (;;) {
        struct keyidx_ent *e;
        const unsigned char *hdr;
        uint64_t off;
        uint32_t len;
        int64_t mr;
        int fd, replaced;
        unsigned slot;

        if ((r = rdlock_current(lg, err)) != 0)
            return r;
        if ((e = keyidx_get(lg->idx, key)) == NULL) {
            pthread_rwlock_unlock(&lg->ilock);
            return rk_error_set(err, RK_ENOTFOUND, "no such key");
        }
        /* The pread runs outside the lock, so that a reader the scheduler preempts there does
         * not hold up the next commit's publication. The file it reads stays open and intact
         * until the readers of its epoch are done (see lg_backend.readers_out). */
        off = e->off;
        len = e->vlen;
        mr = e->mod_rev;
        fd = lg->fd;
        hdr = lg->hdr;
        slot = (unsigned)(lg->epoch & 1);
        atomic_fetch_add(&lg->readers_out[slot], 1);
        pthread_rwlock_unlock(&lg->ilock);
        r = read_value(lg, fd, off, len, val, err);
        /* Another process's compaction overwrites the old file with zeros after marking it:
         * a read that raced with it starts again on the new file. */
        replaced = (hdr_flags(hdr) & LG_F_SUPERSEDED) != 0;
        atomic_fetch_sub(&lg->readers_out[slot], 1);
        if (!replaced) {
            if (r == 0) {
                *vlen = len;
                if (mod_rev != NULL)
                    *mod_rev = mr;
            }
            return r;
        }
        if (r == 0)
            free(*val);
    }
}

#define LG_LIST_CHUNK 64

struct list_item {
    char *key;
    unsigned char *val;
    size_t vlen;
    int64_t mod_rev;
};

static void
items_free(struct list_item *it, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(it[i].key);
        free(it[i].val);
    }
}

/* Copies up to LG_LIST_CHUNK entries with prefix after *after (NULL: from the prefix on) into
 * it. Callbacks then run without ilock held, so they may read or write the store. */
static int
list_chunk(struct lg_backend *lg, const char *prefix, size_t plen, const char *after, int keys_only,
           size_t max, struct list_item *it, size_t *n, struct rk_error *err)
{
    struct keyidx_ent *e;
    int r = 0, replaced;

again:
    *n = 0;
    if ((r = rdlock_current(lg, err)) != 0)
        return r;
    if (keyidx_pending(lg->idx) > 0) {
        /* New keys wait out of the index's tree (keyidx_put_unordered): order them first. */
        pthread_rwlock_unlock(&lg->ilock);
        pthread_rwlock_wrlock(&lg->ilock);
        keyidx_order(lg->idx);
        pthread_rwlock_unlock(&lg->ilock);
        goto again;
    }
    e = after != NULL ? keyidx_seek(lg->idx, after, 1) : keyidx_seek(lg->idx, prefix, 0);
    for (; e != NULL && *n < max && strncmp(e->key, prefix, plen) == 0;
         e = keyidx_next(lg->idx, e)) {
        struct list_item *x = &it[*n];

        memset(x, 0, sizeof(*x));
        if ((x->key = strdup(e->key)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            break;
        }
        (*n)++;
        x->mod_rev = e->mod_rev;
        x->vlen = e->vlen;
        if (!keys_only && (r = read_value(lg, lg->fd, e->off, e->vlen, &x->val, err)) != 0)
            break;
    }
    replaced = (hdr_flags(lg->hdr) & LG_F_SUPERSEDED) != 0;
    pthread_rwlock_unlock(&lg->ilock);
    if (r != 0 || replaced) {
        items_free(it, *n);
        *n = 0;
        if (r == 0)
            goto again;
    }
    return r;
}

static int
lg_list(struct backend *b, const char *prefix, const char *start_after, size_t limit, int keys_only,
        store_list_cb cb, void *arg, struct rk_error *err)
{
    struct lg_backend *lg = (struct lg_backend *)b;
    struct list_item it[LG_LIST_CHUNK];
    char *after = NULL;
    size_t plen, n, sent = 0;
    int r = 0, stop = 0;

    if (prefix == NULL)
        prefix = "";
    plen = strnlen(prefix, STORE_KEY_MAX + 1);
    if (plen > STORE_KEY_MAX)
        return rk_error_set(err, RK_EINVAL, "list prefix longer than %d bytes", STORE_KEY_MAX);
    if (start_after != NULL && strcmp(start_after, prefix) >= 0 &&
        (after = strdup(start_after)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    while (!stop) {
        size_t max = LG_LIST_CHUNK, i;

        if (limit > 0 && limit - sent < max)
            max = limit - sent;
        if (max == 0)
            break;
        if ((r = list_chunk(lg, prefix, plen, after, keys_only, max, it, &n, err)) != 0)
            break;
        if (n == 0)
            break;
        for (i = 0; i < n && !stop; i++) {
            int c = cb(arg, it[i].key, keys_only ? NULL : it[i].val, it[i].vlen, it[i].mod_rev);

            sent++;
            if (c != 0) {
                /* A negative result is the caller's error, its message already where it
                 * wants it (as with the SQLite backend). */
                r = c < 0 ? c : 0;
                stop = 1;
            }
        }
        free(after);
        after = it[n - 1].key;
        it[n - 1].key = NULL;
        items_free(it, n);
        if (n < max)
            break;
    }
    free(after);
    return r;
}

void
logstore_backend_stats(struct backend *b, struct logstore_stats *st)
{
    struct lg_backend *lg = (struct lg_backend *)b;

    memset(st, 0, sizeof(*st));
    if (b == NULL || b->ops != &log_backend_ops)
        return;
    gcommit_stats(&lg->gc, &st->commits, &st->txns);
    pthread_rwlock_rdlock(&lg->ilock);
    st->compactions = lg->compactions;
    st->live_bytes = lg->live;
    st->dead_bytes = lg->end - LG_HDR_SIZE - lg->live;
    st->end = lg->end;
    st->keys = keyidx_count(lg->idx);
    pthread_rwlock_unlock(&lg->ilock);
}

static int
lg_txn(struct backend *b, const struct store_cmp *cmps, size_t ncmps, const struct store_op *ops,
       size_t nops, int64_t *rev, struct rk_error *err)
{
    return gcommit_txn(&((struct lg_backend *)b)->gc, cmps, ncmps, ops, nops, rev, err);
}

static int
lg_put(struct backend *b, const char *key, const void *val, size_t vlen, int64_t *rev,
       struct rk_error *err)
{
    return gcommit_put(&((struct lg_backend *)b)->gc, key, val, vlen, rev, err);
}

static int
lg_del(struct backend *b, const char *key, int64_t *rev, struct rk_error *err)
{
    return gcommit_del(&((struct lg_backend *)b)->gc, key, rev, err);
}

const struct backend_ops log_backend_ops = {
    .version = BACKEND_OPS_VERSION,
    .name = "log",
    .open = lg_open,
    .close = lg_close,
    .get = lg_get,
    .put = lg_put,
    .del = lg_del,
    .list = lg_list,
    .txn = lg_txn,
    .trim = NULL,
};
