/*
 * kernels/host_gemm_x86.c - the AVX-512 and AVX2 register-tile kernels of the host gemm (contract in
 * host_gemm_kernels.h). host_gemm.c calls them only after the CPU said it has the instructions.
 *
 * The tile is broadcast-a times row-of-b: for each p, NR/16 (or NR/8) vectors of row p of b are loaded
 * once and every one of the MR rows multiplies its a[r][p] into them, so each accumulator register holds
 * 16 (8) consecutive elements of one row of c and sees its products in p order, exactly like the portable
 * kernel's scalar chain. 6 x 64 keeps 24 of AVX-512's 32 registers as accumulators, 6 x 16 12 of AVX2's
 * 16: measured here (AMD EPYC, Zen 4) the 6 x 64 shape ran 5-15 % faster than 12 x 32, 14 x 32 or 8 x 32
 * on the training job's shapes. The file must be compiled with -ffp-contract=off so that the epilogue's
 * alpha * acc + beta * c stays two roundings plus one (the FMA chain is explicit).
 */
#include "kernels/host_gemm_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <stdint.h>

#define MR16 HCRT__GEMM_AVX512_MR
#define NV16 (HCRT__GEMM_AVX512_NR / 16)

__attribute__((target("avx512f"))) void hcrt__gemm_tile_avx512(size_t kc, const float *a, const float *b, size_t ldb,
                                                               const float *win, size_t ldw, float *out, size_t ldo,
                                                               bool final, float alpha, float beta, bool nt)
{
    __m512 acc[MR16][NV16];
    for (int r = 0; r < MR16; r++)
        for (int v = 0; v < NV16; v++)
            acc[r][v] = win ? _mm512_loadu_ps(win + (size_t)r * ldw + 16 * v) : _mm512_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        __m512 row[NV16];
        for (int v = 0; v < NV16; v++)
            row[v] = _mm512_loadu_ps(b + p * ldb + 16 * v);
        for (int r = 0; r < MR16; r++) {
            const __m512 x = _mm512_set1_ps(a[p * MR16 + r]);
            for (int v = 0; v < NV16; v++)
                acc[r][v] = _mm512_fmadd_ps(x, row[v], acc[r][v]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < MR16; r++)
        for (int v = 0; v < NV16; v++) {
            float *o = out + (size_t)r * ldo + 16 * v;
            __m512 x = acc[r][v];
            if (final) {
                x = _mm512_mul_ps(va, x);
                if (beta != 0.0f)
                    x = _mm512_add_ps(x, _mm512_mul_ps(vb, _mm512_loadu_ps(o)));
            }
            if (final && nt && beta == 0.0f && ((uintptr_t)o & 63) == 0)
                _mm512_stream_ps(o, x);
            else
                _mm512_storeu_ps(o, x);
        }
}

#define MR8 HCRT__GEMM_AVX2_MR
#define NV8 (HCRT__GEMM_AVX2_NR / 8)

/*
 * The AVX2 tile names its 12 accumulators one by one: written as an array like the AVX-512 tile, gcc
 * (12) kept a copy of every accumulator on the stack and stored it on each step of k (AVX2 has 16
 * registers, not 32), which halved the kernel's speed (docs/performance.md, "Compute").
 */
#define HC_ROW(r, c0, c1)                                                                                              \
    do {                                                                                                               \
        const __m256 x_ = _mm256_broadcast_ss(a + p * MR8 + (r));                                                      \
        c0 = _mm256_fmadd_ps(x_, b0, c0);                                                                              \
        c1 = _mm256_fmadd_ps(x_, b1, c1);                                                                              \
    } while (0)

__attribute__((target("avx2,fma"))) void hcrt__gemm_tile_avx2(size_t kc, const float *a, const float *b, size_t ldb,
                                                              const float *win, size_t ldw, float *out, size_t ldo,
                                                              bool final, float alpha, float beta, bool nt)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (win) {
        c00 = _mm256_loadu_ps(win), c01 = _mm256_loadu_ps(win + 8);
        c10 = _mm256_loadu_ps(win + ldw), c11 = _mm256_loadu_ps(win + ldw + 8);
        c20 = _mm256_loadu_ps(win + 2 * ldw), c21 = _mm256_loadu_ps(win + 2 * ldw + 8);
        c30 = _mm256_loadu_ps(win + 3 * ldw), c31 = _mm256_loadu_ps(win + 3 * ldw + 8);
        c40 = _mm256_loadu_ps(win + 4 * ldw), c41 = _mm256_loadu_ps(win + 4 * ldw + 8);
        c50 = _mm256_loadu_ps(win + 5 * ldw), c51 = _mm256_loadu_ps(win + 5 * ldw + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b + p * ldb), b1 = _mm256_loadu_ps(b + p * ldb + 8);
        HC_ROW(0, c00, c01);
        HC_ROW(1, c10, c11);
        HC_ROW(2, c20, c21);
        HC_ROW(3, c30, c31);
        HC_ROW(4, c40, c41);
        HC_ROW(5, c50, c51);
    }
    const __m256 acc[MR8][NV8] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int r = 0; r < MR8; r++)
        for (int v = 0; v < NV8; v++) {
            float *o = out + (size_t)r * ldo + 8 * v;
            __m256 x = acc[r][v];
            if (final) {
                x = _mm256_mul_ps(va, x);
                if (beta != 0.0f)
                    x = _mm256_add_ps(x, _mm256_mul_ps(vb, _mm256_loadu_ps(o)));
            }
            if (final && nt && beta == 0.0f && ((uintptr_t)o & 31) == 0)
                _mm256_stream_ps(o, x);
            else
                _mm256_storeu_ps(o, x);
        }
}

#undef HC_ROW

/* Transposes 16 rows of 16 floats in registers: r[q] becomes column q (unpack pairs, then pairs of pairs,
 * then the 128-bit lanes in two rounds). */
__attribute__((target("avx512f"))) static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int k = 0; k < 4; k++) {
        t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
        t[k + 4] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
        t[k + 8] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
        t[k + 12] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd);
        r[k + 4] = _mm512_shuffle_f32x4(t[k + 4], t[12 + k], 0x88);
        r[k + 12] = _mm512_shuffle_f32x4(t[k + 4], t[12 + k], 0xdd);
    }
}

__attribute__((target("avx512f"))) void hcrt__gemm_pack_bt_avx512(float *dst, size_t nr, const float *src, size_t ld,
                                                                  size_t kc, size_t cv)
{
    const size_t j16 = cv / 16 * 16, p16 = kc / 16 * 16;
    for (size_t j = 0; j < j16; j += 16)
        for (size_t p = 0; p < p16; p += 16) {
            __m512 r[16];
            for (int q = 0; q < 16; q++)
                r[q] = _mm512_loadu_ps(src + (j + (size_t)q) * ld + p);
            transpose16(r);
            for (int q = 0; q < 16; q++)
                _mm512_storeu_ps(dst + (p + (size_t)q) * nr + j, r[q]);
        }
    /* the edges: rows past the last full 16, and columns of p past the last full 16 */
    for (size_t j = 0; j < cv; j++)
        for (size_t p = j < j16 ? p16 : 0; p < kc; p++)
            dst[p * nr + j] = src[j * ld + p];
}

void hcrt__gemm_store_fence(void)
{
    _mm_sfence();
}

bool hcrt__gemm_have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

bool hcrt__gemm_have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#else /* not x86-64: the portable kernel only */

void hcrt__gemm_tile_avx512(size_t kc, const float *a, const float *b, size_t ldb, const float *win, size_t ldw,
                            float *out, size_t ldo, bool final, float alpha, float beta)
{
    (void)kc, (void)a, (void)b, (void)ldb, (void)win, (void)ldw, (void)out, (void)ldo, (void) final, (void)alpha,
        (void)beta;
}
void hcrt__gemm_tile_avx2(size_t kc, const float *a, const float *b, size_t ldb, const float *win, size_t ldw,
                          float *out, size_t ldo, bool final, float alpha, float beta)
{
    (void)kc, (void)a, (void)b, (void)ldb, (void)win, (void)ldw, (void)out, (void)ldo, (void) final, (void)alpha,
        (void)beta;
}
void hcrt__gemm_pack_bt_avx512(float *dst, size_t nr, const float *src, size_t ld, size_t kc, size_t cv)
{
    (void)dst, (void)nr, (void)src, (void)ld, (void)kc, (void)cv;
}
void hcrt__gemm_store_fence(void) {}
bool hcrt__gemm_have_avx512(void)
{
    return false;
}
bool hcrt__gemm_have_avx2(void)
{
    return false;
}

#endif
