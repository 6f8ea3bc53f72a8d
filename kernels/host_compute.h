/*
 * kernels/host_compute.h - the compute extension's host implementation (gemm, bias add, ReLU, softmax
 * cross-entropy, column sums, optimizer updates, casts), shared by the cpu and sim backends so that
 * their results are the same bits, and the reference the GPU plugins' mocks run.
 *
 * Determinism is the contract: every function computes each output element by one fixed sequence of
 * IEEE operations that depends only on the operands' values and the sizes, never on alignment, tiling,
 * the vector width or the thread. Where several instruction sets are used (gemm: AVX-512, AVX2+FMA and
 * portable C; the element-wise loops: SSE2, x86-64-v3, x86-64-v4 clones of one C source), every path
 * performs those same operations, so all of them give the same bits (tests/unit/test_host_compute.c
 * checks each path against the others). Everything is single-threaded; callers run it on the stream's
 * worker thread or the calling thread.
 *
 * Arguments are assumed valid (the runtime and the backends check them): sizes whose bytes fit, pointers
 * non-NULL where a size is nonzero and aligned to their element size, overlaps only where allowed.
 */
#ifndef HCRT_HOST_COMPUTE_H
#define HCRT_HOST_COMPUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/backend_compute.h"
#include "hcrt/types.h"

/*
 * c = alpha * op(a) op(b) + beta * c (hcrt/backend_compute.h). Each element of c is the chain
 * s = fma(a[i][p], b[p][j], s) over p = 0..k-1 from s = +0, then alpha * s, plus beta * c rounded
 * separately when beta != 0. HCRT_ERR_INVALID_ARG for a dtype other than f32/f16/bf16;
 * HCRT_ERR_NO_MEMORY when the packing buffers cannot be had.
 */
hcrt_status_t hcrt__host_gemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha, const void *a,
                              size_t lda, const void *b, size_t ldb, float beta, float *c, size_t ldc,
                              hcrt_dtype_t dtype);

void hcrt__host_bias_add(float *y, const float *x, const float *bias, size_t rows, size_t cols);
void hcrt__host_relu(float *y, const float *x, size_t count);
void hcrt__host_relu_backward(float *dx, const float *dy, const float *act, size_t count);

/*
 * Per row: mx = the largest logit (NaN if any is NaN), e[j] = exp(z[j] - mx), s = e[0] + ... (j
 * ascending, f32), loss_r = (log(s) + mx) - z[label], dlogits[j] = e[j] / s - (j == label). The row
 * losses are summed in f64 (rows ascending) and rounded once; with accumulate, *loss = *loss + that.
 * exp and log are hcrt's own (hcrt__host_expf/logf), not libm's, so no C library changes the bits.
 * A label outside [0, classes) stops the op with HCRT_ERR_INVALID_ARG and its row in *bad_row (outputs
 * partly written).
 */
hcrt_status_t hcrt__host_softmax_xent(const float *logits, const int32_t *labels, size_t rows, size_t classes,
                                      float *loss, float *dlogits, bool accumulate, size_t *bad_row);

void hcrt__host_col_sum(float *out, const float *x, size_t rows, size_t cols, bool accumulate);

/* The update of hcrt_backend_optim_t, element by element in the order its comment gives. */
void hcrt__host_optim_step(const hcrt_backend_optim_t *opt, float *param, const float *grad, float *state,
                           size_t count);

/* dst = src converted between f32, f16 and bf16 (HCRT_ERR_INVALID_ARG for any other dtype). */
hcrt_status_t hcrt__host_cast(void *dst, hcrt_dtype_t dst_dtype, const void *src, hcrt_dtype_t src_dtype, size_t count);

/* exp and log with a fixed operation sequence (polynomials evaluated with fmaf): the same bits on every
 * machine and C library. expf is within 2 ulp over its range and gives 0 below -87.3 (no subnormal
 * results); logf is within 2 ulp for positive normal inputs. */
float hcrt__host_expf(float x);
float hcrt__host_logf(float x);

/* Which gemm kernel runs: the best this CPU has, or (for tests) a lower one. */
typedef enum hcrt__gemm_isa {
    HCRT__GEMM_PORTABLE = 0, /* plain C, fmaf() */
    HCRT__GEMM_AVX2 = 1,     /* AVX2 + FMA, 6 x 16 tiles */
    HCRT__GEMM_AVX512 = 2    /* AVX-512F, 6 x 64 tiles */
} hcrt__gemm_isa_t;

/* The best kernel this CPU can run. */
hcrt__gemm_isa_t hcrt__gemm_isa_best(void);
/* For tests: makes gemm use `isa` (at most the best), or the best again when isa < 0. Returns the one now
 * in use. hcrt__host_kernels_force_portable(true) also selects HCRT__GEMM_PORTABLE. */
hcrt__gemm_isa_t hcrt__gemm_isa_force(int isa);

#endif /* HCRT_HOST_COMPUTE_H */
