/*
 * hcrt/backend_compute.h - the compute extension of the backend plugin ABI (version 1): what one training
 * step of a multi-layer perceptron needs, on device memory, on a stream.
 *
 * A plugin offers it by pointing hcrt_backend_v1.compute (hcrt/backend.h) at one table of this type; a
 * NULL pointer, or a v1 table too short to hold the field, means "no compute" and the runtime answers
 * HCRT_ERR_NOT_SUPPORTED, naming the backend, for every compute call on its devices. A device without the
 * extension can still join a job whose compute happens elsewhere (a framework's own kernels).
 *
 * The table is a family: a plugin fills all of it or offers none. At load time the runtime checks that
 * `struct_size` covers every op of this version (HCRT_BACKEND_COMPUTE_V1_MIN_SIZE), that `version` is
 * HCRT_BACKEND_COMPUTE_VERSION and that no op is NULL; a table that fails is ignored with a warning
 * naming the plugin file and the reason, and the rest of the plugin still works. Ops are only ever
 * appended (found by struct_size); an incompatible change gets a new version number.
 *
 * Conventions: those of hcrt/backend.h (state first, `dev` checked, `stream` NULL means synchronous,
 * negative status with last_error() text on failure). Besides:
 *  - Matrices are row-major. A matrix of R rows and C columns with leading dimension ld (>= C) holds
 *    element (r, c) at index r * ld + c. Vectors and the element-wise operands are dense.
 *  - Every pointer is memory of `dev` (or a range registered on `dev` with host_register, where the
 *    plugin has it), aligned to its element size; the runtime checks the alignment and the overlaps
 *    each op lists before it calls, but a plugin must still answer a NULL pointer or an invalid dtype
 *    with HCRT_ERR_INVALID_ARG rather than crash.
 *  - A size of 0 makes an op succeed without touching memory (gemm with k == 0 still scales C by beta).
 *  - f32 arithmetic everywhere, without contracting a*b+c into one rounding unless an op says so. The
 *    host implementation (cpu, sim) defines the exact bits; docs/plugin-abi.md gives each op's formula
 *    and what a device must match exactly (element-wise ops, the optimizer) and within what tolerance
 *    (gemm, softmax cross-entropy).
 */
#ifndef HCRT_BACKEND_COMPUTE_H
#define HCRT_BACKEND_COMPUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/status.h"
#include "hcrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HCRT_BACKEND_COMPUTE_VERSION 1u

typedef struct hcrt_backend_stream hcrt_backend_stream_t;

/*
 * One optimizer update, with its hyper-parameters already lowered to the f32 constants every backend
 * uses, so that all of them do the same arithmetic (the runtime fills this from the public
 * hcrt_optim_params_t; docs/plugin-abi.md gives the formulas). With g = grad[i] * grad_scale:
 *
 *   SGD:   if weight_decay != 0:  g = g + weight_decay * p
 *          if momentum != 0:      v = momentum * v + g;  g = nesterov ? g + momentum * v : v
 *          p = p - lr * g
 *   AdamW: p = p * decay
 *          m = beta1 * m + one_minus_beta1 * g
 *          v = beta2 * v + one_minus_beta2 * (g * g)
 *          p = p - step_size * (m / (sqrt(v) / bias2_sqrt + eps))
 *
 * Every product, sum, quotient and square root is rounded to f32 on its own (no fused multiply-add).
 */
typedef struct hcrt_backend_optim {
    size_t struct_size;
    int32_t kind;     /* HCRT_OPTIM_SGD or HCRT_OPTIM_ADAMW (hcrt/types.h) */
    int32_t nesterov; /* SGD: nonzero for Nesterov momentum */
    float grad_scale; /* every gradient element is multiplied by this first (1 / global sample count) */
    /* SGD */
    float lr;
    float momentum;     /* 0: no momentum buffer (the state pointer may be NULL) */
    float weight_decay; /* L2 term added to the gradient */
    /* AdamW (decoupled weight decay); the state holds m (count floats) then v (count floats) */
    float decay;      /* (float)(1 - lr * weight_decay) */
    float step_size;  /* (float)(lr / (1 - beta1^step)) */
    float bias2_sqrt; /* (float)sqrt(1 - beta2^step) */
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float eps;
} hcrt_backend_optim_t;

typedef struct hcrt_backend_compute_v1 {
    size_t struct_size; /* sizeof(hcrt_backend_compute_v1_t) as the plugin was compiled */
    uint32_t version;   /* HCRT_BACKEND_COMPUTE_VERSION */
    uint32_t reserved;  /* 0 */

    /*
     * c = alpha * op(a) op(b) + beta * c, with op(a) of m x k and op(b) of k x n (row-major, see above):
     * a is stored m x k (lda >= k), or k x m (lda >= m) when trans_a; b is stored k x n (ldb >= n), or
     * n x k (ldb >= k) when trans_b; c is m x n (ldc >= n) and always f32. a and b are both of `dtype`,
     * which is HCRT_F32, HCRT_F16 or HCRT_BF16; f16/bf16 elements are widened to f32 exactly and the
     * products accumulate in f32. beta == 0 means c is not read (NaN there does not propagate). c must
     * not overlap a or b.
     */
    hcrt_status_t (*gemm)(void *state, int dev, bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha,
                          const void *a, size_t lda, const void *b, size_t ldb, float beta, float *c, size_t ldc,
                          hcrt_dtype_t dtype, hcrt_backend_stream_t *stream);

    /* y[r][j] = x[r][j] + bias[j] for a dense rows x cols matrix; y may be x. */
    hcrt_status_t (*bias_add)(void *state, int dev, float *y, const float *x, const float *bias, size_t rows,
                              size_t cols, hcrt_backend_stream_t *stream);

    /* y[i] = x[i] > 0 ? x[i] : +0, except that NaN stays NaN; y may be x. */
    hcrt_status_t (*relu)(void *state, int dev, float *y, const float *x, size_t count, hcrt_backend_stream_t *stream);

    /* dx[i] = act[i] > 0 ? dy[i] : +0, act being the ReLU's input or output (the same sign test); dx may
     * be dy or act. */
    hcrt_status_t (*relu_backward)(void *state, int dev, float *dx, const float *dy, const float *act, size_t count,
                                   hcrt_backend_stream_t *stream);

    /*
     * Softmax cross-entropy of rows x classes logits against int32 labels in [0, classes). loss (one f32,
     * may be NULL) receives the SUM over rows of -log softmax(row)[label] (added to *loss when
     * accumulate); dlogits (rows x classes, may be NULL, may be logits) receives softmax(row) - onehot
     * (not divided by rows). Not both NULL. A label outside [0, classes) is HCRT_ERR_INVALID_ARG where the
     * backend can tell (the host backends, at the op or the next synchronisation); a device that cannot
     * report it from a kernel makes that row's loss and gradient NaN instead.
     */
    hcrt_status_t (*softmax_xent)(void *state, int dev, const float *logits, const int32_t *labels, size_t rows,
                                  size_t classes, float *loss, float *dlogits, bool accumulate,
                                  hcrt_backend_stream_t *stream);

    /* out[j] = sum over r of x[r][j] (rows ascending, from +0) for a dense rows x cols matrix, or
     * out[j] + that sum when accumulate. out must not overlap x. */
    hcrt_status_t (*col_sum)(void *state, int dev, float *out, const float *x, size_t rows, size_t cols,
                             bool accumulate, hcrt_backend_stream_t *stream);

    /* One optimizer update of count parameters (see hcrt_backend_optim_t): param and grad hold count
     * f32; opt_state holds count (SGD with momentum) or 2 * count (AdamW) f32, NULL for SGD without
     * momentum. The three do not overlap. */
    hcrt_status_t (*optim_step)(void *state, int dev, const hcrt_backend_optim_t *opt, float *param, const float *grad,
                                float *opt_state, size_t count, hcrt_backend_stream_t *stream);

    /* dst[i] = src[i] converted, for dtypes f32, f16 and bf16: widening is exact, narrowing rounds to
     * nearest even (overflow to infinity, NaN to a quiet NaN of the same sign), as hcrt's reductions do.
     * dst may be src only when the dtypes are equal (a no-op); other overlaps are refused. */
    hcrt_status_t (*cast)(void *state, int dev, void *dst, hcrt_dtype_t dst_dtype, const void *src,
                          hcrt_dtype_t src_dtype, size_t count, hcrt_backend_stream_t *stream);
} hcrt_backend_compute_v1_t;

/* The smallest struct_size a version-1 compute table may have: every op above. */
#define HCRT_BACKEND_COMPUTE_V1_MIN_SIZE (offsetof(hcrt_backend_compute_v1_t, cast) + sizeof(void *))

#ifdef __cplusplus
}
#endif

#endif /* HCRT_BACKEND_COMPUTE_H */
