/* fields.h: the fields of one version of a secret, as a rotator makes them and as the engine
 * stores them: an ordered map name -> value (struct secret, secure heap). A database login is
 * `username` + `password`, a certificate `certificate` + `private_key` + `chain`; a one-field
 * kind puts its value under the entry's `field`. A field marked ROT_FIELD_INTERNAL (an id the
 * rotator needs to retire the value later) is stored with the version but never rendered into
 * a consumer's file or request: hook templates refuse {{new.F}} / {{old.F}} of it.
 *
 * The version's data in the KV store is the JSON object {"name": "value", ...} of every field;
 * which names are internal is kept beside it by the engine (rot/fields/<path>). */
#ifndef REKEY_ROT_FIELDS_H
#define REKEY_ROT_FIELDS_H

#include <stddef.h>

#include "util/err.h"
#include "util/secret.h"

#define ROT_FIELD_INTERNAL (1u << 0) /* stored, never rendered into consumer files */

#define ROT_FIELD_NAME_MAX 128 /* bytes; names are [A-Za-z0-9_-], as templates accept them */
#define ROT_FIELDS_MAX 64      /* fields per version */

struct rot_field {
    char *name;           /* ordinary heap: a name is never a secret */
    struct secret *value; /* secure heap */
    unsigned flags;       /* ROT_FIELD_* */
};

struct rot_fields {
    struct rot_field *v; /* in insertion order */
    size_t n, cap;
};

/* An empty map (also what a zeroed struct is). */
void rot_fields_init(struct rot_fields *f);

/* Wipes and frees every field; f is empty afterwards and may be reused. Accepts NULL. */
void rot_fields_clear(struct rot_fields *f);

/* Sets field name to value (taken: owned by f from now on, also on failure) with flags,
 * replacing a field of the same name in place. Returns 0, -RK_EINVAL (bad name: empty, longer
 * than ROT_FIELD_NAME_MAX, or a character outside [A-Za-z0-9_-]; value NULL), -RK_ELIMIT (more
 * than ROT_FIELDS_MAX fields) or -RK_ENOMEM. err names the field, never the value. */
int rot_fields_set(struct rot_fields *f, const char *name, struct secret *value, unsigned flags,
                   struct rk_error *err);

/* As rot_fields_set with a copy of data[0..len). */
int rot_fields_put(struct rot_fields *f, const char *name, const void *data, size_t len,
                   unsigned flags, struct rk_error *err);

/* The field called name, or NULL. Borrowed from f. */
const struct rot_field *rot_fields_find(const struct rot_fields *f, const char *name);

/* The value of field name, or NULL. Borrowed from f. */
const struct secret *rot_fields_get(const struct rot_fields *f, const char *name);

/* 1 when a field name is valid (see rot_fields_set), else 0. */
int rot_field_name_ok(const char *name);

/* Reads the string members of a version's data (a JSON object text) into f (cleared first);
 * members whose value is not a string are skipped (they stay in the stored data). Every name in
 * internal[0..ninternal) that is present gets ROT_FIELD_INTERNAL. Returns 0, -RK_ECORRUPT (not
 * a JSON object; the message never quotes the text) or -RK_ENOMEM. */
int rot_fields_from_json(const struct secret *json, const char *const *internal, size_t ninternal,
                         struct rot_fields *f, struct rk_error *err);

#endif
