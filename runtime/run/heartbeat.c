/*
 * runtime/run/heartbeat.c - hcrt_run_heartbeat(): one appended line per training event, for hcrt-run.
 *
 * The file stays open for the life of the process and every line is a single O_APPEND write of less
 * than PIPE_BUF bytes: a heartbeat costs one system call, and hcrt-run, reading while the job runs or
 * after it was killed, sees whole lines only. There is no fsync: a killed process loses nothing it wrote,
 * and the loop reads the step counts of a lost node from the ranks that survive.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/run/run_internal.h"

static pthread_mutex_t hb_lock = PTHREAD_MUTEX_INITIALIZER;
static int hb_fd = -1;
static char hb_path[4096 + 32]; /* the file hb_fd writes; another context may name another one */

static const char event_letter[] = {'S', 'R', 'V', 'C'}; /* by hcrt_run_event_t */

static hcrt_status_t write_all(const hcrt_context_t *ctx, int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return hcrt__error(ctx, HCRT_ERR_IO, "cannot write heartbeat file %s: %s", hb_path,
                               n < 0 ? strerror(errno) : "short write");
        text += n;
        len -= (size_t)n;
    }
    return HCRT_OK;
}

/* Opens this rank's heartbeat file of the current attempt (when not open yet) and writes its header. */
static hcrt_status_t open_file(const hcrt_context_t *ctx)
{
    char dir[4096], path[4096 + 32], node[300], header[512];
    HCRT_CHECK(hcrt__run_attempt_dir(ctx, dir, sizeof(dir)));
    snprintf(path, sizeof(path), "%s/rank-%d.hb", dir, ctx->rank);
    if (hb_fd >= 0 && strcmp(path, hb_path) == 0)
        return HCRT_OK;
    if (hb_fd >= 0)
        close(hb_fd);
    snprintf(hb_path, sizeof(hb_path), "%s", path);
    /* O_TRUNC: a relaunch with the same attempt number (by hand) starts a fresh history. */
    hb_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0666);
    if (hb_fd < 0)
        return hcrt__error(ctx, HCRT_ERR_IO, "cannot create heartbeat file %s: %s", path, strerror(errno));
    hcrt__run_node_name(ctx, node, sizeof(node));
    int n = snprintf(header, sizeof(header), "hcrt-heartbeat 1 rank=%d size=%d pid=%ld node=%s attempt=%lld\n",
                     ctx->rank, ctx->size, (long)getpid(), node, (long long)hcrt__config_int(ctx, "HCRT_RUN_ATTEMPT"));
    hcrt_status_t st = write_all(ctx, hb_fd, header, (size_t)n < sizeof(header) ? (size_t)n : sizeof(header) - 1);
    if (st != HCRT_OK) {
        close(hb_fd);
        hb_fd = -1;
    }
    return st;
}

hcrt_status_t hcrt_run_heartbeat(hcrt_context_t *ctx, int64_t step, hcrt_run_event_t event)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, step >= 0, "step", "is negative");
    HCRT_CHECK_ARG(ctx, (unsigned)event < sizeof(event_letter), "event", "is not an hcrt_run_event_t");
    if (hcrt__config_str(ctx, "HCRT_RUN_DIR")[0] == '\0')
        return HCRT_OK;
    char line[96];
    int n = snprintf(line, sizeof(line), "%c %lld %.6f\n", event_letter[event], (long long)step, hcrt__run_wall_time());
    pthread_mutex_lock(&hb_lock);
    hcrt_status_t st = open_file(ctx);
    if (st == HCRT_OK)
        st = write_all(ctx, hb_fd, line, (size_t)n);
    pthread_mutex_unlock(&hb_lock);
    return st;
}
