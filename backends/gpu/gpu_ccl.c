/*
 * backends/gpu/gpu_ccl.c - the GPU plugins' vendor collective path: NCCL (cuda) or RCCL (hip), loaded
 * with dlopen() when first needed.
 *
 * Linking the library would make a node without it unable to load the whole backend, so the plugin
 * resolves the library's functions itself, on first need: the probe (coll_get_unique_id with a NULL id,
 * which the runtime makes when it creates a communicator or hcrt-info asks) or the first coll_* call.
 * The library is HCRT_NCCL_LIBRARY (libnccl.so.2) for cuda and HCRT_RCCL_LIBRARY (librccl.so.1) for
 * hip; if it cannot be loaded, every coll_* op answers HCRT_ERR_NOT_SUPPORTED with dlopen's reason, and
 * the runtime stages those devices' buffers through hcrt's own paths instead.
 *
 * RCCL is a port of NCCL with the same C API and ABI, so one set of declarations below serves both;
 * they are NCCL's stable 2.x ABI (enumeration values, the 128-byte unique id, function signatures), kept
 * here so that building needs neither header nor library (Debian ships no RCCL). With nccl.h at hand
 * the build checks them against it (HCRT_HAVE_NCCL_H).
 *
 * The runtime makes the unique id on one rank, broadcasts it over MPI and calls coll_init on every rank
 * of a same-vendor group; the group's operations then go straight to the library, on the runtime's
 * stream. A stream NULL means "synchronous": the communicator's own stream is used and waited for.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_plugin.h"

#if defined(HCRT_GPU_HIP)
#define CCL_NAME        "RCCL"
#define CCL_CONFIG      "HCRT_RCCL_LIBRARY"
#define CCL_DEFAULT_LIB "librccl.so.1"
#else
#define CCL_NAME        "NCCL"
#define CCL_CONFIG      "HCRT_NCCL_LIBRARY"
#define CCL_DEFAULT_LIB "libnccl.so.2"
#endif

/* ---- the library's ABI (NCCL 2.x; RCCL alike) ------------------------------------------------------ */

typedef struct ccl_comm *ccl_comm_t;
typedef struct {
    char internal[128];
} ccl_unique_id_t;
typedef int ccl_result_t;
enum { CCL_SUCCESS = 0, CCL_INVALID_ARGUMENT = 4, CCL_INVALID_USAGE = 5, CCL_IN_PROGRESS = 7 };
enum {
    CCL_INT8 = 0,
    CCL_UINT8 = 1,
    CCL_INT32 = 2,
    CCL_UINT32 = 3,
    CCL_INT64 = 4,
    CCL_UINT64 = 5,
    CCL_FLOAT16 = 6,
    CCL_FLOAT32 = 7,
    CCL_FLOAT64 = 8,
    CCL_BFLOAT16 = 9
};
enum { CCL_SUM = 0, CCL_PROD = 1, CCL_MAX = 2, CCL_MIN = 3, CCL_AVG = 4 };

#ifdef HCRT_HAVE_NCCL_H
#include <nccl.h>
_Static_assert(sizeof(ncclUniqueId) == sizeof(ccl_unique_id_t), "NCCL's unique id is 128 bytes");
_Static_assert((int)ncclSuccess == CCL_SUCCESS && (int)ncclInvalidArgument == CCL_INVALID_ARGUMENT &&
                   (int)ncclInvalidUsage == CCL_INVALID_USAGE && (int)ncclInProgress == CCL_IN_PROGRESS,
               "NCCL's result codes");
_Static_assert((int)ncclInt8 == CCL_INT8 && (int)ncclUint8 == CCL_UINT8 && (int)ncclInt32 == CCL_INT32 &&
                   (int)ncclUint32 == CCL_UINT32 && (int)ncclInt64 == CCL_INT64 && (int)ncclUint64 == CCL_UINT64 &&
                   (int)ncclFloat16 == CCL_FLOAT16 && (int)ncclFloat32 == CCL_FLOAT32 &&
                   (int)ncclFloat64 == CCL_FLOAT64 && (int)ncclBfloat16 == CCL_BFLOAT16,
               "NCCL's data types");
_Static_assert((int)ncclSum == CCL_SUM && (int)ncclProd == CCL_PROD && (int)ncclMax == CCL_MAX &&
                   (int)ncclMin == CCL_MIN && (int)ncclAvg == CCL_AVG,
               "NCCL's reduction ops");
#endif

typedef struct ccl_api {
    ccl_result_t (*GetVersion)(int *version);
    ccl_result_t (*GetUniqueId)(ccl_unique_id_t *id);
    ccl_result_t (*CommInitRank)(ccl_comm_t *comm, int nranks, ccl_unique_id_t id, int rank);
    ccl_result_t (*CommFinalize)(ccl_comm_t comm); /* 2.14+; without it destroy does not flush first */
    ccl_result_t (*CommDestroy)(ccl_comm_t comm);
    ccl_result_t (*CommAbort)(ccl_comm_t comm);
    const char *(*GetErrorString)(ccl_result_t result);
    const char *(*GetLastError)(ccl_comm_t comm); /* 2.13+ */
    ccl_result_t (*AllReduce)(const void *send, void *recv, size_t count, int type, int op, ccl_comm_t comm,
                              gpuStream_t stream);
    ccl_result_t (*ReduceScatter)(const void *send, void *recv, size_t count, int type, int op, ccl_comm_t comm,
                                  gpuStream_t stream);
    ccl_result_t (*AllGather)(const void *send, void *recv, size_t count, int type, ccl_comm_t comm,
                              gpuStream_t stream);
    ccl_result_t (*Broadcast)(const void *send, void *recv, size_t count, int type, int root, ccl_comm_t comm,
                              gpuStream_t stream);
} ccl_api_t;

/* The library is process-wide: loaded once, by whichever plugin state needs it first, never unloaded
 * while the plugin lives (a dlclose would pull the code from under communicators the runtime aborts
 * at finalize). */
static pthread_mutex_t ccl_lock = PTHREAD_MUTEX_INITIALIZER;
static int ccl_loaded; /* 0: not tried, 1: usable, -1: missing or broken */
static char ccl_why[384];
static void *ccl_handle;
static ccl_api_t ccl;

struct hcrt_backend_coll {
    ccl_comm_t comm;
    int dev;
    int nranks;
    gpuStream_t own; /* for calls without a stream */
    struct hcrt_backend_coll *prev, *next;
};

/* Loads the library (once); HCRT_OK when usable, else HCRT_ERR_NOT_SUPPORTED with the reason set. */
static hcrt_status_t ccl_load(gpu_state_t *st)
{
    pthread_mutex_lock(&ccl_lock);
    if (ccl_loaded == 0) {
        const char *name = NULL;
        if (st && st->svc && st->svc->config_get)
            name = st->svc->config_get(st->svc->host, CCL_CONFIG);
        if (name == NULL || name[0] == '\0')
            name = CCL_DEFAULT_LIB;
        ccl_loaded = -1;
        ccl_handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (ccl_handle == NULL) {
            const char *e = dlerror();
            hcrt_gpu_strlcpy(ccl_why, sizeof(ccl_why), e ? e : name);
        } else {
            /* Required: everything but CommFinalize and GetLastError, which older versions lack. */
            static const struct {
                const char *sym;
                size_t off;
                bool need;
            } syms[] = {
                {"ncclGetVersion", offsetof(ccl_api_t, GetVersion), true},
                {"ncclGetUniqueId", offsetof(ccl_api_t, GetUniqueId), true},
                {"ncclCommInitRank", offsetof(ccl_api_t, CommInitRank), true},
                {"ncclCommFinalize", offsetof(ccl_api_t, CommFinalize), false},
                {"ncclCommDestroy", offsetof(ccl_api_t, CommDestroy), true},
                {"ncclCommAbort", offsetof(ccl_api_t, CommAbort), true},
                {"ncclGetErrorString", offsetof(ccl_api_t, GetErrorString), true},
                {"ncclGetLastError", offsetof(ccl_api_t, GetLastError), false},
                {"ncclAllReduce", offsetof(ccl_api_t, AllReduce), true},
                {"ncclReduceScatter", offsetof(ccl_api_t, ReduceScatter), true},
                {"ncclAllGather", offsetof(ccl_api_t, AllGather), true},
                {"ncclBroadcast", offsetof(ccl_api_t, Broadcast), true},
            };
            ccl_loaded = 1;
            for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
                void *f = dlsym(ccl_handle, syms[i].sym);
                memcpy((char *)&ccl + syms[i].off, &f, sizeof(f));
                if (f == NULL && syms[i].need) {
                    snprintf(ccl_why, sizeof(ccl_why), "%s has no %s (not %s 2.x?)", name, syms[i].sym, CCL_NAME);
                    ccl_loaded = -1;
                    break;
                }
            }
            int version = 0;
            if (ccl_loaded > 0 && st)
                hcrt_gpu_log(st, HCRT_LOG_DEBUG, GPU_BACKEND ": loaded %s %d from %s", CCL_NAME,
                             ccl.GetVersion(&version) == CCL_SUCCESS ? version : -1, name);
            if (ccl_loaded < 0) {
                dlclose(ccl_handle);
                ccl_handle = NULL;
            }
        }
    }
    bool ok = ccl_loaded > 0;
    pthread_mutex_unlock(&ccl_lock);
    if (ok)
        return HCRT_OK;
    hcrt_gpu_set_error("%s", ccl_why); /* the reason alone: hcrt-info prints "no vendor collectives: " first */
    return HCRT_ERR_NOT_SUPPORTED;
}

static hcrt_status_t ccl_status_of(ccl_result_t r)
{
    switch (r) {
    case CCL_SUCCESS:
        return HCRT_OK;
    case CCL_INVALID_ARGUMENT:
    case CCL_INVALID_USAGE:
        return HCRT_ERR_INVALID_ARG;
    case CCL_IN_PROGRESS:
        return HCRT_ERR_IN_PROGRESS;
    default:
        return HCRT_ERR_BACKEND; /* unhandled device error, system, internal, remote error */
    }
}

/* Records a library failure with its own detail (GetLastError) when it has any. */
static hcrt_status_t ccl_fail(const struct hcrt_backend_coll *c, int dev, ccl_result_t r, const char *call)
{
    const char *detail = ccl.GetLastError ? ccl.GetLastError(c ? c->comm : NULL) : NULL;
    hcrt_gpu_set_error(GPU_BACKEND " device %d: %s: %s (" CCL_NAME " error %d)%s%s", dev, call, ccl.GetErrorString(r),
                       (int)r, detail && *detail ? ": " : "", detail ? detail : "");
    return ccl_status_of(r);
}

static bool ccl_dtype(hcrt_dtype_t dtype, int *out)
{
    static const int map[HCRT_DTYPE_COUNT] = {
        [HCRT_I8] = CCL_INT8,     [HCRT_U8] = CCL_UINT8,    [HCRT_I32] = CCL_INT32,   [HCRT_U32] = CCL_UINT32,
        [HCRT_I64] = CCL_INT64,   [HCRT_U64] = CCL_UINT64,  [HCRT_F16] = CCL_FLOAT16, [HCRT_BF16] = CCL_BFLOAT16,
        [HCRT_F32] = CCL_FLOAT32, [HCRT_F64] = CCL_FLOAT64,
    };
    if ((unsigned)dtype >= (unsigned)HCRT_DTYPE_COUNT)
        return false;
    *out = map[dtype];
    return true;
}

static bool ccl_op(hcrt_op_t op, int *out)
{
    static const int map[HCRT_OP_COUNT] = {
        [HCRT_OP_SUM] = CCL_SUM, [HCRT_OP_PROD] = CCL_PROD, [HCRT_OP_MIN] = CCL_MIN,
        [HCRT_OP_MAX] = CCL_MAX, [HCRT_OP_AVG] = CCL_AVG,
    };
    if ((unsigned)op >= (unsigned)HCRT_OP_COUNT)
        return false;
    *out = map[op];
    return true;
}

hcrt_status_t hcrt_gpu_coll_get_unique_id(void *state, void *id)
{
    ccl_unique_id_t uid;
    ccl_result_t r;
    hcrt_status_t status;

    if (!state)
        return hcrt_gpu_arg_error("coll_get_unique_id: argument 'state' is NULL");
    if ((status = ccl_load(state)) != HCRT_OK || id == NULL) /* NULL id: the probe */
        return status;
    if ((r = ccl.GetUniqueId(&uid)) != CCL_SUCCESS)
        return ccl_fail(NULL, -1, r, "ncclGetUniqueId");
    memcpy(id, &uid, sizeof uid);
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_coll_init(void *state, int dev, const void *id, int nranks, int rank, hcrt_backend_coll_t **coll)
{
    gpu_state_t *st = state;
    struct hcrt_backend_coll *c;
    ccl_unique_id_t uid;
    hcrt_status_t status;
    ccl_result_t r;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("coll_init: argument 'state' is NULL");
    if (!id)
        return hcrt_gpu_arg_error("coll_init: argument 'id' is NULL");
    if (!coll)
        return hcrt_gpu_arg_error("coll_init: argument 'coll' is NULL");
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return hcrt_gpu_arg_error("coll_init: argument 'rank' (%d) out of range for %d rank(s)", rank, nranks);
    if ((status = ccl_load(st)) != HCRT_OK)
        return status;
    if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
        return status;
    c = calloc(1, sizeof *c);
    if (!c) {
        hcrt_gpu_set_error(GPU_BACKEND ": out of host memory");
        return HCRT_ERR_NO_MEMORY;
    }
    c->dev = dev;
    c->nranks = nranks;
    if ((e = gpuStreamCreateWithFlags(&c->own, gpuStreamNonBlocking)) != gpuSuccess) {
        status = hcrt_gpu_fail(st, dev, e, GPU_BACKEND "StreamCreateWithFlags");
        goto err_free;
    }
    memcpy(&uid, id, sizeof uid);
    if ((r = ccl.CommInitRank(&c->comm, nranks, uid, rank)) != CCL_SUCCESS) {
        status = ccl_fail(NULL, dev, r, "ncclCommInitRank");
        goto err_stream;
    }
    pthread_mutex_lock(&st->lock);
    c->prev = NULL;
    c->next = st->colls;
    if (st->colls)
        st->colls->prev = c;
    st->colls = c;
    pthread_mutex_unlock(&st->lock);
    *coll = c;
    return HCRT_OK;

err_stream:
    (void)gpuStreamDestroy(c->own);
err_free:
    free(c);
    return status;
}

static void ccl_unlink(gpu_state_t *st, struct hcrt_backend_coll *c)
{
    pthread_mutex_lock(&st->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        st->colls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&st->lock);
}

/* Flushes outstanding work (ncclCommFinalize, where the library has it), then frees the communicator. */
hcrt_status_t hcrt_gpu_coll_destroy(void *state, hcrt_backend_coll_t *coll)
{
    gpu_state_t *st = state;
    hcrt_status_t status = HCRT_OK;
    ccl_result_t r;

    if (!st)
        return hcrt_gpu_arg_error("coll_destroy: argument 'state' is NULL");
    if (!coll)
        return HCRT_OK;
    ccl_unlink(st, coll);
    if (gpuSetDevice(coll->dev) != gpuSuccess)
        (void)gpuGetLastError();
    if (ccl.CommFinalize && (r = ccl.CommFinalize(coll->comm)) != CCL_SUCCESS) {
        status = ccl_fail(coll, coll->dev, r, "ncclCommFinalize");
        (void)ccl.CommAbort(coll->comm);
    } else if ((r = ccl.CommDestroy(coll->comm)) != CCL_SUCCESS) {
        status = ccl_fail(coll, coll->dev, r, "ncclCommDestroy");
    }
    (void)gpuStreamDestroy(coll->own);
    free(coll);
    return status;
}

hcrt_status_t hcrt_gpu_coll_abort(void *state, hcrt_backend_coll_t *coll)
{
    gpu_state_t *st = state;
    hcrt_status_t status = HCRT_OK;
    ccl_result_t r;

    if (!st)
        return hcrt_gpu_arg_error("coll_abort: argument 'state' is NULL");
    if (!coll)
        return HCRT_OK;
    ccl_unlink(st, coll);
    if (gpuSetDevice(coll->dev) != gpuSuccess)
        (void)gpuGetLastError();
    /* ncclCommAbort stops the communicator's kernels, so the streams they were queued on drain. */
    if ((r = ccl.CommAbort(coll->comm)) != CCL_SUCCESS)
        status = ccl_fail(NULL, coll->dev, r, "ncclCommAbort");
    (void)gpuStreamDestroy(coll->own);
    free(coll);
    return status;
}

void hcrt_gpu_release_colls(gpu_state_t *st)
{
    /* At finalize the peers may already be gone: abort, never wait. */
    while (st->colls)
        (void)hcrt_gpu_coll_abort(st, st->colls);
}

/* Common prologue of the collectives: device current, stream resolved (NULL: the coll's own stream). */
static hcrt_status_t ccl_begin(gpu_state_t *st, struct hcrt_backend_coll *c, hcrt_backend_stream_t *stream,
                               const char *what, gpuStream_t *s)
{
    hcrt_status_t status;
    if (!st)
        return hcrt_gpu_arg_error("%s: argument 'state' is NULL", what);
    if ((status = ccl_load(st)) != HCRT_OK)
        return status;
    if (!c)
        return hcrt_gpu_arg_error("%s: argument 'coll' is NULL", what);
    if (stream && stream->dev != c->dev)
        return hcrt_gpu_arg_error("%s: argument 'stream' belongs to device %d, the communicator to device %d", what,
                                  stream->dev, c->dev);
    if ((status = hcrt_gpu_enter(st, c->dev)) != HCRT_OK)
        return status;
    *s = stream ? stream->s : c->own;
    return HCRT_OK;
}

static hcrt_status_t ccl_end(gpu_state_t *st, struct hcrt_backend_coll *c, hcrt_backend_stream_t *stream,
                             ccl_result_t r, const char *call)
{
    if (r != CCL_SUCCESS)
        return ccl_fail(c, c->dev, r, call);
    return hcrt_gpu_finish(st, c->dev, c->own, stream == NULL);
}

hcrt_status_t hcrt_gpu_coll_allreduce(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    int t, o;
    gpuStream_t s;
    hcrt_status_t status;

    if (!ccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_allreduce: argument 'dtype' (%d) is not a data type", (int)dtype);
    if (!ccl_op(op, &o))
        return hcrt_gpu_arg_error("coll_allreduce: argument 'op' (%d) is not a reduction op", (int)op);
    if ((status = ccl_begin(state, coll, stream, "coll_allreduce", &s)) != HCRT_OK)
        return status;
    return ccl_end(state, coll, stream, ccl.AllReduce(send, recv, count, t, o, coll->comm, s), "ncclAllReduce");
}

hcrt_status_t hcrt_gpu_coll_reduce_scatter(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                           size_t count, hcrt_dtype_t dtype, hcrt_op_t op,
                                           hcrt_backend_stream_t *stream)
{
    int t, o;
    gpuStream_t s;
    hcrt_status_t status;

    if (!ccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_reduce_scatter: argument 'dtype' (%d) is not a data type", (int)dtype);
    if (!ccl_op(op, &o))
        return hcrt_gpu_arg_error("coll_reduce_scatter: argument 'op' (%d) is not a reduction op", (int)op);
    if ((status = ccl_begin(state, coll, stream, "coll_reduce_scatter", &s)) != HCRT_OK)
        return status;
    return ccl_end(state, coll, stream, ccl.ReduceScatter(send, recv, count, t, o, coll->comm, s), "ncclReduceScatter");
}

hcrt_status_t hcrt_gpu_coll_allgather(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, hcrt_backend_stream_t *stream)
{
    int t;
    gpuStream_t s;
    hcrt_status_t status;

    if (!ccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_allgather: argument 'dtype' (%d) is not a data type", (int)dtype);
    if ((status = ccl_begin(state, coll, stream, "coll_allgather", &s)) != HCRT_OK)
        return status;
    return ccl_end(state, coll, stream, ccl.AllGather(send, recv, count, t, coll->comm, s), "ncclAllGather");
}

hcrt_status_t hcrt_gpu_coll_broadcast(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, int root, hcrt_backend_stream_t *stream)
{
    int t;
    gpuStream_t s;
    hcrt_status_t status;

    if (!ccl_dtype(dtype, &t))
        return hcrt_gpu_arg_error("coll_broadcast: argument 'dtype' (%d) is not a data type", (int)dtype);
    if (coll && (root < 0 || root >= coll->nranks))
        return hcrt_gpu_arg_error("coll_broadcast: argument 'root' (%d) out of range for %d rank(s)", root,
                                  coll->nranks);
    if ((status = ccl_begin(state, coll, stream, "coll_broadcast", &s)) != HCRT_OK)
        return status;
    return ccl_end(state, coll, stream, ccl.Broadcast(send, recv, count, t, root, coll->comm, s), "ncclBroadcast");
}
