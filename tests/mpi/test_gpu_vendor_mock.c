/*
 * tests/mpi/test_gpu_vendor_mock.c - the cuda plugin's NCCL fast path, end to end, without a GPU.
 *
 * Runs under mpirun with HCRT_BACKEND_PATH pointing at tests/plugin/nccl_mock: a copy of the cuda plugin
 * whose CUDA runtime and NCCL are host-memory stand-ins (NCCL carried by MPI, reductions in rank order
 * with the host kernels). Two parts:
 *  1. hcrt_comm_allreduce on device buffers of every rank's context device (a mock cuda device), every
 *     dtype x op, out-of-place and in place: the collectives must take the vendor path (the mock counts
 *     its calls) and give the bits of a rank-order host reduction (avg: sum, then scale by 1/n).
 *  2. The plugin's coll_* ops directly, through its exported table and a state of the test's own:
 *     allreduce with and without a stream, reduce_scatter, allgather, broadcast, destroy and abort, and
 *     argument errors.
 */
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/host_kernels.h"
#include "hcrt/backend.h"
#include "hcrt/comm.h"
#include "hcrt/hcrt.h"
#include "test.h"

static int rank, size;

static const hcrt_dtype_t dtypes[] = {HCRT_I8,  HCRT_U8,  HCRT_I32,  HCRT_U32, HCRT_I64,
                                      HCRT_U64, HCRT_F16, HCRT_BF16, HCRT_F32, HCRT_F64};
static const size_t esz[HCRT_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};

/* Rank r's input: small values (products stay meaningful), never NaN, the same on every rank that asks. */
static void fill(void *buf, size_t n, hcrt_dtype_t t, int r)
{
    for (size_t i = 0; i < n; i++) {
        int v = (int)((i * 7 + (size_t)r * 13) % 11) - 3; /* -3 .. 7 */
        unsigned char *p = (unsigned char *)buf + i * esz[t];
        switch (t) {
        case HCRT_I8:
            *(int8_t *)p = (int8_t)v;
            break;
        case HCRT_U8:
            *p = (uint8_t)(v + 3);
            break;
        case HCRT_I32:
            memcpy(p, &(int32_t){v * 1000}, 4);
            break;
        case HCRT_U32:
            memcpy(p, &(uint32_t){(uint32_t)(v + 3) * 1000u}, 4);
            break;
        case HCRT_I64:
            memcpy(p, &(int64_t){(int64_t)v << 33}, 8);
            break;
        case HCRT_U64:
            memcpy(p, &(uint64_t){(uint64_t)(v + 3) << 33}, 8);
            break;
        case HCRT_F16:
            memcpy(p, &(uint16_t){hcrt__f32_to_f16((float)v * 0.375f)}, 2);
            break;
        case HCRT_BF16:
            memcpy(p, &(uint16_t){hcrt__f32_to_bf16((float)v * 0.375f)}, 2);
            break;
        case HCRT_F32:
            memcpy(p, &(float){(float)v * 0.1f}, 4);
            break;
        default:
            memcpy(p, &(double){(double)v * 0.1}, 8);
            break;
        }
    }
}

/* What every rank must get: the rank-order host reduction (and, for avg, one scale by 1/size). */
static void reference(void *out, size_t n, hcrt_dtype_t t, hcrt_op_t op)
{
    void *tmp = malloc(n * esz[t]);
    fill(out, n, t, 0);
    for (int r = 1; r < size; r++) {
        fill(tmp, n, t, r);
        hcrt__host_reduce(out, tmp, n, t, op);
    }
    if (op == HCRT_OP_AVG)
        hcrt__host_scale(out, n, t, 1.0 / size);
    free(tmp);
}

static unsigned long *mock_calls(hcrt_context_t *ctx, void **handle)
{
    int nb = 0;
    CHECK_OK(ctx, hcrt_backend_count(ctx, &nb));
    for (int i = 0; i < nb; i++) {
        hcrt_backend_info_t info = {.struct_size = sizeof info};
        CHECK_OK(ctx, hcrt_backend_get_info(ctx, i, &info));
        if (strcmp(info.name, "cuda") != 0)
            continue;
        /* Already loaded by the runtime: RTLD_NOLOAD hands back the same library. */
        *handle = dlopen(info.path, RTLD_NOW | RTLD_NOLOAD);
        return *handle ? dlsym(*handle, "hcrt_mock_nccl_calls") : NULL;
    }
    return NULL;
}

static void test_comm_allreduce(hcrt_context_t *ctx, hcrt_device_t *dev, unsigned long *calls)
{
    hcrt_comm_t *comm = NULL;
    hcrt_device_t *host = NULL;
    const size_t n = 1000;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    for (size_t ti = 0; ti < sizeof dtypes / sizeof dtypes[0]; ti++) {
        hcrt_dtype_t t = dtypes[ti];
        size_t bytes = n * esz[t];
        unsigned char *h = malloc(bytes), *want = malloc(bytes), *got = malloc(bytes);
        void *dsend = NULL, *drecv = NULL;
        REQUIRE_OK(ctx, hcrt_mem_alloc(dev, bytes, &dsend));
        REQUIRE_OK(ctx, hcrt_mem_alloc(dev, bytes, &drecv));
        for (int op = 0; op < HCRT_OP_COUNT; op++) {
            for (int inplace = 0; inplace < 2; inplace++) {
                unsigned long before = calls ? *calls : 0;
                fill(h, n, t, rank);
                reference(want, n, t, (hcrt_op_t)op);
                CHECK_OK(ctx, hcrt_memcpy(dev, inplace ? drecv : dsend, host, h, bytes));
                CHECK_OK(ctx,
                         hcrt_comm_allreduce(comm, inplace ? HCRT_IN_PLACE : dsend, drecv, n, t, (hcrt_op_t)op, dev));
                CHECK_OK(ctx, hcrt_memcpy(host, got, dev, drecv, bytes));
                CHECK_MSG(memcmp(got, want, bytes) == 0, "rank %d: allreduce %s %s%s differs", rank, hcrt_dtype_name(t),
                          hcrt_op_name((hcrt_op_t)op), inplace ? " in place" : "");
                CHECK_MSG(calls && *calls == before + 1, "rank %d: allreduce %s %s did not take the NCCL path", rank,
                          hcrt_dtype_name(t), hcrt_op_name((hcrt_op_t)op));
            }
        }
        CHECK_OK(ctx, hcrt_mem_free(dev, dsend));
        CHECK_OK(ctx, hcrt_mem_free(dev, drecv));
        free(h);
        free(want);
        free(got);
    }
    CHECK_OK(ctx, hcrt_comm_destroy(comm));
}

static void nolog(void *host, int level, const char *fmt, ...)
{
    (void)host;
    (void)level;
    (void)fmt;
}

static void test_table(void *handle)
{
    const hcrt_backend_v1_t *t = handle ? dlsym(handle, HCRT_BACKEND_SYMBOL_V1) : NULL;
    hcrt_backend_services_t svc = {.struct_size = sizeof svc, .log = nolog};
    void *st = NULL;
    hcrt_backend_coll_t *coll = NULL, *coll2 = NULL;
    hcrt_backend_stream_t *stream = NULL;
    const size_t n = 64;

    REQUIRE_OK(NULL, t ? HCRT_OK : HCRT_ERR_NOT_FOUND);
    CHECK(HCRT_BACKEND_HAS_OP(t, coll_broadcast) && t->coll_unique_id_size == 128);
    REQUIRE_OK(NULL, t->init(&svc, &st));
    hcrt_backend_device_props_t props = {.struct_size = sizeof props};
    CHECK_OK(NULL, t->device_props(st, 0, &props));
    CHECK((props.caps & HCRT_CAP_VENDOR_COLL) != 0);

    unsigned char id[128] = {0};
    if (rank == 0)
        CHECK_OK(NULL, t->coll_get_unique_id(st, id));
    MPI_Bcast(id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    REQUIRE_OK(NULL, t->coll_init(st, 0, id, size, rank, &coll));

    float *h = malloc(n * (size_t)size * sizeof(float)), *g = malloc(n * (size_t)size * sizeof(float));
    void *send = NULL, *recv = NULL;
    REQUIRE_OK(NULL, t->mem_alloc(st, 0, n * (size_t)size * sizeof(float), &send));
    REQUIRE_OK(NULL, t->mem_alloc(st, 0, n * (size_t)size * sizeof(float), &recv));
    REQUIRE_OK(NULL, t->stream_create(st, 0, &stream));

    /* allreduce max on a stream: every element is the largest rank */
    for (size_t i = 0; i < n; i++)
        h[i] = (float)rank + (float)i;
    CHECK_OK(NULL, t->memcpy(st, 0, send, h, n * sizeof(float), HCRT_COPY_H2D, NULL));
    CHECK_OK(NULL, t->coll_allreduce(st, coll, send, recv, n, HCRT_F32, HCRT_OP_MAX, stream));
    CHECK_OK(NULL, t->stream_sync(st, stream));
    CHECK_OK(NULL, t->memcpy(st, 0, g, recv, n * sizeof(float), HCRT_COPY_D2H, NULL));
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(g[i] == (float)(size - 1) + (float)i, "allreduce max [%zu] = %g", i, (double)g[i]);
    /* avg without a stream: (0 + 1 + ... + size-1) / size */
    CHECK_OK(NULL, t->coll_allreduce(st, coll, send, recv, n, HCRT_F32, HCRT_OP_AVG, NULL));
    CHECK_OK(NULL, t->memcpy(st, 0, g, recv, n * sizeof(float), HCRT_COPY_D2H, NULL));
    CHECK_MSG(g[0] == (float)(size - 1) / 2.0f, "allreduce avg [0] = %g", (double)g[0]);

    /* reduce_scatter sum: rank r gets block r of the sum */
    for (size_t i = 0; i < n * (size_t)size; i++)
        h[i] = (float)i;
    CHECK_OK(NULL, t->memcpy(st, 0, send, h, n * (size_t)size * sizeof(float), HCRT_COPY_H2D, NULL));
    CHECK_OK(NULL, t->coll_reduce_scatter(st, coll, send, recv, n, HCRT_F32, HCRT_OP_SUM, NULL));
    CHECK_OK(NULL, t->memcpy(st, 0, g, recv, n * sizeof(float), HCRT_COPY_D2H, NULL));
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(g[i] == (float)size * (float)((size_t)rank * n + i), "reduce_scatter [%zu] = %g", i, (double)g[i]);

    /* allgather: block r is rank r's */
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(rank * 1000) + (float)i;
    CHECK_OK(NULL, t->memcpy(st, 0, send, h, n * sizeof(float), HCRT_COPY_H2D, NULL));
    CHECK_OK(NULL, t->coll_allgather(st, coll, send, recv, n, HCRT_F32, NULL));
    CHECK_OK(NULL, t->memcpy(st, 0, g, recv, n * (size_t)size * sizeof(float), HCRT_COPY_D2H, NULL));
    for (int r = 0; r < size; r++)
        CHECK_MSG(g[(size_t)r * n + 5] == (float)(r * 1000 + 5), "allgather block %d = %g", r,
                  (double)g[(size_t)r * n + 5]);

    /* broadcast from the last rank, in place */
    for (size_t i = 0; i < n; i++)
        h[i] = rank == size - 1 ? 42.0f + (float)i : -1.0f;
    CHECK_OK(NULL, t->memcpy(st, 0, recv, h, n * sizeof(float), HCRT_COPY_H2D, NULL));
    CHECK_OK(NULL, t->coll_broadcast(st, coll, recv, recv, n, HCRT_F32, size - 1, NULL));
    CHECK_OK(NULL, t->memcpy(st, 0, g, recv, n * sizeof(float), HCRT_COPY_D2H, NULL));
    CHECK_MSG(g[0] == 42.0f && g[n - 1] == 42.0f + (float)(n - 1), "broadcast [0] = %g", (double)g[0]);

    /* argument errors are caught before NCCL sees them (same on every rank, so nobody hangs) */
    CHECK_STATUS(NULL, t->coll_broadcast(st, coll, recv, recv, n, HCRT_F32, size, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(NULL, t->coll_allreduce(st, coll, send, recv, n, (hcrt_dtype_t)42, HCRT_OP_SUM, NULL),
                 HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(NULL, t->coll_allreduce(st, coll, send, recv, n, HCRT_F32, (hcrt_op_t)42, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(NULL, t->coll_init(st, 0, id, size, size, &coll2), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(t->last_error(st), "rank") != NULL);

    CHECK_OK(NULL, t->coll_destroy(st, coll));
    /* a second communicator, torn down with abort; and one left for finalize to abort */
    if (rank == 0)
        CHECK_OK(NULL, t->coll_get_unique_id(st, id));
    MPI_Bcast(id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    REQUIRE_OK(NULL, t->coll_init(st, 0, id, size, rank, &coll2));
    CHECK_OK(NULL, t->coll_abort(st, coll2));
    if (rank == 0)
        CHECK_OK(NULL, t->coll_get_unique_id(st, id));
    MPI_Bcast(id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    REQUIRE_OK(NULL, t->coll_init(st, 0, id, size, rank, &coll2));

    CHECK_OK(NULL, t->stream_destroy(st, stream));
    CHECK_OK(NULL, t->mem_free(st, 0, send));
    CHECK_OK(NULL, t->mem_free(st, 0, recv));
    t->finalize(st);
    free(h);
    free(g);
}

int main(void)
{
    hcrt_context_t *ctx = NULL;
    hcrt_device_t *dev = NULL;
    void *handle = NULL;

    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    REQUIRE_OK(ctx, hcrt_context_rank(ctx, &rank, &size));
    REQUIRE_OK(ctx, hcrt_context_device(ctx, &dev));
    if (strcmp(hcrt_device_backend(dev), "cuda") != 0) {
        fprintf(stderr, "FATAL: rank %d got a %s device, expected the mock cuda plugin (HCRT_BACKEND_PATH=%s)\n", rank,
                hcrt_device_backend(dev), getenv("HCRT_BACKEND_PATH"));
        return 1;
    }
    unsigned long *calls = mock_calls(ctx, &handle);
    CHECK_MSG(calls != NULL, "the cuda plugin is not the NCCL mock: %s", dlerror());

    test_comm_allreduce(ctx, dev, calls);
    test_table(handle);

    if (handle)
        dlclose(handle);
    CHECK_OK(NULL, hcrt_finalize(ctx));
    if (rank == 0 && test_failures_ == 0)
        printf("cuda NCCL path over the mock: %d ranks, comm allreduce x %zu dtypes x %d ops, coll_* ops: ok\n", size,
               sizeof dtypes / sizeof dtypes[0], HCRT_OP_COUNT);
    TEST_DONE();
}
