/* etcd.c: the etcd storage backend, through etcd's v3 JSON gateway (grpc-gateway, POST only,
 * under /v3/). Keys and values travel base64-encoded; 64-bit numbers come back as JSON strings.
 *
 * Location: "etcd:URL[,URL…]" with http:// or https:// URLs (no user info: a password never goes
 * on a command line or into a location). Options from the environment:
 *   REKEY_ETCD_USER, and REKEY_ETCD_PASSWORD_FILE or REKEY_ETCD_PASSWORD: etcd's user/password
 *     auth (/v3/auth/authenticate gives a token sent in the Authorization header; an expired
 *     token is renewed once per request);
 *   REKEY_ETCD_CA_FILE, REKEY_ETCD_CERT_FILE, REKEY_ETCD_KEY_FILE: TLS for https endpoints.
 *
 * Revisions: etcd's revision of an empty cluster is 1 and its first write makes 2, so the
 * revisions this backend reports are etcd's minus one (0 = nothing written yet, as backend.h
 * wants; a compare on mod_rev 0 = the key is absent, which etcd compares as mod_revision 0).
 *
 * Connections: libcurl is used directly (not util/httpc.h, which opens a connection per request)
 * so that each request reuses a kept-alive connection: a small pool of CURL easy handles, one
 * taken per request and given back, so concurrent threads never share one and a callback that
 * calls back into the store (a list's callback) simply takes another.
 *
 * Failover: a request goes to the endpoint that answered last; when it cannot connect (or the
 * member says it has no leader) it tries the next, round the list once. A request that was sent
 * but got no answer is retried elsewhere only if it is idempotent (reads, plain puts); a delete
 * or a transaction whose outcome is unknown fails with -RK_EUNAVAILABLE rather than risk being
 * applied twice or reporting a false conflict. When no endpoint answers: -RK_EUNAVAILABLE.
 *
 * Reads are linearizable: a read after a write acknowledged by any member sees it. They are
 * answered from a read cache kept by a watch: etcd-cache.c. */
#include "store/etcd-int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/enc.h"
#include "util/fsutil.h"
#include "util/httpc.h"
#include "util/secret.h"

#define ETCD_LIST_CHUNK 256
#define ETCD_RESP_MAX (256u << 20)
#define ETCD_CONNECT_TIMEOUT_MS 1000L
#define ETCD_TIMEOUT_MS 8000L
/* Leader election's requests: a member that is alive but silent (stopped, partitioned) must not
 * hold a renewal past the lease's TTL, so they move on to the next member after this. */
#define ETCD_LEASE_TIMEOUT_MS 900L

size_t
etcd_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;

    if (b->len + n + 1 > ETCD_RESP_MAX)
        return 0;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

/* ---- the handle pool ------------------------------------------------------------------------ */

static CURL *
pool_get(struct etcd *e)
{
    CURL *h = NULL;

    pthread_mutex_lock(&e->lock);
    if (e->npool > 0)
        h = e->pool[--e->npool];
    pthread_mutex_unlock(&e->lock);
    return h != NULL ? h : curl_easy_init();
}

static void
pool_put(struct etcd *e, CURL *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&e->lock);
    if (e->npool < ETCD_POOL_MAX) {
        e->pool[e->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&e->lock);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* Sets h up to POST body (NUL-terminated) with the headers hdrs to url, as every request to
 * etcd is sent: what every outgoing request of rekey's gets (http or https only, no signals, no
 * redirect, no proxy from the environment: an http_proxy variable would otherwise see etcd's
 * auth password), the connect timeout and the TLS files. */
void
etcd_curl_post(struct etcd *e, CURL *h, const char *url, const char *body, struct curl_slist *hdrs)
{
    httpc_curl_base(h, url, NULL);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (e->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
    if (e->cert_file != NULL)
        curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_file);
    if (e->key_file != NULL)
        curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_file);
}

/* ---- one request ---------------------------------------------------------------------------- */

enum outcome {
    OUT_OK,        /* 200 with a JSON body */
    OUT_NOT_SENT,  /* could not connect: the request surely did nothing */
    OUT_UNKNOWN,   /* sent, no answer: it may or may not have been applied */
    OUT_NO_LEADER, /* the member answered it has no leader: nothing was done */
    OUT_AUTH,      /* the token is missing, invalid or expired */
    OUT_ERROR,     /* etcd refused the request */
};

/* POSTs body to endpoint ep + path. On OUT_OK *resp is the parsed body; on OUT_ERROR err has
 * etcd's message. */
static enum outcome
post_once(struct etcd *e, size_t ep, const char *path, const char *body, const char *token,
          long timeout_ms, json_t **resp, struct rk_error *err)
{
    char url[512], auth[1024];
    struct curl_slist *hdrs = NULL;
    struct buf b = {0};
    CURL *h = pool_get(e);
    CURLcode rc;
    long status = 0;
    enum outcome out;
    json_t *j = NULL;

    *resp = NULL;
    if (h == NULL) {
        rk_error_set(err, RK_ENOMEM, "out of memory");
        return OUT_ERROR;
    }
    snprintf(url, sizeof(url), "%s%s", e->endpoints[ep], path);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: %s", token);
        hdrs = curl_slist_append(hdrs, auth);
        secure_wipe(auth, sizeof(auth));
    }
    curl_easy_reset(h);
    etcd_curl_post(e, h, url, body, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, etcd_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    atomic_fetch_add(&e->requests, 1);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs); /* the token copy inside is freed, not wiped: it expires */
    if (rc != CURLE_OK) {
        long sent = 0;

        /* Nothing of the request went out (refused, unresolvable, connect timeout): safe to send
         * it elsewhere. Otherwise it may have been applied. */
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
        out = (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || sent == 0)
                  ? OUT_NOT_SENT
                  : OUT_UNKNOWN;
        if (rc == CURLE_SSL_CACERT || rc == CURLE_PEER_FAILED_VERIFICATION ||
            rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SSL_CERTPROBLEM) {
            rk_error_set(err, RK_EUNAVAILABLE, "etcd at %s: TLS: %s", e->endpoints[ep],
                         curl_easy_strerror(rc));
            out = OUT_NOT_SENT;
        } else {
            rk_error_set(err, RK_EUNAVAILABLE, "etcd at %s: %s", e->endpoints[ep],
                         curl_easy_strerror(rc));
        }
        goto out;
    }
    j = b.p != NULL ? json_loadb(b.p, b.len, 0, NULL) : NULL;
    if (status == 200 && json_is_object(j)) {
        *resp = j;
        j = NULL;
        out = OUT_OK;
        goto out;
    }
    {
        const char *msg = json_string_value(json_object_get(j, "message"));
        json_int_t code = json_integer_value(json_object_get(j, "code"));

        if (msg == NULL)
            msg = json_string_value(json_object_get(j, "error"));
        if (msg == NULL)
            msg = "no message";
        if (code == 16 || strstr(msg, "invalid auth token") != NULL ||
            strstr(msg, "user name is empty") != NULL) {
            out = OUT_AUTH;
            rk_error_set(err, RK_EPERM, "etcd at %s: %s", e->endpoints[ep], msg);
        } else if (strstr(msg, "no leader") != NULL) {
            out = OUT_NO_LEADER;
            rk_error_set(err, RK_EUNAVAILABLE, "etcd at %s: %s", e->endpoints[ep], msg);
        } else if (code == 14 || status == 503) {
            out = OUT_UNKNOWN;
            rk_error_set(err, RK_EUNAVAILABLE, "etcd at %s: %s", e->endpoints[ep], msg);
        } else {
            out = OUT_ERROR;
            rk_error_set(err, code == 7 ? RK_EPERM : RK_EIO, "etcd at %s: HTTP %ld: %s",
                         e->endpoints[ep], status, msg);
        }
    }
out:
    json_decref(j);
    free(b.p);
    pool_put(e, h);
    return out;
}

/* Gets an auth token for the current endpoint order (user/password auth). Returns 0 or -RK_E*.
 * gen is the token generation the caller saw fail: a token another thread renewed meanwhile is
 * kept. */
static int
authenticate(struct etcd *e, unsigned gen, struct rk_error *err)
{
    json_t *req = NULL, *resp = NULL;
    char *body = NULL;
    size_t n = e->nendpoints, start = atomic_load(&e->cur) % n;
    int r = -RK_EUNAVAILABLE;

    pthread_mutex_lock(&e->lock);
    if (e->token != NULL && e->token_gen != gen) {
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    pthread_mutex_unlock(&e->lock);

    req = json_pack("{s:s, s:s%}", "name", e->user, "password", (const char *)e->password->data,
                    e->password->len);
    if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        size_t ep = (start + i) % n;
        enum outcome o =
            post_once(e, ep, "/v3/auth/authenticate", body, NULL, ETCD_TIMEOUT_MS, &resp, err);
        const char *tok;

        atomic_fetch_add(&e->auths, 1);
        if (o == OUT_NOT_SENT || o == OUT_NO_LEADER || o == OUT_UNKNOWN) {
            atomic_fetch_add(&e->failovers, 1);
            continue;
        }
        if (o != OUT_OK) {
            r = rk_error_set(err, RK_EPERM, "etcd refuses user %s: %s", e->user, err->msg);
            goto out;
        }
        tok = json_string_value(json_object_get(resp, "token"));
        if (tok == NULL) {
            r = rk_error_set(err, RK_EIO, "etcd at %s gave no auth token", e->endpoints[ep]);
            goto out;
        }
        pthread_mutex_lock(&e->lock);
        if (e->token != NULL)
            freezero(e->token, strlen(e->token));
        e->token = strdup(tok);
        e->token_gen++;
        r = e->token != NULL ? 0 : -RK_ENOMEM;
        pthread_mutex_unlock(&e->lock);
        atomic_store(&e->cur, ep);
        goto out;
    }
out:
    if (body != NULL)
        freezero(body, strlen(body));
    json_decref(req);
    json_decref(resp);
    return r;
}

/* POSTs req (consumed) to path, with failover and auth. idempotent: the request may be retried
 * on another endpoint after it was sent. Returns 0 with *resp, or -RK_E*. */
static int
call_t(struct etcd *e, const char *path, json_t *req, int idempotent, long timeout_ms,
       json_t **resp, struct rk_error *err)
{
    char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    size_t n = e->nendpoints;
    int r = -RK_EUNAVAILABLE, reauthed = 0;

    *resp = NULL;
    json_decref(req);
    if (body == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    if (e->user != NULL) {
        pthread_mutex_lock(&e->lock);
        int have = e->token != NULL;
        unsigned gen = e->token_gen;
        pthread_mutex_unlock(&e->lock);
        if (!have && (r = authenticate(e, gen, err)) != 0)
            goto out;
    }
    size_t start = atomic_load(&e->cur) % n;

    for (size_t i = 0; i < n; i++) {
        size_t ep = (start + i) % n;
        char *token = NULL;
        unsigned gen = 0;
        enum outcome o;

        if (e->user != NULL) {
            pthread_mutex_lock(&e->lock);
            token = e->token != NULL ? strdup(e->token) : NULL;
            gen = e->token_gen;
            pthread_mutex_unlock(&e->lock);
        }
        o = post_once(e, ep, path, body, token, timeout_ms, resp, err);
        if (token != NULL)
            freezero(token, strlen(token));
        switch (o) {
        case OUT_OK:
            atomic_store(&e->cur, ep);
            r = 0;
            goto out;
        case OUT_AUTH:
            if (e->user == NULL || reauthed) {
                r = -err->code;
                goto out;
            }
            reauthed = 1;
            if ((r = authenticate(e, gen, err)) != 0)
                goto out;
            i--; /* the same try again, with the new token */
            continue;
        case OUT_UNKNOWN:
            if (!idempotent) {
                /* the next request tries another member: this one may be stopped or cut off */
                atomic_store(&e->cur, (ep + 1) % n);
                char last[RK_ERRMSG_MAX];

                /* (copied: err->msg cannot be both the format's argument and its output) */
                snprintf(last, sizeof(last), "%s", err->msg);
                r = rk_error_set(err, RK_EUNAVAILABLE, "%s (the write's outcome is unknown)", last);
                goto out;
            }
            /* fall through */
        case OUT_NOT_SENT:
        case OUT_NO_LEADER:
            atomic_fetch_add(&e->failovers, 1);
            atomic_store(&e->cur, (ep + 1) % n);
            r = -RK_EUNAVAILABLE;
            continue;
        case OUT_ERROR: r = -err->code; goto out;
        }
    }
    if (n > 1) {
        char last[RK_ERRMSG_MAX];

        snprintf(last, sizeof(last), "%s", err->msg); /* not an argument into itself */
        rk_error_set(err, RK_EUNAVAILABLE,
                     "etcd is unreachable: none of its %zu endpoints answered (last: %s)", n, last);
    }
out:
    freezero(body, strlen(body));
    return r;
}

/* call_t with the default timeout. */
int
etcd_call(struct etcd *e, const char *path, json_t *req, int idempotent, json_t **resp,
          struct rk_error *err)
{
    return call_t(e, path, req, idempotent, ETCD_TIMEOUT_MS, resp, err);
}

/* ---- JSON helpers --------------------------------------------------------------------------- */

/* A 64-bit number etcd sent as a JSON string (or, to be lenient, a number); 0 when absent. */
int64_t
etcd_j_i64(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    const char *s;
    char *end;
    long long n;

    if (json_is_integer(v))
        return json_integer_value(v);
    if ((s = json_string_value(v)) == NULL)
        return 0;
    n = strtoll(s, &end, 10);
    return *end == '\0' ? n : 0;
}

/* etcd's revision as rekey's (see the top of the file). */
static int64_t
rk_rev(int64_t etcd_rev)
{
    return etcd_rev > 0 ? etcd_rev - 1 : 0;
}

static int64_t
header_rev(json_t *resp)
{
    return rk_rev(etcd_j_i64(json_object_get(resp, "header"), "revision"));
}

/* A base64 JSON string of len bytes at p; NULL when out of memory. */
static json_t *
j_b64(const void *p, size_t len)
{
    char *s = base64_encode(p != NULL ? p : (const void *)"", len);
    json_t *j;

    if (s == NULL)
        return NULL;
    j = json_string(s);
    free(s);
    return j;
}

/* Decodes the base64 field name of o: 0 with *out malloc'd (NUL after it) and *len, or -1. An
 * absent field is an empty value (proto3 JSON leaves empty fields out). */
int
etcd_j_unb64(json_t *o, const char *name, unsigned char **out, size_t *len)
{
    const char *s = json_string_value(json_object_get(o, name));

    if (s == NULL) {
        *len = 0;
        *out = calloc(1, 1);
        return *out != NULL ? 0 : -1;
    }
    *out = base64_decode(s, strlen(s), len);
    return *out != NULL ? 0 : -1;
}

static int
check_key(const char *key, struct rk_error *err)
{
    size_t n;

    if (key == NULL || (n = strlen(key)) == 0)
        return rk_error_set(err, RK_EINVAL, "store key is empty");
    if (n > STORE_KEY_MAX)
        return rk_error_set(err, RK_EINVAL, "store key is longer than %d bytes", STORE_KEY_MAX);
    return 0;
}

static struct etcd *
as_etcd(struct backend *b)
{
    return (struct etcd *)b;
}

/* ---- the ops -------------------------------------------------------------------------------- */

/* A get straight from etcd (a linearizable range). */
static int
get_direct(struct backend *b, const char *key, unsigned char **val, size_t *vlen, int64_t *mod_rev,
           struct rk_error *err)
{
    struct etcd *e = as_etcd(b);
    json_t *resp = NULL, *kv;
    int r;

    *val = NULL;
    if ((r = check_key(key, err)) != 0)
        return r;
    if ((r = etcd_call(e, "/v3/kv/range", json_pack("{s:o}", "key", j_b64(key, strlen(key))), 1,
                       &resp, err)) != 0)
        return r;
    kv = json_array_get(json_object_get(resp, "kvs"), 0); /* no "kvs" at all: not found */
    if (kv == NULL) {
        r = rk_error_set(err, RK_ENOTFOUND, "no key %s", key);
        goto out;
    }
    if (etcd_j_unb64(kv, "value", val, vlen) != 0) {
        r = rk_error_set(err, RK_EIO, "etcd sent a value for %s that is not base64", key);
        goto out;
    }
    if (mod_rev != NULL)
        *mod_rev = rk_rev(etcd_j_i64(kv, "mod_revision"));
out:
    json_decref(resp);
    return r;
}

static int
etcd_put(struct backend *b, const char *key, const void *val, size_t vlen, int64_t *rev,
         struct rk_error *err)
{
    json_t *resp = NULL;
    int r;

    if ((r = check_key(key, err)) != 0)
        return r;
    if ((r = etcd_call(
             as_etcd(b), "/v3/kv/put",
             json_pack("{s:o, s:o}", "key", j_b64(key, strlen(key)), "value", j_b64(val, vlen)), 1,
             &resp, err)) != 0)
        return r;
    if (rev != NULL)
        *rev = header_rev(resp);
    json_decref(resp);
    return 0;
}

static int
etcd_del(struct backend *b, const char *key, int64_t *rev, struct rk_error *err)
{
    json_t *resp = NULL;
    int r;

    if ((r = check_key(key, err)) != 0)
        return r;
    if ((r = etcd_call(as_etcd(b), "/v3/kv/deleterange",
                       json_pack("{s:o}", "key", j_b64(key, strlen(key))), 0, &resp, err)) != 0)
        return r;
    if (etcd_j_i64(resp, "deleted") == 0)
        r = rk_error_set(err, RK_ENOTFOUND, "no key %s", key);
    else if (rev != NULL)
        *rev = header_rev(resp);
    json_decref(resp);
    return r;
}

/* The smallest key greater than every key starting with prefix, into out (size > strlen): its
 * length, or 0 when there is none (prefix empty or all 0xff: no end). */
static size_t
prefix_end(const char *prefix, unsigned char *out)
{
    size_t n = strlen(prefix);

    memcpy(out, prefix, n);
    while (n > 0) {
        if (out[n - 1] != 0xff) {
            out[n - 1]++;
            return n;
        }
        n--;
    }
    return 0;
}

/* A list straight from etcd (etcd_list without the cache). *rev_out (may be NULL) gets etcd's
 * revision the list read at (that of its first chunk). */
int
etcd_list_direct(struct etcd *e, const char *prefix, const char *start_after, size_t limit,
                 int keys_only, store_list_cb cb, void *arg, int64_t *rev_out, struct rk_error *err)
{
    unsigned char end[STORE_KEY_MAX + 1], *start = NULL;
    size_t endlen, startlen, seen = 0;
    int64_t at_rev = 0; /* etcd's revision of the first chunk: every chunk reads at it */
    int r = 0, more = 1;

    if (prefix == NULL)
        prefix = "";
    if (strlen(prefix) > STORE_KEY_MAX)
        return rk_error_set(err, RK_EINVAL, "list prefix is longer than %d bytes", STORE_KEY_MAX);
    endlen = prefix_end(prefix, end);
    if (endlen == 0) {
        end[0] = '\0'; /* "\0" as range_end: every key from the start on */
        endlen = 1;
    }
    /* The first key to read: the prefix, or just after start_after when that is further on. */
    if (start_after != NULL && strcmp(start_after, prefix) >= 0) {
        startlen = strlen(start_after) + 1;
        start = malloc(startlen);
        if (start != NULL)
            memcpy(start, start_after, startlen); /* with its NUL: the next key after it */
    } else {
        startlen = prefix[0] != '\0' ? strlen(prefix) : 1;
        start = malloc(startlen);
        if (start != NULL)
            memcpy(start, prefix[0] != '\0' ? prefix : "", startlen);
    }
    if (start == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");

    while (more && r == 0) {
        size_t want = ETCD_LIST_CHUNK;
        json_t *req, *resp = NULL, *kvs;
        size_t nkv;

        if (limit > 0 && limit - seen < want)
            want = limit - seen;
        req = json_pack("{s:o, s:o, s:I, s:b}", "key", j_b64(start, startlen), "range_end",
                        j_b64(end, endlen), "limit", (json_int_t)want, "keys_only", keys_only);
        if (req != NULL && at_rev > 0)
            json_object_set_new(req, "revision", json_integer(at_rev));
        if ((r = etcd_call(e, "/v3/kv/range", req, 1, &resp, err)) != 0)
            break;
        if (at_rev == 0) {
            at_rev = etcd_j_i64(json_object_get(resp, "header"), "revision");
            if (rev_out != NULL)
                *rev_out = at_rev;
        }
        more = json_is_true(json_object_get(resp, "more"));
        kvs = json_object_get(resp, "kvs");
        nkv = json_array_size(kvs);
        if (nkv == 0)
            more = 0;
        for (size_t i = 0; i < nkv && r == 0; i++) {
            json_t *kv = json_array_get(kvs, i);
            unsigned char *k = NULL, *v = NULL;
            size_t kl = 0, vl = 0;
            int cr;

            if (etcd_j_unb64(kv, "key", &k, &kl) != 0 || kl == 0 || memchr(k, '\0', kl) != NULL ||
                (!keys_only && etcd_j_unb64(kv, "value", &v, &vl) != 0)) {
                free(k);
                free(v);
                r = rk_error_set(err, RK_EIO, "etcd sent a key or value that does not decode");
                break;
            }
            cr = cb(arg, (const char *)k, keys_only ? NULL : v, vl,
                    rk_rev(etcd_j_i64(kv, "mod_revision")));
            if (i + 1 == nkv) { /* the next chunk starts just after this key */
                unsigned char *ns = realloc(start, kl + 1);

                if (ns == NULL) {
                    r = rk_error_set(err, RK_ENOMEM, "out of memory");
                } else {
                    start = ns;
                    memcpy(start, k, kl);
                    start[kl] = '\0';
                    startlen = kl + 1;
                }
            }
            free(k);
            if (v != NULL)
                freezero(v, vl);
            seen++;
            if (cr < 0)
                r = cr;
            else if (cr > 0)
                more = 0, nkv = 0;
            if (limit > 0 && seen >= limit)
                more = 0;
        }
        json_decref(resp);
    }
    free(start);
    return r;
}

static int
etcd_get(struct backend *b, const char *key, unsigned char **val, size_t *vlen, int64_t *mod_rev,
         struct rk_error *err)
{
    struct etcd *e = as_etcd(b);
    int found, r;
    size_t i;

    *val = NULL;
    if ((r = check_key(key, err)) != 0)
        return r;
    if (!etcd_cache_ready(e))
        return get_direct(b, key, val, vlen, mod_rev, err);
    i = etcd_cache_find(e, key, &found);
    if (!found) {
        pthread_mutex_unlock(&e->cmu);
        return rk_error_set(err, RK_ENOTFOUND, "no key %s", key);
    }
    if ((*val = malloc(e->ents[i].vlen + 1)) == NULL) {
        pthread_mutex_unlock(&e->cmu);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    memcpy(*val, e->ents[i].val, e->ents[i].vlen);
    (*val)[e->ents[i].vlen] = '\0';
    *vlen = e->ents[i].vlen;
    if (mod_rev != NULL)
        *mod_rev = rk_rev(e->ents[i].mod_rev);
    pthread_mutex_unlock(&e->cmu);
    return 0;
}

/* A chunk of a list copied out of the cache (callbacks run without cmu: they may read). */
struct lchunk {
    struct centry ent[ETCD_LIST_CHUNK];
    size_t n;
};

static int
etcd_list(struct backend *b, const char *prefix, const char *start_after, size_t limit,
          int keys_only, store_list_cb cb, void *arg, struct rk_error *err)
{
    struct etcd *e = as_etcd(b);
    struct lchunk *ch = NULL;
    char *after = NULL;
    size_t plen, seen = 0;
    int r = 0, more = 1, locked = 1;

    if (prefix == NULL)
        prefix = "";
    if ((plen = strlen(prefix)) > STORE_KEY_MAX)
        return rk_error_set(err, RK_EINVAL, "list prefix is longer than %d bytes", STORE_KEY_MAX);
    if (!etcd_cache_ready(e))
        return etcd_list_direct(e, prefix, start_after, limit, keys_only, cb, arg, NULL, err);
    /* cmu held: the first chunk comes from a cache that has caught up; later chunks from the
     * same cache later (a list is not a snapshot, backend.h) */
    if ((ch = calloc(1, sizeof(*ch))) == NULL ||
        (start_after != NULL && (after = strdup(start_after)) == NULL)) {
        pthread_mutex_unlock(&e->cmu);
        free(ch);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    while (more && r == 0) {
        int found;
        size_t i;

        if (!locked)
            pthread_mutex_lock(&e->cmu);
        locked = 0; /* (unlocked below) */
        if (after != NULL && strcmp(after, prefix) >= 0) {
            i = etcd_cache_find(e, after, &found);
            if (found)
                i++;
        } else {
            i = etcd_cache_find(e, prefix, &found);
        }
        ch->n = 0;
        for (; i < e->nents && ch->n < ETCD_LIST_CHUNK; i++) {
            struct centry *c = &e->ents[i], *o = &ch->ent[ch->n];

            if (strncmp(c->key, prefix, plen) != 0)
                break;
            if (limit > 0 && seen + ch->n >= limit)
                break;
            o->key = strdup(c->key);
            o->val = keys_only ? NULL : malloc(c->vlen + 1);
            o->vlen = keys_only ? 0 : c->vlen;
            o->mod_rev = c->mod_rev;
            ch->n++;
            if (o->key == NULL || (!keys_only && o->val == NULL)) {
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                break;
            }
            if (!keys_only)
                memcpy(o->val, c->val, c->vlen);
        }
        pthread_mutex_unlock(&e->cmu);
        if (ch->n < ETCD_LIST_CHUNK)
            more = 0;
        for (size_t j = 0; j < ch->n && r == 0; j++) {
            int cr = cb(arg, ch->ent[j].key, ch->ent[j].val, ch->ent[j].vlen,
                        rk_rev(ch->ent[j].mod_rev));

            if (cr < 0)
                r = cr;
            else if (cr > 0)
                more = 0, r = 1;
        }
        seen += ch->n;
        if (ch->n > 0 && r == 0) {
            free(after);
            after = strdup(ch->ent[ch->n - 1].key);
            if (after == NULL)
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        for (size_t j = 0; j < ch->n; j++) {
            free(ch->ent[j].key);
            free(ch->ent[j].val);
        }
        if (limit > 0 && seen >= limit)
            more = 0;
    }
    free(after);
    free(ch);
    return r > 0 ? 0 : r;
}

/* Whether an op at index i is superseded by a later op on the same key: etcd refuses a txn that
 * names a key twice, and backend.h says the last op wins. */
static int
superseded(const struct store_op *ops, size_t nops, size_t i)
{
    for (size_t j = i + 1; j < nops; j++)
        if (strcmp(ops[i].key, ops[j].key) == 0)
            return 1;
    return 0;
}

static int
etcd_txn(struct backend *b, const struct store_cmp *cmps, size_t ncmps, const struct store_op *ops,
         size_t nops, int64_t *rev, struct rk_error *err)
{
    json_t *req = NULL, *compare = NULL, *success = NULL, *resp = NULL;
    int r;

    for (size_t i = 0; i < ncmps; i++) {
        if ((r = check_key(cmps[i].key, err)) != 0)
            return r;
        if (cmps[i].mod_rev < 0)
            return rk_error_set(err, RK_EINVAL, "compare on %s: negative revision", cmps[i].key);
    }
    for (size_t i = 0; i < nops; i++) {
        if ((r = check_key(ops[i].key, err)) != 0)
            return r;
        if (ops[i].kind != STORE_PUT && ops[i].kind != STORE_DELETE)
            return rk_error_set(err, RK_EINVAL, "store op %d is unknown", (int)ops[i].kind);
    }
    compare = json_array();
    success = json_array();
    if (compare == NULL || success == NULL)
        goto nomem;
    for (size_t i = 0; i < ncmps; i++) {
        /* rekey's revision M is etcd's M + 1; 0 (absent) compares as etcd's 0 */
        int64_t m = cmps[i].mod_rev > 0 ? cmps[i].mod_rev + 1 : 0;
        char mr[24];

        snprintf(mr, sizeof(mr), "%lld", (long long)m);
        if (json_array_append_new(compare,
                                  json_pack("{s:o, s:s, s:s, s:s}", "key",
                                            j_b64(cmps[i].key, strlen(cmps[i].key)), "target",
                                            "MOD", "result", "EQUAL", "mod_revision", mr)) != 0)
            goto nomem;
    }
    for (size_t i = 0; i < nops; i++) {
        json_t *k, *op;

        if (superseded(ops, nops, i))
            continue;
        k = j_b64(ops[i].key, strlen(ops[i].key));
        if (ops[i].kind == STORE_PUT)
            op = json_pack("{s:{s:o, s:o}}", "request_put", "key", k, "value",
                           j_b64(ops[i].val, ops[i].vlen));
        else
            op = json_pack("{s:{s:o}}", "request_delete_range", "key", k);
        if (json_array_append_new(success, op) != 0)
            goto nomem;
    }
    req = json_pack("{s:o, s:o}", "compare", compare, "success", success);
    compare = success = NULL;
    if (req == NULL)
        goto nomem;
    if ((r = etcd_call(as_etcd(b), "/v3/kv/txn", req, 0, &resp, err)) != 0)
        return r;
    if (ncmps > 0 && !json_is_true(json_object_get(resp, "succeeded"))) {
        r = rk_error_set(err, RK_ECONFLICT, "revision compare failed on %s%s", cmps[0].key,
                         ncmps > 1 ? " (or another compared key)" : "");
    } else if (rev != NULL) {
        *rev = header_rev(resp);
    }
    json_decref(resp);
    return r;
nomem:
    json_decref(compare);
    json_decref(success);
    return rk_error_set(err, RK_ENOMEM, "out of memory");
}

static void
etcd_close(struct backend *b)
{
    struct etcd *e = as_etcd(b);

    if (e == NULL)
        return;
    etcd_cache_stop(e);
    for (size_t i = 0; i < e->npool; i++)
        curl_easy_cleanup(e->pool[i]);
    for (size_t i = 0; i < e->nendpoints; i++)
        free(e->endpoints[i]);
    if (e->token != NULL)
        freezero(e->token, strlen(e->token));
    secret_free(e->password);
    free(e->user);
    free(e->ca_file);
    free(e->cert_file);
    free(e->key_file);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

/* A copy of the environment variable name, or NULL when unset or empty; -1 on no memory. */
static int
env_dup(const char *name, char **out)
{
    const char *v = getenv(name);

    *out = NULL;
    if (v == NULL || v[0] == '\0')
        return 0;
    *out = strdup(v);
    return *out != NULL ? 0 : -1;
}

/* The password of REKEY_ETCD_USER: from REKEY_ETCD_PASSWORD_FILE (its first line) or
 * REKEY_ETCD_PASSWORD. */
static int
load_password(struct etcd *e, struct rk_error *err)
{
    const char *file = getenv("REKEY_ETCD_PASSWORD_FILE"), *env = getenv("REKEY_ETCD_PASSWORD");
    char *buf = NULL;
    size_t len = 0;
    int r;

    if (file != NULL && file[0] != '\0') {
        if ((r = fs_read_all(file, 4096, &buf, &len, err)) != 0) {
            char why[RK_ERRMSG_MAX];

            snprintf(why, sizeof(why), "%s", err->msg);
            return rk_error_set(err, -r, "REKEY_ETCD_PASSWORD_FILE: %s", why);
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            len--;
        e->password = secret_from(buf, len);
        freezero(buf, len + 1);
    } else if (env != NULL && env[0] != '\0') {
        e->password = secret_from(env, strlen(env));
    } else {
        return rk_error_set(err, RK_ECONFIG,
                            "REKEY_ETCD_USER is set but neither REKEY_ETCD_PASSWORD_FILE nor "
                            "REKEY_ETCD_PASSWORD is");
    }
    return e->password != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

static int
etcd_open(const char *location, struct backend **out, struct rk_error *err)
{
    struct etcd *e;
    const char *p = location;
    int r;

    *out = NULL;
    if ((r = httpc_init(err)) != 0)
        return r;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    e->base.ops = &etcd_backend_ops;
    pthread_mutex_init(&e->lock, NULL);
    if ((r = etcd_cache_init(e, err)) != 0)
        goto fail;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");

        while (n > 0 && p[n - 1] == '/')
            n--; /* "http://a:2379/" */
        if (n == 0) {
            r = rk_error_set(err, RK_EINVAL, "etcd location has an empty endpoint");
            goto fail;
        }
        if (e->nendpoints == ETCD_MAX_ENDPOINTS) {
            r = rk_error_set(err, RK_EINVAL, "etcd location has more than %d endpoints",
                             ETCD_MAX_ENDPOINTS);
            goto fail;
        }
        if (!((n > 7 && strncmp(p, "http://", 7) == 0) ||
              (n > 8 && strncmp(p, "https://", 8) == 0))) {
            r = rk_error_set(err, RK_EINVAL, "etcd endpoint %zu is not an http:// or https:// URL",
                             e->nendpoints + 1);
            goto fail;
        }
        if (memchr(p, '@', n) != NULL || n >= 400) {
            /* not echoed: it may hold a password */
            r = rk_error_set(err, RK_EINVAL,
                             "etcd endpoint %zu holds user info or is too long: give the user in "
                             "REKEY_ETCD_USER and the password in REKEY_ETCD_PASSWORD_FILE",
                             e->nendpoints + 1);
            goto fail;
        }
        if ((e->endpoints[e->nendpoints] = strndup(p, n)) == NULL)
            goto nomem;
        e->nendpoints++;
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    if (e->nendpoints == 0) {
        r = rk_error_set(err, RK_EINVAL, "etcd location has no endpoint");
        goto fail;
    }
    if (env_dup("REKEY_ETCD_USER", &e->user) != 0 || env_dup("REKEY_ETCD_CA_FILE", &e->ca_file) ||
        env_dup("REKEY_ETCD_CERT_FILE", &e->cert_file) ||
        env_dup("REKEY_ETCD_KEY_FILE", &e->key_file))
        goto nomem;
    if (e->user != NULL && (r = load_password(e, err)) != 0)
        goto fail;
    *out = &e->base;
    return 0;
nomem:
    r = rk_error_set(err, RK_ENOMEM, "out of memory");
fail:
    etcd_close(&e->base);
    return r;
}

/* ---- leases for leader election (backend.h, store/leader.h) --------------------------------- */

static int
etcd_lease_grant(struct backend *b, int ttl_s, int64_t *lease, struct rk_error *err)
{
    json_t *resp = NULL;
    int r;

    *lease = 0;
    /* A grant retried after a lost answer makes a second lease, which simply expires. */
    if ((r = call_t(as_etcd(b), "/v3/lease/grant", json_pack("{s:i}", "TTL", ttl_s), 1,
                    ETCD_LEASE_TIMEOUT_MS, &resp, err)) != 0)
        return r;
    *lease = etcd_j_i64(resp, "ID");
    json_decref(resp);
    if (*lease == 0)
        return rk_error_set(err, RK_EIO, "etcd granted no lease");
    return 0;
}

static int
etcd_lease_keepalive(struct backend *b, int64_t lease, int64_t *ttl_left, struct rk_error *err)
{
    json_t *resp = NULL;
    char id[24];
    int r;

    *ttl_left = 0;
    snprintf(id, sizeof(id), "%lld", (long long)lease);
    /* A streaming call in gRPC; through the gateway one request in, one result out. */
    if ((r = call_t(as_etcd(b), "/v3/lease/keepalive", json_pack("{s:s}", "ID", id), 1,
                    ETCD_LEASE_TIMEOUT_MS, &resp, err)) != 0)
        return r;
    *ttl_left = etcd_j_i64(json_object_get(resp, "result"), "TTL"); /* absent: the lease is gone */
    json_decref(resp);
    return 0;
}

static int
etcd_lease_revoke(struct backend *b, int64_t lease, struct rk_error *err)
{
    json_t *resp = NULL;
    char id[24];
    int r;

    snprintf(id, sizeof(id), "%lld", (long long)lease);
    r = call_t(as_etcd(b), "/v3/lease/revoke", json_pack("{s:s}", "ID", id), 1,
               ETCD_LEASE_TIMEOUT_MS, &resp, err);
    json_decref(resp);
    if (r != 0 && strstr(err->msg, "lease not found") != NULL)
        r = 0; /* expired already, or revoked by a try whose answer was lost */
    return r;
}

static int
etcd_claim(struct backend *b, const char *key, const char *val, int64_t lease, int only_if_absent,
           char **holder, int64_t *holder_lease, struct rk_error *err)
{
    json_t *req, *resp = NULL, *kv;
    char id[24];
    int r;

    if (holder != NULL)
        *holder = NULL;
    if (holder_lease != NULL)
        *holder_lease = 0;
    if ((r = check_key(key, err)) != 0)
        return r;
    snprintf(id, sizeof(id), "%lld", (long long)lease);
    if (only_if_absent)
        req = json_pack("{s:[{s:o, s:s, s:s, s:s}], s:[{s:{s:o, s:o, s:s}}], s:[{s:{s:o}}]}",
                        "compare", "key", j_b64(key, strlen(key)), "target", "CREATE", "result",
                        "EQUAL", "create_revision", "0", "success", "request_put", "key",
                        j_b64(key, strlen(key)), "value", j_b64(val, strlen(val)), "lease", id,
                        "failure", "request_range", "key", j_b64(key, strlen(key)));
    else
        req = json_pack("{s:[{s:{s:o, s:o, s:s}}]}", "success", "request_put", "key",
                        j_b64(key, strlen(key)), "value", j_b64(val, strlen(val)), "lease", id);
    /* Retried after a lost answer, a claim that had been written finds itself the holder: the
     * caller compares the holder with its own value. */
    if ((r = call_t(as_etcd(b), "/v3/kv/txn", req, 1, ETCD_LEASE_TIMEOUT_MS, &resp, err)) != 0)
        return r;
    if (!only_if_absent || json_is_true(json_object_get(resp, "succeeded"))) {
        r = 1;
        goto out;
    }
    r = 0;
    kv = json_array_get(
        json_object_get(json_object_get(json_array_get(json_object_get(resp, "responses"), 0),
                                        "response_range"),
                        "kvs"),
        0);
    if (holder_lease != NULL && kv != NULL)
        *holder_lease = etcd_j_i64(kv, "lease");
    if (holder != NULL && kv != NULL) {
        unsigned char *v = NULL;
        size_t vl = 0;

        if (etcd_j_unb64(kv, "value", &v, &vl) != 0 || memchr(v, '\0', vl) != NULL) {
            free(v);
            r = rk_error_set(err, RK_EIO, "etcd sent a holder of %s that does not decode", key);
            goto out;
        }
        *holder = (char *)v; /* etcd_j_unb64 puts a NUL after it */
    }
out:
    json_decref(resp);
    return r;
}

static const struct backend_ha_ops etcd_ha_ops = {
    .grant = etcd_lease_grant,
    .keepalive = etcd_lease_keepalive,
    .revoke = etcd_lease_revoke,
    .claim = etcd_claim,
};

void
etcd_backend_stats(struct backend *b, struct etcd_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (b == NULL || b->ops != &etcd_backend_ops)
        return;
    st->requests = atomic_load(&as_etcd(b)->requests);
    st->failovers = atomic_load(&as_etcd(b)->failovers);
    st->auths = atomic_load(&as_etcd(b)->auths);
    st->cache_hits = atomic_load(&as_etcd(b)->hits);
    st->cache_misses = atomic_load(&as_etcd(b)->misses);
    st->cache_loads = atomic_load(&as_etcd(b)->reloads);
    st->watch_endpoint = atomic_load(&as_etcd(b)->watch_ep);
}

const struct backend_ops etcd_backend_ops = {
    .version = BACKEND_OPS_VERSION,
    .name = "etcd",
    .open = etcd_open,
    .close = etcd_close,
    .get = etcd_get,
    .put = etcd_put,
    .del = etcd_del,
    .list = etcd_list,
    .txn = etcd_txn,
    .trim = NULL,
    .ha = &etcd_ha_ops,
};
