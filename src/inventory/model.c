/* model.c: the inventory model's lookups and its one free function. The loader
 * (engine/inventory.c) builds a struct inventory; everything else only reads it. */
#include "inventory/inventory.h"

#include <stdlib.h>
#include <string.h>

#include "util/parse.h"

static void
pairs_free(struct inv_pair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        free(p[i].value);
    }
    free(p);
}

static void
hook_clear(struct hook_def *h)
{
    free(h->name);
    for (size_t i = 0; h->argv != NULL && h->argv[i] != NULL; i++)
        free(h->argv[i]);
    free(h->argv);
    free(h->workdir);
    free(h->method);
    free(h->url);
    pairs_free(h->headers, h->nheaders);
    free(h->body);
    free(h->path);
    free(h->template);
    pairs_free(h->params, h->nparams);
}

static void
secret_clear(struct inv_secret *s)
{
    free(s->path);
    free(s->kind);
    free(s->field);
    free(s->format);
    free(s->pattern);
    free(s->description);
    free(s->apply);
    free(s->test);
    free(s->reload);
    pairs_free(s->params, s->nparams);
}

void
inventory_free(struct inventory *inv)
{
    if (inv == NULL)
        return;
    for (size_t i = 0; i < inv->nhooks; i++)
        hook_clear(&inv->hooks[i]);
    free(inv->hooks);
    for (size_t i = 0; i < inv->nsecrets; i++)
        secret_clear(&inv->secrets[i]);
    free(inv->secrets);
    free(inv->by_path);
    free(inv->file);
    free(inv->store_backend);
    free(inv->store_path);
    free(inv->store_endpoints);
    free(inv->store_location);
    free(inv->key_file);
    free(inv->listen);
    free(inv->tls_cert);
    free(inv->api_addr);
    free(inv->tls_key);
    free(inv->trusted_proxies);
    free(inv->audit_path);
    free(inv);
}

const struct inv_secret *
inventory_find(const struct inventory *inv, const char *path)
{
    size_t lo = 0, hi;

    if (inv == NULL || path == NULL)
        return NULL;
    if (inv->by_path == NULL) {
        /* Built by hand (tests, tools): no index, scan. */
        for (size_t i = 0; i < inv->nsecrets; i++)
            if (strcmp(inv->secrets[i].path, path) == 0)
                return &inv->secrets[i];
        return NULL;
    }
    hi = inv->nsecrets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct inv_secret *s = &inv->secrets[inv->by_path[mid]];
        int c = strcmp(s->path, path);
        if (c == 0)
            return s;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static const char *
pairs_get(const struct inv_pair *p, size_t n, const char *key)
{
    if (key == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].key, key) == 0)
            return p[i].value;
    return NULL;
}

const char *
inv_param(const struct inv_secret *s, const char *key)
{
    return s != NULL ? pairs_get(s->params, s->nparams, key) : NULL;
}

const char *
inv_hook_param(const struct hook_def *h, const char *key)
{
    return h != NULL ? pairs_get(h->params, h->nparams, key) : NULL;
}

int
inv_param_duration(const struct inv_secret *s, const char *key, int64_t def, int64_t *out)
{
    const char *v = inv_param(s, key);

    *out = def;
    if (v == NULL)
        return 0;
    if (duration_parse(v, strlen(v), out, NULL) != 0) {
        *out = def;
        return -RK_ECONFIG;
    }
    return 0;
}

int
inv_param_set(struct inv_secret *s, const char *key, const char *value)
{
    struct inv_pair *np;
    char *k = NULL, *v;

    if ((v = strdup(value)) == NULL)
        return -RK_ENOMEM;
    for (size_t i = 0; i < s->nparams; i++) {
        if (strcmp(s->params[i].key, key) == 0) {
            free(s->params[i].value);
            s->params[i].value = v;
            return 0;
        }
    }
    if ((k = strdup(key)) == NULL ||
        (np = realloc(s->params, (s->nparams + 1) * sizeof(*np))) == NULL) {
        free(k);
        free(v);
        return -RK_ENOMEM;
    }
    s->params = np;
    s->params[s->nparams].key = k;
    s->params[s->nparams].value = v;
    s->nparams++;
    return 0;
}

const struct hook_def *
inventory_hook(const struct inventory *inv, const char *name)
{
    if (inv == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < inv->nhooks; i++)
        if (strcmp(inv->hooks[i].name, name) == 0)
            return &inv->hooks[i];
    return NULL;
}

const char *
inventory_default_path(const char *explicit_path)
{
    const char *env;

    if (explicit_path != NULL && explicit_path[0] != '\0')
        return explicit_path;
    env = getenv("REKEY_CONFIG");
    if (env != NULL && env[0] != '\0')
        return env;
    return "rekey.yaml";
}

const char *
inventory_store_location(const struct inventory *inv)
{
    const char *env = getenv("REKEY_STORE");

    if (env != NULL && env[0] != '\0')
        return env;
    return inv != NULL ? inv->store_location : NULL;
}
