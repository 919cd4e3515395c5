/* hcl.c: the reader of policy documents: HCL1 as Vault's policies use it, and JSON. See hcl.h.
 * A lexer decodes tokens into one arena (never longer than 2 * input + 16 bytes), a recursive
 * descent parser builds a tree of nodes with the line and column of each, so that the
 * interpretation (policy.c) can point every error at the exact token. */
#include "util/enc.h"
#include "api/hcl.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors -------------------------------------------------------------------------------- */

/* Writes s[0..n) into buf as a printable quoted excerpt (user text, never a secret), cut at
 * about 60 bytes so one bad token cannot fill the error message. */
const char *
hcl_excerpt(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

int
hcl_perr(struct rk_error *err, int code, unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[RK_ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return rk_error_set(err, code, "%u:%u: %s", line, col, msg);
}

/* ---- lexer ---------------------------------------------------------------------------------- */

enum tok {
    T_EOF,
    T_IDENT,
    T_STRING,
    T_NUMBER,
    T_LBRACE,
    T_RBRACE,
    T_LBRACK,
    T_RBRACK,
    T_ASSIGN,
    T_COMMA
};

static const char *
tok_desc(enum tok t)
{
    switch (t) {
    case T_EOF: return "end of input";
    case T_IDENT: return "identifier";
    case T_STRING: return "string";
    case T_NUMBER: return "number";
    case T_LBRACE: return "'{'";
    case T_RBRACE: return "'}'";
    case T_LBRACK: return "'['";
    case T_RBRACK: return "']'";
    case T_ASSIGN: return "'='";
    case T_COMMA: return "','";
    }
    return "?";
}

struct lexer {
    const char *s;
    size_t len, pos;
    unsigned line, col;
    /* the current token */
    enum tok t;
    unsigned tline, tcol;
    const char *tstr; /* decoded text for identifiers, strings and numbers (in arena) */
    size_t tlen;
    char *arena; /* decoded token text; never longer than 2 * input + 16 */
    size_t aused, acap;
    struct rk_error *err;
};

static void
lx_adv(struct lexer *lx)
{
    if (lx->s[lx->pos] == '\n') {
        lx->line++;
        lx->col = 1;
    } else {
        lx->col++;
    }
    lx->pos++;
}

static int
is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int
is_ident_char(int c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Reads 4 hex digits at lx->pos (after "\u"). */
static int
lx_hex4(struct lexer *lx, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        int h = lx->pos < lx->len ? hex_digit_value((unsigned char)lx->s[lx->pos]) : -1;
        if (h < 0)
            return hcl_perr(lx->err, RK_EINVAL, lx->line, lx->col,
                            "expected 4 hex digits after \\u in a string");
        v = v * 16 + (unsigned)h;
        lx_adv(lx);
    }
    *out = v;
    return 0;
}

static void
arena_put(struct lexer *lx, char c)
{
    /* The arena is sized so this cannot overflow (see hcl_parse); stay safe regardless. */
    if (lx->aused < lx->acap)
        lx->arena[lx->aused++] = c;
}

static int
lx_string(struct lexer *lx)
{
    size_t start = lx->aused;

    lx_adv(lx); /* opening quote */
    for (;;) {
        unsigned char c;
        if (lx->pos >= lx->len || lx->s[lx->pos] == '\n')
            return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                            "unterminated string (expected a closing '\"' on the same line)");
        c = (unsigned char)lx->s[lx->pos];
        if (c == '"') {
            lx_adv(lx);
            break;
        }
        if (c < 0x20 && c != '\t')
            return hcl_perr(lx->err, RK_EINVAL, lx->line, lx->col,
                            "control character 0x%02x inside a string", c);
        if (c != '\\') {
            arena_put(lx, (char)c);
            lx_adv(lx);
            continue;
        }
        lx_adv(lx);
        if (lx->pos >= lx->len)
            continue; /* reported as unterminated above */
        c = (unsigned char)lx->s[lx->pos];
        unsigned eline = lx->line, ecol = lx->col;
        lx_adv(lx);
        switch (c) {
        case '"': arena_put(lx, '"'); break;
        case '\\': arena_put(lx, '\\'); break;
        case '/': arena_put(lx, '/'); break;
        case 'n': arena_put(lx, '\n'); break;
        case 't': arena_put(lx, '\t'); break;
        case 'r': arena_put(lx, '\r'); break;
        case 'b': arena_put(lx, '\b'); break;
        case 'f': arena_put(lx, '\f'); break;
        case 'u': {
            unsigned cp, lo;
            int r;
            if ((r = lx_hex4(lx, &cp)) != 0)
                return r;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (lx->pos + 1 < lx->len && lx->s[lx->pos] == '\\' && lx->s[lx->pos + 1] == 'u') {
                    lx_adv(lx);
                    lx_adv(lx);
                    if ((r = lx_hex4(lx, &lo)) != 0)
                        return r;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return hcl_perr(lx->err, RK_EINVAL, eline, ecol - 1,
                                        "invalid UTF-16 surrogate pair in \\u escape");
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else {
                    return hcl_perr(lx->err, RK_EINVAL, eline, ecol - 1,
                                    "lone UTF-16 surrogate in \\u escape");
                }
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return hcl_perr(lx->err, RK_EINVAL, eline, ecol - 1,
                                "lone UTF-16 surrogate in \\u escape");
            }
            if (cp == 0)
                return hcl_perr(lx->err, RK_EINVAL, eline, ecol - 1, "\\u0000 is not allowed");
            if (cp < 0x80) {
                arena_put(lx, (char)cp);
            } else if (cp < 0x800) {
                arena_put(lx, (char)(0xc0 | (cp >> 6)));
                arena_put(lx, (char)(0x80 | (cp & 0x3f)));
            } else if (cp < 0x10000) {
                arena_put(lx, (char)(0xe0 | (cp >> 12)));
                arena_put(lx, (char)(0x80 | ((cp >> 6) & 0x3f)));
                arena_put(lx, (char)(0x80 | (cp & 0x3f)));
            } else {
                arena_put(lx, (char)(0xf0 | (cp >> 18)));
                arena_put(lx, (char)(0x80 | ((cp >> 12) & 0x3f)));
                arena_put(lx, (char)(0x80 | ((cp >> 6) & 0x3f)));
                arena_put(lx, (char)(0x80 | (cp & 0x3f)));
            }
            break;
        }
        default:
            return hcl_perr(
                lx->err, RK_EINVAL, eline, ecol - 1,
                "unknown escape '\\%c' in a string (expected \\\" \\\\ \\n \\t \\r or \\u)",
                (c >= 0x20 && c < 0x7f) ? c : '?');
        }
    }
    lx->tstr = lx->arena + start;
    lx->tlen = lx->aused - start;
    arena_put(lx, '\0');
    lx->t = T_STRING;
    return 0;
}

/* Skips whitespace and comments. */
static int
lx_skip(struct lexer *lx)
{
    while (lx->pos < lx->len) {
        char c = lx->s[lx->pos];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            lx_adv(lx);
        } else if (c == '#' || (c == '/' && lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '/')) {
            while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
                lx_adv(lx);
        } else if (c == '/' && lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '*') {
            unsigned l = lx->line, co = lx->col;
            lx_adv(lx);
            lx_adv(lx);
            for (;;) {
                if (lx->pos + 1 >= lx->len)
                    return hcl_perr(lx->err, RK_EINVAL, l, co,
                                    "unterminated comment (expected '*/' to close it)");
                if (lx->s[lx->pos] == '*' && lx->s[lx->pos + 1] == '/') {
                    lx_adv(lx);
                    lx_adv(lx);
                    break;
                }
                lx_adv(lx);
            }
        } else {
            break;
        }
    }
    return 0;
}

/* Reads the next token into lx->t. */
static int
lx_next(struct lexer *lx)
{
    int r;
    unsigned char c;

    if ((r = lx_skip(lx)) != 0)
        return r;
    lx->tline = lx->line;
    lx->tcol = lx->col;
    lx->tstr = NULL;
    lx->tlen = 0;
    if (lx->pos >= lx->len) {
        lx->t = T_EOF;
        return 0;
    }
    c = (unsigned char)lx->s[lx->pos];
    switch (c) {
    case '{':
        lx->t = T_LBRACE;
        lx_adv(lx);
        return 0;
    case '}':
        lx->t = T_RBRACE;
        lx_adv(lx);
        return 0;
    case '[':
        lx->t = T_LBRACK;
        lx_adv(lx);
        return 0;
    case ']':
        lx->t = T_RBRACK;
        lx_adv(lx);
        return 0;
    case '=': /* fall through: ':' makes JSON parse with the same grammar */
    case ':':
        lx->t = T_ASSIGN;
        lx_adv(lx);
        return 0;
    case ',':
        lx->t = T_COMMA;
        lx_adv(lx);
        return 0;
    case '"': return lx_string(lx);
    default: break;
    }
    if (c == '<' && lx->pos + 1 < lx->len && lx->s[lx->pos + 1] == '<')
        return hcl_perr(lx->err, RK_EINVAL, lx->line, lx->col,
                        "heredoc strings are not supported; use a \"quoted string\"");
    if (is_ident_start(c) || c == '-' || (c >= '0' && c <= '9')) {
        size_t start = lx->aused;
        int num = !is_ident_start(c);
        while (lx->pos < lx->len) {
            unsigned char d = (unsigned char)lx->s[lx->pos];
            if (num ? !(isdigit(d) || d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-')
                    : !is_ident_char(d))
                break;
            arena_put(lx, (char)d);
            lx_adv(lx);
        }
        lx->tstr = lx->arena + start;
        lx->tlen = lx->aused - start;
        arena_put(lx, '\0');
        lx->t = num ? T_NUMBER : T_IDENT;
        return 0;
    }
    if (c >= 0x20 && c < 0x7f)
        return hcl_perr(lx->err, RK_EINVAL, lx->line, lx->col, "unexpected character '%c'", c);
    return hcl_perr(lx->err, RK_EINVAL, lx->line, lx->col, "unexpected byte 0x%02x", c);
}

/* ---- syntax tree ---------------------------------------------------------------------------- */

#define LABELS_MAX 4

struct parser {
    struct lexer lx;
    size_t max_nodes;
    int max_depth;
    struct hcl_node *nodes;
    size_t nn, ncap;
    int depth;
};

static int
node_new(struct parser *p, enum hcl_type type, unsigned line, unsigned col, int *out)
{
    struct hcl_node *n;

    if (p->nn == p->ncap) {
        size_t ncap = p->ncap ? p->ncap * 2 : 64;
        struct hcl_node *nn;
        if (ncap > p->max_nodes)
            ncap = p->max_nodes;
        if (p->nn >= ncap)
            return hcl_perr(p->lx.err, RK_ELIMIT, line, col, "the document is too complex");
        if ((nn = realloc(p->nodes, ncap * sizeof(*nn))) == NULL)
            return rk_error_set(p->lx.err, RK_ENOMEM, "out of memory parsing");
        p->nodes = nn;
        p->ncap = ncap;
    }
    n = &p->nodes[p->nn];
    memset(n, 0, sizeof(*n));
    n->type = type;
    n->line = line;
    n->col = col;
    n->first = n->last = n->next = -1;
    *out = (int)p->nn++;
    return 0;
}

static void
node_add(struct parser *p, int parent, int child)
{
    struct hcl_node *pa = &p->nodes[parent];

    if (pa->last < 0)
        pa->first = child;
    else
        p->nodes[pa->last].next = child;
    pa->last = child;
}

static int parse_value(struct parser *p, int *out);

/* Parses members until `end` (T_RBRACE or T_EOF) into object obj; leaves `end` current. */
static int
parse_members(struct parser *p, int obj, enum tok end, unsigned oline, unsigned ocol)
{
    struct lexer *lx = &p->lx;
    int r;

    while (lx->t != end) {
        const char *key, *labels[LABELS_MAX];
        size_t klen, llen[LABELS_MAX];
        unsigned kline, kcol, lline[LABELS_MAX], lcol[LABELS_MAX];
        int nlab = 0, v;
        char ex[128], ex2[128];

        if (lx->t == T_EOF)
            return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                            "expected '}' to close the block opened at %u:%u", oline, ocol);
        if (lx->t != T_IDENT && lx->t != T_STRING)
            return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                            "expected a key such as path \"...\" or capabilities, found %s",
                            tok_desc(lx->t));
        key = lx->tstr;
        klen = lx->tlen;
        kline = lx->tline;
        kcol = lx->tcol;
        if ((r = lx_next(lx)) != 0)
            return r;
        /* Labels are quoted only (HCL1 also takes bare words): "path a b" is more likely a typo. */
        while (lx->t == T_STRING) {
            if (nlab == LABELS_MAX)
                return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol, "too many block labels");
            labels[nlab] = lx->tstr;
            llen[nlab] = lx->tlen;
            lline[nlab] = lx->tline;
            lcol[nlab] = lx->tcol;
            nlab++;
            if ((r = lx_next(lx)) != 0)
                return r;
        }
        if (lx->t == T_ASSIGN) {
            if ((r = lx_next(lx)) != 0)
                return r;
            if (nlab > 0 && lx->t != T_LBRACE)
                return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                                "expected '{' after %s \"%s\"",
                                hcl_excerpt(key, klen, ex, sizeof(ex)),
                                hcl_excerpt(labels[nlab - 1], llen[nlab - 1], ex2, sizeof(ex2)));
        } else if (lx->t != T_LBRACE) {
            if (nlab > 0)
                return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                                "expected '{' after '%s \"%s\"', found %s",
                                hcl_excerpt(key, klen, ex, sizeof(ex)),
                                hcl_excerpt(labels[nlab - 1], llen[nlab - 1], ex2, sizeof(ex2)),
                                tok_desc(lx->t));
            return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                            "expected '=' or '{' after '%s', found %s",
                            hcl_excerpt(key, klen, ex, sizeof(ex)), tok_desc(lx->t));
        }
        if ((r = parse_value(p, &v)) != 0)
            return r;
        /* path "a" { body }  is  path = { "a" = { body } } */
        for (int i = nlab - 1; i >= 0; i--) {
            int o;
            if ((r = node_new(p, HCL_OBJ, lline[i], lcol[i], &o)) != 0)
                return r;
            p->nodes[v].key = labels[i];
            p->nodes[v].klen = llen[i];
            p->nodes[v].kline = lline[i];
            p->nodes[v].kcol = lcol[i];
            node_add(p, o, v);
            v = o;
        }
        p->nodes[v].key = key;
        p->nodes[v].klen = klen;
        p->nodes[v].kline = kline;
        p->nodes[v].kcol = kcol;
        node_add(p, obj, v);
        if (lx->t == T_COMMA && (r = lx_next(lx)) != 0)
            return r;
    }
    return 0;
}

/* Parses the value starting at the current token; leaves the token after it current. */
static int
parse_value(struct parser *p, int *out)
{
    struct lexer *lx = &p->lx;
    unsigned line = lx->tline, col = lx->tcol;
    char ex[128];
    int r, n;

    switch (lx->t) {
    case T_STRING:
    case T_NUMBER:
        if ((r = node_new(p, lx->t == T_STRING ? HCL_STR : HCL_NUM, line, col, &n)) != 0)
            return r;
        p->nodes[n].str = lx->tstr;
        p->nodes[n].slen = lx->tlen;
        *out = n;
        return lx_next(lx);
    case T_IDENT:
        if (strcmp(lx->tstr, "true") == 0 || strcmp(lx->tstr, "false") == 0) {
            if ((r = node_new(p, HCL_BOOL, line, col, &n)) != 0)
                return r;
        } else if (strcmp(lx->tstr, "null") == 0) {
            if ((r = node_new(p, HCL_NULL, line, col, &n)) != 0)
                return r;
        } else {
            return hcl_perr(lx->err, RK_EINVAL, line, col,
                            "expected a value, found identifier '%s' (strings need double quotes)",
                            hcl_excerpt(lx->tstr, lx->tlen, ex, sizeof(ex)));
        }
        p->nodes[n].str = lx->tstr;
        p->nodes[n].slen = lx->tlen;
        *out = n;
        return lx_next(lx);
    case T_LBRACK:
    case T_LBRACE: break;
    default:
        return hcl_perr(lx->err, RK_EINVAL, line, col, "expected a value, found %s",
                        tok_desc(lx->t));
    }
    if (++p->depth > p->max_depth)
        return hcl_perr(lx->err, RK_ELIMIT, line, col, "nesting deeper than %d levels",
                        p->max_depth);
    if ((r = node_new(p, lx->t == T_LBRACK ? HCL_LIST : HCL_OBJ, line, col, &n)) != 0)
        return r;
    if (lx->t == T_LBRACE) {
        if ((r = lx_next(lx)) != 0 || (r = parse_members(p, n, T_RBRACE, line, col)) != 0)
            return r;
    } else {
        if ((r = lx_next(lx)) != 0)
            return r;
        while (lx->t != T_RBRACK) {
            int v;
            if (lx->t == T_EOF)
                return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                                "expected ']' to close the list opened at %u:%u", line, col);
            if ((r = parse_value(p, &v)) != 0)
                return r;
            node_add(p, n, v);
            if (lx->t == T_COMMA) {
                if ((r = lx_next(lx)) != 0)
                    return r;
            } else if (lx->t != T_RBRACK) {
                return hcl_perr(lx->err, RK_EINVAL, lx->tline, lx->tcol,
                                "expected ',' or ']' in the list opened at %u:%u, found %s", line,
                                col, tok_desc(lx->t));
            }
        }
    }
    p->depth--;
    *out = n;
    return lx_next(lx); /* past the closing bracket */
}

/* ---- entry point --------------------------------------------------------------------------- */

int
hcl_parse(const char *text, size_t len, size_t max_nodes, int max_depth, struct hcl_doc *doc,
          struct rk_error *err)
{
    struct parser p;
    int r, root = -1;

    memset(doc, 0, sizeof(*doc));
    doc->root = -1;
    memset(&p, 0, sizeof(p));
    p.max_nodes = max_nodes;
    p.max_depth = max_depth;
    p.lx.s = text;
    p.lx.len = len;
    p.lx.line = p.lx.col = 1;
    p.lx.err = err;
    p.lx.acap = 2 * len + 16; /* every token decodes to at most its own length + 1 */
    if ((p.lx.arena = malloc(p.lx.acap)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if ((r = lx_next(&p.lx)) != 0)
        goto out;
    if (p.lx.t == T_LBRACE) { /* JSON, or HCL written as one object */
        if ((r = parse_value(&p, &root)) != 0)
            goto out;
        if (p.lx.t != T_EOF) {
            r = hcl_perr(err, RK_EINVAL, p.lx.tline, p.lx.tcol,
                         "expected end of input after the closing '}', found %s", tok_desc(p.lx.t));
            goto out;
        }
    } else {
        if ((r = node_new(&p, HCL_OBJ, 1, 1, &root)) != 0 ||
            (r = parse_members(&p, root, T_EOF, 1, 1)) != 0)
            goto out;
    }
    r = 0;
out:
    if (r == 0) {
        doc->nodes = p.nodes;
        doc->n = p.nn;
        doc->arena = p.lx.arena;
        doc->root = root;
    } else {
        free(p.nodes);
        free(p.lx.arena);
    }
    return r;
}

void
hcl_doc_free(struct hcl_doc *doc)
{
    if (doc == NULL)
        return;
    free(doc->nodes);
    free(doc->arena);
    memset(doc, 0, sizeof(*doc));
    doc->root = -1;
}
