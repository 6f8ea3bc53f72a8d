/*
 * tests/mpi/test_compute_mpi.c - the compute extension in a multi-rank job that mixes cpu and sim devices
 * (even ranks compute on the host, odd ranks on their sim device), as a data-parallel trainer uses it:
 *  1. every rank computes the gradient of the same micro-batch of a two-layer MLP (forward, softmax
 *     cross-entropy, backward) on a stream; the gradients' bits are the same on every rank, cpu or sim,
 *     which is what the trainer's exact mode stands on;
 *  2. then each rank trains on its own micro-batches of uneven sizes for a few steps: gradients summed
 *     (micro-batches with beta = 1 and accumulate, ranks with hcrt_comm_allreduce on the device buffers,
 *     across the two backends), the optimizer dividing by the global sample count; every rank ends with
 *     the same weights and the loss has fallen (a linear teacher labels the data).
 * Run under mpirun with HCRT_SIM_DEVICES=1.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/hcrt.h"
#include "test.h"

enum { IN = 64, HID = 48, CL = 10, MAXB = 40, STEPS = 30 };

static hcrt_context_t *ctx;
static hcrt_device_t *dev, *host;
static int rank, nranks;

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng % 2000001) / 1000000.0 - 1.0);
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, bytes, &p));
    REQUIRE_OK(ctx, hcrt_memset(dev, p, 0, bytes));
    return p;
}

static void upload(void *d, const void *h, size_t bytes)
{
    REQUIRE_OK(ctx, hcrt_memcpy(dev, d, host, h, bytes));
}

static void download(void *h, const void *d, size_t bytes)
{
    REQUIRE_OK(ctx, hcrt_memcpy(host, h, dev, d, bytes));
}

typedef struct net {
    float *w1, *b1, *w2, *b2, *m1, *m2; /* parameters and SGD momentum */
    float *dw1, *db1, *dw2, *db2;       /* gradients (summed) */
    float *x, *h, *z, *dz, *dh, *loss;  /* one micro-batch's activations */
    int32_t *y;
} net_t;

static void net_init(net_t *n)
{
    float w1[IN * HID], b1[HID], w2[HID * CL], b2[CL];
    rng = 1234567; /* the same initial weights on every rank */
    for (int i = 0; i < IN * HID; i++)
        w1[i] = 0.2f * frand();
    for (int i = 0; i < HID; i++)
        b1[i] = 0.05f * frand();
    for (int i = 0; i < HID * CL; i++)
        w2[i] = 0.2f * frand();
    for (int i = 0; i < CL; i++)
        b2[i] = 0.05f * frand();
    n->w1 = dev_alloc(sizeof(w1)), n->b1 = dev_alloc(sizeof(b1)), n->w2 = dev_alloc(sizeof(w2));
    n->b2 = dev_alloc(sizeof(b2));
    upload(n->w1, w1, sizeof(w1)), upload(n->b1, b1, sizeof(b1)), upload(n->w2, w2, sizeof(w2));
    upload(n->b2, b2, sizeof(b2));
    n->m1 = dev_alloc(sizeof(w1)), n->m2 = dev_alloc(sizeof(w2));
    n->dw1 = dev_alloc(sizeof(w1)), n->db1 = dev_alloc(sizeof(b1)), n->dw2 = dev_alloc(sizeof(w2));
    n->db2 = dev_alloc(sizeof(b2));
    n->x = dev_alloc(MAXB * IN * 4), n->h = dev_alloc(MAXB * HID * 4), n->z = dev_alloc(MAXB * CL * 4);
    n->dz = dev_alloc(MAXB * CL * 4), n->dh = dev_alloc(MAXB * HID * 4), n->loss = dev_alloc(4);
    n->y = dev_alloc(MAXB * 4);
}

/* A micro-batch of m samples from `seed`: random inputs, labelled by a fixed linear teacher (the class
 * whose teacher row has the largest dot product), so there is something to learn. */
static void batch(net_t *n, int m, uint64_t seed)
{
    static float teacher[CL * IN];
    static bool have_teacher;
    if (!have_teacher) {
        rng = 777;
        for (int i = 0; i < CL * IN; i++)
            teacher[i] = frand();
        have_teacher = true;
    }
    float x[MAXB * IN];
    int32_t y[MAXB];
    rng = seed * 2654435761ull + 1;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < IN; j++)
            x[i * IN + j] = frand();
        float best = -1e30f;
        for (int c = 0; c < CL; c++) {
            float d = 0;
            for (int j = 0; j < IN; j++)
                d += teacher[c * IN + j] * x[i * IN + j];
            if (d > best)
                best = d, y[i] = c;
        }
    }
    upload(n->x, x, (size_t)m * IN * 4);
    upload(n->y, y, (size_t)m * 4);
}

/* Forward, loss (accumulated into n->loss) and backward of one micro-batch of m samples on stream s; the
 * gradients are summed into dW/db (first: overwritten). */
static void micro_step(net_t *n, int m, bool first, hcrt_stream_t *s)
{
    const float beta = first ? 0.0f : 1.0f;
    CHECK_OK(ctx, hcrt_compute_gemm(dev, false, false, m, HID, IN, 1, n->x, IN, n->w1, HID, 0, n->h, HID, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_bias_add(dev, n->h, n->h, n->b1, m, HID, s));
    CHECK_OK(ctx, hcrt_compute_relu(dev, n->h, n->h, (size_t)m * HID, s));
    CHECK_OK(ctx, hcrt_compute_gemm(dev, false, false, m, CL, HID, 1, n->h, HID, n->w2, CL, 0, n->z, CL, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_bias_add(dev, n->z, n->z, n->b2, m, CL, s));
    CHECK_OK(ctx, hcrt_compute_softmax_xent(dev, n->z, n->y, m, CL, n->loss, n->dz, !first, s));
    CHECK_OK(ctx,
             hcrt_compute_gemm(dev, true, false, HID, CL, m, 1, n->h, HID, n->dz, CL, beta, n->dw2, CL, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_col_sum(dev, n->db2, n->dz, m, CL, !first, s));
    CHECK_OK(ctx, hcrt_compute_gemm(dev, false, true, m, HID, CL, 1, n->dz, CL, n->w2, CL, 0, n->dh, HID, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_relu_backward(dev, n->dh, n->dh, n->h, (size_t)m * HID, s));
    CHECK_OK(ctx,
             hcrt_compute_gemm(dev, true, false, IN, HID, m, 1, n->x, IN, n->dh, HID, beta, n->dw1, HID, HCRT_F32, s));
    CHECK_OK(ctx, hcrt_compute_col_sum(dev, n->db1, n->dh, m, HID, !first, s));
}

static uint64_t grad_hash(net_t *n)
{
    static float buf[IN * HID];
    uint64_t h = 1469598103934665603ull;
    download(buf, n->dw1, IN * HID * 4), h = fnv(buf, IN * HID * 4, h);
    download(buf, n->db1, HID * 4), h = fnv(buf, HID * 4, h);
    download(buf, n->dw2, HID * CL * 4), h = fnv(buf, HID * CL * 4, h);
    download(buf, n->db2, CL * 4), h = fnv(buf, CL * 4, h);
    download(buf, n->loss, 4), h = fnv(buf, 4, h);
    return h;
}

/* Every rank's value equal; rank 0 says which differ. */
static void check_same(uint64_t mine, const char *what)
{
    uint64_t all[64];
    MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (int r = 1; r < nranks; r++)
        CHECK_MSG(all[r] == all[0], "%s: rank %d (%s) has %016llx, rank 0 (cpu) %016llx", what, r,
                  r % 2 ? "sim" : "cpu", (unsigned long long)all[r], (unsigned long long)all[0]);
}

int main(int argc, char **argv)
{
    (void)argc, (void)argv;
    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    REQUIRE_OK(ctx, hcrt_context_rank(ctx, &rank, &nranks));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    if (rank % 2)
        REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &dev));
    else
        dev = host;
    CHECK(hcrt_device_has_compute(dev));
    hcrt_stream_t *s = NULL;
    REQUIRE_OK(ctx, hcrt_stream_create(dev, &s));
    net_t n;
    net_init(&n);

    /* 1. the same two micro-batches (sizes 17 and 23) on every rank: the same gradient bits */
    batch(&n, 17, 99);
    micro_step(&n, 17, true, s);
    CHECK_OK(ctx, hcrt_stream_sync(s));
    batch(&n, 23, 100);
    micro_step(&n, 23, false, s);
    CHECK_OK(ctx, hcrt_stream_sync(s));
    check_same(grad_hash(&n), "gradient of the same micro-batches");

    /* 2. data parallel with uneven shares: rank r takes r + 1 micro-batches of 8 + 3r samples per step */
    hcrt_comm_t *world = NULL;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &world));
    int global = 0;
    for (int r = 0; r < nranks; r++)
        global += (r + 1) * (8 + 3 * r);
    hcrt_optim_params_t o;
    hcrt_optim_params_init(&o);
    o.lr = 0.2, o.momentum = 0.9, o.grad_scale = 1.0 / global;
    float first_loss = 0, last_loss = 0;
    for (int step = 0; step < STEPS; step++) {
        const int mb = 8 + 3 * rank;
        for (int k = 0; k <= rank; k++) {
            batch(&n, mb, (uint64_t)step * 1000 + (uint64_t)rank * 10 + (uint64_t)k);
            micro_step(&n, mb, k == 0, s);
            CHECK_OK(ctx, hcrt_stream_sync(s)); /* the next batch's upload reuses the buffers */
        }
        float *bufs[5] = {n.dw1, n.db1, n.dw2, n.db2, n.loss};
        const size_t counts[5] = {IN * HID, HID, HID * CL, CL, 1};
        for (int i = 0; i < 5; i++)
            CHECK_OK(ctx, hcrt_comm_allreduce(world, HCRT_IN_PLACE, bufs[i], counts[i], HCRT_F32, HCRT_OP_SUM, dev));
        float loss = 0;
        download(&loss, n.loss, 4);
        if (step == 0)
            first_loss = loss / (float)global;
        last_loss = loss / (float)global;
        CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n.w1, n.dw1, n.m1, IN * HID, s));
        CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n.w2, n.dw2, n.m2, HID * CL, s));
        o.momentum = 0;
        CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n.b1, n.db1, NULL, HID, s));
        CHECK_OK(ctx, hcrt_compute_optim_step(dev, &o, n.b2, n.db2, NULL, CL, s));
        o.momentum = 0.9;
        CHECK_OK(ctx, hcrt_stream_sync(s));
    }
    static float w[IN * HID];
    uint64_t h = 1469598103934665603ull;
    download(w, n.w1, sizeof(w)), h = fnv(w, sizeof(w), h);
    download(w, n.w2, HID * CL * 4), h = fnv(w, HID * CL * 4, h);
    check_same(h, "weights after the data-parallel steps");
    if (rank == 0)
        fprintf(stderr, "%d ranks (cpu and sim), %d samples per step: mean loss %.4f -> %.4f\n", nranks, global,
                (double)first_loss, (double)last_loss);
    CHECK_MSG(last_loss < 0.8f * first_loss, "the loss did not fall: %g -> %g", (double)first_loss, (double)last_loss);
    CHECK_OK(ctx, hcrt_stream_destroy(s));
    hcrt_comm_destroy(world);
    int failed = test_failures_, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    hcrt_finalize(ctx);
    return any ? 1 : 0;
}
