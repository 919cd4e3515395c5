/* rekey audit hash: prints the audit log's HMAC of a value (hmac-sha256:<hex>, keyed by the
 * store's audit salt), so a known token accessor or value can be searched for in the log
 * (`rekey audit --actor hmac-sha256:…`, grep). Locally through the barrier, or with REKEY_ADDR
 * through a server's POST /v1/sys/audit-hash/<device>, which gives the same answer.
 *
 * The value comes from stdin, or from a no-echo prompt when stdin is a terminal; never from the
 * command line. One trailing newline ("\n", then "\r") is dropped, as `kv put field=-` does. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "cli/secret-input.h"
#include "util/secret.h"

#define HASH_VALUE_MAX (256 * 1024)

/* The value: all of stdin, one trailing newline dropped, or one line typed without echo when
 * stdin is a terminal (cli/secret-input.h). */
static int
read_value(struct cli_ctx *ctx, struct secret **out)
{
    if (isatty(STDIN_FILENO))
        return cli_read_secret("Value (not echoed): ", NULL, HASH_VALUE_MAX, out, &ctx->err);
    return cli_read_secret_fd(STDIN_FILENO, "stdin", HASH_VALUE_MAX, CLI_SECRET_STRIP_NL, out,
                              &ctx->err);
}

/* Client mode: the device named by -device, else the first the server lists. */
static int
remote_hash(struct cli_ctx *ctx, const struct secret *v, char out[AUDIT_HMAC_LEN + 1])
{
    const char *dev = cli_opt(ctx, "device"), *got;
    char path[sizeof("/v1/sys/audit-hash/") + AUDIT_DEVICE_NAME_MAX + 2];
    json_t *list = NULL, *body = NULL, *resp = NULL, *jv;
    int r;

    if (dev == NULL || *dev == '\0') {
        void *it;
        if ((r = client_request(ctx->remote, "GET", "/v1/sys/audit", NULL, NULL, &list,
                                &ctx->err)) != 0)
            return r;
        it = json_object_iter(client_data(list));
        dev = it != NULL ? json_object_iter_key(it) : NULL;
        if (dev == NULL) {
            json_decref(list);
            return rk_error_set(&ctx->err, RK_ENOTFOUND, "the server has no audit device");
        }
    }
    snprintf(path, sizeof(path), "/v1/sys/audit-hash/%.*s", AUDIT_DEVICE_NAME_MAX + 1, dev);
    json_decref(list);
    if ((jv = json_stringn((const char *)v->data, v->len)) == NULL)
        return rk_error_set(&ctx->err, RK_EINVAL, "the value is not valid UTF-8 text");
    if ((body = json_pack("{s:o}", "input", jv)) == NULL)
        return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
    r = client_request(ctx->remote, "POST", path, body, NULL, &resp, &ctx->err);
    json_decref(body); /* wipes the value (json_wipe_on_free) */
    got = r == 0 ? json_string_value(json_object_get(resp, "hash")) : NULL;
    if (r == 0 && (got == NULL || strlen(got) != AUDIT_HMAC_LEN))
        r = rk_error_set(&ctx->err, RK_EIO, "the server's answer holds no hash");
    if (r == 0)
        memcpy(out, got, AUDIT_HMAC_LEN + 1);
    json_decref(resp);
    return r;
}

static int
exec_audit_hash(struct cli_ctx *ctx, int argc, char **argv)
{
    char h[AUDIT_HMAC_LEN + 1];
    struct secret *v = NULL;
    int r;

    (void)argc;
    (void)argv;
    if ((r = read_value(ctx, &v)) != 0)
        return cli_fail(ctx, r);
    if (ctx->remote != NULL)
        r = remote_hash(ctx, v, h);
    else
        r = audit_hash(ctx->br, v->data, v->len, h, &ctx->err);
    secret_free(v);
    if (r != 0)
        return cli_fail(ctx, r);
    printf("%s\n", h);
    return CLI_OK;
}

static const struct cli_opt audit_hash_opts[] = {
    {"device", OPT_VALUE, "NAME",
     "client mode: the audit device whose hash to ask for (default: the first listed)"},
    {NULL, OPT_FLAG, NULL, NULL},
};

const struct cli_cmd cmd_audit_hash = {
    .name = "audit hash",
    .args = "",
    .summary = "print the audit log's HMAC of a value read from stdin (never from argv)",
    .help = "Reads a value from stdin (one trailing newline dropped), or at a no-echo prompt\n"
            "when stdin is a terminal, and prints hmac-sha256:<hex>, the form the audit log\n"
            "gives secret strings and token accessors: HMAC-SHA256 keyed by the store's audit\n"
            "salt. Search the log for it: rekey audit --actor hmac-sha256:… FILE, or grep.\n"
            "With REKEY_ADDR set the server computes it (POST /v1/sys/audit-hash/DEVICE).\n"
            "Example: printf %s \"$accessor\" | rekey audit hash",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = audit_hash_opts,
    .exec = exec_audit_hash,
};
