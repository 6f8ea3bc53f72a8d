/*
 * tests/common/rng.h - a small seeded random generator for tests (xorshift64*): the same sequence on every
 * machine and run, so a failing case can be replayed.
 */
#ifndef HCRT_TEST_RNG_H
#define HCRT_TEST_RNG_H

#include <stdint.h>

/* The next value of the sequence kept in *state (any nonzero seed). */
static inline uint64_t test_rng_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

#endif /* HCRT_TEST_RNG_H */
