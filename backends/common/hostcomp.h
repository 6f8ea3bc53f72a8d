/*
 * backends/common/hostcomp.h - the compute extension (hcrt/backend_compute.h) of the backends whose
 * device work runs on host threads, cpu and sim: one table, hcrt__hc_table, that both point their
 * hcrt_backend_v1.compute at, so the two run the same code (kernels/host_compute.h) and give the same bits.
 *
 * The table's ops check their arguments, describe the op in an hcrt__hc_op_t and hand it to the
 * backend's submit(), which does what differs between the two: the device and stream checks, sim's
 * address translation and fault gate, running it now or on the stream's worker, sim's speed stretch.
 * They find submit() through the backend's state: a backend using the table starts its state struct
 * with an hcrt__hc_host_t.
 */
#ifndef HCRT_BACKENDS_HOSTCOMP_H
#define HCRT_BACKENDS_HOSTCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/backend.h"

typedef enum hcrt__hc_kind {
    HCRT__HC_GEMM,
    HCRT__HC_BIAS_ADD,
    HCRT__HC_RELU,
    HCRT__HC_RELU_BACKWARD,
    HCRT__HC_SOFTMAX_XENT,
    HCRT__HC_COL_SUM,
    HCRT__HC_OPTIM_STEP,
    HCRT__HC_CAST
} hcrt__hc_kind_t;

/* Most operands of an op. */
#define HCRT__HC_MAX_OPERANDS 4

/*
 * One op with its arguments. Operand pointers are kept as plain `void *` in ptr[], whatever their
 * constness, so a backend can replace them (sim puts the storage address of each device address there);
 * operand i spans bytes[i] bytes (0: absent or empty) and is named name[i] in messages.
 */
typedef struct hcrt__hc_op {
    hcrt__hc_kind_t kind;
    const char *what; /* the op's name: "gemm", ... */
    size_t noperands;
    void *ptr[HCRT__HC_MAX_OPERANDS];
    size_t bytes[HCRT__HC_MAX_OPERANDS];
    const char *name[HCRT__HC_MAX_OPERANDS];
    /* sizes: gemm m, n, k (rows, cols, inner); bias_add, col_sum, softmax rows x cols; element-wise count
     * in rows */
    size_t rows, cols, inner;
    size_t lda, ldb, ldc;
    bool trans_a, trans_b, accumulate;
    float alpha, beta;
    hcrt_dtype_t dtype, dtype2; /* gemm operands; cast dst (dtype) and src (dtype2) */
    hcrt_backend_optim_t optim;
} hcrt__hc_op_t;

typedef struct hcrt__hc_host {
    /* Checks dev and stream, then runs the op now (stream NULL) or queues it; returns its status. The op
     * may be modified (addresses translated). */
    hcrt_status_t (*submit)(void *state, int dev, hcrt__hc_op_t *op, hcrt_backend_stream_t *stream);
    /* Records an argument error for the backend's last_error() and returns `status`. */
    hcrt_status_t (*fail)(void *state, int dev, hcrt_status_t status, const char *msg);
} hcrt__hc_host_t;

/* The table; the state of the backend using it starts with an hcrt__hc_host_t. */
extern const hcrt_backend_compute_v1_t hcrt__hc_table;

/* Runs an op on the calling thread (an hcrt__wq_fn_t: arg is the hcrt__hc_op_t). On failure writes the
 * reason into msg (HCRT__WQ_MSG_LEN bytes): a label out of range, no memory for gemm's packing. */
hcrt_status_t hcrt__hc_exec(void *arg, char *msg);

#endif /* HCRT_BACKENDS_HOSTCOMP_H */
