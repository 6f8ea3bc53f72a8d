/*
 * runtime/vendor_coll.c - whether a backend's vendor collective library (NCCL, RCCL, simccl) can be
 * used.
 *
 * Plugins load that library lazily (a node without it still has the backend), so the answer comes from
 * asking the plugin: coll_get_unique_id with a NULL id loads the library if needed and says whether it
 * works (hcrt/backend.h). The answer is kept per backend; communicators ask when they are created, and
 * hcrt-info shows it ("no vendor collectives: <reason>").
 */
#include <stdio.h>

#include "runtime/internal.h"

/* The whole family, or the runtime uses none of it. */
static bool has_coll_ops(const hcrt_backend_v1_t *ops)
{
    return HCRT_BACKEND_HAS_OP(ops, coll_get_unique_id) && HCRT_BACKEND_HAS_OP(ops, coll_init) &&
           HCRT_BACKEND_HAS_OP(ops, coll_destroy) && HCRT_BACKEND_HAS_OP(ops, coll_abort) &&
           HCRT_BACKEND_HAS_OP(ops, coll_allreduce) && HCRT_BACKEND_HAS_OP(ops, coll_reduce_scatter) &&
           HCRT_BACKEND_HAS_OP(ops, coll_allgather) && HCRT_BACKEND_HAS_OP(ops, coll_broadcast);
}

hcrt_status_t hcrt__backend_coll_probe(hcrt__backend_t *be)
{
    if (be->coll_usable == 0) {
        be->coll_usable = -1;
        if (be->status != HCRT_BACKEND_LOADED || be->ops == NULL)
            snprintf(be->coll_reason, sizeof(be->coll_reason), "the backend is not loaded");
        else if (!has_coll_ops(be->ops))
            snprintf(be->coll_reason, sizeof(be->coll_reason), "the plugin has no vendor collective ops");
        else if (be->ops->coll_get_unique_id(be->state, NULL) != HCRT_OK)
            snprintf(be->coll_reason, sizeof(be->coll_reason), "%s", be->ops->last_error(be->state));
        else
            be->coll_usable = 1;
        HCRT_DEBUG("coll", "%s: %s%s", be->name,
                   be->coll_usable > 0 ? "vendor collectives usable" : "no vendor collectives: ",
                   be->coll_usable > 0 ? "" : be->coll_reason);
    }
    return be->coll_usable > 0 ? HCRT_OK : HCRT_ERR_NOT_SUPPORTED;
}

hcrt_status_t hcrt_backend_vendor_coll(const hcrt_context_t *ctx, int index, const char **reason)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, index >= 0 && index < ctx->nbackends, "index", "is out of range");
    hcrt__backend_t *be = &((hcrt_context_t *)ctx)->backends[index];
    hcrt_status_t status = hcrt__backend_coll_probe(be);
    if (reason != NULL)
        *reason = status == HCRT_OK ? "" : be->coll_reason;
    if (status != HCRT_OK)
        return hcrt__error(ctx, status, "hcrt_backend_vendor_coll: %s: no vendor collectives: %s", be->name,
                           be->coll_reason);
    return HCRT_OK;
}
