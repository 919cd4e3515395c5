/* daemon-int.h: the rotation daemon's state, shared by its loop (daemon.c) and its planner
 * (daemon-plan.c). Private to those two files. */
#ifndef REKEY_DAEMON_INT_H
#define REKEY_DAEMON_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/daemon.h"
#include "engine/entries.h"
#include "engine/timerheap.h"
#include "util/err.h"

struct engine;
struct strmap;

/* A timer's index with this bit set is a store entry's slot (d->sent), else an inventory
 * index. */
#define STORE_BIT ((size_t)1 << (sizeof(size_t) * 8 - 1))

struct entry {
    uint32_t timer;  /* ROTATE / RETRY / REMIND timer id, or TIMER_ID_NONE */
    uint32_t finish; /* FINISH timer id, or TIMER_ID_NONE */
    int failures;    /* consecutive failures seen here (the engine's count wins) */
    int finish_failures;
    int64_t reminded_due; /* the due time (s) of the last reminder: one per due period */
    char *path; /* embedded: a copy of the secret's path (see the top comment); a store slot:
                 * its path (NULL: the slot is free) */
    int seen;   /* a store slot: found by the plan in progress */
};

/* Change notices from engine_entries_subscribe: paths queued by the writer's thread. */
struct notices {
    pthread_mutex_t mu;
    int fd[2]; /* a non-blocking pipe: a byte per notice wakes the loop */
    char **paths;
    size_t n, cap;
    int lost; /* a path could not be queued: re-plan everything */
};

struct daemon {
    struct kv *kv;
    struct inventory **invp;
    const struct inventory *inv; /* the inventory the entries and timers were planned on */
    const struct daemon_opts *opts;
    const struct daemon_embed *emb; /* NULL: `rekey run` */
    struct daemon_stats *stats;
    struct engine *eng;
    struct timerheap *heap;
    struct entry *ent; /* nent entries, one per secret of inv */
    size_t nent;
    struct entry *sent; /* store entries' slots (nsent used or free, capsent allocated) */
    size_t nsent, capsent;
    size_t *sfree; /* free slots of sent */
    size_t nsfree;
    struct strmap *smap; /* path -> slot of sent */
    struct notices nq;
    int subscribed, changes;
    uint64_t gen; /* *emb->generation when planned */
    int sfd, tfd; /* sfd: the signalfd (`rekey run`), else -1 */
    int once;
    int stop, reload;
    int stop_sig;
};

/* The inventory the entries and timers were planned on. */
static inline const struct inventory *
inv_of(const struct daemon *d)
{
    return d->inv;
}

/* ---- daemon-plan.c ---- */

/* Entry i: an inventory index, or a store slot with STORE_BIT. */
struct entry *daemon_entry(struct daemon *d, size_t i);
const char *daemon_entry_path(const struct daemon *d, size_t i);

/* Entry i's definition: the inventory's (borrowed), or the store's read again now. Returns 0
 * (release ref), -RK_ENOTFOUND (a store entry deleted meanwhile) or another error. */
int daemon_entry_find(struct daemon *d, size_t i, struct entry_ref *ref, struct rk_error *err);

/* Sets entry i's schedule timer / FINISH timer (creating or moving it). 0 or -RK_ENOMEM. */
int daemon_set_timer(struct daemon *d, size_t i, enum timer_kind kind, int64_t due_ms);
int daemon_set_finish(struct daemon *d, size_t i, int64_t due_ms);

/* Frees store slot idx (STORE_BIT set) and its timers. */
void daemon_slot_drop(struct daemon *d, size_t idx);

/* The next reminder after due (reminded already): a period later, or in a day when the kind
 * knows no period (its status op is asked again then). */
int64_t daemon_next_reminder(int64_t due, int64_t period, int64_t now);

/* The FINISH timer of entry i from its record (one read). Returns 0 or -RK_E*. */
int daemon_plan_finish(struct daemon *d, size_t i, struct rk_error *err);

/* Clears the heap and plans every timer (inventory, store entries, finishes) from the store. */
int daemon_plan_all(struct daemon *d, struct rk_error *err);

/* Re-plans the paths queued in d->nq since the last call (the host's read lock held). */
void daemon_plan_notices(struct daemon *d);

#endif
