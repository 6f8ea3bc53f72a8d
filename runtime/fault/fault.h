/*
 * runtime/fault/fault.h - HCRT_FAULT: injected failures for tests (docs/architecture.md, "Failures and the exit policy").
 *
 * The variable holds comma-separated rules, each `KIND[:key=value]...`:
 *
 *     kill:rank=1:step=3:phase=write          SIGKILL rank 1 in the write phase of checkpoint step 3
 *     hang:rank=2:op=allreduce:seq=5          rank 2 sleeps forever in its 5th allreduce
 *     slow:rank=0:op=allreduce:secs=0.5       rank 0 sleeps 0.5 s in every allreduce, then goes on
 *     corrupt:rank=0:step=2:phase=write       the checkpoint writer flips a bit of step 2's data file
 *     error:op=copy:seq=3                     the call site reports a failure (what it means is the site's)
 *
 * Keys: rank (default: every rank), step or seq (a number the site passes; default: any), phase or op (a
 * name the site passes; default: any), secs (slow only), site (default: "ckpt" when phase is given or
 * when neither phase nor op is given, "coll" when op is given; any name may be set explicitly).
 *
 * A call site asks hcrt__fault_hit(ctx, site, name, num): kill and hang act there (never return); slow
 * sleeps and answers false; corrupt and error answer true and the site does the damage itself.
 */
#ifndef HCRT_RUNTIME_FAULT_H
#define HCRT_RUNTIME_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/hcrt.h"

typedef enum hcrt__fault_kind {
    HCRT__FAULT_KILL = 0,
    HCRT__FAULT_HANG = 1,
    HCRT__FAULT_SLOW = 2,
    HCRT__FAULT_CORRUPT = 3,
    HCRT__FAULT_ERROR = 4
} hcrt__fault_kind_t;

typedef struct hcrt__fault_rule {
    hcrt__fault_kind_t kind;
    int rank;        /* -1: every rank */
    int64_t num;     /* step or seq; -1: any */
    char site[16];   /* "ckpt", "coll", ... */
    char name[32];   /* phase or op; "" : any */
    double secs;     /* slow: seconds to sleep */
} hcrt__fault_rule_t;

typedef struct hcrt__fault_plan {
    hcrt__fault_rule_t *rules;
    int nrules;
} hcrt__fault_plan_t;

/* Parses HCRT_FAULT syntax into plan (empty text gives an empty plan). On a syntax error returns
 * HCRT_ERR_CONFIG and writes what is wrong, naming the rule and key, into err. */
hcrt_status_t hcrt__fault_parse(const char *text, hcrt__fault_plan_t *plan, char *err, size_t errlen);
void hcrt__fault_plan_free(hcrt__fault_plan_t *plan);

/* First rule of plan matching (rank, site, name, num), or NULL. */
const hcrt__fault_rule_t *hcrt__fault_match(const hcrt__fault_plan_t *plan, int rank, const char *site,
                                            const char *name, int64_t num);

/*
 * Checks the context's HCRT_FAULT plan (parsed once per process) at a call site. kill raises SIGKILL,
 * hang sleeps forever, slow sleeps and returns false, corrupt and error return true. Returns false
 * when no rule matches, and always when HCRT_FAULT is empty (the common case costs one load).
 * Thread-safe.
 */
bool hcrt__fault_hit(const hcrt_context_t *ctx, const char *site, const char *name, int64_t num);

/* Like hcrt__fault_hit but only reports whether a rule of `kind` matches, without acting. */
bool hcrt__fault_pending(const hcrt_context_t *ctx, hcrt__fault_kind_t kind, const char *site,
                         const char *name, int64_t num);

#endif /* HCRT_RUNTIME_FAULT_H */
