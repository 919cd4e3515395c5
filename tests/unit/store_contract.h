/* store_contract.h: the backend.h contract as one cmocka suite that every storage backend must
 * pass: reads and writes, bad keys, lists, transactions with compares, revisions, group commit,
 * compare-and-set from threads, persistence across reopens, two handles on one file, and the
 * faults REKEY_FAULT injects. test_store.c runs it on SQLite, test_logstore.c on the log store;
 * what only one backend does (SQLite's read cache and WAL, the log's recovery and compaction)
 * stays in that backend's file.
 *
 * Include it once, after store_test.h. The including file defines a struct contract_backend for
 * its backend, a setup that makes a struct fixture (fixture_new) pointing at it, and lists
 * STORE_CONTRACT_TESTS(setup, teardown) among its tests. */
#ifndef REKEY_TEST_STORE_CONTRACT_H
#define REKEY_TEST_STORE_CONTRACT_H

/* A backend's counters, as far as it keeps them; -1 where it does not. */
struct contract_stats {
    int64_t commits, txns; /* group commit: fsynced batches and the transactions in them */
    int64_t keys;          /* live keys */
    int64_t end;           /* bytes written so far (where the next write goes) */
};

/* What the suite needs to know about the backend under test. */
struct contract_backend {
    const char *name; /* b->ops->name of a store opened at a fixture's loc */
    void (*stats)(struct backend *b, struct contract_stats *st);
    /* Opens fx's store so that its nth fsync from now on fails (and only that one). */
    struct backend *(*open_fsync_fault)(const struct fixture *fx, uint64_t nth);
    /* backend.h leaves these open, and the backends differ: */
    int keys_only_vlen; /* a keys-only list still gives each value's length (else 0) */
    int list_snapshot;  /* a read inside a list's callback is in the list's snapshot, and does
                         * not see what the callback wrote (else it does) */
    /* A store that is not a file (etcd): no file mode, no reopen by plain path, no fsync fault
     * (open_fsync_fault NULL); reset starts fx's store over empty (else fx->path is removed). */
    int not_a_file;
    void (*reset)(const struct fixture *fx);
    int noop_delete_no_rev; /* a txn whose only op deletes a missing key uses no revision */
};

static struct contract_stats
contract_stats(const struct fixture *fx, struct backend *b)
{
    struct contract_stats st = {-1, -1, -1, -1};

    fx->be->stats(b, &st);
    return st;
}

/* Asserts b holds n live keys, where the backend counts them. */
static void
expect_nkeys(const struct fixture *fx, struct backend *b, int64_t n)
{
    int64_t keys = contract_stats(fx, b).keys;

    if (keys >= 0)
        assert_int_equal(keys, n);
}

/* ---- reads and writes ----------------------------------------------------------------------- */

static void
test_put_get_del(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    int64_t rev = 0, mr;
    unsigned char *v = NULL;
    size_t vl = 99;
    struct stat st;

    assert_string_equal(b->ops->name, fx->be->name);
    assert_int_equal(b->ops->version, BACKEND_OPS_VERSION);
    if (!fx->be->not_a_file) {
        assert_int_equal(stat(fx->path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    expect(b, "missing", NULL);

    put_ok(b, "a/x", "one", &rev);
    assert_int_equal(rev, 1);
    assert_int_equal(expect(b, "a/x", "one"), 1);
    put_ok(b, "a/y", "two", &rev);
    assert_int_equal(rev, 2);
    put_ok(b, "a/x", "three", &rev);
    assert_int_equal(rev, 3);
    assert_int_equal(expect(b, "a/x", "three"), 3);
    assert_int_equal(expect(b, "a/y", "two"), 2);

    /* a binary value with a NUL inside, and an empty value */
    assert_int_equal(b->ops->put(b, "bin", "a\0b", 3, NULL, &err), 0);
    assert_int_equal(b->ops->get(b, "bin", &v, &vl, NULL, &err), 0);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "a\0b", 3);
    free(v);
    assert_int_equal(b->ops->put(b, "empty", NULL, 0, &rev, &err), 0);
    assert_int_equal(rev, 5);
    v = NULL;
    assert_int_equal(b->ops->get(b, "empty", &v, &vl, &mr, &err), 0);
    assert_non_null(v);
    assert_int_equal(vl, 0);
    assert_int_equal(mr, 5);
    free(v);

    assert_int_equal(b->ops->del(b, "a/x", &rev, &err), 0);
    assert_int_equal(rev, 6);
    expect(b, "a/x", NULL);
    /* deleting a missing key: not found, and no revision used */
    assert_int_equal(b->ops->del(b, "a/x", &rev, &err), -RK_ENOTFOUND);
    assert_int_equal(b->ops->del(b, "never", &rev, &err), -RK_ENOTFOUND);
    put_ok(b, "z", "z", &rev);
    assert_int_equal(rev, 7);
    /* a key deleted then written again */
    put_ok(b, "a/x", "back", &rev);
    assert_int_equal(rev, 8);
    assert_int_equal(expect(b, "a/x", "back"), 8);
    expect_nkeys(fx, b, 5);
    assert_int_equal(b->ops->del(b, "z", &rev, &err), 0);
    assert_int_equal(rev, 9);
    backend_close(b);

    /* durable across a reopen, deletes included; the revision counter goes on */
    b = must_open(fx->loc);
    assert_int_equal(expect(b, "a/y", "two"), 2);
    assert_int_equal(expect(b, "a/x", "back"), 8);
    expect(b, "z", NULL);
    put_ok(b, "after", "x", &rev);
    assert_int_equal(rev, 10);
    expect_nkeys(fx, b, 5);
    backend_close(b);
}

static void
test_bad_keys(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    unsigned char *v = NULL;
    size_t vl;
    int64_t rev = 0;
    char big[STORE_KEY_MAX + 2];

    put_ok(b, "ok", "v", &rev);
    assert_int_equal(rev, 1);
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0'; /* STORE_KEY_MAX + 1 bytes */

    assert_int_equal(b->ops->put(b, "", "v", 1, NULL, &err), -RK_EINVAL);
    assert_int_equal(b->ops->get(b, "", &v, &vl, NULL, &err), -RK_EINVAL);
    assert_int_equal(b->ops->del(b, "", NULL, &err), -RK_EINVAL);
    assert_int_equal(b->ops->put(b, big, "v", 1, NULL, &err), -RK_EINVAL);
    assert_int_equal(b->ops->get(b, big, &v, &vl, NULL, &err), -RK_EINVAL);
    assert_int_equal(b->ops->del(b, big, NULL, &err), -RK_EINVAL);
    assert_null(v);
    {
        struct store_op ops[] = {
            {.kind = STORE_PUT, .key = "fine", .val = "v", .vlen = 1},
            {.kind = STORE_PUT, .key = big, .val = "v", .vlen = 1},
        };
        struct store_cmp cmp = {.key = "", .mod_rev = 0};

        assert_int_equal(b->ops->txn(b, NULL, 0, ops, 2, NULL, &err), -RK_EINVAL);
        assert_int_equal(b->ops->txn(b, &cmp, 1, ops, 1, NULL, &err), -RK_EINVAL);
        cmp.key = big;
        assert_int_equal(b->ops->txn(b, &cmp, 1, ops, 1, NULL, &err), -RK_EINVAL);
        expect(b, "fine", NULL); /* the good op of a rejected txn is not written */
    }

    /* exactly STORE_KEY_MAX bytes is fine, and survives a reopen */
    big[STORE_KEY_MAX] = '\0';
    put_ok(b, big, "long", &rev);
    assert_int_equal(rev, 2); /* the rejected calls used no revision */
    backend_close(b);
    b = must_open(fx->loc);
    assert_int_equal(expect(b, big, "long"), 2);
    backend_close(b);
}

/* ---- lists ---------------------------------------------------------------------------------- */

static void
test_list(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    struct collect c;
    static const char *keys[] = {"a", "a/3", "a/1", "a/2", "a0", "b/1", "a/2/x", "a\x7f"};

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        put_ok(b, keys[i], keys[i], NULL);

    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "a/", NULL, 0, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.keys[0], "a/1");
    assert_string_equal(c.keys[1], "a/2");
    assert_string_equal(c.keys[2], "a/2/x");
    assert_string_equal(c.keys[3], "a/3");
    assert_string_equal(c.vals[0], "a/1");
    assert_string_equal(c.vals[3], "a/3");
    assert_int_equal(c.revs[0], 3); /* "a/1" was the third put */
    assert_int_equal(c.revs[3], 2);
    assert_false(c.saw_null_val);

    /* start_after inside the range */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "a/", "a/2", 0, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "a/2/x");
    assert_string_equal(c.keys[1], "a/3");
    /* start_after equal to the prefix: a key equal to the prefix is not "after" it */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "a", "a", 0, 1, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 6);
    assert_string_equal(c.keys[0], "a/1");

    /* start_after before the prefix range, with a limit: from the start of the prefix */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "a/", "a", 2, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "a/1");
    assert_string_equal(c.keys[1], "a/2");
    /* start_after and limit together */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "a/", "a/1", 2, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "a/2");
    assert_string_equal(c.keys[1], "a/2/x");

    /* start_after past the range, or past every key */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "a/", "a/4", 0, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "", "zzz", 0, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 0);

    /* keys only: val is NULL, vlen and mod_rev are still given */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "b/", NULL, 0, 1, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 1);
    assert_true(c.saw_null_val);
    assert_string_equal(c.keys[0], "b/1");
    if (fx->be->keys_only_vlen)
        assert_int_equal(c.vlens[0], 3);
    assert_int_equal(c.revs[0], 6);

    /* empty (and NULL) prefix: everything, in unsigned byte order */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "", NULL, 0, 1, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 8);
    assert_string_equal(c.keys[0], "a");
    assert_string_equal(c.keys[5], "a0");
    assert_string_equal(c.keys[6], "a\x7f");
    assert_string_equal(c.keys[7], "b/1");
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, NULL, NULL, 0, 1, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 8);

    /* a prefix that is also a key (its successor range ends before "a\x7f" is left out) */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "a", NULL, 0, 1, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.keys[0], "a");

    /* the callback stops (1): no error; or fails (< 0): that error comes back, with values and
     * with keys only */
    memset(&c, 0, sizeof(c));
    c.stop_at = 2;
    assert_int_equal(b->ops->list(b, "", NULL, 0, 1, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 2);
    for (int keys_only = 0; keys_only <= 1; keys_only++) {
        memset(&c, 0, sizeof(c));
        c.fail_at = 3;
        assert_int_equal(b->ops->list(b, "", NULL, 0, keys_only, collect_cb, &c, &err),
                         -RK_ECANCELED);
        assert_int_equal(c.n, 3);
    }

    /* no match */
    memset(&c, 0, sizeof(c));
    assert_int_equal(b->ops->list(b, "zzz", NULL, 0, 0, collect_cb, &c, &err), 0);
    assert_int_equal(c.n, 0);
    backend_close(b);
}

/* Lists long enough to span several internal chunks (the log copies entries out in batches so
 * that callbacks run unlocked; SQLite steps one statement). */
static void
test_list_long(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    struct walk w;
    char key[32];

    for (int i = 0; i < 300; i++) {
        struct store_op ops[2];
        char k2[32];

        snprintf(key, sizeof(key), "n/%03d", i);
        snprintf(k2, sizeof(k2), "o/%03d", i);
        ops[0] = (struct store_op){.kind = STORE_PUT, .key = key, .val = key, .vlen = 5};
        ops[1] = (struct store_op){.kind = STORE_PUT, .key = k2, .val = k2, .vlen = 5};
        assert_int_equal(b->ops->txn(b, NULL, 0, ops, 2, NULL, &err), 0);
    }
    put_ok(b, "n", "just the prefix", NULL);

    memset(&w, 0, sizeof(w));
    assert_int_equal(b->ops->list(b, "n/", NULL, 0, 0, walk_cb, &w, &err), 0);
    assert_int_equal(w.n, 300);
    assert_int_equal(w.unordered, 0);
    assert_string_equal(w.first, "n/000");
    assert_string_equal(w.last, "n/299");

    memset(&w, 0, sizeof(w));
    assert_int_equal(b->ops->list(b, "n/", NULL, 100, 1, walk_cb, &w, &err), 0);
    assert_int_equal(w.n, 100);
    assert_string_equal(w.last, "n/099");

    memset(&w, 0, sizeof(w));
    assert_int_equal(b->ops->list(b, "n/", "n/049", 70, 0, walk_cb, &w, &err), 0);
    assert_int_equal(w.n, 70);
    assert_int_equal(w.unordered, 0);
    assert_string_equal(w.first, "n/050");
    assert_string_equal(w.last, "n/119");

    /* the limit lands exactly on a multiple of any plausible chunk size */
    for (size_t lim = 63; lim <= 129; lim++) {
        memset(&w, 0, sizeof(w));
        assert_int_equal(b->ops->list(b, "n/", NULL, lim, 1, walk_cb, &w, &err), 0);
        assert_int_equal(w.n, (int)lim);
    }

    memset(&w, 0, sizeof(w));
    w.stop_at = 130;
    assert_int_equal(b->ops->list(b, "", NULL, 0, 1, walk_cb, &w, &err), 0);
    assert_int_equal(w.n, 130);
    memset(&w, 0, sizeof(w));
    w.fail_at = 200;
    assert_int_equal(b->ops->list(b, "", NULL, 0, 0, walk_cb, &w, &err), -RK_ECANCELED);
    assert_int_equal(w.n, 200);

    memset(&w, 0, sizeof(w));
    assert_int_equal(b->ops->list(b, "", NULL, 0, 1, walk_cb, &w, &err), 0);
    assert_int_equal(w.n, 601);
    assert_int_equal(w.unordered, 0);
    assert_string_equal(w.first, "n");
    backend_close(b);
}

/* A callback that reads, lists and writes the same store on the same thread (for SQLite, while
 * the list's statement is busy). */
struct nested {
    struct backend *b;
    int snapshot; /* contract_backend.list_snapshot */
    int outer, inner;
    int failures;
};

static int
nested_inner_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    (void)key, (void)val, (void)vlen, (void)mod_rev;
    ((struct nested *)arg)->inner++;
    return 0;
}

static int
nested_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    struct nested *n = arg;
    struct rk_error err = {0};
    char other[64];
    struct store_cmp cmp = {.key = key, .mod_rev = mod_rev};
    struct store_op op = {.kind = STORE_PUT, .key = key, .val = "rewritten", .vlen = 9};

    (void)val, (void)vlen;
    n->outer++;
    expect(n->b, key, key);
    if (n->b->ops->list(n->b, "k", NULL, 0, 0, nested_inner_cb, n, &err) != 0)
        n->failures++;
    snprintf(other, sizeof(other), "other/%s", key);
    if (n->b->ops->put(n->b, other, key, strlen(key), NULL, &err) != 0)
        n->failures++;
    /* a compare-and-set on the very key being listed */
    if (n->b->ops->txn(n->b, &cmp, 1, &op, 1, NULL, &err) != 0)
        n->failures++;
    expect(n->b, key, n->snapshot ? key : "rewritten");
    return 0;
}

static void
test_list_nested(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    struct nested n = {.b = b, .snapshot = fx->be->list_snapshot};

    put_ok(b, "k1", "k1", NULL);
    put_ok(b, "k2", "k2", NULL);
    put_ok(b, "k3", "k3", NULL);
    assert_int_equal(b->ops->list(b, "k", NULL, 0, 0, nested_cb, &n, &err), 0);
    assert_int_equal(n.failures, 0);
    assert_int_equal(n.outer, 3);
    assert_int_equal(n.inner, 9);
    expect(b, "other/k1", "k1");
    expect(b, "other/k3", "k3");
    assert_int_equal(expect(b, "k3", "rewritten"), 9); /* 3 puts, then 2 writes per key */
    backend_close(b);
}

/* ---- transactions --------------------------------------------------------------------------- */

static void
test_txn_compare(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    int64_t rev = 0, r1;

    /* create-if-absent: mod_rev 0; a delete of a missing key inside a txn is fine */
    struct store_cmp c_absent = {.key = "k", .mod_rev = 0};
    struct store_op ops[] = {
        {.kind = STORE_PUT, .key = "k", .val = "v1", .vlen = 2},
        {.kind = STORE_PUT, .key = "journal/1", .val = "j", .vlen = 1},
        {.kind = STORE_DELETE, .key = "never-existed"},
    };
    assert_int_equal(b->ops->txn(b, &c_absent, 1, ops, 3, &rev, &err), 0);
    assert_int_equal(rev, 1);
    /* every op of one transaction shares its revision */
    assert_int_equal(expect(b, "k", "v1"), 1);
    assert_int_equal(expect(b, "journal/1", "j"), 1);
    expect(b, "never-existed", NULL);

    /* the same compare now fails and writes nothing, not even the other keys */
    struct store_op ops2[] = {
        {.kind = STORE_PUT, .key = "k", .val = "v2", .vlen = 2},
        {.kind = STORE_PUT, .key = "journal/2", .val = "j", .vlen = 1},
    };
    memset(&err, 0, sizeof(err));
    assert_int_equal(b->ops->txn(b, &c_absent, 1, ops2, 2, &rev, &err), -RK_ECONFLICT);
    assert_int_equal(err.code, RK_ECONFLICT);
    assert_true(strstr(err.msg, "k") != NULL);
    assert_int_equal(expect(b, "k", "v1"), 1);
    expect(b, "journal/2", NULL);

    /* the right mod_rev commits; a stale one conflicts */
    struct store_cmp c_cur = {.key = "k", .mod_rev = 1};
    assert_int_equal(b->ops->txn(b, &c_cur, 1, ops2, 2, &r1, &err), 0);
    assert_int_equal(r1, 2); /* the conflict used no revision */
    assert_int_equal(b->ops->txn(b, &c_cur, 1, ops2, 1, &rev, &err), -RK_ECONFLICT);
    /* a compare on a missing key with a non-zero mod_rev conflicts */
    struct store_cmp c_ghost = {.key = "ghost", .mod_rev = 1};
    assert_int_equal(b->ops->txn(b, &c_ghost, 1, ops2, 1, &rev, &err), -RK_ECONFLICT);
    /* two compares, one wrong */
    struct store_cmp two[] = {{.key = "k", .mod_rev = 2}, {.key = "journal/1", .mod_rev = 2}};
    struct store_op del = {.kind = STORE_DELETE, .key = "k"};
    assert_int_equal(b->ops->txn(b, two, 2, &del, 1, &rev, &err), -RK_ECONFLICT);
    assert_int_equal(expect(b, "k", "v2"), 2);
    two[1].mod_rev = 1;
    assert_int_equal(b->ops->txn(b, two, 2, &del, 1, &rev, &err), 0);
    assert_int_equal(rev, 3);
    expect(b, "k", NULL);
    /* a deleted key compares as absent again */
    assert_int_equal(b->ops->txn(b, &c_absent, 1, ops, 1, &rev, &err), 0);
    assert_int_equal(rev, 4);

    /* compares only: succeeds, writes nothing, uses no revision, reports the current one */
    assert_int_equal(b->ops->txn(b, &two[1], 1, NULL, 0, &rev, &err), 0);
    struct store_cmp c_k = {.key = "k", .mod_rev = 4};
    rev = -1;
    assert_int_equal(b->ops->txn(b, &c_k, 1, NULL, 0, &rev, &err), 0);
    assert_int_equal(rev, 4);
    assert_int_equal(b->ops->txn(b, &c_cur, 1, NULL, 0, &rev, &err), -RK_ECONFLICT);
    put_ok(b, "next", "n", &rev);
    assert_int_equal(rev, 5);

    /* a put then a delete of one key in one txn: the last op wins */
    struct store_op pd[] = {
        {.kind = STORE_PUT, .key = "pd", .val = "x", .vlen = 1},
        {.kind = STORE_DELETE, .key = "pd"},
        {.kind = STORE_PUT, .key = "pp", .val = "first", .vlen = 5},
        {.kind = STORE_PUT, .key = "pp", .val = "second", .vlen = 6},
    };
    assert_int_equal(b->ops->txn(b, NULL, 0, pd, 4, &rev, &err), 0);
    assert_int_equal(rev, 6);
    expect(b, "pd", NULL);
    assert_int_equal(expect(b, "pp", "second"), 6);

    /* invalid input */
    struct store_op bad = {.kind = 7, .key = "x"};
    assert_int_equal(b->ops->txn(b, NULL, 0, &bad, 1, &rev, &err), -RK_EINVAL);
    struct store_cmp neg = {.key = "k", .mod_rev = -1};
    assert_int_equal(b->ops->txn(b, &neg, 1, ops, 1, &rev, &err), -RK_EINVAL);
    backend_close(b);

    /* the same state after a reopen (a log replay applies ops in order too) */
    b = must_open(fx->loc);
    expect(b, "pd", NULL);
    assert_int_equal(expect(b, "pp", "second"), 6);
    assert_int_equal(expect(b, "k", "v1"), 4);
    put_ok(b, "last", "l", &rev);
    assert_int_equal(rev, 7);
    backend_close(b);
}

static void
test_txn_empty(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    int64_t rev = -1;
    struct stat st0, st1;

    /* an empty store is at revision 0 */
    assert_int_equal(b->ops->txn(b, NULL, 0, NULL, 0, &rev, &err), 0);
    assert_int_equal(rev, 0);
    put_ok(b, "a", "1", &rev);
    assert_int_equal(rev, 1);
    put_ok(b, "b", "2", &rev);
    assert_int_equal(rev, 2);
    {
        int64_t end = contract_stats(fx, b).end;

        rev = -1;
        assert_int_equal(b->ops->txn(b, NULL, 0, NULL, 0, &rev, &err), 0);
        assert_int_equal(rev, 2);
        assert_int_equal(contract_stats(fx, b).end, end); /* nothing written */
    }
    /* a txn of one delete of a missing key: fine */
    {
        struct store_op del = {.kind = STORE_DELETE, .key = "nope"};

        assert_int_equal(b->ops->txn(b, NULL, 0, &del, 1, &rev, &err), 0);
        assert_int_equal(rev, fx->be->noop_delete_no_rev ? 2 : 3);
    }
    put_ok(b, "c", "3", &rev);
    assert_int_equal(rev, fx->be->noop_delete_no_rev ? 3 : 4);
    backend_close(b);

    if (fx->be->not_a_file)
        return;
    assert_int_equal(stat(fx->path, &st0), 0);
    b = must_open(fx->loc);
    {
        int64_t r2 = -1;

        assert_int_equal(b->ops->txn(b, NULL, 0, NULL, 0, &r2, &err), 0);
        assert_int_equal(r2, rev);
    }
    backend_close(b);
    assert_int_equal(stat(fx->path, &st1), 0);
    assert_int_equal(st0.st_size, st1.st_size);
}

/* ---- group commit and compare-and-set from threads ----------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void
test_group_commit(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    int64_t all[NTHREADS * PER_THREAD];
    struct contract_stats st;
    size_t n = 0;

    for (int i = 0; i < NTHREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].b = b;
        w[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(w[i].failures, 0);
        for (int j = 0; j < PER_THREAD; j++) {
            all[n++] = w[i].revs[j];
            /* each thread's own transactions are ordered */
            if (j > 0)
                assert_true(w[i].revs[j] > w[i].revs[j - 1]);
        }
    }
    qsort(all, n, sizeof(all[0]), cmp_i64);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(all[i], (int64_t)i + 1); /* distinct, no gaps */
    for (int i = 0; i < NTHREADS; i++) {
        for (int j = 0; j < PER_THREAD; j++) {
            char key[64], val[64];
            snprintf(key, sizeof(key), "t%d/k%d", i, j);
            snprintf(val, sizeof(val), "v%d-%d", i, j);
            assert_int_equal(expect(b, key, val), w[i].revs[j]);
        }
    }
    st = contract_stats(fx, b);
    expect_nkeys(fx, b, NTHREADS * PER_THREAD);
    if (st.txns >= 0) { /* a backend that batches commits itself */
        assert_int_equal(st.txns, NTHREADS * PER_THREAD);
        fprintf(stderr, "group commit: %lld transactions in %lld commits\n", (long long)st.txns,
                (long long)st.commits);
        assert_true(st.commits > 0);
        assert_true(st.commits < st.txns); /* batching happened */
    }
    backend_close(b);

    /* everything is there after reopening, with the revision it was given */
    b = must_open(fx->loc);
    for (int i = 0; i < NTHREADS; i++) {
        for (int j = 0; j < PER_THREAD; j++) {
            char key[64], val[64];
            snprintf(key, sizeof(key), "t%d/k%d", i, j);
            snprintf(val, sizeof(val), "v%d-%d", i, j);
            assert_int_equal(expect(b, key, val), w[i].revs[j]);
        }
    }
    backend_close(b);
}

/* Threads increment one counter with compare-and-set and retry on conflict: the final value
 * proves no update was lost and a conflict inside a batch rolls back only its own txn. */
#define CAS_THREADS 8
#define CAS_INCS 25

static void *
cas_thread(void *arg)
{
    struct backend *b = arg;

    for (int i = 0; i < CAS_INCS; i++)
        if (cas_increment(b, "counter", NULL) != 0)
            return (void *)1;
    return NULL;
}

static void
test_cas_counter(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    pthread_t th[CAS_THREADS];
    char want[16];

    for (int i = 0; i < CAS_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, cas_thread, b), 0);
    for (int i = 0; i < CAS_THREADS; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    snprintf(want, sizeof(want), "%d", CAS_THREADS * CAS_INCS);
    /* each successful increment is one revision: the counter's mod_rev is the total */
    assert_int_equal(expect(b, "counter", want), CAS_THREADS * CAS_INCS);
    backend_close(b);
    b = must_open(fx->loc);
    assert_int_equal(expect(b, "counter", want), CAS_THREADS * CAS_INCS);
    backend_close(b);
}

/* ---- persistence ---------------------------------------------------------------------------- */

#define PKEYS 60

static void
test_persistence(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    struct rk_error err = {0};
    unsigned char val[600];
    int64_t modrev[PKEYS] = {0}, rev = 0;
    int version[PKEYS], present[PKEYS] = {0};
    size_t vlen[PKEYS];
    char key[32];

    /* puts, overwrites, deletes, empty and binary values, in txns and alone */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < PKEYS; i++) {
            size_t len = (size_t)((i * 37 + round * 11) % 600);

            if ((i + round) % 7 == 3 && present[i]) {
                snprintf(key, sizeof(key), "p/%03d", i);
                assert_int_equal(b->ops->del(b, key, &rev, &err), 0);
                present[i] = 0;
                continue;
            }
            snprintf(key, sizeof(key), "p/%03d", i);
            fill_value(val, len, i, round);
            if (i % 3 == 0) {
                struct store_op ops[] = {
                    {.kind = STORE_PUT, .key = key, .val = val, .vlen = len},
                    {.kind = STORE_DELETE, .key = "scratch"},
                };
                assert_int_equal(b->ops->txn(b, NULL, 0, ops, 2, &rev, &err), 0);
            } else {
                putn_ok(b, key, val, len, &rev);
            }
            present[i] = 1;
            version[i] = round;
            vlen[i] = len;
            modrev[i] = rev;
        }
    }
    /* the last write is a delete: the revision is not any key's mod_rev */
    put_ok(b, "tmp", "t", NULL);
    assert_int_equal(b->ops->del(b, "tmp", &rev, &err), 0);
    backend_close(b);

    /* reopened by its location, then by its plain path */
    for (int pass = 0; pass < (fx->be->not_a_file ? 1 : 2); pass++) {
        int64_t r2;
        int n = 0;

        b = must_open(pass == 0 ? fx->loc : fx->path);
        assert_string_equal(b->ops->name, fx->be->name);
        for (int i = 0; i < PKEYS; i++) {
            snprintf(key, sizeof(key), "p/%03d", i);
            if (!present[i]) {
                expect(b, key, NULL);
                continue;
            }
            n++;
            assert_true(holds_value(b, key, i, version[i], vlen[i]));
            {
                unsigned char *v = NULL;
                size_t vl;
                int64_t mr = 0;

                assert_int_equal(b->ops->get(b, key, &v, &vl, &mr, &err), 0);
                assert_int_equal(mr, modrev[i]);
                free(v);
            }
        }
        expect_nkeys(fx, b, n);
        expect(b, "tmp", NULL);
        r2 = -1;
        assert_int_equal(b->ops->txn(b, NULL, 0, NULL, 0, &r2, &err), 0);
        assert_int_equal(r2, rev);
        backend_close(b);
    }
    /* the revision counter goes on from where it was, not from the last key's mod_rev */
    b = must_open(fx->loc);
    {
        int64_t before = rev;

        put_ok(b, "after", "x", &rev);
        assert_int_equal(rev, before + 1);
        assert_int_equal(expect(b, "after", "x"), rev);
    }
    backend_close(b);
}

/* ---- two handles on one file ---------------------------------------------------------------- */

/* Two handles on one file (as the CLI and the daemon would have; they share nothing in memory):
 * both see each other's writes at once, gets and lists alike, the revision counter is shared and
 * a compare-and-set on one loses to a write through the other. Leaves x=a-won (rev 6), y, z and
 * fresh=b; test_logstore.c's test_two_handles_compact goes on from there. */
static void
two_handles(struct backend *a, struct backend *b)
{
    struct rk_error err = {0};
    struct collect col;
    int64_t r1, r2, r3, ma = 0, mb = 0;
    unsigned char *v = NULL;
    size_t vl;

    put_ok(a, "x", "from-a", &r1);
    put_ok(b, "y", "from-b", &r2);
    put_ok(a, "z", "from-a", &r3);
    assert_int_equal(r1, 1);
    assert_int_equal(r2, 2);
    assert_int_equal(r3, 3);
    assert_int_equal(expect(b, "x", "from-a"), 1);
    assert_int_equal(expect(b, "z", "from-a"), 3);
    assert_int_equal(expect(a, "y", "from-b"), 2);
    put_ok(a, "w", "list-me", NULL);
    memset(&col, 0, sizeof(col));
    assert_int_equal(b->ops->list(b, "", NULL, 0, 0, collect_cb, &col, &err), 0);
    assert_int_equal(col.n, 4);
    assert_string_equal(col.keys[0], "w");
    assert_string_equal(col.vals[0], "list-me");
    assert_int_equal(b->ops->del(b, "w", NULL, &err), 0);
    expect(a, "w", NULL);
    memset(&col, 0, sizeof(col));
    assert_int_equal(a->ops->list(a, "", NULL, 0, 1, collect_cb, &col, &err), 0);
    assert_int_equal(col.n, 3);

    /* compare-and-set across handles */
    assert_int_equal(a->ops->get(a, "x", &v, &vl, &ma, &err), 0);
    free(v);
    assert_int_equal(b->ops->get(b, "x", &v, &vl, &mb, &err), 0);
    free(v);
    assert_int_equal(ma, mb);
    {
        struct store_cmp cmp = {.key = "x", .mod_rev = ma};
        struct store_op opa = {.kind = STORE_PUT, .key = "x", .val = "a-won", .vlen = 5};
        struct store_op opb = {.kind = STORE_PUT, .key = "x", .val = "b-won", .vlen = 5};
        struct store_cmp absent = {.key = "fresh", .mod_rev = 0};
        struct store_op fa = {.kind = STORE_PUT, .key = "fresh", .val = "a", .vlen = 1};
        struct store_op fb = {.kind = STORE_PUT, .key = "fresh", .val = "b", .vlen = 1};

        assert_int_equal(a->ops->txn(a, &cmp, 1, &opa, 1, NULL, &err), 0);
        assert_int_equal(b->ops->txn(b, &cmp, 1, &opb, 1, NULL, &err), -RK_ECONFLICT);
        expect(b, "x", "a-won");
        assert_int_equal(b->ops->txn(b, &absent, 1, &fb, 1, NULL, &err), 0);
        assert_int_equal(a->ops->txn(a, &absent, 1, &fa, 1, NULL, &err), -RK_ECONFLICT);
        expect(a, "fresh", "b");
    }
}

static void
test_two_handles(void **state)
{
    struct fixture *fx = *state;
    struct backend *a = must_open(fx->loc), *b = must_open(fx->loc);

    two_handles(a, b);
    backend_close(a);
    backend_close(b);
}

/* ---- fault injection ------------------------------------------------------------------------ */

/* Starts fx's store over in its known state and opens it with the fault spec injected. */
static struct backend *
refault(const struct fixture *fx, const char *spec)
{
    if (fx->be->reset != NULL)
        fx->be->reset(fx);
    else
        unlink(fx->path);
    known_state(fx);
    return open_faulted(fx->loc, spec);
}

/* REKEY_FAULT=txn:N wraps the store: its Nth write call (put, del or txn; a compare that fails
 * counts) fails before writing, read once at open. */
static void
test_fault_txn(void **state)
{
    struct fixture *fx = *state;
    struct backend *b;
    struct rk_error err = {0};
    int64_t rev = 0;

    known_state(fx);
    b = open_faulted(fx->loc, "txn:2");
    assert_string_equal(b->ops->name, "faulty");
    /* call 1 (a compare that fails) counts; call 2 fails before writing */
    struct store_cmp c = {.key = "k1", .mod_rev = 0};
    struct store_op op = {.kind = STORE_PUT, .key = "k1", .val = "X", .vlen = 1};
    assert_int_equal(b->ops->txn(b, &c, 1, &op, 1, &rev, &err), -RK_ECONFLICT);
    assert_int_equal(b->ops->put(b, "k1", "X", 1, &rev, &err), -RK_EIO);
    assert_true(strstr(err.msg, "injected") != NULL);
    expect(b, "k1", "v1");
    backend_close(b);
    expect_known_state(fx->loc);

    /* the first call fails, a put; the call after the failing one succeeds again */
    b = refault(fx, "txn:1");
    assert_string_equal(b->ops->name, "faulty");
    assert_int_equal(b->ops->put(b, "k1", "X", 1, &rev, &err), -RK_EIO);
    assert_true(strstr(err.msg, "injected") != NULL);
    expect(b, "k1", "v1");
    put_ok(b, "k3", "v3", &rev);
    assert_int_equal(rev, 3);
    backend_close(b);

    /* del counts as a write too */
    b = refault(fx, "txn:1");
    assert_int_equal(b->ops->del(b, "k2", &rev, &err), -RK_EIO);
    expect(b, "k2", "v2");
    assert_int_equal(b->ops->put(b, "k9", "v9", 1, &rev, &err), 0);
    assert_int_equal(rev, 3);
    backend_close(b);
}

/* REKEY_FAULT=get:N: the Nth read fails, the others do not. */
static void
test_fault_get(void **state)
{
    struct fixture *fx = *state;
    struct backend *b;
    struct rk_error err = {0};
    unsigned char *v = NULL;
    size_t vl;

    known_state(fx);
    b = open_faulted(fx->loc, "get:2");
    expect(b, "k1", "v1");
    assert_int_equal(b->ops->get(b, "k1", &v, &vl, NULL, &err), -RK_EIO);
    assert_null(v);
    expect(b, "k1", "v1");
    backend_close(b);
}

/* A failing commit fails every transaction of its batch and applies none of them, now or after
 * a reopen. */
static void
test_fault_fsync_batch(void **state)
{
    struct fixture *fx = *state;
    struct backend *b;
    struct batch_worker w[NTHREADS];
    pthread_t th[NTHREADS];
    int nfail = 0, nok = 0;

    if (fx->be->open_fsync_fault == NULL)
        skip(); /* no fsync of its own to fail */
    known_state(fx);
    b = fx->be->open_fsync_fault(fx, 1);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct batch_worker){.b = b, .id = i, .result = 1};
        assert_int_equal(pthread_create(&th[i], NULL, batch_thread, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "batch/%d", i);
        if (w[i].result == 0) {
            nok++;
            expect(b, key, "v");
        } else {
            assert_int_equal(w[i].result, -RK_EIO);
            nfail++;
            expect(b, key, NULL);
        }
    }
    assert_true(nfail >= 1);
    assert_int_equal(nok + nfail, NTHREADS);
    backend_close(b);
    b = must_open(fx->loc);
    for (int i = 0; i < NTHREADS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "batch/%d", i);
        expect(b, key, w[i].result == 0 ? "v" : NULL);
    }
    backend_close(b);
}

/* The suite, as rows of a CMUnitTest array. */
#define STORE_CONTRACT_TESTS(setup, teardown)                                                      \
    cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),                            \
        cmocka_unit_test_setup_teardown(test_bad_keys, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),                               \
        cmocka_unit_test_setup_teardown(test_list_long, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_list_nested, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_txn_compare, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_txn_empty, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),                       \
        cmocka_unit_test_setup_teardown(test_cas_counter, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),                        \
        cmocka_unit_test_setup_teardown(test_fault_txn, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_fault_get, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(test_fault_fsync_batch, setup, teardown)

#endif
