/*
 * backends/sim/sim_heap.c - a first-fit allocator over one sim device's capacity, and the two mappings
 * that make its pointers opaque.
 *
 * The block array tiles the whole capacity in address order, so allocation is a scan for the first free
 * block that fits, free is a binary search plus merging with the neighbours, and pointer validation is a
 * binary search. Devices hold at most thousands of blocks; simplicity wins over a fancier structure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backends/sim/sim.h"

hcrt_status_t sim_heap_init(sim_heap_t *h, size_t capacity, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    capacity = capacity / SIM_ALIGN * SIM_ALIGN;
    h->capacity = capacity;
    h->mapped = (capacity + page - 1) / page * page;
    /* NORESERVE: a large capacity costs address space only; storage pages appear when first written. */
    h->reserve = mmap(NULL, h->mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (h->reserve == MAP_FAILED) {
        snprintf(err, errlen, "cannot reserve %zu bytes of address space: %s", h->mapped, strerror(errno));
        h->reserve = NULL;
        return HCRT_ERR_NO_MEMORY;
    }
    h->storage = mmap(NULL, h->mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (h->storage == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %zu bytes of storage: %s", h->mapped, strerror(errno));
        munmap(h->reserve, h->mapped);
        h->reserve = h->storage = NULL;
        return HCRT_ERR_NO_MEMORY;
    }
    h->cap = 64;
    h->blocks = malloc(h->cap * sizeof(*h->blocks));
    if (!h->blocks) {
        snprintf(err, errlen, "out of host memory");
        munmap(h->storage, h->mapped);
        munmap(h->reserve, h->mapped);
        h->reserve = h->storage = NULL;
        return HCRT_ERR_NO_MEMORY;
    }
    h->blocks[0] = (sim_block_t){0, capacity, 0, false};
    h->nblocks = 1;
    return HCRT_OK;
}

void sim_heap_fini(sim_heap_t *h)
{
    if (h->storage)
        munmap(h->storage, h->mapped);
    if (h->reserve)
        munmap(h->reserve, h->mapped);
    free(h->blocks);
    memset(h, 0, sizeof(*h));
}

/* Index of the block containing offset `off` (off < capacity). */
static size_t heap_find(const sim_heap_t *h, size_t off)
{
    size_t lo = 0, hi = h->nblocks;
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (h->blocks[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

hcrt_status_t sim_heap_alloc(sim_heap_t *h, size_t bytes, void **ptr)
{
    if (bytes == 0 || bytes > h->capacity)
        return HCRT_ERR_DEVICE_OOM;
    const size_t need = (bytes + SIM_ALIGN - 1) / SIM_ALIGN * SIM_ALIGN;
    for (size_t i = 0; i < h->nblocks; i++) {
        sim_block_t *b = &h->blocks[i];
        if (b->used || b->size < need)
            continue;
        if (b->size > need) {
            /* Split: the tail stays free as a new block right after this one. */
            if (h->nblocks == h->cap) {
                sim_block_t *nb = realloc(h->blocks, 2 * h->cap * sizeof(*nb));
                if (!nb)
                    return HCRT_ERR_NO_MEMORY;
                h->blocks = nb;
                h->cap *= 2;
                b = &h->blocks[i];
            }
            memmove(&h->blocks[i + 2], &h->blocks[i + 1], (h->nblocks - i - 1) * sizeof(*b));
            h->blocks[i + 1] = (sim_block_t){b->off + need, b->size - need, 0, false};
            h->nblocks++;
            b->size = need;
        }
        b->used = true;
        b->req = bytes;
        h->used += b->size;
        *ptr = h->reserve + b->off;
        return HCRT_OK;
    }
    return HCRT_ERR_DEVICE_OOM;
}

void sim_heap_populate(const sim_heap_t *h, const void *ptr, size_t bytes)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t off = (size_t)((const char *)ptr - h->reserve);
    const size_t start = off / page * page;
    const size_t end = (off + bytes + page - 1) / page * page;
#ifdef MADV_POPULATE_WRITE
    if (madvise(h->storage + start, end - start, MADV_POPULATE_WRITE) == 0)
        return;
#endif
    /* Older kernels: write one byte per page, only in pages wholly inside this block (its content is
     * undefined until written; a page shared with a neighbour may be in use by a stream right now). */
    const size_t inner_start = (off + page - 1) / page * page;
    for (size_t p = inner_start; p + page <= off + bytes; p += page)
        ((volatile char *)h->storage)[p] = 0;
}

/* Removes block i+1 after folding it into block i. */
static void heap_merge_next(sim_heap_t *h, size_t i)
{
    h->blocks[i].size += h->blocks[i + 1].size;
    memmove(&h->blocks[i + 1], &h->blocks[i + 2], (h->nblocks - i - 2) * sizeof(h->blocks[0]));
    h->nblocks--;
}

hcrt_status_t sim_heap_free(sim_heap_t *h, void *ptr)
{
    if (!sim_heap_in_range(h, ptr))
        return HCRT_ERR_INVALID_ARG;
    const size_t off = (size_t)((char *)ptr - h->reserve);
    if (off >= h->capacity)
        return HCRT_ERR_INVALID_ARG;
    size_t i = heap_find(h, off);
    sim_block_t *b = &h->blocks[i];
    if (b->off != off || !b->used)
        return HCRT_ERR_INVALID_ARG;
    b->used = false;
    b->req = 0;
    h->used -= b->size;
    if (i + 1 < h->nblocks && !h->blocks[i + 1].used)
        heap_merge_next(h, i);
    if (i > 0 && !h->blocks[i - 1].used)
        heap_merge_next(h, i - 1);
    return HCRT_OK;
}

bool sim_heap_in_range(const sim_heap_t *h, const void *ptr)
{
    const char *p = ptr;
    return h->reserve && p >= h->reserve && p < h->reserve + h->mapped;
}

void *sim_heap_translate(const sim_heap_t *h, const void *ptr, size_t bytes)
{
    if (!sim_heap_in_range(h, ptr))
        return NULL;
    const size_t off = (size_t)((const char *)ptr - h->reserve);
    if (off >= h->capacity)
        return NULL;
    const sim_block_t *b = &h->blocks[heap_find(h, off)];
    if (!b->used || off - b->off >= b->req || bytes > b->req - (off - b->off))
        return NULL;
    return h->storage + off;
}
