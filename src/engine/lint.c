/* lint.c: checks of a loaded inventory that go beyond the schema: schedules that cannot work,
 * settings that contradict each other, hooks nobody uses. The rules are listed in
 * docs/config.md ("Lint rules"); each finding names file:line:col and the secret's path. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../util/parse.h"
#include "inventory.h"

struct linter {
    const struct inventory *inv;
    inventory_lint_cb cb;
    void *arg;
    int errors;
};

static void report(struct linter *l, const char *severity, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
report(struct linter *l, const char *severity, int line, int col, const char *fmt, ...)
{
    char where[600], msg[1024];
    va_list ap;

    snprintf(where, sizeof(where), "%s:%d:%d", l->inv->file ? l->inv->file : "<config>", line, col);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (strcmp(severity, "error") == 0)
        l->errors++;
    if (l->cb != NULL)
        l->cb(l->arg, severity, where, msg);
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

/* A file hook whose template holds a secret must not be readable by group or others. */
static int
template_has_secret(const char *t)
{
    return t != NULL && (strstr(t, "{{new") != NULL || strstr(t, "{{old") != NULL);
}

static void
lint_hooks(struct linter *l)
{
    const struct inventory *inv = l->inv;

    for (size_t i = 0; i < inv->nhooks; i++) {
        const struct hook_def *h = &inv->hooks[i];
        if (h->used == 0)
            report(l, "warning", h->line, h->col,
                   "hook '%s' is defined but no secret uses it (apply, test or reload)", h->name);
        if (h->type == HOOK_FILE && template_has_secret(h->template) && (h->mode & 077) != 0)
            report(l, "error", h->line, h->col,
                   "hook '%s' writes a secret to %s with mode %04o; use 0600 or 0400", h->name,
                   h->path ? h->path : "?", (unsigned)h->mode);
        if (h->type == HOOK_HTTP && h->url != NULL && strncmp(h->url, "http://", 7) == 0) {
            int secret = 0;
            for (size_t k = 0; k < h->nheaders; k++)
                secret |= template_has_secret(h->headers[k].value);
            secret |= template_has_secret(h->body);
            /* Plain HTTP is fine on loopback; elsewhere it would send a secret in clear. */
            if (secret && strncmp(h->url, "http://127.", 11) != 0 &&
                strncmp(h->url, "http://localhost", 16) != 0 &&
                strncmp(h->url, "http://[::1]", 12) != 0)
                report(l, "error", h->line, h->col,
                       "hook '%s' sends a secret over plain http to a non-loopback address; "
                       "use https",
                       h->name);
        }
    }
}

static void
lint_secret(struct linter *l, const struct inv_secret *s)
{
    const struct inventory *inv = l->inv;
    const char *path = s->path ? s->path : "?";
    const char *kind = s->kind ? s->kind : "";
    char a[32], b[32];
    int64_t ttl = 0, max_ttl = 0, rb = 0, min_iv = 0;

    if (s->every <= 0 && strcmp(kind, "certificate") != 0)
        report(l, "error", s->line, s->col, "%s: no rotation schedule (every)", path);
    if (s->every > 0 && s->grace >= s->every)
        report(l, "error", s->line, s->col,
               "%s: grace %s is not shorter than every %s: the previous version would still be "
               "valid when the next rotation starts",
               path, dur(s->grace, a, sizeof(a)), dur(s->every, b, sizeof(b)));
    if (s->auto_rotate && strcmp(kind, "manual") == 0)
        report(l, "error", s->line, s->col,
               "%s: auto: true on a manual secret; a person must supply each new value "
               "(rekey opens an action item on schedule instead)",
               path);
    if (strcmp(kind, "provider-key") == 0) {
        if (inv_param_duration(s, "min_interval", 0, &min_iv) == 0 && min_iv > 0 && s->every > 0 &&
            s->every < min_iv)
            report(l, "error", s->line, s->col,
                   "%s: every %s is shorter than the provider's min_interval %s", path,
                   dur(s->every, a, sizeof(a)), dur(min_iv, b, sizeof(b)));
        if (s->auto_rotate && inv_param(s, "admin_key_path") == NULL)
            report(l, "error", s->line, s->col,
                   "%s: auto: true needs admin_key_path (an admin key to mint new keys with); "
                   "without one a person rotates this key",
                   path);
    }
    if (strcmp(kind, "database") == 0) {
        inv_param_duration(s, "ttl", 0, &ttl);
        inv_param_duration(s, "max_ttl", 0, &max_ttl);
        if (ttl > 0 && max_ttl > 0 && max_ttl < ttl)
            report(l, "error", s->line, s->col, "%s: max_ttl %s is shorter than ttl %s", path,
                   dur(max_ttl, a, sizeof(a)), dur(ttl, b, sizeof(b)));
        /* A lease is renewed by the scheduler, which wakes every check_interval: a lease shorter
         * than two intervals can lapse between two checks. */
        if (ttl > 0 && inv->check_interval > 0 && ttl / 2 < inv->check_interval)
            report(l, "warning", s->line, s->col,
                   "%s: lease ttl %s is shorter than twice the check interval %s; leases may "
                   "expire before they are renewed",
                   path, dur(ttl, a, sizeof(a)), dur(inv->check_interval, b, sizeof(b)));
    }
    if (strcmp(kind, "certificate") == 0) {
        inv_param_duration(s, "ttl", 0, &ttl);
        inv_param_duration(s, "renew_before", 0, &rb);
        if (ttl > 0 && rb >= ttl)
            report(l, "error", s->line, s->col,
                   "%s: renew_before %s is not shorter than ttl %s: the certificate would be "
                   "renewed as soon as it is issued",
                   path, dur(rb, a, sizeof(a)), dur(ttl, b, sizeof(b)));
        else if (ttl > 0 && s->every > ttl - rb)
            report(l, "error", s->line, s->col,
                   "%s: every %s is longer than ttl - renew_before = %s: renewal would come %s",
                   path, dur(s->every, a, sizeof(a)), dur(ttl - rb, b, sizeof(b)),
                   s->every >= ttl ? "after the certificate expires"
                                   : "later than the renew_before window allows");
        if (s->every <= 0 && ttl <= rb)
            report(l, "error", s->line, s->col, "%s: no renewal schedule", path);
    }
}

int
inventory_lint(const struct inventory *inv, inventory_lint_cb cb, void *arg)
{
    struct linter l = {inv, cb, arg, 0};

    if (inv == NULL)
        return 0;
    lint_duplicates(&l);
    for (size_t i = 0; i < inv->nsecrets; i++)
        lint_secret(&l, &inv->secrets[i]);
    lint_hooks(&l);
    return l.errors;
}
