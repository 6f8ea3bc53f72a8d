/*
 * runtime/checkpoint/ckpt_internal.h - the checkpointer object shared by the files of
 * runtime/checkpoint (api, snapshot, persist, commit, partner, gc, restore).
 *
 * Threads: the application thread makes every call and every MPI call; one background thread per
 * checkpointer (persist.c) writes data files. They share only the `job` block, under `mu`.
 */
#ifndef HCRT_CKPT_INTERNAL_H
#define HCRT_CKPT_INTERNAL_H

#include <pthread.h>

#include "hcrt/ckpt.h"
#include "runtime/checkpoint/format.h"
#include "runtime/internal.h"

#define CKPT_SUBSYS "ckpt"

typedef struct hcrt__ckpt_entry {
    char name[HCRT_CKPT_NAME_MAX + 1];
    hcrt_buffer_t buf;
    int ndims;
    uint64_t shape[HCRT_CKPT_MAX_DIMS];
    bool replicated;
    uint64_t row_offset, rows; /* this rank's rows (all of them when replicated) */
    uint64_t row_bytes;
    uint64_t bytes;            /* this rank's part */
    bool written;              /* this rank writes it: sharded, or replicated on rank 0 */
    uint64_t pool_offset;      /* in the snapshot pool; equals the file offset when written */
    uint64_t nchunks;
    uint64_t *sums;            /* checksums of the last persisted snapshot (persist thread) */
} hcrt__ckpt_entry_t;

typedef enum hcrt__ckpt_state {
    CKPT_IDLE = 0,
    CKPT_PERSISTING, /* the background thread writes */
    CKPT_GATHER_LEN, /* Igather of descriptor lengths posted */
    CKPT_GATHER,     /* Igatherv of descriptors posted */
    CKPT_BCAST       /* Ibcast of rank 0's verdict posted */
} hcrt__ckpt_state_t;

/* Rank 0's verdict on a save, broadcast to every rank. */
typedef struct hcrt__ckpt_verdict {
    int32_t status;
    int32_t pad;
    char msg[1000];
} hcrt__ckpt_verdict_t;

struct hcrt_ckpt {
    hcrt_context_t *ctx;
    MPI_Comm comm;     /* dup of the world: the checkpointer's traffic never mixes with the app's */
    int rank, size;
    char *dir;         /* shared directory */
    char *local_dir;   /* node-local level for this job's dir, NULL when off */
    int keep;
    hcrt_ckpt_busy_t busy;
    bool partner_on;
    hcrt_device_t *host;

    hcrt__ckpt_entry_t *entries;
    int nentries, cap;

    /* Snapshot pool: written tensors first, laid out exactly as the data file (file_bytes), then the
     * rest (replicated tensors this rank does not write), used as restore staging. Pre-touched. */
    unsigned char *pool;
    size_t pool_cap;
    hcrt_device_t *pool_dev; /* device whose pinned allocator made it, NULL for mmap */
    uint64_t file_bytes, pool_bytes;
    bool layout_dirty;
    int64_t pool_step;       /* step whose file image the pool holds, -1 when none */

    /* The save in flight. */
    hcrt__ckpt_state_t state;
    int64_t step, last_step;     /* in flight or last saved; the floor for the next save's step */
    int64_t last_committed;      /* last step this checkpointer committed or restored, -1 if none */
    unsigned char *meta;
    size_t meta_len, meta_cap;
    hcrt_status_t result;        /* of the last finished save, reported by the next wait/test/save */
    char result_msg[1024];

    /* Background writer, and its helper that computes checksums while the writer writes. */
    pthread_t thread, hasher;
    bool thread_started, hasher_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool job_pending, job_done, quit;
    bool hash_pending, hash_done;
    bool gc_pending;          /* garbage collection queued after a commit (runs on the writer) */
    int64_t gc_step;
    hcrt_status_t job_status;
    char job_err[1024];

    /* Agreement. */
    MPI_Request req;
    int desc_len;
    char *desc;
    int *lens, *displs;
    char *all;
    hcrt__ckpt_verdict_t verdict;

    /* Partner level. */
    int *partner_of;          /* partner_of[r]: rank that keeps r's snapshot; -1 without partner */
    char partner_mode[16];    /* other-host, same-host, none */
    char (*hosts)[HCRT__CKPT_HOST_MAX + 1];
    int *node_of;             /* node index of each rank from the communicator (HCRT_FAKE_NODES aware), or NULL */
    int nheld;                /* ranks whose snapshot this rank keeps */
    int *held_rank;
    unsigned char **held_buf;
    uint64_t *held_bytes, *held_cap;
    int64_t held_step;        /* step the held copies belong to once committed, -1 when none */
    int64_t held_pending;     /* step being received */
    MPI_Request *preq;        /* data sends and receives, and this rank's size message */
    int npreq, preq_cap;
    MPI_Request *sreq;        /* size messages from the ranks this rank keeps (nheld) */
    bool sizes_pending;
    uint64_t my_bytes;        /* the size message's buffer */
    /* The partner level of the save in flight: copies exchanged, then (other-host mode with a node-local
     * level) the kept copies written to LOCAL/step-N/partner/ by the writer thread, before this rank
     * reports its data durable. `pstage`, `pdisk` belong to the application thread; the `pcopy_*`
     * hand-off to the writer thread is under `mu`. */
    int pstage;               /* 0 idle, 1 exchanging, 2 writing to disk */
    bool pdisk;               /* kept copies go to node-local storage */
    bool pcopy_pending, pcopy_done;
    hcrt_status_t pcopy_status;
    char pcopy_err[1024];

    double t_save_start;
    double tr_save, tr_agree; /* trace clock at the save and at the start of the agreement (HCRT_TRACE) */

    /* Failures (commit.c). Every wait runs under HCRT_TIMEOUT: the agreement's from when this rank
     * entered it (t_agree), the wait for this rank's own writer from when wait() began. */
    double timeout;
    double t_agree;
    MPI_Request *len_reqs;    /* rank 0: one receive of a descriptor length per rank (so it can name the
                               * ranks that never reported) */
    int *len_done;            /* rank 0: indices for MPI_Testsome */
    /* The first failure that left the checkpointer unusable (an agreement that did not complete: its
     * MPI requests are still out), returned by every later call. */
    hcrt_status_t failed;
    char failed_msg[1024];
    bool writer_stuck;        /* the writer thread never finished: close() must not join it */

    /* Device->host copies of a snapshot run on a stream per device, waited for under the deadline. */
    struct {
        hcrt_device_t *dev;
        hcrt_stream_t *stream;
        hcrt_event_t *event;
    } snap[4];
};

/* snapshot.c */
hcrt_status_t hcrt__ckpt_layout(hcrt_ckpt_t *ck);
hcrt_status_t hcrt__ckpt_snapshot(hcrt_ckpt_t *ck, int64_t step);
/* Pre-touched host memory: mmap'd and populated, or pinned by `dev`'s backend when dev is not NULL. */
hcrt_status_t hcrt__ckpt_host_alloc(hcrt_ckpt_t *ck, hcrt_device_t *dev, size_t bytes, unsigned char **out);
void hcrt__ckpt_host_free(hcrt_device_t *dev, unsigned char *p, size_t bytes);

/* Frees the snapshot streams and events. */
void hcrt__ckpt_snapshot_free(hcrt_ckpt_t *ck);

/* persist.c */
hcrt_status_t hcrt__ckpt_thread_start(hcrt_ckpt_t *ck);
void hcrt__ckpt_thread_stop(hcrt_ckpt_t *ck);
void hcrt__ckpt_persist_start(hcrt_ckpt_t *ck);
bool hcrt__ckpt_persist_done(hcrt_ckpt_t *ck, bool block);
/* Waits up to `secs` for the writer to finish this rank's file; whether it did. */
bool hcrt__ckpt_persist_wait(hcrt_ckpt_t *ck, double secs);
/* Queues garbage collection after the commit of `step` on the writer thread; gc_wait waits for it. */
void hcrt__ckpt_gc_start(hcrt_ckpt_t *ck, int64_t step);
void hcrt__ckpt_gc_wait(hcrt_ckpt_t *ck);

/* commit.c */
hcrt_status_t hcrt__ckpt_progress(hcrt_ckpt_t *ck, bool block, bool *done);
/* Waits for one MPI request of the checkpointer's communicator under HCRT_TIMEOUT (for the collective
 * steps of restore); `what` names it in the failure, which follows the exit policy. */
hcrt_status_t hcrt__ckpt_mpi_wait(hcrt_ckpt_t *ck, MPI_Request *req, const char *what);
/* HCRT_OK, or the failure that made the checkpointer unusable, for `fn`. */
hcrt_status_t hcrt__ckpt_usable(const hcrt_ckpt_t *ck, const char *fn);

/* partner.c */
hcrt_status_t hcrt__ckpt_partner_setup(hcrt_ckpt_t *ck);
/* Starts the exchange of save `step`: this rank's image to its partner, receives of those it keeps.
 * Every rank of a save that reaches the agreement must have called it: a keeper waits for its ranks'
 * copies before it reports (hcrt__ckpt_partner_done). */
hcrt_status_t hcrt__ckpt_partner_post(hcrt_ckpt_t *ck, int64_t step);
/* Tests (or waits for) the exchange; *done when complete. */
hcrt_status_t hcrt__ckpt_partner_progress(hcrt_ckpt_t *ck, bool block, bool *done);
/* Completes this rank's share of the partner level of the save in flight: its copy sent, the copies it
 * keeps received and, in other-host mode with a node-local level, written and fsync'd under
 * LOCAL/step-N/partner/ by the writer thread. True when finished; a failure is folded into
 * ck->job_status and job_err, so that this rank's descriptor reports it and the step fails on every
 * rank. Called once the rank's own file is durable, before it reports to rank 0. */
bool hcrt__ckpt_partner_done(hcrt_ckpt_t *ck, bool block);
/* Writer thread: writes the kept copies of step ck->step to node-local storage (pcopy_err on failure). */
hcrt_status_t hcrt__ckpt_partner_write(hcrt_ckpt_t *ck);
void hcrt__ckpt_partner_free(hcrt_ckpt_t *ck);
/* The in-memory file image of writer `w` for `step` this rank holds (own pool or partner copy). */
const unsigned char *hcrt__ckpt_partner_image(const hcrt_ckpt_t *ck, int w, int64_t step, uint64_t *bytes);

/* gc.c */
void hcrt__ckpt_gc_shared(hcrt_ckpt_t *ck, int64_t committed);
/* Trims the node-local directory after the commit of `committed`: keeps every newer step (a peer on
 * this node may be writing it) and the steps among the newest `keep` committed in the shared one. */
void hcrt__ckpt_gc_local(hcrt_ckpt_t *ck, int64_t committed);
void hcrt__ckpt_install_gc_hook(void);

/* Local (node-level) step directory of a step. */
bool hcrt__ckpt_local_step_path(const hcrt_ckpt_t *ck, char *out, size_t cap, int64_t step);

/* Text of an MPI error code. */
const char *hcrt__ckpt_mpi_error(int code, char *buf, size_t cap);

#endif /* HCRT_CKPT_INTERNAL_H */
