/*
 * runtime/checkpoint/api.c - opening and closing a checkpointer, registering tensors, listing steps.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "collectives/coll.h"
#include "runtime/checkpoint/ckpt_internal.h"

void hcrt_ckpt_params_init(hcrt_ckpt_params_t *params)
{
    if (params == NULL)
        return;
    memset(params, 0, sizeof(*params));
    params->struct_size = sizeof(*params);
    params->busy = HCRT_CKPT_WAIT;
    params->partner = -1;
}

const char *hcrt__ckpt_mpi_error(int code, char *buf, size_t cap)
{
    int len = 0;
    char tmp[MPI_MAX_ERROR_STRING];
    if (MPI_Error_string(code, tmp, &len) != MPI_SUCCESS)
        snprintf(tmp, sizeof(tmp), "MPI error %d", code);
    snprintf(buf, cap, "%s", tmp);
    return buf;
}

bool hcrt__ckpt_local_step_path(const hcrt_ckpt_t *ck, char *out, size_t cap, int64_t step)
{
    return ck->local_dir != NULL && hcrt__ckpt_step_path(out, cap, ck->local_dir, step);
}

/* The node-local directory of this job: LOCAL/<basename of dir>-<hash of its real path>, so that two
 * jobs with different shared directories never read each other's node-local files. */
static char *local_subdir(const char *local, const char *dir)
{
    char real[PATH_MAX];
    const char *path = realpath(dir, real) ? real : dir;
    const char *base = strrchr(path, '/');
    base = base && base[1] ? base + 1 : path;
    size_t len = strlen(local) + strlen(base) + 32;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s/%.64s-%08x", local, base, (unsigned)XXH32(path, strlen(path), 0));
    return out;
}

hcrt_status_t hcrt_ckpt_open(hcrt_context_t *ctx, struct hcrt_comm *comm, const hcrt_ckpt_params_t *params,
                             hcrt_ckpt_t **ck_out)
{
    hcrt_status_t st;
    hcrt_ckpt_params_t p;
    char err[1024];
    hcrt_ckpt_t *ck;

    HCRT_CHECK_ARG(NULL, ctx != NULL, "ctx", "is NULL");
    HCRT_CHECK_ARG(ctx, comm == NULL || comm->ctx == ctx, "comm", "belongs to another context");
    HCRT_CHECK_ARG(ctx, params != NULL, "params", "is NULL");
    HCRT_CHECK_ARG(ctx, ck_out != NULL, "ck", "is NULL");
    HCRT_CHECK_ARG(ctx, params->struct_size >= offsetof(hcrt_ckpt_params_t, dir) + sizeof(char *),
                   "params", "has a struct_size too small (use hcrt_ckpt_params_init)");
    hcrt_ckpt_params_init(&p);
    memcpy(&p, params, params->struct_size < sizeof(p) ? params->struct_size : sizeof(p));
    HCRT_CHECK_ARG(ctx, p.dir != NULL && p.dir[0] != '\0', "params->dir", "is NULL or empty");
    HCRT_CHECK_ARG(ctx, strlen(p.dir) < 3000, "params->dir", "is longer than 3000 bytes");
    HCRT_CHECK_ARG(ctx, p.keep >= 0, "params->keep", "is negative");
    HCRT_CHECK_ARG(ctx, p.busy == HCRT_CKPT_WAIT || p.busy == HCRT_CKPT_REFUSE, "params->busy",
                   "is neither HCRT_CKPT_WAIT nor HCRT_CKPT_REFUSE");
    HCRT_CHECK_ARG(ctx, p.partner >= -1 && p.partner <= 1, "params->partner", "is not -1, 0 or 1");
    if (p.local_dir != NULL)
        HCRT_CHECK_ARG(ctx, strlen(p.local_dir) < 3000, "params->local_dir", "is longer than 3000 bytes");

    ck = calloc(1, sizeof(*ck));
    if (ck == NULL)
        return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_open: out of memory");
    ck->ctx = ctx;
    ck->comm = MPI_COMM_NULL;
    ck->pool_step = -1;
    ck->held_step = -1;
    ck->held_pending = -1;
    ck->last_step = -1;
    ck->last_committed = -1;
    ck->step = -1;
    ck->busy = p.busy;
    ck->timeout = hcrt__config_double(ctx, "HCRT_TIMEOUT");
    ck->keep = p.keep ? p.keep : (int)hcrt__config_int(ctx, "HCRT_CKPT_KEEP");
    ck->partner_on = p.partner < 0 ? hcrt__config_bool(ctx, "HCRT_CKPT_PARTNER") : p.partner == 1;
    pthread_mutex_init(&ck->mu, NULL);
    pthread_cond_init(&ck->cv, NULL);
    hcrt__ckpt_install_gc_hook();

    MPI_Comm base = comm != NULL ? comm->mpi : ctx->world;
    if (base != MPI_COMM_NULL) {
        int rc = MPI_Comm_dup(base, &ck->comm);
        if (rc != MPI_SUCCESS) {
            st = hcrt__error(ctx, HCRT_ERR_MPI, "hcrt_ckpt_open: MPI_Comm_dup failed: %s",
                             hcrt__ckpt_mpi_error(rc, err, sizeof(err)));
            goto err_free;
        }
        rc = MPI_Comm_set_errhandler(ck->comm, MPI_ERRORS_RETURN);
        if (rc != MPI_SUCCESS) {
            st = hcrt__error(ctx, HCRT_ERR_MPI, "hcrt_ckpt_open: MPI_Comm_set_errhandler failed: %s",
                             hcrt__ckpt_mpi_error(rc, err, sizeof(err)));
            goto err_free;
        }
        MPI_Comm_rank(ck->comm, &ck->rank);
        MPI_Comm_size(ck->comm, &ck->size);
        /* The communicator knows the nodes (fake ones too, HCRT_FAKE_NODES): partners follow them. */
        if (comm != NULL && comm->node_of != NULL && comm->size == ck->size) {
            ck->node_of = malloc((size_t)ck->size * sizeof(int));
            if (ck->node_of != NULL)
                memcpy(ck->node_of, comm->node_of, (size_t)ck->size * sizeof(int));
        }
    } else {
        ck->rank = 0;
        ck->size = 1;
    }
    HCRT_CHECK_GOTO(hcrt_device_host(ctx, &ck->host), st, err_free);
    ck->dir = strdup(p.dir);
    const char *local = p.local_dir ? p.local_dir : hcrt__config_str(ctx, "HCRT_CKPT_LOCAL_DIR");
    if (ck->dir == NULL) {
        st = hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_open: out of memory");
        goto err_free;
    }
    /* Every rank creates the shared directory (mkdir -p tolerates the race) so that the local path,
     * derived from its real path, is the same everywhere. */
    st = hcrt__mkdir_p(ck->dir, err, sizeof(err));
    if (st != HCRT_OK) {
        st = hcrt__error(ctx, st, "hcrt_ckpt_open: rank %d on %s: %s", ck->rank, ctx->hostname, err);
        goto err_free;
    }
    if (local != NULL && local[0] != '\0') {
        ck->local_dir = local_subdir(local, ck->dir);
        if (ck->local_dir == NULL) {
            st = hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_open: out of memory");
            goto err_free;
        }
        st = hcrt__mkdir_p(ck->local_dir, err, sizeof(err));
        if (st != HCRT_OK) {
            st = hcrt__error(ctx, st, "hcrt_ckpt_open: rank %d on %s: node-local level: %s", ck->rank,
                             ctx->hostname, err);
            goto err_free;
        }
    }
    HCRT_CHECK_GOTO(hcrt__ckpt_partner_setup(ck), st, err_free);
    HCRT_CHECK_GOTO(hcrt__ckpt_thread_start(ck), st, err_free);
    HCRT_INFO(CKPT_SUBSYS, "checkpointer on %s (node-local %s, keep %d, partner %s)", ck->dir,
              ck->local_dir ? ck->local_dir : "off", ck->keep, ck->partner_mode);
    *ck_out = ck;
    return HCRT_OK;

err_free:
    hcrt__ckpt_partner_free(ck);
    free(ck->node_of);
    if (ck->comm != MPI_COMM_NULL)
        MPI_Comm_free(&ck->comm);
    free(ck->dir);
    free(ck->local_dir);
    pthread_mutex_destroy(&ck->mu);
    pthread_cond_destroy(&ck->cv);
    free(ck);
    return st;
}

hcrt_status_t hcrt_ckpt_register(hcrt_ckpt_t *ck, const char *name, hcrt_buffer_t buf, int ndims,
                                 const uint64_t *global_shape, const hcrt_ckpt_shard_t *shard)
{
    HCRT_CHECK_ARG(NULL, ck != NULL, "ck", "is NULL");
    hcrt_context_t *ctx = ck->ctx;
    HCRT_CHECK_ARG(ctx, name != NULL, "name", "is NULL");
    HCRT_CHECK_ARG(ctx, hcrt__ckpt_name_ok(name), "name",
                   "is empty, longer than 255 bytes, or holds '/', '..' or control characters");
    if (buf.device == NULL)
        buf.device = ck->host; /* NULL means host memory, as everywhere */
    HCRT_CHECK_ARG(ctx, buf.device->ctx == ctx, "buf.device", "belongs to another context");
    HCRT_CHECK_ARG(ctx, hcrt_dtype_size(buf.dtype) != 0, "buf.dtype", "is not a valid hcrt_dtype_t");
    HCRT_CHECK_ARG(ctx, buf.ptr != NULL || buf.count == 0, "buf.ptr", "is NULL with a non-zero count");
    HCRT_CHECK_ARG(ctx, buf.count <= SIZE_MAX / hcrt_dtype_size(buf.dtype), "buf.count", "overflows");
    HCRT_CHECK(
        hcrt__mem_check(ctx, __func__, "buf", buf.ptr, buf.count * hcrt_dtype_size(buf.dtype), buf.device, false));
    HCRT_CHECK_ARG(ctx, ndims >= 1 && ndims <= HCRT_CKPT_MAX_DIMS, "ndims", "is not in 1..8");
    HCRT_CHECK_ARG(ctx, global_shape != NULL, "global_shape", "is NULL");
    if (ck->state != CKPT_IDLE)
        return hcrt__error(ctx, HCRT_ERR_STATE, "hcrt_ckpt_register: a save of step %lld is in flight; "
                           "call hcrt_ckpt_wait() first", (long long)ck->step);
    for (int i = 0; i < ck->nentries; i++)
        if (strcmp(ck->entries[i].name, name) == 0)
            return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_ckpt_register: argument 'name': '%s' is "
                               "already registered", name);

    hcrt__ckpt_entry_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.name, sizeof(e.name), "%s", name);
    e.buf = buf;
    e.ndims = ndims;
    uint64_t row_elems = 1;
    for (int d = 0; d < ndims; d++) {
        HCRT_CHECK_ARG(ctx, global_shape[d] <= ((uint64_t)1 << 48), "global_shape", "has a dimension above 2^48");
        e.shape[d] = global_shape[d];
        if (d > 0) {
            if (global_shape[d] != 0 && row_elems > ((uint64_t)1 << 56) / global_shape[d])
                return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_ckpt_register: argument 'global_shape' "
                                   "of '%s': the row size overflows", name);
            row_elems *= global_shape[d];
        }
    }
    e.row_bytes = row_elems * hcrt_dtype_size(buf.dtype);
    e.replicated = shard == NULL;
    if (e.replicated) {
        e.row_offset = 0;
        e.rows = global_shape[0];
    } else {
        HCRT_CHECK_ARG(ctx, shard->row_offset <= global_shape[0] && shard->rows <= global_shape[0] - shard->row_offset,
                       "shard", "reaches beyond global_shape[0]");
        e.row_offset = shard->row_offset;
        e.rows = shard->rows;
    }
    if (e.rows != 0 && row_elems > UINT64_MAX / e.rows)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_ckpt_register: '%s': size overflows", name);
    if (e.rows * row_elems != buf.count)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_ckpt_register: argument 'buf.count' of '%s' is %zu, "
                           "but %s%llu rows of %llu elements make %llu", name, buf.count,
                           e.replicated ? "the replicated tensor's " : "the shard's ",
                           (unsigned long long)e.rows, (unsigned long long)row_elems,
                           (unsigned long long)(e.rows * row_elems));
    /* The part's bytes, and the snapshot pool and data file that hold every part, must fit 2^62 bytes
     * (file offsets are signed 64-bit; the sums below would wrap long before the memory runs out). */
    const uint64_t max_bytes = (uint64_t)1 << 62;
    if (e.rows != 0 && e.row_bytes > max_bytes / e.rows)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_ckpt_register: '%s': %llu rows of %llu bytes overflow "
                           "the byte count", name, (unsigned long long)e.rows, (unsigned long long)e.row_bytes);
    e.bytes = e.rows * e.row_bytes;
    uint64_t total = e.bytes;
    for (int i = 0; i < ck->nentries; i++)
        total += ck->entries[i].bytes + HCRT__CKPT_ALIGN; /* each at most 2^62: no wrap before the check */
    if (total > max_bytes)
        return hcrt__error(ctx, HCRT_ERR_INVALID_ARG, "hcrt_ckpt_register: '%s': the registered tensors would exceed "
                           "2^62 bytes", name);
    e.written = !e.replicated || ck->rank == 0;

    if (ck->nentries == ck->cap) {
        int ncap = ck->cap ? ck->cap * 2 : 8;
        hcrt__ckpt_entry_t *n = realloc(ck->entries, (size_t)ncap * sizeof(*n));
        if (n == NULL)
            return hcrt__error(ctx, HCRT_ERR_NO_MEMORY, "hcrt_ckpt_register: out of memory");
        ck->entries = n;
        ck->cap = ncap;
    }
    ck->entries[ck->nentries++] = e;
    ck->layout_dirty = true;
    return HCRT_OK;
}

/* Committed steps of the shared directory, newest first. */
static hcrt_status_t committed_steps(hcrt_ckpt_t *ck, const char *fn, int64_t **steps, size_t *n)
{
    hcrt__ckpt_step_entry_t *list;
    size_t count;
    char err[1024];
    /* A garbage collection still running after the last commit would show steps about to go. */
    hcrt__ckpt_gc_wait(ck);
    hcrt_status_t st = hcrt__ckpt_scan(ck->dir, &list, &count, err, sizeof(err));
    if (st != HCRT_OK)
        return hcrt__error(ck->ctx, st, "%s: %s", fn, err);
    int64_t *out = malloc((count + 1) * sizeof(int64_t));
    if (out == NULL) {
        free(list);
        return hcrt__error(ck->ctx, HCRT_ERR_NO_MEMORY, "%s: out of memory", fn);
    }
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (list[i].committed)
            out[k++] = list[i].step;
    free(list);
    *steps = out;
    *n = k;
    return HCRT_OK;
}

hcrt_status_t hcrt_ckpt_latest(hcrt_ckpt_t *ck, int64_t *step)
{
    int64_t *steps;
    size_t n;
    HCRT_CHECK_ARG(NULL, ck != NULL, "ck", "is NULL");
    HCRT_CHECK_ARG(ck->ctx, step != NULL, "step", "is NULL");
    HCRT_CHECK(committed_steps(ck, __func__, &steps, &n));
    if (n == 0) {
        free(steps);
        return hcrt__error(ck->ctx, HCRT_ERR_NOT_FOUND, "hcrt_ckpt_latest: no committed step in %s", ck->dir);
    }
    *step = steps[0];
    free(steps);
    return HCRT_OK;
}

hcrt_status_t hcrt_ckpt_list(hcrt_ckpt_t *ck, int64_t *steps, size_t max, size_t *n)
{
    int64_t *all;
    size_t count;
    HCRT_CHECK_ARG(NULL, ck != NULL, "ck", "is NULL");
    HCRT_CHECK_ARG(ck->ctx, n != NULL, "n", "is NULL");
    HCRT_CHECK_ARG(ck->ctx, steps != NULL || max == 0, "steps", "is NULL with max > 0");
    HCRT_CHECK(committed_steps(ck, __func__, &all, &count));
    for (size_t i = 0; i < count && i < max; i++)
        steps[i] = all[i];
    *n = count;
    free(all);
    return HCRT_OK;
}

hcrt_status_t hcrt_ckpt_close(hcrt_ckpt_t *ck)
{
    if (ck == NULL)
        return HCRT_OK;
    hcrt_status_t st = hcrt_ckpt_wait(ck);
    if (ck->failed != HCRT_OK) {
        /* MPI requests of the failed agreement (or a stuck writer thread) may still write into the pools
         * and the descriptors: they stay allocated for the process's life. */
        HCRT_DEBUG(CKPT_SUBSYS, "closing a failed checkpointer: its memory is left allocated");
        if (ck->writer_stuck) {
            pthread_detach(ck->thread);
            pthread_detach(ck->hasher);
        } else {
            hcrt__ckpt_thread_stop(ck);
        }
        return st;
    }
    hcrt__ckpt_thread_stop(ck);
    hcrt__ckpt_snapshot_free(ck);
    hcrt__ckpt_partner_free(ck);
    free(ck->node_of);
    if (ck->pool)
        hcrt__ckpt_host_free(ck->pool_dev, ck->pool, ck->pool_cap);
    for (int i = 0; i < ck->nentries; i++)
        free(ck->entries[i].sums);
    free(ck->entries);
    free(ck->meta);
    free(ck->desc);
    free(ck->lens);
    free(ck->displs);
    free(ck->len_reqs);
    free(ck->len_done);
    free(ck->all);
    if (ck->comm != MPI_COMM_NULL)
        MPI_Comm_free(&ck->comm);
    free(ck->dir);
    free(ck->local_dir);
    pthread_mutex_destroy(&ck->mu);
    pthread_cond_destroy(&ck->cv);
    free(ck);
    return st;
}
