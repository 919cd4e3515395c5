/* Unit tests for src/api/sysbody: the request body decoders of sys/init, sys/unseal, the ACL
 * policy write and sys/capabilities-self (types, optional members, ranges, JSON null, extra
 * members, the exact 400 messages, borrowed pointers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "api/sysbody.h"
#include "util/err.h"

#define MSG_INIT_REQ "secret_shares and secret_threshold are required"
#define MSG_INIT_RANGE "secret_shares and secret_threshold must be 1..255"
#define MSG_UNSEAL_TYPE "'key' must be a string and 'reset' a boolean"
#define MSG_UNSEAL_KEY "'key' must be specified in request body as JSON, or 'reset' set to true"
#define MSG_POLICY "'policy' parameter not supplied or empty"
#define MSG_PATHS "'paths' must be a list of paths"
#define MSG_PATHS_STR "'paths' must be a list of strings"

static json_t *
J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);

    if (j == NULL)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* --- sys/init --- */

static int
init_decode(const char *text, struct sys_init_body *b, struct rk_error *err)
{
    json_t *j = J(text);
    int r;

    memset(b, 0x5a, sizeof(*b)); /* the decoder must set every member */
    rk_error_clear(err);
    r = sys_init_body_decode(j, b, err);
    json_decref(j);
    return r;
}

static void
expect_init_fail(const char *text, int code, const char *msg)
{
    struct sys_init_body b;
    struct rk_error err;

    if (init_decode(text, &b, &err) != code)
        fail_msg("%s: expected %d", text, code);
    assert_string_equal(err.msg, msg);
    assert_int_equal(b.secret_shares, 0);
    assert_int_equal(b.secret_threshold, 0);
}

static void
test_init_valid(void **state)
{
    struct sys_init_body b;
    struct rk_error err;

    (void)state;
    assert_int_equal(init_decode("{\"secret_shares\":5,\"secret_threshold\":3}", &b, &err), 0);
    assert_int_equal(b.secret_shares, 5);
    assert_int_equal(b.secret_threshold, 3);
    /* The limits themselves; the threshold is not compared with the shares here. */
    assert_int_equal(init_decode("{\"secret_shares\":1,\"secret_threshold\":1}", &b, &err), 0);
    assert_int_equal(init_decode("{\"secret_shares\":255,\"secret_threshold\":255}", &b, &err), 0);
    assert_int_equal(b.secret_shares, 255);
    assert_int_equal(b.secret_threshold, 255);
    assert_int_equal(init_decode("{\"secret_shares\":2,\"secret_threshold\":9}", &b, &err), 0);
    /* Extra members (Vault's pgp_keys, stored_shares...) are ignored. */
    assert_int_equal(init_decode("{\"secret_shares\":3,\"secret_threshold\":2,\"pgp_keys\":null,"
                                 "\"stored_shares\":\"x\",\"recovery_shares\":[1]}",
                                 &b, &err),
                     0);
    assert_int_equal(b.secret_shares, 3);
    assert_int_equal(b.secret_threshold, 2);
}

static void
test_init_missing_or_wrong_type(void **state)
{
    static const char *const bad[] = {
        "{}",
        "{\"secret_shares\":3}",
        "{\"secret_threshold\":2}",
        "{\"secret_shares\":\"3\",\"secret_threshold\":2}",
        "{\"secret_shares\":3,\"secret_threshold\":\"2\"}",
        "{\"secret_shares\":3.0,\"secret_threshold\":2}",
        "{\"secret_shares\":3,\"secret_threshold\":2.5}",
        "{\"secret_shares\":null,\"secret_threshold\":2}",
        "{\"secret_shares\":true,\"secret_threshold\":2}",
        "{\"secret_shares\":[3],\"secret_threshold\":2}",
        "{\"secret_shares\":3,\"secret_threshold\":{}}",
        "{\"Secret_Shares\":3,\"secret_threshold\":2}",
        "[3,2]",
        "\"x\"",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_init_fail(bad[i], -RK_EINVAL, MSG_INIT_REQ);
}

static void
test_init_out_of_range(void **state)
{
    static const char *const bad[] = {
        "{\"secret_shares\":0,\"secret_threshold\":1}",
        "{\"secret_shares\":1,\"secret_threshold\":0}",
        "{\"secret_shares\":256,\"secret_threshold\":2}",
        "{\"secret_shares\":3,\"secret_threshold\":256}",
        "{\"secret_shares\":-1,\"secret_threshold\":1}",
        "{\"secret_shares\":4294967297,\"secret_threshold\":2}", /* would wrap to 1 in an int */
        "{\"secret_shares\":3,\"secret_threshold\":-9223372036854775808}",
        "{\"secret_shares\":9223372036854775807,\"secret_threshold\":2}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_init_fail(bad[i], -RK_ELIMIT, MSG_INIT_RANGE);
}

static void
test_init_null_body(void **state)
{
    struct sys_init_body b;
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(sys_init_body_decode(NULL, &b, &err), -RK_EINVAL);
    assert_string_equal(err.msg, MSG_INIT_REQ);
}

/* --- sys/unseal --- */

static void
test_unseal_valid(void **state)
{
    json_t *j = J("{\"key\":\"00aabbcc\",\"unknown\":[1,2]}");
    struct sys_unseal_body b;
    struct rk_error err = {0};

    (void)state;
    memset(&b, 0x5a, sizeof(b));
    assert_int_equal(sys_unseal_body_decode(j, &b, &err), 0);
    assert_non_null(b.key);
    assert_string_equal(b.key, "00aabbcc");
    /* Borrowed, not copied: the share lives only in the body (wiped when it is freed). */
    assert_ptr_equal(b.key, json_string_value(json_object_get(j, "key")));
    assert_int_equal(b.reset, 0);
    assert_int_equal(b.migrate, 0);
    json_decref(j);

    j = J("{\"key\":\"k\",\"reset\":false,\"migrate\":true}");
    assert_int_equal(sys_unseal_body_decode(j, &b, &err), 0);
    assert_string_equal(b.key, "k");
    assert_int_equal(b.reset, 0);
    assert_int_equal(b.migrate, 1);
    json_decref(j);

    /* reset alone is enough; a key next to reset is still decoded (the route ignores it). */
    j = J("{\"reset\":true}");
    assert_int_equal(sys_unseal_body_decode(j, &b, &err), 0);
    assert_null(b.key);
    assert_int_equal(b.reset, 1);
    json_decref(j);
    j = J("{\"reset\":true,\"key\":\"x\"}");
    assert_int_equal(sys_unseal_body_decode(j, &b, &err), 0);
    assert_int_equal(b.reset, 1);
    assert_string_equal(b.key, "x");
    json_decref(j);

    /* An empty key is a string: the app reports it as an invalid share, not the decoder. */
    j = J("{\"key\":\"\"}");
    assert_int_equal(sys_unseal_body_decode(j, &b, &err), 0);
    assert_string_equal(b.key, "");
    json_decref(j);
}

static void
expect_unseal_fail(const char *text, const char *msg)
{
    json_t *j = J(text);
    struct sys_unseal_body b;
    struct rk_error err = {0};

    memset(&b, 0x5a, sizeof(b));
    if (sys_unseal_body_decode(j, &b, &err) != -RK_EINVAL)
        fail_msg("%s: expected -RK_EINVAL", text);
    assert_string_equal(err.msg, msg);
    assert_null(b.key);
    assert_int_equal(b.reset, 0);
    assert_int_equal(b.migrate, 0);
    json_decref(j);
}

static void
test_unseal_invalid(void **state)
{
    (void)state;
    expect_unseal_fail("{}", MSG_UNSEAL_KEY);
    expect_unseal_fail("{\"reset\":false}", MSG_UNSEAL_KEY);
    expect_unseal_fail("{\"migrate\":true}", MSG_UNSEAL_KEY);
    expect_unseal_fail("{\"keys\":[\"aa\"]}", MSG_UNSEAL_KEY);
    expect_unseal_fail("{\"key\":5}", MSG_UNSEAL_TYPE);
    expect_unseal_fail("{\"key\":null}", MSG_UNSEAL_TYPE); /* null is not "absent" */
    expect_unseal_fail("{\"key\":[\"aa\"]}", MSG_UNSEAL_TYPE);
    expect_unseal_fail("{\"key\":\"aa\",\"reset\":\"true\"}", MSG_UNSEAL_TYPE);
    expect_unseal_fail("{\"key\":\"aa\",\"reset\":1}", MSG_UNSEAL_TYPE);
    expect_unseal_fail("{\"reset\":null}", MSG_UNSEAL_TYPE);
    expect_unseal_fail("{\"key\":\"aa\",\"migrate\":0}", MSG_UNSEAL_TYPE);
    expect_unseal_fail("{\"reset\":true,\"key\":7}", MSG_UNSEAL_TYPE);
    expect_unseal_fail("[\"aa\"]", MSG_UNSEAL_TYPE);
}

/* --- policy write --- */

static void
expect_policy(const char *text, const char *want)
{
    json_t *j = J(text);
    struct sys_policy_body b;
    struct rk_error err = {0};

    memset(&b, 0x5a, sizeof(b));
    if (sys_policy_body_decode(j, &b, &err) != 0)
        fail_msg("%s: %s", text, err.msg);
    assert_non_null(b.text);
    assert_string_equal(b.text, want);
    assert_int_equal(b.len, strlen(want));
    json_decref(j);
}

static void
expect_policy_fail(const char *text)
{
    json_t *j = J(text);
    struct sys_policy_body b;
    struct rk_error err = {0};

    memset(&b, 0x5a, sizeof(b));
    if (sys_policy_body_decode(j, &b, &err) != -RK_EINVAL)
        fail_msg("%s: expected -RK_EINVAL", text);
    assert_string_equal(err.msg, MSG_POLICY);
    assert_null(b.text);
    assert_int_equal(b.len, 0);
    json_decref(j);
}

static void
test_policy(void **state)
{
    (void)state;
    expect_policy("{\"policy\":\"path \\\"a/*\\\" { capabilities = [\\\"read\\\"] }\"}",
                  "path \"a/*\" { capabilities = [\"read\"] }");
    expect_policy("{\"rules\":\"R\"}", "R");
    expect_policy("{\"policy\":\"P\",\"rules\":\"R\"}", "P"); /* policy wins */
    expect_policy("{\"policy\":5,\"rules\":\"R\"}", "R");     /* a non-string policy falls back */
    expect_policy("{\"policy\":null,\"rules\":\"R\"}", "R");
    expect_policy("{\"policy\":\"P\",\"rules\":5}", "P"); /* rules unread when policy is ok */
    expect_policy_fail("{\"policy\":\"\"}");              /* empty: refused, as Vault does */
    expect_policy("{\"policy\":\"P\",\"name\":\"x\",\"x\":[]}", "P"); /* extras ignored */
    expect_policy_fail("{}");
    expect_policy_fail("{\"policy\":5}");
    expect_policy_fail("{\"policy\":null}");
    expect_policy_fail("{\"policy\":[\"P\"]}");
    expect_policy_fail("{\"rules\":{\"a\":\"b\"}}");
    expect_policy_fail("{\"policy\":true,\"rules\":false}");
    expect_policy_fail("{\"Policy\":\"P\"}");
    expect_policy_fail("[\"P\"]");
}

/* --- capabilities-self --- */

static void
expect_caps(const char *text, size_t n, const char *const *want)
{
    json_t *j = J(text);
    struct sys_caps_body b;
    struct rk_error err = {0};

    memset(&b, 0x5a, sizeof(b));
    if (sys_caps_body_decode(j, &b, &err) != 0)
        fail_msg("%s: %s", text, err.msg);
    assert_int_equal(b.npaths, n);
    for (size_t i = 0; i < n; i++) {
        const char *p = sys_caps_body_path(&b, i);
        assert_non_null(p);
        assert_string_equal(p, want[i]);
    }
    assert_null(sys_caps_body_path(&b, n));
    assert_null(sys_caps_body_path(&b, (size_t)-1));
    json_decref(j);
}

static void
expect_caps_fail(const char *text, const char *msg)
{
    json_t *j = J(text);
    struct sys_caps_body b;
    struct rk_error err = {0};

    memset(&b, 0x5a, sizeof(b));
    if (sys_caps_body_decode(j, &b, &err) != -RK_EINVAL)
        fail_msg("%s: expected -RK_EINVAL", text);
    assert_string_equal(err.msg, msg);
    assert_null(b.paths);
    assert_null(b.path);
    assert_int_equal(b.npaths, 0);
    assert_null(sys_caps_body_path(&b, 0));
    json_decref(j);
}

static void
test_caps_valid(void **state)
{
    static const char *const ab[] = {"secret/data/a", "sys/seal"};
    static const char *const one[] = {"secret/data/a"};
    static const char *const empty[] = {""};

    (void)state;
    expect_caps("{\"paths\":[\"secret/data/a\",\"sys/seal\"]}", 2, ab);
    expect_caps("{\"paths\":\"secret/data/a\"}", 1, one);
    expect_caps("{\"path\":\"secret/data/a\"}", 1, one);
    expect_caps("{\"paths\":[]}", 0, NULL); /* an empty list: an empty answer */
    expect_caps("{\"paths\":[\"secret/data/a\"],\"path\":\"other\"}", 1, one); /* paths wins */
    expect_caps("{\"paths\":\"secret/data/a\",\"path\":\"other\"}", 1, one);
    expect_caps("{\"path\":\"\"}", 1, empty);
    expect_caps("{\"paths\":[\"secret/data/a\"],\"token\":\"t\",\"x\":{}}", 1, one);
}

static void
test_caps_invalid(void **state)
{
    (void)state;
    expect_caps_fail("{}", MSG_PATHS);
    expect_caps_fail("{\"paths\":null}", MSG_PATHS);
    expect_caps_fail("{\"paths\":5}", MSG_PATHS);
    expect_caps_fail("{\"paths\":{\"a\":\"b\"}}", MSG_PATHS);
    expect_caps_fail("{\"paths\":true,\"path\":\"a\"}", MSG_PATHS);
    expect_caps_fail("{\"path\":5}", MSG_PATHS);
    expect_caps_fail("{\"path\":null}", MSG_PATHS);
    expect_caps_fail("{\"paths\":[\"a\"],\"path\":[\"b\"]}", MSG_PATHS); /* path checked too */
    expect_caps_fail("[\"a\"]", MSG_PATHS);
    expect_caps_fail("{\"paths\":[5]}", MSG_PATHS_STR);
    expect_caps_fail("{\"paths\":[\"a\",null]}", MSG_PATHS_STR);
    expect_caps_fail("{\"paths\":[\"a\",[\"b\"]]}", MSG_PATHS_STR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_valid),
        cmocka_unit_test(test_init_missing_or_wrong_type),
        cmocka_unit_test(test_init_out_of_range),
        cmocka_unit_test(test_init_null_body),
        cmocka_unit_test(test_unseal_valid),
        cmocka_unit_test(test_unseal_invalid),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_caps_valid),
        cmocka_unit_test(test_caps_invalid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
