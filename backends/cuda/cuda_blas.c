/*
 * backends/cuda/cuda_blas.c - cuBLAS for the compute extension's gemm, opened with dlopen() on the first
 * gemm, so that the cuda plugin needs no cuBLAS to load: a node without it (or with a broken one) still
 * runs every other op, and gemm falls back to hcrt's own kernel with one warning saying why.
 *
 * Row-major to cuBLAS's column-major: a row-major matrix is its transpose in column-major, so
 * C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: cublasGemmEx(op_b, op_a, n, m, k, B, ldb, A, lda,
 * C, ldc), with no copy. f32 accumulation always (CUBLAS_COMPUTE_32F, never TF32); f16/bf16 operands
 * are CUDA_R_16F / CUDA_R_16BF with an f32 c.
 *
 * One handle per device, made on first use; calls on it are serialised (cublasSetStream and the gemm
 * under one lock), because a handle is not safe to retarget from two threads at once. cuBLAS gives the
 * same bits run to run on one GPU model for the same sizes, but not the host's bits: its kernels split k
 * their own way (docs/plugin-abi.md). The library stays loaded until the process ends: cuBLAS has no
 * business being unloaded while the CUDA runtime it registered with lives on.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_api.h>

#include "gpu_plugin.h"

#define CUDA_BLAS_STR2(x) #x
#define CUDA_BLAS_STR(x)  CUDA_BLAS_STR2(x)
/* The file dlopen() looks for; the tests point it at their stand-in (tests/plugin/mock_cublas.c). */
#ifndef HCRT_CUBLAS_LIB
#define HCRT_CUBLAS_LIB "libcublas.so." CUDA_BLAS_STR(CUBLAS_VER_MAJOR)
#endif

typedef cublasStatus_t (*create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*destroy_fn)(cublasHandle_t);
typedef cublasStatus_t (*set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                                     const void *, cudaDataType, int, const void *, cudaDataType, int, const void *,
                                     void *, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
typedef const char *(*status_string_fn)(cublasStatus_t);

typedef struct cuda_blas {
    pthread_mutex_t lock; /* guards the handles and every call on them */
    void *lib;            /* NULL: cuBLAS could not be opened (why says why) */
    char why[256];
    create_fn create;
    destroy_fn destroy;
    set_stream_fn set_stream;
    gemm_ex_fn gemm_ex;
    status_string_fn status_string;
    cublasHandle_t *handles; /* per device; NULL until made */
    bool *refused;           /* per device: cublasCreate failed once, do not retry */
} cuda_blas_t;

static void *blas_sym(cuda_blas_t *b, const char *name)
{
    void *f = dlsym(b->lib, name);
    if (!f && !b->why[0])
        snprintf(b->why, sizeof b->why, "%s has no %s", HCRT_CUBLAS_LIB, name);
    return f;
}

/* Opens cuBLAS once per plugin state; returns the state's record (never NULL but when out of memory). */
static cuda_blas_t *blas_get(gpu_state_t *st)
{
    pthread_mutex_lock(&st->lock);
    cuda_blas_t *b = st->blas;
    if (b) {
        pthread_mutex_unlock(&st->lock);
        return b;
    }
    b = calloc(1, sizeof *b);
    if (b) {
        b->handles = calloc((size_t)st->ndev, sizeof *b->handles);
        b->refused = calloc((size_t)st->ndev, sizeof *b->refused);
    }
    if (!b || !b->handles || !b->refused) {
        if (b)
            free(b->handles), free(b->refused);
        free(b);
        pthread_mutex_unlock(&st->lock);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->lib = dlopen(HCRT_CUBLAS_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!b->lib) {
        const char *e = dlerror();
        snprintf(b->why, sizeof b->why, "%s", e ? e : "dlopen failed");
    } else {
        b->create = (create_fn)blas_sym(b, "cublasCreate_v2");
        b->destroy = (destroy_fn)blas_sym(b, "cublasDestroy_v2");
        b->set_stream = (set_stream_fn)blas_sym(b, "cublasSetStream_v2");
        b->gemm_ex = (gemm_ex_fn)blas_sym(b, "cublasGemmEx");
        b->status_string = (status_string_fn)dlsym(b->lib, "cublasGetStatusString"); /* optional */
        if (!b->create || !b->destroy || !b->set_stream || !b->gemm_ex)
            b->lib = NULL; /* left loaded: the missing symbol is the reason */
    }
    if (b->lib)
        hcrt_gpu_log(st, HCRT_LOG_DEBUG, "gemm runs on cuBLAS (%s)", HCRT_CUBLAS_LIB);
    else
        hcrt_gpu_log(st, HCRT_LOG_WARN, "cuBLAS unavailable, gemm runs hcrt's own kernel: %s", b->why);
    st->blas = b;
    pthread_mutex_unlock(&st->lock);
    return b;
}

static const char *blas_text(const cuda_blas_t *b, cublasStatus_t s)
{
    return b->status_string ? b->status_string(s) : "cuBLAS error";
}

static hcrt_status_t blas_status(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_ALLOC_FAILED:
        return HCRT_ERR_DEVICE_OOM;
    case CUBLAS_STATUS_INVALID_VALUE:
        return HCRT_ERR_INVALID_ARG;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH:
        return HCRT_ERR_NOT_SUPPORTED;
    default:
        return HCRT_ERR_BACKEND;
    }
}

hcrt_status_t hcrt_gpu_blas_gemm(gpu_state_t *st, int dev, gpuStream_t s, bool trans_a, bool trans_b, size_t m,
                                 size_t n, size_t k, float alpha, const void *a, size_t lda, const void *b, size_t ldb,
                                 float beta, float *c, size_t ldc, hcrt_dtype_t dtype)
{
    /* cuBLAS takes int sizes; k == 0 (c = beta c) it may refuse for its leading-dimension rules: the
     * kernel does both */
    if (k == 0 || m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        return HCRT_ERR_NOT_SUPPORTED;
    cuda_blas_t *bl = blas_get(st);
    if (!bl || !bl->lib)
        return HCRT_ERR_NOT_SUPPORTED;
    const cudaDataType t = dtype == HCRT_F16 ? CUDA_R_16F : dtype == HCRT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    hcrt_status_t status = HCRT_OK;
    pthread_mutex_lock(&bl->lock);
    if (bl->refused[dev]) {
        status = HCRT_ERR_NOT_SUPPORTED;
        goto out;
    }
    if (!bl->handles[dev]) {
        cublasStatus_t cs = bl->create(&bl->handles[dev]);
        if (cs != CUBLAS_STATUS_SUCCESS) {
            bl->handles[dev] = NULL;
            bl->refused[dev] = true;
            hcrt_gpu_log(st, HCRT_LOG_WARN, "cuda device %d: cublasCreate: %s (%d); gemm runs hcrt's own kernel", dev,
                         blas_text(bl, cs), (int)cs);
            (void)gpuGetLastError();
            status = HCRT_ERR_NOT_SUPPORTED;
            goto out;
        }
    }
    cublasStatus_t cs = bl->set_stream(bl->handles[dev], s);
    if (cs == CUBLAS_STATUS_SUCCESS)
        cs = bl->gemm_ex(bl->handles[dev], trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                         (int)n, (int)m, (int)k, &alpha, b, t, (int)ldb, a, t, (int)lda, &beta, c, CUDA_R_32F, (int)ldc,
                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        status = blas_status(cs);
        hcrt_gpu_set_error("cuda device %d: cublasGemmEx: %s (%d)", dev, blas_text(bl, cs), (int)cs);
        /* a launch failure may have left a sticky error: the caller's next sync reports it */
    }
out:
    pthread_mutex_unlock(&bl->lock);
    return status;
}

void hcrt_gpu_blas_release(gpu_state_t *st)
{
    cuda_blas_t *b = st->blas;
    if (!b)
        return;
    for (int d = 0; d < st->ndev; d++)
        if (b->handles[d] && gpuSetDevice(d) == gpuSuccess)
            (void)b->destroy(b->handles[d]);
    (void)gpuGetLastError();
    pthread_mutex_destroy(&b->lock);
    free(b->handles);
    free(b->refused);
    free(b);
    st->blas = NULL;
}
