/*
 * ckpt_job - an MPI job that saves or restores checkpoints, for the mpi and fault suites.
 *
 *   ckpt_job save    DIR LOCAL STEPS BACKEND   saves steps 1..STEPS (step 1 finished by the next save)
 *   ckpt_job restore DIR LOCAL STEP  BACKEND   restores the latest step, expects STEP, checks every value
 *   ckpt_job resume  DIR LOCAL STEP  BACKEND   a relaunched job: restores the latest step, expects STEP-1,
 *                                             saves STEP (over whatever a failed job left of it), then
 *                                             restores again and expects STEP
 *   ckpt_job partner DIR LOCAL -     BACKEND   saves steps 1 and 2, loses rank 1's node-local directory
 *                                             and its shared file, restores from the partner's copy
 *   ckpt_job stress  DIR LOCAL STEPS BACKEND   every rank shares LOCAL as one node's node-local level (as
 *                                             the default /dev/shm level is shared by the ranks of a
 *                                             node); saves every step 1..STEPS with keep 2, waiting
 *                                             every third; after each wait rank 0 verifies every
 *                                             committed step with hcrt-ckpt (CKPT_JOB_HCRT_CKPT) and
 *                                             that each rank's node-local file (and, with
 *                                             CKPT_JOB_PARTNER_COPIES=1, its partner copy) equals its
 *                                             shared one; restores the last step at the end
 *
 * BACKEND is host, sim or mix (where the registered tensors live; mix: sim on even ranks, host on odd).
 * LOCAL is a base directory: rank r uses LOCAL/node<r> as its node-local level, so each rank is its own
 * "node"; "-" turns the level off. "nodes:BASE" gives the ranks of each node (fake ones with
 * HCRT_FAKE_NODES) one shared node-local level, BASE/node<n> for node n, as on real nodes, and opens
 * every checkpointer over the communicator so that partners follow those nodes; CKPT_JOB_NODE_DIRS
 * (comma-separated names) names node n's directory BASE/<n-th name> instead, so a relaunch on fewer
 * nodes runs on the surviving nodes' storage. In restore mode a STEP of -1 expects that no step can be
 * restored: the restore must fail with HCRT_ERR_CORRUPT and say why.
 * Tensors: "big" f64 [4000, 400] ([400, 400] in stress mode) sharded unevenly by rows (12.8 MB: shards
 * span several 4 MiB chunks),
 * "mask" u8 [1001] sharded, "counter" i32 [7] replicated, and a metadata blob "step=S". Every value is a
 * function of (tensor, global index, step), so a restore into any world size checks bit for bit.
 */
#include <mpi.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hcrt/comm.h"
#include "hcrt/hcrt.h"
#include "test.h"

#define BIG_COLS 400
#define MASK_ROWS 1001
#define CNT 7

static int rank, size;
static hcrt_context_t *ctx;
static uint64_t BIG_ROWS = 4000;
static bool shared_local; /* stress: every rank uses LOCAL itself (one node) */
static bool per_node;     /* LOCAL is nodes:BASE */

static double big_val(uint64_t row, uint64_t col, int step) { return step * 1e7 + (double)row * 1000.0 + (double)col; }
static uint8_t mask_val(uint64_t row, int step) { return (uint8_t)(row * 7 + (uint64_t)step * 13); }
static int32_t cnt_val(int i, int step) { return step * 100 + i; }

/* Rows [lo, hi) of `rows` for this rank: uneven on purpose (the first ranks get one more). */
static void my_rows(uint64_t rows, uint64_t *lo, uint64_t *n)
{
    uint64_t base = rows / (uint64_t)size, extra = rows % (uint64_t)size;
    *lo = (uint64_t)rank * base + ((uint64_t)rank < extra ? (uint64_t)rank : extra);
    *n = base + ((uint64_t)rank < extra ? 1 : 0);
}

typedef struct state {
    hcrt_device_t *dev, *host;
    uint64_t big_lo, big_n, mask_lo, mask_n;
    double *big;
    uint8_t *mask;
    int32_t *cnt;
    void *dbig, *dmask, *dcnt; /* where the tensors live (device or host) */
} state_t;

static void fill(state_t *s, int step)
{
    for (uint64_t r = 0; r < s->big_n; r++)
        for (uint64_t c = 0; c < BIG_COLS; c++)
            s->big[r * BIG_COLS + c] = big_val(s->big_lo + r, c, step);
    for (uint64_t r = 0; r < s->mask_n; r++)
        s->mask[r] = mask_val(s->mask_lo + r, step);
    for (int i = 0; i < CNT; i++)
        s->cnt[i] = cnt_val(i, step);
    if (s->dev != s->host) {
        REQUIRE_OK(ctx, hcrt_memcpy(s->dev, s->dbig, s->host, s->big, s->big_n * BIG_COLS * 8));
        REQUIRE_OK(ctx, hcrt_memcpy(s->dev, s->dmask, s->host, s->mask, s->mask_n));
        REQUIRE_OK(ctx, hcrt_memcpy(s->dev, s->dcnt, s->host, s->cnt, CNT * 4));
    }
}

static int check(state_t *s, int step)
{
    int bad = 0;
    if (s->dev != s->host) {
        REQUIRE_OK(ctx, hcrt_memcpy(s->host, s->big, s->dev, s->dbig, s->big_n * BIG_COLS * 8));
        REQUIRE_OK(ctx, hcrt_memcpy(s->host, s->mask, s->dev, s->dmask, s->mask_n));
        REQUIRE_OK(ctx, hcrt_memcpy(s->host, s->cnt, s->dev, s->dcnt, CNT * 4));
    }
    for (uint64_t r = 0; r < s->big_n; r++)
        for (uint64_t c = 0; c < BIG_COLS; c++)
            if (s->big[r * BIG_COLS + c] != big_val(s->big_lo + r, c, step) && bad++ < 3)
                fprintf(stderr, "FAIL rank %d: big[%llu][%llu] = %g, want %g\n", rank,
                        (unsigned long long)(s->big_lo + r), (unsigned long long)c, s->big[r * BIG_COLS + c],
                        big_val(s->big_lo + r, c, step));
    for (uint64_t r = 0; r < s->mask_n; r++)
        if (s->mask[r] != mask_val(s->mask_lo + r, step) && bad++ < 6)
            fprintf(stderr, "FAIL rank %d: mask[%llu] wrong\n", rank, (unsigned long long)(s->mask_lo + r));
    for (int i = 0; i < CNT; i++)
        if (s->cnt[i] != cnt_val(i, step) && bad++ < 9)
            fprintf(stderr, "FAIL rank %d: counter[%d] = %d, want %d\n", rank, i, s->cnt[i], cnt_val(i, step));
    return bad;
}

/* Restores and the partner test run over an hcrt communicator (destroyed right after open: the
 * checkpointer keeps its own duplicate; its nodes, fake ones with HCRT_FAKE_NODES, choose the partners),
 * saves over the world (comm NULL), so both ways of opening are exercised. */
/* BASE/<name of node n>: the n-th name of CKPT_JOB_NODE_DIRS, or node<n>. */
static void node_dir(char *out, size_t cap, const char *base, int node)
{
    const char *names = getenv("CKPT_JOB_NODE_DIRS");
    if (names == NULL || names[0] == '\0') {
        snprintf(out, cap, "%s/node%d", base, node);
        return;
    }
    for (int i = 0; i < node && names != NULL; i++) {
        names = strchr(names, ',');
        names = names ? names + 1 : NULL;
    }
    if (names == NULL) {
        fprintf(stderr, "FAIL rank %d: CKPT_JOB_NODE_DIRS names no directory for node %d\n", rank, node);
        exit(2);
    }
    snprintf(out, cap, "%s/%.*s", base, (int)strcspn(names, ","), names);
}

static hcrt_ckpt_t *open_ckpt(const char *dir, const char *local, state_t *s, const char *backend, bool use_comm)
{
    hcrt_ckpt_params_t p;
    hcrt_ckpt_t *ck;
    hcrt_comm_t *comm = NULL;
    char ldir[1024];
    hcrt_ckpt_params_init(&p);
    p.dir = dir;
    p.keep = 2;
    if (use_comm || per_node)
        REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    if (strcmp(local, "-") == 0) {
        p.local_dir = "";
    } else if (shared_local) {
        p.local_dir = local;
    } else if (per_node) {
        hcrt_comm_rank_info_t info;
        memset(&info, 0, sizeof(info));
        info.struct_size = sizeof(info);
        REQUIRE_OK(ctx, hcrt_comm_rank_info(comm, rank, &info));
        node_dir(ldir, sizeof(ldir), local + strlen("nodes:"), info.node);
        p.local_dir = ldir;
    } else {
        snprintf(ldir, sizeof(ldir), "%s/node%d", local, rank);
        p.local_dir = ldir;
    }
    REQUIRE_OK(ctx, hcrt_ckpt_open(ctx, comm, &p, &ck));
    if (comm != NULL)
        REQUIRE_OK(ctx, hcrt_comm_destroy(comm));

    REQUIRE_OK(ctx, hcrt_device_host(ctx, &s->host));
    if (strcmp(backend, "sim") == 0 || (strcmp(backend, "mix") == 0 && rank % 2 == 0))
        REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &s->dev));
    else
        s->dev = s->host;
    my_rows(BIG_ROWS, &s->big_lo, &s->big_n);
    my_rows(MASK_ROWS, &s->mask_lo, &s->mask_n);
    s->big = malloc(s->big_n * BIG_COLS * 8 + 8);
    s->mask = malloc(s->mask_n + 1);
    s->cnt = malloc(CNT * 4);
    if (s->dev != s->host) {
        REQUIRE_OK(ctx, hcrt_mem_alloc(s->dev, s->big_n * BIG_COLS * 8 + 8, &s->dbig));
        REQUIRE_OK(ctx, hcrt_mem_alloc(s->dev, s->mask_n + 1, &s->dmask));
        REQUIRE_OK(ctx, hcrt_mem_alloc(s->dev, CNT * 4, &s->dcnt));
    } else {
        s->dbig = s->big;
        s->dmask = s->mask;
        s->dcnt = s->cnt;
    }
    REQUIRE_OK(ctx, hcrt_ckpt_register(ck, "big", (hcrt_buffer_t){s->dev, s->dbig, s->big_n * BIG_COLS, HCRT_F64}, 2,
                                       (uint64_t[]){BIG_ROWS, BIG_COLS}, &(hcrt_ckpt_shard_t){s->big_lo, s->big_n}));
    REQUIRE_OK(ctx, hcrt_ckpt_register(ck, "mask", (hcrt_buffer_t){s->dev, s->dmask, s->mask_n, HCRT_U8}, 1,
                                       (uint64_t[]){MASK_ROWS}, &(hcrt_ckpt_shard_t){s->mask_lo, s->mask_n}));
    REQUIRE_OK(ctx, hcrt_ckpt_register(ck, "counter", (hcrt_buffer_t){s->dev, s->dcnt, CNT, HCRT_I32}, 1,
                                       (uint64_t[]){CNT}, NULL));
    return ck;
}

/* Saves `step`. Step 1 is left in flight: the save of step 2 must finish it first (HCRT_CKPT_WAIT). */
static void save_step(hcrt_ckpt_t *ck, state_t *s, int step)
{
    char meta[32];
    fill(s, step);
    snprintf(meta, sizeof(meta), "step=%d", step);
    REQUIRE_OK(ctx, hcrt_ckpt_save(ck, step, meta, strlen(meta)));
    /* The snapshot is taken: clobbering the buffers now must not change what is saved. */
    fill(s, 1000 + step);
    if (step == 1)
        return;
    if (step % 2) {
        /* Odd steps finish through the nonblocking test(), as a training loop would between steps. */
        bool done = false;
        while (!done) {
            REQUIRE_OK(ctx, hcrt_ckpt_test(ck, &done));
            if (!done)
                usleep(200);
        }
    } else {
        REQUIRE_OK(ctx, hcrt_ckpt_wait(ck));
    }
}

static int restore_and_check(hcrt_ckpt_t *ck, state_t *s, int expect)
{
    char meta[64] = "", want[32];
    size_t meta_len = 0;
    int64_t got = -1;
    fill(s, 999);
    hcrt_status_t st = hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, meta, sizeof(meta) - 1, &meta_len, &got);
    if (expect < 0) {
        /* Nothing restorable: a clear error (the buffers then hold unspecified data, never a step). */
        if (st != HCRT_ERR_CORRUPT || strstr(hcrt_last_error(ctx), "could be restored") == NULL) {
            fprintf(stderr, "FAIL rank %d: restore gave %s (step %lld: %s), want ERR_CORRUPT\n", rank,
                    hcrt_status_name(st), (long long)got, hcrt_last_error(ctx));
            return 1;
        }
        if (rank == 0)
            fprintf(stderr, "restore failed as expected: %s\n", hcrt_last_error(ctx));
        return 0;
    }
    if (st != HCRT_OK) {
        fprintf(stderr, "FAIL rank %d: restore: %s: %s\n", rank, hcrt_status_name(st), hcrt_last_error(ctx));
        return 1;
    }
    snprintf(want, sizeof(want), "step=%d", expect);
    int bad = 0;
    if (got != expect || meta_len != strlen(want) || strncmp(meta, want, meta_len) != 0) {
        fprintf(stderr, "FAIL rank %d: restored step %lld meta '%.*s', want step %d\n", rank, (long long)got,
                (int)meta_len, meta, expect);
        bad++;
    }
    return bad + check(s, expect);
}

/* Rank 0: hcrt-ckpt verifies every committed step (listed after garbage collection settled, so none
 * vanishes under the check), and each rank's node-local copy of the newest one equals its shared file. */
static int verify_committed(hcrt_ckpt_t *ck, const char *dir, const char *local, int64_t newest)
{
    int64_t steps[16];
    size_t n = 0;
    int bad = 0;
    char cmd[4096];
    const char *tool = getenv("CKPT_JOB_HCRT_CKPT");
    if (rank != 0)
        return 0;
    REQUIRE_OK(ctx, hcrt_ckpt_list(ck, steps, 16, &n));
    if (n == 0 || steps[0] != newest || n > 2) {
        fprintf(stderr, "FAIL: after committing step %lld the committed steps are %zu, newest %lld (keep 2)\n",
                (long long)newest, n, n ? (long long)steps[0] : -1LL);
        bad++;
    }
    if (tool == NULL) {
        fprintf(stderr, "FAIL: CKPT_JOB_HCRT_CKPT (the hcrt-ckpt tool) is not set: nothing would be verified\n");
        return 1;
    }
    for (size_t i = 0; i < n && i < 16; i++) {
        snprintf(cmd, sizeof(cmd), "'%s' verify '%s' %lld >/dev/null", tool, dir, (long long)steps[i]);
        if (system(cmd) != 0) {
            fprintf(stderr, "FAIL: committed step %lld does not verify (%s)\n", (long long)steps[i], cmd);
            bad++;
        }
    }
    /* With CKPT_JOB_PARTNER_COPIES=1 (fake nodes: other-host partners), the partner copies too. */
    const char *pc = getenv("CKPT_JOB_PARTNER_COPIES");
    for (int pass = 0; pass < (pc && strcmp(pc, "1") == 0 ? 2 : 1); pass++) {
        for (int r = 0; r < size; r++) {
            snprintf(cmd, sizeof(cmd), "cmp -s '%s/step-%08lld/rank-%05d.bin' %s/*/step-%08lld/%srank-%05d.bin", dir,
                     (long long)newest, r, local, (long long)newest, pass ? "partner/" : "", r);
            if (system(cmd) != 0) {
                fprintf(stderr, "FAIL: rank %d's node-local %s of step %lld differs from the shared one or is "
                        "missing\n", r, pass ? "partner copy" : "file", (long long)newest);
                bad++;
            }
        }
    }
    return bad;
}

static int stress(hcrt_ckpt_t *ck, state_t *s, const char *dir, const char *local, int steps)
{
    int bad = 0;
    for (int step = 1; step <= steps && bad == 0; step++) {
        char meta[32];
        fill(s, step);
        snprintf(meta, sizeof(meta), "step=%d", step);
        hcrt_status_t st = hcrt_ckpt_save(ck, step, meta, strlen(meta));
        if (st != HCRT_OK) {
            fprintf(stderr, "FAIL rank %d: save of step %d: %s: %s\n", rank, step, hcrt_status_name(st),
                    hcrt_last_error(ctx));
            bad++;
            break;
        }
        if (step % 3 == 0 || step == steps) {
            st = hcrt_ckpt_wait(ck);
            if (st != HCRT_OK) {
                fprintf(stderr, "FAIL rank %d: wait for step %d: %s: %s\n", rank, step, hcrt_status_name(st),
                        hcrt_last_error(ctx));
                bad++;
                break;
            }
            bad += verify_committed(ck, dir, local, step);
        } else {
            bool done;
            st = hcrt_ckpt_test(ck, &done);
            if (st != HCRT_OK) {
                fprintf(stderr, "FAIL rank %d: test after step %d: %s: %s\n", rank, step, hcrt_status_name(st),
                        hcrt_last_error(ctx));
                bad++;
            }
        }
        /* Every rank stops at the first failure anywhere, instead of waiting on a save a peer left. */
        MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    }
    if (bad == 0)
        bad += restore_and_check(ck, s, steps);
    return bad;
}

int main(int argc, char **argv)
{
    hcrt_context_params_t cp;
    state_t s;
    int bad = 0;

    if (argc != 6) {
        fprintf(stderr, "usage: ckpt_job save|restore|resume|partner|stress DIR LOCAL|-|nodes:BASE STEP host|sim|mix\n");
        return 2;
    }
    const char *mode = argv[1], *dir = argv[2], *local = argv[3], *backend = argv[5];
    int steps = atoi(argv[4]);
    memset(&s, 0, sizeof(s));
    if (strcmp(mode, "stress") == 0) {
        BIG_ROWS = 400;
        shared_local = true;
    }
    per_node = strncmp(local, "nodes:", 6) == 0;
    hcrt_context_params_init(&cp);
    REQUIRE_OK(NULL, hcrt_init(&cp, &ctx));
    REQUIRE_OK(ctx, hcrt_context_rank(ctx, &rank, &size));
    hcrt_ckpt_t *ck = open_ckpt(dir, local, &s, backend, strcmp(mode, "save") != 0);

    if (strcmp(mode, "save") == 0) {
        for (int step = 1; step <= steps; step++)
            save_step(ck, &s, step);
    } else if (strcmp(mode, "stress") == 0) {
        bad += stress(ck, &s, dir, local, steps);
    } else if (strcmp(mode, "restore") == 0) {
        bad += restore_and_check(ck, &s, steps);
    } else if (strcmp(mode, "resume") == 0) {
        bad += restore_and_check(ck, &s, steps - 1);
        save_step(ck, &s, steps);
        REQUIRE_OK(ctx, hcrt_ckpt_wait(ck));
        bad += restore_and_check(ck, &s, steps);
    } else if (strcmp(mode, "partner") == 0) {
        save_step(ck, &s, 1);
        save_step(ck, &s, 2);
        int64_t latest = -1;
        REQUIRE_OK(ctx, hcrt_ckpt_latest(ck, &latest));
        if (latest != 2) {
            fprintf(stderr, "FAIL rank %d: latest step %lld after saving 2\n", rank, (long long)latest);
            bad++;
        }
        MPI_Barrier(MPI_COMM_WORLD);
        char cmd[2048], file[1024];
        if (rank == 1) {
            /* Rank 1's "node" is lost: its node-local directory, and its file never reached the shared
             * directory intact (it is removed there too), so only the partner's memory holds it. */
            snprintf(cmd, sizeof(cmd), "rm -rf '%s/node1'", local);
            bad += system(cmd) != 0;
            snprintf(file, sizeof(file), "%s/step-00000002/rank-00001.bin", dir);
            bad += unlink(file) != 0;
        }
        MPI_Barrier(MPI_COMM_WORLD);
        bad += restore_and_check(ck, &s, 2);
        /* With fake nodes the manifest must say that every partner was on another node. */
        const char *want = getenv("CKPT_JOB_PARTNER_MODE");
        if (want != NULL && rank == 0) {
            snprintf(cmd, sizeof(cmd), "grep -q '\"partner_mode\": \"%s\"' %s/step-00000002/manifest.json", want, dir);
            if (system(cmd) != 0) {
                fprintf(stderr, "FAIL: the manifest's partner_mode is not %s\n", want);
                bad++;
            }
        }
        if (rank == 1) {
            snprintf(cmd, sizeof(cmd), "ls %s/node1/*/step-00000002/rank-00001.bin >/dev/null 2>&1", local);
            if (system(cmd) != 0) {
                fprintf(stderr, "FAIL rank 1: node-local copy of step 2 was not rebuilt under %s/node1\n", local);
                bad++;
            }
        }
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    REQUIRE_OK(ctx, hcrt_ckpt_close(ck));
    int total = bad + test_failures_;
    MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        fprintf(stderr, "ckpt_job %s on %d ranks (%s): %s\n", mode, size, backend, total ? "FAILED" : "ok");
    hcrt_finalize(ctx);
    return total ? 1 : 0;
}
