/* rekey status: one row per secret of the inventory; exit 1 when one is overdue or failed.
 * Both modes build the JSON of `rekey status --json` (locally from the store, in client mode
 * GET /v1/rekey/status, which answers the same entries) and print from it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/kvjson.h"
#include "cli.h"
#include "client.h"
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
state_color(const struct cli_ctx *ctx, const char *st)
{
    if (strcmp(st, "ok") == 0)
        return cli_color(ctx, "green");
    if (strcmp(st, "due") == 0 || strcmp(st, "rotating") == 0 || strcmp(st, "action-required") == 0)
        return cli_color(ctx, "yellow");
    if (strcmp(st, "overdue") == 0 || strcmp(st, "failed") == 0)
        return cli_color(ctx, "red");
    return "";
}

/* secret_state_is_problem by name: what makes the exit code 1. */
static int
is_problem(const char *st)
{
    return strcmp(st, "overdue") == 0 || strcmp(st, "failed") == 0;
}

static const char *
str(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);

    return json_is_string(v) ? json_string_value(v) : "";
}

/* The entries of `status --json`, from the local store. */
static int
local_status(struct cli_ctx *ctx, json_t **out)
{
    struct secret_status *st = NULL;
    json_t *a;
    int r;

    *out = NULL;
    if ((r = schedule_status_all(ctx->kv, ctx->inv, time_now(), &st, &ctx->err)) != 0)
        return r;
    if ((a = json_array()) == NULL) {
        free(st);
        return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < ctx->inv->nsecrets; i++) {
        if (json_array_append_new(a, kvjson_status(&st[i])) != 0) {
            json_decref(a);
            free(st);
            return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
        }
    }
    free(st);
    *out = a;
    return 0;
}

static int
remote_status(struct cli_ctx *ctx, json_t **out)
{
    json_t *resp = NULL, *a;
    int r;

    *out = NULL;
    if ((r = client_request(ctx->remote, "GET", "/v1/rekey/status", NULL, NULL, &resp,
                            &ctx->err)) != 0) {
        json_decref(resp);
        return r;
    }
    a = json_object_get(client_data(resp), "secrets");
    if (!json_is_array(a)) {
        json_decref(resp);
        return rk_error_set(&ctx->err, RK_ECORRUPT, "the server's status answer has no secrets");
    }
    *out = json_incref(a);
    json_decref(resp);
    return 0;
}

static void
print_table(const struct cli_ctx *ctx, json_t *a, int problems)
{
    size_t w = 4, i;
    json_t *e;

    json_array_foreach(a, i, e) if (strlen(str(e, "path")) > w) w = strlen(str(e, "path"));
    printf("%s%-*s  %-14s %4s  %-19s  %-17s  %-17s  %s%s\n", cli_color(ctx, "bold"), (int)w, "PATH",
           "KIND", "VER", "FINGERPRINT", "LAST ROTATED", "NEXT DUE", "STATE",
           cli_color(ctx, "reset"));
    json_array_foreach(a, i, e)
    {
        char last[32], next[32], ver[24];
        int64_t lu = client_time_us(json_object_get(e, "last_rotated"));
        int64_t nu = client_time_us(json_object_get(e, "next_due"));
        json_int_t v = json_integer_value(json_object_get(e, "version"));
        const char *fp = str(e, "fingerprint"), *state = str(e, "state");
        const char *detail = str(e, "detail");

        fmt_time(lu / 1000000, last, sizeof(last));
        if (nu > 0)
            fmt_time(nu / 1000000, next, sizeof(next));
        else
            snprintf(next, sizeof(next), "-");
        if (v > 0)
            snprintf(ver, sizeof(ver), "%llu", (unsigned long long)v);
        else
            snprintf(ver, sizeof(ver), "-");
        printf("%-*s  %-14s %4s  %-19s  %-17s  %-17s  %s%s%s\n", (int)w, str(e, "path"),
               str(e, "kind"), ver, fp[0] ? fp : "-", last, next, state_color(ctx, state), state,
               cli_color(ctx, "reset"));
        if (detail[0] != '\0' && strcmp(state, "not-implemented") != 0)
            printf("%-*s    %s\n", (int)w, "", detail);
    }
    if (problems > 0)
        printf("\n%d secret%s overdue or failed.\n", problems, problems == 1 ? " is" : "s are");
}

static int
exec_status(struct cli_ctx *ctx, int argc, char **argv)
{
    json_t *a = NULL, *e;
    int r, problems = 0;
    size_t i;

    (void)argc;
    (void)argv;
    r = ctx->remote != NULL ? remote_status(ctx, &a) : local_status(ctx, &a);
    if (r != 0)
        return cli_fail(ctx, r);
    json_array_foreach(a, i, e) if (is_problem(str(e, "state"))) problems++;
    if (cli_opt(ctx, "json") != NULL) {
        json_dumpf(a, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        print_table(ctx, a, problems);
    }
    json_decref(a);
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
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_status,
};
