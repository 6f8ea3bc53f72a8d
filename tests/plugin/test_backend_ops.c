/*
 * tests/plugin/test_backend_ops.c - every backend op, through the public API, on the backend named by
 * argv[1] (cpu, sim, cuda, hip): allocation, memset, copies host<->device<->device (peer and across
 * backends), streams (a chain of async ops gives the right result), events (they time real work),
 * hcrt_reduce for every dtype x op and hcrt_scale against the float64 references of kernel_ref.h, the
 * same kernels (and hcrt_reduce3) on registered host memory (hcrt_host_register), and bad
 * arguments (clean errors, never crashes). For sim it also checks the speed factor, out-of-memory,
 * every injected fault and pointer validation. For a GPU backend that reports no device the test exits
 * 77 with the reason; on a machine with the GPU the same code runs unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/backend.h"
#include "hcrt/hcrt.h"
#include "kernel_ref.h"
#include "test.h"

static const char *backend;
static bool is_sim;

static hcrt_context_t *open_ctx(void)
{
    hcrt_context_params_t p;
    hcrt_context_params_init(&p);
    p.flags = HCRT_INIT_NO_MPI;
    hcrt_context_t *ctx = NULL;
    REQUIRE_OK(NULL, hcrt_init(&p, &ctx));
    return ctx;
}

/* Opens a context with one environment variable set for it (the runtime reads HCRT_* at init). */
static hcrt_context_t *open_ctx_with(const char *name, const char *value)
{
    const char *prev = getenv(name);
    char *saved = prev ? strdup(prev) : NULL;
    setenv(name, value, 1);
    hcrt_context_t *ctx = open_ctx();
    if (saved)
        setenv(name, saved, 1);
    else
        unsetenv(name);
    free(saved);
    return ctx;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 8)) & 0xFF);
}

/* ---- properties -------------------------------------------------------------------------------- */

static void test_props(hcrt_device_t *dev)
{
    hcrt_device_props_t pr = {.struct_size = sizeof(pr)};
    CHECK_OK(NULL, hcrt_device_get_props(dev, &pr));
    CHECK(strcmp(pr.backend, backend) == 0);
    CHECK(pr.name && pr.name[0]);
    CHECK(pr.total_memory > 0 && pr.free_memory <= pr.total_memory);
    CHECK(pr.speed > 0);
    if (strcmp(backend, "cpu") == 0) {
        CHECK(pr.host_addressable);
        CHECK(strcmp(pr.name, "host") == 0);
        CHECK(strcmp(pr.pci_bus_id, "") == 0);
    }
    if (is_sim) {
        CHECK(!pr.host_addressable);
        CHECK_MSG(strcmp(pr.name, "sim device 0") == 0, "name '%s'", pr.name);
        CHECK(strcmp(pr.vendor, "hcrt") == 0 && strcmp(pr.pci_bus_id, "") == 0);
        CHECK((pr.caps & (HCRT_CAP_PEER_COPY | HCRT_CAP_FAULT_INJECTION | HCRT_CAP_PINNED_HOST)) ==
              (HCRT_CAP_PEER_COPY | HCRT_CAP_FAULT_INJECTION | HCRT_CAP_PINNED_HOST));
        CHECK(pr.speed == 1.0);
    }
}

/* ---- copies ---------------------------------------------------------------------------------------- */

/* host -> a -> b -> host, byte for byte, for a few sizes (one larger than the 4 MiB staging chunk). */
static void check_route(hcrt_context_t *ctx, hcrt_device_t *host, hcrt_device_t *a, hcrt_device_t *b)
{
    static const size_t sizes[] = {1, 4099, (9u << 20) + 13};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        const size_t n = sizes[si];
        unsigned char *src = malloc(n), *dst = malloc(n);
        fill_pattern(src, n, (unsigned)si + 1);
        memset(dst, 0, n);
        void *da = NULL, *db = NULL;
        CHECK_OK(ctx, hcrt_mem_alloc(a, n, &da));
        CHECK_OK(ctx, hcrt_mem_alloc(b, n, &db));
        if (da && db) {
            CHECK_OK(ctx, hcrt_memcpy(a, da, host, src, n));
            CHECK_OK(ctx, hcrt_memcpy(b, db, a, da, n));
            CHECK_OK(ctx, hcrt_memcpy(host, dst, b, db, n));
            CHECK_MSG(memcmp(src, dst, n) == 0, "%s:%d -> %s:%d copy of %zu bytes differs", hcrt_device_backend(a), 0,
                      hcrt_device_backend(b), 0, n);
        }
        CHECK_OK(ctx, hcrt_mem_free(a, da));
        CHECK_OK(ctx, hcrt_mem_free(b, db));
        free(src);
        free(dst);
    }
}

static void test_copies(hcrt_context_t *ctx, hcrt_device_t *host, hcrt_device_t *d0)
{
    check_route(ctx, host, d0, d0); /* H2D, D2D, D2H */
    hcrt_device_t *d1 = NULL;
    if (hcrt_device_find(ctx, backend, 1, &d1) == HCRT_OK)
        check_route(ctx, host, d0, d1); /* peer copy */
    /* Across backends, both directions: the tested backend and each other loaded one (cpu, sim). */
    const char *others[] = {"cpu", "sim"};
    for (int i = 0; i < 2; i++) {
        hcrt_device_t *o = NULL;
        if (strcmp(others[i], backend) == 0 || hcrt_device_find(ctx, others[i], 0, &o) != HCRT_OK)
            continue;
        check_route(ctx, host, d0, o);
        check_route(ctx, host, o, d0);
    }

    /* memset, and a D2D copy into the middle of a buffer */
    const size_t n = 1000;
    unsigned char h[1000];
    void *p = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(d0, n, &p));
    CHECK_OK(ctx, hcrt_memset(d0, p, 0x5A, n));
    CHECK_OK(ctx, hcrt_memset(d0, (char *)p + 100, 0x01, 50));
    CHECK_OK(ctx, hcrt_memcpy(host, h, d0, p, n));
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && h[i] == ((i >= 100 && i < 150) ? 0x01 : 0x5A);
    CHECK_MSG(ok, "memset pattern wrong");
    CHECK_OK(ctx, hcrt_memcpy(d0, (char *)p + 500, d0, p, 200));
    CHECK_OK(ctx, hcrt_memcpy(host, h, d0, p, n));
    CHECK(h[600] == 0x01 && h[499] == 0x5A && h[700] == 0x5A && h[650] == 0x5A);
    CHECK_OK(ctx, hcrt_mem_free(d0, p));

    /* pinned host memory of the backend is host-addressable */
    void *pinned = NULL;
    CHECK_OK(ctx, hcrt_mem_alloc_host(d0, 1 << 20, &pinned));
    if (pinned) {
        memset(pinned, 7, 1 << 20);
        CHECK(((unsigned char *)pinned)[12345] == 7);
        CHECK_OK(ctx, hcrt_mem_free_host(d0, pinned));
    }
}

/* ---- streams and events ------------------------------------------------------------------------- */

/*
 * A chain of async ops on one stream: H2D a, H2D b, then a += b three times, a *= 0.5, D2H. Every op
 * depends on the one before, so any reordering or any op running before its predecessor finished gives
 * a wrong result.
 */
static void test_stream_chain(hcrt_context_t *ctx, hcrt_device_t *host, hcrt_device_t *d0)
{
    const size_t n = 1 << 20;
    float *a = malloc(n * 4), *b = malloc(n * 4), *r = malloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        a[i] = (float)(i % 1000);
        b[i] = (float)(i % 7) * 2.0f;
        r[i] = -1.0f;
    }
    void *da = NULL, *db = NULL;
    hcrt_stream_t *s = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(d0, n * 4, &da));
    REQUIRE_OK(ctx, hcrt_mem_alloc(d0, n * 4, &db));
    REQUIRE_OK(ctx, hcrt_stream_create(d0, &s));
    for (int round = 0; round < 3; round++) {
        CHECK_OK(ctx, hcrt_memcpy_async(d0, da, host, a, n * 4, s));
        CHECK_OK(ctx, hcrt_memcpy_async(d0, db, host, b, n * 4, s));
        for (int k = 0; k < 3; k++)
            CHECK_OK(ctx, hcrt_reduce(d0, da, db, n, HCRT_F32, HCRT_OP_SUM, s));
        CHECK_OK(ctx, hcrt_scale(d0, da, n, HCRT_F32, 0.5, s));
        CHECK_OK(ctx, hcrt_memcpy_async(host, r, d0, da, n * 4, s));
        CHECK_OK(ctx, hcrt_stream_sync(s));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += r[i] != (a[i] + 3 * b[i]) * 0.5f;
        CHECK_MSG(bad == 0, "stream chain round %d: %zu wrong elements", round, bad);
        memset(r, 0, n * 4);
    }
    CHECK_OK(ctx, hcrt_stream_destroy(s));
    CHECK_OK(ctx, hcrt_mem_free(d0, da));
    CHECK_OK(ctx, hcrt_mem_free(d0, db));
    free(a);
    free(b);
    free(r);
}

/* Milliseconds the device takes for a 16 MiB f32 reduce on a stream, timed with events (best of 3). */
static float time_reduce(hcrt_context_t *ctx, hcrt_device_t *dev)
{
    const size_t n = 4u << 20;
    void *x = NULL, *y = NULL;
    hcrt_stream_t *s = NULL;
    hcrt_event_t *e0 = NULL, *e1 = NULL;
    float best = -1;
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, n * 4, &x));
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, n * 4, &y));
    CHECK_OK(ctx, hcrt_memset(dev, x, 0, n * 4));
    CHECK_OK(ctx, hcrt_memset(dev, y, 0, n * 4));
    REQUIRE_OK(ctx, hcrt_stream_create(dev, &s));
    REQUIRE_OK(ctx, hcrt_event_create(dev, &e0));
    REQUIRE_OK(ctx, hcrt_event_create(dev, &e1));
    for (int rep = 0; rep < 3; rep++) {
        CHECK_OK(ctx, hcrt_event_record(e0, s));
        CHECK_OK(ctx, hcrt_reduce(dev, x, y, n, HCRT_F32, HCRT_OP_SUM, s));
        CHECK_OK(ctx, hcrt_event_record(e1, s));
        CHECK_OK(ctx, hcrt_event_sync(e1));
        bool done = false;
        CHECK_OK(ctx, hcrt_event_query(e1, &done));
        CHECK(done);
        float ms = 0;
        CHECK_OK(ctx, hcrt_event_elapsed(e0, e1, &ms));
        if (best < 0 || ms < best)
            best = ms;
    }
    CHECK_OK(ctx, hcrt_event_destroy(e0));
    CHECK_OK(ctx, hcrt_event_destroy(e1));
    CHECK_OK(ctx, hcrt_stream_destroy(s));
    CHECK_OK(ctx, hcrt_mem_free(dev, x));
    CHECK_OK(ctx, hcrt_mem_free(dev, y));
    return best;
}

static void test_events(hcrt_context_t *ctx, hcrt_device_t *host, hcrt_device_t *d0)
{
    /* A 32 MiB copy between two events takes measurable time. */
    const size_t n = 32u << 20;
    char *h = malloc(n);
    memset(h, 3, n);
    void *d = NULL;
    hcrt_stream_t *s = NULL;
    hcrt_event_t *e0 = NULL, *e1 = NULL, *never = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(d0, n, &d));
    REQUIRE_OK(ctx, hcrt_stream_create(d0, &s));
    REQUIRE_OK(ctx, hcrt_event_create(d0, &e0));
    REQUIRE_OK(ctx, hcrt_event_create(d0, &e1));
    REQUIRE_OK(ctx, hcrt_event_create(d0, &never));
    CHECK_OK(ctx, hcrt_memcpy(d0, d, host, h, n)); /* first touch outside the timed region */
    CHECK_OK(ctx, hcrt_event_record(e0, s));
    CHECK_OK(ctx, hcrt_memcpy_async(d0, d, host, h, n, s));
    CHECK_OK(ctx, hcrt_event_record(e1, s));
    CHECK_OK(ctx, hcrt_stream_sync(s));
    bool done = false;
    CHECK_OK(ctx, hcrt_event_query(e1, &done));
    CHECK(done);
    float ms = 0;
    CHECK_OK(ctx, hcrt_event_elapsed(e0, e1, &ms));
    CHECK_MSG(ms > 0.01f, "a 32 MiB copy took %g ms between events", (double)ms);
    /* An event recorded "now" (no stream) completes at once. */
    CHECK_OK(ctx, hcrt_event_record(never, NULL));
    CHECK_OK(ctx, hcrt_event_sync(never));
    CHECK_OK(ctx, hcrt_event_destroy(never));
    /* Elapsed with a never-recorded event is a state error, not garbage. */
    CHECK_OK(ctx, hcrt_event_create(d0, &never));
    CHECK_STATUS(ctx, hcrt_event_elapsed(e0, never, &ms), HCRT_ERR_STATE);
    CHECK_OK(ctx, hcrt_event_destroy(never));
    CHECK_OK(ctx, hcrt_event_destroy(e0));
    CHECK_OK(ctx, hcrt_event_destroy(e1));
    CHECK_OK(ctx, hcrt_stream_destroy(s));
    CHECK_OK(ctx, hcrt_mem_free(d0, d));
    free(h);
}

/* ---- kernels -------------------------------------------------------------------------------------- */

/*
 * min/max of +0 and -0: the host kernels keep dst, but the ABI does not pin which zero a device returns
 * (CUDA's fminf may give either), so any zero is accepted when both operands are zeros.
 */
static bool zero_tie(const void *a, const void *b, const void *r, size_t i, hcrt_dtype_t t, hcrt_op_t op)
{
    if (!is_float(t) || (op != HCRT_OP_MIN && op != HCRT_OP_MAX))
        return false;
    return get_float(a, i, t) == 0 && get_float(b, i, t) == 0 && get_float(r, i, t) == 0;
}

static void test_kernels(hcrt_context_t *ctx, hcrt_device_t *host, hcrt_device_t *d0)
{
    const size_t n = 1031;
    hcrt_stream_t *s = NULL;
    REQUIRE_OK(ctx, hcrt_stream_create(d0, &s));
    for (size_t ti = 0; ti < HCRT_DTYPE_COUNT; ti++) {
        const hcrt_dtype_t t = all_dtypes[ti];
        const size_t bytes = n * esize(t);
        char *a = malloc(bytes), *b = malloc(bytes), *r = malloc(bytes);
        void *da = NULL, *db = NULL;
        REQUIRE_OK(ctx, hcrt_mem_alloc(d0, bytes, &da));
        REQUIRE_OK(ctx, hcrt_mem_alloc(d0, bytes, &db));
        for (int op = 0; op < HCRT_OP_COUNT; op++) {
            for (size_t i = 0; i < n; i++) {
                put_bits(a, i, t, random_elem(t));
                put_bits(b, i, t, random_elem(t));
            }
            CHECK_OK(ctx, hcrt_memcpy(d0, da, host, a, bytes));
            CHECK_OK(ctx, hcrt_memcpy(d0, db, host, b, bytes));
            /* odd ops run synchronously, even ones on the stream */
            hcrt_stream_t *use = (op & 1) ? NULL : s;
            CHECK_OK(ctx, hcrt_reduce(d0, da, db, n, t, (hcrt_op_t)op, use));
            if (use)
                CHECK_OK(ctx, hcrt_stream_sync(use));
            CHECK_OK(ctx, hcrt_memcpy(host, r, d0, da, bytes));
            int bad = 0;
            for (size_t i = 0; i < n && bad < 3; i++) {
                const uint64_t want = ref_op(get_bits(a, i, t), get_bits(b, i, t), t, (hcrt_op_t)op);
                if (!same(get_bits(r, i, t), want, t) && !zero_tie(a, b, r, i, t, (hcrt_op_t)op)) {
                    bad++;
                    CHECK_MSG(0, "%s reduce %s %s i=%zu: got %llx want %llx", backend, dtype_names[t], op_names[op], i,
                              (unsigned long long)get_bits(r, i, t), (unsigned long long)want);
                }
            }
        }
        /* scale by 0.5: exact in every floating type; integers truncate toward zero */
        CHECK_OK(ctx, hcrt_memcpy(d0, da, host, a, bytes));
        CHECK_OK(ctx, hcrt_scale(d0, da, n, t, 0.5, NULL));
        CHECK_OK(ctx, hcrt_memcpy(host, r, d0, da, bytes));
        int bad = 0;
        for (size_t i = 0; i < n && bad < 3; i++) {
            uint64_t want;
            if (is_float(t)) {
                const double v = get_float(a, i, t) * 0.5;
                want = isnan(v) ? UINT64_MAX : encode_float(v, t);
            } else if (is_signed_int(t)) {
                want = (uint64_t)(get_signed(a, i, t) / 2) & mask_of(t);
            } else {
                want = get_bits(a, i, t) / 2;
            }
            /* 64-bit integers go through double: only compare where that is exact */
            if (esize(t) == 8 && !is_float(t) && get_bits(a, i, t) >> 52 && ~get_bits(a, i, t) >> 52)
                continue;
            if (!same(get_bits(r, i, t), want, t)) {
                bad++;
                CHECK_MSG(0, "%s scale %s i=%zu: got %llx want %llx", backend, dtype_names[t], i,
                          (unsigned long long)get_bits(r, i, t), (unsigned long long)want);
            }
        }
        CHECK_OK(ctx, hcrt_mem_free(d0, da));
        CHECK_OK(ctx, hcrt_mem_free(d0, db));
        free(a);
        free(b);
        free(r);
    }
    CHECK_OK(ctx, hcrt_stream_destroy(s));
}

/* ---- kernels on registered host memory (host_register, reduce3) ------------------------------------ */

static void test_host_mapped(hcrt_context_t *ctx, hcrt_device_t *host, hcrt_device_t *d0)
{
    if (!hcrt_device_maps_host(d0)) {
        CHECK_MSG(0, "%s offers no host_register/reduce3 (every shipped backend must)", backend);
        return;
    }
    const size_t n = 1031, max_bytes = n * 8;
    /* One registered host block: the left operand, then the result, then a guard area. */
    unsigned char *block = aligned_alloc(4096, (4 * max_bytes + 4095) / 4096 * 4096); /* C11: a multiple */
    if (block == NULL) {
        CHECK_MSG(0, "no host memory for the test");
        return;
    }
    memset(block, 0, 4 * max_bytes);
    void *dblock = NULL;
    REQUIRE_OK(ctx, hcrt_host_register(d0, block, 4 * max_bytes, &dblock));
    hcrt_stream_t *s = NULL;
    REQUIRE_OK(ctx, hcrt_stream_create(d0, &s));
    void *db = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(d0, max_bytes, &db));
    for (size_t ti = 0; ti < HCRT_DTYPE_COUNT; ti++) {
        const hcrt_dtype_t t = all_dtypes[ti];
        const size_t bytes = n * esize(t);
        char *a = (char *)block, *r = (char *)block + max_bytes;
        void *da = dblock, *dr = (char *)dblock + max_bytes;
        char *b = malloc(bytes), *got = malloc(bytes);
        for (int op = 0; op < HCRT_OP_COUNT; op++) {
            for (size_t i = 0; i < n; i++) {
                put_bits(a, i, t, random_elem(t));
                put_bits(b, i, t, random_elem(t));
            }
            CHECK_OK(ctx, hcrt_memcpy(d0, db, host, b, bytes));
            /* host operand on the left, result to host; then device operand on the left, result to device */
            for (int form = 0; form < 2; form++) {
                hcrt_stream_t *use = ((op + form) & 1) ? NULL : s;
                if (form == 0) {
                    CHECK_OK(ctx, hcrt_reduce3(d0, dr, da, db, n, t, (hcrt_op_t)op, use));
                } else {
                    CHECK_OK(ctx, hcrt_memcpy(d0, db, host, b, bytes));
                    CHECK_OK(ctx, hcrt_reduce3(d0, db, db, da, n, t, (hcrt_op_t)op, use));
                }
                if (use)
                    CHECK_OK(ctx, hcrt_stream_sync(use));
                if (form == 0)
                    memcpy(got, r, bytes);
                else
                    CHECK_OK(ctx, hcrt_memcpy(host, got, d0, db, bytes));
                const char *x = form == 0 ? a : b, *y = form == 0 ? b : a;
                int bad = 0;
                for (size_t i = 0; i < n && bad < 3; i++) {
                    const uint64_t want = ref_op(get_bits(x, i, t), get_bits(y, i, t), t, (hcrt_op_t)op);
                    if (!same(get_bits(got, i, t), want, t) && !zero_tie(x, y, got, i, t, (hcrt_op_t)op)) {
                        bad++;
                        CHECK_MSG(0, "%s reduce3 form %d %s %s i=%zu: got %llx want %llx", backend, form,
                                  dtype_names[t], op_names[op], i, (unsigned long long)get_bits(got, i, t),
                                  (unsigned long long)want);
                    }
                }
            }
        }
        free(b);
        free(got);
    }
    /* reduce and scale take registered memory too: f32, r = r + a, then r *= 0.5 */
    float *fa = (float *)block, *fr = (float *)(block + max_bytes);
    for (size_t i = 0; i < n; i++) {
        fa[i] = (float)i;
        fr[i] = 3.0f * (float)i;
    }
    CHECK_OK(ctx, hcrt_reduce(d0, (char *)dblock + max_bytes, dblock, n, HCRT_F32, HCRT_OP_SUM, s));
    CHECK_OK(ctx, hcrt_scale(d0, (char *)dblock + max_bytes, n, HCRT_F32, 0.5, s));
    CHECK_OK(ctx, hcrt_stream_sync(s));
    for (size_t i = 0; i < n; i++)
        if (fr[i] != 2.0f * (float)i) {
            CHECK_MSG(0, "%s reduce+scale on registered memory i=%zu: got %g want %g", backend, i, (double)fr[i],
                      2.0 * (double)i);
            break;
        }
    /* the guard area past what the kernels were given stays untouched */
    for (size_t i = 2 * max_bytes; i < 4 * max_bytes; i++)
        if (block[i] != 0) {
            CHECK_MSG(0, "%s: a kernel wrote byte %zu of the guard area", backend, i);
            break;
        }

    /* bad arguments: clean errors naming the argument */
    void *dp = NULL;
    char other[256];
    CHECK_STATUS(ctx, hcrt_host_register(NULL, other, sizeof(other), &dp), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_host_register(d0, NULL, sizeof(other), &dp), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_host_register(d0, other, 0, &dp), HCRT_ERR_INVALID_ARG);
    CHECK(strstr(hcrt_last_error(ctx), "bytes") != NULL);
    CHECK_STATUS(ctx, hcrt_host_register(d0, other, sizeof(other), NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_host_register(d0, block + 100, 64, &dp), HCRT_ERR_INVALID_ARG); /* overlap */
    CHECK_STATUS(ctx, hcrt_host_unregister(d0, other), HCRT_ERR_INVALID_ARG);           /* never registered */
    CHECK_STATUS(ctx, hcrt_host_unregister(d0, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_reduce3(d0, db, NULL, db, 4, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_reduce3(d0, db, db, NULL, 4, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_reduce3(d0, db, db, db, 4, (hcrt_dtype_t)42, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_reduce3(d0, db, db, db, 4, HCRT_F32, (hcrt_op_t)-1, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_OK(ctx, hcrt_reduce3(d0, db, db, db, 0, HCRT_F32, HCRT_OP_SUM, NULL)); /* count 0: nothing */
    if (is_sim) {
        /* host memory nobody registered, a range running past the registered one, sim memory as host */
        CHECK_STATUS(ctx, hcrt_reduce3(d0, db, other, db, 4, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
        CHECK(strstr(hcrt_last_error(ctx), "registered") != NULL);
        CHECK_STATUS(ctx, hcrt_reduce3(d0, (char *)dblock + 4 * max_bytes - 8, db, db, 4, HCRT_F32, HCRT_OP_SUM, NULL),
                     HCRT_ERR_INVALID_ARG);
        CHECK_STATUS(ctx, hcrt_host_register(d0, db, 64, &dp), HCRT_ERR_INVALID_ARG);
        /* registered on device 0 only */
        hcrt_device_t *d1 = NULL;
        if (hcrt_device_find(ctx, "sim", 1, &d1) == HCRT_OK)
            CHECK_STATUS(ctx, hcrt_reduce3(d1, dblock, dblock, dblock, 4, HCRT_F32, HCRT_OP_SUM, NULL),
                         HCRT_ERR_INVALID_ARG);
    }
    CHECK_OK(ctx, hcrt_host_unregister(d0, block));
    CHECK_STATUS(ctx, hcrt_host_unregister(d0, block), HCRT_ERR_INVALID_ARG); /* twice */
    if (is_sim) /* after unregistering, the device may no longer touch it */
        CHECK_STATUS(ctx, hcrt_reduce3(d0, db, dblock, db, 4, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
    /* registered again, the same block works again */
    REQUIRE_OK(ctx, hcrt_host_register(d0, block, 4 * max_bytes, &dblock));
    CHECK_OK(ctx, hcrt_reduce3(d0, dblock, dblock, db, 4, HCRT_F32, HCRT_OP_SUM, NULL));
    CHECK_OK(ctx, hcrt_host_unregister(d0, block));
    /* the host device maps its own memory trivially */
    CHECK(hcrt_device_maps_host(host));
    CHECK_OK(ctx, hcrt_mem_free(d0, db));
    CHECK_OK(ctx, hcrt_stream_destroy(s));
    free(block);
}

/* ---- bad arguments --------------------------------------------------------------------------------- */

static void test_bad_args(hcrt_context_t *ctx, hcrt_device_t *host, hcrt_device_t *d0)
{
    void *p = NULL;
    char h[64] = {0};
    CHECK_STATUS(ctx, hcrt_mem_alloc(d0, 0, &p), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_mem_alloc(d0, 64, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_mem_alloc(NULL, 64, &p), HCRT_ERR_INVALID_ARG);
    REQUIRE_OK(ctx, hcrt_mem_alloc(d0, 64, &p));
    CHECK_STATUS(ctx, hcrt_memcpy(d0, NULL, host, h, 64), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_memcpy(d0, p, host, NULL, 64), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_reduce(d0, p, p, 4, (hcrt_dtype_t)42, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_reduce(d0, p, p, 4, HCRT_F32, (hcrt_op_t)42, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_scale(d0, p, 4, (hcrt_dtype_t)-3, 2.0, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_stream_create(d0, NULL), HCRT_ERR_INVALID_ARG);
    CHECK_STATUS(ctx, hcrt_event_create(d0, NULL), HCRT_ERR_INVALID_ARG);
    /* freeing memory that this device never handed out (the vendor runtimes give their own code) */
    if (is_sim || strcmp(backend, "cpu") == 0) {
        CHECK_STATUS(ctx, hcrt_mem_free(d0, h), HCRT_ERR_INVALID_ARG);
        CHECK(strlen(hcrt_last_error(ctx)) > 0);
    }
    if (is_sim) {
        /* host memory where device memory is expected, and the reverse */
        CHECK_STATUS(ctx, hcrt_reduce(d0, h, p, 4, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
        CHECK_STATUS(ctx, hcrt_memset(d0, h, 0, 16), HCRT_ERR_INVALID_ARG);
        CHECK_STATUS(ctx, hcrt_memcpy(host, p, d0, p, 16), HCRT_ERR_INVALID_ARG); /* dst is not host memory */
        /* a range running past the end of its allocation */
        CHECK_STATUS(ctx, hcrt_memcpy(d0, (char *)p + 60, host, h, 8), HCRT_ERR_INVALID_ARG);
        CHECK_STATUS(ctx, hcrt_reduce(d0, p, p, 17, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_INVALID_ARG);
        CHECK(strstr(hcrt_last_error(ctx), "which has 64 bytes") != NULL);
        /* memory of sim device 0 used on sim device 1 */
        hcrt_device_t *d1 = NULL;
        if (hcrt_device_find(ctx, "sim", 1, &d1) == HCRT_OK) {
            CHECK_STATUS(ctx, hcrt_memset(d1, p, 0, 16), HCRT_ERR_INVALID_ARG);
            CHECK_STATUS(ctx, hcrt_mem_free(d1, p), HCRT_ERR_INVALID_ARG);
        }
        /* an interior pointer is not an allocation */
        CHECK_STATUS(ctx, hcrt_mem_free(d0, (char *)p + 16), HCRT_ERR_INVALID_ARG);
    }
    CHECK_OK(ctx, hcrt_mem_free(d0, p));
    if (is_sim || strcmp(backend, "cpu") == 0)
        CHECK_STATUS(ctx, hcrt_mem_free(d0, p), HCRT_ERR_INVALID_ARG); /* double free */
    CHECK_OK(ctx, hcrt_mem_free(d0, NULL));
}

/* ---- sim only: speed, capacity, faults ------------------------------------------------------------ */

static void test_sim_speed(void)
{
    hcrt_context_t *fast = open_ctx_with("HCRT_SIM_SPEED", "1");
    hcrt_context_t *slow = open_ctx_with("HCRT_SIM_SPEED", "0.25");
    hcrt_device_t *df = NULL, *ds = NULL;
    REQUIRE_OK(fast, hcrt_device_find(fast, "sim", 0, &df));
    REQUIRE_OK(slow, hcrt_device_find(slow, "sim", 0, &ds));
    hcrt_device_props_t pr = {.struct_size = sizeof(pr)};
    CHECK_OK(slow, hcrt_device_get_props(ds, &pr));
    CHECK(pr.speed == 0.25);
    /* The slow device stretches each op to 4x its own duration, whatever the load; what a loaded
     * machine can do is deschedule the fast device's runs. So the two take turns, five rounds of each
     * (of three reductions), and the fastest run of each is compared: a burst of load then hits both
     * sides, and one quiet moment in five rounds gives the fast side its true time. */
    float tf = -1, ts = -1;
    for (int round = 0; round < 5; round++) {
        const float f = time_reduce(fast, df), sl = time_reduce(slow, ds);
        tf = tf < 0 || f < tf ? f : tf;
        ts = ts < 0 || sl < ts ? sl : ts;
    }
    fprintf(stderr, "sim reduce of 16 MiB: %.3f ms at speed 1, %.3f ms at speed 0.25\n", (double)tf, (double)ts);
    CHECK_MSG(tf > 0 && ts > 1.5f * tf, "speed 0.25 took %g ms, speed 1 took %g ms", (double)ts, (double)tf);
    CHECK_OK(NULL, hcrt_finalize(fast));
    CHECK_OK(NULL, hcrt_finalize(slow));
}

static void test_sim_oom(void)
{
    hcrt_context_t *ctx = open_ctx_with("HCRT_SIM_MEMORY", "1M");
    hcrt_device_t *d = NULL;
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &d));
    hcrt_device_props_t pr = {.struct_size = sizeof(pr)};
    CHECK_OK(ctx, hcrt_device_get_props(d, &pr));
    CHECK(pr.total_memory == 1u << 20);
    void *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(ctx, hcrt_mem_alloc(d, 600 << 10, &a));
    CHECK_STATUS(ctx, hcrt_mem_alloc(d, 600 << 10, &b), HCRT_ERR_DEVICE_OOM);
    CHECK_MSG(strstr(hcrt_last_error(ctx), "requested 614400") && strstr(hcrt_last_error(ctx), "free"),
              "OOM message: %s", hcrt_last_error(ctx));
    CHECK_STATUS(ctx, hcrt_mem_alloc(d, 2 << 20, &c), HCRT_ERR_DEVICE_OOM);
    CHECK_OK(ctx, hcrt_mem_free(d, a));
    CHECK_OK(ctx, hcrt_mem_alloc(d, 600 << 10, &b));
    CHECK_OK(ctx, hcrt_mem_alloc(d, 400 << 10, &c)); /* what is left fits exactly */
    CHECK_OK(ctx, hcrt_mem_free(d, b));
    CHECK_OK(ctx, hcrt_mem_free(d, c));
    /* after freeing everything, the whole capacity is one block again */
    CHECK_OK(ctx, hcrt_mem_alloc(d, 1 << 20, &a));
    /* finalize with work still queued, a stream, an event and an allocation left behind: the backend
     * drains and frees its side of them (no hang, no crash, no use after free under ASAN) */
    hcrt_stream_t *s = NULL;
    hcrt_event_t *e = NULL;
    CHECK_OK(ctx, hcrt_stream_create(d, &s));
    CHECK_OK(ctx, hcrt_event_create(d, &e));
    for (int i = 0; i < 8; i++)
        CHECK_OK(ctx, hcrt_reduce(d, a, (char *)a + (512 << 10), 128 << 10, HCRT_F32, HCRT_OP_SUM, s));
    CHECK_OK(ctx, hcrt_event_record(e, s));
    CHECK_OK(NULL, hcrt_finalize(ctx));
}

static void test_sim_faults(void)
{
    char h[256] = {0};
    void *p = NULL, *q = NULL;
    hcrt_device_t *d = NULL, *d1 = NULL, *host = NULL;

    /* alloc_fail=2: only the second allocation fails */
    hcrt_context_t *ctx = open_ctx_with("HCRT_SIM_FAULT", "alloc_fail=2");
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &d));
    CHECK_OK(ctx, hcrt_mem_alloc(d, 256, &p));
    CHECK_STATUS(ctx, hcrt_mem_alloc(d, 256, &q), HCRT_ERR_BACKEND);
    CHECK(strstr(hcrt_last_error(ctx), "injected allocation failure") != NULL);
    CHECK_OK(ctx, hcrt_mem_alloc(d, 256, &q));
    CHECK_OK(ctx, hcrt_device_check_health(d));
    CHECK_OK(ctx, hcrt_mem_free(d, p));
    CHECK_OK(ctx, hcrt_mem_free(d, q));
    CHECK_OK(NULL, hcrt_finalize(ctx));

    /* register_fail=2: the second registration is refused as a vendor refuses to pin (the range is not
     * recorded, so the same range registers on the next try); the device stays healthy */
    ctx = open_ctx_with("HCRT_SIM_FAULT", "register_fail=2");
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &d));
    void *m1 = NULL, *m2 = NULL;
    CHECK_OK(ctx, hcrt_host_register(d, h, 64, &m1));
    CHECK_STATUS(ctx, hcrt_host_register(d, h + 128, 64, &m2), HCRT_ERR_BACKEND);
    CHECK(strstr(hcrt_last_error(ctx), "injected refusal to pin") != NULL);
    CHECK(m2 == NULL);
    CHECK_OK(ctx, hcrt_host_register(d, h + 128, 64, &m2));
    CHECK_OK(ctx, hcrt_device_check_health(d));
    CHECK_OK(ctx, hcrt_host_unregister(d, h));
    CHECK_OK(ctx, hcrt_host_unregister(d, h + 128));
    CHECK_OK(NULL, hcrt_finalize(ctx));

    /* copy_fail=2 on device 1 only; an async copy fails at the stream's sync */
    ctx = open_ctx_with("HCRT_SIM_FAULT", "copy_fail=2,dev=1");
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &d));
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 1, &d1));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    REQUIRE_OK(ctx, hcrt_mem_alloc(d, 256, &p));
    REQUIRE_OK(ctx, hcrt_mem_alloc(d1, 256, &q));
    for (int i = 0; i < 3; i++)
        CHECK_OK(ctx, hcrt_memcpy(d, p, host, h, 256));
    CHECK_OK(ctx, hcrt_memcpy(d1, q, host, h, 256));
    CHECK_STATUS(ctx, hcrt_memcpy(d1, q, host, h, 256), HCRT_ERR_BACKEND);
    CHECK(strstr(hcrt_last_error(ctx), "injected copy failure") != NULL);
    CHECK_OK(ctx, hcrt_memcpy(d1, q, host, h, 256));
    CHECK_OK(NULL, hcrt_finalize(ctx));

    ctx = open_ctx_with("HCRT_SIM_FAULT", "copy_fail=1");
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &d));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    REQUIRE_OK(ctx, hcrt_mem_alloc(d, 256, &p));
    hcrt_stream_t *s = NULL;
    REQUIRE_OK(ctx, hcrt_stream_create(d, &s));
    CHECK_OK(ctx, hcrt_memcpy_async(d, p, host, h, 256, s));
    CHECK_STATUS(ctx, hcrt_stream_sync(s), HCRT_ERR_BACKEND);
    CHECK_OK(ctx, hcrt_memcpy_async(d, p, host, h, 256, s));
    CHECK_OK(ctx, hcrt_stream_sync(s)); /* the error was reported once */
    CHECK_OK(ctx, hcrt_stream_destroy(s));
    CHECK_OK(NULL, hcrt_finalize(ctx));

    /* lost_after=3 on device 0: three ops run, the fourth and everything after fail; device 1 is fine */
    ctx = open_ctx_with("HCRT_SIM_FAULT", "lost_after=3,dev=0");
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 0, &d));
    REQUIRE_OK(ctx, hcrt_device_find(ctx, "sim", 1, &d1));
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    CHECK_OK(ctx, hcrt_mem_alloc(d, 256, &p));      /* op 1 */
    CHECK_OK(ctx, hcrt_memcpy(d, p, host, h, 256)); /* op 2 */
    CHECK_OK(ctx, hcrt_memset(d, p, 0, 256));       /* op 3 */
    CHECK_OK(ctx, hcrt_device_check_health(d));
    CHECK_STATUS(ctx, hcrt_reduce(d, p, p, 8, HCRT_F32, HCRT_OP_SUM, NULL), HCRT_ERR_DEVICE_LOST);
    CHECK_STATUS(ctx, hcrt_memcpy(host, h, d, p, 256), HCRT_ERR_DEVICE_LOST);
    CHECK_STATUS(ctx, hcrt_mem_alloc(d, 256, &q), HCRT_ERR_DEVICE_LOST);
    CHECK_STATUS(ctx, hcrt_device_check_health(d), HCRT_ERR_DEVICE_LOST);
    CHECK(strstr(hcrt_last_error(ctx), "lost") != NULL);
    CHECK_OK(ctx, hcrt_device_check_health(d1));
    CHECK_OK(ctx, hcrt_mem_alloc(d1, 256, &q));
    CHECK_OK(ctx, hcrt_mem_free(d1, q));
    CHECK_OK(NULL, hcrt_finalize(ctx));

    /* a malformed spec: the sim backend refuses to start and says why; the context still works */
    ctx = open_ctx_with("HCRT_SIM_FAULT", "alloc_fail=2,bogus=1");
    int nb = 0;
    bool seen = false;
    CHECK_OK(ctx, hcrt_backend_count(ctx, &nb));
    for (int i = 0; i < nb; i++) {
        hcrt_backend_info_t info = {.struct_size = sizeof(info)};
        CHECK_OK(ctx, hcrt_backend_get_info(ctx, i, &info));
        if (strcmp(info.name, "sim") != 0)
            continue;
        seen = true;
        CHECK(info.status == HCRT_BACKEND_BROKEN);
        CHECK_MSG(strstr(info.reason, "HCRT_SIM_FAULT") && strstr(info.reason, "bogus") &&
                      strstr(info.reason, "ERR_CONFIG"),
                  "reason: %s", info.reason);
    }
    CHECK(seen);
    CHECK_STATUS(ctx, hcrt_device_find(ctx, "sim", 0, &d), HCRT_ERR_NOT_FOUND);
    CHECK_OK(NULL, hcrt_finalize(ctx));
}

int main(int argc, char **argv)
{
    backend = argc > 1 ? argv[1] : "cpu";
    is_sim = strcmp(backend, "sim") == 0;
    hcrt_context_t *ctx = open_ctx();
    hcrt_device_t *d0 = NULL, *host = NULL;
    if (hcrt_device_find(ctx, backend, 0, &d0) != HCRT_OK) {
        const bool gpu = strcmp(backend, "cuda") == 0 || strcmp(backend, "hip") == 0;
        if (gpu)
            TEST_SKIP("backend %s has no device here: %s", backend, hcrt_last_error(ctx));
        fprintf(stderr, "FATAL: backend %s has no device: %s\n", backend, hcrt_last_error(ctx));
        return 1;
    }
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host));
    test_props(d0);
    test_copies(ctx, host, d0);
    test_stream_chain(ctx, host, d0);
    test_events(ctx, host, d0);
    test_kernels(ctx, host, d0);
    test_host_mapped(ctx, host, d0);
    test_bad_args(ctx, host, d0);
    CHECK_OK(NULL, hcrt_finalize(ctx));
    if (is_sim) {
        test_sim_speed();
        test_sim_oom();
        test_sim_faults();
    }
    TEST_DONE();
}
