/*
 * backends/hip/gpu_vendor_hip.h - maps the gpu_* names of the shared plugin code (backends/gpu/gpu_*.c)
 * onto the HIP runtime. Host code is plain C built by gcc against HIP's AMD platform headers.
 */
#ifndef HCRT_GPU_VENDOR_HIP_H
#define HCRT_GPU_VENDOR_HIP_H

#ifndef __HIP_PLATFORM_AMD__
#define __HIP_PLATFORM_AMD__
#endif
#include <hip/hip_runtime_api.h>
#include <stdbool.h>

#define GPU_BACKEND "hip"
#define GPU_VENDOR  "AMD"
/* FP32 lanes per compute unit (4 SIMD16 units on CDNA/GCN). Only feeds the relative speed estimate. */
#define GPU_LANES_PER_SM(major, minor) 64
#define HCRT_GPU_SYM(x)                hcrt_hip_##x

typedef hipError_t gpuError_t;
typedef hipStream_t gpuStream_t;
typedef hipEvent_t gpuEvent_t;
typedef hipMemcpyKind gpuMemcpyKind;

#define gpuSuccess                       hipSuccess
#define gpuErrorNotReady                 hipErrorNotReady
#define gpuErrorMemoryAllocation         hipErrorOutOfMemory
#define gpuErrorPeerAccessAlreadyEnabled hipErrorPeerAccessAlreadyEnabled
#define gpuMemcpyHostToDevice            hipMemcpyHostToDevice
#define gpuMemcpyDeviceToHost            hipMemcpyDeviceToHost
#define gpuMemcpyDeviceToDevice          hipMemcpyDeviceToDevice
#define gpuStreamNonBlocking             hipStreamNonBlocking
/* The stream of "synchronous" ops (stream NULL). HIP's null stream: our own streams are non-blocking,
 * so it does not wait for them. */
#define GPU_SYNC_STREAM ((hipStream_t)0)

#define gpuGetDeviceCount          hipGetDeviceCount
#define gpuSetDevice               hipSetDevice
#define gpuGetErrorName            hipGetErrorName
#define gpuGetLastError            hipGetLastError
#define gpuDriverGetVersion        hipDriverGetVersion
#define gpuRuntimeGetVersion       hipRuntimeGetVersion
#define gpuDeviceGetAttribute      hipDeviceGetAttribute
#define gpuDeviceGetPCIBusId       hipDeviceGetPCIBusId
#define gpuDeviceCanAccessPeer     hipDeviceCanAccessPeer
#define gpuDeviceEnablePeerAccess  hipDeviceEnablePeerAccess
#define gpuMemGetInfo              hipMemGetInfo
#define gpuMalloc                  hipMalloc
#define gpuFree                    hipFree
#define gpuHostAllocPortable(p, n) hipHostMalloc((p), (n), hipHostMallocPortable)
#define gpuFreeHost                hipHostFree
#define gpuMemsetAsync             hipMemsetAsync
#define gpuMemcpyAsync             hipMemcpyAsync
#define gpuMemcpyPeerAsync         hipMemcpyPeerAsync
#define gpuStreamCreateWithFlags   hipStreamCreateWithFlags
#define gpuStreamDestroy           hipStreamDestroy
#define gpuStreamSynchronize       hipStreamSynchronize
#define gpuEventCreate             hipEventCreate
#define gpuEventDestroy            hipEventDestroy
#define gpuEventRecord             hipEventRecord
#define gpuEventSynchronize        hipEventSynchronize
#define gpuEventQuery              hipEventQuery
#define gpuEventElapsedTime        hipEventElapsedTime
/* Registered host memory for the kernels (host_register): see gpu_vendor_cuda.h. */
#define gpuHostRegisterMapped(p, n)   hipHostRegister((p), (n), hipHostRegisterMapped | hipHostRegisterPortable)
#define gpuHostUnregister             hipHostUnregister
#define gpuHostGetDevicePointer(d, p) hipHostGetDevicePointer((d), (p), 0)

#define GPU_ATTR_SM_COUNT  hipDeviceAttributeMultiprocessorCount
#define GPU_ATTR_CLOCK_KHZ hipDeviceAttributeClockRate
#define GPU_ATTR_ECC       hipDeviceAttributeEccEnabled
#define GPU_ATTR_CC_MAJOR  hipDeviceAttributeComputeCapabilityMajor
#define GPU_ATTR_CC_MINOR  hipDeviceAttributeComputeCapabilityMinor
/* HIP has no attribute for the host NUMA node; the runtime finds it from the PCI bus id with hwloc. */

/* Copies the device's marketing name into buf and its memory size into *total. */
static inline gpuError_t gpu_device_info(int dev, char *buf, size_t len, size_t *total)
{
    hipDeviceProp_t prop;
    hipError_t e = hipGetDeviceProperties(&prop, dev);
    if (e == hipSuccess) {
        *total = prop.totalGlobalMem;
        size_t i;
        for (i = 0; i + 1 < len && prop.name[i]; i++)
            buf[i] = prop.name[i];
        buf[i] = '\0';
    }
    return e;
}

/*
 * The vendor's description of an error. HIP 5.2's hipGetErrorString() often returns just the error's
 * name ("hipErrorNoDevice"); for the errors a user is likely to see we then give the description
 * CUDA-style runtimes use, so the reason reads like a sentence.
 */
static inline const char *gpuGetErrorString(gpuError_t e)
{
    const char *text = hipGetErrorString(e);
    const char *name = hipGetErrorName(e);
    if (text && name && __builtin_strcmp(text, name) != 0)
        return text;
    switch (e) {
    case hipErrorNoDevice:
        return "no ROCm-capable device is detected";
    case hipErrorInsufficientDriver:
        return "driver version is insufficient for runtime version";
    case hipErrorOutOfMemory:
        return "out of memory";
    case hipErrorInvalidValue:
        return "invalid argument";
    case hipErrorInvalidDevice:
        return "invalid device ordinal";
    case hipErrorInvalidHandle:
        return "invalid resource handle";
    case hipErrorNotReady:
        return "device not ready";
    case hipErrorIllegalAddress:
        return "an illegal memory access was encountered";
    case hipErrorLaunchFailure:
        return "unspecified launch failure";
    case hipErrorNotSupported:
        return "operation not supported";
    case hipErrorNotInitialized:
        return "initialization error";
    case hipErrorHostMemoryAlreadyRegistered:
        return "part or all of the requested memory range is already mapped";
    case hipErrorHostMemoryNotRegistered:
        return "pointer does not correspond to a registered memory region";
    default:
        return text ? text : "unknown HIP error";
    }
}

/* ROCm sets up every device when the runtime starts, so a memory query costs nothing extra: always
 * measure (see gpu_vendor_cuda.h for why CUDA is different). */
static inline bool gpu_context_active(int dev)
{
    (void)dev;
    return true;
}

/* Errors after which the device cannot be used again in this process: reported as a lost device. */
static inline bool gpu_error_is_fatal(gpuError_t e)
{
    switch (e) {
    case hipErrorLaunchFailure:
    case hipErrorIllegalAddress:
    case hipErrorECCNotCorrectable:
    case hipErrorLaunchTimeOut:
    case hipErrorAssert:
    case hipErrorContextIsDestroyed:
    case hipErrorDeinitialized:
    case hipErrorUnknown:
        return true;
    default:
        return false;
    }
}

static inline bool gpu_error_is_arg(gpuError_t e)
{
    return e == hipErrorInvalidValue || e == hipErrorInvalidDevicePointer || e == hipErrorInvalidDevice ||
           e == hipErrorInvalidHandle || e == hipErrorInvalidMemcpyDirection;
}

static inline bool gpu_error_is_unsupported(gpuError_t e)
{
    return e == hipErrorNotSupported;
}

#endif /* HCRT_GPU_VENDOR_HIP_H */
