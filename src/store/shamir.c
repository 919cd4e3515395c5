/* shamir.c: Shamir secret sharing of the root key over GF(2^8) through libgfshare.
 *
 * A printable share is hex: one byte of x-coordinate (1..255), then the share bytes (as long
 * as the secret). Shares are numbered 1..n in the order they are returned, so "share 3" is the
 * one whose x-coordinate is 3. libgfshare draws the polynomial's coefficients from its global
 * gfshare_fill_rand hook, which we point at OpenSSL's RAND_bytes once per process. */
#include "store/shamir.h"

#include <ctype.h>
#include <libgfshare.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "util/enc.h"

/* Longest secret we agree to split: far above a root key, far below anything silly. */
#define SHAMIR_SECRET_MAX 1024

static pthread_once_t rand_once = PTHREAD_ONCE_INIT;

/* libgfshare's fill hook cannot report failure; it counts them here and the caller checks. */
static atomic_uint rand_failures;

static void
fill_rand_openssl(unsigned char *buf, unsigned int len)
{
    if (len == 0)
        return;
    if (len > INT32_MAX || RAND_bytes(buf, (int)len) != 1) {
        /* Never leave predictable bytes behind: zero them and make the split fail. */
        memset(buf, 0, len);
        atomic_fetch_add(&rand_failures, 1);
    }
}

static void
install_rand(void)
{
    gfshare_fill_rand = fill_rand_openssl;
}

int
shamir_split(const struct secret *secret, unsigned n, unsigned k, struct secret **shares,
             struct rk_error *err)
{
    unsigned char xs[SHAMIR_MAX_SHARES];
    unsigned char *buf = NULL; /* one raw share */
    gfshare_ctx *ctx = NULL;
    unsigned failures;
    unsigned done = 0;
    int r = -RK_EINTERNAL;

    if (shares == NULL)
        return rk_error_set(err, RK_EINVAL, "shamir split: no output array");
    if (secret == NULL || secret->len == 0 || secret->len > SHAMIR_SECRET_MAX)
        return rk_error_set(err, RK_EINVAL, "shamir split: the secret must be 1..%d bytes",
                            SHAMIR_SECRET_MAX);
    if (n < 1 || n > SHAMIR_MAX_SHARES)
        return rk_error_set(err, RK_EINVAL, "key shares must be between 1 and %d, not %u",
                            SHAMIR_MAX_SHARES, n);
    if (k > n || k < 1 || (k == 1 && n != 1))
        return rk_error_set(err, RK_EINVAL,
                            "key threshold must be between 2 and the number of shares (%u), "
                            "or 1 with a single share; got %u",
                            n, k);
    (void)pthread_once(&rand_once, install_rand);

    for (unsigned i = 0; i < n; i++)
        xs[i] = (unsigned char)(i + 1);
    buf = OPENSSL_secure_malloc(secret->len);
    if (buf == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "shamir split: out of secure memory");
        goto out;
    }
    ctx = gfshare_ctx_init_enc(xs, n, (unsigned char)k, (unsigned int)secret->len);
    if (ctx == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "shamir split: libgfshare could not allocate");
        goto out;
    }
    failures = atomic_load(&rand_failures);
    /* setsecret takes a non-const pointer but only copies from it. */
    gfshare_ctx_enc_setsecret(ctx, secret->data);
    if (atomic_load(&rand_failures) != failures) {
        r = rk_error_set(err, RK_EINTERNAL, "shamir split: the random generator failed");
        goto out;
    }
    for (done = 0; done < n; done++) {
        struct secret *s = secret_new(2 + 2 * secret->len);
        if (s == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "shamir split: out of secure memory");
            goto out;
        }
        gfshare_ctx_enc_getshare(ctx, (unsigned char)done, buf);
        hex_encode(&xs[done], 1, (char *)s->data);
        hex_encode(buf, secret->len, (char *)s->data + 2);
        shares[done] = s;
    }
    r = 0;
out:
    if (r != 0) {
        for (unsigned i = 0; i < done; i++) {
            secret_free(shares[i]);
            shares[i] = NULL;
        }
    }
    if (ctx != NULL)
        gfshare_ctx_free(ctx); /* overwrites its coefficients through the fill hook */
    if (buf != NULL)
        OPENSSL_secure_clear_free(buf, secret->len);
    return r;
}

/* The share text without surrounding whitespace (a trailing newline from a file or a paste is
 * forgiven; whitespace inside is not). */
static void
share_trim(const struct secret *s, const char **p, size_t *len)
{
    const char *b = (const char *)s->data, *e = b + s->len;

    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    *p = b;
    *len = (size_t)(e - b);
}

int
shamir_share_parse(const char *text, size_t len, size_t secret_len, struct secret **out,
                   struct rk_error *err)
{
    const size_t want = 1 + secret_len;
    const char *p = text, *e = text + len;
    unsigned char *bin = NULL, *b64 = NULL;
    size_t n, blen = 0, got = 0;
    int hex = 1, r = -RK_EINVAL;

    if (out == NULL)
        return rk_error_set(err, RK_EINVAL, "shamir share: no output");
    *out = NULL;
    if (secret_len == 0 || secret_len > SHAMIR_SECRET_MAX)
        return rk_error_set(err, RK_EINVAL, "shamir share: a secret of %zu bytes cannot be shared",
                            secret_len);
    if (text == NULL)
        return rk_error_set(err, RK_EINVAL, "the key share is empty");
    while (p < e && isspace((unsigned char)*p))
        p++;
    while (e > p && isspace((unsigned char)e[-1]))
        e--;
    n = (size_t)(e - p);
    if (n == 0)
        return rk_error_set(err, RK_EINVAL, "the key share is empty");
    if ((bin = OPENSSL_secure_malloc(want)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "shamir share: out of secure memory");
    for (size_t i = 0; hex && i < n; i++)
        hex = isxdigit((unsigned char)p[i]) != 0;
    /* Hex first: a base64 share (44 characters for a root key) never has the hex length. */
    if (hex && n % 2 == 0) {
        got = n / 2;
        if (got == want && hex_decode(p, n, bin, want) != 0)
            got = 0;
    } else if ((b64 = base64_decode(p, n, &blen)) != NULL) {
        got = blen;
        if (blen == want)
            memcpy(bin, b64, want);
        freezero(b64, blen + 1);
    } else {
        rk_error_set(err, RK_EINVAL, "'key' must be a valid hex or base64 string");
        goto out;
    }
    if (got != want) {
        rk_error_set(err, RK_EINVAL,
                     "the key share holds %zu bytes; a share of this key holds %zu (%zu hex "
                     "digits, or base64)",
                     got, want, 2 * want);
        goto out;
    }
    if (bin[0] == 0) {
        rk_error_set(err, RK_EINVAL,
                     "the key share is malformed: its first byte (the share number) is 0");
        goto out;
    }
    if ((*out = secret_new(2 * want)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "shamir share: out of secure memory");
        goto out;
    }
    hex_encode(bin, want, (char *)(*out)->data);
    r = 0;
out:
    OPENSSL_secure_clear_free(bin, want);
    return r;
}

int
shamir_combine(struct secret *const *shares, unsigned k, struct secret **out, struct rk_error *err)
{
    unsigned char xs[SHAMIR_MAX_SHARES];
    unsigned char *raw = NULL; /* k raw shares of slen bytes each */
    gfshare_ctx *ctx = NULL;
    struct secret *res = NULL;
    size_t hexlen = 0, slen = 0;
    int r = -RK_EINTERNAL;

    if (out == NULL)
        return rk_error_set(err, RK_EINVAL, "shamir combine: no output");
    *out = NULL;
    if (shares == NULL || k < 1 || k > SHAMIR_MAX_SHARES)
        return rk_error_set(err, RK_EINVAL, "shamir combine: need 1..%d shares, got %u",
                            SHAMIR_MAX_SHARES, k);
    for (unsigned i = 0; i < k; i++) {
        const char *p;
        size_t len;

        if (shares[i] == NULL || shares[i]->data == NULL)
            return rk_error_set(err, RK_EINVAL, "share %u is missing", i + 1);
        share_trim(shares[i], &p, &len);
        if (len < 4 || len % 2 != 0 || len > 2 + 2 * SHAMIR_SECRET_MAX)
            return rk_error_set(err, RK_EINVAL,
                                "share %u is malformed: expected an even number of hex digits "
                                "(%s%zu given)",
                                i + 1, len % 2 != 0 ? "odd count, " : "", len);
        if (i == 0) {
            hexlen = len;
            slen = len / 2 - 1;
        } else if (len != hexlen) {
            return rk_error_set(err, RK_EINVAL,
                                "share %u has %zu hex digits but share 1 has %zu: shares of one "
                                "key all have the same length",
                                i + 1, len, hexlen);
        }
        if (hex_decode(p, 2, &xs[i], 1) != 0 || xs[i] == 0)
            return rk_error_set(err, RK_EINVAL,
                                "share %u is malformed: it does not start with a share number "
                                "01..ff in hex",
                                i + 1);
        for (unsigned j = 0; j < i; j++)
            if (xs[j] == xs[i])
                return rk_error_set(err, RK_EINVAL,
                                    "shares %u and %u are the same share (number %u): give %u "
                                    "different shares",
                                    j + 1, i + 1, xs[i], k);
    }

    /* gfshare_ctx_free overwrites the context through the fill hook: it must be set. */
    (void)pthread_once(&rand_once, install_rand);
    raw = OPENSSL_secure_malloc((size_t)k * slen);
    res = secret_new(slen);
    if (raw == NULL || res == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "shamir combine: out of secure memory");
        goto out;
    }
    for (unsigned i = 0; i < k; i++) {
        const char *p;
        size_t len;

        share_trim(shares[i], &p, &len);
        if (hex_decode(p + 2, len - 2, raw + (size_t)i * slen, slen) != 0) {
            r = rk_error_set(err, RK_EINVAL, "share %u is malformed: it is not hex", i + 1);
            goto out;
        }
    }
    ctx = gfshare_ctx_init_dec(xs, k, (unsigned int)slen);
    if (ctx == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "shamir combine: libgfshare could not allocate");
        goto out;
    }
    for (unsigned i = 0; i < k; i++)
        gfshare_ctx_dec_giveshare(ctx, (unsigned char)i, raw + (size_t)i * slen);
    gfshare_ctx_dec_extract(ctx, res->data);
    *out = res;
    res = NULL;
    r = 0;
out:
    if (ctx != NULL)
        gfshare_ctx_free(ctx);
    if (raw != NULL)
        OPENSSL_secure_clear_free(raw, (size_t)k * slen);
    secret_free(res);
    return r;
}
