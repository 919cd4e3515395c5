/* rekey status: one row per entry (the inventory's, then those defined in the store through the
 * API); exit 1 when one is overdue or failed.
 * Locally the rows come from the store (schedule_status_list); in client mode from
 * GET /v1/rekey/status, which answers the entries of `rekey status --json`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/kvjson.h"
#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/client.h"
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
    if (strcmp(st, "due") == 0 || strcmp(st, "rotating") == 0 ||
        strcmp(st, "action-required") == 0 || strcmp(st, "pending") == 0)
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

/* One row of the table, from either source. Strings are borrowed. */
struct row {
    const char *path, *kind, *fingerprint, *state, *detail;
    uint64_t version;
    int64_t last_rotated, next_due; /* seconds; 0 = never / not scheduled */
    int64_t expires_at;             /* seconds; 0 = unknown (the kind's status op says) */
};

static struct row
row_local(const struct secret_status *st)
{
    return (struct row){.path = st->secret->path,
                        .kind = st->secret->kind,
                        .fingerprint = st->fingerprint,
                        .state = secret_state_name(st->state),
                        .detail = st->detail,
                        .version = st->version,
                        .last_rotated = st->last_rotated,
                        .next_due = st->next_due,
                        .expires_at = st->expires_at};
}

static struct row
row_remote(const json_t *e)
{
    json_int_t v = json_integer_value(json_object_get(e, "version"));

    return (struct row){.path = str(e, "path"),
                        .kind = str(e, "kind"),
                        .fingerprint = str(e, "fingerprint"),
                        .state = str(e, "state"),
                        .detail = str(e, "detail"),
                        .version = v > 0 ? (uint64_t)v : 0,
                        .last_rotated =
                            client_time_us(json_object_get(e, "last_rotated")) / 1000000,
                        .next_due = client_time_us(json_object_get(e, "next_due")) / 1000000,
                        .expires_at = client_time_us(json_object_get(e, "expires_at")) / 1000000};
}

static void
print_header(const struct cli_ctx *ctx, int w)
{
    printf("%s%-*s  %-14s %4s  %-19s  %-17s  %-17s  %s%s\n", cli_color(ctx, "bold"), w, "PATH",
           "KIND", "VER", "FINGERPRINT", "LAST ROTATED", "NEXT DUE", "STATE",
           cli_color(ctx, "reset"));
}

static void
print_row(const struct cli_ctx *ctx, int w, const struct row *r)
{
    char last[32], next[32], ver[24];

    fmt_time(r->last_rotated, last, sizeof(last));
    if (r->next_due > 0)
        fmt_time(r->next_due, next, sizeof(next));
    else
        snprintf(next, sizeof(next), "-");
    if (r->version > 0)
        snprintf(ver, sizeof(ver), "%llu", (unsigned long long)r->version);
    else
        snprintf(ver, sizeof(ver), "-");
    printf("%-*s  %-14s %4s  %-19s  %-17s  %-17s  %s%s%s\n", w, cli_esc(r->path), cli_esc(r->kind),
           ver, r->fingerprint[0] ? cli_esc(r->fingerprint) : "-", last, next,
           state_color(ctx, r->state), cli_esc(r->state), cli_color(ctx, "reset"));
    if (r->detail[0] != '\0' && strcmp(r->state, "not-implemented") != 0)
        printf("%-*s    %s\n", w, "", cli_esc(r->detail));
    if (r->expires_at > 0) {
        char exp[32];
        fmt_time(r->expires_at, exp, sizeof(exp));
        printf("%-*s    expires %s\n", w, "", exp);
    }
}

static void
print_problems(int problems)
{
    if (problems > 0)
        printf("\n%d secret%s overdue or failed.\n", problems, problems == 1 ? " is" : "s are");
}

/* Prints one element of the --json array as json_dumpf(array, JSON_INDENT(2)) would: each line
 * indented by two more spaces. */
static int
print_json_element(const json_t *e, int first)
{
    char *txt = json_dumps(e, JSON_INDENT(2));

    if (txt == NULL)
        return -1;
    fputs(first ? "[\n  " : ",\n  ", stdout);
    for (const char *p = txt; *p != '\0'; p++) {
        putchar(*p);
        if (*p == '\n')
            fputs("  ", stdout);
    }
    free(txt);
    return 0;
}

/* From the local store. The rows are printed as they are, and --json is written one element at
 * a time: with 100,000 secrets, a JSON tree of the whole answer would cost ~100 MB. */
static int
local_status(struct cli_ctx *ctx, int *problems)
{
    struct schedule_list sl;
    struct secret_status *st;
    size_t n, w = 4;
    int r;

    if ((r = schedule_status_list(ctx->kv, ctx->inv, time_now(), &sl, &ctx->err)) != 0)
        return r;
    st = sl.st;
    n = sl.n;
    for (size_t i = 0; i < n; i++) {
        if (secret_state_is_problem(st[i].state))
            (*problems)++;
        if (strlen(cli_esc(st[i].secret->path)) > w)
            w = strlen(cli_esc(st[i].secret->path));
    }
    if (cli_opt(ctx, "json") != NULL) {
        for (size_t i = 0; i < n; i++) {
            json_t *e = kvjson_status(&st[i]);
            int pr = e != NULL ? print_json_element(e, i == 0) : -1;

            json_decref(e);
            if (pr != 0) {
                schedule_list_free(&sl);
                return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
            }
        }
        puts(n > 0 ? "\n]" : "[]");
    } else {
        print_header(ctx, (int)w);
        for (size_t i = 0; i < n; i++) {
            struct row rw = row_local(&st[i]);
            print_row(ctx, (int)w, &rw);
        }
        print_problems(*problems);
    }
    schedule_list_free(&sl);
    return 0;
}

/* In client mode: GET /v1/rekey/status answers the same entries as --json. */
static int
remote_status(struct cli_ctx *ctx, int *problems)
{
    json_t *resp = NULL, *a, *e;
    size_t w = 4, i;
    int r;

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
    json_array_foreach(a, i, e)
    {
        if (is_problem(str(e, "state")))
            (*problems)++;
        if (strlen(cli_esc(str(e, "path"))) > w)
            w = strlen(cli_esc(str(e, "path")));
    }
    if (cli_opt(ctx, "json") != NULL) {
        json_dumpf(a, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        print_header(ctx, (int)w);
        json_array_foreach(a, i, e)
        {
            struct row rw = row_remote(e);
            print_row(ctx, (int)w, &rw);
        }
        print_problems(*problems);
    }
    json_decref(resp);
    return 0;
}

static int
exec_status(struct cli_ctx *ctx, int argc, char **argv)
{
    int r, problems = 0;

    (void)argc;
    (void)argv;
    r = ctx->remote != NULL ? remote_status(ctx, &problems) : local_status(ctx, &problems);
    if (r != 0)
        return cli_fail(ctx, r);
    if (ctx->remote == NULL && !ctx->inv->audit_enabled) { /* say so when nothing is audited */
        char note[512];
        size_t nd = 0;
        if (audit_devices_stored(ctx->br, &nd, NULL) == 0 && nd == 0) {
            audit_note(NULL, 0, note, sizeof(note));
            fprintf(stderr, "%s\n", note);
        }
    }
    return problems > 0 ? CLI_PROBLEM : CLI_OK;
}

const struct cli_cmd cmd_status = {
    .name = "status",
    .args = "",
    .summary = "show every secret: version, fingerprint, last and next rotation, state",
    .help = "States: ok, due (in its reminder window or waiting for the daemon), overdue,\n"
            "rotating, failed, action-required (a person must finish: rekey done PATH),\n"
            "not-implemented (the kind has no rotator yet), pending (a new value waits for its\n"
            "target: it is tried again). Exit code 1 when a secret is overdue or failed, so\n"
            "cron and CI can alert on it. Entries defined in the store through the API\n"
            "(rekey/entries) are listed after the configuration's.",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK | CLI_NO_AUDIT,
    .opts = opts,
    .exec = exec_status,
};
