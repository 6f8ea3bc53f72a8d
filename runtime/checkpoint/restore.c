/*
 * runtime/checkpoint/restore.c - hcrt_ckpt_restore: choose the step, read and verify, agree, fall back.
 *
 * For each candidate step, newest first, every rank: loads the manifest and checks it against its
 * registrations; reads the rows it needs (reshard.c) into the final host buffers, or into the snapshot
 * pool for device buffers; then the ranks pool the writers whose data some rank could not find intact
 * anywhere, and whoever still holds such a writer's image in memory (the writer itself, or its partner)
 * sends it to those who need it. The step is restored only when every rank succeeded (an allreduce), so
 * all ranks agree; otherwise the next older committed step is tried, with a warning naming the first
 * failure. Device buffers are written only once the step is agreed on.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/checkpoint/reshard.h"
#include "runtime/trace.h"

#define PIECE ((uint64_t)1 << 30)
#define TAG_IMG 7311

enum { OK_ = 0, FALLBACK = 1, FATAL = 2 };

static hcrt_status_t allreduce_int(hcrt_ckpt_t *ck, int *v, MPI_Op op)
{
    if (ck->comm == MPI_COMM_NULL)
        return HCRT_OK;
    if (MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, op, ck->comm) != MPI_SUCCESS)
        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Allreduce failed on rank %d", ck->rank);
    return HCRT_OK;
}

/* Candidate steps from rank 0's view of the shared directory, the same on every rank. */
static hcrt_status_t candidates(hcrt_ckpt_t *ck, int64_t want, int64_t **steps, int *n)
{
    int64_t *list = NULL;
    size_t count = 0;
    long long cnt = 0;
    hcrt_status_t st = HCRT_OK;
    if (ck->rank == 0) {
        st = hcrt_ckpt_list(ck, NULL, 0, &count);
        if (st == HCRT_OK) {
            list = malloc((count + 1) * sizeof(int64_t));
            if (list == NULL || hcrt_ckpt_list(ck, list, count, &count) != HCRT_OK)
                st = HCRT_ERR_IO;
        }
        if (st == HCRT_OK && want != HCRT_CKPT_LATEST) {
            bool found = false;
            for (size_t i = 0; i < count; i++)
                found |= list[i] == want;
            list[0] = want;
            count = found ? 1 : 0;
        }
        cnt = st == HCRT_OK ? (long long)count : -1;
    }
    if (ck->comm != MPI_COMM_NULL && MPI_Bcast(&cnt, 1, MPI_LONG_LONG, 0, ck->comm) != MPI_SUCCESS) {
        free(list);
        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Bcast failed");
    }
    if (cnt < 0) {
        free(list);
        return hcrt__error(ck->ctx, HCRT_ERR_IO, "hcrt_ckpt_restore: rank 0 cannot list %s", ck->dir);
    }
    if (ck->rank != 0)
        list = malloc(((size_t)cnt + 1) * sizeof(int64_t));
    if (list == NULL)
        return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
    if (ck->comm != MPI_COMM_NULL && cnt > 0 &&
        MPI_Bcast(list, (int)cnt, MPI_INT64_T, 0, ck->comm) != MPI_SUCCESS) {
        free(list);
        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Bcast failed");
    }
    *steps = list;
    *n = (int)cnt;
    return HCRT_OK;
}

/* Checks the manifest against this rank's registrations. FATAL with msg for a mismatch. */
static int check_tensors(hcrt_ckpt_t *ck, const hcrt__ckpt_manifest_t *m, char *msg, size_t cap)
{
    for (int i = 0; i < ck->nentries; i++) {
        const hcrt__ckpt_entry_t *e = &ck->entries[i];
        const hcrt__ckpt_tensor_t *t = hcrt__manifest_find(m, e->name);
        if (t == NULL) {
            snprintf(msg, cap, "tensor '%s' is not in step %lld", e->name, (long long)m->step);
            return FATAL;
        }
        if ((int)t->dtype != (int)e->buf.dtype || t->ndims != e->ndims ||
            memcmp(t->shape, e->shape, sizeof(uint64_t) * (size_t)e->ndims) != 0) {
            snprintf(msg, cap, "tensor '%s' is %s with %d dimensions [%llu, ...] in step %lld, but registered as "
                     "%s with %d dimensions [%llu, ...]", e->name, hcrt__ckpt_dtype_name(t->dtype), t->ndims,
                     (unsigned long long)t->shape[0], (long long)m->step, hcrt_dtype_name(e->buf.dtype), e->ndims,
                     (unsigned long long)e->shape[0]);
            return FATAL;
        }
    }
    return OK_;
}

/* Host memory the rows of entry i are read into: the buffer itself on the host, else the pool. */
static unsigned char *target(hcrt_ckpt_t *ck, const hcrt__ckpt_entry_t *e)
{
    return hcrt__device_is_host(e->buf.device) ? e->buf.ptr : ck->pool + e->pool_offset;
}

static int read_all(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, const hcrt__ckpt_manifest_t *m,
                    const unsigned char *only)
{
    int failures = 0;
    for (int i = 0; i < ck->nentries; i++) {
        const hcrt__ckpt_entry_t *e = &ck->entries[i];
        const hcrt__ckpt_tensor_t *t = hcrt__manifest_find(m, e->name);
        failures += hcrt__ckpt_read_rows(rs, t, e->row_offset, e->row_offset + e->rows, target(ck, e), only);
    }
    return failures;
}

static void progress_bar(hcrt__ckpt_sources_t *rs, uint64_t done)
{
    static uint64_t total, last;
    if (rs == NULL) { /* reset with the total */
        total = done;
        last = 0;
        return;
    }
    if (total == 0 || (done - last < total / 100 && done < total))
        return;
    last = done;
    int pct = (int)(done * 100 / total), bars = pct / 4;
    fprintf(stderr, "\rrestoring step %lld [%.*s%*s] %3d%%%s", (long long)rs->m->step, bars,
            "#########################", 25 - bars, "", pct, done >= total ? "\n" : "");
    fflush(stderr);
}

/* Fetches the file images of writers some rank could not read, from the ranks that keep them in memory.
 * Collective; every rank passes the same `need_any` (the union of the ranks' failures). */
static hcrt_status_t fetch_images(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, const unsigned char *all_failed,
                                  const unsigned char *need_any, unsigned char *fetched)
{
    int nw = rs->nw;
    for (int w = 0; w < nw; w++) {
        if (!need_any[w])
            continue;
        uint64_t bytes = 0;
        const unsigned char *img = hcrt__ckpt_partner_image(ck, w, rs->m->step, &bytes);
        int holder = img && bytes == rs->m->ranks[w].bytes && !rs->failed[w] ? ck->rank : INT_MAX;
        HCRT_CHECK(allreduce_int(ck, &holder, MPI_MIN));
        if (holder == INT_MAX)
            continue;
        for (int r = 0; r < ck->size; r++) {
            if (!all_failed[(size_t)r * (size_t)nw + (size_t)w] || r == holder)
                continue;
            if (ck->rank == holder) {
                for (uint64_t off = 0; off < bytes; off += PIECE) {
                    int len = (int)(bytes - off < PIECE ? bytes - off : PIECE);
                    if (MPI_Send(img + off, len, MPI_BYTE, r, TAG_IMG, ck->comm) != MPI_SUCCESS)
                        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: sending rank %d's copy to "
                                           "rank %d failed", w, r);
                }
            } else if (ck->rank == r) {
                uint64_t want = rs->m->ranks[w].bytes;
                free(rs->remote[w]);
                rs->remote[w] = malloc(want ? want : 1);
                if (rs->remote[w] == NULL)
                    return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
                for (uint64_t off = 0; off < want; off += PIECE) {
                    int len = (int)(want - off < PIECE ? want - off : PIECE);
                    if (MPI_Recv(rs->remote[w] + off, len, MPI_BYTE, holder, TAG_IMG, ck->comm, MPI_STATUS_IGNORE) !=
                        MPI_SUCCESS)
                        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: receiving rank %d's copy "
                                           "from rank %d failed", w, holder);
                }
                rs->remote_bytes[w] = want;
                fetched[w] = 1;
                HCRT_WARN(CKPT_SUBSYS, "step %lld: rebuilding %s from the in-memory copy kept by rank %d",
                          (long long)rs->m->step, rs->m->ranks[w].file, holder);
            }
        }
    }
    return HCRT_OK;
}

/* Rewrites this rank's node-local copy of its own file when it was missing or damaged: from the image
 * fetched from its partner, or else from the shared directory's copy. */
static void rebuild_local(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs)
{
    int w = ck->rank;
    if (rs->local_dir[0] == '\0' || w >= rs->nw || !rs->local_bad[w])
        return;
    char path[4096 + 64], err[1024];
    if (hcrt__mkdir_p(rs->local_dir, err, sizeof(err)) != HCRT_OK)
        return;
    snprintf(path, sizeof(path), "%s/%s", rs->local_dir, rs->m->ranks[w].file);
    uint64_t bytes = rs->m->ranks[w].bytes;
    const unsigned char *img = rs->remote[w];
    unsigned char *tmp = NULL;
    const char *from = "partner's in-memory copy";
    if (img == NULL) {
        int fd = rs->shared_fd[w];
        tmp = malloc(bytes ? bytes : 1);
        if (fd < 0 || tmp == NULL || hcrt__pread_full(fd, tmp, bytes, 0) != (ssize_t)bytes) {
            free(tmp);
            return;
        }
        img = tmp;
        from = "shared directory";
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && hcrt__write_full(fd, img, bytes) == 0 && fsync(fd) == 0)
        HCRT_WARN(CKPT_SUBSYS, "rebuilt the node-local copy %s from the %s", path, from);
    else
        HCRT_WARN(CKPT_SUBSYS, "cannot rebuild the node-local copy %s", path);
    if (fd >= 0)
        close(fd);
    free(tmp);
}

/* Tries one step. Returns OK_, FALLBACK (message in msg) or FATAL; agreed by all ranks. */
static hcrt_status_t try_step(hcrt_ckpt_t *ck, int64_t step, hcrt__ckpt_manifest_t *m, int *verdict, char *msg,
                              size_t cap)
{
    char stepdir[4096], err[1024];
    hcrt__ckpt_sources_t rs;
    hcrt_status_t st = HCRT_OK;
    int code = OK_;

    memset(&rs, 0, sizeof(rs));
    msg[0] = '\0';
    hcrt__ckpt_step_path(stepdir, sizeof(stepdir), ck->dir, step);
    hcrt_status_t lst = hcrt__manifest_load(stepdir, m, err, sizeof(err));
    if (lst != HCRT_OK) {
        snprintf(msg, cap, "%s", err);
        code = lst == HCRT_ERR_NO_MEMORY ? FATAL : FALLBACK;
    } else {
        code = check_tensors(ck, m, msg, cap);
    }
    int agreed = code;
    HCRT_CHECK_GOTO(allreduce_int(ck, &agreed, MPI_MAX), st, out);
    if (agreed != OK_) {
        if (code == OK_)
            snprintf(msg, cap, "another rank could not use step %lld", (long long)step);
        *verdict = agreed;
        goto out;
    }

    hcrt__ckpt_sources_init(&rs, ck, m);
    if (!rs.ok) {
        st = hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
        goto out;
    }
    /* Device tensors are staged through the pool, which then stops holding this rank's last snapshot
     * and stops being a source; partner copies live in buffers of their own and stay one. */
    for (int i = 0; i < ck->nentries; i++)
        if (!hcrt__device_is_host(ck->entries[i].buf.device))
            ck->pool_step = -1;
    rs.use_memory = true;
    uint64_t total = 0;
    for (int i = 0; i < ck->nentries; i++)
        total += ck->entries[i].bytes;
    if (ck->rank == 0 && isatty(STDERR_FILENO) && total >= ((uint64_t)1 << 30)) {
        progress_bar(NULL, total);
        rs.progress = progress_bar;
    }
    double t_read = hcrt__now();
    int failures = read_all(ck, &rs, m, NULL);
    HCRT_DEBUG(CKPT_SUBSYS, "step %lld: %llu bytes read and verified in %.3f s", (long long)step,
               (unsigned long long)rs.done, hcrt__now() - t_read);

    /* Pool every rank's failed writers; whoever keeps one in memory sends it to those who need it. */
    size_t nw = (size_t)rs.nw;
    unsigned char *all_failed = calloc((size_t)ck->size * nw, 1), *any = calloc(nw, 1), *fetched = calloc(nw, 1);
    if (all_failed == NULL || any == NULL || fetched == NULL) {
        free(all_failed);
        free(any);
        free(fetched);
        st = hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
        goto out;
    }
    memcpy(all_failed + (size_t)ck->rank * nw, rs.failed, nw);
    if (ck->comm != MPI_COMM_NULL &&
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all_failed, (int)nw, MPI_BYTE, ck->comm) != MPI_SUCCESS) {
        st = hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Allgather failed");
    }
    bool need = false;
    for (size_t r = 0; st == HCRT_OK && r < (size_t)ck->size; r++)
        for (size_t w = 0; w < nw; w++)
            if (all_failed[r * nw + w])
                any[w] = 1, need = true;
    if (st == HCRT_OK && need && ck->comm != MPI_COMM_NULL) {
        st = fetch_images(ck, &rs, all_failed, any, fetched);
        if (st == HCRT_OK && failures) {
            memset(rs.failed, 0, nw);
            char first[1024];
            snprintf(first, sizeof(first), "%s", rs.msg);
            rs.msg[0] = '\0';
            failures = read_all(ck, &rs, m, fetched);
            for (size_t w = 0; w < nw; w++)
                if (!fetched[w] && all_failed[(size_t)ck->rank * nw + w])
                    failures++;
            if (failures && rs.msg[0] == '\0')
                snprintf(rs.msg, sizeof(rs.msg), "%s", first);
        }
    }
    free(all_failed);
    free(any);
    free(fetched);
    if (st != HCRT_OK)
        goto out;
    code = failures ? FALLBACK : OK_;
    if (failures)
        snprintf(msg, cap, "%s", rs.msg);
    else if (rs.msg_level[0])
        HCRT_INFO(CKPT_SUBSYS, "step %lld: %s", (long long)step, rs.msg_level);
    agreed = code;
    HCRT_CHECK_GOTO(allreduce_int(ck, &agreed, MPI_MAX), st, out);
    if (agreed != OK_ && code == OK_)
        snprintf(msg, cap, "another rank could not read step %lld intact", (long long)step);
    if (agreed == OK_)
        rebuild_local(ck, &rs);
    *verdict = agreed;
out:
    if (rs.ok || rs.failed)
        hcrt__ckpt_sources_fini(&rs);
    return st;
}

static hcrt_status_t restore_untraced(hcrt_ckpt_t *ck, int64_t step, void *meta_buf, size_t cap, size_t *meta_len,
                                       int64_t *restored_step)
{
    hcrt_status_t st;
    int64_t *steps = NULL;
    int n = 0, verdict = FALLBACK;
    char msg[1024], first[1200];
    hcrt__ckpt_manifest_t m;

    HCRT_CHECK_ARG(NULL, ck != NULL, "ck", "is NULL");
    hcrt_context_t *ctx = ck->ctx;
    HCRT_CHECK_ARG(ctx, step >= 0 || step == HCRT_CKPT_LATEST, "step", "is negative (and not HCRT_CKPT_LATEST)");
    HCRT_CHECK_ARG(ctx, meta_buf != NULL || cap == 0, "meta_buf", "is NULL with cap > 0");
    if (ck->nentries == 0)
        return hcrt__error(ctx, HCRT_ERR_STATE, "hcrt_ckpt_restore: no tensor registered");
    HCRT_CHECK(hcrt_ckpt_wait(ck));
    hcrt__ckpt_gc_wait(ck);
    /* The pool is needed only to stage device buffers; a restart that restores host buffers never
     * pays for allocating it. */
    for (int i = 0; i < ck->nentries; i++)
        if (!hcrt__device_is_host(ck->entries[i].buf.device)) {
            HCRT_CHECK(hcrt__ckpt_layout(ck));
            break;
        }
    HCRT_CHECK(candidates(ck, step, &steps, &n));
    if (n == 0) {
        free(steps);
        if (step == HCRT_CKPT_LATEST)
            return hcrt__error(ctx, HCRT_ERR_NOT_FOUND, "hcrt_ckpt_restore: no committed step in %s", ck->dir);
        return hcrt__error(ctx, HCRT_ERR_NOT_FOUND, "hcrt_ckpt_restore: step %lld is not committed in %s",
                           (long long)step, ck->dir);
    }
    first[0] = '\0';
    memset(&m, 0, sizeof(m));
    for (int i = 0; i < n; i++) {
        double t0 = hcrt__now();
        hcrt__manifest_free(&m);
        st = try_step(ck, steps[i], &m, &verdict, msg, sizeof(msg));
        if (st != HCRT_OK)
            goto out;
        if (verdict == OK_) {
            HCRT_INFO(CKPT_SUBSYS, "restored step %lld in %.3f s", (long long)steps[i], hcrt__now() - t0);
            break;
        }
        if (first[0] == '\0')
            snprintf(first, sizeof(first), "rank %d: %s", ck->rank, msg);
        if (verdict == FATAL) {
            st = hcrt__error(ctx, HCRT_ERR_MISMATCH, "hcrt_ckpt_restore: %s", first);
            goto out;
        }
        if (msg[0] && strncmp(msg, "another rank", 12) != 0)
            HCRT_WARN(CKPT_SUBSYS, "checkpoint step %lld is unusable: %s", (long long)steps[i], msg);
        if (ck->rank == 0) {
            if (i + 1 < n)
                HCRT_WARN(CKPT_SUBSYS, "checkpoint step %lld failed verification; falling back to step %lld",
                          (long long)steps[i], (long long)steps[i + 1]);
            else
                HCRT_WARN(CKPT_SUBSYS, "checkpoint step %lld failed verification; no older committed step",
                          (long long)steps[i]);
        }
    }
    if (verdict != OK_) {
        st = hcrt__error(ctx, HCRT_ERR_CORRUPT, "hcrt_ckpt_restore: no committed step of %s could be restored%s; "
                         "first failure: %s", ck->dir, step == HCRT_CKPT_LATEST ? "" : " (no fallback for an explicit step)",
                         first);
        goto out;
    }
    for (int i = 0; i < ck->nentries; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (hcrt__device_is_host(e->buf.device) || e->bytes == 0)
            continue;
        st = hcrt_memcpy(e->buf.device, e->buf.ptr, ck->host, ck->pool + e->pool_offset, e->bytes);
        if (st != HCRT_OK) {
            st = hcrt__error(ctx, st, "hcrt_ckpt_restore: copying tensor '%s' to its %s device failed: %s", e->name,
                             hcrt_device_backend(e->buf.device), hcrt_last_error(ctx));
            goto out;
        }
    }
    if (cap && m.meta_len)
        memcpy(meta_buf, m.meta, m.meta_len < cap ? m.meta_len : cap);
    if (meta_len)
        *meta_len = m.meta_len;
    if (restored_step)
        *restored_step = m.step;
    ck->last_step = m.step;
    ck->last_committed = m.step;
    st = HCRT_OK;
out:
    hcrt__manifest_free(&m);
    free(steps);
    return st;
}

/* hcrt_ckpt_restore with a complete event on the timeline when HCRT_TRACE is set. */
hcrt_status_t hcrt_ckpt_restore(hcrt_ckpt_t *ck, int64_t step, void *meta_buf, size_t cap, size_t *meta_len,
                                int64_t *restored_step)
{
    if (ck == NULL || !hcrt__trace_on(ck->ctx))
        return restore_untraced(ck, step, meta_buf, cap, meta_len, restored_step);
    double start = hcrt__trace_clock();
    int64_t got = -1;
    hcrt_status_t st = restore_untraced(ck, step, meta_buf, cap, meta_len, &got);
    if (st == HCRT_OK && restored_step != NULL)
        *restored_step = got;
    hcrt__trace_event(ck->ctx, HCRT__LANE_CKPT, 'X', "ckpt restore", "ckpt", start, hcrt__trace_clock() - start,
                      "\"requested\":%lld,\"restored\":%lld,\"status\":\"%s\"", (long long)step,
                      (long long)(st == HCRT_OK ? got : -1), hcrt_status_name(st));
    return st;
}
