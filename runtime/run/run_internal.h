/*
 * runtime/run/run_internal.h - what the heartbeat, failure-record and stop files of the restart-loop
 * API (hcrt/run.h) share: where the files of this attempt go and what this rank's node is called.
 */
#ifndef HCRT_RUNTIME_RUN_INTERNAL_H
#define HCRT_RUNTIME_RUN_INTERNAL_H

#include <stddef.h>

#include "hcrt/run.h"
#include "runtime/internal.h"

/* HCRT_RUN_DIR/attempt-A into buf (A = HCRT_RUN_ATTEMPT), creating both directories when missing.
 * Returns HCRT_ERR_NOT_FOUND (nothing recorded) when HCRT_RUN_DIR is empty, HCRT_ERR_IO naming the
 * directory when it cannot be created. */
hcrt_status_t hcrt__run_attempt_dir(const hcrt_context_t *ctx, char *buf, size_t cap);

/* This rank's node name: the host name, or "HOST~K" for fake node K under HCRT_FAKE_NODES (the split
 * collectives/comm.c makes: node-local rank * fake / node-local size). */
void hcrt__run_node_name(const hcrt_context_t *ctx, char *buf, size_t cap);

/* Seconds since the Unix epoch, with microseconds: the clock hcrt-run and every rank share. */
double hcrt__run_wall_time(void);

#endif /* HCRT_RUNTIME_RUN_INTERNAL_H */
