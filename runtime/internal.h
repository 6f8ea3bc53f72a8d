/*
 * runtime/internal.h - what the parts of libhcrt share with each other and never export.
 *
 * Names here carry the hcrt__ prefix (internal across files). Collectives and checkpointing include this
 * header; plugins never do (they see only hcrt/backend.h).
 */
#ifndef HCRT_RUNTIME_INTERNAL_H
#define HCRT_RUNTIME_INTERNAL_H

#include <mpi.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/backend.h"
#include "hcrt/hcrt.h"

/* ---- logging (runtime/log.c) ------------------------------------------------------------------ */

/* The process-wide log threshold, read once at init; checked before any formatting. */
extern int hcrt__log_threshold;

/* Whether lines of `subsys` at `level` are printed (HCRT_LOG_LEVEL and HCRT_LOG_SUBSYS). */
bool hcrt__log_enabled(int level, const char *subsys);

/* Prints one line to stderr: "[host:pid:rank] hcrt LEVEL subsys: message". Thread-safe. */
void hcrt__log_emit(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void hcrt__log_vemit(int level, const char *subsys, const char *fmt, va_list ap);

/* Sets the rank shown in the [host:pid:rank] tag once it is known (-1 before MPI: shown as "-"). */
void hcrt__log_set_rank(int rank);

/* (Re)reads HCRT_LOG_LEVEL / HCRT_LOG_SUBSYS from validated config strings. */
void hcrt__log_configure(const char *level, const char *subsys);

#define HCRT_LOG(level, subsys, ...)                                                                 \
    do {                                                                                             \
        if ((int)(level) <= hcrt__log_threshold && hcrt__log_enabled((level), (subsys)))             \
            hcrt__log_emit((level), (subsys), __VA_ARGS__);                                          \
    } while (0)
#define HCRT_ERROR(subsys, ...) HCRT_LOG(HCRT_LOG_ERROR, subsys, __VA_ARGS__)
#define HCRT_WARN(subsys, ...)  HCRT_LOG(HCRT_LOG_WARN, subsys, __VA_ARGS__)
#define HCRT_INFO(subsys, ...)  HCRT_LOG(HCRT_LOG_INFO, subsys, __VA_ARGS__)
#define HCRT_DEBUG(subsys, ...) HCRT_LOG(HCRT_LOG_DEBUG, subsys, __VA_ARGS__)
#define HCRT_TRACE(subsys, ...) HCRT_LOG(HCRT_LOG_TRACE, subsys, __VA_ARGS__)

/* ---- errors (runtime/error.c) ----------------------------------------------------------------- */

/*
 * Records the detail of a failure for hcrt_last_error(ctx) on this thread (ctx may be NULL), logs it at
 * debug level, and returns `status` so callers can write `return hcrt__error(ctx, HCRT_ERR_..., ...)`.
 */
hcrt_status_t hcrt__error(const hcrt_context_t *ctx, hcrt_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks a user argument: on failure records "FUNC: argument 'NAME' WHY" and returns INVALID_ARG. */
#define HCRT_CHECK_ARG(ctx, cond, name, why)                                                         \
    do {                                                                                             \
        if (!(cond))                                                                                 \
            return hcrt__error((ctx), HCRT_ERR_INVALID_ARG, "%s: argument '%s' %s", __func__,       \
                               (name), (why));                                                       \
    } while (0)

/* Runs an hcrt call; on failure leaves a debug trail and jumps to `label` with `status` set. */
#define HCRT_CHECK_GOTO(call, status, label)                                                         \
    do {                                                                                             \
        (status) = (call);                                                                           \
        if ((status) != HCRT_OK) {                                                                   \
            HCRT_DEBUG("trace", "%s:%d: %s -> %s", __FILE__, __LINE__, #call,                       \
                       hcrt_status_name(status));                                                    \
            goto label;                                                                              \
        }                                                                                            \
    } while (0)

/* Runs an hcrt call; on failure leaves a debug trail and returns its status. */
#define HCRT_CHECK(call)                                                                             \
    do {                                                                                             \
        hcrt_status_t hcrt_check_status_ = (call);                                                   \
        if (hcrt_check_status_ != HCRT_OK) {                                                         \
            HCRT_DEBUG("trace", "%s:%d: %s -> %s", __FILE__, __LINE__, #call,                       \
                       hcrt_status_name(hcrt_check_status_));                                        \
            return hcrt_check_status_;                                                               \
        }                                                                                            \
    } while (0)

/* ---- configuration (runtime/config.c, table in runtime/config_table.c) ---------------------------- */

typedef enum hcrt__config_type {
    HCRT__CFG_INT,    /* decimal integer within [min, max] */
    HCRT__CFG_DOUBLE, /* floating point within [min, max] */
    HCRT__CFG_BOOL,   /* 0/1, true/false, yes/no, on/off */
    HCRT__CFG_SIZE,   /* bytes with optional K/M/G/T suffix (powers of 1024) */
    HCRT__CFG_STRING, /* any string */
    HCRT__CFG_ENUM    /* one of `choices` (comma-separated) */
} hcrt__config_type_t;

typedef struct hcrt__config_def {
    const char *name;
    const char *def;
    hcrt__config_type_t type;
    double min, max;     /* INT/DOUBLE/SIZE range, inclusive */
    const char *choices; /* ENUM: "ring,rd,shm,hier,auto" */
    const char *help;
} hcrt__config_def_t;

extern const hcrt__config_def_t hcrt__config_table[];
extern const size_t hcrt__config_table_len;

/* Parsed value of one variable. */
typedef struct hcrt__config_value {
    char *str; /* the string in effect (env value or default), owned */
    int64_t i; /* INT, BOOL (0/1), SIZE */
    double d;  /* DOUBLE (INT and SIZE also mirrored here) */
    bool is_set;
} hcrt__config_value_t;

/* Parses one string as `def` says; on failure writes why into err. */
hcrt_status_t hcrt__config_parse(const hcrt__config_def_t *def, const char *text, hcrt__config_value_t *out,
                                 char *err, size_t errlen);

/* Parses the whole table from the environment into ctx->config (hcrt_init); frees it. */
hcrt_status_t hcrt__config_load(hcrt_context_t *ctx);
void hcrt__config_free(hcrt_context_t *ctx);

/* Index of a variable in the table, or -1. */
int hcrt__config_index(const char *name);

/* Typed accessors of the context's values. Abort (an invariant) on an unknown name. */
int64_t hcrt__config_int(const hcrt_context_t *ctx, const char *name);
double hcrt__config_double(const hcrt_context_t *ctx, const char *name);
bool hcrt__config_bool(const hcrt_context_t *ctx, const char *name);
const char *hcrt__config_str(const hcrt_context_t *ctx, const char *name);

/* ---- backends, devices and the context ---------------------------------------------------------- */

typedef struct hcrt__backend {
    char *name;
    char *path;
    void *dl;                      /* dlopen handle; NULL for built-in */
    const hcrt_backend_v1_t *ops;
    void *state;                   /* plugin state from init() */
    hcrt_backend_status_t status;
    char reason[512];
    int ndev;
    int first_device;              /* global index of its device 0 */
    hcrt_backend_services_t svc;
    struct hcrt_context *ctx;
    const hcrt_backend_compute_v1_t *compute; /* checked compute extension, or NULL (runtime/compute.c) */
    char compute_detail[256];                 /* why there is none, "" when there is */
    int coll_usable;                          /* vendor collective library: 0 not asked yet, 1 usable, -1 not */
    char coll_reason[512];                    /* why not (coll_usable -1) */
} hcrt__backend_t;

struct hcrt_device {
    struct hcrt_context *ctx;
    hcrt__backend_t *be;
    int index;        /* within backend */
    int global_index; /* within context */
    hcrt_backend_device_props_t bprops;
    int numa_node;
    char local_cpus[256];
    /* Lost as the runtime sees it (HCRT_FAULT device_lost), whatever the backend: every dispatch of a
     * backend op on the device fails, and its health says lost. lost_why is written before lost. */
    _Atomic bool lost;
    char lost_why[192];
};

struct hcrt_stream {
    hcrt_device_t *device;
    hcrt_backend_stream_t *bs;
};

struct hcrt_event {
    hcrt_device_t *device;
    hcrt_backend_event_t *be;
};

struct hcrt__topology;    /* runtime/topology.c */
struct hcrt__trace;       /* runtime/trace.c */
struct hcrt__alloc_table; /* runtime/alloc_table.c */

struct hcrt_context {
    uint32_t api_version;
    uint32_t flags;
    hcrt__config_value_t *config; /* hcrt__config_table_len entries */

    hcrt__backend_t *backends;
    int nbackends;
    hcrt_device_t *devices;
    int ndevices;
    hcrt_device_t *selected;

    int rank, size, local_rank, local_size;
    bool mpi_owned;     /* we called MPI_Init and must finalise */
    MPI_Comm world;     /* dup of MPI_COMM_WORLD (MPI_COMM_NULL without MPI) */
    MPI_Comm node;      /* ranks sharing this node (MPI_COMM_NULL without MPI) */
    char hostname[256];

    struct hcrt__topology *topo;
    char bound_cpus[256];

    struct hcrt__trace *trace;        /* HCRT_TRACE state, NULL when not tracing (runtime/trace.h) */
    struct hcrt__alloc_table *allocs; /* every hcrt_mem_alloc / hcrt_mem_alloc_host not yet freed */
    struct hcrt__fault_plan *fault; /* parsed HCRT_FAULT (runtime/fault), NULL when empty */
    int64_t run_attempt;            /* HCRT_RUN_ATTEMPT */
    bool fail_return;               /* HCRT_ON_FAILURE=return (runtime/fail.c) */
    /* A node the failure being reported found silent (every rank of it, e.g. its link was cut): the
     * failure record names it, so that hcrt-run leaves it out ("" none; collectives/deadline.c). */
    char fail_lost_node[256];
};

/* The built-in cpu backend's table (backends/cpu). */
extern const hcrt_backend_v1_t hcrt__cpu_backend;

/* Whether be's vendor collective library can be used (runtime/vendor_coll.c): asks the plugin once (it
 * may load the library then); HCRT_ERR_NOT_SUPPORTED with the reason in be->coll_reason otherwise. */
hcrt_status_t hcrt__backend_coll_probe(hcrt__backend_t *be);

/* Plugin loading (runtime/loader.c): fills ctx->backends; never fails for a broken plugin. */
hcrt_status_t hcrt__loader_load(hcrt_context_t *ctx, const char *filter);
void hcrt__loader_unload(hcrt_context_t *ctx);

/* Checks a loaded backend's optional compute extension and sets be->compute (NULL, with the reason in
 * be->compute_detail and a warning for a malformed table, when it cannot be used). runtime/compute.c. */
void hcrt__compute_attach(hcrt__backend_t *be);

/* Whether `name` passes an HCRT_BACKENDS filter ("a,b" keeps those; "^a,b" drops those; NULL/"" all). */
bool hcrt__backend_filter_match(const char *filter, const char *name);

/* Topology (runtime/topology.c). */
hcrt_status_t hcrt__topology_init(hcrt_context_t *ctx);
void hcrt__topology_fini(hcrt_context_t *ctx);
/* Fills numa_node and local_cpus of a device from its PCI bus id. */
void hcrt__topology_locate_device(hcrt_context_t *ctx, hcrt_device_t *dev);
/* Binds the process to the device's local cpus. */
hcrt_status_t hcrt__topology_bind(hcrt_context_t *ctx, const hcrt_device_t *dev);

/* Device choice (runtime/select.c). */
hcrt_status_t hcrt__select_device(hcrt_context_t *ctx);

/* The allocation table (runtime/alloc_table.c). */
hcrt_status_t hcrt__alloc_table_init(hcrt_context_t *ctx);
void hcrt__alloc_table_fini(hcrt_context_t *ctx);
/* Records an allocation of `device` (host: host memory pinned for its backend). */
hcrt_status_t hcrt__alloc_add(hcrt_context_t *ctx, const void *ptr, size_t bytes, hcrt_device_t *device, bool host);
void hcrt__alloc_remove(hcrt_context_t *ctx, const void *ptr);

/* The host device: device 0 of the built-in cpu backend, which the loader always puts first. */
static inline hcrt_device_t *hcrt__host_device(const hcrt_context_t *ctx)
{
    return &ctx->devices[0];
}

/* Copies between any two devices (runtime/memory.c). stream may be NULL. */
hcrt_status_t hcrt__copy(hcrt_device_t *dst_dev, void *dst, hcrt_device_t *src_dev, const void *src,
                         size_t bytes);

/* ---- lost devices (runtime/device.c) ------------------------------------------------------------- */

/* Marks dev lost for every later call (see struct hcrt_device). `why` is kept for the messages. */
void hcrt__device_lose(hcrt_device_t *dev, const char *why);

/* HCRT_ERR_DEVICE_LOST with a message naming the device, its rank and host, and `op`, when dev was
 * marked lost; HCRT_OK otherwise (one load). Every dispatch of a backend op goes through it. */
hcrt_status_t hcrt__device_gate_slow(const hcrt_device_t *dev, const char *op);
static inline hcrt_status_t hcrt__device_gate(const hcrt_device_t *dev, const char *op)
{
    return atomic_load_explicit(&dev->lost, memory_order_acquire) ? hcrt__device_gate_slow(dev, op) : HCRT_OK;
}

/* ---- the exit policy: failing the job (runtime/fail.c) ----------------------------------------------- */

/*
 * Errors of the caller's own making (exit status HCRT_EXIT_APP or HCRT_EXIT_CONFIG: invalid arguments,
 * mismatched calls found in checking mode, wrong state) are returned as they are; every other failure
 * of a collective, checkpoint or device wait goes through hcrt__fail.
 */
bool hcrt__is_usage_error(hcrt_status_t status);

/*
 * A failure detected on this rank. Under HCRT_ON_FAILURE=abort (the default) it logs one error line
 * naming this rank, its host and device (`dev`, NULL: the context's), then the message, and the exit
 * status, and ends the job (never returns): the `designated` rank at once with MPI_Abort, whose code
 * mpirun returns as its own status, the others after a pause, as a fallback (Open MPI 4.1's mpirun can
 * lose the status when several ranks abort at the same moment). Under HCRT_ON_FAILURE=return it logs
 * the same line, records the message for hcrt_last_error() and returns `status`. Usage errors are
 * returned unlogged.
 */
hcrt_status_t hcrt__fail(hcrt_context_t *ctx, const hcrt_device_t *dev, bool designated, hcrt_status_t status,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Ends the job with `exit_status` whatever the policy (after logging `fmt`): see hcrt__fail. */
_Noreturn void hcrt__fail_abort(const hcrt_context_t *ctx, const hcrt_device_t *dev, bool designated,
                                int exit_status, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "rank R (HOST, BACKEND device I)" for messages. */
void hcrt__fail_who(const hcrt_context_t *ctx, const hcrt_device_t *dev, char *buf, size_t len);

/* Whether a device's health reports it lost: HCRT_ERR_DEVICE_LOST naming it (rank, host, backend, index),
 * else HCRT_OK. For the polls of the deadline loops; NULL and host devices are healthy. */
hcrt_status_t hcrt__device_poll(hcrt_device_t *dev);

/* ---- the watchdog of blocking device waits (runtime/watchdog.c) ------------------------------------ */

/* One registered wait, on the waiting thread's stack. */
typedef struct hcrt__watch {
    struct hcrt__watch *next, *prev;
    hcrt_context_t *ctx;
    hcrt_device_t *dev;
    double start, timeout; /* the wait's operation began at `start` (hcrt__now); timeout 0: none */
    char what[256];        /* "allreduce #3 (16777216 bytes): the work queued on sim device 0" */
} hcrt__watch_t;

/*
 * Registers a wait that is about to block in a device call (hcrt_event_sync): should it pass `timeout`
 * seconds from `start`, or dev be found lost, the watchdog thread ends the job (HCRT_EXIT_TIMEOUT or
 * HCRT_EXIT_DEVICE) naming `fmt`. Returns false, registering nothing, when the caller must poll instead:
 * under HCRT_ON_FAILURE=return (a blocked call cannot be made to return), or without a watchdog thread.
 * Disarm once the call returned.
 */
bool hcrt__watch_arm(hcrt__watch_t *w, hcrt_context_t *ctx, hcrt_device_t *dev, double start, double timeout,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void hcrt__watch_disarm(hcrt__watch_t *w);

/* Whether a device is the host (its pointers may be handed to MPI and dereferenced). */
static inline bool hcrt__device_is_host(const hcrt_device_t *dev)
{
    return (dev->bprops.caps & HCRT_CAP_HOST_ADDRESSABLE) != 0;
}

/* The MPI world communicator of the context (a dup; MPI_COMM_NULL without MPI). */
static inline MPI_Comm hcrt__context_world(const hcrt_context_t *ctx) { return ctx->world; }

/* Monotonic seconds. */
double hcrt__now(void);

/* The lookup of buffers in the allocation table, inline (hcrt__mem_check). */
#include "runtime/alloc_table.h"

#endif /* HCRT_RUNTIME_INTERNAL_H */
