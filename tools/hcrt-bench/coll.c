/*
 * tools/hcrt-bench/coll.c - collective benchmark in the manner of nccl-tests, optionally beside Open MPI.
 *
 *   mpirun -np N hcrt-bench [-c COLL] [-b MIN] [-e MAX] [-f FACTOR] [-d DTYPE] [-o OP] [--backend B]
 *                           [--check] [--compare-mpi] [--json FILE] [-n ITERS] [-w WARMUP]
 *
 * For each size (bytes of the operation's largest buffer, as nccl-tests counts them) the ranks run
 * WARMUP untimed and ITERS timed operations between barriers; the time is the slowest rank's average
 * (with --repeat R, the fastest of R such measurements, for hcrt and MPI alike).
 * algbw = size / time; busbw = algbw times nccl-tests' factor for the collective, so that figures of
 * different rank counts compare with the hardware's bandwidth. With --compare-mpi the same operation
 * runs through Open MPI on host buffers of the same size, timed the same way, and the ratio is
 * hcrt busbw / MPI busbw. --check fills inputs with known values after the timing and counts wrong
 * elements of one more run (#wrong; "-" and JSON null without --check: nothing was checked).
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/hcrt.h"

typedef enum coll { C_ALLREDUCE, C_REDUCE, C_BROADCAST, C_ALLGATHER, C_REDUCE_SCATTER, C_ALLTOALL, C_COUNT } coll_t;
static const char *const coll_names[C_COUNT] = {"allreduce", "reduce", "broadcast", "allgather",
                                                 "reduce_scatter", "alltoall"};

typedef struct opts {
    coll_t coll;
    size_t minb, maxb;
    double factor;
    hcrt_dtype_t dtype;
    hcrt_op_t op;
    const char *backend;
    bool check, compare;
    const char *json;
    int iters, warmup, repeat;
} opts_t;

static int rank, nranks;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N hcrt-bench [options]\n"
            "       hcrt-bench ckpt [options]      checkpoint benchmark (hcrt-bench ckpt --help)\n"
            "       hcrt-bench gemm [options]      compute gemm beside OpenBLAS (hcrt-bench gemm --help)\n"
            "       hcrt-bench exact [options]     exact mode against the float reduction (hcrt-bench exact --help)\n"
            "  -c, --coll COLL       allreduce (default), reduce, broadcast, allgather, reduce_scatter, alltoall\n"
            "  -b, --minbytes SIZE   smallest size, with K/M/G suffixes (default 8)\n"
            "  -e, --maxbytes SIZE   largest size (default 64M)\n"
            "  -f, --stepfactor F    multiply the size by F each step (default 2)\n"
            "  -d, --dtype DTYPE     i8 u8 i32 u32 i64 u64 f16 bf16 f32 f64 (default f32)\n"
            "  -o, --op OP           sum prod min max avg (default sum)\n"
            "  -n, --iters N         timed iterations per size (default 20)\n"
            "  -w, --warmup N        untimed iterations per size (default 5)\n"
            "  -r, --repeat R        time each size R times and keep the fastest, for hcrt and MPI alike\n"
            "                        (default 1; helps on a machine shared with other work)\n"
            "      --backend B       where hcrt's buffers live: cpu (default), or sim, cuda, hip (each rank's\n"
            "                        context device of that backend, else its device 0)\n"
            "      --check           verify results and count wrong elements (#wrong is - without it)\n"
            "      --compare-mpi     also time Open MPI on host buffers of the same size, with the ratio\n"
            "      --json FILE       write the results as JSON (rank 0)\n"
            "  -h, --help            this text\n"
            "Size is the bytes of the largest buffer of the operation (recv of allgather, send of\n"
            "reduce_scatter), as nccl-tests counts it. busbw factors: allreduce 2(n-1)/n; allgather,\n"
            "reduce_scatter, alltoall (n-1)/n; broadcast, reduce 1.\n");
}

static bool parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return false;
    switch (*end) {
    case 'k': case 'K': v *= 1024; end++; break;
    case 'm': case 'M': v *= 1024 * 1024; end++; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        return false;
    *out = (size_t)v;
    return true;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    static const struct option longs[] = {
        {"coll", required_argument, 0, 'c'},    {"minbytes", required_argument, 0, 'b'},
        {"maxbytes", required_argument, 0, 'e'}, {"stepfactor", required_argument, 0, 'f'},
        {"dtype", required_argument, 0, 'd'},   {"op", required_argument, 0, 'o'},
        {"iters", required_argument, 0, 'n'},   {"warmup", required_argument, 0, 'w'},
        {"backend", required_argument, 0, 'B'}, {"check", no_argument, 0, 'C'},
        {"compare-mpi", no_argument, 0, 'M'},   {"json", required_argument, 0, 'J'},
        {"repeat", required_argument, 0, 'r'},  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    *o = (opts_t){.coll = C_ALLREDUCE, .minb = 8, .maxb = 64u << 20, .factor = 2, .dtype = HCRT_F32,
                  .op = HCRT_OP_SUM, .backend = "cpu", .iters = 20, .warmup = 5, .repeat = 1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:b:e:f:d:o:n:w:r:h", longs, NULL)) != -1) {
        switch (c) {
        case 'c': {
            int k = 0;
            while (k < C_COUNT && strcmp(optarg, coll_names[k]) != 0)
                k++;
            if (k == C_COUNT) {
                fprintf(stderr, "hcrt-bench: unknown collective '%s'\n", optarg);
                return 2;
            }
            o->coll = (coll_t)k;
            break;
        }
        case 'b':
        case 'e':
            if (!parse_size(optarg, c == 'b' ? &o->minb : &o->maxb)) {
                fprintf(stderr, "hcrt-bench: bad size '%s'\n", optarg);
                return 2;
            }
            break;
        case 'f':
            o->factor = atof(optarg);
            if (o->factor <= 1.0) {
                fprintf(stderr, "hcrt-bench: the step factor must be > 1\n");
                return 2;
            }
            break;
        case 'd':
            if (hcrt_dtype_from_name(optarg, &o->dtype) != HCRT_OK) {
                fprintf(stderr, "hcrt-bench: unknown dtype '%s'\n", optarg);
                return 2;
            }
            break;
        case 'o':
            if (hcrt_op_from_name(optarg, &o->op) != HCRT_OK) {
                fprintf(stderr, "hcrt-bench: unknown op '%s'\n", optarg);
                return 2;
            }
            break;
        case 'n': o->iters = atoi(optarg); break;
        case 'w': o->warmup = atoi(optarg); break;
        case 'r': o->repeat = atoi(optarg); break;
        case 'B': o->backend = optarg; break;
        case 'C': o->check = true; break;
        case 'M': o->compare = true; break;
        case 'J': o->json = optarg; break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
    }
    if (o->iters < 1 || o->warmup < 0 || o->repeat < 1 || o->minb > o->maxb) {
        fprintf(stderr, "hcrt-bench: need iters >= 1, warmup >= 0, repeat >= 1 and minbytes <= maxbytes\n");
        return 2;
    }
    if (strcmp(o->backend, "cpu") != 0 && strcmp(o->backend, "sim") != 0 && strcmp(o->backend, "cuda") != 0 &&
        strcmp(o->backend, "hip") != 0) {
        fprintf(stderr, "hcrt-bench: --backend takes cpu, sim, cuda or hip\n");
        return 2;
    }
    return 0;
}

static double bus_factor(coll_t c, int n)
{
    switch (c) {
    case C_ALLREDUCE: return 2.0 * (n - 1) / n;
    case C_ALLGATHER: case C_REDUCE_SCATTER: case C_ALLTOALL: return (double)(n - 1) / n;
    default: return 1.0;
    }
}

/* Element counts of one size: `count` as the table shows it, send and recv buffer lengths. */
static void shape(coll_t c, size_t bytes, size_t es, size_t *count, size_t *sendn, size_t *recvn)
{
    size_t n = (size_t)nranks, total = bytes / es;
    switch (c) {
    case C_ALLGATHER: *count = total / n; *sendn = *count; *recvn = *count * n; break;
    case C_REDUCE_SCATTER: *count = total / n; *sendn = *count * n; *recvn = *count; break;
    case C_ALLTOALL: *count = total / n; *sendn = *recvn = *count * n; break;
    default: *count = *sendn = *recvn = total; break;
    }
}

static MPI_Datatype mpi_type(hcrt_dtype_t d)
{
    switch (d) {
    case HCRT_I8: return MPI_INT8_T;
    case HCRT_U8: return MPI_UINT8_T;
    case HCRT_I32: return MPI_INT32_T;
    case HCRT_U32: return MPI_UINT32_T;
    case HCRT_I64: return MPI_INT64_T;
    case HCRT_U64: return MPI_UINT64_T;
    case HCRT_F32: return MPI_FLOAT;
    case HCRT_F64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
    }
}

static MPI_Op mpi_op(hcrt_op_t op)
{
    switch (op) {
    case HCRT_OP_PROD: return MPI_PROD;
    case HCRT_OP_MIN: return MPI_MIN;
    case HCRT_OP_MAX: return MPI_MAX;
    default: return MPI_SUM; /* avg: MPI has none; the sum is what it would have to do */
    }
}

typedef struct bufs {
    hcrt_device_t *dev; /* NULL: host */
    void *send, *recv;
    size_t cap;
} bufs_t;

static hcrt_status_t run_hcrt(hcrt_comm_t *comm, const opts_t *o, bufs_t *b, size_t count)
{
    switch (o->coll) {
    case C_ALLREDUCE: return hcrt_comm_allreduce(comm, b->send, b->recv, count, o->dtype, o->op, b->dev);
    case C_REDUCE: return hcrt_comm_reduce(comm, b->send, b->recv, count, o->dtype, o->op, 0, b->dev);
    case C_BROADCAST: return hcrt_comm_broadcast(comm, b->recv, count, o->dtype, 0, b->dev);
    case C_ALLGATHER: return hcrt_comm_allgather(comm, b->send, b->recv, count, o->dtype, b->dev);
    case C_REDUCE_SCATTER: return hcrt_comm_reduce_scatter(comm, b->send, b->recv, count, o->dtype, o->op, b->dev);
    case C_ALLTOALL: return hcrt_comm_alltoall(comm, b->send, b->recv, count, o->dtype, b->dev);
    default: return HCRT_ERR_INVALID_ARG;
    }
}

static int run_mpi(const opts_t *o, void *send, void *recv, size_t count)
{
    MPI_Datatype t = mpi_type(o->dtype);
    int n = (int)count;
    switch (o->coll) {
    case C_ALLREDUCE: return MPI_Allreduce(send, recv, n, t, mpi_op(o->op), MPI_COMM_WORLD);
    case C_REDUCE: return MPI_Reduce(send, recv, n, t, mpi_op(o->op), 0, MPI_COMM_WORLD);
    case C_BROADCAST: return MPI_Bcast(recv, n, t, 0, MPI_COMM_WORLD);
    case C_ALLGATHER: return MPI_Allgather(send, n, t, recv, n, t, MPI_COMM_WORLD);
    case C_REDUCE_SCATTER: return MPI_Reduce_scatter_block(send, recv, n, t, mpi_op(o->op), MPI_COMM_WORLD);
    case C_ALLTOALL: return MPI_Alltoall(send, n, t, recv, n, t, MPI_COMM_WORLD);
    default: return MPI_ERR_OTHER;
    }
}

/* Slowest rank's average seconds per operation. */
static double finish_time(double t0, int iters)
{
    double t = (MPI_Wtime() - t0) / iters, tmax = 0;
    MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return tmax;
}

/* Writes element i of a host array as a small integer v in dtype d (exact in every dtype). */
static void put_small(void *p, hcrt_dtype_t d, size_t i, int v)
{
    unsigned char *b = p;
    switch (d) {
    case HCRT_I8: case HCRT_U8: b[i] = (unsigned char)v; break;
    case HCRT_I32: case HCRT_U32: { int32_t x = v; memcpy(b + 4 * i, &x, 4); break; }
    case HCRT_I64: case HCRT_U64: { int64_t x = v; memcpy(b + 8 * i, &x, 8); break; }
    case HCRT_F16: { /* small integers are exact: rebias the binary32 exponent, keep the top mantissa */
        float f = (float)v; uint32_t u; memcpy(&u, &f, 4);
        uint16_t x = v == 0 ? 0 : (uint16_t)(((u >> 31) << 15) | ((((u >> 23) & 0xff) - 112) << 10) |
                                             ((u >> 13) & 0x3ff));
        memcpy(b + 2 * i, &x, 2); break; }
    case HCRT_BF16: { float f = (float)v; uint32_t u; memcpy(&u, &f, 4); uint16_t x = (uint16_t)(u >> 16);
        memcpy(b + 2 * i, &x, 2); break; }
    case HCRT_F32: { float x = (float)v; memcpy(b + 4 * i, &x, 4); break; }
    default: { double x = v; memcpy(b + 8 * i, &x, 8); break; }
    }
}

/*
 * Writes a data pattern (small integers, exact in every dtype) into every buffer the timing loops use,
 * hcrt's and MPI's alike. The buffers must hold written data: malloc + memset(0) is folded into calloc
 * by the compiler, whose fresh pages all map the kernel's single zero page until written, and reading
 * that page runs from cache at several times memory speed - a benchmark on such "zeros" measures nothing
 * a training job would see (it made this machine's host figures ~35% too fast).
 */
static void fill_timing_buffers(hcrt_context_t *ctx, const opts_t *o, bufs_t *b, void *ms, void *mr, void *hs,
                                size_t cap)
{
    hcrt_device_t *host = NULL;
    hcrt_device_host(ctx, &host);
    size_t es = hcrt_dtype_size(o->dtype), n = cap / es;
    for (size_t i = 0; i < n; i++)
        put_small(hs, o->dtype, i, (int)((i + (size_t)rank) % 7) + 1);
    void *bufs[2] = {b->send, b->recv};
    for (int k = 0; k < 2; k++) {
        if (b->dev)
            hcrt_memcpy(b->dev, bufs[k], host, hs, n * es);
        else
            memcpy(bufs[k], hs, n * es);
    }
    if (ms != NULL) {
        memcpy(ms, hs, n * es);
        memcpy(mr, hs, n * es);
    }
}

/* Fills inputs with small integers (1 everywhere; rank % 5 for min/max; 3 from root for broadcast) whose
 * results are exact in every dtype, runs once, and counts elements that differ from the expected value. */
static long check_once(hcrt_context_t *ctx, hcrt_comm_t *comm, const opts_t *o, bufs_t *b, size_t count,
                       size_t sendn, size_t recvn, void *hs, void *hr)
{
    hcrt_device_t *host = NULL;
    hcrt_device_host(ctx, &host);
    size_t es = hcrt_dtype_size(o->dtype);
    int mine = o->op == HCRT_OP_MIN || o->op == HCRT_OP_MAX ? rank % 5 : 1;
    for (size_t i = 0; i < sendn; i++)
        put_small(hs, o->dtype, i, o->coll == C_BROADCAST ? 0 : mine);
    if (o->coll == C_BROADCAST)
        for (size_t i = 0; i < recvn; i++)
            put_small(hs, o->dtype, i, rank == 0 ? 3 : 0);
    size_t inbytes = (o->coll == C_BROADCAST ? recvn : sendn) * es;
    void *in = o->coll == C_BROADCAST ? b->recv : b->send;
    if (b->dev)
        hcrt_memcpy(b->dev, in, host, hs, inbytes);
    else
        memcpy(in, hs, inbytes);
    if (run_hcrt(comm, o, b, count) != HCRT_OK)
        return (long)recvn;
    if (b->dev)
        hcrt_memcpy(host, hr, b->dev, b->recv, recvn * es);
    else
        memcpy(hr, b->recv, recvn * es);
    int maxv = nranks < 5 ? nranks - 1 : 4;
    long wrong = 0;
    if (o->coll == C_REDUCE && rank != 0)
        return 0;
    void *want = malloc(es);
    for (size_t i = 0; i < recvn; i++) {
        int v;
        switch (o->coll) {
        case C_BROADCAST: v = 3; break;
        case C_ALLGATHER: case C_ALLTOALL: v = 1; break;
        default:
            switch (o->op) {
            case HCRT_OP_SUM: v = nranks; break;
            case HCRT_OP_MIN: v = 0; break;
            case HCRT_OP_MAX: v = maxv; break;
            default: v = 1; break; /* prod of 1s, avg of 1s */
            }
        }
        put_small(want, o->dtype, 0, v);
        if (memcmp((unsigned char *)hr + i * es, want, es) != 0)
            wrong++;
    }
    free(want);
    return wrong;
}

static void fmt_size(char *buf, size_t len, size_t b) { snprintf(buf, len, "%zu", b); }

int hcrt_bench_coll_main(int argc, char **argv)
{
    opts_t o;
    int prc = parse_opts(argc, argv, &o);
    if (prc != 0)
        return prc == 1 ? 0 : prc;
    hcrt_context_t *ctx = NULL;
    hcrt_comm_t *comm = NULL;
    if (hcrt_init(NULL, &ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench: hcrt_init failed: %s\n", hcrt_last_error(NULL));
        return 1;
    }
    if (hcrt_comm_world(ctx, &comm) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench: %s\n", hcrt_last_error(ctx));
        hcrt_finalize(ctx);
        return 1;
    }
    hcrt_comm_rank(comm, &rank);
    hcrt_comm_size(comm, &nranks);
    size_t es = hcrt_dtype_size(o.dtype);
    bool mpi_ok = o.compare && mpi_type(o.dtype) != MPI_DATATYPE_NULL && o.op != HCRT_OP_AVG;
    if (o.compare && !mpi_ok && rank == 0)
        printf("# Open MPI has no %s %s reduction: no comparison\n", hcrt_dtype_name(o.dtype), hcrt_op_name(o.op));
    /* Buffers for the largest size, allocated and touched once. */
    size_t count, sendn, recvn;
    shape(o.coll, o.maxb, es, &count, &sendn, &recvn);
    size_t cap = (sendn > recvn ? sendn : recvn) * es + 64;
    bufs_t b = {.cap = cap};
    if (strcmp(o.backend, "cpu") != 0) {
        hcrt_device_t *dev = NULL;
        if (hcrt_context_device(ctx, &dev) != HCRT_OK || strcmp(hcrt_device_backend(dev), o.backend) != 0) {
            if (hcrt_device_find(ctx, o.backend, 0, &dev) != HCRT_OK) {
                fprintf(stderr, "hcrt-bench: no %s device (is its plugin on HCRT_BACKEND_PATH?): %s\n", o.backend,
                        hcrt_last_error(ctx));
                return 1;
            }
        }
        b.dev = dev;
        if (hcrt_mem_alloc(dev, cap, &b.send) != HCRT_OK || hcrt_mem_alloc(dev, cap, &b.recv) != HCRT_OK) {
            fprintf(stderr, "hcrt-bench: %s\n", hcrt_last_error(ctx));
            return 1;
        }
        hcrt_memset(dev, b.send, 0, cap);
        hcrt_memset(dev, b.recv, 0, cap);
    } else {
        b.send = malloc(cap);
        b.recv = malloc(cap);
        if (b.send == NULL || b.recv == NULL)
            return 1;
        memset(b.send, 0, cap);
        memset(b.recv, 0, cap);
    }
    void *ms = NULL, *mr = NULL, *hs = malloc(cap), *hr = malloc(cap);
    if (mpi_ok) {
        ms = malloc(cap);
        mr = malloc(cap);
        memset(ms, 0, cap);
        memset(mr, 0, cap);
    }
    memset(hs, 0, cap);
    memset(hr, 0, cap);
    fill_timing_buffers(ctx, &o, &b, ms, mr, hs, cap);
    json_t *results = json_array();
    if (rank == 0) {
        printf("# hcrt-bench %s: %d ranks, %s buffers, dtype %s, op %s, %d iterations (%d warmup), best of %d\n",
               coll_names[o.coll], nranks, o.backend, hcrt_dtype_name(o.dtype), hcrt_op_name(o.op), o.iters,
               o.warmup, o.repeat);
        printf("#%11s %12s %6s %6s %10s %9s %9s %7s", "size", "count", "type", "redop", "time(us)", "algbw",
               "busbw", "#wrong");
        if (mpi_ok)
            printf(" %12s %9s %7s", "mpi_time(us)", "mpi_busbw", "ratio");
        printf("\n#%11s %12s %6s %6s %10s %9s %9s %7s", "(B)", "(elements)", "", "", "", "(GB/s)", "(GB/s)", "");
        if (mpi_ok)
            printf(" %12s %9s %7s", "", "(GB/s)", "");
        printf("\n");
    }
    /* Settle: keep the ranks busy for a moment so the scheduler spreads them over the cores before the
     * first measurement (right after launch they may share one, which would skew the first size). */
    double settle_end = MPI_Wtime() + 0.3;
    for (int go = 1; go;) {
        float x = 1, y = 0;
        hcrt_comm_allreduce(comm, &x, &y, 1, HCRT_F32, HCRT_OP_SUM, NULL);
        go = MPI_Wtime() < settle_end;
        MPI_Bcast(&go, 1, MPI_INT, 0, MPI_COMM_WORLD);
    }
    double sum_busbw = 0;
    int nsizes = 0;
    bool failed = false;
    for (double sz = (double)o.minb; sz <= (double)o.maxb * 1.0000001; sz *= o.factor) {
        size_t bytes = (size_t)sz;
        shape(o.coll, bytes, es, &count, &sendn, &recvn);
        size_t opbytes = (sendn > recvn ? sendn : recvn) * es;
        for (int i = 0; i < o.warmup; i++)
            if (run_hcrt(comm, &o, &b, count) != HCRT_OK)
                failed = true;
        double t = INFINITY;
        for (int rep = 0; rep < o.repeat && !failed; rep++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int i = 0; i < o.iters; i++)
                if (run_hcrt(comm, &o, &b, count) != HCRT_OK)
                    failed = true;
            double tr = finish_time(t0, o.iters);
            t = tr < t ? tr : t;
        }
        if (failed) {
            if (rank == 0)
                fprintf(stderr, "hcrt-bench: %s failed: %s\n", coll_names[o.coll], hcrt_last_error(ctx));
            break;
        }
        double algbw = (double)opbytes / t / 1e9, busbw = algbw * bus_factor(o.coll, nranks);
        long wrong = 0;
        if (o.check) {
            long w = check_once(ctx, comm, &o, &b, count, sendn, recvn, hs, hr), wsum = 0;
            MPI_Allreduce(&w, &wsum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
            wrong = wsum;
        }
        double mt = 0, mbus = 0;
        if (mpi_ok) {
            for (int i = 0; i < o.warmup; i++)
                run_mpi(&o, ms, mr, count);
            mt = INFINITY;
            for (int rep = 0; rep < o.repeat; rep++) {
                MPI_Barrier(MPI_COMM_WORLD);
                double m0 = MPI_Wtime();
                for (int i = 0; i < o.iters; i++)
                    run_mpi(&o, ms, mr, count);
                double tr = finish_time(m0, o.iters);
                mt = tr < mt ? tr : mt;
            }
            mbus = (double)opbytes / mt / 1e9 * bus_factor(o.coll, nranks);
        }
        sum_busbw += busbw;
        nsizes++;
        if (rank == 0) {
            char sb[32];
            fmt_size(sb, sizeof(sb), opbytes);
            /* "-": nothing was checked, which is not the same as nothing wrong. */
            char wrongs[24] = "-";
            if (o.check)
                snprintf(wrongs, sizeof(wrongs), "%ld", wrong);
            printf(" %11s %12zu %6s %6s %10.2f %9.3f %9.3f %7s", sb, count, hcrt_dtype_name(o.dtype),
                   hcrt_op_name(o.op), t * 1e6, algbw, busbw, wrongs);
            if (mpi_ok)
                printf(" %12.2f %9.3f %7.2f", mt * 1e6, mbus, busbw / mbus);
            printf("\n");
            fflush(stdout);
            json_t *row = json_pack("{s:I, s:I, s:f, s:f, s:f, s:o}", "bytes", (json_int_t)opbytes, "count",
                                    (json_int_t)count, "time_us", t * 1e6, "algbw_gbs", algbw, "busbw_gbs", busbw,
                                    "wrong", o.check ? json_integer((json_int_t)wrong) : json_null());
            if (mpi_ok) {
                json_object_set_new(row, "mpi_time_us", json_real(mt * 1e6));
                json_object_set_new(row, "mpi_busbw_gbs", json_real(mbus));
                json_object_set_new(row, "ratio", json_real(busbw / mbus));
            } else {
                json_object_set_new(row, "mpi_time_us", json_null());
                json_object_set_new(row, "mpi_busbw_gbs", json_null());
                json_object_set_new(row, "ratio", json_null());
            }
            json_array_append_new(results, row);
        }
        if (o.factor * sz == sz)
            break;
    }
    int rc = failed ? 1 : 0;
    if (rank == 0) {
        printf("# Avg bus bandwidth    : %.4f\n", nsizes ? sum_busbw / nsizes : 0.0);
        if (o.json != NULL) {
            json_t *doc = json_pack("{s:s, s:i, s:s, s:s, s:s, s:o}", "coll", coll_names[o.coll], "nranks", nranks,
                                    "backend", o.backend, "dtype", hcrt_dtype_name(o.dtype), "op",
                                    hcrt_op_name(o.op), "results", results);
            results = NULL;
            if (json_dump_file(doc, o.json, JSON_INDENT(2)) != 0) {
                fprintf(stderr, "hcrt-bench: cannot write %s\n", o.json);
                rc = 1;
            }
            json_decref(doc);
        }
    }
    json_decref(results);
    if (b.dev) {
        hcrt_mem_free(b.dev, b.send);
        hcrt_mem_free(b.dev, b.recv);
    } else {
        free(b.send);
        free(b.recv);
    }
    free(ms);
    free(mr);
    free(hs);
    free(hr);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    return rc;
}
