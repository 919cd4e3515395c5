/* pki.c: the internal CA (records and layout in pki.h), leaf issuance and the checks of an
 * issued certificate. Key material: the CA key and a new leaf key are PEM in the secure heap
 * (BIO_s_secmem) whenever they are text; OpenSSL holds them as EVP_PKEY only while signing. */
#include "secrets/pki.h"

#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "store/barrier.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define CA_KEY_REC "pki/ca/key"
#define CA_CERT_REC "pki/ca/cert"
#define CA_TTL_DEFAULT (10LL * 365 * 86400)
#define NOT_BEFORE_SKEW 60 /* seconds: clocks of consumers a little behind still accept it */
#define DNS_NAME_MAX 253

struct key_row {
    const char *name;
    const char *alg;   /* EVP_PKEY_Q_keygen's type */
    const char *curve; /* EC: the group */
    size_t bits;       /* RSA */
};

static const struct key_row key_rows[] = {
    [PKI_KEY_ECDSA_P256] = {"ecdsa-p256", "EC", "P-256", 0},
    [PKI_KEY_RSA_2048] = {"rsa-2048", "RSA", NULL, 2048},
    [PKI_KEY_RSA_3072] = {"rsa-3072", "RSA", NULL, 3072},
    [PKI_KEY_ED25519] = {"ed25519", "ED25519", NULL, 0},
};

#define NKEY_ROWS (sizeof(key_rows) / sizeof(key_rows[0]))

int
pki_key_type_parse(const char *name, enum pki_key_type *out)
{
    for (size_t i = 0; i < NKEY_ROWS; i++)
        if (name != NULL && strcmp(name, key_rows[i].name) == 0) {
            *out = (enum pki_key_type)i;
            return 0;
        }
    return -RK_EINVAL;
}

const char *
pki_key_type_name(enum pki_key_type t)
{
    return (size_t)t < NKEY_ROWS ? key_rows[t].name : "unknown";
}

struct evp_pkey_st *
pki_keygen(enum pki_key_type t)
{
    const struct key_row *k;

    if ((size_t)t >= NKEY_ROWS)
        return NULL;
    k = &key_rows[t];
    if (k->curve != NULL)
        return EVP_PKEY_Q_keygen(NULL, NULL, k->alg, k->curve);
    if (k->bits != 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, k->alg, k->bits);
    return EVP_PKEY_Q_keygen(NULL, NULL, k->alg);
}

/* The digest to sign with: none for Ed25519 (one-shot), SHA-256 otherwise. */
static const EVP_MD *
sign_md(EVP_PKEY *k)
{
    return EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
}

int
pki_key_to_pem(struct evp_pkey_st *k, struct secret **out, struct rk_error *err)
{
    BIO *b = BIO_new(BIO_s_secmem());
    BUF_MEM *bm = NULL;
    int r = -RK_EINTERNAL;

    if (b == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 ||
        BIO_get_mem_ptr(b, &bm) != 1 || bm == NULL) {
        rk_error_set(err, RK_EINTERNAL, "cannot encode the private key");
        goto out;
    }
    if ((*out = secret_from(bm->data, bm->length)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    r = 0;
out:
    BIO_free(b);
    ERR_clear_error();
    return r;
}

static EVP_PKEY *
key_from_pem(const struct secret *pem)
{
    BIO *b = BIO_new_mem_buf(pem->data, (int)pem->len);
    EVP_PKEY *k = NULL;

    if (b != NULL)
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    ERR_clear_error();
    return k;
}

static X509 *
cert_from_pem(const char *pem, size_t len)
{
    BIO *b;
    X509 *x = NULL;

    if (pem == NULL || len > INT32_MAX || (b = BIO_new_mem_buf(pem, (int)len)) == NULL)
        return NULL;
    x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    ERR_clear_error();
    return x;
}

/* x as PEM (malloc'd, NUL-terminated), or NULL. */
static char *
cert_to_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    BUF_MEM *bm = NULL;
    char *s = NULL;

    if (b != NULL && PEM_write_bio_X509(b, x) == 1 && BIO_get_mem_ptr(b, &bm) == 1 &&
        (s = malloc(bm->length + 1)) != NULL) {
        memcpy(s, bm->data, bm->length);
        s[bm->length] = '\0';
    }
    BIO_free(b);
    return s;
}

static int64_t
asn1_time_epoch(const ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

void
pki_serial_of(const struct x509_st *x, char *out, size_t len)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

    snprintf(out, len, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* Adds extension nid with value (openssl's config syntax) to x, issued by issuer. */
static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
        return -1;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* A random positive 128-bit serial. */
static int
set_serial(X509 *x)
{
    unsigned char b[16];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *ai = NULL;
    int r = -1;

    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x40); /* positive, and always 16 bytes long */
    if ((bn = BN_bin2bn(b, sizeof(b), NULL)) != NULL &&
        (ai = BN_to_ASN1_INTEGER(bn, NULL)) != NULL && X509_set_serialNumber(x, ai) == 1)
        r = 0;
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return r;
}

static int
set_validity(X509 *x, int64_t now, int64_t not_after)
{
    return X509_time_adj_ex(X509_getm_notBefore(x), 0, -NOT_BEFORE_SKEW, (time_t *)&now) != NULL &&
                   X509_time_adj_ex(X509_getm_notAfter(x), 0, (long)(not_after - now),
                                    (time_t *)&now) != NULL
               ? 0
               : -1;
}

static int
set_cn(X509_NAME *n, const char *cn)
{
    return X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                      0) == 1
               ? 0
               : -1;
}

/* 1 if name is an IP address (v4 or v6). */
static int
is_ip(const char *name)
{
    ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);

    ERR_clear_error();
    if (ip == NULL)
        return 0;
    ASN1_OCTET_STRING_free(ip);
    return 1;
}

/* A DNS name we put in a SAN: letters, digits, '-', '.', an optional leading "*.". */
static int
dns_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > DNS_NAME_MAX || name[0] == '.' || name[n - 1] == '.')
        return 0;
    if (strncmp(name, "*.", 2) == 0)
        name += 2;
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.') ||
            (*p == '.' && p[1] == '.'))
            return 0;
    return 1;
}

static int
add_gen_name(GENERAL_NAMES *gens, const char *name)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_OCTET_STRING *ip;
    ASN1_IA5STRING *s;

    if (g == NULL)
        return -1;
    if ((ip = a2i_IPADDRESS(name)) != NULL) {
        GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
    } else {
        ERR_clear_error();
        if ((s = ASN1_IA5STRING_new()) == NULL || ASN1_STRING_set(s, name, -1) != 1) {
            ASN1_IA5STRING_free(s);
            GENERAL_NAME_free(g);
            return -1;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
    }
    if (sk_GENERAL_NAME_push(gens, g) <= 0) {
        GENERAL_NAME_free(g);
        return -1;
    }
    return 0;
}

int
pki_issue_check(const struct pki_issue_req *req, struct rk_error *err)
{
    if (req->common_name == NULL || req->common_name[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "a common name is required");
    if (req->nalt > PKI_NAMES_MAX)
        return rk_error_set(err, RK_EINVAL, "more than %d alternative names", PKI_NAMES_MAX);
    if (!is_ip(req->common_name) && !dns_name_ok(req->common_name))
        return rk_error_set(err, RK_EINVAL, "common name: not a DNS name or an IP address (%.80s)",
                            req->common_name);
    for (size_t i = 0; i < req->nalt; i++)
        if (!is_ip(req->alt_names[i]) && !dns_name_ok(req->alt_names[i]))
            return rk_error_set(err, RK_EINVAL,
                                "alt_names: not a DNS name or an IP address (%.80s)",
                                req->alt_names[i]);
    return 0;
}

/* ---- the CA records ---- */

/* The CA's key, decoded: OpenSSL's PEM decoder costs about a millisecond, more than the
 * signature, so the last key decoded is kept, named by the SHA-256 of its PEM (the record is
 * still read from the barrier every time, so a new or imported CA key is seen at once). */
static pthread_mutex_t ca_key_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char ca_key_digest[SHA256_DIGEST_LENGTH];
static EVP_PKEY *ca_key_cached;

/* The key in pem (a new reference), from the cache when it holds this PEM's key. */
static EVP_PKEY *
ca_key_decode(const struct secret *pem)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    EVP_PKEY *k = NULL;

    SHA256(pem->data, pem->len, d);
    pthread_mutex_lock(&ca_key_mu);
    if (ca_key_cached != NULL && CRYPTO_memcmp(d, ca_key_digest, sizeof(d)) == 0 &&
        EVP_PKEY_up_ref(ca_key_cached) == 1)
        k = ca_key_cached;
    pthread_mutex_unlock(&ca_key_mu);
    if (k != NULL)
        return k;
    if ((k = key_from_pem(pem)) == NULL)
        return NULL;
    pthread_mutex_lock(&ca_key_mu);
    if (EVP_PKEY_up_ref(k) == 1) {
        EVP_PKEY_free(ca_key_cached);
        ca_key_cached = k;
        memcpy(ca_key_digest, d, sizeof(d));
    }
    pthread_mutex_unlock(&ca_key_mu);
    OPENSSL_cleanse(d, sizeof(d));
    return k;
}

/* Reads the CA: certificate (and its PEM) and, when key is not NULL, its key. */
static int
ca_load(struct barrier *br, X509 **cert, char **pem, EVP_PKEY **key, struct rk_error *err)
{
    struct secret *c = NULL, *k = NULL;
    int r;

    if ((r = barrier_get(br, CA_CERT_REC, &c, NULL, err)) != 0) {
        if (r == -RK_ENOTFOUND)
            rk_error_set(err, RK_ENOTFOUND,
                         "no internal CA in this store: run 'rekey pki init-ca'");
        return r;
    }
    r = -RK_ECORRUPT;
    if ((*cert = cert_from_pem((const char *)c->data, c->len)) == NULL) {
        rk_error_set(err, RK_ECORRUPT, "the stored CA certificate does not parse");
        goto out;
    }
    if (pem != NULL && (*pem = strndup((const char *)c->data, c->len)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (key != NULL) {
        if ((r = barrier_get(br, CA_KEY_REC, &k, NULL, err)) != 0) {
            if (r == -RK_ENOTFOUND)
                r = rk_error_set(err, RK_ECORRUPT, "the CA's key record is missing");
            goto out;
        }
        if ((*key = ca_key_decode(k)) == NULL) {
            r = rk_error_set(err, RK_ECORRUPT, "the stored CA key does not parse");
            goto out;
        }
    }
    r = 0;
out:
    if (r != 0) {
        X509_free(*cert);
        *cert = NULL;
        if (pem != NULL) {
            free(*pem);
            *pem = NULL;
        }
    }
    secret_free(c);
    secret_free(k);
    return r;
}

/* A self-signed CA certificate for key. */
static X509 *
ca_make(EVP_PKEY *key, const char *cn, int64_t now, int64_t ttl)
{
    X509 *x = X509_new();

    if (x == NULL || X509_set_version(x, 2) != 1 || set_serial(x) != 0 ||
        set_validity(x, now, now + ttl) != 0 || set_cn(X509_get_subject_name(x), cn) != 0 ||
        X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_set_pubkey(x, key) != 1 ||
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") != 0 ||
        X509_sign(x, key, sign_md(key)) <= 0) {
        X509_free(x);
        ERR_clear_error();
        return NULL;
    }
    return x;
}

int
pki_ca_init(struct barrier *br, const struct pki_ca_opts *o, struct rk_error *err)
{
    struct secret *old = NULL, *kpem = NULL;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    char *pem = NULL;
    struct barrier_txn *t = NULL;
    int64_t now = time_now();
    int r;

    r = barrier_get(br, CA_CERT_REC, &old, NULL, err);
    secret_free(old);
    if (r == 0 && !o->replace)
        return rk_error_set(err, RK_EEXISTS,
                            "this store has an internal CA already (replace it with --replace)");
    if (r != 0 && r != -RK_ENOTFOUND)
        return r;
    rk_error_clear(err);
    if (o->cert_pem != NULL) {
        if (o->key_pem == NULL)
            return rk_error_set(err, RK_EINVAL, "an imported CA needs its private key");
        if ((x = cert_from_pem(o->cert_pem, strlen(o->cert_pem))) == NULL) {
            r = rk_error_set(err, RK_EINVAL, "the CA certificate is not a PEM certificate");
            goto out;
        }
        if ((key = key_from_pem(o->key_pem)) == NULL) {
            r = rk_error_set(err, RK_EINVAL, "the CA key is not a PEM private key");
            goto out;
        }
        if (X509_check_ca(x) == 0) {
            r = rk_error_set(err, RK_EINVAL, "the certificate is not a CA (basicConstraints)");
            goto out;
        }
        if (X509_check_private_key(x, key) != 1) {
            ERR_clear_error();
            r = rk_error_set(err, RK_EINVAL, "the CA certificate does not match the key");
            goto out;
        }
    } else {
        const char *cn = o->common_name != NULL ? o->common_name : "rekey internal CA";
        int64_t ttl = o->ttl > 0 ? o->ttl : CA_TTL_DEFAULT;

        if ((key = pki_keygen(o->key_type)) == NULL || (x = ca_make(key, cn, now, ttl)) == NULL) {
            r = rk_error_set(err, RK_EINTERNAL, "cannot make the CA (%s)",
                             pki_key_type_name(o->key_type));
            goto out;
        }
    }
    if ((r = pki_key_to_pem(key, &kpem, err)) != 0)
        goto out;
    if ((pem = cert_to_pem(x)) == NULL || (t = barrier_txn_new(br)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (barrier_txn_put(t, CA_KEY_REC, kpem->data, kpem->len) != 0 ||
        barrier_txn_put(t, CA_CERT_REC, pem, strlen(pem)) != 0) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    r = barrier_txn_commit(t, NULL, err);
out:
    barrier_txn_free(t);
    free(pem);
    secret_free(kpem);
    EVP_PKEY_free(key);
    X509_free(x);
    return r;
}

int
pki_ca_pem(struct barrier *br, char **pem, struct rk_error *err)
{
    X509 *x = NULL;
    int r = ca_load(br, &x, pem, NULL, err);

    X509_free(x);
    return r;
}

void
pki_issued_clear(struct pki_issued *out)
{
    if (out == NULL)
        return;
    free(out->certificate);
    free(out->chain);
    free(out->ca);
    secret_free(out->private_key);
    memset(out, 0, sizeof(*out));
}

/* The leaf for key, signed by ca/cakey. */
static X509 *
leaf_make(const struct pki_issue_req *req, EVP_PKEY *key, X509 *ca, EVP_PKEY *cakey, int64_t now,
          int64_t not_after)
{
    X509 *x = X509_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    int cn_listed = 0;

    if (x == NULL || gens == NULL)
        goto fail;
    for (size_t i = 0; i < req->nalt; i++)
        if (strcmp(req->alt_names[i], req->common_name) == 0)
            cn_listed = 1;
    /* Clients ignore the CN when there is a SAN: the CN goes into the SAN too. */
    if (!cn_listed && add_gen_name(gens, req->common_name) != 0)
        goto fail;
    for (size_t i = 0; i < req->nalt; i++)
        if (add_gen_name(gens, req->alt_names[i]) != 0)
            goto fail;
    if (X509_set_version(x, 2) != 1 || set_serial(x) != 0 || set_validity(x, now, not_after) != 0 ||
        set_cn(X509_get_subject_name(x), req->common_name) != 0 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca)) != 1 || X509_set_pubkey(x, key) != 1 ||
        add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, ca, NID_key_usage,
                rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature") !=
            0 ||
        add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth") != 0 ||
        add_ext(x, ca, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, ca, NID_authority_key_identifier, "keyid:always") != 0 ||
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_REPLACE) != 1 ||
        X509_sign(x, cakey, sign_md(cakey)) <= 0)
        goto fail;
    GENERAL_NAMES_free(gens);
    return x;
fail:
    GENERAL_NAMES_free(gens);
    X509_free(x);
    ERR_clear_error();
    return NULL;
}

int
pki_issue(struct barrier *br, const struct pki_issue_req *req, struct pki_issued *out,
          struct rk_error *err)
{
    X509 *ca = NULL, *x = NULL;
    EVP_PKEY *cakey = NULL, *key = NULL;
    char *capem = NULL;
    int64_t now = req->now > 0 ? req->now : time_now(), not_after, ca_end;
    size_t clen, alen;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = pki_issue_check(req, err)) != 0)
        return r;
    if (req->ttl <= 0)
        return rk_error_set(err, RK_EINVAL, "ttl must be positive");
    if ((r = ca_load(br, &ca, &capem, &cakey, err)) != 0)
        return r;
    /* A leaf never outlives its CA. */
    not_after = now + req->ttl;
    ca_end = asn1_time_epoch(X509_get0_notAfter(ca));
    if (ca_end > 0 && not_after > ca_end)
        not_after = ca_end;
    r = -RK_EINTERNAL;
    if (not_after <= now) {
        r = rk_error_set(err, RK_EINVAL, "the internal CA has expired");
        goto out;
    }
    if ((key = pki_keygen(req->key_type)) == NULL) {
        rk_error_set(err, RK_EINTERNAL, "cannot make a %s key", pki_key_type_name(req->key_type));
        goto out;
    }
    if ((x = leaf_make(req, key, ca, cakey, now, not_after)) == NULL) {
        rk_error_set(err, RK_EINTERNAL, "cannot sign the certificate");
        goto out;
    }
    if ((r = pki_key_to_pem(key, &out->private_key, err)) != 0)
        goto out;
    r = -RK_ENOMEM;
    if ((out->certificate = cert_to_pem(x)) == NULL) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    clen = strlen(out->certificate);
    alen = strlen(capem);
    if ((out->chain = malloc(clen + alen + 1)) == NULL) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(out->chain, out->certificate, clen);
    memcpy(out->chain + clen, capem, alen + 1);
    out->ca = capem;
    capem = NULL;
    pki_serial_of(x, out->serial, sizeof(out->serial));
    out->not_after = asn1_time_epoch(X509_get0_notAfter(x));
    r = 0;
out:
    if (r != 0)
        pki_issued_clear(out);
    free(capem);
    X509_free(ca);
    X509_free(x);
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    return r;
}

int
pki_cert_info(const char *pem, size_t len, int64_t *not_after, char *serial, size_t serial_len,
              struct rk_error *err)
{
    X509 *x = cert_from_pem(pem, len);

    if (x == NULL)
        return rk_error_set(err, RK_EINVAL, "not a PEM certificate");
    if (not_after != NULL)
        *not_after = asn1_time_epoch(X509_get0_notAfter(x));
    if (serial != NULL)
        pki_serial_of(x, serial, serial_len);
    X509_free(x);
    return 0;
}

int
pki_check(const char *cert_pem, size_t cert_len, const struct secret *key_pem, const char *ca_pem,
          size_t ca_len, const char *common_name, const char *const *names, size_t n, int64_t now,
          struct rk_error *err)
{
    X509 *x = NULL, *ca = NULL;
    EVP_PKEY *key = NULL;
    X509_STORE *st = NULL;
    X509_STORE_CTX *sc = NULL;
    int r = -RK_EREJECTED;

    if (now <= 0)
        now = time_now();
    if ((x = cert_from_pem(cert_pem, cert_len)) == NULL) {
        rk_error_set(err, RK_EREJECTED, "the certificate does not parse");
        goto out;
    }
    if (key_pem == NULL || (key = key_from_pem(key_pem)) == NULL) {
        rk_error_set(err, RK_EREJECTED, "the private key does not parse");
        goto out;
    }
    if (X509_check_private_key(x, key) != 1) {
        ERR_clear_error();
        rk_error_set(err, RK_EREJECTED, "the certificate does not match its private key");
        goto out;
    }
    if ((ca = cert_from_pem(ca_pem, ca_len)) == NULL) {
        rk_error_set(err, RK_EREJECTED, "the issuer's certificate does not parse");
        goto out;
    }
    if ((st = X509_STORE_new()) == NULL || (sc = X509_STORE_CTX_new()) == NULL ||
        X509_STORE_add_cert(st, ca) != 1 || X509_STORE_CTX_init(sc, st, x, NULL) != 1) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    X509_STORE_CTX_set_time(sc, 0, (time_t)now);
    /* The issuer given is the anchor even when it is not a root (an ACME CA's intermediate:
     * its chain does not carry the root). */
    X509_STORE_CTX_set_flags(sc, X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(sc) != 1) {
        rk_error_set(err, RK_EREJECTED, "the certificate does not chain to its issuer: %s",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
        goto out;
    }
    for (size_t i = 0; i <= n; i++) {
        const char *name = i < n ? names[i] : common_name;
        int ok;

        if (name == NULL)
            continue;
        ok = is_ip(name) ? X509_check_ip_asc(x, name, 0) : X509_check_host(x, name, 0, 0, NULL);
        if (ok != 1) {
            rk_error_set(err, RK_EREJECTED, "the certificate does not cover %.100s", name);
            goto out;
        }
    }
    r = 0;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(sc);
    X509_STORE_free(st);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    return r;
}

/* ---- roles ---- */

#define ROLE_REC_MAX (PKI_ROLE_NAME_MAX + 16)
#define ROLE_DOMAINS_MAX 100
#define ROLE_TTL_DEFAULT (30LL * 86400)

void
pki_role_clear(struct pki_role *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ndomains; i++)
        free(r->allowed_domains[i]);
    free(r->allowed_domains);
    memset(r, 0, sizeof(*r));
}

static int
role_add_domain(struct pki_role *r, const char *d, size_t n, struct rk_error *err)
{
    char **v;

    while (n > 0 && *d == ' ')
        d++, n--;
    while (n > 0 && d[n - 1] == ' ')
        n--;
    if (n == 0)
        return 0;
    if (r->ndomains >= ROLE_DOMAINS_MAX)
        return rk_error_set(err, RK_EINVAL, "more than %d allowed_domains", ROLE_DOMAINS_MAX);
    if ((v = realloc(r->allowed_domains, (r->ndomains + 1) * sizeof(*v))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r->allowed_domains = v;
    if ((v[r->ndomains] = strndup(d, n)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (!dns_name_ok(v[r->ndomains]))
        return rk_error_set(err, RK_EINVAL, "allowed_domains: not a DNS name (%.80s)",
                            v[r->ndomains++]);
    r->ndomains++;
    return 0;
}

static int
json_duration(const json_t *v, const char *key, int64_t *out, struct rk_error *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) &&
        (json_string_length(v) == 0 ||
         duration_parse(json_string_value(v), json_string_length(v), out, err) == 0))
        return 0;
    return rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected a duration (720h, 3600)", key);
}

static int
json_flag(const json_t *o, const char *key, int *out)
{
    const json_t *v = json_object_get(o, key);

    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v) &&
        (strcmp(json_string_value(v), "true") == 0 || strcmp(json_string_value(v), "false") == 0)) {
        *out = strcmp(json_string_value(v), "true") == 0;
        return 0;
    }
    return -1;
}

int
pki_role_from_json(const char *json, size_t len, struct pki_role *out, struct rk_error *err)
{
    json_error_t je;
    json_t *o = json_loadb(json, len, 0, &je), *v;
    const char *flags[] = {"allow_subdomains", "allow_any_name", "allow_ip_sans"};
    int *dst[3];
    int r = -RK_EINVAL;

    memset(out, 0, sizeof(*out));
    out->allow_ip_sans = 1;
    dst[0] = &out->allow_subdomains;
    dst[1] = &out->allow_any_name;
    dst[2] = &out->allow_ip_sans;
    if (!json_is_object(o)) {
        rk_error_set(err, RK_EINVAL, "a role is a JSON object");
        goto out;
    }
    v = json_object_get(o, "allowed_domains");
    if (json_is_string(v)) {
        const char *s = json_string_value(v), *c;
        for (;; s = c + 1) {
            c = strchr(s, ',');
            if ((r = role_add_domain(out, s, c != NULL ? (size_t)(c - s) : strlen(s), err)) != 0)
                goto out;
            if (c == NULL)
                break;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                r = rk_error_set(err, RK_EINVAL, "allowed_domains: expected strings");
                goto out;
            }
            if ((r = role_add_domain(out, json_string_value(e), json_string_length(e), err)) != 0)
                goto out;
        }
    } else if (v != NULL && !json_is_null(v)) {
        r = rk_error_set(err, RK_EINVAL, "allowed_domains: expected a list or a string");
        goto out;
    }
    for (size_t i = 0; i < 3; i++)
        if (json_flag(o, flags[i], dst[i]) != 0) {
            r = rk_error_set(err, RK_EINVAL, "invalid \"%s\": expected a boolean", flags[i]);
            goto out;
        }
    v = json_object_get(o, "key_type");
    if (json_is_string(v) && pki_key_type_parse(json_string_value(v), &out->key_type) != 0) {
        /* Vault's spelling: key_type ec|rsa|ed25519 with key_bits */
        const char *kt = json_string_value(v);
        json_int_t bits = json_integer_value(json_object_get(o, "key_bits"));
        if (strcmp(kt, "ec") == 0 && (bits == 0 || bits == 256))
            out->key_type = PKI_KEY_ECDSA_P256;
        else if (strcmp(kt, "rsa") == 0 && (bits == 0 || bits == 2048))
            out->key_type = PKI_KEY_RSA_2048;
        else if (strcmp(kt, "rsa") == 0 && bits == 3072)
            out->key_type = PKI_KEY_RSA_3072;
        else {
            r = rk_error_set(err, RK_EINVAL,
                             "key_type: expected one of %s (or ec, rsa with "
                             "key_bits 2048/3072)",
                             PKI_KEY_TYPE_CHOICES);
            goto out;
        }
    }
    if ((r = json_duration(json_object_get(o, "ttl"), "ttl", &out->ttl, err)) != 0 ||
        (r = json_duration(json_object_get(o, "max_ttl"), "max_ttl", &out->max_ttl, err)) != 0)
        goto out;
    r = 0;
out:
    json_decref(o);
    if (r != 0)
        pki_role_clear(out);
    return r;
}

char *
pki_role_to_json(const struct pki_role *r)
{
    json_t *d = json_array(), *o;
    char *s = NULL;

    for (size_t i = 0; d != NULL && i < r->ndomains; i++)
        json_array_append_new(d, json_string(r->allowed_domains[i]));
    o = json_pack("{s:o?, s:b, s:b, s:b, s:s, s:I, s:I}", "allowed_domains", d, "allow_subdomains",
                  r->allow_subdomains, "allow_any_name", r->allow_any_name, "allow_ip_sans",
                  r->allow_ip_sans, "key_type", pki_key_type_name(r->key_type), "ttl",
                  (json_int_t)r->ttl, "max_ttl", (json_int_t)r->max_ttl);
    if (o != NULL)
        s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static int
role_key(const char *name, char *key, size_t len, struct rk_error *err)
{
    size_t n = strlen(name);

    if (n == 0 || n > PKI_ROLE_NAME_MAX || strchr(name, '/') != NULL)
        return rk_error_set(err, RK_EINVAL, "invalid role name");
    snprintf(key, len, "pki/role/%s", name);
    return 0;
}

int
pki_role_put(struct barrier *br, const char *name, const struct pki_role *r, struct rk_error *err)
{
    char key[ROLE_REC_MAX + 16], *s;
    int rc;

    if ((rc = role_key(name, key, sizeof(key), err)) != 0)
        return rc;
    if ((s = pki_role_to_json(r)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    rc = barrier_put(br, key, s, strlen(s), err);
    free(s);
    return rc;
}

int
pki_role_get(struct barrier *br, const char *name, struct pki_role *out, struct rk_error *err)
{
    char key[ROLE_REC_MAX + 16];
    struct secret *v = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = role_key(name, key, sizeof(key), err)) != 0)
        return rc;
    if ((rc = barrier_get(br, key, &v, NULL, err)) != 0) {
        if (rc == -RK_ENOTFOUND)
            rk_error_set(err, RK_ENOTFOUND, "unknown role %.100s", name);
        return rc;
    }
    rc = pki_role_from_json((const char *)v->data, v->len, out, err);
    secret_free(v);
    if (rc != 0)
        return rk_error_set(err, RK_ECORRUPT, "stored role %.100s: %s", name, err->msg);
    return 0;
}

int
pki_role_allows(const struct pki_role *r, const char *name, struct rk_error *err)
{
    size_t n = strlen(name);

    if (is_ip(name)) {
        if (r->allow_ip_sans)
            return 0;
        return rk_error_set(err, RK_EPERM, "IP SANs are not allowed by this role (%.80s)", name);
    }
    if (r->allow_any_name)
        return 0;
    for (size_t i = 0; i < r->ndomains; i++) {
        const char *d = r->allowed_domains[i];
        size_t dl = strlen(d);

        if (strcasecmp(name, d) == 0)
            return 0;
        if (r->allow_subdomains && n > dl + 1 && name[n - dl - 1] == '.' &&
            strcasecmp(name + n - dl, d) == 0)
            return 0;
    }
    return rk_error_set(err, RK_EPERM, "%.100s is not allowed by this role", name);
}
