/* backoff.c: see backoff.h. */
#include "util/backoff.h"

#include <openssl/rand.h>

#define BACKOFF_MAX_BASE 60   /* seconds */
#define BACKOFF_MAX_CAP 21600 /* 6 h */
#define BACKOFF_JITTER_PCT 10

void
backoff_policy_for(int64_t every, struct backoff_policy *out)
{
    int64_t base = every / 10, cap = every > 0 ? every : BACKOFF_MAX_CAP;

    if (base > BACKOFF_MAX_BASE)
        base = BACKOFF_MAX_BASE;
    if (base < 1)
        base = 1;
    if (cap > BACKOFF_MAX_CAP)
        cap = BACKOFF_MAX_CAP;
    if (cap < base)
        cap = base;
    out->base = base;
    out->factor = 2;
    out->cap = cap;
    out->jitter_pct = BACKOFF_JITTER_PCT;
}

/* A uniform number in [0, n] from RAND_bytes; 0 when it fails (no jitter is safe). */
static int64_t
rand_upto(int64_t n)
{
    uint64_t v = 0;

    if (n <= 0 || RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
        return 0;
    return (int64_t)(v % ((uint64_t)n + 1));
}

int64_t
backoff_delay(const struct backoff_policy *p, int failures)
{
    int64_t base = p->base < 1 ? 1 : p->base, cap = p->cap < base ? base : p->cap, d = base;
    int64_t factor = p->factor < 1 ? 1 : p->factor, j;

    /* Stop multiplying once the cap is reached: no overflow however many failures. */
    for (int i = 1; i < failures && d < cap; i++)
        d = d > cap / factor ? cap : d * factor;
    if (d > cap)
        d = cap;
    if (p->jitter_pct > 0 && p->jitter_pct <= 100) {
        j = d / 100 * p->jitter_pct + d % 100 * p->jitter_pct / 100; /* no overflow */
        d -= rand_upto(j);
    }
    return d < 1 ? 1 : d;
}

int64_t
backoff_retry_delay(int64_t every, int failures)
{
    struct backoff_policy p;

    backoff_policy_for(every, &p);
    return backoff_delay(&p, failures);
}
