/*
 * backends/sim/sim.h - what the files of the sim backend plugin share.
 *
 * The sim backend emulates accelerators inside the process: N devices, each with a fixed memory capacity
 * whose addresses the host cannot dereference, a speed factor that stretches its kernels and copies, and
 * injectable faults. It exists so that every path of hcrt that handles device memory, slow devices and
 * device failures can be tested on a machine without accelerators.
 */
#ifndef HCRT_SIM_H
#define HCRT_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/common/hostcomp.h"
#include "backends/common/workqueue.h"
#include "hcrt/backend.h"

/* ---- device heap (sim_heap.c) ------------------------------------------------------------------ */

/* Allocation granularity and alignment of device memory. */
#define SIM_ALIGN 256

typedef struct sim_block {
    size_t off;  /* offset from the start of the device's range */
    size_t size; /* bytes the block spans (a multiple of SIM_ALIGN) */
    size_t req;  /* bytes the user asked for (0 for a free block) */
    bool used;
} sim_block_t;

/*
 * One device's memory: `reserve` is an address range mapped PROT_NONE that device pointers point into
 * (so the host faults on them); `storage` is the readable mapping of the same size that holds the bytes.
 * A device pointer p stands for storage + (p - reserve). Blocks tile [0, capacity) in address order.
 */
typedef struct sim_heap {
    char *reserve;
    char *storage;
    size_t capacity; /* usable bytes (HCRT_SIM_MEMORY) */
    size_t mapped;   /* bytes mapped for each of reserve and storage (page multiple) */
    sim_block_t *blocks;
    size_t nblocks, cap;
    size_t used; /* bytes of used blocks */
} sim_heap_t;

/* Maps the two ranges. HCRT_ERR_NO_MEMORY with the reason in err when the kernel refuses. */
hcrt_status_t sim_heap_init(sim_heap_t *h, size_t capacity, char *err, size_t errlen);
void sim_heap_fini(sim_heap_t *h);
/* The heap functions below are not thread-safe: the caller holds the device's lock. */
/* First fit, SIM_ALIGN aligned. HCRT_ERR_DEVICE_OOM when no free block is large enough. */
hcrt_status_t sim_heap_alloc(sim_heap_t *h, size_t bytes, void **ptr);
/* Faults in the storage pages behind a fresh allocation, so that, as with real device memory, the first
 * copy into it runs at full speed (docs/performance.md, "Memory"). Needs no lock. */
void sim_heap_populate(const sim_heap_t *h, const void *ptr, size_t bytes);
/* HCRT_ERR_INVALID_ARG unless ptr is the start of a used block. */
hcrt_status_t sim_heap_free(sim_heap_t *h, void *ptr);
/* The storage address behind [ptr, ptr+bytes) if that range lies inside one live allocation; else NULL. */
void *sim_heap_translate(const sim_heap_t *h, const void *ptr, size_t bytes);
/* Whether ptr lies anywhere in the device's reserved range (live or not). Lock-free: the range is fixed. */
bool sim_heap_in_range(const sim_heap_t *h, const void *ptr);

/* ---- injected faults (sim_fault.c) --------------------------------------------------------------- */

typedef struct sim_fault {
    uint64_t alloc_fail; /* the Nth allocation fails (1-based); 0: never */
    uint64_t copy_fail;  /* the Nth copy fails (1-based); 0: never */
    uint64_t register_fail; /* the Nth host_register is refused with HCRT_ERR_BACKEND (1-based); 0: never */
    uint64_t coll_hang;     /* the Nth simccl collective of the device hangs until aborted (1-based); 0: never */
    uint64_t coll_init_fail; /* the Nth simccl coll_init of the device fails (1-based); 0: never */
    uint64_t lost_after; /* the device is lost after this many ops, when has_lost */
    bool has_lost;
    int dev; /* the device the faults apply to; -1: every device */
} sim_fault_t;

/* Parses HCRT_SIM_FAULT ("alloc_fail=N,copy_fail=N,register_fail=N,lost_after=N,coll_hang=N,coll_init_fail=N,
 * dev=I"; "" for none). HCRT_ERR_CONFIG
 * with the reason in err on a malformed value or a dev outside [0, ndev). */
hcrt_status_t sim_fault_parse(const char *text, int ndev, sim_fault_t *fault, char *err, size_t errlen);

/* ---- kernels of the plugin's files other than sim.c (sim.c) ----------------------------------------- */

/* The largest argument sim_kernel_launch() carries. */
#define SIM_KERNEL_ARG_MAX 512

/*
 * Runs kernel(arg, msg) as a kernel of device `dev`, with every guarantee sim.c's own kernels have: dev
 * and the stream are checked; each of the n operands ptrs[i] (bytes[i] bytes, 0 to skip; named names[i]
 * in messages) must lie inside one live allocation of dev or a host range registered on it, and is
 * replaced in place by the address the host can use (so ptrs should point into arg); the device's fault
 * gate counts it (a lost device fails it); it runs now (stream NULL) or on the stream's worker, and the
 * speed factor stretches its measured duration exactly as it stretches copies. A failing kernel's msg
 * becomes the device's last error, at the call or the stream's next synchronisation.
 */
hcrt_status_t sim_kernel_launch(void *state, int dev, const char *what, void **ptrs, const size_t *bytes,
                                const char *const *names, size_t n, hcrt__wq_fn_t kernel, const void *arg,
                                size_t arg_size, hcrt_backend_stream_t *stream);

/* Records an argument error of such a kernel ("sim device D: msg") and returns status. */
hcrt_status_t sim_kernel_fail(void *state, int dev, hcrt_status_t status, const char *msg);

/* ---- the compute extension (sim_compute.c) ------------------------------------------------------------ */

/* sim's side of the host-run backends' compute table (backends/common/hostcomp.h). */
extern const hcrt__hc_host_t sim_compute_host;
/* ---- what sim.c lends the vendor collective library (sim_ccl.c) ------------------------------------ */

typedef struct sim_state sim_state_t;
typedef struct sim_ccl sim_ccl_t;

/* The storage behind device range [ptr, ptr+bytes) of `dev`, or NULL after recording why (INVALID_ARG,
 * naming fn and the argument). */
void *sim_storage_of(sim_state_t *st, int dev, const void *ptr, size_t bytes, const char *fn, const char *name);
/* Counts one op of `dev` toward its injected faults: HCRT_ERR_DEVICE_LOST when the device is lost. */
hcrt_status_t sim_device_op(sim_state_t *st, int dev, const char *what);
/* Records a failure for last_error() (and dev's health when dev >= 0); returns status. */
hcrt_status_t sim_error(sim_state_t *st, int dev, hcrt_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Runs fn(copy of arg) on the stream's worker, in order (stream NULL: now, in the caller). A failure
 * of fn is reported by the next sync of the stream (at once without a stream). */
hcrt_status_t sim_submit(sim_state_t *st, int dev, hcrt_backend_stream_t *stream,
                         hcrt_status_t (*fn)(void *arg, char *msg), const void *arg, size_t size);
/* The device a stream belongs to. */
int sim_stream_dev(const hcrt_backend_stream_t *stream);
const hcrt_backend_services_t *sim_services(const sim_state_t *st);
const sim_fault_t *sim_faults(const sim_state_t *st);
sim_ccl_t *sim_ccl_of(const sim_state_t *st);

/* ---- simccl: the vendor collectives of sim devices (sim_ccl.c) ----------------------------------------
 * Sim devices of processes of one node that carry the same vendor tag (HCRT_SIM_VENDOR) form groups
 * that reduce, gather and broadcast device memory through a shared-memory segment standing for NVLink,
 * at the bandwidth of HCRT_SIM_LINK_GBS. */

/* Reads the simccl settings; *out NULL (and HCRT_OK) when the devices have no vendor library. */
hcrt_status_t sim_ccl_create(const hcrt_backend_services_t *svc, int ndev, sim_ccl_t **out, char *err, size_t errlen);
/* Aborts the communicators still alive and frees the library. NULL is a no-op. */
void sim_ccl_destroy(sim_ccl_t *ccl);
/* The capability bits and the vendor name sim devices report with the library. */
uint64_t sim_ccl_caps(const sim_ccl_t *ccl);
const char *sim_ccl_vendor(const sim_ccl_t *ccl);

#define SIM_CCL_ID_BYTES 64
hcrt_status_t sim_coll_get_unique_id(void *state, void *id);
hcrt_status_t sim_coll_init(void *state, int dev, const void *id, int nranks, int rank, hcrt_backend_coll_t **coll);
hcrt_status_t sim_coll_destroy(void *state, hcrt_backend_coll_t *coll);
hcrt_status_t sim_coll_abort(void *state, hcrt_backend_coll_t *coll);
hcrt_status_t sim_coll_allreduce(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv, size_t count,
                                 hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream);
hcrt_status_t sim_coll_reduce_scatter(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream);
hcrt_status_t sim_coll_allgather(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv, size_t count,
                                 hcrt_dtype_t dtype, hcrt_backend_stream_t *stream);
hcrt_status_t sim_coll_broadcast(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv, size_t count,
                                 hcrt_dtype_t dtype, int root, hcrt_backend_stream_t *stream);

#endif /* HCRT_SIM_H */
