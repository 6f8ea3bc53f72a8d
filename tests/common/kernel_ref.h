/*
 * tests/common/kernel_ref.h - independent reference arithmetic for hcrt's reduction and scale kernels,
 * shared by the kernel unit test and the backend plugin test.
 *
 * Floating results are compared bit for bit, not within a tolerance: f16/bf16 compute in f32 and round
 * once more, and because f32 carries at least 2p+2 bits of an f16 (p = 11) or bf16 (p = 8) significand,
 * that double rounding of a sum or product equals rounding the exact result once (Figueroa's theorem),
 * which is what the float64 reference here does. Integers are compared exactly, wraparound included.
 * Everything is static: include it in one file per test program.
 */
#ifndef HCRT_TEST_KERNEL_REF_H
#define HCRT_TEST_KERNEL_REF_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hcrt/types.h"

static const hcrt_dtype_t all_dtypes[] __attribute__((unused)) = {HCRT_I8,  HCRT_U8,  HCRT_I32,  HCRT_U32, HCRT_I64,
                                                                  HCRT_U64, HCRT_F16, HCRT_BF16, HCRT_F32, HCRT_F64};
static const char *dtype_names[]
    __attribute__((unused)) = {"i8", "u8", "i32", "u32", "i64", "u64", "f16", "bf16", "f32", "f64"};
static const char *op_names[] __attribute__((unused)) = {"sum", "prod", "min", "max", "avg"};

__attribute__((unused)) static size_t esize(hcrt_dtype_t t)
{
    static const size_t s[] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return s[t];
}

/* ---- independent references ---------------------------------------------------------------------- */

/* Exact value of a binary16. */
__attribute__((unused)) static double ref_f16_decode(uint16_t h)
{
    const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    const double sign = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0)
        return sign * ldexp(m, -24);
    if (e == 31)
        return m ? NAN : sign * INFINITY;
    return sign * ldexp(1024 + m, e - 25);
}

__attribute__((unused)) static double ref_bf16_decode(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/*
 * Rounds x to nearest-even in a binary format with `p` significand bits, minimum normal exponent emin
 * and maximum finite exponent emax, and returns the encoded bits (sign | exponent | mantissa) with
 * `ebits` exponent bits. NaN gives the format's quiet NaN with x's sign (the kernels keep the sign).
 */
__attribute__((unused)) static uint32_t ref_encode(double x, int p, int emin, int emax, int ebits)
{
    const uint32_t sign = signbit(x) ? 1u << (p - 1 + ebits) : 0;
    const uint32_t exp_all = (1u << ebits) - 1;
    if (isnan(x))
        return sign | (exp_all << (p - 1)) | (1u << (p - 2));
    double ax = fabs(x);
    if (isinf(ax))
        return sign | (exp_all << (p - 1));
    if (ax == 0)
        return sign;
    int k;
    frexp(ax, &k); /* ax = m * 2^k, m in [0.5, 1): exponent e = k - 1 */
    int e = k - 1;
    if (e < emin)
        e = emin;
    const double quantum = ldexp(1.0, e - (p - 1));
    const double r = nearbyint(ax / quantum); /* default rounding mode: ties to even */
    const double v = r * quantum;
    if (v >= ldexp(1.0, emax + 1))
        return sign | (exp_all << (p - 1));
    if (v < ldexp(1.0, emin)) /* subnormal (or zero) */
        return sign | (uint32_t)(v / ldexp(1.0, emin - (p - 1)));
    frexp(v, &k);
    e = k - 1;
    const uint32_t mant = (uint32_t)(v / ldexp(1.0, e - (p - 1))) - (1u << (p - 1));
    return sign | ((uint32_t)(e - emin + 1) << (p - 1)) | mant;
}

__attribute__((unused)) static uint16_t ref_f16_encode(double x)
{
    return (uint16_t)ref_encode(x, 11, -14, 15, 5);
}
__attribute__((unused)) static uint16_t ref_bf16_encode(double x)
{
    return (uint16_t)ref_encode(x, 8, -126, 127, 8);
}

/* ---- element access ---------------------------------------------------------------------------- */

__attribute__((unused)) static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
__attribute__((unused)) static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Raw bits of element i (unaligned-safe). */
__attribute__((unused)) static uint64_t get_bits(const void *buf, size_t i, hcrt_dtype_t t)
{
    uint64_t v = 0;
    memcpy(&v, (const char *)buf + i * esize(t), esize(t));
    return v;
}

__attribute__((unused)) static void put_bits(void *buf, size_t i, hcrt_dtype_t t, uint64_t v)
{
    memcpy((char *)buf + i * esize(t), &v, esize(t));
}

__attribute__((unused)) static bool is_float(hcrt_dtype_t t)
{
    return t >= HCRT_F16;
}

/* Value of a floating element as a double. */
__attribute__((unused)) static double get_float(const void *buf, size_t i, hcrt_dtype_t t)
{
    const uint64_t b = get_bits(buf, i, t);
    switch (t) {
    case HCRT_F16:
        return ref_f16_decode((uint16_t)b);
    case HCRT_BF16:
        return ref_bf16_decode((uint16_t)b);
    case HCRT_F32: {
        float f;
        uint32_t u = (uint32_t)b;
        memcpy(&f, &u, 4);
        return f;
    }
    default: {
        double d;
        memcpy(&d, &b, 8);
        return d;
    }
    }
}

/* Encodes a double into the floating type, rounding correctly once. */
__attribute__((unused)) static uint64_t encode_float(double x, hcrt_dtype_t t)
{
    switch (t) {
    case HCRT_F16:
        return ref_f16_encode(x);
    case HCRT_BF16:
        return ref_bf16_encode(x);
    case HCRT_F32: {
        float f = (float)x;
        uint32_t u;
        memcpy(&u, &f, 4);
        return u;
    }
    default: {
        uint64_t u;
        memcpy(&u, &x, 8);
        return u;
    }
    }
}

/* Sign-extended integer value of an element of a signed type. */
__attribute__((unused)) static int64_t get_signed(const void *buf, size_t i, hcrt_dtype_t t)
{
    const uint64_t b = get_bits(buf, i, t);
    switch (t) {
    case HCRT_I8:
        return (int8_t)(uint8_t)b;
    case HCRT_I32:
        return (int32_t)(uint32_t)b;
    default:
        return (int64_t)b;
    }
}

__attribute__((unused)) static bool is_signed_int(hcrt_dtype_t t)
{
    return t == HCRT_I8 || t == HCRT_I32 || t == HCRT_I64;
}

__attribute__((unused)) static uint64_t mask_of(hcrt_dtype_t t)
{
    return esize(t) == 8 ? ~0ull : (1ull << (8 * esize(t))) - 1;
}

/* Random element: integers over the full range (so sums and products wrap), floats mostly moderate with
 * a sprinkling of specials. */
__attribute__((unused)) static uint64_t random_elem(hcrt_dtype_t t)
{
    if (!is_float(t))
        return rnd() & mask_of(t);
    const uint64_t r = rnd();
    double x;
    switch (r % 16) {
    case 0:
        x = 0.0;
        break;
    case 1:
        x = -0.0;
        break;
    case 2:
        x = ldexp((double)(r >> 40) + 1, -40 - (int)(r >> 60));
        break; /* tiny */
    default:
        x = ((double)(int64_t)(r >> 11) / 9007199254740992.0 - 0.5) * 64.0;
        break;
    }
    if (t == HCRT_F64) {
        uint64_t u;
        memcpy(&u, &x, 8);
        return u;
    }
    return encode_float(x, t);
}

/* The reference of op(x, y) on elements given as bits. */
__attribute__((unused)) static uint64_t ref_op(uint64_t xb, uint64_t yb, hcrt_dtype_t t, hcrt_op_t op)
{
    if (!is_float(t)) {
        const uint64_t m = mask_of(t);
        switch (op) {
        case HCRT_OP_SUM:
        case HCRT_OP_AVG:
            return (xb + yb) & m;
        case HCRT_OP_PROD:
            return (xb * yb) & m;
        default:
            break;
        }
        bool y_less;
        if (is_signed_int(t)) {
            int64_t x, y;
            uint64_t bx = xb, by = yb;
            x = get_signed(&bx, 0, t);
            y = get_signed(&by, 0, t);
            y_less = y < x;
        } else {
            y_less = yb < xb;
        }
        if (op == HCRT_OP_MIN)
            return y_less ? yb : xb;
        return (!y_less && xb != yb) ? yb : xb;
    }
    uint64_t bx = xb, by = yb;
    const double x = get_float(&bx, 0, t), y = get_float(&by, 0, t);
    double r;
    switch (op) {
    case HCRT_OP_SUM:
    case HCRT_OP_AVG:
        r = x + y;
        break;
    case HCRT_OP_PROD:
        r = x * y;
        break;
    case HCRT_OP_MIN:
        r = isnan(x) ? x : isnan(y) ? y : (y < x ? y : x);
        break;
    default:
        r = isnan(x) ? x : isnan(y) ? y : (y > x ? y : x);
        break;
    }
    if (t == HCRT_F64 && !isnan(r))
        return encode_float(r, t);
    if (isnan(r))
        return UINT64_MAX; /* any NaN */
    return encode_float(r, t);
}

/* Whether element bits `got` match the reference `want` (UINT64_MAX: any NaN). */
__attribute__((unused)) static bool same(uint64_t got, uint64_t want, hcrt_dtype_t t)
{
    if (want == UINT64_MAX) {
        uint64_t b = got;
        return isnan(get_float(&b, 0, t));
    }
    return got == want;
}

#endif /* HCRT_TEST_KERNEL_REF_H */
