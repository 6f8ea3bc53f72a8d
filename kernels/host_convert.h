/*
 * kernels/host_convert.h - the f16/bf16 <-> f32 conversions of the host kernels, inline, for the files of
 * kernels/ (the reductions, the compute extension) that convert elements in their inner loops. Callers
 * outside kernels/ use the hcrt__f16_to_f32() family of host_kernels.h, which wraps these.
 *
 * Branch-free bit manipulation (no F16C), so loops using them vectorise on any x86-64 and give the same
 * bits everywhere. The including file must be compiled with -ffp-contract=off: the f32 -> f16 rounding
 * relies on two separately rounded float operations.
 */
#ifndef HCRT_HOST_CONVERT_H
#define HCRT_HOST_CONVERT_H

#include <stdint.h>
#include <string.h>

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/*
 * binary16 -> binary32, exact. Normal and inf/NaN halves are moved into place by shifting exponent and
 * mantissa into a float and rescaling by 2^-112 (which fixes the exponent bias and keeps inf/NaN);
 * subnormal halves are built as the float 0.5 + m * 2^-24... minus 0.5, one exact subtraction. A select
 * picks between the two, so loops stay branch-free. Every comparison is on small non-negative values so
 * that SSE2's signed compares do it (it has no unsigned ones).
 */
static inline float f16_to_f32(uint16_t h)
{
    const uint32_t em = h & 0x7FFFu; /* exponent and mantissa */
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const float normalized = bits_f32((em << 13) + 0x70000000u) * 0x1.0p-112f;
    const float denormalized = bits_f32(em | 0x3F000000u) - 0.5f;
    const uint32_t mag = (int32_t)em < 0x400 ? f32_bits(denormalized) : f32_bits(normalized);
    return bits_f32(sign | mag);
}

/*
 * binary32 -> binary16, round to nearest even. Multiplying |f| by 2^112 then 2^-110 saturates what is too
 * large to infinity and leaves the value otherwise unchanged (times 4); adding a power of two whose
 * exponent sits 13 (or, for results that are subnormal halves, enough more) bits above the value's makes
 * the float adder round the mantissa to exactly the bits a half keeps, with ties to even. The exponent
 * and mantissa bits of that sum are the half's. NaN maps to the quiet NaN 0x7E00 with the sign kept.
 * (The method of Maratos Dukhan's FP16 library; checked against F16C on all 2^32 inputs.)
 */
static inline uint16_t f32_to_f16(float f)
{
    float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = f32_bits(f);
    const uint32_t sign = (w >> 16) & 0x8000u;
    const uint32_t mag = w & 0x7FFFFFFFu;
    int32_t e = (int32_t)(mag >> 23);
    e = e < 0x71 ? 0x71 : e;
    base = bits_f32(((uint32_t)e << 23) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
    return (uint16_t)(sign | ((int32_t)mag > 0x7F800000 ? 0x7E00u : nonsign));
}

static inline float bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

/* binary32 -> bfloat16, round to nearest even; NaN stays NaN (quiet bit set, sign kept). */
static inline uint16_t f32_to_bf16(float f)
{
    const uint32_t u = f32_bits(f);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x0040u;
    return (uint16_t)((int32_t)(u & 0x7FFFFFFFu) > 0x7F800000 ? nan : rounded);
}

#endif /* HCRT_HOST_CONVERT_H */
