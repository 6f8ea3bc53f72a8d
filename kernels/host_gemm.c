/*
 * kernels/host_gemm.c - the host gemm of the compute extension: c = alpha * op(a) op(b) + beta * c.
 *
 * hcrt's own kernel rather than a BLAS, for determinism: each element of c is one chain of fused
 * multiply-adds over k in ascending order, and that holds on every path (AVX-512, AVX2, portable C with
 * fmaf()), every CPU and every alignment, because the paths differ only in how many elements they compute
 * at once, never in the order of one element's operations. A BLAS picks its kernel by CPU model at run
 * time (Debian's OpenBLAS has one per microarchitecture), splits k differently per kernel, and may thread,
 * so two nodes of one job could round the same gradient differently; exact mode cannot allow that. The
 * cost: measured against single-threaded OpenBLAS on the training job's shapes (docs/performance.md).
 *
 * The blocking is GotoBLAS's: for each block of NC columns of c and KC of k, b's rows are packed into
 * panels of NR columns (or, when b is f32 and not transposed, read in place, which measured faster on
 * the job's shapes: the tile kernel streams its rows with a fixed stride); for each block of MC rows, a is
 * packed into panels of MR rows (transposes and f16/bf16 widening happen here, exactly); then every
 * MR x NR tile runs the register kernel over the KC block. Between blocks of k the partial sums go to
 * memory as f32 and come back unchanged, so blocking k does not alter the chain: into c itself when
 * beta == 0, else into a scratch matrix, and the last block applies alpha and beta.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/host_compute.h"
#include "kernels/host_convert.h"
#include "kernels/host_gemm_kernels.h"

/* Blocking, measured on the reference machine (Zen 4, 1 MiB L2 per core): the a block (MC x KC f32,
 * 240 KiB) stays in L2, a panel of b (KC x 64 f32, 128 KiB) streams from L2; NC (the columns of b packed
 * at once when b cannot be read in place) made no difference between 256 and 1024. */
#define GEMM_KC 512
#define GEMM_MC 120
#define GEMM_NC 512

#define PORT_MR 6
#define PORT_NR 16
/* Only the last block of columns may end in a partial panel (the in-place path packs that one alone). */
_Static_assert(GEMM_NC % HCRT__GEMM_AVX512_NR == 0 && GEMM_NC % HCRT__GEMM_AVX2_NR == 0 && GEMM_NC % PORT_NR == 0,
               "GEMM_NC is a multiple of every kernel's NR");
/* The largest tile of any kernel, for the edge-tile buffers. */
#define TILE_MAX (HCRT__GEMM_AVX512_MR * HCRT__GEMM_AVX512_NR)

/* Portable tile kernel (contract in host_gemm_kernels.h). fmaf() is exact (one rounding) everywhere:
 * compiled for a CPU without FMA it is a libm call, slow but the same bits. */
static void tile_portable(size_t kc, const float *a, const float *b, size_t ldb, const float *win, size_t ldw,
                          float *out, size_t ldo, bool final, float alpha, float beta, bool nt)
{
    (void)nt; /* plain stores: this kernel is for CPUs without the vector units, not for speed */
    float acc[PORT_MR][PORT_NR];
    for (int r = 0; r < PORT_MR; r++)
        for (int j = 0; j < PORT_NR; j++)
            acc[r][j] = win ? win[(size_t)r * ldw + j] : 0.0f;
    for (size_t p = 0; p < kc; p++)
        for (int r = 0; r < PORT_MR; r++) {
            const float x = a[p * PORT_MR + r];
            for (int j = 0; j < PORT_NR; j++)
                acc[r][j] = fmaf(x, b[p * ldb + j], acc[r][j]);
        }
    for (int r = 0; r < PORT_MR; r++)
        for (int j = 0; j < PORT_NR; j++) {
            float *o = out + (size_t)r * ldo + j;
            float x = acc[r][j];
            if (final) {
                x = alpha * x;
                if (beta != 0.0f)
                    x = x + beta * *o;
            }
            *o = x;
        }
}

/* ---- kernel choice ------------------------------------------------------------------------------- */

typedef struct gemm_kernel {
    size_t mr, nr;
    hcrt__gemm_tile_fn fn;
} gemm_kernel_t;

static const gemm_kernel_t gemm_kernels[] = {
    [HCRT__GEMM_PORTABLE] = {PORT_MR, PORT_NR, tile_portable},
    [HCRT__GEMM_AVX2] = {HCRT__GEMM_AVX2_MR, HCRT__GEMM_AVX2_NR, hcrt__gemm_tile_avx2},
    [HCRT__GEMM_AVX512] = {HCRT__GEMM_AVX512_MR, HCRT__GEMM_AVX512_NR, hcrt__gemm_tile_avx512},
};

/* -1: not decided; otherwise the hcrt__gemm_isa_t in use. Racing first calls agree. */
static int gemm_isa = -1;

hcrt__gemm_isa_t hcrt__gemm_isa_best(void)
{
    if (hcrt__gemm_have_avx512())
        return HCRT__GEMM_AVX512;
    if (hcrt__gemm_have_avx2())
        return HCRT__GEMM_AVX2;
    return HCRT__GEMM_PORTABLE;
}

hcrt__gemm_isa_t hcrt__gemm_isa_force(int isa)
{
    const int best = (int)hcrt__gemm_isa_best();
    const int use = isa < 0 || isa > best ? best : isa;
    __atomic_store_n(&gemm_isa, use, __ATOMIC_RELAXED);
    return (hcrt__gemm_isa_t)use;
}

static const gemm_kernel_t *gemm_kernel(void)
{
    int isa = __atomic_load_n(&gemm_isa, __ATOMIC_RELAXED);
    if (isa < 0)
        isa = (int)hcrt__gemm_isa_force(-1);
    return &gemm_kernels[isa];
}

/* ---- packing ------------------------------------------------------------------------------------- */

/* Widens n contiguous elements of `dtype` starting at element index `at` of src into dst (f32). */
static void widen(float *dst, const void *src, size_t at, size_t n, hcrt_dtype_t dtype)
{
    if (dtype == HCRT_F32) {
        memcpy(dst, (const float *)src + at, n * sizeof(float));
    } else if (dtype == HCRT_F16) {
        const uint16_t *s = (const uint16_t *)src + at;
        for (size_t i = 0; i < n; i++)
            dst[i] = f16_to_f32(s[i]);
    } else {
        const uint16_t *s = (const uint16_t *)src + at;
        for (size_t i = 0; i < n; i++)
            dst[i] = bf16_to_f32(s[i]);
    }
}

/*
 * Packs rows [i0, i0 + mc) and columns [p0, p0 + kc) of op(a) into panels of mr rows: panel q holds
 * element (q * mr + r, p) at dst[q * mr * kc + p * mr + r]; rows past mc are zero (their results are
 * never stored). `row` is a scratch line of kc floats (for widening 16-bit elements).
 */
static void pack_a(float *dst, const void *a, size_t lda, bool trans, hcrt_dtype_t dtype, size_t i0, size_t mc,
                   size_t p0, size_t kc, size_t mr, float *row)
{
    const float *af = a;
    for (size_t ir = 0; ir < mc; ir += mr) {
        float *panel = dst + ir * kc;
        const size_t rv = mc - ir < mr ? mc - ir : mr;
        if (trans) {
            /* op(a)(i, p) = a[p][i]: the panel's rows are contiguous in each stored row p */
            for (size_t p = 0; p < kc; p++) {
                const size_t at = (p0 + p) * lda + i0 + ir;
                const float *src = af + at;
                if (dtype != HCRT_F32) {
                    widen(row, a, at, rv, dtype);
                    src = row;
                }
                for (size_t r = 0; r < mr; r++)
                    panel[p * mr + r] = r < rv ? src[r] : 0.0f;
            }
            continue;
        }
        for (size_t r = 0; r < mr; r++) {
            if (r >= rv) {
                for (size_t p = 0; p < kc; p++)
                    panel[p * mr + r] = 0.0f;
                continue;
            }
            const size_t at = (i0 + ir + r) * lda + p0;
            const float *src = af + at;
            if (dtype != HCRT_F32) {
                widen(row, a, at, kc, dtype);
                src = row;
            }
            for (size_t p = 0; p < kc; p++)
                panel[p * mr + r] = src[p];
        }
    }
}

/* Packs rows [p0, p0 + kc) and columns [j0, j0 + cv) of op(b) into one panel of nr columns (dst[p * nr +
 * j]); columns past cv are zero. */
static void pack_b(float *dst, const void *b, size_t ldb, bool trans, hcrt_dtype_t dtype, size_t p0, size_t kc,
                   size_t j0, size_t cv, size_t nr, bool avx512)
{
    if (!trans) {
        for (size_t p = 0; p < kc; p++) {
            widen(dst + p * nr, b, (p0 + p) * ldb + j0, cv, dtype);
            for (size_t j = cv; j < nr; j++)
                dst[p * nr + j] = 0.0f;
        }
        return;
    }
    /* op(b)(p, j) = b[j][p]: a transpose, done in blocks of 16 values of p (one cache line of each stored
     * row, used whole at once) so that neither the reads (rows ldb apart, which alias in L1 when ldb is a
     * multiple of 1024 floats) nor the writes (nr floats apart) miss more than once per line: much faster
     * than packing a column or a row at a time (docs/performance.md, "Compute"). */
    if (dtype == HCRT_F32 && avx512) {
        /* the same data, 16 x 16 blocks transposed in registers: faster again */
        hcrt__gemm_pack_bt_avx512(dst, nr, (const float *)b + j0 * ldb + p0, ldb, kc, cv);
    } else {
        float line[16];
        for (size_t pb = 0; pb < kc; pb += 16) {
            const size_t pe = kc - pb < 16 ? kc - pb : 16;
            for (size_t j = 0; j < cv; j++) {
                widen(line, b, (j0 + j) * ldb + p0 + pb, pe, dtype);
                for (size_t q = 0; q < pe; q++)
                    dst[(pb + q) * nr + j] = line[q];
            }
        }
    }
    for (size_t p = 0; p < kc && cv < nr; p++)
        for (size_t j = cv; j < nr; j++)
            dst[p * nr + j] = 0.0f;
}

/* ---- the driver ---------------------------------------------------------------------------------- */

static size_t min_sz(size_t x, size_t y)
{
    return x < y ? x : y;
}

static size_t round_up(size_t x, size_t q)
{
    return (x + q - 1) / q * q;
}

static float *alloc_floats(size_t n)
{
    return aligned_alloc(64, round_up(n * sizeof(float), 64));
}

/* k == 0: every element is alpha * (+0), plus beta * c when beta != 0 (the chain of no products). */
static void gemm_no_k(size_t m, size_t n, float alpha, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            float x = alpha * 0.0f;
            if (beta != 0.0f)
                x = x + beta * c[i * ldc + j];
            c[i * ldc + j] = x;
        }
}

/* What the tiles of one block of k read and write: partial sums in (NULL: start at +0) and the
 * destination, with their row strides; `final` on the last block. */
typedef struct gemm_target {
    const float *win;
    size_t ldw;
    float *out;
    size_t ldo;
    bool final;
    bool nt; /* non-temporal final stores (see host_gemm_kernels.h) */
} gemm_target_t;

/* Runs the tile at (i, j) of size rv x cv. Full tiles go straight to the kernel; edge tiles through
 * MR x NR buffers, so the kernel never touches memory outside the matrices. */
static void run_tile(const gemm_kernel_t *kn, size_t kc, const float *ap, const float *bp, size_t ldbp,
                     const gemm_target_t *t, size_t i, size_t j, size_t rv, size_t cv, float alpha, float beta)
{
    const float *win = t->win ? t->win + i * t->ldw + j : NULL;
    float *out = t->out + i * t->ldo + j;
    if (rv == kn->mr && cv == kn->nr) {
        kn->fn(kc, ap, bp, ldbp, win, t->ldw, out, t->ldo, t->final, alpha, beta, t->nt);
        return;
    }
    /* rows and columns past the edge are computed from the zero padding and dropped; zeroing the
     * buffers gives them defined inputs */
    float tw[TILE_MAX] = {0}, to[TILE_MAX] = {0};
    const size_t nr = kn->nr;
    for (size_t r = 0; r < rv; r++) {
        if (win)
            memcpy(tw + r * nr, win + r * t->ldw, cv * sizeof(float));
        if (t->final && beta != 0.0f)
            memcpy(to + r * nr, out + r * t->ldo, cv * sizeof(float));
    }
    kn->fn(kc, ap, bp, ldbp, win ? tw : NULL, nr, to, nr, t->final, alpha, beta, false);
    for (size_t r = 0; r < rv; r++)
        memcpy(out + r * t->ldo, to + r * nr, cv * sizeof(float));
}

hcrt_status_t hcrt__host_gemm(bool trans_a, bool trans_b, size_t m, size_t n, size_t k, float alpha, const void *a,
                              size_t lda, const void *b, size_t ldb, float beta, float *c, size_t ldc,
                              hcrt_dtype_t dtype)
{
    if (dtype != HCRT_F32 && dtype != HCRT_F16 && dtype != HCRT_BF16)
        return HCRT_ERR_INVALID_ARG;
    if (m == 0 || n == 0)
        return HCRT_OK;
    if (!c || (k > 0 && (!a || !b)))
        return HCRT_ERR_INVALID_ARG;
    if (k == 0) {
        gemm_no_k(m, n, alpha, beta, c, ldc);
        return HCRT_OK;
    }
    const gemm_kernel_t *kn = gemm_kernel();
    const size_t mr = kn->mr, nr = kn->nr;
    /* packing is data movement: any instruction set the CPU has gives the same panels */
    const bool avx512 = hcrt__gemm_have_avx512();
    /* b in place: f32 rows of op(b) are rows of b */
    const bool direct = !trans_b && dtype == HCRT_F32;
    const size_t kcmax = min_sz(k, GEMM_KC), ncmax = min_sz(n, GEMM_NC);
    const size_t mcmax = round_up(min_sz(m, GEMM_MC), mr);
    /* in place, only an edge panel of b (fewer than nr columns) is ever packed */
    const size_t bp_floats = kcmax * (direct ? nr : round_up(ncmax, nr));
    /* partial sums between blocks of k: in c when beta == 0, else in a scratch matrix */
    const bool scratch = k > GEMM_KC && beta != 0.0f;
    /* a c of 8 MiB or more is past the L2 and most of a shared L3: written once, it goes straight to memory
     * (docs/performance.md, "Compute": the weight gradient of a 2048 x 2048 layer); a smaller one stays in
     * the caches for the op that reads it next */
    const bool nt = m * n >= ((size_t)2 << 20);

    hcrt_status_t status = HCRT_ERR_NO_MEMORY;
    float *ap = alloc_floats(mcmax * kcmax);
    float *bp = alloc_floats(bp_floats);
    float *row = alloc_floats(kcmax > mr ? kcmax : mr);
    float *w = scratch ? alloc_floats(m * n) : NULL;
    if (!ap || !bp || !row || (scratch && !w))
        goto out;

    for (size_t jc = 0; jc < n; jc += GEMM_NC) {
        const size_t nc = min_sz(n - jc, GEMM_NC);
        for (size_t pc = 0; pc < k; pc += GEMM_KC) {
            const size_t kc = min_sz(k - pc, GEMM_KC);
            gemm_target_t t = {.final = pc + kc >= k, .nt = nt};
            if (pc > 0) {
                t.win = scratch ? w + jc : c + jc;
                t.ldw = scratch ? n : ldc;
            }
            t.out = t.final || !scratch ? c + jc : w + jc;
            t.ldo = t.final || !scratch ? ldc : n;
            for (size_t jr = 0; jr < nc; jr += nr) {
                const size_t cv = min_sz(nc - jr, nr);
                if (direct && cv == nr)
                    continue;
                pack_b(direct ? bp : bp + jr * kc, b, ldb, trans_b, dtype, pc, kc, jc + jr, cv, nr, avx512);
            }
            for (size_t ic = 0; ic < m; ic += GEMM_MC) {
                const size_t mc = min_sz(m - ic, GEMM_MC);
                pack_a(ap, a, lda, trans_a, dtype, ic, mc, pc, kc, mr, row);
                for (size_t jr = 0; jr < nc; jr += nr) {
                    const size_t cv = min_sz(nc - jr, nr);
                    const float *bpanel =
                        direct ? (cv == nr ? (const float *)b + pc * ldb + jc + jr : bp) : bp + jr * kc;
                    const size_t ldbp = direct && cv == nr ? ldb : nr;
                    for (size_t ir = 0; ir < mc; ir += mr)
                        run_tile(kn, kc, ap + ir * kc, bpanel, ldbp, &t, ic + ir, jr, min_sz(mc - ir, mr), cv, alpha,
                                 beta);
                }
            }
        }
    }
    if (nt)
        hcrt__gemm_store_fence();
    status = HCRT_OK;
out:
    free(ap);
    free(bp);
    free(row);
    free(w);
    return status;
}
