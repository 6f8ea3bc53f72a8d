/*
 * tests/plugin/mock_cudart.c - a host-memory stand-in for the part of the CUDA runtime the cuda plugin
 * uses, so the plugin's own logic can be tested on a machine without a GPU.
 *
 * The test suite builds a second copy of the cuda plugin (same sources: backends/gpu/gpu_*.c and
 * cuda_table.c) with this file linked in instead of libcudart, and runs the shared op-conformance test
 * (test_backend_ops cuda) and the device-property checks (test_gpu_nodevice, LOADED branch) against it
 * through the real loader. That covers what the GPU-less machine cannot otherwise reach: device
 * discovery and properties (PCI id lower-casing, speed, caps), allocation tracking, OOM mapping, the
 * stream and event bookkeeping, the synchronous/asynchronous paths, argument checks and error texts.
 *
 * One fault can be provoked: allocating exactly MOCK_FAULT_BYTES on a device makes that device fail
 * like a GPU after an illegal memory access (cudaErrorIllegalAddress, sticky: every later call that
 * touches the device returns it), so the plugin's lost-device handling can be checked.
 *
 * The "device" is two devices of 64 MiB of host memory each; every call completes synchronously; the
 * kernels are the host kernels (the GPU kernels' arithmetic is compared with them bit for bit by
 * test_gpu_kernel_math). cudaHostRegister keeps exact byte ranges, as the driver does: a range that
 * overlaps a registered or cudaHostAlloc'ed one is "already registered", device memory is an invalid
 * value, and the device address of registered memory is its host address (unified addressing). Errors behave as in
 * CUDA: a failing call returns its code and leaves it for cudaGetLastError(), per thread.
 */
#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/host_kernels.h"

#define MOCK_DEVICES  2
#define MOCK_CAPACITY (64u << 20)

#define MOCK_FAULT_BYTES 0xDEADu

static _Thread_local int mock_current;
static cudaError_t mock_sticky[MOCK_DEVICES]; /* the sticky error of a "crashed" device */
static _Thread_local cudaError_t mock_last;
static size_t mock_used[MOCK_DEVICES];
static pthread_mutex_t mock_lock = PTHREAD_MUTEX_INITIALIZER; /* guards mock_used and mock_allocs */

/* Live allocations, to answer cudaFree of a pointer that was never allocated as CUDA does. */
#define MOCK_MAX_ALLOCS 4096
static struct {
    void *ptr;
    size_t bytes;
    int dev; /* -1: pinned host */
} mock_allocs[MOCK_MAX_ALLOCS];

/* Host ranges registered with cudaHostRegister (guarded by mock_lock). */
#define MOCK_MAX_REGS 256
static struct {
    const char *ptr;
    size_t bytes;
} mock_regs[MOCK_MAX_REGS];

struct CUevent_st {
    double t;
    int recorded;
};
struct CUstream_st {
    int dev;
};

static cudaError_t mock_ret(cudaError_t e)
{
    if (e != cudaSuccess)
        mock_last = e;
    return e;
}

/* The current device's sticky error, if it has one (returned, and left for cudaGetLastError). */
#define MOCK_STICKY_CHECK()                                                                                            \
    do {                                                                                                               \
        cudaError_t sticky_ = __atomic_load_n(&mock_sticky[mock_current], __ATOMIC_RELAXED);                           \
        if (sticky_ != cudaSuccess)                                                                                    \
            return mock_ret(sticky_);                                                                                  \
    } while (0)

static double mock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Records an allocation, charging a device's capacity (dev >= 0); -1 when full. */
static int mock_track(void *p, size_t bytes, int dev)
{
    int rc = -1;
    pthread_mutex_lock(&mock_lock);
    if (dev >= 0 && bytes > MOCK_CAPACITY - mock_used[dev]) {
        pthread_mutex_unlock(&mock_lock);
        return -1;
    }
    for (int i = 0; i < MOCK_MAX_ALLOCS; i++)
        if (!mock_allocs[i].ptr) {
            mock_allocs[i].ptr = p;
            mock_allocs[i].bytes = bytes;
            mock_allocs[i].dev = dev;
            if (dev >= 0)
                mock_used[dev] += bytes;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&mock_lock);
    return rc;
}

static int mock_untrack(void *p, int host)
{
    int rc = -1;
    pthread_mutex_lock(&mock_lock);
    for (int i = 0; i < MOCK_MAX_ALLOCS; i++)
        if (mock_allocs[i].ptr == p && (mock_allocs[i].dev < 0) == host) {
            if (mock_allocs[i].dev >= 0)
                mock_used[mock_allocs[i].dev] -= mock_allocs[i].bytes;
            mock_allocs[i].ptr = NULL;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&mock_lock);
    return rc;
}

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = MOCK_DEVICES;
    return cudaSuccess;
}

/* Devices whose primary context exists: since CUDA 12, cudaSetDevice() creates it. */
static int mock_context[MOCK_DEVICES];

cudaError_t cudaSetDevice(int device)
{
    if (device < 0 || device >= MOCK_DEVICES)
        return mock_ret(cudaErrorInvalidDevice);
    mock_current = device;
    __atomic_store_n(&mock_context[device], 1, __ATOMIC_RELAXED);
    return cudaSuccess;
}

/* The two driver functions the plugin looks up (CUresult is 0 for success, CUdevice an int). */
static int mock_cu_device_get(int *device, int ordinal)
{
    if (ordinal < 0 || ordinal >= MOCK_DEVICES)
        return 101; /* CUDA_ERROR_INVALID_DEVICE */
    *device = ordinal;
    return 0;
}

static int mock_cu_primary_state(int device, unsigned int *flags, int *active)
{
    *flags = 0;
    *active = __atomic_load_n(&mock_context[device], __ATOMIC_RELAXED);
    return 0;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **fn, unsigned int version,
                                             unsigned long long flags, enum cudaDriverEntryPointQueryResult *status)
{
    (void)version;
    (void)flags;
    *fn = NULL;
    if (strcmp(symbol, "cuDeviceGet") == 0)
        *fn = (void *)mock_cu_device_get;
    else if (strcmp(symbol, "cuDevicePrimaryCtxGetState") == 0)
        *fn = (void *)mock_cu_primary_state;
    if (status)
        *status = *fn ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
    return cudaSuccess;
}

const char *cudaGetErrorName(cudaError_t error)
{
    switch (error) {
    case cudaSuccess:
        return "cudaSuccess";
    case cudaErrorInvalidValue:
        return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
        return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice:
        return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
        return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
        return "cudaErrorNotReady";
    case cudaErrorIllegalAddress:
        return "cudaErrorIllegalAddress";
    case cudaErrorHostMemoryAlreadyRegistered:
        return "cudaErrorHostMemoryAlreadyRegistered";
    case cudaErrorHostMemoryNotRegistered:
        return "cudaErrorHostMemoryNotRegistered";
    default:
        return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
        return "invalid resource handle";
    case cudaErrorNotReady:
        return "device not ready";
    case cudaErrorIllegalAddress:
        return "an illegal memory access was encountered";
    case cudaErrorHostMemoryAlreadyRegistered:
        return "part or all of the requested memory range is already mapped";
    case cudaErrorHostMemoryNotRegistered:
        return "pointer does not correspond to a registered memory region";
    default:
        return "unknown error";
    }
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = mock_last;
    mock_last = cudaSuccess;
    return e;
}

cudaError_t cudaDriverGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device < 0 || device >= MOCK_DEVICES)
        return mock_ret(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    strcpy(prop->name, "hcrt mock A100");
    prop->totalGlobalMem = MOCK_CAPACITY;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    if (device < 0 || device >= MOCK_DEVICES)
        return mock_ret(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrMultiProcessorCount:
        *value = 108;
        break;
    case cudaDevAttrClockRate:
        *value = 1410000;
        break;
    case cudaDevAttrEccEnabled:
        *value = 1;
        break;
    case cudaDevAttrComputeCapabilityMajor:
        *value = 8;
        break;
    case cudaDevAttrComputeCapabilityMinor:
        *value = 0;
        break;
    case cudaDevAttrHostNumaId:
        return mock_ret(cudaErrorInvalidValue); /* an older driver: unknown */
    default:
        return mock_ret(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceGetPCIBusId(char *id, int len, int device)
{
    if (device < 0 || device >= MOCK_DEVICES || len < 13)
        return mock_ret(cudaErrorInvalidValue);
    strcpy(id, device == 0 ? "0000:3B:00.0" : "0000:AF:00.0"); /* CUDA answers in upper case */
    return cudaSuccess;
}

cudaError_t cudaDeviceCanAccessPeer(int *can, int device, int peer)
{
    *can = device != peer;
    return cudaSuccess;
}

cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags)
{
    (void)flags;
    return peer >= 0 && peer < MOCK_DEVICES ? cudaSuccess : mock_ret(cudaErrorInvalidDevice);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total)
{
    MOCK_STICKY_CHECK();
    *total = MOCK_CAPACITY;
    pthread_mutex_lock(&mock_lock);
    *free_bytes = MOCK_CAPACITY - mock_used[mock_current];
    pthread_mutex_unlock(&mock_lock);
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    MOCK_STICKY_CHECK();
    if (size == MOCK_FAULT_BYTES) {
        __atomic_store_n(&mock_sticky[mock_current], cudaErrorIllegalAddress, __ATOMIC_RELAXED);
        return mock_ret(cudaErrorIllegalAddress);
    }
    if (size > MOCK_CAPACITY)
        return mock_ret(cudaErrorMemoryAllocation);
    void *p = aligned_alloc(256, (size + 255) & ~(size_t)255);
    if (!p || mock_track(p, size, mock_current) != 0) {
        free(p);
        return mock_ret(cudaErrorMemoryAllocation);
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    if (ptr && mock_untrack(ptr, 0) != 0)
        return mock_ret(cudaErrorInvalidValue);
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags)
{
    (void)flags;
    void *p = malloc(size);
    if (!p || mock_track(p, size, -1) != 0) {
        free(p);
        return mock_ret(cudaErrorMemoryAllocation);
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr)
{
    if (ptr && mock_untrack(ptr, 1) != 0)
        return mock_ret(cudaErrorInvalidValue);
    free(ptr);
    return cudaSuccess;
}

static int mock_overlaps(const char *p, size_t n, const void *q, size_t m)
{
    const char *c = q;
    return p < c + m && c < p + n;
}

cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags)
{
    MOCK_STICKY_CHECK();
    const unsigned int known =
        cudaHostRegisterPortable | cudaHostRegisterMapped | cudaHostRegisterIoMemory | cudaHostRegisterReadOnly;
    if (!ptr || size == 0 || (flags & ~known) != 0)
        return mock_ret(cudaErrorInvalidValue);
    cudaError_t e = cudaErrorMemoryAllocation; /* the table is full (a driver out of pinnable memory) */
    pthread_mutex_lock(&mock_lock);
    for (int i = 0; i < MOCK_MAX_ALLOCS; i++)
        if (mock_allocs[i].ptr && mock_overlaps(ptr, size, mock_allocs[i].ptr, mock_allocs[i].bytes)) {
            e = mock_allocs[i].dev >= 0 ? cudaErrorInvalidValue : cudaErrorHostMemoryAlreadyRegistered;
            goto out;
        }
    for (int i = 0; i < MOCK_MAX_REGS; i++)
        if (mock_regs[i].ptr && mock_overlaps(ptr, size, mock_regs[i].ptr, mock_regs[i].bytes)) {
            e = cudaErrorHostMemoryAlreadyRegistered;
            goto out;
        }
    for (int i = 0; i < MOCK_MAX_REGS; i++)
        if (!mock_regs[i].ptr) {
            mock_regs[i].ptr = ptr;
            mock_regs[i].bytes = size;
            e = cudaSuccess;
            break;
        }
out:
    pthread_mutex_unlock(&mock_lock);
    return e == cudaSuccess ? e : mock_ret(e);
}

cudaError_t cudaHostUnregister(void *ptr)
{
    cudaError_t e = cudaErrorHostMemoryNotRegistered;
    pthread_mutex_lock(&mock_lock);
    for (int i = 0; i < MOCK_MAX_REGS; i++)
        if (ptr && mock_regs[i].ptr == ptr) {
            mock_regs[i].ptr = NULL;
            e = cudaSuccess;
            break;
        }
    pthread_mutex_unlock(&mock_lock);
    return e == cudaSuccess ? e : mock_ret(e);
}

/* Registered or cudaHostAlloc'ed memory maps to itself; anything else is not mapped for the device. */
cudaError_t cudaHostGetDevicePointer(void **pDevice, void *pHost, unsigned int flags)
{
    MOCK_STICKY_CHECK();
    if (!pDevice || !pHost || flags != 0)
        return mock_ret(cudaErrorInvalidValue);
    int found = 0;
    pthread_mutex_lock(&mock_lock);
    for (int i = 0; i < MOCK_MAX_REGS && !found; i++)
        found = mock_regs[i].ptr && mock_overlaps(pHost, 1, mock_regs[i].ptr, mock_regs[i].bytes);
    for (int i = 0; i < MOCK_MAX_ALLOCS && !found; i++)
        found = mock_allocs[i].ptr && mock_allocs[i].dev < 0 &&
                mock_overlaps(pHost, 1, mock_allocs[i].ptr, mock_allocs[i].bytes);
    pthread_mutex_unlock(&mock_lock);
    if (!found)
        return mock_ret(cudaErrorInvalidValue);
    *pDevice = pHost;
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream)
{
    MOCK_STICKY_CHECK();
    (void)stream;
    memset(ptr, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream)
{
    MOCK_STICKY_CHECK();
    (void)kind;
    (void)stream;
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaMemcpyPeerAsync(void *dst, int dst_dev, const void *src, int src_dev, size_t count, cudaStream_t stream)
{
    (void)stream;
    if (dst_dev < 0 || dst_dev >= MOCK_DEVICES || src_dev < 0 || src_dev >= MOCK_DEVICES)
        return mock_ret(cudaErrorInvalidDevice);
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    (void)flags;
    struct CUstream_st *s = malloc(sizeof *s);
    if (!s)
        return mock_ret(cudaErrorMemoryAllocation);
    s->dev = mock_current;
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    if (stream == NULL || stream == cudaStreamPerThread)
        return mock_ret(cudaErrorInvalidResourceHandle);
    free(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    MOCK_STICKY_CHECK();
    (void)stream;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    struct CUevent_st *e = calloc(1, sizeof *e);
    if (!e)
        return mock_ret(cudaErrorMemoryAllocation);
    *event = e;
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    free(event);
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    (void)stream;
    event->t = mock_now();
    event->recorded = 1;
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    (void)event;
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event)
{
    (void)event;
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!start->recorded || !end->recorded)
        return mock_ret(cudaErrorInvalidResourceHandle);
    *ms = (float)(end->t - start->t);
    return cudaSuccess;
}

/* The kernel launchers of gpu_kernels.cuh, run on the host with the host kernels. */
int hcrt_cuda_launch_reduce(void *dst, const void *src, size_t count, int dtype, int op, void *stream, int max_blocks)
{
    (void)stream;
    (void)max_blocks;
    return hcrt__host_reduce(dst, src, count, (hcrt_dtype_t)dtype, (hcrt_op_t)op) == HCRT_OK
               ? cudaSuccess
               : mock_ret(cudaErrorInvalidValue);
}

int hcrt_cuda_launch_reduce3(void *dst, const void *a, const void *b, size_t count, int dtype, int op, void *stream,
                             int max_blocks)
{
    (void)stream;
    (void)max_blocks;
    return hcrt__host_reduce3(dst, a, b, count, (hcrt_dtype_t)dtype, (hcrt_op_t)op) == HCRT_OK
               ? cudaSuccess
               : mock_ret(cudaErrorInvalidValue);
}

int hcrt_cuda_launch_scale(void *ptr, size_t count, int dtype, double factor, void *stream, int max_blocks)
{
    (void)stream;
    (void)max_blocks;
    return hcrt__host_scale(ptr, count, (hcrt_dtype_t)dtype, factor) == HCRT_OK ? cudaSuccess
                                                                                : mock_ret(cudaErrorInvalidValue);
}
