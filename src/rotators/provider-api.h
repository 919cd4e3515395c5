/* provider-api.h: the calls kind provider-key (provider-key.c) makes to the LLM providers' APIs,
 * one function per endpoint, as the providers document them:
 *   check      OpenAI GET /v1/models (Bearer), Anthropic GET /v1/models (x-api-key and
 *              anthropic-version), xAI GET /v1/api-key (Bearer; the key's blocked/disabled
 *              flags): no tokens spent
 *   OpenAI     POST /v1/organization/projects/{project}/service_accounts (the key once, the
 *              account's id); DELETE …/service_accounts/{id}
 *   xAI        POST {management}/auth/teams/{team}/api-keys (apiKey once, apiKeyId);
 *              DELETE {management}/auth/api-keys/{id}
 *   Anthropic  GET /v1/organizations/api_keys (every page; each key's partial_key_hint);
 *              POST /v1/organizations/api_keys/{id} {"status": "inactive"}
 * Every credential travels in a header built in the secure heap (util/httpc); a URL holds ids
 * only; a provider's error body is never shown (OpenAI's quotes part of the key), only its
 * status and a short error code. The returns follow rotator.h's outcomes: 0; -RK_EREJECTED (the
 * provider refused: 401, 403, another 4xx, a blocked key, an answer without what it must hold);
 * -RK_EUNAVAILABLE (no answer, a timeout, 408, 429, 5xx); -RK_ENOMEM, -RK_EINVAL. Messages name
 * the method and URL, never a key. */
#ifndef REKEY_ROTATORS_PROVIDER_API_H
#define REKEY_ROTATORS_PROVIDER_API_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/secret.h"

#define PK_ID_MAX 128 /* bytes of a provider's id (project, team, account, key) */

enum pk_prov { PK_OPENAI = 0, PK_ANTHROPIC, PK_XAI };

/* Where and how to call one entry's provider. Borrowed strings. */
struct pk_api {
    enum pk_prov prov;
    const char *label;                                     /* "OpenAI", for messages */
    const char *path;                                      /* the entry's path, for log lines */
    const char *base_url, *admin_base_url, *mgmt_base_url; /* without /v1 */
    int64_t timeout_ms;                                    /* each request */
};

/* 1 for an id a provider gives (proj_…, svc_acct_…, apikey_…, a UUID): 1..PK_ID_MAX letters,
 * digits, '_', '-', '.' or ':' (it goes into URL paths). */
int pk_id_ok(const char *id);

/* Proves key works without spending tokens (see above). *blocked = 1 when xAI answered that
 * the key or its team is blocked or disabled. */
int pk_api_check(const struct pk_api *a, const struct secret *key, int *blocked,
                 struct rk_error *err);

/* A new service account named name in project, with admin's authority: *value gets its key
 * (secret_free), id[0..idlen) its id. An answer without a usable id is -RK_EREJECTED; one with
 * an id but no key deletes the account again and is -RK_EREJECTED. */
int pk_openai_create(const struct pk_api *a, const struct secret *admin, const char *project,
                     const char *name, struct secret **value, char *id, size_t idlen,
                     struct rk_error *err);

/* Deletes service account id of project; gone already (404) counts as done. -RK_ECORRUPT for
 * an unusable id. */
int pk_openai_delete(const struct pk_api *a, const struct secret *admin, const char *project,
                     const char *id, struct rk_error *err);

/* A new xAI API key named name in team with the ACLs acls (comma-joined; NULL: every model and
 * endpoint): *value gets the key, id[0..idlen) its id. As pk_openai_create. */
int pk_xai_create(const struct pk_api *a, const struct secret *mgmt, const char *team,
                  const char *acls, const char *name, struct secret **value, char *id, size_t idlen,
                  struct rk_error *err);

/* Deletes xAI key id; gone already (404) counts as done. */
int pk_xai_delete(const struct pk_api *a, const struct secret *mgmt, const char *id,
                  struct rk_error *err);

/* Lists the organization's Anthropic keys and counts in *matches those whose partial hint key
 * fits (provider_key_hint_match); the first one's id and status ("active", "inactive",
 * "archived") go to id[0..idlen) and status[0..stlen). Nothing of key is sent. */
int pk_anthropic_find(const struct pk_api *a, const struct secret *admin, const struct secret *key,
                      int *matches, char *id, size_t idlen, char *status, size_t stlen,
                      struct rk_error *err);

/* Sets Anthropic key id inactive. */
int pk_anthropic_deactivate(const struct pk_api *a, const struct secret *admin, const char *id,
                            struct rk_error *err);

/* 1 when key fits hint, a provider's partial key as listed by its admin API ("sk-ant-api03-R2D
 * ...igAA": the head before "...", the tail after it), else 0 (also for a hint without "..."
 * or with an empty head). Never logs. */
int provider_key_hint_match(const char *hint, const struct secret *key);

#endif
