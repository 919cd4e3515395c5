/* entries.c: the one lookup of entries (inventory, then store) and the store entries' records.
 * See entries.h for the record format and the rules.
 *
 * Validation: a definition is handed to the YAML loader as the document
 * {"version":1,"secrets":[{"path":P, ...settings}]} (JSON is YAML), with the hook lists taken
 * out first and resolved here against the configuration's hooks (the loader would look for them
 * in the document). Whatever the loader checks for a YAML entry (known keys per kind, types,
 * defaults, the kind's own check) it checks here too, with no second copy of the rules.
 *
 * Locks: none is held across a store call. The subscriber list has its own mutex, held while
 * the callbacks run (they only queue and wake, see entries.h), so once unsubscribe returns no
 * callback of that subscriber is running or will run. */
#include "engine/entries.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/kv.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/parse.h"

#define KEY_MAX (PATH_MAX_LEN + 32)
#define DOC_NAME "entry"

static const char *const ref_keys[] = {"apply", "test", "reload"};
#define NREFS (sizeof(ref_keys) / sizeof(ref_keys[0]))

static void
entry_key(char *buf, size_t len, const char *what, const char *path)
{
    snprintf(buf, len, "rot/%s/%s", what, path);
}

/* ---- the loader as validator ---- */

/* The loader's message without its document position and "secrets[0]" (the document is ours,
 * not the user's): "entry:1:52: secrets[0].every: expected ..." -> "every: expected ...". */
static int
loader_error(struct rk_error *err, const char *path, int code, const struct rk_error *lerr)
{
    const char *m = lerr->msg, *p;
    char buf[RK_ERRMSG_MAX];

    if (strncmp(m, DOC_NAME ":", sizeof(DOC_NAME)) == 0 && (p = strstr(m, ": ")) != NULL)
        m = p + 2;
    if (strncmp(m, "secrets[0].", 11) == 0)
        m += 11;
    else if (strncmp(m, "secrets[0]: ", 12) == 0)
        m += 12;
    snprintf(buf, sizeof(buf), "%s", m);
    return rk_error_set(err, code, "entry %s: %s", path, buf);
}

/* Checks one hook list of def (a name or a list of names, as in YAML) against inv's hooks. */
static int
check_refs(const json_t *v, const char *key, const struct inventory *inv, const char *path,
           size_t *count, struct rk_error *err)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;

    *count = 0;
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) && !json_is_array(v))
        return rk_error_set(err, RK_EINVAL, "entry %s: %s: expected a list of hook names", path,
                            key);
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_is_array(v) ? json_array_get(v, i) : v;
        const char *name = json_string_value(item);

        if (name == NULL || name[0] == '\0')
            return rk_error_set(err, RK_EINVAL, "entry %s: %s[%zu]: expected a hook name", path,
                                key, i);
        if (inventory_hook(inv, name) == NULL)
            return rk_error_set(err, RK_EINVAL,
                                "entry %s: %s: unknown hook '%.60s'; expected a name defined "
                                "under hooks: in %s",
                                path, key, name,
                                inv != NULL && inv->file != NULL ? inv->file : "the configuration");
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_array_get(v, j)), name) == 0)
                return rk_error_set(err, RK_EINVAL, "entry %s: %s: hook '%.60s' is listed twice",
                                    path, key, name);
    }
    *count = n;
    return 0;
}

/* Sets s's hook lists from def's names (already checked), borrowing inv's hooks. */
static int
set_refs(struct inv_secret *s, const json_t *def, const struct inventory *inv)
{
    struct hook_def ***lists[NREFS] = {&s->apply, &s->test, &s->reload};
    size_t *counts[NREFS] = {&s->napply, &s->ntest, &s->nreload};

    for (size_t k = 0; k < NREFS; k++) {
        const json_t *v = json_object_get(def, ref_keys[k]);
        size_t n;

        if (v == NULL || json_is_null(v))
            continue;
        n = json_is_array(v) ? json_array_size(v) : 1;
        if (n == 0)
            continue;
        if ((*lists[k] = calloc(n, sizeof(**lists[k]))) == NULL)
            return -RK_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            const json_t *item = json_is_array(v) ? json_array_get(v, i) : v;
            const struct hook_def *h = inventory_hook(inv, json_string_value(item));
            if (h == NULL)
                return -RK_ECONFIG;
            /* The inventory's hooks are const to its readers; the secret's lists are not. */
            (*lists[k])[(*counts[k])++] = (struct hook_def *)h;
        }
    }
    return 0;
}

/* def without the hook lists and "path", with "path" set: the loader's view of the entry.
 * Checks def's shape and hook names first. Returns a new object or NULL with err set. */
static json_t *
loader_view(const char *path, const json_t *def, const struct inventory *inv, struct rk_error *err)
{
    const json_t *jp;
    json_t *view;
    size_t n;

    if (!json_is_object(def)) {
        rk_error_set(err, RK_EINVAL, "entry %s: expected a JSON object of settings", path);
        return NULL;
    }
    jp = json_object_get(def, "path");
    if (jp != NULL && !(json_is_string(jp) && strcmp(json_string_value(jp), path) == 0)) {
        rk_error_set(err, RK_EINVAL, "entry %s: \"path\" differs from the path in the request",
                     path);
        return NULL;
    }
    for (size_t k = 0; k < NREFS; k++) {
        const json_t *v = json_object_get(def, ref_keys[k]);
        if (v != NULL && check_refs(v, ref_keys[k], inv, path, &n, err) != 0)
            return NULL;
    }
    if ((view = json_copy((json_t *)def)) == NULL ||
        json_object_set_new(view, "path", json_string(path)) != 0) {
        json_decref(view);
        rk_error_set(err, RK_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t k = 0; k < NREFS; k++)
        (void)json_object_del(view, ref_keys[k]);
    return view;
}

/* Loads the document of views (a JSON array of loader views) into *out. The document is YAML
 * with one flow mapping (the compact JSON of a view) per line: libfyaml takes ~4 times longer
 * on one line holding a flow sequence of 100,000 mappings. */
static int
load_views(json_t *views, struct inventory **out, struct rk_error *err)
{
    static const char head[] = "version: 1\nsecrets:\n";
    char *doc = NULL, *line;
    size_t len = sizeof(head) - 1, cap = 0, i;
    json_t *v;
    int r = 0;

    *out = NULL;
    json_array_foreach(views, i, v)
    {
        size_t n;
        if ((line = json_dumps(v, JSON_COMPACT)) == NULL) {
            r = -RK_ENOMEM;
            break;
        }
        n = strlen(line);
        if (len + n + 4 > cap) {
            size_t ncap = (len + n + 4) * 2;
            char *nd = realloc(doc, ncap);
            if (nd == NULL) {
                free(line);
                r = -RK_ENOMEM;
                break;
            }
            if (doc == NULL)
                memcpy(nd, head, sizeof(head) - 1);
            doc = nd;
            cap = ncap;
        }
        memcpy(doc + len, "- ", 2);
        memcpy(doc + len + 2, line, n);
        doc[len + 2 + n] = '\n';
        len += n + 3;
        free(line);
    }
    if (r == 0 && doc == NULL)
        r = inventory_load_string(DOC_NAME, "version: 1\nsecrets: []\n", 23, out, err);
    else if (r == 0)
        r = inventory_load_string(DOC_NAME, doc, len, out, err);
    else
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    free(doc);
    return r;
}

/* Loads one definition into a one-secret inventory with its hooks set. -RK_EINVAL (or
 * ECONFIG when stored = 1, a record that no longer loads) with err, -RK_ENOMEM. */
static int
load_one(const char *path, const json_t *def, const struct inventory *inv, int stored,
         struct inventory **out, struct rk_error *err)
{
    struct rk_error lerr = {0};
    json_t *view, *views;
    int r;

    *out = NULL;
    if ((view = loader_view(path, def, inv, err)) == NULL) {
        if (stored && err != NULL && err->code == RK_EINVAL)
            err->code = RK_ECONFIG;
        return err != NULL && err->code ? -err->code : -RK_EINVAL;
    }
    if ((views = json_array()) == NULL || json_array_append_new(views, view) != 0) {
        json_decref(views);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    r = load_views(views, out, &lerr);
    json_decref(views);
    if (r == -RK_ENOMEM)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r != 0)
        return loader_error(err, path, stored ? RK_ECONFIG : RK_EINVAL, &lerr);
    if ((*out)->nsecrets != 1) {
        inventory_free(*out);
        *out = NULL;
        return rk_error_set(err, RK_EINTERNAL, "entry %s: the loader returned no secret", path);
    }
    if (set_refs(&(*out)->secrets[0], def, inv) != 0) {
        inventory_free(*out);
        *out = NULL;
        return rk_error_set(err, stored ? RK_ECONFIG : RK_ENOMEM,
                            "entry %s: its hooks are no longer all defined", path);
    }
    return 0;
}

/* Reads and parses path's record. -RK_ENOTFOUND, -RK_ECORRUPT, store errors. */
static int
read_def(struct kv *kv, const char *path, json_t **out, struct rk_error *err)
{
    struct secret *v = NULL;
    char key[KEY_MAX];
    json_error_t jerr;
    int r;

    *out = NULL;
    entry_key(key, sizeof(key), "entry", path);
    if ((r = barrier_get(kv_barrier(kv), key, &v, NULL, err)) != 0)
        return r;
    *out = json_loadb((const char *)v->data, v->len, JSON_REJECT_DUPLICATES, &jerr);
    secret_free(v);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return rk_error_set(err, RK_ECORRUPT, "the stored entry %s does not parse", path);
    }
    return 0;
}

/* ---- lookup ---- */

int
engine_entry_find(struct kv *kv, const struct inventory *inv, const char *path,
                  struct entry_ref *ref, struct rk_error *err)
{
    json_t *def = NULL;
    int r;

    memset(ref, 0, sizeof(*ref));
    if ((ref->s = inventory_find(inv, path)) != NULL)
        return 0;
    if (path_validate(path, strlen(path), NULL) != 0)
        return rk_error_set(err, RK_ENOTFOUND, "%.512s is not in the inventory", path);
    r = read_def(kv, path, &def, err);
    if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND,
                            "%s is not in the inventory (%s) nor defined in the store", path,
                            inv != NULL && inv->file != NULL ? inv->file : "config");
    if (r != 0)
        return r;
    r = load_one(path, def, inv, 1, &ref->own_, err);
    json_decref(def);
    if (r != 0)
        return r;
    ref->s = &ref->own_->secrets[0];
    ref->in_store = 1;
    return 0;
}

void
entry_ref_release(struct entry_ref *ref)
{
    if (ref == NULL)
        return;
    inventory_free(ref->own_);
    memset(ref, 0, sizeof(*ref));
}

/* ---- subscribers ---- */

struct sub {
    struct kv *kv;
    entry_change_fn fn;
    void *arg;
};

static pthread_mutex_t subs_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sub *subs;
static size_t nsubs, capsubs;

int
engine_entries_subscribe(struct kv *kv, entry_change_fn fn, void *arg)
{
    int r = 0;

    pthread_mutex_lock(&subs_mu);
    if (nsubs == capsubs) {
        size_t ncap = capsubs ? capsubs * 2 : 4;
        struct sub *n = realloc(subs, ncap * sizeof(*n));
        if (n == NULL) {
            r = -RK_ENOMEM;
            goto out;
        }
        subs = n;
        capsubs = ncap;
    }
    subs[nsubs++] = (struct sub){kv, fn, arg};
out:
    pthread_mutex_unlock(&subs_mu);
    return r;
}

void
engine_entries_unsubscribe(struct kv *kv, entry_change_fn fn, void *arg)
{
    pthread_mutex_lock(&subs_mu);
    for (size_t i = 0; i < nsubs; i++) {
        if (subs[i].kv == kv && subs[i].fn == fn && subs[i].arg == arg) {
            subs[i] = subs[--nsubs];
            break;
        }
    }
    if (nsubs == 0) {
        free(subs);
        subs = NULL;
        capsubs = 0;
    }
    pthread_mutex_unlock(&subs_mu);
}

static void
notify(struct kv *kv, const char *path)
{
    pthread_mutex_lock(&subs_mu);
    for (size_t i = 0; i < nsubs; i++)
        if (subs[i].kv == kv)
            subs[i].fn(subs[i].arg, path);
    pthread_mutex_unlock(&subs_mu);
}

/* ---- put, get, delete, list ---- */

int
engine_entry_put(struct kv *kv, const struct inventory *inv, const char *path, const json_t *def,
                 int *created, struct rk_error *err)
{
    struct inventory *one = NULL;
    struct barrier_txn *t = NULL;
    struct rk_error perr = {0};
    char key[KEY_MAX], *text = NULL;
    json_t *rec = NULL;
    int64_t rev = 0;
    int r;

    if (created != NULL)
        *created = 0;
    if (path == NULL || path_validate(path, strlen(path), &perr) != 0)
        return rk_error_set(err, RK_EINVAL, "invalid path: %s", perr.msg);
    if (inventory_find(inv, path) != NULL)
        return rk_error_set(err, RK_EEXISTS,
                            "%s is defined in the configuration (%s); a store entry may not "
                            "shadow it",
                            path, inv != NULL && inv->file != NULL ? inv->file : "config");
    /* The loader validates; the record keeps the definition as given, without its path. */
    if ((r = load_one(path, def, inv, 0, &one, err)) != 0)
        goto out;
    if ((rec = json_copy((json_t *)def)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    (void)json_object_del(rec, "path");
    if ((text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (strlen(text) > ENTRY_JSON_MAX) {
        r = rk_error_set(err, RK_ELIMIT, "entry %s: the definition is larger than %u bytes", path,
                         ENTRY_JSON_MAX);
        goto out;
    }
    entry_key(key, sizeof(key), "entry", path);
    if (created != NULL) {
        struct secret *old = NULL;
        r = barrier_get(kv_barrier(kv), key, &old, &rev, err);
        secret_free(old);
        if (r != 0 && r != -RK_ENOTFOUND)
            goto out;
        rk_error_clear(err);
        *created = r == -RK_ENOTFOUND;
    }
    if ((t = barrier_txn_new(kv_barrier(kv))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    /* With created asked for, the answer must stay true: compare with what was read. */
    if ((created != NULL && barrier_txn_cmp(t, key, *created ? 0 : rev) != 0) ||
        barrier_txn_put(t, key, text, strlen(text)) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = barrier_txn_commit(t, NULL, err)) == -RK_ECONFLICT)
        r = rk_error_set(err, RK_ECONFLICT, "entry %s was changed at the same time; try again",
                         path);
    if (r != 0)
        goto out;
    notify(kv, path);
    r = 0;
out:
    barrier_txn_free(t);
    free(text);
    json_decref(rec);
    inventory_free(one);
    return r;
}

int
engine_entry_get(struct kv *kv, const char *path, json_t **out, struct rk_error *err)
{
    int r;

    *out = NULL;
    if (path == NULL || path_validate(path, strlen(path), NULL) != 0)
        return rk_error_set(err, RK_ENOTFOUND, "no store entry %.512s", path ? path : "");
    r = read_def(kv, path, out, err);
    if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no store entry %s", path);
    if (r != 0)
        return r;
    if (json_object_set_new(*out, "path", json_string(path)) != 0) {
        json_decref(*out);
        *out = NULL;
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    return 0;
}

int
engine_entry_delete(struct kv *kv, const char *path, struct rk_error *err)
{
    static const char *const busy[] = {"lock", "journal", "finish"};
    struct barrier_txn *t = NULL;
    struct secret *v = NULL;
    char key[KEY_MAX], k2[KEY_MAX];
    int64_t rev = 0;
    int r;

    if (path == NULL || path_validate(path, strlen(path), NULL) != 0)
        return rk_error_set(err, RK_ENOTFOUND, "no store entry %.512s", path ? path : "");
    entry_key(key, sizeof(key), "entry", path);
    r = barrier_get(kv_barrier(kv), key, &v, &rev, err);
    secret_free(v);
    if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no store entry %s", path);
    if (r != 0)
        return r;
    if ((t = barrier_txn_new(kv_barrier(kv))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    /* Nothing in flight and nothing left to retire, at the moment of the delete. */
    r = barrier_txn_cmp(t, key, rev);
    for (size_t i = 0; r == 0 && i < sizeof(busy) / sizeof(busy[0]); i++) {
        entry_key(k2, sizeof(k2), busy[i], path);
        r = barrier_txn_cmp(t, k2, 0);
    }
    entry_key(k2, sizeof(k2), "state", path);
    if (r != 0 || barrier_txn_del(t, key) != 0 || barrier_txn_del(t, k2) != 0) {
        barrier_txn_free(t);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    r = barrier_txn_commit(t, NULL, err);
    barrier_txn_free(t);
    if (r == -RK_ECONFLICT)
        return rk_error_set(err, RK_EBUSY,
                            "%s has a rotation in flight or a previous value still to retire "
                            "(its finish step); delete it once that is done",
                            path);
    if (r != 0)
        return r;
    notify(kv, path);
    return 0;
}

struct list_ctx {
    entry_list_cb cb;
    void *arg;
    int r;
};

static int
list_one(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct list_ctx *lc = arg;
    int r;

    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strncmp(key, ENTRY_PREFIX, sizeof(ENTRY_PREFIX) - 1) != 0)
        return 0;
    r = lc->cb(lc->arg, key + sizeof(ENTRY_PREFIX) - 1);
    if (r < 0)
        lc->r = r;
    return r;
}

int
engine_entry_list(struct kv *kv, const char *prefix, const char *after, size_t limit,
                  entry_list_cb cb, void *arg, struct rk_error *err)
{
    struct list_ctx lc = {cb, arg, 0};
    char pfx[KEY_MAX], start[KEY_MAX];
    int r;

    snprintf(pfx, sizeof(pfx), "%s%s", ENTRY_PREFIX, prefix != NULL ? prefix : "");
    if (after != NULL && after[0] != '\0')
        snprintf(start, sizeof(start), "%s%s", ENTRY_PREFIX, after);
    r = barrier_list(kv_barrier(kv), pfx, after != NULL && after[0] != '\0' ? start : NULL, limit,
                     list_one, &lc, err);
    if (lc.r != 0)
        return lc.r;
    return r;
}

/* ---- every store entry at once ---- */

struct load_ctx {
    struct kv *kv;
    const struct inventory *inv;
    char **paths;
    json_t **defs;
    size_t n, cap, shadowed;
};

static int
collect(void *arg, const char *path)
{
    struct load_ctx *lc = arg;
    struct rk_error err = {0};
    json_t *def = NULL;
    int r;

    if (inventory_find(lc->inv, path) != NULL) {
        lc->shadowed++;
        return 0;
    }
    r = read_def(lc->kv, path, &def, &err);
    if (r == -RK_ECORRUPT) {
        log_warn("%s; left out", err.msg);
        return 0;
    }
    if (r == -RK_ENOTFOUND)
        return 0; /* deleted since the listing */
    if (r != 0)
        return r;
    if (lc->n == lc->cap) {
        size_t ncap = lc->cap ? lc->cap * 2 : 64;
        char **np = realloc(lc->paths, ncap * sizeof(*np));
        json_t **nd;
        if (np == NULL)
            goto nomem;
        lc->paths = np;
        if ((nd = realloc(lc->defs, ncap * sizeof(*nd))) == NULL)
            goto nomem;
        lc->defs = nd;
        lc->cap = ncap;
    }
    if ((lc->paths[lc->n] = strdup(path)) == NULL)
        goto nomem;
    lc->defs[lc->n++] = def;
    return 0;
nomem:
    json_decref(def);
    return -RK_ENOMEM;
}

int
engine_entries_load(struct kv *kv, const struct inventory *inv, struct inventory **out,
                    size_t *nbad, struct rk_error *err)
{
    struct load_ctx lc = {.kv = kv, .inv = inv};
    struct inventory *all = NULL;
    struct rk_error lerr = {0};
    json_t *views = NULL;
    unsigned char *ok = NULL;
    size_t bad = 0;
    int r;

    *out = NULL;
    if (nbad != NULL)
        *nbad = 0;
    r = engine_entry_list(kv, NULL, NULL, 0, collect, &lc, err);
    if (r == -RK_ENOMEM)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r != 0)
        goto out;
    if (lc.shadowed > 0)
        log_warn("%zu store entr%s named by the configuration too: the configuration's "
                 "entr%s used",
                 lc.shadowed, lc.shadowed == 1 ? "y is" : "ies are",
                 lc.shadowed == 1 ? "y is" : "ies are");
    if ((views = json_array()) == NULL || (ok = calloc(lc.n ? lc.n : 1, 1)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    /* Each definition on its own shape first (hooks); then all in one document, which costs
     * one parse instead of n. A document that does not load (a definition the loader refuses
     * since its rules changed) falls back to one load per entry to leave the bad ones out. */
    for (size_t i = 0; i < lc.n; i++) {
        struct rk_error e2 = {0};
        json_t *view = loader_view(lc.paths[i], lc.defs[i], inv, &e2);
        if (view == NULL) {
            if (e2.code == RK_ENOMEM) {
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                goto out;
            }
            log_warn("%s; left out (it no longer loads)", e2.msg);
            bad++;
            continue;
        }
        if (json_array_append_new(views, view) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        ok[i] = 1;
    }
    r = load_views(views, &all, &lerr);
    if (r == -RK_ENOMEM) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (r != 0) {
        json_decref(views);
        if ((views = json_array()) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < lc.n; i++) {
            struct inventory *one = NULL;
            struct rk_error e2 = {0};
            if (!ok[i])
                continue;
            if (load_one(lc.paths[i], lc.defs[i], inv, 1, &one, &e2) != 0) {
                if (e2.code == RK_ENOMEM) {
                    r = rk_error_set(err, RK_ENOMEM, "out of memory");
                    goto out;
                }
                log_warn("%s; left out (it no longer loads)", e2.msg);
                ok[i] = 0;
                bad++;
            } else if (json_array_append_new(views,
                                             loader_view(lc.paths[i], lc.defs[i], inv, &e2)) != 0) {
                inventory_free(one);
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                goto out;
            }
            inventory_free(one);
        }
        if ((r = load_views(views, &all, err)) != 0)
            goto out;
    }
    for (size_t i = 0, k = 0; i < lc.n; i++) {
        if (!ok[i])
            continue;
        if (set_refs(&all->secrets[k++], lc.defs[i], inv) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
    }
    *out = all;
    all = NULL;
    if (nbad != NULL)
        *nbad = bad;
    r = 0;
out:
    inventory_free(all);
    json_decref(views);
    free(ok);
    for (size_t i = 0; i < lc.n; i++) {
        free(lc.paths[i]);
        json_decref(lc.defs[i]);
    }
    free(lc.paths);
    free(lc.defs);
    return r;
}
