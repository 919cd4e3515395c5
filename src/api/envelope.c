/* envelope.c: Vault's answer shapes (see envelope.h). The envelope is written in two forms, as
 * a jansson object and as text around a spliced data member; they sit side by side here and
 * tests/unit/test_status.c checks that they give the same bytes. */
#include "api/envelope.h"

#include <string.h>

#include <openssl/rand.h>

#define ID_POOL 4096 /* bytes of randomness drawn at once per thread: 256 request ids */

int
api_request_id(char out[40])
{
    static _Thread_local unsigned char pool[ID_POOL];
    static _Thread_local size_t used = ID_POOL;
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t k = 0;

    if (used + sizeof(b) > ID_POOL) {
        if (RAND_bytes(pool, sizeof(pool)) != 1) {
            out[0] = '\0';
            return -1;
        }
        used = 0;
    }
    memcpy(b, pool + used, sizeof(b));
    memset(pool + used, 0, sizeof(b)); /* each id's bytes are used once */
    used += sizeof(b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = hex[b[i] >> 4];
        out[k++] = hex[b[i] & 15];
    }
    out[k] = '\0';
    return 0;
}

json_t *
api_envelope(json_t *data, json_t *auth)
{
    char id[40];

    if (api_request_id(id) != 0) {
        json_decref(data);
        json_decref(auth);
        return NULL;
    }
    /* "o?": a NULL data or auth is JSON null; json_pack steals both, also when it fails. */
    return json_pack("{s:s, s:s, s:b, s:i, s:o?, s:n, s:n, s:o?}", "request_id", id, "lease_id", "",
                     "renewable", 0, "lease_duration", 0, "data", data, "wrap_info", "warnings",
                     "auth", auth);
}

static const char envelope_tail[] = ",\"wrap_info\":null,\"warnings\":null,\"auth\":null}";

size_t
api_envelope_head(char head[API_ENVELOPE_HEAD_MAX])
{
    static const char pre[] = "{\"request_id\":\"";
    static const char post[] = "\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,"
                               "\"data\":";
    char id[40];
    size_t idlen, n;

    /* memcpy, not snprintf: this is on every KV read (kvjson_read_response). */
    _Static_assert(sizeof(pre) - 1 + 36 + sizeof(post) <= API_ENVELOPE_HEAD_MAX, "head size");
    if (api_request_id(id) != 0)
        return 0;
    idlen = strlen(id);
    memcpy(head, pre, sizeof(pre) - 1);
    n = sizeof(pre) - 1;
    memcpy(head + n, id, idlen);
    n += idlen;
    memcpy(head + n, post, sizeof(post)); /* with its NUL */
    return n + sizeof(post) - 1;
}

const char *
api_envelope_tail(size_t *len)
{
    if (len != NULL)
        *len = sizeof(envelope_tail) - 1;
    return envelope_tail;
}

json_t *
api_errors(const char *msg, json_t *data)
{
    json_t *j;

    if (msg == NULL)
        return json_pack("{s:[], s:o*}", "errors", "data", data);
    /* json_pack refuses a string that is not UTF-8; data is stolen in either call. */
    if ((j = json_pack("{s:[s], s:O*}", "errors", msg, "data", data)) == NULL)
        j = json_pack("{s:[s], s:O*}", "errors", "error message not representable", "data", data);
    json_decref(data);
    return j;
}
