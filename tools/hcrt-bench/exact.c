/*
 * tools/hcrt-bench/exact.c - `hcrt-bench exact`: the cost of exact mode in a compute-bound data-parallel
 * step, against the normal (float) reduction of the same job in the same run.
 *
 *   mpirun -np N hcrt-bench exact [--in I] [--hidden H] [--out O] [--micro-batch m] [--micro-batches K]
 *                                 [--steps S] [--backend cpu|sim] [--json FILE]
 *
 * Every rank runs a two-layer perceptron I-H-O on its device (the host, or its sim device) with hcrt's
 * compute extension (hcrt/compute.h, the gemm hcrt-train uses): per micro-batch of m samples a forward
 * pass (X W1, ReLU, H W2) and a backward pass producing the weight gradients dW1 (I x H) and dW2 (H x O)
 * of the loss |Y|^2 / 2. A step is K micro-batches per rank, then the reduction of the gradients over
 * ranks, divided by the global sample count:
 *   normal  the micro-batches accumulate into the gradient buffers (gemm beta = 1), then
 *           hcrt_comm_allreduce_grads (f32 sum, then the scale)
 *   exact   each micro-batch's gradients are written (beta = 0) and folded into the exact accumulator
 *           (hcrt_exact_add), then hcrt_exact_allreduce with HCRT_EXACT_MEAN
 * The modes alternate step by step (so that a machine shared with other work slows both alike); each
 * step's time is the slowest rank's; the figures are medians over the timed steps (and the best step, the
 * figure that a machine shared with other work distorts least). Beside them: the machine's memcpy of the
 * same gradients (ns per element), and the fold alone, from host memory and from a sim device (staged
 * through the accumulator's pinned chunks).
 */
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcrt/hcrt.h"

int hcrt_bench_exact_main(int argc, char **argv);

static const char *const usage =
    "usage: mpirun -np N hcrt-bench exact [options]\n"
    "  --in I             input features (default 512)\n"
    "  --hidden H         hidden units (default 1024)\n"
    "  --out O            outputs (default 512)\n"
    "  --micro-batch m    samples per micro-batch (default 64)\n"
    "  --micro-batches K  micro-batches per rank and step (default 4)\n"
    "  --steps S          timed steps per mode (default 8; 2 more per mode are untimed)\n"
    "  --backend B        where each rank computes: cpu (default) or sim (its sim device)\n"
    "  --json FILE        write the figures as JSON (rank 0)\n"
    "Exact mode's step time against the normal float reduction of the same MLP job, alternating.\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define HCRT_BENCH_TRY(call)                                                                                           \
    do {                                                                                                               \
        hcrt_status_t s_ = (call);                                                                                     \
        if (s_ != HCRT_OK)                                                                                             \
            return s_;                                                                                                 \
    } while (0)

typedef struct mlp {
    hcrt_device_t *dev;
    size_t in, hidden, out, m;
    float *w1, *w2, *x[2], *h, *y, *dh, *g1, *g2; /* device memory */
} mlp_t;

/* One micro-batch's forward and backward passes on the device (synchronous calls); the weight gradients
 * go to g1, g2 (beta 1: added to them). The loss is |Y|^2 / 2, so dY is Y. */
static hcrt_status_t micro_batch(mlp_t *n, int k, float beta)
{
    const float *x = n->x[k % 2];
    HCRT_BENCH_TRY(hcrt_compute_gemm(n->dev, false, false, n->m, n->hidden, n->in, 1, x, n->in, n->w1, n->hidden, 0,
                                     n->h, n->hidden, HCRT_F32, NULL));
    HCRT_BENCH_TRY(hcrt_compute_relu(n->dev, n->h, n->h, n->m * n->hidden, NULL));
    HCRT_BENCH_TRY(hcrt_compute_gemm(n->dev, false, false, n->m, n->out, n->hidden, 1, n->h, n->hidden, n->w2, n->out,
                                     0, n->y, n->out, HCRT_F32, NULL));
    HCRT_BENCH_TRY(hcrt_compute_gemm(n->dev, true, false, n->hidden, n->out, n->m, 1, n->h, n->hidden, n->y, n->out,
                                     beta, n->g2, n->out, HCRT_F32, NULL));
    HCRT_BENCH_TRY(hcrt_compute_gemm(n->dev, false, true, n->m, n->hidden, n->out, 1, n->y, n->out, n->w2, n->out, 0,
                                     n->dh, n->hidden, HCRT_F32, NULL));
    HCRT_BENCH_TRY(hcrt_compute_relu_backward(n->dev, n->dh, n->dh, n->h, n->m * n->hidden, NULL));
    return hcrt_compute_gemm(n->dev, true, false, n->in, n->hidden, n->m, 1, x, n->in, n->dh, n->hidden, beta, n->g1,
                             n->hidden, HCRT_F32, NULL);
}

/* A device buffer of count floats filled with small values from seed (through a host copy). */
static hcrt_status_t device_fill(hcrt_device_t *dev, hcrt_device_t *host, size_t count, float scale, unsigned seed,
                                 float **out)
{
    float *h = malloc(count * sizeof(float));
    void *d = NULL;
    if (h == NULL)
        return HCRT_ERR_NO_MEMORY;
    for (size_t i = 0; i < count; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = ((float)(seed >> 8) * 0x1p-24f - 0.5f) * scale;
    }
    hcrt_status_t st = hcrt_mem_alloc(dev, count * sizeof(float), &d);
    if (st == HCRT_OK)
        st = hcrt_memcpy(dev, d, host, h, count * sizeof(float));
    free(h);
    *out = d;
    return st;
}

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

int hcrt_bench_exact_main(int argc, char **argv)
{
    int in = 512, hidden = 1024, outn = 512, m = 64, K = 4, steps = 8, rc = 1, rank = 0, nranks = 1;
    const char *json = NULL, *backend = "cpu";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (i == 1 && strcmp(a, "exact") == 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        bool ok = v != NULL;
        if (ok && strcmp(a, "--in") == 0)
            ok = parse_int(v, 1, 1 << 16, &in);
        else if (ok && strcmp(a, "--hidden") == 0)
            ok = parse_int(v, 1, 1 << 16, &hidden);
        else if (ok && strcmp(a, "--out") == 0)
            ok = parse_int(v, 1, 1 << 16, &outn);
        else if (ok && strcmp(a, "--micro-batch") == 0)
            ok = parse_int(v, 1, 1 << 16, &m);
        else if (ok && strcmp(a, "--micro-batches") == 0)
            ok = parse_int(v, 1, 4096, &K);
        else if (ok && strcmp(a, "--steps") == 0)
            ok = parse_int(v, 1, 10000, &steps);
        else if (ok && strcmp(a, "--backend") == 0 && (strcmp(v, "cpu") == 0 || strcmp(v, "sim") == 0))
            backend = v;
        else if (ok && strcmp(a, "--json") == 0)
            json = v;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "hcrt-bench exact: bad argument '%s%s%s'\n%s", a, v ? " " : "", v ? v : "", usage);
            return 2;
        }
        i++;
    }
    hcrt_context_t *ctx = NULL;
    hcrt_comm_t *comm = NULL;
    hcrt_exact_t *acc = NULL;
    hcrt_device_t *host = NULL;
    mlp_t n = {.in = (size_t)in, .hidden = (size_t)hidden, .out = (size_t)outn, .m = (size_t)m};
    float *src = NULL, *dst = NULL;
    double *t[2] = {NULL}, *tc[2] = {NULL}, *tf[2] = {NULL}, *tr[2] = {NULL};
    const size_t p1 = n.in * n.hidden, p2 = n.hidden * n.out, P = p1 + p2;
    if (hcrt_init(NULL, &ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench exact: %s\n", hcrt_last_error(NULL));
        return 1;
    }
#define EX_CHECK(call)                                                                                                 \
    do {                                                                                                               \
        hcrt_status_t s_ = (call);                                                                                     \
        if (s_ != HCRT_OK) {                                                                                           \
            fprintf(stderr, "hcrt-bench exact: %s: %s: %s\n", #call, hcrt_status_name(s_), hcrt_last_error(ctx));      \
            goto out;                                                                                                  \
        }                                                                                                              \
    } while (0)
    EX_CHECK(hcrt_comm_world(ctx, &comm));
    EX_CHECK(hcrt_comm_rank(comm, &rank));
    EX_CHECK(hcrt_comm_size(comm, &nranks));
    EX_CHECK(hcrt_device_host(ctx, &host));
    n.dev = host;
    if (strcmp(backend, "sim") == 0)
        EX_CHECK(hcrt_device_find(ctx, "sim", 0, &n.dev));
    if (!hcrt_device_has_compute(n.dev)) {
        fprintf(stderr, "hcrt-bench exact: the %s backend has no compute extension\n", backend);
        goto out;
    }
    EX_CHECK(device_fill(n.dev, host, p1, 0.1f, 1, &n.w1));
    EX_CHECK(device_fill(n.dev, host, p2, 0.1f, 2, &n.w2));
    EX_CHECK(device_fill(n.dev, host, n.m * n.in, 1.0f, 3, &n.x[0]));
    EX_CHECK(device_fill(n.dev, host, n.m * n.in, 1.0f, 4, &n.x[1]));
    EX_CHECK(device_fill(n.dev, host, n.m * n.hidden, 0, 5, &n.h));
    EX_CHECK(device_fill(n.dev, host, n.m * n.out, 0, 6, &n.y));
    EX_CHECK(device_fill(n.dev, host, n.m * n.hidden, 0, 7, &n.dh));
    EX_CHECK(device_fill(n.dev, host, p1, 0, 8, &n.g1));
    EX_CHECK(device_fill(n.dev, host, p2, 0, 9, &n.g2));
    src = calloc(P, sizeof(float));
    dst = calloc(P, sizeof(float));
    if (src == NULL || dst == NULL) {
        fprintf(stderr, "hcrt-bench exact: out of memory\n");
        goto out;
    }
    hcrt_buffer_t grads[2] = {{n.dev, n.g1, p1, HCRT_F32}, {n.dev, n.g2, p2, HCRT_F32}};
    const char *names[2] = {"dW1", "dW2"};
    EX_CHECK(hcrt_exact_create(comm, grads, names, 2, NULL, &acc));
    int words = 0;
    EX_CHECK(hcrt_exact_info(acc, &words, NULL));

    /* Steps: untimed warm-up, then alternating normal and exact. */
    const int warm = 2, total = warm + steps;
    for (int mode = 0; mode < 2; mode++) {
        t[mode] = calloc((size_t)total, sizeof(double));
        tc[mode] = calloc((size_t)total, sizeof(double));
        tf[mode] = calloc((size_t)total, sizeof(double));
        tr[mode] = calloc((size_t)total, sizeof(double));
        if (!t[mode] || !tc[mode] || !tf[mode] || !tr[mode]) {
            fprintf(stderr, "hcrt-bench exact: out of memory\n");
            goto out;
        }
    }
    for (int s = 0; s < total; s++) {
        for (int mode = 0; mode < 2; mode++) {
            int64_t global = 0;
            double compute = 0, foldt = 0;
            EX_CHECK(hcrt_comm_barrier(comm));
            double t0 = now();
            for (int k = 0; k < K; k++) {
                double c0 = now();
                EX_CHECK(micro_batch(&n, rank * K + k, mode == 0 && k > 0 ? 1.0f : 0.0f));
                double c1 = now();
                compute += c1 - c0;
                if (mode == 1) {
                    EX_CHECK(hcrt_exact_add(acc));
                    foldt += now() - c1;
                }
            }
            double r0 = now();
            if (mode == 0)
                EX_CHECK(hcrt_comm_allreduce_grads(comm, grads, 2, (int64_t)K * m, &global, HCRT_GRADS_MEAN));
            else
                EX_CHECK(hcrt_exact_allreduce(acc, (int64_t)K * m, &global, HCRT_EXACT_MEAN));
            double t1 = now();
            double v[4] = {t1 - t0, compute, foldt, t1 - r0};
            EX_CHECK(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, v, 4, HCRT_F64, HCRT_OP_MAX, NULL));
            t[mode][s] = v[0];
            tc[mode][s] = v[1];
            tf[mode][s] = v[2];
            tr[mode][s] = v[3];
        }
    }
    double step[2], comp[2], fold[2], red[2], best[2];
    for (int mode = 0; mode < 2; mode++) {
        best[mode] = 1e30;
        for (int s = warm; s < total; s++)
            best[mode] = fmin(best[mode], t[mode][s]);
        step[mode] = median(t[mode] + warm, steps);
        comp[mode] = median(tc[mode] + warm, steps);
        fold[mode] = median(tf[mode] + warm, steps);
        red[mode] = median(tr[mode] + warm, steps);
    }
    /* Beside them: a memcpy of as many floats, and the fold alone (best of 5, data in cache). */
    double best_copy = 1e9, best_fold = 1e9;
    for (int r = 0; r < 5; r++) {
        double c0 = now();
        memcpy(dst, src, P * sizeof(float));
        double c1 = now();
        EX_CHECK(hcrt_exact_reset(acc));
        double f0 = now();
        EX_CHECK(hcrt_exact_add(acc));
        double f1 = now();
        best_copy = fmin(best_copy, c1 - c0);
        best_fold = fmin(best_fold, f1 - f0);
    }
    EX_CHECK(hcrt_exact_reset(acc));
    /* Forward 2 m P, weight gradients 2 m P, the hidden layer's input gradient 2 m p2. */
    double gflop = (4.0 * (double)P + 2.0 * (double)p2) * (double)m * K / comp[0] / 1e9;
    if (rank == 0) {
        printf("# hcrt-bench exact: %d ranks on %s, MLP %d-%d-%d (%zu parameters), %d micro-batches of %d samples "
               "per rank and step\n# compute: hcrt_compute_gemm, %.1f GFLOP/s per rank; exact window: %d words per "
               "element\n",
               nranks, backend, in, hidden, outn, P, K, m, gflop, words);
        printf("%-8s %12s %12s %12s %12s %12s\n", "mode", "step ms", "best ms", "compute ms", "fold ms", "reduce ms");
        for (int mode = 0; mode < 2; mode++)
            printf("%-8s %12.2f %12.2f %12.2f %12.2f %12.2f\n", mode ? "exact" : "normal", step[mode] * 1e3,
                   best[mode] * 1e3, comp[mode] * 1e3, fold[mode] * 1e3, red[mode] * 1e3);
        printf("exact/normal step time: %.3f (median), %.3f (best)\n", step[1] / step[0], best[1] / best[0]);
        printf("fold of one micro-batch's gradients alone: %.3f ns/element from %s memory; memcpy of as many "
               "floats: %.3f ns/element\n",
               best_fold / (double)P * 1e9, backend, best_copy / (double)P * 1e9);
        if (json != NULL) {
            json_t *j = json_pack("{s:i,s:s,s:i,s:i,s:i,s:I,s:i,s:i,s:f,s:i}", "ranks", nranks, "backend", backend,
                                  "in", in, "hidden", hidden, "out", outn, "parameters", (json_int_t)P, "micro_batch",
                                  m, "micro_batches_per_rank", K, "gflops_per_rank", gflop, "words", words);
            const char *keys[] = {"normal_step_s",        "exact_step_s",      "ratio",
                                  "normal_best_step_s",   "exact_best_step_s", "best_ratio",
                                  "normal_compute_s",     "exact_compute_s",   "exact_fold_s",
                                  "normal_reduce_s",      "exact_reduce_s",    "fold_ns_per_element",
                                  "memcpy_ns_per_element"};
            double vals[] = {step[0],
                             step[1],
                             step[1] / step[0],
                             best[0],
                             best[1],
                             best[1] / best[0],
                             comp[0],
                             comp[1],
                             fold[1],
                             red[0],
                             red[1],
                             best_fold / (double)P * 1e9,
                             best_copy / (double)P * 1e9};
            for (size_t k = 0; j != NULL && k < sizeof(vals) / sizeof(vals[0]); k++)
                json_object_set_new(j, keys[k], json_real(vals[k]));
            if (j == NULL || json_dump_file(j, json, JSON_INDENT(2)) != 0)
                fprintf(stderr, "hcrt-bench exact: cannot write %s\n", json);
            json_decref(j);
        }
    }
    rc = 0;
out:
    for (int mode = 0; mode < 2; mode++) {
        free(t[mode]);
        free(tc[mode]);
        free(tf[mode]);
        free(tr[mode]);
    }
    hcrt_exact_destroy(acc);
    float *bufs[] = {n.w1, n.w2, n.x[0], n.x[1], n.h, n.y, n.dh, n.g1, n.g2};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        if (bufs[i] != NULL)
            hcrt_mem_free(n.dev, bufs[i]);
    free(src);
    free(dst);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    return rc;
}
