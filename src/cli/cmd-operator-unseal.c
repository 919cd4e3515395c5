/* rekey operator unseal: gives unseal shares to a sealed rekey server (PUT /v1/sys/unseal), like
 * `vault operator unseal`. A share is never taken from the command line: it is typed at a no-echo
 * prompt, or read from stdin when stdin is not a terminal (one share per line; each is sent until
 * the server is unsealed). A share of the wrong length or encoding is refused here, before it is
 * sent (the server refuses it too). Prints the seal status the server answers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/secret-input.h"
#include "store/barrier.h"
#include "store/shamir.h"
#include "util/secret.h"

#define SHARE_LINE_MAX 1024

static const struct cli_opt opts[] = {
    {"reset", OPT_FLAG, NULL, "discard the shares given so far and start again"},
    {NULL, 0, NULL, NULL},
};

/* The seal status as `vault operator unseal` prints it. */
static void
print_status(const json_t *st)
{
    int sealed = json_is_true(json_object_get(st, "sealed"));
    const char *type = json_string_value(json_object_get(st, "type"));
    const char *nonce = json_string_value(json_object_get(st, "nonce"));
    const char *version = json_string_value(json_object_get(st, "version"));

    printf("%-18s %s\n%-18s %s\n", "Key", "Value", "---", "-----");
    printf("%-18s %s\n", "Seal Type", type ? cli_esc(type) : "shamir");
    printf("%-18s %s\n", "Initialized",
           json_is_true(json_object_get(st, "initialized")) ? "true" : "false");
    printf("%-18s %s\n", "Sealed", sealed ? "true" : "false");
    printf("%-18s %lld\n", "Total Shares", (long long)json_integer_value(json_object_get(st, "n")));
    printf("%-18s %lld\n", "Threshold", (long long)json_integer_value(json_object_get(st, "t")));
    if (sealed) {
        printf("%-18s %lld/%lld\n", "Unseal Progress",
               (long long)json_integer_value(json_object_get(st, "progress")),
               (long long)json_integer_value(json_object_get(st, "t")));
        printf("%-18s %s\n", "Unseal Nonce", cli_esc(nonce));
    }
    printf("%-18s %s\n", "Version", cli_esc(version));
}

/* Reads one line of stdin (a share) into buf, a byte at a time (no stdio buffer keeps a copy);
 * trailing blanks and "\r" are dropped. Returns its length, -1 at the end of input, or -2 when
 * the line is longer than buf holds (read to its end; nothing is kept). */
static long
read_line(struct secret *buf)
{
    size_t n = 0, over = 0;
    unsigned char c = 0;
    ssize_t rd = 0;

    for (;;) {
        rd = read(STDIN_FILENO, &c, 1);
        if (rd < 0 && errno == EINTR)
            continue;
        if (rd <= 0 || c == '\n')
            break;
        if (n + 1 < buf->len)
            buf->data[n++] = c;
        else
            over++;
    }
    c = 0;
    buf->data[n] = '\0';
    while (n > 0 &&
           (buf->data[n - 1] == '\r' || buf->data[n - 1] == ' ' || buf->data[n - 1] == '\t'))
        buf->data[--n] = '\0';
    if (over > 0) {
        secure_wipe(buf->data, buf->len);
        return -2;
    }
    if (rd <= 0 && n == 0)
        return -1;
    return (long)n;
}

/* Sends one share (or a reset); *status gets the new seal status. */
static int
send_share(struct cli_ctx *ctx, const char *share, size_t len, json_t **status)
{
    json_t *body =
        share != NULL ? json_pack("{s:s%}", "key", share, len) : json_pack("{s:b}", "reset", 1);
    int r;

    json_decref(*status);
    *status = NULL;
    if (body == NULL)
        return rk_error_set(&ctx->err, RK_EINVAL, "the share is not valid text");
    r = client_request(ctx->remote, "PUT", "/v1/sys/unseal", body, NULL, status, &ctx->err);
    json_decref(body);
    return r;
}

static int
exec_unseal(struct cli_ctx *ctx, int argc, char **argv)
{
    json_t *st = NULL;
    struct secret *line = NULL, *share = NULL;
    size_t n = 0;
    long lineno = 0;
    int r, rc = CLI_ERROR, tty = isatty(STDIN_FILENO), sent = 0;

    (void)argc;
    (void)argv;
    if (cli_opt(ctx, "reset") != NULL) {
        if ((r = send_share(ctx, NULL, 0, &st)) != 0)
            goto fail;
        print_status(st);
        rc = CLI_OK;
        goto out;
    }
    if ((r = client_request(ctx->remote, "GET", "/v1/sys/seal-status", NULL, NULL, &st,
                            &ctx->err)) != 0)
        goto fail;
    if (!json_is_true(json_object_get(st, "initialized"))) {
        rk_error_set(&ctx->err, RK_ENOTFOUND,
                     "rekey at %s is not initialised: run 'rekey operator init' first",
                     client_addr(ctx->remote));
        rc = cli_fail(ctx, -RK_ENOTFOUND);
        goto out;
    }
    while (json_is_true(json_object_get(st, "sealed"))) {
        if (tty) {
            if (sent > 0) /* one share per run on a terminal, as vault */
                break;
            if ((r = cli_read_secret("Unseal share (will be hidden): ", NULL, SHARE_LINE_MAX, &line,
                                     &ctx->err)) != 0) {
                rk_error_prefix(&ctx->err, "unseal share");
                rc = cli_fail(ctx, r);
                goto out;
            }
            n = line->len;
        } else {
            long got;
            if (line == NULL && (line = secret_new(SHARE_LINE_MAX)) == NULL) {
                r = rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
                goto fail;
            }
            lineno++;
            if ((got = read_line(line)) == -2) {
                r = rk_error_set(&ctx->err, RK_EINVAL,
                                 "line %ld of stdin is longer than a share (%d bytes); not sent",
                                 lineno, SHARE_LINE_MAX - 1);
                goto fail;
            }
            if (got < 0) {
                if (sent == 0) {
                    rk_error_set(&ctx->err, RK_EINVAL,
                                 "no unseal share on stdin: pipe one share per line, or run on a "
                                 "terminal to type it");
                    rc = cli_fail(ctx, -RK_ECONFIG);
                    goto out;
                }
                break;
            }
            n = (size_t)got;
            if (n == 0)
                continue;
        }
        r = shamir_share_parse((const char *)line->data, n, ROOT_KEY_LEN, &share, &ctx->err);
        if (tty) {
            secret_free(line);
            line = NULL;
        } else {
            secure_wipe(line->data, line->len);
        }
        if (r != 0) {
            if (!tty)
                rk_error_prefix(&ctx->err, "line %ld of stdin, not sent", lineno);
            else
                rk_error_prefix(&ctx->err, "not sent");
            goto fail;
        }
        r = send_share(ctx, (const char *)share->data, share->len, &st);
        secret_free(share);
        share = NULL;
        if (r != 0)
            goto fail;
        sent++;
    }
    print_status(st);
    rc = CLI_OK;
    goto out;
fail:
    /* A refused share is the server's 400: an error of the input, not of the usage. */
    rc = cli_fail(ctx, r == -RK_EINVAL ? -RK_EBADKEY : r);
out:
    secret_free(line);
    json_decref(st);
    return rc;
}

const struct cli_cmd cmd_operator_unseal = {
    .name = "operator unseal",
    .args = "",
    .summary = "give unseal shares to a sealed rekey server (REKEY_ADDR)",
    .help = "Prompts for one share without echo, or reads shares from stdin (one per line) when\n"
            "stdin is not a terminal; a share is never taken from the command line, where the\n"
            "process list would show it. Each run on a terminal gives one share, as\n"
            "`vault operator unseal`; the server unseals once it has the threshold.",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_REMOTE_ONLY,
    .opts = opts,
    .exec = exec_unseal,
};
