/*
 * backends/gpu/gpu_elem.cuh - element-level arithmetic of the GPU kernels: f16/bf16 conversions, the
 * reduction operations and scaling, for one element at a time.
 *
 * Everything here is __host__ __device__, so the same code the kernels run can be compared bit for bit
 * with the host kernels (kernels/host_kernels.c) on a machine without a GPU
 * (tests/plugin/test_gpu_kernel_math.cu). The rules are those of host_kernels.h: f16 and bf16 widen to f32
 * exactly, combine in f32 and round back to nearest-even (NaN becomes the quiet NaN, sign kept); integer
 * sum and prod wrap (computed in the unsigned type); floating min/max give NaN when either operand is
 * NaN (dst's when both are) and keep dst on ties; scale multiplies floating types in their compute
 * precision and integers in double, truncating toward zero and saturating at the type's range (NaN
 * gives 0).
 */
#ifndef HCRT_GPU_ELEM_CUH
#define HCRT_GPU_ELEM_CUH

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hcrt/types.h"

#if defined(__HIP__) && !defined(__forceinline__)
#include <hip/hip_runtime.h> /* nvcc brings its runtime header in by itself, hipcc does not */
#endif

#define HCRT_GPU_HD __host__ __device__ __forceinline__

namespace
{

HCRT_GPU_HD uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

HCRT_GPU_HD float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

struct f16_t {
    uint16_t v;
};
struct bf16_t {
    uint16_t v;
};

/* ---- f16 / bf16 conversions (the same rounding as the host kernels) ---- */

HCRT_GPU_HD float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24 is exact in f32 */
        float f = (float)mant * 5.9604644775390625e-8f;
        return bits_f32(f32_bits(f) | sign);
    }
    if (exp == 31) /* inf, or NaN made quiet (as the host's float multiply does) */
        return bits_f32(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u));
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Round to nearest even; overflow gives infinity, NaN becomes the quiet NaN 0x7e00 (sign kept). */
HCRT_GPU_HD uint16_t f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    u &= 0x7fffffffu;
    uint32_t o;
    if (u >= 0x47800000u) {                      /* >= 65536 (or inf/NaN) */
        o = u > 0x7f800000u ? 0x7e00u : 0x7c00u; /* NaN: the canonical quiet NaN, like the host */
    } else if (u < 0x38800000u) {                /* below the smallest normal f16: let the f32 adder round */
        const uint32_t magic = 0x3f000000u;      /* 0.5: shifts the f16 subnormal bits to the bottom */
        float t = bits_f32(u) + bits_f32(magic);
        o = f32_bits(t) - magic;
    } else {
        uint32_t odd = (u >> 13) & 1u;
        u += 0xc8000fffu; /* rebias the exponent (-112 << 23) and add the rounding bias */
        u += odd;
        o = u >> 13;
    }
    return (uint16_t)(o | sign);
}

HCRT_GPU_HD float bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

HCRT_GPU_HD uint16_t f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u); /* quiet the NaN; truncation could make it infinity */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- element traits: storage type T, compute type C ---- */

template <typename T> struct elem {
    typedef T C;
    static HCRT_GPU_HD C load(T x)
    {
        return x;
    }
    static HCRT_GPU_HD T store(C c)
    {
        return c;
    }
};
template <> struct elem<f16_t> {
    typedef float C;
    static HCRT_GPU_HD C load(f16_t x)
    {
        return f16_to_f32(x.v);
    }
    static HCRT_GPU_HD f16_t store(C c)
    {
        return f16_t{f32_to_f16(c)};
    }
};
template <> struct elem<bf16_t> {
    typedef float C;
    static HCRT_GPU_HD C load(bf16_t x)
    {
        return bf16_to_f32(x.v);
    }
    static HCRT_GPU_HD bf16_t store(C c)
    {
        return bf16_t{f32_to_bf16(c)};
    }
};

/* ---- the operations, in the compute type ---- */

template <typename C> HCRT_GPU_HD C op_sum(C a, C b)
{
    return a + b;
}
template <typename C> HCRT_GPU_HD C op_prod(C a, C b)
{
    return a * b;
}
/* Integers wrap: compute in the unsigned type of the same width (signed overflow is undefined). */
#define HCRT_GPU_WRAP_OPS(S, U)                                                                                        \
    template <> HCRT_GPU_HD S op_sum<S>(S a, S b)                                                                      \
    {                                                                                                                  \
        return (S)(U)((U)a + (U)b);                                                                                    \
    }                                                                                                                  \
    template <> HCRT_GPU_HD S op_prod<S>(S a, S b)                                                                     \
    {                                                                                                                  \
        return (S)(U)((uint64_t)(U)a * (uint64_t)(U)b);                                                                \
    }
HCRT_GPU_WRAP_OPS(int8_t, uint8_t)
HCRT_GPU_WRAP_OPS(uint8_t, uint8_t)
HCRT_GPU_WRAP_OPS(int32_t, uint32_t)
HCRT_GPU_WRAP_OPS(uint32_t, uint32_t)
HCRT_GPU_WRAP_OPS(int64_t, uint64_t)
HCRT_GPU_WRAP_OPS(uint64_t, uint64_t)
#undef HCRT_GPU_WRAP_OPS

/* x != x is NaN for the floating types and always false for integers. */
template <typename C> HCRT_GPU_HD bool is_nan(C x)
{
    return x != x;
}

template <int OP, typename C> HCRT_GPU_HD C combine(C a, C b)
{
    if (OP == HCRT_OP_SUM)
        return op_sum<C>(a, b);
    if (OP == HCRT_OP_PROD)
        return op_prod<C>(a, b);
    if (OP == HCRT_OP_MIN)
        return is_nan(a) ? a : is_nan(b) ? b : b < a ? b : a;
    return is_nan(a) ? a : is_nan(b) ? b : b > a ? b : a; /* HCRT_OP_MAX */
}

template <typename T, int OP> HCRT_GPU_HD T combine_elem(T a, T b)
{
    return elem<T>::store(combine<OP, typename elem<T>::C>(elem<T>::load(a), elem<T>::load(b)));
}

/* Same, with the operation chosen at run time (the byte-wise path, where speed does not matter). */
template <typename T> HCRT_GPU_HD T combine_dyn(T a, T b, int op)
{
    switch (op) {
    case HCRT_OP_SUM:
        return combine_elem<T, HCRT_OP_SUM>(a, b);
    case HCRT_OP_PROD:
        return combine_elem<T, HCRT_OP_PROD>(a, b);
    case HCRT_OP_MIN:
        return combine_elem<T, HCRT_OP_MIN>(a, b);
    default:
        return combine_elem<T, HCRT_OP_MAX>(a, b);
    }
}

/* ---- scaling ---- */

template <typename S> HCRT_GPU_HD S sat_trunc(double r, double lo, double hi_excl, S smin, S smax)
{
    if (!(r == r))
        return 0;
    if (r < lo)
        return smin;
    if (r >= hi_excl)
        return smax;
    return (S)r; /* in range: conversion truncates toward zero */
}

template <typename T> struct scaler {
    static HCRT_GPU_HD T apply(T x, double factor)
    {
        typedef typename elem<T>::C C;
        return elem<T>::store(elem<T>::load(x) * (C)factor);
    }
};
#define HCRT_GPU_INT_SCALER(S, LO, HI, SMIN, SMAX)                                                                     \
    template <> struct scaler<S> {                                                                                     \
        static HCRT_GPU_HD S apply(S x, double factor)                                                                 \
        {                                                                                                              \
            return sat_trunc<S>((double)x * factor, LO, HI, (S)(SMIN), (S)(SMAX));                                     \
        }                                                                                                              \
    };
HCRT_GPU_INT_SCALER(int8_t, -128.0, 128.0, INT8_MIN, INT8_MAX)
HCRT_GPU_INT_SCALER(uint8_t, 0.0, 256.0, 0, UINT8_MAX)
HCRT_GPU_INT_SCALER(int32_t, -2147483648.0, 2147483648.0, INT32_MIN, INT32_MAX)
HCRT_GPU_INT_SCALER(uint32_t, 0.0, 4294967296.0, 0, UINT32_MAX)
HCRT_GPU_INT_SCALER(int64_t, -9223372036854775808.0, 9223372036854775808.0, INT64_MIN, INT64_MAX)
HCRT_GPU_INT_SCALER(uint64_t, 0.0, 18446744073709551616.0, 0, UINT64_MAX)
#undef HCRT_GPU_INT_SCALER

} /* namespace */

#endif /* HCRT_GPU_ELEM_CUH */
