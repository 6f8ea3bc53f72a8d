/*
 * tests/plugin/test_gpu_kernel_math.cu - the GPU kernels' arithmetic against the host kernels, bit for bit.
 *
 * The cuda and hip kernels compute each element with the __host__ __device__ functions of
 * backends/gpu/gpu_elem.cuh. This program runs those same functions on the host (built by nvcc or hipcc,
 * no GPU needed) and compares every dtype x op of the reduction, and scale, with hcrt__host_reduce() and
 * hcrt__host_scale(), on inputs full of edge cases (NaN, infinities, signed zeros, subnormals, ties, integer
 * extremes). The three-operand reduction (reduce3: dst = op(a, b), a on the left) is compared with
 * hcrt__host_reduce3() in its three forms (dst apart, dst == a, dst == b), on inputs where the operand
 * order shows. It also checks every f16 -> f32 conversion and f32 -> f16/bf16 on a sweep of 2^32 / 257
 * inputs plus every f16 rounding tie. A difference here means a collective would give different bits
 * depending on whether a GPU or a CPU did the reduction.
 *
 * The compute extension's element arithmetic (backends/gpu/gpu_compute_elem.cuh: ReLU and its gradient,
 * the SGD and AdamW updates, the casts) is compared the same way with kernels/host_compute.c, so that an
 * optimizer step gives the same weights on a GPU as on the host.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_compute_elem.cuh"
#include "gpu_elem.cuh"

extern "C" {
#include "kernels/host_compute.h"
#include "kernels/host_kernels.h"
}

static int failures = 0;

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        if (failures++ < 20) {                                                                                         \
            fprintf(stderr, "FAIL: ");                                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

static const char *dtype_names[HCRT_DTYPE_COUNT] = {"i8",  "u8",  "i32",  "u32", "i64",
                                                    "u64", "f16", "bf16", "f32", "f64"};
static const char *op_names[HCRT_OP_COUNT] = {"sum", "prod", "min", "max", "avg"};
static const size_t dtype_size[HCRT_DTYPE_COUNT] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};

/* xorshift64*: deterministic inputs. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Fills n elements: random bits mixed with values that stress the arithmetic. */
static void fill(hcrt_dtype_t dt, void *buf, size_t n)
{
    static const float fspecial[] = {0.0f,     -0.0f,    1.0f,    -1.0f,    INFINITY, -INFINITY, NAN,  -NAN,
                                     65504.0f, 65520.0f, 6.1e-5f, 5.96e-8f, 1e-40f,   3.4e38f,   0.5f, 2.0f};
    unsigned char *p = (unsigned char *)buf;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rnd();
        bool special = (r & 7) == 0;
        float fs = fspecial[(r >> 8) % (sizeof fspecial / sizeof fspecial[0])];
        switch (dt) {
        case HCRT_F32: {
            float f = special ? fs : (float)((double)(int64_t)(r >> 11) / 1e12);
            memcpy(p + i * 4, &f, 4);
            break;
        }
        case HCRT_F64: {
            double d = special ? (double)fs : (double)(int64_t)(r >> 11) / 1e9;
            memcpy(p + i * 8, &d, 8);
            break;
        }
        case HCRT_F16:
        case HCRT_BF16: {
            uint16_t h =
                special ? (dt == HCRT_F16 ? hcrt__f32_to_f16(fs) : hcrt__f32_to_bf16(fs)) : (uint16_t)(r >> 32);
            memcpy(p + i * 2, &h, 2);
            break;
        }
        default: {
            /* integers: random bits, sometimes the extremes or small values */
            uint64_t v = special ? ((r >> 16) & 1 ? ~0ull >> ((r >> 20) & 1) : 1ull << 63 >> ((r >> 21) & 63))
                                 : ((r >> 9) & 1 ? r >> 3 : (r >> 40) % 17);
            memcpy(p + i * dtype_size[dt], &v, dtype_size[dt]);
            break;
        }
        }
    }
}

/* dst = op(a, b) element by element, as reduce3_kernel does; reduce is the case a == dst. */
template <typename T, int OP> static void gpu_reduce_t(void *dst, const void *a, const void *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        T x, y;
        memcpy(&x, (const char *)a + i * sizeof(T), sizeof(T));
        memcpy(&y, (const char *)b + i * sizeof(T), sizeof(T));
        x = combine_elem<T, OP>(x, y);
        memcpy((char *)dst + i * sizeof(T), &x, sizeof(T));
    }
}

template <typename T> static void gpu_reduce_op(void *dst, const void *a, const void *b, size_t n, int op)
{
    switch (op) {
    case HCRT_OP_SUM:
    case HCRT_OP_AVG:
        gpu_reduce_t<T, HCRT_OP_SUM>(dst, a, b, n);
        break;
    case HCRT_OP_PROD:
        gpu_reduce_t<T, HCRT_OP_PROD>(dst, a, b, n);
        break;
    case HCRT_OP_MIN:
        gpu_reduce_t<T, HCRT_OP_MIN>(dst, a, b, n);
        break;
    default:
        gpu_reduce_t<T, HCRT_OP_MAX>(dst, a, b, n);
        break;
    }
}

template <typename T> static void gpu_scale_t(void *ptr, size_t n, double factor)
{
    for (size_t i = 0; i < n; i++) {
        T a;
        memcpy(&a, (char *)ptr + i * sizeof(T), sizeof(T));
        a = scaler<T>::apply(a, factor);
        memcpy((char *)ptr + i * sizeof(T), &a, sizeof(T));
    }
}

/* The element functions the kernels instantiate, by dtype (the same dispatch as gpu_kernels.cuh). */
static void gpu_reduce3(hcrt_dtype_t dt, void *dst, const void *a, const void *b, size_t n, int op)
{
    switch (dt) {
    case HCRT_I8:
        gpu_reduce_op<int8_t>(dst, a, b, n, op);
        break;
    case HCRT_U8:
        gpu_reduce_op<uint8_t>(dst, a, b, n, op);
        break;
    case HCRT_I32:
        gpu_reduce_op<int32_t>(dst, a, b, n, op);
        break;
    case HCRT_U32:
        gpu_reduce_op<uint32_t>(dst, a, b, n, op);
        break;
    case HCRT_I64:
        gpu_reduce_op<int64_t>(dst, a, b, n, op);
        break;
    case HCRT_U64:
        gpu_reduce_op<uint64_t>(dst, a, b, n, op);
        break;
    case HCRT_F16:
        gpu_reduce_op<f16_t>(dst, a, b, n, op);
        break;
    case HCRT_BF16:
        gpu_reduce_op<bf16_t>(dst, a, b, n, op);
        break;
    case HCRT_F32:
        gpu_reduce_op<float>(dst, a, b, n, op);
        break;
    default:
        gpu_reduce_op<double>(dst, a, b, n, op);
        break;
    }
}

/* dst = op(dst, src), the two-operand reduce (reduce3_kernel with dst on the left). */
static void gpu_reduce(hcrt_dtype_t dt, void *dst, const void *src, size_t n, int op)
{
    gpu_reduce3(dt, dst, dst, src, n, op);
}

static void gpu_scale(hcrt_dtype_t dt, void *ptr, size_t n, double factor)
{
    switch (dt) {
    case HCRT_I8:
        gpu_scale_t<int8_t>(ptr, n, factor);
        break;
    case HCRT_U8:
        gpu_scale_t<uint8_t>(ptr, n, factor);
        break;
    case HCRT_I32:
        gpu_scale_t<int32_t>(ptr, n, factor);
        break;
    case HCRT_U32:
        gpu_scale_t<uint32_t>(ptr, n, factor);
        break;
    case HCRT_I64:
        gpu_scale_t<int64_t>(ptr, n, factor);
        break;
    case HCRT_U64:
        gpu_scale_t<uint64_t>(ptr, n, factor);
        break;
    case HCRT_F16:
        gpu_scale_t<f16_t>(ptr, n, factor);
        break;
    case HCRT_BF16:
        gpu_scale_t<bf16_t>(ptr, n, factor);
        break;
    case HCRT_F32:
        gpu_scale_t<float>(ptr, n, factor);
        break;
    default:
        gpu_scale_t<double>(ptr, n, factor);
        break;
    }
}

/* Whether element i of a floating dtype is a NaN. */
static bool is_nan_elem(int dt, const unsigned char *p, size_t i)
{
    uint16_t h;
    float f;
    double d;
    switch (dt) {
    case HCRT_F16:
        memcpy(&h, p + i * 2, 2);
        return (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    case HCRT_BF16:
        memcpy(&h, p + i * 2, 2);
        return (h & 0x7f80) == 0x7f80 && (h & 0x7f);
    case HCRT_F32:
        memcpy(&f, p + i * 4, 4);
        return f != f;
    case HCRT_F64:
        memcpy(&d, p + i * 8, 8);
        return d != d;
    default:
        return false;
    }
}

/* First element whose bits differ; two NaNs count as equal, because the payload of a NaN produced by
 * arithmetic is the hardware's choice (GPUs return a canonical NaN, x86 propagates the operand's). */
static size_t first_diff(int dt, const unsigned char *a, const unsigned char *b, size_t n, size_t es)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i * es, b + i * es, es) != 0 && !(is_nan_elem(dt, a, i) && is_nan_elem(dt, b, i)))
            return i;
    return n;
}

static void check_reduce_and_scale(void)
{
    const size_t n = 8191;
    static const double factors[] = {0.5, -1.0 / 3.0, 0.25, 1e30, -1e-30, 0.0, 3.0, (double)NAN};
    unsigned char *a = (unsigned char *)malloc(n * 8), *b = (unsigned char *)malloc(n * 8);
    unsigned char *want = (unsigned char *)malloc(n * 8), *got = (unsigned char *)malloc(n * 8);
    for (int dt = 0; dt < HCRT_DTYPE_COUNT; dt++) {
        size_t es = dtype_size[dt];
        for (int op = 0; op < HCRT_OP_COUNT; op++) {
            fill((hcrt_dtype_t)dt, a, n);
            fill((hcrt_dtype_t)dt, b, n);
            memcpy(want, a, n * es);
            memcpy(got, a, n * es);
            if (hcrt__host_reduce(want, b, n, (hcrt_dtype_t)dt, (hcrt_op_t)op) != HCRT_OK)
                FAIL("host reduce %s %s refused", dtype_names[dt], op_names[op]);
            gpu_reduce((hcrt_dtype_t)dt, got, b, n, op);
            size_t i = first_diff(dt, want, got, n, es);
            if (i < n)
                FAIL("reduce %s %s differs at element %zu", dtype_names[dt], op_names[op], i);
        }
        for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++) {
            fill((hcrt_dtype_t)dt, a, n);
            memcpy(want, a, n * es);
            memcpy(got, a, n * es);
            if (hcrt__host_scale(want, n, (hcrt_dtype_t)dt, factors[f]) != HCRT_OK)
                FAIL("host scale %s refused", dtype_names[dt]);
            gpu_scale((hcrt_dtype_t)dt, got, n, factors[f]);
            size_t i = first_diff(dt, want, got, n, es);
            if (i < n)
                FAIL("scale %s by %g differs at element %zu", dtype_names[dt], factors[f], i);
        }
    }
    free(a);
    free(b);
    free(want);
    free(got);
}

/* Element i of a floating dtype becomes +0 or -0 (little-endian: the sign is the top bit of the last byte). */
static void put_signed_zero(unsigned char *p, size_t i, size_t es, bool negative)
{
    memset(p + i * es, 0, es);
    if (negative)
        p[i * es + es - 1] = 0x80;
}

/*
 * reduce3 with a on the left, against the host's reduce3 with dst apart from both operands, dst == a and
 * dst == b (separate host code paths). Floating min/max keep the left operand on ties, so a few +0/-0 pairs
 * make the operand order visible; the swapped order must then differ, or the check could not catch it.
 */
static void check_reduce3(void)
{
    const size_t n = 4099;
    unsigned char *a = (unsigned char *)malloc(n * 8), *b = (unsigned char *)malloc(n * 8);
    unsigned char *want = (unsigned char *)malloc(n * 8), *got = (unsigned char *)malloc(n * 8);
    for (int dt = 0; dt < HCRT_DTYPE_COUNT; dt++) {
        const size_t es = dtype_size[dt];
        const bool floating = dt == HCRT_F16 || dt == HCRT_BF16 || dt == HCRT_F32 || dt == HCRT_F64;
        for (int op = 0; op < HCRT_OP_COUNT; op++) {
            fill((hcrt_dtype_t)dt, a, n);
            fill((hcrt_dtype_t)dt, b, n);
            if (floating)
                for (size_t i = 0; i < 8; i++) {
                    put_signed_zero(a, i, es, i & 1);
                    put_signed_zero(b, i, es, !(i & 1));
                }
            gpu_reduce3((hcrt_dtype_t)dt, got, a, b, n, op);
            for (int form = 0; form < 3; form++) {
                static const char *form_names[] = {"dst apart", "dst == a", "dst == b"};
                hcrt_status_t st;
                if (form == 0) {
                    memset(want, 0x5a, n * es);
                    st = hcrt__host_reduce3(want, a, b, n, (hcrt_dtype_t)dt, (hcrt_op_t)op);
                } else if (form == 1) {
                    memcpy(want, a, n * es);
                    st = hcrt__host_reduce3(want, want, b, n, (hcrt_dtype_t)dt, (hcrt_op_t)op);
                } else {
                    memcpy(want, b, n * es);
                    st = hcrt__host_reduce3(want, a, want, n, (hcrt_dtype_t)dt, (hcrt_op_t)op);
                }
                if (st != HCRT_OK)
                    FAIL("host reduce3 %s %s (%s) refused", dtype_names[dt], op_names[op], form_names[form]);
                size_t i = first_diff(dt, want, got, n, es);
                if (i < n)
                    FAIL("reduce3 %s %s (%s) differs at element %zu", dtype_names[dt], op_names[op], form_names[form],
                         i);
            }
            if (floating && (op == HCRT_OP_MIN || op == HCRT_OP_MAX)) {
                gpu_reduce3((hcrt_dtype_t)dt, want, b, a, n, op);
                if (first_diff(dt, want, got, n, es) == n)
                    FAIL("reduce3 %s %s: swapping a and b changes nothing, the operand order is untested",
                         dtype_names[dt], op_names[op]);
            }
        }
    }
    free(a);
    free(b);
    free(want);
    free(got);
}

static void check_conversions(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float g = f16_to_f32((uint16_t)h), w = hcrt__f16_to_f32((uint16_t)h);
        if (f32_bits(g) != f32_bits(w))
            FAIL("f16 %04x -> f32 %08x, host %08x", h, f32_bits(g), f32_bits(w));
        /* the midpoint between h and the next half: a rounding tie */
        if ((h & 0x7c00) != 0x7c00 && h != 0x7bff && h != 0xfbff) {
            float mid = (float)(((double)w + (double)hcrt__f16_to_f32((uint16_t)(h + 1))) / 2);
            if (f32_to_f16(mid) != hcrt__f32_to_f16(mid))
                FAIL("f32 tie %a -> f16 %04x, host %04x", mid, f32_to_f16(mid), hcrt__f32_to_f16(mid));
        }
    }
    for (uint64_t u = 0; u < (1ull << 32); u += 257) {
        float f = bits_f32((uint32_t)u);
        if (f32_to_f16(f) != hcrt__f32_to_f16(f))
            FAIL("f32 %08x -> f16 %04x, host %04x", (uint32_t)u, f32_to_f16(f), hcrt__f32_to_f16(f));
        if (f32_to_bf16(f) != hcrt__f32_to_bf16(f))
            FAIL("f32 %08x -> bf16 %04x, host %04x", (uint32_t)u, f32_to_bf16(f), hcrt__f32_to_bf16(f));
    }
}

/* A float from a mix of random bits, moderate values and specials. */
static float compute_input(uint64_t r, float scale)
{
    static const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f, 3.4e38f, 1.0f, -1.0f};
    if ((r & 15) == 0)
        return special[(r >> 8) % (sizeof special / sizeof special[0])];
    if ((r & 15) == 1)
        return bits_f32((uint32_t)(r >> 16));
    return (float)((double)((r >> 20) % 2000001) / 1000000.0 - 1.0) * scale;
}

static void check_compute(void)
{
    const size_t n = 100003;
    float *x = (float *)malloc(n * 4), *y = (float *)malloc(n * 4), *h = (float *)malloc(n * 4);
    float *g = (float *)malloc(n * 4), *st = (float *)malloc(2 * n * 4), *st2 = (float *)malloc(2 * n * 4);
    float *p2 = (float *)malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        x[i] = compute_input(rnd(), 4.0f), y[i] = compute_input(rnd(), 4.0f);

    hcrt__host_relu(h, x, n);
    for (size_t i = 0; i < n; i++)
        if (f32_bits(relu_elem(x[i])) != f32_bits(h[i]))
            FAIL("relu(%a): gpu %a, host %a", x[i], relu_elem(x[i]), h[i]);
    hcrt__host_relu_backward(h, y, x, n);
    for (size_t i = 0; i < n; i++)
        if (f32_bits(relu_backward_elem(y[i], x[i])) != f32_bits(h[i]))
            FAIL("relu_backward(%a, %a): gpu %a, host %a", y[i], x[i], relu_backward_elem(y[i], x[i]), h[i]);

    /* optimizers: SGD plain, with momentum, Nesterov and decay; AdamW at steps 1 and 50 */
    for (int c = 0; c < 5; c++) {
        hcrt_backend_optim_t o;
        memset(&o, 0, sizeof o);
        o.struct_size = sizeof o;
        o.grad_scale = 1.0f / 96.0f;
        o.lr = 0.05f;
        if (c == 1 || c == 2)
            o.momentum = 0.9f;
        if (c == 2)
            o.nesterov = 1, o.weight_decay = 1e-4f;
        if (c >= 3) {
            const double lr = 1e-3, wd = 0.01, b1 = 0.9, b2 = 0.999, t = c == 3 ? 1 : 50;
            o.kind = HCRT_OPTIM_ADAMW;
            o.decay = (float)(1 - lr * wd);
            o.step_size = (float)(lr / (1 - pow(b1, t)));
            o.bias2_sqrt = (float)sqrt(1 - pow(b2, t));
            o.beta1 = (float)b1, o.one_minus_beta1 = (float)(1 - b1);
            o.beta2 = (float)b2, o.one_minus_beta2 = (float)(1 - b2);
            o.eps = 1e-8f;
        }
        for (size_t i = 0; i < n; i++) {
            g[i] = compute_input(rnd(), 50.0f);
            st[i] = compute_input(rnd(), 0.1f);
            st[n + i] = fabsf(compute_input(rnd(), 0.01f));
        }
        memcpy(h, x, n * 4);
        memcpy(p2, x, n * 4);
        memcpy(st2, st, 2 * n * 4);
        hcrt__host_optim_step(&o, h, g, st, n);
        for (size_t i = 0; i < n; i++) {
            if (o.kind == HCRT_OPTIM_ADAMW)
                adamw_elem(o, &p2[i], g[i], &st2[i], &st2[n + i]);
            else
                sgd_elem(o, &p2[i], g[i], o.momentum != 0.0f ? &st2[i] : NULL);
        }
        for (size_t i = 0; i < n; i++)
            if (f32_bits(p2[i]) != f32_bits(h[i]) || f32_bits(st2[i]) != f32_bits(st[i]) ||
                (c >= 3 && f32_bits(st2[n + i]) != f32_bits(st[n + i]))) {
                FAIL("optimizer %d element %zu: gpu p=%a m=%a, host p=%a m=%a", c, i, p2[i], st2[i], h[i], st[i]);
                break;
            }
    }

    /* casts between f32, f16 and bf16 (the 16-bit sources are random bits, every pattern likely) */
    static const int ct[] = {HCRT_F32, HCRT_F16, HCRT_BF16};
    uint16_t *hs = (uint16_t *)malloc(n * 2);
    for (size_t i = 0; i < n; i++)
        hs[i] = (uint16_t)rnd();
    for (int s = 0; s < 3; s++)
        for (int d = 0; d < 3; d++) {
            const void *src = ct[s] == HCRT_F32 ? (const void *)x : (const void *)hs;
            if (hcrt__host_cast(h, (hcrt_dtype_t)ct[d], src, (hcrt_dtype_t)ct[s], n) != HCRT_OK) {
                FAIL("host cast %d -> %d refused", ct[s], ct[d]);
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                const size_t es = ct[d] == HCRT_F32 ? 4 : 2, ses = ct[s] == HCRT_F32 ? 4 : 2;
                float out[1];
                cast_elem(out, ct[d], (const char *)src + i * ses, ct[s], 0);
                if (memcmp(out, (const char *)h + i * es, es) != 0) {
                    FAIL("cast %d -> %d of element %zu differs", ct[s], ct[d], i);
                    break;
                }
            }
        }
    free(x), free(y), free(h), free(g), free(st), free(st2), free(p2), free(hs);
}

int main(void)
{
    check_compute();
    check_conversions();
    check_reduce_and_scale();
    check_reduce3();
    if (failures) {
        fprintf(stderr, "%d difference(s) between the GPU element arithmetic and the host kernels\n", failures);
        return 1;
    }
    printf("GPU element arithmetic matches the host kernels: %d dtypes x %d ops, reduce3, scale, f16/bf16 "
           "conversions, ReLU, optimizers, casts\n",
           HCRT_DTYPE_COUNT, HCRT_OP_COUNT);
    return 0;
}
