/*
 * collectives/build.c - turns one call into a schedule: algorithm choice, segments, device staging.
 *
 * Reductions run in segments of HCRT_CHUNK_SIZE bytes, the same on every rank whatever its buffer
 * location, so a rank staging device memory and a rank reducing host memory take part in the same
 * algorithm on the same bytes (mixed communicators give the homogeneous run's bits). The algorithm of a
 * segment depends only on what every rank knows alike: the segment's size, the rank count, the placement
 * of the ranks on nodes, HCRT_ALGO and whether the call blocks.
 *
 * A device buffer is staged through two pinned host buffers: the device->host copy of segment k+1 is
 * queued before segment k's exchange starts and runs beside it; segment k's host->device copy is queued
 * as soon as its result is ready. The other operations stage their whole buffers once.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/coll.h"

typedef struct builder {
    struct hcrt_comm *c;
    hcrt__sched_t *s;
    hcrt__block_t **blocks;
    int *nblocks;
} builder_t;

#define MAX_BLOCKS 6
/* Device buffers up to this size are copied synchronously (see hcrt__build). */
#define HCRT__SYNC_COPY_MAX ((size_t)64 * 1024)

static hcrt_status_t scratch(builder_t *b, hcrt_device_t *device, size_t bytes, void **p)
{
    hcrt__block_t *blk = NULL;
    if (*b->nblocks == MAX_BLOCKS)
        return hcrt__error(b->c->ctx, HCRT_ERR_INTERNAL, "collectives: too many scratch blocks");
    HCRT_CHECK(hcrt__pool_get(b->c, device, bytes, &blk));
    b->blocks[(*b->nblocks)++] = blk;
    *p = blk->ptr;
    return HCRT_OK;
}

static bool on_device(const hcrt__args_t *a) { return a->device != NULL && !hcrt__device_is_host(a->device); }

static hcrt__group_t world_group(const struct hcrt_comm *c)
{
    hcrt__group_t g = {.mpi = c->mpi, .rank = c->rank, .size = c->size};
    return g;
}

/* ---- MPI's own collectives, as pollable steps ---------------------------------------------------- */

typedef struct mpi_args {
    hcrt__coll_t coll;
    const void *send;
    void *recv;
    int count;
    int *counts, *displs, *scounts, *sdispls;
    MPI_Datatype type;
    MPI_Op op;
    int root;
    bool in_place; /* allgatherv, gather at root: this rank's block is already in recv */
} mpi_args_t;

static MPI_Datatype elem_type(hcrt_dtype_t d)
{
    switch (hcrt_dtype_size(d)) {
    case 1: return MPI_UINT8_T;
    case 2: return MPI_UINT16_T;
    case 4: return MPI_UINT32_T;
    default: return MPI_UINT64_T;
    }
}

/* MPI's datatype for arithmetic on d, or MPI_DATATYPE_NULL (f16, bf16 have none). */
static MPI_Datatype arith_type(hcrt_dtype_t d)
{
    switch (d) {
    case HCRT_I8: return MPI_INT8_T;
    case HCRT_U8: return MPI_UINT8_T;
    case HCRT_I32: return MPI_INT32_T;
    case HCRT_U32: return MPI_UINT32_T;
    case HCRT_I64: return MPI_INT64_T;
    case HCRT_U64: return MPI_UINT64_T;
    case HCRT_F32: return MPI_FLOAT;
    case HCRT_F64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
    }
}

static MPI_Op arith_op(hcrt_op_t op)
{
    switch (op) {
    case HCRT_OP_PROD: return MPI_PROD;
    case HCRT_OP_MIN: return MPI_MIN;
    case HCRT_OP_MAX: return MPI_MAX;
    default: return MPI_SUM;
    }
}

static int start_mpi(hcrt__sched_t *s, void *arg, MPI_Request *req)
{
    mpi_args_t *m = arg;
    MPI_Comm comm = s->comm->mpi;
    const void *send = m->send == m->recv ? MPI_IN_PLACE : m->send;
    switch (m->coll) {
    case HCRT__COLL_ALLREDUCE:
        return MPI_Iallreduce(send, m->recv, m->count, m->type, m->op, comm, req);
    case HCRT__COLL_ALLGATHERV:
        return MPI_Iallgatherv(m->in_place ? MPI_IN_PLACE : m->send, m->count, m->type, m->recv, m->counts,
                               m->displs, m->type, comm, req);
    case HCRT__COLL_ALLTOALL:
        return MPI_Ialltoall(m->send, m->count, m->type, m->recv, m->count, m->type, comm, req);
    case HCRT__COLL_ALLTOALLV:
        return MPI_Ialltoallv(m->send, m->scounts, m->sdispls, m->type, m->recv, m->counts, m->displs, m->type,
                              comm, req);
    case HCRT__COLL_GATHER:
        return MPI_Igather(m->in_place ? MPI_IN_PLACE : m->send, m->count, m->type, m->recv, m->count,
                           m->type, m->root, comm, req);
    case HCRT__COLL_SCATTER:
        return MPI_Iscatter(m->send, m->count, m->type, m->recv, m->count, m->type, m->root, comm, req);
    default:
        return MPI_ERR_OTHER;
    }
}

static hcrt_status_t add_mpi(builder_t *b, mpi_args_t *proto)
{
    mpi_args_t *m = malloc(sizeof(*m));
    if (m == NULL)
        return hcrt__error(b->c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory");
    *m = *proto;
    HCRT_CHECK(hcrt__sched_own(b->s, m));
    HCRT_CHECK(hcrt__sched_mpi(b->s, start_mpi, m));
    return hcrt__sched_round(b->s);
}

/* size_t counts/displacements to MPI's ints (checked against INT_MAX when the call was validated). */
static hcrt_status_t int_array(builder_t *b, const size_t *in, int n, int **out)
{
    int *p = malloc((size_t)n * sizeof(int));
    if (p == NULL)
        return hcrt__error(b->c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory");
    for (int i = 0; i < n; i++)
        p[i] = (int)in[i];
    *out = p;
    return hcrt__sched_own(b->s, p);
}

/* ---- allreduce (and reduce, whose non-roots discard the result) ----------------------------------- */

static hcrt__algo_t choose(const struct hcrt_comm *c, const hcrt__args_t *a, size_t segbytes)
{
    int algo = c->algo;
    if (!a->blocking && (algo == HCRT__ALGO_SHM || algo == HCRT__ALGO_HIER))
        algo = HCRT__ALGO_AUTO; /* the node window serves one operation at a time: blocking ones */
    if (algo == HCRT__ALGO_SHM && c->node_count > 1)
        algo = HCRT__ALGO_HIER;
    if (algo == HCRT__ALGO_MPI && arith_type(a->dtype) == MPI_DATATYPE_NULL)
        algo = HCRT__ALGO_AUTO; /* MPI cannot reduce f16/bf16 */
    if (algo != HCRT__ALGO_AUTO)
        return (hcrt__algo_t)algo;
    if (a->blocking && c->has_shm)
        return c->node_count == 1 ? HCRT__ALGO_SHM : HCRT__ALGO_HIER;
    return segbytes <= HCRT__RD_MAX_BYTES ? HCRT__ALGO_RD : HCRT__ALGO_RING;
}

static const char *algo_name(hcrt__algo_t algo)
{
    static const char *const names[] = {"auto", "ring", "rd", "shm", "hier", "mpi"};
    return (unsigned)algo < sizeof(names) / sizeof(names[0]) ? names[algo] : "?";
}

/* The trace's name of the algorithm a call runs: the choice of its first segment, as the builders
 * below make it (a last, short segment may differ; the label does not say). */
const char *hcrt__algo_label(const struct hcrt_comm *c, const hcrt__args_t *a)
{
    size_t bytes = a->count * hcrt_dtype_size(a->dtype), seg = bytes < c->chunk ? bytes : c->chunk;
    if (a->algo != NULL)
        return a->algo;
    if (c->size == 1)
        return "local";
    switch (a->coll) {
    case HCRT__COLL_ALLREDUCE:
    case HCRT__COLL_REDUCE: {
        hcrt__algo_t algo = choose(c, a, seg);
        if (on_device(a) && algo == HCRT__ALGO_SHM && c->node_size > 1 && seg > c->shm.small)
            return c->shm.map_dev == a->device ? "shm-mapped" : "shm-device";
        return algo_name(algo);
    }
    case HCRT__COLL_BROADCAST:
        return a->blocking && c->node_count == 1 && c->has_shm && c->algo != HCRT__ALGO_RING &&
                       c->algo != HCRT__ALGO_RD && c->algo != HCRT__ALGO_MPI
                   ? "shm"
                   : "tree";
    case HCRT__COLL_ALLGATHER:
    case HCRT__COLL_REDUCE_SCATTER:
        return "ring";
    case HCRT__COLL_BARRIER:
        return a->blocking && c->node_count == 1 && c->has_shm ? "shm" : "dissemination";
    default:
        return "mpi";
    }
}

/* Reduces one segment: in (host) -> out (host, may equal in). tmp holds one segment. */
static hcrt_status_t segment(builder_t *b, const hcrt__args_t *a, const void *in, void *out, size_t count,
                             void *tmp)
{
    struct hcrt_comm *c = b->c;
    size_t bytes = count * hcrt_dtype_size(a->dtype);
    hcrt__group_t g = world_group(c);
    hcrt__algo_t algo = choose(c, a, bytes);
    if (c->size == 1) {
        HCRT_CHECK(hcrt__sched_copy(b->s, out, in, bytes));
    } else if (algo == HCRT__ALGO_SHM) {
        HCRT_CHECK(hcrt__shm_allreduce(b->s, in, out, count));
    } else if (algo == HCRT__ALGO_HIER) {
        HCRT_CHECK(hcrt__hier_allreduce(b->s, in, out, count, tmp));
    } else if (algo == HCRT__ALGO_MPI) {
        mpi_args_t m = {.coll = HCRT__COLL_ALLREDUCE, .send = in, .recv = out, .count = (int)count,
                        .type = arith_type(a->dtype), .op = arith_op(a->op)};
        HCRT_CHECK(add_mpi(b, &m));
    } else {
        HCRT_CHECK(hcrt__sched_copy(b->s, out, in, bytes));
        if (algo == HCRT__ALGO_RD)
            HCRT_CHECK(hcrt__rd_allreduce(b->s, &g, out, count, tmp));
        else
            HCRT_CHECK(hcrt__ring_allreduce(b->s, &g, out, count, tmp));
    }
    if (a->op == HCRT_OP_AVG)
        HCRT_CHECK(hcrt__sched_scale(b->s, out, count, 1.0 / c->size));
    return hcrt__sched_round(b->s);
}

/*
 * Ring allreduce of several segments, pipelined: segment k starts one round after segment k-1, so while
 * one segment's block is reduced the next one's is on the wire. Each segment in flight has its own
 * scratch block (and, for a discarded result, its own work buffer); with 2(n-1) rounds per segment (one
 * more for avg) at most 2n-1 segments overlap. Only ring segments are merged: every rank has the same
 * rounds there, so messages between two ranks are posted in the same order on both sides. A last
 * segment small enough for recursive doubling (whose rounds differ by rank) runs after them.
 */
static hcrt_status_t pipelined_ring(builder_t *b, const hcrt__args_t *a, size_t nseg, size_t per)
{
    struct hcrt_comm *c = b->c;
    size_t es = hcrt_dtype_size(a->dtype), blk = (per / (size_t)c->size + 1) * es;
    size_t inflight = 2 * (size_t)c->size - 1 < nseg ? 2 * (size_t)c->size - 1 : nseg;
    size_t last = a->count - (nseg - 1) * per;
    size_t nring = choose(c, a, last * es) == HCRT__ALGO_RING ? nseg : nseg - 1;
    hcrt__sched_t *subs = calloc(nseg, sizeof(*subs));
    hcrt__sched_t *main_s = b->s;
    hcrt_status_t status = HCRT_OK;
    unsigned char *tmp = NULL, *work = NULL;
    if (subs == NULL)
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for a pipelined schedule");
    HCRT_CHECK_GOTO(scratch(b, NULL, inflight * blk, (void **)&tmp), status, out);
    if (a->recv == NULL)
        HCRT_CHECK_GOTO(scratch(b, NULL, inflight * per * es, (void **)&work), status, out);
    for (size_t k = 0; k < nseg; k++) {
        size_t done = k * per, n = a->count - done < per ? a->count - done : per;
        const unsigned char *in = (const unsigned char *)a->send + done * es;
        unsigned char *o = work ? work + (k % inflight) * per * es : (unsigned char *)a->recv + done * es;
        if (k < nring) {
            hcrt__sched_init(&subs[k], c, a->dtype, a->op, main_s->tag);
            b->s = &subs[k];
        }
        if (k == nring)
            HCRT_CHECK_GOTO(hcrt__sched_merge(main_s, subs, nring, 1), status, out);
        status = segment(b, a, in, o, n, tmp + (k % inflight) * blk);
        b->s = main_s;
        if (status != HCRT_OK)
            goto out;
    }
    if (nring == nseg)
        status = hcrt__sched_merge(main_s, subs, nring, 1);
out:
    b->s = main_s;
    for (size_t k = 0; k < nseg; k++)
        hcrt__sched_fini(&subs[k]);
    free(subs);
    return status;
}

static hcrt_status_t build_allreduce(builder_t *b, const hcrt__args_t *a)
{
    struct hcrt_comm *c = b->c;
    size_t es = hcrt_dtype_size(a->dtype), per = c->chunk / es, count = a->count;
    size_t seg = (count < per ? count : per) * es;
    bool discard = a->recv == NULL; /* reduce: non-root ranks */
    void *tmp = NULL, *work = NULL;
    if (count == 0)
        return HCRT_OK;
    /* Beyond the caches, result copies bypass them (copy.c); below, the caller likely reuses them. */
    b->s->stream_out = count * es >= ((size_t)8 << 20);
    HCRT_CHECK(scratch(b, NULL, seg, &tmp));
    if (!on_device(a)) {
        if (discard)
            HCRT_CHECK(scratch(b, NULL, seg, &work));
        size_t nseg = (count + per - 1) / per;
        if (nseg > 1 && choose(c, a, seg) == HCRT__ALGO_RING)
            return pipelined_ring(b, a, nseg, per);
        for (size_t done = 0; done < count; done += per) {
            size_t n = count - done < per ? count - done : per;
            const unsigned char *in = (const unsigned char *)a->send + done * es;
            void *out = discard ? work : (unsigned char *)a->recv + done * es;
            HCRT_CHECK(segment(b, a, in, out, n, tmp));
        }
        return HCRT_OK;
    }
    void *h[2];
    HCRT_CHECK(scratch(b, a->device, seg, &h[0]));
    HCRT_CHECK(scratch(b, a->device, seg, &h[1]));
    HCRT_CHECK(hcrt__stage_get(c, a->device, &b->s->stage));
    size_t nseg = (count + per - 1) / per;
    if (c->size > 1 && c->node_size > 1 && choose(c, a, seg) == HCRT__ALGO_SHM && seg > c->shm.small) {
        /* Same node: the device reduces in the shared window (mapped) or copies to and from it itself
         * (shm.c); a last segment small enough for the small areas goes through a staging buffer, as on
         * the host path. */
        b->s->stream_out = false;
        size_t last = count - (nseg - 1) * per, direct = last * es > c->shm.small ? count : count - last;
        const double scale = a->op == HCRT_OP_AVG ? 1.0 / c->size : 0;
        if (hcrt__shm_map(c, a->device) == HCRT_OK)
            HCRT_CHECK(hcrt__shm_allreduce_mapped(b->s, a->send, discard ? NULL : a->recv, direct, scale));
        else
            HCRT_CHECK(hcrt__shm_allreduce_dev(b->s, a->send, discard ? NULL : a->recv, direct, scale));
        if (direct < count) {
            HCRT_CHECK(hcrt__sched_d2h(b->s, h[0], (const unsigned char *)a->send + direct * es, last * es, 0));
            HCRT_CHECK(hcrt__sched_event(b->s, 0));
            HCRT_CHECK(hcrt__sched_round(b->s));
            HCRT_CHECK(segment(b, a, h[0], h[0], last, tmp));
            if (!discard) {
                HCRT_CHECK(hcrt__sched_h2d(b->s, (unsigned char *)a->recv + direct * es, h[0], last * es, 2));
                HCRT_CHECK(hcrt__sched_event(b->s, 2));
                HCRT_CHECK(hcrt__sched_round(b->s));
            }
        }
        return HCRT_OK;
    }
    HCRT_CHECK(hcrt__sched_d2h(b->s, h[0], a->send, (count < per ? count : per) * es, 0));
    HCRT_CHECK(hcrt__sched_event(b->s, 0));
    HCRT_CHECK(hcrt__sched_round(b->s));
    for (size_t k = 0; k < nseg; k++) {
        size_t off = k * per, n = count - off < per ? count - off : per;
        if (k + 1 < nseg) {
            size_t off1 = off + per, n1 = count - off1 < per ? count - off1 : per;
            HCRT_CHECK(hcrt__sched_d2h(b->s, h[(k + 1) % 2], (const unsigned char *)a->send + off1 * es, n1 * es,
                                       (int)((k + 1) % 2)));
        }
        HCRT_CHECK(segment(b, a, h[k % 2], h[k % 2], n, tmp));
        if (!discard)
            HCRT_CHECK(hcrt__sched_h2d(b->s, (unsigned char *)a->recv + off * es, h[k % 2], n * es,
                                       2 + (int)(k % 2)));
        if (k + 1 < nseg)
            HCRT_CHECK(hcrt__sched_event(b->s, (int)((k + 1) % 2)));
        HCRT_CHECK(hcrt__sched_round(b->s));
    }
    if (!discard) {
        /* Copies on one stream complete in order: the last one's event covers them all. */
        HCRT_CHECK(hcrt__sched_event(b->s, 2 + (int)((nseg - 1) % 2)));
        HCRT_CHECK(hcrt__sched_round(b->s));
    }
    return HCRT_OK;
}

/* ---- whole-buffer staging for the other operations ------------------------------------------------ */

static hcrt_status_t stage_in(builder_t *b, const hcrt__args_t *a, void *host, const void *dev, size_t bytes)
{
    if (bytes == 0)
        return HCRT_OK;
    if (b->s->stage == NULL)
        HCRT_CHECK(hcrt__stage_get(b->c, a->device, &b->s->stage));
    HCRT_CHECK(hcrt__sched_d2h(b->s, host, dev, bytes, 0));
    HCRT_CHECK(hcrt__sched_event(b->s, 0));
    return hcrt__sched_round(b->s);
}

/* Queues a host->device copy; stage_out_wait() closes the operation by waiting for the last one. */
static hcrt_status_t stage_out(builder_t *b, const hcrt__args_t *a, void *dev, const void *host, size_t bytes)
{
    if (bytes == 0)
        return HCRT_OK;
    if (b->s->stage == NULL)
        HCRT_CHECK(hcrt__stage_get(b->c, a->device, &b->s->stage));
    return hcrt__sched_h2d(b->s, dev, host, bytes, 2);
}

static hcrt_status_t stage_out_wait(builder_t *b)
{
    if (b->s->stage == NULL)
        return HCRT_OK;
    /* The event is recorded only by stage_out; with no copy queued there is nothing to wait for. */
    for (size_t i = 0; i < b->s->nsteps; i++) {
        if (b->s->steps[i].kind == HCRT__STEP_DCOPY && b->s->steps[i].value == 1) {
            HCRT_CHECK(hcrt__sched_event(b->s, 2));
            return hcrt__sched_round(b->s);
        }
    }
    return HCRT_OK;
}

static hcrt_status_t build_broadcast(builder_t *b, const hcrt__args_t *a)
{
    struct hcrt_comm *c = b->c;
    size_t bytes = a->count * hcrt_dtype_size(a->dtype);
    bool dev = on_device(a), use_shm = a->blocking && c->node_count == 1 && c->has_shm &&
                                       c->algo != HCRT__ALGO_RING && c->algo != HCRT__ALGO_RD &&
                                       c->algo != HCRT__ALGO_MPI;
    hcrt__group_t g = world_group(c);
    if (bytes == 0 || c->size == 1)
        return HCRT_OK;
    size_t seg = bytes < c->chunk ? bytes : c->chunk;
    void *h = NULL;
    if (dev)
        HCRT_CHECK(scratch(b, a->device, seg, &h));
    for (size_t off = 0; off < bytes; off += seg) {
        size_t n = bytes - off < seg ? bytes - off : seg;
        unsigned char *p = (unsigned char *)a->recv + off;
        unsigned char *work = dev ? h : p;
        if (dev && c->rank == a->root)
            HCRT_CHECK(stage_in(b, a, work, p, n));
        if (use_shm)
            HCRT_CHECK(hcrt__shm_broadcast(b->s, work, n, a->root));
        else
            HCRT_CHECK(hcrt__tree_broadcast(b->s, &g, work, n, a->root));
        if (dev && c->rank != a->root) {
            HCRT_CHECK(stage_out(b, a, p, work, n));
            HCRT_CHECK(stage_out_wait(b)); /* h is refilled by the next segment */
        }
    }
    return HCRT_OK;
}

static hcrt_status_t build_allgather(builder_t *b, const hcrt__args_t *a)
{
    struct hcrt_comm *c = b->c;
    size_t blk = a->count * hcrt_dtype_size(a->dtype), total = blk * (size_t)c->size;
    hcrt__group_t g = world_group(c);
    unsigned char *mine = (unsigned char *)a->recv + (size_t)c->rank * blk;
    if (blk == 0)
        return HCRT_OK;
    if (!on_device(a)) {
        HCRT_CHECK(hcrt__sched_copy(b->s, mine, a->send, blk));
        return hcrt__ring_allgather(b->s, &g, a->recv, blk);
    }
    void *h = NULL;
    HCRT_CHECK(scratch(b, a->device, total, &h));
    HCRT_CHECK(stage_in(b, a, (unsigned char *)h + (size_t)c->rank * blk, a->send, blk));
    HCRT_CHECK(hcrt__ring_allgather(b->s, &g, h, blk));
    HCRT_CHECK(stage_out(b, a, a->recv, h, total));
    return stage_out_wait(b);
}

static hcrt_status_t build_reduce_scatter(builder_t *b, const hcrt__args_t *a)
{
    struct hcrt_comm *c = b->c;
    size_t es = hcrt_dtype_size(a->dtype), blk = a->count * es, total = blk * (size_t)c->size;
    hcrt__group_t g = world_group(c);
    void *work = NULL, *tmp = NULL;
    if (blk == 0)
        return HCRT_OK;
    bool dev = on_device(a), in_place = a->send == a->recv;
    if (dev || !in_place)
        HCRT_CHECK(scratch(b, dev ? a->device : NULL, total, &work));
    else
        work = a->recv;
    HCRT_CHECK(scratch(b, NULL, blk, &tmp));
    if (dev)
        HCRT_CHECK(stage_in(b, a, work, a->send, total));
    else
        HCRT_CHECK(hcrt__sched_copy(b->s, work, a->send, total));
    HCRT_CHECK(hcrt__ring_reduce_scatter(b->s, &g, work, a->count, tmp));
    unsigned char *mine = (unsigned char *)work + (size_t)c->rank * blk;
    if (a->op == HCRT_OP_AVG)
        HCRT_CHECK(hcrt__sched_scale(b->s, mine, a->count, 1.0 / c->size));
    if (dev) {
        HCRT_CHECK(stage_out(b, a, a->recv, mine, blk));
        return stage_out_wait(b);
    }
    HCRT_CHECK(hcrt__sched_copy(b->s, a->recv, mine, blk));
    return hcrt__sched_round(b->s);
}

static hcrt_status_t build_barrier(builder_t *b, const hcrt__args_t *a)
{
    struct hcrt_comm *c = b->c;
    hcrt__group_t g = world_group(c);
    if (c->size == 1)
        return HCRT_OK;
    if (a->blocking && c->node_count == 1 && c->has_shm)
        return hcrt__shm_barrier(b->s);
    return hcrt__dissem_barrier(b->s, &g);
}

/* Without MPI (one rank) these operations copy this rank's block to where it belongs. */
static hcrt_status_t local_copy(builder_t *b, const hcrt__args_t *a, bool in_place)
{
    size_t es = hcrt_dtype_size(a->dtype), bytes = a->count * es, soff = 0, roff = 0;
    if (a->coll == HCRT__COLL_ALLGATHERV) {
        bytes = a->counts[0] * es;
        roff = a->displs[0] * es;
    } else if (a->coll == HCRT__COLL_ALLTOALLV) {
        bytes = a->counts[0] * es;
        soff = a->sdispls[0] * es;
        roff = a->displs[0] * es;
    }
    if (in_place || bytes == 0)
        return HCRT_OK;
    const unsigned char *src = (const unsigned char *)a->send + soff;
    unsigned char *dst = (unsigned char *)a->recv + roff;
    if (!on_device(a))
        return hcrt__sched_copy(b->s, dst, src, bytes);
    void *h = NULL;
    HCRT_CHECK(scratch(b, a->device, bytes, &h));
    HCRT_CHECK(stage_in(b, a, h, src, bytes));
    HCRT_CHECK(stage_out(b, a, dst, h, bytes));
    return stage_out_wait(b);
}

/* alltoall(v), allgatherv, gather, scatter: MPI's nonblocking collectives on host (or staged) buffers. */
static hcrt_status_t build_mpi_coll(builder_t *b, const hcrt__args_t *a)
{
    struct hcrt_comm *c = b->c;
    size_t es = hcrt_dtype_size(a->dtype), n = (size_t)c->size;
    /* Pure data movement: a device-aware MPI takes device pointers as they are. */
    bool dev = on_device(a) && !hcrt__mpi_takes(a->device), root = c->rank == a->root;
    mpi_args_t m = {.coll = a->coll, .send = a->send, .recv = a->recv, .count = (int)a->count,
                    .type = elem_type(a->dtype), .root = a->root};
    size_t sbytes = 0, rbytes = 0; /* staged extents */
    bool in_place = a->send == NULL && (a->coll == HCRT__COLL_ALLGATHERV || a->coll == HCRT__COLL_GATHER);
    m.in_place = in_place;
    switch (a->coll) {
    case HCRT__COLL_ALLGATHERV:
        HCRT_CHECK(int_array(b, a->counts, c->size, &m.counts));
        HCRT_CHECK(int_array(b, a->displs, c->size, &m.displs));
        m.count = (int)a->counts[c->rank];
        for (size_t i = 0; i < n; i++)
            if ((a->displs[i] + a->counts[i]) * es > rbytes)
                rbytes = (a->displs[i] + a->counts[i]) * es;
        sbytes = a->counts[c->rank] * es;
        break;
    case HCRT__COLL_ALLTOALLV:
        HCRT_CHECK(int_array(b, a->counts, c->size, &m.counts));
        HCRT_CHECK(int_array(b, a->displs, c->size, &m.displs));
        HCRT_CHECK(int_array(b, a->scounts, c->size, &m.scounts));
        HCRT_CHECK(int_array(b, a->sdispls, c->size, &m.sdispls));
        for (size_t i = 0; i < n; i++) {
            if ((a->displs[i] + a->counts[i]) * es > rbytes)
                rbytes = (a->displs[i] + a->counts[i]) * es;
            if ((a->sdispls[i] + a->scounts[i]) * es > sbytes)
                sbytes = (a->sdispls[i] + a->scounts[i]) * es;
        }
        break;
    case HCRT__COLL_ALLTOALL:
        sbytes = rbytes = a->count * es * n;
        break;
    case HCRT__COLL_GATHER:
        sbytes = a->count * es;
        rbytes = root ? a->count * es * n : 0;
        break;
    case HCRT__COLL_SCATTER:
        sbytes = root ? a->count * es * n : 0;
        rbytes = a->count * es;
        break;
    default:
        return hcrt__error(c->ctx, HCRT_ERR_INTERNAL, "collectives: no MPI mapping for this operation");
    }
    if (c->mpi == MPI_COMM_NULL)
        return local_copy(b, a, in_place);
    if (!dev)
        return add_mpi(b, &m); /* send NULL means in place (allgatherv, gather at root) */
    /* Device: stage the send extent in, run on host copies, copy back only the blocks the operation
     * defines (gaps of a v-layout stay untouched on the device, as MPI leaves them). */
    void *hs = NULL, *hr = NULL;
    if (rbytes)
        HCRT_CHECK(scratch(b, a->device, rbytes, &hr));
    if (sbytes && !in_place)
        HCRT_CHECK(scratch(b, a->device, sbytes, &hs));
    if (in_place) {
        /* allgatherv/gather in place: this rank's block is already inside recv. */
        size_t off = a->coll == HCRT__COLL_ALLGATHERV ? a->displs[c->rank] * es : (size_t)c->rank * a->count * es;
        size_t len = a->coll == HCRT__COLL_ALLGATHERV ? a->counts[c->rank] * es : a->count * es;
        HCRT_CHECK(stage_in(b, a, (unsigned char *)hr + off, (const unsigned char *)a->recv + off, len));
    } else if (sbytes) {
        HCRT_CHECK(stage_in(b, a, hs, a->send, sbytes));
    }
    m.send = hs;
    m.recv = hr;
    HCRT_CHECK(add_mpi(b, &m));
    if (a->coll == HCRT__COLL_ALLGATHERV || a->coll == HCRT__COLL_ALLTOALLV) {
        for (size_t i = 0; i < n; i++)
            HCRT_CHECK(stage_out(b, a, (unsigned char *)a->recv + a->displs[i] * es,
                                 (unsigned char *)hr + a->displs[i] * es, a->counts[i] * es));
    } else if (rbytes) {
        HCRT_CHECK(stage_out(b, a, a->recv, hr, rbytes));
    }
    return stage_out_wait(b);
}

/* The largest buffer of a call, in bytes. */
static size_t call_bytes(const hcrt__args_t *a, int n)
{
    size_t es = hcrt_dtype_size(a->dtype), total = 0;
    switch (a->coll) {
    case HCRT__COLL_ALLGATHERV:
    case HCRT__COLL_ALLTOALLV:
        for (int i = 0; i < n; i++)
            total += a->counts[i] + (a->scounts ? a->scounts[i] : 0) + a->displs[i] + (a->sdispls ? a->sdispls[i] : 0);
        return total * es;
    case HCRT__COLL_ALLREDUCE:
    case HCRT__COLL_REDUCE:
    case HCRT__COLL_BROADCAST:
        return a->count * es;
    default:
        return a->count * es * (size_t)n;
    }
}

hcrt_status_t hcrt__fast_path(struct hcrt_comm *comm, const hcrt__args_t *a, uint64_t seq)
{
    size_t bytes = a->count * hcrt_dtype_size(a->dtype);
    if (a->coll == HCRT__COLL_ALLREDUCE && a->blocking && !on_device(a) && comm->size > 1 && comm->has_shm &&
        comm->node_size == comm->size && a->count > 0 && bytes <= comm->shm.small && bytes <= comm->chunk &&
        choose(comm, a, bytes) == HCRT__ALGO_SHM)
        return hcrt__shm_allreduce_small_now(comm, a, seq);
    return HCRT_ERR_NOT_SUPPORTED;
}

hcrt_status_t hcrt__build(struct hcrt_comm *comm, const hcrt__args_t *a, hcrt__sched_t *s,
                          hcrt__block_t **blocks, int *nblocks)
{
    builder_t b = {.c = comm, .s = s, .blocks = blocks, .nblocks = nblocks};
    /* Small device buffers: a synchronous copy beats a handoff to the stream and an event; there is
     * nothing to overlap with anyway. */
    s->sync_copies = call_bytes(a, comm->size) <= HCRT__SYNC_COPY_MAX;
    switch (a->coll) {
    case HCRT__COLL_ALLREDUCE:
    case HCRT__COLL_REDUCE:
        HCRT_CHECK(build_allreduce(&b, a));
        break;
    case HCRT__COLL_BROADCAST:
        HCRT_CHECK(build_broadcast(&b, a));
        break;
    case HCRT__COLL_ALLGATHER:
        HCRT_CHECK(build_allgather(&b, a));
        break;
    case HCRT__COLL_REDUCE_SCATTER:
        HCRT_CHECK(build_reduce_scatter(&b, a));
        break;
    case HCRT__COLL_BARRIER:
        HCRT_CHECK(build_barrier(&b, a));
        break;
    default:
        HCRT_CHECK(build_mpi_coll(&b, a));
        break;
    }
    /* Trailing local steps (a final copy or scale) form the last round. */
    return hcrt__sched_round(s);
}
