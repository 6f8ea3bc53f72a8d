/*
 * tests/mpi/test_mem_checks.c - pointers checked against the allocations hcrt made, under mpirun.
 *
 * Every rank makes the same wrong calls, so each returns HCRT_ERR_INVALID_ARG locally before any
 * communication and nobody waits: a sim pointer passed as host memory (device NULL: this used to kill
 * both ranks with SIGSEGV), a count beyond a cpu allocation (this used to return OK writing past its
 * end), a buffer of one device passed with another, through every collective, send/recv, the memory
 * calls and checkpoint registration. The messages name the argument and the owning device or the
 * allocation's size. Afterwards correct calls on the same communicator still give the right answers,
 * and NULL means host memory in hcrt_memcpy and hcrt_memset as it does in the collectives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static hcrt_context_t *ctx;

/* Expects HCRT_ERR_INVALID_ARG with every given fragment in the message. */
#define CHECK_REFUSED(call, ...)                                                                                       \
    do {                                                                                                               \
        hcrt_status_t st_ = (call);                                                                                    \
        const char *frags_[] = {__VA_ARGS__};                                                                          \
        CHECK_MSG(st_ == HCRT_ERR_INVALID_ARG, "%s -> %s: %s", #call, hcrt_status_name(st_), hcrt_last_error(ctx));    \
        for (size_t i_ = 0; st_ == HCRT_ERR_INVALID_ARG && i_ < sizeof(frags_) / sizeof(*frags_); i_++)                \
            CHECK_MSG(strstr(hcrt_last_error(ctx), frags_[i_]) != NULL, "%s: '%s' not in: %s", #call, frags_[i_],      \
                      hcrt_last_error(ctx));                                                                           \
    } while (0)

int main(void)
{
    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    int rank = 0, size = 1;
    hcrt_context_rank(ctx, &rank, &size);
    hcrt_device_t *host = NULL, *sim = NULL, *sim1 = NULL;
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    if (hcrt_device_find(ctx, "sim", 0, &sim) != HCRT_OK || hcrt_device_find(ctx, "sim", 1, &sim1) != HCRT_OK)
        TEST_SKIP("needs two sim devices (HCRT_SIM_DEVICES=2 and the sim plugin)");
    hcrt_comm_t *comm = NULL;
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));

    enum { N = 1024, SMALL = 16 };
    float *sbuf = NULL, *cbuf = NULL, *pinned = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(sim, N * sizeof(float), (void **)&sbuf));
    REQUIRE_OK(ctx, hcrt_mem_alloc(host, SMALL * sizeof(float), (void **)&cbuf));
    REQUIRE_OK(ctx, hcrt_mem_alloc_host(sim, N * sizeof(float), (void **)&pinned));
    float *plain = calloc((size_t)N * size, sizeof(float));
    REQUIRE_OK(ctx, plain ? HCRT_OK : HCRT_ERR_NO_MEMORY);

    /* A sim pointer passed as host memory. */
    CHECK_REFUSED(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, sbuf, N, HCRT_F32, HCRT_OP_SUM, NULL), "'recv'",
                  "sim device 0", "NULL (host memory)");
    CHECK_REFUSED(hcrt_comm_allreduce(comm, sbuf, plain, N, HCRT_F32, HCRT_OP_SUM, NULL), "'send'", "sim device 0");
    CHECK_REFUSED(hcrt_comm_broadcast(comm, sbuf, N, HCRT_F32, 0, NULL), "sim device 0");
    CHECK_REFUSED(hcrt_comm_allgather(comm, sbuf, plain, 1, HCRT_F32, NULL), "'send'", "sim device 0");
    CHECK_REFUSED(hcrt_comm_send(comm, sbuf, 4, HCRT_F32, (rank + 1) % size, 0, NULL), "'buf'", "sim device 0");
    CHECK_REFUSED(hcrt_comm_recv(comm, sbuf, 4, HCRT_F32, (rank + 1) % size, 0, NULL), "'buf'", "sim device 0");
    /* Memory of sim device 0 passed as memory of sim device 1, and pinned host memory as device memory. */
    CHECK_REFUSED(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, sbuf, N, HCRT_F32, HCRT_OP_SUM, sim1), "sim device 0",
                  "sim device 1");
    CHECK_REFUSED(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, pinned, N, HCRT_F32, HCRT_OP_SUM, sim), "host memory",
                  "hcrt_mem_alloc_host");

    /* A count beyond a 16-float allocation of the cpu device. */
    CHECK_REFUSED(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, cbuf, N, HCRT_F32, HCRT_OP_SUM, NULL), "'recv'",
                  "4096 bytes", "which has 64 bytes");
    CHECK_REFUSED(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, cbuf, N, HCRT_F32, HCRT_OP_SUM, host), "64 bytes");
    CHECK_REFUSED(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, cbuf + 8, 9, HCRT_F32, HCRT_OP_SUM, NULL), "from offset 32",
                  "64 bytes");
    CHECK_REFUSED(hcrt_comm_allgather(comm, cbuf, cbuf, SMALL, HCRT_F32, NULL), "'recv'", "64 bytes");
    CHECK_REFUSED(hcrt_comm_reduce_scatter(comm, plain, cbuf, SMALL + 1, HCRT_F32, HCRT_OP_SUM, NULL), "'recv'");
    CHECK_REFUSED(hcrt_comm_alltoall(comm, plain, cbuf, SMALL, HCRT_F32, NULL), "'recv'", "64 bytes");
    if (rank == 0)
        CHECK_REFUSED(hcrt_comm_gather(comm, plain, cbuf, SMALL, HCRT_F32, 0, NULL), "'recv'", "64 bytes");
    if (rank == 0)
        CHECK_REFUSED(hcrt_comm_scatter(comm, cbuf, plain, SMALL, HCRT_F32, 0, NULL), "'send'", "64 bytes");
    hcrt_request_t *req = NULL;
    CHECK_REFUSED(hcrt_comm_iallreduce(comm, HCRT_IN_PLACE, cbuf, N, HCRT_F32, HCRT_OP_SUM, NULL, &req), "64 bytes");
    CHECK(req == NULL);

    /* The memory calls apply the same checks; NULL is host memory there too. */
    CHECK_REFUSED(hcrt_memcpy(NULL, plain, sim, cbuf, 16), "'src'", "cpu device 0", "sim device 0");
    CHECK_REFUSED(hcrt_memcpy(host, cbuf, sim, sbuf, N * sizeof(float)), "'dst'", "64 bytes");
    CHECK_REFUSED(hcrt_memcpy(NULL, plain, host, sbuf, 16), "'src'", "sim device 0");
    CHECK_REFUSED(hcrt_memset(host, cbuf, 0, 65), "'ptr'", "64 bytes");
    CHECK_REFUSED(hcrt_reduce(sim1, sbuf, sbuf, 4, HCRT_F32, HCRT_OP_SUM, NULL), "'dst'", "sim device 0");
    CHECK_REFUSED(hcrt_mem_free(sim1, sbuf), "sim device 0", "sim device 1");
    CHECK_REFUSED(hcrt_mem_free(sim, sbuf + 4), "16 bytes into");
    CHECK_REFUSED(hcrt_mem_free(sim, pinned), "hcrt_mem_alloc_host");

    float v[SMALL], back[SMALL];
    for (int i = 0; i < SMALL; i++)
        v[i] = (float)(i + 1);
    CHECK_OK(ctx, hcrt_memcpy(NULL, back, NULL, v, sizeof(v))); /* host to host without a device at hand */
    CHECK(memcmp(back, v, sizeof(v)) == 0);
    CHECK_OK(ctx, hcrt_memcpy(sim, sbuf, NULL, v, sizeof(v)));
    memset(back, 0, sizeof(back));
    CHECK_OK(ctx, hcrt_memcpy(NULL, back, sim, sbuf, sizeof(v)));
    CHECK(memcmp(back, v, sizeof(v)) == 0);
    CHECK_OK(ctx, hcrt_memset(NULL, back, 0, sizeof(back)));
    CHECK(back[0] == 0.0f && back[SMALL - 1] == 0.0f);

    /* Checkpoint registration: NULL is host memory; a sim pointer registered as host memory is refused. */
    char dir[] = "/tmp/hcrt-memchk-XXXXXX";
    if (rank == 0 && mkdtemp(dir) == NULL)
        CHECK(!"mkdtemp");
    CHECK_OK(ctx, hcrt_comm_broadcast(comm, dir, sizeof(dir), HCRT_U8, 0, NULL));
    hcrt_ckpt_params_t cp;
    hcrt_ckpt_params_init(&cp);
    cp.dir = dir;
    cp.local_dir = "";
    cp.partner = 0;
    hcrt_ckpt_t *ck = NULL;
    REQUIRE_OK(ctx, hcrt_ckpt_open(ctx, NULL, &cp, &ck));
    uint64_t shape[1] = {SMALL};
    CHECK_REFUSED(hcrt_ckpt_register(ck, "s", (hcrt_buffer_t){NULL, sbuf, SMALL, HCRT_F32}, 1, shape, NULL), "'buf'",
                  "sim device 0");
    uint64_t big[1] = {N};
    CHECK_REFUSED(hcrt_ckpt_register(ck, "c", (hcrt_buffer_t){host, cbuf, N, HCRT_F32}, 1, big, NULL), "64 bytes");
    CHECK_OK(ctx, hcrt_ckpt_register(ck, "h", (hcrt_buffer_t){NULL, v, SMALL, HCRT_F32}, 1, shape, NULL));
    CHECK_OK(ctx, hcrt_ckpt_save(ck, 1, NULL, 0));
    CHECK_OK(ctx, hcrt_ckpt_close(ck));
    if (rank == 0) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        CHECK(system(cmd) == 0);
    }

    /* The communicator keeps its last lookups: an allocation freed and replaced by a smaller one (often
     * at the same address) must be seen as the new one, never as the cached old one. */
    int reused = 0;
    for (int round = 0; round < 4; round++) {
        float *a = NULL, *b = NULL;
        REQUIRE_OK(ctx, hcrt_mem_alloc(host, 64 * sizeof(float), (void **)&a));
        CHECK_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, a, 64, HCRT_F32, HCRT_OP_SUM, NULL));
        CHECK_OK(ctx, hcrt_mem_free(host, a));
        REQUIRE_OK(ctx, hcrt_mem_alloc(host, 16 * sizeof(float), (void **)&b));
        reused += a == b;
        CHECK_REFUSED(hcrt_comm_allreduce(comm, HCRT_IN_PLACE, b, 64, HCRT_F32, HCRT_OP_SUM, NULL), "needs 256 bytes",
                      "which has 64 bytes");
        CHECK_OK(ctx, hcrt_mem_free(host, b));
    }
    if (rank == 0)
        printf("a freed allocation's address was reused %d of 4 times\n", reused);

    /* Nothing above disturbed the communicator: correct calls still agree. */
    for (int i = 0; i < SMALL; i++)
        cbuf[i] = (float)(rank + 1);
    CHECK_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, cbuf, SMALL, HCRT_F32, HCRT_OP_SUM, NULL));
    CHECK(cbuf[0] == (float)(size * (size + 1) / 2) && cbuf[SMALL - 1] == cbuf[0]);
    CHECK_OK(ctx, hcrt_memcpy(sim, sbuf, NULL, cbuf, sizeof(float) * SMALL));
    CHECK_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, sbuf, SMALL, HCRT_F32, HCRT_OP_MAX, sim));
    CHECK_OK(ctx, hcrt_memcpy(NULL, back, sim, sbuf, sizeof(back)));
    CHECK(back[0] == cbuf[0]);

    CHECK_OK(ctx, hcrt_mem_free(sim, sbuf));
    CHECK_OK(ctx, hcrt_mem_free(host, cbuf));
    CHECK_OK(ctx, hcrt_mem_free_host(sim, pinned));
    free(plain);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    TEST_DONE();
}
