/*
 * kernels/exact_kernels.h - an exact, order-independent sum of f32 values: a long fixed-point
 * accumulator of K int64 "digit" words per element (docs/exact-mode.md).
 *
 * The window is [2^lsb, 2^top): each added value x (|x| < 2^top required) is rounded once, to the
 * nearest multiple of 2^lsb (ties to even), and the sum of the rounded values is kept exactly. Within a
 * step the values of each element are summed in a double (hcrt__exact_fold_f32): exact as long as the sum
 * fits 53 bits, and when it does not, the exact error of that addition (TwoSum) goes to a spill that the
 * caller adds to the element's words (hcrt__exact_split_add). Once a step the double is split exactly
 * into K signed digits of 48-bit spacing, digit j worth 2^(lsb + 48 j) (hcrt__exact_flush). The words
 * therefore hold the exact sum of the rounded values whatever the order or grouping of the additions,
 * and so does an integer SUM of several accumulators (an MPI allreduce): wrap-around of an intermediate
 * is harmless as long as the final words fit, which the headroom below guarantees.
 *
 * Headroom: a normalised lower digit lies in [-2^47, 2^47), so up to 2^15 normalised accumulators may be
 * summed. The top digit of one value is below 2^(top - lsb - 48 (K - 1)) <= 2^48, so the top word holds
 * hcrt__exact_max_adds() values in all.
 *
 * Words are stored word-major: digit j of element i at words[j * stride + i].
 */
#ifndef HCRT_EXACT_KERNELS_H
#define HCRT_EXACT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bits between the weights of two neighbouring digit words. */
#define HCRT__EXACT_DIGIT_BITS 48
/* Bounds of the window's exponents: results stay normal f32 numbers, sums of at most max_adds values
 * below 2^top stay finite f32 numbers. */
#define HCRT__EXACT_LSB_MIN   (-126)
#define HCRT__EXACT_TOP_MAX   100
#define HCRT__EXACT_WORDS_MAX 5
typedef struct hcrt__exact_window {
    int lsb;   /* exponent of the unit of digit 0 */
    int top;   /* every value must satisfy |x| < 2^top */
    int words; /* K */
} hcrt__exact_window_t;

/* Sets up the window [2^lsb, 2^top): K = 1 + ceil((top - lsb - 48) / 48), at least 1. false when
 * lsb < HCRT__EXACT_LSB_MIN, top > HCRT__EXACT_TOP_MAX or top - lsb < 24 (narrower than one f32). */
bool hcrt__exact_window_init(hcrt__exact_window_t *w, int lsb, int top);

/* How many values (|x| < 2^top each) the top word can sum without overflow, over all accumulators
 * that are summed together. */
uint64_t hcrt__exact_max_adds(const hcrt__exact_window_t *w);

/* Receives an addition the double sum of element i could not hold exactly: err (a multiple of 2^lsb,
 * finite) must be added to that element's words. */
typedef void (*hcrt__exact_spill_fn)(void *arg, size_t i, double err);

/*
 * Folds x[0..n) into sum[0..n): sum[i] = x[i] (first) or sum[i] + x[i], each x rounded to the grid
 * first; an inexact addition leaves the rounded sum in sum[i] and hands the exact rest to spill (never
 * called when first). Returns n when every |x[i]| < 2^top; otherwise the index of the first value that is
 * not (NaN and infinities included), and the sums of the elements concerned are unspecified (the caller
 * reports the failure and resets). Vectorised (AVX-512, AVX2 or SSE2, chosen at load time); the sums
 * are the same bits on every path.
 */
size_t hcrt__exact_fold_f32(double *sum, const float *x, size_t n, const hcrt__exact_window_t *w, bool first,
                            hcrt__exact_spill_fn spill, void *arg);

/* The digits of sum[0..n) assigned to the words (add false), or added to them (add true; normalise
 * afterwards). A non-finite sum (only after an out-of-range value) contributes zeros. */
void hcrt__exact_flush(int64_t *words, size_t stride, const double *sum, size_t n, const hcrt__exact_window_t *w,
                       bool add);

/* Adds the digits of v (finite, a multiple of 2^lsb) to element i of the words and normalises it. */
void hcrt__exact_split_add(int64_t *words, size_t stride, size_t i, double v, const hcrt__exact_window_t *w);

/* Moves carries up so that every word but the top holds a digit in [-2^47, 2^47); the value is
 * unchanged. */
void hcrt__exact_normalize(int64_t *words, size_t stride, size_t n, const hcrt__exact_window_t *w);

/*
 * out[i] = the exact value of element i divided by `divisor` (>= 1), as an f32. With divisor 1 the
 * exact sum is rounded once to nearest even (correctly rounded). With divisor > 1 the sum is rounded to
 * odd at 53 bits, divided in double and rounded to f32: deterministic, within one ulp of the exact
 * quotient. The words may be unnormalised (up to 2^15 normalised accumulators summed). Vectorised for
 * K = 2 (the default window), element by element otherwise; the same bits either way.
 */
void hcrt__exact_to_f32(float *out, const int64_t *words, size_t stride, size_t n, const hcrt__exact_window_t *w,
                        int64_t divisor);

/* One element, by the generic (scalar) path: what hcrt__exact_to_f32 must give. For tests. */
float hcrt__exact_value_f32(const int64_t *digits, const hcrt__exact_window_t *w, int64_t divisor);

#endif /* HCRT_EXACT_KERNELS_H */
