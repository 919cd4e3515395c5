/* manual.c: kind "manual", a value a person supplies. The CLI reads it (piped on stdin with
 * --from-stdin, from a file with --from-file FILE, or typed twice at a no-echo prompt: one reader
 * for every command, cli/secret-input.c) or an API request carries it, and either hands it over
 * in struct rot_input; this file never reads input and never opens the terminal.
 *
 * One trailing newline ("\n" or "\r\n") is stripped, as `echo` and editors add one. The value
 * is checked before anything is stored: not empty, no NUL byte, at most 64 KiB, and matching
 * the entry's `pattern` (POSIX ERE) when one is set. Errors name the secret, the pattern and the
 * value's length, never the value nor a hash of it (a refused value is in no store, so it has no
 * fingerprint to compare with; an unkeyed hash would confirm a guess). Applying the value at the
 * target, testing and retiring are left to the entry's hooks, so those steps are NULL here. */
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "util/enc.h"
#include "util/secret.h"
#include "rotators/rotator.h"
#include "util/ere.h"

#define MANUAL_MAX_VALUE (64 * 1024)

/* Drops one trailing "\n" or "\r\n", wiping the bytes dropped. */
static void
strip_newline(struct secret *v)
{
    if (v->len > 0 && v->data[v->len - 1] == '\n') {
        v->data[--v->len] = '\0';
        if (v->len > 0 && v->data[v->len - 1] == '\r')
            v->data[--v->len] = '\0';
    }
}

/* ---- validation ---- */

/* Compiles the entry's pattern with the configuration's one regex check (util/ere.h); err
 * names the setting ("pattern: …") so the loader points at it. */
static int
compile_pattern(const struct inv_secret *s, regex_t *re, struct rk_error *err)
{
    struct rk_error e = {0};

    if (ere_compile(s->pattern, re, &e) != 0)
        return rk_error_set(err, RK_ECONFIG, "pattern: %s", e.msg);
    return 0;
}

/* Checks v before it is stored. Never puts v in err. */
static int
manual_validate(const struct inv_secret *s, const struct secret *v, struct rk_error *err)
{
    regex_t re;
    int r, rc;

    if (v->len == 0)
        return rk_error_set(err, RK_EINVAL, "the new value for %s is empty; nothing was stored",
                            s->path);
    if (v->len > MANUAL_MAX_VALUE)
        return rk_error_set(err, RK_ELIMIT,
                            "the new value for %s is longer than %d bytes; nothing was stored",
                            s->path, MANUAL_MAX_VALUE);
    /* A NUL would end the string regexec sees, so the rest would escape the pattern. */
    if (memchr(v->data, '\0', v->len) != NULL)
        return rk_error_set(err, RK_EINVAL,
                            "the new value for %s contains a NUL byte (%zu bytes); nothing was "
                            "stored",
                            s->path, v->len);
    if (s->pattern == NULL)
        return 0;
    if ((r = compile_pattern(s, &re, err)) != 0)
        return rk_error_prefix(err, "%s", s->path);
    rc = regexec(&re, (const char *)v->data, 0, NULL, 0);
    regfree(&re);
    if (rc == REG_NOMATCH)
        return rk_error_set(err, RK_EINVAL,
                            "the new value does not match the pattern for %s: expected %.160s "
                            "(got %zu bytes); nothing was stored",
                            s->path, s->pattern, v->len);
    if (rc != 0)
        return rk_error_set(err, RK_EINTERNAL, "matching the pattern for %s failed (%d)", s->path,
                            rc);
    return 0;
}

static int
manual_check(const struct inv_secret *s, struct rk_error *err)
{
    regex_t re;
    int r;

    if (s->pattern == NULL)
        return 0;
    if ((r = compile_pattern(s, &re, err)) != 0)
        return r;
    regfree(&re);
    return 0;
}

static int
manual_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    const struct inv_secret *s = c->secret;
    const struct rot_input *in = c->input;
    struct secret *v = NULL;
    int r;

    if (in != NULL && in->value != NULL)
        r = (v = secret_from(in->value->data, in->value->len)) != NULL
                ? 0
                : rk_error_set(err, RK_ENOMEM, "out of memory");
    else
        r = rk_error_set(err, RK_EINVAL,
                         "kind manual needs a value: pass --from-stdin or --from-file FILE, or "
                         "run on a terminal (%s)",
                         s->path);
    if (r != 0)
        goto out;
    strip_newline(v);
    if ((r = manual_validate(s, v, err)) != 0)
        goto out;
    /* One field: the entry's. rot_fields_set takes v, also on failure. */
    r = rot_fields_set(out, rotator_field(s), v, 0, err);
    v = NULL;
out:
    secret_free(v);
    return r;
}

/* A person always types the value. Retiring the old one is left to the hooks, unless the entry
 * names the `console` where values are issued: then a person revokes the old value there, and
 * the finish step opens an action-required item that says so (rekey done closes it). */
static unsigned
manual_flags_for(const struct inv_secret *s)
{
    return ROT_F_MANUAL_INPUT | (inv_param(s, "console") != NULL ? ROT_F_PERSON_FINISHES : 0);
}

/* Where the value was issued is only known to the person, or to the entry's `console` URL. */
static int
manual_action_hint(const struct inv_secret *s, char *buf, size_t len)
{
    const char *console = inv_param(s, "console");

    if (console != NULL)
        snprintf(buf, len, "revoke the old value at %s", console);
    else
        snprintf(buf, len, "revoke the old value where it was issued");
    return 0;
}

static const struct inv_setting manual_settings[] = {
    {.name = "pattern",
     .type = IS_REGEX,
     .help = "a POSIX ERE every new value must match",
     .offset = offsetof(struct inv_secret, pattern)},
    {.name = "console",
     .type = IS_URL,
     .help = "where a person issues and revokes the value (shown in action items)"},
    {0},
};

/* A person supplies every value, so the daemon can only remind. */
static void
manual_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
            void *arg)
{
    (void)inv;
    if (s->auto_rotate)
        report(arg, "error",
               "auto: true on a manual secret; a person must supply each new value (rekey opens "
               "an action item on schedule instead)");
}

const struct rotator_ops rotator_manual = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "manual",
    .flags_for = manual_flags_for,
    .check = manual_check,
    .create = manual_create,
    .action_hint = manual_action_hint,
    .settings = manual_settings,
    .default_field = "value",
    .lint = manual_lint,
};
