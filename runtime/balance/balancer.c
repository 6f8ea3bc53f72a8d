/*
 * runtime/balance/balancer.c - hcrt/balance.h: measuring, agreeing and re-planning.
 *
 * Each rank keeps a moving average of its own throughput; on re-plan steps the ranks allgather their
 * averages (one double each) and every rank runs the same decision (plan.c) on the same numbers, so no
 * rank ever needs to be told the plan. At creation they allgather their parameters once, to catch a
 * rank configured differently before it could make the ranks disagree, and their caps.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"
#include "hcrt/balance.h"
#include "runtime/balance/plan.h"
#include "runtime/trace.h"

#define BAL_SUBSYS "balance"

struct hcrt_balancer {
    hcrt_comm_t *comm;
    hcrt_context_t *ctx;
    int rank, n;
    hcrt_balance_params_t p;
    int64_t *caps;     /* per rank: most micro-batches (0: none) */
    int64_t *shares;   /* the plan in force */
    int64_t *proposal; /* scratch for decisions */
    double *rates;     /* per rank: the averages gathered at the last re-plan */
    double avg;        /* this rank's moving average (samples/s), 0 before any measurement */
    int64_t step_samples;
    double step_seconds;
    int64_t steps;    /* steps completed */
    bool static_done; /* static mode: its one re-plan happened */
    hcrt_balance_decision_t last;
    char *text;
    size_t text_cap;
};

/* What each rank tells the others at creation. */
typedef struct create_wire {
    int64_t micro_batches, micro_batch_size, mode, interval, cap;
    double speed;
} create_wire_t;

void hcrt_balance_params_init(hcrt_balance_params_t *params)
{
    if (params == NULL)
        return;
    memset(params, 0, sizeof(*params));
    params->struct_size = sizeof(*params);
    params->mode = HCRT_BALANCE_ONLINE;
    params->interval = 4;
    params->smoothing = 0.3;
    params->hysteresis = 0.1;
    params->warmup_steps = 1;
    params->use_device_speed = true;
}

/* Argument checks of hcrt_balancer_create, naming the field. */
#define CHECK_PARAM(cond, name, why)                                                                                   \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_balancer_create: argument 'params->%s' %s", (name),    \
                               (why));                                                                                 \
    } while (0)

static hcrt_status_t check_params(hcrt_context_t *ctx, const hcrt_balance_params_t *p, int nranks)
{
    CHECK_PARAM(p->micro_batch_size >= 1, "micro_batch_size", "is below 1");
    if (p->micro_batches < nranks)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "hcrt_balancer_create: argument 'params->micro_batches' is "
                           "%lld, fewer than the %d ranks (each rank needs at least one micro-batch)",
                           (long long)p->micro_batches, nranks);
    CHECK_PARAM(p->mode == HCRT_BALANCE_OFF || p->mode == HCRT_BALANCE_STATIC || p->mode == HCRT_BALANCE_ONLINE, "mode",
                "is not an hcrt_balance_mode_t");
    CHECK_PARAM(p->interval >= 1, "interval", "is below 1");
    CHECK_PARAM(p->smoothing > 0 && p->smoothing <= 1, "smoothing", "is not in (0, 1]");
    CHECK_PARAM(p->hysteresis >= 0 && p->hysteresis < 1, "hysteresis", "is not in [0, 1)");
    CHECK_PARAM(p->warmup_steps >= 0, "warmup_steps", "is negative");
    CHECK_PARAM(p->max_micro_batches >= 0, "max_micro_batches", "is negative");
    CHECK_PARAM(p->bytes_per_sample <= UINT64_MAX / (uint64_t)p->micro_batch_size, "bytes_per_sample",
                "times micro_batch_size overflows 64 bits");
    CHECK_PARAM(p->device == NULL || p->device->ctx == ctx, "device",
                "belongs to another context than the communicator");
    return HCRT_OK;
}

/* This rank's cap in micro-batches (0: none) and its device's relative speed. */
static hcrt_status_t own_cap(hcrt_balancer_t *b, int64_t *cap, double *speed)
{
    hcrt_device_t *dev = b->p.device ? b->p.device : b->ctx->selected;
    hcrt_device_props_t props = {.struct_size = sizeof(props)};
    *cap = b->p.max_micro_batches;
    *speed = 1.0;
    if (dev == NULL)
        return HCRT_OK;
    HCRT_CHECK(hcrt_device_get_props(dev, &props));
    if (props.speed > 0 && props.speed < 1e12)
        *speed = props.speed;
    if (b->p.bytes_per_sample > 0) {
        uint64_t per_mb = b->p.bytes_per_sample * (uint64_t)b->p.micro_batch_size;
        int64_t mem_cap = per_mb ? (int64_t)(props.free_memory / per_mb) : 0;
        if (mem_cap < 1) {
            /* Keep the rank in the plan (one micro-batch) but say why the job will likely fail. */
            HCRT_WARN(BAL_SUBSYS,
                      "rank %d: %s device has %llu bytes free, less than one micro-batch needs "
                      "(%llu)",
                      b->rank, props.backend, (unsigned long long)props.free_memory, (unsigned long long)per_mb);
            mem_cap = 1;
        }
        if (*cap == 0 || mem_cap < *cap)
            *cap = mem_cap;
    }
    return HCRT_OK;
}

/* Formats "a,b,c" of the shares into the text buffer at offset; returns the new offset. */
static size_t put_shares(hcrt_balancer_t *b, size_t off, const int64_t *s)
{
    for (int r = 0; r < b->n; r++)
        off += (size_t)snprintf(b->text + off, b->text_cap - off, "%s%lld", r ? "," : "", (long long)s[r]);
    return off;
}

static const char *reason_name(hcrt_balance_reason_t r)
{
    static const char *const names[] = {"initial", "improve", "hold", "same", "cap", "restore", "unknown"};
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

/* Records a decision (and its trace event): old and new are the plans before and after. */
static void decide(hcrt_balancer_t *b, hcrt_balance_reason_t reason, const int64_t *old, const int64_t *now,
                   double t_before, double t_after)
{
    bool changed = memcmp(old, now, (size_t)b->n * sizeof(*old)) != 0;
    size_t off = (size_t)snprintf(b->text, b->text_cap, "step %lld: shares ", (long long)b->steps);
    off = put_shares(b, off, old);
    if (changed || reason == HCRT_BALANCE_INITIAL) {
        off += (size_t)snprintf(b->text + off, b->text_cap - off, " -> ");
        off = put_shares(b, off, now);
    }
    if (t_before > 0)
        off += (size_t)snprintf(b->text + off, b->text_cap - off, " (predicted step %.4g s -> %.4g s, %s)", t_before,
                                t_after, reason_name(reason));
    else
        off += (size_t)snprintf(b->text + off, b->text_cap - off, " (%s)", reason_name(reason));
    b->last.step = b->steps;
    b->last.changed = changed;
    b->last.reason = reason;
    b->last.predicted_before = t_before;
    b->last.predicted_after = t_after;
    b->last.text = b->text;
    if (changed || reason == HCRT_BALANCE_INITIAL || reason == HCRT_BALANCE_RESTORE)
        HCRT_INFO(BAL_SUBSYS, "%s", b->text);
    else
        HCRT_DEBUG(BAL_SUBSYS, "%s", b->text);
    if (hcrt__trace_on(b->ctx)) {
        /* Shares and rates as JSON arrays: n numbers of at most 24 characters each. */
        size_t cap = (size_t)b->n * 56 + 256;
        char *arr = malloc(cap);
        if (arr != NULL) {
            size_t o = (size_t)snprintf(arr, cap, "\"shares\":[");
            for (int r = 0; r < b->n; r++)
                o += (size_t)snprintf(arr + o, cap - o, "%s%lld", r ? "," : "", (long long)now[r]);
            o += (size_t)snprintf(arr + o, cap - o, "],\"rates\":[");
            for (int r = 0; r < b->n; r++)
                o += (size_t)snprintf(arr + o, cap - o, "%s%.6g", r ? "," : "", b->rates[r]);
            snprintf(arr + o, cap - o, "]");
            hcrt__trace_event(b->ctx, HCRT__LANE_BALANCE, 'i',
                              reason == HCRT_BALANCE_INITIAL ? "initial plan"
                              : changed                      ? "rebalance"
                                                             : "plan kept",
                              "balance", hcrt__trace_clock(), 0,
                              "\"step\":%lld,\"reason\":\"%s\",\"changed\":%s,\"predicted_before_s\":%.6g,"
                              "\"predicted_after_s\":%.6g,%s",
                              (long long)b->steps, reason_name(reason), changed ? "true" : "false", t_before, t_after,
                              arr);
            free(arr);
        }
    }
}

hcrt_status_t hcrt_balancer_create(hcrt_comm_t *comm, const hcrt_balance_params_t *params, hcrt_balancer_t **out)
{
    hcrt_status_t st;
    HCRT_CHECK_ARG(NULL, comm != NULL, "comm", "is NULL");
    hcrt_context_t *ctx = comm->ctx;
    HCRT_CHECK_ARG(ctx, params != NULL, "params", "is NULL");
    HCRT_CHECK_ARG(ctx, out != NULL, "bal", "is NULL");
    HCRT_CHECK_ARG(ctx,
                   params->struct_size >= offsetof(hcrt_balance_params_t, mode) + sizeof(params->mode) &&
                       params->struct_size <= 65536,
                   "params->struct_size", "is out of range (initialise params with hcrt_balance_params_init)");
    hcrt_balancer_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_balancer_create: out of memory");
    hcrt_balance_params_init(&b->p);
    memcpy(&b->p, params, params->struct_size < sizeof(b->p) ? params->struct_size : sizeof(b->p));
    b->p.struct_size = sizeof(b->p);
    b->comm = comm;
    b->ctx = ctx;
    b->rank = comm->rank;
    b->n = comm->size;
    create_wire_t mine, *all = NULL;
    HCRT_CHECK_GOTO(check_params(ctx, &b->p, b->n), st, err_free);
    size_t nn = (size_t)b->n;
    b->caps = calloc(nn, sizeof(*b->caps));
    b->shares = calloc(nn, sizeof(*b->shares));
    b->proposal = calloc(nn, sizeof(*b->proposal));
    b->rates = calloc(nn, sizeof(*b->rates));
    b->text_cap = nn * 48 + 256;
    b->text = calloc(1, b->text_cap);
    all = calloc(nn, sizeof(*all));
    if (!b->caps || !b->shares || !b->proposal || !b->rates || !b->text || !all) {
        st = hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_balancer_create: out of memory for %d ranks", b->n);
        goto err_free;
    }
    memset(&mine, 0, sizeof(mine));
    HCRT_CHECK_GOTO(own_cap(b, &mine.cap, &mine.speed), st, err_free);
    mine.micro_batches = b->p.micro_batches;
    mine.micro_batch_size = b->p.micro_batch_size;
    mine.mode = b->p.mode;
    mine.interval = b->p.interval;
    HCRT_CHECK_GOTO(hcrt_comm_allgather(comm, &mine, all, sizeof(mine), HCRT_U8, NULL), st, err_free);
    for (int r = 1; r < b->n; r++) {
        const char *field = all[r].micro_batches != all[0].micro_batches         ? "micro_batches"
                            : all[r].micro_batch_size != all[0].micro_batch_size ? "micro_batch_size"
                            : all[r].mode != all[0].mode                         ? "mode"
                            : all[r].interval != all[0].interval                 ? "interval"
                                                                                 : NULL;
        if (field != NULL) {
            st = hcrt__error(ctx, HCRT_ERR_MISMATCH,
                             "hcrt_balancer_create: rank %d passed params->%s different "
                             "from rank 0's (every rank must pass the same)",
                             r, field);
            goto err_free;
        }
    }
    double *speed = b->rates; /* the speeds only serve the initial plan; rates start at 0 below */
    int64_t held = 0;
    for (int r = 0; r < b->n; r++) {
        b->caps[r] = all[r].cap;
        speed[r] = b->p.mode != HCRT_BALANCE_OFF && b->p.use_device_speed ? all[r].speed : 1.0;
        held += all[r].cap > 0 && all[r].cap < b->p.micro_batches ? all[r].cap : b->p.micro_batches;
    }
    if (held < b->p.micro_batches || !hcrt__apportion(b->n, b->p.micro_batches, speed, b->caps, b->shares)) {
        char *list = b->text;
        size_t off = 0;
        for (int r = 0; r < b->n && off + 32 < b->text_cap; r++)
            off += (size_t)snprintf(list + off, b->text_cap - off, "%s%lld", r ? "," : "", (long long)b->caps[r]);
        st = hcrt__error(ctx, HCRT_ERR_DEVICE_OOM,
                         "hcrt_balancer_create: the ranks' memory holds at most %lld of "
                         "the %lld micro-batches of the global batch (caps per rank: %s)",
                         (long long)held, (long long)b->p.micro_batches, list);
        goto err_free;
    }
    memset(b->rates, 0, nn * sizeof(*b->rates));
    memcpy(b->proposal, b->shares, nn * sizeof(*b->shares));
    decide(b, HCRT_BALANCE_INITIAL, b->shares, b->shares, 0, 0);
    free(all);
    *out = b;
    return HCRT_OK;

err_free:
    free(all);
    hcrt_balancer_destroy(b);
    return st;
}

hcrt_status_t hcrt_balancer_destroy(hcrt_balancer_t *b)
{
    if (b == NULL)
        return HCRT_OK;
    free(b->caps);
    free(b->shares);
    free(b->proposal);
    free(b->rates);
    free(b->text);
    free(b);
    return HCRT_OK;
}

hcrt_status_t hcrt_balancer_record(hcrt_balancer_t *b, int64_t samples, double seconds)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    HCRT_CHECK_ARG(b->ctx, samples > 0, "samples", "is not positive");
    HCRT_CHECK_ARG(b->ctx, seconds > 0 && isfinite(seconds), "seconds", "is not a positive finite number");
    b->step_samples += samples;
    b->step_seconds += seconds;
    return HCRT_OK;
}

/* Whether the step just completed (b->steps) is a re-plan step. */
static bool replan_due(const hcrt_balancer_t *b)
{
    int64_t measured = b->steps - b->p.warmup_steps;
    switch (b->p.mode) {
    case HCRT_BALANCE_ONLINE:
        return measured > 0 && measured % b->p.interval == 0;
    case HCRT_BALANCE_STATIC:
        return !b->static_done && measured == b->p.interval;
    default:
        return false;
    }
}

hcrt_status_t hcrt_balancer_step(hcrt_balancer_t *b, bool *changed)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    b->steps++;
    if (b->steps > b->p.warmup_steps && b->step_seconds > 0)
        b->avg = hcrt__rate_average(b->avg, (double)b->step_samples / b->step_seconds, b->p.smoothing);
    b->step_samples = 0;
    b->step_seconds = 0;
    if (changed != NULL)
        *changed = false;
    if (!replan_due(b))
        return HCRT_OK;
    HCRT_CHECK(hcrt_comm_allgather(b->comm, &b->avg, b->rates, 1, HCRT_F64, NULL));
    double t_before = 0, t_after = 0;
    hcrt__plan_reason_t reason = hcrt__plan_decide(b->n, b->p.micro_batches, b->p.micro_batch_size, b->rates, b->caps,
                                                   b->shares, b->p.hysteresis, b->proposal, &t_before, &t_after);
    if (b->p.mode == HCRT_BALANCE_STATIC && reason != HCRT__PLAN_UNKNOWN)
        b->static_done = true;
    /* The plan in force moves to proposal's buffer; the old one stays readable for the decision. */
    int64_t *old = b->shares;
    b->shares = b->proposal;
    b->proposal = old;
    decide(b, (hcrt_balance_reason_t)reason, old, b->shares, t_before, t_after);
    if (changed != NULL)
        *changed = b->last.changed;
    return HCRT_OK;
}

hcrt_status_t hcrt_balancer_size(const hcrt_balancer_t *b, int *nranks)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    HCRT_CHECK_ARG(b->ctx, nranks != NULL, "nranks", "is NULL");
    *nranks = b->n;
    return HCRT_OK;
}

/* Copies one entry per rank out to the caller, whose array must have exactly that many. */
static hcrt_status_t per_rank_out(const hcrt_balancer_t *b, const char *func, const char *what, void *dst,
                                  const void *src, size_t n, size_t size)
{
    if (dst == NULL)
        return hcrt__error(b->ctx, HCRT_ERR_INVALID_ARG, "%s: argument '%s' is NULL", func, what);
    if (n != (size_t)b->n)
        return hcrt__error(b->ctx, HCRT_ERR_INVALID_ARG, "%s: argument 'n' is %zu, not the %d ranks of the balancer",
                           func, n, b->n);
    memcpy(dst, src, n * size);
    return HCRT_OK;
}

hcrt_status_t hcrt_balancer_shares(const hcrt_balancer_t *b, int64_t *shares, size_t n)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    return per_rank_out(b, __func__, "shares", shares, b->shares, n, sizeof(*shares));
}

hcrt_status_t hcrt_balancer_assignment(const hcrt_balancer_t *b, int64_t *first, int64_t *count)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    int64_t f = 0;
    for (int r = 0; r < b->rank; r++)
        f += b->shares[r];
    if (first != NULL)
        *first = f;
    if (count != NULL)
        *count = b->shares[b->rank];
    return HCRT_OK;
}

hcrt_status_t hcrt_balancer_rates(const hcrt_balancer_t *b, double *rates, size_t n)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    return per_rank_out(b, __func__, "rates", rates, b->rates, n, sizeof(*rates));
}

hcrt_status_t hcrt_balancer_last_decision(const hcrt_balancer_t *b, hcrt_balance_decision_t *d)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    HCRT_CHECK_ARG(b->ctx, d != NULL, "decision", "is NULL");
    HCRT_CHECK_ARG(b->ctx, d->struct_size >= offsetof(hcrt_balance_decision_t, reason) && d->struct_size <= 65536,
                   "decision->struct_size", "is out of range (set it to sizeof(hcrt_balance_decision_t))");
    size_t size = d->struct_size < sizeof(*d) ? d->struct_size : sizeof(*d);
    hcrt_balance_decision_t copy = b->last;
    copy.struct_size = d->struct_size;
    memcpy(d, &copy, size);
    return HCRT_OK;
}

hcrt_status_t hcrt_balancer_set_shares(hcrt_balancer_t *b, const int64_t *shares, size_t n)
{
    HCRT_CHECK_ARG(NULL, b != NULL, "bal", "is NULL");
    hcrt_context_t *ctx = b->ctx;
    HCRT_CHECK_ARG(ctx, shares != NULL, "shares", "is NULL");
    if (n != (size_t)b->n)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "hcrt_balancer_set_shares: argument 'n' is %zu, not the %d "
                           "ranks of the balancer (a plan of another world size cannot be restored)",
                           n, b->n);
    int64_t sum = 0;
    for (int r = 0; r < b->n; r++) {
        int64_t cap = b->caps[r] > 0 ? b->caps[r] : b->p.micro_batches;
        if (shares[r] < 1 || shares[r] > cap)
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                               "hcrt_balancer_set_shares: argument 'shares[%d]' is %lld, "
                               "outside [1, %lld] (at least one micro-batch, at most the rank's cap)",
                               r, (long long)shares[r], (long long)cap);
        sum += shares[r];
    }
    if (sum != b->p.micro_batches)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG,
                           "hcrt_balancer_set_shares: argument 'shares' sums to %lld, not "
                           "the %lld micro-batches of the global batch",
                           (long long)sum, (long long)b->p.micro_batches);
    /* Every rank must pass the same plan: compare the min and max of each share over ranks. */
    size_t nn = (size_t)b->n;
    int64_t *mm = malloc(2 * nn * sizeof(*mm));
    if (mm == NULL)
        return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_balancer_set_shares: out of memory");
    for (size_t r = 0; r < nn; r++) {
        mm[r] = shares[r];
        mm[nn + r] = -shares[r];
    }
    hcrt_status_t st = hcrt_comm_allreduce(b->comm, HCRT_IN_PLACE, mm, 2 * nn, HCRT_I64, HCRT_OP_MAX, NULL);
    if (st == HCRT_OK) {
        for (size_t r = 0; r < nn; r++) {
            if (mm[r] != -mm[nn + r]) {
                st = hcrt__error(ctx, HCRT_ERR_MISMATCH,
                                 "hcrt_balancer_set_shares: the ranks passed different "
                                 "plans (share of rank %zu ranges from %lld to %lld)",
                                 r, (long long)-mm[nn + r], (long long)mm[r]);
                break;
            }
        }
    }
    free(mm);
    if (st != HCRT_OK)
        return st;
    memcpy(b->proposal, b->shares, nn * sizeof(*b->shares));
    memcpy(b->shares, shares, nn * sizeof(*b->shares));
    decide(b, HCRT_BALANCE_RESTORE, b->proposal, b->shares, 0, 0);
    return HCRT_OK;
}
