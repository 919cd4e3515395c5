/* libFuzzer target for hook templates, the fields-JSON reader behind {{new.FIELD}}, and the
 * masking of secrets in hook output. Input: template, then optionally NUL and a JSON text used
 * as the fields of the new version. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hooks/hook.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct hook_def h = {.name = (char *)"fuzz", .type = HOOK_EXEC};
    const uint8_t *nul = memchr(data, '\0', size);
    size_t tlen = nul != NULL ? (size_t)(nul - data) : size;
    struct secret *fields = NULL, *nv = secret_from_str("sk-new-value"), *out = NULL;
    struct hook_ctx ctx = {0};
    char *tpl = malloc(tlen + 1), *pub = NULL;
    int checked, r;

    log_set_level(LOG_ERROR);
    if (tpl == NULL || nv == NULL)
        goto out;
    memcpy(tpl, data, tlen);
    tpl[tlen] = '\0';
    if (nul != NULL)
        fields = secret_from(nul + 1, size - tlen - 1);
    ctx.path = "secret/fuzz";
    ctx.version = 7;
    ctx.new_value = nv;
    ctx.old_value = nv;
    ctx.new_fields_json = fields;
    ctx.old_fields_json = fields;

    checked = hook_template_check(tpl, NULL);
    r = hook_template_render(tpl, &ctx, &out, NULL);
    if (checked != 0 && r == 0)
        __builtin_trap(); /* render accepted what check refused */
    if (r == 0 && (out == NULL || out->data[out->len] != '\0'))
        __builtin_trap();
    /* A well-formed template without secret placeholders always renders in public. */
    r = hook_template_render_public(tpl, &ctx, &pub, NULL);
    if (checked == 0 && !hook_template_has_secret(tpl) && r != 0)
        __builtin_trap();
    if (r == 0 && hook_template_has_secret(tpl))
        __builtin_trap();

    /* Masking over arbitrary output, with arbitrary fields as extra masks. */
    hook_log_output(&h, "stdout", data, size, (int)(size & 1), &ctx);
out:
    secret_free(out);
    secret_free(fields);
    secret_free(nv);
    free(pub);
    free(tpl);
    return 0;
}
