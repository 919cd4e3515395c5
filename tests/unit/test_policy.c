/* Unit tests for src/api/policy: parsing, error positions, Vault's priority rules, the merge of
 * several policies, the built-in policies and the cost of a check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/policy.h"
#include "util/err.h"

static struct policy *
must_parse(const char *name, const char *text)
{
    struct policy *p = NULL;
    struct rk_error err = {0};
    int r = policy_parse(name, text, strlen(text), &p, &err);

    if (r != 0)
        fail_msg("policy_parse(%s) failed: %s", name, err.msg);
    assert_non_null(p);
    return p;
}

/* One policy, one check. */
static int
allowed1(struct policy *p, const char *path, unsigned cap)
{
    return policy_check(&p, 1, path, cap);
}

static void
test_parse_basic(void **state)
{
    static const char text[] =
        "# a hash comment\n"
        "// a slash comment\n"
        "/* a block\n   comment */\n"
        "path \"secret/data/foo/*\" {\n"
        "  capabilities = [\"read\", \"list\",] # trailing comma\n"
        "}\n"
        "path \"/secret/data/bar\" { capabilities = [\"create\", \"update\"] }\n"
        "path \"secret/+/teamb/*\" {\n"
        "  capabilities = [\"read\"]\n"
        "}\n"
        "name = \"ignored\"\n";
    struct policy *p = must_parse("Team-A", text);
    size_t len = 0;
    (void)state;

    assert_string_equal(policy_name(p), "team-a");
    assert_string_equal(policy_text(p, &len), text);
    assert_int_equal(len, strlen(text));
    assert_int_equal(policy_rule_count(p), 3);
    assert_false(policy_is_root(p));

    assert_true(allowed1(p, "secret/data/foo/x", CAP_READ));
    assert_true(allowed1(p, "secret/data/foo/x/y", CAP_READ | CAP_LIST));
    assert_false(allowed1(p, "secret/data/foo/x", CAP_UPDATE));
    assert_false(allowed1(p, "secret/data/foo", CAP_READ)); /* the prefix is "foo/" */
    /* a leading '/' in the pattern and in the path is ignored */
    assert_true(allowed1(p, "secret/data/bar", CAP_CREATE | CAP_UPDATE));
    assert_true(allowed1(p, "/secret/data/bar", CAP_UPDATE));
    assert_false(allowed1(p, "secret/data/bar", CAP_READ));
    assert_false(allowed1(p, "secret/data/barn", CAP_UPDATE));
    assert_true(allowed1(p, "secret/anything/teamb/k", CAP_READ));
    assert_false(allowed1(p, "secret/a/b/teamb/k", CAP_READ));
    assert_false(allowed1(p, "other/path", CAP_READ));
    policy_free(p);
}

static void
test_parse_shorthand(void **state)
{
    struct policy *p =
        must_parse("old", "path \"w/*\" { policy = \"write\" }\n"
                          "path \"r/*\" { policy = \"read\" }\n"
                          "path \"l/*\" { policy = \"list\" }\n"
                          "path \"s/*\" { policy = \"sudo\" }\n"
                          "path \"d/*\" { policy = \"deny\" capabilities = [\"read\"] }\n"
                          "path \"m/*\" { policy = \"read\", capabilities = [\"update\"] }\n");
    (void)state;

    assert_int_equal(policy_capabilities(&p, 1, "w/x"),
                     CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_PATCH | CAP_DELETE | CAP_LIST);
    assert_int_equal(policy_capabilities(&p, 1, "r/x"), CAP_READ | CAP_LIST);
    assert_int_equal(policy_capabilities(&p, 1, "l/x"), CAP_LIST);
    assert_int_equal(policy_capabilities(&p, 1, "s/x"), CAP_CREATE | CAP_READ | CAP_UPDATE |
                                                            CAP_PATCH | CAP_DELETE | CAP_LIST |
                                                            CAP_SUDO);
    assert_int_equal(policy_capabilities(&p, 1, "d/x"), CAP_DENY);
    assert_false(allowed1(p, "d/x", CAP_READ));
    assert_int_equal(policy_capabilities(&p, 1, "m/x"), CAP_READ | CAP_LIST | CAP_UPDATE);
    policy_free(p);
}

static void
test_parse_forms(void **state)
{
    /* HCL object form, JSON, block form of allowed_parameters, every ignored attribute. */
    static const char *texts[] = {
        "path = { \"a/*\" = { capabilities = [\"read\"] } }",
        "path { \"a/*\" { capabilities = [\"read\"] } }",
        "{\"path\": {\"a/*\": {\"capabilities\": [\"read\"]}}}",
        "{\n  \"path\": {\n    \"a/*\": {\n      \"capabilities\": [\"read\"],\n"
        "      \"allowed_parameters\": {\"x\": [], \"*\": [\"v\", 1, true]},\n"
        "      \"min_wrapping_ttl\": \"1s\", \"max_wrapping_ttl\": 3600\n    }\n  }\n}\n",
        "path \"a/*\" {\n"
        "  capabilities = [\"read\", \"subscribe\", \"recover\"]\n"
        "  allowed_parameters = { \"name\" = [\"x*\"] \"ttl\" = [] }\n"
        "  denied_parameters { \"key\" = [] }\n"
        "  required_parameters = [\"name\"]\n"
        "  min_wrapping_ttl = \"1m\"\n"
        "  max_wrapping_ttl = \"1h\"\n"
        "}\n",
        "path \"a/\\u002a\" { capabilities = [\"re\\u0061d\"] }", /* escapes: "a/" + star, "read" */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct policy *p = must_parse("f", texts[i]);
        assert_int_equal(policy_rule_count(p), 1);
        assert_true(allowed1(p, "a/b", CAP_READ));
        assert_false(allowed1(p, "a/b", CAP_UPDATE));
        assert_false(allowed1(p, "b/a", CAP_READ));
        policy_free(p);
    }
    {
        struct policy *p = must_parse("f", texts[4]);
        assert_int_equal(policy_capabilities(&p, 1, "a/b"), CAP_READ | CAP_SUBSCRIBE | CAP_RECOVER);
        policy_free(p);
    }
    /* empty policies parse (no rules: denies everything) */
    {
        struct policy *p = must_parse("empty", "  # nothing\n");
        assert_int_equal(policy_rule_count(p), 0);
        assert_false(allowed1(p, "a", CAP_READ));
        policy_free(p);
    }
}

static void
test_parse_errors(void **state)
{
    static const struct {
        const char *text;
        int code;
        const char *pos; /* "LINE:COL:" */
        const char *needle;
    } cases[] = {
        {"path \"a\" {\n  capabilities = [\"reed\"]\n}", RK_EINVAL, "2:19:", "unknown capability"},
        {"path \"a\" {\n  capabilities = [\"read\" \"list\"]\n}", RK_EINVAL,
         "2:26:", "expected ',' or ']'"},
        {"path \"a\" capabilities", RK_EINVAL, "1:10:", "expected '{'"},
        {"path \"a\" {", RK_EINVAL, "1:11:", "close the block opened at 1:10"},
        {"\n  /* unterminated", RK_EINVAL, "2:3:", "unterminated comment"},
        {"path \"a\" { foo = 1 }", RK_EINVAL, "1:12:", "unknown attribute 'foo'"},
        {"path \"a\" { mfa_methods = [] }", RK_EINVAL, "1:12:", "not supported"},
        {"path \"a/*/b\" {}", RK_EINVAL, "1:6:", "'*' is only allowed as the last"},
        {"bogus \"x\" {}", RK_EINVAL, "1:1:", "unknown top-level key 'bogus'"},
        {"path \"a\" { capabilities = \"read\" }", RK_EINVAL, "1:27:", "must be a list"},
        {"path \"a\" { capabilities = [\"read\"], capabilities = [\"list\"] }", RK_EINVAL,
         "1:37:", "duplicate attribute 'capabilities' (first set at 1:12)"},
        {"path \"a\" {\n\tpolicy = \"writ\"\n}", RK_EINVAL, "2:11:", "unknown policy"},
        {"path \"a\" { capabilities = [read] }", RK_EINVAL, "1:28:", "strings need double quotes"},
        {"path \"a\" { capabilities = [\"read\"] } }", RK_EINVAL, "1:38:", "expected a key"},
        {"path \"a\" { min_wrapping_ttl = \"1x\" }", RK_EINVAL, "1:31:", "unknown unit"},
        {"path \"a\" { min_wrapping_ttl = \"1h\"\n max_wrapping_ttl = \"1m\" }", RK_EINVAL,
         "2:2:", "less than"},
        {"{\"path\": {\"a\": {\"capabilities\": [\"read\"]}}", RK_EINVAL,
         "1:43:", "close the block opened at 1:1"},
        {"{\"path\": {}} x", RK_EINVAL, "1:14:", "expected end of input"},
        {"path \"a\" { capabilities = <<EOF\n", RK_EINVAL, "1:27:", "heredoc"},
        {"path \"\" {}", RK_EINVAL, "1:6:", "empty path pattern"},
        {"path \"{{identity.entity.id}}/*\" {}", RK_EINVAL, "1:6:", "templated"},
        {"path \"a\\q\" {}", RK_EINVAL, "1:8:", "unknown escape"},
        {"path \"a\n\" {}", RK_EINVAL, "1:6:", "unterminated string"},
        {"path \"a\" = \"b\"", RK_EINVAL, "1:12:", "expected '{'"},
        {"path = [\"a\"]", RK_EINVAL, "1:8:", "expected path"},
        {"path \"a\" { capabilities = [\"read\", [\"x\"]] }", RK_EINVAL,
         "1:36:", "expected a string in the list"},
        {"path \"a\" { allowed_parameters = { \"x\" = \"y\" } }", RK_EINVAL,
         "1:41:", "must be a list of values"},
        {"path \"a\" { capabilities = [\"root\"] }", RK_EINVAL, "1:28:", "unknown capability"},
        {"path \"a\" ; {}", RK_EINVAL, "1:10:", "unexpected character ';'"},
        {"path \"a\" { capabilities = [\"\\ud800\"] }", RK_EINVAL, "1:29:", "surrogate"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct policy *p = NULL;
        struct rk_error err = {0};
        int r = policy_parse("e", cases[i].text, strlen(cases[i].text), &p, &err);
        if (r != -cases[i].code || p != NULL ||
            strncmp(err.msg, cases[i].pos, strlen(cases[i].pos)) != 0 ||
            strstr(err.msg, cases[i].needle) == NULL)
            fail_msg("case %zu: got %d \"%s\"; want %s ... %s", i, r, err.msg, cases[i].pos,
                     cases[i].needle);
    }
}

static void
test_parse_limits(void **state)
{
    struct policy *p = NULL;
    struct rk_error err = {0};
    size_t cap = POLICY_TEXT_MAX + 64, n = 0;
    char *buf = malloc(cap);
    (void)state;

    assert_non_null(buf);
    /* too large */
    memset(buf, ' ', POLICY_TEXT_MAX + 1);
    assert_int_equal(policy_parse("l", buf, POLICY_TEXT_MAX + 1, &p, &err), -RK_ELIMIT);
    assert_null(p);

    /* too deep */
    n = (size_t)snprintf(buf, cap, "path \"a\" { allowed_parameters = { \"x\" = ");
    for (int i = 0; i < POLICY_DEPTH_MAX + 2; i++)
        buf[n++] = '[';
    for (int i = 0; i < POLICY_DEPTH_MAX + 2; i++)
        buf[n++] = ']';
    n += (size_t)snprintf(buf + n, cap - n, " } }");
    assert_int_equal(policy_parse("l", buf, n, &p, &err), -RK_ELIMIT);
    assert_non_null(strstr(err.msg, "nesting"));

    /* too many rules; one more than the limit */
    n = 0;
    for (int i = 0; i <= POLICY_RULES_MAX; i++)
        n += (size_t)snprintf(buf + n, cap - n, "path \"p/%d\" {}\n", i);
    assert_true(n < POLICY_TEXT_MAX);
    assert_int_equal(policy_parse("l", buf, n, &p, &err), -RK_ELIMIT);
    assert_non_null(strstr(err.msg, "path rules"));
    /* exactly the limit, with a duplicate (merged, so not counted twice) */
    n = 0;
    for (int i = 0; i < POLICY_RULES_MAX; i++)
        n += (size_t)snprintf(buf + n, cap - n, "path \"p/%d\" {}\n", i);
    n += (size_t)snprintf(buf + n, cap - n, "path \"p/0\" { capabilities = [\"read\"] }\n");
    assert_int_equal(policy_parse("l", buf, n, &p, &err), 0);
    assert_int_equal(policy_rule_count(p), POLICY_RULES_MAX);
    assert_true(allowed1(p, "p/0", CAP_READ));
    policy_free(p);
    p = NULL;

    /* NUL byte, bad names, root */
    assert_int_equal(policy_parse("l", "path \"a\" {}\n\0", 13, &p, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "2:1:"));
    assert_int_equal(policy_parse("a/b", "", 0, &p, &err), -RK_EINVAL);
    assert_int_equal(policy_parse("", "", 0, &p, &err), -RK_EINVAL);
    assert_int_equal(policy_parse("ROOT", "", 0, &p, &err), -RK_EINVAL);
    assert_null(p);
    free(buf);
}

/* Which of several single-capability rules wins: each pattern i grants bit 1 << i (as one of
 * create..list), so the granted mask names the winner. */
static unsigned
winner(const char *const *patterns, size_t n, const char *path)
{
    static const char *const capn[] = {"create", "read", "update", "patch", "delete", "list"};
    char text[2048];
    size_t o = 0;
    struct policy *p;
    unsigned caps;

    assert_true(n <= 6);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o,
                              "path \"%s\" { capabilities = [\"%s\"] }\n", patterns[i], capn[i]);
    p = must_parse("prio", text);
    caps = policy_capabilities(&p, 1, path);
    policy_free(p);
    return caps;
}

static void
test_priority(void **state)
{
    static const char *const docs[] = {"secret/*", "secret/foo/*", "secret/foo"};
    (void)state;

    /* The docs' example: exact over glob, longer glob over shorter. */
    assert_int_equal(winner(docs, 3, "secret/foo"), CAP_UPDATE);
    assert_int_equal(winner(docs, 3, "secret/foo/bar"), CAP_READ);
    assert_int_equal(winner(docs, 3, "secret/bar"), CAP_CREATE);
    assert_int_equal(winner(docs, 3, "secret/foobar"), CAP_CREATE);
    assert_int_equal(winner(docs, 3, "other"), 0);

    /* "secret/" + star vs "secret/+/" + star: same first wildcard, both globs, fewer '+'
     * wins. */
    {
        static const char *const p[] = {"secret/+/*", "secret/*"};
        assert_int_equal(winner(p, 2, "secret/a/b"), CAP_READ);
    }
    /* The orders quoted in Vault's acl.go, in both declaration orders. */
    {
        static const struct {
            const char *hi, *lo, *path;
        } c[] = {
            {"foo/a*", "foo/+", "foo/ab"}, /* first wildcard later */
            {"foo/bar/+/baz", "foo/+/bar/baz", "foo/bar/bar/baz"},
            {"foo/+/bar", "foo/+/ba*", "foo/x/bar"}, /* not a glob wins */
            {"foo/+", "foo/*", "foo/x"},
            {"foo/bar/+/baz", "foo/bar/+/+", "foo/bar/x/baz"},  /* fewer '+' wins */
            {"foo/+/bar/ba*", "foo/+/bar/b*", "foo/x/bar/baz"}, /* longer wins */
            {"foo/+/b*", "foo/+/a*", NULL},                     /* tie-break: greater */
            /* same first-wildcard offset, both globs: fewer '+' wins, surprising but Vault's */
            {"secret/*", "secret/+/teamb/*", "secret/x/teamb/k"},
            {"secret/x/*", "secret/+/teamb/*", "secret/x/teamb/k"},
            {"secret/data/*", "secret/+/teamb/*", "secret/data/teamb/k"},
            {"a/b", "a/*", "a/b"}, /* exact over everything */
            {"a/b", "+/b", "a/b"},
        };
        for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
            const char *fw[2] = {c[i].hi, c[i].lo}, *bw[2] = {c[i].lo, c[i].hi};
            if (c[i].path == NULL)
                continue;
            if (winner(fw, 2, c[i].path) != CAP_CREATE || winner(bw, 2, c[i].path) != CAP_READ)
                fail_msg("case %zu: %s should beat %s on %s (got %u / %u)", i, c[i].hi, c[i].lo,
                         c[i].path, winner(fw, 2, c[i].path), winner(bw, 2, c[i].path));
        }
    }
    /* Lexicographic tie-break on two globs of the same shape matching the same path. */
    {
        static const char *const p[] = {"foo/+/a*", "foo/+/*"};
        assert_int_equal(winner(p, 2, "foo/x/ab"), CAP_CREATE); /* longer */
    }
}

static void
test_segments(void **state)
{
    struct policy *p = must_parse("seg", "path \"kv/+/config\" { capabilities = [\"read\"] }\n"
                                         "path \"kv/+/+/x*\" { capabilities = [\"list\"] }\n"
                                         "path \"a+b/c\" { capabilities = [\"update\"] }\n"
                                         "path \"*\" { capabilities = [\"patch\"] }\n");
    (void)state;

    assert_int_equal(policy_capabilities(&p, 1, "kv/app/config"), CAP_READ);
    assert_int_equal(policy_capabilities(&p, 1, "kv//config"), CAP_READ); /* empty segment */
    assert_int_equal(policy_capabilities(&p, 1, "kv/app/config/more"), CAP_PATCH);
    assert_int_equal(policy_capabilities(&p, 1, "kv/app"), CAP_PATCH);
    assert_int_equal(policy_capabilities(&p, 1, "kv/a/b/xyz"), CAP_LIST);
    assert_int_equal(policy_capabilities(&p, 1, "kv/a/b/x/deeper/still"), CAP_LIST);
    assert_int_equal(policy_capabilities(&p, 1, "kv/a/b/y"), CAP_PATCH);
    assert_int_equal(policy_capabilities(&p, 1, "kv/a/b"), CAP_PATCH);
    /* '+' inside a segment is a literal */
    assert_int_equal(policy_capabilities(&p, 1, "a+b/c"), CAP_UPDATE);
    assert_int_equal(policy_capabilities(&p, 1, "axb/c"), CAP_PATCH);
    assert_int_equal(policy_capabilities(&p, 1, ""), CAP_PATCH);
    policy_free(p);
}

static void
test_list_trailing_slash(void **state)
{
    struct policy *p =
        must_parse("l", "path \"secret/metadata/app\" { capabilities = [\"list\"] }\n"
                        "path \"secret/metadata/app/\" { capabilities = [\"read\"] }\n"
                        "path \"kv/metadata/x\" { capabilities = [\"list\"] }\n");
    (void)state;

    /* Exact on the full path first, then (list only) without the trailing '/'. */
    assert_false(allowed1(p, "secret/metadata/app/", CAP_LIST));
    assert_true(allowed1(p, "secret/metadata/app/", CAP_READ));
    assert_true(allowed1(p, "kv/metadata/x/", CAP_LIST));
    assert_false(allowed1(p, "kv/metadata/x//", CAP_LIST));
    assert_int_equal(policy_capabilities(&p, 1, "kv/metadata/x/"), CAP_LIST);
    policy_free(p);
}

static void
test_multiple_policies(void **state)
{
    struct policy *a = must_parse("a", "path \"secret/app/*\" { capabilities = [\"read\"] }\n"
                                       "path \"secret/shared\" { capabilities = [\"read\"] }\n"
                                       "path \"secret/db/*\" { capabilities = [\"read\"] }\n");
    struct policy *b = must_parse("b", "path \"secret/app/*\" { capabilities = [\"update\"] }\n"
                                       "path \"secret/shared\" { capabilities = [\"deny\"] }\n"
                                       "path \"secret/db/root\" { capabilities = [\"list\"] }\n");
    struct policy *pols[2] = {a, b};
    struct policy_set set = {pols, 2};
    (void)state;

    /* the same pattern in two policies: union */
    assert_true(policy_check(pols, 2, "secret/app/x", CAP_READ | CAP_UPDATE));
    assert_true(policy_allowed(&set, "secret/app/x", CAP_READ | CAP_UPDATE));
    assert_false(policy_check(pols, 1, "secret/app/x", CAP_UPDATE));
    assert_int_equal(policy_capabilities(pols, 2, "secret/app/x"), CAP_READ | CAP_UPDATE);
    /* the same pattern with deny in one: denied, whatever the order */
    assert_false(policy_check(pols, 2, "secret/shared", CAP_READ));
    pols[0] = b;
    pols[1] = a;
    assert_false(policy_check(pols, 2, "secret/shared", CAP_READ));
    assert_int_equal(policy_capabilities(pols, 2, "secret/shared"), CAP_DENY);
    /* Vault: a more specific pattern in another policy wins outright; the less specific one
     * adds nothing (secret/db/root is list-only even though a grants read on all of
     * secret/db/). */
    assert_false(policy_check(pols, 2, "secret/db/root", CAP_READ));
    assert_true(policy_check(pols, 2, "secret/db/root", CAP_LIST));
    assert_true(policy_check(pols, 2, "secret/db/other", CAP_READ));
    /* nothing matched */
    assert_false(policy_check(pols, 2, "secret/none", CAP_READ));
    assert_int_equal(policy_capabilities(pols, 2, "secret/none"), 0);
    /* degenerate requests */
    assert_false(policy_check(pols, 0, "secret/app/x", CAP_READ));
    assert_false(policy_check(pols, 2, "secret/app/x", 0));
    assert_false(policy_check(pols, 2, "secret/app/x", CAP_DENY));
    assert_false(policy_check(pols, 2, NULL, CAP_READ));
    assert_false(policy_allowed(NULL, "secret/app/x", CAP_READ));

    /* deny inside one policy beats the union when the pattern repeats there */
    {
        struct policy *c = must_parse("c", "path \"x/*\" { capabilities = [\"read\"] }\n"
                                           "path \"x/*\" { capabilities = [\"deny\"] }\n"
                                           "path \"y\" { capabilities = [\"read\", \"deny\"] }\n");
        assert_int_equal(policy_rule_count(c), 2);
        assert_int_equal(policy_capabilities(&c, 1, "x/1"), CAP_DENY);
        assert_int_equal(policy_capabilities(&c, 1, "y"), CAP_DENY);
        policy_free(c);
    }
    policy_free(a);
    policy_free(b);
}

static void
test_builtins(void **state)
{
    struct policy *root = NULL, *def = NULL, *x = NULL;
    struct rk_error err = {0};
    struct policy *pols[2];
    (void)state;

    assert_int_equal(policy_builtin("root", &root, &err), 0);
    assert_int_equal(policy_builtin("default", &def, &err), 0);
    assert_int_equal(policy_builtin("admin", &x, &err), -RK_ENOTFOUND);
    assert_null(x);
    assert_true(policy_is_root(root));
    assert_string_equal(policy_name(root), "root");
    assert_string_equal(policy_text(root, NULL), "");
    assert_string_equal(policy_name(def), "default");
    assert_string_equal(policy_text(def, NULL), policy_default_text());

    assert_true(allowed1(root, "sys/seal", CAP_UPDATE | CAP_SUDO));
    assert_true(allowed1(root, "anything/at/all", CAP_CREATE | CAP_DELETE));
    assert_int_equal(policy_capabilities(&root, 1, "x"), CAP_ROOT | CAP_ALL);

    assert_true(allowed1(def, "auth/token/lookup-self", CAP_READ));
    assert_true(allowed1(def, "auth/token/renew-self", CAP_UPDATE));
    assert_true(allowed1(def, "auth/token/revoke-self", CAP_UPDATE));
    assert_true(allowed1(def, "sys/capabilities-self", CAP_UPDATE));
    assert_false(allowed1(def, "auth/token/create", CAP_UPDATE));
    assert_false(allowed1(def, "secret/data/x", CAP_READ));
    assert_false(allowed1(def, "sys/policy/default", CAP_UPDATE));

    /* root among others still allows everything, even over a deny */
    pols[0] = must_parse("d", "path \"*\" { capabilities = [\"deny\"] }");
    pols[1] = root;
    assert_true(policy_check(pols, 2, "x", CAP_READ));
    policy_free(pols[0]);

    /* references */
    assert_ptr_equal(policy_ref(def), def);
    policy_free(def);
    assert_true(allowed1(def, "auth/token/lookup-self", CAP_READ)); /* still alive */
    assert_null(policy_ref(NULL));
    policy_free(NULL);
    policy_free(def);
    policy_free(root);
}

static void
test_cap_names(void **state)
{
    (void)state;
    for (unsigned bit = 1; bit <= CAP_ROOT; bit <<= 1) {
        const char *n = cap_name(bit);
        assert_non_null(n);
        if (bit == CAP_ROOT)
            assert_int_equal(cap_from_name(n, strlen(n)), 0);
        else
            assert_int_equal(cap_from_name(n, strlen(n)), bit);
    }
    assert_null(cap_name(0));
    assert_null(cap_name(CAP_READ | CAP_LIST));
    assert_null(cap_name(CAP_ROOT << 1));
    assert_int_equal(cap_from_name("READ", 4), 0);
    assert_int_equal(cap_from_name("rea", 3), 0);
}

/* ~20 policies x ~50 rules: a check must stay far below a microsecond per rule. */
static void
test_speed(void **state)
{
    enum { NPOL = 20, NRULE = 50, NCHECK = 20000 };
    struct policy *pols[NPOL];
    static char text[NRULE * 96];
    static const char *const paths[] = {"secret/data/team7/app/config", "secret/metadata/team3/",
                                        "transit/encrypt/jwt-signing",  "database/creds/ro",
                                        "sys/capabilities-self",        "nothing/matches/here"};
    struct timespec t0, t1;
    volatile int sink = 0;
    double ns;
    (void)state;

    for (int i = 0; i < NPOL; i++) {
        size_t o = 0;
        for (int j = 0; j < NRULE; j++) {
            if (j % 3 == 0)
                o += (size_t)snprintf(text + o, sizeof(text) - o,
                                      "path \"secret/data/team%d/app%d/*\" { capabilities = "
                                      "[\"read\"] }\n",
                                      i, j);
            else if (j % 3 == 1)
                o += (size_t)snprintf(text + o, sizeof(text) - o,
                                      "path \"secret/+/team%d/x%d\" { capabilities = "
                                      "[\"list\"] }\n",
                                      i, j);
            else
                o += (size_t)snprintf(text + o, sizeof(text) - o,
                                      "path \"transit/keys/k%d-%d\" { capabilities = "
                                      "[\"update\"] }\n",
                                      i, j);
        }
        pols[i] = must_parse("p", text);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < NCHECK; k++)
        sink += policy_check(pols, NPOL, paths[k % 6], CAP_READ);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / NCHECK;
    print_message("policy_check: %.0f ns per check over %d rules (%.1f ns per rule)\n", ns,
                  NPOL * NRULE, ns / (NPOL * NRULE));
    /* generous bound so a loaded CI machine (or a sanitizer build) does not flake */
    assert_true(ns / (NPOL * NRULE) < 200.0);
    (void)sink;
    for (int i = 0; i < NPOL; i++)
        policy_free(pols[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),       cmocka_unit_test(test_parse_shorthand),
        cmocka_unit_test(test_parse_forms),       cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_limits),      cmocka_unit_test(test_priority),
        cmocka_unit_test(test_segments),          cmocka_unit_test(test_list_trailing_slash),
        cmocka_unit_test(test_multiple_policies), cmocka_unit_test(test_builtins),
        cmocka_unit_test(test_cap_names),         cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
