/* hook-file.c: render a template (rendered in secure memory) and write it atomically with the
 * hook's mode (0600 unless configured), so a consumer never reads a half-written file. */
#include "hooks/hook.h"

#include <stddef.h>
#include <stdlib.h>

#include "util/fsutil.h"
#include "util/log.h"

static int
file_check(const struct hook_def *h, struct rk_error *err)
{
    struct rk_error e = {0};

    if (h->path == NULL || h->path[0] == '\0')
        return rk_error_set(err, RK_ECONFIG, "path: required for a file hook");
    if (hook_template_check(h->path, &e) != 0)
        return rk_error_set(err, RK_ECONFIG, "path: %s", e.msg);
    if (hook_template_has_secret(h->path))
        return rk_error_set(err, RK_ECONFIG, "path: a secret placeholder is not allowed");
    if (h->template == NULL)
        return rk_error_set(err, RK_ECONFIG, "template: required for a file hook");
    if (hook_template_check(h->template, &e) != 0)
        return rk_error_set(err, RK_ECONFIG, "template: %s", e.msg);
    if ((h->mode & ~(mode_t)07777) != 0)
        return rk_error_set(err, RK_ECONFIG, "mode: expected an octal permission such as 0600");
    return 0;
}

static int
file_run(const struct hook_def *h, const struct hook_ctx *ctx, int64_t timeout_ms,
         struct rk_error *err)
{
    struct secret *content = NULL;
    char *path = NULL;
    mode_t mode = h->mode != 0 ? h->mode : 0600;
    struct rk_error e = {0};
    int r;

    (void)timeout_ms; /* a local write; fs_write_atomic is not interruptible anyway */
    if (h->path == NULL || h->template == NULL)
        return rk_error_set(err, RK_ECONFIG, "path and template are required");
    if ((r = hook_template_render_public(h->path, ctx, &path, err)) != 0) {
        rk_error_prefix(err, "path");
        goto out;
    }
    if ((r = hook_template_render(h->template, ctx, &content, err)) != 0) {
        rk_error_prefix(err, "template");
        goto out;
    }
    if (fs_write_atomic(path, content->data, content->len, mode, &e) != 0) {
        r = rk_error_set(err, RK_EHOOK, "%s", e.msg);
        goto out;
    }
    log_info("hook %s: wrote %s (%zu bytes, mode %04o)", h->name, path, content->len,
             (unsigned)mode);
out:
    secret_free(content);
    free(path);
    return r;
}

static const struct inv_setting file_settings[] = {
    {.name = "path",
     .type = IS_FILE,
     .flags = IS_REQUIRED,
     .help = "the file to render",
     .offset = offsetof(struct hook_def, path)},
    {.name = "template",
     .type = IS_TEMPLATE,
     .flags = IS_REQUIRED,
     .help = "the file's content, e.g. \"KEY={{new}}\\n\"",
     .offset = offsetof(struct hook_def, template)},
    {.name = "mode",
     .type = IS_MODE,
     .def = "0600",
     .help = "the file's permissions",
     .offset = offsetof(struct hook_def, mode)},
    {0},
};

/* A secret written where the group or others can read it. */
static void
file_lint(const struct hook_def *h, inv_lint_report_fn report, void *arg)
{
    if (hook_template_has_secret(h->template) && (h->mode & 077) != 0)
        report(arg, "error", "writes a secret to %s with mode %04o; use 0600 or 0400",
               h->path != NULL ? h->path : "?", (unsigned)h->mode);
}

const struct hook_ops hook_file_ops = {
    .version = HOOK_OPS_VERSION,
    .type = HOOK_FILE,
    .name = "file",
    .check = file_check,
    .run = file_run,
    .settings = file_settings,
    .lint = file_lint,
};
