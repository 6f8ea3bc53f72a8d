/*
 * runtime/log.c - the logger: level-checked before formatting, filtered by subsystem, every line tagged
 * [host:pid:rank] so the lines of a many-rank job can be told apart.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"

int hcrt__log_threshold = HCRT_LOG_WARN;

static char log_host[64];
static int log_rank = -1;
static char log_subsys[256]; /* "" = all; "a,b" = only those; "^a,b" = all but those */

static const char *const level_names[] = {"NONE", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};

void hcrt__log_set_rank(int rank) { log_rank = rank; }

void hcrt__log_configure(const char *level, const char *subsys)
{
    if (level) {
        for (int i = 0; i <= HCRT_LOG_TRACE; i++)
            if (strcasecmp(level, level_names[i]) == 0)
                hcrt__log_threshold = i;
    }
    snprintf(log_subsys, sizeof(log_subsys), "%s", subsys ? subsys : "");
}

/* Whether `name` is an element of the comma-separated `list`. */
static bool list_contains(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

bool hcrt__log_enabled(int level, const char *subsys)
{
    if (level > hcrt__log_threshold || level <= HCRT_LOG_NONE)
        return false;
    /* Errors always pass the subsystem filter: they are what the user must see. */
    if (log_subsys[0] == '\0' || level == HCRT_LOG_ERROR || subsys == NULL)
        return true;
    if (log_subsys[0] == '^')
        return !list_contains(log_subsys + 1, subsys);
    return list_contains(log_subsys, subsys);
}

void hcrt__log_vemit(int level, const char *subsys, const char *fmt, va_list ap)
{
    if (log_host[0] == '\0') {
        gethostname(log_host, sizeof(log_host) - 1);
        char *dot = strchr(log_host, '.');
        if (dot)
            *dot = '\0';
    }
    char rank[16];
    if (log_rank >= 0)
        snprintf(rank, sizeof(rank), "%d", log_rank);
    else
        snprintf(rank, sizeof(rank), "-");
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* One fprintf per line keeps concurrent lines from interleaving (stdio locks the stream). */
    fprintf(stderr, "[%s:%d:%s] hcrt %s %s: %s\n", log_host, (int)getpid(), rank,
            level_names[level < 0 || level > HCRT_LOG_TRACE ? 0 : level], subsys ? subsys : "-", msg);
}

void hcrt__log_emit(int level, const char *subsys, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hcrt__log_vemit(level, subsys, fmt, ap);
    va_end(ap);
}

void hcrt_log(hcrt_log_level_t level, const char *subsys, const char *fmt, ...)
{
    if (fmt == NULL || (int)level > hcrt__log_threshold || !hcrt__log_enabled(level, subsys))
        return;
    va_list ap;
    va_start(ap, fmt);
    hcrt__log_vemit(level, subsys ? subsys : "app", fmt, ap);
    va_end(ap);
}

double hcrt__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
