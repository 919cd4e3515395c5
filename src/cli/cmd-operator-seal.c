/* rekey operator seal: seals a rekey server (PUT /v1/sys/seal; the token needs sudo on sys/seal),
 * like `vault operator seal`. The server then answers 503 until it is unsealed again. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"

static int
exec_seal(struct cli_ctx *ctx, int argc, char **argv)
{
    int r;

    (void)argc;
    (void)argv;
    if ((r = client_request(ctx->remote, "PUT", "/v1/sys/seal", NULL, NULL, NULL, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    printf("Success! rekey at %s is sealed.\n", client_addr(ctx->remote));
    return CLI_OK;
}

const struct cli_cmd cmd_operator_seal = {
    .name = "operator seal",
    .args = "",
    .summary = "seal a rekey server (REKEY_ADDR); it serves nothing until unsealed",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_REMOTE_ONLY,
    .exec = exec_seal,
};
