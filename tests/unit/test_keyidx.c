/* Unit tests for src/store/keyidx.c: put, get, update and delete; seek and prefix scans in
 * unsigned byte order; the tree under adversarial insert and delete orders; random operations
 * against a sorted-array model with the invariants checked as it goes; and a million keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/backend.h"
#include "store/keyidx.h"
#include "util/err.h"
#include "test_rng.h"

static void
test_basic(void **state)
{
    struct keyidx *ix = keyidx_new();
    struct keyidx_ent *e = NULL, *e2 = NULL;
    char longkey[STORE_KEY_MAX + 2];
    size_t empty_bytes;

    (void)state;
    assert_non_null(ix);
    empty_bytes = keyidx_bytes(ix);
    assert_int_equal(keyidx_count(ix), 0);
    assert_null(keyidx_get(ix, "a"));
    assert_null(keyidx_seek(ix, NULL, 0));
    assert_null(keyidx_seek(ix, "a", 1));
    assert_int_equal(keyidx_del(ix, "a"), 0);
    assert_int_equal(keyidx_check(ix), 0);

    assert_int_equal(keyidx_put(ix, "a", 10, 3, 1, &e), 0);
    assert_non_null(e);
    assert_string_equal(e->key, "a");
    assert_int_equal(e->klen, 1);
    assert_int_equal(e->off, 10);
    assert_int_equal(e->vlen, 3);
    assert_int_equal(e->mod_rev, 1);
    assert_ptr_equal(keyidx_get(ix, "a"), e);
    assert_int_equal(keyidx_put(ix, "b", 20, 0, 2, NULL), 0);
    assert_int_equal(keyidx_count(ix), 2);
    assert_true(keyidx_bytes(ix) > empty_bytes);

    /* An update rewrites the record in place. */
    assert_int_equal(keyidx_put(ix, "a", 30, 5, 3, &e2), 0);
    assert_ptr_equal(e2, e);
    assert_int_equal(e->off, 30);
    assert_int_equal(e->vlen, 5);
    assert_int_equal(e->mod_rev, 3);
    assert_int_equal(keyidx_count(ix), 2);

    /* Keys out of range are refused and change nothing. */
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0'; /* STORE_KEY_MAX + 1 bytes */
    assert_int_equal(keyidx_put(ix, "", 1, 1, 1, NULL), -RK_EINVAL);
    assert_int_equal(keyidx_put(ix, NULL, 1, 1, 1, NULL), -RK_EINVAL);
    assert_int_equal(keyidx_put(ix, longkey, 1, 1, 1, NULL), -RK_EINVAL);
    assert_null(keyidx_get(ix, longkey));
    assert_null(keyidx_get(ix, ""));
    assert_int_equal(keyidx_del(ix, longkey), 0);
    assert_int_equal(keyidx_count(ix), 2);
    longkey[STORE_KEY_MAX] = '\0'; /* the longest key allowed */
    assert_int_equal(keyidx_put(ix, longkey, 1, 1, 4, &e), 0);
    assert_int_equal(e->klen, STORE_KEY_MAX);
    assert_ptr_equal(keyidx_get(ix, longkey), e);
    assert_int_equal(keyidx_check(ix), 0);

    assert_int_equal(keyidx_del(ix, "a"), 1);
    assert_int_equal(keyidx_del(ix, "a"), 0);
    assert_null(keyidx_get(ix, "a"));
    assert_non_null(keyidx_get(ix, "b"));
    assert_int_equal(keyidx_del(ix, longkey), 1);
    assert_int_equal(keyidx_del(ix, "b"), 1);
    assert_int_equal(keyidx_count(ix), 0);
    assert_int_equal(keyidx_bytes(ix), empty_bytes);
    assert_null(keyidx_seek(ix, NULL, 0));
    assert_int_equal(keyidx_check(ix), 0);
    keyidx_free(ix);
    keyidx_free(NULL);
}

/* The keys of test_seek in their order: bytes >= 0x80 sort after ASCII. ("\377a" is 0xff 'a':
 * a hex escape would swallow the 'a'.) */
static const char *const sorted_keys[] = {
    "a", "ab", "abc", "abd", "b", "ba", "z", "\x80", "\x80\x01", "\xff", "\377a",
};
#define NSORTED (sizeof(sorted_keys) / sizeof(sorted_keys[0]))

static void
expect_seek(const struct keyidx *ix, const char *key, int strict, const char *want)
{
    const struct keyidx_ent *e = keyidx_seek(ix, key, strict);

    if (want == NULL) {
        assert_null(e);
        return;
    }
    assert_non_null(e);
    assert_string_equal(e->key, want);
}

/* Collects the keys that start with prefix, as a prefix scan does it. Returns how many. */
static size_t
scan_prefix(const struct keyidx *ix, const char *prefix, const char **out, size_t max)
{
    size_t plen = strlen(prefix), n = 0;
    const struct keyidx_ent *e = keyidx_seek(ix, prefix, 0);

    for (; e != NULL && strncmp(e->key, prefix, plen) == 0; e = keyidx_next(ix, e)) {
        assert_true(n < max);
        out[n++] = e->key;
    }
    return n;
}

static void
test_seek(void **state)
{
    struct keyidx *ix = keyidx_new();
    const struct keyidx_ent *e;
    const char *got[NSORTED];
    size_t i;

    (void)state;
    assert_non_null(ix);
    for (i = 0; i < NSORTED; i++) { /* an order that is neither sorted nor reversed */
        size_t k = (i * 7) % NSORTED;
        assert_int_equal(keyidx_put(ix, sorted_keys[k], k, 0, (int64_t)k, NULL), 0);
    }
    assert_int_equal(keyidx_check(ix), 0);

    /* A walk from the first entry visits every key in order. */
    for (i = 0, e = keyidx_seek(ix, NULL, 0); e != NULL; e = keyidx_next(ix, e), i++) {
        assert_true(i < NSORTED);
        assert_string_equal(e->key, sorted_keys[i]);
    }
    assert_int_equal(i, NSORTED);

    expect_seek(ix, NULL, 1, "a"); /* strict means nothing without a key */
    expect_seek(ix, "", 0, "a");
    expect_seek(ix, "", 1, "a");
    expect_seek(ix, "a", 0, "a");
    expect_seek(ix, "a", 1, "ab");
    expect_seek(ix, "aa", 0, "ab");
    expect_seek(ix, "aa", 1, "ab");
    expect_seek(ix, "abc", 1, "abd");
    expect_seek(ix, "abz", 0, "b");
    expect_seek(ix, "zz", 0, "\x80");
    expect_seek(ix, "\x7f", 0, "\x80");
    expect_seek(ix, "\x80", 1, "\x80\x01");
    expect_seek(ix, "\x80\x01", 1, "\xff");
    expect_seek(ix, "\xff", 0, "\xff");
    expect_seek(ix, "\377a", 0, "\377a");
    /* Past the end. */
    expect_seek(ix, "\377a", 1, NULL);
    expect_seek(ix, "\377b", 0, NULL);
    expect_seek(ix, "\xff\xff", 0, NULL);
    assert_null(keyidx_next(ix, keyidx_get(ix, "\377a")));

    assert_int_equal(scan_prefix(ix, "ab", got, NSORTED), 3);
    assert_string_equal(got[0], "ab");
    assert_string_equal(got[1], "abc");
    assert_string_equal(got[2], "abd");
    assert_int_equal(scan_prefix(ix, "\x80", got, NSORTED), 2);
    assert_string_equal(got[0], "\x80");
    assert_string_equal(got[1], "\x80\x01");
    assert_int_equal(scan_prefix(ix, "\xff", got, NSORTED), 2);
    assert_int_equal(scan_prefix(ix, "c", got, NSORTED), 0);
    assert_int_equal(scan_prefix(ix, "abcd", got, NSORTED), 0);
    assert_int_equal(scan_prefix(ix, "", got, NSORTED), NSORTED);

    /* After deletions a seek lands on the survivors. */
    assert_int_equal(keyidx_del(ix, "abc"), 1);
    assert_int_equal(keyidx_del(ix, "abd"), 1);
    expect_seek(ix, "ab", 1, "b");
    assert_int_equal(scan_prefix(ix, "ab", got, NSORTED), 1);
    assert_int_equal(keyidx_check(ix), 0);
    keyidx_free(ix);
}

/* Sorted, reversed, zigzag and shuffled insert orders, each undone in sorted, reversed and
 * shuffled delete orders, with every invariant checked after every operation: small trees go
 * through every kind of rotation and of removal (leaf, one child, successor near or far). */
#define ORDER_N 256

static void
make_order(int kind, int *perm)
{
    for (int i = 0; i < ORDER_N; i++) {
        switch (kind) {
        case 0: perm[i] = i; break;
        case 1: perm[i] = ORDER_N - 1 - i; break;
        case 2: perm[i] = (i % 2 == 0) ? i / 2 : ORDER_N - 1 - i / 2; break;
        default: perm[i] = i; break;
        }
    }
    if (kind == 3) {
        for (int i = ORDER_N - 1; i > 0; i--) {
            int j = (int)(rng() % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    }
}

static void
test_orders(void **state)
{
    int ins[ORDER_N], del[ORDER_N];
    char key[16];

    (void)state;
    for (int ik = 0; ik < 4; ik++) {
        for (int dk = 0; dk < 4; dk++) {
            struct keyidx *ix;

            if (dk == 2)
                continue; /* zigzag deletes add little to the others */
            ix = keyidx_new();
            assert_non_null(ix);
            make_order(ik, ins);
            make_order(dk, del);
            for (int i = 0; i < ORDER_N; i++) {
                snprintf(key, sizeof(key), "%04d", ins[i]);
                assert_int_equal(keyidx_put(ix, key, (uint64_t)i, 0, i, NULL), 0);
                assert_int_equal(keyidx_check(ix), 0);
            }
            assert_int_equal(keyidx_count(ix), ORDER_N);
            for (int i = 0; i < ORDER_N; i++) {
                snprintf(key, sizeof(key), "%04d", del[i]);
                assert_int_equal(keyidx_del(ix, key), 1);
                assert_int_equal(keyidx_check(ix), 0);
            }
            assert_int_equal(keyidx_count(ix), 0);
            keyidx_free(ix);
        }
    }
}

/* The reference for the random test: the live keys, sorted, each with the record it should
 * have and the entry keyidx_put returned for it (entries must never move). */
struct mref {
    char *key;
    uint64_t off;
    uint32_t vlen;
    int64_t rev;
    struct keyidx_ent *ent;
};

struct model {
    struct mref *r;
    size_t n, cap;
};

/* The index of the first key >= key (strict == 0) or > key (strict != 0). */
static size_t
model_bound(const struct model *m, const char *key, int strict)
{
    size_t lo = 0, hi = m->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->r[mid].key, key);

        if (c > 0 || (c == 0 && !strict))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* key's index, or m->n when it is absent. */
static size_t
model_find(const struct model *m, const char *key)
{
    size_t i = model_bound(m, key, 0);

    return i < m->n && strcmp(m->r[i].key, key) == 0 ? i : m->n;
}

static void
model_remove(struct model *m, size_t i)
{
    free(m->r[i].key);
    memmove(&m->r[i], &m->r[i + 1], (m->n - i - 1) * sizeof(*m->r));
    m->n--;
}

/* A key from a four-byte alphabet (two of its bytes >= 0x80), 1..5 bytes long, so that keys
 * repeat, share prefixes and compare across the sign boundary; one in 64 has a long run of 'b'
 * in front, which brings it up to 1020..STORE_KEY_MAX bytes. */
static void
random_key(char *buf)
{
    static const unsigned char alphabet[] = {'a', 'b', 0x80, 0xff};
    size_t len = 1 + (size_t)(rng() % 5), pre = 0;

    if (rng() % 64 == 0) {
        pre = STORE_KEY_MAX - 5;
        memset(buf, 'b', pre);
    }
    for (size_t i = 0; i < len; i++)
        buf[pre + i] = (char)alphabet[rng() % sizeof(alphabet)];
    buf[pre + len] = '\0';
}

static void
expect_ent(const struct mref *r, const struct keyidx_ent *e)
{
    assert_ptr_equal(e, r->ent);
    assert_string_equal(e->key, r->key);
    assert_int_equal(e->klen, strlen(r->key));
    assert_int_equal(e->off, r->off);
    assert_int_equal(e->vlen, r->vlen);
    assert_int_equal(e->mod_rev, r->rev);
}

#define MODEL_OPS 200000

static void
test_model_random(void **state)
{
    struct keyidx *ix = keyidx_new();
    struct model m = {.r = NULL, .n = 0, .cap = 0};
    char key[STORE_KEY_MAX + 1];
    size_t empty_bytes, max_n = 0, updates = 0, seeks_past_end = 0;
    int64_t rev = 0;

    (void)state;
    assert_non_null(ix);
    empty_bytes = keyidx_bytes(ix);
    for (int op = 0; op < MODEL_OPS; op++) {
        int what = (int)(rng() % 100);
        size_t i;

        random_key(key);
        i = model_find(&m, key);
        if (what < 35) { /* put */
            struct keyidx_ent *e = NULL;
            uint64_t off = rng();
            uint32_t vlen = (uint32_t)rng();

            assert_int_equal(keyidx_put(ix, key, off, vlen, ++rev, &e), 0);
            assert_non_null(e);
            if (i == m.n) {
                if (m.n == m.cap) {
                    m.cap = m.cap ? m.cap * 2 : 256;
                    m.r = realloc(m.r, m.cap * sizeof(*m.r));
                    assert_non_null(m.r);
                }
                i = model_bound(&m, key, 0);
                memmove(&m.r[i + 1], &m.r[i], (m.n - i) * sizeof(*m.r));
                m.r[i].key = strdup(key);
                assert_non_null(m.r[i].key);
                m.r[i].ent = e;
                m.n++;
            } else {
                updates++;
            }
            m.r[i].off = off;
            m.r[i].vlen = vlen;
            m.r[i].rev = rev;
            expect_ent(&m.r[i], e);
        } else if (what < 55) { /* delete */
            assert_int_equal(keyidx_del(ix, key), i < m.n);
            if (i < m.n)
                model_remove(&m, i);
        } else if (what < 75) { /* get */
            struct keyidx_ent *e = keyidx_get(ix, key);

            if (i == m.n)
                assert_null(e);
            else
                expect_ent(&m.r[i], e);
        } else { /* seek, sometimes from the start, then a few steps */
            int strict = (int)(rng() % 2), from_start = rng() % 16 == 0;
            struct keyidx_ent *e = keyidx_seek(ix, from_start ? NULL : key, strict);
            size_t j = from_start ? 0 : model_bound(&m, key, strict);

            for (int step = 0; step < 5 && j < m.n; step++, j++) {
                assert_non_null(e);
                expect_ent(&m.r[j], e);
                e = keyidx_next(ix, e);
            }
            if (j == m.n) {
                assert_null(e);
                seeks_past_end++;
            }
        }
        assert_int_equal(keyidx_count(ix), m.n);
        if (m.n > max_n)
            max_n = m.n;
        /* Every operation while the tree is young (and small), then now and then. */
        if (op < 3000 || op % 2000 == 0)
            assert_int_equal(keyidx_check(ix), 0);
    }
    assert_int_equal(keyidx_check(ix), 0);
    assert_true(updates > MODEL_OPS / 20); /* keys did repeat */
    assert_true(seeks_past_end > 100);
    assert_true(max_n > 500);

    /* Then everything out, in a random order. */
    while (m.n > 0) {
        size_t i = (size_t)(rng() % m.n);

        assert_int_equal(keyidx_del(ix, m.r[i].key), 1);
        assert_null(keyidx_get(ix, m.r[i].key));
        model_remove(&m, i);
        assert_int_equal(keyidx_count(ix), m.n);
        if (m.n % 64 == 0)
            assert_int_equal(keyidx_check(ix), 0);
    }
    assert_null(keyidx_seek(ix, NULL, 0));
    assert_int_equal(keyidx_check(ix), 0); /* which also checks the byte count exactly */
    assert_true(keyidx_bytes(ix) >= empty_bytes);
    free(m.r);
    keyidx_free(ix);
}

/* A million keys in, walked in order, and out again, in orders that are neither sorted nor
 * reversed (7919 and 9973 are primes, so prime * i mod BIG_N runs through every i). */
#define BIG_N 1000000u

static double
now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* keyidx_put_unordered: entries wait out of the tree until keyidx_order, and deletes, updates and
 * lookups work on them meanwhile. A random mix against a presence model; every entry must be
 * found by get at all times and, after keyidx_order, in the ordered walk, in order. */
static void
test_unordered(void **state)
{
    enum { NKEYS = 3000, NOPS = 60000 };
    static unsigned char present[NKEYS];
    struct keyidx *ix = keyidx_new();
    char key[32], prev[32];
    size_t n = 0;

    (void)state;
    assert_non_null(ix);
    memset(present, 0, sizeof(present));
    rng_state = 0x5eed1e55u;
    for (int op = 0; op < NOPS; op++) {
        uint64_t r = rng();
        size_t k = (size_t)(r % NKEYS);
        struct keyidx_ent *e;

        snprintf(key, sizeof(key), "kv/data/p%05zu@v", k);
        switch ((r >> 32) % 8) {
        case 0:
        case 1:
        case 2: /* unordered put */
            assert_int_equal(keyidx_put_unordered(ix, key, k, 1, op + 1, &e), 0);
            assert_int_equal(e->mod_rev, op + 1);
            n += !present[k];
            present[k] = 1;
            break;
        case 3: /* ordered put */
            assert_int_equal(keyidx_put(ix, key, k, 1, op + 1, NULL), 0);
            n += !present[k];
            present[k] = 1;
            break;
        case 4:
        case 5: /* delete, pending or in the tree */
            assert_int_equal(keyidx_del(ix, key), present[k]);
            n -= present[k];
            present[k] = 0;
            break;
        case 6: /* get */
            e = keyidx_get(ix, key);
            assert_int_equal(e != NULL, present[k]);
            break;
        default:
            if ((r >> 40) % 50 == 0)
                keyidx_order(ix);
            break;
        }
        assert_int_equal(keyidx_count(ix), n);
        if (op % 997 == 0)
            assert_int_equal(keyidx_check(ix), 0);
    }
    assert_int_equal(keyidx_check(ix), 0);
    keyidx_order(ix);
    assert_int_equal(keyidx_pending(ix), 0);
    assert_int_equal(keyidx_check(ix), 0);
    {
        size_t walked = 0;

        prev[0] = '\0';
        for (struct keyidx_ent *e = keyidx_seek(ix, NULL, 0); e != NULL; e = keyidx_next(ix, e)) {
            assert_true(strcmp(prev, e->key) < 0);
            snprintf(prev, sizeof(prev), "%s", e->key);
            walked++;
        }
        assert_int_equal(walked, n);
    }
    keyidx_free(ix);
}

static void
test_million(void **state)
{
    struct keyidx *ix = keyidx_new();
    const struct keyidx_ent *e;
    char key[32], want[32];
    double t0, t_ins, t_walk, t_del;
    size_t empty_bytes, i;

    (void)state;
    assert_non_null(ix);
    empty_bytes = keyidx_bytes(ix);
    t0 = now_sec();
    for (i = 0; i < BIG_N; i++) {
        unsigned k = (unsigned)((i * 7919u) % BIG_N);

        snprintf(key, sizeof(key), "data/%07u", k);
        assert_int_equal(keyidx_put(ix, key, k, 1, (int64_t)i, NULL), 0);
    }
    t_ins = now_sec() - t0;
    assert_int_equal(keyidx_count(ix), BIG_N);
    assert_true(keyidx_bytes(ix) > empty_bytes + BIG_N * sizeof(struct keyidx_ent));

    t0 = now_sec();
    for (i = 0, e = keyidx_seek(ix, NULL, 0); e != NULL; e = keyidx_next(ix, e), i++) {
        assert_true(i < BIG_N);
        assert_int_equal(e->off, i);
    }
    t_walk = now_sec() - t0;
    assert_int_equal(i, BIG_N);
    /* Spot checks of the keys, outside the timed walk. */
    for (i = 0; i < BIG_N; i += 99991) {
        snprintf(want, sizeof(want), "data/%07zu", i);
        e = keyidx_seek(ix, want, 0);
        assert_non_null(e);
        assert_string_equal(e->key, want);
        assert_ptr_equal(keyidx_get(ix, want), e);
    }
    assert_int_equal(keyidx_check(ix), 0);

    t0 = now_sec();
    for (i = 0; i < BIG_N; i++) {
        snprintf(key, sizeof(key), "data/%07u", (unsigned)((i * 9973u) % BIG_N));
        assert_int_equal(keyidx_del(ix, key), 1);
    }
    t_del = now_sec() - t0;
    assert_int_equal(keyidx_count(ix), 0);
    assert_null(keyidx_seek(ix, NULL, 0));
    assert_int_equal(keyidx_check(ix), 0);
    /* The hash table keeps its size: only the entries are given back. */
    assert_true(keyidx_bytes(ix) >= empty_bytes);
    print_message("1M keys: insert %.3f s, ordered walk %.3f s, delete %.3f s, total %.3f s\n",
                  t_ins, t_walk, t_del, t_ins + t_walk + t_del);
    keyidx_free(ix);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),   cmocka_unit_test(test_seek),
        cmocka_unit_test(test_orders),  cmocka_unit_test(test_model_random),
        cmocka_unit_test(test_million), cmocka_unit_test(test_unordered),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
