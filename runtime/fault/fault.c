/*
 * runtime/fault/fault.c - the trigger of HCRT_FAULT rules at call sites (parser in parse.c).
 *
 * The plan is parsed once by hcrt_init and kept by the context, so a malformed rule fails the init
 * instead of silently injecting nothing, and a site without HCRT_FAULT costs one load.
 */
#include "runtime/fault/fault.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"

hcrt_status_t hcrt__fault_init(hcrt_context_t *ctx)
{
    char err[512];
    const char *text = hcrt__config_str(ctx, "HCRT_FAULT");
    ctx->run_attempt = hcrt__config_int(ctx, "HCRT_RUN_ATTEMPT");
    ctx->fault = NULL;
    if (text == NULL || text[0] == '\0')
        return HCRT_OK;
    hcrt__fault_plan_t *plan = calloc(1, sizeof(*plan));
    if (plan == NULL)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory parsing HCRT_FAULT");
    hcrt_status_t st = hcrt__fault_parse(text, plan, err, sizeof(err));
    if (st != HCRT_OK) {
        free(plan);
        if (st == HCRT_ERR_CONFIG)
            return hcrt__error(NULL, st, "hcrt_init: HCRT_FAULT='%s': %s", text, err);
        return hcrt__error(NULL, st, "hcrt_init: out of memory parsing HCRT_FAULT");
    }
    if (plan->nrules == 0) {
        free(plan);
        return HCRT_OK;
    }
    ctx->fault = plan;
    return HCRT_OK;
}

void hcrt__fault_fini(hcrt_context_t *ctx)
{
    if (ctx->fault == NULL)
        return;
    hcrt__fault_plan_free(ctx->fault);
    free(ctx->fault);
    ctx->fault = NULL;
}

hcrt__fault_kind_t hcrt__fault_check(const hcrt_context_t *ctx, const char *site, const char *name, int64_t num)
{
    const hcrt__fault_plan_t *plan = ctx ? ctx->fault : NULL;
    if (plan == NULL)
        return HCRT__FAULT_NONE;
    const hcrt__fault_rule_t *r = hcrt__fault_match(plan, ctx->rank, ctx->run_attempt, site, name, num);
    if (r == NULL)
        return HCRT__FAULT_NONE;
    const char *nm = name ? name : "";
    switch (r->kind) {
    case HCRT__FAULT_KILL:
        /* Written straight to stderr: the logger may be filtered, and the test reading this wants to see
         * that the kill was the injected one. */
        fprintf(stderr, "hcrt fault: rank %d killed at %s %s %lld (HCRT_FAULT)\n", ctx->rank, site, nm, (long long)num);
        fflush(stderr);
        raise(SIGKILL);
        break;
    case HCRT__FAULT_HANG:
        fprintf(stderr, "hcrt fault: rank %d hangs at %s %s %lld (HCRT_FAULT)\n", ctx->rank, site, nm, (long long)num);
        fflush(stderr);
        for (;;)
            pause();
        break;
    case HCRT__FAULT_SLOW: {
        fprintf(stderr, "hcrt fault: rank %d slowed by %g s at %s %s %lld (HCRT_FAULT)\n", ctx->rank, r->secs, site, nm,
                (long long)num);
        fflush(stderr);
        struct timespec ts = {(time_t)r->secs, (long)((r->secs - (double)(time_t)r->secs) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        return HCRT__FAULT_NONE;
    }
    case HCRT__FAULT_CORRUPT:
    case HCRT__FAULT_ERROR:
    case HCRT__FAULT_DEVICE_LOST:
        HCRT_WARN("fault", "injected %s at %s %s %lld on rank %d (HCRT_FAULT)", hcrt__fault_kind_name(r->kind), site,
                  nm, (long long)num, ctx->rank);
        return r->kind;
    case HCRT__FAULT_NONE:
    case HCRT__FAULT_KINDS:
        break;
    }
    return HCRT__FAULT_NONE;
}

hcrt_status_t hcrt__fault_flip_bit(hcrt_device_t *dev, void *ptr, size_t bytes)
{
    hcrt_device_t *host = NULL;
    unsigned char b = 0;
    if (bytes == 0 || ptr == NULL)
        return HCRT_OK;
    unsigned char *at = (unsigned char *)ptr + bytes / 2;
    if (dev == NULL || hcrt__device_is_host(dev)) {
        *at ^= 0x10;
        return HCRT_OK;
    }
    HCRT_CHECK(hcrt_device_host(dev->ctx, &host));
    HCRT_CHECK(hcrt_memcpy(host, &b, dev, at, 1));
    b ^= 0x10;
    return hcrt_memcpy(dev, at, host, &b, 1);
}

hcrt_status_t hcrt__fault_site(hcrt_context_t *ctx, const char *site, const char *name, int64_t num, hcrt_device_t *dev,
                               void *ptr, size_t bytes, hcrt_status_t err_status)
{
    hcrt__fault_kind_t k = hcrt__fault_check(ctx, site, name, num);
    const char *nm = name ? name : "";
    char why[192];
    switch (k) {
    case HCRT__FAULT_ERROR:
        return hcrt__error(ctx, err_status, "injected error at %s %s %lld on rank %d (HCRT_FAULT)", site, nm,
                           (long long)num, ctx->rank);
    case HCRT__FAULT_DEVICE_LOST:
        if (dev == NULL)
            dev = ctx->selected;
        snprintf(why, sizeof(why), "injected by HCRT_FAULT device_lost at %s %s %lld", site, nm, (long long)num);
        hcrt__device_lose(dev, why);
        return hcrt_device_check_health(dev);
    case HCRT__FAULT_CORRUPT:
        if (ptr == NULL) {
            HCRT_WARN("fault", "corrupt at %s %s %lld: the site passed no buffer; nothing corrupted", site, nm,
                      (long long)num);
            return HCRT_OK;
        }
        return hcrt__fault_flip_bit(dev, ptr, bytes);
    default:
        return HCRT_OK;
    }
}

hcrt_status_t hcrt_fault_point(hcrt_context_t *ctx, const char *site, const char *name, int64_t num,
                               const hcrt_buffer_t *buf)
{
    HCRT_CHECK_ARG(NULL, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, site != NULL, "site", "is NULL");
    HCRT_CHECK_ARG(ctx, strcmp(site, "train") == 0 || strcmp(site, "compute") == 0, "site",
                   "is neither \"train\" nor \"compute\" (the library's own sites check themselves)");
    HCRT_CHECK_ARG(ctx, num >= 0, "num", "is negative");
    if (buf != NULL) {
        HCRT_CHECK_ARG(ctx, buf->device != NULL, "buf->device", "is NULL");
        HCRT_CHECK_ARG(ctx, buf->device->ctx == ctx, "buf->device", "belongs to another context");
        HCRT_CHECK_ARG(ctx, hcrt_dtype_size(buf->dtype) != 0, "buf->dtype", "is not a valid hcrt_dtype_t");
        HCRT_CHECK_ARG(ctx, buf->ptr != NULL || buf->count == 0, "buf->ptr", "is NULL with a non-zero count");
        HCRT_CHECK_ARG(ctx, buf->count <= SIZE_MAX / hcrt_dtype_size(buf->dtype), "buf->count",
                       "overflows the size in bytes");
    }
    if (ctx->fault == NULL)
        return HCRT_OK;
    return hcrt__fault_site(ctx, site, name, num, buf ? buf->device : NULL, buf ? buf->ptr : NULL,
                            buf ? buf->count * hcrt_dtype_size(buf->dtype) : 0, HCRT_ERR_BACKEND);
}
