/*
 * backends/hip/hip_blas.c - the hip plugin's vendor BLAS for the compute extension's gemm: none. Debian
 * ships no hipBLAS (or rocBLAS), so every gemm runs hcrt's tiled kernel (backends/gpu/gpu_compute.cuh),
 * which gives the host implementation's bits. A build against a ROCm with hipBLAS would put it here.
 */
#include "gpu_plugin.h"

hcrt_status_t hcrt_gpu_blas_gemm(gpu_state_t *st, int dev, gpuStream_t s, bool trans_a, bool trans_b, size_t m,
                                 size_t n, size_t k, float alpha, const void *a, size_t lda, const void *b, size_t ldb,
                                 float beta, float *c, size_t ldc, hcrt_dtype_t dtype)
{
    (void)st, (void)dev, (void)s, (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a,
        (void)lda, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc, (void)dtype;
    return HCRT_ERR_NOT_SUPPORTED;
}

void hcrt_gpu_blas_release(gpu_state_t *st)
{
    (void)st;
}
