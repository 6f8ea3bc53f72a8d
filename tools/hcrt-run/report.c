/*
 * tools/hcrt-run/report.c - the end-of-run report: a table on stderr and, with --report, a JSON file
 * (keys in docs/goodput.md; times of attempts in seconds from the first launch).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hcrt/hcrt.h"
#include "tools/hcrt-run/hcrt_run.h"

static void steps_text(const hr_attempt_t *a, char *buf, size_t cap)
{
    if (a->first_step >= 0)
        snprintf(buf, cap, "%lld-%lld", (long long)a->first_step, (long long)a->last_step);
    else if (a->ready_step >= 0)
        snprintf(buf, cap, "(at %lld)", (long long)a->ready_step);
    else
        snprintf(buf, cap, "-");
}

void hr_report_text(FILE *out, const hr_options_t *o, const hr_attempt_t *att, int n, const hr_totals_t *t,
                    int exit_status, const char *stop_reason)
{
    (void)o;
    double t0 = att[0].start;
    fprintf(out, "hcrt-run: %d attempt%s, %d failure%s, %d restart%s; exit status %d (%s): %s\n", n, n == 1 ? "" : "s",
            t->failures, t->failures == 1 ? "" : "s", t->restarts, t->restarts == 1 ? "" : "s", exit_status,
            hcrt_exit_name(exit_status), stop_reason);
    fprintf(out, "  %-3s %4s %9s %9s %6s  %-13s %s\n", "#", "np", "start_s", "end_s", "status", "steps", "cause");
    for (int i = 0; i < n; i++) {
        char steps[64];
        steps_text(&att[i], steps, sizeof(steps));
        fprintf(out, "  %-3d %4d %9.2f %9.2f %6d  %-13s %s\n", i, att[i].np, att[i].start - t0, att[i].end - t0,
                att[i].status, steps, att[i].cause);
    }
    fprintf(out, "  wall %.2f s = useful %.2f + lost %.2f + checkpoint stalls %.2f + restarts and other %.2f\n",
            t->wall_s, t->useful_s, t->lost_s, t->ckpt_s, t->other_s);
    if (t->allocations > 1)
        fprintf(out, "  %d Slurm allocations (the job was requeued); %.2f s between them (in \"other\")\n",
                t->allocations, t->between_allocations_s);
    if (t->nrecovery > 0) {
        fprintf(out, "  recovery (failure to the first step after the restore):");
        for (int i = 0; i < t->nrecovery; i++) {
            if (t->recovery_s[i] >= 0)
                fprintf(out, "%s %.2f s", i ? "," : "", t->recovery_s[i]);
            else
                fprintf(out, "%s -", i ? "," : "");
        }
        fprintf(out, "\n");
    }
    if (t->step_s > 0)
        fprintf(out, "  step %.3f s, checkpoint every %lld steps, stall %.3f s per checkpoint, commit %.3f s later\n",
                t->step_s, (long long)t->ckpt_every, t->ckpt_stall_s, t->commit_s);
    fprintf(out, "  goodput %.3f (useful / wall)\n", t->goodput);
}

/* Seconds, to the microsecond (the heartbeats' resolution). */
static json_t *secs(double v)
{
    return json_real(round(v * 1e6) / 1e6);
}
/* Seconds, or null for "not measured" (negative). */
static json_t *num_or_null(double v)
{
    return v >= 0 ? secs(v) : json_null();
}
static json_t *step_or_null(int64_t s)
{
    return s >= 0 ? json_integer(s) : json_null();
}

static json_t *attempt_json(const hr_attempt_t *a, double t0)
{
    json_t *j = json_object();
    json_object_set_new(j, "attempt", json_integer(a->index));
    json_object_set_new(j, "np", json_integer(a->np));
    json_object_set_new(j, "start_s", secs(a->start - t0));
    json_object_set_new(j, "end_s", secs(a->end - t0));
    json_object_set_new(j, "backoff_s", secs(a->backoff_s));
    json_object_set_new(j, "exit_status", json_integer(a->status));
    json_object_set_new(j, "exit_name", json_string(hcrt_exit_name(a->status)));
    json_object_set_new(j, "restartable", json_boolean(hcrt_exit_restartable(a->status)));
    json_object_set_new(j, "cause", json_string(a->cause));
    json_object_set_new(j, "first_step", step_or_null(a->first_step));
    json_object_set_new(j, "last_step", step_or_null(a->last_step));
    json_object_set_new(j, "restored_step", step_or_null(a->ready_step));
    json_object_set_new(j, "last_committed_step", step_or_null(a->last_committed));
    json_object_set_new(j, "failure_s", a->fail_t > 0 ? secs(a->fail_t - t0) : json_null());
    json_object_set_new(j, "ready_s", a->ready_t > 0 ? secs(a->ready_t - t0) : json_null());
    json_object_set_new(j, "first_step_s", a->first_step_t > 0 ? secs(a->first_step_t - t0) : json_null());
    const char *lost = a->record_lost_node[0] ? a->record_lost_node : a->launcher_lost_node;
    if (!lost[0] && a->left_out[0])
        lost = a->left_out; /* found by a probe (srun) */
    json_object_set_new(j, "lost_node", lost[0] ? json_string(lost) : json_null());
    json_object_set_new(j, "stop_requested", json_boolean(a->stop_requested));
    json_object_set_new(j, "stop_s", a->stop_t > 0 ? secs(a->stop_t - t0) : json_null());
    json_object_set_new(j, "launcher", json_string(a->launcher == HR_SRUN ? "srun" : "mpirun"));
    json_object_set_new(j, "launcher_status", json_integer(a->launcher_status));
    json_t *nodes_used = json_array(), *left_out = json_array();
    char list[sizeof(a->nodes)], *save = NULL;
    snprintf(list, sizeof(list), "%s", a->nodes);
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(nodes_used, json_string(t));
    snprintf(list, sizeof(list), "%s", a->left_out);
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(left_out, json_string(t));
    json_object_set_new(j, "nodes", nodes_used);
    json_object_set_new(j, "left_out", left_out);
    if (a->job_id[0]) {
        json_t *alloc = json_object();
        json_object_set_new(alloc, "job_id", json_string(a->job_id));
        json_object_set_new(alloc, "restart_count", json_integer(a->restart_count));
        json_object_set_new(j, "allocation", alloc);
    } else {
        json_object_set_new(j, "allocation", json_null());
    }
    json_t *nodes = json_object();
    for (int i = 0; i < a->nranks; i++) {
        json_t *c = json_object_get(nodes, a->ranks[i].node);
        json_object_set_new(nodes, a->ranks[i].node, json_integer(c ? json_integer_value(c) + 1 : 1));
    }
    json_object_set_new(j, "ranks_per_node", nodes);
    return j;
}

int hr_report_json(const char *path, const hr_options_t *o, const hr_attempt_t *att, int n, const hr_totals_t *t,
                   int exit_status, const char *stop_reason, double run_start, bool requeued)
{
    json_t *root = json_object(), *attempts = json_array(), *cmd = json_array();
    json_t *recovery = json_array(), *restart = json_array(), *measured = json_object();
    for (int i = 0; i < o->ncmd; i++)
        json_array_append_new(cmd, json_string(o->cmd[i]));
    for (int i = 0; i < n; i++)
        json_array_append_new(attempts, attempt_json(&att[i], run_start));
    for (int i = 0; i < t->nrecovery; i++) {
        json_array_append_new(recovery, num_or_null(t->recovery_s[i]));
        json_array_append_new(restart, num_or_null(t->restart_s[i]));
    }
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "start_time", secs(run_start));
    json_object_set_new(root, "command", cmd);
    json_object_set_new(root, "np", json_integer(o->np));
    json_object_set_new(root, "min_np", json_integer(o->min_np));
    json_object_set_new(root, "max_restarts", json_integer(o->max_restarts));
    json_object_set_new(root, "attempts", attempts);
    json_object_set_new(root, "failures", json_integer(t->failures));
    json_object_set_new(root, "restarts", json_integer(t->restarts));
    json_object_set_new(root, "wall_s", secs(t->wall_s));
    json_object_set_new(root, "useful_s", secs(t->useful_s));
    json_object_set_new(root, "lost_s", secs(t->lost_s));
    json_object_set_new(root, "ckpt_s", secs(t->ckpt_s));
    json_object_set_new(root, "other_s", secs(t->other_s));
    json_object_set_new(root, "recovery_s", recovery);
    json_object_set_new(root, "restart_s", restart);
    json_object_set_new(root, "goodput", json_real(t->goodput));
    json_object_set_new(root, "steps_done", json_integer(t->steps_done));
    json_object_set_new(root, "exit_status", json_integer(exit_status));
    json_object_set_new(root, "exit_name", json_string(hcrt_exit_name(exit_status)));
    json_object_set_new(root, "stop_reason", json_string(stop_reason));
    json_object_set_new(root, "launcher", json_string(o->launcher == HR_SRUN ? "srun" : "mpirun"));
    json_object_set_new(root, "allocations", json_integer(t->allocations));
    json_object_set_new(root, "between_allocations_s", secs(t->between_allocations_s));
    json_object_set_new(root, "requeued", json_boolean(requeued));
    json_object_set_new(measured, "step_s", secs(t->step_s));
    json_object_set_new(measured, "ckpt_every", json_integer(t->ckpt_every));
    json_object_set_new(measured, "ckpt_interval_s", secs(t->ckpt_interval_s));
    json_object_set_new(measured, "ckpt_stall_s", secs(t->ckpt_stall_s));
    json_object_set_new(measured, "commit_s", secs(t->commit_s));
    json_object_set_new(measured, "restart_s", secs(t->mean_restart_s));
    json_object_set_new(measured, "startup_s", secs(t->startup_s));
    json_object_set_new(measured, "mtbf_s", t->failures ? secs(t->mtbf_s) : json_null());
    json_object_set_new(root, "measured", measured);
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (rc != 0) {
        fprintf(stderr, "hcrt-run: cannot write the report %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}
