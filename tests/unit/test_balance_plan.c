/*
 * tests/unit/test_balance_plan.c - the balancer's arithmetic (runtime/balance/plan.c) without MPI.
 *
 * Properties of the split, over thousands of random cases: the shares sum to the global batch, every
 * share is a whole number of micro-batches, at least 1 and within its cap, and within one micro-batch
 * of the proportional value (after pinning, computed here independently in double); equal weights
 * break ties towards the lower ranks; scaling every weight changes nothing. Then the online decision,
 * simulated step by step exactly as balancer.c drives it (moving average, a re-plan every K steps after
 * the warm-up, hysteresis): measurements with +-10% uniform jitter never move the plan once it is
 * proportional, and a rank that becomes 2x slower loses share within 10 steps.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "runtime/balance/plan.h"
#include "test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)
{
    return test_rng_next(&rng_state);
}
static double uniform(void)
{
    return (double)(rng() >> 11) * 0x1p-53;
}

/* The proportional shares within the bounds, in double (the reference the integer code must match
 * within one micro-batch): q_r = clamp(lambda * w_r, 1, cap_r) with lambda found by bisection so that
 * they sum to total (the sum grows with lambda). */
static void reference(int n, int64_t total, const double *w, const int64_t *cap, double *q)
{
    double lo = 0, hi = 1;
    for (;;) {
        double sum = 0;
        for (int r = 0; r < n; r++) {
            double c = cap && cap[r] > 0 ? (double)cap[r] : (double)total;
            sum += fmin(fmax(hi * w[r], 1), c);
        }
        if (sum >= (double)total)
            break;
        hi *= 2;
    }
    for (int it = 0; it < 200; it++) {
        double mid = (lo + hi) / 2, sum = 0;
        for (int r = 0; r < n; r++) {
            double c = cap && cap[r] > 0 ? (double)cap[r] : (double)total;
            sum += fmin(fmax(mid * w[r], 1), c);
        }
        if (sum < (double)total)
            lo = mid;
        else
            hi = mid;
    }
    for (int r = 0; r < n; r++) {
        double c = cap && cap[r] > 0 ? (double)cap[r] : (double)total;
        q[r] = fmin(fmax(hi * w[r], 1), c);
    }
}

static void check_split(int n, int64_t total, const double *w, const int64_t *cap, const char *what)
{
    int64_t s[64];
    double q[64];
    CHECK_MSG(hcrt__apportion(n, total, w, cap, s), "%s: no split for n=%d total=%lld", what, n, (long long)total);
    reference(n, total, w, cap, q);
    int64_t sum = 0;
    for (int r = 0; r < n; r++) {
        int64_t c = cap && cap[r] > 0 ? cap[r] : total;
        sum += s[r];
        CHECK_MSG(s[r] >= 1 && s[r] <= c, "%s: rank %d has %lld micro-batches (cap %lld)", what, r, (long long)s[r],
                  (long long)c);
        /* Within one micro-batch of proportional (1e-9 slack for the reference's own rounding). */
        CHECK_MSG(fabs((double)s[r] - q[r]) < 1 + 1e-9, "%s: rank %d has %lld, proportional %.6f", what, r,
                  (long long)s[r], q[r]);
    }
    CHECK_MSG(sum == total, "%s: shares sum to %lld, not %lld", what, (long long)sum, (long long)total);
}

static void test_random_splits(void)
{
    for (int iter = 0; iter < 20000; iter++) {
        int n = 1 + (int)(rng() % 16);
        int64_t total = n + (int64_t)(rng() % 300);
        double w[64];
        int64_t cap[64];
        bool capped = rng() % 3 == 0;
        int64_t capsum = 0;
        for (int r = 0; r < n; r++) {
            /* Weights over five decades, some equal (ties). */
            w[r] = rng() % 4 == 0 ? 1.0 : pow(10.0, 4 * uniform() - 2);
            cap[r] = capped && rng() % 2 ? 1 + (int64_t)(rng() % (uint64_t)(2 * total / n + 1)) : 0;
            capsum += cap[r] ? cap[r] : total;
        }
        if (capsum < total) {
            int64_t s[64];
            CHECK(!hcrt__apportion(n, total, w, cap, s));
            continue;
        }
        check_split(n, total, w, capped ? cap : NULL, "random");
        /* Scaling every weight by one factor gives the same split. */
        int64_t s1[64], s2[64];
        double w2[64];
        for (int r = 0; r < n; r++)
            w2[r] = w[r] * 1024.0;
        CHECK(hcrt__apportion(n, total, w, capped ? cap : NULL, s1));
        CHECK(hcrt__apportion(n, total, w2, capped ? cap : NULL, s2));
        CHECK(memcmp(s1, s2, (size_t)n * sizeof(*s1)) == 0);
    }
}

static void expect(int n, int64_t total, const double *w, const int64_t *cap, const int64_t *want, const char *what)
{
    int64_t s[64];
    CHECK_MSG(hcrt__apportion(n, total, w, cap, s), "%s: no split", what);
    for (int r = 0; r < n; r++)
        CHECK_MSG(s[r] == want[r], "%s: rank %d has %lld, want %lld", what, r, (long long)s[r], (long long)want[r]);
}

static void test_known_splits(void)
{
    const double speeds[] = {1.0, 0.5, 0.25}, equal[] = {1, 1, 1, 1};
    expect(3, 28, speeds, NULL, (int64_t[]){16, 8, 4}, "1:0.5:0.25 of 28");
    /* 17.14, 8.57, 4.29: the one left over goes to the largest remainder, rank 1. */
    expect(3, 30, speeds, NULL, (int64_t[]){17, 9, 4}, "1:0.5:0.25 of 30");
    /* Ties go to the lower ranks. */
    expect(3, 10, equal, NULL, (int64_t[]){4, 3, 3}, "equal of 10");
    expect(4, 6, equal, NULL, (int64_t[]){2, 2, 1, 1}, "equal of 6");
    /* At least one each, however slow. */
    const double slow[] = {1.0, 1e-6, 1e-6};
    expect(3, 10, slow, NULL, (int64_t[]){8, 1, 1}, "very slow ranks keep one");
    /* A cap pins a rank; the rest is shared by the others' speeds. */
    expect(3, 28, speeds, (int64_t[]){10, 0, 0}, (int64_t[]){10, 12, 6}, "rank 0 capped at 10");
    /* Infeasible or invalid input touches nothing and says so. */
    int64_t s[3] = {-7, -7, -7};
    CHECK(!hcrt__apportion(3, 2, speeds, NULL, s));
    CHECK(!hcrt__apportion(3, 28, speeds, (int64_t[]){5, 5, 5}, s));
    CHECK(!hcrt__apportion(3, 28, (double[]){1, 0, 1}, NULL, s));
    CHECK(!hcrt__apportion(3, 28, (double[]){1, NAN, 1}, NULL, s));
    CHECK(!hcrt__apportion(3, 28, (double[]){1, INFINITY, 1}, NULL, s));
    CHECK(!hcrt__apportion(0, 28, speeds, NULL, s));
    CHECK(s[0] == -7 && s[1] == -7 && s[2] == -7);
}

/* One simulated online run, as balancer.c drives plan.c. speed(step, rank) gives the true rates; each
 * measurement is jittered by +-jitter (uniform). Returns the number of plan changes from step `from`
 * on, and writes the step of the first change at or after `from` (or -1). */
typedef double (*speed_fn)(int step, int rank);
static int simulate(int n, int64_t total, int64_t m, speed_fn speed, int steps, double jitter, int from, int *first,
                    int64_t *final_shares, const int64_t *initial)
{
    const int interval = 4, warmup = 1;
    const double alpha = 0.3, hysteresis = 0.1;
    double avg[64] = {0}, gathered[64];
    int64_t cur[64], prop[64];
    memcpy(cur, initial, (size_t)n * sizeof(*cur));
    int changes = 0;
    *first = -1;
    for (int step = 1; step <= steps; step++) {
        for (int r = 0; r < n; r++) {
            double rate = speed(step, r) * (1 + jitter * (2 * uniform() - 1));
            if (step > warmup)
                avg[r] = hcrt__rate_average(avg[r], rate, alpha);
        }
        int64_t measured = step - warmup;
        if (measured <= 0 || measured % interval != 0)
            continue;
        memcpy(gathered, avg, sizeof(gathered));
        double tc, tn;
        hcrt__plan_decide(n, total, m, gathered, NULL, cur, hysteresis, prop, &tc, &tn);
        if (memcmp(prop, cur, (size_t)n * sizeof(*cur)) != 0) {
            if (step >= from) {
                changes++;
                if (*first < 0)
                    *first = step;
            }
            memcpy(cur, prop, (size_t)n * sizeof(*cur));
        }
    }
    memcpy(final_shares, cur, (size_t)n * sizeof(*cur));
    return changes;
}

static double speeds_3(int step, int rank)
{
    (void)step;
    return (rank == 0 ? 1.0 : rank == 1 ? 0.5 : 0.25) * 1000;
}
static double speeds_4(int step, int rank)
{
    (void)step;
    static const double s[] = {1.0, 1.0, 0.7, 0.3};
    return s[rank] * 3000;
}
/* Rank 0 (the fastest) becomes 2x slower at step 101. */
static double slowdown_3(int step, int rank)
{
    return speeds_3(step, rank) * (rank == 0 && step > 100 ? 0.5 : 1);
}
/* Rank 2 of 4 becomes 2x slower at step 83 (between two re-plans). */
static double slowdown_4(int step, int rank)
{
    return speeds_4(step, rank) * (rank == 2 && step > 82 ? 0.5 : 1);
}

static void test_hysteresis_under_noise(void)
{
    int first;
    int64_t fin[64];
    for (int seed = 1; seed <= 50; seed++) {
        rng_state = 0x9E3779B97F4A7C15ull * (uint64_t)seed;
        /* Started from the proportional plan: +-10% jitter for 400 steps changes nothing. */
        int c = simulate(3, 28, 32, speeds_3, 400, 0.10, 0, &first, fin, (int64_t[]){16, 8, 4});
        CHECK_MSG(c == 0, "seed %d: 3 ranks with 10%% jitter changed the plan %d times (first at step %d)", seed, c,
                  first);
        double w4[4] = {1.0, 1.0, 0.7, 0.3};
        int64_t start4[4];
        CHECK(hcrt__apportion(4, 64, w4, NULL, start4));
        c = simulate(4, 64, 16, speeds_4, 400, 0.10, 0, &first, fin, start4);
        CHECK_MSG(c == 0, "seed %d: 4 ranks with 10%% jitter changed the plan %d times (first at step %d)", seed, c,
                  first);
        /* Started from an even split, the plan converges and then stays: changes only early. */
        c = simulate(3, 28, 32, speeds_3, 400, 0.10, 40, &first, fin, (int64_t[]){10, 9, 9});
        CHECK_MSG(c == 0, "seed %d: from an even split the plan still changed %d times after step 40", seed, c);
        CHECK_MSG(fin[0] >= 15 && fin[0] <= 17 && fin[2] >= 3 && fin[2] <= 5,
                  "seed %d: converged to %lld,%lld,%lld instead of about 16,8,4", seed, (long long)fin[0],
                  (long long)fin[1], (long long)fin[2]);
    }
}

static void test_slowdown_reacts(void)
{
    int first;
    int64_t fin[64];
    for (int seed = 1; seed <= 50; seed++) {
        rng_state = 0x2545F4914F6CDD1Dull * (uint64_t)seed;
        int c = simulate(3, 28, 32, slowdown_3, 200, 0.10, 101, &first, fin, (int64_t[]){16, 8, 4});
        CHECK_MSG(c >= 1 && first >= 101 && first <= 110,
                  "seed %d: rank 0 slowed down at step 101; first change "
                  "at step %d (must be within 10 steps)",
                  seed, first);
        /* Proportional to 0.5 : 0.5 : 0.25 is 11.2, 11.2, 5.6. */
        CHECK_MSG(fin[0] <= 12 && fin[1] >= 10 && fin[2] >= 5,
                  "seed %d: after the slowdown the plan is "
                  "%lld,%lld,%lld",
                  seed, (long long)fin[0], (long long)fin[1], (long long)fin[2]);
        double w4[4] = {1.0, 1.0, 0.7, 0.3};
        int64_t start4[4];
        CHECK(hcrt__apportion(4, 64, w4, NULL, start4));
        c = simulate(4, 64, 16, slowdown_4, 200, 0.10, 83, &first, fin, start4);
        CHECK_MSG(c >= 1 && first >= 83 && first <= 92 && fin[2] < start4[2],
                  "seed %d: rank 2 slowed down at step 83; first change at step %d, its share %lld (was %lld)", seed,
                  first, (long long)fin[2], (long long)start4[2]);
    }
}

static void test_decide_reasons(void)
{
    int64_t cur[3] = {16, 8, 4}, prop[3];
    double tc, tn;
    double none[3] = {0, 0, 0};
    CHECK(hcrt__plan_decide(3, 28, 32, none, NULL, cur, 0.05, prop, &tc, &tn) == HCRT__PLAN_UNKNOWN);
    CHECK(memcmp(prop, cur, sizeof(cur)) == 0 && tc == 0 && tn == 0);
    double exact[3] = {1000, 500, 250};
    CHECK(hcrt__plan_decide(3, 28, 32, exact, NULL, cur, 0.05, prop, &tc, &tn) == HCRT__PLAN_SAME);
    /* Even to proportional: 16,8,4 halves the predicted time. */
    int64_t even[3] = {10, 9, 9};
    CHECK(hcrt__plan_decide(3, 28, 32, exact, NULL, even, 0.05, prop, &tc, &tn) == HCRT__PLAN_IMPROVE);
    CHECK(prop[0] == 16 && prop[1] == 8 && prop[2] == 4 && tn < tc);
    /* A small gain is held. */
    int64_t near[3] = {17, 7, 4};
    CHECK(hcrt__plan_decide(3, 28, 32, exact, NULL, near, 0.2, prop, &tc, &tn) == HCRT__PLAN_HOLD);
    CHECK(memcmp(prop, near, sizeof(near)) == 0);
    /* A plan over a cap is replaced whatever the gain. */
    CHECK(hcrt__plan_decide(3, 28, 32, exact, (int64_t[]){12, 0, 0}, cur, 0.99, prop, &tc, &tn) == HCRT__PLAN_CAP);
    CHECK(prop[0] == 12);
    /* A rank without a measurement is taken as average. */
    double partial[3] = {1000, 0, 1000};
    int64_t thirds[3] = {10, 10, 10};
    CHECK(hcrt__plan_decide(3, 30, 32, partial, NULL, thirds, 0, prop, &tc, &tn) == HCRT__PLAN_SAME);
    CHECK(hcrt__rate_average(0, 100, 0.3) == 100);
    CHECK(fabs(hcrt__rate_average(100, 200, 0.3) - 130) < 1e-12);
    CHECK(hcrt__rate_average(100, 0, 0.3) == 100);
}

int main(void)
{
    test_known_splits();
    test_random_splits();
    test_decide_reasons();
    test_hysteresis_under_noise();
    test_slowdown_reacts();
    TEST_DONE();
}
