/* rekey revoke: emergency rotation; the old value is retired at once, without grace. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/rotation.h"
#include "cli/kvfmt.h"
#include "cli/secret-input.h"
#include "rotators/rotator.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"reason", OPT_VALUE, "TEXT", "why (kept in the history; default \"revoke\")"},
    {"from-stdin", OPT_FLAG, NULL, "manual kinds: read the new value from stdin"},
    {"from-file", OPT_VALUE, "FILE", "manual kinds: read the new value from FILE"},
    {NULL, 0, NULL, NULL},
};

static void
show(void *arg, const char *path, const char *step, const char *msg)
{
    (void)arg;
    (void)path;
    printf("  %-8s %s\n", cli_esc(step), cli_esc(msg));
}

/* Client mode: POST /v1/rekey/revoke/P, a manual kind's value read here and sent in the body. */
static int
remote_revoke(struct cli_ctx *ctx, const char *path, struct rotate_result *res)
{
    const char *reason = cli_opt(ctx, "reason");
    int from_stdin = cli_opt(ctx, "from-stdin") != NULL;
    const char *from_file = cli_opt(ctx, "from-file");
    struct secret *value = NULL;
    json_t *body = json_object(), *data = NULL;
    const char *fp;
    int r;

    if (body == NULL ||
        (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0)) {
        json_decref(body);
        return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
    }
    /* Without --from-*, a terminal is prompted only when the server says the entry needs a
     * value (needs_input: a manual entry with no candidate waiting for its target). */
    if ((r = cli_read_value(ctx, path, from_stdin, from_file, 0, &value)) != 0)
        goto out;
    if (value == NULL && isatty(STDIN_FILENO)) {
        char url[PATH_MAX_LEN * 3 + 64];
        size_t ul = (size_t)snprintf(url, sizeof(url), "/v1/rekey/status/");
        json_t *resp = NULL;
        struct rk_error err = {0};
        if (client_path_escape(path, url, sizeof(url), &ul) == 0 &&
            client_request(ctx->remote, "GET", url, NULL, NULL, &resp, &err) == 0 &&
            json_is_true(json_object_get(client_data(resp), "needs_input")))
            r = cli_read_value(ctx, path, 0, NULL, 1, &value);
        json_decref(resp);
        if (r != 0)
            goto out;
    }
    if (value != NULL &&
        json_object_set_new(body, "value", json_stringn((const char *)value->data, value->len)) !=
            0) {
        r = rk_error_set(&ctx->err, RK_EINVAL,
                         "the new value for %s is not valid UTF-8 text; nothing was stored", path);
        goto out;
    }
    r = client_rekey_post(ctx->remote, "revoke", path, body, &data, &ctx->err);
    client_print_steps(data);
    res->old_version = (uint64_t)json_integer_value(json_object_get(data, "old_version"));
    res->new_version = (uint64_t)json_integer_value(json_object_get(data, "new_version"));
    fp = json_string_value(json_object_get(data, "new_fingerprint"));
    snprintf(res->new_fp, sizeof(res->new_fp), "%s", fp != NULL ? fp : "");
out:
    secret_free(value);
    json_decref(data);
    json_decref(body);
    return r;
}

static int
exec_revoke(struct cli_ctx *ctx, int argc, char **argv)
{
    struct rotate_opts ro;
    struct rotate_result res;
    struct rot_input in;
    struct engine *e = NULL;
    struct secret *value = NULL;
    int from_stdin = cli_opt(ctx, "from-stdin") != NULL;
    const char *from_file = cli_opt(ctx, "from-file");
    int r;

    (void)argc;
    memset(&in, 0, sizeof(in));
    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_REVOKE;
    ro.reason = cli_opt(ctx, "reason");
    ro.author = kvfmt_author();
    ro.input = &in;
    ro.progress = show;
    memset(&res, 0, sizeof(res));
    if (ctx->remote != NULL) {
        printf("revoking %s:\n", argv[0]);
        r = remote_revoke(ctx, argv[0], &res);
    } else {
        /* A manual kind's value is read here, before the engine runs (the rotator never reads
         * input): --from-*, or a prompt when the entry needs one (cli_needs_input). */
        if (from_stdin || from_file != NULL)
            r = cli_read_value(ctx, argv[0], from_stdin, from_file, 0, &value);
        else
            r = cli_read_value(ctx, argv[0], 0, NULL,
                               isatty(STDIN_FILENO) && cli_needs_input(ctx, argv[0]), &value);
        if (r != 0)
            return cli_fail(ctx, r);
        in.value = value;
        if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0) {
            secret_free(value);
            return cli_fail(ctx, r);
        }
        printf("revoking %s:\n", argv[0]);
        r = engine_rotate(e, argv[0], &ro, &res, &ctx->err);
        engine_free(e);
        secret_free(value);
    }
    if (r != 0)
        return cli_fail(ctx, r);
    printf("%s: v%llu (%s) is current; v%llu was retired without grace\n", argv[0],
           (unsigned long long)res.new_version, cli_esc(res.new_fp),
           (unsigned long long)res.old_version);
    return CLI_OK;
}

const struct cli_cmd cmd_revoke = {
    .name = "revoke",
    .args = "PATH",
    .summary = "emergency: rotate now and retire the old value without grace",
    .help = "Rotates PATH and retires the old value at once. Kinds whose old value only a person\n"
            "can retire (at a provider's console) open an action-required item instead; close it\n"
            "with 'rekey done PATH'.",
    .min_args = 1,
    .max_args = 1,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_revoke,
};
