/* rekey kv get: reads the current (or a given) version of a secret, like `vault kv get`. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kvfmt.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"field", OPT_VALUE, "F", "print only field F's value (raw, for scripts)"},
    {"version", OPT_VALUE, "N", "read version N instead of the current one"},
    {"mount", OPT_VALUE, "MOUNT", "prefix PATH with MOUNT/ (as vault kv -mount)"},
    {"format", OPT_VALUE, "table|json", "output format (default table)"},
    {NULL, 0, NULL, NULL},
};

static int
exec_kv_get(struct cli_ctx *ctx, int argc, char **argv)
{
    char path[PATH_MAX_LEN + 2];
    const char *field = cli_opt(ctx, "field"), *ver = cli_opt(ctx, "version");
    const char *fmt = cli_opt(ctx, "format");
    int64_t version = 0;
    struct secret *data = NULL;
    struct kv_version_meta vm;
    json_t *obj = NULL;
    json_error_t jerr;
    int r, rc = CLI_ERROR;

    (void)argc;
    if ((r = kvfmt_path(ctx, argv[0], path, sizeof(path))) != 0)
        return r;
    if (ver != NULL && parse_int64(ver, 0, INT64_MAX, &version) != 0)
        return cli_usage_error(ctx, "-version must be a version number");
    if (fmt != NULL && strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0)
        return cli_usage_error(ctx, "-format must be table or json");
    if (field != NULL) {
        struct secret *v = NULL;
        if ((r = kv_get_field(ctx->kv, path, (uint64_t)version, field, &v, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        fwrite(v->data, 1, v->len, stdout);
        if (isatty(STDOUT_FILENO))
            putchar('\n');
        secret_free(v);
        return CLI_OK;
    }
    if ((r = kv_get(ctx->kv, path, (uint64_t)version, &data, &vm, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    obj = json_loadb((const char *)data->data, data->len, 0, &jerr);
    if (obj == NULL) {
        rk_error_set(&ctx->err, RK_ECORRUPT, "the stored data of %s does not parse", path);
        rc = cli_fail(ctx, -RK_ECORRUPT);
        goto out;
    }
    if (fmt != NULL && strcmp(fmt, "json") == 0) {
        json_t *j = json_pack("{s:{s:O, s:o}}", "data", "data", obj, "metadata",
                              kvfmt_version_json(&vm));
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(j);
    } else {
        const char *k;
        json_t *v;
        size_t w = 5;

        printf("== Secret Path ==\n%s\n\n== Metadata ==\n", path);
        kvfmt_version_rows(stdout, &vm);
        printf("\n== Data ==\n");
        json_object_foreach(obj, k, v) if (strlen(k) > w) w = strlen(k);
        printf("%-*s %s\n%-*s %s\n", (int)w, "Key", "Value", (int)w, "---", "-----");
        json_object_foreach(obj, k, v)
        {
            if (json_is_string(v))
                printf("%-*s %s\n", (int)w, k, json_string_value(v));
            else {
                char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                printf("%-*s %s\n", (int)w, k, t ? t : "?");
                freezero(t, t ? strlen(t) : 0);
            }
        }
    }
    rc = CLI_OK;
out:
    json_decref(obj);
    secret_free(data);
    return rc;
}

const struct cli_cmd cmd_kv_get = {
    .name = "kv get",
    .args = "PATH",
    .summary = "read a secret's current or a given version (as vault kv get)",
    .min_args = 1,
    .max_args = 1,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE,
    .opts = opts,
    .exec = exec_kv_get,
};
