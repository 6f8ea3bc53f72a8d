/*
 * backends/gpu/gpu_compute.cuh - the compute extension's kernels of the cuda and hip plugins: a tiled gemm
 * (hip's only gemm, cuda's when cuBLAS cannot be loaded), bias add, ReLU and its gradient, softmax
 * cross-entropy, column sums, the optimizer updates and casts. Included by cuda_kernels.cu and
 * hip_kernels.hip after gpu_kernels.cuh, which defines the launch helpers and conventions used here.
 *
 * What matches the host implementation (kernels/host_compute.c) bit for bit, and why:
 *  - element-wise ops, the optimizers and casts: the same IEEE operations per element
 *    (gpu_compute_elem.cuh);
 *  - column sums: one thread per column adds the rows in ascending order from +0, the host's chain;
 *  - the tiled gemm: each thread owns its output elements and runs their fused multiply-add chains over k
 *    in ascending order from +0, then alpha * sum (+ beta * c), the host's formula exactly;
 *  - softmax cross-entropy does not: the row's max and sum are tree reductions and expf/logf are the
 *    vendor's (within the tolerance of tests/common/compute_ref.h). It runs as one block that walks the
 *    rows in order and adds the row losses in f64, so it is still deterministic run to run and needs no
 *    scratch memory; a training step's softmax is small next to its gemms.
 */
#include "gpu_compute_elem.cuh"

namespace
{

/* ---- gemm ---------------------------------------------------------------------------------------- */

const int kGemmTile = 64;  /* output tile of a block: 64 x 64 */
const int kGemmK = 16;     /* k per shared-memory step */
const int kGemmThread = 4; /* each of the 16 x 16 threads computes 4 x 4 elements */

/* op(a)(i, p) or op(b)(p, j) widened to f32; 0 outside the matrix. */
__device__ __forceinline__ float gemm_load(const void *m, bool trans, size_t row, size_t col, size_t rows,
                                           size_t cols, size_t ld, int dtype)
{
    if (row >= rows || col >= cols)
        return 0.0f;
    const size_t at = trans ? col * ld + row : row * ld + col;
    return cast_load(m, at, dtype);
}

__global__ void gemm_kernel(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const void *a, size_t lda,
                            const void *b, size_t ldb, float beta, float *c, size_t ldc, int dtype)
{
    __shared__ float as[kGemmK][kGemmTile + 1]; /* as[p][i]: +1 staggers the banks */
    __shared__ float bs[kGemmK][kGemmTile + 1]; /* bs[p][j] */
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const size_t i0 = (size_t)blockIdx.y * kGemmTile, j0 = (size_t)blockIdx.x * kGemmTile;
    float acc[kGemmThread][kGemmThread];
    for (int r = 0; r < kGemmThread; r++)
        for (int s = 0; s < kGemmThread; s++)
            acc[r][s] = 0.0f;
    for (size_t p0 = 0; p0 < k; p0 += kGemmK) {
        /* 256 threads load the 64 x 16 slice of op(a) and the 16 x 64 slice of op(b), 4 elements each */
        for (int e = tid; e < kGemmTile * kGemmK; e += 256) {
            const int p = e % kGemmK, i = e / kGemmK;
            as[p][i] = gemm_load(a, ta, i0 + i, p0 + p, m, k, lda, dtype);
            const int j = e % kGemmTile, q = e / kGemmTile;
            bs[q][j] = gemm_load(b, tb, p0 + q, j0 + j, k, n, ldb, dtype);
        }
        __syncthreads();
        const int kk = k - p0 < (size_t)kGemmK ? (int)(k - p0) : kGemmK;
        for (int p = 0; p < kk; p++)
            for (int r = 0; r < kGemmThread; r++) {
                const float x = as[p][ty * kGemmThread + r];
                for (int s = 0; s < kGemmThread; s++)
                    acc[r][s] = fmaf(x, bs[p][tx * kGemmThread + s], acc[r][s]);
            }
        __syncthreads();
    }
    for (int r = 0; r < kGemmThread; r++)
        for (int s = 0; s < kGemmThread; s++) {
            const size_t i = i0 + ty * kGemmThread + r, j = j0 + tx * kGemmThread + s;
            if (i >= m || j >= n)
                continue;
            float v = alpha * acc[r][s];
            if (beta != 0.0f)
                v = v + beta * c[i * ldc + j];
            c[i * ldc + j] = v;
        }
}

/* ---- element-wise --------------------------------------------------------------------------------- */

__global__ void bias_add_kernel(float *y, const float *x, const float *bias, size_t rows, size_t cols)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x, n = rows * cols;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = x[i] + bias[i % cols];
}

__global__ void relu_kernel(float *y, const float *x, size_t count)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        y[i] = relu_elem(x[i]);
}

__global__ void relu_backward_kernel(float *dx, const float *dy, const float *act, size_t count)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        dx[i] = relu_backward_elem(dy[i], act[i]);
}

__global__ void col_sum_kernel(float *out, const float *x, size_t rows, size_t cols, bool accumulate)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t j = (size_t)blockIdx.x * blockDim.x + threadIdx.x; j < cols; j += stride) {
        float s = 0.0f;
        for (size_t r = 0; r < rows; r++)
            s = s + x[r * cols + j];
        out[j] = accumulate ? out[j] + s : s;
    }
}

__global__ void optim_kernel(hcrt_backend_optim_t o, float *param, const float *grad, float *state, size_t count)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        if (o.kind == HCRT_OPTIM_ADAMW)
            adamw_elem(o, &param[i], grad[i], &state[i], &state[count + i]);
        else
            sgd_elem(o, &param[i], grad[i], state ? &state[i] : NULL);
    }
}

__global__ void cast_kernel(void *dst, int dst_dtype, const void *src, int src_dtype, size_t count)
{
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
        cast_elem(dst, dst_dtype, src, src_dtype, i);
}

/* ---- softmax cross-entropy ---------------------------------------------------------------------- */

const unsigned kSoftmaxThreads = 256;

/* Block-wide reduction of one value per thread (max or sum), in a fixed tree order. */
__device__ float block_reduce(float v, float *sh, bool is_max)
{
    const unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned w = kSoftmaxThreads / 2; w > 0; w /= 2) {
        if (t < w) {
            const float o = sh[t + w];
            sh[t] = is_max ? (o > sh[t] || o != o ? o : sh[t]) : sh[t] + o;
        }
        __syncthreads();
    }
    const float r = sh[0];
    __syncthreads();
    return r;
}

/* One block walks the rows in order: max, exp and sum over the row by all threads, then the gradient;
 * thread 0 adds the row losses in f64. A label out of range makes the row's loss and gradient NaN. */
__global__ void softmax_xent_kernel(const float *logits, const int32_t *labels, size_t rows, size_t classes,
                                    float *loss, float *dlogits, bool accumulate)
{
    __shared__ float sh[kSoftmaxThreads];
    const unsigned t = threadIdx.x;
    double total = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *z = logits + r * classes;
        const int32_t label = labels[r];
        const bool ok = label >= 0 && (size_t)label < classes;
        const float zl = ok ? z[label] : NAN; /* read before dlogits (maybe the logits) is written */
        float mx = -INFINITY;
        for (size_t j = t; j < classes; j += kSoftmaxThreads)
            mx = z[j] > mx || z[j] != z[j] ? z[j] : mx;
        mx = block_reduce(mx, sh, true);
        float s = 0.0f;
        for (size_t j = t; j < classes; j += kSoftmaxThreads)
            s += expf(z[j] - mx);
        s = block_reduce(s, sh, false);
        if (dlogits) {
            float *d = dlogits + r * classes;
            for (size_t j = t; j < classes; j += kSoftmaxThreads) {
                const float p = expf(z[j] - mx) / s;
                d[j] = ok ? p - (j == (size_t)label ? 1.0f : 0.0f) : NAN;
            }
        }
        __syncthreads(); /* every thread has read z[label] and the row before the next row starts */
        if (t == 0)
            total += (double)((logf(s) + mx) - zl);
    }
    if (t == 0 && loss) {
        const float sum = (float)total;
        *loss = accumulate ? *loss + sum : sum;
    }
}

} /* namespace */

/*
 * The compute launchers (hcrt/backend_compute.h semantics; arguments already checked by the caller).
 * Each returns the vendor error code of its launch (0 on success); errors during execution show at the
 * next synchronisation.
 */
extern "C" int HCRT_GPU_SYM(launch_gemm)(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                                         const void *a, size_t lda, const void *b, size_t ldb, float beta, float *c,
                                         size_t ldc, int dtype, void *stream)
{
    if (m == 0 || n == 0)
        return 0;
    const dim3 grid((unsigned)((n + kGemmTile - 1) / kGemmTile), (unsigned)((m + kGemmTile - 1) / kGemmTile));
    gemm_kernel<<<grid, dim3(16, 16), 0, (gpuStream_t)stream>>>(trans_a != 0, trans_b != 0, m, n, k, alpha, a, lda, b,
                                                                ldb, beta, c, ldc, dtype);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

extern "C" int HCRT_GPU_SYM(launch_bias_add)(float *y, const float *x, const float *bias, size_t rows, size_t cols,
                                             void *stream, int max_blocks)
{
    if (rows == 0 || cols == 0)
        return 0;
    bias_add_kernel<<<grid_for(rows * cols, max_blocks), kThreads, 0, (gpuStream_t)stream>>>(y, x, bias, rows,
                                                                                                   cols);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

extern "C" int HCRT_GPU_SYM(launch_relu)(float *y, const float *x, size_t count, void *stream, int max_blocks)
{
    if (count == 0)
        return 0;
    relu_kernel<<<grid_for(count, max_blocks), kThreads, 0, (gpuStream_t)stream>>>(y, x, count);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

extern "C" int HCRT_GPU_SYM(launch_relu_backward)(float *dx, const float *dy, const float *act, size_t count,
                                                  void *stream, int max_blocks)
{
    if (count == 0)
        return 0;
    relu_backward_kernel<<<grid_for(count, max_blocks), kThreads, 0, (gpuStream_t)stream>>>(dx, dy, act, count);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

extern "C" int HCRT_GPU_SYM(launch_softmax_xent)(const float *logits, const int32_t *labels, size_t rows,
                                                 size_t classes, float *loss, float *dlogits, int accumulate,
                                                 void *stream)
{
    softmax_xent_kernel<<<1, kSoftmaxThreads, 0, (gpuStream_t)stream>>>(logits, labels, rows, classes, loss, dlogits,
                                                                        accumulate != 0);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

extern "C" int HCRT_GPU_SYM(launch_col_sum)(float *out, const float *x, size_t rows, size_t cols, int accumulate,
                                            void *stream, int max_blocks)
{
    if (cols == 0)
        return 0;
    col_sum_kernel<<<grid_for(cols, max_blocks), kThreads, 0, (gpuStream_t)stream>>>(out, x, rows, cols,
                                                                                          accumulate != 0);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

extern "C" int HCRT_GPU_SYM(launch_optim)(const hcrt_backend_optim_t *opt, float *param, const float *grad,
                                          float *state, size_t count, void *stream, int max_blocks)
{
    if (count == 0)
        return 0;
    optim_kernel<<<grid_for(count, max_blocks), kThreads, 0, (gpuStream_t)stream>>>(*opt, param, grad, state,
                                                                                         count);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}

extern "C" int HCRT_GPU_SYM(launch_cast)(void *dst, int dst_dtype, const void *src, int src_dtype, size_t count,
                                         void *stream, int max_blocks)
{
    if (count == 0)
        return 0;
    cast_kernel<<<grid_for(count, max_blocks), kThreads, 0, (gpuStream_t)stream>>>(dst, dst_dtype, src,
                                                                                        src_dtype, count);
    return (int)HCRT_GPU_LAUNCH_ERROR();
}
