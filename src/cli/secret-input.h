/* secret-input.h: the one way the CLI takes a secret value from a person: typed at the terminal
 * without echo, piped on stdin, or read from a file. Every command that takes one (rotate and
 * revoke of a manual kind, kv put field=-, operator unseal, fingerprint, audit hash) reads it
 * here; rotators never read input themselves (they get the value in struct rot_input).
 *
 * What holds for every source: the value lands in the secure heap (struct secret) and every
 * scratch byte is wiped; a value over the limit is refused with a message, never cut; the value
 * never appears in a message. At the terminal: /dev/tty (not stdin), echo off, typed-ahead
 * input dropped before the prompt, no line-length limit of the terminal's own (the kernel's
 * line editing stops at 4,095 bytes, so the line is read byte by byte with echo and canonical
 * mode off; erase and kill are honoured), and the terminal's settings come back on every
 * return and on SIGINT, SIGTERM, SIGQUIT and SIGHUP (restored, then the signal is delivered
 * again, so the process ends as it would have) and SIGTSTP, SIGTTIN, SIGTTOU (restored, the
 * process stops; on SIGCONT the prompt starts again with the echo off). */
#ifndef REKEY_CLI_SECRET_INPUT_H
#define REKEY_CLI_SECRET_INPUT_H

#include <stddef.h>

#include "util/err.h"

struct secret;
struct cli_ctx;

#define CLI_SECRET_MAX (64 * 1024) /* the default limit, in bytes */

/* Flags of cli_read_secret_fd and cli_read_secret_file. */
enum {
    /* Drop one trailing "\n", then one "\r" (what echo and editors add; kv put always did). */
    CLI_SECRET_STRIP_NL = 1 << 0,
};

/* Shows prompt on the terminal and reads one line without echo; when confirm is not NULL,
 * shows it and reads the line again, and the two must match. max: the longest value in bytes
 * (0: CLI_SECRET_MAX). Returns 0 with *out (secret_free; may be empty), or -RK_EINVAL (no
 * terminal; the two lines differ), -RK_ELIMIT (a line was longer than max: it was read to its
 * end and dropped), -RK_ECANCELED (end of input or Ctrl-D before a value, or a signal whose
 * handler returned), -RK_ENOMEM, -RK_EIO. On a fatal signal the process dies after restoring
 * the terminal and wiping what was typed. */
int cli_read_secret(const char *prompt, const char *confirm, size_t max, struct secret **out,
                    struct rk_error *err);

/* Reads all of fd (stdin) into *out (secret_free). what names the source in messages
 * ("stdin"). Refused with -RK_EINVAL when fd is a terminal (what is typed there would echo: use
 * cli_read_secret). The limit (max, 0: CLI_SECRET_MAX) counts the value without that trailing
 * newline, which *out keeps unless flags has CLI_SECRET_STRIP_NL. Returns 0, -RK_EINVAL,
 * -RK_ELIMIT, -RK_ENOMEM or -RK_EIO. */
int cli_read_secret_fd(int fd, const char *what, size_t max, unsigned flags, struct secret **out,
                       struct rk_error *err);

/* cli_read_secret_fd of the file path. Also -RK_ENOTFOUND when there is no such file. */
int cli_read_secret_file(const char *path, size_t max, unsigned flags, struct secret **out,
                         struct rk_error *err);

/* The new value of a manual kind for PATH (rekey rotate, rekey revoke): from stdin when
 * from_stdin (refused on a terminal), from the file from_file, or typed twice at the terminal
 * when prompt is set and stdin is a terminal; at most CLI_SECRET_MAX bytes besides a trailing
 * newline, which is kept (the rotator drops it, as for a value sent through the API). Returns 0
 * with *out (secret_free), 0 with *out NULL when no source applies, or a negative RK_E*
 * (message in ctx->err, naming path). */
int cli_read_value(struct cli_ctx *ctx, const char *path, int from_stdin, const char *from_file,
                   int prompt, struct secret **out);

#endif
