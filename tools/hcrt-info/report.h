/*
 * tools/hcrt-info/report.h - what hcrt-info reports, gathered once and printed as text or JSON.
 *
 * Collecting into one model first keeps the two output forms from drifting apart: both print exactly
 * the fields below.
 */
#ifndef HCRT_INFO_REPORT_H
#define HCRT_INFO_REPORT_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

#include "hcrt/hcrt.h"

typedef struct info_backend {
    hcrt_backend_info_t info;
    hcrt_device_props_t *devices; /* info.device_count entries */
    bool vendor_coll;             /* a loaded backend's vendor collective library can be used */
    const char *vendor_coll_reason; /* why not ("" when it can) */
} info_backend_t;

/* Where one rank runs (gathered to rank 0 under MPI). */
typedef struct info_rank {
    int rank, local_rank;
    char host[64];
    char backend[32];
    int index;
    char bound_cpus[192];
} info_rank_t;

/* Whether MPI can take device buffers of one vendor. */
typedef struct info_aware {
    bool known; /* false when it could not be asked (MPI not initialised, no extension) */
    bool aware;
    char detail[160]; /* how we know */
} info_aware_t;

typedef struct info_mpi {
    char library[MPI_MAX_LIBRARY_VERSION_STRING];
    bool initialized; /* hcrt-info runs under a launcher and MPI was initialised */
    int world_size;
    info_aware_t cuda, rocm;
} info_mpi_t;

typedef struct info_report {
    int major, minor, patch;
    unsigned api_version;

    int nbackends;
    info_backend_t *backends;

    hcrt_device_props_t selected;
    int nranks;
    info_rank_t *ranks; /* nranks entries on rank 0 */

    hcrt_topology_info_t topo;
    info_mpi_t mpi;

    size_t nconfig;
    hcrt_config_entry_t *config;

    /* When hcrt_init failed with this environment: its status and message, and the variables the report
     * was made without ("HCRT_DEVICE='sim:9'", space-separated). init_status NULL: init succeeded. */
    const char *init_status;
    char init_error[1024];
    char ignored[512];
} info_report_t;

/* Fills `r` from the context; on failure prints why to stderr and returns the status. */
hcrt_status_t info_collect(hcrt_context_t *ctx, bool with_mpi, info_report_t *r);
void info_free(info_report_t *r);

/* "loaded", "unavailable", "broken", "filtered". */
const char *info_status_word(hcrt_backend_status_t status);

/* Comma-separated names of the HCRT_CAP_* bits in caps ("host_addressable,pinned_host"), into buf. */
const char *info_caps_string(unsigned long long caps, char *buf, size_t len);

/* Prints the report to stdout, as text or as one JSON object. Returns 0, or 1 when writing failed. */
int info_print_text(const info_report_t *r);
int info_print_json(const info_report_t *r);

#endif /* HCRT_INFO_REPORT_H */
