/*
 * backends/hip/hip_table.c - the hip plugin's exported table (hcrt/backend.h, ABI v1).
 *
 * The ops are the shared GPU implementation (backends/gpu/gpu_*.c) built against the HIP runtime. The
 * vendor collective entries are RCCL's, loaded when first needed (gpu_ccl.c; Debian has no RCCL, ROCm
 * installs ship it): without the library the runtime stages hip buffers through its own paths.
 */
#include "gpu_plugin.h"

HCRT_BACKEND_EXPORT const hcrt_backend_v1_t hcrt_backend_v1 = {
    .struct_size = sizeof(hcrt_backend_v1_t),
    .abi_version = HCRT_BACKEND_ABI_VERSION,
    .name = "hip",
    .init = hcrt_gpu_init,
    .finalize = hcrt_gpu_finalize,
    .last_error = hcrt_gpu_last_error,
    .device_count = hcrt_gpu_device_count,
    .device_props = hcrt_gpu_device_props,
    .health = hcrt_gpu_health,
    .mem_alloc = hcrt_gpu_mem_alloc,
    .mem_free = hcrt_gpu_mem_free,
    .host_alloc = hcrt_gpu_host_alloc,
    .host_free = hcrt_gpu_host_free,
    .memset = hcrt_gpu_memset,
    .memcpy = hcrt_gpu_memcpy,
    .memcpy_peer = hcrt_gpu_memcpy_peer,
    .stream_create = hcrt_gpu_stream_create,
    .stream_destroy = hcrt_gpu_stream_destroy,
    .stream_sync = hcrt_gpu_stream_sync,
    .event_create = hcrt_gpu_event_create,
    .event_destroy = hcrt_gpu_event_destroy,
    .event_record = hcrt_gpu_event_record,
    .event_sync = hcrt_gpu_event_sync,
    .event_query = hcrt_gpu_event_query,
    .event_elapsed = hcrt_gpu_event_elapsed,
    .reduce = hcrt_gpu_reduce,
    .scale = hcrt_gpu_scale,
    HCRT_GPU_COLL_OPS,
    .host_register = hcrt_gpu_host_register,
    .host_unregister = hcrt_gpu_host_unregister,
    .reduce3 = hcrt_gpu_reduce3,
    .compute = &hcrt_gpu_compute_table,
};
