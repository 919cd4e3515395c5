/* routes-metrics.c: GET /v1/sys/metrics?format=prometheus, the Prometheus text of this server
 * (metrics/metrics.h; every family in docs/metrics.md).
 *
 * Who may scrape: a token with read on sys/metrics, as in Vault; or anyone when the
 * configuration sets server.unauthenticated_metrics_access: true (read at each request, so a
 * SIGHUP applies it). Only an unauthenticated scrape can see a sealed server (a token cannot be
 * checked while sealed): it gets the server's families with rekey_sealed 1 and no entries.
 *
 * Only the Prometheus format is served: without format=prometheus the answer is 400 with a
 * message that says so (Vault's JSON shape of go-metrics is not reproduced).
 *
 * One text buffer is kept from scrape to scrape (scrapes take turns on it): at 10,000 entries
 * the text is 6 MB, and a new buffer each time costs more in page faults than the writing. It
 * is dropped when a scrape needed more than SCRAPE_KEEP_MAX. */
#include <pthread.h>
#include <string.h>

#include "api/app.h"
#include "api/server.h"
#include "engine/inventory.h"
#include "metrics/metrics.h"
#include "util/log.h"
#include "util/timeutil.h"

static int
unauthenticated_allowed(struct api_app *app)
{
    int ok;

    api_app_rdlock(app);
    ok = app->inv != NULL && app->inv->unauthenticated_metrics_access;
    api_app_unlock(app);
    return ok;
}

#define SCRAPE_KEEP_MAX (64u * 1024 * 1024)

static pthread_mutex_t scrape_mu = PTHREAD_MUTEX_INITIALIZER;
static struct prom_buf scrape_buf; /* under scrape_mu */

static int
h_metrics(struct http_request *req, void *vapp, struct rk_error *err)
{
    struct api_app *app = vapp;
    struct token_info ti = {0};
    struct metrics_seal seal;
    struct prom_buf *b = &scrape_buf;
    const char *format = http_request_query(req, "format");
    int r = 0;

    if (!unauthenticated_allowed(app)) {
        if (api_require_unsealed(req, app) != 0)
            return 0;
        if (api_authorize(req, app, "sys/metrics", CAP_READ, &ti) != 0)
            return 0;
        token_info_clear(&ti);
    }
    if (format == NULL || strcmp(format, "prometheus") != 0)
        return http_respond_error(req, 400,
                                  "only the Prometheus text format is served: "
                                  "GET /v1/sys/metrics?format=prometheus");
    seal.initialized = api_app_initialized(app);
    seal.sealed = api_app_sealed(app);
    pthread_mutex_lock(&scrape_mu);
    b->len = 0;
    b->oom = 0;
    metrics_render_build(b);
    metrics_render_server(metrics_server(), &seal, b);
    if (seal.initialized && !seal.sealed) {
        api_app_rdlock(app);
        if (app->inv != NULL)
            r = metrics_render_store(b, app->kv, app->inv, time_now(), err);
        api_app_unlock(app);
        if (r == -RK_ESEALED) { /* sealed meanwhile: the entries are left out */
            rk_error_clear(err);
            r = 0;
        }
    }
    if (r == 0 && b->oom)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r != 0) {
        log_warn("sys/metrics: %s", err->msg);
        prom_buf_free(b);
        pthread_mutex_unlock(&scrape_mu);
        return api_respond_rk(req, r, err);
    }
    r = http_respond_text(req, 200, PROM_CONTENT_TYPE, b->p, b->len);
    if (b->cap > SCRAPE_KEEP_MAX)
        prom_buf_free(b);
    pthread_mutex_unlock(&scrape_mu);
    return r;
}

const struct route routes_metrics[] = {
    {HTTP_GET, "/v1/sys/metrics", h_metrics, ROUTE_PARAM_NONE},
};
const size_t routes_metrics_count = sizeof(routes_metrics) / sizeof(routes_metrics[0]);
