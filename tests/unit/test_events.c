/* Unit tests for util/events: delivery by mask, order, failure of request events, unsubscribe,
 * and publishing from several threads at once while subscribers come and go. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/events.h"

struct rec {
    _Atomic int calls;
    int fail;
    char last_path[64];
    int order;
};

static _Atomic int seq;

static int
on_event(void *arg, const struct rk_event *ev, struct rk_error *err)
{
    struct rec *r = arg;

    atomic_fetch_add(&r->calls, 1);
    r->order = atomic_fetch_add(&seq, 1);
    if (ev->path != NULL)
        strncpy(r->last_path, ev->path, sizeof(r->last_path) - 1);
    if (r->fail)
        return rk_error_set(err, RK_EIO, "audit sink full");
    return 0;
}

static void
test_masks_and_order(void **state)
{
    struct rec a = {0}, b = {0};
    struct rk_event ev = {.type = EV_ROTATION_RESULT, .path = "secret/x", .outcome = "ok"};
    struct rk_error err = {0};
    int ia, ib;
    (void)state;

    assert_false(events_wanted(EV_ROTATION_RESULT));
    ia = events_subscribe(EV_MASK(EV_ROTATION_RESULT) | EV_MASK(EV_API_REQUEST), on_event, &a);
    ib = events_subscribe(EV_MASK(EV_API_RESPONSE), on_event, &b);
    assert_true(ia >= 0 && ib >= 0);
    assert_true(events_wanted(EV_ROTATION_RESULT));
    assert_false(events_wanted(EV_ROTATION_STEP));
    assert_int_equal(events_publish(&ev, &err), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    assert_string_equal(a.last_path, "secret/x");
    assert_true(ev.time_us > 0);
    ev.type = EV_API_RESPONSE;
    assert_int_equal(events_publish(&ev, &err), 0);
    assert_int_equal(b.calls, 1);
    events_unsubscribe(ia);
    events_unsubscribe(ib);
    assert_false(events_wanted(EV_API_RESPONSE));
}

static void
test_request_failure(void **state)
{
    struct rec ok = {0}, bad = {.fail = 1};
    struct rk_event ev = {.type = EV_API_REQUEST, .path = "secret/data/a"};
    struct rk_error err = {0};
    int i1, i2;
    (void)state;

    i1 = events_subscribe(EV_MASK_ALL, on_event, &ok);
    i2 = events_subscribe(EV_MASK_ALL, on_event, &bad);
    /* A request event that a subscriber cannot record fails, with its message. */
    assert_int_equal(events_publish(&ev, &err), -RK_EIO);
    assert_string_equal(err.msg, "audit sink full");
    assert_int_equal(ok.calls, 1);
    assert_int_equal(bad.calls, 1);
    assert_true(ok.order < bad.order);
    /* A rotation result cannot be failed by a subscriber. */
    ev.type = EV_ROTATION_RESULT;
    assert_int_equal(events_publish(&ev, &err), 0);
    events_unsubscribe(i1);
    events_unsubscribe(i2);
}

static void
test_limit(void **state)
{
    struct rec r = {0};
    int ids[EVENTS_MAX_SUBSCRIBERS];
    (void)state;

    for (int i = 0; i < EVENTS_MAX_SUBSCRIBERS; i++)
        assert_true((ids[i] = events_subscribe(EV_MASK_ALL, on_event, &r)) >= 0);
    assert_int_equal(events_subscribe(EV_MASK_ALL, on_event, &r), -RK_ELIMIT);
    for (int i = 0; i < EVENTS_MAX_SUBSCRIBERS; i++)
        events_unsubscribe(ids[i]);
}

static struct rec shared;

/* For the threaded test: touches only the atomic counter (the subscriber is the caller's to
 * make thread-safe, events.h). */
static int
on_event_count(void *arg, const struct rk_event *ev, struct rk_error *err)
{
    struct rec *r = arg;

    (void)ev;
    (void)err;
    atomic_fetch_add(&r->calls, 1);
    return 0;
}

static void *
publisher(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        struct rk_event ev = {.type = EV_API_RESPONSE, .status = 200};
        events_publish(&ev, NULL);
    }
    return NULL;
}

static void
test_threads(void **state)
{
    pthread_t t[4];
    int id = events_subscribe(EV_MASK(EV_API_RESPONSE), on_event_count, &shared);
    (void)state;

    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, publisher, NULL);
    for (int i = 0; i < 50; i++) {
        struct rec other = {0};
        int j = events_subscribe(EV_MASK(EV_API_RESPONSE), on_event_count, &other);
        events_unsubscribe(j); /* after this, other is never touched again */
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    events_unsubscribe(id);
    assert_int_equal(shared.calls, 4 * 20000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masks_and_order),
        cmocka_unit_test(test_request_failure),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
