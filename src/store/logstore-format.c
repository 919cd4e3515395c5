/* logstore-format.c: the log store's file. The record's CRC, the file I/O (full reads and writes,
 * zeros ahead of the end, the sync and the lock), reading and checking records and replaying them
 * into an index, creating, opening and checking a store file, and the damage checks that refuse
 * a truncated or damaged one and zero the remains of an unacknowledged commit. The format itself
 * is described at the top of logstore.c. */
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

uint32_t
lg_rec_crc(const unsigned char *rec, size_t payload_len)
{
    uLong c = crc32(0L, Z_NULL, 0);

    c = crc32(c, rec + 4, 4);                                      /* len */
    c = crc32(c, rec + 12, (uInt)(LG_REC_HDR - 12 + payload_len)); /* type .. payload */
    return (uint32_t)c;
}

/* ---- file I/O ---------------------------------------------------------------------------------
 */

int
lg_io_fail(struct rk_error *err, const char *path, const char *what)
{
    return rk_error_set(err, RK_EIO, "store %s: %s: %s", path, what, strerror(errno));
}

/* Reads up to n bytes at off; returns the number read (short only at the end of the file) or
 * -1 with errno. */
ssize_t
lg_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

int
lg_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    size_t done = 0;

    while (done < n) {
        ssize_t k = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        done += (size_t)k;
    }
    return 0;
}

/* Writes zeros over [from, to). Returns 0 or -1 with errno. */
int
lg_write_zeros(int fd, uint64_t from, uint64_t to)
{
    static const unsigned char zeros[65536];

    while (from < to) {
        size_t n = to - from < sizeof(zeros) ? (size_t)(to - from) : sizeof(zeros);

        if (lg_pwrite_full(fd, zeros, n, from) != 0)
            return -1;
        from += n;
    }
    return 0;
}

/* Zeros the non-zero parts of [from, to): the remains of a write that never committed. Reads
 * first, so a clean tail costs no write. Returns 1 when something was zeroed, 0, or -1. */
int
lg_zero_tail(int fd, uint64_t from, uint64_t to)
{
    unsigned char *buf = malloc(LG_ZERO_CHUNK);
    int wrote = 0;

    if (buf == NULL)
        return -1;
    while (from < to) {
        size_t n = to - from < LG_ZERO_CHUNK ? (size_t)(to - from) : LG_ZERO_CHUNK;
        ssize_t got = lg_pread_full(fd, buf, n, from);
        size_t i;

        if (got < 0) {
            free(buf);
            return -1;
        }
        if (got == 0)
            break;
        /* memcmp against itself shifted by one byte: all zeros iff the first byte is zero and
         * every byte equals the next (vectorised, unlike a byte loop). */
        i = buf[0] == 0 && ((size_t)got == 1 || memcmp(buf, buf + 1, (size_t)got - 1) == 0)
                ? (size_t)got
                : 0;
        if (i < (size_t)got) {
            if (lg_write_zeros(fd, from, from + (size_t)got) != 0) {
                free(buf);
                return -1;
            }
            wrote = 1;
        }
        from += (size_t)got;
    }
    free(buf);
    return wrote;
}

/* fdatasync, failing the configured one for tests (REKEY_FAULT=fsync:N). */
int
lg_sync_fd(struct lg_backend *lg, int fd)
{
    uint64_t n = atomic_fetch_add(&lg->n_fsync, 1) + 1;

    if (lg->fail_fsync_nth > 0 && n == lg->fail_fsync_nth) {
        log_warn("REKEY_FAULT: injecting a failure into fsync %" PRIu64, n);
        errno = EIO;
        return -1;
    }
    while (fdatasync(fd) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

int
lg_lock_file(int fd)
{
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* ---- reading records --------------------------------------------------------------------------
 */

struct lg_scan {
    int fd;
    unsigned char *buf;
    size_t cap;
    uint64_t boff; /* file offset of buf[0] */
    size_t blen;
};

/* Points *p at the n bytes at off. Returns 0, 1 when the file ends first, or -RK_E*. */
static int
scan_need(struct lg_scan *sc, uint64_t off, size_t n, const unsigned char **p)
{
    size_t want = n > LG_SCAN_BUF ? n : LG_SCAN_BUF;
    ssize_t got;

    if (off >= sc->boff && off + n <= sc->boff + sc->blen) {
        *p = sc->buf + (off - sc->boff);
        return 0;
    }
    if (want > sc->cap) {
        unsigned char *nb = realloc(sc->buf, want);

        if (nb == NULL)
            return -RK_ENOMEM;
        sc->buf = nb;
        sc->cap = want;
    }
    if ((got = lg_pread_full(sc->fd, sc->buf, want, off)) < 0)
        return -RK_EIO;
    sc->boff = off;
    sc->blen = (size_t)got;
    if ((size_t)got < n)
        return 1;
    *p = sc->buf;
    return 0;
}

struct lg_rec {
    uint64_t off;
    uint32_t len;
    uint16_t type;
    int64_t rev;
    const unsigned char *payload;
};

enum { REC_OK = 0, REC_END = 1, REC_BAD = 2 };

/* Reads the record at off, which must end by limit. Returns REC_OK, REC_END (a zero tag or the
 * end of the file), REC_BAD (torn, damaged or garbage), or -RK_E*. */
static int
rec_read(struct lg_scan *sc, uint64_t off, uint64_t limit, struct lg_rec *rec)
{
    const unsigned char *p;
    uint32_t len;
    int r;

    if ((r = scan_need(sc, off, LG_REC_HDR, &p)) < 0)
        return r;
    if (r == 1) {
        /* The file ends inside a header: the end, if what is there is zeros. */
        for (size_t i = off - sc->boff; i < sc->blen; i++)
            if (sc->buf[i] != 0)
                return REC_BAD;
        return REC_END;
    }
    if (get32(p) == 0)
        return REC_END;
    if (get32(p) != LG_REC_TAG)
        return REC_BAD;
    len = get32(p + 4);
    if (len > LG_REC_MAX || off + LG_REC_HDR + len > limit)
        return REC_BAD;
    if ((r = scan_need(sc, off, LG_REC_HDR + len, &p)) < 0)
        return r;
    if (r == 1 || lg_rec_crc(p, len) != get32(p + 8) || get16(p + 14) != 0)
        return REC_BAD;
    rec->off = off;
    rec->len = len;
    rec->type = get16(p + 12);
    rec->rev = (int64_t)get64(p + 16);
    rec->payload = p + LG_REC_HDR;
    if (rec->type != LG_T_TXN && rec->type != LG_T_SNAP)
        return REC_BAD;
    return REC_OK;
}

struct lg_op {
    int kind;
    const char *key; /* not NUL-terminated: klen bytes */
    size_t klen;
    uint32_t vlen;
    int64_t mod_rev;
    uint64_t voff; /* the value's offset in the file */
};

/* Decodes the operation at *pos of rec. Returns 1 with *op set and *pos advanced, 0 at the end
 * of the record, or REC_BAD when the operation does not parse. */
static int
op_next(const struct lg_rec *rec, size_t *pos, struct lg_op *op)
{
    size_t ohdr = rec->type == LG_T_SNAP ? LG_SNAP_OP_HDR : LG_OP_HDR;
    const unsigned char *o = rec->payload + *pos;

    if (*pos == rec->len)
        return 0;
    if (rec->len - *pos < ohdr)
        return -REC_BAD;
    op->kind = o[0];
    op->klen = get16(o + 2);
    op->vlen = get32(o + 4);
    op->mod_rev = rec->type == LG_T_SNAP ? (int64_t)get64(o + 8) : rec->rev;
    op->key = (const char *)o + ohdr;
    if (o[1] != 0 || op->klen == 0 || op->klen > STORE_KEY_MAX ||
        (op->kind != LG_OP_PUT && op->kind != LG_OP_DEL) ||
        (op->kind == LG_OP_DEL && (op->vlen != 0 || rec->type == LG_T_SNAP)) ||
        (uint64_t)rec->len - *pos - ohdr < (uint64_t)op->klen + op->vlen ||
        memchr(op->key, 0, op->klen) != NULL || op->mod_rev <= 0 || op->mod_rev > rec->rev)
        return -REC_BAD;
    op->voff = rec->off + LG_REC_HDR + *pos + ohdr + op->klen;
    *pos += ohdr + op->klen + op->vlen;
    return 1;
}

/* The bytes an entry's operation takes in the log: what compaction keeps. */
uint64_t
lg_op_bytes(size_t klen, uint32_t vlen)
{
    return LG_OP_HDR + klen + vlen;
}

/* Sets key's entry in idx (off LG_DELETED removes it) and keeps *live. */
int
lg_idx_apply(struct keyidx *idx, uint64_t *live, const char *key, size_t klen, uint64_t off,
             uint32_t vlen, int64_t mod_rev)
{
    struct keyidx_ent *e = keyidx_get(idx, key);

    if (e != NULL)
        *live -= lg_op_bytes(e->klen, e->vlen);
    if (off == LG_DELETED) {
        keyidx_del(idx, key);
        return 0;
    }
    if (e != NULL) {
        e->off = off;
        e->vlen = vlen;
        e->mod_rev = mod_rev;
    } else if (keyidx_put_unordered(idx, key, off, vlen, mod_rev, NULL) != 0) {
        return -RK_ENOMEM;
    }
    *live += lg_op_bytes(klen, vlen);
    return 0;
}

/* Checks then applies one record. Returns 0, REC_BAD, or -RK_ENOMEM. */
static int
rec_apply(const struct lg_rec *rec, struct keyidx *idx, uint64_t *live)
{
    struct lg_op op;
    char key[STORE_KEY_MAX + 1];
    size_t pos = 0;
    int r;

    while ((r = op_next(rec, &pos, &op)) == 1)
        ;
    if (r != 0)
        return REC_BAD;
    pos = 0;
    while (op_next(rec, &pos, &op) == 1) {
        memcpy(key, op.key, op.klen);
        key[op.klen] = '\0';
        r = lg_idx_apply(idx, live, key, op.klen, op.kind == LG_OP_DEL ? LG_DELETED : op.voff,
                         op.vlen, op.mod_rev);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Reads the records of fd from *end on into idx, up to limit. Stops at limit, at the end of the
 * records, or at one that is damaged or out of order (a revision that does not increase):
 * *damaged tells which. Returns 0 with *end, *rev and *live advanced, or -RK_E*. */
int
lg_replay(int fd, struct keyidx *idx, uint64_t *end, uint64_t limit, int64_t *rev, uint64_t *live,
          int *damaged)
{
    struct lg_scan sc = {.fd = fd};
    struct lg_rec rec;
    int r = 0;

    *damaged = 0;
    while (*end < limit) {
        if ((r = rec_read(&sc, *end, limit, &rec)) < 0)
            break;
        if (r == REC_END) {
            r = 0;
            break;
        }
        if (r == REC_BAD || rec.rev < *rev || (rec.type == LG_T_TXN && rec.rev != *rev + 1)) {
            *damaged = 1;
            r = 0;
            break;
        }
        if ((r = rec_apply(&rec, idx, live)) == REC_BAD) {
            *damaged = 1;
            r = 0;
            break;
        }
        if (r < 0)
            break;
        *rev = rec.rev;
        *end += LG_REC_HDR + rec.len;
    }
    free(sc.buf);
    return r;
}

/* ---- opening ----------------------------------------------------------------------------------
 */

/* A random id for a new store file; RAND_bytes is not needed, only distinctness. */
static uint64_t
new_store_id(void)
{
    uint64_t id = 0;
    struct timespec ts;

    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        id = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
    }
    return id;
}

static int
init_file(struct lg_backend *lg, int fd, struct rk_error *err)
{
    unsigned char h[LG_HDR_SIZE] = {0};

    memcpy(h, LG_MAGIC, 8);
    put32(h + LG_H_VERSION, LG_VERSION);
    put64(h + LG_H_END, LG_HDR_SIZE);
    put64(h + LG_H_FLOOR, LG_HDR_SIZE);
    put64(h + LG_H_ID, new_store_id());
    if (lg_pwrite_full(fd, h, sizeof(h), 0) != 0 ||
        lg_write_zeros(fd, LG_HDR_SIZE, LG_CHUNK) != 0 || fdatasync(fd) != 0)
        return lg_io_fail(err, lg->path, "creating the store file");
    return fs_sync_dir_of(lg->path, err);
}

/* Checks the header of an open store file. */
static int
check_header(const char *path, int fd, struct rk_error *err)
{
    unsigned char h[LG_H_ID + 8];
    ssize_t got = lg_pread_full(fd, h, sizeof(h), 0);

    if (got < 0)
        return lg_io_fail(err, path, "reading the header");
    if ((size_t)got < sizeof(h) || memcmp(h, LG_MAGIC, 8) != 0)
        return rk_error_set(err, RK_ECORRUPT,
                            "store file %s is not a rekey log store, or its header is damaged; "
                            "restore it from a backup",
                            path);
    if (get32(h + LG_H_VERSION) > LG_VERSION)
        return rk_error_set(err, RK_EVERSION,
                            "store file %s has log format %" PRIu32
                            ", newer than this rekey (%d); upgrade rekey",
                            path, get32(h + LG_H_VERSION), LG_VERSION);
    if (get32(h + LG_H_VERSION) == 0)
        return rk_error_set(err, RK_ECORRUPT, "store file %s: its header is damaged", path);
    return 0;
}

/* Opens path's current file: *fd, *hdr (mapped), *size. Retries when a compaction replaced the
 * file in between. create: make it when missing (with an exclusive lock taken either way). */
int
lg_open_file(struct lg_backend *lg, int create, int *fd_out, unsigned char **hdr_out,
             uint64_t *size_out, struct rk_error *err)
{
    int superseded = 0;

    for (int tries = 0; tries < LG_REOPEN_TRIES; tries++) {
        int fd = open(lg->path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
        struct stat st;
        void *m;
        int r;

        if (fd < 0)
            return errno == ENOENT
                       ? rk_error_set(err, RK_EIO, "store %s: the file is gone", lg->path)
                       : lg_io_fail(err, lg->path, "opening");
        if (create && lg_lock_file(fd) != 0) {
            r = lg_io_fail(err, lg->path, "locking");
            close(fd);
            return r;
        }
        if (fstat(fd, &st) != 0) {
            r = lg_io_fail(err, lg->path, "stat");
            close(fd);
            return r;
        }
        if (create && st.st_size == 0) {
            if ((r = init_file(lg, fd, err)) != 0) {
                close(fd);
                return r;
            }
            st.st_size = LG_CHUNK;
        }
        if ((r = check_header(lg->path, fd, err)) != 0) {
            close(fd);
            return r;
        }
        if ((uint64_t)st.st_size < LG_HDR_SIZE || (uint64_t)st.st_size % LG_CHUNK != 0) {
            close(fd);
            return rk_error_set(err, RK_ECORRUPT,
                                "store file %s is truncated (%lld bytes, not a whole number of "
                                "%u-byte chunks); restore it from a backup",
                                lg->path, (long long)st.st_size, LG_CHUNK);
        }
        m = mmap(NULL, LG_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            r = lg_io_fail(err, lg->path, "mapping the header");
            close(fd);
            return r;
        }
        if (hdr_flags(m) & LG_F_SUPERSEDED) {
            munmap(m, LG_HDR_SIZE);
            close(fd);
            superseded++;
            continue; /* a compaction renamed a new file over it: open that one */
        }
        *fd_out = fd;
        *hdr_out = m;
        *size_out = (uint64_t)st.st_size;
        return 0;
    }
    /* A compaction marks a file only once a new one has taken its path: a marked file that stays
     * there was put back by hand. */
    return rk_error_set(err, RK_ECORRUPT,
                        "store file %s is marked as replaced by a compaction (%d times), but "
                        "stays in place; restore the store from a backup",
                        lg->path, superseded);
}

int
lg_damaged_error(struct rk_error *err, const char *path, uint64_t at, uint64_t floor)
{
    return rk_error_set(err, RK_ECORRUPT,
                        "store file %s is damaged: its records stop checking at byte %" PRIu64
                        " but committed data reaches byte %" PRIu64 "; restore it from a backup",
                        path, at, floor);
}

/* Fills idx from the file (under the exclusive lock): reads every record, and zeros the remains
 * of an unacknowledged commit after the last good one. */
int
lg_load_repair(struct lg_backend *lg, int fd, unsigned char *hdr, uint64_t size, struct keyidx *idx,
               uint64_t *end, int64_t *rev, uint64_t *live, struct rk_error *err)
{
    uint64_t floor = hdr_load64(hdr, LG_H_FLOOR), w = hdr_load64(lg->shm, LG_SHM_WORD);
    int damaged, r, z;

    *end = LG_HDR_SIZE;
    *rev = 0;
    *live = 0;
    r = lg_replay(fd, idx, end, size, rev, live, &damaged);
    keyidx_order(idx);
    if (r != 0)
        return r == -RK_ENOMEM ? rk_error_set(err, RK_ENOMEM, "out of memory")
                               : lg_io_fail(err, lg->path, "reading");
    if (*end < floor)
        return lg_damaged_error(err, lg->path, *end, floor);
    /* The end last published survives a crash of the processes (not always a power loss, as
     * PATH-shm is never synced): committed data reached at least that far. */
    if (hdr_load64(lg->shm, LG_SHM_ID) == hdr_load64(hdr, LG_H_ID) &&
        w >> 48 == (hdr_load64(hdr, LG_H_GEN) & 0xffff) && *end < (w & LG_END_MASK))
        return rk_error_set(err, RK_ECORRUPT,
                            "store file %s is damaged: its records stop checking at byte %" PRIu64
                            " but committed data reached byte %" PRIu64
                            " (per %s-shm); restore it from a backup (if this file was just "
                            "restored from one on purpose, delete %s-shm first)",
                            lg->path, *end, w & LG_END_MASK, lg->path, lg->path);
    /* Also when the records ended cleanly (damaged or not): a crash can persist a later page
     * of an unacknowledged batch and lose an earlier one, leaving zeros, then a valid record,
     * which the next commit would otherwise revive by filling the hole. */
    if ((z = lg_zero_tail(fd, *end, size)) < 0 || (z > 0 && fdatasync(fd) != 0))
        return lg_io_fail(err, lg->path, "discarding an incomplete write");
    if (z > 0)
        log_warn("store %s: discarded an incomplete write after byte %" PRIu64
                 " (a commit a crash interrupted before it was acknowledged)",
                 lg->path, *end);
    return 0;
}
