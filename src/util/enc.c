#include "util/enc.h"
#include "util/err.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";

void
hex_encode(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int
hex_digit_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
hex_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
    if (inlen != 2 * outlen)
        return -1;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hex_digit_value(in[2 * i]), lo = hex_digit_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

char *
base64_encode(const unsigned char *in, size_t len)
{
    size_t n = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(n);

    if (out == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

unsigned char *
base64_decode(const char *in, size_t inlen, size_t *outlen)
{
    unsigned char *out;
    int n;
    size_t pad = 0;

    if (inlen % 4 != 0 || inlen > (1u << 30))
        return NULL;
    for (size_t i = 0; i < inlen; i++) {
        char c = in[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/' || (c == '=' && i >= inlen - 2);
        if (!ok)
            return NULL;
    }
    if (inlen >= 1 && in[inlen - 1] == '=')
        pad++;
    if (inlen >= 2 && in[inlen - 2] == '=')
        pad++;
    if (pad == 1 && in[inlen - 2] == '=')
        return NULL;
    out = malloc(inlen / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    n = inlen ? EVP_DecodeBlock(out, (const unsigned char *)in, (int)inlen) : 0;
    if (n < 0) {
        free(out);
        return NULL;
    }
    *outlen = (size_t)n - pad;
    out[*outlen] = '\0';
    return out;
}

size_t
base64url_encode(const unsigned char *in, size_t len, char *out)
{
    size_t n;

    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    n = strlen(out);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return n;
}

/* ---- fingerprints ---- */

/* HMAC-SHA256 is fetched once (an implicit fetch on every call is slow in OpenSSL 3), and each
 * key keeps a context with the key already absorbed: a fingerprint is then a copy of that
 * context (EVP_MAC_CTX_dup only reads its source, so threads may share the key), one update
 * and one final. */
static EVP_MAC *fp_mac;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

static void
fp_fetch(void)
{
    fp_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

struct fp_key {
    atomic_int refs;
    EVP_MAC_CTX *ctx; /* keyed; never updated itself (OpenSSL keeps the key in secure memory) */
};

int
fp_key_new(const unsigned char *key, size_t len, struct fp_key **out)
{
    OSSL_PARAM params[2];
    struct fp_key *k;

    *out = NULL;
    if (key == NULL || len < 16)
        return -RK_EINVAL;
    pthread_once(&fp_once, fp_fetch);
    if (fp_mac == NULL)
        return -RK_EINTERNAL;
    if ((k = calloc(1, sizeof(*k))) == NULL)
        return -RK_ENOMEM;
    atomic_init(&k->refs, 1);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if ((k->ctx = EVP_MAC_CTX_new(fp_mac)) == NULL || EVP_MAC_init(k->ctx, key, len, params) != 1) {
        EVP_MAC_CTX_free(k->ctx);
        free(k);
        return -RK_EINTERNAL;
    }
    *out = k;
    return 0;
}

struct fp_key *
fp_key_ref(struct fp_key *k)
{
    if (k != NULL)
        atomic_fetch_add(&k->refs, 1);
    return k;
}

void
fp_key_unref(struct fp_key *k)
{
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    EVP_MAC_CTX_free(k->ctx); /* cleanses the HMAC state and the key copy */
    free(k);
}

int
fingerprint(const struct fp_key *k, const void *data, size_t len, char out[FINGERPRINT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    EVP_MAC_CTX *c;
    size_t mdlen = 0;
    int r = 0;

    out[0] = '\0';
    if (k == NULL)
        return -RK_EINVAL;
    if ((c = EVP_MAC_CTX_dup(k->ctx)) == NULL)
        return -RK_ENOMEM;
    if (EVP_MAC_update(c, data, len) != 1 || EVP_MAC_final(c, md, &mdlen, sizeof(md)) != 1 ||
        mdlen < FINGERPRINT_HEX / 2)
        r = -RK_EINTERNAL;
    EVP_MAC_CTX_free(c);
    if (r == 0) {
        memcpy(out, FINGERPRINT_PREFIX, FINGERPRINT_PREFIX_LEN);
        hex_encode(md, FINGERPRINT_HEX / 2, out + FINGERPRINT_PREFIX_LEN);
    }
    OPENSSL_cleanse(md, sizeof(md));
    return r;
}

int
fingerprint_valid(const char *s)
{
    return s != NULL && strlen(s) == FINGERPRINT_LEN &&
           memcmp(s, FINGERPRINT_PREFIX, FINGERPRINT_PREFIX_LEN) == 0 &&
           strspn(s + FINGERPRINT_PREFIX_LEN, hexdig) == FINGERPRINT_HEX;
}

uint64_t
str_hash(const char *s, size_t limit, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strnlen(s, limit < SIZE_MAX ? limit + 1 : limit), i = 0;
    uint64_t h = 0x9e3779b97f4a7c15u ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4fu), w;

    /* Eight bytes a step: store keys share long prefixes and are hashed on every lookup. */
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3u;
        h ^= h >> 32;
    }
    if (i < n) {
        w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * 0x100000001b3u;
        h ^= h >> 32;
    }
    /* Final mix (MurmurHash3's), so that the low bits and the top bits depend on every byte. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    *len = n;
    return h;
}
