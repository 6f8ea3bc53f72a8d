/*
 * tests/plugin/mock_nccl.c - NCCL's collective API over MPI and host memory, for testing the cuda plugin's
 * vendor collective path (backends/cuda/cuda_nccl.c) on machines without a GPU.
 *
 * Linked, with mock_cudart.c, into a copy of the cuda plugin built with HCRT_HAVE_NCCL
 * (tests/plugin/nccl_mock/). The mock "device" memory is host memory, so each collective can be carried
 * by MPI: a communicator is MPI_COMM_WORLD split by the unique id (every rank of the world takes part in
 * ncclCommInitRank, as in hcrt's use), allreduce gathers every rank's contribution and reduces them in
 * rank order with the host kernels (so results are deterministic and every dtype works, f16 and bf16
 * included), ncclAvg divides the sum by the rank count with the host scale kernel. The number of calls is
 * exported (hcrt_mock_nccl_calls) so a test can see that the vendor path was really taken.
 */
#include <mpi.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/host_kernels.h"

struct ncclComm {
    MPI_Comm mpi;
    int nranks, rank;
};

/* Collective calls made through this mock (not thread-safe: the tests are single-threaded). */
__attribute__((visibility("default"))) unsigned long hcrt_mock_nccl_calls;

static int mock_seq;

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    memset(id, 0, sizeof *id);
    /* Only the color of the split matters to this mock; make it differ per call. */
    int color = ++mock_seq;
    memcpy(id->internal, &color, sizeof color);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)
{
    int color, size;
    memcpy(&color, id.internal, sizeof color);
    struct ncclComm *c = calloc(1, sizeof *c);
    if (!c)
        return ncclSystemError;
    if (MPI_Comm_split(MPI_COMM_WORLD, color, rank, &c->mpi) != MPI_SUCCESS) {
        free(c);
        return ncclSystemError;
    }
    MPI_Comm_size(c->mpi, &size);
    if (size != nranks) {
        MPI_Comm_free(&c->mpi);
        free(c);
        return ncclInvalidArgument;
    }
    c->nranks = nranks;
    c->rank = rank;
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm)
{
    return MPI_Barrier(comm->mpi) == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    MPI_Comm_free(&comm->mpi);
    free(comm);
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    return ncclCommDestroy(comm);
}

const char *ncclGetErrorString(ncclResult_t result)
{
    switch (result) {
    case ncclSuccess:
        return "no error";
    case ncclInvalidArgument:
        return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclSystemError:
        return "unhandled system error";
    default:
        return "mock NCCL error";
    }
}

const char *ncclGetLastError(ncclComm_t comm)
{
    (void)comm;
    return "";
}

static bool mock_dtype(ncclDataType_t t, hcrt_dtype_t *out, size_t *size)
{
    static const hcrt_dtype_t map[] = {HCRT_I8,  HCRT_U8,  HCRT_I32, HCRT_U32, HCRT_I64,
                                       HCRT_U64, HCRT_F16, HCRT_F32, HCRT_F64, HCRT_BF16};
    static const size_t sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2};
    if ((unsigned)t >= sizeof map / sizeof map[0])
        return false;
    *out = map[t];
    *size = sizes[t];
    return true;
}

static bool mock_op(ncclRedOp_t o, hcrt_op_t *out)
{
    switch (o) {
    case ncclSum:
        *out = HCRT_OP_SUM;
        return true;
    case ncclProd:
        *out = HCRT_OP_PROD;
        return true;
    case ncclMax:
        *out = HCRT_OP_MAX;
        return true;
    case ncclMin:
        *out = HCRT_OP_MIN;
        return true;
    case ncclAvg:
        *out = HCRT_OP_AVG;
        return true;
    default:
        return false;
    }
}

/* recv = op over ranks (in rank order) of send, count elements. */
static ncclResult_t mock_reduce_all(const void *send, void *recv, size_t count, ncclDataType_t t, ncclRedOp_t o,
                                    ncclComm_t comm)
{
    hcrt_dtype_t dt;
    hcrt_op_t op;
    size_t es;
    if (!mock_dtype(t, &dt, &es) || !mock_op(o, &op) || count > (size_t)INT32_MAX / es)
        return ncclInvalidArgument;
    size_t bytes = count * es;
    unsigned char *all = malloc(bytes * (size_t)comm->nranks + 1);
    if (!all)
        return ncclSystemError;
    if (MPI_Allgather(send, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, comm->mpi) != MPI_SUCCESS) {
        free(all);
        return ncclSystemError;
    }
    for (int r = 1; r < comm->nranks; r++)
        hcrt__host_reduce(all, all + (size_t)r * bytes, count, dt, op);
    if (op == HCRT_OP_AVG)
        hcrt__host_scale(all, count, dt, 1.0 / comm->nranks);
    memcpy(recv, all, bytes);
    free(all);
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream)
{
    (void)stream;
    hcrt_mock_nccl_calls++;
    return mock_reduce_all(send, recv, count, datatype, op, comm);
}

ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t recvcount, ncclDataType_t datatype, ncclRedOp_t op,
                               ncclComm_t comm, cudaStream_t stream)
{
    hcrt_dtype_t dt;
    size_t es;
    (void)stream;
    hcrt_mock_nccl_calls++;
    if (!mock_dtype(datatype, &dt, &es))
        return ncclInvalidArgument;
    size_t total = recvcount * (size_t)comm->nranks;
    unsigned char *full = malloc(total * es + 1);
    if (!full)
        return ncclSystemError;
    ncclResult_t r = mock_reduce_all(send, full, total, datatype, op, comm);
    if (r == ncclSuccess)
        memcpy(recv, full + (size_t)comm->rank * recvcount * es, recvcount * es);
    free(full);
    return r;
}

ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount, ncclDataType_t datatype, ncclComm_t comm,
                           cudaStream_t stream)
{
    hcrt_dtype_t dt;
    size_t es;
    (void)stream;
    hcrt_mock_nccl_calls++;
    if (!mock_dtype(datatype, &dt, &es) || sendcount > (size_t)INT32_MAX / es)
        return ncclInvalidArgument;
    int bytes = (int)(sendcount * es);
    return MPI_Allgather(send, bytes, MPI_BYTE, recv, bytes, MPI_BYTE, comm->mpi) == MPI_SUCCESS ? ncclSuccess
                                                                                                 : ncclSystemError;
}

ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream)
{
    hcrt_dtype_t dt;
    size_t es;
    (void)stream;
    hcrt_mock_nccl_calls++;
    if (!mock_dtype(datatype, &dt, &es) || count > (size_t)INT32_MAX / es || root < 0 || root >= comm->nranks)
        return ncclInvalidArgument;
    if (comm->rank == root && send != recv)
        memmove(recv, send, count * es);
    return MPI_Bcast(recv, (int)(count * es), MPI_BYTE, root, comm->mpi) == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
}
