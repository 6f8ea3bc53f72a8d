/*
 * examples/c/allreduce_checkpoint.c - the smallest complete hcrt program: data onto this rank's device,
 * an allreduce of device memory across ranks (each rank may have a different kind of device), a checkpoint
 * saved and restored, and the context finalised.
 *
 * Build against an installed hcrt (the rpath in hcrt.pc's Libs means no LD_LIBRARY_PATH is needed):
 *     cc allreduce_checkpoint.c $(pkg-config --cflags --libs hcrt) -o allreduce_checkpoint
 * (or `make` in this directory). Run, on as many ranks as you like:
 *     mpirun -np 2 ./allreduce_checkpoint /shared/ckpt-dir
 * With the sim plugin installed every rank gets a sim device; HCRT_DEVICE=cpu keeps a rank on the host.
 */
#include <hcrt/hcrt.h>
#include <stdio.h>
#include <stdlib.h>

#define N 1024

/* On failure: hcrt's message names what went wrong; exit with the status of the exit policy. */
static void check(hcrt_context_t *ctx, hcrt_status_t st, const char *what)
{
    if (st != HCRT_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, hcrt_status_name(st), hcrt_last_error(ctx));
        exit(hcrt_exit_status(st));
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "ckpt";
    hcrt_context_t *ctx = NULL;
    check(NULL, hcrt_init(NULL, &ctx), "hcrt_init"); /* MPI, plugins, this rank's device */
    int rank = 0, size = 1;
    hcrt_context_rank(ctx, &rank, &size);
    hcrt_device_t *dev = NULL;
    check(ctx, hcrt_context_device(ctx, &dev), "hcrt_context_device");

    /* Data onto the device: device memory is opaque, so it gets there by a copy (NULL: host memory). */
    static float host[N];
    for (int i = 0; i < N; i++)
        host[i] = (float)(rank + 1);
    float *grad = NULL;
    check(ctx, hcrt_mem_alloc(dev, sizeof(host), (void **)&grad), "hcrt_mem_alloc");
    check(ctx, hcrt_memcpy(dev, grad, NULL, host, sizeof(host)), "hcrt_memcpy to the device");

    /* Sum over every rank, in place, on device memory. */
    hcrt_comm_t *world = NULL;
    check(ctx, hcrt_comm_world(ctx, &world), "hcrt_comm_world");
    check(ctx, hcrt_comm_allreduce(world, HCRT_IN_PLACE, grad, N, HCRT_F32, HCRT_OP_SUM, dev), "allreduce");

    /* Checkpoint the device buffer (replicated: every rank holds all of it), then lose it and restore. */
    hcrt_ckpt_params_t params;
    hcrt_ckpt_params_init(&params);
    params.dir = dir;
    hcrt_ckpt_t *ck = NULL;
    check(ctx, hcrt_ckpt_open(ctx, world, &params, &ck), "hcrt_ckpt_open");
    uint64_t shape[1] = {N};
    hcrt_buffer_t buf = {dev, grad, N, HCRT_F32};
    check(ctx, hcrt_ckpt_register(ck, "grad", buf, 1, shape, NULL), "hcrt_ckpt_register");
    check(ctx, hcrt_ckpt_save(ck, 1, "step 1", 6), "hcrt_ckpt_save"); /* returns once snapshotted */
    check(ctx, hcrt_ckpt_wait(ck), "hcrt_ckpt_wait");                 /* committed on every rank */
    check(ctx, hcrt_memset(dev, grad, 0, sizeof(host)), "hcrt_memset");
    int64_t step = -1;
    char meta[16];
    size_t len = 0;
    check(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, meta, sizeof(meta), &len, &step), "hcrt_ckpt_restore");

    check(ctx, hcrt_memcpy(NULL, host, dev, grad, sizeof(host)), "hcrt_memcpy to the host");
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += host[i] != (float)size * (float)(size + 1) / 2.0f;
    printf("rank %d of %d on %s: allreduce gave %g, restored checkpoint step %lld ('%.*s'): %s\n", rank, size,
           hcrt_device_backend(dev), host[0], (long long)step, (int)(len < sizeof(meta) ? len : sizeof(meta)), meta,
           wrong ? "WRONG" : "ok");

    check(ctx, hcrt_ckpt_close(ck), "hcrt_ckpt_close");
    check(ctx, hcrt_comm_destroy(world), "hcrt_comm_destroy");
    check(ctx, hcrt_mem_free(dev, grad), "hcrt_mem_free");
    check(NULL, hcrt_finalize(ctx), "hcrt_finalize");
    return wrong ? 1 : 0;
}
