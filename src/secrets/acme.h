/* acme.h: an ACME client (RFC 8555) that obtains one certificate for the certificate kind
 * (rotators/certificate.c). It speaks JWS with an ES256 account key over util/httpc.h.
 *
 * The account: one per directory URL, kept in the store behind the barrier:
 *   acme/account/<sha256(directory) first 16 hex>/key   the account's P-256 key (PKCS#8 PEM)
 *   acme/account/<sha256(directory) first 16 hex>/url   the account URL the CA gave (kid)
 * The key is made and stored before the account is registered, so a crash in between leaves a
 * key the CA later answers for with the same account ("onlyReturnExisting" is not needed:
 * newAccount with a known key returns the existing account). The account key never leaves the
 * store and this module; nothing it logs, returns or hands to a child holds it.
 *
 * Challenges: http-01 is answered by a small HTTP server (libmicrohttpd) that runs on the
 * configured address only while the order is open; dns-01 runs a program (the entry's hook) as
 *   PROGRAM set|clear RECORD        RECORD = "_acme-challenge.<domain>" (no trailing dot)
 * with the TXT value (base64url SHA-256 of the key authorization: public by design) on stdin
 * and in REKEY_ACME_TXT, the domain in REKEY_ACME_DOMAIN; its environment holds nothing else
 * but PATH. The leaf's private key is made here, put in the secure heap and sent nowhere: the
 * CA sees a CSR only.
 *
 * Outcomes: anything the CA says that is not success (a problem document, 429 rateLimited, 5xx,
 * no answer, a challenge it found invalid, an order that does not finish before the deadline)
 * is -RK_EUNAVAILABLE: the engine keeps the current certificate and retries with backoff. */
#ifndef REKEY_ACME_H
#define REKEY_ACME_H

#include <stddef.h>
#include <stdint.h>

#include "secrets/pki.h"
#include "util/err.h"

struct barrier;

enum acme_challenge {
    ACME_HTTP01 = 0,
    ACME_DNS01,
};

struct acme_opts {
    const char *directory; /* the directory URL (https://…; http:// for tests only) */
    const char *ca_file;   /* PEM bundle trusted for the directory's TLS; NULL: system CAs */
    const char *email;     /* the account's contact; NULL: none */
    enum acme_challenge challenge;
    const char *http01_listen; /* http-01: "ADDR:PORT" ("[v6]:PORT") to answer on */
    const char *dns01_hook;    /* dns-01: the program that sets and clears the TXT record */
    const char *common_name;
    const char *const *names; /* the alternative names (DNS, IP); the CN is added if absent */
    size_t nnames;
    enum pki_key_type key_type;
    int64_t timeout_s; /* the whole order; 0 = 120 s */
};

/* Obtains a certificate for o's names from the ACME CA: account (stored or registered), order,
 * challenges, a new key and its CSR, finalize, download. out->certificate is the leaf,
 * out->chain the leaf and its issuers as the CA sent them, out->ca the issuers (the chain
 * without the leaf), out->private_key the new key (secure heap). Returns 0, -RK_EUNAVAILABLE
 * (the CA refused, failed or did not answer, the http-01 address cannot be bound now, the dns-01
 * hook failed; the message says what was said), -RK_EINVAL (bad options: no directory, no
 * names, a listen address that does not parse, no dns-01 hook), -RK_ESEALED, a store error or
 * -RK_ENOMEM. */
int acme_issue(struct barrier *br, const struct acme_opts *o, struct pki_issued *out,
               struct rk_error *err);

/* ---- the parsers of the CA's answers (acme-msg.c; fuzz/acme-fuzzer.c runs them) ---- */

struct acme_dir {
    char *new_nonce, *new_account, *new_order; /* malloc'd */
};

struct acme_order {
    char status[32];
    char *finalize;    /* malloc'd */
    char *certificate; /* malloc'd; NULL until the order is valid */
    char **authz;      /* malloc'd URLs */
    size_t nauthz;
};

struct acme_authz {
    char status[32];
    char domain[256]; /* the identifier's value */
    int wildcard;
    char chall_status[32];
    char *chall_url; /* malloc'd; the challenge of the requested type, NULL when absent */
    char token[128]; /* base64url characters only */
    char error[200]; /* the challenge's problem ("TYPE: DETAIL"), "" when none */
};

/* Each parses a JSON answer body text[0..len) (need not be NUL-terminated). Returns 0 or
 * -RK_EINVAL naming what is missing or malformed (a URL that is not http(s), a token with other
 * characters than base64url's, too many authorizations). The outputs are cleared with
 * acme_dir_clear / acme_order_clear / acme_authz_clear, also after an error. */
int acme_parse_directory(const char *text, size_t len, struct acme_dir *out, struct rk_error *err);
int acme_parse_order(const char *text, size_t len, struct acme_order *out, struct rk_error *err);
int acme_parse_authz(const char *text, size_t len, const char *chall_type, struct acme_authz *out,
                     struct rk_error *err);
void acme_dir_clear(struct acme_dir *d);
void acme_order_clear(struct acme_order *o);
void acme_authz_clear(struct acme_authz *a);

/* A problem document (RFC 7807) in text[0..len) as "TYPE: DETAIL" into out (the ACME URN
 * prefix removed, control characters replaced, truncated to outlen), or "" when text is not
 * one. Never fails. */
void acme_problem(const char *text, size_t len, char *out, size_t outlen);

/* Splits a PEM chain (application/pem-certificate-chain) into the first certificate (*leaf) and
 * the rest (*rest, "" when there is none); both malloc'd. Returns 0 or -RK_EINVAL (no PEM
 * certificate, more than 10). */
int acme_split_chain(const char *pem, size_t len, char **leaf, char **rest, struct rk_error *err);

#endif
