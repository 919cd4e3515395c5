/* Unit tests for src/util/backoff.c: the one retry policy (engine and daemon). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/backoff.h"

/* Without jitter: base min(60 s, max(1 s, every/10)), doubling, capped at min(6 h, every). */
static void
test_policy_exact(void **state)
{
    struct backoff_policy p;
    static const struct {
        int64_t every;
        int failures;
        int64_t want;
    } cases[] = {
        {3, 1, 1},
        {3, 2, 2},
        {3, 3, 3},
        {3, 50, 3},
        {30 * 86400, 1, 60},
        {30 * 86400, 2, 120},
        {30 * 86400, 3, 240},
        {30 * 86400, 9, 15360},
        {30 * 86400, 10, 21600},
        {30 * 86400, 1000000, 21600},
        {300, 1, 30},
        {300, 4, 240},
        {300, 5, 300},
        {0, 1, 1},
        {0, 0, 1},
        {1, -3, 1},
        {0, 20, 21600},
        {-5, 3, 4},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        backoff_policy_for(cases[i].every, &p);
        p.jitter_pct = 0;
        assert_int_equal(backoff_delay(&p, cases[i].failures), cases[i].want);
    }
    backoff_policy_for(3, &p);
    assert_int_equal(p.base, 1);
    assert_int_equal(p.factor, 2);
    assert_int_equal(p.cap, 3);
    assert_int_equal(p.jitter_pct, 10);
}

/* With the product's 10 % jitter: within [0.9 d, d], and varied over many draws; short delays
 * (under 10 s) stay exact, which the daemon's log lines and tests rely on. */
static void
test_jitter(void **state)
{
    int64_t lo = INT64_MAX, hi = 0;

    (void)state;
    for (int i = 0; i < 2000; i++) {
        int64_t d = backoff_retry_delay(30 * 86400, 10); /* 21600 before jitter */
        assert_true(d >= 21600 - 2160 && d <= 21600);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo > 100); /* it does vary */
    for (int f = 1; f <= 4; f++)
        for (int i = 0; i < 100; i++)
            assert_int_equal(backoff_retry_delay(3, f), f < 3 ? f : 3);
    for (int i = 0; i < 100; i++) {
        int64_t d = backoff_retry_delay(30 * 86400, 1);
        assert_true(d >= 54 && d <= 60);
    }
}

/* A policy given by hand: factor 3, odd caps, no overflow with huge counts. */
static void
test_custom(void **state)
{
    struct backoff_policy p = {.base = 5, .factor = 3, .cap = 100, .jitter_pct = 0};

    (void)state;
    assert_int_equal(backoff_delay(&p, 1), 5);
    assert_int_equal(backoff_delay(&p, 2), 15);
    assert_int_equal(backoff_delay(&p, 3), 45);
    assert_int_equal(backoff_delay(&p, 4), 100);
    assert_int_equal(backoff_delay(&p, 2000000000), 100);
    p = (struct backoff_policy){.base = 0, .factor = 0, .cap = 0, .jitter_pct = 500};
    assert_int_equal(backoff_delay(&p, 7), 1);
    p = (struct backoff_policy){
        .base = INT64_MAX / 2, .factor = 4, .cap = INT64_MAX, .jitter_pct = 0};
    assert_int_equal(backoff_delay(&p, 3), INT64_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_exact),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_custom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
