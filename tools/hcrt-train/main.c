/*
 * tools/hcrt-train/main.c - hcrt-train, the training job: an MLP learns a synthetic classification set,
 * data-parallel across ranks of any backends and speeds, with the balancer's split, exact or ordinary
 * gradient sums, a sharded optimizer, checkpoints and restarts. See train.h for how the files divide
 * the work, and usage() for the command line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np N hcrt-train [options]\n"
            "\n"
            "Trains a multi-layer perceptron on a synthetic classification set (labels from a fixed random\n"
            "teacher network) drawn from --seed: the samples of global step s depend only on (seed, s), so\n"
            "every world size, device mix, batch split and restart sees the same global batches. Each rank\n"
            "computes on its device (HCRT_DEVICE, else by node-local rank); the balancer splits each global\n"
            "batch in whole micro-batches in proportion to the ranks' measured speed.\n"
            "\n"
            "  --layers D0,D1,...,DL  layer sizes: inputs, hidden layers, classes (default 512,1024,1024,10)\n"
            "  --steps S              training steps (default 100)\n"
            "  --global-batch B       samples per step, a multiple of the micro-batch (default 2048)\n"
            "  --micro-batch m        samples per micro-batch (default 32)\n"
            "  --balance MODE         off (even split), static (re-plan once), online (default: re-plan\n"
            "                         every --replan steps from a moving average, with hysteresis)\n"
            "  --replan K             steps between re-plans (default 4)\n"
            "  --exact                sum gradients exactly: the final weights are bitwise the same for every\n"
            "                         world size, split, rebalancing and restart (on cpu and sim devices)\n"
            "  --optimizer sgd|adamw  (default sgd, with --momentum)\n"
            "  --lr X                 learning rate (default 0.05 for sgd, 0.001 for adamw)\n"
            "  --momentum X           sgd momentum (default 0.9)\n"
            "  --weight-decay X       (default 0)\n"
            "  --dtype f32|f16|bf16   gemm operand type, f32 accumulation (default f32)\n"
            "  --seed N               data, teacher and initial weights (default 1)\n"
            "  --ckpt-dir D           checkpoint directory: the newest committed step there is restored on\n"
            "                         start (any world size and device mix), and saves go there\n"
            "  --ckpt-every K         save every K steps (default 10 with --ckpt-dir)\n"
            "  --ckpt-keep K          committed checkpoints kept (default HCRT_CKPT_KEEP)\n"
            "  --measure-steps N      steps of the efficiency measurement on a fresh start: each rank alone,\n"
            "                         then an even split (default 3; 0 skips it)\n"
            "  --log-every N          a progress line every N steps (default 10; 0: none)\n"
            "  --check-replicas K     every K steps, compare an XXH64 of every rank's weights before the step\n"
            "                         uses them, and end the job with exit status 122 (HCRT_ERR_CORRUPT) when\n"
            "                         a replica diverged (a bit flip), before it is saved (default 0: never)\n"
            "  --json FILE            rank 0 writes the report: steps, global_batch, loss_curve, final_loss,\n"
            "                         weights_xxh64, samples_per_s, shares, plans (the shares each step of\n"
            "                         this launch ran with; null for steps restored), solo_samples_per_s,\n"
            "                         efficiency, equal_split_samples_per_s, exact, restored_from\n"
            "  --help                 this text\n"
            "\n"
            "HCRT_TRACE=FILE writes a Chrome trace (chrome://tracing, Perfetto) of every rank's compute,\n"
            "collectives, checkpoints and balancer decisions.\n"
            "\n"
            "Exit status: 0 on success, 2 on bad usage, otherwise the exit policy's status of the failure\n"
            "(hcrt/exit.h: 124 deadline, 121 device, 122 checkpoint I/O, ...; docs/architecture.md).\n");
}

static int bad(const char *what, const char *arg)
{
    fprintf(stderr, "hcrt-train: %s, got '%s' (see --help)\n", what, arg);
    return HCRT_EXIT_USAGE;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* Parses the command line into o; returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, train_opts_t *o)
{
    enum { O_LAYERS = 256, O_STEPS, O_GB, O_MB, O_BALANCE, O_REPLAN, O_EXACT, O_OPTIM, O_LR, O_MOMENTUM, O_WD,
           O_DTYPE, O_SEED, O_CKPT, O_EVERY, O_KEEP, O_MEASURE, O_LOG, O_JSON, O_REPLICAS, O_HELP };
    static const struct option opts[] = {
        {"layers", required_argument, NULL, O_LAYERS}, {"steps", required_argument, NULL, O_STEPS},
        {"global-batch", required_argument, NULL, O_GB}, {"micro-batch", required_argument, NULL, O_MB},
        {"balance", required_argument, NULL, O_BALANCE}, {"replan", required_argument, NULL, O_REPLAN},
        {"exact", no_argument, NULL, O_EXACT}, {"optimizer", required_argument, NULL, O_OPTIM},
        {"lr", required_argument, NULL, O_LR}, {"momentum", required_argument, NULL, O_MOMENTUM},
        {"weight-decay", required_argument, NULL, O_WD}, {"dtype", required_argument, NULL, O_DTYPE},
        {"seed", required_argument, NULL, O_SEED}, {"ckpt-dir", required_argument, NULL, O_CKPT},
        {"ckpt-every", required_argument, NULL, O_EVERY}, {"ckpt-keep", required_argument, NULL, O_KEEP},
        {"measure-steps", required_argument, NULL, O_MEASURE}, {"log-every", required_argument, NULL, O_LOG},
        {"json", required_argument, NULL, O_JSON}, {"check-replicas", required_argument, NULL, O_REPLICAS},
        {"help", no_argument, NULL, O_HELP}, {NULL, 0, NULL, 0},
    };
    char err[256];
    int64_t v;
    bool lr_set = false, momentum_set = false;
    const char *layers = "512,1024,1024,10";
    memset(o, 0, sizeof(*o));
    o->steps = 100;
    o->global_batch = 2048;
    o->micro = 32;
    o->balance = HCRT_BALANCE_ONLINE;
    o->replan = 4;
    o->seed = 1;
    o->dtype = HCRT_F32;
    o->ckpt_every = -1;
    o->log_every = 10;
    o->measure_steps = 3;
    hcrt_optim_params_init(&o->optim);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_LAYERS: layers = optarg; break;
        case O_STEPS:
            if (!parse_i64(optarg, 0, 100000000, &o->steps))
                return bad("--steps wants a number of steps (0 or more)", optarg);
            break;
        case O_GB:
            if (!parse_i64(optarg, 1, (int64_t)1 << 40, &o->global_batch))
                return bad("--global-batch wants a positive number of samples", optarg);
            break;
        case O_MB:
            if (!parse_i64(optarg, 1, 1 << 20, &o->micro))
                return bad("--micro-batch wants a positive number of samples (at most 1048576)", optarg);
            break;
        case O_BALANCE:
            if (strcmp(optarg, "off") == 0)
                o->balance = HCRT_BALANCE_OFF;
            else if (strcmp(optarg, "static") == 0)
                o->balance = HCRT_BALANCE_STATIC;
            else if (strcmp(optarg, "online") == 0)
                o->balance = HCRT_BALANCE_ONLINE;
            else
                return bad("--balance wants off, static or online", optarg);
            break;
        case O_REPLAN:
            if (!parse_i64(optarg, 1, 1000000, &v))
                return bad("--replan wants a positive number of steps", optarg);
            o->replan = (int)v;
            break;
        case O_EXACT: o->exact = true; break;
        case O_OPTIM:
            if (strcmp(optarg, "sgd") == 0)
                o->optim.kind = HCRT_OPTIM_SGD;
            else if (strcmp(optarg, "adamw") == 0)
                o->optim.kind = HCRT_OPTIM_ADAMW;
            else
                return bad("--optimizer wants sgd or adamw", optarg);
            break;
        case O_LR:
            if (!parse_double(optarg, 0, 1e6, &o->optim.lr))
                return bad("--lr wants a non-negative number", optarg);
            lr_set = true;
            break;
        case O_MOMENTUM:
            if (!parse_double(optarg, 0, 1, &o->optim.momentum))
                return bad("--momentum wants a number in [0, 1]", optarg);
            momentum_set = true;
            break;
        case O_WD:
            if (!parse_double(optarg, 0, 1e6, &o->optim.weight_decay))
                return bad("--weight-decay wants a non-negative number", optarg);
            break;
        case O_DTYPE:
            if (strcmp(optarg, "f32") == 0)
                o->dtype = HCRT_F32;
            else if (strcmp(optarg, "f16") == 0)
                o->dtype = HCRT_F16;
            else if (strcmp(optarg, "bf16") == 0)
                o->dtype = HCRT_BF16;
            else
                return bad("--dtype wants f32, f16 or bf16", optarg);
            break;
        case O_SEED:
            if (!parse_i64(optarg, 0, INT64_MAX, &v))
                return bad("--seed wants a non-negative integer", optarg);
            o->seed = (uint64_t)v;
            break;
        case O_CKPT:
            if (optarg[0] == '\0')
                return bad("--ckpt-dir wants a directory", optarg);
            o->ckpt_dir = optarg;
            break;
        case O_EVERY:
            if (!parse_i64(optarg, 1, 100000000, &o->ckpt_every))
                return bad("--ckpt-every wants a positive number of steps", optarg);
            break;
        case O_KEEP:
            if (!parse_i64(optarg, 1, 1000000, &v))
                return bad("--ckpt-keep wants a positive number", optarg);
            o->ckpt_keep = (int)v;
            break;
        case O_MEASURE:
            if (!parse_i64(optarg, 0, 1000, &v))
                return bad("--measure-steps wants a number of steps (0 to 1000)", optarg);
            o->measure_steps = (int)v;
            break;
        case O_LOG:
            if (!parse_i64(optarg, 0, 100000000, &v))
                return bad("--log-every wants a number of steps (0: no progress lines)", optarg);
            o->log_every = (int)v;
            break;
        case O_JSON: o->json = optarg; break;
        case O_REPLICAS:
            if (!parse_i64(optarg, 0, 100000000, &v))
                return bad("--check-replicas wants a number of steps (0: never)", optarg);
            o->check_replicas = (int)v;
            break;
        case O_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, "hcrt-train: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return HCRT_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return bad("unexpected argument", argv[optind]);
    o->nlayers = mlp_parse_layers(layers, o->dims, err, sizeof(err));
    if (o->nlayers < 0) {
        fprintf(stderr, "hcrt-train: %s\n", err);
        return HCRT_EXIT_USAGE;
    }
    snprintf(o->layers_text, sizeof(o->layers_text), "%s", layers);
    if (o->global_batch % o->micro != 0) {
        fprintf(stderr, "hcrt-train: --global-batch (%lld) must be a multiple of --micro-batch (%lld)\n",
                (long long)o->global_batch, (long long)o->micro);
        return HCRT_EXIT_USAGE;
    }
    if (o->ckpt_every > 0 && o->ckpt_dir == NULL)
        return bad("--ckpt-every needs --ckpt-dir", "");
    if (o->ckpt_dir != NULL && o->ckpt_every < 0)
        o->ckpt_every = 10;
    if (!lr_set)
        o->optim.lr = o->optim.kind == HCRT_OPTIM_ADAMW ? 1e-3 : 0.05;
    if (o->optim.kind == HCRT_OPTIM_SGD && !momentum_set)
        o->optim.momentum = 0.9;
    if (o->optim.kind == HCRT_OPTIM_ADAMW && momentum_set)
        return bad("--momentum is for sgd (adamw has beta1 and beta2)", "");
    return -1;
}

/* Sets up everything the loop needs. */
static hcrt_status_t setup(train_job_t *j)
{
    hcrt_status_t status = HCRT_OK;
    TRAIN_TRY(j, hcrt_context_rank(j->ctx, &j->rank, &j->size), err);
    TRAIN_TRY(j, hcrt_comm_world(j->ctx, &j->comm), err);
    TRAIN_TRY(j, hcrt_context_device(j->ctx, &j->dev), err);
    TRAIN_TRY(j, hcrt_device_host(j->ctx, &j->host), err);
    hcrt_device_props_t props = {.struct_size = sizeof(props)};
    TRAIN_TRY(j, hcrt_device_get_props(j->dev, &props), err);
    snprintf(j->device_name, sizeof(j->device_name), "%s:%d", props.backend, props.index);
    j->nmicro = j->o.global_batch / j->o.micro;
    if (j->nmicro < j->size) {
        if (j->rank == 0)
            fprintf(stderr, "hcrt-train: the global batch has %lld micro-batches, fewer than the %d ranks: raise "
                    "--global-batch or lower --micro-batch\n", (long long)j->nmicro, j->size);
        return HCRT_ERR_INVALID_ARG;
    }
    if (!hcrt_device_has_compute(j->dev)) {
        fprintf(stderr, "hcrt-train: rank %d: device %s (%s) has no compute extension; pick another with "
                "HCRT_DEVICE\n", j->rank, j->device_name, props.name);
        return HCRT_ERR_NOT_SUPPORTED;
    }
    if (train_data_init(&j->data, j->o.seed, j->o.dims[0], j->o.dims[j->o.nlayers]) != 0)
        return HCRT_ERR_NO_MEMORY;
    TRAIN_TRY(j, mlp_create(&j->model, j->ctx, j->dev, j->o.dims, j->o.nlayers, (size_t)j->o.micro, j->o.dtype,
                            (size_t)j->size, &j->npad), err);
    TRAIN_TRY(j, mlp_init_params(&j->model, j->o.seed), err);
    TRAIN_TRY(j, train_step_setup(j), err);

    j->loss_curve = calloc((size_t)j->o.steps + 1, sizeof(double));
    j->solo = calloc((size_t)j->size, sizeof(double));
    j->shares = calloc((size_t)j->size, sizeof(int64_t));
    if (!j->loss_curve || !j->solo || !j->shares)
        return HCRT_ERR_NO_MEMORY;

    hcrt_balance_params_t bp;
    hcrt_balance_params_init(&bp);
    bp.micro_batches = j->nmicro;
    bp.micro_batch_size = j->o.micro;
    bp.mode = j->o.balance;
    bp.interval = j->o.replan;
    bp.device = j->dev;
    /* Activations of one sample on the device: what a bigger share costs in memory. */
    uint64_t per_sample = 0;
    for (int l = 0; l <= j->o.nlayers; l++)
        per_sample += (uint64_t)j->o.dims[l] * sizeof(float);
    bp.bytes_per_sample = 3 * per_sample;
    TRAIN_TRY(j, hcrt_balancer_create(j->comm, &bp, &j->bal), err);

    j->restored_from = -1;
    if (j->o.ckpt_dir != NULL)
        TRAIN_TRY(j, train_ckpt_open(j), err);
    TRAIN_TRY(j, hcrt_balancer_shares(j->bal, j->shares, (size_t)j->size), err);
    if (j->rank == 0) {
        printf("hcrt-train: %d ranks, layers %s (%zu parameters), %lld steps of %lld samples (%lld micro-batches of "
               "%lld), balance %s%s\n",
               j->size, j->o.layers_text, j->model.nparams, (long long)j->o.steps, (long long)j->o.global_batch,
               (long long)j->nmicro, (long long)j->o.micro,
               j->o.balance == HCRT_BALANCE_OFF ? "off" : j->o.balance == HCRT_BALANCE_STATIC ? "static" : "online",
               j->o.exact ? ", exact" : "");
        fflush(stdout);
    }
    /* Rank 0 names every rank's device (from what the communicator exchanged at creation). */
    for (int r = 0; r < j->size && j->rank == 0; r++) {
        hcrt_comm_rank_info_t info = {.struct_size = sizeof(info)};
        TRAIN_TRY(j, hcrt_comm_rank_info(j->comm, r, &info), err);
        printf("hcrt-train: rank %d on %s:%d of %s (speed %.2f)\n", r, info.backend, info.device_index, info.host,
               info.speed);
    }
    fflush(stdout);
    return HCRT_OK;
err:
    return status;
}

static void teardown(train_job_t *j)
{
    if (j->ck)
        train_ckpt_close(j);
    hcrt_balancer_destroy(j->bal);
    train_step_teardown(j);
    mlp_destroy(&j->model);
    train_data_free(&j->data);
    hcrt_comm_destroy(j->comm);
    free(j->loss_curve);
    free(j->solo);
    free(j->shares);
    free(j->plans);
}

/* Keeps the plan step `step` runs with (--json's plans), growing the array as the run goes. */
static hcrt_status_t record_plan(train_job_t *j, int64_t step)
{
    if (step >= j->plans_cap) {
        int64_t cap = j->plans_cap > 0 ? j->plans_cap : 1024;
        while (cap <= step)
            cap *= 2;
        int64_t *p = realloc(j->plans, (size_t)cap * (size_t)j->size * sizeof(int64_t));
        if (p == NULL)
            return HCRT_ERR_NO_MEMORY;
        memset(p + j->plans_cap * j->size, 0xff, (size_t)(cap - j->plans_cap) * (size_t)j->size * sizeof(int64_t));
        j->plans = p;
        j->plans_cap = cap;
    }
    memcpy(j->plans + step * j->size, j->shares, (size_t)j->size * sizeof(int64_t));
    return HCRT_OK;
}

static hcrt_status_t train(train_job_t *j)
{
    hcrt_status_t status = HCRT_OK;
    /* The efficiency figures, on a fresh start only (a restart should be back at work quickly). */
    if (j->o.measure_steps > 0 && j->restored_from < 0 && j->o.steps > 0)
        TRAIN_TRY(j, train_measure(j), out);

    /* The balanced steps' throughput leaves out the first two steps of an attempt (first touch, the
     * balancer's first measurement). */
    const int64_t warm = j->start_step + (j->o.steps - j->start_step > 4 ? 2 : 0);
    double t_warm = train_now();
    /* Under hcrt-run: the state after start_step is loaded, the loop starts (docs/goodput.md). */
    TRAIN_TRY(j, hcrt_run_heartbeat(j->ctx, j->start_step, HCRT_RUN_READY), out);
    for (int64_t step = j->start_step; step < j->o.steps; step++) {
        double t0 = train_now();
        if (step == warm)
            t_warm = t0;
        /* HCRT_FAULT's train site (docs/fault-injection.md), numbered like the heartbeats: a failure
         * injected here ends the job as one of hcrt's own would, with its exit status; a corruption
         * flips a bit of this rank's weights (which --check-replicas finds). */
        const hcrt_buffer_t weights = {j->dev, j->model.params, j->model.nparams, HCRT_F32};
        status = hcrt_fault_point(j->ctx, "train", NULL, step + 1, &weights);
        if (status != HCRT_OK)
            hcrt_abort(j->ctx, status, "hcrt-train: the training step");
        if (j->o.check_replicas > 0 && step % j->o.check_replicas == 0)
            TRAIN_TRY(j, train_check_replicas(j, step), out);
        int64_t first = 0, count = 0;
        TRAIN_TRY(j, hcrt_balancer_assignment(j->bal, &first, &count), out);
        TRAIN_TRY(j, record_plan(j, step), out);
        double loss = 0;
        TRAIN_TRY(j, train_step(j, step, first, count, false, &loss), out);
        j->loss_curve[step] = loss;
        TRAIN_TRY(j, hcrt_balancer_step(j->bal, NULL), out);
        TRAIN_TRY(j, hcrt_balancer_shares(j->bal, j->shares, (size_t)j->size), out);
        TRAIN_TRY(j, hcrt_run_heartbeat(j->ctx, step + 1, HCRT_RUN_STEP), out);
        /* The save in flight advances at every step (its agreement is nonblocking MPI that moves only
         * inside checkpoint calls): it commits a step or two after it was taken, not at the next save, so
         * a failure in between restarts from it. */
        if (j->ck != NULL) {
            bool committed = false;
            TRAIN_TRY(j, hcrt_ckpt_test(j->ck, &committed), out);
        }
        /* A stop (SIGTERM from Slurm or hcrt-run, SIGINT): every rank agrees on this step, saves it and
         * ends with HCRT_EXIT_PREEMPTED, so that the next launch resumes right here. */
        bool stop = false;
        TRAIN_TRY(j, hcrt_run_should_stop(j->comm, &stop), out);
        if (j->ck != NULL && (stop || (step + 1) % j->o.ckpt_every == 0)) {
            TRAIN_TRY(j, train_ckpt_save(j, step + 1), out);
            TRAIN_TRY(j, hcrt_run_heartbeat(j->ctx, step + 1, HCRT_RUN_SAVED), out);
        }
        if (stop) {
            if (j->ck != NULL)
                TRAIN_TRY(j, hcrt_ckpt_wait(j->ck), out);
            if (j->rank == 0)
                printf("hcrt-train: stopped by a signal after step %lld%s\n", (long long)(step + 1),
                       j->ck != NULL ? ", checkpoint committed" : " (no --ckpt-dir: nothing saved)");
            j->stopped = true;
            break;
        }
        if (j->o.log_every > 0 && ((step + 1) % j->o.log_every == 0 || step + 1 == j->o.steps))
            train_report_progress(j, step, train_now() - t0);
        if (step >= warm)
            j->train_samples += j->o.global_batch;
    }
    j->train_seconds = j->train_samples > 0 ? train_now() - t_warm : 0;
    /* The last step's allgather has no next step to check it. */
    if (j->o.check_replicas > 0 && !j->stopped)
        TRAIN_TRY(j, train_check_replicas(j, j->o.steps), out);
    if (j->ck != NULL)
        TRAIN_TRY(j, hcrt_ckpt_wait(j->ck), out);
out:
    return status;
}

int main(int argc, char **argv)
{
    train_job_t job;
    memset(&job, 0, sizeof(job));
    int rc = parse_args(argc, argv, &job.o);
    if (rc >= 0)
        return rc;
    if (hcrt_init(NULL, &job.ctx) != HCRT_OK) {
        fprintf(stderr, "hcrt-train: hcrt_init failed: %s\n", hcrt_last_error(NULL));
        return hcrt_exit_status(HCRT_ERR_CONFIG);
    }
    /* SIGTERM/SIGINT become a stop the ranks agree on (hcrt_run_should_stop) instead of a kill. */
    hcrt_run_catch_signals(job.ctx);
    hcrt_status_t st = setup(&job);
    if (st == HCRT_OK) {
        st = train(&job);
        /* A step that failed on this rank alone (a compute kernel's error, a lost device) leaves the
         * others waiting in the step's collectives until their deadline: end the whole job now, with the
         * failure's own exit status, as the runtime's failures do. */
        if (st != HCRT_OK)
            hcrt_abort(job.ctx, st, "hcrt-train: the training loop");
    }
    if (st == HCRT_OK && job.stopped)
        rc = HCRT_EXIT_PREEMPTED;
    else if (st == HCRT_OK)
        rc = train_report_final(&job);
    else
        rc = hcrt_exit_status(st);
    teardown(&job);
    hcrt_finalize(job.ctx);
    return rc;
}
