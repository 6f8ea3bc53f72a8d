/*
 * tests/unit/test_exact_kernels.c - exact mode's long accumulator (kernels/exact_kernels.c).
 *
 * - The words of a sum do not depend on the order of the additions, nor on splitting the values into
 *   groups accumulated apart and then added as integers (what the allreduce does): checked over random
 *   values spread across the whole window, with cancellations, where the double sums must spill.
 * - The f32 result is the exact sum rounded once to nearest even: compared bit for bit with an
 *   independent oracle (128-bit integer sum of the values rounded to the window's grid, rounded to f32
 *   by hand), including ties and sticky bits below 53 bits; where the float64 sum is exact it equals
 *   that sum rounded once, and the mean equals it divided in double.
 * - The vectorised two-word conversion and the generic one give the same bits, on unnormalised words.
 * - Range limits: values at and beyond 2^top, infinities and NaN are reported by index; values below
 *   half the lsb count as zero; the window holds max_adds values of the largest magnitude.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/exact_kernels.h"
#include "rng.h"
#include "test.h"

static uint64_t rng_state = 0x853C49E6748FEA9Bull;
static uint64_t rng(void)
{
    return test_rng_next(&rng_state);
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

/* A random f32 with a random exponent in [lo, hi) and a random sign and mantissa. */
static float random_value(int lo, int hi)
{
    int e = lo + (int)(rng() % (uint64_t)(hi - lo));
    float m = 1.0f + (float)(rng() >> 41) * 0x1p-23f;
    float v = ldexpf(m, e);
    return rng() & 1 ? -v : v;
}

/* ---- the oracle: a 128-bit integer sum in units of 2^lsb, rounded to f32 by hand ---------------- */

static __int128 grid(float x, int lsb)
{
    /* x * 2^-lsb is exact in double; nearbyint rounds half to even in the default mode. */
    return (__int128)nearbyint(ldexp((double)x, -lsb));
}

static float oracle_f32(__int128 s, int lsb)
{
    if (s == 0)
        return 0.0f;
    bool neg = s < 0;
    unsigned __int128 m = neg ? (unsigned __int128)(-s) : (unsigned __int128)s;
    int nb = 0;
    for (unsigned __int128 t = m; t; t >>= 1)
        nb++;
    int e = lsb;
    if (nb > 24) {
        int drop = nb - 24;
        unsigned __int128 rest = m & (((unsigned __int128)1 << drop) - 1), half = (unsigned __int128)1 << (drop - 1);
        m >>= drop;
        e += drop;
        if (rest > half || (rest == half && (m & 1)))
            m++;
    }
    float f = ldexpf((float)(uint64_t)m, e);
    return neg ? -f : f;
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* One accumulator as runtime/balance/exact.c drives the kernels: double sums folded per "micro-batch",
 * spills into extra words, and at the end the sums flushed into the words, the spills added. */
typedef struct acc {
    hcrt__exact_window_t w;
    size_t n;
    double *sum;
    int64_t *words, *extra;
    int adds;
    long spills;
} acc_t;

static void acc_init(acc_t *a, int lsb, int top, size_t n)
{
    REQUIRE_OK(NULL, hcrt__exact_window_init(&a->w, lsb, top) ? HCRT_OK : HCRT_ERR_INVALID_ARG);
    a->n = n;
    a->sum = calloc(n, sizeof(double));
    a->words = calloc((size_t)a->w.words * n, sizeof(int64_t));
    a->extra = calloc((size_t)a->w.words * n, sizeof(int64_t));
    a->adds = 0;
    a->spills = 0;
}

static void acc_spill(void *arg, size_t i, double err)
{
    acc_t *a = arg;
    a->spills++;
    hcrt__exact_split_add(a->extra, a->n, i, err, &a->w);
}

/* Folds x; returns the kernel's answer (n, or the first value out of range). */
static size_t acc_fold(acc_t *a, const float *x)
{
    return hcrt__exact_fold_f32(a->sum, x, a->n, &a->w, a->adds++ == 0, acc_spill, a);
}

static void acc_add(acc_t *a, const float *x)
{
    CHECK(acc_fold(a, x) == a->n);
}

/* The words of the exact sum so far (normalised), as the flush before the allreduce makes them. */
static void acc_words(acc_t *a)
{
    hcrt__exact_flush(a->words, a->n, a->sum, a->n, &a->w, false);
    for (size_t i = 0; i < (size_t)a->w.words * a->n; i++)
        a->words[i] += a->extra[i];
    hcrt__exact_normalize(a->words, a->n, a->n, &a->w);
}

/* b += a, as the allreduce's int64 sum does (wrapping). */
static void acc_sum_into(acc_t *b, const acc_t *a)
{
    for (size_t i = 0; i < (size_t)a->w.words * a->n; i++)
        b->words[i] = (int64_t)((uint64_t)b->words[i] + (uint64_t)a->words[i]);
}

static void acc_free(acc_t *a)
{
    free(a->words);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_window(void)
{
    hcrt__exact_window_t w;
    CHECK(hcrt__exact_window_init(&w, -64, 32) && w.words == 2);
    CHECK(hcrt__exact_max_adds(&w) == 32766);
    CHECK(hcrt__exact_window_init(&w, -16, 32) && w.words == 1);
    CHECK(hcrt__exact_window_init(&w, -100, 40) && w.words == 3);
    CHECK(hcrt__exact_window_init(&w, -126, 100) && w.words == 5);
    CHECK(!hcrt__exact_window_init(&w, -127, 32));
    CHECK(!hcrt__exact_window_init(&w, -64, 101));
    CHECK(!hcrt__exact_window_init(&w, 0, 23));
}

/* The same values in different orders and groupings give the same words and bits. */
static void test_order_independence(int lsb, int top, int lo_exp, int hi_exp)
{
    enum { N = 40, P = 257 };
    static float x[N][P];
    for (int k = 0; k < N; k++)
        for (int i = 0; i < P; i++)
            x[k][i] = random_value(lo_exp, hi_exp);
    /* Cancellation: micro-batch N-1 holds minus micro-batch 0 in half of the elements. */
    for (int i = 0; i < P; i += 2)
        x[N - 1][i] = -x[0][i];
    acc_t ref;
    acc_init(&ref, lsb, top, P);
    for (int k = 0; k < N; k++)
        acc_add(&ref, x[k]);
    acc_words(&ref);
    CHECK_MSG(ref.spills > 0 || hi_exp - lo_exp <= 53, "window [2^%d, 2^%d): values %d binades apart never spilled",
              lsb, top, hi_exp - lo_exp);
    float ref_out[P];
    hcrt__exact_to_f32(ref_out, ref.words, P, P, &ref.w, 1);
    for (int trial = 0; trial < 30; trial++) {
        int perm[N];
        for (int k = 0; k < N; k++)
            perm[k] = N - 1 - k;
        if (trial > 0)
            for (int k = N - 1; k > 0; k--) {
                int j = (int)(rng() % (uint64_t)(k + 1)), t = perm[k];
                perm[k] = perm[j];
                perm[j] = t;
            }
        /* 1 to 5 groups of uneven sizes, accumulated apart, normalised or not, then summed. */
        int groups = 1 + trial % 5, cut[6] = {0};
        for (int g = 1; g < groups; g++)
            cut[g] = cut[g - 1] + 1 + (int)(rng() % (uint64_t)((N - cut[g - 1]) / (groups - g + 1)));
        cut[groups] = N;
        acc_t total;
        acc_init(&total, lsb, top, P);
        for (int g = 0; g < groups; g++) {
            acc_t part;
            acc_init(&part, lsb, top, P);
            for (int k = cut[g]; k < cut[g + 1]; k++)
                acc_add(&part, x[perm[k]]);
            acc_words(&part);
            acc_sum_into(&total, &part);
            acc_free(&part);
        }
        float out[P];
        hcrt__exact_to_f32(out, total.words, P, P, &total.w, 1);
        CHECK_MSG(memcmp(out, ref_out, sizeof(out)) == 0, "window [2^%d, 2^%d), trial %d (%d groups): bits differ", lsb,
                  top, trial, groups);
        hcrt__exact_normalize(total.words, P, P, &total.w);
        CHECK_MSG(memcmp(total.words, ref.words, sizeof(int64_t) * P * (size_t)ref.w.words) == 0,
                  "window [2^%d, 2^%d), trial %d: normalised words differ", lsb, top, trial);
        acc_free(&total);
    }
    /* Against the oracle. */
    int bad = 0;
    for (int i = 0; i < P; i++) {
        __int128 s = 0;
        for (int k = 0; k < N; k++)
            s += grid(x[k][i], lsb);
        float want = oracle_f32(s, lsb);
        if (fbits(want) != fbits(ref_out[i]) && bad++ < 5)
            fprintf(stderr, "FAIL window [2^%d, 2^%d) element %d: %a, oracle %a\n", lsb, top, i, ref_out[i], want);
    }
    CHECK_MSG(bad == 0, "%d elements differ from the oracle", bad);
    acc_free(&ref);
}

/* Where the float64 sum is exact, the result is that sum rounded once; the mean is it divided. */
static void test_float64_reference(void)
{
    enum { N = 16, P = 1000 };
    static float x[N][P];
    acc_t a;
    acc_init(&a, -64, 32, P);
    /* Multiples of 2^-40 below 2^8: 16 of them sum exactly in 53 bits. */
    for (int k = 0; k < N; k++) {
        for (int i = 0; i < P; i++) {
            int64_t q = (int64_t)(rng() % ((uint64_t)1 << 48)) - ((int64_t)1 << 47);
            x[k][i] = (float)ldexp((double)((q >> 24) * (1 << 24)), -40); /* 24 significant bits at most */
        }
        acc_add(&a, x[k]);
    }
    acc_words(&a);
    float sum[P], mean[P];
    hcrt__exact_to_f32(sum, a.words, P, P, &a.w, 1);
    hcrt__exact_to_f32(mean, a.words, P, P, &a.w, 7);
    for (int i = 0; i < P; i++) {
        double d = 0;
        for (int k = 0; k < N; k++)
            d += x[k][i];
        CHECK_MSG(fbits(sum[i]) == fbits((float)d), "element %d: %a, float64 sum rounded once %a", i, sum[i], (float)d);
        CHECK_MSG(fbits(mean[i]) == fbits((float)(d / 7)), "element %d: mean %a, want %a", i, mean[i], (float)(d / 7));
    }
    acc_free(&a);
}

/* Ties and sticky bits: 1 + 2^-24 is halfway between two floats (to even: 1), anything below 2^-24 that
 * is not zero tips it over (1 + 2^-23), including a bit in the lowest digit. */
static void test_rounding_cases(void)
{
    struct {
        float v[4];
        float want;
    } cases[] = {
        {{1.0f, 0x1p-24f, 0, 0}, 1.0f},
        {{1.0f, 0x1p-24f, 0x1p-60f, 0}, 1.0f + 0x1p-23f},
        {{1.0f, 0x1p-24f, -0x1p-60f, 0}, 1.0f},
        {{1.0f + 0x1p-23f, 0x1p-24f, 0, 0}, 1.0f + 0x1p-22f},
        {{-1.0f, -0x1p-24f, -0x1p-63f, 0}, -1.0f - 0x1p-23f},
        {{0x1p31f, -0x1p31f, 0x1p-64f, 0}, 0x1p-64f},
        {{0x1p-65f, 0, 0, 0}, 0.0f},               /* half an lsb: ties to even (0) */
        {{0x1.8p-65f, 0, 0, 0}, 0x1p-64f},         /* three quarters: up */
        {{0x1p-66f, 0x1p-66f, 0x1p-66f, 0}, 0.0f}, /* each rounds to 0 on its own */
        {{0x1.fffffep31f, 0x1.fffffep31f, 0, 0}, 0x1.fffffep32f},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        acc_t a;
        acc_init(&a, -64, 32, 1);
        for (int k = 0; k < 4; k++)
            acc_add(&a, &cases[c].v[k]);
        acc_words(&a);
        float out;
        hcrt__exact_to_f32(&out, a.words, 1, 1, &a.w, 1);
        float generic = hcrt__exact_value_f32(a.words, &a.w, 1);
        CHECK_MSG(fbits(out) == fbits(cases[c].want) && fbits(generic) == fbits(cases[c].want),
                  "case %zu: %a (generic %a), want %a", c, out, generic, cases[c].want);
        acc_free(&a);
    }
}

/* The vectorised two-word conversion against the generic path, on words as an allreduce leaves them. */
static void test_paths_agree(void)
{
    enum { P = 4096 };
    hcrt__exact_window_t w;
    hcrt__exact_window_init(&w, -64, 32);
    static int64_t words[2 * P];
    for (int far = 0; far < 2; far++) {
        for (int i = 0; i < P; i++) {
            /* Lower words up to 2^15 normalised digits summed; top words within 2^53 (the vectorised
             * path), or, in the second round, some far beyond (the generic path for the whole call). */
            words[i] = ((int64_t)(rng() >> 2) >> (int)(rng() % 62)) * (rng() & 1 ? -1 : 1);
            words[P + i] =
                ((int64_t)(rng() >> (far && i % 100 == 0 ? 2 : 11)) >> (int)(rng() % 50)) * (rng() & 1 ? -1 : 1);
        }
        for (int64_t div = 1; div <= 1000; div *= 10) {
            float out[P];
            hcrt__exact_to_f32(out, words, P, P, &w, div);
            int bad = 0;
            for (int i = 0; i < P; i++) {
                int64_t d[2] = {words[i], words[P + i]};
                float g = hcrt__exact_value_f32(d, &w, div);
                if (fbits(g) != fbits(out[i]) && bad++ < 5)
                    fprintf(stderr, "FAIL divisor %lld element %d: vector %a, generic %a\n", (long long)div, i, out[i],
                            g);
            }
            CHECK_MSG(bad == 0, "%d elements differ between the two paths (divisor %lld)", bad, (long long)div);
        }
    }
}

static void test_range(void)
{
    acc_t a;
    acc_init(&a, -64, 32, 8);
    float ok[8] = {0x1.fffffep31f, -0x1.fffffep31f, 1, 0, -0.0f, 0x1p-149f, 3, 4};
    CHECK(acc_fold(&a, ok) == 8);
    float big[8] = {1, 2, 0x1p32f, 4, 5, 6, 7, 8};
    CHECK(acc_fold(&a, big) == 2);
    float neg[8] = {1, 2, 3, 4, 5, -0x1p32f, 7, 8};
    CHECK(acc_fold(&a, neg) == 5);
    float inf[8] = {1, INFINITY, 3, 4, 5, 6, 7, 8};
    CHECK(acc_fold(&a, inf) == 1);
    float nan[8] = {1, 2, 3, 4, 5, 6, 7, NAN};
    CHECK(acc_fold(&a, nan) == 7);
    /* Non-finite sums flush as zeros (the reduction fails anyway), without undefined behaviour. */
    acc_words(&a);
    acc_free(&a);

    /* The window's capacity: max_adds values just below 2^32 sum exactly (their double sum, 2^47, is
     * beyond the vector flush's range and takes the generic split); negative ones too. */
    acc_init(&a, -64, 32, 2);
    uint64_t max = hcrt__exact_max_adds(&a.w);
    float v[2] = {0x1.fffffep31f, -0x1.fffffep31f};
    for (uint64_t k = 0; k < max; k++)
        acc_add(&a, v);
    acc_words(&a);
    float out[2];
    hcrt__exact_to_f32(out, a.words, 2, 2, &a.w, 1);
    float want = (float)((double)max * (double)0x1.fffffep31f);
    CHECK_MSG(out[0] == want && out[1] == -want, "capacity: %a %a, want +-%a", out[0], out[1], want);
    acc_free(&a);

    /* Spills: 1 + 2^-60 does not fit a double; the exact sum keeps every 2^-60. */
    acc_init(&a, -64, 32, 1);
    float one = 1.0f, tiny = 0x1p-60f;
    acc_add(&a, &one);
    for (int k = 0; k < 1 << 20; k++)
        acc_add(&a, &tiny);
    acc_words(&a);
    hcrt__exact_to_f32(out, a.words, 1, 1, &a.w, 1);
    CHECK_MSG(out[0] == 1.0f + 0x1p-40f && a.spills == 1 << 20, "1 + 2^20 * 2^-60 gave %a with %ld spills", out[0],
              a.spills);
    acc_free(&a);
}

int main(void)
{
    test_window();
    /* The default window with values over most of it, a narrow one-word window, and wide ones. */
    test_order_independence(-64, 32, -70, 31);
    test_order_independence(-64, 32, -20, 8);
    test_order_independence(-16, 32, -10, 30);
    test_order_independence(-100, 40, -105, 19);
    test_order_independence(-126, 100, -126, -6); /* the oracle's 128 bits hold sums below 2^1 here */
    test_float64_reference();
    test_rounding_cases();
    test_paths_agree();
    test_range();
    TEST_DONE();
}
