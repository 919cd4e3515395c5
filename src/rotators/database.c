/* database.c: kind "database" (planned: settings, defaults and lint rules, no rotator yet):
 * dynamic PostgreSQL credentials, a login role per lease (fields `username` and `password`),
 * created with creation_statements and dropped with revocation_statements. */
#include <stddef.h>
#include <string.h>

#include "rotators/rotator.h"
#include "util/parse.h"

static const struct inv_setting database_settings[] = {
    {.name = "connection",
     .type = IS_STRING,
     .flags = IS_REQUIRED,
     .help = "a libpq connection string for the admin role"},
    {.name = "role",
     .type = IS_STRING,
     .help = "the role's name (default: the path's last segment)"},
    {.name = "ttl", .type = IS_DURATION, .def = "1h", .help = "how long a lease lasts"},
    {.name = "max_ttl",
     .type = IS_DURATION,
     .def = "24h",
     .help = "the longest a lease is renewed"},
    {.name = "creation_statements",
     .type = IS_STRING,
     .help = "SQL run to create a login ({{name}}, {{password}}, {{expiration}})"},
    {.name = "revocation_statements", .type = IS_STRING, .help = "SQL run to drop a login"},
    {0},
};

static int
database_defaults(struct inv_secret *s, struct rk_error *err)
{
    const char *slash;

    if (inv_param(s, "role") != NULL)
        return 0;
    slash = strrchr(s->path, '/');
    if (inv_param_set(s, "role", slash != NULL ? slash + 1 : s->path) != 0)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    return 0;
}

static void
database_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
              void *arg)
{
    int64_t ttl = 0, max_ttl = 0;
    char a[32], b[32];

    inv_param_duration(s, "ttl", 0, &ttl);
    inv_param_duration(s, "max_ttl", 0, &max_ttl);
    duration_format(ttl, b, sizeof(b));
    if (ttl > 0 && max_ttl > 0 && max_ttl < ttl) {
        duration_format(max_ttl, a, sizeof(a));
        report(arg, "error", "max_ttl %s is shorter than ttl %s", a, b);
    }
    /* A lease is renewed by the scheduler, which wakes every check_interval: a lease shorter
     * than two intervals can lapse between two checks. */
    if (ttl > 0 && inv != NULL && inv->check_interval > 0 && ttl / 2 < inv->check_interval) {
        duration_format(inv->check_interval, a, sizeof(a));
        report(arg, "warning",
               "lease ttl %s is shorter than twice the check interval %s; leases may expire "
               "before they are renewed",
               b, a);
    }
}

const struct rotator_ops rotator_database = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "database",
    .settings = database_settings,
    .default_field = "password",
    .fixed_field = 1,
    .defaults = database_defaults,
    .lint = database_lint,
};
