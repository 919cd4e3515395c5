/* format-fuzzer: the generated-value format parser (src/rotators/generated.c) on arbitrary
 * formats. check and create must agree: a format check accepts must generate a value (the same
 * length twice, no NUL, at least 8 bytes since 64 random bits need that many characters);
 * a format check refuses must be refused by create too, with a message and no value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rotators/fields.h"
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
    struct rot_fields fa, fb;
    const struct secret *a = NULL, *b = NULL;
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
    rot_fields_init(&fa);
    rot_fields_init(&fb);
    ra = ops->create(&c, &fa, &err);
    if (ra != rc)
        abort();
    if (ra != 0) {
        if (fa.n != 0 || err.msg[0] == '\0')
            abort();
    } else {
        /* One field: the generated value. */
        if (fa.n != 1 || (a = fa.v[0].value) == NULL || a->len < 8 || a->data[a->len] != '\0' ||
            memchr(a->data, '\0', a->len) != NULL)
            abort();
        /* Literal text is copied: the value starts with the format's literal prefix. */
        size_t lit = strcspn(f, "{}");
        if (memcmp(a->data, f, lit) != 0)
            abort();
        if (ops->create(&c, &fb, &err) != 0 || fb.n != 1 || (b = fb.v[0].value) == NULL ||
            b->len != a->len)
            abort();
    }
    rot_fields_clear(&fa);
    rot_fields_clear(&fb);
    free(f);
    return 0;
}
