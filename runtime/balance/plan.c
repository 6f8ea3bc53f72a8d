/*
 * runtime/balance/plan.c - proportional shares in whole micro-batches, and the re-plan decision.
 *
 * The split itself is done in integers: the weights (rates) are first scaled to integers of 30 bits
 * relative to the largest, then every comparison of proportional shares is an exact comparison of
 * 128-bit products (caps up to 2^40 micro-batches, ranks up to 2^16 keep every product in range). Floating-point
 * rounding can therefore never make two ranks, or two machines, disagree on a floor or on which remainder is larger;
 * the only floating-point steps are the scaling (one IEEE division and multiplication per rank, the same everywhere)
 * and the step-time predictions.
 */
#include "runtime/balance/plan.h"

#include <stdlib.h>
#include <string.h>

#define WEIGHT_BITS 30

/* A free rank competing for one of the micro-batches left over after the floors. */
typedef struct rem_entry {
    __int128 rem; /* remainder of its proportional share, in units of 1 / wsum */
    int64_t next; /* its share with one more micro-batch */
    int64_t w;    /* its integer weight */
    int rank;
} rem_entry_t;

/* Who finishes one more micro-batch soonest ((floor + 1) / w, compared exactly), then the larger
 * remainder, then the lower rank: a total order, so qsort's result is unique. */
static int rem_cmp(const void *pa, const void *pb)
{
    const rem_entry_t *a = pa, *b = pb;
    __int128 ta = (__int128)a->next * b->w, tb = (__int128)b->next * a->w;
    if (ta != tb)
        return ta < tb ? -1 : 1;
    if (a->rem != b->rem)
        return a->rem > b->rem ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

static int64_t cap_of(const int64_t *cap, int r, int64_t total)
{
    return cap == NULL || cap[r] <= 0 || cap[r] > total ? total : cap[r];
}

/* A breakpoint lambda = num / den of the clamped proportional share: 1 / w (where a rank leaves its
 * floor of 1) or cap / w (where it reaches its cap). */
typedef struct breakpoint {
    int64_t num, den;
} breakpoint_t;

static int bp_cmp(const void *pa, const void *pb)
{
    const breakpoint_t *a = pa, *b = pb;
    __int128 l = (__int128)a->num * b->den, r = (__int128)b->num * a->den;
    return (l > r) - (l < r);
}

/* Whether sum_r clamp(lambda * w_r, 1, cap_r) <= total at lambda = bp, in exact integers. */
static bool fits(const breakpoint_t *bp, int n, const int64_t *w, const int64_t *c, int64_t total)
{
    __int128 sum = 0, lim = (__int128)total * bp->den;
    for (int r = 0; r < n; r++) {
        __int128 v = (__int128)bp->num * w[r], lo = bp->den, hi = (__int128)c[r] * bp->den;
        sum += v < lo ? lo : v > hi ? hi : v;
        if (sum > lim)
            return false;
    }
    return true;
}

bool hcrt__apportion(int n, int64_t total, const double *weight, const int64_t *cap, int64_t *shares)
{
    if (n <= 0 || total < n || weight == NULL || shares == NULL)
        return false;
    double wmax = 0;
    __int128 capsum = 0;
    for (int r = 0; r < n; r++) {
        /* Rejects NaN, zero, negatives and infinity with comparisons alone (no libm). */
        if (!(weight[r] > 0) || weight[r] > 1.0e300)
            return false;
        if (weight[r] > wmax)
            wmax = weight[r];
        capsum += cap_of(cap, r, total);
    }
    if (capsum < total)
        return false;
    int64_t *w = malloc((size_t)n * sizeof(*w)), *c = malloc((size_t)n * sizeof(*c));
    int64_t *out = malloc((size_t)n * sizeof(*out));
    breakpoint_t *bps = malloc(2 * (size_t)n * sizeof(*bps));
    rem_entry_t *rems = malloc((size_t)n * sizeof(*rems));
    bool ok = w != NULL && c != NULL && out != NULL && bps != NULL && rems != NULL;
    if (!ok)
        goto out;
    for (int r = 0; r < n; r++) {
        int64_t q = (int64_t)(weight[r] / wmax * (double)(1 << WEIGHT_BITS));
        w[r] = q < 1 ? 1 : q;
        c[r] = cap_of(cap, r, total);
        bps[2 * r] = (breakpoint_t){1, w[r]};
        bps[2 * r + 1] = (breakpoint_t){c[r], w[r]};
    }
    /* The shares are clamp(lambda * w_r, 1, cap_r) for the lambda at which they sum to total; that sum
     * grows with lambda and is linear between breakpoints. The largest breakpoint where it does not
     * exceed total (or lambda = 0) fixes which ranks sit at 1, which at their cap, and which are free. */
    qsort(bps, 2 * (size_t)n, sizeof(*bps), bp_cmp);
    breakpoint_t at = {0, 1};
    size_t lo = 0, hi = 2 * (size_t)n;
    while (lo < hi) { /* the first breakpoint that does not fit */
        size_t mid = lo + (hi - lo) / 2;
        if (fits(&bps[mid], n, w, c, total))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0)
        at = bps[lo - 1];
    __int128 budget = total, wsum = 0;
    int nfree = 0;
    for (int r = 0; r < n; r++) {
        __int128 v = (__int128)at.num * w[r];
        if (v < at.den) {
            out[r] = 1; /* below 1 just above `at` */
        } else if (v >= (__int128)c[r] * at.den) {
            out[r] = c[r]; /* at its cap from `at` on */
        } else {
            out[r] = -1; /* free */
            wsum += w[r];
            continue;
        }
        budget -= out[r];
    }
    /* Free ranks share the rest in proportion: floors first. Fewer micro-batches than free ranks are
     * left (the remainders sum to left * wsum, each below wsum), and at least `left` ranks have a
     * remainder: each of those may take one more and stay within one micro-batch of its share. They go
     * to the ranks that would finish them soonest, which minimises the predicted step time among those
     * roundings; largest remainders (the textbook rule) would ignore speed there, and under measurement
     * noise flip between roundings that differ by a rank's whole micro-batch. */
    __int128 left = budget;
    for (int r = 0; r < n && wsum > 0; r++) {
        if (out[r] != -1)
            continue;
        __int128 num = budget * w[r];
        out[r] = (int64_t)(num / wsum);
        left -= out[r];
        rems[nfree].rem = num % wsum;
        rems[nfree].next = out[r] + 1;
        rems[nfree].w = w[r];
        rems[nfree].rank = r;
        if (rems[nfree].rem > 0) /* an exact share gets nothing more */
            nfree++;
    }
    qsort(rems, (size_t)nfree, sizeof(*rems), rem_cmp);
    for (int i = 0; i < nfree && left > 0; i++, left--)
        out[rems[i].rank]++;
    ok = left == 0;
    for (int r = 0; r < n && ok; r++)
        ok = out[r] >= 1 && out[r] <= c[r];
    if (ok)
        memcpy(shares, out, (size_t)n * sizeof(*out));
out:
    free(w);
    free(c);
    free(out);
    free(bps);
    free(rems);
    return ok;
}

double hcrt__plan_time(int n, const int64_t *shares, int64_t samples_per_micro_batch, const double *rate)
{
    double worst = 0;
    for (int r = 0; r < n; r++) {
        double t = (double)shares[r] * (double)samples_per_micro_batch / rate[r];
        if (t > worst)
            worst = t;
    }
    return worst;
}

double hcrt__rate_average(double avg, double measured, double alpha)
{
    if (!(measured > 0))
        return avg;
    if (!(avg > 0))
        return measured;
    return avg + alpha * (measured - avg);
}

hcrt__plan_reason_t hcrt__plan_decide(int n, int64_t total, int64_t samples_per_micro_batch, const double *rate,
                                      const int64_t *cap, const int64_t *cur, double hysteresis, int64_t *proposal,
                                      double *t_cur, double *t_new)
{
    double known = 0;
    int nknown = 0;
    *t_cur = *t_new = 0;
    memcpy(proposal, cur, (size_t)n * sizeof(*cur));
    for (int r = 0; r < n; r++) {
        if (rate[r] > 0) {
            known += rate[r];
            nknown++;
        }
    }
    bool over_cap = false;
    for (int r = 0; r < n; r++)
        if (cur[r] > cap_of(cap, r, total))
            over_cap = true;
    double *filled = calloc(n > 0 ? (size_t)n : 1, sizeof(*filled));
    if (filled == NULL)
        return HCRT__PLAN_HOLD;
    /* A rank without a measurement is assumed average; with none at all only a cap forces a change,
     * and then the split is even. */
    double mean = nknown ? known / nknown : 1.0;
    for (int r = 0; r < n; r++)
        filled[r] = rate[r] > 0 ? rate[r] : mean;
    hcrt__plan_reason_t reason;
    if (!hcrt__apportion(n, total, filled, cap, proposal)) {
        memcpy(proposal, cur, (size_t)n * sizeof(*cur));
        reason = HCRT__PLAN_HOLD;
        goto out;
    }
    *t_cur = hcrt__plan_time(n, cur, samples_per_micro_batch, filled);
    *t_new = hcrt__plan_time(n, proposal, samples_per_micro_batch, filled);
    if (over_cap) {
        reason = HCRT__PLAN_CAP;
    } else if (nknown == 0) {
        memcpy(proposal, cur, (size_t)n * sizeof(*cur));
        *t_cur = *t_new = 0;
        reason = HCRT__PLAN_UNKNOWN;
    } else if (memcmp(proposal, cur, (size_t)n * sizeof(*cur)) == 0) {
        reason = HCRT__PLAN_SAME;
    } else if (*t_new < *t_cur * (1.0 - hysteresis)) {
        reason = HCRT__PLAN_IMPROVE;
    } else {
        memcpy(proposal, cur, (size_t)n * sizeof(*cur));
        reason = HCRT__PLAN_HOLD;
    }
out:
    free(filled);
    return reason;
}
