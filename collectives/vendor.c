/*
 * collectives/vendor.c - vendor collective libraries (NCCL, RCCL, simccl) inside groups of same-vendor
 * ranks, hcrt between the groups (collectives/vendor.h; the schedules are in vendor_build.c).
 *
 * Decided once, not per call. When a communicator is created every rank describes its vendor library in
 * the rank table it exchanges anyway (backend and vendor name, whether it reaches only its node, the
 * smallest call worth it), so every rank derives the same groups; a call then takes the vendor-group
 * path when its operation and size say so (allreduce, reduce_scatter, allgather and broadcast, blocking,
 * at least HCRT_VENDOR_MIN_BYTES), which every rank of a matching call knows alike. Nothing is asked of
 * the peers per call: a rank whose buffer is not on its vendor device stages it through device scratch.
 *
 * The vendor communicators are set up by the first call that needs them, under that call's deadline:
 * the first rank of each group makes the unique id, the group broadcasts it, each member joins, and all
 * ranks of the communicator then agree on whether every member of every group succeeded. If one did not,
 * every rank falls back to hcrt's own paths for this communicator (with a warning naming the rank), so a
 * failed set-up on one rank never leaves its peers waiting (issue 9).
 *
 * Failures: the vendor operations and their stream waits run under the collective deadline; when it
 * passes (or a peer dies) the job ends through failure.c, which first calls hcrt__vendor_abort() so that
 * no rank stays inside the vendor library. A failed vendor operation aborts this rank's vendor
 * communicator and poisons the vendor path: later calls that would take it return the first failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collectives/vendor.h"

/* HCRT_VENDOR_MIN_BYTES=auto: the size from which the library beats hcrt's own path. simccl hands each
 * operation to the device's stream worker and back, and a vendor-group call synchronises its ranks
 * several times: tens of microseconds, where hcrt's inline shared-memory allreduce takes about one, so
 * hcrt's path wins below about a megabyte (docs/performance.md). NCCL and RCCL: always (GPU buffers
 * would otherwise be staged through the host, which costs more than the library at every size). */
#define SIMCCL_AUTO_MIN_BYTES ((int64_t)1 << 20)

static const char *const vkind_names[] = {"allreduce", "reduce_scatter", "allgather", "broadcast"};

void hcrt__vendor_describe(const struct hcrt_comm *c, hcrt__rank_wire_t *w)
{
    hcrt_device_t *dev = c->ctx->selected;
    memset(w->vendor, 0, sizeof(w->vendor));
    w->vendor_local = 0;
    w->vendor_min_bytes = 0;
    if (!hcrt__config_bool(c->ctx, "HCRT_VENDOR_COLL") || c->algo != HCRT__ALGO_AUTO || dev == NULL ||
        hcrt__device_is_host(dev) || !(dev->bprops.caps & HCRT_CAP_VENDOR_COLL))
        return;
    if (hcrt__backend_coll_probe(dev->be) != HCRT_OK) {
        HCRT_INFO(COLL_SUBSYS, "collectives: %s device %d: no vendor collectives: %s", dev->be->name, dev->index,
                  dev->be->coll_reason);
        return;
    }
    snprintf(w->vendor, sizeof(w->vendor), "%.15s/%.23s", dev->be->name, dev->bprops.vendor);
    w->vendor_local = (dev->bprops.caps & HCRT_CAP_VENDOR_COLL_LOCAL) != 0;
    int64_t min = hcrt__config_int(c->ctx, "HCRT_VENDOR_MIN_BYTES");
    if (min < 0)
        min = strcmp(dev->be->name, "sim") == 0 ? SIMCCL_AUTO_MIN_BYTES : 0;
    w->vendor_min_bytes = min;
}

static size_t gcd_z(size_t a, size_t b)
{
    while (b != 0) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* "sim/hcrt-sim-a: ranks 0, 1" into buf. */
static const char *group_text(const struct hcrt_comm *c, int h, char *buf, size_t len)
{
    const hcrt__vendor_t *v = c->vendor;
    const hcrt__vgroup_t *gr = &v->groups[h];
    size_t used =
        (size_t)snprintf(buf, len, "%s: rank%s", c->info[v->members[gr->first]].vendor, gr->size > 1 ? "s" : "");
    for (int i = 0; i < gr->size && used + 16 < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s %d", i ? "," : "", v->members[gr->first + i]);
    return buf;
}

static void vendor_free(hcrt__vendor_t *v)
{
    if (v == NULL)
        return;
    if (v->xwin != MPI_WIN_NULL)
        MPI_Win_free(&v->xwin);
    free(v->xline);
    free(v->xslot);
    free(v->node_rank_of);
    if (v->gmpi != MPI_COMM_NULL)
        MPI_Comm_free(&v->gmpi);
    if (v->mpi != MPI_COMM_NULL)
        MPI_Comm_free(&v->mpi);
    free(v->groups);
    free(v->members);
    free(v->group_of);
    free(v->index_of);
    free(v);
}

hcrt_status_t hcrt__vendor_setup(struct hcrt_comm *c)
{
    const int n = c->size;
    int nvendor = 0;
    for (int r = 0; r < n; r++)
        nvendor += c->info[r].vendor[0] != '\0';
    if (n < 2 || nvendor < 2)
        return HCRT_OK;
    hcrt__vendor_t *v = calloc(1, sizeof(*v));
    int *lead = calloc((size_t)n, sizeof(int)), *fill = calloc((size_t)n, sizeof(int));
    if (v != NULL) {
        v->mpi = v->gmpi = MPI_COMM_NULL;
        v->xwin = MPI_WIN_NULL;
        v->groups = calloc((size_t)n, sizeof(*v->groups));
        v->members = calloc((size_t)n, sizeof(int));
        v->group_of = calloc((size_t)n, sizeof(int));
        v->index_of = calloc((size_t)n, sizeof(int));
    }
    if (v == NULL || lead == NULL || fill == NULL || v->groups == NULL || v->members == NULL || v->group_of == NULL ||
        v->index_of == NULL) {
        free(lead);
        free(fill);
        vendor_free(v);
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "hcrt_comm: no memory for the vendor groups");
    }
    /* Groups in order of their lowest rank: same library (and node, for a node-local one). */
    int ng = 0;
    for (int r = 0; r < n; r++) {
        const hcrt__rank_wire_t *w = &c->info[r];
        int h = -1;
        for (int x = 0; x < ng && w->vendor[0] != '\0' && h < 0; x++) {
            const hcrt__rank_wire_t *f = &c->info[lead[x]];
            if (strcmp(f->vendor, w->vendor) == 0 && (!w->vendor_local || c->node_of[lead[x]] == c->node_of[r]))
                h = x;
        }
        if (h < 0) {
            h = ng++;
            lead[h] = r;
        }
        v->group_of[r] = h;
        v->index_of[r] = v->groups[h].size++;
    }
    v->ngroups = ng;
    bool any = false;
    size_t unit = 1;
    for (int h = 0, first = 0; h < ng; h++) {
        hcrt__vgroup_t *gr = &v->groups[h];
        gr->first = first;
        first += gr->size;
        gr->vendor = gr->size >= 2 && c->info[lead[h]].vendor[0] != '\0';
        if (gr->vendor) {
            any = true;
            v->maxm = gr->size > v->maxm ? gr->size : v->maxm;
            unit = unit / gcd_z(unit, (size_t)gr->size) * (size_t)gr->size;
            if (unit > ((size_t)1 << 16))
                any = false; /* segments could not stay small: no vendor path (groups of odd sizes) */
        }
    }
    for (int r = 0; r < n; r++)
        v->members[v->groups[v->group_of[r]].first + fill[v->group_of[r]]++] = r;
    for (int r = 0; r < n; r++)
        if (v->groups[v->group_of[r]].vendor && (size_t)c->info[r].vendor_min_bytes > v->min_bytes)
            v->min_bytes = (size_t)c->info[r].vendor_min_bytes;
    free(lead);
    free(fill);
    if (!any) {
        vendor_free(v);
        return HCRT_OK;
    }
    v->seg_elems_unit = unit;
    if ((v->node_rank_of = malloc((size_t)n * sizeof(int))) == NULL) {
        vendor_free(v);
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "hcrt_comm: no memory for the vendor groups");
    }
    for (int r = 0; r < n; r++)
        v->node_rank_of[r] = -1;
    for (int nr = 0; nr < c->node_size; nr++)
        v->node_rank_of[c->node_ranks[nr]] = nr;
    v->g = v->group_of[c->rank];
    v->j = v->index_of[c->rank];
    v->m = v->groups[v->g].size;
    v->dev = v->groups[v->g].vendor ? c->ctx->selected : NULL;
    v->state = HCRT__VSTATE_NEW;
    if (MPI_Comm_dup(c->mpi, &v->mpi) != MPI_SUCCESS ||
        MPI_Comm_split(v->mpi, v->dev ? v->g : MPI_UNDEFINED, c->rank, &v->gmpi) != MPI_SUCCESS) {
        vendor_free(v);
        return hcrt__error(c->ctx, HCRT_ERR_MPI, "hcrt_comm: splitting the vendor groups failed on rank %d", c->rank);
    }
    MPI_Comm_set_errhandler(v->mpi, MPI_ERRORS_RETURN);
    if (v->gmpi != MPI_COMM_NULL)
        MPI_Comm_set_errhandler(v->gmpi, MPI_ERRORS_RETURN);
    c->vendor = v;
    if (c->rank == 0 && hcrt__log_enabled(HCRT_LOG_DEBUG, COLL_SUBSYS)) {
        char text[512];
        for (int h = 0; h < ng; h++)
            HCRT_DEBUG(COLL_SUBSYS, "collectives: group %d (%s): %s", h, v->groups[h].vendor ? "vendor" : "hcrt",
                       group_text(c, h, text, sizeof(text)));
    }
    return HCRT_OK;
}

/* ---- setting up the vendor communicators -------------------------------------------------------------- */

typedef struct agree {
    void *buf;
    int count;
    int *all; /* allgather */
    MPI_Comm comm;
} agree_t;

static int start_bcast(hcrt__sched_t *s, void *arg, MPI_Request *req)
{
    (void)s;
    agree_t *g = arg;
    return MPI_Ibcast(g->buf, g->count, MPI_BYTE, 0, g->comm, req);
}

static int start_allgather(hcrt__sched_t *s, void *arg, MPI_Request *req)
{
    (void)s;
    agree_t *g = arg;
    return MPI_Iallgather(g->buf, 1, MPI_INT, g->all, 1, MPI_INT, g->comm, req);
}

/* Runs one nonblocking MPI collective to completion under the call's deadline. */
static hcrt_status_t agree(struct hcrt_comm *c, hcrt__start_mpi_fn fn, agree_t *arg, const char *opname, uint64_t seq,
                           size_t bytes)
{
    hcrt__sched_t s;
    hcrt__sched_init(&s, c, HCRT_U8, HCRT_OP_SUM, (int)(seq % HCRT__TAG_SPAN));
    hcrt_status_t status = hcrt__sched_mpi(&s, fn, arg);
    if (status == HCRT_OK)
        status = hcrt__sched_round(&s);
    if (status == HCRT_OK)
        status = hcrt__run_blocking(c, &s, opname, seq, bytes);
    hcrt__sched_fini(&s);
    return status;
}

/* The exchange window of the node's ranks (collective over the node; see vendor.h). */
static hcrt_status_t xwin_create(struct hcrt_comm *c)
{
    hcrt__vendor_t *v = c->vendor;
    if (c->node_size < 2)
        return HCRT_OK;
    /* A slot holds the largest partial of one segment: a segment is about HCRT_CHUNK_SIZE times the
     * largest group's size (vendor_build.c), all of which a rank outside a vendor group contributes. */
    v->xslot_bytes = ((c->chunk * (size_t)v->maxm + 4096) + 63) & ~(size_t)63;
    size_t seg = sizeof(hcrt__xline_t) + 2 * v->xslot_bytes;
    unsigned char *base = NULL;
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    int rc = MPI_Win_allocate_shared((MPI_Aint)seg, 1, info, c->node, &base, &v->xwin);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
        v->xwin = MPI_WIN_NULL;
        return hcrt__error(c->ctx, HCRT_ERR_MPI,
                           "collectives: MPI_Win_allocate_shared(%zu bytes, vendor exchange) "
                           "failed on rank %d",
                           seg, c->rank);
    }
    v->xline = calloc((size_t)c->node_size, sizeof(*v->xline));
    v->xslot = calloc((size_t)c->node_size, sizeof(*v->xslot));
    if (v->xline == NULL || v->xslot == NULL)
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for the vendor exchange window");
    for (int nr = 0; nr < c->node_size; nr++) {
        MPI_Aint size = 0;
        int disp = 0;
        unsigned char *p = NULL;
        if (MPI_Win_shared_query(v->xwin, nr, &size, &disp, &p) != MPI_SUCCESS || p == NULL)
            return hcrt__error(c->ctx, HCRT_ERR_MPI, "collectives: MPI_Win_shared_query (vendor exchange) failed");
        v->xline[nr] = (hcrt__xline_t *)p;
        v->xslot[nr] = p + sizeof(hcrt__xline_t);
    }
    /* Touch this rank's slots once (first touch is slow here), and start the epochs at zero. */
    memset(base, 0, seg);
    atomic_store(&v->xline[c->node_rank]->ready, 0);
    atomic_store(&v->xline[c->node_rank]->done, 0);
    v->xgen = 0;
    return MPI_Barrier(c->node) == MPI_SUCCESS
               ? HCRT_OK
               : hcrt__error(c->ctx, HCRT_ERR_MPI, "collectives: MPI_Barrier (vendor exchange) failed");
}

static hcrt_status_t vendor_init(struct hcrt_comm *c, const char *opname, uint64_t seq, size_t bytes)
{
    hcrt__vendor_t *v = c->vendor;
    hcrt_status_t status = HCRT_OK;
    int ok = 1, *all = NULL;
    char why[512] = "";
    if (v->dev != NULL) {
        const hcrt_backend_v1_t *ops = v->dev->be->ops;
        void *state = v->dev->be->state;
        size_t idsize = ops->coll_unique_id_size;
        unsigned char *buf = calloc(1, sizeof(int) + idsize);
        if (buf == NULL)
            return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for the vendor id");
        int leader_ok = 1;
        if (v->j == 0 && ops->coll_get_unique_id(state, buf + sizeof(int)) != HCRT_OK) {
            leader_ok = 0;
            snprintf(why, sizeof(why), "coll_get_unique_id: %s", ops->last_error(state));
        }
        memcpy(buf, &leader_ok, sizeof(int));
        agree_t bc = {.buf = buf, .count = (int)(sizeof(int) + idsize), .comm = v->gmpi};
        status = agree(c, start_bcast, &bc, opname, seq, bytes);
        memcpy(&leader_ok, buf, sizeof(int));
        if (status == HCRT_OK && !leader_ok) {
            ok = 0;
            if (v->j != 0)
                snprintf(why, sizeof(why), "the first rank of its group could not make the unique id");
        } else if (status == HCRT_OK &&
                   ops->coll_init(state, v->dev->index, buf + sizeof(int), v->m, v->j, &v->coll) != HCRT_OK) {
            ok = 0;
            v->coll = NULL;
            snprintf(why, sizeof(why), "coll_init: %s", ops->last_error(state));
        }
        free(buf);
        if (status != HCRT_OK)
            return status;
    }
    /* Everyone learns who failed, so that every rank takes the same path from here on. */
    all = calloc((size_t)c->size, sizeof(int));
    if (all == NULL)
        return hcrt__error(c->ctx, HCRT_ERR_NO_MEMORY, "collectives: no memory for the vendor agreement");
    agree_t ag = {.buf = &ok, .all = all, .comm = v->mpi};
    status = agree(c, start_allgather, &ag, opname, seq, bytes);
    if (status != HCRT_OK) {
        free(all);
        return status;
    }
    char failed[256] = "";
    size_t used = 0;
    for (int r = 0; r < c->size; r++)
        if (!all[r] && used + 16 < sizeof(failed))
            used += (size_t)snprintf(failed + used, sizeof(failed) - used, "%s%d", used ? ", " : "", r);
    free(all);
    if (used == 0) {
        v->state = HCRT__VSTATE_READY;
        HCRT_DEBUG(COLL_SUBSYS, "collectives: vendor communicators set up (%d groups)", v->ngroups);
        return v->ngroups > 1 ? xwin_create(c) : HCRT_OK;
    }
    if (v->coll != NULL) {
        v->dev->be->ops->coll_abort(v->dev->be->state, v->coll);
        v->coll = NULL;
    }
    v->state = HCRT__VSTATE_OFF;
    if (!ok)
        HCRT_WARN(COLL_SUBSYS, "collectives: the %s vendor collectives could not be set up on rank %d: %s",
                  v->dev->be->name, c->rank, why);
    if (c->rank == 0)
        HCRT_WARN(COLL_SUBSYS,
                  "collectives: vendor collectives failed to set up on rank(s) %s; this communicator "
                  "uses hcrt's own paths",
                  failed);
    return HCRT_OK;
}

/* ---- running a call ---------------------------------------------------------------------------------- */

hcrt_status_t hcrt__vendor_scratch(struct hcrt_comm *c, size_t bytes, void **out)
{
    hcrt__vendor_t *v = c->vendor;
    if (bytes > v->dscratch_bytes) {
        size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
        void *p = NULL;
        if (v->dscratch != NULL)
            hcrt_mem_free(v->dev, v->dscratch);
        v->dscratch = NULL;
        v->dscratch_bytes = 0;
        HCRT_CHECK(hcrt_mem_alloc(v->dev, want, &p));
        v->dscratch = p;
        v->dscratch_bytes = want;
    }
    *out = v->dscratch;
    return HCRT_OK;
}

/* A vendor operation failed on this rank: abort its vendor communicator (peers waiting in it leave) and
 * answer the same failure from now on. */
static hcrt_status_t vendor_fail(struct hcrt_comm *c, hcrt_status_t status, const char *opname, uint64_t seq)
{
    hcrt__vendor_t *v = c->vendor;
    char grp[256];
    if (v->coll != NULL) {
        v->dev->be->ops->coll_abort(v->dev->be->state, v->coll);
        v->coll = NULL;
    }
    v->state = HCRT__VSTATE_FAILED;
    v->failure = status;
    snprintf(v->failure_text, sizeof(v->failure_text),
             "collectives: %s #%llu failed on rank %d in vendor group %s (its vendor communicator was aborted, "
             "later vendor-group calls fail too): %s",
             opname, (unsigned long long)seq, c->rank, group_text(c, v->g, grp, sizeof(grp)), hcrt_last_error(c->ctx));
    HCRT_ERROR(COLL_SUBSYS, "%s", v->failure_text);
    return hcrt__error(c->ctx, status, "%s", v->failure_text);
}

/* Bytes of the send and receive buffers of a call (for staging other devices' buffers through the host). */
static void call_extents(const struct hcrt_comm *c, const hcrt__args_t *a, size_t *sbytes, size_t *rbytes)
{
    size_t es = hcrt_dtype_size(a->dtype), one = a->count * es, all = one * (size_t)c->size;
    *sbytes = a->coll == HCRT__COLL_REDUCE_SCATTER ? all : one;
    *rbytes = a->coll == HCRT__COLL_ALLGATHER ? all : one;
}

hcrt_status_t hcrt__vendor_run(struct hcrt_comm *c, const hcrt__args_t *a, uint64_t seq, size_t bytes)
{
    hcrt__vendor_t *v = c->vendor;
    if (a->coll != HCRT__COLL_ALLREDUCE && a->coll != HCRT__COLL_REDUCE_SCATTER && a->coll != HCRT__COLL_ALLGATHER &&
        a->coll != HCRT__COLL_BROADCAST)
        return HCRT_ERR_NOT_SUPPORTED;
    if (a->count == 0 || bytes < v->min_bytes || v->state == HCRT__VSTATE_OFF)
        return HCRT_ERR_NOT_SUPPORTED;
    if (v->state == HCRT__VSTATE_FAILED)
        return hcrt__error(c->ctx, v->failure, "%s", v->failure_text);
    const char *name = hcrt__coll_name(a->coll);
    if (v->state == HCRT__VSTATE_NEW) {
        HCRT_CHECK(vendor_init(c, name, seq, bytes));
        if (v->state == HCRT__VSTATE_OFF)
            return HCRT_ERR_NOT_SUPPORTED;
    }
    HCRT_DEBUG(COLL_SUBSYS, "%s #%llu: vendor-group path (%zu bytes, %d groups)", name, (unsigned long long)seq, bytes,
               v->ngroups);
    hcrt__block_t *blocks[HCRT__VENDOR_BLOCKS + 2];
    int nblocks = 0;
    hcrt_device_t *host = NULL;
    hcrt__args_t h = *a;
    hcrt_status_t status = HCRT_OK;
    size_t sbytes = 0, rbytes = 0;
    /* Memory of another device than this rank's vendor device is worked on in host copies. */
    bool bounce = a->device != NULL && !hcrt__device_is_host(a->device) && a->device != v->dev;
    if (bounce) {
        bool in_place = a->send == a->recv, root_only = a->coll == HCRT__COLL_BROADCAST;
        call_extents(c, a, &sbytes, &rbytes);
        HCRT_CHECK(hcrt_device_host(c->ctx, &host));
        HCRT_CHECK_GOTO(hcrt__pool_get(c, NULL, sbytes > rbytes ? sbytes : rbytes, &blocks[nblocks]), status, out);
        h.recv = blocks[nblocks++]->ptr;
        h.send = h.recv;
        if (!in_place) {
            HCRT_CHECK_GOTO(hcrt__pool_get(c, NULL, sbytes, &blocks[nblocks]), status, out);
            h.send = blocks[nblocks++]->ptr;
        }
        h.device = NULL;
        if (!root_only || c->rank == a->root)
            HCRT_CHECK_GOTO(hcrt_memcpy(host, (void *)h.send, a->device, a->send, sbytes), status, out);
    }
    /* One schedule kept for every call: its arrays are reused, which matters to small messages. */
    hcrt__sched_t *s = &v->sched_keep;
    int nb = 0;
    if (!v->sched_ready)
        hcrt__sched_init(s, c, a->dtype, a->op, (int)(seq % HCRT__TAG_SPAN));
    else
        hcrt__sched_reuse(s, a->dtype, a->op, (int)(seq % HCRT__TAG_SPAN));
    v->sched_ready = true;
    status = hcrt__vendor_build(c, &h, s, blocks + nblocks, &nb);
    if (status == HCRT_OK) {
        v->step = name;
        v->step_seq = seq;
        v->sched = s;
        status = hcrt__run_blocking(c, s, name, seq, bytes);
        v->step = NULL;
        v->sched = NULL;
    }
    for (int i = 0; i < nb; i++)
        hcrt__pool_put(blocks[nblocks + i]);
    hcrt__stage_put(s->stage);
    s->stage = NULL;
    if (status == HCRT_OK && bounce)
        status = hcrt_memcpy(a->device, a->recv, host, h.recv, rbytes);
    if (status != HCRT_OK && v->dev != NULL)
        status = vendor_fail(c, status, name, seq);
out:
    for (int i = 0; i < nblocks; i++)
        hcrt__pool_put(blocks[i]);
    return status;
}

hcrt_status_t hcrt__vendor_enqueue(hcrt__sched_t *s, const hcrt__step_t *st)
{
    struct hcrt_comm *c = s->comm;
    hcrt__vendor_t *v = c->vendor;
    const hcrt_backend_v1_t *ops = v->dev->be->ops;
    void *state = v->dev->be->state;
    hcrt_backend_stream_t *bs = s->stage->stream->bs;
    /* hcrt scales averages itself once at the end, as on its own paths (integers truncate alike). */
    hcrt_op_t op = s->op == HCRT_OP_AVG ? HCRT_OP_SUM : s->op;
    hcrt_status_t status;
    switch ((int)st->value) {
    case HCRT__VCOLL_ALLREDUCE:
        status = ops->coll_allreduce(state, v->coll, st->src, st->dst, st->bytes, s->dtype, op, bs);
        break;
    case HCRT__VCOLL_REDUCE_SCATTER:
        status = ops->coll_reduce_scatter(state, v->coll, st->src, st->dst, st->bytes, s->dtype, op, bs);
        break;
    case HCRT__VCOLL_ALLGATHER:
        status = ops->coll_allgather(state, v->coll, st->src, st->dst, st->bytes, s->dtype, bs);
        break;
    default:
        status = ops->coll_broadcast(state, v->coll, st->src, st->dst, st->bytes, s->dtype, st->peer, bs);
        break;
    }
    if (status != HCRT_OK)
        return hcrt__error(c->ctx, status, "collectives: the %s vendor %s failed on rank %d: %s", v->dev->be->name,
                           vkind_names[st->value < 4 ? st->value : 3], c->rank, ops->last_error(state));
    return HCRT_OK;
}

void hcrt__vendor_abort(struct hcrt_comm *c, bool release)
{
    hcrt__vendor_t *v = c != NULL ? c->vendor : NULL;
    if (v == NULL || v->coll == NULL)
        return;
    char grp[256];
    if (!release) {
        /* Only a rank whose own vendor operation is still running names its group; the others wait for
         * messages or flags, and the deadline report names who they wait for. */
        if (v->step != NULL && v->sched != NULL && hcrt__sched_waits_vendor(v->sched))
            hcrt__log_emit(HCRT_LOG_ERROR, COLL_SUBSYS,
                           "%s #%llu: the vendor step of vendor group %s did not complete (a member hangs inside "
                           "the %s vendor library)",
                           v->step, (unsigned long long)v->step_seq, group_text(c, v->g, grp, sizeof(grp)),
                           v->dev->be->name);
        return;
    }
    hcrt__log_emit(HCRT_LOG_ERROR, COLL_SUBSYS, "collectives: aborting rank %d's %s vendor communicator (group %s)",
                   c->rank, v->dev->be->name, group_text(c, v->g, grp, sizeof(grp)));
    v->dev->be->ops->coll_abort(v->dev->be->state, v->coll);
    v->coll = NULL;
    v->state = HCRT__VSTATE_FAILED;
}

void hcrt__vendor_destroy(struct hcrt_comm *c)
{
    hcrt__vendor_t *v = c->vendor;
    if (v == NULL)
        return;
    if (v->coll != NULL) {
        const hcrt_backend_v1_t *ops = v->dev->be->ops;
        if (v->state == HCRT__VSTATE_READY)
            ops->coll_destroy(v->dev->be->state, v->coll);
        else
            ops->coll_abort(v->dev->be->state, v->coll);
    }
    if (v->dscratch != NULL)
        hcrt_mem_free(v->dev, v->dscratch);
    if (v->sched_ready)
        hcrt__sched_fini(&v->sched_keep);
    vendor_free(v);
    c->vendor = NULL;
}
