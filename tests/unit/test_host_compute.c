/*
 * tests/unit/test_host_compute.c - the compute extension's host implementation (kernels/host_compute.c,
 * host_gemm.c) against the float64 references of tests/common/compute_ref.h, and its determinism:
 *  - gemm for every dtype (f32, f16, bf16) x transpose pair x alpha/beta, odd and edge sizes, k across
 *    the blocking (partial sums in c, and in scratch when beta != 0), padded leading dimensions, a c large
 *    enough for non-temporal stores; NaN in c with beta == 0 does not show;
 *  - every gemm kernel the CPU has (AVX-512, AVX2, portable) gives the same bits, and so do operands at
 *    other alignments;
 *  - the element-wise, softmax, column-sum, optimizer and cast ops of the library (its x86-64-v4/v3
 *    clones on this CPU) give the same bits as a baseline-x86-64 copy of the same source
 *    (host_compute_portable.c) and at other alignments; the optimizer is the f32 formula bit for bit;
 *  - exp and log within 2 ulp of libm's double results over their range.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_ref.h"
#include "kernel_ref.h"
#include "kernels/host_compute.h"
#include "kernels/host_kernels.h"
#include "test.h"

/* The baseline-x86-64 copy (host_compute_portable.c). */
float portable_expf(float x);
float portable_logf(float x);
void portable_bias_add(float *y, const float *x, const float *bias, size_t rows, size_t cols);
void portable_relu(float *y, const float *x, size_t count);
void portable_relu_backward(float *dx, const float *dy, const float *act, size_t count);
hcrt_status_t portable_softmax_xent(const float *logits, const int32_t *labels, size_t rows, size_t classes,
                                    float *loss, float *dlogits, bool accumulate, size_t *bad_row);
void portable_col_sum(float *out, const float *x, size_t rows, size_t cols, bool accumulate);
void portable_optim_step(const hcrt_backend_optim_t *opt, float *param, const float *grad, float *state, size_t count);
hcrt_status_t portable_cast(void *dst, hcrt_dtype_t dst_dtype, const void *src, hcrt_dtype_t src_dtype, size_t count);

static const hcrt_dtype_t gemm_dtypes[] = {HCRT_F32, HCRT_F16, HCRT_BF16};

/* A 64-byte aligned block with `off` bytes of offset, for the alignment checks. */
static void *alloc_at(size_t bytes, size_t off, void **base)
{
    *base = aligned_alloc(64, (bytes + off + 63) / 64 * 64 + 64);
    return (char *)*base + off;
}

static size_t ulp_diff(float x, float y)
{
    if (x == y)
        return 0;
    if (x != x || y != y)
        return SIZE_MAX;
    int32_t a, b;
    memcpy(&a, &x, 4);
    memcpy(&b, &y, 4);
    if ((a < 0) != (b < 0))
        return SIZE_MAX;
    return (size_t)(a > b ? a - b : b - a);
}

/* ---- gemm ---------------------------------------------------------------------------------------- */

typedef struct gemm_case {
    size_t m, n, k;
} gemm_case_t;

/* Runs one gemm configuration on every kernel and at a second alignment; checks against the reference. */
static void check_gemm(size_t m, size_t n, size_t k, bool ta, bool tb, float alpha, float beta, hcrt_dtype_t t,
                       size_t pad)
{
    const size_t es = t == HCRT_F32 ? 4 : 2;
    const size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    const size_t lda = ac + pad, ldb = bc + pad, ldc = n + pad;
    const size_t abytes = (ar * lda + 1) * es, bbytes = (br * ldb + 1) * es, cbytes = (m * ldc + 1) * 4;
    void *ab, *bb, *cb, *a2b, *b2b, *c2b;
    void *a = alloc_at(abytes, 0, &ab), *b = alloc_at(bbytes, 0, &bb);
    float *c0 = malloc(cbytes), *c = alloc_at(cbytes, 0, &cb), *first = malloc(cbytes);
    cref_fill(a, ar * lda, t, 1.0);
    cref_fill(b, br * ldb, t, 1.0);
    for (size_t i = 0; i < m * ldc; i++)
        c0[i] = beta == 0.0f && i % 3 == 0 ? NAN : (float)((double)(rnd() % 2001) / 1000.0 - 1.0);
    double *want = malloc((m * n + 1) * sizeof(double)), *tol = malloc((m * n + 1) * sizeof(double));
    cref_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, t, want, tol);

    const int best = (int)hcrt__gemm_isa_best();
    for (int isa = best; isa >= 0; isa--) {
        CHECK((int)hcrt__gemm_isa_force(isa) == isa);
        memcpy(c, c0, cbytes);
        CHECK(hcrt__host_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, t) == HCRT_OK);
        if (isa == best) {
            memcpy(first, c, cbytes);
            int bad = 0;
            for (size_t i = 0; i < m && bad < 3; i++)
                for (size_t j = 0; j < n && bad < 3; j++) {
                    const double err = fabs((double)c[i * ldc + j] - want[i * n + j]);
                    if (!(err <= tol[i * n + j])) {
                        bad++;
                        CHECK_MSG(0,
                                  "gemm %s ta=%d tb=%d %zux%zux%zu alpha=%g beta=%g (%zu,%zu): got %.9g want %.9g "
                                  "tol %.3g",
                                  dtype_names[t], ta, tb, m, n, k, (double)alpha, (double)beta, i, j,
                                  (double)c[i * ldc + j], want[i * n + j], tol[i * n + j]);
                    }
                }
            /* the padding between rows of c is never written */
            for (size_t i = 0; i < m && pad; i++)
                CHECK_MSG(memcmp(&c[i * ldc + n], &c0[i * ldc + n], pad * 4) == 0, "gemm wrote c's row padding");
        } else {
            CHECK_MSG(memcmp(first, c, cbytes) == 0, "gemm %s ta=%d tb=%d %zux%zux%zu: kernel %d differs from %d",
                      dtype_names[t], ta, tb, m, n, k, isa, best);
        }
    }
    hcrt__gemm_isa_force(-1);
    /* other alignments: 4 (f32) or 2 (16-bit) bytes past a 64-byte boundary */
    void *a2 = alloc_at(abytes, es, &a2b), *b2 = alloc_at(bbytes, 3 * es, &b2b);
    float *c2 = alloc_at(cbytes, 4, &c2b);
    memcpy(a2, a, abytes);
    memcpy(b2, b, bbytes);
    memcpy(c2, c0, cbytes);
    CHECK(hcrt__host_gemm(ta, tb, m, n, k, alpha, a2, lda, b2, ldb, beta, c2, ldc, t) == HCRT_OK);
    CHECK_MSG(memcmp(first, c2, cbytes) == 0, "gemm %s ta=%d tb=%d %zux%zux%zu: misaligned operands differ",
              dtype_names[t], ta, tb, m, n, k);
    free(ab), free(bb), free(cb), free(a2b), free(b2b), free(c2b), free(c0), free(first), free(want), free(tol);
}

static void test_gemm(void)
{
    static const gemm_case_t cases[] = {
        {1, 1, 1},      {3, 5, 7},     {6, 64, 9},   {7, 65, 33}, {13, 17, 1},    {12, 128, 40},
        {37, 130, 520}, {125, 70, 24}, {5, 1030, 3}, {2, 3, 0},   {9, 200, 1100},
        {1100, 2000, 3}, /* c of 8.4 MiB: the kernels' non-temporal stores */
    };
    static const float ab[][2] = {{1, 0}, {0.5f, 1}, {-1.25f, 0.75f}, {1, 1}};
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++)
        for (size_t ti = 0; ti < 3; ti++)
            for (int tr = 0; tr < 4; tr++)
                for (size_t ai = 0; ai < 4; ai++) {
                    const gemm_case_t *g = &cases[ci];
                    /* the large cases once per dtype and transpose (each transpose with another alpha and
                     * beta), the small ones in every form */
                    if (g->m * g->n * g->k > 200000 && ai != (ci + (size_t)tr) % 4)
                        continue;
                    check_gemm(g->m, g->n, g->k, tr & 1, tr & 2, ab[ai][0], ab[ai][1], gemm_dtypes[ti],
                               (ci + ai) % 3 == 0 ? 3 : 0);
                }
    /* m or n zero: nothing is touched */
    float c = 42.0f;
    CHECK(hcrt__host_gemm(false, false, 0, 1, 1, 1, NULL, 1, NULL, 1, 0, &c, 1, HCRT_F32) == HCRT_OK && c == 42.0f);
    CHECK(hcrt__host_gemm(false, false, 1, 1, 1, 1, &c, 1, &c, 1, 0, &c, 1, HCRT_F64) == HCRT_ERR_INVALID_ARG);
    /* portable forcing through the host kernels' switch */
    hcrt__host_kernels_force_portable(true);
    CHECK(hcrt__gemm_isa_force(99) == hcrt__gemm_isa_best()); /* a request above the best gives the best */
    hcrt__host_kernels_force_portable(true);
    hcrt__host_kernels_force_portable(false);
    fprintf(stderr, "gemm kernels checked: best is %d (2 AVX-512, 1 AVX2, 0 portable)\n", (int)hcrt__gemm_isa_best());
}

/* ---- exp and log ----------------------------------------------------------------------------------- */

static void test_exp_log(void)
{
    size_t worst_e = 0, worst_l = 0;
    for (int i = 0; i < 2000000; i++) {
        const float x = (float)(-87.0 + 175.0 * (double)i / 2000000.0);
        const float got = hcrt__host_expf(x);
        const float want = (float)exp((double)x);
        const size_t d = ulp_diff(got, want);
        worst_e = d > worst_e ? d : worst_e;
        if (i % 97 == 0)
            CHECK(portable_expf(x) == got);
        const float y = ldexpf(1.0f + (float)(rnd() % 8388608) / 8388608.0f, (int)(rnd() % 250) - 125);
        const size_t dl = ulp_diff(hcrt__host_logf(y), (float)log((double)y));
        worst_l = dl > worst_l ? dl : worst_l;
        if (i % 97 == 0)
            CHECK(portable_logf(y) == hcrt__host_logf(y));
    }
    fprintf(stderr, "exp: max %zu ulp on [-87, 88]; log: max %zu ulp on normal floats\n", worst_e, worst_l);
    CHECK_MSG(worst_e <= 2, "exp is %zu ulp off", worst_e);
    CHECK_MSG(worst_l <= 2, "log is %zu ulp off", worst_l);
    CHECK(hcrt__host_expf(-100.0f) == 0.0f && hcrt__host_expf(0.0f) == 1.0f);
    CHECK(isinf(hcrt__host_expf(89.0f)) && isinf(hcrt__host_expf(INFINITY)) && hcrt__host_expf(-INFINITY) == 0.0f);
    CHECK(isnan(hcrt__host_expf(NAN)) && isnan(hcrt__host_logf(NAN)) && isnan(hcrt__host_logf(-1.0f)));
    CHECK(hcrt__host_logf(1.0f) == 0.0f && isinf(hcrt__host_logf(0.0f)) && hcrt__host_logf(INFINITY) == INFINITY);
    CHECK(ulp_diff(hcrt__host_expf(88.7f), (float)exp((double)88.7f)) <= 2);
}

/* ---- softmax cross-entropy ------------------------------------------------------------------------ */

static void test_softmax(void)
{
    static const size_t rows_list[] = {0, 1, 5, 33}, classes_list[] = {1, 2, 10, 129};
    for (size_t ri = 0; ri < 4; ri++)
        for (size_t ci = 0; ci < 4; ci++) {
            const size_t rows = rows_list[ri], cl = classes_list[ci], n = rows * cl;
            float *z = malloc((n + 1) * 4), *d = malloc((n + 1) * 4), *d2 = malloc((n + 1) * 4);
            int32_t *y = malloc((rows + 1) * 4);
            double *g = malloc((cl + 1) * sizeof(double));
            for (size_t i = 0; i < n; i++)
                z[i] = (float)((double)(rnd() % 20001) / 1000.0 - 10.0);
            for (size_t r = 0; r < rows; r++)
                y[r] = (int32_t)(rnd() % cl);
            float loss = -1.0f, loss2 = 5.0f;
            CHECK(hcrt__host_softmax_xent(z, y, rows, cl, &loss, d, false, NULL) == HCRT_OK);
            double want = 0, mag = 0;
            int bad = 0;
            for (size_t r = 0; r < rows; r++) {
                const double lr = cref_softmax_row(z + r * cl, y[r], cl, g);
                want += lr;
                mag += fabs(lr);
                for (size_t j = 0; j < cl && bad < 3; j++) {
                    const double tol =
                        8 * ldexp(1, -24) + (double)cl * ldexp(1, -24) * fabs(g[j] + (j == (size_t)y[r]));
                    if (!(fabs(d[r * cl + j] - g[j]) <= tol)) {
                        bad++;
                        CHECK_MSG(0, "softmax %zux%zu (%zu,%zu): got %.9g want %.9g", rows, cl, r, j,
                                  (double)d[r * cl + j], g[j]);
                    }
                }
            }
            const double ltol = ldexp(1, -20) * (1 + mag) + (double)rows * (double)cl * ldexp(1, -23);
            CHECK_MSG(fabs(loss - want) <= ltol, "softmax %zux%zu loss %.9g want %.9g", rows, cl, (double)loss, want);
            /* accumulate adds; no gradient gives the same loss; the portable copy gives the same bits */
            CHECK(hcrt__host_softmax_xent(z, y, rows, cl, &loss2, NULL, true, NULL) == HCRT_OK);
            CHECK(loss2 == 5.0f + loss);
            float lp = 0;
            CHECK(portable_softmax_xent(z, y, rows, cl, &lp, d2, false, NULL) == HCRT_OK);
            CHECK_MSG(lp == loss && memcmp(d, d2, n * 4) == 0, "softmax %zux%zu: portable path differs", rows, cl);
            /* in place: the gradient overwrites the logits */
            memcpy(d2, z, n * 4);
            CHECK(hcrt__host_softmax_xent(d2, y, rows, cl, &lp, d2, false, NULL) == HCRT_OK);
            CHECK_MSG(lp == loss && memcmp(d, d2, n * 4) == 0, "softmax %zux%zu: in place differs", rows, cl);
            /* a label out of range names its row */
            if (rows > 2) {
                y[2] = (int32_t)cl;
                size_t bad_row = 0;
                CHECK(hcrt__host_softmax_xent(z, y, rows, cl, &lp, d, false, &bad_row) == HCRT_ERR_INVALID_ARG);
                CHECK(bad_row == 2);
                y[2] = -1;
                CHECK(hcrt__host_softmax_xent(z, y, rows, cl, &lp, NULL, false, &bad_row) == HCRT_ERR_INVALID_ARG);
            }
            free(z), free(d), free(d2), free(y), free(g);
        }
    /* NaN in a row makes that row's loss and gradient NaN */
    float z[3] = {1, NAN, 2}, d[3];
    int32_t y = 0;
    float loss = 0;
    CHECK(hcrt__host_softmax_xent(z, &y, 1, 3, &loss, d, false, NULL) == HCRT_OK);
    CHECK(isnan(loss) && isnan(d[0]) && isnan(d[2]));
}

/* ---- element-wise, column sums, casts ------------------------------------------------------------- */

static void test_elementwise(void)
{
    const size_t rows = 37, cols = 1029, n = rows * cols;
    void *xb, *yb, *bb;
    float *x = alloc_at(n * 4, 4, &xb), *y = alloc_at(n * 4, 0, &yb), *bias = alloc_at(cols * 4, 8, &bb);
    float *y2 = malloc(n * 4), *out = malloc(cols * 4), *out2 = malloc(cols * 4);
    cref_fill(x, n, HCRT_F32, 4.0);
    cref_fill(bias, cols, HCRT_F32, 1.0);
    x[5] = NAN, x[6] = -0.0f, x[7] = INFINITY, x[8] = -INFINITY, x[9] = 0.0f;

    hcrt__host_bias_add(y, x, bias, rows, cols);
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && (get_bits(y, i, HCRT_F32) == encode_float((double)x[i] + bias[i % cols], HCRT_F32) ||
                    (isnan(y[i]) && isnan(x[i])));
    CHECK_MSG(ok, "bias_add differs from the correctly rounded sum");
    portable_bias_add(y2, x, bias, rows, cols);
    CHECK(memcmp(y, y2, n * 4) == 0);

    hcrt__host_relu(y, x, n);
    ok = true;
    for (size_t i = 0; i < n; i++) {
        const float want = x[i] > 0 ? x[i] : 0.0f;
        ok = ok && (isnan(x[i]) ? isnan(y[i]) : (get_bits(y, i, HCRT_F32) == encode_float(want, HCRT_F32)));
    }
    CHECK_MSG(ok, "relu wrong (NaN stays, -0 and negatives give +0)");
    CHECK(get_bits(y, 6, HCRT_F32) == 0 && y[7] == INFINITY && y[8] == 0.0f);
    portable_relu(y2, x, n);
    CHECK(memcmp(y, y2, n * 4) == 0);
    memcpy(y2, x, n * 4);
    hcrt__host_relu(y2, y2, n); /* in place */
    CHECK(memcmp(y, y2, n * 4) == 0);

    hcrt__host_relu_backward(y, bias, x, cols); /* dy = bias (cols elements), act = x */
    ok = true;
    for (size_t i = 0; i < cols; i++)
        ok = ok && get_bits(y, i, HCRT_F32) == (x[i] > 0 ? get_bits(bias, i, HCRT_F32) : 0);
    CHECK_MSG(ok, "relu_backward wrong");
    portable_relu_backward(y2, bias, x, cols);
    CHECK(memcmp(y, y2, cols * 4) == 0);

    /* column sums: the chain over rows, against a scalar chain and the float64 sum */
    cref_fill(x, n, HCRT_F32, 4.0);
    for (int acc = 0; acc < 2; acc++) {
        for (size_t j = 0; j < cols; j++)
            out[j] = out2[j] = (float)j;
        hcrt__host_col_sum(out, x, rows, cols, acc);
        ok = true;
        for (size_t j = 0; j < cols; j++) {
            volatile float s = 0.0f;
            double exact = 0, mag = 0;
            for (size_t r = 0; r < rows; r++) {
                s = s + x[r * cols + j];
                exact += x[r * cols + j];
                mag += fabs(x[r * cols + j]);
            }
            volatile float want = acc ? (float)j + s : s;
            ok = ok && out[j] == want && fabs((double)s - exact) <= (double)rows * ldexp(1, -24) * mag;
        }
        CHECK_MSG(ok, "col_sum (accumulate %d) is not the row-ascending chain", acc);
        portable_col_sum(out2, x, rows, cols, acc);
        CHECK(memcmp(out, out2, cols * 4) == 0);
    }
    hcrt__host_col_sum(out, x, 0, cols, false);
    CHECK(out[0] == 0.0f && out[cols - 1] == 0.0f);

    /* casts between f32, f16, bf16: against the reference encoders, both directions */
    static const hcrt_dtype_t ct[] = {HCRT_F32, HCRT_F16, HCRT_BF16};
    uint16_t *h = malloc(n * 2), *h2 = malloc(n * 2);
    for (size_t s = 0; s < 3; s++)
        for (size_t d = 0; d < 3; d++) {
            void *src = ct[s] == HCRT_F32 ? (void *)x : (void *)h;
            if (ct[s] != HCRT_F32)
                for (size_t i = 0; i < n; i++)
                    h[i] = (uint16_t)random_elem(ct[s]);
            void *dst = ct[d] == HCRT_F32 ? (void *)y : (void *)h2;
            CHECK(hcrt__host_cast(dst, ct[d], src, ct[s], n) == HCRT_OK);
            ok = true;
            for (size_t i = 0; i < n; i++) {
                const double v = get_float(src, i, ct[s]);
                const uint64_t want = isnan(v) ? 0 : encode_float(v, ct[d]);
                ok = ok && (isnan(v) ? isnan(get_float(dst, i, ct[d])) : get_bits(dst, i, ct[d]) == want);
            }
            CHECK_MSG(ok, "cast %s -> %s differs from the reference rounding", dtype_names[ct[s]], dtype_names[ct[d]]);
            void *dst2 = malloc(n * 4);
            CHECK(portable_cast(dst2, ct[d], src, ct[s], n) == HCRT_OK);
            CHECK(memcmp(dst, dst2, n * (ct[d] == HCRT_F32 ? 4 : 2)) == 0);
            free(dst2);
        }
    CHECK(hcrt__host_cast(y, HCRT_F64, x, HCRT_F32, 4) == HCRT_ERR_INVALID_ARG);
    free(h), free(h2), free(xb), free(yb), free(bb), free(y2), free(out), free(out2);
}

/* ---- optimizers ----------------------------------------------------------------------------------- */

static void test_optim(void)
{
    const size_t n = 4099;
    float *p = malloc(n * 4), *g = malloc(n * 4), *st = malloc(2 * n * 4);
    float *p2 = malloc(n * 4), *st2 = malloc(2 * n * 4), *p3 = malloc(n * 4), *st3 = malloc(2 * n * 4);
    hcrt_backend_optim_t cfg[6];
    memset(cfg, 0, sizeof(cfg));
    for (int i = 0; i < 6; i++) {
        cfg[i].struct_size = sizeof(cfg[i]);
        cfg[i].grad_scale = 1.0f / 96.0f;
        cfg[i].lr = 0.05f;
    }
    cfg[1].momentum = 0.9f;
    cfg[2].momentum = 0.9f, cfg[2].nesterov = 1, cfg[2].weight_decay = 1e-4f;
    cfg[3].weight_decay = 0.01f;
    for (int i = 4; i < 6; i++) {
        const double lr = 1e-3, wd = 0.01, b1 = 0.9, b2 = 0.999;
        const int step = i == 4 ? 1 : 17;
        cfg[i].kind = HCRT_OPTIM_ADAMW;
        cfg[i].decay = (float)(1 - lr * wd);
        cfg[i].step_size = (float)(lr / (1 - pow(b1, step)));
        cfg[i].bias2_sqrt = (float)sqrt(1 - pow(b2, step));
        cfg[i].beta1 = (float)b1, cfg[i].one_minus_beta1 = (float)(1 - b1);
        cfg[i].beta2 = (float)b2, cfg[i].one_minus_beta2 = (float)(1 - b2);
        cfg[i].eps = 1e-8f;
    }
    for (int c = 0; c < 6; c++) {
        cref_fill(p, n, HCRT_F32, 1.0);
        cref_fill(g, n, HCRT_F32, 50.0);
        cref_fill(st, n, HCRT_F32, 0.1);
        for (size_t i = 0; i < n; i++)
            st[n + i] = fabsf(st[i]) * 0.01f;
        memcpy(p2, p, n * 4), memcpy(st2, st, 2 * n * 4), memcpy(p3, p, n * 4), memcpy(st3, st, 2 * n * 4);
        for (int rep = 0; rep < 3; rep++) {
            hcrt__host_optim_step(&cfg[c], p, g, st, n);
            portable_optim_step(&cfg[c], p3, g, st3, n);
            for (size_t i = 0; i < n; i++)
                cref_optim_elem(&cfg[c], &p2[i], g[i], &st2[i], &st2[n + i]);
        }
        const size_t sb = (cfg[c].kind == HCRT_OPTIM_ADAMW ? 2 : 1) * n * 4;
        CHECK_MSG(memcmp(p, p2, n * 4) == 0 && memcmp(st, st2, sb) == 0,
                  "optimizer config %d is not the f32 formula bit for bit", c);
        CHECK_MSG(memcmp(p, p3, n * 4) == 0 && memcmp(st, st3, sb) == 0, "optimizer config %d: portable differs", c);
    }
    /* SGD without momentum needs no state */
    hcrt__host_optim_step(&cfg[0], p, g, NULL, n);
    free(p), free(g), free(st), free(p2), free(st2), free(p3), free(st3);
}

int main(void)
{
    test_gemm();
    test_exp_log();
    test_softmax();
    test_elementwise();
    test_optim();
    TEST_DONE();
}
