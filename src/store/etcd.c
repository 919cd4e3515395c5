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
 * answered from a read cache kept by a watch once it has caught up with etcd's revision at the
 * read's start ("the read cache" below, docs/etcd.md). */
#include "store/etcd.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/enc.h"
#include "util/fsutil.h"
#include "util/httpc.h"
#include "util/secret.h"

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_POOL_MAX 16
#define ETCD_LIST_CHUNK 256
#define ETCD_RESP_MAX (256u << 20)
#define ETCD_CONNECT_TIMEOUT_MS 1000L
#define ETCD_TIMEOUT_MS 8000L
/* Leader election's requests: a member that is alive but silent (stopped, partitioned) must not
 * hold a renewal past the lease's TTL, so they move on to the next member after this. */
#define ETCD_LEASE_TIMEOUT_MS 900L

struct etcd {
    struct backend base;
    char *endpoints[ETCD_MAX_ENDPOINTS];
    size_t nendpoints;
    atomic_size_t cur; /* the endpoint that answered last */

    pthread_mutex_t lock; /* pool and token */
    CURL *pool[ETCD_POOL_MAX];
    size_t npool;
    char *token;        /* auth token, or NULL */
    unsigned token_gen; /* bumped at each new token */

    char *user;              /* REKEY_ETCD_USER, or NULL */
    struct secret *password; /* with user */
    char *ca_file, *cert_file, *key_file;

    atomic_uint_fast64_t requests, failovers, auths;

    /* The read cache (see "the read cache" below), under cmu. */
    pthread_mutex_t cmu;
    pthread_cond_t ccv;  /* applied moved, or the watcher's state changed */
    struct centry *ents; /* sorted by key */
    size_t nents, cap, bytes;
    size_t max_bytes; /* over it the cache turns itself off; 0: no cache */
    int64_t applied;  /* etcd's revision the cache holds every change through; 0: invalid */
    int cstarted, cstop, coff, wsock;
    pthread_t watcher;
    /* Read index: one revision request serves every read that began before it was sent. */
    pthread_mutex_t rmu;
    pthread_cond_t rcv;
    uint64_t arrived, covered;
    int inflight;
    int64_t known; /* the highest cluster revision a revision request saw */
    atomic_uint_fast64_t hits, misses, reloads;
    atomic_size_t watch_ep;
};

/* One cached key: its value (barrier ciphertext, as etcd holds it) and etcd's mod_revision. */
struct centry {
    char *key;
    unsigned char *val;
    size_t vlen;
    int64_t mod_rev;
};

struct buf {
    char *p;
    size_t len, cap;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
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
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (e->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
    if (e->cert_file != NULL)
        curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_file);
    if (e->key_file != NULL)
        curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_file);
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
static int
call(struct etcd *e, const char *path, json_t *req, int idempotent, json_t **resp,
     struct rk_error *err)
{
    return call_t(e, path, req, idempotent, ETCD_TIMEOUT_MS, resp, err);
}

/* ---- JSON helpers --------------------------------------------------------------------------- */

/* A 64-bit number etcd sent as a JSON string (or, to be lenient, a number); 0 when absent. */
static int64_t
j_i64(json_t *o, const char *name)
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
    return rk_rev(j_i64(json_object_get(resp, "header"), "revision"));
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
static int
j_unb64(json_t *o, const char *name, unsigned char **out, size_t *len)
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
    if ((r = call(e, "/v3/kv/range", json_pack("{s:o}", "key", j_b64(key, strlen(key))), 1, &resp,
                  err)) != 0)
        return r;
    kv = json_array_get(json_object_get(resp, "kvs"), 0); /* no "kvs" at all: not found */
    if (kv == NULL) {
        r = rk_error_set(err, RK_ENOTFOUND, "no key %s", key);
        goto out;
    }
    if (j_unb64(kv, "value", val, vlen) != 0) {
        r = rk_error_set(err, RK_EIO, "etcd sent a value for %s that is not base64", key);
        goto out;
    }
    if (mod_rev != NULL)
        *mod_rev = rk_rev(j_i64(kv, "mod_revision"));
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
    if ((r = call(
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
    if ((r = call(as_etcd(b), "/v3/kv/deleterange",
                  json_pack("{s:o}", "key", j_b64(key, strlen(key))), 0, &resp, err)) != 0)
        return r;
    if (j_i64(resp, "deleted") == 0)
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
static int
list_direct(struct etcd *e, const char *prefix, const char *start_after, size_t limit,
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
        if ((r = call(e, "/v3/kv/range", req, 1, &resp, err)) != 0)
            break;
        if (at_rev == 0) {
            at_rev = j_i64(json_object_get(resp, "header"), "revision");
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

            if (j_unb64(kv, "key", &k, &kl) != 0 || kl == 0 || memchr(k, '\0', kl) != NULL ||
                (!keys_only && j_unb64(kv, "value", &v, &vl) != 0)) {
                free(k);
                free(v);
                r = rk_error_set(err, RK_EIO, "etcd sent a key or value that does not decode");
                break;
            }
            cr = cb(arg, (const char *)k, keys_only ? NULL : v, vl,
                    rk_rev(j_i64(kv, "mod_revision")));
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

/* ---- the read cache ------------------------------------------------------------------------- *
 *
 * A copy of the whole keyspace (key -> value, mod_revision), loaded by one range at revision L
 * and kept up to date by one watch stream from L + 1 (a background thread, "the watcher"; on a
 * compaction, a cancelled or broken stream: the cache is dropped, loaded again, watched again).
 * applied is the revision the cache holds every change through: the load's, then the
 * mod_revision of each event applied (the watch covers every key, so every revision etcd makes
 * comes as events; one revision's events come in one message).
 *
 * No stale read: a get or list first asks etcd its revision R with a small linearizable request
 * begun after the read began (read_index: one request serves every read waiting when it is sent),
 * then waits until applied >= R (at most ETCD_CACHE_WAIT_MS) and answers from the cache: every
 * write acknowledged by any member before the read began has a revision <= R. On a timeout (the
 * stream is stuck: the watcher is told to reconnect) or while the cache is loading, the read goes
 * to etcd directly. A read is thus one tiny round trip shared by concurrent readers instead of a
 * range per key.
 *
 * Memory: keys and values as etcd holds them (values are barrier ciphertext), plus ~48 bytes a
 * key; REKEY_ETCD_CACHE_MB (default 512) caps it: past it the cache turns itself off and every
 * read goes to etcd; REKEY_ETCD_CACHE_MB=0 never starts it. The watcher starts at the first read,
 * so a short-lived CLI command that only writes never loads the keyspace. */

#define ETCD_CACHE_WAIT_MS 1000
#define ETCD_CACHE_MB_DEFAULT 512

/* The index of key in the cache, or where it would go (*found 0). Under cmu. */
static size_t
c_find(struct etcd *e, const char *key, int *found)
{
    size_t lo = 0, hi = e->nents;

    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->ents[mid].key, key);

        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Sets key to (val, vlen, mod_rev) in the cache, taking val (malloc'd). Under cmu. */
static int
c_put(struct etcd *e, const char *key, unsigned char *val, size_t vlen, int64_t mod_rev)
{
    int found;
    size_t i = c_find(e, key, &found);

    if (found) {
        e->bytes = e->bytes - e->ents[i].vlen + vlen;
        free(e->ents[i].val);
        e->ents[i].val = val;
        e->ents[i].vlen = vlen;
        e->ents[i].mod_rev = mod_rev;
        return 0;
    }
    if (e->nents == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 256;
        struct centry *n = realloc(e->ents, cap * sizeof(*n));

        if (n == NULL)
            return -1;
        e->ents = n;
        e->cap = cap;
    }
    char *k = strdup(key);

    if (k == NULL)
        return -1;
    memmove(e->ents + i + 1, e->ents + i, (e->nents - i) * sizeof(*e->ents));
    e->ents[i] = (struct centry){k, val, vlen, mod_rev};
    e->nents++;
    e->bytes += strlen(key) + vlen + sizeof(struct centry) + 16;
    return 0;
}

/* Removes key from the cache. Under cmu. */
static void
c_del(struct etcd *e, const char *key)
{
    int found;
    size_t i = c_find(e, key, &found);

    if (!found)
        return;
    e->bytes -= strlen(key) + e->ents[i].vlen + sizeof(struct centry) + 16;
    free(e->ents[i].key);
    free(e->ents[i].val);
    memmove(e->ents + i, e->ents + i + 1, (e->nents - i - 1) * sizeof(*e->ents));
    e->nents--;
}

/* Empties the cache and marks it invalid. Under cmu. */
static void
c_clear(struct etcd *e)
{
    for (size_t i = 0; i < e->nents; i++) {
        free(e->ents[i].key);
        free(e->ents[i].val);
    }
    free(e->ents);
    e->ents = NULL;
    e->nents = e->cap = e->bytes = 0;
    e->applied = 0;
}

/* Waits on ccv for at most ms milliseconds. Under cmu. */
static void
c_wait_ms(struct etcd *e, long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&e->ccv, &e->cmu, &ts);
}

/* Makes the watcher's stream end now (it then reloads, or stops when cstop). Under cmu. */
static void
c_break_stream(struct etcd *e)
{
    if (e->wsock >= 0)
        shutdown(e->wsock, SHUT_RDWR);
}

static int
load_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct etcd *e = arg;
    unsigned char *v = malloc(vlen + 1);
    int r = 0;

    if (v == NULL)
        return -RK_ENOMEM;
    memcpy(v, val, vlen);
    pthread_mutex_lock(&e->cmu);
    /* list_direct gives rekey's revision: back to etcd's */
    if (c_put(e, key, v, vlen, mod_rev + 1) != 0) {
        free(v);
        r = -RK_ENOMEM;
    } else if (e->bytes > e->max_bytes) {
        r = -RK_ELIMIT;
    }
    if (e->cstop)
        r = -RK_EUNAVAILABLE;
    pthread_mutex_unlock(&e->cmu);
    return r;
}

/* The watch stream's state. */
struct wstream {
    struct etcd *e;
    struct buf line; /* what came after the last newline */
    int failed;      /* an error, cancellation or compaction came: reload */
};

/* Applies one message of the watch stream. Returns 0, or -1 when the stream must end. */
static int
w_apply(struct wstream *ws, json_t *msg)
{
    struct etcd *e = ws->e;
    json_t *res = json_object_get(msg, "result"), *evs;
    int64_t top = 0;
    int r = 0;

    if (res == NULL || json_object_get(msg, "error") != NULL)
        return -1;
    if (json_is_true(json_object_get(res, "canceled")) || j_i64(res, "compact_revision") != 0)
        return -1;
    evs = json_object_get(res, "events");
    pthread_mutex_lock(&e->cmu);
    for (size_t i = 0; i < json_array_size(evs) && r == 0; i++) {
        json_t *ev = json_array_get(evs, i), *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type"));
        unsigned char *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        int64_t mr = j_i64(kv, "mod_revision");

        if (j_unb64(kv, "key", &k, &kl) != 0) {
            r = -1;
        } else if (kl == 0 || memchr(k, '\0', kl) != NULL) {
            /* not a key rekey can name: not cached */
        } else if (type != NULL && strcmp(type, "DELETE") == 0) {
            c_del(e, (const char *)k);
        } else if (j_unb64(kv, "value", &v, &vl) != 0 ||
                   c_put(e, (const char *)k, v, vl, mr) != 0) {
            free(v);
            r = -1;
        }
        free(k);
        if (mr > top)
            top = mr;
    }
    if (r == 0 && e->bytes > e->max_bytes) {
        e->coff = 1; /* too large: reads go to etcd from now on */
        r = -1;
    }
    if (r == 0 && top > e->applied)
        e->applied = top;
    if (r != 0)
        e->applied = 0;
    pthread_cond_broadcast(&e->ccv);
    pthread_mutex_unlock(&e->cmu);
    return r;
}

static size_t
w_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct wstream *ws = arg;
    size_t n = size * nmemb;
    char *nl;

    if (on_body(data, size, nmemb, &ws->line) != n)
        return 0;
    while ((nl = memchr(ws->line.p, '\n', ws->line.len)) != NULL) {
        size_t ll = (size_t)(nl - ws->line.p);
        json_t *msg = json_loadb(ws->line.p, ll, 0, NULL);
        int r = msg != NULL ? w_apply(ws, msg) : (ll == 0 ? 0 : -1);

        json_decref(msg);
        memmove(ws->line.p, nl + 1, ws->line.len - ll - 1);
        ws->line.len -= ll + 1;
        ws->line.p[ws->line.len] = '\0';
        if (r != 0) {
            ws->failed = 1;
            return 0;
        }
    }
    return n;
}

static curl_socket_t
w_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct etcd *e = arg;
    curl_socket_t s;

    (void)purpose;
    s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    pthread_mutex_lock(&e->cmu);
    e->wsock = s;
    if (e->cstop && s >= 0)
        shutdown(s, SHUT_RDWR);
    pthread_mutex_unlock(&e->cmu);
    return s;
}

static int
w_close_socket(void *arg, curl_socket_t s)
{
    struct etcd *e = arg;

    pthread_mutex_lock(&e->cmu);
    if (e->wsock == s)
        e->wsock = -1;
    pthread_mutex_unlock(&e->cmu);
    return close(s);
}

static int
w_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct etcd *e = arg;
    int stop;

    (void)a, (void)b, (void)c, (void)d;
    pthread_mutex_lock(&e->cmu);
    stop = e->cstop;
    pthread_mutex_unlock(&e->cmu);
    return stop;
}

/* Streams the watch of every key from etcd's revision from, on endpoint ep, applying events
 * until the stream ends (error, cancellation, c_break_stream). */
static void
w_stream(struct etcd *e, size_t ep, int64_t from)
{
    char url[512], auth[1024], body[160];
    struct curl_slist *hdrs = NULL;
    struct wstream ws = {.e = e};
    CURL *h = curl_easy_init();

    if (h == NULL)
        return;
    snprintf(url, sizeof(url), "%s/v3/watch", e->endpoints[ep]);
    /* key "\0" with range_end "\0": every key */
    snprintf(body, sizeof(body),
             "{\"create_request\":{\"key\":\"AA==\",\"range_end\":\"AA==\",\"start_revision\":"
             "\"%lld\"}}",
             (long long)from);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (e->user != NULL) {
        pthread_mutex_lock(&e->lock);
        if (e->token != NULL) {
            snprintf(auth, sizeof(auth), "Authorization: %s", e->token);
            hdrs = curl_slist_append(hdrs, auth);
            secure_wipe(auth, sizeof(auth));
        }
        pthread_mutex_unlock(&e->lock);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, w_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ws);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, w_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, e);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, w_close_socket);
    curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, e);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, w_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, e);
    if (e->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, e->ca_file);
    if (e->cert_file != NULL)
        curl_easy_setopt(h, CURLOPT_SSLCERT, e->cert_file);
    if (e->key_file != NULL)
        curl_easy_setopt(h, CURLOPT_SSLKEY, e->key_file);
    atomic_store(&e->watch_ep, ep);
    curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    free(ws.line.p);
}

static void *
watcher(void *arg)
{
    struct etcd *e = arg;
    size_t ep = atomic_load(&e->cur) % e->nendpoints;
    long pause_ms = 50; /* doubles while streams keep ending at once (up to 5 s) */

    pthread_mutex_lock(&e->cmu);
    while (!e->cstop && !e->coff) {
        struct rk_error err = {0};
        int64_t at = 0;
        int r;

        c_clear(e);
        pthread_mutex_unlock(&e->cmu);
        atomic_fetch_add(&e->reloads, 1);
        r = list_direct(e, "", NULL, 0, 0, load_cb, e, &at, &err);
        pthread_mutex_lock(&e->cmu);
        if (r == -RK_ELIMIT) {
            e->coff = 1;
            break;
        }
        if (r == 0 && at > 0 && !e->cstop) {
            e->applied = at;
            pthread_cond_broadcast(&e->ccv);
            struct timespec t0, t1;

            pthread_mutex_unlock(&e->cmu);
            /* the member that answered the load, then the next one after each broken stream */
            clock_gettime(CLOCK_MONOTONIC, &t0);
            w_stream(e, ep, at + 1);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            ep = (ep + 1) % e->nendpoints;
            pause_ms = t1.tv_sec - t0.tv_sec >= 2 ? 50 : (pause_ms < 2500 ? pause_ms * 2 : 5000);
            pthread_mutex_lock(&e->cmu);
        } else {
            pause_ms = 500; /* not a busy loop when etcd is down */
        }
        if (!e->cstop)
            c_wait_ms(e, pause_ms);
    }
    c_clear(e);
    pthread_cond_broadcast(&e->ccv);
    pthread_mutex_unlock(&e->cmu);
    return NULL;
}

/* Starts the watcher once. Returns 1 when the cache may answer reads. */
static int
cache_on(struct etcd *e)
{
    int on;

    if (e->max_bytes == 0)
        return 0;
    pthread_mutex_lock(&e->cmu);
    if (!e->cstarted && !e->cstop) {
        e->cstarted = pthread_create(&e->watcher, NULL, watcher, e) == 0 ? 1 : -1;
        if (e->cstarted < 0)
            e->coff = 1;
    }
    on = !e->coff && e->cstarted == 1;
    pthread_mutex_unlock(&e->cmu);
    return on;
}

/* etcd's current revision by a small linearizable request sent after this call began (shared
 * with the other reads waiting for one). Returns 0 with *rev, or -RK_E*. */
static int
read_index(struct etcd *e, int64_t *rev, struct rk_error *err)
{
    uint64_t ticket;
    int r = 0;

    pthread_mutex_lock(&e->rmu);
    ticket = ++e->arrived;
    while (e->covered < ticket && r == 0) {
        if (!e->inflight) {
            uint64_t upto = e->arrived; /* every read that began before the request is sent */
            json_t *resp = NULL;
            int64_t got = 0;

            e->inflight = 1;
            pthread_mutex_unlock(&e->rmu);
            r = call(e, "/v3/kv/range", json_pack("{s:s, s:b}", "key", "AA==", "count_only", 1), 1,
                     &resp, err);
            if (r == 0)
                got = j_i64(json_object_get(resp, "header"), "revision");
            json_decref(resp);
            pthread_mutex_lock(&e->rmu);
            e->inflight = 0;
            if (r == 0 && got > 0) {
                if (got > e->known)
                    e->known = got;
                if (upto > e->covered)
                    e->covered = upto;
            } else if (r == 0) {
                r = rk_error_set(err, RK_EIO, "etcd sent no revision");
            }
            pthread_cond_broadcast(&e->rcv);
        } else {
            pthread_cond_wait(&e->rcv, &e->rmu);
        }
    }
    *rev = e->known;
    pthread_mutex_unlock(&e->rmu);
    return r;
}

/* Waits until the cache holds every change through etcd's revision rev. Returns 1 with cmu held,
 * or 0 (cmu not held) when it does not within ETCD_CACHE_WAIT_MS. */
static int
cache_catch_up(struct etcd *e, int64_t rev)
{
    struct timespec t0, now;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_mutex_lock(&e->cmu);
    for (;;) {
        long ms;

        if (e->coff || e->cstop)
            break;
        if (e->applied > 0 && e->applied >= rev)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ms = (now.tv_sec - t0.tv_sec) * 1000L + (now.tv_nsec - t0.tv_nsec) / 1000000L;
        if (ms >= ETCD_CACHE_WAIT_MS) {
            if (e->applied > 0)
                c_break_stream(e); /* a stream that stalls (a stopped member): go elsewhere */
            break;
        }
        c_wait_ms(e, ETCD_CACHE_WAIT_MS - ms);
    }
    pthread_mutex_unlock(&e->cmu);
    return 0;
}

/* Makes the cache ready to answer a read that begins now: 1 with cmu held, or 0 (read etcd). */
static int
cache_ready(struct etcd *e)
{
    struct rk_error err = {0};
    int64_t rev;

    if (!cache_on(e))
        return 0;
    pthread_mutex_lock(&e->cmu);
    int loading = e->applied == 0;
    pthread_mutex_unlock(&e->cmu);
    if (loading || read_index(e, &rev, &err) != 0 || !cache_catch_up(e, rev)) {
        atomic_fetch_add(&e->misses, 1);
        return 0;
    }
    atomic_fetch_add(&e->hits, 1);
    return 1;
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
    if (!cache_ready(e))
        return get_direct(b, key, val, vlen, mod_rev, err);
    i = c_find(e, key, &found);
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
    if (!cache_ready(e))
        return list_direct(e, prefix, start_after, limit, keys_only, cb, arg, NULL, err);
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
            i = c_find(e, after, &found);
            if (found)
                i++;
        } else {
            i = c_find(e, prefix, &found);
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
    if ((r = call(as_etcd(b), "/v3/kv/txn", req, 0, &resp, err)) != 0)
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
    pthread_mutex_lock(&e->cmu);
    e->cstop = 1;
    c_break_stream(e);
    pthread_cond_broadcast(&e->ccv);
    pthread_mutex_unlock(&e->cmu);
    if (e->cstarted == 1)
        pthread_join(e->watcher, NULL);
    c_clear(e);
    pthread_mutex_destroy(&e->cmu);
    pthread_cond_destroy(&e->ccv);
    pthread_mutex_destroy(&e->rmu);
    pthread_cond_destroy(&e->rcv);
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
    {
        pthread_condattr_t ca;
        const char *mb = getenv("REKEY_ETCD_CACHE_MB");
        char *end = NULL;
        long long n = mb != NULL && mb[0] != '\0' ? strtoll(mb, &end, 10) : ETCD_CACHE_MB_DEFAULT;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&e->ccv, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&e->cmu, NULL);
        pthread_mutex_init(&e->rmu, NULL);
        pthread_cond_init(&e->rcv, NULL);
        e->wsock = -1;
        if ((end != NULL && *end != '\0') || n < 0 || n > (1LL << 20)) {
            r = rk_error_set(err, RK_EINVAL, "REKEY_ETCD_CACHE_MB is not a number of MiB");
            e->nendpoints = 0;
            goto fail;
        }
        e->max_bytes = (size_t)n << 20;
    }
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
    *lease = j_i64(resp, "ID");
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
    *ttl_left = j_i64(json_object_get(resp, "result"), "TTL"); /* absent: the lease is gone */
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
           char **holder, struct rk_error *err)
{
    json_t *req, *resp = NULL, *kv;
    char id[24];
    int r;

    if (holder != NULL)
        *holder = NULL;
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
    if (holder != NULL && kv != NULL) {
        unsigned char *v = NULL;
        size_t vl = 0;

        if (j_unb64(kv, "value", &v, &vl) != 0 || memchr(v, '\0', vl) != NULL) {
            free(v);
            r = rk_error_set(err, RK_EIO, "etcd sent a holder of %s that does not decode", key);
            goto out;
        }
        *holder = (char *)v; /* j_unb64 puts a NUL after it */
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
