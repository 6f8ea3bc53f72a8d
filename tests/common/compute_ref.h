/*
 * tests/common/compute_ref.h - float64 references for the compute extension (hcrt/compute.h), shared by
 * the host kernel unit test and the per-backend conformance test. Builds on kernel_ref.h (included here).
 *
 * Tolerances, stated once here:
 *  - gemm: each element of c is within (k + 3) * 2^-24 * (|alpha| * sum_p |a_ip b_pj| + |beta c_ij|) of
 *    the exact value (the standard bound for a chain of k f32 fused multiply-adds plus the epilogue's
 *    three roundings), plus 2^-126 for underflow. Any summation order (a GPU's) obeys the same bound.
 *  - softmax cross-entropy: each gradient element within 8 * 2^-24 + classes * 2^-24 * p_j of the exact
 *    p_j - onehot, and the loss within 2^-20 * (1 + sum of |row loss|) plus classes * 2^-23 per row: the
 *    row sums are f32 chains and exp/log are within 2 ulp.
 *  - element-wise ops (bias add, ReLU, casts) and the optimizer are exact: one IEEE operation per step,
 *    so the f32 formula of hcrt/backend_compute.h written out here gives the very bits.
 *  - column sums: a chain of `rows` f32 additions: within rows * 2^-24 * sum |x|.
 */
#ifndef HCRT_TEST_COMPUTE_REF_H
#define HCRT_TEST_COMPUTE_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hcrt/backend_compute.h"
#include "hcrt/types.h"
#include "kernel_ref.h"

/* Element (at) of a gemm operand of dtype f32/f16/bf16 as a double (exact). */
__attribute__((unused)) static double cref_elem(const void *p, size_t at, hcrt_dtype_t t)
{
    if (t == HCRT_F32)
        return ((const float *)p)[at];
    const uint16_t h = ((const uint16_t *)p)[at];
    return t == HCRT_F16 ? ref_f16_decode(h) : ref_bf16_decode(h);
}

/* A random value in [-scale, scale] with varied magnitudes, exactly representable in `t`, stored at p[at]. */
__attribute__((unused)) static void cref_fill_elem(void *p, size_t at, hcrt_dtype_t t, double scale)
{
    double v = ((double)(rnd() % 2000001) / 1000000.0 - 1.0) * scale;
    if (rnd() % 8 == 0)
        v *= 1.0 / 64.0;
    if (t == HCRT_F32)
        ((float *)p)[at] = (float)v;
    else
        ((uint16_t *)p)[at] = (uint16_t)encode_float(v, t);
}

__attribute__((unused)) static void cref_fill(void *p, size_t n, hcrt_dtype_t t, double scale)
{
    for (size_t i = 0; i < n; i++)
        cref_fill_elem(p, i, t, scale);
}

/*
 * The exact result of c = alpha op(a) op(b) + beta c into want[i * n + j] (double), and the error bound
 * of the header's comment into tol[i * n + j]. c_in is c before the call (ignored when beta == 0).
 */
__attribute__((unused)) static void cref_gemm(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha,
                                              const void *a, size_t lda, const void *b, size_t ldb, float beta,
                                              const float *c_in, size_t ldc, hcrt_dtype_t t, double *want, double *tol)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (size_t p = 0; p < k; p++) {
                const double x = cref_elem(a, ta ? p * lda + i : i * lda + p, t);
                const double y = cref_elem(b, tb ? j * ldb + p : p * ldb + j, t);
                s += x * y;
                mag += fabs(x * y);
            }
            double r = (double)alpha * s, bound = fabs((double)alpha) * mag;
            if (beta != 0.0f) {
                r += (double)beta * c_in[i * ldc + j];
                bound += fabs((double)beta * c_in[i * ldc + j]);
            }
            want[i * n + j] = r;
            tol[i * n + j] = (double)(k + 3) * ldexp(1.0, -24) * bound + ldexp(1.0, -126);
        }
}

/* Exact softmax cross-entropy of one row: the gradient into g[classes], the row's loss returned. */
__attribute__((unused)) static double cref_softmax_row(const float *z, int32_t label, size_t classes, double *g)
{
    double mx = z[0], s = 0;
    for (size_t j = 0; j < classes; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (size_t j = 0; j < classes; j++)
        s += exp((double)z[j] - mx);
    for (size_t j = 0; j < classes; j++)
        g[j] = exp((double)z[j] - mx) / s - (j == (size_t)label ? 1.0 : 0.0);
    return log(s) + mx - (double)z[label];
}

/* The optimizer's f32 formula (hcrt/backend_compute.h), one element, written out independently. */
__attribute__((unused)) static void cref_optim_elem(const hcrt_backend_optim_t *o, float *p, float grad, float *m,
                                                    float *v)
{
    volatile float g = grad * o->grad_scale; /* volatile: one rounding per line, whatever the compiler */
    if (o->kind == HCRT_OPTIM_SGD) {
        if (o->weight_decay != 0.0f) {
            volatile float d = o->weight_decay * *p;
            g = g + d;
        }
        if (o->momentum != 0.0f) {
            volatile float mv = o->momentum * *m;
            volatile float nv = mv + g;
            *m = nv;
            if (o->nesterov) {
                volatile float mg = o->momentum * nv;
                g = g + mg;
            } else {
                g = nv;
            }
        }
        volatile float step = o->lr * g;
        *p = *p - step;
        return;
    }
    volatile float bm = o->beta1 * *m, cg = o->one_minus_beta1 * g;
    volatile float mi = bm + cg;
    volatile float gg = g * g;
    volatile float bv = o->beta2 * *v, cv = o->one_minus_beta2 * gg;
    volatile float vi = bv + cv;
    *m = mi;
    *v = vi;
    volatile float sq = sqrtf(vi);
    volatile float q = sq / o->bias2_sqrt;
    volatile float denom = q + o->eps;
    volatile float ratio = mi / denom;
    volatile float step = o->step_size * ratio;
    volatile float pd = *p * o->decay;
    *p = pd - step;
}

#endif /* HCRT_TEST_COMPUTE_REF_H */
