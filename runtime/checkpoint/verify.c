/*
 * runtime/checkpoint/verify.c - full verification of a step directory: the manifest, the size of every
 * data file and the XXH3 checksum of every chunk. Used by hcrt-ckpt verify; the library's restore
 * verifies only the chunks a rank reads (restore.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "runtime/checkpoint/format.h"

uint64_t hcrt__ckpt_hash_avx2(const void *data, size_t len);
int hcrt__ckpt_hash_avx2_usable(void);

/* XXH3-64, by the AVX2 build of hash_avx2.c when the CPU has AVX2, else by libxxhash. */
uint64_t hcrt__ckpt_hash(const void *data, size_t len)
{
    static int avx2 = -1;
    int use = __atomic_load_n(&avx2, __ATOMIC_RELAXED);
    if (use < 0) {
        use = hcrt__ckpt_hash_avx2_usable();
        __atomic_store_n(&avx2, use, __ATOMIC_RELAXED);
    }
    return use ? hcrt__ckpt_hash_avx2(data, len) : (uint64_t)XXH3_64bits(data, len);
}

uint64_t hcrt__ckpt_hash_generic(const void *data, size_t len) { return (uint64_t)XXH3_64bits(data, len); }

static void say(void (*report)(void *, const char *), void *arg, char *err, size_t errlen, bool *first,
                const char *msg)
{
    if (*first) {
        snprintf(err, errlen, "%s", msg);
        *first = false;
    }
    if (report)
        report(arg, msg);
}

hcrt_status_t hcrt__ckpt_verify_step(const char *stepdir, void (*report)(void *arg, const char *msg),
                                     void (*progress)(void *arg, uint64_t done, uint64_t total), void *arg,
                                     char *err, size_t errlen)
{
    hcrt__ckpt_manifest_t m;
    hcrt_status_t st = hcrt__manifest_load(stepdir, &m, err, errlen);
    if (st != HCRT_OK) {
        if (report)
            report(arg, err);
        return st;
    }
    uint64_t total = 0, done = 0;
    for (int t = 0; t < m.ntensors; t++)
        for (int s = 0; s < m.tensors[t].nshards; s++)
            total += m.tensors[t].shards[s].bytes;

    bool first = true;
    char msg[8192];
    int *fds = calloc((size_t)m.nranks, sizeof(int));
    unsigned char *buf = NULL;
    if (fds == NULL) {
        hcrt__manifest_free(&m);
        return HCRT_ERR_NO_MEMORY;
    }
    for (int r = 0; r < m.nranks; r++) {
        char path[4096 + 80];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", stepdir, m.ranks[r].file);
        fds[r] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[r] < 0) {
            snprintf(msg, sizeof(msg), "%s: missing (%s)", path, strerror(errno));
            say(report, arg, err, errlen, &first, msg);
        } else if (fstat(fds[r], &sb) != 0 || (uint64_t)sb.st_size != m.ranks[r].bytes) {
            snprintf(msg, sizeof(msg), "%s: %lld bytes, the manifest says %llu (truncated or extended)", path,
                     (long long)sb.st_size, (unsigned long long)m.ranks[r].bytes);
            say(report, arg, err, errlen, &first, msg);
        }
    }
    for (int t = 0; t < m.ntensors; t++) {
        const hcrt__ckpt_tensor_t *tn = &m.tensors[t];
        for (int s = 0; s < tn->nshards; s++) {
            const hcrt__ckpt_shard_t *sh = &tn->shards[s];
            if (buf == NULL || sh->chunk_size > HCRT__CKPT_CHUNK) {
                free(buf);
                buf = malloc(sh->chunk_size > HCRT__CKPT_CHUNK ? sh->chunk_size : HCRT__CKPT_CHUNK);
                if (buf == NULL) {
                    st = HCRT_ERR_NO_MEMORY;
                    goto out;
                }
            }
            for (uint64_t c = 0; c < sh->nchunks; c++) {
                uint64_t off = c * sh->chunk_size;
                size_t len = (size_t)(sh->bytes - off < sh->chunk_size ? sh->bytes - off : sh->chunk_size);
                const char *file = m.ranks[sh->rank].file;
                if (fds[sh->rank] < 0) {
                    done += len;
                    continue;
                }
                ssize_t n = hcrt__pread_full(fds[sh->rank], buf, len, sh->offset + off);
                if (n != (ssize_t)len) {
                    snprintf(msg, sizeof(msg), "%s/%s: tensor '%s' chunk %llu: %s", stepdir, file, tn->name,
                             (unsigned long long)c, n < 0 ? strerror(errno) : "beyond the end of the file");
                    say(report, arg, err, errlen, &first, msg);
                } else if (hcrt__ckpt_hash(buf, len) != sh->sums[c]) {
                    snprintf(msg, sizeof(msg), "%s/%s: tensor '%s' chunk %llu (bytes %llu..%llu of the file): "
                             "checksum mismatch", stepdir, file, tn->name, (unsigned long long)c,
                             (unsigned long long)(sh->offset + off), (unsigned long long)(sh->offset + off + len));
                    say(report, arg, err, errlen, &first, msg);
                }
                done += len;
                if (progress)
                    progress(arg, done, total);
            }
        }
    }
    st = first ? HCRT_OK : HCRT_ERR_CORRUPT;
out:
    for (int r = 0; r < m.nranks; r++)
        if (fds[r] >= 0)
            close(fds[r]);
    free(fds);
    free(buf);
    hcrt__manifest_free(&m);
    return st;
}
