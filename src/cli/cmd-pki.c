/* rekey pki init-ca / rekey pki ca: the store's internal CA (secrets/pki.h). init-ca makes one
 * (a new key, ecdsa-p256 unless --key-type says otherwise) or imports one from PEM files; the
 * key goes into the barrier and is never printed. `pki ca` prints the CA certificate, which is
 * public: consumers and clients trust it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/secret-input.h"
#include "secrets/pki.h"
#include "util/fsutil.h"
#include "util/parse.h"

#define PEM_MAX (64 * 1024)

static const struct cli_opt init_ca_opts[] = {
    {"common-name", OPT_VALUE, "CN", "the CA's subject CN (default \"rekey internal CA\")"},
    {"key-type", OPT_VALUE, "TYPE", "ecdsa-p256 (default), rsa-2048, rsa-3072 or ed25519"},
    {"ttl", OPT_VALUE, "DURATION", "the CA's lifetime (default 3650d)"},
    {"cert-file", OPT_VALUE, "FILE", "import: the CA certificate (PEM)"},
    {"key-file", OPT_VALUE, "FILE", "import: the CA's private key (PEM; read, never echoed)"},
    {"replace", OPT_FLAG, NULL, "replace an existing CA"},
    {NULL, OPT_FLAG, NULL, NULL},
};

static int
exec_init_ca(struct cli_ctx *ctx, int argc, char **argv)
{
    struct pki_ca_opts o;
    const char *kt = cli_opt(ctx, "key-type"), *ttl = cli_opt(ctx, "ttl");
    const char *cf = cli_opt(ctx, "cert-file"), *kf = cli_opt(ctx, "key-file");
    struct secret *key = NULL;
    char *cert = NULL, *pem = NULL, serial[PKI_SERIAL_HEX_MAX];
    size_t clen = 0;
    int64_t not_after = 0;
    int r, rc = CLI_ERROR;

    (void)argc;
    (void)argv;
    memset(&o, 0, sizeof(o));
    o.common_name = cli_opt(ctx, "common-name");
    o.replace = cli_opt(ctx, "replace") != NULL;
    if (kt != NULL && pki_key_type_parse(kt, &o.key_type) != 0)
        return cli_usage_error(ctx, "--key-type: expected one of %s", PKI_KEY_TYPE_CHOICES);
    if (ttl != NULL && duration_parse(ttl, strlen(ttl), &o.ttl, &ctx->err) != 0)
        return cli_usage_error(ctx, "--ttl: %s", ctx->err.msg);
    if ((cf == NULL) != (kf == NULL))
        return cli_usage_error(ctx, "--cert-file and --key-file go together");
    if (cf != NULL) {
        if ((r = fs_read_all(cf, PEM_MAX, &cert, &clen, &ctx->err)) != 0)
            return cli_fail(ctx, r);
        if ((r = cli_read_secret_file(kf, PEM_MAX, 0, &key, &ctx->err)) != 0) {
            rc = cli_fail(ctx, r);
            goto out;
        }
        o.cert_pem = cert;
        o.key_pem = key;
    }
    if ((r = pki_ca_init(ctx->br, &o, &ctx->err)) != 0) {
        rc = cli_fail(ctx, r);
        goto out;
    }
    if ((r = pki_ca_pem(ctx->br, &pem, &ctx->err)) != 0 ||
        (r = pki_cert_info(pem, strlen(pem), &not_after, serial, sizeof(serial), &ctx->err)) != 0) {
        rc = cli_fail(ctx, r);
        goto out;
    }
    printf("Internal CA %s (serial %s); its key stays in the store. 'rekey pki ca' prints its "
           "certificate.\n",
           cf != NULL ? "imported" : "created", serial);
    rc = CLI_OK;
out:
    free(pem);
    free(cert);
    secret_free(key);
    return rc;
}

static int
exec_ca(struct cli_ctx *ctx, int argc, char **argv)
{
    char *pem = NULL;
    int r;

    (void)argc;
    (void)argv;
    if ((r = pki_ca_pem(ctx->br, &pem, &ctx->err)) != 0)
        return cli_fail(ctx, r);
    fputs(pem, stdout);
    free(pem);
    return CLI_OK;
}

const struct cli_cmd cmd_pki_init_ca = {
    .name = "pki init-ca",
    .args = "",
    .summary = "create (or import) the store's internal certificate authority",
    .help = "Certificates with issuer: internal are signed by this CA. Its key is made here (or "
            "read from --key-file) and kept in the store; it is never printed.",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE,
    .opts = init_ca_opts,
    .exec = exec_init_ca,
};

const struct cli_cmd cmd_pki_ca = {
    .name = "pki ca",
    .args = "",
    .summary = "print the internal CA's certificate (PEM)",
    .min_args = 0,
    .max_args = 0,
    .needs = CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_NO_AUDIT,
    .exec = exec_ca,
};
