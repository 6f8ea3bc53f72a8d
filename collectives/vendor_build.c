/*
 * collectives/vendor_build.c - the schedules of the vendor-group path (collectives/vendor.h).
 *
 * One group holding every rank calls its vendor library once (device buffers), or per segment through
 * device scratch (host buffers). Several groups:
 *  - allreduce, per segment: a vendor reduce-scatter in each group leaves rank i of a group of m the
 *    group's partial result over slice i; each rank then swaps slices with the ranks of the other groups
 *    whose slices overlap its own (MPI, from pinned host memory), folds the groups' partials of its slice
 *    in group order (hcrt's host kernels), and a vendor allgather in the group spreads the slices. A rank
 *    outside any vendor group is a group of its own whose "partial" is its input over the whole segment.
 *    Segment k+1's reduce-scatter runs on the device while segment k is exchanged and folded.
 *  - reduce_scatter: the same reduce-scatter, then each rank receives, for its output block, the pieces
 *    of every group's partial and folds them in group order.
 *  - allgather: the members of a group share the fetching of the other groups' blocks (member i fetches
 *    every m-th one), then one vendor allgather in the group hands everybody everything.
 *  - broadcast: a vendor broadcast in the root's group, a binomial tree over one representative of each
 *    group, and a vendor broadcast from the representative in every other group.
 * Every element of a reduction is thus (group 0's partial) op (group 1's) op ..., each group's partial
 * as its vendor library computes it: the same bits on every rank and in every run (the libraries are
 * deterministic), but not the all-host path's rank-order bits when groups hold several ranks.
 *
 * Buffers: a vendor rank's device buffers are used as they are (the vendor library reads and writes
 * them); its host buffers are staged through device scratch. Any other rank works on host memory (the
 * caller, vendor.c, copies other device buffers to and from the host around the call).
 */
#include <stdlib.h>
#include <string.h>

#include "collectives/vendor.h"

/* Events of the stage: two for the segments in flight, one for the end, one nobody waits for. */
#define EV_SEG(k) ((int)((k) % 2))
#define EV_END    2
#define EV_NONE   3

typedef struct vb {
    struct hcrt_comm *c;
    hcrt__vendor_t *v;
    hcrt__sched_t *s;
    const hcrt__args_t *a;
    size_t es;
    bool vendor; /* this rank's group uses the vendor library */
    bool dev;    /* ... and the call's buffers are on its vendor device (else host memory) */
    hcrt__block_t **blocks;
    int *nblocks;
    unsigned char *dscr; /* device scratch of this call, carved by dalloc() */
    size_t dscr_used, dscr_size;
} vb_t;

typedef struct rng {
    size_t lo, hi;
} rng_t;

static size_t min_z(size_t a, size_t b)
{
    return a < b ? a : b;
}
static size_t max_z(size_t a, size_t b)
{
    return a > b ? a : b;
}
static rng_t isect(rng_t a, rng_t b)
{
    rng_t r = {max_z(a.lo, b.lo), min_z(a.hi, b.hi)};
    if (r.hi < r.lo)
        r.hi = r.lo;
    return r;
}
static size_t len(rng_t r)
{
    return r.hi - r.lo;
}

static const hcrt__vgroup_t *group(const hcrt__vendor_t *v, int h)
{
    return &v->groups[h];
}
static int member(const hcrt__vendor_t *v, int h, int i)
{
    return v->members[v->groups[h].first + i];
}

/* Slice i of n elements split over m ranks (the vendor reduce-scatter's, with padding at the end). */
static rng_t slice_of(size_t n, int m, int i)
{
    size_t s = (n + (size_t)m - 1) / (size_t)m;
    rng_t r = {min_z((size_t)i * s, n), min_z((size_t)i * s + s, n)};
    return r;
}

/* The range of a segment of n elements over which rank q holds its group's partial result. */
static rng_t partial_of(const hcrt__vendor_t *v, size_t n, int q)
{
    const hcrt__vgroup_t *gr = group(v, v->group_of[q]);
    if (!gr->vendor) {
        rng_t all = {0, n};
        return all;
    }
    return slice_of(n, gr->size, v->index_of[q]);
}

static hcrt_status_t host_block(vb_t *b, size_t bytes, unsigned char **p)
{
    hcrt__block_t *blk = NULL;
    if (*b->nblocks == HCRT__VENDOR_BLOCKS)
        return hcrt__error(b->c->ctx, HCRT_ERR_INTERNAL, "collectives: too many scratch blocks (vendor path)");
    /* Pinned memory of the vendor device where there is one: its copies run at full speed. */
    HCRT_CHECK(hcrt__pool_get(b->c, b->vendor ? b->v->dev : NULL, bytes ? bytes : 1, &blk));
    b->blocks[(*b->nblocks)++] = blk;
    *p = blk->ptr;
    return HCRT_OK;
}

/* Carves device scratch (aligned to 256 bytes) out of the call's region, reserved by dreserve(). */
static unsigned char *dalloc(vb_t *b, size_t bytes)
{
    unsigned char *p = b->dscr + b->dscr_used;
    b->dscr_used += (bytes + 255) & ~(size_t)255;
    return p;
}

static hcrt_status_t dreserve(vb_t *b, size_t bytes)
{
    void *p = NULL;
    HCRT_CHECK(hcrt__vendor_scratch(b->c, bytes + 8 * 256, &p));
    b->dscr = p;
    b->dscr_size = bytes;
    return HCRT_OK;
}

static hcrt_status_t vcoll(vb_t *b, int kind, const void *send, void *recv, size_t count, int root)
{
    if (count == 0)
        return HCRT_OK;
    hcrt__step_t st = {
        .kind = HCRT__STEP_VCOLL, .value = (uint64_t)kind, .src = send, .dst = recv, .bytes = count, .peer = root};
    return hcrt__sched_add(b->s, &st);
}

/* Device copies that no one waits for individually (the stream's order and later events cover them). */
static hcrt_status_t d2h(vb_t *b, void *host, const void *dev, size_t bytes)
{
    return bytes ? hcrt__sched_d2h(b->s, host, dev, bytes, EV_NONE) : HCRT_OK;
}
static hcrt_status_t h2d(vb_t *b, void *dev, const void *host, size_t bytes)
{
    return bytes ? hcrt__sched_h2d(b->s, dev, host, bytes, EV_NONE) : HCRT_OK;
}

/* Ends the call: waits for everything queued on the stream (vendor operations included). */
static hcrt_status_t finish(vb_t *b)
{
    if (b->s->stage == NULL)
        return HCRT_OK;
    HCRT_CHECK(hcrt__sched_round(b->s));
    HCRT_CHECK(hcrt__sched_record(b->s, EV_END));
    HCRT_CHECK(hcrt__sched_event_peers(b->s, EV_END));
    return hcrt__sched_round(b->s);
}

/* Segment length in elements: about `bytes`, a multiple of every vendor group's size. */
static size_t seg_elems(const vb_t *b, size_t bytes)
{
    size_t unit = b->v->seg_elems_unit, n = bytes / b->es / unit * unit;
    return n ? n : unit;
}

/* ---- one group holding every rank ------------------------------------------------------------------ */

static hcrt_status_t build_whole_group(vb_t *b)
{
    const hcrt__args_t *a = b->a;
    struct hcrt_comm *c = b->c;
    const size_t es = b->es, n = (size_t)c->size;
    const double scale = 1.0 / (double)c->size;
    bool avg = a->op == HCRT_OP_AVG && (a->coll == HCRT__COLL_ALLREDUCE || a->coll == HCRT__COLL_REDUCE_SCATTER);
    if (b->dev) {
        switch (a->coll) {
        case HCRT__COLL_ALLREDUCE:
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_ALLREDUCE, a->send, a->recv, a->count, 0));
            break;
        case HCRT__COLL_REDUCE_SCATTER:
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_REDUCE_SCATTER, a->send, a->recv, a->count, 0));
            break;
        case HCRT__COLL_ALLGATHER:
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_ALLGATHER, a->send, a->recv, a->count, 0));
            break;
        default:
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_BROADCAST, a->recv, a->recv, a->count, a->root));
            break;
        }
        if (avg)
            HCRT_CHECK(hcrt__sched_dscale(b->s, a->recv, a->count, scale));
        return finish(b);
    }
    /* Host buffers: segment by segment through device scratch, all in the stream's order. */
    size_t per = seg_elems(b, 4 * c->chunk);
    if (a->coll == HCRT__COLL_REDUCE_SCATTER || a->coll == HCRT__COLL_ALLGATHER)
        per = max_z(per / n, 1);
    size_t npieces = a->coll == HCRT__COLL_ALLREDUCE || a->coll == HCRT__COLL_BROADCAST ? 1 : n;
    HCRT_CHECK(dreserve(b, 2 * npieces * per * es + 512));
    unsigned char *d0 = dalloc(b, npieces * per * es), *d1 = dalloc(b, npieces * per * es);
    const unsigned char *send = a->send;
    unsigned char *recv = a->recv;
    for (size_t off = 0; off < a->count; off += per) {
        size_t m = min_z(per, a->count - off), bytes = m * es;
        switch (a->coll) {
        case HCRT__COLL_ALLREDUCE:
            HCRT_CHECK(h2d(b, d0, send + off * es, bytes));
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_ALLREDUCE, d0, d0, m, 0));
            if (avg)
                HCRT_CHECK(hcrt__sched_dscale(b->s, d0, m, scale));
            HCRT_CHECK(d2h(b, recv + off * es, d0, bytes));
            break;
        case HCRT__COLL_REDUCE_SCATTER:
            for (size_t q = 0; q < n; q++)
                HCRT_CHECK(h2d(b, d0 + q * bytes, send + (q * a->count + off) * es, bytes));
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_REDUCE_SCATTER, d0, d1, m, 0));
            if (avg)
                HCRT_CHECK(hcrt__sched_dscale(b->s, d1, m, scale));
            HCRT_CHECK(d2h(b, recv + off * es, d1, bytes));
            break;
        case HCRT__COLL_ALLGATHER:
            HCRT_CHECK(h2d(b, d0, send + off * es, bytes));
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_ALLGATHER, d0, d1, m, 0));
            for (size_t q = 0; q < n; q++)
                HCRT_CHECK(d2h(b, recv + (q * a->count + off) * es, d1 + q * bytes, bytes));
            break;
        default:
            if (c->rank == a->root)
                HCRT_CHECK(h2d(b, d0, recv + off * es, bytes));
            HCRT_CHECK(vcoll(b, HCRT__VCOLL_BROADCAST, d0, d0, m, b->v->index_of[a->root]));
            if (c->rank != a->root)
                HCRT_CHECK(d2h(b, recv + off * es, d0, bytes));
            break;
        }
    }
    return finish(b);
}

/* ---- reductions over several groups ---------------------------------------------------------------- */

/* Rank q's output range within segment [off, off + n): its slice (allreduce) or its block (reduce_scatter). */
static rng_t target_of(const vb_t *b, size_t off, size_t n, int q)
{
    if (b->a->coll == HCRT__COLL_ALLREDUCE)
        return partial_of(b->v, n, q);
    size_t rc = b->a->count, lo = max_z((size_t)q * rc, off), hi = min_z((size_t)(q + 1) * rc, off + n);
    rng_t r = {lo - off, (hi > lo ? hi : lo) - off};
    return r;
}

/* Per-segment buffers of a reduction. */
typedef struct red {
    size_t per;              /* segment elements */
    size_t slice;            /* elements of this rank's largest partial range (and target range) */
    unsigned char *din[2];   /* device: the segment's input, when staged or padded */
    unsigned char *dpart[2]; /* device: the group's partial over this rank's slice */
    unsigned char *dres[2];  /* device: the folded slice, the allgather's input */
    unsigned char *dout[2];  /* device: the allgather's output, when staged or padded */
    unsigned char *hpart[2]; /* host: the partial (a vendor rank's copy, else the input itself) */
    unsigned char *hres[2];  /* host: the folded target range */
    unsigned char *hrecv;    /* host: other groups' pieces of the target range, one area per group */
    uint64_t epoch0;         /* exchange epoch of segment 0, minus one (the window's, vendor.h) */
    /* Pieces of node peers to gather from their slots once they are ready (the fold round). */
    struct {
        unsigned char *dst;
        const unsigned char *src;
        size_t bytes;
    } * later;
    size_t nlater, laterc;
} red_t;

static uint64_t epoch_of(const red_t *r, size_t k)
{
    return r->epoch0 + 1 + k;
}

/* Node rank q's slot for epoch e in the exchange window. */
static unsigned char *xslot(const hcrt__vendor_t *v, int nr, uint64_t e)
{
    return v->xslot[nr] + (size_t)(e & 1) * v->xslot_bytes;
}

/* Where this rank's partial of segment k is on the host: its slot in the exchange window when the node has
 * one (node peers read it there), else pinned memory; a rank outside a vendor group without the window
 * sends its input itself. */
static unsigned char *red_part(const vb_t *b, const red_t *r, size_t k, size_t off)
{
    const hcrt__vendor_t *v = b->v;
    if (v->xwin != MPI_WIN_NULL)
        return xslot(v, b->c->node_rank, epoch_of(r, k));
    return b->vendor ? r->hpart[k % 2] : (unsigned char *)b->a->send + off * b->es;
}

/* Device side of segment k before its exchange: reduce-scatter into dpart, copy it to the host. */
static hcrt_status_t red_device_in(vb_t *b, red_t *r, size_t k, size_t off, size_t n)
{
    const hcrt__vendor_t *v = b->v;
    const size_t es = b->es, m = (size_t)v->m, s = (n + m - 1) / m;
    const unsigned char *src = (const unsigned char *)b->a->send + off * es;
    if (!b->dev) {
        HCRT_CHECK(h2d(b, r->din[k % 2], src, n * es));
        src = r->din[k % 2];
    } else if (s * m != n) { /* the library splits s * m elements: pad the last segment in scratch */
        HCRT_CHECK(hcrt__sched_d2d(b->s, r->din[k % 2], src, n * es));
        src = r->din[k % 2];
    }
    HCRT_CHECK(vcoll(b, HCRT__VCOLL_REDUCE_SCATTER, src, r->dpart[k % 2], s, 0));
    return hcrt__sched_d2h(b->s, red_part(b, r, k, off), r->dpart[k % 2], s * es, EV_SEG(k));
}

/* The exchange of segment k: this rank's partial pieces to the ranks whose targets they overlap, the
 * other groups' pieces of its own target from their holders. Node peers read each other's pieces in the
 * exchange window (a ready flag per rank and epoch, no message); ranks of other nodes use MPI. Returns,
 * per group, where its partial over the target range will lie (src[h]) once the fold round starts. */
static hcrt_status_t red_exchange(vb_t *b, red_t *r, size_t k, size_t off, size_t n, const unsigned char **src)
{
    const hcrt__vendor_t *v = b->v;
    struct hcrt_comm *c = b->c;
    const size_t es = b->es;
    const int me = c->rank;
    const bool win = v->xwin != MPI_WIN_NULL;
    const uint64_t e = epoch_of(r, k);
    rng_t mine = partial_of(v, n, me), tgt = target_of(b, off, n, me);
    unsigned char *part = red_part(b, r, k, off);
    if (win && !b->vendor) /* this rank's partial is its input: put it where the node peers read it */
        HCRT_CHECK(hcrt__sched_copy(b->s, part, (const unsigned char *)b->a->send + off * es, n * es));
    if (win)
        HCRT_CHECK(hcrt__sched_flag_post(b->s, &v->xline[c->node_rank]->ready, e));
    for (int q = 0; q < c->size; q++) {
        rng_t p = isect(mine, target_of(b, off, n, q));
        if (q != me && len(p) > 0 && !(win && v->node_rank_of[q] >= 0))
            HCRT_CHECK(hcrt__sched_send(b->s, c->mpi, q, part + (p.lo - mine.lo) * es, len(p) * es));
    }
    r->nlater = 0;
    for (int h = 0; h < v->ngroups; h++) {
        unsigned char *area = r->hrecv + (size_t)h * r->slice * es;
        src[h] = area;
        for (int i = 0; i < group(v, h)->size; i++) {
            int q = member(v, h, i), nr = v->node_rank_of[q];
            rng_t pq = partial_of(v, n, q), p = isect(pq, tgt);
            if (len(p) == 0)
                continue;
            const unsigned char *at = NULL; /* where the piece can be read in place */
            if (q == me)
                at = part + (p.lo - mine.lo) * es;
            else if (win && nr >= 0)
                at = xslot(v, nr, e) + (p.lo - pq.lo) * es;
            if (at != NULL && p.lo == tgt.lo && p.hi == tgt.hi) {
                src[h] = at; /* the whole target range is in one piece: fold it where it lies */
            } else if (at != NULL) {
                if (r->nlater == r->laterc) {
                    size_t cap = r->laterc ? 2 * r->laterc : 8;
                    void *nl = realloc(r->later, cap * sizeof(*r->later));
                    if (nl == NULL)
                        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory (vendor path)");
                    r->later = nl;
                    r->laterc = cap;
                }
                r->later[r->nlater].dst = area + (p.lo - tgt.lo) * es;
                r->later[r->nlater].src = at;
                r->later[r->nlater++].bytes = len(p) * es;
            } else {
                HCRT_CHECK(hcrt__sched_recv(b->s, c->mpi, q, area + (p.lo - tgt.lo) * es, len(p) * es));
            }
            if (q != me && win && nr >= 0)
                HCRT_CHECK(hcrt__sched_flag_wait(b->s, &v->xline[nr]->ready, e));
        }
    }
    return HCRT_OK;
}

/* Folds the groups' partials of this rank's target range in group order into hres, then delivers it. */
static hcrt_status_t red_fold_out(vb_t *b, red_t *r, size_t k, size_t off, size_t n, const unsigned char **src)
{
    const hcrt__vendor_t *v = b->v;
    const hcrt__args_t *a = b->a;
    const size_t es = b->es;
    rng_t tgt = target_of(b, off, n, b->c->rank);
    size_t cnt = len(tgt);
    unsigned char *res = r->hres[k % 2];
    for (size_t i = 0; i < r->nlater; i++)
        HCRT_CHECK(hcrt__sched_copy(b->s, r->later[i].dst, r->later[i].src, r->later[i].bytes));
    if (cnt > 0) {
        if (v->ngroups == 1)
            HCRT_CHECK(hcrt__sched_copy(b->s, res, src[0], cnt * es));
        else
            HCRT_CHECK(hcrt__sched_reduce3(b->s, res, src[0], src[1], cnt));
        for (int h = 2; h < v->ngroups; h++)
            HCRT_CHECK(hcrt__sched_reduce3(b->s, res, res, src[h], cnt));
        if (a->op == HCRT_OP_AVG)
            HCRT_CHECK(hcrt__sched_scale(b->s, res, cnt, 1.0 / (double)b->c->size));
    }
    if (v->xwin != MPI_WIN_NULL) {
        /* Done reading the peers' slots of this epoch; a slot is rewritten two epochs later, so wait until
         * every node rank is done with this one before the next segment's data goes in. */
        struct hcrt_comm *c = b->c;
        uint64_t e = epoch_of(r, k);
        HCRT_CHECK(hcrt__sched_flag_post(b->s, &v->xline[c->node_rank]->done, e));
        for (int nr = 0; nr < c->node_size; nr++)
            if (nr != c->node_rank)
                HCRT_CHECK(hcrt__sched_flag_wait(b->s, &v->xline[nr]->done, e));
    }
    if (a->coll == HCRT__COLL_REDUCE_SCATTER) {
        /* Element off + tgt.lo of the whole vector is element off + tgt.lo - rank * count of the output. */
        unsigned char *dst = (unsigned char *)a->recv + (off + tgt.lo - (size_t)b->c->rank * a->count) * es;
        if (cnt == 0)
            return HCRT_OK;
        return b->dev ? h2d(b, dst, res, cnt * es) : hcrt__sched_copy(b->s, dst, res, cnt * es);
    }
    unsigned char *out = (unsigned char *)a->recv + off * es;
    if (!b->vendor)
        return hcrt__sched_copy(b->s, out, res, n * es);
    /* Allreduce in a vendor group: the slices come together with the group's allgather. */
    size_t m = (size_t)v->m, s = (n + m - 1) / m;
    unsigned char *dst = b->dev && s * m == n ? out : r->dout[k % 2];
    HCRT_CHECK(h2d(b, r->dres[k % 2], res, cnt * es));
    HCRT_CHECK(vcoll(b, HCRT__VCOLL_ALLGATHER, r->dres[k % 2], dst, s, 0));
    if (dst == out)
        return HCRT_OK;
    return b->dev ? hcrt__sched_d2d(b->s, out, dst, n * es) : d2h(b, out, dst, n * es);
}

static hcrt_status_t reduction_rounds(vb_t *b, red_t *r)
{
    hcrt__vendor_t *v = b->v;
    const hcrt__args_t *a = b->a;
    struct hcrt_comm *c = b->c;
    const size_t es = b->es;
    size_t total = a->coll == HCRT__COLL_ALLREDUCE ? a->count : a->count * (size_t)c->size;
    r->per = seg_elems(b, c->chunk * (size_t)v->maxm);
    size_t nseg = (total + r->per - 1) / r->per;
    /* Epochs of the exchange window: numbered alike on every rank of the node (same segments). */
    r->epoch0 = v->xgen;
    v->xgen += nseg;
    /* The largest partial or target range of this rank in one segment. */
    r->slice = b->vendor ? (r->per + (size_t)v->m - 1) / (size_t)v->m : r->per;
    if (a->coll == HCRT__COLL_REDUCE_SCATTER)
        r->slice = max_z(r->slice, min_z(r->per, a->count));
    const unsigned char *src[64];
    const unsigned char **srcs = src;
    if (v->ngroups > 64 && (srcs = malloc((size_t)v->ngroups * sizeof(*srcs))) == NULL)
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory (vendor path)");
    if (srcs != src) {
        hcrt_status_t st = hcrt__sched_own(b->s, (void *)srcs);
        if (st != HCRT_OK)
            return st;
    }
    unsigned char *h = NULL;
    size_t sb = r->slice * es;
    HCRT_CHECK(host_block(b, (4 + (size_t)v->ngroups) * sb + 64, &h));
    r->hpart[0] = h, r->hpart[1] = h + sb, r->hres[0] = h + 2 * sb, r->hres[1] = h + 3 * sb, r->hrecv = h + 4 * sb;
    if (!b->vendor) {
        for (size_t k = 0; k < nseg; k++) {
            size_t off = k * r->per, n = min_z(r->per, total - off);
            hcrt_status_t st = red_exchange(b, r, k, off, n, srcs);
            if (st == HCRT_OK)
                st = hcrt__sched_round(b->s);
            if (st == HCRT_OK)
                st = red_fold_out(b, r, k, off, n, srcs);
            if (st == HCRT_OK)
                st = hcrt__sched_round(b->s);
            if (st != HCRT_OK)
                return st;
        }
        return HCRT_OK;
    }
    size_t s = (r->per + (size_t)v->m - 1) / (size_t)v->m, ps = r->per * es;
    HCRT_CHECK(dreserve(b, 2 * (2 * ps + 2 * s * es) + 16 * 256));
    for (int i = 0; i < 2; i++) {
        r->din[i] = dalloc(b, ps + (size_t)v->m * es);
        r->dout[i] = dalloc(b, ps + (size_t)v->m * es);
        r->dpart[i] = dalloc(b, s * es);
        r->dres[i] = dalloc(b, s * es);
    }
    /* Rounds: in(0) | wait(0) | exchange(0) + in(1) | fold(0) + wait(1) | exchange(1) + in(2) | ... */
    HCRT_CHECK(red_device_in(b, r, 0, 0, min_z(r->per, total)));
    HCRT_CHECK(hcrt__sched_round(b->s));
    HCRT_CHECK(hcrt__sched_event_peers(b->s, EV_SEG(0)));
    HCRT_CHECK(hcrt__sched_round(b->s));
    for (size_t k = 0; k < nseg; k++) {
        size_t off = k * r->per, n = min_z(r->per, total - off);
        if (k + 1 < nseg)
            HCRT_CHECK(red_device_in(b, r, k + 1, off + r->per, min_z(r->per, total - off - r->per)));
        HCRT_CHECK(red_exchange(b, r, k, off, n, srcs));
        HCRT_CHECK(hcrt__sched_round(b->s));
        HCRT_CHECK(red_fold_out(b, r, k, off, n, srcs));
        if (k + 1 < nseg)
            HCRT_CHECK(hcrt__sched_event_peers(b->s, EV_SEG(k + 1)));
        HCRT_CHECK(hcrt__sched_round(b->s));
    }
    return finish(b);
}

/* Allreduce and reduce_scatter over several groups (the exchange's piece list is freed here). */
static hcrt_status_t build_reduction(vb_t *b)
{
    red_t r;
    memset(&r, 0, sizeof(r));
    hcrt_status_t status = reduction_rounds(b, &r);
    free(r.later);
    return status;
}

/* ---- allgather over several groups ------------------------------------------------------------------ */

/* Foreign blocks of group h (the ranks outside it, in rank order): index of rank q among them. */
static size_t foreign_index(const hcrt__vendor_t *v, int h, int q)
{
    size_t f = 0;
    for (int p = 0; p < q; p++)
        f += v->group_of[p] != h;
    return f;
}

static hcrt_status_t build_allgather(vb_t *b)
{
    const hcrt__vendor_t *v = b->v;
    const hcrt__args_t *a = b->a;
    struct hcrt_comm *c = b->c;
    const size_t es = b->es, ac = a->count;
    const int me = c->rank, m = v->m;
    const size_t nf = (size_t)(c->size - m), per_member = (nf + (size_t)m - 1) / (size_t)m, P = 1 + per_member;
    /* Segments over the offset within each block, the same on every rank: sized for the group whose
     * members each carry the most blocks. */
    size_t pmax = 1;
    for (int h = 0; h < v->ngroups; h++) {
        size_t mh = (size_t)group(v, h)->size;
        pmax = max_z(pmax, 1 + ((size_t)c->size - mh + mh - 1) / mh);
    }
    size_t per = max_z(seg_elems(b, c->chunk) / pmax, 1);
    size_t nseg = (ac + per - 1) / per;
    unsigned char *h = NULL, *hown[2], *hfetch[2];
    HCRT_CHECK(host_block(b, 2 * P * per * es + 64, &h));
    hown[0] = h, hfetch[0] = h + per * es, hown[1] = h + P * per * es, hfetch[1] = hown[1] + per * es;
    unsigned char *contrib[2] = {NULL, NULL}, *gath[2] = {NULL, NULL};
    if (b->vendor) {
        HCRT_CHECK(dreserve(b, 2 * (1 + (size_t)m) * P * per * es + 8 * 256));
        for (int i = 0; i < 2; i++) {
            contrib[i] = dalloc(b, P * per * es);
            gath[i] = dalloc(b, (size_t)m * P * per * es);
        }
    }
    for (size_t k = 0; k <= nseg; k++) {
        /* Round k: device work of segment k (own piece), the exchange of segment k - 1 (whose own piece
         * is on the host by now), and the allgather and placement of segment k - 1. */
        if (k < nseg && b->vendor) {
            size_t off = k * per, n = min_z(per, ac - off);
            const unsigned char *own = (const unsigned char *)a->send + off * es;
            if (b->dev) {
                HCRT_CHECK(hcrt__sched_d2d(b->s, contrib[k % 2], own, n * es));
                HCRT_CHECK(hcrt__sched_d2h(b->s, hown[k % 2], own, n * es, EV_SEG(k)));
            } else {
                HCRT_CHECK(hcrt__sched_h2d(b->s, contrib[k % 2], own, n * es, EV_SEG(k)));
            }
        }
        if (k > 0) {
            size_t kk = k - 1, off = kk * per, n = min_z(per, ac - off);
            const unsigned char *own = b->vendor && b->dev ? hown[kk % 2] : (const unsigned char *)a->send + off * es;
            /* My block goes to its fetcher in every other group. */
            for (int g2 = 0; g2 < v->ngroups; g2++) {
                if (g2 == v->g)
                    continue;
                size_t f = foreign_index(v, g2, me);
                int to = member(v, g2, (int)(f % (size_t)group(v, g2)->size));
                HCRT_CHECK(hcrt__sched_send(b->s, c->mpi, to, own, n * es));
            }
            /* The foreign blocks this rank fetches for its group. */
            for (int q = 0, f = 0; q < c->size; q++) {
                if (v->group_of[q] == v->g)
                    continue;
                if (f % m == v->j) {
                    unsigned char *dst = b->vendor ? hfetch[kk % 2] + (size_t)(f / m) * n * es
                                                   : (unsigned char *)a->recv + ((size_t)q * ac + off) * es;
                    HCRT_CHECK(hcrt__sched_recv(b->s, c->mpi, q, dst, n * es));
                }
                f++;
            }
        }
        HCRT_CHECK(hcrt__sched_round(b->s));
        if (k > 0) {
            size_t kk = k - 1, off = kk * per, n = min_z(per, ac - off);
            if (!b->vendor) {
                HCRT_CHECK(hcrt__sched_copy(b->s, (unsigned char *)a->recv + ((size_t)me * ac + off) * es,
                                            (const unsigned char *)a->send + off * es, n * es));
            } else {
                HCRT_CHECK(h2d(b, contrib[kk % 2] + n * es, hfetch[kk % 2], per_member * n * es));
                HCRT_CHECK(vcoll(b, HCRT__VCOLL_ALLGATHER, contrib[kk % 2], gath[kk % 2], P * n, 0));
                /* Member i's contribution: its own block, then the foreign blocks i, i + m, ... */
                for (int i = 0; i < m; i++) {
                    for (size_t p = 0; p < P; p++) {
                        int q = -1;
                        if (p == 0) {
                            q = member(v, v->g, i);
                        } else {
                            size_t want = (p - 1) * (size_t)m + (size_t)i, f = 0;
                            for (int x = 0; x < c->size && q < 0; x++)
                                if (v->group_of[x] != v->g && f++ == want)
                                    q = x;
                        }
                        if (q < 0)
                            continue;
                        unsigned char *dst = (unsigned char *)a->recv + ((size_t)q * ac + off) * es;
                        const unsigned char *src = gath[kk % 2] + ((size_t)i * P + p) * n * es;
                        HCRT_CHECK(b->dev ? hcrt__sched_d2d(b->s, dst, src, n * es) : d2h(b, dst, src, n * es));
                    }
                }
            }
        }
        if (k < nseg && b->vendor)
            HCRT_CHECK(hcrt__sched_event(b->s, EV_SEG(k)));
        HCRT_CHECK(hcrt__sched_round(b->s));
    }
    return b->vendor ? finish(b) : HCRT_OK;
}

/* ---- broadcast over several groups ------------------------------------------------------------------- */

/* The rank of group h that takes part in the broadcast's tree: the root in its group, else the lowest. */
static int rep_of(const hcrt__vendor_t *v, int h, int root)
{
    return v->group_of[root] == h ? root : member(v, h, 0);
}

static hcrt_status_t build_broadcast(vb_t *b)
{
    const hcrt__vendor_t *v = b->v;
    const hcrt__args_t *a = b->a;
    struct hcrt_comm *c = b->c;
    const size_t bytes = a->count * b->es;
    const int me = c->rank, groot = v->group_of[a->root];
    /* Representatives: the root for its group, the lowest rank for the others; the tree runs over them
     * in group order starting at the root's group. */
    int rep = rep_of(v, v->g, a->root), pos = (v->g - groot + v->ngroups) % v->ngroups;
    bool is_rep = me == rep;
    unsigned char *buf = a->recv, *dbuf = b->dev ? buf : NULL, *hbuf = b->dev ? NULL : buf;
    if (b->vendor && !b->dev) {
        HCRT_CHECK(dreserve(b, bytes + 256));
        dbuf = dalloc(b, bytes);
    }
    if (is_rep && b->dev)
        HCRT_CHECK(host_block(b, bytes, &hbuf));
    int vroot = b->vendor ? v->index_of[rep] : 0;
    /* The root's group: the root's data goes to the host (for the tree) and to the group. */
    if (b->vendor && v->g == groot) {
        if (me == a->root && b->dev)
            HCRT_CHECK(hcrt__sched_d2h(b->s, hbuf, buf, bytes, EV_SEG(0)));
        if (me == a->root && !b->dev)
            HCRT_CHECK(h2d(b, dbuf, buf, bytes));
        HCRT_CHECK(vcoll(b, HCRT__VCOLL_BROADCAST, dbuf, dbuf, a->count, vroot));
        if (me != a->root && !b->dev)
            HCRT_CHECK(d2h(b, buf, dbuf, bytes));
        if (me == a->root && b->dev)
            HCRT_CHECK(hcrt__sched_event(b->s, EV_SEG(0)));
        HCRT_CHECK(hcrt__sched_round(b->s));
    }
    /* Binomial tree over the representatives. */
    if (is_rep) {
        for (int d = 1; d < v->ngroups; d <<= 1) {
            if (pos < d && pos + d < v->ngroups)
                HCRT_CHECK(
                    hcrt__sched_send(b->s, c->mpi, rep_of(v, (groot + pos + d) % v->ngroups, a->root), hbuf, bytes));
            else if (pos >= d && pos < 2 * d)
                HCRT_CHECK(
                    hcrt__sched_recv(b->s, c->mpi, rep_of(v, (groot + pos - d) % v->ngroups, a->root), hbuf, bytes));
            HCRT_CHECK(hcrt__sched_round(b->s));
        }
    }
    /* The other groups: from their representative. */
    if (b->vendor && v->g != groot) {
        if (is_rep)
            HCRT_CHECK(h2d(b, dbuf, hbuf, bytes));
        HCRT_CHECK(vcoll(b, HCRT__VCOLL_BROADCAST, dbuf, dbuf, a->count, vroot));
        if (!b->dev && !is_rep)
            HCRT_CHECK(d2h(b, buf, dbuf, bytes));
    }
    return b->vendor ? finish(b) : HCRT_OK;
}

hcrt_status_t hcrt__vendor_build(struct hcrt_comm *c, const hcrt__args_t *a, hcrt__sched_t *s, hcrt__block_t **blocks,
                                 int *nblocks)
{
    hcrt__vendor_t *v = c->vendor;
    vb_t b = {.c = c, .v = v, .s = s, .a = a, .es = hcrt_dtype_size(a->dtype), .blocks = blocks, .nblocks = nblocks};
    b.vendor = v->dev != NULL;
    b.dev = b.vendor && a->device == v->dev;
    s->sync_copies = false; /* device copies must queue behind the vendor operations on the stream */
    if (b.vendor)
        HCRT_CHECK(hcrt__stage_get(c, v->dev, &s->stage));
    if (v->ngroups == 1)
        HCRT_CHECK(build_whole_group(&b));
    else if (a->coll == HCRT__COLL_ALLREDUCE || a->coll == HCRT__COLL_REDUCE_SCATTER)
        HCRT_CHECK(build_reduction(&b));
    else if (a->coll == HCRT__COLL_ALLGATHER)
        HCRT_CHECK(build_allgather(&b));
    else
        HCRT_CHECK(build_broadcast(&b));
    return hcrt__sched_round(s);
}
