/*
 * tests/unit/test_host_kernels.c - the host reduction and scale kernels (kernels/host_kernels.c)
 * against the independent float64 and exact-integer references of tests/common/kernel_ref.h: every
 * dtype x op, counts 0/1/odd, unaligned buffers, the aliasing forms of reduce3, integer wraparound, NaN
 * in min/max, f16/bf16 conversion edge cases (every tie, subnormals, overflow, NaN) and scale.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/host_kernels.h"
#include "kernel_ref.h"
#include "test.h"

/* ---- tests --------------------------------------------------------------------------------------- */

/* Every dtype x op, counts 0/1/odd/large, aligned and unaligned, reduce and the three reduce3 forms. */
static void test_reduce_all(void)
{
    static const size_t counts[] = {0, 1, 2, 7, 33, 1037, 4099};
    for (size_t ti = 0; ti < sizeof(all_dtypes) / sizeof(all_dtypes[0]); ti++) {
        const hcrt_dtype_t t = all_dtypes[ti];
        const size_t es = esize(t);
        for (int op = 0; op < HCRT_OP_COUNT; op++) {
            for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
                for (int misalign = 0; misalign < 2; misalign++) {
                    const size_t n = counts[ci];
                    const size_t bytes = n * es + 16;
                    char *ra = malloc(bytes + 1), *rb = malloc(bytes + 1), *rd = malloc(bytes + 1);
                    char *a = ra + misalign, *b = rb + misalign, *d = rd + misalign;
                    memset(ra, 0xA5, bytes + 1);
                    memset(rd, 0xA5, bytes + 1);
                    for (size_t i = 0; i < n; i++) {
                        put_bits(a, i, t, random_elem(t));
                        put_bits(b, i, t, random_elem(t));
                    }
                    /* reduce3 into a third buffer */
                    CHECK(hcrt__host_reduce3(d, a, b, n, t, (hcrt_op_t)op) == HCRT_OK);
                    int bad = 0;
                    for (size_t i = 0; i < n && bad < 3; i++) {
                        const uint64_t want = ref_op(get_bits(a, i, t), get_bits(b, i, t), t, (hcrt_op_t)op);
                        if (!same(get_bits(d, i, t), want, t)) {
                            bad++;
                            CHECK_MSG(0, "reduce3 %s %s n=%zu misalign=%d i=%zu: a=%llx b=%llx got %llx want %llx",
                                      dtype_names[t], op_names[op], n, misalign, i,
                                      (unsigned long long)get_bits(a, i, t), (unsigned long long)get_bits(b, i, t),
                                      (unsigned long long)get_bits(d, i, t), (unsigned long long)want);
                        }
                    }
                    /* guard bytes after the last element untouched (count 0 writes nothing) */
                    CHECK_MSG((unsigned char)d[n * es] == 0xA5, "reduce3 %s wrote past the end", dtype_names[t]);
                    /* reduce: dst = op(dst, src) must equal reduce3 */
                    char *d2 = malloc(bytes + 1);
                    memcpy(d2, a, n * es);
                    CHECK(hcrt__host_reduce(d2, b, n, t, (hcrt_op_t)op) == HCRT_OK);
                    CHECK_MSG(memcmp(d2, d, n * es) == 0, "reduce != reduce3 for %s %s n=%zu", dtype_names[t],
                              op_names[op], n);
                    /* reduce3 with dst aliasing b: dst = op(a, dst) keeps the operand order */
                    memcpy(d2, b, n * es);
                    CHECK(hcrt__host_reduce3(d2, a, d2, n, t, (hcrt_op_t)op) == HCRT_OK);
                    CHECK_MSG(memcmp(d2, d, n * es) == 0, "reduce3(dst==b) differs for %s %s n=%zu", dtype_names[t],
                              op_names[op], n);
                    /* reduce3 with dst aliasing a */
                    memcpy(d2, a, n * es);
                    CHECK(hcrt__host_reduce3(d2, d2, b, n, t, (hcrt_op_t)op) == HCRT_OK);
                    CHECK_MSG(memcmp(d2, d, n * es) == 0, "reduce3(dst==a) differs for %s %s n=%zu", dtype_names[t],
                              op_names[op], n);
                    free(d2);
                    free(ra);
                    free(rb);
                    free(rd);
                }
            }
        }
    }
}

/* Integer wraparound and extremes, written out by hand. */
static void test_integer_edges(void)
{
    int8_t a8[4] = {127, -128, -1, 100}, b8[4] = {1, -1, -128, 3};
    CHECK(hcrt__host_reduce(a8, b8, 4, HCRT_I8, HCRT_OP_SUM) == HCRT_OK);
    CHECK(a8[0] == -128 && a8[1] == 127 && a8[2] == 127 && a8[3] == 103);
    int8_t p8[2] = {100, -128}, q8[2] = {3, -1};
    CHECK(hcrt__host_reduce(p8, q8, 2, HCRT_I8, HCRT_OP_PROD) == HCRT_OK);
    CHECK(p8[0] == 44 && p8[1] == -128); /* 300 mod 256 = 44; -128 * -1 wraps to -128 */
    uint8_t u[2] = {255, 16}, v[2] = {2, 16};
    CHECK(hcrt__host_reduce(u, v, 2, HCRT_U8, HCRT_OP_SUM) == HCRT_OK);
    CHECK(u[0] == 1 && u[1] == 32);
    int32_t m[2] = {INT32_MIN, 5}, n[2] = {-1, -7};
    CHECK(hcrt__host_reduce(m, n, 2, HCRT_I32, HCRT_OP_MIN) == HCRT_OK);
    CHECK(m[0] == INT32_MIN && m[1] == -7);
    int64_t x[2] = {INT64_MAX, INT64_MIN}, y[2] = {1, INT64_MIN};
    CHECK(hcrt__host_reduce(x, y, 2, HCRT_I64, HCRT_OP_SUM) == HCRT_OK);
    CHECK(x[0] == INT64_MIN && x[1] == 0);
    uint64_t big[1] = {UINT64_MAX}, two[1] = {2};
    CHECK(hcrt__host_reduce(big, two, 1, HCRT_U64, HCRT_OP_PROD) == HCRT_OK);
    CHECK(big[0] == UINT64_MAX - 1);
    uint32_t um[2] = {0x80000000u, 1}, un[2] = {1, 0x80000000u};
    CHECK(hcrt__host_reduce(um, un, 2, HCRT_U32, HCRT_OP_MAX) == HCRT_OK); /* unsigned compare */
    CHECK(um[0] == 0x80000000u && um[1] == 0x80000000u);
}

/* min/max with NaN: NaN wins from either side; both NaN gives NaN. */
static void test_nan_minmax(void)
{
    float a[4] = {NAN, 1.0f, NAN, 2.0f}, b[4] = {1.0f, NAN, NAN, -3.0f};
    float c[4];
    memcpy(c, a, sizeof(a));
    CHECK(hcrt__host_reduce(c, b, 4, HCRT_F32, HCRT_OP_MIN) == HCRT_OK);
    CHECK(isnan(c[0]) && isnan(c[1]) && isnan(c[2]) && c[3] == -3.0f);
    memcpy(c, a, sizeof(a));
    CHECK(hcrt__host_reduce(c, b, 4, HCRT_F32, HCRT_OP_MAX) == HCRT_OK);
    CHECK(isnan(c[0]) && isnan(c[1]) && isnan(c[2]) && c[3] == 2.0f);
    double da[2] = {1.0, NAN}, db[2] = {NAN, 0.5};
    CHECK(hcrt__host_reduce(da, db, 2, HCRT_F64, HCRT_OP_MAX) == HCRT_OK);
    CHECK(isnan(da[0]) && isnan(da[1]));
    uint16_t h[2] = {0x7E00, 0x3C00}, g[2] = {0x3C00, 0xFE00}; /* NaN, 1 | 1, -NaN */
    CHECK(hcrt__host_reduce(h, g, 2, HCRT_F16, HCRT_OP_MIN) == HCRT_OK);
    CHECK((h[0] & 0x7FFF) > 0x7C00 && (h[1] & 0x7FFF) > 0x7C00);
    uint16_t bh[2] = {0x7FC0, 0x3F80}, bg[2] = {0x3F80, 0x7FC1};
    CHECK(hcrt__host_reduce(bh, bg, 2, HCRT_BF16, HCRT_OP_MAX) == HCRT_OK);
    CHECK((bh[0] & 0x7FFF) > 0x7F80 && (bh[1] & 0x7FFF) > 0x7F80);
    /* f16 sum overflow to infinity and inf - inf = NaN */
    uint16_t o[2] = {0x7BFF, 0x7C00}, p[2] = {0x7BFF, 0xFC00}; /* 65504+65504, inf + -inf */
    CHECK(hcrt__host_reduce(o, p, 2, HCRT_F16, HCRT_OP_SUM) == HCRT_OK);
    CHECK(o[0] == 0x7C00 && (o[1] & 0x7FFF) > 0x7C00);
}

/* Conversions: every f16 widens exactly; narrowing rounds to nearest even at every tie, overflow and
 * subnormal boundary; bf16 likewise; NaN stays NaN with its sign. */
static void test_conversions(void)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const double want = ref_f16_decode((uint16_t)h);
        const float got = hcrt__f16_to_f32((uint16_t)h);
        if (isnan(want) ? !isnan(got) : ((double)got != want || !signbit(got) != !signbit(want))) {
            if (bad++ < 3)
                CHECK_MSG(0, "f16 %04x widened to %a, want %a", h, (double)got, want);
        }
        /* round trip is exact for every non-NaN half */
        if (!isnan(want) && hcrt__f32_to_f16(got) != h && bad++ < 3)
            CHECK_MSG(0, "f16 %04x does not round-trip", h);
    }
    /* Around every positive half: the value itself, the midpoint to the next half (a tie), and the
     * floats just either side of that midpoint. */
    for (uint32_t h = 0; h < 0x7C00; h++) {
        const double lo = ref_f16_decode((uint16_t)h),
                     hi = h + 1 == 0x7C00 ? 65536.0 : ref_f16_decode((uint16_t)(h + 1));
        const float mid = (float)((lo + hi) / 2); /* exact: halves have 11 bits */
        const float probes[] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid};
        for (int k = 0; k < 4; k++) {
            const uint16_t got = hcrt__f32_to_f16(probes[k]), want = ref_f16_encode(probes[k]);
            if (got != want && bad++ < 6)
                CHECK_MSG(0, "f32 %a narrowed to f16 %04x, want %04x", (double)probes[k], got, want);
        }
    }
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)rnd();
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f)) {
            const uint16_t h = hcrt__f32_to_f16(f), b = hcrt__f32_to_bf16(f);
            if (((h & 0x7FFF) <= 0x7C00 || (h >> 15) != (u >> 31)) && bad++ < 6)
                CHECK_MSG(0, "NaN %08x narrowed to f16 %04x", u, h);
            if (((b & 0x7FFF) <= 0x7F80 || (b >> 15) != (u >> 31)) && bad++ < 6)
                CHECK_MSG(0, "NaN %08x narrowed to bf16 %04x", u, b);
            continue;
        }
        const uint16_t h = hcrt__f32_to_f16(f), hw = ref_f16_encode(f);
        const uint16_t b = hcrt__f32_to_bf16(f), bw = ref_bf16_encode(f);
        if (h != hw && bad++ < 6)
            CHECK_MSG(0, "f32 %a -> f16 %04x, want %04x", (double)f, h, hw);
        if (b != bw && bad++ < 6)
            CHECK_MSG(0, "f32 %a -> bf16 %04x, want %04x", (double)f, b, bw);
    }
    /* bf16 ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even is 1 (0x3F80); 1 + 3*2^-8 rounds up
     * to 1 + 2^-6 (0x3F82). A signalling NaN whose truncation would read as infinity stays NaN. */
    CHECK(hcrt__f32_to_bf16(1.0f + 0x1p-8f) == 0x3F80);
    CHECK(hcrt__f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3F82);
    uint32_t snan = 0x7F800001u;
    float fs;
    memcpy(&fs, &snan, 4);
    CHECK((hcrt__f32_to_bf16(fs) & 0x7FFF) > 0x7F80);
    CHECK(hcrt__f32_to_bf16(0x1.fffffep127f) == 0x7F80); /* rounds up to infinity */
    CHECK(hcrt__f32_to_f16(65519.0f) == 0x7BFF && hcrt__f32_to_f16(65520.0f) == 0x7C00);
    CHECK(hcrt__f32_to_f16(0x1p-25f) == 0x0000 && hcrt__f32_to_f16(0x1.000002p-25f) == 0x0001);
    CHECK(hcrt__f32_to_f16(0x1.8p-24f) == 0x0002); /* 1.5 x smallest subnormal: tie to even (2) */
    CHECK(hcrt__f32_to_f16(-0.0f) == 0x8000 && hcrt__f32_to_f16(INFINITY) == 0x7C00);
    CHECK(hcrt__f16_to_f32(0x0001) == 0x1p-24f && hcrt__f16_to_f32(0x03FF) == 0x1.ff8p-15f);
}

/* Scale: floats in their compute precision, integers via double truncated toward zero and saturated. */
static void test_scale(void)
{
    static const double factors[] = {0.5, 3.0, -1.5, 0.125, 1.0 / 3.0};
    for (size_t ti = 0; ti < sizeof(all_dtypes) / sizeof(all_dtypes[0]); ti++) {
        const hcrt_dtype_t t = all_dtypes[ti];
        for (size_t fi = 0; fi < sizeof(factors) / sizeof(factors[0]); fi++) {
            const double f = factors[fi];
            /* 1/3 is not short enough for a single rounding of 16-bit types through f32 */
            if ((t == HCRT_F16 || t == HCRT_BF16) && fi == 4)
                continue;
            for (int misalign = 0; misalign < 2; misalign++) {
                const size_t n = 517;
                char *raw = malloc(n * 8 + 1), *orig = malloc(n * 8);
                char *p = raw + misalign;
                for (size_t i = 0; i < n; i++)
                    put_bits(p, i, t, random_elem(t));
                memcpy(orig, p, n * esize(t));
                CHECK(hcrt__host_scale(p, n, t, f) == HCRT_OK);
                int bad = 0;
                for (size_t i = 0; i < n && bad < 3; i++) {
                    uint64_t want;
                    if (is_float(t)) {
                        const double cf = t == HCRT_F64 ? f : (double)(float)f;
                        const double r = get_float(orig, i, t) * cf;
                        want = isnan(r) ? UINT64_MAX : encode_float(r, t);
                    } else {
                        double v = is_signed_int(t) ? (double)get_signed(orig, i, t) : (double)get_bits(orig, i, t);
                        v = trunc(v * f);
                        double lo, hi;
                        switch (t) {
                        case HCRT_I8:
                            lo = -128, hi = 127;
                            break;
                        case HCRT_U8:
                            lo = 0, hi = 255;
                            break;
                        case HCRT_I32:
                            lo = -2147483648.0, hi = 2147483647.0;
                            break;
                        case HCRT_U32:
                            lo = 0, hi = 4294967295.0;
                            break;
                        default:
                            lo = hi = 0;
                            break;
                        }
                        if (esize(t) == 8) {
                            /* 64-bit: compare through int64/uint64 conversions with saturation */
                            if (t == HCRT_I64)
                                want = v >= 0x1p63    ? (uint64_t)INT64_MAX
                                       : v <= -0x1p63 ? (uint64_t)INT64_MIN
                                                      : (uint64_t)(int64_t)v;
                            else
                                want = v >= 0x1p64 ? UINT64_MAX : v <= 0 ? 0 : (uint64_t)v;
                        } else {
                            v = v < lo ? lo : v > hi ? hi : v;
                            want = (uint64_t)(int64_t)v & mask_of(t);
                        }
                    }
                    if (!same(get_bits(p, i, t), want, t)) {
                        bad++;
                        CHECK_MSG(0, "scale %s by %g i=%zu: %llx -> %llx, want %llx", dtype_names[t], f, i,
                                  (unsigned long long)get_bits(orig, i, t), (unsigned long long)get_bits(p, i, t),
                                  (unsigned long long)want);
                    }
                }
                free(raw);
                free(orig);
            }
        }
    }
    int32_t s[3] = {-7, 7, 2147483647};
    CHECK(hcrt__host_scale(s, 3, HCRT_I32, 0.5) == HCRT_OK);
    CHECK(s[0] == -3 && s[1] == 3 && s[2] == 1073741823);
    int8_t sat[2] = {100, -100};
    CHECK(hcrt__host_scale(sat, 2, HCRT_I8, 3.0) == HCRT_OK);
    CHECK(sat[0] == 127 && sat[1] == -128);
    uint8_t neg[1] = {5};
    CHECK(hcrt__host_scale(neg, 1, HCRT_U8, -1.0) == HCRT_OK);
    CHECK(neg[0] == 0);
    int64_t nan64[1] = {12345};
    CHECK(hcrt__host_scale(nan64, 1, HCRT_I64, NAN) == HCRT_OK);
    CHECK(nan64[0] == 0);
}

static void test_bad_args(void)
{
    float a[8] = {0}, b[8] = {0};
    CHECK(hcrt__host_reduce(a, b, 4, (hcrt_dtype_t)99, HCRT_OP_SUM) == HCRT_ERR_INVALID_ARG);
    CHECK(hcrt__host_reduce(a, b, 4, HCRT_F32, (hcrt_op_t)17) == HCRT_ERR_INVALID_ARG);
    CHECK(hcrt__host_reduce(NULL, b, 4, HCRT_F32, HCRT_OP_SUM) == HCRT_ERR_INVALID_ARG);
    CHECK(hcrt__host_reduce(NULL, NULL, 0, HCRT_F32, HCRT_OP_SUM) == HCRT_OK);
    CHECK(hcrt__host_reduce(a + 1, a, 4, HCRT_F32, HCRT_OP_SUM) == HCRT_ERR_INVALID_ARG); /* partial overlap */
    CHECK(hcrt__host_scale(a, 4, (hcrt_dtype_t)-1, 2.0) == HCRT_ERR_INVALID_ARG);
    CHECK(hcrt__host_scale(NULL, 4, HCRT_F32, 2.0) == HCRT_ERR_INVALID_ARG);
    CHECK(hcrt__host_scale(NULL, 0, HCRT_F32, 2.0) == HCRT_OK);
}

/* The f16 kernels have a portable path and, where the CPU has F16C, a faster one: on random bit patterns
 * (NaNs, infinities, subnormals included) both must give the same bits for every op and for scale. */
static void test_f16_paths_agree(void)
{
    const size_t n = 4099;
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2), *r1 = malloc(n * 2), *r2 = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        a[i] = (uint16_t)rnd();
        b[i] = (uint16_t)(i % 5 == 0 ? 0x7C00 + (rnd() & 0x3FF) : rnd()); /* more NaN/inf */
    }
    for (int op = 0; op <= HCRT_OP_COUNT; op++) { /* op == HCRT_OP_COUNT: scale */
        hcrt__host_kernels_force_portable(true);
        if (op < HCRT_OP_COUNT) {
            CHECK(hcrt__host_reduce3(r1, a, b, n, HCRT_F16, (hcrt_op_t)op) == HCRT_OK);
        } else {
            memcpy(r1, a, n * 2);
            CHECK(hcrt__host_scale(r1, n, HCRT_F16, -0.3) == HCRT_OK);
        }
        hcrt__host_kernels_force_portable(false);
        if (op < HCRT_OP_COUNT) {
            CHECK(hcrt__host_reduce3(r2, a, b, n, HCRT_F16, (hcrt_op_t)op) == HCRT_OK);
        } else {
            memcpy(r2, a, n * 2);
            CHECK(hcrt__host_scale(r2, n, HCRT_F16, -0.3) == HCRT_OK);
        }
        size_t first = n;
        for (size_t i = 0; i < n && first == n; i++)
            if (r1[i] != r2[i])
                first = i;
        CHECK_MSG(first == n, "f16 %s: portable and F16C paths differ at %zu: %04x %04x -> %04x vs %04x",
                  op < HCRT_OP_COUNT ? op_names[op] : "scale", first, a[first], b[first], r1[first], r2[first]);
    }
    free(a);
    free(b);
    free(r1);
    free(r2);
}

int main(void)
{
    /* Everything twice: with the kernels the CPU selects, then with the portable f16 code forced. */
    for (int portable = 0; portable < 2; portable++) {
        hcrt__host_kernels_force_portable(portable);
        test_reduce_all();
        test_integer_edges();
        test_nan_minmax();
        test_scale();
        test_bad_args();
    }
    hcrt__host_kernels_force_portable(false);
    test_conversions();
    test_f16_paths_agree();
    TEST_DONE();
}
