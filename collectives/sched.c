/*
 * collectives/sched.c - schedules: rounds of steps, built once per call and advanced without blocking.
 *
 * Building appends steps to the last round and closes rounds; progress starts a round's steps in order
 * (local ones run there and then, pollable ones are posted) and tests the pollable ones until all have
 * completed, then moves to the next round. See coll.h for the step kinds.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/host_kernels.h"
#include "collectives/coll.h"
#include "runtime/fault/fault.h"

void hcrt__sched_init(hcrt__sched_t *s, struct hcrt_comm *comm, hcrt_dtype_t dtype, hcrt_op_t op, int tag)
{
    memset(s, 0, sizeof(*s));
    s->comm = comm;
    s->dtype = dtype;
    s->op = op;
    s->tag = tag;
    s->fault_kind = HCRT__FAULT_NONE;
}

void hcrt__sched_fini(hcrt__sched_t *s)
{
    free(s->steps);
    free(s->round_end);
    free(s->reqs);
    free(s->pending);
    for (size_t i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    free(s->owned);
    memset(s, 0, sizeof(*s));
}

void hcrt__sched_reuse(hcrt__sched_t *s, hcrt_dtype_t dtype, hcrt_op_t op, int tag)
{
    s->fault_kind = HCRT__FAULT_NONE;
    for (size_t i = 0; i < s->nowned; i++)
        free(s->owned[i]);
    s->nowned = 0;
    s->nsteps = s->nrounds = s->round = 0;
    s->started = false;
    s->stage = NULL;
    s->stream_out = s->sync_copies = false;
    s->status = HCRT_OK;
    s->dtype = dtype;
    s->op = op;
    s->tag = tag;
}

hcrt_status_t hcrt__sched_own(hcrt__sched_t *s, void *p)
{
    if (s->nowned == s->owncap) {
        size_t cap = s->owncap ? 2 * s->owncap : 8;
        void **q = realloc(s->owned, cap * sizeof(*q));
        if (q == NULL) {
            free(p);
            return hcrt__error(s->comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for a schedule");
        }
        s->owned = q;
        s->owncap = cap;
    }
    s->owned[s->nowned++] = p;
    return HCRT_OK;
}

hcrt_status_t hcrt__sched_add(hcrt__sched_t *s, const hcrt__step_t *step)
{
    if (s->nsteps == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        hcrt__step_t *p = realloc(s->steps, cap * sizeof(*p));
        if (p == NULL)
            return hcrt__error(s->comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for a schedule");
        s->steps = p;
        s->cap = cap;
    }
    s->steps[s->nsteps++] = *step;
    return HCRT_OK;
}

hcrt_status_t hcrt__sched_round(hcrt__sched_t *s)
{
    size_t begin = s->nrounds ? s->round_end[s->nrounds - 1] : 0;
    if (s->nsteps == begin)
        return HCRT_OK;
    if (s->nrounds == s->rcap) {
        size_t cap = s->rcap ? 2 * s->rcap : 8;
        size_t *p = realloc(s->round_end, cap * sizeof(*p));
        if (p == NULL)
            return hcrt__error(s->comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for a schedule");
        s->round_end = p;
        s->rcap = cap;
    }
    s->round_end[s->nrounds++] = s->nsteps;
    return HCRT_OK;
}

hcrt_status_t hcrt__sched_send(hcrt__sched_t *s, MPI_Comm mpi, int peer, const void *buf, size_t bytes)
{
    /* Each message is at most one segment (HCRT_CHUNK_SIZE <= 1 GiB), so it fits MPI's int count; larger
     * blocks (allgather) are cut here. */
    const size_t max = (size_t)1 << 30;
    do {
        size_t n = bytes < max ? bytes : max;
        hcrt__step_t st = {.kind = HCRT__STEP_SEND, .mpi = mpi, .peer = peer, .src = buf, .bytes = n};
        HCRT_CHECK(hcrt__sched_add(s, &st));
        buf = (const unsigned char *)buf + n;
        bytes -= n;
    } while (bytes > 0);
    return HCRT_OK;
}

hcrt_status_t hcrt__sched_recv(hcrt__sched_t *s, MPI_Comm mpi, int peer, void *buf, size_t bytes)
{
    const size_t max = (size_t)1 << 30;
    do {
        size_t n = bytes < max ? bytes : max;
        hcrt__step_t st = {.kind = HCRT__STEP_RECV, .mpi = mpi, .peer = peer, .dst = buf, .bytes = n};
        HCRT_CHECK(hcrt__sched_add(s, &st));
        buf = (unsigned char *)buf + n;
        bytes -= n;
    } while (bytes > 0);
    return HCRT_OK;
}

hcrt_status_t hcrt__sched_copy(hcrt__sched_t *s, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0 || dst == src)
        return HCRT_OK;
    hcrt__step_t st = {.kind = HCRT__STEP_COPY, .dst = dst, .src = src, .bytes = bytes};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_copy_out(hcrt__sched_t *s, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0 || dst == src)
        return HCRT_OK;
    hcrt__step_t st = {.kind = HCRT__STEP_COPY, .dst = dst, .src = src, .bytes = bytes, .value = 1};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_reduce3(hcrt__sched_t *s, void *dst, const void *a, const void *b, size_t count)
{
    if (count == 0)
        return HCRT_OK;
    hcrt__step_t st = {.kind = HCRT__STEP_REDUCE3, .dst = dst, .src = a, .src2 = b, .bytes = count};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_scale(hcrt__sched_t *s, void *buf, size_t count, double factor)
{
    if (count == 0)
        return HCRT_OK;
    hcrt__step_t st = {.kind = HCRT__STEP_SCALE, .dst = buf, .bytes = count, .factor = factor};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_mpi(hcrt__sched_t *s, hcrt__start_mpi_fn fn, void *arg)
{
    hcrt__step_t st = {.kind = HCRT__STEP_MPI, .start_mpi = fn, .arg = arg};
    return hcrt__sched_add(s, &st);
}

static bool is_mpi_step(hcrt__step_kind_t k)
{
    return k == HCRT__STEP_SEND || k == HCRT__STEP_RECV || k == HCRT__STEP_MPI;
}

static hcrt_status_t mpi_failed(hcrt__sched_t *s, const char *what, int rc)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return hcrt__error(s->comm->ctx, HCRT_ERR_MPI, "collectives: %s failed on rank %d: %s", what,
                       s->comm->rank, text);
}

/* Starts step i of the current round (index j within it). */
static hcrt_status_t start_step(hcrt__sched_t *s, hcrt__step_t *st, size_t j)
{
    hcrt_context_t *ctx = s->comm->ctx;
    int rc;
    s->reqs[j] = MPI_REQUEST_NULL;
    s->pending[j] = false;
    switch (st->kind) {
    case HCRT__STEP_SEND:
        rc = MPI_Isend(st->src, (int)st->bytes, MPI_BYTE, st->peer, s->tag, st->mpi, &s->reqs[j]);
        if (rc != MPI_SUCCESS)
            return mpi_failed(s, "MPI_Isend", rc);
        s->pending[j] = true;
        break;
    case HCRT__STEP_RECV:
        rc = MPI_Irecv(st->dst, (int)st->bytes, MPI_BYTE, st->peer, s->tag, st->mpi, &s->reqs[j]);
        if (rc != MPI_SUCCESS)
            return mpi_failed(s, "MPI_Irecv", rc);
        s->pending[j] = true;
        break;
    case HCRT__STEP_MPI:
        rc = st->start_mpi(s, st->arg, &s->reqs[j]);
        if (rc != MPI_SUCCESS)
            return mpi_failed(s, "a nonblocking MPI collective", rc);
        s->pending[j] = true;
        break;
    case HCRT__STEP_COPY:
        if (st->value)
            hcrt__copy_stream(st->dst, st->src, st->bytes);
        else
            memcpy(st->dst, st->src, st->bytes);
        break;
    case HCRT__STEP_REDUCE3: {
        hcrt_status_t status = hcrt__host_reduce3(st->dst, st->src, st->src2, st->bytes, s->dtype, s->op);
        if (status != HCRT_OK)
            return hcrt__error(ctx, status, "collectives: host reduction failed");
        break;
    }
    case HCRT__STEP_SCALE: {
        hcrt_status_t status = hcrt__host_scale(st->dst, st->bytes, s->dtype, st->factor);
        if (status != HCRT_OK)
            return hcrt__error(ctx, status, "collectives: host scale failed");
        break;
    }
    case HCRT__STEP_SHM_POST:
        atomic_store_explicit(&s->comm->shm.ctl[s->comm->node_rank]->flag[st->flag], st->value,
                              memory_order_release);
        break;
    case HCRT__STEP_SHM_WAIT:
        s->pending[j] = !hcrt__shm_ready(s->comm, st->flag, st->value, st->peer, (int)st->bytes);
        break;
    case HCRT__STEP_DCOPY: {
        hcrt__stage_t *stg = s->stage;
        hcrt_device_t *host = NULL;
        HCRT_CHECK(hcrt_device_host(ctx, &host));
        if (st->peer) { /* small: synchronous, no handoff to the stream's worker */
            if (st->value)
                HCRT_CHECK(hcrt_memcpy(stg->device, st->dst, host, st->src, st->bytes));
            else
                HCRT_CHECK(hcrt_memcpy(host, st->dst, stg->device, st->src, st->bytes));
            break;
        }
        if (st->value == 2) { /* D2D, recording nothing */
            HCRT_CHECK(hcrt_memcpy_async(stg->device, st->dst, stg->device, st->src, st->bytes, stg->stream));
            break;
        }
        if (st->value) /* H2D */
            HCRT_CHECK(hcrt_memcpy_async(stg->device, st->dst, host, st->src, st->bytes, stg->stream));
        else
            HCRT_CHECK(hcrt_memcpy_async(host, st->dst, stg->device, st->src, st->bytes, stg->stream));
        HCRT_CHECK(hcrt_event_record(stg->ev[st->flag], stg->stream));
        break;
    }
    case HCRT__STEP_EVENT:
        s->pending[j] = true;
        break;
    case HCRT__STEP_DKERNEL: {
        hcrt__stage_t *stg = s->stage;
        if (st->value == 0)
            HCRT_CHECK(hcrt_reduce3(stg->device, st->dst, st->src, st->src2, st->bytes, s->dtype, s->op, stg->stream));
        else
            HCRT_CHECK(hcrt_scale(stg->device, st->dst, st->bytes, s->dtype, st->factor, stg->stream));
        break;
    }
    case HCRT__STEP_RECORD:
        HCRT_CHECK(hcrt_event_record(s->stage->ev[st->flag], s->stage->stream));
        break;
    case HCRT__STEP_VCOLL:
        HCRT_CHECK(hcrt__vendor_enqueue(s, st));
        break;
    case HCRT__STEP_FLAG_POST:
        atomic_store_explicit((_Atomic uint64_t *)st->dst, st->value, memory_order_release);
        break;
    case HCRT__STEP_FLAG_WAIT:
        s->pending[j] = atomic_load_explicit((_Atomic uint64_t *)st->src, memory_order_acquire) < st->value;
        break;
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__sched_inject(hcrt__sched_t *s)
{
    hcrt_context_t *ctx = s->comm->ctx;
    if (s->fault_kind == HCRT__FAULT_DEVICE_LOST) {
        hcrt_device_t *dev = s->fault_dev ? s->fault_dev : ctx->selected;
        hcrt__device_lose(dev, "injected by HCRT_FAULT device_lost at a collective");
        return hcrt_device_check_health(dev);
    }
    return hcrt__error(ctx, HCRT_ERR_MPI, "injected error in round %zu of %zu on rank %d (HCRT_FAULT)", s->round + 1,
                       s->nrounds, s->comm->rank);
}

void hcrt__sched_abandon(hcrt__sched_t *s)
{
    if (!s->started || s->round >= s->nrounds || s->reqs == NULL)
        return;
    size_t b = s->round ? s->round_end[s->round - 1] : 0, n = s->round_end[s->round] - b;
    for (size_t j = 0; j < n; j++) {
        if (!is_mpi_step(s->steps[b + j].kind) || s->reqs[j] == MPI_REQUEST_NULL)
            continue;
        /* A receive nobody matched yet is withdrawn; whatever MPI still does is buried with it. */
        if (s->steps[b + j].kind == HCRT__STEP_RECV)
            MPI_Cancel(&s->reqs[j]);
        hcrt__comm_bury(s->comm, &s->reqs[j]);
    }
}

hcrt_status_t hcrt__sched_progress(hcrt__sched_t *s, bool *done)
{
    if (s->status != HCRT_OK)
        return s->status;
    while (s->round < s->nrounds) {
        size_t b = s->round ? s->round_end[s->round - 1] : 0, e = s->round_end[s->round], n = e - b;
        if (!s->started) {
            if (n > s->reqcap) {
                MPI_Request *r = realloc(s->reqs, n * sizeof(*r));
                if (r == NULL)
                    return s->status = hcrt__error(s->comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory");
                s->reqs = r;
                s->reqcap = n;
            }
            if (n > s->pendcap) {
                bool *p = realloc(s->pending, n * sizeof(*p));
                if (p == NULL)
                    return s->status = hcrt__error(s->comm->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory");
                s->pending = p;
                s->pendcap = n;
            }
            for (size_t j = 0; j < n; j++) {
                s->reqs[j] = MPI_REQUEST_NULL;
                s->pending[j] = false;
            }
            s->started = true;
            if (s->fault_kind != HCRT__FAULT_NONE && s->round == s->fault_round)
                return s->status = hcrt__sched_inject(s);
            for (size_t j = 0; j < n; j++) {
                hcrt_status_t status = start_step(s, &s->steps[b + j], j);
                if (status != HCRT_OK) {
                    /* The steps started so far of this round are abandoned with the operation
                     * (hcrt__sched_abandon): the error is fatal for it and poisons the communicator. */
                    return s->status = status;
                }
            }
        }
        bool all = true, any_mpi = false;
        for (size_t j = 0; j < n; j++) {
            if (!s->pending[j])
                continue;
            hcrt__step_t *st = &s->steps[b + j];
            if (is_mpi_step(st->kind)) {
                any_mpi = true;
            } else if (st->kind == HCRT__STEP_SHM_WAIT) {
                s->pending[j] = !hcrt__shm_ready(s->comm, st->flag, st->value, st->peer, (int)st->bytes);
            } else if (st->kind == HCRT__STEP_FLAG_WAIT) {
                s->pending[j] = atomic_load_explicit((_Atomic uint64_t *)st->src, memory_order_acquire) < st->value;
            } else if (st->kind == HCRT__STEP_EVENT) {
                bool ev_done = false;
                hcrt_status_t status = hcrt_event_query(s->stage->ev[st->flag], &ev_done);
                /* A query only says the point was reached; the sync (immediate then) returns the
                 * error of an asynchronous copy or kernel that failed before it. */
                if (status == HCRT_OK && ev_done)
                    status = hcrt_event_sync(s->stage->ev[st->flag]);
                if (status != HCRT_OK)
                    return s->status = status;
                s->pending[j] = !ev_done;
            }
            if (s->pending[j] && !is_mpi_step(st->kind))
                all = false;
        }
        if (any_mpi) {
            int flag = 0;
            int rc = MPI_Testall((int)n, s->reqs, &flag, MPI_STATUSES_IGNORE);
            if (rc != MPI_SUCCESS)
                return s->status = mpi_failed(s, "MPI_Testall", rc);
            if (flag) {
                for (size_t j = 0; j < n; j++)
                    if (is_mpi_step(s->steps[b + j].kind))
                        s->pending[j] = false;
            } else {
                all = false;
            }
        }
        if (!all) {
            *done = false;
            return HCRT_OK;
        }
        s->round++;
        s->started = false;
    }
    *done = true;
    return HCRT_OK;
}

hcrt_event_t *hcrt__sched_only_events(const hcrt__sched_t *s)
{
    if (s->round >= s->nrounds || !s->started)
        return NULL;
    size_t b = s->round ? s->round_end[s->round - 1] : 0, e = s->round_end[s->round];
    hcrt_event_t *ev = NULL;
    for (size_t j = 0; j < e - b; j++) {
        if (!s->pending[j])
            continue;
        if (s->steps[b + j].kind != HCRT__STEP_EVENT || s->steps[b + j].value == 1)
            return NULL; /* an event that waits for peers is polled under the deadline */
        if (ev == NULL)
            ev = s->stage->ev[s->steps[b + j].flag];
    }
    return ev;
}

bool hcrt__sched_waits_peer_event(const hcrt__sched_t *s)
{
    if (s->round >= s->nrounds || !s->started)
        return false;
    size_t b = s->round ? s->round_end[s->round - 1] : 0, e = s->round_end[s->round];
    bool peer = false;
    for (size_t j = 0; j < e - b; j++) {
        if (!s->pending[j])
            continue;
        if (s->steps[b + j].kind == HCRT__STEP_FLAG_WAIT)
            peer = true;
        else if (s->steps[b + j].kind == HCRT__STEP_EVENT)
            peer |= s->steps[b + j].value == 1;
        else
            return false;
    }
    return peer;
}

bool hcrt__sched_waits_vendor(const hcrt__sched_t *s)
{
    if (s->round >= s->nrounds || !s->started)
        return false;
    size_t b = s->round ? s->round_end[s->round - 1] : 0, e = s->round_end[s->round];
    for (size_t j = 0; j < e - b; j++)
        if (s->pending[j] && s->steps[b + j].kind == HCRT__STEP_EVENT && s->steps[b + j].value == 1)
            return true;
    return false;
}

hcrt_status_t hcrt__sched_flag_post(hcrt__sched_t *s, _Atomic uint64_t *flag, uint64_t value)
{
    hcrt__step_t st = {.kind = HCRT__STEP_FLAG_POST, .dst = (void *)flag, .value = value};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_flag_wait(hcrt__sched_t *s, _Atomic uint64_t *flag, uint64_t value)
{
    hcrt__step_t st = {.kind = HCRT__STEP_FLAG_WAIT, .src = (const void *)flag, .value = value};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_merge(hcrt__sched_t *dst, hcrt__sched_t *subs, size_t nsub, size_t offset)
{
    size_t total = 0;
    for (size_t k = 0; k < nsub; k++)
        if (subs[k].nrounds + k * offset > total)
            total = subs[k].nrounds + k * offset;
    HCRT_CHECK(hcrt__sched_round(dst));
    for (size_t t = 0; t < total; t++) {
        for (size_t k = 0; k < nsub; k++) {
            if (t < k * offset || t - k * offset >= subs[k].nrounds)
                continue;
            size_t r = t - k * offset;
            size_t b = r ? subs[k].round_end[r - 1] : 0, e = subs[k].round_end[r];
            for (size_t i = b; i < e; i++)
                HCRT_CHECK(hcrt__sched_add(dst, &subs[k].steps[i]));
        }
        HCRT_CHECK(hcrt__sched_round(dst));
    }
    return HCRT_OK;
}
