/* path-fuzzer: path_validate against an independent statement of the rules in parse.h. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
oracle(const uint8_t *p, size_t len)
{
    size_t seg_start = 0;

    if (len < 1 || len > PATH_MAX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        size_t n = i - seg_start;
        if (n == 0)
            return 0; /* empty segment, or a leading or trailing '/' */
        if (n == 1 && p[seg_start] == '.')
            return 0;
        if (n == 2 && p[seg_start] == '.' && p[seg_start + 1] == '.')
            return 0;
        seg_start = i + 1;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_error err = {0};
    int r = path_validate((const char *)data, size, &err);

    if ((r == 0) != oracle(data, size))
        abort();
    if (r != 0 && (r != -RK_EINVAL || err.msg[0] == '\0'))
        abort();
    return 0;
}
