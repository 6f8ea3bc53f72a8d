/*
 * hcrt/types.h - data types, reduction operations and log levels, shared by the public API and the
 * backend plugin ABI. Values are part of the ABI: they never change, new ones are appended.
 */
#ifndef HCRT_TYPES_H
#define HCRT_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "hcrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Element types. f16 is IEEE 754 binary16, bf16 is the upper half of a binary32. Reductions on f16 and
 * bf16 convert each element to f32, operate, and round back to nearest-even, so the arithmetic is the
 * same on every backend.
 */
typedef enum hcrt_dtype {
    HCRT_I8 = 0,
    HCRT_U8 = 1,
    HCRT_I32 = 2,
    HCRT_U32 = 3,
    HCRT_I64 = 4,
    HCRT_U64 = 5,
    HCRT_F16 = 6,
    HCRT_BF16 = 7,
    HCRT_F32 = 8,
    HCRT_F64 = 9,
    HCRT_DTYPE_COUNT = 10
} hcrt_dtype_t;

/*
 * Reduction operations. In the element-wise kernel `dst = op(dst, src)` HCRT_OP_AVG accumulates exactly
 * like HCRT_OP_SUM; the collective that owns the reduction divides by the number of contributions once,
 * at the end (with the scale kernel), which is what NCCL's ncclAvg does.
 */
typedef enum hcrt_op {
    HCRT_OP_SUM = 0,
    HCRT_OP_PROD = 1,
    HCRT_OP_MIN = 2,
    HCRT_OP_MAX = 3,
    HCRT_OP_AVG = 4,
    HCRT_OP_COUNT = 5
} hcrt_op_t;

/* Optimizers of the compute extension (hcrt/compute.h: hcrt_compute_optim_step). */
typedef enum hcrt_optimizer {
    HCRT_OPTIM_SGD = 0,   /* SGD with optional momentum (and Nesterov) and L2 weight decay, as torch.optim.SGD */
    HCRT_OPTIM_ADAMW = 1, /* Adam with decoupled weight decay, as torch.optim.AdamW */
    HCRT_OPTIM_COUNT = 2
} hcrt_optimizer_t;

/* Log levels, most severe first. HCRT_LOG_LEVEL takes the lower-case names ("warn" is the default). */
typedef enum hcrt_log_level {
    HCRT_LOG_NONE = 0,
    HCRT_LOG_ERROR = 1,
    HCRT_LOG_WARN = 2,
    HCRT_LOG_INFO = 3,
    HCRT_LOG_DEBUG = 4,
    HCRT_LOG_TRACE = 5
} hcrt_log_level_t;

/* Size in bytes of one element of `dtype`, or 0 for a value that is not a valid hcrt_dtype_t. */
HCRT_EXPORT size_t hcrt_dtype_size(hcrt_dtype_t dtype);

/* Lower-case name ("f32", "bf16", ...), or NULL for an invalid value. Static string. */
HCRT_EXPORT const char *hcrt_dtype_name(hcrt_dtype_t dtype);

/*
 * Parses a dtype name as hcrt_dtype_name() prints it (also accepts "float"/"float32", "half"/"float16",
 * "double"/"float64", "int32", "int64", "bfloat16"). Returns HCRT_ERR_INVALID_ARG for NULL or an unknown
 * name; *dtype is set only on success.
 */
HCRT_EXPORT hcrt_status_t hcrt_dtype_from_name(const char *name, hcrt_dtype_t *dtype);

/* Lower-case name ("sum", "prod", "min", "max", "avg"), or NULL for an invalid value. Static string. */
HCRT_EXPORT const char *hcrt_op_name(hcrt_op_t op);

/* Parses an op name as hcrt_op_name() prints it. HCRT_ERR_INVALID_ARG for NULL or unknown names. */
HCRT_EXPORT hcrt_status_t hcrt_op_from_name(const char *name, hcrt_op_t *op);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_TYPES_H */
