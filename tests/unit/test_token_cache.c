/* Unit tests for the server's read-path caches and fast encoders: the validated-token cache of
 * src/api/token.c (hits, flush on revoke, no caching of use-limited tokens, the TTL bound, token
 * expiry, many threads at once) and kvjson_read_response (the same JSON as the value-by-value
 * encoders). Runs on a real SQLite store behind an unsealed barrier in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/envelope.h"
#include "api/kvjson.h"
#include "api/token.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#include "token_fixture.h"

static int
setup(void **state)
{
    struct token_fx *fx = token_fx_open("tcache");

    /* A long TTL unless a test says otherwise: hits must not depend on timing. */
    assert_int_equal(token_cache_new(64, 60000, &fx->c), 0);
    *state = fx;
    return 0;
}

static struct secret *
mk(struct token_fx *fx, int64_t ttl, int64_t uses, const char *parent, struct token_info *ti)
{
    const char *pols[2] = {"team-a", "team-b"};
    struct token_create_opts o = {
        .policies = pols,
        .npolicies = 2,
        .ttl = ttl,
        .num_uses = uses,
        .renewable = 1,
        .parent_hash = parent,
        .meta_json = "{\"team\":\"a\"}",
    };

    return token_fx_create(fx, &o, ti);
}

static void
lookup_ok(struct token_fx *fx, const struct secret *tok, struct token_info *ti)
{
    struct rk_error err = {0};
    int r = token_lookup_cached(fx->c, fx->br, (const char *)tok->data, ti, &err);

    if (r != 0)
        fail_msg("token_lookup_cached: %d %s", r, err.msg);
}

static void
test_hit_copies_record(void **state)
{
    struct token_fx *fx = *state;
    struct token_info made = {0}, a = {0}, b = {0};
    uint64_t hits, misses;
    struct secret *tok = mk(fx, 3600, 0, NULL, &made);

    lookup_ok(fx, tok, &a);
    lookup_ok(fx, tok, &b);
    token_cache_stats(fx->c, &hits, &misses);
    assert_int_equal(misses, 1);
    assert_int_equal(hits, 1);
    /* The hit is a full, independent copy of the record. */
    assert_string_equal(b.hash, made.hash);
    assert_string_equal(b.accessor, made.accessor);
    assert_int_equal(b.npolicies, 3);
    assert_string_equal(b.policies[0], "default");
    assert_string_equal(b.policies[2], "team-b");
    assert_string_equal(b.meta_json, "{\"team\":\"a\"}");
    assert_int_equal(b.expire_time, made.expire_time);
    assert_true(b.policies != a.policies && b.policies[0] != a.policies[0]);
    token_info_clear(&a);
    lookup_ok(fx, tok, &a); /* b is still valid after a was cleared */
    assert_string_equal(b.policies[1], "team-a");
    token_info_clear(&a);
    token_info_clear(&b);
    token_info_clear(&made);
    secret_free(tok);
}

static void
test_unknown_and_malformed(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0};
    struct rk_error err = {0};
    char big[TOKEN_MAX_LEN + 2];

    assert_int_equal(token_lookup_cached(fx->c, fx->br, "hvs.nope", &ti, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup_cached(fx->c, fx->br, "", &ti, &err), -RK_EINVAL);
    assert_int_equal(token_lookup_cached(fx->c, fx->br, NULL, &ti, &err), -RK_EINVAL);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(token_lookup_cached(fx->c, fx->br, big, &ti, &err), -RK_EINVAL);
    /* Unknown tokens are never cached: a second try reads the store again. */
    assert_int_equal(token_lookup_cached(fx->c, fx->br, "hvs.nope", &ti, &err), -RK_ENOTFOUND);
    /* A NULL cache is plain token_lookup. */
    assert_int_equal(token_lookup_cached(NULL, fx->br, "hvs.nope", &ti, &err), -RK_ENOTFOUND);
}

static void
test_revoke_then_flush(void **state)
{
    struct token_fx *fx = *state;
    struct token_info p = {0}, c = {0}, ti = {0};
    struct rk_error err = {0};
    struct secret *tp = mk(fx, 0, 0, NULL, &p);
    struct secret *tc = mk(fx, 0, 0, p.hash, &c);

    lookup_ok(fx, tp, &ti);
    token_info_clear(&ti);
    lookup_ok(fx, tc, &ti);
    token_info_clear(&ti);
    assert_int_equal(token_revoke_hash(fx->br, p.hash, NULL, &err), 0);
    /* Without the flush the cache still answers (that is what the TTL bounds)... */
    lookup_ok(fx, tc, &ti);
    token_info_clear(&ti);
    /* ...after it, parent and child are gone at once. */
    token_cache_flush(fx->c);
    assert_int_equal(token_lookup_cached(fx->c, fx->br, (char *)tp->data, &ti, &err),
                     -RK_ENOTFOUND);
    assert_int_equal(token_lookup_cached(fx->c, fx->br, (char *)tc->data, &ti, &err),
                     -RK_ENOTFOUND);
    token_info_clear(&p);
    token_info_clear(&c);
    secret_free(tp);
    secret_free(tc);
}

static void
test_limited_tokens_not_cached(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0};
    struct rk_error err = {0};
    uint64_t hits, misses;
    struct secret *tok = mk(fx, 0, 2, NULL, NULL);

    lookup_ok(fx, tok, &ti);
    assert_int_equal(ti.num_uses, 2);
    token_info_clear(&ti);
    lookup_ok(fx, tok, &ti);
    token_info_clear(&ti);
    token_cache_stats(fx->c, &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 2);
    /* Every use reaches the store: the count the cache answers follows it. */
    assert_int_equal(token_use(fx->br, (char *)tok->data, &ti, &err), 0);
    token_info_clear(&ti);
    lookup_ok(fx, tok, &ti);
    assert_int_equal(ti.num_uses, 1);
    token_info_clear(&ti);
    assert_int_equal(token_use(fx->br, (char *)tok->data, &ti, &err), 0);
    token_info_clear(&ti);
    assert_int_equal(token_lookup_cached(fx->c, fx->br, (char *)tok->data, &ti, &err),
                     -RK_ENOTFOUND);
    secret_free(tok);
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
test_ttl_bounds_staleness(void **state)
{
    struct token_fx *fx = *state;
    struct token_info made = {0}, ti = {0};
    struct rk_error err = {0};
    struct token_cache *c = NULL;
    struct secret *tok = mk(fx, 0, 0, NULL, &made);

    assert_int_equal(token_cache_new(0, 150, &c), 0);
    assert_int_equal(token_lookup_cached(c, fx->br, (char *)tok->data, &ti, &err), 0);
    token_info_clear(&ti);
    /* Revoked by "another process" (no flush here): served until the TTL runs out. */
    assert_int_equal(token_revoke_hash(fx->br, made.hash, NULL, &err), 0);
    assert_int_equal(token_lookup_cached(c, fx->br, (char *)tok->data, &ti, &err), 0);
    token_info_clear(&ti);
    sleep_ms(250);
    assert_int_equal(token_lookup_cached(c, fx->br, (char *)tok->data, &ti, &err), -RK_ENOTFOUND);
    token_cache_free(c);
    token_info_clear(&made);
    secret_free(tok);
}

static void
test_token_expiry_not_served(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0};
    struct rk_error err = {0};
    size_t n = 0;
    struct secret *tok = mk(fx, 1, 0, NULL, NULL);

    lookup_ok(fx, tok, &ti);
    token_info_clear(&ti);
    sleep_ms(2100); /* expire_time has whole-second resolution */
    assert_int_equal(token_lookup_cached(fx->c, fx->br, (char *)tok->data, &ti, &err),
                     -RK_ENOTFOUND);
    /* ...and, as with token_lookup, the expired record was revoked lazily. */
    assert_int_equal(token_count(fx->br, &n, &err), 0);
    assert_int_equal(n, 0);
    secret_free(tok);
}

static void
test_bounded(void **state)
{
    struct token_fx *fx = *state;
    struct secret *toks[200];
    struct token_info ti = {0};
    uint64_t hits, misses;

    /* 200 tokens through a cache of 64: every lookup still answers correctly. */
    for (size_t i = 0; i < 200; i++) {
        toks[i] = mk(fx, 0, 0, NULL, NULL);
        lookup_ok(fx, toks[i], &ti);
        token_info_clear(&ti);
    }
    for (size_t i = 0; i < 200; i++) {
        lookup_ok(fx, toks[i], &ti);
        token_info_clear(&ti);
        secret_free(toks[i]);
    }
    token_cache_stats(fx->c, &hits, &misses);
    assert_true(misses >= 200 + 200 - 64 - 16); /* evictions happened (per-stripe bound) */
}

/* Looks the token up 2000 times, flushing the cache now and then; counts wrong answers. */
static void *
worker_run(void *arg)
{
    struct token_fx_worker *w = arg;
    struct token_info ti = {0};
    struct rk_error err = {0};

    for (int i = 0; i < 2000; i++) {
        if (token_lookup_cached(w->fx->c, w->fx->br, w->tok, &ti, &err) != 0 || ti.root != 0)
            w->count++;
        token_info_clear(&ti);
        if (i % 500 == 0)
            token_cache_flush(w->fx->c);
    }
    return NULL;
}

static void
test_threads(void **state)
{
    struct token_fx *fx = *state;
    struct secret *tok = mk(fx, 0, 0, NULL, NULL);
    struct token_fx_worker w[4];

    token_fx_threads(fx, tok, 4, worker_run, w);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w[i].count, 0);
    secret_free(tok);
}

/* kvjson_read_response gives the bytes the value-by-value encoders give. */
static void
check_read_response(const char *data_text, const struct kv_version_meta *vm, json_t *custom)
{
    struct secret *text = secret_from(data_text, strlen(data_text));
    json_t *got, *want, *data;
    size_t len = 0;
    char *body;

    assert_non_null(text);
    body = kvjson_read_response(text, vm, custom, &len);
    assert_non_null(body);
    assert_int_equal(strlen(body), len);
    got = json_loads(body, 0, NULL);
    assert_non_null(got);
    data = json_loads(data_text, 0, NULL);
    want = api_envelope(
        json_pack("{s:o, s:o}", "data", data, "metadata", kvjson_version_meta(vm, custom)), NULL);
    assert_non_null(want);
    /* request_id is random in each. */
    assert_int_equal(strlen(json_string_value(json_object_get(got, "request_id"))), 36);
    json_object_set_new(got, "request_id", json_string("x"));
    json_object_set_new(want, "request_id", json_string("x"));
    assert_true(json_equal(got, want));
    /* And the same bytes: key order and compact form. */
    {
        char *a = json_dumps(got, JSON_COMPACT), *b = json_dumps(want, JSON_COMPACT);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    json_decref(got);
    json_decref(want);
    freezero(body, len + 1);
    secret_free(text);
}

static void
test_read_response(void **state)
{
    struct kv_version_meta vm;
    json_t *custom = json_pack("{s:s}", "owner", "a\"b\\u00e9");

    (void)state;
    memset(&vm, 0, sizeof(vm));
    vm.version = 7;
    vm.created_us = 1700000000123456LL;
    check_read_response("{\"api_key\":\"sk-\\\"x\\\"\",\"n\":1,\"o\":{\"a\":[1,2.5,null]}}", &vm,
                        NULL);
    vm.deletion_us = 1800000000000000LL;
    vm.destroyed = 1;
    check_read_response("{}", &vm, custom);
    json_decref(custom);
    custom = json_object();
    check_read_response("{\"k\":\"\\u00e9\"}", &vm, custom); /* empty map: null */
    json_decref(custom);
    /* Not an object: refused (the caller falls back to parsing). */
    {
        struct secret *t = secret_from("[1]", 3);
        size_t len = 1;
        assert_null(kvjson_read_response(t, &vm, NULL, &len));
        assert_int_equal(len, 0);
        secret_free(t);
    }
}

/* Request ids: UUID v4 text, all different (drawn from a per-thread pool). */
static void
test_request_id(void **state)
{
    char ids[600][40];

    (void)state;
    for (size_t i = 0; i < 600; i++) {
        assert_int_equal(api_request_id(ids[i]), 0);
        assert_int_equal(strlen(ids[i]), 36);
        for (size_t k = 0; k < 36; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23)
                assert_int_equal(ids[i][k], '-');
            else
                assert_non_null(strchr("0123456789abcdef", ids[i][k]));
        }
        assert_int_equal(ids[i][14], '4');
        assert_non_null(strchr("89ab", ids[i][19]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hit_copies_record, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_malformed, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_revoke_then_flush, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_limited_tokens_not_cached, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_ttl_bounds_staleness, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_token_expiry_not_served, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, token_fx_teardown),
        cmocka_unit_test(test_read_response),
        cmocka_unit_test(test_request_id),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
