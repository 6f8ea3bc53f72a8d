/*
 * test_goodput - hcrt-run's goodput model (tools/hcrt-run/goodput.h): closed-form values, Young's and
 * Daly's intervals, the numerical optimum, and agreement of the closed form with a simulation of the
 * process it models (an independent implementation: failures drawn one by one, checkpoints committed
 * or lost, restarts failing too).
 */
#include <math.h>
#include <stdio.h>

#include "test.h"
#include "tools/hcrt-run/goodput.h"

static bool near(double a, double b, double tol)
{
    return fabs(a - b) <= tol;
}

/* The mean of `runs` simulations of `wall` seconds each, at `every` steps, and its standard error. */
static double simulated(const hr_goodput_params_t *p, int64_t every, double wall, int runs, double *stderr_mean)
{
    double sum = 0, sum2 = 0;
    for (int i = 0; i < runs; i++) {
        double g = hr_goodput_simulate(p, every, wall, 1000 + (uint64_t)i);
        sum += g;
        sum2 += g * g;
    }
    double mean = sum / runs;
    *stderr_mean = sqrt(fmax(0.0, (sum2 / runs - mean * mean) / (runs - 1)));
    return mean;
}

int main(void)
{
    /* 1000 chips at 10% a year: one interruption every 365.25 days / 100. */
    CHECK(near(hr_goodput_mtbf(1000, 0.1), 365.25 * 86400 / 100, 1e-6));
    CHECK(isinf(hr_goodput_mtbf(0, 0.1)) && isinf(hr_goodput_mtbf(10, 0)));

    hr_goodput_params_t p = {.mtbf_s = 20, .stall_s = 0.05, .restart_s = 1.5, .step_s = 0.1, .commit_s = 0};
    CHECK(near(hr_goodput_young(&p), sqrt(2 * 0.05 * 20), 1e-12));
    /* Daly's correction is small when the stall is small against the MTBF, and M beyond 2M. */
    CHECK(hr_goodput_daly(&p) < hr_goodput_young(&p) && hr_goodput_daly(&p) > 0.95 * hr_goodput_young(&p));
    hr_goodput_params_t big = p;
    big.stall_s = 50;
    CHECK(near(hr_goodput_daly(&big), 20, 1e-12));

    /* Without failures only the stall costs. */
    hr_goodput_params_t nofail = p;
    nofail.mtbf_s = INFINITY;
    CHECK(near(hr_goodput_expected(&nofail, 2.0), 2.0 / 2.05, 1e-12));
    CHECK(hr_goodput_expected(&p, 0) == 0);

    /* A hand-computed value: tau 1.4, M 20, delta 0.05, R 1.5: 1.4 / (20 e^0.075 (e^0.0725 - 1)). */
    CHECK_MSG(near(hr_goodput_expected(&p, 1.4), 1.4 / (20 * exp(0.075) * expm1(0.0725)), 1e-12), "%.6f",
              hr_goodput_expected(&p, 1.4));

    /* The numerical optimum beats its neighbours and lies near Daly's interval (the model is Daly's when
     * commits are immediate). */
    const hr_goodput_params_t sets[] = {
        {20, 0.05, 1.5, 0.1, 0},         /* this machine, a kill every 20 s */
        {20, 0.05, 1.5, 0.1, 0.08},      /* ... with a background commit of 80 ms */
        {300, 2, 10, 0.5, 0},            /* slower checkpoints, rarer failures */
        {3 * 3600.0, 0.05, 1.5, 0.1, 0}, /* one interruption per 3 h */
        {1800, 30, 120, 1, 5},           /* a big model: 30 s stall, 2 min restart */
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        const hr_goodput_params_t *s = &sets[i];
        double g;
        int64_t k = hr_goodput_best_every(s, &g);
        CHECK_MSG(k >= 1 && g > 0 && g < 1, "set %zu: best %lld, goodput %f", i, (long long)k, g);
        CHECK(near(g, hr_goodput_expected(s, (double)k * s->step_s), 1e-12));
        const double others[] = {(double)k - 1, (double)k + 1, 0.5 * (double)k, 2.0 * (double)k};
        for (int j = 0; j < 4; j++)
            if (others[j] >= 1)
                CHECK_MSG(hr_goodput_expected(s, others[j] * s->step_s) <= g + 1e-12,
                          "set %zu: %g steps beat the optimum %lld", i, others[j], (long long)k);
        if (s->commit_s == 0)
            CHECK_MSG(fabs((double)k * s->step_s - hr_goodput_daly(s)) <= fmax(s->step_s, 0.03 * hr_goodput_daly(s)),
                      "set %zu: optimum %.3f s, Daly %.3f s", i, (double)k * s->step_s, hr_goodput_daly(s));

        /* The closed form against the simulated process, at the optimum and at 4x it: within four
         * standard errors of the simulation's mean (and at most 0.005 off). */
        const int64_t intervals[] = {k, 4 * k};
        for (int j = 0; j < 2; j++) {
            double wall = 5000 * s->mtbf_s, want = hr_goodput_expected(s, (double)intervals[j] * s->step_s), se;
            double got = simulated(s, intervals[j], wall, 16, &se);
            CHECK_MSG(near(got, want, fmax(4 * se, 0.0005)) && se < 0.002,
                      "set %zu, every %lld: simulated %.4f (standard error %.4f), closed form %.4f", i,
                      (long long)intervals[j], got, se, want);
        }
    }

    /* At one interruption per 3 h with this machine's figures the model predicts at least 0.99. */
    double g3h;
    hr_goodput_best_every(&sets[3], &g3h);
    CHECK_MSG(g3h >= 0.99, "%.4f", g3h);
    /* A reproducible simulation: the same seed, the same answer. */
    CHECK(hr_goodput_simulate(&p, 14, 5000, 42) == hr_goodput_simulate(&p, 14, 5000, 42));
    TEST_DONE();
}
