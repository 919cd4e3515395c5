/* hook-tls.c: hook kind `tls`: connects to a consumer's TLS address and passes only when the
 * certificate it presents is the rotation's new one (same serial and issuer as the version's
 * `certificate` field). Put in an entry's reload list after the hook that restarts the consumer,
 * with `wait: {interval, timeout}` so it polls until the consumer has reloaded; when the wait
 * runs out with the old certificate still served, the hook fails and the engine undoes the
 * rotation (re-renders the old files, reloads again).
 *
 * The peer's chain is not verified here (the rotator's test step proved the chain): this hook
 * asks only "which certificate is served". It reads the certificate, never a private key; its
 * messages carry serials and the address only. Connects with a timeout; loopback or not, the
 * address is whatever the inventory names. */
#include "hooks/hook.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <fcntl.h>

#include "util/log.h"

#define HOST_MAX 256
#define TPL_MAX 200
#define SERIAL_MAX 80

/* x's serial in uppercase hex, as `openssl x509 -noout -serial` shows it. */
static void
serial_of(const X509 *x, char *out, size_t len)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

    snprintf(out, len, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

/* Splits "host:port" or "[v6]:port" into host and port. Returns 0 or -1. */
static int
split_address(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon;
    size_t n;

    if (addr == NULL || (colon = strrchr(addr, ':')) == NULL || colon[1] == '\0')
        return -1;
    n = (size_t)(colon - addr);
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        addr++;
        n -= 2;
    }
    if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
        return -1;
    memcpy(host, addr, n);
    host[n] = '\0';
    snprintf(port, plen, "%s", colon + 1);
    for (const char *p = port; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return 0;
}

static int
tls_check(const struct hook_def *h, struct rk_error *err)
{
    const char *addr = inv_hook_param(h, "address");
    const char *field = inv_hook_param(h, "field");
    char host[HOST_MAX], port[16];

    if (split_address(addr, host, sizeof(host), port, sizeof(port)) != 0)
        return rk_error_set(err, RK_ECONFIG, "address: expected host:port, got '%.100s'",
                            addr != NULL ? addr : "");
    if (field != NULL &&
        !(strlen(field) < 64 &&
          strspn(field, "abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == strlen(field)))
        return rk_error_set(err, RK_ECONFIG, "field: not a field name");
    return 0;
}

/* A TCP connection to host:port within timeout_ms, or -1 (reason in err). */
static int
connect_to(const char *host, const char *port, int64_t timeout_ms, struct rk_error *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    int fd = -1, g, e = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if ((g = getaddrinfo(host, port, &hints, &res)) != 0) {
        rk_error_set(err, RK_EHOOK, "cannot resolve %.100s: %s", host, gai_strerror(g));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd pfd;
        socklen_t sl = sizeof(e);
        int fl;

        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0)
            continue;
        fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            e = 0;
        else if (errno != EINPROGRESS)
            e = errno;
        else {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            if (poll(&pfd, 1, (int)timeout_ms) != 1)
                e = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
                e = errno;
        }
        if (e == 0) {
            struct timeval tv = {.tv_sec = timeout_ms / 1000,
                                 .tv_usec = (timeout_ms % 1000) * 1000};
            fcntl(fd, F_SETFL, fl);
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        rk_error_set(err, RK_EHOOK, "cannot connect: %s", strerror(e != 0 ? e : ECONNREFUSED));
    return fd;
}

/* The certificate the server at host:port presents (NULL: reason in err). */
static X509 *
peer_certificate(const char *host, const char *port, const char *sni, int64_t timeout_ms,
                 struct rk_error *err)
{
    SSL_CTX *sctx = NULL;
    SSL *ssl = NULL;
    X509 *peer = NULL;
    int fd;

    if ((fd = connect_to(host, port, timeout_ms, err)) < 0)
        return NULL;
    if ((sctx = SSL_CTX_new(TLS_client_method())) == NULL || (ssl = SSL_new(sctx)) == NULL ||
        SSL_set_fd(ssl, fd) != 1) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    /* Which certificate is served is the question, not whether it is trusted. */
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    if (sni != NULL && sni[0] != '\0')
        SSL_set_tlsext_host_name(ssl, sni);
    if (SSL_connect(ssl) != 1) {
        unsigned long le = ERR_peek_last_error();
        rk_error_set(err, RK_EHOOK, "TLS handshake failed: %s",
                     le != 0 ? ERR_reason_error_string(le) : "connection closed");
        goto out;
    }
    if ((peer = SSL_get1_peer_certificate(ssl)) == NULL)
        rk_error_set(err, RK_EHOOK, "the server presented no certificate");
    SSL_shutdown(ssl);
out:
    ERR_clear_error();
    SSL_free(ssl);
    SSL_CTX_free(sctx);
    close(fd);
    return peer;
}

static int
tls_run(const struct hook_def *h, const struct hook_ctx *ctx, int64_t timeout_ms,
        struct rk_error *err)
{
    const char *addr = inv_hook_param(h, "address");
    const char *sni = inv_hook_param(h, "server_name");
    const char *field = inv_hook_param(h, "field");
    char host[HOST_MAX], port[16], tpl[TPL_MAX], want[SERIAL_MAX], got[SERIAL_MAX];
    struct secret *pem = NULL;
    BIO *b = NULL;
    X509 *expect = NULL, *peer = NULL;
    int r;

    if (split_address(addr, host, sizeof(host), port, sizeof(port)) != 0)
        return rk_error_set(err, RK_ECONFIG, "address: expected host:port");
    snprintf(tpl, sizeof(tpl), "{{new.%s}}", field != NULL ? field : "certificate");
    /* The certificate is public; rendering it goes through the same template code as files. */
    if ((r = hook_template_render(tpl, ctx, &pem, err)) != 0)
        return r;
    r = -RK_EINVAL;
    if ((b = BIO_new_mem_buf(pem->data, (int)pem->len)) == NULL ||
        (expect = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
        rk_error_set(err, RK_EINVAL, "the new version's %s is not a PEM certificate",
                     field != NULL ? field : "certificate");
        goto out;
    }
    serial_of(expect, want, sizeof(want));
    if ((peer = peer_certificate(host, port, sni != NULL ? sni : host, timeout_ms, err)) == NULL) {
        r = -(err->code != 0 ? err->code : RK_EHOOK);
        rk_error_prefix(err, "%s", addr);
        goto out;
    }
    serial_of(peer, got, sizeof(got));
    if (ASN1_INTEGER_cmp(X509_get0_serialNumber(peer), X509_get0_serialNumber(expect)) != 0 ||
        X509_NAME_cmp(X509_get_issuer_name(peer), X509_get_issuer_name(expect)) != 0) {
        r = rk_error_set(err, RK_EHOOK, "%s presents serial %s, not the new certificate's %s", addr,
                         got, want);
        goto out;
    }
    log_info("hook %s: %s presents the new certificate (serial %s)", h->name, addr, want);
    r = 0;
out:
    ERR_clear_error();
    X509_free(expect);
    X509_free(peer);
    BIO_free(b);
    secret_free(pem);
    return r;
}

static const struct inv_setting tls_settings[] = {
    {.name = "address",
     .type = IS_STRING,
     .flags = IS_REQUIRED,
     .help = "the consumer's TLS address, host:port"},
    {.name = "server_name", .type = IS_STRING, .help = "the SNI name to ask for (default: host)"},
    {.name = "field",
     .type = IS_STRING,
     .def = "certificate",
     .help = "the field of the new version that holds the expected certificate"},
    {0},
};

/* Without a wait the consumer gets no time to reload before it is judged. */
static void
tls_lint(const struct hook_def *h, inv_lint_report_fn report, void *arg)
{
    if (h->wait_interval_ms <= 0)
        report(arg, "warning",
               "checks %s once: add wait: {interval, timeout} so the consumer has time to reload",
               inv_hook_param(h, "address") != NULL ? inv_hook_param(h, "address") : "?");
}

const struct hook_ops hook_tls_ops = {
    .version = HOOK_OPS_VERSION,
    .type = HOOK_TLS,
    .name = "tls",
    .check = tls_check,
    .run = tls_run,
    .settings = tls_settings,
    .lint = tls_lint,
};
