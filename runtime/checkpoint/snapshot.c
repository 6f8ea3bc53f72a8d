/*
 * runtime/checkpoint/snapshot.c - the host snapshot pool and the device->host copies of a save.
 *
 * The pool is allocated once (again only when the registered state grows) and touched page by page at
 * allocation: first touch of fresh memory costs many times a copy of the same page (docs/performance.md,
 * "Memory"), so a pool allocated per save would make the stall many times the copy it exists to be.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime/checkpoint/ckpt_internal.h"
#include "runtime/fault/fault.h"

static uint64_t align_up(uint64_t v) { return (v + HCRT__CKPT_ALIGN - 1) & ~(HCRT__CKPT_ALIGN - 1); }

hcrt_status_t hcrt__ckpt_host_alloc(hcrt_ckpt_t *ck, hcrt_device_t *dev, size_t bytes, unsigned char **out)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = HCRT__CKPT_ALIGN;
    if (dev != NULL) {
        hcrt_status_t st = hcrt_mem_alloc_host(dev, bytes, &p);
        if (st != HCRT_OK)
            return st;
        memset(p, 0, bytes);
    } else {
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED)
            return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "checkpoint: cannot map a %zu-byte snapshot pool",
                               bytes);
    }
    *out = p;
    return HCRT_OK;
}

void hcrt__ckpt_host_free(hcrt_device_t *dev, unsigned char *p, size_t bytes)
{
    if (p == NULL)
        return;
    if (dev != NULL)
        hcrt_mem_free_host(dev, p);
    else
        munmap(p, bytes ? bytes : HCRT__CKPT_ALIGN);
}

/* The accelerator all non-host tensors live on, when it is a single one: its pinned memory makes the
 * device->host copies fastest. NULL when every tensor is on the host or they are spread out. */
static hcrt_device_t *pool_device(const hcrt_ckpt_t *ck)
{
    hcrt_device_t *dev = NULL;
    for (int i = 0; i < ck->nentries; i++) {
        hcrt_device_t *d = ck->entries[i].buf.device;
        if (hcrt__device_is_host(d))
            continue;
        if (dev != NULL && dev != d)
            return NULL;
        dev = d;
    }
    return dev;
}

hcrt_status_t hcrt__ckpt_layout(hcrt_ckpt_t *ck)
{
    uint64_t off = 0;
    if (!ck->layout_dirty && ck->pool != NULL)
        return HCRT_OK;
    for (int i = 0; i < ck->nentries; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (!e->written)
            continue;
        off = align_up(off);
        e->pool_offset = off;
        off += e->bytes;
    }
    ck->file_bytes = off;
    off = align_up(off);
    for (int i = 0; i < ck->nentries; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (e->written)
            continue;
        e->pool_offset = off;
        off = align_up(off + e->bytes);
    }
    ck->pool_bytes = align_up(off);
    if (ck->pool == NULL || ck->pool_cap < ck->pool_bytes) {
        hcrt_device_t *dev = pool_device(ck);
        unsigned char *pool;
        double t0 = hcrt__now();
        hcrt_status_t st = hcrt__ckpt_host_alloc(ck, dev, ck->pool_bytes, &pool);
        if (st != HCRT_OK)
            return st;
        hcrt__ckpt_host_free(ck->pool_dev, ck->pool, ck->pool_cap);
        ck->pool = pool;
        ck->pool_cap = ck->pool_bytes ? ck->pool_bytes : HCRT__CKPT_ALIGN;
        ck->pool_dev = dev;
        HCRT_INFO(CKPT_SUBSYS, "snapshot pool of %llu bytes (%s) ready in %.3f s",
                  (unsigned long long)ck->pool_bytes, dev ? "pinned" : "mapped", hcrt__now() - t0);
    }
    for (int i = 0; i < ck->nentries; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        uint64_t n = (e->bytes + HCRT__CKPT_CHUNK - 1) / HCRT__CKPT_CHUNK;
        uint64_t *sums = realloc(e->sums, (n ? n : 1) * sizeof(uint64_t));
        if (sums == NULL)
            return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "checkpoint: out of memory");
        e->sums = sums;
        e->nchunks = n;
    }
    ck->layout_dirty = false;
    ck->pool_step = -1;
    return HCRT_OK;
}

hcrt_status_t hcrt__ckpt_snapshot(hcrt_ckpt_t *ck, int64_t step)
{
    bool first = true;
    ck->pool_step = -1;
    for (int i = 0; i < ck->nentries; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (!e->written || e->bytes == 0)
            continue;
        hcrt_status_t st = hcrt_memcpy(ck->host, ck->pool + e->pool_offset, e->buf.device, e->buf.ptr, e->bytes);
        if (st != HCRT_OK)
            return hcrt__error(ck->ctx, st, "hcrt_ckpt_save: step %lld: copying tensor '%s' (%llu bytes) from "
                               "%s device to the snapshot failed: %s", (long long)step, e->name,
                               (unsigned long long)e->bytes, hcrt_device_backend(e->buf.device),
                               hcrt_last_error(ck->ctx));
        if (first) {
            /* A kill here leaves the snapshot half taken: nothing is on disk for this step yet. */
            hcrt__fault_hit(ck->ctx, "ckpt", "snapshot", step);
            first = false;
        }
    }
    if (first)
        hcrt__fault_hit(ck->ctx, "ckpt", "snapshot", step);
    ck->pool_step = step;
    return HCRT_OK;
}
