/* rekey status: one row per secret of the inventory; exit 1 when one is overdue or failed. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine/inventory.h"
#include "engine/schedule.h"
#include "util/timeutil.h"

static const struct cli_opt opts[] = {
    {"json", OPT_FLAG, NULL, "print JSON instead of a table"},
    {NULL, 0, NULL, NULL},
};

static void
fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0) {
        snprintf(buf, len, "never");
        return;
    }
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%MZ", &tm);
}

static const char *
state_color(const struct cli_ctx *ctx, enum secret_state st)
{
    switch (st) {
    case STATE_OK: return cli_color(ctx, "green");
    case STATE_DUE:
    case STATE_ROTATING:
    case STATE_ACTION_REQUIRED: return cli_color(ctx, "yellow");
    case STATE_OVERDUE:
    case STATE_FAILED: return cli_color(ctx, "red");
    default: return "";
    }
}

static int
exec_status(struct cli_ctx *ctx, int argc, char **argv)
{
    struct secret_status *st = NULL;
    int64_t now = time_now();
    int r, problems = 0;
    size_t w = 4;

    (void)argc;
    (void)argv;
    if ((r = schedule_status_all(ctx->kv, ctx->inv, now, &st, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    for (size_t i = 0; i < ctx->inv->nsecrets; i++) {
        if (secret_state_is_problem(st[i].state))
            problems++;
        if (strlen(st[i].secret->path) > w)
            w = strlen(st[i].secret->path);
    }
    if (cli_opt(ctx, "json") != NULL) {
        json_t *a = json_array();
        for (size_t i = 0; i < ctx->inv->nsecrets; i++) {
            char last[40] = "", next[40] = "";
            if (st[i].last_rotated > 0)
                time_format_rfc3339(st[i].last_rotated * 1000000, last, sizeof(last));
            if (st[i].next_due > 0)
                time_format_rfc3339(st[i].next_due * 1000000, next, sizeof(next));
            json_array_append_new(
                a, json_pack("{s:s, s:s, s:I, s:s?, s:s?, s:s?, s:s, s:b, s:s}", "path",
                             st[i].secret->path, "kind", st[i].secret->kind, "version",
                             (json_int_t)st[i].version, "fingerprint",
                             st[i].fingerprint[0] ? st[i].fingerprint : NULL, "last_rotated",
                             last[0] ? last : NULL, "next_due", next[0] ? next : NULL, "state",
                             secret_state_name(st[i].state), "auto", st[i].secret->auto_rotate,
                             "detail", st[i].detail));
        }
        json_dumpf(a, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(a);
    } else {
        printf("%s%-*s  %-14s %4s  %-19s  %-17s  %-17s  %s%s\n", cli_color(ctx, "bold"), (int)w,
               "PATH", "KIND", "VER", "FINGERPRINT", "LAST ROTATED", "NEXT DUE", "STATE",
               cli_color(ctx, "reset"));
        for (size_t i = 0; i < ctx->inv->nsecrets; i++) {
            char last[32], next[32], ver[24];
            fmt_time(st[i].last_rotated, last, sizeof(last));
            if (st[i].next_due > 0)
                fmt_time(st[i].next_due, next, sizeof(next));
            else
                snprintf(next, sizeof(next), "-");
            if (st[i].version > 0)
                snprintf(ver, sizeof(ver), "%llu", (unsigned long long)st[i].version);
            else
                snprintf(ver, sizeof(ver), "-");
            printf("%-*s  %-14s %4s  %-19s  %-17s  %-17s  %s%s%s\n", (int)w, st[i].secret->path,
                   st[i].secret->kind, ver, st[i].fingerprint[0] ? st[i].fingerprint : "-", last,
                   next, state_color(ctx, st[i].state), secret_state_name(st[i].state),
                   cli_color(ctx, st[i].state == STATE_OK ? "reset" : "reset"));
            if (st[i].detail[0] != '\0' && st[i].state != STATE_NOT_IMPLEMENTED)
                printf("%-*s    %s\n", (int)w, "", st[i].detail);
        }
        if (problems > 0)
            printf("\n%d secret%s overdue or failed.\n", problems, problems == 1 ? " is" : "s are");
    }
    free(st);
    return problems > 0 ? CLI_PROBLEM : CLI_OK;
}

const struct cli_cmd cmd_status = {
    .name = "status",
    .args = "",
    .summary = "show every secret: version, fingerprint, last and next rotation, state",
    .help = "States: ok, due (in its reminder window or waiting for the daemon), overdue,\n"
            "rotating, failed, action-required (a person must finish: rekey done PATH),\n"
            "not-implemented (the kind has no rotator yet). Exit code 1 when a secret is overdue\n"
            "or failed, so cron and CI can alert on it.",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE,
    .opts = opts,
    .exec = exec_status,
};
