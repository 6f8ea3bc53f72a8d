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
    hcrt__waiter_t w;
    hcrt__result_t result; /* where HCRT_FAULT corrupt flips a bit once the request completes */
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

/* A rank waiting only for its device's work under HCRT_ON_FAILURE=return, where it may not block in
 * hcrt_event_sync (see runtime/watchdog.c): it yields while the wait is short, then sleeps 50 us at a
 * time (a sleep costs at least the kernel's timer slack, about 50 us, too much for short copies). */
static void device_relax(double since)
{
    if (hcrt__now() - since < 1e-3) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 50 * 1000};
    nanosleep(&ts, NULL);
}

/* Blocks in the device's own wait for `ev`, under the watchdog's deadline (the default exit policy);
 * HCRT_ERR_NOT_SUPPORTED when the caller must poll instead. */
static hcrt_status_t device_block(struct hcrt_comm *comm, const hcrt__waiter_t *w, hcrt_event_t *ev)
{
    hcrt__watch_t watch;
    if (!hcrt__watch_arm(&watch, comm->ctx, w->dev, w->start, comm->timeout,
                         "%s #%llu (%zu bytes): the work queued on %s device %d (staging copies, kernels)", w->opname,
                         (unsigned long long)w->seq, w->bytes, w->dev->be->name, w->dev->index))
        return HCRT_ERR_NOT_SUPPORTED;
    hcrt_status_t st = hcrt_event_sync(ev);
    hcrt__watch_disarm(&watch);
    return st;
}

hcrt_status_t hcrt__run_blocking(struct hcrt_comm *comm, hcrt__sched_t *s, const char *opname, uint64_t seq,
                                 size_t bytes)
{
    hcrt__waiter_t w;
    unsigned spins = 0, polls = 0, naps = 0;
    double device_since = 0;
    hcrt__waiter_init(&w, opname, seq, bytes, -1, s->stage ? s->stage->device : NULL);
    for (;;) {
        bool done = false;
        HCRT_CHECK(hcrt__sched_progress(s, &done));
        if (done)
            return HCRT_OK;
        if (comm->active != NULL)
            hcrt__progress_requests(comm);
        /* Only device work outstanding: bounded by the device, which may be lost or hung, so it is
         * waited for under the deadline too, with the device's health polled. */
        bool device_only = comm->active == NULL && hcrt__sched_only_events(s) != NULL;
        w.device_only = device_only;
        if ((++polls & 31) == 0)
            HCRT_CHECK(hcrt__deadline_poll(comm, &w));
        if (device_only && w.dev != NULL) {
            hcrt_status_t st = device_block(comm, &w, hcrt__sched_only_events(s));
            if (st == HCRT_OK)
                continue; /* the next progress finds the event complete */
            if (st != HCRT_ERR_NOT_SUPPORTED)
                return st;
            if (device_since == 0)
                device_since = hcrt__now();
            device_relax(device_since);
        } else if (hcrt__sched_waits_peer_event(s)) {
            /* A vendor collective runs on the device, or node peers are still folding (vendor-group
             * path): after some quick polls (tens of microseconds), nap (20 us, growing to 80 us),
             * leaving the cores to the device workers and the peers rather than yielding in a loop,
             * and keep the deadline. */
            device_since = 0;
            if (++naps > 32) {
                struct timespec ts = {0, (long)(20000u << (naps < 35 ? naps - 33 : 2))};
                nanosleep(&ts, NULL);
                polls |= 31;
            } else {
                hcrt__poll_relax(&spins);
            }
        } else {
            device_since = naps = 0;
            hcrt__poll_relax(&spins);
        }
    }
}

/* Ends a request: its memory goes back to the pool, or, when it failed, out of circulation. */
static void finish(hcrt_request_t *r, hcrt_status_t status)
{
    r->done = true;
    r->status = status;
    if (r->traced)
        hcrt__coll_trace_end(r->comm, &r->trace, status);
    if (status != HCRT_OK) {
        hcrt__sched_abandon(&r->sched);
        for (int i = 0; i < r->nblocks; i++)
            hcrt__pool_quarantine(r->blocks[i]);
        hcrt__stage_quarantine(r->sched.stage);
    } else {
        for (int i = 0; i < r->nblocks; i++)
            hcrt__pool_put(r->blocks[i]);
        hcrt__stage_put(r->sched.stage);
    }
    r->nblocks = 0;
    hcrt__sched_fini(&r->sched);
}

static void progress_one(hcrt_request_t *r)
{
    if (r->done)
        return;
    bool done = false;
    hcrt_status_t status = hcrt__sched_progress(&r->sched, &done);
    if (status == HCRT_OK && done)
        status = hcrt__result_fault(r->comm, &r->result);
    if (status != HCRT_OK && r->comm->failed == HCRT_OK) {
        /* The first failure of the communicator: reported once, here (the policy may end the job). */
        finish(r, status);
        r->status = hcrt__comm_failed(r->comm, true, status, "%s #%llu (%zu bytes, nonblocking) failed: %s",
                                      r->w.opname, (unsigned long long)r->w.seq, r->w.bytes,
                                      hcrt_last_error(r->comm->ctx));
    } else if (status != HCRT_OK || done) {
        finish(r, status != HCRT_OK ? r->comm->failed : HCRT_OK);
    }
}

void hcrt__progress_requests(struct hcrt_comm *comm)
{
    for (hcrt_request_t *r = comm->active; r != NULL; r = r->next)
        progress_one(r);
}

void hcrt__requests_fail_all(struct hcrt_comm *comm)
{
    for (hcrt_request_t *r = comm->active; r != NULL; r = r->next)
        if (!r->done)
            finish(r, comm->failed);
}

hcrt_status_t hcrt__wait_flags(struct hcrt_comm *comm, int flag, uint64_t value, const char *opname, uint64_t seq,
                               size_t bytes)
{
    hcrt__waiter_t w;
    bool timing = false;
    unsigned spins = 0, polls = 0;
    while (!hcrt__shm_ready(comm, flag, value, 0, 0)) {
        if (comm->active != NULL)
            hcrt__progress_requests(comm);
        /* The clock is read only once the wait is long enough to matter. */
        if ((++polls & 255) == 0) {
            if (!timing) {
                hcrt__waiter_init(&w, opname, seq, bytes, -1, NULL);
                timing = true;
            } else {
                HCRT_CHECK(hcrt__deadline_poll(comm, &w));
            }
        }
        hcrt__poll_relax(&spins);
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__request_start(struct hcrt_comm *comm, hcrt__sched_t *s, hcrt__block_t **blocks, int nblocks,
                                  const char *name, uint64_t seq, size_t bytes, const hcrt__result_t *result,
                                  hcrt_request_t **req)
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
    r->result = *result;
    hcrt__waiter_init(&r->w, name, seq, bytes, -1, s->stage ? s->stage->device : NULL);
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

/* Polls the deadline of a request still running; a failure ends it (and poisons the communicator). */
static void check_deadline(hcrt_request_t *r)
{
    if (r->done)
        return;
    hcrt_status_t st = hcrt__deadline_poll(r->comm, &r->w);
    if (st != HCRT_OK && !r->done)
        finish(r, st);
}

hcrt_status_t hcrt_request_test(hcrt_request_t *req, bool *done)
{
    HCRT_CHECK_ARG(NULL, req != NULL, "req", "is NULL");
    HCRT_CHECK_ARG(req->comm->ctx, done != NULL, "done", "is NULL");
    hcrt__progress_requests(req->comm);
    check_deadline(req);
    *done = req->done;
    if (req->done && req->status != HCRT_OK)
        return hcrt__error(req->comm->ctx, req->status, "%s: the request failed: %s", __func__, req->comm->failed_msg);
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
    if (req->status != HCRT_OK)
        return hcrt__error(req->comm->ctx, req->status, "%s: the request failed: %s", __func__, req->comm->failed_msg);
    return HCRT_OK;
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
