/* test_status: the one table of error code -> HTTP status (api/status.c) and the one builder of
 * Vault's answer shapes (api/envelope.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/envelope.h"
#include "api/status.h"
#include "util/err.h"

/* Every code of util/err.h has a row of its own: a code added there without one fails here
 * (it would otherwise answer 500 by accident). */
static void
test_every_code_mapped(void **state)
{
    (void)state;
    for (int c = RK_OK; c < RK_ECODE_MAX; c++) {
        if (!api_status_mapped(-c))
            fail_msg("RK code %d (%s) has no HTTP status in api/status.c", c, rk_strerror(c));
        assert_true(api_status_mapped(c));
        assert_int_equal(api_status_for(c), api_status_for(-c));
    }
    /* Outside the enum: no row, and the answer fails closed. */
    assert_false(api_status_mapped(-RK_ECODE_MAX));
    assert_int_equal(api_status_for(-RK_ECODE_MAX), 500);
    assert_int_equal(api_status_for(-1000), 500);
    assert_int_equal(api_status_for(-2147483647 - 1), 500);
}

/* The choices (Vault's where it has one; see status.h). */
static void
test_vault_choices(void **state)
{
    static const struct {
        int code;
        unsigned status;
    } want[] = {
        {RK_OK, 200},        {RK_EINVAL, 400},    {RK_EEXISTS, 400},   {RK_ECONFLICT, 400},
        {RK_EBADKEY, 400},   {RK_EPERM, 403},     {RK_ENOTFOUND, 404}, {RK_EBUSY, 409},
        {RK_ELIMIT, 413},    {RK_EINTERNAL, 500}, {RK_ENOMEM, 500},    {RK_EIO, 500},
        {RK_ECORRUPT, 500},  {RK_EVERSION, 500},  {RK_ECONFIG, 500},   {RK_ENOTIMPL, 501},
        {RK_EHOOK, 502},     {RK_EREJECTED, 502}, {RK_ESEALED, 503},   {RK_EUNAVAILABLE, 503},
        {RK_ECANCELED, 503}, {RK_ETIMEOUT, 504},  {RK_EACTION, 409},
    };

    (void)state;
    /* The list above names every code once. */
    assert_int_equal(sizeof(want) / sizeof(want[0]), RK_ECODE_MAX);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (api_status_for(-want[i].code) != want[i].status)
            fail_msg("%s: got %u, want %u", rk_strerror(want[i].code),
                     api_status_for(-want[i].code), want[i].status);
    }
}

/* The envelope as an object and as text around spliced data are the same bytes. */
static void
test_envelope_text(void **state)
{
    char head[API_ENVELOPE_HEAD_MAX], *a, *b, *data;
    const char *tail, *id;
    size_t hl, tl;
    json_t *e, *parsed;

    (void)state;
    e = api_envelope(json_pack("{s:i, s:s}", "x", 1, "y", "z"), NULL);
    assert_non_null(e);
    id = json_string_value(json_object_get(e, "request_id"));
    assert_non_null(id);
    assert_int_equal(strlen(id), 36);
    a = json_dumps(e, JSON_COMPACT);
    assert_non_null(a);

    hl = api_envelope_head(head);
    assert_true(hl > 0 && hl < sizeof(head));
    tail = api_envelope_tail(&tl);
    assert_int_equal(strlen(tail), tl);
    data = json_dumps(json_object_get(e, "data"), JSON_COMPACT);
    assert_non_null(data);
    b = malloc(hl + strlen(data) + tl + 1);
    assert_non_null(b);
    snprintf(b, hl + strlen(data) + tl + 1, "%s%s%s", head, data, tail);
    /* Same text once the (random) request ids are the same. */
    parsed = json_loads(b, 0, NULL);
    assert_non_null(parsed);
    assert_int_equal(strlen(json_string_value(json_object_get(parsed, "request_id"))), 36);
    memcpy(b + strlen("{\"request_id\":\""), id, 36);
    assert_string_equal(a, b);
    assert_string_equal(a + strlen(a) - tl, tail);

    json_decref(parsed);
    free(data);
    free(a);
    free(b);
    json_decref(e);

    /* auth and data may be NULL (JSON null); every member is there. */
    e = api_envelope(NULL, json_pack("{s:s}", "client_token", "t"));
    assert_non_null(e);
    assert_int_equal(json_object_size(e), 8);
    assert_true(json_is_null(json_object_get(e, "data")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(e, "auth"), "client_token")), "t");
    json_decref(e);
}

static void
test_errors_body(void **state)
{
    json_t *j;
    char *s;

    (void)state;
    j = api_errors(NULL, NULL);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, API_ERRORS_NONE);
    free(s);
    json_decref(j);

    j = api_errors("permission denied", NULL);
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, API_ERRORS_TEXT("permission denied"));
    free(s);
    json_decref(j);

    j = api_errors("step failed", json_pack("{s:b}", "rolled_back", 1));
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"errors\":[\"step failed\"],\"data\":{\"rolled_back\":true}}");
    free(s);
    json_decref(j);

    /* Not UTF-8: a fixed message, and data still comes along. */
    j = api_errors("bad \xff byte", json_pack("{s:i}", "n", 1));
    s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"errors\":[\"error message not representable\"],\"data\":{\"n\":1}}");
    free(s);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code_mapped),
        cmocka_unit_test(test_vault_choices),
        cmocka_unit_test(test_envelope_text),
        cmocka_unit_test(test_errors_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
