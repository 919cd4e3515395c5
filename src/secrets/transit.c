/* transit.c: transit keyrings over the barrier (see transit.h for the model, the records and
 * the cache). transit-crypto.c does the cryptography; this file stores, caches and applies
 * Vault's rules.
 *
 * Locks: the process's list of engines (engines_mu), then an engine's cache table (t->mu), then
 * a cached keyring's key slots (ring->mu); each is held only for memory work, never across a
 * store call that writes, nor while a key is generated. A store read of one key's material may
 * happen under ring->mu (the first use of a version). */
#include "secrets/transit.h"
#include "secrets/transit-int.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/enc.h"
#include "util/parse.h"
#include "util/timeutil.h"

#define POLICY_PREFIX "transit/policy/"
#define KEY_PREFIX "transit/key/"
#define KEYBUF (sizeof(KEY_PREFIX) + TRANSIT_NAME_MAX + 24)
#define CACHE_SLOTS 256
#define WRITE_RETRIES 32
#define SIG_PREFIX "vault:v"

struct transit {
    struct barrier *br;
    int refs; /* under engines_mu */
    struct transit *next;
    pthread_mutex_t mu;
    /* Serialises this process's keyring writes: they would otherwise only retry each other's
     * conflicts (the revision check still guards against other servers sharing the store). */
    pthread_mutex_t write_mu;
    uint64_t
        gen; /* under mu: bumped by every cache_drop, so a read begun before it is not cached */
    struct tk_ring *slots[CACHE_SLOTS];
};

static pthread_mutex_t engines_mu = PTHREAD_MUTEX_INITIALIZER;
static struct transit *engines;

/* ---- names and keys ---- */

int
transit_name_check(const char *name, struct rk_error *err)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n > TRANSIT_NAME_MAX)
        return rk_error_set(err, RK_EINVAL, "a key name is 1 to %d characters", TRANSIT_NAME_MAX);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return rk_error_set(err, RK_EINVAL, "invalid key name");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@'))
            return rk_error_set(err, RK_EINVAL,
                                "invalid key name: letters, digits and . _ - @ only");
    }
    return 0;
}

static void
policy_key(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, POLICY_PREFIX "%s", name);
}

static void
material_key(char *buf, size_t len, const char *name, uint64_t version)
{
    snprintf(buf, len, KEY_PREFIX "%s/%" PRIu64, name, version);
}

/* ---- engines and the cache ---- */

int
transit_open(struct barrier *br, struct transit **out, struct rk_error *err)
{
    struct transit *t;

    pthread_mutex_lock(&engines_mu);
    for (t = engines; t != NULL; t = t->next)
        if (t->br == br)
            break;
    if (t == NULL && (t = calloc(1, sizeof(*t))) != NULL) {
        t->br = br;
        pthread_mutex_init(&t->mu, NULL);
        pthread_mutex_init(&t->write_mu, NULL);
        t->next = engines;
        engines = t;
    }
    if (t != NULL)
        t->refs++;
    pthread_mutex_unlock(&engines_mu);
    *out = t;
    return t != NULL ? 0 : rk_error_set(err, RK_ENOMEM, "out of memory");
}

void
transit_close(struct transit *t)
{
    struct transit **pp;

    if (t == NULL)
        return;
    pthread_mutex_lock(&engines_mu);
    if (--t->refs > 0) {
        pthread_mutex_unlock(&engines_mu);
        return;
    }
    for (pp = &engines; *pp != NULL; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    pthread_mutex_unlock(&engines_mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        ring_unref(t->slots[i]);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->write_mu);
    free(t);
}

static size_t
slot_of(const char *name)
{
    size_t len;

    return (size_t)(str_hash(name, TRANSIT_NAME_MAX, &len) % CACHE_SLOTS);
}

/* Drops name from the cache (after a write through t). */
static void
cache_drop(struct transit *t, const char *name)
{
    size_t s = slot_of(name);
    struct tk_ring *old = NULL;

    pthread_mutex_lock(&t->mu);
    t->gen++;
    if (t->slots[s] != NULL && strcmp(t->slots[s]->name, name) == 0) {
        old = t->slots[s];
        t->slots[s] = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    ring_unref(old);
}

/* Drops every cached keyring (and so every loaded key). */
static void
cache_flush(struct transit *t)
{
    struct tk_ring *old[CACHE_SLOTS];

    pthread_mutex_lock(&t->mu);
    t->gen++;
    memcpy(old, t->slots, sizeof(old));
    memset(t->slots, 0, sizeof(t->slots));
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        ring_unref(old[i]);
}

/* Reads and parses the policy record of name; *rev (may be NULL) gets its revision. */
static int
ring_read(struct transit *t, const char *name, struct tk_ring **out, int64_t *rev,
          struct rk_error *err)
{
    char key[KEYBUF];
    struct secret *text = NULL;
    int r;

    *out = NULL;
    if ((r = transit_name_check(name, err)) != 0)
        return r;
    policy_key(key, sizeof(key), name);
    if ((r = barrier_get(t->br, key, &text, rev, err)) != 0) {
        if (r == -RK_ENOTFOUND)
            rk_error_set(err, RK_ENOTFOUND, "no transit key named %s", name);
        return r;
    }
    r = ring_parse(name, text, out, err);
    secret_free(text);
    return r;
}

/* The cached keyring of name (a new reference: ring_unref), read when absent or stale. */
static int
ring_get(struct transit *t, const char *name, struct tk_ring **out, struct rk_error *err)
{
    size_t s = slot_of(name);
    int64_t now = time_mono_ms();
    struct tk_ring *r, *old = NULL;
    uint64_t gen;
    int rc;

    /* A sealed store keeps no loaded key in memory: the first call after a seal drops them. */
    if (barrier_sealed(t->br)) {
        cache_flush(t);
        return rk_error_set(err, RK_ESEALED, "the store is sealed");
    }
    pthread_mutex_lock(&t->mu);
    r = t->slots[s];
    if (r != NULL && strcmp(r->name, name) == 0 && now - r->loaded_ms < TRANSIT_CACHE_TTL_MS) {
        atomic_fetch_add(&r->refs, 1);
        pthread_mutex_unlock(&t->mu);
        *out = r;
        return 0;
    }
    gen = t->gen;
    pthread_mutex_unlock(&t->mu);
    if ((rc = ring_read(t, name, &r, NULL, err)) != 0)
        return rc;
    r->loaded_ms = now;
    pthread_mutex_lock(&t->mu);
    /* A write that dropped the cache while this read ran may be newer than it: not cached. */
    if (t->gen == gen) {
        atomic_fetch_add(&r->refs, 1); /* one for the cache, one for the caller */
        old = t->slots[s];
        t->slots[s] = r;
    }
    pthread_mutex_unlock(&t->mu);
    ring_unref(old);
    *out = r;
    return 0;
}

/* The loaded private key (or AES key) of version v of r: borrowed, valid while r is held. */
static int
ver_private(struct transit *t, struct tk_ring *r, struct tk_ver *v, struct rk_error *err)
{
    char key[KEYBUF];
    struct secret *m = NULL;
    int rc = 0;

    pthread_mutex_lock(&r->mu);
    if (v->privkey != NULL || v->aes != NULL)
        goto out;
    material_key(key, sizeof(key), r->name, v->version);
    if ((rc = barrier_get(t->br, key, &m, NULL, err)) != 0) {
        if (rc == -RK_ENOTFOUND)
            rc = rk_error_set(err, RK_ECORRUPT, "the material of %s version %" PRIu64 " is missing",
                              r->name, v->version);
        goto out;
    }
    if (r->type == TRANSIT_AES256_GCM96) {
        if (m->len != 32)
            rc = rk_error_set(err, RK_ECORRUPT, "the material of %s does not parse", r->name);
        else {
            v->aes = m;
            m = NULL;
        }
    } else {
        rc = tk_priv_load(r->type, m, &v->privkey, err);
    }
out:
    pthread_mutex_unlock(&r->mu);
    secret_free(m);
    return rc;
}

static int
ver_public(struct tk_ring *r, struct tk_ver *v, struct rk_error *err)
{
    int rc = 0;

    if (v->pub == NULL)
        return rk_error_set(err, RK_EINVAL, "key type %s has no public key",
                            transit_type_name(r->type));
    pthread_mutex_lock(&r->mu);
    if (v->pubkey == NULL)
        rc = tk_pub_load(r->type, v->pub, v->publen, &v->pubkey, err);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- writes: read, change, compare-and-swap, retry ---- */

/* A change to a parsed keyring: returns 0 (write it), 1 (nothing to write), or -RK_E*. With
 * add, the change numbered a new version whose material is written in the same transaction. */
typedef int (*ring_change_fn)(struct tk_ring *r, void *arg, struct rk_error *err);

struct add_arg {
    const struct transit_newkey *key;
    enum transit_vstate state;
    uint64_t version;
};

static int
ring_write_locked(struct transit *t, const char *name, ring_change_fn fn, void *arg,
                  const struct add_arg *add, struct rk_error *err)
{
    char pk[KEYBUF], mk[KEYBUF];
    int rc = 0;

    policy_key(pk, sizeof(pk), name);
    for (int attempt = 0; attempt < WRITE_RETRIES; attempt++) {
        struct tk_ring *r = NULL;
        struct barrier_txn *txn = NULL;
        int64_t rev = 0;
        char *text = NULL;

        if ((rc = ring_read(t, name, &r, &rev, err)) != 0)
            return rc;
        rc = fn(r, arg, err);
        if (rc == 0 && (text = ring_encode(r)) == NULL)
            rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        if (rc == 0 && (txn = barrier_txn_new(t->br)) == NULL)
            rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        if (rc == 0 && (barrier_txn_cmp(txn, pk, rev) != 0 ||
                        barrier_txn_put(txn, pk, text, strlen(text)) != 0))
            rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        if (rc == 0 && add != NULL) {
            material_key(mk, sizeof(mk), name, add->version);
            if (barrier_txn_put(txn, mk, add->key->priv->data, add->key->priv->len) != 0)
                rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        }
        if (rc == 0)
            rc = barrier_txn_commit(txn, NULL, err);
        barrier_txn_free(txn);
        free(text);
        ring_free(r);
        if (rc == 1)
            return 0;
        if (rc != -RK_ECONFLICT) {
            if (rc == 0)
                cache_drop(t, name);
            return rc;
        }
        rk_error_clear(err);
        /* Another server changed it meanwhile: back off a little longer each time. */
        nanosleep(&(struct timespec){0, (long)(attempt + 1) * 1000000L}, NULL);
    }
    return rk_error_set(err, RK_EBUSY, "transit key %s: too many concurrent changes", name);
}

/* Reads name's keyring, lets fn change it and writes it back (with add's key material) if its
 * revision is unchanged, retrying on a conflict with another server. */
static int
ring_write(struct transit *t, const char *name, ring_change_fn fn, void *arg,
           const struct add_arg *add, struct rk_error *err)
{
    int rc;

    pthread_mutex_lock(&t->write_mu);
    rc = ring_write_locked(t, name, fn, arg, add, err);
    pthread_mutex_unlock(&t->write_mu);
    return rc;
}

int
transit_exists(struct transit *t, const char *name, struct rk_error *err)
{
    struct tk_ring *r = NULL;
    int rc = ring_get(t, name, &r, err);

    ring_unref(r);
    if (rc == -RK_ENOTFOUND) {
        rk_error_clear(err);
        return 0;
    }
    return rc == 0 ? 1 : rc;
}

int
transit_create(struct transit *t, const char *name, const struct transit_create_opts *o,
               const struct transit_newkey *key, int *created, struct rk_error *err)
{
    struct tk_ring *r;
    struct barrier_txn *txn = NULL;
    char pk[KEYBUF], mk[KEYBUF], *text = NULL;
    uint64_t v = 0;
    int rc;

    if (created != NULL)
        *created = 0;
    if ((rc = transit_name_check(name, err)) != 0)
        return rc;
    if (o->auto_rotate_period != 0 && o->auto_rotate_period < TRANSIT_AUTO_ROTATE_MIN)
        return rk_error_set(err, RK_EINVAL,
                            "auto rotate period must be 0 to disable or at least an hour");
    if (key->type != o->type)
        return rk_error_set(err, RK_EINVAL, "the key is %s, not %s", transit_type_name(key->type),
                            transit_type_name(o->type));
    if ((r = ring_new(name)) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    r->type = o->type;
    r->exportable = o->exportable;
    r->deletion_allowed = o->deletion_allowed;
    r->auto_rotate_period = o->auto_rotate_period;
    rc = ring_append(r, key, o->pending ? TRANSIT_V_PENDING : TRANSIT_V_ACTIVE, &v, err);
    if (rc == 0 && (text = ring_encode(r)) == NULL)
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
    policy_key(pk, sizeof(pk), name);
    material_key(mk, sizeof(mk), name, v);
    if (rc == 0 && (txn = barrier_txn_new(t->br)) == NULL)
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
    /* Compared absent: of two creators one wins, the other finds the key made. */
    if (rc == 0 &&
        (barrier_txn_cmp(txn, pk, 0) != 0 || barrier_txn_put(txn, pk, text, strlen(text)) != 0 ||
         barrier_txn_put(txn, mk, key->priv->data, key->priv->len) != 0))
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
    if (rc == 0)
        rc = barrier_txn_commit(txn, NULL, err);
    barrier_txn_free(txn);
    free(text);
    ring_free(r);
    if (rc == -RK_ECONFLICT) {
        rk_error_clear(err);
        return 0;
    }
    if (rc == 0) {
        cache_drop(t, name);
        if (created != NULL)
            *created = 1;
    }
    return rc;
}

static int
change_add(struct tk_ring *r, void *arg, struct rk_error *err)
{
    struct add_arg *a = arg;

    return ring_append(r, a->key, a->state, &a->version, err);
}

int
transit_add_version(struct transit *t, const char *name, const struct transit_newkey *key,
                    int pending, uint64_t *version, struct rk_error *err)
{
    struct add_arg a = {key, pending ? TRANSIT_V_PENDING : TRANSIT_V_ACTIVE, 0};
    int rc = ring_write(t, name, change_add, &a, &a, err);

    if (rc == 0 && version != NULL)
        *version = a.version;
    return rc;
}

int
transit_pending_version(struct transit *t, const char *name, uint64_t *version,
                        struct rk_error *err)
{
    struct tk_ring *r = NULL;
    int rc = ring_read(t, name, &r, NULL, err);

    *version = 0;
    if (rc != 0)
        return rc;
    for (size_t i = r->nv; i-- > 0;)
        if (r->v[i].state == TRANSIT_V_PENDING) {
            *version = r->v[i].version;
            break;
        }
    ring_free(r);
    return 0;
}

static int
change_promote(struct tk_ring *r, void *arg, struct rk_error *err)
{
    uint64_t ver = *(const uint64_t *)arg;
    struct tk_ver *v = ring_find(r, ver);

    if (v == NULL)
        return rk_error_set(err, RK_ENOTFOUND, "key %s has no version %" PRIu64, r->name, ver);
    if (v->state == TRANSIT_V_FAILED)
        return rk_error_set(err, RK_EINVAL, "version %" PRIu64 " of %s failed", ver, r->name);
    if (v->state == TRANSIT_V_ACTIVE && r->latest >= ver)
        return 1;
    v->state = TRANSIT_V_ACTIVE;
    if (ver > r->latest)
        r->latest = ver;
    return 0;
}

int
transit_promote(struct transit *t, const char *name, uint64_t version, struct rk_error *err)
{
    return ring_write(t, name, change_promote, &version, NULL, err);
}

static int
change_fail(struct tk_ring *r, void *arg, struct rk_error *err)
{
    uint64_t ver = *(const uint64_t *)arg;
    struct tk_ver *v = ring_find(r, ver);

    (void)err;
    if (v == NULL || v->state == TRANSIT_V_FAILED)
        return 1;
    v->state = TRANSIT_V_FAILED;
    if (r->latest == ver) {
        r->latest = 0;
        for (size_t i = r->nv; i-- > 0;)
            if (r->v[i].state == TRANSIT_V_ACTIVE) {
                r->latest = r->v[i].version;
                break;
            }
    }
    if (r->min_enc > r->latest)
        r->min_enc = 0;
    return 0;
}

int
transit_fail_version(struct transit *t, const char *name, uint64_t version, struct rk_error *err)
{
    return ring_write(t, name, change_fail, &version, NULL, err);
}

static int
change_config(struct tk_ring *r, void *arg, struct rk_error *err)
{
    const struct transit_config *c = arg;
    uint64_t mind = r->min_dec, mine = r->min_enc;

    if (c->set_min_decryption)
        mind = c->min_decryption_version == 0 ? 1 : c->min_decryption_version;
    if (c->set_min_encryption)
        mine = c->min_encryption_version;
    if (mind > r->latest && r->latest > 0)
        return rk_error_set(err, RK_EINVAL,
                            "cannot set min decryption version of %" PRIu64
                            ", latest key version is %" PRIu64,
                            mind, r->latest);
    if (mine > r->latest)
        return rk_error_set(err, RK_EINVAL,
                            "cannot set min encryption version of %" PRIu64
                            ", latest key version is %" PRIu64,
                            mine, r->latest);
    if (mine > 0 && mine < mind)
        return rk_error_set(err, RK_EINVAL,
                            "cannot set min encryption/decryption values; min encryption version "
                            "must be greater than or equal to min decryption version");
    if (c->set_exportable && !c->exportable && r->exportable)
        return rk_error_set(err, RK_EINVAL,
                            "export cannot be disabled on a key that has it "
                            "enabled");
    if (c->set_auto_rotate && c->auto_rotate_period != 0 &&
        c->auto_rotate_period < TRANSIT_AUTO_ROTATE_MIN)
        return rk_error_set(err, RK_EINVAL,
                            "auto rotate period must be 0 to disable or at least an hour");
    r->min_dec = mind;
    r->min_enc = mine;
    if (c->set_deletion_allowed)
        r->deletion_allowed = c->deletion_allowed;
    if (c->set_exportable)
        r->exportable = r->exportable || c->exportable;
    if (c->set_auto_rotate)
        r->auto_rotate_period = c->auto_rotate_period;
    return 0;
}

int
transit_configure(struct transit *t, const char *name, const struct transit_config *c,
                  struct rk_error *err)
{
    return ring_write(t, name, change_config, (void *)(uintptr_t)c, NULL, err);
}

struct raise_arg {
    uint64_t min, now;
};

static int
change_raise(struct tk_ring *r, void *arg, struct rk_error *err)
{
    struct raise_arg *a = arg;
    uint64_t want = a->min > r->latest ? r->latest : a->min;

    (void)err;
    a->now = r->min_dec;
    if (want <= r->min_dec)
        return 1;
    r->min_dec = a->now = want;
    if (r->min_enc != 0 && r->min_enc < want)
        r->min_enc = want;
    return 0;
}

int
transit_raise_min(struct transit *t, const char *name, uint64_t min, uint64_t *now,
                  struct rk_error *err)
{
    struct raise_arg a = {min, 0};
    int rc = ring_write(t, name, change_raise, &a, NULL, err);

    if (rc == 0 && now != NULL)
        *now = a.now;
    return rc;
}

struct del_collect {
    char **keys;
    size_t n, cap;
};

static int
del_collect_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    struct del_collect *c = arg;

    (void)val;
    (void)vlen;
    (void)rev;
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 16;
        char **nk = realloc(c->keys, nc * sizeof(*nk));
        if (nk == NULL)
            return -RK_ENOMEM;
        c->keys = nk;
        c->cap = nc;
    }
    if ((c->keys[c->n] = strdup(key)) == NULL)
        return -RK_ENOMEM;
    c->n++;
    return 0;
}

int
transit_delete(struct transit *t, const char *name, struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct del_collect c = {NULL, 0, 0};
    struct barrier_txn *txn = NULL;
    char pk[KEYBUF], prefix[KEYBUF];
    int64_t rev = 0;
    int rc;

    if ((rc = ring_read(t, name, &r, &rev, err)) != 0)
        return rc;
    if (!r->deletion_allowed) {
        ring_free(r);
        return rk_error_set(err, RK_EINVAL, "deletion is not allowed for this key");
    }
    ring_free(r);
    policy_key(pk, sizeof(pk), name);
    snprintf(prefix, sizeof(prefix), KEY_PREFIX "%s/", name);
    if ((rc = barrier_list(t->br, prefix, NULL, 0, del_collect_cb, &c, err)) != 0)
        goto out;
    if ((txn = barrier_txn_new(t->br)) == NULL || barrier_txn_cmp(txn, pk, rev) != 0 ||
        barrier_txn_del(txn, pk) != 0) {
        rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < c.n; i++)
        if (barrier_txn_del(txn, c.keys[i]) != 0) {
            rc = rk_error_set(err, RK_ENOMEM, "out of memory");
            goto out;
        }
    rc = barrier_txn_commit(txn, NULL, err);
    if (rc == -RK_ECONFLICT)
        rc = rk_error_set(err, RK_EBUSY, "transit key %s changed while it was deleted", name);
    cache_drop(t, name);
out:
    barrier_txn_free(txn);
    for (size_t i = 0; i < c.n; i++)
        free(c.keys[i]);
    free(c.keys);
    return rc;
}

struct list_arg {
    transit_list_cb cb;
    void *arg;
};

static int
list_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t rev)
{
    struct list_arg *a = arg;

    (void)val;
    (void)vlen;
    (void)rev;
    return a->cb(a->arg, key + strlen(POLICY_PREFIX));
}

int
transit_list(struct transit *t, transit_list_cb cb, void *arg, struct rk_error *err)
{
    struct list_arg a = {cb, arg};
    int rc = barrier_list(t->br, POLICY_PREFIX, NULL, 0, list_cb, &a, err);

    return rc == 1 ? 0 : rc;
}

/* ---- reads ---- */

int
transit_info_get(struct transit *t, const char *name, struct transit_info **out,
                 struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct transit_info *i;
    int rc;

    *out = NULL;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    if ((i = calloc(1, sizeof(*i))) == NULL ||
        (i->versions = calloc(r->nv + 1, sizeof(*i->versions))) == NULL) {
        free(i);
        ring_unref(r);
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    }
    i->type = r->type;
    i->latest_version = r->latest;
    i->min_decryption_version = r->min_dec;
    i->min_encryption_version = r->min_enc;
    i->deletion_allowed = r->deletion_allowed;
    i->exportable = r->exportable;
    i->auto_rotate_period = r->auto_rotate_period;
    i->nversions = r->nv;
    for (size_t k = 0; k < r->nv; k++) {
        i->versions[k].version = r->v[k].version;
        i->versions[k].created_us = r->v[k].created_us;
        i->versions[k].state = r->v[k].state;
    }
    ring_unref(r);
    *out = i;
    return 0;
}

void
transit_info_free(struct transit_info *i)
{
    if (i == NULL)
        return;
    free(i->versions);
    free(i);
}

/* The version of r that may be used at all (exists, not failed): *v. */
static int
usable_version(struct tk_ring *r, uint64_t version, struct tk_ver **v, struct rk_error *err)
{
    *v = ring_find(r, version);
    if (*v == NULL || (*v)->state == TRANSIT_V_FAILED)
        return rk_error_set(err, RK_EINVAL, "key %s has no version %" PRIu64, r->name, version);
    return 0;
}

/* The public key of a version, through enc. */
static int
public_as(struct transit *t, const char *name, uint64_t version,
          int (*enc)(EVP_PKEY *, enum transit_type, char **, struct rk_error *), char **out,
          struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    int rc;

    *out = NULL;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    if ((rc = usable_version(r, version, &v, err)) == 0 && (rc = ver_public(r, v, err)) == 0)
        rc = enc(v->pubkey, r->type, out, err);
    ring_unref(r);
    return rc;
}

static int
pem_of(EVP_PKEY *k, enum transit_type type, char **out, struct rk_error *err)
{
    (void)type;
    return tk_pub_pem(k, out, err);
}

int
transit_public_key(struct transit *t, const char *name, uint64_t version, char **out,
                   struct rk_error *err)
{
    return public_as(t, name, version, tk_pub_vault, out, err);
}

int
transit_public_pem(struct transit *t, const char *name, uint64_t version, char **out,
                   struct rk_error *err)
{
    return public_as(t, name, version, pem_of, out, err);
}

int
transit_jwk(struct transit *t, const char *name, uint64_t version, json_t **out,
            struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    char kid[TRANSIT_NAME_MAX + 32];
    int rc;

    *out = NULL;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    snprintf(kid, sizeof(kid), "%s:v%" PRIu64, name, version);
    if ((rc = usable_version(r, version, &v, err)) == 0 && (rc = ver_public(r, v, err)) == 0)
        rc = tk_pub_jwk(v->pubkey, r->type, kid, out, err);
    ring_unref(r);
    return rc;
}

int
transit_export(struct transit *t, const char *name, uint64_t version, struct secret **out,
               struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    char key[KEYBUF];
    struct secret *m = NULL;
    int rc;

    *out = NULL;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    if (!r->exportable) {
        ring_unref(r);
        return rk_error_set(err, RK_EPERM, "private key material is not exportable");
    }
    if ((rc = usable_version(r, version, &v, err)) == 0) {
        material_key(key, sizeof(key), name, version);
        if ((rc = barrier_get(t->br, key, &m, NULL, err)) == 0)
            rc = tk_export(r->type, m, out, err);
    }
    secret_free(m);
    ring_unref(r);
    return rc;
}

/* ---- sign and verify ---- */

/* The version that signs or encrypts: the one asked (>= min_encryption_version, <= latest,
 * active) or latest. */
static int
writing_version(struct tk_ring *r, uint64_t asked, struct tk_ver **v, struct rk_error *err)
{
    uint64_t ver = asked != 0 ? asked : r->latest;

    if (r->latest == 0)
        return rk_error_set(err, RK_EINVAL, "key %s has no active version yet", r->name);
    if (asked != 0 && r->min_enc != 0 && asked < r->min_enc)
        return rk_error_set(err, RK_EINVAL,
                            "cannot use a key version lower than the minimum encryption version");
    if (asked > r->latest)
        return rk_error_set(err, RK_EINVAL,
                            "requested version %" PRIu64 " is higher than the latest key version",
                            asked);
    *v = ring_find(r, ver);
    if (*v == NULL || (*v)->state != TRANSIT_V_ACTIVE)
        return rk_error_set(err, RK_EINVAL, "version %" PRIu64 " of %s is not active", ver,
                            r->name);
    return 0;
}

/* The version that verifies or decrypts. */
static int
reading_version(struct tk_ring *r, uint64_t ver, struct tk_ver **v, struct rk_error *err)
{
    if (ver < r->min_dec)
        return rk_error_set(err, RK_EINVAL,
                            "key version %" PRIu64
                            " is disallowed by policy (too old): the minimum "
                            "decryption version of %s is %" PRIu64,
                            ver, r->name, r->min_dec);
    return usable_version(r, ver, v, err);
}

int
transit_sign(struct transit *t, const char *name, const struct transit_sign_opts *o,
             const unsigned char *in, size_t len, unsigned char **sig, size_t *siglen,
             uint64_t *version, struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    int rc;

    *sig = NULL;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    if (!transit_type_signs(r->type))
        rc = rk_error_set(err, RK_EINVAL, "key type %s does not support signing",
                          transit_type_name(r->type));
    if (rc == 0 && (rc = writing_version(r, o->key_version, &v, err)) == 0 &&
        (rc = ver_private(t, r, v, err)) == 0 &&
        (rc = tk_sign(v->privkey, r->type, o, in, len, sig, siglen, err)) == 0 && version != NULL)
        *version = v->version;
    ring_unref(r);
    return rc;
}

int
transit_verify(struct transit *t, const char *name, const struct transit_sign_opts *o,
               uint64_t version, const unsigned char *in, size_t len, const unsigned char *sig,
               size_t siglen, int *valid, struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    int rc;

    *valid = 0;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    if (!transit_type_signs(r->type))
        rc = rk_error_set(err, RK_EINVAL, "key type %s does not support verification",
                          transit_type_name(r->type));
    if (rc == 0 && (rc = reading_version(r, version, &v, err)) == 0 &&
        (rc = ver_public(r, v, err)) == 0)
        rc = tk_verify(v->pubkey, r->type, o, in, len, sig, siglen, valid, err);
    ring_unref(r);
    return rc;
}

int
transit_sig_format(uint64_t version, const unsigned char *sig, size_t siglen,
                   enum transit_marshal m, char **out)
{
    char head[40], *b, *text;
    int hl = snprintf(head, sizeof(head), SIG_PREFIX "%" PRIu64 ":", version);
    size_t bl;

    *out = NULL;
    if (m == TRANSIT_MARSHAL_JWS) {
        if ((b = malloc(4 * ((siglen + 2) / 3) + 1)) == NULL)
            return -RK_ENOMEM;
        base64url_encode(sig, siglen, b);
    } else if ((b = base64_encode(sig, siglen)) == NULL) {
        return -RK_ENOMEM;
    }
    bl = strlen(b);
    if ((text = malloc((size_t)hl + bl + 1)) == NULL) {
        free(b);
        return -RK_ENOMEM;
    }
    memcpy(text, head, (size_t)hl);
    memcpy(text + hl, b, bl + 1);
    free(b);
    *out = text;
    return 0;
}

unsigned char *
tk_b64url_decode(const char *in, size_t len, size_t *outlen)
{
    size_t pad = (4 - len % 4) % 4;
    char *std;
    unsigned char *out;

    if (pad == 3 || (std = malloc(len + pad + 1)) == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '+' || c == '/' || c == '=') {
            free(std);
            return NULL;
        }
        std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    memset(std + len, '=', pad);
    std[len + pad] = '\0';
    out = base64_decode(std, len + pad, outlen);
    free(std);
    return out;
}

int
transit_sig_parse(const char *text, enum transit_marshal m, uint64_t *version, unsigned char **raw,
                  size_t *rawlen, struct rk_error *err)
{
    const char *p, *colon;
    int64_t v;
    char num[24];

    *raw = NULL;
    if (text == NULL || strncmp(text, SIG_PREFIX, strlen(SIG_PREFIX)) != 0 ||
        (colon = strchr(text + strlen(SIG_PREFIX), ':')) == NULL)
        return rk_error_set(err, RK_EINVAL, "invalid signature or ciphertext: no vault prefix");
    p = text + strlen(SIG_PREFIX);
    if ((size_t)(colon - p) >= sizeof(num) || colon == p)
        return rk_error_set(err, RK_EINVAL, "invalid version in the signature or ciphertext");
    memcpy(num, p, (size_t)(colon - p));
    num[colon - p] = '\0';
    if (parse_int64(num, 1, INT64_MAX, &v) != 0)
        return rk_error_set(err, RK_EINVAL, "invalid version in the signature or ciphertext");
    *version = (uint64_t)v;
    if (m == TRANSIT_MARSHAL_JWS)
        *raw = tk_b64url_decode(colon + 1, strlen(colon + 1), rawlen);
    else
        *raw = base64_decode(colon + 1, strlen(colon + 1), rawlen);
    if (*raw == NULL)
        return rk_error_set(err, RK_EINVAL, "invalid base64 in the signature or ciphertext");
    return 0;
}

/* ---- encryption ---- */

int
transit_encrypt(struct transit *t, const char *name, uint64_t version, const unsigned char *pt,
                size_t len, char **out, uint64_t *used, struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    unsigned char *ct = NULL;
    size_t ctlen = 0;
    int rc;

    *out = NULL;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    if (r->type != TRANSIT_AES256_GCM96)
        rc = rk_error_set(err, RK_EINVAL, "key type %s does not support encryption",
                          transit_type_name(r->type));
    if (rc == 0 && (rc = writing_version(r, version, &v, err)) == 0 &&
        (rc = ver_private(t, r, v, err)) == 0 &&
        (rc = tk_aes_seal(v->aes, pt, len, &ct, &ctlen, err)) == 0) {
        if (transit_sig_format(v->version, ct, ctlen, TRANSIT_MARSHAL_ASN1, out) != 0)
            rc = rk_error_set(err, RK_ENOMEM, "out of memory");
        else if (used != NULL)
            *used = v->version;
    }
    free(ct);
    ring_unref(r);
    return rc;
}

int
transit_decrypt(struct transit *t, const char *name, const char *ct, struct secret **pt,
                uint64_t *version, struct rk_error *err)
{
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    uint64_t ver = 0;
    int rc;

    *pt = NULL;
    if ((rc = ring_get(t, name, &r, err)) != 0)
        return rc;
    if (r->type != TRANSIT_AES256_GCM96)
        rc = rk_error_set(err, RK_EINVAL, "key type %s does not support decryption",
                          transit_type_name(r->type));
    if (rc == 0 &&
        (rc = transit_sig_parse(ct, TRANSIT_MARSHAL_ASN1, &ver, &raw, &rawlen, err)) == 0 &&
        (rc = reading_version(r, ver, &v, err)) == 0 && (rc = ver_private(t, r, v, err)) == 0 &&
        (rc = tk_aes_open(v->aes, raw, rawlen, pt, err)) == 0 && version != NULL)
        *version = ver;
    free(raw);
    ring_unref(r);
    return rc;
}

/* ---- the rotation engine's check ---- */

int
transit_self_test(struct transit *t, const char *name, uint64_t version, struct rk_error *err)
{
    struct transit_sign_opts o = {.salt_len = TRANSIT_SALT_AUTO};
    struct tk_ring *r = NULL;
    struct tk_ver *v = NULL;
    unsigned char msg[32], *sig = NULL, *ct = NULL;
    size_t siglen = 0, ctlen = 0;
    struct secret *back = NULL;
    int rc, valid = 0, forged = 1;

    /* Read fresh: the version may have been written by another process a moment ago. */
    if ((rc = ring_read(t, name, &r, NULL, err)) != 0)
        return rc;
    if ((rc = usable_version(r, version, &v, err)) != 0 || (rc = ver_private(t, r, v, err)) != 0)
        goto out;
    if (RAND_bytes(msg, sizeof(msg)) != 1) {
        rc = rk_error_set(err, RK_EINTERNAL, "the random generator failed");
        goto out;
    }
    if (r->type == TRANSIT_AES256_GCM96) {
        if ((rc = tk_aes_seal(v->aes, msg, sizeof(msg), &ct, &ctlen, err)) != 0 ||
            (rc = tk_aes_open(v->aes, ct, ctlen, &back, err)) != 0)
            goto out;
        if (back->len != sizeof(msg) || CRYPTO_memcmp(back->data, msg, sizeof(msg)) != 0)
            rc = rk_error_set(err, RK_EREJECTED,
                              "version %" PRIu64 " of %s does not decrypt "
                              "what it encrypted",
                              version, name);
        goto out;
    }
    if ((rc = ver_public(r, v, err)) != 0 ||
        (rc = tk_sign(v->privkey, r->type, &o, msg, sizeof(msg), &sig, &siglen, err)) != 0 ||
        (rc = tk_verify(v->pubkey, r->type, &o, msg, sizeof(msg), sig, siglen, &valid, err)) != 0)
        goto out;
    msg[0] ^= 1;
    if ((rc = tk_verify(v->pubkey, r->type, &o, msg, sizeof(msg), sig, siglen, &forged, err)) != 0)
        goto out;
    if (!valid || forged)
        rc = rk_error_set(err, RK_EREJECTED,
                          "version %" PRIu64 " of %s: a signature it made does not verify with "
                          "its published public key",
                          version, name);
out:
    OPENSSL_cleanse(msg, sizeof(msg));
    free(sig);
    free(ct);
    secret_free(back);
    ring_free(r);
    return rc;
}
