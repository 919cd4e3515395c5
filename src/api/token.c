/* token.c: service tokens stored as SHA-256 hashes behind the barrier (see token.h).
 *
 * Record (JSON, encrypted by the barrier) at "auth/token/id/<hash>":
 *   {"hash":"<hex>","accessor":"...","parent":"<hex>|","policies":[...],"display_name":"...",
 *    "meta":{...}|null,"creation_time":N,"expire_time":N,"ttl":N,"explicit_max_ttl":N,
 *    "num_uses":N,"renewable":bool,"orphan":bool,"period":N}   ("period" absent in old records)
 *
 * The expiry index entry of a record ("auth/token/expiry/<time>/<hash>", value "1") is written
 * and deleted in the same transaction as the record whenever its expire_time changes, so the
 * index and the records agree after any crash. */
#include "api/token.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "util/enc.h"
#include "util/timeutil.h"

#define ID_PREFIX "auth/token/id/"
#define ACC_PREFIX "auth/token/accessor/"
#define PARENT_PREFIX "auth/token/parent/"
#define EXP_PREFIX "auth/token/expiry/"
#define EXP_DONE_KEY "auth/token/expiry-indexed"
#define EXP_DIGITS 20 /* INT64_MAX has 19 digits: zero-padded, key order is time order */
#define EXP_KEY_LEN (sizeof(EXP_PREFIX) + EXP_DIGITS + 1 + TOKEN_HASH_HEX)
#define SWEEP_BATCH 256
#define USE_RETRIES 64
#define REVOKE_DEPTH_MAX 256

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* --- time arithmetic: every sum of a time and a duration saturates (a stored record may hold
 * anything; a request's durations are bounded by TOKEN_DURATION_MAX before they get here) --- */

static int64_t
add_sat(int64_t a, int64_t b)
{
    int64_t s;

    if (__builtin_add_overflow(a, b, &s))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return s;
}

/* The earlier of two expiries where 0 means "none". */
static int64_t
exp_min(int64_t a, int64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

static int64_t
max_lease(int64_t configured)
{
    return configured > 0 ? configured : TOKEN_MAX_LEASE_TTL_DEFAULT;
}

static void
exp_key(char out[EXP_KEY_LEN], int64_t t, const char *hash)
{
    snprintf(out, EXP_KEY_LEN, EXP_PREFIX "%0*" PRId64 "/%s", EXP_DIGITS, t > 0 ? t : 0, hash);
}

/* --- new expiries are told to a watcher (the server's sweeper) --- */

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static void (*watch_fn)(void *, int64_t);
static void *watch_arg;

void
token_expiry_watch(void (*fn)(void *arg, int64_t expire_time), void *arg)
{
    pthread_mutex_lock(&watch_mu);
    watch_fn = fn;
    watch_arg = arg;
    pthread_mutex_unlock(&watch_mu);
}

static void
watch_tell(int64_t expire_time)
{
    if (expire_time == 0)
        return;
    pthread_mutex_lock(&watch_mu);
    if (watch_fn != NULL)
        watch_fn(watch_arg, expire_time);
    pthread_mutex_unlock(&watch_mu);
}

void
token_info_clear(struct token_info *ti)
{
    if (ti == NULL)
        return;
    for (size_t i = 0; i < ti->npolicies && ti->policies != NULL; i++)
        free(ti->policies[i]);
    free(ti->policies);
    free(ti->meta_json);
    memset(ti, 0, sizeof(*ti));
}

/* SHA-256 fetched once: EVP_sha256() makes OpenSSL 3 look the implementation up again on
 * every digest, a measurable share of a cached request. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static void
token_digest(const char *token, size_t len, unsigned char md[32])
{
    unsigned int mdlen = 0;

    pthread_once(&sha256_once, sha256_fetch);
    EVP_Digest(token, len, md, &mdlen, sha256_md != NULL ? sha256_md : EVP_sha256(), NULL);
}

void
token_hash_hex(const char *token, size_t len, char out[TOKEN_HASH_HEX])
{
    unsigned char md[32];

    token_digest(token, len, md);
    hex_encode(md, sizeof(md), out);
    secure_wipe(md, sizeof(md));
}

static int
hash_ok(const char *h)
{
    if (h == NULL || strlen(h) != 64)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)h[i]) || isupper((unsigned char)h[i]))
            return 0;
    return 1;
}

static int
random_base62(char *out, size_t n)
{
    unsigned char b[64];
    size_t got = 0;

    while (got < n) {
        if (RAND_bytes(b, sizeof(b)) != 1)
            return -1;
        for (size_t i = 0; i < sizeof(b) && got < n; i++)
            if (b[i] < 248) /* 248 = 4 * 62: no modulo bias */
                out[got++] = base62[b[i] % 62];
    }
    out[n] = '\0';
    return 0;
}

/* A policy name: the router's name rule (router_name_check), written once. */
static int
policy_name_ok(const char *s)
{
    return router_name_check(s, strlen(s)) == 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* --- record encode / decode --- */

static json_t *
record_encode(const struct token_info *ti)
{
    json_t *pol = json_array(), *meta = NULL, *o;

    if (pol == NULL)
        return NULL;
    for (size_t i = 0; i < ti->npolicies; i++)
        json_array_append_new(pol, json_string(ti->policies[i]));
    if (ti->meta_json != NULL)
        meta = json_loads(ti->meta_json, 0, NULL);
    o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:I}", "hash",
                  ti->hash, "accessor", ti->accessor, "parent", ti->parent, "policies", pol,
                  "display_name", ti->display_name, "meta", meta != NULL ? meta : json_null(),
                  "creation_time", (json_int_t)ti->creation_time, "expire_time",
                  (json_int_t)ti->expire_time, "ttl", (json_int_t)ti->ttl, "explicit_max_ttl",
                  (json_int_t)ti->explicit_max_ttl, "num_uses", (json_int_t)ti->num_uses,
                  "renewable", ti->renewable, "orphan", ti->orphan, "period",
                  (json_int_t)ti->period);
    return o;
}

static int
record_decode(const struct secret *val, struct token_info *ti, struct rk_error *err)
{
    json_t *root = json_loadb((const char *)val->data, val->len, 0, NULL), *pol = NULL,
           *meta = NULL;
    const char *hash = NULL, *acc = NULL, *parent = NULL, *dn = NULL;
    json_int_t ct = 0, et = 0, ttl = 0, emt = 0, nu = 0, per = 0;
    int ren = 0, orphan = 0, r = -RK_ECORRUPT;

    memset(ti, 0, sizeof(*ti));
    if (root == NULL ||
        json_unpack(root, "{s:s, s:s, s:s, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s?I}",
                    "hash", &hash, "accessor", &acc, "parent", &parent, "policies", &pol,
                    "display_name", &dn, "meta", &meta, "creation_time", &ct, "expire_time", &et,
                    "ttl", &ttl, "explicit_max_ttl", &emt, "num_uses", &nu, "renewable", &ren,
                    "orphan", &orphan, "period", &per) != 0 ||
        !json_is_array(pol) || strlen(hash) >= TOKEN_HASH_HEX ||
        strlen(acc) >= TOKEN_ACCESSOR_LEN || strlen(parent) >= TOKEN_HASH_HEX) {
        rk_error_set(err, RK_ECORRUPT, "a token record does not parse");
        goto out;
    }
    snprintf(ti->hash, sizeof(ti->hash), "%s", hash);
    snprintf(ti->accessor, sizeof(ti->accessor), "%s", acc);
    snprintf(ti->parent, sizeof(ti->parent), "%s", parent);
    snprintf(ti->display_name, sizeof(ti->display_name), "%s", dn);
    ti->npolicies = json_array_size(pol);
    if (ti->npolicies > 0 && (ti->policies = calloc(ti->npolicies, sizeof(char *))) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        ti->npolicies = 0;
        goto out;
    }
    for (size_t i = 0; i < ti->npolicies; i++) {
        const char *p = json_string_value(json_array_get(pol, i));
        if (p == NULL || (ti->policies[i] = strdup(p)) == NULL) {
            r = rk_error_set(err, p == NULL ? RK_ECORRUPT : RK_ENOMEM, "token record policies");
            goto out;
        }
        if (strcmp(p, "root") == 0)
            ti->root = 1;
    }
    if (json_is_object(meta) && (ti->meta_json = json_dumps(meta, JSON_COMPACT)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    ti->creation_time = ct;
    ti->expire_time = et;
    ti->ttl = ttl;
    ti->explicit_max_ttl = emt;
    ti->period = per;
    ti->num_uses = nu;
    ti->renewable = ren;
    ti->orphan = orphan;
    r = 0;
out:
    if (r != 0)
        token_info_clear(ti);
    json_decref(root);
    return r;
}

static int
record_put(struct barrier_txn *t, const struct token_info *ti, struct rk_error *err)
{
    char key[sizeof(ID_PREFIX) + TOKEN_HASH_HEX];
    json_t *o = record_encode(ti);
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    int r = 0;

    json_decref(o);
    if (s == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    snprintf(key, sizeof(key), ID_PREFIX "%s", ti->hash);
    if (barrier_txn_put(t, key, s, strlen(s)) != 0)
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
    free(s);
    return r;
}

/* Reads the record for hash; an expired record reads as absent. */
static int
read_hash(struct barrier *br, const char *hash, struct token_info *ti, int *expired,
          struct rk_error *err)
{
    char key[sizeof(ID_PREFIX) + TOKEN_HASH_HEX];
    struct secret *val = NULL;
    int64_t rev = 0;
    int r;

    *expired = 0;
    if (!hash_ok(hash))
        return rk_error_set(err, RK_ENOTFOUND, "no such token");
    snprintf(key, sizeof(key), ID_PREFIX "%s", hash);
    r = barrier_get(br, key, &val, &rev, err);
    if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no such token");
    if (r != 0)
        return r;
    r = record_decode(val, ti, err);
    secret_free(val);
    if (r != 0)
        return r;
    ti->mod_rev = rev;
    /* The hash in the record must be the one we looked up by (constant time, as with any
     * comparison derived from a presented token). */
    if (strlen(ti->hash) != 64 || CRYPTO_memcmp(ti->hash, hash, 64) != 0) {
        token_info_clear(ti);
        return rk_error_set(err, RK_ECORRUPT, "a token record is stored under the wrong key");
    }
    if (ti->num_uses < 0) { /* its last use is spent; revocation is under way */
        token_info_clear(ti);
        return rk_error_set(err, RK_ENOTFOUND, "no such token");
    }
    if (ti->expire_time != 0 && ti->expire_time <= time_now()) {
        token_info_clear(ti);
        *expired = 1;
        return rk_error_set(err, RK_ENOTFOUND, "no such token");
    }
    return 0;
}

int
token_lookup_hash(struct barrier *br, const char *hash, struct token_info *ti, struct rk_error *err)
{
    int expired = 0, r = read_hash(br, hash, ti, &expired, err);

    if (expired) {
        struct rk_error e2;
        token_revoke_hash(br, hash, NULL, &e2); /* lazily; an error leaves it for later */
        rk_error_set(err, RK_ENOTFOUND, "no such token");
    }
    return r;
}

int
token_lookup(struct barrier *br, const char *token, struct token_info *ti, struct rk_error *err)
{
    char hash[TOKEN_HASH_HEX];
    size_t len = token != NULL ? strnlen(token, TOKEN_MAX_LEN + 1) : 0;

    if (len == 0 || len > TOKEN_MAX_LEN)
        return rk_error_set(err, RK_EINVAL, "missing or malformed token");
    token_hash_hex(token, len, hash);
    return token_lookup_hash(br, hash, ti, err);
}

int
token_lookup_accessor(struct barrier *br, const char *accessor, struct token_info *ti,
                      struct rk_error *err)
{
    char key[sizeof(ACC_PREFIX) + TOKEN_ACCESSOR_LEN + 1], hash[TOKEN_HASH_HEX];
    struct secret *val = NULL;
    int r;

    if (accessor == NULL || strlen(accessor) == 0 || strlen(accessor) >= TOKEN_ACCESSOR_LEN ||
        strchr(accessor, '/') != NULL)
        return rk_error_set(err, RK_ENOTFOUND, "no such accessor");
    snprintf(key, sizeof(key), ACC_PREFIX "%s", accessor);
    r = barrier_get(br, key, &val, NULL, err);
    if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no such accessor");
    if (r != 0)
        return r;
    if (val->len != 64) {
        secret_free(val);
        return rk_error_set(err, RK_ECORRUPT, "an accessor record does not parse");
    }
    memcpy(hash, val->data, 64);
    hash[64] = '\0';
    secret_free(val);
    return token_lookup_hash(br, hash, ti, err);
}

static int
id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > TOKEN_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return 0;
    return 1;
}

int
token_create(struct barrier *br, const struct token_create_opts *o, struct secret **token,
             struct token_info *out, struct rk_error *err)
{
    struct token_info ti = {0}, parent = {0};
    struct barrier_txn *t = NULL;
    struct secret *tok = NULL;
    char key[sizeof(PARENT_PREFIX) + 2 * TOKEN_HASH_HEX + sizeof(ACC_PREFIX) + 32];
    int r = -RK_EINTERNAL, root = 0, dflt = 0;
    size_t np = 0;
    int64_t maxl = max_lease(o->max_lease_ttl), ttl;

    if (out != NULL)
        memset(out, 0, sizeof(*out));
    *token = NULL;
    if (o->npolicies > TOKEN_MAX_POLICIES)
        return rk_error_set(err, RK_EINVAL, "too many policies (at most %d)", TOKEN_MAX_POLICIES);
    if (o->ttl < 0 || o->explicit_max_ttl < 0 || o->period < 0 || o->num_uses < 0)
        return rk_error_set(err, RK_EINVAL,
                            "ttl, explicit_max_ttl, period and num_uses must be >= 0");
    if (o->ttl > TOKEN_DURATION_MAX || o->explicit_max_ttl > TOKEN_DURATION_MAX ||
        o->period > TOKEN_DURATION_MAX || maxl > TOKEN_DURATION_MAX)
        return rk_error_set(err, RK_EINVAL, "a duration is too large (at most %" PRId64 "s)",
                            TOKEN_DURATION_MAX);
    if (o->display_name != NULL && strlen(o->display_name) >= TOKEN_DISPLAY_MAX - 8)
        return rk_error_set(err, RK_EINVAL, "display_name is too long");
    if (o->meta_json != NULL && strlen(o->meta_json) > TOKEN_META_MAX)
        return rk_error_set(err, RK_EINVAL, "meta is too large");
    if (o->id != NULL && !id_ok(o->id))
        return rk_error_set(err, RK_EINVAL, "a token id must be 1 to %d printable characters",
                            TOKEN_MAX_LEN);

    /* Policies: lowercased, checked, sorted, unique; "default" added unless asked not to. */
    ti.policies = calloc(o->npolicies + 1, sizeof(char *));
    if (ti.policies == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (size_t i = 0; i < o->npolicies; i++) {
        char *p = strdup(o->policies[i]);
        if (p == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        for (char *c = p; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (!policy_name_ok(p)) {
            free(p);
            r = rk_error_set(err, RK_EINVAL, "invalid policy name");
            goto out;
        }
        root |= strcmp(p, "root") == 0;
        dflt |= strcmp(p, "default") == 0;
        ti.policies[np++] = p;
        ti.npolicies = np;
    }
    if (!o->no_default_policy && !root && !dflt) {
        if ((ti.policies[np++] = strdup("default")) == NULL) {
            r = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
        ti.npolicies = np;
    }
    qsort(ti.policies, ti.npolicies, sizeof(char *), cmp_str);
    for (size_t i = 1; i < ti.npolicies;) {
        if (strcmp(ti.policies[i], ti.policies[i - 1]) == 0) {
            free(ti.policies[i]);
            memmove(&ti.policies[i], &ti.policies[i + 1], (ti.npolicies - i - 1) * sizeof(char *));
            ti.npolicies--;
        } else {
            i++;
        }
    }
    ti.root = root;

    /* The token and its hash. */
    if (o->id != NULL) {
        tok = secret_from_str(o->id);
    } else {
        unsigned char rnd[TOKEN_RAND_BYTES];
        size_t plen = strlen(TOKEN_PREFIX);
        tok = secret_new(plen + 4 * ((TOKEN_RAND_BYTES + 2) / 3) + 1);
        if (tok != NULL) {
            if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
                r = rk_error_set(err, RK_EINTERNAL, "the random generator failed");
                goto out;
            }
            memcpy(tok->data, TOKEN_PREFIX, plen);
            tok->len = plen + base64url_encode(rnd, sizeof(rnd), (char *)tok->data + plen);
            tok->data[tok->len] = 0;
            secure_wipe(rnd, sizeof(rnd));
        }
    }
    if (tok == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    token_hash_hex((const char *)tok->data, tok->len, ti.hash);
    if (random_base62(ti.accessor, TOKEN_ACCESSOR_LEN - 1) != 0) {
        r = rk_error_set(err, RK_EINTERNAL, "the random generator failed");
        goto out;
    }
    if (o->display_name != NULL && *o->display_name != '\0') {
        if (strcmp(o->display_name, "root") == 0 || strncmp(o->display_name, "token", 5) == 0)
            snprintf(ti.display_name, sizeof(ti.display_name), "%s", o->display_name);
        else
            snprintf(ti.display_name, sizeof(ti.display_name), "token-%s", o->display_name);
    } else {
        snprintf(ti.display_name, sizeof(ti.display_name), "%s", root ? "root" : "token");
    }
    /* As Vault does: every byte outside [A-Za-z0-9-] becomes '-', so a display name (shown in
     * logs, the audit log and `rekey history`) can carry no control character or markup. */
    for (char *c = ti.display_name; *c != '\0'; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-'))
            *c = '-';
    if (o->meta_json != NULL && (ti.meta_json = strdup(o->meta_json)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    /* The lifetime (token.h, "Lifetimes"): a periodic token lives one period at a time; any
     * other non-root token without a ttl gets the system maximum; everything is capped by the
     * system maximum and explicit_max_ttl. */
    ti.creation_time = time_now();
    ti.explicit_max_ttl = o->explicit_max_ttl;
    ti.period = o->period < maxl ? o->period : maxl;
    ttl = ti.period > 0 ? ti.period : o->ttl;
    if (ttl == 0 && !root)
        ttl = maxl;
    if (ttl > maxl)
        ttl = maxl;
    if (ti.explicit_max_ttl > 0 && (ttl == 0 || ttl > ti.explicit_max_ttl))
        ttl = ti.explicit_max_ttl;
    ti.expire_time = ttl > 0 ? add_sat(ti.creation_time, ttl) : 0;
    ti.num_uses = o->num_uses;
    ti.orphan = o->parent_hash == NULL || *o->parent_hash == '\0';

    if ((t = barrier_txn_new(br)) == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    if (!ti.orphan) {
        /* The parent must still exist when the child is committed: compare its revision. */
        if ((r = token_lookup_hash(br, o->parent_hash, &parent, err)) != 0)
            goto out;
        /* A child never outlives its parent (also a root child of an expiring root). */
        ti.expire_time = exp_min(ti.expire_time, parent.expire_time);
        if (ti.expire_time != 0)
            ttl = ti.expire_time - ti.creation_time;
        snprintf(ti.parent, sizeof(ti.parent), "%s", parent.hash);
        snprintf(key, sizeof(key), ID_PREFIX "%s", parent.hash);
        if (barrier_txn_cmp(t, key, parent.mod_rev) != 0)
            goto nomem;
        snprintf(key, sizeof(key), PARENT_PREFIX "%s/%s", parent.hash, ti.hash);
        if (barrier_txn_put(t, key, "1", 1) != 0)
            goto nomem;
    }
    ti.ttl = ttl;
    ti.renewable = o->renewable && ti.ttl > 0;
    snprintf(key, sizeof(key), ID_PREFIX "%s", ti.hash);
    if (barrier_txn_cmp(t, key, 0) != 0)
        goto nomem;
    if ((r = record_put(t, &ti, err)) != 0)
        goto out;
    snprintf(key, sizeof(key), ACC_PREFIX "%s", ti.accessor);
    if (barrier_txn_cmp(t, key, 0) != 0 || barrier_txn_put(t, key, ti.hash, 64) != 0)
        goto nomem;
    if (ti.expire_time != 0) {
        char ek[EXP_KEY_LEN];
        exp_key(ek, ti.expire_time, ti.hash);
        if (barrier_txn_put(t, ek, "1", 1) != 0)
            goto nomem;
    }
    r = barrier_txn_commit(t, NULL, err);
    if (r == -RK_ECONFLICT) {
        r = rk_error_set(err, o->id != NULL ? RK_EEXISTS : RK_ECONFLICT,
                         o->id != NULL ? "a token with that id already exists"
                                       : "the parent token changed; retry");
        goto out;
    }
    if (r != 0)
        goto out;
    watch_tell(ti.expire_time);
    *token = tok;
    tok = NULL;
    if (out != NULL) {
        *out = ti;
        memset(&ti, 0, sizeof(ti));
    }
    r = 0;
    goto out;
nomem:
    r = rk_error_set(err, RK_ENOMEM, "out of memory");
out:
    barrier_txn_free(t);
    secret_free(tok);
    token_info_clear(&ti);
    token_info_clear(&parent);
    return r;
}

int
token_create_root(struct barrier *br, const char *id, struct secret **token, struct rk_error *err)
{
    const char *pol[] = {"root"};
    struct token_create_opts o = {
        .policies = pol,
        .npolicies = 1,
        .no_default_policy = 1,
        .display_name = "root",
        .id = id,
    };

    return token_create(br, &o, token, NULL, err);
}

/* --- revocation --- */

struct child_list {
    char **v;
    size_t n, cap;
    size_t plen;
};

static int
child_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct child_list *cl = arg;
    const char *h;

    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strlen(key) < cl->plen)
        return 0;
    h = key + cl->plen;
    if (!hash_ok(h))
        return 0;
    if (cl->n == cl->cap) {
        size_t nc = cl->cap ? cl->cap * 2 : 8;
        char **nv = realloc(cl->v, nc * sizeof(char *));
        if (nv == NULL)
            return -RK_ENOMEM;
        cl->v = nv;
        cl->cap = nc;
    }
    if ((cl->v[cl->n] = strdup(h)) == NULL)
        return -RK_ENOMEM;
    cl->n++;
    return 0;
}

static void (*revoke_hook)(const char *accessor);

void
token_revoke_hook_set(void (*fn)(const char *accessor))
{
    revoke_hook = fn;
}

static int
revoke_rec(struct barrier *br, const char *hash, size_t *count, int depth, struct rk_error *err)
{
    char prefix[sizeof(PARENT_PREFIX) + TOKEN_HASH_HEX + 1];
    char key[sizeof(PARENT_PREFIX) + 2 * TOKEN_HASH_HEX + sizeof(ACC_PREFIX) + 32];
    struct child_list cl = {0};
    struct barrier_txn *t = NULL;
    struct secret *val = NULL;
    struct token_info ti = {0};
    int r, have = 0;

    if (depth > REVOKE_DEPTH_MAX)
        return rk_error_set(err, RK_ELIMIT, "token tree too deep to revoke");
    snprintf(prefix, sizeof(prefix), PARENT_PREFIX "%s/", hash);
    cl.plen = strlen(prefix);
    if ((r = barrier_list(br, prefix, NULL, 0, child_cb, &cl, err)) != 0)
        goto out;
    for (size_t i = 0; i < cl.n; i++) {
        r = revoke_rec(br, cl.v[i], count, depth + 1, err);
        if (r == -RK_ENOTFOUND) {
            /* A dangling index entry (the child is gone): drop it. */
            snprintf(key, sizeof(key), PARENT_PREFIX "%s/%s", hash, cl.v[i]);
            r = barrier_del(br, key, err);
            if (r == -RK_ENOTFOUND)
                r = 0;
        }
        if (r != 0)
            goto out;
    }
    /* Read the record even if expired: its accessor and parent entry must go too. */
    snprintf(key, sizeof(key), ID_PREFIX "%s", hash);
    r = barrier_get(br, key, &val, NULL, err);
    if (r == -RK_ENOTFOUND) {
        r = rk_error_set(err, RK_ENOTFOUND, "no such token");
        goto out;
    }
    if (r != 0)
        goto out;
    have = record_decode(val, &ti, err) == 0;
    if ((t = barrier_txn_new(br)) == NULL || barrier_txn_del(t, key) != 0)
        goto nomem;
    if (have) {
        snprintf(key, sizeof(key), ACC_PREFIX "%s", ti.accessor);
        if (ti.accessor[0] != '\0' && barrier_txn_del(t, key) != 0)
            goto nomem;
        snprintf(key, sizeof(key), PARENT_PREFIX "%s/%s", ti.parent, hash);
        if (ti.parent[0] != '\0' && barrier_txn_del(t, key) != 0)
            goto nomem;
        if (ti.expire_time != 0) {
            char ek[EXP_KEY_LEN];
            exp_key(ek, ti.expire_time, hash);
            if (barrier_txn_del(t, ek) != 0)
                goto nomem;
        }
    }
    if ((r = barrier_txn_commit(t, NULL, err)) != 0)
        goto out;
    if (have && ti.accessor[0] != '\0' && revoke_hook != NULL)
        revoke_hook(ti.accessor);
    if (count != NULL)
        (*count)++;
    r = 0;
    goto out;
nomem:
    r = rk_error_set(err, RK_ENOMEM, "out of memory");
out:
    for (size_t i = 0; i < cl.n; i++)
        free(cl.v[i]);
    free(cl.v);
    barrier_txn_free(t);
    secret_free(val);
    token_info_clear(&ti);
    return r;
}

int
token_revoke_hash(struct barrier *br, const char *hash, size_t *count, struct rk_error *err)
{
    if (count != NULL)
        *count = 0;
    if (!hash_ok(hash))
        return rk_error_set(err, RK_ENOTFOUND, "no such token");
    return revoke_rec(br, hash, count, 0, err);
}

/* --- uses and renewal --- */

int
token_use(struct barrier *br, const char *token, struct token_info *ti, struct rk_error *err)
{
    char hash[TOKEN_HASH_HEX], key[sizeof(ID_PREFIX) + TOKEN_HASH_HEX];
    size_t len = token != NULL ? strnlen(token, TOKEN_MAX_LEN + 1) : 0;
    int r;

    if (len == 0 || len > TOKEN_MAX_LEN)
        return rk_error_set(err, RK_EINVAL, "missing or malformed token");
    token_hash_hex(token, len, hash);
    for (int attempt = 0; attempt < USE_RETRIES; attempt++) {
        struct barrier_txn *t;

        if ((r = token_lookup_hash(br, hash, ti, err)) != 0)
            return r;
        if (ti->num_uses == 0)
            return 0;
        if (ti->num_uses == 1) {
            /* The last use: this request is allowed, the token is gone after it. A concurrent
             * request that also saw 1 races us for the delete; only one revocation counts. */
            snprintf(key, sizeof(key), ID_PREFIX "%s", hash);
            if ((t = barrier_txn_new(br)) == NULL) {
                token_info_clear(ti);
                return rk_error_set(err, RK_ENOMEM, "out of memory");
            }
            /* Mark the record spent under a compare first, so exactly one caller wins. */
            ti->num_uses = -1;
            if (barrier_txn_cmp(t, key, ti->mod_rev) != 0 || record_put(t, ti, err) != 0) {
                barrier_txn_free(t);
                token_info_clear(ti);
                return rk_error_set(err, RK_ENOMEM, "out of memory");
            }
            r = barrier_txn_commit(t, NULL, err);
            barrier_txn_free(t);
            ti->num_uses = 1;
            if (r == -RK_ECONFLICT) {
                token_info_clear(ti);
                continue;
            }
            if (r != 0) {
                token_info_clear(ti);
                return r;
            }
            struct rk_error e2;
            token_revoke_hash(br, hash, NULL, &e2);
            return 0;
        }
        snprintf(key, sizeof(key), ID_PREFIX "%s", hash);
        if ((t = barrier_txn_new(br)) == NULL) {
            token_info_clear(ti);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        ti->num_uses--;
        if (barrier_txn_cmp(t, key, ti->mod_rev) != 0 || record_put(t, ti, err) != 0) {
            barrier_txn_free(t);
            token_info_clear(ti);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        r = barrier_txn_commit(t, NULL, err);
        barrier_txn_free(t);
        ti->num_uses++;
        if (r == -RK_ECONFLICT) {
            token_info_clear(ti);
            continue;
        }
        if (r != 0)
            token_info_clear(ti);
        return r;
    }
    return rk_error_set(err, RK_ECONFLICT, "token is busy; retry");
}

int
token_renew(struct barrier *br, const char *hash, int64_t increment, int64_t max_lease_ttl,
            struct token_info *out, struct rk_error *err)
{
    char key[sizeof(ID_PREFIX) + TOKEN_HASH_HEX], ek[EXP_KEY_LEN];
    struct token_info ti = {0}, parent = {0};
    int64_t maxl = max_lease(max_lease_ttl);
    int r = -RK_ECONFLICT;

    if (increment < 0)
        return rk_error_set(err, RK_EINVAL, "increment must be >= 0");
    if (increment > TOKEN_DURATION_MAX || maxl > TOKEN_DURATION_MAX)
        return rk_error_set(err, RK_EINVAL, "increment is too large (at most %" PRId64 "s)",
                            TOKEN_DURATION_MAX);
    for (int attempt = 0; attempt < USE_RETRIES; attempt++) {
        struct barrier_txn *t;
        int64_t now = time_now(), inc, exp, old;

        if ((r = token_lookup_hash(br, hash, &ti, err)) != 0)
            return r;
        if (!ti.renewable || ti.ttl == 0) {
            token_info_clear(&ti);
            return rk_error_set(err, RK_EINVAL, "lease is not renewable");
        }
        /* Vault's rules: a periodic token gets its period whatever was asked; any other the
         * increment (else its ttl), within the system maximum from now and from creation. */
        inc = ti.period > 0 ? ti.period : increment > 0 ? increment : ti.ttl;
        exp = add_sat(now, inc < maxl ? inc : maxl);
        if (ti.period == 0)
            exp = exp_min(exp, add_sat(ti.creation_time, maxl));
        if (ti.explicit_max_ttl > 0)
            exp = exp_min(exp, add_sat(ti.creation_time, ti.explicit_max_ttl));
        if (ti.parent[0] != '\0') {
            /* Never past the parent's expiry. A parent that is gone takes this token with it
             * (token_lookup_hash revokes an expired parent's subtree). */
            r = token_lookup_hash(br, ti.parent, &parent, err);
            if (r == -RK_ENOTFOUND) {
                struct rk_error e2;
                token_revoke_hash(br, ti.hash, NULL, &e2);
                token_info_clear(&ti);
                return rk_error_set(err, RK_ENOTFOUND, "no such token");
            }
            if (r != 0) {
                token_info_clear(&ti);
                return r;
            }
            exp = exp_min(exp, parent.expire_time);
            token_info_clear(&parent);
        }
        if (exp <= now) {
            token_info_clear(&ti);
            return rk_error_set(err, RK_EINVAL, "the token has reached its maximum TTL");
        }
        old = ti.expire_time;
        ti.expire_time = exp;
        snprintf(key, sizeof(key), ID_PREFIX "%s", ti.hash);
        if ((t = barrier_txn_new(br)) == NULL) {
            token_info_clear(&ti);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        r = barrier_txn_cmp(t, key, ti.mod_rev);
        if (r == 0 && old != exp) {
            exp_key(ek, old, ti.hash);
            r = old != 0 ? barrier_txn_del(t, ek) : 0;
            exp_key(ek, exp, ti.hash);
            if (r == 0)
                r = barrier_txn_put(t, ek, "1", 1);
        }
        if (r != 0 || record_put(t, &ti, err) != 0) {
            barrier_txn_free(t);
            token_info_clear(&ti);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        r = barrier_txn_commit(t, NULL, err);
        barrier_txn_free(t);
        if (r == -RK_ECONFLICT) {
            token_info_clear(&ti);
            continue;
        }
        if (r == 0)
            watch_tell(exp);
        if (r == 0 && out != NULL) {
            *out = ti;
            memset(&ti, 0, sizeof(ti));
        }
        token_info_clear(&ti);
        return r;
    }
    return rk_error_set(err, RK_ECONFLICT, "token is busy; retry");
}

static int
count_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    (void)key;
    (void)val;
    (void)vlen;
    (void)mod_rev;
    (*(size_t *)arg)++;
    return 0;
}

int
token_count(struct barrier *br, size_t *count, struct rk_error *err)
{
    *count = 0;
    return barrier_list(br, ID_PREFIX, NULL, 0, count_cb, count, err);
}

/* --- expiry: the sweeper's half (see token.h) --- */

struct due {
    int64_t t;
    char key[EXP_KEY_LEN];
    char hash[TOKEN_HASH_HEX]; /* "" for a malformed key (dropped) */
};

struct due_list {
    int64_t now;
    size_t max, n;
    struct due *v;
    int64_t next; /* the first entry not taken (0 = none seen) */
};

/* Parses "<20 digits>/<hash>" after the prefix. Returns 0 or -1. */
static int
exp_parse(const char *rest, int64_t *t, char hash[TOKEN_HASH_HEX])
{
    int64_t v = 0;

    for (int i = 0; i < EXP_DIGITS; i++) {
        if (rest[i] < '0' || rest[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (rest[i] - '0');
    }
    if (rest[EXP_DIGITS] != '/' || !hash_ok(rest + EXP_DIGITS + 1))
        return -1;
    *t = v;
    memcpy(hash, rest + EXP_DIGITS + 1, TOKEN_HASH_HEX);
    return 0;
}

static int
due_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct due_list *dl = arg;
    struct due d = {0};
    size_t plen = strlen(EXP_PREFIX);

    (void)val;
    (void)vlen;
    (void)mod_rev;
    if (strlen(key) >= sizeof(d.key))
        return 0; /* not one of ours (too long): left alone */
    snprintf(d.key, sizeof(d.key), "%s", key);
    if (strncmp(key, EXP_PREFIX, plen) != 0 || exp_parse(key + plen, &d.t, d.hash) != 0)
        d.hash[0] = '\0'; /* malformed: taken, to be dropped */
    else if (d.t > dl->now) {
        dl->next = d.t; /* the index is in time order: nothing after this is due */
        return 1;
    }
    if (dl->n == dl->max) {
        dl->next = dl->now; /* more are due than one call takes: the caller comes back */
        return 1;
    }
    dl->v[dl->n++] = d;
    return 0;
}

int
token_sweep(struct barrier *br, int64_t now, size_t max, size_t *revoked, int64_t *next_due,
            struct rk_error *err)
{
    struct due_list dl = {.now = now, .max = max > 0 ? max : SWEEP_BATCH};
    struct secret *val = NULL;
    size_t count = 0;
    int r;

    if (revoked != NULL)
        *revoked = 0;
    if (next_due != NULL)
        *next_due = 0;
    if ((dl.v = calloc(dl.max, sizeof(*dl.v))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    /* One more than max is listed so that a full batch knows whether more follow. */
    if ((r = barrier_list(br, EXP_PREFIX, NULL, dl.max + 1, due_cb, &dl, err)) != 0)
        goto out;
    for (size_t i = 0; i < dl.n; i++) {
        struct due *d = &dl.v[i];
        char key[sizeof(ID_PREFIX) + TOKEN_HASH_HEX];
        struct token_info ti = {0};
        size_t n = 0;
        int stale = d->hash[0] == '\0';

        if (!stale) {
            /* The record decides: revoke only what has really expired at exactly this entry's
             * time (a record's expiry and its entry change in one transaction). */
            snprintf(key, sizeof(key), ID_PREFIX "%s", d->hash);
            r = barrier_get(br, key, &val, NULL, err);
            if (r == -RK_ENOTFOUND) {
                stale = 1;
            } else if (r != 0) {
                goto out;
            } else {
                stale = record_decode(val, &ti, err) != 0 || ti.expire_time != d->t;
                token_info_clear(&ti);
                secret_free(val);
                val = NULL;
            }
        }
        if (!stale) {
            r = token_revoke_hash(br, d->hash, &n, err);
            count += n;
            if (r == -RK_ENOTFOUND) /* revoked meanwhile, e.g. with its parent just now */
                r = 0;
            if (r != 0)
                goto out;
            continue;
        }
        if ((r = barrier_del(br, d->key, err)) != 0 && r != -RK_ENOTFOUND)
            goto out;
    }
    r = 0;
out:
    if (r == 0 && next_due != NULL)
        *next_due = dl.next;
    if (revoked != NULL)
        *revoked = count;
    secret_free(val);
    free(dl.v);
    return r;
}

struct id_page {
    char (*h)[TOKEN_HASH_HEX];
    size_t n, listed, max;
    char last[512]; /* the last key listed: the next page starts after it */
};

static int
id_page_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct id_page *pg = arg;
    size_t plen = strlen(ID_PREFIX);

    (void)val;
    (void)vlen;
    (void)mod_rev;
    pg->listed++;
    snprintf(pg->last, sizeof(pg->last), "%s", key);
    if (strlen(key) > plen && hash_ok(key + plen) && pg->n < pg->max)
        memcpy(pg->h[pg->n++], key + plen, TOKEN_HASH_HEX);
    return 0;
}

int
token_expiry_backfill(struct barrier *br, size_t *added, struct rk_error *err)
{
    struct id_page pg = {.max = SWEEP_BATCH};
    struct secret *val = NULL;
    int r;

    if (added != NULL)
        *added = 0;
    r = barrier_get(br, EXP_DONE_KEY, &val, NULL, err);
    secret_free(val);
    val = NULL;
    if (r != -RK_ENOTFOUND)
        return r; /* 0: done already */
    if ((pg.h = calloc(pg.max, sizeof(*pg.h))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    for (;;) {
        size_t got;
        pg.n = pg.listed = 0;
        r = barrier_list(br, ID_PREFIX, pg.last[0] != '\0' ? pg.last : NULL, pg.max, id_page_cb,
                         &pg, err);
        if (r != 0)
            goto out;
        got = pg.n;
        for (size_t i = 0; i < got; i++) {
            struct token_info ti = {0};
            struct barrier_txn *t;
            char ek[EXP_KEY_LEN];
            int expired = 0;

            r = read_hash(br, pg.h[i], &ti, &expired, err);
            if (r == -RK_ENOTFOUND && expired) {
                /* Expired before the index existed: revoke it (and its subtree) now. */
                struct rk_error e2;
                token_revoke_hash(br, pg.h[i], NULL, &e2);
                continue;
            }
            if (r == -RK_ENOTFOUND || r == -RK_ECORRUPT)
                continue;
            if (r != 0)
                goto out;
            if (ti.expire_time == 0) {
                token_info_clear(&ti);
                continue;
            }
            /* The record's revision is compared: a concurrent renewal writes its own entry. */
            snprintf(ek, sizeof(ek), ID_PREFIX "%s", ti.hash);
            if ((t = barrier_txn_new(br)) == NULL || barrier_txn_cmp(t, ek, ti.mod_rev) != 0) {
                barrier_txn_free(t);
                token_info_clear(&ti);
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                goto out;
            }
            exp_key(ek, ti.expire_time, ti.hash);
            if (barrier_txn_put(t, ek, "1", 1) != 0) {
                barrier_txn_free(t);
                token_info_clear(&ti);
                r = rk_error_set(err, RK_ENOMEM, "out of memory");
                goto out;
            }
            r = barrier_txn_commit(t, NULL, err);
            barrier_txn_free(t);
            token_info_clear(&ti);
            if (r == -RK_ECONFLICT)
                r = 0;
            else if (r != 0)
                goto out;
            else if (added != NULL)
                (*added)++;
        }
        if (pg.listed < pg.max)
            break;
    }
    r = barrier_put(br, EXP_DONE_KEY, "1", 1, err);
out:
    free(pg.h);
    return r;
}

/* --- the validated-token cache (see token.h) --- */

#define TC_STRIPES 16 /* power of two */
#define TC_BUCKETS 64 /* per stripe, power of two */

struct tc_entry {
    unsigned char key[32]; /* SHA-256 of the token */
    struct tc_entry *hnext;
    struct tc_entry *older, *newer; /* the stripe's insertion order, for eviction */
    int64_t cached_ms;
    struct token_info ti;
};

struct tc_stripe {
    pthread_mutex_t mu;
    struct tc_entry *b[TC_BUCKETS];
    struct tc_entry *oldest, *newest;
    size_t n;
};

struct token_cache {
    size_t max_per_stripe;
    int64_t ttl_ms;
    atomic_uint_fast64_t gen; /* bumped by every flush */
    atomic_uint_fast64_t hits, misses;
    struct tc_stripe s[TC_STRIPES];
};

/* Deep copy of a record; 0 or -RK_ENOMEM (dst is then cleared). */
static int
ti_copy(struct token_info *dst, const struct token_info *src)
{
    *dst = *src;
    dst->policies = NULL;
    dst->meta_json = NULL;
    dst->npolicies = 0;
    if (src->npolicies > 0) {
        if ((dst->policies = calloc(src->npolicies, sizeof(char *))) == NULL)
            goto nomem;
        for (size_t i = 0; i < src->npolicies; i++) {
            if ((dst->policies[i] = strdup(src->policies[i])) == NULL)
                goto nomem;
            dst->npolicies = i + 1;
        }
    }
    if (src->meta_json != NULL && (dst->meta_json = strdup(src->meta_json)) == NULL)
        goto nomem;
    return 0;
nomem:
    token_info_clear(dst);
    return -RK_ENOMEM;
}

/* Clears a record, wiping its strings first (accessor, metadata: not secrets, but not
 * anybody's business after a seal either). */
static void
ti_wipe(struct token_info *ti)
{
    for (size_t i = 0; i < ti->npolicies && ti->policies != NULL; i++)
        secure_wipe(ti->policies[i], strlen(ti->policies[i]));
    if (ti->meta_json != NULL)
        secure_wipe(ti->meta_json, strlen(ti->meta_json));
    token_info_clear(ti);
    secure_wipe(ti, sizeof(*ti));
}

static void
tc_entry_free(struct tc_entry *e)
{
    ti_wipe(&e->ti);
    freezero(e, sizeof(*e));
}

static unsigned
tc_bucket(const unsigned char key[32])
{
    return (unsigned)(key[1] | key[2] << 8) & (TC_BUCKETS - 1);
}

/* Unlinks e from its stripe (caller holds the lock). */
static void
tc_unlink(struct tc_stripe *st, struct tc_entry *e)
{
    struct tc_entry **pp = &st->b[tc_bucket(e->key)];

    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        st->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        st->newest = e->older;
    st->n--;
}

static struct tc_entry *
tc_find(struct tc_stripe *st, const unsigned char key[32])
{
    for (struct tc_entry *e = st->b[tc_bucket(key)]; e != NULL; e = e->hnext)
        if (CRYPTO_memcmp(e->key, key, 32) == 0)
            return e;
    return NULL;
}

int
token_cache_new(size_t max, int64_t ttl_ms, struct token_cache **out)
{
    struct token_cache *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return -RK_ENOMEM;
    if (max == 0)
        max = TOKEN_CACHE_MAX;
    c->max_per_stripe = (max + TC_STRIPES - 1) / TC_STRIPES;
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : TOKEN_CACHE_TTL_MS;
    atomic_init(&c->gen, 0);
    atomic_init(&c->hits, 0);
    atomic_init(&c->misses, 0);
    for (size_t i = 0; i < TC_STRIPES; i++)
        pthread_mutex_init(&c->s[i].mu, NULL);
    *out = c;
    return 0;
}

static void
tc_stripe_clear(struct tc_stripe *st)
{
    struct tc_entry *e = st->oldest, *next;

    for (; e != NULL; e = next) {
        next = e->newer;
        tc_entry_free(e);
    }
    memset(st->b, 0, sizeof(st->b));
    st->oldest = st->newest = NULL;
    st->n = 0;
}

void
token_cache_flush(struct token_cache *c)
{
    if (c == NULL)
        return;
    /* Bump first: a lookup that read the store before this point compares the generation
     * under its stripe's lock, so it either inserted before we clear that stripe or sees the
     * new generation and does not insert. */
    atomic_fetch_add(&c->gen, 1);
    for (size_t i = 0; i < TC_STRIPES; i++) {
        pthread_mutex_lock(&c->s[i].mu);
        tc_stripe_clear(&c->s[i]);
        pthread_mutex_unlock(&c->s[i].mu);
    }
}

void
token_cache_free(struct token_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < TC_STRIPES; i++) {
        tc_stripe_clear(&c->s[i]);
        pthread_mutex_destroy(&c->s[i].mu);
    }
    free(c);
}

void
token_cache_stats(struct token_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c != NULL ? atomic_load(&c->hits) : 0;
    *misses = c != NULL ? atomic_load(&c->misses) : 0;
}

/* Inserts a copy of ti under key unless the cache was flushed since gen was read. */
static void
tc_insert(struct token_cache *c, const unsigned char key[32], const struct token_info *ti,
          uint_fast64_t gen)
{
    struct tc_stripe *st = &c->s[key[0] & (TC_STRIPES - 1)];
    struct tc_entry *e = calloc(1, sizeof(*e)), *old;
    unsigned b;

    if (e == NULL)
        return;
    if (ti_copy(&e->ti, ti) != 0) {
        freezero(e, sizeof(*e));
        return;
    }
    memcpy(e->key, key, 32);
    e->cached_ms = time_mono_ms();
    pthread_mutex_lock(&st->mu);
    if (atomic_load(&c->gen) != gen) {
        pthread_mutex_unlock(&st->mu);
        tc_entry_free(e);
        return;
    }
    if ((old = tc_find(st, key)) != NULL) {
        tc_unlink(st, old);
        tc_entry_free(old);
    }
    while (st->n >= c->max_per_stripe && st->oldest != NULL) {
        old = st->oldest;
        tc_unlink(st, old);
        tc_entry_free(old);
    }
    b = tc_bucket(key);
    e->hnext = st->b[b];
    st->b[b] = e;
    e->older = st->newest;
    if (st->newest != NULL)
        st->newest->newer = e;
    else
        st->oldest = e;
    st->newest = e;
    st->n++;
    pthread_mutex_unlock(&st->mu);
}

int
token_lookup_cached(struct token_cache *c, struct barrier *br, const char *token,
                    struct token_info *ti, struct rk_error *err)
{
    unsigned char key[32];
    char hash[TOKEN_HASH_HEX];
    size_t len = token != NULL ? strnlen(token, TOKEN_MAX_LEN + 1) : 0;
    struct tc_stripe *st;
    struct tc_entry *e;
    uint_fast64_t gen;
    int r, expired = 0;

    if (c == NULL)
        return token_lookup(br, token, ti, err);
    memset(ti, 0, sizeof(*ti));
    if (len == 0 || len > TOKEN_MAX_LEN)
        return rk_error_set(err, RK_EINVAL, "missing or malformed token");
    token_digest(token, len, key);
    st = &c->s[key[0] & (TC_STRIPES - 1)];
    pthread_mutex_lock(&st->mu);
    if ((e = tc_find(st, key)) != NULL) {
        int64_t now_ms = time_mono_ms();
        if (now_ms - e->cached_ms < c->ttl_ms &&
            (e->ti.expire_time == 0 || e->ti.expire_time > time_now())) {
            r = ti_copy(ti, &e->ti);
            pthread_mutex_unlock(&st->mu);
            secure_wipe(key, sizeof(key));
            if (r != 0)
                return rk_error_set(err, RK_ENOMEM, "out of memory");
            atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
            return 0;
        }
        tc_unlink(st, e); /* stale: read the store again */
        tc_entry_free(e);
    }
    pthread_mutex_unlock(&st->mu);
    atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
    gen = atomic_load(&c->gen);
    hex_encode(key, sizeof(key), hash);
    r = read_hash(br, hash, ti, &expired, err);
    if (expired) {
        /* As token_lookup_hash: revoke it lazily, with its children, which may be cached. */
        struct rk_error e2;
        token_revoke_hash(br, hash, NULL, &e2);
        token_cache_flush(c);
        rk_error_set(err, RK_ENOTFOUND, "no such token");
    } else if (r == 0 && ti->num_uses == 0) {
        tc_insert(c, key, ti, gen);
    }
    secure_wipe(key, sizeof(key));
    secure_wipe(hash, sizeof(hash));
    return r;
}
