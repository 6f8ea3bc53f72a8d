/*
 * backends/cpu/cpu.c - the built-in host backend: one device, "host", whose memory is ordinary host
 * memory.
 *
 * It is compiled into libhcrt (so a context always has a device) and exposes the same v1 table as a
 * plugin, hcrt__cpu_backend. Its streams are real: each owns a worker thread that runs the stream's ops
 * in order (backends/common/workqueue.c), so asynchronous copies overlap with the caller exactly as they
 * would on an accelerator, and events time the work itself. Device memory and pinned host memory are
 * both page-aligned pre-touched mmap blocks (backends/common/hostmem.c), registered so that freeing a
 * foreign pointer is an error instead of a crash.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/host_kernels.h"
#include "backends/common/hostcomp.h"
#include "backends/common/hostmem.h"
#include "backends/common/hostreg.h"
#include "backends/common/workqueue.h"
#include "runtime/internal.h"

typedef struct cpu_state {
    hcrt__hc_host_t hc; /* first: the shared compute table finds its submit() here (hostcomp.h) */
    const hcrt_backend_services_t *svc;
    hcrt__hostmem_t *dev_mem;  /* mem_alloc blocks */
    hcrt__hostmem_t *host_mem; /* host_alloc blocks */
    pthread_mutex_t mu;        /* guards the health fields and the two lists */
    hcrt_status_t last_status;
    char last_error[256];
    hcrt__list_t streams; /* live streams, freed by finalize if the user did not */
    hcrt__list_t events;
    hcrt__hostreg_t reg; /* host_register ranges */
} cpu_state_t;

struct hcrt_backend_stream {
    hcrt__list_t link; /* first: on the state's stream list */
    hcrt__wq_t *wq;
};

struct hcrt_backend_event {
    hcrt__list_t link; /* first: on the state's event list */
    hcrt__wq_event_t *ev;
};

/* Text of this thread's most recent failure (the ABI allows per-thread detail). */
static _Thread_local char cpu_err[256];

/* Records a failure for last_error() and health(), and returns `status`. */
__attribute__((format(printf, 3, 4))) static hcrt_status_t cpu_fail(cpu_state_t *st, hcrt_status_t status,
                                                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cpu_err, sizeof(cpu_err), fmt, ap);
    va_end(ap);
    if (st) {
        pthread_mutex_lock(&st->mu);
        st->last_status = status;
        snprintf(st->last_error, sizeof(st->last_error), "%s", cpu_err);
        pthread_mutex_unlock(&st->mu);
    }
    return status;
}

#define CPU_CHECK_DEV(st, dev)                                                                                         \
    do {                                                                                                               \
        if ((dev) != 0)                                                                                                \
            return cpu_fail((st), HCRT_ERR_INVALID_ARG, "cpu: %s: device %d does not exist (1 device)", __func__,      \
                            (dev));                                                                                    \
    } while (0)

#define CPU_CHECK_PTR(st, p, name)                                                                                     \
    do {                                                                                                               \
        if (!(p))                                                                                                      \
            return cpu_fail((st), HCRT_ERR_INVALID_ARG, "cpu: %s: argument '%s' is NULL", __func__, (name));           \
    } while (0)

/* ---- the work an op does, run inline (no stream) or by a stream's worker ------------------------ */

typedef enum cpu_op_kind { CPU_MEMSET, CPU_MEMCPY, CPU_REDUCE3, CPU_SCALE } cpu_op_kind_t;

typedef struct cpu_op {
    cpu_op_kind_t kind;
    void *dst;
    const void *src;
    const void *src2; /* reduce3: dst = op(src, src2) */
    size_t bytes; /* memset, memcpy */
    int value;    /* memset */
    size_t count; /* reduce, scale */
    hcrt_dtype_t dtype;
    hcrt_op_t op;
    double factor;
} cpu_op_t;

static hcrt_status_t cpu_exec(void *arg, char *msg)
{
    const cpu_op_t *o = arg;
    hcrt_status_t status = HCRT_OK;
    switch (o->kind) {
    case CPU_MEMSET:
        memset(o->dst, o->value, o->bytes);
        break;
    case CPU_MEMCPY:
        memmove(o->dst, o->src, o->bytes);
        break;
    case CPU_REDUCE3:
        status = hcrt__host_reduce3(o->dst, o->src, o->src2, o->count, o->dtype, o->op);
        if (status != HCRT_OK)
            snprintf(msg, HCRT__WQ_MSG_LEN, "cpu: reduce: buffers overlap partially");
        break;
    case CPU_SCALE:
        status = hcrt__host_scale(o->dst, o->count, o->dtype, o->factor);
        break;
    }
    return status;
}

/* Runs the op now, or queues it behind the stream's earlier work. */
static hcrt_status_t cpu_run(cpu_state_t *st, const cpu_op_t *o, hcrt_backend_stream_t *stream)
{
    if (stream) {
        hcrt_status_t s = hcrt__wq_submit(stream->wq, cpu_exec, o, sizeof(*o));
        if (s != HCRT_OK)
            return cpu_fail(st, s, "cpu: cannot queue work on stream: %s", hcrt_status_string(s));
        return HCRT_OK;
    }
    char msg[HCRT__WQ_MSG_LEN] = "";
    cpu_op_t copy = *o;
    hcrt_status_t s = cpu_exec(&copy, msg);
    if (s != HCRT_OK)
        return cpu_fail(st, s, "%s", msg[0] ? msg : hcrt_status_string(s));
    return HCRT_OK;
}

/* ---- the compute extension: the host-run backends' shared table (backends/common/hostcomp.c) -------- */

static hcrt_status_t cpu_hc_submit(void *state, int dev, hcrt__hc_op_t *op, hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    if (stream) {
        hcrt_status_t s = hcrt__wq_submit(stream->wq, hcrt__hc_exec, op, sizeof(*op));
        if (s != HCRT_OK)
            return cpu_fail(st, s, "cpu: cannot queue %s on stream: %s", op->what, hcrt_status_string(s));
        return HCRT_OK;
    }
    char msg[HCRT__WQ_MSG_LEN] = "";
    hcrt_status_t s = hcrt__hc_exec(op, msg);
    if (s != HCRT_OK)
        return cpu_fail(st, s, "cpu: %s", msg);
    return HCRT_OK;
}

static hcrt_status_t cpu_hc_fail(void *state, int dev, hcrt_status_t status, const char *msg)
{
    (void)dev;
    return cpu_fail(state, status, "cpu: %s", msg);
}

/* ---- lifetime ------------------------------------------------------------------------------------ */

static hcrt_status_t cpu_init(const hcrt_backend_services_t *svc, void **state)
{
    cpu_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return cpu_fail(NULL, HCRT_ERR_NO_MEMORY, "cpu: out of host memory at init");
    st->hc = (hcrt__hc_host_t){cpu_hc_submit, cpu_hc_fail};
    st->svc = svc;
    pthread_mutex_init(&st->mu, NULL);
    hcrt__list_init(&st->streams);
    hcrt__list_init(&st->events);
    hcrt__hostreg_init(&st->reg);
    if (hcrt__hostmem_create(&st->dev_mem) != HCRT_OK || hcrt__hostmem_create(&st->host_mem) != HCRT_OK) {
        hcrt__hostmem_destroy(st->dev_mem);
        hcrt__hostreg_fini(&st->reg);
        pthread_mutex_destroy(&st->mu);
        free(st);
        return cpu_fail(NULL, HCRT_ERR_NO_MEMORY, "cpu: out of host memory at init");
    }
    *state = st;
    return HCRT_OK;
}

static void cpu_finalize(void *state)
{
    cpu_state_t *st = state;
    if (!st)
        return;
    while (st->streams.next != &st->streams) {
        hcrt_backend_stream_t *s = (hcrt_backend_stream_t *)st->streams.next;
        hcrt__list_del(&s->link);
        hcrt__wq_destroy(s->wq);
        free(s);
    }
    while (st->events.next != &st->events) {
        hcrt_backend_event_t *e = (hcrt_backend_event_t *)st->events.next;
        hcrt__list_del(&e->link);
        hcrt__wq_event_destroy(e->ev);
        free(e);
    }
    hcrt__hostmem_destroy(st->dev_mem);
    hcrt__hostmem_destroy(st->host_mem);
    hcrt__hostreg_fini(&st->reg);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static const char *cpu_last_error(void *state)
{
    (void)state;
    return cpu_err;
}

/* ---- devices ------------------------------------------------------------------------------------- */

static hcrt_status_t cpu_device_count(void *state, int *count)
{
    CPU_CHECK_PTR((cpu_state_t *)state, count, "count");
    *count = 1;
    return HCRT_OK;
}

static hcrt_status_t cpu_device_props(void *state, int dev, hcrt_backend_device_props_t *props)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    CPU_CHECK_PTR(st, props, "props");
    memset(props, 0, sizeof(*props));
    props->struct_size = sizeof(*props);
    snprintf(props->name, sizeof(props->name), "host");
    snprintf(props->vendor, sizeof(props->vendor), "hcrt");
    props->pci_bus_id[0] = '\0';
    const long page = sysconf(_SC_PAGESIZE);
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long avail = sysconf(_SC_AVPHYS_PAGES);
    props->total_memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    props->free_memory = avail > 0 && page > 0 ? (uint64_t)avail * (uint64_t)page : 0;
    props->speed = 1.0;
    props->caps = HCRT_CAP_HOST_ADDRESSABLE | HCRT_CAP_PINNED_HOST;
    props->numa_node = -1;
    return HCRT_OK;
}

static hcrt_status_t cpu_health(void *state, int dev, hcrt_backend_health_t *health)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    CPU_CHECK_PTR(st, health, "health");
    memset(health, 0, sizeof(*health));
    health->struct_size = sizeof(*health);
    pthread_mutex_lock(&st->mu);
    health->last_status = st->last_status;
    snprintf(health->last_error, sizeof(health->last_error), "%s", st->last_error);
    pthread_mutex_unlock(&st->mu);
    return HCRT_OK;
}

/* ---- memory -------------------------------------------------------------------------------------- */

static hcrt_status_t cpu_mem_alloc(void *state, int dev, size_t bytes, void **ptr)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    CPU_CHECK_PTR(st, ptr, "ptr");
    if (bytes == 0)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: mem_alloc: argument 'bytes' is 0");
    if (hcrt__hostmem_alloc(st->dev_mem, bytes, ptr) != HCRT_OK)
        return cpu_fail(st, HCRT_ERR_NO_MEMORY, "cpu: out of host memory (requested %zu bytes)", bytes);
    return HCRT_OK;
}

static hcrt_status_t cpu_mem_free(void *state, int dev, void *ptr)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    if (hcrt__hostmem_free(st->dev_mem, ptr) != HCRT_OK)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: mem_free: %p was not allocated by mem_alloc", ptr);
    return HCRT_OK;
}

static hcrt_status_t cpu_host_alloc(void *state, size_t bytes, void **ptr)
{
    cpu_state_t *st = state;
    CPU_CHECK_PTR(st, ptr, "ptr");
    if (bytes == 0)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: host_alloc: argument 'bytes' is 0");
    if (hcrt__hostmem_alloc(st->host_mem, bytes, ptr) != HCRT_OK)
        return cpu_fail(st, HCRT_ERR_NO_MEMORY, "cpu: out of host memory (requested %zu bytes)", bytes);
    return HCRT_OK;
}

static hcrt_status_t cpu_host_free(void *state, void *ptr)
{
    cpu_state_t *st = state;
    if (hcrt__hostmem_free(st->host_mem, ptr) != HCRT_OK)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: host_free: %p was not allocated by host_alloc", ptr);
    return HCRT_OK;
}

/* ---- data movement ------------------------------------------------------------------------------- */

static hcrt_status_t cpu_memset(void *state, int dev, void *ptr, int value, size_t bytes, hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    if (bytes == 0)
        return HCRT_OK;
    CPU_CHECK_PTR(st, ptr, "ptr");
    const cpu_op_t o = {.kind = CPU_MEMSET, .dst = ptr, .bytes = bytes, .value = value};
    return cpu_run(st, &o, stream);
}

static hcrt_status_t cpu_memcpy(void *state, int dev, void *dst, const void *src, size_t bytes, hcrt_copy_kind_t kind,
                                hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    if ((unsigned)kind > HCRT_COPY_D2D)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: memcpy: argument 'kind' is %d", (int)kind);
    if (bytes == 0)
        return HCRT_OK;
    CPU_CHECK_PTR(st, dst, "dst");
    CPU_CHECK_PTR(st, src, "src");
    const cpu_op_t o = {.kind = CPU_MEMCPY, .dst = dst, .src = src, .bytes = bytes};
    return cpu_run(st, &o, stream);
}

static hcrt_status_t cpu_memcpy_peer(void *state, int dst_dev, void *dst, int src_dev, const void *src, size_t bytes,
                                     hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dst_dev);
    CPU_CHECK_DEV(st, src_dev);
    return cpu_memcpy(state, 0, dst, src, bytes, HCRT_COPY_D2D, stream);
}

/* ---- streams and events -------------------------------------------------------------------------- */

static hcrt_status_t cpu_stream_create(void *state, int dev, hcrt_backend_stream_t **stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    CPU_CHECK_PTR(st, stream, "stream");
    hcrt_backend_stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        return cpu_fail(st, HCRT_ERR_NO_MEMORY, "cpu: out of host memory creating a stream");
    hcrt_status_t status = hcrt__wq_create(&s->wq);
    if (status != HCRT_OK) {
        free(s);
        return cpu_fail(st, status, "cpu: cannot start a stream worker thread");
    }
    pthread_mutex_lock(&st->mu);
    hcrt__list_add(&st->streams, &s->link);
    pthread_mutex_unlock(&st->mu);
    *stream = s;
    return HCRT_OK;
}

static hcrt_status_t cpu_stream_sync(void *state, hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_PTR(st, stream, "stream");
    char msg[HCRT__WQ_MSG_LEN];
    hcrt_status_t status = hcrt__wq_sync(stream->wq, msg);
    if (status != HCRT_OK)
        return cpu_fail(st, status, "%s", msg);
    return HCRT_OK;
}

static hcrt_status_t cpu_stream_destroy(void *state, hcrt_backend_stream_t *stream)
{
    if (!stream)
        return HCRT_OK;
    cpu_state_t *st = state;
    hcrt_status_t status = cpu_stream_sync(state, stream);
    pthread_mutex_lock(&st->mu);
    hcrt__list_del(&stream->link);
    pthread_mutex_unlock(&st->mu);
    hcrt__wq_destroy(stream->wq);
    free(stream);
    return status;
}

static hcrt_status_t cpu_event_create(void *state, int dev, hcrt_backend_event_t **event)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    CPU_CHECK_PTR(st, event, "event");
    hcrt_backend_event_t *e = calloc(1, sizeof(*e));
    if (!e || hcrt__wq_event_create(&e->ev) != HCRT_OK) {
        free(e);
        return cpu_fail(st, HCRT_ERR_NO_MEMORY, "cpu: out of host memory creating an event");
    }
    pthread_mutex_lock(&st->mu);
    hcrt__list_add(&st->events, &e->link);
    pthread_mutex_unlock(&st->mu);
    *event = e;
    return HCRT_OK;
}

static hcrt_status_t cpu_event_destroy(void *state, hcrt_backend_event_t *event)
{
    cpu_state_t *st = state;
    if (!event)
        return HCRT_OK;
    pthread_mutex_lock(&st->mu);
    hcrt__list_del(&event->link);
    pthread_mutex_unlock(&st->mu);
    hcrt__wq_event_destroy(event->ev);
    free(event);
    return HCRT_OK;
}

static hcrt_status_t cpu_event_record(void *state, hcrt_backend_event_t *event, hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_PTR(st, event, "event");
    hcrt_status_t status = hcrt__wq_event_record(event->ev, stream ? stream->wq : NULL);
    if (status != HCRT_OK)
        return cpu_fail(st, status, "cpu: cannot record event: %s", hcrt_status_string(status));
    return HCRT_OK;
}

static hcrt_status_t cpu_event_sync(void *state, hcrt_backend_event_t *event)
{
    cpu_state_t *st = state;
    CPU_CHECK_PTR(st, event, "event");
    char msg[HCRT__WQ_MSG_LEN];
    hcrt_status_t status = hcrt__wq_event_sync(event->ev, msg);
    if (status != HCRT_OK)
        return cpu_fail(st, status, "%s", msg);
    return HCRT_OK;
}

static hcrt_status_t cpu_event_query(void *state, hcrt_backend_event_t *event, bool *done)
{
    cpu_state_t *st = state;
    CPU_CHECK_PTR(st, event, "event");
    CPU_CHECK_PTR(st, done, "done");
    *done = hcrt__wq_event_query(event->ev);
    return HCRT_OK;
}

static hcrt_status_t cpu_event_elapsed(void *state, hcrt_backend_event_t *start, hcrt_backend_event_t *end, float *ms)
{
    cpu_state_t *st = state;
    CPU_CHECK_PTR(st, start, "start");
    CPU_CHECK_PTR(st, end, "end");
    CPU_CHECK_PTR(st, ms, "ms");
    hcrt_status_t status = hcrt__wq_event_elapsed(start->ev, end->ev, ms);
    if (status != HCRT_OK)
        return cpu_fail(st, status, "cpu: event_elapsed: an event has not completed");
    return HCRT_OK;
}

/* ---- kernels ------------------------------------------------------------------------------------- */

/* Checks dtype, op (when has_op) and count of a kernel call. */
static hcrt_status_t cpu_check_kernel_args(cpu_state_t *st, const char *fn, hcrt_dtype_t dtype, bool has_op,
                                           hcrt_op_t op, size_t count)
{
    if ((unsigned)dtype >= HCRT_DTYPE_COUNT)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: %s: argument 'dtype' is %d", fn, (int)dtype);
    if (has_op && (unsigned)op >= HCRT_OP_COUNT)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: %s: argument 'op' is %d", fn, (int)op);
    if (count > SIZE_MAX / 8)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: %s: argument 'count' %zu is too large", fn, count);
    return HCRT_OK;
}

static hcrt_status_t cpu_reduce3(void *state, int dev, void *dst, const void *a, const void *b, size_t count,
                                 hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    hcrt_status_t status = cpu_check_kernel_args(st, "reduce3", dtype, true, op, count);
    if (status != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    CPU_CHECK_PTR(st, dst, "dst");
    CPU_CHECK_PTR(st, a, "a");
    CPU_CHECK_PTR(st, b, "b");
    const cpu_op_t o = {.kind = CPU_REDUCE3, .dst = dst, .src = a, .src2 = b, .count = count, .dtype = dtype, .op = op};
    return cpu_run(st, &o, stream);
}

/* reduce is reduce3 with dst as its left operand. */
static hcrt_status_t cpu_reduce(void *state, int dev, void *dst, const void *src, size_t count, hcrt_dtype_t dtype,
                                hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    CPU_CHECK_PTR((cpu_state_t *)state, src || count == 0, "src");
    return cpu_reduce3(state, dev, dst, dst, src, count, dtype, op, stream);
}

static hcrt_status_t cpu_scale(void *state, int dev, void *ptr, size_t count, hcrt_dtype_t dtype, double factor,
                               hcrt_backend_stream_t *stream)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    hcrt_status_t status = cpu_check_kernel_args(st, "scale", dtype, false, HCRT_OP_SUM, count);
    if (status != HCRT_OK)
        return status;
    if (count == 0)
        return HCRT_OK;
    CPU_CHECK_PTR(st, ptr, "ptr");
    const cpu_op_t o = {.kind = CPU_SCALE, .dst = ptr, .count = count, .dtype = dtype, .factor = factor};
    return cpu_run(st, &o, stream);
}

/* The cpu device's memory is host memory: a registration maps nothing (the address stays) and is only
 * recorded, for the overlap and unregister checks every backend makes. */
static hcrt_status_t cpu_host_register(void *state, int dev, void *ptr, size_t bytes, void **dev_ptr)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    CPU_CHECK_PTR(st, ptr, "ptr");
    CPU_CHECK_PTR(st, dev_ptr, "dev_ptr");
    if (bytes == 0)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: host_register: argument 'bytes' is 0");
    hcrt_status_t status = hcrt__hostreg_add(&st->reg, dev, ptr, bytes);
    if (status != HCRT_OK)
        return cpu_fail(st, status, "cpu: host_register: [%p, +%zu) %s", ptr, bytes,
                        status == HCRT_ERR_NO_MEMORY ? "cannot be recorded (out of memory)"
                                                     : "overlaps a registered range");
    *dev_ptr = ptr;
    return HCRT_OK;
}

static hcrt_status_t cpu_host_unregister(void *state, int dev, void *ptr)
{
    cpu_state_t *st = state;
    CPU_CHECK_DEV(st, dev);
    CPU_CHECK_PTR(st, ptr, "ptr");
    if (hcrt__hostreg_remove(&st->reg, dev, ptr) != HCRT_OK)
        return cpu_fail(st, HCRT_ERR_INVALID_ARG, "cpu: host_unregister: argument 'ptr' (%p) is not a registered range",
                        ptr);
    return HCRT_OK;
}

const hcrt_backend_v1_t hcrt__cpu_backend = {
    .struct_size = sizeof(hcrt_backend_v1_t),
    .abi_version = HCRT_BACKEND_ABI_VERSION,
    .name = "cpu",
    .init = cpu_init,
    .finalize = cpu_finalize,
    .last_error = cpu_last_error,
    .device_count = cpu_device_count,
    .device_props = cpu_device_props,
    .health = cpu_health,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .memset = cpu_memset,
    .memcpy = cpu_memcpy,
    .memcpy_peer = cpu_memcpy_peer,
    .stream_create = cpu_stream_create,
    .stream_destroy = cpu_stream_destroy,
    .stream_sync = cpu_stream_sync,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .event_sync = cpu_event_sync,
    .event_query = cpu_event_query,
    .event_elapsed = cpu_event_elapsed,
    .reduce = cpu_reduce,
    .scale = cpu_scale,
    .host_register = cpu_host_register,
    .host_unregister = cpu_host_unregister,
    .reduce3 = cpu_reduce3,
    .compute = &hcrt__hc_table,
};
