/* generated.c: kind "generated", a random value built from a format such as
 * "sk-litellm-{hex:48}".
 *
 * Format syntax (docs/config.md, "generated values"):
 *   literal text        copied as it is
 *   {hex:N}             N lowercase hex characters (4 bits each)
 *   {alnum:N}           N characters from [A-Za-z0-9] (about 5.95 bits each; rejection
 *                       sampling, so every character is equally likely)
 *   {base64:N}          N random BYTES, standard base64 with '=' padding
 *   {base64url:N}       N random BYTES, base64url without padding
 *   {uuid}              a random (version 4) UUID, 36 characters, 122 random bits
 *   {{ and }}           a literal '{' and '}' (a lone '}' is an error; a '{' always opens a
 *                       generator), as in Python's str.format and Rust's format!
 * N is 1..1024. A format must carry at least 64 random bits in total (check fails below that;
 * 128 or more is what it should have); the whole value is at most 64 KiB.
 *
 * Randomness comes from OpenSSL's RAND_bytes only. The value is written straight into a
 * struct secret (secure heap); the random bytes and encoding scratch live on the stack and are
 * wiped before returning. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/enc.h"
#include "util/secret.h"
#include "rotators/rotator.h"

#define GEN_MAX_N 1024
#define GEN_MAX_VALUE 65536
#define GEN_MIN_BITS 64

enum gen_type { GEN_LITERAL = 0, GEN_HEX, GEN_ALNUM, GEN_BASE64, GEN_BASE64URL, GEN_UUID };

static const struct {
    const char *name;
    enum gen_type type;
    int takes_n;
} generators[] = {
    {"hex", GEN_HEX, 1},       {"alnum", GEN_ALNUM, 1},
    {"base64", GEN_BASE64, 1}, {"base64url", GEN_BASE64URL, 1},
    {"uuid", GEN_UUID, 0},
};
#define NGENERATORS (sizeof(generators) / sizeof(generators[0]))
#define GENERATOR_NAMES "hex, alnum, base64, base64url, uuid"

/* One piece of a format: a run of literal text (lit/litlen; an escape "{{" yields a one-byte
 * piece) or a generator with its length n. */
struct gen_tok {
    enum gen_type type;
    const char *lit;
    size_t litlen;
    size_t n;
    size_t pos; /* 1-based position in the format, for messages */
};

/* Reads the token at f[*off]. Returns 1 with *t filled, 0 at the end, or a negative RK_E* code
 * (-RK_ECONFIG) with a message naming the position. */
static int
gen_next(const char *f, size_t *off, struct gen_tok *t, struct rk_error *err)
{
    const char *p = f + *off, *name, *end;
    size_t namelen;

    memset(t, 0, sizeof(*t));
    t->pos = *off + 1;
    if (*p == '\0')
        return 0;
    if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
        t->type = GEN_LITERAL;
        t->lit = p;
        t->litlen = 1;
        *off += 2;
        return 1;
    }
    if (*p == '}')
        return rk_error_set(err, RK_ECONFIG,
                            "format: unmatched '}' at position %zu (write '}}' for a literal '}')",
                            t->pos);
    if (*p != '{') {
        size_t n = strcspn(p, "{}");
        t->type = GEN_LITERAL;
        t->lit = p;
        t->litlen = n;
        *off += n;
        return 1;
    }
    name = p + 1;
    end = name + strcspn(name, "{}");
    if (*end != '}')
        return rk_error_set(err, RK_ECONFIG,
                            "format: unterminated '{' at position %zu; expected {NAME} or "
                            "{NAME:LENGTH} such as {hex:48} (write '{{' for a literal '{')",
                            t->pos);
    namelen = strcspn(name, ":}");
    for (size_t i = 0; i < NGENERATORS; i++) {
        const char *q;
        size_t n = 0;

        if (strlen(generators[i].name) != namelen ||
            strncmp(generators[i].name, name, namelen) != 0)
            continue;
        t->type = generators[i].type;
        q = name + namelen;
        if (!generators[i].takes_n) {
            if (*q != '}')
                return rk_error_set(err, RK_ECONFIG, "format: {%s} at position %zu takes no length",
                                    generators[i].name, t->pos);
        } else {
            if (*q != ':' || q[1] == '}')
                return rk_error_set(err, RK_ECONFIG,
                                    "format: {%s} at position %zu needs a length, e.g. {%s:32}",
                                    generators[i].name, t->pos, generators[i].name);
            for (q++; q < end; q++) {
                if (*q < '0' || *q > '9')
                    return rk_error_set(err, RK_ECONFIG,
                                        "format: the length of {%s} at position %zu is not a "
                                        "number; expected 1..%d",
                                        generators[i].name, t->pos, GEN_MAX_N);
                if (n <= GEN_MAX_N)
                    n = n * 10 + (size_t)(*q - '0');
            }
            if (n < 1 || n > GEN_MAX_N)
                return rk_error_set(err, RK_ECONFIG,
                                    "format: the length of {%s} at position %zu is out of range; "
                                    "expected 1..%d",
                                    generators[i].name, t->pos, GEN_MAX_N);
            t->n = n;
        }
        *off = (size_t)(end + 1 - f);
        return 1;
    }
    return rk_error_set(
        err, RK_ECONFIG,
        "format: unknown generator '%.*s' at position %zu; expected one of " GENERATOR_NAMES,
        (int)(namelen > 32 ? 32 : namelen), name, t->pos);
}

/* The number of characters a token produces. */
static size_t
gen_tok_len(const struct gen_tok *t)
{
    switch (t->type) {
    case GEN_LITERAL: return t->litlen;
    case GEN_HEX:
    case GEN_ALNUM: return t->n;
    case GEN_BASE64: return 4 * ((t->n + 2) / 3);
    case GEN_BASE64URL: return (4 * t->n + 2) / 3;
    case GEN_UUID: return 36;
    }
    return 0;
}

/* Random bits a token carries, in thousandths of a bit (log2(62) = 5.954). */
static uint64_t
gen_tok_millibits(const struct gen_tok *t)
{
    switch (t->type) {
    case GEN_LITERAL: return 0;
    case GEN_HEX: return 4000 * (uint64_t)t->n;
    case GEN_ALNUM: return 5954 * (uint64_t)t->n;
    case GEN_BASE64:
    case GEN_BASE64URL: return 8000 * (uint64_t)t->n;
    case GEN_UUID: return 122000;
    }
    return 0;
}

/* Parses the whole format: *len is the value's length, *bits its random bits (rounded down).
 * Returns 0 or -RK_ECONFIG. */
static int
gen_measure(const char *f, size_t *len, unsigned *bits, struct rk_error *err)
{
    struct gen_tok t;
    size_t off = 0, total = 0;
    uint64_t mbits = 0;
    int r;

    if (f == NULL || f[0] == '\0')
        return rk_error_set(err, RK_ECONFIG,
                            "format: empty; expected e.g. \"sk-litellm-{hex:48}\"");
    while ((r = gen_next(f, &off, &t, err)) == 1) {
        total += gen_tok_len(&t);
        mbits += gen_tok_millibits(&t);
        if (total > GEN_MAX_VALUE)
            return rk_error_set(err, RK_ECONFIG,
                                "format: the value would be longer than %d bytes (at position "
                                "%zu)",
                                GEN_MAX_VALUE, t.pos);
    }
    if (r < 0)
        return r;
    *len = total;
    *bits = mbits / 1000 > UINT_MAX ? UINT_MAX : (unsigned)(mbits / 1000);
    return 0;
}

/* Fills out[0..n) with characters drawn uniformly from [A-Za-z0-9]. Bytes >= 248 (= 4 * 62)
 * are thrown away so that b % 62 has no bias. */
static int
gen_alnum(unsigned char *out, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char buf[256];
    size_t got = 0, i = sizeof(buf);
    int r = 0;

    while (got < n) {
        if (i == sizeof(buf)) {
            if (RAND_bytes(buf, (int)sizeof(buf)) != 1) {
                r = -1;
                break;
            }
            i = 0;
        }
        if (buf[i] < 248)
            out[got++] = (unsigned char)alphabet[buf[i] % 62];
        i++;
    }
    secure_wipe(buf, sizeof(buf));
    return r;
}

/* Writes one generator's characters at out (exactly gen_tok_len(t) bytes). */
static int
gen_fill(const struct gen_tok *t, unsigned char *out)
{
    /* Scratch for the random bytes and their encoding; wiped on every path. */
    unsigned char rnd[GEN_MAX_N];
    char enc[4 * ((GEN_MAX_N + 2) / 3) + 1];
    size_t nbytes = 0;
    int r = -1;

    switch (t->type) {
    case GEN_LITERAL: memcpy(out, t->lit, t->litlen); return 0;
    case GEN_ALNUM: return gen_alnum(out, t->n);
    case GEN_HEX: nbytes = (t->n + 1) / 2; break;
    case GEN_BASE64:
    case GEN_BASE64URL: nbytes = t->n; break;
    case GEN_UUID: nbytes = 16; break;
    }
    if (RAND_bytes(rnd, (int)nbytes) != 1)
        goto out;
    switch (t->type) {
    case GEN_HEX: hex_encode(rnd, nbytes, enc); break;
    case GEN_BASE64: EVP_EncodeBlock((unsigned char *)enc, rnd, (int)nbytes); break;
    case GEN_BASE64URL: base64url_encode(rnd, nbytes, enc); break;
    case GEN_UUID: {
        char hex[33];
        rnd[6] = (unsigned char)((rnd[6] & 0x0f) | 0x40); /* version 4 */
        rnd[8] = (unsigned char)((rnd[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        hex_encode(rnd, 16, hex);
        memcpy(enc, hex, 8);
        enc[8] = '-';
        memcpy(enc + 9, hex + 8, 4);
        enc[13] = '-';
        memcpy(enc + 14, hex + 12, 4);
        enc[18] = '-';
        memcpy(enc + 19, hex + 16, 4);
        enc[23] = '-';
        memcpy(enc + 24, hex + 20, 12);
        enc[36] = '\0';
        secure_wipe(hex, sizeof(hex));
        break;
    }
    default: goto out;
    }
    memcpy(out, enc, gen_tok_len(t));
    r = 0;
out:
    secure_wipe(rnd, sizeof(rnd));
    secure_wipe(enc, sizeof(enc));
    return r;
}

static int
generated_check(const struct inv_secret *s, struct rk_error *err)
{
    size_t len;
    unsigned bits;
    int r;

    if ((r = gen_measure(s->format, &len, &bits, err)) != 0)
        return r;
    if (bits < GEN_MIN_BITS)
        return rk_error_set(err, RK_ECONFIG,
                            "format: only %u random bits; at least %d are needed (128 or more "
                            "recommended), e.g. {hex:32} or {alnum:22}",
                            bits, GEN_MIN_BITS);
    return 0;
}

static int
generated_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    const char *f = c->secret->format;
    struct secret *v = NULL;
    struct gen_tok t;
    size_t len, off = 0, at = 0;
    unsigned bits;
    int r;

    /* The config was checked at load time; checked again so a bad format never yields a weak
     * value even when a caller skipped the check. */
    if ((r = generated_check(c->secret, err)) != 0 || (r = gen_measure(f, &len, &bits, err)) != 0)
        goto out;
    if ((v = secret_new(len)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    while ((r = gen_next(f, &off, &t, err)) == 1) {
        if (gen_fill(&t, v->data + at) != 0) {
            r = rk_error_set(err, RK_EINTERNAL, "RAND_bytes failed");
            goto out;
        }
        at += gen_tok_len(&t);
    }
    if (r < 0)
        goto out;
    if (at != len) {
        r = rk_error_set(err, RK_EINTERNAL, "format: produced %zu bytes, expected %zu", at, len);
        goto out;
    }
    /* One field: the entry's. rot_fields_set takes v, also on failure. */
    r = rot_fields_set(out, rotator_field(c->secret), v, 0, err);
    v = NULL;
out:
    secret_free(v);
    return r;
}

static const struct inv_setting generated_settings[] = {
    {.name = "format",
     .type = IS_STRING,
     .flags = IS_REQUIRED,
     .help = "e.g. \"sk-litellm-{hex:48}\"",
     .offset = offsetof(struct inv_secret, format)},
    {0},
};

const struct rotator_ops rotator_generated = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "generated",
    .check = generated_check,
    .create = generated_create,
    .settings = generated_settings,
    .default_field = "value",
};
