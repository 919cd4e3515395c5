#include <stdio.h>

int
main(void)
{
    puts("rekey " REKEY_VERSION);
    return 0;
}
