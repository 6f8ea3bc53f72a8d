/*
 * backends/gpu/gpu_compute.c - the compute extension (hcrt/backend_compute.h) of the cuda and hip plugins
 * (built once per vendor, see gpu_plugin.h): argument checks, the stream, then the kernels of
 * gpu_compute.cuh, and for gemm the vendor BLAS where the plugin has one (cuda: cuBLAS, loaded on first
 * use by cuda_blas.c; hip: none, Debian has no hipBLAS), else hcrt's tiled gemm kernel.
 *
 * Besides what every plugin checks (NULL pointers, dtypes), a GPU plugin refuses pointers not aligned to
 * their element: a misaligned access is a sticky error that would lose the whole device context.
 */
#include <stdint.h>

#include "gpu_plugin.h"

static size_t gpu_compute_dtype_size(hcrt_dtype_t t)
{
    return t == HCRT_F32 ? 4 : (t == HCRT_F16 || t == HCRT_BF16) ? 2 : 0;
}

/* A pointer operand with n elements of es bytes: NULL or misaligned is an argument error. */
static hcrt_status_t gpu_operand(const char *op, const char *name, const void *p, size_t n, size_t es)
{
    if (n == 0)
        return HCRT_OK;
    if (p == NULL)
        return hcrt_gpu_arg_error("%s: argument '%s' is NULL", op, name);
    if ((uintptr_t)p % es != 0)
        return hcrt_gpu_arg_error("%s: argument '%s' (%p) is not aligned to its %zu-byte elements", op, name, p, es);
    return HCRT_OK;
}

/* rows * cols without overflow. */
static hcrt_status_t gpu_elems(const char *op, size_t rows, size_t cols, size_t *n)
{
    if (cols != 0 && rows > SIZE_MAX / 8 / cols)
        return hcrt_gpu_arg_error("%s: %zu x %zu elements overflow the address space", op, rows, cols);
    *n = rows * cols;
    return HCRT_OK;
}

/* Resolves the stream and makes dev current: the start of every op. */
static hcrt_status_t gpu_compute_enter(gpu_state_t *st, int dev, hcrt_backend_stream_t *stream, const char *op,
                                       gpuStream_t *s, bool *sync)
{
    hcrt_status_t status;
    if (!st)
        return hcrt_gpu_arg_error("%s: argument 'state' is NULL", op);
    if ((status = hcrt_gpu_stream_of(dev, stream, op, s, sync)) != HCRT_OK)
        return status;
    return hcrt_gpu_enter(st, dev);
}

/* The end of every op: a failed launch, or waiting for a synchronous one. */
static hcrt_status_t gpu_compute_leave(gpu_state_t *st, int dev, int e, const char *what, gpuStream_t s, bool sync)
{
    if (e != (int)gpuSuccess)
        return hcrt_gpu_fail(st, dev, (gpuError_t)e, what);
    return hcrt_gpu_finish(st, dev, s, sync);
}

static hcrt_status_t gpu_gemm(void *state, int dev, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                              float alpha, const void *a, size_t lda, const void *b, size_t ldb, float beta, float *c,
                              size_t ldc, hcrt_dtype_t dtype, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    const size_t es = gpu_compute_dtype_size(dtype);
    if (es == 0)
        return hcrt_gpu_arg_error("gemm: argument 'dtype' (%d) is not f32, f16 or bf16", (int)dtype);
    const size_t used = m && n && k ? 1 : 0;
    if ((status = gpu_operand("gemm", "a", a, used, es)) != HCRT_OK ||
        (status = gpu_operand("gemm", "b", b, used, es)) != HCRT_OK ||
        (status = gpu_operand("gemm", "c", c, m && n ? 1 : 0, 4)) != HCRT_OK)
        return status;
    if (m == 0 || n == 0)
        return HCRT_OK;
    if ((status = gpu_compute_enter(st, dev, stream, "gemm", &s, &sync)) != HCRT_OK)
        return status;
    status = hcrt_gpu_blas_gemm(st, dev, s, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, dtype);
    if (status == HCRT_OK)
        return hcrt_gpu_finish(st, dev, s, sync);
    if (status != HCRT_ERR_NOT_SUPPORTED)
        return status;
    int e = HCRT_GPU_SYM(launch_gemm)(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, (int)dtype,
                                      (void *)s);
    return gpu_compute_leave(st, dev, e, "gemm kernel launch", s, sync);
}

static hcrt_status_t gpu_bias_add(void *state, int dev, float *y, const float *x, const float *bias, size_t rows,
                                  size_t cols, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    size_t n = 0;
    if ((status = gpu_elems("bias_add", rows, cols, &n)) != HCRT_OK ||
        (status = gpu_operand("bias_add", "y", y, n, 4)) != HCRT_OK ||
        (status = gpu_operand("bias_add", "x", x, n, 4)) != HCRT_OK ||
        (status = gpu_operand("bias_add", "bias", bias, n ? cols : 0, 4)) != HCRT_OK)
        return status;
    if (n == 0)
        return HCRT_OK;
    if ((status = gpu_compute_enter(st, dev, stream, "bias_add", &s, &sync)) != HCRT_OK)
        return status;
    int e = HCRT_GPU_SYM(launch_bias_add)(y, x, bias, rows, cols, (void *)s, st->devs[dev].max_blocks);
    return gpu_compute_leave(st, dev, e, "bias_add kernel launch", s, sync);
}

static hcrt_status_t gpu_relu(void *state, int dev, float *y, const float *x, size_t count,
                              hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    if ((status = gpu_operand("relu", "y", y, count, 4)) != HCRT_OK ||
        (status = gpu_operand("relu", "x", x, count, 4)) != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    if ((status = gpu_compute_enter(st, dev, stream, "relu", &s, &sync)) != HCRT_OK)
        return status;
    int e = HCRT_GPU_SYM(launch_relu)(y, x, count, (void *)s, st->devs[dev].max_blocks);
    return gpu_compute_leave(st, dev, e, "relu kernel launch", s, sync);
}

static hcrt_status_t gpu_relu_backward(void *state, int dev, float *dx, const float *dy, const float *act, size_t count,
                                       hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    if ((status = gpu_operand("relu_backward", "dx", dx, count, 4)) != HCRT_OK ||
        (status = gpu_operand("relu_backward", "dy", dy, count, 4)) != HCRT_OK ||
        (status = gpu_operand("relu_backward", "act", act, count, 4)) != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    if ((status = gpu_compute_enter(st, dev, stream, "relu_backward", &s, &sync)) != HCRT_OK)
        return status;
    int e = HCRT_GPU_SYM(launch_relu_backward)(dx, dy, act, count, (void *)s, st->devs[dev].max_blocks);
    return gpu_compute_leave(st, dev, e, "relu_backward kernel launch", s, sync);
}

static hcrt_status_t gpu_softmax_xent(void *state, int dev, const float *logits, const int32_t *labels, size_t rows,
                                      size_t classes, float *loss, float *dlogits, bool accumulate,
                                      hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    size_t n = 0;
    if (!loss && !dlogits)
        return hcrt_gpu_arg_error("softmax_xent: arguments 'loss' and 'dlogits' are both NULL");
    if (rows > 0 && classes == 0)
        return hcrt_gpu_arg_error("softmax_xent: argument 'classes' is 0");
    if ((status = gpu_elems("softmax_xent", rows, classes, &n)) != HCRT_OK ||
        (status = gpu_operand("softmax_xent", "logits", logits, n, 4)) != HCRT_OK ||
        (status = gpu_operand("softmax_xent", "labels", labels, rows, 4)) != HCRT_OK ||
        (status = gpu_operand("softmax_xent", "loss", loss, loss ? 1 : 0, 4)) != HCRT_OK ||
        (status = gpu_operand("softmax_xent", "dlogits", dlogits, dlogits ? n : 0, 4)) != HCRT_OK)
        return status;
    if ((status = gpu_compute_enter(st, dev, stream, "softmax_xent", &s, &sync)) != HCRT_OK)
        return status;
    int e = HCRT_GPU_SYM(launch_softmax_xent)(logits, labels, rows, classes, loss, dlogits, accumulate, (void *)s);
    return gpu_compute_leave(st, dev, e, "softmax_xent kernel launch", s, sync);
}

static hcrt_status_t gpu_col_sum(void *state, int dev, float *out, const float *x, size_t rows, size_t cols,
                                 bool accumulate, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    size_t n = 0;
    if ((status = gpu_elems("col_sum", rows, cols, &n)) != HCRT_OK ||
        (status = gpu_operand("col_sum", "out", out, cols, 4)) != HCRT_OK ||
        (status = gpu_operand("col_sum", "x", x, n, 4)) != HCRT_OK)
        return status;
    if (cols == 0)
        return HCRT_OK;
    if ((status = gpu_compute_enter(st, dev, stream, "col_sum", &s, &sync)) != HCRT_OK)
        return status;
    int e = HCRT_GPU_SYM(launch_col_sum)(out, x, rows, cols, accumulate, (void *)s, st->devs[dev].max_blocks);
    return gpu_compute_leave(st, dev, e, "col_sum kernel launch", s, sync);
}

static hcrt_status_t gpu_optim_step(void *state, int dev, const hcrt_backend_optim_t *opt, float *param,
                                    const float *grad, float *opt_state, size_t count, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    if (!opt || opt->struct_size < sizeof(*opt))
        return hcrt_gpu_arg_error("optim_step: argument 'opt' is NULL or too short");
    if (opt->kind != HCRT_OPTIM_SGD && opt->kind != HCRT_OPTIM_ADAMW)
        return hcrt_gpu_arg_error("optim_step: argument 'opt->kind' (%d) is not an hcrt_optimizer_t", (int)opt->kind);
    const bool need_state = opt->kind == HCRT_OPTIM_ADAMW || opt->momentum != 0.0f;
    if ((status = gpu_operand("optim_step", "param", param, count, 4)) != HCRT_OK ||
        (status = gpu_operand("optim_step", "grad", grad, count, 4)) != HCRT_OK ||
        (status = gpu_operand("optim_step", "state", opt_state, need_state ? count : 0, 4)) != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    if (count > SIZE_MAX / 8)
        return hcrt_gpu_arg_error("optim_step: argument 'count' (%zu) overflows the address space", count);
    if ((status = gpu_compute_enter(st, dev, stream, "optim_step", &s, &sync)) != HCRT_OK)
        return status;
    int e = HCRT_GPU_SYM(launch_optim)(opt, param, grad, need_state ? opt_state : NULL, count, (void *)s,
                                       st->devs[dev].max_blocks);
    return gpu_compute_leave(st, dev, e, "optim_step kernel launch", s, sync);
}

static hcrt_status_t gpu_cast(void *state, int dev, void *dst, hcrt_dtype_t dst_dtype, const void *src,
                              hcrt_dtype_t src_dtype, size_t count, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    gpuStream_t s;
    bool sync;
    hcrt_status_t status;
    const size_t des = gpu_compute_dtype_size(dst_dtype), ses = gpu_compute_dtype_size(src_dtype);
    if (des == 0 || ses == 0)
        return hcrt_gpu_arg_error("cast: argument '%s' is not f32, f16 or bf16", des == 0 ? "dst_dtype" : "src_dtype");
    if ((status = gpu_operand("cast", "dst", dst, count, des)) != HCRT_OK ||
        (status = gpu_operand("cast", "src", src, count, ses)) != HCRT_OK)
        return status;
    if (count == 0 || (dst == src && dst_dtype == src_dtype))
        return HCRT_OK;
    if (count > SIZE_MAX / 4)
        return hcrt_gpu_arg_error("cast: argument 'count' (%zu) overflows the address space", count);
    if ((status = gpu_compute_enter(st, dev, stream, "cast", &s, &sync)) != HCRT_OK)
        return status;
    int e =
        HCRT_GPU_SYM(launch_cast)(dst, (int)dst_dtype, src, (int)src_dtype, count, (void *)s, st->devs[dev].max_blocks);
    return gpu_compute_leave(st, dev, e, "cast kernel launch", s, sync);
}

const hcrt_backend_compute_v1_t hcrt_gpu_compute_table = {
    .struct_size = sizeof(hcrt_backend_compute_v1_t),
    .version = HCRT_BACKEND_COMPUTE_VERSION,
    .gemm = gpu_gemm,
    .bias_add = gpu_bias_add,
    .relu = gpu_relu,
    .relu_backward = gpu_relu_backward,
    .softmax_xent = gpu_softmax_xent,
    .col_sum = gpu_col_sum,
    .optim_step = gpu_optim_step,
    .cast = gpu_cast,
};
