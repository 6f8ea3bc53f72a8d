/*
 * tests/fault/test_mismatch.c - two ranks make the same allreduce with different counts (rank r reduces
 * (r + 1) Mi floats), a user error that hcrt cannot see without exchanging the call.
 *
 * Without HCRT_CHECK_CALLS the smaller rank may finish with wrong data while the larger one waits for a
 * partner that left: the deadline report finds every rank inside the call ("none seen") and must suggest
 * HCRT_CHECK_CALLS=1. With HCRT_CHECK_CALLS=1 both ranks return HCRT_ERR_MISMATCH naming the count
 * (tests/fault/meson.build checks the output and exit status of both runs).
 */
#include <stdio.h>
#include <stdlib.h>

#include "hcrt/hcrt.h"

int main(void)
{
    hcrt_context_t *ctx = NULL;
    hcrt_comm_t *world = NULL;
    if (hcrt_init(NULL, &ctx) != HCRT_OK || hcrt_comm_world(ctx, &world) != HCRT_OK) {
        fprintf(stderr, "init: %s\n", hcrt_last_error(ctx));
        return 2;
    }
    int rank = 0;
    hcrt_comm_rank(world, &rank);
    size_t n = ((size_t)1 << 20) * (size_t)(rank + 1);
    float *x = calloc(n, sizeof(float));
    hcrt_status_t st =
        x ? hcrt_comm_allreduce(world, HCRT_IN_PLACE, x, n, HCRT_F32, HCRT_OP_SUM, NULL) : HCRT_ERR_NO_MEMORY;
    printf("rank %d: allreduce of %zu floats: %s %s\n", rank, n, hcrt_status_name(st), hcrt_last_error(ctx));
    fflush(stdout);
    free(x);
    /* A rank that failed leaves without the collective destroy: its peers may be stuck in the call. */
    if (st != HCRT_OK)
        return 1;
    hcrt_comm_destroy(world);
    hcrt_finalize(ctx);
    return 0;
}
