/* libFuzzer target: the parsers of an ACME CA's answers (secrets/acme-msg.c): the directory, an
 * order, an authorization (both challenge types), a problem document and a PEM chain. The first
 * byte picks the parser; the rest is the body. Whatever parses must hold only what the parser
 * promises (http(s) URLs, base64url tokens, NUL-terminated fields within their buffers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/acme.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
url_ok(const char *u)
{
    if (u != NULL && strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rk_error err = {0};
    const char *text = (const char *)data + 1;
    size_t len;

    if (size < 1)
        return 0;
    len = size - 1;
    switch (data[0] % 5) {
    case 0: {
        struct acme_dir d;

        if (acme_parse_directory(text, len, &d, &err) == 0) {
            url_ok(d.new_nonce);
            url_ok(d.new_account);
            url_ok(d.new_order);
            if (d.new_nonce == NULL || d.new_account == NULL || d.new_order == NULL)
                abort();
        }
        acme_dir_clear(&d);
        break;
    }
    case 1: {
        struct acme_order o;

        if (acme_parse_order(text, len, &o, &err) == 0) {
            url_ok(o.finalize);
            url_ok(o.certificate);
            for (size_t i = 0; i < o.nauthz; i++)
                url_ok(o.authz[i]);
            if (strlen(o.status) >= sizeof(o.status))
                abort();
        }
        acme_order_clear(&o);
        break;
    }
    case 2:
    case 3: {
        struct acme_authz a;

        if (acme_parse_authz(text, len, data[0] % 5 == 2 ? "http-01" : "dns-01", &a, &err) == 0) {
            url_ok(a.chall_url);
            if (a.chall_url != NULL && strspn(a.token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
                                                       "rstuvwxyz0123456789-_") != strlen(a.token))
                abort();
        }
        acme_authz_clear(&a);
        break;
    }
    default: {
        char prob[64], *leaf = NULL, *rest = NULL;

        acme_problem(text, len, prob, sizeof(prob));
        if (strlen(prob) >= sizeof(prob))
            abort();
        if (acme_split_chain(text, len, &leaf, &rest, &err) == 0 &&
            (leaf == NULL || rest == NULL || strstr(leaf, "-----BEGIN CERTIFICATE-----") != leaf))
            abort();
        free(leaf);
        free(rest);
        break;
    }
    }
    return 0;
}
