/*
 * collectives/shm.c - the shared-memory path for ranks of one node (an MPI-3 shared window).
 *
 * Each node rank owns one segment of a window allocated once per communicator and touched once: a
 * control line (flags, the sequence number of the last collective entered, the pid), two small areas and
 * an input and a result area of HCRT_CHUNK_SIZE bytes each. Ranks synchronise by storing increasing
 * epoch numbers ("gen") into their flags and polling the others', with no MPI call on the way.
 *
 * Allreduce, small (fits a small area): every rank copies its input into its small area of parity gen&1,
 * raises ARRIVE, waits for everyone's, and reduces all areas in rank order itself: one synchronisation.
 * Allreduce, large: per chunk, copy in (all but this rank's own slice, which it reads straight from the
 * caller's buffer), ARRIVE barrier, each rank reduces its 1/n slice across every rank's input in rank
 * order into its result area, DONE barrier, each rank copies every slice out. The
 * element-wise order is rank order in both, so the bits do not depend on the chunking or the path.
 *
 * Reuse is safe because every operation ends with all ranks having raised its last epoch: a rank that
 * starts epoch g has seen every rank reach g-1, so nobody still reads what it wrote for g-2 (which is why
 * the small areas alternate) or for any earlier chunk.
 *
 * Epochs are taken when a schedule is built, and waits are for "at least g" (a fast peer may already
 * have raised g+1). So a rank whose call failed after taking its epochs must never raise a flag on this
 * window again, or a peer still waiting for g would be released by g+1 onto data the failed rank never
 * wrote: a failed call poisons the communicator and raises the rank's failure flag instead
 * (collectives/failure.c), which makes the waiting peers fail too.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/host_kernels.h"
#include "collectives/coll.h"

hcrt_status_t hcrt__shm_create(struct hcrt_comm *c)
{
    hcrt__shm_t *m = &c->shm;
    MPI_Info info;
    unsigned char *base = NULL;
    m->chunk = c->chunk;
    m->small = 64 * 1024;
    size_t seg = HCRT__SHM_CTL_BYTES + 2 * m->small + 4 * m->chunk;
    m->seg_bytes = seg;
    m->map_dev = m->map_refused = NULL;
    m->map_seg = NULL;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    int rc = MPI_Win_allocate_shared((MPI_Aint)seg, 1, info, c->node, &base, &m->win);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS)
        return hcrt__error(c->ctx, HCRT_ERR_MPI, "collectives: MPI_Win_allocate_shared(%zu bytes) failed", seg);
    m->seg = calloc((size_t)c->node_size, sizeof(*m->seg));
    m->ctl = calloc((size_t)c->node_size, sizeof(*m->ctl));
    if (m->seg == NULL || m->ctl == NULL) {
        MPI_Win_free(&m->win);
        free(m->seg);
        free(m->ctl);
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory");
    }
    for (int r = 0; r < c->node_size; r++) {
        MPI_Aint size = 0;
        int disp = 0;
        void *p = NULL;
        rc = MPI_Win_shared_query(m->win, r, &size, &disp, &p);
        if (rc != MPI_SUCCESS || p == NULL || (size_t)size < seg) {
            MPI_Win_free(&m->win);
            free(m->seg);
            free(m->ctl);
            return hcrt__error(c->ctx, HCRT_ERR_MPI, "collectives: MPI_Win_shared_query of node rank %d's segment "
                               "failed on rank %d (rc %d, %lld of %zu bytes)", r, c->rank, rc, (long long)size, seg);
        }
        m->seg[r] = p;
        m->ctl[r] = p;
    }
    /* Touch our whole segment now, once, so no collective pays for first touch. */
    memset(base, 0, seg);
    hcrt__shm_ctl_t *me = m->ctl[c->node_rank];
    for (int f = 0; f < HCRT__FLAGS; f++)
        atomic_store(&me->flag[f], 0);
    atomic_store(&me->entered, 0);
    atomic_store(&me->pid, (int64_t)getpid());
    m->gen = 0;
    /* Nobody reads a peer's control line before the peer cleared it. */
    rc = MPI_Barrier(c->node);
    if (rc != MPI_SUCCESS) {
        MPI_Win_free(&m->win);
        free(m->seg);
        free(m->ctl);
        return hcrt__error(c->ctx, HCRT_ERR_MPI, "collectives: MPI_Barrier of the node after creating its window "
                           "failed on rank %d (rc %d)", c->rank, rc);
    }
    c->has_shm = true;
    return HCRT_OK;
}

/*
 * MPI_Win_free synchronises the node's ranks, so it may be called only when every one of them will:
 * each rank announces that it is closing, and the window is freed only when all announced and none
 * failed. A rank whose communicator failed never frees (a peer may be dead or hung), and a rank that
 * sees a failed peer, or waits longer than HCRT_TIMEOUT for the others, does not either: the window then
 * stays mapped until the process ends, instead of a rank hanging in MPI_Win_free.
 */
static bool node_frees_window(struct hcrt_comm *c)
{
    hcrt__shm_t *m = &c->shm;
    double start = hcrt__now();
    unsigned spins = 0;
    atomic_store_explicit(&m->ctl[c->node_rank]->closing, 1, memory_order_release);
    if (c->failed != HCRT_OK)
        return false;
    for (;;) {
        bool all = true;
        for (int r = 0; r < c->node_size; r++) {
            if (atomic_load_explicit(&m->ctl[r]->closing, memory_order_acquire) == 0)
                all = false;
            if (atomic_load_explicit(&m->ctl[r]->failed_seq, memory_order_acquire) != 0)
                return false;
        }
        if (all)
            return true;
        if (c->timeout > 0 && hcrt__now() - start > c->timeout) {
            HCRT_WARN(COLL_SUBSYS, "collectives: node peers did not destroy the communicator within HCRT_TIMEOUT=%g s; "
                      "its shared window stays mapped", c->timeout);
            return false;
        }
        if (++spins < 1000) {
            hcrt__poll_relax(&spins);
        } else {
            struct timespec ts = {0, 1000 * 1000}; /* the others may be busy for long: leave them the cores */
            nanosleep(&ts, NULL);
        }
    }
}

void hcrt__shm_destroy(struct hcrt_comm *c)
{
    if (!c->has_shm)
        return;
    hcrt__shm_t *m = &c->shm;
    if (m->map_dev != NULL) /* no stream still uses the window: every collective waited for its work */
        for (int r = 0; r < c->node_size; r++)
            if (hcrt_host_unregister(m->map_dev, m->seg[r]) != HCRT_OK)
                HCRT_WARN(COLL_SUBSYS, "collectives: unregistering the node window from %s:%d failed: %s",
                              m->map_dev->be->name, m->map_dev->index, hcrt_last_error(c->ctx));
    free(m->map_seg);
    m->map_seg = NULL;
    m->map_dev = NULL;
    if (node_frees_window(c))
        MPI_Win_free(&c->shm.win);
    free(c->shm.seg);
    free(c->shm.ctl);
    c->has_shm = false;
}

hcrt_status_t hcrt__shm_map(struct hcrt_comm *c, hcrt_device_t *dev)
{
    hcrt__shm_t *m = &c->shm;
    if (m->map_dev == dev)
        return HCRT_OK;
    if (!c->shm_map || m->map_dev != NULL || m->map_refused == dev || !hcrt_device_maps_host(dev))
        return HCRT_ERR_NOT_SUPPORTED;
    unsigned char **map = calloc((size_t)c->node_size, sizeof(*map));
    if (map == NULL)
        return HCRT_ERR_NOT_SUPPORTED;
    int r = 0;
    for (; r < c->node_size; r++) {
        void *d = NULL;
        if (hcrt_host_register(dev, m->seg[r], m->seg_bytes, &d) != HCRT_OK)
            break;
        map[r] = d;
    }
    if (r < c->node_size) {
        /* Not fatal: the device then copies everything through the window (hcrt__shm_allreduce_dev). */
        HCRT_INFO(COLL_SUBSYS, "collectives: %s:%d cannot map the node window (%s); staging instead",
                      dev->be->name, dev->index, hcrt_last_error(c->ctx));
        while (r-- > 0)
            hcrt_host_unregister(dev, m->seg[r]);
        free(map);
        m->map_refused = dev;
        return HCRT_ERR_NOT_SUPPORTED;
    }
    m->map_seg = map;
    m->map_dev = dev;
    HCRT_DEBUG(COLL_SUBSYS, "collectives: node window (%d segments of %zu bytes) mapped for the kernels of %s:%d",
               c->node_size, m->seg_bytes, dev->be->name, dev->index);
    return HCRT_OK;
}

bool hcrt__shm_ready(const struct hcrt_comm *c, int flag, uint64_t value, int first, int count)
{
    int end = count ? first + count : c->node_size;
    for (int r = count ? first : 0; r < end; r++)
        if (atomic_load_explicit(&c->shm.ctl[r]->flag[flag], memory_order_acquire) < value)
            return false;
    return true;
}

hcrt_status_t hcrt__sched_shm_post(hcrt__sched_t *s, int flag, uint64_t value)
{
    hcrt__step_t st = {.kind = HCRT__STEP_SHM_POST, .flag = flag, .value = value};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_shm_wait(hcrt__sched_t *s, int flag, uint64_t value)
{
    hcrt__step_t st = {.kind = HCRT__STEP_SHM_WAIT, .flag = flag, .value = value};
    return hcrt__sched_add(s, &st);
}

hcrt_status_t hcrt__sched_shm_wait_one(hcrt__sched_t *s, int flag, uint64_t value, int node_rank)
{
    hcrt__step_t st = {.kind = HCRT__STEP_SHM_WAIT, .flag = flag, .value = value, .peer = node_rank, .bytes = 1};
    return hcrt__sched_add(s, &st);
}

/* dst = in[0] op in[1] op ... op in[n-1] (left to right), count elements at byte offset off of area(r). */
static hcrt_status_t reduce_chain(hcrt__sched_t *s, void *dst, unsigned char *(*area)(const hcrt__shm_t *, int),
                                  size_t off, size_t count)
{
    const hcrt__shm_t *m = &s->comm->shm;
    int n = s->comm->node_size;
    if (n == 1)
        return hcrt__sched_copy(s, dst, area(m, 0) + off, count * hcrt_dtype_size(s->dtype));
    HCRT_CHECK(hcrt__sched_reduce3(s, dst, area(m, 0) + off, area(m, 1) + off, count));
    for (int r = 2; r < n; r++)
        HCRT_CHECK(hcrt__sched_reduce3(s, dst, dst, area(m, r) + off, count));
    return HCRT_OK;
}

static unsigned char *small0(const hcrt__shm_t *m, int r) { return hcrt__shm_small(m, r, 0); }
static unsigned char *small1(const hcrt__shm_t *m, int r) { return hcrt__shm_small(m, r, 1); }

hcrt_status_t hcrt__shm_allreduce(hcrt__sched_t *s, const void *send, void *recv, size_t count)
{
    struct hcrt_comm *c = s->comm;
    hcrt__shm_t *m = &c->shm;
    size_t es = hcrt_dtype_size(s->dtype), bytes = count * es;
    int n = c->node_size, me = c->node_rank;
    if (count == 0)
        return HCRT_OK;
    if (n == 1) /* alone on its node (hierarchical with one rank per node) */
        return hcrt__sched_copy(s, recv, send, bytes);
    if (bytes <= m->small) {
        uint64_t g = ++m->gen;
        HCRT_CHECK(hcrt__sched_copy(s, hcrt__shm_small(m, me, (int)(g & 1)), send, bytes));
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_round(s));
        HCRT_CHECK(reduce_chain(s, recv, (g & 1) ? small1 : small0, 0, count));
        return hcrt__sched_round(s);
    }
    size_t per = m->chunk / es;
    for (size_t done = 0; done < count; done += per) {
        size_t cc = count - done < per ? count - done : per;
        size_t o = done * es;
        const unsigned char *in = (const unsigned char *)send + o;
        uint64_t g = ++m->gen;
        size_t base = cc / (size_t)n, rem = cc % (size_t)n;
        size_t lo = (size_t)me * base + ((size_t)me < rem ? (size_t)me : rem);
        size_t len = base + ((size_t)me < rem ? 1 : 0);
        /* Peers read every slice of our input but our own; we read that one straight from send. */
        HCRT_CHECK(hcrt__sched_copy(s, hcrt__shm_in(m, me, g), in, lo * es));
        HCRT_CHECK(hcrt__sched_copy(s, hcrt__shm_in(m, me, g) + (lo + len) * es, in + (lo + len) * es,
                                    (cc - lo - len) * es));
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_round(s));
        if (len) {
            unsigned char *dst = hcrt__shm_res(m, me, g) + lo * es;
            const unsigned char *src0 = me == 0 ? in + lo * es : hcrt__shm_in(m, 0, g) + lo * es;
            const unsigned char *src1 = me == 1 ? in + lo * es : hcrt__shm_in(m, 1, g) + lo * es;
            HCRT_CHECK(hcrt__sched_reduce3(s, dst, src0, src1, len));
            for (int r = 2; r < n; r++)
                HCRT_CHECK(hcrt__sched_reduce3(s, dst, dst, r == me ? in + lo * es : hcrt__shm_in(m, r, g) + lo * es,
                                               len));
        }
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_round(s));
        for (int r = 0; r < n; r++) {
            size_t rlo = (size_t)r * base + ((size_t)r < rem ? (size_t)r : rem);
            size_t rlen = base + ((size_t)r < rem ? 1 : 0);
            unsigned char *dst = (unsigned char *)recv + o + rlo * es;
            const unsigned char *src = hcrt__shm_res(m, r, g) + rlo * es;
            if (s->stream_out)
                HCRT_CHECK(hcrt__sched_copy_out(s, dst, src, rlen * es));
            else
                HCRT_CHECK(hcrt__sched_copy(s, dst, src, rlen * es));
        }
    }
    return hcrt__sched_round(s);
}

/*
 * Allreduce of device memory on the node, in chunks larger than the small areas, without host copies:
 * the device copies its input straight into this rank's input area and the result slices straight
 * from every rank's result area. Chunk k+1 is copied in while chunk k is reduced (areas alternate by
 * epoch parity), and chunk k's results are copied out while chunk k+1 starts; waiting for the copy-in
 * of chunk k+2 before its ARRIVE also proves chunk k's copy-out done (one stream runs them in order),
 * so no rank rewrites a result area still being read. The epochs are those of the host path, so ranks
 * of one call may mix the two. recv NULL discards the result (reduce, non-root); `scale` is 1/n for
 * avg, else 0.
 */
hcrt_status_t hcrt__shm_allreduce_dev(hcrt__sched_t *s, const void *send, void *recv, size_t count, double scale)
{
    struct hcrt_comm *c = s->comm;
    hcrt__shm_t *m = &c->shm;
    size_t es = hcrt_dtype_size(s->dtype), per = m->chunk / es;
    int n = c->node_size, me = c->node_rank;
    size_t nchunk = (count + per - 1) / per;
    uint64_t g0 = m->gen + 1;
    if (count == 0)
        return HCRT_OK;
    m->gen += nchunk;
    HCRT_CHECK(hcrt__sched_d2h(s, hcrt__shm_in(m, me, g0), send, (count < per ? count : per) * es, (int)(g0 & 1)));
    for (size_t k = 0; k < nchunk; k++) {
        uint64_t g = g0 + k;
        size_t o = k * per, cc = count - o < per ? count - o : per;
        size_t base = cc / (size_t)n, rem = cc % (size_t)n;
        size_t lo = (size_t)me * base + ((size_t)me < rem ? (size_t)me : rem);
        size_t len = base + ((size_t)me < rem ? 1 : 0);
        HCRT_CHECK(hcrt__sched_event(s, (int)(g & 1)));
        HCRT_CHECK(hcrt__sched_round(s));
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_round(s));
        if (k + 1 < nchunk) {
            size_t o1 = o + per, c1 = count - o1 < per ? count - o1 : per;
            HCRT_CHECK(hcrt__sched_d2h(s, hcrt__shm_in(m, me, g + 1), (const unsigned char *)send + o1 * es, c1 * es,
                                       (int)((g + 1) & 1)));
        }
        if (len) {
            unsigned char *dst = hcrt__shm_res(m, me, g) + lo * es;
            HCRT_CHECK(hcrt__sched_reduce3(s, dst, hcrt__shm_in(m, 0, g) + lo * es, hcrt__shm_in(m, 1, g) + lo * es,
                                           len));
            for (int r = 2; r < n; r++)
                HCRT_CHECK(hcrt__sched_reduce3(s, dst, dst, hcrt__shm_in(m, r, g) + lo * es, len));
            if (scale != 0)
                HCRT_CHECK(hcrt__sched_scale(s, dst, len, scale));
        }
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_round(s));
        for (int r = 0; r < n && recv != NULL; r++) {
            size_t rlo = (size_t)r * base + ((size_t)r < rem ? (size_t)r : rem);
            size_t rlen = base + ((size_t)r < rem ? 1 : 0);
            if (rlen)
                HCRT_CHECK(hcrt__sched_h2d(s, (unsigned char *)recv + (o + rlo) * es,
                                           hcrt__shm_res(m, r, g) + rlo * es, rlen * es, 2 + (int)(g & 1)));
        }
    }
    if (recv != NULL) {
        HCRT_CHECK(hcrt__sched_event(s, 2 + (int)((g0 + nchunk - 1) & 1)));
        HCRT_CHECK(hcrt__sched_round(s));
    }
    return HCRT_OK;
}

/* The slice [lo, lo+len) of a chunk of cc elements that node rank r reduces. */
static void slice_of(size_t cc, int n, int r, size_t *lo, size_t *len)
{
    size_t base = cc / (size_t)n, rem = cc % (size_t)n;
    *lo = (size_t)r * base + ((size_t)r < rem ? (size_t)r : rem);
    *len = base + ((size_t)r < rem ? 1 : 0);
}

/* Mapped path, chunk k: the device copies every slice of its input but its own into its input area. */
static hcrt_status_t mapped_copy_in(hcrt__sched_t *s, const unsigned char *in, size_t cc, uint64_t g, int ev)
{
    const hcrt__shm_t *m = &s->comm->shm;
    size_t es = hcrt_dtype_size(s->dtype), lo, len;
    slice_of(cc, s->comm->node_size, s->comm->node_rank, &lo, &len);
    if (lo)
        HCRT_CHECK(hcrt__sched_d2h(s, hcrt__shm_in(m, s->comm->node_rank, g), in, lo * es, ev));
    if (lo + len < cc)
        HCRT_CHECK(hcrt__sched_d2h(s, hcrt__shm_in(m, s->comm->node_rank, g) + (lo + len) * es, in + (lo + len) * es,
                                   (cc - lo - len) * es, ev));
    if (lo == 0 && len == cc) /* nothing to copy in (fewer elements than ranks): the event still marks it */
        return hcrt__sched_record(s, ev);
    return HCRT_OK;
}

/* This rank's slice of chunk g, reduced by the device in rank order into its result area (mapped). */
static hcrt_status_t mapped_kernels(hcrt__sched_t *s, const unsigned char *send_chunk, size_t cc, uint64_t g,
                                    double scale)
{
    const hcrt__shm_t *m = &s->comm->shm;
    int n = s->comm->node_size, me = s->comm->node_rank;
    size_t es = hcrt_dtype_size(s->dtype), lo, len;
    slice_of(cc, n, me, &lo, &len);
    if (len == 0)
        return HCRT_OK;
    const size_t in_off = (size_t)(hcrt__shm_in(m, 0, g) - m->seg[0]) + lo * es;
    const size_t res_off = (size_t)(hcrt__shm_res(m, 0, g) - m->seg[0]) + lo * es;
    const unsigned char *own = send_chunk + lo * es;
    unsigned char *dst = m->map_seg[me] + res_off;
    HCRT_CHECK(hcrt__sched_dreduce3(s, dst, me == 0 ? own : m->map_seg[0] + in_off,
                                    me == 1 ? own : m->map_seg[1] + in_off, len));
    for (int r = 2; r < n; r++)
        HCRT_CHECK(hcrt__sched_dreduce3(s, dst, dst, r == me ? own : m->map_seg[r] + in_off, len));
    if (scale != 0)
        HCRT_CHECK(hcrt__sched_dscale(s, dst, len, scale));
    return HCRT_OK;
}

/*
 * Allreduce of device memory on the node, the device reducing in the window itself (registered with
 * hcrt__shm_map): per chunk the device copies every slice of its input but its own into its input area
 * (as the host path does); after ARRIVE its kernels reduce this rank's slice across every rank's input
 * in rank order, its own operand read from the caller's device buffer and the others straight from the
 * window, into its result area; after DONE the device copies every slice out. A rank moves the bytes of
 * the host path (its own slice is never copied in or reduced on the host), and its host core only waits.
 *
 * Stream order: kernels(k), copy-in(k+1), [DONE k], copy-out(k), kernels(k+1), copy-in(k+2), ... The
 * copy-in of chunk k+2, which rewrites the input area of chunk k, is queued after every rank raised DONE
 * for k (nobody reads that area any more); a rank raises ARRIVE for k+2 only once its copy-in of k+2
 * completed, so after its copy-out of k, and no result area is rewritten while it is read. Epochs and
 * area contents are those of the host path, so the ranks of one call may mix this path, the host path
 * and hcrt__shm_allreduce_dev.
 */
hcrt_status_t hcrt__shm_allreduce_mapped(hcrt__sched_t *s, const void *send, void *recv, size_t count, double scale)
{
    struct hcrt_comm *c = s->comm;
    hcrt__shm_t *m = &c->shm;
    size_t es = hcrt_dtype_size(s->dtype), per = m->chunk / es;
    int n = c->node_size;
    size_t nchunk = (count + per - 1) / per;
    uint64_t g0 = m->gen + 1;
    enum { EV_RED = 2, EV_OUT = 3 }; /* and 0/1: copy-in of even/odd epochs */
    if (count == 0)
        return HCRT_OK;
    s->sync_copies = false; /* every copy and kernel goes on the stream, in the order below */
    m->gen += nchunk;
    HCRT_CHECK(mapped_copy_in(s, send, count < per ? count : per, g0, (int)(g0 & 1)));
    for (size_t k = 0; k < nchunk; k++) {
        uint64_t g = g0 + k;
        size_t o = k * per, cc = count - o < per ? count - o : per;
        HCRT_CHECK(hcrt__sched_event(s, (int)(g & 1)));
        HCRT_CHECK(hcrt__sched_round(s));
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_ARRIVE, g));
        HCRT_CHECK(hcrt__sched_round(s));
        HCRT_CHECK(mapped_kernels(s, (const unsigned char *)send + o * es, cc, g, scale));
        HCRT_CHECK(hcrt__sched_record(s, EV_RED));
        if (k + 1 < nchunk) {
            size_t o1 = o + per, c1 = count - o1 < per ? count - o1 : per;
            HCRT_CHECK(mapped_copy_in(s, (const unsigned char *)send + o1 * es, c1, g + 1, (int)((g + 1) & 1)));
        }
        HCRT_CHECK(hcrt__sched_event(s, EV_RED));
        HCRT_CHECK(hcrt__sched_round(s));
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_round(s));
        for (int r = 0; r < n && recv != NULL; r++) {
            size_t rlo, rlen;
            slice_of(cc, n, r, &rlo, &rlen);
            if (rlen)
                HCRT_CHECK(hcrt__sched_h2d(s, (unsigned char *)recv + (o + rlo) * es, hcrt__shm_res(m, r, g) + rlo * es,
                                           rlen * es, EV_OUT));
        }
    }
    if (recv != NULL) {
        HCRT_CHECK(hcrt__sched_event(s, EV_OUT));
        HCRT_CHECK(hcrt__sched_round(s));
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__shm_broadcast(hcrt__sched_t *s, void *buf, size_t bytes, int root)
{
    struct hcrt_comm *c = s->comm;
    hcrt__shm_t *m = &c->shm;
    int me = c->node_rank;
    for (size_t o = 0; o < bytes; o += m->chunk) {
        size_t cb = bytes - o < m->chunk ? bytes - o : m->chunk;
        uint64_t g = ++m->gen;
        if (me == root) {
            HCRT_CHECK(hcrt__sched_copy(s, hcrt__shm_in(m, me, g), (unsigned char *)buf + o, cb));
            HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_ARRIVE, g));
        } else {
            HCRT_CHECK(hcrt__sched_shm_wait_one(s, HCRT__FLAG_ARRIVE, g, root));
            HCRT_CHECK(hcrt__sched_round(s));
            HCRT_CHECK(hcrt__sched_copy(s, (unsigned char *)buf + o, hcrt__shm_in(m, root, g), cb));
        }
        HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_DONE, g));
        HCRT_CHECK(hcrt__sched_round(s));
    }
    return HCRT_OK;
}

/* One epoch: every node rank raises ARRIVE and waits for all the others'. */
hcrt_status_t hcrt__shm_barrier(hcrt__sched_t *s)
{
    uint64_t g = ++s->comm->shm.gen;
    HCRT_CHECK(hcrt__sched_shm_post(s, HCRT__FLAG_ARRIVE, g));
    HCRT_CHECK(hcrt__sched_shm_wait(s, HCRT__FLAG_ARRIVE, g));
    return hcrt__sched_round(s);
}

/*
 * The small allreduce again, for a blocking call on host memory, straight-line: the same epoch, areas
 * and rank-order arithmetic as the schedule above (so either may serve any rank of a call), without
 * building anything. This is the latency of an 8-byte allreduce.
 */
hcrt_status_t hcrt__shm_allreduce_small_now(struct hcrt_comm *c, const hcrt__args_t *a, uint64_t seq)
{
    hcrt__shm_t *m = &c->shm;
    size_t bytes = a->count * hcrt_dtype_size(a->dtype);
    int n = c->node_size;
    uint64_t g = ++m->gen;
    int p = (int)(g & 1);
    memcpy(hcrt__shm_small(m, c->node_rank, p), a->send, bytes);
    atomic_store_explicit(&m->ctl[c->node_rank]->flag[HCRT__FLAG_ARRIVE], g, memory_order_release);
    HCRT_CHECK(hcrt__wait_flags(c, HCRT__FLAG_ARRIVE, g, "allreduce", seq, bytes));
    hcrt_status_t status = hcrt__host_reduce3(a->recv, hcrt__shm_small(m, 0, p), hcrt__shm_small(m, 1, p), a->count,
                                              a->dtype, a->op);
    for (int r = 2; r < n && status == HCRT_OK; r++)
        status = hcrt__host_reduce3(a->recv, a->recv, hcrt__shm_small(m, r, p), a->count, a->dtype, a->op);
    if (status == HCRT_OK && a->op == HCRT_OP_AVG)
        status = hcrt__host_scale(a->recv, a->count, a->dtype, 1.0 / c->size);
    if (status != HCRT_OK)
        return hcrt__error(c->ctx, status, "collectives: host reduction failed");
    return HCRT_OK;
}
