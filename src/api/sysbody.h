/* sysbody.h: the request bodies of the sys/ routes (init, unseal, ACL policy write,
 * capabilities-self), decoded and checked without touching the app or the store.
 *
 * Every decoder is a pure function of the JSON body (fuzzed by fuzz/sysbody-fuzzer.c). The body
 * is what http_request_json hands a route: a JSON object parsed with JSON_REJECT_DUPLICATES, but
 * any json_t (or NULL) is refused cleanly. Unknown members are ignored, as Vault does.
 *
 * Ownership: strings and json_t pointers in the decoded structs are borrowed from body; they are
 * valid until body is released (json_decref) and must not be freed by the caller. Nothing is
 * copied, so a secret (the unseal key share) exists only in body: the server makes jansson wipe
 * every block it frees (json_wipe_on_free), so releasing body wipes it.
 *
 * Error messages are the exact texts the routes answer with (HTTP 400); they never quote a
 * value from the body. */
#ifndef REKEY_API_SYSBODY_H
#define REKEY_API_SYSBODY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define SYS_INIT_SHARES_MAX 255 /* secret_shares and secret_threshold are 1..255 */

/* PUT sys/init: {"secret_shares": N, "secret_threshold": K}; both JSON integers. */
struct sys_init_body {
    int secret_shares;    /* 1..SYS_INIT_SHARES_MAX */
    int secret_threshold; /* 1..SYS_INIT_SHARES_MAX; not checked against secret_shares here
                           * (api_app_init_shares refuses k > n and k == 1 < n) */
};

/* Decodes a sys/init body. Returns 0 with *out filled; -RK_EINVAL when either member is missing
 * or not a JSON integer; -RK_ELIMIT when both are integers but one is outside 1..255. The two
 * codes exist because the route answers a key-file server's refusal between them. On error
 * *out is zeroed and err holds the message. */
int sys_init_body_decode(json_t *body, struct sys_init_body *out, struct rk_error *err);

/* PUT sys/unseal: {"key": "<share>", "reset": bool, "migrate": bool}, all optional. */
struct sys_unseal_body {
    const char *key; /* borrowed from body (a SECRET, wiped when body is freed); NULL when reset
                      * is set and no key was given; not checked for hex/base64 (the app does) */
    int reset;       /* drop the unseal progress; key is then ignored */
    int migrate;     /* accepted and ignored (rekey has no seal migration) */
};

/* Decodes a sys/unseal body. Returns 0 with *out filled (key non-NULL unless reset), or
 * -RK_EINVAL when key is not a string, reset or migrate not a boolean, or there is neither a key
 * nor reset: true. On error *out is zeroed. */
int sys_unseal_body_decode(json_t *body, struct sys_unseal_body *out, struct rk_error *err);

/* PUT sys/policies/acl/<name> and sys/policy/<name>: {"policy": "<HCL>"} or the old
 * {"rules": "<HCL>"}. */
struct sys_policy_body {
    const char *text; /* borrowed from body; may be "" (the policy parser rejects it later) */
    size_t len;       /* strlen(text): a body is parsed without JSON_ALLOW_NUL */
};

/* Decodes a policy write body: "policy" when it is a string, else "rules" when it is a string.
 * Returns 0 with *out filled, or -RK_EINVAL when neither is a string. On error *out is zeroed. */
int sys_policy_body_decode(json_t *body, struct sys_policy_body *out, struct rk_error *err);

/* POST sys/capabilities-self: {"paths": ["a", "b"]}, {"paths": "a"} or {"path": "a"}. */
struct sys_caps_body {
    json_t *paths;    /* borrowed: an array of strings, a string, or NULL (then path is used) */
    const char *path; /* borrowed: "path" when present (ignored when paths is present) */
    size_t npaths;    /* paths to ask about: the array's size (may be 0), else 1 */
};

/* Decodes a capabilities-self body. Returns 0 with *out filled, or -RK_EINVAL when paths is not
 * a list or a string, path is not a string, neither is present, or an element of the paths
 * list is not a string. On error *out is zeroed. */
int sys_caps_body_decode(json_t *body, struct sys_caps_body *out, struct rk_error *err);

/* The i-th path (i < b->npaths) of a decoded capabilities body, borrowed from the body; NULL
 * when i is out of range. */
const char *sys_caps_body_path(const struct sys_caps_body *b, size_t i);

#endif
