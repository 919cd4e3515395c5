/* Unit tests for src/util/strmap.c against a reference model: random put, get and delete over a
 * small key space (so runs of probes collide and wrap), then 100,000 keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"

#include "test_rng.h"

#define NKEYS 300

static void
test_model(void **state)
{
    static char keys[NKEYS][16];
    size_t model[NKEYS], v;
    int present[NKEYS] = {0};
    struct strmap *m;
    size_t n = 0;

    (void)state;
    assert_int_equal(strmap_new(&m), 0);
    assert_int_equal(strmap_get(m, "none", &v), -RK_ENOTFOUND);
    assert_int_equal(strmap_del(m, "none"), -RK_ENOTFOUND);
    for (size_t i = 0; i < NKEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "k/%zu", i);
    for (int step = 0; step < 200000; step++) {
        size_t k = rng() % NKEYS;
        switch (rng() % 3) {
        case 0:
            model[k] = rng();
            assert_int_equal(strmap_put(m, keys[k], model[k]), 0);
            n += !present[k];
            present[k] = 1;
            break;
        case 1:
            assert_int_equal(strmap_del(m, keys[k]), present[k] ? 0 : -RK_ENOTFOUND);
            n -= present[k];
            present[k] = 0;
            break;
        default:
            if (present[k]) {
                assert_int_equal(strmap_get(m, keys[k], &v), 0);
                assert_int_equal(v, model[k]);
            } else {
                assert_int_equal(strmap_get(m, keys[k], &v), -RK_ENOTFOUND);
            }
        }
        assert_int_equal(strmap_size(m), n);
        if (step % 20000 == 0)
            for (size_t i = 0; i < NKEYS; i++)
                assert_int_equal(strmap_get(m, keys[i], &v) == 0, present[i]);
    }
    strmap_free(m);
}

static void
test_many(void **state)
{
    enum { N = 100000 };
    char(*keys)[32] = malloc(N * sizeof(*keys));
    struct strmap *m;
    size_t v;

    (void)state;
    assert_non_null(keys);
    assert_int_equal(strmap_new(&m), 0);
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "secret/app/%zu", i);
        assert_int_equal(strmap_put(m, keys[i], i), 0);
    }
    for (size_t i = 0; i < N; i += 2)
        assert_int_equal(strmap_del(m, keys[i]), 0);
    assert_int_equal(strmap_size(m), N / 2);
    for (size_t i = 0; i < N; i++) {
        int r = strmap_get(m, keys[i], &v);
        assert_int_equal(r, i % 2 ? 0 : -RK_ENOTFOUND);
        if (r == 0)
            assert_int_equal(v, i);
    }
    strmap_free(m);
    free(keys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
