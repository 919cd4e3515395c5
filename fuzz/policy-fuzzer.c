/* policy-fuzzer.c: policy_parse on arbitrary bytes; when it parses, policy_check and
 * policy_capabilities on fixed paths and on a path cut from the input, with invariants. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/policy.h"
#include "util/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[] = {
    "",
    "/",
    "secret",
    "secret/",
    "secret/foo",
    "secret/foo/",
    "secret/data/foo/bar",
    "secret/a/teamb/x",
    "a/b/c/d/e/f",
    "sys/capabilities-self",
    "+",
    "*",
    "a+b/c",
    "//",
};

static void
check_path(struct policy *p, const char *path)
{
    unsigned caps = policy_capabilities(&p, 1, path);

    /* deny is exclusive, root never comes from text, bits stay in range */
    if ((caps & CAP_DENY) && caps != CAP_DENY)
        abort();
    if (caps & ~(CAP_ALL | CAP_DENY))
        abort();
    size_t len = strlen(path);
    int slash = len > 0 && path[len - 1] == '/';

    for (unsigned bit = 1; bit <= CAP_RECOVER; bit <<= 1) {
        if (bit == CAP_DENY)
            continue;
        /* capabilities use list semantics (an exact rule also matches without the trailing
         * '/'), as checks of CAP_LIST do; other checks agree when there is no trailing '/' */
        if ((bit == CAP_LIST || !slash) &&
            policy_check(&p, 1, path, bit) != ((caps & bit) != 0 && !(caps & CAP_DENY)))
            abort();
    }
    if (policy_check(&p, 1, path, CAP_DENY) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct policy *p = NULL;
    struct rk_error err = {0};
    char cut[80];
    size_t n = 0, tlen = 0;

    if (policy_parse("fuzz", (const char *)data, size, &p, &err) != 0) {
        if (p != NULL || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (strcmp(policy_name(p), "fuzz") != 0)
        abort();
    if (memcmp(policy_text(p, &tlen), data, size) != 0 || tlen != size)
        abort();
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        check_path(p, paths[i]);
    /* a path made of the input's own bytes (up to the first NUL or quote) often hits a rule */
    for (size_t i = 0; i < size && n + 1 < sizeof(cut); i++) {
        if (data[i] == '"' && n > 0)
            break;
        if (data[i] != '"' && data[i] != '\0')
            cut[n++] = (char)data[i];
    }
    cut[n] = '\0';
    check_path(p, cut);
    policy_free(p);
    return 0;
}
