/* setting.h: how a rotator or hook kind declares the settings it takes, one row per key, and
 * the one parser of a setting's text by its type. The YAML loader (engine/config-*.c), entries
 * defined through the API and lint all go through these rows, so a setting is declared,
 * defaulted and checked in one place: the kind's file (rotators/<kind>.c, hooks/hook-<kind>.c).
 *
 * A table is an array of struct inv_setting ended by a row whose name is NULL. */
#ifndef REKEY_INVENTORY_SETTING_H
#define REKEY_INVENTORY_SETTING_H

#include <stddef.h>

#include "util/err.h"

struct inv_pair;

enum inv_setting_type {
    IS_STRING = 1,      /* a non-empty string */
    IS_DURATION,        /* 30d, 24h, 1h30m, plain seconds; > 0 and at most max when max > 0 */
    IS_INT,             /* an integer from min to max */
    IS_BOOL,            /* true or false */
    IS_ENUM,            /* one of choices ("a|b|c") */
    IS_SECRET_PATH,     /* the path of a secret (path_validate) */
    IS_URL,             /* an http:// or https:// URL; may use {{path}} and {{version}} */
    IS_LIST,            /* a list of names without ',' (or one scalar); stored comma-joined */
    IS_REGEX,           /* a POSIX ERE that compiles (util/ere.h) */
    IS_FILE,            /* a file path, relative to the config file's directory; may use
                         * {{path}} and {{version}} */
    IS_TEMPLATE,        /* a template (util/template.h) that may hold secrets: a file's
                         * content, an HTTP body */
    IS_PUBLIC_TEMPLATE, /* a template without secret placeholders */
    IS_MODE,            /* an octal file mode from 0000 to 0777, written as a string "0600" */
    IS_ARGV,            /* a non-empty list [program, arg…] of IS_PUBLIC_TEMPLATE */
    IS_HEADERS,         /* a mapping of header names to one-line IS_TEMPLATE values */
};

enum {
    IS_REQUIRED = 1 << 0, /* the entry must set it (then def is NULL) */
    IS_INDEX = 1 << 1,    /* IS_ENUM stored in an int member as the index of the choice */
};

struct inv_setting {
    const char *name;
    enum inv_setting_type type;
    const char *def; /* the default, written as in YAML; NULL: none */
    unsigned flags;
    const char *choices; /* IS_ENUM: "a|b|c" */
    const char *help;    /* what it is, for "missing required key" and docs/config.md */
    long long min, max;  /* IS_INT: the range; IS_DURATION: max seconds (0 = no limit) */
    /* Where the value goes. 0: kept as text in the entry's params (inv_param). Else the offset
     * of a member of the struct (inv_secret, hook_def) whose type follows the setting's:
     * char * for the text types, int for IS_INT, IS_BOOL and IS_ENUM with IS_INDEX, mode_t for
     * IS_MODE, int64_t seconds for IS_DURATION, char ** (NULL-terminated) for IS_ARGV and
     * struct inv_pair * for IS_HEADERS, with the count (size_t) at count_offset. */
    size_t offset, count_offset;
};

/* The row of table named name[0..len), or NULL. table may be NULL. */
const struct inv_setting *inv_setting_find(const struct inv_setting *table, const char *name,
                                           size_t len);

/* What a value of st's type looks like, for "expected …, got a mapping" ("a duration (e.g.
 * 30d, 24h, 90s)"). */
const char *inv_setting_expected(const struct inv_setting *st);

/* 1 if st's value is kept as text (params or a char * member), 0 otherwise. */
int inv_setting_is_text(const struct inv_setting *st);

/* Parses text[0..len) (need not be NUL-terminated) as a value of st: *out gets the text to
 * store (malloc'd; the caller frees it or hands it to inv_setting_store): booleans as
 * "true"/"false", integers in decimal, modes as four octal digits, the rest as written. For
 * IS_LIST, text is the whole value (one element, or elements joined with ','). IS_FILE is not
 * made absolute here (the loader knows the config's directory). Not for IS_ARGV and
 * IS_HEADERS, whose elements are parsed as IS_PUBLIC_TEMPLATE and IS_TEMPLATE. Returns 0,
 * -RK_ECONFIG with what was expected in err (without the key), or -RK_ENOMEM. */
int inv_setting_parse(const struct inv_setting *st, const char *text, size_t len, char **out,
                      struct rk_error *err);

/* Stores text (from inv_setting_parse; taken, also on failure) as st's value: into the member
 * of base at st->offset, converted to its type, or with offset 0 into (*params, *nparams) under
 * st->name, replacing an earlier value. Not for IS_ARGV and IS_HEADERS. Returns 0, -RK_ENOMEM
 * or -RK_EINVAL (a bad row). */
int inv_setting_store(const struct inv_setting *st, void *base, struct inv_pair **params,
                      size_t *nparams, char *text, struct rk_error *err);

/* Checks that a table is well-formed: names non-empty and unique, not in reserved[] (the
 * generic keys the loader owns; NULL-terminated, may be NULL), known types, choices for
 * IS_ENUM, min <= max, no default on a required setting, every default parsing as its type,
 * IS_ARGV/IS_HEADERS only in a member. For the contract tests. Returns 0 or -RK_EINVAL naming
 * the row. */
int inv_settings_check_table(const struct inv_setting *table, const char *const *reserved,
                             struct rk_error *err);

#endif
