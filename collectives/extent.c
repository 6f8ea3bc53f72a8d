/*
 * collectives/extent.c - the bytes each buffer of a collective spans, checked against the allocations hcrt
 * made (runtime/alloc_table.c) before any communication.
 *
 * A device pointer passed as host memory, or a count beyond the end of an hcrt allocation, would be
 * dereferenced or overrun by the algorithms; the allocation table knows better, and the call returns
 * HCRT_ERR_INVALID_ARG on the rank that made the mistake, naming the argument and the owning device or the
 * allocation's size. Buffers hcrt did not allocate are the caller's business and pass.
 */
#include "collectives/coll.h"

/* Elements from the buffer's start to the end of the furthest block of a v-operation. */
static size_t v_extent(const size_t *counts, const size_t *displs, int n)
{
    size_t end = 0;
    for (int i = 0; counts != NULL && displs != NULL && i < n; i++)
        if (counts[i] > 0 && displs[i] + counts[i] > end)
            end = displs[i] + counts[i];
    return end;
}

hcrt_status_t hcrt__check_extents(struct hcrt_comm *c, const char *func, const hcrt__args_t *a)
{
    size_t n = (size_t)c->size, send = 0, recv = 0;
    switch (a->coll) {
    case HCRT__COLL_ALLREDUCE:
    case HCRT__COLL_REDUCE:
    case HCRT__COLL_BROADCAST:
        send = recv = a->count;
        break;
    case HCRT__COLL_ALLGATHER:
    case HCRT__COLL_GATHER:
        send = a->count;
        recv = a->count * n;
        break;
    case HCRT__COLL_REDUCE_SCATTER:
        /* In place the full input sits in recv. */
        send = a->count * n;
        recv = a->send == a->recv ? a->count * n : a->count;
        break;
    case HCRT__COLL_SCATTER:
        send = a->count * n;
        recv = a->count;
        break;
    case HCRT__COLL_ALLTOALL:
        send = recv = a->count * n;
        break;
    case HCRT__COLL_ALLGATHERV:
        send = a->counts != NULL ? a->counts[c->rank] : 0;
        recv = v_extent(a->counts, a->displs, c->size);
        break;
    case HCRT__COLL_ALLTOALLV:
        send = v_extent(a->scounts, a->sdispls, c->size);
        recv = v_extent(a->counts, a->displs, c->size);
        break;
    default:
        return HCRT_OK;
    }
    size_t es = hcrt_dtype_size(a->dtype);
    /* recv first: in place (HCRT_IN_PLACE resolved to send == recv by now) the caller named only recv.
     * A communicator is used by one thread at a time, so its lookups may keep their last answers. */
    if (a->recv != NULL)
        HCRT_CHECK(
            hcrt__mem_check_cached(c->ctx, &c->extent_cache[0], func, "recv", a->recv, recv * es, a->device, false));
    if (a->send != NULL && a->send != HCRT_IN_PLACE && a->send != a->recv)
        HCRT_CHECK(
            hcrt__mem_check_cached(c->ctx, &c->extent_cache[1], func, "send", a->send, send * es, a->device, false));
    return HCRT_OK;
}
