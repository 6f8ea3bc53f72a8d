/*
 * runtime/balance/plan.h - the balancer's arithmetic, apart from any communication.
 *
 * Every rank runs these functions on the same gathered numbers and so computes the same plan: they use
 * only IEEE additions, multiplications, divisions and comparisons (no libm, no contraction: plan.c is
 * compiled with -ffp-contract=off), and break every tie by rank order. Unit tests call them directly
 * (tests/unit/test_balance_plan.c); balancer.c adds the allgather around them.
 */
#ifndef HCRT_BALANCE_PLAN_H
#define HCRT_BALANCE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Splits `total` micro-batches over n ranks in proportion to weight[r] (> 0 and finite), each rank at
 * least 1 and at most cap[r] (cap NULL or cap[r] <= 0: no cap). Ranks whose proportional share falls
 * below 1 or above their cap are held there (the shares are clamp(lambda * weight, 1, cap) for the
 * lambda that makes them sum to total); each free rank gets the floor of its share, and the
 * micro-batches left over go, one each, to ranks with a fractional part, those that would finish one
 * more soonest first ((floor + 1) / weight), then the larger fraction, then the lower rank. So every
 * share is within one micro-batch of its proportional value, the shares sum to total, and among such
 * plans this one has the shortest predicted step time. Returns false, touching nothing, when no split
 * exists (total < n, or the caps hold fewer than total) or an argument is invalid.
 */
bool hcrt__apportion(int n, int64_t total, const double *weight, const int64_t *cap, int64_t *shares);

/* Predicted seconds of a step under a plan: the slowest rank's shares[r] * samples / rate[r]. rate[r]
 * must be > 0. */
double hcrt__plan_time(int n, const int64_t *shares, int64_t samples_per_micro_batch, const double *rate);

/* Folds one step's measured rate (samples/s) into a moving average: the first measurement is taken as
 * it is, later ones with weight alpha (0 < alpha <= 1). avg <= 0 means "no measurement yet". */
double hcrt__rate_average(double avg, double measured, double alpha);

/* Why a plan was (or was not) changed, as reported in decisions (values of hcrt_balance_reason_t). */
typedef enum hcrt__plan_reason {
    HCRT__PLAN_INITIAL = 0, /* the plan the balancer started with */
    HCRT__PLAN_IMPROVE = 1, /* predicted step time improves by more than the hysteresis threshold */
    HCRT__PLAN_HOLD = 2,    /* a better plan exists but its gain is within the threshold: kept */
    HCRT__PLAN_SAME = 3,    /* the proportional plan is the current one */
    HCRT__PLAN_CAP = 4,     /* the current plan exceeds a rank's memory cap: changed regardless */
    HCRT__PLAN_RESTORE = 5, /* set by the application (a plan restored from a checkpoint) */
    HCRT__PLAN_UNKNOWN = 6  /* no rank has measured anything yet: kept */
} hcrt__plan_reason_t;

/*
 * One re-plan. rate[r] are the ranks' averaged rates (<= 0 where a rank has none: it is given the mean
 * of the known ones); cur the plan in force. Computes the proportional plan into proposal and decides:
 * adopt it when the current plan breaks a cap, or when the predicted step time drops by more than the
 * fraction `hysteresis` (0 <= h < 1); otherwise keep the current one. *t_cur and *t_new get the two
 * predictions (0 when no rate is known). Returns the reason; proposal holds the plan to use from now on
 * (equal to cur unless the reason is IMPROVE or CAP). false from hcrt__apportion propagates as
 * HCRT__PLAN_CAP with proposal unchanged from cur only when no split exists, which callers prevent by
 * checking the caps first.
 */
hcrt__plan_reason_t hcrt__plan_decide(int n, int64_t total, int64_t samples_per_micro_batch, const double *rate,
                                      const int64_t *cap, const int64_t *cur, double hysteresis, int64_t *proposal,
                                      double *t_cur, double *t_new);

#endif /* HCRT_BALANCE_PLAN_H */
