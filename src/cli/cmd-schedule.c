/* rekey schedule: the rotation calendar, month by week, computed from the entries (the
 * inventory's and the store's), their kinds (a status op may say when an entry is due) and the
 * history, so nobody types a schedule table by hand. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "engine/inventory.h"
#include "engine/schedule.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define MAX_MONTHS 24
#define WEEKS 5

static const struct cli_opt opts[] = {
    {"from", OPT_VALUE, "YYYY-MM", "first month (default: this month)"},
    {"months", OPT_VALUE, "N", "number of months (default 3, at most 24)"},
    {"json", OPT_FLAG, NULL, "print JSON instead of a table"},
    {NULL, 0, NULL, NULL},
};

static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct grid {
    int year0, mon0, months;
    unsigned counts[MAX_MONTHS][WEEKS];
    json_t *dates; /* JSON mode: the first rotation times */
};

static int64_t
month_start(int year, int mon) /* mon 0-11, may overflow into later years */
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900 + mon / 12;
    tm.tm_mon = mon % 12;
    tm.tm_mday = 1;
    return (int64_t)timegm(&tm);
}

static void
occ(void *arg, int64_t when)
{
    struct grid *g = arg;
    time_t t = (time_t)when;
    struct tm tm;
    int idx, week;

    gmtime_r(&t, &tm);
    idx = (tm.tm_year + 1900 - g->year0) * 12 + tm.tm_mon - g->mon0;
    if (idx < 0 || idx >= g->months)
        return;
    week = (tm.tm_mday - 1) / 7;
    if (week >= WEEKS)
        week = WEEKS - 1;
    g->counts[idx][week]++;
    if (g->dates != NULL && json_array_size(g->dates) < 100) {
        char buf[40];
        time_format_rfc3339(when * 1000000, buf, sizeof(buf));
        json_array_append_new(g->dates, json_string(buf));
    }
}

static int
exec_schedule(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *from = cli_opt(ctx, "from"), *ms = cli_opt(ctx, "months");
    int json = cli_opt(ctx, "json") != NULL;
    struct schedule_list sl;
    struct secret_status *st;
    int64_t now = time_now(), months = 3, start, end;
    struct grid g;
    json_t *out = NULL;
    size_t w = 6;
    int r;

    (void)argc;
    (void)argv;
    memset(&g, 0, sizeof(g));
    if (ms != NULL && parse_int64(ms, 1, MAX_MONTHS, &months) != 0)
        return cli_usage_error(ctx, "--months must be a number from 1 to %d", MAX_MONTHS);
    if (from != NULL) {
        int y, m;
        char extra;
        if (strlen(from) != 7 || sscanf(from, "%4d-%2d%c", &y, &m, &extra) != 2 || y < 1970 ||
            y > 9999 || m < 1 || m > 12)
            return cli_usage_error(ctx, "--from must be YYYY-MM, e.g. 2026-12");
        g.year0 = y;
        g.mon0 = m - 1;
    } else {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        g.year0 = tm.tm_year + 1900;
        g.mon0 = tm.tm_mon;
    }
    g.months = (int)months;
    start = month_start(g.year0, g.mon0);
    end = month_start(g.year0, g.mon0 + g.months);
    if ((r = schedule_status_list(ctx->kv, ctx->inv, now, &sl, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    st = sl.st;
    for (size_t i = 0; i < sl.n; i++)
        if (strlen(cli_esc(st[i].secret->path)) > w)
            w = strlen(cli_esc(st[i].secret->path));
    if (json) {
        char f[16];
        snprintf(f, sizeof(f), "%04d-%02d", g.year0, g.mon0 + 1);
        out = json_pack("{s:s, s:i, s:[]}", "from", f, "months", g.months, "secrets");
    } else {
        printf(
            "Rotation calendar: %s %d to %s %d (UTC). Weeks: W1 = days 1-7 ... W5 = days 29-31.\n"
            "A = automatic, M = a person rotates, a number = several rotations that week.\n\n",
            month_names[g.mon0], g.year0, month_names[(g.mon0 + g.months - 1) % 12],
            g.year0 + (g.mon0 + g.months - 1) / 12);
        printf("%-*s %-6s", (int)w, "SECRET", "EVERY");
        for (int m = 0; m < g.months; m++)
            printf(" | %-3s %04d      ", month_names[(g.mon0 + m) % 12],
                   g.year0 + (g.mon0 + m) / 12);
        printf("\n%-*s %-6s", (int)w, "", "");
        for (int m = 0; m < g.months; m++)
            printf(" | W1 W2 W3 W4 W5 ");
        putchar('\n');
    }
    for (size_t i = 0; i < sl.n; i++) {
        const struct inv_secret *s = st[i].secret;
        char every[24], exp[40] = "";
        size_t n;

        memset(g.counts, 0, sizeof(g.counts));
        g.dates = json ? json_array() : NULL;
        n = schedule_occurrences(&st[i], start, end, 0, occ, &g);
        /* The period the kind's status gave (the calendar's), else the entry's every. */
        if (st[i].period > 0 || s->every > 0)
            duration_format(st[i].period > 0 ? st[i].period : s->every, every, sizeof(every));
        else
            snprintf(every, sizeof(every), "-");
        /* When the kind's status op says the value expires (a certificate's notAfter, a held
         * lease's end), as `rekey status` shows it. */
        if (st[i].expires_at > 0)
            time_format_rfc3339(st[i].expires_at * 1000000, exp, sizeof(exp));
        if (json) {
            json_t *weeks = json_object();
            for (int m = 0; m < g.months; m++)
                for (int k = 0; k < WEEKS; k++)
                    if (g.counts[m][k] > 0) {
                        char key[24];
                        snprintf(key, sizeof(key), "%04d-%02d-W%d", g.year0 + (g.mon0 + m) / 12,
                                 (g.mon0 + m) % 12 + 1, k + 1);
                        json_object_set_new(weeks, key, json_integer(g.counts[m][k]));
                    }
            json_array_append_new(
                json_object_get(out, "secrets"),
                json_pack("{s:s, s:s, s:s, s:b, s:s, s:s?, s:I, s:o, s:o}", "path", s->path, "kind",
                          s->kind, "every", every, "auto", s->auto_rotate, "state",
                          secret_state_name(st[i].state), "expires_at", exp[0] ? exp : NULL,
                          "rotations", (json_int_t)n, "weeks", weeks, "first_rotations", g.dates));
            continue;
        }
        printf("%-*s %-6s", (int)w, cli_esc(s->path),
               st[i].state == STATE_NOT_IMPLEMENTED ? "n/a" : every);
        for (int m = 0; m < g.months; m++) {
            printf(" |");
            for (int k = 0; k < WEEKS; k++) {
                unsigned c = g.counts[m][k];
                if (c == 0)
                    printf("  .");
                else if (c == 1)
                    printf("  %c", s->auto_rotate ? 'A' : 'M');
                else
                    printf(" %2u", c > 99 ? 99 : c);
            }
        }
        putchar('\n');
        if (exp[0] != '\0') {
            time_t t = (time_t)st[i].expires_at;
            struct tm tm;
            char when[32];
            gmtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%d %H:%MZ", &tm);
            printf("%-*s   expires %s\n", (int)w, "", when);
        }
    }
    if (json) {
        json_dumpf(out, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(out);
    }
    schedule_list_free(&sl);
    return CLI_OK;
}

const struct cli_cmd cmd_schedule = {
    .name = "schedule",
    .args = "",
    .summary = "print the rotation calendar, month by week, from the inventory and history",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_NO_AUDIT,
    .opts = opts,
    .exec = exec_schedule,
};
