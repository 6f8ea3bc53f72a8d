/*
 * hcrt/trace.h - the application's own events on hcrt's timeline (HCRT_TRACE=FILE).
 *
 * With HCRT_TRACE=FILE (rank 0's value is used by every rank) hcrt records, per rank, every collective
 * (name, bytes, algorithm, sequence number), the checkpoint phases (snapshot, persist, agree/commit,
 * restore), the balancer's decisions and the exact-mode reductions, and writes them at hcrt_finalize()
 * as one Chrome trace JSON document that chrome://tracing and https://ui.perfetto.dev open: one process
 * row per rank (named with its host and device), one thread row per activity. While the job runs each
 * rank appends to FILE.rank-N; a job killed before hcrt_finalize leaves those parts, each readable by the
 * viewers as it is, and tools/scripts/trace-merge.py FILE merges them.
 *
 * The calls here add the application's events to the "application" row of its rank: typically compute
 * per micro-batch, timed by device events, so that the timeline shows where each rank's step goes. When
 * tracing is off they check their arguments (args_json included, so a bad call fails alike in traced and
 * untraced runs) and return HCRT_OK: instrumented code needs no condition of its own
 * (hcrt_trace_enabled() lets it skip building costly arguments).
 *
 * Timestamps are seconds of hcrt_trace_clock(), the clock of every other event of the trace (wall-clock
 * time: the same on the ranks of a node, NTP-aligned across nodes). Thread-safe.
 */
#ifndef HCRT_TRACE_H
#define HCRT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hcrt_context;

/* Whether `ctx` records a trace (HCRT_TRACE set on rank 0). false for NULL. */
HCRT_EXPORT bool hcrt_trace_enabled(const struct hcrt_context *ctx);

/* Seconds on the trace's clock, for the start of hcrt_trace_complete(). */
HCRT_EXPORT double hcrt_trace_clock(void);

/*
 * Records a complete event of `duration` seconds (>= 0, finite) that began at `start` (a value of
 * hcrt_trace_clock()) on this rank's application row. `name` (1..255 bytes) and `category` (1..63
 * bytes, e.g. "compute") are shown by the viewer; `args_json` is NULL or the text of a JSON object
 * ("{\"micro_batch\": 3, \"samples\": 64}", at most 64 KiB) shown with the event. The strings are copied.
 * Errors: HCRT_ERR_INVALID_ARG naming the argument (NULL ctx, empty or long name or category, a negative
 * or non-finite start or duration, args_json that is not a JSON object).
 */
HCRT_EXPORT hcrt_status_t hcrt_trace_complete(struct hcrt_context *ctx, const char *name, const char *category,
                                              double start, double duration, const char *args_json);

/* Records an instant event (a mark at the current time) on the application row; arguments as above. */
HCRT_EXPORT hcrt_status_t hcrt_trace_instant(struct hcrt_context *ctx, const char *name, const char *category,
                                             const char *args_json);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_TRACE_H */
