/* hook.c: the registry of hook kinds, dispatch with the `wait` loop, template rendering into
 * secure memory, and the masking of secrets in a hook's logged output. */
#include "hooks/hook.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/enc.h"
#include "util/log.h"
#include "util/template.h"
#include "util/timeutil.h"

static const struct hook_ops *const registry[] = {
    [HOOK_EXEC] = &hook_exec_ops,
    [HOOK_HTTP] = &hook_http_ops,
    [HOOK_FILE] = &hook_file_ops,
    [HOOK_TLS] = &hook_tls_ops,
};

#define NREGISTRY (sizeof(registry) / sizeof(registry[0]))
#define FIELD_NAME_MAX TEMPLATE_FIELD_MAX
#define JSON_DEPTH_MAX 64

static const struct hook_ops *
ops_for(enum hook_type type)
{
    if ((size_t)type >= NREGISTRY || registry[type] == NULL ||
        registry[type]->version != HOOK_OPS_VERSION)
        return NULL;
    return registry[type];
}

const char *
hook_type_name(enum hook_type type)
{
    const struct hook_ops *ops = ops_for(type);

    return ops != NULL ? ops->name : "unknown";
}

const struct hook_ops *
hook_kind_at(size_t i)
{
    size_t n = 0;

    for (size_t t = 0; t < NREGISTRY; t++)
        if (ops_for((enum hook_type)t) != NULL && n++ == i)
            return registry[t];
    return NULL;
}

const struct hook_ops *
hook_kind_find(const char *name, size_t len)
{
    const struct hook_ops *ops;

    for (size_t i = 0; (ops = hook_kind_at(i)) != NULL; i++)
        if (strlen(ops->name) == len && memcmp(ops->name, name, len) == 0)
            return ops;
    return NULL;
}

void
hook_lint(const struct hook_def *h, inv_lint_report_fn report, void *arg)
{
    const struct hook_ops *ops = ops_for(h->type);

    if (ops != NULL && ops->lint != NULL)
        ops->lint(h, report, arg);
}

/* ---- output sinks: count first, then write into a buffer of exactly that size ---- */

struct sink {
    unsigned char *buf; /* NULL: only count */
    size_t cap, len;
    int overflow;
};

static void
sink_put(struct sink *sk, const void *p, size_t n)
{
    if (sk == NULL)
        return;
    if (sk->buf != NULL) {
        if (n > sk->cap - sk->len) {
            sk->overflow = 1;
            return;
        }
        memcpy(sk->buf + sk->len, p, n);
    }
    sk->len += n;
}

static void
sink_byte(struct sink *sk, unsigned char c)
{
    sink_put(sk, &c, 1);
}

/* ---- a minimal JSON object reader that decodes straight into secure memory ----
 * jansson would copy every value into the ordinary heap; the fields of a secret must not go
 * there, so the few operations needed (find a top-level member, list its string values) are
 * done here on the text itself. */

struct jscan {
    const unsigned char *p, *end;
};

static void
js_ws(struct jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int
js_hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static void
utf8_put(struct sink *sk, unsigned cp)
{
    if (cp < 0x80) {
        sink_byte(sk, (unsigned char)cp);
    } else if (cp < 0x800) {
        sink_byte(sk, (unsigned char)(0xc0 | cp >> 6));
        sink_byte(sk, (unsigned char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        sink_byte(sk, (unsigned char)(0xe0 | cp >> 12));
        sink_byte(sk, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
        sink_byte(sk, (unsigned char)(0x80 | (cp & 0x3f)));
    } else {
        sink_byte(sk, (unsigned char)(0xf0 | cp >> 18));
        sink_byte(sk, (unsigned char)(0x80 | (cp >> 12 & 0x3f)));
        sink_byte(sk, (unsigned char)(0x80 | (cp >> 6 & 0x3f)));
        sink_byte(sk, (unsigned char)(0x80 | (cp & 0x3f)));
    }
}

/* At a '"': decodes the string into out (may be NULL) and moves past it. Returns 0 or -1. */
static int
js_string(struct jscan *s, struct sink *out)
{
    if (s->p >= s->end || *s->p != '"')
        return -1;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = *s->p++;
        unsigned cp, lo;

        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            sink_byte(out, c);
            continue;
        }
        if (s->p >= s->end)
            return -1;
        c = *s->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/': sink_byte(out, c); break;
        case 'b': sink_byte(out, '\b'); break;
        case 'f': sink_byte(out, '\f'); break;
        case 'n': sink_byte(out, '\n'); break;
        case 'r': sink_byte(out, '\r'); break;
        case 't': sink_byte(out, '\t'); break;
        case 'u':
            if (s->end - s->p < 4 || js_hex4(s->p, &cp) != 0)
                return -1;
            s->p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
                    js_hex4(s->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                s->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return -1;
            }
            utf8_put(out, cp);
            break;
        default: return -1;
        }
    }
    return -1;
}

/* Moves past one value of any type. Returns 0 or -1. */
static int
js_skip(struct jscan *s, int depth)
{
    js_ws(s);
    if (s->p >= s->end || depth > JSON_DEPTH_MAX)
        return -1;
    if (*s->p == '"')
        return js_string(s, NULL);
    if (*s->p == '{' || *s->p == '[') {
        unsigned char close = *s->p == '{' ? '}' : ']';
        int first = 1;
        s->p++;
        for (;;) {
            js_ws(s);
            if (s->p < s->end && *s->p == close) {
                s->p++;
                return 0;
            }
            if (!first) {
                if (s->p >= s->end || *s->p != ',')
                    return -1;
                s->p++;
                js_ws(s);
            }
            first = 0;
            if (close == '}') {
                if (js_string(s, NULL) != 0)
                    return -1;
                js_ws(s);
                if (s->p >= s->end || *s->p != ':')
                    return -1;
                s->p++;
            }
            if (js_skip(s, depth + 1) != 0)
                return -1;
        }
    }
    /* number, true, false, null: a run of token characters */
    const unsigned char *start = s->p;
    while (s->p < s->end && (strchr("+-.0123456789eEtrufalsn", *s->p) != NULL) && *s->p != '\0')
        s->p++;
    return s->p > start ? 0 : -1;
}

struct js_member {
    const unsigned char *key;   /* at the key's opening quote */
    const unsigned char *value; /* the value's first byte */
    const unsigned char *vend;  /* one past its last byte */
};

/* Iterates the members of the top-level object. *state starts at 0. Returns 1 with *m filled,
 * 0 at the end, or -1 on malformed text. */
static int
js_next(struct jscan *s, int *state, struct js_member *m)
{
    js_ws(s);
    if (*state == 0) {
        if (s->p >= s->end || *s->p != '{')
            return -1;
        s->p++;
        js_ws(s);
        *state = 1;
        if (s->p < s->end && *s->p == '}')
            return 0;
    } else {
        if (s->p < s->end && *s->p == '}')
            return 0;
        if (s->p >= s->end || *s->p != ',')
            return -1;
        s->p++;
        js_ws(s);
    }
    m->key = s->p;
    if (js_string(s, NULL) != 0)
        return -1;
    js_ws(s);
    if (s->p >= s->end || *s->p != ':')
        return -1;
    s->p++;
    js_ws(s);
    m->value = s->p;
    if (js_skip(s, 0) != 0)
        return -1;
    m->vend = s->p;
    return 1;
}

/* Finds member `name` of the JSON object js and renders its value into out: a string decoded,
 * anything else as its JSON text. Returns 1 found, 0 absent, -1 malformed. */
static int
js_lookup(const struct secret *js, const char *name, size_t namelen, struct sink *out)
{
    struct jscan s = {js->data, js->data + js->len};
    struct js_member m;
    int state = 0, r;

    while ((r = js_next(&s, &state, &m)) == 1) {
        unsigned char kbuf[FIELD_NAME_MAX];
        struct sink k = {kbuf, sizeof(kbuf), 0, 0};
        struct jscan ks = {m.key, m.value};

        if (js_string(&ks, &k) != 0)
            return -1;
        if (k.overflow || k.len != namelen || memcmp(kbuf, name, namelen) != 0)
            continue;
        if (*m.value == '"') {
            struct jscan vs = {m.value, m.vend};
            return js_string(&vs, out) == 0 ? 1 : -1;
        }
        sink_put(out, m.value, (size_t)(m.vend - m.value));
        return 1;
    }
    return r;
}

/* ---- templates ---- */

/* A placeholder of the one template grammar (util/template.h). */
struct ph {
    enum tpl_kind kind;
    const char *field;
    size_t fieldlen;
};

/* 1 when field (len bytes) is one of ctx's internal fields: stored, never rendered. */
static int
field_is_internal(const struct hook_ctx *ctx, const char *field, size_t len)
{
    for (size_t i = 0; i < ctx->ninternal; i++)
        if (ctx->internal_fields[i] != NULL && strlen(ctx->internal_fields[i]) == len &&
            memcmp(ctx->internal_fields[i], field, len) == 0)
            return 1;
    return 0;
}

static int
emit_value(const struct ph *ph, const char *name, size_t namelen, const struct hook_ctx *ctx,
           struct sink *out, struct rk_error *err)
{
    const struct secret *v = NULL;
    char num[24];

    switch (ph->kind) {
    case TPL_PATH:
        if (ctx->path == NULL)
            return rk_error_set(err, RK_EINVAL, "{{%.*s}}: no secret path is known here",
                                (int)namelen, name);
        sink_put(out, ctx->path, strlen(ctx->path));
        return 0;
    case TPL_VERSION:
        snprintf(num, sizeof(num), "%lld", (long long)ctx->version);
        sink_put(out, num, strlen(num));
        return 0;
    case TPL_NEW:
    case TPL_OLD:
        v = ph->kind == TPL_NEW ? ctx->new_value : ctx->old_value;
        if (v == NULL)
            return rk_error_set(err, RK_EINVAL, "{{%.*s}}: there is no %s value here", (int)namelen,
                                name, ph->kind == TPL_NEW ? "new" : "old");
        sink_put(out, v->data, v->len);
        return 0;
    case TPL_NEW_FIELD:
    case TPL_OLD_FIELD:
        v = ph->kind == TPL_NEW_FIELD ? ctx->new_fields_json : ctx->old_fields_json;
        if (field_is_internal(ctx, ph->field, ph->fieldlen))
            return rk_error_set(err, RK_EINVAL,
                                "{{%.*s}}: field \"%.*s\" is internal to the rotator and is never "
                                "rendered into a consumer's file or request",
                                (int)namelen, name, (int)ph->fieldlen, ph->field);
        if (v == NULL)
            return rk_error_set(err, RK_EINVAL,
                                "{{%.*s}}: the fields of the %s version are not "
                                "available here",
                                (int)namelen, name, ph->kind == TPL_NEW_FIELD ? "new" : "old");
        switch (js_lookup(v, ph->field, ph->fieldlen, out)) {
        case 1: return 0;
        case 0:
            return rk_error_set(err, RK_EINVAL, "{{%.*s}}: the %s version has no field \"%.*s\"",
                                (int)namelen, name, ph->kind == TPL_NEW_FIELD ? "new" : "old",
                                (int)ph->fieldlen, ph->field);
        default:
            return rk_error_set(err, RK_EINVAL,
                                "{{%.*s}}: the fields of the version are not a "
                                "JSON object",
                                (int)namelen, name);
        }
    case TPL_TEXT: break;
    }
    return rk_error_set(err, RK_EINTERNAL, "bad placeholder kind");
}

/* Walks tpl with the one grammar (util/template.h): literal text and placeholder values go to
 * out. ctx NULL: syntax check only. allow_secret 0: secret placeholders are an error. */
static int
tpl_walk(const char *tpl, const struct hook_ctx *ctx, int allow_secret, struct sink *out,
         struct rk_error *err)
{
    struct tpl_token t;
    size_t off = 0;
    int r;

    if (tpl == NULL)
        return 0;
    if (!allow_secret && (r = template_check(tpl, TEMPLATE_PUBLIC, err)) != 0)
        return r;
    while ((r = template_next(tpl, &off, &t, err)) == 1) {
        struct ph ph = {t.kind, t.field, t.fieldlen};

        if (t.kind == TPL_TEXT)
            sink_put(out, t.text, t.len);
        else if (ctx != NULL && (r = emit_value(&ph, t.text, t.len, ctx, out, err)) != 0)
            return r;
    }
    return r;
}

int
hook_template_check(const char *tpl, struct rk_error *err)
{
    return template_check(tpl, 0, err);
}

int
hook_template_has_secret(const char *tpl)
{
    return template_has_secret(tpl);
}

int
hook_template_render(const char *tpl, const struct hook_ctx *ctx, struct secret **out,
                     struct rk_error *err)
{
    static const struct hook_ctx empty;
    struct sink count = {0};
    struct secret *s = NULL;
    int r;

    *out = NULL;
    if (ctx == NULL)
        ctx = &empty;
    if ((r = tpl_walk(tpl, ctx, 1, &count, err)) != 0)
        return r;
    if ((s = secret_new(count.len)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory rendering a template");
    struct sink w = {s->data, count.len, 0, 0};
    if ((r = tpl_walk(tpl, ctx, 1, &w, err)) != 0 || w.overflow || w.len != count.len) {
        secret_free(s);
        return r != 0 ? r : rk_error_set(err, RK_EINTERNAL, "template changed while rendering");
    }
    *out = s;
    return 0;
}

int
hook_template_render_public(const char *tpl, const struct hook_ctx *ctx, char **out,
                            struct rk_error *err)
{
    static const struct hook_ctx empty;
    struct sink count = {0};
    char *s;
    int r;

    *out = NULL;
    if (ctx == NULL)
        ctx = &empty;
    if ((r = tpl_walk(tpl, ctx, 0, &count, err)) != 0)
        return r;
    if ((s = calloc(1, count.len + 1)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory rendering a template");
    struct sink w = {(unsigned char *)s, count.len, 0, 0};
    if ((r = tpl_walk(tpl, ctx, 0, &w, err)) != 0 || w.overflow) {
        free(s);
        return r != 0 ? r : rk_error_set(err, RK_EINTERNAL, "template changed while rendering");
    }
    *out = s;
    return 0;
}

/* ---- masking secrets in output ---- */

struct mask {
    const unsigned char *data;
    size_t len;
    char fp[FINGERPRINT_LEN + 1];
};

/* What a masked value shows without a fingerprint key (hook_ctx.fp_key NULL). */
#define MASK_NO_KEY "(secret)"

struct masks {
    const struct fp_key *key; /* the store's fingerprint key, or NULL */
    struct mask *m;
    size_t n, cap;
    struct secret **owned; /* decoded JSON string values */
    size_t nowned;
};

static int
masks_add(struct masks *ms, const unsigned char *data, size_t len)
{
    if (data == NULL || len == 0)
        return 0;
    for (size_t i = 0; i < ms->n; i++)
        if (ms->m[i].len == len && CRYPTO_memcmp(ms->m[i].data, data, len) == 0)
            return 0;
    if (ms->n == ms->cap) {
        size_t cap = ms->cap ? ms->cap * 2 : 8;
        struct mask *m = realloc(ms->m, cap * sizeof(*m));
        if (m == NULL)
            return -1;
        ms->m = m;
        ms->cap = cap;
    }
    ms->m[ms->n].data = data;
    ms->m[ms->n].len = len;
    if (fingerprint(ms->key, data, len, ms->m[ms->n].fp) != 0)
        snprintf(ms->m[ms->n].fp, sizeof(ms->m[ms->n].fp), "%s", MASK_NO_KEY);
    ms->n++;
    return 0;
}

/* String values of a fields object shorter than this are not masked (a "1" would mask every
 * digit); they are not the secrets (usernames, flags). new/old/redact are masked at any length. */
#define FIELD_MASK_MIN 4

static int
masks_add_fields(struct masks *ms, const struct secret *js)
{
    struct jscan s;
    struct js_member m;
    int state = 0;

    if (js == NULL)
        return 0;
    s.p = js->data;
    s.end = js->data + js->len;
    while (js_next(&s, &state, &m) == 1) {
        struct jscan vs = {m.value, m.vend};
        struct sink count = {0};
        struct secret *v, **owned;

        if (*m.value != '"' || js_string(&vs, &count) != 0 || count.len < FIELD_MASK_MIN)
            continue;
        if ((v = secret_new(count.len)) == NULL)
            return -1;
        owned = realloc(ms->owned, (ms->nowned + 1) * sizeof(*owned));
        if (owned == NULL) {
            secret_free(v);
            return -1;
        }
        ms->owned = owned;
        ms->owned[ms->nowned++] = v;
        struct sink w = {v->data, v->len, 0, 0};
        vs.p = m.value;
        (void)js_string(&vs, &w);
        if (masks_add(ms, v->data, v->len) != 0)
            return -1;
    }
    return 0;
}

static void
masks_free(struct masks *ms)
{
    for (size_t i = 0; i < ms->nowned; i++)
        secret_free(ms->owned[i]);
    free(ms->owned);
    free(ms->m);
}

static int
mask_cmp(const void *a, const void *b)
{
    const struct mask *x = a, *y = b;

    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

/* Copies in to out with every mask replaced by its fingerprint (longest first). truncated: a
 * tail that is the start of a mask is dropped, since the rest of the secret was cut off. */
static void
mask_apply(const struct masks *ms, const unsigned char *in, size_t len, int truncated,
           struct sink *out)
{
    size_t i = 0;

    while (i < len) {
        size_t j, rest = len - i;

        for (j = 0; j < ms->n; j++) {
            const struct mask *m = &ms->m[j];
            if (m->len <= rest && CRYPTO_memcmp(in + i, m->data, m->len) == 0)
                break;
            if (truncated && m->len > rest && CRYPTO_memcmp(in + i, m->data, rest) == 0)
                return;
        }
        if (j < ms->n) {
            sink_put(out, ms->m[j].fp, strlen(ms->m[j].fp));
            i += ms->m[j].len;
        } else {
            sink_byte(out, in[i++]);
        }
    }
}

#define LOG_CHUNK 1024

void
hook_log_output(const struct hook_def *h, const char *label, const unsigned char *buf, size_t len,
                int truncated, const struct hook_ctx *ctx)
{
    struct masks ms = {0};
    struct sink count = {0};
    struct secret *red = NULL;
    int ok = 1;

    if (len == 0 && !truncated)
        return;
    if (ctx != NULL) {
        ms.key = ctx->fp_key;
        if (masks_add(&ms, ctx->new_value ? ctx->new_value->data : NULL,
                      ctx->new_value ? ctx->new_value->len : 0) != 0 ||
            masks_add(&ms, ctx->old_value ? ctx->old_value->data : NULL,
                      ctx->old_value ? ctx->old_value->len : 0) != 0)
            ok = 0;
        for (size_t i = 0; ok && i < ctx->nredact; i++)
            if (ctx->redact[i] != NULL &&
                masks_add(&ms, ctx->redact[i]->data, ctx->redact[i]->len) != 0)
                ok = 0;
        if (ok && (masks_add_fields(&ms, ctx->new_fields_json) != 0 ||
                   masks_add_fields(&ms, ctx->old_fields_json) != 0))
            ok = 0;
    }
    if (!ok) {
        /* Fail closed: an output we cannot mask is not logged. */
        log_warn("hook %s: %s: %zu bytes not shown (out of memory while masking)", h->name, label,
                 len);
        goto out;
    }
    if (ms.n > 1)
        qsort(ms.m, ms.n, sizeof(*ms.m), mask_cmp);
    mask_apply(&ms, buf, len, truncated, &count);
    if ((red = secret_new(count.len)) == NULL) {
        log_warn("hook %s: %s: %zu bytes not shown (out of memory)", h->name, label, len);
        goto out;
    }
    struct sink w = {red->data, red->len, 0, 0};
    mask_apply(&ms, buf, len, truncated, &w);

    /* One log line per output line; control bytes (escape sequences) become '?'. */
    for (size_t i = 0; i < red->len;) {
        size_t e = i, end;

        while (e < red->len && red->data[e] != '\n')
            e++;
        end = e;
        if (end > i && red->data[end - 1] == '\r')
            end--;
        for (size_t k = i; k < end; k++)
            if (red->data[k] < 0x20 ? red->data[k] != '\t' : red->data[k] == 0x7f)
                red->data[k] = '?';
        for (size_t k = i; k < end; k += LOG_CHUNK) {
            size_t n = end - k < LOG_CHUNK ? end - k : LOG_CHUNK;
            log_info("hook %s: %s: %.*s", h->name, label, (int)n, (const char *)red->data + k);
        }
        i = e + 1;
    }
    if (truncated)
        log_info("hook %s: %s: (output truncated)", h->name, label);
out:
    secret_free(red);
    masks_free(&ms);
}

/* ---- dispatch ---- */

int
hook_check(const struct hook_def *h, struct rk_error *err)
{
    const struct hook_ops *ops = ops_for(h->type);
    struct rk_error e = {0};
    const char *name = h->name != NULL ? h->name : "(unnamed)";

    if (ops == NULL)
        return rk_error_set(err, RK_ECONFIG, "hook %s: unknown kind %d", name, (int)h->type);
    if (h->timeout_ms < 0 || h->wait_interval_ms < 0 || h->wait_timeout_ms < 0)
        return rk_error_set(err, RK_ECONFIG, "hook %s: negative timeout or wait", name);
    if (h->wait_interval_ms > 0 && h->wait_timeout_ms < h->wait_interval_ms)
        return rk_error_set(err, RK_ECONFIG,
                            "hook %s: wait.timeout must be at least "
                            "wait.interval",
                            name);
    if (ops->check(h, &e) != 0)
        return rk_error_set(err, RK_ECONFIG, "hook %s: %s", name, e.msg);
    return 0;
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int
hook_run(const struct hook_def *h, const struct hook_ctx *ctx, struct rk_error *err)
{
    static const struct hook_ctx empty;
    const struct hook_ops *ops = ops_for(h->type);
    const char *name = h->name != NULL ? h->name : "(unnamed)";
    int64_t timeout = h->timeout_ms > 0 ? h->timeout_ms : HOOK_DEFAULT_TIMEOUT_MS;
    int64_t start, deadline;
    struct rk_error e = {0};
    int r, attempt;

    if (ops == NULL)
        return rk_error_set(err, RK_ENOTIMPL, "hook %s: unknown kind %d", name, (int)h->type);
    if (ctx == NULL)
        ctx = &empty;
    if (h->wait_interval_ms <= 0) {
        if ((r = ops->run(h, ctx, timeout, &e)) != 0)
            return rk_error_set(err, e.code ? e.code : -r, "hook %s: %s", name, e.msg);
        return 0;
    }
    start = time_mono_ms();
    deadline = start + h->wait_timeout_ms;
    for (attempt = 1;; attempt++) {
        int64_t left = deadline - time_mono_ms(), t = timeout;

        if (left > 0 && left < t)
            t = left;
        rk_error_clear(&e);
        if ((r = ops->run(h, ctx, t, &e)) == 0) {
            if (attempt > 1)
                log_info("hook %s: passed on attempt %d after %lld ms", name, attempt,
                         (long long)(time_mono_ms() - start));
            return 0;
        }
        /* A template or memory problem will not go away by waiting. */
        if (r == -RK_EINVAL || r == -RK_ENOMEM || r == -RK_ECONFIG)
            return rk_error_set(err, e.code ? e.code : -r, "hook %s: %s", name, e.msg);
        if (time_mono_ms() + h->wait_interval_ms > deadline)
            break;
        log_debug("hook %s: attempt %d failed: %s; retrying in %lld ms", name, attempt, e.msg,
                  (long long)h->wait_interval_ms);
        sleep_ms(h->wait_interval_ms);
    }
    return rk_error_set(err, e.code ? e.code : -r,
                        "hook %s: %s (still failing after %d attempts "
                        "in %lld ms)",
                        name, e.msg, attempt, (long long)(time_mono_ms() - start));
}

int
hook_run_list(struct hook_def *const *hooks, size_t n, const struct hook_ctx *ctx,
              struct rk_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int r = hook_run(hooks[i], ctx, err);
        if (r != 0)
            return r;
    }
    return 0;
}
