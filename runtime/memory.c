/*
 * runtime/memory.c - allocation and copies between any two devices.
 *
 * A copy is routed by who can do it: the host side is plain memory, so a host<->device copy is the
 * device backend's H2D/D2H; two devices of one backend copy peer to peer; two devices of different
 * backends cannot see each other's memory, so the bytes are staged through pinned host memory of the
 * source's backend in chunks.
 *
 * Where a call takes the device that memory lives on, NULL means host memory (the rule of hcrt.h). Every
 * allocation is recorded in the context's allocation table, so that the calls here and the collectives
 * refuse a pointer passed with the wrong device, or a count beyond its allocation, by name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

/* Staging chunk of cross-backend copies: large enough for full copy speed, small enough to stay cheap. */
#define STAGE_CHUNK ((size_t)4 << 20)

static hcrt_status_t backend_error(const hcrt_device_t *dev, hcrt_status_t st, const char *op)
{
    return hcrt__error(dev->ctx, st, "%s on %s device %d (%s), rank %d: %s", op, dev->be->name, dev->index,
                       dev->bprops.name, dev->ctx->rank, dev->be->ops->last_error(dev->be->state));
}

hcrt_status_t hcrt_mem_alloc(hcrt_device_t *device, size_t bytes, void **ptr)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    HCRT_CHECK_ARG(device->ctx, ptr != NULL, "ptr", "is NULL");
    HCRT_CHECK_ARG(device->ctx, bytes > 0, "bytes", "is 0");
    void *p = NULL;
    HCRT_CHECK(hcrt__device_gate(device, "mem_alloc"));
    hcrt_status_t st = device->be->ops->mem_alloc(device->be->state, device->index, bytes, &p);
    if (st != HCRT_OK)
        return backend_error(device, st, "mem_alloc");
    st = hcrt__alloc_add(device->ctx, p, bytes, device, false);
    if (st != HCRT_OK) {
        device->be->ops->mem_free(device->be->state, device->index, p);
        return st;
    }
    *ptr = p;
    return HCRT_OK;
}

/*
 * Takes ptr out of the allocation table before the backend frees it (another thread may be handed the
 * same address right after), after checking that `device` made it as memory of kind `host`: a pointer
 * freed through the wrong device or the wrong call is named instead of reaching the wrong backend.
 */
static hcrt_status_t forget(hcrt_device_t *device, void *ptr, bool host, const char *func, hcrt__alloc_info_t *was)
{
    if (!hcrt__alloc_find(device->ctx, ptr, was))
        return HCRT_OK; /* not hcrt's: the backend says what it thinks */
    if (was->base != (uintptr_t)ptr)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'ptr' points %zu bytes into an allocation of %zu bytes, not at its start",
                           func, (size_t)((uintptr_t)ptr - was->base), was->size);
    if (was->device != device || was->host != host)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'ptr' was allocated by %s on %s device %d, not by this call's counterpart "
                           "on %s device %d",
                           func, was->host ? "hcrt_mem_alloc_host" : "hcrt_mem_alloc", was->device->be->name,
                           was->device->index, device->be->name, device->index);
    hcrt__alloc_remove(device->ctx, ptr);
    return HCRT_OK;
}

hcrt_status_t hcrt_mem_free(hcrt_device_t *device, void *ptr)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    if (ptr == NULL)
        return HCRT_OK;
    hcrt__alloc_info_t was = {0};
    HCRT_CHECK(forget(device, ptr, false, __func__, &was));
    hcrt_status_t st = device->be->ops->mem_free(device->be->state, device->index, ptr);
    if (st != HCRT_OK) {
        if (was.device != NULL)
            hcrt__alloc_add(device->ctx, ptr, was.size, device, false); /* still allocated */
        return backend_error(device, st, "mem_free");
    }
    return HCRT_OK;
}

hcrt_status_t hcrt_mem_alloc_host(hcrt_device_t *device, size_t bytes, void **ptr)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    HCRT_CHECK_ARG(device->ctx, ptr != NULL, "ptr", "is NULL");
    HCRT_CHECK_ARG(device->ctx, bytes > 0, "bytes", "is 0");
    void *p = NULL;
    HCRT_CHECK(hcrt__device_gate(device, "host_alloc"));
    hcrt_status_t st = device->be->ops->host_alloc(device->be->state, bytes, &p);
    if (st != HCRT_OK)
        return backend_error(device, st, "host_alloc");
    st = hcrt__alloc_add(device->ctx, p, bytes, device, true);
    if (st != HCRT_OK) {
        device->be->ops->host_free(device->be->state, p);
        return st;
    }
    *ptr = p;
    return HCRT_OK;
}

hcrt_status_t hcrt_mem_free_host(hcrt_device_t *device, void *ptr)
{
    HCRT_CHECK_ARG(NULL, device != NULL, "device", "is NULL");
    if (ptr == NULL)
        return HCRT_OK;
    hcrt__alloc_info_t was = {0};
    HCRT_CHECK(forget(device, ptr, true, __func__, &was));
    hcrt_status_t st = device->be->ops->host_free(device->be->state, ptr);
    if (st != HCRT_OK) {
        if (was.device != NULL)
            hcrt__alloc_add(device->ctx, ptr, was.size, device, true);
        return backend_error(device, st, "host_free");
    }
    return HCRT_OK;
}

hcrt_status_t hcrt_memset(hcrt_device_t *device, void *ptr, int value, size_t bytes)
{
    if (bytes == 0)
        return HCRT_OK;
    HCRT_CHECK_ARG(device ? device->ctx : NULL, ptr != NULL, "ptr", "is NULL");
    if (device == NULL) {
        memset(ptr, value, bytes);
        return HCRT_OK;
    }
    HCRT_CHECK(hcrt__mem_check(device->ctx, __func__, "ptr", ptr, bytes, device, false));
    HCRT_CHECK(hcrt__device_gate(device, "memset"));
    hcrt_status_t st = device->be->ops->memset(device->be->state, device->index, ptr, value, bytes, NULL);
    if (st != HCRT_OK)
        return backend_error(device, st, "memset");
    return HCRT_OK;
}

/* Device -> device of different backends, through pinned host memory of the source's backend. */
static hcrt_status_t copy_staged(hcrt_device_t *dd, void *dst, hcrt_device_t *sd, const void *src, size_t bytes)
{
    size_t chunk = bytes < STAGE_CHUNK ? bytes : STAGE_CHUNK;
    void *stage = NULL;
    hcrt_status_t st = sd->be->ops->host_alloc(sd->be->state, chunk, &stage);
    if (st != HCRT_OK)
        return backend_error(sd, st, "host_alloc (staging)");
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        st = sd->be->ops->memcpy(sd->be->state, sd->index, stage, (const char *)src + off, n, HCRT_COPY_D2H, NULL);
        if (st != HCRT_OK) {
            st = backend_error(sd, st, "memcpy D2H (staging)");
            break;
        }
        st = dd->be->ops->memcpy(dd->be->state, dd->index, (char *)dst + off, stage, n, HCRT_COPY_H2D, NULL);
        if (st != HCRT_OK) {
            st = backend_error(dd, st, "memcpy H2D (staging)");
            break;
        }
    }
    sd->be->ops->host_free(sd->be->state, stage);
    return st;
}

hcrt_status_t hcrt__copy(hcrt_device_t *dd, void *dst, hcrt_device_t *sd, const void *src, size_t bytes)
{
    hcrt_status_t st;
    bool dh = hcrt__device_is_host(dd), sh = hcrt__device_is_host(sd);
    HCRT_CHECK(hcrt__device_gate(sd, "memcpy (source)"));
    HCRT_CHECK(hcrt__device_gate(dd, "memcpy (destination)"));
    if (dh && sh) {
        memmove(dst, src, bytes);
        return HCRT_OK;
    }
    if (sh) {
        st = dd->be->ops->memcpy(dd->be->state, dd->index, dst, src, bytes, HCRT_COPY_H2D, NULL);
        return st == HCRT_OK ? HCRT_OK : backend_error(dd, st, "memcpy H2D");
    }
    if (dh) {
        st = sd->be->ops->memcpy(sd->be->state, sd->index, dst, src, bytes, HCRT_COPY_D2H, NULL);
        return st == HCRT_OK ? HCRT_OK : backend_error(sd, st, "memcpy D2H");
    }
    if (dd->be == sd->be) {
        if (dd->index == sd->index)
            st = dd->be->ops->memcpy(dd->be->state, dd->index, dst, src, bytes, HCRT_COPY_D2D, NULL);
        else
            st = dd->be->ops->memcpy_peer(dd->be->state, dd->index, dst, sd->index, src, bytes, NULL);
        return st == HCRT_OK ? HCRT_OK : backend_error(dd, st, dd->index == sd->index ? "memcpy D2D" : "memcpy_peer");
    }
    return copy_staged(dd, dst, sd, src, bytes);
}

hcrt_status_t hcrt_memcpy(hcrt_device_t *dst_device, void *dst, hcrt_device_t *src_device, const void *src,
                          size_t bytes)
{
    hcrt_context_t *ctx = dst_device ? dst_device->ctx : src_device ? src_device->ctx : NULL;
    HCRT_CHECK_ARG(ctx, dst_device == NULL || src_device == NULL || src_device->ctx == dst_device->ctx, "src_device",
                   "belongs to another context than dst_device");
    if (bytes == 0)
        return HCRT_OK;
    HCRT_CHECK_ARG(ctx, dst != NULL, "dst", "is NULL");
    HCRT_CHECK_ARG(ctx, src != NULL, "src", "is NULL");
    if (ctx == NULL) {
        memmove(dst, src, bytes); /* both NULL: host to host */
        return HCRT_OK;
    }
    HCRT_CHECK(hcrt__mem_check(ctx, __func__, "dst", dst, bytes, dst_device, false));
    HCRT_CHECK(hcrt__mem_check(ctx, __func__, "src", src, bytes, src_device, false));
    return hcrt__copy(dst_device ? dst_device : hcrt__host_device(ctx), dst,
                      src_device ? src_device : hcrt__host_device(ctx), src, bytes);
}

hcrt_status_t hcrt_memcpy_async(hcrt_device_t *dst_device, void *dst, hcrt_device_t *src_device, const void *src,
                                size_t bytes, hcrt_stream_t *stream)
{
    HCRT_CHECK_ARG(NULL, stream != NULL, "stream", "is NULL");
    hcrt_device_t *sd = stream->device;
    hcrt_context_t *ctx = sd->ctx;
    if (dst_device == NULL)
        dst_device = hcrt__host_device(ctx);
    if (src_device == NULL)
        src_device = hcrt__host_device(ctx);
    HCRT_CHECK_ARG(ctx, dst_device->ctx == ctx && src_device->ctx == ctx, "stream",
                   "belongs to another context than the devices");
    if (bytes == 0)
        return HCRT_OK;
    HCRT_CHECK_ARG(ctx, dst != NULL, "dst", "is NULL");
    HCRT_CHECK_ARG(ctx, src != NULL, "src", "is NULL");
    HCRT_CHECK(hcrt__mem_check(ctx, __func__, "dst", dst, bytes, dst_device, false));
    HCRT_CHECK(hcrt__mem_check(ctx, __func__, "src", src, bytes, src_device, false));
    bool dh = hcrt__device_is_host(dst_device), sh = hcrt__device_is_host(src_device);
    hcrt_copy_kind_t kind;
    if (dst_device == sd && src_device == sd)
        kind = HCRT_COPY_D2D;
    else if (dst_device == sd && sh)
        kind = HCRT_COPY_H2D;
    else if (src_device == sd && dh)
        kind = HCRT_COPY_D2H;
    else
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "hcrt_memcpy_async: argument 'stream' (on %s device %d) must belong to one side of the "
                           "copy and the other side must be the host or the same device; use hcrt_memcpy for "
                           "cross-device copies", sd->be->name, sd->index);
    HCRT_CHECK(hcrt__device_gate(src_device, "memcpy_async (source)"));
    HCRT_CHECK(hcrt__device_gate(dst_device, "memcpy_async (destination)"));
    hcrt_status_t st = sd->be->ops->memcpy(sd->be->state, sd->index, dst, src, bytes, kind, stream->bs);
    return st == HCRT_OK ? HCRT_OK : backend_error(sd, st, "memcpy_async");
}
