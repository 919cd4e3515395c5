/* cli-common.c: what commands share: opening and unsealing the store, escaped output, colour.
 * (Secret input: secret-input.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/secret-input.h"
#include "engine/entries.h"
#include "engine/inventory.h"
#include "engine/schedule.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "store/shamir.h"
#include "cli/unseal.h"
#include "rotators/rotator.h"
#include "util/fsutil.h"
#include "util/parse.h"
#include "util/secret.h"
#include "util/timeutil.h"

/* The length of the valid UTF-8 sequence at p (n bytes left, p[0] >= 0x80), or 0 when it is
 * not one (overlong forms, surrogates and code points above U+10FFFF are not). */
static size_t
utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t k;

    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        k = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        k = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        k = 4;
    else
        return 0;
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    if (n < k || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return k;
}

/* How the character at p (n > 0 bytes left) is shown. Sets *adv to the bytes it takes; returns
 * 0 when they are shown as they are, else the length of the escape written to esc. */
static size_t
esc_char(const unsigned char *p, size_t n, size_t *adv, char esc[8])
{
    size_t k;
    unsigned cp;

    *adv = 1;
    if (p[0] == '\n' || p[0] == '\r' || p[0] == '\t') {
        esc[0] = '\\';
        esc[1] = p[0] == '\n' ? 'n' : p[0] == '\r' ? 'r' : 't';
        esc[2] = '\0';
        return 2;
    }
    if (p[0] < 0x20 || p[0] == 0x7f)
        return (size_t)snprintf(esc, 8, "\\x%02x", p[0]);
    if (p[0] < 0x80)
        return 0;
    if ((k = utf8_seq_len(p, n)) == 0) /* a stray byte: 0x9b alone is CSI on some terminals */
        return (size_t)snprintf(esc, 8, "\\x%02x", p[0]);
    *adv = k;
    if (k == 2)
        cp = (unsigned)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
    else if (k == 3)
        cp = (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
    else
        return 0;
    /* C1 controls; U+2028/U+2029 line and paragraph separators; the bidirectional embeddings,
     * overrides and isolates, which reorder what is shown. */
    if (cp <= 0x9f || (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
        return (size_t)snprintf(esc, 8, "\\u%04x", cp);
    return 0;
}

void
cli_fput_esc(FILE *f, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    while (i < len) {
        char esc[8];
        size_t adv, el = esc_char(p + i, len - i, &adv, esc);
        if (el == 0) {
            i += adv;
            continue;
        }
        fwrite(p + run, 1, i - run, f);
        fwrite(esc, 1, el, f);
        i += adv;
        run = i;
    }
    fwrite(p + run, 1, len - run, f);
}

const char *
cli_esc(const char *s)
{
    static char *slots[CLI_ESC_SLOTS];
    static size_t slot_cap[CLI_ESC_SLOTS];
    static unsigned next;
    const unsigned char *p = (const unsigned char *)s;
    size_t len, need = 0, o = 0, adv;
    int clean = 1;
    char esc[8], *out;

    if (s == NULL)
        return "";
    len = strlen(s);
    for (size_t i = 0; i < len; i += adv) {
        size_t el = esc_char(p + i, len - i, &adv, esc);
        need += el != 0 ? el : adv;
        clean &= el == 0;
    }
    if (clean)
        return s;
    next = (next + 1) % CLI_ESC_SLOTS;
    if (slots[next] != NULL)
        freezero(slots[next], slot_cap[next]);
    slots[next] = out = malloc(need + 1);
    slot_cap[next] = out != NULL ? need + 1 : 0;
    if (out == NULL)
        return "(unprintable)";
    for (size_t i = 0; i < len; i += adv) {
        size_t el = esc_char(p + i, len - i, &adv, esc);
        memcpy(out + o, el != 0 ? esc : (const char *)p + i, el != 0 ? el : adv);
        o += el != 0 ? el : adv;
    }
    out[o] = '\0';
    return out;
}

const char *
cli_color(const struct cli_ctx *ctx, const char *which)
{
    if (!ctx->color)
        return "";
    if (strcmp(which, "red") == 0)
        return "\033[31m";
    if (strcmp(which, "green") == 0)
        return "\033[32m";
    if (strcmp(which, "yellow") == 0)
        return "\033[33m";
    if (strcmp(which, "bold") == 0)
        return "\033[1m";
    return "\033[0m";
}

#define SHARE_TEXT_MAX 1024 /* the longest share typed (hex or base64 of ROOT_KEY_LEN + 1) */

/* Asks for threshold shares at a no-echo prompt and combines them. A share of the wrong length
 * or encoding is refused as soon as it is typed. */
static int
unseal_with_shares(struct cli_ctx *ctx, int threshold, struct secret **key)
{
    struct secret *shares[SHAMIR_MAX_SHARES] = {0};
    int r = 0, got = 0;

    if (threshold < 1 || threshold > SHAMIR_MAX_SHARES)
        return rk_error_set(&ctx->err, RK_ECORRUPT, "the store's seal threshold is invalid");
    fprintf(stderr, "The store is sealed: %d unseal share%s needed.\n", threshold,
            threshold > 1 ? "s are" : " is");
    while (got < threshold) {
        char prompt[64];
        struct secret *line = NULL;

        snprintf(prompt, sizeof(prompt), "Unseal share %d of %d: ", got + 1, threshold);
        if ((r = cli_read_secret(prompt, NULL, SHARE_TEXT_MAX, &line, &ctx->err)) != 0) {
            rk_error_prefix(&ctx->err, "unseal share %d", got + 1);
            goto out;
        }
        r = shamir_share_parse((const char *)line->data, line->len, ROOT_KEY_LEN, &shares[got],
                               &ctx->err);
        secret_free(line);
        if (r != 0) {
            rk_error_prefix(&ctx->err, "unseal share %d is malformed", got + 1);
            goto out;
        }
        got++;
    }
    r = shamir_combine(shares, (unsigned)threshold, key, &ctx->err);
out:
    for (int i = 0; i < got; i++)
        secret_free(shares[i]);
    return r;
}

/* The file of a file-backed store location ("sqlite:PATH", "log:PATH" or a plain PATH). */
static const char *
store_file_path(const char *loc)
{
    if (strncmp(loc, "sqlite:", 7) == 0)
        return loc + 7;
    if (strncmp(loc, "log:", 4) == 0)
        return loc + 4;
    return loc;
}

static int
store_file_missing(const char *loc)
{
    const char *p = loc;

    if (strncmp(p, "etcd:", 5) == 0)
        return 0;
    return access(store_file_path(p), F_OK) != 0;
}

int
cli_open_store(struct cli_ctx *ctx, int sealed_ok)
{
    const char *loc, *keypath;
    struct secret *key = NULL;
    char *seal = NULL;
    int r;

    if (ctx->inv != NULL)
        loc = inventory_store_location(ctx->inv);
    else
        loc = getenv("REKEY_STORE");
    if (loc == NULL || *loc == '\0')
        return rk_error_set(&ctx->err, RK_ENOTFOUND,
                            "no store: set REKEY_STORE, or pass -c FILE with a store section "
                            "(or create ./rekey.yaml)");
    if (!sealed_ok && store_file_missing(loc))
        return rk_error_set(&ctx->err, RK_ENOTFOUND,
                            "no store at %s: run 'rekey operator init' first", loc);
    if (sealed_ok && store_file_missing(loc) && strncmp(loc, "etcd:", 5) != 0)
        snprintf(ctx->created_store, sizeof(ctx->created_store), "%s", store_file_path(loc));
    if ((r = backend_open(loc, &ctx->be, &ctx->err)) != 0)
        return rk_error_prefix(&ctx->err, "opening store %s", loc);
    if ((r = barrier_open(ctx->be, &ctx->br, &ctx->err)) != 0)
        return rk_error_prefix(&ctx->err, "opening store %s", loc);
    if (sealed_ok)
        return 0;
    if (!barrier_initialized(ctx->br))
        return rk_error_set(&ctx->err, RK_ENOTFOUND,
                            "the store at %s is not initialised: run 'rekey operator init'", loc);
    keypath = getenv("REKEY_KEY_FILE");
    if ((keypath == NULL || *keypath == '\0') && ctx->inv != NULL)
        keypath = ctx->inv->key_file;
    if (keypath != NULL && *keypath != '\0') {
        r = keyfile_read(keypath, &key, &ctx->err);
    } else {
        char type[32];
        int shares = 0, threshold = 0;

        seal = barrier_seal_config(ctx->br);
        if (seal == NULL)
            return rk_error_set(&ctx->err, RK_ECORRUPT, "the store has no seal configuration");
        r = seal_config_parse(seal, type, sizeof(type), &shares, &threshold, &ctx->err);
        if (r == 0 && strcmp(type, "shamir") != 0)
            r = rk_error_set(&ctx->err, RK_EBADKEY,
                             "the store is sealed with a key file: set REKEY_KEY_FILE or "
                             "store.key_file");
        else if (r == 0 && !isatty(STDIN_FILENO))
            r = rk_error_set(&ctx->err, RK_ESEALED,
                             "the store is sealed: set REKEY_KEY_FILE, or run on a terminal to "
                             "type %d unseal shares",
                             threshold);
        else if (r == 0)
            r = unseal_with_shares(ctx, threshold, &key);
    }
    if (r == 0)
        r = barrier_unseal(ctx->br, key, &ctx->err);
    if (r == 0)
        r = kv_open(ctx->br, &ctx->kv, &ctx->err);
    if (r == 0) {
        /* After the unseal that made the fingerprint key, stored ones are recomputed (kv.h). */
        struct rk_error fe = {0};
        if (kv_fingerprints_migrate(ctx->kv, NULL, &fe) != 0)
            fprintf(stderr, "rekey: warning: recomputing older fingerprints failed: %s\n",
                    cli_esc(fe.msg));
    }
    secret_free(key);
    free(seal);
    return r;
}

int
cli_needs_input(struct cli_ctx *ctx, const char *path)
{
    struct entry_ref ref = {0};
    struct secret_status st;
    struct rk_error err = {0};
    int needs = 0;

    if (ctx->kv == NULL || engine_entry_find(ctx->kv, ctx->inv, path, &ref, &err) != 0)
        return 0; /* the engine says what is wrong with path */
    if ((rotator_flags(rotator_find(ref.s->kind), ref.s) & ROT_F_MANUAL_INPUT) != 0)
        needs = schedule_status_one(ctx->kv, ref.s, time_now(), &st, &err) != 0 ||
                st.state != STATE_PENDING;
    entry_ref_release(&ref);
    return needs;
}
