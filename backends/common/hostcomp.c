/*
 * backends/common/hostcomp.c - the compute table of the host-run backends (cpu, sim); see hostcomp.h.
 *
 * The runtime checks every argument before it calls a backend, but a plugin's table may be called by
 * anyone holding it (tests do), so the ops check again what would otherwise crash: NULL pointers with
 * nonzero sizes, invalid dtypes and optimizer kinds, byte sizes that overflow. The finer checks
 * (alignment, overlaps, leading dimensions) stay with the runtime, which has the user's names for them.
 */
#include <stdio.h>
#include <string.h>

#include "backends/common/hostcomp.h"
#include "backends/common/workqueue.h"
#include "kernels/host_compute.h"

/* ---- building ops ------------------------------------------------------------------------------- */

static void add_operand(hcrt__hc_op_t *op, const char *name, const void *p, size_t bytes)
{
    const size_t i = op->noperands++;
    op->ptr[i] = (void *)p;
    op->bytes[i] = bytes;
    op->name[i] = name;
}

/* Bytes spanned by rows x cols elements of es bytes with leading dimension ld; SIZE_MAX on overflow. */
static size_t span_bytes(size_t rows, size_t cols, size_t ld, size_t es)
{
    if (rows == 0 || cols == 0)
        return 0;
    const size_t elems_max = SIZE_MAX / es;
    if (ld < cols || rows - 1 > (elems_max - cols) / ld)
        return SIZE_MAX;
    return ((rows - 1) * ld + cols) * es;
}

static size_t dtype_bytes(hcrt_dtype_t t)
{
    return t == HCRT_F32 ? 4 : (t == HCRT_F16 || t == HCRT_BF16) ? 2 : 0;
}

/* Checks the operands an op was given (NULL with bytes, overflowing sizes) and submits it. */
static hcrt_status_t submit(void *state, int dev, hcrt__hc_op_t *op, hcrt_backend_stream_t *stream)
{
    const hcrt__hc_host_t *host = state;
    char msg[160];
    for (size_t i = 0; i < op->noperands; i++) {
        if (op->bytes[i] == SIZE_MAX) {
            snprintf(msg, sizeof(msg), "%s: argument '%s': size overflows the address space", op->what, op->name[i]);
            return host->fail(state, dev, HCRT_ERR_INVALID_ARG, msg);
        }
        if (op->bytes[i] > 0 && op->ptr[i] == NULL) {
            snprintf(msg, sizeof(msg), "%s: argument '%s' is NULL", op->what, op->name[i]);
            return host->fail(state, dev, HCRT_ERR_INVALID_ARG, msg);
        }
    }
    return host->submit(state, dev, op, stream);
}

static hcrt_status_t bad_arg(void *state, int dev, const char *what, const char *detail)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "%s: %s", what, detail);
    return ((const hcrt__hc_host_t *)state)->fail(state, dev, HCRT_ERR_INVALID_ARG, msg);
}

/* ---- the table's ops ------------------------------------------------------------------------------ */

static hcrt_status_t hc_gemm(void *state, int dev, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                             float alpha, const void *a, size_t lda, const void *b, size_t ldb, float beta, float *c,
                             size_t ldc, hcrt_dtype_t dtype, hcrt_backend_stream_t *stream)
{
    const size_t es = dtype_bytes(dtype);
    if (es == 0)
        return bad_arg(state, dev, "gemm", "argument 'dtype' is not f32, f16 or bf16");
    hcrt__hc_op_t op = {.kind = HCRT__HC_GEMM,
                        .what = "gemm",
                        .rows = m,
                        .cols = n,
                        .inner = k,
                        .lda = lda,
                        .ldb = ldb,
                        .ldc = ldc,
                        .trans_a = trans_a,
                        .trans_b = trans_b,
                        .alpha = alpha,
                        .beta = beta,
                        .dtype = dtype};
    const size_t used = m && n ? 1 : 0;
    add_operand(&op, "a", a, span_bytes(used * (trans_a ? k : m), trans_a ? m : k, lda, es));
    add_operand(&op, "b", b, span_bytes(used * (trans_b ? n : k), trans_b ? k : n, ldb, es));
    add_operand(&op, "c", c, span_bytes(m, n, ldc, 4));
    return submit(state, dev, &op, stream);
}

static hcrt_status_t hc_bias_add(void *state, int dev, float *y, const float *x, const float *bias, size_t rows,
                                 size_t cols, hcrt_backend_stream_t *stream)
{
    hcrt__hc_op_t op = {.kind = HCRT__HC_BIAS_ADD, .what = "bias_add", .rows = rows, .cols = cols};
    add_operand(&op, "y", y, span_bytes(rows, cols, cols, 4));
    add_operand(&op, "x", x, span_bytes(rows, cols, cols, 4));
    add_operand(&op, "bias", bias, span_bytes(rows ? 1 : 0, cols, cols, 4));
    return submit(state, dev, &op, stream);
}

static hcrt_status_t hc_relu(void *state, int dev, float *y, const float *x, size_t count,
                             hcrt_backend_stream_t *stream)
{
    hcrt__hc_op_t op = {.kind = HCRT__HC_RELU, .what = "relu", .rows = count};
    add_operand(&op, "y", y, span_bytes(1, count, count, 4));
    add_operand(&op, "x", x, span_bytes(1, count, count, 4));
    return submit(state, dev, &op, stream);
}

static hcrt_status_t hc_relu_backward(void *state, int dev, float *dx, const float *dy, const float *act, size_t count,
                                      hcrt_backend_stream_t *stream)
{
    hcrt__hc_op_t op = {.kind = HCRT__HC_RELU_BACKWARD, .what = "relu_backward", .rows = count};
    add_operand(&op, "dx", dx, span_bytes(1, count, count, 4));
    add_operand(&op, "dy", dy, span_bytes(1, count, count, 4));
    add_operand(&op, "act", act, span_bytes(1, count, count, 4));
    return submit(state, dev, &op, stream);
}

static hcrt_status_t hc_softmax_xent(void *state, int dev, const float *logits, const int32_t *labels, size_t rows,
                                     size_t classes, float *loss, float *dlogits, bool accumulate,
                                     hcrt_backend_stream_t *stream)
{
    if (!loss && !dlogits)
        return bad_arg(state, dev, "softmax_xent", "arguments 'loss' and 'dlogits' are both NULL");
    if (rows > 0 && classes == 0)
        return bad_arg(state, dev, "softmax_xent", "argument 'classes' is 0");
    hcrt__hc_op_t op = {
        .kind = HCRT__HC_SOFTMAX_XENT, .what = "softmax_xent", .rows = rows, .cols = classes, .accumulate = accumulate};
    add_operand(&op, "logits", logits, span_bytes(rows, classes, classes, 4));
    add_operand(&op, "labels", labels, span_bytes(1, rows, rows, 4));
    add_operand(&op, "loss", loss, loss ? 4 : 0);
    add_operand(&op, "dlogits", dlogits, dlogits ? span_bytes(rows, classes, classes, 4) : 0);
    return submit(state, dev, &op, stream);
}

static hcrt_status_t hc_col_sum(void *state, int dev, float *out, const float *x, size_t rows, size_t cols,
                                bool accumulate, hcrt_backend_stream_t *stream)
{
    hcrt__hc_op_t op = {
        .kind = HCRT__HC_COL_SUM, .what = "col_sum", .rows = rows, .cols = cols, .accumulate = accumulate};
    add_operand(&op, "out", out, span_bytes(1, cols, cols, 4));
    add_operand(&op, "x", x, span_bytes(rows, cols, cols, 4));
    return submit(state, dev, &op, stream);
}

static hcrt_status_t hc_optim_step(void *state, int dev, const hcrt_backend_optim_t *opt, float *param,
                                   const float *grad, float *opt_state, size_t count, hcrt_backend_stream_t *stream)
{
    if (!opt || opt->struct_size < sizeof(*opt))
        return bad_arg(state, dev, "optim_step", "argument 'opt' is NULL or too short");
    if (opt->kind != HCRT_OPTIM_SGD && opt->kind != HCRT_OPTIM_ADAMW)
        return bad_arg(state, dev, "optim_step", "argument 'opt->kind' is not an hcrt_optimizer_t");
    const size_t nstate = opt->kind == HCRT_OPTIM_ADAMW ? 2 : opt->momentum != 0.0f ? 1 : 0;
    hcrt__hc_op_t op = {.kind = HCRT__HC_OPTIM_STEP, .what = "optim_step", .rows = count, .optim = *opt};
    add_operand(&op, "param", param, span_bytes(1, count, count, 4));
    add_operand(&op, "grad", grad, span_bytes(1, count, count, 4));
    add_operand(&op, "state", opt_state, span_bytes(nstate, count, count, 4));
    return submit(state, dev, &op, stream);
}

static hcrt_status_t hc_cast(void *state, int dev, void *dst, hcrt_dtype_t dst_dtype, const void *src,
                             hcrt_dtype_t src_dtype, size_t count, hcrt_backend_stream_t *stream)
{
    const size_t des = dtype_bytes(dst_dtype), ses = dtype_bytes(src_dtype);
    if (des == 0 || ses == 0)
        return bad_arg(state, dev, "cast", "a dtype is not f32, f16 or bf16");
    hcrt__hc_op_t op = {.kind = HCRT__HC_CAST, .what = "cast", .rows = count, .dtype = dst_dtype, .dtype2 = src_dtype};
    add_operand(&op, "dst", dst, span_bytes(1, count, count, des));
    add_operand(&op, "src", src, span_bytes(1, count, count, ses));
    return submit(state, dev, &op, stream);
}

const hcrt_backend_compute_v1_t hcrt__hc_table = {
    .struct_size = sizeof(hcrt_backend_compute_v1_t),
    .version = HCRT_BACKEND_COMPUTE_VERSION,
    .gemm = hc_gemm,
    .bias_add = hc_bias_add,
    .relu = hc_relu,
    .relu_backward = hc_relu_backward,
    .softmax_xent = hc_softmax_xent,
    .col_sum = hc_col_sum,
    .optim_step = hc_optim_step,
    .cast = hc_cast,
};

/* ---- running ops ---------------------------------------------------------------------------------- */

hcrt_status_t hcrt__hc_exec(void *arg, char *msg)
{
    const hcrt__hc_op_t *o = arg;
    void *const *p = o->ptr;
    hcrt_status_t status = HCRT_OK;
    size_t bad_row = 0;
    switch (o->kind) {
    case HCRT__HC_GEMM:
        status = hcrt__host_gemm(o->trans_a, o->trans_b, o->rows, o->cols, o->inner, o->alpha, p[0], o->lda, p[1],
                                 o->ldb, o->beta, p[2], o->ldc, o->dtype);
        if (status != HCRT_OK)
            snprintf(msg, HCRT__WQ_MSG_LEN, "gemm: %s",
                     status == HCRT_ERR_NO_MEMORY ? "out of host memory for the packing buffers" : "invalid arguments");
        break;
    case HCRT__HC_BIAS_ADD:
        hcrt__host_bias_add(p[0], p[1], p[2], o->rows, o->cols);
        break;
    case HCRT__HC_RELU:
        hcrt__host_relu(p[0], p[1], o->rows);
        break;
    case HCRT__HC_RELU_BACKWARD:
        hcrt__host_relu_backward(p[0], p[1], p[2], o->rows);
        break;
    case HCRT__HC_SOFTMAX_XENT:
        status = hcrt__host_softmax_xent(p[0], p[1], o->rows, o->cols, p[2], p[3], o->accumulate, &bad_row);
        if (status != HCRT_OK)
            snprintf(msg, HCRT__WQ_MSG_LEN, "softmax_xent: labels[%zu] is %d, outside [0, %zu)", bad_row,
                     (int)((const int32_t *)p[1])[bad_row], o->cols);
        break;
    case HCRT__HC_COL_SUM:
        hcrt__host_col_sum(p[0], p[1], o->rows, o->cols, o->accumulate);
        break;
    case HCRT__HC_OPTIM_STEP:
        hcrt__host_optim_step(&o->optim, p[0], p[1], p[2], o->rows);
        break;
    case HCRT__HC_CAST:
        status = hcrt__host_cast(p[0], o->dtype, p[1], o->dtype2, o->rows);
        if (status != HCRT_OK)
            snprintf(msg, HCRT__WQ_MSG_LEN, "cast: invalid dtype");
        break;
    }
    return status;
}
