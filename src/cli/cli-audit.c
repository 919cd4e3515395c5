/* cli-audit.c: the audit log of commands on a local store (cli.h cli_audit_begin): the command
 * is recorded before it runs and its outcome after, as an EV_LOCAL_OP event (util/events.h)
 * that the audit log (audit/audit.h) subscribes to. main.c calls it around every command, so
 * no command names the audit log. The record holds the command, the path it acts on, the local
 * user and the exit status; never a value (values come from stdin, files or prompts, and a
 * field=value argument is not recorded). */
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "engine/inventory.h"
#include "store/barrier.h"
#include "util/events.h"
#include "util/timeutil.h"

static struct audit *cli_audit;
static char user[96];
static const char *op_path;
static int64_t t0_us;

static void
local_user(void)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    uid_t uid = getuid();

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
        snprintf(user, sizeof(user), "%s", res->pw_name);
    else
        snprintf(user, sizeof(user), "uid:%u", (unsigned)uid);
}

/* The path a command acts on: its first positional argument when its usage names a PATH or
 * PREFIX, skipping a literal word of the usage ("[get] PATH") and field=value arguments. */
static const char *
path_of(const struct cli_cmd *c, int argc, char **argv)
{
    if (strstr(c->args, "PATH") == NULL && strstr(c->args, "PREFIX") == NULL)
        return NULL;
    for (int i = 0; i < argc; i++) {
        char lit[72];
        if (strchr(argv[i], '=') != NULL || argv[i][0] == '-')
            continue;
        snprintf(lit, sizeof(lit), "[%.64s]", argv[i]);
        if (strstr(c->args, lit) != NULL)
            continue;
        return argv[i];
    }
    return NULL;
}

int
cli_audit_begin(struct cli_ctx *ctx, int argc, char **argv)
{
    const struct cli_cmd *c = ctx->cmd;
    struct audit_opts o = {0};
    struct rk_event ev = {0};
    struct rk_error err = {0};
    int r;

    if (!(c->needs & (CLI_NEED_STORE | CLI_NEED_RAW_STORE)) || (c->needs & CLI_NO_AUDIT) ||
        ctx->br == NULL)
        return CLI_OK;
    o.file_path = ctx->inv != NULL && ctx->inv->audit_enabled ? ctx->inv->audit_path : NULL;
    o.br = ctx->br;
    if ((r = audit_open(&o, &cli_audit, &err)) != 0 ||
        (!barrier_sealed(ctx->br) && (r = audit_devices_load(cli_audit, &err)) != 0))
        goto fail;
    if (audit_sink_count(cli_audit) == 0) { /* no audit */
        audit_free(cli_audit);
        cli_audit = NULL;
        return CLI_OK;
    }
    local_user();
    op_path = path_of(c, argc, argv);
    t0_us = time_now_us();
    ev.type = EV_LOCAL_OP;
    ev.operation = c->name;
    ev.path = op_path;
    ev.actor = user;
    if ((r = events_publish(&ev, &err)) != 0)
        goto fail;
    return CLI_OK;
fail:
    fprintf(stderr, "rekey %s: not run: %s\n", c->name, cli_esc(err.msg));
    audit_free(cli_audit);
    cli_audit = NULL;
    return CLI_ERROR;
}

int
cli_audit_end(struct cli_ctx *ctx, int rc)
{
    struct rk_event ev = {0};
    struct rk_error err = {0};
    char msg[64];

    if (cli_audit == NULL)
        return rc;
    ev.type = EV_LOCAL_OP;
    ev.operation = ctx->cmd->name;
    ev.path = op_path;
    ev.actor = user;
    ev.outcome = rc == CLI_OK ? "ok" : "failed";
    ev.status = rc;
    ev.duration_us = time_now_us() - t0_us;
    if (rc != CLI_OK) {
        snprintf(msg, sizeof(msg), "exit status %d", rc);
        ev.error = ctx->err.msg[0] != '\0' ? ctx->err.msg : msg;
    }
    if (events_publish(&ev, &err) != 0) {
        fprintf(stderr, "rekey %s: the outcome was not recorded: %s\n", ctx->cmd->name,
                cli_esc(err.msg));
        rc = CLI_ERROR;
    }
    audit_free(cli_audit);
    cli_audit = NULL;
    return rc;
}
