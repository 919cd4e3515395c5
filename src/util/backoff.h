/* backoff.h: the one retry policy of rekey: an exponential backoff with a cap and a jitter.
 *
 * A failed or unavailable rotation is retried after base, base*factor, base*factor^2, ... up to
 * cap; jitter takes up to jitter_pct percent off each delay (random, from RAND_bytes) so that
 * many entries that failed together do not retry together. The engine (engine/rotation.c, the
 * next_retry it records) and the daemon (engine/daemon.c, its RETRY timers) both ask here. */
#ifndef REKEY_BACKOFF_H
#define REKEY_BACKOFF_H

#include <stdint.h>

struct backoff_policy {
    int64_t base;   /* the first delay, seconds (>= 1) */
    int64_t factor; /* growth per further failure (>= 1) */
    int64_t cap;    /* the largest delay, seconds (>= base) */
    int jitter_pct; /* 0..100: up to this percent is taken off each delay at random */
};

/* The policy for an entry rotated every `every` seconds: base = min(60 s, max(1 s, every/10)),
 * factor 2, cap = min(6 h, every) (6 h when every <= 0), jitter 10 %. */
void backoff_policy_for(int64_t every, struct backoff_policy *out);

/* The delay in seconds before the next try after `failures` consecutive failures (values < 1
 * count as 1): min(cap, base * factor^(failures-1)), less the jitter; never below 1 nor above
 * cap. A jitter of less than a second is none (delays of under 10 s at 10 % are exact). */
int64_t backoff_delay(const struct backoff_policy *p, int failures);

/* backoff_delay(backoff_policy_for(every), failures): what the engine and the daemon use. */
int64_t backoff_retry_delay(int64_t every, int failures);

#endif
