/* Unit tests for src/store/etcd.c, the etcd backend ("etcd:URL,…"): the backend.h contract every
 * backend passes (store_contract.h), each test on a fresh 3-member etcd 3.4 cluster on loopback
 * ports (scripts/services start etcd-cluster; a fresh cluster so revisions start from 0), then
 * what is etcd's own: endpoint failover past a dead member, a clear error when no member
 * answers, and bad locations.
 *
 * etcd must be installed (scripts/deps: etcd-server): without it the test fails rather than
 * skips, so CI cannot pass it without running it. REKEY_TEST_ETCD_PORT picks the base port
 * (default from the pid). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/backend.h"
#include "store/etcd.h"
#include "util/err.h"

#include "store_test.h"
#include "store_contract.h"

#ifndef REKEY_SOURCE_ROOT
#error "REKEY_SOURCE_ROOT must name the source tree (tests/unit/meson.build)"
#endif

extern char **environ;

static int base_port;

/* Runs scripts/services with args; returns its exit status (or -1). */
static int
services(const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[] = {REKEY_SOURCE_ROOT "/scripts/services",
                    (char *)a1,
                    (char *)a2,
                    (char *)a3,
                    (char *)a4,
                    NULL};
    pid_t pid;
    int st;

    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
cluster_dir(const struct fixture *fx, char *out, size_t n)
{
    snprintf(out, n, "%s/etcd", fx->dir);
}

static int
cluster_start(struct fixture *fx)
{
    char dir[128], port[16];

    cluster_dir(fx, dir, sizeof(dir));
    snprintf(port, sizeof(port), "%d", base_port);
    if (services("start", "etcd-cluster", dir, port) != 0)
        return -1;
    snprintf(fx->loc, sizeof(fx->loc),
             "etcd:http://127.0.0.1:%d,http://127.0.0.1:%d,http://127.0.0.1:%d", base_port,
             base_port + 2, base_port + 4);
    return 0;
}

static void
cluster_stop(const struct fixture *fx)
{
    char dir[128];

    cluster_dir(fx, dir, sizeof(dir));
    services("stop", "etcd-cluster", dir, NULL);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Starts the store over: a fresh cluster (etcd's revisions cannot be reset). */
static void
etcd_reset(const struct fixture *fx)
{
    cluster_stop(fx);
    if (cluster_start((struct fixture *)fx) != 0)
        fail_msg("could not restart the etcd cluster");
}

static void
etcd_stats(struct backend *b, struct contract_stats *cs)
{
    (void)b, (void)cs; /* etcd batches its own commits; keys are not counted here */
}

static const struct contract_backend etcd_contract = {
    .name = "etcd",
    .stats = etcd_stats,
    .open_fsync_fault = NULL,
    .keys_only_vlen = 0,
    .list_snapshot = 0,
    .not_a_file = 1,
    .reset = etcd_reset,
    .noop_delete_no_rev = 1,
};

static int
setup(void **state)
{
    if (fixture_new(state, "etcd", "unused", "etcd", &etcd_contract) != 0)
        return -1;
    alarm(120);
    if (cluster_start(*state) != 0) {
        fprintf(stderr, "could not start an etcd cluster on ports %d-%d\n", base_port,
                base_port + 5);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    alarm(0);
    cluster_stop(*state);
    return fixture_free(state);
}

/* ---- etcd's own ----------------------------------------------------------------------------- */

/* A dead member: requests go on through the others, nothing acknowledged is lost. */
static void
test_failover(void **state)
{
    struct fixture *fx = *state;
    struct backend *b = must_open(fx->loc);
    char pidfile[192], buf[32] = {0}, key[32];
    struct etcd_stats st;
    int fd;
    int64_t rev = 0;

    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "before/%02d", i);
        put_ok(b, key, "v", &rev);
    }
    /* kill -9 the first member, the one the backend talks to */
    snprintf(pidfile, sizeof(pidfile), "%s/etcd/m0/etcd.pid", fx->dir);
    fd = open(pidfile, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
    close(fd);
    assert_int_equal(kill((pid_t)strtol(buf, NULL, 10), SIGKILL), 0);
    usleep(200 * 1000);

    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "after/%02d", i);
        put_ok(b, key, "w", &rev);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "before/%02d", i);
        expect(b, key, "v");
        snprintf(key, sizeof(key), "after/%02d", i);
        expect(b, key, "w");
    }
    etcd_backend_stats(b, &st);
    assert_true(st.failovers >= 1);
    backend_close(b);
}

/* No member answers: a clear error, -RK_EUNAVAILABLE (a 503 from the server), for reads and
 * writes; nothing is written. */
static void
test_unreachable(void **state)
{
    struct fixture *fx = *state;
    struct backend *b;
    struct rk_error err = {0};
    unsigned char *v = NULL;
    size_t vl;
    char loc[160];

    (void)fx;
    /* ports nothing listens on (the fixture's cluster is further up) */
    snprintf(loc, sizeof(loc), "etcd:http://127.0.0.1:%d,http://127.0.0.1:%d", base_port + 10,
             base_port + 12);
    b = must_open(loc);
    assert_int_equal(b->ops->get(b, "k", &v, &vl, NULL, &err), -RK_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "unreachable"));
    memset(&err, 0, sizeof(err));
    assert_int_equal(b->ops->put(b, "k", "v", 1, NULL, &err), -RK_EUNAVAILABLE);
    assert_non_null(strstr(err.msg, "etcd"));
    backend_close(b);
}

static void
test_bad_location(void **state)
{
    struct backend *b = NULL;
    struct rk_error err = {0};

    (void)state;
    assert_int_equal(backend_open("etcd:", &b, &err), -RK_EINVAL);
    assert_int_equal(backend_open("etcd:ftp://x", &b, &err), -RK_EINVAL);
    assert_int_equal(backend_open("etcd:http://a:1,,http://b:2", &b, &err), -RK_EINVAL);
    memset(&err, 0, sizeof(err));
    assert_int_equal(backend_open("etcd:http://root:hunter2@127.0.0.1:1", &b, &err), -RK_EINVAL);
    assert_null(strstr(err.msg, "hunter2")); /* never echoed */
    assert_null(b);
    /* a user without a password */
    setenv("REKEY_ETCD_USER", "root", 1);
    unsetenv("REKEY_ETCD_PASSWORD");
    unsetenv("REKEY_ETCD_PASSWORD_FILE");
    assert_int_equal(backend_open("etcd:http://127.0.0.1:1", &b, &err), -RK_ECONFIG);
    unsetenv("REKEY_ETCD_USER");
}

/* store_test.h's file helpers are for file backends. */
static void
unused_file_helpers(void)
{
    (void)write_file;
}

int
main(void)
{
    const char *p = getenv("REKEY_TEST_ETCD_PORT");
    const struct CMUnitTest tests[] = {
        STORE_CONTRACT_TESTS(setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test(test_bad_location),
    };

    if (access("/usr/bin/etcd", X_OK) != 0) {
        fprintf(stderr, "test_etcdstore: etcd is not installed (scripts/deps: etcd-server)\n");
        return 1;
    }
    base_port = p != NULL ? (int)strtol(p, NULL, 10) : 31000 + (int)(getpid() % 1000) * 20;
    unsetenv("REKEY_ETCD_USER");
    unused_file_helpers();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
