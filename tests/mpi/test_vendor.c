/*
 * tests/mpi/test_vendor.c - the vendor-group path on the sim vendor library (simccl), bit for bit.
 *
 * Run under mpirun as an MPMD job whose ranks carry HCRT_SIM_VENDOR=a, =b or none (HCRT_DEVICE=cpu for a
 * cpu rank), with HCRT_VENDOR_MIN_BYTES=0 so that every size takes the path. The test derives the vendor
 * groups as docs/performance.md ("Vendor groups") states them (same tag on the same node, two ranks or more; every
 * other rank alone) and checks, on host buffers and on sim device 0 (a cpu rank's context device is the host, so for it
 * that is another device's memory, which the path stages through the host):
 *  - allreduce and reduce_scatter of floats that round (f32, f16, bf16 avg, f64) give exactly the bits of
 *    the documented order: each group's partial in rank order (simccl), the groups' partials in group
 *    order, an average scaled once at the end; on every rank, run after run. Where the groups make that
 *    another order of operations than the all-host rank order, the test also checks that the two differ
 *    for its data, so a call that silently took hcrt's own path could not pass;
 *  - allgather and broadcast move every byte (odd sizes, several segments, every root);
 *  - every rank's log (HCRT_LOG_LEVEL=debug, which the test sets and captures itself) says that each of
 *    the four operations took the vendor-group path.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/host_kernels.h"
#include "test_mpi.h"

static hcrt_context_t *ctx;
static hcrt_comm_t *comm;
static hcrt_device_t *host, *mine;
static int rank, nranks;
static int *group_of, ngroups; /* the groups as hcrt must form them */
static bool *group_vendor;

/* Every rank's tag and node: groups are ranks of one tag and node, in order of their lowest rank. */
static void derive_groups(void)
{
    char tag[8] = "";
    const char *env = getenv("HCRT_SIM_VENDOR"), *off = getenv("HCRT_VENDOR_COLL");
    if (strcmp(hcrt_device_backend(mine), "sim") == 0 && env && (!strcmp(env, "a") || !strcmp(env, "b")) &&
        !(off && !strcmp(off, "0")))
        snprintf(tag, sizeof(tag), "%s", env);
    hcrt_comm_rank_info_t info = {.struct_size = sizeof(info)};
    REQUIRE_OK(ctx, hcrt_comm_rank_info(comm, rank, &info));
    char *tags = test_xmalloc((size_t)nranks * 8);
    int *nodes = test_xmalloc((size_t)nranks * sizeof(int)), *size = calloc((size_t)nranks, sizeof(int));
    MPI_Allgather(tag, 8, MPI_CHAR, tags, 8, MPI_CHAR, MPI_COMM_WORLD);
    MPI_Allgather(&info.node, 1, MPI_INT, nodes, 1, MPI_INT, MPI_COMM_WORLD);
    group_of = test_xmalloc((size_t)nranks * sizeof(int));
    group_vendor = calloc((size_t)nranks, sizeof(bool));
    int *lead = test_xmalloc((size_t)nranks * sizeof(int));
    ngroups = 0;
    for (int r = 0; r < nranks; r++) {
        int h = -1;
        for (int x = 0; x < ngroups && tags[r * 8] && h < 0; x++)
            if (!strcmp(tags + lead[x] * 8, tags + r * 8) && nodes[lead[x]] == nodes[r])
                h = x;
        if (h < 0) {
            h = ngroups++;
            lead[h] = r;
        }
        group_of[r] = h;
        size[h]++;
    }
    for (int h = 0; h < ngroups; h++)
        group_vendor[h] = size[h] >= 2 && tags[lead[h] * 8];
    if (rank == 0) {
        printf("groups:");
        for (int h = 0; h < ngroups; h++) {
            printf(" {");
            for (int r = 0; r < nranks; r++)
                if (group_of[r] == h)
                    printf(" %d", r);
            printf(" }%s", group_vendor[h] ? "" : "(hcrt)");
        }
        printf("\n");
    }
    free(tags);
    free(nodes);
    free(size);
    free(lead);
}

/* Rank r's input: values with many significant bits, so that the order of additions shows. */
static void fill(void *buf, size_t n, hcrt_dtype_t t, int r)
{
    uint32_t s = 2463534242u + (uint32_t)r * 7919u;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        double v = ((double)s / 4294967296.0 * 2.0 - 1.0) * (double)(1 + (i % 7) * 100);
        unsigned char *p = (unsigned char *)buf + i * hcrt_dtype_size(t);
        switch (t) {
        case HCRT_F16: {
            uint16_t x = hcrt__f32_to_f16((float)v * 0.01f);
            memcpy(p, &x, 2);
            break;
        }
        case HCRT_BF16: {
            uint16_t x = hcrt__f32_to_bf16((float)v);
            memcpy(p, &x, 2);
            break;
        }
        case HCRT_F32: {
            float x = (float)v;
            memcpy(p, &x, 4);
            break;
        }
        default: {
            double x = v * 1.000001;
            memcpy(p, &x, 8);
            break;
        }
        }
    }
}

/* The documented result: each vendor group's partial in rank order, then the groups' in group order (or,
 * with by_rank, the all-host rank order); avg scaled at the end. */
static void expected(void *out, size_t n, hcrt_dtype_t t, hcrt_op_t op, bool by_rank)
{
    size_t es = hcrt_dtype_size(t);
    unsigned char *acc = test_xmalloc(n * es), *part = test_xmalloc(n * es), *x = test_xmalloc(n * es);
    bool have_acc = false;
    for (int h = 0; h < (by_rank ? 1 : ngroups); h++) {
        bool have_part = false;
        for (int r = 0; r < nranks; r++) {
            if (!by_rank && group_of[r] != h)
                continue;
            fill(have_part ? x : part, n, t, r);
            if (have_part)
                hcrt__host_reduce3(part, part, x, n, t, op);
            have_part = true;
        }
        if (have_acc)
            hcrt__host_reduce3(acc, acc, part, n, t, op);
        else
            memcpy(acc, part, n * es);
        have_acc = true;
    }
    if (op == HCRT_OP_AVG)
        hcrt__host_scale(acc, n, t, 1.0 / nranks);
    memcpy(out, acc, n * es);
    free(acc);
    free(part);
    free(x);
}

/* Whether the documented order is another order of operations than the all-host rank order: it is the
 * same when group 0 is ranks 0..k-1 and every later group a single rank, in rank order. */
static bool order_differs(void)
{
    int next = 0;
    for (int h = 0; h < ngroups; h++) {
        int size = 0;
        for (int r = 0; r < nranks; r++) {
            if (group_of[r] != h)
                continue;
            if (r != next)
                return true;
            next++;
            size++;
        }
        if (h > 0 && size > 1)
            return true;
    }
    return false;
}

/* Copies between host memory and a buffer of dev (NULL: host). */
static void *balloc(hcrt_device_t *dev, size_t bytes)
{
    void *p = NULL;
    if (dev == NULL)
        return test_xmalloc(bytes);
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, bytes ? bytes : 1, &p));
    return p;
}
static void bfree(hcrt_device_t *dev, void *p)
{
    if (dev == NULL)
        free(p);
    else
        hcrt_mem_free(dev, p);
}
static void put(hcrt_device_t *dev, void *dst, const void *src, size_t bytes)
{
    if (dev == NULL)
        memcpy(dst, src, bytes);
    else if (bytes)
        REQUIRE_OK(ctx, hcrt_memcpy(dev, dst, host, src, bytes));
}
static void get(hcrt_device_t *dev, void *dst, const void *src, size_t bytes)
{
    if (dev == NULL)
        memcpy(dst, src, bytes);
    else if (bytes)
        REQUIRE_OK(ctx, hcrt_memcpy(host, dst, dev, src, bytes));
}

static void reductions(hcrt_device_t *dev)
{
    static const size_t counts[] = {5, 1000, 70001, (1u << 20) + 5};
    static const struct {
        hcrt_dtype_t t;
        hcrt_op_t op;
    } cases[] = {{HCRT_F32, HCRT_OP_SUM}, {HCRT_F16, HCRT_OP_SUM}, {HCRT_BF16, HCRT_OP_AVG}, {HCRT_F64, HCRT_OP_SUM}};
    const char *where = dev ? "sim" : "host";
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
            hcrt_dtype_t t = cases[c].t;
            hcrt_op_t op = cases[c].op;
            size_t n = counts[k], es = hcrt_dtype_size(t), bytes = n * es;
            unsigned char *in = test_xmalloc(bytes), *want = test_xmalloc(bytes), *got = test_xmalloc(bytes);
            fill(in, n, t, rank);
            expected(want, n, t, op, false);
            if (k == 1 && c == 0 && order_differs()) {
                expected(got, n, t, op, true);
                CHECK_MSG(memcmp(got, want, bytes) != 0, "the test data cannot tell the group order from rank order");
            }
            void *s = balloc(dev, bytes), *r = balloc(dev, bytes);
            put(dev, s, in, bytes);
            for (int rep = 0; rep < 2; rep++) {
                CHECK_OK(ctx, hcrt_comm_allreduce(comm, s, r, n, t, op, dev));
                get(dev, got, r, bytes);
                CHECK_MSG(memcmp(got, want, bytes) == 0,
                          "allreduce %s %s count %zu (%s) rep %d: not the documented "
                          "order's bits",
                          hcrt_dtype_name(t), hcrt_op_name(op), n, where, rep);
            }
            test_same_everywhere(test_hash(got, bytes), "allreduce");
            /* In place. */
            put(dev, r, in, bytes);
            CHECK_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, r, n, t, op, dev));
            get(dev, got, r, bytes);
            CHECK_MSG(memcmp(got, want, bytes) == 0, "allreduce in place %s count %zu (%s)", hcrt_dtype_name(t), n,
                      where);
            /* reduce_scatter of the same vector: block q of the allreduce's result. */
            size_t rc = n / (size_t)nranks;
            if (rc > 0) {
                void *rr = balloc(dev, rc * es);
                CHECK_OK(ctx, hcrt_comm_reduce_scatter(comm, s, rr, rc, t, op, dev));
                get(dev, got, rr, rc * es);
                unsigned char *full = test_xmalloc(rc * es * (size_t)nranks);
                expected(full, rc * (size_t)nranks, t, op, false);
                CHECK_MSG(memcmp(got, full + (size_t)rank * rc * es, rc * es) == 0,
                          "reduce_scatter %s %s count %zu (%s): not the documented order's bits", hcrt_dtype_name(t),
                          hcrt_op_name(op), rc, where);
                free(full);
                bfree(dev, rr);
            }
            bfree(dev, s);
            bfree(dev, r);
            free(in);
            free(want);
            free(got);
        }
    }
}

static void movement(hcrt_device_t *dev)
{
    static const size_t counts[] = {1, 999, (3u << 19) + 7};
    const char *where = dev ? "sim" : "host";
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        size_t n = counts[k], all = n * (size_t)nranks;
        unsigned char *in = test_xmalloc(all), *got = test_xmalloc(all);
        for (size_t i = 0; i < all; i++)
            in[i] = (unsigned char)(i * 31 + (i / n) * 7 + 1);
        void *s = balloc(dev, n), *r = balloc(dev, all);
        put(dev, s, in + (size_t)rank * n, n);
        CHECK_OK(ctx, hcrt_comm_allgather(comm, s, r, n, HCRT_U8, dev));
        get(dev, got, r, all);
        CHECK_MSG(memcmp(got, in, all) == 0, "allgather count %zu (%s)", n, where);
        for (int root = 0; root < nranks; root++) {
            put(dev, r, rank == root ? in + (size_t)root * n : got, n);
            CHECK_OK(ctx, hcrt_comm_broadcast(comm, r, n, HCRT_U8, root, dev));
            get(dev, got, r, n);
            CHECK_MSG(memcmp(got, in + (size_t)root * n, n) == 0, "broadcast count %zu root %d (%s)", n, root, where);
        }
        bfree(dev, s);
        bfree(dev, r);
        free(in);
        free(got);
    }
}

/* stderr goes to a file while the test runs; if the test dies early (a REQUIRE), show what it said. */
static char log_path[64];
static int saved_stderr = -1;
static bool finished;

static void dump_on_early_exit(void)
{
    if (finished || saved_stderr < 0)
        return;
    fflush(stderr);
    dup2(saved_stderr, 2);
    FILE *f = fopen(log_path, "r");
    char buf[4096];
    size_t n;
    while (f != NULL && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    if (f != NULL)
        fclose(f);
    unlink(log_path);
}

/* Counts the lines of the captured log that say `coll` took the vendor-group path. */
static int count_path(const char *log, const char *coll)
{
    int n = 0;
    char key[64];
    snprintf(key, sizeof(key), "%s #", coll);
    for (const char *p = log; (p = strstr(p, key)) != NULL; p++) {
        const char *eol = strchr(p, '\n');
        const char *hit = strstr(p, "vendor-group path");
        if (hit && (!eol || hit < eol) && (p == log || p[-1] == ' '))
            n++;
    }
    return n;
}

int main(void)
{
    /* The log lines of the path taken go to a file this rank reads back at the end. */
    setenv("HCRT_LOG_LEVEL", "debug", 1);
    setenv("HCRT_LOG_SUBSYS", "coll", 1);
    snprintf(log_path, sizeof(log_path), "/tmp/hcrt-test-vendor-XXXXXX");
    int fd = mkstemp(log_path), saved = dup(2);
    if (fd < 0 || saved < 0 || dup2(fd, 2) < 0) {
        perror("capturing stderr");
        return 1;
    }
    saved_stderr = saved;
    atexit(dump_on_early_exit);
    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    REQUIRE_OK(ctx, hcrt_comm_rank(comm, &rank));
    REQUIRE_OK(ctx, hcrt_comm_size(comm, &nranks));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    REQUIRE_OK(ctx, hcrt_context_device(ctx, &mine));
    derive_groups();
    /* Sim memory on every rank: a cpu rank's is another device's memory (staged through the host). */
    hcrt_device_t *dev = NULL;
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &dev));
    reductions(NULL);
    movement(NULL);
    reductions(dev);
    movement(dev);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    fflush(stderr);
    dup2(saved, 2);
    finished = true;
    FILE *f = fdopen(fd, "r");
    char *log = NULL;
    size_t len = 0;
    if (f != NULL) {
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        rewind(f);
        log = test_xmalloc(len + 1);
        len = fread(log, 1, len, f);
        log[len] = '\0';
        fclose(f);
    }
    unlink(log_path);
    bool any_vendor = false;
    for (int h = 0; h < ngroups; h++)
        any_vendor |= group_vendor[h];
    static const char *const colls[] = {"allreduce", "reduce_scatter", "allgather", "broadcast"};
    for (int i = 0; i < 4 && any_vendor; i++)
        CHECK_MSG(log && count_path(log, colls[i]) > 0, "rank %d: no %s took the vendor-group path", rank, colls[i]);
    if (test_failures_ && log)
        fprintf(stderr, "rank %d's captured log:\n%s", rank, log);
    free(log);
    if (rank == 0 && test_failures_ == 0)
        printf("vendor-group path: %d ranks in %d groups: documented bits, every byte moved, path taken\n", nranks,
               ngroups);
    TEST_DONE();
}
