/*
 * hcrt/balance.h - a speed-proportional split of the global batch, and gradients summed by sample count.
 *
 * Data parallelism across chips of different speeds (docs/balance.md). A step processes a fixed global
 * batch of M micro-batches of m samples. The balancer gives each rank a share of the M micro-batches in
 * proportion to its measured throughput, so that the ranks finish their compute together:
 *
 *     hcrt_balancer_create(comm, &params, &bal);             // M, m, mode, ...
 *     for each step:
 *         hcrt_balancer_assignment(bal, &first, &count);     // global micro-batches [first, first+count)
 *         for each of them: forward/backward, timed with device events;
 *             hcrt_balancer_record(bal, m, seconds);
 *         hcrt_comm_allreduce_grads(comm, grads, n, count * m, &total, 0);  // summed, see below
 *         optimizer update with the gradient sum divided by total
 *         hcrt_balancer_step(bal, &changed);                 // every K steps: re-plan
 *
 * The plan: every rank gets whole micro-batches, at least one, at most what its memory holds
 * (params.max_micro_batches, or its device's free memory over params.bytes_per_sample); within those
 * bounds each share is within one micro-batch of the proportional value (after the floors, the
 * micro-batches left over go to the ranks that would finish one more soonest, then to the larger
 * fractional share, then to the lower rank: the shortest predicted step among such plans). Rank r runs the contiguous
 * range of global micro-batches after those of ranks 0..r-1, so the data a step sees never depends on the split. Every
 * rank computes the plan from the same allgathered figures with integer arithmetic, so all ranks hold the same plan.
 *
 * Online mode re-plans every `interval` steps from a moving average of each rank's throughput, and adopts
 * the new plan only when it predicts a step time shorter by more than `hysteresis` (a fraction), so that
 * measurement noise does not move micro-batches back and forth, while a rank that becomes markedly
 * slower loses share at the next re-plan or the one after.
 *
 * Gradients. With uneven shares each rank must SUM its samples' gradients (not average them); the sums
 * are reduced across ranks together with the sample counts, and the update divides by the global count,
 * which is exactly the one-rank computation over the same global batch. Averaging per rank and then
 * across ranks (HCRT_OP_AVG, or torch DDP's default) weights every rank equally whatever its share: with
 * shares of 1, 2 and 5 micro-batches the first rank's samples would count 5 times as much as the last
 * one's, a different (and split-dependent) gradient. hcrt_comm_allreduce_grads() does the summed
 * reduction; hcrt/exact.h does it bitwise reproducibly.
 *
 * Collective calls (every rank of the communicator, in the same order, with the same params):
 * hcrt_balancer_create, hcrt_balancer_step, hcrt_balancer_set_shares, hcrt_balancer_destroy,
 * hcrt_comm_allreduce_grads. The others are local. A balancer is used from one thread at a time. Its
 * communication runs on the communicator given at creation (interleaved, in call order, with the
 * application's own collectives on it).
 */
#ifndef HCRT_BALANCE_H
#define HCRT_BALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/status.h"
#include "hcrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hcrt_comm;
struct hcrt_device;
struct hcrt_buffer;

typedef struct hcrt_balancer hcrt_balancer_t;

typedef enum hcrt_balance_mode {
    HCRT_BALANCE_OFF = 0,    /* an equal split (within caps), never changed: the baseline */
    HCRT_BALANCE_STATIC = 1, /* one re-plan from the first `interval` measured steps, then fixed */
    HCRT_BALANCE_ONLINE = 2  /* a re-plan every `interval` steps, with hysteresis (default) */
} hcrt_balance_mode_t;

/* Why the plan is what it is (hcrt_balance_decision_t.reason). */
typedef enum hcrt_balance_reason {
    HCRT_BALANCE_INITIAL = 0, /* the starting plan: even (mode off), or by device speed */
    HCRT_BALANCE_IMPROVE = 1, /* re-planned: the predicted step time improves by more than the hysteresis */
    HCRT_BALANCE_HOLD = 2,    /* a different plan would be better, but by no more than the hysteresis */
    HCRT_BALANCE_SAME = 3,    /* the proportional plan is the one in force */
    HCRT_BALANCE_CAP = 4,     /* the plan in force exceeded a rank's memory cap */
    HCRT_BALANCE_RESTORE = 5, /* set by hcrt_balancer_set_shares (e.g. from a checkpoint) */
    HCRT_BALANCE_UNKNOWN = 6  /* no rank has recorded a measurement yet */
} hcrt_balance_reason_t;

typedef struct hcrt_balance_params {
    size_t struct_size;
    /* The global batch, in micro-batches (M >= number of ranks). Required. */
    int64_t micro_batches;
    /* Samples per micro-batch (m >= 1). Required. */
    int64_t micro_batch_size;
    /* HCRT_BALANCE_OFF, _STATIC or _ONLINE (default). */
    hcrt_balance_mode_t mode;
    /* Steps between re-plans (>= 1; default 4). */
    int interval;
    /* Weight of the newest step's throughput in the moving average (0 < alpha <= 1; default 0.3). */
    double smoothing;
    /* A new plan is adopted only when its predicted step time is below the current one's by more than
     * this fraction (0 <= h < 1; default 0.1: with the default smoothing and interval, throughputs that
     * jitter by +-10% from step to step never move the plan, and one that halves moves it within 5
     * steps; tests/unit/test_balance_plan.c). Lower it when measurements are steadier. */
    double hysteresis;
    /* Steps whose measurements are ignored at the start (first-touch, caches; >= 0; default 1). */
    int warmup_steps;
    /* This rank's most micro-batches (0: no limit of its own). */
    int64_t max_micro_batches;
    /* Device memory one sample of a micro-batch needs (activations, ...): the cap becomes the device's
     * free memory at creation / (bytes_per_sample * m). 0: no memory cap. */
    uint64_t bytes_per_sample;
    /* The device whose free memory caps this rank (NULL: the context's device). */
    struct hcrt_device *device;
    /* Start (static and online modes) from shares proportional to the devices' relative speeds as their
     * backends report them (hcrt_comm_rank_info), instead of an even split. Default true. */
    bool use_device_speed;
} hcrt_balance_params_t;

/* Fills params with the defaults above (micro_batches and micro_batch_size 0: they must be set). */
HCRT_EXPORT void hcrt_balance_params_init(hcrt_balance_params_t *params);

/*
 * Creates a balancer over the ranks of comm. Collective: the ranks exchange their caps and device
 * speeds and agree on the initial plan (reason HCRT_BALANCE_INITIAL). Every rank must pass the same
 * micro_batches, micro_batch_size, mode and interval (HCRT_ERR_MISMATCH otherwise, on every rank).
 * Errors: HCRT_ERR_INVALID_ARG naming the argument (NULL comm or bal, a params field out of range,
 * fewer micro-batches than ranks), HCRT_ERR_NO_MEMORY, HCRT_ERR_DEVICE_OOM when the ranks' caps together
 * hold fewer than micro_batches (the message gives each rank's cap), HCRT_ERR_MISMATCH. *bal is set only
 * on success.
 */
HCRT_EXPORT hcrt_status_t hcrt_balancer_create(struct hcrt_comm *comm, const hcrt_balance_params_t *params,
                                               hcrt_balancer_t **bal);

/* Frees a balancer (local: no communication). NULL is a no-op. */
HCRT_EXPORT hcrt_status_t hcrt_balancer_destroy(hcrt_balancer_t *bal);

/*
 * Records that this rank computed `samples` (> 0) samples in `seconds` (> 0, finite) during the current
 * step: typically once per micro-batch, from device events around its forward and backward passes.
 * Several calls in one step add up. Local. HCRT_ERR_INVALID_ARG for bad values.
 */
HCRT_EXPORT hcrt_status_t hcrt_balancer_record(hcrt_balancer_t *bal, int64_t samples, double seconds);

/*
 * Ends a step: folds its measurements into the moving average and, on re-plan steps (every `interval`
 * steps in online mode; once, after warmup_steps + interval steps, in static mode; never when off),
 * allgathers every rank's average and decides the plan from now on. *changed (may be NULL) tells whether
 * the plan changed. Collective (every rank calls it once per step; off mode communicates nothing).
 * A decision is kept for hcrt_balancer_last_decision() and written to the trace (HCRT_TRACE).
 */
HCRT_EXPORT hcrt_status_t hcrt_balancer_step(hcrt_balancer_t *bal, bool *changed);

/* Number of ranks (entries of the plan). */
HCRT_EXPORT hcrt_status_t hcrt_balancer_size(const hcrt_balancer_t *bal, int *nranks);

/* Copies the plan in force: shares[r] micro-batches for rank r, r < n; n must be the number of ranks. */
HCRT_EXPORT hcrt_status_t hcrt_balancer_shares(const hcrt_balancer_t *bal, int64_t *shares, size_t n);

/* This rank's global micro-batches in the plan in force: [*first, *first + *count). Either pointer may be
 * NULL. */
HCRT_EXPORT hcrt_status_t hcrt_balancer_assignment(const hcrt_balancer_t *bal, int64_t *first, int64_t *count);

/* The throughputs (samples/s) of the last re-plan, per rank (0 where a rank had none yet); n must be
 * the number of ranks. */
HCRT_EXPORT hcrt_status_t hcrt_balancer_rates(const hcrt_balancer_t *bal, double *rates, size_t n);

/* The last decision (initial plan, re-plan, or restore). */
typedef struct hcrt_balance_decision {
    size_t struct_size; /* set by the caller */
    int64_t step;       /* steps completed when it was taken (0: at creation) */
    bool changed;       /* whether the plan changed */
    hcrt_balance_reason_t reason;
    double predicted_before; /* seconds per step of the previous plan under the rates then (0: unknown) */
    double predicted_after;  /* and of the plan adopted (or proposed, when held) */
    const char *text;        /* one line, e.g. "step 40: shares 16,8,4 -> 15,9,4 (predicted 0.52 s -> 0.47 s)";
                              * valid until the next call on the balancer */
} hcrt_balance_decision_t;

HCRT_EXPORT hcrt_status_t hcrt_balancer_last_decision(const hcrt_balancer_t *bal, hcrt_balance_decision_t *decision);

/*
 * Replaces the plan (a plan saved in a checkpoint's metadata, say): n must be the number of ranks, the
 * shares must sum to micro_batches, each at least 1 and within the rank's cap. Collective: every rank
 * must pass the same plan (HCRT_ERR_MISMATCH on every rank otherwise); the moving averages are kept.
 * Errors: HCRT_ERR_INVALID_ARG naming what is wrong.
 */
HCRT_EXPORT hcrt_status_t hcrt_balancer_set_shares(hcrt_balancer_t *bal, const int64_t *shares, size_t n);

/* ------------------------------------------------------------------------------------------------ */
/* Gradients summed over samples                                                                      */

/* Flags of hcrt_comm_allreduce_grads. */
#define HCRT_GRADS_MEAN (1u << 0) /* divide the sums by the global sample count (on the buffers' devices) */

/*
 * Allreduces n gradient buffers with HCRT_OP_SUM, in place (each on its own device, any backend, any
 * floating dtype), together with this rank's sample count: *global_samples (may be NULL) receives the
 * sum of every rank's local_samples. Each buffer must hold this rank's SUM over its samples (0 samples:
 * zeros). With HCRT_GRADS_MEAN the results are then scaled by 1 / global count (hcrt_scale: rounded to
 * f32 for f32, f16 and bf16 buffers); without it the caller divides, e.g. in its optimizer. The result
 * equals the one-rank sum over the same global batch up to floating-point rounding of the summation
 * order (hcrt/exact.h removes even that). Collective: the same n, counts and dtypes on every rank, in
 * the same order. Errors: HCRT_ERR_INVALID_ARG naming the argument (NULL comm, bufs NULL with n > 0, a
 * buffer with a NULL pointer, an integer dtype, local_samples < 0, unknown flags), the collectives'.
 * A global count of 0 with HCRT_GRADS_MEAN leaves the sums (zeros) unscaled.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_allreduce_grads(struct hcrt_comm *comm, const struct hcrt_buffer *bufs, size_t n,
                                                    int64_t local_samples, int64_t *global_samples, unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_BALANCE_H */
