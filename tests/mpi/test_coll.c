/*
 * tests/mpi/test_coll.c - collectives under mpirun, checked against a float64 reference.
 *
 * Modes (argv[1]):
 *   sweep [host|sim|both]  every collective x dtype x op x in/out-of-place x counts 0, 1, 7, 1023 (and
 *                   1 Mi + 3 for a few dtypes) x unaligned pointers; inputs are small integers so the
 *                   float64 reference is exact in every dtype (avg allows the truncation of 1/n)
 *   determinism     float inputs with rounding: repeated allreduces give the same bits, on every rank
 *   mixed           each rank reduces memory of its own context device (an MPMD job gives ranks different
 *                   backends); the bits must equal those of the same call on host memory everywhere
 *   nonblocking     several outstanding i-operations, completed in another order, beside blocking calls
 *   badargs         every argument check returns HCRT_ERR_INVALID_ARG naming the argument
 *   mismatch        with HCRT_CHECK_CALLS=1, calls that differ across ranks return HCRT_ERR_MISMATCH on every
 *                   rank, naming the rank and the field
 *   comms           split, dup, from_mpi, rank info, node count (TEST_COLL_NODES: the number expected),
 *                   send/recv
 *   fault, fault_nb runs allreduces (blocking, or nonblocking and waited for) until HCRT_FAULT stops a
 *                   rank (the fault suite checks the outcome)
 *   nompi           without MPI: a one-rank communicator, every collective a local copy
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/host_kernels.h"
#include "test_mpi.h"

static hcrt_context_t *ctx;
static hcrt_comm_t *comm;
static int rank, nranks;
static hcrt_device_t *host_dev, *sim_dev;
static long nchecked;

/* ---- typed element access ---------------------------------------------------------------------- */

static void put(void *p, hcrt_dtype_t d, size_t i, double v)
{
    unsigned char *b = p;
    switch (d) {
    case HCRT_I8: { int8_t x = (int8_t)v; memcpy(b + i, &x, 1); break; }
    case HCRT_U8: { uint8_t x = (uint8_t)v; memcpy(b + i, &x, 1); break; }
    case HCRT_I32: { int32_t x = (int32_t)v; memcpy(b + 4 * i, &x, 4); break; }
    case HCRT_U32: { uint32_t x = (uint32_t)v; memcpy(b + 4 * i, &x, 4); break; }
    case HCRT_I64: { int64_t x = (int64_t)v; memcpy(b + 8 * i, &x, 8); break; }
    case HCRT_U64: { uint64_t x = (uint64_t)v; memcpy(b + 8 * i, &x, 8); break; }
    case HCRT_F16: { uint16_t x = hcrt__f32_to_f16((float)v); memcpy(b + 2 * i, &x, 2); break; }
    case HCRT_BF16: { uint16_t x = hcrt__f32_to_bf16((float)v); memcpy(b + 2 * i, &x, 2); break; }
    case HCRT_F32: { float x = (float)v; memcpy(b + 4 * i, &x, 4); break; }
    default: { double x = v; memcpy(b + 8 * i, &x, 8); break; }
    }
}

static double get(const void *p, hcrt_dtype_t d, size_t i)
{
    const unsigned char *b = p;
    switch (d) {
    case HCRT_I8: { int8_t x; memcpy(&x, b + i, 1); return x; }
    case HCRT_U8: { uint8_t x; memcpy(&x, b + i, 1); return x; }
    case HCRT_I32: { int32_t x; memcpy(&x, b + 4 * i, 4); return x; }
    case HCRT_U32: { uint32_t x; memcpy(&x, b + 4 * i, 4); return x; }
    case HCRT_I64: { int64_t x; memcpy(&x, b + 8 * i, 8); return (double)x; }
    case HCRT_U64: { uint64_t x; memcpy(&x, b + 8 * i, 8); return (double)x; }
    case HCRT_F16: { uint16_t x; memcpy(&x, b + 2 * i, 2); return hcrt__f16_to_f32(x); }
    case HCRT_BF16: { uint16_t x; memcpy(&x, b + 2 * i, 2); return hcrt__bf16_to_f32(x); }
    case HCRT_F32: { float x; memcpy(&x, b + 4 * i, 4); return x; }
    default: { double x; memcpy(&x, b + 8 * i, 8); return x; }
    }
}

static bool is_unsigned(hcrt_dtype_t d) { return d == HCRT_U8 || d == HCRT_U32 || d == HCRT_U64; }
static bool is_int(hcrt_dtype_t d) { return d <= HCRT_U64; }

/* Input of rank r, element i, for reduction op: small integers, exact in every dtype and every op. */
static double input(int r, size_t i, hcrt_dtype_t d, hcrt_op_t op)
{
    if (op == HCRT_OP_PROD)
        return ((size_t)r + i) % 3 == 0 ? 2.0 : 1.0;
    double v = (double)(((size_t)r * 7 + i * 3) % 11);
    return is_unsigned(d) ? v : v - 5.0;
}

static double reference(size_t i, hcrt_dtype_t d, hcrt_op_t op, size_t idx_for_input)
{
    double acc = input(0, idx_for_input, d, op);
    for (int r = 1; r < nranks; r++) {
        double v = input(r, idx_for_input, d, op);
        switch (op) {
        case HCRT_OP_PROD: acc *= v; break;
        case HCRT_OP_MIN: acc = v < acc ? v : acc; break;
        case HCRT_OP_MAX: acc = v > acc ? v : acc; break;
        default: acc += v; break;
        }
    }
    (void)i;
    if (op == HCRT_OP_AVG)
        acc = is_int(d) ? trunc(acc / nranks) : acc / nranks;
    return acc;
}

static bool close_enough(double got, double want, hcrt_dtype_t d, hcrt_op_t op)
{
    if (op != HCRT_OP_AVG)
        return got == want;
    if (is_int(d))
        return fabs(got - want) <= 1.0;
    double tol = (d == HCRT_F16 || d == HCRT_BF16) ? 1e-2 : 1e-6;
    return fabs(got - want) <= tol * (fabs(want) + 1.0);
}

/* ---- buffers on host or sim memory ------------------------------------------------------------- */

typedef struct buf {
    hcrt_device_t *dev; /* NULL: host */
    void *base;         /* allocation */
    void *ptr;          /* base + offset (unaligned on purpose) */
    size_t bytes;
} buf_t;

static void buf_alloc(buf_t *b, hcrt_device_t *dev, size_t bytes, size_t offset)
{
    b->dev = dev;
    b->bytes = bytes;
    if (dev == NULL) {
        b->base = malloc(bytes + offset + 1);
        if (b->base == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    } else {
        REQUIRE_OK(ctx, hcrt_mem_alloc(dev, bytes + offset + 1, &b->base));
    }
    b->ptr = (unsigned char *)b->base + offset;
}

static void buf_free(buf_t *b)
{
    if (b->dev == NULL)
        free(b->base);
    else
        hcrt_mem_free(b->dev, b->base);
}

/* Copies host data into the buffer / the buffer out to host. */
static void buf_write(buf_t *b, const void *src, size_t bytes)
{
    if (bytes == 0)
        return;
    if (b->dev == NULL)
        memcpy(b->ptr, src, bytes);
    else
        REQUIRE_OK(ctx, hcrt_memcpy(b->dev, b->ptr, host_dev, src, bytes));
}

static void buf_read(const buf_t *b, void *dst, size_t bytes)
{
    if (bytes == 0)
        return;
    if (b->dev == NULL)
        memcpy(dst, b->ptr, bytes);
    else
        REQUIRE_OK(ctx, hcrt_memcpy(host_dev, dst, b->dev, b->ptr, bytes));
}

/* ---- the sweep ---------------------------------------------------------------------------------- */

typedef enum coll { ALLREDUCE, REDUCE, BROADCAST, ALLGATHER, ALLGATHERV, REDUCE_SCATTER, ALLTOALL, ALLTOALLV,
                    GATHER, SCATTER, BARRIER, NCOLL } coll_t;
static const char *coll_name[NCOLL] = {"allreduce", "reduce", "broadcast", "allgather", "allgatherv",
                                        "reduce_scatter", "alltoall", "alltoallv", "gather", "scatter", "barrier"};

static bool reduces(coll_t c) { return c == ALLREDUCE || c == REDUCE || c == REDUCE_SCATTER; }
static bool has_in_place(coll_t c)
{
    return c == ALLREDUCE || c == REDUCE || c == ALLGATHER || c == ALLGATHERV || c == REDUCE_SCATTER ||
           c == GATHER;
}

/* A value that no operation writes: gaps and untouched regions must keep it. */
#define SENTINEL 77.0

/* Runs one case; returns whether it passed (failures are printed). */
static void run_case(coll_t c, hcrt_dtype_t d, hcrt_op_t op, bool in_place, size_t count, hcrt_device_t *dev,
                     size_t offset)
{
    size_t es = hcrt_dtype_size(d), n = (size_t)nranks, r = (size_t)rank;
    int root = (int)(count % n);
    size_t sendn = 0, recvn = 0;
    size_t *counts = NULL, *displs = NULL, *scounts = NULL, *sdispls = NULL;
    switch (c) {
    case ALLREDUCE: case REDUCE: case BROADCAST: sendn = recvn = count; break;
    case ALLGATHER: case GATHER: sendn = count; recvn = count * n; break;
    case SCATTER: sendn = count * n; recvn = count; break;
    case REDUCE_SCATTER: sendn = count * n; recvn = in_place ? count * n : count; break;
    case ALLTOALL: sendn = recvn = count * n; break;
    case ALLGATHERV:
        counts = test_xmalloc(n * sizeof(size_t));
        displs = test_xmalloc(n * sizeof(size_t));
        for (size_t q = 0; q < n; q++) {
            counts[q] = count + q % 2;
            displs[q] = recvn + q; /* a gap of q elements before each block */
            recvn = displs[q] + counts[q];
        }
        sendn = counts[r];
        break;
    case ALLTOALLV:
        counts = test_xmalloc(n * sizeof(size_t));
        displs = test_xmalloc(n * sizeof(size_t));
        scounts = test_xmalloc(n * sizeof(size_t));
        sdispls = test_xmalloc(n * sizeof(size_t));
        for (size_t q = 0; q < n; q++) {
            scounts[q] = count + (r + q) % 2;
            sdispls[q] = sendn + 1;
            sendn = sdispls[q] + scounts[q];
            counts[q] = count + (q + r) % 2;
            displs[q] = recvn + 2;
            recvn = displs[q] + counts[q];
        }
        break;
    default: break;
    }
    unsigned char *hs = test_xmalloc(sendn * es), *hr = test_xmalloc(recvn * es), *out = test_xmalloc(recvn * es);
    /* Inputs. */
    for (size_t i = 0; i < sendn; i++) {
        double v;
        if (reduces(c))
            v = input(rank, i, d, op);
        else if (c == ALLTOALL)
            v = (double)((r * 5 + i) % 100);
        else
            v = (double)((r * 13 + i) % 100);
        put(hs, d, i, v);
    }
    for (size_t i = 0; i < recvn; i++)
        put(hr, d, i, SENTINEL);
    /* Where in-place input lives. */
    buf_t bs = {0}, br = {0};
    buf_alloc(&bs, dev, sendn * es, offset);
    buf_alloc(&br, dev, recvn * es, offset);
    buf_write(&br, hr, recvn * es);
    const void *send = bs.ptr;
    if (in_place) {
        send = HCRT_IN_PLACE;
        switch (c) {
        case ALLREDUCE: case REDUCE_SCATTER: buf_write(&br, hs, sendn * es); break;
        case REDUCE:
            if (rank == root)
                buf_write(&br, hs, sendn * es);
            else
                send = bs.ptr;
            break;
        case GATHER:
            if (rank == root) {
                memcpy(hr + r * count * es, hs, count * es);
                buf_write(&br, hr, recvn * es);
            } else {
                send = bs.ptr;
            }
            break;
        case ALLGATHER: memcpy(hr + r * count * es, hs, count * es); buf_write(&br, hr, recvn * es); break;
        case ALLGATHERV: memcpy(hr + displs[r] * es, hs, counts[r] * es); buf_write(&br, hr, recvn * es); break;
        default: break;
        }
    }
    buf_write(&bs, hs, sendn * es);
    if (c == BROADCAST) {
        if (rank == root)
            buf_write(&br, hs, sendn * es);
    }
    hcrt_status_t st = HCRT_OK;
    switch (c) {
    case ALLREDUCE: st = hcrt_comm_allreduce(comm, send, br.ptr, count, d, op, dev); break;
    case REDUCE: st = hcrt_comm_reduce(comm, send, br.ptr, count, d, op, root, dev); break;
    case BROADCAST: st = hcrt_comm_broadcast(comm, br.ptr, count, d, root, dev); break;
    case ALLGATHER: st = hcrt_comm_allgather(comm, send, br.ptr, count, d, dev); break;
    case ALLGATHERV: st = hcrt_comm_allgatherv(comm, send, br.ptr, counts, displs, d, dev); break;
    case REDUCE_SCATTER: st = hcrt_comm_reduce_scatter(comm, send, br.ptr, count, d, op, dev); break;
    case ALLTOALL: st = hcrt_comm_alltoall(comm, send, br.ptr, count, d, dev); break;
    case ALLTOALLV: st = hcrt_comm_alltoallv(comm, send, scounts, sdispls, br.ptr, counts, displs, d, dev); break;
    case GATHER: st = hcrt_comm_gather(comm, send, br.ptr, count, d, root, dev); break;
    case SCATTER: st = hcrt_comm_scatter(comm, send, br.ptr, count, d, root, dev); break;
    case BARRIER: st = hcrt_comm_barrier(comm); break;
    default: break;
    }
    char what[160];
    snprintf(what, sizeof(what), "%s %s %s %s count=%zu %s offset=%zu rank %d/%d", coll_name[c], hcrt_dtype_name(d),
             reduces(c) ? hcrt_op_name(op) : "-", in_place ? "in-place" : "out-of-place", count,
             dev ? "sim" : "host", offset, rank, nranks);
    CHECK_MSG(st == HCRT_OK, "%s: %s: %s", what, hcrt_status_name(st), hcrt_last_error(ctx));
    buf_read(&br, out, recvn * es);
    int bad = 0;
    size_t first_bad = 0;
    double got_bad = 0, want_bad = 0;
#define EXPECT(idx, want, red)                                                                       \
    do {                                                                                             \
        double g_ = get(out, d, (idx)), w_ = (want);                                                 \
        bool ok_ = (red) ? close_enough(g_, w_, d, op) : g_ == w_;                                   \
        if (!ok_ && bad++ == 0) {                                                                    \
            first_bad = (idx);                                                                       \
            got_bad = g_;                                                                            \
            want_bad = w_;                                                                           \
        }                                                                                            \
    } while (0)
    switch (c) {
    case ALLREDUCE:
        for (size_t i = 0; i < count; i++)
            EXPECT(i, reference(i, d, op, i), true);
        break;
    case REDUCE:
        for (size_t i = 0; i < count; i++)
            EXPECT(i, rank == root ? reference(i, d, op, i) : (in_place ? SENTINEL : SENTINEL), rank == root);
        break;
    case BROADCAST:
        for (size_t i = 0; i < count; i++)
            EXPECT(i, (double)(((size_t)root * 13 + i) % 100), false);
        break;
    case ALLGATHER:
        for (size_t q = 0; q < n; q++)
            for (size_t i = 0; i < count; i++)
                EXPECT(q * count + i, (double)((q * 13 + i) % 100), false);
        break;
    case GATHER:
        for (size_t q = 0; q < n; q++)
            for (size_t i = 0; i < count; i++)
                EXPECT(q * count + i, rank == root ? (double)((q * 13 + i) % 100) : SENTINEL, false);
        break;
    case SCATTER:
        for (size_t i = 0; i < count; i++)
            EXPECT(i, (double)(((size_t)root * 13 + r * count + i) % 100), false);
        break;
    case ALLGATHERV: {
        size_t pos = 0;
        for (size_t q = 0; q < n; q++) {
            for (; pos < displs[q]; pos++)
                EXPECT(pos, SENTINEL, false);
            for (size_t i = 0; i < counts[q]; i++, pos++)
                EXPECT(pos, (double)((q * 13 + i) % 100), false);
        }
        break;
    }
    case REDUCE_SCATTER:
        for (size_t i = 0; i < count; i++)
            EXPECT(i, reference(i, d, op, r * count + i), true);
        break;
    case ALLTOALL:
        for (size_t q = 0; q < n; q++)
            for (size_t i = 0; i < count; i++)
                EXPECT(q * count + i, (double)((q * 5 + r * count + i) % 100), false);
        break;
    case ALLTOALLV: {
        size_t pos = 0;
        for (size_t q = 0; q < n; q++) {
            /* rank q's block for us starts at its sdispls[r], which the same formula gives */
            size_t sd = 0;
            for (size_t j = 0; j <= r; j++) {
                size_t sc = count + (q + j) % 2;
                sd += 1;
                if (j == r)
                    break;
                sd += sc;
            }
            for (; pos < displs[q]; pos++)
                EXPECT(pos, SENTINEL, false);
            for (size_t i = 0; i < counts[q]; i++, pos++)
                EXPECT(pos, (double)((q * 13 + sd + i) % 100), false);
        }
        break;
    }
    default: break;
    }
    CHECK_MSG(bad == 0, "%s: %d wrong elements, first at %zu: got %g want %g", what, bad, first_bad, got_bad,
              want_bad);
    nchecked++;
    buf_free(&bs);
    buf_free(&br);
    free(hs);
    free(hr);
    free(out);
    free(counts);
    free(displs);
    free(scounts);
    free(sdispls);
}

static int sweep(const char *which)
{
    static const size_t counts[] = {0, 1, 7, 1023};
    bool do_host = strcmp(which, "sim") != 0, do_sim = strcmp(which, "host") != 0;
    for (int kind = 0; kind < 2; kind++) {
        hcrt_device_t *dev = kind ? sim_dev : NULL;
        if ((kind == 0 && !do_host) || (kind == 1 && !do_sim))
            continue;
        for (int c = 0; c < NCOLL; c++) {
            for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
                int nops = reduces((coll_t)c) ? HCRT_OP_COUNT : 1;
                for (int op = 0; op < nops; op++) {
                    for (int ip = 0; ip < (has_in_place((coll_t)c) ? 2 : 1); ip++) {
                        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
                            /* Unaligned pointers on every other case. */
                            size_t offset = (k + (size_t)d) % 2;
                            run_case((coll_t)c, (hcrt_dtype_t)d, (hcrt_op_t)op, ip, counts[k], dev, offset);
                            if (c == BARRIER)
                                break;
                        }
                        if (c == BARRIER)
                            break;
                    }
                    if (c == BARRIER)
                        break;
                }
                if (c == BARRIER)
                    break;
            }
        }
        /* Large: several segments, several chunks of the shared-memory path, staging pipeline. */
        const size_t big = (1u << 20) + 3;
        run_case(ALLREDUCE, HCRT_F32, HCRT_OP_SUM, false, big, dev, 1);
        run_case(ALLREDUCE, HCRT_BF16, HCRT_OP_AVG, true, big, dev, 0);
        run_case(ALLREDUCE, HCRT_I64, HCRT_OP_MAX, false, big, dev, 0);
        run_case(REDUCE, HCRT_F64, HCRT_OP_SUM, true, big, dev, 0);
        run_case(BROADCAST, HCRT_U8, HCRT_OP_SUM, false, 4 * big, dev, 1);
        run_case(REDUCE_SCATTER, HCRT_F32, HCRT_OP_SUM, false, big / 4, dev, 0);
        run_case(ALLGATHER, HCRT_I32, HCRT_OP_SUM, true, big / 4, dev, 0);
        /* Beyond 8 MiB results are written with streaming stores. */
        run_case(ALLREDUCE, HCRT_F32, HCRT_OP_MIN, false, (5u << 19) + 1, dev, 1);
        run_case(ALLREDUCE, HCRT_F16, HCRT_OP_AVG, false, (9u << 20) / 2 + 5, dev, 0);
    }
    if (rank == 0)
        printf("sweep %s: %ld cases on %d ranks\n", which, nchecked, nranks);
    return 0;
}

/* ---- determinism and mixed devices ------------------------------------------------------------------ */

/* Floats whose sums round: the order of the additions shows in the bits. */
static void fill_floats(float *x, size_t n, int r)
{
    uint32_t s = 2463534242u + (uint32_t)r * 7919u;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        x[i] = (float)((double)s / 4294967296.0 * 2.0 - 1.0) * (float)(1 + (i % 7) * 1000);
    }
}

static int determinism(void)
{
    static const size_t sizes[] = {5, 1000, 70000, (1u << 20) + 5};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        float *in = test_xmalloc(n * 4), *out = test_xmalloc(n * 4);
        fill_floats(in, n, rank);
        uint64_t first = 0;
        for (int rep = 0; rep < 3; rep++) {
            REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, in, out, n, HCRT_F32, HCRT_OP_SUM, NULL));
            uint64_t h = test_hash(out, n * 4);
            if (rep == 0)
                first = h;
            CHECK_MSG(h == first, "count %zu: repeat %d gave other bits", n, rep);
        }
        test_same_everywhere(first, "allreduce f32 sum");
        /* bf16 accumulates in f32 and rounds each step: also deterministic */
        uint16_t *b = test_xmalloc(n * 2);
        for (size_t i = 0; i < n; i++)
            b[i] = hcrt__f32_to_bf16(in[i]);
        REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, b, n, HCRT_BF16, HCRT_OP_AVG, NULL));
        test_same_everywhere(test_hash(b, n * 2), "allreduce bf16 avg");
        /* The nonblocking path (ring / recursive doubling) is deterministic across ranks as well. */
        hcrt_request_t *req = NULL;
        REQUIRE_OK(ctx, hcrt_comm_iallreduce(comm, in, out, n, HCRT_F32, HCRT_OP_SUM, NULL, &req));
        CHECK_OK(ctx, hcrt_request_wait(req));
        hcrt_request_free(req);
        test_same_everywhere(test_hash(out, n * 4), "iallreduce f32 sum");
        free(b);
        free(in);
        free(out);
    }
    if (rank == 0)
        printf("determinism: ok on %d ranks\n", nranks);
    return 0;
}

static int mixed(void)
{
    hcrt_device_t *mine = NULL;
    REQUIRE_OK(ctx, hcrt_context_device(ctx, &mine));
    hcrt_comm_rank_info_t info = {.struct_size = sizeof(info)};
    for (int r = 0; r < nranks && rank == 0; r++) {
        REQUIRE_OK(ctx, hcrt_comm_rank_info(comm, r, &info));
        printf("rank %d: %s device %d speed %.2f on %s\n", r, info.backend, info.device_index, info.speed,
               info.host);
    }
    static const size_t sizes[] = {3, 4099, (1u << 20) + 7};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k];
        float *in = test_xmalloc(n * 4), *ref = test_xmalloc(n * 4), *got = test_xmalloc(n * 4);
        fill_floats(in, n, rank);
        REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, in, ref, n, HCRT_F32, HCRT_OP_SUM, NULL));
        buf_t bs, br;
        bool host = hcrt_device_backend(mine) != NULL && strcmp(hcrt_device_backend(mine), "cpu") == 0;
        buf_alloc(&bs, host ? NULL : mine, n * 4, 0);
        buf_alloc(&br, host ? NULL : mine, n * 4, 0);
        buf_write(&bs, in, n * 4);
        REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, bs.ptr, br.ptr, n, HCRT_F32, HCRT_OP_SUM, host ? NULL : mine));
        buf_read(&br, got, n * 4);
        CHECK_MSG(memcmp(got, ref, n * 4) == 0, "count %zu: %s device result differs from the host run", n,
                  hcrt_device_backend(mine));
        test_same_everywhere(test_hash(got, n * 4), "mixed allreduce");
        /* Other collectives on mixed devices, against the host run as well. */
        size_t m = n / (size_t)nranks + 1;
        float *gref = test_xmalloc(m * 4 * (size_t)nranks), *ggot = test_xmalloc(m * 4 * (size_t)nranks);
        REQUIRE_OK(ctx, hcrt_comm_allgather(comm, in, gref, m, HCRT_F32, NULL));
        buf_t bg;
        buf_alloc(&bg, host ? NULL : mine, m * 4 * (size_t)nranks, 0);
        REQUIRE_OK(ctx, hcrt_comm_allgather(comm, bs.ptr, bg.ptr, m, HCRT_F32, host ? NULL : mine));
        buf_read(&bg, ggot, m * 4 * (size_t)nranks);
        CHECK_MSG(memcmp(ggot, gref, m * 4 * (size_t)nranks) == 0, "count %zu: mixed allgather differs", m);
        buf_free(&bg);
        buf_free(&bs);
        buf_free(&br);
        free(gref);
        free(ggot);
        free(in);
        free(ref);
        free(got);
    }
    if (rank == 0)
        printf("mixed: ok on %d ranks\n", nranks);
    return 0;
}

/* ---- nonblocking ----------------------------------------------------------------------------------- */

static int nonblocking(void)
{
    size_t n = 100003, es = 4, N = (size_t)nranks;
    float *a_in = test_xmalloc(n * es), *a_out = test_xmalloc(n * es), *ref = test_xmalloc(n * es);
    int32_t *bc = test_xmalloc(5000 * 4), *ag_in = test_xmalloc(333 * 4), *ag_out = test_xmalloc(333 * 4 * N);
    double *rs_in = test_xmalloc(77 * N * 8), *rs_out = test_xmalloc(77 * 8);
    for (int kind = 0; kind < 2; kind++) {
        hcrt_device_t *dev = kind ? sim_dev : NULL;
        for (size_t i = 0; i < n; i++)
            put(a_in, HCRT_F32, i, input(rank, i, HCRT_F32, HCRT_OP_SUM));
        for (size_t i = 0; i < 5000; i++)
            bc[i] = rank == 1 % nranks ? (int32_t)(i * 3) : -1;
        for (size_t i = 0; i < 333; i++)
            ag_in[i] = (int32_t)((size_t)rank * 1000 + i);
        for (size_t i = 0; i < 77 * N; i++)
            rs_in[i] = input(rank, i, HCRT_F64, HCRT_OP_MAX);
        buf_t A, B, C, D, E, F, G;
        buf_alloc(&A, dev, n * es, 0);
        buf_alloc(&B, dev, n * es, 0);
        buf_alloc(&C, dev, 5000 * 4, 0);
        buf_alloc(&D, dev, 333 * 4, 0);
        buf_alloc(&E, dev, 333 * 4 * N, 0);
        buf_alloc(&F, dev, 77 * N * 8, 0);
        buf_alloc(&G, dev, 77 * 8, 0);
        buf_write(&A, a_in, n * es);
        buf_write(&C, bc, 5000 * 4);
        buf_write(&D, ag_in, 333 * 4);
        buf_write(&F, rs_in, 77 * N * 8);
        hcrt_request_t *r[6] = {0};
        REQUIRE_OK(ctx, hcrt_comm_iallreduce(comm, A.ptr, B.ptr, n, HCRT_F32, HCRT_OP_SUM, dev, &r[0]));
        REQUIRE_OK(ctx, hcrt_comm_ibroadcast(comm, C.ptr, 5000, HCRT_I32, 1 % nranks, dev, &r[1]));
        REQUIRE_OK(ctx, hcrt_comm_iallgather(comm, D.ptr, E.ptr, 333, HCRT_I32, dev, &r[2]));
        REQUIRE_OK(ctx, hcrt_comm_ireduce_scatter(comm, F.ptr, G.ptr, 77, HCRT_F64, HCRT_OP_MAX, dev, &r[3]));
        REQUIRE_OK(ctx, hcrt_comm_ibarrier(comm, &r[4]));
        /* A blocking call while they are outstanding. */
        float x = (float)rank, y = 0;
        REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, &x, &y, 1, HCRT_F32, HCRT_OP_SUM, NULL));
        CHECK(y == (float)(nranks * (nranks - 1) / 2));
        /* Complete in reverse order, testing first. */
        bool done = false;
        CHECK_OK(ctx, hcrt_request_test(r[4], &done));
        for (int i = 4; i >= 0; i--)
            CHECK_OK(ctx, hcrt_request_wait(r[i]));
        CHECK_OK(ctx, hcrt_request_test(r[0], &done));
        CHECK(done);
        for (int i = 0; i < 5; i++)
            CHECK_OK(ctx, hcrt_request_free(r[i]));
        buf_read(&B, a_out, n * es);
        for (size_t i = 0; i < n; i++)
            put(ref, HCRT_F32, i, reference(i, HCRT_F32, HCRT_OP_SUM, i));
        CHECK_MSG(memcmp(a_out, ref, n * es) == 0, "iallreduce result wrong (%s)", dev ? "sim" : "host");
        buf_read(&C, bc, 5000 * 4);
        int bad = 0;
        for (size_t i = 0; i < 5000; i++)
            bad += bc[i] != (int32_t)(i * 3);
        CHECK_MSG(bad == 0, "ibroadcast: %d wrong", bad);
        buf_read(&E, ag_out, 333 * 4 * N);
        bad = 0;
        for (size_t q = 0; q < N; q++)
            for (size_t i = 0; i < 333; i++)
                bad += ag_out[q * 333 + i] != (int32_t)(q * 1000 + i);
        CHECK_MSG(bad == 0, "iallgather: %d wrong", bad);
        buf_read(&G, rs_out, 77 * 8);
        bad = 0;
        for (size_t i = 0; i < 77; i++)
            bad += rs_out[i] != reference(i, HCRT_F64, HCRT_OP_MAX, (size_t)rank * 77 + i);
        CHECK_MSG(bad == 0, "ireduce_scatter: %d wrong", bad);
        buf_t *all[] = {&A, &B, &C, &D, &E, &F, &G};
        for (int i = 0; i < 7; i++)
            buf_free(all[i]);
    }
    /* Many outstanding small allreduces, completed by one wait on the last. */
    enum { K = 16 };
    hcrt_request_t *rq[K];
    int64_t v[K], w[K];
    for (int k = 0; k < K; k++) {
        v[k] = rank + k;
        REQUIRE_OK(ctx, hcrt_comm_iallreduce(comm, &v[k], &w[k], 1, HCRT_I64, HCRT_OP_SUM, NULL, &rq[k]));
    }
    CHECK_OK(ctx, hcrt_request_wait(rq[K - 1]));
    for (int k = 0; k < K; k++) {
        CHECK_OK(ctx, hcrt_request_wait(rq[k]));
        CHECK(w[k] == (int64_t)nranks * (nranks - 1) / 2 + (int64_t)nranks * k);
        hcrt_request_free(rq[k]);
    }
    free(a_in);
    free(a_out);
    free(ref);
    free(bc);
    free(ag_in);
    free(ag_out);
    free(rs_in);
    free(rs_out);
    if (rank == 0)
        printf("nonblocking: ok on %d ranks\n", nranks);
    return 0;
}

/* ---- argument checks -------------------------------------------------------------------------------- */

#define EXPECT_ARG(call, name)                                                                       \
    do {                                                                                             \
        hcrt_status_t s_ = (call);                                                                   \
        const char *m_ = hcrt_last_error(ctx);                                                       \
        CHECK_MSG(s_ == HCRT_ERR_INVALID_ARG && strstr(m_, "'" name "'") != NULL,                    \
                  "%s -> %s, message \"%s\" (expected INVALID_ARG naming '%s')", #call,              \
                  hcrt_status_name(s_), m_, name);                                                   \
    } while (0)

static int badargs(void)
{
    float x[8] = {0}, y[64] = {0};
    size_t huge = (size_t)-3; /* what a negative count becomes */
    EXPECT_ARG(hcrt_comm_allreduce(comm, NULL, y, 4, HCRT_F32, HCRT_OP_SUM, NULL), "send");
    EXPECT_ARG(hcrt_comm_allreduce(comm, x, NULL, 4, HCRT_F32, HCRT_OP_SUM, NULL), "recv");
    EXPECT_ARG(hcrt_comm_allreduce(comm, x, y, huge, HCRT_F32, HCRT_OP_SUM, NULL), "count");
    EXPECT_ARG(hcrt_comm_allreduce(comm, x, y, (SIZE_MAX / 4) + 2, HCRT_F32, HCRT_OP_SUM, NULL), "count");
    EXPECT_ARG(hcrt_comm_allreduce(comm, x, y, 4, (hcrt_dtype_t)99, HCRT_OP_SUM, NULL), "dtype");
    EXPECT_ARG(hcrt_comm_allreduce(comm, x, y, 4, HCRT_F32, (hcrt_op_t)17, NULL), "op");
    EXPECT_ARG(hcrt_comm_allreduce(NULL, x, y, 4, HCRT_F32, HCRT_OP_SUM, NULL), "comm");
    EXPECT_ARG(hcrt_comm_reduce(comm, x, y, 4, HCRT_F32, HCRT_OP_SUM, nranks, NULL), "root");
    EXPECT_ARG(hcrt_comm_reduce(comm, x, y, 4, HCRT_F32, HCRT_OP_SUM, -1, NULL), "root");
    EXPECT_ARG(hcrt_comm_broadcast(comm, NULL, 4, HCRT_F32, 0, NULL), "buf");
    EXPECT_ARG(hcrt_comm_broadcast(comm, y, 4, HCRT_F32, 7 + nranks, NULL), "root");
    EXPECT_ARG(hcrt_comm_allgather(comm, x, y, huge, HCRT_F32, NULL), "count");
    EXPECT_ARG(hcrt_comm_allgather(comm, x, NULL, 1, HCRT_F32, NULL), "recv");
    EXPECT_ARG(hcrt_comm_allgatherv(comm, x, y, NULL, NULL, HCRT_F32, NULL), "counts");
    EXPECT_ARG(hcrt_comm_reduce_scatter(comm, x, y, 2, HCRT_BF16, (hcrt_op_t)-1, NULL), "op");
    EXPECT_ARG(hcrt_comm_alltoall(comm, x, y, (size_t)3 << 31, HCRT_U8, NULL), "count");
    EXPECT_ARG(hcrt_comm_gather(comm, x, y, 1, HCRT_F32, -2, NULL), "root");
    EXPECT_ARG(hcrt_comm_scatter(comm, x, NULL, 1, HCRT_F32, 0, NULL), "recv");
    EXPECT_ARG(hcrt_comm_send(comm, x, 1, HCRT_F32, nranks, 0, NULL), "peer");
    EXPECT_ARG(hcrt_comm_send(comm, x, 1, HCRT_F32, 0, 40000, NULL), "tag");
    EXPECT_ARG(hcrt_comm_recv(comm, NULL, 1, HCRT_F32, 0, 0, NULL), "buf");
    EXPECT_ARG(hcrt_comm_iallreduce(comm, x, y, 1, HCRT_F32, HCRT_OP_SUM, NULL, NULL), "req");
    EXPECT_ARG(hcrt_comm_rank_info(comm, nranks, &(hcrt_comm_rank_info_t){.struct_size = 64}), "rank");
    EXPECT_ARG(hcrt_request_wait(NULL), "req");
    EXPECT_ARG(hcrt_comm_split(NULL, 0, 0, NULL), "comm");
    CHECK_OK(ctx, hcrt_comm_destroy(NULL));
    CHECK_OK(ctx, hcrt_request_free(NULL));
    /* count 0 with NULL buffers is fine */
    CHECK_OK(ctx, hcrt_comm_allreduce(comm, NULL, NULL, 0, HCRT_F32, HCRT_OP_SUM, NULL));
    /* the communicator still works after all those refusals */
    float v = 1, s = 0;
    CHECK_OK(ctx, hcrt_comm_allreduce(comm, &v, &s, 1, HCRT_F32, HCRT_OP_SUM, NULL));
    CHECK(s == (float)nranks);
    if (rank == 0)
        printf("badargs: ok\n");
    return 0;
}

static int mismatch(void)
{
    float x[16] = {0}, y[16 * 8] = {0};
    if (nranks < 2)
        TEST_SKIP("needs 2 ranks");
    hcrt_status_t st;
    /* count differs on the last rank */
    st = hcrt_comm_allreduce(comm, x, y, rank == nranks - 1 ? 9 : 8, HCRT_F32, HCRT_OP_SUM, NULL);
    char want[64];
    snprintf(want, sizeof(want), "rank %d has count=9", nranks - 1);
    CHECK_MSG(st == HCRT_ERR_MISMATCH && strstr(hcrt_last_error(ctx), want) != NULL, "count: %s: %s",
              hcrt_status_name(st), hcrt_last_error(ctx));
    /* dtype differs on rank 1 */
    st = hcrt_comm_allreduce(comm, x, y, 4, rank == 1 ? HCRT_F64 : HCRT_F32, HCRT_OP_SUM, NULL);
    CHECK_MSG(st == HCRT_ERR_MISMATCH && strstr(hcrt_last_error(ctx), "rank 1 has dtype=f64") != NULL, "dtype: %s",
              hcrt_last_error(ctx));
    /* op differs */
    st = hcrt_comm_allreduce(comm, x, y, 4, HCRT_F32, rank == 1 ? HCRT_OP_MAX : HCRT_OP_SUM, NULL);
    CHECK_MSG(st == HCRT_ERR_MISMATCH && strstr(hcrt_last_error(ctx), "op=max") != NULL, "op: %s",
              hcrt_last_error(ctx));
    /* root differs */
    st = hcrt_comm_broadcast(comm, x, 4, HCRT_F32, rank == 1 ? 1 : 0, NULL);
    CHECK_MSG(st == HCRT_ERR_MISMATCH && strstr(hcrt_last_error(ctx), "root=1") != NULL, "root: %s",
              hcrt_last_error(ctx));
    /* different operations */
    if (rank == 1)
        st = hcrt_comm_broadcast(comm, x, 4, HCRT_F32, 0, NULL);
    else
        st = hcrt_comm_allgather(comm, x, y, 4, HCRT_F32, NULL);
    CHECK_MSG(st == HCRT_ERR_MISMATCH && strstr(hcrt_last_error(ctx), "called broadcast") != NULL, "coll: %s",
              hcrt_last_error(ctx));
    /* and matching calls still work */
    x[0] = 1;
    CHECK_OK(ctx, hcrt_comm_allreduce(comm, x, y, 1, HCRT_F32, HCRT_OP_SUM, NULL));
    CHECK(y[0] == (float)nranks);
    if (rank == 0)
        printf("mismatch: ok\n");
    return 0;
}

/* ---- communicators ------------------------------------------------------------------------------------ */

static int comms(void)
{
    hcrt_comm_t *half = NULL, *dup = NULL, *fm = NULL, *none = NULL;
    int r = -1, n = -1;
    REQUIRE_OK(ctx, hcrt_comm_split(comm, rank % 2, -rank, &half));
    CHECK(half != NULL);
    CHECK_OK(ctx, hcrt_comm_size(half, &n));
    CHECK(n == (nranks + 1 - rank % 2) / 2);
    CHECK_OK(ctx, hcrt_comm_rank(half, &r));
    CHECK(r == n - 1 - rank / 2); /* keys reverse the order */
    int64_t v = rank, s = 0, want = 0;
    for (int q = rank % 2; q < nranks; q += 2)
        want += q;
    CHECK_OK(ctx, hcrt_comm_allreduce(half, &v, &s, 1, HCRT_I64, HCRT_OP_SUM, NULL));
    CHECK(s == want);
    REQUIRE_OK(ctx, hcrt_comm_split(comm, rank == 0 ? HCRT_COMM_UNDEFINED : 1, 0, &none));
    CHECK((none == NULL) == (rank == 0));
    hcrt_comm_destroy(none);
    REQUIRE_OK(ctx, hcrt_comm_dup(comm, &dup));
    REQUIRE_OK(ctx, hcrt_comm_from_mpi(ctx, (int64_t)MPI_Comm_c2f(MPI_COMM_WORLD), &fm));
    CHECK_OK(ctx, hcrt_comm_rank(fm, &r));
    CHECK(r == rank);
    CHECK_OK(ctx, hcrt_comm_allreduce(fm, &v, &s, 1, HCRT_I64, HCRT_OP_MAX, NULL));
    CHECK(s == nranks - 1);
    hcrt_comm_rank_info_t info = {.struct_size = sizeof(info)};
    CHECK_OK(ctx, hcrt_comm_rank_info(dup, nranks - 1, &info));
    CHECK(info.rank == nranks - 1 && info.host != NULL && info.host[0] != '\0' && info.backend != NULL &&
          info.speed > 0 && info.pid > 0);
    int nodes = 0;
    CHECK_OK(ctx, hcrt_comm_node_count(dup, &nodes));
    CHECK(nodes >= 1);
    /* The cluster suite runs this on real (namespace) nodes and says how many there are. */
    const char *want_nodes = getenv("TEST_COLL_NODES");
    CHECK_MSG(want_nodes == NULL || nodes == atoi(want_nodes), "%d nodes, TEST_COLL_NODES=%s", nodes,
              want_nodes ? want_nodes : "");
    /* send/recv around a ring, host and sim */
    if (nranks > 1) {
        for (int kind = 0; kind < 2; kind++) {
            hcrt_device_t *dev = kind ? sim_dev : NULL;
            int32_t out[300], in[300];
            for (int i = 0; i < 300; i++)
                out[i] = rank * 1000 + i;
            buf_t bo, bi;
            buf_alloc(&bo, dev, sizeof(out), 1);
            buf_alloc(&bi, dev, sizeof(in), 0);
            buf_write(&bo, out, sizeof(out));
            int right = (rank + 1) % nranks, left = (rank + nranks - 1) % nranks;
            if (rank % 2 == 0) {
                CHECK_OK(ctx, hcrt_comm_send(dup, bo.ptr, 300, HCRT_I32, right, 5, dev));
                CHECK_OK(ctx, hcrt_comm_recv(dup, bi.ptr, 300, HCRT_I32, left, 5, dev));
            } else {
                CHECK_OK(ctx, hcrt_comm_recv(dup, bi.ptr, 300, HCRT_I32, left, 5, dev));
                CHECK_OK(ctx, hcrt_comm_send(dup, bo.ptr, 300, HCRT_I32, right, 5, dev));
            }
            buf_read(&bi, in, sizeof(in));
            CHECK(in[0] == left * 1000 && in[299] == left * 1000 + 299);
            buf_free(&bo);
            buf_free(&bi);
        }
        /* a message of the wrong size is a mismatch */
        if (rank == 0) {
            int32_t z[3] = {1, 2, 3};
            CHECK_OK(ctx, hcrt_comm_send(dup, z, 3, HCRT_I32, 1, 9, NULL));
        } else if (rank == 1) {
            int32_t z[2];
            hcrt_status_t st = hcrt_comm_recv(dup, z, 2, HCRT_I32, 0, 9, NULL);
            CHECK_MSG(st == HCRT_ERR_MISMATCH || st == HCRT_ERR_MPI, "short recv: %s", hcrt_status_name(st));
        }
    }
    CHECK_OK(ctx, hcrt_comm_barrier(dup));
    hcrt_comm_destroy(fm);
    hcrt_comm_destroy(dup);
    hcrt_comm_destroy(half);
    if (rank == 0)
        printf("comms: ok\n");
    return 0;
}

/* Runs allreduces until an injected fault stops some rank; nonblocking ones (waited for) with `nb`. */
static int faulty(bool nb)
{
    float x[1024], y[1024];
    for (int i = 0; i < 1024; i++)
        x[i] = 1;
    for (int k = 0; k < 20; k++) {
        if (nb) {
            hcrt_request_t *req = NULL;
            REQUIRE_OK(ctx, hcrt_comm_iallreduce(comm, x, y, 1024, HCRT_F32, HCRT_OP_SUM, NULL, &req));
            REQUIRE_OK(ctx, hcrt_request_wait(req));
            hcrt_request_free(req);
        } else {
            REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, x, y, 1024, HCRT_F32, HCRT_OP_SUM, NULL));
        }
    }
    fprintf(stderr, "rank %d: no fault was injected\n", rank);
    return 3;
}

/* Without MPI (HCRT_INIT_NO_MPI) a communicator has one rank and every operation is a local copy. */
static int nompi(void)
{
    hcrt_context_params_t p;
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    REQUIRE_OK(NULL, hcrt_init(&p, &ctx));
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    REQUIRE_OK(ctx, hcrt_comm_rank(comm, &rank));
    REQUIRE_OK(ctx, hcrt_comm_size(comm, &nranks));
    CHECK(rank == 0 && nranks == 1);
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host_dev));
    if (hcrt_device_find(ctx, "sim", 0, &sim_dev) != HCRT_OK)
        sim_dev = NULL;
    for (int kind = 0; kind < (sim_dev ? 2 : 1); kind++) {
        hcrt_device_t *dev = kind ? sim_dev : NULL;
        for (int c = 0; c < NCOLL; c++)
            for (int ip = 0; ip < (has_in_place((coll_t)c) ? 2 : 1); ip++)
                run_case((coll_t)c, HCRT_F32, HCRT_OP_AVG, ip, 1023, dev, 1);
    }
    hcrt_request_t *req = NULL;
    double x = 2.5, y = 0;
    CHECK_OK(ctx, hcrt_comm_iallreduce(comm, &x, &y, 1, HCRT_F64, HCRT_OP_SUM, NULL, &req));
    CHECK_OK(ctx, hcrt_request_wait(req));
    CHECK(y == 2.5);
    hcrt_request_free(req);
    hcrt_comm_t *sub = NULL;
    CHECK_OK(ctx, hcrt_comm_split(comm, 0, 0, &sub));
    CHECK(sub != NULL);
    hcrt_comm_destroy(sub);
    CHECK_STATUS(ctx, hcrt_comm_from_mpi(ctx, 0, &sub), HCRT_ERR_STATE);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    printf("nompi: %ld cases\n", nchecked);
    TEST_DONE();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "sweep";
    if (strcmp(mode, "nompi") == 0)
        return nompi();
    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    REQUIRE_OK(ctx, hcrt_comm_rank(comm, &rank));
    REQUIRE_OK(ctx, hcrt_comm_size(comm, &nranks));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host_dev));
    if (hcrt_device_find(ctx, "sim", 0, &sim_dev) != HCRT_OK)
        sim_dev = NULL;
    int rc = 0;
    if (strcmp(mode, "sweep") == 0) {
        const char *which = argc > 2 ? argv[2] : "both";
        if (sim_dev == NULL && strcmp(which, "host") != 0) {
            fprintf(stderr, "the sim backend did not load (HCRT_BACKEND_PATH?)\n");
            return 1;
        }
        rc = sweep(which);
    } else if (strcmp(mode, "determinism") == 0) {
        rc = determinism();
    } else if (strcmp(mode, "mixed") == 0) {
        rc = mixed();
    } else if (strcmp(mode, "nonblocking") == 0) {
        rc = nonblocking();
    } else if (strcmp(mode, "badargs") == 0) {
        rc = badargs();
    } else if (strcmp(mode, "mismatch") == 0) {
        rc = mismatch();
    } else if (strcmp(mode, "comms") == 0) {
        rc = comms();
    } else if (strcmp(mode, "fault") == 0 || strcmp(mode, "fault_nb") == 0) {
        rc = faulty(strcmp(mode, "fault_nb") == 0);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    if (rc != 0)
        return rc;
    TEST_DONE();
}
