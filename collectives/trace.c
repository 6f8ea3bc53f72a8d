/*
 * collectives/trace.c - one complete event per collective on the timeline (HCRT_TRACE).
 *
 * ops.c fills the record when a call returns (blocking calls) and progress.c writes it when a request
 * completes (nonblocking ones), so the event spans the whole operation as the caller saw it. Only called
 * when the context traces.
 */
#include <stdio.h>

#include "collectives/coll.h"
#include "runtime/trace.h"

void hcrt__coll_trace_begin(struct hcrt_comm *comm, const hcrt__args_t *a, const char *name, size_t bytes, double start,
                            hcrt__coll_trace_t *t)
{
    t->name = name;
    t->algo = hcrt__algo_label(comm, a);
    t->seq = comm->seq;
    t->bytes = bytes;
    t->coll = a->coll;
    t->dtype = a->dtype;
    t->op = a->op;
    t->backend = a->device != NULL ? hcrt_device_backend(a->device) : "host";
    t->blocking = a->blocking;
    t->start = start;
}

void hcrt__coll_trace_end(struct hcrt_comm *comm, const hcrt__coll_trace_t *t, hcrt_status_t status)
{
    bool reduces =
        t->coll == HCRT__COLL_ALLREDUCE || t->coll == HCRT__COLL_REDUCE || t->coll == HCRT__COLL_REDUCE_SCATTER;
    char op[40] = "";
    if (reduces)
        snprintf(op, sizeof(op), ",\"op\":\"%s\"", hcrt_op_name(t->op) ? hcrt_op_name(t->op) : "?");
    hcrt__trace_event(comm->ctx, HCRT__LANE_COLL, 'X', t->name, "coll", t->start, hcrt__trace_clock() - t->start,
                      "\"seq\":%llu,\"bytes\":%zu,\"algorithm\":\"%s\",\"dtype\":\"%s\"%s,\"buffers\":\"%s\","
                      "\"ranks\":%d,\"blocking\":%s,\"status\":\"%s\"",
                      (unsigned long long)t->seq, t->bytes, t->algo,
                      hcrt_dtype_name(t->dtype) ? hcrt_dtype_name(t->dtype) : "?", op, t->backend, comm->size,
                      t->blocking ? "true" : "false", hcrt_status_name(status));
}
