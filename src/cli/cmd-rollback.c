/* rekey rollback: returns a secret to its previous (or a given) version through the same
 * apply/test/promote/reload steps as a rotation, so the consumers follow. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/rotation.h"
#include "cli/kvfmt.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"to", OPT_VALUE, "VERSION", "the version to return to (default: the previous one)"},
    {"reason", OPT_VALUE, "TEXT", "why (kept in the history)"},
    {"dry-run", OPT_FLAG, NULL, "print the plan; change nothing"},
    {NULL, 0, NULL, NULL},
};

static void
show(void *arg, const char *path, const char *step, const char *msg)
{
    (void)arg;
    (void)path;
    printf("  %-8s %s\n", cli_esc(step), cli_esc(msg));
}

/* Client mode: POST /v1/rekey/rollback/P; the answer's steps and result fill the local output. */
static int
remote_rollback(struct cli_ctx *ctx, const char *path, uint64_t to, int dry,
                struct rotate_result *res)
{
    const char *reason = cli_opt(ctx, "reason");
    json_t *body = json_pack("{s:b}", "dry_run", dry), *data = NULL;
    const char *fp;
    int r;

    if (body == NULL ||
        (to > 0 && json_object_set_new(body, "to_version", json_integer((json_int_t)to)) != 0) ||
        (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0)) {
        json_decref(body);
        return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
    }
    r = client_rekey_post(ctx->remote, "rollback", path, body, &data, &ctx->err);
    json_decref(body);
    client_print_steps(data);
    res->old_version = (uint64_t)json_integer_value(json_object_get(data, "old_version"));
    res->new_version = (uint64_t)json_integer_value(json_object_get(data, "new_version"));
    fp = json_string_value(json_object_get(data, "new_fingerprint"));
    snprintf(res->new_fp, sizeof(res->new_fp), "%s", fp != NULL ? fp : "");
    json_decref(data);
    return r;
}

static int
exec_rollback(struct cli_ctx *ctx, int argc, char **argv)
{
    struct rotate_opts ro;
    struct rotate_result res;
    struct engine *e = NULL;
    const char *to = cli_opt(ctx, "to");
    int64_t v = 0;
    int r;

    (void)argc;
    if (to != NULL && parse_int64(to, 1, INT64_MAX, &v) != 0)
        return cli_usage_error(ctx, "--to must be a version number");
    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_ROLLBACK;
    ro.to_version = (uint64_t)v;
    ro.reason = cli_opt(ctx, "reason");
    ro.author = kvfmt_author();
    ro.dry_run = cli_opt(ctx, "dry-run") != NULL;
    ro.progress = show;
    memset(&res, 0, sizeof(res));
    if (ctx->remote != NULL) {
        printf("rolling back %s:\n", argv[0]);
        r = remote_rollback(ctx, argv[0], ro.to_version, ro.dry_run, &res);
    } else {
        if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        printf("rolling back %s:\n", argv[0]);
        r = engine_rotate(e, argv[0], &ro, &res, &ctx->err);
        engine_free(e);
    }
    if (r != 0)
        return cli_fail(ctx, r);
    if (ro.dry_run)
        printf("dry run: nothing was changed\n");
    else
        printf("%s: v%llu is current again (%s); v%llu is previous\n", argv[0],
               (unsigned long long)res.new_version, cli_esc(res.new_fp),
               (unsigned long long)res.old_version);
    return CLI_OK;
}

const struct cli_cmd cmd_rollback = {
    .name = "rollback",
    .args = "PATH",
    .summary = "make the previous (or a given) version current again, consumers included",
    .min_args = 1,
    .max_args = 1,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_rollback,
};
