/* Unit tests for src/store/shamir: known vectors computed here by hand in GF(2^8), every
 * threshold subset of a 5/3 split, edge sizes and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/shamir.h"
#include "util/enc.h"
#include "util/err.h"
#include "util/secret.h"

/* ---- an independent GF(2^8) (reduction polynomial x^8+x^4+x^3+x^2+1, 0x11d) ---- */

static unsigned char
gf_mul(unsigned char a, unsigned char b)
{
    unsigned r = 0, x = a;

    for (; b; b >>= 1) {
        if (b & 1)
            r ^= x;
        x <<= 1;
        if (x & 0x100)
            x ^= 0x11d;
    }
    return (unsigned char)r;
}

static unsigned char
gf_inv(unsigned char a)
{
    /* a^254 = a^-1 in GF(2^8). */
    unsigned char r = 1;
    for (int i = 0; i < 254; i++)
        r = gf_mul(r, a);
    return r;
}

/* Lagrange interpolation at x = 0 of the points (xs[i], ys[i]). */
static unsigned char
gf_interp0(const unsigned char *xs, const unsigned char *ys, size_t k)
{
    unsigned char s = 0;

    for (size_t j = 0; j < k; j++) {
        unsigned char num = 1, den = 1;
        for (size_t m = 0; m < k; m++) {
            if (m == j)
                continue;
            num = gf_mul(num, xs[m]);         /* (0 - x_m) = x_m in characteristic 2 */
            den = gf_mul(den, xs[j] ^ xs[m]); /* (x_j - x_m) */
        }
        s ^= gf_mul(ys[j], gf_mul(num, gf_inv(den)));
    }
    return s;
}

/* Evaluates c[0] + c[1] x + ... + c[deg] x^deg. */
static unsigned char
gf_poly(const unsigned char *c, size_t deg, unsigned char x)
{
    unsigned char y = 0;
    for (size_t i = deg + 1; i-- > 0;)
        y = gf_mul(y, x) ^ c[i];
    return y;
}

static struct secret *
str_secret(const char *s)
{
    struct secret *r = secret_from_str(s);
    assert_non_null(r);
    return r;
}

static int
combine_strs(const char *const *strs, unsigned k, struct secret **out, struct rk_error *err)
{
    struct secret *sh[8];
    int r;

    assert_true(k <= 8);
    for (unsigned i = 0; i < k; i++)
        sh[i] = str_secret(strs[i]);
    r = shamir_combine(sh, k, out, err);
    for (unsigned i = 0; i < k; i++)
        secret_free(sh[i]);
    return r;
}

static struct secret *
random_key(size_t len)
{
    struct secret *k = secret_new(len);
    assert_non_null(k);
    assert_int_equal(RAND_bytes(k->data, (int)len), 1);
    return k;
}

/* Decodes a share produced by shamir_split into x and its bytes. */
static void
share_decode(const struct secret *s, unsigned char *x, unsigned char *y, size_t ylen)
{
    assert_int_equal(s->len, 2 + 2 * ylen);
    assert_int_equal(hex_decode((const char *)s->data, 2, x, 1), 0);
    assert_int_equal(hex_decode((const char *)s->data + 2, 2 * ylen, y, ylen), 0);
}

/* ---- known vectors ---- */

static void
test_vector_by_hand(void **state)
{
    /* f(x) = 0x42 + 0x17 x. f(1) = 0x55; f(2) = 0x42 ^ 0x2e = 0x6c; f(3) = 0x42 ^ 0x39 = 0x7b. */
    static const char *const s12[] = {"0155", "026c"}, *const s13[] = {"0155", "037b"},
                             *const s32[] = {"037b", "026c"};
    /* f(x) = 0x00 + 0x80 x exercises the reduction: 0x80 * 2 = 0x100 ^ 0x11d = 0x1d. */
    static const char *const red[] = {"0180", "021d"};
    struct rk_error err = {0};
    struct secret *out = NULL;
    (void)state;

    assert_int_equal(combine_strs(s12, 2, &out, &err), 0);
    assert_int_equal(out->len, 1);
    assert_int_equal(out->data[0], 0x42);
    secret_free(out);
    assert_int_equal(combine_strs(s13, 2, &out, &err), 0);
    assert_int_equal(out->data[0], 0x42);
    secret_free(out);
    assert_int_equal(combine_strs(s32, 2, &out, &err), 0);
    assert_int_equal(out->data[0], 0x42);
    secret_free(out);
    assert_int_equal(combine_strs(red, 2, &out, &err), 0);
    assert_int_equal(out->data[0], 0x00);
    secret_free(out);
}

static void
test_vector_polynomial(void **state)
{
    /* A 3-of-4 split of a fixed 32-byte key built from a fixed degree-2 polynomial per byte. */
    unsigned char key[32], a1[32], a2[32], y[4][32];
    char hex[4][2 + 64 + 1];
    struct secret *sh[4], *out = NULL;
    struct rk_error err = {0};
    (void)state;

    for (int i = 0; i < 32; i++) {
        key[i] = (unsigned char)(0xa0 + i);
        a1[i] = (unsigned char)(7 * i + 1);
        a2[i] = (unsigned char)(0xff - 3 * i);
    }
    for (unsigned char x = 1; x <= 4; x++) {
        for (int i = 0; i < 32; i++) {
            unsigned char c[3] = {key[i], a1[i], a2[i]};
            y[x - 1][i] = gf_poly(c, 2, x);
        }
        hex_encode(&x, 1, hex[x - 1]);
        hex_encode(y[x - 1], 32, hex[x - 1] + 2);
        sh[x - 1] = str_secret(hex[x - 1]);
    }
    /* Any three of the four, in any order. */
    static const unsigned pick[][3] = {{0, 1, 2}, {0, 1, 3}, {0, 2, 3}, {1, 2, 3}, {3, 0, 2}};
    for (size_t p = 0; p < sizeof(pick) / sizeof(pick[0]); p++) {
        struct secret *sub[3] = {sh[pick[p][0]], sh[pick[p][1]], sh[pick[p][2]]};
        assert_int_equal(shamir_combine(sub, 3, &out, &err), 0);
        assert_int_equal(out->len, 32);
        assert_memory_equal(out->data, key, 32);
        secret_free(out);
    }
    /* Two of them are not enough. */
    assert_int_equal(shamir_combine(sh, 2, &out, &err), 0);
    assert_memory_not_equal(out->data, key, 32);
    secret_free(out);
    for (int i = 0; i < 4; i++)
        secret_free(sh[i]);
}

/* ---- splits ---- */

static int
bits(unsigned m)
{
    return __builtin_popcount(m);
}

static void
test_every_subset_5_of_3(void **state)
{
    struct secret *key = random_key(32), *sh[5] = {0}, *out = NULL;
    unsigned char xs[5], ys[5][32];
    struct rk_error err = {0};
    int full = 0, short_ = 0;
    (void)state;

    assert_int_equal(shamir_split(key, 5, 3, sh, &err), 0);
    for (int i = 0; i < 5; i++) {
        assert_non_null(sh[i]);
        assert_int_equal(strlen((char *)sh[i]->data), 66);
        share_decode(sh[i], &xs[i], ys[i], 32);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(xs[i], xs[j]);
        assert_int_not_equal(xs[i], 0);
    }
    for (unsigned m = 1; m < 32; m++) {
        struct secret *sub[5];
        unsigned char sx[5], sy[5];
        unsigned k = 0;

        for (unsigned i = 0; i < 5; i++)
            if (m & (1u << i)) {
                sub[k] = sh[i];
                sx[k++] = xs[i];
            }
        assert_int_equal(shamir_combine(sub, k, &out, &err), 0);
        if (bits(m) >= 3) {
            assert_memory_equal(out->data, key->data, 32);
            /* The shares lie on a polynomial of degree 2 with the key as its constant term. */
            for (int b = 0; b < 32; b++) {
                unsigned n = 0;
                for (unsigned i = 0; i < 5; i++)
                    if (m & (1u << i))
                        sy[n++] = ys[i][b];
                assert_int_equal(gf_interp0(sx, sy, k), key->data[b]);
            }
            full++;
        } else {
            assert_memory_not_equal(out->data, key->data, 32);
            short_++;
        }
        secret_free(out);
    }
    assert_int_equal(full, 16);   /* C(5,3) + C(5,4) + C(5,5) */
    assert_int_equal(short_, 15); /* C(5,1) + C(5,2) */
    for (int i = 0; i < 5; i++)
        secret_free(sh[i]);
    secret_free(key);
}

static void
test_split_is_random(void **state)
{
    struct secret *key = random_key(32), *a[3] = {0}, *b[3] = {0};
    struct rk_error err = {0};
    (void)state;

    assert_int_equal(shamir_split(key, 3, 2, a, &err), 0);
    assert_int_equal(shamir_split(key, 3, 2, b, &err), 0);
    for (int i = 0; i < 3; i++) {
        /* Same x, different y: the coefficients are drawn afresh. */
        assert_memory_equal(a[i]->data, b[i]->data, 2);
        assert_memory_not_equal(a[i]->data + 2, b[i]->data + 2, 64);
        /* A share alone does not show the key. */
        assert_false(a[i]->len == 66 && memcmp(a[i]->data + 2, key->data, 32) == 0);
        secret_free(a[i]);
        secret_free(b[i]);
    }
    secret_free(key);
}

static void
test_one_of_one(void **state)
{
    struct secret *key = random_key(32), *sh[1] = {0}, *out = NULL;
    struct rk_error err = {0};
    (void)state;

    assert_int_equal(shamir_split(key, 1, 1, sh, &err), 0);
    assert_int_equal(shamir_combine(sh, 1, &out, &err), 0);
    assert_true(secret_equal(out, key));
    secret_free(out);
    secret_free(sh[0]);
    secret_free(key);
}

static void
test_255_shares(void **state)
{
    struct secret **sh = calloc(255, sizeof(*sh)), *key = random_key(32), *out = NULL;
    struct rk_error err = {0};
    (void)state;

    assert_non_null(sh);
    /* All 255 needed. */
    assert_int_equal(shamir_split(key, 255, 255, sh, &err), 0);
    for (unsigned i = 0; i < 255; i++) {
        unsigned char x;
        assert_int_equal(hex_decode((char *)sh[i]->data, 2, &x, 1), 0);
        assert_int_equal(x, i + 1);
    }
    assert_int_equal(shamir_combine(sh, 255, &out, &err), 0);
    assert_true(secret_equal(out, key));
    secret_free(out);
    assert_int_equal(shamir_combine(sh + 1, 254, &out, &err), 0);
    assert_false(secret_equal(out, key));
    secret_free(out);
    for (unsigned i = 0; i < 255; i++)
        secret_free(sh[i]);

    /* 255 shares, threshold 2: the first and the last are enough. */
    assert_int_equal(shamir_split(key, 255, 2, sh, &err), 0);
    {
        struct secret *pair[2] = {sh[0], sh[254]};
        assert_int_equal(shamir_combine(pair, 2, &out, &err), 0);
        assert_true(secret_equal(out, key));
        secret_free(out);
    }
    for (unsigned i = 0; i < 255; i++)
        secret_free(sh[i]);
    free(sh);
    secret_free(key);
}

static void
test_split_bad_args(void **state)
{
    static const unsigned nk[][2] = {{0, 0}, {1, 0},   {3, 0}, {3, 1},
                                     {3, 4}, {256, 3}, {2, 1}, {300, 300}};
    struct secret *key = random_key(32), *sh[255] = {0}, *empty = secret_new(0);
    struct rk_error err = {0};
    (void)state;

    for (size_t i = 0; i < sizeof(nk) / sizeof(nk[0]); i++) {
        rk_error_clear(&err);
        assert_int_equal(shamir_split(key, nk[i][0], nk[i][1], sh, &err), -RK_EINVAL);
        assert_true(err.msg[0] != '\0');
        assert_null(sh[0]);
    }
    assert_int_equal(shamir_split(NULL, 3, 2, sh, &err), -RK_EINVAL);
    assert_int_equal(shamir_split(empty, 3, 2, sh, &err), -RK_EINVAL);
    assert_int_equal(shamir_split(key, 3, 2, NULL, &err), -RK_EINVAL);
    secret_free(empty);
    secret_free(key);
}

static void
test_combine_bad_input(void **state)
{
    static const struct {
        const char *a, *b;
        const char *msg; /* a word the message must contain */
    } cases[] = {
        {"0155", "026g", "hex"},           /* not hex */
        {"0155", "02 6c", "malformed"},    /* whitespace inside */
        {"0155", "026", "malformed"},      /* odd length */
        {"0155", "02", "malformed"},       /* no share bytes */
        {"0155", "", "malformed"},         /* empty */
        {"0155", "026c6c", "same length"}, /* length mismatch */
        {"0155", "0155", "same share"},    /* duplicate */
        {"0155", "017b", "same share"},    /* duplicate x, other bytes */
        {"0155", "006c", "share number"},  /* x = 0 */
        {"zz55", "026c", "share number"},  /* bad x */
    };
    struct rk_error err = {0};
    struct secret *out = NULL;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *pair[2] = {cases[i].a, cases[i].b};
        rk_error_clear(&err);
        assert_int_equal(combine_strs(pair, 2, &out, &err), -RK_EINVAL);
        assert_null(out);
        if (strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, cases[i].msg);
        /* The message never quotes share material. */
        assert_null(strstr(err.msg, "55"));
    }
    assert_int_equal(shamir_combine(NULL, 2, &out, &err), -RK_EINVAL);
    {
        struct secret *none[2] = {NULL, NULL};
        assert_int_equal(shamir_combine(none, 2, &out, &err), -RK_EINVAL);
        assert_int_equal(shamir_combine(none, 0, &out, &err), -RK_EINVAL);
    }
}

static void
test_combine_forgiving(void **state)
{
    /* Uppercase hex and a trailing newline (a pasted line or a share file) are accepted. */
    static const char *const pair[] = {"0155\n", "  026C\r\n"};
    static const char *const wrong[] = {"0155", "026d"};
    struct rk_error err = {0};
    struct secret *out = NULL;
    (void)state;

    assert_int_equal(combine_strs(pair, 2, &out, &err), 0);
    assert_int_equal(out->len, 1);
    assert_int_equal(out->data[0], 0x42);
    secret_free(out);
    /* A wrong but well-formed share gives a wrong secret, not an error. */
    assert_int_equal(combine_strs(wrong, 2, &out, &err), 0);
    assert_int_not_equal(out->data[0], 0x42);
    secret_free(out);
}

/* shamir_share_parse: what sys/unseal and the CLI accept before a share can count. */
static void
test_share_parse(void **state)
{
    static const struct {
        const char *text;
        const char *msg; /* a word the message must contain */
    } bad[] = {
        {"0102", "holds 2 bytes"},         /* the review's reproduction: too short */
        {"01020304", "holds 4 bytes"},     /* still too short */
        {"014242424242", "holds 6 bytes"}, /* one byte too long */
        {"AQI=", "holds 2 bytes"},         /* base64, too short */
        {"", "empty"},                     /* nothing */
        {"  \n", "empty"},                 /* only whitespace */
        {"01424242g", "hex or base64"},    /* neither hex nor base64 */
        {"014 24242", "hex or base64"},    /* whitespace inside */
        {"0042424242", "share number"},    /* x = 0 */
        {"AEJCQkI=", "share number"},      /* x = 0 in base64 */
        {"01424242\x1b", "hex or base64"}, /* a control byte */
    };
    struct rk_error err = {0};
    struct secret *out = NULL;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rk_error_clear(&err);
        out = NULL;
        assert_int_equal(shamir_share_parse(bad[i].text, strlen(bad[i].text), 4, &out, &err),
                         -RK_EINVAL);
        assert_null(out);
        if (strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.msg, bad[i].msg);
        assert_null(strstr(err.msg, "4242"));
    }
    /* Hex in either case, or base64 of the same bytes; whitespace around is forgiven. The
     * answer is always the lowercase hex that shamir_split prints. */
    static const char *const good[] = {"03a1b2c3d4", "03A1B2C3D4", " 03a1b2c3d4\r\n",
                                       "A6Gyw9Q=", "A6Gyw9Q=\n"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(shamir_share_parse(good[i], strlen(good[i]), 4, &out, &err), 0);
        assert_int_equal(out->len, 10);
        assert_string_equal((const char *)out->data, "03a1b2c3d4");
        secret_free(out);
    }
    /* The length is the caller's: a 32-byte key's share is 66 hex digits or 44 base64. */
    {
        struct secret *key = secret_new(32), *sh[3] = {0}, *parsed = NULL;
        unsigned char bin[33];
        char *b64;
        assert_int_equal(RAND_bytes(key->data, 32), 1);
        assert_int_equal(shamir_split(key, 3, 2, sh, &err), 0);
        assert_int_equal(
            shamir_share_parse((const char *)sh[1]->data, sh[1]->len, 32, &parsed, &err), 0);
        assert_true(secret_equal(parsed, sh[1]));
        secret_free(parsed);
        assert_int_equal(hex_decode((const char *)sh[1]->data, sh[1]->len, bin, 33), 0);
        b64 = base64_encode(bin, 33);
        assert_int_equal(strlen(b64), 44);
        assert_int_equal(shamir_share_parse(b64, 44, 32, &parsed, &err), 0);
        assert_true(secret_equal(parsed, sh[1]));
        secret_free(parsed);
        assert_int_equal(
            shamir_share_parse((const char *)sh[1]->data, sh[1]->len, 16, &parsed, &err),
            -RK_EINVAL);
        assert_int_equal(shamir_share_parse(b64, 44, 0, &parsed, &err), -RK_EINVAL);
        freezero(b64, 44);
        for (int i = 0; i < 3; i++)
            secret_free(sh[i]);
        secret_free(key);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_by_hand),      cmocka_unit_test(test_vector_polynomial),
        cmocka_unit_test(test_every_subset_5_of_3), cmocka_unit_test(test_split_is_random),
        cmocka_unit_test(test_one_of_one),          cmocka_unit_test(test_255_shares),
        cmocka_unit_test(test_split_bad_args),      cmocka_unit_test(test_combine_bad_input),
        cmocka_unit_test(test_combine_forgiving),   cmocka_unit_test(test_share_parse),
    };
    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
