/*
 * tools/hcrt-train/model.h - the multi-layer perceptron hcrt-train learns, on one device.
 *
 * Every weight and bias lives in one flat f32 parameter vector (layer by layer: W0 [d0 x d1], b0 [d1],
 * W1, b1, ...), so that gradients, optimizer state, collectives and checkpoints each handle one buffer;
 * the layers are views into it. A micro-batch runs forward and backward on the model's stream and adds
 * its gradient (a SUM over its samples) and its loss sum into device buffers; nothing waits for the host.
 */
#ifndef HCRT_TRAIN_MODEL_H
#define HCRT_TRAIN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/hcrt.h"

#define MLP_MAX_LAYERS 16

/* hcrt-train's files: returns the status of a call that failed (the message is in hcrt_last_error). */
#define TRY(call)                                                                                    \
    do {                                                                                             \
        hcrt_status_t st_ = (call);                                                                  \
        if (st_ != HCRT_OK)                                                                          \
            return st_;                                                                              \
    } while (0)

typedef struct mlp {
    hcrt_device_t *dev, *host;
    hcrt_stream_t *stream;
    int nlayers;                  /* weight layers: dims has nlayers + 1 entries */
    int dims[MLP_MAX_LAYERS + 1];
    size_t w_off[MLP_MAX_LAYERS], b_off[MLP_MAX_LAYERS];
    size_t nparams;
    size_t micro;                 /* samples per micro-batch */
    hcrt_dtype_t gemm_dtype;      /* f32, or f16/bf16 operands (f32 accumulation) */

    float *params;                /* device: the flat parameters */
    float *grads;                 /* device: gradient sums, same layout */
    float *loss;                  /* device: one f32, the loss sum */
    float *x;                     /* device: micro x d0 inputs */
    int32_t *labels;              /* device: micro labels */
    float *act[MLP_MAX_LAYERS];   /* device: layer l's output (pre-activation, then ReLU in place) */
    float *delta_a, *delta_b;     /* device: micro x max(d) gradient scratch */
    void *lp_a, *lp_b;            /* device: f16/bf16 copies of gemm operands (NULL for f32) */
    size_t max_dim;
} mlp_t;

/* Parses "512,1024,1024,10" into dims; returns the number of weight layers, or -1 with a message. */
int mlp_parse_layers(const char *text, int *dims, char *err, size_t errlen);

/* Allocates the model's device buffers for micro-batches of `micro` samples; params and grads hold
 * `capacity` (>= nparams, the padding zeroed) elements, so that they split evenly across ranks. */
hcrt_status_t mlp_create(mlp_t *m, hcrt_context_t *ctx, hcrt_device_t *dev, const int *dims, int nlayers,
                         size_t micro, hcrt_dtype_t gemm_dtype, size_t capacity_multiple, size_t *capacity);
void mlp_destroy(mlp_t *m);

/* The initial parameters, drawn from `seed` (the same bits on every rank), written to the device. */
hcrt_status_t mlp_init_params(mlp_t *m, uint64_t seed);

/* Zeroes the gradient sums and the loss sum (on the stream). */
hcrt_status_t mlp_zero_grads(mlp_t *m);

/* Copies one micro-batch (host x and labels) to the device and runs forward and backward on the
 * stream: the gradient sum is added into grads and the loss sum into loss (both overwritten when
 * `overwrite`). */
hcrt_status_t mlp_micro_batch(mlp_t *m, const float *x, const int32_t *labels, bool overwrite);

#endif /* HCRT_TRAIN_MODEL_H */
