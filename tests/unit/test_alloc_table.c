/*
 * tests/unit/test_alloc_table.c - the allocation table (runtime/alloc_table.c) under concurrent change.
 *
 * Lookups take no lock (a sequence lock), so they must give the right answer while another thread
 * allocates and frees around them, growing the table's array several times and shrinking it again:
 * every lookup of a fixed allocation finds it with its size (a 64-byte memset passes, a 65-byte one is
 * refused naming the size), and a pointer freed by the other thread is never reported as someone
 * else's. Also: pointers of another device, interior pointers and double frees are named.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

static hcrt_context_t *ctx;
static hcrt_device_t *host, *sim;
static atomic_bool stop;

enum { CHURN = 700, ROUNDS = 30 };

/* Allocates CHURN blocks of various sizes on host and sim, frees them in another order, repeatedly. */
static void *churn(void *arg)
{
    (void)arg;
    static void *p[CHURN];
    int failures = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < CHURN; i++) {
            hcrt_device_t *d = i % 3 ? host : sim;
            if (hcrt_mem_alloc(d, 32 + (size_t)(i % 7) * 16, &p[i]) != HCRT_OK)
                failures++;
        }
        for (int k = 0; k < CHURN; k++) {
            int i = (k * 3 + round) % CHURN; /* 3 is prime to CHURN: every block once */
            if (hcrt_mem_free(i % 3 ? host : sim, p[i]) != HCRT_OK)
                failures++;
        }
    }
    atomic_store(&stop, true);
    return (void *)(intptr_t)failures;
}

int main(void)
{
    hcrt_context_params_t params;
    hcrt_context_params_init(&params);
    params.flags = HCRT_INIT_NO_MPI;
    REQUIRE_OK(NULL, hcrt_init(&params, &ctx));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    if (hcrt_device_find(ctx, "sim", 0, &sim) != HCRT_OK)
        TEST_SKIP("needs the sim plugin (HCRT_BACKEND_PATH)");

    void *fixed = NULL, *dev = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(host, 64, &fixed));
    REQUIRE_OK(ctx, hcrt_mem_alloc(sim, 128, &dev));

    pthread_t th;
    REQUIRE_OK(ctx, pthread_create(&th, NULL, churn, NULL) == 0 ? HCRT_OK : HCRT_ERR_INTERNAL);
    long lookups = 0, wrong = 0;
    while (!atomic_load(&stop)) {
        wrong += hcrt_memset(host, fixed, 0, 64) != HCRT_OK;
        hcrt_status_t st = hcrt_memset(host, fixed, 0, 65);
        wrong += st != HCRT_ERR_INVALID_ARG || strstr(hcrt_last_error(ctx), "which has 64 bytes") == NULL;
        st = hcrt_memset(host, (char *)dev + 8, 0, 8); /* sim memory said to be host memory */
        wrong += st != HCRT_ERR_INVALID_ARG || strstr(hcrt_last_error(ctx), "memory of sim device 0") == NULL;
        lookups += 3;
        if (lookups > 3000000)
            break;
    }
    void *res = NULL;
    pthread_join(th, &res);
    CHECK_MSG(res == NULL, "the churning thread saw %ld failed allocations or frees", (long)(intptr_t)res);
    CHECK_MSG(wrong == 0, "%ld of %ld lookups under concurrent change gave a wrong answer", wrong, lookups);
    printf("%ld lookups while %d blocks were allocated and freed %d times\n", lookups, CHURN, ROUNDS);

    /* Naming: another device, an interior pointer, another call's memory, a freed pointer. */
    hcrt_device_t *sim1 = NULL;
    if (hcrt_device_find(ctx, "sim", 1, &sim1) == HCRT_OK) {
        CHECK_STATUS(ctx, hcrt_memset(sim1, dev, 0, 16), HCRT_ERR_INVALID_ARG);
        CHECK(strstr(hcrt_last_error(ctx), "memory of sim device 0") != NULL);
    }
    CHECK_STATUS(ctx, hcrt_mem_free(host, (char *)fixed + 8), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "8 bytes into an allocation of 64 bytes") != NULL);
    CHECK_STATUS(ctx, hcrt_mem_free_host(host, fixed), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "allocated by hcrt_mem_alloc") != NULL);
    CHECK_OK(ctx, hcrt_mem_free(host, fixed));
    CHECK_STATUS(ctx, hcrt_mem_free(host, fixed), HCRT_ERR_INVALID_ARG); /* the backend's own check */
    long plain = 1;
    CHECK_OK(ctx, hcrt_memset(host, &plain, 0, sizeof(plain))); /* memory hcrt did not allocate: as said */
    CHECK(plain == 0);
    CHECK_OK(ctx, hcrt_mem_free(sim, dev));
    hcrt_finalize(ctx);
    TEST_DONE();
}
