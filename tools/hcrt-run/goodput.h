/*
 * tools/hcrt-run/goodput.h - the expected goodput of a job that checkpoints every tau seconds of compute
 * and loses, at each failure, the work since its last committed checkpoint plus the restart time
 * (docs/goodput.md). Pure functions of their arguments: the unit test checks them against known values
 * and against a Monte Carlo simulation of the same process.
 *
 * The model (Daly 2006, "A higher order estimate of the optimum checkpoint interval for restart dumps",
 * with failures also during checkpoints and restarts): failures of the whole job arrive as a Poisson
 * process of mean interval M; the job computes tau, stalls delta to checkpoint, and so on; a failure
 * costs the restart R (during which failures may strike again) and the work since the last checkpoint.
 * The expected wall time of one segment of tau useful seconds is
 *     E(tau) = M e^(R/M) (e^((tau + delta)/M) - 1) e^(min(L, tau + delta)/M)
 * where the last factor is hcrt's addition: a checkpoint is committed L seconds after its stall ends (the
 * write runs in the background), and a failure in that window loses the segment just completed, which is
 * then done again (e^(L/M) completions per segment kept). Goodput is tau / E(tau).
 */
#ifndef HCRT_TOOLS_GOODPUT_H
#define HCRT_TOOLS_GOODPUT_H

#include <stdint.h>

typedef struct hr_goodput_params {
    double mtbf_s;    /* M: mean time between interruptions of the whole job */
    double stall_s;   /* delta: time the training loop stops for one checkpoint */
    double restart_s; /* R: from a failure to computing again (teardown, backoff, relaunch, restore) */
    double step_s;    /* T: one training step (checkpoints come every whole number of steps) */
    double commit_s;  /* L: from the end of a stall to the checkpoint being committed (0: at once) */
} hr_goodput_params_t;

/* Mean time between interruptions of a job on `chips` chips that each fail `per_chip_year` times a year
 * (0.1 for 10%): 365.25 days / (chips * per_chip_year), in seconds. */
double hr_goodput_mtbf(double chips, double per_chip_year);

/* Expected goodput with a checkpoint every interval_s seconds of compute (model above). */
double hr_goodput_expected(const hr_goodput_params_t *p, double interval_s);

/* Young's first-order optimum interval sqrt(2 delta M), and Daly's higher-order one. */
double hr_goodput_young(const hr_goodput_params_t *p);
double hr_goodput_daly(const hr_goodput_params_t *p);

/* The best interval in whole steps (>= 1) by a numerical search of the model; *goodput gets its value. */
int64_t hr_goodput_best_every(const hr_goodput_params_t *p, double *goodput);

/* Simulates `wall_s` seconds of the process the model describes (failures drawn with `seed`, the job
 * checkpointing every `every` steps): returns the committed compute time divided by wall_s. */
double hr_goodput_simulate(const hr_goodput_params_t *p, int64_t every, double wall_s, uint64_t seed);

#endif /* HCRT_TOOLS_GOODPUT_H */
