/*
 * runtime/balance/grads.c - hcrt_comm_allreduce_grads: gradient sums reduced with the sample count.
 *
 * The count goes first, in its own small allreduce (8 bytes: a few microseconds beside the gradients),
 * so that every buffer can be scaled right after its own reduction when the caller asks for the mean.
 * Buffers are reduced one by one with HCRT_OP_SUM, each on its own device: the collectives stage device
 * memory as they do for any call.
 */
#include "collectives/coll.h"
#include "hcrt/balance.h"

hcrt_status_t hcrt_comm_allreduce_grads(hcrt_comm_t *comm, const hcrt_buffer_t *bufs, size_t n, int64_t local_samples,
                                        int64_t *global_samples, unsigned flags)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    hcrt_context_t *ctx = comm->ctx;
    HCRT_CHECK_ARG(ctx, bufs != NULL || n == 0, "bufs", "is NULL but n is not 0");
    HCRT_CHECK_ARG(ctx, local_samples >= 0, "local_samples", "is negative");
    if (flags & ~HCRT_GRADS_MEAN)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "hcrt_comm_allreduce_grads: argument 'flags' has unknown bits "
                           "0x%x",
                           flags & ~HCRT_GRADS_MEAN);
    for (size_t i = 0; i < n; i++) {
        const hcrt_buffer_t *b = &bufs[i];
        if (b->dtype != HCRT_F32 && b->dtype != HCRT_F64 && b->dtype != HCRT_F16 && b->dtype != HCRT_BF16)
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                               "hcrt_comm_allreduce_grads: argument 'bufs[%zu].dtype' is "
                               "%s; gradients are floating point (f32, f64, f16, bf16)",
                               i, hcrt_dtype_name(b->dtype) ? hcrt_dtype_name(b->dtype) : "invalid");
        if (b->ptr == NULL && b->count > 0)
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                               "hcrt_comm_allreduce_grads: argument 'bufs[%zu].ptr' is "
                               "NULL but its count is %zu",
                               i, b->count);
        if (b->device != NULL && b->device->ctx != ctx)
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                               "hcrt_comm_allreduce_grads: argument 'bufs[%zu].device' "
                               "belongs to another context than the communicator",
                               i);
    }
    int64_t total = local_samples;
    HCRT_CHECK(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, &total, 1, HCRT_I64, HCRT_OP_SUM, NULL));
    for (size_t i = 0; i < n; i++) {
        const hcrt_buffer_t *b = &bufs[i];
        if (b->count == 0)
            continue;
        HCRT_CHECK(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, b->ptr, b->count, b->dtype, HCRT_OP_SUM, b->device));
        if ((flags & HCRT_GRADS_MEAN) && total > 0) {
            hcrt_device_t *dev = b->device;
            if (dev == NULL)
                HCRT_CHECK(hcrt_device_host(ctx, &dev));
            HCRT_CHECK(hcrt_scale(dev, b->ptr, b->count, b->dtype, 1.0 / (double)total, NULL));
        }
    }
    if (global_samples != NULL)
        *global_samples = total;
    return HCRT_OK;
}
