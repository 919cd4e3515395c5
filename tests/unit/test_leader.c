/* Unit tests for store/leader.c against an in-memory lease store that behaves as etcd's leases
 * do (a lease ends LEADER_TTL_S seconds after its last renewal and takes its keys with it), with
 * knobs for what a stopped or lagging etcd member does to a server: a renewal that blocks, a
 * lease that ends while the server is away, another server's claim.
 *
 * The rule every test checks: whenever leader_status says this server leads, the leader key is
 * bound to a lease that this server renewed within LEADER_TTL_S - 1 seconds. A server that led
 * by its own record under an abandoned lease made two leaders in CI (t-ha-etcd, SIGSTOP of an
 * etcd member): nobody renewed that lease, it ended, the other server claimed the key, and this
 * one went on leading by its fresh lease for good. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/leader.h"
#include "util/err.h"
#include "util/timeutil.h"

#define MAXL 64
#define OTHER_REC "{\"api_address\":\"http://other:8200\",\"hostname\":\"b\",\"id\":\"other\"}"

struct fake_lease {
    int64_t id;
    int64_t renewed; /* time_mono_ms() of the grant or the last renewal */
    int ended;
    int others; /* renewed by the fake itself, as another live server would */
};

struct fake {
    struct backend base;
    pthread_mutex_t mu;
    struct fake_lease leases[MAXL];
    int nleases;
    int64_t next_id;
    char leader_val[512]; /* the leader key ("" when absent) */
    int64_t leader_lease;
    int64_t stall_until; /* keepalives block until then (a stopped member) */
    int plant_own_stale; /* at the first node record: put it on the leader key too, under a
                            lease nobody renews (what a server's own earlier lease leaves) */
    int violations;      /* times leader_status said "leads" against the rule above */
};

static struct fake_lease *
find_lease(struct fake *f, int64_t id)
{
    for (int i = 0; i < f->nleases; i++)
        if (f->leases[i].id == id)
            return &f->leases[i];
    return NULL;
}

/* Ends the leases not renewed for LEADER_TTL_S seconds, with their keys (f->mu held). */
static void
expire(struct fake *f)
{
    int64_t now = time_mono_ms();

    for (int i = 0; i < f->nleases; i++) {
        struct fake_lease *le = &f->leases[i];

        if (le->others && !le->ended)
            le->renewed = now;
        if (!le->ended && now - le->renewed >= LEADER_TTL_S * 1000)
            le->ended = 1;
        if (le->ended && f->leader_lease == le->id) {
            f->leader_val[0] = '\0';
            f->leader_lease = 0;
        }
    }
}

static int64_t
add_lease(struct fake *f, int others)
{
    struct fake_lease *le = &f->leases[f->nleases++ % MAXL];

    le->id = ++f->next_id;
    le->renewed = time_mono_ms();
    le->ended = 0;
    le->others = others;
    return le->id;
}

static int
f_grant(struct backend *b, int ttl_s, int64_t *lease, struct rk_error *err)
{
    struct fake *f = (struct fake *)b;

    (void)ttl_s;
    (void)err;
    pthread_mutex_lock(&f->mu);
    expire(f);
    *lease = add_lease(f, 0);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int
f_keepalive(struct backend *b, int64_t lease, int64_t *ttl_left, struct rk_error *err)
{
    struct fake *f = (struct fake *)b;
    struct fake_lease *le;

    for (;;) {
        pthread_mutex_lock(&f->mu);
        if (time_mono_ms() >= f->stall_until)
            break;
        pthread_mutex_unlock(&f->mu);
        usleep(10000);
    }
    expire(f);
    le = find_lease(f, lease);
    *ttl_left = 0;
    if (le != NULL && !le->ended) {
        le->renewed = time_mono_ms();
        *ttl_left = LEADER_TTL_S;
    }
    pthread_mutex_unlock(&f->mu);
    (void)err;
    return 0;
}

static int
f_revoke(struct backend *b, int64_t lease, struct rk_error *err)
{
    struct fake *f = (struct fake *)b;
    struct fake_lease *le;

    (void)err;
    pthread_mutex_lock(&f->mu);
    if ((le = find_lease(f, lease)) != NULL)
        le->ended = 1;
    expire(f);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int
f_claim(struct backend *b, const char *key, const char *val, int64_t lease, int only_if_absent,
        char **holder, int64_t *holder_lease, struct rk_error *err)
{
    struct fake *f = (struct fake *)b;
    int r = 1;

    (void)err;
    if (holder != NULL)
        *holder = NULL;
    if (holder_lease != NULL)
        *holder_lease = 0;
    pthread_mutex_lock(&f->mu);
    expire(f);
    if (strcmp(key, LEADER_KEY) != 0) { /* a node record */
        if (f->plant_own_stale) {
            f->plant_own_stale = 0;
            snprintf(f->leader_val, sizeof(f->leader_val), "%s", val);
            f->leader_lease = add_lease(f, 0);
        }
        pthread_mutex_unlock(&f->mu);
        return 1;
    }
    if (only_if_absent && f->leader_val[0] != '\0') {
        if (holder != NULL)
            *holder = strdup(f->leader_val);
        if (holder_lease != NULL)
            *holder_lease = f->leader_lease;
        r = 0;
    } else {
        snprintf(f->leader_val, sizeof(f->leader_val), "%s", val);
        f->leader_lease = lease;
    }
    pthread_mutex_unlock(&f->mu);
    return r;
}

static int
f_get(struct backend *b, const char *key, unsigned char **val, size_t *vlen, int64_t *mod_rev,
      struct rk_error *err)
{
    (void)b, (void)key, (void)val, (void)vlen, (void)mod_rev;
    return rk_error_set(err, RK_ENOTFOUND, "not found");
}

static int
f_list(struct backend *b, const char *prefix, const char *start_after, size_t limit, int keys_only,
       store_list_cb cb, void *arg, struct rk_error *err)
{
    (void)b, (void)prefix, (void)start_after, (void)limit, (void)keys_only, (void)cb, (void)arg;
    (void)err;
    return 0;
}

static const struct backend_ha_ops fake_ha = {
    .grant = f_grant,
    .keepalive = f_keepalive,
    .revoke = f_revoke,
    .claim = f_claim,
};
static const struct backend_ops fake_ops = {
    .version = BACKEND_OPS_VERSION,
    .name = "fake-leases",
    .get = f_get,
    .list = f_list,
    .ha = &fake_ha,
};

static void
on_change(void *arg, int leading)
{
    (void)arg;
    (void)leading;
}

/* leader_status now, checked against the rule; returns is_self. */
static int
leads_checked(struct fake *f)
{
    struct leader_status st;
    int ok = 1;

    leader_status(&st);
    if (!st.is_self)
        return 0;
    pthread_mutex_lock(&f->mu);
    expire(f);
    struct fake_lease *le = find_lease(f, f->leader_lease);

    /* the key is ours (not the other server's) and its lease is renewed and alive */
    if (le == NULL || le->ended || le->others ||
        time_mono_ms() - le->renewed > (int64_t)LEADER_TTL_S * 1000)
        ok = 0;
    if (!ok)
        f->violations++;
    pthread_mutex_unlock(&f->mu);
    return 1;
}

/* Watches for ms milliseconds; returns how long this server led in that time, in ms. */
static int64_t
watch(struct fake *f, int64_t ms)
{
    int64_t end = time_mono_ms() + ms, led = 0;

    while (time_mono_ms() < end) {
        if (leads_checked(f))
            led += 10;
        usleep(10000);
    }
    return led;
}

static int
wait_leads(struct fake *f, int want, int64_t ms)
{
    int64_t end = time_mono_ms() + ms;

    while (time_mono_ms() < end) {
        if (leads_checked(f) == want)
            return 1;
        usleep(10000);
    }
    return 0;
}

static struct fake *
fake_new(void)
{
    struct fake *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->base.ops = &fake_ops;
    pthread_mutex_init(&f->mu, NULL);
    return f;
}

static struct leader *
start(struct fake *f)
{
    struct leader *l = NULL;
    struct rk_error err = {0};

    assert_int_equal(leader_new(&f->base, "http://127.0.0.1:8200", on_change, NULL, &l, &err), 0);
    assert_int_equal(leader_campaign(l, &err), 0);
    return l;
}

static void
finish(struct fake *f, struct leader *l)
{
    leader_free(l);
    assert_int_equal(f->violations, 0);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Starts the election, waits until it leads, then blocks its renewals for LEADER_TTL_S + 2 s
 * (an etcd member stopped mid-request). */
static struct leader *
lead_then_stall(struct fake *f)
{
    struct leader *l = start(f);

    assert_true(wait_leads(f, 1, 3000));
    pthread_mutex_lock(&f->mu);
    f->stall_until = time_mono_ms() + (LEADER_TTL_S + 2) * 1000;
    pthread_mutex_unlock(&f->mu);
    return l;
}

/* The leader key holds this server's own record under a lease it no longer renews: it must not
 * lead by it (the CI failure), and it takes the key back under its live lease. */
static void
test_own_record_under_old_lease(void **state)
{
    struct fake *f = fake_new();
    struct leader *l;

    (void)state;
    f->plant_own_stale = 1;
    l = start(f);
    assert_true(wait_leads(f, 1, 5000));
    /* led by the lease it renews: it still leads once the planted one would have ended */
    watch(f, (LEADER_TTL_S + 1) * 1000);
    assert_int_equal(leads_checked(f), 1);
    finish(f, l);
}

/* A renewal blocks longer than the lease lives (an etcd member stopped mid-request): the server
 * stops leading LEADER_TTL_S - 1 seconds after its last renewal although its thread is still
 * blocked, and leads again once the store answers. */
static void
test_blocked_renewal(void **state)
{
    struct fake *f = fake_new();
    struct leader *l;
    int64_t t0;

    (void)state;
    l = lead_then_stall(f);
    t0 = time_mono_ms();
    assert_true(wait_leads(f, 0, LEADER_TTL_S * 1000));
    assert_true(time_mono_ms() - t0 <= (int64_t)LEADER_TTL_S * 1000);
    watch(f, 1000);
    assert_true(wait_leads(f, 1, (LEADER_TTL_S + 4) * 1000));
    finish(f, l);
}

/* While the server was away (its renewals blocked) its lease ended and another server took the
 * key: back, it stands by, names the other as leader, and takes over once the other's lease
 * ends. */
static void
test_other_takes_over(void **state)
{
    struct fake *f = fake_new();
    struct leader *l;
    struct leader_status st;
    int64_t other = 0, end;

    (void)state;
    l = lead_then_stall(f);
    for (end = time_mono_ms() + (LEADER_TTL_S + 1) * 1000; time_mono_ms() < end && other == 0;) {
        leads_checked(f);
        usleep(10000);
        pthread_mutex_lock(&f->mu);
        expire(f);
        if (f->leader_val[0] == '\0') { /* this server's lease ended: the other claims */
            other = add_lease(f, 1);
            snprintf(f->leader_val, sizeof(f->leader_val), "%s", OTHER_REC);
            f->leader_lease = other;
        }
        pthread_mutex_unlock(&f->mu);
    }
    assert_int_not_equal(other, 0);
    assert_int_equal(watch(f, 3000), 0); /* the stall ends meanwhile */
    leader_status(&st);
    assert_string_equal(st.leader_addr, "http://other:8200");
    pthread_mutex_lock(&f->mu);
    find_lease(f, other)->ended = 1;
    pthread_mutex_unlock(&f->mu);
    assert_true(wait_leads(f, 1, 3000));
    finish(f, l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_record_under_old_lease),
        cmocka_unit_test(test_blocked_renewal),
        cmocka_unit_test(test_other_takes_over),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
