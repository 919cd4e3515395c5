/* app.c: the server's application context: store, seal state, unseal progress, policies and
 * the per-request authorisation (see app.h). */
#include "api/app.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "api/status.h"
#include "audit/audit.h"
#include "engine/inventory.h"
#include "engine/rotation.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "store/shamir.h"
#include "util/enc.h"
#include "util/log.h"

#define POLICY_PREFIX "sys/policy/"
#define POLICY_CACHE_MAX 256

struct api_policy_cache {
    pthread_mutex_t mu;
    struct policy *p[POLICY_CACHE_MAX];
    size_t n;
};

/* --- small helpers --- */

static void
uuid_new(char out[40])
{
    unsigned char b[16];

    if (RAND_bytes(b, sizeof(b)) != 1)
        memset(b, 0, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 40, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static void
progress_reset_locked(struct api_app *app)
{
    for (size_t i = 0; i < app->nprogress; i++) {
        secret_free(app->progress[i]);
        app->progress[i] = NULL;
    }
    app->nprogress = 0;
    app->nonce[0] = '\0';
}

static void
seal_config_load_locked(struct api_app *app)
{
    char *cfg = barrier_seal_config(app->br);
    json_t *root = cfg != NULL ? json_loads(cfg, 0, NULL) : NULL;
    const char *t = NULL;
    int s = 0, th = 0;

    app->seal_type[0] = '\0';
    app->shares = app->threshold = 0;
    if (root != NULL &&
        json_unpack(root, "{s:s, s?i, s?i}", "type", &t, "shares", &s, "threshold", &th) == 0) {
        snprintf(app->seal_type, sizeof(app->seal_type), "%s", t);
        app->shares = s;
        app->threshold = th;
    }
    json_decref(root);
    free(cfg);
}

/* The cluster's id and name (sys/health, sys/leader), the same for every server of one store
 * and across restarts: made from the store's keyed fingerprints of fixed texts (so they say
 * nothing about any secret). Until the first unseal, the per-process id made at open stands. */
static void
cluster_id_from_store(struct api_app *app)
{
    char fp[3][FINGERPRINT_LEN + 1], hex[3 * FINGERPRINT_HEX + 1];
    static const char *const texts[3] = {"rekey cluster id 1", "rekey cluster id 2",
                                         "rekey cluster id 3"};

    for (int i = 0; i < 3; i++) {
        if (barrier_fingerprint(app->br, texts[i], strlen(texts[i]), fp[i], NULL) != 0)
            return;
        memcpy(hex + i * FINGERPRINT_HEX, fp[i] + FINGERPRINT_PREFIX_LEN, FINGERPRINT_HEX);
    }
    hex[3 * FINGERPRINT_HEX] = '\0';
    snprintf(app->cluster_id, sizeof(app->cluster_id), "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8,
             hex + 12, hex + 16, hex + 20);
    snprintf(app->cluster_name, sizeof(app->cluster_name), "rekey-cluster-%.8s", app->cluster_id);
}

/* Starts the engine after an unseal; called with the write lock held. */
static int
after_unseal_locked(struct api_app *app, struct rk_error *err)
{
    struct rk_error fe = {0};
    size_t nfp = 0;
    int r;

    cluster_id_from_store(app);

    /* After the unseal that made the fingerprint key, stored ones are recomputed (kv.h). */
    if (kv_fingerprints_migrate(app->kv, &nfp, &fe) != 0)
        log_warn("recomputing the fingerprints of older versions failed: %s", fe.msg);
    else if (nfp > 0)
        log_info("recomputed the fingerprints of %zu secret%s as keyed ones", nfp,
                 nfp == 1 ? "" : "s");
    if (app->engine == NULL && (r = engine_open(app->kv, app->inv, &app->engine, err)) != 0) {
        barrier_seal(app->br);
        return r;
    }
    if (app->on_unseal != NULL)
        app->on_unseal(app);
    /* The devices enabled through sys/audit are stored behind the barrier. */
    if (audit_devices_load(app->audit, &fe) != 0)
        log_error("audit: loading the devices of sys/audit failed: %s", fe.msg);
    log_info("unsealed");
    return 0;
}

/* The configuration's audit file, or NULL when there is none (no audit: block). */
static const char *
audit_file_of(const struct api_app *app, const struct inventory *inv)
{
    return !app->audit_off && inv->audit_enabled ? inv->audit_path : NULL;
}

/* Who a request comes from, for its audit entry (http_set_identify): the token's display
 * name, accessor and policies from the token cache, spending nothing and answering nothing. */
static void
identify(struct http_request *req, void *vapp, struct http_identity *id)
{
    struct api_app *app = vapp;
    const char *tok = http_request_token(req);
    struct token_info ti = {0};

    if (tok == NULL || *tok == '\0' || barrier_sealed(app->br) ||
        token_lookup_cached(app->tokens, app->br, tok, &ti, NULL) != 0)
        return;
    snprintf(id->actor, sizeof(id->actor), "%s", ti.display_name);
    snprintf(id->accessor, sizeof(id->accessor), "%s", ti.accessor);
    for (size_t i = 0; i < ti.npolicies; i++)
        http_identity_add_policy(id, ti.policies[i]);
    token_info_clear(&ti);
}

/* --- lifecycle --- */

int
api_app_new(const struct api_app_opts *o, struct api_app **out, struct rk_error *err)
{
    struct api_app *app;
    const char *loc;
    int r = -RK_ENOMEM;

    *out = NULL;
    if ((app = calloc(1, sizeof(*app))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    pthread_rwlock_init(&app->lock, NULL);
    if ((app->policies = calloc(1, sizeof(*app->policies))) == NULL)
        goto nomem;
    pthread_mutex_init(&app->policies->mu, NULL);
    if (token_cache_new(0, 0, &app->tokens) != 0)
        goto nomem;
    pthread_mutex_init(&app->kvcfg.mu, NULL);
    app->dev = o->dev;
    app->on_unseal = o->on_unseal;
    app->on_seal = o->on_seal;
    app->server_ctx = o->server_ctx;
    if (o->config_file != NULL && (app->config_file = strdup(o->config_file)) == NULL)
        goto nomem;
    if (o->key_file != NULL && (app->key_file = strdup(o->key_file)) == NULL)
        goto nomem;
    if (o->inv != NULL) {
        app->inv = o->inv;
    } else if (o->config_file != NULL) {
        if ((r = inventory_load_file(o->config_file, &app->inv, err)) != 0)
            goto fail;
    } else {
        r = rk_error_set(err, RK_ECONFIG, "no configuration");
        goto fail;
    }
    loc = o->store_location != NULL ? o->store_location : inventory_store_location(app->inv);
    if (loc == NULL || *loc == '\0') {
        r = rk_error_set(err, RK_ECONFIG, "no store: set store.path in the configuration");
        goto fail;
    }
    if ((r = backend_open(loc, &app->be, err)) != 0 ||
        (r = barrier_open(app->be, &app->br, err)) != 0) {
        rk_error_prefix(err, "opening store %s", loc);
        goto fail;
    }
    if ((r = kv_open(app->br, &app->kv, err)) != 0)
        goto fail;
    app->audit_off = o->audit_off;
    {
        const struct audit_opts ao = {audit_file_of(app, app->inv), app->br};
        if ((r = audit_open(&ao, &app->audit, err)) != 0)
            goto fail;
        http_set_identify(identify);
    }
    seal_config_load_locked(app);
    uuid_new(app->cluster_id);
    snprintf(app->cluster_name, sizeof(app->cluster_name), "rekey-cluster-%.8s", app->cluster_id);
    if (o->root_key != NULL && barrier_initialized(app->br)) {
        if ((r = barrier_unseal(app->br, o->root_key, err)) != 0 ||
            (r = after_unseal_locked(app, err)) != 0)
            goto fail;
    }
    *out = app;
    return 0;
nomem:
    r = rk_error_set(err, RK_ENOMEM, "out of memory");
fail:
    api_app_free(app);
    return r;
}

void
api_app_free(struct api_app *app)
{
    if (app == NULL)
        return;
    /* The scheduler uses the store and the inventory: stop it before they go. */
    if (app->on_seal != NULL)
        app->on_seal(app);
    engine_free(app->engine);
    app->engine = NULL;
    audit_free(app->audit); /* before the barrier it keys its HMACs with */
    app->audit = NULL;
    if (app->br != NULL)
        barrier_seal(app->br);
    progress_reset_locked(app);
    kv_free(app->kv);
    barrier_free(app->br);
    backend_close(app->be);
    inventory_free(app->inv);
    if (app->policies != NULL) {
        for (size_t i = 0; i < app->policies->n; i++)
            policy_free(app->policies->p[i]);
        pthread_mutex_destroy(&app->policies->mu);
        free(app->policies);
    }
    token_cache_free(app->tokens);
    if (app->tokens != NULL) /* kvcfg.mu was initialised right after */
        pthread_mutex_destroy(&app->kvcfg.mu);
    free(app->config_file);
    free(app->key_file);
    pthread_rwlock_destroy(&app->lock);
    free(app);
}

void
api_app_rdlock(struct api_app *app)
{
    pthread_rwlock_rdlock(&app->lock);
}

void
api_app_unlock(struct api_app *app)
{
    pthread_rwlock_unlock(&app->lock);
}

int
api_app_initialized(struct api_app *app)
{
    /* barrier_initialized reads the store: an unsealed store is initialised, and a store
     * never goes back to uninitialised, so the answer is remembered once it is yes. */
    if (!barrier_sealed(app->br) || atomic_load_explicit(&app->initialized, memory_order_relaxed))
        return 1;
    if (!barrier_initialized(app->br))
        return 0;
    atomic_store(&app->initialized, 1);
    return 1;
}

int
api_app_sealed(struct api_app *app)
{
    return barrier_sealed(app->br);
}

int
api_app_init_root(struct api_app *app, const struct secret *root_key, const char *seal_config,
                  const char *root_id, struct secret **root_token, struct rk_error *err)
{
    int r;

    *root_token = NULL;
    pthread_rwlock_wrlock(&app->lock);
    if (barrier_initialized(app->br)) {
        r = rk_error_set(err, RK_EEXISTS, "Vault is already initialized");
        goto out;
    }
    if ((r = barrier_init(app->br, root_key, seal_config, err)) != 0)
        goto out;
    seal_config_load_locked(app);
    if ((r = token_create_root(app->br, root_id, root_token, err)) != 0)
        goto out;
    r = after_unseal_locked(app, err);
out:
    pthread_rwlock_unlock(&app->lock);
    if (r != 0) {
        secret_free(*root_token);
        *root_token = NULL;
    }
    return r;
}

int
api_app_init_shares(struct api_app *app, int n, int k, struct secret ***shares_out,
                    struct secret **root_token, struct rk_error *err)
{
    struct secret *root = NULL, **shares = NULL;
    char seal[128];
    int r;

    *shares_out = NULL;
    *root_token = NULL;
    if (n < 1 || n > SHAMIR_MAX_SHARES || k < 1 || k > n || (k == 1 && n > 1))
        return rk_error_set(err, RK_EINVAL,
                            "secret_shares must be 1..%d and secret_threshold 2..secret_shares "
                            "(or both 1)",
                            SHAMIR_MAX_SHARES);
    if ((shares = calloc((size_t)n, sizeof(*shares))) == NULL ||
        (root = secret_new(ROOT_KEY_LEN)) == NULL) {
        free(shares);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    pthread_rwlock_wrlock(&app->lock);
    if (barrier_initialized(app->br)) {
        r = rk_error_set(err, RK_EEXISTS, "Vault is already initialized");
        goto out;
    }
    if (RAND_bytes(root->data, ROOT_KEY_LEN) != 1) {
        r = rk_error_set(err, RK_EINTERNAL, "the random generator failed");
        goto out;
    }
    if ((r = shamir_split(root, (unsigned)n, (unsigned)k, shares, err)) != 0)
        goto out;
    snprintf(seal, sizeof(seal), "{\"type\":\"shamir\",\"shares\":%d,\"threshold\":%d}", n, k);
    if ((r = barrier_init(app->br, root, seal, err)) != 0)
        goto out;
    seal_config_load_locked(app);
    r = token_create_root(app->br, NULL, root_token, err);
    /* Like Vault: the operator unseals with the shares. */
    barrier_seal(app->br);
out:
    pthread_rwlock_unlock(&app->lock);
    secret_free(root);
    if (r != 0) {
        for (int i = 0; i < n; i++)
            secret_free(shares[i]);
        free(shares);
        secret_free(*root_token);
        *root_token = NULL;
        return r;
    }
    *shares_out = shares;
    log_info("initialised with %d unseal shares, threshold %d", n, k);
    return 0;
}

int
api_app_unseal_share(struct api_app *app, const char *share, struct rk_error *err)
{
    struct secret *s = NULL, *key = NULL;
    int r = 0;

    pthread_rwlock_wrlock(&app->lock);
    if (!barrier_initialized(app->br)) {
        r = rk_error_set(err, RK_EINVAL, "Vault is not initialized");
        goto out;
    }
    if (!barrier_sealed(app->br))
        goto out;
    if (strcmp(app->seal_type, "shamir") != 0 || app->threshold < 1) {
        r = rk_error_set(err, RK_EINVAL,
                         "this store is sealed with a key file: restart the server with "
                         "REKEY_KEY_FILE or store.key_file set");
        goto out;
    }
    /* Hex as shamir_split prints it or base64 (Vault's keys_base64), of a share of this root
     * key: a share of another length or encoding is refused here, before it counts towards the
     * threshold, so the progress stays as it was. */
    if ((r = shamir_share_parse(share, strlen(share), ROOT_KEY_LEN, &s, err)) != 0)
        goto out;
    for (size_t i = 0; i < app->nprogress; i++) {
        if (secret_equal(app->progress[i], s)) {
            r = rk_error_set(err, RK_EINVAL, "this key share was already provided");
            goto out;
        }
    }
    if (app->nprogress == 0)
        uuid_new(app->nonce);
    if (app->nprogress >= API_MAX_SHARES) {
        r = rk_error_set(err, RK_ELIMIT, "too many shares");
        goto out;
    }
    app->progress[app->nprogress++] = s;
    s = NULL;
    if (app->nprogress < (size_t)app->threshold)
        goto out;
    r = shamir_combine(app->progress, (unsigned)app->threshold, &key, err);
    if (r == 0)
        r = barrier_unseal(app->br, key, err);
    progress_reset_locked(app);
    if (r == 0)
        r = after_unseal_locked(app, err);
    else
        log_warn("unseal failed: %s", err->msg);
out:
    pthread_rwlock_unlock(&app->lock);
    secret_free(s);
    secret_free(key);
    return r;
}

int
api_app_unseal_key(struct api_app *app, const struct secret *root_key, struct rk_error *err)
{
    int r = 0;

    pthread_rwlock_wrlock(&app->lock);
    if (barrier_sealed(app->br)) {
        r = barrier_unseal(app->br, root_key, err);
        if (r == 0)
            r = after_unseal_locked(app, err);
    }
    progress_reset_locked(app);
    pthread_rwlock_unlock(&app->lock);
    return r;
}

void
api_app_unseal_reset(struct api_app *app)
{
    pthread_rwlock_wrlock(&app->lock);
    progress_reset_locked(app);
    pthread_rwlock_unlock(&app->lock);
}

void
api_app_seal(struct api_app *app)
{
    /* Outside the lock: stopping the scheduler waits for its rotation in flight, which holds
     * the read lock. Nothing can unseal meanwhile (the store is not sealed yet); a concurrent
     * seal just calls it twice. */
    if (app->on_seal != NULL && !barrier_sealed(app->br))
        app->on_seal(app);
    pthread_rwlock_wrlock(&app->lock);
    if (!barrier_sealed(app->br)) {
        engine_free(app->engine);
        app->engine = NULL;
        barrier_seal(app->br);
        log_info("sealed");
    }
    progress_reset_locked(app);
    token_cache_flush(app->tokens);
    pthread_rwlock_unlock(&app->lock);
    audit_devices_unload(app->audit); /* loaded again at the next unseal */
}

int
api_app_reload(struct api_app *app, struct rk_error *err)
{
    struct inventory *ninv = NULL, *old;
    int r;

    if (app->config_file == NULL)
        return rk_error_set(err, RK_ECONFIG, "no configuration file to reload");
    if ((r = inventory_load_file(app->config_file, &ninv, err)) != 0)
        return r;
    pthread_rwlock_wrlock(&app->lock);
    old = app->inv;
    {
        const char *nl = inventory_store_location(ninv), *ol = inventory_store_location(old);
        if (!app->dev && nl != NULL && ol != NULL && strcmp(nl, ol) != 0)
            log_warn("the store location changed (%s); restart the server to use it", nl);
    }
    app->inv = ninv;
    app->inv_gen++;
    if (app->engine != NULL)
        engine_set_inventory(app->engine, ninv);
    pthread_rwlock_unlock(&app->lock);
    inventory_free(old);
    /* SIGHUP: every audit file is opened again (after logrotate), the chain continuing. */
    {
        struct rk_error ae = {0};
        if (audit_set_file(app->audit, audit_file_of(app, ninv), &ae) != 0)
            log_error("audit: %s", ae.msg);
        audit_reopen(app->audit);
    }
    return 0;
}

/* --- per request --- */

int
api_require_unsealed(struct http_request *req, struct api_app *app)
{
    if (!barrier_sealed(app->br)) /* an atomic load: the hot path */
        return 0;
    if (!api_app_initialized(app)) {
        http_respond_error(req, 503, "Vault is not initialized");
        return -RK_ESEALED;
    }
    if (barrier_sealed(app->br)) {
        http_respond_error(req, 503, "Vault is sealed");
        return -RK_ESEALED;
    }
    return 0;
}

int
api_respond_rk(struct http_request *req, int r, const struct rk_error *err)
{
    const char *msg = err != NULL && err->msg[0] != '\0' ? err->msg : rk_strerror(r);
    unsigned status = api_status_for(r); /* the one table (api/status.h) */

    /* Vault's bodies: a plain not found says nothing, sealed and denied say only that. */
    switch (-r) {
    case RK_ENOTFOUND: msg = NULL; break;
    case RK_ESEALED: msg = "Vault is sealed"; break;
    case RK_EPERM: msg = "permission denied"; break;
    default: break;
    }
    if (msg == NULL)
        (void)http_respond_error(req, status, NULL);
    else
        (void)http_respond_error(req, status, "%s", msg);
    return 0;
}

static void
auth_fail(struct http_request *req, const char *why)
{
    struct http_server *s = http_request_server(req);
    const char *ip = http_request_ip(req);

    if (s != NULL && ip != NULL)
        http_throttle_fail(s, ip);
    log_warn("auth failed: %s %s from %s: %s", http_request_method_str(req), http_request_path(req),
             ip != NULL ? ip : "?", why);
    http_respond_error(req, 403, "permission denied");
}

static int
authenticate(struct http_request *req, struct api_app *app, struct token_info *ti)
{
    struct http_server *s = http_request_server(req);
    const char *ip = http_request_ip(req), *tok;
    struct rk_error err = {0};
    int r = -RK_ENOTFOUND;

    if (api_require_unsealed(req, app) != 0)
        return -RK_ESEALED;
    /* The throttle limits failures, not addresses: a valid token is served even while its
     * address is throttled (a 256-bit token is not guessed; what the throttle bounds is a
     * guesser's rate and its log lines). A failure while throttled gets 429, uncounted. */
    tok = http_request_token(req);
    if (tok != NULL && *tok != '\0')
        r = token_lookup_cached(app->tokens, app->br, tok, ti, &err);
    if (r == -RK_ENOTFOUND || r == -RK_EINVAL) {
        if (s != NULL && ip != NULL && http_throttle_blocked(s, ip))
            http_respond_throttled(req);
        else
            auth_fail(req, tok == NULL || *tok == '\0' ? "no token" : "invalid token");
        return -RK_EPERM;
    }
    if (r != 0) {
        api_respond_rk(req, r, &err);
        return r;
    }
    return 0;
}

/* Spends a use of a limited token after the request was allowed. */
static int
spend(struct http_request *req, struct api_app *app, struct token_info *ti)
{
    struct token_info t2 = {0};
    struct rk_error err = {0};
    int r;

    if (ti->num_uses == 0)
        return 0;
    r = token_use(app->br, http_request_token(req), &t2, &err);
    if (r == 0) {
        /* Vault reports the uses left after this request's. The last use revoked the token
         * and its children, which may be cached. */
        ti->num_uses = t2.num_uses - 1;
        if (t2.num_uses == 1)
            token_cache_flush(app->tokens);
        token_info_clear(&t2);
        return 0;
    }
    token_info_clear(ti);
    if (r == -RK_ENOTFOUND || r == -RK_EINVAL) {
        auth_fail(req, "token uses exhausted");
        return -RK_EPERM;
    }
    api_respond_rk(req, r, &err);
    return r;
}

int
api_authenticate(struct http_request *req, struct api_app *app, int spend_use,
                 struct token_info *ti)
{
    struct token_info local = {0};
    struct token_info *t = ti != NULL ? ti : &local;
    int r;

    memset(t, 0, sizeof(*t));
    if ((r = authenticate(req, app, t)) != 0)
        return r;
    if (spend_use && (r = spend(req, app, t)) != 0)
        return r;
    token_info_clear(&local);
    return 0;
}

/* Loads ti's policies (missing ones are skipped, as Vault does). *pols: n referenced entries;
 * free with pols_free. */
static int
pols_load(struct api_app *app, const struct token_info *ti, struct policy ***pols, size_t *n,
          struct rk_error *err)
{
    struct policy **v = calloc(ti->npolicies + 1, sizeof(*v));
    size_t k = 0;

    *pols = NULL;
    *n = 0;
    if (v == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (size_t i = 0; i < ti->npolicies; i++) {
        int r = api_policy_get(app, ti->policies[i], &v[k], err);
        if (r == 0)
            k++;
        else if (r != -RK_ENOTFOUND) {
            for (size_t j = 0; j < k; j++)
                policy_free(v[j]);
            free(v);
            return r;
        }
    }
    *pols = v;
    *n = k;
    return 0;
}

static void
pols_free(struct policy **pols, size_t n)
{
    for (size_t i = 0; i < n; i++)
        policy_free(pols[i]);
    free(pols);
}

int
api_token_capabilities(struct api_app *app, const struct token_info *ti, const char *acl_path,
                       unsigned *caps, struct rk_error *err)
{
    struct policy **pols = NULL;
    size_t n = 0;
    int r;

    *caps = 0;
    if ((r = pols_load(app, ti, &pols, &n, err)) != 0)
        return r;
    *caps = n > 0 ? policy_capabilities(pols, n, acl_path) : 0;
    pols_free(pols, n);
    return 0;
}

int
api_authorize(struct http_request *req, struct api_app *app, const char *acl_path, unsigned cap,
              struct token_info *ti)
{
    struct token_info local = {0};
    struct token_info *t = ti != NULL ? ti : &local;
    struct policy **pols = NULL;
    struct rk_error err = {0};
    size_t n = 0;
    int r, ok;

    memset(t, 0, sizeof(*t));
    if ((r = authenticate(req, app, t)) != 0)
        return r;
    if (t->root) {
        ok = 1;
    } else {
        if ((r = pols_load(app, t, &pols, &n, &err)) != 0) {
            token_info_clear(t);
            api_respond_rk(req, r, &err);
            return r;
        }
        ok = n > 0 && policy_check(pols, n, acl_path, cap);
        pols_free(pols, n);
    }
    if (!ok) {
        /* A valid token denied a path: not a guessing attempt, so not throttled. */
        log_warn("permission denied: %s %s from %s (accessor %s)", http_request_method_str(req),
                 http_request_path(req), http_request_ip(req), t->accessor);
        token_info_clear(t);
        http_respond_error(req, 403, "permission denied");
        return -RK_EPERM;
    }
    if ((r = spend(req, app, t)) != 0)
        return r;
    token_info_clear(&local);
    return 0;
}

/* --- policies --- */

/* A policy's name as stored: the router's name rule (router_name_check, the one for names in
 * paths), then lowercased (policy names are case-insensitive, as in Vault). */
static int
name_norm(const char *name, char *out, size_t outlen)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n >= outlen || router_name_check(name, n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[n] = '\0';
    return 0;
}

static void
cache_drop(struct api_app *app, const char *name)
{
    struct api_policy_cache *c = app->policies;

    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(policy_name(c->p[i]), name) == 0) {
            policy_free(c->p[i]);
            c->p[i] = c->p[--c->n];
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

int
api_policy_get(struct api_app *app, const char *name, struct policy **out, struct rk_error *err)
{
    struct api_policy_cache *c = app->policies;
    char nm[POLICY_NAME_MAX + 1], key[sizeof(POLICY_PREFIX) + POLICY_NAME_MAX + 1];
    struct secret *val = NULL;
    struct policy *p = NULL;
    int r;

    *out = NULL;
    if (name_norm(name, nm, sizeof(nm)) != 0)
        return rk_error_set(err, RK_ENOTFOUND, "no such policy");
    if (strcmp(nm, "root") == 0)
        return policy_builtin("root", out, err);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(policy_name(c->p[i]), nm) == 0) {
            *out = policy_ref(c->p[i]);
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
    snprintf(key, sizeof(key), POLICY_PREFIX "%s", nm);
    r = barrier_get(app->br, key, &val, NULL, err);
    if (r == -RK_ENOTFOUND && strcmp(nm, "default") == 0)
        r = policy_builtin("default", &p, err);
    else if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no such policy");
    else if (r == 0)
        r = policy_parse(nm, (const char *)val->data, val->len, &p, err);
    secret_free(val);
    if (r != 0)
        return r;
    pthread_mutex_lock(&c->mu);
    if (c->n == POLICY_CACHE_MAX) { /* full: start over (policies are few in practice) */
        for (size_t i = 0; i < c->n; i++)
            policy_free(c->p[i]);
        c->n = 0;
    }
    c->p[c->n++] = policy_ref(p);
    pthread_mutex_unlock(&c->mu);
    *out = p;
    return 0;
}

int
api_policy_put(struct api_app *app, const char *name, const char *text, size_t len,
               struct rk_error *err)
{
    char nm[POLICY_NAME_MAX + 1], key[sizeof(POLICY_PREFIX) + POLICY_NAME_MAX + 1];
    struct policy *p = NULL;
    int r;

    if (name_norm(name, nm, sizeof(nm)) != 0)
        return rk_error_set(err, RK_EINVAL, "invalid policy name");
    if (strcmp(nm, "root") == 0)
        return rk_error_set(err, RK_EINVAL, "cannot update \"root\" policy");
    if ((r = policy_parse(nm, text, len, &p, err)) != 0)
        return r;
    policy_free(p);
    snprintf(key, sizeof(key), POLICY_PREFIX "%s", nm);
    r = barrier_put(app->br, key, text, len, err);
    cache_drop(app, nm);
    return r;
}

int
api_policy_delete(struct api_app *app, const char *name, struct rk_error *err)
{
    char nm[POLICY_NAME_MAX + 1], key[sizeof(POLICY_PREFIX) + POLICY_NAME_MAX + 1];
    int r;

    if (name_norm(name, nm, sizeof(nm)) != 0)
        return rk_error_set(err, RK_EINVAL, "invalid policy name");
    if (strcmp(nm, "root") == 0 || strcmp(nm, "default") == 0)
        return rk_error_set(err, RK_EINVAL, "cannot delete \"%s\" policy", nm);
    snprintf(key, sizeof(key), POLICY_PREFIX "%s", nm);
    r = barrier_del(app->br, key, err);
    cache_drop(app, nm);
    return r == -RK_ENOTFOUND ? 0 : r;
}

struct names {
    char **v;
    size_t n, cap;
};

static int
names_add(struct names *nl, const char *s)
{
    for (size_t i = 0; i < nl->n; i++)
        if (strcmp(nl->v[i], s) == 0)
            return 0;
    if (nl->n == nl->cap) {
        size_t nc = nl->cap ? nl->cap * 2 : 16;
        char **nv = realloc(nl->v, nc * sizeof(char *));
        if (nv == NULL)
            return -RK_ENOMEM;
        nl->v = nv;
        nl->cap = nc;
    }
    if ((nl->v[nl->n] = strdup(s)) == NULL)
        return -RK_ENOMEM;
    nl->n++;
    return 0;
}

static int
pol_list_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strncmp(key, POLICY_PREFIX, strlen(POLICY_PREFIX)) != 0)
        return 0;
    return names_add(arg, key + strlen(POLICY_PREFIX));
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
api_policy_list(struct api_app *app, char ***names, size_t *n, struct rk_error *err)
{
    struct names nl = {0};
    int r;

    *names = NULL;
    *n = 0;
    if ((r = names_add(&nl, "default")) != 0 || (r = names_add(&nl, "root")) != 0 ||
        (r = barrier_list(app->br, POLICY_PREFIX, NULL, 0, pol_list_cb, &nl, err)) != 0) {
        if (r == -RK_ENOMEM)
            rk_error_set(err, RK_ENOMEM, "out of memory");
        api_names_free(nl.v, nl.n);
        return r;
    }
    qsort(nl.v, nl.n, sizeof(char *), cmp_names);
    *names = nl.v;
    *n = nl.n;
    return 0;
}

void
api_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n && names != NULL; i++)
        free(names[i]);
    free(names);
}
