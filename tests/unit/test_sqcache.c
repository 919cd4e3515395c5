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

/* Random operations against a model (the value each key last got): whatever the evictions and
 * rehashes, a hit always returns the key's latest value and mod_rev, a dropped or cleared key
 * never hits, and the cache stays within its budget. */
#define MODEL_KEYS 700
#define MODEL_OPS 300000

struct model_ent {
    int present; /* 0: must miss */
    int64_t rev;
    size_t len;
    unsigned char val[300];
};

static void
test_model_random(void **state)
{
    const size_t budget = 64 * 2048;
    struct sqcache *c = sqcache_new(budget);
    struct model_ent *m = calloc(MODEL_KEYS, sizeof(*m));
    struct sqcache_stats st;
    unsigned seed = 12345;
    int64_t rev = 0;
    size_t hits = 0;

    (void)state;
    assert_non_null(m);
    for (int i = 0; i < MODEL_OPS; i++) {
        int k = (int)(rand_r(&seed) % MODEL_KEYS), op = (int)(rand_r(&seed) % 100);
        char key[24];
        unsigned char buf[300];
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf));

        snprintf(key, sizeof(key), "kv/data/p%d@%d", k, k % 7);
        for (size_t j = 0; j < len; j++)
            buf[j] = (unsigned char)rand_r(&seed);
        if (op < 50) { /* lookup */
            unsigned char *v = NULL;
            size_t vl = 0;
            int64_t mr = 0;
            int r = sqcache_lookup(c, key, &v, &vl, &mr);

            assert_true(r == 0 || r == 1);
            if (r == 1) {
                assert_true(m[k].present);
                assert_int_equal(mr, m[k].rev);
                assert_int_equal(vl, m[k].len);
                assert_memory_equal(v, m[k].val, vl);
                free(v);
                hits++;
            }
        } else if (op < 80) { /* a read from the store fills */
            sqcache_fill(c, sqcache_token(c), key, buf, len, ++rev);
            m[k] = (struct model_ent){.present = 1, .rev = rev, .len = len};
            memcpy(m[k].val, buf, len);
        } else if (op < 92) { /* a commit writes the key */
            sqcache_publish_begin(c);
            sqcache_refresh(c, key, buf, len, ++rev);
            sqcache_publish_end(c);
            m[k] = (struct model_ent){.present = 1, .rev = rev, .len = len};
            memcpy(m[k].val, buf, len); /* if it was not cached it still must not hit stale */
        } else if (op < 99) {           /* a commit deletes it */
            sqcache_publish_begin(c);
            sqcache_drop(c, key);
            sqcache_publish_end(c);
            m[k].present = 0;
        } else if (rand_r(&seed) % 20 == 0) {
            sqcache_clear(c);
            for (int j = 0; j < MODEL_KEYS; j++)
                m[j].present = 0;
        }
        if (i % 1000 == 0) {
            sqcache_get_stats(c, &st);
            assert_true(st.bytes <= budget);
        }
    }
    sqcache_get_stats(c, &st);
    assert_true(hits > MODEL_OPS / 20); /* the test did exercise hits */
    assert_true(st.evictions > 0);      /* and evictions */
    free(m);
    sqcache_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),        cmocka_unit_test(test_token_rules),
        cmocka_unit_test(test_publish),      cmocka_unit_test(test_budget_lru),
        cmocka_unit_test(test_model_random),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
