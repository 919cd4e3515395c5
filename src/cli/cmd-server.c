/* rekey server: the Vault-compatible HTTP API on the store (docs/server.md).
 *
 * Normal mode: the configuration's store, listening on server.listen; it starts sealed unless a
 * key file is configured (REKEY_KEY_FILE or store.key_file); unseal over the API with shares.
 * Dev mode (-dev): a fresh store in a new temporary directory (removed at exit), initialised
 * with a key file there, unsealed, with a known or random root token, on 127.0.0.1:8200.
 *
 * The scheduler (the rotation daemon, engine/daemon.h) runs as a thread while the store is
 * unsealed: started by the app's on_unseal hook (dev mode and a key file at start, the API's
 * unseal later), stopped by on_seal (the API's seal, shutdown) after its rotation in flight.
 * The token sweeper runs beside it, the same way: it sleeps until the earliest token expiry in
 * the store's expiry index (token_sweep), or until a token created or renewed here expires
 * sooner (token_expiry_watch), and revokes each expired token with its children, so a child
 * stops working when its parent expires even if nobody presents the parent again. An idle
 * server with no token due makes no wake-up for it.
 *
 * Signals are blocked in every thread and taken by the main thread with sigwaitinfo, so the
 * HTTP workers and the scheduler never run a signal handler: SIGTERM/SIGINT stop accepting,
 * drain the requests in progress and stop the scheduler; SIGHUP reloads the configuration
 * (the scheduler re-plans) and the TLS certificate. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/app.h"
#include "audit/audit.h"
#include "api/http.h"
#include "api/server.h"
#include "cli/cli.h"
#include "api/routes-database.h"
#include "engine/daemon.h"
#include "engine/inventory.h"
#include "metrics/metrics.h"
#include "store/barrier.h"
#include "store/leader.h"
#include "cli/unseal.h"
#include "util/log.h"
#include "util/timeutil.h"

static const struct cli_opt opts[] = {
    {"config", OPT_VALUE, "FILE", "the configuration (inventory YAML); same as -c"},
    {"dev", OPT_FLAG, NULL, "development mode: a temporary in-place store, unsealed, root token"},
    {"dev-listen-address", OPT_VALUE, "ADDR", "dev mode: listen here (default 127.0.0.1:8200)"},
    {"dev-root-token-id", OPT_VALUE, "TOKEN",
     "dev mode: use this root token instead of a random one (visible to other local users in "
     "the process list: prefer $REKEY_DEV_ROOT_TOKEN_ID or $VAULT_DEV_ROOT_TOKEN_ID)"},
    {NULL, 0, NULL, NULL},
};

/* --- dev mode helpers --- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void
rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The example inventory for -dev without -config: ./examples/ai-gateway.yaml in the current
 * directory, else next to the source tree the binary was built in (BUILD/src/cli/rekey ->
 * ../../../examples), else the installed copy. NULL when none exists. */
static const char *
find_example(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n;

    snprintf(buf, len, "examples/ai-gateway.yaml");
    if (file_exists(buf))
        return buf;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')) != NULL) {
            *slash = '\0';
            char real[PATH_MAX];
            snprintf(buf, len, "%s/../../../examples/ai-gateway.yaml", exe);
            if (file_exists(buf) && realpath(buf, real) != NULL) {
                snprintf(buf, len, "%s", real);
                return buf;
            }
            snprintf(buf, len, "%s/../share/rekey/examples/ai-gateway.yaml", exe);
            if (file_exists(buf))
                return buf;
        }
    }
    return NULL;
}

static const char empty_inventory[] = "version: 1\n";

/* --- the token sweeper thread --- */

#define SWEEP_RETRY_S 5 /* after a store error, the next try */

struct sweeper {
    pthread_mutex_t mu; /* guards everything below; never held while joining */
    pthread_cond_t cv;
    pthread_t th;
    int running, stop;
    int64_t next; /* the earliest expiry known (0 = none): the thread wakes then */
    struct api_app *app;
};

/* token_expiry_watch callback: a new expiry, from any request thread. */
static void
sweeper_tell(void *arg, int64_t expire_time)
{
    struct sweeper *sw = arg;

    pthread_mutex_lock(&sw->mu);
    if (sw->next == 0 || expire_time < sw->next) {
        sw->next = expire_time;
        pthread_cond_signal(&sw->cv);
    }
    pthread_mutex_unlock(&sw->mu);
}

static void *
sweeper_main(void *arg)
{
    struct sweeper *sw = arg;
    struct api_app *app = sw->app;
    struct rk_error err = {0};
    size_t n = 0;
    int warned = 0;

    /* Records from before the expiry index get their entries (once per store). */
    if (token_expiry_backfill(app->br, &n, &err) != 0)
        log_warn("token sweeper: indexing older tokens failed (%s); retried at the next unseal",
                 err.msg);
    else if (n > 0)
        log_info("token sweeper: indexed the expiry of %zu older token%s", n, n == 1 ? "" : "s");
    pthread_mutex_lock(&sw->mu);
    while (!sw->stop) {
        int64_t now, due = 0, wait_s;
        int r;

        sw->next = 0; /* what is told from now on is newer than this sweep's view */
        pthread_mutex_unlock(&sw->mu);
        now = time_now();
        r = token_sweep(app->br, now, 0, &n, &due, &err);
        if (n > 0) {
            token_cache_flush(app->tokens);
            log_info("token sweeper: revoked %zu expired token%s with their children", n,
                     n == 1 ? "" : "s");
        }
        if (r != 0 && r != -RK_ESEALED && !warned++)
            log_warn("token sweeper: %s; retrying every %ds", err.msg, SWEEP_RETRY_S);
        if (r == 0)
            warned = 0;
        pthread_mutex_lock(&sw->mu);
        if (r == -RK_ESEALED)
            due = 0; /* on_seal stops this thread; an unseal starts a new one */
        else if (r != 0)
            due = now + SWEEP_RETRY_S;
        if (due != 0 && (sw->next == 0 || due < sw->next))
            sw->next = due;
        while (!sw->stop && sw->next == 0)
            pthread_cond_wait(&sw->cv, &sw->mu);
        /* Sleep until the second sw->next starts (expiries are whole seconds): the wait is
         * computed from time_now() so a faked clock (REKEY_NOW) never spins. */
        while (!sw->stop && (wait_s = sw->next - time_now()) > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)wait_s;
            ts.tv_nsec = 0;
            pthread_cond_timedwait(&sw->cv, &sw->mu, &ts); /* told of an earlier one, or due */
        }
    }
    pthread_mutex_unlock(&sw->mu);
    return NULL;
}

/* Starts the sweeper (on_unseal: the write lock is held; the thread does not take it). */
static void
sweeper_start(struct sweeper *sw, struct api_app *app)
{
    int failed = 0;

    /* Told first, outside sw->mu (the watch calls sweeper_tell, which takes it, under its own
     * lock): an expiry committed before the thread's first sweep is in what it reads, one
     * committed after is told. */
    token_expiry_watch(sweeper_tell, sw);
    pthread_mutex_lock(&sw->mu);
    if (!sw->running) {
        sw->app = app;
        sw->stop = 0;
        sw->next = 0;
        if (pthread_create(&sw->th, NULL, sweeper_main, sw) == 0)
            sw->running = 1;
        else
            failed = 1;
    }
    pthread_mutex_unlock(&sw->mu);
    if (failed) {
        token_expiry_watch(NULL, NULL);
        log_error("the token sweeper did not start: expired tokens are revoked when next "
                  "looked up (a child never outlives its parent's expiry all the same)");
    }
}

static void
sweeper_stop(struct sweeper *sw)
{
    int running;

    token_expiry_watch(NULL, NULL);
    pthread_mutex_lock(&sw->mu);
    running = sw->running;
    sw->running = 0;
    sw->stop = 1;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
    if (running)
        pthread_join(sw->th, NULL);
}

/* --- the scheduler thread --- */

struct sched {
    pthread_mutex_t mu; /* guards th and closed; never held while waiting for the thread */
    struct daemon_thread *th;
    int closed; /* shutting down: an unseal no longer starts it */
    int unsealed;
    struct sweeper sweep;
    /* The election (store/leader.h): the scheduler and the lease manager run only while this
     * server leads and is unsealed. Set once the API listens, cleared after it stopped. */
    struct leader *leader;
};

static void
sched_rdlock(void *app)
{
    api_app_rdlock(app);
}

static void
sched_unlock(void *app)
{
    api_app_unlock(app);
}

static void sched_stop(struct sched *s, int closing);

/* The election's callback: this server starts or stops leading (from the election's thread,
 * or from leader_campaign in on_unseal on a store that one server has to itself). */
static void
sched_on_lead(void *arg, int leading)
{
    struct api_app *app = arg;
    struct sched *s = app->server_ctx;
    struct rk_error err = {0};

    if (!leading) {
        api_leases_stop();
        sched_stop(s, 0);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->th == NULL && !s->closed && s->unsealed &&
        daemon_thread_start(app->kv, &app->inv, sched_rdlock, sched_unlock, app, &app->inv_gen,
                            &s->th, &err) != 0)
        log_error("the scheduler did not start: %s; due rotations wait for a restart", err.msg);
    if (!s->closed && s->unsealed)
        api_leases_start(app); /* database leases: the expiry thread loads them */
    pthread_mutex_unlock(&s->mu);
}

/* on_unseal: called with the app's write lock held; the thread waits for it to go. */
static void
sched_on_unseal(struct api_app *app)
{
    struct sched *s = app->server_ctx;
    struct rk_error err = {0};
    struct leader *l;

    pthread_mutex_lock(&s->mu);
    s->unsealed = 1;
    if (!s->closed)
        sweeper_start(&s->sweep, app);
    l = s->closed ? NULL : s->leader;
    pthread_mutex_unlock(&s->mu);
    if (l != NULL && leader_campaign(l, &err) != 0)
        log_error("%s; this server stays a standby", err.msg);
}

/* Stops the scheduler and waits for it (its rotation in flight ends first). closing: no new
 * start afterwards. */
static void
sched_stop(struct sched *s, int closing)
{
    struct daemon_thread *th;

    pthread_mutex_lock(&s->mu);
    th = s->th;
    s->th = NULL;
    if (closing)
        s->closed = 1;
    pthread_mutex_unlock(&s->mu);
    if (th != NULL)
        (void)daemon_thread_stop(th, NULL);
}

/* on_seal: called without the app's lock (the thread may hold it for a rotation). */
static void
sched_on_seal(struct api_app *app)
{
    struct sched *s = app->server_ctx;

    leader_resign(s->leader); /* set and cleared only while no request runs */
    pthread_mutex_lock(&s->mu);
    s->unsealed = 0;
    pthread_mutex_unlock(&s->mu);
    sweeper_stop(&s->sweep);
    api_leases_stop();
    sched_stop(s, 0);
}

/* Shutdown, first half: no new rotation starts and no unseal starts a scheduler; returns at
 * once (sched_stop waits). */
static void
sched_close(struct sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    daemon_thread_request_stop(s->th);
    pthread_mutex_unlock(&s->mu);
}

static void
sched_replan(struct sched *s)
{
    pthread_mutex_lock(&s->mu);
    daemon_thread_replan(s->th);
    pthread_mutex_unlock(&s->mu);
}

/* Makes the election once the API listens (its address, server.api_addr or made from the
 * listen address, is the leader's in sys/leader) and takes part if the store is unsealed
 * already. */
static int
server_lead(struct sched *s, struct api_app *app, const char *listen, int tls, struct rk_error *err)
{
    char addr[300];
    struct leader *l = NULL;
    int r, unsealed, named;

    api_app_rdlock(app);
    if ((named = app->inv != NULL && app->inv->api_addr != NULL))
        snprintf(addr, sizeof(addr), "%s", app->inv->api_addr);
    else
        snprintf(addr, sizeof(addr), "%s://%s", tls ? "https" : "http", listen);
    api_app_unlock(app);
    if (!named && barrier_backend(app->br)->ops->ha != NULL &&
        (strncmp(listen, "0.0.0.0:", 8) == 0 || strncmp(listen, "[::]:", 5) == 0))
        log_warn("server.listen %s is no address another server can reach: set server.api_addr "
                 "to this server's URL, or standbys cannot forward to it when it leads",
                 listen);
    if ((r = leader_new(barrier_backend(app->br), addr, sched_on_lead, app, &l, err)) != 0)
        return r;
    pthread_mutex_lock(&s->mu);
    s->leader = l;
    unsealed = s->unsealed && !s->closed;
    pthread_mutex_unlock(&s->mu);
    if (unsealed && leader_campaign(l, err) != 0)
        log_error("%s; this server stays a standby", err->msg);
    return 0;
}

/* --- the server --- */

static void
print_banner(const struct api_app *app, const char *listen, int tls, const char *root_token,
             const char *cfg)
{
    char addr[300];

    if (app->inv != NULL && app->inv->api_addr != NULL)
        snprintf(addr, sizeof(addr), "%s", app->inv->api_addr);
    else
        snprintf(addr, sizeof(addr), "%s://%s", tls ? "https" : "http", listen);
    printf("==> rekey server started%s. Log data will stream in below:\n\n",
           app->dev ? " in dev mode" : "");
    printf("             Api Address: %s\n", addr);
    printf("                 Version: %s (Vault API %s)\n", REKEY_VERSION, API_VERSION_STRING);
    printf("           Configuration: %s\n", cfg != NULL ? cfg : "(none)");
    if (app->dev) {
        printf("\nWARNING! dev mode is enabled! The store lives in a temporary directory and is\n"
               "deleted when the server stops. Do not keep real secrets in it.\n\n"
               "You may need to set the following environment variables:\n\n"
               "    $ export VAULT_ADDR='%s'\n"
               "    $ export VAULT_TOKEN='%s'\n"
               "    $ export REKEY_ADDR='%s'\n"
               "    $ export REKEY_TOKEN='%s'\n\n"
               "Root Token: %s\n\n"
               "Development mode should NOT be used in production installations!\n\n",
               addr, root_token, addr, root_token, root_token);
    }
    fflush(stdout);
}

static int
exec_server(struct cli_ctx *ctx, int argc, char **argv)
{
    int dev = cli_opt(ctx, "dev") != NULL;
    const char *cfg = cli_opt(ctx, "config"), *dev_listen = cli_opt(ctx, "dev-listen-address");
    const char *root_id = cli_opt(ctx, "dev-root-token-id"), *key_path = NULL;
    char tmpdir[PATH_MAX], path[PATH_MAX + 64], example[PATH_MAX + 64];
    char store_loc[PATH_MAX + 80], keyfile[PATH_MAX + 64];
    struct api_app_opts ao = {0};
    struct api_app *app = NULL;
    struct inventory *inv = NULL;
    struct secret *root_key = NULL, *root_token = NULL;
    struct http_config hc = {0};
    struct http_server *srv = NULL;
    struct route *routes = NULL;
    size_t nroutes = 0;
    struct sched sched = {
        .mu = PTHREAD_MUTEX_INITIALIZER,
        .th = NULL,
        .closed = 0,
        .sweep = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}};
    struct secret *env_root_id = NULL;
    sigset_t mask;
    int r, rc = CLI_ERROR, have_tmp = 0;

    (void)argc;
    (void)argv;
    /* The dev root token id may come from the environment (Vault's VAULT_DEV_ROOT_TOKEN_ID, or
     * REKEY_DEV_ROOT_TOKEN_ID first), which other users cannot read, unlike the command line.
     * It is copied and then wiped and removed, so no hook (a child) inherits it. The flag wins. */
    for (size_t i = 0; i < 2; i++) {
        const char *name = i == 0 ? "REKEY_DEV_ROOT_TOKEN_ID" : "VAULT_DEV_ROOT_TOKEN_ID";
        char *v = getenv(name);
        if (v != NULL && *v != '\0' && dev && root_id == NULL && env_root_id == NULL &&
            (env_root_id = secret_from_str(v)) == NULL) {
            r = rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
            goto fail;
        }
        if (v != NULL) {
            secure_wipe(v, strlen(v));
            unsetenv(name);
        }
    }
    if (env_root_id != NULL)
        root_id = (const char *)env_root_id->data;
    if (!dev && (dev_listen != NULL || root_id != NULL))
        return cli_usage_error(ctx, "-dev-listen-address and -dev-root-token-id need -dev");
    if (root_id != NULL && *root_id == '\0')
        return cli_usage_error(ctx, "-dev-root-token-id needs a value");
    if (cfg == NULL &&
        (!dev || strcmp(ctx->config_path, "rekey.yaml") != 0 || file_exists(ctx->config_path)))
        cfg = ctx->config_path; /* -c FILE, $REKEY_CONFIG, ./rekey.yaml */
    if (dev && cfg == NULL) {
        cfg = find_example(example, sizeof(example));
        ao.audit_off = 1; /* its audit: block names a file beside the example */
    }

    /* Signals: blocked before any thread starts, so every thread inherits the mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg != NULL)
        r = inventory_load_file(cfg, &inv, &ctx->err);
    else
        r = inventory_load_string("(empty)", empty_inventory, strlen(empty_inventory), &inv,
                                  &ctx->err);
    if (r != 0)
        goto fail;

    if (dev) {
        const char *td = getenv("TMPDIR");
        snprintf(tmpdir, sizeof(tmpdir), "%s/rekey-dev-XXXXXX",
                 td != NULL && *td == '/' && strlen(td) < PATH_MAX - 32 ? td : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            r = rk_error_set(&ctx->err, RK_EIO, "creating a temporary directory: %s",
                             strerror(errno));
            goto fail;
        }
        have_tmp = 1;
        log_info("dev mode: temporary store in %s (removed at exit)", tmpdir);
        snprintf(store_loc, sizeof(store_loc), "sqlite:%s/rekey.db", tmpdir);
        snprintf(keyfile, sizeof(keyfile), "%s/root.key", tmpdir);
        root_key = secret_new(ROOT_KEY_LEN);
        if (root_key == NULL || RAND_bytes(root_key->data, ROOT_KEY_LEN) != 1) {
            r = rk_error_set(&ctx->err, RK_EINTERNAL, "cannot draw a root key");
            goto fail;
        }
        if ((r = keyfile_write(keyfile, root_key, &ctx->err)) != 0)
            goto fail;
        ao.store_location = store_loc;
        ao.key_file = keyfile;
        ao.dev = 1;
    } else {
        key_path = getenv("REKEY_KEY_FILE");
        if ((key_path == NULL || *key_path == '\0') && inv->key_file != NULL)
            key_path = inv->key_file;
        if (key_path != NULL && *key_path != '\0') {
            if ((r = keyfile_read(key_path, &root_key, &ctx->err)) != 0)
                goto fail;
            ao.root_key = root_key;
            ao.key_file = key_path;
        }
    }
    ao.config_file = cfg;
    ao.inv = inv;
    ao.on_unseal = sched_on_unseal;
    ao.on_seal = sched_on_seal;
    ao.server_ctx = &sched;
    r = api_app_new(&ao, &app, &ctx->err);
    inv = NULL; /* owned by the app now, even on failure */
    if (r != 0)
        goto fail;
    if (dev) {
        if ((r = api_app_init_root(app, root_key, "{\"type\":\"keyfile\"}", root_id, &root_token,
                                   &ctx->err)) != 0)
            goto fail;
    } else if (!api_app_initialized(app)) {
        log_warn("the store is not initialised: run 'rekey operator init' or PUT /v1/sys/init");
    } else if (api_app_sealed(app)) {
        log_info("the store is sealed: unseal it with PUT /v1/sys/unseal (%d of %d shares)",
                 app->threshold, app->shares);
    }
    secret_free(root_key);
    root_key = NULL;

    hc.listen = dev ? (dev_listen != NULL ? dev_listen : "127.0.0.1:8200") : app->inv->listen;
    if (!dev) {
        hc.tls_cert_file = app->inv->tls_cert;
        hc.tls_key_file = app->inv->tls_key;
        hc.tls_disable = app->inv->tls_disable;
    }
    /* Honoured in dev mode too: it is a limit, not a place to listen (tests shorten it). */
    hc.conn_timeout_s = (unsigned)app->inv->request_timeout;
    hc.trusted_proxies = app->inv->trusted_proxies; /* likewise: whose X-Forwarded-For counts */
    if ((r = api_routes(&routes, &nroutes, &ctx->err)) != 0 ||
        (r = metrics_server_start(&ctx->err)) != 0) /* counts from the first request */
        goto fail;
    if ((r = http_server_start(&hc, routes, nroutes, app, &srv, &ctx->err)) != 0) {
        rk_error_prefix(&ctx->err, "starting the HTTP server");
        goto fail;
    }
    app->server = srv;
    {
        char lbuf[280];
        const char *l = hc.listen != NULL ? hc.listen : "127.0.0.1:8200";
        const char *colon = strrchr(l, ':');
        snprintf(lbuf, sizeof(lbuf), "%.*s:%u", colon != NULL ? (int)(colon - l) : (int)strlen(l),
                 l, http_server_port(srv));
        print_banner(app, lbuf, hc.tls_cert_file != NULL,
                     root_token != NULL ? (const char *)root_token->data : "", cfg);
        if ((r = server_lead(&sched, app, lbuf, hc.tls_cert_file != NULL, &ctx->err)) != 0)
            goto fail;
    }
    secret_free(root_token);
    root_token = NULL;

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&mask, &si);

        if (sig < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (sig == SIGHUP) {
            struct rk_error e = {0};
            log_info("SIGHUP: reloading the configuration%s",
                     hc.tls_cert_file != NULL ? " and the TLS certificate" : "");
            if (app->config_file != NULL) {
                if (api_app_reload(app, &e) != 0) {
                    log_error("reload failed, keeping the old configuration: %s", e.msg);
                } else {
                    log_info("reloaded %s", app->config_file);
                    sched_replan(&sched);
                }
            }
            if (hc.tls_cert_file != NULL && http_server_reload_tls(srv, &e) != 0)
                log_error("TLS reload failed, keeping the old certificate: %s", e.msg);
            continue;
        }
        log_info("%s: stopping (draining requests in progress, then the scheduler)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    rc = CLI_OK;
    goto out;
fail:
    rc = cli_fail(ctx, r);
out:
    /* The scheduler starts no new rotation while the requests drain; then it is waited for
     * (its rotation in flight completes, or fails and is undone; the engine journals each
     * step), and only then the store closes. */
    sched_close(&sched);
    http_server_stop(srv);
    sweeper_stop(&sched.sweep);
    sched_stop(&sched, 1);
    leader_free(sched.leader); /* resigns: a standby takes over at once */
    sched.leader = NULL;
    metrics_server_stop();
    api_app_free(app);
    secret_free(env_root_id);
    inventory_free(inv);
    free(routes);
    secret_free(root_key);
    secret_free(root_token);
    if (have_tmp) {
        snprintf(path, sizeof(path), "%s", tmpdir);
        rm_tree(path);
    }
    if (rc == CLI_OK)
        log_info("stopped");
    return rc;
}

const struct cli_cmd cmd_server = {
    .name = "server",
    .args = "",
    .summary = "serve the Vault-compatible HTTP API (-dev: a throw-away unsealed server)",
    .help = "Serves the store named by the configuration over Vault's HTTP API (KV v2, tokens,\n"
            "policies, sys/seal and unseal). It starts sealed unless a key file is configured\n"
            "(REKEY_KEY_FILE or store.key_file): unseal with PUT /v1/sys/unseal, or initialise a\n"
            "new store with PUT /v1/sys/init. The listener is server.listen; TLS with\n"
            "server.tls_cert and server.tls_key; a non-loopback address without TLS is refused\n"
            "unless server.tls_disable is true. A request must arrive within\n"
            "server.request_timeout (default 30s) or the connection is closed.\n"
            "With -dev: a fresh store in a temporary directory (deleted at exit), unsealed, on\n"
            "127.0.0.1:8200 (-dev-listen-address), with a root token printed at start\n"
            "(-dev-root-token-id, or better $REKEY_DEV_ROOT_TOKEN_ID or $VAULT_DEV_ROOT_TOKEN_ID,\n"
            "to choose it: a flag's value is visible to every local user in the process list);\n"
            "the inventory is -config, else examples/ai-gateway.yaml from the current directory\n"
            "or the source tree.\n"
            "Tokens: every TTL and renewal is capped by server.max_lease_ttl (default 768h); a\n"
            "child token never outlives its parent, and expired tokens are revoked with their\n"
            "children as they expire (docs/server.md, \"Token lifetimes\").\n"
            "While unsealed, the rotation scheduler runs inside the server (as `rekey run` does):\n"
            "due rotations, retries, finishes after grace, reminders for manual secrets.\n"
            "Signals: SIGHUP reloads the configuration (the scheduler re-plans) and the\n"
            "certificate; the listener settings (server.*) are read at start only. SIGTERM or\n"
            "SIGINT stop accepting, let requests in progress finish, let the rotation in flight\n"
            "finish, and exit 0.",
    .min_args = 0,
    .max_args = 0,
    .needs = 0,
    .opts = opts,
    .exec = exec_server,
};
