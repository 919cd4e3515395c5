/* duration-fuzzer: duration_parse on arbitrary bytes; whatever parses must survive a round
 * trip through duration_format unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_error err = {0};
    int64_t secs = -1, again = -1;
    char buf[64];

    if (duration_parse((const char *)data, size, &secs, &err) != 0) {
        if (err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (secs < 0)
        abort();
    duration_format(secs, buf, sizeof(buf));
    if (duration_parse(buf, strlen(buf), &again, &err) != 0 || again != secs)
        abort();
    return 0;
}
