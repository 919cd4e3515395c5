/* rekey revoke: emergency rotation; the old value is retired at once, without grace. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "engine/rotation.h"
#include "kvfmt.h"

static const struct cli_opt opts[] = {
    {"reason", OPT_VALUE, "TEXT", "why (kept in the history; default \"revoke\")"},
    {"from-stdin", OPT_FLAG, NULL, "manual kinds: read the new value from stdin"},
    {"from-file", OPT_VALUE, "FILE", "manual kinds: read the new value from FILE"},
    {NULL, 0, NULL, NULL},
};

static void
show(void *arg, const char *path, const char *step, const char *msg)
{
    (void)arg;
    (void)path;
    printf("  %-8s %s\n", step, msg);
}

static int
exec_revoke(struct cli_ctx *ctx, int argc, char **argv)
{
    struct rotate_opts ro;
    struct rotate_result res;
    struct rot_input in;
    struct engine *e = NULL;
    int r;

    (void)argc;
    memset(&in, 0, sizeof(in));
    in.from_stdin = cli_opt(ctx, "from-stdin") != NULL;
    in.from_file = cli_opt(ctx, "from-file");
    in.allow_prompt = isatty(STDIN_FILENO);
    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_REVOKE;
    ro.reason = cli_opt(ctx, "reason");
    ro.author = kvfmt_author();
    ro.input = &in;
    ro.progress = show;
    if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    printf("revoking %s:\n", argv[0]);
    r = engine_rotate(e, argv[0], &ro, &res, &ctx->err);
    engine_free(e);
    if (r != 0)
        return cli_fail(ctx, r);
    printf("%s: v%llu (%s) is current; v%llu was retired without grace\n", argv[0],
           (unsigned long long)res.new_version, res.new_fp, (unsigned long long)res.old_version);
    return CLI_OK;
}

const struct cli_cmd cmd_revoke = {
    .name = "revoke",
    .args = "PATH",
    .summary = "emergency: rotate now and retire the old value without grace",
    .help = "Rotates PATH and retires the old value at once. Kinds whose old value only a person\n"
            "can retire (at a provider's console) open an action-required item instead; close it\n"
            "with 'rekey done PATH'.",
    .min_args = 1,
    .max_args = 1,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE,
    .opts = opts,
    .exec = exec_revoke,
};
