/* app.h: the application context of `rekey server`: the store, barrier, KV engine, rotation
 * engine, inventory, tokens and policies, the seal state and the unseal progress, and the
 * authorisation check every route makes.
 *
 * How a route uses it (every handler, in this order):
 *
 *     struct api_app *app = vapp;
 *     struct token_info ti = {0};
 *     if (api_require_unsealed(req, app) != 0)        // answered 503 already
 *         return 0;
 *     if (api_authorize(req, app, "secret/data/a/b", CAP_READ, &ti) != 0)
 *         return 0;                                  // answered 403 (or 503/500) already
 *     api_app_rdlock(app);                           // only when using engine or inv
 *     ... app->kv, app->br, app->engine, app->inv ...
 *     api_app_unlock(app);
 *     token_info_clear(&ti);
 *
 * Locking: app->lock (a rwlock) guards the seal state, the unseal progress, app->engine,
 * app->inv and app->inv_gen. app->kv, app->br and app->be live as long as the app and may be
 * used without the lock (a request racing a seal gets -RK_ESEALED from the barrier: answer 503,
 * see api_respond_rk). Hold the read lock while using app->engine or app->inv (a rotation, an
 * inventory lookup): seal and SIGHUP reload take the write lock, so they wait for rotations in
 * flight and never free an inventory a request still reads. Never take the lock twice.
 *
 * The scheduler (the rotation daemon as a thread, engine/daemon.h) follows the same rule: it
 * takes the read lock around each timer it runs and reads app->inv only under it. The server
 * starts it from on_unseal and stops it from on_seal (see the hooks below).
 *
 * ACL paths are request paths without "/v1/" ("secret/data/a/b", "sys/policies/acl/x"). */
#ifndef REKEY_API_APP_H
#define REKEY_API_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "api/envelope.h"
#include "api/http.h"
#include "api/policy.h"
#include "api/token.h"
#include "util/err.h"
#include "util/secret.h"

struct backend;
struct barrier;
struct kv;
struct engine;
struct inventory;
struct api_policy_cache;
struct api_app;
struct audit;

#define API_MAX_SHARES 255
#define API_KVCFG_TTL_MS 1000
#define API_VERSION_STRING "1.15.0+rekey" /* reported as Vault's version (clients compare it) */

struct api_app_opts {
    const char *config_file;    /* the inventory YAML (re-read by api_app_reload); may be NULL
                                 * only when inv is given */
    struct inventory *inv;      /* already loaded inventory; ownership passes to the app */
    const char *store_location; /* overrides the inventory's store ("sqlite:PATH"); may be NULL */
    const struct secret *root_key; /* unseal with this key at start (read by the caller from
                                    * REKEY_KEY_FILE or store.key_file); NULL: start sealed */
    const char *key_file;          /* that key file's path, if any (sys/init then refuses) */
    int dev;                       /* -dev: reported in logs; the caller initialises the store */
    int audit_off;                 /* ignore the configuration's audit: block (-dev with the
                                    * example inventory, which names a file in its directory) */
    /* Copied into struct api_app before anything can unseal (a key file unseals in
     * api_app_new): see the hooks there. May be NULL. */
    void (*on_unseal)(struct api_app *app);
    void (*on_seal)(struct api_app *app);
    void *server_ctx;
};

struct api_app {
    pthread_rwlock_t lock; /* see the header comment */
    struct backend *be;
    struct barrier *br;
    struct kv *kv;
    struct engine *engine;      /* non-NULL while unsealed; under lock */
    struct inventory *inv;      /* under lock */
    uint64_t inv_gen;           /* under lock: bumped each time inv is replaced */
    struct http_server *server; /* set by the server after http_server_start (for throttling) */
    char *config_file;
    char *key_file; /* a configured key file (sys/init refuses shares then) */
    int dev;
    struct audit *audit; /* the audit log (audit/audit.h): the configuration's file and the
                          * devices of sys/audit, loaded at unseal; never NULL once made */
    int audit_off;       /* api_app_opts.audit_off */

    /* Seal configuration (from barrier_seal_config) and the unseal progress; under lock.
     * The shares given so far live in the secure heap and are wiped on reset, on success
     * and on free. */
    char seal_type[16]; /* "shamir" or "keyfile"; "" before init */
    int shares, threshold;
    struct secret *progress[API_MAX_SHARES];
    size_t nprogress;
    char nonce[40]; /* a UUID per unseal attempt ("" when none is in progress) */

    char cluster_name[64];
    char cluster_id[40];

    struct api_policy_cache *policies; /* parsed policies, invalidated on write */
    struct token_cache *tokens;        /* validated tokens (token.h), flushed on seal, revoke,
                                        * renew and a token's last use */
    atomic_int initialized;            /* sticky: 1 once the store was seen initialised */

    /* The KV mount configuration (secret/config) as routes-kv.c last read it: every write
     * needs it, and it changes almost never. Served for at most API_KVCFG_TTL_MS; a write
     * through this process drops it at once (gen keeps a read that raced the write from
     * storing the old value). Another server on the same store sees a change within the TTL. */
    struct {
        pthread_mutex_t mu;
        int valid;
        int64_t read_ms;
        uint64_t gen;
        uint32_t max_versions;
        int cas_required;
        int64_t delete_version_after;
    } kvcfg;

    /* Hooks the server sets (through api_app_opts) so unseal and seal start and stop the
     * scheduler; may be NULL. on_unseal runs after every successful unseal, with the write lock
     * held (or, in api_app_new, before any request can come): it must not take the lock nor
     * wait for a thread that does. on_seal runs before a seal (and in api_app_free) WITHOUT the
     * lock, so it may wait for a thread that holds or wants the read lock (the scheduler
     * finishing its rotation in flight); it may run when nothing was started. */
    void (*on_unseal)(struct api_app *app);
    void (*on_seal)(struct api_app *app);
    void *server_ctx;
};

/* Opens the store (o->store_location, else the inventory's), wraps it in a barrier and KV,
 * and unseals it with o->key_file when given. Does not initialise a store (see
 * api_app_init_root and api_app_init_shares). Returns 0 with *out (api_app_free) or
 * -RK_E* with the message in err (-RK_EBADKEY for a wrong key file). */
int api_app_new(const struct api_app_opts *o, struct api_app **out, struct rk_error *err);

/* Calls on_seal, seals (wiping keys and progress), closes the store, frees everything.
 * Accepts NULL. */
void api_app_free(struct api_app *app);

/* Read lock for using app->engine / app->inv. */
void api_app_rdlock(struct api_app *app);
void api_app_unlock(struct api_app *app);

/* 1 when the barrier is initialised / sealed. Thread-safe. */
int api_app_initialized(struct api_app *app);
int api_app_sealed(struct api_app *app);

/* Initialises an uninitialised store with root_key (ROOT_KEY_LEN bytes) and seal_config
 * (e.g. {"type":"keyfile"}), leaves it unsealed, starts the engine, and creates a root token
 * (policies ["root"], no expiry; the given id when root_id is not NULL, else random).
 * *root_token (caller frees with secret_free) gets it. Used by -dev.
 * Returns 0, -RK_EEXISTS when already initialised, -RK_E*. */
int api_app_init_root(struct api_app *app, const struct secret *root_key, const char *seal_config,
                      const char *root_id, struct secret **root_token, struct rk_error *err);

/* sys/init: a new random root key split into n shares, threshold k (seal config
 * {"type":"shamir","shares":n,"threshold":k}); creates the root token; then seals again, as
 * Vault does (the operator unseals with the shares). *shares_out gets a malloc'd array of n
 * shares (text as shamir_split prints them; secret_free each, free the array).
 * Returns 0, -RK_EEXISTS, -RK_EINVAL (bad n/k), -RK_E*. */
int api_app_init_shares(struct api_app *app, int n, int k, struct secret ***shares_out,
                        struct secret **root_token, struct rk_error *err);

/* Adds one unseal share (as text: hex or base64, like Vault). When the threshold is reached,
 * the root key is combined and the barrier unsealed, the engine started and on_unseal called.
 * Returns 0 (check api_app_sealed), -RK_EINVAL (malformed or repeated share: progress kept;
 * not initialised; a key-file store), -RK_EBADKEY or -RK_EINVAL from the combination when the
 * threshold was reached with a wrong share (progress reset, as in Vault). The message in err
 * never holds share material. */
int api_app_unseal_share(struct api_app *app, const char *share, struct rk_error *err);

/* Unseals with a whole root key (key file). Returns 0 or -RK_EBADKEY / -RK_E*. */
int api_app_unseal_key(struct api_app *app, const struct secret *root_key, struct rk_error *err);

/* Drops the unseal progress (sys/unseal {"reset":true}). */
void api_app_unseal_reset(struct api_app *app);

/* Seals: calls on_seal (before taking the lock), waits for requests holding the read lock,
 * frees the engine, wipes the keyring (barrier_seal) and the progress. Idempotent. */
void api_app_seal(struct api_app *app);

/* Re-reads the config file (SIGHUP) and swaps the inventory into app->inv and the engine under
 * the write lock, bumping app->inv_gen; the old one is freed after the lock is released (no
 * reader can hold it then). On failure the old inventory stays and err says file:line:col.
 * Returns 0 or -RK_ECONFIG / -RK_E*. The caller then tells the scheduler to re-plan. */
int api_app_reload(struct api_app *app, struct rk_error *err);

/* --- Per-request helpers (handlers). Each answers the request itself when it fails. --- */

/* 0 when unsealed; otherwise answers 503 {"errors":["Vault is sealed"]} (or, when not
 * initialised, 503 {"errors":["Vault is not initialized"]}) and returns -RK_ESEALED. */
int api_require_unsealed(struct http_request *req, struct api_app *app);

/* Authenticates the request's token (X-Vault-Token or Bearer) and checks that its policies
 * grant every bit of cap (enum capability in policy.h) on acl_path. Spends one use of a
 * limited token. Returns 0 when allowed, with *ti (may be NULL) filled: the caller calls
 * token_info_clear. Otherwise it has answered: 403 {"errors":["permission denied"]} for a
 * missing, unknown, expired or revoked token (counted by http_throttle_fail, logged with the
 * client IP, never the token), or 429 instead while the client is throttled (a valid token is
 * served all the same), 403 for a denied path, 503 when sealed, 500 on a store error; and
 * returns -RK_EPERM (or the store's code). */
int api_authorize(struct http_request *req, struct api_app *app, const char *acl_path, unsigned cap,
                  struct token_info *ti);

/* Authenticates only (no path check), for the token's own endpoints (lookup-self, ...).
 * Like api_authorize otherwise. When spend_use is 0 no use is spent. */
int api_authenticate(struct http_request *req, struct api_app *app, int spend_use,
                     struct token_info *ti);

/* Answers an error code with its status from the one table (api_status_for, api/status.h) and
 * Vault's body: {"errors":[]} for -RK_ENOTFOUND, "Vault is sealed" for -RK_ESEALED,
 * "permission denied" for -RK_EPERM, else the message from err (never a secret: rk_error
 * messages never hold one). Returns 0 (the handler's return value). */
int api_respond_rk(struct http_request *req, int r, const struct rk_error *err);

/* api_envelope, Vault's response envelope: see api/envelope.h. */

/* The capabilities that ti's policies grant on acl_path (policy_capabilities semantics).
 * Returns 0 (with *caps) or -RK_E*. */
int api_token_capabilities(struct api_app *app, const struct token_info *ti, const char *acl_path,
                           unsigned *caps, struct rk_error *err);

/* --- Policies: text in the barrier at "sys/policy/<name>", parsed cache in memory. --- */

/* Gets the parsed policy name (lowercased). "root" and "default" are built in (default may be
 * overwritten). Returns 0 with *out referenced (policy_free), -RK_ENOTFOUND, -RK_E*. */
int api_policy_get(struct api_app *app, const char *name, struct policy **out,
                   struct rk_error *err);

/* Parses and stores text as policy name, invalidating the cache. "root" is refused with
 * -RK_EINVAL. Returns 0, -RK_EINVAL / -RK_ELIMIT (message with line:col), -RK_E*. */
int api_policy_put(struct api_app *app, const char *name, const char *text, size_t len,
                   struct rk_error *err);

/* Deletes a policy ("root" and "default" refused with -RK_EINVAL). 0 also when absent. */
int api_policy_delete(struct api_app *app, const char *name, struct rk_error *err);

/* Lists the policy names (built-ins included), sorted; *names malloc'd strings in a malloc'd
 * array (api_names_free). */
int api_policy_list(struct api_app *app, char ***names, size_t *n, struct rk_error *err);
void api_names_free(char **names, size_t n);

#endif
