/* http-route: rekey's HTTP core (src/api/http.c + router.c) serving the same fixed JSON body as
 * mhd-baseline through a small route table, built per request with jansson as real handlers
 * do. Usage: http-route [port] (0 = ephemeral); prints the port and serves until killed. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "api/http.h"

static int
h_health(struct http_request *req, void *app, struct rk_error *err)
{
    (void)app;
    (void)err;
    return http_respond_json(
        req, 200, json_pack("{s:b,s:b,s:s}", "initialized", 1, "sealed", 0, "version", "1.15.0"));
}

static int
h_other(struct http_request *req, void *app, struct rk_error *err)
{
    (void)app;
    (void)err;
    return http_respond_no_content(req);
}

/* A table the size of a real one, so matching is not trivially cheap. */
static const struct route routes[] = {
    {HTTP_GET, "/v1/sys/health", h_health, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/seal-status", h_other, ROUTE_PARAM_NONE},
    {HTTP_PUT, "/v1/sys/unseal", h_other, ROUTE_PARAM_NONE},
    {HTTP_GET | HTTP_PUT, "/v1/sys/init", h_other, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/sys/metrics", h_other, ROUTE_PARAM_NONE},
    {HTTP_GET | HTTP_LIST, "/v1/sys/policy/", h_other, ROUTE_PARAM_NAME_FOLD},
    {HTTP_GET | HTTP_LIST, "/v1/sys/policies/acl/", h_other, ROUTE_PARAM_NAME_FOLD},
    {HTTP_GET | HTTP_PUT | HTTP_POST | HTTP_DELETE | HTTP_PATCH, "/v1/secret/data/", h_other,
     ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_LIST | HTTP_DELETE | HTTP_PUT, "/v1/secret/metadata/", h_other,
     ROUTE_PARAM_PATH},
    {HTTP_PUT | HTTP_POST, "/v1/secret/delete/", h_other, ROUTE_PARAM_PATH},
    {HTTP_PUT | HTTP_POST, "/v1/secret/undelete/", h_other, ROUTE_PARAM_PATH},
    {HTTP_PUT | HTTP_POST, "/v1/secret/destroy/", h_other, ROUTE_PARAM_PATH},
    {HTTP_GET | HTTP_LIST, "/v1/transit/keys/", h_other, ROUTE_PARAM_NAME},
    {HTTP_PUT | HTTP_POST, "/v1/transit/sign/", h_other, ROUTE_PARAM_NAME},
    {HTTP_PUT | HTTP_POST, "/v1/transit/verify/", h_other, ROUTE_PARAM_NAME},
    {HTTP_GET, "/v1/database/creds/", h_other, ROUTE_PARAM_NAME},
    {HTTP_PUT, "/v1/sys/leases/renew", h_other, ROUTE_PARAM_NONE},
    {HTTP_PUT, "/v1/sys/leases/revoke", h_other, ROUTE_PARAM_NONE},
    {HTTP_GET, "/v1/auth/token/lookup-self", h_other, ROUTE_PARAM_NONE},
    {HTTP_PUT | HTTP_POST, "/v1/auth/token/create", h_other, ROUTE_PARAM_NONE},
};

int
main(int argc, char **argv)
{
    char listen[64];
    struct http_config cfg = {0};
    struct http_server *s = NULL;
    struct rk_error err = {0};

    snprintf(listen, sizeof(listen), "127.0.0.1:%s", argc > 1 ? argv[1] : "0");
    cfg.listen = listen;
    if (http_server_start(&cfg, routes, sizeof(routes) / sizeof(routes[0]), NULL, &s, &err) != 0) {
        fprintf(stderr, "http-route: %s\n", err.msg);
        return 1;
    }
    printf("%u\n", http_server_port(s));
    fflush(stdout);
    for (;;)
        pause();
}
