/* rekey audit [filters] FILE…: the audit log's queries of an incident: recent accesses to a
 * path, failed requests and authentications, what one identity did. Streams each file once in
 * large blocks; a line is parsed only when it matches (audit/query.h), so a gigabyte log takes
 * seconds. Prints a table, or with --json the matching lines as they are. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit/query.h"
#include "cli/cli.h"
#include "util/timeutil.h"

struct out {
    int json;
    unsigned long long n;
};

static const char *
jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "-";
}

static int
on_line(void *arg, const char *line, size_t len)
{
    struct out *o = arg;
    json_t *j;
    char status[16] = "-";

    o->n++;
    if (o->json) {
        fwrite(line, 1, len, stdout);
        putchar('\n');
        return ferror(stdout) ? -RK_EIO : 0;
    }
    if ((j = json_loadb(line, len, 0, NULL)) == NULL) {
        printf("(a line that is not JSON)\n");
        return 0;
    }
    if (json_is_integer(json_object_get(j, "status")))
        snprintf(status, sizeof(status), "%lld",
                 (long long)json_integer_value(json_object_get(j, "status")));
    /* Stored strings may hold escape sequences: escaped for the terminal (cli.h). */
    printf(
        "%s  %-12s %-12s %-40s %-20s %-4s %s\n", cli_esc(jstr(j, "time")), cli_esc(jstr(j, "type")),
        cli_esc(jstr(j, "operation")), cli_esc(jstr(j, "path")),
        cli_esc(json_object_get(j, "actor") != NULL ? jstr(j, "actor") : jstr(j, "remote_address")),
        status, json_object_get(j, "error") != NULL ? cli_esc(jstr(j, "error")) : "");
    json_decref(j);
    return ferror(stdout) ? -RK_EIO : 0;
}

static int
exec_audit(struct cli_ctx *ctx, int argc, char **argv)
{
    static char obuf[1 << 20];
    struct audit_query q;
    struct out o = {0};
    uint64_t total = 0;
    int64_t t0 = time_mono_ms();
    const char *v;
    int r;

    memset(&q, 0, sizeof(q));
    q.path = cli_opt(ctx, "path");
    q.actor = cli_opt(ctx, "actor");
    q.op = cli_opt(ctx, "op");
    q.errors = cli_opt(ctx, "errors") != NULL;
    o.json = cli_opt(ctx, "json") != NULL;
    if ((v = cli_opt(ctx, "since")) != NULL &&
        audit_time_arg(v, time_now_us(), q.since, &ctx->err) != 0)
        return cli_usage_error(ctx, "--since: %s", ctx->err.msg);
    if ((v = cli_opt(ctx, "until")) != NULL &&
        audit_time_arg(v, time_now_us(), q.until, &ctx->err) != 0)
        return cli_usage_error(ctx, "--until: %s", ctx->err.msg);
    if (audit_query_prepare(&q, &ctx->err) != 0)
        return cli_usage_error(ctx, "%s", ctx->err.msg);
    setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
    if (!o.json)
        printf("%-27s  %-12s %-12s %-40s %-20s %-4s %s\n", "TIME", "TYPE", "OPERATION", "PATH",
               "ACTOR", "STAT", "ERROR");
    for (int i = 0; i < argc; i++) {
        uint64_t bytes = 0;
        int fd = strcmp(argv[i], "-") == 0 ? STDIN_FILENO : open(argv[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rk_error_set(&ctx->err, RK_EIO, "%s: %s", argv[i], strerror(errno));
            fflush(stdout);
            return cli_fail(ctx, -RK_EIO);
        }
        r = audit_query_fd(&q, fd, on_line, &o, &bytes, &ctx->err);
        if (fd != STDIN_FILENO)
            close(fd);
        total += bytes;
        if (r != 0) {
            fflush(stdout);
            rk_error_prefix(&ctx->err, "%s", argv[i]);
            return cli_fail(ctx, r);
        }
    }
    fflush(stdout);
    if (cli_opt(ctx, "stats") != NULL) {
        double s = (double)(time_mono_ms() - t0) / 1000.0;
        fprintf(stderr, "scanned %.1f MB in %.3f s (%.0f MB/s), %llu matching line%s\n",
                (double)total / 1e6, s, s > 0 ? (double)total / 1e6 / s : 0.0, o.n,
                o.n == 1 ? "" : "s");
    }
    return CLI_OK;
}

static const struct cli_opt audit_opts[] = {
    {"path", OPT_VALUE, "PREFIX",
     "paths under PREFIX (secret/x also finds secret/data/x, rekey/rotate/secret/x)"},
    {"actor", OPT_VALUE, "NAME",
     "one identity: a token's display name, a local user, or an "
     "accessor's hmac-sha256:… (rekey audit hash)"},
    {"op", OPT_VALUE, "OP", "one operation: read, update, delete, list, kv put, rotate, …"},
    {"errors", OPT_FLAG, NULL,
     "only failures (status >= 400, a command that failed, a failed "
     "rotation)"},
    {"since", OPT_VALUE, "TIME", "from TIME (2026-12-06T15:00:00Z, 2026-12-06, or 90m, 2d ago)"},
    {"until", OPT_VALUE, "TIME", "before TIME (same forms)"},
    {"json", OPT_FLAG, NULL, "print the matching lines as they are (JSON lines)"},
    {"stats", OPT_FLAG, NULL, "print the bytes scanned and the speed on stderr"},
    {NULL, OPT_FLAG, NULL, NULL},
};

const struct cli_cmd cmd_audit = {
    .name = "audit",
    .args = "FILE…",
    .summary = "search audit files: by path, identity, operation, failures, time",
    .help = "Filters combine (all must match). Examples:\n"
            "  rekey audit --path secret/ai-gateway/openai --since 7d audit.log\n"
            "  rekey audit --errors --op update audit.log.1 audit.log\n"
            "  rekey audit --actor token-ci --json audit.log | jq .path\n"
            "Header records are not shown. FILE - reads stdin. See also rekey audit verify and\n"
            "rekey audit hash.",
    .min_args = 1,
    .max_args = -1,
    .needs = 0,
    .opts = audit_opts,
    .exec = exec_audit,
};
