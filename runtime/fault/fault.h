/*
 * runtime/fault/fault.h - HCRT_FAULT: injected failures for tests (docs/fault-injection.md; docs/architecture.md,
 * "Failures and the exit policy").
 *
 * The variable holds comma-separated rules, each `KIND[:key=value]...`:
 *
 *     kill:rank=1:step=3:phase=write          SIGKILL rank 1 in the write phase of checkpoint step 3
 *     hang:rank=2:op=allreduce:seq=5          rank 2 sleeps forever in its 5th collective, an allreduce
 *     slow:rank=0:op=allreduce:secs=0.5       rank 0 sleeps 0.5 s in every allreduce, then goes on
 *     error:rank=1:op=allreduce:seq=3         rank 1's 3rd collective fails half way through
 *     device_lost:site=train:step=40          the rank's device is lost at training step 40
 *     corrupt:rank=0:step=2:phase=write       the checkpoint writer flips a bit of step 2's data file
 *     kill:site=train:prob=0.01:seed=7        every rank dies at a training step with probability 1%
 *
 * Kinds: kill, hang, slow, error, device_lost, corrupt. Sites: coll (every collective; `op` names it),
 * ckpt (the phases of a save: snapshot, write, before_agree, before_rename, gc), restore (phases read and
 * copy; the number is the step tried), train (hcrt_fault_point from the training loop, the number is the
 * step) and compute (every hcrt_compute_* call, and hcrt_fault_point from wrappers of other kernels; `op`
 * the kernel, the number the process's count of compute calls). Keys: rank (default every rank), step or
 * seq (default any; N, a range N-M, or N- for every call from N on), phase or op (default any), site
 * (default: coll when op is given, ckpt when phase is given or neither), secs (slow), attempt (only in
 * that launch of the job: HCRT_RUN_ATTEMPT), prob and seed (the rule fires with probability prob,
 * decided by a hash of (seed, rank, site, name, number, attempt): the same run fails at the same
 * places). The parser refuses unknown kinds, keys, sites, ckpt/restore phases and collective names, and
 * kinds that mean nothing at a site (corrupt at gc, for instance), naming the rule: a typo in a test's
 * fault spec never silently tests nothing.
 */
#ifndef HCRT_RUNTIME_FAULT_H
#define HCRT_RUNTIME_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/hcrt.h"

typedef enum hcrt__fault_kind {
    HCRT__FAULT_NONE = -1, /* no rule matched (or only a slow one, which already slept) */
    HCRT__FAULT_KILL = 0,
    HCRT__FAULT_HANG = 1,
    HCRT__FAULT_SLOW = 2,
    HCRT__FAULT_CORRUPT = 3,
    HCRT__FAULT_ERROR = 4,
    HCRT__FAULT_DEVICE_LOST = 5,
    HCRT__FAULT_KINDS = 6
} hcrt__fault_kind_t;

typedef struct hcrt__fault_rule {
    hcrt__fault_kind_t kind;
    int rank;        /* -1: every rank */
    int64_t num;     /* step or seq, or the first of a range; -1: any */
    int64_t num_to;  /* the last of the range (num when one number is given; INT64_MAX: open) */
    int64_t attempt; /* HCRT_RUN_ATTEMPT it fires in; -1: every attempt */
    double prob;     /* probability of firing at a matching call (1: always) */
    uint64_t seed;
    char site[16]; /* "ckpt", "coll", "restore", "train", "compute" */
    char name[32]; /* phase or op; "": any */
    double secs;   /* slow: seconds to sleep */
} hcrt__fault_rule_t;

typedef struct hcrt__fault_plan {
    hcrt__fault_rule_t *rules;
    int nrules;
} hcrt__fault_plan_t;

/* Name of a kind ("device_lost"), "none" for HCRT__FAULT_NONE. */
const char *hcrt__fault_kind_name(hcrt__fault_kind_t kind);

/* Parses HCRT_FAULT syntax into plan (empty text gives an empty plan). On a syntax error returns
 * HCRT_ERR_CONFIG and writes what is wrong, naming the rule and key, into err. */
hcrt_status_t hcrt__fault_parse(const char *text, hcrt__fault_plan_t *plan, char *err, size_t errlen);
void hcrt__fault_plan_free(hcrt__fault_plan_t *plan);

/* First rule of plan matching a call at (site, name, num) of `rank` in launch `attempt`, probability
 * included, or NULL. */
const hcrt__fault_rule_t *hcrt__fault_match(const hcrt__fault_plan_t *plan, int rank, int64_t attempt, const char *site,
                                            const char *name, int64_t num);

/* ---- call sites (fault.c; need the runtime) --------------------------------------------------------- */

/* Parses the context's HCRT_FAULT and reads HCRT_RUN_ATTEMPT (hcrt_init): a malformed rule is
 * HCRT_ERR_CONFIG naming it. fini frees the plan. */
hcrt_status_t hcrt__fault_init(hcrt_context_t *ctx);
void hcrt__fault_fini(hcrt_context_t *ctx);

/*
 * Checks the context's plan at a call site. kill raises SIGKILL and hang sleeps forever, after a line
 * on stderr saying so ("hcrt fault: rank R killed at SITE NAME NUM"); slow sleeps and answers
 * HCRT__FAULT_NONE; corrupt, error and device_lost are answered (HCRT__FAULT_CORRUPT, ...) for the site
 * to act on, after a warning. HCRT__FAULT_NONE when nothing matches; without HCRT_FAULT the check costs
 * one load. Thread-safe.
 */
hcrt__fault_kind_t hcrt__fault_check(const hcrt_context_t *ctx, const char *site, const char *name, int64_t num);

/*
 * A site whose failures are uniform: checks the plan and acts. error returns err_status, with
 * hcrt_last_error() "injected error at SITE NAME NUM (HCRT_FAULT)"; device_lost marks `dev` lost (every
 * later backend call on it fails, its health says lost) and returns HCRT_ERR_DEVICE_LOST naming it;
 * corrupt flips one bit of the `bytes` at `ptr` on `dev` (a warning and nothing else when ptr is NULL)
 * and returns HCRT_OK. Returns HCRT_OK when nothing matched.
 */
hcrt_status_t hcrt__fault_site(hcrt_context_t *ctx, const char *site, const char *name, int64_t num, hcrt_device_t *dev,
                               void *ptr, size_t bytes, hcrt_status_t err_status);

/* Flips one bit (0x10 of the middle byte) of `bytes` at ptr on dev, through the device's backend. */
hcrt_status_t hcrt__fault_flip_bit(hcrt_device_t *dev, void *ptr, size_t bytes);

#endif /* HCRT_RUNTIME_FAULT_H */
