/*
 * tests/plugin/test_compute.c - the compute extension (hcrt/compute.h) through the public API on the
 * backend named by argv[1] (cpu, sim, cuda, hip; the GPU ones run here over the mock runtimes), the
 * per-backend conformance test:
 *  - every op against the float64 references and stated tolerances of tests/common/compute_ref.h: gemm
 *    for every dtype x transpose pair x alpha/beta on odd and edge sizes (k across the host blocking),
 *    padded leading dimensions, synchronous and on a stream; softmax cross-entropy with and without
 *    gradient, accumulated and in place; bias add, ReLU and its gradient, column sums, casts, both
 *    optimizers (the f32 formula bit for bit);
 *  - determinism where the backend promises it (cpu, sim): every op twice gives the same bits, device
 *    buffers at other alignments give the same bits, and sim gives the cpu backend's bits;
 *  - a whole MLP training step queued on one stream with no host synchronisation equals the same step run
 *    synchronously;
 *  - bad arguments to every call: HCRT_ERR_INVALID_ARG naming the argument; on sim, pointers that are not
 *    live allocations of the device; labels out of range, at the call and at the stream's sync;
 *  - sim only: a lost device fails compute ops with HCRT_ERR_DEVICE_LOST.
 * A GPU backend with no device here exits 77 with the reason.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute_ref.h"
#include "hcrt/hcrt.h"
#include "kernel_ref.h"
#include "test.h"

static const char *backend;
static bool is_sim, gpu;
static bool bitwise; /* the host implementation's bits expected: cpu, sim, and the GPU mocks */
static hcrt_context_t *ctx;
static hcrt_device_t *dev, *host, *cpu_dev;
static hcrt_stream_t *stream;

static hcrt_context_t *open_ctx(void)
{
    hcrt_context_params_t p;
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    hcrt_context_t *c = NULL;
    REQUIRE_OK(NULL, hcrt_init(&p, &c));
    return c;
}

/* ---- device buffers ------------------------------------------------------------------------------ */

/* A device buffer holding `bytes` from host memory at `src` (NULL: zeros), `off` bytes into its allocation;
 * *base receives the allocation. */
static void *upload_on(hcrt_device_t *d, const void *src, size_t bytes, size_t off, void **base)
{
    REQUIRE_OK(ctx, hcrt_mem_alloc(d, bytes + off + 64, base));
    void *p = (char *)*base + off;
    if (src)
        REQUIRE_OK(ctx, hcrt_memcpy(d, p, host, src, bytes));
    else
        REQUIRE_OK(ctx, hcrt_memset(d, p, 0, bytes));
    return p;
}

static void *upload(const void *src, size_t bytes, void **base)
{
    return upload_on(dev, src, bytes, 0, base);
}

static void download_from(hcrt_device_t *d, void *dst, const void *p, size_t bytes)
{
    REQUIRE_OK(ctx, hcrt_memcpy(host, dst, d, p, bytes));
}

static void sync_if(hcrt_stream_t *s)
{
    if (s)
        CHECK_OK(ctx, hcrt_stream_sync(s));
}

/* ---- gemm ---------------------------------------------------------------------------------------- */

typedef struct gemm_run {
    bool ta, tb;
    size_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    hcrt_dtype_t t;
    const void *a, *b;
    const float *c0;
    size_t abytes, bbytes, cbytes;
} gemm_run_t;

/* Runs g on device d with operands `off` bytes into their allocations; the result into out. */
static void gemm_on(hcrt_device_t *d, const gemm_run_t *g, size_t off, hcrt_stream_t *s, float *out)
{
    void *ab, *bb, *cb;
    void *a = upload_on(d, g->a, g->abytes, off, &ab), *b = upload_on(d, g->b, g->bbytes, off, &bb);
    float *c = upload_on(d, g->c0, g->cbytes, off, &cb);
    CHECK_OK(ctx, hcrt_compute_gemm(d, g->ta, g->tb, g->m, g->n, g->k, g->alpha, a, g->lda, b, g->ldb, g->beta, c,
                                    g->ldc, g->t, s));
    sync_if(s);
    download_from(d, out, c, g->cbytes);
    CHECK_OK(ctx, hcrt_mem_free(d, ab));
    CHECK_OK(ctx, hcrt_mem_free(d, bb));
    CHECK_OK(ctx, hcrt_mem_free(d, cb));
}

static void check_gemm(size_t m, size_t n, size_t k, bool ta, bool tb, float alpha, float beta, hcrt_dtype_t t,
                       size_t pad, hcrt_stream_t *s)
{
    gemm_run_t g = {.ta = ta, .tb = tb, .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta, .t = t};
    const size_t es = t == HCRT_F32 ? 4 : 2;
    const size_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    g.lda = ac + pad, g.ldb = bc + pad, g.ldc = n + pad;
    g.abytes = (ar * g.lda + 1) * es, g.bbytes = (br * g.ldb + 1) * es, g.cbytes = m * g.ldc * 4 + 4;
    void *a = malloc(g.abytes), *b = malloc(g.bbytes);
    float *c0 = malloc(g.cbytes), *c = malloc(g.cbytes), *c2 = malloc(g.cbytes);
    cref_fill(a, ar * g.lda + 1, t, 1.0);
    cref_fill(b, br * g.ldb + 1, t, 1.0);
    for (size_t i = 0; i < g.cbytes / 4; i++)
        c0[i] = beta == 0.0f && i % 5 == 0 ? NAN : (float)((double)(rnd() % 2001) / 1000.0 - 1.0);
    g.a = a, g.b = b, g.c0 = c0;
    double *want = malloc((m * n + 1) * sizeof(double)), *tol = malloc((m * n + 1) * sizeof(double));
    cref_gemm(ta, tb, m, n, k, alpha, a, g.lda, b, g.ldb, beta, c0, g.ldc, t, want, tol);

    gemm_on(dev, &g, 0, s, c);
    int bad = 0;
    for (size_t i = 0; i < m && bad < 3; i++)
        for (size_t j = 0; j < n && bad < 3; j++) {
            const double err = fabs((double)c[i * g.ldc + j] - want[i * n + j]);
            if (!(err <= tol[i * n + j])) {
                bad++;
                CHECK_MSG(0,
                          "%s gemm %s ta=%d tb=%d %zux%zux%zu alpha=%g beta=%g (%zu,%zu): got %.9g want %.9g tol %.3g",
                          backend, dtype_names[t], ta, tb, m, n, k, (double)alpha, (double)beta, i, j,
                          (double)c[i * g.ldc + j], want[i * n + j], tol[i * n + j]);
            }
        }
    for (size_t i = 0; i < m && pad; i++)
        CHECK_MSG(memcmp(&c[i * g.ldc + n], &c0[i * g.ldc + n], pad * 4) == 0, "%s gemm wrote c's row padding",
                  backend);
    if (bitwise) {
        /* the same again, at another alignment (4 bytes past the allocation), and on the cpu backend */
        gemm_on(dev, &g, 4, s, c2);
        CHECK_MSG(memcmp(c, c2, g.cbytes) == 0, "%s gemm %s %zux%zux%zu: another alignment gives other bits", backend,
                  dtype_names[t], m, n, k);
        if (dev != cpu_dev) {
            gemm_on(cpu_dev, &g, 0, NULL, c2);
            CHECK_MSG(memcmp(c, c2, g.cbytes) == 0, "%s gemm %s %zux%zux%zu differs from cpu's bits", backend,
                      dtype_names[t], m, n, k);
        }
    }
    free(a), free(b), free(c0), free(c), free(c2), free(want), free(tol);
}

static void test_gemm(void)
{
    static const size_t sizes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 70, 129}, {64, 64, 64}, {6, 130, 600}, {3, 2, 0}};
    static const float ab[][2] = {{1, 0}, {0.5f, 1}, {-1.25f, 0.75f}, {1, 1}};
    static const hcrt_dtype_t ts[] = {HCRT_F32, HCRT_F16, HCRT_BF16};
    int runs = 0;
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
        for (size_t ti = 0; ti < 3; ti++)
            for (int tr = 0; tr < 4; tr++)
                for (size_t ai = 0; ai < 4; ai++) {
                    /* every combination on the small sizes; the large ones once per dtype x transpose pair */
                    if (sizes[si][0] * sizes[si][1] * sizes[si][2] > 100000 && ai != (tr + ti) % 4)
                        continue;
                    check_gemm(sizes[si][0], sizes[si][1], sizes[si][2], tr & 1, tr & 2, ab[ai][0], ab[ai][1], ts[ti],
                               (si + ai) % 2 ? 3 : 0, (runs++ & 1) ? stream : NULL);
                }
    fprintf(stderr, "%s: %d gemm configurations checked\n", backend, runs);
}

/* ---- softmax cross-entropy -------------------------------------------------------------------------- */

static void test_softmax(void)
{
    static const size_t shapes[][2] = {{1, 1}, {5, 10}, {33, 129}, {64, 3}};
    for (size_t si = 0; si < 4; si++) {
        const size_t rows = shapes[si][0], cl = shapes[si][1], n = rows * cl;
        float *z = malloc(n * 4), *d = malloc(n * 4), *d2 = malloc(n * 4);
        int32_t *y = malloc(rows * 4);
        double *g = malloc(cl * sizeof(double));
        for (size_t i = 0; i < n; i++)
            z[i] = (float)((double)(rnd() % 20001) / 1000.0 - 10.0);
        for (size_t r = 0; r < rows; r++)
            y[r] = (int32_t)(rnd() % cl);
        void *zb, *yb, *db, *lb;
        float *dz = upload(z, n * 4, &zb), *dd = upload(NULL, n * 4, &db), *dl = upload(NULL, 4, &lb);
        int32_t *dy = upload(y, rows * 4, &yb);
        hcrt_stream_t *s = si & 1 ? stream : NULL;
        CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, dz, dy, rows, cl, dl, dd, false, s));
        sync_if(s);
        float loss = 0;
        download_from(dev, d, dd, n * 4);
        download_from(dev, &loss, dl, 4);
        double want = 0, mag = 0;
        int bad = 0;
        for (size_t r = 0; r < rows; r++) {
            const double lr = cref_softmax_row(z + r * cl, y[r], cl, g);
            want += lr, mag += fabs(lr);
            for (size_t j = 0; j < cl && bad < 3; j++) {
                const double tol = 8 * ldexp(1, -24) + (double)cl * ldexp(1, -24) * fabs(g[j] + (j == (size_t)y[r]));
                if (!(fabs(d[r * cl + j] - g[j]) <= tol)) {
                    bad++;
                    CHECK_MSG(0, "%s softmax %zux%zu (%zu,%zu): got %.9g want %.9g", backend, rows, cl, r, j,
                              (double)d[r * cl + j], g[j]);
                }
            }
        }
        const double ltol = ldexp(1, -20) * (1 + mag) + (double)rows * (double)cl * ldexp(1, -23);
        CHECK_MSG(fabs(loss - want) <= ltol, "%s softmax %zux%zu loss %.9g want %.9g", backend, rows, cl, (double)loss,
                  want);
        /* accumulate adds to what the loss holds; loss only (no gradient) */
        float acc = 2.5f, lacc = 0;
        CHECK_OK(ctx, hcrt_memcpy(dev, dl, host, &acc, 4));
        CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, dz, dy, rows, cl, dl, NULL, true, s));
        sync_if(s);
        download_from(dev, &lacc, dl, 4);
        CHECK_MSG(fabs(lacc - (2.5 + loss)) <= 1e-5 * (1 + fabs(loss)), "%s softmax accumulate: %g vs 2.5 + %g",
                  backend, (double)lacc, (double)loss);
        if (bitwise)
            CHECK(lacc == 2.5f + loss);
        /* in place (the gradient overwrites the logits), gradient only */
        CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, dz, dy, rows, cl, NULL, dz, false, s));
        sync_if(s);
        download_from(dev, d2, dz, n * 4);
        if (bitwise) {
            CHECK_MSG(memcmp(d, d2, n * 4) == 0, "%s softmax in place differs", backend);
        } else {
            for (size_t i = 0; i < n; i++)
                CHECK(fabsf(d[i] - d2[i]) <= 1e-6f);
        }
        if (bitwise && dev != cpu_dev) {
            void *cz, *cy, *cd, *cl_;
            float *pz = upload_on(cpu_dev, z, n * 4, 0, &cz), *pd = upload_on(cpu_dev, NULL, n * 4, 0, &cd);
            float *pl = upload_on(cpu_dev, NULL, 4, 0, &cl_);
            int32_t *py = upload_on(cpu_dev, y, rows * 4, 0, &cy);
            float closs = 0;
            CHECK_OK(ctx, hcrt_compute_softmax_xent(cpu_dev, pz, py, rows, cl, pl, pd, false, NULL));
            download_from(cpu_dev, d2, pd, n * 4);
            download_from(cpu_dev, &closs, pl, 4);
            CHECK_MSG(closs == loss && memcmp(d, d2, n * 4) == 0, "%s softmax differs from cpu's bits", backend);
            hcrt_mem_free(cpu_dev, cz), hcrt_mem_free(cpu_dev, cy), hcrt_mem_free(cpu_dev, cd),
                hcrt_mem_free(cpu_dev, cl_);
        }
        /* zero rows: the loss is 0 */
        CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, dz, dy, 0, cl, dl, NULL, false, NULL));
        download_from(dev, &lacc, dl, 4);
        CHECK(lacc == 0.0f);
        hcrt_mem_free(dev, zb), hcrt_mem_free(dev, yb), hcrt_mem_free(dev, db), hcrt_mem_free(dev, lb);
        free(z), free(d), free(d2), free(y), free(g);
    }
}

/* ---- element-wise, column sums, casts -------------------------------------------------------------- */

static void test_elementwise(void)
{
    const size_t rows = 37, cols = 1029, n = rows * cols;
    float *x = malloc(n * 4), *bias = malloc(cols * 4), *y = malloc(n * 4), *out = malloc(cols * 4);
    cref_fill(x, n, HCRT_F32, 4.0);
    cref_fill(bias, cols, HCRT_F32, 1.0);
    x[5] = NAN, x[6] = -0.0f, x[7] = INFINITY, x[8] = -INFINITY;
    void *xb, *bb, *yb, *ob;
    float *dx = upload(x, n * 4, &xb), *db = upload(bias, cols * 4, &bb), *dy = upload(NULL, n * 4, &yb);
    float *dout = upload(NULL, cols * 4, &ob);

    CHECK_OK(ctx, hcrt_compute_bias_add(dev, dy, dx, db, rows, cols, stream));
    CHECK_OK(ctx, hcrt_stream_sync(stream));
    download_from(dev, y, dy, n * 4);
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && (isnan(x[i]) ? isnan(y[i]) : y[i] == x[i] + bias[i % cols]);
    CHECK_MSG(ok, "%s bias_add wrong", backend);

    CHECK_OK(ctx, hcrt_compute_relu(dev, dy, dx, n, NULL));
    download_from(dev, y, dy, n * 4);
    ok = true;
    for (size_t i = 0; i < n; i++)
        ok =
            ok && (isnan(x[i]) ? isnan(y[i]) : get_bits(y, i, HCRT_F32) == encode_float(x[i] > 0 ? x[i] : 0, HCRT_F32));
    CHECK_MSG(ok, "%s relu wrong", backend);
    CHECK_OK(ctx, hcrt_compute_relu(dev, dx, dx, n, stream)); /* in place */
    CHECK_OK(ctx, hcrt_stream_sync(stream));
    float *y2 = malloc(n * 4);
    download_from(dev, y2, dx, n * 4);
    CHECK(memcmp(y, y2, n * 4) == 0);

    /* relu backward: act = the original x (with its NaN, -0, inf), dy = bias repeated */
    CHECK_OK(ctx, hcrt_memcpy(dev, dx, host, x, n * 4));
    for (size_t i = 0; i < n; i++)
        y2[i] = bias[i % cols];
    CHECK_OK(ctx, hcrt_memcpy(dev, dy, host, y2, n * 4));
    CHECK_OK(ctx, hcrt_compute_relu_backward(dev, dy, dy, dx, n, NULL)); /* in place on dy */
    download_from(dev, y, dy, n * 4);
    ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && get_bits(y, i, HCRT_F32) == (x[i] > 0 ? get_bits(y2, i, HCRT_F32) : 0);
    CHECK_MSG(ok, "%s relu_backward wrong", backend);

    /* column sums, overwrite then accumulate */
    cref_fill(x, n, HCRT_F32, 4.0);
    CHECK_OK(ctx, hcrt_memcpy(dev, dx, host, x, n * 4));
    for (int acc = 0; acc < 2; acc++) {
        CHECK_OK(ctx, hcrt_compute_col_sum(dev, dout, dx, rows, cols, acc, acc ? stream : NULL));
        sync_if(acc ? stream : NULL);
        float *prev = acc ? malloc(cols * 4) : NULL;
        if (prev)
            memcpy(prev, out, cols * 4);
        download_from(dev, out, dout, cols * 4);
        ok = true;
        for (size_t j = 0; j < cols; j++) {
            double s = 0, mag = 0;
            for (size_t r = 0; r < rows; r++)
                s += x[r * cols + j], mag += fabs(x[r * cols + j]);
            const double want = acc ? prev[j] + s : s;
            const double tol = (double)(rows + 1) * ldexp(1, -24) * (mag + (acc ? fabs(prev[j]) : 0));
            ok = ok && fabs(out[j] - want) <= tol;
        }
        CHECK_MSG(ok, "%s col_sum (accumulate %d) outside its tolerance", backend, acc);
        free(prev);
    }

    /* casts f32 -> f16/bf16 -> f32, and f16 <-> bf16 */
    static const hcrt_dtype_t ct[] = {HCRT_F32, HCRT_F16, HCRT_BF16};
    void *hb, *h2b;
    uint16_t *dh = upload(NULL, n * 2, &hb), *dh2 = upload(NULL, n * 2, &h2b);
    uint16_t *h = malloc(n * 2);
    for (size_t s = 0; s < 3; s++)
        for (size_t d = 0; d < 3; d++) {
            if (s == d)
                continue;
            const void *src = s == 0 ? (void *)dx : (void *)dh2;
            const void *hsrc = s == 0 ? (void *)x : (void *)h;
            if (s != 0) {
                for (size_t i = 0; i < n; i++)
                    h[i] = (uint16_t)random_elem(ct[s]);
                CHECK_OK(ctx, hcrt_memcpy(dev, dh2, host, h, n * 2));
            }
            void *dst = d == 0 ? (void *)dy : (void *)dh;
            CHECK_OK(ctx, hcrt_compute_cast(dev, dst, ct[d], src, ct[s], n, d == 1 ? stream : NULL));
            sync_if(d == 1 ? stream : NULL);
            void *got = malloc(n * 4);
            download_from(dev, got, dst, n * (d == 0 ? 4 : 2));
            ok = true;
            for (size_t i = 0; i < n; i++) {
                const double v = get_float(hsrc, i, ct[s]);
                ok = ok &&
                     (isnan(v) ? isnan(get_float(got, i, ct[d])) : get_bits(got, i, ct[d]) == encode_float(v, ct[d]));
            }
            CHECK_MSG(ok, "%s cast %s -> %s wrong", backend, dtype_names[ct[s]], dtype_names[ct[d]]);
            free(got);
        }
    CHECK_OK(ctx, hcrt_compute_cast(dev, dx, HCRT_F32, dx, HCRT_F32, n, NULL)); /* same buffer, same type */
    hcrt_mem_free(dev, xb), hcrt_mem_free(dev, bb), hcrt_mem_free(dev, yb), hcrt_mem_free(dev, ob);
    hcrt_mem_free(dev, hb), hcrt_mem_free(dev, h2b);
    free(x), free(bias), free(y), free(y2), free(out), free(h);
}

/* ---- optimizers ------------------------------------------------------------------------------------- */

static void test_optim(void)
{
    const size_t n = 4099;
    hcrt_optim_params_t cfg[5];
    for (int i = 0; i < 5; i++) {
        hcrt_optim_params_init(&cfg[i]);
        cfg[i].grad_scale = 1.0 / 96;
        cfg[i].lr = 0.05;
    }
    cfg[1].momentum = 0.9;
    cfg[2].momentum = 0.9, cfg[2].nesterov = true, cfg[2].weight_decay = 1e-4;
    cfg[3].kind = HCRT_OPTIM_ADAMW, cfg[3].lr = 1e-3, cfg[3].weight_decay = 0.01;
    cfg[4] = cfg[3];
    cfg[4].beta1 = 0.8, cfg[4].step = 40;
    float *p = malloc(n * 4), *g = malloc(n * 4), *st = calloc(2 * n, 4), *p2 = malloc(n * 4);
    float *st2 = calloc(2 * n, 4), *got = malloc(2 * n * 4);
    for (int c = 0; c < 5; c++) {
        size_t ns = 0;
        CHECK_OK(ctx, hcrt_optim_state_count(&cfg[c], n, &ns));
        CHECK(ns == (c == 0 ? 0 : c < 3 ? n : 2 * n));
        cref_fill(p, n, HCRT_F32, 1.0);
        cref_fill(g, n, HCRT_F32, 50.0);
        memset(st, 0, 2 * n * 4);
        memcpy(p2, p, n * 4);
        memset(st2, 0, 2 * n * 4);
        void *pb, *gb, *sb = NULL;
        float *dp = upload(p, n * 4, &pb), *dg = upload(g, n * 4, &gb), *ds = ns ? upload(st, ns * 4, &sb) : NULL;
        /* The lowered constants, as the runtime computes them, for the reference. */
        hcrt_backend_optim_t o = {.struct_size = sizeof(o),
                                  .kind = cfg[c].kind,
                                  .nesterov = cfg[c].nesterov,
                                  .grad_scale = (float)cfg[c].grad_scale,
                                  .lr = (float)cfg[c].lr,
                                  .momentum = (float)cfg[c].momentum,
                                  .weight_decay = (float)cfg[c].weight_decay};
        for (int rep = 0; rep < 3; rep++) {
            if (cfg[c].kind == HCRT_OPTIM_ADAMW) {
                const double t = (double)cfg[c].step;
                o.decay = (float)(1 - cfg[c].lr * cfg[c].weight_decay);
                o.step_size = (float)(cfg[c].lr / (1 - pow(cfg[c].beta1, t)));
                o.bias2_sqrt = (float)sqrt(1 - pow(cfg[c].beta2, t));
                o.beta1 = (float)cfg[c].beta1, o.one_minus_beta1 = (float)(1 - cfg[c].beta1);
                o.beta2 = (float)cfg[c].beta2, o.one_minus_beta2 = (float)(1 - cfg[c].beta2);
                o.eps = (float)cfg[c].eps;
            }
            CHECK_OK(ctx, hcrt_compute_optim_step(dev, &cfg[c], dp, dg, ds, n, rep == 1 ? stream : NULL));
            sync_if(rep == 1 ? stream : NULL);
            for (size_t i = 0; i < n; i++)
                cref_optim_elem(&o, &p2[i], g[i], &st2[i], &st2[n + i]);
            cfg[c].step++;
        }
        download_from(dev, got, dp, n * 4);
        CHECK_MSG(memcmp(got, p2, n * 4) == 0, "%s optimizer %d: parameters are not the f32 formula's bits", backend,
                  c);
        if (ns) {
            download_from(dev, got, ds, ns * 4);
            CHECK_MSG(memcmp(got, st2, ns * 4) == 0, "%s optimizer %d: state is not the f32 formula's bits", backend,
                      c);
        }
        hcrt_mem_free(dev, pb), hcrt_mem_free(dev, gb), hcrt_mem_free(dev, sb);
    }
    free(p), free(g), free(st), free(p2), free(st2), free(got);
}

/* ---- one training step on a stream ------------------------------------------------------------------ */

/*
 * A two-layer MLP (in 48 -> hidden 40 -> classes 10), micro-batch 24, SGD with momentum: forward, loss,
 * backward, update, queued on `s` (NULL: synchronously) with no host synchronisation in between. Returns
 * the loss; W1, W2 (and the other state) are updated in place on the device.
 */
typedef struct mlp {
    float *x, *w1, *b1, *w2, *b2, *h, *z, *loss, *dz, *dh, *dw1, *db1, *dw2, *db2, *m1, *m2;
    int32_t *y;
    void *bases[17];
} mlp_t;

enum { MB = 24, IN = 48, HID = 40, CL = 10 };

static void mlp_init(mlp_t *net, uint64_t seed)
{
    const uint64_t saved = rng_state;
    rng_state = seed;
    float x[MB * IN], w1[IN * HID], b1[HID], w2[HID * CL], b2[CL];
    int32_t y[MB];
    cref_fill(x, MB * IN, HCRT_F32, 1.0);
    cref_fill(w1, IN * HID, HCRT_F32, 0.3);
    cref_fill(b1, HID, HCRT_F32, 0.1);
    cref_fill(w2, HID * CL, HCRT_F32, 0.3);
    cref_fill(b2, CL, HCRT_F32, 0.1);
    for (int i = 0; i < MB; i++)
        y[i] = (int32_t)(rnd() % CL);
    rng_state = saved;
    int k = 0;
    net->x = upload(x, sizeof(x), &net->bases[k++]);
    net->w1 = upload(w1, sizeof(w1), &net->bases[k++]);
    net->b1 = upload(b1, sizeof(b1), &net->bases[k++]);
    net->w2 = upload(w2, sizeof(w2), &net->bases[k++]);
    net->b2 = upload(b2, sizeof(b2), &net->bases[k++]);
    net->y = upload(y, sizeof(y), &net->bases[k++]);
    net->h = upload(NULL, MB * HID * 4, &net->bases[k++]);
    net->z = upload(NULL, MB * CL * 4, &net->bases[k++]);
    net->loss = upload(NULL, 4, &net->bases[k++]);
    net->dz = upload(NULL, MB * CL * 4, &net->bases[k++]);
    net->dh = upload(NULL, MB * HID * 4, &net->bases[k++]);
    net->dw1 = upload(NULL, IN * HID * 4, &net->bases[k++]);
    net->db1 = upload(NULL, HID * 4, &net->bases[k++]);
    net->dw2 = upload(NULL, HID * CL * 4, &net->bases[k++]);
    net->db2 = upload(NULL, CL * 4, &net->bases[k++]);
    net->m1 = upload(NULL, IN * HID * 4, &net->bases[k++]);
    net->m2 = upload(NULL, HID * CL * 4, &net->bases[k++]);
}

static void mlp_step(mlp_t *n, hcrt_stream_t *s)
{
    CHECK_OK(ctx,
             hcrt_compute_gemm(dev, false, false, MB, HID, IN, 1, n->x, IN, n->w1, HID, 0, n->h, HID, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_bias_add(dev, n->h, n->h, n->b1, MB, HID, s));
    CHECK_OK(ctx, hcrt_compute_relu(dev, n->h, n->h, MB * HID, s));
    CHECK_OK(ctx, hcrt_compute_gemm(dev, false, false, MB, CL, HID, 1, n->h, HID, n->w2, CL, 0, n->z, CL, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_bias_add(dev, n->z, n->z, n->b2, MB, CL, s));
    CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, n->z, n->y, MB, CL, n->loss, n->dz, false, s));
    /* backward: two micro-batches' worth, the second accumulating (beta 1, accumulate) */
    for (int mb = 0; mb < 2; mb++) {
        CHECK_OK(ctx, hcrt_compute_gemm(dev, true, false, HID, CL, MB, 1, n->h, HID, n->dz, CL, mb ? 1 : 0, n->dw2, CL,
                                        HCRT_F32, s));
        CHECK_OK(ctx, hcrt_compute_col_sum(dev, n->db2, n->dz, MB, CL, mb, s));
    }
    CHECK_OK(ctx,
             hcrt_compute_gemm(dev, false, true, MB, HID, CL, 1, n->dz, CL, n->w2, CL, 0, n->dh, HID, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_relu_backward(dev, n->dh, n->dh, n->h, MB * HID, s));
    CHECK_OK(ctx,
             hcrt_compute_gemm(dev, true, false, IN, HID, MB, 1, n->x, IN, n->dh, HID, 0, n->dw1, HID, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_col_sum(dev, n->db1, n->dh, MB, HID, false, s));
    hcrt_optim_params_t o;
    hcrt_optim_params_init(&o);
    o.momentum = 0.9, o.lr = 0.1, o.grad_scale = 1.0 / MB;
    CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n->w1, n->dw1, n->m1, IN * HID, s));
    CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n->w2, n->dw2, n->m2, HID * CL, s));
    o.momentum = 0;
    CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n->b1, n->db1, NULL, HID, s));
    CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n->b2, n->db2, NULL, CL, s));
}

static void mlp_free(mlp_t *n)
{
    for (int i = 0; i < 17; i++)
        hcrt_mem_free(dev, n->bases[i]);
}

static void test_training_step(void)
{
    mlp_t a, b;
    mlp_init(&a, 42);
    mlp_init(&b, 42);
    float la[5], lb[5];
    for (int step = 0; step < 5; step++) {
        mlp_step(&a, stream); /* queued, the host never waits in between */
        mlp_step(&b, NULL);
        download_from(dev, &lb[step], b.loss, 4);
        CHECK_OK(ctx, hcrt_stream_sync(stream));
        download_from(dev, &la[step], a.loss, 4);
    }
    float wa[IN * HID], wb[IN * HID];
    download_from(dev, wa, a.w1, sizeof(wa));
    download_from(dev, wb, b.w1, sizeof(wb));
    if (bitwise)
        CHECK_MSG(memcmp(wa, wb, sizeof(wa)) == 0 && memcmp(la, lb, sizeof(la)) == 0,
                  "%s: a training step on a stream differs from the same step run synchronously", backend);
    for (int i = 0; i < IN * HID; i++)
        CHECK(fabsf(wa[i] - wb[i]) <= 1e-5f);
    fprintf(stderr, "%s: MLP loss over 5 steps: %.4f %.4f %.4f %.4f %.4f\n", backend, (double)la[0], (double)la[1],
            (double)la[2], (double)la[3], (double)la[4]);
    CHECK_MSG(la[4] < la[0], "%s: the loss did not fall on one fixed batch (%g -> %g)", backend, (double)la[0],
              (double)la[4]);
    mlp_free(&a);
    mlp_free(&b);
}

/* ---- bad arguments ---------------------------------------------------------------------------------- */

#define EXPECT_ARG(call, name)                                                                                         \
    do {                                                                                                               \
        CHECK_STATUS(ctx, (call), HCRT_ERR_INVALID_ARG);                                                               \
        CHECK_MSG(strstr(hcrt_last_error(ctx), name) != NULL, "error for %s does not name '%s': %s", #call, name,      \
                  hcrt_last_error(ctx));                                                                               \
    } while (0)

static void test_bad_args(void)
{
    void *base, *lb;
    float *p = upload(NULL, 4096, &base); /* 1024 floats */
    int32_t *labels = upload(NULL, 64, &lb);
    float *q = p + 512;
    /* another device's stream */
    hcrt_device_t *other = NULL;
    hcrt_stream_t *other_s = NULL;
    if (hcrt_device_find(ctx, is_sim ? "sim" : "cpu", is_sim ? 1 : 0, &other) == HCRT_OK && other != dev)
        REQUIRE_OK(ctx, hcrt_stream_create(other, &other_s));

    /* gemm */
    EXPECT_ARG(hcrt_compute_gemm(NULL, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, p + 8, 2, HCRT_F32, NULL), "device");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, p + 8, 2, HCRT_F64, NULL), "dtype");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, p + 8, 2, (hcrt_dtype_t)77, NULL),
               "dtype");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, NULL, 2, q, 2, 0, p + 8, 2, HCRT_F32, NULL), "'a'");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, NULL, 2, 0, p + 8, 2, HCRT_F32, NULL), "'b'");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, NULL, 2, HCRT_F32, NULL), "'c'");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 3, 4, 1, p, 3, q, 3, 0, p + 8, 3, HCRT_F32, NULL), "lda");
    EXPECT_ARG(hcrt_compute_gemm(dev, true, false, 5, 3, 4, 1, p, 4, q, 3, 0, p + 32, 3, HCRT_F32, NULL), "lda");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, true, 2, 3, 4, 1, p, 4, q, 3, 0, p + 32, 3, HCRT_F32, NULL), "ldb");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 3, 4, 1, p, 4, q, 3, 0, p + 32, 2, HCRT_F32, NULL), "ldc");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, p + 2, 2, HCRT_F32, NULL), "overlaps");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, q + 1, 2, HCRT_F32, NULL),
               "'c' overlaps 'b'");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, (char *)p + 1, 2, q, 2, 0, p + 8, 2, HCRT_F32, NULL),
               "aligned");
    EXPECT_ARG(
        hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, (float *)((char *)p + 130), 2, HCRT_F32, NULL),
        "aligned");
    EXPECT_ARG(hcrt_compute_gemm(dev, false, false, SIZE_MAX / 2, 2, 2, 1, p, 2, q, 2, 0, p + 8, 2, HCRT_F32, NULL),
               "overflow");
    if (other_s)
        EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 2, 2, 2, 1, p, 2, q, 2, 0, p + 8, 2, HCRT_F32, other_s),
                   "stream");
    CHECK_OK(ctx, hcrt_compute_gemm(dev, false, false, 0, 2, 2, 1, NULL, 2, NULL, 2, 0, NULL, 2, HCRT_F32, NULL));

    /* bias add, relu, relu backward */
    EXPECT_ARG(hcrt_compute_bias_add(NULL, p, p, q, 2, 2, NULL), "device");
    EXPECT_ARG(hcrt_compute_bias_add(dev, NULL, p, q, 2, 2, NULL), "'y'");
    EXPECT_ARG(hcrt_compute_bias_add(dev, p, NULL, q, 2, 2, NULL), "'x'");
    EXPECT_ARG(hcrt_compute_bias_add(dev, p, p, NULL, 2, 2, NULL), "'bias'");
    EXPECT_ARG(hcrt_compute_bias_add(dev, p + 1, p, q, 2, 2, NULL), "'y' overlaps 'x'");
    EXPECT_ARG(hcrt_compute_bias_add(dev, p, p, p + 2, 2, 2, NULL), "'y' overlaps 'bias'");
    EXPECT_ARG(hcrt_compute_bias_add(dev, p, p, q, SIZE_MAX / 2, 4, NULL), "overflow");
    EXPECT_ARG(hcrt_compute_relu(dev, NULL, p, 4, NULL), "'y'");
    EXPECT_ARG(hcrt_compute_relu(dev, p + 2, p, 4, NULL), "overlaps");
    EXPECT_ARG(hcrt_compute_relu(dev, p, (float *)((char *)q + 2), 4, NULL), "aligned");
    EXPECT_ARG(hcrt_compute_relu_backward(dev, p, q, NULL, 4, NULL), "'act'");
    EXPECT_ARG(hcrt_compute_relu_backward(dev, p, NULL, q, 4, NULL), "'dy'");
    EXPECT_ARG(hcrt_compute_relu_backward(dev, p + 1, p, q, 4, NULL), "'dx' overlaps 'dy'");
    EXPECT_ARG(hcrt_compute_relu_backward(dev, q + 1, p, q, 4, NULL), "'dx' overlaps 'act'");
    if (other_s)
        EXPECT_ARG(hcrt_compute_relu(dev, p, p, 4, other_s), "stream");
    CHECK_OK(ctx, hcrt_compute_relu(dev, NULL, NULL, 0, NULL));

    /* softmax cross-entropy, column sums */
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, p, labels, 2, 0, q, NULL, false, NULL), "classes");
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, p, labels, 2, 3, NULL, NULL, false, NULL), "'loss' and 'dlogits'");
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, NULL, labels, 2, 3, q, NULL, false, NULL), "'logits'");
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, p, NULL, 2, 3, q, NULL, false, NULL), "'labels'");
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, p, labels, 2, 3, q, p + 1, false, NULL), "'dlogits' overlaps 'logits'");
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, p, labels, 2, 3, p + 5, NULL, false, NULL), "'loss' overlaps 'logits'");
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, p, labels, 2, 3, (float *)labels, NULL, false, NULL),
               "'loss' overlaps 'labels'");
    EXPECT_ARG(hcrt_compute_softmax_xent(dev, p, labels, 2, 3, q, q, false, NULL), "'loss' overlaps 'dlogits'");
    EXPECT_ARG(hcrt_compute_col_sum(dev, NULL, p, 2, 3, false, NULL), "'out'");
    EXPECT_ARG(hcrt_compute_col_sum(dev, p + 2, p, 2, 3, false, NULL), "'out' overlaps 'x'");
    EXPECT_ARG(hcrt_compute_col_sum(dev, q, NULL, 2, 3, false, NULL), "'x'");

    /* optimizer */
    hcrt_optim_params_t o;
    hcrt_optim_params_init(&o);
    size_t ns;
    EXPECT_ARG(hcrt_compute_optim_step(dev, NULL, p, q, NULL, 4, NULL), "params");
    EXPECT_ARG(hcrt_optim_state_count(&o, 4, NULL), "state_count");
    EXPECT_ARG(hcrt_optim_state_count(NULL, 4, &ns), "params");
    hcrt_optim_params_t bad = o;
    bad.struct_size = 0;
    EXPECT_ARG(hcrt_compute_optim_step(dev, &bad, p, q, NULL, 4, NULL), "struct_size");
#define BAD_FIELD(assign, name)                                                                                        \
    do {                                                                                                               \
        bad = o;                                                                                                       \
        assign;                                                                                                        \
        EXPECT_ARG(hcrt_compute_optim_step(dev, &bad, p, q, p + 64, 4, NULL), name);                                   \
        EXPECT_ARG(hcrt_optim_state_count(&bad, 4, &ns), name);                                                        \
    } while (0)
    BAD_FIELD(bad.kind = (hcrt_optimizer_t)7, "params->kind");
    BAD_FIELD(bad.lr = -1, "params->lr");
    BAD_FIELD(bad.lr = NAN, "params->lr");
    BAD_FIELD(bad.lr = 1e300, "lr");
    BAD_FIELD(bad.grad_scale = INFINITY, "params->grad_scale");
    BAD_FIELD(bad.weight_decay = -0.5, "params->weight_decay");
    BAD_FIELD(bad.momentum = -0.9, "params->momentum");
    BAD_FIELD(bad.nesterov = true, "params->nesterov");
    BAD_FIELD((bad.kind = HCRT_OPTIM_ADAMW, bad.beta1 = 1.0), "params->beta1");
    BAD_FIELD((bad.kind = HCRT_OPTIM_ADAMW, bad.beta2 = -0.1), "params->beta2");
    BAD_FIELD((bad.kind = HCRT_OPTIM_ADAMW, bad.eps = INFINITY), "params->eps");
    BAD_FIELD((bad.kind = HCRT_OPTIM_ADAMW, bad.step = 0), "params->step");
#undef BAD_FIELD
    o.momentum = 0.9;
    EXPECT_ARG(hcrt_compute_optim_step(dev, &o, p, q, NULL, 4, NULL), "'state'");
    EXPECT_ARG(hcrt_compute_optim_step(dev, &o, p, p + 2, q, 4, NULL), "'param' overlaps 'grad'");
    EXPECT_ARG(hcrt_compute_optim_step(dev, &o, p, q, p + 3, 4, NULL), "'state' overlaps 'param'");
    EXPECT_ARG(hcrt_compute_optim_step(dev, &o, p, q, NULL, SIZE_MAX / 4, NULL), "count");
    o.kind = HCRT_OPTIM_ADAMW;
    EXPECT_ARG(hcrt_compute_optim_step(dev, &o, p, q, q + 3, 4, NULL), "'state' overlaps 'grad'"); /* 8 floats */
    CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, p, q, q + 8, 4, NULL));

    /* casts */
    EXPECT_ARG(hcrt_compute_cast(dev, p, HCRT_I32, q, HCRT_F32, 4, NULL), "dst_dtype");
    EXPECT_ARG(hcrt_compute_cast(dev, p, HCRT_F16, q, HCRT_F64, 4, NULL), "src_dtype");
    EXPECT_ARG(hcrt_compute_cast(dev, p, HCRT_F16, p, HCRT_F32, 4, NULL), "overlaps");
    EXPECT_ARG(hcrt_compute_cast(dev, NULL, HCRT_F16, p, HCRT_F32, 4, NULL), "'dst'");
    EXPECT_ARG(hcrt_compute_cast(dev, (char *)q + 1, HCRT_F16, p, HCRT_F32, 4, NULL), "aligned");

    if (!gpu) {
        /* labels out of range: at the call, and on a stream at its next synchronisation */
        const int32_t bad_labels[3] = {0, 3, 1};
        CHECK_OK(ctx, hcrt_memcpy(dev, labels, host, bad_labels, sizeof(bad_labels)));
        CHECK_STATUS(ctx, hcrt_compute_softmax_xent(dev, p, labels, 3, 3, q, NULL, false, NULL), HCRT_ERR_INVALID_ARG);
        CHECK_MSG(strstr(hcrt_last_error(ctx), "labels[1] is 3") != NULL, "%s", hcrt_last_error(ctx));
        CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, p, labels, 3, 3, q, NULL, false, stream));
        CHECK_STATUS(ctx, hcrt_stream_sync(stream), HCRT_ERR_INVALID_ARG);
        CHECK_MSG(strstr(hcrt_last_error(ctx), "labels[1] is 3") != NULL, "%s", hcrt_last_error(ctx));
        CHECK_OK(ctx, hcrt_stream_sync(stream)); /* reported once */
    } else {
        /* a GPU kernel cannot report it: that row's loss and gradient are NaN, and so is the total */
        const int32_t bad_labels[3] = {0, 3, 1};
        CHECK_OK(ctx, hcrt_memcpy(dev, labels, host, bad_labels, sizeof(bad_labels)));
        CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, p, labels, 3, 3, q, p + 16, false, NULL));
        float out[10];
        download_from(dev, out, q, 4);
        download_from(dev, out + 1, p + 16, 9 * 4);
        CHECK(isnan(out[0]) && isnan(out[4]) && isnan(out[6]) && !isnan(out[1]) && !isnan(out[7]));
    }
    /* Every backend: an operand that runs past the end of its allocation (hcrt_mem_alloc's table) */
    EXPECT_ARG(hcrt_compute_relu(dev, p + 1000, q, 100, NULL), "argument 'y' needs 400 bytes from offset 4000");
    EXPECT_ARG(hcrt_compute_col_sum(dev, p, q, 2, 300, false, NULL), "argument 'x' needs 2400 bytes from offset 2048");
    if (is_sim) {
        /* memory that is not a live allocation of this device, a range past an allocation's end, host memory */
        float h[16] = {0};
        EXPECT_ARG(hcrt_compute_relu(dev, h, h, 16, NULL), "live allocation");
        EXPECT_ARG(hcrt_compute_relu(dev, p, p + 1000, 100, NULL), "'x'");
        EXPECT_ARG(hcrt_compute_gemm(dev, false, false, 4, 4, 4, 1, p, 4, h, 4, 0, q, 4, HCRT_F32, NULL), "'b'");
        if (other) {
            void *ob;
            float *op = upload_on(other, NULL, 64, 0, &ob);
            EXPECT_ARG(hcrt_compute_relu(dev, op, op, 16, NULL), "sim device 0");
            hcrt_mem_free(other, ob);
        }
        /* an error detected at the call leaves the stream usable */
        CHECK_OK(ctx, hcrt_compute_relu(dev, p, p, 16, stream));
        CHECK_OK(ctx, hcrt_stream_sync(stream));
    }
    hcrt_stream_destroy(other_s);
    hcrt_mem_free(dev, base);
    hcrt_mem_free(dev, lb);
}

/* ---- GPU mocks: which gemm path ran --------------------------------------------------------------- */

/* An int a loaded library exports (the mocks' counters), or NULL. */
static int *loaded_int(const char *path, const char *sym)
{
    void *h = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
    int *p = h ? dlsym(h, sym) : NULL;
    if (h)
        dlclose(h); /* the library stays: this only dropped the reference RTLD_NOLOAD took */
    return p;
}

/*
 * cuda over the mocks: gemm went through cuBLAS (the stand-in counts its gemms; their results were checked
 * above, so the row-major transpose trick is right), and a device whose cublasCreate fails falls back to
 * the plugin's own kernel with the right result. hip: every gemm ran the kernel.
 */
static void test_gpu_mock_paths(void)
{
    const char *plugin = NULL;
    int nb = 0;
    hcrt_backend_count(ctx, &nb);
    for (int i = 0; i < nb; i++) {
        hcrt_backend_info_t info = {.struct_size = sizeof(info)};
        if (hcrt_backend_get_info(ctx, i, &info) == HCRT_OK && strcmp(info.name, backend) == 0)
            plugin = info.path;
    }
    int *kernels = loaded_int(plugin, "hcrt_mock_gemm_kernel_launches");
    CHECK_MSG(kernels != NULL, "mock plugin %s exports no kernel counter", plugin ? plugin : "(none)");
    if (!kernels)
        return;
    if (strcmp(backend, "hip") == 0) {
        CHECK_MSG(*kernels > 0, "hip gemm never ran its kernel");
        return;
    }
    int *blas = loaded_int(getenv("HCRT_TEST_MOCK_CUBLAS"), "hcrt_mock_cublas_gemms");
    int *refuse = loaded_int(getenv("HCRT_TEST_MOCK_CUBLAS"), "hcrt_mock_cublas_refuse_create");
    CHECK_MSG(blas && refuse && *blas > 100, "cuda gemm did not go through cuBLAS (%d gemms there)", blas ? *blas : -1);
    hcrt_device_t *d1 = NULL;
    if (!blas || !refuse || hcrt_device_find(ctx, "cuda", 1, &d1) != HCRT_OK)
        return;
    *refuse = 1;
    hcrt_device_t *saved = dev;
    dev = d1;
    const int k0 = *kernels, b0 = *blas;
    check_gemm(7, 13, 5, false, true, 0.5f, 1, HCRT_F32, 0, NULL);
    check_gemm(33, 70, 129, true, false, 1, 0, HCRT_BF16, 3, NULL);
    /* each check runs the gemm on the device at two alignments (and once more on cpu) */
    CHECK_MSG(*kernels == k0 + 2 * 2 && *blas == b0, "device without cuBLAS: %d kernel gemms, %d cuBLAS gemms",
              *kernels - k0, *blas - b0);
    dev = saved;
    *refuse = 0;
}

/* ---- sim: a lost device ---------------------------------------------------------------------------- */

static void test_sim_lost(void)
{
    setenv("HCRT_SIM_FAULT", "lost_after=3,dev=0", 1);
    hcrt_context_t *c = open_ctx();
    unsetenv("HCRT_SIM_FAULT");
    hcrt_device_t *d = NULL;
    REQUIRE_OK(c, hcrt_device_find(c, "sim", 0, &d));
    void *p = NULL;
    CHECK_OK(c, hcrt_mem_alloc(d, 256, &p));           /* op 1 */
    CHECK_OK(c, hcrt_memset(d, p, 0, 256));            /* op 2 */
    CHECK_OK(c, hcrt_compute_relu(d, p, p, 64, NULL)); /* op 3 */
    CHECK_STATUS(c, hcrt_compute_relu(d, p, p, 64, NULL), HCRT_ERR_DEVICE_LOST);
    CHECK_STATUS(
        c,
        hcrt_compute_gemm(d, false, false, 2, 2, 2, 1, p, 2, (float *)p + 8, 2, 0, (float *)p + 16, 2, HCRT_F32, NULL),
        HCRT_ERR_DEVICE_LOST);
    CHECK(strstr(hcrt_last_error(c), "lost") != NULL);
    CHECK_OK(NULL, hcrt_finalize(c));
}

int main(int argc, char **argv)
{
    backend = argc > 1 ? argv[1] : "cpu";
    is_sim = strcmp(backend, "sim") == 0;
    gpu = strcmp(backend, "cuda") == 0 || strcmp(backend, "hip") == 0;
    bitwise = !gpu || getenv("HCRT_TEST_GPU_MOCK") != NULL;
    ctx = open_ctx();
    if (hcrt_device_find(ctx, backend, 0, &dev) != HCRT_OK) {
        if (gpu)
            TEST_SKIP("backend %s has no device here: %s", backend, hcrt_last_error(ctx));
        fprintf(stderr, "FATAL: backend %s has no device: %s\n", backend, hcrt_last_error(ctx));
        return 1;
    }
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    cpu_dev = host;
    if (!hcrt_device_has_compute(dev)) {
        fprintf(stderr, "FATAL: backend %s offers no compute extension (every shipped backend must)\n", backend);
        return 1;
    }
    REQUIRE_OK(ctx, hcrt_stream_create(dev, &stream));
    test_gemm();
    test_softmax();
    test_elementwise();
    test_optim();
    test_training_step();
    test_bad_args();
    if (gpu && getenv("HCRT_TEST_GPU_MOCK"))
        test_gpu_mock_paths();
    CHECK_OK(ctx, hcrt_stream_destroy(stream));
    CHECK_OK(NULL, hcrt_finalize(ctx));
    if (is_sim)
        test_sim_lost();
    TEST_DONE();
}
