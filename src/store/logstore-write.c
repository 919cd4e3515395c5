/* logstore-write.c: the log store's write path. The overlay of what the batch being written
 * changes, encoding a caller's transaction into a TXN record, checking its compares, growing the
 * file by chunks of zeros, the writers' file lock and their catch-up with other processes, and
 * the group-commit leader (lg_run_batch) that writes a batch, syncs it and only then publishes
 * it. */
#include "store/logstore-int.h"

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

/* ---- writes -----------------------------------------------------------------------------------
 */

static int
wbuf_reserve(struct lg_backend *lg, size_t used, size_t more)
{
    size_t need = used + more, cap = lg->wcap ? lg->wcap : 65536;

    if (need <= lg->wcap)
        return 0;
    while (cap < need)
        cap *= 2;
    unsigned char *nb = realloc(lg->wbuf, cap);
    if (nb == NULL)
        return -RK_ENOMEM;
    lg->wbuf = nb;
    lg->wcap = cap;
    return 0;
}

static uint64_t
key_hash(const char *key, size_t *klen)
{
    return str_hash(key, SIZE_MAX - 1, klen);
}

static void
overlay_reset(struct lg_overlay *ov)
{
    ov->n = 0;
    if (ov->slot != NULL)
        memset(ov->slot, 0, ov->nslots * sizeof(*ov->slot));
}

void
lg_overlay_free(struct lg_overlay *ov)
{
    free(ov->w);
    free(ov->slot);
    memset(ov, 0, sizeof(*ov));
}

static struct lg_write *
overlay_find(const struct lg_overlay *ov, const char *key, size_t klen, uint64_t h)
{
    if (ov->nslots == 0)
        return NULL;
    for (size_t i = h & (ov->nslots - 1);; i = (i + 1) & (ov->nslots - 1)) {
        struct lg_write *w;

        if (ov->slot[i] == 0)
            return NULL;
        w = &ov->w[ov->slot[i] - 1];
        if (w->hash == h && w->klen == klen && memcmp(w->key, key, klen) == 0)
            return w;
    }
}

/* Makes room for more writes, so that the overlay_set calls of one transaction cannot fail
 * half-way. Returns 0 or -RK_ENOMEM. */
static int
overlay_reserve(struct lg_overlay *ov, size_t more)
{
    size_t need = ov->n + more;

    if (need > UINT32_MAX / 4)
        return -RK_ENOMEM;
    if (need > ov->cap) {
        size_t cap = ov->cap ? ov->cap : 64;
        struct lg_write *nw;

        while (cap < need)
            cap *= 2;
        if ((nw = realloc(ov->w, cap * sizeof(*nw))) == NULL)
            return -RK_ENOMEM;
        ov->w = nw;
        ov->cap = cap;
    }
    if (2 * need >= ov->nslots) {
        size_t ns = ov->nslots ? ov->nslots : 256;
        uint32_t *sl;

        while (2 * need >= ns)
            ns *= 2;
        if ((sl = calloc(ns, sizeof(*sl))) == NULL)
            return -RK_ENOMEM;
        free(ov->slot);
        ov->slot = sl;
        ov->nslots = ns;
        for (size_t j = 0; j < ov->n; j++) {
            size_t i = ov->w[j].hash & (ns - 1);

            while (sl[i] != 0)
                i = (i + 1) & (ns - 1);
            sl[i] = (uint32_t)j + 1;
        }
    }
    return 0;
}

/* Records a write of key (off LG_DELETED: a delete), in room overlay_reserve made. */
static void
overlay_set(struct lg_overlay *ov, const char *key, uint64_t off, uint32_t vlen, int64_t mod_rev)
{
    size_t klen;
    uint64_t h = key_hash(key, &klen);
    struct lg_write *w = overlay_find(ov, key, klen, h);

    if (w == NULL) {
        w = &ov->w[ov->n++];
        w->key = key;
        w->klen = klen;
        w->hash = h;
        {
            size_t i = h & (ov->nslots - 1);

            while (ov->slot[i] != 0)
                i = (i + 1) & (ov->nslots - 1);
            ov->slot[i] = (uint32_t)ov->n;
        }
    }
    w->off = off;
    w->vlen = vlen;
    w->mod_rev = mod_rev;
}

/* The key's mod_rev as the batch so far leaves it (0: absent). */
static int64_t
batch_mod_rev(const struct lg_backend *lg, const struct lg_overlay *ov, const char *key)
{
    size_t klen;
    uint64_t h = key_hash(key, &klen);
    const struct lg_write *w = overlay_find(ov, key, klen, h);
    const struct keyidx_ent *e;

    if (w != NULL)
        return w->off == LG_DELETED ? 0 : w->mod_rev;
    e = keyidx_get(lg->idx, key);
    return e != NULL ? e->mod_rev : 0;
}

/* Encodes q as a TXN record at rev into wbuf at *used (file offset base + *used) and records
 * its writes in overlay. Returns 0, or -RK_ENOMEM / -RK_ELIMIT with q failed. */
static int
encode_txn(struct lg_backend *lg, struct gc_req *q, int64_t rev, uint64_t base, size_t *used,
           struct lg_overlay *overlay)
{
    size_t start = *used, pos = *used + LG_REC_HDR;
    uint64_t len = 0;
    unsigned char *p;

    for (size_t i = 0; i < q->nops; i++)
        len +=
            LG_OP_HDR + strlen(q->ops[i].key) + (q->ops[i].kind == STORE_PUT ? q->ops[i].vlen : 0);
    if (len > LG_REC_MAX) {
        q->result = -RK_ELIMIT;
        snprintf(q->msg, sizeof(q->msg), "transaction too large for one log record");
        return q->result;
    }
    if (wbuf_reserve(lg, *used, LG_REC_HDR + (size_t)len) != 0 ||
        overlay_reserve(overlay, q->nops) != 0) {
        q->result = -RK_ENOMEM;
        snprintf(q->msg, sizeof(q->msg), "out of memory");
        return q->result;
    }
    for (size_t i = 0; i < q->nops; i++) {
        const struct store_op *op = &q->ops[i];
        size_t klen = strlen(op->key);
        uint32_t vlen = op->kind == STORE_PUT ? (uint32_t)op->vlen : 0;

        p = lg->wbuf + pos;
        p[0] = op->kind == STORE_PUT ? LG_OP_PUT : LG_OP_DEL;
        p[1] = 0;
        put16(p + 2, (uint16_t)klen);
        put32(p + 4, vlen);
        memcpy(p + LG_OP_HDR, op->key, klen);
        if (vlen > 0)
            memcpy(p + LG_OP_HDR + klen, op->val, vlen);
        overlay_set(overlay, op->key,
                    op->kind == STORE_PUT ? base + pos + LG_OP_HDR + klen : LG_DELETED, vlen, rev);
        pos += LG_OP_HDR + klen + vlen;
    }
    p = lg->wbuf + start;
    put32(p, LG_REC_TAG);
    put32(p + 4, (uint32_t)len);
    put16(p + 12, LG_T_TXN);
    put16(p + 14, 0);
    put64(p + 16, (uint64_t)rev);
    put32(p + 8, lg_rec_crc(p, (size_t)len));
    *used = pos;
    return 0;
}

/* Checks q's compares and its deletes' keys against the batch so far. Returns 0 when q may
 * commit; otherwise sets q's result. */
static int
check_req(const struct lg_backend *lg, const struct lg_overlay *overlay, struct gc_req *q)
{
    for (size_t i = 0; i < q->ncmps; i++) {
        int64_t cur = batch_mod_rev(lg, overlay, q->cmps[i].key);

        if (cur != q->cmps[i].mod_rev) {
            q->result = -RK_ECONFLICT;
            snprintf(q->msg, sizeof(q->msg), "compare failed on %s (mod_rev %lld, expected %lld)",
                     q->cmps[i].key, (long long)cur, (long long)q->cmps[i].mod_rev);
            return q->result;
        }
    }
    if (q->must_exist && q->nops == 1 && batch_mod_rev(lg, overlay, q->ops[0].key) == 0) {
        q->result = -RK_ENOTFOUND;
        snprintf(q->msg, sizeof(q->msg), "no such key");
        return q->result;
    }
    return 0;
}

/* Makes sure zeros lie ahead of the records up to need (see the top: an fdatasync into space
 * already written costs no metadata). Called by the leader. */
static int
ensure_alloc(struct lg_backend *lg, uint64_t need)
{
    uint64_t to;

    struct stat st;

    if (need <= lg->alloc_end)
        return 0;
    /* Another process may have grown the file since this one last looked: zeros written from
     * a stale size would wipe its records. The file lock keeps the size still now. */
    if (fstat(lg->fd, &st) != 0)
        return -1;
    if ((uint64_t)st.st_size > lg->alloc_end)
        lg->alloc_end = (uint64_t)st.st_size;
    if (need <= lg->alloc_end)
        return 0;
    to = (need + LG_CHUNK + LG_CHUNK - 1) / LG_CHUNK * LG_CHUNK;
    if (lg_write_zeros(lg->fd, lg->alloc_end, to) != 0)
        return -1;
    lg->alloc_end = to;
    /* This commit's fdatasync writes metadata anyway: move the floor up with it. */
    set_floor(lg, lg->end);
    return 0;
}

static void
fail_batch(struct lg_backend *lg, struct gc_req *batch, const char *what, int code)
{
    /* Every request: a compare, or a conflict, may have counted on a write that now failed. */
    for (struct gc_req *q = batch; q != NULL; q = q->next) {
        q->result = -code;
        snprintf(q->msg, sizeof(q->msg), "store %s: %s: %s", lg->path, what, strerror(errno));
    }
}

/* Under the file lock: brings idx up to date with every record in the file, including those of
 * a process that died after writing them (they committed: adopt them, as a crash recovery
 * would) and zeros the remains of one that died in the middle of a write. */
static int
writer_catch_up(struct lg_backend *lg, struct rk_error *err)
{
    unsigned char tag[4];
    uint64_t gen, end;
    struct stat st;
    ssize_t got;
    int damaged, r, z;

    pthread_rwlock_wrlock(&lg->ilock);
    gen = lg->gen;
    end = lg->end;
    if ((r = lg_catch_up_locked(lg, err)) != 0)
        goto out;
    got = lg_pread_full(lg->fd, tag, sizeof(tag), lg->end);
    if (got < 0) {
        r = lg_io_fail(err, lg->path, "reading");
        goto out;
    }
    /* Another process that wrote may have grown the file: zeros written up to a stale size
     * would wipe its records. */
    if (lg->gen == gen && (lg->end != end || (got == (ssize_t)sizeof(tag) && get32(tag) != 0))) {
        if (fstat(lg->fd, &st) != 0) {
            r = lg_io_fail(err, lg->path, "stat");
            goto out;
        }
        lg->alloc_end = (uint64_t)st.st_size;
    }
    if (got == (ssize_t)sizeof(tag) && get32(tag) != 0) {
        r = lg_replay(lg->fd, lg->idx, &lg->end, lg->alloc_end, &lg->rev, &lg->live, &damaged);
        if (r < 0) {
            r = lg_io_fail(err, lg->path, "reading");
            goto out;
        }
        if (damaged && (z = lg_zero_tail(lg->fd, lg->end, lg->alloc_end)) != 0) {
            if (z < 0) {
                r = lg_io_fail(err, lg->path, "discarding an incomplete write");
                goto out;
            }
            log_warn("store %s: discarded an incomplete write after byte %" PRIu64
                     " (a process died in the middle of a commit)",
                     lg->path, lg->end);
        }
        /* The records adopted from a process that died may never have been synced. */
        if (lg_sync_fd(lg, lg->fd) != 0) {
            r = lg_io_fail(err, lg->path, "syncing");
            goto out;
        }
        publish(lg);
    }
out:
    pthread_rwlock_unlock(&lg->ilock);
    return r;
}

/* Takes the file lock on the current file and catches up. */
int
lg_writer_lock(struct lg_backend *lg, struct rk_error *err)
{
    for (int tries = 0; tries < LG_REOPEN_TRIES; tries++) {
        int r;

        if (lg_lock_file(lg->fd) != 0)
            return lg_io_fail(err, lg->path, "locking");
        if (!(hdr_flags(lg->hdr) & LG_F_SUPERSEDED))
            return writer_catch_up(lg, err);
        flock(lg->fd, LOCK_UN);
        pthread_rwlock_wrlock(&lg->ilock);
        r = lg_reload_locked(lg, err);
        pthread_rwlock_unlock(&lg->ilock);
        if (r != 0)
            return r;
    }
    return rk_error_set(err, RK_EBUSY, "store %s: the file keeps being replaced", lg->path);
}

/* Compacts when the dead bytes exceed twice the live ones (and LG_COMPACT_MIN): the file stays
 * within three times the live data, and each compaction's copy of the live data and zeroing of
 * the old file is paid for by at least twice as many bytes of appends. */
static int
need_compaction(const struct lg_backend *lg)
{
    uint64_t dead = lg->end - LG_HDR_SIZE - lg->live;

    return dead > LG_COMPACT_MIN && dead / 2 > lg->live;
}

/* Runs a batch as one append and one fdatasync (gc_run_fn). */
uint64_t
lg_run_batch(void *arg, struct gc_req *batch)
{
    struct lg_backend *lg = arg;
    struct rk_error err = {0};
    struct lg_overlay *overlay = &lg->overlay;
    struct gc_req *q;
    size_t used = 0;
    uint64_t nok = 0, base;
    int64_t rev;
    int r;

    if ((r = lg_writer_lock(lg, &err)) != 0) {
        for (q = batch; q != NULL; q = q->next) {
            q->result = r;
            snprintf(q->msg, sizeof(q->msg), "%s", err.msg);
        }
        return 0;
    }
    overlay_reset(overlay);
    /* Only this leader changes idx while it holds the file lock; the shared lock is for the
     * record of it. */
    pthread_rwlock_rdlock(&lg->ilock);
    rev = lg->rev;
    base = lg->end;
    for (q = batch; q != NULL; q = q->next) {
        q->result = 0;
        if (check_req(lg, overlay, q) != 0)
            continue;
        if (q->nops == 0) {
            q->rev = rev; /* compares only: nothing written, no new revision */
            continue;
        }
        if (encode_txn(lg, q, rev + 1, base, &used, overlay) != 0)
            continue;
        q->rev = ++rev;
    }
    pthread_rwlock_unlock(&lg->ilock);

    if (used > 0) {
        if (ensure_alloc(lg, base + used) != 0 ||
            lg_pwrite_full(lg->fd, lg->wbuf, used, base) != 0 || lg_sync_fd(lg, lg->fd) != 0) {
            int saved = errno;

            /* Nothing was acknowledged: take the records back so that no later recovery finds
             * them (best effort; the next commit overwrites them anyway). */
            if (lg_write_zeros(lg->fd, base, base + used) == 0)
                fdatasync(lg->fd);
            errno = saved;
            fail_batch(lg, batch, "committing", RK_EIO);
            goto unlock;
        }
        pthread_rwlock_wrlock(&lg->ilock);
        for (size_t i = 0; i < overlay->n; i++) {
            const struct lg_write *w = &overlay->w[i];

            if (lg_idx_apply(lg->idx, &lg->live, w->key, w->klen, w->off, w->vlen, w->mod_rev) !=
                0) {
                /* Committed on disk but not all in memory: the next reader or writer reads
                 * the whole file in again (lg_reload_locked). */
                log_warn("store %s: out of memory after a commit; reloading the index", lg->path);
                lg->stale = 1;
                break;
            }
        }
        lg->end = base + used;
        lg->rev = rev;
        if (keyidx_pending(lg->idx) > LG_ORDER_MAX)
            keyidx_order(lg->idx);
        pthread_rwlock_unlock(&lg->ilock);
        hdr_store64(lg->shm, LG_SHM_WORD, pub_word(lg->gen, base + used));
    }
    for (q = batch; q != NULL; q = q->next)
        if (q->result == 0)
            nok++;
    if (need_compaction(lg) && lg_compact_locked(lg, &err) != 0)
        log_warn("store %s: compaction failed, the log keeps growing: %s", lg->path, err.msg);
unlock:
    flock(lg->fd, LOCK_UN);
    return nok;
}
