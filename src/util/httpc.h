/* httpc.h: the one outbound HTTP client, for rotators (provider APIs, ACME, etcd) and hooks.
 *
 * Every byte that may be a secret (a header value, the request body, the response body) lives in
 * secure memory and is handed to libcurl without copies of ours. The URL never holds a secret
 * (it ends up in error messages). Fixed rules, not options: http and https only, no redirects
 * followed, no proxy from the environment (a proxy would see the credential), TLS verified
 * unless the request says otherwise, with the system CAs or ca_file. A request has a connect
 * timeout and a total timeout. Tests point a rotator at a local server through its per-entry
 * base URL; nothing here knows about tests. */
#ifndef REKEY_HTTPC_H
#define REKEY_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"
#include "util/secret.h"

#define HTTPC_DEFAULT_CONNECT_MS 10000
#define HTTPC_DEFAULT_TIMEOUT_MS 30000
#define HTTPC_DEFAULT_BODY_MAX (64 * 1024)

/* One request header: name (a token, never a secret) and a value, either a secret (value) or
 * plain text (plain), not both. The value may not hold CR or LF. */
struct httpc_header {
    const char *name;
    const struct secret *value;
    const char *plain;
};

struct httpc_req {
    const char *method; /* default "GET"; "HEAD" sends no body and reads none */
    const char *url;    /* http:// or https://; never a secret */
    const struct httpc_header *headers;
    size_t nheaders;
    const struct secret *body;  /* may be NULL */
    const char *content_type;   /* sent when body is set; default application/json */
    int64_t connect_timeout_ms; /* 0 = HTTPC_DEFAULT_CONNECT_MS */
    int64_t timeout_ms;         /* the whole exchange; 0 = HTTPC_DEFAULT_TIMEOUT_MS */
    int tls_insecure;           /* 1 = do not verify the peer (tests of self-signed targets) */
    const char *ca_file;        /* PEM bundle to verify with instead of the system's; may be NULL */
    size_t body_max;            /* response bytes kept; 0 = HTTPC_DEFAULT_BODY_MAX */
};

struct httpc_resp {
    long status;         /* the HTTP status, 0 when no response came */
    struct secret *body; /* the first body_max bytes, NUL-terminated (len excludes it); owned */
    size_t len;
    int truncated;         /* the body was longer than body_max */
    int64_t retry_after_s; /* a Retry-After header in seconds, else -1 */
    /* Headers ACME needs (RFC 8555): Location (a new account's or order's URL) and
     * Replay-Nonce, each "" when absent or longer than the buffer. Never secrets. */
    char location[1024];
    char replay_nonce[256];
};

/* 1 when s is an HTTP token (a method or a header name: RFC 9110 tchar), else 0. */
int httpc_is_token(const char *s);

/* Initialises libcurl once per process (thread-safe; httpc_do calls it too). Returns 0 or
 * -RK_EINTERNAL. */
int httpc_init(struct rk_error *err);

/* Sends req and fills *resp (freed with httpc_resp_free, also after an error). Returns 0 when a
 * response arrived, whatever its status; -RK_ETIMEOUT when the connect or total timeout passed;
 * -RK_EUNAVAILABLE when the host could not be reached (refused, unresolvable, reset, TLS
 * handshake failure); -RK_EINVAL for a bad request (scheme, header with a line break);
 * -RK_ENOMEM. The message in err names the method and URL and never holds a secret. */
int httpc_do(const struct httpc_req *req, struct httpc_resp *resp, struct rk_error *err);

void httpc_resp_free(struct httpc_resp *resp);

/* Sets what every request of rekey's own through libcurl wants on the easy handle c (a CURL *):
 * the url, the error buffer errbuf (CURL_ERROR_SIZE bytes, or NULL for none), no signals, http and
 * https only, no redirects and no proxy (never a secret through a proxy set in the environment).
 * Timeouts, TLS and headers are the caller's. */
void httpc_curl_base(void *c, const char *url, char *errbuf);

/* What a check's answer means for a rotation (rotator.h's three outcomes): 0 accepted (2xx),
 * -RK_EREJECTED (401, 403 and other 4xx but 408 and 429), -RK_EUNAVAILABLE (no answer, 408,
 * 429, 5xx). rc is httpc_do's return; a timeout is unavailable too. */
int httpc_outcome(int rc, long status);

#endif
