/* main.c: finds the command in the table, parses its options and arguments, prepares what it
 * needs (config, store), runs it. Usage and argument errors come from the table. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/inventory.h"
#include "util/testsw.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/log.h"
#include "util/secret.h"

static void
print_usage_line(FILE *f, const struct cli_cmd *c)
{
    fprintf(f, "  rekey %s%s%s%s\n", c->name, c->opts && c->opts[0].name ? " [options]" : "",
            c->args[0] ? " " : "", c->args);
}

static void
print_main_help(FILE *f)
{
    fprintf(f, "rekey %s: rotates the secrets of an AI gateway, safely.\n\n", REKEY_VERSION);
    fprintf(f, "Usage: rekey [-c FILE] COMMAND [options] [args]\n\nCommands:\n");
    for (size_t i = 0; cli_commands[i] != NULL; i++)
        fprintf(f, "  %-24s %s\n", cli_commands[i]->name, cli_commands[i]->summary);
    fprintf(
        f,
        "\nGlobal options:\n"
        "  -c FILE      the configuration (else $REKEY_CONFIG, else ./rekey.yaml)\n"
        "  --help       this text; `rekey COMMAND --help` for one command\n"
        "  --version    print the version\n"
        "\nEnvironment: REKEY_CONFIG, REKEY_STORE (overrides the store location: sqlite:PATH,\n"
        "log:PATH for the write-heavy log store, etcd:http://HOST:2379,... for several servers,\n"
        "or a plain PATH), REKEY_ETCD_USER with REKEY_ETCD_PASSWORD_FILE (or REKEY_ETCD_PASSWORD)\n"
        "and REKEY_ETCD_CA_FILE, REKEY_ETCD_CERT_FILE, REKEY_ETCD_KEY_FILE for etcd "
        "(docs/etcd.md),\n"
        "REKEY_KEY_FILE (root key file for unattended unseal), REKEY_LOG (debug|info|warn|error),\n"
        "REKEY_STORE_CACHE (the SQLite store's read cache in MiB, default 64, 0 for none),\n"
        "NO_COLOR.\n"
        "\nClient mode: with REKEY_ADDR (or VAULT_ADDR) set, the kv commands, status, rotate,\n"
        "rollback, revoke, recover, done, history and operator init/unseal/seal act through\n"
        "that rekey server's API, with the token in REKEY_TOKEN (or VAULT_TOKEN, or the file\n"
        "~/.vault-token). REKEY_CACERT/VAULT_CACERT name a CA file, REKEY_SKIP_VERIFY turns\n"
        "TLS verification off, REKEY_CLIENT_TIMEOUT bounds a request (seconds).\n");
}

static void
print_cmd_help(FILE *f, const struct cli_cmd *c)
{
    fprintf(f, "Usage:\n");
    print_usage_line(f, c);
    fprintf(f, "\n%s\n", c->summary);
    if (c->needs & CLI_REMOTE_ONLY)
        fprintf(f, "\nActs on the rekey server at REKEY_ADDR (or VAULT_ADDR).\n");
    else if (c->needs & CLI_REMOTE_OK)
        fprintf(f, "\nWith REKEY_ADDR (or VAULT_ADDR) set, acts through that server's API.\n");
    if (c->help != NULL)
        fprintf(f, "\n%s\n", c->help);
    if (c->opts != NULL && c->opts[0].name != NULL) {
        fprintf(f, "\nOptions:\n");
        for (const struct cli_opt *o = c->opts; o->name != NULL; o++) {
            char lhs[64];
            snprintf(lhs, sizeof(lhs), "-%s%s%s", o->name, o->kind == OPT_VALUE ? "=" : "",
                     o->kind == OPT_VALUE ? o->arg : "");
            fprintf(f, "  %-22s %s\n", lhs, o->help);
        }
    }
}

const char *
cli_opt(const struct cli_ctx *ctx, const char *name)
{
    if (ctx->cmd->opts == NULL)
        return NULL;
    for (size_t i = 0; ctx->cmd->opts[i].name != NULL && i < CLI_MAX_OPTS; i++)
        if (strcmp(ctx->cmd->opts[i].name, name) == 0)
            return ctx->optval[i];
    return NULL;
}

int
cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "rekey %s: ", ctx->cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nUsage:\n");
    print_usage_line(stderr, ctx->cmd);
    fprintf(stderr, "Run 'rekey %s --help' for details.\n", ctx->cmd->name);
    return CLI_USAGE;
}

int
cli_fail(struct cli_ctx *ctx, int r)
{
    const char *msg = ctx->err.msg[0] ? ctx->err.msg : rk_strerror(r);

    /* The message may quote a server's answer or a stored string: escaped (cli.h). */
    fprintf(stderr, "rekey %s: %s\n", ctx->cmd ? ctx->cmd->name : "", cli_esc(msg));
    return r == -RK_EINVAL ? CLI_USAGE : CLI_ERROR;
}

/* Matches "kv put …" against the table: the longest command name whose words are the next
 * arguments. Returns the number of words used, or 0. */
static size_t
match_command(int argc, char **argv, const struct cli_cmd **out)
{
    size_t best = 0;

    for (size_t i = 0; cli_commands[i] != NULL; i++) {
        const char *n = cli_commands[i]->name;
        size_t words = 0;
        int ok = 1;
        while (*n != '\0') {
            size_t wl = strcspn(n, " ");
            if ((int)words >= argc || strlen(argv[words]) != wl ||
                strncmp(argv[words], n, wl) != 0) {
                ok = 0;
                break;
            }
            words++;
            n += wl;
            if (*n == ' ')
                n++;
        }
        if (ok && words > best) {
            best = words;
            *out = cli_commands[i];
        }
    }
    return best;
}

/* Parses options anywhere before "--"; positional arguments are compacted into argv.
 * Returns the number of positional arguments, or -1 after printing a usage error. */
static int
parse_options(struct cli_ctx *ctx, int argc, char **argv)
{
    int npos = 0, only_pos = 0;

    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        const char *name;
        size_t nlen;
        char *eq;
        size_t k;

        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        name = a + (a[1] == '-' ? 2 : 1);
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        for (k = 0; ctx->cmd->opts != NULL && ctx->cmd->opts[k].name != NULL; k++)
            if (strlen(ctx->cmd->opts[k].name) == nlen &&
                strncmp(ctx->cmd->opts[k].name, name, nlen) == 0)
                break;
        if (ctx->cmd->opts == NULL || ctx->cmd->opts[k].name == NULL) {
            cli_usage_error(ctx, "unknown option '-%.*s'", (int)nlen, name);
            return -1;
        }
        if (ctx->cmd->opts[k].kind == OPT_FLAG) {
            if (eq != NULL) {
                if (strcmp(eq + 1, "true") == 0)
                    ctx->optval[k] = "";
                else if (strcmp(eq + 1, "false") == 0)
                    ctx->optval[k] = NULL;
                else {
                    cli_usage_error(ctx, "option '-%.*s' takes no value", (int)nlen, name);
                    return -1;
                }
            } else {
                ctx->optval[k] = "";
            }
        } else if (eq != NULL) {
            ctx->optval[k] = eq + 1;
        } else if (i + 1 < argc) {
            ctx->optval[k] = argv[++i];
        } else {
            cli_usage_error(ctx, "option '-%.*s' needs a value (%s)", (int)nlen, name,
                            ctx->cmd->opts[k].arg);
            return -1;
        }
    }
    return npos;
}

static void
cli_close(struct cli_ctx *ctx)
{
    kv_free(ctx->kv);
    barrier_free(ctx->br);
    backend_close(ctx->be);
    inventory_free(ctx->inv);
    client_free(ctx->remote);
}

int
main(int argc, char **argv)
{
    struct cli_ctx ctx;
    const struct cli_cmd *cmd = NULL;
    int i = 1, npos, r, rc;
    size_t words;

    memset(&ctx, 0, sizeof(ctx));
    process_harden();
    /* No exec from here on (hooks run as children) can gain privileges: setuid, file caps. */
    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    secure_heap_init();
    json_wipe_on_free();
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            ctx.config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "-c=", 3) == 0) {
            ctx.config_path = argv[i] + 3;
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_main_help(stdout);
            return CLI_OK;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-version") == 0) {
            printf("rekey %s%s\n", REKEY_VERSION,
                   test_switches_built()
                       ? " (test build: REKEY_NOW, REKEY_CRASH_AT, REKEY_FAULT on)"
                       : "");
            return CLI_OK;
        } else {
            fprintf(stderr, "rekey: unknown global option '%s'; run 'rekey --help'\n", argv[i]);
            return CLI_USAGE;
        }
    }
    if (i >= argc) {
        print_main_help(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 < argc && match_command(argc - i - 1, argv + i + 1, &cmd) > 0) {
            print_cmd_help(stdout, cmd);
            return CLI_OK;
        }
        print_main_help(stdout);
        return CLI_OK;
    }
    words = match_command(argc - i, argv + i, &cmd);
    if (words == 0) {
        fprintf(stderr, "rekey: unknown command '%s'; run 'rekey --help' for the list\n", argv[i]);
        return CLI_USAGE;
    }
    i += (int)words;
    ctx.cmd = cmd;
    for (int k = i; k < argc && strcmp(argv[k], "--") != 0; k++) {
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-help") == 0 ||
            strcmp(argv[k], "-h") == 0) {
            print_cmd_help(stdout, cmd);
            return CLI_OK;
        }
    }
    npos = parse_options(&ctx, argc - i, argv + i);
    if (npos < 0)
        return CLI_USAGE;
    if (npos < cmd->min_args)
        return cli_usage_error(&ctx, "missing argument%s", cmd->min_args - npos > 1 ? "s" : "");
    if (cmd->max_args >= 0 && npos > cmd->max_args)
        return cli_usage_error(&ctx, "too many arguments");
    ctx.color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
    ctx.config_path = inventory_default_path(ctx.config_path);
    if ((cmd->needs & (CLI_REMOTE_OK | CLI_REMOTE_ONLY)) &&
        (client_addr_env() != NULL || (cmd->needs & CLI_REMOTE_ONLY))) {
        /* Client mode: the server holds the config and the store; nothing is opened here. */
        if (client_addr_env() == NULL) {
            rk_error_set(&ctx.err, RK_EINVAL,
                         "this command acts on a rekey server: set REKEY_ADDR (or VAULT_ADDR) "
                         "to its address");
            rc = cli_fail(&ctx, -RK_ECONFIG);
            goto out;
        }
        if ((r = client_open(&ctx.remote, &ctx.err)) != 0) {
            rc = cli_fail(&ctx, r);
            goto out;
        }
        rc = cmd->exec(&ctx, npos, argv + i);
        goto out;
    }
    if (cmd->needs & (CLI_NEED_CONFIG | CLI_OPT_CONFIG)) {
        int explicit_cfg = ctx.config_path != NULL && (strcmp(ctx.config_path, "rekey.yaml") != 0 ||
                                                       access("rekey.yaml", F_OK) == 0);
        if ((cmd->needs & CLI_NEED_CONFIG) || explicit_cfg) {
            r = inventory_load_file(ctx.config_path, &ctx.inv, &ctx.err);
            if (r != 0) {
                if (r == -RK_ENOTFOUND && strcmp(ctx.config_path, "rekey.yaml") == 0)
                    rk_error_set(&ctx.err, RK_ENOTFOUND,
                                 "no configuration: ./rekey.yaml does not exist; pass -c FILE "
                                 "or set REKEY_CONFIG");
                rc = cli_fail(&ctx, r);
                goto out;
            }
        }
    }
    if (cmd->needs & (CLI_NEED_STORE | CLI_NEED_RAW_STORE)) {
        r = cli_open_store(&ctx, (cmd->needs & CLI_NEED_RAW_STORE) != 0);
        if (r != 0) {
            rc = cli_fail(&ctx, r);
            goto out;
        }
    }
    /* Recorded in the audit log before it runs and after (cli-audit.c). */
    if ((rc = cli_audit_begin(&ctx, npos, argv + i)) == CLI_OK)
        rc = cli_audit_end(&ctx, cmd->exec(&ctx, npos, argv + i));
out:
    cli_close(&ctx);
    /* A command that created a store file (operator init) and failed leaves nothing behind. */
    if (rc != CLI_OK && ctx.created_store[0] != '\0') {
        static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
        for (size_t k = 0; k < sizeof(sfx) / sizeof(sfx[0]); k++) {
            char f[sizeof(ctx.created_store) + 16];
            snprintf(f, sizeof(f), "%s%s", ctx.created_store, sfx[k]);
            unlink(f);
        }
    }
    return rc;
}
