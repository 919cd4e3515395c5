/* bench/bench_common.h: the clock and key picker the benchmark programs (bench_*.c) share. */
#ifndef REKEY_BENCH_COMMON_H
#define REKEY_BENCH_COMMON_H

#include <stdint.h>
#include <time.h>

/* The monotonic clock in nanoseconds. */
static inline uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The monotonic clock in seconds. */
static inline double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: the next value of the state *s; a benchmark's key picker, not a source of
 * anything secret. */
static inline uint64_t
xs_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

#endif
