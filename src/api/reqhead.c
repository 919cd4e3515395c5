/* reqhead.c: the request head, read before routing: the framing checks (bytes hidden behind a
 * NUL in the target or a header, Content-Length and Transfer-Encoding together or repeated) and
 * the client address, walked back through X-Forwarded-For over trusted proxies only. */
#include "api/http-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/envelope.h"
#include "api/status.h"
#include "util/events.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/netaddr.h"
#include "util/parse.h"
#include "util/secret.h"
#include "util/timeutil.h"

/* ---------------------------------------------------------------------------------------- */
/* Request framing and the client address, read from the request head before routing.
 *
 * libmicrohttpd 0.9 parses the head in place: the method, the request target (as the URI log
 * callback sees it, before decoding), the version and every header name and value stay in one
 * buffer, NUL-terminated where the separators were, in the order they arrived; the head is
 * MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE bytes from the method. It measures each string with
 * strlen (MHD_lookup_connection_value_n reports the same cut length), so a NUL byte sent inside
 * the target or a value hides what follows: "/v1/secret/data/a\0x" is served as ".../a" and
 * "X-Vault-Token: T\0junk" authenticates as T. What lies between the end of one string and the
 * start of the next must therefore be only what the parser replaced or skipped: the space after
 * the method (and more spaces), the one space before the version, a colon and blanks after a
 * name, a line end (CR LF or LF: one or two NULs now), the empty line closing the head. Any
 * other byte there was hidden behind a NUL. The walk also refuses a layout it does not know
 * (a string outside the head or out of order, as a folded header line gives), so a parser
 * that differs fails closed; http_server_start turns the check off, with a warning, for a
 * libmicrohttpd whose parser it was not written against (see docs/server.md). */

/* 1 when p lies in the head at or after the previous string's end. */
static int
head_in_order(const struct head_walk *w, const char *p)
{
    uintptr_t u = (uintptr_t)p;
    return p != NULL && u >= (uintptr_t)w->prev && u <= (uintptr_t)w->end;
}

/* 1 when [from, to) holds min..max bytes, every one a NUL (a replaced line end). */
static int
head_nuls(const char *from, const char *to, size_t min, size_t max)
{
    size_t n = (size_t)((uintptr_t)to - (uintptr_t)from);

    if ((uintptr_t)to < (uintptr_t)from || n < min || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (from[i] != '\0')
            return 0;
    return 1;
}

/* 1 when [from, to) is a replaced separator (one NUL) followed by blanks from set. */
static int
head_sep(const char *from, const char *to, const char *set)
{
    size_t n = (size_t)((uintptr_t)to - (uintptr_t)from);

    if ((uintptr_t)to <= (uintptr_t)from || from[0] != '\0')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (from[i] == '\0' || strchr(set, from[i]) == NULL)
            return 0;
    return 1;
}

static enum MHD_Result
head_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t klen, const char *value,
            size_t vlen)
{
    struct head_walk *w = cls;

    (void)kind;
    if (value == NULL)
        value = "";
    if (w->check && !w->hidden) {
        /* the line end before this line, the name, ':' and blanks, the value */
        if (!head_in_order(w, key) || !head_nuls(w->prev, key, 1, 2))
            w->hidden = 1;
        else if (!head_in_order(w, value) || !head_sep(key + klen, value, " \t"))
            w->hidden = 1;
        else
            w->prev = value + vlen;
    }
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        w->ncl++;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        w->nte++;
        w->te = value;
    } else if (strcasecmp(key, "X-Forwarded-For") == 0) {
        w->xff[w->nxff % XFF_HEADERS_MAX] = value;
        w->nxff++;
    }
    return MHD_YES;
}

/* Walks the head: returns why its framing is refused, or NULL; fills w for http_client_address. */
const char *
http_head_check(struct http_server *s, struct conn *c, struct MHD_Connection *mc,
                const char *method, const char *url, const char *version, struct head_walk *w)
{
    const union MHD_ConnectionInfo *hs;

    memset(w, 0, sizeof(*w));
    w->check = s->head_check;
    if (w->check) {
        hs = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
        w->end = hs != NULL ? method + hs->header_size : NULL;
        w->prev = method + strlen(method);
        /* "GET", a space (now a NUL) and maybe more spaces, the target, one space (now a
         * NUL), the version */
        if (w->end == NULL || c->raw_uri != url || !head_in_order(w, url) ||
            !head_sep(w->prev, url, " ") || version == NULL || !head_in_order(w, version) ||
            (uintptr_t)url + c->raw_uri_len + 1 != (uintptr_t)version)
            w->hidden = 1;
        else
            w->prev = version + strlen(version);
    }
    MHD_get_connection_values_n(mc, MHD_HEADER_KIND, head_header, w);
    /* the last line end and the empty line: two to four NULs up to the end of the head */
    if (w->check && !w->hidden && !head_nuls(w->prev, w->end, 2, 4))
        w->hidden = 1;
    if (w->hidden)
        return "a NUL byte in the request line or a header, or a folded header line";
    if (w->nte > 0 && w->ncl > 0)
        return "both Content-Length and Transfer-Encoding";
    if (w->ncl > 1)
        return "more than one Content-Length";
    if (w->nte > 1)
        return "more than one Transfer-Encoding";
    /* exactly what MHD decodes as chunked; anything else it would read until the close */
    if (w->nte == 1 && strcasecmp(w->te, "chunked") != 0)
        return "unsupported Transfer-Encoding (only chunked is accepted)";
    return NULL;
}

static int
proxy_trusted(const struct http_server *s, const struct netaddr *a)
{
    for (size_t i = 0; i < s->nproxies; i++)
        if (netaddr_cidr_contains(&s->proxies[i], a))
            return 1;
    return 0;
}

/* The client address: the peer, unless the peer is a trusted proxy; then, walking
 * X-Forwarded-For from the right (each proxy appends the address it was connected from), the
 * first address that is not a trusted proxy. An entry that does not parse ends the walk at the
 * last trusted hop: the proxy that wrote it is then taken as the client. */
void
http_client_address(struct http_server *s, struct http_request *req, const struct head_walk *w)
{
    const struct conn *c = req->conn;
    struct netaddr cur = c->peer, a;
    unsigned hops = 0;

    if (s->nproxies == 0 || !c->peer_ok || w->nxff == 0)
        return;
    for (unsigned k = w->nxff; k > 0 && w->nxff - k < XFF_HEADERS_MAX; k--) {
        const char *v = w->xff[(k - 1) % XFF_HEADERS_MAX], *e = v + strlen(v);
        for (;;) {
            const char *b = e, *eb;
            if (!proxy_trusted(s, &cur) || hops++ >= XFF_HOPS_MAX)
                goto done;
            while (b > v && b[-1] != ',')
                b--;
            eb = e;
            while (b < eb && (*b == ' ' || *b == '\t'))
                b++;
            while (eb > b && (eb[-1] == ' ' || eb[-1] == '\t'))
                eb--;
            if (netaddr_parse(b, (size_t)(eb - b), &a) != 0)
                goto done;
            cur = a;
            while (b > v && b[-1] != ',')
                b--;
            if (b == v)
                break;
            e = b - 1;
        }
    }
done:
    if (memcmp(&cur, &c->peer, sizeof(cur)) != 0) {
        netaddr_format(&cur, req->fwd_ip, sizeof(req->fwd_ip));
        req->ip = req->fwd_ip;
    }
}
