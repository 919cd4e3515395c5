/* throttle.h: failed-authentication throttling, one token bucket per client address (IPv4, or
 * an IPv6 /64), in a bounded table (least recently seen evicted) keyed by a random SipHash key so
 * clients cannot aim at one chain. A failure takes a token; a client with less than one is
 * throttled until the bucket refills. Only failing attempts are counted: a request with a valid
 * token is served even from a throttled address (the server's rule, docs/server.md). */
#ifndef REKEY_API_THROTTLE_H
#define REKEY_API_THROTTLE_H

struct throttle;

/* A table of slots clients (0 = 4096), each allowed burst failures (0 = 10) refilled at rate per
 * second (0 = 1). Returns 0, -RK_ENOMEM or -RK_EINTERNAL (no randomness). */
int throttle_new(unsigned burst, unsigned rate, unsigned slots, struct throttle **out);

/* Accepts NULL. */
void throttle_free(struct throttle *t);

/* Counts a failed authentication from ip; 1 when the client is now throttled. Logs one line. */
int throttle_fail(struct throttle *t, const char *ip);

/* 1 when ip is throttled now (logged at most once a second per client). */
int throttle_blocked(struct throttle *t, const char *ip);

#endif
