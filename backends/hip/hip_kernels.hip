/*
 * backends/hip/hip_kernels.hip - the hip plugin's reduction and scale kernels and the compute extension's
 * kernels (built by hipcc for gfx90a and gfx908). The kernels themselves are shared with the cuda plugin:
 * see ../gpu/gpu_kernels.cuh and ../gpu/gpu_compute.cuh.
 */
#include <hip/hip_runtime.h>

#define HCRT_GPU_SYM(x)         hcrt_hip_##x
#define HCRT_GPU_LAUNCH_ERROR() hipGetLastError()
typedef hipStream_t gpuStream_t;

#include "gpu_kernels.cuh"
#include "gpu_compute.cuh"
