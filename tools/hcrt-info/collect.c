/*
 * tools/hcrt-info/collect.c - gathers everything hcrt-info shows from a context and from MPI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hcrt/backend.h" /* HCRT_CAP_* bits of device props */
#include "report.h"

/* Open MPI declares its device-awareness queries in mpi-ext.h; other MPIs may not ship that header. */
#if defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif
#endif

const char *info_status_word(hcrt_backend_status_t status)
{
    switch (status) {
    case HCRT_BACKEND_LOADED:
        return "loaded";
    case HCRT_BACKEND_UNAVAILABLE:
        return "unavailable";
    case HCRT_BACKEND_BROKEN:
        return "broken";
    case HCRT_BACKEND_FILTERED:
        return "filtered";
    }
    return "unknown";
}

const char *info_caps_string(unsigned long long caps, char *buf, size_t len)
{
    static const struct {
        unsigned long long bit;
        const char *name;
    } names[] = {
        {HCRT_CAP_HOST_ADDRESSABLE, "host_addressable"},
        {HCRT_CAP_PINNED_HOST, "pinned_host"},
        {HCRT_CAP_PEER_COPY, "peer_copy"},
        {HCRT_CAP_ECC, "ecc"},
        {HCRT_CAP_VENDOR_COLL, "vendor_coll"},
        {HCRT_CAP_FAULT_INJECTION, "fault_injection"},
    };
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!(caps & names[i].bit))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", names[i].name);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

/*
 * Open MPI answers MPIX_Query_cuda_support() only after MPI_Init (before, it reports 0 whatever it was
 * built with), so without MPI only a library built without CUDA support gives a sure answer.
 */
static void query_cuda(info_aware_t *a, bool mpi_up)
{
#if defined(OMPI_HAVE_MPI_EXT_CUDA) && OMPI_HAVE_MPI_EXT_CUDA
    int built = 0;
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
    built = 1;
#endif
    if (mpi_up) {
        a->known = true;
        a->aware = MPIX_Query_cuda_support() != 0;
        snprintf(a->detail, sizeof(a->detail), "MPIX_Query_cuda_support() = %d; built with CUDA support: %s", a->aware,
                 built ? "yes" : "no");
    } else if (!built) {
        a->known = true;
        snprintf(a->detail, sizeof(a->detail), "Open MPI was built without CUDA support (MPIX_CUDA_AWARE_SUPPORT 0)");
    } else {
        snprintf(a->detail, sizeof(a->detail), "built with CUDA support; run under mpirun to ask the library");
    }
#else
    (void)mpi_up;
    a->known = true;
    snprintf(a->detail, sizeof(a->detail), "this MPI has no MPIX_Query_cuda_support()");
#endif
}

static void query_rocm(info_aware_t *a, bool mpi_up)
{
#if defined(OMPI_HAVE_MPI_EXT_ROCM) && OMPI_HAVE_MPI_EXT_ROCM
    int built = 0;
#if defined(MPIX_ROCM_AWARE_SUPPORT) && MPIX_ROCM_AWARE_SUPPORT
    built = 1;
#endif
    if (mpi_up) {
        a->known = true;
        a->aware = MPIX_Query_rocm_support() != 0;
        snprintf(a->detail, sizeof(a->detail), "MPIX_Query_rocm_support() = %d; built with ROCm support: %s", a->aware,
                 built ? "yes" : "no");
    } else if (!built) {
        a->known = true;
        snprintf(a->detail, sizeof(a->detail), "Open MPI was built without ROCm support (MPIX_ROCM_AWARE_SUPPORT 0)");
    } else {
        snprintf(a->detail, sizeof(a->detail), "built with ROCm support; run under mpirun to ask the library");
    }
#else
    (void)mpi_up;
    a->known = true;
    snprintf(a->detail, sizeof(a->detail), "this MPI has no MPIX_Query_rocm_support()");
#endif
}

static void collect_mpi(hcrt_context_t *ctx, bool with_mpi, info_mpi_t *m)
{
    int len = 0, up = 0, fin = 0;
    /* Callable before MPI_Init by the standard (MPI 3.0), so standalone runs show it too. */
    if (MPI_Get_library_version(m->library, &len) != MPI_SUCCESS)
        snprintf(m->library, sizeof(m->library), "(unknown)");
    m->library[sizeof(m->library) - 1] = '\0';
    for (size_t n = strlen(m->library); n > 0 && (m->library[n - 1] == '\n' || m->library[n - 1] == ' '); n--)
        m->library[n - 1] = '\0';
    MPI_Initialized(&up);
    MPI_Finalized(&fin);
    m->initialized = with_mpi && up && !fin;
    m->world_size = 1;
    hcrt_context_rank(ctx, NULL, &m->world_size);
    query_cuda(&m->cuda, m->initialized);
    query_rocm(&m->rocm, m->initialized);
}

static hcrt_status_t collect_backends(hcrt_context_t *ctx, info_report_t *r)
{
    hcrt_status_t st = hcrt_backend_count(ctx, &r->nbackends);
    if (st != HCRT_OK)
        return st;
    r->backends = calloc(r->nbackends ? (size_t)r->nbackends : 1, sizeof(*r->backends));
    if (r->backends == NULL)
        return HCRT_ERR_NO_MEMORY;
    for (int b = 0; b < r->nbackends; b++) {
        info_backend_t *ib = &r->backends[b];
        ib->info.struct_size = sizeof(ib->info);
        if ((st = hcrt_backend_get_info(ctx, b, &ib->info)) != HCRT_OK)
            return st;
        /* Asking loads the vendor library (NCCL, RCCL) if the plugin has not yet: its absence is shown. */
        ib->vendor_coll_reason = "";
        if (ib->info.status == HCRT_BACKEND_LOADED)
            ib->vendor_coll = hcrt_backend_vendor_coll(ctx, b, &ib->vendor_coll_reason) == HCRT_OK;
        int n = ib->info.device_count;
        ib->devices = calloc(n > 0 ? (size_t)n : 1, sizeof(*ib->devices));
        if (ib->devices == NULL)
            return HCRT_ERR_NO_MEMORY;
        for (int i = 0; i < n; i++) {
            hcrt_device_t *dev = NULL;
            ib->devices[i].struct_size = sizeof(ib->devices[i]);
            if ((st = hcrt_device_find(ctx, ib->info.name, i, &dev)) != HCRT_OK ||
                (st = hcrt_device_get_props(dev, &ib->devices[i])) != HCRT_OK)
                return st;
        }
    }
    return HCRT_OK;
}

/* Every rank's device and binding, on rank 0: under mpirun this is the placement of the whole job. */
static hcrt_status_t collect_ranks(hcrt_context_t *ctx, info_report_t *r)
{
    info_rank_t me;
    memset(&me, 0, sizeof(me));
    hcrt_context_rank(ctx, &me.rank, NULL);
    hcrt_context_local_rank(ctx, &me.local_rank, NULL);
    if (gethostname(me.host, sizeof(me.host) - 1) != 0)
        snprintf(me.host, sizeof(me.host), "?");
    snprintf(me.backend, sizeof(me.backend), "%s", r->selected.backend);
    me.index = r->selected.index;
    snprintf(me.bound_cpus, sizeof(me.bound_cpus), "%s", r->topo.bound_cpus ? r->topo.bound_cpus : "");

    r->nranks = r->mpi.initialized ? r->mpi.world_size : 1;
    r->ranks = calloc((size_t)r->nranks, sizeof(*r->ranks));
    if (r->ranks == NULL)
        return HCRT_ERR_NO_MEMORY;
    if (!r->mpi.initialized) {
        r->ranks[0] = me;
        return HCRT_OK;
    }
    if (MPI_Gather(&me, (int)sizeof(me), MPI_BYTE, r->ranks, (int)sizeof(me), MPI_BYTE, 0, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
        return HCRT_ERR_MPI;
    return HCRT_OK;
}

hcrt_status_t info_collect(hcrt_context_t *ctx, bool with_mpi, info_report_t *r)
{
    hcrt_status_t st;
    hcrt_device_t *sel = NULL;
    memset(r, 0, sizeof(*r));
    hcrt_version(&r->major, &r->minor, &r->patch);
    r->api_version = hcrt_api_version();

    if ((st = collect_backends(ctx, r)) != HCRT_OK)
        goto err;
    r->selected.struct_size = sizeof(r->selected);
    if ((st = hcrt_context_device(ctx, &sel)) != HCRT_OK || (st = hcrt_device_get_props(sel, &r->selected)) != HCRT_OK)
        goto err;
    r->topo.struct_size = sizeof(r->topo);
    if ((st = hcrt_topology_get_info(ctx, &r->topo)) != HCRT_OK)
        goto err;
    collect_mpi(ctx, with_mpi, &r->mpi);
    if ((st = collect_ranks(ctx, r)) != HCRT_OK)
        goto err;

    r->nconfig = hcrt_config_count();
    r->config = calloc(r->nconfig ? r->nconfig : 1, sizeof(*r->config));
    if (r->config == NULL) {
        st = HCRT_ERR_NO_MEMORY;
        goto err;
    }
    for (size_t i = 0; i < r->nconfig; i++) {
        r->config[i].struct_size = sizeof(r->config[i]);
        if ((st = hcrt_config_get_entry(ctx, i, &r->config[i])) != HCRT_OK)
            goto err;
    }
    return HCRT_OK;

err:
    fprintf(stderr, "hcrt-info: gathering the report failed: %s: %s\n", hcrt_status_name(st), hcrt_last_error(ctx));
    return st;
}

void info_free(info_report_t *r)
{
    for (int b = 0; r->backends && b < r->nbackends; b++)
        free(r->backends[b].devices);
    free(r->backends);
    free(r->ranks);
    free(r->config);
    memset(r, 0, sizeof(*r));
}
