/* The rotation engine on the fault-injecting backend (store/faulty.h) and at every crash point.
 *
 * For each store write N that a rotation makes, the rotation runs with the Nth write failing; the
 * process then "restarts" (everything closed and reopened without the fault) and runs recovery.
 * For each crash point (REKEY_CRASH_AT, a test switch) a child process rotates and is killed
 * there; the parent recovers. After either, the same invariants must hold: exactly one current
 * version, no pending one, no rotation in flight, no version lost, the consumer's file holds the
 * current value, and a next rotation succeeds. Reads failing (get:N) must never corrupt anything
 * either. Beside the shell crash tests (t-crash.sh), this drives the engine itself. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/inventory.h"
#include "engine/rotation.h"
#include "secrets/kv.h"
#include "store/backend.h"
#include "store/barrier.h"
#include "store/faulty.h"
#include "util/fsutil.h"
#include "util/testsw.h"

#define PATH "secret/app/token"
#define ROOT_KEY_LEN_T 32

struct fx {
    char dir[64], db[128], target[128];
    struct backend *b;
    struct barrier *br;
    struct kv *kv;
    struct inventory *inv;
    struct engine *e;
};

static struct secret *
root_key(void)
{
    struct secret *k = secret_new(ROOT_KEY_LEN_T);
    memset(k->data, 0x5a, ROOT_KEY_LEN_T);
    return k;
}

static void
load_inventory(struct fx *f)
{
    char yaml[1024];
    struct rk_error err = {0};
    int n = snprintf(yaml, sizeof(yaml),
                     "version: 1\n"
                     "store: { backend: sqlite, path: %s }\n"
                     "hooks:\n"
                     "  env:\n"
                     "    type: file\n"
                     "    path: %s\n"
                     "    template: \"{{new}}\"\n"
                     "secrets:\n"
                     "  - path: " PATH "\n"
                     "    kind: generated\n"
                     "    format: \"tok-{hex:16}\"\n"
                     "    field: key\n"
                     "    every: 30d\n"
                     "    grace: 1h\n"
                     "    apply: [env]\n",
                     f->db, f->target);
    if (inventory_load_string("engine.yaml", yaml, (size_t)n, &f->inv, &err) != 0)
        fail_msg("inventory: %s", err.msg);
}

/* Opens the store (with the fault spec, or none) and the engine over it. */
static int
open_all(struct fx *f, const char *fault, struct rk_error *err)
{
    struct secret *k = root_key();
    struct fault_spec spec;
    struct backend *inner = NULL;
    int r;

    f->b = NULL;
    if ((r = backend_open(f->db, &inner, err)) != 0)
        goto out;
    if (fault != NULL) {
        assert_int_equal(fault_spec_parse(fault, &spec, err), 0);
        if ((r = faulty_wrap(inner, &spec, &f->b, err)) != 0)
            goto out;
    } else {
        f->b = inner;
    }
    if ((r = barrier_open(f->b, &f->br, err)) != 0)
        goto out;
    if (!barrier_initialized(f->br))
        r = barrier_init(f->br, k, "{}", err);
    else
        r = barrier_unseal(f->br, k, err);
    if (r == 0)
        r = kv_open(f->br, &f->kv, err);
    if (r == 0)
        r = engine_open(f->kv, f->inv, &f->e, err);
out:
    secret_free(k);
    return r;
}

static void
close_all(struct fx *f)
{
    engine_free(f->e);
    kv_free(f->kv);
    barrier_free(f->br);
    backend_close(f->b);
    f->e = NULL;
    f->kv = NULL;
    f->br = NULL;
    f->b = NULL;
}

static int
rotate(struct fx *f, struct rk_error *err)
{
    struct rotate_opts ro;
    struct rotate_result res;

    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_ROTATE;
    ro.author = "test";
    rk_error_clear(err);
    return engine_rotate(f->e, PATH, &ro, &res, err);
}

static void
remove_dir(const char *dir)
{
    char p[256];
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A fresh store with v1 current (one clean rotation). */
static struct fx *
fresh(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct rk_error err = {0};

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/rekey-test-engine-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/store.db", f->dir);
    snprintf(f->target, sizeof(f->target), "%s/app.env", f->dir);
    load_inventory(f);
    if (open_all(f, NULL, &err) != 0)
        fail_msg("open: %s", err.msg);
    if (rotate(f, &err) != 0)
        fail_msg("first rotation: %s", err.msg);
    return f;
}

static void
destroy(struct fx *f)
{
    close_all(f); /* also what a failed open_all left open (every *_free accepts NULL) */
    inventory_free(f->inv);
    remove_dir(f->dir);
    free(f);
}

/* The invariants after recovery; returns the current version. */
static uint64_t
check_invariants(struct fx *f, uint64_t min_current)
{
    struct rk_error err = {0};
    struct kv_meta *m = NULL;
    struct secret *data = NULL;
    struct kv_version_meta vm;
    char *file = NULL;
    size_t flen = 0;
    int current = 0, pending = 0;

    assert_int_equal(kv_metadata_get(f->kv, PATH, &m, &err), 0);
    for (uint64_t v = m->oldest_version; v <= m->latest_version; v++) {
        const struct kv_version_meta *x = kv_meta_find(m, v);
        assert_non_null(x); /* no version lost */
        current += x->stage == KV_STAGE_CURRENT;
        pending += x->stage == KV_STAGE_PENDING;
    }
    assert_int_equal(current, 1);
    assert_int_equal(pending, 0);
    kv_meta_free(m);
    assert_int_equal(kv_get(f->kv, PATH, 0, &data, &vm, &err), 0);
    assert_true(vm.version >= min_current);
    /* The consumer's file holds the current value. */
    assert_int_equal(fs_read_all(f->target, 4096, &file, &flen, &err), 0);
    assert_non_null(strstr((const char *)data->data, file));
    free(file);
    secret_free(data);
    return vm.version;
}

static void
recover(struct fx *f)
{
    struct rk_error err = {0};
    size_t n = 0;

    if (open_all(f, NULL, &err) != 0)
        fail_msg("reopen: %s", err.msg);
    if (engine_recover(f->e, time(NULL), NULL, NULL, &n, &err) != 0)
        fail_msg("recover: %s", err.msg);
}

/* Fails the Nth store call of kind (txn, get) during a rotation, for every N until a rotation
 * runs through without meeting its fault. The faulted rotation runs in a child process, as a
 * real server would: recovery takes over a lock only from a holder that is gone (rotation.c). */
static void
fault_every_call(const char *kind)
{
    int n, completed = 0;

    for (n = 1; n < 200 && !completed; n++) {
        struct fx *f = fresh();
        struct rk_error err = {0};
        char spec[32];
        uint64_t cur;
        int status = 0;
        pid_t pid;

        close_all(f);
        snprintf(spec, sizeof(spec), "%s:%d", kind, n);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int r = open_all(f, spec, &err);
            if (r == 0)
                r = rotate(f, &err);
            _exit(r == 0 ? 0 : 1); /* no cleanup: the process simply ends, as after a crash */
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        completed = WEXITSTATUS(status) == 0;
        recover(f);
        cur = check_invariants(f, 1);
        assert_true(cur == 1 || cur == 2);
        /* and the next rotation works */
        if (rotate(f, &err) != 0)
            fail_msg("%s: rotation after recovery: %s", spec, err.msg);
        assert_int_equal(check_invariants(f, cur + 1), cur + 1);
        destroy(f);
    }
    assert_true(completed);
    assert_true(n > 3); /* a rotation makes several writes: the loop met faults on the way */
}

static void
test_fault_each_write(void **state)
{
    (void)state;
    fault_every_call("txn");
}

static void
test_fault_each_read(void **state)
{
    (void)state;
    fault_every_call("get");
}

/* A store error in a long-running process (the server's daemon) must not leave the rotation
 * stuck until its lock expires: the same process's next attempt finishes or undoes it. */
static void
test_fault_same_process(void **state)
{
    (void)state;
    for (int n = 1; n < 200; n++) {
        struct fx *f = fresh();
        struct rk_error err = {0};
        char spec[32];
        int r;

        close_all(f);
        snprintf(spec, sizeof(spec), "%s:%d", n % 2 ? "get" : "txn", (n + 1) / 2);
        if (open_all(f, spec, &err) != 0) {
            destroy(f);
            continue;
        }
        r = rotate(f, &err);
        if (r != 0 && rotate(f, &err) != 0) /* the same engine, at once */
            fail_msg("%s: second attempt in the same process: %s", spec, err.msg);
        close_all(f); /* check without the fault, which may still be ahead */
        if (open_all(f, NULL, &err) != 0)
            fail_msg("reopen: %s", err.msg);
        check_invariants(f, 2);
        destroy(f);
        if (r == 0 && n > 40)
            break;
    }
}

struct last_finish {
    char message[200];
    int finishes;
};

static int
on_history(void *arg, const struct rot_event *ev)
{
    struct last_finish *lf = arg;

    if (strcmp(ev->op, "finish") == 0) {
        lf->finishes++;
        snprintf(lf->message, sizeof(lf->message), "%s", ev->message);
    }
    return 0;
}

/* Rotate v1 -> v2 (v1 to be retired after the grace), then roll back to v1 within the grace:
 * the finish that comes due must not retire v1, which is current again. */
static void
test_rollback_within_grace(void **state)
{
    struct fx *f = fresh();
    struct rk_error err = {0};
    struct rotate_opts ro;
    struct rotate_result res;
    struct last_finish lf = {"", 0};
    (void)state;

    assert_int_equal(rotate(f, &err), 0); /* v2 current, v1 previous, finish due in 1h */
    memset(&ro, 0, sizeof(ro));
    ro.op = ROT_OP_ROLLBACK;
    ro.author = "test";
    if (engine_rotate(f->e, PATH, &ro, &res, &err) != 0)
        fail_msg("rollback: %s", err.msg);
    assert_int_equal(check_invariants(f, 1), 1 + 0 * res.new_version);
    if (engine_finish(f->e, PATH, time(NULL) + 7200, 1, &err) != 0)
        fail_msg("finish: %s", err.msg);
    assert_int_equal(engine_history(f->e, PATH, on_history, &lf, &err), 0);
    assert_int_equal(lf.finishes, 1);
    assert_non_null(strstr(lf.message, "current again"));
    assert_int_equal(check_invariants(f, 1), 1);
    destroy(f);
}

/* Two rotations within one grace: the second retires the value the first left to retire (one
 * finish record per path; overwriting it would leave that value live at the target). */
static void
test_rotation_within_grace(void **state)
{
    struct fx *f = fresh(); /* v1 current */
    struct rk_error err = {0};
    struct last_finish lf = {"", 0};
    (void)state;

    assert_int_equal(rotate(f, &err), 0); /* v2 current, v1 waits for the grace */
    assert_int_equal(rotate(f, &err), 0); /* v3 current: v1 is retired now, v2 waits */
    assert_int_equal(engine_history(f->e, PATH, on_history, &lf, &err), 0);
    assert_int_equal(lf.finishes, 1);
    assert_non_null(strstr(lf.message, "retired the previous value"));
    assert_int_equal(check_invariants(f, 3), 3);
    destroy(f);
}

/* A child rotates with REKEY_CRASH_AT=point and is killed there; the parent recovers. */
static void
test_crash_points(void **state)
{
    static const char *const points[] = {"create", "apply", "test", "promote", "reload", "finish"};
    (void)state;

    if (!test_switches_built())
        skip(); /* a plain build ignores REKEY_CRASH_AT */
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        struct fx *f = fresh();
        int status = 0;
        pid_t pid;

        close_all(f);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            struct rk_error err = {0};
            setenv("REKEY_CRASH_AT", points[i], 1);
            if (open_all(f, NULL, &err) != 0)
                _exit(3);
            (void)rotate(f, &err);
            _exit(0); /* the point was not met on this path */
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) ? WTERMSIG(status) == SIGKILL : WEXITSTATUS(status) == 0);
        recover(f);
        {
            uint64_t cur = check_invariants(f, 1);
            struct rk_error err = {0};
            if (rotate(f, &err) != 0)
                fail_msg("crash at %s: rotation after recovery: %s", points[i], err.msg);
            check_invariants(f, cur + 1);
        }
        destroy(f);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_each_write),      cmocka_unit_test(test_fault_each_read),
        cmocka_unit_test(test_fault_same_process),    cmocka_unit_test(test_rollback_within_grace),
        cmocka_unit_test(test_rotation_within_grace), cmocka_unit_test(test_crash_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
