/* template.c: the placeholder grammar (template.h); the renderer is hooks/hook.c. */
#include "util/template.h"

#include <string.h>

static int
field_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

#define SHOWN(n) ((int)((n) > 64 ? 64 : (n)))

/* Parses a placeholder's trimmed name into t. Returns 0 or -RK_EINVAL. */
static int
parse_name(const char *name, size_t len, struct tpl_token *t, struct rk_error *err)
{
    static const struct {
        const char *word;
        enum tpl_kind kind, field_kind; /* field_kind == kind: takes no .FIELD */
    } words[] = {{"new", TPL_NEW, TPL_NEW_FIELD},
                 {"old", TPL_OLD, TPL_OLD_FIELD},
                 {"path", TPL_PATH, TPL_PATH},
                 {"version", TPL_VERSION, TPL_VERSION}};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t wl = strlen(words[i].word), flen;

        if (len < wl || strncmp(name, words[i].word, wl) != 0)
            continue;
        if (len == wl) {
            t->kind = words[i].kind;
            return 0;
        }
        if (name[wl] != '.' || words[i].field_kind == words[i].kind || len == wl + 1)
            break;
        flen = len - wl - 1;
        for (size_t j = wl + 1; j < len; j++)
            if (!field_char(name[j]))
                goto unknown;
        if (flen > TEMPLATE_FIELD_MAX)
            return rk_error_set(err, RK_EINVAL,
                                "the field name in '{{%.*s…}}' at position %zu is %zu bytes; "
                                "expected at most %d",
                                SHOWN(wl + 8), name, t->pos, flen, TEMPLATE_FIELD_MAX);
        t->kind = words[i].field_kind;
        t->field = name + wl + 1;
        t->fieldlen = flen;
        return 0;
    }
unknown:
    return rk_error_set(err, RK_EINVAL,
                        "unknown placeholder '{{%.*s}}' at position %zu; expected {{new}}, "
                        "{{old}}, {{new.FIELD}}, {{old.FIELD}}, {{path}} or {{version}}",
                        SHOWN(len), name, t->pos);
}

int
template_next(const char *tpl, size_t *off, struct tpl_token *t, struct rk_error *err)
{
    const char *p = tpl + *off, *open, *close, *name, *nend;

    memset(t, 0, sizeof(*t));
    t->pos = *off + 1;
    if (*p == '\0')
        return 0;
    open = strstr(p, "{{");
    if (open != p) {
        t->kind = TPL_TEXT;
        t->text = p;
        t->len = open != NULL ? (size_t)(open - p) : strlen(p);
        *off += t->len;
        return 1;
    }
    close = strstr(open + 2, "}}");
    if (close == NULL)
        return rk_error_set(err, RK_EINVAL, "unterminated '{{' at position %zu", t->pos);
    name = open + 2;
    nend = close;
    while (name < nend && (*name == ' ' || *name == '\t'))
        name++;
    while (nend > name && (nend[-1] == ' ' || nend[-1] == '\t'))
        nend--;
    t->text = name;
    t->len = (size_t)(nend - name);
    if (parse_name(name, t->len, t, err) != 0)
        return -RK_EINVAL;
    *off = (size_t)(close + 2 - tpl);
    return 1;
}

int
template_kind_is_secret(enum tpl_kind k)
{
    return k == TPL_NEW || k == TPL_OLD || k == TPL_NEW_FIELD || k == TPL_OLD_FIELD;
}

int
template_check(const char *tpl, unsigned flags, struct rk_error *err)
{
    struct tpl_token t;
    size_t off = 0;
    int r;

    if (tpl == NULL)
        return 0;
    while ((r = template_next(tpl, &off, &t, err)) == 1)
        if ((flags & TEMPLATE_PUBLIC) && template_kind_is_secret(t.kind))
            return rk_error_set(err, RK_EINVAL,
                                "'{{%.*s}}' at position %zu is not allowed here: it would put a "
                                "secret where it can be seen (a command line, a URL or a file "
                                "name); pass it on stdin (stdin: new), in a header or body, or "
                                "in a file instead",
                                SHOWN(t.len), t.text, t.pos);
    return r;
}

int
template_has_secret(const char *tpl)
{
    struct tpl_token t;
    size_t off = 0;
    int r, secret = 0;

    if (tpl == NULL)
        return 0;
    while ((r = template_next(tpl, &off, &t, NULL)) == 1)
        secret |= template_kind_is_secret(t.kind);
    return r == 0 && secret;
}
