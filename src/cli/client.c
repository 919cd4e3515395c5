/* client.c: the CLI's HTTP client for `rekey server` (see client.h). One easy handle per
 * request: the CLI sends a handful at most, and a fresh handle keeps no state between them. */
#include "client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fsutil.h"
#include "util/parse.h"

#define TOKEN_MAX 4096

struct rk_client {
    char *addr;            /* base URL without a trailing '/' */
    struct secret *token;  /* NULL when none was found */
    const char *token_src; /* "REKEY_TOKEN", "VAULT_TOKEN", "~/.vault-token" */
    const char *cacert, *capath;
    int skip_verify;
    long timeout_s;
};

/* A growing response buffer; wiped when it grows and when freed (answers hold secrets). */
struct buf {
    char *p;
    size_t len, cap;
    int over;
};

static const char *
env2(const char *a, const char *b)
{
    const char *v = getenv(a);

    if (v != NULL && *v != '\0')
        return v;
    v = getenv(b);
    return v != NULL && *v != '\0' ? v : NULL;
}

const char *
client_addr_env(void)
{
    return env2("REKEY_ADDR", "VAULT_ADDR");
}

/* Go's strconv.ParseBool, which the vault CLI uses for VAULT_SKIP_VERIFY. */
static int
env_true(const char *v)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};

    for (size_t i = 0; v != NULL && i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcmp(v, yes[i]) == 0)
            return 1;
    return 0;
}

/* Drops surrounding white space (a token file ends with a newline). */
static struct secret *
token_trimmed(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                       s[len - 1] == '\t'))
        len--;
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    return len > 0 ? secret_from(s, len) : NULL;
}

static int
load_token(struct rk_client *c, struct rk_error *err)
{
    const char *v, *home;
    char path[4096], *buf = NULL;
    size_t n = 0;
    int r;

    if ((v = getenv("REKEY_TOKEN")) != NULL && *v != '\0') {
        c->token_src = "REKEY_TOKEN";
        c->token = token_trimmed(v, strlen(v));
    } else if ((v = getenv("VAULT_TOKEN")) != NULL && *v != '\0') {
        c->token_src = "VAULT_TOKEN";
        c->token = token_trimmed(v, strlen(v));
    } else if ((home = getenv("HOME")) != NULL && *home != '\0' &&
               snprintf(path, sizeof(path), "%s/.vault-token", home) < (int)sizeof(path)) {
        r = fs_read_all(path, TOKEN_MAX, &buf, &n, err);
        if (r == -RK_ENOTFOUND) {
            rk_error_clear(err);
            return 0;
        }
        if (r != 0)
            return rk_error_prefix(err, "reading the token file ~/.vault-token");
        c->token_src = "~/.vault-token";
        c->token = token_trimmed(buf, n);
        freezero(buf, n + 1);
    }
    if (c->token != NULL && (memchr(c->token->data, '\n', c->token->len) != NULL ||
                             memchr(c->token->data, '\r', c->token->len) != NULL ||
                             strlen((const char *)c->token->data) != c->token->len))
        return rk_error_set(err, RK_EINVAL, "the token in %s holds a line break or NUL",
                            c->token_src);
    return 0;
}

int
client_open(struct rk_client **out, struct rk_error *err)
{
    const char *addr = client_addr_env(), *t;
    struct rk_client *c;
    size_t al;
    int64_t secs;
    int r;

    *out = NULL;
    if (addr == NULL)
        return rk_error_set(err, RK_EINVAL, "no server address: set REKEY_ADDR (or VAULT_ADDR)");
    if (strncmp(addr, "http://", 7) != 0 && strncmp(addr, "https://", 8) != 0)
        return rk_error_set(err, RK_EINVAL,
                            "REKEY_ADDR/VAULT_ADDR must start with http:// or https://, got "
                            "'%.200s'",
                            addr);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return rk_error_set(err, RK_EINTERNAL, "libcurl failed to initialise");
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->addr = strdup(addr)) == NULL) {
        free(c);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    al = strlen(c->addr);
    while (al > 0 && c->addr[al - 1] == '/')
        c->addr[--al] = '\0';
    c->cacert = env2("REKEY_CACERT", "VAULT_CACERT");
    c->capath = env2("REKEY_CAPATH", "VAULT_CAPATH");
    c->skip_verify = env_true(env2("REKEY_SKIP_VERIFY", "VAULT_SKIP_VERIFY"));
    c->timeout_s = CLIENT_DEFAULT_TIMEOUT_S;
    if ((t = env2("REKEY_CLIENT_TIMEOUT", "VAULT_CLIENT_TIMEOUT")) != NULL) {
        /* vault accepts "60" or "60s"; both mean seconds here. */
        char num[32];
        size_t tl = strlen(t);
        if (tl > 0 && tl < sizeof(num) && t[tl - 1] == 's')
            tl--;
        snprintf(num, sizeof(num), "%.*s", (int)tl, t);
        if (parse_int64(num, 1, 86400, &secs) != 0) {
            client_free(c);
            return rk_error_set(err, RK_EINVAL,
                                "REKEY_CLIENT_TIMEOUT must be a number of seconds (1 to 86400)");
        }
        c->timeout_s = (long)secs;
    }
    if ((r = load_token(c, err)) != 0) {
        client_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void
client_free(struct rk_client *c)
{
    if (c == NULL)
        return;
    secret_free(c->token);
    free(c->addr);
    free(c);
}

const char *
client_addr(const struct rk_client *c)
{
    return c->addr;
}

void
client_min_timeout(struct rk_client *c, long secs)
{
    if (c->timeout_s < secs)
        c->timeout_s = secs;
}

int
client_path_escape(const char *path, char *buf, size_t cap, size_t *len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = *len;

    for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                    *p == '~' || *p == '/';
        if (n + (plain ? 1 : 3) >= cap)
            return -RK_ELIMIT;
        if (plain) {
            buf[n++] = (char)*p;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[*p >> 4];
            buf[n++] = hex[*p & 15];
        }
    }
    buf[n] = '\0';
    *len = n;
    return 0;
}

int
client_kv_subpath(const char *path, int list, const char **rest, struct rk_error *err)
{
    if (strcmp(path, "secret") == 0 && list) {
        *rest = "";
        return 0;
    }
    if (strncmp(path, "secret/", 7) == 0 && path[7] != '\0') {
        *rest = path + 7;
        return 0;
    }
    return rk_error_set(err, RK_EINVAL,
                        "'%.200s' is not on the server's KV mount: in client mode (REKEY_ADDR) "
                        "rekey kv works on secret/… paths only",
                        path);
}

json_t *
client_data(json_t *resp)
{
    return resp != NULL ? json_object_get(resp, "data") : NULL;
}

static size_t
on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;

    if (b->len + n + 1 > CLIENT_RESPONSE_MAX) {
        b->over = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        if ((p = malloc(cap)) == NULL)
            return 0;
        if (b->p != NULL) {
            memcpy(p, b->p, b->len);
            freezero(b->p, b->cap);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static int
status_code(long status)
{
    switch (status) {
    case 400: return RK_EINVAL;
    case 403: return RK_EPERM;
    case 404: return RK_ENOTFOUND;
    case 409: return RK_EBUSY;
    case 413: return RK_ELIMIT;
    case 429: return RK_EBUSY;
    case 501: return RK_ENOTIMPL;
    case 502: return RK_EHOOK;
    case 503: return RK_ESEALED;
    case 504: return RK_ETIMEOUT;
    default: return RK_EIO;
    }
}

/* Turns an HTTP error answer into an error message: the server's "errors", with a clearer
 * sentence for the answers a person can act on. */
static int
http_error(struct rk_client *c, long status, json_t *resp, struct rk_error *err)
{
    json_t *errs = resp != NULL ? json_object_get(resp, "errors") : NULL;
    char msg[RK_ERRMSG_MAX] = "";
    size_t n = 0, i;
    json_t *e;
    int code = status_code(status);

    json_array_foreach(errs, i, e)
    {
        if (!json_is_string(e) || n >= sizeof(msg) - 1)
            continue;
        n += (size_t)snprintf(msg + n, sizeof(msg) - n, "%s%s", n ? "; " : "",
                              json_string_value(e));
    }
    if (status == 403)
        return rk_error_set(err, code,
                            "permission denied: %s",
                            c->token == NULL
                                ? "no token: set REKEY_TOKEN (or VAULT_TOKEN, or write "
                                  "~/.vault-token)"
                                : c->token_src != NULL && strcmp(c->token_src, "REKEY_TOKEN") == 0
                                    ? "the token in REKEY_TOKEN is unknown or expired, or its "
                                      "policies do not allow this"
                                : c->token_src != NULL && strcmp(c->token_src, "VAULT_TOKEN") == 0
                                    ? "the token in VAULT_TOKEN is unknown or expired, or its "
                                      "policies do not allow this"
                                    : "the token in ~/.vault-token is unknown or expired, or its "
                                      "policies do not allow this");
    if (status == 503 && (msg[0] == '\0' || strstr(msg, "sealed") != NULL))
        return rk_error_set(err, code,
                            "rekey at %s is sealed: unseal it with 'rekey operator unseal'",
                            c->addr);
    if (status == 429)
        return rk_error_set(err, code, "rekey at %s throttles this client after failed "
                                       "requests: wait a few seconds%s%s",
                            c->addr, msg[0] ? ": " : "", msg);
    if (msg[0] != '\0')
        return rk_error_set(err, code, "%s", msg);
    if (status == 404)
        return rk_error_set(err, code, "not found");
    return rk_error_set(err, code, "rekey at %s answered HTTP %ld", c->addr, status);
}

int
client_request(struct rk_client *c, const char *method, const char *path, json_t *body,
               long *status, json_t **resp, struct rk_error *err)
{
    char errbuf[CURL_ERROR_SIZE] = "", *url = NULL, *text = NULL, *hdr = NULL;
    struct curl_slist *headers = NULL, *h;
    struct buf b = {NULL, 0, 0, 0};
    size_t ulen, tlen = 0, hlen = 0;
    json_t *answer = NULL;
    long st = 0;
    CURLcode cr;
    CURL *cu;
    int r = -RK_ENOMEM;

    if (status != NULL)
        *status = 0;
    if (resp != NULL)
        *resp = NULL;
    if ((cu = curl_easy_init()) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    ulen = strlen(c->addr) + strlen(path) + 1;
    if ((url = malloc(ulen)) == NULL)
        goto nomem;
    snprintf(url, ulen, "%s%s", c->addr, path);
    if (c->token != NULL) {
        hlen = strlen("X-Vault-Token: ") + c->token->len + 1;
        if ((hdr = malloc(hlen)) == NULL)
            goto nomem;
        snprintf(hdr, hlen, "X-Vault-Token: %s", (const char *)c->token->data);
        h = curl_slist_append(headers, hdr);
        freezero(hdr, hlen);
        if (h == NULL)
            goto nomem;
        headers = h;
    }
    if ((h = curl_slist_append(headers, "Expect:")) == NULL)
        goto nomem;
    headers = h;
    if (body != NULL) {
        if ((text = json_dumps(body, JSON_COMPACT)) == NULL)
            goto nomem;
        tlen = strlen(text);
        if ((h = curl_slist_append(headers, "Content-Type: application/json")) == NULL)
            goto nomem;
        headers = h;
    }
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(cu, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(cu, CURLOPT_USERAGENT, "rekey-cli/" REKEY_VERSION);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(cu, CURLOPT_SSL_VERIFYPEER, c->skip_verify ? 0L : 1L);
    curl_easy_setopt(cu, CURLOPT_SSL_VERIFYHOST, c->skip_verify ? 0L : 2L);
    if (c->cacert != NULL)
        curl_easy_setopt(cu, CURLOPT_CAINFO, c->cacert);
    if (c->capath != NULL)
        curl_easy_setopt(cu, CURLOPT_CAPATH, c->capath);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL || strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, text != NULL ? text : "");
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE, (long)tlen);
    }
    cr = curl_easy_perform(cu);
    if (cr != CURLE_OK) {
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cr);
        if (b.over)
            r = rk_error_set(err, RK_ELIMIT, "the answer of rekey at %s is larger than %d bytes",
                             c->addr, CLIENT_RESPONSE_MAX);
        else if (cr == CURLE_OPERATION_TIMEDOUT)
            r = rk_error_set(err, RK_ETIMEOUT,
                             "rekey at %s did not answer within %ld s (REKEY_CLIENT_TIMEOUT): %s",
                             c->addr, c->timeout_s, why);
        else if (cr == CURLE_PEER_FAILED_VERIFICATION || cr == CURLE_SSL_CACERT_BADFILE)
            r = rk_error_set(err, RK_EIO,
                             "cannot reach rekey at %s: %s (set REKEY_CACERT to the server's CA "
                             "certificate)",
                             c->addr, why);
        else
            r = rk_error_set(err, RK_EIO, "cannot reach rekey at %s: %s", c->addr, why);
        goto out;
    }
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &st);
    if (status != NULL)
        *status = st;
    if (b.len > 0) {
        json_error_t jerr;
        answer = json_loadb(b.p, b.len, 0, &jerr);
    }
    if (st >= 200 && st < 300) {
        if (b.len > 0 && answer == NULL) {
            r = rk_error_set(err, RK_ECORRUPT, "rekey at %s answered something that is not JSON",
                             c->addr);
            goto out;
        }
        r = 0;
    } else {
        r = http_error(c, st, answer, err);
    }
    if (resp != NULL) {
        *resp = answer;
        answer = NULL;
    }
    goto out;
nomem:
    r = rk_error_set(err, RK_ENOMEM, "out of memory");
out:
    json_decref(answer);
    if (b.p != NULL)
        freezero(b.p, b.cap);
    if (text != NULL)
        freezero(text, tlen);
    /* curl_slist_append copied the token header: wipe the copies before they are freed. */
    for (h = headers; h != NULL; h = h->next)
        secure_wipe(h->data, strlen(h->data));
    curl_slist_free_all(headers);
    free(url);
    curl_easy_cleanup(cu);
    return r;
}
