/*
 * tests/plugin/mock_compute.c - the compute extension's kernel launchers (backends/gpu/gpu_compute.cuh)
 * run on the host, for the mock builds of the cuda and hip plugins (linked beside mock_cudart.c or
 * mock_hiprt.c, which do the same for the runtime). Each launcher calls the host implementation
 * (kernels/host_compute.h), whose bits the real kernels match where docs/plugin-abi.md says they do; the
 * element arithmetic of the real kernels is compared with it by test_gpu_kernel_math.
 *
 * Softmax cross-entropy mimics the device where it cannot match the host: a label out of range makes
 * that row's loss and gradient NaN instead of failing the op. hcrt_mock_gemm_kernel_launches counts the
 * gemm kernel's launches, so a test can tell the kernel path from cuBLAS's.
 */
#include <math.h>

#include "gpu_plugin.h"
#include "kernels/host_compute.h"

__attribute__((visibility("default"))) int hcrt_mock_gemm_kernel_launches;

/* cudaErrorInvalidValue and hipErrorInvalidValue are both 1. */
#define MOCK_INVALID 1

static int mock_status(hcrt_status_t s)
{
    return s == HCRT_OK ? 0 : s == HCRT_ERR_NO_MEMORY ? (int)gpuErrorMemoryAllocation : MOCK_INVALID;
}

int HCRT_GPU_SYM(launch_gemm)(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const void *a,
                              size_t lda, const void *b, size_t ldb, float beta, float *c, size_t ldc, int dtype,
                              void *stream)
{
    (void)stream;
    __atomic_fetch_add(&hcrt_mock_gemm_kernel_launches, 1, __ATOMIC_RELAXED);
    return mock_status(
        hcrt__host_gemm(trans_a != 0, trans_b != 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, (hcrt_dtype_t)dtype));
}

int HCRT_GPU_SYM(launch_bias_add)(float *y, const float *x, const float *bias, size_t rows, size_t cols, void *stream,
                                  int max_blocks)
{
    (void)stream, (void)max_blocks;
    hcrt__host_bias_add(y, x, bias, rows, cols);
    return 0;
}

int HCRT_GPU_SYM(launch_relu)(float *y, const float *x, size_t count, void *stream, int max_blocks)
{
    (void)stream, (void)max_blocks;
    hcrt__host_relu(y, x, count);
    return 0;
}

int HCRT_GPU_SYM(launch_relu_backward)(float *dx, const float *dy, const float *act, size_t count, void *stream,
                                       int max_blocks)
{
    (void)stream, (void)max_blocks;
    hcrt__host_relu_backward(dx, dy, act, count);
    return 0;
}

int HCRT_GPU_SYM(launch_softmax_xent)(const float *logits, const int32_t *labels, size_t rows, size_t classes,
                                      float *loss, float *dlogits, int accumulate, void *stream)
{
    (void)stream;
    size_t bad = 0;
    if (hcrt__host_softmax_xent(logits, labels, rows, classes, loss, dlogits, accumulate != 0, &bad) == HCRT_OK)
        return 0;
    /* as the device kernel: the good rows as usual, NaN for the bad ones and for the total */
    for (size_t r = 0; r < rows; r++) {
        float *d = dlogits ? dlogits + r * classes : NULL;
        if (labels[r] >= 0 && (size_t)labels[r] < classes) {
            float unused = 0;
            (void)hcrt__host_softmax_xent(logits + r * classes, labels + r, 1, classes, &unused, d, false, NULL);
        } else if (d) {
            for (size_t j = 0; j < classes; j++)
                d[j] = NAN;
        }
    }
    if (loss)
        *loss = NAN;
    return 0;
}

int HCRT_GPU_SYM(launch_col_sum)(float *out, const float *x, size_t rows, size_t cols, int accumulate, void *stream,
                                 int max_blocks)
{
    (void)stream, (void)max_blocks;
    hcrt__host_col_sum(out, x, rows, cols, accumulate != 0);
    return 0;
}

int HCRT_GPU_SYM(launch_optim)(const hcrt_backend_optim_t *opt, float *param, const float *grad, float *state,
                               size_t count, void *stream, int max_blocks)
{
    (void)stream, (void)max_blocks;
    hcrt__host_optim_step(opt, param, grad, state, count);
    return 0;
}

int HCRT_GPU_SYM(launch_cast)(void *dst, int dst_dtype, const void *src, int src_dtype, size_t count, void *stream,
                              int max_blocks)
{
    (void)stream, (void)max_blocks;
    return mock_status(hcrt__host_cast(dst, (hcrt_dtype_t)dst_dtype, src, (hcrt_dtype_t)src_dtype, count));
}
