/* policy.h: Vault-compatible ACL policies: parse the HCL (or JSON) text, check a request.
 *
 * Accepted text (Vault's HCL1 policy subset):
 *   # comment, // comment, slash-star block comment
 *   path "secret/data/foo/bar" { capabilities = ["read", "list"] }
 *   path "secret/+/teamb/x"  { policy = "write" }          (old shorthand, see below)
 *   path = { "a/b" = { capabilities = [] } }               (the same, in object form)
 *   name = "ignored"                                        (allowed at top level, ignored)
 * and the same structure written as JSON ({"path": {"a/b": {"capabilities": ["read"]}}}).
 * Inside a path block: capabilities (list of strings), policy (deny|read|write|sudo|list),
 * and Vault's allowed_parameters, denied_parameters (maps of lists), required_parameters (list),
 * min_wrapping_ttl, max_wrapping_ttl (durations). The parameter and wrapping attributes are
 * checked for shape and then IGNORED: rekey does not enforce them. Anything else is an error.
 * Capabilities: create read update patch delete list sudo deny subscribe recover. "subscribe"
 * and "recover" are recorded (and reported by policy_capabilities) but rekey has no operation
 * that needs them. "deny" in a rule drops every other capability of that rule.
 * Old shorthand: deny -> deny; read -> read, list; list -> list;
 * write -> create read update patch delete list; sudo -> write + sudo. It adds to capabilities.
 *
 * Path patterns: a leading '/' is dropped. '*' only as the last character (prefix match; a '*'
 * anywhere else is rejected, unlike Vault, which silently treats it as a literal). '+' as a
 * whole segment matches exactly one segment ("secret/+/teamb/x"); a '+' inside a segment is a
 * literal. "{{...}}" templates are rejected (not supported).
 *
 * Evaluation follows Vault's ACL (vault/acl.go), not a per-policy vote: the rules of all of a
 * token's policies are considered together and the single most specific matching pattern wins:
 *   1. an exact rule (no '*', no '+') equal to the path;
 *   2. for a list check, an exact rule equal to the path without its trailing '/';
 *   3. otherwise, among matching glob and '+' rules, the highest priority by Vault's order:
 *      first wildcard/glob later in the pattern; not a glob ("foo/+/bar" over "foo/+/ba*");
 *      fewer '+' segments; longer pattern; lexicographically greater.
 * If the winning pattern appears in several policies (or several times in one), its
 * capabilities are the union, unless any of those rules has deny: then only deny. A pattern with
 * lower priority never adds capabilities, even from another policy (Vault: "If different
 * patterns appear in the applicable policies, we take only the highest-priority match").
 * Nothing matched, or deny, means denied. The "root" policy allows everything.
 *
 * Thread safety: a parsed policy is immutable; checks may run concurrently from any thread.
 * References are counted atomically (policy_ref / policy_free). */
#ifndef REKEY_POLICY_H
#define REKEY_POLICY_H

#include <stddef.h>

#include "util/err.h"

#define POLICY_TEXT_MAX (64 * 1024) /* bytes of policy text */
#define POLICY_RULES_MAX 1024       /* path blocks per policy (after merging duplicates) */
#define POLICY_DEPTH_MAX 16         /* nesting of { } and [ ] */
#define POLICY_NAME_MAX 128

enum capability {
    CAP_CREATE = 1u << 0,
    CAP_READ = 1u << 1,
    CAP_UPDATE = 1u << 2,
    CAP_PATCH = 1u << 3,
    CAP_DELETE = 1u << 4,
    CAP_LIST = 1u << 5,
    CAP_SUDO = 1u << 6,
    CAP_DENY = 1u << 7,
    CAP_SUBSCRIBE = 1u << 8,
    CAP_RECOVER = 1u << 9,
    /* Never parsed from text: set by policy_capabilities when the root policy is present. */
    CAP_ROOT = 1u << 10,
};

/* Every capability a rule can grant (everything but deny and root). */
#define CAP_ALL                                                                                    \
    (CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_PATCH | CAP_DELETE | CAP_LIST | CAP_SUDO |           \
     CAP_SUBSCRIBE | CAP_RECOVER)

struct policy;

/* A token's policies, borrowed (the set does not own or reference them). */
struct policy_set {
    struct policy *const *pols;
    size_t n;
};

/* Parses text[0..len) (need not be NUL-terminated) as policy `name`. name must be 1..128 bytes
 * of letters, digits, '.', '_', '-', '@'; it is stored lowercased (Vault's policy names are
 * case-insensitive). The name "root" is refused (-RK_EINVAL): use policy_builtin. The
 * original text is kept verbatim (policy_text). Returns 0 with *out owned by the caller
 * (policy_free); -RK_EINVAL with "LINE:COL: what was expected" in err for a syntax or
 * semantic error (LINE and COL 1-based, COL in bytes); -RK_ELIMIT when the text exceeds
 * POLICY_TEXT_MAX, nesting POLICY_DEPTH_MAX or rules POLICY_RULES_MAX; -RK_ENOMEM. */
int policy_parse(const char *name, const char *text, size_t len, struct policy **out,
                 struct rk_error *err);

/* The built-in policies: "root" (allows everything, no rules, empty text) and "default" (the
 * rules every token gets unless created with no_default_policy: look up, renew and revoke
 * itself, sys/capabilities-self, lease renew/lookup, like Vault's default policy). Returns 0
 * with a new *out (policy_free), -RK_ENOTFOUND for any other name, -RK_ENOMEM. The "default"
 * policy may be overwritten by an operator: store its text (policy_default_text) and parse the
 * stored version from then on; "root" can be neither written nor deleted. */
int policy_builtin(const char *name, struct policy **out, struct rk_error *err);

/* The HCL text of the built-in default policy (static storage). */
const char *policy_default_text(void);

/* Adds a reference to p and returns p (p may be NULL). */
struct policy *policy_ref(struct policy *p);

/* Drops a reference; frees p when it was the last one. Accepts NULL. */
void policy_free(struct policy *p);

/* The policy's (lowercased) name; valid while p is referenced. */
const char *policy_name(const struct policy *p);

/* The original text as given to policy_parse (NUL-terminated; *len set when len is not NULL);
 * valid while p is referenced. Empty for "root". */
const char *policy_text(const struct policy *p, size_t *len);

/* Number of path rules after merging duplicate patterns (0 for root). */
size_t policy_rule_count(const struct policy *p);

/* 1 if p is the root policy. */
int policy_is_root(const struct policy *p);

/* Checks whether the union of pols[0..n) grants every capability bit in cap on path (a request
 * path without the /v1/ prefix; a leading '/' is ignored). Returns 1 allowed, 0 denied. cap == 0,
 * CAP_DENY or CAP_ROOT in cap, a NULL path or n == 0 deny. When cap includes CAP_LIST, an
 * exact rule also matches the path without its trailing '/' (Vault's list behaviour). A root
 * policy among pols allows everything. No allocation; pols entries may not be NULL. */
int policy_check(struct policy *const *pols, size_t n, const char *path, unsigned cap);

/* The same as policy_check for a policy_set. */
int policy_allowed(const struct policy_set *set, const char *path, unsigned cap);

/* The capabilities that pols[0..n) give on path, evaluated as Vault's sys/capabilities-self
 * does (list semantics for exact rules): 0 when no rule matches (report "deny"), CAP_DENY when
 * the winning rule denies, CAP_ROOT | CAP_ALL when a root policy is present (report "root"),
 * otherwise the granted bits. */
unsigned policy_capabilities(struct policy *const *pols, size_t n, const char *path);

/* The name of one capability bit ("read"), or NULL for anything that is not exactly one known
 * bit. Render a mask by iterating bits from 1u << 0 to CAP_ROOT. */
const char *cap_name(unsigned bit);

/* Parses a capability name (exact, lowercase) into its bit; 0 when unknown or "root". */
unsigned cap_from_name(const char *s, size_t len);

#endif
