/* rekey operator rotate-keyring: adds a data key; new writes use it, old entries stay readable. */
#include <stdio.h>

#include "cli/cli.h"
#include "store/barrier.h"

static int
exec_rotate_keyring(struct cli_ctx *ctx, int argc, char **argv)
{
    uint32_t term = 0;
    size_t nkeys = 0;
    int r;

    (void)argc;
    (void)argv;
    if ((r = barrier_rotate_keyring(ctx->br, &term, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    barrier_keyring_info(ctx->br, &term, &nkeys);
    printf("Keyring rotated: new writes use data key term %u (%zu key%s in the keyring).\n",
           (unsigned)term, nkeys, nkeys == 1 ? "" : "s");
    return CLI_OK;
}

const struct cli_cmd cmd_operator_rotate_keyring = {
    .name = "operator rotate-keyring",
    .args = "",
    .summary = "add a new data encryption key without re-encrypting old entries",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE,
    .exec = exec_rotate_keyring,
};
