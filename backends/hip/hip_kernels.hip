/*
 * backends/hip/hip_kernels.hip - the hip plugin's reduction and scale kernels (built by hipcc for gfx90a
 * and gfx908). The kernels themselves are shared with the cuda plugin: see ../gpu/gpu_kernels.cuh.
 */
#include <hip/hip_runtime.h>

#define HCRT_GPU_SYM(x)         hcrt_hip_##x
#define HCRT_GPU_LAUNCH_ERROR() hipGetLastError()
typedef hipStream_t gpuStream_t;

#include "gpu_kernels.cuh"
