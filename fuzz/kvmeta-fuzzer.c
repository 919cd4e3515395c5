/* libFuzzer target: the binary KV metadata decoder (kv_meta_decode_bin). An accepted input must
 * be canonical (encoding the result reproduces it byte for byte), pass kv_meta_validate, and
 * survive the JSON codec: JSON encode, JSON decode, binary encode gives the input again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/kv.h"
#include "secrets/kvmeta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_error err = {0};
    struct kv_meta *m = NULL, *j = NULL;
    unsigned char *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0, jl = 0;
    char *js = NULL;
    int r;

    r = kv_meta_decode_bin(data, size, &m, &err);
    if (r != 0) {
        if (m != NULL || (r != -RK_ECORRUPT && r != -RK_EVERSION))
            abort();
        return 0;
    }
    if (kv_meta_validate(m, &err) != 0)
        abort();
    if (kv_meta_encode_bin(m, &b1, &l1, &err) != 0 || l1 != size || memcmp(b1, data, size) != 0)
        abort();
    if (kv_meta_encode(m, &js, &jl, &err) != 0)
        abort();
    /* A huge record can exceed KV_META_MAX as JSON (never within libFuzzer's input sizes). */
    if (jl <= KV_META_MAX) {
        if (kv_meta_decode(js, jl, &j, &err) != 0)
            abort();
        if (kv_meta_encode_bin(j, &b2, &l2, &err) != 0 || l2 != size || memcmp(b2, data, size) != 0)
            abort();
    }
    kv_meta_free(m);
    kv_meta_free(j);
    free(b1);
    free(b2);
    free(js);
    return 0;
}
