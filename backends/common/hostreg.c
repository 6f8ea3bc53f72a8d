/*
 * backends/common/hostreg.c - registry of host ranges for kernels (see hostreg.h).
 *
 * A plain array: a process registers a handful of ranges (one per rank of its node per communicator),
 * and the lookups happen once per kernel call, not per element.
 */
#include <stdint.h>
#include <stdlib.h>

#include "backends/common/hostreg.h"

void hcrt__hostreg_init(hcrt__hostreg_t *r)
{
    pthread_mutex_init(&r->mu, NULL);
    r->ranges = NULL;
    r->n = r->cap = 0;
}

void hcrt__hostreg_fini(hcrt__hostreg_t *r)
{
    free(r->ranges);
    r->ranges = NULL;
    r->n = r->cap = 0;
    pthread_mutex_destroy(&r->mu);
}

hcrt_status_t hcrt__hostreg_add(hcrt__hostreg_t *r, int dev, const void *ptr, size_t bytes)
{
    const char *p = ptr;
    if (bytes == 0 || (uintptr_t)p > UINTPTR_MAX - bytes)
        return HCRT_ERR_INVALID_ARG;
    hcrt_status_t status = HCRT_OK;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        const hcrt__hostreg_range_t *g = &r->ranges[i];
        if (p < g->base + g->bytes && g->base < p + bytes) {
            status = HCRT_ERR_INVALID_ARG;
            goto out;
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        hcrt__hostreg_range_t *nr = realloc(r->ranges, cap * sizeof(*nr));
        if (nr == NULL) {
            status = HCRT_ERR_NO_MEMORY;
            goto out;
        }
        r->ranges = nr;
        r->cap = cap;
    }
    r->ranges[r->n++] = (hcrt__hostreg_range_t){.base = p, .bytes = bytes, .dev = dev};
out:
    pthread_mutex_unlock(&r->mu);
    return status;
}

hcrt_status_t hcrt__hostreg_remove(hcrt__hostreg_t *r, int dev, const void *ptr)
{
    hcrt_status_t status = HCRT_ERR_INVALID_ARG;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        if (r->ranges[i].base == (const char *)ptr && r->ranges[i].dev == dev) {
            r->ranges[i] = r->ranges[--r->n];
            status = HCRT_OK;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return status;
}

bool hcrt__hostreg_contains(hcrt__hostreg_t *r, int dev, const void *ptr, size_t bytes)
{
    const char *p = ptr;
    bool found = false;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n && !found; i++) {
        const hcrt__hostreg_range_t *g = &r->ranges[i];
        found = g->dev == dev && p >= g->base && bytes <= g->bytes && (size_t)(p - g->base) <= g->bytes - bytes;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}
