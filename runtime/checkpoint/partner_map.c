/*
 * runtime/checkpoint/partner_map.c - which rank keeps the in-memory copy of which rank's snapshot.
 *
 * The ranks are ordered host by host (by host name, then rank), and each rank's partner is the rank as
 * many places further along that order as the largest host has ranks: with alike hosts, the rank of the
 * same local index on the next host, so every rank keeps exactly one copy. When that place is on the
 * rank's own host (uneven hosts), the partner moves on to the next rank of another host. When every
 * rank is on one host the partner is simply the next rank: the copy then guards against a lost process
 * or node-local directory, not a lost machine, and the manifest says so ("same-host").
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint/format.h"

typedef struct ranked {
    const char *host;
    int rank;
} ranked_t;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    return c ? c : (x->rank > y->rank) - (x->rank < y->rank);
}

const char *hcrt__ckpt_partner_map(int n, const char *hosts, size_t stride, int *partner_of)
{
    for (int r = 0; r < n; r++)
        partner_of[r] = -1;
    if (n < 2)
        return "none";
    ranked_t *order = malloc((size_t)n * sizeof(*order));
    int *group = malloc((size_t)n * sizeof(int)); /* host group of each position in order */
    if (order == NULL || group == NULL) {
        free(order);
        free(group);
        return NULL;
    }
    for (int r = 0; r < n; r++)
        order[r] = (ranked_t){hosts + (size_t)r * stride, r};
    qsort(order, (size_t)n, sizeof(*order), cmp_ranked);
    int ngroups = 0, shift = 0, run = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(order[i].host, order[i - 1].host) != 0) {
            ngroups++;
            run = 0;
        }
        group[i] = ngroups;
        if (++run > shift)
            shift = run;
    }
    ngroups++;
    const char *mode;
    if (ngroups == 1) {
        for (int r = 0; r < n; r++)
            partner_of[r] = (r + 1) % n;
        mode = "same-host";
    } else {
        for (int pos = 0; pos < n; pos++) {
            int p = (pos + shift) % n;
            while (group[p] == group[pos])
                p = (p + 1) % n;
            partner_of[order[pos].rank] = order[p].rank;
        }
        mode = "other-host";
    }
    free(order);
    free(group);
    return mode;
}
