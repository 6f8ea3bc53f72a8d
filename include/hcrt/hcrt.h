/*
 * hcrt/hcrt.h - public C API of the heterogeneous chip runtime.
 *
 * One context per process owns the loaded backend plugins, their devices, the configuration and the
 * logger. Device memory is opaque: hcrt never dereferences a device pointer itself, only the device's
 * backend does, so the same calls take host (cpu backend) and accelerator buffers alike.
 *
 * Conventions:
 *  - Every call returns hcrt_status_t (HCRT_OK or a negative code). Outputs come last and are written
 *    only on success. Detail of the most recent failure of a context is in hcrt_last_error(ctx).
 *  - Params structs start with `size_t struct_size`; initialise them with their *_init() function, set
 *    what you need, and pass them; the library reads only the fields that fit in struct_size.
 *  - Destroy/free functions accept NULL.
 *  - Where a call takes the device that memory lives on (hcrt_memcpy, hcrt_memcpy_async, hcrt_memset,
 *    the collectives of hcrt/comm.h, checkpoint buffers), device NULL means host memory, the same as the
 *    host device of hcrt_device_host(). Calls that act on a device (allocation, streams, events, kernels)
 *    need the device itself.
 *  - Memory hcrt allocated (hcrt_mem_alloc, hcrt_mem_alloc_host) is known to the context: a pointer into
 *    it passed with another device, or a count running past its end, is HCRT_ERR_INVALID_ARG naming the
 *    argument and the owning device or the allocation's size, before anything touches it. Memory from
 *    elsewhere (malloc, a framework's allocator) is taken as the caller says, and so is everything in a
 *    call whose devices are all NULL (there is no context to look in).
 *  - Thread safety: a context may be used from several threads; each call states what it serialises.
 *    hcrt_last_error() is per context and per thread.
 */
#ifndef HCRT_HCRT_H
#define HCRT_HCRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/status.h"
#include "hcrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------------ */
/* Versions                                                                                          */

#define HCRT_API_MAJOR 1
#define HCRT_API_MINOR 0
#define HCRT_API_PATCH 0
/* The version a caller compiled against, to pass in hcrt_context_params_t.api_version. */
#define HCRT_API_VERSION ((HCRT_API_MAJOR << 16) | HCRT_API_MINOR)

/* The library's own version, for comparing with the header the caller compiled against. Any pointer
 * may be NULL. */
HCRT_EXPORT void hcrt_version(int *major, int *minor, int *patch);

/* The library's HCRT_API_VERSION (for ctypes, which cannot read the macro). */
HCRT_EXPORT uint32_t hcrt_api_version(void);

/* ------------------------------------------------------------------------------------------------ */
/* Context                                                                                           */

typedef struct hcrt_context hcrt_context_t;
typedef struct hcrt_device hcrt_device_t;

/* Flags for hcrt_context_params_t.flags. */
#define HCRT_INIT_NO_MPI (1u << 0) /* never touch MPI: the process is rank 0 of 1 (tools, unit tests) */

typedef struct hcrt_context_params {
    size_t struct_size;
    /* HCRT_API_VERSION as the caller compiled it. The library refuses a different major version or a
     * newer minor version with HCRT_ERR_VERSION. */
    uint32_t api_version;
    uint32_t flags;
    /* Backend filter in HCRT_BACKENDS syntax ("cpu,sim", "^hip"); NULL means use HCRT_BACKENDS. */
    const char *backends;
} hcrt_context_params_t;

/* Fills params with defaults (struct_size, api_version = HCRT_API_VERSION, no flags). */
HCRT_EXPORT void hcrt_context_params_init(hcrt_context_params_t *params);

/*
 * Creates the process's context: reads and validates the configuration (a bad HCRT_* value is
 * HCRT_ERR_CONFIG naming the variable), sets up logging, initialises MPI unless HCRT_INIT_NO_MPI (when
 * MPI is already initialised by the application hcrt uses it and leaves finalisation to the
 * application), loads the backend plugins, picks this rank's device (docs/architecture.md, "Device choice") and binds
 * the process near it when HCRT_BIND=device.
 *
 * A plugin that fails to load is reported and skipped; the context is still created (the cpu backend is
 * built in and always present). params NULL means defaults. When creation fails, a message is logged at
 * error level and available through hcrt_last_error(NULL); MPI, if hcrt_init started it, is left
 * initialised (finalising would wait for ranks that succeeded), so a failing rank should exit, or call
 * MPI_Abort, and the launcher ends the job.
 */
HCRT_EXPORT hcrt_status_t hcrt_init(const hcrt_context_params_t *params, hcrt_context_t **ctx);

/* Releases the context: plugins are finalised and unloaded; MPI is finalised only if hcrt_init()
 * initialised it. NULL is a no-op. Not thread-safe with other calls on the same context. */
HCRT_EXPORT hcrt_status_t hcrt_finalize(hcrt_context_t *ctx);

/*
 * Detail of the most recent failed call on `ctx` made by the calling thread, e.g. "hcrt_mem_alloc:
 * argument 'bytes' is 0" or "sim device 1: out of memory (requested 2048 MiB, 512 MiB free)". ctx NULL
 * gives the thread's detail for calls without a context (hcrt_init failures). Never NULL; "" when no
 * call failed. Valid until the next failing call on this thread.
 */
HCRT_EXPORT const char *hcrt_last_error(const hcrt_context_t *ctx);

/* This process's rank and the world size (0 and 1 without MPI). Either pointer may be NULL. */
HCRT_EXPORT hcrt_status_t hcrt_context_rank(const hcrt_context_t *ctx, int *rank, int *size);

/* This process's rank among the ranks of its node, and how many ranks share the node. */
HCRT_EXPORT hcrt_status_t hcrt_context_local_rank(const hcrt_context_t *ctx, int *local_rank,
                                                  int *local_size);

/* ------------------------------------------------------------------------------------------------ */
/* Configuration (one table of every HCRT_* environment variable)                                    */

typedef struct hcrt_config_entry {
    size_t struct_size;
    const char *name;    /* "HCRT_TIMEOUT" */
    const char *def;     /* default value, as a string */
    const char *value;   /* current value in effect for this process, as a string */
    const char *help;    /* one sentence */
    const char *type;    /* "int", "double", "bool", "string", "enum(...)", "size", "list" */
    bool is_set;         /* whether the environment sets it */
} hcrt_config_entry_t;

/* Number of variables in the config table. */
HCRT_EXPORT size_t hcrt_config_count(void);

/*
 * Fills entry `index` (< hcrt_config_count()). With ctx the value is the one the context uses; with ctx
 * NULL it is read from the environment now (unvalidated). Strings live as long as the context (or, with
 * NULL, until the next call with NULL on this thread). entry->struct_size must be set.
 */
HCRT_EXPORT hcrt_status_t hcrt_config_get_entry(const hcrt_context_t *ctx, size_t index,
                                                hcrt_config_entry_t *entry);

/* Current value of one variable by name as the context sees it; HCRT_ERR_NOT_FOUND for unknown names.
 * The string lives as long as the context. */
HCRT_EXPORT hcrt_status_t hcrt_config_get(const hcrt_context_t *ctx, const char *name,
                                          const char **value);

/* ------------------------------------------------------------------------------------------------ */
/* Logging                                                                                           */

/* Logs one line through hcrt's logger (tagged [host:pid:rank], filtered by HCRT_LOG_LEVEL and
 * HCRT_LOG_SUBSYS) under subsystem `subsys` (e.g. "app"). For applications and tools. */
HCRT_EXPORT void hcrt_log(hcrt_log_level_t level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------------------------------ */
/* Backends and devices                                                                              */

typedef enum hcrt_backend_status {
    HCRT_BACKEND_LOADED = 0,      /* loaded and has at least one device */
    HCRT_BACKEND_UNAVAILABLE = 1, /* loaded, but the vendor runtime reports no device (reason says why) */
    HCRT_BACKEND_BROKEN = 2,      /* could not be loaded: missing symbol, wrong ABI, short table, ... */
    HCRT_BACKEND_FILTERED = 3     /* found but excluded by HCRT_BACKENDS */
} hcrt_backend_status_t;

typedef struct hcrt_backend_info {
    size_t struct_size;
    const char *name;   /* "cuda" */
    const char *path;   /* file it was loaded from, "(built in)" for cpu */
    hcrt_backend_status_t status;
    const char *reason; /* why unavailable/broken/filtered, "" when loaded */
    int device_count;
    bool compute;               /* a loaded backend offering the compute extension (hcrt/compute.h) */
    const char *compute_detail; /* why not, when it does not ("" when it does, or when not loaded) */
} hcrt_backend_info_t;

/* Number of backends the loader considered (loaded or not). */
HCRT_EXPORT hcrt_status_t hcrt_backend_count(const hcrt_context_t *ctx, int *count);

/* Information on backend `index`; strings live as long as the context. */
HCRT_EXPORT hcrt_status_t hcrt_backend_get_info(const hcrt_context_t *ctx, int index,
                                                hcrt_backend_info_t *info);

/*
 * Whether backend `index` has a usable vendor collective library (NCCL for cuda, RCCL for hip, simccl
 * for sim), which collectives use inside groups of same-vendor ranks. Plugins load that library lazily:
 * this call loads it if nothing did yet (communicators do the same when they are created). HCRT_OK when
 * it can be used; HCRT_ERR_NOT_SUPPORTED when not, with *reason (when reason is not NULL) saying why,
 * e.g. "libnccl.so.2: cannot open shared object file: No such file or directory" or "the plugin has no
 * vendor collective ops"; the string lives as long as the context. The answer is found once per backend
 * and then kept. Not thread-safe with itself.
 */
HCRT_EXPORT hcrt_status_t hcrt_backend_vendor_coll(const hcrt_context_t *ctx, int index, const char **reason);

/* Number of usable devices over all loaded backends (the cpu backend contributes one: the host). */
HCRT_EXPORT hcrt_status_t hcrt_device_count(const hcrt_context_t *ctx, int *count);

/* Device `index` (< hcrt_device_count()). The handle lives as long as the context. */
HCRT_EXPORT hcrt_status_t hcrt_device_get(const hcrt_context_t *ctx, int index, hcrt_device_t **device);

/* Device `index` of the backend named `backend` (e.g. "sim", 1). HCRT_ERR_NOT_FOUND if absent. */
HCRT_EXPORT hcrt_status_t hcrt_device_find(const hcrt_context_t *ctx, const char *backend, int index,
                                           hcrt_device_t **device);

/* The host device (the cpu backend's device 0). */
HCRT_EXPORT hcrt_status_t hcrt_device_host(const hcrt_context_t *ctx, hcrt_device_t **device);

/* The device this rank was given at init (docs/architecture.md: HCRT_DEVICE, else the first accelerator
 * backend's device local_rank % count, else the host). */
HCRT_EXPORT hcrt_status_t hcrt_context_device(const hcrt_context_t *ctx, hcrt_device_t **device);

typedef struct hcrt_device_props {
    size_t struct_size;
    const char *backend;   /* "sim" */
    int index;             /* index within its backend */
    int global_index;      /* index for hcrt_device_get() */
    const char *name;
    const char *vendor;
    const char *pci_bus_id; /* "" when none */
    uint64_t total_memory;
    uint64_t free_memory;
    double speed;
    uint64_t caps;          /* HCRT_CAP_* bits of hcrt/backend.h */
    int numa_node;          /* from hwloc when the PCI bus id is known, else the backend's, else -1 */
    const char *local_cpus; /* cpuset near the device, in hwloc list syntax ("0-15"); "" if unknown */
    bool host_addressable;  /* pointers may be dereferenced by the host */
} hcrt_device_props_t;

/* Properties of a device; strings live as long as the context. */
HCRT_EXPORT hcrt_status_t hcrt_device_get_props(const hcrt_device_t *device, hcrt_device_props_t *props);

/* Backend name of a device ("cpu", "sim", ...); NULL for a NULL device. */
HCRT_EXPORT const char *hcrt_device_backend(const hcrt_device_t *device);

/* The context a device belongs to. */
HCRT_EXPORT hcrt_context_t *hcrt_device_context(const hcrt_device_t *device);

/* Health of a device: HCRT_OK when healthy, HCRT_ERR_DEVICE_LOST when lost (detail in last error). */
HCRT_EXPORT hcrt_status_t hcrt_device_check_health(hcrt_device_t *device);

/* ------------------------------------------------------------------------------------------------ */
/* Memory                                                                                            */

/* Allocates `bytes` (> 0) on `device`. HCRT_ERR_DEVICE_OOM when the device is full (host: NO_MEMORY). */
HCRT_EXPORT hcrt_status_t hcrt_mem_alloc(hcrt_device_t *device, size_t bytes, void **ptr);

/* Frees memory of hcrt_mem_alloc(); NULL ptr is a no-op. */
HCRT_EXPORT hcrt_status_t hcrt_mem_free(hcrt_device_t *device, void *ptr);

/* Allocates host memory pinned for fast copies with `device`'s backend (plain host memory for cpu). */
HCRT_EXPORT hcrt_status_t hcrt_mem_alloc_host(hcrt_device_t *device, size_t bytes, void **ptr);
HCRT_EXPORT hcrt_status_t hcrt_mem_free_host(hcrt_device_t *device, void *ptr);

/* Sets `bytes` bytes at ptr on device (NULL: host memory) to (unsigned char)value, synchronously. */
HCRT_EXPORT hcrt_status_t hcrt_memset(hcrt_device_t *device, void *ptr, int value, size_t bytes);

/*
 * Copies `bytes` bytes from src (memory of src_device) to dst (memory of dst_device), synchronously.
 * Either device may be NULL for host memory (both NULL: a plain host copy). Any pair of devices works:
 * within one device, host<->device, device<->device of one backend (peer copy), and across backends
 * (staged through pinned host memory in chunks). HCRT_ERR_INVALID_ARG names a NULL dst or src, devices
 * of two contexts, or memory hcrt allocated that belongs to another device or is shorter than `bytes`.
 */
HCRT_EXPORT hcrt_status_t hcrt_memcpy(hcrt_device_t *dst_device, void *dst, hcrt_device_t *src_device,
                                      const void *src, size_t bytes);

/* ------------------------------------------------------------------------------------------------ */
/* Streams, events and kernels                                                                       */

typedef struct hcrt_stream hcrt_stream_t;
typedef struct hcrt_event hcrt_event_t;

/* An in-order queue of work on one device. */
HCRT_EXPORT hcrt_status_t hcrt_stream_create(hcrt_device_t *device, hcrt_stream_t **stream);
/* Waits for the stream's work and destroys it. NULL is a no-op. */
HCRT_EXPORT hcrt_status_t hcrt_stream_destroy(hcrt_stream_t *stream);
/* Blocks until all work enqueued so far completed; returns the first error of that work. */
HCRT_EXPORT hcrt_status_t hcrt_stream_sync(hcrt_stream_t *stream);

/*
 * Enqueues a copy on `stream` (which must belong to dst_device or src_device). Both devices must be the
 * stream's device or the host (NULL); cross-backend device pairs go through hcrt_memcpy(). Host memory
 * must stay valid until the stream reaches the copy.
 */
HCRT_EXPORT hcrt_status_t hcrt_memcpy_async(hcrt_device_t *dst_device, void *dst,
                                            hcrt_device_t *src_device, const void *src, size_t bytes,
                                            hcrt_stream_t *stream);

HCRT_EXPORT hcrt_status_t hcrt_event_create(hcrt_device_t *device, hcrt_event_t **event);
HCRT_EXPORT hcrt_status_t hcrt_event_destroy(hcrt_event_t *event);
/* Records the event after the work enqueued so far on stream. */
HCRT_EXPORT hcrt_status_t hcrt_event_record(hcrt_event_t *event, hcrt_stream_t *stream);
HCRT_EXPORT hcrt_status_t hcrt_event_sync(hcrt_event_t *event);
/* *done = whether the event's point was reached; never blocks. */
HCRT_EXPORT hcrt_status_t hcrt_event_query(hcrt_event_t *event, bool *done);
/* Milliseconds between two completed events of one device. */
HCRT_EXPORT hcrt_status_t hcrt_event_elapsed(hcrt_event_t *start, hcrt_event_t *end, float *ms);

/* dst[i] = op(dst[i], src[i]) on device memory of `device`; stream NULL means synchronous. */
HCRT_EXPORT hcrt_status_t hcrt_reduce(hcrt_device_t *device, void *dst, const void *src, size_t count,
                                      hcrt_dtype_t dtype, hcrt_op_t op, hcrt_stream_t *stream);

/* ptr[i] *= factor on device memory of `device`; stream NULL means synchronous. */
HCRT_EXPORT hcrt_status_t hcrt_scale(hcrt_device_t *device, void *ptr, size_t count, hcrt_dtype_t dtype,
                                     double factor, hcrt_stream_t *stream);

/* dst[i] = op(a[i], b[i]), a the left operand, on memory of `device` or registered host memory (below);
 * dst may equal a or b. HCRT_ERR_NOT_SUPPORTED when the device's backend has no such kernel. */
HCRT_EXPORT hcrt_status_t hcrt_reduce3(hcrt_device_t *device, void *dst, const void *a, const void *b,
                                       size_t count, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_stream_t *stream);

/*
 * Makes `bytes` of host memory at ptr addressable by the kernels of `device` (hcrt_reduce, hcrt_reduce3,
 * hcrt_scale): *dev_ptr is the address they take for ptr (it may equal ptr). The memory must stay mapped
 * until hcrt_host_unregister(device, ptr); registered ranges of one backend must not overlap.
 * HCRT_ERR_NOT_SUPPORTED when the backend cannot map host memory for its kernels.
 */
HCRT_EXPORT hcrt_status_t hcrt_host_register(hcrt_device_t *device, void *ptr, size_t bytes, void **dev_ptr);
HCRT_EXPORT hcrt_status_t hcrt_host_unregister(hcrt_device_t *device, void *ptr);
/* Whether `device` offers hcrt_host_register and hcrt_reduce3. */
HCRT_EXPORT bool hcrt_device_maps_host(const hcrt_device_t *device);

/* ------------------------------------------------------------------------------------------------ */
/* Buffers                                                                                           */

/* A view of `count` elements of `dtype` at `ptr` on `device`. Not owning. */
typedef struct hcrt_buffer {
    hcrt_device_t *device;
    void *ptr;
    size_t count;
    hcrt_dtype_t dtype;
} hcrt_buffer_t;

/* ------------------------------------------------------------------------------------------------ */
/* Topology                                                                                          */

typedef struct hcrt_topology_info {
    size_t struct_size;
    int packages;
    int numa_nodes;
    int cores;
    int pus;
    const char *bound_cpus; /* this process's current binding in hwloc list syntax */
} hcrt_topology_info_t;

/* Machine summary from hwloc; strings live as long as the context. */
HCRT_EXPORT hcrt_status_t hcrt_topology_get_info(const hcrt_context_t *ctx, hcrt_topology_info_t *info);

/* Checkpoint-restart (hcrt/ckpt.h). */
#include "hcrt/ckpt.h"

/* The exit policy: which status a failed job ends with, and whether a restart may help (hcrt/exit.h). */
#include "hcrt/exit.h"

/* Communicators and collectives (hcrt/comm.h). */
#include "hcrt/comm.h"

/* What a job tells the restart loop hcrt-run: heartbeats, failure records, an agreed stop (hcrt/run.h). */
#include "hcrt/run.h"

/* The balancer and gradients summed by sample count (hcrt/balance.h), exact mode (hcrt/exact.h), the
 * application's events on the timeline (hcrt/trace.h). */
#include "hcrt/balance.h"
#include "hcrt/exact.h"
#include "hcrt/trace.h"

/* Compute on any device: gemm, bias add, ReLU, softmax cross-entropy, optimizers (hcrt/compute.h). */
#include "hcrt/compute.h"
/* Fault injection points for training loops and compute wrappers (hcrt/fault.h). */
#include "hcrt/fault.h"

#ifdef __cplusplus
}
#endif

#endif /* HCRT_HCRT_H */
