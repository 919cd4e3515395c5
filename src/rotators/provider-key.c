/* provider-key.c: kind "provider-key": the API key of an LLM provider (`provider: openai |
 * anthropic | xai`).
 *
 * Where a new key comes from, per entry:
 *   a person       (no admin key): the key is created at the provider's console and handed in
 *                  (rot_input: the CLI's --from-stdin, --from-file or no-echo prompt, or an API
 *                  request's body); without one, create says where to make it (the console
 *                  URL); at finish an action-required item says where to revoke the old one
 *                  (action_hint, the console URL).
 *   OpenAI admin   (admin_key_path + project_id): create = POST /v1/organization/projects/
 *                  {project_id}/service_accounts, whose answer holds the key once (api_key.value)
 *                  and the account's id, stored as internal fields of the version
 *                  (service_account_id, project_id); retire = DELETE of the previous version's
 *                  service account (404 counts as done); undo deletes the candidate's.
 *   xAI management (management_key_path + team_id, acls): create = POST /auth/teams/{team_id}/
 *                  api-keys on management_base_url (apiKey, apiKeyId -> internal api_key_id);
 *                  apply waits until the key is live (GET /v1/api-key with it answers, not
 *                  blocked: the propagation check); retire = DELETE /auth/api-keys/{id}.
 *   Anthropic      has no key-creation API: a person supplies the key. With admin_key_path,
 *                  finish sets the old key inactive through the Admin API: its id is found by
 *                  listing GET /v1/organizations/api_keys and matching each partial_key_hint
 *                  against the old value (no id is stored: a key typed in by a person has none
 *                  to store); exactly one match is deactivated (POST .../api_keys/{id}
 *                  {"status":"inactive"}); none or several open an action-required item. Without
 *                  an admin key, finish opens action-required with the console URL.
 * An old value that no API made (typed in before the entry had an admin key) is retired by a
 * person: retire answers -RK_EACTION and the engine opens the item.
 *
 * Validation before anything is stored, by prefix and character set, never an exact length:
 * OpenAI sk-proj-, sk-svcacct- and legacy sk-; Anthropic sk-ant-api03-; xAI xai-; each followed
 * by [A-Za-z0-9_-]; `pattern` overrides it per entry. Admin keys (sk-admin-, sk-ant-admin…)
 * offered as API keys and another provider's keys are refused by name. A refused key is never
 * echoed: the message shows the expected shape, the length and the keyed fingerprint.
 *
 * The test spends no tokens: GET {base_url}/v1/models (OpenAI: Authorization: Bearer;
 * Anthropic: x-api-key and anthropic-version), GET {base_url}/v1/api-key (xAI, whose answer
 * says whether the key or its team is blocked or disabled). Outcomes (rotator.h): 2xx =
 * accepted; 401, 403, another 4xx or a blocked key = rejected (undo, current kept); no answer,
 * a timeout, 408, 429 or 5xx = unavailable (the candidate stays pending).
 *
 * The requests themselves, one function per endpoint, are in provider-api.c: keys live in
 * struct secret only, headers are built in the secure heap and handed to util/httpc, URLs hold
 * no secret (ids only), and a provider's error body is never shown (OpenAI's quotes part of the
 * key), only its status and a short error code. Base URLs default to the real ones and are
 * per-entry settings, so tests point them at a local server. */
#include "rotators/provider-key.h"

#include <ctype.h>
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "rotators/provider-api.h"
#include "rotators/rotator.h"
#include "util/enc.h"
#include "util/ere.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define PK_KEY_MAX 4096 /* bytes of a key; real ones are 50..200 */

/* One row per provider (enum pk_prov's order); the `provider` choices list the same names. */
static const struct pk_provider {
    const char *name, *label;
    const char *pattern; /* the default: prefix and character set, no exact length */
    const char *shape;   /* the same for people */
    const char *base_url, *console;
} providers[] = {
    {"openai", "OpenAI", "^sk-(proj-|svcacct-)?[A-Za-z0-9_-]{20,}$",
     "sk-proj-..., sk-svcacct-... or sk-... followed by letters, digits, '-' and '_'",
     "https://api.openai.com", "https://platform.openai.com/api-keys"},
    {"anthropic", "Anthropic", "^sk-ant-api03-[A-Za-z0-9_-]{20,}$",
     "sk-ant-api03-... followed by letters, digits, '-' and '_'", "https://api.anthropic.com",
     "https://console.anthropic.com/settings/keys"},
    {"xai", "xAI", "^xai-[A-Za-z0-9_-]{20,}$", "xai-... followed by letters, digits, '-' and '_'",
     "https://api.x.ai", "https://console.x.ai"},
};
#define NPROVIDERS (sizeof(providers) / sizeof(providers[0]))

#define XAI_MANAGEMENT_URL "https://management-api.x.ai"

/* Keys that are not API keys, refused by name. */
static const struct {
    const char *prefix, *what;
} admin_prefixes[] = {
    {"sk-admin-", "an OpenAI admin key (sk-admin-...)"},
    {"sk-ant-admin", "an Anthropic admin key (sk-ant-admin...)"},
};

/* Where an entry's new keys come from (see the file header). */
enum pk_source { PK_PERSON = 0, PK_OPENAI_ADMIN, PK_XAI_MANAGEMENT, PK_ANTHROPIC_ADMIN };

/* An entry's settings, read once per step (borrowed from the entry). */
struct pk_conf {
    struct pk_api api; /* where and how to call the provider (provider-api.h) */
    const struct pk_provider *p;
    enum pk_prov prov;
    enum pk_source source;
    const char *path, *console;
    const char *key_path, *key_field; /* the admin (or management) key in rekey */
    const char *project_id, *team_id, *acls;
    int64_t propagation_ms;
};

/* ---- small helpers ---- */

static const struct pk_provider *
provider_of(const struct inv_secret *s, enum pk_prov *idx)
{
    const char *name = inv_param(s, "provider");

    for (size_t i = 0; name != NULL && i < NPROVIDERS; i++)
        if (strcmp(name, providers[i].name) == 0) {
            if (idx != NULL)
                *idx = (enum pk_prov)i;
            return &providers[i];
        }
    return NULL;
}

/* The value's fingerprint for a message: "fingerprint hmac:…", or why there is none. */
static void
fp_text(const struct fp_key *k, const struct secret *v, char *buf, size_t len)
{
    char fp[FINGERPRINT_LEN + 1];

    if (k != NULL && v != NULL && fingerprint(k, v->data, v->len, fp) == 0)
        snprintf(buf, len, "fingerprint %s", fp);
    else
        snprintf(buf, len, "no fingerprint: the store's fingerprint key is not available here");
}

/* 1 when the loopback host of an http:// URL (plain http is fine there only). */
static int
url_is_loopback(const char *url)
{
    const char *host = url + 7;
    size_t n = strcspn(host, ":/?#");

    if ((n == 9 && strncmp(host, "localhost", 9) == 0) ||
        (n == 5 && strncmp(host, "[::1]", 5) == 0))
        return 1;
    if (n < 5 || strncmp(host, "127.", 4) != 0)
        return 0;
    for (size_t i = 4; i < n; i++)
        if ((host[i] < '0' || host[i] > '9') && host[i] != '.')
            return 0;
    return 1;
}

/* ---- settings ---- */

static int
pk_conf_load(const struct inv_secret *s, struct pk_conf *cf, struct rk_error *err)
{
    int has_admin, has_project, has_mgmt, has_team;
    int64_t t;

    memset(cf, 0, sizeof(*cf));
    cf->path = s->path;
    if ((cf->p = provider_of(s, &cf->prov)) == NULL)
        return rk_error_set(err, RK_ECONFIG, "provider: expected openai|anthropic|xai");
    cf->api.prov = cf->prov;
    cf->api.label = cf->p->label;
    cf->api.path = s->path;
    cf->api.base_url = inv_param(s, "base_url");
    cf->api.admin_base_url = inv_param(s, "admin_base_url");
    cf->api.mgmt_base_url = inv_param(s, "management_base_url");
    cf->console = inv_param(s, "console");
    cf->project_id = inv_param(s, "project_id");
    cf->team_id = inv_param(s, "team_id");
    cf->acls = inv_param(s, "acls");
    if (cf->api.base_url == NULL)
        cf->api.base_url = cf->p->base_url;
    if (cf->api.admin_base_url == NULL)
        cf->api.admin_base_url = cf->api.base_url;
    if (cf->api.mgmt_base_url == NULL)
        cf->api.mgmt_base_url = XAI_MANAGEMENT_URL;
    if (cf->console == NULL)
        cf->console = cf->p->console;
    has_admin = inv_param(s, "admin_key_path") != NULL;
    has_project = cf->project_id != NULL;
    has_mgmt = inv_param(s, "management_key_path") != NULL;
    has_team = cf->team_id != NULL;

    if (cf->prov != PK_OPENAI && has_project)
        return rk_error_set(err, RK_ECONFIG,
                            "project_id: only for provider openai (its admin API creates a "
                            "project service account)");
    if (cf->prov != PK_XAI && (has_mgmt || has_team || inv_param(s, "acls") != NULL ||
                               inv_param(s, "management_base_url") != NULL))
        return rk_error_set(err, RK_ECONFIG, "%s: only for provider xai (its management API)",
                            has_mgmt                       ? "management_key_path"
                            : has_team                     ? "team_id"
                            : inv_param(s, "acls") != NULL ? "acls"
                                                           : "management_base_url");
    if (cf->prov == PK_XAI && (has_admin || inv_param(s, "admin_base_url") != NULL))
        return rk_error_set(err, RK_ECONFIG,
                            "%s: xAI keys are made through its management API: give "
                            "management_key_path and team_id instead",
                            has_admin ? "admin_key_path" : "admin_base_url");
    if (cf->prov == PK_OPENAI && has_admin != has_project)
        return rk_error_set(err, RK_ECONFIG,
                            has_admin ? "project_id: required with admin_key_path (the project "
                                        "whose service accounts hold the keys)"
                                      : "admin_key_path: required with project_id (the admin "
                                        "key that creates the service accounts)");
    if (cf->prov == PK_XAI && has_mgmt != has_team)
        return rk_error_set(err, RK_ECONFIG,
                            has_mgmt ? "team_id: required with management_key_path (the team "
                                       "the keys belong to)"
                                     : "management_key_path: required with team_id (the "
                                       "management key that creates the keys)");
    if (has_project && !pk_id_ok(cf->project_id))
        return rk_error_set(err, RK_ECONFIG,
                            "project_id: 1..%d letters, digits, '_', '-', '.' or ':'", PK_ID_MAX);
    if (has_team && !pk_id_ok(cf->team_id))
        return rk_error_set(err, RK_ECONFIG, "team_id: 1..%d letters, digits, '_', '-', '.' or ':'",
                            PK_ID_MAX);
    if (cf->prov == PK_XAI) {
        cf->key_path = inv_param(s, "management_key_path");
        cf->key_field = inv_param(s, "management_key_field");
    } else {
        cf->key_path = inv_param(s, "admin_key_path");
        cf->key_field = inv_param(s, "admin_key_field");
    }
    if (cf->key_field == NULL)
        cf->key_field = "key";
    if (cf->key_path != NULL && strcmp(cf->key_path, s->path) == 0)
        return rk_error_set(err, RK_ECONFIG,
                            "%s: names this entry itself; the admin key is another secret",
                            cf->prov == PK_XAI ? "management_key_path" : "admin_key_path");
    if (cf->prov == PK_OPENAI && has_admin)
        cf->source = PK_OPENAI_ADMIN;
    else if (cf->prov == PK_XAI && has_mgmt)
        cf->source = PK_XAI_MANAGEMENT;
    else if (cf->prov == PK_ANTHROPIC && has_admin)
        cf->source = PK_ANTHROPIC_ADMIN;
    else
        cf->source = PK_PERSON;
    if (inv_param_duration(s, "timeout", 30, &t) != 0 || t < 1 || t > 300)
        return rk_error_set(err, RK_ECONFIG, "timeout: expected 1s..300s");
    cf->api.timeout_ms = t * 1000;
    if (inv_param_duration(s, "propagation_timeout", 120, &t) != 0 || t < 1 || t > 600)
        return rk_error_set(err, RK_ECONFIG, "propagation_timeout: expected 1s..600s");
    cf->propagation_ms = t * 1000;
    return 0;
}

/* ---- validation ---- */

/* What the byte at a refused position is, for the message (never the byte itself). */
static const char *
byte_class(unsigned char c)
{
    if (c == ' ')
        return "a space";
    if (c == '\n' || c == '\r')
        return "a line break";
    if (c == '\t')
        return "a tab";
    if (c < 0x20 || c == 0x7f)
        return "a control character";
    return "a byte outside ASCII";
}

static int
has_prefix(const struct secret *v, const char *prefix)
{
    size_t n = strlen(prefix);

    return v->len >= n && CRYPTO_memcmp(v->data, prefix, n) == 0;
}

/* The provider whose keys look like v (by prefix), or -1. */
static int
provider_by_prefix(const struct secret *v)
{
    if (has_prefix(v, "sk-ant-"))
        return PK_ANTHROPIC;
    if (has_prefix(v, "xai-"))
        return PK_XAI;
    if (has_prefix(v, "sk-"))
        return PK_OPENAI;
    return -1;
}

int
provider_key_validate(const struct inv_secret *s, const struct secret *v, const struct fp_key *fpk,
                      struct rk_error *err)
{
    const struct pk_provider *p = provider_of(s, NULL);
    const char *label = p != NULL ? p->label : "provider";
    int own_pattern = p != NULL && s->pattern != NULL && strcmp(s->pattern, p->pattern) == 0;
    char fp[96];
    regex_t re;
    int rc, other;

    if (v == NULL || v->len == 0)
        return rk_error_set(err, RK_EINVAL, "the new %s key for %s is empty; nothing was stored",
                            label, s->path);
    fp_text(fpk, v, fp, sizeof(fp));
    if (v->len > PK_KEY_MAX)
        return rk_error_set(err, RK_ELIMIT,
                            "the new %s key for %s is longer than %d bytes (%zu bytes, %s); "
                            "nothing was stored",
                            label, s->path, PK_KEY_MAX, v->len, fp);
    for (size_t i = 0; i < v->len; i++)
        if (v->data[i] <= 0x20 || v->data[i] >= 0x7f)
            return rk_error_set(err, RK_EINVAL,
                                "the new %s key for %s contains %s (byte %zu of %zu, %s); an API "
                                "key is one line of letters, digits, '-' and '_'; nothing was "
                                "stored",
                                label, s->path, byte_class(v->data[i]), i + 1, v->len, fp);
    for (size_t i = 0; i < sizeof(admin_prefixes) / sizeof(admin_prefixes[0]); i++)
        if (has_prefix(v, admin_prefixes[i].prefix))
            return rk_error_set(err, RK_EINVAL,
                                "the new key for %s is %s, not an API key: give it an API key "
                                "(an admin key belongs in the secret that admin_key_path "
                                "names) (%zu bytes, %s); nothing was stored",
                                s->path, admin_prefixes[i].what, v->len, fp);
    if (own_pattern && (other = provider_by_prefix(v)) >= 0 && other != (int)(p - providers))
        return rk_error_set(err, RK_EINVAL,
                            "the new key for %s looks like an %s key, but this entry holds an %s "
                            "key: expected %s (%zu bytes, %s); nothing was stored",
                            s->path, providers[other].label, label, p->shape, v->len, fp);
    if (s->pattern == NULL)
        return 0;
    if (ere_compile(s->pattern, &re, err) != 0)
        return rk_error_prefix(err, "%s: pattern", s->path);
    rc = regexec(&re, (const char *)v->data, 0, NULL, 0);
    regfree(&re);
    if (rc == REG_NOMATCH) {
        if (own_pattern)
            return rk_error_set(err, RK_EINVAL,
                                "the new key for %s does not look like an %s API key: expected "
                                "%s (got %zu bytes, %s); nothing was stored",
                                s->path, label, p->shape, v->len, fp);
        return rk_error_set(err, RK_EINVAL,
                            "the new key for %s does not match its pattern: expected %.160s (got "
                            "%zu bytes, %s); nothing was stored",
                            s->path, s->pattern, v->len, fp);
    }
    if (rc != 0)
        return rk_error_set(err, RK_EINTERNAL, "matching the pattern for %s failed (%d)", s->path,
                            rc);
    return 0;
}

/* ---- the admin key, names ---- */

/* Reads the admin (or management) key named by the entry; one trailing newline is dropped. */
static int
read_admin_key(struct rot_ctx *c, const struct pk_conf *cf, struct secret **out,
               struct rk_error *err)
{
    const char *setting = cf->prov == PK_XAI ? "management_key_path" : "admin_key_path";
    int r;

    *out = NULL;
    r = c->read_secret(c->read_arg, cf->key_path, cf->key_field, out, err);
    if (r == -RK_ENOTFOUND || r == -RK_EINVAL)
        return rk_error_set(err, RK_ENOTFOUND,
                            "the %s %s key (%s %s, field %s) cannot be read: put it with: rekey "
                            "kv put %s %s=-",
                            cf->p->label, cf->prov == PK_XAI ? "management" : "admin", setting,
                            cf->key_path, cf->key_field, cf->key_path, cf->key_field);
    if (r != 0)
        return r;
    if ((*out)->len > 0 && (*out)->data[(*out)->len - 1] == '\n') {
        (*out)->data[--(*out)->len] = '\0';
        if ((*out)->len > 0 && (*out)->data[(*out)->len - 1] == '\r')
            (*out)->data[--(*out)->len] = '\0';
    }
    return 0;
}

/* A name for what the admin API creates: "rekey-<path>-<UTC time>", [A-Za-z0-9-] only. */
static void
created_name(const char *path, char *buf, size_t len)
{
    time_t now = (time_t)time_now();
    struct tm tm;
    char when[24] = "";
    size_t n = 0;

    if (gmtime_r(&now, &tm) != NULL)
        strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
    n = (size_t)snprintf(buf, len, "rekey-");
    for (const char *p = path; *p != '\0' && n + 1 < len && n < 6 + 64; p++)
        buf[n++] = isalnum((unsigned char)*p) ? *p : '-';
    buf[n] = '\0';
    snprintf(buf + n, len - n, "-%s", when);
}

/* ---- where a new key comes from ---- */

/* Drops one trailing "\n" or "\r\n" (echo and editors add one), wiping it. */
static void
strip_newline(struct secret *v)
{
    if (v->len > 0 && v->data[v->len - 1] == '\n') {
        v->data[--v->len] = '\0';
        if (v->len > 0 && v->data[v->len - 1] == '\r')
            v->data[--v->len] = '\0';
    }
}

/* 1 when a person handed in a value (the CLI's --from-stdin, --from-file or prompt, an API
 * request's body). */
static int
input_given(const struct rot_input *in)
{
    return in != NULL && in->value != NULL;
}

/* The key a person created at the console, as the CLI or the API hands it in (rot_input). */
static int
person_key(struct rot_ctx *c, const struct pk_conf *cf, struct secret **out, struct rk_error *err)
{
    *out = NULL;
    if (!input_given(c->input))
        return rk_error_set(err, RK_EINVAL,
                            "%s needs a new %s key from a person: create it at %s, then run "
                            "rekey rotate %s with --from-stdin or --from-file FILE (or on a "
                            "terminal, where it is read without echo)",
                            cf->path, cf->p->label, cf->console, cf->path);
    if ((*out = secret_from(c->input->value->data, c->input->value->len)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    strip_newline(*out);
    return 0;
}

/* What an admin API made (OpenAI, xAI): its key as the entry's field, its ids as internal
 * fields; checked like a person's key (an unexpected shape is deleted again). */
static int
made_fields(struct rot_ctx *c, const struct pk_conf *cf, struct secret *value, const char *id,
            struct rot_fields *out, struct rk_error *err)
{
    const char *idname = cf->source == PK_OPENAI_ADMIN ? "service_account_id" : "api_key_id";
    int r;

    if ((r = provider_key_validate(c->secret, value, c->fp_key, err)) != 0) {
        secret_free(value);
        return rk_error_prefix(err, "the %s admin API made %s (deleted again)", cf->p->label, id);
    }
    /* rot_fields_set takes value, also on failure. */
    if ((r = rot_fields_set(out, rotator_field(c->secret), value, 0, err)) != 0 ||
        (r = rot_fields_put(out, idname, id, strlen(id), ROT_FIELD_INTERNAL, err)) != 0)
        return r;
    if (cf->source == PK_OPENAI_ADMIN)
        r = rot_fields_put(out, "project_id", cf->project_id, strlen(cf->project_id),
                           ROT_FIELD_INTERNAL, err);
    return r;
}

/* OpenAI: a new project service account; xAI: a new key from the management API. */
static int
api_create(struct rot_ctx *c, const struct pk_conf *cf, struct rot_fields *out,
           struct rk_error *err)
{
    struct secret *admin = NULL, *value = NULL;
    char name[128], id[PK_ID_MAX + 1];
    struct rk_error e2 = {0};
    int r;

    if ((r = read_admin_key(c, cf, &admin, err)) != 0)
        return r;
    created_name(cf->path, name, sizeof(name));
    if (cf->source == PK_OPENAI_ADMIN)
        r = pk_openai_create(&cf->api, admin, cf->project_id, name, &value, id, sizeof(id), err);
    else
        r = pk_xai_create(&cf->api, admin, cf->team_id, cf->acls, name, &value, id, sizeof(id),
                          err);
    if (r == 0 && (r = made_fields(c, cf, value, id, out, err)) != 0) {
        if (cf->source == PK_OPENAI_ADMIN)
            (void)pk_openai_delete(&cf->api, admin, cf->project_id, id, &e2);
        else
            (void)pk_xai_delete(&cf->api, admin, id, &e2);
    }
    secret_free(admin);
    return r;
}

static int
pk_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    struct pk_conf cf;
    struct secret *v = NULL;
    int r;

    if ((r = pk_conf_load(c->secret, &cf, err)) != 0)
        return r;
    /* A key handed in by a person is used even where an API could make one (an outage of the
     * admin API, a key made by hand on purpose); it has no id, so a person retires it. */
    if ((cf.source == PK_OPENAI_ADMIN || cf.source == PK_XAI_MANAGEMENT) && !input_given(c->input))
        return api_create(c, &cf, out, err);
    if ((r = person_key(c, &cf, &v, err)) != 0)
        return r;
    if ((r = provider_key_validate(c->secret, v, c->fp_key, err)) != 0) {
        secret_free(v);
        return r;
    }
    /* rot_fields_set takes v, also on failure. */
    return rot_fields_set(out, rotator_field(c->secret), v, 0, err);
}

/* ---- the check at the provider ---- */

static int
pk_test(struct rot_ctx *c, struct rk_error *err)
{
    struct pk_conf cf;
    int r, blocked;

    if ((r = pk_conf_load(c->secret, &cf, err)) != 0)
        return r;
    if (c->new_value == NULL)
        return rk_error_set(err, RK_EREJECTED, "%s: the candidate has no %s field", cf.path,
                            rotator_field(c->secret));
    r = pk_api_check(&cf.api, c->new_value, &blocked, err);
    if (r == -RK_EREJECTED)
        return rk_error_prefix(err, "%s refused the new key", cf.p->label);
    if (r == -RK_EUNAVAILABLE)
        return rk_error_prefix(err, "%s did not answer", cf.p->label);
    return r;
}

/* xAI management keys: a new key works only once it has propagated. Waits (doubling from
 * 250 ms to 4 s) until the check passes, up to propagation_timeout; then unavailable (the
 * candidate waits and the next run checks again). A key answered as blocked is refused at
 * once. A rollback's candidate (an older version) is not waited for: its test judges it. */
static int
pk_apply(struct rot_ctx *c, struct rk_error *err)
{
    struct pk_conf cf;
    int64_t start = time_mono_ms(), delay = 250;
    int r, blocked, checks = 0;

    if ((r = pk_conf_load(c->secret, &cf, err)) != 0)
        return r;
    if (cf.source != PK_XAI_MANAGEMENT || c->new_value == NULL ||
        rot_fields_get(c->new_fields, "api_key_id") == NULL || c->new_version < c->old_version)
        return 0;
    for (;;) {
        int64_t left;

        checks++;
        rk_error_clear(err);
        if ((r = pk_api_check(&cf.api, c->new_value, &blocked, err)) == 0) {
            log_info("%s: the new xAI key is live after %d check%s (%lld ms)", cf.path, checks,
                     checks == 1 ? "" : "s", (long long)(time_mono_ms() - start));
            return 0;
        }
        if (blocked || r == -RK_ENOMEM || r == -RK_EINVAL)
            return r;
        left = start + cf.propagation_ms - time_mono_ms();
        if (left <= 0) {
            char last[RK_ERRMSG_MAX];
            snprintf(last, sizeof(last), "%s", err->msg);
            return rk_error_set(err, RK_EUNAVAILABLE,
                                "the new xAI key is not live after %lld s (%d checks; last: "
                                "%.300s)",
                                (long long)(cf.propagation_ms / 1000), checks, last);
        }
        usleep((useconds_t)((delay < left ? delay : left) * 1000));
        if (delay < 4000)
            delay *= 2;
    }
}

/* ---- undo and retire ---- */

/* Deletes what the admin API made for the version whose fields are f (a service account, an
 * xAI key). *none = 1 when f holds no id (a person made that key). */
static int
delete_made(struct rot_ctx *c, const struct pk_conf *cf, const struct rot_fields *f, int *none,
            struct rk_error *err)
{
    const struct secret *id = NULL, *project = NULL;
    struct secret *admin = NULL;
    int r;

    *none = 0;
    if (cf->source == PK_OPENAI_ADMIN) {
        id = rot_fields_get(f, "service_account_id");
        project = rot_fields_get(f, "project_id");
    } else if (cf->source == PK_XAI_MANAGEMENT) {
        id = rot_fields_get(f, "api_key_id");
    }
    if (id == NULL) {
        *none = 1;
        return 0;
    }
    if ((r = read_admin_key(c, cf, &admin, err)) != 0)
        return r;
    if (cf->source == PK_OPENAI_ADMIN)
        r = pk_openai_delete(&cf->api, admin,
                             project != NULL ? (const char *)project->data : cf->project_id,
                             (const char *)id->data, err);
    else
        r = pk_xai_delete(&cf->api, admin, (const char *)id->data, err);
    secret_free(admin);
    return r;
}

/* A refused candidate the admin API made is deleted again (nothing else points at it). */
static int
pk_unapply(struct rot_ctx *c, struct rk_error *err)
{
    struct pk_conf cf;
    int r, none;

    if ((r = pk_conf_load(c->secret, &cf, err)) != 0)
        return r;
    if (c->new_version < c->old_version || c->new_fields == NULL)
        return 0;
    return delete_made(c, &cf, c->new_fields, &none, err);
}

/* Anthropic: the old key, found among the organization's keys by its partial hint, is set
 * inactive. -RK_EACTION when no key or several keys fit the hint. */
static int
anthropic_retire(struct rot_ctx *c, const struct pk_conf *cf, const char *fp, struct rk_error *err)
{
    struct secret *admin = NULL;
    char id[PK_ID_MAX + 1], status[32];
    int r, matches = 0;

    if ((r = read_admin_key(c, cf, &admin, err)) != 0)
        return r;
    r = pk_anthropic_find(&cf->api, admin, c->old_value, &matches, id, sizeof(id), status,
                          sizeof(status), err);
    if (r == 0 && matches != 1) {
        log_warn("%s: the Anthropic Admin API lists %s key whose hint fits the old one (%s)",
                 cf->path, matches == 0 ? "no" : "more than one", fp);
        r = rk_error_set(err, RK_EACTION, "deactivate the old Anthropic key (%s) at %s", fp,
                         cf->console);
    } else if (r == 0 && strcmp(status, "active") != 0) {
        log_info("%s: Anthropic key %s is %s already", cf->path, id,
                 status[0] != '\0' ? status : "not active");
    } else if (r == 0) {
        r = pk_anthropic_deactivate(&cf->api, admin, id, err);
    }
    secret_free(admin);
    return r;
}

/* After grace (at once for a revoke): the previous key stops working at the provider. */
static int
pk_retire(struct rot_ctx *c, struct rk_error *err)
{
    struct pk_conf cf;
    struct secret *cur = NULL;
    char fp[FINGERPRINT_LEN + 1] = "";
    int r, none = 0;

    if ((r = pk_conf_load(c->secret, &cf, err)) != 0)
        return r;
    if (cf.source == PK_PERSON || c->old_value == NULL)
        return 0; /* a person retires it (action-required), or the version has no key */
    r = c->read_secret(c->read_arg, cf.path, rotator_field(c->secret), &cur, err);
    if (r == -RK_ENOTFOUND)
        rk_error_clear(err);
    else if (r != 0)
        return r;
    if (cur != NULL && secret_equal(cur, c->old_value)) {
        /* A rollback made the previous key current again. */
        log_info("%s: the previous key is current again; nothing to retire", cf.path);
        secret_free(cur);
        return 0;
    }
    secret_free(cur);
    if (c->fp_key == NULL || fingerprint(c->fp_key, c->old_value->data, c->old_value->len, fp) != 0)
        snprintf(fp, sizeof(fp), "v%llu", (unsigned long long)c->old_version);
    if (cf.source == PK_ANTHROPIC_ADMIN)
        return anthropic_retire(c, &cf, fp, err);
    if ((r = delete_made(c, &cf, c->old_fields, &none, err)) != 0 || !none)
        return r;
    return rk_error_set(err, RK_EACTION, "revoke the old %s key (%s) at %s", cf.p->label, fp,
                        cf.console);
}

/* ---- the kind's row ---- */

static unsigned
pk_flags_for(const struct inv_secret *s)
{
    struct pk_conf cf;
    struct rk_error e = {0};

    if (pk_conf_load(s, &cf, &e) != 0)
        return ROT_F_MANUAL_INPUT | ROT_F_PERSON_FINISHES;
    switch (cf.source) {
    case PK_OPENAI_ADMIN:
    case PK_XAI_MANAGEMENT: return 0;
    case PK_ANTHROPIC_ADMIN: return ROT_F_MANUAL_INPUT;
    case PK_PERSON: break;
    }
    return ROT_F_MANUAL_INPUT | ROT_F_PERSON_FINISHES;
}

static int
pk_action_hint(const struct inv_secret *s, char *buf, size_t len)
{
    const struct pk_provider *p = provider_of(s, NULL);
    const char *console = inv_param(s, "console");

    if (p == NULL)
        return -RK_ENOTFOUND;
    snprintf(buf, len, "revoke the old %s key at %s", p->label,
             console != NULL ? console : p->console);
    return 0;
}

static int
pk_input_hint(const struct inv_secret *s, char *buf, size_t len)
{
    const struct pk_provider *p = provider_of(s, NULL);
    const char *console = inv_param(s, "console");

    if (p == NULL)
        return -RK_ENOTFOUND;
    snprintf(buf, len,
             "create a new %s API key at %s (the old one keeps working until it is "
             "retired)",
             p->label, console != NULL ? console : p->console);
    return 0;
}

static int
pk_check(const struct inv_secret *s, struct rk_error *err)
{
    struct pk_conf cf;
    int r;

    /* The pattern compiled when it was parsed (IS_REGEX); the default is the provider's. */
    if ((r = pk_conf_load(s, &cf, err)) != 0)
        return r;
    if (s->field != NULL &&
        (strcmp(s->field, "service_account_id") == 0 || strcmp(s->field, "project_id") == 0 ||
         strcmp(s->field, "api_key_id") == 0))
        return rk_error_set(err, RK_ECONFIG,
                            "field: %s is where rekey keeps the admin API's id; name the key's "
                            "field otherwise",
                            s->field);
    return 0;
}

static int
pk_defaults(struct inv_secret *s, struct rk_error *err)
{
    const struct pk_provider *p = provider_of(s, NULL);

    if (p == NULL)
        return 0; /* the loader reported the provider */
    if (s->pattern == NULL && (s->pattern = strdup(p->pattern)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if ((inv_param(s, "base_url") == NULL && inv_param_set(s, "base_url", p->base_url) != 0) ||
        (inv_param(s, "console") == NULL && inv_param_set(s, "console", p->console) != 0))
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

static void
pk_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
        void *arg)
{
    static const char *const urls[] = {"base_url", "admin_base_url", "management_base_url"};
    struct pk_conf cf;
    struct rk_error e = {0};
    int64_t min_iv = 0;
    char a[32], b[32];

    (void)inv;
    if (pk_conf_load(s, &cf, &e) != 0)
        return; /* check reported it */
    if (inv_param_duration(s, "min_interval", 0, &min_iv) == 0 && min_iv > 0 && s->every > 0 &&
        s->every < min_iv) {
        duration_format(s->every, a, sizeof(a));
        duration_format(min_iv, b, sizeof(b));
        report(arg, "error", "every %s is shorter than the provider's min_interval %s", a, b);
    }
    if (s->auto_rotate && (cf.source == PK_PERSON || cf.source == PK_ANTHROPIC_ADMIN))
        report(arg, "error", "%s",
               cf.prov == PK_ANTHROPIC
                   ? "auto: true on an Anthropic key: Anthropic has no API that creates keys, so "
                     "a person supplies each one (rekey opens an action item on schedule)"
               : cf.prov == PK_OPENAI
                   ? "auto: true needs admin_key_path and project_id (the OpenAI admin API "
                     "creates the keys); without them a person rotates this key"
                   : "auto: true needs management_key_path and team_id (the xAI management API "
                     "creates the keys); without them a person rotates this key");
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        const char *u = inv_param(s, urls[i]);
        size_t n = u != NULL ? strlen(u) : 0;
        if (u != NULL && strncmp(u, "http://", 7) == 0 && !url_is_loopback(u))
            report(arg, "error",
                   "%s sends keys over plain http to a non-loopback address; use "
                   "https",
                   urls[i]);
        while (n > 0 && u[n - 1] == '/')
            n--;
        if (n >= 3 && strncmp(u + n - 3, "/v1", 3) == 0)
            report(arg, "warning",
                   "%s ends in /v1, and rekey adds /v1/... itself; give the server's root (%s)",
                   urls[i],
                   strcmp(urls[i], "management_base_url") == 0 ? XAI_MANAGEMENT_URL
                                                               : cf.p->base_url);
    }
}

static const struct inv_setting provider_key_settings[] = {
    {.name = "provider",
     .type = IS_ENUM,
     .flags = IS_REQUIRED,
     .choices = "openai|anthropic|xai",
     .help = "the provider"},
    {.name = "pattern",
     .type = IS_REGEX,
     .help = "a POSIX ERE a new key must match (default: the provider's prefix and characters)",
     .offset = offsetof(struct inv_secret, pattern)},
    {.name = "base_url",
     .type = IS_URL,
     .help = "the provider's API, without /v1 (default: its public one)"},
    {.name = "console",
     .type = IS_URL,
     .help = "where a person creates and revokes keys (default: the provider's console)"},
    {.name = "admin_key_path",
     .type = IS_SECRET_PATH,
     .help = "OpenAI: the admin key that creates service accounts; Anthropic: the admin key "
             "that sets old keys inactive"},
    {.name = "admin_key_field",
     .type = IS_STRING,
     .def = "key",
     .help = "the field of admin_key_path"},
    {.name = "admin_base_url",
     .type = IS_URL,
     .help = "the admin API, without /v1 (default: base_url)"},
    {.name = "project_id",
     .type = IS_STRING,
     .help = "OpenAI: the project whose service accounts hold the keys (with admin_key_path)"},
    {.name = "management_key_path",
     .type = IS_SECRET_PATH,
     .help = "xAI: the management key that creates and deletes API keys"},
    {.name = "management_key_field",
     .type = IS_STRING,
     .def = "key",
     .help = "the field of management_key_path"},
    {.name = "management_base_url",
     .type = IS_URL,
     .help = "xAI: the management API (default: " XAI_MANAGEMENT_URL ")"},
    {.name = "team_id", .type = IS_STRING, .help = "xAI: the team the keys belong to"},
    {.name = "acls",
     .type = IS_LIST,
     .help = "xAI: the new key's ACLs (default: api-key:model:*, api-key:endpoint:*)"},
    {.name = "timeout",
     .type = IS_DURATION,
     .def = "30s",
     .max = 300,
     .help = "for each request to the provider"},
    {.name = "propagation_timeout",
     .type = IS_DURATION,
     .def = "120s",
     .max = 600,
     .help = "xAI: how long a new key may take to work everywhere"},
    {.name = "min_interval",
     .type = IS_DURATION,
     .help = "the shortest schedule the provider allows"},
    {0},
};

const struct rotator_ops rotator_provider_key = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "provider-key",
    .flags_for = pk_flags_for,
    .check = pk_check,
    .create = pk_create,
    .apply = pk_apply,
    .unapply = pk_unapply,
    .test = pk_test,
    .retire = pk_retire,
    .action_hint = pk_action_hint,
    .input_hint = pk_input_hint,
    .settings = provider_key_settings,
    .default_field = "api_key",
    .defaults = pk_defaults,
    .lint = pk_lint,
};
