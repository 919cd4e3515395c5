/* rekey lease list|lookup|renew|revoke: the leases of issued credentials (engine/leases.h,
 * docs/database.md). Local mode opens the store's lease records directly (revoke and renew reach
 * PostgreSQL through the database engine's configs); with REKEY_ADDR set it asks the server
 * (sys/leases/...). Lease ids and login names are not secrets; nothing here prints a password. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "engine/dbroles.h"
#include "engine/leases.h"
#include "inventory/inventory.h"
#include "util/parse.h"
#include "util/timeutil.h"

static const struct cli_opt lease_opts[] = {
    {"prefix", OPT_FLAG, NULL, "revoke every lease whose id starts with the argument"},
    {"force", OPT_FLAG, NULL, "with -prefix: drop the records even when a revocation fails"},
    {"increment", OPT_VALUE, "DURATION",
     "renew: the new lease duration from now (default: the "
     "role's ttl)"},
    {"format", OPT_VALUE, "FORMAT", "table (default) or json"},
    {NULL, 0, NULL, NULL},
};

/* A role of the configuration (as the server's routes-database.c finds it), so that local mode
 * renews and revokes the leases of YAML roles too. */
static int
local_role_lookup(void *arg, const char *name, struct db_role_def *out, struct rk_error *err)
{
    const struct inventory *inv = arg;

    for (size_t i = 0; inv != NULL && i < inv->nsecrets; i++) {
        const struct inv_secret *s = &inv->secrets[i];
        const char *role = inv_param(s, "role");
        if (strcmp(s->kind, "database") == 0 && role != NULL && strcmp(role, name) == 0)
            return db_role_from_entry(s, out, err);
    }
    return -RK_ENOTFOUND;
}

static int
open_local(struct cli_ctx *ctx, struct leases **m)
{
    struct lease_ops ops;
    int r;

    db_role_source_set(ctx->inv != NULL ? local_role_lookup : NULL, ctx->inv, ctx->kv);
    db_lease_ops(ctx->br, &ops);
    if ((r = leases_open(ctx->br, &ops, m, &ctx->err)) != 0)
        return r;
    if ((r = leases_load(*m, &ctx->err)) != 0) {
        leases_close(*m);
        *m = NULL;
    }
    return r;
}

/* Closes what open_local opened: the manager, the admin pools, the role source. */
static void
close_local(struct leases *m)
{
    leases_close(m);
    db_pools_close();
    db_role_source_set(NULL, NULL, NULL);
}

static void
print_lease(const struct lease_info *l, int64_t now)
{
    printf("id            %s\n", cli_esc(l->id));
    printf("login         %s\n", cli_esc(l->username));
    printf("database      %s\n", cli_esc(l->db));
    printf("role          %s\n", cli_esc(l->role));
    printf("issued        %lld\n", (long long)l->issued);
    printf("expires       %lld (in %llds)\n", (long long)l->expires,
           (long long)(l->expires > now ? l->expires - now : 0));
    printf("max expires   %lld\n", (long long)l->max_expires);
    printf("irrevocable   %s\n", l->irrevocable ? "yes" : "no");
    if (l->failures > 0)
        printf("failures      %d, last: %s\n", l->failures, cli_esc(l->last_error));
}

static int
list_cb(void *arg, const struct lease_info *l)
{
    int64_t now = *(int64_t *)arg;

    /* The login's name is only in the record (lookup shows it). */
    printf("%s\t%llds%s\n", cli_esc(l->id), (long long)(l->expires > now ? l->expires - now : 0),
           l->irrevocable ? "\tIRREVOCABLE" : "");
    return 0;
}

static int
remote(struct cli_ctx *ctx, const char *method, const char *path, json_t *body, json_t **resp)
{
    int r = client_request(ctx->remote, method, path, body, NULL, resp, &ctx->err);

    json_decref(body);
    return r;
}

static int
exec_list(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *prefix = argc > 0 ? argv[0] : "";
    int64_t now = time_now();
    struct leases *m = NULL;
    int r;

    if (ctx->remote != NULL) {
        char path[600];
        json_t *resp = NULL, *e;
        size_t i;
        snprintf(path, sizeof(path), "/v1/sys/leases/lookup/%s", prefix);
        if ((r = remote(ctx, "LIST", path, NULL, &resp)) != 0) {
            json_decref(resp);
            return r == -RK_ENOTFOUND ? CLI_OK : cli_fail(ctx, r);
        }
        json_array_foreach(json_object_get(client_data(resp), "keys"), i, e)
            printf("%s%s\n", cli_esc(prefix), cli_esc(json_string_value(e)));
        json_decref(resp);
        return CLI_OK;
    }
    if ((r = open_local(ctx, &m)) != 0)
        return cli_fail(ctx, r);
    leases_each(m, prefix, list_cb, &now);
    close_local(m);
    return CLI_OK;
}

static int
exec_lookup(struct cli_ctx *ctx, int argc, char **argv)
{
    struct lease_info l;
    struct leases *m = NULL;
    int r;

    (void)argc;
    if (ctx->remote != NULL) {
        json_t *resp = NULL;
        if ((r = remote(ctx, "PUT", "/v1/sys/leases/lookup",
                        json_pack("{s:s}", "lease_id", argv[0]), &resp)) == 0) {
            char *s = json_dumps(client_data(resp), JSON_INDENT(2));
            printf("%s\n", s != NULL ? s : "");
            free(s);
        }
        json_decref(resp);
        return r == 0 ? CLI_OK : cli_fail(ctx, r);
    }
    if ((r = open_local(ctx, &m)) != 0)
        return cli_fail(ctx, r);
    r = leases_lookup(m, argv[0], &l, &ctx->err);
    close_local(m);
    if (r != 0)
        return cli_fail(ctx, r);
    print_lease(&l, time_now());
    return CLI_OK;
}

static int
exec_renew(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *inc = cli_opt(ctx, "increment");
    int64_t increment = 0, now = time_now();
    struct lease_info l;
    struct leases *m = NULL;
    int r;

    (void)argc;
    if (inc != NULL && duration_parse(inc, strlen(inc), &increment, &ctx->err) != 0)
        return cli_usage_error(ctx, "-increment: %s", ctx->err.msg);
    if (ctx->remote != NULL) {
        json_t *resp = NULL;
        r = remote(ctx, "PUT", "/v1/sys/leases/renew",
                   json_pack("{s:s,s:I}", "lease_id", argv[0], "increment", (json_int_t)increment),
                   &resp);
        if (r == 0)
            printf("renewed %s: %lld s left\n", cli_esc(argv[0]),
                   (long long)json_integer_value(json_object_get(resp, "lease_duration")));
        json_decref(resp);
        return r == 0 ? CLI_OK : cli_fail(ctx, r);
    }
    if ((r = open_local(ctx, &m)) != 0)
        return cli_fail(ctx, r);
    if ((r = leases_lookup(m, argv[0], &l, &ctx->err)) == 0)
        r = leases_renew(m, argv[0], increment, db_role_default_ttl(ctx->br, l.role), 0, now, &l,
                         &ctx->err);
    close_local(m);
    if (r != 0)
        return cli_fail(ctx, r);
    printf("renewed %s: %lld s left\n", cli_esc(l.id), (long long)(l.expires - now));
    return CLI_OK;
}

static int
exec_revoke(struct cli_ctx *ctx, int argc, char **argv)
{
    int prefix = cli_opt(ctx, "prefix") != NULL, force = cli_opt(ctx, "force") != NULL;
    size_t ok = 0, bad = 0;
    struct leases *m = NULL;
    int r;

    (void)argc;
    if (force && !prefix)
        return cli_usage_error(ctx, "-force goes with -prefix");
    if (ctx->remote != NULL) {
        char path[600];
        if (prefix)
            snprintf(path, sizeof(path), "/v1/sys/leases/revoke-%s/%s", force ? "force" : "prefix",
                     argv[0]);
        r = remote(ctx, "PUT", prefix ? path : "/v1/sys/leases/revoke",
                   prefix ? NULL : json_pack("{s:s}", "lease_id", argv[0]), NULL);
        if (r != 0)
            return cli_fail(ctx, r);
        printf("revoked %s%s\n", cli_esc(argv[0]), prefix ? " (prefix)" : "");
        return CLI_OK;
    }
    if ((r = open_local(ctx, &m)) != 0)
        return cli_fail(ctx, r);
    if (prefix)
        r = leases_revoke_prefix(m, argv[0], force, &ok, &bad, &ctx->err);
    else if ((r = leases_revoke(m, argv[0], 0, &ctx->err)) == 0)
        ok = 1;
    close_local(m);
    db_pools_close();
    if (prefix)
        printf("%zu revoked, %zu failed\n", ok, bad);
    else if (r == 0)
        printf("revoked %s\n", cli_esc(argv[0]));
    return r == 0 ? CLI_OK : cli_fail(ctx, r);
}

#define LEASE_NEEDS (CLI_OPT_CONFIG | CLI_NEED_STORE | CLI_REMOTE_OK)

const struct cli_cmd cmd_lease_list = {
    .name = "lease list",
    .args = "[PREFIX]",
    .summary = "list the leases of issued credentials (id, login, time left)",
    .min_args = 0,
    .max_args = 1,
    .needs = LEASE_NEEDS,
    .opts = lease_opts,
    .exec = exec_list,
};
const struct cli_cmd cmd_lease_lookup = {
    .name = "lease lookup",
    .args = "LEASE_ID",
    .summary = "show a lease: its login, expiry, failures, irrevocable",
    .min_args = 1,
    .max_args = 1,
    .needs = LEASE_NEEDS,
    .opts = lease_opts,
    .exec = exec_lookup,
};
const struct cli_cmd cmd_lease_renew = {
    .name = "lease renew",
    .args = "LEASE_ID",
    .summary = "renew a lease (-increment DURATION from now, capped at its max_ttl)",
    .min_args = 1,
    .max_args = 1,
    .needs = LEASE_NEEDS,
    .opts = lease_opts,
    .exec = exec_renew,
};
const struct cli_cmd cmd_lease_revoke = {
    .name = "lease revoke",
    .args = "LEASE_ID | -prefix PREFIX",
    .summary = "revoke a lease now (also an irrevocable one), or every lease of a prefix",
    .min_args = 1,
    .max_args = 1,
    .needs = LEASE_NEEDS,
    .opts = lease_opts,
    .exec = exec_revoke,
};
