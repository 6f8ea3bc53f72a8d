/*
 * tests/common/test_mpi.h - helpers of MPI tests: allocation, and checks that compare result bits across ranks.
 */
#ifndef HCRT_TEST_MPI_H
#define HCRT_TEST_MPI_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

/* malloc that ends the test when memory runs out (a test has nothing to unwind). */
static inline void *test_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

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
