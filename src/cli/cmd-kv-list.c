/* rekey kv list: the children of a folder, like `vault kv list`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "cli/kvfmt.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"mount", OPT_VALUE, "MOUNT", "prefix PATH with MOUNT/"},
    {"format", OPT_VALUE, "table|json", "output format (default table)"},
    {NULL, 0, NULL, NULL},
};

/* Client mode: LIST /v1/secret/metadata/F. An absent or empty folder (404) is an empty list,
 * as locally. The empty prefix lists the server's only KV mount. */
static int
remote_list(struct cli_ctx *ctx, const char *path, char ***names, size_t *n)
{
    char url[PATH_MAX_LEN * 3 + 64];
    size_t ul;
    const char *sub;
    json_t *resp = NULL, *keys, *k;
    size_t i;
    int r;

    *names = NULL;
    *n = 0;
    if (path[0] == '\0') {
        if ((*names = calloc(2, sizeof(**names))) == NULL ||
            ((*names)[0] = strdup("secret/")) == NULL)
            return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
        *n = 1;
        return 0;
    }
    if ((r = client_kv_subpath(path, 1, &sub, &ctx->err)) != 0)
        return r;
    ul = (size_t)snprintf(url, sizeof(url), "/v1/secret/metadata/");
    if (client_path_escape(sub, url, sizeof(url), &ul) != 0)
        return rk_error_set(&ctx->err, RK_EINVAL, "path is too long");
    r = client_request(ctx->remote, "LIST", url, NULL, NULL, &resp, &ctx->err);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(&ctx->err);
        r = 0;
        goto out;
    }
    if (r != 0)
        goto out;
    keys = json_object_get(client_data(resp), "keys");
    if ((*names = calloc(json_array_size(keys) + 1, sizeof(**names))) == NULL) {
        r = rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(keys, i, k)
    {
        if (!json_is_string(k))
            continue;
        if (((*names)[*n] = strdup(json_string_value(k))) == NULL) {
            r = rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
            goto out;
        }
        (*n)++;
    }
out:
    json_decref(resp);
    return r;
}

static int
exec_kv_list(struct cli_ctx *ctx, int argc, char **argv)
{
    char path[PATH_MAX_LEN + 2];
    const char *fmt = cli_opt(ctx, "format"), *mount = cli_opt(ctx, "mount");
    const char *arg = argc > 0 ? argv[0] : "";
    char **names = NULL;
    size_t n = 0, al;
    int r;

    al = strlen(arg);
    while (al > 0 && arg[al - 1] == '/')
        al--;
    if (snprintf(path, sizeof(path), "%s%s%.*s", mount ? mount : "", mount && al ? "/" : "",
                 (int)al, arg) >= (int)sizeof(path))
        return cli_usage_error(ctx, "path is too long");
    if (path[0] != '\0' && (r = path_validate(path, strlen(path), &ctx->err)) != 0) {
        char shown[4 * 80 + 8];
        kvfmt_escape(path, shown, sizeof(shown));
        return cli_usage_error(ctx, "bad path '%s': %s", shown, ctx->err.msg);
    }
    if (ctx->remote != NULL)
        r = remote_list(ctx, path, &names, &n);
    else
        r = kv_list_names(ctx->kv, path, &names, &n, &ctx->err);
    if (r != 0) {
        kv_names_free(names);
        return cli_fail(ctx, r);
    }
    if (fmt != NULL && strcmp(fmt, "json") == 0) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, json_string(names[i]));
        json_dumpf(a, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(a);
    } else if (n == 0) {
        kv_names_free(names);
        fprintf(stderr, "No value found at %s\n", path[0] ? path : "/");
        return CLI_PROBLEM;
    } else {
        printf("Keys\n----\n");
        for (size_t i = 0; i < n; i++)
            printf("%s\n", cli_esc(names[i]));
    }
    kv_names_free(names);
    return CLI_OK;
}

const struct cli_cmd cmd_kv_list = {
    .name = "kv list",
    .args = "[PREFIX]",
    .summary = "list the secrets and folders under a prefix (as vault kv list)",
    .min_args = 0,
    .max_args = 1,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_kv_list,
};
