/* rekey audit verify FILE…: checks the hash chain (audit/chain.h) of audit files given in the
 * order they were written (oldest first: audit.log.2 audit.log.1 audit.log) and names the first
 * line that breaks it. Exit 0 when the chain holds, 1 at the first break (FILE:LINE: why),
 * 3 when a file cannot be read. Reads each file once in large blocks; no JSON parsing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/chain.h"
#include "cli/cli.h"

#define BLOCK (4u << 20)

/* Verifies one file; returns 0, 1 at a break (printed), or a negative RK_E*. */
static int
verify_file(struct cli_ctx *ctx, struct audit_verifier *v, const char *path)
{
    size_t cap = BLOCK, have = 0;
    char *buf = malloc(cap), why[256];
    unsigned long long lineno = 0;
    int fd = -1, r = 0, eof = 0;

    if (buf == NULL)
        return rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        r = rk_error_set(&ctx->err, RK_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (!eof) {
        ssize_t n = read(fd, buf + have, cap - have);
        char *p = buf, *end;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = rk_error_set(&ctx->err, RK_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        eof = n == 0;
        have += (size_t)n;
        end = buf + have;
        for (;;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            if (nl == NULL) {
                if (!eof || p == end)
                    break;
                lineno++;
                printf("%s:%llu: the last line is incomplete (no newline: a write was cut "
                       "short, or the file was cut)\n",
                       cli_esc(path), lineno);
                r = 1;
                goto out;
            }
            lineno++;
            if (audit_verify_line(v, p, (size_t)(nl - p), lineno == 1, why, sizeof(why)) != 0) {
                printf("%s:%llu: %s\n", cli_esc(path), lineno, why);
                r = 1;
                goto out;
            }
            p = nl + 1;
        }
        have = (size_t)(end - p);
        memmove(buf, p, have);
        if (have == cap) { /* a line longer than the buffer: not one of ours, but go on */
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                r = rk_error_set(&ctx->err, RK_ENOMEM, "out of memory");
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (lineno == 0) {
        printf("%s: empty (an audit file starts with its header record)\n", cli_esc(path));
        r = 1;
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return r;
}

static int
exec_audit_verify(struct cli_ctx *ctx, int argc, char **argv)
{
    struct audit_verifier v;
    int r;

    memset(&v, 0, sizeof(v));
    for (int i = 0; i < argc; i++) {
        if ((r = verify_file(ctx, &v, argv[i])) < 0)
            return cli_fail(ctx, r);
        if (r > 0)
            return CLI_PROBLEM;
    }
    printf("ok: %llu line%s in %d file%s; the chain ends at %s\n", (unsigned long long)v.lines,
           v.lines == 1 ? "" : "s", argc, argc == 1 ? "" : "s", v.last);
    return CLI_OK;
}

const struct cli_cmd cmd_audit_verify = {
    .name = "audit verify",
    .args = "FILE…",
    .summary = "check the hash chain of audit files and name the first line that breaks it",
    .help = "Give the files of one chain oldest first (audit.log.2 audit.log.1 audit.log).\n"
            "Each line must carry its own hash and the hash of the line before it, and every\n"
            "file must start with a header record continuing the previous file. An edited,\n"
            "removed, inserted or moved line is named (FILE:LINE: why) and the exit status is\n"
            "1; 0 when the chain holds. Lines cut from the end of the newest file cannot be\n"
            "seen this way: keep the printed last hash elsewhere to compare later.",
    .min_args = 1,
    .max_args = -1,
    .needs = 0,
    .exec = exec_audit_verify,
};
