/*
 * backends/sim/sim_compute.c - the sim backend's compute extension: the table the host-run backends share
 * (backends/common/hostcomp.c, the very code and host kernels the cpu backend runs, so sim and cpu give the
 * same bits), launched as sim kernels: every operand is checked against the device's live allocations and
 * translated to its storage, the fault gate counts the op, and the speed factor stretches it like any
 * other kernel (sim_kernel_launch in sim.c).
 */
#include "backends/sim/sim.h"

_Static_assert(sizeof(hcrt__hc_op_t) <= SIM_KERNEL_ARG_MAX, "an op fits the argument sim_kernel_launch carries");

static hcrt_status_t sim_hc_submit(void *state, int dev, hcrt__hc_op_t *op, hcrt_backend_stream_t *stream)
{
    return sim_kernel_launch(state, dev, op->what, op->ptr, op->bytes, op->name, op->noperands, hcrt__hc_exec, op,
                             sizeof(*op), stream);
}

const hcrt__hc_host_t sim_compute_host = {sim_hc_submit, sim_kernel_fail};
