/*
 * collectives/failure.c - what happens to a communicator when one of its operations fails on this rank.
 *
 * The exit policy (hcrt/exit.h) decides whether the job ends (the default) or the call returns the
 * error. Either way the communicator is poisoned first: an operation that failed part way may have
 * taken shared-memory epochs it never raised, left MPI requests that still write into its buffers, and
 * left device copies queued on its staging stream. Reusing any of that would release node peers onto
 * data this rank never wrote, or let an old message land in a buffer a new operation reads. So after the
 * first failure: this rank's failure flag in the node window tells its node peers (who then fail at
 * once instead of waiting for the deadline), every later call returns the first failure's status and
 * message, the failed operation's MPI requests go to a graveyard (receives cancelled where MPI can) and
 * its pool blocks and staging stream are never handed out again. Destroying the communicator frees that
 * memory only once MPI has let go of every buried request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectives/coll.h"

hcrt_status_t hcrt__comm_usable(const struct hcrt_comm *c, const char *func)
{
    if (c->failed == HCRT_OK)
        return HCRT_OK;
    return hcrt__error(c->ctx, c->failed, "%s: the communicator cannot be used after its earlier failure: %s", func,
                       c->failed_msg);
}

void hcrt__comm_bury(struct hcrt_comm *c, MPI_Request *req)
{
    if (*req == MPI_REQUEST_NULL)
        return;
    if (c->ngrave == c->gravecap) {
        size_t cap = c->gravecap ? 2 * c->gravecap : 16;
        MPI_Request *p = realloc(c->graveyard, cap * sizeof(*p));
        if (p == NULL) {
            /* MPI completes it some day; its memory then stays allocated for good (settled is false). */
            MPI_Request_free(req);
            c->gravecap = SIZE_MAX;
            return;
        }
        c->graveyard = p;
        c->gravecap = cap;
    }
    c->graveyard[c->ngrave++] = *req;
    *req = MPI_REQUEST_NULL;
}

bool hcrt__comm_graveyard_settled(struct hcrt_comm *c)
{
    bool settled = c->gravecap != SIZE_MAX;
    for (size_t i = 0; i < c->ngrave; i++) {
        int flag = 0;
        MPI_Test(&c->graveyard[i], &flag, MPI_STATUS_IGNORE);
        if (!flag) {
            MPI_Cancel(&c->graveyard[i]);
            MPI_Test(&c->graveyard[i], &flag, MPI_STATUS_IGNORE);
        }
        if (!flag) {
            MPI_Request_free(&c->graveyard[i]);
            settled = false;
        }
    }
    free(c->graveyard);
    c->graveyard = NULL;
    c->ngrave = c->gravecap = 0;
    return settled;
}

hcrt_status_t hcrt__comm_failed(struct hcrt_comm *c, bool designated, hcrt_status_t status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->failed != HCRT_OK) /* a consequence of the first failure, already reported */
        return hcrt__error(c->ctx, c->failed, "%s, after the communicator's earlier failure: %s", msg, c->failed_msg);
    c->failed = status;
    snprintf(c->failed_msg, sizeof(c->failed_msg), "%s", msg);
    if (c->has_shm) {
        hcrt__shm_ctl_t *me = c->shm.ctl[c->node_rank];
        atomic_store_explicit(&me->failed_status, (int64_t)status, memory_order_relaxed);
        atomic_store_explicit(&me->failed_seq, c->seq ? c->seq : 1, memory_order_release);
    }
    hcrt__requests_fail_all(c);
    hcrt__vendor_abort(c, false); /* names a vendor group whose library step did not complete */
    if (!designated && !c->ctx->fail_return && !hcrt__is_usage_error(status)) {
        /* The fallback of the job's end (see hcrt__fail), done here so that the vendor library is released
         * only then: peers that saw their vendor step fail earlier would end the job with another status. */
        struct timespec ts = {1, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
        hcrt__vendor_abort(c, true);
        designated = true;
    }
    hcrt_status_t st = hcrt__fail(c->ctx, NULL, designated, status, "%s", msg);
    /* Returned (HCRT_ON_FAILURE=return, or an error of the caller's own): later calls name it as logged,
     * and the vendor communicator is released, so that peers waiting inside the library leave it too. */
    hcrt__vendor_abort(c, true);
    snprintf(c->failed_msg, sizeof(c->failed_msg), "%s", hcrt_last_error(c->ctx));
    return st;
}
