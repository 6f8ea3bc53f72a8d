/*
 * collectives/p2p.c - hcrt_comm_send / hcrt_comm_recv.
 *
 * They travel on the communicator's second MPI duplicate, so a user tag can never match a collective's
 * message. Device buffers go through a pooled pinned host buffer. Messages above 1 GiB are cut into
 * 1 GiB pieces on both sides alike (MPI counts are ints). The deadline applies to each call.
 */
#include <limits.h>

#include "collectives/coll.h"

#define PIECE ((size_t)1 << 30)

static hcrt_status_t check(hcrt_comm_t *comm, const char *func, const void *buf, size_t count, hcrt_dtype_t dtype,
                           int peer, int tag, hcrt_device_t *device)
{
    if (comm == NULL)
        return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "%s: argument 'comm' is NULL", func);
    size_t es = hcrt_dtype_size(dtype);
    if (es == 0)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'dtype' is %d, not a valid hcrt_dtype_t",
                           func, (int)dtype);
    if (count > (size_t)PTRDIFF_MAX / es)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'count' is %zu, which overflows (a "
                           "negative count?)", func, count);
    if (buf == NULL && count > 0)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'buf' is NULL but count is %zu", func,
                           count);
    if (peer < 0 || peer >= comm->size || comm->mpi == MPI_COMM_NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'peer' is %d, out of range for a "
                           "communicator of %d ranks", func, peer, comm->size);
    if (tag < 0 || tag > 32767)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'tag' is %d, outside 0..32767", func, tag);
    if (device != NULL && device->ctx != comm->ctx)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'device' belongs to another context",
                           func);
    return hcrt__mem_check(comm->ctx, func, "buf", buf, count * es, device, false);
}

/* Waits for one request with the deadline; returns its status. On failure the request is buried
 * (failure.c) and the communicator poisoned. */
static hcrt_status_t wait_req(hcrt_comm_t *comm, MPI_Request *req, MPI_Status *st, const char *op, size_t bytes,
                              int peer)
{
    hcrt__waiter_t w;
    unsigned spins = 0, polls = 0;
    hcrt__waiter_init(&w, op, 0, bytes, peer, NULL);
    for (;;) {
        int flag = 0;
        int rc = MPI_Test(req, &flag, st), cls = 0;
        if (rc != MPI_SUCCESS && MPI_Error_class(rc, &cls) == MPI_SUCCESS && cls == MPI_ERR_TRUNCATE)
            return hcrt__error(comm->ctx, HCRT_ERR_MISMATCH, "hcrt_comm_recv: rank %d sent more than the %zu bytes "
                               "expected", peer, bytes); /* the caller's mistake: the request is complete */
        if (rc != MPI_SUCCESS) {
            hcrt__comm_bury(comm, req);
            return hcrt__comm_failed(comm, true, HCRT_ERR_MPI, "hcrt_comm_%s with rank %d: MPI_Test failed (rc %d)", op,
                                     peer, rc);
        }
        if (flag)
            return HCRT_OK;
        if (comm->active != NULL)
            hcrt__progress_requests(comm);
        if ((++polls & 31) == 0) {
            hcrt_status_t status = hcrt__deadline_poll(comm, &w);
            if (status != HCRT_OK) {
                hcrt__comm_bury(comm, req);
                return status;
            }
        }
        hcrt__poll_relax(&spins);
    }
}

static hcrt_status_t transfer(hcrt_comm_t *comm, bool sending, void *buf, size_t bytes, int peer, int tag,
                              hcrt_device_t *device)
{
    const char *op = sending ? "send" : "recv";
    bool dev = !hcrt__mpi_takes(device);
    HCRT_CHECK(hcrt__comm_usable(comm, sending ? "hcrt_comm_send" : "hcrt_comm_recv"));
    hcrt__block_t *blk = NULL;
    hcrt_status_t status = HCRT_OK;
    hcrt_device_t *host = NULL;
    if (dev) {
        HCRT_CHECK(hcrt_device_host(comm->ctx, &host));
        HCRT_CHECK(hcrt__pool_get(comm, device, bytes < PIECE ? bytes : PIECE, &blk));
    }
    size_t off = 0;
    do {
        size_t n = bytes - off < PIECE ? bytes - off : PIECE;
        unsigned char *p = (unsigned char *)buf + off;
        void *io = dev ? blk->ptr : p;
        MPI_Request req;
        MPI_Status st;
        if (sending && dev)
            HCRT_CHECK_GOTO(hcrt_memcpy(host, io, device, p, n), status, out);
        int rc = sending ? MPI_Isend(io, (int)n, MPI_BYTE, peer, tag, comm->p2p, &req)
                         : MPI_Irecv(io, (int)n, MPI_BYTE, peer, tag, comm->p2p, &req);
        if (rc != MPI_SUCCESS) {
            status = hcrt__comm_failed(comm, true, HCRT_ERR_MPI, "hcrt_comm_%s: MPI call failed (peer %d, rc %d)", op,
                                       peer, rc);
            goto out;
        }
        status = wait_req(comm, &req, &st, op, bytes, peer);
        if (status != HCRT_OK) {
            hcrt__pool_quarantine(blk); /* MPI may still write the staging block */
            goto out;
        }
        if (!sending) {
            int got = 0;
            MPI_Get_count(&st, MPI_BYTE, &got);
            if ((size_t)got != n) {
                status = hcrt__error(comm->ctx, HCRT_ERR_MISMATCH, "hcrt_comm_recv: rank %d sent %d bytes (tag %d) "
                                     "where %zu were expected", peer, got, tag, n);
                goto out;
            }
            if (dev)
                HCRT_CHECK_GOTO(hcrt_memcpy(device, p, host, io, n), status, out);
        }
        off += n;
    } while (off < bytes);
out:
    hcrt__pool_put(blk);
    return status;
}

hcrt_status_t hcrt_comm_send(hcrt_comm_t *comm, const void *buf, size_t count, hcrt_dtype_t dtype, int peer, int tag,
                             hcrt_device_t *device)
{
    HCRT_CHECK(check(comm, __func__, buf, count, dtype, peer, tag, device));
    return transfer(comm, true, (void *)buf, count * hcrt_dtype_size(dtype), peer, tag, device);
}

hcrt_status_t hcrt_comm_recv(hcrt_comm_t *comm, void *buf, size_t count, hcrt_dtype_t dtype, int peer, int tag,
                             hcrt_device_t *device)
{
    HCRT_CHECK(check(comm, __func__, buf, count, dtype, peer, tag, device));
    return transfer(comm, false, buf, count * hcrt_dtype_size(dtype), peer, tag, device);
}
