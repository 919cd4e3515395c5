/* setting.c: the parser of a setting's text by its declared type, and the storing of the value
 * where the row says (setting.h). The messages say what was expected, never which key: the
 * caller knows the key and its position. */
#include "inventory/setting.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "inventory/inventory.h"
#include "util/ere.h"
#include "util/parse.h"
#include "util/template.h"

#define SHOWN(n) ((int)((n) > 40 ? 40 : (n)))

const struct inv_setting *
inv_setting_find(const struct inv_setting *table, const char *name, size_t len)
{
    for (; table != NULL && table->name != NULL; table++)
        if (strlen(table->name) == len && memcmp(table->name, name, len) == 0)
            return table;
    return NULL;
}

const char *
inv_setting_expected(const struct inv_setting *st)
{
    switch (st->type) {
    case IS_DURATION: return "a duration (e.g. 30d, 24h, 90s)";
    case IS_INT: return "an integer";
    case IS_BOOL: return "true or false";
    case IS_ENUM: return st->choices != NULL ? st->choices : "a word";
    case IS_SECRET_PATH: return "a secret path";
    case IS_URL: return "an http:// or https:// URL";
    case IS_LIST: return "a list of names";
    case IS_REGEX: return "a POSIX ERE";
    case IS_FILE: return "a file path";
    case IS_MODE: return "an octal mode such as \"0600\"";
    case IS_ARGV: return "a list [program, arg, ...]";
    case IS_HEADERS: return "a mapping of header names to values";
    case IS_STRING:
    case IS_TEMPLATE:
    case IS_PUBLIC_TEMPLATE: break;
    }
    return "a string";
}

int
inv_setting_is_text(const struct inv_setting *st)
{
    if (st->offset == 0)
        return 1;
    switch (st->type) {
    case IS_INT:
    case IS_BOOL:
    case IS_MODE:
    case IS_DURATION:
    case IS_ARGV:
    case IS_HEADERS: return 0;
    case IS_ENUM: return (st->flags & IS_INDEX) == 0;
    default: return 1;
    }
}

/* The index of text[0..len) among the '|'-separated choices, or -1. */
static int
choice_index(const char *choices, const char *text, size_t len)
{
    const char *c = choices;

    for (int i = 0; c != NULL && *c != '\0'; i++) {
        size_t n = strcspn(c, "|");
        if (n == len && len > 0 && memcmp(c, text, n) == 0)
            return i;
        c += n;
        if (*c == '|')
            c++;
    }
    return -1;
}

static int
parse_mode(const char *s, size_t len, unsigned *out)
{
    unsigned m = 0;

    if (len == 0 || len > 4)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '7')
            return -1;
        m = m * 8 + (unsigned)(s[i] - '0');
    }
    if (m > 0777)
        return -1;
    *out = m;
    return 0;
}

static int
dup_out(const char *s, size_t len, char **out, struct rk_error *err)
{
    if ((*out = strndup(s, len)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

/* Checks the rules of a type whose value is kept as written; t is NUL-terminated. */
static int
check_text(const struct inv_setting *st, const char *t, size_t len, struct rk_error *err)
{
    struct rk_error e = {0};
    int64_t secs;

    switch (st->type) {
    case IS_STRING:
    case IS_LIST:
    case IS_FILE:
        if (len == 0)
            return rk_error_set(err, RK_ECONFIG, "expected a non-empty %s",
                                st->type == IS_FILE ? "file path" : "string");
        if (st->type == IS_FILE && template_check(t, TEMPLATE_PUBLIC, &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "%s", e.msg);
        return 0;
    case IS_DURATION:
        if (duration_parse(t, len, &secs, &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "%s", e.msg);
        if (secs <= 0)
            return rk_error_set(err, RK_ECONFIG, "expected a duration greater than 0");
        if (st->max > 0 && secs > st->max) {
            char lim[32];
            duration_format(st->max, lim, sizeof(lim));
            return rk_error_set(err, RK_ECONFIG, "expected a duration up to %s", lim);
        }
        return 0;
    case IS_ENUM:
        if (choice_index(st->choices, t, len) < 0)
            return rk_error_set(err, RK_ECONFIG, "expected one of %s, got '%.*s'",
                                st->choices ? st->choices : "", SHOWN(len), t);
        return 0;
    case IS_SECRET_PATH:
        if (path_validate(t, len, &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "%s (expected segments like secret/app/name)",
                                e.msg);
        return 0;
    case IS_URL:
        if (strncmp(t, "http://", 7) != 0 && strncmp(t, "https://", 8) != 0)
            return rk_error_set(err, RK_ECONFIG, "expected an http:// or https:// URL");
        if (template_check(t, TEMPLATE_PUBLIC, &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "%s", e.msg);
        return 0;
    case IS_REGEX: return ere_check(t, err);
    case IS_TEMPLATE:
    case IS_PUBLIC_TEMPLATE:
        if (template_check(t, st->type == IS_PUBLIC_TEMPLATE ? TEMPLATE_PUBLIC : 0, &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "%s", e.msg);
        return 0;
    default: return rk_error_set(err, RK_EINVAL, "not a text type");
    }
}

int
inv_setting_parse(const struct inv_setting *st, const char *text, size_t len, char **out,
                  struct rk_error *err)
{
    char buf[32];
    int64_t v;
    unsigned m;
    int r;

    *out = NULL;
    if (memchr(text, '\0', len) != NULL)
        return rk_error_set(err, RK_ECONFIG, "contains a NUL byte; expected %s",
                            inv_setting_expected(st));
    switch (st->type) {
    case IS_BOOL:
        if (len == 4 && strncasecmp(text, "true", 4) == 0)
            return dup_out("true", 4, out, err);
        if (len == 5 && strncasecmp(text, "false", 5) == 0)
            return dup_out("false", 5, out, err);
        return rk_error_set(err, RK_ECONFIG, "expected true or false, got '%.*s'", SHOWN(len),
                            text);
    case IS_INT:
        if (len == 0 || len >= sizeof(buf))
            goto badint;
        memcpy(buf, text, len);
        buf[len] = '\0';
        if (parse_int64(buf, st->min, st->max, &v) != 0)
            goto badint;
        snprintf(buf, sizeof(buf), "%lld", (long long)v);
        return dup_out(buf, strlen(buf), out, err);
    badint:
        return rk_error_set(err, RK_ECONFIG, "expected an integer from %lld to %lld, got '%.*s'",
                            st->min, st->max, SHOWN(len), text);
    case IS_MODE:
        if (parse_mode(text, len, &m) != 0)
            return rk_error_set(err, RK_ECONFIG,
                                "expected an octal mode from 0000 to 0777 such as \"0600\", "
                                "got '%.*s'",
                                SHOWN(len), text);
        snprintf(buf, sizeof(buf), "%04o", m);
        return dup_out(buf, strlen(buf), out, err);
    case IS_ARGV:
    case IS_HEADERS:
        return rk_error_set(err, RK_EINVAL, "%s is not a scalar type", inv_setting_expected(st));
    default: break;
    }
    if ((r = dup_out(text, len, out, err)) != 0)
        return r;
    if ((r = check_text(st, *out, len, err)) != 0) {
        free(*out);
        *out = NULL;
    }
    return r;
}

static int
params_put(struct inv_pair **params, size_t *nparams, const char *key, char *text,
           struct rk_error *err)
{
    struct inv_pair *np;
    char *k;

    for (size_t i = 0; i < *nparams; i++) {
        if (strcmp((*params)[i].key, key) == 0) {
            free((*params)[i].value);
            (*params)[i].value = text;
            return 0;
        }
    }
    if ((k = strdup(key)) == NULL ||
        (np = realloc(*params, (*nparams + 1) * sizeof(*np))) == NULL) {
        free(k);
        free(text);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    *params = np;
    np[*nparams].key = k;
    np[*nparams].value = text;
    (*nparams)++;
    return 0;
}

int
inv_setting_store(const struct inv_setting *st, void *base, struct inv_pair **params,
                  size_t *nparams, char *text, struct rk_error *err)
{
    unsigned char *member = (unsigned char *)base + st->offset;
    int64_t secs = 0;
    unsigned m = 0;
    int iv = 0;

    if (text == NULL)
        return rk_error_set(err, RK_EINVAL, "%s: no value", st->name);
    if (st->offset == 0) {
        if (params == NULL || nparams == NULL) {
            free(text);
            return rk_error_set(err, RK_EINVAL, "%s: nowhere to keep it", st->name);
        }
        return params_put(params, nparams, st->name, text, err);
    }
    if (inv_setting_is_text(st)) {
        char **p = (char **)(void *)member;
        free(*p);
        *p = text;
        return 0;
    }
    switch (st->type) {
    case IS_INT: {
        int64_t v = 0;
        parse_int64(text, st->min, st->max, &v);
        iv = (int)v;
        memcpy(member, &iv, sizeof(iv));
        break;
    }
    case IS_BOOL:
        iv = strcmp(text, "true") == 0;
        memcpy(member, &iv, sizeof(iv));
        break;
    case IS_ENUM:
        iv = choice_index(st->choices, text, strlen(text));
        memcpy(member, &iv, sizeof(iv));
        break;
    case IS_MODE: {
        mode_t mode;
        parse_mode(text, strlen(text), &m);
        mode = (mode_t)m;
        memcpy(member, &mode, sizeof(mode));
        break;
    }
    case IS_DURATION:
        duration_parse(text, strlen(text), &secs, NULL);
        memcpy(member, &secs, sizeof(secs));
        break;
    default: free(text); return rk_error_set(err, RK_EINVAL, "%s: not a scalar setting", st->name);
    }
    free(text);
    return 0;
}

int
inv_settings_check_table(const struct inv_setting *table, const char *const *reserved,
                         struct rk_error *err)
{
    struct rk_error e = {0};

    for (const struct inv_setting *st = table; st != NULL && st->name != NULL; st++) {
        char *v = NULL;

        if (st->name[0] == '\0')
            return rk_error_set(err, RK_EINVAL, "a setting has an empty name");
        for (const struct inv_setting *o = table; o < st; o++)
            if (strcmp(o->name, st->name) == 0)
                return rk_error_set(err, RK_EINVAL, "%s: declared twice", st->name);
        for (size_t i = 0; reserved != NULL && reserved[i] != NULL; i++)
            if (strcmp(reserved[i], st->name) == 0)
                return rk_error_set(err, RK_EINVAL, "%s: a generic key the loader owns", st->name);
        if (st->type < IS_STRING || st->type > IS_HEADERS)
            return rk_error_set(err, RK_EINVAL, "%s: unknown type %d", st->name, (int)st->type);
        if (st->type == IS_ENUM && (st->choices == NULL || st->choices[0] == '\0'))
            return rk_error_set(err, RK_EINVAL, "%s: an enum without choices", st->name);
        if ((st->flags & IS_INDEX) && st->type != IS_ENUM)
            return rk_error_set(err, RK_EINVAL, "%s: IS_INDEX on a type other than IS_ENUM",
                                st->name);
        if (st->min > st->max)
            return rk_error_set(err, RK_EINVAL, "%s: min %lld > max %lld", st->name, st->min,
                                st->max);
        if (st->type == IS_INT && st->min == 0 && st->max == 0)
            return rk_error_set(err, RK_EINVAL, "%s: an integer without a range", st->name);
        if ((st->type == IS_ARGV || st->type == IS_HEADERS) &&
            (st->offset == 0 || st->count_offset == 0 || st->def != NULL))
            return rk_error_set(err, RK_EINVAL,
                                "%s: a list or mapping needs a member and a count"
                                " and takes no default",
                                st->name);
        if (st->help == NULL || st->help[0] == '\0')
            return rk_error_set(err, RK_EINVAL, "%s: no help text", st->name);
        if (st->def == NULL)
            continue;
        if (st->flags & IS_REQUIRED)
            return rk_error_set(err, RK_EINVAL, "%s: required and with a default", st->name);
        if (inv_setting_parse(st, st->def, strlen(st->def), &v, &e) != 0)
            return rk_error_set(err, RK_EINVAL, "%s: the default '%s' does not parse: %s", st->name,
                                st->def, e.msg);
        free(v);
    }
    return 0;
}
