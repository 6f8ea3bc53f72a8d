/*
 * runtime/checkpoint/partner.c - the in-memory level: each rank's snapshot (its file image) is kept by
 * a partner rank on another host, so that losing one node loses no shard.
 *
 * Partners are chosen at open from the ranks' host names (partner_map.c): a rank on another host when
 * there is one.
 *
 * The copies travel with nonblocking point-to-point MPI started by save() and completed by the commit's
 * progress (wait/test): save() waits for no other rank, and a keeper posts its receives once the size
 * message of its rank has arrived.
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
    if (partner < 0)
        return HCRT_OK;
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
