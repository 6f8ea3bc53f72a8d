/*
 * runtime/checkpoint/commit.c - save, wait and test: the commit protocol.
 *
 *   save():   snapshot into the pool (snapshot.c), start the writer thread (persist.c) and the partner
 *             exchange (partner.c), return.
 *   progress: once this rank's file and the partner copies it keeps are durable, each rank sends rank 0
 *             a descriptor of what it wrote (a partial manifest: its shards and their chunk checksums,
 *             or the error that stopped it);
 *             rank 0 merges them into the manifest, checks it as any reader would (every tensor tiled
 *             exactly), writes manifest.json.tmp, fsyncs, renames it to manifest.json and fsyncs the
 *             directory: from that rename on the step is committed. Rank 0 then broadcasts its verdict
 *             and garbage-collects.
 *
 * The agreement is made of nonblocking MPI operations (each rank's descriptor length sent to rank 0,
 * an Igatherv of the descriptors, an Ibcast of the verdict) advanced by wait(), test() and the next
 * save(), all in the application thread, so test() never blocks on another rank.
 *
 * Failures never hang and are never partial. A rank whose snapshot or write failed still takes part in
 * the agreement, with an error descriptor, so every rank learns that the step failed and why (rank 0's
 * verdict names the rank and the cause). Every wait runs under HCRT_TIMEOUT: the agreement counts from
 * when this rank entered it (rank 0 then names the ranks that never reported), the wait for this rank's
 * own writer from when wait() began. A failed save then follows the exit policy (hcrt/exit.h): by
 * default the job ends with the failure's exit status (rank 0 aborts first); with
 * HCRT_ON_FAILURE=return every rank returns it, and a save whose agreement itself failed leaves the
 * checkpointer unusable (its MPI requests are still out).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/checkpoint/ckpt_internal.h"
#include "runtime/fault/fault.h"
#include "runtime/trace.h"

/* This rank's descriptor: a partial manifest, or "E" and the error text when persisting failed. */
static char *build_descriptor(hcrt_ckpt_t *ck, hcrt_status_t persisted)
{
    if (persisted != HCRT_OK) {
        size_t len = strlen(ck->job_err) + 64;
        char *d = malloc(len);
        if (d)
            snprintf(d, len, "E%s: %s", hcrt_status_name(persisted), ck->job_err);
        return d;
    }
    hcrt__ckpt_manifest_t m;
    hcrt__ckpt_rank_t r;
    memset(&m, 0, sizeof(m));
    memset(&r, 0, sizeof(r));
    m.version = HCRT__CKPT_FORMAT_VERSION;
    m.step = ck->step;
    m.world_size = ck->size;
    snprintf(m.time, sizeof(m.time), "-");
    snprintf(m.partner_mode, sizeof(m.partner_mode), "%s", ck->partner_mode);
    r.rank = ck->rank;
    snprintf(r.host, sizeof(r.host), "%s", ck->ctx->hostname);
    for (int i = 0; i < ck->nentries; i++) {
        const char *be = hcrt_device_backend(ck->entries[i].buf.device);
        if (be == NULL || strstr(r.backends, be) != NULL)
            continue;
        size_t used = strlen(r.backends);
        snprintf(r.backends + used, sizeof(r.backends) - used, "%s%s", used ? "," : "", be);
    }
    hcrt__ckpt_file_name(r.file, sizeof(r.file), ck->rank);
    r.bytes = ck->file_bytes;
    r.partner = ck->partner_of ? ck->partner_of[ck->rank] : -1;
    m.nranks = 1;
    m.ranks = &r;
    m.ntensors = ck->nentries;
    m.tensors = calloc((size_t)ck->nentries + 1, sizeof(*m.tensors));
    hcrt__ckpt_shard_t *shards = calloc((size_t)ck->nentries + 1, sizeof(*shards));
    char *out = NULL;
    if (m.tensors == NULL || shards == NULL)
        goto done;
    for (int i = 0; i < ck->nentries; i++) {
        const hcrt__ckpt_entry_t *e = &ck->entries[i];
        hcrt__ckpt_tensor_t *t = &m.tensors[i];
        t->name = (char *)e->name;
        t->dtype = e->buf.dtype;
        t->ndims = e->ndims;
        memcpy(t->shape, e->shape, sizeof(t->shape));
        t->replicated = e->replicated;
        t->row_bytes = e->row_bytes;
        /* A shard of no rows holds nothing to find; leaving it out keeps the tiling check simple. */
        if (e->written && (e->rows > 0 || e->replicated)) {
            hcrt__ckpt_shard_t *s = &shards[i];
            s->rank = ck->rank;
            s->offset = e->pool_offset;
            s->row_offset = e->row_offset;
            s->rows = e->rows;
            s->bytes = e->bytes;
            s->chunk_size = HCRT__CKPT_CHUNK;
            s->nchunks = e->nchunks;
            s->sums = e->sums;
            t->shards = s;
            t->nshards = 1;
        }
    }
    out = hcrt__manifest_serialize(&m);
done:
    free(m.tensors);
    free(shards);
    return out;
}

static void verdict(hcrt__ckpt_verdict_t *v, hcrt_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(hcrt__ckpt_verdict_t *v, hcrt_status_t st, const char *fmt, ...)
{
    va_list ap;
    v->status = st;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
    va_end(ap);
}

static bool same_tensor(const hcrt__ckpt_tensor_t *a, const hcrt__ckpt_tensor_t *b)
{
    return a->dtype == b->dtype && a->ndims == b->ndims && a->replicated == b->replicated &&
           memcmp(a->shape, b->shape, sizeof(a->shape[0]) * (size_t)a->ndims) == 0;
}

/* The status named at the start of an error descriptor ("ERR_DEVICE_LOST: ..."); HCRT_ERR_IO when it
 * names none. */
static hcrt_status_t descriptor_status(const char *txt, size_t len)
{
    for (int i = 1; i < HCRT_STATUS_COUNT; i++) {
        const char *name = hcrt_status_name((hcrt_status_t)-i);
        size_t n = strlen(name);
        if (n < len && strncmp(txt, name, n) == 0 && txt[n] == ':')
            return (hcrt_status_t)-i;
    }
    return HCRT_ERR_IO;
}

/* Rank 0: merges the descriptors into the manifest and commits it. Fills ck->verdict. */
static void commit_step(hcrt_ckpt_t *ck)
{
    hcrt__ckpt_verdict_t *v = &ck->verdict;
    hcrt__ckpt_manifest_t *d = calloc((size_t)ck->size, sizeof(*d));
    hcrt__ckpt_manifest_t m, check;
    char err[1024], stepdir[4096];
    char *text = NULL;
    int ok = 0;

    memset(&m, 0, sizeof(m));
    memset(v, 0, sizeof(*v));
    if (d == NULL) {
        verdict(v, HCRT_ERR_NO_MEMORY, "rank 0: out of memory");
        return;
    }
    for (int i = 0; i < ck->size; i++, ok++) {
        const char *txt = ck->all + ck->displs[i];
        size_t len = (size_t)ck->lens[i];
        if (len > 0 && txt[0] == 'E') {
            verdict(v, descriptor_status(txt + 1, len - 1), "rank %d could not persist its data: %.*s", i,
                    (int)(len - 1), txt + 1);
            goto out;
        }
        if (hcrt__manifest_parse(txt, len, "descriptor", HCRT__MANIFEST_PARTIAL, &d[i], err, sizeof(err)) != HCRT_OK) {
            verdict(v, HCRT_ERR_INTERNAL, "rank %d sent a bad descriptor: %s", i, err);
            goto out;
        }
        if (d[i].nranks != 1 || d[i].ranks[0].rank != i || d[i].step != ck->step || d[i].world_size != ck->size) {
            verdict(v, HCRT_ERR_MISMATCH, "rank %d saved step %lld, rank 0 step %lld (every rank must save the "
                    "same step)", i, (long long)d[i].step, (long long)ck->step);
            goto out;
        }
        if (d[i].ntensors != d[0].ntensors) {
            verdict(v, HCRT_ERR_MISMATCH, "rank %d registered %d tensors, rank 0 registered %d", i,
                    d[i].ntensors, d[0].ntensors);
            goto out;
        }
    }
    m.version = HCRT__CKPT_FORMAT_VERSION;
    m.step = ck->step;
    m.world_size = ck->size;
    m.time_unix = (int64_t)time(NULL);
    struct tm tmv;
    time_t now = (time_t)m.time_unix;
    gmtime_r(&now, &tmv);
    strftime(m.time, sizeof(m.time), "%Y-%m-%dT%H:%M:%SZ", &tmv);
    snprintf(m.partner_mode, sizeof(m.partner_mode), "%s", ck->partner_mode);
    m.nranks = ck->size;
    m.ranks = calloc((size_t)ck->size, sizeof(*m.ranks));
    m.ntensors = d[0].ntensors;
    m.tensors = calloc((size_t)m.ntensors + 1, sizeof(*m.tensors));
    if (m.ranks == NULL || m.tensors == NULL) {
        verdict(v, HCRT_ERR_NO_MEMORY, "rank 0: out of memory");
        goto out;
    }
    for (int i = 0; i < ck->size; i++)
        m.ranks[i] = d[i].ranks[0];
    for (int t = 0; t < m.ntensors; t++) {
        hcrt__ckpt_tensor_t *mt = &m.tensors[t];
        *mt = d[0].tensors[t];
        mt->name = d[0].tensors[t].name; /* borrowed from d[0] */
        mt->shards = calloc((size_t)ck->size + 1, sizeof(*mt->shards));
        mt->nshards = 0;
        if (mt->shards == NULL) {
            verdict(v, HCRT_ERR_NO_MEMORY, "rank 0: out of memory");
            goto out;
        }
        for (int i = 0; i < ck->size; i++) {
            const hcrt__ckpt_tensor_t *dt = hcrt__manifest_find(&d[i], mt->name);
            if (dt == NULL || !same_tensor(dt, mt)) {
                verdict(v, HCRT_ERR_MISMATCH, "tensor '%s': rank %d %s", mt->name, i,
                        dt ? "registered it with another dtype, shape or sharding than rank 0"
                           : "did not register it");
                goto out;
            }
            for (int s = 0; s < dt->nshards; s++)
                mt->shards[mt->nshards++] = dt->shards[s]; /* sums borrowed from d[i] */
        }
    }
    m.meta = ck->meta;
    m.meta_len = ck->meta_len;
    text = hcrt__manifest_serialize(&m);
    if (text == NULL) {
        verdict(v, HCRT_ERR_NO_MEMORY, "rank 0: out of memory writing the manifest");
        goto out;
    }
    /* Read it back exactly as a restore will: shards that overlap or leave rows uncovered are the
     * application's registration error, and must never be committed. */
    if (hcrt__manifest_parse(text, strlen(text), "(new manifest)", HCRT__MANIFEST_FULL, &check, err, sizeof(err)) != HCRT_OK) {
        verdict(v, HCRT_ERR_MISMATCH, "the ranks' registrations do not form a valid checkpoint: %s", err);
        goto out;
    }
    hcrt__manifest_free(&check);
    hcrt__ckpt_step_path(stepdir, sizeof(stepdir), ck->dir, ck->step);
    {
        char path[4096 + 32];
        snprintf(path, sizeof(path), "%s/%s", stepdir, HCRT__CKPT_MANIFEST_TMP);
        FILE *f = fopen(path, "we");
        size_t len = strlen(text);
        if (f == NULL || fwrite(text, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
            verdict(v, HCRT_ERR_IO, "rank 0 cannot write %s: %s", path, strerror(errno));
            if (f)
                fclose(f);
            goto out;
        }
        fclose(f);
        /* A kill here leaves manifest.json.tmp: the step stays uncommitted. */
        if (hcrt__fault_check(ck->ctx, "ckpt", "before_rename", ck->step) == HCRT__FAULT_ERROR) {
            verdict(v, HCRT_ERR_IO, "rank 0 cannot rename %s: %s (injected by HCRT_FAULT)", path, strerror(EIO));
            goto out;
        }
        char final[4096 + 32];
        snprintf(final, sizeof(final), "%s/%s", stepdir, HCRT__CKPT_MANIFEST);
        if (rename(path, final) != 0) {
            verdict(v, HCRT_ERR_IO, "rank 0 cannot rename %s: %s", path, strerror(errno));
            goto out;
        }
        if (hcrt__fsync_dir(stepdir, err, sizeof(err)) != HCRT_OK) {
            verdict(v, HCRT_ERR_IO, "rank 0: %s", err);
            goto out;
        }
    }
    verdict(v, HCRT_OK, "committed");
    /* For hcrt-run's report: the moment the step became restorable (a no-op without HCRT_RUN_DIR). */
    hcrt_run_heartbeat(ck->ctx, ck->step, HCRT_RUN_COMMITTED);
out:
    free(text);
    if (m.tensors)
        for (int t = 0; t < m.ntensors; t++)
            free(m.tensors[t].shards);
    free(m.tensors);
    free(m.ranks);
    for (int i = 0; i < ok && i < ck->size; i++)
        hcrt__manifest_free(&d[i]);
    free(d);
}

/* Tag of the descriptor lengths sent to rank 0 (the checkpointer's communicator is private). */
#define TAG_LEN 7321

static hcrt_status_t mpi_failed(hcrt_ckpt_t *ck, const char *what, int rc)
{
    char err[MPI_MAX_ERROR_STRING];
    return hcrt__error(ck->ctx, HCRT_ERR_MPI, "checkpoint step %lld: %s failed on rank %d: %s", (long long)ck->step, what,
                       ck->rank, hcrt__ckpt_mpi_error(rc, err, sizeof(err)));
}

/* Tests ck->req without blocking. */
static hcrt_status_t req_test(hcrt_ckpt_t *ck, bool *complete, const char *what)
{
    int flag = 1;
    if (ck->req != MPI_REQUEST_NULL) {
        int rc = MPI_Test(&ck->req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_failed(ck, what, rc);
    }
    *complete = flag != 0;
    return HCRT_OK;
}

/* This rank's file is durable (or failed): its descriptor goes to rank 0, which receives every rank's
 * length separately so that it can name the ranks that never report. */
static hcrt_status_t enter_agreement(hcrt_ckpt_t *ck)
{
    /* A kill here precedes any agreement; an error makes this rank report a failure. */
    if (hcrt__fault_check(ck->ctx, "ckpt", "before_agree", ck->step) == HCRT__FAULT_ERROR && ck->job_status == HCRT_OK) {
        ck->job_status = HCRT_ERR_IO;
        snprintf(ck->job_err, sizeof(ck->job_err), "rank %d on %s: injected error before the agreement (HCRT_FAULT)",
                 ck->rank, ck->ctx->hostname);
    }
    free(ck->desc);
    ck->desc = build_descriptor(ck, ck->job_status);
    if (ck->desc == NULL)
        ck->desc = strdup("EERR_NO_MEMORY: out of memory building the descriptor");
    if (ck->desc == NULL)
        return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "checkpoint: out of memory");
    ck->desc_len = (int)strlen(ck->desc);
    ck->t_agree = hcrt__now();
    if (ck->rank == 0 && ck->lens == NULL) {
        ck->lens = calloc((size_t)ck->size, sizeof(int));
        ck->displs = calloc((size_t)ck->size, sizeof(int));
        ck->len_reqs = calloc((size_t)ck->size, sizeof(MPI_Request));
        ck->len_done = calloc((size_t)ck->size, sizeof(int));
        if (ck->lens == NULL || ck->displs == NULL || ck->len_reqs == NULL || ck->len_done == NULL)
            return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "checkpoint: out of memory");
    }
    ck->req = MPI_REQUEST_NULL;
    if (ck->rank == 0) {
        ck->lens[0] = ck->desc_len;
        ck->len_reqs[0] = MPI_REQUEST_NULL;
        for (int r = 1; r < ck->size; r++) {
            int rc = MPI_Irecv(&ck->lens[r], 1, MPI_INT, r, TAG_LEN, ck->comm, &ck->len_reqs[r]);
            if (rc != MPI_SUCCESS)
                return mpi_failed(ck, "MPI_Irecv of a descriptor length", rc);
        }
        return HCRT_OK;
    }
    int rc = MPI_Isend(&ck->desc_len, 1, MPI_INT, 0, TAG_LEN, ck->comm, &ck->req);
    return rc == MPI_SUCCESS ? HCRT_OK : mpi_failed(ck, "MPI_Isend of the descriptor length", rc);
}

/* Whether every rank's descriptor length reached rank 0 (rank 0), or ours left (the others). */
static hcrt_status_t lens_test(hcrt_ckpt_t *ck, bool *complete)
{
    if (ck->rank != 0)
        return req_test(ck, complete, "MPI_Isend of the descriptor length");
    int out = 0;
    *complete = ck->size == 1;
    if (ck->size == 1)
        return HCRT_OK;
    int rc = MPI_Testsome(ck->size - 1, ck->len_reqs + 1, &out, ck->len_done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS)
        return mpi_failed(ck, "MPI_Testsome of the descriptor lengths", rc);
    *complete = out == MPI_UNDEFINED;
    return HCRT_OK;
}

static hcrt_status_t post_gatherv(hcrt_ckpt_t *ck)
{
    if (ck->rank == 0) {
        size_t total = 0;
        for (int i = 0; i < ck->size; i++) {
            ck->displs[i] = (int)total;
            total += (size_t)ck->lens[i];
        }
        if (total > INT32_MAX)
            return hcrt__error(ck->ctx, HCRT_ERR_INTERNAL, "checkpoint: descriptors exceed 2 GiB");
        free(ck->all);
        ck->all = malloc(total + 1);
        if (ck->all == NULL)
            return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "checkpoint: out of memory");
    }
    if (ck->comm == MPI_COMM_NULL) {
        memcpy(ck->all, ck->desc, (size_t)ck->desc_len);
        ck->req = MPI_REQUEST_NULL;
        return HCRT_OK;
    }
    int rc = MPI_Igatherv(ck->desc, ck->desc_len, MPI_CHAR, ck->all, ck->lens, ck->displs, MPI_CHAR, 0,
                          ck->comm, &ck->req);
    return rc == MPI_SUCCESS ? HCRT_OK : mpi_failed(ck, "MPI_Igatherv", rc);
}

static hcrt_status_t post_bcast(hcrt_ckpt_t *ck)
{
    if (ck->rank == 0)
        commit_step(ck);
    if (ck->comm == MPI_COMM_NULL) {
        ck->req = MPI_REQUEST_NULL;
        return HCRT_OK;
    }
    int rc = MPI_Ibcast(&ck->verdict, (int)sizeof(ck->verdict), MPI_BYTE, 0, ck->comm, &ck->req);
    return rc == MPI_SUCCESS ? HCRT_OK : mpi_failed(ck, "MPI_Ibcast", rc);
}

/* The save's verdict is known on this rank: a committed step, or a failure, which follows the exit
 * policy (rank 0, which decided it, ends the job first). */
static void finish(hcrt_ckpt_t *ck)
{
    ck->verdict.msg[sizeof(ck->verdict.msg) - 1] = '\0';
    ck->state = CKPT_IDLE;
    ck->result = (hcrt_status_t)ck->verdict.status;
    if (hcrt__trace_on(ck->ctx))
        hcrt__trace_event(ck->ctx, HCRT__LANE_CKPT, 'X', "ckpt agree+commit", "ckpt", ck->tr_agree,
                          hcrt__trace_clock() - ck->tr_agree, "\"step\":%lld,\"committed\":%s,\"status\":\"%s\"",
                          (long long)ck->step, ck->result == HCRT_OK ? "true" : "false", hcrt_status_name(ck->result));
    if (ck->result == HCRT_OK) {
        ck->last_committed = ck->step;
        ck->held_step = ck->held_pending;
        HCRT_INFO(CKPT_SUBSYS, "step %lld committed (%.3f s after save)", (long long)ck->step,
                  hcrt__now() - ck->t_save_start);
        hcrt__ckpt_gc_start(ck, ck->step);
        return;
    }
    /* A step that failed may be saved again. */
    ck->last_step = ck->last_committed;
    ck->held_step = -1;
    snprintf(ck->result_msg, sizeof(ck->result_msg), "checkpoint step %lld was not committed: %.900s",
             (long long)ck->step, ck->verdict.msg);
    if (hcrt__is_usage_error(ck->result)) {
        if (ck->rank == 0)
            HCRT_ERROR(CKPT_SUBSYS, "%s", ck->result_msg);
    } else if (ck->rank == 0 || !ck->ctx->fail_return) {
        /* Under HCRT_ON_FAILURE=return only rank 0 logs (every rank returns the same error). */
        hcrt__fail(ck->ctx, NULL, ck->rank == 0, ck->result, "%s", ck->result_msg);
    }
}

/* One pass over the save's states, as far as it goes without blocking. */
static hcrt_status_t advance(hcrt_ckpt_t *ck, bool *done)
{
    bool complete;
    *done = false;
    for (;;) {
        switch (ck->state) {
        case CKPT_IDLE:
            *done = true;
            return HCRT_OK;
        case CKPT_PERSISTING:
            if (!hcrt__ckpt_persist_done(ck, false)) {
                /* Keep MPI moving meanwhile: this rank's partner copy is on its way to its keeper, whose
                 * report waits for it (Open MPI progresses transfers only inside MPI calls). */
                int flag = 0;
                if (ck->comm != MPI_COMM_NULL)
                    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, ck->comm, &flag, MPI_STATUS_IGNORE);
                return HCRT_OK;
            }
            /* The partner copies this rank keeps are part of what it reports durable. */
            if (!hcrt__ckpt_partner_done(ck, false))
                return HCRT_OK;
            if (hcrt__trace_on(ck->ctx))
                ck->tr_agree = hcrt__trace_clock();
            HCRT_CHECK(enter_agreement(ck));
            ck->state = CKPT_GATHER_LEN;
            break;
        case CKPT_GATHER_LEN:
            HCRT_CHECK(lens_test(ck, &complete));
            if (!complete)
                return HCRT_OK;
            HCRT_CHECK(post_gatherv(ck));
            ck->state = CKPT_GATHER;
            break;
        case CKPT_GATHER:
            HCRT_CHECK(req_test(ck, &complete, "MPI_Igatherv"));
            if (!complete)
                return HCRT_OK;
            HCRT_CHECK(post_bcast(ck));
            ck->state = CKPT_BCAST;
            break;
        case CKPT_BCAST:
            HCRT_CHECK(req_test(ck, &complete, "MPI_Ibcast"));
            if (!complete)
                return HCRT_OK;
            finish(ck);
            *done = true;
            return HCRT_OK;
        }
    }
}

hcrt_status_t hcrt__ckpt_usable(const hcrt_ckpt_t *ck, const char *fn)
{
    if (ck->failed == HCRT_OK)
        return HCRT_OK;
    return hcrt__error(ck->ctx, ck->failed, "%s: the checkpointer cannot be used after its earlier failure: %s", fn,
                       ck->failed_msg);
}

/* The agreement (or this rank's writer) failed: the checkpointer is unusable (MPI requests are out), and
 * the exit policy applies. Rank 0 is designated to end the job. */
static hcrt_status_t ckpt_failed(hcrt_ckpt_t *ck, hcrt_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hcrt_status_t ckpt_failed(hcrt_ckpt_t *ck, hcrt_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ck->failed_msg, sizeof(ck->failed_msg), fmt, ap);
    va_end(ap);
    ck->failed = status;
    hcrt_status_t st = hcrt__fail(ck->ctx, NULL, ck->rank == 0, status, "%s", ck->failed_msg);
    snprintf(ck->failed_msg, sizeof(ck->failed_msg), "%s", hcrt_last_error(ck->ctx));
    return st;
}

/* The deadline of the save in flight passed: names what this rank waits for. */
static hcrt_status_t expired(hcrt_ckpt_t *ck, double waited)
{
    char who[1024] = "";
    const char *what;
    if (ck->state == CKPT_PERSISTING && hcrt__ckpt_persist_done(ck, false)) {
        for (int k = 0; k < ck->nheld; k++) {
            size_t used = strlen(who);
            if (used + 16 < sizeof(who))
                snprintf(who + used, sizeof(who) - used, "%s%d", used ? ", " : "", ck->held_rank[k]);
        }
        ck->writer_stuck = true; /* its writer may be stuck writing them */
        return ckpt_failed(ck, HCRT_ERR_TIMEOUT, "checkpoint step %lld: the partner copies this rank keeps (of rank(s) "
                           "%s) were not received and written within HCRT_TIMEOUT=%g s (waited %.1f s)",
                           (long long)ck->step, who, ck->timeout, waited);
    }
    if (ck->state == CKPT_PERSISTING) {
        ck->writer_stuck = true;
        return ckpt_failed(ck, HCRT_ERR_TIMEOUT, "checkpoint step %lld: this rank's data file was not written within "
                           "HCRT_TIMEOUT=%g s (waited %.1f s; the disk or the writer thread is stuck)",
                           (long long)ck->step, ck->timeout, waited);
    }
    if (ck->state == CKPT_GATHER_LEN && ck->rank == 0) {
        for (int r = 1; r < ck->size; r++) {
            size_t used = strlen(who);
            if (ck->len_reqs[r] != MPI_REQUEST_NULL && used + 80 < sizeof(who))
                snprintf(who + used, sizeof(who) - used, "%s%d (%s)", used ? ", " : "", r, ck->hosts ? ck->hosts[r] : "?");
        }
        return ckpt_failed(ck, HCRT_ERR_TIMEOUT, "checkpoint step %lld: ranks that never reported their data within "
                           "HCRT_TIMEOUT=%g s of rank 0 entering the agreement: %s (still persisting, stuck, dead, or "
                           "not calling hcrt_ckpt_wait/test)", (long long)ck->step, ck->timeout, who[0] ? who : "none seen");
    }
    what = ck->state == CKPT_GATHER_LEN ? "rank 0 to take this rank's report"
           : ck->state == CKPT_GATHER   ? "the other ranks' descriptors"
                                        : "rank 0's verdict and the partner copies";
    return ckpt_failed(ck, HCRT_ERR_TIMEOUT, "checkpoint step %lld: the agreement did not complete within "
                       "HCRT_TIMEOUT=%g s (waited %.1f s for %s)", (long long)ck->step, ck->timeout, waited, what);
}

hcrt_status_t hcrt__ckpt_progress(hcrt_ckpt_t *ck, bool block, bool *done)
{
    double start = hcrt__now();
    long nap = 20000;
    *done = false;
    HCRT_CHECK(hcrt__ckpt_usable(ck, "checkpoint"));
    for (;;) {
        hcrt_status_t st = advance(ck, done);
        if (st != HCRT_OK)
            return ckpt_failed(ck, st, "%s", hcrt_last_error(ck->ctx));
        if (*done)
            return HCRT_OK;
        double now = hcrt__now();
        if (ck->timeout > 0) {
            if (ck->state == CKPT_PERSISTING && block && now - start > ck->timeout)
                return expired(ck, now - start);
            if (ck->state != CKPT_PERSISTING && now - ck->t_agree > ck->timeout)
                return expired(ck, now - ck->t_agree);
        }
        if (!block)
            return HCRT_OK;
        if (ck->state == CKPT_PERSISTING) {
            hcrt__ckpt_persist_wait(ck, 0.05);
        } else {
            /* Peers may still be writing on these cores: sleep rather than spin. */
            struct timespec ts = {0, nap};
            nanosleep(&ts, NULL);
            nap = nap < 1000000 ? nap * 2 : 1000000;
        }
    }
}

hcrt_status_t hcrt__ckpt_mpi_wait(hcrt_ckpt_t *ck, MPI_Request *req, const char *what)
{
    double start = hcrt__now();
    long nap = 2000;
    for (;;) {
        int flag = 0, rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return ckpt_failed(ck, HCRT_ERR_MPI, "%s failed on rank %d (rc %d)", what, ck->rank, rc);
        if (flag)
            return HCRT_OK;
        double waited = hcrt__now() - start;
        if (ck->timeout > 0 && waited > ck->timeout)
            return ckpt_failed(ck, HCRT_ERR_TIMEOUT, "%s did not complete within HCRT_TIMEOUT=%g s on rank %d (a peer "
                               "is stuck, dead, or not making the same call)", what, ck->timeout, ck->rank);
        struct timespec ts = {0, nap};
        nanosleep(&ts, NULL);
        nap = nap < 1000000 ? nap * 2 : 1000000;
    }
}

/* Hands out the result of the finished save once. */
static hcrt_status_t take_result(hcrt_ckpt_t *ck, const char *fn)
{
    hcrt_status_t st = ck->result;
    ck->result = HCRT_OK;
    if (st != HCRT_OK)
        return hcrt__error(ck->ctx, st, "%s: %s", fn, ck->result_msg);
    return HCRT_OK;
}

hcrt_status_t hcrt_ckpt_wait(hcrt_ckpt_t *ck)
{
    bool done;
    HCRT_CHECK_ARG(NULL, ck != NULL, "ck", "is NULL");
    HCRT_CHECK(hcrt__ckpt_progress(ck, true, &done));
    return take_result(ck, __func__);
}

hcrt_status_t hcrt_ckpt_test(hcrt_ckpt_t *ck, bool *done)
{
    bool d;
    HCRT_CHECK_ARG(NULL, ck != NULL, "ck", "is NULL");
    HCRT_CHECK_ARG(ck->ctx, done != NULL, "done", "is NULL");
    HCRT_CHECK(hcrt__ckpt_progress(ck, false, &d));
    *done = d;
    return d ? take_result(ck, __func__) : HCRT_OK;
}

/*
 * This rank could not take its snapshot. Under HCRT_ON_FAILURE=return it still goes through the save's
 * every step with an error descriptor (and its partner traffic, whatever the pool holds: a failed step is
 * never kept), so that its peers, already persisting, learn the failure from rank 0's verdict instead of
 * waiting for it.
 */
static hcrt_status_t save_failed(hcrt_ckpt_t *ck, int64_t step, hcrt_status_t st)
{
    bool done;
    pthread_mutex_lock(&ck->mu);
    ck->job_status = st;
    snprintf(ck->job_err, sizeof(ck->job_err), "snapshot on %.64s: %.900s", ck->ctx->hostname, hcrt_last_error(ck->ctx));
    ck->job_done = true;
    pthread_mutex_unlock(&ck->mu);
    /* Under the default policy this rank ends the job itself, at once: its peers' saves returned and they
     * may already wait for it in the application's next collective, where they would learn of the failure
     * only at its deadline (they join the agreement only when they next call into the checkpointer). */
    if (!ck->ctx->fail_return)
        return hcrt__fail(ck->ctx, NULL, true, st,
                          "checkpoint step %lld was not committed: rank %d could not persist its data: %s: %s",
                          (long long)step, ck->rank, hcrt_status_name(st), ck->job_err);
    ck->step = step;
    ck->last_step = step;
    ck->state = CKPT_PERSISTING;
    if (ck->pool == NULL || ck->layout_dirty)
        ck->file_bytes = 0; /* the pool may be missing or too small: send the partner nothing */
    if (hcrt__ckpt_partner_post(ck, step) != HCRT_OK)
        HCRT_WARN(CKPT_SUBSYS, "step %lld: no partner copy: %s", (long long)step, hcrt_last_error(ck->ctx));
    HCRT_CHECK(hcrt__ckpt_progress(ck, true, &done));
    return take_result(ck, "hcrt_ckpt_save");
}

hcrt_status_t hcrt_ckpt_save(hcrt_ckpt_t *ck, int64_t step, const void *meta, size_t meta_len)
{
    bool done;
    HCRT_CHECK_ARG(NULL, ck != NULL, "ck", "is NULL");
    hcrt_context_t *ctx = ck->ctx;
    HCRT_CHECK_ARG(ctx, step >= 0, "step", "is negative");
    HCRT_CHECK_ARG(ctx, meta != NULL || meta_len == 0, "meta", "is NULL with meta_len > 0");
    HCRT_CHECK_ARG(ctx, meta_len <= HCRT__CKPT_META_MAX, "meta_len", "is above 64 MiB");
    HCRT_CHECK(hcrt__ckpt_usable(ck, __func__));
    if (ck->nentries == 0)
        return hcrt__error(ctx, HCRT_ERR_STATE, "hcrt_ckpt_save: no tensor registered");

    if (ck->state != CKPT_IDLE) {
        HCRT_CHECK(hcrt__ckpt_progress(ck, ck->busy == HCRT_CKPT_WAIT, &done));
        if (!done)
            return hcrt__error(ctx, HCRT_ERR_BUSY, "hcrt_ckpt_save: step %lld: the save of step %lld is still "
                               "persisting (params.busy is HCRT_CKPT_REFUSE)", (long long)step, (long long)ck->step);
    }
    HCRT_CHECK(take_result(ck, __func__));
    if (step <= ck->last_step)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_ckpt_save: argument 'step' (%lld) is not above the "
                           "previous save's step %lld", (long long)step, (long long)ck->last_step);
    if (meta_len > ck->meta_cap) {
        unsigned char *m = realloc(ck->meta, meta_len);
        if (m == NULL)
            return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_save: out of memory for %zu bytes of metadata",
                               meta_len);
        ck->meta = m;
        ck->meta_cap = meta_len;
    }

    ck->t_save_start = hcrt__now();
    ck->tr_save = hcrt__trace_on(ctx) ? hcrt__trace_clock() : 0;
    if (meta_len)
        memcpy(ck->meta, meta, meta_len);
    ck->meta_len = meta_len;
    hcrt_status_t st = hcrt__ckpt_layout(ck);
    if (st == HCRT_OK)
        st = hcrt__ckpt_snapshot(ck, step);
    if (st != HCRT_OK)
        return save_failed(ck, step, st);
    if (ck->tr_save != 0)
        hcrt__trace_event(ctx, HCRT__LANE_CKPT, 'X', "ckpt snapshot", "ckpt", ck->tr_save,
                          hcrt__trace_clock() - ck->tr_save, "\"step\":%lld,\"bytes\":%llu", (long long)step,
                          (unsigned long long)ck->file_bytes);
    ck->step = step;
    ck->last_step = step;
    ck->state = CKPT_PERSISTING;
    hcrt__ckpt_persist_start(ck);
    st = hcrt__ckpt_partner_post(ck, step);
    if (st != HCRT_OK)
        HCRT_WARN(CKPT_SUBSYS, "step %lld: no partner copy: %s", (long long)step, hcrt_last_error(ctx));
    HCRT_DEBUG(CKPT_SUBSYS, "step %lld: snapshot of %llu bytes taken in %.6f s", (long long)step,
               (unsigned long long)ck->file_bytes, hcrt__now() - ck->t_save_start);
    return HCRT_OK;
}
