/* http-listen.c: the HTTP server's MHD daemons (one, two for a moment during a TLS reload: start,
 * drain, free), reading and checking the TLS certificate and key, and opening the listening
 * socket. */
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
/* Daemons */

static void
inst_free(struct inst *in)
{
    if (in == NULL)
        return;
    freezero(in->key, in->key_len);
    free(in->cert);
    free(in);
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Reads the PEM pair and checks that it parses and that the key matches the certificate. */
static int
tls_load(struct http_server *s, struct inst *in, struct rk_error *err)
{
    BIO *cb = NULL, *kb = NULL;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    int rc;

    if ((rc = fs_read_all(s->cert_file, TLS_FILE_MAX, &in->cert, &in->cert_len, err)) != 0) {
        rk_error_prefix(err, "reading tls_cert_file %s", s->cert_file);
        rc = -RK_EIO;
        goto out;
    }
    if ((rc = fs_read_all(s->key_file, TLS_FILE_MAX, &in->key, &in->key_len, err)) != 0) {
        rk_error_prefix(err, "reading tls_key_file %s", s->key_file);
        rc = -RK_EIO;
        goto out;
    }
    rc = -RK_ECONFIG;
    if ((cb = BIO_new_mem_buf(in->cert, (int)in->cert_len)) == NULL ||
        (kb = BIO_new_mem_buf(in->key, (int)in->key_len)) == NULL) {
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((x = PEM_read_bio_X509(cb, NULL, no_passphrase, NULL)) == NULL) {
        rk_error_set(err, RK_ECONFIG, "tls_cert_file %s holds no PEM certificate", s->cert_file);
        goto out;
    }
    if ((k = PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL)) == NULL) {
        rk_error_set(err, RK_ECONFIG, "tls_key_file %s holds no unencrypted PEM private key",
                     s->key_file);
        goto out;
    }
    if (X509_check_private_key(x, k) != 1) {
        rk_error_set(err, RK_ECONFIG, "tls_key_file %s does not match tls_cert_file %s",
                     s->key_file, s->cert_file);
        goto out;
    }
    rc = 0;
out:
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

int
http_inst_start(struct http_server *s, struct inst **out, struct rk_error *err)
{
    struct inst *in = calloc(1, sizeof(*in));
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
        MHD_ALLOW_SUSPEND_RESUME; /* requests wait for the audit log suspended (http.c) */
    int rc;

    *out = NULL;
    if (in == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    in->srv = s;
    in->suspendable = 1;
    if (s->cert_file != NULL) {
        if ((rc = tls_load(s, in, err)) != 0)
            goto fail;
        flags |= MHD_USE_TLS;
    }
    if (s->ipv6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, in->cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, in->key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0,
         (void *)(uintptr_t) "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"},
        {MHD_OPTION_END, 0, NULL},
    };
    s->mhd_msg[0] = '\0';
    in->d = MHD_start_daemon(
        flags, 0, NULL, NULL, http_on_access, in, MHD_OPTION_EXTERNAL_LOGGER, http_on_mhd_log, in,
        MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_THREAD_POOL_SIZE, s->threads,
        MHD_OPTION_CONNECTION_LIMIT, s->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        s->per_ip, MHD_OPTION_CONNECTION_TIMEOUT, s->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        s->max_header, MHD_OPTION_NOTIFY_COMPLETED, http_on_completed, in,
        MHD_OPTION_NOTIFY_CONNECTION, http_on_connection, in, MHD_OPTION_URI_LOG_CALLBACK,
        http_on_uri, in, MHD_OPTION_ARRAY, in->cert != NULL ? tls_opts : &tls_opts[3],
        MHD_OPTION_END);
    if (in->d == NULL) {
        rc =
            rk_error_set(err, in->cert ? RK_ECONFIG : RK_EINTERNAL,
                         "cannot start the HTTP daemon%s%s", s->mhd_msg[0] ? ": " : "", s->mhd_msg);
        goto fail;
    }
    *out = in;
    return 0;
fail:
    inst_free(in);
    return rc;
}

/* Stops accepting, waits for requests in progress (up to drain_ms), then stops the daemon.
 * The listening socket stays open: it belongs to the server. */
void
http_inst_drain(struct http_server *s, struct inst *in)
{
    int64_t until = time_mono_ms() + s->drain_ms;
    struct timespec ts = {0, 5 * 1000000L};

    if (in == NULL)
        return;
    atomic_store(&in->draining, 1);
    (void)MHD_quiesce_daemon(in->d);
    while (atomic_load(&in->inflight) > 0 && time_mono_ms() < until)
        nanosleep(&ts, NULL);
    if (atomic_load(&in->inflight) > 0)
        log_warn("http: %d request(s) still running after %ums; closing them",
                 atomic_load(&in->inflight), s->drain_ms);
    /* A connection suspended while its audit lines are fsynced is resumed by the audit log's
     * writer when the disk answers: libmicrohttpd cannot stop with one suspended (it aborts),
     * and the writer would then resume a freed connection. So those are waited for. */
    for (int64_t next = time_mono_ms() + 10000; atomic_load(&in->suspended) > 0;) {
        if (time_mono_ms() >= next) {
            log_warn("http: waiting for the audit log to write the lines of %d request(s)",
                     atomic_load(&in->suspended));
            next = time_mono_ms() + 10000;
        }
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(in->d);
    inst_free(in);
}

/* ---------------------------------------------------------------------------------------- */
/* Listener */

int
http_listen_open(struct http_server *s, const char *addr, int tls, int tls_disable,
                 struct rk_error *err)
{
    char host[64];
    const char *colon, *hp = addr;
    size_t hlen;
    int64_t port;
    struct sockaddr_storage ss;
    socklen_t sl;
    int loopback, one = 1, fd = -1;

    memset(&ss, 0, sizeof(ss));
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':')
            goto bad;
        hp = addr + 1;
        hlen = (size_t)(end - hp);
        colon = end + 1;
    } else {
        if ((colon = strrchr(addr, ':')) == NULL)
            goto bad;
        hlen = (size_t)(colon - addr);
    }
    if (hlen == 0 || hlen >= sizeof(host) || parse_int64(colon + 1, 0, 65535, &port) != 0)
        goto bad;
    memcpy(host, hp, hlen);
    host[hlen] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (addr[0] != '[' && inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
        loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    } else if (addr[0] == '[' && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
        loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
        s->ipv6 = 1;
    } else {
        goto bad;
    }
    if (!loopback && !tls && !tls_disable)
        return rk_error_set(err, RK_ECONFIG,
                            "refusing to serve plain HTTP on the non-loopback address %s: set "
                            "server.tls_cert and server.tls_key, or server.tls_disable: true if "
                            "the network is trusted",
                            addr);
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (s->ipv6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return rk_error_set(err, RK_EIO, "cannot listen on %s: %s", addr, strerror(e));
    }
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        s->port = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
    s->listen_fd = fd;
    return 0;
bad:
    return rk_error_set(err, RK_ECONFIG,
                        "listen address '%s' is not IPV4:PORT, [IPV6]:PORT or localhost:PORT",
                        addr);
}
