/* logstore-int.h: what the parts of the log store share and no other module may use:
 * logstore.c (open and close, PATH-shm, keeping up with other processes, reads, the backend
 * ops), logstore-format.c (the file: records, file I/O, replay, opening and the damage checks),
 * logstore-write.c (the batch overlay and the group-commit leader) and logstore-compact.c
 * (compaction and retiring the replaced file). The file format and the durability rules are
 * described at the top of logstore.c. */
#ifndef REKEY_STORE_LOGSTORE_INT_H
#define REKEY_STORE_LOGSTORE_INT_H

#include <endian.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/gcommit.h"
#include "store/keyidx.h"
#include "store/logstore.h"

#define LG_MAGIC "rekeylog"
#define LG_VERSION 1
#define LG_HDR_SIZE 4096u
#define LG_H_VERSION 8
#define LG_H_FLAGS 12
#define LG_H_END 16
#define LG_H_FLOOR 24
#define LG_H_GEN 32
#define LG_H_ID 40 /* random at creation, kept by compactions: which store PATH-shm describes */
#define LG_F_SUPERSEDED 1u

#define LG_REC_TAG 0x6b636572u /* "reck" */
#define LG_REC_HDR 24u
#define LG_T_TXN 1
#define LG_T_SNAP 2
#define LG_OP_PUT 1
#define LG_OP_DEL 2
#define LG_OP_HDR 8u       /* kind, 0, klen, vlen */
#define LG_SNAP_OP_HDR 16u /* ... and mod_rev */
#define LG_REC_MAX (1u << 30)
#define LG_CHUNK                                                                                   \
    (4u << 20) /* the file grows by whole chunks of zeros, written ahead of the end                \
                */
#define LG_COMPACT_MIN (4u << 20)
#define LG_SNAP_CHUNK (1u << 20) /* payload of one SNAP record */
#define LG_SCAN_BUF (1u << 20)
#define LG_ZERO_CHUNK (1u << 20)
#define LG_DELETED UINT64_MAX /* off of a key a batch deletes (its overlay) */
#define LG_REOPEN_TRIES 20
#define LG_ORDER_MAX 4096 /* new keys left out of the index's tree before a commit orders them */
#define LG_SHM_MAGIC "rekeyshm"
#define LG_SHM_SIZE 4096u
#define LG_SHM_WORD 8 /* u64: generation << 48 | end */
#define LG_SHM_ID 16  /* u64: the store id (LG_H_ID) the word belongs to */
#define LG_END_MASK ((UINT64_C(1) << 48) - 1)

/* What the batch being written changes: the last write of each key, in a small open-addressing
 * table over an array kept by the backend from batch to batch (no allocation per write, and no
 * ordered tree: the batch is applied to idx in any order, as each key appears once). The keys
 * point into the callers' operations, which live until the batch is done. */
struct lg_write {
    const char *key;
    size_t klen;
    uint64_t hash;
    uint64_t off; /* LG_DELETED: deleted */
    uint32_t vlen;
    int64_t mod_rev;
};

struct lg_overlay {
    struct lg_write *w;
    size_t n, cap;
    uint32_t *slot; /* index + 1 into w; 0 = empty */
    size_t nslots;  /* a power of two, > 2 n */
};

struct lg_backend {
    struct backend base;
    char *path;
    uint64_t fail_fsync_nth;
    _Atomic uint64_t n_fsync;
    struct gcommit gc;

    /* ilock guards everything below: readers hold it shared; the leader takes it exclusively
     * to publish a commit, and any thread to read in another process's records or reopen. */
    pthread_rwlock_t ilock;
    int fd;
    unsigned char *hdr; /* the header page, mapped shared */
    unsigned char *shm; /* PATH-shm, mapped shared: the published end */
    struct keyidx *idx;
    uint64_t end;       /* the records up to here are in idx */
    uint64_t alloc_end; /* the file's size: zeros from end to here */
    uint64_t live;      /* bytes of the operations that idx points to */
    uint64_t gen;
    int64_t rev;
    uint64_t compactions;
    /* Readers pread outside ilock: readers_out[epoch & 1] counts those reading the file of
     * epoch, which moves each time the file is swapped (compaction, reopen). The old file is
     * closed only once its epoch's count is back to zero. */
    uint64_t epoch;
    _Atomic int readers_out[2];
    int opened;        /* the open succeeded: a close pins the floor */
    int stale;         /* idx missed a commit (out of memory): read the file in again */
    pthread_t retirer; /* the thread retiring the file the last compaction replaced */
    int retiring;

    /* the leader's */
    unsigned char *wbuf;
    size_t wcap;
    struct lg_overlay overlay;
};

/* ---- little-endian fields ------------------------------------------------------------------- */

static inline void
put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void
put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t
get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t
get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t
get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The header fields that change while other processes read them are aligned and stored with
 * single atomic accesses to the shared mapping, so no reader sees half of an update. */
static inline uint64_t
hdr_load64(const unsigned char *hdr, size_t off)
{
    return le64toh(__atomic_load_n((const uint64_t *)(const void *)(hdr + off), __ATOMIC_ACQUIRE));
}

static inline void
hdr_store64(unsigned char *hdr, size_t off, uint64_t v)
{
    __atomic_store_n((uint64_t *)(void *)(hdr + off), htole64(v), __ATOMIC_RELEASE);
}

static inline uint32_t
hdr_flags(const unsigned char *hdr)
{
    return le32toh(
        __atomic_load_n((const uint32_t *)(const void *)(hdr + LG_H_FLAGS), __ATOMIC_ACQUIRE));
}

static inline void
hdr_set_flags(unsigned char *hdr, uint32_t flags)
{
    __atomic_store_n((uint32_t *)(void *)(hdr + LG_H_FLAGS), htole32(flags), __ATOMIC_RELEASE);
}

/* The published end: which file generation it belongs to (low 16 bits) and the end. One word,
 * so that no reader sees half of an update. */
static inline uint64_t
pub_word(uint64_t gen, uint64_t end)
{
    return (gen & 0xffff) << 48 | (end & LG_END_MASK);
}

static inline void
publish(struct lg_backend *lg)
{
    hdr_store64(lg->shm, LG_SHM_WORD, pub_word(lg->gen, lg->end));
}

/* The published end if it belongs to the file this process has open, else 0. */
static inline uint64_t
published_end(const struct lg_backend *lg)
{
    uint64_t w = hdr_load64(lg->shm, LG_SHM_WORD);

    return w >> 48 == (lg->gen & 0xffff) ? w & LG_END_MASK : 0;
}

/* Writes end and floor into the header (both are known durable). */
static inline void
set_floor(struct lg_backend *lg, uint64_t end)
{
    hdr_store64(lg->hdr, LG_H_END, end);
    hdr_store64(lg->hdr, LG_H_FLOOR, end);
}

/* ---- logstore-format.c ---- */

/* The CRC a record carries: of its len and of everything after the crc field. */
uint32_t lg_rec_crc(const unsigned char *rec, size_t payload_len);

/* Sets err to an RK_EIO naming path, what failed and errno; returns -RK_EIO. */
int lg_io_fail(struct rk_error *err, const char *path, const char *what);

/* Reads up to n bytes at off; returns the number read (short only at the end of the file) or
 * -1 with errno. */
ssize_t lg_pread_full(int fd, void *buf, size_t n, uint64_t off);

/* Writes all n bytes at off. Returns 0 or -1 with errno. */
int lg_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);

/* Writes zeros over [from, to). Returns 0 or -1 with errno. */
int lg_write_zeros(int fd, uint64_t from, uint64_t to);

/* Zeros the non-zero parts of [from, to): the remains of a write that never committed. Reads
 * first, so a clean tail costs no write. Returns 1 when something was zeroed, 0, or -1. */
int lg_zero_tail(int fd, uint64_t from, uint64_t to);

/* fdatasync, failing the configured one for tests (REKEY_FAULT=fsync:N). */
int lg_sync_fd(struct lg_backend *lg, int fd);

/* flock(LOCK_EX), retried on EINTR. Returns 0 or -1 with errno. */
int lg_lock_file(int fd);

/* The bytes an entry's operation takes in the log: what compaction keeps. */
uint64_t lg_op_bytes(size_t klen, uint32_t vlen);

/* Sets key's entry in idx (off LG_DELETED removes it) and keeps *live. */
int lg_idx_apply(struct keyidx *idx, uint64_t *live, const char *key, size_t klen, uint64_t off,
                 uint32_t vlen, int64_t mod_rev);

/* Reads the records of fd from *end on into idx, up to limit. Stops at limit, at the end of the
 * records, or at one that is damaged or out of order (a revision that does not increase):
 * *damaged tells which. Returns 0 with *end, *rev and *live advanced, or -RK_E*. */
int lg_replay(int fd, struct keyidx *idx, uint64_t *end, uint64_t limit, int64_t *rev,
              uint64_t *live, int *damaged);

/* Opens path's current file: *fd, *hdr (mapped), *size. Retries when a compaction replaced the
 * file in between. create: make it when missing (with an exclusive lock taken either way). */
int lg_open_file(struct lg_backend *lg, int create, int *fd_out, unsigned char **hdr_out,
                 uint64_t *size_out, struct rk_error *err);

/* Sets err to the RK_ECORRUPT of records that stop checking at byte at, short of floor. */
int lg_damaged_error(struct rk_error *err, const char *path, uint64_t at, uint64_t floor);

/* Fills idx from the file (under the exclusive lock): reads every record, and zeros the remains
 * of an unacknowledged commit after the last good one. */
int lg_load_repair(struct lg_backend *lg, int fd, unsigned char *hdr, uint64_t size,
                   struct keyidx *idx, uint64_t *end, int64_t *rev, uint64_t *live,
                   struct rk_error *err);

/* ---- logstore-write.c ---- */

/* Frees the overlay's arrays (at close). */
void lg_overlay_free(struct lg_overlay *ov);

/* Takes the file lock on the current file and catches up. */
int lg_writer_lock(struct lg_backend *lg, struct rk_error *err);

/* Runs a batch as one append and one fdatasync (gc_run_fn). */
uint64_t lg_run_batch(void *arg, struct gc_req *batch);

/* ---- logstore-compact.c ---- */

/* Waits for the last retirement (at close, and before the next one). */
void lg_retire_join(struct lg_backend *lg);

/* Writes the live entries into path.compact, renames it over path and retires the old file.
 * Called by the leader with the file lock held and idx up to date; only this thread changes
 * idx meanwhile, so it is read under the shared lock and its entries get their new offsets in
 * place, under the exclusive lock, when the new file takes over. The entries are remembered in
 * the order they were copied: setting the new offsets from that array, with prefetches, holds
 * the exclusive lock for a fraction of what a second walk of the tree took (15 ms for 150,000
 * keys here, with every reader waiting). */
int lg_compact_locked(struct lg_backend *lg, struct rk_error *err);

/* ---- logstore.c ---- */

/* Waits until no reader is still reading the file of the epoch before the current one. */
void lg_drain_readers(struct lg_backend *lg, uint64_t old_epoch);

/* Reopens the path after a compaction replaced the file, or reads it in again when idx missed a
 * commit (lg->stale). ilock held exclusively. */
int lg_reload_locked(struct lg_backend *lg, struct rk_error *err);

/* Reads in what other processes committed. ilock held exclusively. */
int lg_catch_up_locked(struct lg_backend *lg, struct rk_error *err);

#endif
