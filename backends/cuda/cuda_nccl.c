/*
 * backends/cuda/cuda_nccl.c - the optional vendor collective fast path of the cuda plugin, on NCCL.
 *
 * Built only when meson finds NCCL (HCRT_HAVE_NCCL). The runtime makes the unique id on one rank,
 * broadcasts it over MPI and calls coll_init on every rank of a same-backend group; afterwards the
 * group's collectives on device buffers go straight to NCCL. A stream NULL means "synchronous": the
 * communicator's own stream is used and waited for, so NCCL never touches the legacy default stream.
 */
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_plugin.h"

_Static_assert(sizeof(ncclUniqueId) == NCCL_UNIQUE_ID_BYTES, "coll_unique_id_size is the NCCL id size");

struct hcrt_backend_coll {
    ncclComm_t comm;
    int dev;
    int nranks;
    cudaStream_t own; /* for calls without a stream */
    struct hcrt_backend_coll *prev, *next;
};

static hcrt_status_t nccl_status_of(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess:
        return HCRT_OK;
    case ncclInvalidArgument:
    case ncclInvalidUsage:
        return HCRT_ERR_INVALID_ARG;
    case ncclInProgress:
        return HCRT_ERR_IN_PROGRESS;
    default:
        return HCRT_ERR_BACKEND; /* unhandled CUDA error, system, internal, remote error */
    }
}

/* Records an NCCL failure with NCCL's own detail (ncclGetLastError) when it has any. */
static hcrt_status_t nccl_fail(const struct hcrt_backend_coll *c, int dev, ncclResult_t r, const char *call)
{
    const char *detail = ncclGetLastError(c ? c->comm : NULL);
    hcrt_gpu_set_error("cuda device %d: %s: %s (NCCL error %d)%s%s", dev, call, ncclGetErrorString(r), (int)r,
                       detail && *detail ? ": " : "", detail ? detail : "");
    return nccl_status_of(r);
}

static bool nccl_dtype(hcrt_dtype_t dtype, ncclDataType_t *out)
{
    static const ncclDataType_t map[HCRT_DTYPE_COUNT] = {
        [HCRT_I8] = ncclInt8,     [HCRT_U8] = ncclUint8,    [HCRT_I32] = ncclInt32,   [HCRT_U32] = ncclUint32,
        [HCRT_I64] = ncclInt64,   [HCRT_U64] = ncclUint64,  [HCRT_F16] = ncclFloat16, [HCRT_BF16] = ncclBfloat16,
        [HCRT_F32] = ncclFloat32, [HCRT_F64] = ncclFloat64,
    };
    if ((unsigned)dtype >= (unsigned)HCRT_DTYPE_COUNT)
        return false;
    *out = map[dtype];
    return true;
}

static bool nccl_op(hcrt_op_t op, ncclRedOp_t *out)
{
    static const ncclRedOp_t map[HCRT_OP_COUNT] = {
        [HCRT_OP_SUM] = ncclSum, [HCRT_OP_PROD] = ncclProd, [HCRT_OP_MIN] = ncclMin,
        [HCRT_OP_MAX] = ncclMax, [HCRT_OP_AVG] = ncclAvg,
    };
    if ((unsigned)op >= (unsigned)HCRT_OP_COUNT)
        return false;
    *out = map[op];
    return true;
}

hcrt_status_t hcrt_cuda_coll_get_unique_id(void *state, void *id)
{
    ncclUniqueId uid;
    ncclResult_t r;

    if (!state)
        return hcrt_gpu_arg_error("coll_get_unique_id: argument 'state' is NULL");
    if (!id)
        return hcrt_gpu_arg_error("coll_get_unique_id: argument 'id' is NULL");
    if ((r = ncclGetUniqueId(&uid)) != ncclSuccess)
        return nccl_fail(NULL, -1, r, "ncclGetUniqueId");
    memcpy(id, &uid, sizeof uid);
    return HCRT_OK;
}

hcrt_status_t hcrt_cuda_coll_init(void *state, int dev, const void *id, int nranks, int rank,
                                  hcrt_backend_coll_t **coll)
{
    gpu_state_t *st = state;
    struct hcrt_backend_coll *c;
    ncclUniqueId uid;
    hcrt_status_t status;
    ncclResult_t r;
    cudaError_t e;

    if (!st)
        return hcrt_gpu_arg_error("coll_init: argument 'state' is NULL");
    if (!id)
        return hcrt_gpu_arg_error("coll_init: argument 'id' is NULL");
    if (!coll)
        return hcrt_gpu_arg_error("coll_init: argument 'coll' is NULL");
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return hcrt_gpu_arg_error("coll_init: argument 'rank' (%d) out of range for %d rank(s)", rank, nranks);
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    c = calloc(1, sizeof *c);
    if (!c) {
        hcrt_gpu_set_error("cuda: out of host memory");
        return HCRT_ERR_NO_MEMORY;
    }
    c->dev = dev;
    c->nranks = nranks;
    if ((e = cudaStreamCreateWithFlags(&c->own, cudaStreamNonBlocking)) != cudaSuccess) {
        status = hcrt_gpu_fail(st, dev, e, "cudaStreamCreateWithFlags");
        goto err_free;
    }
    memcpy(&uid, id, sizeof uid);
    if ((r = ncclCommInitRank(&c->comm, nranks, uid, rank)) != ncclSuccess) {
        status = nccl_fail(NULL, dev, r, "ncclCommInitRank");
        goto err_stream;
    }
    pthread_mutex_lock(&st->lock);
    c->prev = NULL;
    c->next = st->colls;
    if (st->colls)
        st->colls->prev = c;
    st->colls = c;
    pthread_mutex_unlock(&st->lock);
    *coll = c;
    return HCRT_OK;

err_stream:
    (void)cudaStreamDestroy(c->own);
err_free:
    free(c);
    return status;
}

static void nccl_unlink(gpu_state_t *st, struct hcrt_backend_coll *c)
{
    pthread_mutex_lock(&st->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        st->colls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&st->lock);
}

/* Flushes outstanding work (ncclCommFinalize), then frees the communicator. */
hcrt_status_t hcrt_cuda_coll_destroy(void *state, hcrt_backend_coll_t *coll)
{
    gpu_state_t *st = state;
    hcrt_status_t status = HCRT_OK;
    ncclResult_t r;

    if (!st)
        return hcrt_gpu_arg_error("coll_destroy: argument 'state' is NULL");
    if (!coll)
        return HCRT_OK;
    nccl_unlink(st, coll);
    if (cudaSetDevice(coll->dev) != cudaSuccess)
        (void)cudaGetLastError();
    if ((r = ncclCommFinalize(coll->comm)) != ncclSuccess) {
        status = nccl_fail(coll, coll->dev, r, "ncclCommFinalize");
        (void)ncclCommAbort(coll->comm);
    } else if ((r = ncclCommDestroy(coll->comm)) != ncclSuccess) {
        status = nccl_fail(coll, coll->dev, r, "ncclCommDestroy");
    }
    (void)cudaStreamDestroy(coll->own);
    free(coll);
    return status;
}

hcrt_status_t hcrt_cuda_coll_abort(void *state, hcrt_backend_coll_t *coll)
{
    gpu_state_t *st = state;
    hcrt_status_t status = HCRT_OK;
    ncclResult_t r;

    if (!st)
        return hcrt_gpu_arg_error("coll_abort: argument 'state' is NULL");
    if (!coll)
        return HCRT_OK;
    nccl_unlink(st, coll);
    if (cudaSetDevice(coll->dev) != cudaSuccess)
        (void)cudaGetLastError();
    if ((r = ncclCommAbort(coll->comm)) != ncclSuccess)
        status = nccl_fail(NULL, coll->dev, r, "ncclCommAbort");
    (void)cudaStreamDestroy(coll->own);
    free(coll);
    return status;
}

void hcrt_gpu_release_colls(gpu_state_t *st)
{
    /* At finalize the peers may already be gone: abort, never wait. */
    while (st->colls)
        (void)hcrt_cuda_coll_abort(st, st->colls);
}

/* Common prologue of the collectives: device current, stream resolved (NULL: the coll's own stream). */
static hcrt_status_t nccl_begin(gpu_state_t *st, struct hcrt_backend_coll *c, hcrt_backend_stream_t *stream,
                                const char *what, cudaStream_t *s)
{
    hcrt_status_t status;
    if (!st)
        return hcrt_gpu_arg_error("%s: argument 'state' is NULL", what);
    if (!c)
        return hcrt_gpu_arg_error("%s: argument 'coll' is NULL", what);
    if (stream && stream->dev != c->dev)
        return hcrt_gpu_arg_error("%s: argument 'stream' belongs to device %d, the communicator to device %d", what,
                                  stream->dev, c->dev);
    if ((status = hcrt_gpu_enter(st, c->dev)) != HCRT_OK)
        return status;
    *s = stream ? stream->s : c->own;
    return HCRT_OK;
}

static hcrt_status_t nccl_end(gpu_state_t *st, struct hcrt_backend_coll *c, hcrt_backend_stream_t *stream,
                              ncclResult_t r, const char *call)
{
    if (r != ncclSuccess)
        return nccl_fail(c, c->dev, r, call);
    return hcrt_gpu_finish(st, c->dev, c->own, stream == NULL);
}

hcrt_status_t hcrt_cuda_coll_allreduce(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                       size_t count, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    ncclDataType_t t;
    ncclRedOp_t o;
    cudaStream_t s;
    hcrt_status_t status;

    if (!nccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_allreduce: argument 'dtype' (%d) is not a data type", (int)dtype);
    if (!nccl_op(op, &o))
        return hcrt_gpu_arg_error("coll_allreduce: argument 'op' (%d) is not a reduction op", (int)op);
    if ((status = nccl_begin(state, coll, stream, "coll_allreduce", &s)) != HCRT_OK)
        return status;
    return nccl_end(state, coll, stream, ncclAllReduce(send, recv, count, t, o, coll->comm, s), "ncclAllReduce");
}

hcrt_status_t hcrt_cuda_coll_reduce_scatter(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                            size_t count, hcrt_dtype_t dtype, hcrt_op_t op,
                                            hcrt_backend_stream_t *stream)
{
    ncclDataType_t t;
    ncclRedOp_t o;
    cudaStream_t s;
    hcrt_status_t status;

    if (!nccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_reduce_scatter: argument 'dtype' (%d) is not a data type", (int)dtype);
    if (!nccl_op(op, &o))
        return hcrt_gpu_arg_error("coll_reduce_scatter: argument 'op' (%d) is not a reduction op", (int)op);
    if ((status = nccl_begin(state, coll, stream, "coll_reduce_scatter", &s)) != HCRT_OK)
        return status;
    return nccl_end(state, coll, stream, ncclReduceScatter(send, recv, count, t, o, coll->comm, s),
                    "ncclReduceScatter");
}

hcrt_status_t hcrt_cuda_coll_allgather(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                       size_t count, hcrt_dtype_t dtype, hcrt_backend_stream_t *stream)
{
    ncclDataType_t t;
    cudaStream_t s;
    hcrt_status_t status;

    if (!nccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_allgather: argument 'dtype' (%d) is not a data type", (int)dtype);
    if ((status = nccl_begin(state, coll, stream, "coll_allgather", &s)) != HCRT_OK)
        return status;
    return nccl_end(state, coll, stream, ncclAllGather(send, recv, count, t, coll->comm, s), "ncclAllGather");
}

hcrt_status_t hcrt_cuda_coll_broadcast(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                       size_t count, hcrt_dtype_t dtype, int root, hcrt_backend_stream_t *stream)
{
    ncclDataType_t t;
    cudaStream_t s;
    hcrt_status_t status;

    if (!nccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_broadcast: argument 'dtype' (%d) is not a data type", (int)dtype);
    if (coll && (root < 0 || root >= coll->nranks))
        return hcrt_gpu_arg_error("coll_broadcast: argument 'root' (%d) out of range for %d rank(s)", root,
                                  coll->nranks);
    if ((status = nccl_begin(state, coll, stream, "coll_broadcast", &s)) != HCRT_OK)
        return status;
    return nccl_end(state, coll, stream, ncclBroadcast(send, recv, count, t, root, coll->comm, s), "ncclBroadcast");
}
