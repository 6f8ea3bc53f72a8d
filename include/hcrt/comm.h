/*
 * hcrt/comm.h - communicators and collective operations over MPI, on buffers of any backend.
 *
 * A communicator wraps an MPI communicator (a private duplicate: hcrt's traffic never mixes with the
 * application's). At creation its ranks exchange, once, where each of them lives: host, node, backend,
 * device and the device's relative speed (hcrt_comm_rank_info()).
 *
 * Buffers. Every operation takes plain pointers plus the `device` they live on. device NULL means host
 * memory (the cpu backend). A device buffer (e.g. on a sim or cuda device) is never dereferenced by hcrt:
 * when MPI cannot take that memory, the data is staged through pinned host memory in chunks, the
 * device->host copy of one chunk overlapping the exchange and reduction of the previous one. Send and
 * receive buffers of one call live on the same device. Pointers need no alignment.
 *
 * Mixed communicators. Each rank passes its own device: in one call rank 0 may reduce host memory, rank 1
 * memory of a sim device and rank 2 memory of a cuda device. Every rank computes on host bytes with the
 * same algorithm, so the result is bit for bit the result of a homogeneous run.
 *
 * In place. Pass HCRT_IN_PLACE as the send buffer (or, where the operation's input and output coincide,
 * the receive buffer itself): allreduce, reduce (at root), broadcast, allgather (this rank's block already
 * sits at recv + rank * count), reduce_scatter (the full input is in recv; the result lands at its start),
 * gather (at root, the root's block at recv + root * count).
 *
 * Determinism. The same inputs, rank count and algorithm give bit-identical results on every run and on
 * every rank, floating point included. f16 and bf16 accumulate in f32; HCRT_OP_AVG sums and multiplies by
 * 1/nranks once at the end (integers truncate toward zero).
 *
 * Algorithms (HCRT_ALGO forces one; "auto" chooses by message size, rank count and placement): recursive
 * doubling (small messages, any rank count: extra ranks fold into partners first), a pipelined ring of
 * reduce-scatter and allgather (large messages), a shared-memory path when every rank is on one node
 * (MPI-3 shared windows), hierarchical (node step, leaders across nodes, node step) when ranks span nodes,
 * and Open MPI's own ("mpi"). A reduction is carried out in segments of HCRT_CHUNK_SIZE bytes, identical
 * on every rank whatever its buffer location (so HCRT_CHUNK_SIZE and HCRT_ALGO must be the same on every
 * rank). docs/performance.md describes the algorithms and their measured speed.
 *
 * Deadlines. Every collective must complete within HCRT_TIMEOUT seconds (0 disables), the device work it
 * waits for included (staging copies and kernels; the device's health is polled while it waits, so a
 * lost device is named). When the deadline passes, the call fails naming the operation, the
 * communicator's sequence number of the call, the buffer size and the ranks that had not yet entered the
 * call (with their hosts), or the device whose work did not finish. Ranks of the same node are read from
 * the shared window; when the communicator spans nodes the timed-out ranks first swap what they saw
 * (0.5 s), so every survivor names the late ranks. A waiting rank that sees a peer of its node die
 * (checked from 0.5 s into a wait) fails with HCRT_ERR_PEER_DEAD, unless Open MPI ends the job first; one
 * that sees a node peer's own call fail fails at once with that peer's status.
 *
 * Failures. A call that fails on this rank after it started (a deadline, a dead or failed peer, an MPI or
 * device error, an injected fault) follows the exit policy of hcrt/exit.h: by default (HCRT_ON_FAILURE=
 * abort) the job ends with the failure's exit status (HCRT_EXIT_TIMEOUT, HCRT_EXIT_PEER_DEAD,
 * HCRT_EXIT_DEVICE, HCRT_EXIT_MPI, ...) after one error line naming the rank, its host and device, the call
 * and the cause. With HCRT_ON_FAILURE=return the call returns that status, and the communicator is
 * poisoned: every later call on it (collectives, send/recv, requests, split, dup) returns the first
 * failure's status and names it, and nothing the failed call left behind is reused (its shared-memory
 * epochs, MPI requests, pool blocks, staging stream), so no peer is ever released onto stale data; create
 * a fresh communicator to go on. Receives the failed call still had pending are cancelled where MPI can;
 * keep its buffers until the communicator is destroyed. Argument errors and HCRT_ERR_MISMATCH are found
 * before any data moves and are always returned, poisoning nothing.
 *
 * Checking mode. With HCRT_CHECK_CALLS=1 every collective first compares (operation, count, dtype, op,
 * root) across ranks; a difference returns HCRT_ERR_MISMATCH on every rank with a message naming the ranks
 * and the fields that differ, instead of hanging or corrupting memory.
 *
 * Fault injection (tests). HCRT_FAULT=hang:rank=R:op=OP:seq=N makes rank R sleep forever when it enters
 * its call number N (the communicator's sequence number, counted from 1) if that call is operation OP
 * (allreduce, broadcast, reduce_scatter, barrier, ...; site=coll instead of op= matches any operation);
 * kill makes it die of SIGKILL there instead, slow:...:secs=S delays it, error and device_lost make the
 * call fail half way through (HCRT_ERR_MPI; HCRT_ERR_DEVICE_LOST with the device marked lost), corrupt
 * flips one bit of this rank's result once the call completed. R is the world rank. Keys, kinds and
 * the other sites: docs/fault-injection.md.
 *
 * Thread safety: a communicator is used by one thread at a time (like an MPI communicator under
 * MPI_THREAD_SERIALIZED); different communicators may be used from different threads one call at a time.
 * Errors: HCRT_ERR_INVALID_ARG names the argument; HCRT_ERR_MPI, HCRT_ERR_BACKEND and the device errors
 * carry the detail in hcrt_last_error(ctx) of the communicator's context.
 */
#ifndef HCRT_COMM_H
#define HCRT_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/exit.h"
#include "hcrt/status.h"
#include "hcrt/types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hcrt_context;
struct hcrt_device;

typedef struct hcrt_comm hcrt_comm_t;
typedef struct hcrt_request hcrt_request_t;

/* Send-buffer value meaning "the input is already in the receive buffer" (see "In place" above). */
#define HCRT_IN_PLACE ((const void *)1)

/* Exit statuses of aborted jobs (HCRT_EXIT_TIMEOUT when a collective's deadline passed,
 * HCRT_EXIT_PEER_DEAD when a rank saw a peer die during a collective, ...): hcrt/exit.h. */

/* Color for hcrt_comm_split() meaning "this rank joins no new communicator" (MPI_UNDEFINED). */
#define HCRT_COMM_UNDEFINED (-1)

/* ------------------------------------------------------------------------------------------------ */
/* Communicators                                                                                     */

/*
 * Creates a communicator over every rank of the context (a duplicate of the context's world). Collective
 * over the world. Without MPI (HCRT_INIT_NO_MPI) the communicator has one rank and every operation is a
 * local copy. Destroy with hcrt_comm_destroy(). Errors: HCRT_ERR_INVALID_ARG (NULL ctx or comm),
 * HCRT_ERR_MPI, HCRT_ERR_NO_MEMORY.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_world(struct hcrt_context *ctx, hcrt_comm_t **comm);

/*
 * Creates a communicator over an application MPI communicator given by its Fortran handle
 * (MPI_Comm_c2f(comm) in C, comm.py2f() in mpi4py), so that bindings need no MPI header. hcrt duplicates
 * it; the application's communicator may be freed afterwards. Collective over that communicator.
 * HCRT_ERR_INVALID_ARG for MPI_COMM_NULL or an invalid handle, HCRT_ERR_STATE without MPI.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_from_mpi(struct hcrt_context *ctx, int64_t mpi_fint, hcrt_comm_t **comm);

/*
 * Splits like MPI_Comm_split: ranks with the same color form one new communicator, ordered by key (ties
 * by old rank). color HCRT_COMM_UNDEFINED (or any negative color) joins none: *out is set to NULL and
 * HCRT_OK returned. Collective over comm.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_split(hcrt_comm_t *comm, int color, int key, hcrt_comm_t **out);

/* A new communicator with the same ranks and rank order. Collective over comm. */
HCRT_EXPORT hcrt_status_t hcrt_comm_dup(hcrt_comm_t *comm, hcrt_comm_t **out);

/*
 * Frees a communicator: waits for its outstanding requests, frees its MPI communicators, shared windows
 * and staging buffers. Collective over comm (it frees MPI windows). NULL is a no-op. Requests of the
 * communicator must not be used afterwards. Destroy every communicator before hcrt_finalize().
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_destroy(hcrt_comm_t *comm);

/* This rank's rank in comm. */
HCRT_EXPORT hcrt_status_t hcrt_comm_rank(const hcrt_comm_t *comm, int *rank);

/* Number of ranks of comm. */
HCRT_EXPORT hcrt_status_t hcrt_comm_size(const hcrt_comm_t *comm, int *size);

/* Where one rank of a communicator lives. Strings live as long as the communicator. */
typedef struct hcrt_comm_rank_info {
    size_t struct_size;  /* set by the caller before the call */
    int rank;            /* rank in the communicator */
    int node;            /* index of its node in the communicator, 0 .. node_count - 1, by lowest rank */
    int local_rank;      /* rank among the communicator's ranks of that node */
    const char *host;    /* host name */
    const char *backend; /* backend of the rank's context device ("cpu", "sim", "cuda", ...) */
    int device_index;    /* index of that device within its backend */
    double speed;        /* relative speed of that device (1.0 for the reference host core) */
    int64_t pid;         /* process id on its host */
} hcrt_comm_rank_info_t;

/*
 * Fills *info for rank `rank` of comm from what the ranks exchanged at creation (no communication).
 * info->struct_size must be set; the library fills only the fields that fit. HCRT_ERR_INVALID_ARG for a
 * rank out of range.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_rank_info(const hcrt_comm_t *comm, int rank, hcrt_comm_rank_info_t *info);

/* Number of distinct nodes among comm's ranks. */
HCRT_EXPORT hcrt_status_t hcrt_comm_node_count(const hcrt_comm_t *comm, int *count);

/* ------------------------------------------------------------------------------------------------ */
/* Blocking collectives. Each is collective over comm: every rank calls it with matching arguments.    */
/* count is a number of elements of dtype (size_t: any size MPI can carry is split as needed); a NULL   */
/* buffer is allowed only where count is 0; device NULL means host memory.                             */

/*
 * recv[i] = op over ranks of send[i], for i < count, on every rank. send may be HCRT_IN_PLACE or recv.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_allreduce(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                              hcrt_dtype_t dtype, hcrt_op_t op, struct hcrt_device *device);

/* Like allreduce, but only `root` receives (recv is ignored, and may be NULL, on other ranks). At root
 * send may be HCRT_IN_PLACE or recv. HCRT_ERR_INVALID_ARG for a root out of range. */
HCRT_EXPORT hcrt_status_t hcrt_comm_reduce(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                           hcrt_dtype_t dtype, hcrt_op_t op, int root,
                                           struct hcrt_device *device);

/* Copies root's buf (count elements) into buf on every rank. */
HCRT_EXPORT hcrt_status_t hcrt_comm_broadcast(hcrt_comm_t *comm, void *buf, size_t count, hcrt_dtype_t dtype,
                                              int root, struct hcrt_device *device);

/* recv (count * nranks elements) receives every rank's send (count elements) in rank order. send may be
 * HCRT_IN_PLACE (this rank's block already at recv + rank * count). */
HCRT_EXPORT hcrt_status_t hcrt_comm_allgather(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                              hcrt_dtype_t dtype, struct hcrt_device *device);

/*
 * Rank r's send (counts[r] elements) lands at recv + displs[r] elements on every rank. counts and displs
 * have nranks entries, are the same on every rank, and must each fit in an int (MPI's limit). send may be
 * HCRT_IN_PLACE (this rank's block already at recv + displs[rank]).
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_allgatherv(hcrt_comm_t *comm, const void *send, void *recv,
                                               const size_t *counts, const size_t *displs, hcrt_dtype_t dtype,
                                               struct hcrt_device *device);

/*
 * send holds recvcount * nranks elements; rank r receives block r of the reduction (recvcount elements).
 * In place (send HCRT_IN_PLACE or recv): recv holds the full input and the result lands at its start.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_reduce_scatter(hcrt_comm_t *comm, const void *send, void *recv,
                                                   size_t recvcount, hcrt_dtype_t dtype, hcrt_op_t op,
                                                   struct hcrt_device *device);

/* Block j (count elements) of rank i's send lands as block i of rank j's recv. Out of place only. */
HCRT_EXPORT hcrt_status_t hcrt_comm_alltoall(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                             hcrt_dtype_t dtype, struct hcrt_device *device);

/* Like alltoall with per-peer counts and displacements in elements (each must fit in an int). */
HCRT_EXPORT hcrt_status_t hcrt_comm_alltoallv(hcrt_comm_t *comm, const void *send, const size_t *sendcounts,
                                              const size_t *sdispls, void *recv, const size_t *recvcounts,
                                              const size_t *rdispls, hcrt_dtype_t dtype,
                                              struct hcrt_device *device);

/* Root's recv (count * nranks) receives every rank's send (count) in rank order; recv is ignored
 * elsewhere. At root send may be HCRT_IN_PLACE. */
HCRT_EXPORT hcrt_status_t hcrt_comm_gather(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                           hcrt_dtype_t dtype, int root, struct hcrt_device *device);

/* Block r of root's send (count * nranks) lands in rank r's recv (count); send is ignored elsewhere. */
HCRT_EXPORT hcrt_status_t hcrt_comm_scatter(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                            hcrt_dtype_t dtype, int root, struct hcrt_device *device);

/* Returns once every rank of comm entered the barrier. */
HCRT_EXPORT hcrt_status_t hcrt_comm_barrier(hcrt_comm_t *comm);

/* ------------------------------------------------------------------------------------------------ */
/* Point to point (not collective: no sequence number, no call check; the deadline still applies).   */

/* Sends count elements to rank `peer` with `tag` (0 .. 32767). Returns when buf may be reused. */
HCRT_EXPORT hcrt_status_t hcrt_comm_send(hcrt_comm_t *comm, const void *buf, size_t count, hcrt_dtype_t dtype,
                                         int peer, int tag, struct hcrt_device *device);

/* Receives exactly count elements from rank `peer` with `tag`. A message of another size is
 * HCRT_ERR_MISMATCH. */
HCRT_EXPORT hcrt_status_t hcrt_comm_recv(hcrt_comm_t *comm, void *buf, size_t count, hcrt_dtype_t dtype,
                                         int peer, int tag, struct hcrt_device *device);

/* ------------------------------------------------------------------------------------------------ */
/* Nonblocking collectives                                                                           */

/*
 * The i* calls validate their arguments, start the operation and return a request at once; the
 * operation progresses whenever the caller tests or waits on any request of the communicator, or runs a
 * blocking operation on it (no background thread: MPI is initialised MPI_THREAD_SERIALIZED). Buffers must
 * stay valid and untouched until the request completes. Several requests may be outstanding; every rank
 * starts them in the same order. Nonblocking operations use the point-to-point algorithms (never the
 * shared-memory path, whose window is the communicator's one at a time). The deadline counts from the
 * start of the operation and is enforced while testing or waiting.
 */
HCRT_EXPORT hcrt_status_t hcrt_comm_iallreduce(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                               hcrt_dtype_t dtype, hcrt_op_t op, struct hcrt_device *device,
                                               hcrt_request_t **req);
HCRT_EXPORT hcrt_status_t hcrt_comm_ibroadcast(hcrt_comm_t *comm, void *buf, size_t count, hcrt_dtype_t dtype,
                                               int root, struct hcrt_device *device, hcrt_request_t **req);
HCRT_EXPORT hcrt_status_t hcrt_comm_iallgather(hcrt_comm_t *comm, const void *send, void *recv, size_t count,
                                               hcrt_dtype_t dtype, struct hcrt_device *device,
                                               hcrt_request_t **req);
HCRT_EXPORT hcrt_status_t hcrt_comm_ireduce_scatter(hcrt_comm_t *comm, const void *send, void *recv,
                                                    size_t recvcount, hcrt_dtype_t dtype, hcrt_op_t op,
                                                    struct hcrt_device *device, hcrt_request_t **req);
HCRT_EXPORT hcrt_status_t hcrt_comm_ibarrier(hcrt_comm_t *comm, hcrt_request_t **req);

/*
 * Progresses the communicator's outstanding operations and sets *done to whether `req` has completed.
 * Never blocks (beyond the progress itself). Once done, returns the operation's status (an error of the
 * operation is returned here, with its detail in hcrt_last_error()).
 */
HCRT_EXPORT hcrt_status_t hcrt_request_test(hcrt_request_t *req, bool *done);

/* Blocks until `req` completes (progressing the communicator's other requests too); returns its status. */
HCRT_EXPORT hcrt_status_t hcrt_request_wait(hcrt_request_t *req);

/* Frees a request. An incomplete request is waited for first (its peers depend on it). NULL is a no-op. */
HCRT_EXPORT hcrt_status_t hcrt_request_free(hcrt_request_t *req);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_COMM_H */
