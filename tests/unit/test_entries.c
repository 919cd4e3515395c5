/* Unit tests for engine/entries.c (entries defined in the store through the API, and the one
 * lookup: inventory first, then store) and for the status side of engine/schedule.c: the
 * status op of a kind (a test-only rotator given by pointer, not in the product registry) and
 * the status list that shows store entries beside the inventory's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/entries.h"
#include "engine/inventory.h"
#include "engine/schedule.h"
#include "rotators/rotator.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#include "barrier_fixture.h"

static const char config[] = "version: 1\n"
                             "hooks:\n"
                             "  render:\n"
                             "    type: file\n"
                             "    path: /tmp/rekey-test-entries-never-written\n"
                             "    template: \"{{new}}\"\n"
                             "  check:\n"
                             "    type: exec\n"
                             "    command: [\"true\"]\n"
                             "secrets:\n"
                             "  - path: secret/inv/one\n"
                             "    kind: generated\n"
                             "    format: \"in-{hex:16}\"\n"
                             "    every: 30d\n"
                             "    auto: true\n";

struct fx {
    struct barrier_fx s;
    struct kv *kv;
    struct inventory *inv;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rk_error err = {0};

    assert_non_null(f);
    barrier_fx_open(&f->s, "entries");
    assert_int_equal(kv_open(f->s.br, &f->kv, &err), 0);
    assert_int_equal(inventory_load_string("test.yaml", config, strlen(config), &f->inv, &err), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    inventory_free(f->inv);
    kv_free(f->kv);
    barrier_fx_close(&f->s);
    free(f);
    return 0;
}

/* Puts path with the JSON text def; returns put's result, err filled. */
static int
put(struct fx *f, const char *path, const char *def, int *created, struct rk_error *err)
{
    json_error_t je;
    json_t *j = json_loads(def, 0, &je);
    int r;

    assert_non_null(j);
    r = engine_entry_put(f->kv, f->inv, path, j, created, err);
    json_decref(j);
    if (r != 0)
        print_message("put %s: %s\n", path, err->msg);
    return r;
}

static void
test_put_get_delete(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct entry_ref ref;
    int created = -1;
    json_t *got = NULL;

    assert_int_equal(put(f, "secret/api/a",
                         "{\"kind\":\"generated\",\"format\":\"a-{hex:16}\",\"every\":\"1h\","
                         "\"auto\":true,\"apply\":[\"check\"],\"reload\":\"render\"}",
                         &created, &err),
                     0);
    assert_int_equal(created, 1);
    /* Replacing is allowed; created says it existed. */
    assert_int_equal(put(f, "secret/api/a",
                         "{\"path\":\"secret/api/a\",\"kind\":\"generated\",\"format\":"
                         "\"b-{hex:16}\",\"every\":3600,\"auto\":true,\"reload\":[\"render\"]}",
                         &created, &err),
                     0);
    assert_int_equal(created, 0);
    assert_int_equal(engine_entry_get(f->kv, "secret/api/a", &got, &err), 0);
    assert_string_equal(json_string_value(json_object_get(got, "path")), "secret/api/a");
    assert_string_equal(json_string_value(json_object_get(got, "format")), "b-{hex:16}");
    json_decref(got);

    /* The one lookup: the loader's view, with the defaults a YAML entry gets and the hooks. */
    assert_int_equal(engine_entry_find(f->kv, f->inv, "secret/api/a", &ref, &err), 0);
    assert_int_equal(ref.in_store, 1);
    assert_string_equal(ref.s->path, "secret/api/a");
    assert_string_equal(ref.s->kind, "generated");
    assert_string_equal(ref.s->field, "value");
    assert_int_equal(ref.s->every, 3600);
    assert_int_equal(ref.s->auto_rotate, 1);
    assert_int_equal(ref.s->nreload, 1);
    assert_ptr_equal(ref.s->reload[0], inventory_hook(f->inv, "render"));
    assert_int_equal(ref.s->napply, 0);
    entry_ref_release(&ref);
    /* The inventory first: its entry is borrowed. */
    assert_int_equal(engine_entry_find(f->kv, f->inv, "secret/inv/one", &ref, &err), 0);
    assert_int_equal(ref.in_store, 0);
    assert_ptr_equal(ref.s, inventory_find(f->inv, "secret/inv/one"));
    entry_ref_release(&ref);
    assert_int_equal(engine_entry_find(f->kv, f->inv, "secret/api/none", &ref, &err),
                     -RK_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nor defined in the store"));

    assert_int_equal(engine_entry_delete(f->kv, "secret/api/a", &err), 0);
    assert_int_equal(engine_entry_get(f->kv, "secret/api/a", &got, &err), -RK_ENOTFOUND);
    assert_int_equal(engine_entry_delete(f->kv, "secret/api/a", &err), -RK_ENOTFOUND);
    assert_int_equal(engine_entry_find(f->kv, f->inv, "secret/api/a", &ref, &err), -RK_ENOTFOUND);
}

/* Every refusal names the key and why, through the loader's own rules. */
static void
test_put_refused(void **state)
{
    static const struct {
        const char *path, *def;
        int code;
        const char *msg;
    } cases[] = {
        {"secret/inv/one", "{\"kind\":\"generated\",\"format\":\"x-{hex:16}\",\"every\":\"1h\"}",
         -RK_EEXISTS, "may not shadow"},
        {"secret/api/b", "{\"kind\":\"generated\",\"format\":\"x-{hex:16}\",\"every\":\"soon\"}",
         -RK_EINVAL, "every"},
        {"secret/api/b",
         "{\"kind\":\"generated\",\"format\":\"x-{hex:16}\",\"every\":\"1h\","
         "\"colour\":\"red\"}",
         -RK_EINVAL, "colour"},
        {"secret/api/b", "{\"kind\":\"generated\",\"every\":\"1h\"}", -RK_EINVAL, "format"},
        {"secret/api/b", "{\"kind\":\"generated\",\"format\":\"x-{nope:8}\",\"every\":\"1h\"}",
         -RK_EINVAL, "format"},
        {"secret/api/b", "{\"kind\":\"teleport\",\"every\":\"1h\"}", -RK_EINVAL, "teleport"},
        {"secret/api/b", "{\"kind\":\"manual\",\"every\":\"1h\",\"test\":[\"nope\"]}", -RK_EINVAL,
         "unknown hook 'nope'"},
        {"secret/api/b", "{\"kind\":\"manual\",\"every\":\"1h\",\"test\":[\"check\",\"check\"]}",
         -RK_EINVAL, "listed twice"},
        {"secret/api/b", "{\"kind\":\"manual\",\"every\":\"1h\",\"test\":{\"a\":1}}", -RK_EINVAL,
         "list of hook names"},
        {"secret/api/b", "{\"path\":\"secret/api/c\",\"kind\":\"manual\",\"every\":\"1h\"}",
         -RK_EINVAL, "differs"},
        {"secret/api/b", "[1,2]", -RK_EINVAL, "JSON object"},
        {"secret//b", "{\"kind\":\"manual\",\"every\":\"1h\"}", -RK_EINVAL, "invalid path"},
    };
    struct fx *f = *state;
    struct entry_ref ref;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rk_error err = {0};
        int r = put(f, cases[i].path, cases[i].def, NULL, &err);
        if (r != cases[i].code || strstr(err.msg, cases[i].msg) == NULL)
            fail_msg("case %zu: got %d '%s', want %d with '%s'", i, r, err.msg, cases[i].code,
                     cases[i].msg);
        /* The loader's position in its own document is not shown. */
        assert_null(strstr(err.msg, "secrets[0]"));
    }
    {
        struct rk_error err = {0};
        assert_int_equal(engine_entry_find(f->kv, f->inv, "secret/api/b", &ref, &err),
                         -RK_ENOTFOUND);
    }
}

struct seen {
    char paths[8][64];
    size_t n;
};

static void
on_change(void *arg, const char *path)
{
    struct seen *s = arg;

    if (s->n < 8)
        snprintf(s->paths[s->n++], sizeof(s->paths[0]), "%s", path);
}

static int
list_cb(void *arg, const char *path)
{
    struct seen *s = arg;

    on_change(arg, path);
    return s->n == 2 ? 1 : 0;
}

static void
test_list_notify_busy(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct seen ch = {0}, ls = {0};
    const char *def = "{\"kind\":\"manual\",\"every\":\"30d\"}";
    char key[128];

    assert_int_equal(engine_entries_subscribe(f->kv, on_change, &ch), 0);
    assert_int_equal(put(f, "secret/api/c", def, NULL, &err), 0);
    assert_int_equal(put(f, "secret/api/a", def, NULL, &err), 0);
    assert_int_equal(put(f, "secret/api/b", def, NULL, &err), 0);
    assert_int_not_equal(put(f, "secret/api/d", "{}", NULL, &err), 0); /* no notice */
    assert_int_equal(ch.n, 3);
    assert_string_equal(ch.paths[0], "secret/api/c");

    /* In byte order, from a point, stopped by the callback. */
    assert_int_equal(engine_entry_list(f->kv, NULL, NULL, 0, list_cb, &ls, &err), 0);
    assert_int_equal(ls.n, 2);
    assert_string_equal(ls.paths[0], "secret/api/a");
    assert_string_equal(ls.paths[1], "secret/api/b");
    memset(&ls, 0, sizeof(ls));
    assert_int_equal(engine_entry_list(f->kv, "secret/", "secret/api/a", 1, list_cb, &ls, &err), 0);
    assert_int_equal(ls.n, 1);
    assert_string_equal(ls.paths[0], "secret/api/b");
    memset(&ls, 0, sizeof(ls));
    assert_int_equal(engine_entry_list(f->kv, "secret/other/", NULL, 0, list_cb, &ls, &err), 0);
    assert_int_equal(ls.n, 0);

    /* A finish still to run (or a rotation in flight) keeps the entry. */
    snprintf(key, sizeof(key), "rot/finish/secret/api/b");
    assert_int_equal(barrier_put(f->s.br, key, "{}", 2, &err), 0);
    assert_int_equal(engine_entry_delete(f->kv, "secret/api/b", &err), -RK_EBUSY);
    assert_int_equal(barrier_del(f->s.br, key, &err), 0);
    snprintf(key, sizeof(key), "rot/lock/secret/api/b");
    assert_int_equal(barrier_put(f->s.br, key, "{}", 2, &err), 0);
    assert_int_equal(engine_entry_delete(f->kv, "secret/api/b", &err), -RK_EBUSY);
    assert_int_equal(barrier_del(f->s.br, key, &err), 0);
    assert_int_equal(engine_entry_delete(f->kv, "secret/api/b", &err), 0);
    assert_int_equal(ch.n, 4);
    assert_string_equal(ch.paths[3], "secret/api/b");

    engine_entries_unsubscribe(f->kv, on_change, &ch);
    assert_int_equal(put(f, "secret/api/e", def, NULL, &err), 0);
    assert_int_equal(ch.n, 4);
}

/* All store entries in one inventory; a record that no longer loads is left out, a path the
 * inventory names is the inventory's. */
static void
test_load_all(void **state)
{
    struct fx *f = *state;
    struct rk_error err = {0};
    struct inventory *all = NULL;
    struct schedule_list sl;
    size_t bad = 9;
    const char *stale = "{\"kind\":\"manual\",\"every\":\"1h\",\"apply\":[\"gone\"]}";
    const char *strange = "{\"kind\":\"manual\",\"every\":\"1h\",\"colour\":\"red\"}";

    /* None yet: an empty inventory. */
    assert_int_equal(engine_entries_load(f->kv, f->inv, &all, &bad, &err), 0);
    assert_int_equal(all->nsecrets, 0);
    assert_int_equal(bad, 0);
    inventory_free(all);
    all = NULL;
    assert_int_equal(schedule_status_list(f->kv, f->inv, 1000000, &sl, &err), 0);
    assert_int_equal(sl.n, 1);
    schedule_list_free(&sl);

    assert_int_equal(put(f, "secret/api/z",
                         "{\"kind\":\"generated\",\"format\":\"z-{hex:16}\",\"every\":\"1h\"}",
                         NULL, &err),
                     0);
    assert_int_equal(put(f, "secret/api/m", "{\"kind\":\"manual\",\"every\":\"7d\"}", NULL, &err),
                     0);
    /* Written past the checks: a hook the configuration dropped, a key the loader refuses, a
     * record that is not JSON, and one the inventory shadows. */
    assert_int_equal(barrier_put(f->s.br, "rot/entry/secret/api/s", stale, strlen(stale), &err), 0);
    assert_int_equal(barrier_put(f->s.br, "rot/entry/secret/api/t", strange, strlen(strange), &err),
                     0);
    assert_int_equal(barrier_put(f->s.br, "rot/entry/secret/api/u", "{oops", 5, &err), 0);
    assert_int_equal(
        barrier_put(f->s.br, "rot/entry/secret/inv/one", strange, strlen(strange), &err), 0);

    assert_int_equal(engine_entries_load(f->kv, f->inv, &all, &bad, &err), 0);
    assert_int_equal(all->nsecrets, 2);
    assert_int_equal(bad, 2);
    assert_string_equal(all->secrets[0].path, "secret/api/m");
    assert_string_equal(all->secrets[1].path, "secret/api/z");
    assert_ptr_equal(inventory_find(all, "secret/api/z"), &all->secrets[1]);
    inventory_free(all);

    /* status: the inventory's, then the store's. */
    assert_int_equal(schedule_status_list(f->kv, f->inv, 1000000, &sl, &err), 0);
    assert_int_equal(sl.n, 3);
    assert_int_equal(sl.ninv, 1);
    assert_string_equal(sl.st[0].secret->path, "secret/inv/one");
    assert_int_equal(sl.st[0].in_store, 0);
    assert_string_equal(sl.st[1].secret->path, "secret/api/m");
    assert_int_equal(sl.st[1].in_store, 1);
    assert_int_equal(sl.st[2].state, STATE_DUE); /* never rotated */
    schedule_list_free(&sl);
}

/* ---- a kind's status op (a test-only rotator, by pointer) ---- */

static int
dummy_create(struct rot_ctx *c, struct rot_fields *out, struct rk_error *err)
{
    (void)c;
    (void)out;
    return rk_error_set(err, RK_ENOTIMPL, "not in this test");
}

static int status_calls;

/* Due 100 s before the expiry written in the value's "not_after" field; overdue at expiry. */
static int
expiry_status(const struct inv_secret *s, const struct rot_status_in *in, struct rot_due *out,
              struct rk_error *err)
{
    struct secret *v = NULL;
    char buf[32];
    long long exp;
    int r;

    (void)s;
    status_calls++;
    if ((r = in->read_current(in->read_arg, "not_after", &v, err)) != 0)
        return r == -RK_ENOTFOUND ? rk_error_set(err, RK_EINVAL, "no not_after") : r;
    snprintf(buf, sizeof(buf), "%.*s", (int)v->len, (const char *)v->data);
    secret_free(v);
    exp = strtoll(buf, NULL, 10);
    out->next_due = exp - 100;
    out->overdue_at = exp;
    out->expires_at = exp;
    out->period = 0;
    snprintf(out->detail, sizeof(out->detail), "expires at %lld", exp);
    return 0;
}

static const struct rotator_ops test_ops = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "generated",
    .create = dummy_create,
    .status = expiry_status,
};

static const struct rotator_ops test_ops_nostatus = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "generated",
    .create = dummy_create,
};

static void
put_version(struct fx *f, const char *path, const char *json)
{
    struct kv_put_opts o = KV_PUT_OPTS_INIT;
    struct rk_error err = {0};
    struct secret *d = secret_from(json, strlen(json));
    uint64_t v = 0;

    assert_non_null(d);
    assert_int_equal(kv_put(f->kv, path, d, &o, &v, &err), 0);
    secret_free(d);
}

static void
occ(void *arg, int64_t t)
{
    *(int64_t *)arg = t;
}

static void
test_status_op(void **state)
{
    struct fx *f = *state;
    const struct inv_secret *s = inventory_find(f->inv, "secret/inv/one");
    struct rk_error err = {0};
    struct secret_status st, plain;
    int64_t now, exp, when = 0;
    size_t n;

    /* Never rotated: no current version, the op cannot tell: the engine's rule, and why. */
    assert_int_equal(schedule_status_ops(f->kv, s, &test_ops, 1000, &st, &err), 0);
    assert_int_equal(st.state, STATE_DUE);
    assert_int_equal(st.next_due, 1000);
    assert_string_equal(st.detail, "status: no not_after");

    put_version(f, s->path, "{\"value\":\"x\",\"not_after\":\"5000000000\"}");
    exp = 5000000000;
    /* Without the op: last rotation + every, as always. */
    assert_int_equal(schedule_status_ops(f->kv, s, &test_ops_nostatus, exp - 50, &plain, &err), 0);
    assert_int_equal(plain.next_due, plain.last_rotated + 30 * 86400);
    assert_int_equal(plain.expires_at, 0);
    assert_int_equal(plain.period, 30 * 86400);
    assert_int_equal(plain.state, STATE_OVERDUE);

    /* With the op: its due time, expiry and detail, and the state from them. */
    status_calls = 0;
    now = exp - 1000;
    assert_int_equal(schedule_status_ops(f->kv, s, &test_ops, now, &st, &err), 0);
    assert_int_equal(status_calls, 1);
    assert_int_equal(st.next_due, exp - 100);
    assert_int_equal(st.expires_at, exp);
    assert_int_equal(st.period, 0);
    assert_int_equal(st.state, STATE_OK);
    assert_string_equal(st.detail, "expires at 5000000000");
    assert_int_equal(schedule_status_ops(f->kv, s, &test_ops, exp - 100, &st, &err), 0);
    assert_int_equal(st.state, STATE_DUE);
    assert_int_equal(schedule_status_ops(f->kv, s, &test_ops, exp - 1, &st, &err), 0);
    assert_int_equal(st.state, STATE_DUE);
    assert_int_equal(schedule_status_ops(f->kv, s, &test_ops, exp, &st, &err), 0);
    assert_int_equal(st.state, STATE_OVERDUE);

    /* The calendar: the one due time the kind knows, not a period from `every`. */
    assert_int_equal(schedule_status_ops(f->kv, s, &test_ops, now, &st, &err), 0);
    n = schedule_occurrences(&st, now, now + 400 * 86400, 0, occ, &when);
    assert_int_equal(n, 1);
    assert_int_equal(when, exp - 100);
    n = schedule_occurrences(&plain, plain.last_rotated, plain.last_rotated + 95 * 86400, 0, occ,
                             &when);
    assert_int_equal(n, 3);
}

/* A kind without a create (a planned kind's row) is not implemented; its op is not asked. */
static void
test_status_not_implemented(void **state)
{
    struct fx *f = *state;
    const struct inv_secret *s = inventory_find(f->inv, "secret/inv/one");
    struct rotator_ops planned = test_ops;
    struct rk_error err = {0};
    struct secret_status st;

    planned.create = NULL;
    status_calls = 0;
    assert_int_equal(schedule_status_ops(f->kv, s, &planned, 1000, &st, &err), 0);
    assert_int_equal(st.state, STATE_NOT_IMPLEMENTED);
    assert_int_equal(status_calls, 0);
    assert_int_equal(schedule_status_ops(f->kv, s, NULL, 1000, &st, &err), 0);
    assert_int_equal(st.state, STATE_NOT_IMPLEMENTED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_notify_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_not_implemented, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
