/* test_provider_key: kind provider-key's checks that need no provider: the validation of a new
 * key (realistic keys accepted; wrong prefixes, admin keys, another provider's keys, spaces,
 * line breaks, control characters and empty input refused, never echoed, with the keyed
 * fingerprint), the partial-hint match of Anthropic's Admin API, where each entry's keys come
 * from (flags_for), the settings' consistency rules and the action hint. The HTTP paths are
 * covered by tests/integration/t-provider-keys.sh against tests/provider-server.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rotators/provider-api.h"
#include "rotators/provider-key.h"
#include "rotators/rotator.h"
#include "util/enc.h"
#include "util/secret.h"

#define MAX_KV 8

struct kv {
    const char *k, *v;
};

static struct fp_key *fpk;

static int
setup(void **state)
{
    static const unsigned char key[FP_KEY_LEN] = "0123456789abcdef0123456789abcdef";

    (void)state;
    secure_heap_init();
    return fp_key_new(key, sizeof(key), &fpk);
}

static int
teardown(void **state)
{
    (void)state;
    fp_key_unref(fpk);
    return 0;
}

/* An entry of kind provider-key built as the loader builds it (settings, defaults, check).
 * Returns 0 or the finish error; *s is freed with entry_free. */
static int
build(const struct kv *kvs, struct inv_secret *s, struct rk_error *err)
{
    const struct rotator_ops *ops = rotator_kind("provider-key");

    memset(s, 0, sizeof(*s));
    assert_non_null(ops);
    assert_non_null(s->path = strdup("secret/test/provider"));
    assert_non_null(s->kind = strdup("provider-key"));
    s->every = 90 * 86400;
    for (size_t i = 0; i < MAX_KV && kvs[i].k != NULL; i++) {
        const struct inv_setting *st = inv_setting_find(ops->settings, kvs[i].k, strlen(kvs[i].k));
        char *text = NULL;
        int r;

        if (st == NULL)
            return rk_error_set(err, RK_ECONFIG, "unknown key '%s'", kvs[i].k);
        if ((r = inv_setting_parse(st, kvs[i].v, strlen(kvs[i].v), &text, err)) != 0 ||
            (r = inv_setting_store(st, s, &s->params, &s->nparams, text, err)) != 0)
            return r;
    }
    return rotator_entry_finish(ops, s, err);
}

static void
entry_free(struct inv_secret *s)
{
    free(s->path);
    free(s->kind);
    free(s->field);
    free(s->pattern);
    free(s->format);
    for (size_t i = 0; i < s->nparams; i++) {
        free(s->params[i].key);
        free(s->params[i].value);
    }
    free(s->params);
    memset(s, 0, sizeof(*s));
}

static void
entry(const char *provider, struct inv_secret *s)
{
    struct kv kvs[MAX_KV] = {{"provider", provider}};
    struct rk_error err = {0};

    if (build(kvs, s, &err) != 0)
        fail_msg("building a %s entry: %s", provider, err.msg);
}

/* A realistic key: prefix, then n characters of letters, digits, '-' and '_'. */
static char *
realistic(const char *prefix, size_t n)
{
    static const char set[] = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_aBcDeFgHiJkLmNoPqRsTuVwXyZ";
    size_t pl = strlen(prefix);
    char *k = malloc(pl + n + 1);

    assert_non_null(k);
    memcpy(k, prefix, pl);
    for (size_t i = 0; i < n; i++)
        k[pl + i] = set[(i * 7 + 3) % (sizeof(set) - 1)];
    k[pl + n] = '\0';
    return k;
}

static void
expect_ok(const char *provider, const char *key)
{
    struct inv_secret s;
    struct secret *v = secret_from(key, strlen(key));
    struct rk_error err = {0};

    entry(provider, &s);
    if (provider_key_validate(&s, v, fpk, &err) != 0)
        fail_msg("%s: a realistic key of %zu bytes is refused: %s", provider, strlen(key), err.msg);
    secret_free(v);
    entry_free(&s);
}

/* Refused with a message that holds want, the fingerprint and "nothing was stored", never the
 * value (nor a long piece of it). */
static void
expect_refused(const char *provider, const void *key, size_t len, const char *want)
{
    struct inv_secret s;
    struct secret *v = secret_from(key, len);
    struct rk_error err = {0};
    char fp[FINGERPRINT_LEN + 1];

    entry(provider, &s);
    assert_int_not_equal(provider_key_validate(&s, v, fpk, &err), 0);
    if (strstr(err.msg, want) == NULL)
        fail_msg("%s: \"%s\" lacks \"%s\"", provider, err.msg, want);
    assert_non_null(strstr(err.msg, "nothing was stored"));
    assert_non_null(strstr(err.msg, "secret/test/provider"));
    if (len > 0) {
        assert_int_equal(fingerprint(fpk, key, len, fp), 0);
        if (strstr(err.msg, fp) == NULL)
            fail_msg("%s: \"%s\" lacks the fingerprint %s", provider, err.msg, fp);
    }
    /* No run of 12 bytes of the value after its first 12 (its prefix) is in the message. */
    for (size_t i = 12; i + 12 <= len; i++) {
        char piece[13];
        memcpy(piece, (const char *)key + i, 12);
        piece[12] = '\0';
        if (strlen(piece) == 12 && strstr(err.msg, piece) != NULL)
            fail_msg("%s: the message holds a piece of the value: %s", provider, err.msg);
    }
    secret_free(v);
    entry_free(&s);
}

static void
test_realistic_keys(void **state)
{
    static const struct {
        const char *provider, *prefix;
    } cases[] = {
        {"openai", "sk-proj-"},         {"openai", "sk-svcacct-"}, {"openai", "sk-"},
        {"anthropic", "sk-ant-api03-"}, {"xai", "xai-"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (size_t n = 100; n <= 200; n += 25) {
            char *k = realistic(cases[i].prefix, n - strlen(cases[i].prefix));
            expect_ok(cases[i].provider, k);
            free(k);
        }
}

static void
test_refused_keys(void **state)
{
    char *k = realistic("sk-proj-", 150), *a = realistic("sk-ant-api03-", 120);
    char *x = realistic("xai-", 90), *adm = realistic("sk-admin-", 120);
    char *aadm = realistic("sk-ant-admin01-", 120), *pk = realistic("pk-live-", 100);
    char buf[256];

    (void)state;
    expect_refused("openai", "", 0, "empty");
    expect_refused("openai", pk, strlen(pk), "does not look like an OpenAI API key");
    expect_refused("openai", a, strlen(a), "looks like an Anthropic key");
    expect_refused("openai", x, strlen(x), "looks like an xAI key");
    expect_refused("anthropic", k, strlen(k), "looks like an OpenAI key");
    expect_refused("xai", k, strlen(k), "looks like an OpenAI key");
    expect_refused("openai", adm, strlen(adm), "OpenAI admin key");
    expect_refused("anthropic", aadm, strlen(aadm), "Anthropic admin key");
    expect_refused("openai", aadm, strlen(aadm), "Anthropic admin key");
    expect_refused("anthropic", "sk-ant-api03-short", 18, "does not look like an Anthropic");
    /* A space, a line break, a tab, control characters, a byte outside ASCII, anywhere. */
    snprintf(buf, sizeof(buf), "%.40s %s", k, k + 40);
    expect_refused("openai", buf, strlen(buf), "a space");
    snprintf(buf, sizeof(buf), "%.40s\n%s", k, k + 40);
    expect_refused("openai", buf, strlen(buf), "a line break");
    snprintf(buf, sizeof(buf), "%s\n\n", k);
    expect_refused("openai", buf, strlen(buf), "a line break");
    snprintf(buf, sizeof(buf), "%.40s\t%s", k, k + 40);
    expect_refused("openai", buf, strlen(buf), "a tab");
    snprintf(buf, sizeof(buf), "%.40s\x1b[2J%s", k, k + 40);
    expect_refused("openai", buf, strlen(buf), "a control character");
    snprintf(buf, sizeof(buf), "%.40s\x01%s", k, k + 40);
    expect_refused("openai", buf, strlen(buf), "a control character");
    snprintf(buf, sizeof(buf), "%.40s\xc3\xa9%s", k, k + 40);
    expect_refused("openai", buf, strlen(buf), "outside ASCII");
    memcpy(buf, k, 60);
    buf[30] = '\0';
    expect_refused("openai", buf, 60, "a control character");
    free(k);
    free(a);
    free(x);
    free(adm);
    free(aadm);
    free(pk);
}

/* Without the store's fingerprint key the message says so, and still holds no value. */
static void
test_refused_without_fp_key(void **state)
{
    struct inv_secret s;
    struct secret *v = secret_from("sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 46);
    struct rk_error err = {0};

    (void)state;
    entry("openai", &s);
    assert_int_not_equal(provider_key_validate(&s, v, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "no fingerprint"));
    assert_null(strstr(err.msg, "AAAAAAAAAAAA"));
    secret_free(v);
    entry_free(&s);
}

/* pattern overrides the provider's rule (an internal proxy's keys); the character rules stay. */
static void
test_pattern_override(void **state)
{
    struct kv kvs[MAX_KV] = {{"provider", "openai"}, {"pattern", "^proxy-[a-z0-9]{8,}$"}};
    struct inv_secret s;
    struct rk_error err = {0};
    struct secret *good = secret_from("proxy-abcdef0123", 16);
    struct secret *bad = secret_from("sk-proj-abcdefghijklmnopqrstuvwxyz", 34);
    struct secret *sp = secret_from("proxy-abcd ef0123", 17);

    (void)state;
    assert_int_equal(build(kvs, &s, &err), 0);
    assert_int_equal(provider_key_validate(&s, good, fpk, &err), 0);
    assert_int_equal(provider_key_validate(&s, bad, fpk, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "does not match its pattern"));
    assert_int_equal(provider_key_validate(&s, sp, fpk, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "a space"));
    secret_free(good);
    secret_free(bad);
    secret_free(sp);
    entry_free(&s);
}

static void
test_hint_match(void **state)
{
    struct secret *k = secret_from("sk-ant-api03-R2DxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxigAA", 52);

    (void)state;
    assert_true(provider_key_hint_match("sk-ant-api03-R2D...igAA", k));
    assert_false(provider_key_hint_match("sk-ant-api03-R2D...igAB", k));
    assert_false(provider_key_hint_match("sk-ant-api03-R2E...igAA", k));
    assert_false(provider_key_hint_match("sk-ant-api03-R2DigAA", k)); /* no "..." */
    assert_false(provider_key_hint_match("...igAA", k));              /* no head */
    assert_false(provider_key_hint_match(NULL, k));
    assert_false(provider_key_hint_match("sk-ant-api03-R2Dxxxxxxxxxxxxxxxxxxxxxxxxxx...xxxxxxxigAA",
                                         k)); /* longer than the key */
    secret_free(k);
}

/* Where keys come from: a person, or an admin API, per entry. */
static void
test_flags_per_entry(void **state)
{
    const struct rotator_ops *ops = rotator_find("provider-key");
    static const struct {
        struct kv kvs[MAX_KV];
        unsigned flags;
    } cases[] = {
        {{{"provider", "openai"}}, ROT_F_MANUAL_INPUT | ROT_F_PERSON_FINISHES},
        {{{"provider", "openai"},
          {"admin_key_path", "secret/admin/openai"},
          {"project_id", "proj_abc"}},
         0},
        {{{"provider", "xai"}}, ROT_F_MANUAL_INPUT | ROT_F_PERSON_FINISHES},
        {{{"provider", "xai"}, {"management_key_path", "secret/admin/xai"}, {"team_id", "t-1"}}, 0},
        {{{"provider", "anthropic"}}, ROT_F_MANUAL_INPUT | ROT_F_PERSON_FINISHES},
        {{{"provider", "anthropic"}, {"admin_key_path", "secret/admin/anthropic"}},
         ROT_F_MANUAL_INPUT},
    };

    (void)state;
    assert_non_null(ops); /* implemented, no longer a planned row */
    assert_non_null(ops->create);
    assert_non_null(ops->test);
    assert_non_null(ops->retire);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct inv_secret s;
        struct rk_error err = {0};
        if (build(cases[i].kvs, &s, &err) != 0)
            fail_msg("case %zu: %s", i, err.msg);
        assert_int_equal(rotator_flags(ops, &s), cases[i].flags);
        entry_free(&s);
    }
}

static void
test_settings_rules(void **state)
{
    static const struct {
        struct kv kvs[MAX_KV];
        const char *why;
    } bad[] = {
        {{{"provider", "openai"}, {"admin_key_path", "secret/admin/openai"}},
         "project_id: required"},
        {{{"provider", "openai"}, {"project_id", "proj_abc"}}, "admin_key_path: required"},
        {{{"provider", "xai"}, {"management_key_path", "secret/admin/xai"}}, "team_id: required"},
        {{{"provider", "xai"}, {"team_id", "t1"}}, "management_key_path: required"},
        {{{"provider", "xai"}, {"admin_key_path", "secret/admin/xai"}}, "management API"},
        {{{"provider", "anthropic"}, {"project_id", "proj_abc"}}, "only for provider openai"},
        {{{"provider", "openai"}, {"team_id", "t1"}}, "only for provider xai"},
        {{{"provider", "openai"}, {"admin_key_path", "secret/admin/openai"}, {"project_id", "a/b"}},
         "project_id: 1.."},
        {{{"provider", "openai"},
          {"admin_key_path", "secret/test/provider"},
          {"project_id", "proj_abc"}},
         "names this entry itself"},
        {{{"provider", "xai"}, {"timeout", "1h"}}, "up to 5m"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct inv_secret s;
        struct rk_error err = {0};
        if (build(bad[i].kvs, &s, &err) == 0)
            fail_msg("bad case %zu is accepted", i);
        if (strstr(err.msg, bad[i].why) == NULL)
            fail_msg("bad case %zu: \"%s\" lacks \"%s\"", i, err.msg, bad[i].why);
        entry_free(&s);
    }
}

/* Defaults: the real base URLs (without /v1) and consoles; the hint names the console. */
static void
test_defaults_and_hint(void **state)
{
    const struct rotator_ops *ops = rotator_find("provider-key");
    static const struct {
        const char *provider, *base, *console;
    } cases[] = {
        {"openai", "https://api.openai.com", "https://platform.openai.com/api-keys"},
        {"anthropic", "https://api.anthropic.com", "https://console.anthropic.com/settings/keys"},
        {"xai", "https://api.x.ai", "https://console.x.ai"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct inv_secret s;
        char hint[200];
        entry(cases[i].provider, &s);
        assert_string_equal(inv_param(&s, "base_url"), cases[i].base);
        assert_string_equal(inv_param(&s, "console"), cases[i].console);
        assert_string_equal(s.field, "api_key");
        assert_int_equal(ops->action_hint(&s, hint, sizeof(hint)), 0);
        assert_non_null(strstr(hint, cases[i].console));
        assert_non_null(strstr(hint, "revoke the old"));
        entry_free(&s);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realistic_keys),
        cmocka_unit_test(test_refused_keys),
        cmocka_unit_test(test_refused_without_fp_key),
        cmocka_unit_test(test_pattern_override),
        cmocka_unit_test(test_hint_match),
        cmocka_unit_test(test_flags_per_entry),
        cmocka_unit_test(test_settings_rules),
        cmocka_unit_test(test_defaults_and_hint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
