/*
 * tools/hcrt-train/hcrt-train.c - the demo job: every rank reports the device it got, moves a buffer
 * through every device of every loaded backend and back, checks the bytes, then the ranks allreduce a
 * gradient-like buffer that lives on their own devices (cpu and sim mixed) and check the result against
 * the closed form. Later issues grow it into the full training demo.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/hcrt.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np N hcrt-train [--count N] [--steps S] [--help]\n"
            "\n"
            "The hcrt demo job. Each rank prints the device it was given (HCRT_DEVICE, else by node-local\n"
            "rank), moves a buffer host -> every device of every backend -> host and checks it, then runs S\n"
            "steps of an f32 sum allreduce of N elements on its own device and checks each result.\n"
            "\n"
            "  --count N   elements of the allreduced buffer (default 1048576)\n"
            "  --steps S   allreduce steps (default 3)\n"
            "  --help      this text\n"
            "\n"
            "Exit status: 0 when every check passed, 1 on a failed check or error, 2 on bad usage.\n");
}

#define TRY(call)                                                                                    \
    do {                                                                                             \
        hcrt_status_t st_ = (call);                                                                  \
        if (st_ != HCRT_OK) {                                                                        \
            fprintf(stderr, "rank %d: %s failed: %s: %s\n", rank, #call, hcrt_status_name(st_),      \
                    hcrt_last_error(ctx));                                                           \
            goto fail;                                                                               \
        }                                                                                            \
    } while (0)

int main(int argc, char **argv)
{
    size_t count = 1 << 20;
    int steps = 3;
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"steps", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "n:s:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'n':
            count = strtoull(optarg, &end, 10);
            if (!end || *end || count == 0) {
                fprintf(stderr, "hcrt-train: --count must be a positive integer, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 's':
            steps = (int)strtol(optarg, &end, 10);
            if (!end || *end || steps < 0) {
                fprintf(stderr, "hcrt-train: --steps must be a non-negative integer, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hcrt-train: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    hcrt_context_t *ctx = NULL;
    int rank = 0, size = 1;
    if (hcrt_init(NULL, &ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-train: hcrt_init failed: %s\n", hcrt_last_error(NULL));
        return 1;
    }
    hcrt_comm_t *comm = NULL;
    hcrt_device_t *dev = NULL, *host = NULL;
    float *h_in = NULL, *h_out = NULL;
    void *d_buf = NULL;
    int failed = 0;
    TRY(hcrt_context_rank(ctx, &rank, &size));
    TRY(hcrt_context_device(ctx, &dev));
    TRY(hcrt_device_host(ctx, &host));
    hcrt_device_props_t props = {.struct_size = sizeof(props)};
    TRY(hcrt_device_get_props(dev, &props));
    printf("rank %d/%d: device %s:%d (%s, %.2fx speed, %llu MiB)\n", rank, size, props.backend, props.index,
           props.name, props.speed, (unsigned long long)(props.total_memory >> 20));
    fflush(stdout);

    /* 1. A buffer through every device of every backend: host -> d0 -> d1 -> ... -> host. */
    {
        const size_t n = 1 << 16;
        h_in = malloc(n * sizeof(float));
        h_out = calloc(n, sizeof(float));
        if (!h_in || !h_out)
            goto fail;
        for (size_t i = 0; i < n; i++)
            h_in[i] = (float)(rank * 1000003u + i);
        int ndev = 0;
        TRY(hcrt_device_count(ctx, &ndev));
        hcrt_device_t *prev = host;
        void *prev_ptr = h_in;
        char route[1024];
        int off = snprintf(route, sizeof(route), "host");
        void **ptrs = calloc((size_t)ndev, sizeof(void *));
        if (!ptrs)
            goto fail;
        for (int i = 0; i < ndev; i++) {
            hcrt_device_t *d = NULL;
            TRY(hcrt_device_get(ctx, i, &d));
            hcrt_device_props_t p = {.struct_size = sizeof(p)};
            TRY(hcrt_device_get_props(d, &p));
            TRY(hcrt_mem_alloc(d, n * sizeof(float), &ptrs[i]));
            TRY(hcrt_memcpy(d, ptrs[i], prev, prev_ptr, n * sizeof(float)));
            prev = d;
            prev_ptr = ptrs[i];
            if (off < (int)sizeof(route))
                off += snprintf(route + off, sizeof(route) - (size_t)off, " -> %s:%d", p.backend, p.index);
        }
        TRY(hcrt_memcpy(host, h_out, prev, prev_ptr, n * sizeof(float)));
        for (int i = 0; i < ndev; i++) {
            hcrt_device_t *d = NULL;
            hcrt_device_get(ctx, i, &d);
            hcrt_mem_free(d, ptrs[i]);
        }
        free(ptrs);
        bool same = memcmp(h_in, h_out, n * sizeof(float)) == 0;
        printf("rank %d: moved %zu KiB %s -> host: %s\n", rank, n * sizeof(float) / 1024, route,
               same ? "ok" : "CORRUPTED");
        fflush(stdout);
        if (!same)
            failed = 1;
        free(h_in);
        free(h_out);
        h_in = h_out = NULL;
    }

    /* 2. Allreduce steps on this rank's own device. Rank r contributes (r + 1) * (i % 7 + step): the sum
     *    is exact in f32 for these sizes, so the check can be exact too. */
    TRY(hcrt_comm_world(ctx, &comm));
    h_in = malloc(count * sizeof(float));
    if (!h_in)
        goto fail;
    TRY(hcrt_mem_alloc(dev, count * sizeof(float), &d_buf));
    for (int step = 0; step < steps; step++) {
        for (size_t i = 0; i < count; i++)
            h_in[i] = (float)((rank + 1) * (int)(i % 7 + (size_t)step));
        TRY(hcrt_memcpy(dev, d_buf, host, h_in, count * sizeof(float)));
        TRY(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, d_buf, count, HCRT_F32, HCRT_OP_SUM, dev));
        TRY(hcrt_memcpy(host, h_in, dev, d_buf, count * sizeof(float)));
        const float ranks_sum = (float)size * (float)(size + 1) / 2.0f;
        size_t wrong = 0;
        for (size_t i = 0; i < count; i++)
            if (h_in[i] != ranks_sum * (float)(i % 7 + (size_t)step))
                wrong++;
        if (rank == 0 || wrong) {
            printf("rank %d: step %d: allreduce of %zu f32 on %s: %s (%zu wrong)\n", rank, step, count,
                   props.backend, wrong ? "WRONG" : "ok", wrong);
            fflush(stdout);
        }
        if (wrong)
            failed = 1;
    }
    TRY(hcrt_comm_barrier(comm));
    if (rank == 0)
        printf("hcrt-train: %d ranks, %d steps: %s\n", size, steps, failed ? "FAILED" : "all checks passed");
    hcrt_mem_free(dev, d_buf);
    free(h_in);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    return failed;

fail:
    free(h_in);
    free(h_out);
    if (d_buf)
        hcrt_mem_free(dev, d_buf);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    return 1;
}
