/*
 * tests/plugin/mock_nccl.c - NCCL's collective API over MPI and host memory, for testing the cuda plugin's
 * vendor collective path (backends/gpu/gpu_ccl.c, NCCL and RCCL alike) on machines without a GPU.
 *
 * Built as a library of its own (libnccl-mock.so, tests/plugin/nccl_mock/), which the mock copies of the
 * cuda and hip plugins load with dlopen() exactly as they load NCCL and RCCL (HCRT_NCCL_LIBRARY,
 * HCRT_RCCL_LIBRARY). The mock "device" memory is host memory, so each collective can be carried by MPI: a
 * communicator is an MPI communicator of the ranks that joined with one unique id (only those call
 * ncclCommInitRank, as hcrt does for one vendor group: the id names the world rank that made it, the
 * members report to it and it hands them the member list, then MPI_Comm_create_group involves nobody
 * else), allreduce gathers every rank's contribution and reduces them in rank order with the host kernels
 * (so results are deterministic and every dtype works, f16 and bf16 included), ncclAvg divides the sum by
 * the rank count with the host scale kernel.
 *
 * For tests it exports counters (hcrt_mock_nccl_calls: collectives, hcrt_mock_nccl_aborts: aborts) and
 * takes one injected failure from its environment (it stands for a vendor library, not for a plugin):
 * MOCK_NCCL_FAIL=N:R makes the Nth collective of world rank R return ncclRemoteError after taking part
 * in the exchange (so no peer waits), as a device or network failure inside the library would.
 */
#include <mpi.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/host_kernels.h"

struct ncclComm {
    MPI_Comm mpi;
    int nranks, rank;
};

#define MOCK_API __attribute__((visibility("default")))

/* Collective calls and aborts made through this mock (not thread-safe: the tests are single-threaded). */
MOCK_API unsigned long hcrt_mock_nccl_calls;
MOCK_API unsigned long hcrt_mock_nccl_aborts;

/* MOCK_NCCL_FAIL=N:R: whether this call (the mock's collective number `n`) is the one to fail. */
static bool mock_fails(unsigned long n)
{
    const char *spec = getenv("MOCK_NCCL_FAIL");
    unsigned long at = 0;
    int r = -1, me = -1;
    if (spec == NULL || sscanf(spec, "%lu:%d", &at, &r) != 2)
        return false;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    return n == at && me == r;
}

static int mock_seq;

/* The id: a number unique to the making rank, and that rank's world rank. */
typedef struct mock_id {
    int seq, maker;
} mock_id_t;

/* Tags of the set-up messages on MPI_COMM_WORLD, one pair per id (hcrt never uses MPI_COMM_WORLD). */
#define MOCK_TAG(id) (30000 + ((id).maker * 97 + (id).seq) % 2000)

MOCK_API ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    mock_id_t m = {.seq = ++mock_seq};
    MPI_Comm_rank(MPI_COMM_WORLD, &m.maker);
    memset(id, 0, sizeof *id);
    memcpy(id->internal, &m, sizeof m);
    return ncclSuccess;
}

MOCK_API ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank)
{
    mock_id_t m;
    memcpy(&m, id.internal, sizeof m);
    int me = 0, tag = MOCK_TAG(m);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    int *world = calloc((size_t)nranks, sizeof(int));
    struct ncclComm *c = calloc(1, sizeof *c);
    if (!c || !world) {
        free(c);
        free(world);
        return ncclSystemError;
    }
    /* Rank 0 of the new communicator collects (rank, world rank) from the others and sends the list. */
    if (rank == 0) {
        world[0] = me;
        for (int i = 1; i < nranks; i++) {
            int pair[2];
            MPI_Recv(pair, 2, MPI_INT, MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (pair[0] > 0 && pair[0] < nranks)
                world[pair[0]] = pair[1];
        }
        for (int i = 1; i < nranks; i++)
            MPI_Send(world, nranks, MPI_INT, world[i], tag + 1, MPI_COMM_WORLD);
    } else {
        int pair[2] = {rank, me}, leader = m.maker;
        /* The maker is rank 0 of the communicator in hcrt's use (the group's first rank makes the id). */
        MPI_Send(pair, 2, MPI_INT, leader, tag, MPI_COMM_WORLD);
        MPI_Recv(world, nranks, MPI_INT, leader, tag + 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    MPI_Group wg, gg;
    MPI_Comm_group(MPI_COMM_WORLD, &wg);
    MPI_Group_incl(wg, nranks, world, &gg);
    int rc = MPI_Comm_create_group(MPI_COMM_WORLD, gg, tag, &c->mpi);
    MPI_Group_free(&gg);
    MPI_Group_free(&wg);
    free(world);
    if (rc != MPI_SUCCESS || c->mpi == MPI_COMM_NULL) {
        free(c);
        return ncclSystemError;
    }
    c->nranks = nranks;
    c->rank = rank;
    *comm = c;
    return ncclSuccess;
}

MOCK_API ncclResult_t ncclCommFinalize(ncclComm_t comm)
{
    return MPI_Barrier(comm->mpi) == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
}

MOCK_API ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    MPI_Comm_free(&comm->mpi);
    free(comm);
    return ncclSuccess;
}

MOCK_API ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    hcrt_mock_nccl_aborts++;
    /* A real abort does not wait for the peers; freeing the split communicator does not either. */
    return ncclCommDestroy(comm);
}

MOCK_API ncclResult_t ncclGetVersion(int *version)
{
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

MOCK_API const char *ncclGetErrorString(ncclResult_t result)
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

MOCK_API const char *ncclGetLastError(ncclComm_t comm)
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

MOCK_API ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                                    ncclComm_t comm, cudaStream_t stream)
{
    (void)stream;
    ncclResult_t r = mock_reduce_all(send, recv, count, datatype, op, comm);
    return mock_fails(++hcrt_mock_nccl_calls) ? ncclRemoteError : r;
}

MOCK_API ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t recvcount, ncclDataType_t datatype,
                                        ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream)
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
    return mock_fails(hcrt_mock_nccl_calls) ? ncclRemoteError : r;
}

MOCK_API ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount, ncclDataType_t datatype,
                                    ncclComm_t comm, cudaStream_t stream)
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

MOCK_API ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t datatype, int root,
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
