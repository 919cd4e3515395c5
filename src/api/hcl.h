/* hcl.h: the reader of policy documents (HCL1 as Vault's ACL policies use it, and JSON), for
 * api/policy.c. It builds a tree of nodes, each with its line and column, and knows nothing of
 * policies: the interpretation of the tree is policy.c's. Private to the api module. */
#ifndef REKEY_API_HCL_H
#define REKEY_API_HCL_H

#include <stddef.h>

#include "util/err.h"

enum hcl_type { HCL_OBJ, HCL_LIST, HCL_STR, HCL_NUM, HCL_BOOL, HCL_NULL };

struct hcl_node {
    enum hcl_type type;
    unsigned line, col;
    const char *key; /* when the node is an object member: its key */
    size_t klen;
    unsigned kline, kcol;
    const char *str; /* scalars: the decoded text */
    size_t slen;
    int first, last, next; /* children and siblings, as indexes; -1 = none */
};

/* A parsed document: nodes[root] is the top object. Keys and strings point into arena. */
struct hcl_doc {
    struct hcl_node *nodes;
    size_t n;
    char *arena;
    int root;
};

/* Parses text[0..len) (no NUL byte inside; the caller checks) into *doc, with at most max_nodes
 * nodes and max_depth levels of { } and [ ]. Block syntax `key "label" { … }` becomes
 * `key = { "label" = { … } }`. Returns 0, or -RK_EINVAL / -RK_ELIMIT with "line:col: what" in
 * err, or -RK_ENOMEM. *doc is freed with hcl_doc_free (also after an error: it is then empty). */
int hcl_parse(const char *text, size_t len, size_t max_nodes, int max_depth, struct hcl_doc *doc,
              struct rk_error *err);

void hcl_doc_free(struct hcl_doc *doc);

/* Writes s[0..n) into buf as a printable quoted excerpt (user text, never a secret), cut at about
 * 60 bytes. Returns buf. */
const char *hcl_excerpt(const char *s, size_t n, char *buf, size_t cap);

/* rk_error_set with "line:col: " before the message. Returns -code. */
int hcl_perr(struct rk_error *err, int code, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
