/*
 * hcrt/run.h - what a job tells the restart loop (hcrt-run), and how it learns that it should stop.
 *
 * hcrt-run launches the job with mpirun, relaunches it after a restartable failure (hcrt/exit.h), and at
 * the end reports attempts, time lost, recovery time per restart and goodput (docs/goodput.md). It hands
 * every rank two variables (both in the config table):
 *
 *   HCRT_RUN_DIR       a directory shared by hcrt-run and the ranks; empty when the job runs without
 *                      hcrt-run, and then every call below except hcrt_run_should_stop() does nothing.
 *   HCRT_RUN_ATTEMPT   0 for the first launch, 1 for the first relaunch, ...
 *
 * A training loop under hcrt-run looks like this (every call returns hcrt_status_t; checks left out):
 *
 *     hcrt_run_catch_signals(ctx);                     // SIGTERM/SIGINT request a stop instead of killing
 *     int64_t step = 0;
 *     if (hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, NULL, 0, NULL, &step) == HCRT_ERR_NOT_FOUND)
 *         step = 0;                                    // a fresh start
 *     hcrt_run_heartbeat(ctx, step, HCRT_RUN_READY);   // the state of `step` is loaded
 *     while (step < steps) {
 *         train_one_step(++step);
 *         hcrt_run_heartbeat(ctx, step, HCRT_RUN_STEP);
 *         bool stop;
 *         hcrt_run_should_stop(world, &stop);          // collective: every rank gets the same answer
 *         if (stop || step % every == 0) {
 *             hcrt_ckpt_save(ck, step, meta, len);
 *             hcrt_run_heartbeat(ctx, step, HCRT_RUN_SAVED);
 *         }
 *         if (stop) { hcrt_ckpt_wait(ck); ...; exit with HCRT_EXIT_PREEMPTED after hcrt_finalize(); }
 *     }
 *
 * hcrt_ckpt reports HCRT_RUN_COMMITTED itself, from the rank that commits a step, at the moment the step
 * becomes restorable; a job that checkpoints by other means reports it with hcrt_run_heartbeat().
 *
 * From these events hcrt-run tells useful work (steps never redone) from lost work (steps computed after
 * the checkpoint that the next attempt restored), checkpoint stalls (from STEP to SAVED) and recovery
 * (from the failure to the first STEP after the restore). docs/goodput.md defines every figure.
 *
 * Files (all under HCRT_RUN_DIR/attempt-A/, A = HCRT_RUN_ATTEMPT; the directory is created if missing):
 *   rank-R.hb    heartbeats of rank R: one header line "hcrt-heartbeat 1 rank=R size=N pid=P node=NODE
 *                attempt=A", then one line per event "EVENT STEP UNIX_TIME" (EVENT one of S R V C for
 *                STEP, READY, SAVED, COMMITTED; the time in seconds with microseconds). Each line is one
 *                append write(2) of less than PIPE_BUF bytes, so a reader never sees a torn line in the
 *                middle of the file; a heartbeat costs one write and no fsync (a killed process loses
 *                nothing already written; a lost node loses its own ranks' last lines, which hcrt-run
 *                reads from the other ranks).
 *   fail-R       the failure record of rank R (below), written to a temporary name and renamed.
 * NODE is the host name, "HOST~K" for fake node K when HCRT_FAKE_NODES splits the host (as the
 * collectives do), so the loop can tell which ranks a lost node held.
 */
#ifndef HCRT_RUN_H
#define HCRT_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "hcrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hcrt_context;
struct hcrt_comm;

/* What a heartbeat reports about `step`. */
typedef enum hcrt_run_event {
    HCRT_RUN_STEP = 0,     /* training step `step` completed (steps count from 1) */
    HCRT_RUN_READY = 1,    /* the state after step `step` is loaded (restored, or the initial state with
                            * step 0) and the loop starts; the next step computed is step + 1 */
    HCRT_RUN_SAVED = 2,    /* hcrt_ckpt_save(step) returned: the stall of saving `step` is over */
    HCRT_RUN_COMMITTED = 3 /* the checkpoint of `step` is committed (hcrt_ckpt reports it itself) */
} hcrt_run_event_t;

/*
 * Appends one heartbeat line for `event` at `step` (>= 0) to this rank's file under HCRT_RUN_DIR. The
 * first call of the process opens the file (kept open) and writes its header. Does nothing and returns
 * HCRT_OK when HCRT_RUN_DIR is empty. Costs one write(2); call it from the loop, once per event, in the
 * order the events happen. Thread-safe (serialised by a lock).
 * Errors: HCRT_ERR_INVALID_ARG (ctx NULL, step < 0, event not an hcrt_run_event_t), HCRT_ERR_IO (the file
 * cannot be created or written: the message names it; later calls try again).
 */
HCRT_EXPORT hcrt_status_t hcrt_run_heartbeat(struct hcrt_context *ctx, int64_t step, hcrt_run_event_t event);

/*
 * Records why this rank is about to end the job, for hcrt-run's report: the exit status the job will end
 * with (0..255, e.g. HCRT_EXIT_PEER_DEAD), a node known to be lost (NULL: none; "": this rank's own node;
 * else a node name as in the heartbeat header), and one line of text (NULL: none; newlines become spaces,
 * at most 1000 bytes kept). hcrt-run takes the earliest record of an attempt as its cause and failure
 * time, and leaves a lost node out of the next attempt's hostfile. Only the first record of a rank is
 * kept. Makes no MPI call and does not end the process: the caller exits or aborts afterwards. Does
 * nothing and returns HCRT_OK when HCRT_RUN_DIR is empty. Thread-safe.
 * Errors: HCRT_ERR_INVALID_ARG (ctx NULL, exit_status outside 0..255), HCRT_ERR_IO naming the file.
 */
HCRT_EXPORT hcrt_status_t hcrt_run_note_failure(struct hcrt_context *ctx, int exit_status, const char *lost_node,
                                                const char *what);

/*
 * Makes SIGTERM and SIGINT request a stop (reported by hcrt_run_should_stop()) instead of ending the
 * process: Slurm sends SIGTERM before a preemption or the end of the time limit, a user sends SIGINT.
 * Replaces the process's handlers of both signals (system calls interrupted by them restart). Call once,
 * after hcrt_init(); calling again does nothing. Errors: HCRT_ERR_INVALID_ARG (ctx NULL).
 */
HCRT_EXPORT hcrt_status_t hcrt_run_catch_signals(struct hcrt_context *ctx);

/*
 * Collective over comm: *stop is true on every rank when any rank of comm received SIGTERM or SIGINT
 * since hcrt_run_catch_signals(), or hcrt-run asked the job to stop (it creates HCRT_RUN_DIR/stop when it
 * is itself sent SIGTERM or SIGINT; comm's rank 0 looks for it). The ranks see a signal at different
 * steps; this call makes them agree on one. Costs one small allreduce (under HCRT_TIMEOUT, like every
 * collective). On a stop the job saves a checkpoint, waits for it to commit, and exits with
 * HCRT_EXIT_PREEMPTED (120); hcrt-run then does not relaunch it.
 * Errors: HCRT_ERR_INVALID_ARG (comm or stop NULL), the allreduce's errors.
 */
HCRT_EXPORT hcrt_status_t hcrt_run_should_stop(struct hcrt_comm *comm, bool *stop);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_RUN_H */
