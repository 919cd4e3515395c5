/* provider-api.c: see provider-api.h. One request per call, through util/httpc; JSON through
 * jansson (its blocks are wiped when freed: util/secret.h json_wipe_on_free), the key values it
 * parses copied into struct secret at once. */
#include "rotators/provider-api.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/httpc.h"
#include "util/log.h"

#define PK_URL_MAX 1024   /* bytes of a request URL */
#define PK_PAGES_MAX 50   /* pages of a key listing (Anthropic) */
#define PK_BODY_MAX 65536 /* bytes of an answer kept */
#define ANTHROPIC_VERSION "2023-06-01"
#define XAI_DEFAULT_ACLS "api-key:model:*,api-key:endpoint:*"

enum pk_auth { PK_AUTH_BEARER = 0, PK_AUTH_ANTHROPIC };

int
pk_id_ok(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;

    if (n == 0 || n > PK_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && strchr("_-.:", id[i]) == NULL)
            return 0;
    return 1;
}

int
provider_key_hint_match(const char *hint, const struct secret *key)
{
    const char *dots = hint != NULL ? strstr(hint, "...") : NULL;
    size_t head, tail;

    if (dots == NULL || key == NULL || (head = (size_t)(dots - hint)) == 0)
        return 0;
    tail = strlen(dots + 3);
    if (key->len < head + tail)
        return 0;
    return CRYPTO_memcmp(key->data, hint, head) == 0 &&
           CRYPTO_memcmp(key->data + key->len - tail, dots + 3, tail) == 0;
}

/* base (without its trailing slashes) + the formatted rest, into buf. */
static void url_join(char *buf, size_t len, const char *base, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
url_join(char *buf, size_t len, const char *base, const char *fmt, ...)
{
    size_t n = strlen(base);
    va_list ap;
    int w;

    while (n > 0 && base[n - 1] == '/')
        n--;
    w = snprintf(buf, len, "%.*s", (int)n, base);
    if (w < 0 || (size_t)w >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + w, len - (size_t)w, fmt, ap);
    va_end(ap);
}

/* One request with key as the credential (Authorization: Bearer, or Anthropic's x-api-key and
 * anthropic-version); body (may be NULL) is sent as JSON and holds no secret. Returns httpc_do's
 * code; *resp is the caller's to free (httpc_resp_free). */
static int
request(const struct pk_api *a, const char *method, const char *url, enum pk_auth auth,
        const struct secret *key, json_t *body, struct httpc_resp *resp, struct rk_error *err)
{
    struct httpc_header h[4];
    struct secret *bearer = NULL, *b = NULL;
    struct httpc_req req;
    size_t nh = 0;
    int r;

    memset(h, 0, sizeof(h));
    memset(resp, 0, sizeof(*resp));
    if (auth == PK_AUTH_BEARER) {
        if ((bearer = secret_new(7 + key->len)) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        memcpy(bearer->data, "Bearer ", 7);
        memcpy(bearer->data + 7, key->data, key->len);
        h[nh].name = "Authorization";
        h[nh++].value = bearer;
    } else {
        h[nh].name = "x-api-key";
        h[nh++].value = key;
        h[nh].name = "anthropic-version";
        h[nh++].plain = ANTHROPIC_VERSION;
    }
    h[nh].name = "Accept";
    h[nh++].plain = "application/json";
    if (body != NULL) {
        char *text = json_dumps(body, JSON_COMPACT);
        if (text == NULL || (b = secret_from(text, strlen(text))) == NULL) {
            free(text);
            secret_free(bearer);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        free(text);
    }
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url;
    req.headers = h;
    req.nheaders = nh;
    req.body = b;
    req.timeout_ms = a->timeout_ms;
    req.connect_timeout_ms =
        a->timeout_ms < HTTPC_DEFAULT_CONNECT_MS ? a->timeout_ms : HTTPC_DEFAULT_CONNECT_MS;
    req.body_max = PK_BODY_MAX;
    r = httpc_do(&req, resp, err);
    secret_free(bearer);
    secret_free(b);
    return r;
}

/* The answer's body as JSON, or NULL. */
static json_t *
resp_json(const struct httpc_resp *resp)
{
    if (resp->body == NULL || resp->len == 0 || resp->truncated)
        return NULL;
    return json_loadb((const char *)resp->body->data, resp->len, 0, NULL);
}

/* A short error code from a provider's error body (error.code, error.type, code), never a
 * message (OpenAI's quotes part of the key): letters, digits, '_', '-' and '.' only. */
static void
resp_code(const struct httpc_resp *resp, char *buf, size_t len)
{
    json_t *j = resp_json(resp), *e;
    const char *c = NULL;

    buf[0] = '\0';
    if (j == NULL)
        return;
    e = json_object_get(j, "error");
    if (json_is_object(e))
        c = json_string_value(json_object_get(e, "code")) != NULL
                ? json_string_value(json_object_get(e, "code"))
                : json_string_value(json_object_get(e, "type"));
    if (c == NULL)
        c = json_string_value(json_object_get(j, "code"));
    if (c != NULL && strlen(c) < len && strlen(c) <= 40 && strncmp(c, "sk-", 3) != 0 &&
        strncmp(c, "xai-", 4) != 0) {
        size_t i;
        for (i = 0; c[i] != '\0'; i++)
            if (!isalnum((unsigned char)c[i]) && strchr("_-.", c[i]) == NULL)
                break;
        if (c[i] == '\0')
            snprintf(buf, len, "%s", c);
    }
    json_decref(j);
}

/* What a request's answer means (rotator.h's outcomes): 0 for 2xx; -RK_EUNAVAILABLE (no
 * answer, a timeout, 408, 429, 5xx) or -RK_EREJECTED (another status) with err saying who
 * answered what ("what: " first unless what is NULL); -RK_ENOMEM / -RK_EINVAL as they are. */
static int
outcome(const char *what, const char *method, const char *url, int rc,
        const struct httpc_resp *resp, struct rk_error *err)
{
    char code[48], msg[RK_ERRMSG_MAX];
    int o;

    if (rc == -RK_ENOMEM || rc == -RK_EINVAL)
        return rc;
    if (rc != 0) {
        snprintf(msg, sizeof(msg), "%s", err->msg);
        return rk_error_set(err, RK_EUNAVAILABLE, "%s%s%s", what != NULL ? what : "",
                            what != NULL ? ": " : "", msg);
    }
    if ((o = httpc_outcome(0, resp->status)) == 0)
        return 0;
    resp_code(resp, code, sizeof(code));
    rk_error_set(err, -o, "%s%s%s %s answered HTTP %ld%s%s%s", what != NULL ? what : "",
                 what != NULL ? ": " : "", method, url, resp->status, code[0] ? " (" : "", code,
                 code[0] ? ")" : "");
    if (o == -RK_EUNAVAILABLE && resp->retry_after_s > 0)
        err->retry_after_s = resp->retry_after_s; /* a 429's or 503's Retry-After */
    return o;
}

/* ---- the check ---- */

/* xAI: GET /v1/api-key with key; refused when the key or its team is blocked or disabled. */
static int
xai_check(const struct pk_api *a, const struct secret *key, int *blocked, struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX];
    json_t *j = NULL;
    int r;

    url_join(url, sizeof(url), a->base_url, "/v1/api-key");
    r = request(a, "GET", url, PK_AUTH_BEARER, key, NULL, &resp, err);
    if ((r = outcome(NULL, "GET", url, r, &resp, err)) == 0) {
        j = resp_json(&resp);
        if (j == NULL)
            r = rk_error_set(err, RK_EREJECTED, "GET %s answered %ld without key details", url,
                             resp.status);
        else if (json_is_true(json_object_get(j, "api_key_blocked")) ||
                 json_is_true(json_object_get(j, "api_key_disabled")) ||
                 json_is_true(json_object_get(j, "team_blocked"))) {
            *blocked = 1;
            r = rk_error_set(err, RK_EREJECTED, "GET %s says the key is %s", url,
                             json_is_true(json_object_get(j, "team_blocked")) ? "blocked (its team)"
                             : json_is_true(json_object_get(j, "api_key_blocked")) ? "blocked"
                                                                                   : "disabled");
        }
    }
    json_decref(j);
    httpc_resp_free(&resp);
    return r;
}

int
pk_api_check(const struct pk_api *a, const struct secret *key, int *blocked, struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX];
    int r;

    *blocked = 0;
    if (a->prov == PK_XAI)
        return xai_check(a, key, blocked, err);
    /* OpenAI and Anthropic: GET /v1/models lists models and spends no tokens. */
    url_join(url, sizeof(url), a->base_url, "/v1/models");
    r = request(a, "GET", url, a->prov == PK_ANTHROPIC ? PK_AUTH_ANTHROPIC : PK_AUTH_BEARER, key,
                NULL, &resp, err);
    r = outcome(NULL, "GET", url, r, &resp, err);
    httpc_resp_free(&resp);
    return r;
}

/* ---- OpenAI: project service accounts ---- */

int
pk_openai_create(const struct pk_api *a, const struct secret *admin, const char *project,
                 const char *name, struct secret **value, char *id, size_t idlen,
                 struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX];
    json_t *body = NULL, *j = NULL;
    const char *sa, *v;
    struct rk_error e2 = {0};
    int r;

    *value = NULL;
    id[0] = '\0';
    if (!pk_id_ok(project))
        return rk_error_set(err, RK_EINVAL, "%s: the OpenAI project id is not usable", a->path);
    url_join(url, sizeof(url), a->admin_base_url, "/v1/organization/projects/%s/service_accounts",
             project);
    if ((body = json_pack("{s:s}", "name", name)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r = request(a, "POST", url, PK_AUTH_BEARER, admin, body, &resp, err);
    if ((r = outcome("creating an OpenAI service account", "POST", url, r, &resp, err)) != 0)
        goto out;
    j = resp_json(&resp);
    sa = json_string_value(json_object_get(j, "id"));
    v = json_string_value(json_object_get(json_object_get(j, "api_key"), "value"));
    if (!pk_id_ok(sa) || strlen(sa) >= idlen) {
        r = rk_error_set(err, RK_EREJECTED,
                         "creating an OpenAI service account: POST %s answered without a usable "
                         "service account id",
                         url);
        goto out;
    }
    if (v == NULL) {
        r = rk_error_set(err, RK_EREJECTED,
                         "creating an OpenAI service account: POST %s answered without "
                         "api_key.value; service account %s was deleted again",
                         url, sa);
        (void)pk_openai_delete(a, admin, project, sa, &e2);
        goto out;
    }
    if ((*value = secret_from(v, strlen(v))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        (void)pk_openai_delete(a, admin, project, sa, &e2);
        goto out;
    }
    snprintf(id, idlen, "%s", sa);
    log_info("%s: created OpenAI service account %s in project %s", a->path, sa, project);
out:
    json_decref(j);
    json_decref(body);
    httpc_resp_free(&resp);
    return r;
}

int
pk_openai_delete(const struct pk_api *a, const struct secret *admin, const char *project,
                 const char *id, struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX];
    int r;

    if (!pk_id_ok(project) || !pk_id_ok(id))
        return rk_error_set(err, RK_ECORRUPT, "%s: a stored OpenAI id is not usable", a->path);
    url_join(url, sizeof(url), a->admin_base_url,
             "/v1/organization/projects/%s/service_accounts/%s", project, id);
    r = request(a, "DELETE", url, PK_AUTH_BEARER, admin, NULL, &resp, err);
    if (r == 0 && resp.status == 404) {
        log_info("%s: OpenAI service account %s is gone already", a->path, id);
        r = 0;
    } else if ((r = outcome("deleting an OpenAI service account", "DELETE", url, r, &resp, err)) ==
               0) {
        log_info("%s: deleted OpenAI service account %s", a->path, id);
    }
    httpc_resp_free(&resp);
    return r;
}

/* ---- xAI: the management API ---- */

int
pk_xai_create(const struct pk_api *a, const struct secret *mgmt, const char *team, const char *acls,
              const char *name, struct secret **value, char *id, size_t idlen, struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX];
    json_t *body = NULL, *list = NULL, *j = NULL;
    const char *kid, *v, *p;
    struct rk_error e2 = {0};
    int r;

    *value = NULL;
    id[0] = '\0';
    if (!pk_id_ok(team))
        return rk_error_set(err, RK_EINVAL, "%s: the xAI team id is not usable", a->path);
    if ((list = json_array()) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (p = acls != NULL ? acls : XAI_DEFAULT_ACLS; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n > 0 && json_array_append_new(list, json_stringn(p, n)) != 0) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        p += n + (p[n] == ',');
    }
    if ((body = json_pack("{s:s, s:O}", "name", name, "acls", list)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    url_join(url, sizeof(url), a->mgmt_base_url, "/auth/teams/%s/api-keys", team);
    r = request(a, "POST", url, PK_AUTH_BEARER, mgmt, body, &resp, err);
    if ((r = outcome("creating an xAI API key", "POST", url, r, &resp, err)) != 0)
        goto out;
    j = resp_json(&resp);
    kid = json_string_value(json_object_get(j, "apiKeyId"));
    v = json_string_value(json_object_get(j, "apiKey"));
    if (!pk_id_ok(kid) || strlen(kid) >= idlen) {
        r = rk_error_set(err, RK_EREJECTED,
                         "creating an xAI API key: POST %s answered without a usable apiKeyId",
                         url);
        goto out;
    }
    if (v == NULL || (*value = secret_from(v, strlen(v))) == NULL) {
        r = v == NULL ? rk_error_set(err, RK_EREJECTED,
                                     "creating an xAI API key: POST %s answered without apiKey; "
                                     "key %s was deleted again",
                                     url, kid)
                      : rk_error_set(err, RK_ENOMEM, "out of memory");
        (void)pk_xai_delete(a, mgmt, kid, &e2);
        goto out;
    }
    snprintf(id, idlen, "%s", kid);
    log_info("%s: created xAI API key %s in team %s", a->path, kid, team);
out:
    json_decref(j);
    json_decref(body);
    json_decref(list);
    httpc_resp_free(&resp);
    return r;
}

int
pk_xai_delete(const struct pk_api *a, const struct secret *mgmt, const char *id,
              struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX];
    int r;

    if (!pk_id_ok(id))
        return rk_error_set(err, RK_ECORRUPT, "%s: a stored xAI key id is not usable", a->path);
    url_join(url, sizeof(url), a->mgmt_base_url, "/auth/api-keys/%s", id);
    r = request(a, "DELETE", url, PK_AUTH_BEARER, mgmt, NULL, &resp, err);
    if (r == 0 && resp.status == 404) {
        log_info("%s: xAI key %s is gone already", a->path, id);
        r = 0;
    } else if ((r = outcome("deleting an xAI API key", "DELETE", url, r, &resp, err)) == 0) {
        log_info("%s: deleted xAI key %s", a->path, id);
    }
    httpc_resp_free(&resp);
    return r;
}

/* ---- Anthropic: the Admin API's keys ---- */

int
pk_anthropic_find(const struct pk_api *a, const struct secret *admin, const struct secret *key,
                  int *matches, char *id, size_t idlen, char *status, size_t stlen,
                  struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX], after[PK_ID_MAX + 1] = "";
    json_t *j = NULL, *data, *k;
    int r = 0, more = 1;
    size_t i;

    *matches = 0;
    id[0] = status[0] = '\0';
    for (int page = 0; more && page < PK_PAGES_MAX; page++) {
        if (after[0] != '\0')
            url_join(url, sizeof(url), a->admin_base_url,
                     "/v1/organizations/api_keys?limit=100&after_id=%s", after);
        else
            url_join(url, sizeof(url), a->admin_base_url, "/v1/organizations/api_keys?limit=100");
        r = request(a, "GET", url, PK_AUTH_ANTHROPIC, admin, NULL, &resp, err);
        if ((r = outcome("listing Anthropic API keys", "GET", url, r, &resp, err)) != 0)
            break;
        j = resp_json(&resp);
        data = json_object_get(j, "data");
        if (!json_is_array(data)) {
            r = rk_error_set(err, RK_EREJECTED,
                             "listing Anthropic API keys: GET %s answered without data", url);
            break;
        }
        json_array_foreach(data, i, k)
        {
            const char *hint = json_string_value(json_object_get(k, "partial_key_hint"));
            const char *kid = json_string_value(json_object_get(k, "id"));
            const char *st = json_string_value(json_object_get(k, "status"));
            if (!provider_key_hint_match(hint, key) || !pk_id_ok(kid))
                continue;
            if (++*matches == 1) {
                snprintf(id, idlen, "%s", kid);
                snprintf(status, stlen, "%s", st != NULL ? st : "");
            }
        }
        more = json_is_true(json_object_get(j, "has_more"));
        if (more) {
            const char *last = json_string_value(json_object_get(j, "last_id"));
            if (!pk_id_ok(last))
                more = 0;
            else
                snprintf(after, sizeof(after), "%s", last);
        }
        json_decref(j);
        j = NULL;
        httpc_resp_free(&resp);
    }
    json_decref(j);
    httpc_resp_free(&resp);
    return r;
}

int
pk_anthropic_deactivate(const struct pk_api *a, const struct secret *admin, const char *id,
                        struct rk_error *err)
{
    struct httpc_resp resp = {0};
    char url[PK_URL_MAX];
    json_t *body;
    int r;

    if (!pk_id_ok(id))
        return rk_error_set(err, RK_EINVAL, "%s: an Anthropic key id is not usable", a->path);
    url_join(url, sizeof(url), a->admin_base_url, "/v1/organizations/api_keys/%s", id);
    if ((body = json_pack("{s:s}", "status", "inactive")) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r = request(a, "POST", url, PK_AUTH_ANTHROPIC, admin, body, &resp, err);
    if ((r = outcome("deactivating an Anthropic API key", "POST", url, r, &resp, err)) == 0)
        log_info("%s: set Anthropic key %s inactive", a->path, id);
    json_decref(body);
    httpc_resp_free(&resp);
    return r;
}
