/*
 * kernels/host_compute.c - the element-wise, row and column operations of the compute extension on host
 * memory: bias add, ReLU and its gradient, softmax cross-entropy, column sums, the optimizer updates and
 * dtype casts (the gemm is host_gemm.c). Contracts in host_compute.h.
 *
 * Like the reductions of host_kernels.c, the loops are compiled for baseline x86-64, x86-64-v3 and
 * x86-64-v4 from one C source and the loader picks one. That is safe for determinism because every loop
 * computes each output element from its own inputs with IEEE operations that are exactly rounded on every
 * path (add, multiply, divide, square root, fmaf); the one sequential sum of an op (a softmax row, a column
 * of col_sum) is written as a scalar chain the vectoriser keeps in order, across columns in col_sum.
 * Compiled with -ffp-contract=off: a * b + c is two roundings unless the code says fmaf().
 */
#include <math.h>
#include <string.h>

#include "kernels/host_compute.h"
#include "kernels/host_convert.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(HCRT_NO_CLONES)
#define HC_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define HC_CLONES
#endif

/* ---- exp and log ---------------------------------------------------------------------------------- */

/*
 * exp(x) = 2^n * exp(r) with n = rint(x / ln 2) and r = x - n ln 2 (ln 2 split in two so r is exact to
 * f32 precision), exp(r) on [-ln2/2, ln2/2] by Cephes' degree-6 polynomial, all with fmaf. Branch-free
 * (selects), so the softmax loop vectorises; results below 2^-126 are flushed to 0 (no probability of a
 * training step notices) and beyond FLT_MAX are +inf.
 */
static inline float exp_det(float x)
{
    const float lo = -87.33654475f, hi = 88.72283935546875f; /* exp(lo) = 2^-126; exp(hi) ~ FLT_MAX */
    const float xc = x < lo ? lo : x > hi ? hi : x;          /* NaN passes through both tests */
    float n = rintf(xc * 1.44269504088896341f);
    n = n != n ? 0.0f : n; /* NaN: any n, the result is replaced below (and (int32_t)NaN is undefined) */
    float r = fmaf(-n, 0.693359375f, xc);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float y = fmaf(p, r * r, r) + 1.0f;
    /* 2^n for n in [-126, 128]: 2^128 is not a float, so that one is 2^127 * 2 */
    const int32_t e = (int32_t)n + 127;
    y = y * bits_f32((uint32_t)(e > 254 ? 254 : e) << 23);
    y = e > 254 ? y * 2.0f : y;
    y = x < lo ? 0.0f : y;
    y = x > hi ? INFINITY : y;
    return x != x ? x : y;
}

/*
 * log(x) = e ln 2 + log(m) with x = m 2^e, m in [sqrt(1/2), sqrt(2)), log(1 + f) by Cephes' polynomial,
 * with fmaf. For positive normal x; 0 gives -inf, negatives and NaN give NaN, +inf gives +inf.
 */
static inline float log_det(float x)
{
    if (!(x > 0.0f))
        return x == 0.0f ? -INFINITY : NAN;
    if (x == INFINITY)
        return x;
    const uint32_t u = f32_bits(x);
    int32_t e = (int32_t)(u >> 23) - 126;
    float f = bits_f32((u & 0x007FFFFFu) | 0x3F000000u); /* in [0.5, 1) */
    if (f < 0.707106781186547524f) {
        e -= 1;
        f = f + f - 1.0f;
    } else {
        f = f - 1.0f;
    }
    const float z = f * f;
    float y = 7.0376836292e-2f;
    y = fmaf(y, f, -1.1514610310e-1f);
    y = fmaf(y, f, 1.1676998740e-1f);
    y = fmaf(y, f, -1.2420140846e-1f);
    y = fmaf(y, f, 1.4249322787e-1f);
    y = fmaf(y, f, -1.6668057665e-1f);
    y = fmaf(y, f, 2.0000714765e-1f);
    y = fmaf(y, f, -2.4999993993e-1f);
    y = fmaf(y, f, 3.3333331174e-1f);
    y = y * f * z;
    const float fe = (float)e;
    y = fmaf(fe, -2.12194440e-4f, y);
    y = fmaf(z, -0.5f, y);
    const float r = f + y;
    return fmaf(fe, 0.693359375f, r);
}

float hcrt__host_expf(float x)
{
    return exp_det(x);
}

float hcrt__host_logf(float x)
{
    return log_det(x);
}

/* ---- element-wise ---------------------------------------------------------------------------------- */

/* (The cloned loops are static, with plain entry points: gcc gives the resolver of a non-static clone
 * default visibility, which would export it from libhcrt.) */

HC_CLONES static void bias_add_loop(float *y, const float *x, const float *bias, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * cols;
        const float *xr = x + r * cols;
        for (size_t j = 0; j < cols; j++)
            yr[j] = xr[j] + bias[j];
    }
}

void hcrt__host_bias_add(float *y, const float *x, const float *bias, size_t rows, size_t cols)
{
    bias_add_loop(y, x, bias, rows, cols);
}

HC_CLONES static void relu_loop(float *y, const float *x, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const float v = x[i];
        y[i] = v > 0.0f || v != v ? v : 0.0f;
    }
}

void hcrt__host_relu(float *y, const float *x, size_t count)
{
    relu_loop(y, x, count);
}

HC_CLONES static void relu_backward_loop(float *dx, const float *dy, const float *act, size_t count)
{
    for (size_t i = 0; i < count; i++)
        dx[i] = act[i] > 0.0f ? dy[i] : 0.0f;
}

void hcrt__host_relu_backward(float *dx, const float *dy, const float *act, size_t count)
{
    relu_backward_loop(dx, dy, act, count);
}

/* ---- softmax cross-entropy ------------------------------------------------------------------------- */

/* e[j] = exp(z[j] - mx) for one row; e may be z. */
HC_CLONES static void row_exp(float *e, const float *z, size_t n, float mx)
{
    for (size_t j = 0; j < n; j++)
        e[j] = exp_det(z[j] - mx);
}

HC_CLONES static void row_div(float *d, size_t n, float s)
{
    for (size_t j = 0; j < n; j++)
        d[j] = d[j] / s;
}

hcrt_status_t hcrt__host_softmax_xent(const float *logits, const int32_t *labels, size_t rows, size_t classes,
                                      float *loss, float *dlogits, bool accumulate, size_t *bad_row)
{
    double total = 0.0;
    for (size_t r = 0; r < rows; r++) {
        const float *z = logits + r * classes;
        const int32_t label = labels[r];
        if (label < 0 || (size_t)label >= classes) {
            if (bad_row)
                *bad_row = r;
            return HCRT_ERR_INVALID_ARG;
        }
        const float zl = z[label]; /* before dlogits (which may be the logits) is written */
        float mx = z[0];
        bool nan = false;
        for (size_t j = 0; j < classes; j++) {
            mx = z[j] > mx ? z[j] : mx;
            nan = nan || z[j] != z[j];
        }
        if (nan)
            mx = NAN;
        float s = 0.0f;
        if (dlogits) {
            float *d = dlogits + r * classes;
            row_exp(d, z, classes, mx);
            for (size_t j = 0; j < classes; j++)
                s = s + d[j];
            row_div(d, classes, s);
            d[label] = d[label] - 1.0f;
        } else {
            for (size_t j = 0; j < classes; j++)
                s = s + exp_det(z[j] - mx);
        }
        const float row_loss = (log_det(s) + mx) - zl;
        total += (double)row_loss;
    }
    if (loss) {
        const float sum = (float)total;
        *loss = accumulate ? *loss + sum : sum;
    }
    return HCRT_OK;
}

/* ---- column sums ------------------------------------------------------------------------------------- */

/* Columns are summed in blocks of COLS_BLOCK (one stack line of partial sums); each column's sum is the
 * chain over rows ascending from +0 whatever the block. */
#define COLS_BLOCK 512

HC_CLONES static void col_sum_loop(float *out, const float *x, size_t rows, size_t cols, bool accumulate)
{
    float acc[COLS_BLOCK];
    for (size_t j0 = 0; j0 < cols; j0 += COLS_BLOCK) {
        const size_t nb = cols - j0 < COLS_BLOCK ? cols - j0 : COLS_BLOCK;
        for (size_t j = 0; j < nb; j++)
            acc[j] = 0.0f;
        for (size_t r = 0; r < rows; r++) {
            const float *xr = x + r * cols + j0;
            for (size_t j = 0; j < nb; j++)
                acc[j] = acc[j] + xr[j];
        }
        float *o = out + j0;
        for (size_t j = 0; j < nb; j++)
            o[j] = accumulate ? o[j] + acc[j] : acc[j];
    }
}

void hcrt__host_col_sum(float *out, const float *x, size_t rows, size_t cols, bool accumulate)
{
    col_sum_loop(out, x, rows, cols, accumulate);
}

/* ---- optimizers ------------------------------------------------------------------------------------- */

HC_CLONES static void sgd_step(const hcrt_backend_optim_t *o, float *restrict p, const float *restrict grad,
                               float *restrict v, size_t n)
{
    const float gs = o->grad_scale, lr = o->lr, mom = o->momentum, wd = o->weight_decay;
    const bool nesterov = o->nesterov != 0;
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * gs;
        if (wd != 0.0f)
            g = g + wd * p[i];
        if (mom != 0.0f) {
            const float vi = mom * v[i] + g;
            v[i] = vi;
            g = nesterov ? g + mom * vi : vi;
        }
        p[i] = p[i] - lr * g;
    }
}

HC_CLONES static void adamw_step(const hcrt_backend_optim_t *o, float *restrict p, const float *restrict grad,
                                 float *restrict m, float *restrict v, size_t n)
{
    const float gs = o->grad_scale, decay = o->decay, step = o->step_size, bc2 = o->bias2_sqrt;
    const float b1 = o->beta1, c1 = o->one_minus_beta1, b2 = o->beta2, c2 = o->one_minus_beta2, eps = o->eps;
    for (size_t i = 0; i < n; i++) {
        const float g = grad[i] * gs;
        const float mi = b1 * m[i] + c1 * g;
        const float vi = b2 * v[i] + c2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2 + eps;
        p[i] = p[i] * decay - step * (mi / denom);
    }
}

void hcrt__host_optim_step(const hcrt_backend_optim_t *opt, float *param, const float *grad, float *state, size_t count)
{
    if (opt->kind == HCRT_OPTIM_ADAMW)
        adamw_step(opt, param, grad, state, state + count, count);
    else
        sgd_step(opt, param, grad, state, count);
}

/* ---- casts ------------------------------------------------------------------------------------------ */

HC_CLONES static void cast_loop(void *dst, hcrt_dtype_t dt, const void *src, hcrt_dtype_t st, size_t n)
{
    float *df = dst;
    uint16_t *dh = dst;
    const float *sf = src;
    const uint16_t *sh = src;
    for (size_t i = 0; i < n; i++) {
        const float v = st == HCRT_F32 ? sf[i] : st == HCRT_F16 ? f16_to_f32(sh[i]) : bf16_to_f32(sh[i]);
        if (dt == HCRT_F32)
            df[i] = v;
        else
            dh[i] = dt == HCRT_F16 ? f32_to_f16(v) : f32_to_bf16(v);
    }
}

hcrt_status_t hcrt__host_cast(void *dst, hcrt_dtype_t dst_dtype, const void *src, hcrt_dtype_t src_dtype, size_t count)
{
    const bool ok_d = dst_dtype == HCRT_F32 || dst_dtype == HCRT_F16 || dst_dtype == HCRT_BF16;
    const bool ok_s = src_dtype == HCRT_F32 || src_dtype == HCRT_F16 || src_dtype == HCRT_BF16;
    if (!ok_d || !ok_s)
        return HCRT_ERR_INVALID_ARG;
    if (count == 0 || (dst == src && dst_dtype == src_dtype))
        return HCRT_OK;
    if (dst_dtype == src_dtype) {
        memmove(dst, src, count * (dst_dtype == HCRT_F32 ? 4 : 2));
        return HCRT_OK;
    }
    cast_loop(dst, dst_dtype, src, src_dtype, count);
    return HCRT_OK;
}
