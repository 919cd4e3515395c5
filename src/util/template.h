/* template.h: the one placeholder grammar of hook templates, used by the config loader, lint and
 * the renderer (hooks/hook.c), so what loads renders and what is refused is refused everywhere.
 *
 *   {{new}} {{old}}              the value of the secret's field in the new / previous version
 *   {{new.FIELD}} {{old.FIELD}}  another field of that version; FIELD is 1..TEMPLATE_FIELD_MAX
 *                                bytes of [A-Za-z0-9_-]
 *   {{path}} {{version}}         the secret's path, the new version's number
 *
 * Spaces and tabs inside the braces are ignored ({{ new }} is {{new}}). Everything else is
 * literal text, including a lone '{', '}' or "}}". An unterminated "{{" is an error. */
#ifndef REKEY_UTIL_TEMPLATE_H
#define REKEY_UTIL_TEMPLATE_H

#include <stddef.h>

#include "util/err.h"

#define TEMPLATE_FIELD_MAX 128

enum tpl_kind {
    TPL_TEXT = 0,
    TPL_NEW,
    TPL_OLD,
    TPL_NEW_FIELD,
    TPL_OLD_FIELD,
    TPL_PATH,
    TPL_VERSION
};

struct tpl_token {
    enum tpl_kind kind;
    const char *text; /* TPL_TEXT: the literal text; else the placeholder's name, trimmed */
    size_t len;
    const char *field; /* TPL_NEW_FIELD, TPL_OLD_FIELD: FIELD */
    size_t fieldlen;
    size_t pos; /* 1-based byte offset of the token in the template */
};

/* Reads the token at tpl + *off and moves *off past it. Returns 1 with *t filled, 0 at the end,
 * or -RK_EINVAL with the reason (an unterminated "{{", an unknown placeholder, a field name too
 * long) and the 1-based position in err. Never fails on literal text. */
int template_next(const char *tpl, size_t *off, struct tpl_token *t, struct rk_error *err);

/* 1 for the placeholders that stand for a secret ({{new…}}, {{old…}}), else 0. */
int template_kind_is_secret(enum tpl_kind k);

enum {
    TEMPLATE_PUBLIC = 1 << 0, /* refuse secret placeholders (argv, URLs, file paths: text that
                               * may be shown in a process list, a log line or a message) */
};

/* Checks tpl's syntax (and, with TEMPLATE_PUBLIC, that it holds no secret placeholder).
 * NULL is a valid empty template. Returns 0 or -RK_EINVAL with the reason and position. */
int template_check(const char *tpl, unsigned flags, struct rk_error *err);

/* 1 if tpl is well-formed and contains a secret placeholder, else 0. */
int template_has_secret(const char *tpl);

#endif
