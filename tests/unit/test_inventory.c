/* Unit tests for the YAML loader (src/engine/inventory.c, config-*.c) and lint.c: the reference
 * example, every error case with its file:line:col, the kinds' settings tables, lint findings
 * (generic and each kind's), and the load time of a 10,000-entry inventory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/inventory.h"
#include "util/err.h"

/* ---- helpers ---- */

static int
load(const char *yaml, struct inventory **inv, struct rk_error *err)
{
    rk_error_clear(err);
    return inventory_load_string("t.yaml", yaml, strlen(yaml), inv, err);
}

/* Loading yaml must fail with a message that starts with "t.yaml:<where>: " and contains
 * each of the given substrings. */
static void
expect_err_(const char *yaml, const char *where, const char *const *subs, const char *file,
            int line)
{
    struct inventory *inv = (struct inventory *)0x1;
    struct rk_error err;
    char prefix[64];
    int r = load(yaml, &inv, &err);

    snprintf(prefix, sizeof(prefix), "t.yaml:%s: ", where);
    if (r != -RK_ECONFIG || inv != NULL || strncmp(err.msg, prefix, strlen(prefix)) != 0) {
        print_error("%s:%d: r=%d msg='%s' (wanted prefix '%s')\n", file, line, r, err.msg, prefix);
        fail();
    }
    for (size_t i = 0; subs[i] != NULL; i++)
        if (strstr(err.msg, subs[i]) == NULL) {
            print_error("%s:%d: '%s' not in '%s'\n", file, line, subs[i], err.msg);
            fail();
        }
}
#define expect_err(yaml, where, ...)                                                               \
    expect_err_(yaml, where, (const char *const[]){__VA_ARGS__, NULL}, __FILE__, __LINE__)

#define HDR "version: 1\n"
#define GEN(path) "  - path: " path "\n    kind: generated\n    format: \"t-{hex:32}\"\n"

struct findings {
    int n;
    char text[32][300];
};

static void
collect(void *arg, const char *severity, const char *where, const char *msg)
{
    struct findings *f = arg;
    if (f->n < 32)
        snprintf(f->text[f->n++], sizeof(f->text[0]), "%s: %s: %s", where, severity, msg);
}

static int
has_finding(const struct findings *f, const char *sev, const char *sub)
{
    for (int i = 0; i < f->n; i++)
        if (strstr(f->text[i], sev) != NULL && strstr(f->text[i], sub) != NULL)
            return 1;
    return 0;
}

static void
dump(const struct findings *f)
{
    for (int i = 0; i < f->n; i++)
        print_message("  %s\n", f->text[i]);
}

/* Loads a config that must be valid and lints it. Returns the number of lint errors. */
static int
lint_of(const char *yaml, struct findings *f)
{
    struct inventory *inv = NULL;
    struct rk_error err;
    int n;

    memset(f, 0, sizeof(*f));
    if (load(yaml, &inv, &err) != 0) {
        print_error("unexpected load error: %s\n", err.msg);
        fail();
    }
    n = inventory_lint(inv, collect, f);
    inventory_free(inv);
    return n;
}

/* Finds examples/<name> from the source tree, whatever directory the test runs in. */
static int
example_path(const char *name, char *out, size_t outlen)
{
    const char *env = getenv("MESON_SOURCE_ROOT");
    char root[1024];
    const char *cands[4];
    size_t nc = 0;

    snprintf(root, sizeof(root), "%s", __FILE__);
    char *p = strstr(root, "tests/unit/test_inventory.c");
    if (p != NULL)
        *p = '\0';
    if (env != NULL)
        cands[nc++] = env;
    cands[nc++] = root[0] ? root : ".";
    cands[nc++] = "..";
    cands[nc++] = ".";
    for (size_t i = 0; i < nc; i++) {
        snprintf(out, outlen, "%s%s%sexamples/%s", cands[i], cands[i][0] ? "" : ".",
                 cands[i][strlen(cands[i]) - 1] == '/' ? "" : "/", name);
        if (access(out, R_OK) == 0)
            return 0;
    }
    return -1;
}

/* ---- the examples ---- */

static void
test_example_ai_gateway(void **state)
{
    char path[1200];
    struct inventory *inv = NULL;
    struct rk_error err = {0};
    struct findings f = {0};
    const struct inv_secret *s;
    static const char *const paths[] = {"secret/ai-gateway/providers/openai",
                                        "secret/ai-gateway/providers/anthropic",
                                        "secret/ai-gateway/providers/xai",
                                        "secret/ai-gateway/litellm/master-key",
                                        "database/creds/litellm-app",
                                        "database/creds/litellm-readonly",
                                        "transit/keys/jwt-signing",
                                        "secret/ai-gateway/redis/auth",
                                        "pki/ai-gateway-tls"};
    int64_t d;

    (void)state;
    assert_int_equal(example_path("ai-gateway.yaml", path, sizeof(path)), 0);
    if (inventory_load_file(path, &inv, &err) != 0)
        fail_msg("%s", err.msg);
    /* DESIGN.md §1: nine secrets (root/recovery is not an inventory entry). */
    assert_int_equal(inv->nsecrets, sizeof(paths) / sizeof(paths[0]));
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        s = inventory_find(inv, paths[i]);
        assert_non_null(s);
        assert_string_equal(s->path, paths[i]);
        assert_true(s->line > 0 && s->col > 0);
    }
    assert_null(inventory_find(inv, "secret/ai-gateway/providers/nope"));

    s = inventory_find(inv, "secret/ai-gateway/providers/openai");
    assert_string_equal(s->kind, "provider-key");
    assert_int_equal(s->every, 90 * 86400);
    assert_false(s->auto_rotate);
    assert_string_equal(s->field, "api_key");
    assert_string_equal(inv_param(s, "provider"), "openai");
    assert_string_equal(inv_param(s, "base_url"), "https://api.openai.com");
    assert_non_null(s->pattern);
    assert_int_equal(s->nreload, 3);

    s = inventory_find(inv, "secret/ai-gateway/providers/anthropic");
    assert_string_equal(inv_param(s, "base_url"), "https://api.anthropic.com");
    assert_non_null(strstr(s->pattern, "sk-ant-"));
    s = inventory_find(inv, "secret/ai-gateway/providers/xai");
    assert_string_equal(inv_param(s, "base_url"), "https://api.x.ai");

    s = inventory_find(inv, "secret/ai-gateway/litellm/master-key");
    assert_string_equal(s->kind, "generated");
    assert_string_equal(s->format, "sk-litellm-{hex:48}");
    assert_string_equal(s->field, "key");
    assert_int_equal(s->every, 30 * 86400);
    assert_true(s->auto_rotate);
    assert_int_equal(s->grace, 86400);
    assert_int_equal(s->napply, 2);
    assert_string_equal(s->apply[0]->name, "litellm-env");
    assert_int_equal(s->apply[0]->type, HOOK_FILE);
    assert_int_equal(s->apply[0]->mode, 0600);
    assert_non_null(strstr(s->apply[0]->template, "LITELLM_MASTER_KEY={{new}}"));
    /* LiteLLM's re-encryption under the new key, after the env file, before the restart */
    assert_string_equal(s->apply[1]->name, "litellm-regenerate");
    assert_int_equal(s->apply[1]->type, HOOK_HTTP);
    assert_non_null(strstr(s->apply[1]->url, "/key/regenerate"));
    assert_string_equal(inv_hook_param(s->apply[1], "without_old"), "skip");
    assert_int_equal(s->nreload, 3);
    assert_int_equal(s->reload[0]->type, HOOK_EXEC);
    assert_string_equal(s->reload[0]->argv[0], "kubectl");
    assert_null(s->reload[0]->argv[s->reload[0]->argc]);
    assert_int_equal(s->reload[2]->type, HOOK_HTTP);
    assert_string_equal(s->reload[2]->method, "GET");
    assert_int_equal(s->reload[2]->expect_status, 200);
    assert_int_equal(s->reload[2]->wait_interval_ms, 2000);
    assert_int_equal(s->reload[2]->wait_timeout_ms, 120000);

    s = inventory_find(inv, "database/creds/litellm-app");
    assert_string_equal(s->kind, "database");
    assert_int_equal(inv_param_duration(s, "ttl", 0, &d), 0);
    assert_int_equal(d, 24 * 3600);
    assert_int_equal(inv_param_duration(s, "max_ttl", 0, &d), 0);
    assert_int_equal(d, 48 * 3600);
    assert_string_equal(inv_param(s, "role"), "litellm-app");
    assert_non_null(inv_param(s, "creation_statements"));
    s = inventory_find(inv, "database/creds/litellm-readonly");
    assert_int_equal(inv_param_duration(s, "ttl", 0, &d), 0);
    assert_int_equal(d, 3600);
    assert_int_equal(inv_param_duration(s, "max_ttl", 0, &d), 0);
    assert_int_equal(d, 4 * 3600);
    /* a role template (database/creds/litellm-readonly issues logins); litellm-app a held lease */
    assert_int_equal(s->every, 0);
    assert_false(s->auto_rotate);
    assert_int_equal(inventory_find(inv, "database/creds/litellm-app")->every, 12 * 3600);

    s = inventory_find(inv, "transit/keys/jwt-signing");
    assert_string_equal(inv_param(s, "key_type"), "rsa-4096");
    assert_string_equal(inv_param(s, "exportable"), "false");
    assert_int_equal(s->every, 7 * 86400);

    s = inventory_find(inv, "secret/ai-gateway/redis/auth");
    assert_string_equal(s->kind, "redis-password");
    assert_string_equal(s->field, "password");
    assert_int_equal(s->every, 30 * 86400);

    s = inventory_find(inv, "pki/ai-gateway-tls");
    assert_string_equal(inv_param(s, "common_name"), "gateway.example.com");
    assert_string_equal(inv_param(s, "alt_names"), "gateway.example.com,api.gateway.example.com");
    assert_int_equal(inv_param_duration(s, "ttl", 0, &d), 0);
    assert_int_equal(d, 90 * 86400);
    assert_int_equal(inv_param_duration(s, "renew_before", 0, &d), 0);
    assert_int_equal(d, 30 * 86400);
    assert_int_equal(s->every, 60 * 86400);

    /* store path relative to the config's directory */
    assert_non_null(strstr(inv->store_path, "examples/rekey.db"));
    assert_string_equal(inv->store_backend, "sqlite");
    assert_string_equal(inv->listen, "127.0.0.1:8200");
    unsetenv("REKEY_STORE");
    assert_int_equal(strncmp(inventory_store_location(inv), "sqlite:", 7), 0);
    assert_non_null(strstr(inventory_store_location(inv), "examples/rekey.db"));
    setenv("REKEY_STORE", "sqlite:/tmp/other.db", 1);
    assert_string_equal(inventory_store_location(inv), "sqlite:/tmp/other.db");
    unsetenv("REKEY_STORE");

    /* lint: no errors, and no warnings either for the reference file */
    assert_int_equal(inventory_lint(inv, collect, &f), 0);
    if (f.n != 0)
        dump(&f);
    assert_int_equal(f.n, 0);
    for (size_t i = 0; i < inv->nhooks; i++)
        assert_true(inv->hooks[i].used > 0);
    inventory_free(inv);
}

static void
test_example_minimal(void **state)
{
    char path[1200];
    struct inventory *inv = NULL;
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(example_path("minimal.yaml", path, sizeof(path)), 0);
    if (inventory_load_file(path, &inv, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(inv->nsecrets, 1);
    assert_int_equal(inv->nhooks, 1);
    assert_int_equal(inv->secrets[0].nreload, 1);
    assert_int_equal(inv->secrets[0].reload[0]->type, HOOK_FILE);
    assert_string_equal(inv->secrets[0].field, "value");
    assert_int_equal(inventory_lint(inv, NULL, NULL), 0);
    inventory_free(inv);
}

static void
test_defaults(void **state)
{
    struct inventory *inv = NULL;
    struct rk_error err;
    const struct inv_secret *s;

    (void)state;
    assert_int_equal(load(HDR "secrets:\n" GEN("a/b") "    every: 1d\n", &inv, &err), 0);
    assert_string_equal(inv->store_backend, "sqlite");
    assert_string_equal(inv->store_path, "rekey.db");
    assert_string_equal(inv->store_location, "sqlite:rekey.db");
    assert_string_equal(inv->audit_path, "audit.log");
    inventory_free(inv);
    inv = NULL;
    assert_int_equal(
        load(HDR "store: {backend: log, path: s.log}\nsecrets:\n" GEN("a/b") "    every: 1d\n",
             &inv, &err),
        0);
    assert_string_equal(inv->store_location, "log:s.log");
    inventory_free(inv);
    inv = NULL;
    assert_int_equal(load(HDR "secrets:\n" GEN("a/b") "    every: 1d\n", &inv, &err), 0);
    assert_int_equal(inv->check_interval, 60);
    s = inventory_find(inv, "a/b");
    assert_non_null(s);
    assert_false(s->auto_rotate);
    assert_int_equal(s->grace, 0);
    assert_string_equal(s->field, "value");
    inventory_free(inv);

    /* relative paths follow the config file; absolute ones are kept */
    {
        const char *y = HDR "store: {path: data/r.db, key_file: /k/root.key}\n";
        assert_int_equal(inventory_load_string("/etc/rekey/rekey.yaml", y, strlen(y), &inv, &err),
                         0);
    }
    assert_string_equal(inv->store_path, "/etc/rekey/data/r.db");
    assert_string_equal(inv->key_file, "/k/root.key");
    assert_string_equal(inv->audit_path, "/etc/rekey/audit.log");
    inventory_free(inv);

    /* certificate: every defaults to ttl - renew_before */
    assert_int_equal(load(HDR "secrets:\n  - {path: pki/x, kind: certificate, common_name: x.test, "
                              "ttl: 30d, renew_before: 10d}\n",
                          &inv, &err),
                     0);
    assert_int_equal(inv->secrets[0].every, 20 * 86400);
    assert_string_equal(inv_param(&inv->secrets[0], "issuer"), "internal");
    inventory_free(inv);

    /* buffer need not be NUL-terminated */
    {
        char buf[64];
        const char *y = HDR "secrets: []\n";
        memcpy(buf, y, strlen(y));
        memset(buf + strlen(y), 'x', sizeof(buf) - strlen(y));
        assert_int_equal(inventory_load_string("t.yaml", buf, strlen(y), &inv, &err), 0);
        assert_int_equal(inv->nsecrets, 0);
        inventory_free(inv);
    }
    inventory_free(NULL);
}

static void
test_default_path(void **state)
{
    (void)state;
    unsetenv("REKEY_CONFIG");
    assert_string_equal(inventory_default_path(NULL), "rekey.yaml");
    setenv("REKEY_CONFIG", "/etc/rekey.yaml", 1);
    assert_string_equal(inventory_default_path(NULL), "/etc/rekey.yaml");
    assert_string_equal(inventory_default_path("x.yaml"), "x.yaml");
    unsetenv("REKEY_CONFIG");
}

static void
test_load_file_errors(void **state)
{
    struct inventory *inv = (struct inventory *)0x1;
    struct rk_error err = {0};
    char dir[] = "/tmp/rekey-inv-XXXXXX", file[64];
    FILE *fp;

    (void)state;
    assert_int_equal(inventory_load_file("/nonexistent/rekey.yaml", &inv, &err), -RK_ENOTFOUND);
    assert_null(inv);
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/bad.yaml", dir);
    fp = fopen(file, "w");
    assert_non_null(fp);
    fputs("version: 1\nbogus: 1\n", fp);
    fclose(fp);
    assert_int_equal(inventory_load_file(file, &inv, &err), -RK_ECONFIG);
    assert_non_null(strstr(err.msg, "bad.yaml:2:1: "));
    assert_non_null(strstr(err.msg, "bogus"));
    unlink(file);
    rmdir(dir);
}

/* ---- errors with positions ---- */

static void
test_err_unknown_keys(void **state)
{
    (void)state;
    expect_err(HDR "secretz: []\n", "2:1", "unknown key 'secretz'", "secrets");
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    evry: 2d\n", "7:5",
               "unknown key 'evry'", "secrets[0]", "every");
    expect_err(HDR "hooks:\n  h1:\n    type: exec\n    command: [/bin/true]\n    comand: [x]\n",
               "6:5", "hooks.h1", "unknown key 'comand'", "command");
    /* a key valid for another kind */
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    ttl: 1h\n", "7:5",
               "unknown key 'ttl' for kind generated");
    /* a key valid for another hook type */
    expect_err(HDR "hooks:\n  h1: {type: file, path: /x, template: a, url: http://x}\n", "3:43",
               "unknown key 'url'", "type file");
    expect_err(HDR "store: {backend: sqlite, pth: x}\n", "2:26", "store", "unknown key 'pth'");
    expect_err(HDR "server:\n  listen: x\n  tls: 1\n", "4:3", "server", "unknown key 'tls'");
    expect_err(HDR "hooks:\n  h: {type: http, url: \"http://127.0.0.1/\", wait: {every: 1s}}\n",
               "3:52", "wait", "unknown key 'every'");
    expect_err(HDR "version: 1\n", "2:1", "duplicate key 'version'");
}

static void
test_err_durations(void **state)
{
    (void)state;
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 30x\n", "6:12", "secrets[0].every",
               "unknown unit 'x'");
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 0s\n", "6:12", "every", "greater than 0");
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    grace: soon\n", "7:12", "grace");
    expect_err(HDR "hooks:\n  h: {type: exec, command: [x], timeout: -5s}\n", "3:42",
               "hooks.h.timeout");
    expect_err(HDR "secrets:\n  - {path: d/c/r, kind: database, connection: host=x, every: 1d, "
                   "ttl: 1y}\n",
               "3:71", "secrets[0].ttl", "unknown unit 'y'");
}

/* server.request_timeout: default 30s, any duration syntax, 1s..1h inclusive; errors name
 * file:line:col of the value, the key and the range. */
static void
test_request_timeout(void **state)
{
    static const struct {
        const char *yaml;
        int64_t want;
    } ok[] = {
        {HDR "secrets: []\n", 30},
        {HDR "server:\n  listen: \"127.0.0.1:0\"\n", 30},
        {HDR "server:\n  request_timeout: ~\n", 30}, /* null: the default, as for other keys */
        {HDR "server:\n  request_timeout: 3s\n", 3},
        {HDR "server:\n  request_timeout: 2m\n", 120},
        {HDR "server: {request_timeout: 1m30s}\n", 90},
        {HDR "server:\n  request_timeout: 45\n", 45}, /* plain seconds */
        {HDR "server:\n  request_timeout: 1s\n", 1},
        {HDR "server:\n  request_timeout: 1h\n", 3600},
        {HDR "server:\n  request_timeout: 59m60s\n", 3600},
    };
    struct inventory *inv = NULL;
    struct rk_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (load(ok[i].yaml, &inv, &err) != 0) {
            print_error("case %zu: unexpected load error: %s\n", i, err.msg);
            fail();
        }
        if (inv->request_timeout != ok[i].want) {
            print_error("case %zu: request_timeout %lld, wanted %lld\n", i,
                        (long long)inv->request_timeout, (long long)ok[i].want);
            fail();
        }
        inventory_free(inv);
        inv = NULL;
    }

    /* out of range: the value's position, the key, the accepted range */
    expect_err(HDR "server:\n  listen: x\n  request_timeout: 0s\n", "4:20",
               "server.request_timeout", "expected a duration from 1s to 1h");
    expect_err(HDR "server:\n  request_timeout: 0\n", "3:20", "server.request_timeout",
               "from 1s to 1h");
    expect_err(HDR "server:\n  request_timeout: 1h1s\n", "3:20", "server.request_timeout",
               "from 1s to 1h");
    expect_err(HDR "server: {request_timeout: 2h}\n", "2:27", "server.request_timeout",
               "from 1s to 1h");
    expect_err(HDR "server:\n  request_timeout: 9999999999w\n", "3:20", "server.request_timeout");
    /* not a duration */
    expect_err(HDR "server:\n  request_timeout: soon\n", "3:20", "server.request_timeout",
               "bad duration 'soon'");
    expect_err(HDR "server:\n  request_timeout: 30x\n", "3:20", "server.request_timeout",
               "unknown unit 'x'");
    expect_err(HDR "server:\n  request_timeout: -5s\n", "3:20", "server.request_timeout");
    expect_err(HDR "server:\n  request_timeout: \"\"\n", "3:20", "server.request_timeout",
               "empty duration");
    expect_err(HDR "server:\n  request_timeout:\n", "3:3", "server.request_timeout",
               "empty duration"); /* as for check_interval: no value has no position of its own */
    expect_err(HDR "server:\n  request_timeout: [3s]\n", "3:20", "server.request_timeout",
               "a duration");
    expect_err(HDR "server:\n  request_timeout: {s: 3}\n", "3:20", "server.request_timeout");
    /* a misspelt key is refused and the right one suggested in the list */
    expect_err(HDR "server:\n  request_timout: 3s\n", "3:3", "server",
               "unknown key 'request_timout'", "request_timeout");
    expect_err(HDR "server:\n  request_timeout: 3s\n  request_timeout: 4s\n", "4:3",
               "duplicate key 'request_timeout'");
}

/* server.api_addr: the URL other servers reach this one at (several servers on etcd): scheme,
 * host and port only, a trailing '/' dropped; anything else refused at the value's position. */
static void
test_api_addr(void **state)
{
    static const struct {
        const char *yaml, *want;
    } ok[] = {
        {HDR "secrets: []\n", NULL},
        {HDR "server:\n  api_addr: \"https://rekey-1.internal:8200\"\n",
         "https://rekey-1.internal:8200"},
        {HDR "server:\n  api_addr: http://10.0.0.7:8200/\n", "http://10.0.0.7:8200"},
        {HDR "server: {api_addr: \"http://[fd00::7]:8200\"}\n", "http://[fd00::7]:8200"},
    };
    struct inventory *inv = NULL;
    struct rk_error err;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (load(ok[i].yaml, &inv, &err) != 0) {
            print_error("case %zu: unexpected load error: %s\n", i, err.msg);
            fail();
        }
        if (ok[i].want == NULL)
            assert_null(inv->api_addr);
        else
            assert_string_equal(inv->api_addr, ok[i].want);
        inventory_free(inv);
        inv = NULL;
    }
    expect_err(HDR "server:\n  api_addr: ftp://h:21\n", "3:13", "server.api_addr",
               "expected a URL such as https://");
    expect_err(HDR "server:\n  api_addr: rekey-1:8200\n", "3:13", "server.api_addr");
    expect_err(HDR "server:\n  api_addr: http://user@h:8200\n", "3:13", "server.api_addr");
    expect_err(HDR "server:\n  api_addr: http://h:8200/v1\n", "3:13", "server.api_addr");
    expect_err(HDR "server:\n  api_addr: \"http://h:8200?x=1\"\n", "3:13", "server.api_addr");
    expect_err(HDR "server:\n  api_addr: \"http:// h\"\n", "3:13", "server.api_addr");
    expect_err(HDR "server:\n  api_addr: http://:8200\n", "3:13", "server.api_addr");
    expect_err(HDR "server:\n  api_addr: http://\n", "3:13", "server.api_addr");
    expect_err(HDR "server:\n  api_addr: \"\"\n", "3:13", "server.api_addr", "a non-empty string");
    expect_err(HDR "server:\n  api_addr: [http://h]\n", "3:13", "server.api_addr");
}

/* Found by fuzz/config-fuzzer: a huge hook wait.timeout overflowed its milliseconds (UBSan);
 * it is now bounded like a hook's timeout. */
static void
test_wait_timeout_bounded(void **state)
{
    struct inventory *inv = NULL;
    struct rk_error err;

    (void)state;
    expect_err(HDR "hooks:\n  h: {type: exec, command: [x], wait: {interval: 1s, timeout: "
                   "6148914691236517204s}}\n",
               "3:63", "hooks.h.wait.timeout", "up to 24h");
    expect_err(HDR "hooks:\n  h: {type: exec, command: [x], wait: {interval: 1s, timeout: "
                   "24h1s}}\n",
               "3:63", "hooks.h.wait.timeout", "up to 24h");
    assert_int_equal(load(HDR "hooks:\n  h: {type: exec, command: [x], wait: {interval: 1s, "
                              "timeout: 24h}}\n",
                          &inv, &err),
                     0);
    assert_int_equal(inv->hooks[0].wait_timeout_ms, 86400000);
    inventory_free(inv);
}

static void
test_err_paths(void **state)
{
    char *yaml;
    size_t n;
    (void)state;
    expect_err(HDR "secrets:\n" GEN("a/../b") "    every: 1d\n", "3:11", "secrets[0].path", "'..'");
    expect_err(HDR "secrets:\n" GEN("a//b") "    every: 1d\n", "3:11", "empty segment");
    expect_err(HDR "secrets:\n" GEN("/a/b") "    every: 1d\n", "3:11", "start with '/'");
    expect_err(HDR "secrets:\n" GEN("\"a\\0b\"") "    every: 1d\n", "3:11", "NUL");
    expect_err(HDR "secrets:\n" GEN("\"a\\x01b\"") "    every: 1d\n", "3:11", "non-printable");
    expect_err(HDR "secrets:\n" GEN("\"a b\"") "    every: 1d\n", "3:11", "space");
    /* 513 bytes */
    n = strlen(HDR "secrets:\n  - path: ") + 513 + 200;
    yaml = malloc(n);
    assert_non_null(yaml);
    {
        char seg[514];
        memset(seg, 'a', 513);
        seg[513] = '\0';
        snprintf(yaml, n,
                 HDR "secrets:\n  - path: %s\n    kind: generated\n    format: \"{hex:32}\"\n"
                     "    every: 1d\n",
                 seg);
        expect_err(yaml, "3:11", "513 bytes", "512");
        seg[512] = '\0'; /* exactly 512 is fine */
        snprintf(yaml, n,
                 HDR "secrets:\n  - path: %s\n    kind: generated\n    format: \"{hex:32}\"\n"
                     "    every: 1d\n",
                 seg);
        struct inventory *inv = NULL;
        struct rk_error err;
        assert_int_equal(load(yaml, &inv, &err), 0);
        inventory_free(inv);
    }
    free(yaml);
}

static void
test_err_required_and_kinds(void **state)
{
    (void)state;
    expect_err(HDR "secrets:\n  - path: a/b\n    kind: generated\n    format: \"{hex:32}\"\n",
               "3:5", "secrets[0]", "missing required key 'every'");
    expect_err(HDR "secrets:\n  - path: a/b\n    every: 1d\n", "3:5",
               "missing required key 'kind'");
    expect_err(HDR "secrets:\n  - kind: generated\n    format: \"{hex:32}\"\n    every: 1d\n",
               "3:5", "missing required key 'path'");
    expect_err(HDR "secrets:\n  - path: a/b\n    kind: generated\n    every: 1d\n", "3:5",
               "missing required key 'format'");
    expect_err(HDR "secrets:\n  - path: a/b\n    kind: magic\n    every: 1d\n", "4:11",
               "secrets[0].kind", "unknown kind 'magic'", "generated", "provider-key",
               "certificate");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: provider-key, every: 1d}\n", "3:5",
               "missing required key 'provider'", "openai");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: provider-key, provider: google, every: 1d}\n",
               "3:47", "secrets[0].provider", "openai|anthropic|xai");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: transit, key_type: rsa-1024, every: 1d}\n",
               "3:42", "key_type", "rsa-4096|ed25519|ecdsa-p256");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: manual, pattern: \"a(\", every: 1d}\n", "3:40",
               "secrets[0].pattern", "bad regular expression");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: manual, pattern: \"^x+++$\", every: 1d}\n",
               "3:40", "secrets[0].pattern", "position 4");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: generated, format: \"x{hex:\", every: 1d}\n",
               "3:42", "format");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: generated, format: constant, every: 1d}\n",
               "3:42", "format", "random bits");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: certificate, common_name: x, ttl: 10d, "
                   "renew_before: 10d}\n",
               "3:5", "renew_before");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: certificate, common_name: x, issuer: acme, "
                   "every: 1d}\n",
               "3:5", "acme_directory");
    expect_err("secrets: []\n", "1:1", "missing required key 'version'");
    expect_err("version: 2\n", "1:10", "version", "from 1 to 1");
    expect_err(HDR "store: {backend: etcd}\n", "2:1", "store.endpoints");
    expect_err(HDR "store: {backend: mysql}\n", "2:18", "store.backend", "sqlite|log|etcd");
}

static void
test_err_hooks(void **state)
{
    (void)state;
    expect_err(HDR "hooks:\n  h1: {type: exec, command: [x]}\nsecrets:\n" GEN(
                   "a/b") "    every: 1d\n    reload: [h1, nope]\n",
               "9:18", "secrets[0].reload", "unknown hook 'nope'");
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    apply: missing\n", "7:12",
               "secrets[0].apply", "unknown hook 'missing'");
    expect_err(HDR "hooks:\n  h1: {type: exec, command: [x]}\nsecrets:\n" GEN(
                   "a/b") "    every: 1d\n    reload: [h1, h1]\n",
               "9:18", "listed twice");
    expect_err(HDR "hooks:\n  h1: {type: smoke}\n", "3:14", "hooks.h1.type",
               "unknown hook type 'smoke'");
    expect_err(HDR "hooks:\n  h1: {command: [x]}\n", "3:3", "missing required key 'type'");
    expect_err(HDR "hooks:\n  h1: {type: exec, command: \"rm -rf /\"}\n", "3:29",
               "hooks.h1.command", "list");
    expect_err(HDR "hooks:\n  h1: {type: exec, command: [echo, \"{{new}}\"]}\n", "3:36",
               "hooks.h1.command", "stdin");
    expect_err(HDR "hooks:\n  h1: {type: http, url: \"https://x/?k={{new}}\"}\n", "3:25",
               "hooks.h1.url");
    expect_err(HDR "hooks:\n  h1: {type: http, url: \"ftp://x/\"}\n", "3:25", "http://");
    expect_err(HDR "hooks:\n  h1: {type: file, path: /x, template: \"{{nwe}}\"}\n", "3:40",
               "unknown placeholder '{{nwe}}'");
    expect_err(HDR "hooks:\n  h1: {type: file, path: /x, template: a, mode: \"0999\"}\n", "3:49",
               "hooks.h1.mode", "octal");
    expect_err(HDR "hooks:\n  h1: {type: file, template: a}\n", "3:3",
               "missing required key 'path'");
    expect_err(HDR "hooks:\n  h1: {type: http, url: \"http://x/\", expect_status: 9999}\n", "3:53",
               "expect_status");
    expect_err(HDR "hooks:\n  \"bad name\": {type: exec, command: [x]}\n", "3:3", "hook name");
    expect_err(HDR "hooks:\n  h1: {type: exec, command: [x], stdin: secret}\n", "3:41",
               "none|new|old");
    expect_err(HDR "hooks:\n  h1: {type: exec, command: [x], wait: {interval: 5s, timeout: 1s}}\n",
               "3:34", "interval");
}

static void
test_err_yaml_and_types(void **state)
{
    (void)state;
    /* malformed YAML: libfyaml's own position */
    expect_err(HDR "secrets: [\n  - path: a\n", "3:3", "YAML syntax error", "node content");
    expect_err(HDR "secrets:\n  - path: \"unterminated\n", "3:12", "YAML syntax error",
               "closing quote");
    expect_err("version: 1\n  bad indent: 2\n", "1:10", "YAML syntax error");
    /* wrong types */
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: [1d]\n", "6:12", "secrets[0].every",
               "expected a duration", "got a sequence");
    expect_err(HDR "secrets:\n  - path: [a, b]\n    kind: generated\n    every: 1d\n", "3:11",
               "secrets[0].path", "sequence");
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    auto: maybe\n", "7:11",
               "secrets[0].auto", "true or false");
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    description: {a: 1}\n", "7:18",
               "description", "got a mapping");
    expect_err(HDR "secrets: {a: 1}\n", "2:10", "secrets", "list");
    expect_err(HDR "secrets:\n  - just-a-string\n", "3:5", "secrets[0]", "mapping");
    expect_err(HDR "hooks: [a]\n", "2:8", "hooks", "mapping");
    expect_err("- 1\n", "1:1", "top level", "mapping");
    expect_err("", "1:1", "empty");
    expect_err("# only a comment\n", "1:1", "empty");
    expect_err(HDR "---\nversion: 1\n", "2:1", "second YAML document");
    /* bytes that are not YAML text, caught before libfyaml (which can hang on some) */
    {
        static const char nul[] = "version: 1\nsecrets: [a\0b]\n";
        struct inventory *inv = NULL;
        struct rk_error err;
        assert_int_equal(inventory_load_string("t.yaml", nul, sizeof(nul) - 1, &inv, &err),
                         -RK_ECONFIG);
        assert_non_null(strstr(err.msg, "t.yaml:2:12: "));
        assert_non_null(strstr(err.msg, "0x00"));
    }
    expect_err("%s:@\xff\n", "1:5", "invalid UTF-8");
    expect_err(HDR "secrets: \xc3\x28\n", "2:10", "invalid UTF-8");
    expect_err(HDR "x: \x01\n", "2:4", "control byte 0x01");
    expect_err(HDR "secrets:\n\t- path: a\n", "3:1", "tab in indentation");
    expect_err(HDR "secrets:\n  \t- path: a\n", "3:3", "tab in indentation");
    /* aliases are refused rather than expanded */
    expect_err(HDR "x: &a 1d\n", "2:1", "unknown key 'x'");
    expect_err(HDR "secrets:\n  - path: &p a/b\n    kind: generated\n    format: \"{hex:32}\"\n"
                   "    every: 1d\n  - path: c/d\n    kind: generated\n    format: \"{hex:32}\"\n"
                   "    every: 1d\n    description: *p\n",
               "11:19", "description", "alias");
}

static void
test_err_duplicates(void **state)
{
    (void)state;
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n" GEN("x/y") "    every: 1d\n" GEN(
                   "a/b") "    every: 2d\n",
               "11:5", "duplicate path 'a/b'", "line 3");
    expect_err(HDR "hooks:\n  h: {type: exec, command: [x]}\n  h: {type: exec, command: [y]}\n",
               "4:3", "duplicate hook name 'h'");
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    every: 2d\n", "7:5",
               "duplicate key 'every'");
}

/* ---- lint ---- */

static void
test_lint_certificate(void **state)
{
    struct findings f;
    (void)state;
    /* renew_before >= ttl, with an explicit schedule */
    assert_true(lint_of(HDR "secrets:\n  - {path: pki/a, kind: certificate, common_name: a, "
                            "ttl: 30d, renew_before: 30d, every: 10d}\n",
                        &f) >= 1);
    assert_true(has_finding(&f, "error", "renew_before 30d is not shorter than ttl 30d"));
    assert_true(has_finding(&f, "t.yaml:3:5", "pki/a"));
    /* schedule longer than ttl - renew_before */
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: pki/a, kind: certificate, common_name: a, "
                                 "ttl: 90d, renew_before: 30d, every: 70d}\n",
                             &f),
                     1);
    assert_true(has_finding(&f, "error", "every 70d is longer than ttl - renew_before = 60d"));
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: pki/a, kind: certificate, common_name: a, "
                                 "ttl: 90d, renew_before: 30d, every: 60d}\n",
                             &f),
                     0);
    assert_int_equal(f.n, 0);
}

static void
test_lint_database(void **state)
{
    struct findings f;
    (void)state;
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: database/creds/a, kind: database, "
                                 "connection: host=x, ttl: 2h, max_ttl: 1h, every: 1h}\n",
                             &f),
                     1);
    assert_true(has_finding(&f, "error", "max_ttl 1h is shorter than ttl 2h"));
    /* ttl shorter than two check intervals: a warning, not an error */
    assert_int_equal(lint_of(HDR "server: {check_interval: 5m}\nsecrets:\n  - {path: "
                                 "database/creds/a, kind: database, connection: host=x, ttl: 9m, "
                                 "max_ttl: 1h, every: 5m}\n",
                             &f),
                     0);
    assert_true(has_finding(&f, "warning", "lease ttl 9m is shorter than twice the check"));
    /* a 1-hour lease with the default 60s check is fine */
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: database/creds/a, kind: database, "
                                 "connection: host=x, ttl: 1h, max_ttl: 4h, every: 30m, "
                                 "admin_password_path: s/db/admin}\n",
                             &f),
                     0);
    assert_int_equal(f.n, 0);
    /* a held lease replaced no sooner than it expires: an error */
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: database/creds/a, kind: database, "
                                 "connection: host=x, ttl: 1h, max_ttl: 4h, every: 1h, "
                                 "admin_password_path: s/db/admin}\n",
                             &f),
                     1);
    assert_true(has_finding(&f, "error", "every 1h is not shorter than ttl 1h"));
    /* a role template (no every) loads and lints clean: it is not scheduled */
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: database/creds/a, kind: database, "
                                 "connection: host=x, ttl: 1h, max_ttl: 4h, "
                                 "admin_password_path: s/db/admin}\n",
                             &f),
                     0);
    assert_int_equal(f.n, 0);
    /* a password in the conninfo is refused at load */
    expect_err(HDR "secrets:\n  - {path: d/c/r, kind: database, connection: "
                   "\"host=x password=p\", every: 1d}\n",
               "3:47", "holds a password");
}

static void
test_lint_schedules(void **state)
{
    struct findings f;
    (void)state;
    assert_int_equal(lint_of(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    grace: 1d\n", &f), 1);
    assert_true(has_finding(&f, "error", "grace 1d is not shorter than every 1d"));
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: a/b, kind: manual, every: 30d, auto: "
                                 "true}\n",
                             &f),
                     1);
    assert_true(has_finding(&f, "error", "auto: true on a manual secret"));
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: a/b, kind: provider-key, provider: "
                                 "openai, every: 1d, min_interval: 7d}\n",
                             &f),
                     1);
    assert_true(
        has_finding(&f, "error", "every 1d is shorter than the provider's min_interval 7d"));
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: a/b, kind: provider-key, provider: "
                                 "openai, every: 30d, auto: true}\n",
                             &f),
                     1);
    assert_true(has_finding(&f, "error", "admin_key_path"));
    assert_int_equal(lint_of(HDR "secrets:\n  - {path: a/b, kind: provider-key, provider: xai, "
                                 "every: 30d, auto: true, management_key_path: secret/admin/xai, "
                                 "team_id: team-1}\n",
                             &f),
                     0);
}

static void
test_lint_hooks_and_duplicates(void **state)
{
    struct findings f;
    struct inventory *inv = NULL;
    struct rk_error err;
    (void)state;
    assert_int_equal(lint_of(HDR "hooks:\n  spare: {type: exec, command: [x]}\n  used: {type: "
                                 "exec, command: [y]}\nsecrets:\n" GEN(
                                     "a/b") "    every: 1d\n    reload: [used]\n",
                             &f),
                     0);
    assert_int_equal(f.n, 1);
    assert_true(has_finding(&f, "warning", "hook 'spare' is defined but no secret uses it"));
    assert_true(has_finding(&f, "t.yaml:3:3", "spare"));
    assert_int_equal(
        lint_of(HDR "hooks:\n  f: {type: file, path: /x, template: \"{{new}}\", "
                    "mode: \"0644\"}\nsecrets:\n" GEN("a/b") "    every: 1d\n    reload: [f]\n",
                &f),
        1);
    assert_true(has_finding(&f, "error", "mode 0644"));
    assert_int_equal(
        lint_of(HDR "hooks:\n  w: {type: http, url: \"http://10.0.0.1/\", headers: "
                    "{X-Key: \"{{new}}\"}}\nsecrets:\n" GEN("a/b") "    every: 1d\n    test: [w]\n",
                &f),
        1);
    assert_true(has_finding(&f, "error", "plain http"));

    /* two entries on one path: the loader refuses it, so build it by hand */
    assert_int_equal(load(HDR
                          "secrets:\n" GEN("a/b") "    every: 1d\n" GEN("c/d") "    every: 1d\n",
                          &inv, &err),
                     0);
    free(inv->secrets[1].path);
    inv->secrets[1].path = strdup("a/b");
    memset(&f, 0, sizeof(f));
    assert_int_equal(inventory_lint(inv, collect, &f), 1);
    assert_true(has_finding(&f, "error", "a/b: duplicate path"));
    inventory_free(inv);
}

/* ---- one template grammar, kind settings and kind rules (issue 12) ---- */

/* What loads renders and what is refused at load is refused everywhere: the loader uses the
 * renderer's grammar (util/template.h). */
static void
test_template_grammar_at_load(void **state)
{
    struct inventory *inv = NULL;
    struct rk_error err;
    char yaml[1024], field[201];

    (void)state;
    /* {{ new }} with spaces renders, so it loads (it used to be refused here) */
    assert_int_equal(load(HDR "hooks:\n  f: {type: file, path: /x, template: \"K={{ new }}\\n\"}\n"
                              "  w: {type: http, url: \"https://x/{{ path }}\", headers: "
                              "{X-Key: \"{{ new.key }}\"}}\n",
                          &inv, &err),
                     0);
    inventory_free(inv);
    inv = NULL;
    /* a field name longer than the renderer takes is refused at load, at the value */
    memset(field, 'f', 200);
    field[200] = '\0';
    snprintf(yaml, sizeof(yaml),
             HDR "hooks:\n  f: {type: file, path: /x, template: \"{{new.%s}}\"}\n", field);
    expect_err(yaml, "3:39", "hooks.f.template", "200 bytes", "at most 128");
    /* a secret placeholder in a file name or a workdir is refused (they show in logs) */
    expect_err(HDR "hooks:\n  f: {type: file, path: \"/x/{{new}}\", template: a}\n", "3:25",
               "hooks.f.path", "not allowed");
    expect_err(HDR "hooks:\n  e: {type: exec, command: [x], workdir: \"/{{ old }}\"}\n", "3:42",
               "hooks.e.workdir", "not allowed");
    /* {{path}} and {{version}} may name the file */
    assert_int_equal(load(HDR
                          "hooks:\n  f: {type: file, path: \"/x/{{version}}.env\", template: a}\n",
                          &inv, &err),
                     0);
    assert_non_null(strstr(inv->hooks[0].path, "{{version}}"));
    inventory_free(inv);
    /* an unknown placeholder in a file name: refused at load, not at rotation time */
    expect_err(HDR "hooks:\n  f: {type: file, path: \"/x/{{nope}}\", template: a}\n", "3:25",
               "hooks.f.path", "unknown placeholder '{{nope}}'");
}

/* The keys of a kind come from its settings table: unknown keys name the kind's keys, types
 * are checked, defaults filled, and planned kinds load as before. */
static void
test_kind_settings(void **state)
{
    struct inventory *inv = NULL;
    struct rk_error err;
    const struct inv_secret *s;

    (void)state;
    expect_err(HDR "secrets:\n" GEN("a/b") "    every: 1d\n    ttl: 1h\n", "7:5",
               "unknown key 'ttl' for kind generated", "format");
    expect_err(
        HDR "secrets:\n  - {path: a/b, kind: database, connection: host=x, every: 1d, field: u}\n",
        "3:64", "unknown key 'field' for kind database", "connection", "max_ttl");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: provider-key, provider: xai, every: 1d, "
                   "base_url: \"ftp://x\"}\n",
               "3:73", "secrets[0].base_url", "http://");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: provider-key, provider: xai, every: 1d, "
                   "admin_key_path: /bad}\n",
               "3:79", "secrets[0].admin_key_path");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: transit, key_type: ed25519, every: 1d, "
                   "exportable: maybe}\n",
               "3:74", "secrets[0].exportable", "true or false");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: certificate, common_name: c, every: 1d, "
                   "alt_names: [a, \"\"]}\n",
               "3:78", "secrets[0].alt_names", "non-empty");
    expect_err(HDR "secrets:\n  - {path: a/b, kind: manual, every: 1d, console: \"x\"}\n", "3:51",
               "secrets[0].console", "http://");
    assert_int_equal(load(HDR "secrets:\n"
                              "  - {path: m/a, kind: manual, every: 1d, console: "
                              "\"https://console.example/keys\"}\n"
                              "  - {path: r/a, kind: redis-password, address: \"h:6379\", "
                              "every: 1d}\n"
                              "  - {path: t/a, kind: transit, key_type: ed25519, every: 7d}\n",
                          &inv, &err),
                     0);
    s = inventory_find(inv, "m/a");
    assert_string_equal(inv_param(s, "console"), "https://console.example/keys");
    assert_string_equal(s->field, "value");
    s = inventory_find(inv, "r/a");
    assert_string_equal(inv_param(s, "username"), "default");
    assert_string_equal(s->field, "password");
    s = inventory_find(inv, "t/a");
    assert_string_equal(inv_param(s, "exportable"), "false");
    assert_string_equal(s->field, "key");
    inventory_free(inv);
}

/* lint runs each kind's check and lint op for every entry, and each hook kind's lint. */
static void
test_lint_kind_rules(void **state)
{
    struct findings f;
    struct inventory *inv = NULL;
    struct rk_error err;

    (void)state;
    /* a check failure in an inventory built by hand (the loader would have refused it) */
    assert_int_equal(load(HDR "secrets:\n" GEN("a/b") "    every: 1d\n", &inv, &err), 0);
    free(inv->secrets[0].format);
    inv->secrets[0].format = strdup("constant");
    memset(&f, 0, sizeof(f));
    assert_int_equal(inventory_lint(inv, collect, &f), 1);
    assert_true(has_finding(&f, "error", "a/b: format"));
    assert_true(has_finding(&f, "t.yaml:3:5", "random bits"));
    inventory_free(inv);
    /* a secret over plain http to a host that only starts like localhost */
    assert_int_equal(
        lint_of(HDR
                "hooks:\n  w: {type: http, url: \"http://localhost.example.com/\", headers: "
                "{X-Key: \"{{ new }}\"}}\nsecrets:\n" GEN("a/b") "    every: 1d\n    test: [w]\n",
                &f),
        1);
    assert_true(has_finding(&f, "error", "hook 'w' sends a secret over plain http"));
    assert_int_equal(
        lint_of(HDR "hooks:\n  w: {type: http, url: \"http://127.0.0.1:9/\", headers: "
                    "{X-Key: \"{{new}}\"}}\nsecrets:\n" GEN("a/b") "    every: 1d\n    test: [w]\n",
                &f),
        0);
    /* {{ new }} with spaces in a loose file counts as a secret too */
    assert_int_equal(
        lint_of(HDR "hooks:\n  f: {type: file, path: /x, template: \"{{ new }}\", "
                    "mode: \"0640\"}\nsecrets:\n" GEN("a/b") "    every: 1d\n    reload: [f]\n",
                &f),
        1);
    assert_true(has_finding(&f, "error", "hook 'f' writes a secret to /x with mode 0640"));
}

/* ---- scale ---- */

/* This thread's CPU time: unlike the clock on the wall, it does not grow while other processes
 * have the CPU (the suite runs tests side by side). */
static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* What it costs libfyaml alone to parse buf into events: the yardstick. */
static double
parse_baseline_ms(const char *buf, size_t len)
{
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET};
    struct fy_parser *p = fy_parser_create(&cfg);
    struct fy_event *ev;
    double t0 = now_ms();

    assert_non_null(p);
    assert_int_equal(fy_parser_set_string(p, buf, len), 0);
    while ((ev = fy_parser_parse(p)) != NULL)
        fy_parser_event_free(p, ev);
    fy_parser_destroy(p);
    return now_ms() - t0;
}

static void
test_load_10k(void **state)
{
    const size_t n = 10000;
    size_t cap = n * 200 + 1024, off = 0;
    char *y = malloc(cap);
    struct inventory *inv = NULL;
    struct rk_error err;
    double best = 1e9, base = 1e9, limit = 100.0, ratio;
    char path[64];

    (void)state;
    assert_non_null(y);
    off += (size_t)snprintf(y + off, cap - off,
                            "version: 1\nhooks:\n  h1: {type: exec, command: [/bin/true]}\n"
                            "secrets:\n");
    for (size_t i = 0; i < n; i++) {
        switch (i % 4) {
        case 0:
            off += (size_t)snprintf(y + off, cap - off,
                                    "  - path: secret/app%zu/token\n    kind: generated\n"
                                    "    format: \"tok-{hex:32}\"\n    every: 30d\n"
                                    "    auto: true\n    reload: [h1]\n",
                                    i);
            break;
        case 1:
            off += (size_t)snprintf(y + off, cap - off,
                                    "  - path: database/creds/role%zu\n    kind: database\n"
                                    "    connection: \"host=db\"\n    ttl: 24h\n"
                                    "    max_ttl: 48h\n    every: 12h\n",
                                    i);
            break;
        case 2:
            off += (size_t)snprintf(y + off, cap - off,
                                    "  - {path: secret/redis%zu/auth, kind: redis-password, "
                                    "address: \"127.0.0.1:6379\", every: 30d}\n",
                                    i);
            break;
        default:
            off += (size_t)snprintf(y + off, cap - off,
                                    "  - path: secret/prov%zu/key\n    kind: provider-key\n"
                                    "    provider: openai\n    every: 90d\n",
                                    i);
        }
        assert_true(off < cap);
    }
#if defined(__SANITIZE_ADDRESS__)
    limit *= 10; /* sanitizers slow everything several times over */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    limit *= 10;
#endif
#endif
    if (getenv("LD_PRELOAD") != NULL && strstr(getenv("LD_PRELOAD"), "vgpreload") != NULL)
        limit *= 50;
    for (int round = 0; round < 7; round++) {
        double t0, dt, b = parse_baseline_ms(y, off);
        t0 = now_ms();
        assert_int_equal(inventory_load_string("big.yaml", y, off, &inv, &err), 0);
        dt = now_ms() - t0;
        if (dt < best)
            best = dt;
        if (b < base)
            base = b;
        assert_int_equal(inv->nsecrets, n);
        if (round < 6)
            inventory_free(inv);
    }
    ratio = best / base;
    print_message("    loading %zu entries (%zu bytes): best of 7 = %.1f ms (limit %.0f ms); "
                  "%.2f times libfyaml's parse alone (best of 7: %.1f ms)\n",
                  n, off, best, limit, ratio, base);
    /* CPU time still grows when another process thrashes the caches: over the limit, the load
     * must cost no more than a small multiple of libfyaml's parse of the same text, each the
     * best of 7 runs taken in turn (about 4 here). */
    assert_true(best < limit || ratio < 8.0);
    for (size_t i = 0; i < n; i += 4) {
        snprintf(path, sizeof(path), "secret/app%zu/token", i);
        const struct inv_secret *s = inventory_find(inv, path);
        assert_non_null(s);
        assert_string_equal(s->path, path);
    }
    assert_null(inventory_find(inv, "secret/app1/token"));
    assert_int_equal(inventory_lint(inv, NULL, NULL), 0);
    inventory_free(inv);
    free(y);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_ai_gateway),
        cmocka_unit_test(test_example_minimal),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_default_path),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_err_unknown_keys),
        cmocka_unit_test(test_err_durations),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_api_addr),
        cmocka_unit_test(test_wait_timeout_bounded),
        cmocka_unit_test(test_err_paths),
        cmocka_unit_test(test_err_required_and_kinds),
        cmocka_unit_test(test_err_hooks),
        cmocka_unit_test(test_err_yaml_and_types),
        cmocka_unit_test(test_err_duplicates),
        cmocka_unit_test(test_lint_certificate),
        cmocka_unit_test(test_lint_database),
        cmocka_unit_test(test_lint_schedules),
        cmocka_unit_test(test_lint_hooks_and_duplicates),
        cmocka_unit_test(test_template_grammar_at_load),
        cmocka_unit_test(test_kind_settings),
        cmocka_unit_test(test_lint_kind_rules),
        cmocka_unit_test(test_load_10k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
