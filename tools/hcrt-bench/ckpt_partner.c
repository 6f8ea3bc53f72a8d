/*
 * hcrt-bench ckpt --partner - what the partner level costs and what it buys, under mpirun: every rank
 * saves SIZE bytes, alternately with the partner level off and on (a copy of each rank's snapshot kept by
 * a rank of another node, in its memory and in its node's node-local storage), and then restores as a
 * relaunched job would: from the node-local copies, and after node 1 lost its node-local copies and its
 * ranks' shared files of the newest step (so its data comes from the partner copies), beside the same
 * loss restored from the shared directory.
 *
 *   mpirun -np N [-x HCRT_FAKE_NODES=K] hcrt-bench ckpt --partner --bytes SIZE --dir DIR --local LOCAL
 *          [--repeat R] [--json FILE]
 *
 * Each node (fake ones with HCRT_FAKE_NODES) gets the node-local directory LOCAL/node<n>, shared by its
 * ranks. Times are the slowest rank's, medians of R repetitions (default 3), each beside one memcpy of
 * the state measured in the same repetition. Needs at least two nodes.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "hcrt/comm.h"
#include "hcrt/hcrt.h"
#include "tools/hcrt-bench/ckpt_bench.h"

typedef struct bench {
    hcrt_context_t *ctx;
    hcrt_comm_t *comm;
    hcrt_device_t *host;
    int rank, size, node, nodes;
    size_t bytes;
    unsigned char *state;
    char local[4096];
} bench_t;

/* The slowest rank's time. */
static double slowest(bench_t *b, double t)
{
    double out = t;
    if (hcrt_comm_allreduce(b->comm, &t, &out, 1, HCRT_F64, HCRT_OP_MAX, NULL) != HCRT_OK)
        return -1;
    return out;
}

static hcrt_status_t open_ck(bench_t *b, const char *dir, int partner, hcrt_ckpt_t **ck)
{
    hcrt_ckpt_params_t p;
    hcrt_ckpt_params_init(&p);
    p.dir = dir;
    p.local_dir = b->local;
    p.keep = 1;
    p.partner = partner;
    hcrt_status_t st = hcrt_ckpt_open(b->ctx, b->comm, &p, ck);
    if (st == HCRT_OK)
        st = hcrt_ckpt_register(*ck, "state", (hcrt_buffer_t){b->host, b->state, b->bytes / 4, HCRT_F32}, 1,
                                (uint64_t[]){(uint64_t)b->size * (b->bytes / 4)},
                                &(hcrt_ckpt_shard_t){(uint64_t)b->rank * (b->bytes / 4), b->bytes / 4});
    return st;
}

/* A save of `step`: the stall (until save returns) and the persist (from there to the commit). */
static hcrt_status_t save(bench_t *b, hcrt_ckpt_t *ck, int64_t step, double *stall, double *persist)
{
    size_t n;
    hcrt_comm_barrier(b->comm);
    double t0 = hcrt_bench_now();
    hcrt_status_t st = hcrt_ckpt_save(ck, step, NULL, 0);
    double t1 = hcrt_bench_now();
    if (st == HCRT_OK)
        st = hcrt_ckpt_wait(ck);
    double t2 = hcrt_bench_now();
    /* Listing waits for the garbage collection after the commit, off the next measurement. */
    if (st == HCRT_OK)
        st = hcrt_ckpt_list(ck, NULL, 0, &n);
    *stall = slowest(b, t1 - t0);
    *persist = slowest(b, t2 - t1);
    return st;
}

/* A restore of the latest step by a fresh checkpointer, as after a relaunch. */
static hcrt_status_t restore(bench_t *b, const char *dir, double *t)
{
    hcrt_ckpt_t *ck = NULL;
    hcrt_status_t st = open_ck(b, dir, 1, &ck);
    hcrt_comm_barrier(b->comm);
    double t0 = hcrt_bench_now();
    if (st == HCRT_OK)
        st = hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, NULL, 0, NULL, NULL);
    *t = slowest(b, hcrt_bench_now() - t0);
    hcrt_ckpt_close(ck);
    return st;
}

int hcrt_bench_ckpt_partner_main(size_t bytes, const char *dir, const char *local, const char *json, int repeat)
{
    bench_t b;
    hcrt_context_params_t cp;
    hcrt_ckpt_t *off = NULL, *on = NULL;
    hcrt_comm_rank_info_t info;
    char doff[4200] = "", don[4200] = "", path[8400];
    unsigned char *copy = MAP_FAILED;
    int rc = 1;
    double *v[8] = {0};
    memset(&b, 0, sizeof(b));
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    b.bytes = bytes & ~(size_t)3;
    if (local == NULL || local[0] == '\0') {
        fprintf(stderr, "hcrt-bench ckpt --partner: --local is required (partner copies live in node-local storage)\n");
        return 2;
    }
    hcrt_context_params_init(&cp);
    cp.backends = "cpu";
    if (hcrt_init(&cp, &b.ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-bench ckpt --partner: %s\n", hcrt_last_error(NULL));
        return 1;
    }
#define PCHECK(call)                                                                                                   \
    do {                                                                                                               \
        hcrt_status_t s_ = (call);                                                                                     \
        if (s_ != HCRT_OK) {                                                                                           \
            fprintf(stderr, "hcrt-bench ckpt --partner: rank %d: %s: %s: %s\n", b.rank, #call, hcrt_status_name(s_),   \
                    hcrt_last_error(b.ctx));                                                                           \
            goto out;                                                                                                  \
        }                                                                                                              \
    } while (0)
    PCHECK(hcrt_device_host(b.ctx, &b.host));
    PCHECK(hcrt_comm_world(b.ctx, &b.comm));
    PCHECK(hcrt_comm_rank(b.comm, &b.rank));
    PCHECK(hcrt_comm_size(b.comm, &b.size));
    PCHECK(hcrt_comm_node_count(b.comm, &b.nodes));
    PCHECK(hcrt_comm_rank_info(b.comm, b.rank, &info));
    b.node = info.node;
    if (b.nodes < 2) {
        if (b.rank == 0)
            fprintf(stderr, "hcrt-bench ckpt --partner: the ranks are on one node; run on several (or with "
                            "HCRT_FAKE_NODES=2)\n");
        goto out;
    }
    snprintf(b.local, sizeof(b.local), "%s/node%d", local, b.node);
    snprintf(doff, sizeof(doff), "%s/hcrt-bench-partner-off", dir);
    snprintf(don, sizeof(don), "%s/hcrt-bench-partner-on", dir);
    void *m = mmap(NULL, b.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    copy = mmap(NULL, b.bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED || copy == MAP_FAILED) {
        fprintf(stderr, "hcrt-bench ckpt --partner: cannot allocate 2 x %zu bytes\n", b.bytes);
        if (m != MAP_FAILED)
            munmap(m, b.bytes);
        goto out;
    }
    b.state = m;
    for (size_t i = 0; i < b.bytes; i += 8) {
        uint64_t x = ((uint64_t)i + (uint64_t)b.rank * b.bytes) * 0x9E3779B97F4A7C15ull;
        memcpy(b.state + i, &x, b.bytes - i < 8 ? b.bytes - i : 8);
    }
    PCHECK(open_ck(&b, doff, 0, &off));
    PCHECK(open_ck(&b, don, 1, &on));
    double s, p;
    int64_t step = 0;
    /* Warm-up: pools allocated and touched, directories created, spare files to recycle. */
    for (int i = 0; i < 2; i++) {
        PCHECK(save(&b, off, ++step, &s, &p));
        PCHECK(save(&b, on, step, &s, &p));
    }
    for (int i = 0; i < 8; i++)
        v[i] = calloc((size_t)repeat, sizeof(double));
    for (int i = 0; i < 8; i++)
        if (v[i] == NULL)
            goto out;
    /* v: memcpy, stall off, persist off, stall on, persist on, restore node-local, restore lost node from the
     * partner copies, the same loss restored from the shared directory (the partner-off checkpoints). */
    for (int r = 0; r < repeat; r++) {
        hcrt_comm_barrier(b.comm);
        double t0 = hcrt_bench_now();
        memcpy(copy, b.state, b.bytes);
        v[0][r] = slowest(&b, hcrt_bench_now() - t0);
        PCHECK(save(&b, off, ++step, &v[1][r], &v[2][r]));
        PCHECK(save(&b, on, step, &v[3][r], &v[4][r]));
        PCHECK(restore(&b, don, &v[5][r]));
        /* Node 1 is lost: its node-local copies of the step (of both checkpointers) and its ranks' shared
         * files (of the partner-on one: the partner-off one has only the shared directory left). */
        if (b.node == 1) {
            snprintf(path, sizeof(path), "%s/hcrt-bench-partner-on/step-%08lld/rank-%05d.bin", dir, (long long)step,
                     b.rank);
            unlink(path);
            char cmd[8600];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'/*/step-%08lld", b.local, (long long)step);
            if (info.local_rank == 0 && system(cmd) != 0)
                fprintf(stderr, "hcrt-bench ckpt --partner: %s failed\n", cmd);
        }
        PCHECK(restore(&b, don, &v[6][r]));
        PCHECK(restore(&b, doff, &v[7][r]));
    }
    double med[8];
    for (int i = 0; i < 8; i++)
        med[i] = hcrt_bench_median(v[i], repeat);
    double gb = (double)b.bytes / 1e9;
    if (b.rank == 0) {
        printf("# hcrt-bench ckpt --partner: %zu bytes (%.3f GiB) per rank, %d ranks on %d nodes, dir %s, node-local "
               "%s/node<n>, median of %d, slowest rank\n",
               b.bytes, (double)b.bytes / (1 << 30), b.size, b.nodes, dir, local, repeat);
        printf("%-40s %10s %10s %s\n", "", "seconds", "GB/s/rank", "vs reference");
        printf("%-40s %10.4f %10.2f\n", "memcpy of the state", med[0], gb / med[0]);
        printf("%-40s %10.4f %10.2f %6.2fx memcpy\n", "save stall, partner off", med[1], gb / med[1], med[1] / med[0]);
        printf("%-40s %10.4f %10.2f %6.2fx memcpy\n", "save stall, partner on", med[3], gb / med[3], med[3] / med[0]);
        printf("%-40s %10.4f %10.2f\n", "persist to commit, partner off", med[2], gb / med[2]);
        printf("%-40s %10.4f %10.2f %6.2fx partner off\n", "persist to commit, partner on (disk copy)", med[4],
               gb / med[4], med[4] / med[2]);
        printf("%-40s %10.4f %10.2f %6.2fx memcpy time\n", "restore from node-local copies", med[5], gb / med[5],
               med[5] / med[0]);
        printf("%-40s %10.4f %10.2f %6.2fx memcpy time\n", "restore, node 1 lost (partner copies)", med[6], gb / med[6],
               med[6] / med[0]);
        printf("%-40s %10.4f %10.2f %6.2fx memcpy time\n", "restore, node 1 lost (shared directory)", med[7],
               gb / med[7], med[7] / med[0]);
        if (json) {
            FILE *f = fopen(json, "w");
            if (f == NULL) {
                fprintf(stderr, "hcrt-bench ckpt --partner: cannot write %s: %s\n", json, strerror(errno));
                goto out;
            }
            fprintf(f,
                    "{\n  \"bytes_per_rank\": %zu,\n  \"ranks\": %d,\n  \"nodes\": %d,\n  \"memcpy_s\": %.6f,\n"
                    "  \"stall_off_s\": %.6f,\n  \"persist_off_s\": %.6f,\n  \"stall_on_s\": %.6f,\n"
                    "  \"persist_on_s\": %.6f,\n  \"restore_local_s\": %.6f,\n  \"restore_lost_node_s\": %.6f,\n"
                    "  \"restore_lost_node_shared_s\": %.6f,\n"
                    "  \"repeat\": %d\n}\n",
                    b.bytes, b.size, b.nodes, med[0], med[1], med[2], med[3], med[4], med[5], med[6], med[7], repeat);
            fclose(f);
        }
    }
    rc = 0;
out:
    hcrt_ckpt_close(off);
    hcrt_ckpt_close(on);
    for (int i = 0; i < 8; i++)
        free(v[i]);
    /* The benchmark's checkpoints are scratch: leave DIR and LOCAL as they were. */
    if (b.comm)
        hcrt_comm_barrier(b.comm);
    if (b.rank == 0 && doff[0]) {
        nftw(doff, hcrt_bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        nftw(don, hcrt_bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (b.local[0] && (b.comm == NULL || info.local_rank == 0))
        nftw(b.local, hcrt_bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (b.state)
        munmap(b.state, b.bytes);
    if (copy != MAP_FAILED)
        munmap(copy, b.bytes);
    hcrt_comm_destroy(b.comm);
    hcrt_finalize(b.ctx);
    return rc;
}
