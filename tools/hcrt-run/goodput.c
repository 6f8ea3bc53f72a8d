/*
 * tools/hcrt-run/goodput.c - the goodput model of goodput.h: closed form, optimum, and a simulation of
 * the same process to check the closed form against.
 */
#include "tools/hcrt-run/goodput.h"

#include <math.h>

#define YEAR_S (365.25 * 86400.0)

double hr_goodput_mtbf(double chips, double per_chip_year)
{
    if (!(chips > 0) || !(per_chip_year > 0))
        return INFINITY;
    return YEAR_S / (chips * per_chip_year);
}

double hr_goodput_expected(const hr_goodput_params_t *p, double interval_s)
{
    if (!(interval_s > 0))
        return 0;
    if (!isfinite(p->mtbf_s))
        return interval_s / (interval_s + p->stall_s);
    double m = p->mtbf_s, s = interval_s + p->stall_s;
    /* Daly: the expected time to complete one segment, failures and failed restarts included. A completed
     * segment stays only if no failure comes in the min(L, s) seconds before its commit; otherwise it is
     * done again: e^(min(L, s)/M) completions per kept segment. */
    double segment = m * exp(p->restart_s / m) * expm1(s / m);
    return interval_s / (segment * exp(fmin(p->commit_s, s) / m));
}

double hr_goodput_young(const hr_goodput_params_t *p)
{
    return sqrt(2.0 * p->stall_s * p->mtbf_s);
}

double hr_goodput_daly(const hr_goodput_params_t *p)
{
    double d = p->stall_s, m = p->mtbf_s;
    if (d >= 2.0 * m)
        return m;
    double x = d / (2.0 * m);
    return sqrt(2.0 * d * m) * (1.0 + sqrt(x) / 3.0 + x / 9.0) - d;
}

/* Goodput at `every` steps, clamped to one step at least. */
static double at_steps(const hr_goodput_params_t *p, double every)
{
    return hr_goodput_expected(p, (every < 1 ? 1 : every) * p->step_s);
}

int64_t hr_goodput_best_every(const hr_goodput_params_t *p, double *goodput)
{
    /* Golden-section search on log(steps) over [1, a span far past any optimum]: the goodput rises and
     * then falls with the interval (one maximum), so the search converges to it. */
    double hi_s = isfinite(p->mtbf_s) ? 50.0 * p->mtbf_s : 1e12;
    double lo = 0, hi = log(fmax(1.0, hi_s / p->step_s));
    const double g = (sqrt(5.0) - 1.0) / 2.0;
    double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
    double fa = at_steps(p, exp(a)), fb = at_steps(p, exp(b));
    for (int i = 0; i < 200 && hi - lo > 1e-9; i++) {
        if (fa < fb) {
            lo = a;
            a = b;
            fa = fb;
            b = lo + g * (hi - lo);
            fb = at_steps(p, exp(b));
        } else {
            hi = b;
            b = a;
            fb = fa;
            a = hi - g * (hi - lo);
            fa = at_steps(p, exp(a));
        }
    }
    double best = exp(0.5 * (lo + hi));
    int64_t k = (int64_t)floor(best);
    if (k < 1)
        k = 1;
    /* The whole-step neighbours of the continuous optimum. */
    if (at_steps(p, (double)(k + 1)) > at_steps(p, (double)k))
        k++;
    if (goodput != 0)
        *goodput = at_steps(p, (double)k);
    return k;
}

/* xorshift64*: a small, seedable generator, so a simulation is reproducible. */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

static double next_failure(double now, double mtbf, uint64_t *rng)
{
    return isfinite(mtbf) ? now - mtbf * log1p(-uniform(rng)) : INFINITY;
}

double hr_goodput_simulate(const hr_goodput_params_t *p, int64_t every, double wall_s, uint64_t seed)
{
    /* splitmix64 of the seed: xorshift from a small seed starts with a run of small, correlated values. */
    uint64_t rng = seed + 0x9e3779b97f4a7c15ull;
    rng = (rng ^ (rng >> 30)) * 0xbf58476d1ce4e5b9ull;
    rng = (rng ^ (rng >> 27)) * 0x94d049bb133111ebull;
    rng ^= rng >> 31;
    if (rng == 0)
        rng = 1;
    double tau = (double)(every < 1 ? 1 : every) * p->step_s;
    double t = 0, fail = next_failure(0, p->mtbf_s, &rng);
    double committed = 0, done = 0;      /* compute time durable, and computed since the restore */
    double pending = -1, pending_at = 0; /* a checkpoint being committed: its value and when */
    while (t < wall_s) {
        double seg_end = t + tau + p->stall_s;
        if (fail >= seg_end) {
            /* The segment completes; its checkpoint commits commit_s later unless a failure comes first. */
            if (pending >= 0 && pending_at <= seg_end)
                committed = pending;
            done += tau;
            t = seg_end;
            pending = done;
            pending_at = t + p->commit_s;
            continue;
        }
        /* A failure: what was committed by then survives; restart, with failures during it too. */
        if (pending >= 0 && pending_at <= fail)
            committed = pending;
        pending = -1;
        t = fail;
        for (;;) {
            fail = next_failure(t, p->mtbf_s, &rng);
            if (fail >= t + p->restart_s)
                break;
            t = fail;
        }
        t += p->restart_s;
        done = committed;
    }
    if (pending >= 0 && pending_at <= wall_s)
        committed = pending;
    return committed / wall_s;
}
