/* rekey kv put: writes a new version of a secret, like `vault kv put`. Values can come from
 * stdin (field=-) or a file (field=@file) so no secret needs to be typed on a command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/kvfmt.h"
#include "cli/secret-input.h"
#include "util/parse.h"

static const struct cli_opt opts[] = {
    {"cas", OPT_VALUE, "N", "check-and-set: write only if the latest version is N (0: new path)"},
    {"reason", OPT_VALUE, "TEXT", "why this version was written (kept in its metadata)"},
    {"mount", OPT_VALUE, "MOUNT", "prefix PATH with MOUNT/ (as vault kv -mount)"},
    {"format", OPT_VALUE, "table|json", "output format (default table)"},
    {NULL, 0, NULL, NULL},
};

#define VALUE_MAX (256 * 1024)

/* The value of field=- (all of stdin, or typed twice without echo when stdin is a terminal)
 * or field=@FILE, one trailing newline dropped (secret-input.h). */
static int
read_field(const char *field, const char *file, struct secret **out, struct rk_error *err)
{
    char first[320], again[320];
    int r;

    if (file != NULL)
        r = cli_read_secret_file(file, VALUE_MAX, CLI_SECRET_STRIP_NL, out, err);
    else if (!isatty(STDIN_FILENO))
        r = cli_read_secret_fd(STDIN_FILENO, "stdin", VALUE_MAX, CLI_SECRET_STRIP_NL, out, err);
    else {
        snprintf(first, sizeof(first), "Value of %s (not echoed): ", field);
        snprintf(again, sizeof(again), "Repeat the value of %s: ", field);
        r = cli_read_secret(first, again, VALUE_MAX, out, err);
    }
    return r != 0 ? rk_error_prefix(err, "field '%s'", field) : 0;
}

/* Client mode: POST /v1/secret/data/P, then the version's stage and fingerprint from its
 * metadata, so the output is the local one. */
static int
remote_put(struct cli_ctx *ctx, const char *path, json_t *obj, int64_t cas, const char *reason,
           struct kv_version_meta *vm)
{
    char url[PATH_MAX_LEN * 3 + 64];
    size_t ul;
    const char *sub;
    json_t *body = NULL, *options = NULL, *resp = NULL, *md;
    struct kv_meta *m = NULL;
    int r;

    if ((r = client_kv_subpath(path, 0, &sub, &ctx->err)) != 0)
        return r;
    ul = (size_t)snprintf(url, sizeof(url), "/v1/secret/data/");
    if (client_path_escape(sub, url, sizeof(url), &ul) != 0)
        return rk_error_set(&ctx->err, RK_EINVAL, "path is too long");
    options = json_object();
    body = json_pack("{s:O, s:o}", "data", obj, "options", options);
    if (options == NULL || body == NULL ||
        (cas >= 0 && json_object_set_new(options, "cas", json_integer(cas)) != 0) ||
        (reason != NULL && json_object_set_new(options, "reason", json_string(reason)) != 0)) {
        r = rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = client_request(ctx->remote, "POST", url, body, NULL, &resp, &ctx->err)) != 0) {
        /* The API answers a cas mismatch 400; locally it is a conflict, not a usage error. */
        if (r == -RK_EINVAL && strstr(ctx->err.msg, "check-and-set parameter did not") != NULL)
            r = -RK_ECONFLICT;
        goto out;
    }
    if ((md = client_data(resp)) == NULL) {
        r = rk_error_set(&ctx->err, RK_ECORRUPT, "the server's answer has no data");
        goto out;
    }
    r = client_kv_metadata(ctx->remote, path, &m, &ctx->err);
    if (r != 0 && r != -RK_ENOTFOUND)
        goto out;
    r = 0;
    rk_error_clear(&ctx->err);
    client_version_meta(md, m, vm);
out:
    kv_meta_free(m);
    json_decref(resp);
    json_decref(body);
    return r;
}

static int
exec_kv_put(struct cli_ctx *ctx, int argc, char **argv)
{
    char path[PATH_MAX_LEN + 2];
    struct kv_put_opts po = KV_PUT_OPTS_INIT;
    const char *cas = cli_opt(ctx, "cas"), *fmt = cli_opt(ctx, "format");
    json_t *obj = json_object();
    struct secret *data = NULL;
    struct kv_version_meta vm;
    uint64_t version = 0;
    int used_stdin = 0, inline_value = 0, r, rc = CLI_ERROR;
    char *text = NULL;
    size_t tlen;

    if (obj == NULL)
        return CLI_ERROR;
    if ((r = kvfmt_path(ctx, argv[0], path, sizeof(path))) != 0)
        goto usage;
    if (cas != NULL && parse_int64(cas, 0, INT64_MAX, &po.cas) != 0) {
        r = cli_usage_error(ctx, "-cas must be a version number (0 for a new path)");
        goto usage;
    }
    if (fmt != NULL && strcmp(fmt, "json") != 0 && strcmp(fmt, "table") != 0) {
        r = cli_usage_error(ctx, "-format must be table or json");
        goto usage;
    }
    po.reason = cli_opt(ctx, "reason");
    if (po.reason != NULL && strcmp(cli_esc(po.reason), po.reason) != 0) {
        r = cli_usage_error(ctx, "-reason must be text without control characters, got '%s'",
                            cli_esc(po.reason));
        goto usage;
    }
    po.author = kvfmt_author();
    for (int i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        struct secret *v = NULL;
        char field[256];

        if (eq == NULL || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof(field)) {
            r = cli_usage_error(ctx, "expected field=value, field=- or field=@file, got '%.*s…'",
                                (int)(eq ? eq - argv[i] : 16), argv[i]);
            goto usage;
        }
        snprintf(field, sizeof(field), "%.*s", (int)(eq - argv[i]), argv[i]);
        if (json_object_get(obj, field) != NULL) {
            r = cli_usage_error(ctx, "field '%s' is given twice", field);
            goto usage;
        }
        if (strcmp(eq + 1, "-") == 0) {
            if (used_stdin++) {
                r = cli_usage_error(ctx, "only one field can be read from stdin");
                goto usage;
            }
            r = read_field(field, NULL, &v, &ctx->err);
        } else if (eq[1] == '@') {
            r = read_field(field, eq + 2, &v, &ctx->err);
        } else {
            v = secret_from_str(eq + 1);
            inline_value = 1;
            r = v != NULL ? 0 : rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
        }
        if (r != 0) {
            rc = cli_fail(ctx, r);
            goto out;
        }
        r = json_object_set_new(obj, field, json_stringn((const char *)v->data, v->len));
        secret_free(v);
        if (r != 0) {
            rk_error_set(&ctx->err, RK_EINVAL, "field '%s': the value is not valid UTF-8", field);
            rc = cli_fail(ctx, -RK_EINVAL);
            goto out;
        }
    }
    /* Always, not only on a terminal: a script's log is where a reviewer sees it. One line. */
    if (inline_value)
        fprintf(stderr, "rekey kv put: warning: a value given on the command line is visible in "
                        "the process list and shell history; prefer field=- (stdin) or "
                        "field=@file\n");
    if (ctx->remote != NULL) {
        if ((r = remote_put(ctx, path, obj, po.cas, po.reason, &vm)) != 0) {
            rc = cli_fail(ctx, r);
            goto out;
        }
        goto print;
    }
    text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL) {
        rc = CLI_ERROR;
        goto out;
    }
    tlen = strlen(text);
    data = secret_from(text, tlen);
    freezero(text, tlen);
    if (data == NULL)
        goto out;
    if ((r = kv_put(ctx->kv, path, data, &po, &version, &ctx->err)) != 0) {
        rc = cli_fail(ctx, r);
        goto out;
    }
    if ((r = kv_get(ctx->kv, path, version, NULL, &vm, &ctx->err)) != 0) {
        rc = cli_fail(ctx, r);
        goto out;
    }
print:
    if (fmt != NULL && strcmp(fmt, "json") == 0) {
        json_t *j = kvfmt_version_json(&vm);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("== Secret Path ==\n%s\n\n== Metadata ==\n", cli_esc(path));
        kvfmt_version_rows(stdout, &vm);
    }
    rc = CLI_OK;
    goto out;
usage:
    rc = CLI_USAGE;
out:
    secret_free(data);
    json_decref(obj);
    return rc;
}

const struct cli_cmd cmd_kv_put = {
    .name = "kv put",
    .args = "PATH field=value|field=-|field=@file…",
    .summary = "write a new version of a secret (as vault kv put)",
    .help = "Each field=value pair becomes a field of the new version. field=- reads the value\n"
            "from stdin (one trailing newline is dropped; on a terminal it is typed twice and not\n"
            "echoed) and field=@FILE from a file, so that no secret has to be typed on a command\n"
            "line. The new version becomes current; the old current becomes previous. Prints\n"
            "the new version's metadata, never the values.",
    .min_args = 2,
    .max_args = -1,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_kv_put,
};
