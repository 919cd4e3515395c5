/* inventory.c: loads the YAML configuration with libfyaml into struct inventory.
 *
 * The document is walked once; every mapping is checked against a table of allowed keys so a
 * typo is an error that names file:line:column, the key and what was expected. Positions come
 * from the scalar tokens (libfyaml 0.7 has no public start mark for mappings and sequences, so
 * a collection is located by its key or its first entry). */
#include "inventory.h"

#include "../rotators/rotator.h"

#include <ctype.h>
#include <libfyaml.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/fsutil.h"
#include "../util/parse.h"

#define INV_MAX_FILE (16u * 1024 * 1024)
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_CHECK_INTERVAL 60
#define DEFAULT_REQUEST_TIMEOUT 30
#define MAX_REQUEST_TIMEOUT 3600
/* server.max_lease_ttl: at most what Vault's Go durations hold (~292 years), as
 * TOKEN_DURATION_MAX in api/token.h, so token arithmetic on it never overflows. */
#define MAX_LEASE_TTL_LIMIT (INT64_MAX / 1000000000)

struct pos {
    int line, col; /* 1-based */
};

struct loader {
    const char *name;
    char *dir; /* the config file's directory, or NULL (relative to the working directory) */
    struct rk_error *err;
    struct inventory *inv;
    struct hook_def **hooks_sorted; /* by name, for bsearch of references */
    char *last_regex;               /* the last pattern that compiled, to skip recompiling */
    /* the first parse error libfyaml reported */
    int diag_set;
    struct pos diag_pos;
    char diag_msg[200];
    struct arena_chunk *arena; /* the YAML tree */
};

/* One entry of a mapping after map_collect: the value node and where its key is. */
struct ment {
    struct ynode *val;
    struct pos kpos;
    int present;
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

static void
arena_free(struct loader *L)
{
    while (L->arena != NULL) {
        struct arena_chunk *c = L->arena;
        L->arena = c->next;
        free(c);
    }
}

static int
y_is_scalar(const struct ynode *n)
{
    return n != NULL && (n->type == Y_SCALAR || n->type == Y_ALIAS);
}

static int
y_is_alias(const struct ynode *n)
{
    return n != NULL && n->type == Y_ALIAS;
}

static int
y_is_map(const struct ynode *n)
{
    return n != NULL && n->type == Y_MAP;
}

static int
y_is_seq(const struct ynode *n)
{
    return n != NULL && n->type == Y_SEQ;
}

static const char *
y_scalar(const struct ynode *n, size_t *len)
{
    *len = n->len;
    return n->s;
}

static size_t
y_count(const struct ynode *n)
{
    return n->n;
}

/* Iterators in the style of libfyaml's: *it starts NULL. y_map_next returns the key node. */
static struct ynode *
y_seq_next(struct ynode *seq, void **it)
{
    struct ynode *cur = *it == NULL ? seq->child : ((struct ynode *)*it)->next;
    *it = cur;
    return cur;
}

static struct ynode *
y_map_next(struct ynode *map, void **it)
{
    struct ynode *cur = *it == NULL ? map->child : ((struct ynode *)*it)->next->next;
    *it = cur;
    return cur;
}

static struct ynode *
y_pair_value(struct ynode *key)
{
    return key->next;
}

static struct ynode *
y_map_get(struct ynode *map, const char *key)
{
    size_t klen = strlen(key);

    for (struct ynode *k = map->child; k != NULL; k = k->next->next)
        if (k->type == Y_SCALAR && k->len == klen && memcmp(k->s, key, klen) == 0)
            return k->next;
    return NULL;
}

/* buf = a + "." + b, cut to fit (cheaper than snprintf, which showed in profiles). */
static void
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

static int lerr(struct loader *L, struct pos p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
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

static int
enomem(struct loader *L)
{
    return rk_error_set(L->err, RK_ENOMEM, "%s: out of memory", L->name);
}

static struct pos
node_pos(const struct ynode *n, struct pos fallback)
{
    return n != NULL && n->pos.line > 0 ? n->pos : fallback;
}

/* Where to point for a value: at the value itself; at its key when the value is missing. */
static struct pos
val_pos(const struct ynode *v, struct pos kpos)
{
    return node_pos(v, kpos);
}

static const char *
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
static int
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
static int
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

static int
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
static int
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

static int
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

static int
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

static int
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
static int
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

static int
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
static int
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

/* glibc's regcomp can take gigabytes for stacked repetitions such as "x++++…" (undefined in
 * POSIX ERE anyway; found by fuzz/config-fuzzer): refuse them, and over-long patterns. Returns
 * the 1-based position of the problem, or 0. */
static size_t
regex_unsafe(const char *re)
{
    size_t n = strlen(re);
    int after_quant = 0;

    if (n > 512)
        return 513;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\') {
            i++;
            after_quant = 0;
        } else if (c == '[') {
            size_t j = i + 1;
            if (j < n && re[j] == '^')
                j++;
            if (j < n && re[j] == ']')
                j++;
            while (j < n && re[j] != ']')
                j++;
            i = j;
            after_quant = 0;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (after_quant)
                return i + 1;
            if (c == '{')
                while (i < n && re[i] != '}')
                    i++;
            after_quant = 1;
        } else {
            after_quant = 0;
        }
    }
    return 0;
}

/* A POSIX extended regular expression that must compile. */
static int
get_regex(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out)
{
    regex_t re;
    size_t bad;
    int rc;
    int r;

    if ((r = get_str_ne(L, v, kpos, key, out)) != 0)
        return r;
    if (L->last_regex != NULL && strcmp(L->last_regex, *out) == 0)
        return 0;
    if ((bad = regex_unsafe(*out)) != 0)
        return lerr(L, val_pos(v, kpos), key,
                    bad > 512 ? "pattern longer than 512 bytes"
                              : "repeated repetition operator at position %zu (e.g. 'a++'); "
                                "expected a POSIX ERE",
                    bad);
    rc = regcomp(&re, *out, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &re, why, sizeof(why));
        return lerr(L, val_pos(v, kpos), key, "bad regular expression: %s (expected POSIX ERE)",
                    why);
    }
    regfree(&re);
    free(L->last_regex);
    L->last_regex = strdup(*out);
    return 0;
}

/* Placeholders in templates: {{new}}, {{old}}, {{new.FIELD}}, {{old.FIELD}}, {{path}},
 * {{version}}. With allow_secret 0, {{new…}} and {{old…}} are refused: a value in argv or a
 * URL would show in the process list or in logs. */
static int
check_template(struct loader *L, struct ynode *v, struct pos kpos, const char *key, const char *t,
               int allow_secret)
{
    const char *p = t;

    while ((p = strstr(p, "{{")) != NULL) {
        const char *name = p + 2, *end = strstr(name, "}}");
        size_t n;
        int secret = 0, ok = 0;

        if (end == NULL)
            return lerr(L, val_pos(v, kpos), key, "unterminated '{{' in template");
        n = (size_t)(end - name);
        if ((n == 4 && memcmp(name, "path", 4) == 0) ||
            (n == 7 && memcmp(name, "version", 7) == 0)) {
            ok = 1;
        } else if (n >= 3 && (memcmp(name, "new", 3) == 0 || memcmp(name, "old", 3) == 0)) {
            secret = 1;
            if (n == 3) {
                ok = 1;
            } else if (name[3] == '.' && n > 4) {
                ok = 1;
                for (size_t i = 4; i < n; i++)
                    if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
                        ok = 0;
            }
        }
        if (!ok)
            return lerr(L, val_pos(v, kpos), key,
                        "unknown placeholder '{{%.*s}}'; expected {{new}}, {{old}}, "
                        "{{new.FIELD}}, {{old.FIELD}}, {{path}} or {{version}}",
                        (int)(n > 40 ? 40 : n), name);
        if (secret && !allow_secret)
            return lerr(L, val_pos(v, kpos), key,
                        "'{{%.*s}}' would put a secret where it can be seen (a command line or a "
                        "URL); pass it on stdin (stdin: new) or in a header or body instead",
                        (int)(n > 40 ? 40 : n), name);
        p = end + 2;
    }
    return 0;
}

/* ---- mappings ---- */

static void
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
static int
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
            return lerr(L, kp, ctx, "unknown key '%.*s'%s%s; expected one of: %s",
                        (int)(klen > 60 ? 60 : klen), ks, note[0] ? " for kind " : "", note, list);
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

/* An entry is present and its value is not null. */
static int
has(const struct ment *e)
{
    return e->present && !is_null(e->val);
}

static int
missing(struct loader *L, struct pos where, const char *ctx, const char *key, const char *what)
{
    return lerr(L, where, ctx, "missing required key '%s' (%s)", key, what);
}

/* ---- top level sections ---- */

static int
load_store(struct loader *L, struct ynode *v, struct pos kpos)
{
    static const char *const keys[] = {"backend", "path", "key_file", "endpoints"};
    enum { K_BACKEND, K_PATH, K_KEYFILE, K_ENDPOINTS, K_N };
    struct ment e[K_N];
    struct inventory *inv = L->inv;
    int r;

    if (is_null(v))
        return 0;
    if ((r = map_collect(L, v, kpos, "store", "", keys, K_N, e)) != 0)
        return r;
    if (has(&e[K_BACKEND]) && (r = get_enum(L, e[K_BACKEND].val, e[K_BACKEND].kpos, "store.backend",
                                            "sqlite|log|etcd", &inv->store_backend)) != 0)
        return r;
    if (has(&e[K_PATH]) &&
        (r = get_file(L, e[K_PATH].val, e[K_PATH].kpos, "store.path", &inv->store_path)) != 0)
        return r;
    if (has(&e[K_KEYFILE]) && (r = get_file(L, e[K_KEYFILE].val, e[K_KEYFILE].kpos,
                                            "store.key_file", &inv->key_file)) != 0)
        return r;
    if (has(&e[K_ENDPOINTS])) {
        struct ynode *ev = e[K_ENDPOINTS].val;
        if (y_is_seq(ev)) {
            void *it = NULL;
            struct ynode *item;
            size_t off = 0, cap = 0;
            char *acc = NULL;
            while ((item = y_seq_next(ev, &it)) != NULL) {
                const char *s = NULL;
                size_t len = 0;
                char *na;
                if ((r = get_scalar(L, item, e[K_ENDPOINTS].kpos, "store.endpoints",
                                    "a URL such as http://127.0.0.1:2379", &s, &len)) != 0) {
                    free(acc);
                    return r;
                }
                if (off + len + 2 > cap) {
                    cap = (off + len + 2) * 2;
                    if ((na = realloc(acc, cap)) == NULL) {
                        free(acc);
                        return enomem(L);
                    }
                    acc = na;
                }
                if (off > 0)
                    acc[off++] = ',';
                memcpy(acc + off, s, len);
                off += len;
                acc[off] = '\0';
            }
            free(inv->store_endpoints);
            inv->store_endpoints = acc;
        } else if ((r = get_str_ne(L, ev, e[K_ENDPOINTS].kpos, "store.endpoints",
                                   &inv->store_endpoints)) != 0) {
            return r;
        }
    }
    if (strcmp(inv->store_backend, "etcd") == 0 && inv->store_endpoints == NULL)
        return lerr(L, kpos, "store.endpoints",
                    "backend etcd needs endpoints (e.g. [http://127.0.0.1:2379])");
    return 0;
}

static int
load_server(struct loader *L, struct ynode *v, struct pos kpos)
{
    static const char *const keys[] = {"listen",       "tls_cert",       "tls_key",
                                       "tls_disable",  "check_interval", "request_timeout",
                                       "max_lease_ttl"};
    enum { K_LISTEN, K_CERT, K_KEY, K_DISABLE, K_CHECK, K_REQTIMEOUT, K_MAXLEASE, K_N };
    struct ment e[K_N];
    struct inventory *inv = L->inv;
    int r;

    if (is_null(v))
        return 0;
    if ((r = map_collect(L, v, kpos, "server", "", keys, K_N, e)) != 0)
        return r;
    if (has(&e[K_LISTEN]) &&
        (r = get_str_ne(L, e[K_LISTEN].val, e[K_LISTEN].kpos, "server.listen", &inv->listen)) != 0)
        return r;
    if (has(&e[K_CERT]) &&
        (r = get_file(L, e[K_CERT].val, e[K_CERT].kpos, "server.tls_cert", &inv->tls_cert)) != 0)
        return r;
    if (has(&e[K_KEY]) &&
        (r = get_file(L, e[K_KEY].val, e[K_KEY].kpos, "server.tls_key", &inv->tls_key)) != 0)
        return r;
    if (has(&e[K_DISABLE]) && (r = get_bool(L, e[K_DISABLE].val, e[K_DISABLE].kpos,
                                            "server.tls_disable", &inv->tls_disable)) != 0)
        return r;
    if (has(&e[K_CHECK])) {
        if ((r = get_duration(L, e[K_CHECK].val, e[K_CHECK].kpos, "server.check_interval",
                              &inv->check_interval)) != 0)
            return r;
        if (inv->check_interval <= 0)
            return lerr(L, val_pos(e[K_CHECK].val, e[K_CHECK].kpos), "server.check_interval",
                        "expected a duration greater than 0");
    }
    if (has(&e[K_REQTIMEOUT])) {
        int64_t secs;
        if ((r = get_duration(L, e[K_REQTIMEOUT].val, e[K_REQTIMEOUT].kpos,
                              "server.request_timeout", &secs)) != 0)
            return r;
        /* Below 1s no real client gets a request through; above 1h the slow-loris protection
         * it exists for is gone (a connection slot held for hours). */
        if (secs < 1 || secs > MAX_REQUEST_TIMEOUT)
            return lerr(L, val_pos(e[K_REQTIMEOUT].val, e[K_REQTIMEOUT].kpos),
                        "server.request_timeout", "expected a duration from 1s to 1h");
        inv->request_timeout = secs;
    }
    if (has(&e[K_MAXLEASE])) {
        int64_t secs;
        if ((r = get_duration(L, e[K_MAXLEASE].val, e[K_MAXLEASE].kpos, "server.max_lease_ttl",
                              &secs)) != 0)
            return r;
        if (secs < 1 || secs > MAX_LEASE_TTL_LIMIT)
            return lerr(L, val_pos(e[K_MAXLEASE].val, e[K_MAXLEASE].kpos), "server.max_lease_ttl",
                        "expected a duration from 1s to 106751d (e.g. 768h)");
        inv->max_lease_ttl = secs;
    }
    if ((inv->tls_cert == NULL) != (inv->tls_key == NULL))
        return lerr(L, kpos, inv->tls_cert ? "server.tls_key" : "server.tls_cert",
                    "tls_cert and tls_key go together; only one is set");
    return 0;
}

static int
load_audit(struct loader *L, struct ynode *v, struct pos kpos)
{
    static const char *const keys[] = {"path"};
    struct ment e[1];
    int r;

    if (is_null(v))
        return 0;
    if ((r = map_collect(L, v, kpos, "audit", "", keys, 1, e)) != 0)
        return r;
    if (has(&e[0]) && (r = get_file(L, e[0].val, e[0].kpos, "audit.path", &L->inv->audit_path)))
        return r;
    return 0;
}

/* ---- hooks ---- */

static int
valid_name(const char *s, size_t len)
{
    if (len == 0 || len > 128)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return 0;
    return 1;
}

static int
load_hook_exec(struct loader *L, struct hook_def *h, struct ment *cmd, struct ment *workdir,
               struct ment *in, const char *ctx, struct pos where)
{
    char key[200];
    void *it = NULL;
    struct ynode *item;
    size_t n, i = 0;
    int r;

    kjoin(key, sizeof(key), ctx, "command");
    if (!has(cmd))
        return missing(L, where, ctx, "command", "a list: [program, arg, ...]");
    if (!y_is_seq(cmd->val))
        return lerr(L, val_pos(cmd->val, cmd->kpos), key,
                    "expected a list [program, arg, ...], got %s (no shell is used)",
                    node_kind_name(cmd->val));
    n = y_count(cmd->val);
    if (n == 0)
        return lerr(L, cmd->kpos, key, "expected a non-empty list [program, arg, ...]");
    if ((h->argv = calloc(n + 1, sizeof(char *))) == NULL)
        return enomem(L);
    while ((item = y_seq_next(cmd->val, &it)) != NULL) {
        if ((r = get_str(L, item, cmd->kpos, key, &h->argv[i])) != 0)
            return r;
        h->argc = ++i;
        if ((r = check_template(L, item, cmd->kpos, key, h->argv[i - 1], 0)) != 0)
            return r;
    }
    if (h->argv[0][0] == '\0')
        return lerr(L, node_pos(cmd->val, cmd->kpos), key, "the program name is empty");
    if (has(workdir)) {
        kjoin(key, sizeof(key), ctx, "workdir");
        if ((r = get_file(L, workdir->val, workdir->kpos, key, &h->workdir)) != 0)
            return r;
    }
    if (has(in)) {
        char *mode = NULL;
        kjoin(key, sizeof(key), ctx, "stdin");
        if ((r = get_enum(L, in->val, in->kpos, key, "none|new|old", &mode)) != 0)
            return r;
        h->stdin_mode = strcmp(mode, "new") == 0   ? HOOK_STDIN_NEW
                        : strcmp(mode, "old") == 0 ? HOOK_STDIN_OLD
                                                   : HOOK_STDIN_NONE;
        free(mode);
    }
    return 0;
}

static int
load_hook_http(struct loader *L, struct hook_def *h, struct ment *e_method, struct ment *e_url,
               struct ment *e_headers, struct ment *e_body, struct ment *e_status,
               struct ment *e_verify, const char *ctx, struct pos where)
{
    char key[200];
    int r;

    kjoin(key, sizeof(key), ctx, "url");
    if (!has(e_url))
        return missing(L, where, ctx, "url", "http:// or https:// URL");
    if ((r = get_str_ne(L, e_url->val, e_url->kpos, key, &h->url)) != 0)
        return r;
    if (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0)
        return lerr(L, val_pos(e_url->val, e_url->kpos), key,
                    "expected an http:// or https:// URL");
    if ((r = check_template(L, e_url->val, e_url->kpos, key, h->url, 0)) != 0)
        return r;
    if (has(e_method)) {
        kjoin(key, sizeof(key), ctx, "method");
        if ((r = get_enum(L, e_method->val, e_method->kpos, key, "GET|HEAD|POST|PUT|PATCH|DELETE",
                          &h->method)) != 0)
            return r;
    }
    if (has(e_headers)) {
        void *it = NULL;
        struct ynode *pr;
        size_t n;

        kjoin(key, sizeof(key), ctx, "headers");
        if (!y_is_map(e_headers->val))
            return lerr(L, val_pos(e_headers->val, e_headers->kpos), key,
                        "expected a mapping of header names to values, got %s",
                        node_kind_name(e_headers->val));
        n = y_count(e_headers->val);
        if ((h->headers = calloc(n ? n : 1, sizeof(*h->headers))) == NULL)
            return enomem(L);
        while ((pr = y_map_next(e_headers->val, &it)) != NULL) {
            struct inv_pair *p = &h->headers[h->nheaders];
            struct ynode *k = pr, *v = y_pair_value(pr);
            struct pos kp = node_pos(k, e_headers->kpos);
            h->nheaders++; /* counted first so hook_clear frees whatever is set */
            if ((r = get_str_ne(L, k, kp, key, &p->key)) != 0)
                return r;
            for (size_t j = 0; j + 1 < h->nheaders; j++)
                if (strcasecmp(h->headers[j].key, p->key) == 0)
                    return lerr(L, kp, key, "duplicate header '%s'", p->key);
            for (const char *c = p->key; *c; c++)
                if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_')
                    return lerr(L, kp, key, "bad header name '%s'", p->key);
            if ((r = get_str(L, v, kp, key, &p->value)) != 0)
                return r;
            if (strpbrk(p->value, "\r\n") != NULL)
                return lerr(L, val_pos(v, kp), key, "header values must be one line");
            if ((r = check_template(L, v, kp, key, p->value, 1)) != 0)
                return r;
        }
    }
    if (has(e_body)) {
        kjoin(key, sizeof(key), ctx, "body");
        if ((r = get_str(L, e_body->val, e_body->kpos, key, &h->body)) != 0 ||
            (r = check_template(L, e_body->val, e_body->kpos, key, h->body, 1)) != 0)
            return r;
    }
    if (has(e_status)) {
        int64_t st;
        kjoin(key, sizeof(key), ctx, "expect_status");
        if ((r = get_int(L, e_status->val, e_status->kpos, key, 100, 599, &st)) != 0)
            return r;
        h->expect_status = (int)st;
    }
    if (has(e_verify)) {
        kjoin(key, sizeof(key), ctx, "tls_verify");
        if ((r = get_bool(L, e_verify->val, e_verify->kpos, key, &h->tls_verify)) != 0)
            return r;
    }
    return 0;
}

static int
load_hook_file(struct loader *L, struct hook_def *h, struct ment *e_path, struct ment *e_tmpl,
               struct ment *e_mode, const char *ctx, struct pos where)
{
    char key[200];
    int r;

    if (!has(e_path))
        return missing(L, where, ctx, "path", "the file to render");
    kjoin(key, sizeof(key), ctx, "path");
    if ((r = get_file(L, e_path->val, e_path->kpos, key, &h->path)) != 0)
        return r;
    if (!e_tmpl->present)
        return missing(L, where, ctx, "template", "the file's content, e.g. \"KEY={{new}}\\n\"");
    kjoin(key, sizeof(key), ctx, "template");
    if ((r = get_str(L, e_tmpl->val, e_tmpl->kpos, key, &h->template)) != 0 ||
        (r = check_template(L, e_tmpl->val, e_tmpl->kpos, key, h->template, 1)) != 0)
        return r;
    if (has(e_mode)) {
        const char *s = NULL;
        size_t len = 0;
        unsigned m = 0;

        kjoin(key, sizeof(key), ctx, "mode");
        if ((r = get_scalar(L, e_mode->val, e_mode->kpos, key, "an octal mode such as \"0600\"", &s,
                            &len)) != 0)
            return r;
        if (len == 0 || len > 4)
            goto badmode;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '7')
                goto badmode;
            m = m * 8 + (unsigned)(s[i] - '0');
        }
        if (m > 0777)
            goto badmode;
        h->mode = (mode_t)m;
        return 0;
    badmode:
        return lerr(L, val_pos(e_mode->val, e_mode->kpos), key,
                    "expected an octal mode from 0000 to 0777 such as \"0600\", got '%.*s'",
                    (int)(len > 20 ? 20 : len), s);
    }
    return 0;
}

static int
load_hook(struct loader *L, struct hook_def *h, struct ynode *k, struct ynode *v, struct pos where)
{
    static const char *const keys[] = {"type",       "timeout", "wait", "command",  "workdir",
                                       "stdin",      "method",  "url",  "headers",  "expect_status",
                                       "tls_verify", "body",    "path", "template", "mode"};
    enum {
        K_TYPE,
        K_TIMEOUT,
        K_WAIT,
        K_COMMAND,
        K_WORKDIR,
        K_STDIN,
        K_METHOD,
        K_URL,
        K_HEADERS,
        K_STATUS,
        K_VERIFY,
        K_BODY,
        K_PATH,
        K_TEMPLATE,
        K_MODE,
        K_N
    };
    /* Which keys each type takes, by index range into keys[] plus the common ones. */
    static const char *const exec_keys[] = {"type",    "timeout", "wait",
                                            "command", "workdir", "stdin"};
    static const char *const http_keys[] = {"type",          "timeout",    "wait",
                                            "method",        "url",        "headers",
                                            "expect_status", "tls_verify", "body"};
    static const char *const file_keys[] = {"type", "timeout", "path", "template", "mode"};
    const char *const *allowed;
    size_t nallowed;
    struct ment e[K_N];
    char ctx[200], key[240];
    const char *name, *ts;
    size_t nlen, tlen;
    int r;

    name = y_scalar(k, &nlen);
    if (name == NULL || !valid_name(name, nlen))
        return lerr(L, where, "hooks",
                    "bad hook name '%.*s'; expected letters, digits, '-', '_' or '.'",
                    (int)(nlen > 60 ? 60 : nlen), name ? name : "");
    if ((h->name = strndup(name, nlen)) == NULL)
        return enomem(L);
    h->line = where.line;
    h->col = where.col;
    h->timeout_ms = DEFAULT_TIMEOUT_MS;
    h->expect_status = 200;
    h->tls_verify = 1;
    h->mode = 0600;
    snprintf(ctx, sizeof(ctx), "hooks.%s", h->name);
    if ((r = map_collect(L, v, where, ctx, "", keys, K_N, e)) != 0)
        return r;
    if (!has(&e[K_TYPE]))
        return missing(L, where, ctx, "type", "exec, http or file");
    kjoin(key, sizeof(key), ctx, "type");
    if ((r = get_scalar(L, e[K_TYPE].val, e[K_TYPE].kpos, key, "exec, http or file", &ts, &tlen)) !=
        0)
        return r;
    if (tlen == 4 && memcmp(ts, "exec", 4) == 0) {
        h->type = HOOK_EXEC;
        allowed = exec_keys;
        nallowed = sizeof(exec_keys) / sizeof(exec_keys[0]);
    } else if (tlen == 4 && memcmp(ts, "http", 4) == 0) {
        h->type = HOOK_HTTP;
        allowed = http_keys;
        nallowed = sizeof(http_keys) / sizeof(http_keys[0]);
    } else if (tlen == 4 && memcmp(ts, "file", 4) == 0) {
        h->type = HOOK_FILE;
        allowed = file_keys;
        nallowed = sizeof(file_keys) / sizeof(file_keys[0]);
    } else {
        return lerr(L, val_pos(e[K_TYPE].val, e[K_TYPE].kpos), key,
                    "unknown hook type '%.*s'; expected exec, http or file",
                    (int)(tlen > 40 ? 40 : tlen), ts);
    }
    for (size_t i = 0; i < K_N; i++) {
        size_t j;
        if (!e[i].present)
            continue;
        for (j = 0; j < nallowed; j++)
            if (strcmp(keys[i], allowed[j]) == 0)
                break;
        if (j == nallowed) {
            char list[300];
            join_names(allowed, nallowed, list, sizeof(list));
            return lerr(L, e[i].kpos, ctx,
                        "unknown key '%s' for a hook of type %.*s; expected one of: %s", keys[i],
                        (int)tlen, ts, list);
        }
    }
    if (has(&e[K_TIMEOUT])) {
        int64_t secs;
        kjoin(key, sizeof(key), ctx, "timeout");
        if ((r = get_duration(L, e[K_TIMEOUT].val, e[K_TIMEOUT].kpos, key, &secs)) != 0)
            return r;
        if (secs <= 0 || secs > 86400)
            return lerr(L, val_pos(e[K_TIMEOUT].val, e[K_TIMEOUT].kpos), key,
                        "expected a duration from 1s to 24h");
        h->timeout_ms = secs * 1000;
    }
    if (has(&e[K_WAIT])) {
        static const char *const wkeys[] = {"interval", "timeout"};
        struct ment w[2];
        int64_t iv = 0, to = 0;

        kjoin(key, sizeof(key), ctx, "wait");
        if ((r = map_collect(L, e[K_WAIT].val, e[K_WAIT].kpos, key, "", wkeys, 2, w)) != 0)
            return r;
        if (!has(&w[0]) || !has(&w[1]))
            return lerr(L, e[K_WAIT].kpos, key,
                        "missing required key '%s' (wait takes both interval and timeout)",
                        has(&w[0]) ? "timeout" : "interval");
        kjoin(key, sizeof(key), ctx, "wait.interval");
        if ((r = get_duration(L, w[0].val, w[0].kpos, key, &iv)) != 0)
            return r;
        kjoin(key, sizeof(key), ctx, "wait.timeout");
        if ((r = get_duration(L, w[1].val, w[1].kpos, key, &to)) != 0)
            return r;
        if (iv <= 0 || to < iv)
            return lerr(L, e[K_WAIT].kpos, key,
                        "expected 0 < interval <= timeout (interval %llds, timeout %llds)",
                        (long long)iv, (long long)to);
        /* Bounded like a hook's timeout; also keeps the milliseconds below from overflowing. */
        if (to > 86400)
            return lerr(L, val_pos(w[1].val, w[1].kpos), key, "expected a duration up to 24h");
        h->wait_interval_ms = iv * 1000;
        h->wait_timeout_ms = to * 1000;
    }
    switch (h->type) {
    case HOOK_EXEC:
        return load_hook_exec(L, h, &e[K_COMMAND], &e[K_WORKDIR], &e[K_STDIN], ctx, where);
    case HOOK_HTTP:
        if ((r = load_hook_http(L, h, &e[K_METHOD], &e[K_URL], &e[K_HEADERS], &e[K_BODY],
                                &e[K_STATUS], &e[K_VERIFY], ctx, where)) != 0)
            return r;
        if (h->method == NULL && (h->method = strdup("GET")) == NULL)
            return enomem(L);
        return 0;
    case HOOK_FILE: return load_hook_file(L, h, &e[K_PATH], &e[K_TEMPLATE], &e[K_MODE], ctx, where);
    }
    return 0;
}

static int
cmp_hook_ptr(const void *a, const void *b)
{
    const struct hook_def *x = *(const struct hook_def *const *)a;
    const struct hook_def *y = *(const struct hook_def *const *)b;
    return strcmp(x->name, y->name);
}

static int
load_hooks(struct loader *L, struct ynode *v, struct pos kpos)
{
    struct inventory *inv = L->inv;
    void *it = NULL;
    struct ynode *pr;
    size_t n;
    int r;

    if (is_null(v))
        return 0;
    if (!y_is_map(v))
        return lerr(L, val_pos(v, kpos), "hooks", "expected a mapping of hook names, got %s",
                    node_kind_name(v));
    n = y_count(v);
    if (n == 0)
        return 0;
    if ((inv->hooks = calloc(n, sizeof(*inv->hooks))) == NULL ||
        (L->hooks_sorted = calloc(n, sizeof(*L->hooks_sorted))) == NULL)
        return enomem(L);
    while ((pr = y_map_next(v, &it)) != NULL) {
        struct ynode *k = pr;
        struct pos where = node_pos(k, kpos);
        struct hook_def *h = &inv->hooks[inv->nhooks];

        if (k == NULL || !y_is_scalar(k) || y_is_alias(k))
            return lerr(L, where, "hooks", "hook names must be plain strings");
        inv->nhooks++;
        if ((r = load_hook(L, h, k, y_pair_value(pr), where)) != 0)
            return r;
        L->hooks_sorted[inv->nhooks - 1] = h;
    }
    qsort(L->hooks_sorted, inv->nhooks, sizeof(*L->hooks_sorted), cmp_hook_ptr);
    for (size_t i = 1; i < inv->nhooks; i++) {
        const struct hook_def *a = L->hooks_sorted[i - 1], *b = L->hooks_sorted[i];
        if (strcmp(a->name, b->name) == 0) {
            if (b->line < a->line) {
                const struct hook_def *t = a;
                a = b;
                b = t;
            }
            return lerr(L, (struct pos){b->line, b->col}, "hooks",
                        "duplicate hook name '%s' (first at line %d); expected each name once",
                        b->name, a->line);
        }
    }
    return 0;
}

static struct hook_def *
find_hook(struct loader *L, const char *name, size_t len)
{
    size_t lo = 0, hi = L->inv->nhooks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *hn = L->hooks_sorted[mid]->name;
        int c = strncmp(hn, name, len);
        if (c == 0 && hn[len] != '\0')
            c = 1;
        if (c == 0)
            return L->hooks_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* apply/test/reload: a list of hook names (a single name is accepted too). */
static int
load_refs(struct loader *L, struct ment *e, const char *key, struct hook_def ***out, size_t *nout)
{
    struct ynode *v = e->val;
    size_t n;
    int r;

    if (!has(e))
        return 0;
    if (y_is_map(v))
        return lerr(L, e->kpos, key, "expected a list of hook names, got a mapping");
    n = y_is_seq(v) ? y_count(v) : 1;
    if (n == 0)
        return 0;
    if ((*out = calloc(n, sizeof(**out))) == NULL)
        return enomem(L);
    for (struct ynode *item = y_is_seq(v) ? v->child : v; item != NULL;
         item = y_is_seq(v) ? item->next : NULL) {
        const char *s = NULL;
        size_t len = 0;
        struct hook_def *h;

        if ((r = get_scalar(L, item, e->kpos, key, "a hook name", &s, &len)) != 0)
            return r;
        if ((h = find_hook(L, s, len)) == NULL)
            return lerr(L, val_pos(item, e->kpos), key,
                        "unknown hook '%.*s'; expected a name defined under hooks:",
                        (int)(len > 60 ? 60 : len), s);
        for (size_t j = 0; j < *nout; j++)
            if ((*out)[j] == h)
                return lerr(L, val_pos(item, e->kpos), key, "hook '%s' is listed twice", h->name);
        (*out)[(*nout)++] = h;
        h->used++;
    }
    return 0;
}

/* ---- secrets ---- */

enum ptype { P_STR, P_DURATION, P_BOOL, P_ENUM, P_LIST, P_PATH };

struct pspec {
    const char *name;
    enum ptype type;
    const char *choices; /* P_ENUM */
    const char *def;     /* stored when absent; NULL = absent */
    int required;
};

struct kspec {
    const char *name;
    const char *default_field; /* NULL: the kind takes no `field` key */
    int every_optional;
    const char *struct_keys; /* keys stored in struct fields, '|'-separated */
    const struct pspec *params;
};

static const struct pspec p_none[] = {{NULL, P_STR, NULL, NULL, 0}};
static const struct pspec p_provider[] = {{"provider", P_ENUM, "openai|anthropic|xai", NULL, 1},
                                          {"base_url", P_STR, NULL, NULL, 0},
                                          {"admin_key_path", P_PATH, NULL, NULL, 0},
                                          {"min_interval", P_DURATION, NULL, NULL, 0},
                                          {NULL, P_STR, NULL, NULL, 0}};
static const struct pspec p_database[] = {{"connection", P_STR, NULL, NULL, 1},
                                          {"role", P_STR, NULL, NULL, 0},
                                          {"ttl", P_DURATION, NULL, "1h", 0},
                                          {"max_ttl", P_DURATION, NULL, "24h", 0},
                                          {"creation_statements", P_STR, NULL, NULL, 0},
                                          {"revocation_statements", P_STR, NULL, NULL, 0},
                                          {NULL, P_STR, NULL, NULL, 0}};
static const struct pspec p_transit[] = {
    {"key_type", P_ENUM, "rsa-4096|ed25519|ecdsa-p256", NULL, 1},
    {"exportable", P_BOOL, NULL, "false", 0},
    {NULL, P_STR, NULL, NULL, 0}};
static const struct pspec p_redis[] = {{"address", P_STR, NULL, NULL, 1},
                                       {"username", P_STR, NULL, "default", 0},
                                       {NULL, P_STR, NULL, NULL, 0}};
static const struct pspec p_cert[] = {{"common_name", P_STR, NULL, NULL, 1},
                                      {"alt_names", P_LIST, NULL, NULL, 0},
                                      {"ttl", P_DURATION, NULL, "90d", 0},
                                      {"renew_before", P_DURATION, NULL, "30d", 0},
                                      {"issuer", P_ENUM, "internal|acme", "internal", 0},
                                      {"acme_directory", P_STR, NULL, NULL, 0},
                                      {NULL, P_STR, NULL, NULL, 0}};

static const struct kspec kinds[] = {
    {"generated", "value", 0, "format", p_none},
    {"manual", "value", 0, "pattern", p_none},
    {"provider-key", "api_key", 0, "pattern", p_provider},
    {"database", NULL, 0, "", p_database},
    {"transit", NULL, 0, "", p_transit},
    {"redis-password", "password", 0, "", p_redis},
    {"certificate", NULL, 1, "", p_cert},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))
#define KINDS_LIST "generated, manual, provider-key, database, transit, redis-password, certificate"

static const char *const common_keys[] = {"path",  "kind",  "description", "every", "auto",
                                          "grace", "apply", "test",        "reload"};
#define NCOMMON (sizeof(common_keys) / sizeof(common_keys[0]))
#define MAXKEYS 24

/* Loose by design: a prefix and a character set, never an exact length (real keys vary). */
static const struct {
    const char *provider, *pattern, *base_url;
} providers[] = {
    {"openai", "^sk-([a-z]+-)?[A-Za-z0-9_-]{20,}$", "https://api.openai.com/v1"},
    {"anthropic", "^sk-ant-[A-Za-z0-9_-]{20,}$", "https://api.anthropic.com/v1"},
    {"xai", "^xai-[A-Za-z0-9_-]{20,}$", "https://api.x.ai/v1"},
};

static int
add_param(struct loader *L, struct inv_secret *s, const char *key, char *value /* taken */)
{
    struct inv_pair *p = &s->params[s->nparams];

    if (value == NULL)
        return enomem(L);
    if ((p->key = strdup(key)) == NULL) {
        free(value);
        return enomem(L);
    }
    p->value = value;
    s->nparams++;
    return 0;
}

/* A list of scalars joined with ',' (a single scalar is taken as it is). */
static int
get_list_comma(struct loader *L, struct ynode *v, struct pos kpos, const char *key, char **out)
{
    void *it = NULL;
    struct ynode *item;
    size_t off = 0, cap = 64;
    char *acc;
    int r;

    if (!y_is_seq(v))
        return get_str_ne(L, v, kpos, key, out);
    if ((acc = malloc(cap)) == NULL)
        return enomem(L);
    acc[0] = '\0';
    while ((item = y_seq_next(v, &it)) != NULL) {
        const char *s = NULL;
        size_t len = 0;
        if ((r = get_scalar(L, item, kpos, key, "a string", &s, &len)) != 0)
            goto fail;
        if (len == 0 || memchr(s, ',', len) != NULL) {
            r = lerr(L, val_pos(item, kpos), key, "expected a non-empty name without ','");
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
    free(*out);
    *out = acc;
    return 0;
fail:
    free(acc);
    return r;
}

/* The generated rotator owns the format grammar ({hex:N}, {alnum:N}, {{ for a literal brace…);
 * the loader asks it, so the config and the rotation can never disagree. */
static int
check_format(struct loader *L, struct ment *e, const char *key, const char *f)
{
    const struct rotator_ops *ops = rotator_find("generated");
    struct inv_secret tmp;
    struct rk_error e2 = {0};

    memset(&tmp, 0, sizeof(tmp));
    tmp.path = (char *)"";
    tmp.kind = (char *)"generated";
    tmp.format = (char *)f;
    if (ops != NULL && ops->check != NULL && ops->check(&tmp, &e2) != 0)
        return lerr(L, val_pos(e->val, e->kpos), key, "%s", e2.msg);
    return 0;
}

static int
load_secret(struct loader *L, struct inv_secret *s, struct ynode *v, size_t idx, struct pos seqpos)
{
    const char *names[MAXKEYS];
    struct ment e[MAXKEYS];
    const struct kspec *ks = NULL;
    struct pos where = node_pos(v, seqpos);
    char ctx[64], key[128];
    size_t n = 0, nkp = 0;
    int r;

    snprintf(ctx, sizeof(ctx), "secrets[%zu]", idx);
    s->line = where.line;
    s->col = where.col;
    if (v == NULL || !y_is_map(v))
        return lerr(L, val_pos(v, seqpos), ctx,
                    "expected a mapping with path, kind, every…, got %s", node_kind_name(v));
    /* The kind decides which other keys are allowed, so read it first. */
    {
        struct ynode *kv = y_map_get(v, "kind");
        const char *ksv;
        size_t klen;
        struct pos kp = where;

        if (kv == NULL || is_null(kv))
            return missing(L, where, ctx, "kind", KINDS_LIST);
        kjoin(key, sizeof(key), ctx, "kind");
        if ((r = get_scalar(L, kv, kp, key, "a kind", &ksv, &klen)) != 0)
            return r;
        for (size_t i = 0; i < NKINDS; i++)
            if (strlen(kinds[i].name) == klen && memcmp(kinds[i].name, ksv, klen) == 0)
                ks = &kinds[i];
        if (ks == NULL)
            return lerr(L, node_pos(kv, kp), key, "unknown kind '%.*s'; expected one of: %s",
                        (int)(klen > 40 ? 40 : klen), ksv, KINDS_LIST);
        if ((s->kind = strdup(ks->name)) == NULL)
            return enomem(L);
    }
    for (size_t i = 0; i < NCOMMON; i++)
        names[n++] = common_keys[i];
    if (ks->default_field != NULL)
        names[n++] = "field";
    if (strcmp(ks->struct_keys, "format") == 0)
        names[n++] = "format";
    if (strcmp(ks->struct_keys, "pattern") == 0)
        names[n++] = "pattern";
    for (const struct pspec *p = ks->params; p->name != NULL; p++) {
        names[n++] = p->name;
        nkp++;
    }
    if ((r = map_collect(L, v, where, ctx, ks->name, names, n, e)) != 0)
        return r;
    /* common keys: path kind description every auto grace apply test reload */
    if (!has(&e[0]))
        return missing(L, where, ctx, "path", "e.g. secret/app/name");
    kjoin(key, sizeof(key), ctx, "path");
    if ((r = get_path(L, e[0].val, e[0].kpos, key, &s->path)) != 0)
        return r;
    if (has(&e[2])) {
        kjoin(key, sizeof(key), ctx, "description");
        if ((r = get_str(L, e[2].val, e[2].kpos, key, &s->description)) != 0)
            return r;
    }
    if (has(&e[3])) {
        kjoin(key, sizeof(key), ctx, "every");
        if ((r = get_duration(L, e[3].val, e[3].kpos, key, &s->every)) != 0)
            return r;
        if (s->every <= 0)
            return lerr(L, val_pos(e[3].val, e[3].kpos), key, "expected a duration greater than 0");
    } else if (!ks->every_optional) {
        return missing(L, where, ctx, "every", "a rotation interval such as 30d");
    }
    if (has(&e[4])) {
        kjoin(key, sizeof(key), ctx, "auto");
        if ((r = get_bool(L, e[4].val, e[4].kpos, key, &s->auto_rotate)) != 0)
            return r;
    }
    if (has(&e[5])) {
        kjoin(key, sizeof(key), ctx, "grace");
        if ((r = get_duration(L, e[5].val, e[5].kpos, key, &s->grace)) != 0)
            return r;
    }
    kjoin(key, sizeof(key), ctx, "apply");
    if ((r = load_refs(L, &e[6], key, &s->apply, &s->napply)) != 0)
        return r;
    kjoin(key, sizeof(key), ctx, "test");
    if ((r = load_refs(L, &e[7], key, &s->test, &s->ntest)) != 0)
        return r;
    kjoin(key, sizeof(key), ctx, "reload");
    if ((r = load_refs(L, &e[8], key, &s->reload, &s->nreload)) != 0)
        return r;

    /* kind-specific keys, in names[] order after the common ones */
    for (size_t i = NCOMMON; i < n - nkp; i++) {
        kjoin(key, sizeof(key), ctx, names[i]);
        if (!has(&e[i]))
            continue;
        if (strcmp(names[i], "field") == 0) {
            if ((r = get_str_ne(L, e[i].val, e[i].kpos, key, &s->field)) != 0)
                return r;
            if (!valid_name(s->field, strlen(s->field)))
                return lerr(L, val_pos(e[i].val, e[i].kpos), key,
                            "expected a field name of letters, digits, '-', '_' or '.'");
        } else if (strcmp(names[i], "format") == 0) {
            if ((r = get_str_ne(L, e[i].val, e[i].kpos, key, &s->format)) != 0 ||
                (r = check_format(L, &e[i], key, s->format)) != 0)
                return r;
        } else if (strcmp(names[i], "pattern") == 0) {
            if ((r = get_regex(L, e[i].val, e[i].kpos, key, &s->pattern)) != 0)
                return r;
        }
    }
    if (s->field == NULL &&
        (s->field = strdup(ks->default_field                   ? ks->default_field
                           : strcmp(ks->name, "database") == 0 ? "password"
                           : strcmp(ks->name, "transit") == 0  ? "key"
                                                               : "certificate")) == NULL)
        return enomem(L);
    if (strcmp(ks->name, "generated") == 0 && s->format == NULL)
        return missing(L, where, ctx, "format", "e.g. \"sk-litellm-{hex:48}\"");

    if (nkp > 0 && (s->params = calloc(nkp + 1, sizeof(*s->params))) == NULL)
        return enomem(L);
    for (size_t i = n - nkp, pi = 0; i < n; i++, pi++) {
        const struct pspec *p = &ks->params[pi];
        char *val = NULL;

        kjoin(key, sizeof(key), ctx, p->name);
        if (!has(&e[i])) {
            if (p->required)
                return missing(L, where, ctx, p->name,
                               p->type == P_ENUM ? p->choices : "see docs/config.md");
            if (p->def != NULL && (r = add_param(L, s, p->name, strdup(p->def))) != 0)
                return r;
            continue;
        }
        switch (p->type) {
        case P_STR: r = get_str_ne(L, e[i].val, e[i].kpos, key, &val); break;
        case P_PATH: r = get_path(L, e[i].val, e[i].kpos, key, &val); break;
        case P_ENUM: r = get_enum(L, e[i].val, e[i].kpos, key, p->choices, &val); break;
        case P_LIST: r = get_list_comma(L, e[i].val, e[i].kpos, key, &val); break;
        case P_DURATION: {
            int64_t d;
            if ((r = get_duration(L, e[i].val, e[i].kpos, key, &d)) == 0) {
                if (d <= 0)
                    r = lerr(L, val_pos(e[i].val, e[i].kpos), key,
                             "expected a duration greater than 0");
                else
                    r = get_str(L, e[i].val, e[i].kpos, key, &val);
            }
            break;
        }
        case P_BOOL: {
            int b = 0;
            if ((r = get_bool(L, e[i].val, e[i].kpos, key, &b)) == 0 &&
                (val = strdup(b ? "true" : "false")) == NULL)
                r = enomem(L);
            break;
        }
        }
        if (r != 0) {
            free(val);
            return r;
        }
        if ((r = add_param(L, s, p->name, val)) != 0)
            return r;
    }

    /* per-kind defaults and cross-key rules the loader owns */
    if (strcmp(ks->name, "provider-key") == 0) {
        const char *prov = inv_param(s, "provider");
        for (size_t i = 0; i < sizeof(providers) / sizeof(providers[0]); i++) {
            if (strcmp(prov, providers[i].provider) != 0)
                continue;
            if (s->pattern == NULL && (s->pattern = strdup(providers[i].pattern)) == NULL)
                return enomem(L);
            if (inv_param(s, "base_url") == NULL &&
                (r = add_param(L, s, "base_url", strdup(providers[i].base_url))) != 0)
                return r;
        }
    } else if (strcmp(ks->name, "database") == 0) {
        if (inv_param(s, "role") == NULL) {
            const char *slash = strrchr(s->path, '/');
            if ((r = add_param(L, s, "role", strdup(slash ? slash + 1 : s->path))) != 0)
                return r;
        }
    } else if (strcmp(ks->name, "certificate") == 0) {
        int64_t ttl = 0, rb = 0;
        const char *issuer = inv_param(s, "issuer");
        inv_param_duration(s, "ttl", 0, &ttl);
        inv_param_duration(s, "renew_before", 0, &rb);
        if (issuer != NULL && strcmp(issuer, "acme") == 0 && inv_param(s, "acme_directory") == NULL)
            return missing(L, where, ctx, "acme_directory", "the ACME directory URL");
        if (s->every == 0) {
            /* No schedule given: renew when the renewal window opens. */
            if (ttl <= rb)
                return lerr(L, where, ctx,
                            "renew_before must be shorter than ttl when every is not set");
            s->every = ttl - rb;
        }
    }
    return 0;
}

static int
cmp_index(const void *a, const void *b, void *arg)
{
    const struct inv_secret *s = arg;
    return strcmp(s[*(const size_t *)a].path, s[*(const size_t *)b].path);
}

static int
load_secrets(struct loader *L, struct ynode *v, struct pos kpos)
{
    struct inventory *inv = L->inv;
    void *it = NULL;
    struct ynode *item;
    size_t n;
    int r;

    if (is_null(v))
        return 0;
    if (!y_is_seq(v))
        return lerr(L, val_pos(v, kpos), "secrets", "expected a list of secrets, got %s",
                    node_kind_name(v));
    n = y_count(v);
    if (n == 0)
        return 0;
    if ((inv->secrets = calloc(n, sizeof(*inv->secrets))) == NULL ||
        (inv->by_path = calloc(n, sizeof(*inv->by_path))) == NULL)
        return enomem(L);
    while ((item = y_seq_next(v, &it)) != NULL) {
        size_t i = inv->nsecrets++;
        if ((r = load_secret(L, &inv->secrets[i], item, i, kpos)) != 0)
            return r;
        inv->by_path[i] = i;
    }
    qsort_r(inv->by_path, inv->nsecrets, sizeof(size_t), cmp_index, inv->secrets);
    for (size_t i = 1; i < inv->nsecrets; i++) {
        const struct inv_secret *a = &inv->secrets[inv->by_path[i - 1]];
        const struct inv_secret *b = &inv->secrets[inv->by_path[i]];
        if (strcmp(a->path, b->path) == 0) {
            if (b->line < a->line || (b->line == a->line && b->col < a->col)) {
                const struct inv_secret *t = a;
                a = b;
                b = t;
            }
            return lerr(L, (struct pos){b->line, b->col}, "path",
                        "duplicate path '%s' (first defined at line %d); expected each path "
                        "once",
                        b->path, a->line);
        }
    }
    return 0;
}

/* ---- the document ---- */

static void
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
static int
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
static int
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

static int
load_doc(struct loader *L, const char *buf, size_t len)
{
    static const char *const keys[] = {"version", "store", "server", "audit", "hooks", "secrets"};
    enum { K_VERSION, K_STORE, K_SERVER, K_AUDIT, K_HOOKS, K_SECRETS, K_N };
    struct fy_diag_cfg dc;
    struct fy_diag *diag = NULL;
    struct fy_parse_cfg pc;
    struct fy_parser *fyp = NULL;
    struct ynode *root = NULL;
    struct ment e[K_N];
    struct pos top = {1, 1};
    int64_t version;
    int r = -RK_EINTERNAL;

    if ((r = check_chars(L, buf, len)) != 0)
        return r; /* nothing allocated yet */
    fy_diag_cfg_default(&dc);
    dc.fp = NULL;
    dc.output_fn = diag_output;
    dc.user = L;
    dc.colorize = false;
    dc.level = FYET_ERROR;
    if ((diag = fy_diag_create(&dc)) == NULL) {
        r = enomem(L);
        goto out;
    }
    memset(&pc, 0, sizeof(pc));
    pc.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2;
    pc.diag = diag;
    if ((fyp = fy_parser_create(&pc)) == NULL) {
        r = enomem(L);
        goto out;
    }
    /* The parser keeps pointers into buf: it is destroyed below, before buf can go. */
    if (fy_parser_set_string(fyp, buf, len) != 0) {
        r = enomem(L);
        goto out;
    }
    if ((r = build_tree(L, fyp, &root)) != 0)
        goto out;
    if (root == NULL || is_null(root)) {
        r = lerr(L, top, NULL, "the file is empty; expected a mapping with version: 1");
        goto out;
    }
    if ((r = map_collect(L, root, node_pos(root, top), "top level", "", keys, K_N, e)) != 0)
        goto out;
    if (!has(&e[K_VERSION])) {
        r = missing(L, node_pos(root, top), "top level", "version", "version: 1");
        goto out;
    }
    if ((r = get_int(L, e[K_VERSION].val, e[K_VERSION].kpos, "version", 1, 1, &version)) != 0)
        goto out;
    L->inv->version = (int)version;
    if ((r = load_store(L, e[K_STORE].val, e[K_STORE].kpos)) != 0 ||
        (r = load_server(L, e[K_SERVER].val, e[K_SERVER].kpos)) != 0 ||
        (r = load_audit(L, e[K_AUDIT].val, e[K_AUDIT].kpos)) != 0 ||
        (r = load_hooks(L, e[K_HOOKS].val, e[K_HOOKS].kpos)) != 0 ||
        (r = load_secrets(L, e[K_SECRETS].val, e[K_SECRETS].kpos)) != 0)
        goto out;
    r = 0;
out:
    fy_parser_destroy(fyp);
    fy_diag_destroy(diag);
    arena_free(L);
    return r;
}

/* Fills what the document left unset. */
static int
set_defaults(struct loader *L)
{
    struct inventory *inv = L->inv;
    const char *rel[] = {"rekey.db", "audit.log"};
    char **dst[] = {&inv->store_path, &inv->audit_path};

    for (size_t i = 0; i < 2; i++) {
        if (*dst[i] != NULL)
            continue;
        if (L->dir != NULL) {
            if (asprintf(dst[i], "%s/%s", L->dir, rel[i]) < 0) {
                *dst[i] = NULL;
                return enomem(L);
            }
        } else if ((*dst[i] = strdup(rel[i])) == NULL) {
            return enomem(L);
        }
    }
    if (inv->listen == NULL && (inv->listen = strdup("127.0.0.1:8200")) == NULL)
        return enomem(L);
    if (strcmp(inv->store_backend, "etcd") == 0) {
        if (asprintf(&inv->store_location, "etcd:%s", inv->store_endpoints) < 0)
            inv->store_location = NULL;
    } else if (asprintf(&inv->store_location, "%s:%s", inv->store_backend, inv->store_path) < 0) {
        inv->store_location = NULL;
    }
    if (inv->store_location == NULL)
        return enomem(L);
    return 0;
}

int
inventory_load_string(const char *name, const char *buf, size_t len, struct inventory **out,
                      struct rk_error *err)
{
    struct loader L;
    struct rk_error localerr;
    const char *slash;
    int r = -RK_EINTERNAL;

    *out = NULL;
    memset(&L, 0, sizeof(L));
    L.name = name != NULL ? name : "<config>";
    L.err = err != NULL ? err : &localerr;
    if ((L.inv = calloc(1, sizeof(*L.inv))) == NULL || (L.inv->file = strdup(L.name)) == NULL ||
        (L.inv->store_backend = strdup("sqlite")) == NULL) {
        r = enomem(&L);
        goto out;
    }
    L.inv->check_interval = DEFAULT_CHECK_INTERVAL;
    L.inv->request_timeout = DEFAULT_REQUEST_TIMEOUT;
    if ((slash = strrchr(L.name, '/')) != NULL) {
        size_t dlen = slash == L.name ? 1 : (size_t)(slash - L.name);
        if ((L.dir = strndup(L.name, dlen)) == NULL) {
            r = enomem(&L);
            goto out;
        }
    }
    if (buf == NULL)
        buf = "", len = 0;
    if ((r = load_doc(&L, buf, len)) != 0 || (r = set_defaults(&L)) != 0)
        goto out;
    *out = L.inv;
    L.inv = NULL;
    r = 0;
out:
    inventory_free(L.inv);
    free(L.dir);
    free(L.hooks_sorted);
    free(L.last_regex);
    return r;
}

int
inventory_load_file(const char *file, struct inventory **out, struct rk_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    int r;

    *out = NULL;
    if ((r = fs_read_all(file, INV_MAX_FILE, &buf, &len, err)) != 0) {
        if (r == -RK_ELIMIT)
            return rk_error_set(err, RK_ECONFIG, "%s: the file is larger than %u bytes", file,
                                INV_MAX_FILE);
        return r;
    }
    r = inventory_load_string(file, buf, len, out, err);
    free(buf);
    return r;
}
