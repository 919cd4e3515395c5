/* Unit tests for src/api/http + router: a real server on 127.0.0.1 (ephemeral port) driven by
 * libcurl and raw sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "api/router.h"
#include "util/timeutil.h"

static atomic_int handler_calls;
static atomic_int bad_paths_seen;

static int
h_health(struct http_request *req, void *app, struct rk_error *err)
{
    (void)app;
    (void)err;
    atomic_fetch_add(&handler_calls, 1);
    return http_respond_json(req, 200, json_pack("{s:b,s:b}", "initialized", 1, "sealed", 0));
}

static int
h_echo(struct http_request *req, void *app, struct rk_error *err)
{
    json_t *j;
    int rc;

    (void)app;
    (void)err;
    atomic_fetch_add(&handler_calls, 1);
    if ((rc = http_request_json(req, &j)) != 0)
        return rc;
    return http_respond_json(req, 200, j);
}

static int
h_param(struct http_request *req, void *app, struct rk_error *err)
{
    const char *p = http_request_path(req);
    (void)app;
    (void)err;
    atomic_fetch_add(&handler_calls, 1);
    if (router_path_check(p, strlen(p)) != 0 || strstr(p, "..") != NULL)
        atomic_fetch_add(&bad_paths_seen, 1);
    return http_respond_json(req, 200,
                             json_pack("{s:s,s:s,s:b}", "param", http_request_param(req), "method",
                                       http_request_method(req) == HTTP_LIST ? "LIST" : "other",
                                       "token", http_request_token(req) != NULL));
}

static int
h_login(struct http_request *req, void *app, struct rk_error *err)
{
    struct http_server *s = http_request_server(req);
    const char *tok = http_request_token(req);
    (void)app;
    atomic_fetch_add(&handler_calls, 1);
    /* as api_authorize does: a valid token is served; a failure while throttled gets 429 */
    if (tok != NULL && strcmp(tok, "good") == 0)
        return http_respond_no_content(req);
    if (http_throttle_blocked(s, http_request_ip(req)))
        return http_respond_throttled(req);
    http_throttle_fail(s, http_request_ip(req));
    return rk_error_set(err, RK_EPERM, "permission denied");
}

static int
h_slow(struct http_request *req, void *app, struct rk_error *err)
{
    struct timespec ts = {0, 400 * 1000000L};
    (void)app;
    (void)err;
    nanosleep(&ts, NULL);
    return http_respond_text(req, 200, "text/plain", "done", 4);
}

static const struct route routes[] = {
    {HTTP_GET, "/v1/sys/health", h_health, ROUTE_PARAM_NONE},
    {HTTP_PUT | HTTP_POST, "/v1/echo", h_echo, ROUTE_PARAM_NONE},
    {HTTP_GET | HTTP_LIST, "/v1/secret/metadata/", h_param, ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_PUT | HTTP_DELETE, "/v1/secret/data/", h_param, ROUTE_PARAM_PATH},
    {HTTP_PUT, "/v1/auth/login", h_login, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/slow", h_slow, ROUTE_PARAM_NONE},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

struct fixture {
    struct http_server *srv;
    char base[64];
};

static struct http_config
test_config(void)
{
    struct http_config c = {0};
    c.listen = "127.0.0.1:0";
    c.threads = 2;
    c.max_body = 4096;
    c.conn_timeout_s = 2;
    c.json_max_depth = 8;
    c.throttle_burst = 3;
    c.throttle_per_s = 1;
    c.throttle_slots = 4;
    c.drain_timeout_ms = 3000;
    return c;
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct http_config c = test_config();
    struct rk_error err = {0};

    if (f == NULL || http_server_start(&c, routes, NROUTES, NULL, &f->srv, &err) != 0) {
        fprintf(stderr, "start: %s\n", err.msg);
        free(f);
        return -1;
    }
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(f->srv));
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    http_server_stop(f->srv);
    free(f);
    return 0;
}

/* ---- a small curl client ---- */

struct resp {
    long status;
    char body[16384];
    size_t len;
    char headers[4096];
    size_t hlen;
    CURLcode cc;
};

static size_t
on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n, room = sizeof(r->body) - 1 - r->len;
    memcpy(r->body + r->len, p, len < room ? len : room);
    r->len += len < room ? len : room;
    r->body[r->len] = '\0';
    return len;
}

static size_t
on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n, room = sizeof(r->headers) - 1 - r->hlen;
    memcpy(r->headers + r->hlen, p, len < room ? len : room);
    r->hlen += len < room ? len : room;
    r->headers[r->hlen] = '\0';
    return len;
}

static void
request(CURL *h, const char *base, const char *method, const char *path, const char *body,
        const char *header, struct resp *r)
{
    char url[512];
    struct curl_slist *hl = NULL;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", base, path);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L); /* test certificates are self-signed */
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (header != NULL)
        hl = curl_slist_append(hl, header);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    r->cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hl);
}

static json_t *
parse(const struct resp *r)
{
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    if (j == NULL)
        fail_msg("response is not JSON: %s", r->body);
    return j;
}

/* ---- tests ---- */

static void
test_json_route(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;

    request(h, f->base, "GET", "/v1/sys/health", NULL, NULL, &r);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "Content-Type: application/json"));
    assert_non_null(strcasestr(r.headers, "Cache-Control: no-store"));
    json_t *j = parse(&r);
    assert_true(json_is_true(json_object_get(j, "initialized")));
    json_decref(j);
    curl_easy_cleanup(h);
}

static void
test_keepalive(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;
    long n = -1;

    request(h, f->base, "GET", "/v1/sys/health", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n);
    assert_int_equal(n, 1);
    request(h, f->base, "GET", "/v1/sys/health", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n);
    assert_int_equal(n, 0); /* the first connection was reused */
    assert_null(strcasestr(r.headers, "Connection: close"));
    /* an error answered before the handler keeps the connection too */
    request(h, f->base, "GET", "/v1/nope", NULL, NULL, &r);
    request(h, f->base, "GET", "/v1/sys/health", NULL, NULL, &r);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n);
    assert_int_equal(n, 0);
    curl_easy_cleanup(h);
}

static void
test_not_found(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;

    request(h, f->base, "GET", "/v1/no/such/path", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"errors\":[]}");
    request(h, f->base, "GET", "/", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    request(h, f->base, "GET", "/v1/sys/health/x", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    curl_easy_cleanup(h);
}

static void
test_method_not_allowed(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;

    request(h, f->base, "DELETE", "/v1/sys/health", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_non_null(strcasestr(r.headers, "Allow: GET, HEAD\r\n"));
    json_t *j = parse(&r);
    assert_true(json_is_array(json_object_get(j, "errors")));
    json_decref(j);
    request(h, f->base, "BREW", "/v1/echo", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_non_null(strcasestr(r.headers, "Allow: PUT, POST\r\n"));
    request(h, f->base, "LIST", "/v1/secret/data/x", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_non_null(strcasestr(r.headers, "Allow: GET, HEAD, PUT, DELETE\r\n"));
    curl_easy_cleanup(h);
}

static void
test_list(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;
    json_t *j;

    request(h, f->base, "LIST", "/v1/secret/metadata/app/", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "LIST");
    assert_string_equal(json_string_value(json_object_get(j, "param")), "app/");
    json_decref(j);

    request(h, f->base, "GET", "/v1/secret/metadata/app?list=true", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "LIST");
    assert_string_equal(json_string_value(json_object_get(j, "param")), "app");
    json_decref(j);

    /* the prefix without its trailing slash: listing the root */
    request(h, f->base, "LIST", "/v1/secret/metadata", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "param")), "");
    json_decref(j);

    request(h, f->base, "GET", "/v1/secret/metadata/app?list=false", NULL, NULL, &r);
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "other");
    json_decref(j);
    curl_easy_cleanup(h);
}

static void
test_tokens(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;
    json_t *j;

    request(h, f->base, "GET", "/v1/secret/data/a", NULL, "Authorization: Bearer s.abc", &r);
    j = parse(&r);
    assert_true(json_is_true(json_object_get(j, "token")));
    json_decref(j);
    request(h, f->base, "GET", "/v1/secret/data/a", NULL, "X-Vault-Token: s.abc", &r);
    j = parse(&r);
    assert_true(json_is_true(json_object_get(j, "token")));
    json_decref(j);
    request(h, f->base, "GET", "/v1/secret/data/a", NULL, "Authorization: Basic eDp5", &r);
    j = parse(&r);
    assert_true(json_is_false(json_object_get(j, "token")));
    json_decref(j);
    curl_easy_cleanup(h);
}

static void
test_body_limit(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;
    char *big = malloc(5001);

    memset(big, 'a', 5000);
    big[0] = '"';
    big[4999] = '"';
    big[5000] = '\0';
    request(h, f->base, "PUT", "/v1/echo", big, NULL, &r);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.body, "errors"));
    /* under the limit still works */
    request(h, f->base, "PUT", "/v1/echo", "{\"a\":\"b\"}", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"a\":\"b\"}");
    free(big);
    curl_easy_cleanup(h);
}

/* A chunked upload has no Content-Length: the limit applies to what has accumulated. */
static int
raw_exchange(unsigned port, const char *head, size_t body_bytes, char *out, size_t outlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char chunk[1100];
    size_t got = 0;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    (void)!send(fd, head, strlen(head), MSG_NOSIGNAL);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    /* like a careful client: watch for an early answer between chunks */
    for (size_t sent = 0; sent < body_bytes && poll(&p, 1, 200) == 0; sent += 1024) {
        int n = snprintf(chunk, sizeof(chunk), "400\r\n");
        memset(chunk + n, 'x', 1024);
        memcpy(chunk + n + 1024, "\r\n", 2);
        if (send(fd, chunk, (size_t)n + 1026, MSG_NOSIGNAL) < 0)
            break;
    }
    if (body_bytes > 0)
        (void)!send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
    while (got + 1 < outlen && poll(&p, 1, 3000) > 0) {
        ssize_t n = recv(fd, out + got, outlen - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        out[got] = '\0';
        if (strstr(out, "\r\n\r\n") != NULL)
            break;
    }
    out[got] = '\0';
    close(fd);
    return 0;
}

static void
test_body_limit_chunked(void **state)
{
    struct fixture *f = *state;
    char out[2048];

    assert_int_equal(raw_exchange(http_server_port(f->srv),
                                  "PUT /v1/echo HTTP/1.1\r\nHost: x\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n",
                                  6 * 1024, out, sizeof(out)),
                     0);
    if (strstr(out, "HTTP/1.1 413") == NULL)
        fail_msg("got: %s", out);
}

static void
test_bad_json(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;
    json_t *j;

    request(h, f->base, "PUT", "/v1/echo", "{\"a\": ", NULL, &r);
    assert_int_equal(r.status, 400);
    j = parse(&r);
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(j, "errors"), 0)),
                           "failed to parse JSON input"));
    json_decref(j);
    request(h, f->base, "PUT", "/v1/echo", "{\"a\":1,\"a\":2}", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "duplicate"));
    request(h, f->base, "PUT", "/v1/echo", "[1,2]", NULL, &r);
    assert_int_equal(r.status, 400);
    /* depth 8 passes, 9 fails */
    request(h, f->base, "PUT", "/v1/echo", "{\"a\":[[[[[[[1]]]]]]]}", NULL, &r);
    assert_int_equal(r.status, 200);
    request(h, f->base, "PUT", "/v1/echo", "{\"a\":[[[[[[[[1]]]]]]]]}", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "deeper"));
    /* empty body is an empty object */
    request(h, f->base, "PUT", "/v1/echo", "", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    curl_easy_cleanup(h);
}

static void
test_traversal(void **state)
{
    static const char *bad[] = {
        "/v1/secret/data/../x",       "/v1/secret/data/%2e%2e/x", "/v1/secret/data/%2E%2e/x",
        "/v1/secret/data/.%2e/x",     "/v1/secret//data/x",       "/v1/secret/data//x",
        "/v1/secret/data/a/./b",      "/v1/secret/data/a/..",     "/v1/secret/data/a%00b",
        "/v1/secret/data/a%2f..%2fb", "/v1/secret/data/%0a",      "/v1/secret/data/a%zz",
        "/v1/secret/data/..\\x",      "/v1/secret/data/%5c..",    "/v1/secret/data/.",
    };
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;
    int before = atomic_load(&handler_calls);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        request(h, f->base, "GET", bad[i], NULL, NULL, &r);
        if (r.status != 400 && r.status != 404)
            fail_msg("%s gave %ld", bad[i], r.status);
    }
    assert_int_equal(atomic_load(&handler_calls), before);
    assert_int_equal(atomic_load(&bad_paths_seen), 0);
    /* a normal path with an encoded space still reaches the handler */
    request(h, f->base, "GET", "/v1/secret/data/a%20b/c", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"a b/c\""));
    curl_easy_cleanup(h);
}

static void
test_slowloris(void **state)
{
    struct fixture *f = *state;
    const char *req = "GET /v1/sys/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: aaaaaaaaaaaa\r\n";
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)http_server_port(f->srv))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int64_t t0 = time_mono_ms(), closed_at = 0;
    char c;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (size_t i = 0; i < strlen(req); i++) {
        if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1) {
            closed_at = time_mono_ms();
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) > 0 && recv(fd, &c, 1, 0) <= 0) {
            closed_at = time_mono_ms();
            break;
        }
        if (time_mono_ms() - t0 > 8000)
            break;
    }
    close(fd);
    assert_true(closed_at != 0);
    /* timeout 2 s, reaper period 0.2 s, one byte per second */
    assert_true(closed_at - t0 >= 1800);
    assert_true(closed_at - t0 <= 4500);
}

static void
test_throttle_http(void **state)
{
    struct fixture *f = *state;
    CURL *h = curl_easy_init();
    struct resp r;

    /* burst 3: three failures answer 403, then 429 */
    for (int i = 0; i < 3; i++) {
        request(h, f->base, "PUT", "/v1/auth/login", NULL, "X-Vault-Token: wrong", &r);
        assert_int_equal(r.status, 403);
    }
    request(h, f->base, "PUT", "/v1/auth/login", NULL, "X-Vault-Token: wrong", &r);
    assert_int_equal(r.status, 429);
    assert_non_null(strcasestr(r.headers, "Retry-After: 1"));
    /* a valid token is still served: failures are throttled, not the client */
    request(h, f->base, "PUT", "/v1/auth/login", NULL, "X-Vault-Token: good", &r);
    assert_int_equal(r.status, 204);
    /* X-Forwarded-For is not trusted (no trusted_proxies) to escape the throttle */
    request(h, f->base, "PUT", "/v1/auth/login", NULL, "X-Forwarded-For: 10.9.9.9", &r);
    assert_int_equal(r.status, 429);
    /* one failure allowed again after a second */
    sleep(1);
    request(h, f->base, "PUT", "/v1/auth/login", NULL, "X-Vault-Token: wrong", &r);
    assert_int_equal(r.status, 403);
    curl_easy_cleanup(h);
}

static void
test_throttle_table(void **state)
{
    struct fixture *f = *state;
    char ip[32];

    for (int i = 0; i < 2; i++)
        assert_int_equal(http_throttle_fail(f->srv, "10.0.0.1"), 0);
    assert_int_equal(http_throttle_fail(f->srv, "10.0.0.1"), 1);
    assert_int_equal(http_throttle_blocked(f->srv, "10.0.0.1"), 1);
    assert_int_equal(http_throttle_blocked(f->srv, "10.0.0.2"), 0);
    /* IPv6 clients are grouped by /64 */
    for (int i = 0; i < 3; i++)
        http_throttle_fail(f->srv, "2001:db8:1:2::1");
    assert_int_equal(http_throttle_blocked(f->srv, "2001:db8:1:2::ffff"), 1);
    assert_int_equal(http_throttle_blocked(f->srv, "2001:db8:1:3::1"), 0);
    /* 4 slots: four other clients push the oldest out */
    for (int i = 0; i < 4; i++) {
        snprintf(ip, sizeof(ip), "10.1.0.%d", i);
        http_throttle_fail(f->srv, ip);
    }
    assert_int_equal(http_throttle_blocked(f->srv, "10.0.0.1"), 0);
    assert_int_equal(http_throttle_blocked(f->srv, "2001:db8:1:2::1"), 0);
}

/* ---- request framing: raw bytes, since no client library sends these ---- */

/* Sends len bytes of raw on a new connection and reads until the server closes it or 2 s pass.
 * *closed is 1 when the server closed the connection. */
static void
raw_send(unsigned port, const char *raw, size_t len, char *out, size_t outlen, int *closed)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t got = 0;

    *closed = 0;
    out[0] = '\0';
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, raw, len, MSG_NOSIGNAL), (ssize_t)len);
    while (got + 1 < outlen && poll(&p, 1, 2000) > 0) {
        ssize_t n = recv(fd, out + got, outlen - 1 - got, 0);
        if (n <= 0) {
            *closed = 1;
            break;
        }
        got += (size_t)n;
        out[got] = '\0';
    }
    close(fd);
}

#define RAW(s) s, sizeof(s) - 1

static void
test_framing(void **state)
{
    static const struct {
        const char *raw;
        size_t len;
    } bad[] = {
        /* Content-Length and Transfer-Encoding together */
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
             "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")},
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             "Content-Length: 4\r\n\r\n2\r\n{}\r\n0\r\n\r\n")},
        /* an unknown coding, a list, two headers, two lengths */
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}")},
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked \r\n\r\n"
             "2\r\n{}\r\n0\r\n\r\n")},
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
             "2\r\n{}\r\n0\r\n\r\n")},
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
             "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")},
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n"
             "{}")},
        /* a NUL in the target, the method, a header value (also the last one, also followed
         * by what looks like the end of the head), and a folded header line */
        {RAW("GET /v1/sys/health\0xyz HTTP/1.1\r\nHost: x\r\n\r\n")},
        {RAW("GET /v1/sys/health\0 HTTP/1.1\r\nHost: x\r\n\r\n")},
        {RAW("GET /v1/sys/health\0?a=b HTTP/1.1\r\nHost: x\r\n\r\n")},
        {RAW("GET\0X /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")},
        {RAW("GET /v1/sys/health HTTP/1.1\r\nX-Vault-Token: good\0junk\r\nHost: x\r\n\r\n")},
        {RAW("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Vault-Token: good\0junk\r\n\r\n")},
        {RAW("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Vault-Token: good\0\0\0\0j\r\n\r\n")},
        {RAW("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-A:\0junk\r\n\r\n")},
        {RAW("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n folded\r\n\r\n")},
    };
    static const struct {
        const char *raw;
        size_t len;
    } good[] = {
        {RAW("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")},
        {RAW("GET /v1/sys/health HTTP/1.0\r\n\r\n")},
        {RAW("GET /v1/sys/health?x=%00&y=a%20b HTTP/1.1\r\nHost: x\r\nX-A:\r\nX-B: \t v \t\r\n"
             "Connection: close\r\n\r\n")},
        {RAW("GET  /v1/sys/health HTTP/1.1\nHost: x\nConnection: close\n\n")},
        {RAW("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nCookie: a=b; c=d\r\n"
             "Connection: close\r\n\r\n")},
        {RAW("\r\nGET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")},
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:  Chunked\r\n"
             "Connection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n")},
        {RAW("PUT /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
             "{}")},
    };
    struct fixture *f = *state;
    unsigned port = http_server_port(f->srv);
    char out[4096];
    int closed, before = atomic_load(&handler_calls);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        raw_send(port, bad[i].raw, bad[i].len, out, sizeof(out), &closed);
        if (strncmp(out, "HTTP/1.1 400 ", 13) != 0 || strstr(out, "malformed request") == NULL ||
            strcasestr(out, "Connection: close\r\n") == NULL || !closed)
            fail_msg("bad[%zu] (closed %d): %s", i, closed, out);
    }
    assert_int_equal(atomic_load(&handler_calls), before);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        raw_send(port, good[i].raw, good[i].len, out, sizeof(out), &closed);
        if (strncmp(out, "HTTP/1.1 200 ", 13) != 0)
            fail_msg("good[%zu]: %s", i, out);
    }
    /* What libmicrohttpd answers itself, recorded: a NUL in a header name or after the
     * version is its own 400 (an HTML body) and a close; a NUL in a chunked body's trailer is
     * not seen (MHD cuts the trailer's value; rekey reads no trailer), so the request is
     * served. */
    static const char mhd_name[] = "GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-A\0b: c\r\n\r\n";
    raw_send(port, mhd_name, sizeof(mhd_name) - 1, out, sizeof(out), &closed);
    assert_int_equal(strncmp(out, "HTTP/1.1 400 ", 13), 0);
    assert_null(strstr(out, "malformed request"));
    assert_true(closed);
    static const char mhd_version[] = "GET /v1/sys/health HTTP/1.1\0x\r\nHost: x\r\n\r\n";
    raw_send(port, mhd_version, sizeof(mhd_version) - 1, out, sizeof(out), &closed);
    assert_int_equal(strncmp(out, "HTTP/1.1 400 ", 13), 0);
    assert_true(closed);
    static const char trailer[] =
        "PUT /v1/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n2\r\n{}\r\n0\r\nX-T: a\0b\r\n\r\n";
    raw_send(port, trailer, sizeof(trailer) - 1, out, sizeof(out), &closed);
    assert_int_equal(strncmp(out, "HTTP/1.1 200 ", 13), 0);
    /* a bad request on a keep-alive connection: the one before it is answered, the one
     * pipelined after it is not (the connection is closed) */
    static const char pipe3[] = "GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /v1/sys/health\0x HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(port, pipe3, sizeof(pipe3) - 1, out, sizeof(out), &closed);
    assert_true(closed);
    assert_non_null(strstr(out, "HTTP/1.1 200 "));
    assert_non_null(strstr(out, "HTTP/1.1 400 "));
    assert_null(strstr(strstr(out, "HTTP/1.1 400 "), "HTTP/1.1 200 "));
}

/* ---- X-Forwarded-For from trusted proxies ---- */

static int
h_ip(struct http_request *req, void *app, struct rk_error *err)
{
    (void)app;
    (void)err;
    return http_respond_text(req, 200, "text/plain", http_request_ip(req),
                             strlen(http_request_ip(req)));
}

static const struct route fwd_routes[] = {
    {.methods = HTTP_GET, .pattern = "/v1/ip", .handler = h_ip},
    {.methods = HTTP_PUT, .pattern = "/v1/auth/login", .handler = h_login},
};

static void
test_forwarded(void **state)
{
    static const struct {
        const char *xff[2];
        const char *want;
    } cases[] = {
        {{NULL, NULL}, "127.0.0.1"},
        {{"203.0.113.9", NULL}, "203.0.113.9"},
        {{" 198.51.100.1 ,10.1.2.3", NULL}, "198.51.100.1"},        /* a trusted hop skipped */
        {{"198.51.100.1, 203.0.113.9", NULL}, "203.0.113.9"},       /* the right-most untrusted */
        {{"198.51.100.1", "10.0.0.5"}, "198.51.100.1"},             /* headers in order */
        {{"198.51.100.1", "203.0.113.9, 10.0.0.5"}, "203.0.113.9"}, /* across headers */
        {{"not-an-ip, 10.0.0.5", NULL}, "10.0.0.5"},                /* ends at the last hop */
        {{"198.51.100.1, ", NULL}, "127.0.0.1"},                    /* an empty entry too */
        {{"10.0.0.7, 10.0.0.5", NULL}, "10.0.0.7"},                 /* all trusted: left-most */
        {{"[2001:db8::1]:443", NULL}, "2001:db8::1"},
        {{"192.0.2.1:5678", NULL}, "192.0.2.1"},
        {{"::ffff:192.0.2.2", NULL}, "192.0.2.2"},
    };
    struct http_config c = test_config();
    struct http_server *s = NULL;
    struct rk_error err = {0};
    char base[64], h1[128], h2[128];
    CURL *h = curl_easy_init();
    struct resp r;
    (void)state;

    /* a bad entry refuses to start */
    c.trusted_proxies = "127.0.0.1, 10.0.0.0/33";
    assert_int_equal(http_server_start(&c, fwd_routes, 2, NULL, &s, &err), -RK_ECONFIG);
    assert_non_null(strstr(err.msg, "10.0.0.0/33"));
    c.trusted_proxies = "127.0.0.1, 10.0.0.0/8";
    assert_int_equal(http_server_start(&c, fwd_routes, 2, NULL, &s, &err), 0);
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", http_server_port(s));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct curl_slist *hl = NULL;
        char url[128];
        memset(&r, 0, sizeof(r));
        snprintf(url, sizeof(url), "%s/v1/ip", base);
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
        for (int k = 0; k < 2; k++) {
            if (cases[i].xff[k] == NULL)
                continue;
            snprintf(k ? h2 : h1, sizeof(h1), "X-Forwarded-For: %s", cases[i].xff[k]);
            hl = curl_slist_append(hl, k ? h2 : h1);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        assert_int_equal(curl_easy_perform(h), CURLE_OK);
        curl_slist_free_all(hl);
        if (strcmp(r.body, cases[i].want) != 0)
            fail_msg("case %zu: got %s, want %s", i, r.body, cases[i].want);
    }
    /* the throttle counts the forwarded client, not the proxy */
    for (int i = 0; i < 3; i++) {
        request(h, base, "PUT", "/v1/auth/login", NULL, "X-Forwarded-For: 203.0.113.9", &r);
        assert_int_equal(r.status, 403);
    }
    assert_int_equal(http_throttle_blocked(s, "203.0.113.9"), 1);
    assert_int_equal(http_throttle_blocked(s, "127.0.0.1"), 0);
    request(h, base, "PUT", "/v1/auth/login", NULL, "X-Forwarded-For: 198.51.100.1", &r);
    assert_int_equal(r.status, 403); /* another client behind the same proxy */
    curl_easy_cleanup(h);
    http_server_stop(s);
}

static void
test_router(void **state)
{
    static const struct route ok[] = {
        {HTTP_GET, "/v1/sys/health", h_health, ROUTE_PARAM_NONE},
        {HTTP_PUT, "/v1/sys/health", h_echo, ROUTE_PARAM_NONE},
        {HTTP_GET, "/v1/sys/", h_param, ROUTE_PARAM_PATH},
        {HTTP_GET, "/v1/sys/policy/", h_param, ROUTE_PARAM_PATH},
        {HTTP_GET, "/v1/sys/policy/acl/", h_echo, ROUTE_PARAM_PATH},
    };
    static const struct route overlap[] = {
        {HTTP_GET | HTTP_PUT, "/v1/a", h_health, ROUTE_PARAM_NONE},
        {HTTP_PUT, "/v1/a", h_echo, ROUTE_PARAM_NONE},
    };
    static const struct route badpat[] = {{HTTP_GET, "/v2/x", h_health, ROUTE_PARAM_NONE}};
    static const struct route dots[] = {{HTTP_GET, "/v1/x/../y", h_health, ROUTE_PARAM_NONE}};
    struct router *rt = NULL;
    struct rk_error err = {0};
    const struct route *m;
    size_t off;
    unsigned allow;
    (void)state;

    assert_int_equal(router_new(overlap, 2, &rt, &err), -RK_EINVAL);
    assert_int_equal(router_new(badpat, 1, &rt, &err), -RK_EINVAL);
    assert_int_equal(router_new(dots, 1, &rt, &err), -RK_EINVAL);
    assert_int_equal(router_new(ok, 5, &rt, &err), 0);

#define MATCH(meth, p) router_match(rt, meth, p, strlen(p), &m, &off, &allow)
    assert_int_equal(MATCH(HTTP_GET, "/v1/sys/health"), ROUTER_OK);
    assert_ptr_equal(m->handler, h_health);
    assert_int_equal(MATCH(HTTP_PUT, "/v1/sys/health"), ROUTER_OK);
    assert_ptr_equal(m->handler, h_echo);
    assert_int_equal(MATCH(HTTP_HEAD, "/v1/sys/health"), ROUTER_OK);
    assert_int_equal(MATCH(HTTP_DELETE, "/v1/sys/health"), ROUTER_BAD_METHOD);
    assert_int_equal(allow, HTTP_GET | HTTP_PUT);
    assert_int_equal(MATCH(HTTP_GET, "/v1/sys/policy/acl/p1"), ROUTER_OK);
    assert_ptr_equal(m->handler, h_echo);
    assert_int_equal(off, strlen("/v1/sys/policy/acl/"));
    assert_int_equal(MATCH(HTTP_GET, "/v1/sys/policy/other"), ROUTER_OK);
    assert_ptr_equal(m->handler, h_param);
    assert_int_equal(MATCH(HTTP_GET, "/v1/sys/mounts"), ROUTER_OK);
    assert_int_equal(off, strlen("/v1/sys/"));
    assert_int_equal(MATCH(HTTP_GET, "/v1/sys/policy"), ROUTER_OK);
    assert_int_equal(off, strlen("/v1/sys/policy"));
    assert_int_equal(MATCH(HTTP_GET, "/v1/sysx"), ROUTER_NOT_FOUND);
    assert_int_equal(MATCH(HTTP_GET, "/v1/"), ROUTER_NOT_FOUND);
    assert_int_equal(MATCH(0, "/v1/sys/health"), ROUTER_BAD_METHOD);
#undef MATCH
    router_free(rt);

    assert_int_equal(router_method_parse("GET", "true"), HTTP_LIST);
    assert_int_equal(router_method_parse("GET", "1"), HTTP_LIST);
    assert_int_equal(router_method_parse("GET", "no"), HTTP_GET);
    assert_int_equal(router_method_parse("PUT", "true"), HTTP_PUT);
    assert_int_equal(router_method_parse("LIST", NULL), HTTP_LIST);
    assert_int_equal(router_method_parse("get", NULL), 0);
    assert_int_equal(router_path_check("/v1/a/b/", 8), 0);
    assert_int_equal(router_path_check("/v1/a/.../b", 11), 0);
    assert_int_equal(router_path_check("/v1/a/..", 8), -RK_EINVAL);
    assert_int_equal(router_path_check("/v1/a\x01", 6), -RK_EINVAL);
    assert_int_equal(router_raw_path_check("/v1/a%2Fb"), -RK_EINVAL);
    assert_int_equal(router_raw_path_check("/v1/a%41b?x=%00"), 0);
}

static void
test_refuse_plain_public(void **state)
{
    struct http_config c = test_config();
    struct http_server *s = NULL;
    struct rk_error err = {0};
    (void)state;

    c.listen = "0.0.0.0:0";
    assert_int_equal(http_server_start(&c, routes, NROUTES, NULL, &s, &err), -RK_ECONFIG);
    assert_null(s);
    assert_non_null(strstr(err.msg, "tls_disable"));
    c.listen = "example.com:80";
    assert_int_equal(http_server_start(&c, routes, NROUTES, NULL, &s, &err), -RK_ECONFIG);
    c.listen = "127.0.0.1:99999";
    assert_int_equal(http_server_start(&c, routes, NROUTES, NULL, &s, &err), -RK_ECONFIG);
}

static void
test_ipv6(void **state)
{
    struct http_config c = test_config();
    struct http_server *s = NULL;
    struct rk_error err = {0};
    char base[64];
    struct resp r;
    (void)state;

    c.listen = "[::1]:0";
    if (http_server_start(&c, routes, NROUTES, NULL, &s, &err) != 0)
        skip(); /* no IPv6 loopback in this sandbox */
    CURL *h = curl_easy_init();
    snprintf(base, sizeof(base), "http://[::1]:%u", http_server_port(s));
    request(h, base, "GET", "/v1/sys/health", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    curl_easy_cleanup(h);
    http_server_stop(s);
}

struct slow_arg {
    char url[128];
    long status;
};

static void *
slow_client(void *p)
{
    struct slow_arg *a = p;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, a->url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    struct resp r = {0};
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    curl_easy_cleanup(h);
    return NULL;
}

static void
test_drain(void **state)
{
    struct http_config c = test_config();
    struct http_server *s = NULL;
    struct rk_error err = {0};
    struct slow_arg a = {.status = 0};
    pthread_t t;
    struct timespec ts = {0, 150 * 1000000L};
    (void)state;

    assert_int_equal(http_server_start(&c, routes, NROUTES, NULL, &s, &err), 0);
    snprintf(a.url, sizeof(a.url), "http://127.0.0.1:%u/v1/slow", http_server_port(s));
    pthread_create(&t, NULL, slow_client, &a);
    nanosleep(&ts, NULL); /* the request is inside the handler now */
    int64_t t0 = time_mono_ms();
    http_server_stop(s);
    pthread_join(t, NULL);
    assert_int_equal(a.status, 200);
    assert_true(time_mono_ms() - t0 < 2000);
}

/* ---- TLS ---- */

static int
write_cert(const char *dir, const char *cn, char *certp, char *keyp, size_t len)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fc, *fk;

    snprintf(certp, len, "%s/cert.pem", dir);
    snprintf(keyp, len, "%s/key.pem", dir);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_sign(x, k, EVP_sha256());
    fc = fopen(certp, "w");
    fk = fopen(keyp, "w");
    PEM_write_X509(fc, x);
    PEM_write_PrivateKey(fk, k, NULL, NULL, 0, NULL, NULL);
    fclose(fc);
    fclose(fk);
    X509_free(x);
    EVP_PKEY_free(k);
    return 0;
}

static int
served_cn(const char *base, const char *cn)
{
    CURL *h = curl_easy_init(); /* a new connection each time */
    int found = 0;
    struct resp r;
    struct curl_certinfo *ci = NULL;
    char want[128];

    request(h, base, "GET", "/v1/sys/health", NULL, NULL, &r);
    if (r.status != 200) {
        curl_easy_cleanup(h);
        return 0;
    }
    curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci);
    snprintf(want, sizeof(want), "CN = %s", cn);
    for (int i = 0; ci != NULL && i < ci->num_of_certs; i++)
        for (struct curl_slist *l = ci->certinfo[i]; l != NULL; l = l->next)
            if (strncmp(l->data, "Subject:", 8) == 0 &&
                (strstr(l->data, want) != NULL || strstr(l->data + 8, cn) != NULL))
                found = 1;
    curl_easy_cleanup(h);
    return found;
}

static void
test_tls_reload(void **state)
{
    char dir[] = "/tmp/rekey-http-XXXXXX", certp[128], keyp[128], base[64];
    struct http_config c = test_config();
    struct http_server *s = NULL;
    struct rk_error err = {0};
    (void)state;

    assert_non_null(mkdtemp(dir));
    write_cert(dir, "first.test", certp, keyp, sizeof(certp));
    c.tls_cert_file = certp;
    c.tls_key_file = keyp;
    assert_int_equal(http_server_start(&c, routes, NROUTES, NULL, &s, &err), 0);
    snprintf(base, sizeof(base), "https://127.0.0.1:%u", http_server_port(s));
    assert_true(served_cn(base, "first.test"));

    write_cert(dir, "second.test", certp, keyp, sizeof(certp));
    assert_int_equal(http_server_reload_tls(s, &err), 0);
    assert_true(served_cn(base, "second.test"));

    /* a broken pair is refused and the old certificate keeps serving */
    FILE *fk = fopen(keyp, "w");
    fputs("not a key\n", fk);
    fclose(fk);
    assert_int_equal(http_server_reload_tls(s, &err), -RK_ECONFIG);
    assert_true(served_cn(base, "second.test"));

    http_server_stop(s);
    unlink(certp);
    unlink(keyp);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_traversal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slowloris, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_framing, setup, teardown),
        cmocka_unit_test(test_forwarded),
        cmocka_unit_test(test_router),
        cmocka_unit_test(test_refuse_plain_public),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_tls_reload),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
