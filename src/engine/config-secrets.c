/* config-secrets.c: the loader's `secrets:` section. An entry's generic keys (path, kind,
 * description, every, auto, grace, field, apply, test, reload) are read here; every other key
 * belongs to the entry's kind and is read through the kind's settings table
 * (rotators/<kind>.c) by load_setting, then rotator_entry_finish fills the defaults and runs
 * the kind's own defaults and check. Nothing here knows a kind by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "rotators/rotator.h"

#define MAX_KEYS 48

enum { K_PATH, K_KIND, K_DESC, K_EVERY, K_AUTO, K_GRACE, K_FIELD, K_APPLY, K_TEST, K_RELOAD };

/* "generated, manual, …", from the registry. */
static void
kind_names(char *out, size_t outlen)
{
    const struct rotator_ops *ops;

    out[0] = '\0';
    for (size_t i = 0, off = 0; (ops = rotator_at(i)) != NULL && off < outlen; i++) {
        int w = snprintf(out + off, outlen - off, "%s%s", i ? ", " : "", ops->kind);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

static int
load_secret(struct loader *L, struct inv_secret *s, struct ynode *v, size_t idx, struct pos seqpos)
{
    const char *names[MAX_KEYS];
    struct ment e[MAX_KEYS], *ent[K_RELOAD + 1], absent = {0};
    const struct rotator_ops *ops;
    struct pos where = node_pos(v, seqpos);
    struct rk_error e2 = {0};
    char ctx[64], key[128], note[80], kinds[256];
    size_t n = 0, first_setting;
    int r;

    snprintf(ctx, sizeof(ctx), "secrets[%zu]", idx);
    s->line = where.line;
    s->col = where.col;
    if (v == NULL || !y_is_map(v))
        return lerr(L, val_pos(v, seqpos), ctx,
                    "expected a mapping with path, kind, every…, got %s", node_kind_name(v));
    /* The kind decides which other keys are allowed, so read it first. */
    {
        struct ynode *kv = y_map_get(v, "kind");
        const char *ksv;
        size_t klen;

        kind_names(kinds, sizeof(kinds));
        if (kv == NULL || is_null(kv))
            return missing(L, where, ctx, "kind", kinds);
        kjoin(key, sizeof(key), ctx, "kind");
        if ((r = get_scalar(L, kv, where, key, "a kind", &ksv, &klen)) != 0)
            return r;
        if ((s->kind = strndup(ksv, klen)) == NULL)
            return enomem(L);
        if ((ops = rotator_kind(s->kind)) == NULL)
            return lerr(L, node_pos(kv, where), key, "unknown kind '%.*s'; expected one of: %s",
                        (int)(klen > 40 ? 40 : klen), ksv, kinds);
    }
    /* The generic keys (a kind whose fields have fixed names takes no `field`), then the
     * kind's own. */
    for (size_t i = 0; rotator_generic_keys[i] != NULL; i++)
        if (i != K_FIELD || !ops->fixed_field)
            names[n++] = rotator_generic_keys[i];
    first_setting = n;
    for (const struct inv_setting *st = ops->settings; st != NULL && st->name != NULL; st++) {
        if (n == MAX_KEYS)
            return lerr(L, where, ctx, "kind %s declares too many settings", ops->kind);
        names[n++] = st->name;
    }
    snprintf(note, sizeof(note), " for kind %s", ops->kind);
    if ((r = map_collect(L, v, where, ctx, note, names, n, e)) != 0)
        return r;
    for (size_t i = 0, j = 0; i <= K_RELOAD; i++)
        ent[i] = (i != K_FIELD || !ops->fixed_field) ? &e[j++] : &absent;

    if (!has(ent[K_PATH]))
        return missing(L, where, ctx, "path", "e.g. secret/app/name");
    kjoin(key, sizeof(key), ctx, "path");
    if ((r = get_path(L, ent[K_PATH]->val, ent[K_PATH]->kpos, key, &s->path)) != 0)
        return r;
    if (has(ent[K_DESC])) {
        kjoin(key, sizeof(key), ctx, "description");
        if ((r = get_str(L, ent[K_DESC]->val, ent[K_DESC]->kpos, key, &s->description)) != 0)
            return r;
    }
    if (has(ent[K_EVERY])) {
        kjoin(key, sizeof(key), ctx, "every");
        if ((r = get_duration(L, ent[K_EVERY]->val, ent[K_EVERY]->kpos, key, &s->every)) != 0)
            return r;
        if (s->every <= 0)
            return lerr(L, val_pos(ent[K_EVERY]->val, ent[K_EVERY]->kpos), key,
                        "expected a duration greater than 0");
    }
    if (has(ent[K_AUTO])) {
        kjoin(key, sizeof(key), ctx, "auto");
        if ((r = get_bool(L, ent[K_AUTO]->val, ent[K_AUTO]->kpos, key, &s->auto_rotate)) != 0)
            return r;
    }
    if (has(ent[K_GRACE])) {
        kjoin(key, sizeof(key), ctx, "grace");
        if ((r = get_duration(L, ent[K_GRACE]->val, ent[K_GRACE]->kpos, key, &s->grace)) != 0)
            return r;
    }
    if (has(ent[K_FIELD])) {
        kjoin(key, sizeof(key), ctx, "field");
        if ((r = get_str_ne(L, ent[K_FIELD]->val, ent[K_FIELD]->kpos, key, &s->field)) != 0)
            return r;
        if (!valid_name(s->field, strlen(s->field)))
            return lerr(L, val_pos(ent[K_FIELD]->val, ent[K_FIELD]->kpos), key,
                        "expected a field name of letters, digits, '-', '_' or '.'");
    }
    kjoin(key, sizeof(key), ctx, "apply");
    if ((r = load_refs(L, ent[K_APPLY], key, &s->apply, &s->napply)) != 0)
        return r;
    kjoin(key, sizeof(key), ctx, "test");
    if ((r = load_refs(L, ent[K_TEST], key, &s->test, &s->ntest)) != 0)
        return r;
    kjoin(key, sizeof(key), ctx, "reload");
    if ((r = load_refs(L, ent[K_RELOAD], key, &s->reload, &s->nreload)) != 0)
        return r;

    /* The kind's own keys, then its defaults and check. */
    for (size_t i = first_setting; i < n; i++) {
        if (!has(&e[i]))
            continue;
        kjoin(key, sizeof(key), ctx, names[i]);
        if ((r = load_setting(L, &ops->settings[i - first_setting], &e[i], key, s, &s->params,
                              &s->nparams)) != 0)
            return r;
    }
    if ((r = rotator_entry_finish(ops, s, &e2)) != 0)
        return r == -RK_ENOMEM ? enomem(L) : lerr_blame(L, where, ctx, names, n, e, e2.msg);
    /* A kind may make values on request only (a database role template): no schedule. */
    if (s->every <= 0 && !(rotator_flags(ops, s) & ROT_F_ON_DEMAND))
        return missing(L, where, ctx, "every", "a rotation interval such as 30d");
    return 0;
}

static int
cmp_index(const void *a, const void *b, void *arg)
{
    const struct inv_secret *s = arg;
    return strcmp(s[*(const size_t *)a].path, s[*(const size_t *)b].path);
}

int
load_secrets(struct loader *L, struct ynode *v, struct pos kpos)
{
    struct inventory *inv = L->inv;
    void *it = NULL;
    struct ynode *item;
    size_t n;
    int r;

    if (is_null(v))
        return 0;
    if (!y_is_seq(v))
        return lerr(L, val_pos(v, kpos), "secrets", "expected a list of secrets, got %s",
                    node_kind_name(v));
    n = y_count(v);
    if (n == 0)
        return 0;
    if ((inv->secrets = calloc(n, sizeof(*inv->secrets))) == NULL ||
        (inv->by_path = calloc(n, sizeof(*inv->by_path))) == NULL)
        return enomem(L);
    while ((item = y_seq_next(v, &it)) != NULL) {
        size_t i = inv->nsecrets++;
        if ((r = load_secret(L, &inv->secrets[i], item, i, kpos)) != 0)
            return r;
        inv->by_path[i] = i;
    }
    qsort_r(inv->by_path, inv->nsecrets, sizeof(size_t), cmp_index, inv->secrets);
    for (size_t i = 1; i < inv->nsecrets; i++) {
        const struct inv_secret *a = &inv->secrets[inv->by_path[i - 1]];
        const struct inv_secret *b = &inv->secrets[inv->by_path[i]];
        if (strcmp(a->path, b->path) == 0) {
            if (b->line < a->line || (b->line == a->line && b->col < a->col)) {
                const struct inv_secret *t = a;
                a = b;
                b = t;
            }
            return lerr(L, (struct pos){b->line, b->col}, "path",
                        "duplicate path '%s' (first defined at line %d); expected each path "
                        "once",
                        b->path, a->line);
        }
    }
    return 0;
}
