/*
 * collectives/hier.c - hierarchical allreduce for ranks spread over several nodes.
 *
 * Node step: the node's ranks reduce through shared memory (every node rank gets the node's result, in
 * rank order). Leaders step: the lowest rank of each node allreduces those results with the other
 * leaders over MPI (recursive doubling or ring by size). Node step: each leader broadcasts the final
 * result through shared memory. Only one rank per node puts bytes on the network, and the order of
 * every combination is fixed by the placement, so results are deterministic.
 */
#include "collectives/coll.h"

hcrt_status_t hcrt__hier_allreduce(hcrt__sched_t *s, const void *send, void *recv, size_t count, void *tmp)
{
    struct hcrt_comm *c = s->comm;
    size_t bytes = count * hcrt_dtype_size(s->dtype);
    if (count == 0)
        return HCRT_OK;
    HCRT_CHECK(hcrt__shm_allreduce(s, send, recv, count));
    if (c->leaders != MPI_COMM_NULL && c->node_count > 1) {
        hcrt__group_t g = {.mpi = c->leaders, .rank = c->node_index, .size = c->node_count};
        if (bytes <= HCRT__RD_MAX_BYTES)
            HCRT_CHECK(hcrt__rd_allreduce(s, &g, recv, count, tmp));
        else
            HCRT_CHECK(hcrt__ring_allreduce(s, &g, recv, count, tmp));
    }
    if (c->node_size > 1)
        HCRT_CHECK(hcrt__shm_broadcast(s, recv, bytes, 0));
    return hcrt__sched_round(s);
}
