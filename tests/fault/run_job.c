/*
 * run_job - a small training-like MPI job for hcrt-run's tests and goodput benchmark (suite fault).
 *
 * It does what a trainer under hcrt-run does, through the same runtime calls (hcrt/run.h): restore the
 * newest checkpoint on start, heartbeat every step and save, save every K steps, agree on a stop
 * requested by SIGTERM or by hcrt-run, and end with the exit policy's statuses. Its state is one u64
 * tensor sharded by rows over the ranks (any world size: a relaunch on fewer ranks reshards) whose value
 * after step S is a function of S alone, so a run that was killed and restored ends with the same
 * checksum as a run without failures.
 *
 * Failures on request, each at step S of attempt A (HCRT_RUN_ATTEMPT; * for every attempt) on rank R
 * (default: the last); S may be +N, the Nth step the attempt computes; up to 8 of them:
 *   --kill S:A[:R]             SIGKILL after the heartbeat of step S
 *   --abort S:A:STATUS[:R]     write a failure record, then MPI_Abort(STATUS)
 *   --lose-node S:A[:R]        record that R's node is lost, then MPI_Abort(205): what mpirun reports when a
 *                              node dies (with HCRT_FAKE_NODES the node is R's fake node)
 * Each prints "run_job: rank R fails at step S (UNIX_TIME)" on stderr first. --ignore-stop makes the job
 * never ask whether to stop (a job that does not know hcrt/run.h).
 */
#include <getopt.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hcrt/hcrt.h"

static const char usage[] =
    "usage: mpirun -np N run_job --steps N --ckpt-dir D [options]\n"
    "  --steps N          steps to run in all (counting those before a restore)\n"
    "  --ckpt-dir D       shared checkpoint directory (required)\n"
    "  --local-dir D      node-local checkpoint level (default: none)\n"
    "  --ckpt-every K     save every K steps (default 5; 0: only at the end and on a stop)\n"
    "  --step-ms MS       pad every step to MS milliseconds (default 20)\n"
    "  --state-mib M      size of the sharded state (default 1)\n"
    "  --backend B        where the state lives: host, sim, or mix (odd ranks sim; default host)\n"
    "  --kill S:A[:R] | --abort S:A:STATUS[:R] | --lose-node S:A[:R]   fail on request (see the source;\n"
    "                     S may be +N: the Nth step of the attempt; A may be *: every attempt)\n"
    "  --result FILE      rank 0 writes 'steps=N checksum=X' at the end\n"
    "  --ignore-stop      never call hcrt_run_should_stop()\n"
    "Exit status: 0 done, 120 stopped on request after saving, else the exit policy's (hcrt/exit.h).\n";

typedef struct failure_plan {
    int kind;                /* 1 kill, 2 abort, 3 lose node */
    long long step, attempt; /* attempt -1: every attempt */
    bool relative;           /* step counts from the attempt's restored step */
    int status, rank;
} failure_plan_t;

#define MAX_PLANS 8

static hcrt_context_t *ctx;
static int rank, size;

/* Ends the job as the runtime's fail path does: a record for hcrt-run, then the policy's status. */
static void die(hcrt_status_t st, const char *what)
{
    char text[1200];
    snprintf(text, sizeof(text), "run_job rank %d: %s failed: %s: %s", rank, what, hcrt_status_name(st),
             hcrt_last_error(ctx));
    fprintf(stderr, "%s\n", text);
    hcrt_run_note_failure(ctx, hcrt_exit_status(st), NULL, text);
    MPI_Abort(MPI_COMM_WORLD, hcrt_exit_status(st));
    exit(hcrt_exit_status(st));
}

#define TRY(call)                                                                                                      \
    do {                                                                                                               \
        hcrt_status_t st_ = (call);                                                                                    \
        if (st_ != HCRT_OK)                                                                                            \
            die(st_, #call);                                                                                           \
    } while (0)

static uint64_t initial(uint64_t i)
{
    return i * 0x9e3779b97f4a7c15ull + 1;
}
static uint64_t advance(uint64_t x, uint64_t i, int64_t step)
{
    return x * 6364136223846793005ull + (uint64_t)step * 1442695040888963407ull + i;
}
/* splitmix64's finaliser of (index, value): the sum over the state is a fingerprint of every element. */
static uint64_t mix(uint64_t i, uint64_t x)
{
    uint64_t z = x + i * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int parse_plan(const char *arg, int kind, failure_plan_t *plans, int *nplans)
{
    failure_plan_t *p = &plans[*nplans];
    char attempt[16];
    int n = 0, fields;
    if (*nplans == MAX_PLANS)
        return -1;
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->rank = -1;
    p->relative = arg[0] == '+';
    arg += p->relative;
    if (kind == 2)
        fields = sscanf(arg, "%lld:%15[0-9*]:%d%n:%d%n", &p->step, attempt, &p->status, &n, &p->rank, &n);
    else
        fields = sscanf(arg, "%lld:%15[0-9*]%n:%d%n", &p->step, attempt, &n, &p->rank, &n);
    if (fields < (kind == 2 ? 3 : 2) || arg[n] != '\0')
        return -1;
    p->attempt = strcmp(attempt, "*") == 0 ? -1 : atoll(attempt);
    (*nplans)++;
    return 0;
}

static void sleep_until(double t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double left = t - ((double)now.tv_sec + (double)now.tv_nsec * 1e-9);
    if (left > 0) {
        struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static double mono(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static void fail_on_request(const failure_plan_t *plans, int nplans, int64_t step, int64_t restored)
{
    const char *attempt = NULL;
    hcrt_config_get(ctx, "HCRT_RUN_ATTEMPT", &attempt);
    for (int i = 0; i < nplans; i++) {
        const failure_plan_t *p = &plans[i];
        int who = p->rank >= 0 ? p->rank : size - 1;
        if (step != p->step + (p->relative ? restored : 0) || (p->attempt >= 0 && atoll(attempt) != p->attempt) ||
            rank != who)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        fprintf(stderr, "run_job: rank %d fails at step %lld (%.6f)\n", rank, (long long)step,
                (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
        fflush(stderr);
        if (p->kind == 1)
            raise(SIGKILL);
        if (p->kind == 2) {
            hcrt_run_note_failure(ctx, p->status, NULL, "run_job: failure requested by --abort");
            MPI_Abort(MPI_COMM_WORLD, p->status);
        }
        hcrt_run_note_failure(ctx, HCRT_EXIT_MPIRUN_NODE_LOST, "", "run_job: node lost (requested by --lose-node)");
        MPI_Abort(MPI_COMM_WORLD, HCRT_EXIT_MPIRUN_NODE_LOST);
    }
}

int main(int argc, char **argv)
{
    long long steps = 0, every = 5, step_ms = 20, state_mib = 1;
    const char *dir = NULL, *local = "", *backend = "host", *result = NULL;
    failure_plan_t plans[MAX_PLANS];
    int nplans = 0;
    bool ignore_stop = false;
    static const struct option opts[] = {
        {"steps", required_argument, NULL, 'n'},
        {"ckpt-dir", required_argument, NULL, 'd'},
        {"local-dir", required_argument, NULL, 'l'},
        {"ckpt-every", required_argument, NULL, 'k'},
        {"step-ms", required_argument, NULL, 't'},
        {"state-mib", required_argument, NULL, 'm'},
        {"backend", required_argument, NULL, 'b'},
        {"kill", required_argument, NULL, 'K'},
        {"abort", required_argument, NULL, 'A'},
        {"lose-node", required_argument, NULL, 'L'},
        {"result", required_argument, NULL, 'r'},
        {"ignore-stop", no_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'n':
            steps = atoll(optarg);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'l':
            local = optarg;
            break;
        case 'k':
            every = atoll(optarg);
            break;
        case 't':
            step_ms = atoll(optarg);
            break;
        case 'm':
            state_mib = atoll(optarg);
            break;
        case 'b':
            backend = optarg;
            break;
        case 'K':
            bad = parse_plan(optarg, 1, plans, &nplans);
            break;
        case 'A':
            bad = parse_plan(optarg, 2, plans, &nplans);
            break;
        case 'L':
            bad = parse_plan(optarg, 3, plans, &nplans);
            break;
        case 'r':
            result = optarg;
            break;
        case 'i':
            ignore_stop = true;
            break;
        default:
            bad = 1;
        }
        if (bad) {
            fputs(usage, stderr);
            return HCRT_EXIT_USAGE;
        }
    }
    if (steps < 1 || dir == NULL || every < 0 || step_ms < 0 || state_mib < 1 ||
        (strcmp(backend, "host") && strcmp(backend, "sim") && strcmp(backend, "mix"))) {
        fputs(usage, stderr);
        return HCRT_EXIT_USAGE;
    }

    hcrt_status_t st = hcrt_init(NULL, &ctx);
    if (st != HCRT_OK) {
        fprintf(stderr, "run_job: hcrt_init: %s\n", hcrt_last_error(NULL));
        return hcrt_exit_status(st);
    }
    TRY(hcrt_context_rank(ctx, &rank, &size));
    TRY(hcrt_run_catch_signals(ctx));
    hcrt_comm_t *world;
    TRY(hcrt_comm_world(ctx, &world));

    /* The state: rows of one u64 each, the first ranks one more when they do not divide evenly. */
    uint64_t total = (uint64_t)state_mib << 17, base = total / (uint64_t)size, extra = total % (uint64_t)size;
    uint64_t lo = (uint64_t)rank * base + ((uint64_t)rank < extra ? (uint64_t)rank : extra);
    uint64_t n = base + ((uint64_t)rank < extra ? 1 : 0);
    hcrt_device_t *host, *dev;
    TRY(hcrt_device_host(ctx, &host));
    dev = host;
    if (strcmp(backend, "sim") == 0 || (strcmp(backend, "mix") == 0 && rank % 2 == 1))
        TRY(hcrt_device_find(ctx, "sim", 0, &dev));
    uint64_t *x = malloc(n * 8 + 8);
    void *dx = x;
    if (x == NULL)
        die(HCRT_ERR_NO_MEMORY, "malloc");
    if (dev != host)
        TRY(hcrt_mem_alloc(dev, n * 8 + 8, &dx));

    hcrt_ckpt_params_t p;
    hcrt_ckpt_t *ck;
    hcrt_ckpt_params_init(&p);
    p.dir = dir;
    p.local_dir = local;
    TRY(hcrt_ckpt_open(ctx, NULL, &p, &ck));
    uint64_t shape[1] = {total};
    hcrt_ckpt_shard_t shard = {lo, n};
    TRY(hcrt_ckpt_register(ck, "state", (hcrt_buffer_t){dev, dx, n, HCRT_U64}, 1, shape, &shard));

    int64_t step = 0;
    char meta[64];
    size_t meta_len = 0;
    st = hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, meta, sizeof(meta) - 1, &meta_len, &step);
    if (st == HCRT_ERR_NOT_FOUND) {
        step = 0;
        for (uint64_t i = 0; i < n; i++)
            x[i] = initial(lo + i);
    } else if (st != HCRT_OK) {
        die(st, "hcrt_ckpt_restore");
    } else {
        meta[meta_len < sizeof(meta) ? meta_len : sizeof(meta) - 1] = '\0';
        if (atoll(meta + 5) != step || strncmp(meta, "step=", 5) != 0)
            die(HCRT_ERR_CORRUPT, "checking the restored metadata");
        if (dev != host)
            TRY(hcrt_memcpy(host, x, dev, dx, n * 8));
    }
    TRY(hcrt_run_heartbeat(ctx, step, HCRT_RUN_READY));
    const int64_t restored = step;

    uint64_t checksum = 0;
    int64_t pending = -1; /* step of the save in flight */
    bool stop = false;
    while (step < steps && !stop) {
        step++;
        /* Each step takes step_ms at least from its own start: a stall is not made up by later steps. */
        double next = mono() + (double)step_ms * 1e-3;
        for (uint64_t i = 0; i < n; i++)
            x[i] = advance(x[i], lo + i, step);
        checksum = 0;
        for (uint64_t i = 0; i < n; i++)
            checksum += mix(lo + i, x[i]);
        TRY(hcrt_comm_allreduce(world, HCRT_IN_PLACE, &checksum, 1, HCRT_U64, HCRT_OP_SUM, NULL));
        if (dev != host)
            TRY(hcrt_memcpy(dev, dx, host, x, n * 8));
        sleep_until(next);
        TRY(hcrt_run_heartbeat(ctx, step, HCRT_RUN_STEP));
        fail_on_request(plans, nplans, step, restored);
        if (!ignore_stop)
            TRY(hcrt_run_should_stop(world, &stop));

        /* Advance the save in flight (hcrt_ckpt reports its commit to hcrt-run itself). */
        if (pending >= 0) {
            bool done = false;
            TRY(hcrt_ckpt_test(ck, &done));
            if (done)
                pending = -1;
        }
        if (stop || step == steps || (every > 0 && step % every == 0)) {
            int len = snprintf(meta, sizeof(meta), "step=%lld", (long long)step);
            TRY(hcrt_ckpt_save(ck, step, meta, (size_t)len));
            TRY(hcrt_run_heartbeat(ctx, step, HCRT_RUN_SAVED));
            pending = step;
        }
    }
    TRY(hcrt_ckpt_wait(ck));

    /* The checksum of a restored run that did no step is the one of its state, computed here. */
    checksum = 0;
    for (uint64_t i = 0; i < n; i++)
        checksum += mix(lo + i, x[i]);
    TRY(hcrt_comm_allreduce(world, HCRT_IN_PLACE, &checksum, 1, HCRT_U64, HCRT_OP_SUM, NULL));
    if (rank == 0 && result != NULL) {
        FILE *f = fopen(result, "w");
        if (f == NULL ||
            fprintf(f, "steps=%lld checksum=%016llx\n", (long long)step, (unsigned long long)checksum) < 0 ||
            fclose(f) != 0)
            die(HCRT_ERR_IO, "writing --result");
    }
    if (rank == 0)
        fprintf(stderr, "run_job: %s at step %lld of %lld, checksum %016llx\n", stop ? "stopped" : "done",
                (long long)step, steps, (unsigned long long)checksum);
    TRY(hcrt_ckpt_close(ck));
    if (dev != host)
        hcrt_mem_free(dev, dx);
    free(x);
    hcrt_comm_destroy(world);
    hcrt_finalize(ctx);
    return stop ? HCRT_EXIT_PREEMPTED : 0;
}
