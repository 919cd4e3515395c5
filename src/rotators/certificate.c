/* certificate.c: kind "certificate" (planned: settings, defaults, check and lint rules, no
 * rotator yet): an X.509 certificate (fields `certificate`, `private_key`, `chain`) issued by
 * the internal CA or over ACME, renewed renew_before its expiry. */
#include <stddef.h>
#include <string.h>

#include "rotators/rotator.h"
#include "util/parse.h"

static const struct inv_setting certificate_settings[] = {
    {.name = "common_name", .type = IS_STRING, .flags = IS_REQUIRED, .help = "the subject's CN"},
    {.name = "alt_names", .type = IS_LIST, .help = "subject alternative names"},
    {.name = "ttl", .type = IS_DURATION, .def = "90d", .help = "the certificate's lifetime"},
    {.name = "renew_before",
     .type = IS_DURATION,
     .def = "30d",
     .help = "how long before expiry it is renewed"},
    {.name = "issuer",
     .type = IS_ENUM,
     .def = "internal",
     .choices = "internal|acme",
     .help = "who signs it"},
    {.name = "acme_directory", .type = IS_URL, .help = "the ACME directory URL"},
    {0},
};

static int
certificate_defaults(struct inv_secret *s, struct rk_error *err)
{
    int64_t ttl = 0, rb = 0;

    if (s->every != 0)
        return 0;
    /* No schedule given: renew when the renewal window opens. */
    inv_param_duration(s, "ttl", 0, &ttl);
    inv_param_duration(s, "renew_before", 0, &rb);
    if (ttl <= rb)
        return rk_error_set(err, RK_ECONFIG,
                            "renew_before must be shorter than ttl when every is not set");
    s->every = ttl - rb;
    return 0;
}

static int
certificate_check(const struct inv_secret *s, struct rk_error *err)
{
    const char *issuer = inv_param(s, "issuer");

    if (issuer != NULL && strcmp(issuer, "acme") == 0 && inv_param(s, "acme_directory") == NULL)
        return rk_error_set(err, RK_ECONFIG,
                            "missing required key 'acme_directory' (the ACME directory URL, "
                            "needed with issuer: acme)");
    return 0;
}

static void
certificate_lint(const struct inv_secret *s, const struct inventory *inv, inv_lint_report_fn report,
                 void *arg)
{
    int64_t ttl = 0, rb = 0;
    char a[32], b[32];

    (void)inv;
    inv_param_duration(s, "ttl", 0, &ttl);
    inv_param_duration(s, "renew_before", 0, &rb);
    if (ttl > 0 && rb >= ttl) {
        duration_format(rb, a, sizeof(a));
        duration_format(ttl, b, sizeof(b));
        report(arg, "error",
               "renew_before %s is not shorter than ttl %s: the certificate would be renewed as "
               "soon as it is issued",
               a, b);
    } else if (ttl > 0 && s->every > ttl - rb) {
        duration_format(s->every, a, sizeof(a));
        duration_format(ttl - rb, b, sizeof(b));
        report(arg, "error",
               "every %s is longer than ttl - renew_before = %s: renewal would come %s", a, b,
               s->every >= ttl ? "after the certificate expires"
                               : "later than the renew_before window allows");
    }
}

const struct rotator_ops rotator_certificate = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "certificate",
    .settings = certificate_settings,
    .default_field = "certificate",
    .fixed_field = 1,
    .defaults = certificate_defaults,
    .check = certificate_check,
    .lint = certificate_lint,
};
