/*
 * runtime/run/stop.c - a stop request the ranks agree on (hcrt/run.h): SIGTERM/SIGINT caught in any rank,
 * or the stop file hcrt-run creates when it is itself told to stop.
 *
 * hcrt-run does not forward its signal through mpirun: Open MPI answers SIGTERM by killing the ranks after
 * odls_base_sigkill_timeout, which hcrt-run sets to 0 so that a failed attempt is torn down at once. A
 * file in HCRT_RUN_DIR gives the job all the time it needs to save.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "collectives/coll.h"
#include "runtime/run/run_internal.h"

static volatile sig_atomic_t stop_signal; /* the last stop signal received, 0 for none */
static int catching;                      /* handlers installed (under the first caller's thread) */

static void on_stop_signal(int sig)
{
    stop_signal = sig;
}

hcrt_status_t hcrt_run_catch_signals(hcrt_context_t *ctx)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    if (__atomic_exchange_n(&catching, 1, __ATOMIC_ACQ_REL))
        return HCRT_OK;
    struct sigaction sa;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    HCRT_DEBUG("run", "SIGTERM and SIGINT now request a stop");
    return HCRT_OK;
}

/* Whether hcrt-run has created HCRT_RUN_DIR/stop. */
static bool stop_file_exists(const hcrt_context_t *ctx)
{
    const char *dir = hcrt__config_str(ctx, "HCRT_RUN_DIR");
    char path[4096 + 8];
    struct stat sb;
    if (dir[0] == '\0')
        return false;
    snprintf(path, sizeof(path), "%s/stop", dir);
    return stat(path, &sb) == 0;
}

hcrt_status_t hcrt_run_should_stop(hcrt_comm_t *comm, bool *stop)
{
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    HCRT_CHECK_ARG(comm->ctx, stop != NULL, "stop", "is NULL");
    int32_t flag = stop_signal != 0;
    /* One rank looks for the file: the allreduce tells the others, and a shared file system is spared a
     * stat per rank per step. */
    if (!flag && comm->rank == 0)
        flag = stop_file_exists(comm->ctx);
    HCRT_CHECK(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, &flag, 1, HCRT_I32, HCRT_OP_MAX, NULL));
    if (flag && stop_signal)
        HCRT_INFO("run", "stop requested by signal %d", (int)stop_signal);
    *stop = flag != 0;
    return HCRT_OK;
}
