/* rekey run: the rotation daemon in the foreground (docs/daemon.md). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "engine/daemon.h"
#include "engine/inventory.h"

static const struct cli_opt opts[] = {
    {"once", OPT_FLAG, NULL, "run what is due now, then exit (cron, tests)"},
    {"pid-file", OPT_VALUE, "FILE", "write the process id to FILE (removed at exit)"},
    {NULL, 0, NULL, NULL},
};

static int
exec_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct daemon_opts o = {0};
    struct daemon_stats st;
    int r;

    (void)argc;
    (void)argv;
    o.once = cli_opt(ctx, "once") != NULL;
    o.pid_file = cli_opt(ctx, "pid-file");
    o.config_file = ctx->config_path;
    if (o.pid_file != NULL && *o.pid_file == '\0')
        return cli_usage_error(ctx, "-pid-file needs a file name");
    /* daemon_run may replace ctx->inv on SIGHUP; main frees whatever it holds at the end. */
    if ((r = daemon_run(ctx->kv, &ctx->inv, &o, &st, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    return o.once && st.failed > 0 ? CLI_PROBLEM : CLI_OK;
}

const struct cli_cmd cmd_run = {
    .name = "run",
    .args = "",
    .summary = "run the rotation daemon in the foreground (SIGHUP reloads, SIGTERM stops)",
    .help = "Rotates each automatic secret when it is due, retries failures with backoff,\n"
            "retires previous values when their grace ends, and logs a reminder when a manual\n"
            "secret is due (it never invents a value). Sleeps until the next due time.\n"
            "The store must unseal without a person: set REKEY_KEY_FILE or store.key_file.\n"
            "Signals: SIGHUP reloads the configuration (a broken one is logged and the old one\n"
            "kept); SIGTERM or SIGINT stop after the rotation in flight, exit 0.\n"
            "With -once: runs what is due now and exits (1 if a rotation failed).",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE,
    .opts = opts,
    .exec = exec_run,
};
