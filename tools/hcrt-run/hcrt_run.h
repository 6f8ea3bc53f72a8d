/*
 * tools/hcrt-run/hcrt_run.h - what the parts of hcrt-run share: the options, one attempt's record (what
 * the launcher saw, what the ranks wrote), and the functions of each file.
 *
 *   main.c       command line, the restart loop and its decisions
 *   launch.c     one attempt: mpirun in its own process group, signals, stop file and grace, rank deaths
 *   hostfile.c   the hostfile, and a copy without the lost hosts for the next attempt
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
} hr_options_t;

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
    int status;                 /* exit status of the launcher: code, or 128 + signal */
    bool stop_requested;        /* hcrt-run was told to stop during this attempt */
    double death_t;             /* first death of a rank on this host (0: none seen) */
    int death_rank;             /* that rank (-1: none seen) */
    char mpirun_lost_node[256]; /* "Remote daemon ... on node X" in the launcher's stderr, "" if none */
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

/* Runs one attempt to its end: fills a->start, end, status, stop_requested, death_t, mpirun_lost_node.
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
void hr_hostfile_free(hr_hostfile_t *hf);

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
                   int exit_status, const char *stop_reason, double run_start);

/* ---- simulate.c ---- */

/* hcrt-run --simulate ...: argv from the first argument; returns the exit status. */
int hr_simulate_main(int argc, char **argv);

#endif /* HCRT_TOOLS_RUN_H */
