/* etcd-int.h: what the two parts of the etcd backend share and no other module may use: etcd.c
 * (the requests: handle pool, failover, auth; the backend ops and the leases) and etcd-cache.c
 * (the read cache, kept by a watch). The request and revision rules are described at the top of
 * etcd.c, the cache's at the top of etcd-cache.c. */
#ifndef REKEY_STORE_ETCD_INT_H
#define REKEY_STORE_ETCD_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"
#include "store/etcd.h"
#include "util/err.h"
#include "util/secret.h"

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_POOL_MAX 16

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

    /* The read cache (etcd-cache.c), under cmu. */
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

/* ---- etcd.c --------------------------------------------------------------------------------- */

/* A libcurl write callback appending to the struct buf arg (kept NUL-terminated). Returns nmemb
 * * size, or 0 (curl then fails the transfer) when out of memory or past ETCD_RESP_MAX. */
size_t etcd_on_body(char *data, size_t size, size_t nmemb, void *arg);

/* Sets h up to POST body (NUL-terminated, kept by the caller for the transfer) with the headers
 * hdrs to url, as every request to etcd is sent: http or https only, no signals, the connect
 * timeout and the TLS files of the environment. The caller adds its write callback. */
void etcd_curl_post(struct etcd *e, CURL *h, const char *url, const char *body,
                    struct curl_slist *hdrs);

/* POSTs req (consumed; NULL: out of memory) to path, with failover and auth, under the default
 * timeout. idempotent: the request may be retried on another endpoint after it was sent. Returns
 * 0 with *resp (the caller's, json_decref), or -RK_E* (-RK_EUNAVAILABLE when no endpoint
 * answered or a non-idempotent request's outcome is unknown). */
int etcd_call(struct etcd *e, const char *path, json_t *req, int idempotent, json_t **resp,
              struct rk_error *err);

/* A 64-bit number etcd sent as a JSON string (or, to be lenient, a number); 0 when absent. */
int64_t etcd_j_i64(json_t *o, const char *name);

/* Decodes the base64 field name of o: 0 with *out malloc'd (the caller's; a NUL after it) and
 * *len, or -1. An absent field is an empty value (proto3 JSON leaves empty fields out). */
int etcd_j_unb64(json_t *o, const char *name, unsigned char **out, size_t *len);

/* A list straight from etcd, without the cache: cb gets each key under prefix after start_after
 * (may be NULL), up to limit (0: all), with its value unless keys_only and rekey's mod_revision;
 * cb returns 0 to go on, > 0 to stop, < 0 (returned) to fail. *rev_out (may be NULL) gets etcd's
 * revision the list read at (that of its first chunk). Returns 0 or -RK_E*. */
int etcd_list_direct(struct etcd *e, const char *prefix, const char *start_after, size_t limit,
                     int keys_only, store_list_cb cb, void *arg, int64_t *rev_out,
                     struct rk_error *err);

/* ---- etcd-cache.c --------------------------------------------------------------------------- */

/* Sets up the cache's locks and reads REKEY_ETCD_CACHE_MB into max_bytes; the watcher starts at
 * the first read. The locks are set up even on failure (etcd_cache_stop undoes them). Returns 0,
 * or -RK_EINVAL when REKEY_ETCD_CACHE_MB is not a number of MiB. */
int etcd_cache_init(struct etcd *e, struct rk_error *err);

/* Stops the watcher (waiting for it), frees the cache and destroys its locks. Once, at close. */
void etcd_cache_stop(struct etcd *e);

/* Makes the cache ready to answer a read that begins now (it holds every change acknowledged
 * before the call): 1 with cmu held (the caller reads ents and unlocks), or 0 without it (the
 * cache is off, loading or behind: read etcd directly). */
int etcd_cache_ready(struct etcd *e);

/* The index of key in ents, or where it would go (*found 0). Under cmu. */
size_t etcd_cache_find(struct etcd *e, const char *key, int *found);

#endif
