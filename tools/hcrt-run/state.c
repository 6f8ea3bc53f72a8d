/*
 * tools/hcrt-run/state.c - each attempt's record in the run directory (attempt-N/launch.json), so that
 * the report of a job that Slurm requeued covers the attempts of every allocation: the hcrt-run of the
 * next allocation reads them back (hr_state_read) and carries on numbering from there.
 *
 * The record holds what only hcrt-run saw (the launcher's status, its times, stop requests, what srun or
 * mpirun said, the nodes); the ranks' heartbeats and failure records are already files of the attempt's
 * directory. It is written when the attempt starts (status -1: running) and again when it ends, each
 * time to a temporary name and renamed. A record still saying "running" belongs to an hcrt-run that was
 * killed with its allocation (a node failure without --no-kill, the time limit): that attempt is taken
 * to have ended at its last heartbeat.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tools/hcrt-run/hcrt_run.h"

int hr_state_write(const char *run_dir, const hr_attempt_t *a)
{
    char path[4096 + 64], tmp[4096 + 80];
    snprintf(path, sizeof(path), "%s/attempt-%d/launch.json", run_dir, a->index);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    json_t *j = json_object();
    json_object_set_new(j, "version", json_integer(1));
    json_object_set_new(j, "attempt", json_integer(a->index));
    json_object_set_new(j, "np", json_integer(a->np));
    json_object_set_new(j, "start", json_real(a->start));
    json_object_set_new(j, "end", json_real(a->end));
    json_object_set_new(j, "backoff_s", json_real(a->backoff_s));
    json_object_set_new(j, "status", json_integer(a->status));
    json_object_set_new(j, "launcher_status", json_integer(a->launcher_status));
    json_object_set_new(j, "stop_requested", json_boolean(a->stop_requested));
    json_object_set_new(j, "stop_t", json_real(a->stop_t));
    json_object_set_new(j, "death_t", json_real(a->death_t));
    json_object_set_new(j, "death_rank", json_integer(a->death_rank));
    json_object_set_new(j, "launcher_lost_node", json_string(a->launcher_lost_node));
    json_object_set_new(j, "task_fail_t", json_real(a->task_fail_t));
    json_object_set_new(j, "task_fail_status", json_integer(a->task_fail_status));
    json_object_set_new(j, "task_fail_task", json_integer(a->task_fail_task));
    json_object_set_new(j, "task_fail_node", json_string(a->task_fail_node));
    json_object_set_new(j, "torn_down", json_boolean(a->torn_down));
    json_object_set_new(j, "launcher", json_string(a->launcher == HR_SRUN ? "srun" : "mpirun"));
    json_object_set_new(j, "nodes", json_string(a->nodes));
    json_object_set_new(j, "left_out", json_string(a->left_out));
    json_object_set_new(j, "job_id", json_string(a->job_id));
    json_object_set_new(j, "restart_count", json_integer(a->restart_count));
    int rc = json_dump_file(j, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "hcrt-run: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void copy_str(json_t *j, const char *key, char *dst, size_t cap)
{
    const char *v = json_string_value(json_object_get(j, key));
    snprintf(dst, cap, "%s", v ? v : "");
}

static double real_of(json_t *j, const char *key)
{
    return json_number_value(json_object_get(j, key));
}

static int int_of(json_t *j, const char *key, int dflt)
{
    json_t *v = json_object_get(j, key);
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

/* The latest heartbeat of any rank of a, 0 when none. */
static double last_heartbeat(const hr_attempt_t *a)
{
    double t = 0;
    for (int i = 0; i < a->nranks; i++)
        for (size_t e = 0; e < a->ranks[i].nev; e++)
            if (a->ranks[i].ev[e].t > t)
                t = a->ranks[i].ev[e].t;
    return t;
}

/* Fills a from attempt-i's record; false when the directory does not exist. */
static bool read_one(const char *run_dir, int i, hr_attempt_t *a)
{
    char dir[4096 + 32], path[4096 + 64];
    struct stat sb;
    snprintf(dir, sizeof(dir), "%s/attempt-%d", run_dir, i);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return false;
    memset(a, 0, sizeof(*a));
    a->index = i;
    a->status = -1;
    a->death_rank = -1;
    a->task_fail_status = -1;
    a->task_fail_task = -1;
    a->restart_count = -1;
    a->resumed = true;
    hr_history_read(dir, a);
    snprintf(path, sizeof(path), "%s/launch.json", dir);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (j != NULL) {
        a->np = int_of(j, "np", 0);
        a->start = real_of(j, "start");
        a->end = real_of(j, "end");
        a->backoff_s = real_of(j, "backoff_s");
        a->status = int_of(j, "status", -1);
        a->launcher_status = int_of(j, "launcher_status", a->status);
        a->stop_requested = json_is_true(json_object_get(j, "stop_requested"));
        a->stop_t = real_of(j, "stop_t");
        a->death_t = real_of(j, "death_t");
        a->death_rank = int_of(j, "death_rank", -1);
        copy_str(j, "launcher_lost_node", a->launcher_lost_node, sizeof(a->launcher_lost_node));
        a->task_fail_t = real_of(j, "task_fail_t");
        a->task_fail_status = int_of(j, "task_fail_status", -1);
        a->task_fail_task = int_of(j, "task_fail_task", -1);
        copy_str(j, "task_fail_node", a->task_fail_node, sizeof(a->task_fail_node));
        a->torn_down = json_is_true(json_object_get(j, "torn_down"));
        const char *l = json_string_value(json_object_get(j, "launcher"));
        a->launcher = l && strcmp(l, "srun") == 0 ? HR_SRUN : HR_MPIRUN;
        copy_str(j, "nodes", a->nodes, sizeof(a->nodes));
        copy_str(j, "left_out", a->left_out, sizeof(a->left_out));
        copy_str(j, "job_id", a->job_id, sizeof(a->job_id));
        a->restart_count = int_of(j, "restart_count", -1);
        json_decref(j);
    }
    if (a->status < 0) {
        /* hcrt-run ended with its allocation while this attempt ran: it ended at its last sign of life. */
        double last = last_heartbeat(a);
        if (a->start <= 0)
            a->start = last;
        a->end = last > a->start ? last : a->start;
        a->status = a->launcher_status = 128 + 9;
        a->stop_requested = false;
        a->cut_short = true;
        snprintf(a->launcher_lost_node, sizeof(a->launcher_lost_node), "%s", "");
    }
    if (a->np <= 0)
        a->np = a->nranks;
    return true;
}

int hr_state_read(const char *run_dir, hr_attempt_t **att, int *n)
{
    *att = NULL;
    *n = 0;
    for (int i = 0;; i++) {
        hr_attempt_t *grown = realloc(*att, (size_t)(i + 1) * sizeof(*grown));
        if (grown == NULL)
            return -1;
        *att = grown;
        if (!read_one(run_dir, i, &(*att)[i]))
            break;
        (*n)++;
    }
    return 0;
}
