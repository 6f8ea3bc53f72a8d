/*
 * backends/sim/sim.c - the sim backend plugin: its v1 table, devices, memory, copies, streams, events
 * and kernels.
 *
 * Settings come only from the runtime's config service: HCRT_SIM_DEVICES, HCRT_SIM_MEMORY (capacity per
 * device), HCRT_SIM_SPEED and HCRT_SIM_FAULT (simccl, the vendor collectives, reads its own: sim_ccl.c).
 * Every op checks that each device pointer range it is given lies inside one live allocation of the right
 * device, so a wrong pointer is HCRT_ERR_INVALID_ARG and never a crash; the data itself lives in a
 * separate storage mapping (sim_heap.c).
 *
 * Work runs in the caller (no stream) or on the stream's worker thread, like the cpu backend; each kernel
 * and copy then sleeps for (1/speed - 1) times the CPU time it took, so a device of speed 0.5 takes
 * twice as long as the host for the same work and the difference shows in event timings. CPU time, not
 * wall time: when ranks outnumber the cores, the time an op spends descheduled is the host's, not the
 * emulated chip's, and stretching it too would make a slow device's slowness grow with the host's load
 * (two ranks contending for a core would see a 0.25-speed device run at a fraction of that).
 *
 * Faults are decided when an op is called, from per-device counters, so they are deterministic: the Nth
 * allocation or copy of a device fails with HCRT_ERR_BACKEND, and after lost_after ops every op of the
 * device fails with HCRT_ERR_DEVICE_LOST and health() reports it lost. A failing async copy reports its
 * failure at the next stream or event synchronisation, as a real device would.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/host_kernels.h"
#include "backends/common/hostcomp.h"
#include "backends/common/hostmem.h"
#include "backends/common/hostreg.h"
#include "backends/common/workqueue.h"
#include "backends/sim/sim.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

typedef struct sim_dev {
    pthread_mutex_t mu; /* guards everything below and the heap */
    int index;
    sim_heap_t heap;
    uint64_t nops;    /* ops counted toward lost_after */
    uint64_t nallocs; /* allocations attempted */
    uint64_t ncopies; /* copies attempted */
    uint64_t nregs;   /* host registrations attempted */
    bool lost;
    hcrt_status_t last_status;
    char last_error[256];
} sim_dev_t;

typedef struct sim_state {
    hcrt__hc_host_t hc; /* first: the compute table finds its submit() here (sim_compute.c) */
    const hcrt_backend_services_t *svc;
    int ndev;
    sim_dev_t *devs;
    double speed;
    sim_fault_t fault;
    hcrt__hostmem_t *host_mem;
    pthread_mutex_t reg_mu; /* guards the two lists */
    hcrt__list_t streams;   /* live streams, freed by finalize if the user did not */
    hcrt__list_t events;
    hcrt__hostreg_t hostreg; /* host ranges registered for kernels (host_register) */
    sim_ccl_t *ccl;          /* the vendor collective library (sim_ccl.c), NULL without one */
} sim_state_t;

struct hcrt_backend_stream {
    hcrt__list_t link; /* first: on the state's stream list */
    int dev;
    hcrt__wq_t *wq;
};

struct hcrt_backend_event {
    hcrt__list_t link; /* first: on the state's event list */
    int dev;
    hcrt__wq_event_t *ev;
};

/* This thread's most recent failure (init failures included, when there is no state yet). */
static _Thread_local char sim_err[256];

/* Records a failure for last_error() and, when dev >= 0, for that device's health(). Returns status. */
__attribute__((format(printf, 4, 5))) static hcrt_status_t sim_fail(sim_state_t *st, int dev, hcrt_status_t status,
                                                                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sim_err, sizeof(sim_err), fmt, ap);
    va_end(ap);
    if (st && dev >= 0 && dev < st->ndev) {
        sim_dev_t *d = &st->devs[dev];
        pthread_mutex_lock(&d->mu);
        d->last_status = status;
        snprintf(d->last_error, sizeof(d->last_error), "%s", sim_err);
        pthread_mutex_unlock(&d->mu);
    }
    return status;
}

#define SIM_CHECK_DEV(st, dev)                                                                                         \
    do {                                                                                                               \
        if ((dev) < 0 || (dev) >= (st)->ndev)                                                                          \
            return sim_fail((st), -1, HCRT_ERR_INVALID_ARG, "sim: %s: device %d does not exist (%d sim devices)",      \
                            __func__, (dev), (st)->ndev);                                                              \
    } while (0)

#define SIM_CHECK_PTR(st, dev, p, name)                                                                                \
    do {                                                                                                               \
        if (!(p))                                                                                                      \
            return sim_fail((st), (dev), HCRT_ERR_INVALID_ARG, "sim: %s: argument '%s' is NULL", __func__, (name));    \
    } while (0)

static size_t sim_dtype_size(hcrt_dtype_t dtype)
{
    static const size_t sizes[HCRT_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
    return (unsigned)dtype < HCRT_DTYPE_COUNT ? sizes[dtype] : 0;
}

/* ---- fault gate: every op of a device passes here when it is called ----------------------------- */

typedef enum sim_gate { SIM_GATE_PLAIN, SIM_GATE_ALLOC, SIM_GATE_COPY, SIM_GATE_REGISTER, SIM_GATE_CHECK } sim_gate_t;

/*
 * Counts one op of `kind` on device `dev` and decides its fate: HCRT_OK to run, HCRT_ERR_DEVICE_LOST
 * (returned) when the device is or just became lost, or HCRT_ERR_BACKEND in *inject for an injected
 * allocation/copy/registration failure (the caller delivers it where the op would fail). SIM_GATE_CHECK
 * only checks for loss (free, streams, events); neither it nor SIM_GATE_REGISTER counts toward lost_after,
 * which counts the device's work.
 */
static hcrt_status_t sim_gate(sim_state_t *st, int dev, sim_gate_t kind, const char *what, hcrt_status_t *inject,
                              uint64_t *nth)
{
    sim_dev_t *d = &st->devs[dev];
    const sim_fault_t *f = &st->fault;
    const bool targeted = f->dev < 0 || f->dev == dev;
    hcrt_status_t status = HCRT_OK;
    uint64_t lost_at = 0;
    if (inject)
        *inject = HCRT_OK;
    pthread_mutex_lock(&d->mu);
    if (!d->lost && kind != SIM_GATE_CHECK && kind != SIM_GATE_REGISTER) {
        d->nops++;
        if (targeted && f->has_lost && d->nops > f->lost_after) {
            d->lost = true;
            lost_at = d->nops;
        }
    }
    if (d->lost) {
        status = HCRT_ERR_DEVICE_LOST;
    } else if (kind == SIM_GATE_ALLOC) {
        d->nallocs++;
        if (targeted && d->nallocs == f->alloc_fail && inject)
            *inject = HCRT_ERR_BACKEND;
        if (nth)
            *nth = d->nallocs;
    } else if (kind == SIM_GATE_REGISTER) {
        d->nregs++;
        if (targeted && d->nregs == f->register_fail && inject)
            *inject = HCRT_ERR_BACKEND;
        if (nth)
            *nth = d->nregs;
    } else if (kind == SIM_GATE_COPY) {
        d->ncopies++;
        if (targeted && d->ncopies == f->copy_fail && inject)
            *inject = HCRT_ERR_BACKEND;
        if (nth)
            *nth = d->ncopies;
    }
    pthread_mutex_unlock(&d->mu);
    if (status == HCRT_ERR_DEVICE_LOST) {
        if (lost_at && st->svc && st->svc->log_enabled && st->svc->log_enabled(st->svc->host, HCRT_LOG_WARN))
            st->svc->log(st->svc->host, HCRT_LOG_WARN, "sim device %d: injected device loss at op %llu (%s)", dev,
                         (unsigned long long)lost_at, what);
        return sim_fail(st, dev, HCRT_ERR_DEVICE_LOST,
                        "sim device %d: device lost (injected by HCRT_SIM_FAULT lost_after=%llu); %s failed", dev,
                        (unsigned long long)st->fault.lost_after, what);
    }
    return HCRT_OK;
}

/* ---- the work of an op, run inline or on a stream's worker --------------------------------------- */

/* SIM_UPLOAD: a large host->device copy (never overlapping: host memory and storage are separate).
 * SIM_KERNEL: a kernel of another file of the plugin (sim_kernel_launch), its argument right after. */
typedef enum sim_op_kind { SIM_MEMSET, SIM_MEMCPY, SIM_UPLOAD, SIM_REDUCE3, SIM_SCALE, SIM_KERNEL } sim_op_kind_t;

typedef struct sim_op {
    sim_state_t *st;
    int dev; /* the device whose health a failure updates */
    sim_op_kind_t kind;
    void *dst; /* host or storage addresses: translated at call time */
    const void *src;
    const void *src2; /* reduce3: dst = op(src, src2) */
    size_t bytes;
    int value;
    size_t count;
    hcrt_dtype_t dtype;
    hcrt_op_t op;
    double factor;
    hcrt_status_t inject; /* injected failure decided at call time */
    uint64_t nth;         /* which copy of the device this is, for the message */
    hcrt__wq_fn_t kernel; /* SIM_KERNEL: runs on the argument stored after the op */
} sim_op_t;

/* Where a SIM_KERNEL op's argument starts, from the start of its sim_op_t. */
#define SIM_KERNEL_ARG_OFFSET ((sizeof(sim_op_t) + 15) / 16 * 16)

/* Host->device copies from this size on take the streaming path below. */
#define SIM_UPLOAD_MIN ((size_t)256 << 10)

/*
 * A large host->device copy, as a device's copy engine does it: the data goes to device memory without
 * being pulled into the host's caches. A plain memcpy would first read every destination line into the
 * cache (write-allocate), moving the buffer over the memory bus twice, and would evict the host data
 * the caller works on, neither of which a real device's DMA does.
 */
static void sim_upload(void *dst, const void *src, size_t n)
{
#if defined(__x86_64__)
    unsigned char *d = dst;
    const unsigned char *s = src;
    const size_t head = (16 - ((uintptr_t)d & 15)) & 15;
    memcpy(d, s, head);
    d += head;
    s += head;
    n -= head;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
        const __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
        const __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
        const __m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
        _mm_stream_si128((__m128i *)(d + i), a);
        _mm_stream_si128((__m128i *)(d + i + 16), b);
        _mm_stream_si128((__m128i *)(d + i + 32), c);
        _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    memcpy(d + i, s + i, n - i);
    _mm_sfence(); /* the stores are visible before the op reports completion */
#else
    memcpy(dst, src, n);
#endif
}

/* CPU time of the calling thread: what an op cost, without the time the host's scheduler gave others. */
static double sim_thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds of stretch this thread still owes (negative: it overslept and is ahead). */
static _Thread_local double sim_debt;
/* Stretches shorter than this are owed, not slept: a sleep overshoots by tens of microseconds. */
#define SIM_MIN_SLEEP 50e-6

/*
 * Makes the calling thread take `seconds` longer. A training step is many small ops, and sleeping after
 * each would add each sleep's overshoot (timer slack, wake-up latency: tens of microseconds, more on a
 * loaded host) to the device's time, so a device of speed 0.5 would look three or four times slower than
 * speed 1. Instead the thread keeps a debt: small stretches add up until they are worth a sleep, and
 * the time actually slept is paid off, so an overshoot is taken from the next ops' stretch. The total
 * stays within SIM_MIN_SLEEP plus one overshoot of (1/speed - 1) times the CPU time, however the ops
 * are cut.
 */
static void sim_stretch(double seconds)
{
    sim_debt += seconds;
    if (sim_debt < SIM_MIN_SLEEP)
        return;
    const double t0 = hcrt__wq_now();
    hcrt__wq_sleep(sim_debt);
    sim_debt -= hcrt__wq_now() - t0;
}

static hcrt_status_t sim_exec(void *arg, char *msg)
{
    const sim_op_t *o = arg;
    if (o->inject != HCRT_OK) {
        snprintf(msg, HCRT__WQ_MSG_LEN, "sim device %d: injected copy failure (copy %llu, HCRT_SIM_FAULT)", o->dev,
                 (unsigned long long)o->nth);
        sim_fail(o->st, o->dev, o->inject, "%s", msg);
        return o->inject;
    }
    /* Only a slower device needs the op's duration (no clock reads at speed 1 or above). */
    const double speed = o->st->speed;
    const double t0 = speed < 1.0 ? sim_thread_seconds() : 0;
    hcrt_status_t status = HCRT_OK;
    switch (o->kind) {
    case SIM_MEMSET:
        memset(o->dst, o->value, o->bytes);
        break;
    case SIM_MEMCPY:
        memmove(o->dst, o->src, o->bytes);
        break;
    case SIM_UPLOAD:
        sim_upload(o->dst, o->src, o->bytes);
        break;
    case SIM_REDUCE3:
        status = hcrt__host_reduce3(o->dst, o->src, o->src2, o->count, o->dtype, o->op);
        break;
    case SIM_SCALE:
        status = hcrt__host_scale(o->dst, o->count, o->dtype, o->factor);
        break;
    case SIM_KERNEL: {
        char kmsg[HCRT__WQ_MSG_LEN] = "";
        status = o->kernel((char *)arg + SIM_KERNEL_ARG_OFFSET, kmsg);
        if (status != HCRT_OK) {
            snprintf(msg, HCRT__WQ_MSG_LEN, "sim device %d: %s", o->dev, kmsg);
            sim_fail(o->st, o->dev, status, "%s", msg);
            return status;
        }
        break;
    }
    }
    if (status != HCRT_OK) {
        snprintf(msg, HCRT__WQ_MSG_LEN, "sim device %d: reduce: operands overlap partially", o->dev);
        sim_fail(o->st, o->dev, status, "%s", msg);
        return status;
    }
    /* A slower device: stretch the op's CPU time t to t / speed. */
    if (speed < 1.0)
        sim_stretch((sim_thread_seconds() - t0) * (1.0 / speed - 1.0));
    return HCRT_OK;
}

static hcrt_status_t sim_run(sim_state_t *st, const sim_op_t *o, hcrt_backend_stream_t *stream)
{
    if (stream) {
        hcrt_status_t s = hcrt__wq_submit(stream->wq, sim_exec, o, sizeof(*o));
        if (s != HCRT_OK)
            return sim_fail(st, o->dev, s, "sim device %d: cannot queue work (out of host memory)", o->dev);
        return HCRT_OK;
    }
    char msg[HCRT__WQ_MSG_LEN] = "";
    sim_op_t copy = *o;
    hcrt_status_t s = sim_exec(&copy, msg);
    if (s != HCRT_OK)
        snprintf(sim_err, sizeof(sim_err), "%s", msg);
    return s;
}

/* The storage behind a device range of `dev`, or NULL after recording why (INVALID_ARG). */
static void *sim_translate(sim_state_t *st, int dev, const void *ptr, size_t bytes, const char *fn, const char *name)
{
    sim_dev_t *d = &st->devs[dev];
    pthread_mutex_lock(&d->mu);
    void *p = sim_heap_translate(&d->heap, ptr, bytes);
    pthread_mutex_unlock(&d->mu);
    if (!p)
        sim_fail(st, dev, HCRT_ERR_INVALID_ARG,
                 "sim device %d: %s: argument '%s' (%p, %zu bytes) is not inside one live allocation of "
                 "this device",
                 dev, fn, name, ptr, bytes);
    return p;
}

/* A kernel operand: device memory of `dev` (its storage) or a host range registered on `dev` (as is). */
static void *sim_translate_k(sim_state_t *st, int dev, const void *ptr, size_t bytes, const char *fn, const char *name)
{
    sim_dev_t *d = &st->devs[dev];
    pthread_mutex_lock(&d->mu);
    void *p = sim_heap_translate(&d->heap, ptr, bytes);
    pthread_mutex_unlock(&d->mu);
    if (p)
        return p;
    if (hcrt__hostreg_contains(&st->hostreg, dev, ptr, bytes))
        return (void *)ptr;
    sim_fail(st, dev, HCRT_ERR_INVALID_ARG,
             "sim device %d: %s: argument '%s' (%p, %zu bytes) is neither inside one live allocation of this "
             "device nor inside a host range registered on it",
             dev, fn, name, ptr, bytes);
    return NULL;
}

/* Host memory must not be a sim device address (that would fault when the op dereferences it). */
static bool sim_host_ptr_ok(sim_state_t *st, int dev, const void *ptr, const char *fn, const char *name)
{
    for (int i = 0; i < st->ndev; i++) {
        if (sim_heap_in_range(&st->devs[i].heap, ptr)) {
            sim_fail(st, dev, HCRT_ERR_INVALID_ARG,
                     "sim device %d: %s: argument '%s' (%p) is memory of sim device %d, not host memory", dev, fn, name,
                     ptr, i);
            return false;
        }
    }
    return true;
}

/* ---- lifetime ------------------------------------------------------------------------------------ */

static const char *sim_config(const hcrt_backend_services_t *svc, const char *name, const char *def)
{
    const char *v = svc && svc->config_get ? svc->config_get(svc->host, name) : NULL;
    return v ? v : def;
}

/* Parses a size as the runtime's config parser accepts it (digits, optional K/M/G/T[i][B]). */
static bool sim_parse_size(const char *text, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text)
        return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    case '\0':
        break;
    default:
        return false;
    }
    if (shift) {
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
    }
    if (*end || v > (SIZE_MAX >> shift))
        return false;
    *out = (size_t)v << shift;
    return true;
}

static void sim_finalize(void *state);

static hcrt_status_t sim_init(const hcrt_backend_services_t *svc, void **state)
{
    const char *ndev_s = sim_config(svc, "HCRT_SIM_DEVICES", "2");
    const char *mem_s = sim_config(svc, "HCRT_SIM_MEMORY", "1G");
    const char *speed_s = sim_config(svc, "HCRT_SIM_SPEED", "1.0");
    const char *fault_s = sim_config(svc, "HCRT_SIM_FAULT", "");

    char *end = NULL;
    errno = 0;
    const long ndev = strtol(ndev_s, &end, 10);
    if (errno || *end || ndev < 0 || ndev > 64)
        return sim_fail(NULL, -1, HCRT_ERR_CONFIG, "HCRT_SIM_DEVICES='%s' is not a count in [0, 64]", ndev_s);
    if (ndev == 0)
        return sim_fail(NULL, -1, HCRT_ERR_NO_DEVICE, "no sim devices (HCRT_SIM_DEVICES=0)");
    size_t capacity = 0;
    if (!sim_parse_size(mem_s, &capacity) || capacity < SIM_ALIGN)
        return sim_fail(NULL, -1, HCRT_ERR_CONFIG, "HCRT_SIM_MEMORY='%s' is not a size of at least %d bytes", mem_s,
                        SIM_ALIGN);
    errno = 0;
    const double speed = strtod(speed_s, &end);
    if (errno || *end || !(speed > 0))
        return sim_fail(NULL, -1, HCRT_ERR_CONFIG, "HCRT_SIM_SPEED='%s' is not a positive number", speed_s);

    sim_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return sim_fail(NULL, -1, HCRT_ERR_NO_MEMORY, "sim: out of host memory at init");
    st->hc = sim_compute_host;
    st->svc = svc;
    st->speed = speed;
    pthread_mutex_init(&st->reg_mu, NULL);
    hcrt__hostreg_init(&st->hostreg);
    hcrt__list_init(&st->streams);
    hcrt__list_init(&st->events);
    char err[256];
    hcrt_status_t status = sim_fault_parse(fault_s, (int)ndev, &st->fault, err, sizeof(err));
    if (status != HCRT_OK) {
        pthread_mutex_destroy(&st->reg_mu);
        hcrt__hostreg_fini(&st->hostreg);
        free(st);
        return sim_fail(NULL, -1, status, "%s", err);
    }
    status = sim_ccl_create(svc, (int)ndev, &st->ccl, err, sizeof(err));
    if (status != HCRT_OK) {
        pthread_mutex_destroy(&st->reg_mu);
        hcrt__hostreg_fini(&st->hostreg);
        free(st);
        return sim_fail(NULL, -1, status, "%s", err);
    }
    st->devs = calloc((size_t)ndev, sizeof(*st->devs));
    if (!st->devs || hcrt__hostmem_create(&st->host_mem) != HCRT_OK) {
        sim_ccl_destroy(st->ccl);
        free(st->devs);
        pthread_mutex_destroy(&st->reg_mu);
        hcrt__hostreg_fini(&st->hostreg);
        free(st);
        return sim_fail(NULL, -1, HCRT_ERR_NO_MEMORY, "sim: out of host memory at init");
    }
    for (int i = 0; i < (int)ndev; i++) {
        sim_dev_t *d = &st->devs[i];
        d->index = i;
        status = sim_heap_init(&d->heap, capacity, err, sizeof(err));
        if (status != HCRT_OK) {
            sim_finalize(st);
            return sim_fail(NULL, -1, status, "sim device %d: %s", i, err);
        }
        pthread_mutex_init(&d->mu, NULL);
        st->ndev = i + 1;
    }
    if (svc && svc->log_enabled && svc->log_enabled(svc->host, HCRT_LOG_DEBUG))
        svc->log(svc->host, HCRT_LOG_DEBUG, "sim: %d devices of %zu bytes, speed %g, faults '%s'", st->ndev, capacity,
                 speed, fault_s);
    *state = st;
    return HCRT_OK;
}

static void sim_finalize(void *state)
{
    sim_state_t *st = state;
    if (!st)
        return;
    /* First: collectives still queued on the streams below then fail at once instead of waiting for peers. */
    sim_ccl_destroy(st->ccl);
    st->ccl = NULL;
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
    pthread_mutex_destroy(&st->reg_mu);
    hcrt__hostreg_fini(&st->hostreg);
    for (int i = 0; i < st->ndev; i++) {
        sim_heap_fini(&st->devs[i].heap);
        pthread_mutex_destroy(&st->devs[i].mu);
    }
    hcrt__hostmem_destroy(st->host_mem);
    free(st->devs);
    free(st);
}

static const char *sim_last_error(void *state)
{
    (void)state;
    return sim_err;
}

/* ---- devices ------------------------------------------------------------------------------------- */

static hcrt_status_t sim_device_count(void *state, int *count)
{
    sim_state_t *st = state;
    SIM_CHECK_PTR(st, -1, count, "count");
    *count = st->ndev;
    return HCRT_OK;
}

static hcrt_status_t sim_device_props(void *state, int dev, hcrt_backend_device_props_t *props)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, props, "props");
    sim_dev_t *d = &st->devs[dev];
    memset(props, 0, sizeof(*props));
    props->struct_size = sizeof(*props);
    snprintf(props->name, sizeof(props->name), "sim device %d", dev);
    snprintf(props->vendor, sizeof(props->vendor), "hcrt");
    pthread_mutex_lock(&d->mu);
    props->total_memory = d->heap.capacity;
    props->free_memory = d->heap.capacity - d->heap.used;
    pthread_mutex_unlock(&d->mu);
    props->speed = st->speed;
    props->caps = HCRT_CAP_PEER_COPY | HCRT_CAP_FAULT_INJECTION | HCRT_CAP_PINNED_HOST | sim_ccl_caps(st->ccl);
    snprintf(props->vendor, sizeof(props->vendor), "%s", sim_ccl_vendor(st->ccl));
    props->numa_node = -1;
    return HCRT_OK;
}

static hcrt_status_t sim_health(void *state, int dev, hcrt_backend_health_t *health)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, health, "health");
    sim_dev_t *d = &st->devs[dev];
    memset(health, 0, sizeof(*health));
    health->struct_size = sizeof(*health);
    pthread_mutex_lock(&d->mu);
    health->device_lost = d->lost;
    health->last_status = d->last_status;
    snprintf(health->last_error, sizeof(health->last_error), "%s", d->last_error);
    pthread_mutex_unlock(&d->mu);
    return HCRT_OK;
}

/* ---- memory -------------------------------------------------------------------------------------- */

static hcrt_status_t sim_mem_alloc(void *state, int dev, size_t bytes, void **ptr)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, ptr, "ptr");
    if (bytes == 0)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: mem_alloc: argument 'bytes' is 0", dev);
    hcrt_status_t inject;
    uint64_t nth = 0;
    hcrt_status_t status = sim_gate(st, dev, SIM_GATE_ALLOC, "mem_alloc", &inject, &nth);
    if (status != HCRT_OK)
        return status;
    if (inject != HCRT_OK)
        return sim_fail(st, dev, inject,
                        "sim device %d: injected allocation failure (allocation %llu of %zu bytes, "
                        "HCRT_SIM_FAULT)",
                        dev, (unsigned long long)nth, bytes);
    sim_dev_t *d = &st->devs[dev];
    pthread_mutex_lock(&d->mu);
    status = sim_heap_alloc(&d->heap, bytes, ptr);
    const size_t free_bytes = d->heap.capacity - d->heap.used;
    pthread_mutex_unlock(&d->mu);
    if (status == HCRT_ERR_DEVICE_OOM)
        return sim_fail(st, dev, status,
                        "sim device %d: out of memory (requested %zu bytes, %zu bytes free of %zu; "
                        "HCRT_SIM_MEMORY)",
                        dev, bytes, free_bytes, d->heap.capacity);
    if (status != HCRT_OK)
        return sim_fail(st, dev, status, "sim device %d: out of host memory for the block list", dev);
    sim_heap_populate(&d->heap, *ptr, bytes);
    return HCRT_OK;
}

static hcrt_status_t sim_mem_free(void *state, int dev, void *ptr)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    if (!ptr)
        return HCRT_OK;
    hcrt_status_t status = sim_gate(st, dev, SIM_GATE_CHECK, "mem_free", NULL, NULL);
    if (status != HCRT_OK)
        return status;
    sim_dev_t *d = &st->devs[dev];
    pthread_mutex_lock(&d->mu);
    status = sim_heap_free(&d->heap, ptr);
    pthread_mutex_unlock(&d->mu);
    if (status != HCRT_OK)
        return sim_fail(st, dev, status,
                        "sim device %d: mem_free: argument 'ptr' (%p) is not a live allocation of this device", dev,
                        ptr);
    return HCRT_OK;
}

static hcrt_status_t sim_host_alloc(void *state, size_t bytes, void **ptr)
{
    sim_state_t *st = state;
    SIM_CHECK_PTR(st, -1, ptr, "ptr");
    if (bytes == 0)
        return sim_fail(st, -1, HCRT_ERR_INVALID_ARG, "sim: host_alloc: argument 'bytes' is 0");
    if (hcrt__hostmem_alloc(st->host_mem, bytes, ptr) != HCRT_OK)
        return sim_fail(st, -1, HCRT_ERR_NO_MEMORY, "sim: host_alloc: out of host memory (requested %zu bytes)", bytes);
    return HCRT_OK;
}

static hcrt_status_t sim_host_free(void *state, void *ptr)
{
    sim_state_t *st = state;
    if (hcrt__hostmem_free(st->host_mem, ptr) != HCRT_OK)
        return sim_fail(st, -1, HCRT_ERR_INVALID_ARG, "sim: host_free: %p was not allocated by host_alloc", ptr);
    return HCRT_OK;
}

/* ---- data movement ------------------------------------------------------------------------------- */

static hcrt_status_t sim_check_stream(sim_state_t *st, int dev, const hcrt_backend_stream_t *stream)
{
    if (stream && stream->dev != dev)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: argument 'stream' belongs to sim device %d", dev,
                        stream->dev);
    return HCRT_OK;
}

static hcrt_status_t sim_memset(void *state, int dev, void *ptr, int value, size_t bytes, hcrt_backend_stream_t *stream)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, ptr, "ptr");
    hcrt_status_t status = sim_check_stream(st, dev, stream);
    if (status != HCRT_OK)
        return status;
    if (bytes == 0)
        return HCRT_OK;
    void *p = sim_translate(st, dev, ptr, bytes, "memset", "ptr");
    if (!p)
        return HCRT_ERR_INVALID_ARG;
    status = sim_gate(st, dev, SIM_GATE_PLAIN, "memset", NULL, NULL);
    if (status != HCRT_OK)
        return status;
    const sim_op_t o = {.st = st, .dev = dev, .kind = SIM_MEMSET, .dst = p, .bytes = bytes, .value = value};
    return sim_run(st, &o, stream);
}

static hcrt_status_t sim_memcpy(void *state, int dev, void *dst, const void *src, size_t bytes, hcrt_copy_kind_t kind,
                                hcrt_backend_stream_t *stream)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, dst, "dst");
    SIM_CHECK_PTR(st, dev, src, "src");
    hcrt_status_t status = sim_check_stream(st, dev, stream);
    if (status != HCRT_OK)
        return status;
    if ((unsigned)kind > HCRT_COPY_D2D)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: memcpy: argument 'kind' is %d", dev, (int)kind);
    if (bytes == 0)
        return HCRT_OK;
    void *d = dst;
    const void *s = src;
    if (kind == HCRT_COPY_H2D || kind == HCRT_COPY_D2D) {
        if (!(d = sim_translate(st, dev, dst, bytes, "memcpy", "dst")))
            return HCRT_ERR_INVALID_ARG;
    } else if (!sim_host_ptr_ok(st, dev, dst, "memcpy", "dst")) {
        return HCRT_ERR_INVALID_ARG;
    }
    if (kind == HCRT_COPY_D2H || kind == HCRT_COPY_D2D) {
        if (!(s = sim_translate(st, dev, src, bytes, "memcpy", "src")))
            return HCRT_ERR_INVALID_ARG;
    } else if (!sim_host_ptr_ok(st, dev, src, "memcpy", "src")) {
        return HCRT_ERR_INVALID_ARG;
    }
    sim_op_t o = {.st = st, .dev = dev, .kind = SIM_MEMCPY, .dst = d, .src = s, .bytes = bytes};
    if (kind == HCRT_COPY_H2D && bytes >= SIM_UPLOAD_MIN)
        o.kind = SIM_UPLOAD;
    status = sim_gate(st, dev, SIM_GATE_COPY, "memcpy", &o.inject, &o.nth);
    if (status != HCRT_OK)
        return status;
    return sim_run(st, &o, stream);
}

static hcrt_status_t sim_memcpy_peer(void *state, int dst_dev, void *dst, int src_dev, const void *src, size_t bytes,
                                     hcrt_backend_stream_t *stream)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dst_dev);
    SIM_CHECK_DEV(st, src_dev);
    SIM_CHECK_PTR(st, dst_dev, dst, "dst");
    SIM_CHECK_PTR(st, src_dev, src, "src");
    hcrt_status_t status = sim_check_stream(st, dst_dev, stream);
    if (status != HCRT_OK)
        return status;
    if (bytes == 0)
        return HCRT_OK;
    void *d = sim_translate(st, dst_dev, dst, bytes, "memcpy_peer", "dst");
    if (!d)
        return HCRT_ERR_INVALID_ARG;
    const void *s = sim_translate(st, src_dev, src, bytes, "memcpy_peer", "src");
    if (!s)
        return HCRT_ERR_INVALID_ARG;
    sim_op_t o = {.st = st, .dev = dst_dev, .kind = SIM_MEMCPY, .dst = d, .src = s, .bytes = bytes};
    /* The copy involves both devices: either one being lost or failing it fails the copy. */
    status =
        sim_gate(st, src_dev, src_dev == dst_dev ? SIM_GATE_CHECK : SIM_GATE_COPY, "memcpy_peer", &o.inject, &o.nth);
    if (status != HCRT_OK)
        return status;
    if (o.inject != HCRT_OK) {
        o.dev = src_dev;
        return sim_run(st, &o, stream);
    }
    status = sim_gate(st, dst_dev, SIM_GATE_COPY, "memcpy_peer", &o.inject, &o.nth);
    if (status != HCRT_OK)
        return status;
    return sim_run(st, &o, stream);
}

/* ---- streams and events -------------------------------------------------------------------------- */

static hcrt_status_t sim_stream_create(void *state, int dev, hcrt_backend_stream_t **stream)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, stream, "stream");
    hcrt_status_t status = sim_gate(st, dev, SIM_GATE_CHECK, "stream_create", NULL, NULL);
    if (status != HCRT_OK)
        return status;
    hcrt_backend_stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        return sim_fail(st, dev, HCRT_ERR_NO_MEMORY, "sim device %d: out of host memory creating a stream", dev);
    s->dev = dev;
    status = hcrt__wq_create(&s->wq);
    if (status != HCRT_OK) {
        free(s);
        return sim_fail(st, dev, status, "sim device %d: cannot start a stream worker thread", dev);
    }
    pthread_mutex_lock(&st->reg_mu);
    hcrt__list_add(&st->streams, &s->link);
    pthread_mutex_unlock(&st->reg_mu);
    *stream = s;
    return HCRT_OK;
}

static hcrt_status_t sim_stream_sync(void *state, hcrt_backend_stream_t *stream)
{
    sim_state_t *st = state;
    SIM_CHECK_PTR(st, -1, stream, "stream");
    char msg[HCRT__WQ_MSG_LEN];
    hcrt_status_t status = hcrt__wq_sync(stream->wq, msg);
    if (status != HCRT_OK) {
        snprintf(sim_err, sizeof(sim_err), "%s", msg);
        return status;
    }
    return sim_gate(st, stream->dev, SIM_GATE_CHECK, "stream_sync", NULL, NULL);
}

static hcrt_status_t sim_stream_destroy(void *state, hcrt_backend_stream_t *stream)
{
    if (!stream)
        return HCRT_OK;
    sim_state_t *st = state;
    char msg[HCRT__WQ_MSG_LEN];
    hcrt_status_t status = hcrt__wq_sync(stream->wq, msg);
    if (status != HCRT_OK)
        snprintf(sim_err, sizeof(sim_err), "%s", msg);
    pthread_mutex_lock(&st->reg_mu);
    hcrt__list_del(&stream->link);
    pthread_mutex_unlock(&st->reg_mu);
    hcrt__wq_destroy(stream->wq);
    free(stream);
    return status;
}

static hcrt_status_t sim_event_create(void *state, int dev, hcrt_backend_event_t **event)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, event, "event");
    hcrt_backend_event_t *e = calloc(1, sizeof(*e));
    if (!e || hcrt__wq_event_create(&e->ev) != HCRT_OK) {
        free(e);
        return sim_fail(st, dev, HCRT_ERR_NO_MEMORY, "sim device %d: out of host memory creating an event", dev);
    }
    e->dev = dev;
    pthread_mutex_lock(&st->reg_mu);
    hcrt__list_add(&st->events, &e->link);
    pthread_mutex_unlock(&st->reg_mu);
    *event = e;
    return HCRT_OK;
}

static hcrt_status_t sim_event_destroy(void *state, hcrt_backend_event_t *event)
{
    sim_state_t *st = state;
    if (!event)
        return HCRT_OK;
    pthread_mutex_lock(&st->reg_mu);
    hcrt__list_del(&event->link);
    pthread_mutex_unlock(&st->reg_mu);
    hcrt__wq_event_destroy(event->ev);
    free(event);
    return HCRT_OK;
}

static hcrt_status_t sim_event_record(void *state, hcrt_backend_event_t *event, hcrt_backend_stream_t *stream)
{
    sim_state_t *st = state;
    SIM_CHECK_PTR(st, -1, event, "event");
    hcrt_status_t status = sim_gate(st, event->dev, SIM_GATE_CHECK, "event_record", NULL, NULL);
    if (status != HCRT_OK)
        return status;
    status = hcrt__wq_event_record(event->ev, stream ? stream->wq : NULL);
    if (status != HCRT_OK)
        return sim_fail(st, event->dev, status, "sim device %d: cannot record event", event->dev);
    return HCRT_OK;
}

static hcrt_status_t sim_event_sync(void *state, hcrt_backend_event_t *event)
{
    sim_state_t *st = state;
    SIM_CHECK_PTR(st, -1, event, "event");
    char msg[HCRT__WQ_MSG_LEN];
    hcrt_status_t status = hcrt__wq_event_sync(event->ev, msg);
    if (status != HCRT_OK) {
        snprintf(sim_err, sizeof(sim_err), "%s", msg);
        return status;
    }
    return HCRT_OK;
}

static hcrt_status_t sim_event_query(void *state, hcrt_backend_event_t *event, bool *done)
{
    sim_state_t *st = state;
    SIM_CHECK_PTR(st, -1, event, "event");
    SIM_CHECK_PTR(st, -1, done, "done");
    *done = hcrt__wq_event_query(event->ev);
    return HCRT_OK;
}

static hcrt_status_t sim_event_elapsed(void *state, hcrt_backend_event_t *start, hcrt_backend_event_t *end, float *ms)
{
    sim_state_t *st = state;
    SIM_CHECK_PTR(st, -1, start, "start");
    SIM_CHECK_PTR(st, -1, end, "end");
    SIM_CHECK_PTR(st, -1, ms, "ms");
    hcrt_status_t status = hcrt__wq_event_elapsed(start->ev, end->ev, ms);
    if (status != HCRT_OK)
        return sim_fail(st, start->dev, status, "sim: event_elapsed: an event has not completed");
    return HCRT_OK;
}

/* ---- kernels ------------------------------------------------------------------------------------- */

/* dst = op(a, b) (fn names the op for messages): reduce is the case a == dst. */
static hcrt_status_t sim_combine(sim_state_t *st, const char *fn, int dev, void *dst, const void *a, const void *b,
                                 size_t count, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, dst, "dst");
    SIM_CHECK_PTR(st, dev, a, "a");
    SIM_CHECK_PTR(st, dev, b, "b");
    hcrt_status_t status = sim_check_stream(st, dev, stream);
    if (status != HCRT_OK)
        return status;
    const size_t es = sim_dtype_size(dtype);
    if (es == 0)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: %s: argument 'dtype' is %d", dev, fn, (int)dtype);
    if ((unsigned)op >= HCRT_OP_COUNT)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: %s: argument 'op' is %d", dev, fn, (int)op);
    if (count > SIZE_MAX / es)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: %s: argument 'count' is too large", dev, fn);
    if (count == 0)
        return HCRT_OK;
    void *d = sim_translate_k(st, dev, dst, count * es, fn, "dst");
    if (!d)
        return HCRT_ERR_INVALID_ARG;
    const void *x = a == dst ? d : sim_translate_k(st, dev, a, count * es, fn, "a");
    if (!x)
        return HCRT_ERR_INVALID_ARG;
    const void *y = sim_translate_k(st, dev, b, count * es, fn, a == dst ? "src" : "b");
    if (!y)
        return HCRT_ERR_INVALID_ARG;
    status = sim_gate(st, dev, SIM_GATE_PLAIN, fn, NULL, NULL);
    if (status != HCRT_OK)
        return status;
    const sim_op_t o = {.st = st, .dev = dev, .kind = SIM_REDUCE3, .dst = d, .src = x, .src2 = y, .count = count,
                        .dtype = dtype, .op = op};
    return sim_run(st, &o, stream);
}

static hcrt_status_t sim_reduce(void *state, int dev, void *dst, const void *src, size_t count, hcrt_dtype_t dtype,
                                hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    if (src == NULL) /* named as the ABI names it (the combined op would call it "b") */
        return sim_fail(state, dev, HCRT_ERR_INVALID_ARG, "sim: sim_reduce: argument 'src' is NULL");
    return sim_combine(state, "reduce", dev, dst, dst, src, count, dtype, op, stream);
}

static hcrt_status_t sim_reduce3(void *state, int dev, void *dst, const void *a, const void *b, size_t count,
                                 hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    return sim_combine(state, "reduce3", dev, dst, a, b, count, dtype, op, stream);
}

static hcrt_status_t sim_scale(void *state, int dev, void *ptr, size_t count, hcrt_dtype_t dtype, double factor,
                               hcrt_backend_stream_t *stream)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, ptr, "ptr");
    hcrt_status_t status = sim_check_stream(st, dev, stream);
    if (status != HCRT_OK)
        return status;
    const size_t es = sim_dtype_size(dtype);
    if (es == 0)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: scale: argument 'dtype' is %d", dev, (int)dtype);
    if (count > SIZE_MAX / es)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: scale: argument 'count' is too large", dev);
    if (count == 0)
        return HCRT_OK;
    void *p = sim_translate_k(st, dev, ptr, count * es, "scale", "ptr");
    if (!p)
        return HCRT_ERR_INVALID_ARG;
    status = sim_gate(st, dev, SIM_GATE_PLAIN, "scale", NULL, NULL);
    if (status != HCRT_OK)
        return status;
    const sim_op_t o = {
        .st = st, .dev = dev, .kind = SIM_SCALE, .dst = p, .count = count, .dtype = dtype, .factor = factor};
    return sim_run(st, &o, stream);
}

/* The device reads and writes registered host memory in place, as a GPU does through mapped pinned memory
 * (the device address is the host address, as with CUDA's unified addressing). */
static hcrt_status_t sim_host_register(void *state, int dev, void *ptr, size_t bytes, void **dev_ptr)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, ptr, "ptr");
    SIM_CHECK_PTR(st, dev, dev_ptr, "dev_ptr");
    if (bytes == 0)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG, "sim device %d: host_register: argument 'bytes' is 0", dev);
    if (!sim_host_ptr_ok(st, dev, ptr, "host_register", "ptr") ||
        !sim_host_ptr_ok(st, dev, (const char *)ptr + bytes - 1, "host_register", "ptr + bytes"))
        return HCRT_ERR_INVALID_ARG;
    hcrt_status_t inject = HCRT_OK;
    uint64_t nth = 0;
    hcrt_status_t status = sim_gate(st, dev, SIM_GATE_REGISTER, "host_register", &inject, &nth);
    if (status != HCRT_OK)
        return status;
    if (inject != HCRT_OK)
        return sim_fail(st, dev, inject,
                        "sim device %d: host_register: injected refusal to pin (registration %llu, HCRT_SIM_FAULT)",
                        dev, (unsigned long long)nth);
    status = hcrt__hostreg_add(&st->hostreg, dev, ptr, bytes);
    if (status != HCRT_OK)
        return sim_fail(st, dev, status, "sim device %d: host_register: [%p, +%zu) %s", dev, ptr, bytes,
                        status == HCRT_ERR_NO_MEMORY ? "cannot be recorded (out of host memory)"
                                                     : "overlaps a registered range");
    *dev_ptr = ptr;
    return HCRT_OK;
}

static hcrt_status_t sim_host_unregister(void *state, int dev, void *ptr)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    SIM_CHECK_PTR(st, dev, ptr, "ptr");
    if (hcrt__hostreg_remove(&st->hostreg, dev, ptr) != HCRT_OK)
        return sim_fail(st, dev, HCRT_ERR_INVALID_ARG,
                        "sim device %d: host_unregister: argument 'ptr' (%p) does not start a range registered on "
                        "this device",
                        dev, ptr);
    return HCRT_OK;
}

/* ---- kernels of the plugin's other files (sim.h) -------------------------------------------------- */

hcrt_status_t sim_kernel_launch(void *state, int dev, const char *what, void **ptrs, const size_t *bytes,
                                const char *const *names, size_t n, hcrt__wq_fn_t kernel, const void *arg,
                                size_t arg_size, hcrt_backend_stream_t *stream)
{
    sim_state_t *st = state;
    SIM_CHECK_DEV(st, dev);
    hcrt_status_t status = sim_check_stream(st, dev, stream);
    if (status != HCRT_OK)
        return status;
    for (size_t i = 0; i < n; i++) {
        if (bytes[i] == 0)
            continue;
        void *p = sim_translate_k(st, dev, ptrs[i], bytes[i], what, names[i]);
        if (!p)
            return HCRT_ERR_INVALID_ARG;
        ptrs[i] = p;
    }
    status = sim_gate(st, dev, SIM_GATE_PLAIN, what, NULL, NULL);
    if (status != HCRT_OK)
        return status;
    /* the op and a copy of the argument (with the translated addresses) in one block, as the worker
     * queue copies it; max_align_t keeps the argument aligned for any type */
    max_align_t buf[(SIM_KERNEL_ARG_OFFSET + SIM_KERNEL_ARG_MAX) / sizeof(max_align_t) + 1];
    if (arg_size > SIM_KERNEL_ARG_MAX)
        return sim_fail(st, dev, HCRT_ERR_INTERNAL, "sim device %d: %s: kernel argument of %zu bytes is too large",
                        dev, what, arg_size);
    const sim_op_t o = {.st = st, .dev = dev, .kind = SIM_KERNEL, .kernel = kernel};
    memcpy(buf, &o, sizeof(o));
    memcpy((char *)buf + SIM_KERNEL_ARG_OFFSET, arg, arg_size);
    if (stream) {
        status = hcrt__wq_submit(stream->wq, sim_exec, buf, SIM_KERNEL_ARG_OFFSET + arg_size);
        if (status != HCRT_OK)
            return sim_fail(st, dev, status, "sim device %d: cannot queue %s (out of host memory)", dev, what);
        return HCRT_OK;
    }
    char msg[HCRT__WQ_MSG_LEN] = "";
    status = sim_exec(buf, msg);
    if (status != HCRT_OK)
        snprintf(sim_err, sizeof(sim_err), "%s", msg);
    return status;
}

hcrt_status_t sim_kernel_fail(void *state, int dev, hcrt_status_t status, const char *msg)
{
    sim_state_t *st = state;
    if (dev < 0 || dev >= st->ndev)
        dev = -1;
    return sim_fail(st, dev, status, "sim device %d: %s", dev, msg);
}
/* ---- what sim_ccl.c borrows (sim.h) --------------------------------------------------------------- */

void *sim_storage_of(sim_state_t *st, int dev, const void *ptr, size_t bytes, const char *fn, const char *name)
{
    return sim_translate(st, dev, ptr, bytes, fn, name);
}

hcrt_status_t sim_device_op(sim_state_t *st, int dev, const char *what)
{
    return sim_gate(st, dev, SIM_GATE_PLAIN, what, NULL, NULL);
}

hcrt_status_t sim_error(sim_state_t *st, int dev, hcrt_status_t status, const char *fmt, ...)
{
    char text[sizeof(sim_err)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return sim_fail(st, dev, status, "%s", text);
}

hcrt_status_t sim_submit(sim_state_t *st, int dev, hcrt_backend_stream_t *stream,
                         hcrt_status_t (*fn)(void *arg, char *msg), const void *arg, size_t size)
{
    if (stream) {
        hcrt_status_t s = hcrt__wq_submit(stream->wq, fn, arg, size);
        return s == HCRT_OK ? HCRT_OK
                            : sim_fail(st, dev, s, "sim device %d: cannot queue work (out of host memory)", dev);
    }
    char msg[HCRT__WQ_MSG_LEN] = "";
    void *copy = malloc(size ? size : 1);
    if (!copy)
        return sim_fail(st, dev, HCRT_ERR_NO_MEMORY, "sim device %d: out of host memory", dev);
    memcpy(copy, arg, size);
    hcrt_status_t s = fn(copy, msg);
    free(copy);
    if (s != HCRT_OK)
        sim_fail(st, dev, s, "%s", msg);
    return s;
}

int sim_stream_dev(const hcrt_backend_stream_t *stream)
{
    return stream->dev;
}
const hcrt_backend_services_t *sim_services(const sim_state_t *st)
{
    return st->svc;
}
const sim_fault_t *sim_faults(const sim_state_t *st)
{
    return &st->fault;
}
sim_ccl_t *sim_ccl_of(const sim_state_t *st)
{
    return st->ccl;
}

HCRT_BACKEND_EXPORT const hcrt_backend_v1_t hcrt_backend_v1 = {
    .struct_size = sizeof(hcrt_backend_v1_t),
    .abi_version = HCRT_BACKEND_ABI_VERSION,
    .name = "sim",
    .init = sim_init,
    .finalize = sim_finalize,
    .last_error = sim_last_error,
    .device_count = sim_device_count,
    .device_props = sim_device_props,
    .health = sim_health,
    .mem_alloc = sim_mem_alloc,
    .mem_free = sim_mem_free,
    .host_alloc = sim_host_alloc,
    .host_free = sim_host_free,
    .memset = sim_memset,
    .memcpy = sim_memcpy,
    .memcpy_peer = sim_memcpy_peer,
    .stream_create = sim_stream_create,
    .stream_destroy = sim_stream_destroy,
    .stream_sync = sim_stream_sync,
    .event_create = sim_event_create,
    .event_destroy = sim_event_destroy,
    .event_record = sim_event_record,
    .event_sync = sim_event_sync,
    .event_query = sim_event_query,
    .event_elapsed = sim_event_elapsed,
    .reduce = sim_reduce,
    .scale = sim_scale,
    .coll_unique_id_size = SIM_CCL_ID_BYTES,
    .coll_get_unique_id = sim_coll_get_unique_id,
    .coll_init = sim_coll_init,
    .coll_destroy = sim_coll_destroy,
    .coll_abort = sim_coll_abort,
    .coll_allreduce = sim_coll_allreduce,
    .coll_reduce_scatter = sim_coll_reduce_scatter,
    .coll_allgather = sim_coll_allgather,
    .coll_broadcast = sim_coll_broadcast,
    .host_register = sim_host_register,
    .host_unregister = sim_host_unregister,
    .reduce3 = sim_reduce3,
    .compute = &hcrt__hc_table,
};
