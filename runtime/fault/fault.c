/*
 * runtime/fault/fault.c - the trigger of HCRT_FAULT rules at call sites (parser in parse.c).
 *
 * The plan is parsed on first use and cached for the process: a context has one configuration and a
 * process one context, and the fast path of a site (no HCRT_FAULT) must cost nothing but a load.
 */
#include "runtime/fault/fault.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"

static const char *const kind_names[] = {"kill", "hang", "slow", "corrupt", "error"};

static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;
static hcrt__fault_plan_t process_plan;
static int plan_state; /* 0: not parsed, 1: parsed and empty, 2: parsed with rules */

/* The process's plan, parsed from the context's HCRT_FAULT on first use. A malformed value is reported
 * once and then ignored (hcrt_init has validated the string's type, not its syntax). */
static const hcrt__fault_plan_t *get_plan(const hcrt_context_t *ctx)
{
    int state = __atomic_load_n(&plan_state, __ATOMIC_ACQUIRE);
    if (state == 1)
        return NULL;
    if (state == 2)
        return &process_plan;
    pthread_mutex_lock(&plan_lock);
    if (plan_state == 0) {
        char err[256];
        const char *text = ctx ? hcrt__config_str(ctx, "HCRT_FAULT") : getenv("HCRT_FAULT");
        if (hcrt__fault_parse(text, &process_plan, err, sizeof(err)) != HCRT_OK)
            HCRT_ERROR("fault", "%s; no faults will be injected", err);
        __atomic_store_n(&plan_state, process_plan.nrules > 0 ? 2 : 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&plan_lock);
    return plan_state == 2 ? &process_plan : NULL;
}

bool hcrt__fault_pending(const hcrt_context_t *ctx, hcrt__fault_kind_t kind, const char *site,
                         const char *name, int64_t num)
{
    const hcrt__fault_plan_t *plan = get_plan(ctx);
    if (plan == NULL)
        return false;
    int rank = ctx ? ctx->rank : 0;
    for (int i = 0; i < plan->nrules; i++) {
        hcrt__fault_plan_t one = {&plan->rules[i], 1};
        if (plan->rules[i].kind == kind && hcrt__fault_match(&one, rank, site, name, num))
            return true;
    }
    return false;
}

bool hcrt__fault_hit(const hcrt_context_t *ctx, const char *site, const char *name, int64_t num)
{
    const hcrt__fault_plan_t *plan = get_plan(ctx);
    if (plan == NULL)
        return false;
    int rank = ctx ? ctx->rank : 0;
    const hcrt__fault_rule_t *r = hcrt__fault_match(plan, rank, site, name, num);
    if (r == NULL)
        return false;
    switch (r->kind) {
    case HCRT__FAULT_KILL:
        /* Written straight to stderr: the logger may be filtered, and the test reading this wants to see
         * that the kill was the injected one. */
        fprintf(stderr, "hcrt fault: rank %d killed at %s %s %lld (HCRT_FAULT)\n", rank, site,
                name ? name : "", (long long)num);
        fflush(stderr);
        raise(SIGKILL);
        break;
    case HCRT__FAULT_HANG:
        fprintf(stderr, "hcrt fault: rank %d hangs at %s %s %lld (HCRT_FAULT)\n", rank, site,
                name ? name : "", (long long)num);
        fflush(stderr);
        for (;;)
            pause();
        break;
    case HCRT__FAULT_SLOW: {
        struct timespec ts = {(time_t)r->secs, (long)((r->secs - (double)(time_t)r->secs) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        return false;
    }
    case HCRT__FAULT_CORRUPT:
    case HCRT__FAULT_ERROR:
        HCRT_WARN("fault", "injected %s at %s %s %lld (HCRT_FAULT)", kind_names[r->kind], site,
                  name ? name : "", (long long)num);
        return true;
    }
    return false;
}
