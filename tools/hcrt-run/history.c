/*
 * tools/hcrt-run/history.c - what the ranks of one attempt wrote (format in hcrt/run.h): heartbeat files
 * rank-R.hb and failure records fail-R. A file still being written ends in a partial line, which is
 * skipped; anything malformed is skipped too (the report says less, it never fails on it).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hcrt-run/hcrt_run.h"

/* Parses "hcrt-heartbeat 1 rank=R size=N pid=P node=NODE attempt=A". */
static bool parse_header(const char *line, hr_rank_t *r)
{
    long long pid = 0;
    int version = 0, n = 0;
    if (sscanf(line, "hcrt-heartbeat %d rank=%d size=%d pid=%lld node=%255s%n", &version, &r->rank, &r->size, &pid,
               r->node, &n) != 5 ||
        version != 1)
        return false;
    r->pid = (long)pid;
    return true;
}

static bool push_event(hr_rank_t *r, hr_event_t e)
{
    if (r->nev == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        hr_event_t *grown = realloc(r->ev, cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        r->ev = grown;
        r->cap = cap;
    }
    r->ev[r->nev++] = e;
    return true;
}

/* Reads one heartbeat file; with events false only its header. Returns false when it has no header. */
static bool read_heartbeats(const char *path, hr_rank_t *r, bool events)
{
    FILE *f = fopen(path, "r");
    char line[512];
    memset(r, 0, sizeof(*r));
    if (f == NULL)
        return false;
    if (fgets(line, sizeof(line), f) == NULL || strchr(line, '\n') == NULL || !parse_header(line, r)) {
        fclose(f);
        return false;
    }
    while (events && fgets(line, sizeof(line), f) != NULL) {
        char kind;
        long long step;
        double t;
        if (strchr(line, '\n') == NULL)
            break; /* the line being written */
        if (sscanf(line, "%c %lld %lf", &kind, &step, &t) != 3 || strchr("SRVC", kind) == NULL || step < 0)
            continue;
        if (!push_event(r, (hr_event_t){kind, step, t}))
            break;
    }
    fclose(f);
    return true;
}

/* Reads fail-R into a when it is earlier than the record a holds. */
static void read_record(const char *path, hr_attempt_t *a)
{
    FILE *f = fopen(path, "r");
    char line[1200];
    double t = 0;
    int rank = -1, status = -1;
    char node[256] = "", lost[256] = "", what[1024] = "";
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "time=", 5) == 0)
            t = atof(line + 5);
        else if (strncmp(line, "rank=", 5) == 0)
            rank = atoi(line + 5);
        else if (strncmp(line, "status=", 7) == 0)
            status = atoi(line + 7);
        else if (strncmp(line, "node=", 5) == 0)
            snprintf(node, sizeof(node), "%.*s", (int)sizeof(node) - 1, line + 5);
        else if (strncmp(line, "lost_node=", 10) == 0)
            snprintf(lost, sizeof(lost), "%.*s", (int)sizeof(lost) - 1, line + 10);
        else if (strncmp(line, "what=", 5) == 0)
            snprintf(what, sizeof(what), "%.*s", (int)sizeof(what) - 1, line + 5);
    }
    fclose(f);
    if (t <= 0 || status < 0 || (a->has_record && a->record_t <= t))
        return;
    a->has_record = true;
    a->record_t = t;
    a->record_rank = rank;
    a->record_status = status;
    snprintf(a->record_node, sizeof(a->record_node), "%s", node);
    snprintf(a->record_lost_node, sizeof(a->record_lost_node), "%s", lost);
    snprintf(a->record_what, sizeof(a->record_what), "%s", what);
}

/* Reads every heartbeat file of dir (with events: their events too) and, with records, the failure
 * records. */
static int scan(const char *dir, bool events, hr_rank_t **ranks, int *n, hr_attempt_t *records)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int cap = 0;
    *ranks = NULL;
    *n = 0;
    if (d == NULL)
        return 0; /* no rank got as far as writing */
    while ((de = readdir(d)) != NULL) {
        char path[4096 + 300];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (records != NULL && strncmp(de->d_name, "fail-", 5) == 0) {
            read_record(path, records);
            continue;
        }
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "rank-", 5) != 0 || len < 4 || strcmp(de->d_name + len - 3, ".hb") != 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            hr_rank_t *grown = realloc(*ranks, (size_t)cap * sizeof(*grown));
            if (grown == NULL) {
                closedir(d);
                return -1;
            }
            *ranks = grown;
        }
        if (read_heartbeats(path, &(*ranks)[*n], events))
            (*n)++;
    }
    closedir(d);
    return 0;
}

int hr_history_headers(const char *attempt_dir, hr_rank_t **ranks, int *n)
{
    return scan(attempt_dir, false, ranks, n, NULL);
}

int hr_history_read(const char *attempt_dir, hr_attempt_t *a)
{
    return scan(attempt_dir, true, &a->ranks, &a->nranks, a);
}

void hr_ranks_free(hr_rank_t *ranks, int n)
{
    for (int i = 0; i < n; i++)
        free(ranks[i].ev);
    free(ranks);
}

void hr_history_free(hr_attempt_t *a)
{
    hr_ranks_free(a->ranks, a->nranks);
    a->ranks = NULL;
    a->nranks = 0;
}
