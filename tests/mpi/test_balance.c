/*
 * tests/mpi/test_balance.c - the balancer, sample-weighted gradients, exact mode and the trace under
 * mpirun (issue 8, items 3, 4, 5, 7).
 *
 * Modes (argv[1]):
 *   agree     online, static and off balancers fed with synthetic throughputs (rank r runs at 1/(r+1),
 *             rank 0 halves its speed at step 30): every rank holds the same plan after every step, the
 *             plan is proportional and whole, rank 0 loses share within 10 steps of its slowdown; caps;
 *             restoring a plan, the same on every rank or not
 *   prior     the initial plan follows the devices' speeds (an MPMD job of sim ranks at 1, 0.5, 0.25)
 *   grads     a linear model's gradient summed over uneven shares (1, 2, 5 micro-batches on 3 ranks),
 *             reduced with the sample count, equals the one-rank gradient over the same global batch
 *             within a stated bound; averaging per rank (HCRT_OP_AVG) does not
 *   exact     exact sums of the same micro-batch gradients over three different splits and addition
 *             orders, and on each rank alone, are bitwise identical, and equal the float64 sum rounded
 *             once where that is exact; rank 0 prints a hash that must be the same at every world size
 *             (tests/mpi/test_exact_worlds.sh); a value outside the window fails on every rank, naming it
 *   devfault  rank 1's sim device fails the copy of its gradients (HCRT_SIM_FAULT=copy_fail=2, an MPMD
 *             job): hcrt_exact_add fails there naming the tensor and device, the accumulator starts over,
 *             and the next reduction gives every rank the sum of the other ranks' gradients
 *   badargs   every new public call refuses bad arguments naming them; mismatched collective
 *             arguments fail on every rank
 *   tracejob  collectives, a checkpoint, a restore, balancer decisions, an exact reduction and
 *             application events, for tests/mpi/test_trace.py to find in the HCRT_TRACE file
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

static hcrt_context_t *ctx;
static hcrt_comm_t *comm;
static int rank, nranks;
static hcrt_device_t *host_dev, *sim_dev; /* sim_dev NULL when the sim plugin is absent */

/* ---- deterministic data ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* A value in [-1, 1) from (a, b). */
static double unit(uint64_t a, uint64_t b)
{
    return (double)(mix(a * 0x9E3779B97F4A7C15ull + b) >> 11) * 0x1p-52 - 1;
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static bool all_ranks_equal_i64(const int64_t *v, int n)
{
    int64_t *lo = malloc((size_t)n * 2 * sizeof(int64_t));
    for (int i = 0; i < n; i++) {
        lo[i] = v[i];
        lo[n + i] = -v[i];
    }
    REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, lo, 2 * (size_t)n, HCRT_I64, HCRT_OP_MAX, NULL));
    bool same = true;
    for (int i = 0; i < n; i++)
        same &= lo[i] == -lo[n + i] && lo[i] == v[i];
    free(lo);
    return same;
}

/* Everyone agrees that every rank saw `ok`. */
static bool everyone(bool ok)
{
    int v = ok;
    REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, &v, 1, HCRT_I32, HCRT_OP_MIN, NULL));
    return v != 0;
}

/* ---- agree ------------------------------------------------------------------------------------- */

static void check_plan(hcrt_balancer_t *b, int64_t total, const char *what, int64_t *shares)
{
    REQUIRE_OK(ctx, hcrt_balancer_shares(b, shares, (size_t)nranks));
    int64_t sum = 0;
    for (int r = 0; r < nranks; r++) {
        CHECK_MSG(shares[r] >= 1, "%s: rank %d has %lld micro-batches", what, r, (long long)shares[r]);
        sum += shares[r];
    }
    CHECK_MSG(sum == total, "%s: shares sum to %lld, not %lld", what, (long long)sum, (long long)total);
    CHECK_MSG(all_ranks_equal_i64(shares, nranks), "%s: ranks hold different plans", what);
    int64_t first = -1, count = -1, want_first = 0;
    REQUIRE_OK(ctx, hcrt_balancer_assignment(b, &first, &count));
    for (int r = 0; r < rank; r++)
        want_first += shares[r];
    CHECK_MSG(first == want_first && count == shares[rank], "%s: assignment [%lld, +%lld), plan says [%lld, +%lld)",
              what, (long long)first, (long long)count, (long long)want_first, (long long)shares[rank]);
}

static double speed_of(int r, int step)
{
    return 1000.0 / (r + 1) * (r == 0 && step >= 30 ? 0.5 : 1.0);
}

static void run_agree(void)
{
    const int64_t M = 12 * (int64_t)nranks, m = 16;
    int64_t shares[64] = {0}, before[64] = {0};
    /* Online. */
    hcrt_balance_params_t p;
    hcrt_balance_params_init(&p);
    p.micro_batches = M;
    p.micro_batch_size = m;
    p.use_device_speed = false; /* start even: the measurements must move it */
    hcrt_balancer_t *b = NULL;
    REQUIRE_OK(ctx, hcrt_balancer_create(comm, &p, &b));
    check_plan(b, M, "online, initial", shares);
    int changed_at = -1;
    for (int step = 1; step <= 45; step++) {
        int64_t first, count;
        REQUIRE_OK(ctx, hcrt_balancer_assignment(b, &first, &count));
        /* Each micro-batch takes m / speed seconds, with +-5% deterministic jitter. */
        for (int64_t k = 0; k < count; k++)
            CHECK_OK(ctx,
                     hcrt_balancer_record(
                         b, m, m / speed_of(rank, step) * (1 + 0.05 * unit((uint64_t)step, (uint64_t)(first + k)))));
        if (step == 29)
            memcpy(before, shares, sizeof(shares));
        bool changed = false;
        REQUIRE_OK(ctx, hcrt_balancer_step(b, &changed));
        char what[64];
        snprintf(what, sizeof(what), "online, step %d", step);
        check_plan(b, M, what, shares);
        if (changed && step >= 30 && changed_at < 0 && nranks > 1)
            changed_at = step;
        if (step == 25 && nranks > 1) {
            /* Converged: rank 0 (speed 1) holds about as much as rank r times (r + 1). */
            double wsum = 0;
            for (int r = 0; r < nranks; r++)
                wsum += 1.0 / (r + 1);
            for (int r = 0; r < nranks; r++) {
                double q = (double)M / (r + 1) / wsum;
                CHECK_MSG(fabs((double)shares[r] - q) <= 1.5, "step 25: rank %d has %lld, proportional %.2f", r,
                          (long long)shares[r], q);
            }
        }
    }
    if (nranks > 1) {
        CHECK_MSG(changed_at >= 30 && changed_at <= 39, "rank 0 slowed down at step 30; first change at step %d",
                  changed_at);
        CHECK_MSG(shares[0] < before[0], "rank 0 still has %lld micro-batches (had %lld)", (long long)shares[0],
                  (long long)before[0]);
    }
    hcrt_balance_decision_t d = {.struct_size = sizeof(d)};
    CHECK_OK(ctx, hcrt_balancer_last_decision(b, &d));
    CHECK(d.text != NULL && strncmp(d.text, "step ", 5) == 0);
    double rates[64];
    CHECK_OK(ctx, hcrt_balancer_rates(b, rates, (size_t)nranks));
    CHECK(rates[rank] > 0);
    /* Restoring a plan: the same everywhere works; different plans fail on every rank. */
    int64_t plan[64];
    for (int r = 0; r < nranks; r++)
        plan[r] = M / nranks;
    CHECK_OK(ctx, hcrt_balancer_set_shares(b, plan, (size_t)nranks));
    check_plan(b, M, "restored", shares);
    CHECK(shares[0] == M / nranks);
    CHECK_OK(ctx, hcrt_balancer_last_decision(b, &d));
    CHECK(d.reason == HCRT_BALANCE_RESTORE);
    if (nranks > 1) {
        if (rank == 1) {
            plan[0]++;
            plan[1]--;
        }
        CHECK_STATUS(ctx, hcrt_balancer_set_shares(b, plan, (size_t)nranks), HCRT_ERR_MISMATCH);
        CHECK(strstr(hcrt_last_error(ctx), "different") != NULL);
    }
    hcrt_balancer_destroy(b);

    /* Static: exactly one re-plan, after warm-up + interval steps; off: never. */
    for (int mode = 0; mode < 2; mode++) {
        hcrt_balance_params_init(&p);
        p.micro_batches = M;
        p.micro_batch_size = m;
        p.mode = mode == 0 ? HCRT_BALANCE_STATIC : HCRT_BALANCE_OFF;
        p.use_device_speed = false;
        REQUIRE_OK(ctx, hcrt_balancer_create(comm, &p, &b));
        int changes = 0;
        for (int step = 1; step <= 40; step++) {
            int64_t count;
            hcrt_balancer_assignment(b, NULL, &count);
            CHECK_OK(ctx, hcrt_balancer_record(b, m * count, (double)(m * count) / speed_of(rank, step)));
            bool changed;
            REQUIRE_OK(ctx, hcrt_balancer_step(b, &changed));
            changes += changed;
            check_plan(b, M, mode == 0 ? "static" : "off", shares);
        }
        if (mode == 0)
            CHECK_MSG(changes == (nranks > 1), "static mode changed the plan %d times", changes);
        else
            CHECK_MSG(changes == 0 && shares[0] == M / nranks, "off mode changed the plan %d times", changes);
        hcrt_balancer_destroy(b);
    }

    /* Caps: rank 0 holds at most 3 micro-batches whatever its speed. */
    hcrt_balance_params_init(&p);
    p.micro_batches = M;
    p.micro_batch_size = m;
    p.max_micro_batches = rank == 0 && nranks > 1 ? 3 : 0;
    p.use_device_speed = false;
    REQUIRE_OK(ctx, hcrt_balancer_create(comm, &p, &b));
    for (int step = 1; step <= 12; step++) {
        CHECK_OK(ctx, hcrt_balancer_record(b, m, m / speed_of(rank, 1)));
        REQUIRE_OK(ctx, hcrt_balancer_step(b, NULL));
        check_plan(b, M, "capped", shares);
        CHECK_MSG(shares[0] <= 3 || nranks == 1, "rank 0 is capped at 3 but has %lld", (long long)shares[0]);
    }
    hcrt_balancer_destroy(b);
    /* A cap from memory: bytes_per_sample beyond the device's free memory leaves one micro-batch. */
    hcrt_balance_params_init(&p);
    p.micro_batches = M;
    p.micro_batch_size = m;
    p.bytes_per_sample = rank == nranks - 1 && nranks > 1 ? ((uint64_t)1 << 50) : 0;
    REQUIRE_OK(ctx, hcrt_balancer_create(comm, &p, &b));
    check_plan(b, M, "memory cap", shares);
    CHECK(nranks == 1 || shares[nranks - 1] == 1);
    hcrt_balancer_destroy(b);
}

static void run_prior(void)
{
    /* MPMD: ranks run sim devices at speeds 1, 0.5, 0.25 (HCRT_SIM_SPEED); 28 micro-batches. */
    hcrt_balance_params_t p;
    hcrt_balance_params_init(&p);
    p.micro_batches = 28;
    p.micro_batch_size = 8;
    hcrt_balancer_t *b;
    REQUIRE_OK(ctx, hcrt_balancer_create(comm, &p, &b));
    int64_t shares[64];
    check_plan(b, 28, "prior", shares);
    CHECK_MSG(nranks != 3 || (shares[0] == 16 && shares[1] == 8 && shares[2] == 4),
              "initial plan %lld,%lld,%lld; the devices' speeds give 16,8,4", (long long)shares[0],
              (long long)shares[1], (long long)shares[2]);
    hcrt_balance_decision_t d = {.struct_size = sizeof(d)};
    CHECK_OK(ctx, hcrt_balancer_last_decision(b, &d));
    CHECK(d.reason == HCRT_BALANCE_INITIAL && d.step == 0);
    hcrt_balancer_destroy(b);
}

/* ---- grads ------------------------------------------------------------------------------------- */

#define D 37

/* Sample s of the global batch: features x[D] and target t. The model's weights are w_j = cos(j). */
static double feature(int64_t s, int j)
{
    return unit((uint64_t)s, (uint64_t)j + 1);
}
static double target(int64_t s)
{
    return 3 * unit((uint64_t)s, 0);
}
static double residual(int64_t s)
{
    double y = 0;
    for (int j = 0; j < D; j++)
        y += cos(j) * feature(s, j);
    return y - target(s);
}

static void run_grads(void)
{
    const int64_t m = 4;
    int64_t shares[64];
    /* Uneven: 1, 2, 5 micro-batches on three ranks; r + 1 on other world sizes. */
    for (int r = 0; r < nranks; r++)
        shares[r] = nranks == 3 ? (int64_t[]){1, 2, 5}[r] : r + 1;
    int64_t M = 0, first = 0;
    for (int r = 0; r < nranks; r++) {
        if (r < rank)
            first += shares[r];
        M += shares[r];
    }
    const int64_t N = M * m, s0 = first * m, s1 = (first + shares[rank]) * m;
    /* This rank's sums over its samples: f32 (accumulated in f32, on its device) and f64 (host). */
    float g32[D] = {0};
    double g64[D] = {0};
    for (int64_t s = s0; s < s1; s++) {
        double r = residual(s);
        for (int j = 0; j < D; j++) {
            g32[j] += (float)(r * feature(s, j));
            g64[j] += r * feature(s, j);
        }
    }
    hcrt_device_t *dev = rank % 2 && sim_dev ? sim_dev : host_dev;
    void *d32;
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, sizeof(g32), &d32));
    REQUIRE_OK(ctx, hcrt_memcpy(dev, d32, host_dev, g32, sizeof(g32)));
    hcrt_buffer_t bufs[2] = {{dev, d32, D, HCRT_F32}, {NULL, g64, D, HCRT_F64}};
    int64_t total = -1;
    REQUIRE_OK(ctx, hcrt_comm_allreduce_grads(comm, bufs, 2, s1 - s0, &total, HCRT_GRADS_MEAN));
    CHECK_MSG(total == N, "global samples %lld, want %lld", (long long)total, (long long)N);
    REQUIRE_OK(ctx, hcrt_memcpy(host_dev, g32, dev, d32, sizeof(g32)));
    /* The one-rank gradient over the same N samples, in float64. Bound on the f32 result's error:
     * every partial sum of f32 terms is off by at most (terms - 1) * 2^-24 * sum |term| (plus the
     * rounding of each term and of the division), so 2 N 2^-24 sum |term| / N covers it; the f64 one
     * likewise with 2^-53. */
    int bad = 0;
    for (int j = 0; j < D; j++) {
        double ref = 0, mag = 0;
        for (int64_t s = 0; s < N; s++) {
            double term = residual(s) * feature(s, j);
            ref += term;
            mag += fabs(term);
        }
        ref /= (double)N;
        double tol32 = 2.0 * (double)N * 0x1p-24 * mag / (double)N + 1e-30;
        double tol64 = 2.0 * (double)N * 0x1p-53 * mag / (double)N + 1e-300;
        if (fabs(g32[j] - ref) > tol32 || fabs(g64[j] - ref) > tol64) {
            if (bad++ < 5)
                fprintf(stderr,
                        "FAIL rank %d element %d: f32 %.9g f64 %.17g, one-rank %.17g (tolerance %.3g, "
                        "%.3g)\n",
                        rank, j, g32[j], g64[j], ref, tol32, tol64);
        }
    }
    CHECK_MSG(bad == 0, "%d gradient elements differ from the one-rank run", bad);
    /* Averaging per rank weighs ranks, not samples: with uneven shares it is a different gradient. */
    if (nranks == 3) {
        double mean[D] = {0}, worst = 0;
        for (int64_t s = s0; s < s1; s++)
            for (int j = 0; j < D; j++)
                mean[j] += residual(s) * feature(s, j) / (double)(s1 - s0);
        REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, mean, D, HCRT_F64, HCRT_OP_AVG, NULL));
        for (int j = 0; j < D; j++)
            worst = fmax(worst, fabs(mean[j] - g64[j]));
        CHECK_MSG(worst > 1e-3, "per-rank averaging happened to agree (%.3g): the demonstration needs new data", worst);
    }
    hcrt_mem_free(dev, d32);
}

/* ---- exact ------------------------------------------------------------------------------------- */

#define PA 3001 /* "w1": general f32 values over 50 binades, on a sim device on odd ranks */
#define PB 517  /* "b1": values whose float64 sums are exact, on the host */
#define MB 12   /* global micro-batches */

static float grad_a(int k, size_t i)
{
    double u = unit((uint64_t)k + 100, i);
    int e = (int)(mix((uint64_t)k * 7919 + i) % 50) - 40;
    return (float)ldexp(u, e);
}
/* Multiples of 2^-30 below 2^4 with 24 significant bits at most: 12 of them sum exactly in f64. */
static float grad_b(int k, size_t i)
{
    int64_t q = (int64_t)(mix((uint64_t)k * 104729 + i) >> 30) - ((int64_t)1 << 33);
    return (float)ldexp((double)((q >> 10) * 1024), -30);
}

typedef struct exact_setup {
    hcrt_device_t *dev_a;
    float *a_dev, *a_host, *b;
} exact_setup_t;

/* Puts micro-batch k's gradients into the registered buffers. */
static void load_micro_batch(const exact_setup_t *e, int k)
{
    for (size_t i = 0; i < PA; i++)
        e->a_host[i] = grad_a(k, i);
    for (size_t i = 0; i < PB; i++)
        e->b[i] = grad_b(k, i);
    if (e->a_dev != e->a_host)
        REQUIRE_OK(ctx, hcrt_memcpy(e->dev_a, e->a_dev, host_dev, e->a_host, PA * sizeof(float)));
}

/* Adds this rank's micro-batches of a split (owner[k] == rank), in an order given by `order_seed`,
 * reduces, and returns the result's bits hashed (and the results in outa/outb). */
static uint64_t exact_run(hcrt_exact_t *acc, const exact_setup_t *e, const int *owner, uint64_t order_seed,
                          unsigned flags, float *outa, float *outb, int64_t *total)
{
    int mine[MB], n = 0;
    for (int k = 0; k < MB; k++)
        if (owner[k] == rank)
            mine[n++] = k;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(mix(order_seed * 31 + (uint64_t)i) % (uint64_t)(i + 1)), t = mine[i];
        mine[i] = mine[j];
        mine[j] = t;
    }
    for (int i = 0; i < n; i++) {
        load_micro_batch(e, mine[i]);
        REQUIRE_OK(ctx, hcrt_exact_add(acc));
    }
    REQUIRE_OK(ctx, hcrt_exact_allreduce(acc, 8 * (int64_t)n, total, flags));
    if (e->a_dev != e->a_host)
        REQUIRE_OK(ctx, hcrt_memcpy(host_dev, e->a_host, e->dev_a, e->a_dev, PA * sizeof(float)));
    memcpy(outa, e->a_host, PA * sizeof(float));
    memcpy(outb, e->b, PB * sizeof(float));
    return fnv(outb, PB * sizeof(float), fnv(outa, PA * sizeof(float), 1469598103934665603ull));
}

static void run_exact(void)
{
    exact_setup_t e = {.dev_a = rank % 2 && sim_dev ? sim_dev : host_dev};
    e.a_host = malloc(PA * sizeof(float));
    e.b = malloc(PB * sizeof(float));
    if (e.dev_a == host_dev)
        e.a_dev = e.a_host;
    else
        REQUIRE_OK(ctx, hcrt_mem_alloc(e.dev_a, PA * sizeof(float), (void **)&e.a_dev));
    hcrt_buffer_t bufs[2] = {{e.dev_a, e.a_dev, PA, HCRT_F32}, {NULL, e.b, PB, HCRT_F32}};
    const char *names[2] = {"w1", "b1"};
    hcrt_exact_t *acc, *solo_acc;
    REQUIRE_OK(ctx, hcrt_exact_create(comm, bufs, names, 2, NULL, &acc));
    int words = 0;
    int64_t max_adds = 0;
    CHECK_OK(ctx, hcrt_exact_info(acc, &words, &max_adds));
    CHECK(words == 2 && max_adds == 32766);

    /* Three splits of the 12 micro-batches: contiguous by 1/(r+1), round robin, all but n-1 on the
     * last rank; each rank adds its own in a shuffled order. */
    int owner[3][MB];
    for (int k = 0, r = 0, left = 0; k < MB; k++) {
        if (left == 0) {
            r = k == 0 ? 0 : r + 1 < nranks ? r + 1 : r;
            left = r + 1 < nranks ? (int)(MB / nranks) - (r % 2) : MB;
            if (left < 1)
                left = 1;
        }
        owner[0][k] = r;
        left--;
    }
    for (int k = 0; k < MB; k++) {
        owner[1][k] = k % nranks;
        owner[2][k] = k < nranks - 1 ? k : nranks - 1;
    }
    static float ra[4][PA], rb[4][PB];
    uint64_t h[4];
    int64_t total;
    for (int s = 0; s < 3; s++) {
        h[s] = exact_run(acc, &e, owner[s], (uint64_t)(s * 1000 + rank), 0, ra[s], rb[s], &total);
        CHECK_MSG(total == 8 * MB, "split %d: global samples %lld", s, (long long)total);
    }
    /* Each rank alone (a communicator of one), every micro-batch in order. */
    hcrt_comm_t *solo;
    REQUIRE_OK(ctx, hcrt_comm_split(comm, rank, 0, &solo));
    REQUIRE_OK(ctx, hcrt_exact_create(solo, bufs, names, 2, NULL, &solo_acc));
    for (int k = 0; k < MB; k++) {
        load_micro_batch(&e, k);
        REQUIRE_OK(ctx, hcrt_exact_add(solo_acc));
    }
    REQUIRE_OK(ctx, hcrt_exact_allreduce(solo_acc, 8 * MB, &total, 0));
    if (e.a_dev != e.a_host)
        REQUIRE_OK(ctx, hcrt_memcpy(host_dev, e.a_host, e.dev_a, e.a_dev, PA * sizeof(float)));
    memcpy(ra[3], e.a_host, sizeof(ra[3]));
    memcpy(rb[3], e.b, sizeof(rb[3]));
    h[3] = fnv(rb[3], sizeof(rb[3]), fnv(ra[3], sizeof(ra[3]), 1469598103934665603ull));
    for (int s = 1; s < 4; s++)
        CHECK_MSG(h[s] == h[0], "%s gives other bits than the contiguous split (%016llx vs %016llx)",
                  s == 1   ? "round robin"
                  : s == 2 ? "all on the last rank"
                           : "this rank alone",
                  (unsigned long long)h[s], (unsigned long long)h[0]);
    CHECK_MSG(all_ranks_equal_i64((const int64_t *)&h[0], 1), "ranks hold different exact sums");
    /* Float64 reference (exact for b1): the sum rounded once. */
    int bad = 0;
    for (size_t i = 0; i < PB; i++) {
        double d = 0;
        for (int k = 0; k < MB; k++)
            d += grad_b(k, i);
        if ((float)d != rb[0][i] && bad++ < 5)
            fprintf(stderr, "FAIL b1[%zu] = %a, float64 sum rounded once %a\n", i, rb[0][i], (float)d);
    }
    CHECK_MSG(bad == 0, "%d elements of b1 differ from the float64 reference", bad);
    /* w1 against a float64 sum: close (not bitwise: the f64 sum of values 50 binades apart rounds). */
    bad = 0;
    for (size_t i = 0; i < PA; i++) {
        double d = 0, mag = 0;
        for (int k = 0; k < MB; k++) {
            d += grad_a(k, i);
            mag += fabs(grad_a(k, i));
        }
        if (fabs(ra[0][i] - d) > 0x1p-24 * fabs(d) + 0x1p-52 * mag + 0x1p-64 * MB && bad++ < 5)
            fprintf(stderr, "FAIL w1[%zu] = %a, float64 sum %a\n", i, ra[0][i], d);
    }
    CHECK_MSG(bad == 0, "%d elements of w1 are far from the float64 sum", bad);
    /* The mean: the same on every rank and split too. */
    float ma[PA], mb[PB];
    uint64_t hm0 = exact_run(acc, &e, owner[0], 7, HCRT_EXACT_MEAN, ma, mb, &total);
    uint64_t hm1 = exact_run(acc, &e, owner[1], 8, HCRT_EXACT_MEAN, ma, mb, &total);
    CHECK(hm0 == hm1);
    for (size_t i = 0; i < PB; i++) {
        double d = 0;
        for (int k = 0; k < MB; k++)
            d += grad_b(k, i);
        if ((float)(d / (8 * MB)) != mb[i] && bad++ < 5)
            fprintf(stderr, "FAIL mean b1[%zu] = %a, want %a\n", i, mb[i], (float)(d / (8 * MB)));
    }
    if (rank == 0)
        printf("exact-hash %016llx\n", (unsigned long long)h[0]);

    /* A value outside the window on one rank fails the reduction on every rank, naming it; the next
     * step works again. */
    int culprit = nranks > 1 ? 1 : 0;
    load_micro_batch(&e, 0);
    if (rank == culprit)
        e.b[5] = 1e30f;
    REQUIRE_OK(ctx, hcrt_exact_add(acc));
    hcrt_status_t st = hcrt_exact_allreduce(acc, 8, NULL, 0);
    CHECK_MSG(st == HCRT_ERR_INVALID_ARG, "out of range: %s", hcrt_status_name(st));
    char want[64];
    snprintf(want, sizeof(want), "rank %d", culprit);
    CHECK_MSG(strstr(hcrt_last_error(ctx), want) && strstr(hcrt_last_error(ctx), "'b1'") &&
                  strstr(hcrt_last_error(ctx), "element 5"),
              "message: %s", hcrt_last_error(ctx));
    float again_a[PA], again_b[PB];
    CHECK(exact_run(acc, &e, owner[1], 9, 0, again_a, again_b, &total) == h[0]);

    hcrt_exact_destroy(solo_acc);
    hcrt_comm_destroy(solo);
    hcrt_exact_destroy(acc);
    if (e.a_dev != e.a_host)
        hcrt_mem_free(e.dev_a, e.a_dev);
    free(e.a_host);
    free(e.b);
}

/* ---- devfault --------------------------------------------------------------------------------- */

static void run_devfault(void)
{
    enum { N = 1000 };
    float h[N];
    hcrt_device_t *dev = sim_dev ? sim_dev : host_dev;
    void *d = NULL;
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, sizeof(h), &d));
    for (int i = 0; i < N; i++)
        h[i] = (float)(rank + 1) * 0.25f + (float)i;
    REQUIRE_OK(ctx, hcrt_memcpy(dev, d, host_dev, h, sizeof(h))); /* the sim device's copy 1 */
    hcrt_buffer_t b = {dev, d, N, HCRT_F32};
    const char *names[1] = {"g"};
    hcrt_exact_t *acc;
    REQUIRE_OK(ctx, hcrt_exact_create(comm, &b, names, 1, NULL, &acc));
    hcrt_status_t st = hcrt_exact_add(acc); /* copy 2: fails on rank 1 */
    if (rank == 1) {
        CHECK_MSG(st != HCRT_OK && strstr(hcrt_last_error(ctx), "'g'") && strstr(hcrt_last_error(ctx), "sim"),
                  "rank 1: hcrt_exact_add gave %s: %s", hcrt_status_name(st), hcrt_last_error(ctx));
    } else {
        CHECK_OK(ctx, st);
    }
    int64_t total = 0;
    REQUIRE_OK(ctx, hcrt_exact_allreduce(acc, rank == 1 ? 0 : 1, &total, 0));
    REQUIRE_OK(ctx, hcrt_memcpy(host_dev, h, dev, d, sizeof(h)));
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double want = 0;
        for (int r = 0; r < nranks; r++)
            if (r != 1)
                want += (double)((float)(r + 1) * 0.25f + (float)i);
        bad += h[i] != (float)want;
    }
    CHECK_MSG(bad == 0 && total == nranks - 1, "%d elements differ from the other ranks' sum (samples %lld)", bad,
              (long long)total);
    hcrt_exact_destroy(acc);
    hcrt_mem_free(dev, d);
}

/* ---- badargs ----------------------------------------------------------------------------------- */

/* Expects `call` to fail with `status` and a message naming `arg`. */
#define BAD(call, status, arg)                                                                                         \
    do {                                                                                                               \
        hcrt_status_t st_ = (call);                                                                                    \
        if (st_ != (status) || strstr(hcrt_last_error(ctx), (arg)) == NULL) {                                          \
            fprintf(stderr, "FAIL %s:%d: %s -> %s (%s), want %s naming '%s'\n", __FILE__, __LINE__, #call,             \
                    hcrt_status_name(st_), hcrt_last_error(ctx), hcrt_status_name(status), (arg));                     \
            test_failures_++;                                                                                          \
        }                                                                                                              \
    } while (0)
#define BADARG(call, arg) BAD(call, HCRT_ERR_INVALID_ARG, arg)

static void run_badargs(void)
{
    hcrt_balance_params_t p, q;
    hcrt_balance_params_init(&p);
    p.micro_batches = 4 * nranks;
    p.micro_batch_size = 8;
    hcrt_balancer_t *b = NULL;
    BADARG(hcrt_balancer_create(NULL, &p, &b), "comm");
    BADARG(hcrt_balancer_create(comm, NULL, &b), "params");
    BADARG(hcrt_balancer_create(comm, &p, NULL), "bal");
#define BADP(field, value, name)                                                                                       \
    do {                                                                                                               \
        q = p;                                                                                                         \
        q.field = value;                                                                                               \
        BADARG(hcrt_balancer_create(comm, &q, &b), name);                                                              \
    } while (0)
    BADP(struct_size, 0, "params->struct_size");
    BADP(micro_batch_size, 0, "params->micro_batch_size");
    BADP(micro_batches, nranks - 1, "params->micro_batches");
    BADP(micro_batches, -5, "params->micro_batches");
    BADP(mode, (hcrt_balance_mode_t)7, "params->mode");
    BADP(interval, 0, "params->interval");
    BADP(smoothing, 0, "params->smoothing");
    BADP(smoothing, 1.5, "params->smoothing");
    BADP(smoothing, NAN, "params->smoothing");
    BADP(hysteresis, 1.0, "params->hysteresis");
    BADP(hysteresis, -0.1, "params->hysteresis");
    BADP(warmup_steps, -1, "params->warmup_steps");
    BADP(max_micro_batches, -1, "params->max_micro_batches");
    BADP(bytes_per_sample, UINT64_MAX, "params->bytes_per_sample");
    CHECK(b == NULL);
    REQUIRE_OK(ctx, hcrt_balancer_create(comm, &p, &b));
    BADARG(hcrt_balancer_record(NULL, 1, 1.0), "bal");
    BADARG(hcrt_balancer_record(b, 0, 1.0), "samples");
    BADARG(hcrt_balancer_record(b, -3, 1.0), "samples");
    BADARG(hcrt_balancer_record(b, 1, 0.0), "seconds");
    BADARG(hcrt_balancer_record(b, 1, NAN), "seconds");
    BADARG(hcrt_balancer_record(b, 1, INFINITY), "seconds");
    BADARG(hcrt_balancer_step(NULL, NULL), "bal");
    int n;
    BADARG(hcrt_balancer_size(NULL, &n), "bal");
    BADARG(hcrt_balancer_size(b, NULL), "nranks");
    int64_t shares[64];
    double rates[64];
    BADARG(hcrt_balancer_shares(NULL, shares, (size_t)nranks), "bal");
    BADARG(hcrt_balancer_shares(b, NULL, (size_t)nranks), "shares");
    BADARG(hcrt_balancer_shares(b, shares, (size_t)nranks + 1), "n");
    BADARG(hcrt_balancer_assignment(NULL, NULL, NULL), "bal");
    BADARG(hcrt_balancer_rates(NULL, rates, (size_t)nranks), "bal");
    BADARG(hcrt_balancer_rates(b, NULL, (size_t)nranks), "rates");
    BADARG(hcrt_balancer_rates(b, rates, 0), "n");
    hcrt_balance_decision_t d = {.struct_size = sizeof(d)}, d0 = {0};
    BADARG(hcrt_balancer_last_decision(NULL, &d), "bal");
    BADARG(hcrt_balancer_last_decision(b, NULL), "decision");
    BADARG(hcrt_balancer_last_decision(b, &d0), "decision->struct_size");
    CHECK_OK(ctx, hcrt_balancer_shares(b, shares, (size_t)nranks));
    BADARG(hcrt_balancer_set_shares(NULL, shares, (size_t)nranks), "bal");
    BADARG(hcrt_balancer_set_shares(b, NULL, (size_t)nranks), "shares");
    BADARG(hcrt_balancer_set_shares(b, shares, (size_t)nranks + 2), "n");
    shares[0] = 0;
    BADARG(hcrt_balancer_set_shares(b, shares, (size_t)nranks), "shares[0]");
    shares[0] = 4 * nranks + 1; /* beyond the batch */
    BADARG(hcrt_balancer_set_shares(b, shares, (size_t)nranks), "shares[0]");
    if (nranks > 1) {
        shares[0] = 4 * nranks - shares[1]; /* each share fits, the sum does not */
        BADARG(hcrt_balancer_set_shares(b, shares, (size_t)nranks), "sums to");
    }
    CHECK_OK(ctx, hcrt_balancer_destroy(b));
    CHECK_OK(ctx, hcrt_balancer_destroy(NULL));
    /* Collective misuse: every rank gets the error. */
    if (nranks > 1) {
        q = p;
        q.interval = rank == 1 ? 5 : 4;
        BAD(hcrt_balancer_create(comm, &q, &b), HCRT_ERR_MISMATCH, "params->interval");
    }
    q = p;
    q.max_micro_batches = 1; /* every rank holds one: fewer than 4n */
    BAD(hcrt_balancer_create(comm, &q, &b), HCRT_ERR_DEVICE_OOM, "caps per rank");

    /* Gradients. */
    float g[4] = {0};
    int32_t gi[4] = {0};
    hcrt_buffer_t gb = {NULL, g, 4, HCRT_F32}, gbi = {NULL, gi, 4, HCRT_I32}, gbn = {NULL, NULL, 4, HCRT_F32};
    int64_t total;
    BADARG(hcrt_comm_allreduce_grads(NULL, &gb, 1, 1, &total, 0), "comm");
    BADARG(hcrt_comm_allreduce_grads(comm, NULL, 1, 1, &total, 0), "bufs");
    BADARG(hcrt_comm_allreduce_grads(comm, &gbi, 1, 1, &total, 0), "bufs[0].dtype");
    BADARG(hcrt_comm_allreduce_grads(comm, &gbn, 1, 1, &total, 0), "bufs[0].ptr");
    BADARG(hcrt_comm_allreduce_grads(comm, &gb, 1, -1, &total, 0), "local_samples");
    BADARG(hcrt_comm_allreduce_grads(comm, &gb, 1, 1, &total, 0x10), "flags");
    CHECK_OK(ctx, hcrt_comm_allreduce_grads(comm, NULL, 0, 3, &total, HCRT_GRADS_MEAN));
    CHECK(total == 3 * nranks);

    /* Exact mode. */
    hcrt_exact_t *acc = NULL;
    hcrt_exact_params_t ep, eq;
    hcrt_exact_params_init(&ep);
    const char *nm[1] = {"g"}, *nnull[1] = {NULL};
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const char *nlong[1] = {longname};
    double g64[4];
    hcrt_buffer_t eb64 = {NULL, g64, 4, HCRT_F64}, eb0 = {NULL, g, 0, HCRT_F32};
    BADARG(hcrt_exact_create(NULL, &gb, nm, 1, &ep, &acc), "comm");
    BADARG(hcrt_exact_create(comm, NULL, nm, 1, &ep, &acc), "bufs");
    BADARG(hcrt_exact_create(comm, &gb, nm, 0, &ep, &acc), "'n'");
    BADARG(hcrt_exact_create(comm, &gb, nm, 1, &ep, NULL), "acc");
    BADARG(hcrt_exact_create(comm, &gbn, nm, 1, &ep, &acc), "bufs[0]");
    BADARG(hcrt_exact_create(comm, &eb0, nm, 1, &ep, &acc), "bufs[0]");
    BADARG(hcrt_exact_create(comm, &eb64, nm, 1, &ep, &acc), "HCRT_F32");
    BADARG(hcrt_exact_create(comm, &gb, nnull, 1, &ep, &acc), "names[0]");
    BADARG(hcrt_exact_create(comm, &gb, nlong, 1, &ep, &acc), "names[0]");
    eq = ep;
    eq.struct_size = 0;
    BADARG(hcrt_exact_create(comm, &gb, nm, 1, &eq, &acc), "params->struct_size");
    eq = ep;
    eq.lsb_exponent = -200;
    BADARG(hcrt_exact_create(comm, &gb, nm, 1, &eq, &acc), "lsb_exponent");
    eq = ep;
    eq.top_exponent = 120;
    BADARG(hcrt_exact_create(comm, &gb, nm, 1, &eq, &acc), "top_exponent");
    eq = ep;
    eq.lsb_exponent = 10;
    eq.top_exponent = 20;
    BADARG(hcrt_exact_create(comm, &gb, nm, 1, &eq, &acc), "24 bits");
    CHECK(acc == NULL);
    if (nranks > 1) {
        hcrt_buffer_t mis = {NULL, g, rank == 1 ? 3 : 4, HCRT_F32};
        BAD(hcrt_exact_create(comm, &mis, nm, 1, &ep, &acc), HCRT_ERR_MISMATCH, "bufs[].count");
        eq = ep;
        eq.top_exponent = rank == 1 ? 30 : 32;
        BAD(hcrt_exact_create(comm, &gb, nm, 1, &eq, &acc), HCRT_ERR_MISMATCH, "params->top_exponent");
    }
    REQUIRE_OK(ctx, hcrt_exact_create(comm, &gb, NULL, 1, NULL, &acc));
    BADARG(hcrt_exact_add(NULL), "acc");
    BADARG(hcrt_exact_allreduce(NULL, 1, &total, 0), "acc");
    BADARG(hcrt_exact_allreduce(acc, -1, &total, 0), "local_samples");
    BADARG(hcrt_exact_allreduce(acc, 1, &total, 0x4), "flags");
    BADARG(hcrt_exact_reset(NULL), "acc");
    BADARG(hcrt_exact_info(NULL, NULL, NULL), "acc");
    /* A non-finite value names the default tensor name. */
    g[2] = NAN;
    CHECK_OK(ctx, hcrt_exact_add(acc));
    BADARG(hcrt_exact_allreduce(acc, 1, &total, 0), "'tensor 0' element 2");
    g[2] = 0;
    CHECK_OK(ctx, hcrt_exact_add(acc));
    CHECK_OK(ctx, hcrt_exact_reset(acc));
    CHECK_OK(ctx, hcrt_exact_allreduce(acc, 1, &total, HCRT_EXACT_MEAN));
    CHECK(total == nranks && g[0] == 0);
    CHECK_OK(ctx, hcrt_exact_destroy(acc));
    CHECK_OK(ctx, hcrt_exact_destroy(NULL));

    /* Trace (off here: arguments are checked all the same). */
    char longjson[70000];
    memset(longjson, ' ', sizeof(longjson) - 1);
    longjson[0] = '{';
    longjson[sizeof(longjson) - 2] = '}';
    longjson[sizeof(longjson) - 1] = '\0';
    BADARG(hcrt_trace_complete(NULL, "n", "c", 0, 0, NULL), "ctx");
    BADARG(hcrt_trace_complete(ctx, NULL, "c", 0, 0, NULL), "name");
    BADARG(hcrt_trace_complete(ctx, "", "c", 0, 0, NULL), "name");
    BADARG(hcrt_trace_complete(ctx, longname, "c", 0, 0, NULL), "name");
    BADARG(hcrt_trace_complete(ctx, "n", NULL, 0, 0, NULL), "category");
    BADARG(hcrt_trace_complete(ctx, "n", "", 0, 0, NULL), "category");
    BADARG(hcrt_trace_complete(ctx, "n", longname, 0, 0, NULL), "category");
    BADARG(hcrt_trace_complete(ctx, "n", "c", -1, 0, NULL), "start");
    BADARG(hcrt_trace_complete(ctx, "n", "c", NAN, 0, NULL), "start");
    BADARG(hcrt_trace_complete(ctx, "n", "c", 0, -1, NULL), "duration");
    BADARG(hcrt_trace_complete(ctx, "n", "c", 0, INFINITY, NULL), "duration");
    BADARG(hcrt_trace_complete(ctx, "n", "c", 0, 0, "[1, 2]"), "args_json");
    BADARG(hcrt_trace_complete(ctx, "n", "c", 0, 0, "{\"a\": "), "args_json");
    BADARG(hcrt_trace_complete(ctx, "n", "c", 0, 0, longjson), "args_json");
    BADARG(hcrt_trace_instant(NULL, "n", "c", NULL), "ctx");
    BADARG(hcrt_trace_instant(ctx, "", "c", NULL), "name");
    BADARG(hcrt_trace_instant(ctx, "n", NULL, NULL), "category");
    BADARG(hcrt_trace_instant(ctx, "n", "c", "3"), "args_json");
    CHECK(!hcrt_trace_enabled(NULL));
    CHECK_OK(ctx, hcrt_trace_complete(ctx, "n", "c", hcrt_trace_clock(), 0.5, "{\"k\": [1, \"two\"]}"));
    CHECK_OK(ctx, hcrt_trace_instant(ctx, "n", "c", NULL));
}

/* ---- tracejob ---------------------------------------------------------------------------------- */

static void run_tracejob(const char *dir)
{
    CHECK(hcrt_trace_enabled(ctx));
    /* Collectives on host and device buffers, blocking and not. */
    enum { N = 70000 };
    float *h = calloc(N, sizeof(float));
    void *dv = NULL;
    hcrt_device_t *dev = sim_dev ? sim_dev : host_dev;
    REQUIRE_OK(ctx, hcrt_mem_alloc(dev, N * sizeof(float), &dv));
    REQUIRE_OK(ctx, hcrt_memset(dev, dv, 0, N * sizeof(float)));
    REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, h, N, HCRT_F32, HCRT_OP_SUM, NULL));
    REQUIRE_OK(ctx, hcrt_comm_allreduce(comm, HCRT_IN_PLACE, dv, N, HCRT_F32, HCRT_OP_SUM, dev));
    REQUIRE_OK(ctx, hcrt_comm_broadcast(comm, h, 16, HCRT_F32, 0, NULL));
    hcrt_request_t *req;
    REQUIRE_OK(ctx, hcrt_comm_iallreduce(comm, HCRT_IN_PLACE, h, 1000, HCRT_F32, HCRT_OP_MAX, NULL, &req));
    REQUIRE_OK(ctx, hcrt_request_wait(req));
    hcrt_request_free(req);
    REQUIRE_OK(ctx, hcrt_comm_barrier(comm));
    /* Application events: compute per micro-batch. */
    for (int k = 0; k < 3; k++) {
        double t0 = hcrt_trace_clock();
        usleep(2000);
        char args[64];
        snprintf(args, sizeof(args), "{\"micro_batch\": %d, \"samples\": 16}", k);
        CHECK_OK(ctx, hcrt_trace_complete(ctx, "forward+backward", "compute", t0, hcrt_trace_clock() - t0, args));
    }
    CHECK_OK(ctx, hcrt_trace_instant(ctx, "step done", "train", "{\"step\": 1}"));
    /* Balancer decisions (interval 1: a re-plan every step). */
    hcrt_balance_params_t p;
    hcrt_balance_params_init(&p);
    p.micro_batches = 4 * nranks;
    p.micro_batch_size = 16;
    p.interval = 1;
    p.warmup_steps = 0;
    p.use_device_speed = false;
    hcrt_balancer_t *b;
    REQUIRE_OK(ctx, hcrt_balancer_create(comm, &p, &b));
    for (int step = 0; step < 3; step++) {
        REQUIRE_OK(ctx, hcrt_balancer_record(b, 16, 0.01 * (rank + 1)));
        REQUIRE_OK(ctx, hcrt_balancer_step(b, NULL));
    }
    hcrt_balancer_destroy(b);
    /* An exact reduction. */
    hcrt_buffer_t gb = {NULL, h, 100, HCRT_F32};
    hcrt_exact_t *acc;
    REQUIRE_OK(ctx, hcrt_exact_create(comm, &gb, NULL, 1, NULL, &acc));
    REQUIRE_OK(ctx, hcrt_exact_add(acc));
    REQUIRE_OK(ctx, hcrt_exact_allreduce(acc, 16, NULL, 0));
    hcrt_exact_destroy(acc);
    /* A checkpoint: save, commit, restore. */
    hcrt_ckpt_params_t cp;
    hcrt_ckpt_params_init(&cp);
    cp.dir = dir;
    cp.local_dir = "";
    cp.partner = 0;
    hcrt_ckpt_t *ck;
    REQUIRE_OK(ctx, hcrt_ckpt_open(ctx, comm, &cp, &ck));
    uint64_t shape[1] = {N};
    hcrt_buffer_t cb = {dev, dv, N, HCRT_F32};
    REQUIRE_OK(ctx, hcrt_ckpt_register(ck, "w", cb, 1, shape, NULL));
    REQUIRE_OK(ctx, hcrt_ckpt_save(ck, 1, "meta", 4));
    REQUIRE_OK(ctx, hcrt_ckpt_wait(ck));
    int64_t restored = -1;
    REQUIRE_OK(ctx, hcrt_ckpt_restore(ck, HCRT_CKPT_LATEST, NULL, 0, NULL, &restored));
    CHECK(restored == 1);
    hcrt_ckpt_close(ck);
    hcrt_mem_free(dev, dv);
    free(h);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_balance agree|prior|grads|exact|devfault|badargs|tracejob [dir]\n");
        return 2;
    }
    REQUIRE_OK(NULL, hcrt_init(NULL, &ctx));
    REQUIRE_OK(ctx, hcrt_comm_world(ctx, &comm));
    hcrt_comm_rank(comm, &rank);
    hcrt_comm_size(comm, &nranks);
    if (nranks > 64) {
        fprintf(stderr, "at most 64 ranks\n");
        return 2;
    }
    REQUIRE_OK(ctx, hcrt_device_host(ctx, &host_dev));
    if (hcrt_device_find(ctx, "sim", 0, &sim_dev) != HCRT_OK)
        sim_dev = NULL;
    const char *mode = argv[1];
    if (strcmp(mode, "agree") == 0)
        run_agree();
    else if (strcmp(mode, "prior") == 0)
        run_prior();
    else if (strcmp(mode, "grads") == 0)
        run_grads();
    else if (strcmp(mode, "exact") == 0)
        run_exact();
    else if (strcmp(mode, "badargs") == 0)
        run_badargs();
    else if (strcmp(mode, "devfault") == 0)
        run_devfault();
    else if (strcmp(mode, "tracejob") == 0 && argc > 2)
        run_tracejob(argv[2]);
    else {
        fprintf(stderr, "unknown mode '%s'\n", mode);
        return 2;
    }
    /* Every rank fails if any rank did, so mpirun's status says it. */
    bool ok = everyone(test_failures_ == 0);
    hcrt_comm_destroy(comm);
    hcrt_finalize(ctx);
    if (!ok && test_failures_ == 0)
        fprintf(stderr, "rank %d: another rank failed\n", rank);
    return ok ? 0 : 1;
}
