/* netaddr.h: IP addresses and CIDR ranges given as text: the server's trusted proxies
 * (server.trusted_proxies) and the client addresses a proxy reports in X-Forwarded-For.
 *
 * IPv4 is kept as IPv4-mapped IPv6 (::ffff:a.b.c.d), so "10.0.0.0/8" and "::ffff:10.0.0.0/104"
 * are the same range and a mapped peer matches an IPv4 entry. Never holds a secret. */
#ifndef REKEY_NETADDR_H
#define REKEY_NETADDR_H

#include <stddef.h>

#include "util/err.h"

/* Long enough for any address netaddr_format writes, with its NUL. */
#define NETADDR_TEXT_MAX 46

struct netaddr {
    unsigned char a[16]; /* IPv6 order; IPv4 as ::ffff:a.b.c.d */
};

struct netaddr_cidr {
    struct netaddr net; /* host bits cleared */
    unsigned bits;      /* prefix length in the 128-bit space (IPv4 /n is 96 + n) */
};

/* Parses one address, s[0..len) (need not be NUL-terminated): "192.0.2.7", "2001:db8::1",
 * "[2001:db8::1]", and, as some proxies write them, "192.0.2.7:5678" and "[2001:db8::1]:443"
 * (the port is ignored). Returns 0 or -RK_EINVAL. */
int netaddr_parse(const char *s, size_t len, struct netaddr *out);

/* Parses "ADDR" (a single host) or "ADDR/BITS" (0..32 for IPv4, 0..128 for IPv6) without
 * brackets or port, s[0..len); host bits set in ADDR are cleared ("10.1.2.3/8" is 10.0.0.0/8).
 * Returns 0 or -RK_EINVAL. */
int netaddr_cidr_parse(const char *s, size_t len, struct netaddr_cidr *out);

/* 1 when a lies in c, else 0. */
int netaddr_cidr_contains(const struct netaddr_cidr *c, const struct netaddr *a);

/* Parses a comma-separated list of netaddr_cidr_parse entries (spaces around each allowed;
 * NULL or "" is the empty list). Returns 0 with *out (free with free; NULL when empty) and *n,
 * or -RK_EINVAL naming the bad entry in err, or -RK_ENOMEM. */
int netaddr_cidr_list_parse(const char *list, struct netaddr_cidr **out, size_t *n,
                            struct rk_error *err);

/* Writes a as text ("192.0.2.7" for a mapped IPv4 address, "2001:db8::1" otherwise) into
 * buf[0..len), len >= NETADDR_TEXT_MAX. */
void netaddr_format(const struct netaddr *a, char *buf, size_t len);

#endif
