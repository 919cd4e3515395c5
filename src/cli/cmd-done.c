/* rekey done: a person confirms the action-required item of a secret (e.g. the old provider
 * key was deleted at the provider's console). */
#include <stdio.h>

#include "cli.h"
#include "client.h"
#include "engine/rotation.h"
#include "kvfmt.h"

static int
exec_done(struct cli_ctx *ctx, int argc, char **argv)
{
    struct engine *e = NULL;
    int r;

    (void)argc;
    if (ctx->remote != NULL) {
        /* POST /v1/rekey/done/P; the server records the token's name as who confirmed. */
        r = client_rekey_post(ctx->remote, "done", argv[0], NULL, NULL, &ctx->err);
    } else {
        if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        r = engine_done(e, argv[0], kvfmt_author(), &ctx->err);
        engine_free(e);
    }
    if (r != 0)
        return cli_fail(ctx, r);
    printf("%s: action-required item closed\n", argv[0]);
    return CLI_OK;
}

const struct cli_cmd cmd_done = {
    .name = "done",
    .args = "PATH",
    .summary = "close a secret's action-required item once a person has finished it",
    .min_args = 1,
    .max_args = 1,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .exec = exec_done,
};
