/* rekey kv get: reads the current (or a given) version of a secret, like `vault kv get`.
 * Locally it reads the store; in client mode GET /v1/secret/data/P[?version=N] (and the path's
 * metadata for the version's stage and fingerprint). Both fill the same data and metadata and
 * print them with the same code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/kvfmt.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"field", OPT_VALUE, "F", "print only field F's value (raw, for scripts)"},
    {"version", OPT_VALUE, "N", "read version N instead of the current one"},
    {"mount", OPT_VALUE, "MOUNT", "prefix PATH with MOUNT/ (as vault kv -mount)"},
    {"format", OPT_VALUE, "table|json", "output format (default table)"},
    {NULL, 0, NULL, NULL},
};

/* Client mode: the version's data object (*obj) and metadata (*vm). */
static int
remote_get(struct cli_ctx *ctx, const char *path, int64_t version, json_t **obj,
           struct kv_version_meta *vm)
{
    char url[PATH_MAX_LEN * 3 + 64];
    size_t ul;
    const char *sub;
    json_t *resp = NULL, *d, *md, *data;
    struct kv_meta *m = NULL;
    int r;

    *obj = NULL;
    if ((r = client_kv_subpath(path, 0, &sub, &ctx->err)) != 0)
        return r;
    ul = (size_t)snprintf(url, sizeof(url), "/v1/secret/data/");
    if (client_path_escape(sub, url, sizeof(url), &ul) != 0)
        return rk_error_set(&ctx->err, RK_EINVAL, "path is too long");
    if (version > 0)
        snprintf(url + ul, sizeof(url) - ul, "?version=%lld", (long long)version);
    r = client_request(ctx->remote, "GET", url, NULL, NULL, &resp, &ctx->err);
    d = client_data(resp);
    md = json_object_get(d, "metadata");
    if (r == -RK_ENOTFOUND) {
        /* The local messages: a deleted or destroyed version answers 404 with its metadata. */
        long long v = (long long)json_integer_value(json_object_get(md, "version"));
        if (json_is_true(json_object_get(md, "destroyed")))
            rk_error_set(&ctx->err, RK_ENOTFOUND, "version %lld of %s is destroyed", v, path);
        else if (md != NULL)
            rk_error_set(&ctx->err, RK_ENOTFOUND, "version %lld of %s is deleted", v, path);
        else if (version > 0)
            rk_error_set(&ctx->err, RK_ENOTFOUND, "%s has no version %lld", path,
                         (long long)version);
        else
            rk_error_set(&ctx->err, RK_ENOTFOUND, "no secret at %s", path);
        goto out;
    }
    if (r != 0)
        goto out;
    data = json_object_get(d, "data");
    if (!json_is_object(data) || !json_is_object(md)) {
        r = rk_error_set(&ctx->err, RK_ECORRUPT, "the server's answer for %s has no data", path);
        goto out;
    }
    r = client_kv_metadata(ctx->remote, path, &m, &ctx->err);
    if (r != 0 && r != -RK_ENOTFOUND)
        goto out;
    rk_error_clear(&ctx->err);
    client_version_meta(md, m, vm);
    *obj = json_incref(data);
    r = 0;
out:
    kv_meta_free(m);
    json_decref(resp);
    return r;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The table of `kv get`: path, version metadata, then the fields in key order. Keys and values
 * are escaped (cli_esc): a value with a newline or an escape sequence shows as \n or \x1b here;
 * -field and -format=json give it as it is. */
static void
print_table(const char *path, const struct kv_version_meta *vm, json_t *obj)
{
    size_t n = json_object_size(obj), i = 0, w = 5;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    const char *k;
    json_t *v;

    printf("== Secret Path ==\n%s\n\n== Metadata ==\n", cli_esc(path));
    kvfmt_version_rows(stdout, vm);
    printf("\n== Data ==\n");
    json_object_foreach(obj, k, v)
    {
        if (keys != NULL)
            keys[i++] = k;
        if (strlen(cli_esc(k)) > w)
            w = strlen(cli_esc(k));
    }
    if (keys != NULL)
        qsort(keys, i, sizeof(*keys), cmp_str);
    printf("%-*s %s\n%-*s %s\n", (int)w, "Key", "Value", (int)w, "---", "-----");
    for (size_t j = 0; keys != NULL && j < i; j++) {
        v = json_object_get(obj, keys[j]);
        printf("%-*s ", (int)w, cli_esc(keys[j]));
        if (json_is_string(v)) {
            cli_fput_esc(stdout, json_string_value(v), json_string_length(v));
        } else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
            cli_fput_esc(stdout, t ? t : "?", t ? strlen(t) : 1);
            freezero(t, t ? strlen(t) : 0);
        }
        putchar('\n');
    }
    free(keys);
}

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
    if (field != NULL && ctx->remote == NULL) {
        struct secret *v = NULL;
        if ((r = kv_get_field(ctx->kv, path, (uint64_t)version, field, &v, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        fwrite(v->data, 1, v->len, stdout);
        if (isatty(STDOUT_FILENO))
            putchar('\n');
        secret_free(v);
        return CLI_OK;
    }
    memset(&vm, 0, sizeof(vm));
    if (ctx->remote != NULL) {
        if ((r = remote_get(ctx, path, version, &obj, &vm)) != 0)
            return cli_fail(ctx, r);
    } else {
        if ((r = kv_get(ctx->kv, path, (uint64_t)version, &data, &vm, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        obj = json_loadb((const char *)data->data, data->len, 0, &jerr);
        if (obj == NULL) {
            rk_error_set(&ctx->err, RK_ECORRUPT, "the stored data of %s does not parse", path);
            rc = cli_fail(ctx, -RK_ECORRUPT);
            goto out;
        }
    }
    if (field != NULL) {
        /* Client mode only: kv_get_field's rules and messages. */
        json_t *v = json_object_get(obj, field);
        if (v == NULL) {
            rk_error_set(&ctx->err, RK_ENOTFOUND, "%s has no field %.128s", path, field);
            rc = cli_fail(ctx, -RK_ENOTFOUND);
        } else if (!json_is_string(v)) {
            rk_error_set(&ctx->err, RK_EINVAL, "field %.128s of %s is not a string", field, path);
            rc = cli_fail(ctx, -RK_EINVAL);
        } else {
            fwrite(json_string_value(v), 1, json_string_length(v), stdout);
            if (isatty(STDOUT_FILENO))
                putchar('\n');
            rc = CLI_OK;
        }
        goto out;
    }
    if (fmt != NULL && strcmp(fmt, "json") == 0) {
        json_t *j =
            json_pack("{s:{s:O, s:o}}", "data", "data", obj, "metadata", kvfmt_version_json(&vm));
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(j);
    } else {
        print_table(path, &vm, obj);
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
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_kv_get,
};
