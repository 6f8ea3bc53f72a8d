/*
 * tools/hcrt-run/slurm.c - hcrt-run inside a Slurm allocation (docs/slurm.md): the allocation's nodes,
 * srun's command line for one attempt, what srun says on stderr, probes of nodes that went silent, and
 * requeueing the job after a stop.
 *
 * Every attempt is one job step: `srun --mpi=pmix --kill-on-bad-exit=1 --overlap -n NP -N K -w NODES`.
 * --kill-on-bad-exit ends the step as soon as one task fails; --overlap lets the next step start while
 * slurmctld still counts the failed step's CPUs as busy (a step that had tasks on a dead node stays
 * "running" until the node is declared down, SlurmdTimeout later, and would block the relaunch).
 *
 * srun's own exit status does not say how the job ended: after --kill-on-bad-exit it is the status of
 * the tasks it killed (143) whatever the first task did (docs/slurm.md has the measurements). The first
 * task srun reports failed ("srun: error: NODE: task N: Exited with exit code 124") is how the job
 * ended, and that is the attempt's status. A node that was lost shows as a node none of whose tasks srun
 * ever reports: after a failed attempt such nodes are probed (a connection to their slurmd, else a
 * one-task step), and those that do not answer are left out of the next attempts, which run on the
 * allocation's spare nodes or on fewer ranks.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/hcrt-run/hcrt_run.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void hr_slurm_detect(hr_slurm_t *s)
{
    memset(s, 0, sizeof(*s));
    s->ntasks = -1;
    const char *id = getenv("SLURM_JOB_ID");
    if (id == NULL || id[0] == '\0')
        id = getenv("SLURM_JOBID");
    if (id == NULL || id[0] == '\0')
        return;
    s->active = true;
    snprintf(s->job_id, sizeof(s->job_id), "%s", id);
    const char *v = getenv("SLURM_RESTART_COUNT");
    s->restart_count = v ? atoi(v) : 0;
    v = getenv("SLURM_NTASKS");
    if (v != NULL && atoi(v) > 0)
        s->ntasks = atoi(v);
    v = getenv("SLURM_SUBMIT_DIR");
    snprintf(s->submit_dir, sizeof(s->submit_dir), "%s", v ? v : "");
}

int hr_slurm_expand_counts(const char *text, int *counts, int n)
{
    int k = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        long rep = 1;
        if (end == p || v < 0 || v > 1000000)
            return -1;
        p = end;
        if (*p == '(') {
            if (p[1] != 'x')
                return -1;
            rep = strtol(p + 2, &end, 10);
            if (end == p + 2 || *end != ')' || rep < 1 || rep > 1000000)
                return -1;
            p = end + 1;
        }
        for (long i = 0; i < rep; i++) {
            if (k >= n)
                return -1;
            counts[k++] = (int)v;
        }
        if (*p == ',')
            p++;
        else if (*p != '\0')
            return -1;
    }
    return k;
}

/* Runs argv with stdout and stderr into out (NUL-terminated, truncated to cap), for at most timeout_s;
 * returns its exit status, or -1 (with errno-like text in out) when it could not run or timed out.
 * keep_on_term: the command ignores SIGTERM (scontrol requeue: the requeue itself signals every process
 * of the batch step, this one included, before it may have answered). */
static int run_capture_opt(char **argv, char *out, size_t cap, double timeout_s, bool keep_on_term)
{
    int fds[2];
    size_t len = 0;
    out[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(out, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(out, cap, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        if (keep_on_term)
            signal(SIGTERM, SIG_IGN); /* kept across exec */
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    double end = now() + timeout_s;
    bool timed_out = false;
    for (;;) {
        double left = end - now();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        char buf[1024];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
        memcpy(out + len, buf, take);
        len += take;
        out[len] = '\0';
    }
    close(fds[0]);
    if (timed_out)
        kill(-pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
        snprintf(out, cap, "%s did not answer within %.0f s", argv[0], timeout_s);
        return -1;
    }
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static int run_capture(char **argv, char *out, size_t cap, double timeout_s)
{
    return run_capture_opt(argv, out, cap, timeout_s, false);
}

int hr_slurm_nodes(hr_hostfile_t *hf)
{
    const char *list = getenv("SLURM_JOB_NODELIST");
    if (list == NULL || list[0] == '\0')
        list = getenv("SLURM_NODELIST");
    const char *per = getenv("SLURM_TASKS_PER_NODE");
    const char *what = "SLURM_TASKS_PER_NODE";
    if (per == NULL || per[0] == '\0') {
        per = getenv("SLURM_JOB_CPUS_PER_NODE");
        what = "SLURM_JOB_CPUS_PER_NODE";
    }
    hf->hosts = NULL;
    hf->n = 0;
    if (list == NULL || list[0] == '\0' || per == NULL || per[0] == '\0') {
        fprintf(stderr, "hcrt-run: inside Slurm job %s but SLURM_JOB_NODELIST or SLURM_TASKS_PER_NODE is unset: "
                        "run hcrt-run in the batch script or under salloc\n",
                getenv("SLURM_JOB_ID") ? getenv("SLURM_JOB_ID") : "?");
        return -1;
    }
    char *out = malloc(1 << 20);
    char *argv[] = {"scontrol", "show", "hostnames", (char *)list, NULL};
    if (out == NULL)
        return -1;
    int rc = run_capture(argv, out, 1 << 20, 30);
    if (rc != 0) {
        fprintf(stderr, "hcrt-run: scontrol show hostnames %s failed: %s\n", list, out);
        free(out);
        return -1;
    }
    char *save = NULL;
    for (char *name = strtok_r(out, " \t\r\n", &save); name; name = strtok_r(NULL, " \t\r\n", &save))
        if (hr_hostfile_add(hf, name, -1) != 0) {
            free(out);
            return -1;
        }
    free(out);
    int *counts = calloc((size_t)hf->n + 1, sizeof(int));
    int k = counts ? hr_slurm_expand_counts(per, counts, hf->n) : -1;
    if (hf->n == 0 || k != hf->n) {
        fprintf(stderr, "hcrt-run: %s=%s does not give one count per node of %s (%d nodes)\n", what, per, list, hf->n);
        free(counts);
        hr_hostfile_free(hf);
        return -1;
    }
    for (int i = 0; i < hf->n; i++) {
        hf->hosts[i].slots = counts[i];
        snprintf(hf->hosts[i].line, sizeof(hf->hosts[i].line), "%s slots=%d", hf->hosts[i].name, counts[i]);
    }
    free(counts);
    return 0;
}

static bool user_gives(const hr_options_t *o, const char *opt)
{
    size_t n = strlen(opt);
    for (size_t i = 0; i < o->nsrun_args; i++)
        if (strncmp(o->srun_args[i], opt, n) == 0 && (o->srun_args[i][n] == '\0' || o->srun_args[i][n] == '='))
            return true;
    return false;
}

char **hr_srun_argv(const hr_options_t *o, int np, int nnodes, const char *nodelist, int per_node, char *bufs,
                    size_t bufcap)
{
    char **v = calloc(o->nsrun_args + (size_t)o->ncmd + 16, sizeof(char *));
    size_t n = 0, used = 0;
    if (v == NULL)
        return NULL;
#define HR_ARG_(...)                                                                                                   \
    do {                                                                                                               \
        int w_ = snprintf(bufs + used, bufcap - used, __VA_ARGS__);                                                    \
        v[n++] = bufs + used;                                                                                          \
        used += (size_t)w_ + 1 < bufcap - used ? (size_t)w_ + 1 : 0;                                                   \
    } while (0)
    v[n++] = (char *)o->srun;
    if (!user_gives(o, "--mpi"))
        v[n++] = "--mpi=pmix"; /* Debian's Open MPI has no PMI-2; pmix is what both ship */
    v[n++] = "--kill-on-bad-exit=1";
    v[n++] = "--overlap";
    v[n++] = "--export=ALL"; /* HCRT_RUN_DIR and HCRT_RUN_ATTEMPT, whatever sbatch --export said */
    HR_ARG_("--ntasks=%d", np);
    if (nnodes > 0) {
        HR_ARG_("--nodes=%d", nnodes);
        HR_ARG_("--nodelist=%s", nodelist);
    }
    if (per_node > 0)
        HR_ARG_("--ntasks-per-node=%d", per_node);
#undef HR_ARG_
    for (size_t i = 0; i < o->nsrun_args; i++)
        v[n++] = o->srun_args[i];
    for (int i = 0; i < o->ncmd; i++)
        v[n++] = o->cmd[i];
    v[n] = NULL;
    return v;
}

/* How many tasks "0-3,7" names; -1 when malformed. */
static int count_tasks(const char *s, int *first)
{
    int total = 0;
    *first = -1;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b;
        if (end == s || a < 0)
            return -1;
        b = a;
        if (*end == '-') {
            const char *q = end + 1;
            b = strtol(q, &end, 10);
            if (end == q || b < a)
                return -1;
        }
        if (*first < 0)
            *first = (int)a;
        total += (int)(b - a + 1);
        s = end;
        if (*s == ',')
            s++;
        else if (*s != '\0')
            return -1;
    }
    return total;
}

/* The status of a task state as srun words it: "Exited with exit code N", or strsignal()'s text of the
 * signal that killed it ("Killed", "Terminated", "Segmentation fault (core dumped)"); -1 unknown. */
static int state_status(const char *state)
{
    int code;
    if (sscanf(state, "Exited with exit code %d", &code) == 1)
        return code;
    for (int sig = 1; sig < 65; sig++) {
        const char *name = strsignal(sig);
        if (name != NULL && name[0] && strncmp(state, name, strlen(name)) == 0 &&
            (state[strlen(name)] == '\0' || state[strlen(name)] == ' '))
            return 128 + sig;
    }
    return -1;
}

static void note_reported(hr_attempt_t *a, const char *node, int tasks)
{
    for (int i = 0; i < a->nreported; i++)
        if (strcmp(a->reported_nodes[i], node) == 0) {
            a->reported_tasks[i] += tasks;
            return;
        }
    char **names = realloc(a->reported_nodes, (size_t)(a->nreported + 1) * sizeof(char *));
    if (names == NULL)
        return;
    a->reported_nodes = names;
    int *counts = realloc(a->reported_tasks, (size_t)(a->nreported + 1) * sizeof(int));
    if (counts == NULL)
        return;
    a->reported_tasks = counts;
    a->reported_nodes[a->nreported] = strdup(node);
    if (a->reported_nodes[a->nreported] == NULL)
        return;
    a->reported_tasks[a->nreported++] = tasks;
}

void hr_attempt_free_launch(hr_attempt_t *a)
{
    for (int i = 0; i < a->nreported; i++)
        free(a->reported_nodes[i]);
    free(a->reported_nodes);
    free(a->reported_tasks);
    free(a->node_tasks);
    a->node_tasks = NULL;
    a->nnodes = 0;
    a->reported_nodes = NULL;
    a->reported_tasks = NULL;
    a->nreported = 0;
}

void hr_srun_scan_line(const char *line, double t, hr_attempt_t *a)
{
    static const char err[] = "srun: error: ";
    const char *sid = strstr(line, "StepId=");
    if (sid != NULL && a->step_id[0] == '\0') {
        size_t n = strspn(sid + 7, "0123456789.+_");
        if (n > 0 && n < sizeof(a->step_id))
            snprintf(a->step_id, sizeof(a->step_id), "%.*s", (int)n, sid + 7);
    }
    if (strncmp(line, "srun: Job step aborted", 22) == 0) {
        if (a->step_abort_t == 0)
            a->step_abort_t = t;
        return;
    }
    if (strncmp(line, err, sizeof(err) - 1) != 0)
        return;
    const char *m = line + sizeof(err) - 1;
    const char *on = NULL;
    if (strncmp(m, "Node failure on ", 16) == 0)
        on = m + 16;
    else if (strncmp(m, "Task launch for ", 16) == 0 && (on = strstr(m, " failed on node ")) != NULL)
        on += strlen(" failed on node ");
    if (on != NULL) {
        size_t n = strcspn(on, ": \t\r\n");
        if (a->launcher_lost_node[0] == '\0' && n > 0)
            snprintf(a->launcher_lost_node, sizeof(a->launcher_lost_node), "%.*s", (int)(n < 255 ? n : 255), on);
        return;
    }
    /* "NODE: task N: STATE" or "NODE: tasks 0-1,3: STATE" */
    const char *colon = strstr(m, ": ");
    if (colon == NULL || colon == m)
        return;
    const char *tp = colon + 2;
    if (strncmp(tp, "tasks ", 6) == 0)
        tp += 6;
    else if (strncmp(tp, "task ", 5) == 0)
        tp += 5;
    else
        return;
    const char *colon2 = strstr(tp, ": ");
    if (colon2 == NULL || colon2 - tp >= 256)
        return;
    char node[256], tasks[256];
    snprintf(node, sizeof(node), "%.*s", (int)(colon - m < 255 ? colon - m : 255), m);
    snprintf(tasks, sizeof(tasks), "%.*s", (int)(colon2 - tp), tp);
    int first, ntasks = count_tasks(tasks, &first);
    if (ntasks <= 0)
        return;
    note_reported(a, node, ntasks);
    int status = state_status(colon2 + 2);
    if (status != 0 && a->task_fail_status < 0) {
        a->task_fail_t = t;
        a->task_fail_status = status < 0 ? 1 : status;
        a->task_fail_task = first;
        snprintf(a->task_fail_node, sizeof(a->task_fail_node), "%s", node);
    }
}

/* The address of node's slurmd ("host", "port"), from scontrol; false when scontrol cannot tell. */
static bool slurmd_address(const char *node, char *host, size_t hcap, char *port, size_t pcap)
{
    static char slurmd_port[16];
    char out[16384];
    if (slurmd_port[0] == '\0') {
        char *argv[] = {"scontrol", "show", "config", NULL};
        const char *p;
        if (run_capture(argv, out, sizeof(out), 10) != 0 || (p = strstr(out, "SlurmdPort")) == NULL)
            return false;
        p += strcspn(p, "0123456789");
        snprintf(slurmd_port, sizeof(slurmd_port), "%.*s", (int)strspn(p, "0123456789"), p);
    }
    char *argv[] = {"scontrol", "show", "node", "-o", (char *)node, NULL};
    const char *a;
    if (run_capture(argv, out, sizeof(out), 10) != 0 || (a = strstr(out, "NodeAddr=")) == NULL || !slurmd_port[0])
        return false;
    a += 9;
    snprintf(host, hcap, "%.*s", (int)strcspn(a, " \t\r\n"), a);
    snprintf(port, pcap, "%s", slurmd_port);
    return host[0] != '\0';
}

/* Connects to each node's slurmd at once: alive[i] is whether it accepted within timeout_s. A killed
 * node refuses at once; one cut off lets the connection time out. -1 when a node's address is unknown
 * (then alive is untouched). */
static int probe_slurmd(char names[][256], int n, double timeout_s, bool *alive)
{
    int fds[256];
    struct pollfd p[256];
    for (int i = 0; i < n; i++) {
        char host[256], port[16];
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        fds[i] = -1;
        alive[i] = false;
        if (!slurmd_address(names[i], host, sizeof(host), port, sizeof(port)) ||
            getaddrinfo(host, port, &hints, &ai) != 0) {
            for (int k = 0; k < i; k++)
                if (fds[k] >= 0)
                    close(fds[k]);
            return -1;
        }
        fds[i] = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fds[i] >= 0 && connect(fds[i], ai->ai_addr, ai->ai_addrlen) == 0)
            alive[i] = true;
        else if (fds[i] >= 0 && errno != EINPROGRESS) {
            close(fds[i]);
            fds[i] = -1; /* refused or unreachable: lost */
        }
        freeaddrinfo(ai);
    }
    double end = now() + timeout_s;
    for (;;) {
        int waiting = 0;
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd){fds[i] >= 0 && !alive[i] ? fds[i] : -1, POLLOUT, 0};
            waiting += p[i].fd >= 0;
        }
        double left = end - now();
        if (waiting == 0 || left <= 0 || poll(p, (nfds_t)n, (int)(left * 1000) + 1) < 0)
            break;
        for (int i = 0; i < n; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            int err = 0;
            socklen_t len = sizeof(err);
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
            alive[i] = err == 0;
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return 0;
}

/* One one-task step per node, all at once: alive[i] is whether it ran `true` within timeout_s. */
static void probe_steps(const hr_options_t *o, char names[][256], int n, bool *alive)
{
    pid_t pids[256];
    bool done[256] = {false};
    for (int i = 0; i < n; i++) {
        char nodelist[300];
        snprintf(nodelist, sizeof(nodelist), "--nodelist=%.255s", names[i]);
        char *argv[] = {(char *)o->srun, "--overlap", "--mpi=none", "--nodes=1", "--ntasks=1", nodelist, "--quiet",
                        "true", NULL};
        alive[i] = false;
        pids[i] = fork();
        if (pids[i] == 0) {
            setpgid(0, 0);
            int null = open("/dev/null", O_RDWR);
            if (null >= 0) {
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
            }
            execvp(argv[0], argv);
            _exit(127);
        }
    }
    double end = now() + o->probe_timeout_s;
    for (int left = n; left > 0 && now() < end;) {
        for (int i = 0; i < n; i++) {
            int ws;
            if (!done[i] && pids[i] > 0 && waitpid(pids[i], &ws, WNOHANG) == pids[i]) {
                done[i] = true;
                alive[i] = WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
                left--;
            }
        }
        usleep(20000);
    }
    for (int i = 0; i < n; i++)
        if (pids[i] > 0 && !done[i]) {
            kill(-pids[i], SIGKILL);
            while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR) {
            }
        }
}

int hr_slurm_probe_silent(const hr_options_t *o, const hr_attempt_t *a, char lost[][256], int max)
{
    enum { MAXP = 256 };
    char suspects[MAXP][256];
    bool alive[MAXP];
    int ns = 0, nlost = 0;
    char list[sizeof(a->nodes)];
    snprintf(list, sizeof(list), "%s", a->nodes);
    char *save = NULL;
    for (char *node = strtok_r(list, ",", &save); node && ns < MAXP; node = strtok_r(NULL, ",", &save)) {
        bool heard = false;
        for (int i = 0; i < a->nreported; i++)
            heard = heard || (strcmp(a->reported_nodes[i], node) == 0 && a->reported_tasks[i] > 0);
        if (!heard)
            snprintf(suspects[ns++], 256, "%.255s", node);
    }
    if (ns == 0)
        return 0;
    if (!o->quiet)
        fprintf(stderr, "hcrt-run: srun reported no task of %d node%s of the failed step: probing %s%s\n", ns,
                ns == 1 ? "" : "s", suspects[0], ns > 1 ? " and the others" : "");
    /* slurmd's port answers at once, or refuses at once when the node died; a step is the fallback. */
    const char *how = "its slurmd did not accept a connection";
    if (probe_slurmd(suspects, ns, o->probe_timeout_s, alive) != 0) {
        probe_steps(o, suspects, ns, alive);
        how = "it did not run a probe step";
    }
    for (int i = 0; i < ns; i++) {
        if (alive[i])
            continue;
        if (!o->quiet)
            fprintf(stderr, "hcrt-run: node %s is lost (%s within %.0f s): it is left out\n", suspects[i], how,
                    o->probe_timeout_s);
        if (nlost < max)
            snprintf(lost[nlost++], 256, "%.255s", suspects[i]);
    }
    return nlost;
}

long hr_slurm_kill_step(const char *step_id)
{
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execlp("scancel", "scancel", "--signal=KILL", step_id, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Tasks srun reported ended on `node`. */
static int reported_on(const hr_attempt_t *a, const char *node)
{
    for (int i = 0; i < a->nreported; i++)
        if (strcmp(a->reported_nodes[i], node) == 0)
            return a->reported_tasks[i];
    return 0;
}

bool hr_srun_only_silent_left(const hr_attempt_t *a)
{
    char list[sizeof(a->nodes)], *save = NULL;
    int silent = 0, done = 0, i = 0;
    snprintf(list, sizeof(list), "%s", a->nodes);
    for (char *node = strtok_r(list, ",", &save); node && i < a->nnodes; node = strtok_r(NULL, ",", &save), i++) {
        int got = reported_on(a, node);
        if (got == 0)
            silent++;
        else if (got >= a->node_tasks[i])
            done++;
        else
            return false; /* a node still reporting */
    }
    return silent > 0 && done > 0;
}

int hr_slurm_requeueable(const char *job_id, char *why, size_t cap)
{
    char out[16384];
    char *argv[] = {"scontrol", "show", "job", "-o", (char *)job_id, NULL};
    int rc = run_capture(argv, out, sizeof(out), 30);
    if (rc != 0) {
        snprintf(why, cap, "scontrol show job %s: %.200s", job_id, out);
        return -1;
    }
    const char *r = strstr(out, " Requeue=");
    if (r == NULL) {
        snprintf(why, cap, "scontrol show job %s does not say whether it may be requeued", job_id);
        return -1;
    }
    if (r[9] == '1')
        return 1;
    snprintf(why, cap, "job %s may not be requeued (sbatch --requeue, or JobRequeue=1 in slurm.conf)", job_id);
    return 0;
}

int hr_slurm_requeue(const char *job_id, char *why, size_t cap)
{
    char out[4096];
    char *argv[] = {"scontrol", "requeue", (char *)job_id, NULL};
    int rc = run_capture_opt(argv, out, sizeof(out), 30, true);
    if (rc != 0) {
        out[strcspn(out, "\n")] = '\0';
        if (out[0])
            snprintf(why, cap, "scontrol requeue %s: %s", job_id, out);
        else
            snprintf(why, cap, "scontrol requeue %s failed (status %d)", job_id, rc);
        return -1;
    }
    return 0;
}
