/*
 * hcrt/backend.h - the backend plugin ABI, version 1.
 *
 * A backend is a shared library named libhcrt-backend-NAME.so that exports exactly one data symbol,
 *
 *     HCRT_BACKEND_EXPORT const hcrt_backend_v1_t hcrt_backend_v1 = { ... };
 *
 * The runtime finds plugins in HCRT_BACKEND_PATH (a colon-separated list of directories) and then beside
 * libhcrt (its build tree's plugin folders, or LIBDIR/hcrt of the install; docs/architecture.md, "The
 * plugin table"), keeps those named by HCRT_BACKENDS, dlopen()s each, and checks the
 * table: `struct_size` must cover at least every mandatory op (HCRT_BACKEND_V1_MIN_SIZE), `abi_version`
 * must equal HCRT_BACKEND_ABI_VERSION, `name` must match the file name and every mandatory op must be
 * non-NULL. A plugin that fails a check is reported with a warning naming the file and the reason, closed,
 * and the other plugins still load.
 *
 * This version is frozen once released: fields are only ever appended (and the appended ones are
 * optional, found by struct_size and a NULL check). An incompatible change gets a new table
 * (hcrt_backend_v2) in a new header and an adapter for v1 in the loader.
 *
 * Conventions for every op:
 *  - The first argument is the plugin's own state, as returned by init().
 *  - `dev` is a device index in [0, device_count). Plugins check it and answer HCRT_ERR_INVALID_ARG.
 *  - Device pointers are opaque to the runtime: it never dereferences them (the sim backend makes sure of
 *    that by handing out addresses that fault). The runtime never passes a pointer of one backend to
 *    another backend.
 *  - `stream` NULL means "synchronous": the op has completed when it returns. With a stream the op is
 *    enqueued in order behind the stream's earlier work and the call returns at once; errors that only
 *    show at execution are reported by the next stream_sync()/event_sync() on that stream.
 *  - On failure an op returns a negative hcrt_status_t and leaves the vendor's text retrievable with
 *    last_error(); plugins never print, never exit and never read the environment: they log through the
 *    services the runtime gives them and read their settings through config_get().
 *  - Thread safety: ops may be called from several threads at once with different streams; a plugin
 *    serialises internally where its runtime needs it.
 */
#ifndef HCRT_BACKEND_H
#define HCRT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/backend_compute.h" /* the optional compute extension (the `compute` field below) */
#include "hcrt/status.h"
#include "hcrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HCRT_BACKEND_ABI_VERSION 1u

/* Use on the exported table so it stays visible under -fvisibility=hidden. */
#define HCRT_BACKEND_EXPORT __attribute__((visibility("default")))

/* The exported table's symbol name for this ABI version. */
#define HCRT_BACKEND_SYMBOL_V1 "hcrt_backend_v1"

/*
 * Services the runtime hands to a plugin at init(). Valid from init() until finalize() returns.
 */
typedef struct hcrt_backend_services {
    size_t struct_size;
    /* Opaque runtime pointer, to be passed back as the first argument of the functions below. */
    void *host;
    /* Logs one line at `level` (an hcrt_log_level_t). The runtime adds the [host:pid:rank] tag and the
     * backend's name and drops lines below the configured level. Thread-safe. */
    void (*log)(void *host, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    /* Whether a line at `level` would be printed; lets a plugin skip formatting cost. */
    bool (*log_enabled)(void *host, int level);
    /* Returns the current value of a configuration variable of the runtime's config table, as a string
     * (e.g. config_get(host, "HCRT_SIM_DEVICES") -> "2"), or NULL for an unknown name. The string lives
     * until finalize(). Values have already been validated by the runtime's parser. */
    const char *(*config_get)(void *host, const char *name);
} hcrt_backend_services_t;

/* Device capability bits, in hcrt_backend_device_props_t.caps. */
#define HCRT_CAP_HOST_ADDRESSABLE (1ull << 0) /* device pointers may be dereferenced by the host */
#define HCRT_CAP_PINNED_HOST      (1ull << 1) /* host_alloc gives page-locked memory */
#define HCRT_CAP_PEER_COPY        (1ull << 2) /* copy_peer between two devices of this backend */
#define HCRT_CAP_ECC              (1ull << 3) /* ECC memory: health() reports ecc error counts */
#define HCRT_CAP_VENDOR_COLL      (1ull << 4) /* the vendor collective fast path (coll_*) is usable */
#define HCRT_CAP_FAULT_INJECTION  (1ull << 5) /* honours injected faults (sim) */
#define HCRT_CAP_VENDOR_COLL_LOCAL (1ull << 6) /* the vendor collectives reach only ranks of one node */

/* Properties of one device, filled by device_props(). Strings are NUL-terminated. */
typedef struct hcrt_backend_device_props {
    size_t struct_size;
    char name[128];      /* "NVIDIA H100 80GB HBM3", "sim device 0" */
    char vendor[64];     /* "NVIDIA", "AMD", "hcrt" */
    char pci_bus_id[32]; /* "0000:3b:00.0" in lower case, or "" when the device has none */
    uint64_t total_memory; /* bytes */
    uint64_t free_memory;  /* bytes, at the time of the call */
    double speed;          /* relative compute throughput; 1.0 for the reference host core */
    uint64_t caps;         /* HCRT_CAP_* bits */
    int32_t numa_node;     /* NUMA node the device reports, or -1 if unknown */
    int32_t reserved;
} hcrt_backend_device_props_t;

/* Direction of a copy inside one device. */
typedef enum hcrt_copy_kind {
    HCRT_COPY_H2D = 0, /* host memory (any, pinned is faster) -> device memory */
    HCRT_COPY_D2H = 1, /* device memory -> host memory */
    HCRT_COPY_D2D = 2  /* device memory -> memory of the same device */
} hcrt_copy_kind_t;

/* Health of a device, filled by health(). */
typedef struct hcrt_backend_health {
    size_t struct_size;
    bool device_lost;            /* the device is gone (fell off the bus, sim fault); every op fails */
    uint64_t ecc_corrected;      /* corrected ECC errors since boot, 0 when unknown */
    uint64_t ecc_uncorrected;    /* uncorrected ECC errors, 0 when unknown */
    hcrt_status_t last_status;   /* status of the most recent failing op on this device, HCRT_OK if none */
    char last_error[256];        /* vendor text of that failure, "" if none */
} hcrt_backend_health_t;

/* Opaque per-plugin objects. */
typedef struct hcrt_backend_stream hcrt_backend_stream_t;
typedef struct hcrt_backend_event hcrt_backend_event_t;
typedef struct hcrt_backend_coll hcrt_backend_coll_t;

typedef struct hcrt_backend_v1 {
    size_t struct_size;   /* sizeof(hcrt_backend_v1_t) as the plugin was compiled */
    uint32_t abi_version; /* HCRT_BACKEND_ABI_VERSION */
    const char *name;     /* short lower-case name: "cpu", "sim", "cuda", "hip"; matches the file name */

    /* ---- lifetime ---- */

    /* Initialises the plugin and returns its state in *state. Return HCRT_ERR_NO_DEVICE (with the
     * vendor's reason in last_error(NULL)) when the runtime works but there is no usable device: the
     * runtime then reports the backend as unavailable, with that reason, and calls nothing else but
     * last_error(). Any other failure is a broken plugin. `svc` outlives the state. */
    hcrt_status_t (*init)(const hcrt_backend_services_t *svc, void **state);
    /* Releases everything; outstanding streams/events/allocations are freed. state may be NULL. */
    void (*finalize)(void *state);
    /* Text of the most recent failure of this plugin (per thread where the vendor runtime is), "" if
     * none. state may be NULL, for errors of init(). Never returns NULL. */
    const char *(*last_error)(void *state);

    /* ---- devices ---- */
    hcrt_status_t (*device_count)(void *state, int *count);
    hcrt_status_t (*device_props)(void *state, int dev, hcrt_backend_device_props_t *props);
    /* Health of `dev`; never fails for a valid dev, even when the device is lost. */
    hcrt_status_t (*health)(void *state, int dev, hcrt_backend_health_t *health);

    /* ---- memory ---- */

    /* Allocates `bytes` (> 0) of device memory, aligned to at least 256 bytes. Out of memory is
     * HCRT_ERR_DEVICE_OOM. The memory is not initialised. */
    hcrt_status_t (*mem_alloc)(void *state, int dev, size_t bytes, void **ptr);
    /* Frees memory from mem_alloc; NULL is a no-op. Waits for no stream: the caller synchronises. */
    hcrt_status_t (*mem_free)(void *state, int dev, void *ptr);
    /* Allocates host memory that copies to/from devices of this backend can use at full speed
     * (page-locked where the vendor supports it). Host-addressable. HCRT_ERR_NO_MEMORY on failure. */
    hcrt_status_t (*host_alloc)(void *state, size_t bytes, void **ptr);
    hcrt_status_t (*host_free)(void *state, void *ptr);

    /* ---- data movement ---- */

    /* Sets `bytes` bytes of device memory at ptr to (unsigned char)value. */
    hcrt_status_t (*memset)(void *state, int dev, void *ptr, int value, size_t bytes,
                            hcrt_backend_stream_t *stream);
    /* Copies `bytes` bytes within device `dev` and the host, in direction `kind`. */
    hcrt_status_t (*memcpy)(void *state, int dev, void *dst, const void *src, size_t bytes,
                            hcrt_copy_kind_t kind, hcrt_backend_stream_t *stream);
    /* Copies device memory of src_dev to device memory of dst_dev (both of this backend). The stream,
     * if any, belongs to dst_dev. */
    hcrt_status_t (*memcpy_peer)(void *state, int dst_dev, void *dst, int src_dev, const void *src,
                                 size_t bytes, hcrt_backend_stream_t *stream);

    /* ---- streams: in-order queues of work on one device ---- */
    hcrt_status_t (*stream_create)(void *state, int dev, hcrt_backend_stream_t **stream);
    /* Waits for the stream's work, then destroys it. NULL is a no-op. */
    hcrt_status_t (*stream_destroy)(void *state, hcrt_backend_stream_t *stream);
    /* Blocks until all work enqueued so far has completed; returns the first error of that work. */
    hcrt_status_t (*stream_sync)(void *state, hcrt_backend_stream_t *stream);

    /* ---- events: markers in a stream ---- */
    hcrt_status_t (*event_create)(void *state, int dev, hcrt_backend_event_t **event);
    hcrt_status_t (*event_destroy)(void *state, hcrt_backend_event_t *event);
    /* Records the event after the work enqueued so far on `stream` (NULL: records "now"). */
    hcrt_status_t (*event_record)(void *state, hcrt_backend_event_t *event,
                                  hcrt_backend_stream_t *stream);
    /* Blocks until the recorded point is reached. */
    hcrt_status_t (*event_sync)(void *state, hcrt_backend_event_t *event);
    /* Sets *done to whether the recorded point has been reached; never blocks. */
    hcrt_status_t (*event_query)(void *state, hcrt_backend_event_t *event, bool *done);
    /* Milliseconds between two completed events. HCRT_ERR_STATE if either has not completed. */
    hcrt_status_t (*event_elapsed)(void *state, hcrt_backend_event_t *start, hcrt_backend_event_t *end,
                                   float *ms);

    /* ---- kernels ---- */

    /* Element-wise dst[i] = op(dst[i], src[i]) for i < count, both on device `dev`. Every dtype and op
     * (HCRT_OP_AVG accumulates as HCRT_OP_SUM). f16/bf16 compute in f32. Integer sum/prod wrap. */
    hcrt_status_t (*reduce)(void *state, int dev, void *dst, const void *src, size_t count,
                            hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream);
    /* Element-wise ptr[i] = ptr[i] * factor for i < count. Floating types multiply in the type's
     * compute precision (f32 for f16/bf16, f64 for f64); integer types multiply in double and truncate
     * toward zero (so scaling by 1/n is an integer average). */
    hcrt_status_t (*scale)(void *state, int dev, void *ptr, size_t count, hcrt_dtype_t dtype,
                           double factor, hcrt_backend_stream_t *stream);

    /* ---- optional: vendor collective fast path among ranks of this backend ----
     * Present when struct_size covers them and the pointers are non-NULL; the runtime answers
     * HCRT_ERR_NOT_SUPPORTED otherwise. Ids are made by one rank and broadcast by the runtime. The
     * runtime groups ranks whose devices report HCRT_CAP_VENDOR_COLL and the same backend and vendor
     * name (hcrt_backend_device_props_t.vendor), per node with HCRT_CAP_VENDOR_COLL_LOCAL. A plugin
     * may load its vendor library lazily (dlopen when first needed), so that a node without it still
     * has the backend. The ops of one communicator are issued in one order on every rank (one stream, as
     * NCCL asks); reductions must give the same bits on every rank of the group, run after run. */
    size_t coll_unique_id_size;
    /* Makes the id (coll_unique_id_size bytes). With id NULL it only probes: loads the vendor library if
     * that has not happened yet and answers HCRT_OK when the collectives can be used, else
     * HCRT_ERR_NOT_SUPPORTED with the reason ("libnccl.so.2: cannot open shared object file") in
     * last_error(); hcrt-info shows it as "no vendor collectives: <reason>". */
    hcrt_status_t (*coll_get_unique_id)(void *state, void *id);
    hcrt_status_t (*coll_init)(void *state, int dev, const void *id, int nranks, int rank,
                               hcrt_backend_coll_t **coll);
    hcrt_status_t (*coll_destroy)(void *state, hcrt_backend_coll_t *coll);
    /* Tears the communicator down without waiting for peers (after a failure elsewhere): every rank of
     * the group still inside one of its operations must leave it (with an error) soon after, and
     * operations still queued on streams fail at once. The runtime calls it from the thread that issued
     * the operations, possibly while one of them is still running on a stream. */
    hcrt_status_t (*coll_abort)(void *state, hcrt_backend_coll_t *coll);
    hcrt_status_t (*coll_allreduce)(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                    size_t count, hcrt_dtype_t dtype, hcrt_op_t op,
                                    hcrt_backend_stream_t *stream);
    /* recv holds count elements; send holds count * nranks. */
    hcrt_status_t (*coll_reduce_scatter)(void *state, hcrt_backend_coll_t *coll, const void *send,
                                         void *recv, size_t count, hcrt_dtype_t dtype, hcrt_op_t op,
                                         hcrt_backend_stream_t *stream);
    /* send holds count elements; recv holds count * nranks. */
    hcrt_status_t (*coll_allgather)(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                    size_t count, hcrt_dtype_t dtype, hcrt_backend_stream_t *stream);
    hcrt_status_t (*coll_broadcast)(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                    size_t count, hcrt_dtype_t dtype, int root,
                                    hcrt_backend_stream_t *stream);

    /* ---- optional: kernels on registered host memory ----
     * A plugin offers all three or none (the runtime checks for all three). With them the runtime lets a
     * device reduce straight out of and into host memory other processes share (the node's collective
     * window), instead of staging every byte through copies: NCCL-style zero-copy, done with
     * cudaHostRegister(Mapped) / hipHostRegister on GPUs. */

    /* Makes `bytes` (> 0) of host memory at ptr (any alignment; it must stay mapped until unregistered)
     * accessible to the kernels of device `dev`: *dev_ptr receives the address kernels use for ptr (it may
     * equal ptr), and dev_ptr + k stands for ptr + k. Ranges registered with one plugin must not overlap.
     * HCRT_ERR_INVALID_ARG for NULL/0 arguments, memory of a device, or an overlap with a registered range;
     * HCRT_ERR_BACKEND with the vendor's text when the vendor refuses (the runtime then stages instead). */
    hcrt_status_t (*host_register)(void *state, int dev, void *ptr, size_t bytes, void **dev_ptr);
    /* Ends a registration made with host_register(ptr) on `dev`; waits for no stream (the caller
     * synchronises). HCRT_ERR_INVALID_ARG when ptr is not the start of a registered range of dev. */
    hcrt_status_t (*host_unregister)(void *state, int dev, void *ptr);
    /* Element-wise dst[i] = op(a[i], b[i]) for i < count, with the left operand a (the order matters for
     * bit-exact floating point). dst, a and b are each memory of device `dev` or lie inside one range
     * registered on `dev` (as its dev_ptr address); dst may equal a or b, other overlaps are
     * HCRT_ERR_INVALID_ARG. Arithmetic as reduce(). Once a plugin has host_register, reduce() and
     * scale() accept registered addresses too. */
    hcrt_status_t (*reduce3)(void *state, int dev, void *dst, const void *a, const void *b, size_t count,
                             hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream);

    /* ---- optional: the compute extension (hcrt/backend_compute.h) ----
     * Gemm, bias add, ReLU, softmax cross-entropy, column sums, optimizer updates and dtype casts: one
     * training step of an MLP on the device. NULL (or a table too short for this field) means none; the
     * runtime checks the sub-table's own size, version and ops when it loads the plugin. */
    const hcrt_backend_compute_v1_t *compute;
} hcrt_backend_v1_t;

/* The smallest struct_size a v1 table may have: everything up to and including `scale` is mandatory. */
#define HCRT_BACKEND_V1_MIN_SIZE (offsetof(hcrt_backend_v1_t, scale) + sizeof(void *))

/* True when the optional op `field` is present in `table` (long enough and non-NULL). */
#define HCRT_BACKEND_HAS_OP(table, field)                                                            \
    ((table)->struct_size >= offsetof(hcrt_backend_v1_t, field) + sizeof((table)->field) &&           \
     (table)->field != NULL)

#ifdef __cplusplus
}
#endif

#endif /* HCRT_BACKEND_H */
