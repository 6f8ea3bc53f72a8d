/*
 * hcrt-run - the restart loop (docs/goodput.md, docs/architecture.md "Failures and the exit policy"):
 * launches a job with mpirun, or with srun inside a Slurm allocation (docs/slurm.md), watches it,
 * classifies how each attempt ended by the exit policy (hcrt/exit.h), relaunches restartable failures
 * after a short backoff (without a lost node: on spare nodes, or on fewer ranks down to --min-np: the
 * checkpoint reshards), requeues a Slurm job that was told to stop, and ends with a report of attempts,
 * lost time, recovery per restart and goodput that covers every allocation of a requeued job.
 * With --simulate it predicts goodput at scale instead (simulate.c).
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wordexp.h>

#include "hcrt/hcrt.h"
#include "tools/hcrt-run/hcrt_run.h"

static const char usage_text[] =
    "usage: hcrt-run [options] -- CMD [ARGS...]\n"
    "       hcrt-run --simulate [options]          (hcrt-run --simulate --help)\n"
    "\n"
    "Runs CMD under mpirun (inside a Slurm allocation: srun) and relaunches it after a restartable\n"
    "failure (hcrt/exit.h: a killed rank, a deadline, a dead peer, a lost device or node, a checkpoint I/O\n"
    "error), so that it resumes from its newest committed checkpoint; stops when the job succeeds, fails\n"
    "in a way a restart cannot cure, is told to stop, or after --max-restarts relaunches. The job's ranks\n"
    "get HCRT_RUN_DIR (they write heartbeats and failure records there, hcrt/run.h) and HCRT_RUN_ATTEMPT\n"
    "(0, 1, ...).\n"
    "\n"
    "  --np N              ranks (default: the hostfile's slots, the allocation's tasks, else this\n"
    "                      machine's cores)\n"
    "  --min-np M          after a node is lost, relaunch on as few as M ranks (default N: never fewer);\n"
    "                      the checkpoint reshards to the new world size\n"
    "  --max-restarts K    relaunch at most K times (default 10)\n"
    "  --report FILE       write the report as JSON (keys in docs/goodput.md)\n"
    "  --hostfile F        Open MPI hostfile; a lost node is left out of the next attempt's copy\n"
    "  --mpirun-args \"...\" extra launcher arguments, split like a shell would (may be repeated)\n"
    "  --mpirun PATH       the launcher (default mpirun); hcrt-run adds -np, --hostfile and, for Open\n"
    "                      MPI's mpirun, -x HCRT_RUN_DIR -x HCRT_RUN_ATTEMPT and, unless you set them,\n"
    "                      --mca odls_base_sigkill_timeout 0 (a failed attempt is torn down in ~50 ms)\n"
    "                      and TCP keepalive of 3 s + 3 x 1 s (oob_tcp_keepalive_*: a node whose link\n"
    "                      was cut is declared lost in ~6 s instead of hanging the job)\n"
    "  --run-dir D         HCRT_RUN_DIR: visible to every rank and to hcrt-run (a shared directory on a\n"
    "                      cluster); its attempt-* subdirectories are cleared first (default: a new\n"
    "                      temporary directory, removed at the end)\n"
    "  --keep-run-dir      keep the temporary run directory (its path is printed)\n"
    "  --backoff S         pause before a relaunch (default 0.25 s), doubled after each attempt that\n"
    "                      computed no step, up to --backoff-max S (default 30 s)\n"
    "  --grace S           on SIGINT/SIGTERM the job is asked to save and stop (HCRT_RUN_DIR/stop,\n"
    "                      hcrt_run_should_stop()) and gets S seconds (default 60) before mpirun is told\n"
    "                      to end it; a second signal ends it at once, a third kills it\n"
    "  --teardown S        after the job's first failure (a rank's failure record or death, a task srun\n"
    "                      reports failed) the launcher gets S seconds (default 5; mpirun 1 s when a\n"
    "                      record names a lost node) to end before hcrt-run kills it (mpirun hangs on\n"
    "                      a node whose link was cut; srun waits KillWait + 2 s for a lost node)\n"
    "  --quiet             no progress lines, only the final report\n"
    "  --help              this text\n"
    "\n"
    "Inside a Slurm allocation (SLURM_JOB_ID set; docs/slurm.md):\n"
    "  --launcher L        auto (default: srun inside an allocation unless --mpirun or --hostfile is\n"
    "                      given, else mpirun), mpirun or srun\n"
    "  --srun PATH         the srun program (default srun); each attempt runs srun --mpi=pmix\n"
    "                      --kill-on-bad-exit=1 --overlap --export=ALL -n NP -N K --nodelist NODES\n"
    "  --srun-args \"...\"   extra srun arguments, split like a shell would (may be repeated)\n"

    "  --probe-timeout S   after a failed step, a node none of whose tasks srun reported is probed (a\n"
    "                      connection to its slurmd, else a one-task step); one that does not answer in\n"
    "                      S seconds (default 5) is left out of the next attempts, which use the\n"
    "                      allocation's spare nodes or fewer ranks\n"
    "  --no-requeue        after a stop (SIGTERM, e.g. sbatch --signal=B:TERM@60) the job saves and\n"
    "                      hcrt-run runs `scontrol requeue` unless the job is not requeueable or this\n"
    "                      is given\n"
    "  --append            keep the attempts an earlier hcrt-run left in --run-dir and add to them\n"
    "                      (automatic in a requeued Slurm job: SLURM_RESTART_COUNT > 0)\n"
    "  The run directory defaults to $SLURM_SUBMIT_DIR/hcrt-run-$SLURM_JOB_ID (kept: the report of\n"
    "  every allocation of the job is rebuilt from it).\n"
    "\n"
    "The report (stderr, and --report) lists each attempt (np, start and end, exit status, cause, first\n"
    "and last step) and the run's wall, useful, lost and checkpoint time, recovery time per restart (from\n"
    "the failure to the first step after the restore) and goodput = useful / wall.\n"
    "\n"
    "Exit status: the job's last exit status (0 when it finished; 120 when it stopped on request after\n"
    "saving, or was requeued), 2 for a bad command line, 127 when the launcher cannot be run, 70 when\n"
    "hcrt-run fails.\n";

int hr_usage_error(const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", who);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(%s --help for usage)\n", who);
    va_end(ap);
    return HR_EXIT_USAGE;
}

#define bad_usage(...) hr_usage_error("hcrt-run", __VA_ARGS__)

static bool parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_secs(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0) || v > 1e7)
        return false;
    *out = v;
    return true;
}

/* Appends the words of text (split like a shell would) to *args. */
static int add_words(char ***args, size_t *nargs, const char *text)
{
    wordexp_t we;
    /* Shell word splitting and quotes; no command substitution, no undefined variables. */
    if (wordexp(text, &we, WRDE_NOCMD | WRDE_UNDEF) != 0)
        return -1;
    char **grown = realloc(*args, (*nargs + we.we_wordc + 1) * sizeof(char *));
    if (grown == NULL) {
        wordfree(&we);
        return -1;
    }
    *args = grown;
    for (size_t i = 0; i < we.we_wordc; i++)
        (*args)[(*nargs)++] = strdup(we.we_wordv[i]);
    (*args)[*nargs] = NULL;
    wordfree(&we);
    return 0;
}

/* Parses the command line; returns -1 to go on, else an exit status. */
static int parse_options(int argc, char **argv, hr_options_t *o)
{
    static const struct option opts[] = {
        {"np", required_argument, NULL, 'n'},
        {"min-np", required_argument, NULL, 'm'},
        {"max-restarts", required_argument, NULL, 'k'},
        {"report", required_argument, NULL, 'r'},
        {"hostfile", required_argument, NULL, 'f'},
        {"mpirun-args", required_argument, NULL, 'a'},
        {"mpirun", required_argument, NULL, 'M'},
        {"run-dir", required_argument, NULL, 'd'},
        {"keep-run-dir", no_argument, NULL, 'K'},
        {"backoff", required_argument, NULL, 'b'},
        {"backoff-max", required_argument, NULL, 'B'},
        {"grace", required_argument, NULL, 'g'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"launcher", required_argument, NULL, 'L'},
        {"srun", required_argument, NULL, 'S'},
        {"srun-args", required_argument, NULL, 'A'},
        {"teardown", required_argument, NULL, 't'},
        {"probe-timeout", required_argument, NULL, 'p'},
        {"no-requeue", no_argument, NULL, 'R'},
        {"append", no_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->min_np = -1;
    o->max_restarts = 10;
    o->mpirun = "mpirun";
    o->backoff_s = 0.25;
    o->backoff_max_s = 30;
    o->grace_s = 60;
    o->srun = "srun";
    o->launcher_opt = "auto";
    o->teardown_s = 5;
    o->probe_timeout_s = 5;
    opterr = 0;
    int c;
    /* "+": options end at the job's command, so its own options are never taken for ours. */
    while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!parse_int(optarg, 1, 1000000, &o->np))
                return bad_usage("--np: '%s' is not a rank count (1 or more)", optarg);
            break;
        case 'm':
            if (!parse_int(optarg, 1, 1000000, &o->min_np))
                return bad_usage("--min-np: '%s' is not a rank count (1 or more)", optarg);
            break;
        case 'k':
            if (!parse_int(optarg, 0, 1000000, &o->max_restarts))
                return bad_usage("--max-restarts: '%s' is not a count (0 or more)", optarg);
            break;
        case 'r':
            o->report = optarg;
            break;
        case 'f':
            o->hostfile = optarg;
            o->mpirun_given = true;
            break;
        case 'a':
            if (add_words(&o->mpirun_args, &o->nmpirun_args, optarg) != 0)
                return bad_usage("--mpirun-args: cannot split '%s' into words (unbalanced quotes, `...` or an "
                                 "undefined variable?)",
                                 optarg);
            break;
        case 'M':
            o->mpirun = optarg;
            o->mpirun_given = true;
            break;
        case 'L':
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "mpirun") != 0 && strcmp(optarg, "srun") != 0)
                return bad_usage("--launcher: '%s' is not auto, mpirun or srun", optarg);
            o->launcher_opt = optarg;
            break;
        case 'S':
            o->srun = optarg;
            break;
        case 'A':
            if (add_words(&o->srun_args, &o->nsrun_args, optarg) != 0)
                return bad_usage("--srun-args: cannot split '%s' into words (unbalanced quotes, `...` or an "
                                 "undefined variable?)",
                                 optarg);
            break;
        case 't':
            if (!parse_secs(optarg, &o->teardown_s))
                return bad_usage("--teardown: '%s' is not a number of seconds", optarg);
            break;
        case 'p':
            if (!parse_secs(optarg, &o->probe_timeout_s) || o->probe_timeout_s <= 0)
                return bad_usage("--probe-timeout: '%s' is not a positive number of seconds", optarg);
            break;
        case 'R':
            o->no_requeue = true;
            break;
        case 'P':
            o->append = true;
            break;
        case 'd':
            o->run_dir = optarg;
            break;
        case 'K':
            o->keep_run_dir = true;
            break;
        case 'b':
            if (!parse_secs(optarg, &o->backoff_s))
                return bad_usage("--backoff: '%s' is not a number of seconds", optarg);
            break;
        case 'B':
            if (!parse_secs(optarg, &o->backoff_max_s))
                return bad_usage("--backoff-max: '%s' is not a number of seconds", optarg);
            break;
        case 'g':
            if (!parse_secs(optarg, &o->grace_s))
                return bad_usage("--grace: '%s' is not a number of seconds", optarg);
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            return bad_usage("%s needs a value", argv[optind - 1]);
        default:
            return bad_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return bad_usage("no command to run: hcrt-run [options] -- CMD [ARGS...]");
    o->cmd = &argv[optind];
    o->ncmd = argc - optind;
    if (o->min_np > 0 && o->np > 0 && o->min_np > o->np)
        return bad_usage("--min-np %d is more than --np %d", o->min_np, o->np);
    return -1;
}

/* Removes a directory tree hcrt-run owns (a temporary run directory, a stale attempt directory). */
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates the run directory (or a temporary one) and, unless `keep`, clears what an earlier run left
 * there. Inside a Slurm allocation the default is $SLURM_SUBMIT_DIR/hcrt-run-JOBID, on the file system
 * the job was submitted from (every node sees it; a requeued job finds it again). */
static int prepare_run_dir(hr_options_t *o, const hr_slurm_t *slurm, bool keep, char *dir, size_t cap)
{
    if (o->run_dir == NULL && !slurm->active) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, cap, "%s/hcrt-run.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "hcrt-run: cannot create a run directory %s: %s\n", dir, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (o->run_dir != NULL)
        snprintf(dir, cap, "%s", o->run_dir);
    else
        snprintf(dir, cap, "%.3900s/hcrt-run-%.63s", slurm->submit_dir[0] ? slurm->submit_dir : ".", slurm->job_id);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "hcrt-run: run directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char path[4096 + 64];
    snprintf(path, sizeof(path), "%s/stop", dir);
    unlink(path);
    for (int i = 0; !keep; i++) {
        struct stat sb;
        snprintf(path, sizeof(path), "%s/attempt-%d", dir, i);
        if (stat(path, &sb) != 0)
            break;
        remove_tree(path);
    }
    return 0;
}

/* Whether the launcher is Open MPI's (it takes -x and --mca). */
static bool is_open_mpi(const char *launcher)
{
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", launcher);
    const char *base = basename(copy);
    return strcmp(base, "mpirun") == 0 || strcmp(base, "mpiexec") == 0 || strcmp(base, "orterun") == 0;
}

/* Whether the user sets the MCA parameters whose names start with `param`, in the environment or in
 * --mpirun-args. */
static bool user_sets_mca(const hr_options_t *o, const char *param)
{
    extern char **environ;
    char env_prefix[128];
    snprintf(env_prefix, sizeof(env_prefix), "OMPI_MCA_%s", param);
    for (char **e = environ; *e != NULL; e++)
        if (strncmp(*e, env_prefix, strlen(env_prefix)) == 0)
            return true;
    for (size_t i = 0; i < o->nmpirun_args; i++)
        if (strstr(o->mpirun_args[i], param) != NULL)
            return true;
    return false;
}

/* The launcher's command line for one attempt (pointers into o and static strings; free the array). */
static char **launcher_argv(const hr_options_t *o, int np, const char *hostfile, char *np_text)
{
    char **v = calloc(o->nmpirun_args + (size_t)o->ncmd + 32, sizeof(char *));
    size_t n = 0;
    if (v == NULL)
        return NULL;
    v[n++] = (char *)o->mpirun;
    v[n++] = "-np";
    sprintf(np_text, "%d", np);
    v[n++] = np_text;
    if (hostfile != NULL) {
        v[n++] = "--hostfile";
        v[n++] = (char *)hostfile;
    }
    if (is_open_mpi(o->mpirun)) {
        v[n++] = "-x";
        v[n++] = "HCRT_RUN_DIR";
        v[n++] = "-x";
        v[n++] = "HCRT_RUN_ATTEMPT";
        if (!user_sets_mca(o, "odls_base_sigkill_timeout")) {
            v[n++] = "--mca";
            v[n++] = "odls_base_sigkill_timeout";
            v[n++] = "0";
        }
        /* Open MPI's default keepalive (7200 s idle) leaves a job whose node was cut off hanging. */
        if (!user_sets_mca(o, "oob_tcp_keepalive")) {
            static char *keepalive[] = {"--mca", "oob_tcp_keepalive_time",  "3", "--mca", "oob_tcp_keepalive_intvl",
                                        "1",     "--mca", "oob_tcp_keepalive_probes", "3"};
            for (size_t i = 0; i < sizeof(keepalive) / sizeof(keepalive[0]); i++)
                v[n++] = keepalive[i];
        }
    }
    for (size_t i = 0; i < o->nmpirun_args; i++)
        v[n++] = o->mpirun_args[i];
    for (int i = 0; i < o->ncmd; i++)
        v[n++] = o->cmd[i];
    v[n] = NULL;
    return v;
}

/* The step an attempt resumed from (-1: unknown), and whether it computed any step after it. */
static bool made_progress(const hr_attempt_t *a)
{
    int64_t from = a->ready_step >= 0 ? a->ready_step : a->first_step - 1;
    return a->last_step >= 0 && a->last_step > from;
}

/* After the loss of `node`: the next attempt's rank count, or -1 (with the reason) when it would be below
 * --min-np. Drops the node from the host list (a hostfile or the allocation's nodes). */
static int ranks_after_node_loss(const hr_options_t *o, hr_hostfile_t *hf, const hr_attempt_t *a, int np,
                                 const char *node, char *why, size_t cap)
{
    int held = hr_ranks_on_node(a, node), next = np;
    if (hf != NULL) {
        if (held == 0)
            held = hr_hostfile_slots(hf, node);
        if (!hr_hostfile_drop(hf, node))
            fprintf(stderr, "hcrt-run: lost node %s is not among the hosts of %s\n", node,
                    o->launcher == HR_SRUN ? "the allocation" : o->hostfile);
        int left = hr_hostfile_capacity(hf);
        next = left < 0 ? np : (left < np ? left : np);
    } else if (held > 0) {
        next = np - held;
    }
    if (next < o->min_np) {
        snprintf(why, cap, "node %s was lost (it held %d rank%s); %d rank%s left, fewer than --min-np %d", node, held,
                 held == 1 ? "" : "s", next, next == 1 ? "" : "s", o->min_np);
        return -1;
    }
    return next;
}

/* The nodes attempt a lost: named by a rank's failure record or by the launcher, else (srun) those that
 * did not answer a probe. Returns how many were written to lost[]. */
static int lost_nodes_of(const hr_options_t *o, const hr_attempt_t *a, char lost[][256], int max)
{
    int n = 0;
    if (a->record_lost_node[0])
        snprintf(lost[n++], 256, "%s", a->record_lost_node);
    if (a->launcher_lost_node[0] && (n == 0 || strcmp(lost[0], a->launcher_lost_node) != 0))
        snprintf(lost[n++], 256, "%s", a->launcher_lost_node);
    if (n == 0 && a->launcher == HR_SRUN && a->nodes[0])
        n = hr_slurm_probe_silent(o, a, lost, max);
    return n;
}

/* Chooses mpirun or srun (--launcher, and whether we are inside an allocation). */
static int choose_launcher(hr_options_t *o, const hr_slurm_t *slurm)
{
    if (strcmp(o->launcher_opt, "srun") == 0 || (strcmp(o->launcher_opt, "auto") == 0 && slurm->active &&
                                                   !o->mpirun_given)) {
        if (!slurm->active)
            return bad_usage("--launcher srun: not inside a Slurm allocation (SLURM_JOB_ID is unset; use sbatch "
                             "or salloc)");
        if (o->hostfile != NULL)
            return bad_usage("--hostfile is for mpirun; srun runs on the allocation's nodes (--launcher mpirun "
                             "to use mpirun inside the allocation)");
        o->launcher = HR_SRUN;
    } else {
        o->launcher = HR_MPIRUN;
    }
    return -1;
}

/* Loads the attempts of an earlier hcrt-run of this job from the run directory (a requeued Slurm job, or
 * --append); returns how many. Attempts of another Slurm job are cleared instead. */
static int resume_attempts(const char *dir, const hr_slurm_t *slurm, bool forced, hr_attempt_t **att)
{
    int n = 0;
    hr_state_read(dir, att, &n);
    if (n > 0 && slurm->active && !forced && (*att)[0].job_id[0] && strcmp((*att)[0].job_id, slurm->job_id) != 0) {
        fprintf(stderr, "hcrt-run: the attempts in %s are of Slurm job %s, not %s: starting anew\n", dir,
                (*att)[0].job_id, slurm->job_id);
        for (int i = 0; i < n; i++) {
            char path[4096 + 32];
            hr_history_free(&(*att)[i]);
            snprintf(path, sizeof(path), "%s/attempt-%d", dir, i);
            remove_tree(path);
        }
        n = 0;
    }
    return n;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--simulate") == 0)
            return hr_simulate_main(argc, argv);

    hr_options_t o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    hr_slurm_t slurm;
    hr_slurm_detect(&slurm);
    if ((rc = choose_launcher(&o, &slurm)) >= 0)
        return rc;
    hr_hostfile_t hf_store, *hf = NULL;
    if (o.launcher == HR_SRUN) {
        if (hr_slurm_nodes(&hf_store) != 0)
            return HR_EXIT_INTERNAL;
        hf = &hf_store;
    } else if (o.hostfile != NULL) {
        if (hr_hostfile_read(o.hostfile, &hf_store) != 0)
            return HR_EXIT_USAGE;
        hf = &hf_store;
    }
    if (o.np == 0) {
        int cap = hf ? hr_hostfile_capacity(hf) : -1;
        if (o.launcher == HR_SRUN && slurm.ntasks > 0)
            cap = slurm.ntasks;
        o.np = cap > 0 ? cap : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (o.launcher == HR_SRUN && o.np > hr_hostfile_capacity(hf))
        return bad_usage("--np %d is more than the %d tasks of the allocation (SLURM_TASKS_PER_NODE)", o.np,
                         hr_hostfile_capacity(hf));
    if (o.min_np < 0)
        o.min_np = o.np;
    if (o.min_np > o.np)
        return bad_usage("--min-np %d is more than the %d ranks of the hostfile or this machine (--np)", o.min_np,
                         o.np);

    char dir[4096];
    bool append = o.append || (slurm.active && slurm.restart_count > 0);
    if (hr_signals_install() != 0 || prepare_run_dir(&o, &slurm, append, dir, sizeof(dir)) != 0)
        return HR_EXIT_INTERNAL;
    setenv("HCRT_RUN_DIR", dir, 1);
    char stop_file[4096 + 8];
    snprintf(stop_file, sizeof(stop_file), "%s/stop", dir);

    hr_attempt_t *att = NULL;
    int n = append ? resume_attempts(dir, &slurm, o.append, &att) : 0, first = n;
    int np = o.np, exit_status = 0;
    double backoff = 0;
    bool finished = false, stopped = false;
    char reason[1024] = "";
    if (first > 0 && !o.quiet)
        fprintf(stderr, "hcrt-run: %d attempt%s of earlier allocations in %s (Slurm restart count %d)\n", first,
                first == 1 ? "" : "s", dir, slurm.restart_count);
    for (;;) {
        hr_attempt_t *grown = realloc(att, (size_t)(n + 1) * sizeof(*grown));
        if (grown == NULL) {
            exit_status = HR_EXIT_INTERNAL;
            snprintf(reason, sizeof(reason), "out of memory");
            break;
        }
        att = grown;
        hr_attempt_t *a = &att[n];
        memset(a, 0, sizeof(*a));
        a->index = n;
        a->np = np;
        a->death_rank = -1;
        a->task_fail_status = a->task_fail_task = -1;
        a->backoff_s = backoff;
        a->launcher = o.launcher;
        a->status = a->launcher_status = -1;
        a->restart_count = slurm.active ? slurm.restart_count : -1;
        snprintf(a->job_id, sizeof(a->job_id), "%s", slurm.job_id);

        char adir[4096 + 32], hostfile[4096 + 48], attempt_text[32], np_text[16], bufs[8192];
        snprintf(adir, sizeof(adir), "%s/attempt-%d", dir, n);
        snprintf(hostfile, sizeof(hostfile), "%s/hostfile", adir);
        snprintf(attempt_text, sizeof(attempt_text), "%d", n);
        mkdir(adir, 0777);
        char **lv = NULL;
        if (o.launcher == HR_SRUN) {
            int per_node = 0;
            a->node_tasks = calloc((size_t)hf->n, sizeof(int));
            int k = a->node_tasks ? hr_hostfile_place(hf, np, a->nodes, sizeof(a->nodes), a->node_tasks, &per_node)
                                  : -1;
            a->nnodes = k;
            if (k < 0) {
                exit_status = HR_EXIT_INTERNAL;
                snprintf(reason, sizeof(reason), "the allocation's nodes left cannot hold %d ranks", np);
                break;
            }
            lv = hr_srun_argv(&o, np, k, a->nodes, per_node, bufs, sizeof(bufs));
        } else {
            if (hf != NULL) {
                int per = 0;
                if (hr_hostfile_write(hf, hostfile) != 0) {
                    exit_status = HR_EXIT_INTERNAL;
                    snprintf(reason, sizeof(reason), "cannot write the attempt's hostfile");
                    break;
                }
                if (hr_hostfile_place(hf, np, a->nodes, sizeof(a->nodes), NULL, &per) < 0)
                    a->nodes[0] = '\0'; /* hosts without slots=: Open MPI decides */
            }
            lv = launcher_argv(&o, np, hf ? hostfile : NULL, np_text);
        }
        setenv("HCRT_RUN_ATTEMPT", attempt_text, 1);
        if (lv == NULL) {
            exit_status = HR_EXIT_INTERNAL;
            snprintf(reason, sizeof(reason), "out of memory");
            break;
        }
        if (!o.quiet)
            fprintf(stderr, "hcrt-run: attempt %d: %d rank%s%s%s (HCRT_RUN_DIR=%s)\n", n, np, np == 1 ? "" : "s",
                    a->nodes[0] ? " on " : "", a->nodes, dir);
        hr_state_write(dir, a); /* "running": what the next allocation reads if this one ends now */
        rc = hr_launch(&o, lv, adir, stop_file, a);
        free(lv);
        if (rc != 0) {
            exit_status = rc;
            snprintf(reason, sizeof(reason), "hcrt-run could not run the attempt");
            break;
        }
        n++;
        hr_history_read(adir, a);
        /* mpirun killed by hcrt-run (--teardown) reports our SIGKILL: the job ended as its record says. */
        if (a->launcher == HR_MPIRUN && a->torn_down && a->has_record)
            a->status = a->record_status;
        hr_totals_t partial;
        hr_account(att, n, att[0].start, a->end, &partial); /* fills this attempt's steps and cause */
        hr_totals_free(&partial);
        exit_status = a->status;

        const char *launcher_name = o.launcher == HR_SRUN ? o.srun : o.mpirun;
        if (a->status == 0) {
            finished = true;
            snprintf(reason, sizeof(reason), "the job finished");
        } else if (a->stop_requested || hr_signals_count() > 0) {
            stopped = true;
            snprintf(reason, sizeof(reason), "stopped on request%s",
                     a->status == HCRT_EXIT_PREEMPTED ? " after the job saved" : "");
        } else if (a->status == HCRT_EXIT_PREEMPTED) {
            stopped = true;
            snprintf(reason, sizeof(reason), "the job was preempted and saved; not relaunched (a scheduler "
                                             "requeues it)");
        } else if (a->status == HR_EXIT_LAUNCH) {
            snprintf(reason, sizeof(reason), "the launcher %s could not be run", launcher_name);
        } else if (!hcrt_exit_restartable(a->status)) {
            snprintf(reason, sizeof(reason), "exit status %d (%s) is not one a restart can cure", a->status,
                     hcrt_exit_name(a->status));
        } else if (n - first - 1 >= o.max_restarts) {
            snprintf(reason, sizeof(reason), "restart limit reached (--max-restarts %d)", o.max_restarts);
        } else {
            reason[0] = '\0';
        }
        if (reason[0]) {
            hr_state_write(dir, a);
            break;
        }
        char lost[16][256];
        int nlost = lost_nodes_of(&o, a, lost, 16), next_np = np;
        for (int i = 0; i < nlost && next_np >= 0; i++) {
            next_np = ranks_after_node_loss(&o, hf, a, next_np, lost[i], reason, sizeof(reason));
            size_t len = strlen(a->left_out);
            snprintf(a->left_out + len, sizeof(a->left_out) - len, "%s%s", len ? "," : "", lost[i]);
        }
        hr_state_write(dir, a);
        if (next_np < 0)
            break;
        backoff = (n == first + 1 || made_progress(a) || backoff == 0) ? o.backoff_s : backoff * 2;
        if (backoff > o.backoff_max_s)
            backoff = o.backoff_max_s;
        if (!o.quiet)
            fprintf(stderr, "hcrt-run: attempt %d ended with %d: %s; relaunching %s%s%sin %.2f s\n", n - 1, a->status,
                    a->cause, a->left_out[0] ? "without " : "", a->left_out, a->left_out[0] ? " " : "",
                    backoff);
        if (hr_sleep_interruptible(backoff)) {
            stopped = true;
            snprintf(reason, sizeof(reason), "stopped on request before the relaunch");
            break;
        }
        np = next_np;
    }

    /* A Slurm job told to stop (its time limit is near, it is preempted) saved: requeue it, and the next
     * allocation's hcrt-run carries on from the newest checkpoint and from this report. */
    bool requeue = false;
    char why[512] = "";
    if (stopped && !finished && slurm.active && !o.no_requeue && n > first) {
        int ok = hr_slurm_requeueable(slurm.job_id, why, sizeof(why));
        requeue = ok == 1;
        if (!requeue)
            fprintf(stderr, "hcrt-run: not requeueing: %s\n", why);
    }
    if (requeue) {
        size_t len = strlen(reason);
        snprintf(reason + len, sizeof(reason) - len, "; Slurm job %s requeued", slurm.job_id);
        exit_status = HCRT_EXIT_PREEMPTED;
    }
    double end = n > 0 ? att[n - 1].end : 0;
    if (n > 0) {
        hr_totals_t tot;
        hr_account(att, n, att[0].start, end, &tot);
        hr_report_text(stderr, &o, att, n, &tot, exit_status, reason);
        if (o.report != NULL &&
            hr_report_json(o.report, &o, att, n, &tot, exit_status, reason, att[0].start, requeue) != 0 &&
            exit_status == 0)
            exit_status = HR_EXIT_INTERNAL;
        hr_totals_free(&tot);
    } else {
        fprintf(stderr, "hcrt-run: %s\n", reason);
    }
    /* Last: scontrol requeue ends this allocation (hcrt-run gets SIGTERM, then SIGKILL). */
    if (requeue) {
        fflush(NULL);
        if (hr_slurm_requeue(slurm.job_id, why, sizeof(why)) != 0)
            fprintf(stderr, "hcrt-run: the job was not requeued: %s\n", why);
        else if (!o.quiet)
            fprintf(stderr, "hcrt-run: requeued Slurm job %s; its next run resumes from the newest checkpoint\n",
                    slurm.job_id);
    }
    for (int i = 0; i < n; i++) {
        hr_history_free(&att[i]);
        hr_attempt_free_launch(&att[i]);
    }
    free(att);
    if (o.run_dir == NULL && !slurm.active) {
        if (o.keep_run_dir)
            fprintf(stderr, "hcrt-run: run directory kept: %s\n", dir);
        else
            remove_tree(dir);
    } else if (o.run_dir == NULL && !o.quiet) {
        fprintf(stderr, "hcrt-run: run directory: %s\n", dir);
    }
    if (hf != NULL)
        hr_hostfile_free(hf);
    for (size_t i = 0; i < o.nmpirun_args; i++)
        free(o.mpirun_args[i]);
    free(o.mpirun_args);
    for (size_t i = 0; i < o.nsrun_args; i++)
        free(o.srun_args[i]);
    free(o.srun_args);
    return exit_status;
}
