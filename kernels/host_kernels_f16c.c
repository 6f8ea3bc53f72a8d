/*
 * kernels/host_kernels_f16c.c - f16 reduce and scale with the x86 F16C conversion instructions.
 *
 * The portable f16 kernels of host_kernels.c spend most of their time in the bit-level conversions,
 * which F16C's vcvtph2ps and vcvtps2ph do in one instruction (docs/performance.md, "Host kernels", has
 * the figures). Nothing assumes F16C: host_kernels.c calls these functions only after the CPU said it has
 * AVX2 and F16C (and tests can force the portable path), and they give the same bits as the portable
 * path. Widening is exact in both; narrowing is round-to-nearest-even in both (checked on all 2^32
 * floats), and NaN is first replaced by the canonical quiet NaN of its sign so that the result is
 * 0x7E00 | sign exactly as the portable conversion gives.
 *
 * Each function reads a whole block of 8 elements of every input before it writes the block, so dst may
 * be exactly a or b. The last count % 8 elements go through the same vector code via a padded copy.
 */
#include "kernels/host_kernels_f16c.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#define HK_TARGET __attribute__((target("avx2,f16c")))

HK_TARGET static inline __m256 widen(const void *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

HK_TARGET static inline void narrow(void *p, __m256 x)
{
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    const __m256 sign = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)));
    const __m256 canon = _mm256_or_ps(sign, _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000)));
    x = _mm256_blendv_ps(x, canon, nan);
    _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

/* op(x, y) with the semantics of host_kernels.c: NaN wins (x's when both), ties keep x. */
HK_TARGET static inline __m256 combine(__m256 x, __m256 y, hcrt_op_t op)
{
    __m256 r;
    switch (op) {
    case HCRT_OP_PROD:
        return _mm256_mul_ps(x, y);
    case HCRT_OP_MIN:
        r = _mm256_blendv_ps(x, y, _mm256_cmp_ps(y, x, _CMP_LT_OQ));
        break;
    case HCRT_OP_MAX:
        r = _mm256_blendv_ps(x, y, _mm256_cmp_ps(y, x, _CMP_GT_OQ));
        break;
    default:
        return _mm256_add_ps(x, y);
    }
    r = _mm256_blendv_ps(r, y, _mm256_cmp_ps(y, y, _CMP_UNORD_Q));
    return _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* One loop per op so the switch is resolved outside the loop. */
#define HK_F16C_LOOP(OP)                                                                                               \
    for (; i + 8 <= count; i += 8)                                                                                     \
        narrow(d + i, combine(widen(pa + i), widen(pb + i), (OP)));

HK_TARGET void hcrt__f16c_reduce3(void *dst, const void *a, const void *b, size_t count, hcrt_op_t op)
{
    uint16_t *d = dst;
    const uint16_t *pa = a, *pb = b;
    size_t i = 0;
    switch (op) {
    case HCRT_OP_PROD:
        HK_F16C_LOOP(HCRT_OP_PROD) break;
    case HCRT_OP_MIN:
        HK_F16C_LOOP(HCRT_OP_MIN) break;
    case HCRT_OP_MAX:
        HK_F16C_LOOP(HCRT_OP_MAX) break;
    default:
        HK_F16C_LOOP(HCRT_OP_SUM) break;
    }
    if (i < count) {
        uint16_t ta[8] = {0}, tb[8] = {0}, td[8];
        memcpy(ta, pa + i, (count - i) * 2);
        memcpy(tb, pb + i, (count - i) * 2);
        narrow(td, combine(widen(ta), widen(tb), op));
        memcpy(d + i, td, (count - i) * 2);
    }
}

HK_TARGET void hcrt__f16c_scale(void *ptr, size_t count, float factor)
{
    uint16_t *p = ptr;
    const __m256 f = _mm256_set1_ps(factor);
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        narrow(p + i, _mm256_mul_ps(widen(p + i), f));
    if (i < count) {
        uint16_t t[8] = {0};
        memcpy(t, p + i, (count - i) * 2);
        narrow(t, _mm256_mul_ps(widen(t), f));
        memcpy(p + i, t, (count - i) * 2);
    }
}

bool hcrt__f16c_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
}

#else

bool hcrt__f16c_available(void)
{
    return false;
}
void hcrt__f16c_reduce3(void *dst, const void *a, const void *b, size_t count, hcrt_op_t op)
{
    (void)dst, (void)a, (void)b, (void)count, (void)op;
}
void hcrt__f16c_scale(void *ptr, size_t count, float factor)
{
    (void)ptr, (void)count, (void)factor;
}

#endif
