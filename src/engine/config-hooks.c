/* config-hooks.c: the loader's `hooks:` section and the references to hooks from secrets.
 *
 * A hook's generic keys (type, timeout, wait) are read here; the keys of its kind come from the
 * kind's settings table (hooks/hook-<kind>.c) through load_setting, and the whole hook is then
 * checked by hook_check, the same check the hook runs under, so what loads also runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "hooks/hook.h"

#define MAX_HOOK_KEYS 32

static const char *const generic_keys[] = {"type", "timeout", "wait"};
#define NGENERIC (sizeof(generic_keys) / sizeof(generic_keys[0]))

/* "exec, http or file", from the registry. */
static void
kind_names(char *out, size_t outlen)
{
    const struct hook_ops *ops;
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; (ops = hook_kind_at(i)) != NULL && off < outlen; i++) {
        int w = snprintf(out + off, outlen - off, "%s%s",
                         i == 0                        ? ""
                         : hook_kind_at(i + 1) == NULL ? " or "
                                                       : ", ",
                         ops->name);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static int
load_wait(struct loader *L, struct hook_def *h, struct ment *e, const char *ctx)
{
    static const char *const wkeys[] = {"interval", "timeout"};
    struct ment w[2];
    int64_t iv = 0, to = 0;
    char key[240];
    int r;

    kjoin(key, sizeof(key), ctx, "wait");
    if ((r = map_collect(L, e->val, e->kpos, key, "", wkeys, 2, w)) != 0)
        return r;
    if (!has(&w[0]) || !has(&w[1]))
        return lerr(L, e->kpos, key,
                    "missing required key '%s' (wait takes both interval and timeout)",
                    has(&w[0]) ? "timeout" : "interval");
    kjoin(key, sizeof(key), ctx, "wait.interval");
    if ((r = get_duration(L, w[0].val, w[0].kpos, key, &iv)) != 0)
        return r;
    kjoin(key, sizeof(key), ctx, "wait.timeout");
    if ((r = get_duration(L, w[1].val, w[1].kpos, key, &to)) != 0)
        return r;
    kjoin(key, sizeof(key), ctx, "wait");
    if (iv <= 0 || to < iv)
        return lerr(L, e->kpos, key,
                    "expected 0 < interval <= timeout (interval %llds, timeout %llds)",
                    (long long)iv, (long long)to);
    /* Bounded like a hook's timeout; also keeps the milliseconds below from overflowing. */
    kjoin(key, sizeof(key), ctx, "wait.timeout");
    if (to > 86400)
        return lerr(L, val_pos(w[1].val, w[1].kpos), key, "expected a duration up to 24h");
    h->wait_interval_ms = iv * 1000;
    h->wait_timeout_ms = to * 1000;
    return 0;
}

static int
load_hook(struct loader *L, struct hook_def *h, struct ynode *k, struct ynode *v, struct pos where)
{
    const char *names[MAX_HOOK_KEYS];
    struct ment e[MAX_HOOK_KEYS];
    const struct hook_ops *ops;
    struct ynode *tv;
    struct rk_error e2 = {0};
    char ctx[200], key[240], note[64], kinds[64];
    const char *name, *ts, *msg;
    size_t nlen, tlen, n = 0;
    int r;

    name = y_scalar(k, &nlen);
    if (name == NULL || !valid_name(name, nlen))
        return lerr(L, where, "hooks",
                    "bad hook name '%.*s'; expected letters, digits, '-', '_' or '.'",
                    (int)(nlen > 60 ? 60 : nlen), name ? name : "");
    if ((h->name = strndup(name, nlen)) == NULL)
        return enomem(L);
    h->line = where.line;
    h->col = where.col;
    h->timeout_ms = HOOK_DEFAULT_TIMEOUT_MS;
    snprintf(ctx, sizeof(ctx), "hooks.%s", h->name);
    if (v == NULL || !y_is_map(v))
        return lerr(L, val_pos(v, where), ctx, "expected a mapping, got %s", node_kind_name(v));

    /* The type decides which other keys are allowed, so read it first. */
    kind_names(kinds, sizeof(kinds));
    tv = y_map_get(v, "type");
    if (tv == NULL || is_null(tv))
        return missing(L, where, ctx, "type", kinds);
    kjoin(key, sizeof(key), ctx, "type");
    if ((r = get_scalar(L, tv, where, key, kinds, &ts, &tlen)) != 0)
        return r;
    if ((ops = hook_kind_find(ts, tlen)) == NULL)
        return lerr(L, val_pos(tv, where), key, "unknown hook type '%.*s'; expected %s",
                    (int)(tlen > 40 ? 40 : tlen), ts, kinds);
    h->type = ops->type;
    for (size_t i = 0; i < NGENERIC; i++)
        names[n++] = generic_keys[i];
    for (const struct inv_setting *st = ops->settings; st != NULL && st->name != NULL; st++) {
        if (n == MAX_HOOK_KEYS)
            return lerr(L, where, ctx, "hook type %s declares too many settings", ops->name);
        names[n++] = st->name;
    }
    snprintf(note, sizeof(note), " for a hook of type %s", ops->name);
    if ((r = map_collect(L, v, where, ctx, note, names, n, e)) != 0)
        return r;

    if (has(&e[1])) { /* timeout */
        int64_t secs;
        kjoin(key, sizeof(key), ctx, "timeout");
        if ((r = get_duration(L, e[1].val, e[1].kpos, key, &secs)) != 0)
            return r;
        if (secs <= 0 || secs > 86400)
            return lerr(L, val_pos(e[1].val, e[1].kpos), key, "expected a duration from 1s to 24h");
        h->timeout_ms = secs * 1000;
    }
    if (has(&e[2]) && (r = load_wait(L, h, &e[2], ctx)) != 0)
        return r;

    /* The kind's keys: defaults first, then what the file says. */
    for (size_t i = NGENERIC; i < n; i++) {
        const struct inv_setting *st = &ops->settings[i - NGENERIC];
        char *dv = NULL;

        kjoin(key, sizeof(key), ctx, st->name);
        if (has(&e[i])) {
            if ((r = load_setting(L, st, &e[i], key, h, &h->params, &h->nparams)) != 0)
                return r;
            continue;
        }
        if (st->flags & IS_REQUIRED)
            return missing(L, where, ctx, st->name,
                           st->type == IS_ENUM && st->choices ? st->choices : st->help);
        if (st->def == NULL)
            continue;
        if ((r = inv_setting_parse(st, st->def, strlen(st->def), &dv, &e2)) != 0 ||
            (r = inv_setting_store(st, h, &h->params, &h->nparams, dv, &e2)) != 0)
            return r == -RK_ENOMEM ? enomem(L) : lerr(L, where, key, "bad default: %s", e2.msg);
    }

    /* The check the hook runs under (hooks/hook.c), so what loads also runs. */
    if ((r = hook_check(h, &e2)) != 0) {
        size_t plen = strlen("hook ") + strlen(h->name) + 2;
        msg = e2.msg;
        if (strncmp(msg, "hook ", 5) == 0 && strncmp(msg + 5, h->name, plen - 7) == 0 &&
            strncmp(msg + plen - 2, ": ", 2) == 0)
            msg += plen;
        return lerr_blame(L, where, ctx, names, n, e, msg);
    }
    return 0;
}

static int
cmp_hook_ptr(const void *a, const void *b)
{
    const struct hook_def *x = *(const struct hook_def *const *)a;
    const struct hook_def *y = *(const struct hook_def *const *)b;
    return strcmp(x->name, y->name);
}

int
load_hooks(struct loader *L, struct ynode *v, struct pos kpos)
{
    struct inventory *inv = L->inv;
    void *it = NULL;
    struct ynode *pr;
    size_t n;
    int r;

    if (is_null(v))
        return 0;
    if (!y_is_map(v))
        return lerr(L, val_pos(v, kpos), "hooks", "expected a mapping of hook names, got %s",
                    node_kind_name(v));
    n = y_count(v);
    if (n == 0)
        return 0;
    if ((inv->hooks = calloc(n, sizeof(*inv->hooks))) == NULL ||
        (L->hooks_sorted = calloc(n, sizeof(*L->hooks_sorted))) == NULL)
        return enomem(L);
    while ((pr = y_map_next(v, &it)) != NULL) {
        struct ynode *k = pr;
        struct pos where = node_pos(k, kpos);
        struct hook_def *h = &inv->hooks[inv->nhooks];

        if (k == NULL || !y_is_scalar(k) || y_is_alias(k))
            return lerr(L, where, "hooks", "hook names must be plain strings");
        inv->nhooks++;
        if ((r = load_hook(L, h, k, y_pair_value(pr), where)) != 0)
            return r;
        L->hooks_sorted[inv->nhooks - 1] = h;
    }
    qsort(L->hooks_sorted, inv->nhooks, sizeof(*L->hooks_sorted), cmp_hook_ptr);
    for (size_t i = 1; i < inv->nhooks; i++) {
        const struct hook_def *a = L->hooks_sorted[i - 1], *b = L->hooks_sorted[i];
        if (strcmp(a->name, b->name) == 0) {
            if (b->line < a->line) {
                const struct hook_def *t = a;
                a = b;
                b = t;
            }
            return lerr(L, (struct pos){b->line, b->col}, "hooks",
                        "duplicate hook name '%s' (first at line %d); expected each name once",
                        b->name, a->line);
        }
    }
    return 0;
}

static struct hook_def *
find_hook(struct loader *L, const char *name, size_t len)
{
    size_t lo = 0, hi = L->inv->nhooks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *hn = L->hooks_sorted[mid]->name;
        int c = strncmp(hn, name, len);
        if (c == 0 && hn[len] != '\0')
            c = 1;
        if (c == 0)
            return L->hooks_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int
load_refs(struct loader *L, struct ment *e, const char *key, struct hook_def ***out, size_t *nout)
{
    struct ynode *v = e->val;
    size_t n;
    int r;

    if (!has(e))
        return 0;
    if (y_is_map(v))
        return lerr(L, e->kpos, key, "expected a list of hook names, got a mapping");
    n = y_is_seq(v) ? y_count(v) : 1;
    if (n == 0)
        return 0;
    if ((*out = calloc(n, sizeof(**out))) == NULL)
        return enomem(L);
    for (struct ynode *item = y_is_seq(v) ? v->child : v; item != NULL;
         item = y_is_seq(v) ? item->next : NULL) {
        const char *s = NULL;
        size_t len = 0;
        struct hook_def *h;

        if ((r = get_scalar(L, item, e->kpos, key, "a hook name", &s, &len)) != 0)
            return r;
        if ((h = find_hook(L, s, len)) == NULL)
            return lerr(L, val_pos(item, e->kpos), key,
                        "unknown hook '%.*s'; expected a name defined under hooks:",
                        (int)(len > 60 ? 60 : len), s);
        for (size_t j = 0; j < *nout; j++)
            if ((*out)[j] == h)
                return lerr(L, val_pos(item, e->kpos), key, "hook '%s' is listed twice", h->name);
        (*out)[(*nout)++] = h;
        h->used++;
    }
    return 0;
}
