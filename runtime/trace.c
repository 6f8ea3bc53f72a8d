/*
 * runtime/trace.c - HCRT_TRACE: per-rank event parts written as they happen, merged at hcrt_finalize.
 *
 * Each event is formatted on the caller's stack and appended to the rank's part with one write(2) on a
 * descriptor opened O_APPEND, so events of the application thread and of background threads (the
 * checkpoint writer) never interleave within a line, and a rank killed at any moment leaves a part
 * whose every complete line is an event. No lock, no buffer to flush: tracing is for looking at a job,
 * and a syscall per event (about a microsecond) is small beside the collectives and micro-batches it
 * records. hcrt_finalize reads the part back, gathers all parts to rank 0 and writes FILE through a
 * temporary name and a rename, so FILE is either the whole merged trace or absent.
 */
#include "runtime/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TRACE_SUBSYS "trace"
/* Longest HCRT_TRACE path accepted (the part name adds ".rank-N"). */
#define TRACE_PATH_MAX 3000

struct hcrt__trace {
    int fd;
    char *path;    /* FILE */
    char *part;    /* FILE.rank-N */
    double origin; /* rank 0's trace clock at hcrt_init, seconds */
    int rank;
};

static const char *const lane_names[HCRT__LANE_COUNT] = {"",           "application",       "collectives",
                                                         "checkpoint", "checkpoint writer", "balancer"};

double hcrt__trace_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *hcrt__trace_escape(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return buf;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p && o + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)*p;
        } else if (*p < 0x20) {
            o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", *p);
        } else {
            buf[o++] = (char)*p;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* Appends len bytes to the part; a short write (full disk) loses the event, never the job. */
static void append(const struct hcrt__trace *t, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(t->fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

void hcrt__trace_event_json(const hcrt_context_t *ctx, int lane, char ph, const char *name, const char *cat,
                            double start, double dur, const char *args_object)
{
    if (!hcrt__trace_on(ctx))
        return;
    const struct hcrt__trace *t = ctx->trace;
    char en[512], ec[128], stackbuf[4096];
    hcrt__trace_escape(name, en, sizeof(en));
    hcrt__trace_escape(cat, ec, sizeof(ec));
    const char *args_key = args_object ? ",\"args\":" : "";
    const char *args = args_object ? args_object : "";
    double ts = (start - t->origin) * 1e6;
    char *buf = stackbuf;
    size_t cap = sizeof(stackbuf);
    for (int pass = 0; pass < 2; pass++) {
        int n;
        if (ph == 'X')
            n = snprintf(buf, cap,
                         "{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,"
                         "\"tid\":%d%s%s},\n",
                         en, ec, ts, dur * 1e6, t->rank, lane, args_key, args);
        else
            n = snprintf(buf, cap,
                         "{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"i\",\"s\":\"t\",\"ts\":%.3f,\"pid\":%d,"
                         "\"tid\":%d%s%s},\n",
                         en, ec, ts, t->rank, lane, args_key, args);
        if (n < 0)
            break;
        if ((size_t)n < cap) {
            append(t, buf, (size_t)n);
            break;
        }
        /* Long args (a plan of many ranks): format once more into a buffer that fits. */
        cap = (size_t)n + 1;
        buf = malloc(cap);
        if (buf == NULL)
            return;
    }
    if (buf != stackbuf)
        free(buf);
}

void hcrt__trace_event(const hcrt_context_t *ctx, int lane, char ph, const char *name, const char *cat, double start,
                       double dur, const char *args_fmt, ...)
{
    if (!hcrt__trace_on(ctx))
        return;
    char stackbuf[2048], *args = NULL;
    if (args_fmt != NULL) {
        va_list ap;
        va_start(ap, args_fmt);
        int n = vsnprintf(stackbuf + 1, sizeof(stackbuf) - 2, args_fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        args = stackbuf;
        if ((size_t)n >= sizeof(stackbuf) - 2) {
            args = malloc((size_t)n + 3);
            if (args == NULL)
                return;
            va_start(ap, args_fmt);
            vsnprintf(args + 1, (size_t)n + 1, args_fmt, ap);
            va_end(ap);
        }
        args[0] = '{';
        args[n + 1] = '}';
        args[n + 2] = '\0';
    }
    hcrt__trace_event_json(ctx, lane, ph, name, cat, start, dur, args);
    if (args != NULL && args != stackbuf)
        free(args);
}

/* Metadata events: the rank's row title (rank, host, device) and the names of its lanes. */
static void write_metadata(const hcrt_context_t *ctx, const struct hcrt__trace *t)
{
    char host[300], dev[300], line[1024];
    const hcrt_device_t *d = ctx->selected;
    hcrt__trace_escape(ctx->hostname, host, sizeof(host));
    if (d != NULL)
        snprintf(line, sizeof(line), "%s:%d %s", d->be->name, d->index, d->bprops.name);
    else
        snprintf(line, sizeof(line), "no device");
    hcrt__trace_escape(line, dev, sizeof(dev));
    int n = snprintf(line, sizeof(line),
                     "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"rank %d "
                     "(%s, %s)\"}},\n{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,\"args\":"
                     "{\"sort_index\":%d}},\n",
                     t->rank, t->rank, host, dev, t->rank, t->rank);
    append(t, line, (size_t)n);
    for (int lane = 1; lane < HCRT__LANE_COUNT; lane++) {
        n = snprintf(line, sizeof(line),
                     "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":"
                     "{\"name\":\"%s\"}},\n",
                     t->rank, lane, lane_names[lane]);
        append(t, line, (size_t)n);
    }
}

hcrt_status_t hcrt__trace_init(hcrt_context_t *ctx)
{
    const char *mine = hcrt__config_str(ctx, "HCRT_TRACE");
    struct {
        int64_t len;
        double origin;
    } hdr = {(int64_t)strlen(mine), hcrt__trace_clock()};
    bool mpi = ctx->world != MPI_COMM_NULL;
    /* Rank 0's setting rules, so that every rank takes part in the merge at hcrt_finalize. */
    if (mpi && MPI_Bcast(&hdr, (int)sizeof(hdr), MPI_BYTE, 0, ctx->world) != MPI_SUCCESS)
        return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: broadcasting HCRT_TRACE failed");
    if (hdr.len > TRACE_PATH_MAX)
        return hcrt__error(NULL, HCRT_ERR_CONFIG,
                           "hcrt_init: HCRT_TRACE%s is %lld bytes long; at most %d are "
                           "accepted",
                           mpi ? " of rank 0" : "", (long long)hdr.len, TRACE_PATH_MAX);
    if (hdr.len == 0)
        return HCRT_OK;
    char *path = calloc(1, (size_t)hdr.len + 1);
    if (path == NULL)
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory");
    if (ctx->rank == 0)
        memcpy(path, mine, (size_t)hdr.len);
    if (mpi && MPI_Bcast(path, (int)hdr.len, MPI_CHAR, 0, ctx->world) != MPI_SUCCESS) {
        free(path);
        return hcrt__error(NULL, HCRT_ERR_MPI, "hcrt_init: broadcasting HCRT_TRACE failed");
    }
    if (ctx->rank != 0 && mine[0] != '\0' && strcmp(mine, path) != 0)
        HCRT_WARN(TRACE_SUBSYS, "HCRT_TRACE='%s' differs from rank 0's '%s'; rank 0's is used", mine, path);
    struct hcrt__trace *t = calloc(1, sizeof(*t));
    size_t plen = strlen(path) + 32;
    char *part = malloc(plen);
    if (t == NULL || part == NULL) {
        free(t);
        free(part);
        free(path);
        return hcrt__error(NULL, HCRT_ERR_NO_MEMORY, "hcrt_init: out of memory");
    }
    snprintf(part, plen, "%s.rank-%d", path, ctx->rank);
    t->fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        hcrt_status_t st = hcrt__error(NULL, HCRT_ERR_IO,
                                       "hcrt_init: HCRT_TRACE: cannot create the trace part "
                                       "'%s' of rank %d: %s",
                                       part, ctx->rank, strerror(errno));
        free(t);
        free(part);
        free(path);
        return st;
    }
    t->path = path;
    t->part = part;
    t->origin = hdr.origin;
    t->rank = ctx->rank;
    append(t, "[\n", 2);
    write_metadata(ctx, t);
    ctx->trace = t;
    HCRT_DEBUG(TRACE_SUBSYS, "tracing to %s", part);
    return HCRT_OK;
}

/* Reads this rank's part back and returns its events without the leading "[" and the last ",":
 * a list of events that joins the other ranks' with a comma. */
static char *read_part(const struct hcrt__trace *t, size_t *len)
{
    FILE *f = fopen(t->part, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    size_t start = 0;
    if (n >= 2 && buf[0] == '[' && buf[1] == '\n')
        start = 2;
    /* Drop the last separator and any torn line after it (a full disk): complete events only. */
    size_t end = n;
    while (end > start && buf[end - 1] != '\n')
        end--;
    while (end > start && (buf[end - 1] == '\n' || buf[end - 1] == ','))
        end--;
    memmove(buf, buf + start, end - start);
    buf[end - start] = '\0';
    *len = end - start;
    return buf;
}

/* Rank 0: writes the merged document through FILE.tmp and a rename. */
static bool write_merged(const struct hcrt__trace *t, const hcrt_context_t *ctx, const char *all, const long long *lens,
                         int nparts)
{
    size_t tlen = strlen(t->path) + 8;
    char *tmp = malloc(tlen);
    if (tmp == NULL)
        return false;
    snprintf(tmp, tlen, "%s.tmp", t->path);
    FILE *f = fopen(tmp, "wb");
    bool ok = f != NULL;
    if (ok) {
        fprintf(f,
                "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"hcrt_version\":\"%d.%d.%d\",\"world_size\":%d,"
                "\"clock\":\"CLOCK_REALTIME\",\"origin_unix_s\":%.6f},\n\"traceEvents\":[\n",
                HCRT_API_MAJOR, HCRT_API_MINOR, HCRT_API_PATCH, ctx->size, t->origin);
        bool first = true;
        for (int r = 0; r < nparts; r++) {
            if (lens[r] <= 0)
                continue;
            if (!first)
                fputs(",\n", f);
            fwrite(all, 1, (size_t)lens[r], f);
            all += lens[r];
            first = false;
        }
        fputs("\n]}\n", f);
        ok = fflush(f) == 0 && !ferror(f);
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, t->path) != 0)
            ok = false;
        if (!ok) {
            HCRT_ERROR(TRACE_SUBSYS, "cannot write the trace %s: %s", t->path, strerror(errno));
            unlink(tmp);
        }
    } else {
        HCRT_ERROR(TRACE_SUBSYS, "cannot create %s: %s", tmp, strerror(errno));
    }
    free(tmp);
    return ok;
}

void hcrt__trace_fini(hcrt_context_t *ctx)
{
    struct hcrt__trace *t = ctx->trace;
    if (t == NULL)
        return;
    ctx->trace = NULL;
    close(t->fd);
    size_t len = 0;
    char *mine = read_part(t, &len);
    if (mine == NULL)
        HCRT_ERROR(TRACE_SUBSYS, "cannot read back the trace part %s: %s", t->part, strerror(errno));
    /* MPI counts are ints: a part beyond 2 GiB stays on disk as FILE.rank-N instead. */
    long long my_len = mine != NULL && len < INT_MAX ? (long long)len : -1;
    int ok = 1;
    if (ctx->world == MPI_COMM_NULL) {
        ok = my_len >= 0 && write_merged(t, ctx, mine, &my_len, 1);
    } else {
        long long *lens = ctx->rank == 0 ? calloc((size_t)ctx->size, sizeof(long long)) : NULL;
        int *counts = ctx->rank == 0 ? calloc((size_t)ctx->size, sizeof(int)) : NULL;
        int *displs = ctx->rank == 0 ? calloc((size_t)ctx->size, sizeof(int)) : NULL;
        char *all = NULL;
        int can = ctx->rank != 0 || (lens && counts && displs);
        MPI_Allreduce(MPI_IN_PLACE, &can, 1, MPI_INT, MPI_LAND, ctx->world);
        if (can) {
            MPI_Gather(&my_len, 1, MPI_LONG_LONG, lens, 1, MPI_LONG_LONG, 0, ctx->world);
            long long total = 0;
            if (ctx->rank == 0) {
                for (int r = 0; r < ctx->size; r++) {
                    if (lens[r] < 0 || total + lens[r] > INT_MAX) {
                        HCRT_ERROR(TRACE_SUBSYS,
                                   "the trace part of rank %d is missing or too large to merge; "
                                   "it stays in %s.rank-%d",
                                   r, t->path, r);
                        lens[r] = 0;
                    }
                    counts[r] = (int)lens[r];
                    displs[r] = (int)total;
                    total += lens[r];
                }
                all = malloc((size_t)total + 1);
                if (all == NULL)
                    memset(counts, 0, (size_t)ctx->size * sizeof(int));
            }
            /* A rank whose part rank 0 refused sends nothing; its part stays on disk. */
            int send = my_len > 0 ? (int)my_len : 0;
            MPI_Scatter(counts, 1, MPI_INT, &send, 1, MPI_INT, 0, ctx->world);
            MPI_Gatherv(mine, send, MPI_CHAR, all, counts, displs, MPI_CHAR, 0, ctx->world);
            if (ctx->rank == 0) {
                for (int r = 0; r < ctx->size; r++)
                    lens[r] = counts[r];
                ok = all != NULL && write_merged(t, ctx, all, lens, ctx->size);
            }
            MPI_Bcast(&ok, 1, MPI_INT, 0, ctx->world);
            /* Parts that made it into FILE are removed; the others stay for a later merge. */
            if (ok && send == (int)my_len)
                unlink(t->part);
            else if (!ok)
                my_len = -1;
        } else {
            HCRT_ERROR(TRACE_SUBSYS, "out of memory merging the trace; the parts stay in %s.rank-N", t->path);
            ok = 0;
        }
        free(all);
        free(lens);
        free(counts);
        free(displs);
    }
    if (ctx->world == MPI_COMM_NULL && ok)
        unlink(t->part);
    if (ctx->rank == 0 && ok)
        HCRT_INFO(TRACE_SUBSYS, "trace written to %s", t->path);
    free(mine);
    free(t->path);
    free(t->part);
    free(t);
}
