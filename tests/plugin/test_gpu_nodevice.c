/*
 * tests/plugin/test_gpu_nodevice.c - the real cuda and hip plugins through the real loader.
 *
 * Usage: test_gpu_nodevice NAME... (the GPU plugins this build produced: "cuda", "hip").
 *
 * On a machine without a GPU each named plugin must load (its table passes the loader's checks, so it is
 * not BROKEN), report HCRT_BACKEND_UNAVAILABLE with zero devices, and carry the vendor runtime's own
 * words as the reason (e.g. "cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime
 * version (cudaErrorInsufficientDriver, 35)"), while cpu and sim load as usual. Where a GPU is present
 * the plugin is LOADED instead, and the test checks that its devices' properties are sane. The plugins
 * are also excluded by an HCRT_BACKENDS-style filter, and a second context loads them again (the vendor
 * runtimes must survive being unloaded and reloaded in one process).
 */
#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hcrt/backend.h"
#include "hcrt/hcrt.h"
#include "test.h"

/* Case-insensitive substring search. */
static bool contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; hay && *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return false;
}

static bool find_backend(hcrt_context_t *ctx, const char *name, hcrt_backend_info_t *out)
{
    int count = 0;
    CHECK_OK(ctx, hcrt_backend_count(ctx, &count));
    for (int i = 0; i < count; i++) {
        hcrt_backend_info_t info = {.struct_size = sizeof info};
        CHECK_OK(ctx, hcrt_backend_get_info(ctx, i, &info));
        if (info.name && strcmp(info.name, name) == 0) {
            *out = info;
            return true;
        }
    }
    return false;
}

/* "0000:3b:00.0": hex domain, bus, device, function, lower case. */
static bool pci_id_ok(const char *id)
{
    const char *shape = "hhhh:hh:hh.h";
    if (strlen(id) < strlen(shape))
        return false;
    for (size_t i = 0; shape[i]; i++) {
        if (shape[i] == 'h') {
            if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i]))
                return false;
        } else if (id[i] != shape[i]) {
            return false;
        }
    }
    return true;
}

/* The plugin file itself: one exported v1 table with the right name and every mandatory op. */
static void check_table(const char *name, const char *path)
{
    char expect[64];
    snprintf(expect, sizeof expect, "libhcrt-backend-%s.so", name);
    const char *base = strrchr(path, '/');
    CHECK_MSG(base && strcmp(base + 1, expect) == 0, "%s: loaded from %s", name, path);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(dl != NULL, "dlopen %s: %s", path, dlerror());
    if (!dl)
        return;
    const hcrt_backend_v1_t *t = dlsym(dl, HCRT_BACKEND_SYMBOL_V1);
    CHECK_MSG(t != NULL, "%s exports no %s", path, HCRT_BACKEND_SYMBOL_V1);
    if (t) {
        CHECK(t->struct_size >= HCRT_BACKEND_V1_MIN_SIZE);
        CHECK(t->abi_version == HCRT_BACKEND_ABI_VERSION);
        CHECK(t->name && strcmp(t->name, name) == 0);
        CHECK(t->init && t->finalize && t->last_error && t->device_count && t->device_props && t->health);
        CHECK(t->mem_alloc && t->mem_free && t->host_alloc && t->host_free && t->memset && t->memcpy && t->memcpy_peer);
        CHECK(t->stream_create && t->stream_destroy && t->stream_sync && t->event_create && t->event_destroy &&
              t->event_record && t->event_sync && t->event_query && t->event_elapsed);
        CHECK(t->reduce && t->scale);
        /* The vendor collective path (NCCL, RCCL: loaded when first needed) comes complete or not at all. */
        if (HCRT_BACKEND_HAS_OP(t, coll_init)) {
            CHECK(t->coll_unique_id_size > 0 && t->coll_get_unique_id && t->coll_destroy && t->coll_abort &&
                  t->coll_allreduce && t->coll_reduce_scatter && t->coll_allgather && t->coll_broadcast);
        }
        CHECK(t->last_error(NULL) != NULL);
    }
    dlclose(dl);
}

/* A GPU is present: the devices must describe themselves sensibly. */
static void check_devices(hcrt_context_t *ctx, const char *name, int ndev)
{
    const char *vendor = strcmp(name, "cuda") == 0 ? "NVIDIA" : "AMD";
    for (int i = 0; i < ndev; i++) {
        hcrt_device_t *dev = NULL;
        CHECK_OK(ctx, hcrt_device_find(ctx, name, i, &dev));
        if (!dev)
            continue;
        hcrt_device_props_t p = {.struct_size = sizeof p};
        CHECK_OK(ctx, hcrt_device_get_props(dev, &p));
        printf("%s device %d: %s, %s, pci %s, %.1f/%.1f GiB free, speed %.0f, caps 0x%llx, numa %d\n", name, i, p.name,
               p.vendor, p.pci_bus_id, p.free_memory / 1073741824.0, p.total_memory / 1073741824.0, p.speed,
               (unsigned long long)p.caps, p.numa_node);
        CHECK(p.name && p.name[0] != '\0');
        CHECK(p.vendor && strcmp(p.vendor, vendor) == 0);
        CHECK_MSG(p.pci_bus_id && pci_id_ok(p.pci_bus_id), "pci bus id '%s'", p.pci_bus_id ? p.pci_bus_id : "");
        CHECK(p.total_memory > 0 && p.free_memory <= p.total_memory);
        CHECK(p.speed > 1.0); /* any GPU of sm_80/gfx908 class outruns one host core */
        CHECK((p.caps & HCRT_CAP_PINNED_HOST) != 0);
        CHECK((p.caps & HCRT_CAP_HOST_ADDRESSABLE) == 0 && !p.host_addressable);
        CHECK((p.caps & HCRT_CAP_FAULT_INJECTION) == 0);
        CHECK(p.index == i);
        CHECK_OK(ctx, hcrt_device_check_health(dev));

        /* More than the device has is a clean out-of-memory error, and leaves the device healthy. */
        void *big = NULL;
        CHECK_STATUS(ctx, hcrt_mem_alloc(dev, (size_t)p.total_memory + ((size_t)1 << 30), &big), HCRT_ERR_DEVICE_OOM);
        CHECK_MSG(contains(hcrt_last_error(ctx), "memory"), "OOM text: '%s'", hcrt_last_error(ctx));
        CHECK(big == NULL);
        CHECK_OK(ctx, hcrt_device_check_health(dev));
    }
}

static void check_context(const char *const *names, int nnames, bool report)
{
    hcrt_context_params_t params;
    hcrt_context_t *ctx = NULL;
    hcrt_backend_info_t info;

    hcrt_context_params_init(&params);
    params.flags = HCRT_INIT_NO_MPI;
    REQUIRE_OK(NULL, hcrt_init(&params, &ctx));

    for (int i = 0; i < nnames; i++) {
        const char *name = names[i];
        if (!find_backend(ctx, name, &info)) {
            CHECK_MSG(0, "backend '%s' was built but the loader did not list it", name);
            continue;
        }
        if (report)
            printf("%s: %s, %d device(s), reason: %s\n", name,
                   info.status == HCRT_BACKEND_LOADED        ? "loaded"
                   : info.status == HCRT_BACKEND_UNAVAILABLE ? "unavailable"
                   : info.status == HCRT_BACKEND_BROKEN      ? "BROKEN"
                                                             : "filtered",
                   info.device_count, info.reason ? info.reason : "(null)");
        CHECK_MSG(info.status == HCRT_BACKEND_LOADED || info.status == HCRT_BACKEND_UNAVAILABLE, "%s has status %d: %s",
                  name, (int)info.status, info.reason ? info.reason : "");
        if (info.path)
            check_table(name, info.path);
        if (info.status == HCRT_BACKEND_UNAVAILABLE) {
            CHECK(info.device_count == 0);
            /* The vendor's words: the runtime call and its error name or its sentence. */
            if (strcmp(name, "cuda") == 0)
                CHECK_MSG(contains(info.reason, "cuda") &&
                              (contains(info.reason, "driver") || contains(info.reason, "cudaError") ||
                               contains(info.reason, "device")),
                          "cuda reason: '%s'", info.reason ? info.reason : "(null)");
            else
                CHECK_MSG(contains(info.reason, "hip") &&
                              (contains(info.reason, "hipError") || contains(info.reason, "device")),
                          "hip reason: '%s'", info.reason ? info.reason : "(null)");
        } else if (info.status == HCRT_BACKEND_LOADED) {
            CHECK(info.device_count > 0);
            check_devices(ctx, name, info.device_count);
        }
    }

    /* The built-in host backend and the sim plugin are unaffected by the GPU plugins. */
    CHECK(find_backend(ctx, "cpu", &info) && info.status == HCRT_BACKEND_LOADED && info.device_count == 1);
    CHECK(find_backend(ctx, "sim", &info) && info.status == HCRT_BACKEND_LOADED && info.device_count >= 1);
    hcrt_device_t *host = NULL;
    CHECK_OK(ctx, hcrt_device_host(ctx, &host));
    CHECK_OK(ctx, hcrt_finalize(ctx));
}

static void check_filtered(const char *const *names, int nnames)
{
    char filter[128] = "^";
    hcrt_context_params_t params;
    hcrt_context_t *ctx = NULL;
    hcrt_backend_info_t info;

    for (int i = 0; i < nnames; i++) {
        if (i)
            strcat(filter, ",");
        strncat(filter, names[i], sizeof filter - strlen(filter) - 2);
    }
    hcrt_context_params_init(&params);
    params.flags = HCRT_INIT_NO_MPI;
    params.backends = filter;
    REQUIRE_OK(NULL, hcrt_init(&params, &ctx));
    for (int i = 0; i < nnames; i++)
        CHECK_MSG(!find_backend(ctx, names[i], &info) || info.status == HCRT_BACKEND_FILTERED,
                  "filter '%s' did not exclude %s (status %d)", filter, names[i], (int)info.status);
    CHECK(find_backend(ctx, "sim", &info) && info.status == HCRT_BACKEND_LOADED);
    CHECK_OK(ctx, hcrt_finalize(ctx));
}

/*
 * --mock-lost (only against tests/plugin/mock_cudart.c / mock_hiprt.c): allocating 0xDEAD bytes makes
 * the mock's device 1 fail like a GPU after an illegal address. The plugin must then report that device
 * lost, with the vendor's words, fail every op on it with DEVICE_LOST, and leave device 0 working.
 */
static void check_lost_device(const char *name)
{
    hcrt_context_params_t params;
    hcrt_context_t *ctx = NULL;
    hcrt_device_t *d0 = NULL, *d1 = NULL;
    void *p = NULL, *q = NULL;
    char code[64];

    snprintf(code, sizeof code, "%sErrorIllegalAddress", name);
    hcrt_context_params_init(&params);
    params.flags = HCRT_INIT_NO_MPI;
    REQUIRE_OK(NULL, hcrt_init(&params, &ctx));
    REQUIRE_OK(ctx, hcrt_device_find(ctx, name, 0, &d0));
    REQUIRE_OK(ctx, hcrt_device_find(ctx, name, 1, &d1));
    CHECK_OK(ctx, hcrt_mem_alloc(d1, 4096, &p));
    CHECK_STATUS(ctx, hcrt_mem_alloc(d1, 0xDEAD, &q), HCRT_ERR_DEVICE_LOST);
    CHECK_MSG(contains(hcrt_last_error(ctx), code), "text: '%s'", hcrt_last_error(ctx));
    CHECK_STATUS(ctx, hcrt_device_check_health(d1), HCRT_ERR_DEVICE_LOST);
    CHECK_MSG(contains(hcrt_last_error(ctx), "illegal memory access"), "health text: '%s'", hcrt_last_error(ctx));
    CHECK_STATUS(ctx, hcrt_memset(d1, p, 0, 4096), HCRT_ERR_DEVICE_LOST);
    CHECK_STATUS(ctx, hcrt_mem_alloc(d1, 4096, &q), HCRT_ERR_DEVICE_LOST);
    CHECK_MSG(contains(hcrt_last_error(ctx), "lost"), "text: '%s'", hcrt_last_error(ctx));
    /* the other device is unaffected */
    CHECK_OK(ctx, hcrt_device_check_health(d0));
    CHECK_OK(ctx, hcrt_mem_alloc(d0, 4096, &q));
    CHECK_OK(ctx, hcrt_memset(d0, q, 1, 4096));
    CHECK_OK(ctx, hcrt_mem_free(d0, q));
    /* finalize releases what the lost device still holds without failing */
    CHECK_OK(ctx, hcrt_finalize(ctx));
}

int main(int argc, char **argv)
{
    bool mock_lost = argc > 1 && strcmp(argv[1], "--mock-lost") == 0;
    if (mock_lost) {
        argv++;
        argc--;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s [--mock-lost] cuda|hip...\n", argv[0]);
        return 2;
    }
    const char *const *names = (const char *const *)&argv[1];
    int nnames = argc - 1;

    check_context(names, nnames, true);
    /* Again in the same process: the plugins were dlclose()d with their vendor runtimes. */
    check_context(names, nnames, false);
    check_filtered(names, nnames);
    for (int i = 0; mock_lost && i < nnames; i++)
        check_lost_device(names[i]);
    TEST_DONE();
}
