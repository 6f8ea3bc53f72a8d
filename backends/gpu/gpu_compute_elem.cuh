/*
 * backends/gpu/gpu_compute_elem.cuh - element-level arithmetic of the GPU compute kernels (ReLU and its
 * gradient, the optimizer updates, casts), __host__ __device__ so that tests/plugin/test_gpu_kernel_math.cu
 * compares it bit for bit with the host implementation (kernels/host_compute.c) on a machine without a GPU.
 *
 * Each function performs exactly the host's sequence of IEEE operations (hcrt/backend_compute.h gives the
 * formulas), so a device that rounds every f32 operation correctly (CUDA and HIP do for add, multiply,
 * divide and sqrtf unless told otherwise) gives the host's bits. The files that include this are built
 * without a*b+c contraction (nvcc --fmad=false, hipcc -ffp-contract=off).
 */
#ifndef HCRT_GPU_COMPUTE_ELEM_CUH
#define HCRT_GPU_COMPUTE_ELEM_CUH

#include <math.h>

#include "gpu_elem.cuh"
#include "hcrt/backend_compute.h"

namespace
{

HCRT_GPU_HD float relu_elem(float x)
{
    return x > 0.0f || x != x ? x : 0.0f;
}

HCRT_GPU_HD float relu_backward_elem(float dy, float act)
{
    return act > 0.0f ? dy : 0.0f;
}

/* SGD with momentum (v may be NULL when o.momentum == 0) and L2 weight decay: one parameter. */
HCRT_GPU_HD void sgd_elem(const hcrt_backend_optim_t &o, float *p, float grad, float *v)
{
    float g = grad * o.grad_scale;
    if (o.weight_decay != 0.0f)
        g = g + o.weight_decay * *p;
    if (o.momentum != 0.0f) {
        const float vi = o.momentum * *v + g;
        *v = vi;
        g = o.nesterov ? g + o.momentum * vi : vi;
    }
    *p = *p - o.lr * g;
}

/* AdamW: one parameter with its first (m) and second (v) moments. */
HCRT_GPU_HD void adamw_elem(const hcrt_backend_optim_t &o, float *p, float grad, float *m, float *v)
{
    const float g = grad * o.grad_scale;
    const float mi = o.beta1 * *m + o.one_minus_beta1 * g;
    const float vi = o.beta2 * *v + o.one_minus_beta2 * (g * g);
    *m = mi;
    *v = vi;
    const float denom = sqrtf(vi) / o.bias2_sqrt + o.eps;
    *p = *p * o.decay - o.step_size * (mi / denom);
}

/* One element of a cast between f32 (stored as float bits), f16 and bf16. */
HCRT_GPU_HD float cast_load(const void *src, size_t i, int dtype)
{
    if (dtype == HCRT_F32)
        return static_cast<const float *>(src)[i];
    const uint16_t h = static_cast<const uint16_t *>(src)[i];
    return dtype == HCRT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

HCRT_GPU_HD void cast_store(void *dst, size_t i, int dtype, float v)
{
    if (dtype == HCRT_F32)
        static_cast<float *>(dst)[i] = v;
    else
        static_cast<uint16_t *>(dst)[i] = dtype == HCRT_F16 ? f32_to_f16(v) : f32_to_bf16(v);
}

/* dst[i] = src[i] converted; equal dtypes copy the bits (NaN payloads too), as the host does. */
HCRT_GPU_HD void cast_elem(void *dst, int dst_dtype, const void *src, int src_dtype, size_t i)
{
    if (dst_dtype == src_dtype && dst_dtype != HCRT_F32)
        static_cast<uint16_t *>(dst)[i] = static_cast<const uint16_t *>(src)[i];
    else if (dst_dtype == src_dtype)
        static_cast<uint32_t *>(dst)[i] = static_cast<const uint32_t *>(src)[i];
    else
        cast_store(dst, i, dst_dtype, cast_load(src, i, src_dtype));
}

} /* namespace */

#endif /* HCRT_GPU_COMPUTE_ELEM_CUH */
