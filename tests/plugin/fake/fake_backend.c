/*
 * tests/plugin/fake/fake_backend.c - a deliberately broken backend plugin, one failure per build.
 *
 * Built several times with FAKE_MODE set, into libhcrt-backend-<mode>.so, so the loader test can check
 * that each failure is reported by file and reason and that the good plugins still load:
 *   good      a valid table with one host-addressable device (optional ops absent)
 *   nosym     no hcrt_backend_v1 symbol at all
 *   badabi    abi_version 99
 *   short     struct_size smaller than the mandatory part
 *   nullop    a mandatory op (memcpy) is NULL
 *   badname   the table's name differs from the file name
 *   failinit  init() fails with HCRT_ERR_BACKEND
 *   nodev     init() reports HCRT_ERR_NO_DEVICE with a vendor-style reason
 *   undef     references a symbol that does not exist, so dlopen itself fails
 *   badcompute  a valid table whose compute extension lacks an op: the plugin loads, its compute is
 *             ignored with a warning
 */
#include <stdlib.h>
#include <string.h>

#include "hcrt/backend.h"

#define MODE_GOOD 0
#define MODE_NOSYM 1
#define MODE_BADABI 2
#define MODE_SHORT 3
#define MODE_NULLOP 4
#define MODE_BADNAME 5
#define MODE_FAILINIT 6
#define MODE_NODEV 7
#define MODE_UNDEF 8
#define MODE_BADCOMPUTE 9

#ifndef FAKE_MODE
#error "FAKE_MODE must be set"
#endif

static int dummy_state;

static const char *fake_last_error(void *state)
{
    (void)state;
#if FAKE_MODE == MODE_NODEV
    return "fakeGetDeviceCount: no fake device is detected (fakeErrorNoDevice, 100)";
#elif FAKE_MODE == MODE_FAILINIT
    return "fake runtime refused to start";
#else
    return "";
#endif
}

#if FAKE_MODE == MODE_UNDEF
extern int hcrt_fake_symbol_that_does_not_exist(void);
#endif

static hcrt_status_t fake_init(const hcrt_backend_services_t *svc, void **state)
{
    (void)svc;
    (void)state;
#if FAKE_MODE == MODE_UNDEF
    if (hcrt_fake_symbol_that_does_not_exist())
        return HCRT_ERR_INTERNAL;
#endif
#if FAKE_MODE == MODE_NODEV
    return HCRT_ERR_NO_DEVICE;
#elif FAKE_MODE == MODE_FAILINIT
    return HCRT_ERR_BACKEND;
#else
    *state = &dummy_state;
    return HCRT_OK;
#endif
}

static void fake_finalize(void *state) { (void)state; }

static hcrt_status_t fake_device_count(void *state, int *count)
{
    (void)state;
    *count = 1;
    return HCRT_OK;
}

static hcrt_status_t fake_device_props(void *state, int dev, hcrt_backend_device_props_t *p)
{
    (void)state;
    if (dev != 0)
        return HCRT_ERR_INVALID_ARG;
    size_t sz = p->struct_size;
    memset(p, 0, sz);
    p->struct_size = sz;
    strcpy(p->name, "fake device");
    strcpy(p->vendor, "test");
    p->total_memory = 1 << 20;
    p->free_memory = 1 << 20;
    p->speed = 1.0;
    p->caps = HCRT_CAP_HOST_ADDRESSABLE;
    p->numa_node = -1;
    return HCRT_OK;
}

static hcrt_status_t fake_health(void *state, int dev, hcrt_backend_health_t *h)
{
    (void)state;
    (void)dev;
    h->device_lost = false;
    h->last_status = HCRT_OK;
    h->last_error[0] = '\0';
    return HCRT_OK;
}

static hcrt_status_t fake_alloc(void *state, int dev, size_t bytes, void **ptr)
{
    (void)state;
    (void)dev;
    *ptr = malloc(bytes);
    return *ptr ? HCRT_OK : HCRT_ERR_DEVICE_OOM;
}

static hcrt_status_t fake_free(void *state, int dev, void *ptr)
{
    (void)state;
    (void)dev;
    free(ptr);
    return HCRT_OK;
}

static hcrt_status_t fake_host_alloc(void *state, size_t bytes, void **ptr) { return fake_alloc(state, 0, bytes, ptr); }
static hcrt_status_t fake_host_free(void *state, void *ptr) { return fake_free(state, 0, ptr); }

static hcrt_status_t fake_memset(void *state, int dev, void *ptr, int v, size_t n, hcrt_backend_stream_t *s)
{
    (void)state;
    (void)dev;
    (void)s;
    memset(ptr, v, n);
    return HCRT_OK;
}

static hcrt_status_t fake_memcpy(void *state, int dev, void *dst, const void *src, size_t n, hcrt_copy_kind_t k,
                                 hcrt_backend_stream_t *s)
{
    (void)state;
    (void)dev;
    (void)k;
    (void)s;
    memmove(dst, src, n);
    return HCRT_OK;
}

static hcrt_status_t fake_memcpy_peer(void *state, int dd, void *dst, int sd, const void *src, size_t n,
                                      hcrt_backend_stream_t *s)
{
    (void)sd;
    return fake_memcpy(state, dd, dst, src, n, HCRT_COPY_D2D, s);
}

/* Streams and events of this fake are synchronous: every op completes before it returns. */
static hcrt_status_t fake_stream_create(void *state, int dev, hcrt_backend_stream_t **s)
{
    (void)state;
    (void)dev;
    *s = (hcrt_backend_stream_t *)&dummy_state;
    return HCRT_OK;
}
static hcrt_status_t fake_stream_destroy(void *state, hcrt_backend_stream_t *s)
{
    (void)state;
    (void)s;
    return HCRT_OK;
}
static hcrt_status_t fake_stream_sync(void *state, hcrt_backend_stream_t *s)
{
    (void)state;
    (void)s;
    return HCRT_OK;
}
static hcrt_status_t fake_event_create(void *state, int dev, hcrt_backend_event_t **e)
{
    (void)state;
    (void)dev;
    *e = (hcrt_backend_event_t *)&dummy_state;
    return HCRT_OK;
}
static hcrt_status_t fake_event_destroy(void *state, hcrt_backend_event_t *e)
{
    (void)state;
    (void)e;
    return HCRT_OK;
}
static hcrt_status_t fake_event_record(void *state, hcrt_backend_event_t *e, hcrt_backend_stream_t *s)
{
    (void)state;
    (void)e;
    (void)s;
    return HCRT_OK;
}
static hcrt_status_t fake_event_sync(void *state, hcrt_backend_event_t *e)
{
    (void)state;
    (void)e;
    return HCRT_OK;
}
static hcrt_status_t fake_event_query(void *state, hcrt_backend_event_t *e, bool *done)
{
    (void)state;
    (void)e;
    *done = true;
    return HCRT_OK;
}
static hcrt_status_t fake_event_elapsed(void *state, hcrt_backend_event_t *a, hcrt_backend_event_t *b, float *ms)
{
    (void)state;
    (void)a;
    (void)b;
    *ms = 0;
    return HCRT_OK;
}
static hcrt_status_t fake_reduce(void *state, int dev, void *dst, const void *src, size_t n, hcrt_dtype_t t,
                                 hcrt_op_t op, hcrt_backend_stream_t *s)
{
    (void)state, (void)dev, (void)dst, (void)src, (void)n, (void)t, (void)op, (void)s;
    return HCRT_ERR_NOT_SUPPORTED;
}
static hcrt_status_t fake_scale(void *state, int dev, void *p, size_t n, hcrt_dtype_t t, double f,
                                hcrt_backend_stream_t *s)
{
    (void)state, (void)dev, (void)p, (void)n, (void)t, (void)f, (void)s;
    return HCRT_ERR_NOT_SUPPORTED;
}

#if FAKE_MODE == MODE_NOSYM
/* Exports a table, just not under the name the loader looks for. */
#define TABLE_SYMBOL hcrt_backend_v1_misnamed
#else
#define TABLE_SYMBOL hcrt_backend_v1
#endif

#if FAKE_MODE == MODE_BADCOMPUTE
/* Every op but the last (cast) missing would be as wrong; one NULL op is enough to make it unusable. */
static hcrt_status_t fake_relu(void *state, int dev, float *y, const float *x, size_t n, hcrt_backend_stream_t *s)
{
    (void)state, (void)dev, (void)y, (void)x, (void)n, (void)s;
    return HCRT_ERR_NOT_SUPPORTED;
}
static const hcrt_backend_compute_v1_t fake_compute = {
    .struct_size = sizeof(hcrt_backend_compute_v1_t),
    .version = HCRT_BACKEND_COMPUTE_VERSION,
    .relu = fake_relu,
};
#endif

HCRT_BACKEND_EXPORT const hcrt_backend_v1_t TABLE_SYMBOL = {
#if FAKE_MODE == MODE_SHORT
    .struct_size = offsetof(hcrt_backend_v1_t, mem_alloc),
#elif FAKE_MODE == MODE_BADCOMPUTE
    .struct_size = sizeof(hcrt_backend_v1_t),
    .compute = &fake_compute,
#else
    .struct_size = offsetof(hcrt_backend_v1_t, coll_unique_id_size), /* no optional ops */
#endif
#if FAKE_MODE == MODE_BADABI
    .abi_version = 99,
#else
    .abi_version = HCRT_BACKEND_ABI_VERSION,
#endif
#if FAKE_MODE == MODE_BADNAME
    .name = "somethingelse",
#else
    .name = FAKE_NAME,
#endif
    .init = fake_init,
    .finalize = fake_finalize,
    .last_error = fake_last_error,
    .device_count = fake_device_count,
    .device_props = fake_device_props,
    .health = fake_health,
    .mem_alloc = fake_alloc,
    .mem_free = fake_free,
    .host_alloc = fake_host_alloc,
    .host_free = fake_host_free,
    .memset = fake_memset,
#if FAKE_MODE == MODE_NULLOP
    .memcpy = NULL,
#else
    .memcpy = fake_memcpy,
#endif
    .memcpy_peer = fake_memcpy_peer,
    .stream_create = fake_stream_create,
    .stream_destroy = fake_stream_destroy,
    .stream_sync = fake_stream_sync,
    .event_create = fake_event_create,
    .event_destroy = fake_event_destroy,
    .event_record = fake_event_record,
    .event_sync = fake_event_sync,
    .event_query = fake_event_query,
    .event_elapsed = fake_event_elapsed,
    .reduce = fake_reduce,
    .scale = fake_scale,
};
