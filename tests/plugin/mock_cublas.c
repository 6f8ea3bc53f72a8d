/*
 * tests/plugin/mock_cublas.c - a host stand-in for the four cuBLAS calls the cuda plugin makes
 * (backends/cuda/cuda_blas.c), built as its own library that the mock cuda plugin dlopen()s instead of
 * libcublas.so.
 *
 * cublasGemmEx keeps cuBLAS's column-major contract exactly: C (M x N, ldc) = alpha op(A) op(B) + beta C
 * with op(A) M x K from A (lda) and op(B) K x N from B (ldb), the leading-dimension rules cuBLAS checks,
 * CUBLAS_COMPUTE_32F and an f32 C only. It computes through the host gemm by reading the column-major
 * buffers as row-major transposes (C^T = op(B)^T op(A)^T), so a plugin that passed the wrong operands,
 * transposes or sizes gets wrong numbers, which test_compute then catches. The result is the host's bits.
 *
 * Two counters let the tests see which path ran: hcrt_mock_cublas_gemms counts gemms done here, and a
 * nonzero hcrt_mock_cublas_refuse_create makes cublasCreate fail (the plugin must then fall back to its
 * own kernel on that device).
 */
#include <cublas_api.h>
#include <stdlib.h>

#include "kernels/host_compute.h"

#define MOCK_EXPORT __attribute__((visibility("default")))

MOCK_EXPORT int hcrt_mock_cublas_gemms;
MOCK_EXPORT int hcrt_mock_cublas_refuse_create;

struct cublasContext {
    cudaStream_t stream;
};

MOCK_EXPORT cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (__atomic_load_n(&hcrt_mock_cublas_refuse_create, __ATOMIC_RELAXED))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    *handle = calloc(1, sizeof(**handle));
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

MOCK_EXPORT cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

MOCK_EXPORT cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

MOCK_EXPORT const char *cublasGetStatusString(cublasStatus_t status)
{
    switch (status) {
    case CUBLAS_STATUS_SUCCESS:
        return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED:
        return "the functionality requested is not supported";
    default:
        return "unknown error";
    }
}

static int mock_dtype(cudaDataType t, hcrt_dtype_t *out)
{
    switch (t) {
    case CUDA_R_32F:
        *out = HCRT_F32;
        return 1;
    case CUDA_R_16F:
        *out = HCRT_F16;
        return 1;
    case CUDA_R_16BF:
        *out = HCRT_BF16;
        return 1;
    default:
        return 0;
    }
}

static int max1(int x)
{
    return x > 1 ? x : 1;
}

MOCK_EXPORT cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                        int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                                        int lda, const void *B, cudaDataType Btype, int ldb, const void *beta, void *C,
                                        cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                                        cublasGemmAlgo_t algo)
{
    (void)algo;
    hcrt_dtype_t t;
    if (!handle)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (computeType != CUBLAS_COMPUTE_32F || Ctype != CUDA_R_32F || Atype != Btype || !mock_dtype(Atype, &t))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0 || (transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) ||
        (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T) || lda < max1(transa == CUBLAS_OP_N ? m : k) ||
        ldb < max1(transb == CUBLAS_OP_N ? k : n) || ldc < max1(m) || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    /* column-major C (m x n) is row-major C^T (n x m) = op(B)^T op(A)^T */
    if (hcrt__host_gemm(transb == CUBLAS_OP_T, transa == CUBLAS_OP_T, (size_t)n, (size_t)m, (size_t)k,
                        *(const float *)alpha, B, (size_t)ldb, A, (size_t)lda, *(const float *)beta, C, (size_t)ldc,
                        t) != HCRT_OK)
        return CUBLAS_STATUS_EXECUTION_FAILED;
    __atomic_fetch_add(&hcrt_mock_cublas_gemms, 1, __ATOMIC_RELAXED);
    return CUBLAS_STATUS_SUCCESS;
}
