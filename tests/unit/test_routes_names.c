/* Names carried in paths (router.h, docs/server.md "Names in paths"): every spelling of a
 * case-insensitive name reaches the ACL check as the one the store uses, and invalid names are
 * refused with 400.
 *
 * The exploit this guards against (issue 11, finding 1): a token whose policy `selfpol` allows
 * create and update on everything under sys/policies/acl/ but denies sys/policies/acl/selfpol got
 * 403 for `PUT sys/policies/acl/selfpol` and 204 for `PUT sys/policies/acl/SelfPol`, which rewrote
 * its own policy (the ACL check saw "SelfPol", the store lowercased it).
 *
 * The end-to-end tests run the real route table (api_routes) on an in-process server with a
 * dev-style store, as `rekey server -dev` does, and the walk takes every route that carries a
 * name from that table, so a route added later is walked without touching this file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/app.h"
#include "api/http.h"
#include "api/router.h"
#include "api/server.h"
#include "engine/inventory.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/secret.h"

#define ROOT_ID "names-test-root"

/* The variants of a lowercase name every walk sends. */
static const char *const variants[] = {"selfpol", "SelfPol", "SELFPOL", "sELFPOL", "selfpoL"};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

/* ---- router_path_canon on its own ---- */

static int
h_none(struct http_request *req, void *app, struct rk_error *err)
{
    (void)req;
    (void)app;
    (void)err;
    return 0;
}

static void
test_canon(void **state)
{
    static const struct route fold = {HTTP_GET, "/v1/sys/policy/", h_none, ROUTE_PARAM_NAME_FOLD};
    static const struct route name = {HTTP_GET, "/v1/transit/keys/", h_none, ROUTE_PARAM_NAME};
    static const struct route path = {HTTP_GET, "/v1/secret/data/", h_none, ROUTE_PARAM_PATH};
    static const struct {
        const struct route *rt;
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {&fold, "/v1/sys/policy/SelfPol", "/v1/sys/policy/selfpol"},
        {&fold, "/v1/sys/policy/SELFPOL", "/v1/sys/policy/selfpol"},
        {&fold, "/v1/sys/policy/a.B_c-D@E9", "/v1/sys/policy/a.b_c-d@e9"},
        {&fold, "/v1/sys/policy/Name/Rest/KEEP", "/v1/sys/policy/name/Rest/KEEP"},
        {&fold, "/v1/sys/policy/", "/v1/sys/policy/"},
        {&name, "/v1/transit/keys/SelfPol", "/v1/transit/keys/SelfPol"},
        {&name, "/v1/transit/keys/Key/rotate", "/v1/transit/keys/Key/rotate"},
        {&path, "/v1/secret/data/A b/\xc3\xa9", "/v1/secret/data/A b/\xc3\xa9"},
        /* Control characters, bytes above 0x7e (a UTF-8 C1 control), spaces, '%' and other
         * punctuation never make a name; a path route leaves them to its handler. */
        {&fold, "/v1/sys/policy/self\x1b[31mpol", NULL},
        {&fold, "/v1/sys/policy/self\npol", NULL},
        {&fold, "/v1/sys/policy/self\x7fpol", NULL},
        {&fold, "/v1/sys/policy/self\xc2\x85pol", NULL},
        {&fold, "/v1/sys/policy/\xc3\x89", NULL},
        {&fold, "/v1/sys/policy/self pol", NULL},
        {&fold, "/v1/sys/policy/self%pol", NULL},
        {&fold, "/v1/sys/policy/self*", NULL},
        {&name, "/v1/transit/keys/k\x1b", NULL},
        {&name, "/v1/transit/keys/k\xff/rotate", NULL},
    };
    char out[512], longp[300];
    size_t off;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].in;
        size_t len = strlen(in);
        int r;

        off = strlen(cases[i].rt->pattern);
        memset(out, 'x', sizeof(out));
        r = router_path_canon(cases[i].rt, in, len, off, out, sizeof(out));
        if (cases[i].out == NULL) {
            if (r != -RK_EINVAL)
                fail_msg("case %zu accepted", i);
            continue;
        }
        if (r != 0)
            fail_msg("case %zu refused", i);
        assert_string_equal(out, cases[i].out);
    }
    /* The length bound (ROUTER_NAME_MAX) and a too small buffer. */
    snprintf(longp, sizeof(longp), "/v1/sys/policy/%0*d", ROUTER_NAME_MAX + 1, 7);
    off = strlen(fold.pattern);
    assert_int_equal(router_path_canon(&fold, longp, strlen(longp), off, out, sizeof(out)),
                     -RK_EINVAL);
    longp[strlen(longp) - 1] = '\0';
    assert_int_equal(router_path_canon(&fold, longp, strlen(longp), off, out, sizeof(out)), 0);
    assert_int_equal(router_path_canon(&fold, "/v1/sys/policy/a", 16, off, out, 16), -RK_EINVAL);
    assert_int_equal(router_route_names(&fold), 1);
    assert_int_equal(router_route_names(&name), 1);
    assert_int_equal(router_route_names(&path), 0);
    assert_int_equal(router_name_check("", 0), -RK_EINVAL);
}

/* router_new refuses a prefix route that does not say what its parameter is, and a parameter
 * kind on an exact route. */
static void
test_table_rules(void **state)
{
    static const struct route unclassified[] = {{HTTP_GET, "/v1/x/", h_none, ROUTE_PARAM_NONE}};
    static const struct route exact_name[] = {{HTTP_GET, "/v1/x", h_none, ROUTE_PARAM_NAME}};
    static const struct route bad_kind[] = {{HTTP_GET, "/v1/x/", h_none, (enum route_param)9}};
    struct router *rt = NULL;
    struct rk_error err = {0};
    struct route *all = NULL;
    size_t n = 0, names = 0;

    (void)state;
    assert_int_equal(router_new(unclassified, 1, &rt, &err), -RK_EINVAL);
    assert_int_equal(router_new(exact_name, 1, &rt, &err), -RK_EINVAL);
    assert_int_equal(router_new(bad_kind, 1, &rt, &err), -RK_EINVAL);
    assert_null(rt);

    /* The server's own table: compiles, every prefix route is classified, and the policy
     * routes fold their names (as Vault's do). */
    assert_int_equal(api_routes(&all, &n, &err), 0);
    assert_int_equal(router_new(all, n, &rt, &err), 0);
    for (size_t i = 0; i < n; i++) {
        size_t pl = strlen(all[i].pattern);
        int prefix = all[i].pattern[pl - 1] == '/';
        if (prefix && all[i].param == ROUTE_PARAM_NONE)
            fail_msg("%s does not say what its parameter is", all[i].pattern);
        if ((strcmp(all[i].pattern, "/v1/sys/policies/acl/") == 0 ||
             strcmp(all[i].pattern, "/v1/sys/policy/") == 0) &&
            all[i].param != ROUTE_PARAM_NAME_FOLD)
            fail_msg("%s must fold policy names", all[i].pattern);
        names += router_route_names(&all[i]);
    }
    assert_true(names >= 2);
    router_free(rt);
    free(all);
}

/* ---- an in-process server on the real route table ---- */

struct fixture {
    char dir[64];
    struct api_app *app;
    struct http_server *srv;
    struct route *routes;
    size_t nroutes;
    char base[64];
    CURL *curl;
};

struct resp {
    long status;
    char body[16384];
    size_t len;
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

/* Sends method path (already percent-encoded where it needs to be) with token and body (both
 * may be NULL) and returns the status. */
static long
call(struct fixture *f, const char *method, const char *path, const char *token, const char *body,
     struct resp *r)
{
    static struct resp scratch;
    char url[1024], hdr[256];
    struct curl_slist *hl = NULL;
    CURLcode cc;

    if (r == NULL)
        r = &scratch;
    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", f->base, path);
    curl_easy_reset(f->curl);
    curl_easy_setopt(f->curl, CURLOPT_URL, url);
    curl_easy_setopt(f->curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(f->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(f->curl, CURLOPT_TIMEOUT, 10L);
    if (body != NULL) {
        curl_easy_setopt(f->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(f->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (token != NULL) {
        snprintf(hdr, sizeof(hdr), "X-Vault-Token: %s", token);
        hl = curl_slist_append(hl, hdr);
    }
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, hl);
    cc = curl_easy_perform(f->curl);
    curl_slist_free_all(hl);
    if (cc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(cc));
    curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &r->status);
    return r->status;
}

/* Writes policy name as root. */
static void
put_policy(struct fixture *f, const char *name, const char *text)
{
    char path[256], *body;
    json_t *j = json_pack("{s:s}", "policy", text);
    long st;

    body = json_dumps(j, JSON_COMPACT);
    snprintf(path, sizeof(path), "/v1/sys/policies/acl/%s", name);
    st = call(f, "PUT", path, ROOT_ID, body, NULL);
    if (st != 204)
        fail_msg("writing policy %s: %ld", name, st);
    free(body);
    json_decref(j);
}

/* Creates a token holding only policy name; *out (size outlen) gets it. */
static void
token_with(struct fixture *f, const char *name, char *out, size_t outlen)
{
    char body[256];
    struct resp r;
    json_t *j;
    const char *tok = NULL;

    snprintf(body, sizeof(body), "{\"policies\":[\"%s\"],\"no_default_policy\":true}", name);
    assert_int_equal(call(f, "POST", "/v1/auth/token/create", ROOT_ID, body, &r), 200);
    j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_unpack(j, "{s:{s:s}}", "auth", "client_token", &tok), 0);
    snprintf(out, outlen, "%s", tok);
    json_decref(j);
}

/* The text of policy name as root reads it (caller frees), or NULL when it does not exist. */
static char *
policy_text_of(struct fixture *f, const char *name)
{
    char path[256], *out = NULL;
    struct resp r;
    json_t *j;
    const char *t = NULL;

    snprintf(path, sizeof(path), "/v1/sys/policies/acl/%s", name);
    if (call(f, "GET", path, ROOT_ID, NULL, &r) != 200)
        return NULL;
    j = json_loads(r.body, 0, NULL);
    if (j != NULL && json_unpack(j, "{s:{s:s}}", "data", "policy", &t) == 0)
        out = strdup(t);
    json_decref(j);
    return out;
}

static int
setup(void **state)
{
    static const char inv_text[] = "version: 1\n";
    struct fixture *f = calloc(1, sizeof(*f));
    struct api_app_opts ao = {0};
    struct http_config hc = {0};
    struct inventory *inv = NULL;
    struct secret *key = NULL, *root = NULL;
    struct rk_error err = {0};
    char loc[128];

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/rk-names-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(loc, sizeof(loc), "sqlite:%s/rekey.db", f->dir);
    if (inventory_load_string("(test)", inv_text, strlen(inv_text), &inv, &err) != 0)
        goto fail;
    ao.inv = inv;
    ao.store_location = loc;
    ao.dev = 1;
    if (api_app_new(&ao, &f->app, &err) != 0)
        goto fail;
    key = secret_new(ROOT_KEY_LEN);
    if (key == NULL || RAND_bytes(key->data, ROOT_KEY_LEN) != 1 ||
        api_app_init_root(f->app, key, "{\"type\":\"keyfile\"}", ROOT_ID, &root, &err) != 0)
        goto fail;
    secret_free(key);
    secret_free(root);
    key = root = NULL;
    if (api_routes(&f->routes, &f->nroutes, &err) != 0)
        goto fail;
    hc.listen = "127.0.0.1:0";
    hc.threads = 2;
    if (http_server_start(&hc, f->routes, f->nroutes, f->app, &f->srv, &err) != 0)
        goto fail;
    f->app->server = f->srv;
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%u", http_server_port(f->srv));
    if ((f->curl = curl_easy_init()) == NULL)
        goto fail;
    *state = f;
    return 0;
fail:
    fprintf(stderr, "setup: %s\n", err.msg);
    secret_free(key);
    secret_free(root);
    return -1;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    curl_easy_cleanup(f->curl);
    http_server_stop(f->srv);
    api_app_free(f->app);
    free(f->routes);
    snprintf(cmd, sizeof(cmd), "%s/rekey.db", f->dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/rekey.db-wal", f->dir);
    unlink(cmd);
    snprintf(cmd, sizeof(cmd), "%s/rekey.db-shm", f->dir);
    unlink(cmd);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The reproduction from the issue, word for word: create and update under sys/policies/acl/, a
 * deny on sys/policies/acl/selfpol, and an attempt to widen selfpol through a case variant. */
static void
test_selfpol_exploit(void **state)
{
    static const char selfpol[] = "path \"sys/policies/acl/*\" {\n"
                                  "  capabilities = [\"create\", \"update\"]\n"
                                  "}\n"
                                  "path \"sys/policies/acl/selfpol\" {\n"
                                  "  capabilities = [\"deny\"]\n"
                                  "}\n";
    static const char widen[] = "{\"policy\":\"path \\\"*\\\" { capabilities = "
                                "[\\\"read\\\",\\\"sudo\\\",\\\"update\\\"] }\"}";
    struct fixture *f = *state;
    char tok[128], path[128], *after;

    put_policy(f, "selfpol", selfpol);
    token_with(f, "selfpol", tok, sizeof(tok));
    for (size_t i = 0; i < NVARIANTS; i++) {
        snprintf(path, sizeof(path), "/v1/sys/policies/acl/%s", variants[i]);
        if (call(f, "PUT", path, tok, widen, NULL) != 403)
            fail_msg("PUT %s was not denied", path);
        if (call(f, "POST", path, tok, widen, NULL) != 403)
            fail_msg("POST %s was not denied", path);
    }
    after = policy_text_of(f, "selfpol");
    assert_non_null(after);
    assert_string_equal(after, selfpol);
    free(after);
    /* The token still can what its policy grants: create another policy, in any case, which
     * is stored under the lowercase name. */
    assert_int_equal(call(f, "PUT", "/v1/sys/policies/acl/OtherPol", tok, widen, NULL), 204);
    after = policy_text_of(f, "otherpol");
    assert_non_null(after);
    free(after);
    assert_int_equal(call(f, "GET", "/v1/sys/policies/acl/OTHERPOL", ROOT_ID, NULL, NULL), 200);
}

/* Every verb on both policy route families, with read and delete granted too, so a 403 can
 * only come from the deny. */
static void
test_selfpol_all_verbs(void **state)
{
    static const char selfpol[] =
        "path \"sys/policies/acl/*\" { capabilities = [\"create\", \"read\", \"update\", "
        "\"delete\", \"list\"] }\n"
        "path \"sys/policies/acl/selfpol\" { capabilities = [\"deny\"] }\n"
        "path \"sys/policy/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", "
        "\"list\"] }\n"
        "path \"sys/policy/selfpol\" { capabilities = [\"deny\"] }\n";
    static const char *const bases[] = {"/v1/sys/policies/acl/", "/v1/sys/policy/"};
    static const char *const methods[] = {"GET", "PUT", "POST", "DELETE"};
    static const char widen[] = "{\"policy\":\"path \\\"*\\\" { capabilities = [\\\"sudo\\\"] }\","
                                "\"rules\":\"path \\\"*\\\" { capabilities = [\\\"sudo\\\"] }\"}";
    struct fixture *f = *state;
    char tok[128], path[128], *after;

    put_policy(f, "selfpol", selfpol);
    token_with(f, "selfpol", tok, sizeof(tok));
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            for (size_t i = 0; i < NVARIANTS; i++) {
                int write = methods[m][0] == 'P';
                snprintf(path, sizeof(path), "%s%s", bases[b], variants[i]);
                if (call(f, methods[m], path, tok, write ? widen : NULL, NULL) != 403)
                    fail_msg("%s %s was not denied", methods[m], path);
            }
        }
        /* The grant works on another name, in any case. */
        snprintf(path, sizeof(path), "%sDefault", bases[b]);
        assert_int_equal(call(f, "GET", path, tok, NULL, NULL), 200);
    }
    after = policy_text_of(f, "selfpol");
    assert_non_null(after);
    assert_string_equal(after, selfpol);
    free(after);
}

/* The walk: every route of the table that carries a name, every method it takes, every case
 * variant of a name its ACL path denies. A case-insensitive name is denied in every spelling
 * (also with a sub-path after it); a case-sensitive name only in the spelling denied. Then
 * names with control characters or other invalid bytes are refused with 400, root or not. */
static void
test_walk_routes(void **state)
{
    static const unsigned bits[] = {HTTP_GET,    HTTP_PUT,  HTTP_POST,
                                    HTTP_DELETE, HTTP_LIST, HTTP_PATCH};
    static const char *const names[] = {"GET", "PUT", "POST", "DELETE", "LIST", "PATCH"};
    static const char *const bad[] = {"self%1Bpol", "self%0Apol", "self%C2%85pol", "%C3%A9t%C3%A9",
                                      "self%20pol", "self%25pol", "self*",         "self%22pol",
                                      "self%3Cpol", "self+pol"};
    struct fixture *f = *state;
    char *text = NULL, tok[128], path[512];
    size_t tlen = 0, walked = 0;
    FILE *mf = open_memstream(&text, &tlen);

    /* One policy: everything allowed, then for each route with a name, its "selfpol" (and
     * what is under it) denied. ACL paths are request paths without "/v1/" (app.h). */
    assert_non_null(mf);
    fprintf(mf, "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"patch\", "
                "\"delete\", \"list\", \"sudo\"] }\n");
    for (size_t i = 0; i < f->nroutes; i++) {
        if (!router_route_names(&f->routes[i]))
            continue;
        fprintf(mf, "path \"%sselfpol\" { capabilities = [\"deny\"] }\n", f->routes[i].pattern + 4);
        fprintf(mf, "path \"%sselfpol/*\" { capabilities = [\"deny\"] }\n",
                f->routes[i].pattern + 4);
    }
    fclose(mf);
    put_policy(f, "walker", text);
    free(text);
    token_with(f, "walker", tok, sizeof(tok));

    for (size_t i = 0; i < f->nroutes; i++) {
        const struct route *rt = &f->routes[i];
        if (!router_route_names(rt))
            continue;
        walked++;
        for (size_t m = 0; m < sizeof(bits) / sizeof(bits[0]); m++) {
            if ((rt->methods & bits[m]) == 0)
                continue;
            int write = (bits[m] & (HTTP_PUT | HTTP_POST | HTTP_PATCH)) != 0;
            for (int sub = 0; sub < 2; sub++) {
                long canon;
                /* The spelling the policy denies: refused (403, or 405 where the route takes
                 * the method only without a name), never served. */
                snprintf(path, sizeof(path), "%sselfpol%s", rt->pattern, sub ? "/x" : "");
                canon = call(f, names[m], path, tok, write ? "{}" : NULL, NULL);
                if (canon != 403 && canon != 405)
                    fail_msg("%s %s: %ld, not denied", names[m], path, canon);
                for (size_t v = 0; v < NVARIANTS; v++) {
                    long st;
                    snprintf(path, sizeof(path), "%s%s%s", rt->pattern, variants[v],
                             sub ? "/x" : "");
                    st = call(f, names[m], path, tok, write ? "{}" : NULL, NULL);
                    /* A case-insensitive name: every spelling is the denied one. A
                     * case-sensitive one: another spelling is another object, not denied. */
                    if (rt->param == ROUTE_PARAM_NAME_FOLD && st != canon)
                        fail_msg("%s %s: %ld, but %ld for the spelling denied", names[m], path, st,
                                 canon);
                    if (rt->param == ROUTE_PARAM_NAME && strcmp(variants[v], "selfpol") != 0 &&
                        st == 403)
                        fail_msg("%s %s: denied, but the name is case-sensitive", names[m], path);
                }
            }
        }
        /* A route that takes no GET (transit/sign) is asked with POST: a method it does not
         * take is answered 405 before the path's name is looked at. */
        const char *rd = (rt->methods & HTTP_GET) ? "GET" : "POST";
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            snprintf(path, sizeof(path), "%s%s", rt->pattern, bad[b]);
            if (call(f, rd, path, ROOT_ID, rd[0] == 'P' ? "{}" : NULL, NULL) != 400)
                fail_msg("%s %s was not refused with 400", rd, path);
            if ((rt->methods & HTTP_PUT) && call(f, "PUT", path, tok, "{}", NULL) != 400)
                fail_msg("PUT %s was not refused with 400", path);
        }
        snprintf(path, sizeof(path), "%s%0*d", rt->pattern, ROUTER_NAME_MAX + 1, 0);
        assert_int_equal(call(f, rd, path, ROOT_ID, rd[0] == 'P' ? "{}" : NULL, NULL), 400);
    }
    assert_true(walked >= 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canon),
        cmocka_unit_test(test_table_rules),
        cmocka_unit_test_setup_teardown(test_selfpol_exploit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selfpol_all_verbs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_routes, setup, teardown),
    };
    int rc;

    log_set_level(LOG_ERROR); /* every denial is logged as a warning: thousands here */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
