/* Unit tests for src/api/token: create, lookup, expiry, use limits (also under concurrency),
 * revocation of a parent with its children, renewal, accessors, and that only hashes reach the
 * disk; the lifetime rules (system maximum, parent's expiry, oversized durations) and the
 * expiry sweep that revokes an expired parent's subtree (with REKEY_NOW as the clock). Runs on
 * a real SQLite store behind an unsealed barrier in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/token.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"
#include "util/testsw.h"

#include "token_fixture.h"

static int
setup(void **state)
{
    *state = token_fx_open("token");
    return 0;
}

/* Makes a token with one policy (none if pol is NULL), ttl, use limit and parent. */
static struct secret *
mk(struct token_fx *fx, const char *pol, int64_t ttl, int64_t uses, const char *parent,
   struct token_info *ti)
{
    const char *pols[1] = {pol};
    struct token_create_opts o = {
        .policies = pols,
        .npolicies = pol != NULL ? 1 : 0,
        .ttl = ttl,
        .num_uses = uses,
        .renewable = 1,
        .parent_hash = parent,
    };

    return token_fx_create(fx, &o, ti);
}

static void
test_create_lookup(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0}, lk = {0}, acc = {0};
    struct rk_error err = {0};
    struct secret *tok = mk(fx, "Team-A", 3600, 0, NULL, &ti);
    char h[TOKEN_HASH_HEX];

    /* "hvs." + 43 base64url characters (32 random bytes). */
    assert_int_equal(strncmp((char *)tok->data, "hvs.", 4), 0);
    assert_int_equal(tok->len, 4 + 43);
    for (size_t i = 4; i < tok->len; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                               tok->data[i]));
    /* Policies lowercased, sorted, default added. */
    assert_int_equal(ti.npolicies, 2);
    assert_string_equal(ti.policies[0], "default");
    assert_string_equal(ti.policies[1], "team-a");
    assert_int_equal(ti.orphan, 1);
    assert_int_equal(ti.root, 0);
    assert_int_equal(strlen(ti.accessor), TOKEN_ACCESSOR_LEN - 1);
    assert_true(ti.expire_time >= ti.creation_time + 3600);

    assert_int_equal(token_lookup(fx->br, (char *)tok->data, &lk, &err), 0);
    assert_string_equal(lk.accessor, ti.accessor);
    token_hash_hex((char *)tok->data, tok->len, h);
    assert_string_equal(lk.hash, h);
    assert_int_equal(token_lookup_accessor(fx->br, ti.accessor, &acc, &err), 0);
    assert_string_equal(acc.hash, h);

    /* Unknown, empty, over-long and one-character-off tokens are all refused. */
    struct token_info x = {0};
    assert_int_equal(token_lookup(fx->br, "hvs.nope", &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup(fx->br, "", &x, &err), -RK_EINVAL);
    char longtok[TOKEN_MAX_LEN + 10];
    memset(longtok, 'a', sizeof(longtok) - 1);
    longtok[sizeof(longtok) - 1] = 0;
    assert_int_equal(token_lookup(fx->br, longtok, &x, &err), -RK_EINVAL);
    char off[64];
    snprintf(off, sizeof(off), "%s", (char *)tok->data);
    off[10] = off[10] == 'A' ? 'B' : 'A';
    assert_int_equal(token_lookup(fx->br, off, &x, &err), -RK_ENOTFOUND);

    token_info_clear(&ti);
    token_info_clear(&lk);
    token_info_clear(&acc);
    secret_free(tok);
}

static void
test_root_and_chosen_id(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct secret *tok = NULL, *tok2 = NULL;

    assert_int_equal(token_create_root(fx->br, "my-dev-root", &tok, &err), 0);
    assert_string_equal((char *)tok->data, "my-dev-root");
    assert_int_equal(token_lookup(fx->br, "my-dev-root", &ti, &err), 0);
    assert_int_equal(ti.root, 1);
    assert_int_equal(ti.npolicies, 1); /* no default for root */
    assert_int_equal(ti.expire_time, 0);
    assert_string_equal(ti.display_name, "root");
    /* The same id twice is refused; a bad id too. */
    assert_int_equal(token_create_root(fx->br, "my-dev-root", &tok2, &err), -RK_EEXISTS);
    assert_int_equal(token_create_root(fx->br, "has space", &tok2, &err), -RK_EINVAL);
    assert_null(tok2);
    token_info_clear(&ti);
    secret_free(tok);
}

static void
test_expiry(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct secret *tok = mk(fx, "p", 1, 0, NULL, NULL);
    size_t n = 0;

    assert_int_equal(token_lookup(fx->br, (char *)tok->data, &ti, &err), 0);
    token_info_clear(&ti);
    sleep(2);
    assert_int_equal(token_lookup(fx->br, (char *)tok->data, &ti, &err), -RK_ENOTFOUND);
    /* Expired records are removed lazily on lookup. */
    assert_int_equal(token_count(fx->br, &n, &err), 0);
    assert_int_equal(n, 0);
    secret_free(tok);
}

static void
test_num_uses(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0};
    struct rk_error err = {0};
    struct secret *tok = mk(fx, "p", 0, 3, NULL, NULL);

    for (int i = 3; i >= 1; i--) {
        assert_int_equal(token_use(fx->br, (char *)tok->data, &ti, &err), 0);
        assert_int_equal(ti.num_uses, i); /* the count before this use */
        token_info_clear(&ti);
    }
    assert_int_equal(token_use(fx->br, (char *)tok->data, &ti, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup(fx->br, (char *)tok->data, &ti, &err), -RK_ENOTFOUND);
    secret_free(tok);

    /* Unlimited tokens are not counted. */
    tok = mk(fx, "p", 0, 0, NULL, NULL);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(token_use(fx->br, (char *)tok->data, &ti, &err), 0);
        token_info_clear(&ti);
    }
    secret_free(tok);
}

/* Spends the token ten times; counts the uses let through. */
static void *
race_run(void *arg)
{
    struct token_fx_worker *w = arg;
    struct token_info ti = {0};
    struct rk_error err = {0};

    for (int i = 0; i < 10; i++) {
        if (token_use(w->fx->br, w->tok, &ti, &err) == 0)
            w->count++;
        token_info_clear(&ti);
    }
    return NULL;
}

static void
test_num_uses_concurrent(void **state)
{
    struct token_fx *fx = *state;
    struct secret *tok = mk(fx, "p", 0, 7, NULL, NULL);
    struct token_fx_worker w[4];
    int total = 0;

    token_fx_threads(fx, tok, 4, race_run, w);
    for (int i = 0; i < 4; i++)
        total += w[i].count;
    /* Exactly num_uses requests were let through: no use spent twice, none lost. */
    assert_int_equal(total, 7);
    secret_free(tok);
}

static void
test_revoke_children(void **state)
{
    struct token_fx *fx = *state;
    struct token_info p = {0}, c1 = {0}, c2 = {0}, x = {0};
    struct rk_error err = {0};
    struct secret *tp = mk(fx, "p", 0, 0, NULL, &p);
    struct secret *t1 = mk(fx, "p", 0, 0, p.hash, &c1);
    struct secret *t2 = mk(fx, "p", 0, 0, c1.hash, &c2); /* a grandchild */
    struct secret *other = mk(fx, "p", 0, 0, NULL, NULL);
    size_t count = 0, n = 0;

    assert_int_equal(c1.orphan, 0);
    assert_string_equal(c1.parent, p.hash);
    assert_int_equal(token_revoke_hash(fx->br, p.hash, &count, &err), 0);
    assert_int_equal(count, 3);
    assert_int_equal(token_lookup(fx->br, (char *)tp->data, &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup(fx->br, (char *)t1->data, &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup(fx->br, (char *)t2->data, &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup_accessor(fx->br, c2.accessor, &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup(fx->br, (char *)other->data, &x, &err), 0);
    token_info_clear(&x);
    assert_int_equal(token_count(fx->br, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(token_revoke_hash(fx->br, p.hash, &count, &err), -RK_ENOTFOUND);

    /* A child of a revoked parent cannot be created. */
    struct secret *t3 = NULL;
    struct token_create_opts o = {.parent_hash = p.hash};
    assert_int_equal(token_create(fx->br, &o, &t3, NULL, &err), -RK_ENOTFOUND);
    assert_null(t3);

    token_info_clear(&p);
    token_info_clear(&c1);
    token_info_clear(&c2);
    secret_free(tp);
    secret_free(t1);
    secret_free(t2);
    secret_free(other);
}

static void
test_renew(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0}, up = {0};
    struct rk_error err = {0};
    const char *pols[] = {"p"};
    struct token_create_opts o = {
        .policies = pols, .npolicies = 1, .ttl = 60, .explicit_max_ttl = 100, .renewable = 1};
    struct secret *tok = NULL, *root = NULL;

    assert_int_equal(token_create(fx->br, &o, &tok, &ti, &err), 0);
    assert_int_equal(ti.granted, 60); /* what the answer's lease_duration says */
    assert_int_equal(token_renew(fx->br, ti.hash, 30, 0, &up, &err), 0);
    assert_true(up.expire_time <= ti.creation_time + 31 + 1);
    assert_true(up.expire_time >= ti.creation_time + 30);
    /* exactly the increment, whatever second the answer is made in (hvac checks 7200 for 2h) */
    assert_int_equal(up.granted, 30);
    token_info_clear(&up);
    /* Capped by explicit_max_ttl from creation. */
    assert_int_equal(token_renew(fx->br, ti.hash, 10000, 0, &up, &err), 0);
    assert_int_equal(up.expire_time, ti.creation_time + 100);
    assert_true(up.granted > 0 && up.granted <= 100);
    token_info_clear(&up);
    token_info_clear(&ti);
    secret_free(tok);

    /* Not renewable: refused. The root token (no ttl) is not renewable. */
    o.renewable = 0;
    assert_int_equal(token_create(fx->br, &o, &tok, &ti, &err), 0);
    assert_int_equal(token_renew(fx->br, ti.hash, 10, 0, &up, &err), -RK_EINVAL);
    token_info_clear(&ti);
    secret_free(tok);
    assert_int_equal(token_create_root(fx->br, NULL, &root, &err), 0);
    assert_int_equal(token_lookup(fx->br, (char *)root->data, &ti, &err), 0);
    assert_int_equal(token_renew(fx->br, ti.hash, 10, 0, &up, &err), -RK_EINVAL);
    token_info_clear(&ti);
    secret_free(root);
}

static void
test_bad_options(void **state)
{
    struct token_fx *fx = *state;
    struct rk_error err = {0};
    struct secret *tok = NULL;
    const char *bad[] = {"no spaces"};
    struct token_create_opts o = {.policies = bad, .npolicies = 1};

    assert_int_equal(token_create(fx->br, &o, &tok, NULL, &err), -RK_EINVAL);
    o = (struct token_create_opts){.ttl = -1};
    assert_int_equal(token_create(fx->br, &o, &tok, NULL, &err), -RK_EINVAL);
    assert_null(tok);
    /* Sealed: nothing is created. */
    barrier_seal(fx->br);
    o = (struct token_create_opts){0};
    assert_int_equal(token_create(fx->br, &o, &tok, NULL, &err), -RK_ESEALED);
    struct token_info ti = {0};
    assert_int_equal(token_lookup(fx->br, "hvs.x", &ti, &err), -RK_ESEALED);
}

/* --- lifetimes (issue 11, findings 2 and 9) --- */

/* Makes a token with the given ttl, system maximum and parent; fails the test on error. */
static struct secret *
mk_life(struct token_fx *fx, int64_t ttl, int64_t maxl, const char *parent, struct token_info *ti)
{
    const char *pols[1] = {"p"};
    struct token_create_opts o = {.policies = pols,
                                  .npolicies = 1,
                                  .ttl = ttl,
                                  .max_lease_ttl = maxl,
                                  .renewable = 1,
                                  .parent_hash = parent};

    return token_fx_create(fx, &o, ti);
}

/* A 100-year increment is capped by the system maximum, from now and from creation; a ttl
 * above it too; a token without a ttl gets it. Before the fix the renewal granted 100 years. */
static void
test_renew_capped_by_max_lease(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0}, up = {0};
    struct rk_error err = {0};
    const int64_t century = (int64_t)876000 * 3600;
    struct secret *tok = mk_life(fx, 10, 100, NULL, &ti);

    assert_int_equal(token_renew(fx->br, ti.hash, century, 100, &up, &err), 0);
    assert_true(up.expire_time <= ti.creation_time + 100);
    assert_true(up.expire_time >= ti.creation_time + 99);
    token_info_clear(&up);
    token_info_clear(&ti);
    secret_free(tok);

    /* The default maximum (768h) when none is configured. */
    tok = mk_life(fx, 10, 0, NULL, &ti);
    assert_int_equal(token_renew(fx->br, ti.hash, century, 0, &up, &err), 0);
    assert_true(up.expire_time <= ti.creation_time + TOKEN_MAX_LEASE_TTL_DEFAULT + 1);
    assert_true(up.expire_time >= ti.creation_time + TOKEN_MAX_LEASE_TTL_DEFAULT - 2);
    token_info_clear(&up);
    token_info_clear(&ti);
    secret_free(tok);

    /* A ttl above the maximum is capped at creation; no ttl means the maximum. */
    tok = mk_life(fx, century, 50, NULL, &ti);
    assert_int_equal(ti.ttl, 50);
    assert_int_equal(ti.expire_time, ti.creation_time + 50);
    token_info_clear(&ti);
    secret_free(tok);
    tok = mk_life(fx, 0, 70, NULL, &ti);
    assert_int_equal(ti.expire_time, ti.creation_time + 70);
    token_info_clear(&ti);
    secret_free(tok);
}

/* 2^63-1 seconds (and anything above what Vault's durations hold) is refused, not overflowed;
 * the largest accepted duration is capped without overflow (UBSan checks the arithmetic). */
static void
test_huge_durations(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0}, up = {0};
    struct rk_error err = {0};
    struct secret *tok = NULL;
    const char *pols[1] = {"p"};
    struct token_create_opts o = {.policies = pols, .npolicies = 1, .renewable = 1};

    o.ttl = INT64_MAX;
    assert_int_equal(token_create(fx->br, &o, &tok, NULL, &err), -RK_EINVAL);
    o.ttl = 0;
    o.explicit_max_ttl = INT64_MAX;
    assert_int_equal(token_create(fx->br, &o, &tok, NULL, &err), -RK_EINVAL);
    o.explicit_max_ttl = 0;
    o.period = TOKEN_DURATION_MAX + 1;
    assert_int_equal(token_create(fx->br, &o, &tok, NULL, &err), -RK_EINVAL);
    o.period = 0;
    o.max_lease_ttl = INT64_MAX;
    assert_int_equal(token_create(fx->br, &o, &tok, NULL, &err), -RK_EINVAL);
    assert_null(tok);

    /* The largest accepted values everywhere: capped, no overflow. */
    o.max_lease_ttl = TOKEN_DURATION_MAX;
    o.ttl = TOKEN_DURATION_MAX;
    o.explicit_max_ttl = TOKEN_DURATION_MAX;
    assert_int_equal(token_create(fx->br, &o, &tok, &ti, &err), 0);
    assert_int_equal(ti.expire_time, ti.creation_time + TOKEN_DURATION_MAX);
    assert_int_equal(token_renew(fx->br, ti.hash, INT64_MAX, 0, &up, &err), -RK_EINVAL);
    assert_int_equal(token_renew(fx->br, ti.hash, TOKEN_DURATION_MAX + 1, 0, &up, &err),
                     -RK_EINVAL);
    assert_int_equal(token_renew(fx->br, ti.hash, 1, INT64_MAX, &up, &err), -RK_EINVAL);
    assert_int_equal(
        token_renew(fx->br, ti.hash, TOKEN_DURATION_MAX, TOKEN_DURATION_MAX, &up, &err), 0);
    assert_true(up.expire_time > ti.creation_time);
    token_info_clear(&up);
    token_info_clear(&ti);
    secret_free(tok);
}

/* A child's expiry never passes its parent's: at creation (also a root child of an expiring
 * root token) and at every renewal. Before the fix a renewal took the child past it. */
static void
test_child_capped_by_parent(void **state)
{
    struct token_fx *fx = *state;
    struct token_info p = {0}, c = {0}, up = {0};
    struct rk_error err = {0};
    struct secret *tp = mk_life(fx, 100, 0, NULL, &p);
    struct secret *tc = mk_life(fx, 1000, 0, p.hash, &c);

    assert_int_equal(c.expire_time, p.expire_time);
    assert_true(c.ttl <= 100);
    assert_int_equal(token_renew(fx->br, c.hash, 3600, 0, &up, &err), 0);
    assert_int_equal(up.expire_time, p.expire_time);
    token_info_clear(&up);
    /* Renewing the parent lets the child be renewed further, never past it. */
    assert_int_equal(token_renew(fx->br, p.hash, 500, 0, &up, &err), 0);
    int64_t pexp = up.expire_time;
    token_info_clear(&up);
    assert_int_equal(token_renew(fx->br, c.hash, 3600, 0, &up, &err), 0);
    assert_int_equal(up.expire_time, pexp);
    token_info_clear(&up);
    token_info_clear(&c);
    secret_free(tc);
    token_info_clear(&p);
    secret_free(tp);

    /* A root token with a ttl creates a root child without one: it gets the parent's expiry. */
    const char *root[1] = {"root"};
    struct token_create_opts o = {.policies = root, .npolicies = 1, .ttl = 60};
    assert_int_equal(token_create(fx->br, &o, &tp, &p, &err), 0);
    o = (struct token_create_opts){
        .policies = root, .npolicies = 1, .ttl = 0, .parent_hash = p.hash};
    assert_int_equal(token_create(fx->br, &o, &tc, &c, &err), 0);
    assert_int_equal(c.expire_time, p.expire_time);
    token_info_clear(&c);
    token_info_clear(&p);
    secret_free(tc);
    secret_free(tp);
}

/* Sets the fake clock (REKEY_NOW); a test using it is skipped in a build without the test
 * switches (make test builds with them). */
static void
set_now(int64_t t)
{
    char b[32];

    if (!test_switches_built())
        skip();

    snprintf(b, sizeof(b), "%" PRId64, t);
    setenv("REKEY_NOW", b, 1);
}

/* A parent renewed to expire before its child: at the parent's expiry the sweep revokes the
 * child with it, although neither is presented. Before the fix the child kept working until
 * the parent was looked up again. */
static void
test_sweep_revokes_subtree(void **state)
{
    struct token_fx *fx = *state;
    struct token_info p = {0}, c = {0}, g = {0}, o = {0}, up = {0}, x = {0};
    struct rk_error err = {0};
    const int64_t t0 = 2000000000;
    size_t n = 9;
    int64_t next = -1;

    set_now(t0);
    struct secret *tp = mk_life(fx, 1000, 0, NULL, &p);
    struct secret *tc = mk_life(fx, 500, 0, p.hash, &c);
    struct secret *tg = mk_life(fx, 400, 0, c.hash, &g); /* a grandchild */
    struct secret *other = mk_life(fx, 300, 0, NULL, &o);
    assert_int_equal(token_renew(fx->br, p.hash, 10, 0, &up, &err), 0);
    assert_int_equal(up.expire_time, t0 + 10);
    token_info_clear(&up);

    /* Nothing due yet: the earliest expiry is the parent's. */
    assert_int_equal(token_sweep(fx->br, t0 + 5, 0, &n, &next, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(next, t0 + 10);

    set_now(t0 + 10);
    assert_int_equal(token_sweep(fx->br, t0 + 10, 0, &n, &next, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(next, t0 + 300); /* the unrelated token is next, untouched */
    assert_int_equal(token_lookup(fx->br, (char *)tc->data, &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup(fx->br, (char *)tg->data, &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup_accessor(fx->br, c.accessor, &x, &err), -RK_ENOTFOUND);
    assert_int_equal(token_lookup(fx->br, (char *)other->data, &x, &err), 0);
    token_info_clear(&x);
    assert_int_equal(token_count(fx->br, &n, &err), 0);
    assert_int_equal(n, 1);

    /* A batch smaller than what is due says "come back now". */
    set_now(t0 + 20);
    struct secret *a = mk_life(fx, 5, 0, NULL, NULL), *b = mk_life(fx, 6, 0, NULL, NULL);
    assert_int_equal(token_sweep(fx->br, t0 + 30, 1, &n, &next, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(next, t0 + 30);
    assert_int_equal(token_sweep(fx->br, t0 + 30, 1, &n, &next, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(next, t0 + 300);
    unsetenv("REKEY_NOW");

    secret_free(a);
    secret_free(b);
    token_info_clear(&p);
    token_info_clear(&c);
    token_info_clear(&g);
    token_info_clear(&o);
    secret_free(tp);
    secret_free(tc);
    secret_free(tg);
    secret_free(other);
}

/* Records from before the index: the backfill indexes them once (and revokes the expired),
 * then the sweep finds them. */
static void
test_expiry_backfill(void **state)
{
    struct token_fx *fx = *state;
    struct token_info p = {0}, c = {0}, x = {0};
    struct rk_error err = {0};
    const int64_t t0 = 2000000000;
    char key[256];
    size_t n = 0;

    set_now(t0);
    struct secret *tp = mk_life(fx, 10, 0, NULL, &p);
    struct secret *tc = mk_life(fx, 10, 0, p.hash, &c);
    /* Forget both index entries, as a store written before the index would have none. */
    snprintf(key, sizeof(key), "auth/token/expiry/%020" PRId64 "/%s", p.expire_time, p.hash);
    assert_int_equal(barrier_del(fx->br, key, &err), 0);
    snprintf(key, sizeof(key), "auth/token/expiry/%020" PRId64 "/%s", c.expire_time, c.hash);
    assert_int_equal(barrier_del(fx->br, key, &err), 0);
    assert_int_equal(token_sweep(fx->br, t0 + 20, 0, &n, NULL, &err), 0);
    assert_int_equal(n, 0); /* the sweep cannot see them */

    assert_int_equal(token_expiry_backfill(fx->br, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(token_expiry_backfill(fx->br, &n, &err), 0);
    assert_int_equal(n, 0); /* once per store */
    assert_int_equal(token_sweep(fx->br, t0 + 20, 0, &n, NULL, &err), 0);
    assert_int_equal(n, 2);
    set_now(t0 + 1);
    assert_int_equal(token_lookup(fx->br, (char *)tc->data, &x, &err), -RK_ENOTFOUND);
    unsetenv("REKEY_NOW");
    token_info_clear(&p);
    token_info_clear(&c);
    secret_free(tp);
    secret_free(tc);
}

static int64_t watched;

static void
watch_cb(void *arg, int64_t t)
{
    (void)arg;
    watched = t;
}

/* Creations and renewals tell the watcher their expiry (the server's sweeper wakes on it). */
static void
test_expiry_watch(void **state)
{
    struct token_fx *fx = *state;
    struct token_info ti = {0}, up = {0};
    struct rk_error err = {0};

    token_expiry_watch(watch_cb, NULL);
    struct secret *tok = mk_life(fx, 40, 0, NULL, &ti);
    assert_int_equal(watched, ti.expire_time);
    assert_int_equal(token_renew(fx->br, ti.hash, 20, 0, &up, &err), 0);
    assert_int_equal(watched, up.expire_time);
    token_expiry_watch(NULL, NULL);
    token_info_clear(&ti);
    token_info_clear(&up);
    secret_free(tok);
}

/* Only hashes reach the disk: no token text in the store file, its WAL or anything else. */
static const char *needle1, *needle2;
static int found;

static int
scan_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    FILE *f;
    char *buf;

    (void)ftw;
    if (flag != FTW_F || st->st_size == 0)
        return 0;
    if ((f = fopen(p, "rb")) == NULL || (buf = malloc((size_t)st->st_size)) == NULL) {
        if (f != NULL)
            fclose(f);
        return 0;
    }
    if (fread(buf, 1, (size_t)st->st_size, f) == (size_t)st->st_size &&
        (memmem(buf, (size_t)st->st_size, needle1, strlen(needle1)) != NULL ||
         memmem(buf, (size_t)st->st_size, needle2, strlen(needle2)) != NULL))
        found = 1;
    free(buf);
    fclose(f);
    return 0;
}

static void
test_only_hashes_on_disk(void **state)
{
    struct token_fx *fx = *state;
    struct secret *toks[5];
    struct token_info ti = {0};
    struct rk_error err = {0};

    for (int i = 0; i < 5; i++)
        toks[i] = mk(fx, "p", 0, 0, i > 0 ? ti.hash : NULL, i == 0 ? &ti : NULL);
    /* Close the store so everything is on disk, then scan every file for every token and its
     * random part alone. The scan itself is checked with a plain marker written straight
     * through the backend, which it must find. */
    barrier_free(fx->br);
    fx->br = NULL;
    backend_close(fx->b);
    fx->b = NULL;
    for (int i = 0; i < 5; i++) {
        needle1 = (char *)toks[i]->data;
        needle2 = (char *)toks[i]->data + 4;
        found = 0;
        nftw(fx->dir, scan_entry, 8, FTW_PHYS);
        if (found)
            fail_msg("token %d found on disk", i);
        secret_free(toks[i]);
    }
    token_info_clear(&ti);
    assert_int_equal(backend_open(fx->path, &fx->b, &err), 0);
    assert_int_equal(fx->b->ops->put(fx->b, "marker", "plain-marker-xyz", 16, NULL, &err), 0);
    backend_close(fx->b);
    needle1 = needle2 = "plain-marker-xyz";
    found = 0;
    nftw(fx->dir, scan_entry, 8, FTW_PHYS);
    assert_int_equal(found, 1);
    /* Reopen for the teardown. */
    assert_int_equal(backend_open(fx->path, &fx->b, &err), 0);
    assert_int_equal(barrier_open(fx->b, &fx->br, &err), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_lookup, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_root_and_chosen_id, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_num_uses, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_num_uses_concurrent, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_revoke_children, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_renew, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_renew_capped_by_max_lease, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_huge_durations, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_child_capped_by_parent, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_revokes_subtree, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_backfill, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_expiry_watch, setup, token_fx_teardown),
        cmocka_unit_test_setup_teardown(test_only_hashes_on_disk, setup, token_fx_teardown),
    };
    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
