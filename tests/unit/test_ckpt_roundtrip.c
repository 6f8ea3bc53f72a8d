/*
 * Checkpoint round trips in one process (no MPI): every dtype on host and sim buffers, metadata,
 * keep-K garbage collection, list/latest, detection of a flipped bit and of a truncated file with
 * fallback to the older step, the busy policy, and clear errors for bad arguments.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hcrt/hcrt.h"
#include "test.h"

#define ROWS 37
#define COLS 5

static hcrt_context_t *ctx;
static char dir[256], local[300];

/* Deterministic bytes that differ per tensor, step and position. */
static void fill(unsigned char *p, size_t n, int tensor, int step)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131u + (unsigned)tensor * 17u + (unsigned)step * 101u + (i >> 8));
}

static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    unsigned char b;
    CHECK(fd >= 0);
    CHECK(pread(fd, &b, 1, at) == 1);
    b ^= 0x01;
    CHECK(pwrite(fd, &b, 1, at) == 1);
    close(fd);
}

static void find_local(char *out, size_t cap, int step)
{
    /* The node-local level lives in LOCAL/<basename>-<hash>/step-N/. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ls -d %s/*/step-%08d 2>/dev/null", local, step);
    FILE *f = popen(cmd, "r");
    out[0] = '\0';
    if (f && fgets(out, (int)cap, f))
        out[strcspn(out, "\n")] = '\0';
    if (f)
        pclose(f);
}

int main(void)
{
    hcrt_context_params_t cp;
    hcrt_device_t *host, *sim = NULL;
    hcrt_ckpt_t *ck;
    hcrt_ckpt_params_t p;
    unsigned char *host_buf[HCRT_DTYPE_COUNT], *sim_buf[HCRT_DTYPE_COUNT], *expect[HCRT_DTYPE_COUNT][4];
    void *sim_ptr[HCRT_DTYPE_COUNT];
    size_t bytes[HCRT_DTYPE_COUNT];

    setenv("HCRT_FAULT", "slow:step=7:phase=write:secs=1,error:step=9:phase=write", 1);
    /* The failed save of step 9 is returned, so the test can go on (the default policy ends the job). */
    setenv("HCRT_ON_FAILURE", "return", 1);
    hcrt_context_params_init(&cp);
    cp.flags = HCRT_INIT_NO_MPI;
    cp.backends = "cpu,sim";
    REQUIRE_OK(NULL, hcrt_init(&cp, &ctx));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    if (hcrt_device_find(ctx, "sim", 0, &sim) != HCRT_OK) {
        fprintf(stderr, "FAIL: the sim backend did not load (HCRT_BACKEND_PATH=%s)\n", getenv("HCRT_BACKEND_PATH"));
        return 1;
    }
    snprintf(dir, sizeof(dir), "/tmp/hcrt-test-ckpt-XXXXXX");
    REQUIRE_OK(ctx, mkdtemp(dir) ? HCRT_OK : HCRT_ERR_IO);
    snprintf(local, sizeof(local), "%.200s/local", dir);
    strcat(dir, "/shared");

    /* ---- bad arguments ---- */
    hcrt_ckpt_params_init(&p);
    CHECK_STATUS(ctx, hcrt_ckpt_open(ctx, NULL, &p, &ck), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "params->dir") != NULL);
    p.dir = dir;
    p.local_dir = local;
    p.keep = 2;
    CHECK_STATUS(ctx, hcrt_ckpt_open(NULL, NULL, &p, &ck), HCRT_ERR_INVALID_ARG);
    p.busy = (hcrt_ckpt_busy_t)7;
    CHECK_STATUS(ctx, hcrt_ckpt_open(ctx, NULL, &p, &ck), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "params->busy") != NULL);
    p.busy = HCRT_CKPT_REFUSE;
    REQUIRE_OK(ctx, hcrt_ckpt_open(ctx, NULL, &p, &ck));

    int64_t step = 0;
    CHECK_STATUS(ctx, hcrt_ckpt_latest(ck, &step), HCRT_ERR_NOT_FOUND);
    CHECK_STATUS(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, NULL, 0, NULL, NULL), HCRT_ERR_STATE);
    CHECK_STATUS(ctx, hcrt_ckpt_save(ck, 1, NULL, 0), HCRT_ERR_STATE);

    uint64_t shape[2] = {ROWS, COLS};
    float small[4];
    hcrt_buffer_t b = {host, small, 4, HCRT_F32};
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "a/b", b, 1, (uint64_t[]){4}, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "'name'") != NULL);
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "..", b, 1, (uint64_t[]){4}, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "x", b, 1, (uint64_t[]){5}, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "buf.count") != NULL);
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "x", b, 0, shape, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "x", b, 1, (uint64_t[]){8}, &(hcrt_ckpt_shard_t){6, 4}),
                 HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "'shard'") != NULL);
    b.dtype = (hcrt_dtype_t)99;
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "x", b, 1, (uint64_t[]){4}, NULL), HCRT_ERR_INVALID_ARG);
    b.dtype = HCRT_F32;
    /* Byte counts that would wrap: 2^40 rows of 2^20 f64 (2^63 bytes) for one part, and two parts of
     * 2^61 bytes each together. The buffer is never read at registration. */
    {
        hcrt_ckpt_t *ck2;
        REQUIRE_OK(ctx, hcrt_ckpt_open(ctx, NULL, &p, &ck2)); /* never saved: its registrations stay unread */
        hcrt_buffer_t huge = {host, small, (size_t)1 << 60, HCRT_F64};
        CHECK_STATUS(ctx, hcrt_ckpt_register(ck2, "huge", huge, 2, (uint64_t[]){(uint64_t)1 << 40, (uint64_t)1 << 20},
                                             NULL), HCRT_ERR_INVALID_ARG);
        CHECK_MSG(strstr(hcrt_last_error(ctx), "overflow") != NULL, "%s", hcrt_last_error(ctx));
        huge.count = (size_t)1 << 58;
        uint64_t half[2] = {(uint64_t)1 << 38, (uint64_t)1 << 20};
        CHECK_OK(ctx, hcrt_ckpt_register(ck2, "half1", huge, 2, half, NULL));
        CHECK_STATUS(ctx, hcrt_ckpt_register(ck2, "half2", huge, 2, half, NULL), HCRT_ERR_INVALID_ARG);
        CHECK_MSG(strstr(hcrt_last_error(ctx), "2^62") != NULL, "%s", hcrt_last_error(ctx));
        CHECK_OK(ctx, hcrt_ckpt_close(ck2));
    }

    /* ---- every dtype, on the host (replicated) and on a sim device (a shard of all rows) ---- */
    for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
        char name[64];
        hcrt_buffer_t hb, sb;
        bytes[d] = (size_t)ROWS * COLS * hcrt_dtype_size((hcrt_dtype_t)d);
        host_buf[d] = malloc(bytes[d]);
        sim_buf[d] = malloc(bytes[d]);
        for (int s = 0; s < 4; s++)
            expect[d][s] = malloc(bytes[d]);
        REQUIRE_OK(ctx, hcrt_mem_alloc(sim, bytes[d], &sim_ptr[d]));
        hb = (hcrt_buffer_t){host, host_buf[d], (size_t)ROWS * COLS, (hcrt_dtype_t)d};
        sb = (hcrt_buffer_t){sim, sim_ptr[d], (size_t)ROWS * COLS, (hcrt_dtype_t)d};
        snprintf(name, sizeof(name), "host.%s", hcrt_dtype_name((hcrt_dtype_t)d));
        REQUIRE_OK(ctx, hcrt_ckpt_register(ck, name, hb, 2, shape, NULL));
        snprintf(name, sizeof(name), "sim.%s", hcrt_dtype_name((hcrt_dtype_t)d));
        REQUIRE_OK(ctx, hcrt_ckpt_register(ck, name, sb, 2, shape, &(hcrt_ckpt_shard_t){0, ROWS}));
    }
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "host.f32", b, 1, (uint64_t[]){4}, NULL), HCRT_ERR_INVALID_ARG);

    /* Steps 1..3, each with its own data and metadata. */
    for (int s = 1; s <= 3; s++) {
        char meta[64];
        for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
            fill(host_buf[d], bytes[d], d, s);
            fill(sim_buf[d], bytes[d], d + 50, s);
            memcpy(expect[d][s], host_buf[d], bytes[d]);
            REQUIRE_OK(ctx, hcrt_memcpy(sim, sim_ptr[d], host, sim_buf[d], bytes[d]));
        }
        snprintf(meta, sizeof(meta), "meta of step %d", s);
        REQUIRE_OK(ctx, hcrt_ckpt_save(ck, s, meta, strlen(meta) + 1));
        bool done = false;
        for (int i = 0; i < 100000 && !done; i++)
            CHECK_OK(ctx, hcrt_ckpt_test(ck, &done));
        CHECK_OK(ctx, hcrt_ckpt_wait(ck));
    }
    CHECK_STATUS(ctx, hcrt_ckpt_save(ck, 3, NULL, 0), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "'step'") != NULL);

    int64_t steps[8];
    size_t n = 0;
    CHECK_OK(ctx, hcrt_ckpt_list(ck, steps, 8, &n));
    CHECK_MSG(n == 2 && steps[0] == 3 && steps[1] == 2, "list after keep=2: n=%zu", n);
    CHECK_OK(ctx, hcrt_ckpt_latest(ck, &step));
    CHECK(step == 3);
    char path[1024];
    snprintf(path, sizeof(path), "%s/step-00000001", dir);
    CHECK_MSG(access(path, F_OK) != 0, "step 1 should have been garbage-collected");

    /* ---- restore the latest into clobbered buffers ---- */
    for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
        memset(host_buf[d], 0xee, bytes[d]);
        REQUIRE_OK(ctx, hcrt_memset(sim, sim_ptr[d], 0xee, bytes[d]));
    }
    char meta[64] = "";
    size_t meta_len = 0;
    int64_t got = -1;
    CHECK_OK(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, meta, sizeof(meta), &meta_len, &got));
    CHECK(got == 3);
    CHECK(meta_len == strlen("meta of step 3") + 1 && strcmp(meta, "meta of step 3") == 0);
    for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
        unsigned char *tmp = malloc(bytes[d]), *want = malloc(bytes[d]);
        CHECK_MSG(memcmp(host_buf[d], expect[d][3], bytes[d]) == 0, "host %s differs", hcrt_dtype_name(d));
        REQUIRE_OK(ctx, hcrt_memcpy(host, tmp, sim, sim_ptr[d], bytes[d]));
        fill(want, bytes[d], d + 50, 3);
        CHECK_MSG(memcmp(tmp, want, bytes[d]) == 0, "sim %s differs", hcrt_dtype_name(d));
        free(tmp);
        free(want);
    }

    /* ---- explicit older step ---- */
    CHECK_OK(ctx, hcrt_ckpt_restore(ck, 2, meta, sizeof(meta), &meta_len, &got));
    CHECK(got == 2 && strcmp(meta, "meta of step 2") == 0);
    CHECK(memcmp(host_buf[8], expect[8][2], bytes[8]) == 0);
    CHECK_STATUS(ctx, hcrt_ckpt_restore(ck, 1, NULL, 0, NULL, NULL), HCRT_ERR_NOT_FOUND);

    /* ---- a flipped bit in every copy of step 3 is found; restore falls back to step 2 ---- */
    char lpath[1024];
    snprintf(path, sizeof(path), "%s/step-00000003/rank-00000.bin", dir);
    flip_byte(path, 4100); /* inside tensor sim.i8 (offset 4096) */
    find_local(lpath, sizeof(lpath), 3);
    CHECK_MSG(lpath[0] != '\0', "no node-local copy of step 3 under %s", local);
    strcat(lpath, "/rank-00000.bin");
    /* One damaged level alone is repaired from the other: first only the shared copy. */
    CHECK_OK(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, meta, sizeof(meta), &meta_len, &got));
    CHECK_MSG(got == 3, "one good level left: restored %lld", (long long)got);
    flip_byte(lpath, 4100);
    got = -1;
    CHECK_OK(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, meta, sizeof(meta), &meta_len, &got));
    CHECK_MSG(got == 2, "flipped bit: restored %lld", (long long)got);
    CHECK(strcmp(meta, "meta of step 2") == 0);
    for (int d = 0; d < HCRT_DTYPE_COUNT; d++)
        CHECK_MSG(memcmp(host_buf[d], expect[d][2], bytes[d]) == 0, "fallback: host %s differs", hcrt_dtype_name(d));
    CHECK_STATUS(ctx, hcrt_ckpt_restore(ck, 3, NULL, 0, NULL, NULL), HCRT_ERR_CORRUPT);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "rank-00000.bin") && strstr(hcrt_last_error(ctx), "chunk"),
              "message should name file and chunk: %s", hcrt_last_error(ctx));

    /* ---- a truncated file: step 2's shared and local copies cut short; nothing older is left ---- */
    snprintf(path, sizeof(path), "%s/step-00000002/rank-00000.bin", dir);
    CHECK(truncate(path, 100) == 0);
    find_local(lpath, sizeof(lpath), 2);
    strcat(lpath, "/rank-00000.bin");
    CHECK(truncate(lpath, 100) == 0);
    CHECK_STATUS(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, NULL, 0, NULL, NULL), HCRT_ERR_CORRUPT);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "step 3") || strstr(hcrt_last_error(ctx), "step-00000003"),
              "message: %s", hcrt_last_error(ctx));

    /* ---- busy policy: step 7 persists slowly (HCRT_FAULT slow), a save meanwhile is refused ---- */
    for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
        fill(host_buf[d], bytes[d], d, 8);
        memcpy(expect[d][0], host_buf[d], bytes[d]);
    }
    REQUIRE_OK(ctx, hcrt_ckpt_save(ck, 7, NULL, 0));
    CHECK_STATUS(ctx, hcrt_ckpt_save(ck, 8, NULL, 0), HCRT_ERR_BUSY);
    CHECK_STATUS(ctx, hcrt_ckpt_register(ck, "late", b, 1, (uint64_t[]){4}, NULL), HCRT_ERR_STATE);
    CHECK_OK(ctx, hcrt_ckpt_wait(ck));
    CHECK_OK(ctx, hcrt_ckpt_save(ck, 8, NULL, 0));
    CHECK_OK(ctx, hcrt_ckpt_wait(ck));
    /* Step 9's write fails (HCRT_FAULT error): the commit fails with the file named, nothing is
     * committed, and the checkpointer goes on. */
    CHECK_OK(ctx, hcrt_ckpt_save(ck, 9, NULL, 0));
    CHECK_STATUS(ctx, hcrt_ckpt_wait(ck), HCRT_ERR_IO);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "step 9") && strstr(hcrt_last_error(ctx), "rank-00000.bin"),
              "write error message: %s", hcrt_last_error(ctx));
    CHECK_OK(ctx, hcrt_ckpt_latest(ck, &step));
    CHECK(step == 8);
    /* A failed step's number may be used again (the fault hits every attempt at step 9), and the
     * next step commits. */
    CHECK_OK(ctx, hcrt_ckpt_save(ck, 9, NULL, 0));
    CHECK_STATUS(ctx, hcrt_ckpt_wait(ck), HCRT_ERR_IO);
    CHECK_OK(ctx, hcrt_ckpt_save(ck, 10, NULL, 0));
    CHECK_OK(ctx, hcrt_ckpt_wait(ck));
    CHECK_OK(ctx, hcrt_ckpt_latest(ck, &step));
    CHECK(step == 10);
    CHECK_OK(ctx, hcrt_ckpt_close(ck));

    /* A fresh checkpointer on the same directory restores step 8 (from the node-local level). */
    p.busy = HCRT_CKPT_WAIT;
    REQUIRE_OK(ctx, hcrt_ckpt_open(ctx, NULL, &p, &ck));
    for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
        char name[64];
        snprintf(name, sizeof(name), "host.%s", hcrt_dtype_name((hcrt_dtype_t)d));
        REQUIRE_OK(ctx, hcrt_ckpt_register(ck, name, (hcrt_buffer_t){host, host_buf[d], (size_t)ROWS * COLS,
                                                                      (hcrt_dtype_t)d}, 2, shape, NULL));
        memset(host_buf[d], 0, bytes[d]);
    }
    CHECK_OK(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, NULL, 0, &meta_len, &got));
    CHECK(got == 10 && meta_len == 0);
    for (int d = 0; d < HCRT_DTYPE_COUNT; d++)
        CHECK_MSG(memcmp(host_buf[d], expect[d][0], bytes[d]) == 0, "reopen: host %s differs", hcrt_dtype_name(d));
    /* A registration the checkpoint does not have is a mismatch, not a corruption. */
    REQUIRE_OK(ctx, hcrt_ckpt_register(ck, "extra", (hcrt_buffer_t){host, small, 4, HCRT_F32}, 1, (uint64_t[]){4}, NULL));
    CHECK_STATUS(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, NULL, 0, NULL, NULL), HCRT_ERR_MISMATCH);
    CHECK(strstr(hcrt_last_error(ctx), "'extra'") != NULL);
    CHECK_OK(ctx, hcrt_ckpt_close(ck));
    CHECK_OK(ctx, hcrt_ckpt_close(NULL));

    for (int d = 0; d < HCRT_DTYPE_COUNT; d++) {
        hcrt_mem_free(sim, sim_ptr[d]);
        free(host_buf[d]);
        free(sim_buf[d]);
        for (int s = 0; s < 4; s++)
            free(expect[d][s]);
    }
    char cmd[600];
    *strrchr(dir, '/') = '\0';
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    hcrt_finalize(ctx);
    TEST_DONE();
}
