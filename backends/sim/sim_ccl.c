/*
 * backends/sim/sim_ccl.c - simccl: the vendor collective library of the sim backend.
 *
 * Stands for NCCL/RCCL on one node so that hcrt's vendor-group path runs, and is measured, without a GPU.
 * The ranks of a group are sim devices of different processes of one node carrying the same vendor tag
 * (HCRT_SIM_VENDOR=a|b; the runtime never groups devices of different tags). Sim device memory is
 * private to its process, so the group shares one POSIX shared-memory segment, named in the unique id
 * that one rank makes and the runtime broadcasts: each rank owns two slots of HCRT_CHUNK_SIZE bytes in it
 * (used by alternate rounds) and a control line. Data moves device -> own slot -> peer's device memory,
 * always device to device through the segment (the emulated NVLink), never through the runtime's host
 * staging: a rank reads its peers' slots straight into, or reduces them straight into, its device memory.
 *
 * Every operation is a sequence of rounds, each closed by a barrier: a rank writes its round-r data into
 * its slot of parity r & 1, stores r into its `arrived` counter and waits until every rank's counter is at
 * least r; then it reads its peers' round-r data. A slot is written again two rounds later, when every
 * rank has arrived at the round in between, i.e. has finished reading it. Reductions combine the ranks'
 * contributions in rank order (x0 op x1 op ...), so results are deterministic and the same on every
 * rank. Allreduce is a reduce-scatter round and an allgather round per chunk; reduce_scatter, allgather
 * and broadcast take one round per chunk.
 *
 * Operations run in stream order on the stream's worker (or in the caller without a stream), like every
 * sim op. HCRT_SIM_LINK_GBS models the link: an operation takes at least (bytes this rank receives from
 * its peers) / the bandwidth, by sleeping off the difference as the speed factor does.
 *
 * Failures: coll_abort marks the segment aborted, so every rank waiting in an operation of the group (in
 * any process) leaves it with an error at once; an injected hang (HCRT_SIM_FAULT coll_hang=N) never
 * arrives and ends only that way. A communicator stays allocated while operations queued on streams
 * still refer to it (a reference count), so an abort never frees memory a queued operation will read.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backends/common/workqueue.h"
#include "backends/sim/sim.h"
#include "kernels/host_kernels.h"

#define CCL_MAGIC      0x73696d63636c0001ull
#define CCL_CTL_BYTES  64
#define CCL_HEAD_BYTES 4096 /* header line, then one control line per rank, padded to a page */
#define CCL_MAX_RANKS  ((CCL_HEAD_BYTES - CCL_CTL_BYTES) / CCL_CTL_BYTES)

struct sim_ccl {
    char vendor[24];  /* the devices' vendor name, "hcrt-sim-a" */
    uint64_t *ninits; /* per device: communicators set up so far (for coll_init_fail) */
    double link_gbs;  /* HCRT_SIM_LINK_GBS; 0: not modelled */
    double timeout;   /* HCRT_TIMEOUT: how long coll_init waits for the group; 0: for ever */
    size_t chunk;     /* HCRT_CHUNK_SIZE: bytes of each slot */
    int ndev;
    pthread_mutex_t mu;         /* guards the fields below */
    hcrt_backend_coll_t *colls; /* live communicators */
    uint64_t *nops;             /* per device: collectives queued so far (for coll_hang) */
    unsigned ids;               /* unique ids made so far */
};

/* The unique id: the segment's name and the slot size every rank must use. */
typedef struct ccl_id {
    uint64_t magic;
    uint64_t chunk;
    char name[SIM_CCL_ID_BYTES - 16];
} ccl_id_t;
_Static_assert(sizeof(ccl_id_t) == SIM_CCL_ID_BYTES, "the id fills coll_unique_id_size");

typedef struct ccl_head {
    _Atomic uint64_t attached; /* ranks that joined the communicator */
    _Atomic int64_t aborted;   /* 0, or 1 + the group rank that aborted the communicator */
    _Atomic uint64_t opened;   /* ranks that mapped the segment (joined or failed): the last removes its name */
} ccl_head_t;

typedef struct ccl_ctl {
    _Atomic uint64_t arrived; /* the last round this rank reached */
    _Atomic int64_t pid;
    _Atomic uint32_t word;     /* the low bits of `arrived`: the futex peers sleep on */
    _Atomic uint32_t sleepers; /* peers asleep on `word` (so an arrival only wakes when someone sleeps) */
    char pad[CCL_CTL_BYTES - 24];
} ccl_ctl_t;

struct hcrt_backend_coll {
    hcrt_backend_coll_t *next; /* on the library's list of live communicators */
    sim_ccl_t *lib;
    int dev, rank, nranks;
    size_t chunk;
    double link_gbs;
    unsigned char *base; /* the mapped segment */
    size_t size;
    ccl_head_t *head;
    ccl_ctl_t *ctl;
    uint64_t round;    /* rounds run so far: touched only by the operations, which run in order */
    _Atomic int refs;  /* the owner's, plus one per queued or running operation */
    _Atomic bool gone; /* destroyed or aborted by its owner: queued operations fail at once */
    char name[SIM_CCL_ID_BYTES - 16];
};

typedef enum ccl_kind { CCL_ALLREDUCE, CCL_REDUCE_SCATTER, CCL_ALLGATHER, CCL_BROADCAST } ccl_kind_t;
static const char *const kind_names[] = {"allreduce", "reduce_scatter", "allgather", "broadcast"};

/* One queued operation (copied into the stream's queue). Buffers are storage addresses. */
typedef struct ccl_op {
    hcrt_backend_coll_t *c;
    ccl_kind_t kind;
    const unsigned char *send;
    unsigned char *recv;
    size_t count;
    hcrt_dtype_t dtype;
    hcrt_op_t op;
    int root;
    uint64_t hang; /* non-zero: injected hang (the collective's number on the device) */
} ccl_op_t;

/* ---- the library ------------------------------------------------------------------------------------ */

static const char *cfg(const hcrt_backend_services_t *svc, const char *name, const char *def)
{
    const char *v = svc && svc->config_get ? svc->config_get(svc->host, name) : NULL;
    return v ? v : def;
}

hcrt_status_t sim_ccl_create(const hcrt_backend_services_t *svc, int ndev, sim_ccl_t **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *tag = cfg(svc, "HCRT_SIM_VENDOR", "none");
    if (strcmp(tag, "none") == 0 || tag[0] == '\0')
        return HCRT_OK;
    if (strcmp(tag, "a") != 0 && strcmp(tag, "b") != 0) {
        snprintf(err, errlen, "HCRT_SIM_VENDOR='%s' is not one of none, a, b", tag);
        return HCRT_ERR_CONFIG;
    }
    char *end = NULL;
    const char *gbs = cfg(svc, "HCRT_SIM_LINK_GBS", "0"), *timeout = cfg(svc, "HCRT_TIMEOUT", "300");
    const char *chunk = cfg(svc, "HCRT_CHUNK_SIZE", "1048576");
    double link = strtod(gbs, &end);
    if (*end || !(link >= 0)) {
        snprintf(err, errlen, "HCRT_SIM_LINK_GBS='%s' is not a bandwidth in GB/s", gbs);
        return HCRT_ERR_CONFIG;
    }
    sim_ccl_t *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->nops = calloc((size_t)ndev, sizeof(*l->nops))) == NULL ||
        (l->ninits = calloc((size_t)ndev, sizeof(*l->ninits))) == NULL) {
        if (l != NULL)
            free(l->nops);
        free(l);
        snprintf(err, errlen, "sim: out of host memory at init");
        return HCRT_ERR_NO_MEMORY;
    }
    snprintf(l->vendor, sizeof(l->vendor), "hcrt-sim-%s", tag);
    l->link_gbs = link;
    l->timeout = strtod(timeout, NULL);
    /* The runtime's parser accepted the size already; the plugin's own (sim.c) knows the suffixes too. */
    unsigned long long c = strtoull(chunk, &end, 10);
    switch (*end) {
    case 'k':
    case 'K':
        c <<= 10;
        break;
    case 'm':
    case 'M':
        c <<= 20;
        break;
    case 'g':
    case 'G':
        c <<= 30;
        break;
    default:
        break;
    }
    l->chunk = c >= 4096 ? (size_t)c & ~(size_t)63 : (size_t)1 << 20;
    l->ndev = ndev;
    pthread_mutex_init(&l->mu, NULL);
    *out = l;
    return HCRT_OK;
}

uint64_t sim_ccl_caps(const sim_ccl_t *ccl)
{
    return ccl ? HCRT_CAP_VENDOR_COLL | HCRT_CAP_VENDOR_COLL_LOCAL : 0;
}

const char *sim_ccl_vendor(const sim_ccl_t *ccl)
{
    return ccl ? ccl->vendor : "hcrt";
}

static void coll_release(hcrt_backend_coll_t *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    munmap(c->base, c->size);
    free(c);
}

/* Takes c off the library's list; false when it was not there (already destroyed or aborted). */
static bool coll_unlist(sim_ccl_t *l, hcrt_backend_coll_t *c)
{
    bool found = false;
    pthread_mutex_lock(&l->mu);
    for (hcrt_backend_coll_t **p = &l->colls; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return found;
}

static void coll_abort_now(hcrt_backend_coll_t *c);

void sim_ccl_destroy(sim_ccl_t *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    hcrt_backend_coll_t *c = l->colls;
    l->colls = NULL;
    pthread_mutex_unlock(&l->mu);
    while (c != NULL) { /* at finalize the peers may be gone: abort, never wait */
        hcrt_backend_coll_t *next = c->next;
        coll_abort_now(c);
        coll_release(c);
        c = next;
    }
    pthread_mutex_destroy(&l->mu);
    free(l->nops);
    free(l->ninits);
    free(l);
}

/* ---- waiting for the group ------------------------------------------------------------------------ */

static bool aborted(const hcrt_backend_coll_t *c, int64_t *by)
{
    *by = atomic_load_explicit(&c->head->aborted, memory_order_acquire);
    return *by != 0 || atomic_load_explicit(&c->gone, memory_order_relaxed);
}

/* A waiting loop's pause: spin a little, then yield the core (ranks outnumber cores), then sleep. */
static void relax(unsigned *spins)
{
    ++*spins;
    if (*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else if (*spins < 256) {
        sched_yield();
    } else {
        hcrt__wq_sleep(20e-6);
    }
}

/* Futexes on the shared segment (not FUTEX_PRIVATE: the sleepers are other processes). */
static void futex_wait(_Atomic uint32_t *word, uint32_t seen, long ns)
{
    struct timespec ts = {0, ns};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}
static void coll_abort_now(hcrt_backend_coll_t *c)
{
    int64_t none = 0;
    atomic_compare_exchange_strong(&c->head->aborted, &none, (int64_t)c->rank + 1);
    atomic_store(&c->gone, true);
    for (int q = 0; q < c->nranks; q++) /* release sleepers at once */
        futex_wake_all(&c->ctl[q].word);
}

static hcrt_status_t fail_aborted(const hcrt_backend_coll_t *c, int64_t by, const char *what, char *msg)
{
    if (by > 0)
        snprintf(msg, HCRT__WQ_MSG_LEN,
                 "simccl %s (group rank %d of %d): the communicator was aborted by group rank %lld", what, c->rank,
                 c->nranks, (long long)(by - 1));
    else
        snprintf(msg, HCRT__WQ_MSG_LEN, "simccl %s (group rank %d of %d): the communicator was destroyed", what,
                 c->rank, c->nranks);
    return HCRT_ERR_BACKEND;
}

/*
 * Announces round r and waits until every rank of the group has reached it. A waiter spins briefly, then
 * sleeps on the late rank's futex (ranks and their device workers outnumber the cores, and a spinning
 * waiter would take the core from the very rank it waits for); an arrival wakes the sleepers. The sleep
 * is bounded (1 ms) so that an abort is seen even if its wake-up is missed.
 */
static hcrt_status_t barrier(hcrt_backend_coll_t *c, uint64_t r, const char *what, char *msg)
{
    ccl_ctl_t *me = &c->ctl[c->rank];
    atomic_store_explicit(&me->arrived, r, memory_order_release);
    atomic_store_explicit(&me->word, (uint32_t)r, memory_order_release);
    if (atomic_load_explicit(&me->sleepers, memory_order_acquire) != 0)
        futex_wake_all(&me->word);
    for (int q = 0; q < c->nranks; q++) {
        ccl_ctl_t *peer = &c->ctl[q];
        unsigned spins = 0;
        while (atomic_load_explicit(&peer->arrived, memory_order_acquire) < r) {
            int64_t by;
            if (aborted(c, &by))
                return fail_aborted(c, by, what, msg);
            if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
                continue;
            }
            uint32_t seen = atomic_load_explicit(&peer->word, memory_order_acquire);
            atomic_fetch_add(&peer->sleepers, 1);
            if (atomic_load_explicit(&peer->arrived, memory_order_acquire) < r)
                futex_wait(&peer->word, seen, 1000000);
            atomic_fetch_sub(&peer->sleepers, 1);
        }
    }
    return HCRT_OK;
}

/* The link model: the operation may not finish before `bytes` received so far have crossed the link. */
typedef struct pace {
    double t0, bytes;
} pace_t;

static void pace(const hcrt_backend_coll_t *c, pace_t *p, size_t bytes, bool last)
{
    if (c->link_gbs <= 0)
        return;
    p->bytes += (double)bytes;
    double ahead = p->t0 + p->bytes / (c->link_gbs * 1e9) - hcrt__wq_now();
    /* Sleeps shorter than the timer's slack would be longer than asked: settle them in batches. */
    if (ahead > (last ? 0 : 100e-6))
        hcrt__wq_sleep(ahead);
}

static unsigned char *slot(const hcrt_backend_coll_t *c, int q, uint64_t r)
{
    return c->base + CCL_HEAD_BYTES + ((size_t)q * 2 + (size_t)(r & 1)) * c->chunk;
}

/* dst = contributions[0] op contributions[1] op ... of n elements (rank order); in[q] is rank q's. */
static void reduce_ranks(const ccl_op_t *o, unsigned char *dst, const unsigned char *const *in, size_t n)
{
    const hcrt_backend_coll_t *c = o->c;
    size_t es = hcrt_dtype_size(o->dtype);
    if (c->nranks == 1)
        memmove(dst, in[0], n * es);
    for (int q = 1; q < c->nranks; q++)
        hcrt__host_reduce3(dst, q == 1 ? in[0] : dst, in[q], n, o->dtype, o->op);
    if (o->op == HCRT_OP_AVG)
        hcrt__host_scale(dst, n, o->dtype, 1.0 / c->nranks);
}

/* ---- the operations, as they run on the stream ------------------------------------------------------ */

#define CCL_TRY(call)                                                                                                  \
    do {                                                                                                               \
        hcrt_status_t ccl_try_ = (call);                                                                               \
        if (ccl_try_ != HCRT_OK)                                                                                       \
            return ccl_try_;                                                                                           \
    } while (0)

static hcrt_status_t run_allreduce(const ccl_op_t *o, pace_t *pc, char *msg)
{
    hcrt_backend_coll_t *c = o->c;
    const int m = c->nranks, me = c->rank;
    const size_t es = hcrt_dtype_size(o->dtype);
    const size_t per = (c->chunk / es / (size_t)m) * (size_t)m; /* elements per chunk, a multiple of m */
    const unsigned char *in[CCL_MAX_RANKS];
    for (size_t off = 0; off < o->count; off += per) {
        size_t n = o->count - off < per ? o->count - off : per, sl = (n + (size_t)m - 1) / (size_t)m;
        size_t lo = (size_t)me * sl < n ? (size_t)me * sl : n, hi = lo + sl < n ? lo + sl : n;
        const unsigned char *src = o->send + off * es;
        uint64_t r = ++c->round;
        /* Everything but this rank's own slice, which it reduces straight from its buffer. */
        memcpy(slot(c, me, r), src, lo * es);
        memcpy(slot(c, me, r) + hi * es, src + hi * es, (n - hi) * es);
        CCL_TRY(barrier(c, r, "allreduce", msg));
        for (int q = 0; q < m; q++)
            in[q] = q == me ? src + lo * es : slot(c, q, r) + lo * es;
        if (hi > lo)
            reduce_ranks(o, slot(c, me, r + 1) + lo * es, in, hi - lo);
        uint64_t r2 = ++c->round;
        CCL_TRY(barrier(c, r2, "allreduce", msg));
        for (int q = 0; q < m; q++) {
            size_t qlo = (size_t)q * sl < n ? (size_t)q * sl : n, qhi = qlo + sl < n ? qlo + sl : n;
            memcpy(o->recv + (off + qlo) * es, slot(c, q, r2) + qlo * es, (qhi - qlo) * es);
        }
        pace(c, pc, 2 * (n - (hi - lo)) * es, false);
    }
    return HCRT_OK;
}

static hcrt_status_t run_reduce_scatter(const ccl_op_t *o, pace_t *pc, char *msg)
{
    hcrt_backend_coll_t *c = o->c;
    const int m = c->nranks, me = c->rank;
    const size_t es = hcrt_dtype_size(o->dtype), per = c->chunk / es / (size_t)m;
    const unsigned char *in[CCL_MAX_RANKS];
    for (size_t off = 0; off < o->count; off += per) {
        size_t n = o->count - off < per ? o->count - off : per;
        uint64_t r = ++c->round;
        for (int b = 0; b < m; b++)
            if (b != me)
                memcpy(slot(c, me, r) + (size_t)b * n * es, o->send + ((size_t)b * o->count + off) * es, n * es);
        const unsigned char *own = o->send + ((size_t)me * o->count + off) * es;
        if (own == o->recv + off * es && me > 0) { /* in place: the result would overwrite it before use */
            memcpy(slot(c, me, r) + (size_t)me * n * es, own, n * es);
            own = slot(c, me, r) + (size_t)me * n * es;
        }
        CCL_TRY(barrier(c, r, "reduce_scatter", msg));
        for (int q = 0; q < m; q++)
            in[q] = q == me ? own : slot(c, q, r) + (size_t)me * n * es;
        reduce_ranks(o, o->recv + off * es, in, n);
        pace(c, pc, (size_t)(m - 1) * n * es, false);
    }
    return HCRT_OK;
}

static hcrt_status_t run_allgather(const ccl_op_t *o, pace_t *pc, char *msg)
{
    hcrt_backend_coll_t *c = o->c;
    const int m = c->nranks, me = c->rank;
    const size_t es = hcrt_dtype_size(o->dtype), per = c->chunk / es;
    for (size_t off = 0; off < o->count; off += per) {
        size_t n = o->count - off < per ? o->count - off : per;
        uint64_t r = ++c->round;
        memcpy(slot(c, me, r), o->send + off * es, n * es);
        CCL_TRY(barrier(c, r, "allgather", msg));
        for (int q = 0; q < m; q++) {
            unsigned char *dst = o->recv + ((size_t)q * o->count + off) * es;
            const unsigned char *src = q == me ? o->send + off * es : slot(c, q, r);
            if (dst != src)
                memmove(dst, src, n * es);
        }
        pace(c, pc, (size_t)(m - 1) * n * es, false);
    }
    return HCRT_OK;
}

static hcrt_status_t run_broadcast(const ccl_op_t *o, pace_t *pc, char *msg)
{
    hcrt_backend_coll_t *c = o->c;
    const size_t es = hcrt_dtype_size(o->dtype), per = c->chunk / es;
    for (size_t off = 0; off < o->count; off += per) {
        size_t n = o->count - off < per ? o->count - off : per;
        uint64_t r = ++c->round;
        if (c->rank == o->root) {
            memcpy(slot(c, o->root, r), o->send + off * es, n * es);
            if (o->recv != o->send)
                memmove(o->recv + off * es, o->send + off * es, n * es);
        }
        /* Everyone arrives at every round, so the root reuses a slot only once all have read it. */
        CCL_TRY(barrier(c, r, "broadcast", msg));
        if (c->rank != o->root) {
            memcpy(o->recv + off * es, slot(c, o->root, r), n * es);
            pace(c, pc, n * es, false);
        }
    }
    return HCRT_OK;
}

static hcrt_status_t run_op(void *arg, char *msg)
{
    const ccl_op_t *o = arg;
    hcrt_backend_coll_t *c = o->c;
    hcrt_status_t status = HCRT_OK;
    int64_t by = 0;
    pace_t pc = {.t0 = c->link_gbs > 0 ? hcrt__wq_now() : 0};
    if (aborted(c, &by)) {
        status = fail_aborted(c, by, kind_names[o->kind], msg);
    } else if (o->hang) {
        /* Injected: this rank never arrives; its peers wait in the barrier until someone aborts. */
        unsigned spins = 0;
        while (!aborted(c, &by))
            relax(&spins);
        snprintf(msg, HCRT__WQ_MSG_LEN,
                 "simccl %s (group rank %d of %d): injected hang (HCRT_SIM_FAULT coll_hang=%llu) ended by an abort",
                 kind_names[o->kind], c->rank, c->nranks, (unsigned long long)o->hang);
        status = HCRT_ERR_BACKEND;
    } else {
        switch (o->kind) {
        case CCL_ALLREDUCE:
            status = run_allreduce(o, &pc, msg);
            break;
        case CCL_REDUCE_SCATTER:
            status = run_reduce_scatter(o, &pc, msg);
            break;
        case CCL_ALLGATHER:
            status = run_allgather(o, &pc, msg);
            break;
        case CCL_BROADCAST:
            status = run_broadcast(o, &pc, msg);
            break;
        }
        if (status == HCRT_OK)
            pace(c, &pc, 0, true);
    }
    coll_release(c);
    return status;
}

/* ---- the plugin's entry points ------------------------------------------------------------------------ */

#define NO_LIBRARY "the sim devices have no vendor library (HCRT_SIM_VENDOR=none)"

static hcrt_status_t no_library(sim_state_t *st, const char *fn)
{
    return sim_error(st, -1, HCRT_ERR_NOT_SUPPORTED, "sim: %s: no vendor collectives: " NO_LIBRARY, fn);
}

hcrt_status_t sim_coll_get_unique_id(void *state, void *id)
{
    sim_state_t *st = state;
    sim_ccl_t *l = st ? sim_ccl_of(st) : NULL;
    if (st == NULL)
        return sim_error(NULL, -1, HCRT_ERR_INVALID_ARG, "sim: coll_get_unique_id: argument 'state' is NULL");
    if (l == NULL && id == NULL) /* the probe: the answer is the reason alone */
        return sim_error(st, -1, HCRT_ERR_NOT_SUPPORTED, NO_LIBRARY);
    if (l == NULL)
        return no_library(st, "coll_get_unique_id");
    if (id == NULL) /* the probe: the library is always there once configured */
        return HCRT_OK;
    ccl_id_t u;
    memset(&u, 0, sizeof(u));
    u.magic = CCL_MAGIC;
    u.chunk = l->chunk;
    pthread_mutex_lock(&l->mu);
    unsigned n = ++l->ids;
    pthread_mutex_unlock(&l->mu);
    /* Unique on the node: this process, a counter, and the clock against a stale segment of a dead run. */
    snprintf(u.name, sizeof(u.name), "/hcrt-simccl-%d-%u-%llx", (int)getpid(), n,
             (unsigned long long)(hcrt__wq_now() * 1e9) & 0xffffffffull);
    memcpy(id, &u, sizeof(u));
    return HCRT_OK;
}

hcrt_status_t sim_coll_init(void *state, int dev, const void *id, int nranks, int rank, hcrt_backend_coll_t **coll)
{
    sim_state_t *st = state;
    sim_ccl_t *l = st ? sim_ccl_of(st) : NULL;
    ccl_id_t u;
    if (st == NULL)
        return sim_error(NULL, -1, HCRT_ERR_INVALID_ARG, "sim: coll_init: argument 'state' is NULL");
    if (l == NULL)
        return no_library(st, "coll_init");
    if (dev < 0 || dev >= l->ndev)
        return sim_error(st, -1, HCRT_ERR_INVALID_ARG, "sim: coll_init: device %d does not exist (%d sim devices)", dev,
                         l->ndev);
    if (id == NULL || coll == NULL)
        return sim_error(st, dev, HCRT_ERR_INVALID_ARG, "sim: coll_init: argument '%s' is NULL", id ? "coll" : "id");
    if (nranks < 1 || nranks > (int)CCL_MAX_RANKS || rank < 0 || rank >= nranks)
        return sim_error(st, dev, HCRT_ERR_INVALID_ARG,
                         "sim: coll_init: argument 'rank' (%d) or 'nranks' (%d) out of range (1 to %d ranks)", rank,
                         nranks, (int)CCL_MAX_RANKS);
    memcpy(&u, id, sizeof(u));
    if (u.magic != CCL_MAGIC || u.chunk < 4096 || memchr(u.name, '\0', sizeof(u.name)) == NULL)
        return sim_error(st, dev, HCRT_ERR_INVALID_ARG, "sim: coll_init: argument 'id' is not a simccl unique id");
    hcrt_status_t status = sim_device_op(st, dev, "coll_init");
    if (status != HCRT_OK)
        return status;
    hcrt_backend_coll_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return sim_error(st, dev, HCRT_ERR_NO_MEMORY, "sim device %d: coll_init: out of host memory", dev);
    c->lib = l;
    c->dev = dev;
    c->rank = rank;
    c->nranks = nranks;
    c->chunk = (size_t)u.chunk;
    c->link_gbs = l->link_gbs;
    c->size = CCL_HEAD_BYTES + (size_t)nranks * 2 * c->chunk;
    atomic_init(&c->refs, 1);
    memcpy(c->name, u.name, sizeof(c->name));
    /* Every rank creates or opens the segment and sizes it alike, so no one maps it before its size is set. */
    int fd = shm_open(c->name, O_CREAT | O_RDWR, 0600);
    if (fd < 0) {
        status = sim_error(st, dev, HCRT_ERR_BACKEND, "sim device %d: coll_init: shm_open(%s): %s", dev, c->name,
                           strerror(errno));
        goto err_free;
    }
    if (ftruncate(fd, (off_t)c->size) != 0 ||
        (c->base = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        status = sim_error(st, dev, HCRT_ERR_BACKEND, "sim device %d: coll_init: sizing or mapping %s (%zu bytes): %s",
                           dev, c->name, c->size, strerror(errno));
        close(fd);
        goto err_unlink;
    }
    close(fd);
    c->head = (ccl_head_t *)c->base;
    c->ctl = (ccl_ctl_t *)(c->base + CCL_CTL_BYTES);
    atomic_store(&c->ctl[rank].pid, (int64_t)getpid());
    atomic_fetch_add(&c->head->opened, 1);
    const sim_fault_t *f = sim_faults(st);
    pthread_mutex_lock(&l->mu);
    uint64_t nth = ++l->ninits[dev];
    pthread_mutex_unlock(&l->mu);
    if (f->coll_init_fail == nth && (f->dev < 0 || f->dev == dev)) {
        /* Injected: this rank fails to join (it never counts as attached), and tells the group so that
         * nobody waits for it. */
        atomic_store(&c->head->aborted, (int64_t)rank + 1);
        status = sim_error(st, dev, HCRT_ERR_BACKEND,
                           "sim device %d: coll_init: injected failure (HCRT_SIM_FAULT coll_init_fail=%llu)", dev,
                           (unsigned long long)nth);
        goto err_leave;
    }
    atomic_fetch_add(&c->head->attached, 1);
    double start = hcrt__wq_now();
    unsigned spins = 0;
    while (atomic_load(&c->head->attached) < (uint64_t)nranks) {
        int64_t by = atomic_load(&c->head->aborted);
        if (by != 0) {
            status = sim_error(st, dev, HCRT_ERR_BACKEND,
                               "sim device %d: coll_init: group rank %lld of simccl group %s failed to join", dev,
                               (long long)(by - 1), c->name);
            goto err_leave;
        }
        if (l->timeout > 0 && hcrt__wq_now() - start > l->timeout) {
            status = sim_error(st, dev, HCRT_ERR_TIMEOUT,
                               "sim device %d: coll_init: only %llu of %d ranks joined simccl group %s within "
                               "HCRT_TIMEOUT=%g s",
                               dev, (unsigned long long)atomic_load(&c->head->attached), nranks, c->name, l->timeout);
            atomic_store(&c->head->aborted, (int64_t)rank + 1);
            munmap(c->base, c->size);
            goto err_unlink;
        }
        relax(&spins);
    }
    /* Everyone has it mapped: the name is no longer needed, and a crash can leave nothing behind. */
    shm_unlink(c->name);
    pthread_mutex_lock(&l->mu);
    c->next = l->colls;
    l->colls = c;
    pthread_mutex_unlock(&l->mu);
    *coll = c;
    return HCRT_OK;

err_leave:
    /* Keep the name while members still have to open the segment and see the failure there (a late one
     * would otherwise create a fresh segment and wait alone); the last to open removes it. */
    if (atomic_load(&c->head->opened) >= (uint64_t)nranks)
        shm_unlink(c->name);
    munmap(c->base, c->size);
    goto err_free;
err_unlink:
    shm_unlink(c->name);
err_free:
    free(c);
    return status;
}

/* Ends this rank's part of a communicator: destroy (peers are done with it) or abort (they may not be). */
static hcrt_status_t coll_end(void *state, hcrt_backend_coll_t *coll, const char *fn, bool abort)
{
    sim_state_t *st = state;
    if (st == NULL)
        return sim_error(NULL, -1, HCRT_ERR_INVALID_ARG, "sim: %s: argument 'state' is NULL", fn);
    if (coll == NULL)
        return HCRT_OK;
    if (!coll_unlist(coll->lib, coll))
        return sim_error(st, -1, HCRT_ERR_INVALID_ARG, "sim: %s: argument 'coll' is not a live communicator", fn);
    if (abort)
        coll_abort_now(coll);
    else
        atomic_store(&coll->gone, true);
    coll_release(coll);
    return HCRT_OK;
}

hcrt_status_t sim_coll_destroy(void *state, hcrt_backend_coll_t *coll)
{
    return coll_end(state, coll, "coll_destroy", false);
}

hcrt_status_t sim_coll_abort(void *state, hcrt_backend_coll_t *coll)
{
    return coll_end(state, coll, "coll_abort", true);
}

/* Checks an operation's arguments, translates its buffers and queues it on the stream. */
static hcrt_status_t enqueue(sim_state_t *st, ccl_op_t *o, const void *send, void *recv, size_t send_count,
                             size_t recv_count, hcrt_backend_stream_t *stream)
{
    hcrt_backend_coll_t *c = o->c;
    const char *fn = kind_names[o->kind];
    if (st == NULL)
        return sim_error(NULL, -1, HCRT_ERR_INVALID_ARG, "sim: coll_%s: argument 'state' is NULL", fn);
    if (sim_ccl_of(st) == NULL)
        return no_library(st, fn);
    if (c == NULL)
        return sim_error(st, -1, HCRT_ERR_INVALID_ARG, "sim: coll_%s: argument 'coll' is NULL", fn);
    const size_t es = hcrt_dtype_size(o->dtype);
    if (es == 0)
        return sim_error(st, c->dev, HCRT_ERR_INVALID_ARG, "sim: coll_%s: argument 'dtype' (%d) is not a data type", fn,
                         (int)o->dtype);
    if ((unsigned)o->op >= HCRT_OP_COUNT)
        return sim_error(st, c->dev, HCRT_ERR_INVALID_ARG, "sim: coll_%s: argument 'op' (%d) is not a reduction op", fn,
                         (int)o->op);
    if (o->root < 0 || o->root >= c->nranks)
        return sim_error(st, c->dev, HCRT_ERR_INVALID_ARG,
                         "sim: coll_%s: argument 'root' (%d) out of range for %d "
                         "rank(s)",
                         fn, o->root, c->nranks);
    if (stream != NULL && sim_stream_dev(stream) != c->dev)
        return sim_error(st, c->dev, HCRT_ERR_INVALID_ARG,
                         "sim: coll_%s: argument 'stream' belongs to sim device %d, the communicator to device %d", fn,
                         sim_stream_dev(stream), c->dev);
    if (send_count > SIZE_MAX / es / 2 || recv_count > SIZE_MAX / es / 2)
        return sim_error(st, c->dev, HCRT_ERR_INVALID_ARG, "sim: coll_%s: argument 'count' is too large", fn);
    if (send_count > 0 && (o->send = sim_storage_of(st, c->dev, send, send_count * es, fn, "send")) == NULL)
        return HCRT_ERR_INVALID_ARG;
    if (recv_count > 0 && (o->recv = sim_storage_of(st, c->dev, recv, recv_count * es, fn, "recv")) == NULL)
        return HCRT_ERR_INVALID_ARG;
    hcrt_status_t status = sim_device_op(st, c->dev, fn);
    if (status != HCRT_OK) {
        coll_abort_now(c); /* the group cannot complete without this rank: release the peers */
        return status;
    }
    sim_ccl_t *l = c->lib;
    const sim_fault_t *f = sim_faults(st);
    pthread_mutex_lock(&l->mu);
    uint64_t nth = ++l->nops[c->dev];
    pthread_mutex_unlock(&l->mu);
    if (f->coll_hang == nth && (f->dev < 0 || f->dev == c->dev)) {
        o->hang = nth;
        const hcrt_backend_services_t *svc = sim_services(st);
        if (svc && svc->log_enabled && svc->log_enabled(svc->host, HCRT_LOG_WARN))
            svc->log(svc->host, HCRT_LOG_WARN, "sim device %d: injected hang in simccl %s (collective %llu)", c->dev,
                     fn, (unsigned long long)nth);
    }
    atomic_fetch_add(&c->refs, 1);
    status = sim_submit(st, c->dev, stream, run_op, o, sizeof(*o));
    if (status != HCRT_OK && stream != NULL)
        coll_release(c); /* never queued (inline runs release it themselves) */
    return status;
}

hcrt_status_t sim_coll_allreduce(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv, size_t count,
                                 hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    ccl_op_t o = {.c = coll, .kind = CCL_ALLREDUCE, .count = count, .dtype = dtype, .op = op};
    return enqueue(state, &o, send, recv, count, count, stream);
}

hcrt_status_t sim_coll_reduce_scatter(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv,
                                      size_t count, hcrt_dtype_t dtype, hcrt_op_t op, hcrt_backend_stream_t *stream)
{
    ccl_op_t o = {.c = coll, .kind = CCL_REDUCE_SCATTER, .count = count, .dtype = dtype, .op = op};
    return enqueue(state, &o, send, recv, coll ? count * (size_t)coll->nranks : 0, count, stream);
}

hcrt_status_t sim_coll_allgather(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv, size_t count,
                                 hcrt_dtype_t dtype, hcrt_backend_stream_t *stream)
{
    ccl_op_t o = {.c = coll, .kind = CCL_ALLGATHER, .count = count, .dtype = dtype};
    return enqueue(state, &o, send, recv, count, coll ? count * (size_t)coll->nranks : 0, stream);
}

hcrt_status_t sim_coll_broadcast(void *state, hcrt_backend_coll_t *coll, const void *send, void *recv, size_t count,
                                 hcrt_dtype_t dtype, int root, hcrt_backend_stream_t *stream)
{
    ccl_op_t o = {.c = coll, .kind = CCL_BROADCAST, .count = count, .dtype = dtype, .root = root};
    /* send is read on the root only (NCCL's convention): other ranks may pass anything there. */
    bool is_root = coll != NULL && coll->rank == root;
    return enqueue(state, &o, is_root ? send : NULL, recv, is_root ? count : 0, count, stream);
}
