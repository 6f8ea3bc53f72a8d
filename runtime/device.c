/*
 * runtime/device.c - backends and devices as the public API shows them, streams, events and kernels:
 * argument checks, then dispatch to the device's backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

#define DEV_CTX(d) ((d) ? (d)->ctx : NULL)

/* Records a backend failure with the backend's own text and the device it happened on. */
static hcrt_status_t backend_error(const hcrt_device_t *dev, hcrt_status_t st, const char *op)
{
    return hcrt__error(dev->ctx, st, "%s on %s device %d (%s): %s", op, dev->be->name, dev->index,
                       dev->bprops.name, dev->be->ops->last_error(dev->be->state));
}

/* Dispatches a backend op: refused when the runtime marked the device lost (HCRT_FAULT), else the
 * backend's failure recorded with its own text. */
#define BACKEND_CALL(dev, opname, call)                                                              \
    do {                                                                                             \
        HCRT_CHECK(hcrt__device_gate((dev), (opname)));                                              \
        hcrt_status_t st_ = (call);                                                                  \
        if (st_ != HCRT_OK)                                                                          \
            return backend_error((dev), st_, (opname));                                              \
    } while (0)

/* ---- lost devices ---- */

void hcrt__device_lose(hcrt_device_t *dev, const char *why)
{
    if (dev == NULL || atomic_load(&dev->lost))
        return;
    snprintf(dev->lost_why, sizeof(dev->lost_why), "%s", why ? why : "no detail");
    atomic_store_explicit(&dev->lost, true, memory_order_release);
}

hcrt_status_t hcrt__device_gate_slow(const hcrt_device_t *dev, const char *op)
{
    return hcrt__error(dev->ctx, HCRT_ERR_DEVICE_LOST, "%s on %s device %d (%s) of rank %d (%s): the device is lost "
                       "(%s)", op, dev->be->name, dev->index, dev->bprops.name, dev->ctx->rank, dev->ctx->hostname,
                       dev->lost_why);
}

hcrt_status_t hcrt__device_poll(hcrt_device_t *dev)
{
    if (dev == NULL || (hcrt__device_is_host(dev) && !atomic_load(&dev->lost)))
        return HCRT_OK;
    hcrt_status_t st = hcrt_device_check_health(dev);
    return st == HCRT_ERR_DEVICE_LOST ? st : HCRT_OK;
}

/* ---- backends ---- */

hcrt_status_t hcrt_backend_count(const hcrt_context_t *ctx, int *count)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, count != NULL, "count", "is NULL");
    *count = ctx->nbackends;
    return HCRT_OK;
}

hcrt_status_t hcrt_backend_get_info(const hcrt_context_t *ctx, int index, hcrt_backend_info_t *info)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, info != NULL, "info", "is NULL");
    HCRT_CHECK_ARG(ctx, info->struct_size >= offsetof(hcrt_backend_info_t, device_count) + sizeof(int),
                   "info->struct_size", "is too small (set it to sizeof(hcrt_backend_info_t))");
    HCRT_CHECK_ARG(ctx, index >= 0 && index < ctx->nbackends, "index", "is out of range");
    const hcrt__backend_t *be = &ctx->backends[index];
    hcrt_backend_info_t out = {.struct_size = info->struct_size};
    out.name = be->name;
    out.path = be->path;
    out.status = be->status;
    out.reason = be->reason;
    out.device_count = be->status == HCRT_BACKEND_LOADED ? be->ndev : 0;
    out.compute = be->status == HCRT_BACKEND_LOADED && be->compute != NULL;
    out.compute_detail = be->status == HCRT_BACKEND_LOADED ? be->compute_detail : "";
    memcpy(info, &out, info->struct_size < sizeof(out) ? info->struct_size : sizeof(out));
    return HCRT_OK;
}

/* ---- devices ---- */

hcrt_status_t hcrt_device_count(const hcrt_context_t *ctx, int *count)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, count != NULL, "count", "is NULL");
    *count = ctx->ndevices;
    return HCRT_OK;
}

hcrt_status_t hcrt_device_get(const hcrt_context_t *ctx, int index, hcrt_device_t **device)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, device != NULL, "device", "is NULL");
    if (index < 0 || index >= ctx->ndevices)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_device_get: argument 'index' is %d, there are %d devices",
                           index, ctx->ndevices);
    *device = &((hcrt_context_t *)ctx)->devices[index];
    return HCRT_OK;
}

hcrt_status_t hcrt_device_find(const hcrt_context_t *ctx, const char *backend, int index, hcrt_device_t **device)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, backend != NULL, "backend", "is NULL");
    HCRT_CHECK_ARG(ctx, device != NULL, "device", "is NULL");
    for (int i = 0; i < ctx->nbackends; i++) {
        const hcrt__backend_t *be = &ctx->backends[i];
        if (strcmp(be->name, backend) != 0)
            continue;
        if (be->status != HCRT_BACKEND_LOADED)
            return hcrt__error(ctx, HCRT_ERR_NOT_FOUND, "hcrt_device_find: backend '%s' is not loaded: %s", backend,
                               be->reason);
        if (index < 0 || index >= be->ndev)
            return hcrt__error(ctx, HCRT_ERR_NOT_FOUND,
                               "hcrt_device_find: argument 'index' is %d, backend '%s' has %d device(s)", index,
                               backend, be->ndev);
        *device = &((hcrt_context_t *)ctx)->devices[be->first_device + index];
        return HCRT_OK;
    }
    return hcrt__error(ctx, HCRT_ERR_NOT_FOUND, "hcrt_device_find: no backend named '%s'", backend);
}

hcrt_status_t hcrt_device_host(const hcrt_context_t *ctx, hcrt_device_t **device)
{
    return hcrt_device_find(ctx, "cpu", 0, device);
}

hcrt_status_t hcrt_context_device(const hcrt_context_t *ctx, hcrt_device_t **device)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, device != NULL, "device", "is NULL");
    *device = ctx->selected;
    return HCRT_OK;
}

hcrt_status_t hcrt_device_get_props(const hcrt_device_t *device, hcrt_device_props_t *props)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    HCRT_CHECK_ARG(device->ctx, props != NULL, "props", "is NULL");
    HCRT_CHECK_ARG(device->ctx, props->struct_size >= offsetof(hcrt_device_props_t, caps) + sizeof(uint64_t),
                   "props->struct_size", "is too small (set it to sizeof(hcrt_device_props_t))");
    hcrt_device_t *dev = (hcrt_device_t *)device;
    /* Free memory changes; ask again. */
    hcrt_backend_device_props_t now = {.struct_size = sizeof(now)};
    if (dev->be->ops->device_props(dev->be->state, dev->index, &now) == HCRT_OK)
        dev->bprops.free_memory = now.free_memory;
    hcrt_device_props_t out = {.struct_size = props->struct_size};
    out.backend = dev->be->name;
    out.index = dev->index;
    out.global_index = dev->global_index;
    out.name = dev->bprops.name;
    out.vendor = dev->bprops.vendor;
    out.pci_bus_id = dev->bprops.pci_bus_id;
    out.total_memory = dev->bprops.total_memory;
    out.free_memory = dev->bprops.free_memory;
    out.speed = dev->bprops.speed;
    out.caps = dev->bprops.caps;
    out.numa_node = dev->numa_node;
    out.local_cpus = dev->local_cpus;
    out.host_addressable = hcrt__device_is_host(dev);
    memcpy(props, &out, props->struct_size < sizeof(out) ? props->struct_size : sizeof(out));
    return HCRT_OK;
}

const char *hcrt_device_backend(const hcrt_device_t *device) { return device ? device->be->name : NULL; }

hcrt_context_t *hcrt_device_context(const hcrt_device_t *device) { return device ? device->ctx : NULL; }

hcrt_status_t hcrt_device_check_health(hcrt_device_t *device)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    if (atomic_load_explicit(&device->lost, memory_order_acquire))
        return hcrt__error(device->ctx, HCRT_ERR_DEVICE_LOST, "%s device %d (%s) on rank %d (%s) is lost: %s",
                           device->be->name, device->index, device->bprops.name, device->ctx->rank,
                           device->ctx->hostname, device->lost_why);
    hcrt_backend_health_t h = {.struct_size = sizeof(h)};
    BACKEND_CALL(device, "health", device->be->ops->health(device->be->state, device->index, &h));
    h.last_error[sizeof(h.last_error) - 1] = '\0';
    if (h.device_lost)
        return hcrt__error(device->ctx, HCRT_ERR_DEVICE_LOST, "%s device %d (%s) on rank %d (%s) is lost: %s",
                           device->be->name, device->index, device->bprops.name, device->ctx->rank,
                           device->ctx->hostname, h.last_error[0] ? h.last_error : "no detail");
    if (h.ecc_uncorrected)
        return hcrt__error(device->ctx, HCRT_ERR_DEVICE_LOST,
                           "%s device %d (%s) on rank %d (%s) has %llu uncorrected ECC errors", device->be->name,
                           device->index, device->bprops.name, device->ctx->rank, device->ctx->hostname,
                           (unsigned long long)h.ecc_uncorrected);
    return HCRT_OK;
}

/* ---- streams ---- */

hcrt_status_t hcrt_stream_create(hcrt_device_t *device, hcrt_stream_t **stream)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    HCRT_CHECK_ARG(device->ctx, stream != NULL, "stream", "is NULL");
    hcrt_stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        return hcrt__error(device->ctx, HCRT_ERR_NO_MEMORY, "hcrt_stream_create: out of memory");
    s->device = device;
    hcrt_status_t st = hcrt__device_gate(device, "stream_create");
    if (st != HCRT_OK) {
        free(s);
        return st;
    }
    st = device->be->ops->stream_create(device->be->state, device->index, &s->bs);
    if (st != HCRT_OK) {
        free(s);
        return backend_error(device, st, "stream_create");
    }
    *stream = s;
    return HCRT_OK;
}

hcrt_status_t hcrt_stream_destroy(hcrt_stream_t *stream)
{
    if (!stream)
        return HCRT_OK;
    hcrt_device_t *dev = stream->device;
    hcrt_status_t st = dev->be->ops->stream_destroy(dev->be->state, stream->bs);
    free(stream);
    if (st != HCRT_OK)
        return backend_error(dev, st, "stream_destroy");
    return HCRT_OK;
}

hcrt_status_t hcrt_stream_sync(hcrt_stream_t *stream)
{
    HCRT_CHECK_ARG(NULL, stream != NULL, "stream", "is NULL");
    hcrt_device_t *dev = stream->device;
    BACKEND_CALL(dev, "stream_sync", dev->be->ops->stream_sync(dev->be->state, stream->bs));
    return HCRT_OK;
}

/* ---- events ---- */

hcrt_status_t hcrt_event_create(hcrt_device_t *device, hcrt_event_t **event)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    HCRT_CHECK_ARG(device->ctx, event != NULL, "event", "is NULL");
    hcrt_event_t *e = calloc(1, sizeof(*e));
    if (!e)
        return hcrt__error(device->ctx, HCRT_ERR_NO_MEMORY, "hcrt_event_create: out of memory");
    e->device = device;
    hcrt_status_t st = hcrt__device_gate(device, "event_create");
    if (st != HCRT_OK) {
        free(e);
        return st;
    }
    st = device->be->ops->event_create(device->be->state, device->index, &e->be);
    if (st != HCRT_OK) {
        free(e);
        return backend_error(device, st, "event_create");
    }
    *event = e;
    return HCRT_OK;
}

hcrt_status_t hcrt_event_destroy(hcrt_event_t *event)
{
    if (!event)
        return HCRT_OK;
    hcrt_device_t *dev = event->device;
    hcrt_status_t st = dev->be->ops->event_destroy(dev->be->state, event->be);
    free(event);
    if (st != HCRT_OK)
        return backend_error(dev, st, "event_destroy");
    return HCRT_OK;
}

hcrt_status_t hcrt_event_record(hcrt_event_t *event, hcrt_stream_t *stream)
{
    HCRT_CHECK_ARG(NULL, event != NULL, "event", "is NULL");
    hcrt_device_t *dev = event->device;
    HCRT_CHECK_ARG(dev->ctx, stream == NULL || stream->device == dev, "stream",
                   "belongs to another device than the event");
    BACKEND_CALL(dev, "event_record", dev->be->ops->event_record(dev->be->state, event->be, stream ? stream->bs : NULL));
    return HCRT_OK;
}

hcrt_status_t hcrt_event_sync(hcrt_event_t *event)
{
    HCRT_CHECK_ARG(NULL, event != NULL, "event", "is NULL");
    hcrt_device_t *dev = event->device;
    BACKEND_CALL(dev, "event_sync", dev->be->ops->event_sync(dev->be->state, event->be));
    return HCRT_OK;
}

hcrt_status_t hcrt_event_query(hcrt_event_t *event, bool *done)
{
    HCRT_CHECK_ARG(NULL, event != NULL, "event", "is NULL");
    HCRT_CHECK_ARG(event->device->ctx, done != NULL, "done", "is NULL");
    hcrt_device_t *dev = event->device;
    BACKEND_CALL(dev, "event_query", dev->be->ops->event_query(dev->be->state, event->be, done));
    return HCRT_OK;
}

hcrt_status_t hcrt_event_elapsed(hcrt_event_t *start, hcrt_event_t *end, float *ms)
{
    HCRT_CHECK_ARG(NULL, start != NULL, "start", "is NULL");
    HCRT_CHECK_ARG(start->device->ctx, end != NULL, "end", "is NULL");
    HCRT_CHECK_ARG(start->device->ctx, ms != NULL, "ms", "is NULL");
    HCRT_CHECK_ARG(start->device->ctx, start->device == end->device, "end", "belongs to another device than start");
    hcrt_device_t *dev = start->device;
    BACKEND_CALL(dev, "event_elapsed", dev->be->ops->event_elapsed(dev->be->state, start->be, end->be, ms));
    return HCRT_OK;
}

/* ---- kernels ---- */

static hcrt_status_t check_kernel_args(hcrt_device_t *device, const void *ptr, size_t count, hcrt_dtype_t dtype,
                                       hcrt_stream_t *stream, const char *fn)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    if ((unsigned)dtype >= HCRT_DTYPE_COUNT)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'dtype' is %d, not a valid hcrt_dtype_t", fn,
                           (int)dtype);
    if (count > 0 && ptr == NULL)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'dst' is NULL with count %zu", fn, count);
    if (count > SIZE_MAX / hcrt_dtype_size(dtype))
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'count' (%zu) overflows the size in bytes",
                           fn, count);
    if (stream && stream->device != device)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'stream' belongs to another device", fn);
    return HCRT_OK;
}

hcrt_status_t hcrt_reduce(hcrt_device_t *device, void *dst, const void *src, size_t count, hcrt_dtype_t dtype,
                          hcrt_op_t op, hcrt_stream_t *stream)
{
    HCRT_CHECK(check_kernel_args(device, dst, count, dtype, stream, "hcrt_reduce"));
    HCRT_CHECK_ARG(device->ctx, count == 0 || src != NULL, "src", "is NULL");
    if ((unsigned)op >= HCRT_OP_COUNT)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "hcrt_reduce: argument 'op' is %d, not a valid hcrt_op_t",
                           (int)op);
    if (count == 0)
        return HCRT_OK;
    size_t bytes = count * hcrt_dtype_size(dtype);
    HCRT_CHECK(hcrt__mem_check(device->ctx, __func__, "dst", dst, bytes, device, true));
    HCRT_CHECK(hcrt__mem_check(device->ctx, __func__, "src", src, bytes, device, true));
    BACKEND_CALL(device, "reduce",
                 device->be->ops->reduce(device->be->state, device->index, dst, src, count, dtype, op,
                                         stream ? stream->bs : NULL));
    return HCRT_OK;
}

hcrt_status_t hcrt_scale(hcrt_device_t *device, void *ptr, size_t count, hcrt_dtype_t dtype, double factor,
                         hcrt_stream_t *stream)
{
    HCRT_CHECK(check_kernel_args(device, ptr, count, dtype, stream, "hcrt_scale"));
    if (count == 0)
        return HCRT_OK;
    HCRT_CHECK(hcrt__mem_check(device->ctx, __func__, "ptr", ptr, count * hcrt_dtype_size(dtype), device, true));
    BACKEND_CALL(device, "scale",
                 device->be->ops->scale(device->be->state, device->index, ptr, count, dtype, factor,
                                        stream ? stream->bs : NULL));
    return HCRT_OK;
}

bool hcrt_device_maps_host(const hcrt_device_t *device)
{
    if (device == NULL)
        return false;
    const hcrt_backend_v1_t *t = device->be->ops;
    return HCRT_BACKEND_HAS_OP(t, host_register) && HCRT_BACKEND_HAS_OP(t, host_unregister) &&
           HCRT_BACKEND_HAS_OP(t, reduce3);
}

static hcrt_status_t not_mapping(hcrt_device_t *device, const char *fn)
{
    return hcrt__error(device->ctx, HCRT_ERR_NOT_SUPPORTED,
                       "%s: the %s backend cannot run kernels on host memory (no host_register/reduce3 ops)", fn,
                       device->be->name);
}

hcrt_status_t hcrt_reduce3(hcrt_device_t *device, void *dst, const void *a, const void *b, size_t count,
                           hcrt_dtype_t dtype, hcrt_op_t op, hcrt_stream_t *stream)
{
    HCRT_CHECK(check_kernel_args(device, dst, count, dtype, stream, "hcrt_reduce3"));
    HCRT_CHECK_ARG(device->ctx, count == 0 || a != NULL, "a", "is NULL");
    HCRT_CHECK_ARG(device->ctx, count == 0 || b != NULL, "b", "is NULL");
    if ((unsigned)op >= HCRT_OP_COUNT)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "hcrt_reduce3: argument 'op' is %d, not a valid hcrt_op_t",
                           (int)op);
    if (!hcrt_device_maps_host(device))
        return not_mapping(device, "hcrt_reduce3");
    if (count == 0)
        return HCRT_OK;
    size_t bytes = count * hcrt_dtype_size(dtype);
    HCRT_CHECK(hcrt__mem_check(device->ctx, __func__, "dst", dst, bytes, device, true));
    HCRT_CHECK(hcrt__mem_check(device->ctx, __func__, "a", a, bytes, device, true));
    HCRT_CHECK(hcrt__mem_check(device->ctx, __func__, "b", b, bytes, device, true));
    BACKEND_CALL(device, "reduce3",
                 device->be->ops->reduce3(device->be->state, device->index, dst, a, b, count, dtype, op,
                                          stream ? stream->bs : NULL));
    return HCRT_OK;
}

hcrt_status_t hcrt_host_register(hcrt_device_t *device, void *ptr, size_t bytes, void **dev_ptr)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    HCRT_CHECK_ARG(device->ctx, ptr != NULL, "ptr", "is NULL");
    HCRT_CHECK_ARG(device->ctx, bytes > 0, "bytes", "is 0");
    HCRT_CHECK_ARG(device->ctx, dev_ptr != NULL, "dev_ptr", "is NULL");
    if (!hcrt_device_maps_host(device))
        return not_mapping(device, "hcrt_host_register");
    BACKEND_CALL(device, "host_register",
                 device->be->ops->host_register(device->be->state, device->index, ptr, bytes, dev_ptr));
    return HCRT_OK;
}

hcrt_status_t hcrt_host_unregister(hcrt_device_t *device, void *ptr)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    HCRT_CHECK_ARG(device->ctx, ptr != NULL, "ptr", "is NULL");
    if (!hcrt_device_maps_host(device))
        return not_mapping(device, "hcrt_host_unregister");
    BACKEND_CALL(device, "host_unregister", device->be->ops->host_unregister(device->be->state, device->index, ptr));
    return HCRT_OK;
}
