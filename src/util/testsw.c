/* testsw.c: see testsw.h. REKEY_TEST_SWITCHES is defined by meson.build for -Dtest_switches=true.
 */
#include "util/testsw.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

const char *
test_switch(const char *name)
{
#ifdef REKEY_TEST_SWITCHES
    return getenv(name);
#else
    (void)name;
    return NULL;
#endif
}

void
test_crash_at(const char *name)
{
    const char *at = test_switch("REKEY_CRASH_AT");

    if (at != NULL && strcmp(at, name) == 0) {
        log_warn("REKEY_CRASH_AT=%s: killing the process (fault injection)", name);
        raise(SIGKILL);
    }
}

int
test_switches_built(void)
{
#ifdef REKEY_TEST_SWITCHES
    return 1;
#else
    return 0;
#endif
}
