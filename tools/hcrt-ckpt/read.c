/*
 * tools/hcrt-ckpt/read.c - reading verified rows of a tensor out of a step directory, for diff.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/hcrt-ckpt/ckpt_tool.h"

int tool_step_open(tool_step_t *s, const char *dir, int64_t step, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (!hcrt__ckpt_step_path(s->path, sizeof(s->path), dir, step)) {
        snprintf(err, errlen, "path too long: %s", dir);
        return EXIT_IO;
    }
    hcrt_status_t st = hcrt__manifest_load(s->path, &s->m, err, errlen);
    if (st == HCRT_ERR_NOT_FOUND)
        return EXIT_NOT_FOUND;
    if (st != HCRT_OK)
        return EXIT_BAD;
    s->fds = malloc((size_t)s->m.nranks * sizeof(int));
    if (s->fds == NULL)
        return EXIT_IO;
    for (int r = 0; r < s->m.nranks; r++) {
        char file[4096 + 80];
        snprintf(file, sizeof(file), "%s/%s", s->path, s->m.ranks[r].file);
        s->fds[r] = open(file, O_RDONLY | O_CLOEXEC);
    }
    return EXIT_OK;
}

void tool_step_close(tool_step_t *s)
{
    for (int r = 0; s->fds && r < s->m.nranks; r++)
        if (s->fds[r] >= 0)
            close(s->fds[r]);
    free(s->fds);
    hcrt__manifest_free(&s->m);
    memset(s, 0, sizeof(*s));
}

int tool_read_rows(tool_step_t *s, const hcrt__ckpt_tensor_t *t, uint64_t a, uint64_t b, unsigned char *dst,
                   char *err, size_t errlen)
{
    uint64_t rb = t->row_bytes;
    unsigned char *chunk = NULL;
    size_t chunk_cap = 0;
    for (int i = 0; i < t->nshards; i++) {
        const hcrt__ckpt_shard_t *sh = &t->shards[i];
        uint64_t lo = a > sh->row_offset ? a : sh->row_offset;
        uint64_t hi = b < sh->row_offset + sh->rows ? b : sh->row_offset + sh->rows;
        if (lo >= hi || rb == 0)
            continue;
        uint64_t start = (lo - sh->row_offset) * rb, end = (hi - sh->row_offset) * rb;
        for (uint64_t c = start / sh->chunk_size; c * sh->chunk_size < end; c++) {
            uint64_t cs = c * sh->chunk_size;
            size_t len = (size_t)(sh->bytes - cs < sh->chunk_size ? sh->bytes - cs : sh->chunk_size);
            if (len > chunk_cap) {
                free(chunk);
                chunk = malloc(len);
                chunk_cap = len;
                if (chunk == NULL) {
                    snprintf(err, errlen, "out of memory");
                    return EXIT_IO;
                }
            }
            int fd = s->fds[sh->rank];
            if (fd < 0 || hcrt__pread_full(fd, chunk, len, sh->offset + cs) != (ssize_t)len ||
                hcrt__ckpt_hash(chunk, len) != sh->sums[c]) {
                snprintf(err, errlen, "%s/%s: tensor '%s' chunk %llu: missing, short or checksum mismatch", s->path,
                         s->m.ranks[sh->rank].file, t->name, (unsigned long long)c);
                free(chunk);
                return EXIT_BAD;
            }
            uint64_t from = start > cs ? start - cs : 0, to = end < cs + len ? end - cs : len;
            memcpy(dst + (lo - a) * rb + (cs + from - start), chunk + from, (size_t)(to - from));
        }
    }
    free(chunk);
    return EXIT_OK;
}

static double half_to_double(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = mant / 1024.0 / 16384.0;
    else if (exp == 31)
        v = mant ? 0.0 / 0.0 : 1.0 / 0.0;
    else
        v = (1.0 + mant / 1024.0) * (double)(1u << exp) / 32768.0;
    return (h & 0x8000) ? -v : v;
}

double tool_element(const unsigned char *p, int dtype)
{
    union { uint32_t u; float f; } cv;
    switch (dtype) {
    case HCRT_I8: return *(const int8_t *)p;
    case HCRT_U8: return *p;
    case HCRT_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case HCRT_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case HCRT_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case HCRT_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    case HCRT_F16: { uint16_t v; memcpy(&v, p, 2); return half_to_double(v); }
    case HCRT_BF16: { uint16_t v; memcpy(&v, p, 2); cv.u = (uint32_t)v << 16; return cv.f; }
    case HCRT_F32: memcpy(&cv.f, p, 4); return cv.f;
    case HCRT_F64: { double v; memcpy(&v, p, 8); return v; }
    }
    return 0;
}
