/* Unit tests for src/secrets/acme-msg.c: the parsers of an ACME CA's answers. The flow itself
 * (JWS, account, challenges) runs against pebble in tests/integration/t-acme.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "secrets/acme.h"

#define S(x) x, strlen(x)

static void
test_directory(void **state)
{
    struct acme_dir d;
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(acme_parse_directory(S("{\"newNonce\":\"https://ca/n\",\"newAccount\":"
                                            "\"https://ca/a\",\"newOrder\":\"https://ca/o\","
                                            "\"meta\":{}}"),
                                          &d, &err),
                     0);
    assert_string_equal(d.new_nonce, "https://ca/n");
    assert_string_equal(d.new_order, "https://ca/o");
    acme_dir_clear(&d);
    /* A URL that is not http(s), or one with a space, is refused. */
    assert_int_equal(acme_parse_directory(S("{\"newNonce\":\"file:///etc/passwd\",\"newAccount\":"
                                            "\"https://ca/a\",\"newOrder\":\"https://ca/o\"}"),
                                          &d, &err),
                     -RK_EINVAL);
    acme_dir_clear(&d);
    assert_int_equal(acme_parse_directory(S("{\"newNonce\":\"https://ca/n x\",\"newAccount\":"
                                            "\"https://ca/a\",\"newOrder\":\"https://ca/o\"}"),
                                          &d, &err),
                     -RK_EINVAL);
    acme_dir_clear(&d);
    assert_int_equal(acme_parse_directory(S("[1]"), &d, &err), -RK_EINVAL);
    acme_dir_clear(&d);
    assert_int_equal(acme_parse_directory(S("{"), &d, &err), -RK_EINVAL);
    acme_dir_clear(&d);
}

static void
test_order(void **state)
{
    struct acme_order o;
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(acme_parse_order(S("{\"status\":\"pending\",\"finalize\":\"https://ca/f\","
                                        "\"authorizations\":[\"https://ca/z/1\",\"https://ca/z/"
                                        "2\"]}"),
                                      &o, &err),
                     0);
    assert_string_equal(o.status, "pending");
    assert_int_equal(o.nauthz, 2);
    assert_string_equal(o.authz[1], "https://ca/z/2");
    assert_null(o.certificate);
    acme_order_clear(&o);
    assert_int_equal(acme_parse_order(S("{\"status\":\"valid\",\"finalize\":\"https://ca/f\","
                                        "\"authorizations\":[],\"certificate\":\"https://ca/c\"}"),
                                      &o, &err),
                     0);
    assert_string_equal(o.certificate, "https://ca/c");
    acme_order_clear(&o);
    /* An authorization that is not a URL; no finalize. */
    assert_int_equal(acme_parse_order(S("{\"status\":\"pending\",\"finalize\":\"https://ca/f\","
                                        "\"authorizations\":[7]}"),
                                      &o, &err),
                     -RK_EINVAL);
    acme_order_clear(&o);
    assert_int_equal(
        acme_parse_order(S("{\"status\":\"pending\",\"authorizations\":[]}"), &o, &err),
        -RK_EINVAL);
    assert_non_null(strstr(err.msg, "finalize"));
    acme_order_clear(&o);
}

static const char authz_json[] =
    "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":\"a.test\"},"
    "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://ca/c/1\",\"token\":\"tok_-1\","
    "\"status\":\"invalid\",\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\","
    "\"detail\":\"refused\\nnext\"}},{\"type\":\"dns-01\",\"url\":\"https://ca/c/2\","
    "\"token\":\"tok2\",\"status\":\"pending\"}]}";

static void
test_authz(void **state)
{
    struct acme_authz a;
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(acme_parse_authz(S(authz_json), "http-01", &a, &err), 0);
    assert_string_equal(a.domain, "a.test");
    assert_string_equal(a.token, "tok_-1");
    assert_string_equal(a.chall_url, "https://ca/c/1");
    assert_string_equal(a.error, "connection: refused?next"); /* control characters replaced */
    acme_authz_clear(&a);
    assert_int_equal(acme_parse_authz(S(authz_json), "dns-01", &a, &err), 0);
    assert_string_equal(a.token, "tok2");
    assert_string_equal(a.error, "");
    acme_authz_clear(&a);
    /* No challenge of the type: parsed, chall_url NULL (the caller says so). */
    assert_int_equal(acme_parse_authz(S(authz_json), "tls-alpn-01", &a, &err), 0);
    assert_null(a.chall_url);
    acme_authz_clear(&a);
    /* A token that could escape a URL path or a header is refused. */
    assert_int_equal(acme_parse_authz(S("{\"status\":\"pending\",\"identifier\":{\"value\":\"a\"},"
                                        "\"challenges\":[{\"type\":\"http-01\",\"url\":\"https://"
                                        "ca/c\",\"token\":\"../x\",\"status\":\"pending\"}]}"),
                                      "http-01", &a, &err),
                     -RK_EINVAL);
    acme_authz_clear(&a);
}

static void
test_problem(void **state)
{
    char out[64];

    (void)state;
    acme_problem(S("{\"type\":\"urn:ietf:params:acme:error:rateLimited\",\"detail\":\"too many\"}"),
                 out, sizeof(out));
    assert_string_equal(out, "rateLimited: too many");
    acme_problem(S("<html>"), out, sizeof(out));
    assert_string_equal(out, "");
    acme_problem(S("{\"detail\":\"0123456789012345678901234567890123456789012345678901234567890123"
                   "456789\"}"),
                 out, sizeof(out));
    assert_int_equal(strlen(out), sizeof(out) - 1);
}

static void
test_chain(void **state)
{
    static const char c1[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    static const char c2[] = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n";
    char both[256], *leaf = NULL, *rest = NULL;
    struct rk_error err = {0};

    (void)state;
    snprintf(both, sizeof(both), "%s\n%s", c1, c2);
    assert_int_equal(acme_split_chain(S(both), &leaf, &rest, &err), 0);
    assert_string_equal(leaf, c1);
    assert_string_equal(rest, c2);
    free(leaf);
    free(rest);
    assert_int_equal(acme_split_chain(S(c1), &leaf, &rest, &err), 0);
    assert_string_equal(rest, "");
    free(leaf);
    free(rest);
    assert_int_equal(acme_split_chain(S("no pem"), &leaf, &rest, &err), -RK_EINVAL);
    assert_int_equal(acme_split_chain(S("-----BEGIN CERTIFICATE-----\nAAAA\n"), &leaf, &rest, &err),
                     -RK_EINVAL);
    assert_null(leaf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory), cmocka_unit_test(test_order),
        cmocka_unit_test(test_authz),     cmocka_unit_test(test_problem),
        cmocka_unit_test(test_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
