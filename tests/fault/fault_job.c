/*
 * fault_job - an MPI job that runs one kind of work while HCRT_FAULT injects a failure, and checks every
 * result it gets (fault suite; tests/fault/fault_run.py checks the exit status and the lines).
 *
 *   fault_job coll    BACKEND N [-]   N blocking allreduces ("nb": nonblocking ones, waited for)
 *   fault_job coll_nb BACKEND N [-]
 *   fault_job ckpt    BACKEND N DIR   saves steps 1..N, waiting for each; then restores the newest
 *   fault_job restore BACKEND N DIR   saves steps 1..N, then restores the newest that verifies
 *   fault_job train   BACKEND N [-]   N training steps: hcrt_fault_point("train", step) on the weights,
 *                                     then an allreduce of them
 *   fault_job compute BACKEND N [-]   the same with two "compute" points per step (gemm, relu)
 *   fault_job kernels BACKEND N [-]   N steps of hcrt_compute_relu (the runtime's own compute site), each
 *                                     followed by an allreduce of its output
 *   fault_job ops     host 1 [-]      one call of every other collective (broadcast ... alltoallv)
 *
 * BACKEND is host or a backend (sim, cuda, ...): where the buffers live (the rank's device when it is of
 * that backend, else the backend's device 0), FAULT_JOB_COUNT floats each (default 40000). Every value is a
 * function of (rank, call), so every result is checked exactly: a wrong one prints "WRONG DATA" (a peer released onto
 * stale data, or an injected corruption). Under HCRT_ON_FAILURE=return a failed collective is followed by one more call
 * on the same communicator, which must fail naming the first failure ("poisoned"), and by allreduces on a fresh
 * communicator, which must work ("fresh communicator ok"). A failed save is reported and the next step saved. Training
 * steps that fail end the job with hcrt_abort() (the exit policy's status).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcrt/hcrt.h"
#include "test.h"

/* Floats per buffer: 160 KB by default, beyond the node window's small areas (64 KB), so schedules run
 * (FAULT_JOB_COUNT changes it). */
static size_t COUNT = 40000;

static hcrt_context_t *ctx;
static int rank, nranks;
static hcrt_device_t *host, *dev; /* dev: where the buffers live */
static int wrong;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Rank r's input of call k; the sum over ranks is exact in f32. */
static float input(int r, int k, size_t i)
{
    return (float)((r + 1) * k) + (float)(i % 13);
}
static float expected(int k, size_t i)
{
    return (float)(k * nranks * (nranks + 1) / 2) + (float)(nranks * (int)(i % 13));
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    if (dev == host)
        return calloc(1, bytes);
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, bytes, &p));
    return p;
}

static void put(void *d, const float *h, size_t n)
{
    REQUIRE_OK(ctx, hcrt_memcpy(dev, d, host, h, n * sizeof(float)));
}

/* Copies a result back and checks it; false (and a message) when it is wrong or cannot be read. */
static bool check(const char *what, int k, const void *d, float *h)
{
    hcrt_status_t st = hcrt_memcpy(host, h, dev, d, COUNT * sizeof(float));
    if (st != HCRT_OK) {
        printf("rank %d: %s %d: cannot read the result: %s\n", rank, what, k, hcrt_last_error(ctx));
        return false;
    }
    for (size_t i = 0; i < COUNT; i++) {
        if (h[i] != expected(k, i)) {
            printf("rank %d: WRONG DATA in %s %d at [%zu]: %g, want %g\n", rank, what, k, i, h[i], expected(k, i));
            wrong++;
            return false;
        }
    }
    return true;
}

static hcrt_status_t allreduce(hcrt_comm_t *comm, const void *x, void *y, bool nb)
{
    hcrt_device_t *d = dev == host ? NULL : dev;
    if (!nb)
        return hcrt_comm_allreduce(comm, x, y, COUNT, HCRT_F32, HCRT_OP_SUM, d);
    hcrt_request_t *req = NULL;
    hcrt_status_t st = hcrt_comm_iallreduce(comm, x, y, COUNT, HCRT_F32, HCRT_OP_SUM, d, &req);
    if (st != HCRT_OK)
        return st;
    st = hcrt_request_wait(req);
    hcrt_request_free(req);
    return st;
}

static int run_coll(int n, bool nb)
{
    hcrt_comm_t *comm;
    float *h = malloc(COUNT * sizeof(float));
    void *x = dev_alloc(COUNT * sizeof(float)), *y = dev_alloc(COUNT * sizeof(float));
    int failed_at = 0, ok = 0;
    hcrt_status_t first = HCRT_OK;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    for (int k = 1; k <= n; k++) {
        for (size_t i = 0; i < COUNT; i++)
            h[i] = input(rank, k, i);
        put(x, h, COUNT);
        hcrt_status_t st = allreduce(comm, x, y, nb);
        if (st != HCRT_OK) {
            printf("rank %d: call %d failed: %s: %s\n", rank, k, hcrt_status_name(st), hcrt_last_error(ctx));
            failed_at = k;
            first = st;
            break;
        }
        ok += check("call", k, y, h);
    }
    if (failed_at) {
        /* The communicator is poisoned: the next call fails at once, naming the first failure. */
        hcrt_status_t st = allreduce(comm, x, y, nb);
        if (st == first && strstr(hcrt_last_error(ctx), "earlier failure") != NULL)
            printf("rank %d: poisoned: %s\n", rank, hcrt_last_error(ctx));
        else
            printf("rank %d: NOT POISONED: %s: %s\n", rank, hcrt_status_name(st), hcrt_last_error(ctx));
        /* A fresh communicator (its own window, epochs and pool) works, on host buffers (the device may
         * be lost). */
        hcrt_comm_t *fresh;
        float *hx = malloc(COUNT * sizeof(float)), *hy = malloc(COUNT * sizeof(float));
        REQUIRE_OK(ctx, hcrt_comm_world(ctx, &fresh));
        bool fine = true;
        for (int k = 1; k <= 2; k++) { /* (a rule for seq 3 would match the fresh one's third call) */
            for (size_t i = 0; i < COUNT; i++)
                hx[i] = input(rank, k, i);
            hcrt_status_t fst = hcrt_comm_allreduce(fresh, hx, hy, COUNT, HCRT_F32, HCRT_OP_SUM, NULL);
            for (size_t i = 0; i < COUNT && fst == HCRT_OK; i++)
                if (hy[i] != expected(k, i))
                    fst = HCRT_ERR_CORRUPT;
            if (fst != HCRT_OK) {
                printf("rank %d: FRESH COMMUNICATOR FAILED: %s: %s\n", rank, hcrt_status_name(fst),
                       hcrt_last_error(ctx));
                fine = false;
                wrong++;
                break;
            }
        }
        if (fine)
            printf("rank %d: fresh communicator ok\n", rank);
        hcrt_comm_destroy(fresh);
        free(hx);
        free(hy);
    }
    printf("rank %d: done: %d calls ok, failed at %d (%s)\n", rank, ok, failed_at, hcrt_status_name(first));
    hcrt_comm_destroy(comm);
    free(h);
    return wrong ? 1 : 0;
}

/* One call of each collective on host buffers: an injected failure at any of them is reported and
 * poisons the communicator (the remaining ones fail at once). */
static int run_ops(void)
{
    static const char *const names[] = {"broadcast", "allgather", "reduce_scatter", "barrier",    "reduce",
                                        "alltoall",  "gather",    "scatter",        "allgatherv", "alltoallv"};
    hcrt_comm_t *comm;
    size_t n = 64 * (size_t)nranks;
    int32_t *a = calloc(n, sizeof(int32_t)), *b = calloc(n, sizeof(int32_t));
    size_t *counts = calloc((size_t)nranks, sizeof(size_t)), *displs = calloc((size_t)nranks, sizeof(size_t));
    for (int r = 0; r < nranks; r++) {
        counts[r] = 64;
        displs[r] = (size_t)r * 64;
    }
    for (size_t i = 0; i < n; i++)
        a[i] = (int32_t)(rank * 1000 + (int)i);
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    int failures = 0;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        hcrt_status_t st = HCRT_OK;
        switch (k) {
        case 0:
            st = hcrt_comm_broadcast(comm, a, 64, HCRT_I32, 0, NULL);
            break;
        case 1:
            st = hcrt_comm_allgather(comm, a, b, 64, HCRT_I32, NULL);
            break;
        case 2:
            st = hcrt_comm_reduce_scatter(comm, a, b, 64, HCRT_I32, HCRT_OP_SUM, NULL);
            break;
        case 3:
            st = hcrt_comm_barrier(comm);
            break;
        case 4:
            st = hcrt_comm_reduce(comm, a, b, 64, HCRT_I32, HCRT_OP_SUM, 0, NULL);
            break;
        case 5:
            st = hcrt_comm_alltoall(comm, a, b, 64, HCRT_I32, NULL);
            break;
        case 6:
            st = hcrt_comm_gather(comm, a, b, 64, HCRT_I32, 0, NULL);
            break;
        case 7:
            st = hcrt_comm_scatter(comm, a, b, 64, HCRT_I32, 0, NULL);
            break;
        case 8:
            st = hcrt_comm_allgatherv(comm, a, b, counts, displs, HCRT_I32, NULL);
            break;
        default:
            st = hcrt_comm_alltoallv(comm, a, counts, displs, b, counts, displs, HCRT_I32, NULL);
            break;
        }
        if (st != HCRT_OK) {
            printf("rank %d: %s (call %zu) failed: %s: %s\n", rank, names[k], k + 1, hcrt_status_name(st),
                   hcrt_last_error(ctx));
            failures++;
        } else {
            printf("rank %d: %s ok\n", rank, names[k]);
        }
    }
    printf("rank %d: %d of the calls failed\n", rank, failures);
    hcrt_comm_destroy(comm);
    free(a);
    free(b);
    free(counts);
    free(displs);
    return 0;
}

/* ---- checkpoints --------------------------------------------------------------------------------- */

#define ROWS 50000 /* per rank: f32 rows of one element, 200 KB */

typedef struct ckstate {
    hcrt_ckpt_t *ck;
    float *h;
    void *d;
} ckstate_t;

static void ck_fill(ckstate_t *s, int step)
{
    for (size_t i = 0; i < ROWS; i++)
        s->h[i] = (float)(step * 1000 + rank) + (float)(i % 101);
    put(s->d, s->h, ROWS);
}

static ckstate_t ck_open(const char *dir)
{
    ckstate_t s;
    hcrt_ckpt_params_t p;
    char local[1024];
    hcrt_ckpt_params_init(&p);
    snprintf(local, sizeof(local), "%s/local/node%d", dir, rank);
    p.dir = dir;
    p.local_dir = local;
    p.keep = 3;
    REQUIRE_OK(ctx, hcrt_ckpt_open(ctx, NULL, &p, &s.ck));
    s.h = malloc(ROWS * sizeof(float));
    s.d = dev_alloc(ROWS * sizeof(float));
    REQUIRE_OK(ctx, hcrt_ckpt_register(s.ck, "w", (hcrt_buffer_t){dev, s.d, ROWS, HCRT_F32}, 1,
                                       (uint64_t[]){(uint64_t)ROWS * (uint64_t)nranks},
                                       &(hcrt_ckpt_shard_t){(uint64_t)rank * ROWS, ROWS}));
    return s;
}

/* Restores the newest step that verifies and checks every value; returns the step or -1. */
static int64_t ck_restore(ckstate_t *s)
{
    int64_t step = -1;
    ck_fill(s, 999);
    double t0 = now();
    hcrt_status_t st = hcrt_ckpt_restore(s->ck, HCRT_CKPT_LATEST, NULL, 0, NULL, &step);
    if (st != HCRT_OK) {
        printf("rank %d: restore failed: %s: %s\n", rank, hcrt_status_name(st), hcrt_last_error(ctx));
        return -1;
    }
    hcrt_status_t rst = hcrt_memcpy(host, s->h, dev, s->d, ROWS * sizeof(float));
    for (size_t i = 0; i < ROWS && rst == HCRT_OK; i++) {
        if (s->h[i] != (float)(step * 1000 + rank) + (float)(i % 101)) {
            printf("rank %d: WRONG DATA restored from step %lld at [%zu]\n", rank, (long long)step, i);
            wrong++;
            break;
        }
    }
    if (rst != HCRT_OK) {
        printf("rank %d: restore of step %lld: cannot read back: %s\n", rank, (long long)step, hcrt_last_error(ctx));
        return -1;
    }
    printf("rank %d: restored step %lld in %.2f s\n", rank, (long long)step, now() - t0);
    return step;
}

static int run_ckpt(int n, const char *dir, bool restore_only)
{
    ckstate_t s = ck_open(dir);
    for (int step = 1; step <= n; step++) {
        ck_fill(&s, step);
        hcrt_status_t st = hcrt_ckpt_save(s.ck, step, NULL, 0);
        if (st == HCRT_OK)
            st = hcrt_ckpt_wait(s.ck);
        if (st != HCRT_OK)
            printf("rank %d: step %d failed: %s: %s\n", rank, step, hcrt_status_name(st), hcrt_last_error(ctx));
        else if (!restore_only)
            printf("rank %d: step %d committed\n", rank, step);
    }
    ck_restore(&s);
    hcrt_status_t st = hcrt_ckpt_close(s.ck);
    if (st != HCRT_OK)
        printf("rank %d: close: %s: %s\n", rank, hcrt_status_name(st), hcrt_last_error(ctx));
    return wrong ? 1 : 0;
}

/* ---- training and compute points ------------------------------------------------------------------ */

/* What a training step runs before its allreduce: a "train" point, two "compute" points (gemm, relu), or
 * hcrt_compute_relu on the device (the runtime's own compute site; the input is positive, so the relu
 * leaves it as it is). A failed step ends the job through hcrt_abort. */
typedef enum step_kind { STEP_TRAIN, STEP_POINTS, STEP_KERNELS } step_kind_t;

static int run_steps(int n, step_kind_t kind)
{
    hcrt_comm_t *comm;
    float *h = malloc(COUNT * sizeof(float));
    void *x = dev_alloc(COUNT * sizeof(float)), *g = dev_alloc(COUNT * sizeof(float));
    void *y = kind == STEP_KERNELS ? dev_alloc(COUNT * sizeof(float)) : x;
    hcrt_buffer_t xb = {dev, x, COUNT, HCRT_F32};
    int64_t calls = 0;
    char what[64];
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    for (int step = 1; step <= n; step++) {
        for (size_t i = 0; i < COUNT; i++)
            h[i] = input(rank, step, i);
        put(x, h, COUNT);
        hcrt_status_t st = HCRT_OK;
        if (kind == STEP_POINTS) {
            static const char *const ops[] = {"gemm", "relu"};
            for (int o = 0; o < 2 && st == HCRT_OK; o++) {
                st = hcrt_fault_point(ctx, "compute", ops[o], ++calls, &xb);
                snprintf(what, sizeof(what), "compute %s #%lld of step %d", ops[o], (long long)calls, step);
            }
        } else if (kind == STEP_KERNELS) {
            st = hcrt_compute_relu(dev, y, x, COUNT, NULL);
            snprintf(what, sizeof(what), "the relu of step %d", step);
        } else {
            st = hcrt_fault_point(ctx, "train", NULL, step, &xb);
            snprintf(what, sizeof(what), "training step %d", step);
        }
        if (st != HCRT_OK)
            hcrt_abort(ctx, st, what);
        st = hcrt_comm_allreduce(comm, y, g, COUNT, HCRT_F32, HCRT_OP_SUM, dev == host ? NULL : dev);
        if (st != HCRT_OK)
            hcrt_abort(ctx, st, "the gradient allreduce");
        check("step", step, g, h);
    }
    printf("rank %d: %d steps done\n", rank, n);
    hcrt_comm_destroy(comm);
    return wrong ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: fault_job coll|coll_nb|ops|ckpt|restore|train|compute|kernels host|sim N [DIR]\n");
        return 2;
    }
    const char *mode = argv[1], *backend = argv[2], *dir = argc > 4 ? argv[4] : "-";
    int n = atoi(argv[3]), rc = 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("FAULT_JOB_COUNT") != NULL)
        COUNT = (size_t)atol(getenv("FAULT_JOB_COUNT"));
    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    REQUIRE_OK(ctx, hcrt_context_rank(ctx, &rank, &nranks));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    dev = host;
    if (strcmp(backend, "host") != 0) {
        /* This rank's own device when it is of that backend (the vendor path needs it), else its 0. */
        REQUIRE_OK(ctx, hcrt_context_device(ctx, &dev));
        if (strcmp(hcrt_device_backend(dev), backend) != 0)
            REQUIRE_OK(ctx, hcrt_device_find(ctx, backend, 0, &dev));
    }
    double t0 = now();
    if (strcmp(mode, "coll") == 0 || strcmp(mode, "coll_nb") == 0)
        rc = run_coll(n, strcmp(mode, "coll_nb") == 0);
    else if (strcmp(mode, "ckpt") == 0 || strcmp(mode, "restore") == 0)
        rc = run_ckpt(n, dir, strcmp(mode, "restore") == 0);
    else if (strcmp(mode, "kernels") == 0)
        rc = run_steps(n, STEP_KERNELS);
    else if (strcmp(mode, "ops") == 0)
        rc = run_ops();
    else if (strcmp(mode, "train") == 0 || strcmp(mode, "compute") == 0)
        rc = run_steps(n, strcmp(mode, "compute") == 0 ? STEP_POINTS : STEP_TRAIN);
    else
        fprintf(stderr, "unknown mode %s\n", mode);
    wrong += test_failures_;
    /* Every rank reaches the end before any finishes: a rank the job is aborting is waited for here
     * (Open MPI 4.1's mpirun may crash when one rank aborts while the others exit normally). */
    hcrt_comm_t *world;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &world));
    hcrt_status_t st = hcrt_comm_barrier(world);
    if (st != HCRT_OK)
        printf("rank %d: final barrier: %s: %s\n", rank, hcrt_status_name(st), hcrt_last_error(ctx));
    hcrt_comm_destroy(world);
    printf("rank %d: finished in %.2f s with %d wrong result(s)\n", rank, now() - t0, wrong);
    hcrt_finalize(ctx);
    return rc;
}
