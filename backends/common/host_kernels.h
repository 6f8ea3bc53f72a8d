/*
 * backends/common/host_kernels.h - vectorised element-wise reduction and scale kernels on host memory.
 *
 * Shared (as a static library) by the cpu backend, the sim backend and the collectives, so that every
 * host-side reduction in hcrt computes the same bits. f16 and bf16 elements are converted to f32,
 * combined, and rounded back to nearest-even; integer sum and prod wrap (unsigned arithmetic).
 * HCRT_OP_AVG combines like HCRT_OP_SUM (the caller scales once at the end).
 */
#ifndef HCRT_HOST_KERNELS_H
#define HCRT_HOST_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "hcrt/types.h"

/* dst[i] = op(dst[i], src[i]). HCRT_ERR_INVALID_ARG for an invalid dtype/op. Pointers need no
 * alignment beyond the element's natural one... or none at all (unaligned buffers are allowed). */
hcrt_status_t hcrt__host_reduce(void *dst, const void *src, size_t count, hcrt_dtype_t dtype, hcrt_op_t op);

/* dst[i] = op(a[i], b[i]); dst may alias a or b. */
hcrt_status_t hcrt__host_reduce3(void *dst, const void *a, const void *b, size_t count, hcrt_dtype_t dtype,
                                 hcrt_op_t op);

/* ptr[i] *= factor (floating types in their compute precision; integers via double, truncated). */
hcrt_status_t hcrt__host_scale(void *ptr, size_t count, hcrt_dtype_t dtype, double factor);

float hcrt__f16_to_f32(uint16_t h);
uint16_t hcrt__f32_to_f16(float f);
float hcrt__bf16_to_f32(uint16_t h);
uint16_t hcrt__f32_to_bf16(float f);

#endif /* HCRT_HOST_KERNELS_H */
