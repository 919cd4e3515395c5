/* hook-http.c: one HTTP(S) request with libcurl, in process (so a secret never appears on a
 * command line). Headers and body are rendered in secure memory and handed to libcurl without
 * copies of ours (the header list nodes point into the rendered secrets); the URL may hold only
 * {{path}} and {{version}}. http and https only, no redirects, no proxy from the environment,
 * TLS verified unless tls_verify is false. Pass = the expected status. */
#include "hooks/hook.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/httpc.h"
#include "util/log.h"

/* Bytes of a failing response that are logged (masked); 2^12 - 1 so that the block with the
 * secret's NUL byte is 4 KiB in the buddy-allocated secure heap. */
#define BODY_LOG_MAX 4095

static int
http_check(const struct hook_def *h, struct rk_error *err)
{
    struct rk_error e = {0};

    if (h->url == NULL || h->url[0] == '\0')
        return rk_error_set(err, RK_ECONFIG, "url: required for an http hook");
    if (hook_template_check(h->url, &e) != 0)
        return rk_error_set(err, RK_ECONFIG, "url: %s", e.msg);
    if (hook_template_has_secret(h->url))
        return rk_error_set(err, RK_ECONFIG,
                            "url: a secret placeholder may not be used in a "
                            "URL (URLs end up in logs); put it in a header or the body");
    if (strncmp(h->url, "http://", 7) != 0 && strncmp(h->url, "https://", 8) != 0)
        return rk_error_set(err, RK_ECONFIG, "url: expected http:// or https://");
    if (h->method != NULL && !httpc_is_token(h->method))
        return rk_error_set(err, RK_ECONFIG, "method: not a valid HTTP method");
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!httpc_is_token(h->headers[i].key))
            return rk_error_set(err, RK_ECONFIG, "headers: \"%s\" is not a valid header name",
                                h->headers[i].key ? h->headers[i].key : "");
        if (h->headers[i].value == NULL || hook_template_check(h->headers[i].value, &e) != 0)
            return rk_error_set(err, RK_ECONFIG, "headers.%s: %s", h->headers[i].key,
                                h->headers[i].value == NULL ? "missing value" : e.msg);
    }
    if (h->body != NULL && hook_template_check(h->body, &e) != 0)
        return rk_error_set(err, RK_ECONFIG, "body: %s", e.msg);
    if (h->expect_status != 0 && (h->expect_status < 100 || h->expect_status > 599))
        return rk_error_set(err, RK_ECONFIG, "expect_status: expected 100..599");
    return 0;
}

/* A failing response's body is logged masked: the first BODY_LOG_MAX bytes, kept by httpc in
 * secure memory (an endpoint may echo the credential). */
static int
http_run(const struct hook_def *h, const struct hook_ctx *ctx, int64_t timeout_ms,
         struct rk_error *err)
{
    const char *method = h->method != NULL ? h->method : "GET", *skip;
    int expect = h->expect_status != 0 ? h->expect_status : 200;
    char *url = NULL;
    struct secret **values = NULL, *body = NULL;
    struct httpc_header *hdrs = NULL;
    struct httpc_req req;
    struct httpc_resp resp = {0};
    int r = -RK_EINTERNAL;

    if (h->url == NULL)
        return rk_error_set(err, RK_ECONFIG, "no url");
    if (ctx->old_value == NULL && (skip = inv_hook_param(h, "without_old")) != NULL &&
        strcmp(skip, "skip") == 0) {
        /* A call that hands over the old value (a re-encryption from the old key to the new
         * one) has nothing to do on the first rotation. */
        log_info("hook %s: skipped: there is no old value (the first rotation)", h->name);
        return 0;
    }
    if ((r = hook_template_render_public(h->url, ctx, &url, err)) != 0) {
        rk_error_prefix(err, "url");
        goto out;
    }
    values = calloc(h->nheaders + 1, sizeof(*values));
    hdrs = calloc(h->nheaders + 1, sizeof(*hdrs));
    if (values == NULL || hdrs == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        const char *key = h->headers[i].key;

        if (key == NULL || h->headers[i].value == NULL) {
            r = rk_error_set(err, RK_ECONFIG, "headers[%zu]: name and value are required", i);
            goto out;
        }
        if ((r = hook_template_render(h->headers[i].value, ctx, &values[i], err)) != 0) {
            rk_error_prefix(err, "header %s", key);
            goto out;
        }
        hdrs[i].name = key;
        hdrs[i].value = values[i];
    }
    if (h->body != NULL && (r = hook_template_render(h->body, ctx, &body, err)) != 0) {
        rk_error_prefix(err, "body");
        goto out;
    }
    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url;
    req.headers = hdrs;
    req.nheaders = h->nheaders;
    req.body = body;
    req.timeout_ms = timeout_ms;
    req.connect_timeout_ms = timeout_ms;
    req.tls_insecure = !h->tls_verify;
    req.body_max = BODY_LOG_MAX;
    if ((r = httpc_do(&req, &resp, err)) != 0) {
        /* A target that did not answer is "unavailable" (rotator.h); the message says which. */
        if (r != -RK_ETIMEOUT && r != -RK_ENOMEM && r != -RK_EINVAL)
            r = -RK_EUNAVAILABLE;
        goto out;
    }
    if (resp.status != expect) {
        hook_log_output(h, "response", resp.body->data, resp.len, resp.truncated, ctx);
        r = rk_error_set(
            err, httpc_outcome(0, resp.status) == -RK_EUNAVAILABLE ? RK_EUNAVAILABLE : RK_EHOOK,
            "expected HTTP %d, got %ld (%s %s)", expect, resp.status, method, url);
        goto out;
    }
    r = 0;
out:
    httpc_resp_free(&resp);
    if (values != NULL)
        for (size_t i = 0; i < h->nheaders; i++)
            secret_free(values[i]);
    free(values);
    free(hdrs);
    secret_free(body);
    free(url);
    return r;
}

static const struct inv_setting http_settings[] = {
    {.name = "url",
     .type = IS_URL,
     .flags = IS_REQUIRED,
     .help = "http:// or https:// URL",
     .offset = offsetof(struct hook_def, url)},
    {.name = "method",
     .type = IS_ENUM,
     .def = "GET",
     .choices = "GET|HEAD|POST|PUT|PATCH|DELETE",
     .help = "the request method",
     .offset = offsetof(struct hook_def, method)},
    {.name = "headers",
     .type = IS_HEADERS,
     .help = "header name: value (one line each)",
     .offset = offsetof(struct hook_def, headers),
     .count_offset = offsetof(struct hook_def, nheaders)},
    {.name = "body",
     .type = IS_TEMPLATE,
     .help = "the request body",
     .offset = offsetof(struct hook_def, body)},
    {.name = "expect_status",
     .type = IS_INT,
     .def = "200",
     .min = 100,
     .max = 599,
     .help = "the status that passes",
     .offset = offsetof(struct hook_def, expect_status)},
    {.name = "without_old",
     .type = IS_ENUM,
     .def = "run",
     .choices = "run|skip",
     .help = "skip: when the secret has no old value (its first rotation), the hook passes "
             "without a request"},
    {.name = "tls_verify",
     .type = IS_BOOL,
     .def = "true",
     .help = "verify the server's certificate",
     .offset = offsetof(struct hook_def, tls_verify)},
    {0},
};

/* 1 when the host of an http:// URL is a loopback address: localhost, 127.x.y.z or [::1] (and
 * not a name that merely starts like one, such as localhost.example.com). */
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

/* Plain http is fine on loopback; elsewhere a secret in a header or the body goes in clear. */
static void
http_lint(const struct hook_def *h, inv_lint_report_fn report, void *arg)
{
    int secret = hook_template_has_secret(h->body);

    if (h->url == NULL || strncmp(h->url, "http://", 7) != 0)
        return;
    for (size_t k = 0; k < h->nheaders; k++)
        secret |= hook_template_has_secret(h->headers[k].value);
    if (secret && !url_is_loopback(h->url))
        report(arg, "error", "sends a secret over plain http to a non-loopback address; use https");
}

const struct hook_ops hook_http_ops = {
    .version = HOOK_OPS_VERSION,
    .type = HOOK_HTTP,
    .name = "http",
    .check = http_check,
    .run = http_run,
    .settings = http_settings,
    .lint = http_lint,
};
