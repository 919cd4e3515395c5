/* rekey kv list: the children of a folder, like `vault kv list`. */
#include <stdio.h>
#include <string.h>

#include "kvfmt.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"mount", OPT_VALUE, "MOUNT", "prefix PATH with MOUNT/"},
    {"format", OPT_VALUE, "table|json", "output format (default table)"},
    {NULL, 0, NULL, NULL},
};

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
    if ((r = kv_list_names(ctx->kv, path, &names, &n, &ctx->err)) != 0)
        return cli_fail(ctx, r);
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
            printf("%s\n", names[i]);
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
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE,
    .opts = opts,
    .exec = exec_kv_list,
};
