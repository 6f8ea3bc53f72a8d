/*
 * backends/gpu/gpu_plugin.h - what the files of a GPU runtime plugin share (internal, never installed).
 *
 * The cuda and hip plugins are one implementation of hcrt/backend.h written against a thin vendor map:
 * gpu_core.c, gpu_memory.c and gpu_exec.c are compiled twice, once with gpu_vendor_cuda.h (the cuda
 * plugin) and once with -DHCRT_GPU_HIP and backends/hip/gpu_vendor_hip.h (the hip plugin). CUDA and HIP
 * mirror each other call for call, so the only differences are names, error classes and the few device
 * attributes that exist on one side only. Each plugin is its own shared module, so the hcrt_gpu_ names
 * below never meet in one link.
 */
#ifndef HCRT_GPU_PLUGIN_H
#define HCRT_GPU_PLUGIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(HCRT_GPU_HIP)
#include "gpu_vendor_hip.h"
#else
#include "gpu_vendor_cuda.h"
#endif

#include "backends/common/hostreg.h"
#include "hcrt/backend.h"

#define GPU_ALLOC_BUCKETS 256

/* What the plugin knows about one device; the identity fields are read once at init. */
typedef struct gpu_device {
    char name[128];
    char pci_bus_id[32]; /* lower case, "0000:3b:00.0" */
    int numa_node;       /* host NUMA node the vendor reports, -1 if it does not */
    int sm_count;
    int max_blocks; /* grid size cap for the kernels: a few blocks per multiprocessor */
    double speed;   /* see gpu_speed_estimate() in gpu_core.c */
    uint64_t caps;
    uint64_t total_memory;

    pthread_mutex_t lock; /* guards the fields below */
    bool lost;            /* a sticky error was seen: every later op fails with DEVICE_LOST */
    hcrt_status_t last_status;
    char last_error[256];
    unsigned char *peer_enabled; /* [src] != 0 once peer access from this device to src is on */
} gpu_device_t;

struct hcrt_backend_stream {
    int dev;
    gpuStream_t s;
    struct hcrt_backend_stream *prev, *next;
};

struct hcrt_backend_event {
    int dev;
    gpuEvent_t e;
    bool recorded;
    struct hcrt_backend_event *prev, *next;
};

/* One live allocation (device memory, dev >= 0, or pinned host memory, dev == -1). */
typedef struct gpu_alloc {
    void *ptr;
    int dev;
    struct gpu_alloc *next;
} gpu_alloc_t;

typedef struct gpu_state {
    const hcrt_backend_services_t *svc;
    int ndev;
    gpu_device_t *devs;

    /* Everything still alive, so finalize() can release it. */
    pthread_mutex_t lock;
    struct hcrt_backend_stream *streams;
    struct hcrt_backend_event *events;
    struct hcrt_backend_coll *colls;
    gpu_alloc_t *allocs[GPU_ALLOC_BUCKETS];
    /* Host ranges registered with host_register, by the device they were registered on. The vendor
     * refuses an overlap too, but its "already registered" also covers memory pinned by anyone else in
     * the process; this record tells our own overlaps apart (an argument error, as the ABI asks) before
     * the vendor is called, and lets finalize() end what the runtime left registered. */
    hcrt__hostreg_t hostreg;
    /* The vendor BLAS of the compute extension's gemm (cuda_blas.c), created on first use; NULL before. */
    void *blas;
} gpu_state_t;

/* Copies src into dst[size], truncating (vendor texts and names have no fixed bound). */
static inline void hcrt_gpu_strlcpy(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    while (n + 1 < size && src[n])
        n++;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
    if (size)
        dst[n] = '\0';
}

/* ---- errors (gpu_core.c) ---- */

/* Sets this thread's last_error() text. */
void hcrt_gpu_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Records an argument error ("<backend>: FUNC: argument 'x' ...") and returns HCRT_ERR_INVALID_ARG. */
hcrt_status_t hcrt_gpu_arg_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Records a failed vendor call: the text "<backend> device D: CALL: <vendor text> (<error name>, <code>)"
 * goes to this thread's last_error() and, with dev >= 0, to the device's health record; a sticky error
 * marks the device lost. Clears the vendor's per-thread error so it does not leak into a later call.
 * Returns the hcrt status the error maps to.
 */
hcrt_status_t hcrt_gpu_fail(gpu_state_t *st, int dev, gpuError_t e, const char *call);

/* Checks dev, refuses a lost device, and makes dev current on this thread. */
hcrt_status_t hcrt_gpu_enter(gpu_state_t *st, int dev);

/* Resolves an op's stream: NULL means GPU_SYNC_STREAM and *sync = true. A stream of another device is an
 * argument error (`what` names the op). */
hcrt_status_t hcrt_gpu_stream_of(int dev, hcrt_backend_stream_t *stream, const char *what, gpuStream_t *s, bool *sync);

/* Waits for s when sync is set (the end of every "synchronous" op). */
hcrt_status_t hcrt_gpu_finish(gpu_state_t *st, int dev, gpuStream_t s, bool sync);

/* Logs through the runtime's logger when the level is enabled. */
void hcrt_gpu_log(gpu_state_t *st, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- ops (the table's entries) ---- */

/* gpu_core.c */
hcrt_status_t hcrt_gpu_init(const hcrt_backend_services_t *svc, void **state);
void hcrt_gpu_finalize(void *state);
const char *hcrt_gpu_last_error(void *state);
hcrt_status_t hcrt_gpu_device_count(void *state, int *count);
hcrt_status_t hcrt_gpu_device_props(void *state, int dev, hcrt_backend_device_props_t *props);
hcrt_status_t hcrt_gpu_health(void *state, int dev, hcrt_backend_health_t *health);

/* gpu_memory.c */
hcrt_status_t hcrt_gpu_mem_alloc(void *state, int dev, size_t bytes, void **ptr);
hcrt_status_t hcrt_gpu_mem_free(void *state, int dev, void *ptr);
hcrt_status_t hcrt_gpu_host_alloc(void *state, size_t bytes, void **ptr);
hcrt_status_t hcrt_gpu_host_free(void *state, void *ptr);
hcrt_status_t hcrt_gpu_memset(void *state, int dev, void *ptr, int value, size_t bytes, hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_memcpy(void *state, int dev, void *dst, const void *src, size_t bytes, hcrt_copy_kind_t kind,
                              hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_memcpy_peer(void *state, int dst_dev, void *dst, int src_dev, const void *src, size_t bytes,
                                   hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_host_register(void *state, int dev, void *ptr, size_t bytes, void **dev_ptr);
hcrt_status_t hcrt_gpu_host_unregister(void *state, int dev, void *ptr);
/* Frees every allocation and ends every host registration still alive (finalize). */
void hcrt_gpu_release_allocs(gpu_state_t *st);

/* gpu_exec.c */
hcrt_status_t hcrt_gpu_stream_create(void *state, int dev, hcrt_backend_stream_t **stream);
hcrt_status_t hcrt_gpu_stream_destroy(void *state, hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_stream_sync(void *state, hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_event_create(void *state, int dev, hcrt_backend_event_t **event);
hcrt_status_t hcrt_gpu_event_destroy(void *state, hcrt_backend_event_t *event);
hcrt_status_t hcrt_gpu_event_record(void *state, hcrt_backend_event_t *event, hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_event_sync(void *state, hcrt_backend_event_t *event);
hcrt_status_t hcrt_gpu_event_query(void *state, hcrt_backend_event_t *event, bool *done);
hcrt_status_t hcrt_gpu_event_elapsed(void *state, hcrt_backend_event_t *start, hcrt_backend_event_t *end, float *ms);
hcrt_status_t hcrt_gpu_reduce(void *state, int dev, void *dst, const void *src, size_t count, hcrt_dtype_t dtype,
                              hcrt_op_t op, hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_scale(void *state, int dev, void *ptr, size_t count, hcrt_dtype_t dtype, double factor,
                             hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_reduce3(void *state, int dev, void *dst, const void *a, const void *b, size_t count,
                               hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream);
/* Destroys every stream and event still alive (finalize). */
void hcrt_gpu_release_exec(gpu_state_t *st);

/* The kernel launchers (gpu_kernels.cuh, built by nvcc/hipcc). Return the vendor error code. */
int HCRT_GPU_SYM(launch_reduce)(void *dst, const void *src, size_t count, int dtype, int op, void *stream,
                                int max_blocks);
int HCRT_GPU_SYM(launch_scale)(void *ptr, size_t count, int dtype, double factor, void *stream, int max_blocks);
int HCRT_GPU_SYM(launch_reduce3)(void *dst, const void *a, const void *b, size_t count, int dtype, int op, void *stream,
                                 int max_blocks);

/* ---- the compute extension (gpu_compute.c; kernels in gpu_compute.cuh) ---- */

extern const hcrt_backend_compute_v1_t hcrt_gpu_compute_table;

/*
 * gemm through the vendor BLAS (cuda: cuBLAS, opened on first use by cuda_blas.c; hip: hip_blas.c has
 * none), dev current, enqueued on s. HCRT_ERR_NOT_SUPPORTED when the library cannot be had (or cannot do
 * these sizes): the caller runs hcrt's gemm kernel instead. Other errors carry the library's text.
 */
hcrt_status_t hcrt_gpu_blas_gemm(gpu_state_t *st, int dev, gpuStream_t s, bool trans_a, bool trans_b, size_t m,
                                 size_t n, size_t k, float alpha, const void *a, size_t lda, const void *b, size_t ldb,
                                 float beta, float *c, size_t ldc, hcrt_dtype_t dtype);
/* Destroys what hcrt_gpu_blas_gemm created (finalize). */
void hcrt_gpu_blas_release(gpu_state_t *st);

int HCRT_GPU_SYM(launch_gemm)(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha, const void *a,
                              size_t lda, const void *b, size_t ldb, float beta, float *c, size_t ldc, int dtype,
                              void *stream);
int HCRT_GPU_SYM(launch_bias_add)(float *y, const float *x, const float *bias, size_t rows, size_t cols, void *stream,
                                  int max_blocks);
int HCRT_GPU_SYM(launch_relu)(float *y, const float *x, size_t count, void *stream, int max_blocks);
int HCRT_GPU_SYM(launch_relu_backward)(float *dx, const float *dy, const float *act, size_t count, void *stream,
                                       int max_blocks);
int HCRT_GPU_SYM(launch_softmax_xent)(const float *logits, const int32_t *labels, size_t rows, size_t classes,
                                      float *loss, float *dlogits, int accumulate, void *stream);
int HCRT_GPU_SYM(launch_col_sum)(float *out, const float *x, size_t rows, size_t cols, int accumulate, void *stream,
                                 int max_blocks);
int HCRT_GPU_SYM(launch_optim)(const hcrt_backend_optim_t *opt, float *param, const float *grad, float *state,
                               size_t count, void *stream, int max_blocks);
int HCRT_GPU_SYM(launch_cast)(void *dst, int dst_dtype, const void *src, int src_dtype, size_t count, void *stream,
                              int max_blocks);

/* ---- vendor collectives (gpu_ccl.c, only with HCRT_GPU_CCL): NCCL or RCCL, loaded when needed ---- */
#ifdef HCRT_GPU_CCL
/* Aborts every communicator still alive (finalize). */
void hcrt_gpu_release_colls(gpu_state_t *st);
hcrt_status_t hcrt_gpu_coll_get_unique_id(void *state, void *id);
hcrt_status_t hcrt_gpu_coll_init(void *state, int dev, const void *id, int nranks, int rank,
                                 hcrt_backend_coll_t **coll);
hcrt_status_t hcrt_gpu_coll_destroy(void *state, hcrt_backend_coll_t *coll);
hcrt_status_t hcrt_gpu_coll_abort(void *state, hcrt_backend_coll_t *coll);
hcrt_status_t hcrt_gpu_coll_allreduce(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_coll_reduce_scatter(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                           size_t count, hcrt_dtype_t dtype, hcrt_op_t op,
                                           hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_coll_allgather(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, hcrt_backend_stream_t *stream);
hcrt_status_t hcrt_gpu_coll_broadcast(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, int root, hcrt_backend_stream_t *stream);
/* The table entries of the vendor collective family (both plugins' tables use this, followed by a comma). */
#define HCRT_GPU_COLL_OPS                                                                                              \
    .coll_unique_id_size = 128, .coll_get_unique_id = hcrt_gpu_coll_get_unique_id, .coll_init = hcrt_gpu_coll_init,    \
    .coll_destroy = hcrt_gpu_coll_destroy, .coll_abort = hcrt_gpu_coll_abort,                                          \
    .coll_allreduce = hcrt_gpu_coll_allreduce, .coll_reduce_scatter = hcrt_gpu_coll_reduce_scatter,                    \
    .coll_allgather = hcrt_gpu_coll_allgather, .coll_broadcast = hcrt_gpu_coll_broadcast
#else
/* Without the vendor library the family stays NULL; the entry keeps the tables' syntax the same. */
#define HCRT_GPU_COLL_OPS .coll_unique_id_size = 0
#endif

#endif /* HCRT_GPU_PLUGIN_H */
