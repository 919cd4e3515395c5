/* rotator.h: one rotator per kind of secret, an ops table like curl's protocol handlers.
 * The engine (engine/rotation.c) drives every kind through the same six steps; a rotator only
 * says how its kind makes a candidate, makes the target accept it, proves it works, and retires
 * the old value. Hooks (apply/test/reload lists in the inventory) run in addition. */
#ifndef REKEY_ROTATOR_H
#define REKEY_ROTATOR_H

#include <stddef.h>
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

    /* ---- the kind's settings, defaults and rules (the loader, lint and the API's entries) ----
     * A kind with settings but no create is a planned kind: its entries load and lint, and the
     * engine answers "kind X is not implemented yet". */
    /* The kind's own keys (inventory/setting.h), ended by a row with name NULL; NULL: none.
     * The loader refuses any other key besides the generic ones (path, kind, description,
     * every, auto, grace, field, apply, test, reload), parses each by its type and fills
     * defaults (rotator_entry_finish). */
    const struct inv_setting *settings;
    /* The field that holds the value when the entry names none ("value", "api_key"). */
    const char *default_field;
    /* 1: the entry may not choose its field (a kind whose fields have fixed names). */
    int fixed_field;
    /* Defaults that depend on other settings (a provider's base_url, a database role from the
     * path, a certificate's every); runs after the table's defaults, before check. Returns 0
     * or -RK_E* with the reason in err. May be NULL. */
    int (*defaults)(struct inv_secret *s, struct rk_error *err);
    /* The kind's lint rules beyond check: reports findings through report (inventory.h); inv
     * gives the server settings (check_interval). May be NULL. */
    void (*lint)(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
                 void *arg);
};

/* The rotator for kind, or NULL when the kind is unknown or planned (no create yet). */
const struct rotator_ops *rotator_find(const char *kind);

/* The registry's row for kind, implemented or planned, or NULL for an unknown kind. */
const struct rotator_ops *rotator_kind(const char *kind);

/* The i-th row of the registry (0-based), or NULL past the last: for listing the kinds and for
 * the contract tests. */
const struct rotator_ops *rotator_at(size_t i);

/* The generic keys of an entry, which the loader owns (NULL-terminated); a kind's settings may
 * not reuse them. */
extern const char *const rotator_generic_keys[];

/* Completes an entry whose kind settings have been parsed and stored (inv_setting_parse,
 * inv_setting_store): a required setting missing is an error ("missing required key 'X'
 * (what)"), absent ones get the table's default, s->field the kind's default_field, then the
 * kind's defaults and check run. Used by the YAML loader and for entries defined through the
 * API. Returns 0 or -RK_ECONFIG / -RK_ENOMEM with the reason in err; when one setting is at
 * fault the message starts with its name and ": ". */
int rotator_entry_finish(const struct rotator_ops *ops, struct inv_secret *s, struct rk_error *err);

#endif
