/* testsw.c: see testsw.h. REKEY_TEST_SWITCHES is defined by meson.build for -Dtest_switches=true.
 */
#include "util/testsw.h"

#include <stdlib.h>

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

int
test_switches_built(void)
{
#ifdef REKEY_TEST_SWITCHES
    return 1;
#else
    return 0;
#endif
}
