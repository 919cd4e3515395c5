/* certificate.c: kind "certificate": an X.509 certificate and the private key rekey made for
 * it, issued by the store's internal CA (secrets/pki.h) — over ACME later — and renewed
 * renew_before its expiry. The version's fields:
 *   certificate   the leaf (PEM)
 *   private_key   its key (PKCS#8 PEM), made here; leaves the store only through the entry's
 *                 file hooks and `kv get`
 *   chain         the leaf followed by its issuer (what a server presents)
 *   ca            the issuer's certificate (what a client trusts); over ACME the chain's
 *                 issuers as the CA sent them (the intermediate: the root is not in the chain)
 * create issues; test proves the certificate matches its key, chains to the issuer, covers every
 * name and is valid now; status puts the due time at notAfter - renew_before. That the consumer
 * serves the new certificate is the `tls` hook's check (hooks/hook-tls.c) in the reload list. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotators/rotator.h"
#include "secrets/acme.h"
#include "secrets/kv.h"
#include "secrets/pki.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define NAMES_TEXT_MAX 8192

static const struct inv_setting certificate_settings[] = {
    {.name = "common_name", .type = IS_STRING, .flags = IS_REQUIRED, .help = "the subject's CN"},
    {.name = "alt_names", .type = IS_LIST, .help = "subject alternative names"},
    {.name = "key_type",
     .type = IS_ENUM,
     .def = "ecdsa-p256",
     .choices = PKI_KEY_TYPE_CHOICES,
     .help = "the private key's type"},
    {.name = "ttl", .type = IS_DURATION, .def = "90d", .help = "the certificate's lifetime"},
    {.name = "renew_before",
     .type = IS_DURATION,
     .def = "30d",
     .help = "how long before expiry it is renewed"},
    {.name = "issuer",
     .type = IS_ENUM,
     .def = "internal",
     .choices = "internal|acme",
     .help = "who signs it"},
    {.name = "acme_directory", .type = IS_URL, .help = "the ACME directory URL"},
    {.name = "acme_ca_file",
     .type = IS_FILE,
     .help = "PEM bundle trusted for the ACME directory's TLS (default: the system's CAs)"},
    {.name = "acme_email", .type = IS_STRING, .help = "the ACME account's contact address"},
    {.name = "acme_challenge",
     .type = IS_ENUM,
     .def = "http-01",
     .choices = "http-01|dns-01",
     .help = "how the CA checks that the names are ours"},
    {.name = "acme_http01_listen",
     .type = IS_STRING,
     .def = "0.0.0.0:80",
     .help = "ADDR:PORT where rekey answers http-01 challenges while an order is open"},
    {.name = "acme_dns01_hook",
     .type = IS_FILE,
     .help = "program run as PROGRAM set|clear _acme-challenge.DOMAIN with the TXT value on "
             "stdin (dns-01)"},
    {.name = "acme_timeout",
     .type = IS_DURATION,
     .def = "2m",
     .max = 3600,
     .help = "how long one ACME order may take before the renewal is retried later"},
    {0},
};

/* The entry's alt_names (stored comma-joined) split into names[], pointing into *buf (the
 * caller frees both). */
static int
split_names(const struct inv_secret *s, char **buf, const char ***names, size_t *n,
            struct rk_error *err)
{
    const char *text = inv_param(s, "alt_names");
    size_t cap = 1;

    *buf = NULL;
    *names = NULL;
    *n = 0;
    if (text == NULL || text[0] == '\0')
        return 0;
    if (strlen(text) > NAMES_TEXT_MAX)
        return rk_error_set(err, RK_ECONFIG, "alt_names: too long");
    for (const char *p = text; *p != '\0'; p++)
        cap += *p == ',';
    if ((*buf = strdup(text)) == NULL || (*names = calloc(cap, sizeof(**names))) == NULL) {
        free(*buf);
        *buf = NULL;
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    for (char *p = *buf, *q;; p = q + 1) {
        if ((q = strchr(p, ',')) != NULL)
            *q = '\0';
        if (*p != '\0')
            (*names)[(*n)++] = p;
        if (q == NULL)
            break;
    }
    return 0;
}

static enum pki_key_type
key_type_of(const struct inv_secret *s)
{
    enum pki_key_type t = PKI_KEY_ECDSA_P256;

    pki_key_type_parse(inv_param(s, "key_type"), &t);
    return t;
}

static int
issuer_is_internal(const struct inv_secret *s)
{
    const char *issuer = inv_param(s, "issuer");

    return issuer == NULL || strcmp(issuer, "internal") == 0;
}

/* Issues over ACME (secrets/acme.h): the CA decides the lifetime, ttl only sets the schedule. */
static int
issue_acme(struct rot_ctx *c, const struct pki_issue_req *req, struct pki_issued *is,
           struct rk_error *err)
{
    const struct inv_secret *s = c->secret;
    const char *ch = inv_param(s, "acme_challenge");
    struct acme_opts o;
    int64_t timeout = 0;
    int r;

    memset(&o, 0, sizeof(o));
    inv_param_duration(s, "acme_timeout", 120, &timeout);
    o.directory = inv_param(s, "acme_directory");
    o.ca_file = inv_param(s, "acme_ca_file");
    o.email = inv_param(s, "acme_email");
    o.challenge = ch != NULL && strcmp(ch, "dns-01") == 0 ? ACME_DNS01 : ACME_HTTP01;
    o.http01_listen = inv_param(s, "acme_http01_listen");
    o.dns01_hook = inv_param(s, "acme_dns01_hook");
    o.common_name = req->common_name;
    o.names = req->alt_names;
    o.nnames = req->nalt;
    o.key_type = req->key_type;
    o.timeout_s = timeout;
    r = acme_issue(kv_barrier(c->kv), &o, is, err);
    if (r == -RK_EUNAVAILABLE) {
        char why[RK_ERRMSG_MAX];

        /* Said plainly: nothing changed, the engine (daemon) retries after its backoff. */
        snprintf(why, sizeof(why), "%s", err->msg);
        rk_error_set(err, RK_EUNAVAILABLE, "ACME CA unavailable, the current certificate stays: %s",
                     why);
    }
    return r;
}

static int
certificate_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    const struct inv_secret *s = c->secret;
    struct pki_issue_req req;
    struct pki_issued is;
    char *buf = NULL;
    const char **names = NULL;
    int64_t ttl = 0;
    int r;

    memset(&is, 0, sizeof(is));
    if ((r = split_names(s, &buf, &names, &req.nalt, err)) != 0)
        return r;
    inv_param_duration(s, "ttl", 90 * 86400, &ttl);
    req.common_name = inv_param(s, "common_name");
    req.alt_names = names;
    req.key_type = key_type_of(s);
    req.ttl = ttl;
    req.now = 0;
    if (issuer_is_internal(s))
        r = pki_issue(kv_barrier(c->kv), &req, &is, err);
    else
        r = issue_acme(c, &req, &is, err);
    if (r != 0)
        goto out;
    if ((r = rot_fields_put(out, "certificate", is.certificate, strlen(is.certificate), 0, err)) !=
            0 ||
        (r = rot_fields_set(out, "private_key", is.private_key, 0, err)) != 0)
        goto out;
    is.private_key = NULL; /* taken by out */
    if ((r = rot_fields_put(out, "chain", is.chain, strlen(is.chain), 0, err)) != 0 ||
        (r = rot_fields_put(out, "ca", is.ca, strlen(is.ca), 0, err)) != 0)
        goto out;
out:
    pki_issued_clear(&is);
    free(names);
    free(buf);
    return r;
}

/* The new certificate matches its key, chains to its issuer, covers every name, is valid now. */
static int
certificate_test(struct rot_ctx *c, struct rk_error *err)
{
    const struct secret *cert, *key, *ca;
    char *buf = NULL;
    const char **names = NULL;
    size_t n = 0;
    int r;

    if (c->new_fields == NULL || (cert = rot_fields_get(c->new_fields, "certificate")) == NULL ||
        (key = rot_fields_get(c->new_fields, "private_key")) == NULL ||
        (ca = rot_fields_get(c->new_fields, "ca")) == NULL)
        return rk_error_set(err, RK_EREJECTED,
                            "the candidate lacks certificate, private_key or ca");
    if ((r = split_names(c->secret, &buf, &names, &n, err)) != 0)
        return r;
    r = pki_check((const char *)cert->data, cert->len, key, (const char *)ca->data, ca->len,
                  inv_param(c->secret, "common_name"), names, n, 0, err);
    free(names);
    free(buf);
    return r;
}

/* Due at notAfter - renew_before of the current certificate. */
static int
certificate_status(const struct inv_secret *s, const struct rot_status_in *in, struct rot_due *out,
                   struct rk_error *err)
{
    struct secret *pem = NULL;
    int64_t not_after = 0, rb = 0, ttl = 0;
    char serial[PKI_SERIAL_HEX_MAX], when[40];
    struct rk_error e = {0};
    int r;

    if ((r = in->read_current(in->read_arg, "certificate", &pem, &e)) != 0) {
        if (r == -RK_ENOTFOUND)
            return 0; /* never issued: due now (the engine's rule) */
        rk_error_set(err, -r, "%s", e.msg);
        return r;
    }
    r = pki_cert_info((const char *)pem->data, pem->len, &not_after, serial, sizeof(serial), err);
    secret_free(pem);
    if (r != 0)
        return r;
    inv_param_duration(s, "renew_before", 30 * 86400, &rb);
    inv_param_duration(s, "ttl", 90 * 86400, &ttl);
    out->expires_at = not_after;
    out->next_due = not_after - rb;
    if (ttl > rb)
        out->period = ttl - rb;
    time_format_rfc3339(not_after * 1000000, when, sizeof(when));
    snprintf(out->detail, sizeof(out->detail), "certificate expires %s, serial %s", when, serial);
    return 0;
}

static int
certificate_defaults(struct inv_secret *s, struct rk_error *err)
{
    int64_t ttl = 0, rb = 0;

    if (s->every != 0)
        return 0;
    /* No schedule given: renew when the renewal window opens. */
    inv_param_duration(s, "ttl", 0, &ttl);
    inv_param_duration(s, "renew_before", 0, &rb);
    if (ttl <= rb)
        return rk_error_set(err, RK_ECONFIG,
                            "renew_before must be shorter than ttl when every is not set");
    s->every = ttl - rb;
    return 0;
}

static int
certificate_check(const struct inv_secret *s, struct rk_error *err)
{
    const char *issuer = inv_param(s, "issuer");
    struct pki_issue_req req;
    char *buf = NULL;
    const char **names = NULL;
    int r;

    if (issuer != NULL && strcmp(issuer, "acme") == 0) {
        const char *ch = inv_param(s, "acme_challenge");
        const char *alt = inv_param(s, "alt_names"), *cn = inv_param(s, "common_name");
        int wildcard =
            (alt != NULL && strstr(alt, "*.") != NULL) || (cn != NULL && strncmp(cn, "*.", 2) == 0);

        if (inv_param(s, "acme_directory") == NULL)
            return rk_error_set(err, RK_ECONFIG,
                                "missing required key 'acme_directory' (the ACME directory URL, "
                                "needed with issuer: acme)");
        if (ch != NULL && strcmp(ch, "dns-01") == 0 && inv_param(s, "acme_dns01_hook") == NULL)
            return rk_error_set(err, RK_ECONFIG,
                                "missing required key 'acme_dns01_hook' (the program that sets "
                                "and clears the TXT record, needed with acme_challenge: dns-01)");
        if (wildcard && (ch == NULL || strcmp(ch, "dns-01") != 0))
            return rk_error_set(err, RK_ECONFIG,
                                "acme_challenge: a wildcard name needs dns-01 (http-01 cannot "
                                "prove it)");
    }
    /* The names as issuance will check them, so a typo fails at load, not at 3 a.m. */
    memset(&req, 0, sizeof(req));
    if ((r = split_names(s, &buf, &names, &req.nalt, err)) != 0)
        return r;
    req.common_name = inv_param(s, "common_name");
    req.alt_names = names;
    req.ttl = 1;
    r = pki_issue_check(&req, err);
    if (r != 0)
        r = rk_error_set(err, RK_ECONFIG, "%s", err->msg);
    free(names);
    free(buf);
    return r;
}

static void
certificate_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
                 void *arg)
{
    int64_t ttl = 0, rb = 0;
    char a[32], b[32];

    (void)inv;
    inv_param_duration(s, "ttl", 0, &ttl);
    inv_param_duration(s, "renew_before", 0, &rb);
    if (ttl > 0 && rb >= ttl) {
        duration_format(rb, a, sizeof(a));
        duration_format(ttl, b, sizeof(b));
        report(arg, "error",
               "renew_before %s is not shorter than ttl %s: the certificate would be renewed as "
               "soon as it is issued",
               a, b);
    } else if (ttl > 0 && s->every > ttl - rb) {
        duration_format(s->every, a, sizeof(a));
        duration_format(ttl - rb, b, sizeof(b));
        report(arg, "error",
               "every %s is longer than ttl - renew_before = %s: renewal would come %s", a, b,
               s->every >= ttl ? "after the certificate expires"
                               : "later than the renew_before window allows");
    }
}

/* Every certificate entry is a pki role, named by its path's last segment (pki/issue/NAME
 * issues the entry's names exactly: api/routes-pki.c). */
static const char *
certificate_role(const struct inv_secret *s, const char *engine)
{
    const char *slash = strrchr(s->path, '/');

    return strcmp(engine, "pki") == 0 && slash != NULL ? slash + 1 : NULL;
}

const struct rotator_ops rotator_certificate = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "certificate",
    .create = certificate_create,
    .test = certificate_test,
    .status = certificate_status,
    .settings = certificate_settings,
    .default_field = "certificate",
    .fixed_field = 1,
    .defaults = certificate_defaults,
    .check = certificate_check,
    .lint = certificate_lint,
    .role = certificate_role,
};
