/* timerheap.h: a binary min-heap of timers keyed by due time, for the rotation daemon.
 *
 * Each timer has a stable id (returned by push) and remembers its position in the heap, so
 * update and remove are O(log n) without a search. Timers with the same due time come out in the
 * order they were pushed (or last updated), so a run is deterministic. The heap owns its entries;
 * a timer's `path` is borrowed from the caller and never freed here. */
#ifndef REKEY_TIMERHEAP_H
#define REKEY_TIMERHEAP_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum timer_kind {
    TIMER_ROTATE = 0, /* an automatic rotation is due */
    TIMER_FINISH,     /* the grace of a rotation ends: retire the previous value */
    TIMER_RETRY,      /* a failed rotation is tried again (backoff) */
    TIMER_REMIND,     /* a manual secret is due: tell a person */
};

struct timer {
    int64_t due_ms; /* when it fires, milliseconds since the epoch */
    enum timer_kind kind;
    size_t index;     /* what it is about: the caller's index (e.g. into the inventory) */
    const char *path; /* borrowed, may be NULL */
};

#define TIMER_ID_NONE UINT32_MAX

struct timerheap;

/* "rotate", "finish", "retry", "remind". */
const char *timer_kind_name(enum timer_kind k);

/* Creates an empty heap. Returns 0 or -RK_ENOMEM; *out is freed with timerheap_free. */
int timerheap_new(struct timerheap **out, struct rk_error *err);

/* Frees h and its entries (not the borrowed paths); accepts NULL. */
void timerheap_free(struct timerheap *h);

/* Removes every timer; ids given out before become invalid. Keeps the memory. */
void timerheap_clear(struct timerheap *h);

/* Number of timers in the heap. */
size_t timerheap_size(const struct timerheap *h);

/* Adds a copy of *t. O(log n). *id (may be NULL) gets its id, valid until it is popped or
 * removed. Returns 0, -RK_ENOMEM, or -RK_ELIMIT past 2^32-2 timers. */
int timerheap_push(struct timerheap *h, const struct timer *t, uint32_t *id);

/* The earliest timer without removing it. Returns 0, or -RK_ENOTFOUND when the heap is empty.
 * t and id may be NULL. */
int timerheap_peek(const struct timerheap *h, struct timer *t, uint32_t *id);

/* Removes the earliest timer into *t (may be NULL). O(log n). Returns 0 or -RK_ENOTFOUND. */
int timerheap_pop(struct timerheap *h, struct timer *t, uint32_t *id);

/* Copies timer id into *t. Returns 0, or -RK_ENOTFOUND for an id not in the heap. */
int timerheap_get(const struct timerheap *h, uint32_t id, struct timer *t);

/* Moves timer id to a new due time (and kind). O(log n). Returns 0 or -RK_ENOTFOUND. */
int timerheap_update(struct timerheap *h, uint32_t id, int64_t due_ms, enum timer_kind kind);

/* Removes timer id. O(log n). Returns 0 or -RK_ENOTFOUND. */
int timerheap_remove(struct timerheap *h, uint32_t id);

/* Checks the heap property and the position index (for tests). Returns 0 or -RK_EINTERNAL. */
int timerheap_check(const struct timerheap *h);

#endif
