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
    uint64_t lost_after; /* the device is lost after this many ops, when has_lost */
    bool has_lost;
    int dev; /* the device the faults apply to; -1: every device */
} sim_fault_t;

/* Parses HCRT_SIM_FAULT ("alloc_fail=N,copy_fail=N,register_fail=N,lost_after=N,dev=I"; "" for none). HCRT_ERR_CONFIG
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

#endif /* HCRT_SIM_H */
