/*
 * runtime/checkpoint/restore.c - hcrt_ckpt_restore: choose the step, read and verify, agree, fall back.
 *
 * For each candidate step, newest first, every rank: loads the manifest and checks it against its
 * registrations; reads the rows it needs (reshard.c) into the final host buffers, or into the snapshot
 * pool for device buffers, first from what its own node holds (the node-local copies, its memory, the
 * partner copies kept in the node's node-local storage); then the ranks pool the writers some rank could
 * not read that way, and a rank that holds a verified copy of one (in memory or on its node's node-local
 * storage, the partner copies included) sends it to those who need it; what is still missing is read
 * from the shared directory. The step is restored only when every rank succeeded (an allreduce), so all
 * ranks agree; otherwise the next older committed step is tried, with a warning naming the first
 * failure. Device buffers are written only once the step is agreed on.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/checkpoint/reshard.h"
#include "runtime/fault/fault.h"
#include "runtime/trace.h"

enum { OK_ = 0, FALLBACK = 1, FATAL = 2 };

static hcrt_status_t allreduce_int(hcrt_ckpt_t *ck, int *v, MPI_Op op)
{
    MPI_Request req;
    if (ck->comm == MPI_COMM_NULL)
        return HCRT_OK;
    /* Under the deadline: a rank that hangs or dies while restoring must not hang the others. */
    if (MPI_Iallreduce(MPI_IN_PLACE, v, 1, MPI_INT, op, ck->comm, &req) != MPI_SUCCESS)
        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Iallreduce failed on rank %d", ck->rank);
    return hcrt__ckpt_mpi_wait(ck, &req, "hcrt_ckpt_restore: the ranks' agreement (MPI_Iallreduce)");
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

/* Says where each writer's data came from when it was not (only) this node's node-local copy: a
 * warning when a partner copy served it (a node-local copy was lost), information otherwise. */
static void report_sources(const hcrt_ckpt_t *ck, const hcrt__ckpt_sources_t *rs)
{
    for (int w = 0; w < rs->nw; w++) {
        unsigned used = rs->used[w] & ~(1u << HCRT__LVL_LOCAL);
        if (used == 0)
            continue;
        char line[1024] = "";
        size_t n = 0;
        bool partner = false;
        for (int l = HCRT__LVL_MEMORY; l < HCRT__LVL_COUNT; l++) {
            if (!(used & (1u << l)))
                continue;
            const char *sep = n ? ", and " : "";
            if (l == HCRT__LVL_MEMORY) {
                partner |= w != ck->rank;
                n += (size_t)snprintf(line + n, sizeof(line) - n, "%sthe %s in this rank's memory", sep,
                                      w == ck->rank ? "snapshot" : "partner copy");
            } else if (l == HCRT__LVL_PARTNER) {
                partner = true;
                n += (size_t)snprintf(line + n, sizeof(line) - n, "%sthe partner copy in this node's node-local "
                                      "storage (%s)", sep, rs->partner_dir);
            } else if (l == HCRT__LVL_REMOTE) {
                int kind = rs->remote_kind[w], from = rs->remote_from[w];
                const char *what = kind == HCRT__LVL_PARTNER ? "partner copy in its node's node-local storage"
                                   : kind == HCRT__LVL_LOCAL ? "node-local copy on its node"
                                   : from == w               ? "snapshot in its memory"
                                                             : "partner copy in its memory";
                partner |= kind == HCRT__LVL_PARTNER || (kind == HCRT__LVL_MEMORY && from != w);
                n += (size_t)snprintf(line + n, sizeof(line) - n, "%sthe %s, sent by rank %d", sep, what, from);
            } else {
                n += (size_t)snprintf(line + n, sizeof(line) - n, "%sthe shared directory", sep);
            }
            if (n >= sizeof(line))
                break;
        }
        if (partner)
            HCRT_WARN(CKPT_SUBSYS, "step %lld: %s restored from %s", (long long)rs->m->step, rs->m->ranks[w].file,
                      line);
        else
            HCRT_INFO(CKPT_SUBSYS, "step %lld: %s read from %s", (long long)rs->m->step, rs->m->ranks[w].file, line);
    }
}

/* Rewrites this rank's node-local copy of its own file when it was missing or damaged (same world size
 * only: in another one the rank's number names another writer), from a copy that verifies: the image
 * fetched from another rank, the partner copy on this node, the in-memory one, or the shared file. */
static void rebuild_local(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs)
{
    int w = ck->rank;
    char where[4200], why[1024], err[1024];
    if (rs->local_dir[0] == '\0' || rs->nw != ck->size || !rs->local_bad[w])
        return;
    uint64_t bytes = rs->m->ranks[w].bytes;
    const unsigned char *img = NULL;
    snprintf(where, sizeof(where), "the copy received from rank %d", rs->remote_from[w]);
    if (rs->remote[w] != NULL && hcrt__ckpt_image_verify(rs, w, rs->remote[w], bytes, why, sizeof(why)))
        img = rs->remote[w];
    static const hcrt__ckpt_level_t order[] = {HCRT__LVL_PARTNER, HCRT__LVL_MEMORY, HCRT__LVL_SHARED};
    for (size_t i = 0; img == NULL && i < sizeof(order) / sizeof(order[0]); i++) {
        const unsigned char *p = hcrt__ckpt_copy_image(ck, rs, order[i], w, where, sizeof(where));
        if (p != NULL && hcrt__ckpt_image_verify(rs, w, p, bytes, why, sizeof(why)))
            img = p;
    }
    if (img == NULL)
        return;
    if (hcrt__mkdir_p(rs->local_dir, err, sizeof(err)) == HCRT_OK &&
        hcrt__ckpt_write_copy(ck->local_dir, rs->local_dir, rs->m->ranks[w].file, img, bytes, err, sizeof(err)) ==
            HCRT_OK)
        HCRT_WARN(CKPT_SUBSYS, "rebuilt the node-local copy %s/%s from %s", rs->local_dir, rs->m->ranks[w].file,
                  where);
    else
        HCRT_WARN(CKPT_SUBSYS, "cannot rebuild the node-local copy of %s: %s", rs->m->ranks[w].file, err);
}

/* Agrees on a step: every rank gets the worst verdict and, when some rank failed, the first failing
 * rank's reason in msg ("rank R: ..."), so that the error every rank returns names what failed. A rank
 * that failed also warns its own reason (several ranks may fail differently). */
static hcrt_status_t agree(hcrt_ckpt_t *ck, int64_t step, int code, char *msg, size_t cap, int *verdict)
{
    char own[1024];
    int agreed = code, first = code != OK_ ? ck->rank : INT_MAX;
    snprintf(own, sizeof(own), "%s", msg);
    if (code == FALLBACK)
        HCRT_WARN(CKPT_SUBSYS, "checkpoint step %lld is unusable: %s", (long long)step, own);
    HCRT_CHECK(allreduce_int(ck, &agreed, MPI_MAX));
    *verdict = agreed;
    if (agreed == OK_)
        return HCRT_OK;
    HCRT_CHECK(allreduce_int(ck, &first, MPI_MIN));
    char buf[1024];
    snprintf(buf, sizeof(buf), "rank %d: %.990s", ck->rank, own);
    if (ck->comm != MPI_COMM_NULL && MPI_Bcast(buf, (int)sizeof(buf), MPI_CHAR, first, ck->comm) != MPI_SUCCESS)
        return hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Bcast failed on rank %d", ck->rank);
    buf[sizeof(buf) - 1] = '\0';
    snprintf(msg, cap, "%s", buf);
    return HCRT_OK;
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
    /* HCRT_FAULT: kill, hang or slow here; error makes this rank fail to read the step. */
    bool injected = hcrt__fault_check(ck->ctx, "restore", "read", step) == HCRT__FAULT_ERROR;
    hcrt__ckpt_step_path(stepdir, sizeof(stepdir), ck->dir, step);
    hcrt_status_t lst = hcrt__manifest_load(stepdir, m, err, sizeof(err));
    if (lst != HCRT_OK) {
        snprintf(msg, cap, "%s", err);
        code = lst == HCRT_ERR_NO_MEMORY ? FATAL : FALLBACK;
    } else {
        code = check_tensors(ck, m, msg, cap);
    }
    if (injected && code == OK_) {
        snprintf(msg, cap, "rank %d cannot read step %lld: injected read error (HCRT_FAULT)", ck->rank, (long long)step);
        code = FALLBACK;
    }
    HCRT_CHECK_GOTO(agree(ck, step, code, msg, cap, verdict), st, out);
    if (*verdict != OK_)
        goto out;

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
    /* First this node's levels only: node-local copies, memory, the partner copies kept here. */
    double t_read = hcrt__now();
    int failures = read_all(ck, &rs, m, NULL);

    /* Then the writers some rank could not read that way come from a rank whose node (or memory) holds
     * them, and what is still missing from the shared directory. */
    size_t nw = (size_t)rs.nw;
    unsigned char *all_failed = calloc((size_t)ck->size * nw, 1), *mine = calloc(nw, 1);
    if (all_failed == NULL || mine == NULL) {
        free(all_failed);
        free(mine);
        st = hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_restore: out of memory");
        goto out;
    }
    memcpy(mine, rs.failed, nw);
    memcpy(all_failed + (size_t)ck->rank * nw, rs.failed, nw);
    if (ck->comm != MPI_COMM_NULL &&
        MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all_failed, (int)nw, MPI_BYTE, ck->comm) != MPI_SUCCESS)
        st = hcrt__error(ck->ctx, HCRT_ERR_MPI, "hcrt_ckpt_restore: MPI_Allgather failed");
    bool need = false;
    for (size_t i = 0; st == HCRT_OK && i < (size_t)ck->size * nw; i++)
        need |= all_failed[i] != 0;
    if (st == HCRT_OK && need && ck->comm != MPI_COMM_NULL)
        st = hcrt__ckpt_fetch_images(ck, &rs, all_failed);
    if (st == HCRT_OK && failures) {
        memset(rs.failed, 0, nw);
        rs.msg[0] = '\0';
        rs.use_shared = true;
        failures = read_all(ck, &rs, m, mine);
    }
    free(all_failed);
    free(mine);
    if (st != HCRT_OK)
        goto out;
    HCRT_DEBUG(CKPT_SUBSYS, "step %lld: %llu bytes read and verified in %.3f s", (long long)step,
               (unsigned long long)rs.done, hcrt__now() - t_read);
    code = failures ? FALLBACK : OK_;
    snprintf(msg, cap, "%s", failures ? rs.msg : "");
    HCRT_CHECK_GOTO(agree(ck, step, code, msg, cap, verdict), st, out);
    if (*verdict == OK_) {
        report_sources(ck, &rs);
        rebuild_local(ck, &rs);
    }
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
    HCRT_CHECK(hcrt__ckpt_usable(ck, "hcrt_ckpt_restore"));
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
            snprintf(first, sizeof(first), "%s", msg);
        if (verdict == FATAL) {
            st = hcrt__error(ctx, HCRT_ERR_MISMATCH, "hcrt_ckpt_restore: %s", first);
            goto out;
        }
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
        /* Every rank agrees on this verdict about the data and nothing was left half done: it is returned
         * under either exit policy (the application may rather start afresh than be relaunched onto the
         * same checkpoints). */
        st = hcrt__error(ctx, HCRT_ERR_CORRUPT, "hcrt_ckpt_restore: no committed step of %s could be restored%s; "
                         "first failure: %s", ck->dir, step == HCRT_CKPT_LATEST ? "" : " (no fallback for an explicit step)",
                         first);
        goto out;
    }
    /* HCRT_FAULT: the device copies of the agreed step (error fails them, device_lost loses the device). */
    st = hcrt__fault_site(ctx, "restore", "copy", m.step, NULL, NULL, 0, HCRT_ERR_BACKEND);
    for (int i = 0; i < ck->nentries && st == HCRT_OK; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (hcrt__device_is_host(e->buf.device) || e->bytes == 0)
            continue;
        st = hcrt_memcpy(e->buf.device, e->buf.ptr, ck->host, ck->pool + e->pool_offset, e->bytes);
        if (st != HCRT_OK)
            st = hcrt__error(ctx, st, "copying tensor '%s' to its %s device failed: %s", e->name,
                             hcrt_device_backend(e->buf.device), hcrt_last_error(ctx));
    }
    if (st != HCRT_OK) {
        st = hcrt__fail(ctx, NULL, true, st, "hcrt_ckpt_restore: step %lld: %s", (long long)m.step, hcrt_last_error(ctx));
        goto out;
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
