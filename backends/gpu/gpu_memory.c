/*
 * backends/gpu/gpu_memory.c - device and pinned host memory, memset and copies of the cuda and hip
 * plugins (built once per vendor, see gpu_plugin.h).
 *
 * Every allocation is remembered in a small hash table: finalize() must free what the runtime left
 * behind, and a free of a pointer we never handed out is answered as an argument error instead of
 * being passed to the vendor (where it could hit memory somebody else in the process owns).
 */
#include <stdlib.h>
#include <string.h>

#include "gpu_plugin.h"

static size_t gpu_bucket(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr >> 8; /* allocations are at least 256-byte aligned */
    return (size_t)((p ^ (p >> 13)) % GPU_ALLOC_BUCKETS);
}

static hcrt_status_t gpu_track(gpu_state_t *st, void *ptr, int dev)
{
    gpu_alloc_t *a = malloc(sizeof *a);
    if (!a) {
        hcrt_gpu_set_error("%s: out of host memory", GPU_BACKEND);
        return HCRT_ERR_NO_MEMORY;
    }
    a->ptr = ptr;
    a->dev = dev;
    pthread_mutex_lock(&st->lock);
    size_t b = gpu_bucket(ptr);
    a->next = st->allocs[b];
    st->allocs[b] = a;
    pthread_mutex_unlock(&st->lock);
    return HCRT_OK;
}

/* Removes ptr from the table; false when it is not there (or belongs to another device). */
static bool gpu_untrack(gpu_state_t *st, void *ptr, int dev)
{
    bool found = false;
    pthread_mutex_lock(&st->lock);
    for (gpu_alloc_t **link = &st->allocs[gpu_bucket(ptr)]; *link; link = &(*link)->next) {
        if ((*link)->ptr == ptr && (*link)->dev == dev) {
            gpu_alloc_t *a = *link;
            *link = a->next;
            free(a);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    return found;
}

void hcrt_gpu_release_allocs(gpu_state_t *st)
{
    /* Host memory the runtime left registered belongs to the caller and outlives us: unpin it. */
    for (size_t i = 0; i < st->hostreg.n; i++)
        if (gpuHostUnregister((void *)st->hostreg.ranges[i].base) != gpuSuccess)
            (void)gpuGetLastError();
    for (size_t b = 0; b < GPU_ALLOC_BUCKETS; b++) {
        gpu_alloc_t *a = st->allocs[b];
        while (a) {
            gpu_alloc_t *next = a->next;
            gpuError_t e;
            if (a->dev >= 0) {
                e = gpuSetDevice(a->dev);
                if (e == gpuSuccess)
                    e = gpuFree(a->ptr);
            } else {
                e = gpuFreeHost(a->ptr);
            }
            if (e != gpuSuccess) /* a lost device cannot free: nothing more to do at teardown */
                (void)gpuGetLastError();
            free(a);
            a = next;
        }
        st->allocs[b] = NULL;
    }
}

hcrt_status_t hcrt_gpu_mem_alloc(void *state, int dev, size_t bytes, void **ptr)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    void *p = NULL;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("mem_alloc: argument 'state' is NULL");
    if (!ptr)
        return hcrt_gpu_arg_error("mem_alloc: argument 'ptr' is NULL");
    if (bytes == 0)
        return hcrt_gpu_arg_error("mem_alloc: argument 'bytes' is 0");
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    if ((e = gpuMalloc(&p, bytes)) != gpuSuccess) {
        status = hcrt_gpu_fail(st, dev, e, GPU_BACKEND "Malloc");
        if (status == HCRT_ERR_DEVICE_OOM)
            hcrt_gpu_set_error("%s device %d: out of device memory allocating %zu bytes (%s)", GPU_BACKEND, dev, bytes,
                               gpuGetErrorName(e));
        return status;
    }
    if ((status = gpu_track(st, p, dev)) != HCRT_OK) {
        (void)gpuFree(p);
        return status;
    }
    *ptr = p;
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_mem_free(void *state, int dev, void *ptr)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("mem_free: argument 'state' is NULL");
    if (!ptr)
        return HCRT_OK;
    if (dev < 0 || dev >= st->ndev)
        return hcrt_gpu_arg_error("mem_free: device %d out of range (%d device(s))", dev, st->ndev);
    if (!gpu_untrack(st, ptr, dev))
        return hcrt_gpu_arg_error("mem_free: argument 'ptr' (%p) was not allocated on device %d", ptr, dev);
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    if ((e = gpuFree(ptr)) != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "Free");
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_host_alloc(void *state, size_t bytes, void **ptr)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    void *p = NULL;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("host_alloc: argument 'state' is NULL");
    if (!ptr)
        return hcrt_gpu_arg_error("host_alloc: argument 'ptr' is NULL");
    if (bytes == 0)
        return hcrt_gpu_arg_error("host_alloc: argument 'bytes' is 0");
    /* Portable: pinned for every device of the backend, not only the current one. */
    if ((e = gpuHostAllocPortable(&p, bytes)) != gpuSuccess) {
        status = hcrt_gpu_fail(st, -1, e, GPU_BACKEND "HostAlloc");
        return status == HCRT_ERR_DEVICE_OOM ? HCRT_ERR_NO_MEMORY : status;
    }
    if ((status = gpu_track(st, p, -1)) != HCRT_OK) {
        (void)gpuFreeHost(p);
        return status;
    }
    *ptr = p;
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_host_free(void *state, void *ptr)
{
    gpu_state_t *st = state;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("host_free: argument 'state' is NULL");
    if (!ptr)
        return HCRT_OK;
    if (!gpu_untrack(st, ptr, -1))
        return hcrt_gpu_arg_error("host_free: argument 'ptr' (%p) was not allocated by host_alloc", ptr);
    if ((e = gpuFreeHost(ptr)) != gpuSuccess)
        return hcrt_gpu_fail(st, -1, e, GPU_BACKEND "FreeHost");
    return HCRT_OK;
}

/*
 * A vendor's refusal to register is HCRT_ERR_BACKEND, so the runtime stages through copies instead;
 * only what the ABI names otherwise keeps its own status: an argument error (device memory, for which
 * the vendors answer "invalid value") and a lost device.
 */
static hcrt_status_t gpu_register_refused(gpu_state_t *st, int dev, gpuError_t e, const char *call)
{
    hcrt_status_t status = hcrt_gpu_fail(st, dev, e, call);
    return status == HCRT_ERR_INVALID_ARG || status == HCRT_ERR_DEVICE_LOST ? status : HCRT_ERR_BACKEND;
}

/*
 * Pins [ptr, ptr+bytes) and maps it for the kernels of every device (portable), then asks for the address
 * device `dev` uses for it: with unified addressing that is ptr itself, but the ABI leaves it to the
 * vendor. The range is recorded first, so two threads cannot both register overlapping ranges.
 */
hcrt_status_t hcrt_gpu_host_register(void *state, int dev, void *ptr, size_t bytes, void **dev_ptr)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    void *d = NULL;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("host_register: argument 'state' is NULL");
    if (!ptr)
        return hcrt_gpu_arg_error("host_register: argument 'ptr' is NULL");
    if (!dev_ptr)
        return hcrt_gpu_arg_error("host_register: argument 'dev_ptr' is NULL");
    if (bytes == 0)
        return hcrt_gpu_arg_error("host_register: argument 'bytes' is 0");
    if ((uintptr_t)ptr > UINTPTR_MAX - bytes)
        return hcrt_gpu_arg_error("host_register: argument 'bytes' (%zu) runs past the end of the address space",
                                  bytes);
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    status = hcrt__hostreg_add(&st->hostreg, dev, ptr, bytes);
    if (status == HCRT_ERR_NO_MEMORY) {
        hcrt_gpu_set_error("%s: out of host memory", GPU_BACKEND);
        return status;
    }
    if (status != HCRT_OK)
        return hcrt_gpu_arg_error("host_register: [%p, +%zu) overlaps a range already registered with this plugin", ptr,
                                  bytes);
    if ((e = gpuHostRegisterMapped(ptr, bytes)) != gpuSuccess) {
        status = gpu_register_refused(st, dev, e, GPU_BACKEND "HostRegister");
        goto err_record;
    }
    if ((e = gpuHostGetDevicePointer(&d, ptr)) != gpuSuccess) {
        status = gpu_register_refused(st, dev, e, GPU_BACKEND "HostGetDevicePointer");
        goto err_register;
    }
    *dev_ptr = d;
    return HCRT_OK;

err_register:
    if (gpuHostUnregister(ptr) != gpuSuccess)
        (void)gpuGetLastError(); /* last_error() keeps the reason the registration failed */
err_record:
    (void)hcrt__hostreg_remove(&st->hostreg, dev, ptr);
    return status;
}

/* Like mem_free, the record goes first: a range is ours to unregister once, whatever the vendor says. */
hcrt_status_t hcrt_gpu_host_unregister(void *state, int dev, void *ptr)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("host_unregister: argument 'state' is NULL");
    if (!ptr)
        return hcrt_gpu_arg_error("host_unregister: argument 'ptr' is NULL");
    if (dev < 0 || dev >= st->ndev)
        return hcrt_gpu_arg_error("host_unregister: device %d out of range (%d device(s))", dev, st->ndev);
    if (hcrt__hostreg_remove(&st->hostreg, dev, ptr) != HCRT_OK)
        return hcrt_gpu_arg_error("host_unregister: argument 'ptr' (%p) does not start a range registered on device %d",
                                  ptr, dev);
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    if ((e = gpuHostUnregister(ptr)) != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "HostUnregister");
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_memset(void *state, int dev, void *ptr, int value, size_t bytes, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuStream_t s;
    bool sync;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("memset: argument 'state' is NULL");
    if (bytes == 0)
        return HCRT_OK;
    if (!ptr)
        return hcrt_gpu_arg_error("memset: argument 'ptr' is NULL");
    if ((status = hcrt_gpu_stream_of(dev, stream, "memset", &s, &sync)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    if ((e = gpuMemsetAsync(ptr, value & 0xff, bytes, s)) != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "MemsetAsync");
    return hcrt_gpu_finish(st, dev, s, sync);
}

hcrt_status_t hcrt_gpu_memcpy(void *state, int dev, void *dst, const void *src, size_t bytes, hcrt_copy_kind_t kind,
                              hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuMemcpyKind vk;
    gpuStream_t s;
    bool sync;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("memcpy: argument 'state' is NULL");
    switch (kind) {
    case HCRT_COPY_H2D:
        vk = gpuMemcpyHostToDevice;
        break;
    case HCRT_COPY_D2H:
        vk = gpuMemcpyDeviceToHost;
        break;
    case HCRT_COPY_D2D:
        vk = gpuMemcpyDeviceToDevice;
        break;
    default:
        return hcrt_gpu_arg_error("memcpy: argument 'kind' (%d) is not a copy kind", (int)kind);
    }
    if (bytes == 0)
        return HCRT_OK;
    if (!dst || !src)
        return hcrt_gpu_arg_error("memcpy: argument '%s' is NULL", dst ? "src" : "dst");
    if ((status = hcrt_gpu_stream_of(dev, stream, "memcpy", &s, &sync)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    if ((e = gpuMemcpyAsync(dst, src, bytes, vk, s)) != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "MemcpyAsync");
    return hcrt_gpu_finish(st, dev, s, sync);
}

/*
 * Turns on direct access from dst_dev to src_dev's memory once, when the hardware allows it, so peer
 * copies go over NVLink/PCIe instead of through host memory. Without it the copy still works (the
 * runtime stages it), so a refusal is only logged.
 */
static void gpu_enable_peer(gpu_state_t *st, int dst_dev, int src_dev)
{
    gpu_device_t *d = &st->devs[dst_dev];
    pthread_mutex_lock(&d->lock);
    bool done = d->peer_enabled[src_dev] != 0;
    d->peer_enabled[src_dev] = 1;
    pthread_mutex_unlock(&d->lock);
    if (done)
        return;
    int can = 0;
    if (gpuDeviceCanAccessPeer(&can, dst_dev, src_dev) != gpuSuccess || !can) {
        (void)gpuGetLastError();
        return;
    }
    gpuError_t e = gpuDeviceEnablePeerAccess(src_dev, 0); /* dst_dev is current */
    if (e != gpuSuccess && e != gpuErrorPeerAccessAlreadyEnabled)
        hcrt_gpu_log(st, HCRT_LOG_DEBUG, "%s device %d: peer access to device %d refused: %s", GPU_BACKEND, dst_dev,
                     src_dev, gpuGetErrorString(e));
    (void)gpuGetLastError();
}

hcrt_status_t hcrt_gpu_memcpy_peer(void *state, int dst_dev, void *dst, int src_dev, const void *src, size_t bytes,
                                   hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuStream_t s;
    bool sync;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("memcpy_peer: argument 'state' is NULL");
    if (src_dev < 0 || src_dev >= st->ndev)
        return hcrt_gpu_arg_error("memcpy_peer: argument 'src_dev' (%d) out of range (%d device(s))", src_dev,
                                  st->ndev);
    if (bytes == 0)
        return HCRT_OK;
    if (!dst || !src)
        return hcrt_gpu_arg_error("memcpy_peer: argument '%s' is NULL", dst ? "src" : "dst");
    if ((status = hcrt_gpu_stream_of(dst_dev, stream, "memcpy_peer", &s, &sync)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, src_dev)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, dst_dev)) != HCRT_OK)
        return status;
    if (dst_dev != src_dev)
        gpu_enable_peer(st, dst_dev, src_dev);
    if ((e = gpuMemcpyPeerAsync(dst, dst_dev, src, src_dev, bytes, s)) != gpuSuccess)
        return hcrt_gpu_fail(st, dst_dev, e, GPU_BACKEND "MemcpyPeerAsync");
    return hcrt_gpu_finish(st, dst_dev, s, sync);
}
