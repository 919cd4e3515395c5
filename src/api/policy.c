/* policy.c: Vault-compatible ACL policies (see policy.h for the accepted language and the
 * evaluation order).
 *
 * Parsing runs in two passes: the HCL1/JSON reader (api/hcl.c) builds a tree of nodes (objects,
 * lists, scalars, each with its line and column), then the tree is interpreted here as a policy,
 * so every error can point at the exact token. Checking walks the rules of all policies once, with
 * no allocation: a rule keeps its literal prefix (the bytes before the first wildcard) so most
 * non-matching rules are rejected by one memcmp. */
#include "api/policy.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"
#include "api/hcl.h"
#include "api/router.h"

_Static_assert(POLICY_NAME_MAX == ROUTER_NAME_MAX, "a policy name is a name in a path");

/* ---- the parsed form ---------------------------------------------------------------------- */

struct rule {
    const char *pat;    /* without the leading '/' and the trailing '*'; NUL-terminated */
    unsigned len;       /* strlen(pat) */
    unsigned caps;      /* CAP_* bits; CAP_DENY alone when denied */
    unsigned first_wc;  /* byte offset of the first '+' segment, else len (prefix) */
    unsigned nplus;     /* number of '+' segments */
    unsigned is_prefix; /* pattern ended in '*' */
};

struct policy {
    atomic_uint refs;
    int is_root;
    char name[POLICY_NAME_MAX + 1];
    char *text; /* verbatim copy, NUL-terminated */
    size_t text_len;
    struct rule *rules;
    size_t nrules;
    char *patterns; /* one block holding every rule's pat */
};

static const struct {
    const char *name;
    unsigned bit;
} cap_names[] = {
    {"create", CAP_CREATE},   {"read", CAP_READ},     {"update", CAP_UPDATE},
    {"patch", CAP_PATCH},     {"delete", CAP_DELETE}, {"list", CAP_LIST},
    {"sudo", CAP_SUDO},       {"deny", CAP_DENY},     {"subscribe", CAP_SUBSCRIBE},
    {"recover", CAP_RECOVER}, {"root", CAP_ROOT},
};

const char *
cap_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
        if (cap_names[i].bit == bit)
            return cap_names[i].name;
    return NULL;
}

unsigned
cap_from_name(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
        if (cap_names[i].bit != CAP_ROOT && strlen(cap_names[i].name) == len &&
            memcmp(cap_names[i].name, s, len) == 0)
            return cap_names[i].bit;
    return 0;
}

/* ---- interpretation ------------------------------------------------------------------------ */

struct builder {
    const struct hcl_doc *p;
    struct rule *rules; /* pat points into the lexer arena until policy_parse copies it */
    size_t nrules, rcap;
    struct rk_error *err;
};

static int
key_is(const struct hcl_node *n, const char *s)
{
    return n->klen == strlen(s) && memcmp(n->key, s, n->klen) == 0;
}

static const char *
type_desc(enum hcl_type t)
{
    switch (t) {
    case HCL_OBJ: return "a block";
    case HCL_LIST: return "a list";
    case HCL_STR: return "a string";
    case HCL_NUM: return "a number";
    case HCL_BOOL: return "a boolean";
    case HCL_NULL: return "null";
    }
    return "?";
}

static int
expect_type(struct builder *b, const struct hcl_node *n, enum hcl_type t, const char *what)
{
    char ex[128];

    if (n->type == t)
        return 0;
    return hcl_perr(b->err, RK_EINVAL, n->line, n->col, "'%s' must be %s, found %s",
                    hcl_excerpt(n->key, n->klen, ex, sizeof(ex)), what, type_desc(n->type));
}

/* Checks a pattern and fills the shape fields of r (pat/len point into the arena). */
static int
pattern_compile(struct builder *b, const struct hcl_node *n, struct rule *r)
{
    const char *s = n->key;
    size_t len = n->klen;
    char ex[128];

    if (len > 0 && s[0] == '/') {
        s++;
        len--;
    }
    memset(r, 0, sizeof(*r));
    if (len > 0 && s[len - 1] == '*') {
        r->is_prefix = 1;
        len--;
    }
    if (len > PATH_MAX_LEN)
        return hcl_perr(b->err, RK_EINVAL, n->kline, n->kcol, "path pattern longer than %d bytes",
                        PATH_MAX_LEN);
    if (len == 0 && !r->is_prefix)
        return hcl_perr(b->err, RK_EINVAL, n->kline, n->kcol,
                        "empty path pattern (use \"*\" to match every path)");
    r->first_wc = (unsigned)len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return hcl_perr(b->err, RK_EINVAL, n->kline, n->kcol,
                            "control character in path pattern \"%s\"",
                            hcl_excerpt(n->key, n->klen, ex, sizeof(ex)));
        if (c == '*')
            return hcl_perr(b->err, RK_EINVAL, n->kline, n->kcol,
                            "'*' is only allowed as the last character of a path pattern (\"%s\"); "
                            "use '+' to match one segment",
                            hcl_excerpt(n->key, n->klen, ex, sizeof(ex)));
        if (c == '{' && i + 1 < len && s[i + 1] == '{')
            return hcl_perr(b->err, RK_EINVAL, n->kline, n->kcol,
                            "templated policy paths (\"{{...}}\") are not supported");
        if (c == '+' && (i == 0 || s[i - 1] == '/') && (i + 1 == len || s[i + 1] == '/')) {
            if (r->nplus == 0)
                r->first_wc = (unsigned)i;
            r->nplus++;
        }
    }
    r->pat = s;
    r->len = (unsigned)len;
    return 0;
}

static int
list_of_strings(struct builder *b, const struct hcl_node *n)
{
    int r;

    if ((r = expect_type(b, n, HCL_LIST, "a list of strings")) != 0)
        return r;
    for (int c = n->first; c >= 0; c = b->p->nodes[c].next) {
        const struct hcl_node *e = &b->p->nodes[c];
        if (e->type != HCL_STR)
            return hcl_perr(b->err, RK_EINVAL, e->line, e->col,
                            "expected a string in the list, found %s", type_desc(e->type));
    }
    return 0;
}

/* allowed_parameters / denied_parameters: { "name" = [values...] }. Parsed, not enforced. */
static int
parameter_map(struct builder *b, const struct hcl_node *n)
{
    int r;

    if ((r = expect_type(b, n, HCL_OBJ, "a block of name = [values]")) != 0)
        return r;
    for (int c = n->first; c >= 0; c = b->p->nodes[c].next) {
        const struct hcl_node *e = &b->p->nodes[c];
        if ((r = expect_type(b, e, HCL_LIST, "a list of values")) != 0)
            return r;
        for (int v = e->first; v >= 0; v = b->p->nodes[v].next) {
            const struct hcl_node *x = &b->p->nodes[v];
            if (x->type == HCL_OBJ || x->type == HCL_LIST)
                return hcl_perr(b->err, RK_EINVAL, x->line, x->col,
                                "expected a string, number or boolean, found %s",
                                type_desc(x->type));
        }
    }
    return 0;
}

static int
wrapping_ttl(struct builder *b, const struct hcl_node *n, int64_t *secs)
{
    struct rk_error e2 = {0};

    if (n->type == HCL_STR || n->type == HCL_NUM) {
        if (duration_parse(n->str, n->slen, secs, &e2) == 0)
            return 0;
        return hcl_perr(b->err, RK_EINVAL, n->line, n->col, "%s", e2.msg);
    }
    return expect_type(b, n, HCL_STR, "a duration such as \"1h\"");
}

static int
old_policy(struct builder *b, const struct hcl_node *n, unsigned *caps)
{
    static const struct {
        const char *name;
        unsigned caps;
    } map[] = {
        {"deny", CAP_DENY},
        {"read", CAP_READ | CAP_LIST},
        {"list", CAP_LIST},
        {"write", CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_PATCH | CAP_DELETE | CAP_LIST},
        {"sudo", CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_PATCH | CAP_DELETE | CAP_LIST | CAP_SUDO},
    };
    char ex[128];
    int r;

    if ((r = expect_type(b, n, HCL_STR,
                         "one of \"deny\", \"read\", \"list\", \"write\", \"sudo\"")) != 0)
        return r;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strlen(map[i].name) == n->slen && memcmp(map[i].name, n->str, n->slen) == 0) {
            *caps |= map[i].caps;
            return 0;
        }
    }
    return hcl_perr(b->err, RK_EINVAL, n->line, n->col,
                    "unknown policy \"%s\"; expected deny, read, list, write or sudo",
                    hcl_excerpt(n->str, n->slen, ex, sizeof(ex)));
}

enum path_attr {
    A_CAPABILITIES,
    A_POLICY,
    A_ALLOWED_PARAMETERS,
    A_DENIED_PARAMETERS,
    A_REQUIRED_PARAMETERS,
    A_MIN_WRAPPING_TTL,
    A_MAX_WRAPPING_TTL,
};

static const char *const path_attrs[] = {
    [A_CAPABILITIES] = "capabilities",
    [A_POLICY] = "policy",
    [A_ALLOWED_PARAMETERS] = "allowed_parameters",
    [A_DENIED_PARAMETERS] = "denied_parameters",
    [A_REQUIRED_PARAMETERS] = "required_parameters",
    [A_MIN_WRAPPING_TTL] = "min_wrapping_ttl",
    [A_MAX_WRAPPING_TTL] = "max_wrapping_ttl",
};
#define NATTRS (sizeof(path_attrs) / sizeof(path_attrs[0]))

static int
add_rule(struct builder *b, const struct hcl_node *pn)
{
    const struct hcl_doc *p = b->p;
    const struct hcl_node *seen[NATTRS] = {0};
    struct rule nr;
    int64_t min_ttl = 0, max_ttl = 0;
    char ex[128], ex2[128];
    int r;

    if ((r = pattern_compile(b, pn, &nr)) != 0)
        return r;
    if (pn->type != HCL_OBJ)
        return hcl_perr(b->err, RK_EINVAL, pn->line, pn->col,
                        "expected '{' with the rules for path \"%s\", found %s",
                        hcl_excerpt(pn->key, pn->klen, ex, sizeof(ex)), type_desc(pn->type));
    for (int c = pn->first; c >= 0; c = p->nodes[c].next) {
        const struct hcl_node *a = &p->nodes[c];
        size_t k;
        for (k = 0; k < NATTRS; k++)
            if (key_is(a, path_attrs[k]))
                break;
        if (k == NATTRS) {
            if (key_is(a, "mfa_methods") || key_is(a, "control_group"))
                return hcl_perr(b->err, RK_EINVAL, a->kline, a->kcol,
                                "'%s' (Vault Enterprise) is not supported",
                                hcl_excerpt(a->key, a->klen, ex, sizeof(ex)));
            return hcl_perr(b->err, RK_EINVAL, a->kline, a->kcol,
                            "unknown attribute '%s' in path \"%s\"; expected capabilities, policy, "
                            "allowed_parameters, denied_parameters, required_parameters, "
                            "min_wrapping_ttl or max_wrapping_ttl",
                            hcl_excerpt(a->key, a->klen, ex, sizeof(ex)),
                            hcl_excerpt(pn->key, pn->klen, ex2, sizeof(ex2)));
        }
        if (seen[k] != NULL)
            return hcl_perr(b->err, RK_EINVAL, a->kline, a->kcol,
                            "duplicate attribute '%s' (first set at %u:%u)", path_attrs[k],
                            seen[k]->kline, seen[k]->kcol);
        seen[k] = a;
        switch (k) {
        case A_CAPABILITIES:
            if ((r = list_of_strings(b, a)) != 0)
                return r;
            for (int e = a->first; e >= 0; e = p->nodes[e].next) {
                const struct hcl_node *s = &p->nodes[e];
                unsigned bit = cap_from_name(s->str, s->slen);
                if (bit == 0)
                    return hcl_perr(
                        b->err, RK_EINVAL, s->line, s->col,
                        "unknown capability \"%s\"; expected create, read, update, patch, "
                        "delete, list, sudo, deny, subscribe or recover",
                        hcl_excerpt(s->str, s->slen, ex, sizeof(ex)));
                nr.caps |= bit;
            }
            break;
        case A_POLICY:
            if ((r = old_policy(b, a, &nr.caps)) != 0)
                return r;
            break;
        case A_ALLOWED_PARAMETERS:
        case A_DENIED_PARAMETERS:
            if ((r = parameter_map(b, a)) != 0)
                return r;
            break;
        case A_REQUIRED_PARAMETERS:
            if ((r = list_of_strings(b, a)) != 0)
                return r;
            break;
        case A_MIN_WRAPPING_TTL:
            if ((r = wrapping_ttl(b, a, &min_ttl)) != 0)
                return r;
            break;
        case A_MAX_WRAPPING_TTL:
            if ((r = wrapping_ttl(b, a, &max_ttl)) != 0)
                return r;
            break;
        default: break;
        }
    }
    if (min_ttl > 0 && max_ttl > 0 && max_ttl < min_ttl)
        return hcl_perr(b->err, RK_EINVAL, seen[A_MAX_WRAPPING_TTL]->kline,
                        seen[A_MAX_WRAPPING_TTL]->kcol,
                        "max_wrapping_ttl is less than min_wrapping_ttl");
    if (nr.caps & CAP_DENY)
        nr.caps = CAP_DENY;

    /* The same pattern twice merges, exactly as across policies: union, deny wins. */
    for (size_t i = 0; i < b->nrules; i++) {
        struct rule *o = &b->rules[i];
        if (o->is_prefix == nr.is_prefix && o->len == nr.len &&
            memcmp(o->pat, nr.pat, nr.len) == 0) {
            o->caps = ((o->caps | nr.caps) & CAP_DENY) ? CAP_DENY : (o->caps | nr.caps);
            return 0;
        }
    }
    if (b->nrules == POLICY_RULES_MAX)
        return hcl_perr(b->err, RK_ELIMIT, pn->kline, pn->kcol, "more than %d path rules",
                        POLICY_RULES_MAX);
    if (b->nrules == b->rcap) {
        size_t ncap = b->rcap ? b->rcap * 2 : 16;
        struct rule *nrs = realloc(b->rules, ncap * sizeof(*nrs));
        if (nrs == NULL)
            return rk_error_set(b->err, RK_ENOMEM, "out of memory parsing a policy");
        b->rules = nrs;
        b->rcap = ncap;
    }
    b->rules[b->nrules++] = nr;
    return 0;
}

static int
interpret(struct builder *b, int root)
{
    const struct hcl_doc *p = b->p;
    char ex[128];
    int r;

    for (int c = p->nodes[root].first; c >= 0; c = p->nodes[c].next) {
        const struct hcl_node *it = &p->nodes[c];
        if (key_is(it, "path")) {
            if (it->type != HCL_OBJ)
                return hcl_perr(b->err, RK_EINVAL, it->line, it->col,
                                "expected path \"PATTERN\" { ... }, found %s", type_desc(it->type));
            for (int pc = it->first; pc >= 0; pc = p->nodes[pc].next)
                if ((r = add_rule(b, &p->nodes[pc])) != 0)
                    return r;
        } else if (key_is(it, "name")) {
            if ((r = expect_type(b, it, HCL_STR, "a string")) != 0)
                return r;
        } else {
            return hcl_perr(b->err, RK_EINVAL, it->kline, it->kcol,
                            "unknown top-level key '%s'; expected path \"PATTERN\" { ... }",
                            hcl_excerpt(it->key, it->klen, ex, sizeof(ex)));
        }
    }
    return 0;
}

/* ---- construction ---------------------------------------------------------------------------- */

static int
name_set(struct policy *pol, const char *name, struct rk_error *err)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > POLICY_NAME_MAX)
        return rk_error_set(err, RK_EINVAL, "policy name must be 1 to %d characters",
                            POLICY_NAME_MAX);
    /* The rule for every name in a path (router.h), checked one byte at a time for the
     * position; the name is then folded as the router folds it in a path. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (router_name_check(name + i, 1) != 0)
            return rk_error_set(err, RK_EINVAL,
                                "policy name may hold only letters, digits, '.', '_', '-' and "
                                "'@' (bad character at position %zu)",
                                i + 1);
        pol->name[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    pol->name[n] = '\0';
    return 0;
}

static struct policy *
policy_alloc(void)
{
    struct policy *pol = calloc(1, sizeof(*pol));

    if (pol != NULL)
        atomic_init(&pol->refs, 1);
    return pol;
}

int
policy_parse(const char *name, const char *text, size_t len, struct policy **out,
             struct rk_error *err)
{
    struct hcl_doc doc;
    struct builder b;
    struct policy *pol = NULL;
    size_t total = 0;
    int r = -RK_EINTERNAL, root;

    memset(&doc, 0, sizeof(doc));
    memset(&b, 0, sizeof(b));
    *out = NULL;
    if (text == NULL && len > 0)
        return rk_error_set(err, RK_EINVAL, "policy text is missing");
    if (len > POLICY_TEXT_MAX)
        return rk_error_set(err, RK_ELIMIT, "policy text is %zu bytes; the limit is %d", len,
                            POLICY_TEXT_MAX);
    if ((pol = policy_alloc()) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if ((r = name_set(pol, name, err)) != 0)
        goto out;
    if (strcmp(pol->name, "root") == 0) {
        r = rk_error_set(err, RK_EINVAL, "the root policy is built in and cannot be written");
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\0') {
            unsigned line = 1, col = 1;
            for (size_t j = 0; j < i; j++) {
                if (text[j] == '\n') {
                    line++;
                    col = 1;
                } else {
                    col++;
                }
            }
            r = hcl_perr(err, RK_EINVAL, line, col, "NUL byte in policy text");
            goto out;
        }
    }

    b.p = &doc;
    b.err = err;
    if ((r = hcl_parse(text ? text : "", len, POLICY_TEXT_MAX + 64, POLICY_DEPTH_MAX, &doc, err)) !=
        0)
        goto out;
    root = doc.root;
    if ((r = interpret(&b, root)) != 0)
        goto out;

    /* Copy what the checks need into the policy: the rules and one block of patterns. */
    for (size_t i = 0; i < b.nrules; i++)
        total += b.rules[i].len + 1;
    if ((pol->text = malloc(len + 1)) == NULL ||
        (b.nrules > 0 && (pol->rules = calloc(b.nrules, sizeof(*pol->rules))) == NULL) ||
        (pol->patterns = malloc(total + 1)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (len > 0)
        memcpy(pol->text, text, len);
    pol->text[len] = '\0';
    pol->text_len = len;
    total = 0;
    for (size_t i = 0; i < b.nrules; i++) {
        pol->rules[i] = b.rules[i];
        memcpy(pol->patterns + total, b.rules[i].pat, b.rules[i].len);
        pol->patterns[total + b.rules[i].len] = '\0';
        pol->rules[i].pat = pol->patterns + total;
        total += b.rules[i].len + 1;
    }
    pol->nrules = b.nrules;
    *out = pol;
    pol = NULL;
    r = 0;
out:
    hcl_doc_free(&doc);
    free(b.rules);
    policy_free(pol);
    return r;
}

static const char default_policy_text[] =
    "# rekey's default policy: what every token may do to and about itself.\n"
    "# Allow tokens to look up their own properties\n"
    "path \"auth/token/lookup-self\" {\n"
    "    capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "# Allow tokens to renew themselves\n"
    "path \"auth/token/renew-self\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow tokens to revoke themselves\n"
    "path \"auth/token/revoke-self\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to look up its own capabilities on a path\n"
    "path \"sys/capabilities-self\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow a token to look up its resultant ACL from all policies\n"
    "path \"sys/internal/ui/resultant-acl\" {\n"
    "    capabilities = [\"read\"]\n"
    "}\n"
    "\n"
    "# Allow a token to renew a lease via lease_id in the request body\n"
    "path \"sys/renew\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/leases/renew\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow looking up lease properties; this requires knowing the lease ID\n"
    "path \"sys/leases/lookup\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "\n"
    "# Allow general purpose tools\n"
    "path \"sys/tools/hash\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n"
    "path \"sys/tools/hash/*\" {\n"
    "    capabilities = [\"update\"]\n"
    "}\n";

const char *
policy_default_text(void)
{
    return default_policy_text;
}

int
policy_builtin(const char *name, struct policy **out, struct rk_error *err)
{
    struct policy *pol;

    *out = NULL;
    if (name != NULL && strcmp(name, "default") == 0)
        return policy_parse("default", default_policy_text, sizeof(default_policy_text) - 1, out,
                            err);
    if (name == NULL || strcmp(name, "root") != 0)
        return rk_error_set(err, RK_ENOTFOUND, "no built-in policy named '%s'",
                            name ? name : "(null)");
    if ((pol = policy_alloc()) == NULL || (pol->text = calloc(1, 1)) == NULL) {
        policy_free(pol);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    memcpy(pol->name, "root", 5);
    pol->is_root = 1;
    *out = pol;
    return 0;
}

struct policy *
policy_ref(struct policy *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void
policy_free(struct policy *p)
{
    if (p == NULL)
        return;
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(p->text);
    free(p->rules);
    free(p->patterns);
    free(p);
}

const char *
policy_name(const struct policy *p)
{
    return p->name;
}

const char *
policy_text(const struct policy *p, size_t *len)
{
    if (len != NULL)
        *len = p->text_len;
    return p->text;
}

size_t
policy_rule_count(const struct policy *p)
{
    return p->nrules;
}

int
policy_is_root(const struct policy *p)
{
    return p->is_root;
}

/* ---- evaluation --------------------------------------------------------------------------------
 */

/* Matches a rule that has '+' segments, as Vault's CheckAllowedFromNonExactPaths does: the
 * pattern's segments line up with the path's; '+' takes any one segment; a glob's last segment
 * may be a prefix of the path's segment, and the path may go on. Without a glob, the path has
 * exactly as many segments. */
static int
match_segments(const struct rule *r, const char *path, size_t plen)
{
    size_t pi = r->first_wc, si = r->first_wc; /* both at the start of a segment */

    if (plen < r->first_wc || memcmp(path, r->pat, r->first_wc) != 0)
        return 0;
    for (;;) {
        const char *pe = memchr(r->pat + pi, '/', r->len - pi);
        const char *se = memchr(path + si, '/', plen - si);
        size_t pend = pe ? (size_t)(pe - r->pat) : r->len;
        size_t send = se ? (size_t)(se - path) : plen;
        size_t pn = pend - pi, sn = send - si;
        int last = pend == r->len;

        if (pn == 1 && r->pat[pi] == '+') {
            /* any one segment */
        } else if (pn == sn && memcmp(r->pat + pi, path + si, pn) == 0) {
            /* the same literal segment */
        } else if (r->is_prefix && last && sn >= pn && memcmp(r->pat + pi, path + si, pn) == 0) {
            return 1; /* the glob swallows the rest */
        } else {
            return 0;
        }
        if (last)
            return r->is_prefix || send == plen;
        if (send == plen)
            return 0; /* the path has fewer segments */
        pi = pend + 1;
        si = send + 1;
    }
}

/* Vault's priority among matching non-exact rules: > 0 when a wins over b, 0 if identical. */
static int
rule_cmp(const struct rule *a, const struct rule *b)
{
    int c;

    if (a->first_wc != b->first_wc)
        return a->first_wc > b->first_wc ? 1 : -1;
    if (a->is_prefix != b->is_prefix)
        return a->is_prefix ? -1 : 1;
    if (a->nplus != b->nplus)
        return a->nplus < b->nplus ? 1 : -1;
    if (a->len != b->len)
        return a->len > b->len ? 1 : -1;
    c = memcmp(a->pat, b->pat, a->len);
    return c > 0 ? 1 : (c < 0 ? -1 : 0);
}

#define EVAL_ROOT (~0u)

/* Returns the capabilities of the winning pattern (0 when none matched), or EVAL_ROOT. */
static unsigned
evaluate(struct policy *const *pols, size_t n, const char *path, int list)
{
    const struct rule *best = NULL;
    unsigned caps = 0;
    int rank = 0; /* 3 exact, 2 exact without the trailing '/', 1 glob or '+' */
    size_t plen, tlen;

    while (*path == '/')
        path++;
    plen = strlen(path);
    tlen = (list && plen > 0 && path[plen - 1] == '/') ? plen - 1 : plen;

    for (size_t i = 0; i < n; i++) {
        const struct policy *p = pols[i];
        if (p->is_root)
            return EVAL_ROOT;
        for (size_t j = 0; j < p->nrules; j++) {
            const struct rule *r = &p->rules[j];
            int rk, c;
            if (!r->is_prefix && r->nplus == 0) {
                if (r->len == plen && memcmp(r->pat, path, plen) == 0)
                    rk = 3;
                else if (tlen != plen && r->len == tlen && memcmp(r->pat, path, tlen) == 0)
                    rk = 2;
                else
                    continue;
            } else {
                if (rank >= 2)
                    continue; /* an exact rule already won */
                if (r->nplus == 0) {
                    if (plen < r->len || memcmp(r->pat, path, r->len) != 0)
                        continue;
                } else if (!match_segments(r, path, plen)) {
                    continue;
                }
                rk = 1;
            }
            if (rk > rank) {
                c = 1;
            } else if (rk < rank) {
                continue;
            } else {
                c = rk == 1 ? rule_cmp(r, best) : 0;
            }
            if (c > 0) {
                best = r;
                rank = rk;
                caps = r->caps;
            } else if (c == 0) {
                caps = ((caps | r->caps) & CAP_DENY) ? CAP_DENY : (caps | r->caps);
            }
        }
    }
    return caps;
}

int
policy_check(struct policy *const *pols, size_t n, const char *path, unsigned cap)
{
    unsigned caps;

    if (pols == NULL || n == 0 || path == NULL || cap == 0 || (cap & (CAP_DENY | CAP_ROOT)) != 0)
        return 0;
    caps = evaluate(pols, n, path, (cap & CAP_LIST) != 0);
    if (caps == EVAL_ROOT)
        return 1;
    if (caps & CAP_DENY)
        return 0;
    return (caps & cap) == cap;
}

int
policy_allowed(const struct policy_set *set, const char *path, unsigned cap)
{
    if (set == NULL)
        return 0;
    return policy_check(set->pols, set->n, path, cap);
}

unsigned
policy_capabilities(struct policy *const *pols, size_t n, const char *path)
{
    unsigned caps;

    if (pols == NULL || n == 0 || path == NULL)
        return 0;
    caps = evaluate(pols, n, path, 1);
    if (caps == EVAL_ROOT)
        return CAP_ROOT | CAP_ALL;
    return caps;
}
