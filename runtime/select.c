/*
 * runtime/select.c - which device this rank uses (docs/architecture.md, "Device choice").
 *
 * HCRT_DEVICE=backend[:index] wins. Otherwise ranks of one node spread over the devices of the first
 * accelerator backend that has any (node-local rank modulo its device count), the way one launches one
 * rank per GPU; a node without accelerators runs on the host. HCRT_BIND=device then pins the process to
 * the cores nearest its device.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runtime/internal.h"

static hcrt__backend_t *find_backend(hcrt_context_t *ctx, const char *name, size_t len)
{
    for (int b = 0; b < ctx->nbackends; b++)
        if (strlen(ctx->backends[b].name) == len && strncmp(ctx->backends[b].name, name, len) == 0)
            return &ctx->backends[b];
    return NULL;
}

static const char *backend_status_word(hcrt_backend_status_t s)
{
    switch (s) {
    case HCRT_BACKEND_LOADED:
        return "loaded";
    case HCRT_BACKEND_UNAVAILABLE:
        return "unavailable";
    case HCRT_BACKEND_BROKEN:
        return "broken";
    case HCRT_BACKEND_FILTERED:
        return "filtered out";
    }
    return "unknown";
}

/*
 * Resolves HCRT_DEVICE. Without ":index" the rank takes its node-local share of that backend's devices,
 * so HCRT_DEVICE=sim on every rank still spreads the ranks over the sim devices.
 */
static hcrt_status_t pick_configured(hcrt_context_t *ctx, const char *spec, hcrt_device_t **out)
{
    const char *colon = strchr(spec, ':');
    size_t namelen = colon ? (size_t)(colon - spec) : strlen(spec);
    long index = -1;
    if (colon != NULL) {
        char *end = NULL;
        errno = 0;
        index = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end != '\0' || index < 0 || index > 1000000)
            return hcrt__error(NULL, HCRT_ERR_CONFIG,
                               "hcrt_init: HCRT_DEVICE='%s': the index after ':' must be a "
                               "non-negative integer (expected backend[:index], e.g. sim:1)",
                               spec);
    }
    if (namelen == 0)
        return hcrt__error(NULL, HCRT_ERR_CONFIG,
                           "hcrt_init: HCRT_DEVICE='%s': no backend name (expected "
                           "backend[:index], e.g. sim:1)",
                           spec);

    hcrt__backend_t *be = find_backend(ctx, spec, namelen);
    if (be == NULL)
        return hcrt__error(NULL, HCRT_ERR_NOT_FOUND,
                           "hcrt_init: HCRT_DEVICE='%s': rank %d on %s has no backend "
                           "named '%.*s' (hcrt-info lists the backends)",
                           spec, ctx->rank, ctx->hostname, (int)namelen, spec);
    if (be->status != HCRT_BACKEND_LOADED || be->ndev <= 0)
        return hcrt__error(NULL, HCRT_ERR_NOT_FOUND,
                           "hcrt_init: HCRT_DEVICE='%s': rank %d on %s: backend %s is "
                           "%s%s%s",
                           spec, ctx->rank, ctx->hostname, be->name, backend_status_word(be->status),
                           be->reason[0] ? ": " : "", be->reason);
    if (index >= be->ndev)
        return hcrt__error(NULL, HCRT_ERR_NOT_FOUND,
                           "hcrt_init: HCRT_DEVICE='%s': rank %d on %s: backend %s has "
                           "%d device(s), index %ld does not exist",
                           spec, ctx->rank, ctx->hostname, be->name, be->ndev, index);
    if (index < 0)
        index = ctx->local_rank % be->ndev;
    *out = &ctx->devices[be->first_device + index];
    return HCRT_OK;
}

hcrt_status_t hcrt__select_device(hcrt_context_t *ctx)
{
    hcrt_device_t *dev = NULL;
    const char *why;
    const char *spec = hcrt__config_str(ctx, "HCRT_DEVICE");

    if (spec != NULL && spec[0] != '\0') {
        HCRT_CHECK(pick_configured(ctx, spec, &dev));
        why = "HCRT_DEVICE";
    } else {
        hcrt__backend_t *accel = NULL, *host = NULL;
        for (int b = 0; b < ctx->nbackends; b++) {
            hcrt__backend_t *be = &ctx->backends[b];
            if (be->status != HCRT_BACKEND_LOADED || be->ndev <= 0)
                continue;
            if (strcmp(be->name, "cpu") == 0) {
                if (host == NULL)
                    host = be;
            } else if (accel == NULL) {
                accel = be;
            }
        }
        if (accel != NULL) {
            dev = &ctx->devices[accel->first_device + ctx->local_rank % accel->ndev];
            why = "node-local rank";
        } else if (host != NULL) {
            dev = &ctx->devices[host->first_device];
            why = "no accelerator";
        } else {
            return hcrt__error(NULL, HCRT_ERR_NO_DEVICE,
                               "hcrt_init: rank %d on %s: no backend has a device "
                               "(HCRT_BACKENDS='%s'; hcrt-info lists the backends)",
                               ctx->rank, ctx->hostname, hcrt__config_str(ctx, "HCRT_BACKENDS"));
        }
    }
    ctx->selected = dev;
    HCRT_INFO("select", "rank %d (local %d of %d) on %s: %s device %d '%s' (%s)", ctx->rank, ctx->local_rank,
              ctx->local_size, ctx->hostname, dev->be->name, dev->index, dev->bprops.name, why);
    if (dev->be->ndev < ctx->local_size && strcmp(why, "node-local rank") == 0)
        HCRT_DEBUG("select", "%d ranks on %s share %d %s device(s)", ctx->local_size, ctx->hostname, dev->be->ndev,
                   dev->be->name);

    if (strcasecmp(hcrt__config_str(ctx, "HCRT_BIND"), "device") == 0)
        HCRT_CHECK(hcrt__topology_bind(ctx, dev));
    return HCRT_OK;
}
