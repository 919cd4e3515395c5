/* rekey recover: finishes or undoes interrupted rotations now and says what it did. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/rotation.h"
#include "util/timeutil.h"

static void
report(void *arg, const char *path, const char *what, const char *msg)
{
    (void)arg;
    printf("%s: %s: %s\n", cli_esc(path), cli_esc(what), cli_esc(msg));
}

/* Client mode: POST /v1/rekey/recover; its actions are reported as the local ones. */
static int
remote_recover(struct cli_ctx *ctx, size_t *n)
{
    json_t *data = NULL, *a;
    size_t i;
    int r;

    r = client_rekey_post(ctx->remote, "recover", NULL, NULL, &data, &ctx->err);
    json_array_foreach(json_object_get(data, "actions"), i, a)
    {
        const char *p = json_string_value(json_object_get(a, "path"));
        const char *w = json_string_value(json_object_get(a, "what"));
        const char *m = json_string_value(json_object_get(a, "message"));
        report(NULL, p ? p : "", w ? w : "", m ? m : "");
    }
    *n = (size_t)json_integer_value(json_object_get(data, "count"));
    json_decref(data);
    return r;
}

static int
exec_recover(struct cli_ctx *ctx, int argc, char **argv)
{
    struct engine *e = NULL;
    size_t n = 0;
    int r;

    (void)argc;
    (void)argv;
    if (ctx->remote != NULL) {
        r = remote_recover(ctx, &n);
    } else {
        if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        r = engine_recover(e, time_now(), report, NULL, &n, &ctx->err);
        engine_free(e);
    }
    if (n == 0 && r == 0)
        printf("nothing to recover\n");
    if (r != 0)
        return cli_fail(ctx, r);
    return CLI_OK;
}

const struct cli_cmd cmd_recover = {
    .name = "recover",
    .args = "",
    .summary = "finish or undo interrupted rotations now; retire values whose grace passed",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .exec = exec_recover,
};
