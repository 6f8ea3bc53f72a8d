/*
 * kernels/host_kernels.c - element-wise reduction and scale kernels on host memory.
 *
 * This is the hot path of every host-side collective, so each (dtype, op) pair gets its own plain loop
 * over restrict pointers that gcc -O3 vectorises (check with -fopt-info-vec). Element pointers use
 * typedefs with alignment 1 so that unaligned buffers are legal C and the vectoriser emits unaligned
 * loads and stores instead of assuming natural alignment.
 *
 * f16 and bf16 elements are widened to f32, combined in f32, and rounded back to nearest-even. The
 * conversions are branch-free bit manipulation (no F16C), so they vectorise on any x86-64 and give the
 * same bits everywhere. This file must be compiled with -ffp-contract=off (the f32 -> f16 rounding
 * relies on two separately rounded float operations) and may be with -fno-trapping-math (which lets gcc
 * if-convert, hence vectorise, the conversions; we never read the floating-point exception flags).
 */
#include "kernels/host_kernels.h"

#include <stdbool.h>
#include <string.h>

#include "kernels/host_compute.h"
#include "kernels/host_convert.h"
#include "kernels/host_kernels_f16c.h"

/* Alignment-1 element types (see above); may_alias because callers hand us buffers of any type. */
typedef int8_t hk_i8 __attribute__((aligned(1), may_alias));
typedef uint8_t hk_u8 __attribute__((aligned(1), may_alias));
typedef int32_t hk_i32 __attribute__((aligned(1), may_alias));
typedef uint32_t hk_u32 __attribute__((aligned(1), may_alias));
typedef int64_t hk_i64 __attribute__((aligned(1), may_alias));
typedef uint64_t hk_u64 __attribute__((aligned(1), may_alias));
typedef uint16_t hk_u16 __attribute__((aligned(1), may_alias));
typedef float hk_f32 __attribute__((aligned(1), may_alias));
typedef double hk_f64 __attribute__((aligned(1), may_alias));

/* ---- IEEE half and bfloat16 conversions ------------------------------------------------------- */

float hcrt__f16_to_f32(uint16_t h)
{
    return f16_to_f32(h);
}
uint16_t hcrt__f32_to_f16(float f)
{
    return f32_to_f16(f);
}
float hcrt__bf16_to_f32(uint16_t h)
{
    return bf16_to_f32(h);
}
uint16_t hcrt__f32_to_bf16(float f)
{
    return f32_to_bf16(f);
}

/* ---- element operations ------------------------------------------------------------------------ */

/*
 * Each kernel is compiled three times, for baseline x86-64 (SSE2), x86-64-v3 (AVX2) and x86-64-v4
 * (AVX-512), and the dynamic loader picks the best the CPU has (an ifunc). Nothing here assumes any of
 * them: the portable code is the same C. The wider vectors pay where the bit-level f16 conversions or
 * compares dominate; plain sums are memory bound either way (docs/performance.md, "Host kernels").
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(HCRT_NO_CLONES)
#define HK_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define HK_CLONES
#endif

/* x is the dst (first) operand, y the src. Integer sum and prod are only instantiated on unsigned types
 * (signed types reuse the unsigned kernel of the same width: same bits, no overflow UB). The casts
 * undo integer promotion of the 8-bit types. */
#define HK_SUM(T, x, y)  ((T)((x) + (y)))
#define HK_PROD(T, x, y) ((T)((x) * (y)))
#define HK_IMIN(T, x, y) ((y) < (x) ? (y) : (x))
#define HK_IMAX(T, x, y) ((y) > (x) ? (y) : (x))
/* Floating min/max: a NaN in either operand gives NaN (the dst's when both are NaN), so results do
 * not depend on the order in which ranks combine. Ties (+0/-0) keep the dst operand. */
#define HK_FMIN(T, x, y) ((x) != (x) ? (x) : (y) != (y) ? (y) : (y) < (x) ? (y) : (x))
#define HK_FMAX(T, x, y) ((x) != (x) ? (x) : (y) != (y) ? (y) : (y) > (x) ? (y) : (x))

/* Load/store conversions: identity for types computed in themselves, f32 for the 16-bit floats. */
#define HK_ID(v) (v)

typedef void (*hk_fn2_t)(void *dst, const void *src, size_t n);
typedef void (*hk_fn3_t)(void *dst, const void *a, const void *b, size_t n);

/*
 * Three loops per (type, op): dst = op(dst, src); dst = op(src, dst) (for reduce3 with dst aliasing b);
 * dst = op(a, b) with three distinct buffers. Keeping the aliasing cases apart lets every loop use
 * restrict. ET is the stored element type, CT the compute type, LD/ST convert between them.
 *
 * f16 and bf16 widen to f32, combine and round back inside one fused loop rather than through a stack
 * block of f32: the fused loop vectorises as well and saves three stores and three loads per element
 * (docs/performance.md, "Host kernels").
 */
#define HK_DEFINE(name, ET, CT, LD, ST, OPM)                                                                           \
    HK_CLONES static void name##_2(void *dv, const void *sv, size_t n)                                                 \
    {                                                                                                                  \
        ET *restrict d = dv;                                                                                           \
        const ET *restrict s = sv;                                                                                     \
        for (size_t i = 0; i < n; i++) {                                                                               \
            const CT x = LD(d[i]), y = LD(s[i]);                                                                       \
            d[i] = ST(OPM(CT, x, y));                                                                                  \
        }                                                                                                              \
    }                                                                                                                  \
    HK_CLONES static void name##_2r(void *dv, const void *sv, size_t n)                                                \
    {                                                                                                                  \
        ET *restrict d = dv;                                                                                           \
        const ET *restrict s = sv;                                                                                     \
        for (size_t i = 0; i < n; i++) {                                                                               \
            const CT x = LD(s[i]), y = LD(d[i]);                                                                       \
            d[i] = ST(OPM(CT, x, y));                                                                                  \
        }                                                                                                              \
    }                                                                                                                  \
    HK_CLONES static void name##_3(void *dv, const void *av, const void *bv, size_t n)                                 \
    {                                                                                                                  \
        ET *restrict d = dv;                                                                                           \
        const ET *restrict a = av;                                                                                     \
        const ET *restrict b = bv;                                                                                     \
        for (size_t i = 0; i < n; i++) {                                                                               \
            const CT x = LD(a[i]), y = LD(b[i]);                                                                       \
            d[i] = ST(OPM(CT, x, y));                                                                                  \
        }                                                                                                              \
    }

#define HK_PLAIN(name, ET, T, OPM) HK_DEFINE(name, ET, T, HK_ID, HK_ID, OPM)

HK_PLAIN(u8_sum, hk_u8, uint8_t, HK_SUM)
HK_PLAIN(u8_prod, hk_u8, uint8_t, HK_PROD)
HK_PLAIN(u8_min, hk_u8, uint8_t, HK_IMIN)
HK_PLAIN(u8_max, hk_u8, uint8_t, HK_IMAX)
HK_PLAIN(i8_min, hk_i8, int8_t, HK_IMIN)
HK_PLAIN(i8_max, hk_i8, int8_t, HK_IMAX)
HK_PLAIN(u32_sum, hk_u32, uint32_t, HK_SUM)
HK_PLAIN(u32_prod, hk_u32, uint32_t, HK_PROD)
HK_PLAIN(u32_min, hk_u32, uint32_t, HK_IMIN)
HK_PLAIN(u32_max, hk_u32, uint32_t, HK_IMAX)
HK_PLAIN(i32_min, hk_i32, int32_t, HK_IMIN)
HK_PLAIN(i32_max, hk_i32, int32_t, HK_IMAX)
HK_PLAIN(u64_sum, hk_u64, uint64_t, HK_SUM)
HK_PLAIN(u64_prod, hk_u64, uint64_t, HK_PROD)
HK_PLAIN(u64_min, hk_u64, uint64_t, HK_IMIN)
HK_PLAIN(u64_max, hk_u64, uint64_t, HK_IMAX)
HK_PLAIN(i64_min, hk_i64, int64_t, HK_IMIN)
HK_PLAIN(i64_max, hk_i64, int64_t, HK_IMAX)
HK_PLAIN(f32_sum, hk_f32, float, HK_SUM)
HK_PLAIN(f32_prod, hk_f32, float, HK_PROD)
HK_PLAIN(f32_min, hk_f32, float, HK_FMIN)
HK_PLAIN(f32_max, hk_f32, float, HK_FMAX)
HK_PLAIN(f64_sum, hk_f64, double, HK_SUM)
HK_PLAIN(f64_prod, hk_f64, double, HK_PROD)
HK_PLAIN(f64_min, hk_f64, double, HK_FMIN)
HK_PLAIN(f64_max, hk_f64, double, HK_FMAX)
HK_DEFINE(f16_sum, hk_u16, float, f16_to_f32, f32_to_f16, HK_SUM)
HK_DEFINE(f16_prod, hk_u16, float, f16_to_f32, f32_to_f16, HK_PROD)
HK_DEFINE(f16_min, hk_u16, float, f16_to_f32, f32_to_f16, HK_FMIN)
HK_DEFINE(f16_max, hk_u16, float, f16_to_f32, f32_to_f16, HK_FMAX)
HK_DEFINE(bf16_sum, hk_u16, float, bf16_to_f32, f32_to_bf16, HK_SUM)
HK_DEFINE(bf16_prod, hk_u16, float, bf16_to_f32, f32_to_bf16, HK_PROD)
HK_DEFINE(bf16_min, hk_u16, float, bf16_to_f32, f32_to_bf16, HK_FMIN)
HK_DEFINE(bf16_max, hk_u16, float, bf16_to_f32, f32_to_bf16, HK_FMAX)

/* ---- dispatch ----------------------------------------------------------------------------------- */

typedef struct hk_kernel {
    hk_fn2_t fn2;
    hk_fn2_t fn2r;
    hk_fn3_t fn3;
} hk_kernel_t;

#define HK_K(name)                                                                                                     \
    {                                                                                                                  \
        name##_2, name##_2r, name##_3                                                                                  \
    }

/* Kernels by [dtype][op]; AVG is SUM. */
static const hk_kernel_t hk_table[HCRT_DTYPE_COUNT][HCRT_OP_COUNT] = {
    [HCRT_I8] = {HK_K(u8_sum), HK_K(u8_prod), HK_K(i8_min), HK_K(i8_max), HK_K(u8_sum)},
    [HCRT_U8] = {HK_K(u8_sum), HK_K(u8_prod), HK_K(u8_min), HK_K(u8_max), HK_K(u8_sum)},
    [HCRT_I32] = {HK_K(u32_sum), HK_K(u32_prod), HK_K(i32_min), HK_K(i32_max), HK_K(u32_sum)},
    [HCRT_U32] = {HK_K(u32_sum), HK_K(u32_prod), HK_K(u32_min), HK_K(u32_max), HK_K(u32_sum)},
    [HCRT_I64] = {HK_K(u64_sum), HK_K(u64_prod), HK_K(i64_min), HK_K(i64_max), HK_K(u64_sum)},
    [HCRT_U64] = {HK_K(u64_sum), HK_K(u64_prod), HK_K(u64_min), HK_K(u64_max), HK_K(u64_sum)},
    [HCRT_F16] = {HK_K(f16_sum), HK_K(f16_prod), HK_K(f16_min), HK_K(f16_max), HK_K(f16_sum)},
    [HCRT_BF16] = {HK_K(bf16_sum), HK_K(bf16_prod), HK_K(bf16_min), HK_K(bf16_max), HK_K(bf16_sum)},
    [HCRT_F32] = {HK_K(f32_sum), HK_K(f32_prod), HK_K(f32_min), HK_K(f32_max), HK_K(f32_sum)},
    [HCRT_F64] = {HK_K(f64_sum), HK_K(f64_prod), HK_K(f64_min), HK_K(f64_max), HK_K(f64_sum)},
};

static size_t hk_elem_size(hcrt_dtype_t dtype)
{
    switch (dtype) {
    case HCRT_I8:
    case HCRT_U8:
        return 1;
    case HCRT_F16:
    case HCRT_BF16:
        return 2;
    case HCRT_I32:
    case HCRT_U32:
    case HCRT_F32:
        return 4;
    case HCRT_I64:
    case HCRT_U64:
    case HCRT_F64:
        return 8;
    default:
        return 0;
    }
}

/* Whether [p, p+n) and [q, q+n) share a byte without being the same range. */
static int partial_overlap(const void *p, const void *q, size_t n)
{
    const uintptr_t a = (uintptr_t)p, b = (uintptr_t)q;
    return a != b && a < b + n && b < a + n;
}

/* -1: not decided yet; 0: portable f16 kernels; 1: the F16C ones. Racing first calls agree. */
static int hk_f16c = -1;

static bool hk_use_f16c(void)
{
    int v = __atomic_load_n(&hk_f16c, __ATOMIC_RELAXED);
    if (v < 0) {
        v = hcrt__f16c_available() ? 1 : 0;
        __atomic_store_n(&hk_f16c, v, __ATOMIC_RELAXED);
    }
    return v == 1;
}

void hcrt__host_kernels_force_portable(bool portable)
{
    __atomic_store_n(&hk_f16c, portable ? 0 : -1, __ATOMIC_RELAXED);
    hcrt__gemm_isa_force(portable ? HCRT__GEMM_PORTABLE : -1);
}

hcrt_status_t hcrt__host_reduce3(void *dst, const void *a, const void *b, size_t count, hcrt_dtype_t dtype,
                                 hcrt_op_t op)
{
    const size_t es = hk_elem_size(dtype);
    if (es == 0 || (unsigned)op >= HCRT_OP_COUNT)
        return HCRT_ERR_INVALID_ARG;
    if (count == 0)
        return HCRT_OK;
    if (!dst || !a || !b || count > SIZE_MAX / es)
        return HCRT_ERR_INVALID_ARG;
    const size_t bytes = count * es;
    if (partial_overlap(dst, a, bytes) || partial_overlap(dst, b, bytes))
        return HCRT_ERR_INVALID_ARG;

    if (dtype == HCRT_F16 && hk_use_f16c()) {
        hcrt__f16c_reduce3(dst, a, b, count, op);
        return HCRT_OK;
    }
    const hk_kernel_t *k = &hk_table[dtype][op];
    if (dst == a)
        k->fn2(dst, b, count);
    else if (dst == b)
        k->fn2r(dst, a, count);
    else
        k->fn3(dst, a, b, count);
    return HCRT_OK;
}

hcrt_status_t hcrt__host_reduce(void *dst, const void *src, size_t count, hcrt_dtype_t dtype, hcrt_op_t op)
{
    return hcrt__host_reduce3(dst, dst, src, count, dtype, op);
}

/* ---- scale ---------------------------------------------------------------------------------------- */

/*
 * Integer scale: multiply in double, truncate toward zero, saturate to the type's range (NaN gives 0)
 * so that no factor can hit the undefined behaviour of an out-of-range conversion. hi_excl is the
 * smallest double above the type's range (exact powers of two, so the comparisons are exact).
 */
#define HK_DEFINE_ISCALE(name, ET, T, lo, hi_excl, hi)                                                                 \
    HK_CLONES static void name(void *pv, size_t n, double factor)                                                      \
    {                                                                                                                  \
        ET *restrict p = pv;                                                                                           \
        for (size_t i = 0; i < n; i++) {                                                                               \
            const double v = (double)p[i] * factor;                                                                    \
            T r;                                                                                                       \
            if (v != v)                                                                                                \
                r = 0;                                                                                                 \
            else if (v >= (hi_excl))                                                                                   \
                r = (hi);                                                                                              \
            else if (v <= (double)(lo))                                                                                \
                r = (lo);                                                                                              \
            else                                                                                                       \
                r = (T)v;                                                                                              \
            p[i] = r;                                                                                                  \
        }                                                                                                              \
    }

HK_DEFINE_ISCALE(scale_i8, hk_i8, int8_t, INT8_MIN, 128.0, INT8_MAX)
HK_DEFINE_ISCALE(scale_u8, hk_u8, uint8_t, 0, 256.0, UINT8_MAX)
HK_DEFINE_ISCALE(scale_i32, hk_i32, int32_t, INT32_MIN, 2147483648.0, INT32_MAX)
HK_DEFINE_ISCALE(scale_u32, hk_u32, uint32_t, 0, 4294967296.0, UINT32_MAX)
HK_DEFINE_ISCALE(scale_i64, hk_i64, int64_t, INT64_MIN, 9223372036854775808.0, INT64_MAX)
HK_DEFINE_ISCALE(scale_u64, hk_u64, uint64_t, 0, 18446744073709551616.0, UINT64_MAX)

/* Floating scale: f32 and the 16-bit floats multiply in f32, f64 in f64. */
#define HK_DEFINE_FSCALE(name, ET, CT, LD, ST)                                                                         \
    HK_CLONES static void name(void *pv, size_t n, double factor)                                                      \
    {                                                                                                                  \
        ET *restrict p = pv;                                                                                           \
        const CT f = (CT)factor;                                                                                       \
        for (size_t i = 0; i < n; i++)                                                                                 \
            p[i] = ST(LD(p[i]) * f);                                                                                   \
    }

HK_DEFINE_FSCALE(scale_f16, hk_u16, float, f16_to_f32, f32_to_f16)
HK_DEFINE_FSCALE(scale_bf16, hk_u16, float, bf16_to_f32, f32_to_bf16)
HK_DEFINE_FSCALE(scale_f32, hk_f32, float, HK_ID, HK_ID)
HK_DEFINE_FSCALE(scale_f64, hk_f64, double, HK_ID, HK_ID)

hcrt_status_t hcrt__host_scale(void *ptr, size_t count, hcrt_dtype_t dtype, double factor)
{
    if (hk_elem_size(dtype) == 0)
        return HCRT_ERR_INVALID_ARG;
    if (count == 0)
        return HCRT_OK;
    if (!ptr)
        return HCRT_ERR_INVALID_ARG;
    switch (dtype) {
    case HCRT_I8:
        scale_i8(ptr, count, factor);
        break;
    case HCRT_U8:
        scale_u8(ptr, count, factor);
        break;
    case HCRT_I32:
        scale_i32(ptr, count, factor);
        break;
    case HCRT_U32:
        scale_u32(ptr, count, factor);
        break;
    case HCRT_I64:
        scale_i64(ptr, count, factor);
        break;
    case HCRT_U64:
        scale_u64(ptr, count, factor);
        break;
    case HCRT_F16:
        if (hk_use_f16c())
            hcrt__f16c_scale(ptr, count, (float)factor);
        else
            scale_f16(ptr, count, factor);
        break;
    case HCRT_BF16:
        scale_bf16(ptr, count, factor);
        break;
    case HCRT_F32:
        scale_f32(ptr, count, factor);
        break;
    case HCRT_F64:
        scale_f64(ptr, count, factor);
        break;
    default:
        return HCRT_ERR_INVALID_ARG;
    }
    return HCRT_OK;
}
