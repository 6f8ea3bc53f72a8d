/*
 * backends/cuda/cuda_kernels.cu - the cuda plugin's reduction and scale kernels and the compute
 * extension's kernels (built by nvcc for sm_80 and sm_90). The kernels themselves are shared with the hip
 * plugin: see gpu_kernels.cuh and gpu_compute.cuh.
 */
#include <cuda_runtime.h>

#define HCRT_GPU_SYM(x)         hcrt_cuda_##x
#define HCRT_GPU_LAUNCH_ERROR() cudaGetLastError()
typedef cudaStream_t gpuStream_t;

#include "gpu_kernels.cuh"
#include "gpu_compute.cuh"
