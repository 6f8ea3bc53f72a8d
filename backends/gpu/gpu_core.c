/*
 * backends/gpu/gpu_core.c - lifetime, devices, health and error handling of the cuda and hip plugins.
 *
 * Built once per vendor (see gpu_plugin.h). Every op makes its device current first, because the vendor
 * runtimes keep the current device per thread and the runtime may call us from any thread.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_plugin.h"

/* Text of this thread's most recent failure. Vendor errors are per thread too, so this is what
 * last_error() promises ("per thread where the vendor runtime is"). */
static _Thread_local char gpu_tls_error[512];

/*
 * The "reference host core" of hcrt_backend_device_props_t.speed, in GFLOP/s of f32: one core doing
 * one 8-wide AVX2 FMA per cycle at about 3 GHz. A device's speed is its peak f32 rate divided by this;
 * it is only a starting estimate for the balancer, which measures real throughput afterwards.
 */
#define GPU_REF_CORE_GFLOPS 50.0

void hcrt_gpu_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(gpu_tls_error, sizeof gpu_tls_error, fmt, ap);
    va_end(ap);
}

hcrt_status_t hcrt_gpu_arg_error(const char *fmt, ...)
{
    int n = snprintf(gpu_tls_error, sizeof gpu_tls_error, "%s: ", GPU_BACKEND);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(gpu_tls_error + n, sizeof gpu_tls_error - (size_t)n, fmt, ap);
    va_end(ap);
    return HCRT_ERR_INVALID_ARG;
}

void hcrt_gpu_log(gpu_state_t *st, int level, const char *fmt, ...)
{
    const hcrt_backend_services_t *svc = st ? st->svc : NULL;
    if (!svc || svc->struct_size < offsetof(hcrt_backend_services_t, config_get) || !svc->log)
        return;
    if (svc->log_enabled && !svc->log_enabled(svc->host, level))
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    svc->log(svc->host, level, "%s", line);
}

static hcrt_status_t gpu_status_of(gpuError_t e)
{
    if (e == gpuErrorMemoryAllocation)
        return HCRT_ERR_DEVICE_OOM;
    if (gpu_error_is_fatal(e))
        return HCRT_ERR_DEVICE_LOST;
    if (gpu_error_is_arg(e))
        return HCRT_ERR_INVALID_ARG;
    if (gpu_error_is_unsupported(e))
        return HCRT_ERR_NOT_SUPPORTED;
    if (e == gpuErrorNotReady)
        return HCRT_ERR_IN_PROGRESS;
    return HCRT_ERR_BACKEND;
}

hcrt_status_t hcrt_gpu_fail(gpu_state_t *st, int dev, gpuError_t e, const char *call)
{
    hcrt_status_t status = gpu_status_of(e);
    if (dev >= 0)
        snprintf(gpu_tls_error, sizeof gpu_tls_error, "%s device %d: %s: %s (%s, %d)", GPU_BACKEND, dev, call,
                 gpuGetErrorString(e), gpuGetErrorName(e), (int)e);
    else
        snprintf(gpu_tls_error, sizeof gpu_tls_error, "%s: %s: %s (%s, %d)", GPU_BACKEND, call, gpuGetErrorString(e),
                 gpuGetErrorName(e), (int)e);
    /* A non-sticky error stays in the thread's slot until read; clear it so the next launch check
     * does not report it a second time. Sticky errors come back regardless. */
    (void)gpuGetLastError();
    if (st && dev >= 0 && dev < st->ndev) {
        gpu_device_t *d = &st->devs[dev];
        pthread_mutex_lock(&d->lock);
        d->last_status = status;
        hcrt_gpu_strlcpy(d->last_error, sizeof d->last_error, gpu_tls_error);
        if (status == HCRT_ERR_DEVICE_LOST)
            d->lost = true;
        pthread_mutex_unlock(&d->lock);
    }
    hcrt_gpu_log(st, HCRT_LOG_DEBUG, "%s", gpu_tls_error);
    return status;
}

hcrt_status_t hcrt_gpu_enter(gpu_state_t *st, int dev)
{
    if (dev < 0 || dev >= st->ndev)
        return hcrt_gpu_arg_error("device %d out of range (%d device(s))", dev, st->ndev);
    gpu_device_t *d = &st->devs[dev];
    pthread_mutex_lock(&d->lock);
    bool lost = d->lost;
    if (lost)
        hcrt_gpu_set_error("%s device %d is lost: %s", GPU_BACKEND, dev, d->last_error);
    pthread_mutex_unlock(&d->lock);
    if (lost)
        return HCRT_ERR_DEVICE_LOST;
    gpuError_t e = gpuSetDevice(dev);
    if (e != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "SetDevice");
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_stream_of(int dev, hcrt_backend_stream_t *stream, const char *what, gpuStream_t *s, bool *sync)
{
    if (!stream) {
        *s = GPU_SYNC_STREAM;
        *sync = true;
        return HCRT_OK;
    }
    if (stream->dev != dev)
        return hcrt_gpu_arg_error("%s: argument 'stream' belongs to device %d, not device %d", what, stream->dev, dev);
    *s = stream->s;
    *sync = false;
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_finish(gpu_state_t *st, int dev, gpuStream_t s, bool sync)
{
    if (!sync)
        return HCRT_OK;
    gpuError_t e = gpuStreamSynchronize(s);
    if (e != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "StreamSynchronize");
    return HCRT_OK;
}

/* Peak f32 rate (lanes x 2 flops per FMA x clock) over the reference core; see GPU_REF_CORE_GFLOPS. */
static double gpu_speed_estimate(int sm_count, int clock_khz, int major, int minor)
{
    double lanes = GPU_LANES_PER_SM(major, minor);
    double gflops = (double)sm_count * lanes * 2.0 * ((double)clock_khz / 1e6);
    (void)major; /* the lane count may ignore either */
    (void)minor;
    return gflops > 0 ? gflops / GPU_REF_CORE_GFLOPS : 1.0;
}

/* Reads what never changes about device `dev`. On failure the vendor text is in last_error(). */
static hcrt_status_t gpu_query_device(gpu_state_t *st, int dev)
{
    gpu_device_t *d = &st->devs[dev];
    size_t total = 0;
    int clock_khz = 0, ecc = 0, major = 0, minor = 0;
    gpuError_t e;

    if ((e = gpu_device_info(dev, d->name, sizeof d->name, &total)) != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "GetDeviceProperties");
    d->total_memory = total;
    if ((e = gpuDeviceGetPCIBusId(d->pci_bus_id, (int)sizeof d->pci_bus_id, dev)) != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "DeviceGetPCIBusId");
    for (char *c = d->pci_bus_id; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if ((e = gpuDeviceGetAttribute(&d->sm_count, GPU_ATTR_SM_COUNT, dev)) != gpuSuccess ||
        (e = gpuDeviceGetAttribute(&clock_khz, GPU_ATTR_CLOCK_KHZ, dev)) != gpuSuccess ||
        (e = gpuDeviceGetAttribute(&ecc, GPU_ATTR_ECC, dev)) != gpuSuccess ||
        (e = gpuDeviceGetAttribute(&major, GPU_ATTR_CC_MAJOR, dev)) != gpuSuccess ||
        (e = gpuDeviceGetAttribute(&minor, GPU_ATTR_CC_MINOR, dev)) != gpuSuccess)
        return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "DeviceGetAttribute");

    d->numa_node = -1;
#ifdef GPU_ATTR_HOST_NUMA
    int numa = -1;
    if (gpuDeviceGetAttribute(&numa, GPU_ATTR_HOST_NUMA, dev) == gpuSuccess && numa >= 0)
        d->numa_node = numa;
    else
        (void)gpuGetLastError(); /* older drivers do not know the attribute: the runtime asks hwloc */
#endif

    d->max_blocks = d->sm_count > 0 ? d->sm_count * 8 : 1024;
    d->speed = gpu_speed_estimate(d->sm_count, clock_khz, major, minor);
    d->caps = HCRT_CAP_PINNED_HOST;
    if (ecc)
        d->caps |= HCRT_CAP_ECC;
#ifdef HCRT_GPU_CCL
    d->caps |= HCRT_CAP_VENDOR_COLL; /* offered; whether the library loads is the probe's answer */
#endif
    for (int peer = 0; peer < st->ndev; peer++) {
        int can = 0;
        if (peer == dev)
            continue;
        if ((e = gpuDeviceCanAccessPeer(&can, dev, peer)) != gpuSuccess)
            return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "DeviceCanAccessPeer");
        if (can)
            d->caps |= HCRT_CAP_PEER_COPY;
    }
    d->peer_enabled = calloc((size_t)st->ndev, 1);
    if (!d->peer_enabled) {
        hcrt_gpu_set_error("%s: out of host memory", GPU_BACKEND);
        return HCRT_ERR_NO_MEMORY;
    }
    return HCRT_OK;
}

static void gpu_state_free(gpu_state_t *st)
{
    for (int i = 0; i < st->ndev; i++) {
        free(st->devs[i].peer_enabled);
        pthread_mutex_destroy(&st->devs[i].lock);
    }
    pthread_mutex_destroy(&st->lock);
    hcrt__hostreg_fini(&st->hostreg);
    free(st->devs);
    free(st);
}

/*
 * Counts the devices and reads their identity. No device (or a driver/runtime that cannot give one) is
 * HCRT_ERR_NO_DEVICE with the vendor's own words in last_error(NULL), e.g. "cudaGetDeviceCount: CUDA
 * driver version is insufficient for CUDA runtime version (cudaErrorInsufficientDriver, 35)".
 */
hcrt_status_t hcrt_gpu_init(const hcrt_backend_services_t *svc, void **state)
{
    hcrt_status_t status;
    gpu_state_t *st;
    int count = 0; /* the runtimes leave it untouched on failure */
    gpuError_t e;

    if (!svc)
        return hcrt_gpu_arg_error("init: argument 'svc' is NULL");
    if (!state)
        return hcrt_gpu_arg_error("init: argument 'state' is NULL");
    gpu_tls_error[0] = '\0';

    e = gpuGetDeviceCount(&count);
    if (e != gpuSuccess) {
        hcrt_gpu_set_error("%sGetDeviceCount: %s (%s, %d)", GPU_BACKEND, gpuGetErrorString(e), gpuGetErrorName(e),
                           (int)e);
        (void)gpuGetLastError();
        return HCRT_ERR_NO_DEVICE;
    }
    if (count <= 0) {
        hcrt_gpu_set_error("%sGetDeviceCount: no %s device found (count %d)", GPU_BACKEND, GPU_VENDOR, count);
        return HCRT_ERR_NO_DEVICE;
    }

    st = calloc(1, sizeof *st);
    if (!st)
        goto err_nomem;
    st->devs = calloc((size_t)count, sizeof *st->devs);
    if (!st->devs) {
        free(st);
        goto err_nomem;
    }
    st->svc = svc;
    st->ndev = count;
    pthread_mutex_init(&st->lock, NULL);
    hcrt__hostreg_init(&st->hostreg);
    for (int i = 0; i < count; i++)
        pthread_mutex_init(&st->devs[i].lock, NULL);

    for (int i = 0; i < count; i++) {
        status = gpu_query_device(st, i);
        if (status != HCRT_OK) {
            /* A device the runtime lists but cannot describe (exclusive mode taken, driver trouble)
             * makes the backend unavailable, with the vendor's reason, rather than broken. */
            if (status != HCRT_ERR_NO_MEMORY)
                status = HCRT_ERR_NO_DEVICE;
            goto err_state;
        }
    }

    int driver = 0, runtime = 0;
    if (gpuDriverGetVersion(&driver) != gpuSuccess || gpuRuntimeGetVersion(&runtime) != gpuSuccess)
        (void)gpuGetLastError();
    hcrt_gpu_log(st, HCRT_LOG_INFO, "%d %s device(s), driver %d, runtime %d; device 0: %s (%s)", count, GPU_VENDOR,
                 driver, runtime, st->devs[0].name, st->devs[0].pci_bus_id);
    *state = st;
    return HCRT_OK;

err_state:
    gpu_state_free(st);
    return status;
err_nomem:
    hcrt_gpu_set_error("%s: out of host memory", GPU_BACKEND);
    return HCRT_ERR_NO_MEMORY;
}

void hcrt_gpu_finalize(void *state)
{
    gpu_state_t *st = state;
    if (!st)
        return;
#ifdef HCRT_GPU_CCL
    hcrt_gpu_release_colls(st);
#endif
    hcrt_gpu_blas_release(st); /* before the streams its handles may still point at */
    hcrt_gpu_release_exec(st);
    hcrt_gpu_release_allocs(st);
    gpu_state_free(st);
}

const char *hcrt_gpu_last_error(void *state)
{
    (void)state;
    return gpu_tls_error;
}

hcrt_status_t hcrt_gpu_device_count(void *state, int *count)
{
    gpu_state_t *st = state;
    if (!st)
        return hcrt_gpu_arg_error("device_count: argument 'state' is NULL");
    if (!count)
        return hcrt_gpu_arg_error("device_count: argument 'count' is NULL");
    *count = st->ndev;
    return HCRT_OK;
}

hcrt_status_t hcrt_gpu_device_props(void *state, int dev, hcrt_backend_device_props_t *props)
{
    gpu_state_t *st = state;
    hcrt_backend_device_props_t p;
    size_t free_bytes = 0, total_bytes = 0;
    hcrt_status_t status;
    gpuError_t e;

    if (!st)
        return hcrt_gpu_arg_error("device_props: argument 'state' is NULL");
    if (!props || props->struct_size < sizeof(size_t))
        return hcrt_gpu_arg_error("device_props: argument 'props' is NULL or has no struct_size");
    if (dev < 0 || dev >= st->ndev)
        return hcrt_gpu_arg_error("device_props: device %d out of range (%d device(s))", dev, st->ndev);
    /* The runtime asks for every device's properties at init; measuring free memory on a device this
     * process has not used would create a context there (see gpu_context_active()). Such a device
     * reports its whole memory as free: nothing of this process is on it. */
    if (gpu_context_active(dev)) {
        if ((status = hcrt_gpu_enter(st, dev)) != HCRT_OK)
            return status;
        if ((e = gpuMemGetInfo(&free_bytes, &total_bytes)) != gpuSuccess)
            return hcrt_gpu_fail(st, dev, e, GPU_BACKEND "MemGetInfo");
    } else {
        free_bytes = total_bytes = st->devs[dev].total_memory;
    }

    const gpu_device_t *d = &st->devs[dev];
    memset(&p, 0, sizeof p);
    hcrt_gpu_strlcpy(p.name, sizeof p.name, d->name);
    hcrt_gpu_strlcpy(p.vendor, sizeof p.vendor, GPU_VENDOR);
    hcrt_gpu_strlcpy(p.pci_bus_id, sizeof p.pci_bus_id, d->pci_bus_id);
    p.total_memory = total_bytes ? total_bytes : d->total_memory;
    p.free_memory = free_bytes;
    p.speed = d->speed;
    p.caps = d->caps;
    p.numa_node = d->numa_node;

    /* Fill only what the caller's struct holds (it may have been compiled against an older header). */
    size_t n = props->struct_size < sizeof p ? props->struct_size : sizeof p;
    p.struct_size = props->struct_size;
    memcpy(props, &p, n);
    return HCRT_OK;
}

/*
 * Health never fails for a valid device: a cheap query (memory info) brings back any sticky error of
 * the device's context, which marks the device lost (a device this process has no context on is not
 * probed, so checking health never creates one). The CUDA and HIP runtimes expose no ECC error
 * counters (those live in NVML/SMI), so the counts are 0; HCRT_CAP_ECC says whether ECC is on.
 */
hcrt_status_t hcrt_gpu_health(void *state, int dev, hcrt_backend_health_t *health)
{
    gpu_state_t *st = state;
    if (!st)
        return hcrt_gpu_arg_error("health: argument 'state' is NULL");
    if (!health)
        return hcrt_gpu_arg_error("health: argument 'health' is NULL");
    if (dev < 0 || dev >= st->ndev)
        return hcrt_gpu_arg_error("health: device %d out of range (%d device(s))", dev, st->ndev);

    gpu_device_t *d = &st->devs[dev];
    pthread_mutex_lock(&d->lock);
    bool lost = d->lost;
    pthread_mutex_unlock(&d->lock);
    /* A device without this process's context has run nothing of ours: nothing to probe. */
    if (!lost && gpu_context_active(dev)) {
        size_t free_bytes, total_bytes;
        gpuError_t e = gpuSetDevice(dev);
        if (e == gpuSuccess)
            e = gpuMemGetInfo(&free_bytes, &total_bytes);
        if (e != gpuSuccess)
            (void)hcrt_gpu_fail(st, dev, e, GPU_BACKEND "MemGetInfo");
    }

    hcrt_backend_health_t h;
    memset(&h, 0, sizeof h);
    pthread_mutex_lock(&d->lock);
    h.device_lost = d->lost;
    h.last_status = d->last_status;
    hcrt_gpu_strlcpy(h.last_error, sizeof h.last_error, d->last_error);
    pthread_mutex_unlock(&d->lock);
    size_t n = health->struct_size < sizeof h ? health->struct_size : sizeof h;
    h.struct_size = health->struct_size;
    memcpy(health, &h, n);
    return HCRT_OK;
}
