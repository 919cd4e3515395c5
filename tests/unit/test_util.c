/* Unit tests for src/util: durations, paths, encodings, fingerprints, secrets, files, time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/enc.h"
#include "util/err.h"
#include "util/fsutil.h"
#include "util/parse.h"
#include "util/secret.h"
#include "util/timeutil.h"

static void
test_duration_ok(void **state)
{
    static const struct {
        const char *in;
        int64_t secs;
    } cases[] = {{"90d", 90 * 86400}, {"24h", 86400}, {"168h", 168 * 3600}, {"7d", 604800},
                 {"30m", 1800},       {"45s", 45},    {"1h30m", 5400},      {"2w", 1209600},
                 {"3600", 3600},      {"0s", 0}};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t v = -1;
        struct rk_error err = {0};
        assert_int_equal(duration_parse(cases[i].in, strlen(cases[i].in), &v, &err), 0);
        assert_int_equal(v, cases[i].secs);
    }
}

static void
test_duration_bad(void **state)
{
    static const char *bad[] = {"",    "d",    "90x", "1h30", "-5m", "9999999999999999999999s",
                                " 1h", "1.5h", "h1"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v = 0;
        struct rk_error err = {0};
        assert_int_equal(duration_parse(bad[i], strlen(bad[i]), &v, &err), -RK_EINVAL);
        assert_true(err.msg[0] != '\0');
    }
}

static void
test_duration_format(void **state)
{
    char buf[32];
    (void)state;
    duration_format(90 * 86400, buf, sizeof(buf));
    assert_string_equal(buf, "90d");
    duration_format(5400, buf, sizeof(buf));
    assert_string_equal(buf, "1h30m");
    duration_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "0s");
}

static void
test_path(void **state)
{
    static const char *good[] = {"secret/ai-gateway/providers/openai", "a",
                                 "transit/keys/jwt-signing", "x/y_z.1/@v"};
    static const char *bad[] = {"",   "/a",    "a/",  "a//b", "a/../b",
                                "..", "a/./b", "a b", "a\tb", "a/\x7f"};
    struct rk_error err = {0};
    char longp[600];
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(path_validate(good[i], strlen(good[i]), &err), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(path_validate(bad[i], strlen(bad[i]), &err), -RK_EINVAL);
    assert_int_equal(path_validate("a\0b", 3, &err), -RK_EINVAL);
    memset(longp, 'a', sizeof(longp));
    assert_int_equal(path_validate(longp, 512, &err), 0);
    assert_int_equal(path_validate(longp, 513, &err), -RK_EINVAL);
}

static void
test_encodings(void **state)
{
    const unsigned char in[] = {0x00, 0xff, 0x10, 0xab};
    unsigned char back[4];
    char hex[9], fp[FINGERPRINT_LEN + 1], u[16];
    size_t n;
    unsigned char *dec;
    char *b64;
    (void)state;
    hex_encode(in, 4, hex);
    assert_string_equal(hex, "00ff10ab");
    assert_int_equal(hex_decode(hex, 8, back, 4), 0);
    assert_memory_equal(in, back, 4);
    assert_int_equal(hex_decode("zz", 2, back, 1), -1);
    b64 = base64_encode((const unsigned char *)"hello", 5);
    assert_string_equal(b64, "aGVsbG8=");
    dec = base64_decode(b64, strlen(b64), &n);
    assert_non_null(dec);
    assert_int_equal(n, 5);
    assert_memory_equal(dec, "hello", 5);
    free(dec);
    free(b64);
    assert_null(base64_decode("a$==", 4, &n));
    assert_null(base64_decode("abc", 3, &n));
    base64url_encode((const unsigned char *)"\xfb\xff", 2, u);
    assert_string_equal(u, "-_8");
    /* SHA-256("abc") = ba7816bf8f01cfea… */
    fingerprint("abc", 3, fp);
    assert_string_equal(fp, "sha256:ba7816bf8f01");
}

static void
test_secret(void **state)
{
    struct secret *a, *b, *c;
    (void)state;
    secure_heap_init();
    a = secret_from_str("value-1");
    b = secret_from("value-1", 7);
    c = secret_from_str("value-2");
    assert_true(secret_equal(a, b));
    assert_false(secret_equal(a, c));
    assert_int_equal(a->data[a->len], 0);
    secret_free(a);
    secret_free(b);
    secret_free(c);
    secret_free(NULL);
}

static void
test_fs_atomic(void **state)
{
    char dir[] = "/tmp/rk-test-XXXXXX", path[256];
    char *buf = NULL;
    size_t n = 0;
    struct stat st;
    struct rk_error err = {0};
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/out", dir);
    assert_int_equal(fs_write_atomic(path, "abc", 3, 0600, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(fs_read_all(path, 100, &buf, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(buf, "abc");
    free(buf);
    assert_int_equal(fs_read_all(path, 2, &buf, &n, &err), -RK_ELIMIT);
    unlink(path);
    assert_int_equal(fs_read_all(path, 100, &buf, &n, &err), -RK_ENOTFOUND);
    rmdir(dir);
}

static void
test_time(void **state)
{
    char buf[40];
    int64_t us;
    (void)state;
    time_format_rfc3339(1795752306000000LL, buf, sizeof(buf));
    assert_int_equal(time_parse_rfc3339(buf, &us), 0);
    assert_int_equal(us, 1795752306000000LL);
    time_format_rfc3339(1795752306000123LL, buf, sizeof(buf));
    assert_int_equal(time_parse_rfc3339(buf, &us), 0);
    assert_int_equal(us, 1795752306000123LL);
    assert_int_equal(time_parse_rfc3339("garbage", &us), -1);
}

static void
test_error(void **state)
{
    struct rk_error err = {0};
    (void)state;
    assert_int_equal(rk_error_set(&err, RK_ENOTFOUND, "no %s", "thing"), -RK_ENOTFOUND);
    assert_string_equal(err.msg, "no thing");
    rk_error_prefix(&err, "reading %s", "x");
    assert_string_equal(err.msg, "reading x: no thing");
    assert_string_equal(rk_strerror(-RK_ENOTFOUND), "not found");
}

/* UTF-8: jansson's rules, and cutting a text back to its last whole character. */
static void
test_utf8(void **state)
{
    static const struct {
        const char *in, *want;
    } trims[] = {
        {"", ""},
        {"abc", "abc"},
        {"ab\xc3\xa9", "ab\xc3\xa9"},               /* whole 2-byte character */
        {"ab\xc3", "ab"},                           /* lead byte alone */
        {"a\xe2\x82\xac", "a\xe2\x82\xac"},         /* whole euro sign */
        {"a\xe2\x82", "a"},                         /* 3-byte character cut after 2 */
        {"a\xf0\x9f\x94\x91", "a\xf0\x9f\x94\x91"}, /* whole 4-byte character */
        {"a\xf0\x9f\x94", "a"},                     /* cut after 3 */
        {"\xc3", ""},
        {"a\x80", "a\x80"}, /* a stray continuation byte is not a cut: left for utf8_valid */
    };
    char buf[16];

    (void)state;
    for (size_t i = 0; i < sizeof(trims) / sizeof(trims[0]); i++) {
        snprintf(buf, sizeof(buf), "%s", trims[i].in);
        utf8_trim_tail(buf);
        assert_string_equal(buf, trims[i].want);
    }
    assert_true(utf8_valid((const unsigned char *)"caf\xc3\xa9", 5));
    assert_false(utf8_valid((const unsigned char *)"caf\xc3", 4));
    assert_false(utf8_valid((const unsigned char *)"\xc0\xaf", 2));         /* overlong */
    assert_false(utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(utf8_valid((const unsigned char *)"a\x80", 2));
    /* What snprintf does to a long reason: 100 two-byte characters into 160 bytes. */
    {
        char reason[160], in[201];
        for (int i = 0; i < 100; i++)
            in[2 * i] = (char)0xc3, in[2 * i + 1] = (char)0xa9;
        in[200] = '\0';
        snprintf(reason, sizeof(reason), "%s", in);
        assert_false(utf8_valid((const unsigned char *)reason, strlen(reason)));
        utf8_trim_tail(reason);
        assert_int_equal(strlen(reason), 158);
        assert_true(utf8_valid((const unsigned char *)reason, strlen(reason)));
    }
}

/* str_hash: stable, length-reporting, bounded by its limit, and the mix spreads near-identical
 * keys (the cache shards on the top bits, the tables bucket on the low ones). */
static void
test_str_hash(void **state)
{
    size_t n = 0, m = 0;
    uint64_t a, b;
    unsigned top = 0, low = 0;

    (void)state;
    a = str_hash("kv/data/a@cur", 1024, &n);
    assert_int_equal(n, 13);
    assert_true(a == str_hash("kv/data/a@cur", 1024, &m) && m == 13);
    b = str_hash("kv/data/b@cur", 1024, &m);
    assert_true(a != b);
    str_hash("abcdef", 3, &n); /* reads limit + 1 bytes at most */
    assert_int_equal(n, 4);
    assert_true(str_hash("", 10, &n) != 0 && n == 0);
    for (int i = 0; i < 64; i++) {
        char k[32];

        snprintf(k, sizeof(k), "kv/data/p%05d@v", i);
        a = str_hash(k, 1024, &n);
        top |= 1u << (unsigned)(a >> 59);
        low |= 1u << (unsigned)(a & 31);
    }
    /* 64 consecutive keys land on most of 32 top-bit and 32 low-bit values. */
    assert_true(__builtin_popcount(top) >= 20 && __builtin_popcount(low) >= 20);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_ok),     cmocka_unit_test(test_duration_bad),
        cmocka_unit_test(test_duration_format), cmocka_unit_test(test_path),
        cmocka_unit_test(test_encodings),       cmocka_unit_test(test_secret),
        cmocka_unit_test(test_fs_atomic),       cmocka_unit_test(test_time),
        cmocka_unit_test(test_error),           cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_str_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
