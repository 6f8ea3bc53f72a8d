/*
 * tests/unit/host_compute_portable.c - a second copy of kernels/host_compute.c built for baseline x86-64
 * only (-DHCRT_NO_CLONES, no target clones: SSE2, fmaf() through libm, rintf/sqrtf as the C library and
 * SSE2 do them), with its functions renamed portable_*. test_host_compute.c compares it bit for bit with
 * the library's copy, which runs the x86-64-v4 (or v3) clones on a CPU that has them: the proof that
 * every vector path gives the portable path's bits.
 */
#define hcrt__host_expf          portable_expf
#define hcrt__host_logf          portable_logf
#define hcrt__host_bias_add      portable_bias_add
#define hcrt__host_relu          portable_relu
#define hcrt__host_relu_backward portable_relu_backward
#define hcrt__host_softmax_xent  portable_softmax_xent
#define hcrt__host_col_sum       portable_col_sum
#define hcrt__host_optim_step    portable_optim_step
#define hcrt__host_cast          portable_cast
#define hcrt__host_gemm          portable_gemm_unused
#define hcrt__gemm_isa_best      portable_isa_best_unused
#define hcrt__gemm_isa_force     portable_isa_force_unused

#include "kernels/host_compute.c"
