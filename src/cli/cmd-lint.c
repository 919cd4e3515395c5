/* rekey lint: reports what a reviewer of the inventory would catch. */
#include <stdio.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "engine/inventory.h"

struct lint_state {
    int errors, warnings;
};

static void
report(void *arg, const char *severity, const char *where, const char *msg)
{
    struct lint_state *st = arg;

    if (severity[0] == 'e')
        st->errors++;
    else
        st->warnings++;
    printf("%s: %s: %s\n", cli_esc(where), severity, cli_esc(msg));
}

static int
exec_lint(struct cli_ctx *ctx, int argc, char **argv)
{
    struct lint_state st = {0, 0};

    (void)argc;
    (void)argv;
    inventory_lint(ctx->inv, report, &st);
    {
        char note[512];
        audit_note(ctx->inv->audit_enabled ? ctx->inv->audit_path : NULL, -1, note, sizeof(note));
        printf("%s\n", cli_esc(note));
    }
    printf("%s: %zu secret%s, %zu hook%s: %d error%s, %d warning%s\n", ctx->inv->file,
           ctx->inv->nsecrets, ctx->inv->nsecrets == 1 ? "" : "s", ctx->inv->nhooks,
           ctx->inv->nhooks == 1 ? "" : "s", st.errors, st.errors == 1 ? "" : "s", st.warnings,
           st.warnings == 1 ? "" : "s");
    return st.errors > 0 ? CLI_PROBLEM : CLI_OK;
}

const struct cli_cmd cmd_lint = {
    .name = "lint",
    .args = "",
    .summary = "check the inventory for mistakes a reviewer would catch",
    .help = "Loads the configuration and reports inconsistencies: certificate renewal that does\n"
            "not fit the lifetime, lease TTLs shorter than the alerting interval, hooks never\n"
            "used, duplicate paths, schedules more frequent than a provider allows. Exit code 1\n"
            "when an error is found (warnings alone exit 0).",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_NEED_CONFIG,
    .exec = exec_lint,
};
