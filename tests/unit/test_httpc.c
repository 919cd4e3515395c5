/* Unit tests for util/httpc: a canned HTTP server on a loopback socket in a thread answers one
 * request per case; the client's answers, outcomes and refusals are checked. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/httpc.h"

struct canned {
    int fd;
    const char *answer; /* sent after the request's headers; NULL = never answer */
    int delay_ms;
    char request[8192];
    size_t reqlen;
};

static void *
serve_one(void *arg)
{
    struct canned *c = arg;
    int conn = accept(c->fd, NULL, NULL);
    ssize_t n;

    if (conn < 0)
        return NULL;
    while (c->reqlen < sizeof(c->request) - 1 &&
           (n = read(conn, c->request + c->reqlen, sizeof(c->request) - 1 - c->reqlen)) > 0) {
        c->reqlen += (size_t)n;
        c->request[c->reqlen] = '\0';
        if (strstr(c->request, "\r\n\r\n") != NULL)
            break;
    }
    if (c->delay_ms > 0)
        usleep((useconds_t)c->delay_ms * 1000);
    if (c->answer != NULL)
        (void)!write(conn, c->answer, strlen(c->answer));
    close(conn);
    return NULL;
}

/* Starts a one-shot server; returns its port. */
static int
start(struct canned *c, pthread_t *t)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(c->fd, 4), 0);
    assert_int_equal(getsockname(c->fd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(pthread_create(t, NULL, serve_one, c), 0);
    return ntohs(a.sin_port);
}

static void
stop(struct canned *c, pthread_t t)
{
    pthread_join(t, NULL);
    close(c->fd);
}

static struct secret *
sec(const char *s)
{
    struct secret *v = secret_new(strlen(s));
    memcpy(v->data, s, strlen(s));
    return v;
}

static void
test_get_with_secret_header(void **state)
{
    struct canned c = {.answer = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nRetry-After: 7\r\n"
                                 "Connection: close\r\n\r\n{\"ok\":true}"};
    pthread_t t;
    char url[64];
    struct secret *key = sec("sk-test-Header_Value-1");
    struct httpc_header h[] = {{.name = "Authorization", .value = key},
                               {.name = "anthropic-version", .plain = "2023-06-01"}};
    struct httpc_req req = {.url = url, .headers = h, .nheaders = 2};
    struct httpc_resp resp;
    struct rk_error err = {0};
    (void)state;

    /* An environment proxy must be ignored: a secret never goes through it. */
    setenv("http_proxy", "http://127.0.0.1:1", 1);
    setenv("HTTP_PROXY", "http://127.0.0.1:1", 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/models", start(&c, &t));
    assert_int_equal(httpc_do(&req, &resp, &err), 0);
    stop(&c, t);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.len, 11);
    assert_string_equal((const char *)resp.body->data, "{\"ok\":true}");
    assert_int_equal(resp.retry_after_s, 7);
    assert_non_null(strstr(c.request, "GET /v1/models HTTP/1.1\r\n"));
    assert_non_null(strstr(c.request, "\r\nAuthorization: sk-test-Header_Value-1\r\n"));
    assert_non_null(strstr(c.request, "\r\nanthropic-version: 2023-06-01\r\n"));
    assert_int_equal(httpc_outcome(0, resp.status), 0);
    httpc_resp_free(&resp);
    secret_free(key);
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
}

static void
test_body_truncated(void **state)
{
    struct canned c = {.answer = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n"
                                 "Connection: close\r\n\r\n0123456789abcdefghij"};
    pthread_t t;
    char url[64];
    struct secret *body = sec("{\"name\":\"x\"}");
    struct httpc_req req = {.method = "POST", .url = url, .body = body, .body_max = 8};
    struct httpc_resp resp;
    struct rk_error err = {0};
    (void)state;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/keys", start(&c, &t));
    assert_int_equal(httpc_do(&req, &resp, &err), 0);
    stop(&c, t);
    assert_int_equal(resp.status, 503);
    assert_int_equal(resp.len, 8);
    assert_true(resp.truncated);
    assert_int_equal(resp.retry_after_s, -1);
    assert_non_null(strstr(c.request, "POST /keys HTTP/1.1\r\n"));
    assert_non_null(strstr(c.request, "Content-Type: application/json\r\n"));
    assert_int_equal(httpc_outcome(0, resp.status), -RK_EUNAVAILABLE);
    httpc_resp_free(&resp);
    secret_free(body);
}

static void
test_timeout_and_refused(void **state)
{
    struct canned c = {.answer = NULL, .delay_ms = 600};
    pthread_t t;
    char url[64];
    struct httpc_req req = {.url = url, .timeout_ms = 200};
    struct httpc_resp resp;
    struct rk_error err = {0};
    int port;
    (void)state;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", start(&c, &t));
    assert_int_equal(httpc_do(&req, &resp, &err), -RK_ETIMEOUT);
    assert_non_null(strstr(err.msg, "/slow"));
    httpc_resp_free(&resp);
    stop(&c, t);
    assert_int_equal(httpc_outcome(-RK_ETIMEOUT, 0), -RK_EUNAVAILABLE);

    /* A port nobody listens on: one request to a server that then closes its socket. */
    memset(&c, 0, sizeof(c));
    c.answer = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
    port = start(&c, &t);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    req.timeout_ms = 2000;
    assert_int_equal(httpc_do(&req, &resp, &err), 0);
    httpc_resp_free(&resp);
    stop(&c, t);
    assert_int_equal(httpc_do(&req, &resp, &err), -RK_EUNAVAILABLE);
    httpc_resp_free(&resp);
}

static void
test_refusals(void **state)
{
    struct secret *bad = sec("abc\r\nX-Injected: 1");
    struct httpc_header h[] = {{.name = "Authorization", .value = bad}};
    struct httpc_req req = {.url = "http://127.0.0.1:9/", .headers = h, .nheaders = 1};
    struct httpc_resp resp;
    struct rk_error err = {0};
    (void)state;

    assert_int_equal(httpc_do(&req, &resp, &err), -RK_EINVAL);
    assert_null(strstr(err.msg, "abc"));
    httpc_resp_free(&resp);
    req.nheaders = 0;
    req.url = "file:///etc/passwd";
    assert_int_equal(httpc_do(&req, &resp, &err), -RK_EINVAL);
    httpc_resp_free(&resp);
    req.url = "http://127.0.0.1:9/";
    req.method = "GET /x";
    assert_int_equal(httpc_do(&req, &resp, &err), -RK_EINVAL);
    httpc_resp_free(&resp);
    secret_free(bad);
}

static void
test_outcomes(void **state)
{
    (void)state;
    assert_int_equal(httpc_outcome(0, 200), 0);
    assert_int_equal(httpc_outcome(0, 204), 0);
    assert_int_equal(httpc_outcome(0, 401), -RK_EREJECTED);
    assert_int_equal(httpc_outcome(0, 403), -RK_EREJECTED);
    assert_int_equal(httpc_outcome(0, 404), -RK_EREJECTED);
    assert_int_equal(httpc_outcome(0, 408), -RK_EUNAVAILABLE);
    assert_int_equal(httpc_outcome(0, 429), -RK_EUNAVAILABLE);
    assert_int_equal(httpc_outcome(0, 500), -RK_EUNAVAILABLE);
    assert_int_equal(httpc_outcome(0, 503), -RK_EUNAVAILABLE);
    assert_int_equal(httpc_outcome(-RK_EUNAVAILABLE, 0), -RK_EUNAVAILABLE);
    assert_int_equal(httpc_outcome(-RK_EINVAL, 0), -RK_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_secret_header),
        cmocka_unit_test(test_body_truncated),
        cmocka_unit_test(test_timeout_and_refused),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
