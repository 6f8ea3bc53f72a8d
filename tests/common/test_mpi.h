/*
 * tests/common/test_mpi.h - checks of MPI tests that compare result bits across ranks.
 */
#ifndef HCRT_TEST_MPI_H
#define HCRT_TEST_MPI_H

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

#include "test.h"

/* FNV-1a of n bytes: equal bits give equal hashes. */
static inline uint64_t test_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Checks (a failure, not a stop) that every rank of MPI_COMM_WORLD holds the same hash. */
static inline void test_same_everywhere(uint64_t h, const char *what)
{
    int n = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    uint64_t *all = malloc((size_t)n * sizeof(*all));
    if (all == NULL) {
        CHECK_MSG(all != NULL, "%s: out of memory", what);
        return;
    }
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < n; r++)
        CHECK_MSG(all[r] == all[0], "%s: rank %d's result bits differ from rank 0's", what, r);
    free(all);
}

#endif /* HCRT_TEST_MPI_H */
