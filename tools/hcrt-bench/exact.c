/*
 * tools/hcrt-bench/exact.c - `hcrt-bench exact`: the cost of exact mode in a compute-bound data-parallel
 * step, against the normal (float) reduction of the same job in the same run.
 *
 *   mpirun -np N hcrt-bench exact [--in I] [--hidden H] [--out O] [--micro-batch m] [--micro-batches K]
 *                                 [--steps S] [--json FILE]
 *
 * Every rank trains a two-layer perceptron I-H-O on host memory: per micro-batch of m samples a forward
 * pass (X W1, ReLU, H W2), and a backward pass producing the weight gradients dW1 (I x H) and dW2 (H x O),
 * by single-threaded sgemm (OpenBLAS when it was found at build time, else a plain loop). A step is K
 * micro-batches per rank, then the reduction of the gradients over ranks, divided by the global sample
 * count:
 *   normal  the micro-batches accumulate into the gradient buffers (gemm beta = 1), then
 *           hcrt_comm_allreduce_grads (f32 sum, then the scale)
 *   exact   each micro-batch's gradients are written (beta = 0) and folded into the exact accumulator
 *           (hcrt_exact_add), then hcrt_exact_allreduce with HCRT_EXACT_MEAN
 * The modes alternate step by step (so that a machine shared with other work slows both alike); each
 * step's time is the slowest rank's; the figures are medians over the timed steps (and the best step, the
 * figure that a machine shared with other work distorts least). Beside them: the
 * machine's memcpy of the same gradients (ns per element), and the fold alone, from host memory and from
 * a sim device (staged through the accumulator's pinned chunk).
 */
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcrt/hcrt.h"

#ifdef HCRT_BENCH_HAVE_CBLAS
#include <cblas.h>
#endif

int hcrt_bench_exact_main(int argc, char **argv);

static const char *const usage =
    "usage: mpirun -np N hcrt-bench exact [options]\n"
    "  --in I             input features (default 512)\n"
    "  --hidden H         hidden units (default 1024)\n"
    "  --out O            outputs (default 512)\n"
    "  --micro-batch m    samples per micro-batch (default 64)\n"
    "  --micro-batches K  micro-batches per rank and step (default 4)\n"
    "  --steps S          timed steps per mode (default 8; 2 more per mode are untimed)\n"
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

/* C (MxN) = alpha op(A) op(B) + beta C, row-major; ta/tb transpose A (MxK as stored KxM) or B. */
static void sgemm(bool ta, bool tb, int M, int N, int K, const float *A, const float *B, float beta, float *C)
{
#ifdef HCRT_BENCH_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
                ta ? M : K, B, tb ? K : N, beta, C, N);
#else
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * N;
        for (int j = 0; j < N; j++)
            c[j] *= beta;
        for (int k = 0; k < K; k++) {
            float a = ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
            if (tb)
                for (int j = 0; j < N; j++)
                    c[j] += a * B[(size_t)j * K + k];
            else
                for (int j = 0; j < N; j++)
                    c[j] += a * B[(size_t)k * N + j];
        }
    }
#endif
}

typedef struct mlp {
    int in, hidden, out, m;
    float *w1, *w2, *x, *h, *y, *dh, *g1, *g2;
} mlp_t;

/* One micro-batch's forward and backward passes; the weight gradients go to g1, g2 (beta 1: added). */
static void micro_batch(mlp_t *n, int k, float beta)
{
    const int m = n->m;
    /* The inputs change per micro-batch (a cheap shift of a fixed table). */
    for (size_t i = 0; i < (size_t)m * (size_t)n->in; i += 64)
        n->x[i] = (float)((int)(i / 64 + (size_t)k) % 17 - 8) * 0.0625f;
    sgemm(false, false, m, n->hidden, n->in, n->x, n->w1, 0.0f, n->h);
    for (size_t i = 0; i < (size_t)m * (size_t)n->hidden; i++)
        n->h[i] = n->h[i] > 0 ? n->h[i] : 0;
    sgemm(false, false, m, n->out, n->hidden, n->h, n->w2, 0.0f, n->y);
    /* dY = Y - target (target 0.25): the output's gradient of a squared loss. */
    for (size_t i = 0; i < (size_t)m * (size_t)n->out; i++)
        n->y[i] -= 0.25f;
    sgemm(true, false, n->hidden, n->out, m, n->h, n->y, beta, n->g2);
    sgemm(false, true, m, n->hidden, n->out, n->y, n->w2, 0.0f, n->dh);
    for (size_t i = 0; i < (size_t)m * (size_t)n->hidden; i++)
        n->dh[i] = n->h[i] > 0 ? n->dh[i] : 0;
    sgemm(true, false, n->in, n->hidden, m, n->x, n->dh, beta, n->g1);
}

static float *fill(size_t n, float scale, unsigned seed)
{
    float *p = malloc(n * sizeof(float));
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = ((float)(seed >> 8) * 0x1p-24f - 0.5f) * scale;
    }
    return p;
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
    mlp_t n = {.in = 512, .hidden = 1024, .out = 512, .m = 64};
    int K = 4, steps = 8, rc = 1, rank = 0, nranks = 1;
    const char *json = NULL;
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
            ok = parse_int(v, 1, 1 << 16, &n.in);
        else if (ok && strcmp(a, "--hidden") == 0)
            ok = parse_int(v, 1, 1 << 16, &n.hidden);
        else if (ok && strcmp(a, "--out") == 0)
            ok = parse_int(v, 1, 1 << 16, &n.out);
        else if (ok && strcmp(a, "--micro-batch") == 0)
            ok = parse_int(v, 1, 1 << 16, &n.m);
        else if (ok && strcmp(a, "--micro-batches") == 0)
            ok = parse_int(v, 1, 4096, &K);
        else if (ok && strcmp(a, "--steps") == 0)
            ok = parse_int(v, 1, 10000, &steps);
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
#ifdef HCRT_BENCH_HAVE_CBLAS
    openblas_set_num_threads(1);
    const char *gemm_name = "OpenBLAS cblas_sgemm, 1 thread";
#else
    const char *gemm_name = "plain C loop (OpenBLAS was not found at build time)";
#endif
    hcrt_context_t *ctx = NULL;
    hcrt_comm_t *comm = NULL;
    hcrt_exact_t *acc = NULL;
    hcrt_device_t *host = NULL, *sim = NULL;
    float *copy = NULL;
    double *t[2] = {NULL}, *tc[2] = {NULL}, *tf[2] = {NULL}, *tr[2] = {NULL};
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
    if (hcrt_device_find(ctx, "sim", 0, &sim) != HCRT_OK)
        sim = NULL;
    const size_t p1 = (size_t)n.in * n.hidden, p2 = (size_t)n.hidden * n.out, P = p1 + p2;
    n.w1 = fill(p1, 0.1f, 1);
    n.w2 = fill(p2, 0.1f, 2);
    n.x = fill((size_t)n.m * n.in, 1.0f, 3);
    n.h = fill((size_t)n.m * n.hidden, 0, 4);
    n.y = fill((size_t)n.m * n.out, 0, 5);
    n.dh = fill((size_t)n.m * n.hidden, 0, 6);
    n.g1 = fill(p1, 0, 7);
    n.g2 = fill(p2, 0, 8);
    copy = fill(P, 0, 9);
    if (!n.w1 || !n.w2 || !n.x || !n.h || !n.y || !n.dh || !n.g1 || !n.g2 || !copy) {
        fprintf(stderr, "hcrt-bench exact: out of memory\n");
        goto out;
    }
    hcrt_buffer_t grads[2] = {{host, n.g1, p1, HCRT_F32}, {host, n.g2, p2, HCRT_F32}};
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
                micro_batch(&n, rank * K + k, mode == 0 && k > 0 ? 1.0f : 0.0f);
                double c1 = now();
                compute += c1 - c0;
                if (mode == 1) {
                    EX_CHECK(hcrt_exact_add(acc));
                    foldt += now() - c1;
                }
            }
            double r0 = now();
            if (mode == 0)
                EX_CHECK(hcrt_comm_allreduce_grads(comm, grads, 2, (int64_t)K * n.m, &global, HCRT_GRADS_MEAN));
            else
                EX_CHECK(hcrt_exact_allreduce(acc, (int64_t)K * n.m, &global, HCRT_EXACT_MEAN));
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
    /* Beside them: memcpy of the gradients, and the fold alone (host; a sim device's buffer). */
    double best_copy = 1e9, best_fold = 1e9, best_sim = 0;
    for (int r = 0; r < 5; r++) {
        double c0 = now();
        memcpy(copy, n.g1, p1 * sizeof(float));
        memcpy(copy + p1, n.g2, p2 * sizeof(float));
        double c1 = now();
        EX_CHECK(hcrt_exact_reset(acc));
        double f0 = now();
        EX_CHECK(hcrt_exact_add(acc));
        double f1 = now();
        best_copy = fmin(best_copy, c1 - c0);
        best_fold = fmin(best_fold, f1 - f0);
    }
    EX_CHECK(hcrt_exact_reset(acc));
    if (sim != NULL) {
        void *d1 = NULL;
        hcrt_exact_t *sacc = NULL;
        hcrt_comm_t *solo = NULL;
        EX_CHECK(hcrt_comm_split(comm, rank, 0, &solo));
        EX_CHECK(hcrt_mem_alloc(sim, P * sizeof(float), &d1));
        EX_CHECK(hcrt_memcpy(sim, d1, host, copy, P * sizeof(float)));
        hcrt_buffer_t sb = {sim, d1, P, HCRT_F32};
        EX_CHECK(hcrt_exact_create(solo, &sb, NULL, 1, NULL, &sacc));
        best_sim = 1e9;
        for (int r = 0; r < 5; r++) {
            double f0 = now();
            EX_CHECK(hcrt_exact_add(sacc));
            best_sim = fmin(best_sim, now() - f0);
        }
        hcrt_exact_destroy(sacc);
        hcrt_mem_free(sim, d1);
        hcrt_comm_destroy(solo);
    }
    double gflop = 6.0 * (double)P * n.m * K / comp[0] / 1e9;
    if (rank == 0) {
        printf("# hcrt-bench exact: %d ranks, MLP %d-%d-%d (%zu parameters), %d micro-batches of %d samples per rank "
               "and step\n# gemm: %s, %.1f GFLOP/s per rank; exact window: %d words per element\n",
               nranks, n.in, n.hidden, n.out, P, K, n.m, gemm_name, gflop, words);
        printf("%-8s %12s %12s %12s %12s %12s\n", "mode", "step ms", "best ms", "compute ms", "fold ms", "reduce ms");
        for (int mode = 0; mode < 2; mode++)
            printf("%-8s %12.2f %12.2f %12.2f %12.2f %12.2f\n", mode ? "exact" : "normal", step[mode] * 1e3,
                   best[mode] * 1e3, comp[mode] * 1e3, fold[mode] * 1e3, red[mode] * 1e3);
        printf("exact/normal step time: %.3f (median), %.3f (best)\n", step[1] / step[0], best[1] / best[0]);
        printf("fold of one micro-batch's gradients: %.3f ns/element from host memory", best_fold / (double)P * 1e9);
        if (sim != NULL)
            printf(", %.3f from a sim device", best_sim / (double)P * 1e9);
        printf("; memcpy of them: %.3f ns/element\n", best_copy / (double)P * 1e9);
        if (json != NULL) {
            json_t *j =
                json_pack("{s:i,s:i,s:i,s:i,s:I,s:i,s:i,s:s,s:f,s:i}", "ranks", nranks, "in", n.in, "hidden", n.hidden,
                          "out", n.out, "parameters", (json_int_t)P, "micro_batch", n.m, "micro_batches_per_rank", K,
                          "gemm", gemm_name, "gflops_per_rank", gflop, "words", words);
            const char *keys[] = {"normal_step_s",           "exact_step_s",         "ratio",
                                  "normal_best_step_s",      "exact_best_step_s",    "best_ratio",
                                  "normal_compute_s",        "exact_compute_s",      "exact_fold_s",
                                  "normal_reduce_s",         "exact_reduce_s",       "fold_ns_per_element",
                                  "fold_sim_ns_per_element", "memcpy_ns_per_element"};
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
                             best_sim / (double)P * 1e9,
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
    free(n.w1);
    free(n.w2);
    free(n.x);
    free(n.h);
    free(n.y);
    free(n.dh);
    free(n.g1);
    free(n.g2);
    free(copy);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    return rc;
}
