/*
 * collectives/tree.c - latency algorithms on point-to-point messages: binomial broadcast and the
 * dissemination barrier. Both are used where the shared-memory path is not (nonblocking calls, ranks on
 * several nodes), and tag their messages with the call's own tag like every schedule.
 */
#include "collectives/coll.h"

/* Binomial tree from root: log2(n) rounds, each rank receives once and then sends to its subtree. */
hcrt_status_t hcrt__tree_broadcast(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t bytes, int root)
{
    int n = g->size, vr = (g->rank - root + n) % n, mask = 1;
    if (n == 1)
        return HCRT_OK;
    while (mask < n) {
        if (vr & mask) {
            HCRT_CHECK(hcrt__sched_recv(s, g->mpi, (vr - mask + root) % n, buf, bytes));
            HCRT_CHECK(hcrt__sched_round(s));
            break;
        }
        mask <<= 1;
    }
    for (mask >>= 1; mask > 0; mask >>= 1)
        if (vr + mask < n)
            HCRT_CHECK(hcrt__sched_send(s, g->mpi, (vr + mask + root) % n, buf, bytes));
    return hcrt__sched_round(s);
}

/* Dissemination barrier: in round k every rank signals rank + 2^k and hears from rank - 2^k. */
hcrt_status_t hcrt__dissem_barrier(hcrt__sched_t *s, const hcrt__group_t *g)
{
    int n = g->size;
    for (int k = 1; k < n; k <<= 1) {
        HCRT_CHECK(hcrt__sched_send(s, g->mpi, (g->rank + k) % n, NULL, 0));
        HCRT_CHECK(hcrt__sched_recv(s, g->mpi, (g->rank - k + n) % n, NULL, 0));
        HCRT_CHECK(hcrt__sched_round(s));
    }
    return HCRT_OK;
}
