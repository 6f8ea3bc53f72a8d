/*
 * tests/unit/test_fault.c - HCRT_FAULT (docs/fault-injection.md) without MPI.
 *
 * The parser: every kind, key and site; what it must refuse (unknown kinds, keys, sites, phases and
 * collectives, kinds that mean nothing at a phase), always naming the rule. The matcher: rank, attempt,
 * site, name and number, first rule wins; prob/seed draws are a pure function of (seed, rank, site,
 * name, number, attempt), near the asked rate, and different after a relaunch. Then hcrt_fault_point in
 * a context: its argument checks, and error, device_lost (through the runtime's seam, on a sim device
 * and on the cpu device alike), corrupt (exactly one bit flips, on host and sim memory), slow and
 * attempt=. kill and hang end or stop the process: the fault suite tests them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hcrt/hcrt.h"
#include "runtime/fault/fault.h"
#include "test.h"

static char err[512];

static void refuses(const char *text, const char *needle)
{
    hcrt__fault_plan_t plan;
    err[0] = '\0';
    hcrt_status_t st = hcrt__fault_parse(text, &plan, err, sizeof(err));
    CHECK_MSG(st == HCRT_ERR_CONFIG, "'%s' was accepted", text);
    CHECK_MSG(strstr(err, needle) != NULL && strstr(err, "rule") != NULL, "'%s': message '%s' should name '%s'", text,
              err, needle);
}

static void parses(void)
{
    hcrt__fault_plan_t plan;
    CHECK_OK(NULL, hcrt__fault_parse("kill:rank=1:step=3:phase=write,hang:rank=2:op=allreduce:seq=5,"
                                     "slow:op=allreduce:secs=0.5,corrupt:step=2,error:site=train:step=4:attempt=1,"
                                     "device_lost:site=compute:op=gemm:prob=0.25:seed=0x2a",
                                     &plan, err, sizeof(err)));
    CHECK(plan.nrules == 6);
    CHECK(plan.rules[0].kind == HCRT__FAULT_KILL && strcmp(plan.rules[0].site, "ckpt") == 0);
    CHECK(plan.rules[1].kind == HCRT__FAULT_HANG && strcmp(plan.rules[1].site, "coll") == 0);
    CHECK(plan.rules[2].secs == 0.5);
    CHECK(plan.rules[3].kind == HCRT__FAULT_CORRUPT && strcmp(plan.rules[3].site, "ckpt") == 0);
    CHECK(plan.rules[4].attempt == 1 && strcmp(plan.rules[4].site, "train") == 0);
    CHECK(plan.rules[5].kind == HCRT__FAULT_DEVICE_LOST && plan.rules[5].prob == 0.25 && plan.rules[5].seed == 42);

    /* Matching: rank, site, name, number; the first matching rule wins. */
    CHECK(hcrt__fault_match(&plan, 1, 0, "ckpt", "write", 3) == &plan.rules[0]);
    CHECK(hcrt__fault_match(&plan, 0, 0, "ckpt", "write", 3) == NULL);
    CHECK(hcrt__fault_match(&plan, 1, 0, "ckpt", "snapshot", 3) == NULL);
    CHECK(hcrt__fault_match(&plan, 1, 0, "ckpt", "write", 2) == &plan.rules[3]); /* corrupt: any phase */
    CHECK(hcrt__fault_match(&plan, 2, 0, "coll", "allreduce", 5) == &plan.rules[1]);
    CHECK(hcrt__fault_match(&plan, 0, 0, "coll", "allreduce", 9) == &plan.rules[2]);
    CHECK(hcrt__fault_match(&plan, 0, 0, "coll", "broadcast", 5) == NULL);
    /* attempt=1 fires in launch 1 only. */
    CHECK(hcrt__fault_match(&plan, 0, 0, "train", NULL, 4) == NULL);
    CHECK(hcrt__fault_match(&plan, 0, 1, "train", NULL, 4) == &plan.rules[4]);
    CHECK(hcrt__fault_match(&plan, 0, 2, "train", "step", 4) == NULL);
    hcrt__fault_plan_free(&plan);

    /* Ranges of steps: N-M, and N- for every call from N on. */
    CHECK_OK(NULL, hcrt__fault_parse("slow:site=train:step=5-:secs=0.1,error:site=train:step=2-3", &plan, err,
                                     sizeof(err)));
    CHECK(hcrt__fault_match(&plan, 0, 0, "train", NULL, 4) == NULL);
    CHECK(hcrt__fault_match(&plan, 0, 0, "train", NULL, 5) == &plan.rules[0]);
    CHECK(hcrt__fault_match(&plan, 0, 0, "train", NULL, 1000000) == &plan.rules[0]);
    CHECK(hcrt__fault_match(&plan, 0, 0, "train", NULL, 1) == NULL);
    CHECK(hcrt__fault_match(&plan, 0, 0, "train", NULL, 2) == &plan.rules[1]);
    CHECK(hcrt__fault_match(&plan, 0, 0, "train", NULL, 3) == &plan.rules[1]);
    hcrt__fault_plan_free(&plan);

    CHECK_OK(NULL, hcrt__fault_parse("", &plan, err, sizeof(err)));
    CHECK(plan.nrules == 0);
    CHECK_OK(NULL, hcrt__fault_parse(NULL, &plan, err, sizeof(err)));
    CHECK(plan.nrules == 0);
    /* Every kind a phase takes, and some that need no phase. */
    const char *ok[] = {"error:phase=snapshot",
                        "device_lost:phase=snapshot",
                        "corrupt:phase=write",
                        "error:phase=write",
                        "error:phase=before_agree",
                        "error:phase=before_rename",
                        "kill:phase=gc",
                        "hang:site=restore:phase=read",
                        "error:site=restore:phase=read",
                        "device_lost:site=restore:phase=copy",
                        "corrupt:site=train",
                        "corrupt:op=reduce_scatter",
                        "device_lost:op=barrier:seq=1",
                        "slow:site=compute:secs=0",
                        "kill:prob=1:seed=0"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK_MSG(hcrt__fault_parse(ok[i], &plan, err, sizeof(err)) == HCRT_OK, "'%s' refused: %s", ok[i], err);
        hcrt__fault_plan_free(&plan);
    }
}

static void refusals(void)
{
    refuses("explode:rank=1", "explode");
    refuses("kill:rank=x", "rank");
    refuses("kill:color=red", "color");
    refuses("kill:step", "step");
    refuses("kill:site=disk", "disk");
    refuses("kill:phase=writ", "writ");
    refuses("hang:op=allreduc", "allreduc");
    refuses("corrupt:phase=gc", "gc");
    refuses("device_lost:phase=write", "write");
    refuses("error:phase=gc", "gc");
    refuses("corrupt:site=restore:phase=read", "read");
    refuses("corrupt:phase=before_rename", "before_rename");
    refuses("slow:op=allreduce", "secs");
    refuses("kill:secs=1", "secs");
    refuses("kill:prob=0", "prob");
    refuses("kill:prob=1.5", "prob");
    refuses("kill:seed=-1", "seed");
    refuses("kill:attempt=-1", "attempt");
    refuses("kill:step=5-3", "step");
    refuses("kill:step=-3", "step");
    refuses("kill:seq=2-x", "seq");
    refuses("kill:step=3,hang:rank=2:phase=nowhere", "rule 2");
}

/* prob/seed: a pure function of the call, near the asked rate, another set after a relaunch. */
static void draws(void)
{
    hcrt__fault_plan_t plan;
    enum { N = 20000 };
    static bool a[N];
    int hits = 0, same = 0, other_attempt = 0, other_seed = 0, other_rank = 0;
    REQUIRE_OK(NULL, hcrt__fault_parse("kill:site=train:prob=0.1:seed=7", &plan, err, sizeof(err)));
    for (int i = 0; i < N; i++) {
        a[i] = hcrt__fault_match(&plan, 3, 0, "train", NULL, i) != NULL;
        hits += a[i];
    }
    for (int i = 0; i < N; i++) {
        same += (hcrt__fault_match(&plan, 3, 0, "train", NULL, i) != NULL) == a[i];
        other_attempt += a[i] && hcrt__fault_match(&plan, 3, 1, "train", NULL, i) != NULL;
        other_rank += a[i] && hcrt__fault_match(&plan, 4, 0, "train", NULL, i) != NULL;
    }
    hcrt__fault_plan_free(&plan);
    REQUIRE_OK(NULL, hcrt__fault_parse("kill:site=train:prob=0.1:seed=8", &plan, err, sizeof(err)));
    for (int i = 0; i < N; i++)
        other_seed += a[i] && hcrt__fault_match(&plan, 3, 0, "train", NULL, i) != NULL;
    hcrt__fault_plan_free(&plan);
    CHECK_MSG(hits > N / 10 - 300 && hits < N / 10 + 300, "prob 0.1 fired %d times in %d", hits, N);
    CHECK(same == N);
    /* Independent draws overlap in about 10% of the hits. */
    CHECK_MSG(other_attempt < hits / 5, "attempt 1 repeats %d of %d hits", other_attempt, hits);
    CHECK_MSG(other_seed < hits / 5, "another seed repeats %d of %d hits", other_seed, hits);
    CHECK_MSG(other_rank < hits / 5, "another rank repeats %d of %d hits", other_rank, hits);
}

static hcrt_context_t *ctx_with(const char *fault, const char *attempt)
{
    hcrt_context_params_t p;
    hcrt_context_t *ctx = NULL;
    setenv("HCRT_FAULT", fault, 1);
    setenv("HCRT_RUN_ATTEMPT", attempt, 1);
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    REQUIRE_OK(NULL, hcrt_init(&p, &ctx));
    return ctx;
}

static int bits_differ(const unsigned char *a, const unsigned char *b, size_t n)
{
    int d = 0;
    for (size_t i = 0; i < n; i++)
        d += __builtin_popcount((unsigned)(a[i] ^ b[i]));
    return d;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void points(void)
{
    hcrt_context_params_t p;
    hcrt_context_t *ctx = NULL;
    hcrt_device_t *host, *sim, *dev;

    /* A malformed plan fails hcrt_init, naming HCRT_FAULT and the rule. */
    setenv("HCRT_FAULT", "kill:phase=nowhere", 1);
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    CHECK_STATUS(NULL, hcrt_init(&p, &ctx), HCRT_ERR_CONFIG);
    CHECK_MSG(strstr(hcrt_last_error(NULL), "HCRT_FAULT") && strstr(hcrt_last_error(NULL), "nowhere"), "init error: %s",
              hcrt_last_error(NULL));

    ctx = ctx_with("error:site=train:step=5,device_lost:site=compute:op=gemm:seq=2,corrupt:site=train:step=7,"
                   "slow:site=train:step=3:secs=0.2,device_lost:site=train:step=9,error:site=train:step=11:attempt=1",
                   "0");
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &sim));

    /* Arguments. */
    CHECK_STATUS(NULL, hcrt_fault_point(NULL, "train", NULL, 1, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, NULL, NULL, 1, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, "coll", "allreduce", 1, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "'site'") != NULL);
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, "train", NULL, -1, NULL), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "'num'") != NULL);
    hcrt_buffer_t bad = {NULL, NULL, 4, HCRT_F32};
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, "train", NULL, 1, &bad), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "buf->device") != NULL);

    /* error */
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", NULL, 4, NULL));
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, "train", NULL, 5, NULL), HCRT_ERR_BACKEND);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "injected error at train") != NULL, "%s", hcrt_last_error(ctx));
    /* attempt=1 does not fire in launch 0. */
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", NULL, 11, NULL));

    /* slow */
    double t0 = now();
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", NULL, 3, NULL));
    CHECK_MSG(now() - t0 >= 0.19, "slow slept %.3f s", now() - t0);

    /* corrupt: exactly one bit of the buffer, host and sim memory alike. */
    enum { N = 1000 };
    float x[N], y[N], z[N];
    for (int i = 0; i < N; i++)
        x[i] = y[i] = (float)i * 0.5f;
    hcrt_buffer_t hb = {host, x, N, HCRT_F32};
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", NULL, 7, &hb));
    CHECK_MSG(bits_differ((unsigned char *)x, (unsigned char *)y, sizeof(x)) == 1, "host corrupt flipped %d bits",
              bits_differ((unsigned char *)x, (unsigned char *)y, sizeof(x)));
    void *d = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(sim, sizeof(y), &d));
    REQUIRE_OK(ctx, hcrt_memcpy(sim, d, host, y, sizeof(y)));
    hcrt_buffer_t sb = {sim, d, N, HCRT_F32};
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", "step", 7, &sb));
    REQUIRE_OK(ctx, hcrt_memcpy(host, z, sim, d, sizeof(z)));
    CHECK_MSG(bits_differ((unsigned char *)z, (unsigned char *)y, sizeof(z)) == 1, "sim corrupt flipped %d bits",
              bits_differ((unsigned char *)z, (unsigned char *)y, sizeof(z)));
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", NULL, 8, NULL)); /* no rule */

    /* device_lost through the runtime's seam: every later call on the device fails, naming it. */
    CHECK_OK(ctx, hcrt_fault_point(ctx, "compute", "gemm", 1, &sb));
    CHECK_OK(ctx, hcrt_fault_point(ctx, "compute", "relu", 2, &sb));
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, "compute", "gemm", 2, &sb), HCRT_ERR_DEVICE_LOST);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "sim device 0") && strstr(hcrt_last_error(ctx), "rank 0") &&
                  strstr(hcrt_last_error(ctx), "lost"),
              "%s", hcrt_last_error(ctx));
    CHECK_STATUS(ctx, hcrt_memcpy(host, z, sim, d, sizeof(z)), HCRT_ERR_DEVICE_LOST);
    CHECK_STATUS(ctx, hcrt_device_check_health(sim), HCRT_ERR_DEVICE_LOST);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "injected by HCRT_FAULT") != NULL, "%s", hcrt_last_error(ctx));
    hcrt_stream_t *stream = NULL;
    CHECK_STATUS(ctx, hcrt_stream_create(sim, &stream), HCRT_ERR_DEVICE_LOST);
    CHECK_OK(ctx, hcrt_mem_free(sim, d)); /* cleanup still works */
    /* The other devices are unaffected; the cpu device can be lost too (train with no buffer loses the
     * context's device: make it the host by passing a host buffer). */
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 1, &dev));
    CHECK_OK(ctx, hcrt_device_check_health(dev));
    hcrt_buffer_t hb1 = {host, x, 1, HCRT_F32};
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, "train", NULL, 9, &hb1), HCRT_ERR_DEVICE_LOST);
    CHECK_STATUS(ctx, hcrt_memcpy(host, y, host, x, 4), HCRT_ERR_DEVICE_LOST);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "cpu device 0") != NULL, "%s", hcrt_last_error(ctx));
    hcrt_finalize(ctx);

    /* attempt=1 fires in launch 1 (HCRT_RUN_ATTEMPT=1). */
    ctx = ctx_with("error:site=train:step=11:attempt=1", "1");
    CHECK_STATUS(ctx, hcrt_fault_point(ctx, "train", NULL, 11, NULL), HCRT_ERR_BACKEND);
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", NULL, 12, NULL));
    hcrt_finalize(ctx);

    /* Without HCRT_FAULT nothing fires. */
    ctx = ctx_with("", "0");
    CHECK_OK(ctx, hcrt_fault_point(ctx, "train", NULL, 5, NULL));
    hcrt_finalize(ctx);
    unsetenv("HCRT_FAULT");
    unsetenv("HCRT_RUN_ATTEMPT");
}

int main(void)
{
    parses();
    refusals();
    draws();
    points();
    TEST_DONE();
}
