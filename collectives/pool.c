/*
 * collectives/pool.c - persistent scratch and staging buffers of a communicator.
 *
 * First touch of fresh memory costs a page fault per page, more than the collective itself for large
 * buffers (docs/performance.md, "Memory"). So buffers are allocated once, touched once, and handed out
 * again to later calls: a call takes the smallest free block that is large enough and
 * returns it when done. Nonblocking operations hold theirs until they complete, so several outstanding
 * operations never share one. A block of an operation that failed is never handed out again
 * (collectives/failure.c).
 */
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"

hcrt_status_t hcrt__pool_get(struct hcrt_comm *comm, hcrt_device_t *device, size_t bytes, hcrt__block_t **out)
{
    hcrt__block_t *best = NULL;
    if (bytes == 0)
        bytes = 1;
    for (hcrt__block_t *b = comm->pool; b != NULL; b = b->next)
        if (!b->in_use && !b->quarantined && b->device == device && b->size >= bytes && (best == NULL || b->size < best->size))
            best = b;
    if (best == NULL) {
        hcrt__block_t *b = calloc(1, sizeof(*b));
        if (b == NULL)
            return hcrt__error(comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for a scratch block");
        /* Round up so that slightly larger later calls reuse the block. */
        size_t size = 4096;
        while (size < bytes)
            size *= 2;
        hcrt_status_t status;
        if (device == NULL) {
            b->ptr = aligned_alloc(64, size);
            status = b->ptr ? HCRT_OK : HCRT_ERR_NO_MEMORY;
            if (status != HCRT_OK)
                hcrt__error(comm->ctx, status, "collectives: cannot allocate %zu bytes of scratch", size);
        } else {
            status = hcrt_mem_alloc_host(device, size, &b->ptr);
        }
        if (status != HCRT_OK) {
            free(b);
            return status;
        }
        memset(b->ptr, 0, size); /* pre-touch, once */
        b->size = size;
        b->device = device;
        b->next = comm->pool;
        comm->pool = b;
        best = b;
    }
    best->in_use = true;
    *out = best;
    return HCRT_OK;
}

void hcrt__pool_put(hcrt__block_t *b)
{
    if (b != NULL)
        b->in_use = false;
}

void hcrt__pool_quarantine(hcrt__block_t *b)
{
    if (b != NULL)
        b->quarantined = true;
}

void hcrt__pool_free_all(struct hcrt_comm *comm)
{
    /* Memory a failed operation used is freed only when MPI has let go of all its requests; otherwise it
     * is left allocated for good (a leak bounded by one failure per communicator). */
    bool settled = hcrt__comm_graveyard_settled(comm);
    hcrt__block_t *b = comm->pool;
    while (b != NULL) {
        hcrt__block_t *next = b->next;
        if (b->quarantined && !settled)
            HCRT_DEBUG(COLL_SUBSYS, "collectives: leaving %zu bytes of a failed operation allocated (MPI may still "
                       "write them)", b->size);
        else if (b->device == NULL)
            free(b->ptr);
        else
            hcrt_mem_free_host(b->device, b->ptr);
        free(b);
        b = next;
    }
    comm->pool = NULL;
}
