/* provider-key.c: kind "provider-key" (planned: settings, defaults and lint rules, no rotator
 * yet): the API key of an LLM provider (OpenAI, Anthropic, xAI), created by a person at the
 * provider's console or through its admin API when admin_key_path names an admin key.
 *
 * Key formats are checked loosely, by prefix and character set, never by an exact length: real
 * OpenAI keys are sk-proj-… / sk-svcacct-… with '-' and '_', Anthropic's sk-ant-api03-…, xAI's
 * xai-… (DESIGN.md §1). */
#include <stddef.h>
#include <string.h>

#include "rotators/rotator.h"
#include "util/parse.h"

/* One row per provider: its default pattern and API. The `provider` choices below list the
 * same names. */
static const struct {
    const char *provider, *pattern, *base_url;
} providers[] = {
    {"openai", "^sk-([a-z]+-)?[A-Za-z0-9_-]{20,}$", "https://api.openai.com/v1"},
    {"anthropic", "^sk-ant-[A-Za-z0-9_-]{20,}$", "https://api.anthropic.com/v1"},
    {"xai", "^xai-[A-Za-z0-9_-]{20,}$", "https://api.x.ai/v1"},
};

static const struct inv_setting provider_key_settings[] = {
    {.name = "provider",
     .type = IS_ENUM,
     .flags = IS_REQUIRED,
     .choices = "openai|anthropic|xai",
     .help = "the provider"},
    {.name = "pattern",
     .type = IS_REGEX,
     .help = "a POSIX ERE a new key must match (default: the provider's prefix and characters)",
     .offset = offsetof(struct inv_secret, pattern)},
    {.name = "base_url", .type = IS_URL, .help = "the provider's API (default: its public one)"},
    {.name = "admin_key_path",
     .type = IS_SECRET_PATH,
     .help = "the secret holding an admin key that mints new keys"},
    {.name = "min_interval",
     .type = IS_DURATION,
     .help = "the shortest schedule the provider allows"},
    {0},
};

static int
provider_key_defaults(struct inv_secret *s, struct rk_error *err)
{
    const char *prov = inv_param(s, "provider");

    for (size_t i = 0; prov != NULL && i < sizeof(providers) / sizeof(providers[0]); i++) {
        if (strcmp(prov, providers[i].provider) != 0)
            continue;
        if (s->pattern == NULL && (s->pattern = strdup(providers[i].pattern)) == NULL)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        if (inv_param(s, "base_url") == NULL &&
            inv_param_set(s, "base_url", providers[i].base_url) != 0)
            return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    return 0;
}

static void
provider_key_lint(const struct inv_secret *s, const struct inventory *inv,
                  inv_lint_report_fn report, void *arg)
{
    int64_t min_iv = 0;
    char a[32], b[32];

    (void)inv;
    if (inv_param_duration(s, "min_interval", 0, &min_iv) == 0 && min_iv > 0 && s->every > 0 &&
        s->every < min_iv) {
        duration_format(s->every, a, sizeof(a));
        duration_format(min_iv, b, sizeof(b));
        report(arg, "error", "every %s is shorter than the provider's min_interval %s", a, b);
    }
    if (s->auto_rotate && inv_param(s, "admin_key_path") == NULL)
        report(arg, "error",
               "auto: true needs admin_key_path (an admin key to mint new keys with); without "
               "one a person rotates this key");
}

const struct rotator_ops rotator_provider_key = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "provider-key",
    .settings = provider_key_settings,
    .default_field = "api_key",
    .defaults = provider_key_defaults,
    .lint = provider_key_lint,
};
