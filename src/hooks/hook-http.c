/* hook-http.c: one HTTP(S) request with libcurl, in process (so a secret never appears on a
 * command line). Headers and body are rendered in secure memory and handed to libcurl without
 * copies of ours (the header list nodes point into the rendered secrets); the URL may hold only
 * {{path}} and {{version}}. http and https only, no redirects, no proxy from the environment,
 * TLS verified unless tls_verify is false. Pass = the expected status. */
#include "hook.h"

#include <stdlib.h>
#include <string.h>

#include "util/curlload.h"
#include "util/log.h"

/* Bytes of a failing response that are logged (masked); 2^12 - 1 so that the block with the
 * secret's NUL byte is 4 KiB in the buddy-allocated secure heap. */
#define BODY_LOG_MAX 4095

static int
token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int
is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!token_char((unsigned char)*s))
            return 0;
    return 1;
}

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
    if (h->method != NULL && !is_token(h->method))
        return rk_error_set(err, RK_ECONFIG, "method: not a valid HTTP method");
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!is_token(h->headers[i].key))
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

/* The response body: the first BODY_LOG_MAX bytes in secure memory (an endpoint may echo the
 * credential), the rest counted and dropped. */
struct resp {
    struct secret *buf;
    size_t len;
    int truncated;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct resp *rs = arg;
    size_t n = size * nmemb, room = rs->buf->len - rs->len, take = n < room ? n : room;

    memcpy(rs->buf->data + rs->len, data, take);
    rs->len += take;
    if (take < n)
        rs->truncated = 1;
    return n;
}

static int
http_run(const struct hook_def *h, const struct hook_ctx *ctx, int64_t timeout_ms,
         struct rk_error *err)
{
    const char *method = h->method != NULL ? h->method : "GET";
    int expect = h->expect_status != 0 ? h->expect_status : 200;
    char *url = NULL, errbuf[CURL_ERROR_SIZE] = "";
    struct secret **lines = NULL, *body = NULL;
    struct curl_slist *nodes = NULL;
    struct resp rs = {NULL, 0, 0};
    CURL *c = NULL;
    CURLcode cc;
    long status = 0;
    int r = -RK_EINTERNAL;

    if ((r = curl_load(err)) != 0)
        return r;
    if (h->url == NULL)
        return rk_error_set(err, RK_ECONFIG, "no url");
    if ((r = hook_template_render_public(h->url, ctx, &url, err)) != 0) {
        rk_error_prefix(err, "url");
        goto out;
    }
    lines = calloc(h->nheaders + 1, sizeof(*lines));
    nodes = calloc(h->nheaders + 1, sizeof(*nodes));
    if (lines == NULL || nodes == NULL || (rs.buf = secret_new(BODY_LOG_MAX)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        const char *key = h->headers[i].key;
        size_t kl;
        struct secret *v = NULL;

        if (key == NULL || h->headers[i].value == NULL) {
            r = rk_error_set(err, RK_ECONFIG, "headers[%zu]: name and value are required", i);
            goto out;
        }
        kl = strlen(key);

        if ((r = hook_template_render(h->headers[i].value, ctx, &v, err)) != 0) {
            rk_error_prefix(err, "header %s", key);
            goto out;
        }
        /* A CR or LF from a value would start a new header or a new request. */
        if (memchr(v->data, '\r', v->len) != NULL || memchr(v->data, '\n', v->len) != NULL) {
            secret_free(v);
            r = rk_error_set(err, RK_EINVAL,
                             "header %s: the rendered value contains a line "
                             "break",
                             key);
            goto out;
        }
        if ((lines[i] = secret_new(kl + 2 + v->len)) == NULL) {
            secret_free(v);
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        memcpy(lines[i]->data, key, kl);
        memcpy(lines[i]->data + kl, ": ", 2);
        memcpy(lines[i]->data + kl + 2, v->data, v->len);
        secret_free(v);
        nodes[i].data = (char *)lines[i]->data;
        nodes[i].next = &nodes[i + 1];
    }
    /* No "Expect: 100-continue" wait for bodies. */
    nodes[h->nheaders].data = (char *)"Expect:";
    nodes[h->nheaders].next = NULL;
    if (h->body != NULL && (r = hook_template_render(h->body, ctx, &body, err)) != 0) {
        rk_error_prefix(err, "body");
        goto out;
    }

    if ((c = CURL_FN->easy_init()) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "curl_easy_init failed");
        goto out;
    }
    CURL_FN->easy_setopt(c, CURLOPT_URL, url);
    CURL_FN->easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURL_FN->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    CURL_FN->easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    CURL_FN->easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    CURL_FN->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    CURL_FN->easy_setopt(c, CURLOPT_PROXY, ""); /* never send a secret through an env-set proxy */
    CURL_FN->easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURL_FN->easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    CURL_FN->easy_setopt(c, CURLOPT_SSL_VERIFYPEER, h->tls_verify ? 1L : 0L);
    CURL_FN->easy_setopt(c, CURLOPT_SSL_VERIFYHOST, h->tls_verify ? 2L : 0L);
    CURL_FN->easy_setopt(c, CURLOPT_USERAGENT, "rekey/" REKEY_VERSION);
    CURL_FN->easy_setopt(c, CURLOPT_HTTPHEADER, nodes);
    CURL_FN->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    CURL_FN->easy_setopt(c, CURLOPT_WRITEDATA, &rs);
    if (strcmp(method, "HEAD") == 0)
        CURL_FN->easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        CURL_FN->easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        /* POSTFIELDS is not copied by libcurl: it reads straight from secure memory. */
        CURL_FN->easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
        CURL_FN->easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)body->data);
    }
    cc = CURL_FN->easy_perform(c);
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        r = rk_error_set(err, RK_ETIMEOUT, "%s %s: timed out after %lld ms", method, url,
                         (long long)timeout_ms);
        goto out;
    }
    if (cc != CURLE_OK) {
        r = rk_error_set(err, RK_EHOOK, "%s %s: %s", method, url,
                         errbuf[0] != '\0' ? errbuf : CURL_FN->easy_strerror(cc));
        goto out;
    }
    CURL_FN->easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status != expect) {
        hook_log_output(h, "response", rs.buf->data, rs.len, rs.truncated, ctx);
        r = rk_error_set(err, RK_EHOOK, "expected HTTP %d, got %ld (%s %s)", expect, status, method,
                         url);
        goto out;
    }
    r = 0;
out:
    if (c != NULL)
        CURL_FN->easy_cleanup(c);
    if (lines != NULL)
        for (size_t i = 0; i < h->nheaders; i++)
            secret_free(lines[i]);
    free(lines);
    free(nodes);
    secret_free(body);
    secret_free(rs.buf);
    free(url);
    return r;
}

const struct hook_ops hook_http_ops = {
    .version = HOOK_OPS_VERSION,
    .type = HOOK_HTTP,
    .name = "http",
    .check = http_check,
    .run = http_run,
};
