/* Unit tests for src/store/etcd.c, the etcd backend ("etcd:URL,…"): the backend.h contract every
 * backend passes (store_contract.h), each test on a fresh 3-member etcd 3.4 cluster on loopback
 * ports (scripts/services start etcd-cluster; a fresh cluster so revisions start from 0), then
 * what is etcd's own: endpoint failover past a dead member, a clear error when no member
 * answers, and bad locations.
 *
 * etcd must be installed (scripts/deps: etcd-server): without it the test fails rather than
 * skips, so CI cannot pass it without running it. REKEY_TEST_ETCD_PORT picks the base port
 * (default from the pid, 20000-32585). */
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
#include <stdatomic.h>
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

/* The pid files of the running cluster's members, for on_alarm. */
static char member_pid_files[3][160];

/* SIGKILLs the members of the running cluster and puts their pids in pids[3] (0: none).
 * Async-signal-safe calls only (on_alarm uses it). */
static void
kill_members(pid_t pids[3])
{
    for (int i = 0; i < 3; i++) {
        char buf[24];
        ssize_t n;
        long pid = 0;
        int fd = member_pid_files[i][0] != '\0' ? open(member_pid_files[i], O_RDONLY) : -1;

        pids[i] = 0;
        if (fd < 0)
            continue;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        for (ssize_t k = 0; k < n && buf[k] >= '0' && buf[k] <= '9'; k++)
            pid = pid * 10 + (buf[k] - '0');
        if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
            pids[i] = (pid_t)pid;
    }
}

/* pid has exited: no such process, or a zombie its new parent has not reaped yet. */
static int
gone(pid_t pid)
{
    char path[64], buf[256], *p;
    FILE *f;

    if (kill(pid, 0) != 0)
        return 1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 1;
    p = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (p == NULL || (p = strrchr(buf, ')')) == NULL)
        return 1;
    return p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* SIGALRM (a test stuck past its alarm): the members are killed before the test dies of the
 * alarm, else they outlive it (they run in a session of their own). */
static void
on_alarm(int sig)
{
    pid_t pids[3];

    kill_members(pids);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int
cluster_start(struct fixture *fx)
{
    char dir[128], port[16];

    cluster_dir(fx, dir, sizeof(dir));
    for (int i = 0; i < 3; i++)
        snprintf(member_pid_files[i], sizeof(member_pid_files[i]), "%s/m%d/etcd.pid", dir, i);
    signal(SIGALRM, on_alarm);
    snprintf(port, sizeof(port), "%d", base_port);
    if (services("start", "etcd-cluster", dir, port) != 0)
        return -1;
    snprintf(fx->loc, sizeof(fx->loc),
             "etcd:http://127.0.0.1:%d,http://127.0.0.1:%d,http://127.0.0.1:%d", base_port,
             base_port + 2, base_port + 4);
    return 0;
}

/* Throws the cluster away: its members are killed (a graceful stop takes seconds, its data is
 * deleted anyway) and its folder removed once they are gone. */
static void
cluster_stop(const struct fixture *fx)
{
    char dir[128];
    pid_t pids[3];

    cluster_dir(fx, dir, sizeof(dir));
    kill_members(pids);
    for (int i = 0; i < 3; i++)
        for (int t = 0; pids[i] > 0 && !gone(pids[i]) && t < 500; t++)
            usleep(10 * 1000);
    services("stop", "etcd-cluster", dir, NULL); /* any the pid files did not name */
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
        cluster_stop(*state); /* cmocka runs no teardown after a failed setup */
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

/* ---- the watched read cache ----------------------------------------------------------------- */

/* fx->loc with its endpoints in the opposite order: a second handle that talks to (and watches)
 * another member than the first. */
static void
reversed_loc(const struct fixture *fx, char *out, size_t n)
{
    (void)fx;
    snprintf(out, n, "etcd:http://127.0.0.1:%d,http://127.0.0.1:%d,http://127.0.0.1:%d",
             base_port + 4, base_port + 2, base_port);
}

/* A put that waits out an etcd election (a killed leader): up to 10 s. */
static void
put_retry(struct backend *b, const char *key, const char *val)
{
    struct rk_error err = {0};
    int r = -RK_EUNAVAILABLE;

    for (int i = 0; i < 100 && r == -RK_EUNAVAILABLE; i++) {
        if ((r = b->ops->put(b, key, val, strlen(val), NULL, &err)) == -RK_EUNAVAILABLE)
            usleep(100 * 1000);
    }
    if (r != 0)
        fail_msg("put %s: %d %s", key, r, err.msg);
}

static int
count_cb(void *arg, const char *key, const unsigned char *val, size_t vlen, int64_t mod_rev)
{
    (void)key, (void)val, (void)vlen, (void)mod_rev;
    (*(int *)arg)++;
    return 0;
}

/* Two handles on one cluster, as two servers: a write acknowledged through one is read through
 * the other at once, round after round (puts, deletes, lists), and the reads come from the
 * cache (else this would prove nothing about it). */
static void
test_cache_no_stale_read(void **state)
{
    struct fixture *fx = *state;
    char loc2[160], key[32], val[32];
    struct backend *b1 = must_open(fx->loc), *b2;
    struct etcd_stats st;
    struct rk_error err = {0};

    int present[7] = {0};

    reversed_loc(fx, loc2, sizeof(loc2));
    b2 = must_open(loc2);
    for (int i = 0; i < 300; i++) {
        struct backend *w = i % 2 ? b1 : b2, *rd = i % 2 ? b2 : b1;
        int n = 0;

        snprintf(key, sizeof(key), "stale/%d", i % 7);
        snprintf(val, sizeof(val), "v%d", i);
        put_ok(w, key, val, NULL);
        present[i % 7] = 1;
        expect(rd, key, val);
        if (i % 5 == 4) {
            int want = 0;

            assert_int_equal(w->ops->del(w, key, NULL, &err), 0);
            present[i % 7] = 0;
            expect(rd, key, NULL);
            for (int k = 0; k < 7; k++)
                want += present[k];
            assert_int_equal(rd->ops->list(rd, "stale/", NULL, 0, 1, count_cb, &n, &err), 0);
            assert_int_equal(n, want);
        }
    }
    etcd_backend_stats(b1, &st);
    assert_true(st.cache_hits > 100);
    etcd_backend_stats(b2, &st);
    assert_true(st.cache_hits > 100);
    assert_int_equal(st.cache_loads, 1);
    backend_close(b2);
    backend_close(b1);
}

struct race {
    struct backend *w, *rd;
    atomic_int acked; /* the highest value a put was acknowledged for */
    atomic_int done;
    atomic_int stale;
};

static void *
race_reader(void *arg)
{
    struct race *rc = arg;

    while (!atomic_load(&rc->done)) {
        int before = atomic_load(&rc->acked), got;
        struct rk_error err = {0};
        unsigned char *v = NULL;
        size_t vl;

        if (rc->rd->ops->get(rc->rd, "race", &v, &vl, NULL, &err) != 0) {
            if (before > 0)
                atomic_fetch_add(&rc->stale, 1);
            continue;
        }
        got = (int)strtol((const char *)v, NULL, 10);
        free(v);
        if (got < before)
            atomic_fetch_add(&rc->stale, 1);
    }
    return NULL;
}

/* Concurrent readers on the second handle never see a value older than one acknowledged before
 * their read began (the shared revision request serves only reads begun before it was sent). */
static void
test_cache_concurrent_readers(void **state)
{
    struct fixture *fx = *state;
    char loc2[160], val[16];
    struct race rc = {0};
    pthread_t th[3];
    struct etcd_stats st;

    reversed_loc(fx, loc2, sizeof(loc2));
    rc.w = must_open(fx->loc);
    rc.rd = must_open(loc2);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_reader, &rc), 0);
    for (int i = 1; i <= 200; i++) {
        snprintf(val, sizeof(val), "%d", i);
        put_ok(rc.w, "race", val, NULL);
        atomic_store(&rc.acked, i);
    }
    atomic_store(&rc.done, 1);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&rc.stale), 0);
    etcd_backend_stats(rc.rd, &st);
    assert_true(st.cache_hits > 50);
    backend_close(rc.rd);
    backend_close(rc.w);
}

/* The member the watch streams from is killed: the watch moves to another member, the cache is
 * loaded again and answers again, and no read is stale meanwhile. */
static void
test_cache_watch_recovers(void **state)
{
    struct fixture *fx = *state;
    char loc2[160], key[32], val[32], pidfile[192], buf[32] = {0};
    struct backend *b1 = must_open(fx->loc), *b2;
    struct etcd_stats st;
    uint64_t hits;
    int fd, member;

    reversed_loc(fx, loc2, sizeof(loc2));
    b2 = must_open(loc2);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "w/%d", i);
        put_ok(b1, key, "before", NULL);
        expect(b2, key, "before");
    }
    etcd_backend_stats(b2, &st);
    assert_true(st.cache_hits > 0);
    assert_int_equal(st.cache_loads, 1);
    member = 2 - (int)st.watch_endpoint; /* b2's endpoints are m2, m1, m0 */
    snprintf(pidfile, sizeof(pidfile), "%s/etcd/m%d/etcd.pid", fx->dir, member);
    fd = open(pidfile, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
    close(fd);
    assert_int_equal(kill((pid_t)strtol(buf, NULL, 10), SIGKILL), 0);

    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "w/%d", i % 20);
        snprintf(val, sizeof(val), "after%d", i);
        put_retry(b1, key, val);
        expect(b2, key, val);
    }
    etcd_backend_stats(b2, &st);
    assert_true(st.cache_loads >= 2);
    assert_int_not_equal(2 - (int)st.watch_endpoint, member);
    hits = st.cache_hits;
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "w/%d", i);
        put_retry(b1, key, "last");
        expect(b2, key, "last");
    }
    etcd_backend_stats(b2, &st);
    assert_true(st.cache_hits >= hits + 15); /* the cache answers again */
    backend_close(b2);
    backend_close(b1);
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
        cmocka_unit_test_setup_teardown(test_cache_no_stale_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_concurrent_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_watch_recovers, setup, teardown),
        cmocka_unit_test(test_bad_location),
    };

    if (access("/usr/bin/etcd", X_OK) != 0) {
        fprintf(stderr, "test_etcdstore: etcd is not installed (scripts/deps: etcd-server)\n");
        return 1;
    }
    /* below the kernel's ephemeral ports (32768 on): a client connection's port cannot take a
     * member's before it binds */
    base_port = p != NULL ? (int)strtol(p, NULL, 10) : 20000 + (int)(getpid() % 630) * 20;
    unsetenv("REKEY_ETCD_USER");
    unused_file_helpers();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
