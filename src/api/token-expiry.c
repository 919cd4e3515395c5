/* token-expiry.c: the expiry index of service tokens (see token.h, "Expiry").
 *
 * An entry "auth/token/expiry/<20 digits>/<hash>" (value "1") holds the zero-padded expire_time
 * of every record that has one, so key order is time order and a sweep reads only the entries
 * that are due, never every token. token.c writes and deletes a record's entry in the same
 * transaction as the record (with the key token_exp_key gives). This file owns the key format
 * and its parser, revokes what is due (token_sweep), indexes records written before the index
 * existed (token_expiry_backfill, done once per store: "auth/token/expiry-indexed") and tells
 * the server's sweeper of new expiries (token_expiry_watch, token_expiry_tell).
 *
 * Locks: watch_mu guards the watcher and is held while it runs; nothing else is locked here. */
#include "api/token-int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/token.h"

#define EXP_DONE_KEY "auth/token/expiry-indexed"
#define SWEEP_BATCH 256

/* --- the index key --- */

void
token_exp_key(char out[EXP_KEY_LEN], int64_t t, const char *hash)
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

void
token_expiry_tell(int64_t expire_time)
{
    if (expire_time == 0)
        return;
    pthread_mutex_lock(&watch_mu);
    if (watch_fn != NULL)
        watch_fn(watch_arg, expire_time);
    pthread_mutex_unlock(&watch_mu);
}

/* --- the sweeper's half: revoking what is due --- */

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
    if (rest[EXP_DIGITS] != '/' || !token_hash_ok(rest + EXP_DIGITS + 1))
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
                stale = token_record_decode(val, &ti, err) != 0 || ti.expire_time != d->t;
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

/* --- the backfill: indexing the records written before the index existed --- */

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
    if (strlen(key) > plen && token_hash_ok(key + plen) && pg->n < pg->max)
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

            r = token_read_hash(br, pg.h[i], &ti, &expired, err);
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
            token_exp_key(ek, ti.expire_time, ti.hash);
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
