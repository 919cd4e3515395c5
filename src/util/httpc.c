/* httpc.c: see httpc.h. libcurl's easy interface, one handle per request (rotations are rare;
 * a connection cache would only keep credentials' connections open). Header lines are built in
 * secure memory and chained through curl_slist nodes of our own, so libcurl's list copies
 * (slist_append strdups) never hold a secret. */
#include "util/httpc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"
#include "util/secret.h"

static int
token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
httpc_is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!token_char((unsigned char)*s))
            return 0;
    return 1;
}

static int
has_line_break(const unsigned char *p, size_t n)
{
    return memchr(p, '\r', n) != NULL || memchr(p, '\n', n) != NULL || memchr(p, '\0', n) != NULL;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct httpc_resp *rs = arg;
    size_t n = size * nmemb, room = rs->body->len - 1 - rs->len, take = n < room ? n : room;

    memcpy(rs->body->data + rs->len, data, take);
    rs->len += take;
    rs->body->data[rs->len] = '\0';
    if (take < n)
        rs->truncated = 1;
    return n;
}

/* Copies the value of header line data[0..n) into out when the line is `name` (lowercase, with
 * its colon); a value that does not fit leaves out "". */
static void
header_value(const char *data, size_t n, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name), i = nl, end = n;

    if (n <= nl || strncasecmp(data, name, nl) != 0)
        return;
    while (i < n && (data[i] == ' ' || data[i] == '\t'))
        i++;
    while (end > i && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' '))
        end--;
    out[0] = '\0';
    if (end - i < outlen) {
        memcpy(out, data + i, end - i);
        out[end - i] = '\0';
    }
}

/* Reads Retry-After (delta-seconds only; an HTTP date is rare from APIs and treated as absent),
 * Location and Replay-Nonce. */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct httpc_resp *rs = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";

    header_value(data, n, "location:", rs->location, sizeof(rs->location));
    header_value(data, n, "replay-nonce:", rs->replay_nonce, sizeof(rs->replay_nonce));

    if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char v[24];
        size_t i = sizeof(name) - 1, k = 0;
        int64_t secs;

        while (i < n && (data[i] == ' ' || data[i] == '\t'))
            i++;
        while (i < n && k + 1 < sizeof(v) && data[i] >= '0' && data[i] <= '9')
            v[k++] = data[i++];
        v[k] = '\0';
        if (k > 0 && parse_int64(v, 0, 86400 * 365, &secs) == 0)
            rs->retry_after_s = secs;
    }
    return n;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_ok;

static void
init_curl(void)
{
    /* libcurl's receive and send buffers hold what it relays (a forwarded login's password, an
     * etcd auth token, a provider's new key): it wipes every block it frees. */
    init_ok = curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, free_wiped, realloc_wiped, strdup,
                                   calloc) == CURLE_OK;
}

int
httpc_init(struct rk_error *err)
{
    pthread_once(&init_once, init_curl);
    return init_ok ? 0 : rk_error_set(err, RK_EINTERNAL, "curl_global_init failed");
}

int
httpc_do(const struct httpc_req *req, struct httpc_resp *resp, struct rk_error *err)
{
    const char *method = req->method != NULL ? req->method : "GET";
    int64_t connect_ms =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_MS;
    int64_t total_ms = req->timeout_ms > 0 ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
    size_t body_max = req->body_max > 0 ? req->body_max : HTTPC_DEFAULT_BODY_MAX;
    struct secret **lines = NULL;
    struct curl_slist *nodes = NULL;
    char errbuf[CURL_ERROR_SIZE] = "", ctype[128];
    size_t nextra = 2, n = 0;
    CURL *c = NULL;
    CURLcode cc;
    int r = -RK_EINTERNAL;

    memset(resp, 0, sizeof(*resp));
    resp->retry_after_s = -1;
    if (req->url == NULL ||
        (strncmp(req->url, "http://", 7) != 0 && strncmp(req->url, "https://", 8) != 0))
        return rk_error_set(err, RK_EINVAL, "%s: expected an http:// or https:// URL",
                            req->url != NULL ? req->url : "(no URL)");
    if (!httpc_is_token(method))
        return rk_error_set(err, RK_EINVAL, "%s is not a valid HTTP method", method);
    if ((r = httpc_init(err)) != 0)
        return r;
    if (total_ms < connect_ms)
        connect_ms = total_ms;

    lines = calloc(req->nheaders + 1, sizeof(*lines));
    nodes = calloc(req->nheaders + nextra + 1, sizeof(*nodes));
    resp->body = secret_new(body_max + 1);
    if (lines == NULL || nodes == NULL || resp->body == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    resp->body->data[0] = '\0';
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct httpc_header *h = &req->headers[i];
        const unsigned char *v =
            h->value != NULL ? h->value->data : (const unsigned char *)h->plain;
        size_t vl = h->value != NULL ? h->value->len : (h->plain != NULL ? strlen(h->plain) : 0);
        size_t kl;

        if (!httpc_is_token(h->name) || v == NULL) {
            r = rk_error_set(err, RK_EINVAL, "header %zu: a name and a value are required", i);
            goto out;
        }
        if (has_line_break(v, vl)) {
            r = rk_error_set(err, RK_EINVAL, "header %s: the value contains a line break", h->name);
            goto out;
        }
        kl = strlen(h->name);
        if ((lines[i] = secret_new(kl + 2 + vl + 1)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        memcpy(lines[i]->data, h->name, kl);
        memcpy(lines[i]->data + kl, ": ", 2);
        memcpy(lines[i]->data + kl + 2, v, vl);
        lines[i]->data[kl + 2 + vl] = '\0';
        nodes[n].data = (char *)lines[i]->data;
        nodes[n].next = &nodes[n + 1];
        n++;
    }
    /* No "Expect: 100-continue" wait for bodies. */
    nodes[n].data = (char *)"Expect:";
    nodes[n].next = NULL;
    if (req->body != NULL) {
        snprintf(ctype, sizeof(ctype), "Content-Type: %s",
                 req->content_type != NULL ? req->content_type : "application/json");
        nodes[n].next = &nodes[n + 1];
        n++;
        nodes[n].data = ctype;
        nodes[n].next = NULL;
    }

    if ((c = curl_easy_init()) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "curl_easy_init failed");
        goto out;
    }
    httpc_curl_base(c, req->url, errbuf);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)total_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, req->tls_insecure ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, req->tls_insecure ? 0L : 2L);
    if (req->ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rekey/" REKEY_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, nodes);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (req->body != NULL) {
        /* POSTFIELDS is not copied by libcurl: it reads straight from secure memory. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body->len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)req->body->data);
    }
    cc = curl_easy_perform(c);
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        r = rk_error_set(err, RK_ETIMEOUT, "%s %s: no answer within %lld ms", method, req->url,
                         (long long)total_ms);
        goto out;
    }
    if (cc != CURLE_OK) {
        int code = cc == CURLE_OUT_OF_MEMORY ? RK_ENOMEM : RK_EUNAVAILABLE;

        r = rk_error_set(err, code, "%s %s: %s", method, req->url,
                         errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    r = 0;
out:
    if (c != NULL)
        curl_easy_cleanup(c);
    if (lines != NULL)
        for (size_t i = 0; i < req->nheaders; i++)
            secret_free(lines[i]);
    free(lines);
    free(nodes);
    return r;
}

void
httpc_curl_base(void *c, const char *url, char *errbuf)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
}

void
httpc_resp_free(struct httpc_resp *resp)
{
    if (resp == NULL)
        return;
    secret_free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

int
httpc_outcome(int rc, long status)
{
    if (rc == -RK_ETIMEOUT || rc == -RK_EUNAVAILABLE)
        return -RK_EUNAVAILABLE;
    if (rc != 0)
        return rc;
    if (status >= 200 && status < 300)
        return 0;
    if (status == 408 || status == 429 || status >= 500 || status == 0)
        return -RK_EUNAVAILABLE;
    return -RK_EREJECTED;
}
