/*
 * tools/hcrt-info/hcrt-info.c - what hcrt sees on this machine: version, backends and their devices
 * (or why a backend is unavailable), the device this rank gets, the topology, MPI, and the configuration.
 *
 * Standalone it never touches MPI, so it answers in a moment on a login node; under mpirun every rank
 * initialises and rank 0 prints the whole job's placement.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "report.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: hcrt-info [--json] [--help]\n"
                 "       mpirun -np N hcrt-info [--json]\n"
                 "\n"
                 "Shows the hcrt version, every backend plugin (loaded with its devices, or unavailable and why),\n"
                 "the device this rank gets, the machine topology and which cores are near which device, the MPI\n"
                 "library and whether it is CUDA/ROCm-aware, and every HCRT_* configuration variable with its\n"
                 "default, current value and help.\n"
                 "\n"
                 "  --json   print the same as one JSON object with keys version, backends, selected, ranks,\n"
                 "           topology, mpi and config\n"
                 "  --help   print this help and exit\n"
                 "\n"
                 "Standalone it does not initialise MPI. Launched by mpirun (OMPI_COMM_WORLD_SIZE set), every rank\n"
                 "initialises MPI and rank 0 prints, including the device and binding of every rank.\n"
                 "Exit status: 0 on success, 1 when hcrt cannot initialise, 2 for a bad command line.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int c;
    opterr = 0; /* our own message, followed by the usage */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "hcrt-info: unknown option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hcrt-info: unexpected argument '%s'\n\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* A launcher's environment says whether there are other ranks to meet; without one, MPI_Init would
     * start a singleton runtime for nothing. */
    bool with_mpi = getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
    hcrt_context_params_t params;
    hcrt_context_params_init(&params);
    if (!with_mpi)
        params.flags |= HCRT_INIT_NO_MPI;

    hcrt_context_t *ctx = NULL;
    hcrt_status_t st = hcrt_init(&params, &ctx);
    if (st != HCRT_OK) {
        fprintf(stderr, "hcrt-info: hcrt_init failed (%s): %s\n", hcrt_status_name(st), hcrt_last_error(NULL));
        return 1;
    }

    int rc = 1, rank = 0;
    info_report_t report;
    hcrt_context_rank(ctx, &rank, NULL);
    if (info_collect(ctx, with_mpi, &report) == HCRT_OK) {
        rc = 0;
        if (rank == 0)
            rc = json ? info_print_json(&report) : info_print_text(&report);
        if (rc != 0)
            fprintf(stderr, "hcrt-info: writing the report failed\n");
    }
    info_free(&report);
    hcrt_finalize(ctx);
    return rc;
}
