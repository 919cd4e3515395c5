/* leases-int.h: what the lease manager's files share (not for other modules): leases.c (open,
 * load, the revocation jobs and threads, the requests), leases-table.c (the compact in-memory
 * table: interned strings, the id hash, the expiry heap, slots) and leases-record.c (the store
 * records "lease/<id>": their JSON text, read and written). */
#ifndef REKEY_ENGINE_LEASES_INT_H
#define REKEY_ENGINE_LEASES_INT_H

#include <pthread.h>
#include <stdint.h>

#include "engine/leases.h"
#include "util/err.h"

#define KEY_PREFIX "lease/"
#define KEY_MAX (sizeof(KEY_PREFIX) + LEASE_ID_MAX + 1)
#define NBUCKETS_MIN 1024
#define RETRY_BASE 5       /* seconds before the first retry of a failed revocation */
#define RETRY_CAP 3600     /* the longest wait between two */
#define TAIL_MAX 32        /* bytes of an id's tail (after its last '/') with its NUL */
#define EPOCH 1577836800LL /* 2020-01-01: times are uint32 seconds after it (until 2156) */
#define NONE UINT32_MAX
#define WORKERS 4
#define QUEUE_MAX (2 * WORKERS)
#define EXPIRY_BATCH 64
#define PREFIX_BATCH 1000 /* leases per job of revoke-prefix: one store transaction */
#define SEP '\x1f'        /* between the parts of an interned class */
#define BUSY_WAIT 5       /* seconds a revoke or renew waits for a busy lease */

enum { F_IRREVOCABLE = 1, F_BUSY = 2, F_PENDING = 4 };

struct lease {
    char tail[TAIL_MAX];
    uint32_t cls, acc;                              /* interned; acc NONE: no token */
    uint32_t issued, expires, max_expires, renewed; /* seconds after EPOCH; renewed 0: never */
    uint32_t due;                                   /* when the heap fires it */
    uint32_t hpos;                                  /* place in the heap, NONE: not in it */
    uint32_t next;                                  /* hash chain, or the free list */
    uint8_t failures, flags;
};

/* Interned strings with reference counts. */
struct istr {
    char *s;
    uint32_t refs, next;
};

struct itab {
    struct istr *v;
    uint32_t n, cap, nfree, *freev;
    uint32_t *buckets, nb;
};

struct job {
    uint32_t *idx;
    size_t n;
    int force;
    struct batch *batch; /* NULL: nobody waits (expiry, a token's leases) */
    struct job *next;
};

struct batch {
    size_t jobs, ok, bad;
    int last;
    struct rk_error err;
};

/* A confirmation waiting for a worker: the record's text without the pending mark. */
struct cfm {
    char *id, *text;
    struct cfm *next;
};

struct leases {
    struct barrier *br;
    struct lease_ops ops;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the expiry thread waits on it; loaders too */
    pthread_cond_t work_cv; /* workers wait for jobs */
    pthread_cond_t done_cv; /* a job ended */
    struct lease *v;
    uint32_t nv, capv, freehead; /* slots used (high-water mark), free list */
    uint32_t *buckets, nbuckets;
    uint32_t *heap, nheap, capheap;
    struct itab cls, acc;
    size_t n, nirrevocable;
    struct job *qhead, *qtail;
    struct cfm *cfm; /* confirmations to store (leases_confirm), newest first */
    size_t nqueued, nexpiryjobs;
    int loaded, loading, stop, running;
    pthread_t th, workers[WORKERS];
};

static inline size_t
lt_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static inline uint32_t
rel(int64_t t)
{
    if (t <= EPOCH)
        return t <= 0 ? 0 : 1;
    if (t - EPOCH >= (int64_t)UINT32_MAX)
        return UINT32_MAX - 1;
    return (uint32_t)(t - EPOCH);
}

static inline int64_t
absol(uint32_t t)
{
    return t == 0 ? 0 : (int64_t)t + EPOCH;
}

/* ---- leases-table.c ---- */

/* The index of s in t, or NONE. */
uint32_t lt_itab_find(const struct itab *t, const char *s);

/* Interns s (a reference taken). Returns its index or NONE (out of memory). */
uint32_t lt_itab_ref(struct itab *t, const char *s);

/* Drops a reference to string k; the last one frees it. */
void lt_itab_unref(struct itab *t, uint32_t k);

/* Frees every string of t and its tables. */
void lt_itab_free(struct itab *t);

/* The class of id (its prefix before the last '/'), db and role: "prefix<SEP>db<SEP>role". */
int lt_cls_key(const char *id, const char *db, const char *role, char *out, size_t len);

/* The id of slot k into out (LEASE_ID_MAX + 1 bytes). */
void lt_id(const struct leases *m, uint32_t k, char *out);

/* What memory holds of slot k (no username, no last_error). */
void lt_fill(const struct leases *m, uint32_t k, struct lease_info *i);

/* The slot of lease id, or NONE. */
uint32_t lt_find(const struct leases *m, const char *id);

/* Takes slot k out of the expiry heap (nothing when it is not in it). */
void lt_unschedule(struct leases *m, uint32_t k);

/* Puts slot k in the heap at due (unix seconds). */
int lt_schedule(struct leases *m, uint32_t k, int64_t due);

/* A new slot holding i (not yet in the table). Returns the index or NONE (ENOMEM/EINVAL). */
uint32_t lt_slot_new(struct leases *m, const struct lease_info *i);

/* Puts slot k in the id table (growing it). Returns 0 or -RK_ENOMEM. */
int lt_insert(struct leases *m, uint32_t k);

/* Takes slot k out of the table and the heap and frees it. */
void lt_remove(struct leases *m, uint32_t k);

/* Frees a slot never inserted. */
void lt_drop(struct leases *m, uint32_t k);

/* ---- leases-record.c ---- */

/* Writes the record of lease i ("lease/<id>"). Returns 0 or the store's error. */
int lr_put(struct leases *m, const struct lease_info *i, struct rk_error *err);

/* Deletes the record of lease id. Returns 0 or the store's error. */
int lr_del(struct leases *m, const char *id, struct rk_error *err);

/* Parses a record's text into *i. Returns 0, or -RK_ECORRUPT when it is not a lease record. */
int lr_parse(const unsigned char *val, size_t len, struct lease_info *i);

/* Reads the record of id into *i. Returns 0, -RK_ENOTFOUND, -RK_ECORRUPT or the store's. */
int lr_get(struct leases *m, const char *id, struct lease_info *i, struct rk_error *err);

#endif
