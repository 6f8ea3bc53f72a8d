/*
 * kernels/host_kernels_f16c.h - the F16C fast path of the f16 kernels (host_kernels_f16c.c).
 * Internal to the host kernels: callers use host_kernels.h, which picks this path when the CPU has it.
 */
#ifndef HCRT_HOST_KERNELS_F16C_H
#define HCRT_HOST_KERNELS_F16C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/types.h"

/* Whether this CPU (and OS) can run the functions below: AVX2 and F16C. */
bool hcrt__f16c_available(void);

/* dst = op(a, b) on f16 elements (op already validated; AVG as SUM); dst may be exactly a or b. */
void hcrt__f16c_reduce3(void *dst, const void *a, const void *b, size_t count, hcrt_op_t op);

/* ptr[i] *= factor on f16 elements, in f32. */
void hcrt__f16c_scale(void *ptr, size_t count, float factor);

#endif /* HCRT_HOST_KERNELS_F16C_H */
