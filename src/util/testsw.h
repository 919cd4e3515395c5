/* testsw.h: the test switches. Four environment variables let the tests reach states a real run
 * only reaches by bad luck: REKEY_NOW (a fake clock, epoch seconds), REKEY_CRASH_AT (kill the
 * process right after a rotation step's commit), REKEY_FAULT (fail the Nth store call or
 * fsync) and REKEY_AUDIT_FAULT (fail the audit log's Nth write or fsync and every later one,
 * audit/sink.c). They exist only in a build configured with `-Dtest_switches=true` (`make test`
 * does); in any other build test_switch() answers NULL whatever the environment holds, so a
 * product binary cannot be steered by them. */
#ifndef REKEY_TESTSW_H
#define REKEY_TESTSW_H

/* The value of the test switch name (an environment variable) in a test build, NULL when unset
 * or in a plain build. Borrowed from the environment. */
const char *test_switch(const char *name);

/* REKEY_CRASH_AT=name (a test build only): kills the process with SIGKILL here, after a log
 * line, to prove that what was committed before this point is recovered. A no-op otherwise. */
void test_crash_at(const char *name);

/* 1 in a build with the test switches, else 0. */
int test_switches_built(void);

#endif
