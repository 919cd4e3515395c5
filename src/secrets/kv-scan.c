/* kv-scan.c: the KV engine's walks over many paths: listing a folder, and the keyed
 * fingerprints' migration over every path (see kv.h). */
#include "secrets/kv.h"
#include "secrets/kv-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"

/* ---- listing ---- */

struct list_ctx {
    const char *prefix; /* "kv/meta/<folder>/" */
    size_t plen;
    kv_list_cb cb;
    void *arg;
    char last[STORE_KEY_MAX]; /* where the next scan starts (strictly after) */
    int seek;                 /* 1: a folder was found; rescan after last */
    int stopped;              /* the caller's callback asked to stop */
    int cb_err;
};

static int
list_one(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct list_ctx *c = arg;
    const char *rest = key + c->plen, *slash;
    char name[STORE_KEY_MAX];
    size_t n;
    int r;

    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strncmp(key, c->prefix, c->plen) != 0 || rest[0] == '\0')
        return 0;
    slash = strchr(rest, '/');
    n = slash != NULL ? (size_t)(slash - rest) + 1 : strlen(rest);
    if (n >= sizeof(name))
        return 0;
    memcpy(name, rest, n);
    name[n] = '\0';
    r = c->cb(c->arg, name);
    if (r != 0) {
        if (r > 0)
            c->stopped = 1;
        else
            c->cb_err = r;
        return r > 0 ? 1 : r;
    }
    if (slash == NULL)
        return 0;
    /* Skip the folder's whole subtree: paths are printable ASCII (< 0x7f), so every key below
     * "<prefix><name>/" sorts before "<prefix><name>/\x7f". */
    if (c->plen + n + 2 > sizeof(c->last))
        return 0;
    memcpy(c->last, key, c->plen + n);
    c->last[c->plen + n] = 0x7f;
    c->last[c->plen + n + 1] = '\0';
    c->seek = 1;
    return 1;
}

int
kv_list(struct kv *kv, const char *prefix, kv_list_cb cb, void *arg, struct rk_error *err)
{
    struct list_ctx c;
    char full[STORE_KEY_MAX];
    size_t len = prefix != NULL ? strlen(prefix) : 0;
    int n, r;

    memset(&c, 0, sizeof(c));
    if (len > 0 && prefix[len - 1] == '/')
        len--;
    if (len > 0 && (r = path_validate(prefix, len, err)) != 0)
        return r;
    if (len == 0)
        n = snprintf(full, sizeof(full), KV_META_PREFIX);
    else
        n = snprintf(full, sizeof(full), KV_META_PREFIX "%.*s/", (int)len, prefix);
    if (n < 0 || (size_t)n >= sizeof(full))
        return rk_error_set(err, RK_EINVAL, "prefix is too long");
    c.prefix = full;
    c.plen = (size_t)n;
    c.cb = cb;
    c.arg = arg;
    do {
        int from = c.seek;
        c.seek = 0;
        r = barrier_list(kv->br, full, from ? c.last : NULL, 0, list_one, &c, err);
        if (c.cb_err != 0)
            return c.cb_err;
        if (r != 0)
            return r;
    } while (c.seek && !c.stopped);
    return 0;
}

struct names_ctx {
    char **v;
    size_t n, cap;
};

static int
names_add(void *arg, const char *name)
{
    struct names_ctx *c = arg;

    if (c->n + 2 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        char **nv = realloc(c->v, cap * sizeof(*nv));
        if (nv == NULL)
            return -RK_ENOMEM;
        c->v = nv;
        c->cap = cap;
    }
    if ((c->v[c->n] = strdup(name)) == NULL)
        return -RK_ENOMEM;
    c->v[++c->n] = NULL;
    return 0;
}

int
kv_list_names(struct kv *kv, const char *prefix, char ***names, size_t *n, struct rk_error *err)
{
    struct names_ctx c = {NULL, 0, 0};
    int r;

    *names = NULL;
    if (n != NULL)
        *n = 0;
    r = kv_list(kv, prefix, names_add, &c, err);
    if (r == -RK_ENOMEM && err != NULL && err->code != RK_ENOMEM)
        rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r == 0 && c.v == NULL && (c.v = calloc(1, sizeof(*c.v))) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r != 0) {
        kv_names_free(c.v);
        return r;
    }
    *names = c.v;
    if (n != NULL)
        *n = c.n;
    return 0;
}

void
kv_names_free(char **names)
{
    if (names == NULL)
        return;
    for (size_t i = 0; names[i] != NULL; i++)
        free(names[i]);
    free(names);
}

/* ---- keyed fingerprints ---- */

int
kv_fingerprint(struct kv *kv, const struct secret *value, char out[FINGERPRINT_LEN + 1],
               struct rk_error *err)
{
    out[0] = '\0';
    if (value == NULL || value->data == NULL)
        return rk_error_set(err, RK_EINVAL, "no value");
    return barrier_fingerprint(kv->br, value->data, value->len, out, err);
}

struct path_list {
    char **v;
    size_t n, cap;
    int nomem;
};

static int
collect_path(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct path_list *pl = arg;
    const size_t plen = sizeof(KV_META_PREFIX) - 1;

    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strncmp(key, KV_META_PREFIX, plen) != 0 || key[plen] == '\0')
        return 0;
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 64;
        char **v = realloc(pl->v, cap * sizeof(*v));
        if (v == NULL) {
            pl->nomem = 1;
            return 1;
        }
        pl->v = v;
        pl->cap = cap;
    }
    if ((pl->v[pl->n] = strdup(key + plen)) == NULL) {
        pl->nomem = 1;
        return 1;
    }
    pl->n++;
    return 0;
}

/* Rewrites path's metadata when it holds blanked fingerprints, or with all every fingerprint
 * (stage_put recomputes them). *done is set when it wrote. Returns 0 (also when the path is gone
 * or does not decode) or a store error. */
static int
fp_migrate_path(struct kv *kv, const char *path, int all, int *done, struct rk_error *err)
{
    struct kv_meta *meta = NULL;
    struct barrier_txn *t = NULL;
    int64_t rev;
    int r;

    *done = 0;
    for (int attempt = 0;; attempt++) {
        struct rk_error e2 = {0};

        rev = 0;
        r = meta_load(kv, path, 0, &meta, &rev, &e2);
        if (r == -RK_ENOTFOUND || r == -RK_ECORRUPT || r == -RK_EINVAL || r == -RK_EVERSION)
            return 0; /* gone, or unreadable: nothing is shown of it either */
        if (r != 0)
            return rk_error_set(err, -r, "%s", e2.msg);
        for (size_t i = 0; all && i < meta->nversions; i++) {
            memset(meta->versions[i].fingerprint, 0, sizeof(meta->versions[i].fingerprint));
            meta->fp_stale = 1;
        }
        if (!meta->fp_stale) {
            kv_meta_free(meta);
            return 0;
        }
        if ((t = barrier_txn_new(kv->br)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        if ((r = stage_put(kv, t, path, meta, rev, 0, NULL, 0, err)) != 0)
            goto out;
        r = barrier_txn_commit(t, NULL, err);
        barrier_txn_free(t);
        t = NULL;
        kv_meta_free(meta);
        meta = NULL;
        if (r == 0)
            *done = 1;
        if (r != -RK_ECONFLICT || attempt + 1 >= KV_PUT_RETRIES)
            break;
        rk_error_clear(err);
        conflict_backoff(attempt);
    }
out:
    barrier_txn_free(t);
    kv_meta_free(meta);
    return r;
}

int
kv_fingerprints_migrate(struct kv *kv, size_t *npaths, struct rk_error *err)
{
    struct path_list pl = {0};
    size_t n = 0;
    int r, done;

    if (npaths != NULL)
        *npaths = 0;
    /* Only after the unseal that made the store's key: fingerprints before it are unkeyed ones
     * (or a lost key's), every one to be recomputed. Any other time there is nothing to do. */
    if (!barrier_fp_key_take_new(kv->br))
        return 0;
    r = barrier_list(kv->br, KV_META_PREFIX, NULL, 0, collect_path, &pl, err);
    if (r == 0 && pl.nomem)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    for (size_t i = 0; r == 0 && i < pl.n; i++) {
        if ((r = fp_migrate_path(kv, pl.v[i], 1, &done, err)) == 0 && done)
            n++;
    }
    for (size_t i = 0; i < pl.n; i++)
        free(pl.v[i]);
    free(pl.v);
    if (r == 0 && npaths != NULL)
        *npaths = n;
    return r;
}
