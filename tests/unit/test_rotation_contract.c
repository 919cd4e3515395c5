/* Unit tests for the rotator contract (ROTATOR_OPS_VERSION 2): the field map of a version
 * (rotators/fields.h), per-entry flags (rotator_flags), create filling the entry's field, the
 * action hint, the refusal to render an internal field, an exec hook's "unavailable" exit
 * status, and the engine's three test outcomes on a real store: accepted (promoted), rejected
 * (undone), unavailable (the candidate stays pending, survives recovery, is resumed by the next
 * rotation without a second value and never replaced by one). No test prints a secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/events.h"
#include "engine/inventory.h"
#include "engine/rotation.h"
#include "engine/rotstate.h"
#include "hooks/hook.h"
#include "rotators/rotator.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "util/err.h"
#include "util/secret.h"

#define VALUE_A "first-typed-value-0123456789"
#define VALUE_B "second-typed-value-9876543210"

/* ---- the field map ---- */

static void
test_fields_map(void **state)
{
    struct rot_fields f;
    struct rk_error err = {0};
    char longname[ROT_FIELD_NAME_MAX + 2];

    (void)state;
    rot_fields_init(&f);
    assert_int_equal(rot_fields_put(&f, "username", "app", 3, 0, &err), 0);
    assert_int_equal(rot_fields_put(&f, "password", "pw-1", 4, 0, &err), 0);
    assert_int_equal(rot_fields_put(&f, "key_id", "id-7", 4, ROT_FIELD_INTERNAL, &err), 0);
    assert_int_equal(f.n, 3);
    /* insertion order, replace in place */
    assert_string_equal(f.v[0].name, "username");
    assert_int_equal(rot_fields_put(&f, "password", "pw-2", 4, 0, &err), 0);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.v[1].name, "password");
    assert_memory_equal(rot_fields_get(&f, "password")->data, "pw-2", 4);
    assert_true(rot_fields_find(&f, "key_id")->flags & ROT_FIELD_INTERNAL);
    assert_null(rot_fields_get(&f, "nope"));
    /* bad names are refused and the value is taken (freed) anyway */
    assert_int_equal(rot_fields_put(&f, "", "x", 1, 0, &err), -RK_EINVAL);
    assert_int_equal(rot_fields_put(&f, "a.b", "x", 1, 0, &err), -RK_EINVAL);
    assert_int_equal(rot_fields_put(&f, "a b", "x", 1, 0, &err), -RK_EINVAL);
    assert_int_equal(rot_fields_set(&f, "ok", NULL, 0, &err), -RK_EINVAL);
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(rot_fields_put(&f, longname, "x", 1, 0, &err), -RK_EINVAL);
    longname[ROT_FIELD_NAME_MAX] = '\0';
    assert_int_equal(rot_fields_put(&f, longname, "x", 1, 0, &err), 0);
    rot_fields_clear(&f);
    assert_int_equal(f.n, 0);
    /* the count limit */
    for (int i = 0; i < ROT_FIELDS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        assert_int_equal(rot_fields_put(&f, name, "v", 1, 0, &err), 0);
    }
    assert_int_equal(rot_fields_put(&f, "one-more", "v", 1, 0, &err), -RK_ELIMIT);
    rot_fields_clear(&f);
    rot_fields_clear(NULL);
}

static void
test_fields_from_json(void **state)
{
    static const char *const internal[] = {"key_id", "absent"};
    struct secret *js = secret_from_str(
        "{\"password\":\"pw-secret\",\"port\":5432,\"key_id\":\"id-7\",\"bad name\":\"x\"}");
    struct secret *bad = secret_from_str("[\"pw-secret\"]");
    struct rot_fields f;
    struct rk_error err = {0};

    (void)state;
    rot_fields_init(&f);
    assert_int_equal(rot_fields_from_json(js, internal, 2, &f, &err), 0);
    assert_int_equal(f.n, 2); /* strings with valid names only */
    assert_memory_equal(rot_fields_get(&f, "password")->data, "pw-secret", 9);
    assert_false(rot_fields_find(&f, "password")->flags & ROT_FIELD_INTERNAL);
    assert_true(rot_fields_find(&f, "key_id")->flags & ROT_FIELD_INTERNAL);
    assert_null(rot_fields_get(&f, "port"));
    /* not an object: refused without quoting the text */
    assert_int_equal(rot_fields_from_json(bad, NULL, 0, &f, &err), -RK_ECORRUPT);
    assert_int_equal(f.n, 0);
    assert_null(strstr(err.msg, "pw-secret"));
    assert_int_equal(rot_fields_from_json(NULL, NULL, 0, &f, &err), 0);
    rot_fields_clear(&f);
    secret_free(js);
    secret_free(bad);
}

/* ---- the ops ---- */

static void
test_ops_contract(void **state)
{
    const struct rotator_ops *g = rotator_find("generated"), *m = rotator_find("manual");
    struct inv_secret s;

    (void)state;
    assert_int_equal(ROTATOR_OPS_VERSION, 2);
    assert_non_null(g);
    assert_non_null(m);
    assert_int_equal(g->version, ROTATOR_OPS_VERSION);
    assert_int_equal(m->version, ROTATOR_OPS_VERSION);
    memset(&s, 0, sizeof(s));
    s.path = "secret/x";
    s.kind = "manual";
    assert_int_equal(rotator_flags(m, &s), ROT_F_MANUAL_INPUT);
    s.kind = "generated";
    assert_int_equal(rotator_flags(g, &s), 0);
    assert_int_equal(rotator_flags(NULL, &s), 0);
    assert_string_equal(rotator_field(&s), "value");
    s.field = "api_key";
    assert_string_equal(rotator_field(&s), "api_key");
}

/* create puts one field, under the entry's field. */
static void
test_create_fills_entry_field(void **state)
{
    struct inv_secret s;
    struct rot_input in;
    struct rot_ctx c;
    struct rot_fields out;
    struct rk_error err = {0};
    struct secret *typed = secret_from_str(VALUE_A);

    (void)state;
    memset(&s, 0, sizeof(s));
    s.path = "secret/x";
    s.kind = "generated";
    s.format = "t-{hex:32}";
    s.field = "api_key";
    memset(&c, 0, sizeof(c));
    c.secret = &s;
    rot_fields_init(&out);
    assert_int_equal(rotator_find("generated")->create(&c, &out, &err), 0);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0].name, "api_key");
    assert_int_equal(out.v[0].value->len, 34);
    assert_int_equal(out.v[0].flags, 0);
    rot_fields_clear(&out);

    s.kind = "manual";
    s.format = NULL;
    s.field = NULL;
    memset(&in, 0, sizeof(in));
    in.value = typed;
    c.input = &in;
    assert_int_equal(rotator_find("manual")->create(&c, &out, &err), 0);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0].name, "value");
    assert_true(secret_equal(out.v[0].value, typed));
    rot_fields_clear(&out);
    secret_free(typed);
}

static void
test_action_hint(void **state)
{
    const struct rotator_ops *m = rotator_find("manual");
    struct inv_pair console = {"console", "https://console.example.test/keys"};
    struct inv_secret s;
    char buf[160];

    (void)state;
    memset(&s, 0, sizeof(s));
    s.path = "secret/x";
    s.kind = "manual";
    assert_non_null(m->action_hint);
    assert_int_equal(m->action_hint(&s, buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "where it was issued"));
    s.params = &console;
    s.nparams = 1;
    assert_int_equal(m->action_hint(&s, buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "https://console.example.test/keys"));
}

static void
test_error_codes(void **state)
{
    (void)state;
    assert_string_equal(rk_strerror(-RK_EREJECTED), "rejected by the target");
    assert_string_equal(rk_strerror(-RK_EUNAVAILABLE), "target unavailable");
}

/* ---- hooks: internal fields are not rendered; exit 75 says "unavailable" ---- */

static void
test_render_refuses_internal(void **state)
{
    static const char *const internal[] = {"key_id"};
    struct secret *nf =
        secret_from_str("{\"key\":\"visible-value\",\"key_id\":\"internal-id-77\"}");
    struct hook_ctx ctx;
    struct secret *out = NULL;
    struct rk_error err = {0};

    (void)state;
    memset(&ctx, 0, sizeof(ctx));
    ctx.new_fields_json = nf;
    ctx.old_fields_json = nf;
    assert_int_equal(hook_template_render("K={{new.key}}", &ctx, &out, &err), 0);
    assert_string_equal((const char *)out->data, "K=visible-value");
    secret_free(out);
    /* without the internal list the field renders (it is stored); with it, never */
    assert_int_equal(hook_template_render("I={{new.key_id}}", &ctx, &out, &err), 0);
    secret_free(out);
    ctx.internal_fields = internal;
    ctx.ninternal = 1;
    assert_int_equal(hook_template_render("I={{new.key_id}}", &ctx, &out, &err), -RK_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err.msg, "internal"));
    assert_null(strstr(err.msg, "internal-id-77"));
    assert_int_equal(hook_template_render("I={{ old.key_id }}", &ctx, &out, &err), -RK_EINVAL);
    assert_int_equal(hook_template_render("K={{new.key}}", &ctx, &out, &err), 0);
    secret_free(out);
    secret_free(nf);
}

static void
test_exec_exit_unavailable(void **state)
{
    char *argv75[] = {"sh", "-c", "exit 75", NULL}, *argv1[] = {"sh", "-c", "exit 1", NULL};
    struct hook_def h;
    struct hook_ctx ctx;
    struct rk_error err = {0};

    (void)state;
    memset(&h, 0, sizeof(h));
    memset(&ctx, 0, sizeof(ctx));
    h.name = "probe";
    h.type = HOOK_EXEC;
    h.argv = argv75;
    h.argc = 3;
    h.timeout_ms = 5000;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "status 75"));
    h.argv = argv1;
    assert_int_equal(hook_run(&h, &ctx, &err), -RK_EHOOK);
}

/* ---- the engine's three outcomes, on a real store ---- */

struct fx {
    char dir[64];
    struct backend *b;
    struct barrier *br;
    struct kv *kv;
    struct inventory *inv;
    struct engine *e;
};

#define PATH "secret/app/typed"

/* Writes the exit status the test hook will return (0 accepted, 1 rejected, 75 unavailable). */
static void
set_outcome(struct fx *f, int code)
{
    char p[128];
    FILE *fp;

    snprintf(p, sizeof(p), "%s/code", f->dir);
    assert_non_null(fp = fopen(p, "w"));
    fprintf(fp, "%d\n", code);
    fclose(fp);
}

/* The store and an inventory of one manual entry PATH with a test hook; extra: more YAML keys
 * of the entry (indented by four spaces). */
static int
engine_setup_with(void **state, const char *extra)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rk_error err = {0};
    struct secret *root;
    char db[128], yaml[2048];
    int n;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rekey-test-contract-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(db, sizeof(db), "%s/store.db", f->dir);
    assert_int_equal(backend_open(db, &f->b, &err), 0);
    assert_int_equal(barrier_open(f->b, &f->br, &err), 0);
    assert_non_null(root = secret_new(ROOT_KEY_LEN));
    memset(root->data, 0x42, ROOT_KEY_LEN);
    assert_int_equal(barrier_init(f->br, root, "{}", &err), 0);
    secret_free(root);
    assert_int_equal(kv_open(f->br, &f->kv, &err), 0);
    n = snprintf(yaml, sizeof(yaml),
                 "version: 1\n"
                 "store: { backend: sqlite, path: %s }\n"
                 "hooks:\n"
                 "  probe:\n"
                 "    type: exec\n"
                 "    command: [sh, -c, 'exit $(cat %s/code)']\n"
                 "secrets:\n"
                 "  - path: " PATH "\n"
                 "    kind: manual\n"
                 "    every: 30d\n"
                 "    test: [probe]\n"
                 "%s",
                 db, f->dir, extra);
    assert_true(n > 0 && (size_t)n < sizeof(yaml));
    if (inventory_load_string("contract.yaml", yaml, (size_t)n, &f->inv, &err) != 0)
        fail_msg("inventory: %s", err.msg);
    assert_int_equal(engine_open(f->kv, f->inv, &f->e, &err), 0);
    *state = f;
    return 0;
}

static int
engine_setup(void **state)
{
    return engine_setup_with(state, "");
}

#define CONSOLE "https://console.example.test/keys"

static int
engine_setup_console(void **state)
{
    return engine_setup_with(state, "    console: " CONSOLE "\n");
}

static int
engine_teardown(void **state)
{
    struct fx *f = *state;
    char p[256];
    DIR *d;
    struct dirent *de;

    engine_free(f->e);
    inventory_free(f->inv);
    kv_free(f->kv);
    barrier_free(f->br);
    backend_close(f->b);
    if ((d = opendir(f->dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Rotates PATH with value (NULL: no value given). */
static int
rotate(struct fx *f, const char *value, struct rotate_result *res, struct rk_error *err)
{
    struct rotate_opts ro;
    struct rot_input in;
    struct secret *v = value ? secret_from_str(value) : NULL;
    int r;

    memset(&ro, 0, sizeof(ro));
    memset(&in, 0, sizeof(in));
    in.value = v;
    ro.op = ROT_OP_ROTATE;
    ro.author = "test";
    ro.input = &in;
    rk_error_clear(err);
    r = engine_rotate(f->e, PATH, &ro, res, err);
    secret_free(v);
    return r;
}

static void
expect_current(struct fx *f, uint64_t version, const char *value)
{
    struct secret *data = NULL;
    struct kv_version_meta vm;
    struct rk_error err = {0};

    assert_int_equal(kv_get(f->kv, PATH, 0, &data, &vm, &err), 0);
    assert_int_equal(vm.version, version);
    assert_non_null(strstr((const char *)data->data, value));
    secret_free(data);
}

struct recov {
    int pending, other;
};

static void
on_recover(void *arg, const char *path, const char *what, const char *msg)
{
    struct recov *rc = arg;

    (void)path;
    (void)msg;
    if (strcmp(what, "pending") == 0)
        rc->pending++;
    else
        rc->other++;
}

static void
test_engine_outcomes(void **state)
{
    struct fx *f = *state;
    struct rotate_result res;
    struct rk_error err = {0};
    struct rot_state st;
    struct kv_meta *m = NULL;
    struct recov rc = {0, 0};
    size_t acted = 9;

    /* accepted: v1 current */
    set_outcome(f, 0);
    assert_int_equal(rotate(f, VALUE_A, &res, &err), 0);
    assert_int_equal(res.new_version, 1);
    expect_current(f, 1, VALUE_A);

    /* unavailable: v2 stays pending, v1 current; the rotation record says why */
    set_outcome(f, 75);
    assert_int_equal(rotate(f, VALUE_B, &res, &err), -RK_EUNAVAILABLE);
    assert_true(res.pending);
    assert_false(res.rolled_back);
    assert_int_equal(res.new_version, 2);
    assert_non_null(strstr(err.msg, "stays pending"));
    assert_null(strstr(err.msg, VALUE_B));
    expect_current(f, 1, VALUE_A);
    assert_int_equal(rotstate_get(f->br, PATH, &st, &err), 0);
    assert_int_equal(st.state, ROT_PENDING);
    assert_int_equal(st.failures, 1);
    assert_true(st.next_retry > st.since);
    assert_non_null(strstr(st.message, "target unavailable"));
    assert_int_equal(kv_metadata_get(f->kv, PATH, &m, &err), 0);
    assert_int_equal(kv_meta_find(m, 2)->stage, KV_STAGE_PENDING);
    kv_meta_free(m);
    m = NULL;

    /* recovery neither undoes nor retries it */
    assert_int_equal(engine_recover(f->e, time(NULL), on_recover, &rc, &acted, &err), 0);
    assert_int_equal(rc.pending, 1);
    assert_int_equal(rc.other, 0);
    assert_int_equal(acted, 0);
    assert_int_equal(rotstate_get(f->br, PATH, &st, &err), 0);
    assert_int_equal(st.state, ROT_PENDING);

    /* a second value is refused while one waits: nothing new is stored */
    assert_int_equal(rotate(f, VALUE_A "x", &res, &err), -RK_EINVAL);
    assert_non_null(strstr(err.msg, "waits for its target"));
    assert_int_equal(kv_metadata_get(f->kv, PATH, &m, &err), 0);
    assert_null(kv_meta_find(m, 3));
    kv_meta_free(m);
    m = NULL;

    /* still unavailable: tried again with no value, the count grows */
    assert_int_equal(rotate(f, NULL, &res, &err), -RK_EUNAVAILABLE);
    assert_int_equal(res.new_version, 2);
    assert_int_equal(rotstate_get(f->br, PATH, &st, &err), 0);
    assert_int_equal(st.state, ROT_PENDING);
    assert_int_equal(st.failures, 2);

    /* the target is back: the same candidate is promoted, the record cleared */
    set_outcome(f, 0);
    assert_int_equal(rotate(f, NULL, &res, &err), 0);
    assert_int_equal(res.new_version, 2);
    expect_current(f, 2, VALUE_B);
    assert_int_equal(rotstate_get(f->br, PATH, &st, &err), -RK_ENOTFOUND);

    /* rejected: undone as before, v2 stays current, v3 failed */
    set_outcome(f, 1);
    assert_int_equal(rotate(f, VALUE_A, &res, &err), -RK_EHOOK);
    assert_true(res.rolled_back);
    assert_false(res.pending);
    expect_current(f, 2, VALUE_B);
    assert_int_equal(kv_metadata_get(f->kv, PATH, &m, &err), 0);
    assert_int_equal(kv_meta_find(m, 3)->stage, KV_STAGE_FAILED);
    kv_meta_free(m);
    assert_int_equal(rotstate_get(f->br, PATH, &st, &err), 0);
    assert_int_equal(st.state, ROT_FAILED);
}

/* A manual entry with a console: per-entry flags make a person finish, and the action-required
 * item carries the rotator's hint with the console URL; rekey done closes it. */
static void
test_engine_action_hint(void **state)
{
    struct fx *f = *state;
    struct rotate_result res;
    struct rk_error err = {0};
    struct rot_state st;
    char what[160];

    assert_true(rotator_flags(rotator_find("manual"), &f->inv->secrets[0]) & ROT_F_PERSON_FINISHES);
    set_outcome(f, 0);
    assert_int_equal(rotate(f, VALUE_A, &res, &err), 0);
    assert_int_equal(rotate(f, VALUE_B, &res, &err), 0); /* grace 0: v1 is finished at once */
    assert_int_equal(rotstate_get(f->br, PATH, &st, &err), 0);
    assert_int_equal(st.state, ROT_ACTION_REQUIRED);
    assert_non_null(strstr(st.message, "v1: revoke the old value at " CONSOLE));
    assert_non_null(strstr(st.message, "rekey done " PATH));
    assert_int_equal(engine_action(f->e, PATH, what, sizeof(what), &err), 0);
    assert_string_equal(what, "v1: revoke the old value at " CONSOLE);
    assert_int_equal(engine_done(f->e, PATH, "test", &err), 0);
    assert_int_equal(engine_action(f->e, PATH, what, sizeof(what), &err), -RK_ENOTFOUND);
}

/* A rollback drops a candidate that waits (a person asked for a known version). */
static void
test_engine_rollback_drops_pending(void **state)
{
    struct fx *f = *state;
    struct rotate_result res;
    struct rotate_opts ro;
    struct rk_error err = {0};
    struct kv_meta *m = NULL;

    set_outcome(f, 0);
    assert_int_equal(rotate(f, VALUE_A, &res, &err), 0);
    assert_int_equal(rotate(f, VALUE_B, &res, &err), 0);
    set_outcome(f, 75);
    assert_int_equal(rotate(f, VALUE_A "z", &res, &err), -RK_EUNAVAILABLE);
    set_outcome(f, 0);
    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_ROLLBACK;
    ro.author = "test";
    assert_int_equal(engine_rotate(f->e, PATH, &ro, &res, &err), 0);
    expect_current(f, 1, VALUE_A);
    assert_int_equal(kv_metadata_get(f->kv, PATH, &m, &err), 0);
    assert_int_equal(kv_meta_find(m, 3)->stage, KV_STAGE_FAILED);
    kv_meta_free(m);
}

/* The engine's steps and results reach the event stream (util/events.h) once committed: what the
 * audit log and the metrics subscribe to. No event carries the value. */
struct evrec {
    int steps, results;
    char last_outcome[16], last_op[16], fp[32], steps_seen[256];
    uint64_t to;
};

static int
on_rot_event(void *arg, const struct rk_event *ev, struct rk_error *err)
{
    struct evrec *r = arg;

    (void)err;
    assert_string_equal(ev->path, PATH);
    assert_true(ev->message == NULL || strstr(ev->message, VALUE_A) == NULL);
    assert_true(ev->message == NULL || strstr(ev->message, VALUE_B) == NULL);
    if (ev->type == EV_ROTATION_STEP) {
        r->steps++;
        strncat(r->steps_seen, ev->step, sizeof(r->steps_seen) - strlen(r->steps_seen) - 2);
        strcat(r->steps_seen, ",");
    } else if (ev->type == EV_ROTATION_RESULT) {
        r->results++;
        snprintf(r->last_outcome, sizeof(r->last_outcome), "%s", ev->outcome);
        snprintf(r->last_op, sizeof(r->last_op), "%s", ev->operation);
        snprintf(r->fp, sizeof(r->fp), "%s", ev->fingerprint ? ev->fingerprint : "");
        r->to = ev->to_version;
        assert_string_equal(ev->actor, "test");
    }
    return 0;
}

static void
test_engine_events(void **state)
{
    struct fx *f = *state;
    struct rotate_result res;
    struct rk_error err = {0};
    struct evrec rec;
    int id;

    memset(&rec, 0, sizeof(rec));
    id = events_subscribe(EV_MASK(EV_ROTATION_STEP) | EV_MASK(EV_ROTATION_RESULT), on_rot_event,
                          &rec);
    assert_true(id >= 0);
    set_outcome(f, 0);
    assert_int_equal(rotate(f, VALUE_A, &res, &err), 0);
    assert_int_equal(rec.results, 1);
    assert_string_equal(rec.last_outcome, "ok");
    assert_string_equal(rec.last_op, "rotate");
    assert_int_equal(rec.to, 1);
    assert_string_equal(rec.fp, res.new_fp);
    assert_non_null(strstr(rec.steps_seen, "create,"));
    assert_non_null(strstr(rec.steps_seen, "test,"));
    assert_non_null(strstr(rec.steps_seen, "promote,"));
    /* a candidate whose target is down: one "pending" result */
    set_outcome(f, 75);
    assert_int_equal(rotate(f, VALUE_B, &res, &err), -RK_EUNAVAILABLE);
    assert_int_equal(rec.results, 2);
    assert_string_equal(rec.last_outcome, "pending");
    /* rejected: rolled back */
    set_outcome(f, 1);
    assert_int_equal(rotate(f, NULL, &res, &err), -RK_EHOOK);
    assert_int_equal(rec.results, 3);
    assert_string_equal(rec.last_outcome, "rolled-back");
    events_unsubscribe(id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_map),
        cmocka_unit_test(test_fields_from_json),
        cmocka_unit_test(test_ops_contract),
        cmocka_unit_test(test_create_fills_entry_field),
        cmocka_unit_test(test_action_hint),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_render_refuses_internal),
        cmocka_unit_test(test_exec_exit_unavailable),
        cmocka_unit_test_setup_teardown(test_engine_outcomes, engine_setup, engine_teardown),
        cmocka_unit_test_setup_teardown(test_engine_events, engine_setup, engine_teardown),
        cmocka_unit_test_setup_teardown(test_engine_rollback_drops_pending, engine_setup,
                                        engine_teardown),
        cmocka_unit_test_setup_teardown(test_engine_action_hint, engine_setup_console,
                                        engine_teardown),
    };

    secure_heap_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
