/*
 * tests/mpi/test_simccl.c - the sim backend's vendor collective library (simccl, backends/sim/sim_ccl.c),
 * driven through the plugin's exported table with a plugin state of the test's own, under mpirun
 * (2 or 3 ranks on one node; each rank is one group member).
 *
 *  - the probe, the unique id and coll_init; every operation with and without a stream, in place and
 *    out of place, over several chunks of the segment (HCRT_CHUNK_SIZE=64K here): the bits of a
 *    rank-order host reduction (simccl's documented order), every byte of allgather and broadcast;
 *  - argument errors name the argument and leave the communicator usable;
 *  - an injected hang (HCRT_SIM_FAULT coll_hang) holds the group inside an allreduce until the hung rank
 *    aborts: every rank then leaves it with an error saying so, and operations queued behind fail at once;
 *  - an injected set-up failure (coll_init_fail) makes every rank's coll_init fail at once, not time out;
 *  - the link model: an operation takes at least the bytes it receives divided by HCRT_SIM_LINK_GBS.
 */
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcrt/backend.h"
#include "kernels/host_kernels.h"
#include "test.h"

static int rank, size;
static const char *fault = "", *link_gbs = "0";

static const char *config(void *host, const char *name)
{
    (void)host;
    static const struct {
        const char *name, *value;
    } fixed[] = {{"HCRT_SIM_DEVICES", "1"}, {"HCRT_SIM_MEMORY", "256M"}, {"HCRT_SIM_SPEED", "1"},
                 {"HCRT_SIM_VENDOR", "a"},  {"HCRT_TIMEOUT", "60"},      {"HCRT_CHUNK_SIZE", "64K"}};
    if (strcmp(name, "HCRT_SIM_FAULT") == 0)
        return fault;
    if (strcmp(name, "HCRT_SIM_LINK_GBS") == 0)
        return link_gbs;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (strcmp(name, fixed[i].name) == 0)
            return fixed[i].value;
    return NULL;
}

static void nolog(void *host, int level, const char *fmt, ...)
{
    (void)host;
    (void)level;
    (void)fmt;
}

static hcrt_backend_services_t svc = {.struct_size = sizeof(svc), .log = nolog, .config_get = config};

/* The sim plugin from HCRT_BACKEND_PATH. */
static const hcrt_backend_v1_t *load_sim(void)
{
    const char *path = getenv("HCRT_BACKEND_PATH");
    char buf[4096], file[4200];
    snprintf(buf, sizeof(buf), "%s", path ? path : "");
    for (char *dir = strtok(buf, ":"); dir != NULL; dir = strtok(NULL, ":")) {
        snprintf(file, sizeof(file), "%s/libhcrt-backend-sim.so", dir);
        void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
        if (h != NULL)
            return dlsym(h, HCRT_BACKEND_SYMBOL_V1);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct ctx {
    const hcrt_backend_v1_t *t;
    void *st;
    hcrt_backend_coll_t *coll;
    hcrt_backend_stream_t *stream;
} ctx_t;

/* A plugin state with the current fault and link settings, and a communicator of all ranks. */
static hcrt_status_t open_group(const hcrt_backend_v1_t *t, ctx_t *c)
{
    memset(c, 0, sizeof(*c));
    c->t = t;
    REQUIRE_OK(NULL, t->init(&svc, &c->st));
    CHECK_OK(NULL, t->coll_get_unique_id(c->st, NULL)); /* the probe */
    unsigned char id[256] = {0};
    REQUIRE_MSG(t->coll_unique_id_size <= sizeof(id), "a unique id of %zu bytes", t->coll_unique_id_size);
    if (rank == 0)
        REQUIRE_OK(NULL, t->coll_get_unique_id(c->st, id));
    MPI_Bcast(id, (int)t->coll_unique_id_size, MPI_BYTE, 0, MPI_COMM_WORLD);
    hcrt_status_t st = t->coll_init(c->st, 0, id, size, rank, &c->coll);
    if (st == HCRT_OK)
        REQUIRE_OK(NULL, t->stream_create(c->st, 0, &c->stream));
    return st;
}

static void close_group(ctx_t *c)
{
    if (c->stream)
        c->t->stream_destroy(c->st, c->stream);
    if (c->coll)
        CHECK_OK(NULL, c->t->coll_destroy(c->st, c->coll));
    c->t->finalize(c->st);
}

static void fill(float *x, size_t n, int r)
{
    uint32_t s = 12345u + (uint32_t)r * 7919u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5) * (float)(1 + i % 13);
    }
}

static void operations(const hcrt_backend_v1_t *t)
{
    ctx_t c;
    REQUIRE_OK(NULL, open_group(t, &c));
    const size_t n = 100003, all = n * (size_t)size; /* several 64 KiB chunks, not a multiple of anything */
    float *in = malloc(all * 4), *want = malloc(all * 4), *x = malloc(all * 4), *got = malloc(all * 4);
    void *ds = NULL, *dr = NULL;
    REQUIRE_OK(NULL, t->mem_alloc(c.st, 0, all * 4, &ds));
    REQUIRE_OK(NULL, t->mem_alloc(c.st, 0, all * 4, &dr));
    /* The rank-order reduction of everyone's input, over all elements. */
    fill(want, all, 0);
    for (int r = 1; r < size; r++) {
        fill(x, all, r);
        hcrt__host_reduce(want, x, all, HCRT_F32, HCRT_OP_SUM);
    }
    fill(in, all, rank);
    for (int stream = 0; stream < 2; stream++) {
        hcrt_backend_stream_t *s = stream ? c.stream : NULL;
        const char *how = stream ? "on a stream" : "synchronous";
        /* allreduce, out of place and in place */
        CHECK_OK(NULL, t->memcpy(c.st, 0, ds, in, n * 4, HCRT_COPY_H2D, NULL));
        CHECK_OK(NULL, t->coll_allreduce(c.st, c.coll, ds, dr, n, HCRT_F32, HCRT_OP_SUM, s));
        if (s)
            CHECK_OK(NULL, t->stream_sync(c.st, s));
        CHECK_OK(NULL, t->memcpy(c.st, 0, got, dr, n * 4, HCRT_COPY_D2H, NULL));
        CHECK_MSG(memcmp(got, want, n * 4) == 0, "allreduce (%s): not the rank-order bits", how);
        CHECK_OK(NULL, t->coll_allreduce(c.st, c.coll, ds, ds, n, HCRT_F32, HCRT_OP_SUM, s));
        if (s)
            CHECK_OK(NULL, t->stream_sync(c.st, s));
        CHECK_OK(NULL, t->memcpy(c.st, 0, got, ds, n * 4, HCRT_COPY_D2H, NULL));
        CHECK_MSG(memcmp(got, want, n * 4) == 0, "allreduce in place (%s)", how);
        /* avg is the true average: the sum scaled by 1/n */
        CHECK_OK(NULL, t->memcpy(c.st, 0, ds, in, n * 4, HCRT_COPY_H2D, NULL));
        CHECK_OK(NULL, t->coll_allreduce(c.st, c.coll, ds, dr, n, HCRT_F32, HCRT_OP_AVG, s));
        if (s)
            CHECK_OK(NULL, t->stream_sync(c.st, s));
        CHECK_OK(NULL, t->memcpy(c.st, 0, got, dr, n * 4, HCRT_COPY_D2H, NULL));
        memcpy(x, want, n * 4);
        hcrt__host_scale(x, n, HCRT_F32, 1.0 / size);
        CHECK_MSG(memcmp(got, x, n * 4) == 0, "allreduce avg (%s)", how);
        /* reduce_scatter: block r of the sum; in place when recv is this rank's block of send */
        CHECK_OK(NULL, t->memcpy(c.st, 0, ds, in, all * 4, HCRT_COPY_H2D, NULL));
        CHECK_OK(NULL, t->coll_reduce_scatter(c.st, c.coll, ds, dr, n, HCRT_F32, HCRT_OP_SUM, s));
        float *mine = (float *)ds + (size_t)rank * n;
        CHECK_OK(NULL, t->coll_reduce_scatter(c.st, c.coll, ds, mine, n, HCRT_F32, HCRT_OP_SUM, s));
        if (s)
            CHECK_OK(NULL, t->stream_sync(c.st, s));
        CHECK_OK(NULL, t->memcpy(c.st, 0, got, dr, n * 4, HCRT_COPY_D2H, NULL));
        CHECK_MSG(memcmp(got, want + (size_t)rank * n, n * 4) == 0, "reduce_scatter (%s)", how);
        CHECK_OK(NULL, t->memcpy(c.st, 0, got, mine, n * 4, HCRT_COPY_D2H, NULL));
        CHECK_MSG(memcmp(got, want + (size_t)rank * n, n * 4) == 0, "reduce_scatter in place (%s)", how);
        /* allgather: block r is rank r's; in place when send is this rank's block of recv */
        CHECK_OK(NULL, t->memcpy(c.st, 0, ds, in, n * 4, HCRT_COPY_H2D, NULL));
        CHECK_OK(NULL, t->coll_allgather(c.st, c.coll, ds, dr, n, HCRT_F32, s));
        if (s)
            CHECK_OK(NULL, t->stream_sync(c.st, s));
        CHECK_OK(NULL, t->memcpy(c.st, 0, got, dr, all * 4, HCRT_COPY_D2H, NULL));
        int bad = 0;
        for (int r = 0; r < size; r++) {
            fill(x, all, r);
            bad += memcmp(got + (size_t)r * n, x, n * 4) != 0;
        }
        CHECK_MSG(bad == 0, "allgather (%s): %d blocks wrong", how, bad);
        float *slot = (float *)dr + (size_t)rank * n;
        CHECK_OK(NULL, t->memcpy(c.st, 0, slot, in, n * 4, HCRT_COPY_H2D, NULL));
        CHECK_OK(NULL, t->coll_allgather(c.st, c.coll, slot, dr, n, HCRT_F32, s));
        if (s)
            CHECK_OK(NULL, t->stream_sync(c.st, s));
        CHECK_OK(NULL, t->memcpy(c.st, 0, got, dr, all * 4, HCRT_COPY_D2H, NULL));
        fill(x, all, size - 1);
        CHECK_MSG(memcmp(got + (size_t)(size - 1) * n, x, n * 4) == 0, "allgather in place (%s)", how);
        /* broadcast from every root, in place (the root's send is its recv) */
        for (int root = 0; root < size; root++) {
            CHECK_OK(NULL, t->memcpy(c.st, 0, dr, in, n * 4, HCRT_COPY_H2D, NULL));
            CHECK_OK(NULL, t->coll_broadcast(c.st, c.coll, dr, dr, n, HCRT_F32, root, s));
            if (s)
                CHECK_OK(NULL, t->stream_sync(c.st, s));
            CHECK_OK(NULL, t->memcpy(c.st, 0, got, dr, n * 4, HCRT_COPY_D2H, NULL));
            fill(x, all, root);
            CHECK_MSG(memcmp(got, x, n * 4) == 0, "broadcast from %d (%s)", root, how);
        }
    }
    /* Argument errors are answered before any rank waits (every rank makes the same mistakes). */
    CHECK_STATUS(NULL, t->coll_allreduce(c.st, c.coll, ds, dr, n, (hcrt_dtype_t)42, HCRT_OP_SUM, NULL),
                 HCRT_ERR_INVALID_ARG);
    CHECK(strstr(t->last_error(c.st), "'dtype'") != NULL);
    CHECK_STATUS(NULL, t->coll_allreduce(c.st, c.coll, ds, dr, n, HCRT_F32, (hcrt_op_t)9, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(t->last_error(c.st), "'op'") != NULL);
    CHECK_STATUS(NULL, t->coll_broadcast(c.st, c.coll, dr, dr, n, HCRT_F32, size, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(t->last_error(c.st), "'root'") != NULL);
    CHECK_STATUS(NULL, t->coll_allreduce(c.st, c.coll, in, dr, n, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(t->last_error(c.st), "'send'") != NULL);
    CHECK_STATUS(NULL, t->coll_allgather(c.st, c.coll, ds, dr, all, HCRT_F32, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(t->last_error(c.st), "'recv'") != NULL);
    CHECK_STATUS(NULL, t->coll_allreduce(c.st, NULL, ds, dr, n, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
    unsigned char junk[256] = {0};
    CHECK_STATUS(NULL, t->coll_init(c.st, 0, junk, size, rank, &(hcrt_backend_coll_t *){NULL}), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(t->last_error(c.st), "'id'") != NULL);
    /* still usable */
    CHECK_OK(NULL, t->memcpy(c.st, 0, ds, in, n * 4, HCRT_COPY_H2D, NULL));
    CHECK_OK(NULL, t->coll_allreduce(c.st, c.coll, ds, dr, n, HCRT_F32, HCRT_OP_SUM, NULL));
    CHECK_OK(NULL, t->memcpy(c.st, 0, got, dr, n * 4, HCRT_COPY_D2H, NULL));
    CHECK_MSG(memcmp(got, want, n * 4) == 0, "allreduce after the argument errors");
    t->mem_free(c.st, 0, ds);
    t->mem_free(c.st, 0, dr);
    close_group(&c);
    free(in);
    free(want);
    free(x);
    free(got);
}

/* The last rank's first collective hangs; the others wait inside it until that rank aborts. */
static void hang_and_abort(const hcrt_backend_v1_t *t)
{
    ctx_t c;
    fault = rank == size - 1 ? "coll_hang=1" : "";
    REQUIRE_OK(NULL, open_group(t, &c));
    void *d = NULL;
    REQUIRE_OK(NULL, t->mem_alloc(c.st, 0, 4096, &d));
    CHECK_OK(NULL, t->coll_allreduce(c.st, c.coll, d, d, 1024, HCRT_F32, HCRT_OP_SUM, c.stream));
    /* and one more queued behind it, which must fail at once after the abort */
    CHECK_OK(NULL, t->coll_allgather(c.st, c.coll, d, d, 1, HCRT_U8, c.stream));
    MPI_Barrier(MPI_COMM_WORLD); /* everyone is inside (or queued) */
    if (rank == size - 1)
        CHECK_OK(NULL, t->coll_abort(c.st, c.coll));
    hcrt_status_t st = t->stream_sync(c.st, c.stream);
    const char *why = t->last_error(c.st);
    CHECK_MSG(st == HCRT_ERR_BACKEND, "rank %d: the aborted allreduce returned %s", rank, hcrt_status_name(st));
    /* The hung rank's own operation ends by the abort (or fails at once if its worker had not reached it). */
    if (rank == size - 1)
        CHECK_MSG(strstr(why, "ended by an abort") || strstr(why, "aborted by group rank"), "rank %d: %s", rank, why);
    else
        CHECK_MSG(strstr(why, "aborted by group rank"), "rank %d: %s", rank, why);
    /* The aborted communicator is gone on the hung rank; the others abort theirs too. */
    if (rank != size - 1)
        CHECK_OK(NULL, t->coll_abort(c.st, c.coll));
    c.coll = NULL;
    t->mem_free(c.st, 0, d);
    close_group(&c);
    fault = "";
}

/* One rank fails to join: everyone's coll_init fails (promptly: the timeout is 60 s). */
static void init_failure(const hcrt_backend_v1_t *t)
{
    ctx_t c;
    fault = rank == 1 ? "coll_init_fail=1" : "";
    double t0 = now();
    hcrt_status_t st = open_group(t, &c);
    double took = now() - t0;
    CHECK_MSG(st != HCRT_OK, "rank %d: coll_init succeeded without rank 1", rank);
    CHECK_MSG(took < 30, "rank %d: coll_init took %.1f s to fail (the group's timeout, not the failure)", rank, took);
    CHECK_MSG(strstr(t->last_error(c.st), rank == 1 ? "injected failure" : "failed to join") != NULL, "rank %d: %s",
              rank, t->last_error(c.st));
    c.coll = NULL;
    close_group(&c);
    fault = "";
}

/* The link model is a lower bound: receiving B bytes takes at least B / HCRT_SIM_LINK_GBS. */
static void link_model(const hcrt_backend_v1_t *t)
{
    ctx_t c;
    link_gbs = "0.25";
    REQUIRE_OK(NULL, open_group(t, &c));
    const size_t n = 4u << 20; /* bytes each rank contributes */
    void *s = NULL, *r = NULL;
    REQUIRE_OK(NULL, t->mem_alloc(c.st, 0, n, &s));
    REQUIRE_OK(NULL, t->mem_alloc(c.st, 0, n * (size_t)size, &r));
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    CHECK_OK(NULL, t->coll_allgather(c.st, c.coll, s, r, n, HCRT_U8, NULL));
    double took = now() - t0, model = (double)(n * (size_t)(size - 1)) / 0.25e9;
    CHECK_MSG(took >= 0.95 * model, "allgather of %zu bytes from %d peers took %.3f s, under the link model's %.3f s",
              n, size - 1, took, model);
    t->mem_free(c.st, 0, s);
    t->mem_free(c.st, 0, r);
    close_group(&c);
    link_gbs = "0";
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const hcrt_backend_v1_t *t = load_sim();
    REQUIRE_MSG(t != NULL, "no libhcrt-backend-sim.so on HCRT_BACKEND_PATH (%s)", getenv("HCRT_BACKEND_PATH"));
    REQUIRE_MSG(HCRT_BACKEND_HAS_OP(t, coll_broadcast) && t->coll_unique_id_size > 0,
                "the sim plugin has no vendor collective family");
    operations(t);
    hang_and_abort(t);
    if (size > 1)
        init_failure(t);
    link_model(t);
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    if (rank == 0 && test_failures_ == 0)
        printf("simccl on %d ranks: operations, errors, hang and abort, failed set-up, link model: ok\n", size);
    TEST_DONE();
}
