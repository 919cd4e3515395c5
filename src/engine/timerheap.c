/* timerheap.c: a binary min-heap over an array of slot ids. Slots hold the timers and their
 * position in the heap (the "index position per entry" that makes update/remove O(log n));
 * freed slots are chained in a free list so ids are reused and memory stays at the high-water
 * mark. Order: due time, then a sequence number taken at push/update (FIFO among equals). */
#include "engine/timerheap.h"

#include <stdlib.h>
#include <string.h>

#define POS_FREE UINT32_MAX
#define MAX_TIMERS (UINT32_MAX - 1)

struct slot {
    struct timer t;
    uint64_t seq;
    uint32_t pos;       /* index in heap[], or POS_FREE */
    uint32_t next_free; /* when free: the next free slot, or TIMER_ID_NONE */
};

struct timerheap {
    struct slot *slots;
    uint32_t nslots, slots_cap;
    uint32_t free_head;
    uint32_t *heap; /* slot ids */
    uint32_t n, heap_cap;
    uint64_t seq;
};

static const char *const kind_names[] = {"rotate", "finish", "retry", "remind"};

const char *
timer_kind_name(enum timer_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "unknown";
}

int
timerheap_new(struct timerheap **out, struct rk_error *err)
{
    struct timerheap *h = calloc(1, sizeof(*h));

    *out = NULL;
    if (h == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    h->free_head = TIMER_ID_NONE;
    *out = h;
    return 0;
}

void
timerheap_free(struct timerheap *h)
{
    if (h == NULL)
        return;
    free(h->slots);
    free(h->heap);
    free(h);
}

void
timerheap_clear(struct timerheap *h)
{
    h->nslots = 0;
    h->n = 0;
    h->free_head = TIMER_ID_NONE;
}

size_t
timerheap_size(const struct timerheap *h)
{
    return h->n;
}

/* 1 when slot a fires before slot b. */
static int
before(const struct timerheap *h, uint32_t a, uint32_t b)
{
    const struct slot *x = &h->slots[a], *y = &h->slots[b];

    if (x->t.due_ms != y->t.due_ms)
        return x->t.due_ms < y->t.due_ms;
    return x->seq < y->seq;
}

static void
place(struct timerheap *h, uint32_t pos, uint32_t id)
{
    h->heap[pos] = id;
    h->slots[id].pos = pos;
}

static void
sift_up(struct timerheap *h, uint32_t pos)
{
    uint32_t id = h->heap[pos];

    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!before(h, id, h->heap[parent]))
            break;
        place(h, pos, h->heap[parent]);
        pos = parent;
    }
    place(h, pos, id);
}

static void
sift_down(struct timerheap *h, uint32_t pos)
{
    uint32_t id = h->heap[pos];

    for (;;) {
        uint64_t l = 2 * (uint64_t)pos + 1, best;
        if (l >= h->n)
            break;
        best = l;
        if (l + 1 < h->n && before(h, h->heap[l + 1], h->heap[l]))
            best = l + 1;
        if (!before(h, h->heap[best], id))
            break;
        place(h, pos, h->heap[best]);
        pos = (uint32_t)best;
    }
    place(h, pos, id);
}

/* Restores the heap around pos after its key changed in either direction. */
static void
fix(struct timerheap *h, uint32_t pos)
{
    if (pos > 0 && before(h, h->heap[pos], h->heap[(pos - 1) / 2]))
        sift_up(h, pos);
    else
        sift_down(h, pos);
}

/* Returns p grown to hold need elements (updating *cap), p itself when it is large enough, or
 * NULL when out of memory (p is then untouched). */
static void *
grow(void *p, uint32_t *cap, uint32_t need, size_t elem)
{
    uint64_t ncap;
    void *np;

    if (need <= *cap)
        return p;
    ncap = *cap ? (uint64_t)*cap * 2 : 64;
    if (ncap < need)
        ncap = need;
    if (ncap > MAX_TIMERS)
        ncap = MAX_TIMERS;
    np = realloc(p, (size_t)ncap * elem);
    if (np != NULL)
        *cap = (uint32_t)ncap;
    return np;
}

int
timerheap_push(struct timerheap *h, const struct timer *t, uint32_t *id)
{
    uint32_t sid;
    void *np;

    if (h->n >= MAX_TIMERS)
        return -RK_ELIMIT;
    if ((np = grow(h->heap, &h->heap_cap, h->n + 1, sizeof(*h->heap))) == NULL)
        return -RK_ENOMEM;
    h->heap = np;
    if (h->free_head != TIMER_ID_NONE) {
        sid = h->free_head;
        h->free_head = h->slots[sid].next_free;
    } else {
        if ((np = grow(h->slots, &h->slots_cap, h->nslots + 1, sizeof(*h->slots))) == NULL)
            return -RK_ENOMEM;
        h->slots = np;
        sid = h->nslots++;
    }
    h->slots[sid].t = *t;
    h->slots[sid].seq = h->seq++;
    h->slots[sid].next_free = TIMER_ID_NONE;
    place(h, h->n++, sid);
    sift_up(h, h->n - 1);
    if (id != NULL)
        *id = sid;
    return 0;
}

int
timerheap_peek(const struct timerheap *h, struct timer *t, uint32_t *id)
{
    if (h->n == 0)
        return -RK_ENOTFOUND;
    if (t != NULL)
        *t = h->slots[h->heap[0]].t;
    if (id != NULL)
        *id = h->heap[0];
    return 0;
}

static int
valid_id(const struct timerheap *h, uint32_t id)
{
    return id < h->nslots && h->slots[id].pos != POS_FREE;
}

int
timerheap_remove(struct timerheap *h, uint32_t id)
{
    uint32_t pos, last;

    if (!valid_id(h, id))
        return -RK_ENOTFOUND;
    pos = h->slots[id].pos;
    last = h->heap[--h->n];
    h->slots[id].pos = POS_FREE;
    h->slots[id].next_free = h->free_head;
    h->free_head = id;
    if (pos < h->n) {
        place(h, pos, last);
        fix(h, pos);
    }
    return 0;
}

int
timerheap_pop(struct timerheap *h, struct timer *t, uint32_t *id)
{
    uint32_t top;

    if (h->n == 0)
        return -RK_ENOTFOUND;
    top = h->heap[0];
    if (t != NULL)
        *t = h->slots[top].t;
    if (id != NULL)
        *id = top;
    return timerheap_remove(h, top);
}

int
timerheap_get(const struct timerheap *h, uint32_t id, struct timer *t)
{
    if (!valid_id(h, id))
        return -RK_ENOTFOUND;
    *t = h->slots[id].t;
    return 0;
}

int
timerheap_update(struct timerheap *h, uint32_t id, int64_t due_ms, enum timer_kind kind)
{
    if (!valid_id(h, id))
        return -RK_ENOTFOUND;
    h->slots[id].t.due_ms = due_ms;
    h->slots[id].t.kind = kind;
    h->slots[id].seq = h->seq++;
    fix(h, h->slots[id].pos);
    return 0;
}

int
timerheap_check(const struct timerheap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        uint32_t id = h->heap[i];
        if (id >= h->nslots || h->slots[id].pos != i)
            return -RK_EINTERNAL;
        if (i > 0 && before(h, id, h->heap[(i - 1) / 2]))
            return -RK_EINTERNAL;
    }
    return 0;
}
