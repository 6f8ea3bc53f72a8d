/*
 * collectives/rd.c - recursive doubling allreduce, for small messages on any number of ranks.
 *
 * With p the largest power of two <= n and extra = n - p, the first 2*extra ranks pair up (0,1), (2,3),
 * ...: the even one hands its data to the odd one and sits out; the p remaining ranks exchange whole
 * buffers with partners at distance 1, 2, 4, ... (log2 p rounds); finally the odd ranks hand the result
 * back. Every combination puts the lower rank's value on the left, so both partners compute the same
 * bits and the result is identical on every rank.
 */
#include "collectives/coll.h"

static int real_rank(int newrank, int extra) { return newrank < extra ? 2 * newrank + 1 : newrank + extra; }

hcrt_status_t hcrt__rd_allreduce(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t count, void *tmp)
{
        int n = g->size, r = g->rank;
    size_t bytes = count * hcrt_dtype_size(s->dtype);
    if (n == 1 || count == 0)
        return HCRT_OK;
    int p = 1;
    while (p * 2 <= n)
        p *= 2;
    int extra = n - p, newrank;
    if (r < 2 * extra) {
        if (r % 2 == 0) {
            HCRT_CHECK(hcrt__sched_send(s, g->mpi, r + 1, buf, bytes));
            HCRT_CHECK(hcrt__sched_round(s));
            newrank = -1;
        } else {
            HCRT_CHECK(hcrt__sched_recv(s, g->mpi, r - 1, tmp, bytes));
            HCRT_CHECK(hcrt__sched_round(s));
            HCRT_CHECK(hcrt__sched_reduce3(s, buf, tmp, buf, count));
            newrank = r / 2;
        }
    } else {
        newrank = r - extra;
    }
    if (newrank >= 0) {
        for (int mask = 1; mask < p; mask <<= 1) {
            int pn = newrank ^ mask, peer = real_rank(pn, extra);
            HCRT_CHECK(hcrt__sched_send(s, g->mpi, peer, buf, bytes));
            HCRT_CHECK(hcrt__sched_recv(s, g->mpi, peer, tmp, bytes));
            HCRT_CHECK(hcrt__sched_round(s));
            if (pn < newrank)
                HCRT_CHECK(hcrt__sched_reduce3(s, buf, tmp, buf, count));
            else
                HCRT_CHECK(hcrt__sched_reduce3(s, buf, buf, tmp, count));
        }
    }
    if (r < 2 * extra) {
        if (r % 2 == 0)
            HCRT_CHECK(hcrt__sched_recv(s, g->mpi, r + 1, buf, bytes));
        else
            HCRT_CHECK(hcrt__sched_send(s, g->mpi, r - 1, buf, bytes));
    }
    return hcrt__sched_round(s);
}
