/* rekey fingerprint: prints this store's fingerprint of a value a person holds, so they can
 * check it against what `rekey kv metadata`, `rekey history` or a log line shows without the
 * value ever being shown. Fingerprints are keyed per store (util/enc.h), so only the store can
 * compute one: locally through the barrier, or through a server (POST /v1/rekey/fingerprint).
 *
 * The value comes from stdin, or from a no-echo prompt when stdin is a terminal; never from the
 * command line. As for `kv put field=-`, one trailing newline ("\n", then "\r") is dropped. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/secret-input.h"
#include "store/barrier.h"
#include "util/enc.h"
#include "util/secret.h"

#define FP_VALUE_MAX (256 * 1024) /* as kv put */

/* Reads the value (secret-input.h): all of stdin, one trailing newline dropped, or one line
 * typed without echo when stdin is a terminal. */
static int
read_value(struct cli_ctx *ctx, struct secret **out)
{
    if (isatty(STDIN_FILENO))
        return cli_read_secret("Value (not echoed): ", NULL, FP_VALUE_MAX, out, &ctx->err);
    return cli_read_secret_fd(STDIN_FILENO, "stdin", FP_VALUE_MAX, CLI_SECRET_STRIP_NL, out,
                              &ctx->err);
}

/* Client mode: the server computes it. */
static int
remote_fingerprint(struct cli_ctx *ctx, const struct secret *v, char fp[FINGERPRINT_LEN + 1])
{
    json_t *body, *resp = NULL, *jv;
    const char *got;
    int r;

    if ((jv = json_stringn((const char *)v->data, v->len)) == NULL)
        return rk_error_set(&ctx->err, RK_EINVAL, "the value is not valid UTF-8 text");
    if ((body = json_pack("{s:o}", "value", jv)) == NULL)
        return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
    r = client_request(ctx->remote, "POST", "/v1/rekey/fingerprint", body, NULL, &resp, &ctx->err);
    json_decref(body); /* wipes the value (json_wipe_on_free) */
    got = r == 0 ? json_string_value(json_object_get(client_data(resp), "fingerprint")) : NULL;
    if (r == 0 && !fingerprint_valid(got))
        r = rk_error_set(&ctx->err, RK_EIO, "the server's answer holds no fingerprint");
    if (r == 0)
        memcpy(fp, got, FINGERPRINT_LEN + 1);
    json_decref(resp);
    return r;
}

static int
exec_fingerprint(struct cli_ctx *ctx, int argc, char **argv)
{
    struct secret *v = NULL;
    char fp[FINGERPRINT_LEN + 1];
    int r;

    (void)argc;
    (void)argv;
    if ((r = read_value(ctx, &v)) != 0)
        return cli_fail(ctx, r);
    if (ctx->remote != NULL)
        r = remote_fingerprint(ctx, v, fp);
    else
        r = barrier_fingerprint(ctx->br, v->data, v->len, fp, &ctx->err);
    secret_free(v);
    if (r != 0)
        return cli_fail(ctx, r);
    printf("%s\n", fp);
    return CLI_OK;
}

const struct cli_cmd cmd_fingerprint = {
    .name = "fingerprint",
    .args = "",
    .summary = "print this store's fingerprint of a value read from stdin (never from argv)",
    .help = "Reads a value from stdin (one trailing newline dropped, as kv put field=- does), or\n"
            "at a no-echo prompt when stdin is a terminal, and prints the fingerprint this store\n"
            "gives it: hmac: + 12 hex, keyed with the store's own fingerprint key, as shown by\n"
            "kv metadata, history, status and the logs. A secret with one string field shows\n"
            "the fingerprint of that value; one with several fields that of its data as\n"
            "canonical JSON (sorted keys, no spaces). With REKEY_ADDR set the server computes\n"
            "it (POST /v1/rekey/fingerprint, ACL path rekey/fingerprint, update).\n"
            "Example: printf %s \"$value\" | rekey fingerprint",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .exec = exec_fingerprint,
};
