/* barrier-json.c: JSON object records behind the barrier (barrier-json.h). */
#include "store/barrier-json.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

int
barrier_get_json(struct barrier *br, const char *key, json_t **out, struct rk_error *err)
{
    struct secret *v = NULL;
    int r;

    *out = NULL;
    if ((r = barrier_get(br, key, &v, NULL, err)) != 0)
        return r;
    *out = json_loadb((const char *)v->data, v->len, 0, NULL);
    secret_free(v);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return rk_error_set(err, RK_ECORRUPT, "the record %s does not parse", key);
    }
    return 0;
}

int
barrier_put_json(struct barrier *br, const char *key, const json_t *j, struct rk_error *err)
{
    char *text = json_dumps(j, JSON_COMPACT);
    int r;

    if (text == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r = barrier_put(br, key, text, strlen(text), err);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    return r;
}
