/*
 * tests/unit/test_run_slurm.c - what hcrt-run reads and writes inside a Slurm allocation, without Slurm
 * (tools/hcrt-run/slurm.c and hostfile.c compiled in): Slurm's per-node counts, the lines srun prints
 * when a step fails (recorded from Slurm 22.05 on the cluster suite's nodes), srun's command line, the
 * placement of ranks on the nodes left, when only silent nodes keep srun waiting, and which of srun's
 * report and the ranks' failure records gives an attempt's cause.
 */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tools/hcrt-run/hcrt_run.h"

static void test_counts(void)
{
    int c[8];
    CHECK(hr_slurm_expand_counts("2(x3)", c, 8) == 3 && c[0] == 2 && c[1] == 2 && c[2] == 2);
    CHECK(hr_slurm_expand_counts("2(x2),1,4", c, 8) == 4 && c[2] == 1 && c[3] == 4);
    CHECK(hr_slurm_expand_counts("16", c, 8) == 1 && c[0] == 16);
    CHECK(hr_slurm_expand_counts("", c, 8) == 0);
    CHECK(hr_slurm_expand_counts("2(x9)", c, 8) == -1); /* more nodes than room */
    CHECK(hr_slurm_expand_counts("2(x", c, 8) == -1);
    CHECK(hr_slurm_expand_counts("2(y3)", c, 8) == -1);
    CHECK(hr_slurm_expand_counts("a", c, 8) == -1);
    CHECK(hr_slurm_expand_counts("2,,1", c, 8) == -1);
}

static void attempt_init(hr_attempt_t *a)
{
    memset(a, 0, sizeof(*a));
    a->launcher = HR_SRUN;
    a->task_fail_status = a->task_fail_task = -1;
}

static int reported(const hr_attempt_t *a, const char *node)
{
    for (int i = 0; i < a->nreported; i++)
        if (strcmp(a->reported_nodes[i], node) == 0)
            return a->reported_tasks[i];
    return 0;
}

static void test_scan(void)
{
    hr_attempt_t a;
    attempt_init(&a);
    /* A rank SIGKILLed on node n2; --kill-on-bad-exit ends the others. */
    hr_srun_scan_line("hcrt-train: rank 3 on sim:0 of n2 (speed 1.00)", 1.0, &a);
    CHECK(a.task_fail_status == -1 && a.nreported == 0);
    hr_srun_scan_line("srun: error: n2: task 3: Killed", 2.0, &a);
    CHECK(a.task_fail_status == 137 && a.task_fail_task == 3 && strcmp(a.task_fail_node, "n2") == 0);
    CHECK(a.task_fail_t == 2.0 && reported(&a, "n2") == 1);
    hr_srun_scan_line("srun: launch/slurm: _step_signal: Terminating StepId=41.7", 2.1, &a);
    CHECK(strcmp(a.step_id, "41.7") == 0);
    hr_srun_scan_line("slurmstepd-n1: error: *** STEP 41.7 ON n1 CANCELLED AT 2026-12-07T12:24:40 ***", 2.2, &a);
    hr_srun_scan_line("srun: error: n1: tasks 0-1: Exited with exit code 124", 2.3, &a);
    hr_srun_scan_line("srun: error: n2: task 2: Terminated", 2.4, &a);
    /* the first failure stays the one that counts */
    CHECK(a.task_fail_status == 137 && a.task_fail_t == 2.0 && strcmp(a.step_id, "41.7") == 0);
    CHECK(reported(&a, "n1") == 2 && reported(&a, "n2") == 2 && a.nreported == 2);
    CHECK(a.launcher_lost_node[0] == '\0' && a.step_abort_t == 0);
    hr_attempt_free_launch(&a);

    /* A job that aborted (MPI_Abort 124 on n1); n3 never answered, then Slurm declared it failed. */
    attempt_init(&a);
    hr_srun_scan_line("srun: Job step aborted: Waiting up to 7 seconds for job step to finish.", 5.0, &a);
    CHECK(a.step_abort_t == 5.0 && a.task_fail_status == -1);
    hr_srun_scan_line("srun: error: n1: task 0: Exited with exit code 124", 5.1, &a);
    CHECK(a.task_fail_status == 124 && a.task_fail_task == 0);
    hr_srun_scan_line("srun: error: n1: tasks 1,4-5: Segmentation fault (core dumped)", 5.2, &a);
    CHECK(reported(&a, "n1") == 4);
    hr_srun_scan_line("srun: error: Timed out waiting for job step to complete", 12.0, &a);
    hr_srun_scan_line("srun: error: Node failure on n3", 40.0, &a);
    CHECK(strcmp(a.launcher_lost_node, "n3") == 0);
    hr_srun_scan_line("srun: error: Node failure on n4", 41.0, &a);
    CHECK(strcmp(a.launcher_lost_node, "n3") == 0); /* the first one */
    hr_attempt_free_launch(&a);

    /* A segfault first; a launch that failed on a node names it; malformed lines change nothing. */
    attempt_init(&a);
    hr_srun_scan_line("srun: error: n1: task 5: Segmentation fault (core dumped)", 1.0, &a);
    CHECK(a.task_fail_status == 139 && a.task_fail_task == 5);
    hr_srun_scan_line("srun: error: Task launch for StepId=3.2 failed on node n2: Communication connection failure",
                      1.5, &a);
    CHECK(strcmp(a.launcher_lost_node, "n2") == 0);
    hr_srun_scan_line("srun: error: n1: task x: Killed", 2.0, &a);
    hr_srun_scan_line("srun: error: n1: tasks 3-1: Killed", 2.0, &a);
    hr_srun_scan_line("srun: error: : task 1: Killed", 2.0, &a);
    hr_srun_scan_line("srun: error: n1: task 2", 2.0, &a);
    CHECK(reported(&a, "n1") == 1 && a.nreported == 1);
    /* an exit status of 0 is not a failure; an unknown state counts the task and fails with 1 */
    hr_attempt_free_launch(&a);
    attempt_init(&a);
    hr_srun_scan_line("srun: error: n1: task 0: Exited with exit code 0", 1.0, &a);
    CHECK(a.task_fail_status == -1 && reported(&a, "n1") == 1);
    hr_srun_scan_line("srun: error: n1: task 1: Out of cheese", 1.0, &a);
    CHECK(a.task_fail_status == 1 && reported(&a, "n1") == 2);
    hr_attempt_free_launch(&a);
}

static void test_place_and_silence(void)
{
    hr_hostfile_t hf = {NULL, 0};
    char list[256];
    int counts[4], per = -1;
    CHECK(hr_hostfile_add(&hf, "a", 2) == 0 && hr_hostfile_add(&hf, "b", 2) == 0 && hr_hostfile_add(&hf, "c", 2) == 0);
    CHECK(hr_hostfile_place(&hf, 4, list, sizeof(list), counts, &per) == 2);
    CHECK(strcmp(list, "a,b") == 0 && counts[0] == 2 && counts[1] == 2 && per == 2);
    CHECK(hr_hostfile_place(&hf, 5, list, sizeof(list), counts, &per) == 3);
    CHECK(strcmp(list, "a,b,c") == 0 && counts[2] == 1 && per == 0);
    CHECK(hr_hostfile_place(&hf, 7, list, sizeof(list), counts, &per) == -1);
    CHECK(hr_hostfile_drop(&hf, "b"));
    CHECK(hr_hostfile_place(&hf, 4, list, sizeof(list), counts, &per) == 2 && strcmp(list, "a,c") == 0);
    CHECK(hr_hostfile_capacity(&hf) == 4);
    CHECK(hr_hostfile_place(&hf, 5, list, sizeof(list), counts, &per) == -1);
    CHECK(hr_hostfile_place(&hf, 4, list, 3, counts, &per) == -1); /* the list does not fit */
    hr_hostfile_free(&hf);

    hr_attempt_t a;
    int tasks[2] = {2, 2};
    attempt_init(&a);
    snprintf(a.nodes, sizeof(a.nodes), "n1,n2");
    a.node_tasks = tasks;
    a.nnodes = 2;
    CHECK(!hr_srun_only_silent_left(&a)); /* nothing heard yet */
    hr_srun_scan_line("srun: error: n1: task 0: Exited with exit code 124", 1.0, &a);
    CHECK(!hr_srun_only_silent_left(&a)); /* n1 still has a task to report */
    hr_srun_scan_line("srun: error: n1: task 1: Killed", 1.1, &a);
    CHECK(hr_srun_only_silent_left(&a)); /* n1 is done, n2 never said anything */
    hr_srun_scan_line("srun: error: n2: task 2: Killed", 1.2, &a);
    CHECK(!hr_srun_only_silent_left(&a));
    a.node_tasks = NULL;
    hr_attempt_free_launch(&a);
}

static bool has(char **v, const char *arg)
{
    for (; *v; v++)
        if (strcmp(*v, arg) == 0)
            return true;
    return false;
}

static void test_argv(void)
{
    hr_options_t o;
    memset(&o, 0, sizeof(o));
    char *cmd[] = {"hcrt-train", "--steps", "5"};
    o.srun = "srun";
    o.cmd = cmd;
    o.ncmd = 3;
    char bufs[1024];
    char **v = hr_srun_argv(&o, 4, 2, "n1,n3", 2, bufs, sizeof(bufs));
    CHECK(v != NULL && strcmp(v[0], "srun") == 0);
    CHECK(has(v, "--mpi=pmix") && has(v, "--kill-on-bad-exit=1") && has(v, "--overlap") && has(v, "--export=ALL"));
    CHECK(has(v, "--ntasks=4") && has(v, "--nodes=2") && has(v, "--nodelist=n1,n3") && has(v, "--ntasks-per-node=2"));
    int n = 0;
    while (v[n])
        n++;
    CHECK(n >= 3 && strcmp(v[n - 3], "hcrt-train") == 0 && strcmp(v[n - 1], "5") == 0);
    free(v);
    /* the user's --mpi wins; uneven placement: no --ntasks-per-node */
    char *extra[] = {"--mpi=pmi2", "--cpu-bind=none"};
    o.srun_args = extra;
    o.nsrun_args = 2;
    v = hr_srun_argv(&o, 3, 2, "n1,n2", 0, bufs, sizeof(bufs));
    CHECK(!has(v, "--mpi=pmix") && has(v, "--mpi=pmi2") && has(v, "--cpu-bind=none") && has(v, "--ntasks=3"));
    for (int i = 0; v[i]; i++)
        CHECK(strncmp(v[i], "--ntasks-per-node", 17) != 0);
    free(v);
}

static void test_detect(void)
{
    hr_slurm_t s;
    unsetenv("SLURM_JOB_ID");
    unsetenv("SLURM_JOBID");
    hr_slurm_detect(&s);
    CHECK(!s.active);
    setenv("SLURM_JOB_ID", "1234", 1);
    setenv("SLURM_RESTART_COUNT", "2", 1);
    setenv("SLURM_NTASKS", "6", 1);
    setenv("SLURM_SUBMIT_DIR", "/shared/me", 1);
    hr_slurm_detect(&s);
    CHECK(s.active && strcmp(s.job_id, "1234") == 0 && s.restart_count == 2 && s.ntasks == 6);
    CHECK(strcmp(s.submit_dir, "/shared/me") == 0);
}

/* The cause of a failed attempt of `status` whose first failed task srun reported as `task` (-1: none),
 * with a failure record of rank `record_rank` (-1: none) saying `record_status`. */
static void cause_of(int status, int task, int record_rank, int record_status, char *cause, size_t len)
{
    hr_attempt_t a;
    hr_totals_t t;
    attempt_init(&a);
    a.status = status;
    a.ref = -1;
    a.end = 10;
    if (task >= 0) {
        a.task_fail_t = 5;
        a.task_fail_status = status;
        a.task_fail_task = task;
        snprintf(a.task_fail_node, sizeof(a.task_fail_node), "n2");
    }
    if (record_rank >= 0) {
        a.has_record = true;
        a.record_t = 5.2;
        a.record_rank = record_rank;
        a.record_status = record_status;
        snprintf(a.record_node, sizeof(a.record_node), "n2");
        snprintf(a.record_what, sizeof(a.record_what), "what rank %d says", record_rank);
    }
    hr_account(&a, 1, 0, 10, &t);
    snprintf(cause, len, "%s", a.cause);
    hr_totals_free(&t);
}

static void test_cause(void)
{
    char c[1400];
    /* Rank 3 SIGKILLed; rank 2 saw it die and recorded PEER_DEAD: the death is the cause. */
    cause_of(137, 3, 2, 125, c, sizeof(c));
    CHECK(strncmp(c, "SIGNAL: rank 3 on n2 was killed by signal 9 (SIGKILL)", 53) == 0);
    /* The killed rank's own record (a fault site that raised SIGKILL after recording) is kept. */
    cause_of(137, 3, 3, 137, c, sizeof(c));
    CHECK(strstr(c, "what rank 3 says") != NULL);
    /* A rank that exited with a status of its own: its record, not the task srun named first. */
    cause_of(125, 2, 2, 125, c, sizeof(c));
    CHECK(strncmp(c, "PEER_DEAD: rank 2 on n2: what rank 2 says", 41) == 0);
    cause_of(124, 1, 0, 124, c, sizeof(c));
    CHECK(strstr(c, "what rank 0 says") != NULL);
    /* No record: srun's report. */
    cause_of(125, 1, -1, 0, c, sizeof(c));
    CHECK(strstr(c, "rank 1 on n2 exited with 125") != NULL);
}

int main(void)
{
    test_counts();
    test_scan();
    test_place_and_silence();
    test_argv();
    test_detect();
    test_cause();
    TEST_DONE();
}
