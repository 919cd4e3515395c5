/* acme.c: see acme.h. One order per call, synchronous: the engine's create step waits for it
 * (bounded by the entry's acme_timeout). Every request to the CA is a JWS (RFC 7515, ES256,
 * flattened JSON) with a fresh nonce; GETs of resources are POST-as-GET (an empty payload).
 * A badNonce answer is retried with the nonce it carries, up to three times.
 *
 * Test builds: REKEY_CRASH_AT=acme-account (the account is registered and stored) and
 * REKEY_CRASH_AT=acme-validated (every challenge is valid, nothing finalized) kill the process,
 * as the engine's crash points do after a step. */
#include "secrets/acme.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/barrier.h"
#include "util/enc.h"
#include "util/httpc.h"
#include "util/log.h"
#include "util/testsw.h"
#include "util/timeutil.h"

#define ACCOUNT_PREFIX "acme/account/"
#define REC_MAX 96
#define TIMEOUT_DEFAULT_S 120
#define REQ_TIMEOUT_MS 30000
#define NONCE_TRIES 3
#define POLL_FIRST_MS 50 /* polls wait 50, 100, 200 … ms, at most POLL_MAX_MS */
#define POLL_MAX_MS 2000
#define HOOK_TIMEOUT_MS 30000
#define CHALLENGE_PATH "/.well-known/acme-challenge/"
#define TOKENS_MAX 100
#define JWK_MAX 256
#define KEYAUTH_MAX 256

struct token {
    char token[128];
    char keyauth[KEYAUTH_MAX];
};

/* The http-01 responder: a libmicrohttpd daemon answering the tokens of one order. */
struct h01 {
    struct MHD_Daemon *d;
    pthread_mutex_t mu;
    struct token t[TOKENS_MAX];
    size_t n;
};

struct acme {
    const struct acme_opts *o;
    struct barrier *br;
    struct acme_dir dir;
    EVP_PKEY *akey; /* the account key */
    char jwk[JWK_MAX];
    char thumb[48]; /* base64url SHA-256 of the JWK (RFC 7638) */
    char *kid;      /* the account URL */
    char nonce[256];
    char rec_key[REC_MAX], rec_url[REC_MAX];
    int64_t deadline_ms;
    char problem[200]; /* the last problem document */
};

static void
crash_point(const char *name)
{
    const char *at = test_switch("REKEY_CRASH_AT");

    if (at != NULL && strcmp(at, name) == 0) {
        log_warn("REKEY_CRASH_AT=%s: killing the process (fault injection)", name);
        kill(getpid(), SIGKILL);
    }
}

static int64_t
remaining_ms(const struct acme *a)
{
    return a->deadline_ms - time_mono_ms();
}

/* The wait before poll number n (0-based) of one resource. */
static int64_t
poll_wait(int n)
{
    return n >= 6 ? POLL_MAX_MS : POLL_FIRST_MS << n;
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- keys ---- */

/* The account key's public JWK (members in RFC 7638's order, so the same text is the
 * thumbprint's input) and thumbprint. */
static int
account_jwk(struct acme *a, struct rk_error *err)
{
    BIGNUM *x = NULL, *y = NULL;
    unsigned char xb[32], yb[32], dg[32];
    char xs[48], ys[48];
    int r = -RK_EINTERNAL;

    if (EVP_PKEY_get_bn_param(a->akey, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(a->akey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
        BN_bn2binpad(x, xb, 32) != 32 || BN_bn2binpad(y, yb, 32) != 32) {
        rk_error_set(err, RK_EINTERNAL, "the ACME account key is not a P-256 key");
        goto out;
    }
    base64url_encode(xb, 32, xs);
    base64url_encode(yb, 32, ys);
    snprintf(a->jwk, sizeof(a->jwk), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
             xs, ys);
    if (EVP_Digest(a->jwk, strlen(a->jwk), dg, NULL, EVP_sha256(), NULL) != 1) {
        rk_error_set(err, RK_EINTERNAL, "SHA-256 failed");
        goto out;
    }
    base64url_encode(dg, sizeof(dg), a->thumb);
    r = 0;
out:
    BN_free(x);
    BN_free(y);
    ERR_clear_error();
    return r;
}

/* The directory's account: its key (made and stored first when missing) and its URL (NULL when
 * not registered yet). */
static int
account_load(struct acme *a, struct rk_error *err)
{
    struct secret *pem = NULL, *url = NULL;
    unsigned char dg[32];
    char hex[65];
    BIO *b = NULL;
    int r;

    if (EVP_Digest(a->o->directory, strlen(a->o->directory), dg, NULL, EVP_sha256(), NULL) != 1)
        return rk_error_set(err, RK_EINTERNAL, "SHA-256 failed");
    hex_encode(dg, sizeof(dg), hex);
    snprintf(a->rec_key, sizeof(a->rec_key), ACCOUNT_PREFIX "%.16s/key", hex);
    snprintf(a->rec_url, sizeof(a->rec_url), ACCOUNT_PREFIX "%.16s/url", hex);
    r = barrier_get(a->br, a->rec_key, &pem, NULL, err);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        if ((a->akey = pki_keygen(PKI_KEY_ECDSA_P256)) == NULL) {
            r = rk_error_set(err, RK_EINTERNAL, "cannot make the ACME account key");
            goto out;
        }
        if ((r = pki_key_to_pem(a->akey, &pem, err)) != 0 ||
            (r = barrier_put(a->br, a->rec_key, pem->data, pem->len, err)) != 0)
            goto out;
        log_info("acme: made an account key for %s", a->o->directory);
    } else if (r != 0) {
        goto out;
    } else {
        if ((b = BIO_new_mem_buf(pem->data, (int)pem->len)) == NULL ||
            (a->akey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
            r = rk_error_set(err, RK_ECORRUPT, "the stored ACME account key does not parse");
            goto out;
        }
    }
    if ((r = account_jwk(a, err)) != 0)
        goto out;
    r = barrier_get(a->br, a->rec_url, &url, NULL, err);
    if (r == -RK_ENOTFOUND) {
        rk_error_clear(err);
        r = 0;
    } else if (r == 0) {
        if ((a->kid = strndup((const char *)url->data, url->len)) == NULL)
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
    }
out:
    BIO_free(b);
    ERR_clear_error();
    secret_free(pem);
    secret_free(url);
    return r;
}

/* ES256: the raw r||s signature (RFC 7518 3.4) of data[0..n). */
static int
sign_es256(EVP_PKEY *k, const char *data, size_t n, unsigned char sig[64])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned char der[96];
    const unsigned char *p = der;
    size_t dl = sizeof(der);
    ECDSA_SIG *s = NULL;
    int r = -1;

    if (m == NULL || EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k) != 1 ||
        EVP_DigestSign(m, der, &dl, (const unsigned char *)data, n) != 1 ||
        (s = d2i_ECDSA_SIG(NULL, &p, (long)dl)) == NULL)
        goto out;
    if (BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) != 32)
        goto out;
    r = 0;
out:
    ECDSA_SIG_free(s);
    EVP_MD_CTX_free(m);
    ERR_clear_error();
    return r;
}

/* base64url of text into a malloc'd string. */
static char *
b64url_dup(const void *p, size_t n)
{
    char *s = malloc(4 * ((n + 2) / 3) + 1);

    if (s != NULL)
        base64url_encode(p, n, s);
    return s;
}

/* ---- requests ---- */

static int64_t
request_timeout(const struct acme *a)
{
    int64_t left = remaining_ms(a);

    if (left > REQ_TIMEOUT_MS)
        return REQ_TIMEOUT_MS;
    return left > 1000 ? left : 1000;
}

static void
take_nonce(struct acme *a, const struct httpc_resp *resp)
{
    const char *n = resp->replay_nonce;
    size_t i;

    a->nonce[0] = '\0';
    for (i = 0; n[i] != '\0'; i++)
        if (!((n[i] >= 'A' && n[i] <= 'Z') || (n[i] >= 'a' && n[i] <= 'z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '-' || n[i] == '_'))
            return;
    if (i > 0 && i < sizeof(a->nonce))
        memcpy(a->nonce, n, i + 1);
}

/* What an answer that is not 2xx means: always unavailable (acme.h), with what the CA said. */
static int
ca_refused(struct acme *a, const char *what, const struct httpc_resp *resp, struct rk_error *err)
{
    acme_problem(resp->body != NULL ? (const char *)resp->body->data : NULL, resp->len, a->problem,
                 sizeof(a->problem));
    char after[48] = "";

    if (resp->retry_after_s >= 0)
        snprintf(after, sizeof(after), ", retry after %lld s", (long long)resp->retry_after_s);
    rk_error_set(err, RK_EUNAVAILABLE, "ACME %s: the CA answered %ld%s%s%s%s", what, resp->status,
                 a->problem[0] ? " (" : "", a->problem, a->problem[0] ? ")" : "", after);
    if (err != NULL && resp->retry_after_s > 0)
        err->retry_after_s = resp->retry_after_s;
    return -RK_EUNAVAILABLE;
}

static int
plain_request(struct acme *a, const char *method, const char *url, struct httpc_resp *resp,
              struct rk_error *err)
{
    struct httpc_req req;
    int r;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = url;
    req.ca_file = a->o->ca_file;
    req.timeout_ms = request_timeout(a);
    r = httpc_do(&req, resp, err);
    if (r == -RK_ETIMEOUT)
        r = -RK_EUNAVAILABLE;
    if (r != 0)
        return rk_error_set(err, r == -RK_ENOMEM ? RK_ENOMEM : RK_EUNAVAILABLE,
                            "ACME CA unreachable: %s", err->msg);
    return 0;
}

static int
fetch_nonce(struct acme *a, struct rk_error *err)
{
    struct httpc_resp resp;
    int r = plain_request(a, "HEAD", a->dir.new_nonce, &resp, err);

    if (r == 0) {
        take_nonce(a, &resp);
        if (a->nonce[0] == '\0')
            r = rk_error_set(err, RK_EUNAVAILABLE, "ACME newNonce: no Replay-Nonce (status %ld)",
                             resp.status);
    }
    httpc_resp_free(&resp);
    return r;
}

/* POSTs payload (NULL: POST-as-GET) to url as a JWS signed with the account key, identified by
 * its JWK (with_jwk) or its account URL. Returns 0 with a 2xx answer in *resp (freed by the
 * caller, also after an error), or -RK_EUNAVAILABLE / -RK_ENOMEM / -RK_EINTERNAL. */
static int
acme_post(struct acme *a, const char *what, const char *url, const char *payload, int with_jwk,
          struct httpc_resp *resp, struct rk_error *err)
{
    memset(resp, 0, sizeof(*resp));
    a->problem[0] = '\0';
    for (int attempt = 0; attempt < NONCE_TRIES; attempt++) {
        json_t *hdr = NULL, *jwk = NULL;
        char *h = NULL, *hb = NULL, *pb = NULL, *signing = NULL, *sb = NULL, *body = NULL;
        unsigned char sig[64];
        struct secret *bs = NULL;
        struct httpc_req req;
        size_t sl;
        int r = -RK_ENOMEM;

        httpc_resp_free(resp);
        if (a->nonce[0] == '\0' && (r = fetch_nonce(a, err)) != 0)
            return r;
        if (with_jwk)
            jwk = json_loads(a->jwk, 0, NULL);
        hdr = with_jwk ? json_pack("{s:s,s:s,s:s,s:o}", "alg", "ES256", "nonce", a->nonce, "url",
                                   url, "jwk", jwk)
                       : json_pack("{s:s,s:s,s:s,s:s}", "alg", "ES256", "nonce", a->nonce, "url",
                                   url, "kid", a->kid);
        a->nonce[0] = '\0'; /* used */
        if (hdr == NULL || (h = json_dumps(hdr, JSON_COMPACT)) == NULL ||
            (hb = b64url_dup(h, strlen(h))) == NULL ||
            (pb = b64url_dup(payload != NULL ? payload : "",
                             payload != NULL ? strlen(payload) : 0)) == NULL)
            goto next;
        sl = strlen(hb) + 1 + strlen(pb) + 1;
        if ((signing = malloc(sl)) == NULL)
            goto next;
        snprintf(signing, sl, "%s.%s", hb, pb);
        if (sign_es256(a->akey, signing, strlen(signing), sig) != 0) {
            r = rk_error_set(err, RK_EINTERNAL, "cannot sign the ACME request");
            goto next;
        }
        if ((sb = b64url_dup(sig, sizeof(sig))) == NULL)
            goto next;
        sl = strlen(hb) + strlen(pb) + strlen(sb) + 64;
        if ((body = malloc(sl)) == NULL)
            goto next;
        snprintf(body, sl, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", hb, pb,
                 sb);
        if ((bs = secret_from_str(body)) == NULL)
            goto next;
        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.url = url;
        req.body = bs;
        req.content_type = "application/jose+json";
        req.ca_file = a->o->ca_file;
        req.timeout_ms = request_timeout(a);
        r = httpc_do(&req, resp, err);
        if (r == -RK_ETIMEOUT || r == -RK_EUNAVAILABLE)
            r = rk_error_set(err, RK_EUNAVAILABLE, "ACME %s: the CA is unreachable: %s", what,
                             err->msg);
        if (r == 0) {
            take_nonce(a, resp);
            if (resp->status < 200 || resp->status >= 300) {
                r = ca_refused(a, what, resp, err);
                if (resp->status == 400 && strncmp(a->problem, "badNonce", 8) == 0 &&
                    attempt + 1 < NONCE_TRIES)
                    r = 1; /* try again with the nonce it sent */
            }
        }
    next:
        if (r == -RK_ENOMEM && err->msg[0] == '\0')
            rk_error_set(err, RK_ENOMEM, "out of memory");
        secret_free(bs);
        free(body);
        free(sb);
        free(signing);
        free(pb);
        free(hb);
        free(h);
        json_decref(hdr);
        if (r != 1)
            return r;
        rk_error_clear(err);
    }
    return -RK_EUNAVAILABLE; /* not reached: the last try returns */
}

/* Registers the account (or finds it: the same key gives the same account) and stores its
 * URL. */
static int
account_register(struct acme *a, struct rk_error *err)
{
    struct httpc_resp resp;
    json_t *p;
    char *payload = NULL;
    char contact[300];
    int r;

    if (a->o->email != NULL) {
        snprintf(contact, sizeof(contact), "mailto:%s", a->o->email);
        p = json_pack("{s:b,s:[s]}", "termsOfServiceAgreed", 1, "contact", contact);
    } else {
        p = json_pack("{s:b}", "termsOfServiceAgreed", 1);
    }
    if (p == NULL || (payload = json_dumps(p, JSON_COMPACT)) == NULL) {
        json_decref(p);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    json_decref(p);
    r = acme_post(a, "newAccount", a->dir.new_account, payload, 1, &resp, err);
    free(payload);
    if (r == 0 && resp.location[0] == '\0')
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME newAccount: no Location in the answer");
    if (r == 0) {
        free(a->kid);
        if ((a->kid = strdup(resp.location)) == NULL)
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    if (r == 0 && (r = barrier_put(a->br, a->rec_url, a->kid, strlen(a->kid), err)) == 0)
        log_info("acme: account %s registered (status %ld)", a->kid, resp.status);
    httpc_resp_free(&resp);
    return r;
}

/* ---- http-01 ---- */

static enum MHD_Result
h01_answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_len, void **con_cls)
{
    struct h01 *h = cls;
    struct MHD_Response *resp;
    char ka[KEYAUTH_MAX] = "";
    unsigned status = MHD_HTTP_NOT_FOUND;
    enum MHD_Result ret;

    (void)version;
    (void)upload;
    (void)upload_len;
    (void)con_cls;
    if (strcmp(method, "GET") == 0 &&
        strncmp(url, CHALLENGE_PATH, sizeof(CHALLENGE_PATH) - 1) == 0) {
        const char *tok = url + sizeof(CHALLENGE_PATH) - 1;

        pthread_mutex_lock(&h->mu);
        for (size_t i = 0; i < h->n; i++)
            if (strcmp(h->t[i].token, tok) == 0) {
                memcpy(ka, h->t[i].keyauth, sizeof(ka));
                status = MHD_HTTP_OK;
                break;
            }
        pthread_mutex_unlock(&h->mu);
    }
    resp = MHD_create_response_from_buffer(strlen(ka), ka, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
h01_stop(struct h01 *h)
{
    if (h == NULL)
        return;
    if (h->d != NULL)
        MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static int
h01_start(const char *listen, struct h01 **out, struct rk_error *err)
{
    struct addrinfo hints, *ai = NULL;
    char host[64], port[8];
    const char *colon;
    struct h01 *h;
    int r;

    *out = NULL;
    if (listen == NULL || (colon = strrchr(listen, ':')) == NULL)
        return rk_error_set(err, RK_EINVAL, "acme_http01_listen: expected ADDR:PORT");
    {
        const char *hs = listen, *he = colon;

        if (*hs == '[' && he > hs && he[-1] == ']') {
            hs++;
            he--;
        }
        if ((size_t)(he - hs) >= sizeof(host) || strlen(colon + 1) >= sizeof(port) ||
            colon[1] == '\0')
            return rk_error_set(err, RK_EINVAL, "acme_http01_listen: expected ADDR:PORT");
        memcpy(host, hs, (size_t)(he - hs));
        host[he - hs] = '\0';
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL)
        return rk_error_set(err, RK_EINVAL, "acme_http01_listen: %s is not ADDR:PORT", listen);
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        freeaddrinfo(ai);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&h->mu, NULL);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                                (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                            0, NULL, NULL, h01_answer, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (h->d == NULL) {
        h01_stop(h);
        return rk_error_set(err, RK_EUNAVAILABLE, "http-01: cannot listen on %s", listen);
    }
    r = 0;
    *out = h;
    return r;
}

static int
h01_add(struct h01 *h, const char *token, const char *keyauth, struct rk_error *err)
{
    int r = 0;

    pthread_mutex_lock(&h->mu);
    if (h->n >= TOKENS_MAX) {
        r = rk_error_set(err, RK_ELIMIT, "http-01: more than %d tokens", TOKENS_MAX);
    } else {
        snprintf(h->t[h->n].token, sizeof(h->t[h->n].token), "%s", token);
        snprintf(h->t[h->n].keyauth, sizeof(h->t[h->n].keyauth), "%s", keyauth);
        h->n++;
    }
    pthread_mutex_unlock(&h->mu);
    return r;
}

/* ---- dns-01 ---- */

extern char **environ;

/* Runs PROGRAM set|clear _acme-challenge.DOMAIN with the TXT value on stdin and in the
 * environment (public data; the child gets no other variable but PATH). */
static int
dns_hook(const char *prog, const char *action, const char *domain, const char *txt,
         struct rk_error *err)
{
    char record[300], e_dom[300], e_rec[320], e_txt[128];
    char *argv[] = {(char *)prog, (char *)action, record, NULL};
    char *envp[] = {(char *)"PATH=/usr/local/bin:/usr/bin:/bin", e_dom, e_rec, e_txt, NULL};
    posix_spawn_file_actions_t fa;
    int fds[2] = {-1, -1}, status = 0, r;
    int64_t until = time_mono_ms() + HOOK_TIMEOUT_MS;
    pid_t pid, w;
    size_t tl = strlen(txt);

    snprintf(record, sizeof(record), "_acme-challenge.%s", domain);
    snprintf(e_dom, sizeof(e_dom), "REKEY_ACME_DOMAIN=%s", domain);
    snprintf(e_rec, sizeof(e_rec), "REKEY_ACME_RECORD=%s", record);
    snprintf(e_txt, sizeof(e_txt), "REKEY_ACME_TXT=%s", txt);
    if (pipe2(fds, O_CLOEXEC) != 0)
        return rk_error_set(err, RK_EINTERNAL, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    r = posix_spawn(&pid, prog, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    if (r != 0) {
        close(fds[1]);
        return rk_error_set(err, RK_EUNAVAILABLE, "dns-01 hook %s: cannot run: %s", prog,
                            strerror(r));
    }
    {
        /* A hook that exits without reading stdin must not kill us with SIGPIPE: blocked in
         * this thread only (the daemon has others), a pending one taken back (hook-exec.c). */
        sigset_t pipeset, oldmask, pending;
        int was_pending, blocked;

        sigemptyset(&pipeset);
        sigaddset(&pipeset, SIGPIPE);
        sigpending(&pending);
        was_pending = sigismember(&pending, SIGPIPE);
        blocked = pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask) == 0;
        if (write(fds[1], txt, tl) != (ssize_t)tl || write(fds[1], "\n", 1) != 1) {
            /* the hook may take the value from REKEY_ACME_TXT instead */
        }
        if (blocked) {
            struct timespec zero = {0, 0};

            sigpending(&pending);
            if (!was_pending && sigismember(&pending, SIGPIPE))
                while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR)
                    ;
            pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
        }
    }
    close(fds[1]);
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && time_mono_ms() < until)
        sleep_ms(10);
    if (w == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return rk_error_set(err, RK_EUNAVAILABLE, "dns-01 hook %s %s %s: no exit within %d s", prog,
                            action, record, HOOK_TIMEOUT_MS / 1000);
    }
    if (w < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return rk_error_set(err, RK_EUNAVAILABLE, "dns-01 hook %s %s %s failed (%s %d)", prog,
                            action, record, WIFEXITED(status) ? "exit" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return 0;
}

/* ---- the order ---- */

static int
is_ip(const char *name)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* The CSR (DER, base64url) for the names with key k. */
static int
make_csr(const struct acme_opts *o, EVP_PKEY *k, char **out, struct rk_error *err)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *nm = X509_NAME_new();
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    unsigned char *der = NULL;
    int dl, r = -RK_EINTERNAL;

    *out = NULL;
    if (req == NULL || nm == NULL || gens == NULL || exts == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)o->common_name,
                                   -1, -1, 0) != 1 ||
        X509_REQ_set_subject_name(req, nm) != 1 || X509_REQ_set_pubkey(req, k) != 1)
        goto fail;
    for (size_t i = 0; i <= o->nnames; i++) {
        const char *n = i < o->nnames ? o->names[i] : o->common_name;
        GENERAL_NAME *g = NULL;

        if (i == o->nnames) { /* the CN too, unless listed */
            int listed = 0;

            for (size_t j = 0; j < o->nnames; j++)
                listed |= strcmp(o->names[j], n) == 0;
            if (listed)
                continue;
        }
        if (is_ip(n)) {
            ASN1_OCTET_STRING *ip = a2i_IPADDRESS(n);

            if (ip == NULL || (g = GENERAL_NAME_new()) == NULL) {
                ASN1_OCTET_STRING_free(ip);
                goto fail;
            }
            GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
        } else {
            ASN1_IA5STRING *s = ASN1_IA5STRING_new();

            if (s == NULL || ASN1_STRING_set(s, n, -1) != 1 || (g = GENERAL_NAME_new()) == NULL) {
                ASN1_IA5STRING_free(s);
                goto fail;
            }
            GENERAL_NAME_set0_value(g, GEN_DNS, s);
        }
        if (sk_GENERAL_NAME_push(gens, g) == 0) {
            GENERAL_NAME_free(g);
            goto fail;
        }
    }
    if (X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1 ||
        X509_REQ_add_extensions(req, exts) != 1 ||
        X509_REQ_sign(req, k, EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256()) <= 0 ||
        (dl = i2d_X509_REQ(req, &der)) <= 0)
        goto fail;
    if ((*out = b64url_dup(der, (size_t)dl)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    r = 0;
    goto out;
fail:
    r = rk_error_set(err, RK_EINTERNAL, "cannot make the certificate request");
out:
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    X509_NAME_free(nm);
    X509_REQ_free(req);
    ERR_clear_error();
    return r;
}

/* The newOrder payload: one identifier per distinct name (the CN included). */
static char *
order_payload(const struct acme_opts *o)
{
    json_t *ids = json_array(), *p;
    char *s = NULL;

    if (ids == NULL)
        return NULL;
    for (size_t i = 0; i <= o->nnames; i++) {
        const char *n = i < o->nnames ? o->names[i] : o->common_name;
        int dup = 0;

        for (size_t j = 0; j < i && j < o->nnames; j++)
            dup |= strcmp(o->names[j], n) == 0;
        if (dup)
            continue;
        json_array_append_new(ids,
                              json_pack("{s:s,s:s}", "type", is_ip(n) ? "ip" : "dns", "value", n));
    }
    if ((p = json_pack("{s:o}", "identifiers", ids)) != NULL)
        s = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return s;
}

static const char *
chall_name(const struct acme_opts *o)
{
    return o->challenge == ACME_DNS01 ? "dns-01" : "http-01";
}

/* A record set by the dns-01 hook, cleared at the end whatever happens. */
struct dns_set {
    char domain[256];
    char txt[48];
};

/* Answers one authorization and waits until the CA calls it valid. */
static int
authorize(struct acme *a, const char *url, struct h01 *h, struct dns_set *ds, size_t *nds,
          struct rk_error *err)
{
    struct httpc_resp resp;
    struct acme_authz az;
    char keyauth[KEYAUTH_MAX];
    int r, triggered = 0, polls = 0;

    memset(&az, 0, sizeof(az));
    for (;;) {
        acme_authz_clear(&az);
        if ((r = acme_post(a, "authorization", url, NULL, 0, &resp, err)) != 0)
            goto out;
        r = acme_parse_authz((const char *)resp.body->data, resp.len, chall_name(a->o), &az, err);
        httpc_resp_free(&resp);
        if (r != 0) {
            r = rk_error_set(err, RK_EUNAVAILABLE, "ACME: %s", err->msg);
            goto out;
        }
        if (strcmp(az.status, "valid") == 0) {
            r = 0;
            goto out;
        }
        if (strcmp(az.status, "pending") != 0) {
            r = rk_error_set(err, RK_EUNAVAILABLE, "ACME: the authorization for %s is %s%s%s",
                             az.domain, az.status, az.error[0] ? ": " : "", az.error);
            goto out;
        }
        if (az.chall_url == NULL) {
            r = rk_error_set(err, RK_EUNAVAILABLE, "ACME: the CA offers no %s challenge for %s",
                             chall_name(a->o), az.domain);
            goto out;
        }
        if (!triggered) {
            snprintf(keyauth, sizeof(keyauth), "%s.%s", az.token, a->thumb);
            if (a->o->challenge == ACME_HTTP01) {
                if ((r = h01_add(h, az.token, keyauth, err)) != 0)
                    goto out;
            } else {
                unsigned char dg[32];
                struct dns_set *d = &ds[*nds];

                EVP_Digest(keyauth, strlen(keyauth), dg, NULL, EVP_sha256(), NULL);
                base64url_encode(dg, sizeof(dg), d->txt);
                snprintf(d->domain, sizeof(d->domain), "%s", az.domain);
                (*nds)++;
                if ((r = dns_hook(a->o->dns01_hook, "set", d->domain, d->txt, err)) != 0)
                    goto out;
            }
            if ((r = acme_post(a, "challenge", az.chall_url, "{}", 0, &resp, err)) != 0)
                goto out;
            httpc_resp_free(&resp);
            triggered = 1;
            continue;
        }
        if (remaining_ms(a) <= 0) {
            r = rk_error_set(err, RK_EUNAVAILABLE,
                             "ACME: the %s challenge for %s is still pending at the deadline",
                             chall_name(a->o), az.domain);
            goto out;
        }
        sleep_ms(poll_wait(polls++));
    }
out:
    httpc_resp_free(&resp);
    acme_authz_clear(&az);
    return r;
}

/* POST-as-GETs the order at url until its status is one of want (or invalid, or the deadline). */
static int
order_wait(struct acme *a, const char *url, const char *want, struct acme_order *ord,
           struct rk_error *err)
{
    struct httpc_resp resp;
    int r, polls = 0;

    for (;;) {
        if (strcmp(ord->status, want) == 0 && (strcmp(want, "valid") != 0 || ord->certificate))
            return 0;
        if (strcmp(ord->status, "invalid") == 0)
            return rk_error_set(err, RK_EUNAVAILABLE, "ACME: the order became invalid");
        if (remaining_ms(a) <= 0)
            return rk_error_set(err, RK_EUNAVAILABLE, "ACME: the order is still %s at the deadline",
                                ord->status);
        sleep_ms(poll_wait(polls++));
        if ((r = acme_post(a, "order", url, NULL, 0, &resp, err)) != 0) {
            httpc_resp_free(&resp);
            return r;
        }
        acme_order_clear(ord);
        r = acme_parse_order((const char *)resp.body->data, resp.len, ord, err);
        httpc_resp_free(&resp);
        if (r != 0)
            return rk_error_set(err, RK_EUNAVAILABLE, "ACME: %s", err->msg);
    }
}

static int
new_order(struct acme *a, char **order_url, struct acme_order *ord, struct rk_error *err)
{
    struct httpc_resp resp;
    char *payload = order_payload(a->o);
    int r;

    if (payload == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r = acme_post(a, "newOrder", a->dir.new_order, payload, 0, &resp, err);
    if (r == -RK_EUNAVAILABLE && strncmp(a->problem, "accountDoesNotExist", 19) == 0) {
        /* The CA forgot the account (a test CA restarted): register the same key again. */
        httpc_resp_free(&resp);
        rk_error_clear(err);
        log_info("acme: the CA does not know account %s; registering again", a->kid);
        if ((r = account_register(a, err)) == 0)
            r = acme_post(a, "newOrder", a->dir.new_order, payload, 0, &resp, err);
    }
    free(payload);
    if (r == 0 && resp.location[0] == '\0')
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME newOrder: no Location in the answer");
    if (r == 0 && (*order_url = strdup(resp.location)) == NULL)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    if (r == 0 && (r = acme_parse_order((const char *)resp.body->data, resp.len, ord, err)) != 0)
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME newOrder: %s", err->msg);
    httpc_resp_free(&resp);
    return r;
}

static int
check_opts(const struct acme_opts *o, struct rk_error *err)
{
    if (o->directory == NULL || o->directory[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "no ACME directory URL");
    if (o->common_name == NULL || o->common_name[0] == '\0')
        return rk_error_set(err, RK_EINVAL, "no common name");
    if (o->challenge == ACME_DNS01 && (o->dns01_hook == NULL || o->dns01_hook[0] == '\0'))
        return rk_error_set(err, RK_EINVAL, "dns-01 needs acme_dns01_hook");
    if (o->nnames + 1 > TOKENS_MAX)
        return rk_error_set(err, RK_ELIMIT, "more than %d names", TOKENS_MAX - 1);
    return 0;
}

int
acme_issue(struct barrier *br, const struct acme_opts *o, struct pki_issued *out,
           struct rk_error *err)
{
    struct acme a;
    struct acme_order ord;
    struct httpc_resp resp;
    struct h01 *h = NULL;
    struct dns_set *ds = NULL;
    size_t nds = 0;
    EVP_PKEY *leaf = NULL;
    char *order_url = NULL, *csr = NULL, *payload = NULL, *leaf_pem = NULL, *rest = NULL;
    int r;

    memset(&a, 0, sizeof(a));
    memset(&ord, 0, sizeof(ord));
    memset(&resp, 0, sizeof(resp));
    memset(out, 0, sizeof(*out));
    if ((r = check_opts(o, err)) != 0)
        return r;
    a.o = o;
    a.br = br;
    a.deadline_ms = time_mono_ms() + (o->timeout_s > 0 ? o->timeout_s : TIMEOUT_DEFAULT_S) * 1000;
    if ((r = plain_request(&a, "GET", o->directory, &resp, err)) != 0)
        goto out;
    if (resp.status != 200) {
        r = ca_refused(&a, "directory", &resp, err);
        goto out;
    }
    if ((r = acme_parse_directory((const char *)resp.body->data, resp.len, &a.dir, err)) != 0) {
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME %s: %s", o->directory, err->msg);
        goto out;
    }
    httpc_resp_free(&resp);
    if ((r = account_load(&a, err)) != 0)
        goto out;
    if (a.kid == NULL && (r = account_register(&a, err)) != 0)
        goto out;
    crash_point("acme-account");
    if ((r = new_order(&a, &order_url, &ord, err)) != 0)
        goto out;
    if (o->challenge == ACME_HTTP01 && (r = h01_start(o->http01_listen, &h, err)) != 0)
        goto out;
    if (o->challenge == ACME_DNS01 &&
        (ds = calloc(ord.nauthz > 0 ? ord.nauthz : 1, sizeof(*ds))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ord.nauthz; i++)
        if ((r = authorize(&a, ord.authz[i], h, ds, &nds, err)) != 0)
            goto out;
    crash_point("acme-validated");
    if ((r = order_wait(&a, order_url, "ready", &ord, err)) != 0)
        goto out;
    if ((leaf = pki_keygen(o->key_type)) == NULL) {
        r = rk_error_set(err, RK_EINTERNAL, "cannot make the key (%s)",
                         pki_key_type_name(o->key_type));
        goto out;
    }
    if ((r = make_csr(o, leaf, &csr, err)) != 0)
        goto out;
    {
        size_t pl = strlen(csr) + 16;

        if ((payload = malloc(pl)) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(payload, pl, "{\"csr\":\"%s\"}", csr);
    }
    if ((r = acme_post(&a, "finalize", ord.finalize, payload, 0, &resp, err)) != 0)
        goto out;
    acme_order_clear(&ord);
    r = acme_parse_order((const char *)resp.body->data, resp.len, &ord, err);
    httpc_resp_free(&resp);
    if (r != 0) {
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME finalize: %s", err->msg);
        goto out;
    }
    if ((r = order_wait(&a, order_url, "valid", &ord, err)) != 0)
        goto out;
    if ((r = acme_post(&a, "certificate", ord.certificate, NULL, 0, &resp, err)) != 0)
        goto out;
    if (resp.truncated ||
        acme_split_chain((const char *)resp.body->data, resp.len, &leaf_pem, &rest, err) != 0) {
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME certificate: %s",
                         resp.truncated ? "the chain is too long" : err->msg);
        goto out;
    }
    if (rest[0] == '\0') {
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME certificate: the CA sent no issuer");
        goto out;
    }
    if ((r = pki_key_to_pem(leaf, &out->private_key, err)) != 0)
        goto out;
    out->chain = strndup((const char *)resp.body->data, resp.len);
    out->certificate = leaf_pem;
    out->ca = rest;
    leaf_pem = rest = NULL;
    if (out->chain == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = pki_cert_info(out->certificate, strlen(out->certificate), &out->not_after, out->serial,
                           sizeof(out->serial), err)) != 0) {
        r = rk_error_set(err, RK_EUNAVAILABLE, "ACME certificate: %s", err->msg);
        goto out;
    }
    log_info("acme: issued serial %s for %s by %s", out->serial, o->common_name, o->directory);
    r = 0;
out:
    h01_stop(h);
    for (size_t i = 0; i < nds; i++) {
        struct rk_error e2 = {0};

        if (dns_hook(o->dns01_hook, "clear", ds[i].domain, ds[i].txt, &e2) != 0)
            log_warn("acme: %s", e2.msg);
    }
    if (r != 0)
        pki_issued_clear(out);
    httpc_resp_free(&resp);
    acme_order_clear(&ord);
    acme_dir_clear(&a.dir);
    EVP_PKEY_free(a.akey);
    EVP_PKEY_free(leaf);
    free(a.kid);
    free(ds);
    free(order_url);
    free(csr);
    free(payload);
    free(leaf_pem);
    free(rest);
    return r;
}
