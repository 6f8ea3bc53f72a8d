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
#include <time.h>

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

/* The stream and event that copy tensors of `dev` into the pool (created on first use, kept), or NULL
 * when all slots are taken by other devices (such tensors are copied synchronously). */
static int snap_slot(hcrt_ckpt_t *ck, hcrt_device_t *dev)
{
    int n = (int)(sizeof(ck->snap) / sizeof(ck->snap[0]));
    for (int i = 0; i < n; i++)
        if (ck->snap[i].dev == dev)
            return i;
    for (int i = 0; i < n; i++) {
        if (ck->snap[i].dev != NULL)
            continue;
        if (hcrt_stream_create(dev, &ck->snap[i].stream) != HCRT_OK)
            return -1;
        if (hcrt_event_create(dev, &ck->snap[i].event) != HCRT_OK) {
            hcrt_stream_destroy(ck->snap[i].stream);
            ck->snap[i].stream = NULL;
            return -1;
        }
        ck->snap[i].dev = dev;
        return i;
    }
    return -1;
}

void hcrt__ckpt_snapshot_free(hcrt_ckpt_t *ck)
{
    for (size_t i = 0; i < sizeof(ck->snap) / sizeof(ck->snap[0]); i++) {
        hcrt_event_destroy(ck->snap[i].event);
        hcrt_stream_destroy(ck->snap[i].stream);
        memset(&ck->snap[i], 0, sizeof(ck->snap[i]));
    }
}

/* Waits for the queued device->host copies under HCRT_TIMEOUT, polling each device's health: a lost or
 * hung device fails the save instead of blocking it. */
static hcrt_status_t wait_copies(hcrt_ckpt_t *ck, int64_t step, const bool *used)
{
    double start = hcrt__now(), next_health = start + 0.25;
    long nap = 5000;
    for (size_t i = 0; i < sizeof(ck->snap) / sizeof(ck->snap[0]); i++) {
        bool done = false;
        while (used[i]) {
            hcrt_status_t st = hcrt_event_query(ck->snap[i].event, &done);
            if (st != HCRT_OK)
                return st;
            if (done) /* the sync returns at once, with the error of a copy that failed */
                HCRT_CHECK(hcrt_event_sync(ck->snap[i].event));
            if (done)
                break;
            double now = hcrt__now();
            if (now > next_health) {
                HCRT_CHECK(hcrt__device_poll(ck->snap[i].dev));
                next_health = now + 0.25;
            }
            if (ck->timeout > 0 && now - start > ck->timeout)
                return hcrt__error(ck->ctx, HCRT_ERR_TIMEOUT, "the copies from %s device %d did not complete within "
                                   "HCRT_TIMEOUT=%g s (step %lld)", ck->snap[i].dev->be->name, ck->snap[i].dev->index,
                                   ck->timeout, (long long)step);
            struct timespec ts = {0, nap};
            nanosleep(&ts, NULL);
            nap = nap < 1000000 ? nap * 2 : 1000000;
        }
    }
    return HCRT_OK;
}

/* HCRT_FAULT in the snapshot phase, once the first tensor's copy is on its way: kill leaves the
 * snapshot half taken (nothing is on disk for this step yet); error fails it as a failed copy would;
 * device_lost loses the tensor's device. */
static hcrt_status_t snapshot_fault(hcrt_ckpt_t *ck, int64_t step, const hcrt__ckpt_entry_t *e)
{
    hcrt_device_t *dev = e ? e->buf.device : ck->ctx->selected;
    hcrt_status_t st = hcrt__fault_site(ck->ctx, "ckpt", "snapshot", step, dev, NULL, 0, HCRT_ERR_BACKEND);
    if (st != HCRT_OK && e != NULL)
        return hcrt__error(ck->ctx, st, "copying tensor '%s' (%llu bytes) from %s device %d to the snapshot failed: %s",
                           e->name, (unsigned long long)e->bytes, dev->be->name, dev->index, hcrt_last_error(ck->ctx));
    return st;
}

hcrt_status_t hcrt__ckpt_snapshot(hcrt_ckpt_t *ck, int64_t step)
{
    bool first = true, used[sizeof(ck->snap) / sizeof(ck->snap[0])] = {false};
    hcrt_status_t st = HCRT_OK;
    ck->pool_step = -1;
    for (int i = 0; i < ck->nentries && st == HCRT_OK; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (!e->written || e->bytes == 0)
            continue;
        hcrt_device_t *dev = e->buf.device;
        int slot = hcrt__device_is_host(dev) ? -1 : snap_slot(ck, dev);
        if (slot >= 0) {
            st = hcrt_memcpy_async(ck->host, ck->pool + e->pool_offset, dev, e->buf.ptr, e->bytes, ck->snap[slot].stream);
            if (st == HCRT_OK)
                st = hcrt_event_record(ck->snap[slot].event, ck->snap[slot].stream);
            used[slot] |= st == HCRT_OK;
        } else {
            st = hcrt_memcpy(ck->host, ck->pool + e->pool_offset, dev, e->buf.ptr, e->bytes);
        }
        if (st != HCRT_OK)
            st = hcrt__error(ck->ctx, st, "copying tensor '%s' (%llu bytes) from %s device %d to the snapshot failed: "
                             "%s", e->name, (unsigned long long)e->bytes, dev->be->name, dev->index,
                             hcrt_last_error(ck->ctx));
        if (st == HCRT_OK && first)
            st = snapshot_fault(ck, step, e);
        first = false;
    }
    if (st == HCRT_OK && first)
        st = snapshot_fault(ck, step, NULL);
    /* Even after a failure: nothing may still be copying into the pool when the caller goes on. */
    hcrt_status_t wst = wait_copies(ck, step, used);
    if (st == HCRT_OK && wst != HCRT_OK)
        st = hcrt__error(ck->ctx, wst, "the snapshot's device copies failed: %s", hcrt_last_error(ck->ctx));
    if (st != HCRT_OK)
        return st;
    ck->pool_step = step;
    return HCRT_OK;
}
