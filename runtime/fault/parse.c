/*
 * runtime/fault/parse.c - parser and matcher of HCRT_FAULT rules (syntax in fault.h). Free of the
 * runtime context, so unit tests and tools can use it alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/fault/fault.h"

static const char *const kind_names[HCRT__FAULT_KINDS] = {"kill", "hang", "slow", "corrupt", "error", "device_lost"};

#define K(kind) (1u << (kind))
#define ALWAYS  (K(HCRT__FAULT_KILL) | K(HCRT__FAULT_HANG) | K(HCRT__FAULT_SLOW))

/* The named points of the sites that have them, and the kinds that mean something there: a rule asking
 * for anything else is refused (docs/fault-injection.md has the same table). */
typedef struct point {
    const char *site, *name;
    unsigned kinds;
} point_t;

static const point_t points[] = {
    {"ckpt", "snapshot", ALWAYS | K(HCRT__FAULT_ERROR) | K(HCRT__FAULT_DEVICE_LOST)},
    {"ckpt", "write", ALWAYS | K(HCRT__FAULT_ERROR) | K(HCRT__FAULT_CORRUPT)},
    {"ckpt", "before_agree", ALWAYS | K(HCRT__FAULT_ERROR)},
    {"ckpt", "before_rename", ALWAYS | K(HCRT__FAULT_ERROR)},
    {"ckpt", "gc", ALWAYS},
    {"restore", "read", ALWAYS | K(HCRT__FAULT_ERROR)},
    {"restore", "copy", ALWAYS | K(HCRT__FAULT_ERROR) | K(HCRT__FAULT_DEVICE_LOST)},
};

/* The operations of the coll site (collectives/ops.c names them the same). */
static const char *const coll_ops[] = {"allreduce",  "reduce",         "broadcast", "allgather",
                                       "allgatherv", "reduce_scatter", "alltoall",  "alltoallv",
                                       "gather",     "scatter",        "barrier"};

/* Sites whose names are free (train: anything the trainer passes; compute: the kernels of the compute
 * extension) or listed above. */
static const char *const sites[] = {"coll", "ckpt", "restore", "train", "compute"};

const char *hcrt__fault_kind_name(hcrt__fault_kind_t kind)
{
    return kind >= 0 && kind < HCRT__FAULT_KINDS ? kind_names[kind] : "none";
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0)
        return false;
    *out = v;
    return true;
}

/* A step or seq value: N, a range N-M (N <= M), or N- for N and every later number. */
static bool parse_range(const char *s, int64_t *first, int64_t *last)
{
    char buf[48];
    const char *dash = strchr(s, '-');
    if (dash == NULL) {
        if (!parse_i64(s, first))
            return false;
        *last = *first;
        return true;
    }
    if (dash == s || (size_t)(dash - s) >= sizeof(buf))
        return false;
    memcpy(buf, s, (size_t)(dash - s));
    buf[dash - s] = '\0';
    if (!parse_i64(buf, first))
        return false;
    if (dash[1] == '\0') {
        *last = INT64_MAX;
        return true;
    }
    return parse_i64(dash + 1, last) && *last >= *first;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] == '-')
        return false;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* Checks that the rule's site exists, its name belongs to the site, and its kind means something there. */
static hcrt_status_t check_place(const hcrt__fault_rule_t *r, int index, char *err, size_t errlen)
{
    bool site_ok = false;
    for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++)
        site_ok |= strcmp(r->site, sites[i]) == 0;
    if (!site_ok) {
        snprintf(err, errlen, "HCRT_FAULT rule %d: unknown site '%s' (coll, ckpt, restore, train, compute)", index + 1,
                 r->site);
        return HCRT_ERR_CONFIG;
    }
    if (strcmp(r->site, "coll") == 0 && r->name[0] != '\0') {
        bool op_ok = false;
        for (size_t i = 0; i < sizeof(coll_ops) / sizeof(coll_ops[0]); i++)
            op_ok |= strcmp(r->name, coll_ops[i]) == 0;
        if (!op_ok) {
            snprintf(err, errlen,
                     "HCRT_FAULT rule %d: '%s' is not a collective (allreduce, reduce, broadcast, "
                     "allgather, allgatherv, reduce_scatter, alltoall, alltoallv, gather, scatter, barrier)",
                     index + 1, r->name);
            return HCRT_ERR_CONFIG;
        }
    }
    if (strcmp(r->site, "ckpt") != 0 && strcmp(r->site, "restore") != 0)
        return HCRT_OK;
    char known[160] = "";
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        const point_t *p = &points[i];
        if (strcmp(p->site, r->site) != 0)
            continue;
        size_t used = strlen(known);
        snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", p->name);
        if (r->name[0] != '\0' && strcmp(p->name, r->name) == 0) {
            if (p->kinds & K(r->kind))
                return HCRT_OK;
            snprintf(err, errlen,
                     "HCRT_FAULT rule %d: %s does not apply to %s phase %s (docs/fault-injection.md "
                     "lists what each phase takes)",
                     index + 1, kind_names[r->kind], r->site, r->name);
            return HCRT_ERR_CONFIG;
        }
    }
    if (r->name[0] == '\0')
        return HCRT_OK; /* any phase: each phase acts on the kinds it takes */
    snprintf(err, errlen, "HCRT_FAULT rule %d: %s has no phase '%s' (%s)", index + 1, r->site, r->name, known);
    return HCRT_ERR_CONFIG;
}

/* Parses one rule `KIND[:key=value]...` held in the writable string `text`. */
static hcrt_status_t parse_rule(char *text, int index, hcrt__fault_rule_t *r, char *err, size_t errlen)
{
    char *save = NULL;
    char *tok = strtok_r(text, ":", &save);
    bool have_kind = false, site_set = false, have_phase = false, have_op = false, have_secs = false;

    memset(r, 0, sizeof(*r));
    r->rank = -1;
    r->num = -1;
    r->num_to = -1;
    r->attempt = -1;
    r->prob = 1.0;
    if (tok != NULL) {
        for (int k = 0; k < HCRT__FAULT_KINDS; k++) {
            if (strcmp(tok, kind_names[k]) == 0) {
                r->kind = (hcrt__fault_kind_t)k;
                have_kind = true;
            }
        }
    }
    if (!have_kind) {
        snprintf(err, errlen, "HCRT_FAULT rule %d: unknown kind '%s' (kill, hang, slow, error, device_lost, corrupt)",
                 index + 1, tok ? tok : "");
        return HCRT_ERR_CONFIG;
    }
    while ((tok = strtok_r(NULL, ":", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        if (eq == NULL || eq == tok || eq[1] == '\0') {
            snprintf(err, errlen, "HCRT_FAULT rule %d: '%s' is not key=value", index + 1, tok);
            return HCRT_ERR_CONFIG;
        }
        *eq = '\0';
        const char *key = tok, *val = eq + 1;
        int64_t v;
        bool ok = true;
        if (strcmp(key, "rank") == 0) {
            ok = parse_i64(val, &v) && v <= 1 << 30;
            if (ok)
                r->rank = (int)v;
        } else if (strcmp(key, "step") == 0 || strcmp(key, "seq") == 0) {
            ok = parse_range(val, &r->num, &r->num_to);
        } else if (strcmp(key, "attempt") == 0) {
            ok = parse_i64(val, &v);
            if (ok)
                r->attempt = v;
        } else if (strcmp(key, "phase") == 0 || strcmp(key, "op") == 0) {
            ok = strlen(val) < sizeof(r->name);
            if (ok)
                snprintf(r->name, sizeof(r->name), "%s", val);
            if (key[0] == 'p')
                have_phase = true;
            else
                have_op = true;
        } else if (strcmp(key, "site") == 0) {
            ok = strlen(val) < sizeof(r->site);
            if (ok)
                snprintf(r->site, sizeof(r->site), "%s", val);
            site_set = true;
        } else if (strcmp(key, "secs") == 0) {
            char *end;
            r->secs = strtod(val, &end);
            ok = end != val && *end == '\0' && r->secs >= 0 && r->secs < 1e6;
            have_secs = true;
        } else if (strcmp(key, "prob") == 0) {
            char *end;
            r->prob = strtod(val, &end);
            ok = end != val && *end == '\0' && r->prob > 0 && r->prob <= 1;
        } else if (strcmp(key, "seed") == 0) {
            ok = parse_u64(val, &r->seed);
        } else {
            snprintf(err, errlen,
                     "HCRT_FAULT rule %d: unknown key '%s' (rank, step, seq, phase, op, site, secs, "
                     "attempt, prob, seed)",
                     index + 1, key);
            return HCRT_ERR_CONFIG;
        }
        if (!ok) {
            snprintf(err, errlen, "HCRT_FAULT rule %d: bad value '%s' for key '%s'", index + 1, val, key);
            return HCRT_ERR_CONFIG;
        }
    }
    if (r->kind == HCRT__FAULT_SLOW && !have_secs) {
        snprintf(err, errlen, "HCRT_FAULT rule %d: slow needs secs=S", index + 1);
        return HCRT_ERR_CONFIG;
    }
    if (have_secs && r->kind != HCRT__FAULT_SLOW) {
        snprintf(err, errlen, "HCRT_FAULT rule %d: secs is for slow only", index + 1);
        return HCRT_ERR_CONFIG;
    }
    if (!site_set)
        snprintf(r->site, sizeof(r->site), "%s", have_op && !have_phase ? "coll" : "ckpt");
    return check_place(r, index, err, errlen);
}

hcrt_status_t hcrt__fault_parse(const char *text, hcrt__fault_plan_t *plan, char *err, size_t errlen)
{
    hcrt_status_t status = HCRT_OK;
    char *copy = NULL, *save = NULL;
    int cap = 0;

    plan->rules = NULL;
    plan->nrules = 0;
    if (text == NULL || text[0] == '\0')
        return HCRT_OK;
    copy = strdup(text);
    if (copy == NULL)
        return HCRT_ERR_NO_MEMORY;
    for (char *rule = strtok_r(copy, ",", &save); rule != NULL; rule = strtok_r(NULL, ",", &save)) {
        if (plan->nrules == cap) {
            int ncap = cap ? cap * 2 : 4;
            hcrt__fault_rule_t *n = realloc(plan->rules, (size_t)ncap * sizeof(*n));
            if (n == NULL) {
                status = HCRT_ERR_NO_MEMORY;
                goto err;
            }
            plan->rules = n;
            cap = ncap;
        }
        status = parse_rule(rule, plan->nrules, &plan->rules[plan->nrules], err, errlen);
        if (status != HCRT_OK)
            goto err;
        plan->nrules++;
    }
    free(copy);
    return HCRT_OK;

err:
    free(copy);
    hcrt__fault_plan_free(plan);
    return status;
}

void hcrt__fault_plan_free(hcrt__fault_plan_t *plan)
{
    if (plan == NULL)
        return;
    free(plan->rules);
    plan->rules = NULL;
    plan->nrules = 0;
}

/* splitmix64's finaliser over a running hash: a well-mixed 64-bit value from a few fields. */
static uint64_t mix(uint64_t h, uint64_t v)
{
    uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t mix_str(uint64_t h, const char *s)
{
    uint64_t f = 1469598103934665603ull; /* FNV-1a */
    for (; s != NULL && *s; s++)
        f = (f ^ (unsigned char)*s) * 1099511628211ull;
    return mix(h, f);
}

/* Whether a probabilistic rule fires at this call: a pure function of (seed, rank, attempt, site, name,
 * num), so a run is reproducible, and a relaunch (next attempt) draws afresh. */
static bool draw(const hcrt__fault_rule_t *r, int rank, int64_t attempt, const char *site, const char *name,
                 int64_t num)
{
    if (r->prob >= 1.0)
        return true;
    uint64_t h = mix(mix(mix(mix(r->seed, (uint64_t)rank), (uint64_t)attempt), (uint64_t)num), 0);
    h = mix_str(mix_str(h, site), name);
    return (double)(h >> 11) * 0x1.0p-53 < r->prob;
}

const hcrt__fault_rule_t *hcrt__fault_match(const hcrt__fault_plan_t *plan, int rank, int64_t attempt, const char *site,
                                            const char *name, int64_t num)
{
    for (int i = 0; i < plan->nrules; i++) {
        const hcrt__fault_rule_t *r = &plan->rules[i];
        if (r->rank >= 0 && r->rank != rank)
            continue;
        if (r->attempt >= 0 && r->attempt != attempt)
            continue;
        if (strcmp(r->site, site) != 0)
            continue;
        if (r->name[0] != '\0' && (name == NULL || strcmp(r->name, name) != 0))
            continue;
        if (r->num >= 0 && (num < r->num || num > r->num_to))
            continue;
        if (!draw(r, rank, attempt, site, name, num))
            continue;
        return r;
    }
    return NULL;
}
