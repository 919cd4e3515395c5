/* rotator.h: one rotator per kind of secret, an ops table like curl's protocol handlers.
 * The engine (engine/rotation.c) drives every kind through the same six steps; a rotator only
 * says how its kind makes a candidate, makes the target accept it, proves it works, and retires
 * the old value. Hooks (apply/test/reload lists in the inventory) run in addition. */
#ifndef REKEY_ROTATOR_H
#define REKEY_ROTATOR_H

#include <stdint.h>

#include "inventory/inventory.h"
#include "../util/err.h"
#include "../util/secret.h"

#define ROTATOR_OPS_VERSION 1

/* Where a manual value comes from (rekey rotate --from-stdin / --from-file / a no-echo prompt). */
struct rot_input {
    const struct secret *value; /* given directly (an API request body); used first if set */
    int from_stdin;
    const char *from_file;
    int allow_prompt; /* a terminal is attached */
};

struct rot_ctx {
    const struct inv_secret *secret;
    const struct rot_input *input;  /* may be NULL (daemon) */
    const struct secret *old_value; /* the field's current value, NULL if none */
    const struct secret *new_value; /* the candidate (set after create) */
    uint64_t old_version, new_version;
    void *priv; /* the rotator's own state between steps */
};

enum {
    ROT_F_MANUAL_INPUT = 1 << 0,    /* create needs a value from a person */
    ROT_F_PERSON_FINISHES = 1 << 1, /* retire at the target needs a person (action-required) */
};

struct rotator_ops {
    int version;      /* ROTATOR_OPS_VERSION */
    const char *kind; /* as in the inventory: "generated", "manual", … */
    unsigned flags;
    /* Checks the entry's settings at load/lint time (format, pattern…). May be NULL. */
    int (*check)(const struct inv_secret *s, struct rk_error *err);
    /* Produces the candidate value (*out, a secret). Required. */
    int (*create)(struct rot_ctx *c, struct secret **out, struct rk_error *err);
    /* Makes the target accept the candidate (ALTER ROLE, ACL SETUSER >new). May be NULL.
     * Must be safe to run twice. */
    int (*apply)(struct rot_ctx *c, struct rk_error *err);
    /* Undoes apply (the candidate failed). May be NULL. Safe to run twice. */
    int (*unapply)(struct rot_ctx *c, struct rk_error *err);
    /* Proves the candidate works against the real target. May be NULL. */
    int (*test)(struct rot_ctx *c, struct rk_error *err);
    /* After grace: retires the previous value at the target. May be NULL. Safe to run twice. */
    int (*retire)(struct rot_ctx *c, struct rk_error *err);
    /* Frees c->priv. May be NULL. */
    void (*cleanup)(struct rot_ctx *c);
};

/* The rotator for kind, or NULL when no rotator exists yet for it. */
const struct rotator_ops *rotator_find(const char *kind);

#endif
