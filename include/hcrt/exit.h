/*
 * hcrt/exit.h - the exit policy: the one documented exit status of every way an hcrt job ends, and
 * whether a restart from the newest checkpoint may help.
 *
 * Open MPI 4.1 has no fault-tolerant MPI (no ULFM): a failure that hcrt detects on one rank ends the
 * whole job, and recovery is a relaunch (hcrt-run). For the relaunch to be the right decision the job's
 * exit status must say what happened, so every detected failure ends the process (MPI_Abort, whose code
 * mpirun returns as its own exit status) with one of the statuses below:
 *
 *   status  name              restart may help   meaning
 *   0       OK                -                  the job finished
 *   2       USAGE             no                 bad command line of a tool or job
 *   3       CONFIG            no                 bad configuration (HCRT_* variable, no usable device)
 *   4       APP               no                 mismatched calls across ranks, invalid arguments, misuse
 *   5       RESOURCE          no                 out of host or device memory
 *   70      INTERNAL          no                 an internal error of hcrt (a bug: please report it)
 *   120     PREEMPTED         yes (requeue)      SIGTERM/SIGINT: the job saved a checkpoint and stopped
 *   121     DEVICE            yes                a device was lost or its backend failed
 *   122     CKPT_IO           yes                a checkpoint could not be written or read
 *   123     MPI               yes                the transport failed (an MPI error)
 *   124     TIMEOUT           yes                a collective or checkpoint agreement passed its deadline
 *   125     PEER_DEAD         yes                a peer rank died
 *
 * Statuses of processes killed by a signal (128 + N as shells and mpirun report them, e.g. 137 for
 * SIGKILL) and Open MPI's 205 (a remote node was lost) are restartable too; any other status (1 from a
 * rank that returned non-zero, for instance) is not. docs/architecture.md ("Exit policy") has the same
 * table; hcrt-run classifies exits with hcrt_exit_restartable().
 *
 * Which failures end the job. HCRT_ON_FAILURE chooses, per process:
 *
 *   abort (default)  A failure hcrt detects in a collective (deadline, a dead or failed peer, an MPI or
 *                    device error, an injected error), in a checkpoint save or restore (a rank that could
 *                    not snapshot or write, an agreement past its deadline, rank 0's commit) or in a
 *                    device wait (a lost device) ends the job: one error line names the rank, host,
 *                    device and operation, the cause and the exit status, and MPI_Abort makes that status
 *                    mpirun's own. It is the default because without ULFM the surviving ranks cannot go
 *                    on together anyway: their peers are gone or wait on them, so the fastest recovery
 *                    is to end everything now and relaunch from the newest checkpoint (hcrt-run).
 *   return           The call returns the error instead (hcrt_last_error() says the same), so that an
 *                    application can save what it can or report before it ends. A collective that
 *                    failed poisons its communicator: every later call on it returns the first failure's
 *                    status and names it, and nothing the failed call left behind (shared-memory epochs,
 *                    MPI requests, pool blocks) is ever reused. A save that failed on some rank
 *                    but whose agreement completed leaves the checkpointer usable (the step is not
 *                    committed; the next save may try again); one whose agreement itself failed (its
 *                    deadline passed, MPI failed) poisons the checkpointer the same way. The application
 *                    ends the job itself, with hcrt_abort() (or by returning hcrt_exit_status(status)
 *                    from a one-rank program).
 *
 * Under both, errors of the caller's own making (an invalid argument, mismatched calls found by
 * HCRT_CHECK_CALLS, a call in the wrong state: exit statuses APP and CONFIG) are returned and never
 * abort, and poison nothing: they are found before any data moves. So are the verdicts every rank
 * agrees on about checkpoint data: no step to restore (HCRT_ERR_NOT_FOUND), or none that verifies
 * (HCRT_ERR_CORRUPT): the application may rather start afresh than be relaunched onto them.
 */
#ifndef HCRT_EXIT_H
#define HCRT_EXIT_H

#include <stdbool.h>

#include "hcrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, status, restartable, meaning). NAME is used as HCRT_EXIT_<NAME>. */
#define HCRT_EXIT_MAP(X)                                                                            \
    X(OK, 0, false, "the job finished")                                                             \
    X(USAGE, 2, false, "bad command line")                                                          \
    X(CONFIG, 3, false, "bad configuration or no usable device")                                    \
    X(APP, 4, false, "mismatched calls, invalid arguments or misuse of the API")                    \
    X(RESOURCE, 5, false, "out of host or device memory")                                           \
    X(INTERNAL, 70, false, "internal error of hcrt")                                                \
    X(PREEMPTED, 120, true, "stopped by SIGTERM/SIGINT after saving a checkpoint")                  \
    X(DEVICE, 121, true, "a device was lost or its backend failed")                                 \
    X(CKPT_IO, 122, true, "a checkpoint could not be written or read")                              \
    X(MPI, 123, true, "the transport (MPI) failed")                                                 \
    X(TIMEOUT, 124, true, "a collective or checkpoint agreement passed its deadline")               \
    X(PEER_DEAD, 125, true, "a peer rank died")

enum {
#define HCRT_EXIT_ENUM_(name, status, restartable, text) HCRT_EXIT_##name = status,
    HCRT_EXIT_MAP(HCRT_EXIT_ENUM_)
#undef HCRT_EXIT_ENUM_
};

/* Open MPI's mpirun status when a remote node (its daemon) was lost. */
#define HCRT_EXIT_MPIRUN_NODE_LOST 205

/*
 * The exit status for a failure with `status`: HCRT_EXIT_OK for HCRT_OK, HCRT_EXIT_TIMEOUT for
 * HCRT_ERR_TIMEOUT, HCRT_EXIT_DEVICE for HCRT_ERR_DEVICE_LOST and HCRT_ERR_BACKEND, HCRT_EXIT_CKPT_IO for
 * HCRT_ERR_IO and HCRT_ERR_CORRUPT, HCRT_EXIT_MPI for HCRT_ERR_MPI, HCRT_EXIT_PEER_DEAD for
 * HCRT_ERR_PEER_DEAD, HCRT_EXIT_CONFIG for HCRT_ERR_CONFIG
 * and HCRT_ERR_NO_DEVICE, HCRT_EXIT_RESOURCE for the out-of-memory codes, HCRT_EXIT_INTERNAL for
 * HCRT_ERR_INTERNAL and values not in the list, HCRT_EXIT_APP for the rest. Thread-safe.
 */
HCRT_EXPORT int hcrt_exit_status(hcrt_status_t status);

/*
 * Whether a job that ended with exit status `exit_status` may succeed when relaunched from its newest
 * checkpoint: the restartable statuses of the table above, 128 + N for a process killed by signal N, and
 * HCRT_EXIT_MPIRUN_NODE_LOST. Thread-safe.
 */
HCRT_EXPORT bool hcrt_exit_restartable(int exit_status);

/*
 * The name of an exit status without prefix ("TIMEOUT"), "SIGNAL" for 129..159, "NODE_LOST" for 205,
 * "UNKNOWN" otherwise. Returns a static string; thread-safe.
 */
HCRT_EXPORT const char *hcrt_exit_name(int exit_status);

struct hcrt_context;

/*
 * Ends the job the way hcrt's own failures do: logs one error line naming this rank, its host and
 * device, `what` (e.g. "training step 40"), hcrt_last_error(ctx) and the exit status, then aborts
 * every rank with hcrt_exit_status(status) (HCRT_EXIT_INTERNAL for HCRT_OK), which mpirun returns as
 * its own status (a rank that merely returns non-zero makes mpirun exit 1, which hcrt-run cannot
 * classify). For an application under HCRT_ON_FAILURE=return, or for errors it finds itself. Call it on
 * any rank that saw the failure: world rank 0 aborts at once, other ranks 1.5 s (plus 0.1 s per rank)
 * later unless the job ended first (Open MPI 4.1's mpirun can lose the status when several ranks abort at
 * the same moment).
 * ctx may be NULL (after hcrt_init failed). Never returns.
 */
HCRT_EXPORT void hcrt_abort(struct hcrt_context *ctx, hcrt_status_t status, const char *what)
    __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* HCRT_EXIT_H */
