/*
 * runtime/fail.c - the one way a detected failure ends the job (the exit policy of hcrt/exit.h).
 *
 * Open MPI 4.1 has no fault-tolerant MPI: when one rank fails inside a collective or a checkpoint
 * agreement, its peers can only wait for a deadline, so the default is to end the whole job at once
 * with an exit status that tells the restart loop (hcrt-run) whether a relaunch may help. MPI_Abort's
 * code becomes mpirun's exit status. Collectives, checkpoints and device waits all come here; the
 * message is logged once, here, naming the rank, its host and device, and the operation, and recorded
 * for hcrt-run's report (hcrt_run_note_failure) when the job ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"

#define FAIL_SUBSYS "fail"

/* How long a rank that is not designated to abort waits for the designated one to end the job: 1.5 s,
 * plus 0.1 s per rank (up to 32), so that when no rank was designated (each saw another's failure flag
 * first) they still abort one at a time: Open MPI 4.1's mpirun can crash when several ranks abort at
 * the same moment (seen: a segfault in its PMIx log handler, the job's status lost). */
static void fallback_pause(const hcrt_context_t *ctx)
{
    int r = ctx != NULL && ctx->rank > 0 ? ctx->rank : 0;
    long ms = 1500 + 100L * (r < 32 ? r : 32);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000L * 1000L};
    nanosleep(&ts, NULL);
}

bool hcrt__is_usage_error(hcrt_status_t status)
{
    int code = hcrt_exit_status(status);
    return code == HCRT_EXIT_APP || code == HCRT_EXIT_CONFIG;
}

void hcrt__fail_who(const hcrt_context_t *ctx, const hcrt_device_t *dev, char *buf, size_t len)
{
    if (ctx == NULL) {
        snprintf(buf, len, "this process");
        return;
    }
    if (dev == NULL)
        dev = ctx->selected;
    if (dev != NULL)
        snprintf(buf, len, "rank %d (%s, %s device %d)", ctx->rank, ctx->hostname, dev->be->name, dev->index);
    else
        snprintf(buf, len, "rank %d (%s)", ctx->rank, ctx->hostname);
}

/* Logs the failure, and records it for hcrt-run (hcrt/run.h: the cause and time of the attempt's end;
 * nothing without HCRT_RUN_DIR) when it ends the job with `exit_status` (-1: it does not). */
static void vlog_failure(const hcrt_context_t *ctx, const hcrt_device_t *dev, const char *tail, int exit_status,
                         const char *fmt, va_list ap)
{
    char who[384], msg[1536], line[2048];
    hcrt__fail_who(ctx, dev, who, sizeof(who));
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(line, sizeof(line), "%s: %s", who, msg);
    if (exit_status >= 0 && ctx != NULL)
        hcrt_run_note_failure((hcrt_context_t *)ctx, exit_status, ctx->fail_lost_node[0] ? ctx->fail_lost_node : NULL,
                              line);
    hcrt__log_emit(HCRT_LOG_ERROR, FAIL_SUBSYS, "%s; %s", line, tail);
    fflush(stderr);
}

static _Noreturn void end_job(int exit_status)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized)
        MPI_Abort(MPI_COMM_WORLD, exit_status);
    _exit(exit_status);
}

static void exit_tail(char *buf, size_t len, int exit_status)
{
    snprintf(buf, len, "aborting the job with exit status %d (HCRT_EXIT_%s: %s)", exit_status,
             hcrt_exit_name(exit_status),
             hcrt_exit_restartable(exit_status) ? "a restart may help" : "a restart would not help");
}

_Noreturn void hcrt__fail_abort(const hcrt_context_t *ctx, const hcrt_device_t *dev, bool designated, int exit_status,
                                const char *fmt, ...)
{
    char tail[160];
    va_list ap;
    /* The others wait first: usually the designated rank's abort ends them during the pause, so the
     * failure is logged once, by the rank that ends the job. */
    if (!designated)
        fallback_pause(ctx);
    exit_tail(tail, sizeof(tail), exit_status);
    va_start(ap, fmt);
    vlog_failure(ctx, dev, tail, exit_status, fmt, ap);
    va_end(ap);
    end_job(exit_status);
}

hcrt_status_t hcrt__fail(hcrt_context_t *ctx, const hcrt_device_t *dev, bool designated, hcrt_status_t status,
                         const char *fmt, ...)
{
    char tail[160], who[384], msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (status == HCRT_OK || hcrt__is_usage_error(status))
        return status == HCRT_OK ? HCRT_OK : hcrt__error(ctx, status, "%s", msg);
    if (ctx == NULL || !ctx->fail_return)
        hcrt__fail_abort(ctx, dev, designated, hcrt_exit_status(status), "%s", msg);
    snprintf(tail, sizeof(tail), "returning %s (HCRT_ON_FAILURE=return)", hcrt_status_name(status));
    hcrt__fail_who(ctx, dev, who, sizeof(who));
    hcrt__log_emit(HCRT_LOG_ERROR, FAIL_SUBSYS, "%s: %s; %s", who, msg, tail);
    return hcrt__error(ctx, status, "%s: %s", who, msg);
}

void hcrt_abort(hcrt_context_t *ctx, hcrt_status_t status, const char *what)
{
    int code = status == HCRT_OK ? HCRT_EXIT_INTERNAL : hcrt_exit_status(status);
    const char *detail = hcrt_last_error(ctx);
    /* World rank 0 ends the job at once; when every rank met the same failure the others would only
     * race it (see hcrt__fail), and a failure only another rank saw still ends the job 1.5 s later. */
    hcrt__fail_abort(ctx, NULL, ctx == NULL || ctx->rank == 0, code, "%s%s%s (%s)",
                     what ? what : "the application gave up", detail[0] ? ": " : "", detail, hcrt_status_name(status));
}
