/* registry.c: the rotators, one row per kind. Adding a kind = one file (rotators/<kind>.c, which
 * defines its struct rotator_ops with its settings table) + one row here. A planned kind keeps
 * a row with its settings but no create, as store/backend.c does for backends not built yet:
 * its entries load and lint; rotating one answers "not implemented yet". This file is the only
 * place that compares kind names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotators/rotator.h"

/* Defined one per file (generated.c, manual.c, …). */
extern const struct rotator_ops rotator_generated;
extern const struct rotator_ops rotator_manual;
extern const struct rotator_ops rotator_provider_key; /* planned */
extern const struct rotator_ops rotator_database;
extern const struct rotator_ops rotator_transit;
extern const struct rotator_ops rotator_redis_password;
extern const struct rotator_ops rotator_certificate; /* planned */

static const struct rotator_ops *const rotators[] = {
    &rotator_generated, &rotator_manual,         &rotator_provider_key, &rotator_database,
    &rotator_transit,   &rotator_redis_password, &rotator_certificate,  NULL,
};

const char *const rotator_generic_keys[] = {"path", "kind",   "description", "every",
                                            "auto", "grace",  "field",       "apply",
                                            "test", "reload", NULL};

const struct rotator_ops *
rotator_kind(const char *kind)
{
    if (kind == NULL)
        return NULL;
    for (size_t i = 0; rotators[i] != NULL; i++)
        if (strcmp(rotators[i]->kind, kind) == 0)
            return rotators[i];
    return NULL;
}

const struct rotator_ops *
rotator_find(const char *kind)
{
    const struct rotator_ops *ops = rotator_kind(kind);

    return ops != NULL && ops->create != NULL ? ops : NULL;
}

const char *
rotator_role(const struct inv_secret *s, const char *engine)
{
    const struct rotator_ops *ops = rotator_kind(s->kind);

    return ops != NULL && ops->role != NULL ? ops->role(s, engine) : NULL;
}

const struct rotator_ops *
rotator_at(size_t i)
{
    return i < sizeof(rotators) / sizeof(rotators[0]) ? rotators[i] : NULL;
}

/* Whether the entry already holds a value for st (parsed from the config or the API). */
static int
setting_present(const struct inv_secret *s, const struct inv_setting *st)
{
    if (st->offset == 0)
        return inv_param(s, st->name) != NULL;
    /* A kind's setting kept in a member of inv_secret is a string (format, pattern). */
    return *(char *const *)(const void *)((const unsigned char *)s + st->offset) != NULL;
}

int
rotator_entry_finish(const struct rotator_ops *ops, struct inv_secret *s, struct rk_error *err)
{
    struct rk_error e = {0};
    int r;

    for (const struct inv_setting *st = ops->settings; st != NULL && st->name != NULL; st++) {
        char *v = NULL;

        if (setting_present(s, st))
            continue;
        if (st->flags & IS_REQUIRED)
            return rk_error_set(err, RK_ECONFIG, "missing required key '%s' (%s)", st->name,
                                st->type == IS_ENUM && st->choices ? st->choices : st->help);
        if (st->def == NULL)
            continue;
        if ((r = inv_setting_parse(st, st->def, strlen(st->def), &v, &e)) != 0 ||
            (r = inv_setting_store(st, s, &s->params, &s->nparams, v, &e)) != 0)
            return rk_error_set(err, r == -RK_ENOMEM ? RK_ENOMEM : RK_EINTERNAL,
                                "%s: the default of kind %s: %s", st->name, ops->kind, e.msg);
    }
    if (s->field == NULL &&
        (s->field = strdup(ops->default_field != NULL ? ops->default_field : "value")) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (ops->defaults != NULL && (r = ops->defaults(s, err)) != 0)
        return r;
    if (ops->check != NULL && (r = ops->check(s, err)) != 0)
        return r == -RK_ENOMEM ? r : -RK_ECONFIG;
    return 0;
}
