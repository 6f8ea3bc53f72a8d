/*
 * backends/common/hostmem.h - page-aligned, pre-touched host allocations with a registry.
 *
 * Used by the cpu backend (its device memory and pinned host memory) and by the sim backend (pinned host
 * memory). Memory comes straight from mmap with MAP_POPULATE, so the pages are faulted in at allocation
 * (first touch costs a page fault per 4 KiB page, docs/performance.md "Memory"; a collective must never
 * pay that).
 * The registry remembers every live block, so free() of a pointer that did not come from here is a clean
 * HCRT_ERR_INVALID_ARG instead of heap corruption, and finalize can release what the user leaked.
 *
 * Thread-safe.
 */
#ifndef HCRT_BACKENDS_HOSTMEM_H
#define HCRT_BACKENDS_HOSTMEM_H

#include <stdbool.h>
#include <stddef.h>

#include "hcrt/status.h"

typedef struct hcrt__hostmem hcrt__hostmem_t;

hcrt_status_t hcrt__hostmem_create(hcrt__hostmem_t **hm);

/* Unmaps every live block and frees the registry. NULL is a no-op. */
void hcrt__hostmem_destroy(hcrt__hostmem_t *hm);

/* bytes > 0; HCRT_ERR_NO_MEMORY when the kernel refuses. */
hcrt_status_t hcrt__hostmem_alloc(hcrt__hostmem_t *hm, size_t bytes, void **ptr);

/* HCRT_ERR_INVALID_ARG when ptr is not the start of a live block of hm. */
hcrt_status_t hcrt__hostmem_free(hcrt__hostmem_t *hm, void *ptr);

/* Whether [ptr, ptr+bytes) lies inside one live block. */
bool hcrt__hostmem_contains(hcrt__hostmem_t *hm, const void *ptr, size_t bytes);

/* Bytes currently allocated. */
size_t hcrt__hostmem_used(hcrt__hostmem_t *hm);

#endif /* HCRT_BACKENDS_HOSTMEM_H */
