/* config.h: internal to the YAML loader (engine/inventory.c and engine/config-*.c); not for
 * other modules. The loader reads the document into a small tree (config-yaml.c), then walks
 * it section by section: store, server and audit (inventory.c), hooks (config-hooks.c) and
 * secrets (config-secrets.c). A kind's own keys are read through its settings table
 * (inventory/setting.h) by load_setting, whatever the kind.
 *
 * Every error goes through lerr: "file:line:col: key: what was expected". */
#ifndef REKEY_ENGINE_CONFIG_H
#define REKEY_ENGINE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/inventory.h"
#include "util/err.h"

struct fy_parser;
struct fy_diag;

struct pos {
    int line, col; /* 1-based */
};

struct arena_chunk;

struct loader {
    const char *name;
    char *dir; /* the config file's directory, or NULL (relative to the working directory) */
    struct rk_error *err;
    struct inventory *inv;
    struct hook_def **hooks_sorted; /* by name, for bsearch of references */
    /* the first parse error libfyaml reported */
    int diag_set;
    struct pos diag_pos;
    char diag_msg[200];
    struct arena_chunk *arena; /* the YAML tree */
};

/* ---- a small YAML tree built from libfyaml's events ----
 * libfyaml's document tree costs more to build and free than the whole load may take, and
 * hides the position of collections; this tree is one arena and has a position everywhere. */

enum ytype { Y_SCALAR, Y_ALIAS, Y_MAP, Y_SEQ };

struct ynode {
    enum ytype type;
    int plain; /* a plain (unquoted) scalar */
    struct pos pos;
    const char *s; /* scalar text (NUL-terminated copy; may hold NUL bytes before len) */
    size_t len;
    struct ynode *child, *last, *next; /* a mapping's children alternate key, value */
    size_t n;                          /* items of a sequence, pairs of a mapping */
};

/* One entry of a mapping after map_collect: the value node and where its key is. */
struct ment {
    struct ynode *val;
    struct pos kpos;
    int present;
};

static inline int
y_is_scalar(const struct ynode *n)
{
    return n != NULL && (n->type == Y_SCALAR || n->type == Y_ALIAS);
}

static inline int
y_is_alias(const struct ynode *n)
{
    return n != NULL && n->type == Y_ALIAS;
}

static inline int
y_is_map(const struct ynode *n)
{
    return n != NULL && n->type == Y_MAP;
}

static inline int
y_is_seq(const struct ynode *n)
{
    return n != NULL && n->type == Y_SEQ;
}

static inline const char *
y_scalar(const struct ynode *n, size_t *len)
{
    *len = n->len;
    return n->s;
}

static inline size_t
y_count(const struct ynode *n)
{
    return n->n;
}

/* Iterators in the style of libfyaml's: *it starts NULL. y_map_next returns the key node. */
static inline struct ynode *
y_seq_next(struct ynode *seq, void **it)
{
    struct ynode *cur = *it == NULL ? seq->child : ((struct ynode *)*it)->next;
    *it = cur;
    return cur;
}

static inline struct ynode *
y_map_next(struct ynode *map, void **it)
{
    struct ynode *cur = *it == NULL ? map->child : ((struct ynode *)*it)->next->next;
    *it = cur;
    return cur;
}

static inline struct ynode *
y_pair_value(struct ynode *key)
{
    return key->next;
}

static inline struct ynode *
y_map_get(struct ynode *map, const char *key)
{
    size_t klen = strlen(key);

    for (struct ynode *k = map->child; k != NULL; k = k->next->next)
        if (k->type == Y_SCALAR && k->len == klen && memcmp(k->s, key, klen) == 0)
            return k->next;
    return NULL;
}

static inline struct pos
node_pos(const struct ynode *n, struct pos fallback)
{
    return n != NULL && n->pos.line > 0 ? n->pos : fallback;
}

/* Where to point for a value: at the value itself; at its key when the value is missing. */
static inline struct pos
val_pos(const struct ynode *v, struct pos kpos)
{
    return node_pos(v, kpos);
}

/* ---- config-yaml.c: the tree, errors, scalar readers, mappings ---- */

/* Reads the events of one document into a tree. Returns 0 with *root set (NULL for an empty
 * document), or an error. */
int build_tree(struct loader *L, struct fy_parser *fyp, struct ynode **root);

/* libfyaml's diagnostic output: keeps the first error's position and message in L. */
void diag_output(struct fy_diag *diag, void *user, const char *buf, size_t len);

/* Refuses what is not YAML text (invalid UTF-8, control bytes, tabs in indentation) before
 * libfyaml sees it. */
int check_chars(struct loader *L, const char *buf, size_t len);

void arena_free(struct loader *L);

/* buf = a + "." + b, cut to fit. */
void kjoin(char *buf, size_t n, const char *a, const char *b);

int lerr(struct loader *L, struct pos p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int enomem(struct loader *L);
const char *node_kind_name(struct ynode *n);

/* A plain empty, "~" or "null" scalar (or a missing value) counts as absent. */
int is_null(struct ynode *n);

/* An entry is present and its value is not null. */
static inline int
has(const struct ment *e)
{
    return e->present && !is_null(e->val);
}

int missing(struct loader *L, struct pos where, const char *ctx, const char *key, const char *what);

/* The scalar text of v (not NUL-terminated). Errors on a collection, an alias or a NUL byte. */
int get_scalar(struct loader *L, struct ynode *v, struct pos kpos, const char *key,
               const char *expected, const char **s, size_t *len);
int get_str(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out);
/* A non-empty string. */
int get_str_ne(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out);
int get_duration(struct loader *L, struct ynode *v, struct pos kpos, const char *key, int64_t *out);
int get_bool(struct loader *L, struct ynode *v, struct pos kpos, const char *key, int *out);
int get_int(struct loader *L, struct ynode *v, struct pos kpos, const char *key, int64_t min,
            int64_t max, int64_t *out);
/* One of a '|'-separated list of words. */
int get_enum(struct loader *L, struct ynode *v, struct pos kpos, const char *key,
             const char *choices, char **out);
int get_path(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out);
/* A file path from the config, made relative to the config file's directory. */
int get_file(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out);

/* Letters, digits, '-', '_' and '.', 1..128 bytes: hook names and field names. */
int valid_name(const char *s, size_t len);

void join_names(const char *const *names, size_t n, char *out, size_t outlen);

/* Checks that map is a mapping whose keys are all in names[0..n), and fills ents[i] for each
 * key present. ctx names the mapping in messages ("store", "secrets[2]"); note is put after
 * the key in the message of an unknown key (" for kind generated"), or "". */
int map_collect(struct loader *L, struct ynode *map, struct pos where, const char *ctx,
                const char *note, const char *const *names, size_t n, struct ment *ents);

/* Reports msg (a kind's check, hook_check) at the value of the key it starts with ("format:
 * …", "command[1]: …") when that key is among names[0..n) and present in e, else at where
 * under ctx. Returns -RK_ECONFIG. */
int lerr_blame(struct loader *L, struct pos where, const char *ctx, const char *const *names,
               size_t n, const struct ment *e, const char *msg);

/* Reads the value of setting st (a kind's own key) from e into base (an inv_secret or a
 * hook_def) or its params, by the setting's type; key names it in messages. */
int load_setting(struct loader *L, const struct inv_setting *st, struct ment *e, const char *key,
                 void *base, struct inv_pair **params, size_t *nparams);

/* ---- config-hooks.c, config-secrets.c: the sections ---- */

int load_hooks(struct loader *L, struct ynode *v, struct pos kpos);
/* apply/test/reload: a list of hook names (a single name is accepted too). */
int load_refs(struct loader *L, struct ment *e, const char *key, struct hook_def ***out,
              size_t *nout);
int load_secrets(struct loader *L, struct ynode *v, struct pos kpos);

#endif
