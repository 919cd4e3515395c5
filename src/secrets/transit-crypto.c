/* transit-crypto.c: the OpenSSL 3 half of transit (see transit.h): key generation, DER in and
 * out, sign and verify as Vault does them, the public key encodings (Vault's, PEM, JWK), export
 * and AES-256-GCM. Knows nothing of storage.
 *
 * Vault's choices kept here: ed25519 signs the input itself (no hash, no prehash); ECDSA signs
 * a digest (sha2-256 by default, whatever the curve) as DER, or as r||s padded to the curve's
 * size when the marshaling is jws; RSA signs with PSS by default, its salt as large as
 * possible when signing and any salt accepted when verifying ("auto"), or PKCS#1 v1.5.
 * Ed25519 goes through one-shot EVP_DigestSign with no digest (the only way OpenSSL 3 signs
 * with it). */
#include "secrets/transit-int.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "util/enc.h"

#define AES_KEY_LEN 32
#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16

static const char *const type_names[TRANSIT_NTYPES] = {
    [TRANSIT_AES256_GCM96] = "aes256-gcm96", [TRANSIT_ED25519] = "ed25519",
    [TRANSIT_ECDSA_P256] = "ecdsa-p256",     [TRANSIT_ECDSA_P384] = "ecdsa-p384",
    [TRANSIT_RSA_2048] = "rsa-2048",         [TRANSIT_RSA_3072] = "rsa-3072",
    [TRANSIT_RSA_4096] = "rsa-4096",
};

const char *
transit_type_name(enum transit_type type)
{
    return (unsigned)type < TRANSIT_NTYPES ? type_names[type] : "unknown";
}

int
transit_type_parse(const char *s, enum transit_type *out)
{
    for (unsigned i = 0; s != NULL && i < TRANSIT_NTYPES; i++)
        if (strcmp(s, type_names[i]) == 0) {
            *out = (enum transit_type)i;
            return 0;
        }
    return -RK_EINVAL;
}

int
transit_type_signs(enum transit_type type)
{
    return type != TRANSIT_AES256_GCM96 && (unsigned)type < TRANSIT_NTYPES;
}

static int
is_rsa(enum transit_type t)
{
    return t == TRANSIT_RSA_2048 || t == TRANSIT_RSA_3072 || t == TRANSIT_RSA_4096;
}

static int
is_ec(enum transit_type t)
{
    return t == TRANSIT_ECDSA_P256 || t == TRANSIT_ECDSA_P384;
}

static int
rsa_bits(enum transit_type t)
{
    return t == TRANSIT_RSA_2048 ? 2048 : t == TRANSIT_RSA_3072 ? 3072 : 4096;
}

/* Bytes of one coordinate (and of r, s) of the curve. */
static size_t
ec_size(enum transit_type t)
{
    return t == TRANSIT_ECDSA_P256 ? 32 : 48;
}

static int
ossl_fail(struct rk_error *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return rk_error_set(err, RK_EINTERNAL, "%s failed%s%s", what, buf[0] ? ": " : "", buf);
}

/* 1 when key is of type (algorithm and size). */
static int
pkey_is(EVP_PKEY *key, enum transit_type type)
{
    char group[32] = "";
    size_t glen = 0;

    switch (type) {
    case TRANSIT_ED25519: return EVP_PKEY_is_a(key, "ED25519");
    case TRANSIT_ECDSA_P256:
    case TRANSIT_ECDSA_P384:
        if (!EVP_PKEY_is_a(key, "EC") ||
            EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &glen) != 1)
            return 0;
        return strcmp(group, type == TRANSIT_ECDSA_P256 ? "prime256v1" : "secp384r1") == 0;
    case TRANSIT_RSA_2048:
    case TRANSIT_RSA_3072:
    case TRANSIT_RSA_4096:
        return EVP_PKEY_is_a(key, "RSA") && EVP_PKEY_get_bits(key) == rsa_bits(type);
    default: return 0;
    }
}

/* Fills k's DER private and public parts from key. */
static int
newkey_fill(struct transit_newkey *k, EVP_PKEY *key, struct rk_error *err)
{
    unsigned char *p;
    int n;

    if ((n = i2d_PrivateKey(key, NULL)) <= 0)
        return ossl_fail(err, "encoding the private key");
    if ((k->priv = secret_new((size_t)n)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    p = k->priv->data;
    if (i2d_PrivateKey(key, &p) != n)
        return ossl_fail(err, "encoding the private key");
    if ((n = i2d_PUBKEY(key, NULL)) <= 0)
        return ossl_fail(err, "encoding the public key");
    if ((k->pub = malloc((size_t)n)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    p = k->pub;
    if (i2d_PUBKEY(key, &p) != n)
        return ossl_fail(err, "encoding the public key");
    k->publen = (size_t)n;
    return 0;
}

void
transit_newkey_free(struct transit_newkey *k)
{
    if (k == NULL)
        return;
    secret_free(k->priv);
    free(k->pub);
    free(k);
}

int
transit_keygen(enum transit_type type, struct transit_newkey **out, struct rk_error *err)
{
    struct transit_newkey *k = calloc(1, sizeof(*k));
    EVP_PKEY *key = NULL;
    int r = -RK_EINTERNAL;

    *out = NULL;
    if (k == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    k->type = type;
    if (type == TRANSIT_AES256_GCM96) {
        if ((k->priv = secret_new(AES_KEY_LEN)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        if (RAND_priv_bytes(k->priv->data, AES_KEY_LEN) != 1) {
            r = ossl_fail(err, "drawing a key");
            goto out;
        }
        r = 0;
        goto out;
    }
    if (type == TRANSIT_ED25519)
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    else if (is_ec(type))
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", type == TRANSIT_ECDSA_P256 ? "P-256" : "P-384");
    else if (is_rsa(type))
        key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)rsa_bits(type));
    else {
        r = rk_error_set(err, RK_EINVAL, "unknown key type");
        goto out;
    }
    if (key == NULL) {
        r = ossl_fail(err, "generating the key");
        goto out;
    }
    r = newkey_fill(k, key, err);
out:
    EVP_PKEY_free(key);
    if (r != 0)
        transit_newkey_free(k);
    else
        *out = k;
    return r;
}

int
transit_newkey_import(enum transit_type type, const unsigned char *raw, size_t len,
                      struct transit_newkey **out, struct rk_error *err)
{
    struct transit_newkey *k = calloc(1, sizeof(*k));
    EVP_PKEY *key = NULL;
    struct secret tmp;
    int r;

    *out = NULL;
    if (k == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    k->type = type;
    if (type == TRANSIT_AES256_GCM96) {
        if (len != AES_KEY_LEN) {
            r = rk_error_set(err, RK_EINVAL, "an aes256-gcm96 key is 32 bytes");
            goto out;
        }
        r = (k->priv = secret_from(raw, len)) != NULL
                ? 0
                : rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (type == TRANSIT_ED25519) {
        if (len != 32) {
            r = rk_error_set(err, RK_EINVAL, "an ed25519 private key is 32 bytes");
            goto out;
        }
        if ((key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, len)) == NULL) {
            r = ossl_fail(err, "loading the ed25519 key");
            goto out;
        }
    } else {
        tmp.data = (unsigned char *)(uintptr_t)raw;
        tmp.len = len;
        if ((r = tk_priv_load(type, &tmp, &key, err)) != 0)
            goto out;
    }
    r = newkey_fill(k, key, err);
out:
    EVP_PKEY_free(key);
    if (r != 0)
        transit_newkey_free(k);
    else
        *out = k;
    return r;
}

int
tk_priv_load(enum transit_type type, const struct secret *priv, EVP_PKEY **out,
             struct rk_error *err)
{
    const unsigned char *p = priv->data;
    EVP_PKEY *key = d2i_AutoPrivateKey(NULL, &p, (long)priv->len);

    *out = NULL;
    ERR_clear_error();
    if (key == NULL)
        return rk_error_set(err, RK_ECORRUPT, "a stored %s key does not parse",
                            transit_type_name(type));
    if (!pkey_is(key, type)) {
        EVP_PKEY_free(key);
        return rk_error_set(err, RK_EINVAL, "the key is not of type %s", transit_type_name(type));
    }
    *out = key;
    return 0;
}

int
tk_pub_load(enum transit_type type, const unsigned char *der, size_t len, EVP_PKEY **out,
            struct rk_error *err)
{
    const unsigned char *p = der;
    EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)len);

    *out = NULL;
    ERR_clear_error();
    if (key == NULL || !pkey_is(key, type)) {
        EVP_PKEY_free(key);
        return rk_error_set(err, RK_ECORRUPT, "a stored %s public key does not parse",
                            transit_type_name(type));
    }
    *out = key;
    return 0;
}

/* ---- signing ---- */

static const struct {
    const char *vault, *ossl;
} hashes[] = {
    {"sha1", "SHA1"},         {"sha2-224", "SHA224"},   {"sha2-256", "SHA256"},
    {"sha2-384", "SHA384"},   {"sha2-512", "SHA512"},   {"sha3-224", "SHA3-224"},
    {"sha3-256", "SHA3-256"}, {"sha3-384", "SHA3-384"}, {"sha3-512", "SHA3-512"},
};

static int
md_for(const char *name, const EVP_MD **md, struct rk_error *err)
{
    if (name == NULL || name[0] == '\0')
        name = "sha2-256";
    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++)
        if (strcmp(name, hashes[i].vault) == 0) {
            *md = EVP_get_digestbyname(hashes[i].ossl);
            if (*md == NULL)
                return rk_error_set(err, RK_EINVAL, "hash algorithm %s is not available", name);
            return 0;
        }
    return rk_error_set(err, RK_EINVAL, "unsupported hash algorithm %.40s", name);
}

/* Sets RSA padding and salt on a signing or verifying context. */
static int
rsa_params(EVP_PKEY_CTX *pc, const struct transit_sign_opts *o, int verifying)
{
    int salt;

    if (o->pad == TRANSIT_PAD_PKCS1V15)
        return EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0 ? 0 : -1;
    if (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) <= 0)
        return -1;
    salt = o->salt_len == TRANSIT_SALT_HASH ? RSA_PSS_SALTLEN_DIGEST
           : o->salt_len == TRANSIT_SALT_AUTO
               ? (verifying ? RSA_PSS_SALTLEN_AUTO : RSA_PSS_SALTLEN_MAX)
               : o->salt_len;
    return EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, salt) > 0 ? 0 : -1;
}

/* DER ECDSA signature -> r||s, each padded to n bytes (JWS). */
static int
ec_der_to_raw(const unsigned char *der, size_t len, size_t n, unsigned char **out, size_t *outlen)
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *sv;
    unsigned char *b;

    if (s == NULL)
        return -1;
    ECDSA_SIG_get0(s, &r, &sv);
    if ((b = malloc(2 * n)) == NULL || BN_bn2binpad(r, b, (int)n) < 0 ||
        BN_bn2binpad(sv, b + n, (int)n) < 0) {
        free(b);
        ECDSA_SIG_free(s);
        return -1;
    }
    ECDSA_SIG_free(s);
    *out = b;
    *outlen = 2 * n;
    return 0;
}

/* r||s -> DER. */
static int
ec_raw_to_der(const unsigned char *raw, size_t len, size_t n, unsigned char **out, size_t *outlen)
{
    ECDSA_SIG *s;
    BIGNUM *r, *sv;
    unsigned char *p;
    int dl;

    if (len != 2 * n || (s = ECDSA_SIG_new()) == NULL)
        return -1;
    r = BN_bin2bn(raw, (int)n, NULL);
    sv = BN_bin2bn(raw + n, (int)n, NULL);
    if (r == NULL || sv == NULL || ECDSA_SIG_set0(s, r, sv) != 1) {
        BN_free(r);
        BN_free(sv);
        ECDSA_SIG_free(s);
        return -1;
    }
    if ((dl = i2d_ECDSA_SIG(s, NULL)) <= 0 || (*out = malloc((size_t)dl)) == NULL) {
        ECDSA_SIG_free(s);
        return -1;
    }
    p = *out;
    i2d_ECDSA_SIG(s, &p);
    *outlen = (size_t)dl;
    ECDSA_SIG_free(s);
    return 0;
}

static int
check_opts(enum transit_type type, const struct transit_sign_opts *o, const EVP_MD **md,
           struct rk_error *err)
{
    int r;

    *md = NULL;
    if (!transit_type_signs(type))
        return rk_error_set(err, RK_EINVAL, "key type %s does not support signing",
                            transit_type_name(type));
    if (type == TRANSIT_ED25519) {
        if (o->prehashed)
            return rk_error_set(err, RK_EINVAL, "ed25519 does not support prehashed input");
        return 0;
    }
    if ((r = md_for(o->hash, md, err)) != 0)
        return r;
    if (o->salt_len < TRANSIT_SALT_HASH)
        return rk_error_set(err, RK_EINVAL, "invalid salt length");
    return 0;
}

int
tk_sign(EVP_PKEY *key, enum transit_type type, const struct transit_sign_opts *o,
        const unsigned char *in, size_t len, unsigned char **sig, size_t *siglen,
        struct rk_error *err)
{
    EVP_MD_CTX *mc = NULL;
    EVP_PKEY_CTX *pc = NULL;
    const EVP_MD *md;
    unsigned char *buf = NULL;
    size_t n = 0;
    int r;

    *sig = NULL;
    *siglen = 0;
    if ((r = check_opts(type, o, &md, err)) != 0)
        return r;
    r = -RK_EINTERNAL;
    if (o->prehashed) {
        if (len != (size_t)EVP_MD_get_size(md))
            return rk_error_set(err, RK_EINVAL, "prehashed input must be %d bytes for %s",
                                EVP_MD_get_size(md), o->hash ? o->hash : "sha2-256");
        if ((pc = EVP_PKEY_CTX_new(key, NULL)) == NULL || EVP_PKEY_sign_init(pc) <= 0 ||
            EVP_PKEY_CTX_set_signature_md(pc, md) <= 0 || (is_rsa(type) && rsa_params(pc, o, 0)) ||
            EVP_PKEY_sign(pc, NULL, &n, in, len) <= 0 || (buf = malloc(n)) == NULL ||
            EVP_PKEY_sign(pc, buf, &n, in, len) <= 0) {
            r = ossl_fail(err, "signing");
            goto out;
        }
    } else {
        if ((mc = EVP_MD_CTX_new()) == NULL || EVP_DigestSignInit(mc, &pc, md, NULL, key) <= 0 ||
            (is_rsa(type) && rsa_params(pc, o, 0)) || EVP_DigestSign(mc, NULL, &n, in, len) <= 0 ||
            (buf = malloc(n)) == NULL || EVP_DigestSign(mc, buf, &n, in, len) <= 0) {
            r = ossl_fail(err, "signing");
            goto out;
        }
        pc = NULL; /* owned by mc */
    }
    if (is_ec(type) && o->marshal == TRANSIT_MARSHAL_JWS) {
        unsigned char *raw;
        size_t rl;
        if (ec_der_to_raw(buf, n, ec_size(type), &raw, &rl) != 0) {
            r = ossl_fail(err, "encoding the signature");
            goto out;
        }
        free(buf);
        buf = raw;
        n = rl;
    }
    *sig = buf;
    *siglen = n;
    buf = NULL;
    r = 0;
out:
    free(buf);
    EVP_MD_CTX_free(mc);
    EVP_PKEY_CTX_free(pc);
    return r;
}

int
tk_verify(EVP_PKEY *key, enum transit_type type, const struct transit_sign_opts *o,
          const unsigned char *in, size_t len, const unsigned char *sig, size_t siglen, int *valid,
          struct rk_error *err)
{
    EVP_MD_CTX *mc = NULL;
    EVP_PKEY_CTX *pc = NULL;
    const EVP_MD *md;
    unsigned char *der = NULL;
    int r, v;

    *valid = 0;
    if ((r = check_opts(type, o, &md, err)) != 0)
        return r;
    if (is_ec(type) && o->marshal == TRANSIT_MARSHAL_JWS) {
        size_t dl;
        if (ec_raw_to_der(sig, siglen, ec_size(type), &der, &dl) != 0)
            return 0; /* not a signature of this curve: invalid */
        sig = der;
        siglen = dl;
    }
    r = -RK_EINTERNAL;
    if (o->prehashed) {
        if (len != (size_t)EVP_MD_get_size(md)) {
            r = rk_error_set(err, RK_EINVAL, "prehashed input must be %d bytes",
                             EVP_MD_get_size(md));
            goto out;
        }
        if ((pc = EVP_PKEY_CTX_new(key, NULL)) == NULL || EVP_PKEY_verify_init(pc) <= 0 ||
            EVP_PKEY_CTX_set_signature_md(pc, md) <= 0 || (is_rsa(type) && rsa_params(pc, o, 1))) {
            r = ossl_fail(err, "verifying");
            goto out;
        }
        v = EVP_PKEY_verify(pc, sig, siglen, in, len);
    } else {
        if ((mc = EVP_MD_CTX_new()) == NULL || EVP_DigestVerifyInit(mc, &pc, md, NULL, key) <= 0 ||
            (is_rsa(type) && rsa_params(pc, o, 1))) {
            pc = NULL;
            r = ossl_fail(err, "verifying");
            goto out;
        }
        pc = NULL;
        v = EVP_DigestVerify(mc, sig, siglen, in, len);
    }
    ERR_clear_error(); /* a bad signature leaves errors behind */
    *valid = v == 1;
    r = 0;
out:
    free(der);
    EVP_MD_CTX_free(mc);
    EVP_PKEY_CTX_free(pc);
    return r;
}

/* ---- public key encodings ---- */

int
tk_pub_pem(EVP_PKEY *key, char **out, struct rk_error *err)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long n;

    *out = NULL;
    if (b == NULL || PEM_write_bio_PUBKEY(b, key) != 1) {
        BIO_free(b);
        return ossl_fail(err, "encoding the public key");
    }
    n = BIO_get_mem_data(b, &data);
    if (n <= 0 || (*out = malloc((size_t)n + 1)) == NULL) {
        BIO_free(b);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    BIO_free(b);
    return 0;
}

int
tk_pub_vault(EVP_PKEY *key, enum transit_type type, char **out, struct rk_error *err)
{
    unsigned char raw[32];
    size_t n = sizeof(raw);

    if (type != TRANSIT_ED25519)
        return tk_pub_pem(key, out, err);
    if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != sizeof(raw))
        return ossl_fail(err, "reading the public key");
    if ((*out = base64_encode(raw, n)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

/* b64url of the big-endian bytes of bn, padded to pad bytes (0: minimal), into obj[name]. */
static int
jwk_bn(json_t *obj, const char *name, const BIGNUM *bn, size_t pad)
{
    size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
    unsigned char *b = malloc(n ? n : 1);
    char *t = malloc(4 * ((n + 2) / 3) + 1);
    int r = -1;

    if (b != NULL && t != NULL && BN_bn2binpad(bn, b, (int)n) >= 0) {
        base64url_encode(b, n, t);
        r = json_object_set_new(obj, name, json_string(t));
    }
    free(b);
    free(t);
    return r;
}

int
tk_pub_jwk(EVP_PKEY *key, enum transit_type type, const char *kid, json_t **out,
           struct rk_error *err)
{
    json_t *j = json_object();
    BIGNUM *a = NULL, *b = NULL;
    int bad = j == NULL;

    *out = NULL;
    if (!bad && type == TRANSIT_ED25519) {
        unsigned char raw[32];
        char x[48];
        size_t n = sizeof(raw);
        bad = EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != 32;
        if (!bad) {
            base64url_encode(raw, n, x);
            bad = json_object_set_new(j, "kty", json_string("OKP")) ||
                  json_object_set_new(j, "crv", json_string("Ed25519")) ||
                  json_object_set_new(j, "x", json_string(x)) ||
                  json_object_set_new(j, "alg", json_string("EdDSA"));
        }
    } else if (!bad && is_ec(type)) {
        bad = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) != 1 ||
              EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b) != 1;
        bad = bad || json_object_set_new(j, "kty", json_string("EC")) ||
              json_object_set_new(j, "crv",
                                  json_string(type == TRANSIT_ECDSA_P256 ? "P-256" : "P-384")) ||
              jwk_bn(j, "x", a, ec_size(type)) || jwk_bn(j, "y", b, ec_size(type)) ||
              json_object_set_new(j, "alg",
                                  json_string(type == TRANSIT_ECDSA_P256 ? "ES256" : "ES384"));
    } else if (!bad && is_rsa(type)) {
        /* No "alg": one RSA key verifies RS256 and PS256 tokens alike. */
        bad = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) != 1 ||
              EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b) != 1;
        bad = bad || json_object_set_new(j, "kty", json_string("RSA")) || jwk_bn(j, "n", a, 0) ||
              jwk_bn(j, "e", b, 0);
    } else if (!bad) {
        BN_free(a);
        json_decref(j);
        return rk_error_set(err, RK_EINVAL, "key type %s has no public key",
                            transit_type_name(type));
    }
    bad = bad || json_object_set_new(j, "use", json_string("sig")) ||
          json_object_set_new(j, "kid", json_string(kid));
    BN_free(a);
    BN_free(b);
    if (bad) {
        json_decref(j);
        ERR_clear_error();
        return rk_error_set(err, RK_ENOMEM, "encoding a JWK failed");
    }
    *out = j;
    return 0;
}

/* ---- export ---- */

int
tk_export(enum transit_type type, const struct secret *priv, struct secret **out,
          struct rk_error *err)
{
    EVP_PKEY *key = NULL;
    BIO *b = NULL;
    char *text = NULL;
    int r;

    *out = NULL;
    if (type == TRANSIT_AES256_GCM96 || type == TRANSIT_ED25519) {
        unsigned char buf[64];
        size_t n = 32;
        if (type == TRANSIT_AES256_GCM96) {
            text = base64_encode(priv->data, priv->len);
        } else {
            /* Vault's ed25519 private key: the seed, then the public key. */
            if ((r = tk_priv_load(type, priv, &key, err)) != 0)
                return r;
            if (EVP_PKEY_get_raw_private_key(key, buf, &n) != 1 || n != 32 ||
                (n = 32, EVP_PKEY_get_raw_public_key(key, buf + 32, &n)) != 1) {
                OPENSSL_cleanse(buf, sizeof(buf));
                EVP_PKEY_free(key);
                return ossl_fail(err, "reading the ed25519 key");
            }
            text = base64_encode(buf, sizeof(buf));
            OPENSSL_cleanse(buf, sizeof(buf));
            EVP_PKEY_free(key);
        }
        if (text == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        *out = secret_from_str(text);
        freezero(text, strlen(text));
        return *out != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    if ((r = tk_priv_load(type, priv, &key, err)) != 0)
        return r;
    r = -RK_EINTERNAL;
    /* A secure-heap BIO: the PEM text is a private key. */
    if ((b = BIO_new(BIO_s_secmem())) == NULL ||
        PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL) != 1) {
        r = ossl_fail(err, "encoding the private key");
    } else {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        *out = n > 0 ? secret_from(data, (size_t)n) : NULL;
        r = *out != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    BIO_free(b);
    EVP_PKEY_free(key);
    return r;
}

/* ---- AES-256-GCM ---- */

int
tk_aes_seal(const struct secret *key, const unsigned char *pt, size_t len, unsigned char **out,
            size_t *outlen, struct rk_error *err)
{
    EVP_CIPHER_CTX *c = NULL;
    unsigned char *b;
    int n = 0, f = 0, r = -RK_EINTERNAL;

    *out = NULL;
    if (len > (size_t)INT32_MAX - GCM_NONCE_LEN - GCM_TAG_LEN)
        return rk_error_set(err, RK_ELIMIT, "plaintext too large");
    if ((b = malloc(GCM_NONCE_LEN + len + GCM_TAG_LEN)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (RAND_bytes(b, GCM_NONCE_LEN) != 1 || (c = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key->data, b) != 1 ||
        EVP_EncryptUpdate(c, b + GCM_NONCE_LEN, &n, pt, (int)len) != 1 ||
        EVP_EncryptFinal_ex(c, b + GCM_NONCE_LEN + n, &f) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, b + GCM_NONCE_LEN + n + f) != 1) {
        r = ossl_fail(err, "encrypting");
        free(b);
        goto out;
    }
    *out = b;
    *outlen = GCM_NONCE_LEN + (size_t)n + (size_t)f + GCM_TAG_LEN;
    r = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return r;
}

int
tk_aes_open(const struct secret *key, const unsigned char *in, size_t len, struct secret **pt,
            struct rk_error *err)
{
    EVP_CIPHER_CTX *c = NULL;
    struct secret *p;
    size_t ctlen;
    int n = 0, f = 0, r = -RK_EINTERNAL;

    *pt = NULL;
    if (len < GCM_NONCE_LEN + GCM_TAG_LEN || len > (size_t)INT32_MAX)
        return rk_error_set(err, RK_EINVAL, "invalid ciphertext: too short");
    ctlen = len - GCM_NONCE_LEN - GCM_TAG_LEN;
    if ((p = secret_new(ctlen)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if ((c = EVP_CIPHER_CTX_new()) == NULL ||
        EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key->data, in) != 1 ||
        EVP_DecryptUpdate(c, p->data, &n, in + GCM_NONCE_LEN, (int)ctlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN,
                            (void *)(uintptr_t)(in + len - GCM_TAG_LEN)) != 1) {
        r = ossl_fail(err, "decrypting");
        goto out;
    }
    if (EVP_DecryptFinal_ex(c, p->data + n, &f) != 1) {
        ERR_clear_error();
        r = rk_error_set(err, RK_EINVAL, "cipher: message authentication failed");
        goto out;
    }
    p->len = (size_t)n + (size_t)f;
    *pt = p;
    p = NULL;
    r = 0;
out:
    secret_free(p);
    EVP_CIPHER_CTX_free(c);
    return r;
}
