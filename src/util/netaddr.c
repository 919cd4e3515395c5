/* netaddr.c: addresses and CIDR ranges as text (see netaddr.h). inet_pton does the parsing;
 * this file only strips what proxies add around an address and keeps one representation. */
#include "util/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "util/parse.h"

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses a bare address (no brackets, no port) held in a NUL-terminated buffer. Sets *v4 when
 * it was written as IPv4. */
static int
parse_bare(const char *txt, struct netaddr *out, int *v4)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (inet_pton(AF_INET, txt, &a4) == 1) {
        memcpy(out->a, v4_mapped, 12);
        memcpy(out->a + 12, &a4, 4);
        *v4 = 1;
        return 0;
    }
    if (inet_pton(AF_INET6, txt, &a6) == 1) {
        memcpy(out->a, &a6, 16);
        *v4 = 0;
        return 0;
    }
    return -RK_EINVAL;
}

int
netaddr_parse(const char *s, size_t len, struct netaddr *out)
{
    char buf[NETADDR_TEXT_MAX];
    const char *end = s + len, *colon;
    int v4;

    if (len == 0)
        return -RK_EINVAL;
    if (s[0] == '[') {
        /* "[v6]" or "[v6]:port" */
        const char *rb = memchr(s, ']', len);
        if (rb == NULL || (rb + 1 != end && rb[1] != ':'))
            return -RK_EINVAL;
        s++;
        len = (size_t)(rb - s);
    } else if ((colon = memchr(s, ':', len)) != NULL &&
               memchr(colon + 1, ':', (size_t)(end - colon - 1)) == NULL) {
        /* exactly one colon: "v4:port" (an IPv6 address has at least two) */
        len = (size_t)(colon - s);
    }
    if (len == 0 || len >= sizeof(buf))
        return -RK_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return parse_bare(buf, out, &v4);
}

int
netaddr_cidr_parse(const char *s, size_t len, struct netaddr_cidr *out)
{
    char buf[NETADDR_TEXT_MAX];
    const char *slash = memchr(s, '/', len);
    size_t alen = slash != NULL ? (size_t)(slash - s) : len;
    int64_t bits = -1;
    int v4;

    if (alen == 0 || alen >= sizeof(buf))
        return -RK_EINVAL;
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (parse_bare(buf, &out->net, &v4) != 0)
        return -RK_EINVAL;
    if (slash != NULL) {
        size_t blen = len - alen - 1;
        if (blen == 0 || blen > 3)
            return -RK_EINVAL;
        memcpy(buf, slash + 1, blen);
        buf[blen] = '\0';
        if (parse_int64(buf, 0, v4 ? 32 : 128, &bits) != 0)
            return -RK_EINVAL;
    }
    out->bits = bits < 0 ? 128 : (unsigned)bits + (v4 ? 96 : 0);
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = out->bits >= 8 * (i + 1) ? 8 : out->bits > 8 * i ? out->bits - 8 * i : 0;
        out->net.a[i] &= (unsigned char)(0xff00 >> keep);
    }
    return 0;
}

int
netaddr_cidr_contains(const struct netaddr_cidr *c, const struct netaddr *a)
{
    for (unsigned i = 0; i < 16 && 8 * i < c->bits; i++) {
        unsigned keep = c->bits >= 8 * (i + 1) ? 8 : c->bits - 8 * i;
        unsigned char mask = (unsigned char)(0xff00 >> keep);
        if ((a->a[i] & mask) != c->net.a[i])
            return 0;
    }
    return 1;
}

int
netaddr_cidr_list_parse(const char *list, struct netaddr_cidr **out, size_t *n,
                        struct rk_error *err)
{
    struct netaddr_cidr *v = NULL;
    size_t k = 0, cap = 0;
    const char *p = list;

    *out = NULL;
    *n = 0;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        const char *e = comma != NULL ? comma : p + strlen(p);
        const char *b = p;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (k == cap) {
            struct netaddr_cidr *nv;
            cap = cap ? cap * 2 : 4;
            if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
                free(v);
                return rk_error_set(err, RK_ENOMEM, "out of memory");
            }
            v = nv;
        }
        if (netaddr_cidr_parse(b, (size_t)(e - b), &v[k]) != 0) {
            free(v);
            return rk_error_set(err, RK_EINVAL,
                                "'%.*s' is not an IP address or CIDR range (such as 10.0.0.0/8 "
                                "or 2001:db8::/32)",
                                (int)(e - b > 64 ? 64 : e - b), b);
        }
        k++;
        p = comma != NULL ? comma + 1 : NULL;
    }
    *out = v;
    *n = k;
    return 0;
}

void
netaddr_format(const struct netaddr *a, char *buf, size_t len)
{
    if (memcmp(a->a, v4_mapped, 12) == 0)
        inet_ntop(AF_INET, a->a + 12, buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, a->a, buf, (socklen_t)len);
}
