/* rekey history: a secret's rotations and its versions. Locally from the engine's history and
 * the KV metadata; in client mode from GET /v1/rekey/history/P and GET /v1/secret/metadata/P.
 * Both fill the same events and metadata and print them with the same code. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/rotation.h"
#include "cli/kvfmt.h"
#include "util/parse.h"
#include "util/timeutil.h"

static const struct cli_opt opts[] = {
    {"json", OPT_FLAG, NULL, "print JSON"},
    {NULL, 0, NULL, NULL},
};

static int
print_event(void *arg, const struct rot_event *ev)
{
    json_t *a = arg;
    char ts[40];

    time_format_rfc3339(ev->time_us - ev->time_us % 1000000, ts, sizeof(ts));
    if (a != NULL) {
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I}", "time",
                                           ts, "op", ev->op, "result", ev->result, "from_version",
                                           (json_int_t)ev->from_version, "to_version",
                                           (json_int_t)ev->to_version, "author", ev->author,
                                           "reason", ev->reason, "message", ev->message,
                                           "duration_ms", (json_int_t)ev->duration_ms));
        return 0;
    }
    printf("%-21s %-9s %-12s %-14s %s%s%s\n", ts, cli_esc(ev->op), cli_esc(ev->result),
           cli_esc(ev->author), cli_esc(ev->message), ev->reason[0] ? " reason: " : "",
           cli_esc(ev->reason));
    return 0;
}

static void
copy_str(char *dst, size_t cap, const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);

    snprintf(dst, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* Client mode: the events of GET /v1/rekey/history/P through the local printer. */
static int
remote_events(struct cli_ctx *ctx, const char *path, json_t *events)
{
    char url[PATH_MAX_LEN * 3 + 64];
    size_t ul, i;
    json_t *resp = NULL, *e;
    int r;

    ul = (size_t)snprintf(url, sizeof(url), "/v1/rekey/history/");
    if (client_path_escape(path, url, sizeof(url), &ul) != 0)
        return rk_error_set(&ctx->err, RK_EINVAL, "path is too long");
    if ((r = client_request(ctx->remote, "GET", url, NULL, NULL, &resp, &ctx->err)) != 0) {
        json_decref(resp);
        return r;
    }
    json_array_foreach(json_object_get(client_data(resp), "events"), i, e)
    {
        struct rot_event ev;

        memset(&ev, 0, sizeof(ev));
        ev.time_us = client_time_us(json_object_get(e, "time"));
        copy_str(ev.op, sizeof(ev.op), e, "op");
        copy_str(ev.result, sizeof(ev.result), e, "result");
        copy_str(ev.author, sizeof(ev.author), e, "author");
        copy_str(ev.reason, sizeof(ev.reason), e, "reason");
        copy_str(ev.message, sizeof(ev.message), e, "message");
        ev.from_version = (uint64_t)json_integer_value(json_object_get(e, "from_version"));
        ev.to_version = (uint64_t)json_integer_value(json_object_get(e, "to_version"));
        ev.duration_ms = json_integer_value(json_object_get(e, "duration_ms"));
        print_event(events, &ev);
    }
    json_decref(resp);
    return 0;
}

static int
exec_history(struct cli_ctx *ctx, int argc, char **argv)
{
    struct engine *e = NULL;
    struct kv_meta *m = NULL;
    int json = cli_opt(ctx, "json") != NULL;
    json_t *events = json ? json_array() : NULL;
    struct rk_error perr = {0};
    int r;

    (void)argc;
    if (path_validate(argv[0], strlen(argv[0]), &perr) != 0) {
        json_decref(events);
        return cli_usage_error(ctx, "bad path '%s': %s", cli_esc(argv[0]), perr.msg);
    }
    if (ctx->remote == NULL && (r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0) {
        json_decref(events);
        return cli_fail(ctx, r);
    }
    if (!json)
        printf("== Rotations of %s ==\n%-21s %-9s %-12s %-14s %s\n", argv[0], "TIME", "OP",
               "RESULT", "BY", "WHAT");
    if (ctx->remote != NULL) {
        r = remote_events(ctx, argv[0], events);
    } else {
        r = engine_history(e, argv[0], print_event, events, &ctx->err);
        engine_free(e);
    }
    if (r != 0) {
        json_decref(events);
        return cli_fail(ctx, r);
    }
    if (ctx->remote != NULL)
        /* The server's versions: only the KV mount secret/ has a metadata route. */
        r = strncmp(argv[0], "secret/", 7) == 0
                ? client_kv_metadata(ctx->remote, argv[0], &m, &ctx->err)
                : -RK_ENOTFOUND;
    else
        r = kv_metadata_get(ctx->kv, argv[0], &m, &ctx->err);
    if (r != 0 && r != -RK_ENOTFOUND) {
        json_decref(events);
        return cli_fail(ctx, r);
    }
    if (json) {
        json_t *vers = json_array();
        for (size_t i = 0; m != NULL && i < m->nversions; i++)
            json_array_append_new(vers, kvfmt_version_json(&m->versions[i]));
        json_t *out =
            json_pack("{s:s, s:o, s:o}", "path", argv[0], "events", events, "versions", vers);
        json_dumpf(out, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(out);
    } else {
        printf("\n== Versions ==\n%-8s %-9s %-21s %-19s %-14s %s\n", "VERSION", "STAGE", "CREATED",
               "FINGERPRINT", "BY", "REASON");
        for (size_t i = m ? m->nversions : 0; i-- > 0;) {
            const struct kv_version_meta *v = &m->versions[i];
            char ts[40];
            time_format_rfc3339(v->created_us - v->created_us % 1000000, ts, sizeof(ts));
            printf("%-8llu %-9s %-21s %-19s %-14s %s\n", (unsigned long long)v->version,
                   v->destroyed ? "destroyed" : kv_stage_name(v->stage), ts,
                   cli_esc(v->fingerprint), cli_esc(v->author), cli_esc(v->reason));
        }
    }
    kv_meta_free(m);
    return CLI_OK;
}

const struct cli_cmd cmd_history = {
    .name = "history",
    .args = "PATH",
    .summary = "show a secret's rotations and versions (never the values)",
    .min_args = 1,
    .max_args = 1,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_history,
};
