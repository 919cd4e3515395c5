/* forward.c: see forward.h. libcurl's easy interface directly rather than util/httpc: the relay
 * needs the answer's Content-Type and a body of any length up to FORWARD_BODY_MAX grown as it
 * comes (httpc keeps a fixed buffer of body_max bytes allocated up front and no Content-Type).
 * The same fixed rules as httpc otherwise: http and https only, no redirect, no proxy from the
 * environment, TLS verified. One handle per forwarded request: these routes are not a hot path.
 *
 * The request's header lines live in one secure buffer and are chained through curl_slist nodes
 * of our own (curl_slist_append would strdup the token into the normal heap, never wiped). The
 * answer grows in a normal-heap buffer that is wiped on every growth and at the end (it holds a
 * password for database/creds); http_respond_text copies it and wipes its copy after sending. */
#include "api/forward.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/router.h"
#include "store/leader.h"
#include "util/httpc.h"
#include "util/log.h"
#include "util/secret.h"

#define FWD_LINES_MAX 8

/* The CA file an https leader is verified with (forward.h), read once. */
static pthread_once_t ca_once = PTHREAD_ONCE_INIT;
static char *ca_file;

static void
ca_init(void)
{
    const char *v = getenv("REKEY_CACERT");

    if (v == NULL || v[0] == '\0')
        v = getenv("VAULT_CACERT");
    if (v != NULL && v[0] != '\0')
        ca_file = strdup(v); /* NULL on OOM: the system's store, still verified */
}

/* The leader's answer as it arrives. */
struct relay {
    unsigned char *buf;
    size_t len, cap;
    int too_long;
    char retry_after[16]; /* digits only, "" when absent */
};

static void
relay_free(struct relay *rl)
{
    freezero(rl->buf, rl->cap);
    rl->buf = NULL;
    rl->len = rl->cap = 0;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct relay *rl = arg;
    size_t n = size * nmemb;

    if (n > FORWARD_BODY_MAX - rl->len) {
        rl->too_long = 1;
        return 0; /* stops the transfer (CURLE_WRITE_ERROR) */
    }
    if (rl->len + n > rl->cap) {
        size_t cap = rl->cap > 0 ? rl->cap : 4096;
        unsigned char *nb;

        while (cap < rl->len + n)
            cap *= 2;
        if (cap > FORWARD_BODY_MAX)
            cap = FORWARD_BODY_MAX;
        if ((nb = malloc(cap)) == NULL)
            return 0;
        if (rl->len > 0)
            memcpy(nb, rl->buf, rl->len);
        freezero(rl->buf, rl->cap); /* no copy of a password left behind by a growth */
        rl->buf = nb;
        rl->cap = cap;
    }
    memcpy(rl->buf + rl->len, data, n);
    rl->len += n;
    return n;
}

/* Keeps Retry-After when it is delta-seconds (what rekey sends with a 429 or a 503). */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    static const char name[] = "retry-after:";
    struct relay *rl = arg;
    size_t n = size * nmemb, i = sizeof(name) - 1, k = 0;

    if (n <= i || strncasecmp(data, name, i) != 0)
        return n;
    while (i < n && (data[i] == ' ' || data[i] == '\t'))
        i++;
    while (i < n && k + 1 < sizeof(rl->retry_after) && data[i] >= '0' && data[i] <= '9')
        rl->retry_after[k++] = data[i++];
    rl->retry_after[k] = '\0';
    return n;
}

/* The leader's URL for path (decoded): addr without a trailing '/', then path with every byte
 * but RFC 3986's unreserved ones and '/' percent-encoded. NULL on OOM; the caller frees. */
static char *
leader_url(const char *addr, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t al = strlen(addr), pl = strlen(path), o;
    char *u;

    while (al > 0 && addr[al - 1] == '/')
        al--;
    if ((u = malloc(al + 3 * pl + 1)) == NULL)
        return NULL;
    memcpy(u, addr, al);
    o = al;
    for (size_t i = 0; i < pl; i++) {
        unsigned char c = (unsigned char)path[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            u[o++] = (char)c;
        } else {
            u[o++] = '%';
            u[o++] = hex[c >> 4];
            u[o++] = hex[c & 15];
        }
    }
    u[o] = '\0';
    return u;
}

/* The header lines sent to the leader, in one secure buffer (the token is among them). */
struct fwd_lines {
    const char *name[FWD_LINES_MAX];
    const char *value[FWD_LINES_MAX];
    size_t n;
};

static void
line_add(struct fwd_lines *h, const char *name, const char *value)
{
    /* A value with a line break would start a header of the client's choosing: dropped. */
    if (value == NULL || strpbrk(value, "\r\n") != NULL || h->n >= FWD_LINES_MAX)
        return;
    h->name[h->n] = name;
    h->value[h->n] = value;
    h->n++;
}

/* Builds "Name: value" lines into *buf (secure) chained through nodes (at least h->n + 1 of
 * them, the last one "Expect:", so libcurl does not wait for 100-continue). Returns 0 or
 * -RK_ENOMEM. */
static int
lines_build(const struct fwd_lines *h, struct secret **buf, struct curl_slist *nodes)
{
    size_t total = sizeof("Expect:"), o = 0, i;

    for (i = 0; i < h->n; i++)
        total += strlen(h->name[i]) + 2 + strlen(h->value[i]) + 1;
    if ((*buf = secret_new(total)) == NULL)
        return -RK_ENOMEM;
    for (i = 0; i <= h->n; i++) {
        char *line = (char *)(*buf)->data + o;
        int w = i < h->n ? snprintf(line, total - o, "%s: %s", h->name[i], h->value[i])
                         : snprintf(line, total - o, "Expect:");

        o += (size_t)w + 1;
        nodes[i].data = line;
        nodes[i].next = i < h->n ? &nodes[i + 1] : NULL;
    }
    return 0;
}

int
api_forward_to_leader(struct http_request *req)
{
    const char *path = http_request_path(req), *method, *ctype_in, *ip;
    struct curl_slist nodes[FWD_LINES_MAX + 1];
    struct leader_status ls;
    struct secret *lines = NULL;
    struct rk_error err = {0};
    struct relay rl = {0};
    struct fwd_lines h = {0};
    char errbuf[CURL_ERROR_SIZE] = "", ctype[128] = "";
    const unsigned char *body;
    size_t body_len = 0;
    char *url = NULL, *ct = NULL;
    long status = 0;
    CURL *c = NULL;
    CURLcode cc;

    leader_status(&ls);
    if (!ls.ha_enabled || ls.is_self)
        return 0;
    if (http_request_header(req, FORWARD_HEADER) != NULL) {
        http_respond_error(req, 503,
                           "this server is a standby and got a request forwarded by another "
                           "server, which took it for the leader; the lead has changed: retry "
                           "the request");
        return 1;
    }
    if (ls.leader_addr[0] == '\0') {
        http_respond_error(req, 503,
                           "this server is a standby and no leader is known yet; retry the "
                           "request in a few seconds");
        return 1;
    }
    method = http_request_method(req) == HTTP_LIST ? "LIST" : http_request_method_str(req);
    if (httpc_init(&err) != 0 || (url = leader_url(ls.leader_addr, path)) == NULL) {
        http_respond_error(req, 500, "%s", err.msg[0] != '\0' ? err.msg : "out of memory");
        return 1;
    }
    pthread_once(&ca_once, ca_init);

    line_add(&h, "X-Vault-Token", http_request_token(req));
    ctype_in = http_request_header(req, "Content-Type");
    /* No Content-Type from the client: none to the leader either (libcurl would add a form's). */
    line_add(&h, "Content-Type", ctype_in != NULL ? ctype_in : "");
    line_add(&h, "X-Vault-Request", http_request_header(req, "X-Vault-Request"));
    line_add(&h, "X-Vault-Wrap-TTL", http_request_header(req, "X-Vault-Wrap-TTL"));
    if ((ip = http_request_ip(req)) != NULL)
        line_add(&h, "X-Forwarded-For", ip);
    line_add(&h, FORWARD_HEADER, "1");
    if (lines_build(&h, &lines, nodes) != 0 || (c = curl_easy_init()) == NULL) {
        http_respond_error(req, 500, "out of memory");
        goto out;
    }
    body = http_request_body(req, &body_len);
    httpc_curl_base(c, url, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)FORWARD_CONNECT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)FORWARD_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "rekey/" REKEY_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, nodes);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rl);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &rl);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body_len > 0 || strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        /* Not copied by libcurl: read from the request's buffer, which http.c wipes. A PUT
         * without a body still gets its Content-Length: 0. */
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body_len > 0 ? (const char *)body : "");
    }
    cc = curl_easy_perform(c);
    if (rl.too_long) {
        log_warn("ha: %s %s forwarded to the leader at %s: its answer is longer than %d bytes",
                 method, path, ls.leader_addr, FORWARD_BODY_MAX);
        http_respond_error(req, 502, "the leader at %s gave an answer longer than %d bytes",
                           ls.leader_addr, FORWARD_BODY_MAX);
        goto out;
    }
    if (cc != CURLE_OK) {
        const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc);
        curl_off_t sent_us = 0;

        /* Sent (connected, TLS done), then no whole answer: the leader may have carried it out. */
        (void)curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &sent_us);
        log_warn("ha: %s %s: no answer from the leader at %s: %s", method, path, ls.leader_addr,
                 why);
        if (sent_us > 0)
            http_respond_error(req, 503,
                               "this server is a standby and the leader at %s did not answer "
                               "(%s); the request may or may not have been carried out there: "
                               "retry the request",
                               ls.leader_addr, why);
        else
            http_respond_error(req, 503,
                               "this server is a standby and the leader at %s could not be "
                               "reached (%s); retry the request (when the leader is gone, a "
                               "standby takes over within seconds)",
                               ls.leader_addr, why);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL &&
        strlen(ct) < sizeof(ctype) && strpbrk(ct, "\r\n") == NULL)
        snprintf(ctype, sizeof(ctype), "%s", ct);
    log_info("ha: %s %s forwarded to the leader at %s: %ld", method, path, ls.leader_addr, status);
    if (status < 100 || status > 599) {
        http_respond_error(req, 502, "the leader at %s answered with status %ld", ls.leader_addr,
                           status);
        goto out;
    }
    if (rl.retry_after[0] != '\0')
        (void)http_response_header(req, "Retry-After", rl.retry_after);
    if (status == 204)
        http_respond_no_content(req);
    else
        http_respond_text(req, (unsigned)status, ctype[0] != '\0' ? ctype : "application/json",
                          rl.buf != NULL ? (const void *)rl.buf : "", rl.len);
out:
    if (c != NULL)
        curl_easy_cleanup(c);
    secret_free(lines);
    relay_free(&rl);
    free(url);
    return 1;
}
