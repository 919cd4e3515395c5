/* config-fuzzer: inventory_load_string on arbitrary bytes. A load either fails with a message
 * or yields an inventory whose every secret is found by its path and which lints cleanly. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/inventory.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
ignore(void *arg, const char *severity, const char *where, const char *msg)
{
    (void)arg;
    (void)severity;
    (void)where;
    (void)msg;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct inventory *inv = NULL;
    struct rk_error err = {0};
    int r;

    if (size > 256 * 1024)
        return 0;
    r = inventory_load_string("fuzz.yaml", (const char *)data, size, &inv, &err);
    if (r != 0) {
        if (inv != NULL || err.msg[0] == '\0' || memchr(err.msg, '\0', sizeof(err.msg)) == NULL)
            abort();
        return 0;
    }
    for (size_t i = 0; i < inv->nsecrets; i++) {
        const struct inv_secret *s = &inv->secrets[i];
        if (inventory_find(inv, s->path) != s || s->field == NULL || s->kind == NULL)
            abort();
        for (size_t k = 0; k < s->nreload; k++)
            if (s->reload[k] < inv->hooks || s->reload[k] >= inv->hooks + inv->nhooks)
                abort();
    }
    inventory_lint(inv, ignore, NULL);
    inventory_free(inv);
    return 0;
}
