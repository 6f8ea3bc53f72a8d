/*
 * runtime/compute.c - the public compute calls (hcrt/compute.h): argument checks, then dispatch to the
 * device backend's compute extension (hcrt/backend_compute.h), which the loader attaches here after
 * checking it.
 *
 * The runtime never sees device memory, so what it checks is what the arguments say and what it
 * allocated: NULL pointers with nonzero sizes, leading dimensions, byte sizes that overflow, alignment to
 * the element, streams of another device, overlaps between the address ranges the operands span (device
 * addresses of one device are comparable; every backend hcrt ships uses one address space per process),
 * and, for memory from hcrt_mem_alloc, that it belongs to the call's device and holds the operand (the
 * allocation table, runtime/alloc_table.h). Pointers hcrt did not allocate are the backend's to tell
 * (sim checks every operand against its live allocations; a GPU faults).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/fault/fault.h"
#include "runtime/internal.h"

/* ---- attaching a plugin's compute table (loader) ------------------------------------------------- */

#define COMPUTE_OP(field)                                                                                              \
    {                                                                                                                  \
#field, offsetof(hcrt_backend_compute_v1_t, field)                                                             \
    }
static const struct {
    const char *name;
    size_t offset;
} compute_ops[] = {
    COMPUTE_OP(gemm),         COMPUTE_OP(bias_add), COMPUTE_OP(relu),       COMPUTE_OP(relu_backward),
    COMPUTE_OP(softmax_xent), COMPUTE_OP(col_sum),  COMPUTE_OP(optim_step), COMPUTE_OP(cast),
};

void hcrt__compute_attach(hcrt__backend_t *be)
{
    be->compute = NULL;
    const hcrt_backend_v1_t *t = be->ops;
    if (!HCRT_BACKEND_HAS_OP(t, compute)) {
        snprintf(be->compute_detail, sizeof(be->compute_detail), "the plugin has no compute extension");
        return;
    }
    const hcrt_backend_compute_v1_t *c = t->compute;
    const char *why = NULL;
    char buf[160];
    if (c->struct_size < HCRT_BACKEND_COMPUTE_V1_MIN_SIZE) {
        snprintf(buf, sizeof(buf), "short compute table: struct_size %zu, version 1 needs at least %zu", c->struct_size,
                 (size_t)HCRT_BACKEND_COMPUTE_V1_MIN_SIZE);
        why = buf;
    } else if (c->version != HCRT_BACKEND_COMPUTE_VERSION) {
        snprintf(buf, sizeof(buf), "compute table version %u (this runtime speaks %u)", c->version,
                 HCRT_BACKEND_COMPUTE_VERSION);
        why = buf;
    }
    for (size_t i = 0; !why && i < sizeof(compute_ops) / sizeof(compute_ops[0]); i++) {
        void *fn;
        memcpy(&fn, (const char *)c + compute_ops[i].offset, sizeof(fn));
        if (fn == NULL) {
            snprintf(buf, sizeof(buf), "compute op '%s' is NULL (the extension is all or nothing)",
                     compute_ops[i].name);
            why = buf;
        }
    }
    if (why) {
        snprintf(be->compute_detail, sizeof(be->compute_detail), "compute extension ignored: %s", why);
        HCRT_WARN("loader", "backend plugin %s: %s; its devices run without compute", be->path, be->compute_detail);
        return;
    }
    be->compute = c;
    be->compute_detail[0] = '\0';
}

bool hcrt_device_has_compute(const hcrt_device_t *device)
{
    return device != NULL && device->be->compute != NULL;
}

/* ---- helpers --------------------------------------------------------------------------------------- */

static hcrt_status_t backend_error(const hcrt_device_t *dev, hcrt_status_t st, const char *op)
{
    return hcrt__error(dev->ctx, st, "%s on %s device %d (%s), rank %d: %s", op, dev->be->name, dev->index,
                       dev->bprops.name, dev->ctx->rank, dev->be->ops->last_error(dev->be->state));
}

/*
 * HCRT_FAULT at every compute call (docs/fault-injection.md: site compute, the kernel's name, this
 * process's count of compute calls from 1): kill, hang and slow act before the kernel, error fails it
 * (HCRT_ERR_BACKEND), device_lost loses the device first (the runtime then refuses every call on it);
 * *corrupt asks the caller to flip a bit of the first output element once the kernel ran.
 */
static _Atomic int64_t compute_calls;

static hcrt_status_t fault_before(hcrt_device_t *dev, const char *op, bool *corrupt)
{
    *corrupt = false;
    HCRT_CHECK(hcrt__device_gate(dev, op));
    if (dev->ctx->fault == NULL)
        return HCRT_OK;
    int64_t n = atomic_fetch_add(&compute_calls, 1) + 1;
    hcrt__fault_kind_t k = hcrt__fault_check(dev->ctx, "compute", op, n);
    if (k == HCRT__FAULT_ERROR)
        return hcrt__error(dev->ctx, HCRT_ERR_BACKEND, "%s on %s device %d: injected error at compute %s %lld on rank %d "
                           "(HCRT_FAULT)", op, dev->be->name, dev->index, op, (long long)n, dev->ctx->rank);
    if (k == HCRT__FAULT_DEVICE_LOST) {
        char why[128];
        snprintf(why, sizeof(why), "injected by HCRT_FAULT device_lost at compute %s %lld", op, (long long)n);
        hcrt__device_lose(dev, why);
        return hcrt_device_check_health(dev);
    }
    *corrupt = k == HCRT__FAULT_CORRUPT;
    return HCRT_OK;
}

/* Flips a bit of the first `bytes` of out on dev once the kernel queued on stream ran. */
static hcrt_status_t fault_after(hcrt_device_t *dev, void *out, size_t bytes, hcrt_stream_t *stream)
{
    if (stream != NULL)
        HCRT_CHECK(hcrt_stream_sync(stream));
    return hcrt__fault_flip_bit(dev, out, bytes);
}

#define COMPUTE_CALL(dev, opname, out, out_bytes, stream, call)                                                        \
    do {                                                                                                               \
        bool corrupt_ = false;                                                                                         \
        HCRT_CHECK(fault_before((dev), (opname), &corrupt_));                                                          \
        hcrt_status_t st_ = (call);                                                                                    \
        if (st_ != HCRT_OK)                                                                                            \
            return backend_error((dev), st_, (opname));                                                                \
        if (corrupt_)                                                                                                  \
            HCRT_CHECK(fault_after((dev), (out), (out_bytes), (stream)));                                              \
    } while (0)

/* The device, its stream, and whether its backend computes at all. */
static hcrt_status_t check_device(hcrt_device_t *device, hcrt_stream_t *stream, const char *fn)
{
    if (device == NULL)
        return hcrt__error(NULL, HCRT_ERR_INVALID_ARG, "%s: argument 'device' is NULL", fn);
    if (stream && stream->device != device)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'stream' belongs to %s device %d, not to the call's %s device %d", fn,
                           stream->device->be->name, stream->device->index, device->be->name, device->index);
    return HCRT_OK;
}

static hcrt_status_t check_supported(const hcrt_device_t *device, const char *fn)
{
    if (device->be->compute != NULL)
        return HCRT_OK;
    return hcrt__error(device->ctx, HCRT_ERR_NOT_SUPPORTED, "%s: the %s backend (device %d, %s) cannot compute: %s", fn,
                       device->be->name, device->index, device->bprops.name, device->be->compute_detail);
}

/* The bytes an operand spans: [lo, hi), empty when lo == hi. */
typedef struct span {
    uintptr_t lo, hi;
} span_t;

static bool spans_overlap(span_t a, span_t b)
{
    return a.lo < a.hi && b.lo < b.hi && a.lo < b.hi && b.lo < a.hi;
}

static bool spans_equal(span_t a, span_t b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

/*
 * Checks a rows x cols operand with leading dimension ld and elements of es bytes at p, named `name`
 * (ld named `ldname`, NULL for a dense operand): NULL with elements, ld < cols, a span that overflows, an
 * address not aligned to es. Fills its span.
 */
static hcrt_status_t check_operand(const hcrt_device_t *dev, const char *fn, const char *name, const char *ldname,
                                   const void *p, size_t rows, size_t cols, size_t ld, size_t es, span_t *out)
{
    *out = (span_t){0, 0};
    if (rows == 0 || cols == 0)
        return HCRT_OK;
    if (p == NULL)
        return hcrt__error(dev->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' is NULL (%zu x %zu elements)", fn, name,
                           rows, cols);
    if (ldname && ld < cols)
        return hcrt__error(dev->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument '%s' (%zu) is less than the %zu elements of a stored row of '%s'", fn, ldname,
                           ld, cols, name);
    const size_t elems_max = SIZE_MAX / es;
    if (rows - 1 > (elems_max - cols) / ld)
        return hcrt__error(dev->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument '%s': %zu x %zu elements (leading dimension %zu) overflow the address space",
                           fn, name, rows, cols, ld);
    const size_t bytes = ((rows - 1) * ld + cols) * es;
    if ((uintptr_t)p % es != 0)
        return hcrt__error(dev->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument '%s' (%p) is not aligned to its %zu-byte elements", fn, name, p, es);
    if ((uintptr_t)p > UINTPTR_MAX - bytes)
        return hcrt__error(dev->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' (%p, %zu bytes) wraps the address space",
                           fn, name, p, bytes);
    /* Memory hcrt allocated must be this device's (or registered host memory) and hold the operand. */
    HCRT_CHECK(hcrt__mem_check(dev->ctx, fn, name, p, bytes, dev, true));
    out->lo = (uintptr_t)p;
    out->hi = (uintptr_t)p + bytes;
    return HCRT_OK;
}

/* A dense vector of count elements. */
static hcrt_status_t check_vector(const hcrt_device_t *dev, const char *fn, const char *name, const void *p,
                                  size_t count, size_t es, span_t *out)
{
    return check_operand(dev, fn, name, NULL, p, count ? 1 : 0, count, count, es, out);
}

/* An output that must not share memory with an input (unless `same_ok` and the two are the same range). */
static hcrt_status_t check_disjoint(const hcrt_device_t *dev, const char *fn, const char *out_name, span_t out,
                                    const char *in_name, span_t in, bool same_ok)
{
    if (!spans_overlap(out, in) || (same_ok && spans_equal(out, in)))
        return HCRT_OK;
    return hcrt__error(dev->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' overlaps '%s'%s", fn, out_name, in_name,
                       same_ok ? " without being the same buffer" : "");
}

/* rows * cols without overflow. */
static hcrt_status_t check_product(const hcrt_device_t *dev, const char *fn, const char *what, size_t rows, size_t cols,
                                   size_t es)
{
    if (cols != 0 && rows > SIZE_MAX / es / cols)
        return hcrt__error(dev->ctx, HCRT_ERR_INVALID_ARG, "%s: %s of %zu x %zu elements overflow the address space",
                           fn, what, rows, cols);
    return HCRT_OK;
}

static size_t gemm_dtype_size(hcrt_dtype_t t)
{
    return t == HCRT_F32 ? 4 : (t == HCRT_F16 || t == HCRT_BF16) ? 2 : 0;
}

#define BS(stream) ((stream) ? (stream)->bs : NULL)

/* ---- gemm ------------------------------------------------------------------------------------------ */

hcrt_status_t hcrt_compute_gemm(hcrt_device_t *device, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                                float alpha, const void *a, size_t lda, const void *b, size_t ldb, float beta, float *c,
                                size_t ldc, hcrt_dtype_t dtype, hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_gemm";
    HCRT_CHECK(check_device(device, stream, fn));
    const size_t es = gemm_dtype_size(dtype);
    if (es == 0)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'dtype' is %s (%d); gemm operands are f32, f16 or bf16", fn,
                           hcrt_dtype_name(dtype) ? hcrt_dtype_name(dtype) : "not a dtype", (int)dtype);
    span_t sa, sb, sc;
    /* stored shapes: a is m x k (k x m transposed), b is k x n (n x k transposed) */
    const size_t mn = m && n ? 1 : 0; /* a and b are only read when c has elements */
    HCRT_CHECK(check_operand(device, fn, "a", "lda", a, mn * (trans_a ? k : m), trans_a ? m : k, lda, es, &sa));
    HCRT_CHECK(check_operand(device, fn, "b", "ldb", b, mn * (trans_b ? n : k), trans_b ? k : n, ldb, es, &sb));
    HCRT_CHECK(check_operand(device, fn, "c", "ldc", c, m, n, ldc, sizeof(float), &sc));
    HCRT_CHECK(check_disjoint(device, fn, "c", sc, "a", sa, false));
    HCRT_CHECK(check_disjoint(device, fn, "c", sc, "b", sb, false));
    HCRT_CHECK(check_supported(device, fn));
    if (m == 0 || n == 0)
        return HCRT_OK;
    COMPUTE_CALL(device, "gemm", c, sizeof(float), stream,
                 device->be->compute->gemm(device->be->state, device->index, trans_a, trans_b, m, n, k, alpha, a, lda,
                                           b, ldb, beta, c, ldc, dtype, BS(stream)));
    return HCRT_OK;
}

/* ---- element-wise ------------------------------------------------------------------------------------ */

hcrt_status_t hcrt_compute_bias_add(hcrt_device_t *device, float *y, const float *x, const float *bias, size_t rows,
                                    size_t cols, hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_bias_add";
    HCRT_CHECK(check_device(device, stream, fn));
    HCRT_CHECK(check_product(device, fn, "x and y", rows, cols, sizeof(float)));
    span_t sy, sx, sbias;
    HCRT_CHECK(check_vector(device, fn, "y", y, rows * cols, sizeof(float), &sy));
    HCRT_CHECK(check_vector(device, fn, "x", x, rows * cols, sizeof(float), &sx));
    HCRT_CHECK(check_vector(device, fn, "bias", bias, rows ? cols : 0, sizeof(float), &sbias));
    HCRT_CHECK(check_disjoint(device, fn, "y", sy, "x", sx, true));
    HCRT_CHECK(check_disjoint(device, fn, "y", sy, "bias", sbias, false));
    HCRT_CHECK(check_supported(device, fn));
    if (rows == 0 || cols == 0)
        return HCRT_OK;
    COMPUTE_CALL(device, "bias_add", y, sizeof(float), stream,
                 device->be->compute->bias_add(device->be->state, device->index, y, x, bias, rows, cols, BS(stream)));
    return HCRT_OK;
}

hcrt_status_t hcrt_compute_relu(hcrt_device_t *device, float *y, const float *x, size_t count, hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_relu";
    HCRT_CHECK(check_device(device, stream, fn));
    span_t sy, sx;
    HCRT_CHECK(check_vector(device, fn, "y", y, count, sizeof(float), &sy));
    HCRT_CHECK(check_vector(device, fn, "x", x, count, sizeof(float), &sx));
    HCRT_CHECK(check_disjoint(device, fn, "y", sy, "x", sx, true));
    HCRT_CHECK(check_supported(device, fn));
    if (count == 0)
        return HCRT_OK;
    COMPUTE_CALL(device, "relu", y, sizeof(float), stream,
                 device->be->compute->relu(device->be->state, device->index, y, x, count, BS(stream)));
    return HCRT_OK;
}

hcrt_status_t hcrt_compute_relu_backward(hcrt_device_t *device, float *dx, const float *dy, const float *act,
                                         size_t count, hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_relu_backward";
    HCRT_CHECK(check_device(device, stream, fn));
    span_t sdx, sdy, sact;
    HCRT_CHECK(check_vector(device, fn, "dx", dx, count, sizeof(float), &sdx));
    HCRT_CHECK(check_vector(device, fn, "dy", dy, count, sizeof(float), &sdy));
    HCRT_CHECK(check_vector(device, fn, "act", act, count, sizeof(float), &sact));
    HCRT_CHECK(check_disjoint(device, fn, "dx", sdx, "dy", sdy, true));
    HCRT_CHECK(check_disjoint(device, fn, "dx", sdx, "act", sact, true));
    HCRT_CHECK(check_supported(device, fn));
    if (count == 0)
        return HCRT_OK;
    COMPUTE_CALL(device, "relu_backward", dx, sizeof(float), stream,
                 device->be->compute->relu_backward(device->be->state, device->index, dx, dy, act, count, BS(stream)));
    return HCRT_OK;
}

/* ---- softmax cross-entropy, column sums ----------------------------------------------------------- */

hcrt_status_t hcrt_compute_softmax_xent(hcrt_device_t *device, const float *logits, const int32_t *labels, size_t rows,
                                        size_t classes, float *loss, float *dlogits, bool accumulate,
                                        hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_softmax_xent";
    HCRT_CHECK(check_device(device, stream, fn));
    if (rows > 0 && classes == 0)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'classes' is 0 with %zu rows (no label can be in range)", fn, rows);
    if (loss == NULL && dlogits == NULL)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "%s: arguments 'loss' and 'dlogits' are both NULL", fn);
    HCRT_CHECK(check_product(device, fn, "logits", rows, classes, sizeof(float)));
    span_t sz, sy, sl, sd;
    HCRT_CHECK(check_vector(device, fn, "logits", logits, rows * classes, sizeof(float), &sz));
    HCRT_CHECK(check_vector(device, fn, "labels", labels, rows, sizeof(int32_t), &sy));
    HCRT_CHECK(check_vector(device, fn, "loss", loss, loss ? 1 : 0, sizeof(float), &sl));
    HCRT_CHECK(check_vector(device, fn, "dlogits", dlogits, dlogits ? rows * classes : 0, sizeof(float), &sd));
    HCRT_CHECK(check_disjoint(device, fn, "dlogits", sd, "logits", sz, true));
    HCRT_CHECK(check_disjoint(device, fn, "dlogits", sd, "labels", sy, false));
    HCRT_CHECK(check_disjoint(device, fn, "loss", sl, "logits", sz, false));
    HCRT_CHECK(check_disjoint(device, fn, "loss", sl, "labels", sy, false));
    HCRT_CHECK(check_disjoint(device, fn, "loss", sl, "dlogits", sd, false));
    HCRT_CHECK(check_supported(device, fn));
    /* nothing to write: no rows and either no loss or a loss that keeps its value */
    if (rows == 0 && (loss == NULL || accumulate))
        return HCRT_OK;
    COMPUTE_CALL(device, "softmax_xent", dlogits ? dlogits : loss, sizeof(float), stream,
                 device->be->compute->softmax_xent(device->be->state, device->index, logits, labels, rows, classes,
                                                   loss, dlogits, accumulate, BS(stream)));
    return HCRT_OK;
}

hcrt_status_t hcrt_compute_col_sum(hcrt_device_t *device, float *out, const float *x, size_t rows, size_t cols,
                                   bool accumulate, hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_col_sum";
    HCRT_CHECK(check_device(device, stream, fn));
    HCRT_CHECK(check_product(device, fn, "x", rows, cols, sizeof(float)));
    span_t so, sx;
    HCRT_CHECK(check_vector(device, fn, "out", out, cols, sizeof(float), &so));
    HCRT_CHECK(check_vector(device, fn, "x", x, rows * cols, sizeof(float), &sx));
    HCRT_CHECK(check_disjoint(device, fn, "out", so, "x", sx, false));
    HCRT_CHECK(check_supported(device, fn));
    if (cols == 0 || (rows == 0 && accumulate))
        return HCRT_OK;
    COMPUTE_CALL(
        device, "col_sum", out, sizeof(float), stream,
        device->be->compute->col_sum(device->be->state, device->index, out, x, rows, cols, accumulate, BS(stream)));
    return HCRT_OK;
}

/* ---- optimizers --------------------------------------------------------------------------------------- */

void hcrt_optim_params_init(hcrt_optim_params_t *params)
{
    if (params == NULL)
        return;
    memset(params, 0, sizeof(*params));
    params->struct_size = sizeof(*params);
    params->kind = HCRT_OPTIM_SGD;
    params->step = 1;
    params->lr = 0.01;
    params->grad_scale = 1.0;
    params->beta1 = 0.9;
    params->beta2 = 0.999;
    params->eps = 1e-8;
}

/* A field that must be a finite number >= lo (and < hi when hi_open). */
static hcrt_status_t check_hyper(const hcrt_context_t *ctx, const char *fn, const char *name, double v, double lo,
                                 double hi, bool hi_open)
{
    if (isfinite(v) && v >= lo && (!hi_open || v < hi))
        return HCRT_OK;
    if (hi_open)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params->%s' (%g) is not in [%g, %g)", fn, name, v,
                           lo, hi);
    return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params->%s' (%g) is not a finite number >= %g", fn,
                       name, v, lo);
}

/* A lowered constant must be a finite f32. */
static hcrt_status_t check_f32(const hcrt_context_t *ctx, const char *fn, const char *what, float v)
{
    if (isfinite(v))
        return HCRT_OK;
    return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params': %s does not fit an f32", fn, what);
}

/*
 * Reads the fields of the caller's params that its struct_size covers (defaults for the rest), checks
 * them and lowers them to the backend's f32 constants (hcrt/backend_compute.h). Also gives the number of
 * state floats `count` parameters need.
 */
static hcrt_status_t lower_optim(const hcrt_context_t *ctx, const char *fn, const hcrt_optim_params_t *params,
                                 size_t count, hcrt_backend_optim_t *o, size_t *state_count)
{
    if (params == NULL)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params' is NULL", fn);
    const size_t need = offsetof(hcrt_optim_params_t, lr) + sizeof(double);
    if (params->struct_size < need)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'params->struct_size' is %zu (initialise params with hcrt_optim_params_init)",
                           fn, params->struct_size);
    hcrt_optim_params_t p;
    hcrt_optim_params_init(&p);
    memcpy(&p, params, params->struct_size < sizeof(p) ? params->struct_size : sizeof(p));
    if ((unsigned)p.kind >= HCRT_OPTIM_COUNT)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params->kind' is %d, not an hcrt_optimizer_t", fn,
                           (int)p.kind);
    HCRT_CHECK(check_hyper(ctx, fn, "lr", p.lr, 0, 0, false));
    HCRT_CHECK(check_hyper(ctx, fn, "weight_decay", p.weight_decay, 0, 0, false));
    if (!isfinite(p.grad_scale))
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params->grad_scale' (%g) is not finite", fn,
                           p.grad_scale);
    if (count > SIZE_MAX / (2 * sizeof(float)))
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'count' (%zu) overflows the address space", fn,
                           count);
    memset(o, 0, sizeof(*o));
    o->struct_size = sizeof(*o);
    o->kind = (int32_t)p.kind;
    o->grad_scale = (float)p.grad_scale;
    HCRT_CHECK(check_f32(ctx, fn, "grad_scale", o->grad_scale));
    if (p.kind == HCRT_OPTIM_SGD) {
        HCRT_CHECK(check_hyper(ctx, fn, "momentum", p.momentum, 0, 0, false));
        if (p.nesterov && !(p.momentum > 0))
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params->nesterov' needs params->momentum > 0",
                               fn);
        o->lr = (float)p.lr;
        o->momentum = (float)p.momentum;
        o->weight_decay = (float)p.weight_decay;
        o->nesterov = p.nesterov ? 1 : 0;
        HCRT_CHECK(check_f32(ctx, fn, "lr", o->lr));
        HCRT_CHECK(check_f32(ctx, fn, "momentum", o->momentum));
        HCRT_CHECK(check_f32(ctx, fn, "weight_decay", o->weight_decay));
        *state_count = p.momentum != 0 ? count : 0;
        return HCRT_OK;
    }
    HCRT_CHECK(check_hyper(ctx, fn, "beta1", p.beta1, 0, 1, true));
    HCRT_CHECK(check_hyper(ctx, fn, "beta2", p.beta2, 0, 1, true));
    HCRT_CHECK(check_hyper(ctx, fn, "eps", p.eps, 0, 0, false));
    if (p.step == 0)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params->step' is 0 (AdamW counts updates from 1)",
                           fn);
    const double steps = (double)p.step;
    o->decay = (float)(1.0 - p.lr * p.weight_decay);
    o->step_size = (float)(p.lr / (1.0 - pow(p.beta1, steps)));
    o->bias2_sqrt = (float)sqrt(1.0 - pow(p.beta2, steps));
    o->beta1 = (float)p.beta1;
    o->one_minus_beta1 = (float)(1.0 - p.beta1);
    o->beta2 = (float)p.beta2;
    o->one_minus_beta2 = (float)(1.0 - p.beta2);
    o->eps = (float)p.eps;
    HCRT_CHECK(check_f32(ctx, fn, "1 - lr * weight_decay", o->decay));
    HCRT_CHECK(check_f32(ctx, fn, "lr / (1 - beta1^step)", o->step_size));
    HCRT_CHECK(check_f32(ctx, fn, "eps", o->eps));
    if (!(o->bias2_sqrt > 0))
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'params': sqrt(1 - beta2^step) is 0 in f32", fn);
    *state_count = 2 * count;
    return HCRT_OK;
}

hcrt_status_t hcrt_optim_state_count(const hcrt_optim_params_t *params, size_t count, size_t *state_count)
{
    HCRT_CHECK_ARG(NULL, state_count != NULL, "state_count", "is NULL");
    hcrt_backend_optim_t o;
    size_t n = 0;
    HCRT_CHECK(lower_optim(NULL, "hcrt_optim_state_count", params, count, &o, &n));
    *state_count = n;
    return HCRT_OK;
}

hcrt_status_t hcrt_compute_optim_step(hcrt_device_t *device, const hcrt_optim_params_t *params, float *param,
                                      const float *grad, float *state, size_t count, hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_optim_step";
    HCRT_CHECK(check_device(device, stream, fn));
    hcrt_backend_optim_t o;
    size_t nstate = 0;
    HCRT_CHECK(lower_optim(device->ctx, fn, params, count, &o, &nstate));
    span_t sp, sg, ss;
    HCRT_CHECK(check_vector(device, fn, "param", param, count, sizeof(float), &sp));
    HCRT_CHECK(check_vector(device, fn, "grad", grad, count, sizeof(float), &sg));
    if (nstate > 0 && state == NULL)
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG,
                           "%s: argument 'state' is NULL; this optimizer keeps %zu floats of state for %zu parameters "
                           "(hcrt_optim_state_count)",
                           fn, nstate, count);
    HCRT_CHECK(check_vector(device, fn, "state", state, nstate, sizeof(float), &ss));
    HCRT_CHECK(check_disjoint(device, fn, "param", sp, "grad", sg, false));
    HCRT_CHECK(check_disjoint(device, fn, "state", ss, "param", sp, false));
    HCRT_CHECK(check_disjoint(device, fn, "state", ss, "grad", sg, false));
    HCRT_CHECK(check_supported(device, fn));
    if (count == 0)
        return HCRT_OK;
    COMPUTE_CALL(device, "optim_step", param, sizeof(float), stream,
                 device->be->compute->optim_step(device->be->state, device->index, &o, param, grad,
                                                 nstate ? state : NULL, count, BS(stream)));
    return HCRT_OK;
}

/* ---- casts ------------------------------------------------------------------------------------------ */

hcrt_status_t hcrt_compute_cast(hcrt_device_t *device, void *dst, hcrt_dtype_t dst_dtype, const void *src,
                                hcrt_dtype_t src_dtype, size_t count, hcrt_stream_t *stream)
{
    static const char fn[] = "hcrt_compute_cast";
    HCRT_CHECK(check_device(device, stream, fn));
    const size_t des = gemm_dtype_size(dst_dtype), ses = gemm_dtype_size(src_dtype);
    if (des == 0 || ses == 0) {
        const hcrt_dtype_t bad = des == 0 ? dst_dtype : src_dtype;
        const char *name = hcrt_dtype_name(bad);
        return hcrt__error(device->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' is %s (%d); casts take f32, f16, bf16",
                           fn, des == 0 ? "dst_dtype" : "src_dtype", name ? name : "not a dtype", (int)bad);
    }
    span_t sd, ss;
    HCRT_CHECK(check_vector(device, fn, "dst", dst, count, des, &sd));
    HCRT_CHECK(check_vector(device, fn, "src", src, count, ses, &ss));
    HCRT_CHECK(check_disjoint(device, fn, "dst", sd, "src", ss, dst_dtype == src_dtype));
    HCRT_CHECK(check_supported(device, fn));
    if (count == 0 || (dst == src && dst_dtype == src_dtype))
        return HCRT_OK;
    COMPUTE_CALL(
        device, "cast", dst, des, stream,
        device->be->compute->cast(device->be->state, device->index, dst, dst_dtype, src, src_dtype, count, BS(stream)));
    return HCRT_OK;
}
