/*
 * kernels/host_kernels.h - vectorised element-wise reduction and scale kernels on host memory.
 *
 * Shared (as a static library) by the cpu backend, the sim backend and the collectives, so that every
 * host-side reduction in hcrt computes the same bits. f16 and bf16 elements are converted to f32,
 * combined, and rounded back to nearest-even; integer sum and prod wrap (unsigned arithmetic).
 * HCRT_OP_AVG combines like HCRT_OP_SUM (the caller scales once at the end).
 */
#ifndef HCRT_HOST_KERNELS_H
#define HCRT_HOST_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/types.h"

/*
 * dst[i] = op(dst[i], src[i]). HCRT_ERR_INVALID_ARG for an invalid dtype/op, a NULL pointer with
 * count > 0, or buffers that overlap without being identical. Pointers need no alignment at all.
 * Floating min/max propagate NaN (dst's NaN when both are NaN); ties keep dst. count 0 touches nothing.
 * Thread-safe (no state); every call computes the same bits on every x86-64 (the best of SSE2, AVX2 and
 * AVX-512 code is picked at load time, all from the same C).
 */
hcrt_status_t hcrt__host_reduce(void *dst, const void *src, size_t count, hcrt_dtype_t dtype, hcrt_op_t op);

/* dst[i] = op(a[i], b[i]); dst may be exactly a or b (partial overlap is HCRT_ERR_INVALID_ARG). */
hcrt_status_t hcrt__host_reduce3(void *dst, const void *a, const void *b, size_t count, hcrt_dtype_t dtype,
                                 hcrt_op_t op);

/*
 * ptr[i] *= factor. f32, f16 and bf16 multiply in f32 (factor rounded to f32), f64 in f64. Integers
 * multiply in double, truncate toward zero and saturate to the type's range (NaN gives 0), so no factor
 * reaches the undefined behaviour of an out-of-range conversion; 64-bit integers beyond 2^53 lose low bits.
 */
hcrt_status_t hcrt__host_scale(void *ptr, size_t count, hcrt_dtype_t dtype, double factor);

/* Scalar conversions with the kernels' exact semantics: widening is exact; narrowing rounds to nearest
 * even, overflows to infinity, keeps subnormals, and maps NaN to a quiet NaN of the same sign. */
float hcrt__f16_to_f32(uint16_t h);
uint16_t hcrt__f32_to_f16(float f);
float hcrt__bf16_to_f32(uint16_t h);
uint16_t hcrt__f32_to_bf16(float f);

/* For tests: true makes the f16 kernels use their portable code even where the CPU has F16C, and the
 * compute extension's gemm its portable kernel (host_compute.h); each gives the same bits as the fast
 * path, and this lets one machine test both. false goes back to choosing by the CPU. */
void hcrt__host_kernels_force_portable(bool portable);

#endif /* HCRT_HOST_KERNELS_H */
