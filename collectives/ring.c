/*
 * collectives/ring.c - ring reduce-scatter, allgather and allreduce (= the two in sequence).
 *
 * The buffer is cut into n blocks. In reduce-scatter step s (0 .. n-2) rank r sends block r-s-1 to its
 * right neighbour and receives block r-s-2 from its left one, combining it as op(received, own): block b
 * is therefore accumulated in the fixed order b+1, b+2, ..., b and completes on rank b. The allgather
 * then circulates the finished blocks, so every rank ends with the same bits. Each step moves 1/n of the
 * buffer, which makes the ring bandwidth-optimal for large messages.
 */
#include "collectives/coll.h"

typedef struct blocks {
    size_t base, rem, es;
    bool equal; /* all blocks `base` elements (reduce_scatter) */
} blocks_t;

static size_t blk_off(const blocks_t *b, int i)
{
    size_t ii = (size_t)i;
    return (ii * b->base + (b->equal ? 0 : (ii < b->rem ? ii : b->rem))) * b->es;
}
static size_t blk_len(const blocks_t *b, int i)
{
    return b->base + (!b->equal && (size_t)i < b->rem ? 1 : 0);
}

static hcrt_status_t reduce_scatter(hcrt__sched_t *s, const hcrt__group_t *g, unsigned char *buf, const blocks_t *b, void *tmp)
{
        int n = g->size, r = g->rank, right = (r + 1) % n, left = (r + n - 1) % n;
    for (int st = 0; st < n - 1; st++) {
        int sb = ((r - st - 1) % n + n) % n, rb = ((r - st - 2) % n + n) % n;
        HCRT_CHECK(hcrt__sched_send(s, g->mpi, right, buf + blk_off(b, sb), blk_len(b, sb) * b->es));
        HCRT_CHECK(hcrt__sched_recv(s, g->mpi, left, tmp, blk_len(b, rb) * b->es));
        HCRT_CHECK(hcrt__sched_round(s));
        /* Runs at the start of the next round, before its sends. */
        HCRT_CHECK(hcrt__sched_reduce3(s, buf + blk_off(b, rb), tmp, buf + blk_off(b, rb), blk_len(b, rb)));
    }
    return HCRT_OK;
}

static hcrt_status_t allgather(hcrt__sched_t *s, const hcrt__group_t *g, unsigned char *buf, const blocks_t *b)
{
        int n = g->size, r = g->rank, right = (r + 1) % n, left = (r + n - 1) % n;
    for (int st = 0; st < n - 1; st++) {
        int sb = ((r - st) % n + n) % n, rb = ((r - st - 1) % n + n) % n;
        HCRT_CHECK(hcrt__sched_send(s, g->mpi, right, buf + blk_off(b, sb), blk_len(b, sb) * b->es));
        HCRT_CHECK(hcrt__sched_recv(s, g->mpi, left, buf + blk_off(b, rb), blk_len(b, rb) * b->es));
        HCRT_CHECK(hcrt__sched_round(s));
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__ring_allreduce(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t count, void *tmp)
{
    int n = g->size;
    if (n == 1 || count == 0)
        return HCRT_OK;
    blocks_t b = {.base = count / (size_t)n, .rem = count % (size_t)n, .es = hcrt_dtype_size(s->dtype)};
    HCRT_CHECK(reduce_scatter(s, g, buf, &b, tmp));
    HCRT_CHECK(allgather(s, g, buf, &b));
    return hcrt__sched_round(s);
}

hcrt_status_t hcrt__ring_reduce_scatter(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t blockcount, void *tmp)
{
    if (g->size == 1 || blockcount == 0)
        return HCRT_OK;
    blocks_t b = {.base = blockcount, .es = hcrt_dtype_size(s->dtype), .equal = true};
    HCRT_CHECK(reduce_scatter(s, g, buf, &b, tmp));
    return hcrt__sched_round(s);
}

hcrt_status_t hcrt__ring_allgather(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t blockbytes)
{
    if (g->size == 1 || blockbytes == 0)
        return HCRT_OK;
    blocks_t b = {.base = blockbytes, .es = 1, .equal = true};
    HCRT_CHECK(allgather(s, g, buf, &b));
    return hcrt__sched_round(s);
}
