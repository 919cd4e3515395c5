/* sysbody-fuzzer: the sys/ route body decoders (init, unseal, policy write, capabilities-self)
 * on arbitrary bytes, parsed as the server parses request bodies (JSON, duplicate keys refused).
 * Every decoder runs on every input, including non-objects the server would refuse first. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api/sysbody.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed decode leaves a message and a zeroed struct. */
static void
check_failed(int r, const struct rk_error *err, const void *out, size_t len)
{
    const unsigned char *p = out;

    if (r != -RK_EINVAL && r != -RK_ELIMIT)
        __builtin_trap();
    if (err->msg[0] == '\0')
        __builtin_trap();
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0)
            __builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct sys_init_body ib;
    struct sys_unseal_body ub;
    struct sys_policy_body pb;
    struct sys_caps_body cb;
    struct rk_error err = {0};
    int r;

    if (body == NULL)
        return 0;

    if ((r = sys_init_body_decode(body, &ib, &err)) == 0) {
        if (ib.secret_shares < 1 || ib.secret_shares > SYS_INIT_SHARES_MAX ||
            ib.secret_threshold < 1 || ib.secret_threshold > SYS_INIT_SHARES_MAX)
            __builtin_trap();
    } else {
        check_failed(r, &err, &ib, sizeof(ib));
    }

    rk_error_clear(&err);
    if ((r = sys_unseal_body_decode(body, &ub, &err)) == 0) {
        if (!ub.reset && ub.key == NULL)
            __builtin_trap();
        if (ub.key != NULL)
            (void)strlen(ub.key); /* a NUL-terminated string borrowed from body */
    } else {
        if (r != -RK_EINVAL)
            __builtin_trap();
        check_failed(r, &err, &ub, sizeof(ub));
    }

    rk_error_clear(&err);
    if ((r = sys_policy_body_decode(body, &pb, &err)) == 0) {
        if (pb.text == NULL || strlen(pb.text) != pb.len)
            __builtin_trap();
    } else {
        if (r != -RK_EINVAL)
            __builtin_trap();
        check_failed(r, &err, &pb, sizeof(pb));
    }

    rk_error_clear(&err);
    if ((r = sys_caps_body_decode(body, &cb, &err)) == 0) {
        for (size_t i = 0; i < cb.npaths; i++) {
            const char *p = sys_caps_body_path(&cb, i);
            if (p == NULL)
                __builtin_trap();
            (void)strlen(p);
        }
        if (sys_caps_body_path(&cb, cb.npaths) != NULL)
            __builtin_trap();
    } else {
        if (r != -RK_EINVAL)
            __builtin_trap();
        check_failed(r, &err, &cb, sizeof(cb));
    }

    json_decref(body);
    return 0;
}
