/*
 * runtime/balance/exact.c - hcrt/exact.h: exact gradient sums over micro-batches and ranks.
 *
 * Within a step each element's values are summed in a double, exactly (kernels/exact_kernels.c): a fold
 * reads 4 bytes of gradient and reads and writes 8 of sum per element, which is what keeps exact mode
 * cheap beside the compute of a micro-batch. The rare inexact addition spills its exact error into the
 * element's digit words; to avoid clearing all the words every step, they are organised in blocks that
 * are cleared on their first spill of a step (a generation stamp per block) and otherwise simply
 * overwritten by the flush of the sums at the end of the step.
 *
 * The digit words of all tensors live in one host array, word-major per tensor, followed by three
 * trailer words (this rank's samples, micro-batches added, and whether it added a value outside the
 * window), so one int64 SUM allreduce carries everything a step needs to agree on: the sums, the global
 * count and the error state. Device tensors stream through two persistent pinned chunks, small enough to
 * stay in the core's cache between the copy and the fold: the copy of the next chunk, on a stream of the
 * device, runs while the host folds (or converts) the current one.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "hcrt/exact.h"
#include "kernels/exact_kernels.h"
#include "runtime/trace.h"

#define EXACT_SUBSYS "exact"
/* Elements per staging chunk: 256 KiB of f32, with their digit words within a 2 MiB L2. */
#define STAGE_ELEMS ((size_t)65536)
#define TRAILER     3
/* The most ranks whose normalised words may be summed (lower digits below 2^47 each). */
#define MAX_RANKS 32768
#define NAME_LEN  255
/* Elements per block of words cleared on its first spill of a step. */
#define BLOCK ((size_t)4096)

typedef struct exact_tensor {
    char name[NAME_LEN + 1];
    hcrt_buffer_t buf;
    bool host;     /* the buffer is host memory: folded in and written in place, no staging */
    size_t offset; /* its first digit word: words + offset, digit j of element i at + j * count + i */
    size_t first;  /* its first element among all tensors' (its sums at sums + first) */
    size_t block0; /* its first block's stamp */
} exact_tensor_t;

struct hcrt_exact {
    hcrt_comm_t *comm;
    hcrt_context_t *ctx;
    hcrt__exact_window_t w;
    exact_tensor_t *t;
    size_t n;
    size_t elems;  /* elements of all tensors */
    size_t nwords; /* K * elems + TRAILER */
    int64_t *words;
    double *sums;    /* per element, the step's sum so far (exact but for the spills) */
    uint32_t *stamp; /* per block: the generation in which its words took a spill */
    size_t nblocks;
    uint32_t gen;    /* the current step's generation */
    float *stage[2]; /* STAGE_ELEMS floats each, pinned by stage_dev when it is not NULL */
    hcrt_device_t *stage_dev;
    hcrt_stream_t *stream; /* of stage_dev: the chunk copies */
    hcrt_event_t *ev[2];   /* copy of the chunk in stage[i] done */
    hcrt_device_t *host;
    int64_t adds; /* micro-batches added since the last allreduce (0: the next fold assigns) */
    bool bad;     /* this rank added a value outside the window */
    char bad_msg[512];
};

void hcrt_exact_params_init(hcrt_exact_params_t *params)
{
    if (params == NULL)
        return;
    memset(params, 0, sizeof(*params));
    params->struct_size = sizeof(*params);
    params->lsb_exponent = -64;
    params->top_exponent = 32;
}

/* Forgets the step: the next fold assigns the sums, and a new generation leaves every block of words
 * unspilled. Nothing is cleared. */
static void reset(hcrt_exact_t *a)
{
    a->adds = 0;
    if (++a->gen == 0) { /* after 2^32 steps: make the stamps start over */
        memset(a->stamp, 0, a->nblocks * sizeof(*a->stamp));
        a->gen = 1;
    }
    a->bad = false;
    a->bad_msg[0] = '\0';
}

/* Checks the tensors and names of hcrt_exact_create, naming the first bad one. */
static hcrt_status_t check_tensors(hcrt_context_t *ctx, const hcrt_buffer_t *bufs, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *why = bufs[i].ptr == NULL         ? "has a NULL ptr"
                          : bufs[i].count == 0        ? "has a count of 0"
                          : bufs[i].dtype != HCRT_F32 ? "is not HCRT_F32 (exact mode sums f32 gradients)"
                          : bufs[i].count > (SIZE_MAX / 8 - TRAILER) / HCRT__EXACT_WORDS_MAX ? "is too large"
                          : bufs[i].device != NULL && bufs[i].device->ctx != ctx
                              ? "has a device of another context than the communicator"
                              : NULL;
        if (why != NULL)
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_exact_create: argument 'bufs[%zu]' %s", i, why);
        if (names != NULL && (names[i] == NULL || strlen(names[i]) > NAME_LEN))
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_exact_create: argument 'names[%zu]' is %s", i,
                               names[i] == NULL ? "NULL" : "longer than 255 bytes");
    }
    return HCRT_OK;
}

/* Every rank must use the same window and tensor sizes (compared as max and -min over ranks), and every
 * rank must have its accumulator (local_st: how its allocations went), so that all ranks succeed or fail
 * together. One allreduce of 10 int64. */
static hcrt_status_t check_same(hcrt_exact_t *a, hcrt_status_t local_st)
{
    uint64_t sizes = 1469598103934665603ull; /* FNV-1a over the element counts */
    for (size_t i = 0; i < a->n; i++)
        sizes = (sizes ^ a->t[i].buf.count) * 1099511628211ull;
    int64_t v[10] = {a->w.lsb, a->w.top, (int64_t)a->n, (int64_t)(sizes >> 1)};
    for (int i = 0; i < 4; i++)
        v[4 + i] = -v[i];
    v[8] = local_st != HCRT_OK ? INT32_MAX - a->comm->rank : -1; /* the lowest failed rank wins */
    v[9] = -(int64_t)local_st;                                   /* the most negative status */
    HCRT_CHECK(hcrt_comm_allreduce(a->comm, HCRT_IN_PLACE, v, 10, HCRT_I64, HCRT_OP_MAX, NULL));
    if (local_st != HCRT_OK)
        return local_st; /* its own message stands */
    if (v[8] >= 0)
        return hcrt__error(a->ctx, (hcrt_status_t)-v[9],
                           "hcrt_exact_create: rank %lld could not create its "
                           "accumulator (%s; its log says why)",
                           (long long)(INT32_MAX - v[8]), hcrt_status_name((hcrt_status_t)-v[9]));
    static const char *const what[] = {"params->lsb_exponent", "params->top_exponent", "n", "bufs[].count"};
    for (int i = 0; i < 4; i++)
        if (v[i] != -v[4 + i])
            return hcrt__error(a->ctx, HCRT_ERR_MISMATCH,
                               "hcrt_exact_create: the ranks passed different %s "
                               "(every rank must register the same tensors and window)",
                               what[i]);
    return HCRT_OK;
}

/* The accumulator's memory: words, sums, block stamps, and for device tensors the staging chunks, events
 * and stream. */
static hcrt_status_t allocate(hcrt_exact_t *a)
{
    a->words = calloc(a->nwords, sizeof(*a->words));
    a->sums = calloc(a->elems, sizeof(*a->sums));
    a->stamp = calloc(a->nblocks, sizeof(*a->stamp));
    a->gen = 1;
    if (a->words == NULL || a->sums == NULL || a->stamp == NULL)
        return hcrt__error(a->ctx, HCRT_ERR_NO_MEMORY,
                           "hcrt_exact_create: out of memory for the accumulator of "
                           "%zu elements (%zu MiB)",
                           a->elems, (a->nwords * 8 + a->elems * 8) >> 20);
    if (a->stage_dev == NULL)
        return HCRT_OK;
    for (int i = 0; i < 2; i++) {
        void *stage = NULL;
        HCRT_CHECK(hcrt_mem_alloc_host(a->stage_dev, STAGE_ELEMS * sizeof(float), &stage));
        a->stage[i] = stage;
        HCRT_CHECK(hcrt_event_create(a->stage_dev, &a->ev[i]));
    }
    return hcrt_stream_create(a->stage_dev, &a->stream);
}

hcrt_status_t hcrt_exact_create(hcrt_comm_t *comm, const hcrt_buffer_t *bufs, const char *const *names, size_t n,
                                const hcrt_exact_params_t *params, hcrt_exact_t **out)
{
    hcrt_status_t st;
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    hcrt_context_t *ctx = comm->ctx;
    HCRT_CHECK_ARG(ctx, bufs != NULL, "bufs", "is NULL");
    HCRT_CHECK_ARG(ctx, n >= 1, "n", "is 0");
    HCRT_CHECK_ARG(ctx, out != NULL, "acc", "is NULL");
    hcrt_exact_params_t p;
    hcrt_exact_params_init(&p);
    if (params != NULL) {
        HCRT_CHECK_ARG(ctx,
                       params->struct_size >= offsetof(hcrt_exact_params_t, top_exponent) + sizeof(int) &&
                           params->struct_size <= 65536,
                       "params->struct_size", "is out of range (initialise params with hcrt_exact_params_init)");
        memcpy(&p, params, params->struct_size < sizeof(p) ? params->struct_size : sizeof(p));
    }
    hcrt__exact_window_t w;
    if (!hcrt__exact_window_init(&w, p.lsb_exponent, p.top_exponent))
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "hcrt_exact_create: argument 'params' gives the window "
                           "[2^%d, 2^%d); lsb_exponent must be >= %d, top_exponent <= %d, and the window at least "
                           "24 bits wide",
                           p.lsb_exponent, p.top_exponent, HCRT__EXACT_LSB_MIN, HCRT__EXACT_TOP_MAX);
    if (comm->size > MAX_RANKS)
        return hcrt__error(ctx, HCRT_ERR_NOT_SUPPORTED, "hcrt_exact_create: %d ranks; exact mode sums at most %d",
                           comm->size, MAX_RANKS);
    HCRT_CHECK(check_tensors(ctx, bufs, names, n));

    hcrt_exact_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_exact_create: out of memory");
    a->comm = comm;
    a->ctx = ctx;
    a->w = w;
    HCRT_CHECK_GOTO(hcrt_device_host(ctx, &a->host), st, err);
    a->n = n;
    a->t = calloc(n, sizeof(*a->t));
    if (a->t == NULL) {
        st = hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_exact_create: out of memory");
        goto err;
    }
    for (size_t i = 0; i < n; i++) {
        exact_tensor_t *t = &a->t[i];
        if (names != NULL)
            snprintf(t->name, sizeof(t->name), "%s", names[i]);
        else
            snprintf(t->name, sizeof(t->name), "tensor %zu", i);
        t->buf = bufs[i];
        t->host = t->buf.device == NULL || hcrt__device_is_host(t->buf.device);
        t->offset = (size_t)w.words * a->elems;
        t->first = a->elems;
        t->block0 = a->nblocks;
        a->nblocks += (t->buf.count + BLOCK - 1) / BLOCK;
        if (a->elems > (SIZE_MAX / 8 - TRAILER) / HCRT__EXACT_WORDS_MAX - t->buf.count) {
            st = hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_exact_create: argument 'bufs' holds too many elements");
            goto err;
        }
        a->elems += t->buf.count;
        if (!t->host && a->stage_dev == NULL)
            a->stage_dev = t->buf.device;
    }
    a->nwords = (size_t)w.words * a->elems + TRAILER;
    HCRT_CHECK_GOTO(check_same(a, allocate(a)), st, err);
    HCRT_DEBUG(EXACT_SUBSYS, "exact accumulator: %zu tensors, %zu elements, window [2^%d, 2^%d), %d words", a->n,
               a->elems, w.lsb, w.top, w.words);
    *out = a;
    return HCRT_OK;
err:
    hcrt_exact_destroy(a);
    return st;
}

hcrt_status_t hcrt_exact_destroy(hcrt_exact_t *a)
{
    if (a == NULL)
        return HCRT_OK;
    hcrt_stream_destroy(a->stream); /* waits for its copies first */
    for (int i = 0; i < 2; i++) {
        hcrt_event_destroy(a->ev[i]);
        if (a->stage[i] != NULL)
            hcrt_mem_free_host(a->stage_dev, a->stage[i]);
    }
    free(a->words);
    free(a->sums);
    free(a->stamp);
    free(a->t);
    free(a);
    return HCRT_OK;
}

/* Wraps a device copy's error with what was being copied (the copy's own detail is copied first: it
 * lives in the buffer the new message is written to). */
static hcrt_status_t copy_failed(hcrt_exact_t *a, hcrt_status_t st, const char *what, const exact_tensor_t *t)
{
    char detail[512];
    snprintf(detail, sizeof(detail), "%s", hcrt_last_error(a->ctx));
    return hcrt__error(a->ctx, st, "%s '%s' (%s device) failed: %s", what, t->name, hcrt_device_backend(t->buf.device),
                       detail);
}

typedef struct spill_ctx {
    hcrt_exact_t *a;
    const exact_tensor_t *t;
    size_t base; /* element of t at index 0 of the fold */
} spill_ctx_t;

/* An inexact addition: its exact error goes to the element's words, in a block cleared on its first
 * spill of the step. */
static void spill(void *arg, size_t i, double err)
{
    spill_ctx_t *c = arg;
    hcrt_exact_t *a = c->a;
    const exact_tensor_t *t = c->t;
    size_t e = c->base + i, b = t->block0 + e / BLOCK, count = t->buf.count;
    int64_t *words = a->words + t->offset;
    if (a->stamp[b] != a->gen) {
        size_t lo = e / BLOCK * BLOCK, len = count - lo < BLOCK ? count - lo : BLOCK;
        for (int j = 0; j < a->w.words; j++)
            memset(words + (size_t)j * count + lo, 0, len * sizeof(*words));
        a->stamp[b] = a->gen;
    }
    hcrt__exact_split_add(words, count, e, err, &a->w);
}

/* Folds n values at x (host memory) into elements [first, first + n) of tensor t. */
static void fold(hcrt_exact_t *a, const exact_tensor_t *t, size_t first, const float *x, size_t n)
{
    spill_ctx_t c = {a, t, first};
    size_t bad = hcrt__exact_fold_f32(a->sums + t->first + first, x, n, &a->w, a->adds == 0, spill, &c);
    if (bad < n && !a->bad) {
        a->bad = true;
        snprintf(a->bad_msg, sizeof(a->bad_msg),
                 "tensor '%s' element %zu of micro-batch %lld is %.9g (|x| < 2^%d "
                 "required, finite)",
                 t->name, first + bad, (long long)a->adds + 1, (double)x[bad], a->w.top);
        HCRT_ERROR(EXACT_SUBSYS, "value outside the exact window: %s", a->bad_msg);
    }
}

/* Queues the device->host copy of chunk k of tensor t into stage[k % 2]. */
static hcrt_status_t fetch(hcrt_exact_t *a, const exact_tensor_t *t, size_t k)
{
    size_t off = k * STAGE_ELEMS, m = t->buf.count - off < STAGE_ELEMS ? t->buf.count - off : STAGE_ELEMS;
    HCRT_CHECK(hcrt_memcpy_async(a->host, a->stage[k % 2], t->buf.device, (const float *)t->buf.ptr + off,
                                 m * sizeof(float), a->stream));
    return hcrt_event_record(a->ev[k % 2], a->stream);
}

/* Folds a device tensor chunk by chunk, the copy of chunk k + 1 running while chunk k is folded. A
 * tensor of another device than the staging one is copied synchronously. */
static hcrt_status_t fold_device(hcrt_exact_t *a, const exact_tensor_t *t)
{
    size_t nchunks = (t->buf.count + STAGE_ELEMS - 1) / STAGE_ELEMS;
    bool async = t->buf.device == a->stage_dev;
    if (async)
        HCRT_CHECK(fetch(a, t, 0));
    for (size_t k = 0; k < nchunks; k++) {
        size_t off = k * STAGE_ELEMS, m = t->buf.count - off < STAGE_ELEMS ? t->buf.count - off : STAGE_ELEMS;
        if (async) {
            if (k + 1 < nchunks)
                HCRT_CHECK(fetch(a, t, k + 1));
            HCRT_CHECK(hcrt_event_sync(a->ev[k % 2]));
        } else {
            HCRT_CHECK(hcrt_memcpy(a->host, a->stage[k % 2], t->buf.device, (const float *)t->buf.ptr + off,
                                   m * sizeof(float)));
        }
        fold(a, t, off, a->stage[k % 2], m);
    }
    return HCRT_OK;
}

hcrt_status_t hcrt_exact_add(hcrt_exact_t *a)
{
    HCRT_CHECK_ARG(NULL, a != NULL, "acc", "is NULL");
    for (size_t i = 0; i < a->n; i++) {
        const exact_tensor_t *t = &a->t[i];
        if (t->host) {
            fold(a, t, 0, t->buf.ptr, t->buf.count);
            continue;
        }
        hcrt_status_t st = fold_device(a, t);
        if (st != HCRT_OK) {
            /* Folded partly: the step's sums are no longer whole micro-batches. Drain the copies. */
            hcrt_stream_sync(a->stream);
            reset(a);
            return copy_failed(a, st, "hcrt_exact_add: copying tensor", t);
        }
    }
    a->adds++;
    return HCRT_OK;
}

/* The step's sums into the words: assigned in blocks without spills, added (then normalised) in the
 * others; zeros when nothing was added. */
static void flush(hcrt_exact_t *a)
{
    for (size_t i = 0; i < a->n; i++) {
        const exact_tensor_t *t = &a->t[i];
        size_t count = t->buf.count;
        int64_t *words = a->words + t->offset;
        if (a->adds == 0) {
            memset(words, 0, (size_t)a->w.words * count * sizeof(*words));
            continue;
        }
        for (size_t lo = 0; lo < count;) {
            bool spilled = a->stamp[t->block0 + lo / BLOCK] == a->gen;
            size_t hi = lo;
            while (hi < count && (a->stamp[t->block0 + hi / BLOCK] == a->gen) == spilled)
                hi = hi + BLOCK < count ? hi + BLOCK : count;
            hcrt__exact_flush(words + lo, count, a->sums + t->first + lo, hi - lo, &a->w, spilled);
            if (spilled)
                hcrt__exact_normalize(words + lo, count, hi - lo, &a->w);
            lo = hi;
        }
    }
}

/* Every rank learns which rank first added a bad value and what it was, and fails alike. */
static hcrt_status_t report_bad(hcrt_exact_t *a)
{
    int64_t who = a->bad ? a->comm->rank : INT64_MAX;
    char msg[sizeof(a->bad_msg)];
    HCRT_CHECK(hcrt_comm_allreduce(a->comm, HCRT_IN_PLACE, &who, 1, HCRT_I64, HCRT_OP_MIN, NULL));
    memcpy(msg, a->bad_msg, sizeof(msg));
    HCRT_CHECK(hcrt_comm_broadcast(a->comm, msg, sizeof(msg), HCRT_U8, (int)who, NULL));
    msg[sizeof(msg) - 1] = '\0';
    return hcrt__error(a->ctx, HCRT_ERR_INVALID_ARG,
                       "hcrt_exact_allreduce: rank %lld added a value outside the "
                       "exact window [2^%d, 2^%d): %s",
                       (long long)who, a->w.lsb, a->w.top, msg);
}

/* Writes tensor t's exact values, divided by divisor, rounded to f32. */
static hcrt_status_t write_out(hcrt_exact_t *a, const exact_tensor_t *t, int64_t divisor)
{
    const int64_t *words = a->words + t->offset;
    if (t->host) {
        hcrt__exact_to_f32(t->buf.ptr, words, t->buf.count, t->buf.count, &a->w, divisor);
        return HCRT_OK;
    }
    /* Chunk k is converted into stage[k % 2] once the copy of chunk k - 2 out of it is done, and copied
     * to the device while chunk k + 1 is converted. */
    bool async = t->buf.device == a->stage_dev;
    hcrt_status_t st = HCRT_OK;
    for (size_t k = 0, off = 0; off < t->buf.count && st == HCRT_OK; k++, off += STAGE_ELEMS) {
        size_t m = t->buf.count - off < STAGE_ELEMS ? t->buf.count - off : STAGE_ELEMS;
        if (async && k >= 2)
            HCRT_CHECK_GOTO(hcrt_event_sync(a->ev[k % 2]), st, out);
        hcrt__exact_to_f32(a->stage[k % 2], words + off, t->buf.count, m, &a->w, divisor);
        if (async) {
            HCRT_CHECK_GOTO(hcrt_memcpy_async(t->buf.device, (float *)t->buf.ptr + off, a->host, a->stage[k % 2],
                                              m * sizeof(float), a->stream),
                            st, out);
            HCRT_CHECK_GOTO(hcrt_event_record(a->ev[k % 2], a->stream), st, out);
        } else {
            st = hcrt_memcpy(t->buf.device, (float *)t->buf.ptr + off, a->host, a->stage[k % 2], m * sizeof(float));
        }
    }
out:
    if (async) {
        hcrt_status_t sync = hcrt_stream_sync(a->stream);
        st = st != HCRT_OK ? st : sync;
    }
    if (st != HCRT_OK)
        return copy_failed(a, st, "hcrt_exact_allreduce: copying the result to tensor", t);
    return HCRT_OK;
}

hcrt_status_t hcrt_exact_allreduce(hcrt_exact_t *a, int64_t local_samples, int64_t *global_samples, unsigned flags)
{
    HCRT_CHECK_ARG(NULL, a != NULL, "acc", "is NULL");
    HCRT_CHECK_ARG(a->ctx, local_samples >= 0, "local_samples", "is negative");
    if (flags & ~HCRT_EXACT_MEAN)
        return hcrt__error(a->ctx, HCRT_ERR_INVALID_ARG,
                           "hcrt_exact_allreduce: argument 'flags' has unknown bits "
                           "0x%x",
                           flags & ~HCRT_EXACT_MEAN);
    double t0 = hcrt__trace_on(a->ctx) ? hcrt__trace_clock() : 0;
    hcrt_status_t st;
    flush(a);
    int64_t *trailer = a->words + a->nwords - TRAILER;
    trailer[0] = local_samples;
    trailer[1] = a->adds;
    trailer[2] = a->bad;
    int64_t local_adds = a->adds;
    HCRT_CHECK_GOTO(hcrt_comm_allreduce(a->comm, HCRT_IN_PLACE, a->words, a->nwords, HCRT_I64, HCRT_OP_SUM, NULL), st,
                    out);
    int64_t samples = trailer[0], adds = trailer[1];
    if (trailer[2] != 0) {
        st = report_bad(a);
        goto out;
    }
    if ((uint64_t)adds > hcrt__exact_max_adds(&a->w)) {
        st = hcrt__error(a->ctx, HCRT_ERR_INVALID_ARG,
                         "hcrt_exact_allreduce: %lld micro-batches were added over all "
                         "ranks; the window [2^%d, 2^%d) holds at most %llu per reduction (narrow it, or reduce more "
                         "often)",
                         (long long)adds, a->w.lsb, a->w.top, (unsigned long long)hcrt__exact_max_adds(&a->w));
        goto out;
    }
    int64_t divisor = (flags & HCRT_EXACT_MEAN) && samples > 0 ? samples : 1;
    for (size_t i = 0; i < a->n; i++)
        HCRT_CHECK_GOTO(write_out(a, &a->t[i], divisor), st, out);
    if (global_samples != NULL)
        *global_samples = samples;
    if (t0 != 0)
        hcrt__trace_event(a->ctx, HCRT__LANE_BALANCE, 'X', "exact allreduce", "exact", t0, hcrt__trace_clock() - t0,
                          "\"elements\":%zu,\"words\":%d,\"bytes\":%zu,\"micro_batches\":%lld,"
                          "\"micro_batches_all_ranks\":%lld,\"samples\":%lld",
                          a->elems, a->w.words, a->nwords * sizeof(int64_t), (long long)local_adds, (long long)adds,
                          (long long)samples);
    st = HCRT_OK;
out:
    reset(a);
    return st;
}

hcrt_status_t hcrt_exact_reset(hcrt_exact_t *a)
{
    HCRT_CHECK_ARG(NULL, a != NULL, "acc", "is NULL");
    reset(a);
    return HCRT_OK;
}

hcrt_status_t hcrt_exact_info(const hcrt_exact_t *a, int *words, int64_t *max_adds)
{
    HCRT_CHECK_ARG(NULL, a != NULL, "acc", "is NULL");
    if (words != NULL)
        *words = a->w.words;
    if (max_adds != NULL)
        *max_adds = (int64_t)hcrt__exact_max_adds(&a->w);
    return HCRT_OK;
}
