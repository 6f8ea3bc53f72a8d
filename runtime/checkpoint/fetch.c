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
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/checkpoint/reshard.h"

#define PIECE   ((uint64_t)1 << 30) /* MPI counts are int: images go in pieces of at most 1 GiB */
#define TAG_IMG 7311

/* What a rank can offer of writer w's file, fastest first: its memory, then its node's node-local
 * storage (the writer's own file, then a partner copy). */
static const hcrt__ckpt_level_t offer_levels[] = {HCRT__LVL_MEMORY, HCRT__LVL_LOCAL, HCRT__LVL_PARTNER};
#define NOFFER ((int)(sizeof(offer_levels) / sizeof(offer_levels[0])))

static const char *copy_name(int level)
{
    return level == HCRT__LVL_MEMORY    ? "in-memory copy"
           : level == HCRT__LVL_PARTNER ? "partner copy"
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

/* The extents of writer w's file this rank reads (whole checksum chunks of the shards that overlap its
 * registered rows), merged, as (offset, length) pairs in *ext (malloc'd); *n pairs. */
static hcrt_status_t needed_extents(hcrt_ckpt_t *ck, const hcrt__ckpt_sources_t *rs, int w, uint64_t **ext, uint64_t *n)
{
    size_t cap = 0, k = 0;
    uint64_t *out = NULL;
    for (int i = 0; i < ck->nentries; i++) {
        const hcrt__ckpt_entry_t *e = &ck->entries[i];
        const hcrt__ckpt_tensor_t *t = hcrt__manifest_find(rs->m, e->name);
        for (int j = 0; t != NULL && j < t->nshards; j++) {
            const hcrt__ckpt_shard_t *sh = &t->shards[j];
            uint64_t lo = e->row_offset > sh->row_offset ? e->row_offset : sh->row_offset;
            uint64_t hi = e->row_offset + e->rows < sh->row_offset + sh->rows ? e->row_offset + e->rows
                                                                              : sh->row_offset + sh->rows;
            if (sh->rank != w || lo >= hi || t->row_bytes == 0)
                continue;
            uint64_t c0 = (lo - sh->row_offset) * t->row_bytes / sh->chunk_size;
            uint64_t end = (hi - sh->row_offset) * t->row_bytes;
            uint64_t c1 = (end + sh->chunk_size - 1) / sh->chunk_size;
            uint64_t from = sh->offset + c0 * sh->chunk_size;
            uint64_t to = sh->offset + (c1 * sh->chunk_size < sh->bytes ? c1 * sh->chunk_size : sh->bytes);
            if (k > 0 && out[2 * k - 2] + out[2 * k - 1] == from) {
                out[2 * k - 1] += to - from;
                continue;
            }
            if (k == cap) {
                cap = cap ? cap * 2 : 8;
                uint64_t *nb = realloc(out, cap * 2 * sizeof(uint64_t));
                if (nb == NULL) {
                    free(out);
                    return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
                }
                out = nb;
            }
            out[2 * k] = from;
            out[2 * k + 1] = to - from;
            k++;
        }
    }
    *ext = out;
    *n = k;
    return HCRT_OK;
}

/* Memory for an image of `bytes` of which the extents will be written, or NULL. The extents' pages are
 * populated in one pass: on virtual machines that hand freed memory back to the host, faulting fresh
 * pages one by one costs several times the transfer into them. */
static unsigned char *map_image(uint64_t bytes, const uint64_t *ext, uint64_t n)
{
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
                   0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_POPULATE_WRITE
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t lo = ext[2 * i] / page * page, hi = ext[2 * i] + ext[2 * i + 1];
        if (hi > lo)
            (void)madvise((unsigned char *)p + lo, (size_t)(hi - lo), MADV_POPULATE_WRITE); /* a hint */
    }
#else
    (void)ext;
    (void)n;
#endif
    return p;
}

/* Moves `len` bytes at `buf` between this rank and `peer` in pieces (MPI counts are int). */
static bool transfer(hcrt_ckpt_t *ck, unsigned char *buf, uint64_t len, int peer, bool send)
{
    for (uint64_t off = 0; off < len; off += PIECE) {
        int n = (int)(len - off < PIECE ? len - off : PIECE);
        int rc = send ? MPI_Send(buf + off, n, MPI_BYTE, peer, TAG_IMG, ck->comm)
                      : MPI_Recv(buf + off, n, MPI_BYTE, peer, TAG_IMG, ck->comm, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return false;
    }
    return true;
}

/* Sends what each rank that failed writer w needs of its file from `holder`'s verified image: the rank
 * names its extents, the holder sends those bytes, which land at their offsets in an image of the file's
 * size (pages never written are never touched). Blocking pairs: every rank walks the same (writer, rank)
 * order, so they meet without deadlock. */
static hcrt_status_t send_image(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, const unsigned char *all_failed, int w,
                                int holder, int kind, const unsigned char *img)
{
    size_t nw = (size_t)rs->nw;
    uint64_t bytes = rs->m->ranks[w].bytes, n = 0, *ext = NULL;
    const char *file = rs->m->ranks[w].file;
    for (int r = 0; r < ck->size; r++) {
        if (!all_failed[(size_t)r * nw + (size_t)w] || r == holder || (ck->rank != holder && ck->rank != r))
            continue;
        bool ok = true;
        if (ck->rank == r) {
            HCRT_CHECK(needed_extents(ck, rs, w, &ext, &n));
            ok = MPI_Send(&n, 1, MPI_UINT64_T, holder, TAG_IMG, ck->comm) == MPI_SUCCESS &&
                 (n == 0 || MPI_Send(ext, (int)(2 * n), MPI_UINT64_T, holder, TAG_IMG, ck->comm) == MPI_SUCCESS);
            if (rs->remote[w] != NULL)
                munmap(rs->remote[w], rs->remote_bytes[w] ? rs->remote_bytes[w] : 1);
            rs->remote[w] = map_image(bytes, ext, n);
            if (rs->remote[w] == NULL) {
                free(ext);
                return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory for %s", file);
            }
            rs->remote_bytes[w] = bytes;
            for (uint64_t i = 0; ok && i < n; i++)
                ok = transfer(ck, rs->remote[w] + ext[2 * i], ext[2 * i + 1], holder, false);
            rs->remote_from[w] = holder;
            rs->remote_kind[w] = (unsigned char)kind;
        } else {
            ok = MPI_Recv(&n, 1, MPI_UINT64_T, r, TAG_IMG, ck->comm, MPI_STATUS_IGNORE) == MPI_SUCCESS &&
                 n <= ((uint64_t)1 << 26);
            ext = ok ? malloc((size_t)(2 * n + 1) * sizeof(uint64_t)) : NULL;
            ok = ext != NULL && (n == 0 || MPI_Recv(ext, (int)(2 * n), MPI_UINT64_T, r, TAG_IMG, ck->comm,
                                                    MPI_STATUS_IGNORE) == MPI_SUCCESS);
            for (uint64_t i = 0; ok && i < n; i++) {
                ok = ext[2 * i] <= bytes && ext[2 * i + 1] <= bytes - ext[2 * i];
                ok = ok && transfer(ck, (unsigned char *)img + ext[2 * i], ext[2 * i + 1], r, true);
            }
        }
        free(ext);
        ext = NULL;
        if (!ok)
            return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: %s %s %s rank %d failed",
                               ck->rank == r ? "receiving" : "sending", file, ck->rank == r ? "from" : "to",
                               ck->rank == r ? holder : r);
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
    double t0 = hcrt__now();
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
    double t_found = hcrt__now();
    for (int w = 0; w < nw && st == HCRT_OK; w++) {
        if (holder[w] < 0)
            continue;
        if (ck->rank == holder[w])
            HCRT_INFO(CKPT_SUBSYS, "step %lld: sending the %s of %s to the ranks that need it", (long long)rs->m->step,
                      copy_name(held_kind[w]), rs->m->ranks[w].file);
        st = send_image(ck, rs, all_failed, w, holder[w], held_kind[w], img[w]);
    }
    HCRT_DEBUG(CKPT_SUBSYS, "step %lld: copies found and verified in %.3f s, sent in %.3f s", (long long)rs->m->step,
               t_found - t0, hcrt__now() - t_found);
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
