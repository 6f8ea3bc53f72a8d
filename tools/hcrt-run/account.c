/*
 * tools/hcrt-run/account.c - where the run's time went (definitions in docs/goodput.md).
 *
 * Every attempt's events are taken from one rank, the one that reported the most steps (the steps are
 * collective, so any rank's clock of them will do, and that one lived longest). Walking its events:
 *   - the compute time of step k is the time from the previous READY, STEP or SAVED event to STEP k;
 *   - a checkpoint stall is the time from STEP k to SAVED k;
 *   - the attempt resumed from step r (its READY event, else its first step - 1).
 * A step computed by attempt a is useful when no later attempt resumed from an earlier step (it was never
 * redone) and the run's end point covers it: the last step of a run that finished, else the newest step
 * the final attempt committed. Every other computed step is lost work.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hcrt/hcrt.h"
#include "tools/hcrt-run/hcrt_run.h"

/* The policy table's one-line meaning of a status (hcrt/exit.h), "" for statuses outside it. */
static const char *exit_meaning(int status)
{
    switch (status) {
#define HR_EXIT_TEXT_(name, st, restartable, text)                                                                     \
    case st:                                                                                                           \
        return text;
        HCRT_EXIT_MAP(HR_EXIT_TEXT_)
#undef HR_EXIT_TEXT_
    case HCRT_EXIT_MPIRUN_NODE_LOST:
        return "Open MPI lost a node";
    }
    return "";
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int hr_ranks_on_node(const hr_attempt_t *a, const char *node)
{
    int n = 0;
    for (int i = 0; i < a->nranks; i++)
        if (strcmp(a->ranks[i].node, node) == 0)
            n++;
    return n;
}

static bool is_signal_status(int status)
{
    return status > 128 && status < 160;
}

/* A failure record of a rank that saw another one die (PEER_DEAD) comes after that death: when the
 * launcher's status is the death's (a task srun reported killed, or a rank whose pidfd fired first on
 * this host), the death is the cause, not the survivor's record. */
static bool death_precedes_record(const hr_attempt_t *a)
{
    if (!a->has_record || !is_signal_status(a->status))
        return false;
    if (a->launcher == HR_SRUN && a->task_fail_status == a->status)
        return a->record_rank != a->task_fail_task;
    return a->death_rank >= 0 && a->death_rank != a->record_rank && a->death_t > 0 && a->death_t <= a->record_t;
}

static void describe(hr_attempt_t *a)
{
    const char *name = hcrt_exit_name(a->status), *meaning = exit_meaning(a->status);
    bool by_death = death_precedes_record(a);
    if (a->status == 0) {
        snprintf(a->cause, sizeof(a->cause), "finished");
    } else if (a->cut_short) {
        snprintf(a->cause, sizeof(a->cause), "ALLOCATION_ENDED: hcrt-run ended with its Slurm allocation during this "
                                             "attempt (times up to the last heartbeat)");
    } else if (a->stop_requested && a->status == HCRT_EXIT_PREEMPTED) {
        snprintf(a->cause, sizeof(a->cause), "PREEMPTED: stopped on request after saving a checkpoint");
    } else if (a->has_record && !by_death) {
        snprintf(a->cause, sizeof(a->cause), "%s: rank %d on %s: %s%s%s", hcrt_exit_name(a->record_status),
                 a->record_rank, a->record_node, a->record_what, a->record_lost_node[0] ? "; lost node " : "",
                 a->record_lost_node);
    } else if (a->launcher == HR_SRUN && a->task_fail_status > 0 && a->status == a->task_fail_status) {
        if (is_signal_status(a->status))
            snprintf(a->cause, sizeof(a->cause), "SIGNAL: rank %d on %s was killed by signal %d%s (srun)",
                     a->task_fail_task, a->task_fail_node, a->status - 128, a->status == 137 ? " (SIGKILL)" : "");
        else
            snprintf(a->cause, sizeof(a->cause), "%s: rank %d on %s exited with %d%s%s (srun)", name,
                     a->task_fail_task, a->task_fail_node, a->status, meaning[0] ? ": " : "", meaning);
    } else if (is_signal_status(a->status)) {
        char who[64] = "a rank";
        if (a->death_rank >= 0)
            snprintf(who, sizeof(who), "rank %d", a->death_rank);
        snprintf(a->cause, sizeof(a->cause), "SIGNAL: %s died; the launcher reports signal %d%s", who, a->status - 128,
                 a->status == 137 ? " (SIGKILL)" : "");
    } else if (a->status == HCRT_EXIT_MPIRUN_NODE_LOST) {
        snprintf(a->cause, sizeof(a->cause), "NODE_LOST: Open MPI lost node %s",
                 a->launcher_lost_node[0] ? a->launcher_lost_node : "(not named)");
    } else if (a->status == 1 && !a->has_record) {
        snprintf(a->cause, sizeof(a->cause), "UNKNOWN: a rank returned 1 (or the launcher failed) without saying why");
    } else {
        snprintf(a->cause, sizeof(a->cause), "%s%s%s", name, meaning[0] ? ": " : "", meaning);
    }
    if (a->stop_requested && a->status != HCRT_EXIT_PREEMPTED && a->status != 0)
        snprintf(a->cause + strlen(a->cause), sizeof(a->cause) - strlen(a->cause), " (after a stop request)");
}

/* Picks the reference rank and the attempt's step figures. */
static void summarise(hr_attempt_t *a)
{
    size_t best = 0;
    a->ref = -1;
    a->first_step = a->last_step = a->ready_step = a->last_committed = -1;
    a->ready_t = a->first_step_t = 0;
    for (int i = 0; i < a->nranks; i++) {
        size_t steps = 0;
        for (size_t e = 0; e < a->ranks[i].nev; e++) {
            const hr_event_t *ev = &a->ranks[i].ev[e];
            steps += ev->kind == 'S';
            if (ev->kind == 'S' && ev->step > a->last_step)
                a->last_step = ev->step;
            if (ev->kind == 'C' && ev->step > a->last_committed)
                a->last_committed = ev->step;
        }
        if (a->ref < 0 || steps > best || (steps == best && a->ranks[i].rank < a->ranks[a->ref].rank)) {
            a->ref = i;
            best = steps;
        }
    }
    if (a->ref < 0)
        return;
    const hr_rank_t *r = &a->ranks[a->ref];
    for (size_t e = 0; e < r->nev; e++) {
        if (r->ev[e].kind == 'R' && a->ready_step < 0) {
            a->ready_step = r->ev[e].step;
            a->ready_t = r->ev[e].t;
        }
        if (r->ev[e].kind == 'S' && a->first_step < 0) {
            a->first_step = r->ev[e].step;
            a->first_step_t = r->ev[e].t;
        }
    }
}

static int cmp_event(const void *a, const void *b)
{
    const hr_event_t *x = a, *y = b;
    if (x->step != y->step)
        return (x->step > y->step) - (x->step < y->step);
    return (x->t > y->t) - (x->t < y->t);
}

/* Every COMMITTED event of an attempt, from any rank (hcrt_ckpt reports it from the committing rank),
 * sorted by step and time: the first one of a step is the moment it became restorable. */
static hr_event_t *commits_of(const hr_attempt_t *a, size_t *n)
{
    size_t total = 0, k = 0;
    for (int i = 0; i < a->nranks; i++)
        for (size_t e = 0; e < a->ranks[i].nev; e++)
            total += a->ranks[i].ev[e].kind == 'C';
    hr_event_t *c = malloc((total ? total : 1) * sizeof(*c));
    if (c == NULL) {
        *n = 0;
        return NULL;
    }
    for (int i = 0; i < a->nranks; i++)
        for (size_t e = 0; e < a->ranks[i].nev; e++)
            if (a->ranks[i].ev[e].kind == 'C')
                c[k++] = a->ranks[i].ev[e];
    qsort(c, k, sizeof(*c), cmp_event);
    *n = k;
    return c;
}

static const hr_event_t *first_commit(const hr_event_t *c, size_t n, int64_t step)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c[mid].step < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && c[lo].step == step ? &c[lo] : NULL;
}

/* The step attempt a resumed from, -1 when it computed nothing and said nothing. */
static int64_t resumed_from(const hr_attempt_t *a)
{
    if (a->ready_step >= 0)
        return a->ready_step;
    return a->first_step >= 0 ? a->first_step - 1 : -1;
}

void hr_account(hr_attempt_t *att, int n, double run_start, double run_end, hr_totals_t *tot)
{
    memset(tot, 0, sizeof(*tot));
    for (int a = 0; a < n; a++) {
        summarise(&att[a]);
        describe(&att[a]);
        hr_attempt_t *x = &att[a];
        x->fail_t = 0;
        if (x->status != 0 && !x->stop_requested) {
            tot->failures++;
            x->fail_t = x->end;
            if (x->death_t > 0 && x->death_t < x->fail_t)
                x->fail_t = x->death_t;
            if (x->has_record && x->record_t < x->fail_t)
                x->fail_t = x->record_t;
            if (x->task_fail_t > 0 && x->task_fail_t < x->fail_t)
                x->fail_t = x->task_fail_t;
        }
    }
    tot->restarts = n > 0 ? n - 1 : 0;
    tot->wall_s = run_end - run_start;
    tot->allocations = n > 0 ? 1 : 0;
    for (int a = 1; a < n; a++)
        if (strcmp(att[a].job_id, att[a - 1].job_id) != 0 || att[a].restart_count != att[a - 1].restart_count) {
            tot->allocations++;
            tot->between_allocations_s += att[a].start - att[a - 1].end;
        }

    /* The run's end point: what a finished run computed, else what its last attempt made durable. */
    const hr_attempt_t *last = &att[n - 1];
    int64_t end_point = last->status == 0 ? last->last_step : last->last_committed;
    if (end_point < 0)
        end_point = resumed_from(last) > 0 ? resumed_from(last) : 0;
    tot->steps_done = end_point;

    /* Per-step compute times and checkpoint stalls, from each attempt's reference rank. */
    size_t cap = 0, nd = 0, nsaves = 0, ncommit = 0, unknown_useful = 0, unknown_lost = 0;
    double *durations = NULL, commit_sum = 0;
    for (int a = 0; a < n; a++) {
        const hr_attempt_t *x = &att[a];
        if (x->ref < 0)
            continue;
        int64_t limit = end_point; /* steps above the earliest later resume point were redone */
        for (int b = a + 1; b < n; b++) {
            int64_t r = resumed_from(&att[b]);
            if (r >= 0 && r < limit)
                limit = r;
        }
        const hr_rank_t *r = &x->ranks[x->ref];
        size_t ncommits;
        hr_event_t *commits = commits_of(x, &ncommits);
        double mark = -1;
        for (size_t e = 0; e < r->nev; e++) {
            const hr_event_t *ev = &r->ev[e];
            switch (ev->kind) {
            case 'R':
                mark = ev->t;
                break;
            case 'V': {
                if (mark >= 0) {
                    tot->ckpt_s += ev->t - mark;
                    nsaves++;
                }
                mark = ev->t;
                const hr_event_t *c = first_commit(commits, ncommits, ev->step);
                if (c != NULL && c->t >= ev->t) {
                    commit_sum += c->t - ev->t;
                    ncommit++;
                }
                break;
            }
            case 'S': {
                if (mark < 0) {
                    /* No READY before the attempt's first step: it counts one median step (below). */
                    if (ev->step <= limit)
                        unknown_useful++;
                    else
                        unknown_lost++;
                    mark = ev->t;
                    break;
                }
                double d = ev->t - mark;
                mark = ev->t;
                if (ev->step <= limit)
                    tot->useful_s += d;
                else
                    tot->lost_s += d;
                if (nd == cap) {
                    double *grown = realloc(durations, (cap ? cap * 2 : 1024) * sizeof(*grown));
                    if (grown == NULL)
                        break; /* the median then leaves this step out */
                    durations = grown;
                    cap = cap ? cap * 2 : 1024;
                }
                durations[nd++] = d;
                break;
            }
            }
        }
        free(commits);
    }
    double *sorted = malloc((nd ? nd : 1) * sizeof(double));
    if (sorted != NULL && nd > 0) {
        memcpy(sorted, durations, nd * sizeof(double));
        tot->step_s = median(sorted, nd);
    }
    free(sorted);
    free(durations);
    tot->useful_s += (double)unknown_useful * tot->step_s;
    tot->lost_s += (double)unknown_lost * tot->step_s;

    tot->other_s = tot->wall_s - tot->useful_s - tot->lost_s - tot->ckpt_s;
    tot->goodput = tot->wall_s > 0 ? tot->useful_s / tot->wall_s : 0;
    tot->ckpt_stall_s = nsaves ? tot->ckpt_s / (double)nsaves : 0;
    tot->commit_s = ncommit ? commit_sum / (double)ncommit : 0;
    tot->mtbf_s = tot->failures ? tot->wall_s / tot->failures : 0;
    if (att[0].ready_t > 0)
        tot->startup_s = att[0].ready_t - att[0].start;

    /* Checkpoint interval: the median gap between saved steps. */
    double gaps[4096];
    size_t ngaps = 0;
    for (int a = 0; a < n && ngaps < 4096; a++) {
        if (att[a].ref < 0)
            continue;
        const hr_rank_t *r = &att[a].ranks[att[a].ref];
        int64_t prev = -1;
        for (size_t e = 0; e < r->nev && ngaps < 4096; e++)
            if (r->ev[e].kind == 'V') {
                if (prev >= 0 && r->ev[e].step > prev)
                    gaps[ngaps++] = (double)(r->ev[e].step - prev);
                prev = r->ev[e].step;
            }
    }
    tot->ckpt_every = (int64_t)llround(median(gaps, ngaps));
    tot->ckpt_interval_s = (double)tot->ckpt_every * tot->step_s;

    /* Recovery of each restart: from the failure to the first step after the restore. */
    tot->nrecovery = tot->restarts;
    tot->recovery_s = calloc((size_t)(tot->restarts ? tot->restarts : 1), sizeof(double));
    tot->restart_s = calloc((size_t)(tot->restarts ? tot->restarts : 1), sizeof(double));
    double restart_sum = 0;
    int nrestart = 0;
    for (int a = 1; a < n && tot->recovery_s && tot->restart_s; a++) {
        double from = att[a - 1].fail_t > 0 ? att[a - 1].fail_t : att[a - 1].end;
        tot->recovery_s[a - 1] = att[a].first_step_t > 0 ? att[a].first_step_t - from : -1;
        tot->restart_s[a - 1] = att[a].ready_t > 0 ? att[a].ready_t - from : -1;
        if (tot->restart_s[a - 1] >= 0) {
            restart_sum += tot->restart_s[a - 1];
            nrestart++;
        }
    }
    tot->mean_restart_s = nrestart ? restart_sum / nrestart : 0;
}

void hr_totals_free(hr_totals_t *t)
{
    free(t->recovery_s);
    free(t->restart_s);
    t->recovery_s = t->restart_s = NULL;
}
