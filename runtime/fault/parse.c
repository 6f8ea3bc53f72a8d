/*
 * runtime/fault/parse.c - parser and matcher of HCRT_FAULT rules (syntax in fault.h). Free of the
 * runtime context, so unit tests and tools can use it alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/fault/fault.h"

static const char *const kind_names[] = {"kill", "hang", "slow", "corrupt", "error"};

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

/* Parses one rule `KIND[:key=value]...` held in the writable string `text`. */
static hcrt_status_t parse_rule(char *text, int index, hcrt__fault_rule_t *r, char *err, size_t errlen)
{
    char *save = NULL;
    char *tok = strtok_r(text, ":", &save);
    bool have_kind = false, site_set = false, have_phase = false, have_op = false;

    memset(r, 0, sizeof(*r));
    r->rank = -1;
    r->num = -1;
    if (tok != NULL) {
        for (size_t k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++) {
            if (strcmp(tok, kind_names[k]) == 0) {
                r->kind = (hcrt__fault_kind_t)k;
                have_kind = true;
            }
        }
    }
    if (!have_kind) {
        snprintf(err, errlen, "HCRT_FAULT rule %d: unknown kind '%s' (kill, hang, slow, corrupt, error)",
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
            ok = parse_i64(val, &v);
            if (ok)
                r->num = v;
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
        } else {
            snprintf(err, errlen, "HCRT_FAULT rule %d: unknown key '%s' (rank, step, seq, phase, op, site, secs)",
                     index + 1, key);
            return HCRT_ERR_CONFIG;
        }
        if (!ok) {
            snprintf(err, errlen, "HCRT_FAULT rule %d: bad value '%s' for key '%s'", index + 1, val, key);
            return HCRT_ERR_CONFIG;
        }
    }
    if (!site_set)
        snprintf(r->site, sizeof(r->site), "%s", have_op && !have_phase ? "coll" : "ckpt");
    return HCRT_OK;
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

const hcrt__fault_rule_t *hcrt__fault_match(const hcrt__fault_plan_t *plan, int rank, const char *site,
                                            const char *name, int64_t num)
{
    for (int i = 0; i < plan->nrules; i++) {
        const hcrt__fault_rule_t *r = &plan->rules[i];
        if (r->rank >= 0 && r->rank != rank)
            continue;
        if (strcmp(r->site, site) != 0)
            continue;
        if (r->name[0] != '\0' && (name == NULL || strcmp(r->name, name) != 0))
            continue;
        if (r->num >= 0 && r->num != num)
            continue;
        return r;
    }
    return NULL;
}

