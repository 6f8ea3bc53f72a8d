/*
 * tools/hcrt-run/launch.c - one attempt: the launcher (mpirun, or srun inside a Slurm allocation) in its
 * own process group, watched.
 *
 * The watch is one poll() over: a self-pipe the SIGINT/SIGTERM handlers write to, a pidfd of the
 * launcher, pidfds of the ranks on this host (learnt from their heartbeat headers, so the first rank's
 * death is timed to the millisecond, not to the launcher's teardown), and the launcher's stderr, which is
 * copied through to ours and read for what the launcher knows: the node Open MPI says it lost (status
 * 205); under srun the tasks it reports ended, the first of them failed, and lost nodes (slurm.c).
 *
 * Stopping: the launcher is in its own process group, so a terminal's Ctrl-C reaches hcrt-run alone. The
 * first SIGINT/SIGTERM creates the stop file the job polls (hcrt_run_should_stop()) and gives the job
 * --grace seconds to save and exit; then, or at a second signal, the launcher gets SIGTERM (mpirun kills
 * the job; srun cancels the step); 10 s later, or at a third signal, the whole process group gets SIGKILL.
 *
 * Under srun, once a task failed the step is being ended by --kill-on-bad-exit, which sends the other
 * tasks SIGTERM; an hcrt job catches SIGTERM to save (hcrt_run_catch_signals()), and a rank blocked in a
 * collective would only go at Slurm's SIGKILL, KillWait (30 s by default) later. So hcrt-run sends the
 * step SIGKILL itself (scancel) as soon as srun names it, as mpirun does with odls_base_sigkill_timeout 0.
 * srun then still waits for every node's tasks to report, which a lost node never does (it gives up
 * after KillWait + 2 s): --teardown seconds after the first failure hcrt-run kills srun itself.
 *
 * mpirun ends a job in ~50 ms after a rank dies or aborts, except when it cannot reach a node's daemon
 * to kill its ranks: after a cut link, once the ranks' MPI_Abort made it send to that node, TCP
 * keepalive no longer applies and it waits for TCP's retransmissions (minutes). So under mpirun too,
 * --teardown seconds after the first failure record (fail-R in the attempt directory) or rank death
 * (1 s when the record names a lost node), hcrt-run kills the launcher's process group; the attempt then
 * ends with the record's status.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/hcrt-run/hcrt_run.h"

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_count;

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;
    sig_count++;
    if (write(sig_pipe[1], &c, 1) < 0) {
        /* the pipe is full: the watcher has enough wake-ups already */
    }
    errno = saved;
}

int hr_signals_install(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        fprintf(stderr, "hcrt-run: pipe: %s\n", strerror(errno));
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int hr_signals_count(void)
{
    return (int)sig_count;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void drain_sig_pipe(void)
{
    char buf[64];
    while (read(sig_pipe[0], buf, sizeof(buf)) > 0) {
    }
}

bool hr_sleep_interruptible(double secs)
{
    double end = now() + secs;
    int seen = hr_signals_count();
    for (;;) {
        double left = end - now();
        if (hr_signals_count() != seen)
            return true;
        if (left <= 0)
            return false;
        struct pollfd p = {sig_pipe[0], POLLIN, 0};
        poll(&p, 1, (int)(left * 1000) + 1);
        drain_sig_pipe();
    }
}

/* The launcher's stderr, copied through line by line and read: Open MPI names a lost node's daemon as
 * "Remote daemon: [[job,0],N] on node NAME"; srun's lines go to hr_srun_scan_line(). */
typedef struct relay {
    int fd;
    char line[4096];
    size_t len;
    hr_attempt_t *a;
} relay_t;

static void scan_line(relay_t *r)
{
    r->line[r->len] = '\0';
    r->len = 0;
    if (r->a->launcher == HR_SRUN) {
        hr_srun_scan_line(r->line, now(), r->a);
        return;
    }
    const char *d = strstr(r->line, "Remote daemon");
    const char *on = d ? strstr(d, " on node ") : NULL;
    if (on != NULL && r->a->launcher_lost_node[0] == '\0') {
        on += strlen(" on node ");
        size_t n = strcspn(on, " \t\r\n");
        snprintf(r->a->launcher_lost_node, sizeof(r->a->launcher_lost_node), "%.*s", (int)(n < 255 ? n : 255), on);
    }
}

/* Copies what is readable; returns false at end of file. */
static bool relay_pump(relay_t *r)
{
    char buf[4096];
    ssize_t n = read(r->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, buf + off, (size_t)(n - off));
        if (w <= 0)
            break; /* our stderr is gone: keep scanning anyway */
        off += w;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || r->len + 1 >= sizeof(r->line))
            scan_line(r);
        else
            r->line[r->len++] = buf[i];
    }
    return true;
}

/* Whether `node` (a host name, or HOST~K) is this machine. */
static bool node_is_here(const char *node)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        return false;
    host[sizeof(host) - 1] = '\0';
    size_t n = strcspn(node, "~");
    return strlen(host) == n && strncmp(host, node, n) == 0;
}

#define MAX_WATCHED 1024

typedef struct watch {
    struct pollfd fds[MAX_WATCHED + 3]; /* 0: signals, 1: launcher, 2: its stderr, then ranks */
    int rank_of[MAX_WATCHED + 3];       /* rank watched by fds[i] */
    int nfds;
    bool known[MAX_WATCHED]; /* ranks already watched (or dead), by rank number */
} watch_t;

/* Starts watching the ranks of this host that have written a heartbeat header since the last look. */
static void watch_new_ranks(watch_t *w, const char *attempt_dir, hr_attempt_t *a, int *nknown)
{
    hr_rank_t *ranks = NULL;
    int n = 0;
    if (hr_history_headers(attempt_dir, &ranks, &n) != 0)
        return;
    for (int i = 0; i < n; i++) {
        int r = ranks[i].rank;
        if (r < 0 || r >= MAX_WATCHED || w->known[r])
            continue;
        w->known[r] = true;
        (*nknown)++;
        if (!node_is_here(ranks[i].node) || ranks[i].pid <= 0 || w->nfds >= MAX_WATCHED + 3)
            continue;
        int fd = (int)pidfd_open((pid_t)ranks[i].pid, 0);
        if (fd < 0) {
            if (errno == ESRCH && a->death_t == 0) {
                a->death_t = now();
                a->death_rank = r;
            }
            continue;
        }
        w->rank_of[w->nfds] = r;
        w->fds[w->nfds++] = (struct pollfd){fd, POLLIN, 0};
    }
    hr_ranks_free(ranks, n);
}

/* Whether a rank wrote a failure record (fail-R) into the attempt directory: 0 none, 1 one, 2 one that
 * names a lost node. */
static int failure_record(const char *attempt_dir)
{
    DIR *d = opendir(attempt_dir);
    int found = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *e; found < 2 && (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, "fail-", 5) != 0)
            continue;
        found = 1;
        char path[4096 + 300], text[4096];
        snprintf(path, sizeof(path), "%s/%s", attempt_dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        const char *lost = strstr(text, "\nlost_node=");
        if (lost != NULL && lost[11] != '\n' && lost[11] != '\0')
            found = 2;
    }
    closedir(d);
    return found;
}

/* mpirun's time to end a job whose failure record names a lost node, before hcrt-run ends it. */
#define LOST_NODE_TEARDOWN 1.0

static void child_exec(char **argv, int err_fd)
{
    setpgid(0, 0);
    /* hcrt-run killed outright must not leave the job running. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    dup2(err_fd, STDERR_FILENO);
    execvp(argv[0], argv);
    fprintf(stderr, "hcrt-run: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(HR_EXIT_LAUNCH);
}

int hr_launch(const hr_options_t *o, char **argv, const char *attempt_dir, const char *stop_file, hr_attempt_t *a)
{
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "hcrt-run: pipe: %s\n", strerror(errno));
        return HR_EXIT_INTERNAL;
    }
    fflush(NULL);
    a->start = now();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "hcrt-run: fork: %s\n", strerror(errno));
        close(err_pipe[0]);
        close(err_pipe[1]);
        return HR_EXIT_INTERNAL;
    }
    if (pid == 0)
        child_exec(argv, err_pipe[1]);
    setpgid(pid, pid); /* also here: whichever of parent and child runs first */
    close(err_pipe[1]);
    fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);

    watch_t *w = calloc(1, sizeof(*w));
    int child_fd = (int)pidfd_open(pid, 0);
    if (w == NULL || child_fd < 0) {
        fprintf(stderr, "hcrt-run: cannot watch the launcher: %s\n", strerror(errno));
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        free(w);
        close(err_pipe[0]);
        return HR_EXIT_INTERNAL;
    }
    relay_t relay = {.fd = err_pipe[0], .a = a};
    w->fds[0] = (struct pollfd){sig_pipe[0], POLLIN, 0};
    w->fds[1] = (struct pollfd){child_fd, POLLIN, 0};
    w->fds[2] = (struct pollfd){err_pipe[0], POLLIN, 0};
    w->nfds = 3;

    int signals_seen = 0, nknown = 0, wstatus = 0;
    double term_at = 0, kill_at = 0, next_scan = 0, teardown_at = 0, next_record_scan = 0, first_record = 0;
    bool names_lost = false; /* mpirun: a failure record names a lost node */
    long scancel_pid = -1;
    bool exited = false, relay_open = true, termed = false;
    while (!exited) {
        double t = now();
        /* srun: a task failed (or the step was aborted); the rest of the step gets --teardown seconds. */
        double failed_at = a->task_fail_t > 0 ? a->task_fail_t : a->step_abort_t;
        /* mpirun: a rank recorded a failure, or one on this host died. */
        if (a->launcher == HR_MPIRUN && !names_lost && t >= next_record_scan) {
            int rec = failure_record(attempt_dir);
            if (rec > 0 && first_record == 0)
                first_record = t;
            /* A node the job found unreachable: mpirun will wait for it; the others end in ~50 ms. */
            if (rec == 2 && !a->torn_down) {
                names_lost = true;
                if (teardown_at == 0 || teardown_at > t + LOST_NODE_TEARDOWN)
                    teardown_at = t + (o->teardown_s < LOST_NODE_TEARDOWN ? o->teardown_s : LOST_NODE_TEARDOWN);
            }
            next_record_scan = t + 0.1;
        }
        if (a->launcher == HR_MPIRUN)
            failed_at = first_record > 0 && (a->death_t == 0 || first_record < a->death_t) ? first_record : a->death_t;
        if (failed_at > 0 && teardown_at == 0 && !a->torn_down && (a->launcher == HR_SRUN || !a->stop_requested))
            teardown_at = failed_at + o->teardown_s;
        /* A job that stopped on request (120) has committed its checkpoint: its ranks end by themselves. */
        if (a->launcher == HR_SRUN && a->task_fail_t > 0 && a->task_fail_status != 120 && a->step_id[0] &&
            !a->step_killed) {
            a->step_killed = true;
            scancel_pid = hr_slurm_kill_step(a->step_id);
        }
        /* Every node answered but some that never will (lost): no reason to wait for them. */
        if (a->launcher == HR_SRUN && teardown_at > t + 0.5 && hr_srun_only_silent_left(a))
            teardown_at = t + 0.5;
        if (teardown_at > 0 && t >= teardown_at && a->launcher == HR_MPIRUN) {
            fprintf(stderr, "hcrt-run: %s still runs %.1f s after the job's first failure: ending it (--teardown)\n",
                    argv[0], t - failed_at);
            kill(-pid, SIGKILL);
            a->torn_down = true;
            teardown_at = 0;
        } else if (teardown_at > 0 && t >= teardown_at) {
            if (hr_srun_only_silent_left(a))
                fprintf(stderr, "hcrt-run: srun waits for nodes none of whose tasks it heard from: ending it\n");
            else
                fprintf(stderr, "hcrt-run: srun still waits %.1f s after the first failed task: ending it (--teardown)\n",
                        t - failed_at);
            kill(-pid, SIGKILL);
            a->torn_down = true;
            teardown_at = 0;
        }
        if (nknown < a->np && t >= next_scan) {
            watch_new_ranks(w, attempt_dir, a, &nknown);
            next_scan = t + 0.05;
        }
        int sigs = hr_signals_count();
        if (sigs > signals_seen) {
            if (signals_seen == 0) {
                a->stop_t = t;
                /* The job sees the file at its next hcrt_run_should_stop() and saves. */
                int fd = open(stop_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
                if (fd >= 0)
                    close(fd);
                term_at = t + o->grace_s;
                fprintf(stderr,
                        "hcrt-run: stop requested: the job has %.0f s to save and exit (signal again "
                        "to end it now)\n",
                        o->grace_s);
            }
            if (sigs >= 2 && !termed)
                term_at = t;
            if (sigs >= 3)
                kill_at = t;
            a->stop_requested = true;
            signals_seen = sigs;
        }
        if (term_at > 0 && t >= term_at) {
            fprintf(stderr, "hcrt-run: ending the job (SIGTERM to %s)\n", argv[0]);
            kill(pid, SIGTERM);
            termed = true;
            term_at = 0;
            kill_at = t + 10.0;
        }
        if (kill_at > 0 && t >= kill_at) {
            kill(-pid, SIGKILL);
            kill_at = 0;
        }

        int timeout_ms = nknown < a->np ? 50 : 500;
        if (term_at > 0 && (int)((term_at - t) * 1000) + 1 < timeout_ms)
            timeout_ms = (int)((term_at - t) * 1000) + 1;
        if (kill_at > 0 && (int)((kill_at - t) * 1000) + 1 < timeout_ms)
            timeout_ms = (int)((kill_at - t) * 1000) + 1;
        if (teardown_at > 0 && (int)((teardown_at - t) * 1000) + 1 < timeout_ms)
            timeout_ms = teardown_at > t ? (int)((teardown_at - t) * 1000) + 1 : 0;
        w->fds[2].fd = relay_open ? err_pipe[0] : -1;
        if (poll(w->fds, (nfds_t)w->nfds, timeout_ms) < 0 && errno != EINTR)
            break;
        t = now();
        if (w->fds[0].revents)
            drain_sig_pipe();
        if (relay_open && w->fds[2].revents)
            relay_open = relay_pump(&relay);
        for (int i = 3; i < w->nfds; i++) {
            if (!w->fds[i].revents)
                continue;
            if (a->death_t == 0) {
                a->death_t = t;
                a->death_rank = w->rank_of[i];
            }
            close(w->fds[i].fd);
            w->nfds--;
            w->fds[i] = w->fds[w->nfds];
            w->rank_of[i] = w->rank_of[w->nfds];
            i--;
        }
        if (w->fds[1].revents && waitpid(pid, &wstatus, WNOHANG) == pid)
            exited = true;
    }
    a->end = now();
    if (!exited) {
        kill(-pid, SIGKILL);
        waitpid(pid, &wstatus, 0);
    }
    /* What the launcher wrote last (its summary of the failure); its children may still hold the pipe. */
    for (double until = now() + 1.0; relay_open && now() < until;) {
        struct pollfd p = {err_pipe[0], POLLIN, 0};
        if (poll(&p, 1, 100) > 0)
            relay_open = relay_pump(&relay);
    }
    if (relay.len > 0)
        scan_line(&relay);
    for (int i = 1; i < w->nfds; i++)
        if (i != 2)
            close(w->fds[i].fd);
    close(err_pipe[0]);
    free(w);
    if (scancel_pid > 0) {
        /* scancel waits on a lost node for Slurm's MessageTimeout; its work is done by now */
        if (waitpid((pid_t)scancel_pid, NULL, WNOHANG) == 0) {
            kill(-(pid_t)scancel_pid, SIGKILL);
            waitpid((pid_t)scancel_pid, NULL, 0);
        }
    }
    a->launcher_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    a->status = a->launcher_status;
    /* srun's own status is the killed tasks' (143); the first failed task says how the job ended. */
    if (a->launcher == HR_SRUN && a->launcher_status != 0 && a->task_fail_status > 0)
        a->status = a->task_fail_status;
    return 0;
}
