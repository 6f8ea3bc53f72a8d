/*
 * hcrt/compute.h - compute on any device: the operations one training step of a multi-layer perceptron
 * needs (matrix multiply, bias add, ReLU and its gradient, softmax cross-entropy and its gradient, column
 * sums, an optimizer update, dtype casts), on device memory, on a stream. Included by hcrt/hcrt.h.
 *
 * A layer of an MLP with weights W (in x out), bias b (out) on a micro-batch X (m x in) is
 *
 *     forward   H  = X W            hcrt_compute_gemm(dev, false, false, m, out, in, 1, X, in, W, out, 0, H, out)
 *               H += b              hcrt_compute_bias_add(dev, H, H, b, m, out)
 *               A  = relu(H)        hcrt_compute_relu(dev, A, H, m * out)     (last layer: logits, no ReLU)
 *     loss      sum of -log p[y], dZ = softmax - onehot       hcrt_compute_softmax_xent(...)
 *     backward  dH = dA * (H > 0)   hcrt_compute_relu_backward(dev, dH, dA, H, m * out)
 *               dW (+)= X^T dH      hcrt_compute_gemm(dev, true, false, in, out, m, 1, X, in, dH, out, beta, dW, out)
 *               db (+)= colsum(dH)  hcrt_compute_col_sum(dev, db, dH, m, out, accumulate)
 *               dX  = dH W^T        hcrt_compute_gemm(dev, false, true, m, in, out, 1, dH, out, W, out, 0, dX, in)
 *     update    hcrt_compute_optim_step(dev, &params, W, dW, state, in * out)
 *
 * Gradients are sums over samples, never means: the loss is the sum over the micro-batch and the
 * gradient of each logit is softmax - onehot per sample. Summing micro-batches (beta = 1, accumulate)
 * and ranks (an allreduce with HCRT_OP_SUM) and dividing once by the global sample count (the
 * optimizer's grad_scale) gives the gradient of the mean loss over the global batch however unevenly
 * the samples were split, which averaging per rank (HCRT_OP_AVG, torch DDP) does not.
 *
 * Conventions:
 *  - Every call takes the device, pointers of that device's memory (or host ranges registered on it
 *    with hcrt_host_register) and an optional stream of the same device: NULL runs synchronously, a
 *    stream enqueues the op behind the stream's earlier work and returns at once (an error during
 *    execution shows at the next hcrt_stream_sync() or hcrt_event_sync()). Nothing waits for the host,
 *    so a whole step runs without a host synchronisation; the loss lands in device memory.
 *  - Matrices are row-major: element (r, c) of a matrix with leading dimension ld is at index r * ld + c.
 *    Element-wise operands are dense. Pointers are aligned to their element size.
 *  - f32 throughout, except the gemm operands (f32, f16 or bf16, accumulated in f32) and hcrt_compute_cast.
 *  - Errors: HCRT_ERR_INVALID_ARG naming the argument (NULL with a nonzero size, a leading dimension
 *    smaller than the row, a size whose bytes overflow, a pointer not aligned to its element, a stream of
 *    another device, outputs overlapping inputs where the call does not allow it); HCRT_ERR_NOT_SUPPORTED,
 *    naming the backend, on a device whose backend has no compute extension (hcrt_device_has_compute());
 *    otherwise the backend's status (HCRT_ERR_DEVICE_LOST, ...) with its text in hcrt_last_error(). The
 *    sim backend also refuses, by name, a pointer that is not inside one live allocation of the device.
 *  - Determinism: on the cpu and sim backends (one host implementation) every op gives the same bits
 *    on every run, thread, rank and buffer alignment, on every x86-64 CPU, whichever of its vector units
 *    the code uses; cpu and sim give the same bits as each other. GPU backends are deterministic run to
 *    run on one device and match the element-wise ops and the optimizer bit for bit, but round gemm and
 *    softmax differently (docs/plugin-abi.md gives the tolerances).
 *  - Thread safety: as hcrt_reduce(): calls on different streams may come from different threads.
 */
#ifndef HCRT_COMPUTE_H
#define HCRT_COMPUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/status.h"
#include "hcrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hcrt_device hcrt_device_t;
typedef struct hcrt_stream hcrt_stream_t;

/* Whether the backend of `device` offers the compute extension (false for NULL). hcrt-info shows it per
 * backend. */
HCRT_EXPORT bool hcrt_device_has_compute(const hcrt_device_t *device);

/*
 * c = alpha * op(a) op(b) + beta * c, where op(a) is m x k and op(b) is k x n.
 *
 *  a: m x k with lda >= k, or, with trans_a, stored k x m (lda >= m) and used transposed.
 *  b: k x n with ldb >= n, or, with trans_b, stored n x k (ldb >= k) and used transposed.
 *  c: m x n, f32, ldc >= n. It must not overlap the memory a or b spans.
 *  dtype: of a and b: HCRT_F32, HCRT_F16 or HCRT_BF16. 16-bit operands are widened to f32 exactly;
 *         products accumulate in f32 whatever the dtype.
 *  beta == 0: c is only written (whatever it held, NaN included, does not show in the result).
 *
 * m == 0 or n == 0 does nothing; k == 0 sets c to beta * c (0 when beta == 0).
 *
 * On cpu and sim each element of c is one chain of fused multiply-adds over k ascending, from +0, then
 * alpha * sum (+ beta * c, rounded separately): the result does not depend on how the work is tiled or
 * vectorised, so it is the same bits everywhere. The kernel is hcrt's own, single-threaded per call
 * (docs/performance.md compares it with OpenBLAS).
 */
HCRT_EXPORT hcrt_status_t hcrt_compute_gemm(hcrt_device_t *device, bool trans_a, bool trans_b, size_t m, size_t n,
                                            size_t k, float alpha, const void *a, size_t lda, const void *b, size_t ldb,
                                            float beta, float *c, size_t ldc, hcrt_dtype_t dtype,
                                            hcrt_stream_t *stream);

/* y[r][j] = x[r][j] + bias[j] for r < rows, j < cols (dense matrices). y may be x; otherwise y must not
 * overlap x, and bias must not overlap y. */
HCRT_EXPORT hcrt_status_t hcrt_compute_bias_add(hcrt_device_t *device, float *y, const float *x, const float *bias,
                                                size_t rows, size_t cols, hcrt_stream_t *stream);

/* y[i] = x[i] > 0 ? x[i] : +0 (NaN stays NaN) for i < count. y may be x, or must not overlap it. */
HCRT_EXPORT hcrt_status_t hcrt_compute_relu(hcrt_device_t *device, float *y, const float *x, size_t count,
                                            hcrt_stream_t *stream);

/* The ReLU's gradient: dx[i] = act[i] > 0 ? dy[i] : +0, where act is the ReLU's input or its output
 * (either gives the same test). dx may be dy or act, or must not overlap them. */
HCRT_EXPORT hcrt_status_t hcrt_compute_relu_backward(hcrt_device_t *device, float *dx, const float *dy,
                                                     const float *act, size_t count, hcrt_stream_t *stream);

/*
 * Softmax cross-entropy of `rows` samples over `classes` classes.
 *
 *  logits:  rows x classes (dense); labels: rows int32 in [0, classes).
 *  loss:    one f32 of device memory, or NULL: receives the SUM over the rows of -log softmax(row)[label]
 *           (with accumulate, that sum is added to *loss, so the micro-batches of a step can share one
 *           loss without a host round trip). rows == 0 gives 0.
 *  dlogits: rows x classes, or NULL: softmax(row) - onehot(label), per sample (not divided by rows).
 *           May be logits (the gradient overwrites the logits); otherwise it must not overlap them.
 *  loss and dlogits are not both NULL, and neither overlaps labels or the other.
 *
 * A label outside [0, classes) is HCRT_ERR_INVALID_ARG naming the row and the label on the cpu and sim
 * backends (at the call, or at the next synchronisation of the stream); a GPU cannot report it from a
 * kernel and makes that row's loss and gradient NaN instead (which the loss then shows).
 */
HCRT_EXPORT hcrt_status_t hcrt_compute_softmax_xent(hcrt_device_t *device, const float *logits, const int32_t *labels,
                                                    size_t rows, size_t classes, float *loss, float *dlogits,
                                                    bool accumulate, hcrt_stream_t *stream);

/* out[j] = sum of x[r][j] over r < rows (from +0, rows ascending), or out[j] + that sum when accumulate,
 * for j < cols. rows == 0 gives 0 (out unchanged when accumulating). out must not overlap x. */
HCRT_EXPORT hcrt_status_t hcrt_compute_col_sum(hcrt_device_t *device, float *out, const float *x, size_t rows,
                                               size_t cols, bool accumulate, hcrt_stream_t *stream);

/*
 * Hyper-parameters of one optimizer update. Fill with hcrt_optim_params_init(), then set what you need.
 * The runtime lowers them to f32 constants once per call (hcrt/backend_compute.h), so every backend runs
 * the same arithmetic; the semantics are PyTorch's:
 *
 *   g = grad * grad_scale
 *   SGD:   g += weight_decay * p;  v = momentum * v + g;  g = nesterov ? g + momentum * v : v;  p -= lr * g
 *          (torch.optim.SGD with dampening 0; a zeroed state makes the first step v = g, as torch does)
 *   AdamW: p *= 1 - lr * weight_decay;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
 *          p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)   (torch.optim.AdamW)
 */
typedef struct hcrt_optim_params {
    size_t struct_size;
    hcrt_optimizer_t kind; /* HCRT_OPTIM_SGD (default) or HCRT_OPTIM_ADAMW */
    uint64_t step;         /* AdamW: the 1-based number of this update (bias correction); default 1 */
    double lr;             /* learning rate, >= 0; default 0.01 (SGD) */
    double grad_scale;     /* gradients are multiplied by this first, e.g. 1 / global samples; default 1 */
    double weight_decay;   /* >= 0; SGD: L2 term added to the gradient; AdamW: decoupled decay; default 0 */
    double momentum;       /* SGD, >= 0; 0 (default) needs no state */
    double beta1, beta2;   /* AdamW, each in [0, 1); defaults 0.9, 0.999 */
    double eps;            /* AdamW, >= 0; default 1e-8 */
    bool nesterov;         /* SGD: Nesterov momentum (needs momentum > 0); default false */
} hcrt_optim_params_t;

/* Fills params with the defaults above and struct_size. */
HCRT_EXPORT void hcrt_optim_params_init(hcrt_optim_params_t *params);

/* How many f32 of optimizer state hcrt_compute_optim_step() needs for `count` parameters: count for SGD
 * with momentum, 0 for SGD without, 2 * count for AdamW (m, then v). Allocate it on the device and zero
 * it before the first step; it holds everything the optimizer remembers, so checkpoint it with the
 * weights. HCRT_ERR_INVALID_ARG for bad params or a count whose bytes overflow. */
HCRT_EXPORT hcrt_status_t hcrt_optim_state_count(const hcrt_optim_params_t *params, size_t count, size_t *state_count);

/*
 * One optimizer update of `count` f32 parameters in place, from their gradients, with the optimizer
 * state hcrt_optim_state_count() sized (NULL when that is 0). param, grad and state must not overlap.
 * Every hyper-parameter is checked (finite, in range), naming the field ("params->beta2").
 */
HCRT_EXPORT hcrt_status_t hcrt_compute_optim_step(hcrt_device_t *device, const hcrt_optim_params_t *params,
                                                  float *param, const float *grad, float *state, size_t count,
                                                  hcrt_stream_t *stream);

/* dst[i] = src[i] converted between HCRT_F32, HCRT_F16 and HCRT_BF16, for i < count: widening is exact,
 * narrowing rounds to nearest even (overflow gives infinity, NaN a quiet NaN of the same sign), the same
 * conversions as hcrt's reductions. For mixed precision: keep f32 master weights, cast copies to f16 or
 * bf16 for the gemm. dst may be src when the dtypes are equal (nothing to do); otherwise no overlap. */
HCRT_EXPORT hcrt_status_t hcrt_compute_cast(hcrt_device_t *device, void *dst, hcrt_dtype_t dst_dtype, const void *src,
                                            hcrt_dtype_t src_dtype, size_t count, hcrt_stream_t *stream);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_COMPUTE_H */
