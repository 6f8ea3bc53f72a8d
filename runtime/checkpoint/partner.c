/*
 * runtime/checkpoint/partner.c - the partner level: each rank's snapshot (its file image) is kept by a
 * partner rank on another node, in memory and, so that it outlives the process, in that node's
 * node-local storage (LOCAL/step-N/partner/rank-K.bin), so that losing one node loses no shard even
 * after the relaunch that every recovery is (docs/checkpoint-format.md, "Partner copies").
 *
 * Partners are chosen at open from the ranks' nodes (partner_map.c): a rank on another node when there
 * is one. When every rank is on one node ("same-host") the copy stays in memory only: a second copy on
 * the same storage as the node-local one would guard against nothing the first does not.
 *
 * The copies travel with nonblocking point-to-point MPI started by save() and completed by the commit's
 * progress (wait/test): save() waits for no other rank, and a keeper posts its receives once the size
 * message of its rank has arrived. A keeper writes what it received on the writer thread and reports
 * its own data durable only after that (partner_done), so a committed step's partner copies are all on
 * disk, fsync'd: the manifest's `partner` of a rank names the rank whose node holds its copy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint/ckpt_internal.h"

#define PIECE ((uint64_t)1 << 30) /* MPI counts are int: messages go in pieces of at most 1 GiB */
#define TAG_SIZE 7301
#define TAG_DATA 7302

hcrt_status_t hcrt__ckpt_partner_setup(hcrt_ckpt_t *ck)
{
    int n = ck->size;
    ck->partner_of = malloc((size_t)n * sizeof(int));
    ck->hosts = calloc((size_t)n, sizeof(*ck->hosts));
    if (ck->partner_of == NULL || ck->hosts == NULL)
        return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_open: out of memory");
    snprintf(ck->hosts[ck->rank], sizeof(ck->hosts[0]), "%s", ck->ctx->hostname);
    if (ck->node_of != NULL) {
        for (int r = 0; r < n; r++)
            snprintf(ck->hosts[r], sizeof(ck->hosts[0]), "node %d", ck->node_of[r]);
    } else if (ck->comm != MPI_COMM_NULL) {
        int rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, ck->hosts, (int)sizeof(ck->hosts[0]), MPI_CHAR,
                               ck->comm);
        if (rc != MPI_SUCCESS)
            return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_open: MPI_Allgather of host names failed");
    }
    snprintf(ck->partner_mode, sizeof(ck->partner_mode), "none");
    for (int r = 0; r < n; r++)
        ck->partner_of[r] = -1;
    if (!ck->partner_on)
        return HCRT_OK;
    const char *mode = hcrt__ckpt_partner_map(n, ck->hosts[0], sizeof(ck->hosts[0]), ck->partner_of);
    if (mode == NULL)
        return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_open: out of memory");
    snprintf(ck->partner_mode, sizeof(ck->partner_mode), "%s", mode);
    ck->pdisk = strcmp(mode, "other-host") == 0 && ck->local_dir != NULL;
    ck->nheld = 0;
    for (int r = 0; r < n; r++)
        if (ck->partner_of[r] == ck->rank)
            ck->nheld++;
    ck->held_rank = calloc((size_t)ck->nheld + 1, sizeof(int));
    ck->held_buf = calloc((size_t)ck->nheld + 1, sizeof(unsigned char *));
    ck->held_bytes = calloc((size_t)ck->nheld + 1, sizeof(uint64_t));
    ck->held_cap = calloc((size_t)ck->nheld + 1, sizeof(uint64_t));
    if (!ck->held_rank || !ck->held_buf || !ck->held_bytes || !ck->held_cap)
        return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_open: out of memory");
    for (int r = 0, k = 0; r < n; r++)
        if (ck->partner_of[r] == ck->rank)
            ck->held_rank[k++] = r;
    HCRT_DEBUG(CKPT_SUBSYS, "partner of rank %d is rank %d (%s)", ck->rank, ck->partner_of[ck->rank],
               ck->partner_mode);
    return HCRT_OK;
}

static hcrt_status_t add_req(hcrt_ckpt_t *ck)
{
    if (ck->npreq < ck->preq_cap)
        return HCRT_OK;
    int ncap = ck->preq_cap ? ck->preq_cap * 2 : 16;
    MPI_Request *n = realloc(ck->preq, (size_t)ncap * sizeof(*n));
    if (n == NULL)
        return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "checkpoint: out of memory");
    ck->preq = n;
    ck->preq_cap = ncap;
    return HCRT_OK;
}

/* Posts nonblocking transfers of `bytes` at `buf` in pieces. */
static hcrt_status_t post_pieces(hcrt_ckpt_t *ck, unsigned char *buf, uint64_t bytes, int peer, bool send)
{
    for (uint64_t off = 0; off < bytes; off += PIECE) {
        int len = (int)(bytes - off < PIECE ? bytes - off : PIECE);
        HCRT_CHECK(add_req(ck));
        int rc = send ? MPI_Isend(buf + off, len, MPI_BYTE, peer, TAG_DATA, ck->comm, &ck->preq[ck->npreq])
                      : MPI_Irecv(buf + off, len, MPI_BYTE, peer, TAG_DATA, ck->comm, &ck->preq[ck->npreq]);
        if (rc != MPI_SUCCESS)
            return hcrt__error(ck->ctx, HCRT_ERR_MPI, "checkpoint: partner %s with rank %d failed",
                               send ? "send" : "receive", peer);
        ck->npreq++;
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__ckpt_partner_post(hcrt_ckpt_t *ck, int64_t step)
{
    int partner = ck->partner_of ? ck->partner_of[ck->rank] : -1;
    ck->held_step = -1;
    ck->held_pending = step;
    ck->npreq = 0;
    ck->sizes_pending = false;
    ck->pstage = 0;
    if (partner < 0)
        return HCRT_OK;
    ck->pstage = 1;
    /* Nothing here waits for another rank: the keepers learn the sizes from the first message and post
     * their receives for the data in partner_progress(); MPI holds the data messages until then. */
    if (ck->sreq == NULL && ck->nheld > 0) {
        ck->sreq = malloc((size_t)ck->nheld * sizeof(MPI_Request));
        if (ck->sreq == NULL)
            return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "checkpoint: out of memory");
    }
    for (int k = 0; k < ck->nheld; k++)
        if (MPI_Irecv(&ck->held_bytes[k], 1, MPI_UINT64_T, ck->held_rank[k], TAG_SIZE, ck->comm, &ck->sreq[k]) !=
            MPI_SUCCESS)
            return hcrt__error(ck->ctx, HCRT_ERR_MPI, "checkpoint: partner receive from rank %d failed",
                               ck->held_rank[k]);
    ck->sizes_pending = ck->nheld > 0;
    ck->my_bytes = ck->file_bytes;
    HCRT_CHECK(add_req(ck));
    if (MPI_Isend(&ck->my_bytes, 1, MPI_UINT64_T, partner, TAG_SIZE, ck->comm, &ck->preq[ck->npreq]) != MPI_SUCCESS)
        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "checkpoint: partner send to rank %d failed", partner);
    ck->npreq++;
    return post_pieces(ck, ck->pool, ck->file_bytes, partner, true);
}

/* Once the sizes arrived: (re)allocates the buffers that are too small and posts the data receives. */
static hcrt_status_t post_receives(hcrt_ckpt_t *ck)
{
    for (int k = 0; k < ck->nheld; k++) {
        if (ck->held_bytes[k] > ck->held_cap[k]) {
            hcrt__ckpt_host_free(NULL, ck->held_buf[k], ck->held_cap[k]);
            ck->held_buf[k] = NULL;
            ck->held_cap[k] = 0;
            HCRT_CHECK(hcrt__ckpt_host_alloc(ck, NULL, ck->held_bytes[k], &ck->held_buf[k]));
            ck->held_cap[k] = ck->held_bytes[k];
        }
        HCRT_CHECK(post_pieces(ck, ck->held_buf[k], ck->held_bytes[k], ck->held_rank[k], false));
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__ckpt_partner_progress(hcrt_ckpt_t *ck, bool block, bool *done)
{
    int flag = 1, rc = MPI_SUCCESS;
    *done = false;
    if (ck->sizes_pending) {
        rc = block ? MPI_Waitall(ck->nheld, ck->sreq, MPI_STATUSES_IGNORE)
                   : MPI_Testall(ck->nheld, ck->sreq, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS)
            return hcrt__error(ck->ctx, HCRT_ERR_MPI, "checkpoint step %lld: partner copy failed on rank %d",
                               (long long)ck->step, ck->rank);
        if (!flag)
            return HCRT_OK;
        ck->sizes_pending = false;
        HCRT_CHECK(post_receives(ck));
    }
    if (ck->npreq > 0) {
        if (block)
            rc = MPI_Waitall(ck->npreq, ck->preq, MPI_STATUSES_IGNORE);
        else
            rc = MPI_Testall(ck->npreq, ck->preq, &flag, MPI_STATUSES_IGNORE);
    }
    if (rc != MPI_SUCCESS)
        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "checkpoint step %lld: partner copy failed on rank %d",
                           (long long)ck->step, ck->rank);
    if (flag)
        ck->npreq = 0;
    *done = flag != 0;
    return HCRT_OK;
}

/* A failure of the partner level fails this rank's share of the save (the first failure wins). */
static void fold(hcrt_ckpt_t *ck, hcrt_status_t st, const char *msg)
{
    if (ck->job_status != HCRT_OK)
        return;
    ck->job_status = st;
    snprintf(ck->job_err, sizeof(ck->job_err), "%s", msg);
}

bool hcrt__ckpt_partner_done(hcrt_ckpt_t *ck, bool block)
{
    bool done = false;
    if (ck->pstage == 1) {
        hcrt_status_t st = hcrt__ckpt_partner_progress(ck, block, &done);
        if (st != HCRT_OK) {
            fold(ck, st, hcrt_last_error(ck->ctx));
            ck->pstage = 0;
            return true;
        }
        if (!done)
            return false;
        if (!ck->pdisk || ck->nheld == 0 || ck->job_status != HCRT_OK) {
            ck->pstage = 0;
            return true;
        }
        pthread_mutex_lock(&ck->mu);
        ck->pcopy_done = false;
        ck->pcopy_pending = true;
        pthread_cond_broadcast(&ck->cv);
        pthread_mutex_unlock(&ck->mu);
        ck->pstage = 2;
    }
    if (ck->pstage == 2) {
        pthread_mutex_lock(&ck->mu);
        while (block && !ck->pcopy_done)
            pthread_cond_wait(&ck->cv, &ck->mu);
        done = ck->pcopy_done;
        pthread_mutex_unlock(&ck->mu);
        if (!done)
            return false;
        if (ck->pcopy_status != HCRT_OK)
            fold(ck, ck->pcopy_status, ck->pcopy_err);
        ck->pstage = 0;
    }
    return true;
}

hcrt_status_t hcrt__ckpt_partner_write(hcrt_ckpt_t *ck)
{
    char stepdir[4096], file[64], name[64 + 16], err[1024];
    double t0 = hcrt__now();
    uint64_t total = 0;
    if (!hcrt__ckpt_local_step_path(ck, stepdir, sizeof(stepdir), ck->step)) {
        snprintf(ck->pcopy_err, sizeof(ck->pcopy_err), "path too long: %s", ck->local_dir);
        return HCRT_ERR_IO;
    }
    hcrt_status_t st = hcrt__mkdir_p(stepdir, err, sizeof(err));
    for (int k = 0; st == HCRT_OK && k < ck->nheld; k++) {
        hcrt__ckpt_file_name(file, sizeof(file), ck->held_rank[k]);
        snprintf(name, sizeof(name), "%s/%s", HCRT__CKPT_PARTNER_DIR, file);
        st = hcrt__ckpt_write_copy(ck->local_dir, stepdir, name, ck->held_buf[k], ck->held_bytes[k], err,
                                   sizeof(err));
        total += ck->held_bytes[k];
    }
    if (st != HCRT_OK) {
        snprintf(ck->pcopy_err, sizeof(ck->pcopy_err), "partner copy: %.990s", err);
        return st;
    }
    HCRT_DEBUG(CKPT_SUBSYS, "step %lld: %d partner cop%s (%llu bytes) written to %s/%s in %.3f s",
               (long long)ck->step, ck->nheld, ck->nheld == 1 ? "y" : "ies", (unsigned long long)total, stepdir,
               HCRT__CKPT_PARTNER_DIR, hcrt__now() - t0);
    return HCRT_OK;
}

const unsigned char *hcrt__ckpt_partner_image(const hcrt_ckpt_t *ck, int w, int64_t step, uint64_t *bytes)
{
    if (w == ck->rank && ck->pool_step == step && ck->pool != NULL && !ck->layout_dirty) {
        *bytes = ck->file_bytes;
        return ck->pool;
    }
    if (ck->held_step != step)
        return NULL;
    for (int k = 0; k < ck->nheld; k++) {
        if (ck->held_rank[k] == w) {
            *bytes = ck->held_bytes[k];
            return ck->held_buf[k];
        }
    }
    return NULL;
}

void hcrt__ckpt_partner_free(hcrt_ckpt_t *ck)
{
    for (int k = 0; ck->held_buf && k < ck->nheld; k++)
        hcrt__ckpt_host_free(NULL, ck->held_buf[k], ck->held_cap[k]);
    free(ck->held_buf);
    free(ck->held_rank);
    free(ck->held_bytes);
    free(ck->held_cap);
    free(ck->partner_of);
    free(ck->hosts);
    free(ck->preq);
    free(ck->sreq);
    ck->sreq = NULL;
    ck->held_buf = NULL;
    ck->held_rank = NULL;
    ck->held_bytes = NULL;
    ck->held_cap = NULL;
    ck->partner_of = NULL;
    ck->hosts = NULL;
    ck->preq = NULL;
    ck->nheld = 0;
}
