/*
 * collectives/stage.c - moving device buffers through host memory for MPI.
 *
 * A stage is a stream of the device plus a few events, kept by the communicator and reused. Schedule
 * steps enqueue device<->host copies on the stream (recording an event after each) and later rounds wait
 * for those events, so a copy proceeds while earlier rounds exchange and reduce. Copies on one stream run
 * in order, which is what makes reusing a host staging buffer safe: the device->host copy that refills it
 * is queued behind the host->device copy that drains it.
 */
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"

#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h>
#endif

bool hcrt__mpi_takes(const hcrt_device_t *dev)
{
    if (dev == NULL || hcrt__device_is_host(dev))
        return true;
    /* A device-aware MPI moves device memory itself (reductions still stage: they run on the host). The
     * compile-time macro says the library was built with the support, the call that it is active. */
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
    if (strcmp(dev->be->name, "cuda") == 0 && MPIX_Query_cuda_support() == 1)
        return true;
#endif
#if defined(MPIX_ROCM_AWARE_SUPPORT) && MPIX_ROCM_AWARE_SUPPORT
    if (strcmp(dev->be->name, "hip") == 0 && MPIX_Query_rocm_support() == 1)
        return true;
#endif
    return false;
}

hcrt_status_t hcrt__stage_get(struct hcrt_comm *comm, hcrt_device_t *device, hcrt__stage_t **out)
{
    for (hcrt__stage_t *st = comm->stages; st != NULL; st = st->next) {
        if (!st->in_use && !st->quarantined && st->device == device) {
            st->in_use = true;
            *out = st;
            return HCRT_OK;
        }
    }
    hcrt_status_t status;
    hcrt__stage_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for a staging stream");
    st->device = device;
    HCRT_CHECK_GOTO(hcrt_stream_create(device, &st->stream), status, err);
    for (int i = 0; i < HCRT__STAGE_EVENTS; i++)
        HCRT_CHECK_GOTO(hcrt_event_create(device, &st->ev[i]), status, err);
    st->in_use = true;
    st->next = comm->stages;
    comm->stages = st;
    *out = st;
    return HCRT_OK;
err:
    for (int i = 0; i < HCRT__STAGE_EVENTS; i++)
        if (st->ev[i] != NULL)
            hcrt_event_destroy(st->ev[i]);
    hcrt_stream_destroy(st->stream);
    free(st);
    return status;
}

void hcrt__stage_put(hcrt__stage_t *st)
{
    if (st != NULL)
        st->in_use = false;
}

void hcrt__stage_quarantine(hcrt__stage_t *st)
{
    if (st != NULL)
        st->quarantined = true;
}

void hcrt__stage_free_all(struct hcrt_comm *comm)
{
    hcrt__stage_t *st = comm->stages;
    while (st != NULL) {
        hcrt__stage_t *next = st->next;
        hcrt_stream_destroy(st->stream);
        for (int i = 0; i < HCRT__STAGE_EVENTS; i++)
            hcrt_event_destroy(st->ev[i]);
        free(st);
        st = next;
    }
    comm->stages = NULL;
}

hcrt_status_t hcrt__sched_d2h(hcrt__sched_t *s, void *host, const void *dev, size_t bytes, int ev)
{
    hcrt__step_t st = {.kind = HCRT__STEP_DCOPY, .dst = host, .src = dev, .bytes = bytes, .value = 0, .flag = ev,
                       .peer = s->sync_copies};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_h2d(hcrt__sched_t *s, void *dev, const void *host, size_t bytes, int ev)
{
    hcrt__step_t st = {.kind = HCRT__STEP_DCOPY, .dst = dev, .src = host, .bytes = bytes, .value = 1, .flag = ev,
                       .peer = s->sync_copies};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_event(hcrt__sched_t *s, int ev)
{
    if (s->sync_copies) /* the copies completed when their steps ran */
        return HCRT_OK;
    hcrt__step_t st = {.kind = HCRT__STEP_EVENT, .flag = ev};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_d2d(hcrt__sched_t *s, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0 || dst == src)
        return HCRT_OK;
    hcrt__step_t st = {.kind = HCRT__STEP_DCOPY, .dst = dst, .src = src, .bytes = bytes, .value = 2};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_event_peers(hcrt__sched_t *s, int ev)
{
    hcrt__step_t st = {.kind = HCRT__STEP_EVENT, .flag = ev, .value = 1};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_dreduce3(hcrt__sched_t *s, void *dst, const void *a, const void *b, size_t count)
{
    hcrt__step_t st = {.kind = HCRT__STEP_DKERNEL, .dst = dst, .src = a, .src2 = b, .bytes = count, .value = 0};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_dscale(hcrt__sched_t *s, void *buf, size_t count, double factor)
{
    hcrt__step_t st = {.kind = HCRT__STEP_DKERNEL, .dst = buf, .bytes = count, .value = 1, .factor = factor};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_record(hcrt__sched_t *s, int ev)
{
    hcrt__step_t st = {.kind = HCRT__STEP_RECORD, .flag = ev};
    return hcrt__sched_add(s, &st);
}
