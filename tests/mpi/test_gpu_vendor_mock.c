/*
 * tests/mpi/test_gpu_vendor_mock.c - the GPU plugins' vendor collective path (NCCL for cuda, RCCL for hip,
 * backends/gpu/gpu_ccl.c), end to end, without a GPU.
 *
 * Runs under mpirun with HCRT_BACKEND_PATH pointing at tests/plugin/nccl_mock: copies of the cuda and hip
 * plugins whose runtimes are host-memory stand-ins, and HCRT_NCCL_LIBRARY / HCRT_RCCL_LIBRARY naming
 * libnccl-mock.so, NCCL's API carried by MPI (reductions in rank order with the host kernels), which the
 * plugins load with dlopen as they load the real libraries. argv: MODE BACKEND (cuda or hip).
 *  path     1. Lazy loading: the library is not loaded by hcrt_init, and is once a communicator exists.
 *           2. hcrt_comm_allreduce on device buffers of every rank's context device, every dtype x op,
 *              out-of-place and in place: one library call each (the mock counts them), the bits of a
 *              rank-order host reduction (avg: sum, then scale by 1/n); no per-call agreement first.
 *           3. The plugin's coll_* ops directly, through its exported table and a state of the test's
 *              own: allreduce with and without a stream, reduce_scatter, allgather, broadcast, destroy
 *              and abort, and argument errors.
 *  fail     MOCK_NCCL_FAIL=N:R makes the library fail collective N on rank R: that rank's allreduce
 *           returns the error naming its vendor group, its vendor communicator is aborted (the mock
 *           counts ncclCommAbort), and later vendor-group calls on the communicator fail alike; the
 *           other ranks' calls succeed.
 *  missing  HCRT_NCCL_LIBRARY / HCRT_RCCL_LIBRARY name no library: the backend still loads, reports "no
 *           vendor collectives" with dlopen's reason, and collectives on its buffers run staged and right.
 *  gpu      On a real GPU (tools/scripts/gpu-check.sh; exits 77 elsewhere): lazy loading of the real
 *           library, sums on device buffers, a communicator of the library made through the plugin's table
 *           (all ranks on the one GPU: NCCL may refuse that, which is reported, not failed), and the
 *           time of hcrt_comm_allreduce on device buffers beside the library's own allreduce and stream
 *           sync, 8 B to 64 KiB (or to argv[3] bytes, e.g. 1G: tools/scripts/gpu-check.sh), printed as
 *           "latency:" lines with the bus bandwidth of each.
 */
#include <dlfcn.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/backend.h"
#include "hcrt/comm.h"
#include "hcrt/hcrt.h"
#include "kernels/host_kernels.h"
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

/* The mock library's counter `name`, when the library is loaded (RTLD_NOLOAD: never loads it). */
static unsigned long *mock_counter(const char *name)
{
    const char *lib = getenv("HCRT_NCCL_LIBRARY");
    void *h = lib ? dlopen(lib, RTLD_NOW | RTLD_NOLOAD) : NULL;
    unsigned long *p = h ? dlsym(h, name) : NULL;
    if (h)
        dlclose(h); /* the plugin keeps its own reference */
    return p;
}

/* The plugin of `backend`, already loaded by the runtime (RTLD_NOLOAD hands back the same library). */
static void *plugin_handle(hcrt_context_t *ctx, const char *backend, int *index)
{
    int nb = 0;
    CHECK_OK(ctx, hcrt_backend_count(ctx, &nb));
    for (int i = 0; i < nb; i++) {
        hcrt_backend_info_t info = {.struct_size = sizeof info};
        CHECK_OK(ctx, hcrt_backend_get_info(ctx, i, &info));
        if (strcmp(info.name, backend) != 0)
            continue;
        *index = i;
        return dlopen(info.path, RTLD_NOW | RTLD_NOLOAD);
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

/* The test's own services for a plugin state: the library names from the environment, as the runtime's. */
static const char *test_config(void *host, const char *name)
{
    (void)host;
    if (strcmp(name, "HCRT_NCCL_LIBRARY") == 0 || strcmp(name, "HCRT_RCCL_LIBRARY") == 0)
        return getenv(name);
    return NULL;
}

static void test_table(void *handle)
{
    const hcrt_backend_v1_t *t = handle ? dlsym(handle, HCRT_BACKEND_SYMBOL_V1) : NULL;
    hcrt_backend_services_t svc = {.struct_size = sizeof svc, .log = nolog, .config_get = test_config};
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

/* MOCK_NCCL_FAIL=N:R: the Nth library collective of rank R fails (after its exchange). */
static void test_fail(hcrt_context_t *ctx, hcrt_device_t *dev)
{
    hcrt_comm_t *comm = NULL;
    const size_t n = 256;
    float *dsend = NULL, *drecv = NULL;
    unsigned long at = 0;
    int bad = -1;
    REQUIRE_MSG(getenv("MOCK_NCCL_FAIL") && sscanf(getenv("MOCK_NCCL_FAIL"), "%lu:%d", &at, &bad) == 2,
                "set MOCK_NCCL_FAIL=N:R");
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, n * 4, (void **)&dsend));
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, n * 4, (void **)&drecv));
    unsigned long *aborts = mock_counter("hcrt_mock_nccl_aborts");
    REQUIRE_MSG(aborts != NULL, "the mock library is not loaded after the communicator was created");
    for (unsigned long k = 1; k <= at + 1; k++) {
        hcrt_status_t st = hcrt_comm_allreduce(comm, dsend, drecv, n, HCRT_F32, HCRT_OP_SUM, dev);
        if (rank != bad) {
            CHECK_MSG(st == HCRT_OK, "rank %d call %lu: %s: %s", rank, k, hcrt_status_name(st), hcrt_last_error(ctx));
            if (k == at) /* the peer failed after the exchange: it cannot take part any more */
                break;
            continue;
        }
        if (k < at) {
            CHECK_OK(ctx, st);
            continue;
        }
        /* The failure, then the poisoned vendor path: the same error, with no library call. */
        CHECK_MSG(st == HCRT_ERR_BACKEND, "call %lu on the failing rank: %s", k, hcrt_status_name(st));
        const char *msg = hcrt_last_error(ctx);
        CHECK_MSG(strstr(msg, "vendor group") != NULL && strstr(msg, "aborted") != NULL && strstr(msg, "error") != NULL,
                  "message: %s", msg);
        CHECK_MSG(*aborts == 1, "ncclCommAbort called %lu times", *aborts);
    }
    /* Under the default exit policy the failing rank has ended the job (status 121) by now or is about to:
     * its peers wait for it in a barrier, as an application's next collective would, rather than race
     * its MPI_Abort with their own exit (Open MPI 4.1's mpirun can crash when they coincide). */
    const char *policy = getenv("HCRT_ON_FAILURE");
    if (rank != bad && (policy == NULL || strcmp(policy, "return") != 0))
        (void)hcrt_comm_barrier(comm);
    CHECK_OK(ctx, hcrt_mem_free(dev, dsend));
    CHECK_OK(ctx, hcrt_mem_free(dev, drecv));
    /* The communicator is left to hcrt_finalize: a real job ends here (the exit policy), and destroying it
     * would flush the peers' vendor communicators, which wait for the aborted one. Finalize aborts them. */
    (void)comm;
}

/* The library cannot be loaded: the backend still works, staged, and says why it has no vendor path. */
static void test_missing(hcrt_context_t *ctx, hcrt_device_t *dev, const char *backend)
{
    int index = -1;
    void *h = plugin_handle(ctx, backend, &index);
    REQUIRE_MSG(h != NULL && index >= 0, "the %s plugin is not loaded", backend);
    dlclose(h);
    const char *why = NULL;
    CHECK_STATUS(ctx, hcrt_backend_vendor_coll(ctx, index, &why), HCRT_ERR_NOT_SUPPORTED);
    CHECK_MSG(why && strstr(why, "no-such-library") != NULL, "reason: %s", why ? why : "(null)");
    CHECK_MSG(strstr(hcrt_last_error(ctx), "no vendor collectives") != NULL, "last error: %s", hcrt_last_error(ctx));
    hcrt_comm_t *comm = NULL;
    hcrt_device_t *host = NULL;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    const size_t n = 100000;
    float *hs = malloc(n * 4), *want = malloc(n * 4), *got = malloc(n * 4);
    void *d = NULL;
    fill(hs, n, HCRT_F32, rank);
    reference(want, n, HCRT_F32, HCRT_OP_SUM);
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, n * 4, &d));
    CHECK_OK(ctx, hcrt_memcpy(dev, d, host, hs, n * 4));
    CHECK_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, d, n, HCRT_F32, HCRT_OP_SUM, dev));
    CHECK_OK(ctx, hcrt_memcpy(host, got, dev, d, n * 4));
    CHECK_MSG(memcmp(got, want, n * 4) == 0, "rank %d: staged allreduce differs", rank);
    CHECK_OK(ctx, hcrt_mem_free(dev, d));
    hcrt_comm_destroy(comm);
    free(hs);
    free(want);
    free(got);
}

/* The library the plugin loads for `backend` (HCRT_*_LIBRARY or its default). */
static const char *library_name(const char *backend)
{
    const char *env = getenv(strcmp(backend, "hip") == 0 ? "HCRT_RCCL_LIBRARY" : "HCRT_NCCL_LIBRARY");
    return env && *env ? env : strcmp(backend, "hip") == 0 ? "librccl.so.1" : "libnccl.so.2";
}

static bool library_loaded(const char *backend)
{
    void *h = dlopen(library_name(backend), RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

/* Seconds of the slowest rank for `iters` runs of fn (after a warm-up). */
static double time_max(void (*fn)(void *), void *arg, int iters)
{
    for (int i = 0; i < 20; i++)
        fn(arg);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++)
        fn(arg);
    double t = (MPI_Wtime() - t0) / iters, tmax = 0;
    MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return tmax;
}

typedef struct lat {
    hcrt_comm_t *comm;
    hcrt_device_t *dev;
    const hcrt_backend_v1_t *t;
    void *st;
    hcrt_backend_coll_t *coll;
    hcrt_backend_stream_t *stream;
    void *buf, *raw;
    size_t count;
} lat_t;

static void run_hcrt(void *arg)
{
    lat_t *l = arg;
    hcrt_comm_allreduce(l->comm, HCRT_IN_PLACE, l->buf, l->count, HCRT_F32, HCRT_OP_SUM, l->dev);
}

static void run_raw(void *arg)
{
    lat_t *l = arg;
    l->t->coll_allreduce(l->st, l->coll, l->raw, l->raw, l->count, HCRT_F32, HCRT_OP_SUM, l->stream);
    l->t->stream_sync(l->st, l->stream);
}

static void test_gpu(hcrt_context_t *ctx, hcrt_device_t *dev, const char *backend, size_t max_bytes)
{
    int index = -1;
    void *handle = plugin_handle(ctx, backend, &index);
    REQUIRE_MSG(handle != NULL, "the %s plugin is not loaded", backend);
    CHECK_MSG(!library_loaded(backend), "hcrt_init loaded %s already", library_name(backend));
    const char *why = NULL;
    if (hcrt_backend_vendor_coll(ctx, index, &why) != HCRT_OK) {
        if (rank == 0)
            printf("vendor: no vendor collectives: %s\n", why);
        dlclose(handle);
        return;
    }
    CHECK_MSG(library_loaded(backend), "the probe did not load %s", library_name(backend));
    hcrt_comm_t *comm = NULL;
    hcrt_device_t *host = NULL;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    /* Sums of integers are exact in any order: every dtype the library's order cannot change. */
    static const size_t ns[] = {1000, (1u << 20) + 3};
    for (size_t k = 0; k < 2; k++) {
        size_t n = ns[k];
        int32_t *h = malloc(n * 4), *g = malloc(n * 4);
        float *hf = malloc(n * 4), *gf = malloc(n * 4);
        void *d = NULL, *df = NULL;
        for (size_t i = 0; i < n; i++) {
            h[i] = (int32_t)((i * 7 + (size_t)rank * 13) % 1000) - 300;
            hf[i] = (float)h[i];
        }
        REQUIRE_OK(ctx, hcrt_mem_alloc(dev, n * 4, &d));
        REQUIRE_OK(ctx, hcrt_mem_alloc(dev, n * 4, &df));
        CHECK_OK(ctx, hcrt_memcpy(dev, d, host, h, n * 4));
        CHECK_OK(ctx, hcrt_memcpy(dev, df, host, hf, n * 4));
        CHECK_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, d, n, HCRT_I32, HCRT_OP_SUM, dev));
        CHECK_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, df, n, HCRT_F32, HCRT_OP_SUM, dev));
        CHECK_OK(ctx, hcrt_memcpy(host, g, dev, d, n * 4));
        CHECK_OK(ctx, hcrt_memcpy(host, gf, dev, df, n * 4));
        int bad = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t want = 0;
            for (int r = 0; r < size; r++)
                want += (int32_t)((i * 7 + (size_t)r * 13) % 1000) - 300;
            bad += g[i] != (int32_t)want || gf[i] != (float)want;
        }
        CHECK_MSG(bad == 0, "allreduce of %zu elements on %s buffers: %d wrong", n, backend, bad);
        hcrt_mem_free(dev, d);
        hcrt_mem_free(dev, df);
        free(h);
        free(g);
        free(hf);
        free(gf);
    }
    /* The library's own communicator through the plugin's table, and the latency table. */
    const hcrt_backend_v1_t *t = dlsym(handle, HCRT_BACKEND_SYMBOL_V1);
    hcrt_backend_services_t svc = {.struct_size = sizeof svc, .log = nolog, .config_get = test_config};
    lat_t l = {.comm = comm, .dev = dev, .t = t};
    unsigned char id[128] = {0};
    REQUIRE_OK(NULL, t->init(&svc, &l.st));
    int ok = rank != 0 || t->coll_get_unique_id(l.st, id) == HCRT_OK;
    MPI_Bcast(id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (ok && t->coll_init(l.st, 0, id, size, rank, &l.coll) != HCRT_OK) {
        ok = 0;
        fprintf(stderr, "vendor: rank %d: the library refused a communicator of %d rank(s) on this GPU: %s\n", rank,
                size, t->last_error(l.st));
    }
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (all) {
        REQUIRE_OK(NULL, t->stream_create(l.st, 0, &l.stream));
        REQUIRE_OK(NULL, t->mem_alloc(l.st, 0, max_bytes, &l.raw));
    }
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, max_bytes, &l.buf));
    const char *lib = strcmp(backend, "hip") ? "nccl" : "rccl";
    if (rank == 0)
        printf("latency: %d rank(s), allreduce f32 sum in place on %s buffers (us per call, slowest rank; busbw "
               "GB/s with nccl-tests' factor 2(n-1)/n)\n", size, backend);
    for (size_t bytes = 8; bytes <= max_bytes; bytes = bytes < 65536 ? bytes * 8 : bytes * 4) {
        l.count = bytes / 4 ? bytes / 4 : 1;
        /* Enough calls for a steady figure, fewer for large messages (at least 5). */
        int iters = bytes <= 65536 ? 1000 : (int)(((size_t)256 << 20) / bytes) + 5;
        double th = time_max(run_hcrt, &l, iters) * 1e6, tr = all ? time_max(run_raw, &l, iters) * 1e6 : NAN;
        double factor = size > 1 ? 2.0 * (size - 1) / size : 1.0;
        if (rank == 0)
            printf("latency: %10zu B  hcrt %10.2f us %7.2f GB/s  %s %10.2f us %7.2f GB/s  hcrt/%s time %5.2f\n",
                   bytes, th, (double)bytes * factor / th * 1e-3, lib, tr, (double)bytes * factor / tr * 1e-3, lib,
                   th / tr);
    }
    hcrt_mem_free(dev, l.buf);
    if (all) {
        t->mem_free(l.st, 0, l.raw);
        t->stream_destroy(l.st, l.stream);
        CHECK_OK(NULL, t->coll_destroy(l.st, l.coll));
    } else if (l.coll) {
        t->coll_abort(l.st, l.coll);
    }
    t->finalize(l.st);
    hcrt_comm_destroy(comm);
    dlclose(handle);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "path", *backend = argc > 2 ? argv[2] : "cuda";
    hcrt_context_t *ctx = NULL;
    hcrt_device_t *dev = NULL;

    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    REQUIRE_OK(ctx, hcrt_context_rank(ctx, &rank, &size));
    REQUIRE_OK(ctx, hcrt_context_device(ctx, &dev));
    if (strcmp(mode, "gpu") == 0 && strcmp(hcrt_device_backend(dev), backend) != 0) {
        int nb = 0;
        hcrt_backend_count(ctx, &nb);
        for (int i = 0; i < nb; i++) {
            hcrt_backend_info_t info = {.struct_size = sizeof info};
            if (hcrt_backend_get_info(ctx, i, &info) == HCRT_OK && strcmp(info.name, backend) == 0)
                TEST_SKIP("no %s device: %s", backend, info.reason);
        }
        TEST_SKIP("no %s backend (HCRT_BACKEND_PATH=%s)", backend, getenv("HCRT_BACKEND_PATH"));
    }
    if (strcmp(hcrt_device_backend(dev), backend) != 0) {
        fprintf(stderr, "FATAL: rank %d got a %s device, expected the mock %s plugin (HCRT_BACKEND_PATH=%s)\n", rank,
                hcrt_device_backend(dev), backend, getenv("HCRT_BACKEND_PATH"));
        return 1;
    }
    if (strcmp(mode, "missing") == 0) {
        test_missing(ctx, dev, backend);
    } else if (strcmp(mode, "gpu") == 0) {
        size_t max_bytes = 64 << 10;
        if (argc > 3) {
            char *end = NULL;
            max_bytes = strtoull(argv[3], &end, 10);
            if (end && (*end == 'M' || *end == 'G'))
                max_bytes <<= *end == 'M' ? 20 : 30;
            REQUIRE_MSG(max_bytes >= 8, "argv[3]: a size in bytes (M or G suffix), got '%s'", argv[3]);
        }
        test_gpu(ctx, dev, backend, max_bytes);
    } else {
        /* Lazy: hcrt_init loaded the plugin, not the library; a communicator needs it. */
        CHECK_MSG(mock_counter("hcrt_mock_nccl_calls") == NULL, "hcrt_init loaded the vendor library already");
        if (strcmp(mode, "fail") == 0) {
            test_fail(ctx, dev);
        } else {
            hcrt_comm_t *probe = NULL;
            REQUIRE_OK(ctx, hcrt_comm_world(ctx, &probe));
            unsigned long *calls = mock_counter("hcrt_mock_nccl_calls");
            CHECK_MSG(calls != NULL, "creating a communicator did not load %s", getenv("HCRT_NCCL_LIBRARY"));
            hcrt_comm_destroy(probe);
            test_comm_allreduce(ctx, dev, calls);
            int index = -1;
            void *handle = plugin_handle(ctx, backend, &index);
            test_table(handle);
            if (handle)
                dlclose(handle);
        }
    }
    CHECK_OK(NULL, hcrt_finalize(ctx));
    if (rank == 0 && test_failures_ == 0)
        printf("%s vendor path over the mock library (%s): %d ranks: ok\n", backend, mode, size);
    TEST_DONE();
}
