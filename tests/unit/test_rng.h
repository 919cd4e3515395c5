/* test_rng.h: the unit tests' deterministic generator (xorshift64*): tests must be reproducible,
 * and rand() is banned. A test that wants its own sequence sets rng_state first. */
#ifndef REKEY_TEST_RNG_H
#define REKEY_TEST_RNG_H

#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

#endif
