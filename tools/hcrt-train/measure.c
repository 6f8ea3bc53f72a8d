/*
 * tools/hcrt-train/measure.c - the efficiency figures of hcrt-train, measured in the same run:
 *
 *   solo_samples_per_s[r]:  rank r alone (the others wait at a barrier) runs the per-sample work of a
 *                           step, making the data and computing forward and backward of micro-batches,
 *                           timed by the wall clock: what its chip delivers with nobody to wait for.
 *   equal_split_samples_per_s:  whole steps (work, reduction) with the global batch split evenly, the
 *                           baseline a balancer must beat.
 *
 * efficiency = samples_per_s of the balanced training steps / sum of the solo figures: 1.0 would be a
 * job whose every chip computes all the time and whose communication costs nothing.
 */
#include <stdio.h>
#include <stdlib.h>

#include "train.h"

/* Micro-batch range of rank r in an even split of n over size ranks. */
static void even_range(int64_t n, int size, int r, int64_t *first, int64_t *count)
{
    int64_t base = n / size, extra = n % size;
    *first = r * base + (r < extra ? r : extra);
    *count = base + (r < extra ? 1 : 0);
}

/* Each phase runs at least this long (and at least --measure-steps), so that first-touch costs and a
 * noisy moment weigh little. */
#define MEASURE_SECONDS 0.5

hcrt_status_t train_measure(train_job_t *j)
{
    const int64_t per_rank = j->nmicro / j->size > 0 ? j->nmicro / j->size : 1;
    /* Measurement steps use a step index no training step uses, so they never touch the data order. */
    const int64_t probe_step = -1;
    double mine = 0;
    for (int r = 0; r < j->size; r++) {
        TRY(hcrt_comm_barrier(j->comm));
        if (r != j->rank)
            continue;
        /* A full share to warm up (first touch, caches), then timed shares for long enough. */
        TRY(train_local_work(j, probe_step, 0, per_rank, j->o.exact));
        int64_t runs = 0;
        double t0 = train_now(), dt = 0;
        while (runs < j->o.measure_steps || dt < MEASURE_SECONDS) {
            TRY(train_local_work(j, probe_step, 0, per_rank, j->o.exact));
            runs++;
            dt = train_now() - t0;
        }
        if (j->o.exact)
            TRY(hcrt_exact_reset(j->exact)); /* what the solo runs added is no gradient of any step */
        mine = (double)(per_rank * runs * j->o.micro) / dt;
    }
    TRY(hcrt_comm_allgather(j->comm, &mine, j->solo, 1, HCRT_F64, NULL));

    /* Whole steps with an even split: work and reduction, no update (dry). Every rank computes the same
     * number of steps from the gathered solo figures: enough for MEASURE_SECONDS at the slowest share. */
    int64_t first, count;
    even_range(j->nmicro, j->size, j->rank, &first, &count);
    double predicted = 0;
    for (int r = 0; r < j->size; r++) {
        int64_t f, c;
        even_range(j->nmicro, j->size, r, &f, &c);
        double t = j->solo[r] > 0 ? (double)(c * j->o.micro) / j->solo[r] : 0;
        predicted = t > predicted ? t : predicted;
    }
    int64_t steps = predicted > 0 ? (int64_t)(MEASURE_SECONDS / predicted) + 1 : j->o.measure_steps;
    steps = steps < j->o.measure_steps ? j->o.measure_steps : steps > 1000 ? 1000 : steps;
    double loss;
    TRY(train_step(j, probe_step, first, count, true, &loss)); /* warm-up */
    TRY(hcrt_comm_barrier(j->comm));
    double t0 = train_now();
    for (int64_t s = 0; s < steps; s++)
        TRY(train_step(j, probe_step, first, count, true, &loss));
    TRY(hcrt_comm_barrier(j->comm));
    j->equal_split = (double)(steps * j->o.global_batch) / (train_now() - t0);
    return HCRT_OK;
}
