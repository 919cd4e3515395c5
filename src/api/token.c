/* token.c: service tokens stored as SHA-256 hashes behind the barrier (see token.h).
 *
 * Record (JSON, encrypted by the barrier) at "auth/token/id/<hash>":
 *   {"hash":"<hex>","accessor":"...","parent":"<hex>|","policies":[...],"display_name":"...",
 *    "meta":{...}|null,"creation_time":N,"expire_time":N,"ttl":N,"explicit_max_ttl":N,
 *    "num_uses":N,"renewable":bool,"orphan":bool,"period":N}   ("period" absent in old records)
 *
 * The expiry index entry of a record ("auth/token/expiry/<time>/<hash>", value "1") is written
 * and deleted in the same transaction as the record whenever its expire_time changes, so the
 * index and the records agree after any crash.
 *
 * This file holds the records: creation, lookup, revocation, uses and renewal. The expiry index
 * (its key format, the sweep, the backfill, the watcher) is in token-expiry.c, the validated-token
 * cache in token-cache.c; what they share with this file is declared in token-int.h. */
#include "api/token.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "api/token-int.h"
#include "util/enc.h"
#include "util/timeutil.h"

#define ACC_PREFIX "auth/token/accessor/"
#define PARENT_PREFIX "auth/token/parent/"
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

void
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

int
token_hash_ok(const char *h)
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

int
token_record_decode(const struct secret *val, struct token_info *ti, struct rk_error *err)
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

/* Reads the record for hash (token-int.h); an expired record reads as absent. */
int
token_read_hash(struct barrier *br, const char *hash, struct token_info *ti, int *expired,
                struct rk_error *err)
{
    char key[sizeof(ID_PREFIX) + TOKEN_HASH_HEX];
    struct secret *val = NULL;
    int64_t rev = 0;
    int r;

    *expired = 0;
    if (!token_hash_ok(hash))
        return rk_error_set(err, RK_ENOTFOUND, "no such token");
    snprintf(key, sizeof(key), ID_PREFIX "%s", hash);
    r = barrier_get(br, key, &val, &rev, err);
    if (r == -RK_ENOTFOUND)
        return rk_error_set(err, RK_ENOTFOUND, "no such token");
    if (r != 0)
        return r;
    r = token_record_decode(val, ti, err);
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
    int expired = 0, r = token_read_hash(br, hash, ti, &expired, err);

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
    ti.granted = ttl;
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
        token_exp_key(ek, ti.expire_time, ti.hash);
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
    token_expiry_tell(ti.expire_time);
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
    if (!token_hash_ok(h))
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
    have = token_record_decode(val, &ti, err) == 0;
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
            token_exp_key(ek, ti.expire_time, hash);
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
    if (!token_hash_ok(hash))
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
        ti.granted = exp - now;
        snprintf(key, sizeof(key), ID_PREFIX "%s", ti.hash);
        if ((t = barrier_txn_new(br)) == NULL) {
            token_info_clear(&ti);
            return rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        r = barrier_txn_cmp(t, key, ti.mod_rev);
        if (r == 0 && old != exp) {
            token_exp_key(ek, old, ti.hash);
            r = old != 0 ? barrier_txn_del(t, ek) : 0;
            token_exp_key(ek, exp, ti.hash);
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
            token_expiry_tell(exp);
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
