/* Unit tests for src/engine/leases: the compact table (ids of any class found again, tails
 * that do not fit refused), revoke-prefix (a whole class, part of a class's tails, nothing of
 * a sibling role whose name starts the same), the revocation of a token's leases, the pending
 * intent revoked at the next load, renew capped at max, a failing revocation counted and kept
 * (and irrevocable after LEASE_MAX_FAILURES), records read back after a restart by the fast
 * path and (with an escape) by jansson, a record under another key than its id's not loaded,
 * and the workers (expiry of many leases). The
 * credential is a fake: ops count the revocations and fail on demand. */
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

#include "engine/leases.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/timeutil.h"

#include "barrier_fixture.h"

struct fake {
    pthread_mutex_t mu;
    int revoked, renewed, fail;
    char last_user[64];
};

static int
fake_revoke(void *ctx, const struct lease_info *l, struct rk_error *err)
{
    struct fake *f = ctx;
    int r = 0;

    pthread_mutex_lock(&f->mu);
    if (f->fail)
        r = rk_error_set(err, RK_EUNAVAILABLE,
                         "the \"database\" is down"); /* an escape in the record */
    else
        f->revoked++;
    snprintf(f->last_user, sizeof(f->last_user), "%s", l->username);
    pthread_mutex_unlock(&f->mu);
    return r;
}

static int
fake_renew(void *ctx, const struct lease_info *l, int64_t expires, struct rk_error *err)
{
    struct fake *f = ctx;

    (void)l, (void)expires, (void)err;
    pthread_mutex_lock(&f->mu);
    f->renewed++;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

struct fx {
    struct barrier_fx s;
    struct fake fake;
    struct leases *m;
};

static void
open_mgr(struct fx *f)
{
    struct lease_ops ops = {fake_revoke, fake_renew, &f->fake};
    struct rk_error err = {0};

    assert_int_equal(leases_open(f->s.br, &ops, &f->m, &err), 0);
    assert_int_equal(leases_load(f->m, &err), 0);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    pthread_mutex_init(&f->fake.mu, NULL);
    barrier_fx_open(&f->s, "leases");
    open_mgr(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    leases_close(f->m);
    barrier_fx_close(&f->s);
    pthread_mutex_destroy(&f->fake.mu);
    free(f);
    return 0;
}

/* A restart: the manager closed, the store reopened, the records loaded again. */
static void
restart(struct fx *f)
{
    leases_close(f->m);
    barrier_fx_reopen(&f->s);
    open_mgr(f);
}

static void
add(struct fx *f, const char *role, const char *tail, const char *acc, int64_t expires, int pending)
{
    struct lease_info l;
    struct rk_error err = {0};

    memset(&l, 0, sizeof(l));
    snprintf(l.id, sizeof(l.id), "database/creds/%s/%s", role, tail);
    snprintf(l.db, sizeof(l.db), "pg");
    snprintf(l.role, sizeof(l.role), "%s", role);
    snprintf(l.username, sizeof(l.username), "v-%s-%s", role, tail);
    snprintf(l.accessor, sizeof(l.accessor), "%s", acc);
    l.issued = time_now();
    l.expires = expires;
    l.max_expires = time_now() + 7200;
    l.pending = pending;
    assert_int_equal(leases_add(f->m, &l, &err), 0);
}

static size_t
count(struct fx *f)
{
    size_t n, irr;

    leases_count(f->m, &n, &irr);
    return n;
}

static void
test_lookup_and_fit(void **state)
{
    struct fx *f = *state;
    struct lease_info l, big;
    struct rk_error err = {0};

    add(f, "app", "aaaaaaaaaaaaaaaaaaaaaaaa", "acc1", time_now() + 3600, 0);
    add(f, "ro", "aaaaaaaaaaaaaaaaaaaaaaaa", "", time_now() + 3600, 0); /* same tail */
    assert_int_equal(leases_lookup(f->m, "database/creds/app/aaaaaaaaaaaaaaaaaaaaaaaa", &l, &err),
                     0);
    assert_string_equal(l.role, "app");
    assert_string_equal(l.db, "pg");
    assert_string_equal(l.accessor, "acc1");
    /* the login's name comes from the record */
    assert_string_equal(l.username, "v-app-aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(leases_lookup(f->m, "database/creds/ro/aaaaaaaaaaaaaaaaaaaaaaaa", &l, &err),
                     0);
    assert_string_equal(l.role, "ro");
    assert_int_equal(leases_lookup(f->m, "database/creds/rx/aaaaaaaaaaaaaaaaaaaaaaaa", &l, &err),
                     -RK_ENOTFOUND);
    /* a tail of 32 bytes or more does not fit the compact record: refused, nothing stored */
    memset(&big, 0, sizeof(big));
    snprintf(big.id, sizeof(big.id), "database/creds/app/%s", "0123456789abcdef0123456789abcdef");
    snprintf(big.role, sizeof(big.role), "app");
    big.expires = time_now() + 60;
    assert_int_equal(leases_add(f->m, &big, &err), -RK_EINVAL);
    assert_int_equal(count(f), 2);
    restart(f);
    assert_int_equal(count(f), 2);
    assert_int_equal(leases_lookup(f->m, "database/creds/ro/aaaaaaaaaaaaaaaaaaaaaaaa", &l, &err),
                     0);
}

static void
test_revoke_prefix(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    size_t ok = 0, bad = 0;
    char tail[32];

    for (int i = 0; i < 1200; i++) {
        snprintf(tail, sizeof(tail), "t%05d", i);
        add(f, "app", tail, "", time_now() + 3600, 0);
    }
    add(f, "app2", "t00001", "", time_now() + 3600, 0); /* "app" is a prefix of its role */
    add(f, "other", "t00001", "", time_now() + 3600, 0);
    /* part of a class: the tails starting t001 (t00100..t00199) */
    assert_int_equal(leases_revoke_prefix(f->m, "database/creds/app/t001", 0, &ok, &bad, &err), 0);
    assert_int_equal(ok, 100);
    assert_int_equal(f->fake.revoked, 100);
    /* the whole class, in batches of 1,000 */
    assert_int_equal(leases_revoke_prefix(f->m, "database/creds/app/", 0, &ok, &bad, &err), 0);
    assert_int_equal(ok, 1100);
    assert_int_equal(bad, 0);
    assert_int_equal(count(f), 2);
    /* a prefix that stops inside a role's name takes every role it starts */
    assert_int_equal(leases_revoke_prefix(f->m, "database/creds/ot", 0, &ok, &bad, &err), 0);
    assert_int_equal(ok, 1);
    assert_int_equal(count(f), 1);
    restart(f);
    assert_int_equal(count(f), 1); /* the records went with them */
    assert_int_equal(leases_revoke_prefix(f->m, "", 0, &ok, &bad, &err), -RK_EINVAL);
}

static void
test_token_leases(void **state)
{
    struct fx *f = *state;

    add(f, "app", "a1", "tokA", time_now() + 3600, 0);
    add(f, "app", "a2", "tokA", time_now() + 3600, 0);
    add(f, "app", "b1", "tokB", time_now() + 3600, 0);
    assert_int_equal(leases_revoke_accessor(f->m, "tokA"), 2); /* no workers: in the caller */
    assert_int_equal(f->fake.revoked, 2);
    assert_int_equal(count(f), 1);
    assert_int_equal(leases_revoke_accessor(f->m, "tokA"), 0);
    assert_int_equal(leases_revoke_accessor(f->m, "nobody"), 0);
}

static void
test_pending_revoked_at_load(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct lease_info l;

    add(f, "app", "pend", "", time_now() + 3600, 1);
    add(f, "app", "done", "", time_now() + 3600, 1);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/done", &l, &err), 0);
    assert_int_equal(l.pending, 1);
    assert_int_equal(leases_confirm(f->m, &l, &err), 0);
    restart(f);
    assert_int_equal(leases_start(f->m, &err), 0);
    for (int i = 0; i < 200 && count(f) > 1; i++)
        usleep(10000);
    assert_int_equal(count(f), 1);
    assert_string_equal(f->fake.last_user, "v-app-pend");
    assert_int_equal(leases_lookup(f->m, "database/creds/app/done", &l, &err), 0);
    assert_int_equal(l.pending, 0);
}

/* The load takes a record only under its own key ("lease/" + its id): a copy of one under
 * another key (a bad restore, a hand edit) is left in the store and not loaded twice, and a
 * record whose id names no key is not loaded either. */
static void
test_record_under_other_key(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct lease_info l;
    struct secret *v = NULL;
    struct barrier_txn *t;

    add(f, "app", "one", "", time_now() + 3600, 0);
    assert_int_equal(barrier_get(f->s.br, "lease/database/creds/app/one", &v, NULL, &err), 0);
    t = barrier_txn_new(f->s.br);
    assert_non_null(t);
    assert_int_equal(barrier_txn_put(t, "lease/database/creds/app/two", v->data, v->len), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
    secret_free(v);
    restart(f);
    assert_int_equal(count(f), 1);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/one", &l, &err), 0);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/two", &l, &err), -RK_ENOTFOUND);
    /* the copy alone: its id names a key that is gone (its revocation would delete nothing) */
    t = barrier_txn_new(f->s.br);
    assert_non_null(t);
    assert_int_equal(barrier_txn_del(t, "lease/database/creds/app/one"), 0);
    assert_int_equal(barrier_txn_commit(t, NULL, &err), 0);
    barrier_txn_free(t);
    restart(f);
    assert_int_equal(count(f), 0);
}

/* With the workers running, a confirmation is stored by them (batched): after a clean stop
 * the confirmed lease survives a restart, an unconfirmed one does not, and a lease revoked
 * before its confirmation was stored does not come back. */
static void
test_confirm_by_workers(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct lease_info l;
    char tail[32];

    assert_int_equal(leases_start(f->m, &err), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(tail, sizeof(tail), "c%03d", i);
        add(f, "app", tail, "", time_now() + 3600, 1);
        snprintf(l.id, sizeof(l.id), "database/creds/app/%s", tail);
        assert_int_equal(leases_lookup(f->m, l.id, &l, &err), 0);
        assert_int_equal(leases_confirm(f->m, &l, &err), 0);
        if (i == 7) /* revoked right after its confirmation was queued */
            assert_int_equal(leases_revoke(f->m, l.id, 0, &err), 0);
    }
    add(f, "app", "never", "", time_now() + 3600, 1);
    leases_stop(f->m); /* the workers store what is queued first */
    restart(f);
    assert_int_equal(leases_start(f->m, &err), 0);
    for (int i = 0; i < 200 && count(f) > 49; i++)
        usleep(10000);
    assert_int_equal(count(f), 49);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/c007", &l, &err), -RK_ENOTFOUND);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/never", &l, &err), -RK_ENOTFOUND);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/c049", &l, &err), 0);
    assert_int_equal(l.pending, 0);
}

static void
test_renew_cap(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct lease_info l;
    int64_t now = time_now();

    add(f, "app", "r1", "", now + 60, 0);
    assert_int_equal(leases_renew(f->m, "database/creds/app/r1", 600, 0, 0, now, &l, &err), 0);
    assert_int_equal(l.expires, now + 600);
    assert_int_equal(leases_renew(f->m, "database/creds/app/r1", 99999, 0, 0, now, &l, &err), 0);
    assert_int_equal(l.expires, now + 7200); /* max_expires */
    assert_int_equal(f->fake.renewed, 2);
    restart(f);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/r1", &l, &err), 0);
    assert_int_equal(l.expires, now + 7200);
    assert_int_equal(l.last_renewal, now);
}

static void
test_failures_kept(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct lease_info l;

    add(f, "app", "f1", "", time_now() + 3600, 0);
    f->fake.fail = 1;
    for (int i = 0; i < LEASE_MAX_FAILURES; i++)
        assert_int_equal(leases_revoke(f->m, "database/creds/app/f1", 0, &err), -RK_EUNAVAILABLE);
    assert_int_equal(leases_lookup(f->m, "database/creds/app/f1", &l, &err), 0);
    assert_int_equal(l.irrevocable, 1);
    assert_int_equal(l.failures, LEASE_MAX_FAILURES);
    assert_non_null(strstr(l.last_error, "down"));
    restart(f); /* the record holds an escape: read by jansson, not the fast path */
    assert_int_equal(leases_lookup(f->m, "database/creds/app/f1", &l, &err), 0);
    assert_int_equal(l.irrevocable, 1);
    assert_int_equal(l.failures, LEASE_MAX_FAILURES);
    assert_string_equal(l.last_error, "the \"database\" is down");
    f->fake.fail = 0;
    assert_int_equal(leases_revoke(f->m, "database/creds/app/f1", 0, &err), 0);
    assert_int_equal(count(f), 0);
}

static void
test_workers_expire(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    char tail[32];

    for (int i = 0; i < 300; i++) {
        snprintf(tail, sizeof(tail), "e%05d", i);
        add(f, i % 2 ? "a" : "b", tail, "", time_now() - 1, 0);
    }
    add(f, "a", "later", "", time_now() + 3600, 0);
    assert_int_equal(leases_start(f->m, &err), 0);
    for (int i = 0; i < 1000 && count(f) > 1; i++)
        usleep(10000);
    assert_int_equal(count(f), 1);
    assert_int_equal(f->fake.revoked, 300);
    leases_stop(f->m);
    restart(f);
    assert_int_equal(count(f), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup_and_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_revoked_at_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_under_other_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_by_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_renew_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_expire, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
