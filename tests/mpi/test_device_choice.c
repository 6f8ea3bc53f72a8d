/*
 * tests/mpi/test_device_choice.c - which device each rank gets (docs/architecture.md, "Device choice"), run under mpirun.
 *
 * Modes (argv[1]):
 *   spread  every rank gets sim device local_rank % (sim device count); rank 0 gathers every rank's
 *           choice and checks the whole mapping (run with HCRT_SIM_DEVICES=2)
 *   host    every rank gets the host, cpu device 0 (run with HCRT_DEVICE=cpu or HCRT_BACKENDS=cpu)
 *   bad     hcrt_init fails with HCRT_ERR_NOT_FOUND and a message naming HCRT_DEVICE and its value
 *           (run with HCRT_DEVICE=sim:9)
 *   bind    the process pins itself to cpu 0 first; with HCRT_BIND=device init must move it to the
 *           cores near its device, with HCRT_BIND=none it must leave it on cpu 0; either way the
 *           binding hcrt reports equals the kernel's affinity mask
 */
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

typedef struct choice {
    char backend[16];
    int index;
    int local_rank;
    int local_size;
    char host[MPI_MAX_PROCESSOR_NAME]; /* Open MPI zero-pads the name to this full size */
} choice_t;

/* The calling thread's affinity mask in hwloc list syntax ("0-3,6"), independent of hwloc. */
static void affinity_list(char *buf, size_t len)
{
    cpu_set_t set;
    size_t used = 0;
    buf[0] = '\0';
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set))
            continue;
        int last = c;
        while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set))
            last++;
        int n = last > c ? snprintf(buf + used, len - used, "%s%d-%d", used ? "," : "", c, last)
                         : snprintf(buf + used, len - used, "%s%d", used ? "," : "", c);
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
        c = last;
    }
}

static choice_t my_choice(hcrt_context_t *ctx)
{
    choice_t me;
    hcrt_device_t *dev = NULL;
    hcrt_device_props_t props = {.struct_size = sizeof(props)};
    memset(&me, 0, sizeof(me));
    REQUIRE_OK(ctx, hcrt_context_device(ctx, &dev));
    REQUIRE_OK(ctx, hcrt_device_get_props(dev, &props));
    snprintf(me.backend, sizeof(me.backend), "%s", props.backend);
    me.index = props.index;
    REQUIRE_OK(ctx, hcrt_context_local_rank(ctx, &me.local_rank, &me.local_size));
    int hostlen = 0;
    MPI_Get_processor_name(me.host, &hostlen);
    /* The cores near any device are known (a device without a PCI id is near the whole machine). */
    CHECK_MSG(props.local_cpus[0] != '\0', "%s device %d has no local cpus", props.backend, props.index);
    return me;
}

/* Rank 0 receives every rank's choice. `all` has size entries on rank 0. */
static void gather(const choice_t *me, choice_t *all)
{
    MPI_Gather(me, (int)sizeof(*me), MPI_BYTE, all, (int)sizeof(*me), MPI_BYTE, 0, MPI_COMM_WORLD);
}

static int count_devices(hcrt_context_t *ctx, const char *backend)
{
    int n = 0;
    REQUIRE_OK(ctx, hcrt_backend_count(ctx, &n));
    for (int b = 0; b < n; b++) {
        hcrt_backend_info_t info = {.struct_size = sizeof(info)};
        REQUIRE_OK(ctx, hcrt_backend_get_info(ctx, b, &info));
        if (strcmp(info.name, backend) == 0)
            return info.status == HCRT_BACKEND_LOADED ? info.device_count : 0;
    }
    return 0;
}

static void check_spread(hcrt_context_t *ctx, int rank, int size)
{
    int nsim = count_devices(ctx, "sim");
    CHECK_MSG(nsim == 2, "sim has %d devices, HCRT_SIM_DEVICES=2 expected", nsim);
    if (nsim <= 0)
        return;
    choice_t me = my_choice(ctx), all[64];
    CHECK_MSG(strcmp(me.backend, "sim") == 0 && me.index == me.local_rank % nsim,
              "rank %d (local %d) got %s:%d, expected sim:%d", rank, me.local_rank, me.backend, me.index,
              me.local_rank % nsim);
    gather(&me, all);
    if (rank != 0)
        return;
    for (int r = 0; r < size; r++) {
        CHECK_MSG(strcmp(all[r].backend, "sim") == 0 && all[r].index == all[r].local_rank % nsim,
                  "rank %d (local %d on %s) got %s:%d, expected sim:%d", r, all[r].local_rank, all[r].host,
                  all[r].backend, all[r].index, all[r].local_rank % nsim);
        /* Node-local ranks are 0..local_size-1 on each host, each once: otherwise two ranks would share a
         * device while another stays idle. */
        int same_host = 0, same_local = 0;
        for (int q = 0; q < size; q++) {
            if (strcmp(all[q].host, all[r].host) != 0)
                continue;
            same_host++;
            same_local += all[q].local_rank == all[r].local_rank;
        }
        CHECK_MSG(all[r].local_size == same_host && same_local == 1 && all[r].local_rank < all[r].local_size,
                  "rank %d: local rank %d of %d, but %d ranks on %s (%d with that local rank)", r, all[r].local_rank,
                  all[r].local_size, same_host, all[r].host, same_local);
    }
    if (size >= 2) {
        /* With 2 devices and at least 2 ranks on a node, both devices are used. */
        int used0 = 0, used1 = 0;
        for (int r = 0; r < size; r++) {
            used0 |= all[r].index == 0;
            used1 |= all[r].index == 1;
        }
        CHECK_MSG(used0 && used1, "not every sim device got a rank");
    }
    if (test_failures_ == 0)
        printf("rank 0: %d ranks mapped onto sim devices by node-local rank\n", size);
}

static void check_host(hcrt_context_t *ctx, int rank, int size)
{
    choice_t me = my_choice(ctx), all[64];
    CHECK_MSG(strcmp(me.backend, "cpu") == 0 && me.index == 0, "rank %d got %s:%d, expected the host cpu:0", rank,
              me.backend, me.index);
    hcrt_device_t *host = NULL, *dev = NULL;
    CHECK_OK(ctx, hcrt_device_host(ctx, &host));
    CHECK_OK(ctx, hcrt_context_device(ctx, &dev));
    CHECK(host != NULL && host == dev);
    gather(&me, all);
    if (rank == 0)
        for (int r = 0; r < size; r++)
            CHECK_MSG(strcmp(all[r].backend, "cpu") == 0 && all[r].index == 0, "rank %d got %s:%d, expected cpu:0", r,
                      all[r].backend, all[r].index);
}

static void check_bind(hcrt_context_t *ctx)
{
    const char *bind = NULL;
    hcrt_device_t *dev = NULL;
    hcrt_device_props_t props = {.struct_size = sizeof(props)};
    hcrt_topology_info_t topo = {.struct_size = sizeof(topo)};
    char now[256];
    REQUIRE_OK(ctx, hcrt_config_get(ctx, "HCRT_BIND", &bind));
    REQUIRE_OK(ctx, hcrt_context_device(ctx, &dev));
    REQUIRE_OK(ctx, hcrt_device_get_props(dev, &props));
    REQUIRE_OK(ctx, hcrt_topology_get_info(ctx, &topo));
    affinity_list(now, sizeof(now));
    CHECK(topo.pus >= 1 && topo.cores >= 1 && topo.cores <= topo.pus && topo.numa_nodes >= 1);
    CHECK_MSG(strcmp(topo.bound_cpus, now) == 0, "hcrt reports binding '%s', the kernel says '%s'", topo.bound_cpus,
              now);
    if (strcmp(bind, "device") == 0)
        CHECK_MSG(strcmp(now, props.local_cpus) == 0, "HCRT_BIND=device: bound to '%s', the cores near %s:%d are '%s'",
                  now, props.backend, props.index, props.local_cpus);
    else
        CHECK_MSG(strcmp(now, "0") == 0, "HCRT_BIND=%s: binding changed from '0' to '%s'", bind, now);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s spread|host|bad|bind\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "bind") == 0) {
        /* Pin to cpu 0 before MPI starts its threads, so they all inherit it. */
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        if (sched_setaffinity(0, sizeof(one), &one) != 0)
            TEST_SKIP("cannot pin to cpu 0 (sched_setaffinity refused)");
    }

    hcrt_context_t *ctx = NULL;
    hcrt_status_t st = hcrt_init(NULL, &ctx);
    if (strcmp(mode, "bad") == 0) {
        /* hcrt_init leaves the MPI it started initialised on failure (finalising could wait for ranks
         * that succeeded); here every rank failed alike, so finalising below cannot hang. */
        const char *msg = hcrt_last_error(NULL);
        CHECK_MSG(st == HCRT_ERR_NOT_FOUND, "hcrt_init with a missing HCRT_DEVICE returned %s", hcrt_status_name(st));
        CHECK_MSG(strstr(msg, "HCRT_DEVICE") != NULL && strstr(msg, "sim:9") != NULL,
                  "message does not name HCRT_DEVICE and its value: '%s'", msg);
        if (st == HCRT_OK)
            hcrt_finalize(ctx);
        else
            printf("hcrt_init refused as expected: %s\n", msg);
        int mpi_up = 0;
        MPI_Initialized(&mpi_up);
        CHECK_MSG(mpi_up, "hcrt_init no longer leaves MPI initialised on failure");
        if (mpi_up)
            MPI_Finalize();
        TEST_DONE();
    }
    REQUIRE_OK(NULL, st);

    int rank = 0, size = 1;
    REQUIRE_OK(ctx, hcrt_context_rank(ctx, &rank, &size));
    if (size > 64) {
        hcrt_finalize(ctx);
        TEST_SKIP("more than 64 ranks");
    }
    if (strcmp(mode, "spread") == 0)
        check_spread(ctx, rank, size);
    else if (strcmp(mode, "host") == 0)
        check_host(ctx, rank, size);
    else if (strcmp(mode, "bind") == 0)
        check_bind(ctx);
    else
        CHECK_MSG(0, "unknown mode '%s'", mode);

    /* Every rank's verdict decides the exit status of rank 0 too, so mpirun reports any failure. */
    int failed = test_failures_ != 0, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    CHECK_OK(ctx, hcrt_finalize(ctx));
    if (any && !failed)
        fprintf(stderr, "rank %d: another rank failed\n", rank);
    test_failures_ += any && !failed;
    TEST_DONE();
}
