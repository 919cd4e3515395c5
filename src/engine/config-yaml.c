/* config-yaml.c: the loader's reading of YAML: the document as a small tree (with a position
 * on every node), errors with file:line:column, the scalar readers, mappings checked against
 * their allowed keys, and load_setting, which reads a kind's own key by its settings row.
 *
 * Positions come from the scalar tokens (libfyaml 0.7 has no public start mark for mappings and
 * sequences, so a collection is located by its key or its first entry). */
#include <ctype.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/config.h"
#include "util/parse.h"

#define ARENA_CHUNK (64 * 1024)

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
};

static void *
arena_alloc(struct loader *L, size_t n)
{
    struct arena_chunk *c = L->arena;

    n = (n + 15) & ~(size_t)15;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if ((c = malloc(sizeof(*c) + cap)) == NULL)
            return NULL;
        c->next = L->arena;
        c->used = 0;
        c->cap = cap;
        L->arena = c;
    }
    c->used += n;
    return c->data + c->used - n;
}

void
arena_free(struct loader *L)
{
    while (L->arena != NULL) {
        struct arena_chunk *c = L->arena;
        L->arena = c->next;
        free(c);
    }
}

/* buf = a + "." + b, cut to fit (cheaper than snprintf, which showed in profiles). */
void
kjoin(char *buf, size_t n, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > n - 2)
        la = n - 2;
    if (lb > n - la - 2)
        lb = n - la - 2;
    memcpy(buf, a, la);
    buf[la] = '.';
    memcpy(buf + la + 1, b, lb);
    buf[la + 1 + lb] = '\0';
}

/* ---- errors and positions ---- */

int
lerr(struct loader *L, struct pos p, const char *key, const char *fmt, ...)
{
    char msg[RK_ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (key != NULL && key[0] != '\0')
        return rk_error_set(L->err, RK_ECONFIG, "%s:%d:%d: %s: %s", L->name, p.line, p.col, key,
                            msg);
    return rk_error_set(L->err, RK_ECONFIG, "%s:%d:%d: %s", L->name, p.line, p.col, msg);
}

int
enomem(struct loader *L)
{
    return rk_error_set(L->err, RK_ENOMEM, "%s: out of memory", L->name);
}

const char *
node_kind_name(struct ynode *n)
{
    if (n == NULL)
        return "nothing";
    if (y_is_alias(n))
        return "an alias";
    if (y_is_map(n))
        return "a mapping";
    if (y_is_seq(n))
        return "a sequence";
    return "a scalar";
}

/* A plain empty, "~" or "null" scalar (or a missing value) counts as absent. */
int
is_null(struct ynode *n)
{
    size_t len = 0;
    const char *s = NULL;

    if (n == NULL)
        return 1;
    if (!y_is_scalar(n) || y_is_alias(n) || !n->plain)
        return 0;
    s = y_scalar(n, &len);
    if (s == NULL || len == 0)
        return 1;
    return (len == 1 && s[0] == '~') ||
           (len == 4 &&
            (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 || memcmp(s, "NULL", 4) == 0));
}

/* ---- scalar readers ---- */
/* The scalar text of v (not NUL-terminated). Errors on a collection, an alias or a NUL byte. */
int
get_scalar(struct loader *L, struct ynode *v, struct pos kpos, const char *key,
           const char *expected, const char **s, size_t *len)
{
    if (v == NULL || !y_is_scalar(v))
        return lerr(L, val_pos(v, kpos), key, "expected %s, got %s", expected, node_kind_name(v));
    if (y_is_alias(v))
        return lerr(L, val_pos(v, kpos), key, "aliases (*name) are not supported; expected %s",
                    expected);
    *s = y_scalar(v, len);
    if (*s == NULL) {
        *s = "";
        *len = 0;
    }
    if (memchr(*s, '\0', *len) != NULL)
        return lerr(L, val_pos(v, kpos), key, "contains a NUL byte; expected %s", expected);
    return 0;
}

int
get_str(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out)
{
    const char *s = NULL;
    size_t len = 0;
    int r;

    if ((r = get_scalar(L, v, kpos, key, "a string", &s, &len)) != 0)
        return r;
    free(*out);
    if ((*out = strndup(s, len)) == NULL)
        return enomem(L);
    return 0;
}

/* A non-empty string. */
int
get_str_ne(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out)
{
    int r;

    if (is_null(v))
        return lerr(L, val_pos(v, kpos), key, "expected a non-empty string");
    if ((r = get_str(L, v, kpos, key, out)) != 0)
        return r;
    if ((*out)[0] == '\0')
        return lerr(L, val_pos(v, kpos), key, "expected a non-empty string");
    return 0;
}

int
get_duration(struct loader *L, struct ynode *v, struct pos kpos, const char *key, int64_t *out)
{
    const char *s = NULL;
    size_t len = 0;
    struct rk_error e = {0};
    int r;

    if ((r = get_scalar(L, v, kpos, key, "a duration (e.g. 30d, 24h, 90s)", &s, &len)) != 0)
        return r;
    if (duration_parse(s, len, out, &e) != 0)
        return lerr(L, val_pos(v, kpos), key, "%s", e.msg);
    return 0;
}

int
get_bool(struct loader *L, struct ynode *v, struct pos kpos, const char *key, int *out)
{
    const char *s = NULL;
    size_t len = 0;
    int r;

    if ((r = get_scalar(L, v, kpos, key, "true or false", &s, &len)) != 0)
        return r;
    if ((len == 4 && strncasecmp(s, "true", 4) == 0))
        *out = 1;
    else if (len == 5 && strncasecmp(s, "false", 5) == 0)
        *out = 0;
    else
        return lerr(L, val_pos(v, kpos), key, "expected true or false, got '%.*s'",
                    (int)(len > 40 ? 40 : len), s);
    return 0;
}

int
get_int(struct loader *L, struct ynode *v, struct pos kpos, const char *key, int64_t min,
        int64_t max, int64_t *out)
{
    const char *s = NULL;
    size_t len = 0;
    char buf[32];
    int r;

    if ((r = get_scalar(L, v, kpos, key, "an integer", &s, &len)) != 0)
        return r;
    if (len == 0 || len >= sizeof(buf))
        goto bad;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (parse_int64(buf, min, max, out) == 0)
        return 0;
bad:
    return lerr(L, val_pos(v, kpos), key, "expected an integer from %lld to %lld, got '%.*s'",
                (long long)min, (long long)max, (int)(len > 40 ? 40 : len), s);
}

/* One of a '|'-separated list of words. */
int
get_enum(struct loader *L, struct ynode *v, struct pos kpos, const char *key, const char *choices,
         char **out)
{
    const char *s, *c = choices;
    size_t len = 0;
    int r;

    if ((r = get_scalar(L, v, kpos, key, "a string", &s, &len)) != 0)
        return r;
    while (*c != '\0') {
        size_t n = strcspn(c, "|");
        if (n == len && len > 0 && memcmp(c, s, n) == 0) {
            free(*out);
            if ((*out = strndup(s, len)) == NULL)
                return enomem(L);
            return 0;
        }
        c += n;
        if (*c == '|')
            c++;
    }
    return lerr(L, val_pos(v, kpos), key, "expected one of %s, got '%.*s'", choices,
                (int)(len > 40 ? 40 : len), s);
}

int
get_path(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out)
{
    const char *s = NULL;
    size_t len = 0;
    struct rk_error e = {0};

    if (v == NULL || !y_is_scalar(v) || y_is_alias(v))
        return lerr(L, val_pos(v, kpos), key, "expected a secret path, got %s", node_kind_name(v));
    /* Checked before get_scalar so a NUL byte gets path_validate's precise message. */
    s = y_scalar(v, &len);
    if (s == NULL)
        s = "", len = 0;
    if (path_validate(s, len, &e) != 0)
        return lerr(L, val_pos(v, kpos), key, "%s (expected segments like secret/app/name)", e.msg);
    free(*out);
    if ((*out = strndup(s, len)) == NULL)
        return enomem(L);
    return 0;
}

/* A file path from the config, made relative to the config file's directory. */
int
get_file(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out)
{
    char *raw = NULL;
    int r;

    if ((r = get_str_ne(L, v, kpos, key, &raw)) != 0) {
        free(raw);
        return r;
    }
    if (raw[0] == '/' || L->dir == NULL) {
        free(*out);
        *out = raw;
        return 0;
    }
    free(*out);
    if (asprintf(out, "%s/%s", L->dir, raw) < 0) {
        *out = NULL;
        free(raw);
        return enomem(L);
    }
    free(raw);
    return 0;
}

/* ---- mappings ---- */
void
join_names(const char *const *names, size_t n, char *out, size_t outlen)
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && off < outlen; i++) {
        int w = snprintf(out + off, outlen - off, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

/* Checks that map is a mapping whose keys are all in names[0..n), and fills ents[i] for each
 * key present. ctx names the mapping in messages ("store", "secrets[2]"). */
int
map_collect(struct loader *L, struct ynode *map, struct pos where, const char *ctx,
            const char *note, const char *const *names, size_t n, struct ment *ents)
{
    void *it = NULL;
    struct ynode *pr;

    memset(ents, 0, n * sizeof(*ents));
    if (map == NULL || !y_is_map(map))
        return lerr(L, val_pos(map, where), ctx, "expected a mapping, got %s", node_kind_name(map));
    while ((pr = y_map_next(map, &it)) != NULL) {
        struct ynode *k = pr;
        struct pos kp = node_pos(k, where);
        const char *ks;
        size_t klen, i;

        if (k == NULL || !y_is_scalar(k) || y_is_alias(k))
            return lerr(L, kp, ctx, "keys must be plain strings, got %s", node_kind_name(k));
        ks = y_scalar(k, &klen);
        if (ks == NULL)
            ks = "", klen = 0;
        for (i = 0; i < n; i++)
            if (strlen(names[i]) == klen && memcmp(names[i], ks, klen) == 0)
                break;
        if (i == n) {
            char list[400];
            join_names(names, n, list, sizeof(list));
            return lerr(L, kp, ctx, "unknown key '%.*s'%s; expected one of: %s",
                        (int)(klen > 60 ? 60 : klen), ks, note, list);
        }
        if (ents[i].present)
            return lerr(L, kp, ctx, "duplicate key '%s' (first at line %d); expected it once",
                        names[i], ents[i].kpos.line);
        ents[i].val = y_pair_value(pr);
        ents[i].kpos = kp;
        ents[i].present = 1;
    }
    return 0;
}

int
missing(struct loader *L, struct pos where, const char *ctx, const char *key, const char *what)
{
    return lerr(L, where, ctx, "missing required key '%s' (%s)", key, what);
}

int
valid_name(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

void
diag_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    struct loader *L = user;
    const char *tag = ": error: ";
    const char *p;
    size_t taglen = strlen(tag);

    (void)diag;
    if (L->diag_set || len == 0)
        return;
    for (p = buf; p + taglen <= buf + len; p++) {
        if (memcmp(p, tag, taglen) == 0) {
            /* "<input>:LINE:COL: error: message" */
            const char *q = p, *msg = p + taglen;
            long nums[2] = {0, 0};
            size_t mlen = 0;
            int k;
            for (k = 1; k >= 0; k--) {
                long mul = 1, val = 0;
                const char *d = q;
                while (d > buf && isdigit((unsigned char)d[-1]) && mul < 100000000L) {
                    d--;
                    val += (*d - '0') * mul;
                    mul *= 10;
                }
                if (d == q || d == buf || d[-1] != ':')
                    break;
                nums[k] = val;
                q = d - 1;
            }
            if (k >= 0)
                continue;
            while (msg + mlen < buf + len && msg[mlen] != '\n' && mlen < sizeof(L->diag_msg) - 1)
                mlen++;
            memcpy(L->diag_msg, msg, mlen);
            L->diag_msg[mlen] = '\0';
            L->diag_pos.line = (int)nums[0];
            L->diag_pos.col = (int)nums[1];
            L->diag_set = 1;
            return;
        }
    }
}

#define MAX_DEPTH 32

static struct pos
event_pos(struct fy_event *ev, struct pos fallback)
{
    const struct fy_mark *m = fy_event_start_mark(ev);

    if (m == NULL || m->line < 0)
        return fallback;
    return (struct pos){m->line + 1, m->column + 1};
}

static void
y_append(struct ynode *parent, struct ynode *n)
{
    if (parent->last != NULL)
        parent->last->next = n;
    else
        parent->child = n;
    parent->last = n;
    parent->n++;
}

/* Reads the events of one document into a tree. Returns 0 with *root set (NULL for an empty
 * document), or an error. */
int
build_tree(struct loader *L, struct fy_parser *fyp, struct ynode **root)
{
    struct ynode *stack[MAX_DEPTH + 1];
    size_t depth = 0, docs = 0;
    struct pos last = {1, 1};
    struct fy_event *ev;
    int r = 0;

    *root = NULL;
    while ((ev = fy_parser_parse(fyp)) != NULL) {
        struct ynode *n = NULL;
        enum fy_event_type t = ev->type;

        switch (t) {
        case FYET_DOCUMENT_START:
            if (++docs > 1)
                r = lerr(L, event_pos(ev, last), NULL,
                         "a second YAML document ('---'); expected one document");
            break;
        case FYET_SCALAR:
        case FYET_ALIAS:
        case FYET_MAPPING_START:
        case FYET_SEQUENCE_START:
            if ((n = arena_alloc(L, sizeof(*n))) == NULL) {
                r = enomem(L);
                break;
            }
            memset(n, 0, sizeof(*n));
            /* An empty value has no mark; place it just after what came before. */
            n->pos = last = event_pos(ev, last);
            if (t == FYET_SCALAR || t == FYET_ALIAS) {
                struct fy_token *tok = t == FYET_SCALAR ? ev->scalar.value : ev->alias.anchor;
                size_t len = 0;
                const char *text = tok != NULL ? fy_token_get_text(tok, &len) : "";
                char *copy;
                if (text == NULL)
                    text = "", len = 0;
                if ((copy = arena_alloc(L, len + 1)) == NULL) {
                    r = enomem(L);
                    break;
                }
                memcpy(copy, text, len);
                copy[len] = '\0';
                n->s = copy;
                n->len = len;
                n->type = t == FYET_SCALAR ? Y_SCALAR : Y_ALIAS;
                if (t == FYET_SCALAR && tok != NULL) {
                    enum fy_scalar_style st = fy_token_scalar_style(tok);
                    n->plain = st == FYSS_PLAIN;
                    /* libfyaml marks a quoted scalar after its quote; point at the quote. */
                    if ((st == FYSS_SINGLE_QUOTED || st == FYSS_DOUBLE_QUOTED) && n->pos.col > 1)
                        n->pos.col--;
                }
            } else {
                n->type = t == FYET_MAPPING_START ? Y_MAP : Y_SEQ;
            }
            if (depth == 0) {
                *root = n;
            } else {
                y_append(stack[depth - 1], n);
            }
            if (n->type == Y_MAP || n->type == Y_SEQ) {
                if (depth == MAX_DEPTH) {
                    r = lerr(L, n->pos, NULL, "nesting deeper than %d levels", MAX_DEPTH);
                    break;
                }
                stack[depth++] = n;
            }
            break;
        case FYET_MAPPING_END:
        case FYET_SEQUENCE_END:
            if (depth > 0)
                depth--;
            break;
        default: break;
        }
        fy_parser_event_free(fyp, ev);
        if (r != 0)
            return r;
    }
    if (fy_parser_get_stream_error(fyp) || L->diag_set) {
        if (L->diag_set)
            return lerr(L, L->diag_pos, NULL, "YAML syntax error: %s", L->diag_msg);
        return lerr(L, last, NULL, "YAML syntax error");
    }
    return 0;
}

/* YAML's character set: valid UTF-8 with no NUL and no C0 control but tab, LF and CR, and no
 * tab in indentation. Checked before libfyaml sees the text: 0.7.12 loops forever on some
 * invalid UTF-8 (a directive line followed by a 0xff byte) and crashes on some tab-indented
 * lines; both found by fuzz/config-fuzzer. */
int
check_chars(struct loader *L, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    struct pos at = {1, 1};
    size_t i = 0;
    int indent = 1; /* still in the line's leading whitespace */

    while (i < len) {
        unsigned c = p[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        uint32_t cp;

        if (n == 1) {
            if (c == '\n') {
                at.line++;
                at.col = 1;
                indent = 1;
                i++;
                continue;
            }
            /* YAML indents with spaces; libfyaml 0.7.12 also crashes reporting an error near
             * tab-indented lines (fuzz/config-fuzzer), so tabs there are refused up front. */
            if (c == '\t' && indent)
                return lerr(L, at, NULL,
                            "tab in indentation; indent with spaces (a tab "
                            "inside a value can be written \"\\t\")");
            if (c != ' ')
                indent = 0;
            if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
                return lerr(L, at, NULL, "control byte 0x%02x; a YAML file is UTF-8 text", c);
            i++;
            at.col++;
            continue;
        }
        if (n == 0 || i + n > len)
            goto bad;
        cp = c & (0x7f >> n);
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                goto bad;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto bad;
        i += n;
        at.col++;
    }
    return 0;
bad:
    return lerr(L, at, NULL, "invalid UTF-8 (byte 0x%02x); a YAML file is UTF-8 text", p[i]);
}

int
lerr_blame(struct loader *L, struct pos where, const char *ctx, const char *const *names, size_t n,
           const struct ment *e, const char *msg)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        char key[240];

        if (!e[i].present || strncmp(msg, names[i], len) != 0 ||
            (msg[len] != ':' && msg[len] != '['))
            continue;
        kjoin(key, sizeof(key), ctx, names[i]);
        if (msg[len] == ':')
            for (msg += len + 1; *msg == ' ';)
                msg++;
        return lerr(L, val_pos(e[i].val, e[i].kpos), key, "%s", msg);
    }
    return lerr(L, where, ctx, "%s", msg);
}

/* ---- a kind's own keys, by their settings row ---- */

/* IS_ARGV: [program, arg, ...], each a template without secrets. */
static int
load_argv(struct loader *L, const struct inv_setting *st, struct ment *e, const char *key,
          void *base)
{
    static const struct inv_setting elem = {.name = "", .type = IS_PUBLIC_TEMPLATE};
    char ***argv = (char ***)(void *)((unsigned char *)base + st->offset);
    size_t *argc = (size_t *)(void *)((unsigned char *)base + st->count_offset);
    struct rk_error e2 = {0};
    void *it = NULL;
    struct ynode *item;
    size_t n;
    int r;

    if (!y_is_seq(e->val))
        return lerr(L, val_pos(e->val, e->kpos), key,
                    "expected a list [program, arg, ...], got %s (no shell is used)",
                    node_kind_name(e->val));
    n = y_count(e->val);
    if (n == 0)
        return lerr(L, e->kpos, key, "expected a non-empty list [program, arg, ...]");
    if ((*argv = calloc(n + 1, sizeof(char *))) == NULL)
        return enomem(L);
    *argc = 0;
    while ((item = y_seq_next(e->val, &it)) != NULL) {
        const char *s = NULL;
        size_t len = 0;

        if ((r = get_scalar(L, item, e->kpos, key, "a string", &s, &len)) != 0)
            return r;
        if ((r = inv_setting_parse(&elem, s, len, &(*argv)[*argc], &e2)) != 0)
            return r == -RK_ENOMEM ? enomem(L) : lerr(L, val_pos(item, e->kpos), key, "%s", e2.msg);
        (*argc)++;
    }
    if ((*argv)[0][0] == '\0')
        return lerr(L, node_pos(e->val, e->kpos), key, "the program name is empty");
    return 0;
}

/* IS_HEADERS: a mapping of header names to one-line templates. */
static int
load_headers(struct loader *L, const struct inv_setting *st, struct ment *e, const char *key,
             void *base)
{
    static const struct inv_setting elem = {.name = "", .type = IS_TEMPLATE};
    struct inv_pair **hv = (struct inv_pair **)(void *)((unsigned char *)base + st->offset);
    size_t *nh = (size_t *)(void *)((unsigned char *)base + st->count_offset);
    struct rk_error e2 = {0};
    void *it = NULL;
    struct ynode *pr;
    size_t n;
    int r;

    if (!y_is_map(e->val))
        return lerr(L, val_pos(e->val, e->kpos), key,
                    "expected a mapping of header names to values, got %s", node_kind_name(e->val));
    n = y_count(e->val);
    if ((*hv = calloc(n ? n : 1, sizeof(**hv))) == NULL)
        return enomem(L);
    *nh = 0;
    while ((pr = y_map_next(e->val, &it)) != NULL) {
        struct inv_pair *p = &(*hv)[*nh];
        struct ynode *k = pr, *v = y_pair_value(pr);
        struct pos kp = node_pos(k, e->kpos);
        const char *s = NULL;
        size_t len = 0;

        (*nh)++; /* counted first so inventory_free frees whatever is set */
        if ((r = get_str_ne(L, k, kp, key, &p->key)) != 0)
            return r;
        for (size_t j = 0; j + 1 < *nh; j++)
            if (strcasecmp((*hv)[j].key, p->key) == 0)
                return lerr(L, kp, key, "duplicate header '%s'", p->key);
        for (const char *c = p->key; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
                return lerr(L, kp, key, "bad header name '%s'", p->key);
        if ((r = get_scalar(L, v, kp, key, "a string", &s, &len)) != 0)
            return r;
        if (memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL)
            return lerr(L, val_pos(v, kp), key, "header values must be one line");
        if ((r = inv_setting_parse(&elem, s, len, &p->value, &e2)) != 0)
            return r == -RK_ENOMEM ? enomem(L) : lerr(L, val_pos(v, kp), key, "%s", e2.msg);
    }
    return 0;
}

/* IS_LIST given as a sequence: its names joined with ','. */
static int
join_list(struct loader *L, struct ment *e, const char *key, char **out)
{
    void *it = NULL;
    struct ynode *item;
    size_t off = 0, cap = 64;
    char *acc;
    int r;

    if ((acc = malloc(cap)) == NULL)
        return enomem(L);
    acc[0] = '\0';
    while ((item = y_seq_next(e->val, &it)) != NULL) {
        const char *s = NULL;
        size_t len = 0;
        if ((r = get_scalar(L, item, e->kpos, key, "a string", &s, &len)) != 0)
            goto fail;
        if (len == 0 || memchr(s, ',', len) != NULL) {
            r = lerr(L, val_pos(item, e->kpos), key, "expected a non-empty name without ','");
            goto fail;
        }
        if (off + len + 2 > cap) {
            char *na;
            cap = (off + len + 2) * 2;
            if ((na = realloc(acc, cap)) == NULL) {
                r = enomem(L);
                goto fail;
            }
            acc = na;
        }
        if (off > 0)
            acc[off++] = ',';
        memcpy(acc + off, s, len);
        off += len;
        acc[off] = '\0';
    }
    *out = acc;
    return 0;
fail:
    free(acc);
    return r;
}

int
load_setting(struct loader *L, const struct inv_setting *st, struct ment *e, const char *key,
             void *base, struct inv_pair **params, size_t *nparams)
{
    struct rk_error e2 = {0};
    const char *s = NULL;
    char *text = NULL, *joined = NULL;
    size_t len = 0;
    int r;

    if (st->type == IS_ARGV)
        return load_argv(L, st, e, key, base);
    if (st->type == IS_HEADERS)
        return load_headers(L, st, e, key, base);
    if (st->type == IS_LIST && y_is_seq(e->val)) {
        if ((r = join_list(L, e, key, &joined)) != 0)
            return r;
        s = joined;
        len = strlen(joined);
    } else if ((r = get_scalar(L, e->val, e->kpos, key, inv_setting_expected(st), &s, &len)) != 0) {
        return r;
    }
    r = inv_setting_parse(st, s, len, &text, &e2);
    free(joined);
    if (r != 0)
        return r == -RK_ENOMEM ? enomem(L) : lerr(L, val_pos(e->val, e->kpos), key, "%s", e2.msg);
    if (st->type == IS_FILE && text[0] != '/' && L->dir != NULL) {
        char *abs = NULL;
        if (asprintf(&abs, "%s/%s", L->dir, text) < 0) {
            free(text);
            return enomem(L);
        }
        free(text);
        text = abs;
    }
    if ((r = inv_setting_store(st, base, params, nparams, text, &e2)) != 0)
        return r == -RK_ENOMEM ? enomem(L) : lerr(L, val_pos(e->val, e->kpos), key, "%s", e2.msg);
    return 0;
}
