/*
 * collectives/coll.h - what the files of the collectives share.
 *
 * Every operation is compiled into a schedule (sched.c): a list of rounds, each a list of steps. Local
 * steps (copy, reduce, scale, shared-memory flag stores, enqueued device copies) run in order when their
 * round starts; pollable steps (MPI requests, shared-memory flag waits, device events) are started then
 * and tested until they complete; a round ends when all of its pollable steps have. The same schedule
 * runs to completion in a blocking call (with the deadline checked while it polls) or is advanced by
 * hcrt_request_test/wait for a nonblocking one, so there is one implementation of each algorithm.
 */
#ifndef HCRT_COLL_H
#define HCRT_COLL_H

#include <stdatomic.h>

#include "hcrt/comm.h"
#include "runtime/internal.h"

#define COLL_SUBSYS "coll"

/* ---- schedules (sched.c) ------------------------------------------------------------------------ */

typedef enum hcrt__step_kind {
    HCRT__STEP_SEND,      /* pollable: MPI_Isend(src, bytes) to peer */
    HCRT__STEP_RECV,      /* pollable: MPI_Irecv(dst, bytes) from peer */
    HCRT__STEP_MPI,       /* pollable: a nonblocking MPI collective started by start_mpi() */
    HCRT__STEP_COPY,      /* local: memcpy(dst, src, bytes) on host memory (value 1: streaming stores) */
    HCRT__STEP_REDUCE3,   /* local: dst = op(src, src2), count elements */
    HCRT__STEP_SCALE,     /* local: dst *= factor, count elements */
    HCRT__STEP_SHM_POST,  /* local: store value into this rank's flag `flag` (release) */
    HCRT__STEP_SHM_WAIT,  /* pollable: node ranks [peer, peer + bytes) (bytes 0: all) have flag >= value */
    HCRT__STEP_DCOPY,     /* local: enqueue an async device copy on the stage's stream, record event `flag`
                           * (value 1: H2D, 0: D2H, 2: D2D; peer 1: copy synchronously instead, for small
                           * messages) */
    HCRT__STEP_EVENT,     /* pollable: the stage's event `ev` completed (value 1: the work before it waits
                           * for peers, e.g. a vendor collective, so it is polled under the deadline and
                           * never slept on; an error of that work fails the schedule) */
    HCRT__STEP_DKERNEL,   /* local: enqueue a device kernel on the stage's stream (value 0: reduce3
                           * dst = op(src, src2); 1: scale dst by factor), the element count in `bytes` */
    HCRT__STEP_RECORD,    /* local: record the stage's event `flag` on its stream */
    HCRT__STEP_VCOLL,     /* local: enqueue a vendor collective on the stage's stream (vendor.h: value is
                           * the kind, bytes the count, peer the root; src/dst device buffers) */
    HCRT__STEP_FLAG_POST, /* local: store value into the shared _Atomic uint64_t at dst (release) */
    HCRT__STEP_FLAG_WAIT, /* pollable: the shared _Atomic uint64_t at src is at least value (acquire) */
} hcrt__step_kind_t;

struct hcrt__sched;
struct hcrt__stage;
typedef int (*hcrt__start_mpi_fn)(struct hcrt__sched *s, void *arg, MPI_Request *req);

typedef struct hcrt__step {
    hcrt__step_kind_t kind;
    int peer;           /* SEND/RECV: rank in `mpi`; SHM_WAIT: first node rank */
    int flag;           /* SHM_*: which flag; DCOPY/EVENT: event slot */
    MPI_Comm mpi;       /* SEND/RECV */
    void *dst;
    const void *src;
    const void *src2;
    size_t bytes;       /* SEND/RECV/COPY/DCOPY bytes; REDUCE3/SCALE: element count */
    uint64_t value;     /* SHM_*: flag value; DCOPY: 1 = H2D, 0 = D2H */
    double factor;      /* SCALE */
    hcrt__start_mpi_fn start_mpi;
    void *arg;
} hcrt__step_t;

typedef struct hcrt__sched {
    struct hcrt_comm *comm;
    hcrt_dtype_t dtype;
    hcrt_op_t op;
    int tag;
    hcrt__step_t *steps;
    size_t nsteps, cap;
    size_t *round_end; /* round r holds steps [round_end[r-1], round_end[r]) */
    size_t nrounds, rcap;
    /* An injected failure (HCRT_FAULT error or device_lost at this collective): the schedule fails when
     * it reaches round fault_round, half way through, as a device or transport error would. */
    int fault_kind;    /* hcrt__fault_kind_t; HCRT__FAULT_NONE (-1) when none */
    size_t fault_round;
    hcrt_device_t *fault_dev;
    /* progress state */
    size_t round;      /* current round (nrounds when done) */
    bool started;      /* the current round's steps were started */
    MPI_Request *reqs; /* one per step of the current round (MPI_REQUEST_NULL when not MPI) */
    size_t reqcap;
    bool *pending;     /* per step of the current round: still to complete */
    size_t pendcap;
    struct hcrt__stage *stage; /* device staging resources, when the op stages */
    bool stream_out;   /* results are large: write them with streaming stores (copy.c) */
    bool sync_copies;  /* device copies are small: do them synchronously, no stream or event */
    void **owned;      /* memory freed with the schedule (argument copies) */
    size_t nowned, owncap;
    hcrt_status_t status;
} hcrt__sched_t;

void hcrt__sched_init(hcrt__sched_t *s, struct hcrt_comm *comm, hcrt_dtype_t dtype, hcrt_op_t op, int tag);
void hcrt__sched_fini(hcrt__sched_t *s);
/* Empties a schedule for another call, keeping its arrays (a schedule kept for every call saves their
 * allocations, which matter to small messages). */
void hcrt__sched_reuse(hcrt__sched_t *s, hcrt_dtype_t dtype, hcrt_op_t op, int tag);
/* Appends a step to the current (last) round. */
hcrt_status_t hcrt__sched_add(hcrt__sched_t *s, const hcrt__step_t *step);
/* Closes the current round; the next step opens a new one. Empty rounds are dropped. */
hcrt_status_t hcrt__sched_round(hcrt__sched_t *s);
hcrt_status_t hcrt__sched_send(hcrt__sched_t *s, MPI_Comm mpi, int peer, const void *buf, size_t bytes);
hcrt_status_t hcrt__sched_recv(hcrt__sched_t *s, MPI_Comm mpi, int peer, void *buf, size_t bytes);
hcrt_status_t hcrt__sched_copy(hcrt__sched_t *s, void *dst, const void *src, size_t bytes);
/* A copy to memory nobody reads soon (the caller's result): streaming stores skip the cache. */
hcrt_status_t hcrt__sched_copy_out(hcrt__sched_t *s, void *dst, const void *src, size_t bytes);
void hcrt__copy_stream(void *dst, const void *src, size_t n);
hcrt_status_t hcrt__sched_reduce3(hcrt__sched_t *s, void *dst, const void *a, const void *b, size_t count);
hcrt_status_t hcrt__sched_scale(hcrt__sched_t *s, void *buf, size_t count, double factor);
hcrt_status_t hcrt__sched_mpi(hcrt__sched_t *s, hcrt__start_mpi_fn fn, void *arg);
/* Keeps `p` (malloc'd) until the schedule is freed. */
hcrt_status_t hcrt__sched_own(hcrt__sched_t *s, void *p);

/* When all the current round still waits for is device events, one of them (else NULL): a blocking
 * caller may sleep in hcrt_event_sync() instead of polling, leaving the core to the device's worker. */
hcrt_event_t *hcrt__sched_only_events(const hcrt__sched_t *s);
/* Whether all the current round still waits for is device events and shared flags, one of them a wait
 * for peers (a vendor collective or a flag): a blocking caller may then sleep between polls rather than
 * take the core from the device workers and the peers. */
bool hcrt__sched_waits_peer_event(const hcrt__sched_t *s);
/* Whether the current round still waits for device work that waits for peers (a vendor collective). */
bool hcrt__sched_waits_vendor(const hcrt__sched_t *s);

/*
 * Appends nsub schedules to dst so that they run staggered: round t of dst holds round t - k*offset of
 * schedule k. Pipelines segments whose steps touch disjoint memory (their own buffers and scratch);
 * messages between a pair of ranks are posted in the same order on both sides, so one tag serves all.
 */
hcrt_status_t hcrt__sched_merge(hcrt__sched_t *dst, hcrt__sched_t *subs, size_t nsub, size_t offset);

/* Advances the schedule as far as it goes without blocking; *done when it completed. */
hcrt_status_t hcrt__sched_progress(hcrt__sched_t *s, bool *done);

/* After a failure: the MPI requests the schedule still has in flight are cancelled where MPI can
 * (receives) and handed to the communicator's graveyard (hcrt__comm_bury), never waited for. */
void hcrt__sched_abandon(hcrt__sched_t *s);
/* The failure an injected fault (s->fault_kind) makes: HCRT_ERR_MPI, or HCRT_ERR_DEVICE_LOST once it
 * marked the device lost. */
hcrt_status_t hcrt__sched_inject(hcrt__sched_t *s);

/* ---- scratch and staging memory (pool.c) ---------------------------------------------------------- */

/* A persistent, pre-touched buffer of a communicator: host memory (device NULL) or pinned host memory
 * of a device. Buffers are kept after use and handed out again: first touch is slow on these machines. */
typedef struct hcrt__block {
    struct hcrt__block *next;
    hcrt_device_t *device;
    void *ptr;
    size_t size;
    bool in_use;
    bool quarantined; /* an operation that failed used it: MPI or a device may still write into it */
} hcrt__block_t;

hcrt_status_t hcrt__pool_get(struct hcrt_comm *comm, hcrt_device_t *device, size_t bytes, hcrt__block_t **out);
void hcrt__pool_put(hcrt__block_t *b);
/* Takes a block of a failed operation out of circulation for good (see quarantined). */
void hcrt__pool_quarantine(hcrt__block_t *b);
void hcrt__pool_free_all(struct hcrt_comm *comm);

/* Device staging resources: a stream of the device and events (stage.c). */
#define HCRT__STAGE_EVENTS 4
typedef struct hcrt__stage {
    struct hcrt__stage *next;
    hcrt_device_t *device;
    hcrt_stream_t *stream;
    hcrt_event_t *ev[HCRT__STAGE_EVENTS];
    bool in_use;
    bool quarantined; /* a failed operation left work on its stream: never handed out again */
} hcrt__stage_t;

/* Whether MPI can take memory of dev directly (host memory, or a device-aware MPI for its backend). */
bool hcrt__mpi_takes(const hcrt_device_t *dev);
hcrt_status_t hcrt__stage_get(struct hcrt_comm *comm, hcrt_device_t *device, hcrt__stage_t **out);
void hcrt__stage_put(hcrt__stage_t *st);
void hcrt__stage_quarantine(hcrt__stage_t *st);
void hcrt__stage_free_all(struct hcrt_comm *comm);
/* Schedule steps: enqueue a copy between device memory and host memory, recording event `ev`. */
hcrt_status_t hcrt__sched_d2h(hcrt__sched_t *s, void *host, const void *dev, size_t bytes, int ev);
hcrt_status_t hcrt__sched_h2d(hcrt__sched_t *s, void *dev, const void *host, size_t bytes, int ev);
hcrt_status_t hcrt__sched_event(hcrt__sched_t *s, int ev);
/* Schedule steps: enqueue a kernel of the stage's device on its stream, on device memory or registered
 * host memory (device addresses); record event `ev` after the work enqueued so far. These never run
 * synchronously: only the large-message paths use them. */
hcrt_status_t hcrt__sched_dreduce3(hcrt__sched_t *s, void *dst, const void *a, const void *b, size_t count);
hcrt_status_t hcrt__sched_dscale(hcrt__sched_t *s, void *buf, size_t count, double factor);
hcrt_status_t hcrt__sched_record(hcrt__sched_t *s, int ev);
/* Flags in shared memory other than the node window's (vendor.c's exchange window). */
hcrt_status_t hcrt__sched_flag_post(hcrt__sched_t *s, _Atomic uint64_t *flag, uint64_t value);
hcrt_status_t hcrt__sched_flag_wait(hcrt__sched_t *s, _Atomic uint64_t *flag, uint64_t value);
/* A copy within the stage's device, enqueued on its stream (no event). */
hcrt_status_t hcrt__sched_d2d(hcrt__sched_t *s, void *dst, const void *src, size_t bytes);
/* Waits for event `ev` whose work waits for peers (a vendor collective): polled under the deadline. */
hcrt_status_t hcrt__sched_event_peers(hcrt__sched_t *s, int ev);

/* ---- shared memory (shm.c) -------------------------------------------------------------------------- */

/* Per-rank control line in the node window. */
#define HCRT__FLAG_ARRIVE 0
#define HCRT__FLAG_DONE 1
#define HCRT__FLAGS 2
typedef struct hcrt__shm_ctl {
    _Atomic uint64_t flag[HCRT__FLAGS];
    _Atomic uint64_t entered; /* sequence number of the last collective this rank entered */
    _Atomic int64_t pid;
    /* Set once when a collective of this rank failed (its status, then its sequence number): node peers
     * waiting on this rank fail too instead of waiting for the deadline, and this rank never raises a
     * flag again, so no peer is ever released onto data it did not write. */
    _Atomic int64_t failed_status;
    _Atomic uint64_t failed_seq;
    _Atomic uint64_t closing; /* the rank is destroying the communicator (shm.c) */
    char pad[64 - 7 * sizeof(uint64_t)];
} hcrt__shm_ctl_t;

typedef struct hcrt__shm {
    MPI_Win win;
    size_t chunk;         /* bytes of each of a rank's two input and two result areas */
    size_t small;         /* bytes of each of the two small areas */
    size_t seg_bytes;     /* bytes of each rank's segment */
    unsigned char **seg;  /* base of each node rank's segment */
    /* The window registered for the kernels of one device (hcrt_host_register), so that device reduces
     * in it directly: map_seg[r] is the device address of seg[r]. map_dev NULL: not registered. */
    hcrt_device_t *map_dev;
    unsigned char **map_seg;
    hcrt_device_t *map_refused; /* the last device whose registration failed (not retried) */
    hcrt__shm_ctl_t **ctl;
    uint64_t gen;         /* synchronisation epochs used so far (identical on the node's ranks) */
} hcrt__shm_t;

/* Layout of one rank's segment. */
#define HCRT__SHM_CTL_BYTES 4096
static inline unsigned char *hcrt__shm_small(const hcrt__shm_t *m, int r, int parity)
{
    return m->seg[r] + HCRT__SHM_CTL_BYTES + (size_t)parity * m->small;
}
/* Input and result areas come in pairs used by epoch parity, so that a device can copy the next chunk
 * in (and the previous one out) while the current one is reduced. */
static inline unsigned char *hcrt__shm_in(const hcrt__shm_t *m, int r, uint64_t gen)
{
    return m->seg[r] + HCRT__SHM_CTL_BYTES + 2 * m->small + (size_t)(gen & 1) * m->chunk;
}
static inline unsigned char *hcrt__shm_res(const hcrt__shm_t *m, int r, uint64_t gen)
{
    return m->seg[r] + HCRT__SHM_CTL_BYTES + 2 * m->small + (size_t)(2 + (gen & 1)) * m->chunk;
}

hcrt_status_t hcrt__shm_create(struct hcrt_comm *comm);
void hcrt__shm_destroy(struct hcrt_comm *comm);
hcrt_status_t hcrt__sched_shm_post(hcrt__sched_t *s, int flag, uint64_t value);
hcrt_status_t hcrt__sched_shm_wait(hcrt__sched_t *s, int flag, uint64_t value);
/* Waits for one node rank's flag only. */
hcrt_status_t hcrt__sched_shm_wait_one(hcrt__sched_t *s, int flag, uint64_t value, int node_rank);
/* True when the flags of node ranks [first, first + count) (count 0: all) are at least value (a poll). */
bool hcrt__shm_ready(const struct hcrt_comm *comm, int flag, uint64_t value, int first, int count);

/* ---- communicators (comm.c) -------------------------------------------------------------------------- */

typedef struct hcrt__rank_wire {
    char host[64];
    char backend[16];
    int32_t device_index;
    int32_t node_leader; /* comm rank of the lowest rank of its node */
    double speed;
    int64_t pid;
    char vendor[40];          /* "backend/vendor" of its vendor collective library, "" when it has none */
    int32_t vendor_local;     /* that library reaches only its node */
    int64_t vendor_min_bytes; /* its HCRT_VENDOR_MIN_BYTES (auto resolved) */
} hcrt__rank_wire_t;

typedef struct hcrt__op_kind_s hcrt__op_kind_t;
struct hcrt_request;

struct hcrt_comm {
    hcrt_context_t *ctx;
    MPI_Comm mpi;      /* collectives (a private dup); MPI_COMM_NULL without MPI */
    MPI_Comm p2p;      /* hcrt_comm_send/recv (another dup, so user tags never meet collective tags) */
    MPI_Comm node;     /* this rank's node (possibly a fake node, HCRT_FAKE_NODES) */
    MPI_Comm leaders;  /* node leaders (MPI_COMM_NULL on other ranks) */
    int rank, size;
    int node_rank, node_size, node_index, node_count;
    int *node_of;      /* node index of each rank */
    int *node_ranks;   /* comm ranks of this node, by node rank */
    hcrt__rank_wire_t *info;
    uint64_t seq;      /* collectives entered so far */
    hcrt__shm_t shm;
    bool has_shm;
    hcrt__block_t *pool;
    hcrt__stage_t *stages;
    struct hcrt_request *active; /* outstanding nonblocking requests, oldest first */
    void *vendor;                /* vendor fast path state (vendor.c), or NULL */
    int algo;                    /* HCRT_ALGO as hcrt__algo_t */
    double timeout;
    bool check_calls;
    bool shm_map;                /* HCRT_SHM_MAP */
    size_t chunk;                /* HCRT_CHUNK_SIZE */
    hcrt__alloc_cache_t extent_cache[2]; /* the last recv and send lookups of extent.c (zeroed: empty) */
    /* Poisoned (HCRT_ON_FAILURE=return): the status and message of the first failure, returned by
     * every later call (failure.c). */
    hcrt_status_t failed;
    char failed_msg[768];
    /* MPI requests of failed operations, never waited for (failure.c). */
    MPI_Request *graveyard;
    size_t ngrave, gravecap;
};

typedef enum hcrt__algo { HCRT__ALGO_AUTO, HCRT__ALGO_RING, HCRT__ALGO_RD, HCRT__ALGO_SHM, HCRT__ALGO_HIER,
                          HCRT__ALGO_MPI } hcrt__algo_t;

/* Tags: collective traffic uses tag = seq modulo this (every op on a communicator has its own). */
#define HCRT__TAG_SPAN 16384

/* ---- operation descriptions and dispatch (ops.c, algorithms in ring.c, rd.c, shm.c, hier.c) ----------- */

typedef enum hcrt__coll {
    HCRT__COLL_ALLREDUCE, HCRT__COLL_REDUCE, HCRT__COLL_BROADCAST, HCRT__COLL_ALLGATHER,
    HCRT__COLL_ALLGATHERV, HCRT__COLL_REDUCE_SCATTER, HCRT__COLL_ALLTOALL, HCRT__COLL_ALLTOALLV,
    HCRT__COLL_GATHER, HCRT__COLL_SCATTER, HCRT__COLL_BARRIER, HCRT__COLL_COUNT
} hcrt__coll_t;

const char *hcrt__coll_name(hcrt__coll_t c);

/* One call, as the algorithms see it (host pointers: device buffers were staged already). */
typedef struct hcrt__args {
    hcrt__coll_t coll;
    const void *send; /* NULL-free: in place is resolved (send == recv where the op allows) */
    void *recv;
    size_t count;
    hcrt_dtype_t dtype;
    hcrt_op_t op;
    int root;
    const size_t *counts, *displs, *scounts, *sdispls;
    hcrt_device_t *device; /* the caller's device, NULL for host */
    bool blocking;
    const char *algo;      /* for the trace: a path that bypassed the schedule ("vendor", "shm"), or NULL */
} hcrt__args_t;

/* The ranks a point-to-point algorithm runs over: the communicator, or its node leaders (hier.c). */
typedef struct hcrt__group {
    MPI_Comm mpi;
    int rank, size;
} hcrt__group_t;

/* Algorithms: each appends rounds to s that perform the operation on host buffers, in place on buf.
 * tmp is scratch of one message: the whole buffer (rd) or one ring block (ring). */
hcrt_status_t hcrt__rd_allreduce(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t count, void *tmp);
hcrt_status_t hcrt__ring_allreduce(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t count, void *tmp);
hcrt_status_t hcrt__ring_reduce_scatter(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t blockcount,
                                        void *tmp);
hcrt_status_t hcrt__ring_allgather(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t blockbytes);
hcrt_status_t hcrt__tree_broadcast(hcrt__sched_t *s, const hcrt__group_t *g, void *buf, size_t bytes, int root);
hcrt_status_t hcrt__dissem_barrier(hcrt__sched_t *s, const hcrt__group_t *g);
/* Shared-memory algorithms over the node's ranks (shm.c). */
hcrt_status_t hcrt__shm_allreduce(hcrt__sched_t *s, const void *send, void *recv, size_t count);
hcrt_status_t hcrt__shm_broadcast(hcrt__sched_t *s, void *buf, size_t bytes, int root);
hcrt_status_t hcrt__shm_barrier(hcrt__sched_t *s);
/* One segment larger than the small areas, on device memory, copied by the device itself. */
hcrt_status_t hcrt__shm_allreduce_dev(hcrt__sched_t *s, const void *send, void *recv, size_t count, double scale);
/* The same with the device reducing its own slice in the registered window (needs hcrt__shm_map). */
hcrt_status_t hcrt__shm_allreduce_mapped(hcrt__sched_t *s, const void *send, void *recv, size_t count, double scale);
/* Registers the node window for the kernels of dev (once per communicator): HCRT_OK when dev may use
 * hcrt__shm_allreduce_mapped, HCRT_ERR_NOT_SUPPORTED when it may not (HCRT_SHM_MAP=0, no backend support,
 * the backend refused, or the window is registered for another device). */
hcrt_status_t hcrt__shm_map(struct hcrt_comm *comm, hcrt_device_t *dev);
/* Node step, leaders across nodes, node step (hier.c). tmp: one segment. */
hcrt_status_t hcrt__hier_allreduce(hcrt__sched_t *s, const void *send, void *recv, size_t count, void *tmp);

/* Largest message of recursive doubling (bytes); larger segments use the ring. */
#define HCRT__RD_MAX_BYTES (64 * 1024)

/* ---- deadlines, failures, checks (deadline.c, failure.c, check.c) ----------------------------------------- */

/* Marks entry into collective number seq (side channel read by peers on timeout). */
void hcrt__deadline_enter(struct hcrt_comm *comm, uint64_t seq);

/* The state of one wait under the deadline (hcrt__deadline_poll). */
typedef struct hcrt__waiter {
    const char *opname;
    uint64_t seq;
    size_t bytes;
    int peer;            /* point-to-point: the peer; -1 for collectives */
    hcrt_device_t *dev;  /* device whose health is polled (staging), or NULL */
    bool device_only;    /* the wait is for the device's own work only (its copies and kernels) */
    double start;        /* when the wait began */
    double next_check;   /* next liveness and health check */
} hcrt__waiter_t;

void hcrt__waiter_init(hcrt__waiter_t *w, const char *opname, uint64_t seq, size_t bytes, int peer,
                       hcrt_device_t *dev);
/*
 * Called by every waiting loop whenever it reads the clock: fails the operation (hcrt__comm_failed)
 * when the deadline passed (naming the ranks that had not arrived), when a node peer failed its own
 * call or died, or when `dev` is lost; HCRT_OK otherwise. Under HCRT_ON_FAILURE=abort a failure never
 * returns. The cheap checks (clock, peers' failure flags) run at every call, the others every 0.25 s
 * from 0.5 s into the wait.
 */
hcrt_status_t hcrt__deadline_poll(struct hcrt_comm *comm, hcrt__waiter_t *w);

/*
 * A collective, request or point-to-point call of comm failed with `status` on this rank (the detail is
 * in fmt). Poisons the communicator (the first failure only: later ones keep its message), raises this
 * rank's failure flag in the node window, fails the other outstanding requests, and applies the exit
 * policy through hcrt__fail (`designated`: this rank aborts the job at once). Returns the status to give
 * the caller (only under HCRT_ON_FAILURE=return).
 */
hcrt_status_t hcrt__comm_failed(struct hcrt_comm *comm, bool designated, hcrt_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* HCRT_OK when comm may be used; else the first failure's status, naming it (func: the public call). */
hcrt_status_t hcrt__comm_usable(const struct hcrt_comm *comm, const char *func);
/* Keeps an MPI request of a failed operation, never to be waited for (freed at destroy when MPI
 * completed or cancelled it). */
void hcrt__comm_bury(struct hcrt_comm *comm, MPI_Request *req);
/* At destroy: whether every buried request is complete (then quarantined memory may be freed). */
bool hcrt__comm_graveyard_settled(struct hcrt_comm *comm);

hcrt_status_t hcrt__check_call(struct hcrt_comm *comm, const char *func, const hcrt__args_t *a, uint64_t seq);

/* Checks the bytes the call's buffers span against the allocations hcrt made (extent.c). Local. */
hcrt_status_t hcrt__check_extents(struct hcrt_comm *comm, const char *func, const hcrt__args_t *a);

/* Runs a schedule to completion (blocking), progressing the communicator's requests and enforcing the
 * deadline. */
hcrt_status_t hcrt__run_blocking(struct hcrt_comm *comm, hcrt__sched_t *s, const char *opname, uint64_t seq,
                                 size_t bytes);
/* Polls until every node rank's flag reaches value (deadline enforced), for inline fast paths. */
hcrt_status_t hcrt__wait_flags(struct hcrt_comm *comm, int flag, uint64_t value, const char *opname, uint64_t seq,
                               size_t bytes);
/* A blocking host allreduce that fits the small areas, run inline without a schedule (shm.c). */
hcrt_status_t hcrt__shm_allreduce_small_now(struct hcrt_comm *comm, const hcrt__args_t *a, uint64_t seq);
/* Runs the call on a fast path if one applies (build.c); HCRT_ERR_NOT_SUPPORTED otherwise. */
hcrt_status_t hcrt__fast_path(struct hcrt_comm *comm, const hcrt__args_t *a, uint64_t seq);

/* Progresses every outstanding request of comm once. */
void hcrt__progress_requests(struct hcrt_comm *comm);
/* Ends every outstanding request of a communicator that just failed, with its failure (progress.c). */
void hcrt__requests_fail_all(struct hcrt_comm *comm);

/* The result buffer of a call, where an HCRT_FAULT corrupt rule at the collective flips one bit once the
 * call completed (ops.c). */
typedef struct hcrt__result {
    hcrt_device_t *device; /* NULL: host memory */
    void *ptr;             /* NULL: nothing to corrupt (barrier, reduce off the root) */
    size_t bytes;
    bool corrupt;
} hcrt__result_t;
hcrt_status_t hcrt__result_fault(struct hcrt_comm *comm, const hcrt__result_t *r);

/* Hands a built schedule to a new request and starts it (progress.c). */
hcrt_status_t hcrt__request_start(struct hcrt_comm *comm, hcrt__sched_t *s, hcrt__block_t **blocks, int nblocks,
                                  const char *name, uint64_t seq, size_t bytes, const hcrt__result_t *result,
                                  hcrt_request_t **req);

/* Builds the schedule of one call (build.c); staging included. */
hcrt_status_t hcrt__build(struct hcrt_comm *comm, const hcrt__args_t *a, hcrt__sched_t *s,
                          hcrt__block_t **blocks, int *nblocks);

/* ---- the timeline (trace.c) ----------------------------------------------------------------------------- */

/* The algorithm a call runs, as the trace names it (build.c: mirrors the choices hcrt__build makes). */
const char *hcrt__algo_label(const struct hcrt_comm *c, const hcrt__args_t *a);

/* What the trace records of one collective; kept by a nonblocking request until it completes. */
typedef struct hcrt__coll_trace {
    const char *name, *algo;
    uint64_t seq;
    size_t bytes;
    hcrt__coll_t coll;
    hcrt_dtype_t dtype;
    hcrt_op_t op;
    const char *backend; /* of the caller's buffers */
    bool blocking;
    double start;        /* trace clock */
} hcrt__coll_trace_t;

/* Fills the record of the call just started (comm->seq is its sequence number). */
void hcrt__coll_trace_begin(struct hcrt_comm *comm, const hcrt__args_t *a, const char *name, size_t bytes,
                            double start, hcrt__coll_trace_t *t);
/* Writes the complete event of a finished call. */
void hcrt__coll_trace_end(struct hcrt_comm *comm, const hcrt__coll_trace_t *t, hcrt_status_t status);
/* Hands the record to a nonblocking request: its event is written when it completes (progress.c). */
void hcrt__request_trace(struct hcrt_request *req, const hcrt__coll_trace_t *t);

/*
 * Vendor groups (vendor.c; collectives/vendor.h): same-vendor ranks run allreduce, reduce_scatter,
 * allgather and broadcast on their vendor library (NCCL, RCCL, simccl), hcrt joins the groups.
 */
/* Fills the vendor fields of this rank's entry of the rank table (before it is exchanged). */
void hcrt__vendor_describe(const struct hcrt_comm *comm, hcrt__rank_wire_t *self);
/* Splits the communicator into vendor groups from the exchanged table (collective; sets comm->vendor,
 * which stays NULL when no group can use a vendor library). */
hcrt_status_t hcrt__vendor_setup(struct hcrt_comm *comm);
/* Runs a blocking call on the vendor-group path: HCRT_ERR_NOT_SUPPORTED when it takes hcrt's own path
 * (a decision every rank takes alike, from the call and the communicator only). */
hcrt_status_t hcrt__vendor_run(struct hcrt_comm *comm, const hcrt__args_t *a, uint64_t seq, size_t bytes);
/* The job is about to end (deadline, dead peer): names the vendor group whose library step this rank was
 * waiting for (release false), or aborts this rank's vendor communicator, so that no rank stays inside
 * the vendor library (release true). */
void hcrt__vendor_abort(struct hcrt_comm *comm, bool release);
void hcrt__vendor_destroy(struct hcrt_comm *comm);
/* Enqueues a HCRT__STEP_VCOLL step's vendor collective (from sched.c). */
hcrt_status_t hcrt__vendor_enqueue(hcrt__sched_t *s, const hcrt__step_t *step);

/* Relaxes a polling loop: spins briefly, then yields the core (ranks may outnumber cores). */
void hcrt__poll_relax(unsigned *spins);

#endif /* HCRT_COLL_H */
