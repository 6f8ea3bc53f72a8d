/*
 * runtime/checkpoint/fetch.c - the restore's second stage: the files of writers that some rank could not
 * read on its own node come from a rank that holds a verified copy, in its memory or in its node's
 * node-local storage (the writer's own file, or the partner copy kept there), over MPI. This is how a
 * relaunched job restores a lost node's shards from its partner's node (docs/checkpoint-format.md).
 *
 * Rounds: each rank offers the writers it holds an untried copy of (a rank that failed a writer itself
 * holds none); the lowest offering rank of each writer verifies its copies completely, fastest first,
 * and keeps the first that verifies; a copy that does not is reported and never offered again, so the
 * next round tries another rank's. Each verified image then goes to the ranks that need it, which read
 * it as the level HCRT__LVL_REMOTE.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/checkpoint/reshard.h"

#define PIECE ((uint64_t)1 << 30) /* MPI counts are int: images go in pieces of at most 1 GiB */
#define TAG_IMG 7311

/* What a rank can offer of writer w's file, fastest first: its memory, then its node's node-local
 * storage (the writer's own file, then a partner copy). */
static const hcrt__ckpt_level_t offer_levels[] = {HCRT__LVL_MEMORY, HCRT__LVL_LOCAL, HCRT__LVL_PARTNER};
#define NOFFER ((int)(sizeof(offer_levels) / sizeof(offer_levels[0])))

static const char *copy_name(int level)
{
    return level == HCRT__LVL_MEMORY ? "in-memory copy" : level == HCRT__LVL_PARTNER ? "partner copy"
                                                                                    : "node-local copy";
}

const unsigned char *hcrt__ckpt_copy_image(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w,
                                           char *where, size_t cap)
{
    if (level != HCRT__LVL_MEMORY)
        return hcrt__ckpt_level_image(rs, level, w, where, cap);
    uint64_t bytes = 0;
    const unsigned char *img = hcrt__ckpt_partner_image(ck, w, rs->m->step, &bytes);
    snprintf(where, cap, "the in-memory copy of %s", rs->m->ranks[w].file);
    return img != NULL && bytes == rs->m->ranks[w].bytes ? img : NULL;
}

static bool offer_has(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w)
{
    char where[64];
    return level == HCRT__LVL_MEMORY ? hcrt__ckpt_copy_image(ck, rs, level, w, where, sizeof(where)) != NULL
                                     : hcrt__ckpt_level_has(rs, level, w);
}

/* Sends writer w's image from `holder` to every rank that failed it (MPI_Send/Recv in pieces; every rank
 * walks the same (writer, rank) order, so the pairs meet without deadlock). */
static hcrt_status_t send_image(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, const unsigned char *all_failed, int w,
                                int holder, int kind, const unsigned char *img)
{
    size_t nw = (size_t)rs->nw;
    uint64_t bytes = rs->m->ranks[w].bytes;
    for (int r = 0; r < ck->size; r++) {
        if (!all_failed[(size_t)r * nw + (size_t)w] || r == holder)
            continue;
        if (ck->rank == holder) {
            for (uint64_t off = 0; off < bytes; off += PIECE) {
                int len = (int)(bytes - off < PIECE ? bytes - off : PIECE);
                if (MPI_Send(img + off, len, MPI_BYTE, r, TAG_IMG, ck->comm) != MPI_SUCCESS)
                    return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: sending %s to rank %d failed",
                                       rs->m->ranks[w].file, r);
            }
        } else if (ck->rank == r) {
            free(rs->remote[w]);
            rs->remote[w] = malloc(bytes ? bytes : 1);
            if (rs->remote[w] == NULL)
                return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
            for (uint64_t off = 0; off < bytes; off += PIECE) {
                int len = (int)(bytes - off < PIECE ? bytes - off : PIECE);
                if (MPI_Recv(rs->remote[w] + off, len, MPI_BYTE, holder, TAG_IMG, ck->comm, MPI_STATUS_IGNORE) !=
                    MPI_SUCCESS)
                    return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: receiving %s from rank %d failed",
                                       rs->m->ranks[w].file, holder);
            }
            rs->remote_bytes[w] = bytes;
            rs->remote_from[w] = holder;
            rs->remote_kind[w] = (unsigned char)kind;
        }
    }
    return HCRT_OK;
}

hcrt_status_t hcrt__ckpt_fetch_images(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, const unsigned char *all_failed)
{
    int nw = rs->nw;
    hcrt_status_t st = HCRT_OK;
    int *offer = malloc((size_t)nw * sizeof(int)), *kind = malloc((size_t)nw * sizeof(int));
    int *holder = malloc((size_t)nw * sizeof(int)), *held_kind = malloc((size_t)nw * sizeof(int));
    unsigned char *need = calloc((size_t)nw, 1), *tried = calloc((size_t)nw, 1);
    const unsigned char **img = calloc((size_t)nw, sizeof(*img));
    char where[4200], why[1024];
    if (!offer || !kind || !holder || !held_kind || !need || !tried || !img) {
        st = hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
        goto out;
    }
    for (int w = 0; w < nw; w++) {
        holder[w] = -1;
        for (int r = 0; r < ck->size; r++)
            need[w] |= all_failed[(size_t)r * (size_t)nw + (size_t)w];
    }
    for (;;) {
        /* A rank that failed w itself holds no intact copy of it: every one of its sources was tried. */
        for (int w = 0; w < nw; w++) {
            offer[w] = INT_MAX;
            for (int s = 0; s < NOFFER && need[w] && holder[w] < 0 && !rs->failed[w]; s++)
                if (!(tried[w] & (1u << s)) && offer_has(ck, rs, offer_levels[s], w)) {
                    offer[w] = ck->rank;
                    break;
                }
        }
        if (MPI_Allreduce(MPI_IN_PLACE, offer, nw, MPI_INT, MPI_MIN, ck->comm) != MPI_SUCCESS) {
            st = hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Allreduce failed on rank %d", ck->rank);
            goto out;
        }
        bool any = false;
        for (int w = 0; w < nw; w++) {
            kind[w] = -1;
            any |= offer[w] != INT_MAX;
            for (int s = 0; s < NOFFER && offer[w] == ck->rank; s++) {
                if (tried[w] & (1u << s))
                    continue;
                tried[w] |= (unsigned char)(1u << s);
                const unsigned char *p = hcrt__ckpt_copy_image(ck, rs, offer_levels[s], w, where, sizeof(where));
                if (p == NULL)
                    continue;
                if (hcrt__ckpt_image_verify(rs, w, p, rs->m->ranks[w].bytes, why, sizeof(why))) {
                    img[w] = p;
                    kind[w] = offer_levels[s];
                    break;
                }
                HCRT_WARN(CKPT_SUBSYS, "step %lld: %s: %s; this copy is skipped", (long long)rs->m->step, where, why);
            }
        }
        if (!any)
            break;
        if (MPI_Allreduce(MPI_IN_PLACE, kind, nw, MPI_INT, MPI_MAX, ck->comm) != MPI_SUCCESS) {
            st = hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Allreduce failed on rank %d", ck->rank);
            goto out;
        }
        for (int w = 0; w < nw; w++)
            if (offer[w] != INT_MAX && kind[w] >= 0) {
                holder[w] = offer[w];
                held_kind[w] = kind[w];
            }
    }
    for (int w = 0; w < nw && st == HCRT_OK; w++) {
        if (holder[w] < 0)
            continue;
        if (ck->rank == holder[w])
            HCRT_INFO(CKPT_SUBSYS, "step %lld: sending the %s of %s to the ranks that need it",
                      (long long)rs->m->step, copy_name(held_kind[w]), rs->m->ranks[w].file);
        st = send_image(ck, rs, all_failed, w, holder[w], held_kind[w], img[w]);
    }
out:
    free(offer);
    free(kind);
    free(holder);
    free(held_kind);
    free(need);
    free(tried);
    free(img);
    return st;
}
