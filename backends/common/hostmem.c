/*
 * backends/common/hostmem.c - mmap-backed host blocks kept in an address-sorted array.
 *
 * A sorted array answers both "is this the start of a block" (free) and "which block holds this
 * address" (contains) with one binary search; live blocks number in the hundreds at most, so the
 * memmove of an insertion costs nothing next to the mmap it accompanies.
 */
#include "backends/common/hostmem.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct hm_block {
    uintptr_t addr;
    size_t size;   /* bytes asked for */
    size_t mapped; /* bytes mapped (rounded up to pages) */
} hm_block_t;

struct hcrt__hostmem {
    pthread_mutex_t mu;
    hm_block_t *blocks;
    size_t n, cap;
    size_t used;
};

hcrt_status_t hcrt__hostmem_create(hcrt__hostmem_t **out)
{
    hcrt__hostmem_t *hm = calloc(1, sizeof(*hm));
    if (!hm)
        return HCRT_ERR_NO_MEMORY;
    pthread_mutex_init(&hm->mu, NULL);
    *out = hm;
    return HCRT_OK;
}

void hcrt__hostmem_destroy(hcrt__hostmem_t *hm)
{
    if (!hm)
        return;
    for (size_t i = 0; i < hm->n; i++)
        munmap((void *)hm->blocks[i].addr, hm->blocks[i].mapped);
    free(hm->blocks);
    pthread_mutex_destroy(&hm->mu);
    free(hm);
}

/* Index of the first block whose address is > addr (caller holds mu). */
static size_t hm_upper(const hcrt__hostmem_t *hm, uintptr_t addr)
{
    size_t lo = 0, hi = hm->n;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (hm->blocks[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

hcrt_status_t hcrt__hostmem_alloc(hcrt__hostmem_t *hm, size_t bytes, void **ptr)
{
    if (!hm || !ptr || bytes == 0)
        return HCRT_ERR_INVALID_ARG;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (bytes > SIZE_MAX - page)
        return HCRT_ERR_NO_MEMORY;
    const size_t mapped = (bytes + page - 1) / page * page;
    void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        return HCRT_ERR_NO_MEMORY;

    pthread_mutex_lock(&hm->mu);
    if (hm->n == hm->cap) {
        const size_t cap = hm->cap ? hm->cap * 2 : 64;
        hm_block_t *nb = realloc(hm->blocks, cap * sizeof(*nb));
        if (!nb) {
            pthread_mutex_unlock(&hm->mu);
            munmap(p, mapped);
            return HCRT_ERR_NO_MEMORY;
        }
        hm->blocks = nb;
        hm->cap = cap;
    }
    const size_t i = hm_upper(hm, (uintptr_t)p);
    memmove(&hm->blocks[i + 1], &hm->blocks[i], (hm->n - i) * sizeof(hm->blocks[0]));
    hm->blocks[i] = (hm_block_t){(uintptr_t)p, bytes, mapped};
    hm->n++;
    hm->used += bytes;
    pthread_mutex_unlock(&hm->mu);
    *ptr = p;
    return HCRT_OK;
}

hcrt_status_t hcrt__hostmem_free(hcrt__hostmem_t *hm, void *ptr)
{
    if (!hm)
        return HCRT_ERR_INVALID_ARG;
    if (!ptr)
        return HCRT_OK;
    pthread_mutex_lock(&hm->mu);
    const size_t up = hm_upper(hm, (uintptr_t)ptr);
    if (up == 0 || hm->blocks[up - 1].addr != (uintptr_t)ptr) {
        pthread_mutex_unlock(&hm->mu);
        return HCRT_ERR_INVALID_ARG;
    }
    const hm_block_t b = hm->blocks[up - 1];
    memmove(&hm->blocks[up - 1], &hm->blocks[up], (hm->n - up) * sizeof(hm->blocks[0]));
    hm->n--;
    hm->used -= b.size;
    pthread_mutex_unlock(&hm->mu);
    munmap((void *)b.addr, b.mapped);
    return HCRT_OK;
}

bool hcrt__hostmem_contains(hcrt__hostmem_t *hm, const void *ptr, size_t bytes)
{
    const uintptr_t a = (uintptr_t)ptr;
    pthread_mutex_lock(&hm->mu);
    const size_t up = hm_upper(hm, a);
    bool ok = false;
    if (up > 0) {
        const hm_block_t *b = &hm->blocks[up - 1];
        ok = a - b->addr <= b->size && bytes <= b->size - (a - b->addr);
    }
    pthread_mutex_unlock(&hm->mu);
    return ok;
}

size_t hcrt__hostmem_used(hcrt__hostmem_t *hm)
{
    pthread_mutex_lock(&hm->mu);
    const size_t used = hm->used;
    pthread_mutex_unlock(&hm->mu);
    return used;
}
