/* sysbody.c: decoders of the sys/ route request bodies (see sysbody.h). The json_unpack formats
 * are the ones the routes used inline, so what is accepted (and how a JSON null or an extra
 * member is treated) is jansson's behaviour for those formats, unchanged. */
#include "api/sysbody.h"

#include <string.h>

int
sys_init_body_decode(json_t *body, struct sys_init_body *out, struct rk_error *err)
{
    json_int_t n = 0, k = 0;

    memset(out, 0, sizeof(*out));
    if (json_unpack(body, "{s:I, s:I}", "secret_shares", &n, "secret_threshold", &k) != 0)
        return rk_error_set(err, RK_EINVAL, "secret_shares and secret_threshold are required");
    if (n < 1 || n > SYS_INIT_SHARES_MAX || k < 1 || k > SYS_INIT_SHARES_MAX)
        return rk_error_set(err, RK_ELIMIT, "secret_shares and secret_threshold must be 1..%d",
                            SYS_INIT_SHARES_MAX);
    out->secret_shares = (int)n;
    out->secret_threshold = (int)k;
    return 0;
}

int
sys_unseal_body_decode(json_t *body, struct sys_unseal_body *out, struct rk_error *err)
{
    const char *key = NULL;
    int reset = 0, migrate = 0;

    memset(out, 0, sizeof(*out));
    if (json_unpack(body, "{s?s, s?b, s?b}", "key", &key, "reset", &reset, "migrate", &migrate) !=
        0)
        return rk_error_set(err, RK_EINVAL, "'key' must be a string and 'reset' a boolean");
    if (!reset && key == NULL)
        return rk_error_set(err, RK_EINVAL,
                            "'key' must be specified in request body as JSON, or 'reset' set to "
                            "true");
    out->key = key;
    out->reset = reset;
    out->migrate = migrate;
    return 0;
}

int
sys_policy_body_decode(json_t *body, struct sys_policy_body *out, struct rk_error *err)
{
    const char *text = NULL;

    memset(out, 0, sizeof(*out));
    /* "policy" wins when it is a string; a non-string "policy" falls back to "rules". */
    if ((json_unpack(body, "{s:s}", "policy", &text) != 0 &&
         json_unpack(body, "{s:s}", "rules", &text) != 0) ||
        text[0] == '\0') /* as Vault: an empty policy is refused, not stored */
        return rk_error_set(err, RK_EINVAL, "'policy' parameter not supplied or empty");
    out->text = text;
    out->len = strlen(text);
    return 0;
}

int
sys_caps_body_decode(json_t *body, struct sys_caps_body *out, struct rk_error *err)
{
    json_t *paths = NULL;
    const char *path = NULL;

    memset(out, 0, sizeof(*out));
    if (json_unpack(body, "{s?o, s?s}", "paths", &paths, "path", &path) != 0 ||
        (paths != NULL && !json_is_array(paths) && !json_is_string(paths)) ||
        (paths == NULL && path == NULL))
        return rk_error_set(err, RK_EINVAL, "'paths' must be a list of paths");
    if (json_is_array(paths)) {
        for (size_t i = 0; i < json_array_size(paths); i++)
            if (!json_is_string(json_array_get(paths, i)))
                return rk_error_set(err, RK_EINVAL, "'paths' must be a list of strings");
    }
    out->paths = paths;
    out->path = path;
    out->npaths = json_is_array(paths) ? json_array_size(paths) : 1;
    return 0;
}

const char *
sys_caps_body_path(const struct sys_caps_body *b, size_t i)
{
    if (i >= b->npaths)
        return NULL;
    if (b->paths == NULL)
        return b->path;
    if (json_is_string(b->paths))
        return json_string_value(b->paths);
    return json_string_value(json_array_get(b->paths, i));
}
