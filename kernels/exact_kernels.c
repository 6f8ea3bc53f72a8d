/*
 * kernels/exact_kernels.c - the long accumulator of exact mode: split, add, normalise, round once.
 *
 * Splitting uses the "magic number" rounding of floating point: for |v| < 2^(51+B), the double sum
 * t = v + 1.5 * 2^(52+B) lies in [2^(52+B), 2^(53+B)), whose spacing is 2^B, so t is C plus v rounded
 * to a multiple of 2^B (nearest, ties to even); the integer difference of the bit patterns of t and C is
 * that multiple in units of 2^B, and v - (t - C) is the exact remainder. Every step is an exactly
 * specified IEEE operation (this file is compiled with -ffp-contract=off and without -ffast-math, so no
 * step is fused or reassociated away) and vectorises: a value costs a conversion and, per digit, two
 * additions, a subtraction, an integer subtraction and an integer addition.
 *
 * Rounding the sum to f32 first rounds it to odd at 53 bits (truncate, then set the last bit when
 * anything was dropped): a number rounded to odd with at least two bits more than the target rounds to
 * the target exactly as the original would, so the one f32 rounding that follows is the correct one.
 */
#include "kernels/exact_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(HCRT_NO_CLONES)
#define EK_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define EK_CLONES
#endif

#define DIGIT      HCRT__EXACT_DIGIT_BITS
#define DIGIT_ONE  ((int64_t)1 << DIGIT)
#define DIGIT_HALF ((int64_t)1 << (DIGIT - 1))

static inline int64_t dbits(double d)
{
    int64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static inline double bitsd(int64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

bool hcrt__exact_window_init(hcrt__exact_window_t *w, int lsb, int top)
{
    if (w == NULL || lsb < HCRT__EXACT_LSB_MIN || top > HCRT__EXACT_TOP_MAX || top - lsb < 24)
        return false;
    int span = top - lsb;
    int k = span <= DIGIT ? 1 : 1 + (span - DIGIT + DIGIT - 1) / DIGIT;
    if (k > HCRT__EXACT_WORDS_MAX)
        return false;
    w->lsb = lsb;
    w->top = top;
    w->words = k;
    return true;
}

/* Bits of the top digit of one value: |x| / 2^(lsb + 48 (K-1)) < 2^t, with 0 < t <= 48. */
static int top_bits(const hcrt__exact_window_t *w)
{
    return w->top - (w->lsb + DIGIT * (w->words - 1));
}

uint64_t hcrt__exact_max_adds(const hcrt__exact_window_t *w)
{
    /* n values below 2^t each, plus the carries of the lower words (less than one unit of the top
     * word per accumulator), must stay below 2^63. */
    return ((uint64_t)1 << (63 - top_bits(w))) - 2;
}

/* The magic constants 1.5 * 2^(52 + lsb + 48 j) and their bit patterns. */
static void magic(const hcrt__exact_window_t *w, double *c, int64_t *cb)
{
    for (int j = 0; j < w->words; j++) {
        c[j] = ldexp(1.5, 52 + w->lsb + DIGIT * j);
        cb[j] = dbits(c[j]);
    }
}

/*
 * Folding a micro-batch: sum[i] += x[i] in double, exactly when the result fits 53 bits, which is the
 * common case (the values of one element over a step's micro-batches have similar magnitudes); the
 * error of an inexact addition, computed exactly by TwoSum, goes to the caller's spill function. A
 * value is first rounded to the window's grid when it has bits below 2^lsb (only values below
 * 2^(lsb + 24) can). This touches 4 bytes of input and 8 of cache per element and vectorises; the
 * digit words are written only once a step, by hcrt__exact_flush.
 */
#define FOLD_CHUNK 1024

EK_CLONES static int fold_first(double *restrict sum, const float *restrict x, size_t n, double c0, double small,
                                double limit)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i];
        bad |= !(fabs(v) < limit);
        double vr = (v + c0) - c0;
        sum[i] = fabs(v) < small ? vr : v;
    }
    return bad;
}

EK_CLONES static int fold_next(double *restrict sum, const float *restrict x, double *restrict err, size_t n, double c0,
                               double small, double limit)
{
    int flags = 0;
    for (size_t i = 0; i < n; i++) {
        double v = (double)x[i];
        flags |= !(fabs(v) < limit);
        double vr = (v + c0) - c0;
        v = fabs(v) < small ? vr : v;
        double a = sum[i], s = a + v, bb = s - a;
        double e = (a - (s - bb)) + (v - bb);
        sum[i] = s;
        err[i] = e;
        flags |= (e != 0) << 1;
    }
    return flags;
}

size_t hcrt__exact_fold_f32(double *sum, const float *x, size_t n, const hcrt__exact_window_t *w, bool first,
                            hcrt__exact_spill_fn spill, void *arg)
{
    const double limit = ldexp(1.0, w->top), c0 = ldexp(1.5, 52 + w->lsb), small = ldexp(1.0, w->lsb + 24);
    double err[FOLD_CHUNK];
    size_t bad = n;
    for (size_t off = 0; off < n; off += FOLD_CHUNK) {
        size_t m = n - off < FOLD_CHUNK ? n - off : FOLD_CHUNK;
        int flags = first ? fold_first(sum + off, x + off, m, c0, small, limit)
                          : fold_next(sum + off, x + off, err, m, c0, small, limit);
        if (flags & 2)
            for (size_t i = 0; i < m; i++)
                if (err[i] != 0)
                    spill(arg, off + i, err[i]);
        if ((flags & 1) && bad == n)
            for (size_t i = 0; i < m && bad == n; i++)
                if (!(fabs((double)x[off + i]) < limit))
                    bad = off + i;
    }
    return bad;
}

/* Digits of one double v (finite, a multiple of 2^lsb, |v| < 2^(lsb + 48 (K-1) + 63)) into d[0..K). The
 * top digit is the rounded quotient (exact in int64 however large v is), the rest the exact remainder
 * split by magic rounding, so every lower digit is at most 2^47 in magnitude, as in the vector loops. A non-finite v
 * (only after an out-of-range value, which fails the reduction anyway) gives zeros, never undefined behaviour. */
static void split_one(double v, const hcrt__exact_window_t *w, const double *c, const int64_t *cb, int64_t *d)
{
    const int k = w->words;
    if (!isfinite(v) || !(fabs(v) < ldexp(1.0, w->lsb + DIGIT * (k - 1) + 63))) {
        memset(d, 0, (size_t)k * sizeof(*d));
        return;
    }
    double q = nearbyint(ldexp(v, -(w->lsb + DIGIT * (k - 1)))); /* the rest is at most half a unit */
    d[k - 1] = (int64_t)q;
    v -= ldexp(q, w->lsb + DIGIT * (k - 1));
    for (int j = k - 2; j > 0; j--) {
        double t = v + c[j];
        d[j] = dbits(t) - cb[j];
        v -= t - c[j];
    }
    if (k > 1)
        d[0] = dbits(v + c[0]) - cb[0];
}

void hcrt__exact_split_add(int64_t *words, size_t stride, size_t i, double v, const hcrt__exact_window_t *w)
{
    double c[HCRT__EXACT_WORDS_MAX] = {0};
    int64_t cb[HCRT__EXACT_WORDS_MAX] = {0}, d[HCRT__EXACT_WORDS_MAX];
    magic(w, c, cb);
    split_one(v, w, c, cb, d);
    for (int j = 0; j < w->words; j++)
        words[(size_t)j * stride + i] += d[j];
    /* Keep the element normalised: its lower words then hold any number of later additions. */
    for (int j = 0; j + 1 < w->words; j++) {
        int64_t carry = (words[(size_t)j * stride + i] + DIGIT_HALF) >> DIGIT;
        words[(size_t)j * stride + i] -= carry * DIGIT_ONE;
        words[(size_t)(j + 1) * stride + i] += carry;
    }
}

/*
 * Flushing: the digits of sum[i], assigned to (or added to) the words. Two and three words have their own
 * vectorised loops; a value beyond the magic rounding's range of the top digit (a sum far beyond 2^top,
 * or a non-finite one) contributes nothing there and is flagged, then done by split_one.
 */
EK_CLONES static int flush_2(int64_t *restrict w0, int64_t *restrict w1, const double *restrict sum, size_t n,
                             const double *c, const int64_t *cb, double lim, int add)
{
    int far = 0;
    const double c0 = c[0], c1 = c[1];
    const int64_t b0 = cb[0], b1 = cb[1];
    for (size_t i = 0; i < n; i++) {
        double v = sum[i];
        int ok = fabs(v) < lim;
        far |= !ok;
        double t = v + c1;
        int64_t d1 = ok ? dbits(t) - b1 : 0, d0 = ok ? dbits((v - (t - c1)) + c0) - b0 : 0;
        w1[i] = add ? w1[i] + d1 : d1;
        w0[i] = add ? w0[i] + d0 : d0;
    }
    return far;
}

EK_CLONES static int flush_3(int64_t *restrict w0, int64_t *restrict w1, int64_t *restrict w2,
                             const double *restrict sum, size_t n, const double *c, const int64_t *cb, double lim,
                             int add)
{
    int far = 0;
    const double c0 = c[0], c1 = c[1], c2 = c[2];
    const int64_t b0 = cb[0], b1 = cb[1], b2 = cb[2];
    for (size_t i = 0; i < n; i++) {
        double v = sum[i];
        int ok = fabs(v) < lim;
        far |= !ok;
        double t = v + c2;
        int64_t d2 = ok ? dbits(t) - b2 : 0;
        v -= t - c2;
        t = v + c1;
        int64_t d1 = ok ? dbits(t) - b1 : 0, d0 = ok ? dbits((v - (t - c1)) + c0) - b0 : 0;
        w2[i] = add ? w2[i] + d2 : d2;
        w1[i] = add ? w1[i] + d1 : d1;
        w0[i] = add ? w0[i] + d0 : d0;
    }
    return far;
}

void hcrt__exact_flush(int64_t *words, size_t stride, const double *sum, size_t n, const hcrt__exact_window_t *w,
                       bool add)
{
    double c[HCRT__EXACT_WORDS_MAX] = {0};
    int64_t cb[HCRT__EXACT_WORDS_MAX] = {0}, d[HCRT__EXACT_WORDS_MAX];
    const int k = w->words;
    /* The top digit's magic rounding holds below 2^(51 + its weight). */
    const double lim = ldexp(1.0, w->lsb + DIGIT * (k - 1) + 51);
    magic(w, c, cb);
    bool vector = k == 2 || k == 3, far = true;
    if (k == 2)
        far = flush_2(words, words + stride, sum, n, c, cb, lim, add);
    else if (k == 3)
        far = flush_3(words, words + stride, words + 2 * stride, sum, n, c, cb, lim, add);
    if (!far)
        return;
    /* One, four or five words, and the flagged elements of the vector loops (which left them at 0, or
     * untouched when adding). */
    for (size_t i = 0; i < n; i++) {
        if (vector && fabs(sum[i]) < lim)
            continue;
        split_one(sum[i], w, c, cb, d);
        for (int j = 0; j < k; j++) {
            int64_t *p = &words[(size_t)j * stride + i];
            *p = add || vector ? *p + d[j] : d[j];
        }
    }
}

EK_CLONES static void carry_up(int64_t *restrict lo, int64_t *restrict hi, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* c = round(lo / 2^48) (ties up); >> of a negative value is arithmetic in gcc and clang. */
        int64_t c = (lo[i] + DIGIT_HALF) >> DIGIT;
        lo[i] -= c * DIGIT_ONE;
        hi[i] += c;
    }
}

void hcrt__exact_normalize(int64_t *words, size_t stride, size_t n, const hcrt__exact_window_t *w)
{
    for (int j = 0; j + 1 < w->words; j++)
        carry_up(words + (size_t)j * stride, words + (size_t)(j + 1) * stride, n);
}

float hcrt__exact_value_f32(const int64_t *digits, const hcrt__exact_window_t *w, int64_t divisor)
{
    int64_t d[HCRT__EXACT_WORDS_MAX];
    const int k = w->words;
    memcpy(d, digits, (size_t)k * sizeof(*d));
    /* Canonical digits: [0, 2^48) below the top; the top carries the sign. */
    for (int j = 0; j + 1 < k; j++) {
        int64_t c = d[j] >> DIGIT;
        d[j] -= c * DIGIT_ONE;
        d[j + 1] += c;
    }
    bool neg = d[k - 1] < 0;
    if (neg) {
        for (int j = 0; j < k; j++)
            d[j] = -d[j];
        for (int j = 0; j + 1 < k; j++) {
            int64_t c = d[j] >> DIGIT;
            d[j] -= c * DIGIT_ONE;
            d[j + 1] += c;
        }
    }
    int h = k - 1;
    while (h >= 0 && d[h] == 0)
        h--;
    if (h < 0)
        return 0.0f;
    /* The highest digits, until they hold at least 64 bits (at most 63 + 48 in all), and a sticky bit
     * for everything below them. */
    unsigned __int128 x = (uint64_t)d[h];
    int e = w->lsb + DIGIT * h, j = h;
    while (j > 0 && (x >> 64) == 0 && x < ((unsigned __int128)1 << 63)) {
        j--;
        x = (x << DIGIT) | (uint64_t)d[j];
        e -= DIGIT;
    }
    bool sticky = false;
    while (j > 0)
        sticky |= d[--j] != 0;
    int nb = 128 - (x >> 64 ? __builtin_clzll((uint64_t)(x >> 64)) : 64 + __builtin_clzll((uint64_t)x));
    uint64_t m;
    if (nb > 64) {
        int s = nb - 64;
        sticky |= (x & (((unsigned __int128)1 << s) - 1)) != 0;
        m = (uint64_t)(x >> s);
        e += s;
    } else {
        m = (uint64_t)x;
    }
    /* m has 64 significant bits whenever sticky can be set, so bit 0 lies below the 53rd: it acts as
     * the round-to-odd bit. Rounded to odd at 53 bits, the value is exact as a double. */
    m |= sticky;
    int mb = 64 - __builtin_clzll(m);
    if (mb > 53) {
        int s = mb - 53;
        m = (m >> s) | ((m & (((uint64_t)1 << s) - 1)) != 0);
        e += s;
    }
    float f = (float)(ldexp((double)m, e) / (double)divisor);
    return neg ? -f : f;
}

/*
 * Two words (the default window): canonical digits, the value as a double pair a + b with an exact
 * TwoSum, rounded to odd from the sign of the TwoSum error. Elements whose top digit does not fit a
 * double's 53 bits (sums beyond the default window's top by far) are flagged and redone by the
 * generic path; the results are the same bits either way.
 */
EK_CLONES static int to_f32_2(float *restrict out, const int64_t *restrict w0, const int64_t *restrict w1, size_t n,
                              double scale, double divisor)
{
    int far = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t c = w0[i] >> DIGIT;
        int64_t d0 = w0[i] - c * DIGIT_ONE;
        int64_t d1 = w1[i] + c;
        far |= !(d1 < ((int64_t)1 << 53) && d1 > -((int64_t)1 << 53));
        double a = (double)d1 * 0x1p48, b = (double)d0;
        double s = a + b, bb = s - a;
        double err = (a - (s - bb)) + (b - bb);
        int64_t sb = dbits(s);
        /* Truncation toward zero: s itself when the rest has s's sign, else the double below in
         * magnitude; then the odd bit when anything was dropped. */
        int64_t trunc = (err > 0) == (s > 0) ? sb : sb - 1;
        sb = err != 0 ? (trunc | 1) : sb;
        out[i] = (float)(bitsd(sb) * scale / divisor); /* / 1.0 is exact: one rounding, to f32 */
    }
    return far;
}

void hcrt__exact_to_f32(float *out, const int64_t *words, size_t stride, size_t n, const hcrt__exact_window_t *w,
                        int64_t divisor)
{
    int64_t d[HCRT__EXACT_WORDS_MAX];
    if (w->words == 2 && !to_f32_2(out, words, words + stride, n, ldexp(1.0, w->lsb), (double)divisor))
        return;
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < w->words; j++)
            d[j] = words[(size_t)j * stride + i];
        out[i] = hcrt__exact_value_f32(d, w, divisor);
    }
}
