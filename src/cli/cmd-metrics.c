/* rekey metrics: the Prometheus text of the local store's entries (the per-entry families of
 * docs/metrics.md, with rekey_build_info), as `GET /v1/sys/metrics?format=prometheus` shows
 * them on a server. For a node_exporter textfile collector or a look by hand; the server's own
 * counters (requests, rotations it ran) exist only in a running server. */
#include <stdio.h>

#include "cli/cli.h"
#include "engine/inventory.h"
#include "metrics/metrics.h"
#include "util/timeutil.h"

static int
exec_metrics(struct cli_ctx *ctx, int argc, char **argv)
{
    struct prom_buf b = {0};
    int r;

    (void)argc;
    (void)argv;
    metrics_render_build(&b);
    if ((r = metrics_render_store(&b, ctx->kv, ctx->inv, time_now(), &ctx->err)) != 0) {
        prom_buf_free(&b);
        return cli_fail(ctx, r);
    }
    if (b.oom) {
        prom_buf_free(&b);
        return cli_fail(ctx, rk_error_set(&ctx->err, RK_ENOMEM, "out of memory"));
    }
    if (fwrite(b.p, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
        prom_buf_free(&b);
        return cli_fail(ctx, rk_error_set(&ctx->err, RK_EIO, "writing the metrics failed"));
    }
    prom_buf_free(&b);
    return CLI_OK;
}

const struct cli_cmd cmd_metrics = {
    .name = "metrics",
    .args = "",
    .summary = "print the entries' metrics in Prometheus text format (from the local store)",
    .help = "Prints what `GET /v1/sys/metrics?format=prometheus` shows of the entries: last and\n"
            "next rotation, overdue, state, consecutive failures, version, action required,\n"
            "expiry (docs/metrics.md), read from the store as `rekey status` reads it, so\n"
            "rotations run by any process count. For a node_exporter textfile collector:\n"
            "  rekey metrics > /var/lib/node_exporter/rekey.prom.tmp &&\n"
            "    mv /var/lib/node_exporter/rekey.prom.tmp /var/lib/node_exporter/rekey.prom\n"
            "Request and latency counters exist only in a running server (sys/metrics).",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE,
    .opts = NULL,
    .exec = exec_metrics,
};
