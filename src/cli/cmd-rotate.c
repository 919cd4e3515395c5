/* rekey rotate: rotates one secret, the due ones, or all of them, through the six steps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/inventory.h"
#include "engine/rotation.h"
#include "engine/schedule.h"
#include "cli/kvfmt.h"
#include "cli/secret-input.h"
#include "rotators/rotator.h"
#include "util/parse.h"
#include "util/timeutil.h"

static const struct cli_opt opts[] = {
    {"reason", OPT_VALUE, "TEXT", "why (kept in the version's metadata and the history)"},
    {"dry-run", OPT_FLAG, NULL, "print each step it would take; change nothing"},
    {"due", OPT_FLAG, NULL, "rotate every secret that is due or overdue"},
    {"all", OPT_FLAG, NULL, "rotate every secret whose kind is implemented"},
    {"yes", OPT_FLAG, NULL, "do not ask for confirmation (needed without a terminal)"},
    {"from-stdin", OPT_FLAG, NULL, "manual kinds: read the new value from stdin"},
    {"from-file", OPT_VALUE, "FILE", "manual kinds: read the new value from FILE"},
    {"wait", OPT_VALUE, "SECONDS",
     "wait up to SECONDS for another rotation of the path (default 0)"},
    {NULL, 0, NULL, NULL},
};

static void
show_progress(void *arg, const char *path, const char *step, const char *msg)
{
    int verbose = *(int *)arg;

    if (verbose)
        printf("  %-8s %s\n", cli_esc(step), cli_esc(msg));
    (void)path;
}

static int
rotate_one(struct cli_ctx *ctx, struct engine *e, const char *path, int verbose,
           const struct rot_input *in, int64_t wait_ms)
{
    struct rotate_opts ro;
    struct rotate_result res;
    int r;

    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_ROTATE;
    ro.reason = cli_opt(ctx, "reason");
    ro.author = kvfmt_author();
    ro.dry_run = cli_opt(ctx, "dry-run") != NULL;
    ro.input = in;
    ro.lock_wait_ms = wait_ms;
    ro.progress = show_progress;
    ro.arg = &verbose;
    rk_error_clear(&ctx->err);
    r = engine_rotate(e, path, &ro, &res, &ctx->err);
    if (ro.dry_run) {
        if (r == 0)
            printf("dry run: nothing was changed\n");
        return r;
    }
    if (r == 0)
        printf("%s%s%s: rotated v%llu -> v%llu (%s)\n", cli_color(ctx, "green"), cli_esc(path),
               cli_color(ctx, "reset"), (unsigned long long)res.old_version,
               (unsigned long long)res.new_version, cli_esc(res.new_fp));
    else
        fprintf(stderr, "%s%s%s: %s\n", cli_color(ctx, "red"), cli_esc(path),
                cli_color(ctx, "reset"), cli_esc(ctx->err.msg));
    if (r == -RK_EIO || r == -RK_ECORRUPT)
        fprintf(stderr,
                "%s: the rotation stopped between two steps; its journal is kept, and "
                "'rekey recover' (or the daemon) finishes or undoes it\n",
                cli_esc(path));
    return r;
}

/* ---- client mode: the same output through POST /v1/rekey/rotate/P ---- */

/* 1 when the server says the next rotation of an entry (a status element) needs a value from
 * a person: the entry's flags (rotator_flags on the server), and no candidate waits for its
 * target (a pending one is taken up again, no second value is asked for). */
static int
entry_needs_input(const json_t *e)
{
    return json_is_true(json_object_get(e, "needs_input"));
}

/* entry_needs_input of path, asked of the server; 0 when it cannot say. */
static int
remote_needs_input(struct cli_ctx *ctx, const char *path)
{
    char url[PATH_MAX_LEN * 3 + 64];
    size_t ul = (size_t)snprintf(url, sizeof(url), "/v1/rekey/status/");
    json_t *resp = NULL;
    struct rk_error err = {0};
    int needs = 0;

    if (client_path_escape(path, url, sizeof(url), &ul) == 0 &&
        client_request(ctx->remote, "GET", url, NULL, NULL, &resp, &err) == 0)
        needs = entry_needs_input(client_data(resp));
    json_decref(resp);
    return needs;
}

/* rotate_one through the API. value: a manual kind's new value, or NULL. The server does not
 * wait for another rotation's lock, so --wait retries here while it answers 409. Returns 0,
 * -RK_EUNAVAILABLE when the candidate waits for its target (pending), or another error. */
static int
remote_rotate_one(struct cli_ctx *ctx, const char *path, int verbose, const struct secret *value,
                  int64_t wait_ms)
{
    const char *reason = cli_opt(ctx, "reason");
    int dry = cli_opt(ctx, "dry-run") != NULL;
    int64_t deadline = time_mono_ms() + wait_ms;
    json_t *body, *data = NULL;
    int r;

    body = json_pack("{s:b}", "dry_run", dry);
    if (body == NULL ||
        (reason != NULL && json_object_set_new(body, "reason", json_string(reason)) != 0)) {
        json_decref(body);
        return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
    }
    if (value != NULL &&
        json_object_set_new(body, "value", json_stringn((const char *)value->data, value->len)) !=
            0) {
        json_decref(body);
        return rk_error_set(&ctx->err, RK_EINVAL,
                            "the new value for %s is not valid UTF-8 text; nothing was stored",
                            path);
    }
    rk_error_clear(&ctx->err);
    for (;;) {
        r = client_rekey_post(ctx->remote, "rotate", path, body, &data, &ctx->err);
        if (r != -RK_EBUSY || time_mono_ms() >= deadline)
            break;
        json_decref(data);
        data = NULL;
        usleep(250 * 1000);
    }
    json_decref(body);
    if (verbose)
        client_print_steps(data);
    if (dry) {
        if (r == 0)
            printf("dry run: nothing was changed\n");
        else
            fprintf(stderr, "%s%s%s: %s\n", cli_color(ctx, "red"), cli_esc(path),
                    cli_color(ctx, "reset"), cli_esc(ctx->err.msg));
        json_decref(data);
        return r;
    }
    if (r == 0)
        printf("%s%s%s: rotated v%llu -> v%llu (%s)\n", cli_color(ctx, "green"), cli_esc(path),
               cli_color(ctx, "reset"),
               (unsigned long long)json_integer_value(json_object_get(data, "old_version")),
               (unsigned long long)json_integer_value(json_object_get(data, "new_version")),
               cli_esc(json_string_value(json_object_get(data, "new_fingerprint"))));
    else
        fprintf(stderr, "%s%s%s: %s\n", cli_color(ctx, "red"), cli_esc(path),
                cli_color(ctx, "reset"), cli_esc(ctx->err.msg));
    if (r == -RK_EIO && data != NULL)
        fprintf(stderr,
                "%s: the rotation stopped between two steps; its journal is kept, and "
                "'rekey recover' (or the daemon) finishes or undoes it\n",
                cli_esc(path));
    /* The server answers 503 for a candidate left waiting for its target ("pending": true). */
    if (r != 0 && json_is_true(json_object_get(data, "pending")))
        r = -RK_EUNAVAILABLE;
    json_decref(data);
    return r;
}

/* The new value of a manual kind: --from-stdin, --from-file, or a prompt on a terminal. */
static int
remote_value(struct cli_ctx *ctx, const char *path, int needs_input, struct secret **value)
{
    int from_stdin = cli_opt(ctx, "from-stdin") != NULL;
    const char *from_file = cli_opt(ctx, "from-file");

    *value = NULL;
    if (cli_opt(ctx, "dry-run") != NULL)
        return 0;
    if (!from_stdin && from_file == NULL && !needs_input)
        return 0;
    return cli_read_value(ctx, path, from_stdin, from_file, 1, value);
}

/* The new value of a manual kind for a local rotation, read here before the engine runs (the
 * rotator never reads input): --from-stdin, --from-file, or a prompt on a terminal when the
 * entry needs one (cli_needs_input: not for a candidate that waits for its target). */
static int
local_value(struct cli_ctx *ctx, const char *path, struct secret **value)
{
    int from_stdin = cli_opt(ctx, "from-stdin") != NULL;
    const char *from_file = cli_opt(ctx, "from-file");

    *value = NULL;
    if (cli_opt(ctx, "dry-run") != NULL)
        return 0;
    if (from_stdin || from_file != NULL)
        return cli_read_value(ctx, path, from_stdin, from_file, 0, value);
    if (!isatty(STDIN_FILENO) || !cli_needs_input(ctx, path))
        return 0;
    return cli_read_value(ctx, path, 0, NULL, 1, value);
}

/* What --due picks: due, overdue, failed, and a candidate waiting for its target. */
static int
state_is_due(enum secret_state s)
{
    return s == STATE_DUE || s == STATE_OVERDUE || s == STATE_FAILED || s == STATE_PENDING;
}

/* The local selection of --all (implemented kinds) and --due (state_is_due). */
static int
picked(const json_t *e, int due)
{
    const char *s = json_string_value(json_object_get(e, "state"));

    if (s == NULL || strcmp(s, "not-implemented") == 0)
        return 0;
    return !due || strcmp(s, "due") == 0 || strcmp(s, "overdue") == 0 || strcmp(s, "failed") == 0 ||
           strcmp(s, "pending") == 0;
}

static int
remote_rotate(struct cli_ctx *ctx, int argc, char **argv, int64_t wait_ms)
{
    int due = cli_opt(ctx, "due") != NULL, dry = cli_opt(ctx, "dry-run") != NULL;
    json_t *resp = NULL, *list, *e;
    size_t n = 0, ok = 0, failed = 0, pending = 0, skipped = 0, i;
    struct secret *value = NULL;
    int r;

    if (argc == 1) {
        int needs = 0;
        if (!dry && cli_opt(ctx, "from-stdin") == NULL && cli_opt(ctx, "from-file") == NULL &&
            isatty(STDIN_FILENO))
            needs = remote_needs_input(ctx, argv[0]);
        if ((r = remote_value(ctx, argv[0], needs, &value)) != 0)
            return cli_fail(ctx, r);
        printf("%s%s:\n", dry ? "plan for " : "rotating ", argv[0]);
        r = remote_rotate_one(ctx, argv[0], 1, value, wait_ms);
        secret_free(value);
        if (r == -RK_EINVAL || r == -RK_ENOTFOUND || r == -RK_ENOTIMPL)
            return r == -RK_EINVAL ? CLI_USAGE : CLI_ERROR;
        return r == 0 ? CLI_OK : CLI_ERROR;
    }
    if (cli_opt(ctx, "from-stdin") != NULL || cli_opt(ctx, "from-file") != NULL)
        return cli_usage_error(ctx, "--from-stdin/--from-file need a single PATH");
    if (!dry) {
        r = client_rekey_post(ctx->remote, "recover", NULL, NULL, NULL, &ctx->err);
        if (r != 0 && r != -RK_EPERM)
            fprintf(stderr, "rekey rotate: recovering interrupted rotations: %s\n",
                    cli_esc(ctx->err.msg));
    }
    if ((r = client_request(ctx->remote, "GET", "/v1/rekey/status", NULL, NULL, &resp,
                            &ctx->err)) != 0) {
        json_decref(resp);
        return cli_fail(ctx, r);
    }
    list = json_object_get(client_data(resp), "secrets");
    json_array_foreach(list, i, e) if (picked(e, due)) n++;
    if (n == 0) {
        printf("nothing to rotate\n");
        json_decref(resp);
        return CLI_OK;
    }
    if (!dry && cli_opt(ctx, "yes") == NULL) {
        char answer[16];
        if (!isatty(STDIN_FILENO)) {
            json_decref(resp);
            return cli_usage_error(ctx,
                                   "refusing to rotate %zu secret%s without a terminal: "
                                   "pass --yes",
                                   n, n == 1 ? "" : "s");
        }
        fprintf(stderr, "Rotate %zu secret%s now? [y/N] ", n, n == 1 ? "" : "s");
        if (fgets(answer, sizeof(answer), stdin) == NULL ||
            (answer[0] != 'y' && answer[0] != 'Y')) {
            fprintf(stderr, "nothing was changed\n");
            json_decref(resp);
            return CLI_PROBLEM;
        }
    }
    json_array_foreach(list, i, e)
    {
        const char *path = json_string_value(json_object_get(e, "path"));
        const char *kind = json_string_value(json_object_get(e, "kind"));
        if (path == NULL || !picked(e, due))
            continue;
        if (!dry && !isatty(STDIN_FILENO) && entry_needs_input(e)) {
            printf("%s: skipped: kind %s needs a value from a person: rekey rotate %s\n",
                   cli_esc(path), cli_esc(kind), cli_esc(path));
            skipped++;
            continue;
        }
        if (dry)
            printf("plan for %s:\n", cli_esc(path));
        value = NULL;
        if (remote_value(ctx, path, entry_needs_input(e), &value) != 0) {
            fprintf(stderr, "%s: %s\n", cli_esc(path), cli_esc(ctx->err.msg));
            failed++;
            continue;
        }
        r = remote_rotate_one(ctx, path, dry, value, wait_ms);
        if (r == 0)
            ok++;
        else if (r == -RK_EUNAVAILABLE)
            pending++; /* the candidate waits for its target: tried again, not a failure */
        else
            failed++;
        secret_free(value);
    }
    if (!dry)
        printf("%zu rotated, %zu failed, %zu pending, %zu skipped\n", ok, failed, pending, skipped);
    json_decref(resp);
    return failed > 0 ? CLI_ERROR : CLI_OK;
}

static int
exec_rotate(struct cli_ctx *ctx, int argc, char **argv)
{
    int due = cli_opt(ctx, "due") != NULL, all = cli_opt(ctx, "all") != NULL;
    int dry = cli_opt(ctx, "dry-run") != NULL;
    const char *wait = cli_opt(ctx, "wait");
    struct rot_input in;
    struct engine *e = NULL;
    struct secret *value = NULL;
    int64_t wait_ms = 0;
    int r, rc = CLI_OK;

    if ((due || all) && argc > 0)
        return cli_usage_error(ctx, "give a PATH or --due/--all, not both");
    if (due && all)
        return cli_usage_error(ctx, "give --due or --all, not both");
    if (!due && !all && argc != 1)
        return cli_usage_error(ctx, "give a PATH, --due or --all");
    if (wait != NULL) {
        char *end;
        double w = strtod(wait, &end);
        if (*end != '\0' || w < 0 || w > 86400)
            return cli_usage_error(ctx, "--wait must be a number of seconds");
        wait_ms = (int64_t)(w * 1000);
    }
    if (ctx->remote != NULL)
        return remote_rotate(ctx, argc, argv, wait_ms);
    memset(&in, 0, sizeof(in));
    if (!due && !all) {
        if ((r = local_value(ctx, argv[0], &value)) != 0)
            return cli_fail(ctx, r);
        in.value = value;
    }
    if ((r = engine_open(ctx->kv, ctx->inv, &e, &ctx->err)) != 0) {
        secret_free(value);
        return cli_fail(ctx, r);
    }
    if (!due && !all) {
        printf("%s%s:\n", dry ? "plan for " : "rotating ", argv[0]);
        r = rotate_one(ctx, e, argv[0], 1, &in, wait_ms);
        secret_free(value);
        engine_free(e);
        if (r == -RK_EINVAL || r == -RK_ENOTFOUND || r == -RK_ENOTIMPL)
            return r == -RK_EINVAL ? CLI_USAGE : CLI_ERROR;
        return r == 0 ? CLI_OK : CLI_ERROR;
    } else {
        struct schedule_list sl = {0};
        struct secret_status *st;
        size_t n = 0, ok = 0, failed = 0, pending = 0, skipped = 0;
        int64_t now = time_now();

        if (cli_opt(ctx, "from-stdin") != NULL || cli_opt(ctx, "from-file") != NULL) {
            engine_free(e);
            return cli_usage_error(ctx, "--from-stdin/--from-file need a single PATH");
        }
        if (!dry) {
            size_t acted = 0;
            if (engine_recover(e, now, NULL, NULL, &acted, &ctx->err) != 0)
                fprintf(stderr, "rekey rotate: recovering interrupted rotations: %s\n",
                        ctx->err.msg);
        }
        /* The configuration's entries and those defined in the store through the API. */
        if ((r = schedule_status_list(ctx->kv, ctx->inv, now, &sl, &ctx->err)) != 0) {
            engine_free(e);
            return cli_fail(ctx, r);
        }
        st = sl.st;
        for (size_t i = 0; i < sl.n; i++) {
            enum secret_state s = st[i].state;
            if (s == STATE_NOT_IMPLEMENTED)
                continue;
            if (due && !state_is_due(s))
                continue;
            n++;
        }
        if (n == 0) {
            printf("nothing to rotate\n");
            schedule_list_free(&sl);
            engine_free(e);
            return CLI_OK;
        }
        if (!dry && cli_opt(ctx, "yes") == NULL) {
            char answer[16];
            if (!isatty(STDIN_FILENO)) {
                schedule_list_free(&sl);
                engine_free(e);
                return cli_usage_error(ctx,
                                       "refusing to rotate %zu secret%s without a terminal: "
                                       "pass --yes",
                                       n, n == 1 ? "" : "s");
            }
            fprintf(stderr, "Rotate %zu secret%s now? [y/N] ", n, n == 1 ? "" : "s");
            if (fgets(answer, sizeof(answer), stdin) == NULL ||
                (answer[0] != 'y' && answer[0] != 'Y')) {
                fprintf(stderr, "nothing was changed\n");
                schedule_list_free(&sl);
                engine_free(e);
                return CLI_PROBLEM;
            }
        }
        for (size_t i = 0; i < sl.n; i++) {
            const struct inv_secret *s = st[i].secret;
            enum secret_state state = st[i].state;
            if (state == STATE_NOT_IMPLEMENTED)
                continue;
            if (due && !state_is_due(state))
                continue;
            if (!dry && !isatty(STDIN_FILENO) && state != STATE_PENDING &&
                (rotator_flags(rotator_find(s->kind), s) & ROT_F_MANUAL_INPUT)) {
                /* A person must supply this value; in a batch without a terminal, report it. A
                 * pending candidate needs none: it is tried again. */
                printf("%s: skipped: kind %s needs a value from a person: rekey rotate %s\n",
                       s->path, s->kind, s->path);
                skipped++;
                continue;
            }
            if (dry)
                printf("plan for %s:\n", s->path);
            /* A person types this one's value now (the rotator never prompts). */
            value = NULL;
            if (!dry && state != STATE_PENDING &&
                (rotator_flags(rotator_find(s->kind), s) & ROT_F_MANUAL_INPUT) &&
                cli_read_value(ctx, s->path, 0, NULL, 1, &value) != 0) {
                fprintf(stderr, "%s: %s\n", cli_esc(s->path), cli_esc(ctx->err.msg));
                failed++;
                continue;
            }
            in.value = value;
            r = rotate_one(ctx, e, s->path, dry, &in, wait_ms);
            if (r == 0)
                ok++;
            else if (r == -RK_EUNAVAILABLE)
                pending++; /* the candidate waits for its target: tried again, not a failure */
            else
                failed++;
            in.value = NULL;
            secret_free(value);
        }
        if (!dry)
            printf("%zu rotated, %zu failed, %zu pending, %zu skipped\n", ok, failed, pending,
                   skipped);
        schedule_list_free(&sl);
        rc = failed > 0 ? CLI_ERROR : CLI_OK;
    }
    engine_free(e);
    return rc;
}

const struct cli_cmd cmd_rotate = {
    .name = "rotate",
    .args = "PATH | --due | --all",
    .summary = "rotate a secret (create, apply, test, promote, reload, finish)",
    .help = "Rotates PATH through the six steps; a failed test or reload rolls back and keeps the\n"
            "current value. --due rotates every secret that is due, overdue, failed or pending;\n"
            "--all every secret whose kind is implemented (the configuration's entries and those\n"
            "defined in the store through the API); both ask once on a terminal and need --yes\n"
            "without one. A candidate whose target is unavailable is counted pending, not failed\n"
            "(it is tried again); the exit code is 3 only when a rotation failed. --dry-run prints "
            "the plan and changes nothing. Manual kinds read the new\n"
            "value from --from-stdin, --from-file FILE, or a no-echo prompt; it is never echoed.",
    .min_args = 0,
    .max_args = 1,
    .needs = CLI_NEED_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK,
    .opts = opts,
    .exec = exec_rotate,
};
