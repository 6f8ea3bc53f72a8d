/*
 * tools/hcrt-info/hcrt-info.c - what hcrt sees on this machine: version, backends and their devices
 * (or why a backend is unavailable), the device this rank gets, the topology, MPI, and the configuration.
 *
 * Standalone it never touches MPI, so it answers in a moment on a login node; under mpirun every rank
 * initialises and rank 0 prints the whole job's placement.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
                 "  --json   print the same as one JSON object with keys version, init_error, backends,\n"
                 "           selected, ranks, topology, mpi and config\n"
                 "  --help   print this help and exit\n"
                 "\n"
                 "Standalone it does not initialise MPI. Launched by mpirun (OMPI_COMM_WORLD_SIZE set), every rank\n"
                 "initialises MPI and rank 0 prints, including the device and binding of every rank.\n"
                 "\n"
                 "When hcrt cannot initialise because of an HCRT_* variable (a bad HCRT_DEVICE, a typo in\n"
                 "HCRT_BACKENDS, ...), hcrt-info says which and, standalone, still reports what hcrt sees\n"
                 "without it.\n"
                 "Exit status: 0 on success, 1 when hcrt cannot initialise with this environment (the report\n"
                 "is still printed when the cause is a variable), 2 for a bad command line.\n");
}

/*
 * Finds in an hcrt_init message the first HCRT_* variable that the environment sets, unsets it and
 * appends "NAME='value'" to `ignored`. False when the message names none (nothing to retry without).
 */
static bool drop_named_variable(const char *msg, char *ignored, size_t len)
{
    for (const char *p = strstr(msg, "HCRT_"); p != NULL; p = strstr(p + 1, "HCRT_")) {
        char name[128];
        size_t n = 0;
        while (n + 1 < sizeof(name) && (isupper((unsigned char)p[n]) || isdigit((unsigned char)p[n]) || p[n] == '_'))
            name[n] = p[n], n++;
        name[n] = '\0';
        const char *value = getenv(name);
        if (value == NULL)
            continue;
        size_t used = strlen(ignored);
        snprintf(ignored + used, len - used, "%s%s='%s'", used ? " " : "", name, value);
        unsetenv(name);
        return true;
    }
    return false;
}

/*
 * hcrt_init; when it fails because of a variable of the environment, records the failure in `report` and
 * tries again without that variable (and so on, a few times), so that the report can still list the
 * backends and devices and point at the variable. Standalone only: under mpirun the other ranks have
 * moved on past their own init, and a second try would not meet them. HCRT_OK when a context was made.
 */
static hcrt_status_t init_for_report(const hcrt_context_params_t *params, bool with_mpi, hcrt_context_t **ctx,
                                     info_report_t *report)
{
    hcrt_status_t first = HCRT_OK;
    for (int attempt = 0; attempt < 8; attempt++) {
        hcrt_status_t st = hcrt_init(params, ctx);
        if (st == HCRT_OK)
            break;
        if (first == HCRT_OK) {
            first = st;
            snprintf(report->init_error, sizeof(report->init_error), "%s", hcrt_last_error(NULL));
        }
        fprintf(stderr, "hcrt-info: hcrt_init failed (%s): %s\n", hcrt_status_name(st), hcrt_last_error(NULL));
        if (with_mpi) {
            fprintf(stderr, "hcrt-info: run hcrt-info without mpirun to see what hcrt finds here\n");
            return first;
        }
        if (!drop_named_variable(hcrt_last_error(NULL), report->ignored, sizeof(report->ignored)))
            return first;
    }
    if (*ctx == NULL)
        return first;
    if (first != HCRT_OK) {
        report->init_status = hcrt_status_name(first);
        fprintf(stderr, "hcrt-info: the report below is what hcrt sees without %s: fix or unset %s\n", report->ignored,
                strchr(report->ignored, ' ') ? "them" : "it");
    }
    return HCRT_OK;
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
    info_report_t failed;
    memset(&failed, 0, sizeof(failed));
    if (init_for_report(&params, with_mpi, &ctx, &failed) != HCRT_OK)
        return 1;

    int rc = 1, rank = 0;
    info_report_t report;
    hcrt_context_rank(ctx, &rank, NULL);
    if (info_collect(ctx, with_mpi, &report) == HCRT_OK) {
        report.init_status = failed.init_status;
        memcpy(report.init_error, failed.init_error, sizeof(report.init_error));
        memcpy(report.ignored, failed.ignored, sizeof(report.ignored));
        rc = 0;
        if (rank == 0)
            rc = json ? info_print_json(&report) : info_print_text(&report);
        if (rc != 0)
            fprintf(stderr, "hcrt-info: writing the report failed\n");
        else if (report.init_status != NULL)
            rc = 1;
    }
    info_free(&report);
    hcrt_finalize(ctx);
    return rc;
}
