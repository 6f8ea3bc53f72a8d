/*
 * tools/hcrt-train/step.c - one training step of hcrt-train.
 *
 *   1. This rank's micro-batches of the step (the plan's contiguous range of global micro-batches): the
 *      host makes the samples (data.c) while the device computes the previous micro-batch (two host
 *      buffers behind the stream), each micro-batch timed by device events for the balancer.
 *   2. Normal mode: the gradient sums are reduce-scattered (each rank gets the global sum of its slice),
 *      and the loss and sample count allreduced. Exact mode: each micro-batch's gradient was added to the
 *      exact accumulator as soon as it was computed, and the accumulator's allreduce gives every rank the
 *      exactly summed mean gradient and mean loss.
 *   3. Each rank updates its slice of the parameters with its slice of the optimizer state, dividing by
 *      the global sample count, and the slices are allgathered into every rank's parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

hcrt_status_t train_step_setup(train_job_t *j)
{
    mlp_t *m = &j->model;
    const size_t in = (size_t)j->o.dims[0];
    for (int b = 0; b < 2; b++) {
        TRY(hcrt_mem_alloc(j->host, j->o.micro * in * sizeof(float), (void **)&j->hx[b]));
        TRY(hcrt_mem_alloc(j->host, (size_t)j->o.micro * sizeof(int32_t), (void **)&j->hlabels[b]));
        TRY(hcrt_event_create(j->dev, &j->buf_ready[b]));
    }
    /* Events for as many micro-batches as a rank can get (all but one per other rank). */
    j->mb_events = j->nmicro - j->size + 1;
    j->mb_start = calloc((size_t)j->mb_events, sizeof(*j->mb_start));
    j->mb_end = calloc((size_t)j->mb_events, sizeof(*j->mb_end));
    if (!j->mb_start || !j->mb_end)
        return HCRT_ERR_NO_MEMORY;
    for (int64_t i = 0; i < j->mb_events; i++) {
        TRY(hcrt_event_create(j->dev, &j->mb_start[i]));
        TRY(hcrt_event_create(j->dev, &j->mb_end[i]));
    }
    /* The sharded update's slice (padding: the model was allocated with npad elements). */
    j->shard_len = j->npad / (size_t)j->size;
    j->shard_off = (size_t)j->rank * j->shard_len;
    j->shard_real = j->shard_off >= m->nparams ? 0
                    : (m->nparams - j->shard_off < j->shard_len ? m->nparams - j->shard_off : j->shard_len);
    TRY(hcrt_mem_alloc(j->dev, j->shard_len * sizeof(float), (void **)&j->shard_grad));
    TRY(hcrt_optim_state_count(&j->o.optim, j->shard_real, &j->state_count));
    if (j->state_count) {
        TRY(hcrt_mem_alloc(j->dev, j->state_count * sizeof(float), (void **)&j->state));
        TRY(hcrt_memset(j->dev, j->state, 0, j->state_count * sizeof(float)));
    }
    if (j->o.exact) {
        hcrt_buffer_t bufs[2] = {{j->dev, m->grads, m->nparams, HCRT_F32}, {j->dev, m->loss, 1, HCRT_F32}};
        const char *names[2] = {"gradients", "loss"};
        TRY(hcrt_exact_create(j->comm, bufs, names, 2, NULL, &j->exact));
    }
    return HCRT_OK;
}

void train_step_teardown(train_job_t *j)
{
    if (j->model.stream)
        hcrt_stream_sync(j->model.stream);
    hcrt_exact_destroy(j->exact);
    for (int b = 0; b < 2; b++) {
        if (j->hx[b])
            hcrt_mem_free(j->host, j->hx[b]);
        if (j->hlabels[b])
            hcrt_mem_free(j->host, j->hlabels[b]);
        hcrt_event_destroy(j->buf_ready[b]);
    }
    for (int64_t i = 0; i < j->mb_events; i++) {
        if (j->mb_start)
            hcrt_event_destroy(j->mb_start[i]);
        if (j->mb_end)
            hcrt_event_destroy(j->mb_end[i]);
    }
    free(j->mb_start);
    free(j->mb_end);
    if (j->shard_grad)
        hcrt_mem_free(j->dev, j->shard_grad);
    if (j->state)
        hcrt_mem_free(j->dev, j->state);
}

hcrt_status_t train_local_work(train_job_t *j, int64_t step, int64_t first, int64_t count, bool exact_add)
{
    mlp_t *m = &j->model;
    const uint64_t micro = (uint64_t)j->o.micro;
    if (count > j->mb_events)
        return HCRT_ERR_INTERNAL;
    if (!exact_add)
        TRY(mlp_zero_grads(m));
    for (int64_t i = 0; i < count; i++) {
        const int b = (int)(i & 1);
        /* The host buffer is free once the device has taken the micro-batch that last used it. */
        if (i >= 2)
            TRY(hcrt_event_sync(j->buf_ready[b]));
        train_data_batch(&j->data, step, (uint64_t)(first + i) * micro, micro, j->hx[b], j->hlabels[b]);
        TRY(hcrt_event_record(j->mb_start[i], m->stream));
        /* Exact mode keeps each micro-batch's gradient apart: overwrite, then add it exactly. */
        TRY(mlp_micro_batch(m, j->hx[b], j->hlabels[b], exact_add));
        TRY(hcrt_event_record(j->mb_end[i], m->stream));
        TRY(hcrt_event_record(j->buf_ready[b], m->stream));
        if (exact_add) {
            TRY(hcrt_event_sync(j->mb_end[i]));
            TRY(hcrt_exact_add(j->exact));
        }
    }
    TRY(hcrt_stream_sync(m->stream));
    return HCRT_OK;
}

/* Tells the balancer how long this rank's micro-batches took on its device and, with HCRT_TRACE, puts
 * each on the timeline: device events give durations and offsets, anchored at `synced`, the trace-clock
 * time at which the stream was seen finished (the end of the last micro-batch, to within the wait). */
static hcrt_status_t record_rate(train_job_t *j, int64_t step, int64_t first, int64_t count, double synced)
{
    double seconds = 0;
    for (int64_t i = 0; i < count; i++) {
        float ms = 0;
        TRY(hcrt_event_elapsed(j->mb_start[i], j->mb_end[i], &ms));
        seconds += ms * 1e-3;
    }
    if (count > 0 && seconds > 0)
        TRY(hcrt_balancer_record(j->bal, count * j->o.micro, seconds));
    if (count > 0 && hcrt_trace_enabled(j->ctx)) {
        float span = 0;
        TRY(hcrt_event_elapsed(j->mb_start[0], j->mb_end[count - 1], &span));
        const double t0 = synced - span * 1e-3;
        for (int64_t i = 0; i < count; i++) {
            float off = 0, ms = 0;
            char args[160];
            TRY(hcrt_event_elapsed(j->mb_start[0], j->mb_start[i], &off));
            TRY(hcrt_event_elapsed(j->mb_start[i], j->mb_end[i], &ms));
            snprintf(args, sizeof(args), "{\"step\": %lld, \"micro_batch\": %lld, \"samples\": %lld, \"device\": \"%s\"}",
                     (long long)step, (long long)(first + i), (long long)j->o.micro, j->device_name);
            TRY(hcrt_trace_complete(j->ctx, "forward+backward", "compute", t0 + off * 1e-3, ms * 1e-3, args));
        }
    }
    return HCRT_OK;
}

hcrt_status_t train_step(train_job_t *j, int64_t step, int64_t first, int64_t count, bool dry, double *loss)
{
    mlp_t *m = &j->model;
    int64_t local = count * j->o.micro, total = 0;
    float step_loss = 0;

    TRY(train_local_work(j, step, first, count, j->o.exact));
    if (!dry)
        TRY(record_rate(j, step, first, count, hcrt_trace_clock()));
    if (j->o.exact) {
        /* The exact mean gradient and mean loss, the same bits on every rank and for every split. */
        TRY(hcrt_exact_allreduce(j->exact, local, &total, HCRT_EXACT_MEAN));
        TRY(hcrt_memcpy(j->host, &step_loss, j->dev, m->loss, sizeof(float)));
    } else {
        TRY(hcrt_comm_reduce_scatter(j->comm, m->grads, j->shard_grad, j->shard_len, HCRT_F32, HCRT_OP_SUM, j->dev));
        float local_loss = 0;
        TRY(hcrt_memcpy(j->host, &local_loss, j->dev, m->loss, sizeof(float)));
        double sums[2] = {local_loss, (double)local};
        TRY(hcrt_comm_allreduce(j->comm, HCRT_IN_PLACE, sums, 2, HCRT_F64, HCRT_OP_SUM, NULL));
        total = (int64_t)sums[1];
        step_loss = (float)(sums[0] / sums[1]);
    }
    *loss = step_loss;
    if (dry || total <= 0)
        return HCRT_OK;

    /* This rank's slice: exact mode already holds the mean (grad_scale 1), normal mode the sum. */
    hcrt_optim_params_t p = j->o.optim;
    p.grad_scale = j->o.exact ? 1.0 : 1.0 / (double)total;
    p.step = ++j->adam_step;
    const float *g = j->o.exact ? m->grads + j->shard_off : j->shard_grad;
    /* The state holds (for AdamW: m, then v) shard_real elements' worth: the update always covers the
     * slice's real elements, so its layout never depends on the padding. */
    if (j->shard_real > 0)
        TRY(hcrt_compute_optim_step(j->dev, &p, m->params + j->shard_off, g, j->state, j->shard_real, m->stream));
    TRY(hcrt_stream_sync(m->stream));
    TRY(hcrt_comm_allgather(j->comm, HCRT_IN_PLACE, m->params, j->shard_len, HCRT_F32, j->dev));
    return HCRT_OK;
}
