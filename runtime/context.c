/*
 * runtime/context.c - hcrt_init / hcrt_finalize: configuration, MPI, plugins, devices, device choice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/fault/fault.h"
#include "runtime/internal.h"
#include "runtime/trace.h"

void hcrt_context_params_init(hcrt_context_params_t *params)
{
    if (params == NULL)
        return;
    memset(params, 0, sizeof(*params));
    params->struct_size = sizeof(*params);
    params->api_version = HCRT_API_VERSION;
}

/* Reads the caller's params, only as far as its struct_size reaches (an older caller's struct is
 * shorter; the missing fields keep their defaults). */
static hcrt_status_t read_params(const hcrt_context_params_t *in, hcrt_context_params_t *out)
{
    hcrt_context_params_init(out);
    if (in == NULL)
        return HCRT_OK;
    if (in->struct_size < offsetof(hcrt_context_params_t, flags) ||
        in->struct_size > 4096)
        return hcrt__error(NULL, HCRT_ERR_INVALID_ARG,
                           "hcrt_init: argument 'params->struct_size' is %zu; initialise params with "
                           "hcrt_context_params_init()", in->struct_size);
    memcpy(out, in, in->struct_size < sizeof(*out) ? in->struct_size : sizeof(*out));
    out->struct_size = sizeof(*out);
    uint32_t major = out->api_version >> 16, minor = out->api_version & 0xffff;
    if (major != HCRT_API_MAJOR || minor > HCRT_API_MINOR)
        return hcrt__error(NULL, HCRT_ERR_VERSION,
                           "hcrt_init: caller was compiled against hcrt API %u.%u but this library is %d.%d",
                           major, minor, HCRT_API_MAJOR, HCRT_API_MINOR);
    if (out->flags & ~HCRT_INIT_NO_MPI)
        return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "hcrt_init: argument 'params->flags' has unknown bits 0x%x",
                           out->flags & ~HCRT_INIT_NO_MPI);
    return HCRT_OK;
}

/* Initialises MPI (unless the application did) and learns this rank's place in the world and node. */
static hcrt_status_t init_mpi(hcrt_context_t *ctx)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized)
        return hcrt__error(NULL, HCRT_ERR_STATE, "hcrt_init: MPI was already finalized in this process; use "
                           "HCRT_INIT_NO_MPI or keep MPI alive");
    if (!initialized) {
        int provided = 0;
        /* SERIALIZED: hcrt calls MPI from the application's threads one at a time; its background
         * threads (checkpoint persistence, backend streams) never call MPI. */
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
            return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: MPI_Init_thread failed");
        ctx->mpi_owned = true;
        if (provided < MPI_THREAD_SERIALIZED)
            return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: MPI provides thread level %d, below "
                               "MPI_THREAD_SERIALIZED (%d) which hcrt needs (the application's threads may "
                               "call it, one at a time)", provided, MPI_THREAD_SERIALIZED);
    } else {
        int provided = 0;
        MPI_Query_thread(&provided);
        if (provided < MPI_THREAD_SERIALIZED)
            HCRT_WARN("init", "the application initialised MPI with thread level %d, below "
                      "MPI_THREAD_SERIALIZED: call hcrt from the thread that initialised MPI only", provided);
    }
    if (MPI_Comm_dup(MPI_COMM_WORLD, &ctx->world) != MPI_SUCCESS)
        return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: MPI_Comm_dup(MPI_COMM_WORLD) failed");
    /* Errors come back as codes so hcrt can say what failed, instead of Open MPI aborting silently. */
    if (MPI_Comm_set_errhandler(ctx->world, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: MPI_Comm_set_errhandler(MPI_ERRORS_RETURN) failed");
    MPI_Comm_rank(ctx->world, &ctx->rank);
    MPI_Comm_size(ctx->world, &ctx->size);
    if (MPI_Comm_split_type(ctx->world, MPI_COMM_TYPE_SHARED, ctx->rank, MPI_INFO_NULL, &ctx->node) !=
        MPI_SUCCESS)
        return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: MPI_Comm_split_type(SHARED) failed");
    if (MPI_Comm_set_errhandler(ctx->node, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: MPI_Comm_set_errhandler(MPI_ERRORS_RETURN) failed");
    MPI_Comm_rank(ctx->node, &ctx->local_rank);
    MPI_Comm_size(ctx->node, &ctx->local_size);
    return HCRT_OK;
}

/* Lists every device of every loaded backend in ctx->devices, in backend order. */
static hcrt_status_t collect_devices(hcrt_context_t *ctx)
{
    int total = 0;
    for (int b = 0; b < ctx->nbackends; b++)
        if (ctx->backends[b].status == HCRT_BACKEND_LOADED)
            total += ctx->backends[b].ndev;
    ctx->devices = calloc(total ? (size_t)total : 1, sizeof(*ctx->devices));
    if (!ctx->devices)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory listing devices");
    int g = 0;
    for (int b = 0; b < ctx->nbackends; b++) {
        hcrt__backend_t *be = &ctx->backends[b];
        if (be->status != HCRT_BACKEND_LOADED)
            continue;
        be->first_device = g;
        for (int i = 0; i < be->ndev; i++, g++) {
            hcrt_device_t *dev = &ctx->devices[g];
            dev->ctx = ctx;
            dev->be = be;
            dev->index = i;
            dev->global_index = g;
            dev->bprops.struct_size = sizeof(dev->bprops);
            dev->numa_node = -1;
            hcrt_status_t st = be->ops->device_props(be->state, i, &dev->bprops);
            if (st != HCRT_OK)
                return hcrt__error(NULL, st, "hcrt_init: backend %s: device_props(%d) failed: %s", be->name, i,
                                   be->ops->last_error(be->state));
            dev->bprops.name[sizeof(dev->bprops.name) - 1] = '\0';
            dev->bprops.vendor[sizeof(dev->bprops.vendor) - 1] = '\0';
            dev->bprops.pci_bus_id[sizeof(dev->bprops.pci_bus_id) - 1] = '\0';
            dev->numa_node = dev->bprops.numa_node;
            hcrt__topology_locate_device(ctx, dev);
        }
    }
    ctx->ndevices = g;
    return HCRT_OK;
}

hcrt_status_t hcrt_init(const hcrt_context_params_t *params, hcrt_context_t **out)
{
    hcrt_status_t st;
    hcrt_context_params_t p;
    if (out == NULL)
        return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "hcrt_init: argument 'ctx' is NULL");
    HCRT_CHECK(read_params(params, &p));

    hcrt_context_t *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory");
    ctx->api_version = p.api_version;
    ctx->flags = p.flags;
    ctx->world = MPI_COMM_NULL;
    ctx->node = MPI_COMM_NULL;
    ctx->size = 1;
    ctx->local_size = 1;
    gethostname(ctx->hostname, sizeof(ctx->hostname) - 1);

    HCRT_CHECK_GOTO(hcrt__alloc_table_init(ctx), st, err_ctx);
    HCRT_CHECK_GOTO(hcrt__config_load(ctx), st, err_ctx);
    hcrt__log_configure(hcrt__config_str(ctx, "HCRT_LOG_LEVEL"), hcrt__config_str(ctx, "HCRT_LOG_SUBSYS"));
    ctx->fail_return = strcmp(hcrt__config_str(ctx, "HCRT_ON_FAILURE"), "return") == 0;
    HCRT_CHECK_GOTO(hcrt__fault_init(ctx), st, err_ctx);

    if (!(p.flags & HCRT_INIT_NO_MPI))
        HCRT_CHECK_GOTO(init_mpi(ctx), st, err_mpi);
    hcrt__log_set_rank(ctx->rank);

    HCRT_CHECK_GOTO(hcrt__topology_init(ctx), st, err_mpi);
    HCRT_CHECK_GOTO(hcrt__loader_load(ctx, p.backends ? p.backends : hcrt__config_str(ctx, "HCRT_BACKENDS")), st,
                    err_loader);
    HCRT_CHECK_GOTO(collect_devices(ctx), st, err_loader);
    HCRT_CHECK_GOTO(hcrt__select_device(ctx), st, err_loader);
    HCRT_CHECK_GOTO(hcrt__trace_init(ctx), st, err_loader);

    HCRT_DEBUG("init", "context ready: rank %d/%d (local %d/%d), %d backends, %d devices", ctx->rank, ctx->size,
               ctx->local_rank, ctx->local_size, ctx->nbackends, ctx->ndevices);
    *out = ctx;
    return HCRT_OK;

err_loader:
    hcrt__loader_unload(ctx);
    free(ctx->devices);
    hcrt__topology_fini(ctx);
err_mpi:
    if (ctx->node != MPI_COMM_NULL)
        MPI_Comm_free(&ctx->node);
    if (ctx->world != MPI_COMM_NULL)
        MPI_Comm_free(&ctx->world);
    /* MPI stays initialised on failure, on purpose: MPI_Finalize waits for the other ranks, which may be
     * past their own hcrt_init and waiting for this one, so finalising here would hang the job. A rank that
     * gives up and exits without finalising makes mpirun end the whole job with a message instead. */
err_ctx:
    HCRT_ERROR("init", "%s", hcrt_last_error(NULL));
    hcrt__fault_fini(ctx);
    hcrt__config_free(ctx);
    hcrt__alloc_table_fini(ctx);
    free(ctx);
    return st;
}

hcrt_status_t hcrt_finalize(hcrt_context_t *ctx)
{
    if (ctx == NULL)
        return HCRT_OK;
    hcrt__trace_fini(ctx); /* collective: merges every rank's part on rank 0 */
    hcrt__loader_unload(ctx);
    free(ctx->devices);
    hcrt__topology_fini(ctx);
    if (ctx->node != MPI_COMM_NULL)
        MPI_Comm_free(&ctx->node);
    if (ctx->world != MPI_COMM_NULL)
        MPI_Comm_free(&ctx->world);
    if (ctx->mpi_owned)
        MPI_Finalize();
    hcrt__fault_fini(ctx);
    hcrt__config_free(ctx);
    hcrt__alloc_table_fini(ctx);
    free(ctx);
    return HCRT_OK;
}

hcrt_status_t hcrt_context_rank(const hcrt_context_t *ctx, int *rank, int *size)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    if (rank)
        *rank = ctx->rank;
    if (size)
        *size = ctx->size;
    return HCRT_OK;
}

hcrt_status_t hcrt_context_local_rank(const hcrt_context_t *ctx, int *local_rank, int *local_size)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    if (local_rank)
        *local_rank = ctx->local_rank;
    if (local_size)
        *local_size = ctx->local_size;
    return HCRT_OK;
}
