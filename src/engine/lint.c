/* lint.c: checks of a loaded inventory that go beyond the schema: schedules that cannot work,
 * settings that contradict each other, hooks nobody uses. The generic rules are here; each
 * kind's own rules live in its file (rotators/<kind>.c `check` and `lint`, hooks/hook-<kind>.c
 * `check` and `lint`) and are run for every entry through the registries. The rules are listed
 * in docs/config.md ("Lint rules"); each finding names file:line:col and the secret's path or
 * the hook's name. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/inventory.h"
#include "hooks/hook.h"
#include "rotators/rotator.h"
#include "util/parse.h"

struct linter {
    const struct inventory *inv;
    inventory_lint_cb cb;
    void *arg;
    int errors;
    /* the entry or hook whose kind is reporting (kind_report) */
    int line, col;
    char prefix[300];
};

static void report(struct linter *l, const char *severity, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void vreport(struct linter *l, const char *severity, int line, int col, const char *prefix,
                    const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

static void
vreport(struct linter *l, const char *severity, int line, int col, const char *prefix,
        const char *fmt, va_list ap)
{
    char where[600], msg[1024];
    size_t off;

    snprintf(where, sizeof(where), "%s:%d:%d", l->inv->file ? l->inv->file : "<config>", line, col);
    off = (size_t)snprintf(msg, sizeof(msg), "%s", prefix);
    if (off < sizeof(msg))
        vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
    if (strcmp(severity, "error") == 0)
        l->errors++;
    if (l->cb != NULL)
        l->cb(l->arg, severity, where, msg);
}

static void
report(struct linter *l, const char *severity, int line, int col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(l, severity, line, col, "", fmt, ap);
    va_end(ap);
}

/* The inv_lint_report_fn handed to a kind: the entry's position and prefix come from l. */
static void kind_report(void *arg, const char *severity, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
kind_report(void *arg, const char *severity, const char *fmt, ...)
{
    struct linter *l = arg;
    va_list ap;

    va_start(ap, fmt);
    vreport(l, severity, l->line, l->col, l->prefix, fmt, ap);
    va_end(ap);
}

static const char *
dur(int64_t secs, char *buf, size_t len)
{
    duration_format(secs, buf, len);
    return buf;
}

static int
cmp_path_ptr(const void *a, const void *b)
{
    const struct inv_secret *x = *(const struct inv_secret *const *)a;
    const struct inv_secret *y = *(const struct inv_secret *const *)b;
    int c = strcmp(x->path ? x->path : "", y->path ? y->path : "");
    if (c != 0)
        return c;
    return x->line != y->line ? (x->line < y->line ? -1 : 1) : (x->col - y->col);
}

static void
lint_duplicates(struct linter *l)
{
    const struct inventory *inv = l->inv;
    const struct inv_secret **v;

    if (inv->nsecrets < 2)
        return;
    if ((v = calloc(inv->nsecrets, sizeof(*v))) == NULL) {
        report(l, "error", 0, 0, "out of memory while checking for duplicate paths");
        return;
    }
    for (size_t i = 0; i < inv->nsecrets; i++)
        v[i] = &inv->secrets[i];
    qsort(v, inv->nsecrets, sizeof(*v), cmp_path_ptr);
    for (size_t i = 1; i < inv->nsecrets; i++)
        if (v[i]->path != NULL && v[i - 1]->path != NULL && strcmp(v[i]->path, v[i - 1]->path) == 0)
            report(l, "error", v[i]->line, v[i]->col,
                   "%s: duplicate path (also at line %d); each path may appear once", v[i]->path,
                   v[i - 1]->line);
    free(v);
}

static void
lint_hooks(struct linter *l)
{
    const struct inventory *inv = l->inv;

    for (size_t i = 0; i < inv->nhooks; i++) {
        const struct hook_def *h = &inv->hooks[i];
        const char *name = h->name ? h->name : "?";
        struct rk_error e = {0};

        if (h->used == 0)
            report(l, "warning", h->line, h->col,
                   "hook '%s' is defined but no secret uses it (apply, test or reload)", name);
        /* The loader has run it already; a hand-built inventory has not. */
        if (hook_check(h, &e) != 0)
            report(l, "error", h->line, h->col, "%s", e.msg);
        l->line = h->line;
        l->col = h->col;
        snprintf(l->prefix, sizeof(l->prefix), "hook '%s' ", name);
        hook_lint(h, kind_report, l);
    }
}

static void
lint_secret(struct linter *l, const struct inv_secret *s)
{
    const char *path = s->path ? s->path : "?";
    const struct rotator_ops *ops = rotator_kind(s->kind);
    struct rk_error e = {0};
    char a[32], b[32];

    if (s->every <= 0 && !(rotator_flags(ops, s) & ROT_F_ON_DEMAND))
        report(l, "error", s->line, s->col, "%s: no rotation schedule (every)", path);
    if (s->every > 0 && s->grace >= s->every)
        report(l, "error", s->line, s->col,
               "%s: grace %s is not shorter than every %s: the previous version would still be "
               "valid when the next rotation starts",
               path, dur(s->grace, a, sizeof(a)), dur(s->every, b, sizeof(b)));
    if (ops == NULL) {
        report(l, "error", s->line, s->col, "%s: unknown kind '%s'", path, s->kind ? s->kind : "");
        return;
    }
    /* The kind's own rules: its check (run at load too) and its lint. */
    if (ops->check != NULL && ops->check(s, &e) != 0)
        report(l, "error", s->line, s->col, "%s: %s", path, e.msg);
    if (ops->lint != NULL) {
        l->line = s->line;
        l->col = s->col;
        snprintf(l->prefix, sizeof(l->prefix), "%s: ", path);
        ops->lint(s, l->inv, kind_report, l);
    }
}

int
inventory_lint(const struct inventory *inv, inventory_lint_cb cb, void *arg)
{
    struct linter l;

    if (inv == NULL)
        return 0;
    memset(&l, 0, sizeof(l));
    l.inv = inv;
    l.cb = cb;
    l.arg = arg;
    lint_duplicates(&l);
    for (size_t i = 0; i < inv->nsecrets; i++)
        lint_secret(&l, &inv->secrets[i]);
    lint_hooks(&l);
    return l.errors;
}
