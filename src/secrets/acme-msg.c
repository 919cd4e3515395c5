/* acme-msg.c: the parsers of an ACME CA's answers (acme.h): the directory, an order, an
 * authorization, a problem document and a PEM chain. They take bytes from the network and
 * nothing else (no store, no I/O), so fuzz/acme-fuzzer.c runs them alone. Whatever they keep is
 * public (URLs, tokens, statuses); nothing here ever sees a key. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/acme.h"

#define AUTHZ_MAX 100 /* pki.h's PKI_NAMES_MAX names, one authorization each */
#define CHAIN_MAX 10

static json_t *
load_object(const char *text, size_t len, struct rk_error *err)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

    if (j == NULL) {
        rk_error_set(err, RK_EINVAL, "the CA's answer is not JSON (line %d: %s)", je.line, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        rk_error_set(err, RK_EINVAL, "the CA's answer is not a JSON object");
        return NULL;
    }
    return j;
}

/* A copy of o[key] when it is an http(s) URL of sane length, else NULL. */
static char *
url_dup(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    size_t n;

    if (s == NULL)
        return NULL;
    n = strlen(s);
    if (n == 0 || n > 1000 || (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return NULL;
    return strdup(s);
}

/* Copies o[key] (a short printable string) into out; 0, or -1 when absent or unfit. */
static int
word_copy(const json_t *o, const char *key, char *out, size_t outlen)
{
    const char *s = json_string_value(json_object_get(o, key));
    size_t n;

    out[0] = '\0';
    if (s == NULL || (n = strlen(s)) == 0 || n >= outlen)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
            return -1;
    memcpy(out, s, n + 1);
    return 0;
}

static int
is_b64url(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return 0;
    return 1;
}

void
acme_dir_clear(struct acme_dir *d)
{
    if (d == NULL)
        return;
    free(d->new_nonce);
    free(d->new_account);
    free(d->new_order);
    memset(d, 0, sizeof(*d));
}

int
acme_parse_directory(const char *text, size_t len, struct acme_dir *out, struct rk_error *err)
{
    json_t *j;
    int r = -RK_EINVAL;

    memset(out, 0, sizeof(*out));
    if ((j = load_object(text, len, err)) == NULL)
        return -RK_EINVAL;
    out->new_nonce = url_dup(j, "newNonce");
    out->new_account = url_dup(j, "newAccount");
    out->new_order = url_dup(j, "newOrder");
    if (out->new_nonce == NULL || out->new_account == NULL || out->new_order == NULL) {
        rk_error_set(err, RK_EINVAL,
                     "the ACME directory lacks newNonce, newAccount or newOrder URLs");
        goto out;
    }
    r = 0;
out:
    json_decref(j);
    return r;
}

void
acme_order_clear(struct acme_order *o)
{
    if (o == NULL)
        return;
    free(o->finalize);
    free(o->certificate);
    for (size_t i = 0; i < o->nauthz; i++)
        free(o->authz[i]);
    free(o->authz);
    memset(o, 0, sizeof(*o));
}

int
acme_parse_order(const char *text, size_t len, struct acme_order *out, struct rk_error *err)
{
    json_t *j, *az, *v;
    size_t i;
    int r = -RK_EINVAL;

    memset(out, 0, sizeof(*out));
    if ((j = load_object(text, len, err)) == NULL)
        return -RK_EINVAL;
    if (word_copy(j, "status", out->status, sizeof(out->status)) != 0) {
        rk_error_set(err, RK_EINVAL, "the order has no status");
        goto out;
    }
    if ((out->finalize = url_dup(j, "finalize")) == NULL) {
        rk_error_set(err, RK_EINVAL, "the order has no finalize URL");
        goto out;
    }
    out->certificate = url_dup(j, "certificate");
    az = json_object_get(j, "authorizations");
    if (!json_is_array(az) || json_array_size(az) > AUTHZ_MAX) {
        rk_error_set(err, RK_EINVAL, "the order's authorizations are not a list of at most %d",
                     AUTHZ_MAX);
        goto out;
    }
    if (json_array_size(az) > 0 &&
        (out->authz = calloc(json_array_size(az), sizeof(*out->authz))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(az, i, v)
    {
        json_t *wrap = json_pack("{sO}", "u", v);
        char *u = wrap != NULL ? url_dup(wrap, "u") : NULL;

        json_decref(wrap);
        if (u == NULL) {
            rk_error_set(err, RK_EINVAL, "authorization %zu is not a URL", i);
            goto out;
        }
        out->authz[out->nauthz++] = u;
    }
    r = 0;
out:
    json_decref(j);
    return r;
}

void
acme_authz_clear(struct acme_authz *a)
{
    if (a == NULL)
        return;
    free(a->chall_url);
    memset(a, 0, sizeof(*a));
}

int
acme_parse_authz(const char *text, size_t len, const char *chall_type, struct acme_authz *out,
                 struct rk_error *err)
{
    json_t *j, *id, *chs, *c;
    size_t i;
    int r = -RK_EINVAL;

    memset(out, 0, sizeof(*out));
    if ((j = load_object(text, len, err)) == NULL)
        return -RK_EINVAL;
    id = json_object_get(j, "identifier");
    if (word_copy(j, "status", out->status, sizeof(out->status)) != 0 || !json_is_object(id) ||
        word_copy(id, "value", out->domain, sizeof(out->domain)) != 0) {
        rk_error_set(err, RK_EINVAL, "the authorization has no status or identifier");
        goto out;
    }
    out->wildcard = json_is_true(json_object_get(j, "wildcard"));
    chs = json_object_get(j, "challenges");
    if (!json_is_array(chs)) {
        rk_error_set(err, RK_EINVAL, "the authorization for %s has no challenges", out->domain);
        goto out;
    }
    json_array_foreach(chs, i, c)
    {
        const char *type = json_string_value(json_object_get(c, "type"));

        if (type == NULL || strcmp(type, chall_type) != 0)
            continue;
        if ((out->chall_url = url_dup(c, "url")) == NULL ||
            word_copy(c, "token", out->token, sizeof(out->token)) != 0 || !is_b64url(out->token) ||
            word_copy(c, "status", out->chall_status, sizeof(out->chall_status)) != 0) {
            rk_error_set(err, RK_EINVAL, "the %s challenge for %s lacks a URL, token or status",
                         chall_type, out->domain);
            goto out;
        }
        if (json_is_object(json_object_get(c, "error"))) {
            char *e = json_dumps(json_object_get(c, "error"), JSON_COMPACT);

            if (e != NULL)
                acme_problem(e, strlen(e), out->error, sizeof(out->error));
            free(e);
        }
        break;
    }
    r = 0;
out:
    json_decref(j);
    return r;
}

/* Copies s into out[*k..) with control characters replaced, up to outlen - 1. */
static void
put_text(char *out, size_t outlen, size_t *k, const char *s)
{
    for (; s != NULL && *s != '\0' && *k + 1 < outlen; s++)
        out[(*k)++] = (unsigned char)*s < ' ' || *s == 0x7f ? '?' : *s;
    out[*k] = '\0';
}

void
acme_problem(const char *text, size_t len, char *out, size_t outlen)
{
    static const char urn[] = "urn:ietf:params:acme:error:";
    json_error_t je;
    json_t *j;
    const char *type, *detail;
    size_t k = 0;

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (text == NULL || (j = json_loadb(text, len, 0, &je)) == NULL)
        return;
    type = json_string_value(json_object_get(j, "type"));
    detail = json_string_value(json_object_get(j, "detail"));
    if (type != NULL) {
        if (strncmp(type, urn, sizeof(urn) - 1) == 0)
            type += sizeof(urn) - 1;
        put_text(out, outlen, &k, type);
        if (detail != NULL)
            put_text(out, outlen, &k, ": ");
    }
    put_text(out, outlen, &k, detail);
    json_decref(j);
}

int
acme_split_chain(const char *pem, size_t len, char **leaf, char **rest, struct rk_error *err)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    const char *p = pem, *stop = pem + len, *first_end = NULL, *second = NULL;
    size_t count = 0;

    *leaf = NULL;
    *rest = NULL;
    while (p < stop) {
        const char *b = memmem(p, (size_t)(stop - p), begin, sizeof(begin) - 1), *e;

        if (b == NULL)
            break;
        e = memmem(b, (size_t)(stop - b), end, sizeof(end) - 1);
        if (e == NULL)
            return rk_error_set(err, RK_EINVAL, "the chain has an unterminated certificate");
        e += sizeof(end) - 1;
        if (e < stop && *e == '\r')
            e++;
        if (e < stop && *e == '\n')
            e++;
        if (count == 0)
            first_end = e;
        else if (count == 1)
            second = b;
        if (++count > CHAIN_MAX)
            return rk_error_set(err, RK_EINVAL, "the chain has more than %d certificates",
                                CHAIN_MAX);
        p = e;
    }
    if (count == 0)
        return rk_error_set(err, RK_EINVAL, "the CA sent no PEM certificate");
    {
        const char *lb = memmem(pem, len, begin, sizeof(begin) - 1);
        size_t ln = (size_t)(first_end - lb), rn = second != NULL ? (size_t)(p - second) : 0;

        *leaf = malloc(ln + 2);
        *rest = malloc(rn + 2);
        if (*leaf == NULL || *rest == NULL) {
            free(*leaf);
            free(*rest);
            *leaf = *rest = NULL;
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        memcpy(*leaf, lb, ln);
        (*leaf)[ln] = '\0';
        if (ln > 0 && (*leaf)[ln - 1] != '\n') {
            (*leaf)[ln] = '\n';
            (*leaf)[ln + 1] = '\0';
        }
        if (rn > 0)
            memcpy(*rest, second, rn);
        (*rest)[rn] = '\0';
        if (rn > 0 && (*rest)[rn - 1] != '\n') {
            (*rest)[rn] = '\n';
            (*rest)[rn + 1] = '\0';
        }
    }
    return 0;
}
