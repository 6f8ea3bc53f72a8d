/*
 * hcrt/exact.h - exact mode: gradient sums that are bitwise identical whatever the world size, the
 * batch split, the rebalancing and the restarts (docs/exact-mode.md).
 *
 * An ordinary data-parallel sum of f32 gradients depends on the order of its additions: a different
 * world size, split of the global batch, reduction algorithm or restart on another chip mix gives
 * different bits, and the runs drift apart. An exact accumulator sums the micro-batches' gradients
 * without any rounding, so the order no longer matters:
 *
 *     hcrt_exact_create(comm, grads, names, n, NULL, &acc);   // the gradient buffers, on any device
 *     for each micro-batch this rank runs:
 *         compute its gradient sum into grads (overwriting them, not accumulating);
 *         hcrt_exact_add(acc);                             // adds them, exactly
 *     hcrt_exact_allreduce(acc, local_samples, &total, HCRT_EXACT_MEAN);  // grads = exact sum / total
 *
 * Technique: a long fixed-point accumulator. Every gradient element added is rounded once to a multiple
 * of 2^lsb_exponent and split, exactly, into K int64 digit words 48 bits apart; the digits are summed
 * with integer additions on the host (vectorised), the words of all ranks are allreduced as int64 sums
 * (integer addition is associative, so any algorithm gives the same words), and the exact total is
 * rounded once to f32. With the default window [2^-64, 2^32) K is 2: 16 bytes per element are reduced
 * instead of 4. The result does not depend on how the micro-batches were distributed or in which order
 * they were added; with the same per-micro-batch gradients it is bitwise the same on every rank, run
 * and world size.
 *
 * Limits (checked, never wrong silently): each added value must be below 2^top_exponent in magnitude
 * and finite; a rank that adds one makes hcrt_exact_allreduce fail on every rank with
 * HCRT_ERR_INVALID_ARG naming that rank, the tensor, the element and the value. Values below
 * 2^(lsb_exponent - 1) in magnitude count as 0 and the others are rounded to the grid of
 * 2^lsb_exponent (the only rounding before the final one). The window holds hcrt_exact_max_adds()
 * micro-batches per reduction over all ranks (32766 with the defaults), and at most 32768 ranks.
 *
 * Reproducibility needs the per-micro-batch gradients themselves to be bitwise identical wherever they
 * are computed: true on backends with one host implementation of their compute (cpu and sim); chips of
 * different vendors round their gemms differently, so a mix of them is exact in the reduction but not
 * in the gradients that enter it.
 *
 * Collective calls (every rank of the communicator): hcrt_exact_create, hcrt_exact_allreduce. The
 * others are local. An accumulator is used from one thread at a time; its allreduce runs on the
 * communicator given at creation, in call order with the application's collectives.
 */
#ifndef HCRT_EXACT_H
#define HCRT_EXACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hcrt_comm;
struct hcrt_buffer;

typedef struct hcrt_exact hcrt_exact_t;

typedef struct hcrt_exact_params {
    size_t struct_size;
    /* Added values are rounded to multiples of 2^lsb_exponent (>= -126; default -64). */
    int lsb_exponent;
    /* Added values must be below 2^top_exponent in magnitude (<= 100; default 32). The window
     * top - lsb must be at least 24 bits; every 48 bits beyond the first 48 add one word per element. */
    int top_exponent;
} hcrt_exact_params_t;

/* Fills params with the defaults (window [2^-64, 2^32): two words per element). */
HCRT_EXPORT void hcrt_exact_params_init(hcrt_exact_params_t *params);

/*
 * Creates an accumulator for n (>= 1) f32 tensors: bufs[i] is where the gradients of tensor i appear
 * (any device, count >= 1, dtype HCRT_F32); names[i] names it in errors and in the trace (names NULL:
 * "tensor 0", ...; each at most 255 bytes). hcrt keeps the views, not copies: the memory must stay
 * valid until hcrt_exact_destroy(). Allocates K words per element and a staging buffer in pinned host
 * memory. params NULL means defaults. Collective: every rank must pass the same window and the same
 * element counts (HCRT_ERR_MISMATCH on every rank otherwise). Errors: HCRT_ERR_INVALID_ARG naming the
 * argument, HCRT_ERR_NO_MEMORY, HCRT_ERR_MISMATCH. *acc is set only on success.
 */
HCRT_EXPORT hcrt_status_t hcrt_exact_create(struct hcrt_comm *comm, const struct hcrt_buffer *bufs,
                                            const char *const *names, size_t n, const hcrt_exact_params_t *params,
                                            hcrt_exact_t **acc);

/* Frees an accumulator (local). NULL is a no-op. */
HCRT_EXPORT hcrt_status_t hcrt_exact_destroy(hcrt_exact_t *acc);

/*
 * Adds the current contents of every registered tensor (one micro-batch's gradients) to the exact
 * sums: device memory is copied to the host in chunks and folded in there. Synchronous: the buffers
 * may be overwritten when it returns (work enqueued on the device's streams must be complete before the
 * call). A value outside the window does not fail here (the other ranks could not know); it makes the
 * next hcrt_exact_allreduce fail on every rank. Local. Errors: HCRT_ERR_INVALID_ARG (NULL acc), device
 * copy errors (naming the tensor and its device); after one, what was added since the last reduction is
 * discarded (the accumulator starts the step over), so the application may retry or skip the step.
 */
HCRT_EXPORT hcrt_status_t hcrt_exact_add(hcrt_exact_t *acc);

/* Flags of hcrt_exact_allreduce. */
#define HCRT_EXACT_MEAN (1u << 0) /* divide by the global sample count */

/*
 * Sums the accumulators of every rank exactly and writes the result, rounded once to f32, into the
 * registered tensors of every rank: the exact sum (correctly rounded), or with HCRT_EXACT_MEAN the exact
 * sum divided by the global sample count (the sum rounded to odd at 53 bits, divided in double, rounded
 * to f32: deterministic, within one ulp). local_samples (>= 0) is this rank's sample count;
 * *global_samples (may be NULL) receives the sum over ranks, computed in the same reduction. Then
 * resets the accumulator for the next step. Collective.
 * Errors, the same on every rank: HCRT_ERR_INVALID_ARG (bad arguments; a value outside the window was
 * added on some rank, the message names the rank, tensor, element and value; more micro-batches were
 * added over all ranks than the window holds), the collectives' and the device copies' errors. On error
 * the tensors are not written and the accumulator is reset. A global count of 0 with HCRT_EXACT_MEAN
 * leaves the sums undivided.
 */
HCRT_EXPORT hcrt_status_t hcrt_exact_allreduce(hcrt_exact_t *acc, int64_t local_samples, int64_t *global_samples,
                                               unsigned flags);

/* Discards what was added since the last allreduce (local). */
HCRT_EXPORT hcrt_status_t hcrt_exact_reset(hcrt_exact_t *acc);

/* Words per element (K) and the micro-batches the window holds per reduction, over all ranks. Either
 * pointer may be NULL. */
HCRT_EXPORT hcrt_status_t hcrt_exact_info(const hcrt_exact_t *acc, int *words, int64_t *max_adds);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_EXACT_H */
