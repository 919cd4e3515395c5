/* client.c: the CLI's HTTP client for `rekey server` (see client.h). One easy handle per
 * request: the CLI sends a handful at most, and a fresh handle keeps no state between them. */
#include "cli/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kvjson.h"
#include "cli/cli.h"
#include "secrets/kv.h"
#include "util/httpc.h"
#include "util/fsutil.h"
#include "util/parse.h"
#include "util/timeutil.h"

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
    while (len > 0 &&
           (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
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
    if ((r = httpc_init(err)) != 0)
        return r;
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
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
                    *p == '/';
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
        n +=
            (size_t)snprintf(msg + n, sizeof(msg) - n, "%s%s", n ? "; " : "", json_string_value(e));
    }
    if (status == 403)
        return rk_error_set(err, code, "permission denied: %s",
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
        return rk_error_set(
            err, code, "rekey at %s is sealed: unseal it with 'rekey operator unseal'", c->addr);
    if (status == 429)
        return rk_error_set(err, code,
                            "rekey at %s throttles this client after failed "
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

int64_t
client_time_us(const json_t *v)
{
    int64_t us = 0;

    if (!json_is_string(v) || json_string_value(v)[0] == '\0' ||
        time_parse_rfc3339(json_string_value(v), &us) != 0)
        return 0;
    return us;
}

static void
copy_str(char *dst, size_t cap, const json_t *v)
{
    snprintf(dst, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* One entry of a metadata answer's "versions" into vm (version number given). */
static void
version_entry(const json_t *e, uint64_t version, struct kv_version_meta *vm)
{
    enum kv_stage st = KV_STAGE_CURRENT;
    const json_t *s = json_object_get(e, "stage");

    memset(vm, 0, sizeof(*vm));
    vm->version = version;
    vm->created_us = client_time_us(json_object_get(e, "created_time"));
    vm->deletion_us = client_time_us(json_object_get(e, "deletion_time"));
    vm->destroyed = json_is_true(json_object_get(e, "destroyed"));
    if (json_is_string(s) && kv_stage_parse(json_string_value(s), &st) == 0)
        vm->stage = st;
    else
        vm->stage = KV_STAGE_CURRENT;
    copy_str(vm->fingerprint, sizeof(vm->fingerprint), json_object_get(e, "fingerprint"));
    copy_str(vm->author, sizeof(vm->author), json_object_get(e, "author"));
    copy_str(vm->reason, sizeof(vm->reason), json_object_get(e, "reason"));
}

static int
cmp_version(const void *a, const void *b)
{
    const struct kv_version_meta *x = a, *y = b;

    return x->version < y->version ? -1 : x->version > y->version;
}

static uint64_t
json_u64(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

int
client_kv_metadata(struct rk_client *c, const char *path, struct kv_meta **out,
                   struct rk_error *err)
{
    char url[PATH_MAX_LEN * 3 + 64];
    size_t ul = 0;
    const char *sub = NULL;
    json_t *resp = NULL, *d, *vers, *e, *custom;
    struct kv_meta *m = NULL;
    const char *key;
    int64_t dva = 0;
    int r;

    *out = NULL;
    if ((r = client_kv_subpath(path, 0, &sub, err)) != 0)
        return r;
    ul = (size_t)snprintf(url, sizeof(url), "/v1/secret/metadata/");
    if (client_path_escape(sub, url, sizeof(url), &ul) != 0)
        return rk_error_set(err, RK_EINVAL, "path is too long");
    if ((r = client_request(c, "GET", url, NULL, NULL, &resp, err)) != 0) {
        if (r == -RK_ENOTFOUND)
            rk_error_set(err, RK_ENOTFOUND, "no secret at %s", path);
        goto out;
    }
    if ((d = client_data(resp)) == NULL || !json_is_object(d)) {
        r = rk_error_set(err, RK_ECORRUPT, "the server's metadata answer has no data");
        goto out;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    m->created_us = client_time_us(json_object_get(d, "created_time"));
    m->updated_us = client_time_us(json_object_get(d, "updated_time"));
    /* Vault's current_version is the latest written; rekey adds the stage-current one. */
    m->latest_version = json_u64(json_object_get(d, "current_version"));
    m->current_version = json_u64(json_object_get(d, "current_stage_version"));
    m->oldest_version = json_u64(json_object_get(d, "oldest_version"));
    m->max_versions = (uint32_t)json_u64(json_object_get(d, "max_versions"));
    m->cas_required = json_is_true(json_object_get(d, "cas_required"));
    if (json_object_get(d, "delete_version_after") != NULL &&
        kvjson_duration_value(json_object_get(d, "delete_version_after"), "delete_version_after",
                              &dva, err) == 0)
        m->delete_version_after = dva;
    rk_error_clear(err);
    custom = json_object_get(d, "custom_metadata");
    m->custom_metadata = json_is_object(custom) ? json_deep_copy(custom) : json_object();
    vers = json_object_get(d, "versions");
    if (m->custom_metadata == NULL ||
        (json_object_size(vers) > 0 &&
         (m->versions = calloc(json_object_size(vers), sizeof(*m->versions))) == NULL)) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    json_object_foreach(vers, key, e)
    {
        int64_t v;
        if (parse_int64(key, 1, INT64_MAX, &v) != 0)
            continue;
        version_entry(e, (uint64_t)v, &m->versions[m->nversions++]);
    }
    if (m->nversions > 1)
        qsort(m->versions, m->nversions, sizeof(*m->versions), cmp_version);
    *out = m;
    m = NULL;
    r = 0;
out:
    kv_meta_free(m);
    json_decref(resp);
    return r;
}

void
client_version_meta(const json_t *md, const struct kv_meta *m, struct kv_version_meta *vm)
{
    uint64_t v = json_u64(json_object_get(md, "version"));

    memset(vm, 0, sizeof(*vm));
    vm->stage = KV_STAGE_CURRENT;
    for (size_t i = 0; m != NULL && i < m->nversions; i++)
        if (m->versions[i].version == v)
            *vm = m->versions[i];
    vm->version = v;
    vm->created_us = client_time_us(json_object_get(md, "created_time"));
    vm->deletion_us = client_time_us(json_object_get(md, "deletion_time"));
    vm->destroyed = json_is_true(json_object_get(md, "destroyed"));
}

int
client_rekey_post(struct rk_client *c, const char *route, const char *path, json_t *body,
                  json_t **data, struct rk_error *err)
{
    char url[PATH_MAX_LEN * 3 + 64];
    size_t ul;
    json_t *resp = NULL;
    int r;

    if (data != NULL)
        *data = NULL;
    ul = (size_t)snprintf(url, sizeof(url), "/v1/rekey/%s%s", route, path != NULL ? "/" : "");
    if (path != NULL && client_path_escape(path, url, sizeof(url), &ul) != 0)
        return rk_error_set(err, RK_EINVAL, "path is too long");
    client_min_timeout(c, CLIENT_ROTATION_TIMEOUT_S);
    r = client_request(c, "POST", url, body, NULL, &resp, err);
    if (data != NULL && client_data(resp) != NULL && !json_is_null(client_data(resp)))
        *data = json_incref(client_data(resp));
    json_decref(resp);
    return r;
}

void
client_print_steps(const json_t *data)
{
    size_t i;
    json_t *s;

    json_array_foreach(json_object_get(data, "steps"), i, s)
    {
        const json_t *step = json_object_get(s, "step"), *msg = json_object_get(s, "message");
        printf("  %-8s %s\n", cli_esc(json_string_value(step)), cli_esc(json_string_value(msg)));
    }
}
