/* format-fuzzer: the generated-value format parser (src/rotators/generated.c) on arbitrary
 * formats. check and create must agree: a format check accepts must generate a value (the same
 * length twice, no NUL, at least 8 bytes since 64 random bits need that many characters);
 * a format check refuses must be refused by create too, with a message and no value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rotators/rotator.h"
#include "util/err.h"
#include "util/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct rotator_ops *ops = rotator_find("generated");
    struct inv_secret s;
    struct rot_ctx c;
    struct rk_error err = {0};
    struct secret *a = NULL, *b = NULL;
    char *f;
    int rc, ra;

    if (ops == NULL || size > 4096)
        return 0;
    if ((f = malloc(size + 1)) == NULL)
        return 0;
    memcpy(f, data, size);
    f[size] = '\0'; /* formats are C strings: an embedded NUL ends the format */
    memset(&s, 0, sizeof(s));
    s.path = (char *)"secret/fuzz";
    s.kind = (char *)"generated";
    s.format = f;
    memset(&c, 0, sizeof(c));
    c.secret = &s;

    rc = ops->check(&s, &err);
    if (rc != 0 && (rc != -RK_ECONFIG || err.msg[0] == '\0'))
        abort();
    rk_error_clear(&err);
    ra = ops->create(&c, &a, &err);
    if (ra != rc)
        abort();
    if (ra != 0) {
        if (a != NULL || err.msg[0] == '\0')
            abort();
    } else {
        if (a == NULL || a->len < 8 || a->data[a->len] != '\0' ||
            memchr(a->data, '\0', a->len) != NULL)
            abort();
        /* Literal text is copied: the value starts with the format's literal prefix. */
        size_t lit = strcspn(f, "{}");
        if (memcmp(a->data, f, lit) != 0)
            abort();
        if (ops->create(&c, &b, &err) != 0 || b == NULL || b->len != a->len)
            abort();
    }
    secret_free(a);
    secret_free(b);
    free(f);
    return 0;
}
