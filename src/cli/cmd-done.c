/* rekey done: a person confirms the action-required item of a secret (e.g. the old provider
 * key was deleted at the provider's console). The output repeats what the item asked for (the
 * rotator's action hint), so the log of a session shows what was confirmed. */
#include <stdio.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/rotation.h"
#include "cli/kvfmt.h"

/* What the open item of path asks (GET /v1/rekey/action-required, "actions"), into buf; ""
 * when the server does not say. */
static void
remote_action(struct cli_ctx *ctx, const char *path, char *buf, size_t len)
{
    json_t *resp = NULL;
    struct rk_error err = {0};
    const char *what = NULL;

    buf[0] = '\0';
    if (client_request(ctx->remote, "GET", "/v1/rekey/action-required", NULL, NULL, &resp, &err) ==
        0)
        what =
            json_string_value(json_object_get(json_object_get(client_data(resp), "actions"), path));
    if (what != NULL)
        snprintf(buf, len, "%s", what);
    json_decref(resp);
}

static int
exec_done(struct cli_ctx *ctx, int argc, char **argv)
{
    struct engine *e = NULL;
    char what[256] = "";
    int r;

    (void)argc;
    if (ctx->remote != NULL) {
        remote_action(ctx, argv[0], what, sizeof(what));
        /* POST /v1/rekey/done/P; the server records the token's name as who confirmed. */
        r = client_rekey_post(ctx->remote, "done", argv[0], NULL, NULL, &ctx->err);
    } else {
        if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        r = engine_action(e, argv[0], what, sizeof(what), &ctx->err);
        if (r == 0)
            r = engine_done(e, argv[0], kvfmt_author(), &ctx->err);
        engine_free(e);
    }
    if (r != 0)
        return cli_fail(ctx, r);
    printf("%s: action-required item closed\n", cli_esc(argv[0]));
    if (what[0] != '\0')
        printf("  confirmed: %s\n", cli_esc(what));
    return CLI_OK;
}

const struct cli_cmd cmd_done = {
    .name = "done",
    .args = "PATH",
    .summary = "close a secret's action-required item once a person has finished it",
    .help = "Closes PATH's action-required item: a person did what it asked (e.g. deleted the\n"
            "old key at the provider's console, whose URL the item names). The output repeats\n"
            "what was confirmed.",
    .min_args = 1,
    .max_args = 1,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .exec = exec_done,
};
