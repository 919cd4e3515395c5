/* rekey operator init: creates the store's keyring and splits the root key into unseal shares
 * (printed once) or writes it to a key file. */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/token.h"
#include "cli/cli.h"
#include "cli/client.h"
#include "store/barrier.h"
#include "store/shamir.h"
#include "cli/unseal.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"key-shares", OPT_VALUE, "N", "number of unseal shares to create (default 5)"},
    {"key-threshold", OPT_VALUE, "K", "shares needed to unseal (default 3)"},
    {"key-file", OPT_VALUE, "PATH", "write the root key to PATH (mode 0600) instead of shares"},
    {NULL, 0, NULL, NULL},
};

static void
print_shares(const char *const *shares, int64_t n, int64_t k)
{
    for (int64_t i = 0; i < n; i++)
        printf("Unseal Share %lld: %s\n", (long long)(i + 1), shares[i]);
    printf("\nInitialised the store with %lld unseal share%s; %lld of them unseal it.\n"
           "The shares are shown only now: hand them to different people. rekey keeps no "
           "copy.\n",
           (long long)n, n > 1 ? "s" : "", (long long)k);
}

static void
print_root_token(const char *token)
{
    printf("\nInitial Root Token: %s\n\nThe root token has every permission on rekey server's "
           "API; create narrower tokens\nwith it and revoke it when you no longer need it.\n",
           token);
}

/* Client mode: PUT /v1/sys/init; the server keeps its store sealed until the shares unseal it. */
static int
remote_init(struct cli_ctx *ctx, int64_t n, int64_t k)
{
    const char *shares[SHAMIR_MAX_SHARES];
    json_t *body =
        json_pack("{s:I, s:I}", "secret_shares", (json_int_t)n, "secret_threshold", (json_int_t)k);
    json_t *resp = NULL, *keys, *tok;
    int r;

    if (body == NULL)
        return cli_fail(ctx, rk_error_set(&ctx->err, RK_ENOMEM, "out of memory"));
    r = client_request(ctx->remote, "PUT", "/v1/sys/init", body, NULL, &resp, &ctx->err);
    json_decref(body);
    if (r == -RK_EINVAL && strstr(ctx->err.msg, "already initialized") != NULL)
        r = rk_error_set(&ctx->err, RK_EEXISTS, "the store is already initialised");
    if (r != 0) {
        json_decref(resp);
        return cli_fail(ctx, r == -RK_EINVAL ? -RK_ECONFIG : r);
    }
    keys = json_object_get(resp, "keys");
    tok = json_object_get(resp, "root_token");
    if ((int64_t)json_array_size(keys) != n || !json_is_string(tok)) {
        json_decref(resp);
        rk_error_set(&ctx->err, RK_ECORRUPT, "the server's init answer lacks the shares");
        return cli_fail(ctx, -RK_ECORRUPT);
    }
    for (int64_t i = 0; i < n; i++) {
        shares[i] = json_string_value(json_array_get(keys, (size_t)i));
        if (shares[i] == NULL)
            shares[i] = "";
    }
    print_shares(shares, n, k);
    print_root_token(json_string_value(tok));
    json_decref(resp);
    return CLI_OK;
}

static int
exec_init(struct cli_ctx *ctx, int argc, char **argv)
{
    struct secret *root = NULL, *shares[SHAMIR_MAX_SHARES] = {0}, *token = NULL;
    const char *keyfile = cli_opt(ctx, "key-file");
    const char *ns = cli_opt(ctx, "key-shares"), *ks = cli_opt(ctx, "key-threshold");
    int64_t n = 5, k = 3;
    char seal[128];
    int r, rc = CLI_ERROR, wrote_keyfile = 0;

    (void)argc;
    (void)argv;
    if (ns != NULL && parse_int64(ns, 1, SHAMIR_MAX_SHARES, &n) != 0)
        return cli_usage_error(ctx, "-key-shares must be a number from 1 to %d", SHAMIR_MAX_SHARES);
    if (ks != NULL && parse_int64(ks, 1, SHAMIR_MAX_SHARES, &k) != 0)
        return cli_usage_error(ctx, "-key-threshold must be a number from 1 to %d",
                               SHAMIR_MAX_SHARES);
    if (keyfile != NULL && (ns != NULL || ks != NULL))
        return cli_usage_error(ctx, "-key-file cannot be combined with -key-shares/-key-threshold");
    if (k > n)
        return cli_usage_error(ctx, "-key-threshold (%lld) cannot exceed -key-shares (%lld)",
                               (long long)k, (long long)n);
    if (k == 1 && n > 1)
        return cli_usage_error(ctx, "-key-threshold 1 with several shares would make every share "
                                    "the root key; use -key-shares=1 or a threshold of 2 or more");
    if (ctx->remote != NULL) {
        if (keyfile != NULL)
            return cli_usage_error(ctx, "-key-file writes a local file: a server started with a "
                                        "key file is initialised on its host with "
                                        "'rekey operator init -key-file PATH' (unset REKEY_ADDR)");
        return remote_init(ctx, n, k);
    }
    if (barrier_initialized(ctx->br)) {
        rk_error_set(&ctx->err, RK_EEXISTS, "the store is already initialised");
        return cli_fail(ctx, -RK_EEXISTS);
    }
    root = secret_new(ROOT_KEY_LEN);
    if (root == NULL || RAND_bytes(root->data, ROOT_KEY_LEN) != 1) {
        rk_error_set(&ctx->err, RK_EINTERNAL, "cannot draw a root key from the random generator");
        goto fail;
    }
    if (keyfile != NULL) {
        if ((r = keyfile_write(keyfile, root, &ctx->err)) != 0)
            goto fail;
        wrote_keyfile = 1;
        snprintf(seal, sizeof(seal), "{\"type\":\"keyfile\"}");
    } else {
        if ((r = shamir_split(root, (unsigned)n, (unsigned)k, shares, &ctx->err)) != 0)
            goto fail;
        snprintf(seal, sizeof(seal), "{\"type\":\"shamir\",\"shares\":%lld,\"threshold\":%lld}",
                 (long long)n, (long long)k);
    }
    if ((r = barrier_init(ctx->br, root, seal, &ctx->err)) != 0)
        goto fail;
    /* The initial root token for the HTTP API (rekey server), shown once like Vault's. */
    if ((r = token_create_root(ctx->br, NULL, &token, &ctx->err)) != 0) {
        rk_error_prefix(&ctx->err, "the store is initialised but creating the root token failed");
        rc = cli_fail(ctx, r);
        goto out;
    }
    if (keyfile != NULL) {
        printf("Initialised the store. The root key is in %s (mode 0600).\n"
               "Keep that file apart from the store: whoever has both has every secret.\n",
               keyfile);
    } else {
        const char *text[SHAMIR_MAX_SHARES];
        for (int64_t i = 0; i < n; i++)
            text[i] = (const char *)shares[i]->data;
        print_shares(text, n, k);
    }
    print_root_token((const char *)token->data);
    rc = CLI_OK;
    goto out;
fail:
    rc = cli_fail(ctx, -RK_EINTERNAL);
    if (wrote_keyfile)
        unlink(keyfile);
out:
    for (int64_t i = 0; i < n; i++)
        secret_free(shares[i]);
    secret_free(root);
    secret_free(token);
    return rc;
}

const struct cli_cmd cmd_operator_init = {
    .name = "operator init",
    .args = "",
    .summary = "create the store and its root key (unseal shares or a key file)",
    .help = "Creates the encrypted store named by the config (store.path) or REKEY_STORE.\n"
            "By default the root key is split into 5 Shamir shares, any 3 of which unseal the\n"
            "store; they are printed once. With -key-file the root key is written to a new file\n"
            "(mode 0600) for unattended use: set REKEY_KEY_FILE or store.key_file to use it.",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_OPT_CONFIG | CLI_NEED_RAW_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_init,
};
