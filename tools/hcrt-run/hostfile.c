/*
 * tools/hcrt-run/hostfile.c - the hosts an attempt may use: an Open MPI hostfile, and the copy each
 * attempt gets without lost hosts; inside a Slurm allocation the same list holds the allocation's nodes
 * (slurm.c fills it) and the placement picks the nodes of each srun.
 *
 * Lines are "HOST [slots=N] [max_slots=M] ..." with # comments (Open MPI's syntax); every line is kept as
 * written, so options hcrt-run does not know travel untouched to the copy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hcrt-run/hcrt_run.h"

int hr_hostfile_read(const char *path, hr_hostfile_t *hf)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int lineno = 0;
    hf->hosts = NULL;
    hf->n = 0;
    if (f == NULL) {
        fprintf(stderr, "hcrt-run: --hostfile %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char body[1024], *save = NULL;
        snprintf(body, sizeof(body), "%s", line);
        body[strcspn(body, "#")] = '\0';
        char *host = strtok_r(body, " \t", &save);
        if (host == NULL)
            continue;
        hr_host_t *grown = realloc(hf->hosts, (size_t)(hf->n + 1) * sizeof(*grown));
        if (grown == NULL) {
            fclose(f);
            fprintf(stderr, "hcrt-run: out of memory reading %s\n", path);
            return -1;
        }
        hf->hosts = grown;
        hr_host_t *h = &hf->hosts[hf->n++];
        memset(h, 0, sizeof(*h));
        snprintf(h->name, sizeof(h->name), "%s", host);
        snprintf(h->line, sizeof(h->line), "%s", line);
        h->slots = -1;
        for (char *tok = strtok_r(NULL, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
            if (strncmp(tok, "slots=", 6) == 0) {
                char *end;
                long v = strtol(tok + 6, &end, 10);
                if (*end != '\0' || v < 0 || v > 1000000) {
                    fclose(f);
                    fprintf(stderr, "hcrt-run: --hostfile %s line %d: bad '%s'\n", path, lineno, tok);
                    return -1;
                }
                h->slots = (int)v;
            }
        }
    }
    fclose(f);
    if (hf->n == 0) {
        fprintf(stderr, "hcrt-run: --hostfile %s lists no host\n", path);
        return -1;
    }
    return 0;
}

/* Whether hostfile name `name` is the host of `node` (HOST or HOST~K). */
static bool same_host(const char *name, const char *node)
{
    size_t n = strcspn(node, "~");
    return strlen(name) == n && strncmp(name, node, n) == 0;
}

bool hr_hostfile_drop(hr_hostfile_t *hf, const char *node)
{
    bool any = false;
    for (int i = 0; i < hf->n; i++)
        if (same_host(hf->hosts[i].name, node)) {
            hf->hosts[i].dropped = true;
            any = true;
        }
    return any;
}

int hr_hostfile_capacity(const hr_hostfile_t *hf)
{
    int total = 0;
    for (int i = 0; i < hf->n; i++) {
        if (hf->hosts[i].dropped)
            continue;
        if (hf->hosts[i].slots < 0)
            return -1;
        total += hf->hosts[i].slots;
    }
    return total;
}

int hr_hostfile_slots(const hr_hostfile_t *hf, const char *node)
{
    int total = 0;
    for (int i = 0; i < hf->n; i++)
        if (same_host(hf->hosts[i].name, node)) {
            if (hf->hosts[i].slots < 0)
                return -1;
            total += hf->hosts[i].slots;
        }
    return total;
}

int hr_hostfile_write(const hr_hostfile_t *hf, const char *path)
{
    int left = 0;
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "hcrt-run: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "# written by hcrt-run for one attempt: the --hostfile without the hosts lost so far\n");
    for (int i = 0; i < hf->n; i++) {
        if (hf->hosts[i].dropped)
            continue;
        fprintf(f, "%s\n", hf->hosts[i].line);
        left++;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "hcrt-run: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return left > 0 ? 0 : -2;
}

int hr_hostfile_add(hr_hostfile_t *hf, const char *name, int slots)
{
    hr_host_t *grown = realloc(hf->hosts, (size_t)(hf->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    hf->hosts = grown;
    hr_host_t *h = &hf->hosts[hf->n++];
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    if (slots >= 0)
        snprintf(h->line, sizeof(h->line), "%s slots=%d", name, slots);
    else
        snprintf(h->line, sizeof(h->line), "%s", name);
    h->slots = slots;
    return 0;
}

int hr_hostfile_place(const hr_hostfile_t *hf, int np, char *list, size_t cap, int *counts, int *per_host)
{
    int left = np, used = 0, first = -1;
    bool equal = true;
    size_t len = 0;
    list[0] = '\0';
    for (int i = 0; i < hf->n && left > 0; i++) {
        const hr_host_t *h = &hf->hosts[i];
        if (h->dropped || h->slots == 0)
            continue;
        if (h->slots < 0)
            return -1;
        int take = h->slots < left ? h->slots : left;
        if (first < 0)
            first = take;
        equal = equal && take == first;
        int w = snprintf(list + len, cap - len, "%s%s", used ? "," : "", h->name);
        if (w < 0 || (size_t)w >= cap - len)
            return -1;
        len += (size_t)w;
        left -= take;
        if (counts != NULL)
            counts[used] = take;
        used++;
    }
    if (left > 0)
        return -1;
    *per_host = equal ? first : 0;
    return used;
}

void hr_hostfile_free(hr_hostfile_t *hf)
{
    free(hf->hosts);
    hf->hosts = NULL;
    hf->n = 0;
}
