/*
 * hcrt/ckpt.h - sharded, asynchronous, multi-level checkpoints (docs/architecture.md, "How a checkpoint
 * save and restore flow"; format in docs/checkpoint-format.md).
 *
 * A checkpointer belongs to a group of ranks (a communicator, or the world). Every rank registers the tensors it holds:
 * a buffer on any device (host, sim, cuda, ...), its global shape, and whether the rank holds the whole
 * tensor (replicated: every rank has the same bytes) or a slab of rows along the first dimension.
 * hcrt_ckpt_save() copies all registered tensors into a persistent host snapshot pool and returns; a
 * background thread writes the rank's data file (node-local level first, then the shared directory)
 * with a checksum per chunk and fsyncs it; the ranks then agree that every file is durable and rank 0
 * commits the step by renaming its manifest into place. A step without a manifest does not exist.
 *
 * hcrt_ckpt_restore() loads the newest committed step whose checksums verify, from the fastest level
 * holding it (this node's node-local directory, memory and partner copies, then a copy on another node
 * sent over MPI, then the shared directory), into any world size and any backend mix: each rank reads
 * the rows it needs by their global offsets. A corrupt or truncated step is reported by file, tensor
 * and chunk, and the restore falls back to the next older committed step. All ranks always agree on the
 * step restored.
 *
 * Failures. A save that fails on one rank (its snapshot copy, a full disk, a lost device, an injected
 * fault) fails on every rank: the failing rank still reports to rank 0, whose verdict names the rank and
 * the cause. Every wait runs under HCRT_TIMEOUT: the ranks' agreement on a save (rank 0 then names the
 * ranks that never reported), the wait for this rank's own writer, the snapshot's device copies and a
 * restore's agreement (so HCRT_TIMEOUT must exceed the time the slowest rank takes to write its data
 * file). A failed save or restore (other than a restore that finds no step, or none that verifies,
 * which is returned) then follows the exit policy of hcrt/exit.h: by default
 * the job ends with the failure's exit status (HCRT_EXIT_CKPT_IO for I/O, HCRT_EXIT_DEVICE for a device,
 * HCRT_EXIT_TIMEOUT for a deadline); with HCRT_ON_FAILURE=return the call returns it (a save whose
 * agreement itself did not complete leaves the checkpointer unusable: later calls return that failure).
 *
 * Collective calls (every rank of the group must make them, in the same order): hcrt_ckpt_open,
 * hcrt_ckpt_save, hcrt_ckpt_wait, hcrt_ckpt_restore, hcrt_ckpt_close. hcrt_ckpt_test is collective in
 * the sense that every rank must keep calling it (or wait) until it reports done. register, latest
 * and list are local. A checkpointer is not thread-safe: call it from one application thread (the one
 * that makes MPI calls); its own background thread never calls MPI.
 */
#ifndef HCRT_CKPT_H
#define HCRT_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hcrt/hcrt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hcrt_ckpt hcrt_ckpt_t;

/* The communicator type of hcrt/comm.h; only its pointer is used here. */
struct hcrt_comm;

/* Step argument of hcrt_ckpt_restore(): the newest committed step that verifies. */
#define HCRT_CKPT_LATEST (-1)

/* Longest tensor name, in bytes without the NUL. */
#define HCRT_CKPT_NAME_MAX 255

/* Most dimensions of a registered tensor. */
#define HCRT_CKPT_MAX_DIMS 8

/* What hcrt_ckpt_save() does while the previous save still persists. */
typedef enum hcrt_ckpt_busy {
    HCRT_CKPT_WAIT = 0,  /* wait for the previous save to commit, then snapshot (default) */
    HCRT_CKPT_REFUSE = 1 /* return HCRT_ERR_BUSY at once; the application retries later */
} hcrt_ckpt_busy_t;

typedef struct hcrt_ckpt_params {
    size_t struct_size;
    /* Shared checkpoint directory, visible to every rank (created if missing). Required. */
    const char *dir;
    /* Node-local fast directory; NULL uses HCRT_CKPT_LOCAL_DIR (default /dev/shm/hcrt-ckpt), "" turns
     * the node-local level off. Files go into a subdirectory named after `dir`, so jobs with different
     * shared directories never mix. */
    const char *local_dir;
    /* Number of newest committed steps kept; 0 uses HCRT_CKPT_KEEP (default 2). */
    int keep;
    /* HCRT_CKPT_WAIT or HCRT_CKPT_REFUSE. */
    hcrt_ckpt_busy_t busy;
    /* Copy of each rank's snapshot on a partner rank: -1 uses HCRT_CKPT_PARTNER (default on), 0 off, 1
     * on. The partner is a rank on another node when there is one; it keeps the copy in memory and in
     * its node's node-local directory (when that level is on), so a lost node's data survive the
     * relaunch (docs/checkpoint-format.md, "Partner copies"). */
    int partner;
} hcrt_ckpt_params_t;

/* Fills params with defaults: struct_size, dir NULL (must be set), local_dir NULL, keep 0, busy
 * HCRT_CKPT_WAIT, partner -1. */
HCRT_EXPORT void hcrt_ckpt_params_init(hcrt_ckpt_params_t *params);

/*
 * Opens a checkpointer over the ranks of `comm` (an hcrt_comm_t of hcrt/comm.h, created on the same
 * context), or of the context's world (every rank of the job) when comm is NULL. The checkpointer
 * duplicates the communicator: its traffic never mixes with the application's, and comm may be
 * destroyed afterwards. Collective over those ranks. Creates params->dir (and the node-local directory)
 * when missing. Errors: HCRT_ERR_INVALID_ARG (ctx, params, params->dir NULL or empty, keep < 0, bad
 * busy, comm of another context), HCRT_ERR_IO (directory cannot be created, the message names it),
 * HCRT_ERR_MPI, HCRT_ERR_NO_MEMORY. *ck is set only on success; release it with hcrt_ckpt_close().
 */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_open(hcrt_context_t *ctx, struct hcrt_comm *comm,
                                         const hcrt_ckpt_params_t *params, hcrt_ckpt_t **ck);

/* The part of a tensor this rank holds: rows [row_offset, row_offset + rows) of dimension 0. */
typedef struct hcrt_ckpt_shard {
    uint64_t row_offset;
    uint64_t rows;
} hcrt_ckpt_shard_t;

/*
 * Registers one tensor under `name` (1..HCRT_CKPT_NAME_MAX bytes of printable characters, no '/', not
 * "." or ".."; unique in the checkpointer). `buf` is where the rank's part lives (any device; hcrt
 * keeps the view, not a copy: the memory must stay valid until close). `global_shape` has `ndims`
 * (1..HCRT_CKPT_MAX_DIMS) entries. `shard` NULL means replicated: buf.count equals the product of
 * global_shape and every rank holds the same values (rank 0's are saved). Otherwise buf.count must equal
 * shard->rows times the product of global_shape[1..]; the shards of all ranks must tile dimension 0
 * exactly (checked at the first save: HCRT_ERR_MISMATCH names the tensor). Every rank registers the same
 * names with the same dtype and global shape. Local; not allowed while a save is in flight
 * (HCRT_ERR_STATE). Errors: HCRT_ERR_INVALID_ARG naming the argument (also when this rank's part, or all
 * its registered parts together, would exceed 2^62 bytes), HCRT_ERR_NO_MEMORY.
 */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_register(hcrt_ckpt_t *ck, const char *name, hcrt_buffer_t buf,
                                             int ndims, const uint64_t *global_shape,
                                             const hcrt_ckpt_shard_t *shard);

/*
 * Saves every registered tensor and `meta` (meta_len bytes, may be NULL/0; at most 64 MiB; rank 0's is
 * kept) as step `step` (>= 0, the same on every rank, above the step of the last save that did not
 * fail and of the last restore). Returns once the snapshot is in host memory; the application may then
 * change its buffers. Persisting, agreement
 * and commit continue in the background and are finished by hcrt_ckpt_wait(), hcrt_ckpt_test() or the
 * next save. While the previous save is in flight, params.busy decides: wait for it, or return
 * HCRT_ERR_BUSY (nothing started). The first save allocates and pre-touches the snapshot pool (slow
 * once). Collective. Errors: HCRT_ERR_INVALID_ARG, HCRT_ERR_STATE (nothing registered), HCRT_ERR_BUSY,
 * the commit error of the previous save when it failed, and this save's failure when this rank could not
 * take its snapshot (it then waits for the other ranks to learn it, as wait() would).
 */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_save(hcrt_ckpt_t *ck, int64_t step, const void *meta, size_t meta_len);

/*
 * Waits until the save in flight is committed (or failed) and returns its result: HCRT_OK when the step
 * is committed on every rank; HCRT_ERR_IO (a rank could not write, the message names rank and file), the
 * device error of a rank whose snapshot failed, HCRT_ERR_TIMEOUT (the agreement or this rank's writer
 * passed HCRT_TIMEOUT), HCRT_ERR_MISMATCH (ranks registered inconsistent tensors or steps). HCRT_OK when
 * nothing is in flight. Failures other than HCRT_ERR_MISMATCH end the job under the default exit policy
 * (see "Failures" above). Collective.
 */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_wait(hcrt_ckpt_t *ck);

/* Advances the save in flight without blocking on disk: *done = true once it is committed or failed
 * (its result is then returned, as by wait). Every rank must keep calling test (or call wait) until done:
 * the agreement is made of nonblocking MPI operations started here. */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_test(hcrt_ckpt_t *ck, bool *done);

/* Newest committed step in the shared directory (manifest in place, not verified). HCRT_ERR_NOT_FOUND
 * when there is none. Local. */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_latest(hcrt_ckpt_t *ck, int64_t *step);

/* Committed steps in the shared directory, newest first: the first min(max, total) go to steps[] and
 * *n is the total number (so max 0 and steps NULL counts them). Local. */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_list(hcrt_ckpt_t *ck, int64_t *steps, size_t max, size_t *n);

/*
 * Restores `step` (or HCRT_CKPT_LATEST) into the registered buffers and copies the metadata blob into
 * meta_buf (capacity cap; meta_buf may be NULL when cap is 0). *meta_len gets the blob's full length (if
 * larger than cap, only cap bytes are copied) and *restored_step the step loaded; either pointer may be
 * NULL. Every chunk read is verified. With HCRT_CKPT_LATEST a step that fails (corrupt, truncated, or
 * missing on every level) is reported with a warning naming the file, tensor and chunk, and the next
 * older committed step is tried; with an explicit step there is no fallback. The registered tensors
 * must exist in the checkpoint with the same dtype and global shape (the sharding may differ). Waits for
 * a save in flight first. Rank 0 draws a progress bar on stderr when it is a terminal and the registered
 * state is 1 GiB or more. Collective; all ranks restore the same step.
 * Errors: HCRT_ERR_NOT_FOUND (no committed step, or `step` is not committed), HCRT_ERR_CORRUPT (every
 * candidate failed verification; the message names the first failure), HCRT_ERR_MISMATCH (a registered
 * tensor is missing or differs in dtype/shape), HCRT_ERR_IO. On failure the registered buffers hold
 * unspecified data.
 */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_restore(hcrt_ckpt_t *ck, int64_t step, void *meta_buf, size_t cap,
                                            size_t *meta_len, int64_t *restored_step);

/* Finishes a save in flight (as wait), stops the background thread, frees the pools. Collective. NULL
 * is a no-op. Returns the in-flight save's result. */
HCRT_EXPORT hcrt_status_t hcrt_ckpt_close(hcrt_ckpt_t *ck);

#ifdef __cplusplus
}
#endif

#endif /* HCRT_CKPT_H */
