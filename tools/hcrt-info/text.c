/*
 * tools/hcrt-info/text.c - the report for people: one section per subject, aligned columns.
 */
#include <stdio.h>
#include <string.h>

#include "report.h"

/* "80.0 GiB", "512.0 MiB", "4096 B". */
static const char *human_bytes(unsigned long long bytes, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", bytes);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

static void print_device(const hcrt_device_props_t *d)
{
    char total[32], freeb[32], caps[160];
    printf("      device %d (global %d): %s, vendor %s\n", d->index, d->global_index, d->name, d->vendor);
    printf("        memory %s total, %s free; speed %.2f; pci %s; NUMA node %d; local cpus %s\n",
           human_bytes(d->total_memory, total, sizeof(total)), human_bytes(d->free_memory, freeb, sizeof(freeb)),
           d->speed, d->pci_bus_id[0] ? d->pci_bus_id : "none", d->numa_node,
           d->local_cpus[0] ? d->local_cpus : "unknown");
    printf("        caps %s\n", info_caps_string(d->caps, caps, sizeof(caps))[0] ? caps : "none");
}

static void print_aware(const char *what, const info_aware_t *a)
{
    printf("  %s-aware: %s (%s)\n", what, !a->known ? "unknown" : a->aware ? "yes" : "no", a->detail);
}

int info_print_text(const info_report_t *r)
{
    printf("hcrt %d.%d.%d (API %u.%u)\n\n", r->major, r->minor, r->patch, r->api_version >> 16,
           r->api_version & 0xffffu);
    if (r->init_status != NULL)
        printf("Configuration error: hcrt_init fails with this environment (%s): %s\n"
               "  This report is what hcrt sees without %s.\n\n",
               r->init_status, r->init_error, r->ignored);

    printf("Backends:\n");
    for (int b = 0; b < r->nbackends; b++) {
        const info_backend_t *ib = &r->backends[b];
        printf("  %-8s %-12s %s\n", ib->info.name, info_status_word(ib->info.status), ib->info.path);
        if (ib->info.reason && ib->info.reason[0])
            printf("      reason: %s\n", ib->info.reason);
        if (ib->info.status == HCRT_BACKEND_LOADED && ib->info.compute)
            printf("      compute: yes (gemm f32/f16/bf16, bias add, ReLU, softmax cross-entropy, column sums, "
                   "SGD/AdamW, casts)\n");
        else if (ib->info.status == HCRT_BACKEND_LOADED)
            printf("      compute: no (%s)\n", ib->info.compute_detail);
        if (ib->info.status == HCRT_BACKEND_LOADED && strcmp(ib->info.name, "cpu") != 0) {
            if (ib->vendor_coll)
                printf("      vendor collectives: yes\n");
            else
                printf("      no vendor collectives: %s\n", ib->vendor_coll_reason);
        }
        for (int i = 0; i < ib->info.device_count; i++)
            print_device(&ib->devices[i]);
    }

    printf("\nSelected device: %s:%d (%s)\n", r->selected.backend, r->selected.index, r->selected.name);
    if (r->nranks > 1) {
        printf("Ranks:\n");
        for (int i = 0; i < r->nranks; i++)
            printf("  rank %d (local %d) on %s: %s:%d, bound to cpus %s\n", r->ranks[i].rank, r->ranks[i].local_rank,
                   r->ranks[i].host, r->ranks[i].backend, r->ranks[i].index,
                   r->ranks[i].bound_cpus[0] ? r->ranks[i].bound_cpus : "unknown");
    }

    printf("\nTopology: %d package(s), %d NUMA node(s), %d core(s), %d PU(s); this process is bound to cpus %s\n",
           r->topo.packages, r->topo.numa_nodes, r->topo.cores, r->topo.pus,
           r->topo.bound_cpus && r->topo.bound_cpus[0] ? r->topo.bound_cpus : "unknown");
    for (int b = 0; b < r->nbackends; b++)
        for (int i = 0; i < r->backends[b].info.device_count; i++) {
            const hcrt_device_props_t *d = &r->backends[b].devices[i];
            printf("  near %s:%d: cpus %s, NUMA node %d\n", d->backend, d->index,
                   d->local_cpus[0] ? d->local_cpus : "unknown", d->numa_node);
        }

    printf("\nMPI: %s\n", r->mpi.library);
    printf("  %s\n", r->mpi.initialized ? "initialised by hcrt-info (launched by mpirun)"
                                        : "not initialised (standalone; run under mpirun to query the library)");
    if (r->mpi.initialized)
        printf("  world size: %d\n", r->mpi.world_size);
    print_aware("CUDA", &r->mpi.cuda);
    print_aware("ROCm", &r->mpi.rocm);

    printf("\nConfiguration:\n");
    for (size_t i = 0; i < r->nconfig; i++) {
        const hcrt_config_entry_t *e = &r->config[i];
        printf("  %s=%s%s\n", e->name, e->value, e->is_set ? "  (set)" : "");
        printf("      default '%s', type %s: %s\n", e->def, e->type, e->help);
    }
    fflush(stdout);
    return ferror(stdout) ? 1 : 0;
}
