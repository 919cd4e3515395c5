/* rekey kv metadata: a secret's metadata and its versions, like `vault kv metadata get`. */
#include <stdio.h>
#include <string.h>

#include "cli/client.h"
#include "cli/kvfmt.h"
#include "util/parse.h"
#include "util/timeutil.h"

static const struct cli_opt opts[] = {
    {"mount", OPT_VALUE, "MOUNT", "prefix PATH with MOUNT/"},
    {"format", OPT_VALUE, "table|json", "output format (default table)"},
    {NULL, 0, NULL, NULL},
};

static int
exec_kv_metadata(struct cli_ctx *ctx, int argc, char **argv)
{
    char path[PATH_MAX_LEN + 2], ts[40], ts2[40];
    const char *fmt = cli_opt(ctx, "format");
    struct kv_meta *m = NULL;
    int r;

    /* Accept both `kv metadata PATH` and vault's `kv metadata get PATH`. */
    if (argc == 2 && strcmp(argv[0], "get") == 0)
        argv++;
    else if (argc != 1)
        return cli_usage_error(ctx, "expected one PATH");
    if ((r = kvfmt_path(ctx, argv[0], path, sizeof(path))) != 0)
        return r;
    if (ctx->remote != NULL)
        r = client_kv_metadata(ctx->remote, path, &m, &ctx->err);
    else
        r = kv_metadata_get(ctx->kv, path, &m, &ctx->err);
    if (r != 0)
        return cli_fail(ctx, r);
    time_format_rfc3339(m->created_us, ts, sizeof(ts));
    time_format_rfc3339(m->updated_us, ts2, sizeof(ts2));
    if (fmt != NULL && strcmp(fmt, "json") == 0) {
        json_t *vers = json_object(), *j;
        for (size_t i = 0; i < m->nversions; i++) {
            char k[24];
            snprintf(k, sizeof(k), "%llu", (unsigned long long)m->versions[i].version);
            json_object_set_new(vers, k, kvfmt_version_json(&m->versions[i]));
        }
        j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:I, s:O, s:o}", "created_time", ts,
                      "updated_time", ts2, "current_version", (json_int_t)m->current_version,
                      "latest_version", (json_int_t)m->latest_version, "oldest_version",
                      (json_int_t)m->oldest_version, "max_versions",
                      (json_int_t)(m->max_versions ? m->max_versions : KV_DEFAULT_MAX_VERSIONS),
                      "cas_required", m->cas_required, "delete_version_after",
                      (json_int_t)m->delete_version_after, "custom_metadata", m->custom_metadata,
                      "versions", vers);
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    } else {
        printf("== Metadata Path ==\n%s\n\n== Metadata ==\n", cli_esc(path));
        printf("%-22s %s\n%-22s %s\n", "Key", "Value", "---", "-----");
        printf("%-22s %s\n", "created_time", ts);
        printf("%-22s %s\n", "updated_time", ts2);
        printf("%-22s %llu\n", "current_version", (unsigned long long)m->current_version);
        printf("%-22s %llu\n", "latest_version", (unsigned long long)m->latest_version);
        printf("%-22s %llu\n", "oldest_version", (unsigned long long)m->oldest_version);
        printf("%-22s %u\n", "max_versions",
               m->max_versions ? m->max_versions : KV_DEFAULT_MAX_VERSIONS);
        printf("%-22s %s\n", "cas_required", m->cas_required ? "true" : "false");
        printf("%-22s %llds\n", "delete_version_after", (long long)m->delete_version_after);
        printf("\n== Versions ==\n%-8s %-9s %-27s %-19s %s\n", "version", "stage", "created_time",
               "fingerprint", "reason");
        for (size_t i = m->nversions; i-- > 0;) {
            const struct kv_version_meta *v = &m->versions[i];
            time_format_rfc3339(v->created_us, ts, sizeof(ts));
            printf("%-8llu %-9s %-27s %-19s %s%s\n", (unsigned long long)v->version,
                   v->destroyed ? "destroyed" : kv_stage_name(v->stage), ts,
                   cli_esc(v->fingerprint), cli_esc(v->reason),
                   kv_version_deleted(v, time_now_us()) ? " (deleted)" : "");
        }
    }
    kv_meta_free(m);
    return CLI_OK;
}

const struct cli_cmd cmd_kv_metadata = {
    .name = "kv metadata",
    .args = "[get] PATH",
    .summary = "show a secret's metadata and versions (as vault kv metadata get)",
    .min_args = 1,
    .max_args = 2,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_kv_metadata,
};
