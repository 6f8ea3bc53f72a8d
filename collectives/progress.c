/*
 * collectives/progress.c - running schedules: blocking calls, requests, and the polling loop.
 *
 * There is no progress thread (MPI is initialised MPI_THREAD_SERIALIZED, and a thread would compete with
 * the ranks for the cores): schedules advance when the application calls in. A blocking call advances
 * its own schedule and every outstanding request of the communicator, so a peer waiting on a request
 * that needs our next message is never stranded; the deadline is checked as it polls.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collectives/coll.h"
#include "runtime/trace.h"

struct hcrt_request {
    struct hcrt_comm *comm;
    hcrt__sched_t sched;
    hcrt__block_t *blocks[8];
    int nblocks;
    bool done;
    hcrt_status_t status;
    const char *name;
    uint64_t seq;
    size_t bytes;
    double start;
    struct hcrt_request *next;
    bool traced;              /* trace holds the call's record (HCRT_TRACE) */
    hcrt__coll_trace_t trace;
};

void hcrt__poll_relax(unsigned *spins)
{
    /* A few pause-spins (about 1 us) catch a peer that is slightly behind; after that yield the core at
     * every poll, since ranks (and other jobs) may outnumber the cores: a peer waiting for a core is
     * only ever helped by giving it ours, and sched_yield() returns at once when nobody waits. */
    if (++*spins < 16) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

hcrt_status_t hcrt__run_blocking(struct hcrt_comm *comm, hcrt__sched_t *s, const char *opname, uint64_t seq,
                                 size_t bytes)
{
    double start = comm->timeout > 0 ? hcrt__now() : 0, next_check = start + 0.5;
    unsigned spins = 0, polls = 0, naps = 0;
    for (;;) {
        bool done = false;
        HCRT_CHECK(hcrt__sched_progress(s, &done));
        if (done)
            return HCRT_OK;
        if (comm->active != NULL) {
            hcrt__progress_requests(comm);
        } else {
            /* Only device copies outstanding: sleep until one completes (a device copy is bounded by
             * the device, not by peers, so the deadline does not need to interrupt it). */
            hcrt_event_t *ev = hcrt__sched_only_events(s);
            if (ev != NULL) {
                HCRT_CHECK(hcrt_event_sync(ev));
                continue;
            }
        }
        if (hcrt__sched_waits_peer_event(s)) {
            /* A vendor collective runs on the device, or node peers are still folding (vendor-group
             * path): after some quick polls (tens of microseconds), nap (20 us, growing to 80 us),
             * leaving the cores to the device workers and the peers rather than yielding in a loop,
             * and keep the deadline. */
            if (++naps > 32) {
                struct timespec ts = {0, (long)(20000u << (naps < 35 ? naps - 33 : 2))};
                nanosleep(&ts, NULL);
                polls |= 31;
            }
        } else {
            naps = 0;
        }
        if ((++polls & 31) == 0 && comm->timeout > 0) {
            double now = hcrt__now();
            if (now - start > comm->timeout) {
                hcrt__deadline_expired(comm, opname, seq, bytes, now - start, -1);
            } else if (now > next_check) {
                hcrt__deadline_check_peers(comm, opname, seq);
                next_check = now + 0.25;
            }
        }
        hcrt__poll_relax(&spins);
    }
}

static void finish(hcrt_request_t *r, hcrt_status_t status)
{
    r->done = true;
    r->status = status;
    if (r->traced)
        hcrt__coll_trace_end(r->comm, &r->trace, status);
    for (int i = 0; i < r->nblocks; i++)
        hcrt__pool_put(r->blocks[i]);
    r->nblocks = 0;
    hcrt__stage_put(r->sched.stage);
    hcrt__sched_fini(&r->sched);
}

static void progress_one(hcrt_request_t *r)
{
    if (r->done)
        return;
    bool done = false;
    hcrt_status_t status = hcrt__sched_progress(&r->sched, &done);
    if (status != HCRT_OK || done)
        finish(r, status);
}

void hcrt__progress_requests(struct hcrt_comm *comm)
{
    for (hcrt_request_t *r = comm->active; r != NULL; r = r->next)
        progress_one(r);
}

void hcrt__wait_flags(struct hcrt_comm *comm, int flag, uint64_t value, const char *opname, uint64_t seq,
                      size_t bytes)
{
    double start = 0, next_check = 0;
    unsigned spins = 0, polls = 0;
    while (!hcrt__shm_ready(comm, flag, value, 0, 0)) {
        if (comm->active != NULL)
            hcrt__progress_requests(comm);
        /* The clock is read only once the wait is long enough to matter. */
        if ((++polls & 255) == 0 && comm->timeout > 0) {
            double now = hcrt__now();
            if (start == 0) {
                start = now;
                next_check = now + 0.5;
            } else if (now - start > comm->timeout) {
                hcrt__deadline_expired(comm, opname, seq, bytes, now - start, -1);
            } else if (now > next_check) {
                hcrt__deadline_check_peers(comm, opname, seq);
                next_check = now + 0.25;
            }
        }
        hcrt__poll_relax(&spins);
    }
}

hcrt_status_t hcrt__request_start(struct hcrt_comm *comm, hcrt__sched_t *s, hcrt__block_t **blocks, int nblocks,
                                  const char *name, uint64_t seq, size_t bytes, hcrt_request_t **req)
{
    hcrt_request_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        for (int i = 0; i < nblocks; i++)
            hcrt__pool_put(blocks[i]);
        hcrt__stage_put(s->stage);
        hcrt__sched_fini(s);
        return hcrt__error(comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for a request");
    }
    r->comm = comm;
    r->sched = *s; /* the request owns the schedule from here on */
    memcpy(r->blocks, blocks, (size_t)nblocks * sizeof(*blocks));
    r->nblocks = nblocks;
    r->name = name;
    r->seq = seq;
    r->bytes = bytes;
    r->start = hcrt__now();
    hcrt_request_t **tail = &comm->active;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = r;
    progress_one(r);
    *req = r;
    return HCRT_OK;
}

void hcrt__request_trace(hcrt_request_t *req, const hcrt__coll_trace_t *t)
{
    if (req->done) {
        hcrt__coll_trace_end(req->comm, t, req->status);
        return;
    }
    req->trace = *t;
    req->traced = true;
}

static void check_deadline(hcrt_request_t *r)
{
    struct hcrt_comm *c = r->comm;
    if (!r->done && c->timeout > 0) {
        double waited = hcrt__now() - r->start;
        if (waited > c->timeout)
            hcrt__deadline_expired(c, r->name, r->seq, r->bytes, waited, -1);
    }
}

hcrt_status_t hcrt_request_test(hcrt_request_t *req, bool *done)
{
    HCRT_CHECK_ARG(NULL, req != NULL, "req", "is NULL");
    HCRT_CHECK_ARG(req->comm->ctx, done != NULL, "done", "is NULL");
    hcrt__progress_requests(req->comm);
    check_deadline(req);
    *done = req->done;
    if (req->done && req->status != HCRT_OK)
        return req->status;
    return HCRT_OK;
}

hcrt_status_t hcrt_request_wait(hcrt_request_t *req)
{
    HCRT_CHECK_ARG(NULL, req != NULL, "req", "is NULL");
    unsigned spins = 0, polls = 0;
    while (!req->done) {
        hcrt__progress_requests(req->comm);
        if (req->done)
            break;
        if ((++polls & 31) == 0)
            check_deadline(req);
        hcrt__poll_relax(&spins);
    }
    return req->status;
}

hcrt_status_t hcrt_request_free(hcrt_request_t *req)
{
    if (req == NULL)
        return HCRT_OK;
    hcrt_status_t status = req->done ? HCRT_OK : hcrt_request_wait(req);
    hcrt_request_t **p = &req->comm->active;
    while (*p != NULL && *p != req)
        p = &(*p)->next;
    if (*p == req)
        *p = req->next;
    free(req);
    return status;
}
