/* rekey recover: finishes or undoes interrupted rotations now and says what it did. */
#include <stdio.h>

#include "cli.h"
#include "engine/rotation.h"
#include "util/timeutil.h"

static void
report(void *arg, const char *path, const char *what, const char *msg)
{
    (void)arg;
    printf("%s: %s: %s\n", path, what, msg);
}

static int
exec_recover(struct cli_ctx *ctx, int argc, char **argv)
{
    struct engine *e = NULL;
    size_t n = 0;
    int r;

    (void)argc;
    (void)argv;
    if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    r = engine_recover(e, time_now(), report, NULL, &n, &ctx->err);
    engine_free(e);
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
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE,
    .exec = exec_recover,
};
