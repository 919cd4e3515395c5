/* fields.c: the field map of a version (see fields.h). Values live in the secure heap; the
 * JSON reader uses jansson, whose blocks the processes wipe on free (json_wipe_on_free), and
 * copies each string into a struct secret at once. */
#include "rotators/fields.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void
rot_fields_init(struct rot_fields *f)
{
    memset(f, 0, sizeof(*f));
}

void
rot_fields_clear(struct rot_fields *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].name);
        secret_free(f->v[i].value);
    }
    free(f->v);
    memset(f, 0, sizeof(*f));
}

int
rot_field_name_ok(const char *name)
{
    size_t len;

    if (name == NULL || (len = strlen(name)) == 0 || len > ROT_FIELD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static struct rot_field *
find_mut(struct rot_fields *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].name, name) == 0)
            return &f->v[i];
    return NULL;
}

int
rot_fields_set(struct rot_fields *f, const char *name, struct secret *value, unsigned flags,
               struct rk_error *err)
{
    struct rot_field *slot;
    char *copy;

    if (value == NULL)
        return rk_error_set(err, RK_EINVAL, "field %.64s has no value", name ? name : "?");
    if (!rot_field_name_ok(name)) {
        secret_free(value);
        return rk_error_set(err, RK_EINVAL,
                            "bad field name \"%.64s\": expected 1 to %d characters from "
                            "[A-Za-z0-9_-]",
                            name ? name : "", ROT_FIELD_NAME_MAX);
    }
    if ((slot = find_mut(f, name)) != NULL) {
        secret_free(slot->value);
        slot->value = value;
        slot->flags = flags;
        return 0;
    }
    if (f->n >= ROT_FIELDS_MAX) {
        secret_free(value);
        return rk_error_set(err, RK_ELIMIT, "more than %d fields in one version", ROT_FIELDS_MAX);
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        struct rot_field *v = realloc(f->v, cap * sizeof(*v));
        if (v == NULL) {
            secret_free(value);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        f->v = v;
        f->cap = cap;
    }
    if ((copy = strdup(name)) == NULL) {
        secret_free(value);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    f->v[f->n].name = copy;
    f->v[f->n].value = value;
    f->v[f->n].flags = flags;
    f->n++;
    return 0;
}

int
rot_fields_put(struct rot_fields *f, const char *name, const void *data, size_t len, unsigned flags,
               struct rk_error *err)
{
    struct secret *v = secret_from(data, len);

    if (v == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return rot_fields_set(f, name, v, flags, err);
}

const struct rot_field *
rot_fields_find(const struct rot_fields *f, const char *name)
{
    if (f == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].name, name) == 0)
            return &f->v[i];
    return NULL;
}

const struct secret *
rot_fields_get(const struct rot_fields *f, const char *name)
{
    const struct rot_field *fd = rot_fields_find(f, name);

    return fd != NULL ? fd->value : NULL;
}

int
rot_fields_from_json(const struct secret *json, const char *const *internal, size_t ninternal,
                     struct rot_fields *f, struct rk_error *err)
{
    json_error_t jerr;
    const char *key;
    json_t *obj, *v;
    int r = 0;

    rot_fields_clear(f);
    if (json == NULL)
        return 0;
    /* The jansson message may quote the text, which is a secret: only its position is used. */
    obj = json_loadb((const char *)json->data, json->len, 0, &jerr);
    if (obj == NULL || !json_is_object(obj)) {
        json_decref(obj);
        return rk_error_set(err, RK_ECORRUPT, "the fields of a version are not a JSON object");
    }
    json_object_foreach(obj, key, v)
    {
        unsigned flags = 0;
        if (!json_is_string(v) || !rot_field_name_ok(key))
            continue; /* kept in the stored data; templates read it from there */
        for (size_t i = 0; i < ninternal; i++)
            if (internal[i] != NULL && strcmp(internal[i], key) == 0)
                flags |= ROT_FIELD_INTERNAL;
        if ((r = rot_fields_put(f, key, json_string_value(v), json_string_length(v), flags, err)) !=
            0)
            break;
    }
    json_decref(obj);
    if (r != 0)
        rot_fields_clear(f);
    return r;
}
