/*
 * tools/hcrt-train/data.h - the synthetic classification set hcrt-train learns.
 *
 * Inputs are uniform in [-1, 1) (exact f32 values drawn from a counter-based generator), labels are the
 * argmax of a fixed random "teacher" network (in -> 8 ReLU -> classes, in f32) drawn from the same seed. Sample
 * i of global step s is a pure function of (seed, s, i): every rank can make any sample on its own, so
 * the global batches are the same whatever the world size, device mix, batch split or restart.
 */
#ifndef HCRT_TRAIN_DATA_H
#define HCRT_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef struct train_data {
    uint64_t seed;
    int in, classes, hidden;
    float *w1, *b1, *w2, *b2; /* teacher: [in x hidden], [hidden], [hidden x classes], [classes] */
} train_data_t;

/* Draws the teacher from `seed`. Returns 0, or -1 when out of memory. */
int train_data_init(train_data_t *d, uint64_t seed, int in, int classes);
void train_data_free(train_data_t *d);

/* Samples [first, first + n) of global step `step`: x gets n rows of `in` floats, labels n class ids. */
void train_data_batch(const train_data_t *d, int64_t step, uint64_t first, uint64_t n, float *x,
                      int32_t *labels);

/* Weights of the student drawn from `seed`: `count` values uniform in [-scale, scale), the stream
 * selected by `tensor` (so each tensor is independent of the others' sizes). */
void train_data_init_weights(uint64_t seed, int tensor, float scale, float *w, size_t count);

#endif /* HCRT_TRAIN_DATA_H */
