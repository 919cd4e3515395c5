/* pki.h: the internal certificate authority kept in the store, and the checks of an issued
 * certificate. One CA per store, its private key only in the barrier and the secure heap:
 *
 *   pki/ca/key          the CA's private key (PKCS#8 PEM), read into the secure heap only
 *   pki/ca/cert         the CA's certificate (PEM), public
 *   pki/role/<name>     a role for pki/issue/<name> (JSON: allowed_domains, allow_subdomains,
 *                       allow_any_name, allow_ip_sans, key_type, ttl, max_ttl)
 *
 * Leaf certificates carry: subject CN, SAN (DNS and IP), basicConstraints CA:FALSE (critical),
 * keyUsage digitalSignature (+ keyEncipherment for RSA) critical, extendedKeyUsage serverAuth
 * (+ clientAuth), subjectKeyIdentifier, authorityKeyIdentifier, a random 128-bit serial (top
 * bit clear: a positive INTEGER of 16 bytes) and notBefore one minute in the past (clock skew).
 * The leaf's private key is made here and handed back in the secure heap; it is never logged
 * and never part of an error message. */
#ifndef REKEY_PKI_H
#define REKEY_PKI_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/secret.h"

struct barrier;

enum pki_key_type {
    PKI_KEY_ECDSA_P256 = 0,
    PKI_KEY_RSA_2048,
    PKI_KEY_RSA_3072,
    PKI_KEY_ED25519,
};

#define PKI_KEY_TYPE_CHOICES "ecdsa-p256|rsa-2048|rsa-3072|ed25519"
#define PKI_SERIAL_HEX_MAX 80 /* uppercase hex of up to 20 bytes, with room */
#define PKI_NAMES_MAX 100     /* subject alternative names per certificate */

/* The key type named name ("ecdsa-p256", "rsa-2048", "rsa-3072", "ed25519"). Returns 0 or
 * -RK_EINVAL. */
int pki_key_type_parse(const char *name, enum pki_key_type *out);

/* The name of a key type. */
const char *pki_key_type_name(enum pki_key_type t);

/* How the CA is made: generated (key_type, common_name, ttl) or imported (cert_pem + key_pem:
 * the certificate must be a CA (basicConstraints CA:TRUE) and match the key). */
struct pki_ca_opts {
    const char *common_name; /* default "rekey internal CA" */
    enum pki_key_type key_type;
    int64_t ttl;                  /* seconds; default 10 years */
    const char *cert_pem;         /* import: the CA certificate (NULL: generate) */
    const struct secret *key_pem; /* import: its private key */
    int replace;                  /* 1: replace an existing CA (leaves already issued stay valid
                                   * only as long as their consumers trust the old CA too) */
};

/* Creates the store's CA. Returns 0, -RK_EEXISTS (a CA exists and !replace), -RK_EINVAL (an
 * import that is not a CA, does not parse or does not match its key), -RK_ESEALED, a store
 * error or -RK_ENOMEM. The message never holds key material. */
int pki_ca_init(struct barrier *br, const struct pki_ca_opts *o, struct rk_error *err);

/* The CA's certificate as PEM into *pem (malloc'd, the caller frees). Returns 0,
 * -RK_ENOTFOUND (no CA: "run rekey pki init-ca") or a store error. */
int pki_ca_pem(struct barrier *br, char **pem, struct rk_error *err);

/* What to issue. */
struct pki_issue_req {
    const char *common_name;
    const char *const *alt_names; /* DNS names and IP addresses (v4, v6) */
    size_t nalt;
    enum pki_key_type key_type;
    int64_t ttl; /* seconds (> 0); capped at the CA's own notAfter */
    int64_t now; /* seconds; 0 = time_now() */
};

/* An issued certificate. Free with pki_issued_clear. */
struct pki_issued {
    char *certificate;          /* PEM of the leaf */
    char *chain;                /* PEM of the leaf followed by the CA (what a server presents) */
    char *ca;                   /* PEM of the CA */
    struct secret *private_key; /* PKCS#8 PEM, secure heap */
    char serial[PKI_SERIAL_HEX_MAX]; /* uppercase hex, as `openssl x509 -noout -serial` */
    int64_t not_after;               /* seconds */
};

void pki_issued_clear(struct pki_issued *out);

/* Checks req's names without issuing: a common name, at most PKI_NAMES_MAX names, each a DNS
 * name (letters, digits, '-', '.', an optional leading "*.") or an IP address. Returns 0 or
 * -RK_EINVAL naming the bad one. */
int pki_issue_check(const struct pki_issue_req *req, struct rk_error *err);

/* Issues a leaf certificate signed by the store's CA with a new key of req->key_type. Returns
 * 0, -RK_ENOTFOUND (no CA), -RK_EINVAL (no common name, a bad name, too many names, ttl <= 0),
 * -RK_ESEALED, a store error, -RK_ENOMEM or -RK_EINTERNAL. */
int pki_issue(struct barrier *br, const struct pki_issue_req *req, struct pki_issued *out,
              struct rk_error *err);

/* Facts about a PEM certificate: notAfter (seconds) and the serial (uppercase hex); either output
 * may be NULL. Returns 0 or -RK_EINVAL (not a PEM certificate). */
int pki_cert_info(const char *pem, size_t len, int64_t *not_after, char *serial, size_t serial_len,
                  struct rk_error *err);

/* A new key of type t (OpenSSL's EVP_PKEY; free with EVP_PKEY_free), or NULL. */
struct evp_pkey_st;
struct evp_pkey_st *pki_keygen(enum pki_key_type t);

/* k as PKCS#8 PEM into *out (the secure heap). Returns 0, -RK_ENOMEM or -RK_EINTERNAL. */
int pki_key_to_pem(struct evp_pkey_st *k, struct secret **out, struct rk_error *err);

/* The serial of a DER/X509 in the same form as pki_cert_info (for the TLS check). */
struct x509_st;
void pki_serial_of(const struct x509_st *x, char *out, size_t len);

/* Checks an issued certificate before it is used: the certificate parses, matches key_pem,
 * chains to ca_pem (the trust anchor) at time now, is valid at now (notBefore <= now <
 * notAfter), and covers common_name and every name in names[0..n) (DNS by X509_check_host,
 * IPs by X509_check_ip_asc). Returns 0 or -RK_EREJECTED with the first failing point in err
 * (never key material). now = 0: time_now(). */
int pki_check(const char *cert_pem, size_t cert_len, const struct secret *key_pem,
              const char *ca_pem, size_t ca_len, const char *common_name, const char *const *names,
              size_t n, int64_t now, struct rk_error *err);

/* ---- roles: what pki/issue/<role> may issue (Vault's PKI role, the settings rekey keeps) ---- */

#define PKI_ROLE_NAME_MAX 128

struct pki_role {
    char **allowed_domains; /* malloc'd strings */
    size_t ndomains;
    int allow_subdomains; /* "x.example.com" under allowed domain "example.com" */
    int allow_any_name;
    int allow_ip_sans; /* default 1 */
    enum pki_key_type key_type;
    int64_t ttl, max_ttl; /* seconds; 0: 30 days / the CA's own */
};

void pki_role_clear(struct pki_role *r);

/* Parses a role from Vault's JSON body (allowed_domains as an array or a comma-separated
 * string, allow_subdomains, allow_any_name, allow_ip_sans, key_type + key_bits or rekey's
 * key_type names, ttl and max_ttl as durations or seconds). Returns 0 or -RK_EINVAL. */
int pki_role_from_json(const char *json, size_t len, struct pki_role *out, struct rk_error *err);

/* The role as JSON text (malloc'd). NULL when out of memory. */
char *pki_role_to_json(const struct pki_role *r);

/* Stores / reads the role `name` (record pki/role/<name>). Returns 0, -RK_ENOTFOUND (get), a
 * store error or -RK_ENOMEM. */
int pki_role_put(struct barrier *br, const char *name, const struct pki_role *r,
                 struct rk_error *err);
int pki_role_get(struct barrier *br, const char *name, struct pki_role *out, struct rk_error *err);

/* 0 when role may issue for name (a DNS name or IP), else -RK_EPERM naming it. */
int pki_role_allows(const struct pki_role *r, const char *name, struct rk_error *err);

#endif
