/*
 * kernels/exact_kernels.h - an exact, order-independent sum of f32 values: a long fixed-point
 * accumulator of K int64 "digit" words per element (docs/exact-mode.md).
 *
 * The window is [2^lsb, 2^top): each added value x (|x| < 2^top required) is rounded once, to the
 * nearest multiple of 2^lsb (ties to even), and split exactly into K signed digits of 48-bit spacing,
 * digit j worth 2^(lsb + 48 j); digit j of every value is added to word j with a plain integer add. The
 * words therefore hold the exact sum of the rounded values whatever the order or grouping of the
 * additions, and so does an integer SUM of several accumulators (an MPI allreduce): wrap-around of an
 * intermediate is harmless as long as the final words fit, which the headroom below guarantees.
 *
 * Headroom: a lower digit is at most 2^47 in magnitude, so a word takes 2^15 additions before
 * hcrt__exact_normalize() must move its carries up (the caller counts); a normalised lower digit is in
 * [-2^47, 2^47), so up to 2^15 normalised accumulators may be summed. The top digit of one value is
 * below 2^(top - lsb - 48 (K - 1)) <= 2^48, so the top word holds hcrt__exact_max_adds() values in all.
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
/* Additions a word takes between normalisations (half its headroom). */
#define HCRT__EXACT_NORMALIZE_EVERY 8192

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

/*
 * Adds x[0..n) into the words of elements 0..n. Returns n when every |x[i]| < 2^top; otherwise the
 * index of the first value that is not (NaN and infinities included), and the words of the elements
 * from there on hold unspecified values (the caller reports the failure and resets). Vectorised
 * (AVX-512, AVX2 or SSE2, chosen at load time); the result is the same bits on every path.
 */
size_t hcrt__exact_add_f32(int64_t *words, size_t stride, const float *x, size_t n, const hcrt__exact_window_t *w);

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
