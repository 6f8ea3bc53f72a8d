/*
 * runtime/checkpoint/persist.c - the background writer: the rank's data file of a snapshot, to the
 * node-local level first and then to the shared directory, each fsync'd. A second thread computes the
 * XXH3 checksum of every chunk at the same time (both only read the pool), and the writer also writes
 * the partner copies the rank keeps (partner.c) and runs the garbage collection queued after a commit,
 * so that none of this is on the application's path.
 *
 * Neither thread calls MPI (the runtime initialises MPI_THREAD_SERIALIZED and all agreement happens in
 * the application thread, commit.c); they only read the snapshot pool, which the application thread
 * leaves alone until the save is finished.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/checkpoint/ckpt_internal.h"
#include "runtime/fault/fault.h"
#include "runtime/trace.h"

static int pwrite_full(int fd, const unsigned char *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* The checkpoint directory (shared or node-local) a step directory belongs to. */
static const char *first_level_dir(const hcrt_ckpt_t *ck, const char *stepdir)
{
    size_t n = ck->local_dir ? strlen(ck->local_dir) : 0;
    return n && strncmp(stepdir, ck->local_dir, n) == 0 && stepdir[n] == '/' ? ck->local_dir : ck->dir;
}

/* HCRT_FAULT in the write phase, halfway through the data: kill leaves a partial file, hang a writer
 * that never finishes (the deadline of wait() ends it), error fails the write as a full disk would,
 * corrupt flips a bit once the file is complete. */
static hcrt_status_t write_fault(hcrt_ckpt_t *ck, const char *path, int64_t step, bool *corrupt)
{
    hcrt__fault_kind_t k = hcrt__fault_check(ck->ctx, "ckpt", "write", step);
    if (k == HCRT__FAULT_ERROR) {
        snprintf(ck->job_err, sizeof(ck->job_err), "cannot write %.900s: %s (injected by HCRT_FAULT)", path,
                 strerror(ENOSPC));
        return HCRT_ERR_IO;
    }
    if (k == HCRT__FAULT_CORRUPT)
        *corrupt = true;
    return HCRT_OK;
}

/* Writes the file image into STEPDIR/rank-N.bin. `first` is the level where the HCRT_FAULT "write" phase
 * is checked (halfway through the data). */
static hcrt_status_t write_level(hcrt_ckpt_t *ck, const char *stepdir, int64_t step, bool first, bool *corrupt)
{
    char path[4096 + 64], name[64], err[1024];
    hcrt_status_t st = hcrt__mkdir_p(stepdir, err, sizeof(err));
    if (st != HCRT_OK) {
        snprintf(ck->job_err, sizeof(ck->job_err), "%s", err);
        return st;
    }
    hcrt__ckpt_file_name(name, sizeof(name), ck->rank);
    snprintf(path, sizeof(path), "%s/%s", stepdir, name);
    /* A data file recycled by garbage collection is overwritten in place (and cut to size at the end);
     * read-write so that an injected corruption can flip a bit of what was written. */
    const char *level_dir = first_level_dir(ck, stepdir);
    bool recycled = hcrt__ckpt_take_spare(level_dir, name, path);
    int fd = open(path, O_RDWR | O_CREAT | (recycled ? 0 : O_TRUNC) | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(ck->job_err, sizeof(ck->job_err), "cannot create %.900s: %s", path, strerror(errno));
        return HCRT_ERR_IO;
    }
    uint64_t written = 0;
    bool fault_checked = !first;
    for (int i = 0; i < ck->nentries; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (!e->written)
            continue;
        for (uint64_t c = 0; c < e->nchunks; c++) {
            uint64_t off = c * HCRT__CKPT_CHUNK;
            size_t len = (size_t)(e->bytes - off < HCRT__CKPT_CHUNK ? e->bytes - off : HCRT__CKPT_CHUNK);
            const unsigned char *src = ck->pool + e->pool_offset + off;
            if (pwrite_full(fd, src, len, e->pool_offset + off) != 0) {
                snprintf(ck->job_err, sizeof(ck->job_err), "cannot write %.900s: %s", path, strerror(errno));
                close(fd);
                return HCRT_ERR_IO;
            }
            written += len;
            if (!fault_checked && written * 2 >= ck->file_bytes) {
                fault_checked = true;
                if (write_fault(ck, path, step, corrupt) != HCRT_OK) {
                    close(fd);
                    return HCRT_ERR_IO;
                }
            }
        }
    }
    if (!fault_checked && write_fault(ck, path, step, corrupt) != HCRT_OK) {
        close(fd);
        return HCRT_ERR_IO;
    }
    if (*corrupt && ck->file_bytes > 0) {
        unsigned char b = 0;
        /* The middle byte of the first tensor written, not of the file: the file's middle may fall in the
         * alignment padding between tensors, which no checksum covers, and the flip would test nothing. */
        uint64_t at = ck->file_bytes / 2;
        for (int i = 0; i < ck->nentries; i++) {
            if (ck->entries[i].written && ck->entries[i].bytes > 0) {
                at = ck->entries[i].pool_offset + ck->entries[i].bytes / 2;
                break;
            }
        }
        if (pread(fd, &b, 1, (off_t)at) != 1) {
            HCRT_WARN(CKPT_SUBSYS, "injected corruption of %s failed", path);
        } else {
            b ^= 0x10;
            if (pwrite(fd, &b, 1, (off_t)at) != 1)
                HCRT_WARN(CKPT_SUBSYS, "injected corruption of %s failed", path);
        }
    }
    if (ftruncate(fd, (off_t)ck->file_bytes) != 0 || fsync(fd) != 0) {
        snprintf(ck->job_err, sizeof(ck->job_err), "cannot sync %.900s: %s", path, strerror(errno));
        close(fd);
        return HCRT_ERR_IO;
    }
    close(fd);
    st = hcrt__fsync_dir(stepdir, err, sizeof(err));
    if (st != HCRT_OK)
        snprintf(ck->job_err, sizeof(ck->job_err), "%s", err);
    return st;
}

/* Checksums of every chunk of the file image, computed by the hasher thread while the writer writes: both
 * only read the pool, and on two cores the checksums then cost no time of their own. */
static void hash_image(hcrt_ckpt_t *ck)
{
    for (int i = 0; i < ck->nentries; i++) {
        hcrt__ckpt_entry_t *e = &ck->entries[i];
        if (!e->written)
            continue;
        for (uint64_t c = 0; c < e->nchunks; c++) {
            uint64_t off = c * HCRT__CKPT_CHUNK;
            size_t len = (size_t)(e->bytes - off < HCRT__CKPT_CHUNK ? e->bytes - off : HCRT__CKPT_CHUNK);
            e->sums[c] = hcrt__ckpt_hash(ck->pool + e->pool_offset + off, len);
        }
    }
}

static void *hasher_main(void *arg)
{
    hcrt_ckpt_t *ck = arg;
    pthread_mutex_lock(&ck->mu);
    for (;;) {
        while (!ck->hash_pending && !ck->quit)
            pthread_cond_wait(&ck->cv, &ck->mu);
        if (!ck->hash_pending)
            break;
        ck->hash_pending = false;
        pthread_mutex_unlock(&ck->mu);
        hash_image(ck);
        pthread_mutex_lock(&ck->mu);
        ck->hash_done = true;
        pthread_cond_broadcast(&ck->cv);
    }
    pthread_mutex_unlock(&ck->mu);
    return NULL;
}

static hcrt_status_t persist(hcrt_ckpt_t *ck, int64_t step)
{
    char stepdir[4096];
    bool corrupt = false, first = true;
    hcrt_status_t st = HCRT_OK;

    pthread_mutex_lock(&ck->mu);
    ck->hash_done = false;
    ck->hash_pending = true;
    pthread_cond_broadcast(&ck->cv);
    pthread_mutex_unlock(&ck->mu);

    if (hcrt__ckpt_local_step_path(ck, stepdir, sizeof(stepdir), step)) {
        st = write_level(ck, stepdir, step, true, &corrupt);
        first = false;
    }
    if (st == HCRT_OK && !hcrt__ckpt_step_path(stepdir, sizeof(stepdir), ck->dir, step)) {
        snprintf(ck->job_err, sizeof(ck->job_err), "path too long: %s", ck->dir);
        st = HCRT_ERR_IO;
    }
    if (st == HCRT_OK)
        st = write_level(ck, stepdir, step, first, &corrupt);

    /* The sums must be complete before anyone reads them, whatever happened to the writes. */
    pthread_mutex_lock(&ck->mu);
    while (!ck->hash_done)
        pthread_cond_wait(&ck->cv, &ck->mu);
    pthread_mutex_unlock(&ck->mu);
    return st;
}

static void *thread_main(void *arg)
{
    hcrt_ckpt_t *ck = arg;
    pthread_mutex_lock(&ck->mu);
    for (;;) {
        while (!ck->job_pending && !ck->gc_pending && !ck->pcopy_pending && !ck->quit)
            pthread_cond_wait(&ck->cv, &ck->mu);
        if (ck->pcopy_pending) {
            /* The partner copies this rank keeps, once they arrived (partner.c). */
            ck->pcopy_pending = false;
            pthread_mutex_unlock(&ck->mu);
            hcrt_status_t st = hcrt__ckpt_partner_write(ck);
            pthread_mutex_lock(&ck->mu);
            ck->pcopy_status = st;
            ck->pcopy_done = true;
            pthread_cond_broadcast(&ck->cv);
            continue;
        }
        if (ck->gc_pending) {
            /* Garbage collection after a commit, off the application's path. */
            int64_t committed = ck->gc_step;
            pthread_mutex_unlock(&ck->mu);
            if (ck->rank == 0)
                hcrt__ckpt_gc_shared(ck, committed);
            hcrt__ckpt_gc_local(ck, committed);
            pthread_mutex_lock(&ck->mu);
            ck->gc_pending = false;
            pthread_cond_broadcast(&ck->cv);
            continue;
        }
        if (!ck->job_pending)
            break;
        ck->job_pending = false;
        int64_t step = ck->step;
        pthread_mutex_unlock(&ck->mu);

        double t0 = hcrt__now(), tr0 = hcrt__trace_on(ck->ctx) ? hcrt__trace_clock() : 0;
        ck->job_err[0] = '\0';
        hcrt_status_t st = persist(ck, step);
        if (tr0 != 0)
            hcrt__trace_event(ck->ctx, HCRT__LANE_CKPT_IO, 'X', "ckpt persist", "ckpt", tr0, hcrt__trace_clock() - tr0,
                              "\"step\":%lld,\"bytes\":%llu,\"status\":\"%s\"", (long long)step,
                              (unsigned long long)ck->file_bytes, hcrt_status_name(st));
        HCRT_DEBUG(CKPT_SUBSYS, "step %lld: %llu bytes persisted in %.3f s (%s)", (long long)step,
                   (unsigned long long)ck->file_bytes, hcrt__now() - t0, hcrt_status_name(st));

        pthread_mutex_lock(&ck->mu);
        ck->job_status = st;
        ck->job_done = true;
        pthread_cond_broadcast(&ck->cv);
    }
    pthread_mutex_unlock(&ck->mu);
    return NULL;
}

void hcrt__ckpt_gc_start(hcrt_ckpt_t *ck, int64_t step)
{
    pthread_mutex_lock(&ck->mu);
    ck->gc_step = step;
    ck->gc_pending = true;
    pthread_cond_broadcast(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
}

void hcrt__ckpt_gc_wait(hcrt_ckpt_t *ck)
{
    pthread_mutex_lock(&ck->mu);
    while (ck->gc_pending)
        pthread_cond_wait(&ck->cv, &ck->mu);
    pthread_mutex_unlock(&ck->mu);
}

hcrt_status_t hcrt__ckpt_thread_start(hcrt_ckpt_t *ck)
{
    int rc = pthread_create(&ck->hasher, NULL, hasher_main, ck);
    if (rc != 0)
        return hcrt__error(ck->ctx, HCRT_ERR_INTERNAL, "hcrt_ckpt_open: cannot start the checksum thread: %s",
                           strerror(rc));
    ck->hasher_started = true;
    rc = pthread_create(&ck->thread, NULL, thread_main, ck);
    if (rc != 0)
        return hcrt__error(ck->ctx, HCRT_ERR_INTERNAL, "hcrt_ckpt_open: cannot start the writer thread: %s",
                           strerror(rc));
    ck->thread_started = true;
    return HCRT_OK;
}

void hcrt__ckpt_thread_stop(hcrt_ckpt_t *ck)
{
    if (!ck->thread_started && !ck->hasher_started)
        return;
    pthread_mutex_lock(&ck->mu);
    ck->quit = true;
    pthread_cond_broadcast(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
    if (ck->thread_started)
        pthread_join(ck->thread, NULL);
    if (ck->hasher_started)
        pthread_join(ck->hasher, NULL);
    ck->thread_started = ck->hasher_started = false;
}

void hcrt__ckpt_persist_start(hcrt_ckpt_t *ck)
{
    pthread_mutex_lock(&ck->mu);
    ck->job_done = false;
    ck->job_pending = true;
    pthread_cond_broadcast(&ck->cv);
    pthread_mutex_unlock(&ck->mu);
}

bool hcrt__ckpt_persist_wait(hcrt_ckpt_t *ck, double secs)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double t = (double)until.tv_sec + (double)until.tv_nsec * 1e-9 + secs;
    until.tv_sec = (time_t)t;
    until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&ck->mu);
    while (!ck->job_done && pthread_cond_timedwait(&ck->cv, &ck->mu, &until) == 0) {
    }
    bool done = ck->job_done;
    pthread_mutex_unlock(&ck->mu);
    return done;
}

bool hcrt__ckpt_persist_done(hcrt_ckpt_t *ck, bool block)
{
    pthread_mutex_lock(&ck->mu);
    while (block && !ck->job_done)
        pthread_cond_wait(&ck->cv, &ck->mu);
    bool done = ck->job_done;
    pthread_mutex_unlock(&ck->mu);
    return done;
}
