/*
 * tools/hcrt-train/train.h - the state of one hcrt-train job, shared by its files:
 *
 *   main.c    command line, setup, the training loop, teardown
 *   step.c    one step: this rank's micro-batches, the gradient reduction, the sharded update
 *   measure.c the efficiency figures: each rank alone, and an equal split
 *   ckpt.c    checkpoint registration, metadata, restore on start
 *   replicas.c the hash of the weights, and the check that every rank holds the same ones
 *   report.c  progress lines, the final summary and the --json report
 *   model.c   the MLP on the compute extension;  data.c  the synthetic data
 *
 * Data parallelism with a sharded optimizer: every rank holds the whole model and computes the gradient
 * sums of its share of the global batch (the balancer's plan); the sums are reduce-scattered (or, in
 * exact mode, reduced exactly), each rank updates its shard of the parameters with its shard of the
 * optimizer state, and the shards are allgathered. So the optimizer state is split across ranks, and
 * every rank ends each step with the same parameter bits whatever chips the shards were updated on.
 */
#ifndef HCRT_TRAIN_H
#define HCRT_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "data.h"
#include "hcrt/hcrt.h"
#include "model.h"

#define TRAIN_MAX_RANKS 4096

typedef struct train_opts {
    int dims[MLP_MAX_LAYERS + 1];
    int nlayers;
    char layers_text[256];
    int64_t steps, global_batch, micro;
    hcrt_balance_mode_t balance;
    int replan;
    bool exact;
    hcrt_optim_params_t optim;
    uint64_t seed;
    hcrt_dtype_t dtype;
    const char *ckpt_dir;
    int64_t ckpt_every;
    int ckpt_keep;
    const char *json;
    int log_every;
    int measure_steps; /* 0: no efficiency measurement */
    int check_replicas; /* compare the replicas every K steps; 0: never */
} train_opts_t;

typedef struct train_job {
    train_opts_t o;
    hcrt_context_t *ctx;
    hcrt_comm_t *comm;
    int rank, size;
    hcrt_device_t *dev, *host;
    char device_name[64]; /* "sim:0" */
    mlp_t model;
    train_data_t data;
    int64_t nmicro;       /* micro-batches per global batch */
    hcrt_balancer_t *bal;
    hcrt_exact_t *exact;

    /* The sharded update: this rank's slice [shard_off, shard_off + shard_real) of the flat parameters
     * (shard_len with padding, the same on every rank). */
    size_t npad, shard_len, shard_off, shard_real;
    float *shard_grad;    /* device: the reduce-scattered gradient slice (normal mode) */
    float *state;         /* device: the optimizer state of the slice */
    size_t state_count;
    uint64_t adam_step;

    /* Host staging of micro-batches, double-buffered behind the stream. */
    float *hx[2];
    int32_t *hlabels[2];
    hcrt_event_t *buf_ready[2];
    hcrt_event_t **mb_start, **mb_end; /* per local micro-batch, for the balancer's measurement */
    int64_t mb_events;

    /* Checkpoints. */
    hcrt_ckpt_t *ck;
    int64_t start_step, restored_from;

    /* Results. */
    double *loss_curve;   /* mean loss of each step, index = step */
    double train_seconds; /* wall time of the measured training steps */
    int64_t train_samples;
    double *solo;         /* per rank: samples/s alone */
    double equal_split;   /* samples/s with an equal split */
    int64_t *shares;      /* the last plan */
    int64_t *plans;       /* [plans_cap][size]: the plan each step of this launch ran with (-1: not run) */
    int64_t plans_cap;    /* steps plans holds: grown as steps run (a run of --steps 1e9 stops early) */
    bool stopped;         /* a stop was requested (signal): the job saved and ends with HCRT_EXIT_PREEMPTED */
} train_job_t;

/* step.c */
hcrt_status_t train_step_setup(train_job_t *j);
void train_step_teardown(train_job_t *j);
/* Runs step `step` with the plan `first`, `count` (global micro-batches), updating the parameters unless
 * `dry` (measurement steps). *loss gets the step's mean loss. */
hcrt_status_t train_step(train_job_t *j, int64_t step, int64_t first, int64_t count, bool dry, double *loss);
/* Runs micro-batches [first, first + count) of `step` on this rank and waits: no communication. */
hcrt_status_t train_local_work(train_job_t *j, int64_t step, int64_t first, int64_t count, bool exact_add);

/* measure.c */
hcrt_status_t train_measure(train_job_t *j);

/* ckpt.c */
hcrt_status_t train_ckpt_open(train_job_t *j);
hcrt_status_t train_ckpt_save(train_job_t *j, int64_t steps_done);
void train_ckpt_close(train_job_t *j);

/* replicas.c */
/* XXH64 of this rank's parameters (layer order: W0, b0, W1, b1, ...). */
hcrt_status_t train_weights_xxh64(train_job_t *j, uint64_t *hash);
/* Compares the replicas of the weights across ranks before step `step` (0-based) runs; ends the job with
 * HCRT_ERR_CORRUPT (exit 122), naming the odd ranks, when they differ. Collective. */
hcrt_status_t train_check_replicas(train_job_t *j, int64_t step);

/* report.c */
void train_report_progress(train_job_t *j, int64_t step, double step_seconds);
int train_report_final(train_job_t *j);

/* Seconds of a monotonic clock. */
static inline double train_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define TRAIN_TRY(j, call, label)                                                                    \
    do {                                                                                             \
        hcrt_status_t st_ = (call);                                                                  \
        if (st_ != HCRT_OK) {                                                                        \
            fprintf(stderr, "hcrt-train: rank %d: %s: %s: %s\n", (j)->rank, #call, hcrt_status_name(st_), \
                    hcrt_last_error((j)->ctx));                                                      \
            status = st_;                                                                            \
            goto label;                                                                              \
        }                                                                                            \
    } while (0)

#endif /* HCRT_TRAIN_H */
