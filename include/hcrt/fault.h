/*
 * hcrt/fault.h - fault injection points for code outside the library (tests of failure handling).
 *
 * HCRT_FAULT (docs/fault-injection.md) injects failures at named sites: the library checks its own
 * (every collective, every checkpoint phase, restore, every hcrt_compute_* call); a training loop and
 * wrappers of other kernels check theirs with hcrt_fault_point(). Without HCRT_FAULT a point costs one
 * load.
 */
#ifndef HCRT_FAULT_H
#define HCRT_FAULT_H

#include <stdint.h>

#include "hcrt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hcrt_context;
struct hcrt_buffer;

/*
 * A fault injection point at `site` "train" (a training loop, once per step: name may be NULL, num the
 * step) or "compute" (a wrapper of a kernel outside hcrt/compute.h, whose own calls are points already:
 * name the kernel, num its call count on this rank). When an HCRT_FAULT rule matches (rank, site, name, num, HCRT_RUN_ATTEMPT, prob/seed):
 *   kill         SIGKILL this process (never returns), after a line "hcrt fault: rank R killed at ...";
 *   hang         sleep forever (the peers' deadlines end the job);
 *   slow         sleep the rule's secs, then return HCRT_OK;
 *   error        return HCRT_ERR_BACKEND ("injected error at train - 40 on rank 1 (HCRT_FAULT)");
 *   device_lost  mark buf->device (buf NULL: the context's device) lost: every later call on it fails
 *                with HCRT_ERR_DEVICE_LOST and its health says lost; returns HCRT_ERR_DEVICE_LOST
 *                naming the device, rank and host;
 *   corrupt      flip one bit (0x10 of the middle byte) of buf's memory, on any device, and return
 *                HCRT_OK (a warning and nothing else when buf is NULL).
 * Returns HCRT_OK when nothing matches. The caller treats an error like any failure of its step (under
 * the default exit policy: hcrt_abort(ctx, status, "training step N")). Errors: HCRT_ERR_INVALID_ARG
 * (ctx or site NULL, a site other than "train" or "compute", num negative, a malformed buf).
 * Thread-safe.
 */
HCRT_EXPORT hcrt_status_t hcrt_fault_point(struct hcrt_context *ctx, const char *site, const char *name, int64_t num,
                                           const struct hcrt_buffer *buf);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_FAULT_H */
