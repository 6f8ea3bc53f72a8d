/*
 * tools/hcrt-train/data.c - the synthetic classification set (see data.h).
 *
 * The generator is splitmix64 keyed by a hash of (seed, stream, index): no state is carried from one
 * sample to the next, so a sample costs the same wherever it is made and never depends on which samples
 * a rank made before. Values are exact in f32 (24 random bits), and the teacher runs in f32 with a fixed
 * order of operations (ISO C: nothing is contracted into fused multiply-adds), so labels are the same
 * bits on every machine. The teacher is small (8 hidden units) on purpose: making the data must cost
 * little beside training on it (about 1.5 us a sample against tens for the default model's step).
 */
#include <stdlib.h>

#include "data.h"

#define TEACHER_HIDDEN 8

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The generator state of one stream: a hash of its key words. */
static uint64_t key(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t s = seed ^ 0x6a09e667f3bcc909ull;
    uint64_t h = splitmix64(&s);
    s = h ^ a;
    h = splitmix64(&s);
    s = h ^ b;
    return splitmix64(&s);
}

/* Uniform in [-1, 1), exactly representable in f32. */
static float uniform(uint64_t *state)
{
    int32_t v = (int32_t)(splitmix64(state) >> 40); /* 24 bits */
    return (float)(v - (1 << 23)) / (float)(1 << 23);
}

int train_data_init(train_data_t *d, uint64_t seed, int in, int classes)
{
    d->seed = seed;
    d->in = in;
    d->classes = classes;
    d->hidden = TEACHER_HIDDEN;
    d->w1 = malloc((size_t)in * TEACHER_HIDDEN * sizeof(float));
    d->b1 = malloc(TEACHER_HIDDEN * sizeof(float));
    d->w2 = malloc((size_t)TEACHER_HIDDEN * (size_t)classes * sizeof(float));
    d->b2 = malloc((size_t)classes * sizeof(float));
    if (!d->w1 || !d->b1 || !d->w2 || !d->b2) {
        train_data_free(d);
        return -1;
    }
    /* The teacher's streams live apart from the samples' (stream ids above any step). */
    uint64_t st = key(seed, UINT64_MAX, 1);
    for (size_t i = 0; i < (size_t)in * TEACHER_HIDDEN; i++)
        d->w1[i] = uniform(&st);
    for (int i = 0; i < TEACHER_HIDDEN; i++)
        d->b1[i] = 0.125f * uniform(&st);
    for (size_t i = 0; i < (size_t)TEACHER_HIDDEN * (size_t)classes; i++)
        d->w2[i] = uniform(&st);
    for (int i = 0; i < classes; i++)
        d->b2[i] = 0.125f * uniform(&st);
    return 0;
}

void train_data_free(train_data_t *d)
{
    free(d->w1);
    free(d->b1);
    free(d->w2);
    free(d->b2);
    d->w1 = d->b1 = d->w2 = d->b2 = NULL;
}

void train_data_batch(const train_data_t *d, int64_t step, uint64_t first, uint64_t n, float *x,
                      int32_t *labels)
{
    const int in = d->in, cls = d->classes;
    for (uint64_t s = 0; s < n; s++) {
        float *row = x + s * (uint64_t)in;
        uint64_t st = key(d->seed, (uint64_t)step, first + s);
        for (int j = 0; j < in; j++)
            row[j] = uniform(&st);
        float h[TEACHER_HIDDEN];
        for (int k = 0; k < TEACHER_HIDDEN; k++)
            h[k] = d->b1[k];
        for (int j = 0; j < in; j++) {
            const float xj = row[j];
            const float *w = d->w1 + (size_t)j * TEACHER_HIDDEN;
            for (int k = 0; k < TEACHER_HIDDEN; k++)
                h[k] += xj * w[k];
        }
        int best = 0;
        float best_v = 0;
        for (int c = 0; c < cls; c++) {
            float v = d->b2[c];
            for (int k = 0; k < TEACHER_HIDDEN; k++)
                v += (h[k] > 0 ? h[k] : 0) * d->w2[(size_t)k * (size_t)cls + (size_t)c];
            if (c == 0 || v > best_v) {
                best = c;
                best_v = v;
            }
        }
        labels[s] = best;
    }
}

void train_data_init_weights(uint64_t seed, int tensor, float scale, float *w, size_t count)
{
    uint64_t st = key(seed, UINT64_MAX - 1, (uint64_t)tensor);
    for (size_t i = 0; i < count; i++)
        w[i] = scale * uniform(&st);
}
