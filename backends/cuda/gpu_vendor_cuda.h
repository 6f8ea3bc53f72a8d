/*
 * backends/gpu/gpu_vendor_cuda.h - maps the gpu_* names of the shared plugin code (gpu_*.c) onto the CUDA
 * runtime. The hip plugin has the same header for HIP (backends/hip/gpu_vendor_hip.h); the two runtimes
 * mirror each other call for call, so one implementation serves both.
 */
#ifndef HCRT_GPU_VENDOR_CUDA_H
#define HCRT_GPU_VENDOR_CUDA_H

#include <cuda_runtime_api.h>
#include <pthread.h>
#include <stdbool.h>

#define GPU_BACKEND "cuda" /* the plugin's name, and the prefix of every runtime call */
#define GPU_VENDOR  "NVIDIA"
/* FP32 lanes per multiprocessor, by compute capability major: 64 on Volta/Turing/A100 (7.x, 8.0), 128
 * on later parts (8.6+, 9.x, 10.x). Only feeds the relative speed estimate. */
#define GPU_LANES_PER_SM(major, minor) (((major) > 8 || ((major) == 8 && (minor) > 0)) ? 128 : 64)
#define HCRT_GPU_SYM(x)                hcrt_cuda_##x

typedef cudaError_t gpuError_t;
typedef cudaStream_t gpuStream_t;
typedef cudaEvent_t gpuEvent_t;
typedef enum cudaMemcpyKind gpuMemcpyKind;

#define gpuSuccess                       cudaSuccess
#define gpuErrorNotReady                 cudaErrorNotReady
#define gpuErrorMemoryAllocation         cudaErrorMemoryAllocation
#define gpuErrorPeerAccessAlreadyEnabled cudaErrorPeerAccessAlreadyEnabled
#define gpuMemcpyHostToDevice            cudaMemcpyHostToDevice
#define gpuMemcpyDeviceToHost            cudaMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice          cudaMemcpyDeviceToDevice
#define gpuStreamNonBlocking             cudaStreamNonBlocking
/* The stream of "synchronous" ops (stream NULL): the per-thread stream orders only this thread's work,
 * so a synchronous copy from one thread does not wait for another thread's streams. */
#define GPU_SYNC_STREAM cudaStreamPerThread

#define gpuGetDeviceCount          cudaGetDeviceCount
#define gpuSetDevice               cudaSetDevice
#define gpuGetErrorName            cudaGetErrorName
#define gpuGetErrorString          cudaGetErrorString
#define gpuGetLastError            cudaGetLastError
#define gpuDriverGetVersion        cudaDriverGetVersion
#define gpuRuntimeGetVersion       cudaRuntimeGetVersion
#define gpuDeviceGetAttribute      cudaDeviceGetAttribute
#define gpuDeviceGetPCIBusId       cudaDeviceGetPCIBusId
#define gpuDeviceCanAccessPeer     cudaDeviceCanAccessPeer
#define gpuDeviceEnablePeerAccess  cudaDeviceEnablePeerAccess
#define gpuMemGetInfo              cudaMemGetInfo
#define gpuMalloc                  cudaMalloc
#define gpuFree                    cudaFree
#define gpuHostAllocPortable(p, n) cudaHostAlloc((p), (n), cudaHostAllocPortable)
#define gpuFreeHost                cudaFreeHost
#define gpuMemsetAsync             cudaMemsetAsync
#define gpuMemcpyAsync             cudaMemcpyAsync
#define gpuMemcpyPeerAsync         cudaMemcpyPeerAsync
#define gpuStreamCreateWithFlags   cudaStreamCreateWithFlags
#define gpuStreamDestroy           cudaStreamDestroy
#define gpuStreamSynchronize       cudaStreamSynchronize
#define gpuEventCreate             cudaEventCreate
#define gpuEventDestroy            cudaEventDestroy
#define gpuEventRecord             cudaEventRecord
#define gpuEventSynchronize        cudaEventSynchronize
#define gpuEventQuery              cudaEventQuery
#define gpuEventElapsedTime        cudaEventElapsedTime
/* Registered host memory for the kernels (host_register): mapped into every device's address space
 * (portable), so one registration serves all devices of the process. */
#define gpuHostRegisterMapped(p, n)   cudaHostRegister((p), (n), cudaHostRegisterMapped | cudaHostRegisterPortable)
#define gpuHostUnregister             cudaHostUnregister
#define gpuHostGetDevicePointer(d, p) cudaHostGetDevicePointer((d), (p), 0)

#define GPU_ATTR_SM_COUNT  cudaDevAttrMultiProcessorCount
#define GPU_ATTR_CLOCK_KHZ cudaDevAttrClockRate
#define GPU_ATTR_ECC       cudaDevAttrEccEnabled
#define GPU_ATTR_CC_MAJOR  cudaDevAttrComputeCapabilityMajor
#define GPU_ATTR_CC_MINOR  cudaDevAttrComputeCapabilityMinor
#define GPU_ATTR_HOST_NUMA cudaDevAttrHostNumaId /* CUDA 12.2+; -1 when the system has no NUMA */

/* Copies the device's marketing name into buf and its memory size into *total. Needs no context. */
static inline gpuError_t gpu_device_info(int dev, char *buf, size_t len, size_t *total)
{
    struct cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, dev);
    if (e == cudaSuccess) {
        *total = prop.totalGlobalMem;
        size_t i;
        for (i = 0; i + 1 < len && prop.name[i]; i++)
            buf[i] = prop.name[i];
        buf[i] = '\0';
    }
    return e;
}

/*
 * Whether this process already holds device `dev`'s primary context. Reading free memory (or making the
 * device current, which since CUDA 12 initialises the context) on a device the process does not use
 * would create a context there: a few hundred MiB of that GPU's memory per process, and an outright
 * failure under the exclusive-process compute mode. The driver's cuDevicePrimaryCtxGetState answers
 * without creating one; it is reached through the runtime's driver entry points, so the plugin needs no
 * link to libcuda. When the entry point is unavailable the answer is "active" (measure anyway).
 */
typedef int (*gpu_cu_device_get_t)(int *device, int ordinal);
typedef int (*gpu_cu_primary_state_t)(int device, unsigned int *flags, int *active);

static gpu_cu_device_get_t gpu_cu_device_get;
static gpu_cu_primary_state_t gpu_cu_primary_state;
static pthread_once_t gpu_cu_once = PTHREAD_ONCE_INIT;

static void gpu_cu_lookup(void)
{
#if CUDART_VERSION >= 12050 /* cudaGetDriverEntryPointByVersion appeared in CUDA 12.5 */
    void *f1 = NULL, *f2 = NULL;
    enum cudaDriverEntryPointQueryResult q1 = cudaDriverEntryPointSymbolNotFound, q2 = q1;
    if (cudaGetDriverEntryPointByVersion("cuDeviceGet", &f1, 12000, cudaEnableDefault, &q1) == cudaSuccess &&
        cudaGetDriverEntryPointByVersion("cuDevicePrimaryCtxGetState", &f2, 12000, cudaEnableDefault, &q2) ==
            cudaSuccess &&
        q1 == cudaDriverEntryPointSuccess && q2 == cudaDriverEntryPointSuccess && f1 && f2) {
        gpu_cu_device_get = (gpu_cu_device_get_t)f1;
        gpu_cu_primary_state = (gpu_cu_primary_state_t)f2;
    } else {
        (void)cudaGetLastError();
    }
#endif
}

static inline bool gpu_context_active(int dev)
{
    int cudev = 0, active = 1;
    unsigned int flags = 0;
    pthread_once(&gpu_cu_once, gpu_cu_lookup);
    if (!gpu_cu_device_get || !gpu_cu_primary_state || gpu_cu_device_get(&cudev, dev) != 0 ||
        gpu_cu_primary_state(cudev, &flags, &active) != 0)
        return true;
    return active != 0;
}

/*
 * Errors after which the device's context is unusable until the process ends ("sticky" errors in CUDA's
 * words): every later call fails the same way, so the plugin reports the device as lost.
 */
static inline bool gpu_error_is_fatal(gpuError_t e)
{
    switch (e) {
    case cudaErrorDevicesUnavailable:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalAddress:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorECCUncorrectable:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorContextIsDestroyed:
    case cudaErrorUnknown:
        return true;
    default:
        return false;
    }
}

/* Errors that say the caller passed something wrong (a bad pointer, a bad handle). */
static inline bool gpu_error_is_arg(gpuError_t e)
{
    return e == cudaErrorInvalidValue || e == cudaErrorInvalidDevicePointer || e == cudaErrorInvalidDevice ||
           e == cudaErrorInvalidResourceHandle || e == cudaErrorInvalidMemcpyDirection;
}

static inline bool gpu_error_is_unsupported(gpuError_t e)
{
    return e == cudaErrorNotSupported || e == cudaErrorNotPermitted;
}

#endif /* HCRT_GPU_VENDOR_CUDA_H */
