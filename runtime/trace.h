/*
 * runtime/trace.h - the timeline (HCRT_TRACE=FILE): Chrome trace events from every part of libhcrt.
 *
 * When HCRT_TRACE is set (rank 0's value rules, broadcast at hcrt_init), each rank appends its events to
 * FILE.rank-N as they happen, one write(2) per event, in Chrome's "JSON array" form (an opening '[' and
 * events each followed by ",\n": chrome://tracing and Perfetto read it even without the closing bracket,
 * so a killed rank's part stays readable). hcrt_finalize gathers every part to rank 0, which writes FILE
 * as one JSON document and removes the parts. pid is the rank; tid is one of the lanes below, so that
 * the viewer shows a row per activity. Timestamps are microseconds of CLOCK_REALTIME since rank 0's
 * hcrt_init (the same clock on every rank of a node; NTP-aligned across nodes).
 *
 * Cost when off: callers test hcrt__trace_on(ctx), one load and a predictable branch, and only then
 * read a clock or format anything.
 */
#ifndef HCRT_RUNTIME_TRACE_H
#define HCRT_RUNTIME_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/internal.h"

/* Rows (tid) of a rank in the viewer. */
typedef enum hcrt__trace_lane {
    HCRT__LANE_APP = 1,     /* the application's own events (hcrt_trace_complete): compute per micro-batch */
    HCRT__LANE_COLL = 2,    /* every collective */
    HCRT__LANE_CKPT = 3,    /* checkpoint phases on the application thread: snapshot, agree/commit, restore */
    HCRT__LANE_CKPT_IO = 4, /* checkpoint persistence on the writer thread */
    HCRT__LANE_BALANCE = 5, /* balancer decisions and exact-mode reductions */
    HCRT__LANE_COUNT = 6
} hcrt__trace_lane_t;

/* Whether ctx traces. The only cost of tracing when it is off. */
static inline bool hcrt__trace_on(const hcrt_context_t *ctx)
{
    return __builtin_expect(ctx != NULL && ctx->trace != NULL, 0);
}

/* Seconds on the trace clock (CLOCK_REALTIME). */
double hcrt__trace_clock(void);

/*
 * Opens this rank's part when rank 0 has HCRT_TRACE set. Collective over the context's world (one
 * broadcast of rank 0's path and clock origin) whether or not tracing is on. HCRT_ERR_IO when the part
 * cannot be created (the message names it).
 */
hcrt_status_t hcrt__trace_init(hcrt_context_t *ctx);

/* Merges every rank's part into FILE on rank 0 and removes the parts; collective when tracing is on.
 * Failures are logged, never returned: a trace never fails a job's end. */
void hcrt__trace_fini(hcrt_context_t *ctx);

/*
 * Appends one event. ph 'X' (complete: start and dur in seconds of hcrt__trace_clock) or 'i' (instant at
 * start; dur ignored). name and cat are escaped here. args_fmt, when not NULL, is a printf format that
 * produces the members of the args object (`"bytes":%zu,"algo":"%s"`); string values must be safe JSON
 * (use hcrt__trace_escape for anything not hcrt's own). Thread-safe. Does nothing when tracing is off.
 */
void hcrt__trace_event(const hcrt_context_t *ctx, int lane, char ph, const char *name, const char *cat, double start,
                       double dur, const char *args_fmt, ...) __attribute__((format(printf, 8, 9)));

/* Appends a complete event whose args are the given JSON object text (already validated), or none. */
void hcrt__trace_event_json(const hcrt_context_t *ctx, int lane, char ph, const char *name, const char *cat,
                            double start, double dur, const char *args_object);

/* Writes `s` as the inside of a JSON string (no quotes) into buf (always NUL-terminated, truncated to
 * cap). Returns buf. */
const char *hcrt__trace_escape(const char *s, char *buf, size_t cap);

#endif /* HCRT_RUNTIME_TRACE_H */
