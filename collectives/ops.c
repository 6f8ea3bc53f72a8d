/*
 * collectives/ops.c - the public collective calls: argument checks, then one common path.
 *
 * Every call validates its arguments first and names the one that is wrong, on the calling rank, before
 * any communication (a rank with a bad argument returns at once; its peers then meet the deadline, or,
 * with HCRT_CHECK_CALLS=1, a mismatch). The common path numbers the call (the communicator's sequence
 * number), applies injected faults, announces entry for deadline reports, checks the call across ranks
 * in checking mode, builds the schedule (build.c) and runs it to completion or hands it to a request.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "runtime/fault/fault.h"
#include "runtime/trace.h"

static const char *const coll_names[HCRT__COLL_COUNT] = {
    "allreduce", "reduce",   "broadcast", "allgather", "allgatherv", "reduce_scatter",
    "alltoall",  "alltoallv", "gather",   "scatter",   "barrier"};

const char *hcrt__coll_name(hcrt__coll_t c)
{
    return (unsigned)c < HCRT__COLL_COUNT ? coll_names[c] : "?";
}

/* ---- argument checks ------------------------------------------------------------------------------ */

#define CHECK_COMM(func)                                                                             \
    do {                                                                                             \
        if (comm == NULL)                                                                            \
            return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "%s: argument 'comm' is NULL", (func));   \
    } while (0)

static hcrt_status_t check_dtype(const hcrt_comm_t *comm, const char *func, hcrt_dtype_t dtype)
{
    if (hcrt_dtype_size(dtype) == 0)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'dtype' is %d, not a valid hcrt_dtype_t",
                           func, (int)dtype);
    return HCRT_OK;
}

static hcrt_status_t check_op(const hcrt_comm_t *comm, const char *func, hcrt_op_t op)
{
    if ((unsigned)op >= HCRT_OP_COUNT)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'op' is %d, not a valid hcrt_op_t", func,
                           (int)op);
    return HCRT_OK;
}

/* count elements times `mult` (ranks) must fit in memory: a negative count cast to size_t lands here. */
static hcrt_status_t check_count(const hcrt_comm_t *comm, const char *func, const char *name, size_t count,
                                 size_t mult, hcrt_dtype_t dtype)
{
    size_t es = hcrt_dtype_size(dtype);
    if (count > (size_t)PTRDIFF_MAX / es / mult)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument '%s' is %zu: %zu elements of %zu bytes overflow the address space "
                           "(a negative count?)", func, name, count, count, es);
    return HCRT_OK;
}

/* Counts handed to MPI's own collectives must fit an int. */
static hcrt_status_t check_int(const hcrt_comm_t *comm, const char *func, const char *name, size_t v)
{
    if (v > INT_MAX)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' is %zu, above MPI's limit of %d",
                           func, name, v, INT_MAX);
    return HCRT_OK;
}

static hcrt_status_t check_ptr(const hcrt_comm_t *comm, const char *func, const char *name, const void *p,
                               size_t count)
{
    if (p == NULL && count > 0)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' is NULL but count is %zu", func,
                           name, count);
    return HCRT_OK;
}

static hcrt_status_t check_root(const hcrt_comm_t *comm, const char *func, int root)
{
    if (root < 0 || root >= comm->size)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'root' is %d, out of range for a communicator of %d ranks", func, root,
                           comm->size);
    return HCRT_OK;
}

static hcrt_status_t check_device(const hcrt_comm_t *comm, const char *func, const hcrt_device_t *device)
{
    if (device != NULL && device->ctx != comm->ctx)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'device' belongs to another context than the communicator", func);
    return HCRT_OK;
}

/* Checks a counts/displacements pair of a v-operation (nranks entries, each fitting an int). */
static hcrt_status_t check_v(const hcrt_comm_t *comm, const char *func, const char *cname, const size_t *counts,
                             const char *dname, const size_t *displs, const void *buf, const char *bname)
{
    if (counts == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' is NULL", func, cname);
    if (displs == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' is NULL", func, dname);
    size_t total = 0;
    for (int i = 0; i < comm->size; i++) {
        HCRT_CHECK(check_int(comm, func, cname, counts[i]));
        HCRT_CHECK(check_int(comm, func, dname, displs[i]));
        total += counts[i];
    }
    return check_ptr(comm, func, bname, buf, total);
}

/* ---- the common path ------------------------------------------------------------------------------ */

/* The result buffer of a call, for HCRT_FAULT corrupt (its first block for the v-operations, whose
 * receive extent may have gaps). */
static hcrt__result_t result_of(const hcrt__args_t *a, size_t bytes)
{
    size_t es = hcrt_dtype_size(a->dtype);
    hcrt__result_t r = {.device = a->device, .ptr = a->recv, .bytes = bytes};
    switch (a->coll) {
    case HCRT__COLL_REDUCE_SCATTER:
    case HCRT__COLL_SCATTER:
        r.bytes = a->count * es;
        break;
    case HCRT__COLL_ALLGATHERV:
    case HCRT__COLL_ALLTOALLV:
        r.ptr = (unsigned char *)a->recv + a->displs[0] * es;
        r.bytes = a->counts[0] * es;
        break;
    case HCRT__COLL_BARRIER:
        r.ptr = NULL;
        break;
    default:
        break;
    }
    if (r.ptr == NULL)
        r.bytes = 0;
    return r;
}

hcrt_status_t hcrt__result_fault(struct hcrt_comm *comm, const hcrt__result_t *r)
{
    if (!r->corrupt || r->bytes == 0)
        return HCRT_OK;
    hcrt_device_t *dev = r->device;
    if (dev == NULL)
        HCRT_CHECK(hcrt_device_host(comm->ctx, &dev));
    return hcrt__fault_flip_bit(dev, r->ptr, r->bytes);
}

/* The call failed on this rank: unless a deadline or a peer's failure already reported it during the
 * call, report it now (failure.c: poison, then the exit policy). */
static hcrt_status_t op_failed(hcrt_comm_t *comm, const char *name, uint64_t seq, size_t bytes, hcrt_status_t status)
{
    if (comm->failed != HCRT_OK)
        return status;
    return hcrt__comm_failed(comm, true, status, "%s #%llu (%zu bytes) failed: %s", name, (unsigned long long)seq,
                             bytes, hcrt_last_error(comm->ctx));
}

static hcrt_status_t run_op_untraced(hcrt_comm_t *comm, const char *func, hcrt__args_t *a, size_t bytes,
                                     hcrt_request_t **req)
{
    HCRT_CHECK(hcrt__check_extents(comm, func, a));
    const char *name = hcrt__coll_name(a->coll);
    HCRT_CHECK(hcrt__comm_usable(comm, func));
    uint64_t seq = ++comm->seq;
    hcrt__block_t *blocks[8];
    int nblocks = 0;
    hcrt__sched_t s;
    hcrt_status_t status;
    a->blocking = req == NULL;
    hcrt__result_t res = result_of(a, bytes);
    /* kill, hang and slow act here, before this rank announces its entry (so peers name it as late);
     * error and device_lost fail the call half way through its schedule, corrupt flips a bit of the
     * result once it completed. */
    hcrt__fault_kind_t fault = hcrt__fault_check(comm->ctx, "coll", name, (int64_t)seq);
    bool inject = fault == HCRT__FAULT_ERROR || fault == HCRT__FAULT_DEVICE_LOST;
    res.corrupt = fault == HCRT__FAULT_CORRUPT;
    hcrt__deadline_enter(comm, seq);
    if (comm->check_calls) {
        status = hcrt__check_call(comm, func, a, seq);
        if (status != HCRT_OK)
            return hcrt__is_usage_error(status) ? status : op_failed(comm, name, seq, bytes, status);
    }
    hcrt__sched_init(&s, comm, a->dtype, a->op, (int)(seq % HCRT__TAG_SPAN));
    if (inject) {
        s.fault_kind = fault;
        s.fault_dev = a->device;
    }
    if (a->blocking && comm->vendor != NULL) {
        /* The vendor-group path has schedules of its own: an injected failure fails before it. */
        status = inject ? hcrt__sched_inject(&s) : hcrt__vendor_run(comm, a, seq, bytes);
        a->algo = "vendor";
        if (status == HCRT_OK)
            status = hcrt__result_fault(comm, &res);
        if (status != HCRT_ERR_NOT_SUPPORTED)
            return status == HCRT_OK ? HCRT_OK : op_failed(comm, name, seq, bytes, status);
        a->algo = NULL;
    }
    if (req == NULL && !inject) {
        status = hcrt__fast_path(comm, a, seq);
        a->algo = "shm";
        if (status == HCRT_OK)
            status = hcrt__result_fault(comm, &res);
        if (status != HCRT_ERR_NOT_SUPPORTED)
            return status == HCRT_OK ? HCRT_OK : op_failed(comm, name, seq, bytes, status);
        a->algo = NULL;
    }
    status = hcrt__build(comm, a, &s, blocks, &nblocks);
    if (status == HCRT_OK) {
        s.fault_round = s.nrounds / 2;
        if (req != NULL)
            return hcrt__request_start(comm, &s, blocks, nblocks, name, seq, bytes, &res, req);
        status = inject && s.nrounds == 0 ? hcrt__sched_inject(&s) : hcrt__run_blocking(comm, &s, name, seq, bytes);
        if (status == HCRT_OK)
            status = hcrt__result_fault(comm, &res);
    }
    if (status != HCRT_OK) {
        /* Nothing the failed call used may serve another: MPI or the device may still write into it. */
        hcrt__sched_abandon(&s);
        for (int i = 0; i < nblocks; i++)
            hcrt__pool_quarantine(blocks[i]);
        hcrt__stage_quarantine(s.stage);
        status = op_failed(comm, name, seq, bytes, status);
    }
    for (int i = 0; i < nblocks; i++)
        hcrt__pool_put(blocks[i]);
    hcrt__stage_put(s.stage);
    hcrt__sched_fini(&s);
    return status;
}

/* The common path, with one complete trace event per call when HCRT_TRACE is set (runtime/trace.h):
 * when it is not, the cost is the one branch. A nonblocking call's event is written when it completes. */
static hcrt_status_t run_op(hcrt_comm_t *comm, const char *func, hcrt__args_t *a, size_t bytes,
                            hcrt_request_t **req)
{
    if (!hcrt__trace_on(comm->ctx))
        return run_op_untraced(comm, func, a, bytes, req);
    double start = hcrt__trace_clock();
    hcrt_status_t status = run_op_untraced(comm, func, a, bytes, req);
    hcrt__coll_trace_t t;
    hcrt__coll_trace_begin(comm, a, hcrt__coll_name(a->coll), bytes, start, &t);
    if (req != NULL && status == HCRT_OK)
        hcrt__request_trace(*req, &t);
    else
        hcrt__coll_trace_end(comm, &t, status);
    return status;
}

/* ---- allreduce, reduce ---------------------------------------------------------------------------- */

static hcrt_status_t allreduce(hcrt_comm_t *comm, const char *func, const void *send, void *recv, size_t count,
                               hcrt_dtype_t dtype, hcrt_op_t op, hcrt_device_t *device, hcrt_request_t **req)
{
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_op(comm, func, op));
    HCRT_CHECK(check_count(comm, func, "count", count, 1, dtype));
    HCRT_CHECK(check_ptr(comm, func, "recv", recv, count));
    if (send == HCRT_IN_PLACE)
        send = recv;
    HCRT_CHECK(check_ptr(comm, func, "send", send, count));
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_ALLREDUCE, .send = send, .recv = recv, .count = count, .dtype = dtype,
                      .op = op, .device = device};
    return run_op(comm, func, &a, count * hcrt_dtype_size(dtype), req);
}

hcrt_status_t hcrt_comm_allreduce(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                  hcrt_dtype_t dtype, hcrt_op_t op, hcrt_device_t *device)
{
    return allreduce(comm, __func__, send, recv, count, dtype, op, device, NULL);
}

hcrt_status_t hcrt_comm_iallreduce(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                   hcrt_dtype_t dtype, hcrt_op_t op, hcrt_device_t *device, hcrt_request_t **req)
{
    if (comm != NULL && req == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'req' is NULL", __func__);
    return allreduce(comm, __func__, send, recv, count, dtype, op, device, req);
}

hcrt_status_t hcrt_comm_reduce(hcrt_comm_t *comm, const void *send, void *recv, size_t count, hcrt_dtype_t dtype,
                               hcrt_op_t op, int root, hcrt_device_t *device)
{
    const char *func = __func__;
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_op(comm, func, op));
    HCRT_CHECK(check_root(comm, func, root));
    HCRT_CHECK(check_count(comm, func, "count", count, 1, dtype));
    bool is_root = comm->rank == root;
    if (is_root)
        HCRT_CHECK(check_ptr(comm, func, "recv", recv, count));
    if (send == HCRT_IN_PLACE) {
        if (!is_root)
            return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG,
                               "%s: argument 'send' is HCRT_IN_PLACE on rank %d, which is not the root", func,
                               comm->rank);
        send = recv;
    }
    HCRT_CHECK(check_ptr(comm, func, "send", send, count));
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_REDUCE, .send = send, .recv = is_root ? recv : NULL, .count = count,
                      .dtype = dtype, .op = op, .root = root, .device = device};
    return run_op(comm, func, &a, count * hcrt_dtype_size(dtype), NULL);
}

/* ---- broadcast ------------------------------------------------------------------------------------ */

static hcrt_status_t broadcast(hcrt_comm_t *comm, const char *func, void *buf, size_t count, hcrt_dtype_t dtype,
                               int root, hcrt_device_t *device, hcrt_request_t **req)
{
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_root(comm, func, root));
    HCRT_CHECK(check_count(comm, func, "count", count, 1, dtype));
    HCRT_CHECK(check_ptr(comm, func, "buf", buf, count));
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_BROADCAST, .send = buf, .recv = buf, .count = count, .dtype = dtype,
                      .root = root, .device = device};
    return run_op(comm, func, &a, count * hcrt_dtype_size(dtype), req);
}

hcrt_status_t hcrt_comm_broadcast(hcrt_comm_t *comm, void *buf, size_t count, hcrt_dtype_t dtype, int root,
                                  hcrt_device_t *device)
{
    return broadcast(comm, __func__, buf, count, dtype, root, device, NULL);
}

hcrt_status_t hcrt_comm_ibroadcast(hcrt_comm_t *comm, void *buf, size_t count, hcrt_dtype_t dtype, int root,
                                   hcrt_device_t *device, hcrt_request_t **req)
{
    if (comm != NULL && req == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'req' is NULL", __func__);
    return broadcast(comm, __func__, buf, count, dtype, root, device, req);
}

/* ---- allgather, reduce_scatter ----------------------------------------------------------------------- */

static hcrt_status_t allgather(hcrt_comm_t *comm, const char *func, const void *send, void *recv, size_t count,
                               hcrt_dtype_t dtype, hcrt_device_t *device, hcrt_request_t **req)
{
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_count(comm, func, "count", count, (size_t)comm->size, dtype));
    HCRT_CHECK(check_ptr(comm, func, "recv", recv, count));
    if (send == HCRT_IN_PLACE)
        send = (unsigned char *)recv + (size_t)comm->rank * count * hcrt_dtype_size(dtype);
    HCRT_CHECK(check_ptr(comm, func, "send", send, count));
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_ALLGATHER, .send = send, .recv = recv, .count = count, .dtype = dtype,
                      .device = device};
    return run_op(comm, func, &a, count * hcrt_dtype_size(dtype) * (size_t)comm->size, req);
}

hcrt_status_t hcrt_comm_allgather(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                  hcrt_dtype_t dtype, hcrt_device_t *device)
{
    return allgather(comm, __func__, send, recv, count, dtype, device, NULL);
}

hcrt_status_t hcrt_comm_iallgather(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                   hcrt_dtype_t dtype, hcrt_device_t *device, hcrt_request_t **req)
{
    if (comm != NULL && req == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'req' is NULL", __func__);
    return allgather(comm, __func__, send, recv, count, dtype, device, req);
}

static hcrt_status_t reduce_scatter(hcrt_comm_t *comm, const char *func, const void *send, void *recv,
                                    size_t recvcount, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_device_t *device,
                                    hcrt_request_t **req)
{
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_op(comm, func, op));
    HCRT_CHECK(check_count(comm, func, "recvcount", recvcount, (size_t)comm->size, dtype));
    HCRT_CHECK(check_ptr(comm, func, "recv", recv, recvcount));
    if (send == HCRT_IN_PLACE)
        send = recv;
    HCRT_CHECK(check_ptr(comm, func, "send", send, recvcount));
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_REDUCE_SCATTER, .send = send, .recv = recv, .count = recvcount,
                      .dtype = dtype, .op = op, .device = device};
    return run_op(comm, func, &a, recvcount * hcrt_dtype_size(dtype) * (size_t)comm->size, req);
}

hcrt_status_t hcrt_comm_reduce_scatter(hcrt_comm_t *comm, const void *send, void *recv, size_t recvcount,
                                       hcrt_dtype_t dtype, hcrt_op_t op, hcrt_device_t *device)
{
    return reduce_scatter(comm, __func__, send, recv, recvcount, dtype, op, device, NULL);
}

hcrt_status_t hcrt_comm_ireduce_scatter(hcrt_comm_t *comm, const void *send, void *recv, size_t recvcount,
                                        hcrt_dtype_t dtype, hcrt_op_t op, hcrt_device_t *device,
                                        hcrt_request_t **req)
{
    if (comm != NULL && req == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'req' is NULL", __func__);
    return reduce_scatter(comm, __func__, send, recv, recvcount, dtype, op, device, req);
}

/* ---- barrier ------------------------------------------------------------------------------------- */

hcrt_status_t hcrt_comm_barrier(hcrt_comm_t *comm)
{
    CHECK_COMM(__func__);
    hcrt__args_t a = {.coll = HCRT__COLL_BARRIER, .dtype = HCRT_U8};
    return run_op(comm, __func__, &a, 0, NULL);
}

hcrt_status_t hcrt_comm_ibarrier(hcrt_comm_t *comm, hcrt_request_t **req)
{
    CHECK_COMM(__func__);
    if (req == NULL)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'req' is NULL", __func__);
    hcrt__args_t a = {.coll = HCRT__COLL_BARRIER, .dtype = HCRT_U8};
    return run_op(comm, __func__, &a, 0, req);
}

/* ---- operations on MPI's own collectives ----------------------------------------------------------- */

hcrt_status_t hcrt_comm_allgatherv(hcrt_comm_t *comm, const void *send, void *recv, const size_t *counts,
                                   const size_t *displs, hcrt_dtype_t dtype, hcrt_device_t *device)
{
    const char *func = __func__;
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_v(comm, func, "counts", counts, "displs", displs, recv, "recv"));
    if (send == HCRT_IN_PLACE)
        send = NULL;
    else
        HCRT_CHECK(check_ptr(comm, func, "send", send, counts[comm->rank]));
    if (send == NULL && counts[comm->rank] == 0)
        send = recv; /* nothing of ours to place: not "in place" */
    HCRT_CHECK(check_device(comm, func, device));
    size_t total = 0;
    for (int i = 0; i < comm->size; i++)
        total += counts[i];
    hcrt__args_t a = {.coll = HCRT__COLL_ALLGATHERV, .send = send, .recv = recv, .counts = counts,
                      .displs = displs, .dtype = dtype, .device = device};
    return run_op(comm, func, &a, total * hcrt_dtype_size(dtype), NULL);
}

hcrt_status_t hcrt_comm_alltoall(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                 hcrt_dtype_t dtype, hcrt_device_t *device)
{
    const char *func = __func__;
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_count(comm, func, "count", count, (size_t)comm->size, dtype));
    HCRT_CHECK(check_int(comm, func, "count", count));
    HCRT_CHECK(check_ptr(comm, func, "send", send == HCRT_IN_PLACE ? NULL : send, count));
    HCRT_CHECK(check_ptr(comm, func, "recv", recv, count));
    HCRT_CHECK(check_device(comm, func, device));
    if (count > 0 && send == recv)
        return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'send' equals 'recv': alltoall is out of "
                           "place only", func);
    hcrt__args_t a = {.coll = HCRT__COLL_ALLTOALL, .send = send, .recv = recv, .count = count, .dtype = dtype,
                      .device = device};
    return run_op(comm, func, &a, count * hcrt_dtype_size(dtype) * (size_t)comm->size, NULL);
}

hcrt_status_t hcrt_comm_alltoallv(hcrt_comm_t *comm, const void *send, const size_t *sendcounts,
                                  const size_t *sdispls, void *recv, const size_t *recvcounts,
                                  const size_t *rdispls, hcrt_dtype_t dtype, hcrt_device_t *device)
{
    const char *func = __func__;
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_v(comm, func, "sendcounts", sendcounts, "sdispls", sdispls,
                       send == HCRT_IN_PLACE ? NULL : send, "send"));
    HCRT_CHECK(check_v(comm, func, "recvcounts", recvcounts, "rdispls", rdispls, recv, "recv"));
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_ALLTOALLV, .send = send, .recv = recv, .scounts = sendcounts,
                      .sdispls = sdispls, .counts = recvcounts, .displs = rdispls, .dtype = dtype,
                      .device = device};
    size_t total = 0;
    for (int i = 0; i < comm->size; i++)
        total += recvcounts[i];
    return run_op(comm, func, &a, total * hcrt_dtype_size(dtype), NULL);
}

hcrt_status_t hcrt_comm_gather(hcrt_comm_t *comm, const void *send, void *recv, size_t count, hcrt_dtype_t dtype,
                               int root, hcrt_device_t *device)
{
    const char *func = __func__;
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_root(comm, func, root));
    HCRT_CHECK(check_count(comm, func, "count", count, (size_t)comm->size, dtype));
    HCRT_CHECK(check_int(comm, func, "count", count));
    bool is_root = comm->rank == root;
    if (is_root)
        HCRT_CHECK(check_ptr(comm, func, "recv", recv, count));
    if (send == HCRT_IN_PLACE) {
        if (!is_root)
            return hcrt__error(comm->ctx, HCRT_ERR_INVALID_ARG,
                               "%s: argument 'send' is HCRT_IN_PLACE on rank %d, which is not the root", func,
                               comm->rank);
        send = NULL;
    } else {
        HCRT_CHECK(check_ptr(comm, func, "send", send, count));
    }
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_GATHER, .send = send, .recv = is_root ? recv : NULL, .count = count,
                      .dtype = dtype, .root = root, .device = device};
    if (a.send == NULL && count == 0)
        a.send = recv;
    return run_op(comm, func, &a, count * hcrt_dtype_size(dtype) * (size_t)comm->size, NULL);
}

hcrt_status_t hcrt_comm_scatter(hcrt_comm_t *comm, const void *send, void *recv, size_t count, hcrt_dtype_t dtype,
                                int root, hcrt_device_t *device)
{
    const char *func = __func__;
    CHECK_COMM(func);
    HCRT_CHECK(check_dtype(comm, func, dtype));
    HCRT_CHECK(check_root(comm, func, root));
    HCRT_CHECK(check_count(comm, func, "count", count, (size_t)comm->size, dtype));
    HCRT_CHECK(check_int(comm, func, "count", count));
    bool is_root = comm->rank == root;
    if (is_root)
        HCRT_CHECK(check_ptr(comm, func, "send", send, count));
    HCRT_CHECK(check_ptr(comm, func, "recv", recv, count));
    HCRT_CHECK(check_device(comm, func, device));
    hcrt__args_t a = {.coll = HCRT__COLL_SCATTER, .send = is_root ? send : NULL, .recv = recv, .count = count,
                      .dtype = dtype, .root = root, .device = device};
    return run_op(comm, func, &a, count * hcrt_dtype_size(dtype) * (size_t)comm->size, NULL);
}
