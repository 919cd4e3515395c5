/* leader.c: leader election over a store's leases (see leader.h for the protocol).
 *
 * Records (raw, not barrier-encrypted; nothing secret):
 *   ha/nodes/ID  {"id":…, "api_address":…, "hostname":…} bound to the server's lease
 *   ha/leader    the same record of the leader, bound to the leader's lease
 *
 * Threads: one election thread per process while it takes part; l->mu guards the status the
 * API reads; g_mu guards the process's one election (the_leader). Lock order: g_mu, then l->mu.
 * The callback runs with neither held. */
#include "store/leader.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/timeutil.h"

#define KEEPALIVE_MS (LEADER_TTL_S * 1000 / 3)
#define RETRY_MS 200 /* a failed renewal is tried again this soon */

struct leader {
    struct backend *b;
    const struct backend_ha_ops *ha;
    leader_cb cb;
    void *arg;
    char id[33];
    char *record; /* this server's JSON record */

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    pthread_t th;
    int running, stop;
    int leading;     /* the thread's view, told to cb */
    int64_t since;   /* unix seconds */
    int64_t renewed; /* time_mono_ms() of the last renewal the store answered, while leading */
    char leader_id[40];
    char leader_addr[LEADER_ADDR_MAX];
    char api_addr[LEADER_ADDR_MAX];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct leader *the_leader;

/* Reads a record's id and api_address into the buffers ("" when absent). */
static void
record_parse(const char *rec, char *id, size_t idlen, char *addr, size_t addrlen)
{
    json_t *j = rec != NULL ? json_loads(rec, 0, NULL) : NULL;
    const char *i = json_string_value(json_object_get(j, "id"));
    const char *a = json_string_value(json_object_get(j, "api_address"));

    snprintf(id, idlen, "%s", i != NULL ? i : "");
    snprintf(addr, addrlen, "%s", a != NULL ? a : "");
    json_decref(j);
}

int
leader_new(struct backend *b, const char *api_addr, leader_cb cb, void *arg, struct leader **out,
           struct rk_error *err)
{
    struct leader *l;
    unsigned char rnd[16];
    char host[64] = "";
    json_t *rec;
    int r;

    *out = NULL;
    if (api_addr == NULL || strlen(api_addr) >= LEADER_ADDR_MAX)
        return rk_error_set(err, RK_EINVAL, "the server's API address is too long");
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return rk_error_set(err, RK_ENOMEM, "out of memory");
    l->b = b;
    l->ha = b->ops->ha;
    l->cb = cb;
    l->arg = arg;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    snprintf(l->api_addr, sizeof(l->api_addr), "%s", api_addr);
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        r = rk_error_set(err, RK_EINTERNAL, "cannot draw a server id");
        goto fail;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(l->id + 2 * i, 3, "%02x", rnd[i]);
    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    rec = json_pack("{s:s, s:s, s:s}", "id", l->id, "api_address", api_addr, "hostname", host);
    l->record = rec != NULL ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(rec);
    if (l->record == NULL) {
        r = rk_error_set(err, RK_ENOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_lock(&g_mu);
    if (the_leader != NULL) {
        pthread_mutex_unlock(&g_mu);
        r = rk_error_set(err, RK_EEXISTS, "this process has an election already");
        goto fail;
    }
    the_leader = l;
    pthread_mutex_unlock(&g_mu);
    *out = l;
    return 0;
fail:
    free(l->record);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return r;
}

/* Sets the status (under l->mu) and tells cb when leading changed (without it). */
static void
set_leading(struct leader *l, int leading, int64_t renewed)
{
    int changed;

    pthread_mutex_lock(&l->mu);
    changed = l->leading != leading;
    l->leading = leading;
    l->renewed = renewed;
    if (leading) {
        l->since = (int64_t)time(NULL);
        snprintf(l->leader_id, sizeof(l->leader_id), "%s", l->id);
        snprintf(l->leader_addr, sizeof(l->leader_addr), "%s", l->api_addr);
    } else if (changed) {
        l->since = 0;
        l->leader_id[0] = l->leader_addr[0] = '\0';
    }
    pthread_mutex_unlock(&l->mu);
    if (changed) {
        if (leading)
            log_info("ha: this server (%s) is the leader now", l->api_addr);
        else
            log_warn("ha: this server (%s) is not the leader any more", l->api_addr);
        l->cb(l->arg, leading);
    }
}

static void
set_known_leader(struct leader *l, const char *holder)
{
    pthread_mutex_lock(&l->mu);
    if (holder != NULL)
        record_parse(holder, l->leader_id, sizeof(l->leader_id), l->leader_addr,
                     sizeof(l->leader_addr));
    else
        l->leader_id[0] = l->leader_addr[0] = '\0';
    pthread_mutex_unlock(&l->mu);
}

static void *
elect_main(void *arg)
{
    struct leader *l = arg;
    struct rk_error err = {0};
    int64_t lease = 0, last_ok = 0, next_keep = 0;
    int leading = 0, warned = 0;
    char nodekey[64];

    snprintf(nodekey, sizeof(nodekey), "%s%s", LEADER_NODES, l->id);
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t now, ttl = 0;
        int r = 0, fresh;

        pthread_mutex_unlock(&l->mu);
        now = time_mono_ms();
        if (lease == 0) {
            if ((r = l->ha->grant(l->b, LEADER_TTL_S, &lease, &err)) == 0) {
                last_ok = now;
                next_keep = now + KEEPALIVE_MS;
                if ((r = l->ha->claim(l->b, nodekey, l->record, lease, 0, NULL, NULL, &err)) > 0)
                    r = 0;
            }
        } else if (now >= next_keep) {
            r = l->ha->keepalive(l->b, lease, &ttl, &err);
            if (r == 0 && ttl > 0) {
                last_ok = now;
                next_keep = now + KEEPALIVE_MS;
            } else if (r == 0) {
                log_warn("ha: this server's lease ended (the store did not see a renewal in "
                         "time)");
                lease = 0;
            } else {
                next_keep = now + RETRY_MS;
            }
        }
        if (r != 0 && !warned++)
            log_warn("ha: %s; trying again", err.msg);
        else if (r == 0 && lease != 0 && warned) {
            log_info("ha: the store answers again");
            warned = 0;
        }
        /* Step down before the lease can have ended at the store: it ends LEADER_TTL_S after
         * the store saw the last renewal, which left here no earlier than last_ok. */
        if (lease != 0 && time_mono_ms() - last_ok > (int64_t)LEADER_TTL_S * 1000)
            lease = 0; /* surely gone; a new one is granted */
        /* Lead only by a lease renewed within LEADER_TTL_S - 1 seconds: a stale one is neither
         * kept nor claimed with (else the server would step down and claim again each round). */
        fresh = lease != 0 && time_mono_ms() - last_ok <= (int64_t)(LEADER_TTL_S - 1) * 1000;
        if (leading && !fresh) {
            leading = 0;
            set_leading(l, 0, 0);
        } else if (leading) {
            pthread_mutex_lock(&l->mu);
            l->renewed = last_ok;
            pthread_mutex_unlock(&l->mu);
        }
        if (!leading && fresh) {
            char *holder = NULL;
            int64_t held_by = 0;

            r = l->ha->claim(l->b, LEADER_KEY, l->record, lease, 1, &holder, &held_by, &err);
            if (r == 0 && holder != NULL && strcmp(holder, l->record) == 0 && held_by != lease) {
                /* Our own record under a lease we gave up (a stall outlasted it): it is not
                 * ours to lead by, since nobody renews it. Ending it frees the key for the
                 * next claim; a lost answer only means the lease ends by itself soon. */
                log_info("ha: the leader key still holds this server's earlier lease; ending it");
                if (held_by != 0)
                    (void)l->ha->revoke(l->b, held_by, &err);
                set_known_leader(l, NULL);
            } else if (r == 1 || (r == 0 && holder != NULL && strcmp(holder, l->record) == 0)) {
                /* (written now, or by a try of this lease whose answer was lost; a claim that
                 * took so long that the lease went stale leads from the next round) */
                if (time_mono_ms() - last_ok <= (int64_t)(LEADER_TTL_S - 1) * 1000) {
                    leading = 1;
                    set_leading(l, 1, last_ok);
                }
            } else if (r == 0) {
                set_known_leader(l, holder);
            } else {
                set_known_leader(l, NULL);
                if (!warned++)
                    log_warn("ha: %s; trying again", err.msg);
            }
            free(holder);
        } else if (!leading) {
            set_known_leader(l, NULL);
        }
        pthread_mutex_lock(&l->mu);
        if (!l->stop) {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)LEADER_POLL_MS * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (leading)
        set_leading(l, 0, 0);
    if (lease != 0 && l->ha->revoke(l->b, lease, &err) != 0)
        log_warn("ha: revoking this server's lease: %s (a standby takes over when it ends)",
                 err.msg);
    set_known_leader(l, NULL);
    return NULL;
}

int
leader_campaign(struct leader *l, struct rk_error *err)
{
    int e;

    if (l->ha == NULL) {
        set_leading(l, 1, 0);
        return 0;
    }
    pthread_mutex_lock(&l->mu);
    if (l->running) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    l->stop = 0;
    e = pthread_create(&l->th, NULL, elect_main, l);
    if (e == 0)
        l->running = 1;
    pthread_mutex_unlock(&l->mu);
    if (e != 0)
        return rk_error_set(err, RK_EINTERNAL, "ha: starting the election's thread failed");
    return 0;
}

void
leader_resign(struct leader *l)
{
    int running;

    if (l == NULL)
        return;
    if (l->ha == NULL) {
        set_leading(l, 0, 0);
        return;
    }
    pthread_mutex_lock(&l->mu);
    running = l->running;
    l->running = 0;
    l->stop = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (running)
        pthread_join(l->th, NULL);
}

void
leader_free(struct leader *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&g_mu);
    if (the_leader == l)
        the_leader = NULL;
    pthread_mutex_unlock(&g_mu);
    leader_resign(l);
    free(l->record);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

void
leader_status(struct leader_status *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&g_mu);
    if (the_leader != NULL) {
        struct leader *l = the_leader;

        pthread_mutex_lock(&l->mu);
        st->ha_enabled = l->ha != NULL;
        st->is_self = l->leading;
        /* The election's thread may be blocked in a store call past the time it would step
         * down: a lease not renewed for LEADER_TTL_S - 1 seconds is not led by, whatever the
         * thread will find. */
        if (l->ha != NULL && l->leading &&
            time_mono_ms() - l->renewed > (int64_t)(LEADER_TTL_S - 1) * 1000)
            st->is_self = 0;
        st->active_since = st->is_self ? l->since : 0;
        snprintf(st->leader_addr, sizeof(st->leader_addr), "%s",
                 st->is_self || !l->leading ? l->leader_addr : "");
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_unlock(&g_mu);
}

struct nodes_ctx {
    struct leader_node *nodes;
    size_t max, n;
    const char *leader_id;
};

static int
node_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct nodes_ctx *c = arg;
    struct leader_node *nd;
    json_t *j;
    const char *h;

    (void)key;
    (void)mod_rev;
    if (c->n >= c->max)
        return 1;
    if ((j = json_loadb((const char *)val, vlen, 0, NULL)) == NULL)
        return 0; /* not a record of ours: skipped */
    nd = &c->nodes[c->n++];
    memset(nd, 0, sizeof(*nd));
    h = json_string_value(json_object_get(j, "hostname"));
    snprintf(nd->hostname, sizeof(nd->hostname), "%s", h != NULL ? h : "");
    /* From j, not record_parse(val): val[0..vlen) is not NUL-terminated. */
    h = json_string_value(json_object_get(j, "id"));
    snprintf(nd->id, sizeof(nd->id), "%s", h != NULL ? h : "");
    h = json_string_value(json_object_get(j, "api_address"));
    snprintf(nd->api_addr, sizeof(nd->api_addr), "%s", h != NULL ? h : "");
    json_decref(j);
    nd->active = nd->id[0] != '\0' && strcmp(nd->id, c->leader_id) == 0;
    return 0;
}

int
leader_nodes(struct leader_node *nodes, size_t max, size_t *n, struct rk_error *err)
{
    struct nodes_ctx c = {.nodes = nodes, .max = max};
    char leader_id[40];
    int r = 0;

    *n = 0;
    pthread_mutex_lock(&g_mu);
    if (the_leader == NULL || max == 0)
        goto out;
    pthread_mutex_lock(&the_leader->mu);
    snprintf(leader_id, sizeof(leader_id), "%s", the_leader->leader_id);
    pthread_mutex_unlock(&the_leader->mu);
    c.leader_id = leader_id;
    if (the_leader->ha == NULL) {
        char host[64] = "";

        if (gethostname(host, sizeof(host) - 1) != 0)
            host[0] = '\0';
        memset(&nodes[0], 0, sizeof(nodes[0]));
        snprintf(nodes[0].id, sizeof(nodes[0].id), "%s", the_leader->id);
        snprintf(nodes[0].api_addr, sizeof(nodes[0].api_addr), "%s", the_leader->api_addr);
        snprintf(nodes[0].hostname, sizeof(nodes[0].hostname), "%s", host);
        nodes[0].active = strcmp(leader_id, the_leader->id) == 0;
        c.n = 1;
    } else {
        r = the_leader->b->ops->list(the_leader->b, LEADER_NODES, NULL, max, 0, node_cb, &c, err);
    }
out:
    pthread_mutex_unlock(&g_mu);
    *n = c.n;
    return r;
}

void
leader_self_id(char *out, size_t len)
{
    if (len == 0)
        return;
    out[0] = '\0';
    pthread_mutex_lock(&g_mu);
    if (the_leader != NULL && the_leader->ha != NULL)
        snprintf(out, len, "%s", the_leader->id);
    pthread_mutex_unlock(&g_mu);
}

int
leader_node_gone(const char *id)
{
    char key[sizeof(LEADER_NODES) + 40];
    unsigned char *val = NULL;
    size_t vlen = 0;
    struct rk_error err = {0};
    int r, gone = 0;

    if (id == NULL || id[0] == '\0' || strlen(id) >= 40)
        return 0;
    pthread_mutex_lock(&g_mu);
    if (the_leader != NULL && the_leader->ha != NULL && strcmp(id, the_leader->id) != 0) {
        snprintf(key, sizeof(key), "%s%s", LEADER_NODES, id);
        r = the_leader->b->ops->get(the_leader->b, key, &val, &vlen, NULL, &err);
        gone = r == -RK_ENOTFOUND;
        free(val);
    }
    pthread_mutex_unlock(&g_mu);
    return gone;
}
