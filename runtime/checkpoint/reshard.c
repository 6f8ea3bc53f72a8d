/*
 * runtime/checkpoint/reshard.c - reading the rows a rank needs out of whichever shards hold them.
 *
 * A registered tensor wants rows [a, b) (all rows when replicated). Every shard of the manifest that
 * overlaps them contributes its part, so a checkpoint written by any number of ranks restores into any
 * other number. Reads go by whole checksum chunks: a chunk entirely inside the wanted range is read
 * straight into the destination and verified there; a chunk that straddles the range's edge is read
 * into a bounce buffer, verified, and the needed part copied. Each chunk is taken from the first level
 * that has it intact (hcrt__ckpt_level_t): node-local file, in-memory copy, partner copy in this node's
 * node-local storage, image fetched from another rank, shared file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/checkpoint/reshard.h"

void hcrt__ckpt_sources_init(hcrt__ckpt_sources_t *rs, const hcrt_ckpt_t *ck, const hcrt__ckpt_manifest_t *m)
{
    size_t nw = (size_t)m->world_size;
    memset(rs, 0, sizeof(*rs));
    rs->ck = ck;
    rs->m = m;
    rs->nw = m->world_size;
    rs->ok = true;
    for (int l = 0; l < HCRT__LVL_COUNT; l++) {
        if (l != HCRT__LVL_LOCAL && l != HCRT__LVL_PARTNER && l != HCRT__LVL_SHARED)
            continue;
        rs->fd[l] = malloc(nw * sizeof(int));
        rs->map[l] = calloc(nw, sizeof(unsigned char *));
        rs->ok = rs->ok && rs->fd[l] && rs->map[l];
        for (size_t w = 0; rs->fd[l] && w < nw; w++)
            rs->fd[l][w] = -2;
    }
    rs->remote = calloc(nw, sizeof(unsigned char *));
    rs->remote_bytes = calloc(nw, sizeof(uint64_t));
    rs->remote_from = calloc(nw, sizeof(int));
    rs->remote_kind = calloc(nw, 1);
    rs->failed = calloc(nw, 1);
    rs->local_bad = calloc(nw, 1);
    rs->used = calloc(nw, 1);
    rs->warned = calloc(nw, 1);
    rs->bounce = malloc(HCRT__CKPT_CHUNK);
    rs->ok = rs->ok && rs->remote && rs->remote_bytes && rs->remote_from && rs->remote_kind && rs->failed &&
             rs->local_bad && rs->used && rs->warned && rs->bounce;
    if (hcrt__ckpt_local_step_path(ck, rs->local_dir, sizeof(rs->local_dir), m->step))
        snprintf(rs->partner_dir, sizeof(rs->partner_dir), "%s/%s", rs->local_dir, HCRT__CKPT_PARTNER_DIR);
    hcrt__ckpt_step_path(rs->shared_dir, sizeof(rs->shared_dir), ck->dir, m->step);
}

void hcrt__ckpt_sources_fini(hcrt__ckpt_sources_t *rs)
{
    for (int l = 0; l < HCRT__LVL_COUNT; l++) {
        for (int w = 0; w < rs->nw; w++) {
            if (rs->map[l] && rs->map[l][w])
                munmap(rs->map[l][w], rs->m->ranks[w].bytes);
            if (rs->fd[l] && rs->fd[l][w] >= 0)
                close(rs->fd[l][w]);
        }
        free(rs->fd[l]);
        free(rs->map[l]);
    }
    for (int w = 0; rs->remote && w < rs->nw; w++)
        if (rs->remote[w] != NULL) /* mapped by fetch.c */
            munmap(rs->remote[w], rs->remote_bytes[w] ? rs->remote_bytes[w] : 1);
    free(rs->remote);
    free(rs->remote_bytes);
    free(rs->remote_from);
    free(rs->remote_kind);
    free(rs->failed);
    free(rs->local_bad);
    free(rs->used);
    free(rs->warned);
    free(rs->bounce);
    memset(rs, 0, sizeof(*rs));
}

static const char *level_dir(const hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level)
{
    return level == HCRT__LVL_LOCAL ? rs->local_dir : level == HCRT__LVL_PARTNER ? rs->partner_dir : rs->shared_dir;
}

bool hcrt__ckpt_level_has(hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w)
{
    const char *dir = level_dir(rs, level);
    if (rs->fd[level] == NULL || dir[0] == '\0')
        return false;
    if (rs->fd[level][w] != -2)
        return rs->fd[level][w] >= 0;
    char path[4096 + 128];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/%s", dir, rs->m->ranks[w].file);
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == rs->m->ranks[w].bytes;
}

/* Opens writer w's file at a file level once; -1 when it is not there or has the wrong size. The file
 * is also mapped: on this class of machine a copy out of mapped page cache runs at memcpy speed, twice
 * as fast as pread() from tmpfs. */
static int level_fd(hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w)
{
    int *fds = rs->fd[level];
    if (fds[w] != -2)
        return fds[w];
    fds[w] = -1;
    const char *dir = level_dir(rs, level);
    if (dir[0] == '\0')
        return -1;
    char path[4096 + 128];
    snprintf(path, sizeof(path), "%s/%s", dir, rs->m->ranks[w].file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0 || (uint64_t)size != rs->m->ranks[w].bytes) {
        HCRT_WARN(CKPT_SUBSYS, "%s: %lld bytes, the manifest says %llu (truncated or extended); trying the next "
                  "copy", path, (long long)size, (unsigned long long)rs->m->ranks[w].bytes);
        close(fd);
        return -1;
    }
    fds[w] = fd;
    if (size > 0) {
        void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
        rs->map[level][w] = p == MAP_FAILED ? NULL : p;
    }
    return fd;
}

const unsigned char *hcrt__ckpt_level_image(hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w,
                                            char *where, size_t cap)
{
    static const unsigned char empty[1];
    snprintf(where, cap, "%s/%s", level_dir(rs, level), rs->m->ranks[w].file);
    if (rs->fd[level] == NULL || level_fd(rs, level, w) < 0)
        return NULL;
    return rs->m->ranks[w].bytes == 0 ? empty : rs->map[level][w];
}

bool hcrt__ckpt_image_verify(const hcrt__ckpt_sources_t *rs, int w, const unsigned char *img, uint64_t bytes,
                             char *why, size_t cap)
{
    for (int t = 0; t < rs->m->ntensors; t++) {
        const hcrt__ckpt_tensor_t *tt = &rs->m->tensors[t];
        for (int i = 0; i < tt->nshards; i++) {
            const hcrt__ckpt_shard_t *sh = &tt->shards[i];
            if (sh->rank != w)
                continue;
            for (uint64_t c = 0; c < sh->nchunks; c++) {
                uint64_t off = sh->offset + c * sh->chunk_size;
                uint64_t len = sh->bytes - c * sh->chunk_size < sh->chunk_size ? sh->bytes - c * sh->chunk_size
                                                                              : sh->chunk_size;
                if (off > bytes || len > bytes - off || hcrt__ckpt_hash(img + off, (size_t)len) != sh->sums[c]) {
                    snprintf(why, cap, "tensor '%s', chunk %llu (file bytes %llu..%llu) fails its checksum",
                             tt->name, (unsigned long long)c, (unsigned long long)off,
                             (unsigned long long)(off + len));
                    return false;
                }
            }
        }
    }
    return true;
}

typedef enum { ABSENT = 0, BAD, GOOD } got_t;

/* Reads one chunk from one level into dst and verifies what arrived (the copy, not the source, so that
 * the bytes checked are the bytes delivered). */
static got_t chunk_from_fd(int fd, const unsigned char *map, const hcrt__ckpt_shard_t *sh, uint64_t c,
                           unsigned char *dst, size_t len)
{
    if (fd < 0)
        return ABSENT;
    if (map != NULL) {
        memcpy(dst, map + sh->offset + c * sh->chunk_size, len);
    } else if (hcrt__pread_full(fd, dst, len, sh->offset + c * sh->chunk_size) != (ssize_t)len) {
        return BAD;
    }
    return hcrt__ckpt_hash(dst, len) == sh->sums[c] ? GOOD : BAD;
}

static got_t chunk_from_image(const unsigned char *img, uint64_t bytes, const hcrt__ckpt_shard_t *sh, uint64_t c,
                              unsigned char *dst, size_t len)
{
    uint64_t off = sh->offset + c * sh->chunk_size;
    if (img == NULL)
        return ABSENT;
    if (off > bytes || len > bytes - off)
        return BAD;
    memcpy(dst, img + off, len);
    return hcrt__ckpt_hash(dst, len) == sh->sums[c] ? GOOD : BAD;
}

static got_t chunk_from_level(hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, const hcrt__ckpt_shard_t *sh,
                              uint64_t c, unsigned char *dst, size_t len)
{
    int w = sh->rank;
    uint64_t bytes = 0;
    const unsigned char *img;
    switch (level) {
    case HCRT__LVL_MEMORY:
        img = rs->use_memory ? hcrt__ckpt_partner_image(rs->ck, w, rs->m->step, &bytes) : NULL;
        return chunk_from_image(img, bytes, sh, c, dst, len);
    case HCRT__LVL_REMOTE:
        return chunk_from_image(rs->remote[w], rs->remote_bytes[w], sh, c, dst, len);
    case HCRT__LVL_SHARED:
        if (!rs->use_shared)
            return ABSENT;
        /* fall through */
    default:
        return chunk_from_fd(level_fd(rs, level, w), rs->map[level][w], sh, c, dst, len);
    }
}

/* Names a copy of writer w at a level, for messages. */
static void describe(const hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w, char *out, size_t cap)
{
    const char *file = rs->m->ranks[w].file;
    if (level == HCRT__LVL_MEMORY)
        snprintf(out, cap, "the in-memory copy of %s", file);
    else if (level == HCRT__LVL_REMOTE)
        snprintf(out, cap, "the copy of %s received from rank %d", file, rs->remote_from[w]);
    else
        snprintf(out, cap, "%s/%s", level_dir(rs, level), file);
}

/* One chunk from the first level holding it intact; a copy that is there but fails its checksum is
 * reported once per writer and level, and the next level tried. */
static bool read_chunk(hcrt__ckpt_sources_t *rs, const hcrt__ckpt_shard_t *sh, uint64_t c, unsigned char *dst,
                       size_t len, const char *tensor)
{
    int w = sh->rank;
    for (int l = 0; l < HCRT__LVL_COUNT; l++) {
        got_t got = chunk_from_level(rs, (hcrt__ckpt_level_t)l, sh, c, dst, len);
        if (got == GOOD) {
            __atomic_fetch_or(&rs->used[w], (unsigned char)(1u << l), __ATOMIC_RELAXED);
            return true;
        }
        if (l == HCRT__LVL_LOCAL)
            __atomic_store_n(&rs->local_bad[w], 1, __ATOMIC_RELAXED);
        unsigned char bit = (unsigned char)(1u << l);
        if (got == BAD && !(__atomic_fetch_or(&rs->warned[w], bit, __ATOMIC_RELAXED) & bit)) {
            char what[4200];
            describe(rs, (hcrt__ckpt_level_t)l, w, what, sizeof(what));
            HCRT_WARN(CKPT_SUBSYS, "step %lld: %s: tensor '%s', chunk %llu fails its checksum; trying the next copy",
                      (long long)rs->m->step, what, tensor, (unsigned long long)c);
        }
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
        bool ok = read_chunk(rs, sh, k->c, into, k->len, w->t->name);
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
        } else {
            rs->done += k->len;
            if (rs->progress)
                rs->progress(rs, rs->done);
        }
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
                level_fd(rs, HCRT__LVL_LOCAL, sh->rank);
                level_fd(rs, HCRT__LVL_PARTNER, sh->rank);
                if (rs->use_shared)
                    level_fd(rs, HCRT__LVL_SHARED, sh->rank);
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
