/*
 * runtime/topology.c - the machine as hwloc sees it: where each device sits and where the process runs.
 *
 * The topology is loaded once per context. PCI devices are kept (hwloc's "important" I/O filter: GPUs,
 * NICs, storage, without every bridge) because a device is located by its PCI bus id: the device's first
 * non-I/O ancestor (a package, a NUMA node's group, or the machine) gives the cores and the NUMA node
 * nearest to it. A device without a bus id (the host, sim devices) is near the whole machine.
 */
#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

struct hcrt__topology {
    hwloc_topology_t topo;
};

/* Writes `set` in hwloc list syntax ("0-3,8"); "" if it does not fit, rather than a truncated list that
 * would name the wrong cores. */
static void cpuset_to_list(hwloc_const_bitmap_t set, char *buf, size_t len)
{
    int n = hwloc_bitmap_list_snprintf(buf, len, set);
    if (n < 0 || (size_t)n >= len)
        buf[0] = '\0';
}

/* Records the process's current binding in ctx->bound_cpus. */
static void refresh_binding(hcrt_context_t *ctx)
{
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    ctx->bound_cpus[0] = '\0';
    if (set == NULL)
        return;
    if (hwloc_get_cpubind(ctx->topo->topo, set, HWLOC_CPUBIND_PROCESS) == 0)
        cpuset_to_list(set, ctx->bound_cpus, sizeof(ctx->bound_cpus));
    else
        HCRT_DEBUG("topo", "hwloc_get_cpubind failed: %s", strerror(errno));
    hwloc_bitmap_free(set);
}

hcrt_status_t hcrt__topology_init(hcrt_context_t *ctx)
{
    hcrt_status_t st;
    struct hcrt__topology *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory for the topology");
    if (hwloc_topology_init(&t->topo) != 0) {
        st = hcrt__error(NULL, HCRT_ERR_INTERNAL, "hcrt_init: hwloc_topology_init failed: %s", strerror(errno));
        goto err_alloc;
    }
    /* PCI and OS devices are needed to find accelerators by bus id; "important" keeps them without the
     * full bridge tree, which is what makes whole-I/O discovery slow on large machines. Instruction
     * caches are never looked at. */
    hwloc_topology_set_io_types_filter(t->topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    hwloc_topology_set_icache_types_filter(t->topo, HWLOC_TYPE_FILTER_KEEP_NONE);
#if HWLOC_API_VERSION >= 0x00020100
    /* hwloc's vendor components (cuda, nvml, opencl, rsmi, levelzero, gl) would start the vendors'
     * runtimes inside this process before our plugins do, and that can take seconds on a GPU node; we
     * locate devices by PCI bus id and need none of them. An absent component is not an error. */
    static const char *const skip[] = {"cuda", "nvml", "opencl", "rsmi", "levelzero", "gl"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        (void)hwloc_topology_set_components(t->topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, skip[i]);
#if defined(__linux__)
    /* On Linux hwloc reads PCI devices and their locality from sysfs by itself. Its libpciaccess
     * component adds only vendor names, at the cost of parsing pci.ids on every init (and memory that
     * libpciaccess never frees, which a leak-checking build of every test would report). */
    (void)hwloc_topology_set_components(t->topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci");
#endif
#endif
    if (hwloc_topology_load(t->topo) != 0) {
        st = hcrt__error(NULL, HCRT_ERR_INTERNAL, "hcrt_init: hwloc_topology_load failed: %s", strerror(errno));
        goto err_init;
    }
    ctx->topo = t;
    refresh_binding(ctx);
    HCRT_DEBUG("topo", "topology loaded: %d packages, %d NUMA nodes, %d cores, %d PUs; bound to %s",
               hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_PACKAGE),
               hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_NUMANODE), hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_CORE),
               hwloc_get_nbobjs_by_type(t->topo, HWLOC_OBJ_PU), ctx->bound_cpus[0] ? ctx->bound_cpus : "(unknown)");
    return HCRT_OK;

err_init:
    hwloc_topology_destroy(t->topo);
err_alloc:
    free(t);
    return st;
}

void hcrt__topology_fini(hcrt_context_t *ctx)
{
    if (ctx == NULL || ctx->topo == NULL)
        return;
    hwloc_topology_destroy(ctx->topo->topo);
    free(ctx->topo);
    ctx->topo = NULL;
}

/*
 * Fills dev->local_cpus and dev->numa_node. The NUMA node is hwloc's only when the device's locality is a
 * single node; a device hanging off a host bridge shared by several nodes keeps what its backend
 * reported (or -1), because naming one of them would be a guess.
 */
void hcrt__topology_locate_device(hcrt_context_t *ctx, hcrt_device_t *dev)
{
    dev->local_cpus[0] = '\0';
    dev->numa_node = dev->bprops.numa_node;
    if (ctx->topo == NULL)
        return;
    hwloc_topology_t topo = ctx->topo->topo;
    hwloc_const_cpuset_t cpus = hwloc_topology_get_topology_cpuset(topo);

    const char *busid = dev->bprops.pci_bus_id;
    if (busid[0] != '\0') {
        hwloc_obj_t pci = hwloc_get_pcidev_by_busidstring(topo, busid);
        hwloc_obj_t near = pci ? hwloc_get_non_io_ancestor_obj(topo, pci) : NULL;
        if (near != NULL && near->cpuset != NULL) {
            cpus = near->cpuset;
            if (near->nodeset != NULL && hwloc_bitmap_weight(near->nodeset) == 1)
                dev->numa_node = hwloc_bitmap_first(near->nodeset);
        } else {
            HCRT_DEBUG("topo",
                       "%s device %d: PCI bus id %s is not in the hwloc topology; treating it as "
                       "near the whole machine",
                       dev->be->name, dev->index, busid);
        }
    }
    cpuset_to_list(cpus, dev->local_cpus, sizeof(dev->local_cpus));
    HCRT_DEBUG("topo", "%s device %d (pci %s): local cpus %s, NUMA node %d", dev->be->name, dev->index,
               busid[0] ? busid : "none", dev->local_cpus, dev->numa_node);
}

hcrt_status_t hcrt__topology_bind(hcrt_context_t *ctx, const hcrt_device_t *dev)
{
    hcrt_status_t st = HCRT_OK;
    if (ctx->topo == NULL)
        return hcrt__error(ctx, HCRT_ERR_STATE, "bind: no topology loaded");
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    if (set == NULL)
        return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "bind: out of memory");
    if (dev->local_cpus[0] == '\0' || hwloc_bitmap_list_sscanf(set, dev->local_cpus) != 0 || hwloc_bitmap_iszero(set)) {
        st = hcrt__error(ctx, HCRT_ERR_NOT_FOUND,
                         "HCRT_BIND=device: rank %d on %s: the cores near %s device %d "
                         "are unknown",
                         ctx->rank, ctx->hostname, dev->be->name, dev->index);
        goto out;
    }
    if (hwloc_set_cpubind(ctx->topo->topo, set, HWLOC_CPUBIND_PROCESS) != 0) {
        st = hcrt__error(ctx, HCRT_ERR_INTERNAL,
                         "HCRT_BIND=device: rank %d on %s: binding to cpus %s near %s "
                         "device %d failed: %s",
                         ctx->rank, ctx->hostname, dev->local_cpus, dev->be->name, dev->index, strerror(errno));
        goto out;
    }
    refresh_binding(ctx);
    HCRT_INFO("topo", "bound to cpus %s near %s device %d", ctx->bound_cpus, dev->be->name, dev->index);
out:
    hwloc_bitmap_free(set);
    return st;
}

hcrt_status_t hcrt_topology_get_info(const hcrt_context_t *ctx, hcrt_topology_info_t *info)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, info != NULL, "info", "is NULL");
    HCRT_CHECK_ARG(ctx, info->struct_size >= offsetof(hcrt_topology_info_t, pus) + sizeof(int), "info->struct_size",
                   "is too small (call with struct_size = sizeof(hcrt_topology_info_t))");
    if (ctx->topo == NULL)
        return hcrt__error(ctx, HCRT_ERR_STATE, "hcrt_topology_get_info: the context has no topology");
    hwloc_topology_t topo = ctx->topo->topo;
    hcrt_topology_info_t out = {.struct_size = info->struct_size};
    out.packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    out.numa_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    out.cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    out.pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    out.bound_cpus = ctx->bound_cpus;
    /* An older caller's struct is shorter: write only what it has room for. */
    memcpy(info, &out, info->struct_size < sizeof(out) ? info->struct_size : sizeof(out));
    return HCRT_OK;
}
