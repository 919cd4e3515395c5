/* libFuzzer target: the KV and rekey request-body decoders of src/api/kvjson.c, on any JSON the
 * HTTP layer would accept (an object), and the encoders on what they decode. Checks that a
 * decoder either succeeds with values in range or fails with -RK_EINVAL and a message, and that
 * data serialised for the store parses back to the same object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/kvjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_fail(int r, const struct rk_error *err)
{
    if (r != -RK_EINVAL || err->msg[0] == '\0')
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_error err = {0};
    struct kvjson_write w;
    struct kv_meta_settings s;
    struct kvjson_config cfg = {0}, back;
    const char *reason;
    uint64_t *vs = NULL, to;
    size_t n = 0;
    json_t *body, *j;
    int dry, r;

    body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (body == NULL)
        return 0;

    r = kvjson_decode_write(body, &w, &err);
    if (r == 0) {
        struct secret *text = NULL;
        json_t *again = NULL;
        if (!json_is_object(w.data) || w.cas < -1)
            abort();
        if (kvjson_data_text(w.data, &text, &err) == 0) {
            if (kvjson_data_parse(text, &again, &err) != 0 || !json_equal(again, w.data))
                abort();
            json_decref(again);
            secret_free(text);
        }
    } else {
        check_fail(r, &err);
    }

    r = kvjson_decode_versions(body, &vs, &n, &err);
    if (r == 0) {
        if (vs == NULL || n == 0 || n > KVJSON_VERSIONS_MAX)
            abort();
        free(vs);
    } else if (r != -RK_ENOMEM) {
        check_fail(r, &err);
    }

    r = kvjson_decode_meta_settings(body, &s, &err);
    if (r == 0) {
        if (s.has_custom_metadata && !json_is_object(s.custom_metadata))
            abort();
        if (s.has_delete_version_after && s.delete_version_after < 0)
            abort();
    } else {
        check_fail(r, &err);
    }

    r = kvjson_decode_config(body, &cfg, &err);
    if (r == 0) {
        char *text = kvjson_config_dump(&cfg);
        memset(&back, 0, sizeof(back));
        if (text == NULL || kvjson_config_load(text, strlen(text), &back, &err) != 0 ||
            memcmp(&back, &cfg, sizeof(cfg)) != 0)
            abort();
        free(text);
        j = kvjson_config_encode(&cfg);
        json_decref(j);
    } else {
        check_fail(r, &err);
    }
    /* The stored-config loader on arbitrary bytes. */
    (void)kvjson_config_load((const char *)data, size, &back, &err);

    r = kvjson_decode_rotate(body, &reason, &dry, &err);
    if (r != 0)
        check_fail(r, &err);
    r = kvjson_decode_rollback(body, &to, &reason, &dry, &err);
    if (r != 0)
        check_fail(r, &err);

    json_decref(body);
    return 0;
}
