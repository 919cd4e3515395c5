/* etcd.h: the etcd backend ("etcd:URL[,URL…]"), through etcd's v3 JSON gateway. Most callers go
 * through backend_open; this header is for the registry and tests. */
#ifndef REKEY_STORE_ETCD_H
#define REKEY_STORE_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"
#include "util/err.h"

extern const struct backend_ops etcd_backend_ops;

struct etcd_stats {
    uint64_t requests;     /* HTTP requests sent (every try counts) */
    uint64_t failovers;    /* times a request moved on to the next endpoint */
    uint64_t auths;        /* /v3/auth/authenticate calls */
    uint64_t cache_hits;   /* reads (gets, lists) the watched cache answered */
    uint64_t cache_misses; /* reads that went to etcd with the cache on (loading, stalled) */
    uint64_t cache_loads;  /* loads of the cache (the first, then one per broken watch) */
    size_t watch_endpoint; /* index of the endpoint the watch streams from */
};

/* Counters of an etcd backend; all zero when b is not one. */
void etcd_backend_stats(struct backend *b, struct etcd_stats *st);

#endif
