/*
 * collectives/vendor.c - the vendor fast path (NCCL, RCCL) inside a group of same-backend ranks.
 *
 * A communicator is eligible when every rank's context device belongs to one backend whose plugin offers
 * the optional coll_* ops and advertises HCRT_CAP_VENDOR_COLL (the rank table makes this a decision all
 * ranks take alike). Each blocking allreduce on such a communicator first agrees, with a one-int
 * MPI_Allreduce, that every rank passes memory of its context device; only then is the vendor's
 * allreduce used (its communicator is created on first use from a unique id broadcast by rank 0), else
 * the call is staged like any other. AVG is a vendor SUM followed by the device's scale kernel.
 * Nothing here runs on a machine without such a device.
 */
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"

typedef struct vendor {
    hcrt_device_t *dev;
    hcrt_backend_coll_t *coll;
    hcrt_stream_t *stream;
} vendor_t;

static bool has_coll_ops(const hcrt_backend_v1_t *ops)
{
    return HCRT_BACKEND_HAS_OP(ops, coll_get_unique_id) && HCRT_BACKEND_HAS_OP(ops, coll_init) &&
           HCRT_BACKEND_HAS_OP(ops, coll_destroy) && HCRT_BACKEND_HAS_OP(ops, coll_allreduce);
}

void hcrt__vendor_setup(struct hcrt_comm *c)
{
    hcrt_device_t *dev = c->ctx->selected;
    if (c->size < 2 || dev == NULL || hcrt__device_is_host(dev) || !(dev->bprops.caps & HCRT_CAP_VENDOR_COLL) ||
        !has_coll_ops(dev->be->ops) || c->algo != HCRT__ALGO_AUTO)
        return;
    for (int r = 0; r < c->size; r++)
        if (strcmp(c->info[r].backend, c->info[0].backend) != 0)
            return;
    vendor_t *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return;
    v->dev = dev;
    c->vendor = v;
}

static hcrt_status_t vendor_init(struct hcrt_comm *c, vendor_t *v)
{
    const hcrt_backend_v1_t *ops = v->dev->be->ops;
    size_t idsize = ops->coll_unique_id_size;
    unsigned char *id = calloc(1, idsize ? idsize : 1);
    hcrt_status_t status = HCRT_OK;
    if (id == NULL)
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for the vendor id");
    if (c->rank == 0)
        status = ops->coll_get_unique_id(v->dev->be->state, id);
    int ok = status == HCRT_OK;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_LAND, c->mpi);
    if (ok && MPI_Bcast(id, (int)idsize, MPI_BYTE, 0, c->mpi) != MPI_SUCCESS)
        ok = 0;
    if (ok)
        status = ops->coll_init(v->dev->be->state, v->dev->index, id, c->size, c->rank, &v->coll);
    if (ok && status == HCRT_OK)
        status = hcrt_stream_create(v->dev, &v->stream);
    free(id);
    if (!ok || status != HCRT_OK)
        return hcrt__error(c->ctx, status != HCRT_OK ? status : HCRT_ERR_BACKEND,
                           "collectives: the %s vendor collectives could not be set up (%s)", v->dev->be->name,
                           ops->last_error(v->dev->be->state));
    return HCRT_OK;
}

hcrt_status_t hcrt__vendor_allreduce(struct hcrt_comm *c, const hcrt__args_t *a)
{
    vendor_t *v = c->vendor;
    int mine = a->device == v->dev, all = 0;
    if (MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_LAND, c->mpi) != MPI_SUCCESS)
        return hcrt__error(c->ctx, HCRT_ERR_MPI, "collectives: MPI_Allreduce (vendor path agreement) failed");
    if (!all)
        return HCRT_ERR_NOT_SUPPORTED;
    if (v->coll == NULL)
        HCRT_CHECK(vendor_init(c, v));
    const hcrt_backend_v1_t *ops = v->dev->be->ops;
    hcrt_op_t op = a->op == HCRT_OP_AVG ? HCRT_OP_SUM : a->op;
    hcrt_status_t status = ops->coll_allreduce(v->dev->be->state, v->coll, a->send, a->recv, a->count, a->dtype,
                                               op, v->stream->bs);
    if (status != HCRT_OK)
        return hcrt__error(c->ctx, status, "collectives: %s vendor allreduce failed: %s", v->dev->be->name,
                           ops->last_error(v->dev->be->state));
    if (a->op == HCRT_OP_AVG)
        HCRT_CHECK(hcrt_scale(v->dev, a->recv, a->count, a->dtype, 1.0 / c->size, v->stream));
    return hcrt_stream_sync(v->stream);
}

void hcrt__vendor_destroy(struct hcrt_comm *c)
{
    vendor_t *v = c->vendor;
    if (v == NULL)
        return;
    if (v->coll != NULL)
        v->dev->be->ops->coll_destroy(v->dev->be->state, v->coll);
    hcrt_stream_destroy(v->stream);
    free(v);
    c->vendor = NULL;
}
