/*
 * runtime/checkpoint/reshard.c - reading the rows a rank needs out of whichever shards hold them.
 *
 * A registered tensor wants rows [a, b) (all rows when replicated). Every shard of the manifest that
 * overlaps them contributes its part, so a checkpoint written by any number of ranks restores into any
 * other number. Reads go by whole checksum chunks: a chunk entirely inside the wanted range is read
 * straight into the destination and verified there; a chunk that straddles the range's edge is read
 * into a bounce buffer, verified, and the needed part copied. Each chunk is taken from the first level
 * that has it intact: node-local file, in-memory copy, shared file, copy fetched from a partner rank.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/checkpoint/reshard.h"

void hcrt__ckpt_sources_init(hcrt__ckpt_sources_t *rs, const hcrt_ckpt_t *ck, const hcrt__ckpt_manifest_t *m)
{
    memset(rs, 0, sizeof(*rs));
    rs->ck = ck;
    rs->m = m;
    rs->nw = m->world_size;
    rs->local_fd = malloc((size_t)rs->nw * sizeof(int));
    rs->shared_fd = malloc((size_t)rs->nw * sizeof(int));
    rs->local_map = calloc((size_t)rs->nw, sizeof(unsigned char *));
    rs->shared_map = calloc((size_t)rs->nw, sizeof(unsigned char *));
    rs->remote = calloc((size_t)rs->nw, sizeof(unsigned char *));
    rs->remote_bytes = calloc((size_t)rs->nw, sizeof(uint64_t));
    rs->failed = calloc((size_t)rs->nw, 1);
    rs->local_bad = calloc((size_t)rs->nw, 1);
    rs->bounce = malloc(HCRT__CKPT_CHUNK);
    rs->ok = rs->local_fd && rs->shared_fd && rs->local_map && rs->shared_map && rs->remote && rs->remote_bytes && rs->failed && rs->local_bad &&
             rs->bounce;
    for (int w = 0; rs->ok && w < rs->nw; w++)
        rs->local_fd[w] = rs->shared_fd[w] = -2;
    hcrt__ckpt_local_step_path(ck, rs->local_dir, sizeof(rs->local_dir), m->step);
    hcrt__ckpt_step_path(rs->shared_dir, sizeof(rs->shared_dir), ck->dir, m->step);
}

void hcrt__ckpt_sources_fini(hcrt__ckpt_sources_t *rs)
{
    for (int w = 0; w < rs->nw; w++) {
        if (rs->local_map && rs->local_map[w])
            munmap(rs->local_map[w], rs->m->ranks[w].bytes);
        if (rs->shared_map && rs->shared_map[w])
            munmap(rs->shared_map[w], rs->m->ranks[w].bytes);
        if (rs->local_fd && rs->local_fd[w] >= 0)
            close(rs->local_fd[w]);
        if (rs->shared_fd && rs->shared_fd[w] >= 0)
            close(rs->shared_fd[w]);
        if (rs->remote)
            free(rs->remote[w]);
    }
    free(rs->local_fd);
    free(rs->shared_fd);
    free(rs->local_map);
    free(rs->shared_map);
    free(rs->remote);
    free(rs->remote_bytes);
    free(rs->failed);
    free(rs->local_bad);
    free(rs->bounce);
    memset(rs, 0, sizeof(*rs));
}

/* Opens writer w's file at a level once; -1 when it is not there or has the wrong size. The file is
 * also mapped: on this class of machine a copy out of mapped page cache runs at memcpy speed, twice as
 * fast as pread() from tmpfs. */
static int level_fd(hcrt__ckpt_sources_t *rs, int *fds, unsigned char **maps, const char *dir, int w)
{
    if (fds[w] != -2)
        return fds[w];
    fds[w] = -1;
    if (dir[0] == '\0')
        return -1;
    char path[4096 + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, rs->m->ranks[w].file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0 || (uint64_t)size != rs->m->ranks[w].bytes) {
        HCRT_WARN(CKPT_SUBSYS, "%s: %lld bytes, the manifest says %llu (truncated or extended)", path,
                  (long long)size, (unsigned long long)rs->m->ranks[w].bytes);
        close(fd);
        return -1;
    }
    fds[w] = fd;
    if (size > 0) {
        void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
        maps[w] = p == MAP_FAILED ? NULL : p;
    }
    return fd;
}

/* Reads one chunk from one level into dst and verifies what arrived (the copy, not the source, so that
 * the bytes checked are the bytes delivered). */
static bool chunk_from_fd(int fd, const unsigned char *map, const hcrt__ckpt_shard_t *sh, uint64_t c,
                          unsigned char *dst, size_t len)
{
    if (fd < 0)
        return false;
    if (map != NULL) {
        memcpy(dst, map + sh->offset + c * sh->chunk_size, len);
    } else if (hcrt__pread_full(fd, dst, len, sh->offset + c * sh->chunk_size) != (ssize_t)len) {
        return false;
    }
    return hcrt__ckpt_hash(dst, len) == sh->sums[c];
}

static bool chunk_from_image(const unsigned char *img, uint64_t bytes, const hcrt__ckpt_shard_t *sh, uint64_t c,
                             unsigned char *dst, size_t len)
{
    uint64_t off = sh->offset + c * sh->chunk_size;
    if (img == NULL || off > bytes || len > bytes - off)
        return false;
    memcpy(dst, img + off, len);
    return hcrt__ckpt_hash(dst, len) == sh->sums[c];
}

/* One chunk from the first level holding it intact. */
static bool read_chunk(hcrt__ckpt_sources_t *rs, const hcrt__ckpt_shard_t *sh, uint64_t c, unsigned char *dst,
                       size_t len, int *level)
{
    int w = sh->rank;
    if (chunk_from_fd(level_fd(rs, rs->local_fd, rs->local_map, rs->local_dir, w), rs->local_map[w], sh, c, dst, len)) {
        *level = 0;
        return true;
    }
    __atomic_store_n(&rs->local_bad[w], 1, __ATOMIC_RELAXED);
    uint64_t bytes = 0;
    const unsigned char *img = rs->use_memory ? hcrt__ckpt_partner_image(rs->ck, w, rs->m->step, &bytes) : NULL;
    if (chunk_from_image(img, bytes, sh, c, dst, len)) {
        *level = 1;
        return true;
    }
    if (chunk_from_fd(level_fd(rs, rs->shared_fd, rs->shared_map, rs->shared_dir, w), rs->shared_map[w], sh, c, dst, len)) {
        *level = 2;
        return true;
    }
    if (chunk_from_image(rs->remote[w], rs->remote_bytes[w], sh, c, dst, len)) {
        *level = 3;
        return true;
    }
    return false;
}

/* One chunk to read: chunk c of shard sh, of which file bytes [from, to) (relative to the chunk) go to
 * out. `whole` chunks are read straight into out. */
typedef struct task {
    const hcrt__ckpt_shard_t *sh;
    uint64_t c;
    size_t len;
    uint64_t from, to;
    unsigned char *out;
    bool whole;
} task_t;

typedef struct work {
    hcrt__ckpt_sources_t *rs;
    const hcrt__ckpt_tensor_t *t;
    task_t *tasks;
    size_t ntasks, next;
    pthread_mutex_t mu;
    unsigned char *shard_bad; /* per shard index of t */
} work_t;

static void run_tasks(work_t *w, unsigned char *bounce)
{
    hcrt__ckpt_sources_t *rs = w->rs;
    for (;;) {
        size_t i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED);
        if (i >= w->ntasks)
            return;
        task_t *k = &w->tasks[i];
        const hcrt__ckpt_shard_t *sh = k->sh;
        unsigned char *into = k->whole ? k->out : bounce;
        int level = -1;
        bool ok = read_chunk(rs, sh, k->c, into, k->len, &level);
        if (ok && !k->whole)
            memcpy(k->out, bounce + k->from, (size_t)(k->to - k->from));
        pthread_mutex_lock(&w->mu);
        if (!ok) {
            w->shard_bad[sh - w->t->shards] = 1;
            if (rs->msg[0] == '\0')
                snprintf(rs->msg, sizeof(rs->msg), "step %lld: %s, tensor '%s', chunk %llu (file bytes "
                         "%llu..%llu): missing or checksum mismatch on every level", (long long)rs->m->step,
                         rs->m->ranks[sh->rank].file, w->t->name, (unsigned long long)k->c,
                         (unsigned long long)(sh->offset + k->c * sh->chunk_size),
                         (unsigned long long)(sh->offset + k->c * sh->chunk_size + k->len));
        } else if (level > 0 && rs->msg_level[0] == '\0') {
            snprintf(rs->msg_level, sizeof(rs->msg_level), "%s, tensor '%s', chunk %llu came from the %s",
                     rs->m->ranks[sh->rank].file, w->t->name, (unsigned long long)k->c,
                     level == 1 ? "in-memory copy" : level == 2 ? "shared directory" : "partner's copy");
        }
        rs->done += k->len;
        if (rs->progress)
            rs->progress(rs, rs->done);
        pthread_mutex_unlock(&w->mu);
    }
}

static void *helper_main(void *arg)
{
    work_t *w = arg;
    unsigned char *bounce = malloc(HCRT__CKPT_CHUNK);
    if (bounce != NULL)
        run_tasks(w, bounce);
    free(bounce);
    return NULL;
}

int hcrt__ckpt_read_rows(hcrt__ckpt_sources_t *rs, const hcrt__ckpt_tensor_t *t, uint64_t a, uint64_t b,
                         unsigned char *dst, const unsigned char *only)
{
    int failures = 0;
    uint64_t rb = t->row_bytes, total = 0;
    work_t w;
    memset(&w, 0, sizeof(w));
    w.rs = rs;
    w.t = t;
    w.shard_bad = calloc((size_t)t->nshards + 1, 1);
    size_t cap = 0;
    for (int pass = 0; pass < 2 && w.shard_bad; pass++) {
        /* Pass 0 counts the chunks, pass 1 lists them. */
        for (int i = 0; i < t->nshards; i++) {
            const hcrt__ckpt_shard_t *sh = &t->shards[i];
            uint64_t lo = a > sh->row_offset ? a : sh->row_offset;
            uint64_t hi = b < sh->row_offset + sh->rows ? b : sh->row_offset + sh->rows;
            if (lo >= hi || rb == 0 || (only != NULL && !only[sh->rank]))
                continue;
            uint64_t start = (lo - sh->row_offset) * rb, end = (hi - sh->row_offset) * rb;
            unsigned char *out = dst + (lo - a) * rb;
            if (pass == 1) {
                /* Opened here, by one thread, before the workers share the descriptors. */
                level_fd(rs, rs->local_fd, rs->local_map, rs->local_dir, sh->rank);
                level_fd(rs, rs->shared_fd, rs->shared_map, rs->shared_dir, sh->rank);
            }
            for (uint64_t c = start / sh->chunk_size; c * sh->chunk_size < end; c++) {
                if (pass == 0) {
                    cap++;
                    continue;
                }
                uint64_t cs = c * sh->chunk_size;
                size_t len = (size_t)(sh->bytes - cs < sh->chunk_size ? sh->bytes - cs : sh->chunk_size);
                task_t *k = &w.tasks[w.ntasks++];
                k->sh = sh;
                k->c = c;
                k->len = len;
                k->whole = cs >= start && cs + len <= end;
                k->from = start > cs ? start - cs : 0;
                k->to = end < cs + len ? end - cs : len;
                k->out = k->whole ? out + (cs - start) : out + (cs + k->from - start);
                total += len;
            }
        }
        if (pass == 0) {
            w.tasks = calloc(cap + 1, sizeof(task_t));
            if (w.tasks == NULL)
                break;
        }
    }
    if (w.shard_bad == NULL || w.tasks == NULL) {
        free(w.shard_bad);
        free(w.tasks);
        snprintf(rs->msg, sizeof(rs->msg), "out of memory reading tensor '%s'", t->name);
        for (int i = 0; i < t->nshards; i++)
            rs->failed[t->shards[i].rank] = 1;
        return t->nshards;
    }
    pthread_mutex_init(&w.mu, NULL);
    /* Reading and verifying are memory-bound copies and hashes: a second thread on a second core nearly
     * halves a large restore. */
    pthread_t helper;
    bool two = total >= ((uint64_t)64 << 20) &&
               pthread_create(&helper, NULL, helper_main, &w) == 0;
    run_tasks(&w, rs->bounce);
    if (two)
        pthread_join(helper, NULL);
    pthread_mutex_destroy(&w.mu);
    for (int i = 0; i < t->nshards; i++) {
        if (w.shard_bad[i]) {
            rs->failed[t->shards[i].rank] = 1;
            failures++;
        }
    }
    free(w.shard_bad);
    free(w.tasks);
    return failures;
}
