/*
 * hcrt-run - the restart loop (docs/goodput.md, docs/architecture.md "Failures and the exit policy"):
 * launches a job with mpirun, watches it, classifies how each attempt ended by the exit policy
 * (hcrt/exit.h), relaunches restartable failures after a short backoff (on fewer ranks after a node
 * loss, down to --min-np: the checkpoint reshards), and ends with a report of attempts, lost time,
 * recovery per restart and goodput.
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
    "Runs CMD under mpirun and relaunches it after a restartable failure (hcrt/exit.h: a killed rank, a\n"
    "deadline, a dead peer, a lost device or node, a checkpoint I/O error), so that it resumes from its\n"
    "newest committed checkpoint; stops when the job succeeds, fails in a way a restart cannot cure, is\n"
    "told to stop, or after --max-restarts relaunches. The job's ranks get HCRT_RUN_DIR (they write\n"
    "heartbeats and failure records there, hcrt/run.h) and HCRT_RUN_ATTEMPT (0, 1, ...).\n"
    "\n"
    "  --np N              ranks (default: the hostfile's slots, else this machine's cores)\n"
    "  --min-np M          after a node is lost, relaunch on as few as M ranks (default N: never fewer);\n"
    "                      the checkpoint reshards to the new world size\n"
    "  --max-restarts K    relaunch at most K times (default 10)\n"
    "  --report FILE       write the report as JSON (keys in docs/goodput.md)\n"
    "  --hostfile F        Open MPI hostfile; a lost node is left out of the next attempt's copy\n"
    "  --mpirun-args \"...\" extra launcher arguments, split like a shell would (may be repeated)\n"
    "  --mpirun PATH       the launcher (default mpirun); hcrt-run adds -np, --hostfile and, for Open\n"
    "                      MPI's mpirun, -x HCRT_RUN_DIR -x HCRT_RUN_ATTEMPT and, unless you set it,\n"
    "                      --mca odls_base_sigkill_timeout 0 (a failed attempt is torn down in ~50 ms)\n"
    "  --run-dir D         HCRT_RUN_DIR: visible to every rank and to hcrt-run (a shared directory on a\n"
    "                      cluster); its attempt-* subdirectories are cleared first (default: a new\n"
    "                      temporary directory, removed at the end)\n"
    "  --keep-run-dir      keep the temporary run directory (its path is printed)\n"
    "  --backoff S         pause before a relaunch (default 0.25 s), doubled after each attempt that\n"
    "                      computed no step, up to --backoff-max S (default 30 s)\n"
    "  --grace S           on SIGINT/SIGTERM the job is asked to save and stop (HCRT_RUN_DIR/stop,\n"
    "                      hcrt_run_should_stop()) and gets S seconds (default 60) before mpirun is told\n"
    "                      to end it; a second signal ends it at once, a third kills it\n"
    "  --quiet             no progress lines, only the final report\n"
    "  --help              this text\n"
    "\n"
    "The report (stderr, and --report) lists each attempt (np, start and end, exit status, cause, first\n"
    "and last step) and the run's wall, useful, lost and checkpoint time, recovery time per restart (from\n"
    "the failure to the first step after the restore) and goodput = useful / wall.\n"
    "\n"
    "Exit status: the job's last exit status (0 when it finished; 120 when it stopped on request after\n"
    "saving), 2 for a bad command line, 127 when the launcher cannot be run, 70 when hcrt-run fails.\n";

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

static int add_mpirun_args(hr_options_t *o, const char *text)
{
    wordexp_t we;
    /* Shell word splitting and quotes; no command substitution, no undefined variables. */
    if (wordexp(text, &we, WRDE_NOCMD | WRDE_UNDEF) != 0)
        return -1;
    char **grown = realloc(o->mpirun_args, (o->nmpirun_args + we.we_wordc + 1) * sizeof(char *));
    if (grown == NULL) {
        wordfree(&we);
        return -1;
    }
    o->mpirun_args = grown;
    for (size_t i = 0; i < we.we_wordc; i++)
        o->mpirun_args[o->nmpirun_args++] = strdup(we.we_wordv[i]);
    o->mpirun_args[o->nmpirun_args] = NULL;
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
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->min_np = -1;
    o->max_restarts = 10;
    o->mpirun = "mpirun";
    o->backoff_s = 0.25;
    o->backoff_max_s = 30;
    o->grace_s = 60;
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
            break;
        case 'a':
            if (add_mpirun_args(o, optarg) != 0)
                return bad_usage("--mpirun-args: cannot split '%s' into words (unbalanced quotes, `...` or an "
                                 "undefined variable?)",
                                 optarg);
            break;
        case 'M':
            o->mpirun = optarg;
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

/* Creates the run directory (or a temporary one) and clears what an earlier run left there. */
static int prepare_run_dir(hr_options_t *o, char *dir, size_t cap)
{
    if (o->run_dir == NULL) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, cap, "%s/hcrt-run.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "hcrt-run: cannot create a run directory %s: %s\n", dir, strerror(errno));
            return -1;
        }
        return 0;
    }
    snprintf(dir, cap, "%s", o->run_dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "hcrt-run: --run-dir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char path[4096 + 64];
    snprintf(path, sizeof(path), "%s/stop", dir);
    unlink(path);
    for (int i = 0;; i++) {
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

static bool user_sets_sigkill_timeout(const hr_options_t *o)
{
    if (getenv("OMPI_MCA_odls_base_sigkill_timeout") != NULL)
        return true;
    for (size_t i = 0; i < o->nmpirun_args; i++)
        if (strstr(o->mpirun_args[i], "odls_base_sigkill_timeout") != NULL)
            return true;
    return false;
}

/* The launcher's command line for one attempt (pointers into o and static strings; free the array). */
static char **launcher_argv(const hr_options_t *o, int np, const char *hostfile, char *np_text)
{
    char **v = calloc(o->nmpirun_args + (size_t)o->ncmd + 16, sizeof(char *));
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
        if (!user_sets_sigkill_timeout(o)) {
            v[n++] = "--mca";
            v[n++] = "odls_base_sigkill_timeout";
            v[n++] = "0";
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

/* After a node loss: the next attempt's rank count, or -1 (with the reason) when it would be below
 * --min-np. Drops the node from the hostfile. */
static int ranks_after_node_loss(const hr_options_t *o, hr_hostfile_t *hf, const hr_attempt_t *a, const char *node,
                                 char *why, size_t cap)
{
    int held = hr_ranks_on_node(a, node), next = a->np;
    if (hf != NULL) {
        if (held == 0)
            held = hr_hostfile_slots(hf, node);
        if (!hr_hostfile_drop(hf, node))
            fprintf(stderr, "hcrt-run: lost node %s is not in --hostfile %s\n", node, o->hostfile);
        int left = hr_hostfile_capacity(hf);
        next = left < 0 ? a->np : (left < a->np ? left : a->np);
    } else if (held > 0) {
        next = a->np - held;
    }
    if (next < o->min_np) {
        snprintf(why, cap, "node %s was lost (it held %d rank%s); %d rank%s left, fewer than --min-np %d", node, held,
                 held == 1 ? "" : "s", next, next == 1 ? "" : "s", o->min_np);
        return -1;
    }
    return next;
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
    hr_hostfile_t hf_store, *hf = NULL;
    if (o.hostfile != NULL) {
        if (hr_hostfile_read(o.hostfile, &hf_store) != 0)
            return HR_EXIT_USAGE;
        hf = &hf_store;
    }
    if (o.np == 0) {
        int cap = hf ? hr_hostfile_capacity(hf) : -1;
        o.np = cap > 0 ? cap : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (o.min_np < 0)
        o.min_np = o.np;
    if (o.min_np > o.np)
        return bad_usage("--min-np %d is more than the %d ranks of the hostfile or this machine (--np)", o.min_np,
                         o.np);

    char dir[4096];
    if (hr_signals_install() != 0 || prepare_run_dir(&o, dir, sizeof(dir)) != 0)
        return HR_EXIT_INTERNAL;
    setenv("HCRT_RUN_DIR", dir, 1);
    char stop_file[4096 + 8];
    snprintf(stop_file, sizeof(stop_file), "%s/stop", dir);

    hr_attempt_t *att = NULL;
    int n = 0, np = o.np, exit_status = 0;
    double backoff = 0;
    char reason[1024] = "";
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
        a->backoff_s = backoff;

        char adir[4096 + 32], hostfile[4096 + 48], attempt_text[32], np_text[16];
        snprintf(adir, sizeof(adir), "%s/attempt-%d", dir, n);
        snprintf(hostfile, sizeof(hostfile), "%s/hostfile", adir);
        snprintf(attempt_text, sizeof(attempt_text), "%d", n);
        mkdir(adir, 0777);
        if (hf != NULL && hr_hostfile_write(hf, hostfile) != 0) {
            exit_status = HR_EXIT_INTERNAL;
            snprintf(reason, sizeof(reason), "cannot write the attempt's hostfile");
            break;
        }
        setenv("HCRT_RUN_ATTEMPT", attempt_text, 1);
        char **lv = launcher_argv(&o, np, hf ? hostfile : NULL, np_text);
        if (lv == NULL) {
            exit_status = HR_EXIT_INTERNAL;
            snprintf(reason, sizeof(reason), "out of memory");
            break;
        }
        if (!o.quiet)
            fprintf(stderr, "hcrt-run: attempt %d: %d rank%s (HCRT_RUN_DIR=%s)\n", n, np, np == 1 ? "" : "s", dir);
        rc = hr_launch(&o, lv, adir, stop_file, a);
        free(lv);
        if (rc != 0) {
            exit_status = rc;
            snprintf(reason, sizeof(reason), "hcrt-run could not run the attempt");
            break;
        }
        n++;
        hr_history_read(adir, a);
        hr_totals_t partial;
        hr_account(att, n, att[0].start, a->end, &partial); /* fills this attempt's steps and cause */
        hr_totals_free(&partial);
        exit_status = a->status;

        if (a->status == 0) {
            snprintf(reason, sizeof(reason), "the job finished");
            break;
        }
        if (a->stop_requested || hr_signals_count() > 0) {
            snprintf(reason, sizeof(reason), "stopped on request%s",
                     a->status == HCRT_EXIT_PREEMPTED ? " after the job saved" : "");
            break;
        }
        if (a->status == HCRT_EXIT_PREEMPTED) {
            snprintf(reason, sizeof(reason),
                     "the job was preempted and saved; not relaunched (a scheduler "
                     "requeues it)");
            break;
        }
        if (a->status == HR_EXIT_LAUNCH) {
            snprintf(reason, sizeof(reason), "the launcher %s could not be run", o.mpirun);
            break;
        }
        if (!hcrt_exit_restartable(a->status)) {
            snprintf(reason, sizeof(reason), "exit status %d (%s) is not one a restart can cure", a->status,
                     hcrt_exit_name(a->status));
            break;
        }
        if (n - 1 >= o.max_restarts) {
            snprintf(reason, sizeof(reason), "restart limit reached (--max-restarts %d)", o.max_restarts);
            break;
        }
        const char *lost = a->record_lost_node[0] ? a->record_lost_node : a->mpirun_lost_node;
        int next_np = np;
        if (lost[0]) {
            next_np = ranks_after_node_loss(&o, hf, a, lost, reason, sizeof(reason));
            if (next_np < 0)
                break;
        }
        backoff = (n == 1 || made_progress(a) || backoff == 0) ? o.backoff_s : backoff * 2;
        if (backoff > o.backoff_max_s)
            backoff = o.backoff_max_s;
        if (!o.quiet)
            fprintf(stderr, "hcrt-run: attempt %d ended with %d: %s; relaunching %sin %.2f s\n", n - 1, a->status,
                    a->cause, next_np != np ? "on fewer ranks " : "", backoff);
        if (hr_sleep_interruptible(backoff)) {
            snprintf(reason, sizeof(reason), "stopped on request before the relaunch");
            break;
        }
        np = next_np;
    }

    double end = n > 0 ? att[n - 1].end : 0;
    if (n > 0) {
        hr_totals_t tot;
        hr_account(att, n, att[0].start, end, &tot);
        hr_report_text(stderr, &o, att, n, &tot, exit_status, reason);
        if (o.report != NULL && hr_report_json(o.report, &o, att, n, &tot, exit_status, reason, att[0].start) != 0 &&
            exit_status == 0)
            exit_status = HR_EXIT_INTERNAL;
        hr_totals_free(&tot);
    } else {
        fprintf(stderr, "hcrt-run: %s\n", reason);
    }
    for (int i = 0; i < n; i++)
        hr_history_free(&att[i]);
    free(att);
    if (o.run_dir == NULL) {
        if (o.keep_run_dir)
            fprintf(stderr, "hcrt-run: run directory kept: %s\n", dir);
        else
            remove_tree(dir);
    }
    if (hf != NULL)
        hr_hostfile_free(hf);
    for (size_t i = 0; i < o.nmpirun_args; i++)
        free(o.mpirun_args[i]);
    free(o.mpirun_args);
    return exit_status;
}
