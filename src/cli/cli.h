/* cli.h: the command table and what every command shares (options, config, store, output).
 * A command is one cmd-*.c file exporting one `const struct cli_cmd`; cli-table.c lists them. */
#ifndef REKEY_CLI_H
#define REKEY_CLI_H

#include <stdio.h>

#include "util/err.h"

struct inventory;
struct backend;
struct barrier;
struct kv;
struct rk_client;
struct secret;

/* Exit codes: 0 ok; 1 the command ran and reports a problem (e.g. status: overdue);
 * 2 usage error; 3 other error. */
enum { CLI_OK = 0, CLI_PROBLEM = 1, CLI_USAGE = 2, CLI_ERROR = 3 };

enum cli_opt_kind { OPT_FLAG, OPT_VALUE };

struct cli_opt {
    const char *name; /* without dashes; given as -name, --name, -name=v, --name=v, -name v */
    enum cli_opt_kind kind;
    const char *arg; /* name of the value in help, e.g. "N" */
    const char *help;
};

/* What a command needs before it runs. */
enum {
    CLI_NEED_CONFIG = 1 << 0,    /* the inventory must load */
    CLI_NEED_STORE = 1 << 1,     /* an initialised, unsealed store */
    CLI_OPT_CONFIG = 1 << 2,     /* load the inventory if a config file is found */
    CLI_NEED_RAW_STORE = 1 << 3, /* the store opened but left sealed (operator init) */
    CLI_REMOTE_OK = 1 << 4,      /* with REKEY_ADDR set: no config, no store, ctx->remote set */
    CLI_REMOTE_ONLY = 1 << 5,    /* only through a server (operator unseal/seal) */
    CLI_NO_AUDIT = 1 << 6        /* an overview that shows no secret value (status, schedule):
                                  * not written to the audit log (cli-audit.c) */
};

#define CLI_MAX_OPTS 24

struct cli_ctx {
    const struct cli_cmd *cmd;
    const char *config_path; /* -c FILE, else REKEY_CONFIG, else ./rekey.yaml */
    struct inventory *inv;   /* loaded when the command asks */
    struct backend *be;
    struct barrier *br;
    struct kv *kv;
    struct rk_client *remote;         /* client mode (REKEY_ADDR set, command has CLI_REMOTE_OK) */
    int color;                        /* stdout is a terminal and NO_COLOR is unset */
    const char *optval[CLI_MAX_OPTS]; /* parsed options, by index in cmd->opts; NULL = absent */
    char created_store[4096]; /* a store file this run created (removed if the command fails) */
    struct rk_error err;
};

struct cli_cmd {
    const char *name;       /* "status", "kv put", "operator init" */
    const char *args;       /* positional arguments for usage: "PATH field=value…" */
    const char *summary;    /* one line */
    const char *help;       /* longer text, may be NULL */
    int min_args, max_args; /* max -1 = unlimited */
    unsigned needs;
    const struct cli_opt *opts; /* terminated by {NULL} */
    int (*exec)(struct cli_ctx *ctx, int argc, char **argv);
};

/* The table (cli-table.c). */
extern const struct cli_cmd *const cli_commands[];

/* The option's value ("" for a flag that is present), or NULL when absent. */
const char *cli_opt(const struct cli_ctx *ctx, const char *name);

/* Prints "rekey: <msg>" on stderr and returns CLI_ERROR (or CLI_USAGE for -RK_EINVAL). */
int cli_fail(struct cli_ctx *ctx, int r);

/* Prints a usage error for the current command and returns CLI_USAGE. */
int cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The audit log of a command on a local store (cli-audit.c): cli_audit_begin opens the sinks
 * (the configuration's audit: block, the devices stored through sys/audit) and records the
 * command before it runs; CLI_OK, or CLI_ERROR after printing why (the command must not run:
 * nothing could record it). cli_audit_end records its outcome (rc, ctx->err) and returns rc,
 * or CLI_ERROR when that cannot be recorded. Both do nothing for a command without a store, a
 * CLI_NO_AUDIT one, or when no sink is on. */
int cli_audit_begin(struct cli_ctx *ctx, int argc, char **argv);
int cli_audit_end(struct cli_ctx *ctx, int rc);

/* Opens the store named by the config or REKEY_STORE, unsealing it unless sealed_ok.
 * Returns 0 or a negative RK_E* (message in ctx->err). */
int cli_open_store(struct cli_ctx *ctx, int sealed_ok);

/* Secret values from a person (terminal, stdin, file): cli/secret-input.h. */

/* 1 when the next rotation of path (local store) needs a value from a person: its kind's flags
 * for the entry say so (rotator_flags) and no candidate of it waits for its target (that one is
 * tried again without a value). 0 otherwise, also when path is no entry (the engine says so). */
int cli_needs_input(struct cli_ctx *ctx, const char *path);

/* Output that a person reads never carries a stored, remote or configured string raw: a KV
 * reason, an author, a server's error message or a path may hold escape sequences that retitle
 * or clear the terminal, move the cursor or forge a line. Everything human-readable goes through
 * these two (JSON output is escaped by jansson instead). They show C0 controls and DEL as \xNN
 * (\n, \r, \t as such), C1 controls (raw or UTF-8), bidirectional overrides and U+2028/U+2029
 * as \uNNNN, and bytes that are not valid UTF-8 as \xNN; other text, UTF-8 included, is kept.
 * A backslash is kept as it is: the form is for a reader, not to be parsed back. */

/* Returns s itself when nothing in it needs escaping, else an escaped copy owned by this module
 * that stays valid until CLI_ESC_SLOTS more calls (so up to CLI_ESC_SLOTS of them fit in one
 * printf). NULL gives "". Never returns NULL (on allocation failure: "(unprintable)"). Not for
 * secret values: the copy is wiped only when its slot is reused (use cli_fput_esc). */
#define CLI_ESC_SLOTS 8
const char *cli_esc(const char *s);

/* Writes s[0..len) to f escaped as cli_esc does, without copying it (fit for secret values). */
void cli_fput_esc(FILE *f, const char *s, size_t len);

/* ANSI colour helpers: return "" when colour is off. */
const char *cli_color(const struct cli_ctx *ctx, const char *which);

#endif
