/* Unit tests for src/store/sqcache.c: lookups, the token rules of sqcache.h, the byte budget and
 * its LRU eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqcache.h"

static void
fill_str(struct sqcache *c, const char *key, const char *val, int64_t rev)
{
    sqcache_fill(c, sqcache_token(c), key, (const unsigned char *)val, strlen(val), rev);
}

/* Asserts key is cached with val (or not cached when val is NULL). */
static void
expect(struct sqcache *c, const char *key, const char *val, int64_t rev)
{
    unsigned char *v = NULL;
    size_t vl = 0;
    int64_t mr = -1;
    int r = sqcache_lookup(c, key, &v, &vl, &mr);

    if (val == NULL) {
        assert_int_equal(r, 0);
        return;
    }
    assert_int_equal(r, 1);
    assert_int_equal(vl, strlen(val));
    assert_memory_equal(v, val, vl);
    assert_int_equal(mr, rev);
    free(v);
}

static void
test_basic(void **state)
{
    struct sqcache *c = sqcache_new(1 << 20);
    struct sqcache_stats st;

    (void)state;
    assert_null(sqcache_new(0));
    assert_non_null(c);
    expect(c, "a", NULL, 0);
    fill_str(c, "a", "1", 5);
    fill_str(c, "b", "", 6); /* an empty value is a value */
    expect(c, "a", "1", 5);
    expect(c, "b", "", 6);
    fill_str(c, "a", "2", 7); /* a later fill replaces */
    expect(c, "a", "2", 7);
    sqcache_get_stats(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 1);
    sqcache_clear(c);
    expect(c, "a", NULL, 0);
    expect(c, "b", NULL, 0);
    sqcache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    sqcache_free(c);
}

/* A fill is refused when its token is odd (a commit is being published) or has moved (a commit
 * was published, or the cache was cleared, after the read it carries). */
static void
test_token_rules(void **state)
{
    struct sqcache *c = sqcache_new(1 << 20);
    uint64_t t0 = sqcache_token(c), t1;

    (void)state;
    assert_int_equal(t0 & 1, 0);
    sqcache_publish_begin(c);
    t1 = sqcache_token(c);
    assert_int_equal(t1 & 1, 1);
    sqcache_fill(c, t1, "k", (const unsigned char *)"x", 1, 1); /* odd: refused */
    sqcache_fill(c, t0, "k", (const unsigned char *)"x", 1, 1); /* moved: refused */
    sqcache_publish_end(c);
    expect(c, "k", NULL, 0);
    sqcache_fill(c, t0, "k", (const unsigned char *)"x", 1, 1); /* read before the publish */
    expect(c, "k", NULL, 0);

    t0 = sqcache_token(c);
    sqcache_clear(c);
    assert_int_equal(sqcache_token(c) & 1, 0);
    sqcache_fill(c, t0, "k", (const unsigned char *)"x", 1, 1); /* read before the clear */
    expect(c, "k", NULL, 0);
    sqcache_free(c);
}

/* refresh replaces a cached key and leaves others out; drop removes. */
static void
test_publish(void **state)
{
    struct sqcache *c = sqcache_new(1 << 20);

    (void)state;
    fill_str(c, "hot", "old", 1);
    sqcache_publish_begin(c);
    sqcache_refresh(c, "hot", (const unsigned char *)"new", 3, 2);
    sqcache_refresh(c, "cold", (const unsigned char *)"new", 3, 2);
    sqcache_publish_end(c);
    expect(c, "hot", "new", 2);
    expect(c, "cold", NULL, 0);
    sqcache_publish_begin(c);
    sqcache_drop(c, "hot");
    sqcache_drop(c, "never");
    sqcache_publish_end(c);
    expect(c, "hot", NULL, 0);
    sqcache_free(c);
}

/* The cache stays within its budget, evicts the least recently used entries first, and does not
 * take a value that would use more than a quarter of a shard. */
static void
test_budget_lru(void **state)
{
    const size_t budget = 64 * 4096; /* 4 KiB per shard */
    struct sqcache *c = sqcache_new(budget);
    struct sqcache_stats st;
    char key[32], val[200];
    unsigned char big[2048];

    (void)state;
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    fill_str(c, "keep", val, 1);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        fill_str(c, key, val, i);
        if (i % 8 == 0)
            expect(c, "keep", val, 1); /* kept warm: never the coldest of its shard */
        sqcache_get_stats(c, &st);
        assert_true(st.bytes <= budget);
    }
    sqcache_get_stats(c, &st);
    assert_true(st.evictions > 0);
    assert_true(st.entries < 5000);
    expect(c, "keep", val, 1);
    expect(c, "key-0", NULL, 0); /* long evicted */
    expect(c, "key-4999", val, 4999);

    memset(big, 'b', sizeof(big));
    sqcache_fill(c, sqcache_token(c), "big", big, sizeof(big), 1);
    expect(c, "big", NULL, 0);
    sqcache_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_token_rules),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_budget_lru),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
