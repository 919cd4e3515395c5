/* tokenbody-fuzzer: the auth/token/create body decoder on arbitrary bytes, parsed as the server
 * parses request bodies (JSON, duplicate keys refused). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct token_create_body b;
    struct rk_error err = {0};

    if (body == NULL)
        return 0;
    if (token_create_body_decode(body, &b, &err) == 0) {
        /* Every policy name decoded is a non-empty string; durations are not negative. */
        for (size_t i = 0; i < b.npolicies; i++)
            if (b.policies[i] == NULL || b.policies[i][0] == '\0')
                __builtin_trap();
        if (b.ttl < 0 || b.explicit_max_ttl < 0 || b.period < 0 || b.num_uses < 0)
            __builtin_trap();
    }
    json_decref(body);
    return 0;
}
