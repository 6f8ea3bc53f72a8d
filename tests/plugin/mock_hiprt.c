/*
 * tests/plugin/mock_hiprt.c - a host-memory stand-in for the part of the HIP runtime the hip plugin uses,
 * the HIP twin of mock_cudart.c (see there): the hip plugin's sources linked against it run the shared
 * op-conformance test and the device checks through the real loader on a machine without a GPU, which
 * covers the HIP side of the vendor map (backends/hip/gpu_vendor_hip.h). Like HIP 5.2, the mock's
 * hipGetErrorString() returns just the error's name, so the plugin's own descriptions are exercised.
 * Allocating exactly MOCK_FAULT_BYTES makes a device fail with hipErrorIllegalAddress from then on.
 * hipHostRegister keeps exact byte ranges like mock_cudart.c's cudaHostRegister, with HIP's codes.
 */
#include <hip/hip_runtime_api.h>
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
static hipError_t mock_sticky[MOCK_DEVICES]; /* the sticky error of a "crashed" device */
static _Thread_local hipError_t mock_last;
static size_t mock_used[MOCK_DEVICES];
static pthread_mutex_t mock_lock = PTHREAD_MUTEX_INITIALIZER; /* guards mock_used and mock_allocs */

/* Live allocations, to answer hipFree of a pointer that was never allocated as HIP does. */
#define MOCK_MAX_ALLOCS 4096
static struct {
    void *ptr;
    size_t bytes;
    int dev; /* -1: pinned host */
} mock_allocs[MOCK_MAX_ALLOCS];

/* Host ranges registered with hipHostRegister (guarded by mock_lock). */
#define MOCK_MAX_REGS 256
static struct {
    const char *ptr;
    size_t bytes;
} mock_regs[MOCK_MAX_REGS];

struct ihipEvent_t {
    double t;
    int recorded;
};
struct ihipStream_t {
    int dev;
};

static hipError_t mock_ret(hipError_t e)
{
    if (e != hipSuccess)
        mock_last = e;
    return e;
}

/* The current device's sticky error, if it has one (returned, and left for hipGetLastError). */
#define MOCK_STICKY_CHECK()                                                                                            \
    do {                                                                                                               \
        hipError_t sticky_ = __atomic_load_n(&mock_sticky[mock_current], __ATOMIC_RELAXED);                            \
        if (sticky_ != hipSuccess)                                                                                     \
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

hipError_t hipGetDeviceCount(int *count)
{
    *count = MOCK_DEVICES;
    return hipSuccess;
}

hipError_t hipSetDevice(int device)
{
    if (device < 0 || device >= MOCK_DEVICES)
        return mock_ret(hipErrorInvalidDevice);
    mock_current = device;
    return hipSuccess;
}

const char *hipGetErrorName(hipError_t error)
{
    switch (error) {
    case hipSuccess:
        return "hipSuccess";
    case hipErrorInvalidValue:
        return "hipErrorInvalidValue";
    case hipErrorOutOfMemory:
        return "hipErrorOutOfMemory";
    case hipErrorInvalidDevice:
        return "hipErrorInvalidDevice";
    case hipErrorInvalidHandle:
        return "hipErrorInvalidHandle";
    case hipErrorNotReady:
        return "hipErrorNotReady";
    case hipErrorIllegalAddress:
        return "hipErrorIllegalAddress";
    case hipErrorHostMemoryAlreadyRegistered:
        return "hipErrorHostMemoryAlreadyRegistered";
    case hipErrorHostMemoryNotRegistered:
        return "hipErrorHostMemoryNotRegistered";
    default:
        return "hipErrorUnknown";
    }
}

const char *hipGetErrorString(hipError_t error)
{
    return hipGetErrorName(error); /* what HIP 5.2 does for most errors */
}

hipError_t hipGetLastError(void)
{
    hipError_t e = mock_last;
    mock_last = hipSuccess;
    return e;
}

hipError_t hipDriverGetVersion(int *v)
{
    *v = 13000;
    return hipSuccess;
}

hipError_t hipRuntimeGetVersion(int *v)
{
    *v = 13000;
    return hipSuccess;
}

hipError_t hipGetDeviceProperties(hipDeviceProp_t *prop, int device)
{
    if (device < 0 || device >= MOCK_DEVICES)
        return mock_ret(hipErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    strcpy(prop->name, "hcrt mock MI250X");
    prop->totalGlobalMem = MOCK_CAPACITY;
    return hipSuccess;
}

hipError_t hipDeviceGetAttribute(int *value, hipDeviceAttribute_t attr, int device)
{
    if (device < 0 || device >= MOCK_DEVICES)
        return mock_ret(hipErrorInvalidDevice);
    switch (attr) {
    case hipDeviceAttributeMultiprocessorCount:
        *value = 110;
        break;
    case hipDeviceAttributeClockRate:
        *value = 1700000;
        break;
    case hipDeviceAttributeEccEnabled:
        *value = 1;
        break;
    case hipDeviceAttributeComputeCapabilityMajor:
        *value = 8;
        break;
    case hipDeviceAttributeComputeCapabilityMinor:
        *value = 0;
        break;
        return mock_ret(hipErrorInvalidValue); /* an older driver: unknown */
    default:
        return mock_ret(hipErrorInvalidValue);
    }
    return hipSuccess;
}

hipError_t hipDeviceGetPCIBusId(char *id, int len, int device)
{
    if (device < 0 || device >= MOCK_DEVICES || len < 13)
        return mock_ret(hipErrorInvalidValue);
    strcpy(id, device == 0 ? "0000:C1:00.0" : "0000:C9:00.0"); /* upper case: the plugin lowers it */
    return hipSuccess;
}

hipError_t hipDeviceCanAccessPeer(int *can, int device, int peer)
{
    *can = device != peer;
    return hipSuccess;
}

hipError_t hipDeviceEnablePeerAccess(int peer, unsigned int flags)
{
    (void)flags;
    return peer >= 0 && peer < MOCK_DEVICES ? hipSuccess : mock_ret(hipErrorInvalidDevice);
}

hipError_t hipMemGetInfo(size_t *free_bytes, size_t *total)
{
    MOCK_STICKY_CHECK();
    *total = MOCK_CAPACITY;
    pthread_mutex_lock(&mock_lock);
    *free_bytes = MOCK_CAPACITY - mock_used[mock_current];
    pthread_mutex_unlock(&mock_lock);
    return hipSuccess;
}

hipError_t hipMalloc(void **ptr, size_t size)
{
    MOCK_STICKY_CHECK();
    if (size == MOCK_FAULT_BYTES) {
        __atomic_store_n(&mock_sticky[mock_current], hipErrorIllegalAddress, __ATOMIC_RELAXED);
        return mock_ret(hipErrorIllegalAddress);
    }
    if (size > MOCK_CAPACITY)
        return mock_ret(hipErrorOutOfMemory);
    void *p = aligned_alloc(256, (size + 255) & ~(size_t)255);
    if (!p || mock_track(p, size, mock_current) != 0) {
        free(p);
        return mock_ret(hipErrorOutOfMemory);
    }
    *ptr = p;
    return hipSuccess;
}

hipError_t hipFree(void *ptr)
{
    if (ptr && mock_untrack(ptr, 0) != 0)
        return mock_ret(hipErrorInvalidValue);
    free(ptr);
    return hipSuccess;
}

hipError_t hipHostMalloc(void **ptr, size_t size, unsigned int flags)
{
    (void)flags;
    void *p = malloc(size);
    if (!p || mock_track(p, size, -1) != 0) {
        free(p);
        return mock_ret(hipErrorOutOfMemory);
    }
    *ptr = p;
    return hipSuccess;
}

hipError_t hipHostFree(void *ptr)
{
    if (ptr && mock_untrack(ptr, 1) != 0)
        return mock_ret(hipErrorInvalidValue);
    free(ptr);
    return hipSuccess;
}

static int mock_overlaps(const char *p, size_t n, const void *q, size_t m)
{
    const char *c = q;
    return p < c + m && c < p + n;
}

hipError_t hipHostRegister(void *ptr, size_t size, unsigned int flags)
{
    MOCK_STICKY_CHECK();
    const unsigned int known =
        hipHostRegisterPortable | hipHostRegisterMapped | hipHostRegisterIoMemory | hipExtHostRegisterCoarseGrained;
    if (!ptr || size == 0 || (flags & ~known) != 0)
        return mock_ret(hipErrorInvalidValue);
    hipError_t e = hipErrorOutOfMemory; /* the table is full (a driver out of pinnable memory) */
    pthread_mutex_lock(&mock_lock);
    for (int i = 0; i < MOCK_MAX_ALLOCS; i++)
        if (mock_allocs[i].ptr && mock_overlaps(ptr, size, mock_allocs[i].ptr, mock_allocs[i].bytes)) {
            e = mock_allocs[i].dev >= 0 ? hipErrorInvalidValue : hipErrorHostMemoryAlreadyRegistered;
            goto out;
        }
    for (int i = 0; i < MOCK_MAX_REGS; i++)
        if (mock_regs[i].ptr && mock_overlaps(ptr, size, mock_regs[i].ptr, mock_regs[i].bytes)) {
            e = hipErrorHostMemoryAlreadyRegistered;
            goto out;
        }
    for (int i = 0; i < MOCK_MAX_REGS; i++)
        if (!mock_regs[i].ptr) {
            mock_regs[i].ptr = ptr;
            mock_regs[i].bytes = size;
            e = hipSuccess;
            break;
        }
out:
    pthread_mutex_unlock(&mock_lock);
    return e == hipSuccess ? e : mock_ret(e);
}

hipError_t hipHostUnregister(void *ptr)
{
    hipError_t e = hipErrorHostMemoryNotRegistered;
    pthread_mutex_lock(&mock_lock);
    for (int i = 0; i < MOCK_MAX_REGS; i++)
        if (ptr && mock_regs[i].ptr == ptr) {
            mock_regs[i].ptr = NULL;
            e = hipSuccess;
            break;
        }
    pthread_mutex_unlock(&mock_lock);
    return e == hipSuccess ? e : mock_ret(e);
}

/* Registered or hipHostMalloc'ed memory maps to itself; anything else is not mapped for the device. */
hipError_t hipHostGetDevicePointer(void **devPtr, void *hstPtr, unsigned int flags)
{
    MOCK_STICKY_CHECK();
    if (!devPtr || !hstPtr || flags != 0)
        return mock_ret(hipErrorInvalidValue);
    int found = 0;
    pthread_mutex_lock(&mock_lock);
    for (int i = 0; i < MOCK_MAX_REGS && !found; i++)
        found = mock_regs[i].ptr && mock_overlaps(hstPtr, 1, mock_regs[i].ptr, mock_regs[i].bytes);
    for (int i = 0; i < MOCK_MAX_ALLOCS && !found; i++)
        found = mock_allocs[i].ptr && mock_allocs[i].dev < 0 &&
                mock_overlaps(hstPtr, 1, mock_allocs[i].ptr, mock_allocs[i].bytes);
    pthread_mutex_unlock(&mock_lock);
    if (!found)
        return mock_ret(hipErrorInvalidValue);
    *devPtr = hstPtr;
    return hipSuccess;
}

hipError_t hipMemsetAsync(void *ptr, int value, size_t count, hipStream_t stream)
{
    MOCK_STICKY_CHECK();
    (void)stream;
    memset(ptr, value, count);
    return hipSuccess;
}

hipError_t hipMemcpyAsync(void *dst, const void *src, size_t count, hipMemcpyKind kind, hipStream_t stream)
{
    MOCK_STICKY_CHECK();
    (void)kind;
    (void)stream;
    memmove(dst, src, count);
    return hipSuccess;
}

hipError_t hipMemcpyPeerAsync(void *dst, int dst_dev, const void *src, int src_dev, size_t count, hipStream_t stream)
{
    (void)stream;
    if (dst_dev < 0 || dst_dev >= MOCK_DEVICES || src_dev < 0 || src_dev >= MOCK_DEVICES)
        return mock_ret(hipErrorInvalidDevice);
    memmove(dst, src, count);
    return hipSuccess;
}

hipError_t hipStreamCreateWithFlags(hipStream_t *stream, unsigned int flags)
{
    (void)flags;
    struct ihipStream_t *s = malloc(sizeof *s);
    if (!s)
        return mock_ret(hipErrorOutOfMemory);
    s->dev = mock_current;
    *stream = s;
    return hipSuccess;
}

hipError_t hipStreamDestroy(hipStream_t stream)
{
    if (stream == NULL)
        return mock_ret(hipErrorInvalidHandle);
    free(stream);
    return hipSuccess;
}

hipError_t hipStreamSynchronize(hipStream_t stream)
{
    MOCK_STICKY_CHECK();
    (void)stream;
    return hipSuccess;
}

hipError_t hipEventCreate(hipEvent_t *event)
{
    struct ihipEvent_t *e = calloc(1, sizeof *e);
    if (!e)
        return mock_ret(hipErrorOutOfMemory);
    *event = e;
    return hipSuccess;
}

hipError_t hipEventDestroy(hipEvent_t event)
{
    free(event);
    return hipSuccess;
}

hipError_t hipEventRecord(hipEvent_t event, hipStream_t stream)
{
    (void)stream;
    event->t = mock_now();
    event->recorded = 1;
    return hipSuccess;
}

hipError_t hipEventSynchronize(hipEvent_t event)
{
    (void)event;
    return hipSuccess;
}

hipError_t hipEventQuery(hipEvent_t event)
{
    (void)event;
    return hipSuccess;
}

hipError_t hipEventElapsedTime(float *ms, hipEvent_t start, hipEvent_t end)
{
    if (!start->recorded || !end->recorded)
        return mock_ret(hipErrorInvalidHandle);
    *ms = (float)(end->t - start->t);
    return hipSuccess;
}

/* The kernel launchers of gpu_kernels.cuh, run on the host with the host kernels. */
int hcrt_hip_launch_reduce(void *dst, const void *src, size_t count, int dtype, int op, void *stream, int max_blocks)
{
    (void)stream;
    (void)max_blocks;
    return hcrt__host_reduce(dst, src, count, (hcrt_dtype_t)dtype, (hcrt_op_t)op) == HCRT_OK
               ? hipSuccess
               : mock_ret(hipErrorInvalidValue);
}

int hcrt_hip_launch_reduce3(void *dst, const void *a, const void *b, size_t count, int dtype, int op, void *stream,
                            int max_blocks)
{
    (void)stream;
    (void)max_blocks;
    return hcrt__host_reduce3(dst, a, b, count, (hcrt_dtype_t)dtype, (hcrt_op_t)op) == HCRT_OK
               ? hipSuccess
               : mock_ret(hipErrorInvalidValue);
}

int hcrt_hip_launch_scale(void *ptr, size_t count, int dtype, double factor, void *stream, int max_blocks)
{
    (void)stream;
    (void)max_blocks;
    return hcrt__host_scale(ptr, count, (hcrt_dtype_t)dtype, factor) == HCRT_OK ? hipSuccess
                                                                                : mock_ret(hipErrorInvalidValue);
}
