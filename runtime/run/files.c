/*
 * runtime/run/files.c - where a rank writes what it tells hcrt-run (hcrt/run.h): HCRT_RUN_DIR/attempt-A.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/run/run_internal.h"

static hcrt_status_t make_dir(const hcrt_context_t *ctx, const char *path)
{
    if (mkdir(path, 0777) == 0 || errno == EEXIST)
        return HCRT_OK;
    return hcrt__error(ctx, HCRT_ERR_IO, "cannot create the hcrt-run directory %s: %s", path, strerror(errno));
}

hcrt_status_t hcrt__run_attempt_dir(const hcrt_context_t *ctx, char *buf, size_t cap)
{
    const char *dir = hcrt__config_str(ctx, "HCRT_RUN_DIR");
    if (dir[0] == '\0')
        return HCRT_ERR_NOT_FOUND;
    int n = snprintf(buf, cap, "%s/attempt-%lld", dir, (long long)hcrt__config_int(ctx, "HCRT_RUN_ATTEMPT"));
    if (n < 0 || (size_t)n >= cap)
        return hcrt__error(ctx, HCRT_ERR_IO, "HCRT_RUN_DIR is too long (%zu bytes)", strlen(dir));
    /* hcrt-run creates both; a job started by hand with HCRT_RUN_DIR set gets them here. */
    HCRT_CHECK(make_dir(ctx, dir));
    return make_dir(ctx, buf);
}

void hcrt__run_node_name(const hcrt_context_t *ctx, char *buf, size_t cap)
{
    int fake = (int)hcrt__config_int(ctx, "HCRT_FAKE_NODES");
    if (fake > 1 && ctx->local_size > 0)
        snprintf(buf, cap, "%s~%d", ctx->hostname, (int)((int64_t)ctx->local_rank * fake / ctx->local_size));
    else
        snprintf(buf, cap, "%s", ctx->hostname);
}

double hcrt__run_wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
