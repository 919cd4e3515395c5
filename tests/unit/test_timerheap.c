/* test_timerheap.c: the daemon's timer heap against a reference model: random push, pop,
 * update and remove (small heaps checked after every operation against a linear scan), then
 * 100,000 timers whose pop order must equal the reference sorted by (due, sequence); and the
 * daemon's duration format (the backoff: test_backoff.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/daemon.h"
#include "engine/timerheap.h"
#include "test_rng.h"

/* The reference: one record per id ever given out. */
struct ref {
    int live;
    int64_t due;
    uint64_t seq;
    enum timer_kind kind;
    size_t index;
};

struct model {
    struct ref *r;
    size_t cap;
    uint64_t seq;
    size_t live;
};

static void
model_set(struct model *m, uint32_t id, int64_t due, enum timer_kind kind, size_t index)
{
    if (id >= m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 1024;
        while (ncap <= id)
            ncap *= 2;
        m->r = realloc(m->r, ncap * sizeof(*m->r));
        assert_non_null(m->r);
        memset(m->r + m->cap, 0, (ncap - m->cap) * sizeof(*m->r));
        m->cap = ncap;
    }
    if (!m->r[id].live)
        m->live++;
    m->r[id].live = 1;
    m->r[id].due = due;
    m->r[id].seq = m->seq++;
    m->r[id].kind = kind;
    m->r[id].index = index;
}

static void
model_kill(struct model *m, uint32_t id)
{
    assert_true(id < m->cap && m->r[id].live);
    m->r[id].live = 0;
    m->live--;
}

/* The id the reference says fires first, or TIMER_ID_NONE. */
static uint32_t
model_min(const struct model *m)
{
    uint32_t best = TIMER_ID_NONE;

    for (size_t i = 0; i < m->cap; i++) {
        if (!m->r[i].live)
            continue;
        if (best == TIMER_ID_NONE || m->r[i].due < m->r[best].due ||
            (m->r[i].due == m->r[best].due && m->r[i].seq < m->r[best].seq))
            best = (uint32_t)i;
    }
    return best;
}

/* A random live id (the model must not be empty). */
static uint32_t
model_pick(const struct model *m)
{
    for (;;) {
        uint32_t id = (uint32_t)(rng() % m->cap);
        if (m->r[id].live)
            return id;
    }
}

static void
test_basics(void **state)
{
    struct timerheap *h = NULL;
    struct timer t = {0}, got;
    uint32_t a, b, c, id;

    (void)state;
    assert_int_equal(timerheap_new(&h, NULL), 0);
    assert_int_equal(timerheap_size(h), 0);
    assert_int_equal(timerheap_peek(h, &got, &id), -RK_ENOTFOUND);
    assert_int_equal(timerheap_pop(h, &got, &id), -RK_ENOTFOUND);
    assert_int_equal(timerheap_remove(h, 0), -RK_ENOTFOUND);
    assert_int_equal(timerheap_update(h, 7, 1, TIMER_ROTATE), -RK_ENOTFOUND);

    t.due_ms = 3000;
    t.kind = TIMER_ROTATE;
    t.index = 3;
    t.path = "secret/c";
    assert_int_equal(timerheap_push(h, &t, &c), 0);
    t.due_ms = 1000;
    t.kind = TIMER_REMIND;
    t.index = 1;
    t.path = "secret/a";
    assert_int_equal(timerheap_push(h, &t, &a), 0);
    t.due_ms = 1000; /* same due time as a: comes out after a (pushed later) */
    t.kind = TIMER_FINISH;
    t.index = 2;
    t.path = NULL;
    assert_int_equal(timerheap_push(h, &t, &b), 0);
    assert_int_equal(timerheap_size(h), 3);
    assert_int_equal(timerheap_check(h), 0);

    assert_int_equal(timerheap_peek(h, &got, &id), 0);
    assert_int_equal(id, a);
    assert_int_equal(got.due_ms, 1000);
    assert_int_equal(got.kind, TIMER_REMIND);
    assert_string_equal(got.path, "secret/a");

    /* Moving a later than c; then b, c, a. */
    assert_int_equal(timerheap_update(h, a, 5000, TIMER_RETRY), 0);
    assert_int_equal(timerheap_get(h, a, &got), 0);
    assert_int_equal(got.kind, TIMER_RETRY);
    assert_int_equal(got.index, 1);
    assert_int_equal(timerheap_pop(h, &got, &id), 0);
    assert_int_equal(id, b);
    assert_null(got.path);
    assert_int_equal(got.kind, TIMER_FINISH);
    /* b's id is now invalid. */
    assert_int_equal(timerheap_get(h, b, &got), -RK_ENOTFOUND);
    assert_int_equal(timerheap_remove(h, b), -RK_ENOTFOUND);
    assert_int_equal(timerheap_remove(h, c), 0);
    assert_int_equal(timerheap_pop(h, &got, &id), 0);
    assert_int_equal(id, a);
    assert_int_equal(got.due_ms, 5000);
    assert_int_equal(timerheap_size(h), 0);

    /* Clear forgets everything; ids are reused afterwards. */
    assert_int_equal(timerheap_push(h, &t, &a), 0);
    assert_int_equal(timerheap_push(h, &t, &b), 0);
    timerheap_clear(h);
    assert_int_equal(timerheap_size(h), 0);
    assert_int_equal(timerheap_get(h, a, &got), -RK_ENOTFOUND);
    assert_int_equal(timerheap_push(h, &t, &c), 0);
    assert_int_equal(timerheap_size(h), 1);
    assert_string_equal(timer_kind_name(TIMER_RETRY), "retry");
    assert_string_equal(timer_kind_name((enum timer_kind)99), "unknown");
    timerheap_free(h);
    timerheap_free(NULL);
}

/* Random operations on a small heap, compared with the reference after every step. */
static void
test_random_small(void **state)
{
    struct timerheap *h = NULL;
    struct model m = {0};
    struct timer t = {0}, got;
    uint32_t id;

    (void)state;
    assert_int_equal(timerheap_new(&h, NULL), 0);
    for (int step = 0; step < 40000; step++) {
        unsigned op = (unsigned)(rng() % 10);
        if (m.live == 0 || op < 4) {
            t.due_ms = (int64_t)(rng() % 500); /* a narrow range: many equal due times */
            t.kind = (enum timer_kind)(rng() % 4);
            t.index = (size_t)step;
            assert_int_equal(timerheap_push(h, &t, &id), 0);
            if (id < m.cap)
                assert_false(m.r[id].live); /* an id is never given to two live timers */
            model_set(&m, id, t.due_ms, t.kind, t.index);
        } else if (op < 6) {
            uint32_t want = model_min(&m);
            assert_int_equal(timerheap_pop(h, &got, &id), 0);
            assert_int_equal(id, want);
            assert_int_equal(got.due_ms, m.r[want].due);
            assert_int_equal(got.kind, m.r[want].kind);
            assert_int_equal(got.index, m.r[want].index);
            model_kill(&m, id);
        } else if (op < 8) {
            uint32_t victim = model_pick(&m);
            int64_t due = (int64_t)(rng() % 500);
            enum timer_kind k = (enum timer_kind)(rng() % 4);
            assert_int_equal(timerheap_update(h, victim, due, k), 0);
            model_set(&m, victim, due, k, m.r[victim].index);
        } else {
            uint32_t victim = model_pick(&m);
            assert_int_equal(timerheap_remove(h, victim), 0);
            model_kill(&m, victim);
            assert_int_equal(timerheap_get(h, victim, &got), -RK_ENOTFOUND);
        }
        assert_int_equal(timerheap_size(h), m.live);
        if (m.live > 0) {
            uint32_t want = model_min(&m);
            assert_int_equal(timerheap_peek(h, NULL, &id), 0);
            assert_int_equal(id, want);
        }
        if (step % 97 == 0)
            assert_int_equal(timerheap_check(h), 0);
    }
    assert_int_equal(timerheap_check(h), 0);
    timerheap_free(h);
    free(m.r);
}

struct live {
    uint32_t id;
    int64_t due;
    uint64_t seq;
};

static int
cmp_live(const void *a, const void *b)
{
    const struct live *x = a, *y = b;

    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

/* 100,000 timers, 60,000 random updates and 20,000 removals interleaved with pushes; then every
 * timer pops in exactly the reference order. */
static void
test_random_100k(void **state)
{
    enum { N = 100000 };
    struct timerheap *h = NULL;
    struct model m = {0};
    struct timer t = {0}, got;
    struct live *want;
    size_t nwant = 0;
    uint32_t id;
    int64_t last = INT64_MIN;

    (void)state;
    assert_int_equal(timerheap_new(&h, NULL), 0);
    for (int i = 0; i < N; i++) {
        t.due_ms = 1700000000000LL + (int64_t)(rng() % (90LL * 86400 * 1000));
        t.kind = (enum timer_kind)(i % 4);
        t.index = (size_t)i;
        assert_int_equal(timerheap_push(h, &t, &id), 0);
        model_set(&m, id, t.due_ms, t.kind, t.index);
        if (i % 5 == 4) {
            uint32_t victim = model_pick(&m);
            int64_t due = 1700000000000LL + (int64_t)(rng() % (90LL * 86400 * 1000));
            assert_int_equal(timerheap_update(h, victim, due, TIMER_RETRY), 0);
            model_set(&m, victim, due, TIMER_RETRY, m.r[victim].index);
            victim = model_pick(&m);
            due = 1700000000000LL + (int64_t)(rng() % 1000);
            assert_int_equal(timerheap_update(h, victim, due, TIMER_ROTATE), 0);
            model_set(&m, victim, due, TIMER_ROTATE, m.r[victim].index);
            victim = model_pick(&m);
            assert_int_equal(timerheap_update(h, victim, m.r[victim].due, m.r[victim].kind), 0);
            model_set(&m, victim, m.r[victim].due, m.r[victim].kind, m.r[victim].index);
        }
        if (i % 5 == 2) {
            uint32_t victim = model_pick(&m);
            assert_int_equal(timerheap_remove(h, victim), 0);
            model_kill(&m, victim);
        }
    }
    assert_int_equal(timerheap_size(h), m.live);
    assert_int_equal(timerheap_check(h), 0);

    want = calloc(m.live, sizeof(*want));
    assert_non_null(want);
    for (size_t i = 0; i < m.cap; i++)
        if (m.r[i].live)
            want[nwant++] = (struct live){(uint32_t)i, m.r[i].due, m.r[i].seq};
    assert_int_equal(nwant, m.live);
    qsort(want, nwant, sizeof(*want), cmp_live);
    for (size_t i = 0; i < nwant; i++) {
        assert_int_equal(timerheap_pop(h, &got, &id), 0);
        assert_int_equal(id, want[i].id);
        assert_int_equal(got.due_ms, want[i].due);
        assert_int_equal(got.index, m.r[id].index);
        assert_true(got.due_ms >= last);
        last = got.due_ms;
    }
    assert_int_equal(timerheap_size(h), 0);
    assert_int_equal(timerheap_pop(h, &got, &id), -RK_ENOTFOUND);
    free(want);
    timerheap_free(h);
    free(m.r);
}

/* The daemon's durations in log lines (the backoff itself: test_backoff.c). */
static void
test_fmt_duration(void **state)
{
    char buf[32];

    (void)state;
    daemon_fmt_duration(45, buf, sizeof(buf));
    assert_string_equal(buf, "45s");
    daemon_fmt_duration(120, buf, sizeof(buf));
    assert_string_equal(buf, "2m");
    daemon_fmt_duration(150, buf, sizeof(buf));
    assert_string_equal(buf, "2m30s");
    daemon_fmt_duration(5400, buf, sizeof(buf));
    assert_string_equal(buf, "1h30m");
    daemon_fmt_duration(21600, buf, sizeof(buf));
    assert_string_equal(buf, "6h");
    daemon_fmt_duration(3 * 86400 + 7200, buf, sizeof(buf));
    assert_string_equal(buf, "3d2h");
    daemon_fmt_duration(-5, buf, sizeof(buf));
    assert_string_equal(buf, "0s");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_random_small),
        cmocka_unit_test(test_random_100k),
        cmocka_unit_test(test_fmt_duration),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
