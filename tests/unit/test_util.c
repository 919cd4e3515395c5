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
#include "util/log.h"
#include "util/netaddr.h"
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
    char hex[9], u[16];
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
}

/* Fingerprints are HMAC-SHA256 under a key: RFC 4231 test case 1 (key 0x0b x 20, "Hi There")
 * is b0344c61d8db…; a plain SHA-256 ("hunter2" gives f52fbd32b2b3…) is never what shows. */
static void
test_fingerprint_keyed(void **state)
{
    unsigned char k1[20], k2[32];
    struct fp_key *a = NULL, *b = NULL;
    char fp[FINGERPRINT_LEN + 1], fp2[FINGERPRINT_LEN + 1];

    (void)state;
    memset(k1, 0x0b, sizeof(k1));
    memset(k2, 0x42, sizeof(k2));
    assert_int_equal(fp_key_new(k1, sizeof(k1), &a), 0);
    assert_int_equal(fp_key_new(k2, sizeof(k2), &b), 0);
    assert_int_equal(fingerprint(a, "Hi There", 8, fp), 0);
    assert_string_equal(fp, "hmac:b0344c61d8db");
    assert_true(fingerprint_valid(fp));
    assert_int_equal(fingerprint(a, "hunter2", 7, fp), 0);
    assert_true(fingerprint_valid(fp));
    assert_null(strstr(fp, "f52fbd32b2b3"));
    /* Another key, another fingerprint; the same key, the same one. */
    assert_int_equal(fingerprint(b, "hunter2", 7, fp2), 0);
    assert_string_not_equal(fp, fp2);
    assert_int_equal(fingerprint(a, "hunter2", 7, fp2), 0);
    assert_string_equal(fp, fp2);
    /* A reference keeps the key usable after its creator let go. */
    assert_ptr_equal(fp_key_ref(a), a);
    fp_key_unref(a);
    assert_int_equal(fingerprint(a, "", 0, fp), 0);
    assert_true(fingerprint_valid(fp));
    fp_key_unref(a);
    fp_key_unref(b);
    fp_key_unref(NULL);
    assert_int_equal(fingerprint(NULL, "x", 1, fp), -RK_EINVAL);
    assert_string_equal(fp, "");
    assert_int_equal(fp_key_new(k1, 8, &a), -RK_EINVAL);
    /* Only the keyed scheme passes: the old unkeyed one, upper case, wrong lengths do not. */
    assert_false(fingerprint_valid("sha256:f52fbd32b2b3"));
    assert_false(fingerprint_valid("hmac:F52FBD32B2B3"));
    assert_false(fingerprint_valid("hmac:f52fbd32b2b"));
    assert_false(fingerprint_valid("hmac:f52fbd32b2b3a"));
    assert_false(fingerprint_valid(""));
    assert_false(fingerprint_valid(NULL));
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

static void
test_netaddr(void **state)
{
    struct netaddr_cidr c, *v = NULL;
    struct netaddr a;
    struct rk_error err = {0};
    char txt[NETADDR_TEXT_MAX];
    size_t n = 0;

    (void)state;
#define IN(cidr, addr)                                                                             \
    (netaddr_cidr_parse(cidr, strlen(cidr), &c) == 0 && netaddr_parse(addr, strlen(addr), &a) == 0 \
         ? netaddr_cidr_contains(&c, &a)                                                           \
         : -1)
    assert_int_equal(IN("10.1.2.3/8", "10.255.0.1"), 1); /* host bits cleared */
    assert_int_equal(IN("10.0.0.0/8", "11.0.0.1"), 0);
    assert_int_equal(IN("192.0.2.7", "192.0.2.7"), 1);
    assert_int_equal(IN("192.0.2.7", "192.0.2.8"), 0);
    assert_int_equal(IN("192.0.2.0/25", "192.0.2.127"), 1);
    assert_int_equal(IN("192.0.2.0/25", "192.0.2.128"), 0);
    assert_int_equal(IN("0.0.0.0/0", "198.51.100.1"), 1);
    assert_int_equal(IN("0.0.0.0/0", "2001:db8::1"), 0); /* IPv4 only */
    assert_int_equal(IN("::/0", "2001:db8::1"), 1);
    assert_int_equal(IN("2001:db8::/32", "2001:db8:ffff::1"), 1);
    assert_int_equal(IN("2001:db8::/33", "2001:db8:8000::1"), 0);
    assert_int_equal(IN("10.0.0.0/8", "::ffff:10.9.9.9"), 1); /* mapped is IPv4 */
    assert_int_equal(IN("10.0.0.0/8", "[::ffff:10.9.9.9]:80"), 1);
    assert_int_equal(IN("10.0.0.0/8", "10.9.9.9:8080"), 1);
    assert_int_equal(IN("::1", "[::1]"), 1);
#undef IN
    static const char *const bad_cidr[] = {"10.0.0.0/33", "::/129",    "1.2.3.4/",   "/8",
                                           "abc",         "1.2.3.4/x", "1.2.3.4/-1", "[::1]",
                                           "1.2.3.4:80",  ""};
    for (size_t i = 0; i < sizeof(bad_cidr) / sizeof(bad_cidr[0]); i++)
        if (netaddr_cidr_parse(bad_cidr[i], strlen(bad_cidr[i]), &c) == 0)
            fail_msg("'%s' parsed as a CIDR range", bad_cidr[i]);
    static const char *const bad_addr[] = {"[::1", "[::1]x",    "1.2.3",       "host",
                                           "",     "1.2.3.4/8", "fe80::1%eth0"};
    for (size_t i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++)
        if (netaddr_parse(bad_addr[i], strlen(bad_addr[i]), &a) == 0)
            fail_msg("'%s' parsed as an address", bad_addr[i]);
    assert_int_equal(netaddr_parse("2001:DB8:0::1", 13, &a), 0);
    netaddr_format(&a, txt, sizeof(txt));
    assert_string_equal(txt, "2001:db8::1");
    assert_int_equal(netaddr_parse("::ffff:192.0.2.1", 16, &a), 0);
    netaddr_format(&a, txt, sizeof(txt));
    assert_string_equal(txt, "192.0.2.1");
    assert_int_equal(netaddr_cidr_list_parse(" 10.0.0.0/8 ,::1,\t192.0.2.1 ", &v, &n, &err), 0);
    assert_int_equal(n, 3);
    free(v);
    assert_int_equal(netaddr_cidr_list_parse(NULL, &v, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_int_equal(netaddr_cidr_list_parse("10.0.0.0/8, nope", &v, &n, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "'nope'"));
}

/* Runs log_msg with stderr on a pipe and returns what it wrote (static buffer). */
static const char *
captured_log(const char *msg)
{
    static char out[8192];
    int fds[2], saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    log_msg(LOG_ERROR, "m=%s", msg);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fds[1]);
    n = read(fds[0], out, sizeof(out) - 1);
    close(fds[0]);
    assert_true(n > 0);
    out[n] = '\0';
    return out;
}

static void
test_log_escape(void **state)
{
    char buf[64];
    const char *line;

    (void)state;
    /* a forged line: one line comes out, the newline spelled \n */
    line = captured_log("x\n2026-01-01T00:00:00Z info  root token created");
    assert_non_null(strstr(line, "m=x\\n2026-01-01T00:00:00Z info  root token created\n"));
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
    /* CR, tab, ESC, other C0, DEL, the C1 CSI in UTF-8; plain UTF-8 and backslash stay */
    line = captured_log("a\rb\tc\x1b[31md\x01\x7f\xc2\x9b"
                        "2J \xc3\xa9 \\n");
    assert_non_null(strstr(line, "m=a\\rb\\tc\\x1b[31md\\x01\\x7f\\xc2\\x9b2J \xc3\xa9 \\n\n"));
    for (const char *p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 && p[1] != '\0')
            fail_msg("a raw control byte at offset %zu", (size_t)(p - line));
    /* log_escape never splits an escape or a character */
    assert_int_equal(log_escape("ab\n", buf, 4), 2);
    assert_string_equal(buf, "ab");
    assert_int_equal(log_escape("ab\n", buf, 5), 4);
    assert_string_equal(buf, "ab\\n");
    assert_int_equal(log_escape("a\xc3\xa9", buf, 3), 1);
    assert_string_equal(buf, "a");
    assert_int_equal(log_escape("\x1b", buf, 5), 4);
    assert_string_equal(buf, "\\x1b");
    assert_int_equal(log_escape("\x1b", buf, 4), 0);
    /* a long message is cut, still one line */
    char big[3000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[100] = '\n';
    line = captured_log(big);
    assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

/* The allocator handed to libcurl: realloc_wiped keeps the contents as realloc does, growing and
 * shrinking (the wipe of the block left behind is for ASan to watch, not for a test to read). */
static void
test_wiping_alloc(void **state)
{
    char *p = realloc_wiped(NULL, 8), *q;

    (void)state;
    assert_non_null(p);
    memcpy(p, "abcdefg", 8);
    assert_non_null(q = realloc_wiped(p, 4096));
    assert_string_equal(q, "abcdefg");
    memset(q + 8, 'x', 4088);
    assert_non_null(p = realloc_wiped(q, 3));
    assert_memory_equal(p, "abc", 3);
    assert_non_null(q = realloc_wiped(p, 0));
    free_wiped(q);
    free_wiped(NULL);
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
        cmocka_unit_test(test_str_hash),        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_netaddr),         cmocka_unit_test(test_fingerprint_keyed),
        cmocka_unit_test(test_wiping_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
