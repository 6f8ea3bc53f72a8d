/*
 * backends/gpu/gpu_exec.c - streams, events and the kernel entry points of the cuda and hip plugins
 * (built once per vendor, see gpu_plugin.h).
 *
 * Streams are created non-blocking so they never wait on the legacy default stream (which other code in
 * the process, e.g. a framework, may be using). Live streams and events are kept in lists so finalize()
 * can release what the runtime left behind.
 */
#include <stdint.h>
#include <stdlib.h>

#include "gpu_plugin.h"

/* Doubly-linked list helpers for the state's stream and event lists (caller holds st->lock). */
#define GPU_LIST_PUSH(head, node)                                                                                      \
    do {                                                                                                               \
        (node)->prev = NULL;                                                                                           \
        (node)->next = (head);                                                                                         \
        if (head)                                                                                                      \
            (head)->prev = (node);                                                                                     \
        (head) = (node);                                                                                               \
    } while (0)
#define GPU_LIST_UNLINK(head, node)                                                                                    \
    do {                                                                                                               \
        if ((node)->prev)                                                                                              \
            (node)->prev->next = (node)->next;                                                                         \
        else                                                                                                           \
            (head) = (node)->next;                                                                                     \
        if ((node)->next)                                                                                              \
            (node)->next->prev = (node)->prev;                                                                         \
    } while (0)

hcrt_status_t hcrt_gpu_stream_create(void *state, int dev, hcrt_backend_stream_t **stream)
{
    gpu_state_t *st = state;
    hcrt_backend_stream_t *bs;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("stream_create: argument 'state' is NULL");
    if (!stream)
        return hcrt_gpu_arg_error("stream_create: argument 'stream' is NULL");
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    bs = calloc(1, sizeof *bs);
    if (!bs) {
        hcrt_gpu_set_error("%s: out of host memory", GPU_BACKEND);
        return HCRT_ERR_NO_MEMORY;
    }
    bs->dev = dev;
    if ((e = gpuStreamCreateWithFlags(&bs->s, gpuStreamNonBlocking)) != gpuSuccess) {
        status = hcrt_gpu_fail(st, dev, e, GPU_BACKEND "StreamCreateWithFlags");
        free(bs);
        return status;
    }
    pthread_mutex_lock(&st->lock);
    GPU_LIST_PUSH(st->streams, bs);
    pthread_mutex_unlock(&st->lock);
    *stream = bs;
    return HCRT_OK;
}

/* Waits for the stream's work (its first error is the result), then destroys it in any case. */
hcrt_status_t hcrt_gpu_stream_destroy(void *state, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("stream_destroy: argument 'state' is NULL");
    if (!stream)
        return HCRT_OK;
    pthread_mutex_lock(&st->lock);
    GPU_LIST_UNLINK(st->streams, stream);
    pthread_mutex_unlock(&st->lock);

    status = hcrt_gpu_enter(st, stream->dev);
    if (status == HCRT_OK && (e = gpuStreamSynchronize(stream->s)) != gpuSuccess)
        status = hcrt_gpu_fail(st, stream->dev, e, GPU_BACKEND "StreamSynchronize");
    if ((e = gpuStreamDestroy(stream->s)) != gpuSuccess) {
        hcrt_status_t s2 = hcrt_gpu_fail(st, stream->dev, e, GPU_BACKEND "StreamDestroy");
        if (status == HCRT_OK)
            status = s2;
    }
    free(stream);
    return status;
}

hcrt_status_t hcrt_gpu_stream_sync(void *state, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;

    if (!st)
        return hcrt_gpu_arg_error("stream_sync: argument 'state' is NULL");
    if (!stream)
        return hcrt_gpu_arg_error("stream_sync: argument 'stream' is NULL");
    if ((status = hcrt_gpu_enter(st, stream->dev)) != HCRT_OK)
        return status;
    return hcrt_gpu_finish(st, stream->dev, stream->s, true);
}

hcrt_status_t hcrt_gpu_event_create(void *state, int dev, hcrt_backend_event_t **event)
{
    gpu_state_t *st = state;
    hcrt_backend_event_t *be;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("event_create: argument 'state' is NULL");
    if (!event)
        return hcrt_gpu_arg_error("event_create: argument 'event' is NULL");
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    be = calloc(1, sizeof *be);
    if (!be) {
        hcrt_gpu_set_error("%s: out of host memory", GPU_BACKEND);
        return HCRT_ERR_NO_MEMORY;
    }
    be->dev = dev;
    /* Default flags: timing on, because event_elapsed() is part of the contract. */
    if ((e = gpuEventCreate(&be->e)) != gpuSuccess) {
        status = hcrt_gpu_fail(st, dev, e, GPU_BACKEND "EventCreate");
        free(be);
        return status;
    }
    pthread_mutex_lock(&st->lock);
    GPU_LIST_PUSH(st->events, be);
    pthread_mutex_unlock(&st->lock);
    *event = be;
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_event_destroy(void *state, hcrt_backend_event_t *event)
{
    gpu_state_t *st = state;
    hcrt_status_t status = HCRT_OK;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("event_destroy: argument 'state' is NULL");
    if (!event)
        return HCRT_OK;
    pthread_mutex_lock(&st->lock);
    GPU_LIST_UNLINK(st->events, event);
    pthread_mutex_unlock(&st->lock);
    if (gpuSetDevice(event->dev) != gpuSuccess)
        (void)gpuGetLastError();
    if ((e = gpuEventDestroy(event->e)) != gpuSuccess)
        status = hcrt_gpu_fail(st, event->dev, e, GPU_BACKEND "EventDestroy");
    free(event);
    return status;
}

hcrt_status_t hcrt_gpu_event_record(void *state, hcrt_backend_event_t *event, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuStream_t s;
    bool sync;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("event_record: argument 'state' is NULL");
    if (!event)
        return hcrt_gpu_arg_error("event_record: argument 'event' is NULL");
    if ((status = hcrt_gpu_stream_of(event->dev, stream, "event_record", &s, &sync)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, event->dev)) != HCRT_OK)
        return status;
    if ((e = gpuEventRecord(event->e, s)) != gpuSuccess)
        return hcrt_gpu_fail(st, event->dev, e, GPU_BACKEND "EventRecord");
    event->recorded = true;
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_event_sync(void *state, hcrt_backend_event_t *event)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("event_sync: argument 'state' is NULL");
    if (!event)
        return hcrt_gpu_arg_error("event_sync: argument 'event' is NULL");
    if ((status = hcrt_gpu_enter(st, event->dev)) != HCRT_OK)
        return status;
    if ((e = gpuEventSynchronize(event->e)) != gpuSuccess)
        return hcrt_gpu_fail(st, event->dev, e, GPU_BACKEND "EventSynchronize");
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_event_query(void *state, hcrt_backend_event_t *event, bool *done)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("event_query: argument 'state' is NULL");
    if (!event)
        return hcrt_gpu_arg_error("event_query: argument 'event' is NULL");
    if (!done)
        return hcrt_gpu_arg_error("event_query: argument 'done' is NULL");
    if ((status = hcrt_gpu_enter(st, event->dev)) != HCRT_OK)
        return status;
    e = gpuEventQuery(event->e);
    if (e == gpuErrorNotReady) {
        *done = false;
        return HCRT_OK;
    }
    if (e != gpuSuccess)
        return hcrt_gpu_fail(st, event->dev, e, GPU_BACKEND "EventQuery");
    *done = true;
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_event_elapsed(void *state, hcrt_backend_event_t *start, hcrt_backend_event_t *end, float *ms)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    float t = 0;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("event_elapsed: argument 'state' is NULL");
    if (!start || !end || !ms)
        return hcrt_gpu_arg_error("event_elapsed: argument '%s' is NULL", !start ? "start" : !end ? "end" : "ms");
    if (start->dev != end->dev)
        return hcrt_gpu_arg_error("event_elapsed: events of devices %d and %d", start->dev, end->dev);
    if (!start->recorded || !end->recorded) {
        hcrt_gpu_set_error("%s: event_elapsed: the %s event was never recorded", GPU_BACKEND,
                           !start->recorded ? "start" : "end");
        return HCRT_ERR_STATE;
    }
    if ((status = hcrt_gpu_enter(st, start->dev)) != HCRT_OK)
        return status;
    e = gpuEventElapsedTime(&t, start->e, end->e);
    if (e == gpuErrorNotReady) {
        (void)hcrt_gpu_fail(st, -1, e, GPU_BACKEND "EventElapsedTime");
        return HCRT_ERR_STATE;
    }
    if (e != gpuSuccess)
        return hcrt_gpu_fail(st, start->dev, e, GPU_BACKEND "EventElapsedTime");
    *ms = t;
    return HCRT_OK;
}

void hcrt_gpu_release_exec(gpu_state_t *st)
{
    /* Destroying a stream with work in flight is allowed: the vendor frees it once the work is done. */
    while (st->streams) {
        hcrt_backend_stream_t *bs = st->streams;
        st->streams = bs->next;
        if (gpuSetDevice(bs->dev) != gpuSuccess || gpuStreamDestroy(bs->s) != gpuSuccess)
            (void)gpuGetLastError();
        free(bs);
    }
    while (st->events) {
        hcrt_backend_event_t *be = st->events;
        st->events = be->next;
        if (gpuSetDevice(be->dev) != gpuSuccess || gpuEventDestroy(be->e) != gpuSuccess)
            (void)gpuGetLastError();
        free(be);
    }
}

/* Bytes of one element (dtype already checked). */
static size_t hcrt_gpu_dtype_size(hcrt_dtype_t dtype)
{
    static const unsigned char size[HCRT_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return size[dtype];
}

/*
 * Whether [a, a+n) and [b, b+n) share bytes without being the same range. dst == src is a valid
 * in-place reduction; a partial overlap would make the result depend on the order the GPU threads run
 * in, so it is refused, as the host kernels refuse it. (Device pointers of one process are comparable:
 * both runtimes use one unified virtual address space.)
 */
static bool gpu_partial_overlap(const void *a, const void *b, size_t n)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x != y && x < y + n && y < x + n;
}

static hcrt_status_t gpu_check_kernel_args(const char *what, hcrt_dtype_t dtype, hcrt_op_t op)
{
    if ((unsigned)dtype >= (unsigned)HCRT_DTYPE_COUNT)
        return hcrt_gpu_arg_error("%s: argument 'dtype' (%d) is not a data type", what, (int)dtype);
    if ((unsigned)op >= (unsigned)HCRT_OP_COUNT)
        return hcrt_gpu_arg_error("%s: argument 'op' (%d) is not a reduction op", what, (int)op);
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_reduce(void *state, int dev, void *dst, const void *src, size_t count, hcrt_dtype_t dtype,
                              hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuStream_t s;
    bool sync;
    int e;

    if (!st)
        return hcrt_gpu_arg_error("reduce: argument 'state' is NULL");
    if ((status = gpu_check_kernel_args("reduce", dtype, op)) != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    if (!dst || !src)
        return hcrt_gpu_arg_error("reduce: argument '%s' is NULL", dst ? "src" : "dst");
    if (count > SIZE_MAX / hcrt_gpu_dtype_size(dtype))
        return hcrt_gpu_arg_error("reduce: argument 'count' (%zu) overflows the address space", count);
    if (gpu_partial_overlap(dst, src, count * hcrt_gpu_dtype_size(dtype)))
        return hcrt_gpu_arg_error("reduce: arguments 'dst' and 'src' overlap without being equal");
    if ((status = hcrt_gpu_stream_of(dev, stream, "reduce", &s, &sync)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    e = HCRT_GPU_SYM(launch_reduce)(dst, src, count, (int)dtype, (int)op, (void *)s, st->devs[dev].max_blocks);
    if (e != (int)gpuSuccess)
        return hcrt_gpu_fail(st, dev, (gpuError_t)e, "reduce kernel launch");
    return hcrt_gpu_finish(st, dev, s, sync);
}

hcrt_status_t hcrt_gpu_scale(void *state, int dev, void *ptr, size_t count, hcrt_dtype_t dtype, double factor,
                             hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuStream_t s;
    bool sync;
    int e;

    if (!st)
        return hcrt_gpu_arg_error("scale: argument 'state' is NULL");
    if ((status = gpu_check_kernel_args("scale", dtype, HCRT_OP_SUM)) != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    if (!ptr)
        return hcrt_gpu_arg_error("scale: argument 'ptr' is NULL");
    if (count > SIZE_MAX / hcrt_gpu_dtype_size(dtype))
        return hcrt_gpu_arg_error("scale: argument 'count' (%zu) overflows the address space", count);
    if ((status = hcrt_gpu_stream_of(dev, stream, "scale", &s, &sync)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    e = HCRT_GPU_SYM(launch_scale)(ptr, count, (int)dtype, factor, (void *)s, st->devs[dev].max_blocks);
    if (e != (int)gpuSuccess)
        return hcrt_gpu_fail(st, dev, (gpuError_t)e, "scale kernel launch");
    return hcrt_gpu_finish(st, dev, s, sync);
}

/*
 * dst = op(a, b), a on the left. The operands may be device memory or the dev_ptr addresses of
 * host_register, which the kernels dereference as they are (mapped pinned memory), so nothing is
 * translated. dst equal to a or b is an in-place reduction; a and b may overlap each other freely, since
 * both are only read.
 */
hcrt_status_t hcrt_gpu_reduce3(void *state, int dev, void *dst, const void *a, const void *b, size_t count,
                               hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    gpu_state_t *st = state;
    hcrt_status_t status;
    gpuStream_t s;
    bool sync;
    size_t bytes;
    int e;

    if (!st)
        return hcrt_gpu_arg_error("reduce3: argument 'state' is NULL");
    if ((status = gpu_check_kernel_args("reduce3", dtype, op)) != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    if (!dst || !a || !b)
        return hcrt_gpu_arg_error("reduce3: argument '%s' is NULL", !dst ? "dst" : !a ? "a" : "b");
    if (count > SIZE_MAX / hcrt_gpu_dtype_size(dtype))
        return hcrt_gpu_arg_error("reduce3: argument 'count' (%zu) overflows the address space", count);
    bytes = count * hcrt_gpu_dtype_size(dtype);
    if (gpu_partial_overlap(dst, a, bytes) || gpu_partial_overlap(dst, b, bytes))
        return hcrt_gpu_arg_error("reduce3: argument 'dst' overlaps '%s' without being equal to it",
                                  gpu_partial_overlap(dst, a, bytes) ? "a" : "b");
    if ((status = hcrt_gpu_stream_of(dev, stream, "reduce3", &s, &sync)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    e = HCRT_GPU_SYM(launch_reduce3)(dst, a, b, count, (int)dtype, (int)op, (void *)s, st->devs[dev].max_blocks);
    if (e != (int)gpuSuccess)
        return hcrt_gpu_fail(st, dev, (gpuError_t)e, "reduce3 kernel launch");
    return hcrt_gpu_finish(st, dev, s, sync);
}
