/* Unit tests for src/api/kvjson: the request decoders and response encoders of the KV v2 and
 * rekey routes (Vault's shapes, weak typing, error messages, limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/envelope.h"
#include "api/kvjson.h"
#include "util/err.h"
#include "util/secret.h"
#include "util/timeutil.h"

static json_t *
J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);

    if (j == NULL)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* Asserts that obj[key] is the string want. */
static void
assert_str(const json_t *obj, const char *key, const char *want)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    assert_string_equal(json_string_value(v), want);
}

/* Compares j with the JSON text want (both parsed, so key order does not matter). */
static void
assert_json(const json_t *j, const char *want)
{
    json_t *w = J(want);

    if (!json_equal((json_t *)j, w)) {
        char *got = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("got %s, want %s", got, want);
    }
    json_decref(w);
}

/* ---- write bodies ---- */

static void
test_write_ok(void **state)
{
    struct rk_error err = {0};
    struct kvjson_write w;
    json_t *b = J("{\"data\":{\"a\":\"x\",\"n\":1,\"o\":{\"p\":[true,null]}},"
                  "\"options\":{\"cas\":3},\"unknown\":[1]}");

    (void)state;
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_int_equal(w.cas, 3);
    assert_true(json_is_object(w.data));
    assert_int_equal(json_object_size(w.data), 3);
    json_decref(b);

    /* No options, options without cas, a null cas: no cas. */
    b = J("{\"data\":{}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_int_equal(w.cas, -1);
    json_decref(b);
    b = J("{\"data\":{},\"options\":{}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_int_equal(w.cas, -1);
    json_decref(b);
    b = J("{\"data\":{},\"options\":{\"cas\":null}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_int_equal(w.cas, -1);
    json_decref(b);

    /* Vault's weak decoding: a decimal string and an integral real. */
    b = J("{\"data\":{},\"options\":{\"cas\":\"7\"}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_int_equal(w.cas, 7);
    json_decref(b);
    b = J("{\"data\":{},\"options\":{\"cas\":2.0}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_int_equal(w.cas, 2);
    json_decref(b);
    b = J("{\"data\":{},\"options\":{\"cas\":0}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_int_equal(w.cas, 0);
    assert_null(w.reason);
    json_decref(b);

    /* rekey's options.reason; an empty reason is none. */
    b = J("{\"data\":{},\"options\":{\"reason\":\"rotated by hand\"}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_string_equal(w.reason, "rotated by hand");
    json_decref(b);
    b = J("{\"data\":{},\"options\":{\"reason\":\"\"}}");
    assert_int_equal(kvjson_decode_write(b, &w, &err), 0);
    assert_null(w.reason);
    json_decref(b);
}

static void
test_write_errors(void **state)
{
    static const struct {
        const char *body, *msg;
    } cases[] = {
        {"{}", "no data provided"},
        {"{\"data\":null}", "no data provided"},
        {"{\"data\":\"sk-secret\"}", "invalid \"data\": expected an object, got string"},
        {"{\"data\":[1]}", "invalid \"data\": expected an object, got array"},
        {"{\"data\":7}", "invalid \"data\": expected an object, got integer"},
        {"{\"data\":{},\"options\":true}", "invalid \"options\": expected an object, got true"},
        {"{\"data\":{},\"options\":{\"cas\":-1}}", "error parsing check-and-set parameter"},
        {"{\"data\":{},\"options\":{\"cas\":1.5}}", "error parsing check-and-set parameter"},
        {"{\"data\":{},\"options\":{\"cas\":\"x\"}}", "error parsing check-and-set parameter"},
        {"{\"data\":{},\"options\":{\"cas\":[1]}}", "error parsing check-and-set parameter"},
        {"{\"data\":{},\"options\":{\"cas\":false}}", "error parsing check-and-set parameter"},
        {"{\"data\":{},\"options\":{\"reason\":1}}",
         "invalid \"reason\": expected a string, got integer"},
    };
    struct kvjson_write w;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rk_error err = {0};
        json_t *b = J(cases[i].body);
        assert_int_equal(kvjson_decode_write(b, &w, &err), -RK_EINVAL);
        assert_string_equal(err.msg, cases[i].msg);
        assert_null(w.data);
        /* Never a value from the body in the message. */
        assert_null(strstr(err.msg, "sk-secret"));
        json_decref(b);
    }
    {
        struct rk_error err = {0};
        json_t *arr = J("[1]");
        assert_int_equal(kvjson_decode_write(arr, &w, &err), -RK_EINVAL);
        assert_non_null(strstr(err.msg, "Expected object, got array"));
        json_decref(arr);
        assert_int_equal(kvjson_decode_write(NULL, &w, &err), -RK_EINVAL);
    }
}

static void
test_data_text_roundtrip(void **state)
{
    struct rk_error err = {0};
    struct secret *s = NULL;
    json_t *d = J("{\"z\":\"1\",\"a\":{\"n\":1.5,\"l\":[null,false]},\"k\":\"sk-proj-a_b-c\"}");
    json_t *back = NULL, *notobj = J("[]");

    (void)state;
    assert_int_equal(kvjson_data_text(d, &s, &err), 0);
    /* Canonical: compact, sorted keys. */
    assert_string_equal(
        (const char *)s->data,
        "{\"a\":{\"l\":[null,false],\"n\":1.5},\"k\":\"sk-proj-a_b-c\",\"z\":\"1\"}");
    assert_int_equal(kvjson_data_parse(s, &back, &err), 0);
    assert_true(json_equal(back, d));
    json_decref(back);
    secret_free(s);

    assert_int_equal(kvjson_data_text(notobj, &s, &err), -RK_EINVAL);
    assert_null(s);
    json_decref(notobj);
    json_decref(d);

    /* A corrupt stored text: -RK_ECORRUPT, and no byte of it in the message. */
    s = secret_from_str("{\"key\":\"sk-litellm-TOPSECRET");
    assert_int_equal(kvjson_data_parse(s, &back, &err), -RK_ECORRUPT);
    assert_null(back);
    assert_null(strstr(err.msg, "TOPSECRET"));
    secret_free(s);
    s = secret_from_str("[\"TOPSECRET\"]");
    assert_int_equal(kvjson_data_parse(s, &back, &err), -RK_ECORRUPT);
    secret_free(s);
}

/* ---- versions ---- */

static void
test_versions(void **state)
{
    static const struct {
        const char *body;
        size_t n;
        uint64_t v[3];
    } ok[] = {
        {"{\"versions\":[1,2,3]}", 3, {1, 2, 3}},
        {"{\"versions\":[\"4\",5.0]}", 2, {4, 5}},
        {"{\"versions\":6}", 1, {6}},
        {"{\"versions\":\"1, 2,3\"}", 3, {1, 2, 3}},
        {"{\"versions\":\"9\"}", 1, {9}},
    };
    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"{}", "no version number provided"},
        {"{\"versions\":null}", "no version number provided"},
        {"{\"versions\":[]}", "no version number provided"},
        {"{\"versions\":\"\"}", "no version number provided"},
        {"{\"versions\":[1,-2]}",
         "invalid \"versions\": element 1: expected a non-negative integer, got integer"},
        {"{\"versions\":[{}]}",
         "invalid \"versions\": element 0: expected a non-negative integer, got object"},
        {"{\"versions\":{\"a\":1}}",
         "invalid \"versions\": expected an array of integers, got object"},
        {"{\"versions\":\"1,,2\"}", "invalid \"versions\": expected integers"},
        {"{\"versions\":\"1,x\"}", "invalid \"versions\": expected integers"},
        {"{\"versions\":true}", "invalid \"versions\": expected an array of integers, got true"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct rk_error err = {0};
        uint64_t *vs = NULL;
        size_t n = 0;
        json_t *b = J(ok[i].body);
        assert_int_equal(kvjson_decode_versions(b, &vs, &n, &err), 0);
        assert_int_equal(n, ok[i].n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(vs[k], ok[i].v[k]);
        free(vs);
        json_decref(b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rk_error err = {0};
        uint64_t *vs = (uint64_t *)1;
        size_t n = 99;
        json_t *b = J(bad[i].body);
        assert_int_equal(kvjson_decode_versions(b, &vs, &n, &err), -RK_EINVAL);
        assert_string_equal(err.msg, bad[i].msg);
        assert_null(vs);
        assert_int_equal(n, 0);
        json_decref(b);
    }
    /* The count limit. */
    {
        struct rk_error err = {0};
        json_t *arr = json_array(), *b;
        uint64_t *vs = NULL;
        size_t n = 0;
        for (int i = 0; i <= KVJSON_VERSIONS_MAX; i++)
            json_array_append_new(arr, json_integer(i + 1));
        b = json_pack("{s:o}", "versions", arr);
        assert_int_equal(kvjson_decode_versions(b, &vs, &n, &err), -RK_EINVAL);
        assert_non_null(strstr(err.msg, "too many versions"));
        json_array_remove(arr, 0);
        assert_int_equal(kvjson_decode_versions(b, &vs, &n, &err), 0);
        assert_int_equal(n, KVJSON_VERSIONS_MAX);
        free(vs);
        json_decref(b);
    }
}

/* ---- metadata settings and config ---- */

static void
test_meta_settings(void **state)
{
    struct rk_error err = {0};
    struct kv_meta_settings s;
    json_t *b;

    (void)state;
    b = J("{\"max_versions\":5,\"cas_required\":true,\"delete_version_after\":\"768h\","
          "\"custom_metadata\":{\"owner\":\"platform\"},\"other\":1}");
    assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), 0);
    assert_true(s.has_max_versions && s.has_cas_required && s.has_delete_version_after &&
                s.has_custom_metadata);
    assert_int_equal(s.max_versions, 5);
    assert_int_equal(s.cas_required, 1);
    assert_int_equal(s.delete_version_after, 768 * 3600);
    assert_string_equal(json_string_value(json_object_get(s.custom_metadata, "owner")), "platform");
    json_decref(b);

    /* hvac sends only delete_version_after "0s" by default. */
    b = J("{\"delete_version_after\":\"0s\"}");
    assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), 0);
    assert_false(s.has_max_versions || s.has_cas_required || s.has_custom_metadata);
    assert_true(s.has_delete_version_after);
    assert_int_equal(s.delete_version_after, 0);
    json_decref(b);

    /* Weak forms, Go's duration form, seconds as an integer, a null custom_metadata. */
    b = J("{\"max_versions\":\"3\",\"cas_required\":\"false\",\"delete_version_after\":"
          "\"1h0m30s\",\"custom_metadata\":null}");
    assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), 0);
    assert_int_equal(s.max_versions, 3);
    assert_true(s.has_cas_required);
    assert_int_equal(s.cas_required, 0);
    assert_int_equal(s.delete_version_after, 3630);
    assert_false(s.has_custom_metadata);
    json_decref(b);
    b = J("{\"delete_version_after\":3600}");
    assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), 0);
    assert_int_equal(s.delete_version_after, 3600);
    json_decref(b);
}

static void
test_meta_settings_errors(void **state)
{
    static const struct {
        const char *body, *msg;
    } bad[] = {
        {"{\"max_versions\":-1}", "invalid \"max_versions\": must be between 0 and 4294967295"},
        {"{\"max_versions\":4294967296}",
         "invalid \"max_versions\": must be between 0 and 4294967295"},
        {"{\"max_versions\":[]}", "invalid \"max_versions\": expected an integer, got array"},
        {"{\"max_versions\":\"five\"}",
         "invalid \"max_versions\": expected an integer, got string"},
        {"{\"cas_required\":\"yes\"}", "invalid \"cas_required\": expected a boolean, got string"},
        {"{\"cas_required\":1}", "invalid \"cas_required\": expected a boolean, got integer"},
        {"{\"delete_version_after\":\"soon\"}",
         "invalid \"delete_version_after\": expected a duration such as \"0s\", \"30m\" or "
         "\"768h\""},
        {"{\"delete_version_after\":-5}",
         "invalid \"delete_version_after\": expected a non-negative whole number of seconds"},
        {"{\"delete_version_after\":{}}",
         "invalid \"delete_version_after\": expected a duration string, got object"},
        {"{\"custom_metadata\":\"x\"}",
         "invalid \"custom_metadata\": expected an object of strings, got string"},
        {"{\"custom_metadata\":{\"n\":1}}",
         "invalid \"custom_metadata\": the value of \"n\" must be a string, got integer"},
        {"{\"custom_metadata\":{\"\":\"v\"}}",
         "custom_metadata: a key must be 1 to 128 bytes long"},
    };
    struct kv_meta_settings s;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rk_error err = {0};
        json_t *b = J(bad[i].body);
        memset(&s, 0x5a, sizeof(s));
        assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), -RK_EINVAL);
        assert_string_equal(err.msg, bad[i].msg);
        json_decref(b);
    }
    /* Limits of custom_metadata (Vault's). */
    {
        struct rk_error err = {0};
        json_t *cm = json_object(), *b;
        char key[200], *val;
        for (int i = 0; i < KV_CUSTOM_MAX_KEYS + 1; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            json_object_set_new(cm, key, json_string("v"));
        }
        b = json_pack("{s:o}", "custom_metadata", cm);
        assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), -RK_EINVAL);
        assert_non_null(strstr(err.msg, "the limit is 64"));
        json_decref(b);

        memset(key, 'k', sizeof(key));
        key[KV_CUSTOM_KEY_MAX + 1] = '\0';
        b = json_pack("{s:{s:s}}", "custom_metadata", key, "v");
        assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), -RK_EINVAL);
        json_decref(b);
        key[KV_CUSTOM_KEY_MAX] = '\0';
        b = json_pack("{s:{s:s}}", "custom_metadata", key, "v");
        assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), 0);
        json_decref(b);

        val = calloc(1, KV_CUSTOM_VALUE_MAX + 2);
        memset(val, 'v', KV_CUSTOM_VALUE_MAX + 1);
        b = json_pack("{s:{s:s}}", "custom_metadata", "k", val);
        assert_int_equal(kvjson_decode_meta_settings(b, &s, &err), -RK_EINVAL);
        assert_non_null(strstr(err.msg, "longer than 512"));
        json_decref(b);
        free(val);
    }
}

static void
test_config(void **state)
{
    struct rk_error err = {0};
    struct kvjson_config c = {0}, c2;
    json_t *b, *enc;
    char *text;

    (void)state;
    /* hvac's configure(): all three fields. */
    b = J("{\"max_versions\":7,\"delete_version_after\":\"1h\",\"cas_required\":true}");
    assert_int_equal(kvjson_decode_config(b, &c, &err), 0);
    assert_int_equal(c.max_versions, 7);
    assert_int_equal(c.cas_required, 1);
    assert_int_equal(c.delete_version_after, 3600);
    json_decref(b);
    /* Only the fields present change. */
    b = J("{\"max_versions\":2}");
    assert_int_equal(kvjson_decode_config(b, &c, &err), 0);
    assert_int_equal(c.max_versions, 2);
    assert_int_equal(c.cas_required, 1);
    assert_int_equal(c.delete_version_after, 3600);
    json_decref(b);
    /* An error leaves the config unchanged. */
    b = J("{\"max_versions\":3,\"cas_required\":[]}");
    assert_int_equal(kvjson_decode_config(b, &c, &err), -RK_EINVAL);
    assert_int_equal(c.max_versions, 2);
    json_decref(b);

    enc = kvjson_config_encode(&c);
    assert_json(enc, "{\"cas_required\":true,\"delete_version_after\":\"1h0m0s\","
                     "\"max_versions\":2}");
    json_decref(enc);

    /* The stored form round-trips; bad stored forms are corrupt. */
    text = kvjson_config_dump(&c);
    assert_non_null(text);
    memset(&c2, 0, sizeof(c2));
    assert_int_equal(kvjson_config_load(text, strlen(text), &c2, &err), 0);
    assert_memory_equal(&c, &c2, sizeof(c));
    free(text);
    assert_int_equal(kvjson_config_load("{", 1, &c2, &err), -RK_ECORRUPT);
    text = "{\"max_versions\":1,\"cas_required\":false}";
    assert_int_equal(kvjson_config_load(text, strlen(text), &c2, &err), -RK_ECORRUPT);
    text = "{\"max_versions\":-1,\"cas_required\":false,\"delete_version_after\":0}";
    assert_int_equal(kvjson_config_load(text, strlen(text), &c2, &err), -RK_ECORRUPT);
}

/* ---- rekey bodies and the version query ---- */

static void
test_rotate_bodies(void **state)
{
    struct rk_error err = {0};
    const char *reason = (const char *)1;
    uint64_t to = 99;
    int dry = 5;
    json_t *b;
    char *big;

    (void)state;
    b = J("{}");
    assert_int_equal(kvjson_decode_rotate(b, &reason, &dry, &err), 0);
    assert_null(reason);
    assert_int_equal(dry, 0);
    assert_int_equal(kvjson_decode_rollback(b, &to, &reason, &dry, &err), 0);
    assert_int_equal(to, 0);
    json_decref(b);

    b = J("{\"reason\":\"leaked\",\"dry_run\":true,\"to_version\":\"3\"}");
    assert_int_equal(kvjson_decode_rotate(b, &reason, &dry, &err), 0);
    assert_string_equal(reason, "leaked");
    assert_int_equal(dry, 1);
    dry = 0;
    assert_int_equal(kvjson_decode_rollback(b, &to, &reason, &dry, &err), 0);
    assert_int_equal(to, 3);
    assert_int_equal(dry, 1);
    json_decref(b);

    b = J("{\"dry_run\":\"maybe\"}");
    assert_int_equal(kvjson_decode_rotate(b, &reason, &dry, &err), -RK_EINVAL);
    assert_string_equal(err.msg, "invalid \"dry_run\": expected a boolean, got string");
    json_decref(b);
    b = J("{\"reason\":5}");
    assert_int_equal(kvjson_decode_rotate(b, &reason, &dry, &err), -RK_EINVAL);
    assert_string_equal(err.msg, "invalid \"reason\": expected a string, got integer");
    json_decref(b);
    b = J("{\"to_version\":-1}");
    assert_int_equal(kvjson_decode_rollback(b, &to, &reason, &dry, &err), -RK_EINVAL);
    json_decref(b);
    big = calloc(1, KV_REASON_MAX + 1);
    memset(big, 'r', KV_REASON_MAX);
    b = json_pack("{s:s}", "reason", big);
    assert_int_equal(kvjson_decode_rotate(b, &reason, &dry, &err), -RK_EINVAL);
    json_decref(b);
    big[KV_REASON_MAX - 1] = '\0';
    b = json_pack("{s:s}", "reason", big);
    assert_int_equal(kvjson_decode_rotate(b, &reason, &dry, &err), 0);
    json_decref(b);
    free(big);
}

static void
test_version_query(void **state)
{
    struct rk_error err = {0};
    uint64_t v = 7;

    (void)state;
    assert_int_equal(kvjson_parse_version_query(NULL, &v, &err), 0);
    assert_int_equal(v, 0);
    assert_int_equal(kvjson_parse_version_query("", &v, &err), 0);
    assert_int_equal(kvjson_parse_version_query("12", &v, &err), 0);
    assert_int_equal(v, 12);
    assert_int_equal(kvjson_parse_version_query("-1", &v, &err), -RK_EINVAL);
    assert_int_equal(kvjson_parse_version_query("1x", &v, &err), -RK_EINVAL);
    assert_int_equal(kvjson_parse_version_query("99999999999999999999", &v, &err), -RK_EINVAL);
}

/* ---- encoders ---- */

static void
test_duration_go(void **state)
{
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {0, "0s"},          {45, "45s"},
        {60, "1m0s"},       {90, "1m30s"},
        {3600, "1h0m0s"},   {3661, "1h1m1s"},
        {86400, "24h0m0s"}, {2764800, "768h0m0s"},
        {-5, "-5s"},        {INT64_MIN, "-2562047788015215h30m8s"},
    };
    char buf[48];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kvjson_duration_go(cases[i].s, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
    }
    /* What it prints parses back. */
    {
        struct rk_error err = {0};
        int64_t back;
        json_t *s;
        kvjson_duration_go(2764861, buf, sizeof(buf));
        s = json_string(buf);
        assert_int_equal(kvjson_duration_value(s, "d", &back, &err), 0);
        assert_int_equal(back, 2764861);
        json_decref(s);
    }
}

static void
test_envelope(void **state)
{
    json_t *e = api_envelope(json_pack("{s:i}", "x", 1), NULL), *n;
    const char *id;

    (void)state;
    assert_non_null(e);
    assert_str(e, "lease_id", "");
    assert_true(json_is_false(json_object_get(e, "renewable")));
    assert_int_equal(json_integer_value(json_object_get(e, "lease_duration")), 0);
    assert_true(json_is_null(json_object_get(e, "wrap_info")));
    assert_true(json_is_null(json_object_get(e, "warnings")));
    assert_true(json_is_null(json_object_get(e, "auth")));
    assert_json(json_object_get(e, "data"), "{\"x\":1}");
    id = json_string_value(json_object_get(e, "request_id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[8], '-');
    assert_int_equal(id[14], '4');
    n = api_envelope(NULL, NULL);
    assert_true(json_is_null(json_object_get(n, "data")));
    /* A fresh id each time. */
    assert_string_not_equal(id, json_string_value(json_object_get(n, "request_id")));
    json_decref(n);
    json_decref(e);
}

static void
test_version_meta(void **state)
{
    struct kv_version_meta vm;
    json_t *j, *cm = J("{\"owner\":\"ops\"}"), *empty = json_object();

    (void)state;
    memset(&vm, 0, sizeof(vm));
    vm.version = 4;
    assert_int_equal(time_parse_rfc3339("2026-11-27T04:05:06.5Z", &vm.created_us), 0);
    j = kvjson_version_meta(&vm, empty);
    assert_json(j, "{\"created_time\":\"2026-11-27T04:05:06.500000Z\",\"custom_metadata\":null,"
                   "\"deletion_time\":\"\",\"destroyed\":false,\"version\":4}");
    json_decref(j);
    assert_int_equal(time_parse_rfc3339("2026-11-28T00:00:00Z", &vm.deletion_us), 0);
    vm.destroyed = 1;
    j = kvjson_version_meta(&vm, cm);
    assert_str(j, "deletion_time", "2026-11-28T00:00:00Z");
    assert_true(json_is_true(json_object_get(j, "destroyed")));
    assert_json(json_object_get(j, "custom_metadata"), "{\"owner\":\"ops\"}");
    json_decref(j);
    j = kvjson_version_meta(&vm, NULL);
    assert_true(json_is_null(json_object_get(j, "custom_metadata")));
    json_decref(j);
    json_decref(cm);
    json_decref(empty);
}

static void
test_metadata(void **state)
{
    static const char stored[] =
        "{\"format\":1,\"created_time\":\"2026-11-27T04:05:06Z\",\"updated_time\":"
        "\"2026-11-27T04:05:07Z\",\"current_version\":2,\"latest_version\":3,\"oldest_version\":"
        "1,\"max_versions\":0,\"cas_required\":true,\"delete_version_after\":3600,"
        "\"custom_metadata\":{\"owner\":\"platform\"},\"versions\":[{\"version\":1,"
        "\"created_time\":\"2026-11-27T04:05:06Z\",\"deletion_time\":\"\",\"destroyed\":true,"
        "\"stage\":\"previous\",\"author\":\"me\",\"reason\":\"\",\"fingerprint\":"
        "\"sha256:000000000000\"},{\"version\":2,\"created_time\":\"2026-11-27T04:05:06Z\","
        "\"deletion_time\":\"2026-11-27T04:06:06Z\",\"destroyed\":false,\"stage\":\"current\","
        "\"author\":\"rotation\",\"reason\":\"scheduled\",\"fingerprint\":"
        "\"sha256:0123456789ab\"},{\"version\":3,\"created_time\":\"2026-11-27T04:05:07Z\","
        "\"deletion_time\":\"\",\"destroyed\":false,\"stage\":\"pending\",\"author\":\"\","
        "\"reason\":\"\",\"fingerprint\":\"sha256:0123456789ab\"}]}";
    struct rk_error err = {0};
    struct kv_meta *m = NULL;
    json_t *j;

    (void)state;
    assert_int_equal(kv_meta_decode(stored, strlen(stored), &m, &err), 0);
    j = kvjson_metadata(m);
    assert_json(j,
                "{\"cas_required\":true,\"created_time\":\"2026-11-27T04:05:06Z\","
                "\"current_version\":3,\"current_stage_version\":2,"
                "\"custom_metadata\":{\"owner\":\"platform\"},\"delete_version_after\":\"1h0m0s\","
                "\"max_versions\":0,\"oldest_version\":1,\"updated_time\":\"2026-11-27T04:05:07Z\","
                "\"versions\":{"
                "\"1\":{\"created_time\":\"2026-11-27T04:05:06Z\",\"deletion_time\":\"\","
                "\"destroyed\":true,\"stage\":\"previous\",\"fingerprint\":\"\",\"author\":\"me\","
                "\"reason\":\"\"},"
                "\"2\":{\"created_time\":\"2026-11-27T04:05:06Z\",\"deletion_time\":"
                "\"2026-11-27T04:06:06Z\",\"destroyed\":false,\"stage\":\"current\","
                "\"fingerprint\":\"sha256:0123456789ab\",\"author\":\"rotation\",\"reason\":"
                "\"scheduled\"},"
                "\"3\":{\"created_time\":\"2026-11-27T04:05:07Z\",\"deletion_time\":\"\","
                "\"destroyed\":false,\"stage\":\"pending\",\"fingerprint\":\"sha256:0123456789ab\","
                "\"author\":\"\",\"reason\":\"\"}}}");
    json_decref(j);
    kv_meta_free(m);

    /* An empty record: custom_metadata null, versions {}. */
    m = kv_meta_new();
    j = kvjson_metadata(m);
    assert_true(json_is_null(json_object_get(j, "custom_metadata")));
    assert_int_equal(json_object_size(json_object_get(j, "versions")), 0);
    assert_str(j, "delete_version_after", "0s");
    json_decref(j);
    kv_meta_free(m);
}

static void
test_keys(void **state)
{
    char *names[] = {"a", "b/", NULL};
    char *none[] = {NULL};
    json_t *j;

    (void)state;
    j = kvjson_keys(names);
    assert_json(j, "{\"keys\":[\"a\",\"b/\"]}");
    json_decref(j);
    j = kvjson_keys(none);
    assert_json(j, "{\"keys\":[]}");
    json_decref(j);
}

static void
test_engine_shapes(void **state)
{
    struct inv_secret sec;
    struct secret_status st;
    struct rot_event ev;
    struct rotate_result res;
    json_t *j;

    (void)state;
    memset(&sec, 0, sizeof(sec));
    sec.path = "secret/ai-gateway/litellm/master-key";
    sec.kind = "generated";
    sec.auto_rotate = 1;
    memset(&st, 0, sizeof(st));
    st.secret = &sec;
    st.state = STATE_OK;
    j = kvjson_status(&st);
    assert_json(j, "{\"path\":\"secret/ai-gateway/litellm/master-key\",\"kind\":\"generated\","
                   "\"version\":0,\"fingerprint\":null,\"last_rotated\":null,\"next_due\":null,"
                   "\"expires_at\":null,\"state\":\"ok\",\"auto\":true,\"detail\":\"\","
                   "\"source\":\"config\",\"needs_input\":false}");
    json_decref(j);
    st.version = 2;
    snprintf(st.fingerprint, sizeof(st.fingerprint), "hmac:0123456789ab");
    st.last_rotated = 1795752306;
    st.next_due = 1795752306 + 30 * 86400;
    st.state = STATE_ACTION_REQUIRED;
    snprintf(st.detail, sizeof(st.detail), "retire the old key");
    j = kvjson_status(&st);
    assert_str(j, "state", "action-required");
    assert_str(j, "fingerprint", "hmac:0123456789ab");
    assert_str(j, "last_rotated", "2026-11-27T04:05:06Z");
    assert_str(j, "next_due", "2026-12-27T04:05:06Z");
    json_decref(j);
    /* A kind's status op may say when the value expires; a store entry says so. */
    st.expires_at = 1795752306 + 40 * 86400;
    st.in_store = 1;
    j = kvjson_status(&st);
    assert_str(j, "expires_at", "2027-01-06T04:05:06Z");
    assert_str(j, "source", "store");
    json_decref(j);

    /* Event strings are bounded even without a NUL. */
    memset(&ev, 0, sizeof(ev));
    ev.time_us = 1795752306000000;
    memcpy(ev.op, "rotate", 6);
    memset(ev.result, 'x', sizeof(ev.result));
    ev.from_version = 1;
    ev.to_version = 2;
    ev.duration_ms = 12;
    j = kvjson_event(&ev);
    assert_str(j, "time", "2026-11-27T04:05:06Z");
    assert_str(j, "op", "rotate");
    assert_int_equal(strlen(json_string_value(json_object_get(j, "result"))), sizeof(ev.result));
    assert_int_equal(json_integer_value(json_object_get(j, "to_version")), 2);
    json_decref(j);

    memset(&res, 0, sizeof(res));
    res.old_version = 1;
    res.new_version = 2;
    snprintf(res.new_fp, sizeof(res.new_fp), "hmac:aaaaaaaaaaaa");
    snprintf(res.message, sizeof(res.message), "rotated");
    j = kvjson_rotate_result("secret/x", &res);
    assert_json(j, "{\"path\":\"secret/x\",\"old_version\":1,\"new_version\":2,"
                   "\"old_fingerprint\":\"\",\"new_fingerprint\":\"hmac:aaaaaaaaaaaa\","
                   "\"rolled_back\":false,\"message\":\"rotated\"}");
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_ok),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_data_text_roundtrip),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_meta_settings),
        cmocka_unit_test(test_meta_settings_errors),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_rotate_bodies),
        cmocka_unit_test(test_version_query),
        cmocka_unit_test(test_duration_go),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_version_meta),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_engine_shapes),
    };

    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
