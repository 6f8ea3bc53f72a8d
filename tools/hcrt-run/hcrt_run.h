/*
 * tools/hcrt-run/hcrt_run.h - what the parts of hcrt-run share: the options, one attempt's record (what
 * the launcher saw, what the ranks wrote), and the functions of each file.
 *
 *   main.c       command line, the restart loop and its decisions
 *   launch.c     one attempt: the launcher in its own process group, signals, stop file and grace, rank
 *                deaths, what the launcher says on stderr
 *   hostfile.c   the hostfile (or a Slurm allocation's nodes), and the hosts left after losses
 *   slurm.c      inside a Slurm allocation: its nodes, srun's command line and messages, node probes,
 *                requeue (docs/slurm.md)
 *   state.c      each attempt's record in the run directory, read back after a requeue
 *   history.c    reading an attempt's heartbeats and failure records (hcrt/run.h)
 *   account.c    useful, lost, checkpoint and restart time; recovery per restart (docs/goodput.md)
 *   report.c     the text report and the JSON file
 *   goodput.c    the expected-goodput model (Young/Daly), pure functions; simulate.c its command line
 */
#ifndef HCRT_TOOLS_RUN_H
#define HCRT_TOOLS_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of hcrt-run itself, besides the job's own (hcrt/exit.h). */
#define HR_EXIT_USAGE    2   /* bad command line (HCRT_EXIT_USAGE) */
#define HR_EXIT_LAUNCH   127 /* the launcher could not be started, as shells report it */
#define HR_EXIT_INTERNAL 70  /* hcrt-run itself failed (HCRT_EXIT_INTERNAL) */

/* Which launcher runs the attempts: Open MPI's mpirun, or Slurm's srun inside an allocation. */
typedef enum hr_launcher { HR_MPIRUN = 0, HR_SRUN = 1 } hr_launcher_t;

typedef struct hr_options {
    int np;     /* ranks of the first attempt */
    int min_np; /* fewest ranks a relaunch may use (default np) */
    int max_restarts;
    const char *report;   /* JSON file, or NULL */
    const char *hostfile; /* or NULL */
    const char *mpirun;   /* launcher program (default "mpirun") */
    char **mpirun_args;   /* extra launcher arguments (wordexp of every --mpirun-args) */
    size_t nmpirun_args;
    const char *run_dir; /* HCRT_RUN_DIR; NULL: a temporary one, removed at the end */
    bool keep_run_dir;
    double backoff_s; /* pause before the first relaunch; doubled after an attempt without progress */
    double backoff_max_s;
    double grace_s; /* how long a stopping job may take to save and exit */
    bool quiet;     /* no progress lines, only the report */
    char **cmd;     /* the job's command line */
    int ncmd;
    /* clusters (docs/slurm.md) */
    hr_launcher_t launcher;
    const char *launcher_opt; /* --launcher auto|mpirun|srun */
    bool mpirun_given;        /* --mpirun or --hostfile: mpirun even inside an allocation */
    const char *srun;         /* srun program (default "srun") */
    char **srun_args;         /* extra srun arguments (every --srun-args) */
    size_t nsrun_args;
    double teardown_s;      /* how long after the job's first failure the launcher may take to end */
    double probe_timeout_s; /* srun: how long a node has to answer a probe after a failed attempt */
    bool no_requeue;        /* never scontrol requeue the job after a stop */
    bool append;            /* keep the attempts of an earlier hcrt-run in --run-dir */
} hr_options_t;

/* The Slurm allocation hcrt-run runs in (from the environment srun and sbatch give the batch step). */
typedef struct hr_slurm {
    bool active;          /* SLURM_JOB_ID is set */
    char job_id[64];      /* SLURM_JOB_ID */
    int restart_count;    /* SLURM_RESTART_COUNT: 0 in the first allocation, 1 after one requeue, ... */
    int ntasks;           /* SLURM_NTASKS, -1 when unset */
    char submit_dir[4096]; /* SLURM_SUBMIT_DIR ("" when unset) */
} hr_slurm_t;

/* One event of a heartbeat file (hcrt/run.h): kind S (step), R (ready), V (saved), C (committed). */
typedef struct hr_event {
    char kind;
    int64_t step;
    double t; /* Unix time */
} hr_event_t;

/* What one rank wrote during one attempt. */
typedef struct hr_rank {
    int rank, size;
    long pid;
    char node[256];
    hr_event_t *ev;
    size_t nev, cap;
} hr_rank_t;

/* One launch of the job. Times are Unix times (the clock the ranks stamp their heartbeats with). */
typedef struct hr_attempt {
    int index;
    int np;
    double start, end;
    double backoff_s;           /* pause before this attempt */
    int status;          /* how the job ended: the launcher's status, or under srun the first failed task's
                          * (code, or 128 + signal) */
    int launcher_status; /* the launcher's own exit status */
    bool stop_requested; /* hcrt-run was told to stop during this attempt */
    double stop_t;       /* when (0: never) */
    double death_t;      /* first death of a rank on this host (0: none seen) */
    int death_rank;      /* that rank (-1: none seen) */
    /* The node the launcher says it lost, "" if none: mpirun's "Remote daemon ... on node X", srun's
     * "Node failure on X" or "Task launch ... failed on node X", or a node that failed the probe. */
    char launcher_lost_node[256];
    /* srun: the first task it reported failed (time seen, status, node, task; -1/"" when none), and how
     * many of each node's tasks it reported ended (a node whose tasks it never reports may be lost) */
    double task_fail_t;
    int task_fail_status, task_fail_task;
    char task_fail_node[256];
    double step_abort_t; /* srun said "Job step aborted" (0: not) */
    char step_id[64];    /* "JOB.STEP" as srun names the step in its messages, "" until it does */
    bool step_killed;    /* hcrt-run sent the step's tasks SIGKILL after the first failure */
    bool torn_down;      /* hcrt-run ended the launcher itself, --teardown seconds after a failure */
    char **reported_nodes;
    int *reported_tasks;
    int nreported;
    /* where it ran: the launcher, the nodes hcrt-run gave it ("" without a hostfile or allocation), the
     * Slurm job and its restart count ("" / -1 outside Slurm) */
    hr_launcher_t launcher;
    char nodes[4096];
    int *node_tasks; /* srun: the ranks placed on each node of `nodes`, in order */
    int nnodes;
    char job_id[64];
    int restart_count;
    char left_out[1024]; /* nodes left out of the attempts after this one ("a,b"), "" none */
    bool resumed;        /* read back from the run directory (an earlier allocation) */
    bool cut_short;      /* its hcrt-run ended with the allocation: it ended at its last heartbeat */
    /* failure records (fail-R): the earliest one */
    bool has_record;
    double record_t;
    int record_rank, record_status;
    char record_node[256], record_lost_node[256], record_what[1024];
    /* heartbeats */
    hr_rank_t *ranks;
    int nranks;
    /* derived by account.c */
    int ref; /* index in ranks of the rank whose events are used (most steps), -1: none */
    int64_t first_step, last_step, ready_step, last_committed; /* -1 when absent */
    double ready_t, first_step_t, fail_t;
    char cause[1400];
} hr_attempt_t;

/* The whole run's figures (docs/goodput.md). */
typedef struct hr_totals {
    double wall_s, useful_s, lost_s, ckpt_s, other_s, goodput;
    int failures, restarts;
    int allocations;              /* Slurm allocations the attempts ran in (requeues + 1); 1 outside Slurm */
    double between_allocations_s; /* from the end of an allocation's last attempt to the next one's first */
    double *recovery_s, *restart_s; /* per restart; -1 when not measurable (no step after it) */
    int nrecovery;
    /* figures for the model (--simulate --from-report) */
    double step_s, ckpt_stall_s, commit_s, mean_restart_s, startup_s, mtbf_s, ckpt_interval_s;
    int64_t ckpt_every;
    int64_t steps_done;
} hr_totals_t;

/* ---- main.c ---- */

/* Prints "WHO: message" and a pointer to WHO --help on stderr; returns HR_EXIT_USAGE. */
int hr_usage_error(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- launch.c ---- */

/* Installs hcrt-run's SIGINT/SIGTERM handlers (they count, and wake the watcher through a pipe). */
int hr_signals_install(void);
/* Number of stop signals received so far. */
int hr_signals_count(void);
/* Sleeps `secs`, returning early (true) when a stop signal arrives. */
bool hr_sleep_interruptible(double secs);

/* Runs one attempt to its end: fills a->start, end, status, stop_requested, death_t, what the launcher
 * said (launcher_lost_node; under srun the task_fail_* fields and the reported tasks).
 * argv is the launcher's full command line; attempt_dir holds the ranks' heartbeats; stop_file is the
 * path the job polls. Returns 0, or HR_EXIT_LAUNCH / HR_EXIT_INTERNAL with a message printed. */
int hr_launch(const hr_options_t *o, char **argv, const char *attempt_dir, const char *stop_file, hr_attempt_t *a);

/* ---- hostfile.c ---- */

typedef struct hr_host {
    char name[256];
    int slots; /* -1 when the line gives none (Open MPI then uses the host's cores) */
    char line[1024];
    bool dropped;
} hr_host_t;

typedef struct hr_hostfile {
    hr_host_t *hosts;
    int n;
} hr_hostfile_t;

/* Reads an Open MPI hostfile ("host [slots=N] ..." lines, # comments). Prints why and returns -1 on error. */
int hr_hostfile_read(const char *path, hr_hostfile_t *hf);
/* Marks `node` (a host name, or "HOST~K" of a fake node: HOST) dropped; returns whether a host matched. */
bool hr_hostfile_drop(hr_hostfile_t *hf, const char *node);
/* Slots of the hosts left; -1 when one of them gives no slots= (unknown). */
int hr_hostfile_capacity(const hr_hostfile_t *hf);
/* Slots of `node`'s host (dropped or not), -1 when unknown. */
int hr_hostfile_slots(const hr_hostfile_t *hf, const char *node);
/* Writes the hosts left to path; -1 with a message on error, -2 when no host is left. */
int hr_hostfile_write(const hr_hostfile_t *hf, const char *path);
/* Appends a host (a copy of name, `slots` slots, -1 unknown); -1 when out of memory. */
int hr_hostfile_add(hr_hostfile_t *hf, const char *name, int slots);
/* Places np ranks on the hosts left, in order, each up to its slots (block distribution, as Slurm's
 * srun and Open MPI's by-slot mapping do): writes the hosts used as "a,b,c" to list and the ranks of
 * each to counts[] (room for hf->n; may be NULL), and returns how many hosts, with *per_host the ranks
 * per host when they are all equal (else 0); -1 when the hosts left have fewer slots than np, or a
 * host's slots are unknown. */
int hr_hostfile_place(const hr_hostfile_t *hf, int np, char *list, size_t cap, int *counts, int *per_host);
void hr_hostfile_free(hr_hostfile_t *hf);

/* ---- slurm.c ---- */

/* Reads the allocation from the environment; s->active is false outside one. */
void hr_slurm_detect(hr_slurm_t *s);
/* The allocation's nodes, with the tasks Slurm gives each (SLURM_TASKS_PER_NODE, else
 * SLURM_JOB_CPUS_PER_NODE), as a host list; node names from `scontrol show hostnames`. Prints why and
 * returns -1 on error. */
int hr_slurm_nodes(hr_hostfile_t *hf);
/* Expands Slurm's per-node counts ("2(x3),1") into counts[0..n): returns how many, -1 when malformed or
 * more than n. */
int hr_slurm_expand_counts(const char *text, int *counts, int n);
/* srun's command line for one attempt on the nodes in `nodelist` (a,b,c): pointers into o and into the
 * given buffers (free the array only). */
char **hr_srun_argv(const hr_options_t *o, int np, int nnodes, const char *nodelist, int per_node, char *bufs,
                    size_t bufcap);
/* Frees what an attempt owns besides its heartbeats (srun's reported tasks, the placement). */
void hr_attempt_free_launch(hr_attempt_t *a);
/* Reads one line of srun's stderr seen at time t: task exits, node failures, step aborts (into a). */
void hr_srun_scan_line(const char *line, double t, hr_attempt_t *a);
/* After a failed attempt under srun: the nodes of `a` whose tasks srun never reported ended are probed
 * (a TCP connection to their slurmd, or a one-task step when scontrol does not give its address); those
 * that do not answer within o->probe_timeout_s are written to lost[] (up to max). Returns how many. */
int hr_slurm_probe_silent(const hr_options_t *o, const hr_attempt_t *a, char lost[][256], int max);
/* Starts scancel --signal=KILL STEP (its output discarded): the tasks of a failed step die now, instead
 * of after Slurm's SIGTERM and KillWait (hcrt jobs catch SIGTERM to save). Returns scancel's pid, to be
 * reaped by the caller (it waits on a lost node for MessageTimeout), or -1. */
long hr_slurm_kill_step(const char *step_id);
/* Whether srun has reported every task of some nodes of the attempt and none of the others: it then only
 * waits for nodes that went silent. */
bool hr_srun_only_silent_left(const hr_attempt_t *a);
/* Whether the job may be requeued (scontrol show job: Requeue=1): 1 yes, 0 no, -1 unknown (why in why). */
int hr_slurm_requeueable(const char *job_id, char *why, size_t cap);
/* scontrol requeue JOB; 0, or -1 with scontrol's message in why. */
int hr_slurm_requeue(const char *job_id, char *why, size_t cap);

/* ---- state.c ---- */

/* Writes attempt a's record (attempt-N/launch.json, atomically). Prints why and returns -1 on error. */
int hr_state_write(const char *run_dir, const hr_attempt_t *a);
/* Reads back the attempts an earlier hcrt-run left in run_dir (attempt-0, 1, ... with their records and
 * heartbeats) into *att (n entries, allocated). An attempt without a record (its hcrt-run was killed with
 * the allocation) ends at its last heartbeat with cause "the allocation ended". Returns 0. */
int hr_state_read(const char *run_dir, hr_attempt_t **att, int *n);


/* ---- history.c ---- */

/* Reads the heartbeats (rank-R.hb) and failure records (fail-R) of one attempt directory into a. */
int hr_history_read(const char *attempt_dir, hr_attempt_t *a);
/* Reads only the headers of the heartbeat files present (rank, pid, node): for the launcher's watch. */
int hr_history_headers(const char *attempt_dir, hr_rank_t **ranks, int *n);
void hr_history_free(hr_attempt_t *a);
void hr_ranks_free(hr_rank_t *ranks, int n);

/* ---- account.c ---- */

/* Fills the derived fields of every attempt (steps, failure time, cause) and the run's totals.
 * `final_end` is when the run ended. */
void hr_account(hr_attempt_t *att, int n, double run_start, double run_end, hr_totals_t *tot);
/* The ranks attempt `a` ran on node `node` (from its heartbeat headers). */
int hr_ranks_on_node(const hr_attempt_t *a, const char *node);
void hr_totals_free(hr_totals_t *t);

/* ---- report.c ---- */

void hr_report_text(FILE *out, const hr_options_t *o, const hr_attempt_t *att, int n, const hr_totals_t *t,
                    int exit_status, const char *stop_reason);
/* Writes the JSON report; prints why and returns -1 on failure. */
int hr_report_json(const char *path, const hr_options_t *o, const hr_attempt_t *att, int n, const hr_totals_t *t,
                   int exit_status, const char *stop_reason, double run_start, bool requeued);

/* ---- simulate.c ---- */

/* hcrt-run --simulate ...: argv from the first argument; returns the exit status. */
int hr_simulate_main(int argc, char **argv);

#endif /* HCRT_TOOLS_RUN_H */
