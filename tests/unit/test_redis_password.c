/* Unit tests for src/rotators/redis-password.c: a value goes to Redis as a length-prefixed
 * RESP argument (spaces, CR, LF and NUL inside it stay data), addresses are read strictly, an
 * error reply never shows a value, and the entry's settings are checked at load. The steps
 * against a real redis-server are in tests/integration/t-redis.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rotators/redis-password.h"
#include "rotators/rotator.h"

static void
test_resp_command(void **state)
{
    /* A password with a space, CR LF and a NUL: it must stay one argument. */
    static const char pw[] = ">pa ss\r\n*1\r\n$4\r\nPING\0x";
    const void *argv[] = {"ACL", "SETUSER", "litellm", pw};
    const size_t lens[] = {3, 7, 7, sizeof(pw) - 1};
    static const char want[] = "*4\r\n$3\r\nACL\r\n$7\r\nSETUSER\r\n$7\r\nlitellm\r\n"
                               "$22\r\n>pa ss\r\n*1\r\n$4\r\nPING\0x\r\n";
    struct secret *out = NULL;
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(sizeof(pw) - 1, 22);
    assert_int_equal(redis_resp_command(4, argv, lens, &out, &err), 0);
    assert_non_null(out);
    assert_int_equal(out->len, sizeof(want) - 1);
    assert_memory_equal(out->data, want, out->len);
    secret_free(out);

    /* An empty argument is "$0\r\n\r\n". */
    {
        const void *a2[] = {"AUTH", ""};
        const size_t l2[] = {4, 0};
        assert_int_equal(redis_resp_command(2, a2, l2, &out, &err), 0);
        assert_int_equal(out->len, strlen("*2\r\n$4\r\nAUTH\r\n$0\r\n\r\n"));
        assert_memory_equal(out->data, "*2\r\n$4\r\nAUTH\r\n$0\r\n\r\n", out->len);
        secret_free(out);
    }
    /* Bounds. */
    assert_int_equal(redis_resp_command(0, argv, lens, &out, &err), -RK_EINVAL);
    assert_null(out);
    assert_int_equal(redis_resp_command(17, argv, lens, &out, &err), -RK_EINVAL);
    {
        const void *a3[] = {NULL};
        const size_t l3[] = {3};
        assert_int_equal(redis_resp_command(1, a3, l3, &out, &err), -RK_EINVAL);
    }
}

static void
test_address_parse(void **state)
{
    static const struct {
        const char *in;
        const char *host;
        int port;
    } good[] = {
        {"127.0.0.1:6379", "127.0.0.1", 6379},
        {"redis.ai-gateway.svc:6380", "redis.ai-gateway.svc", 6380},
        {"redis", "redis", 6379},
        {"[::1]:7000", "::1", 7000},
        {"[2001:db8::5]", "2001:db8::5", 6379},
        {"h:1", "h", 1},
        {"h:65535", "h", 65535},
    };
    static const char *const bad[] = {
        "",         ":6379", "h:",        "h:0",    "h:65536", "h:123456", "h:6x79",
        "::1:6379", "[::1",  "[::1]6379", "h st:1", "h;rm:1",  "h/x:1",    "[]:1",
    };
    char host[REDIS_HOST_MAX];
    struct rk_error err = {0};
    int port = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (redis_address_parse(good[i].in, strlen(good[i].in), host, sizeof(host), &port, &err) !=
            0)
            fail_msg("'%s' refused: %s", good[i].in, err.msg);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (redis_address_parse(bad[i], strlen(bad[i]), host, sizeof(host), &port, &err) !=
            -RK_ECONFIG)
            fail_msg("'%s' accepted", bad[i]);
    /* A host longer than the buffer is refused, not cut. */
    {
        char longhost[400];
        memset(longhost, 'a', sizeof(longhost));
        assert_int_equal(
            redis_address_parse(longhost, sizeof(longhost), host, sizeof(host), &port, &err),
            -RK_ECONFIG);
    }
}

static void
test_error_text(void **state)
{
    struct secret *pw = secret_from_str("hunter2-Secret-Value");
    const struct secret *hide[] = {NULL, pw};
    char buf[200];
    /* Redis repeats the modifier, password included, in some ACL SETUSER errors. */
    static const char quoting[] = "ERR Error in ACL SETUSER modifier '<hunter2-Secret-Value': "
                                  "The password you are trying to remove from the user does "
                                  "not exist";
    static const char other[] = "ERR Error in ACL SETUSER modifier '>abc': Syntax error";
    static const char ctl[] = "NOPERM this user has no\r\npermissions\x1b[31m";

    (void)state;
    assert_non_null(pw);
    redis_error_text(quoting, strlen(quoting), hide, 2, buf, sizeof(buf));
    assert_null(strstr(buf, "hunter2"));
    assert_true(strncmp(buf, "ERR ", 4) == 0);
    assert_non_null(strstr(buf, "withheld"));
    /* No hidden value: the quoted argument is still dropped. */
    redis_error_text(other, strlen(other), hide, 2, buf, sizeof(buf));
    assert_null(strstr(buf, "abc"));
    assert_non_null(strstr(buf, "Syntax error"));
    assert_non_null(strstr(buf, "modifier '\xe2\x80\xa6'"));
    /* Control characters never pass. */
    redis_error_text(ctl, strlen(ctl), hide, 2, buf, sizeof(buf));
    for (const char *p = buf; *p != '\0'; p++)
        assert_true(*p >= 0x20 && *p <= 0x7e);
    assert_true(strncmp(buf, "NOPERM this user has no??permissions?[31m", 41) == 0);
    /* A small buffer is cut, still terminated. */
    redis_error_text(other, strlen(other), hide, 2, buf, 8);
    assert_true(strlen(buf) < 8);
    secret_free(pw);
}

struct kv {
    const char *k, *v;
};

/* Builds an entry of kind redis-password from kvs as the loader does; returns its result. */
static int
build(const struct kv *kvs, size_t n, struct rk_error *err)
{
    const struct rotator_ops *ops = rotator_find("redis-password");
    struct inventory *inv = calloc(1, sizeof(*inv));
    struct inv_secret *s;
    int r = 0;

    assert_non_null(ops);
    assert_non_null(inv);
    assert_non_null(inv->secrets = calloc(1, sizeof(*inv->secrets)));
    inv->nsecrets = 1;
    s = &inv->secrets[0];
    assert_non_null(s->path = strdup("secret/app/redis"));
    assert_non_null(s->kind = strdup("redis-password"));
    s->every = 86400;
    for (size_t i = 0; i < n && r == 0; i++) {
        const struct inv_setting *st = inv_setting_find(ops->settings, kvs[i].k, strlen(kvs[i].k));
        char *text = NULL;
        if (st == NULL) {
            r = rk_error_set(err, RK_ECONFIG, "unknown key '%s'", kvs[i].k);
            break;
        }
        if ((r = inv_setting_parse(st, kvs[i].v, strlen(kvs[i].v), &text, err)) == 0)
            r = inv_setting_store(st, s, &s->params, &s->nparams, text, err);
    }
    if (r == 0)
        r = rotator_entry_finish(ops, s, err);
    if (r == 0) {
        /* The defaults. */
        assert_string_equal(s->field, "password");
        assert_string_equal(s->format, "{hex:64}");
        assert_non_null(inv_param(s, "persist"));
        assert_non_null(inv_param(s, "admin_username"));
    }
    inventory_free(inv);
    return r;
}

static void
test_settings(void **state)
{
    struct rk_error err = {0};
    static const struct kv one[] = {{"address", "127.0.0.1:6379"}, {"username", "litellm"}};
    static const struct kv many[] = {{"addresses", "10.0.0.1:6379,10.0.0.2:6379, [::1]:6380"},
                                     {"username", "litellm"},
                                     {"admin_username", "rekey"},
                                     {"admin_password_path", "secret/redis/admin"},
                                     {"persist", "acl-save"},
                                     {"timeout", "2s"}};
    static const struct kv self[] = {{"address", "r:1"},
                                     {"username", "admin"},
                                     {"admin_username", "admin"},
                                     {"admin_password_path", "secret/app/redis"}};
    static const struct {
        struct kv kvs[4];
        size_t n;
        const char *why;
    } bad[] = {
        {{{"username", "x"}}, 1, "missing required key 'address'"},
        {{{"address", "a:1"}, {"addresses", "b:1"}}, 2, "not both"},
        {{{"addresses", "a:1,a:1"}}, 1, "listed twice"},
        {{{"address", "a:99999"}}, 1, "port"},
        {{{"address", "a:1"}, {"username", "two words"}}, 2, "username"},
        {{{"address", "a:1"}, {"persist", "bgsave"}}, 2, "acl-save|config-rewrite|none"},
        {{{"address", "a:1"}, {"format", "{hex:8}"}}, 2, "random bits"},
        {{{"address", "a:1"},
          {"username", "admin"},
          {"admin_username", "admin"},
          {"admin_password_path", "secret/other"}},
         4,
         "remove that password"},
        {{{"address", "a:1"}, {"timeout", "10m"}}, 2, "up to 5m"},
    };

    (void)state;
    if (build(one, 2, &err) != 0)
        fail_msg("one node refused: %s", err.msg);
    if (build(many, 6, &err) != 0)
        fail_msg("three nodes refused: %s", err.msg);
    if (build(self, 4, &err) != 0)
        fail_msg("an admin rotating its own password, kept in this entry, refused: %s", err.msg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rk_error_clear(&err);
        if (build(bad[i].kvs, bad[i].n, &err) == 0)
            fail_msg("bad entry %zu accepted", i);
        if (strstr(err.msg, bad[i].why) == NULL)
            fail_msg("bad entry %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].why);
    }
}

/* The kind is a full rotator now: every step a Redis target needs is there. */
static void
test_row(void **state)
{
    const struct rotator_ops *ops = rotator_find("redis-password");

    (void)state;
    assert_non_null(ops);
    assert_non_null(ops->create);
    assert_non_null(ops->apply);
    assert_non_null(ops->unapply);
    assert_non_null(ops->test);
    assert_non_null(ops->retire);
    assert_int_equal(rotator_flags(ops, NULL), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resp_command), cmocka_unit_test(test_address_parse),
        cmocka_unit_test(test_error_text),   cmocka_unit_test(test_settings),
        cmocka_unit_test(test_row),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
