/*
 * hcrt-bench gemm - the compute extension's gemm (hcrt_compute_gemm) on the training job's shapes, beside
 * single-threaded OpenBLAS cblas_sgemm on the same operands in the same run; and, with --sim-speeds, how
 * the sim backend's speed factor stretches compute.
 *
 *   hcrt-bench gemm [--backend B] [--dtype f32|f16|bf16] [--shape MxNxK[t][t]]... [--repeat R]
 *                   [--min-time SEC] [--openblas LIB|none] [--cpu-time] [--json FILE]
 *   hcrt-bench gemm --sim-speeds 1,0.5,0.25 [--shape MxNxK] [--repeat R] [--json FILE]
 *
 * The default shapes are the three gemms of one MLP layer (in = out = w) for micro-batches m of 32, 128
 * and 256 and widths w of 256 to 2048: forward X W (m x w x w), the weight gradient X^T dH (w x w x m,
 * a transposed) and the input gradient dH W^T (m x w x w, b transposed). A shape's suffix "t" or "tt"
 * ("nt" for b only) transposes a, both, or b. Each figure is the best of R timings (default 3) of a loop
 * of at least --min-time seconds (default 0.2), the hcrt and OpenBLAS loops taking turns so that a
 * change of machine load hits both. hcrt is timed with device events on a stream (the work itself);
 * OpenBLAS with the clock around its calls. On a machine shared with other work, --cpu-time (cpu
 * backend only) runs hcrt synchronously and times both sides with the calling thread's CPU clock, which
 * does not count the time the scheduler gives to other processes. OpenBLAS is loaded with dlopen (libopenblas.so.0, or --openblas
 * LIB) and set to one thread; hcrt's gemm is single-threaded by design. For f16/bf16, OpenBLAS multiplies
 * the same values in f32. Runs in one process without MPI.
 */
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcrt/hcrt.h"

int hcrt_bench_gemm_main(int argc, char **argv);

static const char usage[] =
    "usage: hcrt-bench gemm [--backend B] [--dtype f32|f16|bf16] [--shape MxNxK[t|tt|nt]]... [--repeat R]\n"
    "                       [--min-time SEC] [--openblas LIB|none] [--cpu-time] [--json FILE]\n"
    "       hcrt-bench gemm --sim-speeds 1,0.5,0.25 [--shape MxNxK] [--repeat R] [--json FILE]\n"
    "  Times hcrt_compute_gemm on device 0 of backend B (default cpu) beside single-threaded OpenBLAS\n"
    "  sgemm on the same operands. Default shapes: one MLP layer's three gemms for micro-batches 32, 128,\n"
    "  256 and widths 256..2048. --cpu-time (cpu backend) times both with the thread's CPU clock, for\n"
    "  shared machines. --sim-speeds times the sim backend at each speed factor instead.\n";

typedef struct shape {
    size_t m, n, k;
    bool ta, tb;
    const char *what; /* "fwd", "dW", "dX", "user" */
} shape_t;

/* ---- OpenBLAS, opened at run time (the collective benchmark must not carry its threads) ---------- */

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                         int);
typedef struct openblas {
    sgemm_fn sgemm;
    char info[256];
} openblas_t;

static void openblas_open(const char *lib, openblas_t *ob)
{
    memset(ob, 0, sizeof(*ob));
    if (strcmp(lib, "none") == 0) {
        snprintf(ob->info, sizeof(ob->info), "not compared (--openblas none)");
        return;
    }
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(ob->info, sizeof(ob->info), "not compared: %s", dlerror());
        return;
    }
    ob->sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    void (*threads)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    char *(*core)(void) = (char *(*)(void))dlsym(h, "openblas_get_corename");
    char *(*config)(void) = (char *(*)(void))dlsym(h, "openblas_get_config");
    if (!ob->sgemm) {
        snprintf(ob->info, sizeof(ob->info), "not compared: %s has no cblas_sgemm", lib);
        return;
    }
    if (threads)
        threads(1);
    snprintf(ob->info, sizeof(ob->info), "%s, 1 thread, kernel %s (%s)", lib, core ? core() : "?",
             config ? config() : "?");
}

/* ---- timing ---------------------------------------------------------------------------------------- */

/* The clock both sides are timed with: wall (CLOCK_MONOTONIC) or, with --cpu-time, this thread's CPU. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct gemm_job {
    hcrt_context_t *ctx;
    hcrt_device_t *dev, *host;
    hcrt_stream_t *stream;
    hcrt_event_t *e0, *e1;
    hcrt_dtype_t dtype;
    const shape_t *s;
    void *da, *db;
    float *dc;
    float *ha, *hb, *hc; /* f32 copies for OpenBLAS */
    size_t lda, ldb;
} gemm_job_t;

/* Seconds per hcrt gemm over a loop of `iters` calls, timed by device events (or, with --cpu-time, run
 * synchronously and timed by the thread's CPU clock). */
static int time_hcrt(gemm_job_t *j, int iters, double *sec)
{
    const shape_t *s = j->s;
    if (bench_clock != CLOCK_MONOTONIC) {
        hcrt_status_t st = HCRT_OK;
        const double t0 = now();
        for (int i = 0; i < iters && st == HCRT_OK; i++)
            st = hcrt_compute_gemm(j->dev, s->ta, s->tb, s->m, s->n, s->k, 1.0f, j->da, j->lda, j->db, j->ldb, 0.0f,
                                   j->dc, s->n, j->dtype, NULL);
        *sec = (now() - t0) / iters;
        if (st != HCRT_OK)
            fprintf(stderr, "hcrt-bench gemm: %s: %s\n", hcrt_status_name(st), hcrt_last_error(j->ctx));
        return st == HCRT_OK ? 0 : -1;
    }
    hcrt_status_t st = hcrt_event_record(j->e0, j->stream);
    for (int i = 0; i < iters && st == HCRT_OK; i++)
        st = hcrt_compute_gemm(j->dev, s->ta, s->tb, s->m, s->n, s->k, 1.0f, j->da, j->lda, j->db, j->ldb, 0.0f, j->dc,
                               s->n, j->dtype, j->stream);
    if (st == HCRT_OK)
        st = hcrt_event_record(j->e1, j->stream);
    if (st == HCRT_OK)
        st = hcrt_stream_sync(j->stream);
    float ms = 0;
    if (st == HCRT_OK)
        st = hcrt_event_elapsed(j->e0, j->e1, &ms);
    if (st != HCRT_OK) {
        fprintf(stderr, "hcrt-bench gemm: %s: %s\n", hcrt_status_name(st), hcrt_last_error(j->ctx));
        return -1;
    }
    *sec = (double)ms / 1e3 / iters;
    return 0;
}

static double time_openblas(const gemm_job_t *j, const openblas_t *ob, int iters)
{
    const shape_t *s = j->s;
    const double t0 = now();
    for (int i = 0; i < iters; i++)
        ob->sgemm(CBLAS_ROW_MAJOR, s->ta ? CBLAS_TRANS : CBLAS_NO_TRANS, s->tb ? CBLAS_TRANS : CBLAS_NO_TRANS,
                  (int)s->m, (int)s->n, (int)s->k, 1.0f, j->ha, (int)j->lda, j->hb, (int)j->ldb, 0.0f, j->hc,
                  (int)s->n);
    return (now() - t0) / iters;
}

/* n values in [-1, 1] on a 1/128 grid: exact in f32, f16 and bf16 alike, so OpenBLAS's f32 operands hold
 * exactly what hcrt multiplies. */
static void fill(float *f, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        f[i] = (float)((int)((seed >> 8) % 257) - 128) / 128.0f;
    }
}

/* A device operand of n elements of the job's dtype holding the f32 values h (cast on the device). */
static int upload(gemm_job_t *j, const float *h, size_t n, void **out)
{
    const size_t es = j->dtype == HCRT_F32 ? 4 : 2;
    void *tmp = NULL;
    hcrt_status_t st = hcrt_mem_alloc(j->dev, n * es, out);
    if (st == HCRT_OK && j->dtype == HCRT_F32) {
        st = hcrt_memcpy(j->dev, *out, j->host, h, n * 4);
    } else if (st == HCRT_OK) {
        st = hcrt_mem_alloc(j->dev, n * 4, &tmp);
        if (st == HCRT_OK)
            st = hcrt_memcpy(j->dev, tmp, j->host, h, n * 4);
        if (st == HCRT_OK)
            st = hcrt_compute_cast(j->dev, *out, j->dtype, tmp, HCRT_F32, n, NULL);
        hcrt_mem_free(j->dev, tmp);
    }
    if (st != HCRT_OK) {
        fprintf(stderr, "hcrt-bench gemm: %s\n", hcrt_last_error(j->ctx));
        return -1;
    }
    return 0;
}

/* Sets up device and host operands for one shape. */
static int job_prepare(gemm_job_t *j, const shape_t *s)
{
    const size_t na = s->m * s->k, nb = s->k * s->n, nc = s->m * s->n;
    j->s = s;
    j->lda = s->ta ? s->m : s->k;
    j->ldb = s->tb ? s->k : s->n;
    j->ha = malloc(na * 4), j->hb = malloc(nb * 4), j->hc = malloc(nc * 4);
    if (!j->ha || !j->hb || !j->hc) {
        fprintf(stderr, "hcrt-bench gemm: out of host memory\n");
        return -1;
    }
    fill(j->ha, na, 1);
    fill(j->hb, nb, 2);
    if (upload(j, j->ha, na, &j->da) != 0 || upload(j, j->hb, nb, &j->db) != 0)
        return -1;
    if (hcrt_mem_alloc(j->dev, nc * 4, (void **)&j->dc) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench gemm: %s\n", hcrt_last_error(j->ctx));
        return -1;
    }
    return 0;
}

static void job_release(gemm_job_t *j)
{
    hcrt_mem_free(j->dev, j->da);
    hcrt_mem_free(j->dev, j->db);
    hcrt_mem_free(j->dev, j->dc);
    free(j->ha), free(j->hb), free(j->hc);
    j->da = j->db = NULL;
    j->dc = NULL;
}

/* Iterations that take about min_time, from one timed call. */
static int iters_for(double one, double min_time)
{
    const double n = one > 0 ? min_time / one : 1000;
    return n < 1 ? 1 : n > 100000 ? 100000 : (int)n;
}

/* ---- the two modes ------------------------------------------------------------------------------- */

static hcrt_context_t *open_context(void)
{
    hcrt_context_params_t cp;
    hcrt_context_params_init(&cp);
    cp.flags = HCRT_INIT_NO_MPI;
    hcrt_context_t *ctx = NULL;
    if (hcrt_init(&cp, &ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench gemm: hcrt_init: %s\n", hcrt_last_error(NULL));
        return NULL;
    }
    return ctx;
}

static int job_open(gemm_job_t *j, hcrt_context_t *ctx, const char *backend)
{
    j->ctx = ctx;
    if (hcrt_device_find(ctx, backend, 0, &j->dev) != HCRT_OK || hcrt_device_host(ctx, &j->host) != HCRT_OK ||
        hcrt_stream_create(j->dev, &j->stream) != HCRT_OK || hcrt_event_create(j->dev, &j->e0) != HCRT_OK ||
        hcrt_event_create(j->dev, &j->e1) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench gemm: backend %s: %s\n", backend, hcrt_last_error(ctx));
        return -1;
    }
    if (!hcrt_device_has_compute(j->dev)) {
        fprintf(stderr, "hcrt-bench gemm: backend %s has no compute extension\n", backend);
        return -1;
    }
    return 0;
}

static void job_close(gemm_job_t *j)
{
    hcrt_event_destroy(j->e0);
    hcrt_event_destroy(j->e1);
    hcrt_stream_destroy(j->stream);
}

static int run_compare(const char *backend, hcrt_dtype_t dtype, const shape_t *shapes, size_t nshapes, int repeat,
                       double min_time, const char *lib, json_t *out)
{
    openblas_t ob;
    openblas_open(lib, &ob);
    hcrt_context_t *ctx = open_context();
    if (!ctx)
        return 1;
    gemm_job_t j = {.dtype = dtype};
    if (job_open(&j, ctx, backend) != 0) {
        hcrt_finalize(ctx);
        return 1;
    }
    printf("# hcrt gemm on %s device 0, %s operands, f32 accumulation; OpenBLAS: %s\n", backend, hcrt_dtype_name(dtype),
           ob.info);
    printf("# best of %d loops of >= %.2f s each, %s\n", repeat, min_time,
           bench_clock == CLOCK_MONOTONIC ? "hcrt timed by device events, OpenBLAS by the wall clock"
                                          : "both timed by the thread's CPU clock (--cpu-time)");
    printf("%-4s %6s %6s %6s %3s %3s %10s %9s %10s %9s %7s\n", "op", "M", "N", "K", "ta", "tb", "hcrt_ms", "hcrt_GF",
           "oblas_ms", "oblas_GF", "ratio");
    json_t *rows = json_array();
    double log_sum = 0, worst = INFINITY;
    int compared = 0, rc = 0;
    for (size_t si = 0; si < nshapes && rc == 0; si++) {
        const shape_t *s = &shapes[si];
        if (job_prepare(&j, s) != 0) {
            rc = 1;
            break;
        }
        const double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
        double one = 0, best_h = INFINITY, best_o = INFINITY;
        if (time_hcrt(&j, 1, &one) != 0) { /* warm up, and size the loop */
            rc = 1;
            job_release(&j);
            break;
        }
        const int ih = iters_for(one, min_time);
        int io = 0;
        if (ob.sgemm)
            io = iters_for(time_openblas(&j, &ob, 1), min_time);
        for (int r = 0; r < repeat && rc == 0; r++) {
            double t = 0;
            if (time_hcrt(&j, ih, &t) != 0)
                rc = 1;
            best_h = t < best_h ? t : best_h;
            if (ob.sgemm) {
                t = time_openblas(&j, &ob, io);
                best_o = t < best_o ? t : best_o;
            }
        }
        const double gh = flops / best_h / 1e9, go = ob.sgemm ? flops / best_o / 1e9 : 0;
        const double ratio = ob.sgemm ? gh / go : 0;
        if (ob.sgemm) {
            printf("%-4s %6zu %6zu %6zu %3d %3d %10.3f %9.1f %10.3f %9.1f %7.2f\n", s->what, s->m, s->n, s->k, s->ta,
                   s->tb, best_h * 1e3, gh, best_o * 1e3, go, ratio);
            log_sum += log(ratio);
            worst = ratio < worst ? ratio : worst;
            compared++;
        } else {
            printf("%-4s %6zu %6zu %6zu %3d %3d %10.3f %9.1f %10s %9s %7s\n", s->what, s->m, s->n, s->k, s->ta, s->tb,
                   best_h * 1e3, gh, "-", "-", "-");
        }
        fflush(stdout);
        json_t *row = json_pack("{s:s, s:I, s:I, s:I, s:b, s:b, s:f, s:f}", "op", s->what, "m", (json_int_t)s->m, "n",
                                (json_int_t)s->n, "k", (json_int_t)s->k, "trans_a", s->ta, "trans_b", s->tb, "hcrt_ms",
                                best_h * 1e3, "hcrt_gflops", gh);
        if (row && ob.sgemm) {
            json_object_set_new(row, "openblas_ms", json_real(best_o * 1e3));
            json_object_set_new(row, "openblas_gflops", json_real(go));
            json_object_set_new(row, "ratio", json_real(ratio));
        }
        json_array_append_new(rows, row);
        job_release(&j);
    }
    if (compared)
        printf("# hcrt / OpenBLAS: geometric mean %.3f, lowest %.3f over %d shapes\n", exp(log_sum / compared), worst,
               compared);
    json_object_set_new(out, "backend", json_string(backend));
    json_object_set_new(out, "dtype", json_string(hcrt_dtype_name(dtype)));
    json_object_set_new(out, "openblas", json_string(ob.info));
    json_object_set_new(out, "clock", json_string(bench_clock == CLOCK_MONOTONIC ? "wall" : "thread_cpu"));
    json_object_set_new(out, "shapes", rows);
    if (compared) {
        json_object_set_new(out, "ratio_geomean", json_real(exp(log_sum / compared)));
        json_object_set_new(out, "ratio_min", json_real(worst));
    }
    job_close(&j);
    hcrt_finalize(ctx);
    return rc;
}

/* The sim backend at each speed factor: the same gemm, timed by its events; the slowdown should be 1/speed. */
static int run_sim_speeds(const char *speeds, const shape_t *s, int repeat, double min_time, json_t *out)
{
    printf("# sim gemm %zux%zux%zu f32 at each HCRT_SIM_SPEED; expected slowdown 1/speed\n", s->m, s->n, s->k);
    printf("%8s %10s %10s %10s\n", "speed", "ms", "slowdown", "expected");
    char *list = strdup(speeds);
    json_t *rows = json_array();
    double base = 0;
    int rc = 0;
    for (char *save = NULL, *w = strtok_r(list, ",", &save); w && rc == 0; w = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        errno = 0;
        const double speed = strtod(w, &end);
        if (errno || *end || !(speed > 0)) {
            fprintf(stderr, "hcrt-bench gemm: --sim-speeds: '%s' is not a positive number\n%s", w, usage);
            rc = 2;
            break;
        }
        setenv("HCRT_SIM_SPEED", w, 1);
        setenv("HCRT_SIM_DEVICES", "1", 1);
        hcrt_context_t *ctx = open_context();
        gemm_job_t j = {.dtype = HCRT_F32};
        if (!ctx || job_open(&j, ctx, "sim") != 0 || job_prepare(&j, s) != 0) {
            rc = 1;
            if (ctx)
                hcrt_finalize(ctx);
            break;
        }
        double one = 0, best = INFINITY, t = 0;
        rc = time_hcrt(&j, 1, &one) != 0;
        const int iters = iters_for(one, min_time);
        for (int r = 0; r < repeat && rc == 0; r++) {
            rc = time_hcrt(&j, iters, &t) != 0;
            best = t < best ? t : best;
        }
        if (base == 0)
            base = best * speed; /* the time at speed 1, from the first entry */
        printf("%8g %10.3f %10.3f %10.3f\n", speed, best * 1e3, best / base, 1.0 / speed);
        json_array_append_new(rows, json_pack("{s:f, s:f, s:f, s:f}", "speed", speed, "ms", best * 1e3, "slowdown",
                                              best / base, "expected", 1.0 / speed));
        job_release(&j);
        job_close(&j);
        hcrt_finalize(ctx);
    }
    json_object_set_new(out, "sim_speeds", rows);
    free(list);
    return rc;
}

/* ---- command line ---------------------------------------------------------------------------------- */

static int parse_shape(const char *text, shape_t *s)
{
    char tail[8] = "";
    unsigned long long m, n, k;
    if (sscanf(text, "%llux%llux%llu%7s", &m, &n, &k, tail) < 3 || m == 0 || n == 0 || k == 0 || m > (1u << 20) ||
        n > (1u << 20) || k > (1u << 20))
        return -1;
    s->m = m, s->n = n, s->k = k;
    s->ta = strcmp(tail, "t") == 0 || strcmp(tail, "tt") == 0;
    s->tb = strcmp(tail, "tt") == 0 || strcmp(tail, "nt") == 0;
    s->what = "user";
    return tail[0] && !s->ta && !s->tb ? -1 : 0;
}

int hcrt_bench_gemm_main(int argc, char **argv)
{
    const char *backend = "cpu", *json = NULL, *lib = "libopenblas.so.0", *speeds = NULL;
    hcrt_dtype_t dtype = HCRT_F32;
    int repeat = 3;
    double min_time = 0.2;
    shape_t user[64];
    size_t nuser = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--cpu-time") == 0) {
            bench_clock = CLOCK_THREAD_CPUTIME_ID;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "hcrt-bench gemm: %s needs a value\n%s", a, usage);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
        bool ok = true;
        if (strcmp(a, "--backend") == 0)
            backend = v;
        else if (strcmp(a, "--dtype") == 0)
            ok = hcrt_dtype_from_name(v, &dtype) == HCRT_OK &&
                 (dtype == HCRT_F32 || dtype == HCRT_F16 || dtype == HCRT_BF16);
        else if (strcmp(a, "--shape") == 0)
            ok = nuser < sizeof(user) / sizeof(user[0]) && parse_shape(v, &user[nuser++]) == 0;
        else if (strcmp(a, "--repeat") == 0)
            ok = (repeat = (int)strtol(v, &end, 10)) > 0 && *end == '\0';
        else if (strcmp(a, "--min-time") == 0)
            ok = (min_time = strtod(v, &end)) > 0 && *end == '\0';
        else if (strcmp(a, "--openblas") == 0)
            lib = v;
        else if (strcmp(a, "--json") == 0)
            json = v;
        else if (strcmp(a, "--sim-speeds") == 0)
            speeds = v;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "hcrt-bench gemm: bad argument '%s %s'\n%s", a, v, usage);
            return 2;
        }
    }
    if (bench_clock != CLOCK_MONOTONIC && (speeds || strcmp(backend, "cpu") != 0)) {
        fprintf(stderr, "hcrt-bench gemm: --cpu-time times the calling thread: cpu backend only, no --sim-speeds\n%s",
                usage);
        return 2;
    }
    json_t *out = json_object();
    int rc;
    if (speeds) {
        const shape_t def = {128, 1024, 1024, false, false, "fwd"};
        rc = run_sim_speeds(speeds, nuser ? &user[0] : &def, repeat, min_time, out);
    } else if (nuser) {
        rc = run_compare(backend, dtype, user, nuser, repeat, min_time, lib, out);
    } else {
        static const size_t ms[] = {32, 128, 256}, ws[] = {256, 512, 1024, 2048};
        shape_t def[3 * 4 * 3];
        size_t n = 0;
        for (size_t mi = 0; mi < 3; mi++)
            for (size_t wi = 0; wi < 4; wi++) {
                const size_t m = ms[mi], w = ws[wi];
                def[n++] = (shape_t){m, w, w, false, false, "fwd"};
                def[n++] = (shape_t){w, w, m, true, false, "dW"};
                def[n++] = (shape_t){m, w, w, false, true, "dX"};
            }
        rc = run_compare(backend, dtype, def, n, repeat, min_time, lib, out);
    }
    if (json && rc == 0 && json_dump_file(out, json, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "hcrt-bench gemm: cannot write %s\n", json);
        rc = 1;
    }
    json_decref(out);
    return rc;
}
