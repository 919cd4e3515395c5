/* rotator.h: one rotator per kind of secret, an ops table like curl's protocol handlers.
 * The engine (engine/rotation.c) drives every kind through the same six steps; a rotator only
 * says how its kind makes a candidate, makes the target accept it, proves it works, and retires
 * the old value. Hooks (apply/test/reload lists in the inventory) run in addition. */
#ifndef REKEY_ROTATOR_H
#define REKEY_ROTATOR_H

#include <stddef.h>
#include <stdint.h>

#include "inventory/inventory.h"
#include "util/err.h"
#include "util/secret.h"
#include "rotators/fields.h"

#define ROTATOR_OPS_VERSION 2

struct fp_key;
struct kv;

/* A value a person supplies (a manual kind), read by whoever talks to the person: the CLI
 * (--from-stdin, --from-file, a no-echo prompt: cli/secret-input.h) or an API request body. A
 * rotator never reads input itself. */
struct rot_input {
    const struct secret *value; /* NULL: none was given */
};

/* Reads field `field` of the current version of another secret (an admin key, a database admin
 * password). *out is the caller's (secret_free). Returns 0, -RK_ENOTFOUND (no such path, no
 * current version, no such field), -RK_EINVAL (bad path, or the field is not a string), or a
 * store error. Neither the reader nor its messages ever log or print the value. */
typedef int (*rot_read_fn)(void *arg, const char *path, const char *field, struct secret **out,
                           struct rk_error *err);

struct rot_ctx {
    const struct inv_secret *secret;
    const struct rot_input *input;  /* may be NULL (daemon) */
    const struct secret *old_value; /* the entry's field in the current version, NULL if none */
    const struct secret *new_value; /* the entry's field in the candidate (set after create) */
    const struct rot_fields *old_fields; /* every string field of the current version; may be
                                          * NULL (no current version) */
    const struct rot_fields *new_fields; /* every string field of the candidate (after create) */
    uint64_t old_version, new_version;
    rot_read_fn read_secret; /* the narrow reader of other secrets; always set by the engine */
    void *read_arg;
    /* The store's fingerprint key, for messages about a value that is not stored (a refused
     * key shows as fingerprint(fp_key, …), util/enc.h); NULL when the store has none. */
    const struct fp_key *fp_key;
    void *priv; /* the rotator's own state between steps */
    /* The store the engine works on, for a kind that keeps records of its own beside the
     * entry's versions (transit keyrings, secrets/transit.h). Always set by the engine. */
    struct kv *kv;
};

/* Per-entry capabilities, from flags_for (a provider key is manual without an admin key and
 * automatic with one). */
enum {
    ROT_F_MANUAL_INPUT = 1 << 0,    /* create needs a value from a person */
    ROT_F_PERSON_FINISHES = 1 << 1, /* retire at the target needs a person (action-required) */
    ROT_F_NO_ROLLBACK = 1 << 2,     /* versions are not swapped back (a keyring: every version
                                     * above its minimum stays usable); rollback is refused */
    ROT_F_ON_DEMAND = 1 << 3,       /* no schedule: the entry makes values on request (a
                                     * database role template, database/creds/ROLE); lint does
                                     * not ask for `every` */
};

/* What `status` sees of an entry's current value (for a kind whose due time comes from its own
 * data: a certificate's notAfter, a lease's expiry, a keyring's versions). */
struct rot_status_in {
    int64_t now;          /* seconds */
    int64_t last_rotated; /* when the current version was written (seconds); 0 = none yet */
    uint64_t version;     /* the current version; 0 = none */
    /* Reads field `field` of the current version; *out is the caller's (secret_free). Returns
     * 0, -RK_ENOTFOUND (no current version, no such field) or a store error. Never logs the
     * value. Always set. */
    int (*read_current)(void *arg, const char *field, struct secret **out, struct rk_error *err);
    void *read_arg;
    struct kv *kv; /* the store, for a kind with records of its own (as rot_ctx.kv) */
};

/* A kind's answer to `status`. The engine fills it with its own rule first (next_due = last
 * rotation + every, or now when never rotated; period = every; the rest 0 / ""), so the op
 * changes only what it knows. */
struct rot_due {
    int64_t next_due;   /* seconds: when the entry is due (the daemon rotates or reminds then);
                         * 0 = not scheduled */
    int64_t overdue_at; /* seconds: past it the entry is overdue; 0 = the engine's tolerance */
    int64_t expires_at; /* seconds: when the current value stops working; 0 = unknown/never */
    int64_t period;     /* seconds between later rotations, for the calendar; 0 = none known */
    char detail[160];   /* shown beside the state (status, the API); never a secret */
};

/* The outcomes of apply, test (and the reload hooks): 0 accepted; -RK_EREJECTED (or any other
 * error) the target refused the value: the engine undoes the candidate; -RK_EUNAVAILABLE or
 * -RK_ETIMEOUT the target did not answer (timeout, refused connection, 429, 5xx): the candidate
 * stays pending and the step runs again later (`rekey rotate PATH`, the daemon). */
struct rotator_ops {
    int version;      /* ROTATOR_OPS_VERSION */
    const char *kind; /* as in the inventory: "generated", "manual", … */
    /* The entry's ROT_F_* flags. NULL: none. Read through rotator_flags(). */
    unsigned (*flags_for)(const struct inv_secret *s);
    /* Checks the entry's settings at load/lint time (format, pattern…). May be NULL. */
    int (*check)(const struct inv_secret *s, struct rk_error *err);
    /* Produces the candidate: sets every field of the new version in *out (empty on entry;
     * the engine clears it). A one-field kind puts its value under the entry's field
     * (s->field); a field the rotator needs later but no consumer may see gets
     * ROT_FIELD_INTERNAL. Required. */
    int (*create)(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err);
    /* Makes the target accept the candidate (ALTER ROLE, ACL SETUSER >new). May be NULL.
     * Must be safe to run twice. */
    int (*apply)(struct rot_ctx *c, struct rk_error *err);
    /* Undoes apply (the candidate failed). May be NULL. Safe to run twice. */
    int (*unapply)(struct rot_ctx *c, struct rk_error *err);
    /* Proves the candidate works against the real target. May be NULL. */
    int (*test)(struct rot_ctx *c, struct rk_error *err);
    /* Makes the target use the candidate (a keyring's latest version), right before the
     * engine's promote commit; a later undo calls unapply. May be NULL. Must be safe to run
     * twice (a resumed rotation runs it again). Its failure undoes the candidate. */
    int (*promote)(struct rot_ctx *c, struct rk_error *err);
    /* After grace: retires the previous value at the target. May be NULL. Safe to run twice.
     * -RK_EACTION: this value only a person can retire (a key made at a console, not by the
     * admin API): err's message says what to do, and the engine opens an action-required
     * item with it instead of failing. */
    int (*retire)(struct rot_ctx *c, struct rk_error *err);
    /* Frees c->priv. May be NULL. */
    void (*cleanup)(struct rot_ctx *c);
    /* What a person must do when the entry waits for one (retire the old value at the
     * provider's console, with its URL), one line into buf[0..len), never a secret. Returns 0,
     * or -RK_ENOTFOUND when the kind has nothing to say (the engine then writes a generic
     * line). May be NULL. */
    int (*action_hint)(const struct inv_secret *s, char *buf, size_t len);
    /* Where a person gets a new value (the provider's console page), one line into
     * buf[0..len) that the CLI shows before it prompts for the value; never a secret. Returns
     * 0, or -RK_ENOTFOUND when the kind has nothing to say. May be NULL. */
    int (*input_hint)(const struct inv_secret *s, char *buf, size_t len);
    /* When the entry is due and what to show, from the kind's own data (see struct rot_due):
     * used by status, schedule, their --json, the API's status route and the daemon's timers.
     * Returns 0, or -RK_E* (a store error is passed on; any other keeps the engine's rule and
     * shows err's message). May be NULL: last rotation + every. */
    int (*status)(const struct inv_secret *s, const struct rot_status_in *in, struct rot_due *out,
                  struct rk_error *err);

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
    /* The name of the role of secrets engine `engine` ("database": database/creds/NAME and
     * database/static-creds/NAME; "pki": pki/issue/NAME) that the entry defines, or NULL when
     * it defines none. May be NULL: none. */
    const char *(*role)(const struct inv_secret *s, const char *engine);
};

/* The role of secrets engine `engine` the entry defines (rotator_ops.role), or NULL. */
const char *rotator_role(const struct inv_secret *s, const char *engine);

/* The entry's ROT_F_* flags (0 for ops NULL). The one place flags are read: the daemon,
 * rotate --due/--all, revoke, the dry run and the API's needs_input all ask here. */
static inline unsigned
rotator_flags(const struct rotator_ops *ops, const struct inv_secret *s)
{
    return ops != NULL && ops->flags_for != NULL ? ops->flags_for(s) : 0;
}

/* The entry's field (where a one-field kind puts its value): s->field, or "value". */
static inline const char *
rotator_field(const struct inv_secret *s)
{
    return s->field != NULL && s->field[0] != '\0' ? s->field : "value";
}

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
