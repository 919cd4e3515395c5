/* transit-jwt.c: JWT issue and verify with transit keys, and their JWKs (see jwt.h). */
#include "secrets/jwt.h"
#include "secrets/transit-int.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/enc.h"
#include "util/parse.h"

const char *
jwt_algs_for(enum transit_type type)
{
    switch (type) {
    case TRANSIT_ED25519: return "EdDSA";
    case TRANSIT_ECDSA_P256: return "ES256";
    case TRANSIT_ECDSA_P384: return "ES384";
    case TRANSIT_RSA_2048:
    case TRANSIT_RSA_3072:
    case TRANSIT_RSA_4096: return "RS256|RS384|RS512|PS256|PS384|PS512";
    default: return NULL;
    }
}

/* 1 when alg is one of the '|'-separated list. */
static int
alg_in(const char *alg, const char *list)
{
    size_t n = strlen(alg);

    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncmp(p, alg, n) == 0)
            return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* The transit options of a JWS algorithm. */
static void
alg_opts(const char *alg, struct transit_sign_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->salt_len = TRANSIT_SALT_HASH;  /* RFC 7518: PSS salt = the digest's length */
    o->marshal = TRANSIT_MARSHAL_JWS; /* ECDSA: r||s */
    o->pad = alg[0] == 'P' ? TRANSIT_PAD_PSS : TRANSIT_PAD_PKCS1V15;
    o->hash = strstr(alg, "384") ? "sha2-384" : strstr(alg, "512") ? "sha2-512" : "sha2-256";
}

static char *
b64url_dup(const void *in, size_t len)
{
    char *b = malloc(4 * ((len + 2) / 3) + 1);

    if (b != NULL)
        base64url_encode(in, len, b);
    return b;
}

int
jwt_issue(struct transit *t, const char *name, const json_t *claims, const char *alg, char **out,
          uint64_t *version, struct rk_error *err)
{
    struct transit_info *info = NULL;
    struct transit_sign_opts o;
    char kid[TRANSIT_NAME_MAX + 32], *hdr_text = NULL, *cl_text = NULL, *h64 = NULL, *c64 = NULL,
                                     *s64 = NULL, *input = NULL, *tok = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0, inlen;
    uint64_t used = 0;
    json_t *hdr = NULL;
    const char *algs;
    int rc;

    *out = NULL;
    if (!json_is_object(claims))
        return rk_error_set(err, RK_EINVAL, "claims must be a JSON object");
    if ((rc = transit_info_get(t, name, &info, err)) != 0)
        return rc;
    if ((algs = jwt_algs_for(info->type)) == NULL) {
        rc = rk_error_set(err, RK_EINVAL, "key type %s cannot sign tokens",
                          transit_type_name(info->type));
        goto out;
    }
    if (alg == NULL)
        alg = (info->type == TRANSIT_ED25519 || info->type == TRANSIT_ECDSA_P256 ||
               info->type == TRANSIT_ECDSA_P384)
                  ? algs
                  : "RS256";
    if (!alg_in(alg, algs)) {
        rc = rk_error_set(err, RK_EINVAL, "algorithm %.20s is not one of a %s key's (%s)", alg,
                          transit_type_name(info->type), algs);
        goto out;
    }
    if (info->latest_version == 0) {
        rc = rk_error_set(err, RK_EINVAL, "key %s has no active version yet", name);
        goto out;
    }
    /* The version is fixed first so the kid and the signature agree even if a rotation lands
     * in between: the sign below is asked for exactly this version. */
    snprintf(kid, sizeof(kid), "%s:v%" PRIu64, name, info->latest_version);
    alg_opts(alg, &o);
    o.key_version = info->latest_version;
    rc = -RK_ENOMEM;
    if ((hdr = json_pack("{s:s, s:s, s:s}", "alg", alg, "kid", kid, "typ", "JWT")) == NULL ||
        (hdr_text = json_dumps(hdr, JSON_COMPACT)) == NULL ||
        (cl_text = json_dumps(claims, JSON_COMPACT)) == NULL ||
        (h64 = b64url_dup(hdr_text, strlen(hdr_text))) == NULL ||
        (c64 = b64url_dup(cl_text, strlen(cl_text))) == NULL) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    inlen = strlen(h64) + 1 + strlen(c64);
    if ((input = malloc(inlen + 1)) == NULL) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(input, inlen + 1, "%s.%s", h64, c64);
    if ((rc = transit_sign(t, name, &o, (const unsigned char *)input, inlen, &sig, &siglen, &used,
                           err)) != 0)
        goto out;
    if ((s64 = b64url_dup(sig, siglen)) == NULL ||
        (tok = malloc(inlen + 1 + strlen(s64) + 1)) == NULL) {
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(tok, inlen + 1 + strlen(s64) + 1, "%s.%s", input, s64);
    *out = tok;
    tok = NULL;
    if (version != NULL)
        *version = used;
    rc = 0;
out:
    transit_info_free(info);
    json_decref(hdr);
    free(hdr_text);
    free(cl_text);
    free(h64);
    free(c64);
    free(s64);
    free(input);
    free(tok);
    free(sig);
    return rc;
}

void
jwt_result_clear(struct jwt_result *res)
{
    json_decref(res->header);
    json_decref(res->claims);
    res->header = res->claims = NULL;
}

static int invalid(struct jwt_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
invalid(struct jwt_result *res, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
    va_end(ap);
    utf8_trim_tail(res->reason);
    res->valid = 0;
    return 0;
}

/* A base64url part of a token parsed as a JSON object. */
static json_t *
part_json(const char *p, size_t len)
{
    size_t n = 0;
    unsigned char *raw = tk_b64url_decode(p, len, &n);
    json_t *j;

    if (raw == NULL)
        return NULL;
    j = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* A NumericDate claim: 0 absent, 1 present (*v), -1 present but not a number. */
static int
numeric_claim(json_t *claims, const char *name, double *v)
{
    json_t *x = json_object_get(claims, name);

    if (x == NULL)
        return 0;
    if (!json_is_number(x))
        return -1;
    *v = json_number_value(x);
    return isfinite(*v) ? 1 : -1;
}

int
jwt_verify(struct transit *t, const char *name, const char *token, int64_t now, int64_t leeway,
           struct jwt_result *res, struct rk_error *err)
{
    struct transit_info *info = NULL;
    struct transit_sign_opts o;
    const char *d1, *d2, *alg, *kid, *algs;
    unsigned char *sig = NULL;
    size_t siglen = 0, nlen = strlen(name), tlen;
    struct rk_error e2 = {0};
    double when;
    int64_t ver;
    int rc, valid = 0, k;

    memset(res, 0, sizeof(*res));
    if ((rc = transit_info_get(t, name, &info, err)) != 0)
        return rc;
    rc = 0;
    tlen = token != NULL ? strlen(token) : 0;
    if (tlen == 0 || tlen > JWT_MAX_LEN || (d1 = strchr(token, '.')) == NULL ||
        (d2 = strchr(d1 + 1, '.')) == NULL || strchr(d2 + 1, '.') != NULL) {
        invalid(res, "not a compact JWS (three base64url parts)");
        goto out;
    }
    if ((res->header = part_json(token, (size_t)(d1 - token))) == NULL ||
        (res->claims = part_json(d1 + 1, (size_t)(d2 - d1 - 1))) == NULL) {
        invalid(res, "the header or the claims are not base64url JSON objects");
        goto out;
    }
    alg = json_string_value(json_object_get(res->header, "alg"));
    kid = json_string_value(json_object_get(res->header, "kid"));
    algs = jwt_algs_for(info->type);
    if (json_object_get(res->header, "crit") != NULL) {
        invalid(res, "critical header parameters are not supported");
        goto out;
    }
    if (alg == NULL || algs == NULL || !alg_in(alg, algs)) {
        invalid(res, "algorithm %.20s is not one of a %s key's", alg ? alg : "(none)",
                transit_type_name(info->type));
        goto out;
    }
    if (kid == NULL || strncmp(kid, name, nlen) != 0 || strncmp(kid + nlen, ":v", 2) != 0 ||
        parse_int64(kid + nlen + 2, 1, INT64_MAX, &ver) != 0) {
        invalid(res, "the kid does not name a version of key %s", name);
        goto out;
    }
    res->version = (uint64_t)ver;
    if ((sig = tk_b64url_decode(d2 + 1, strlen(d2 + 1), &siglen)) == NULL) {
        invalid(res, "the signature is not base64url");
        goto out;
    }
    alg_opts(alg, &o);
    k = transit_verify(t, name, &o, res->version, (const unsigned char *)token,
                       (size_t)(d2 - token), sig, siglen, &valid, &e2);
    if (k == -RK_EINVAL) {
        invalid(res, "%s", e2.msg);
        goto out;
    }
    if (k != 0) {
        rc = rk_error_set(err, -k, "%s", e2.msg);
        goto out;
    }
    if (!valid) {
        invalid(res, "the signature does not verify");
        goto out;
    }
    if ((k = numeric_claim(res->claims, "exp", &when)) < 0 ||
        (k == 1 && (double)now >= when + (double)leeway)) {
        invalid(res, k < 0 ? "exp is not a number" : "the token has expired");
        goto out;
    }
    if ((k = numeric_claim(res->claims, "nbf", &when)) < 0 ||
        (k == 1 && (double)(now + leeway) < when)) {
        invalid(res, k < 0 ? "nbf is not a number" : "the token is not valid yet (nbf)");
        goto out;
    }
    res->valid = 1;
out:
    free(sig);
    transit_info_free(info);
    return rc;
}

int
jwt_jwks_add(struct transit *t, const char *name, json_t *keys, int64_t *period,
             struct rk_error *err)
{
    struct transit_info *info = NULL;
    int rc;

    if ((rc = transit_info_get(t, name, &info, err)) != 0)
        return rc;
    if (period != NULL)
        *period = info->auto_rotate_period;
    if (!transit_type_signs(info->type)) {
        rc = rk_error_set(err, RK_EINVAL, "key %s is %s: it has no public key", name,
                          transit_type_name(info->type));
        goto out;
    }
    for (size_t i = 0; i < info->nversions; i++) {
        const struct transit_version_info *v = &info->versions[i];
        json_t *jwk = NULL;
        if (v->state == TRANSIT_V_FAILED || v->version < info->min_decryption_version)
            continue;
        if ((rc = transit_jwk(t, name, v->version, &jwk, err)) != 0)
            goto out;
        if (json_array_append_new(keys, jwk) != 0) {
            rc = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
    }
out:
    transit_info_free(info);
    return rc;
}
