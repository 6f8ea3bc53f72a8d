/*
 * runtime/run/failure.c - hcrt_run_note_failure(): the record of why a rank ends the job, for hcrt-run.
 *
 * Written on the way to an abort, so it makes no MPI call and takes only its own lock: a few lines into
 * a temporary file, then a rename, so hcrt-run reads a whole record or none.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/run/run_internal.h"

static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;

/* Copies `what` into out as one line: control characters become spaces, at most cap - 1 bytes. */
static void one_line(const char *what, char *out, size_t cap)
{
    size_t i = 0;
    for (; what && what[i] && i + 1 < cap; i++)
        out[i] = (what[i] == '\n' || what[i] == '\r' || what[i] == '\t') ? ' ' : what[i];
    out[i] = '\0';
}

static hcrt_status_t write_record(const hcrt_context_t *ctx, const char *dir, int exit_status, const char *lost_node,
                                  const char *what)
{
    char path[4096 + 32], tmp[4096 + 48], node[300], lost[300], text[1001], buf[2048];
    snprintf(path, sizeof(path), "%s/fail-%d", dir, ctx->rank);
    if (access(path, F_OK) == 0)
        return HCRT_OK; /* the first failure of a rank is its cause; what follows is its consequence */
    snprintf(tmp, sizeof(tmp), "%s/.fail-%d.tmp", dir, ctx->rank);
    hcrt__run_node_name(ctx, node, sizeof(node));
    if (lost_node != NULL && lost_node[0] == '\0')
        snprintf(lost, sizeof(lost), "%s", node);
    else
        one_line(lost_node, lost, sizeof(lost));
    one_line(what, text, sizeof(text));
    int n = snprintf(buf, sizeof(buf), "time=%.6f\nrank=%d\nnode=%s\nstatus=%d\nlost_node=%s\nwhat=%s\n",
                     hcrt__run_wall_time(), ctx->rank, node, exit_status, lost, text);
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = (int)sizeof(buf) - 1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return hcrt__error(ctx, HCRT_ERR_IO, "cannot create failure record %s: %s", tmp, strerror(errno));
    ssize_t w = write(fd, buf, (size_t)n);
    int werr = errno;
    close(fd);
    if (w != n) {
        unlink(tmp);
        return hcrt__error(ctx, HCRT_ERR_IO, "cannot write failure record %s: %s", tmp,
                           w < 0 ? strerror(werr) : "short write");
    }
    if (rename(tmp, path) != 0) {
        werr = errno;
        unlink(tmp);
        return hcrt__error(ctx, HCRT_ERR_IO, "cannot rename failure record to %s: %s", path, strerror(werr));
    }
    return HCRT_OK;
}

hcrt_status_t hcrt_run_note_failure(hcrt_context_t *ctx, int exit_status, const char *lost_node, const char *what)
{
    HCRT_CHECK_ARG(ctx, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, exit_status >= 0 && exit_status <= 255, "exit_status", "is outside 0..255");
    char dir[4096];
    hcrt_status_t st = hcrt__run_attempt_dir(ctx, dir, sizeof(dir));
    if (st == HCRT_ERR_NOT_FOUND)
        return HCRT_OK;
    if (st != HCRT_OK)
        return st;
    pthread_mutex_lock(&record_lock);
    st = write_record(ctx, dir, exit_status, lost_node, what);
    pthread_mutex_unlock(&record_lock);
    return st;
}
