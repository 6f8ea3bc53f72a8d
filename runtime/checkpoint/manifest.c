/*
 * runtime/checkpoint/manifest.c - the manifest of a checkpoint step: JSON (jansson) in and out.
 *
 * The parser treats its input as hostile: every field is type-checked and bounds-checked, sizes are
 * checked for overflow before they are multiplied, names that could escape the step directory are
 * rejected, and the shards of each tensor must tile its rows exactly, so that a restore that trusts a
 * validated manifest can never read or write out of bounds. Messages name the file and the field path.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/checkpoint/format.h"

static const char *const dtype_names[] = {"i8", "u8", "i32", "u32", "i64", "u64", "f16", "bf16", "f32", "f64"};
static const size_t dtype_sizes[] = {1, 1, 4, 4, 8, 8, 2, 2, 4, 8};
#define NDTYPES ((int)(sizeof(dtype_sizes) / sizeof(dtype_sizes[0])))

size_t hcrt__ckpt_dtype_size(int dtype) { return dtype >= 0 && dtype < NDTYPES ? dtype_sizes[dtype] : 0; }

const char *hcrt__ckpt_dtype_name(int dtype) { return dtype >= 0 && dtype < NDTYPES ? dtype_names[dtype] : NULL; }

int hcrt__ckpt_dtype_parse(const char *name)
{
    for (int i = 0; i < NDTYPES; i++)
        if (strcmp(name, dtype_names[i]) == 0)
            return i;
    return -1;
}

bool hcrt__ckpt_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > HCRT__CKPT_NAME_MAX)
        return false;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strstr(name, "..") != NULL)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
            return false;
    }
    return true;
}

/* A data file name: "rank-" digits ".bin", nothing that could leave the step directory. */
static bool file_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len < 10 || len > HCRT__CKPT_FILE_MAX || strncmp(name, "rank-", 5) != 0 ||
        strcmp(name + len - 4, ".bin") != 0)
        return false;
    for (size_t i = 5; i < len - 4; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    return true;
}

/* ---- base64 ---------------------------------------------------------------------------------- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *hcrt__b64_encode(const unsigned char *data, size_t len)
{
    size_t olen = (len + 2) / 3 * 4;
    char *out = malloc(olen + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64chars, c) : NULL;
    return p ? (int)(p - b64chars) : -1;
}

hcrt_status_t hcrt__b64_decode(const char *text, unsigned char **out, size_t *len)
{
    size_t tlen = strlen(text);
    if (tlen % 4 != 0)
        return HCRT_ERR_CORRUPT;
    size_t olen = tlen / 4 * 3;
    unsigned char *buf = malloc(olen ? olen : 1);
    if (buf == NULL)
        return HCRT_ERR_NO_MEMORY;
    size_t o = 0;
    for (size_t i = 0; i < tlen; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (text[i + k] == '=' && i + 4 == tlen && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                v[k] = b64val(text[i + k]);
                if (v[k] < 0 || pad)
                    goto bad;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        buf[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            buf[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            buf[o++] = (unsigned char)w;
    }
    *out = buf;
    *len = o;
    return HCRT_OK;
bad:
    free(buf);
    return HCRT_ERR_CORRUPT;
}

/* ---- parsing ----------------------------------------------------------------------------------- */

typedef struct parser {
    const char *what;
    char *err;
    size_t errlen;
} parser_t;

static hcrt_status_t fail(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static hcrt_status_t fail(parser_t *p, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "manifest %s: %s", p->what, msg);
    return HCRT_ERR_CORRUPT;
}

/* Reads object member `key` as an integer in [0, max]. */
static hcrt_status_t get_u64(parser_t *p, json_t *obj, const char *path, const char *key, uint64_t max,
                             uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return fail(p, "%s.%s: missing", path, key);
    if (!json_is_integer(v))
        return fail(p, "%s.%s: not an integer", path, key);
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return fail(p, "%s.%s: %lld out of range [0, %llu]", path, key, (long long)i, (unsigned long long)max);
    *out = (uint64_t)i;
    return HCRT_OK;
}

static hcrt_status_t get_str(parser_t *p, json_t *obj, const char *path, const char *key, size_t maxlen,
                             const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return fail(p, "%s.%s: missing", path, key);
    if (!json_is_string(v))
        return fail(p, "%s.%s: not a string", path, key);
    const char *s = json_string_value(v);
    if (strlen(s) > maxlen || strlen(s) != json_string_length(v))
        return fail(p, "%s.%s: longer than %zu bytes or holds a NUL", path, key, maxlen);
    *out = s;
    return HCRT_OK;
}

static int cmp_shard(const void *a, const void *b)
{
    const hcrt__ckpt_shard_t *x = a, *y = b;
    return x->row_offset < y->row_offset ? -1 : x->row_offset > y->row_offset;
}

static hcrt_status_t parse_shard(parser_t *p, json_t *js, const char *path, const hcrt__ckpt_manifest_t *m,
                                 const hcrt__ckpt_tensor_t *t, int mode, hcrt__ckpt_shard_t *s)
{
    hcrt_status_t st;
    uint64_t v;
    const char *file;

    if (!json_is_object(js))
        return fail(p, "%s: not an object", path);
    if ((st = get_u64(p, js, path, "rank", (uint64_t)m->world_size - 1, &v)) != HCRT_OK)
        return st;
    s->rank = (int)v;
    if ((st = get_str(p, js, path, "file", HCRT__CKPT_FILE_MAX, &file)) != HCRT_OK)
        return st;
    if (!file_name_ok(file))
        return fail(p, "%s.file: '%s' is not a data file name (rank-N.bin)", path, file);
    if ((st = get_u64(p, js, path, "offset", UINT64_MAX >> 2, &s->offset)) != HCRT_OK ||
        (st = get_u64(p, js, path, "row_offset", t->shape[0], &s->row_offset)) != HCRT_OK ||
        (st = get_u64(p, js, path, "rows", t->shape[0], &s->rows)) != HCRT_OK ||
        (st = get_u64(p, js, path, "bytes", UINT64_MAX >> 2, &s->bytes)) != HCRT_OK ||
        (st = get_u64(p, js, path, "chunk_size", HCRT__CKPT_CHUNK, &s->chunk_size)) != HCRT_OK)
        return st;
    if (s->row_offset + s->rows > t->shape[0])
        return fail(p, "%s: rows [%llu, %llu) beyond the tensor's %llu rows", path,
                    (unsigned long long)s->row_offset, (unsigned long long)(s->row_offset + s->rows),
                    (unsigned long long)t->shape[0]);
    if (t->row_bytes != 0 && s->rows > (UINT64_MAX >> 2) / t->row_bytes)
        return fail(p, "%s.rows: size overflows", path);
    if (s->bytes != s->rows * t->row_bytes)
        return fail(p, "%s.bytes: %llu, but %llu rows of %llu bytes make %llu", path,
                    (unsigned long long)s->bytes, (unsigned long long)s->rows,
                    (unsigned long long)t->row_bytes, (unsigned long long)(s->rows * t->row_bytes));
    if (s->chunk_size < 4096)
        return fail(p, "%s.chunk_size: %llu is below 4096", path, (unsigned long long)s->chunk_size);
    if (mode == HCRT__MANIFEST_FULL) {
        const hcrt__ckpt_rank_t *r = &m->ranks[s->rank];
        if (strcmp(r->file, file) != 0)
            return fail(p, "%s.file: '%s' but rank %d wrote '%s'", path, file, s->rank, r->file);
        if (s->offset > r->bytes || s->bytes > r->bytes - s->offset)
            return fail(p, "%s: bytes [%llu, %llu) beyond the end of %s (%llu bytes)", path,
                        (unsigned long long)s->offset, (unsigned long long)(s->offset + s->bytes), r->file,
                        (unsigned long long)r->bytes);
    }
    s->nchunks = (s->bytes + s->chunk_size - 1) / s->chunk_size;
    json_t *sums = json_object_get(js, "checksums");
    if (!json_is_array(sums))
        return fail(p, "%s.checksums: missing or not an array", path);
    if (json_array_size(sums) != s->nchunks)
        return fail(p, "%s.checksums: %zu entries, but %llu bytes in chunks of %llu need %llu", path,
                    json_array_size(sums), (unsigned long long)s->bytes, (unsigned long long)s->chunk_size,
                    (unsigned long long)s->nchunks);
    s->sums = calloc(s->nchunks ? s->nchunks : 1, sizeof(uint64_t));
    if (s->sums == NULL)
        return HCRT_ERR_NO_MEMORY;
    for (uint64_t c = 0; c < s->nchunks; c++) {
        json_t *h = json_array_get(sums, c);
        const char *hx = json_is_string(h) ? json_string_value(h) : NULL;
        char *end = NULL;
        if (hx == NULL || strlen(hx) != 16 || strspn(hx, "0123456789abcdef") != 16)
            return fail(p, "%s.checksums[%llu]: not 16 lower-case hex digits", path, (unsigned long long)c);
        s->sums[c] = strtoull(hx, &end, 16);
    }
    return HCRT_OK;
}

static hcrt_status_t parse_tensor(parser_t *p, json_t *jt, int index, const hcrt__ckpt_manifest_t *m,
                                  int mode, hcrt__ckpt_tensor_t *t)
{
    hcrt_status_t st;
    char path[64];
    const char *name, *dtype;
    uint64_t elems = 1;

    snprintf(path, sizeof(path), "tensors[%d]", index);
    if (!json_is_object(jt))
        return fail(p, "%s: not an object", path);
    if ((st = get_str(p, jt, path, "name", HCRT__CKPT_NAME_MAX, &name)) != HCRT_OK)
        return st;
    if (!hcrt__ckpt_name_ok(name))
        return fail(p, "%s.name: '%s' is not a valid tensor name (empty, '/', '..' or control characters)",
                    path, name);
    t->name = strdup(name);
    if (t->name == NULL)
        return HCRT_ERR_NO_MEMORY;
    if ((st = get_str(p, jt, path, "dtype", 16, &dtype)) != HCRT_OK)
        return st;
    int d = hcrt__ckpt_dtype_parse(dtype);
    if (d < 0)
        return fail(p, "%s.dtype: unknown dtype '%s'", path, dtype);
    t->dtype = (hcrt_dtype_t)d;
    json_t *shape = json_object_get(jt, "shape");
    if (!json_is_array(shape) || json_array_size(shape) < 1 || json_array_size(shape) > HCRT__CKPT_MAX_DIMS)
        return fail(p, "%s.shape: not an array of 1 to %d dimensions", path, HCRT__CKPT_MAX_DIMS);
    t->ndims = (int)json_array_size(shape);
    for (int i = 0; i < t->ndims; i++) {
        json_t *v = json_array_get(shape, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)1 << 48)
            return fail(p, "%s.shape[%d]: not an integer in [0, 2^48]", path, i);
        t->shape[i] = (uint64_t)json_integer_value(v);
        if (i > 0)
            elems = t->shape[i] == 0 ? 0 : (elems > (UINT64_MAX >> 8) / t->shape[i] ? UINT64_MAX : elems * t->shape[i]);
    }
    if (elems == UINT64_MAX)
        return fail(p, "%s.shape: row size overflows", path);
    t->row_bytes = elems * hcrt__ckpt_dtype_size(t->dtype);
    if (t->row_bytes != 0 && t->shape[0] > (UINT64_MAX >> 2) / t->row_bytes)
        return fail(p, "%s.shape: tensor size overflows", path);
    json_t *rep = json_object_get(jt, "replicated");
    if (!json_is_boolean(rep))
        return fail(p, "%s.replicated: missing or not a boolean", path);
    t->replicated = json_is_true(rep);
    json_t *shards = json_object_get(jt, "shards");
    if (!json_is_array(shards))
        return fail(p, "%s.shards: missing or not an array", path);
    if (json_array_size(shards) > (size_t)m->world_size)
        return fail(p, "%s.shards: %zu shards for %d ranks", path, json_array_size(shards), m->world_size);
    t->nshards = (int)json_array_size(shards);
    t->shards = calloc((size_t)t->nshards + 1, sizeof(*t->shards));
    if (t->shards == NULL)
        return HCRT_ERR_NO_MEMORY;
    for (int i = 0; i < t->nshards; i++) {
        char spath[96];
        snprintf(spath, sizeof(spath), "%s.shards[%d]", path, i);
        if ((st = parse_shard(p, json_array_get(shards, (size_t)i), spath, m, t, mode, &t->shards[i])) != HCRT_OK)
            return st;
    }
    qsort(t->shards, (size_t)t->nshards, sizeof(*t->shards), cmp_shard);
    if (mode == HCRT__MANIFEST_PARTIAL)
        return HCRT_OK;
    /* A full manifest: the shards tile the rows exactly, so every row has exactly one source. */
    if (t->replicated && t->nshards != 1)
        return fail(p, "%s: replicated tensor with %d shards (must be 1)", path, t->nshards);
    uint64_t next = 0;
    for (int i = 0; i < t->nshards; i++) {
        if (t->shards[i].row_offset != next)
            return fail(p, "%s.shards: rows %llu..%llu %s", path, (unsigned long long)next,
                        (unsigned long long)t->shards[i].row_offset,
                        t->shards[i].row_offset > next ? "are not covered by any shard" : "are covered twice");
        next += t->shards[i].rows;
    }
    if (next != t->shape[0])
        return fail(p, "%s.shards: cover %llu of %llu rows", path, (unsigned long long)next,
                    (unsigned long long)t->shape[0]);
    return HCRT_OK;
}

static hcrt_status_t parse_rank(parser_t *p, json_t *jr, int index, hcrt__ckpt_manifest_t *m, int mode)
{
    hcrt_status_t st;
    char path[32];
    uint64_t v;
    const char *s;
    hcrt__ckpt_rank_t r;

    memset(&r, 0, sizeof(r));
    snprintf(path, sizeof(path), "ranks[%d]", index);
    if (!json_is_object(jr))
        return fail(p, "%s: not an object", path);
    if ((st = get_u64(p, jr, path, "rank", (uint64_t)m->world_size - 1, &v)) != HCRT_OK)
        return st;
    r.rank = (int)v;
    if (mode == HCRT__MANIFEST_FULL && r.rank != index)
        return fail(p, "%s.rank: %d (ranks must be listed in order)", path, r.rank);
    if ((st = get_str(p, jr, path, "host", HCRT__CKPT_HOST_MAX, &s)) != HCRT_OK)
        return st;
    snprintf(r.host, sizeof(r.host), "%s", s);
    if ((st = get_str(p, jr, path, "backends", sizeof(r.backends) - 1, &s)) != HCRT_OK)
        return st;
    snprintf(r.backends, sizeof(r.backends), "%s", s);
    if ((st = get_str(p, jr, path, "file", HCRT__CKPT_FILE_MAX, &s)) != HCRT_OK)
        return st;
    if (!file_name_ok(s))
        return fail(p, "%s.file: '%s' is not a data file name (rank-N.bin)", path, s);
    snprintf(r.file, sizeof(r.file), "%s", s);
    if ((st = get_u64(p, jr, path, "bytes", UINT64_MAX >> 2, &r.bytes)) != HCRT_OK)
        return st;
    json_t *jp = json_object_get(jr, "partner");
    if (!json_is_integer(jp) || json_integer_value(jp) < -1 || json_integer_value(jp) >= m->world_size)
        return fail(p, "%s.partner: missing or not a rank (or -1)", path);
    r.partner = (int)json_integer_value(jp);
    m->ranks[index] = r;
    return HCRT_OK;
}

void hcrt__manifest_free(hcrt__ckpt_manifest_t *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < m->ntensors && m->tensors; i++) {
        free(m->tensors[i].name);
        for (int k = 0; k < m->tensors[i].nshards && m->tensors[i].shards; k++)
            free(m->tensors[i].shards[k].sums);
        free(m->tensors[i].shards);
    }
    free(m->tensors);
    free(m->ranks);
    free(m->meta);
    memset(m, 0, sizeof(*m));
}

hcrt_status_t hcrt__manifest_parse(const char *text, size_t len, const char *what, int mode,
                                   hcrt__ckpt_manifest_t *m, char *err, size_t errlen)
{
    parser_t p = {what ? what : "(buffer)", err, errlen};
    json_error_t jerr;
    hcrt_status_t st = HCRT_OK;
    uint64_t v;
    const char *s;
    json_t *root;

    memset(m, 0, sizeof(*m));
    if (text == NULL || len > HCRT__CKPT_MANIFEST_MAX)
        return fail(&p, "empty or larger than %zu bytes", HCRT__CKPT_MANIFEST_MAX);
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return fail(&p, "not valid JSON (line %d column %d: %s)", jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        st = fail(&p, "top level is not an object");
        goto out;
    }
    if ((st = get_str(&p, root, "manifest", "format", 32, &s)) != HCRT_OK)
        goto out;
    if (strcmp(s, HCRT__CKPT_FORMAT_NAME) != 0) {
        st = fail(&p, "format: '%s', expected '%s'", s, HCRT__CKPT_FORMAT_NAME);
        goto out;
    }
    if ((st = get_u64(&p, root, "manifest", "version", 1000, &v)) != HCRT_OK)
        goto out;
    if (v != HCRT__CKPT_FORMAT_VERSION) {
        st = fail(&p, "version: %llu, this library reads version %d", (unsigned long long)v,
                  HCRT__CKPT_FORMAT_VERSION);
        goto out;
    }
    m->version = (int)v;
    if ((st = get_u64(&p, root, "manifest", "step", INT64_MAX, &v)) != HCRT_OK)
        goto out;
    m->step = (int64_t)v;
    if ((st = get_u64(&p, root, "manifest", "world_size", HCRT__CKPT_MAX_RANKS, &v)) != HCRT_OK)
        goto out;
    if (v == 0) {
        st = fail(&p, "world_size: 0");
        goto out;
    }
    m->world_size = (int)v;
    if ((st = get_u64(&p, root, "manifest", "time_unix", INT64_MAX, &v)) != HCRT_OK)
        goto out;
    m->time_unix = (int64_t)v;
    if ((st = get_str(&p, root, "manifest", "time", sizeof(m->time) - 1, &s)) != HCRT_OK)
        goto out;
    snprintf(m->time, sizeof(m->time), "%s", s);
    if ((st = get_str(&p, root, "manifest", "partner_mode", sizeof(m->partner_mode) - 1, &s)) != HCRT_OK)
        goto out;
    snprintf(m->partner_mode, sizeof(m->partner_mode), "%s", s);

    json_t *ranks = json_object_get(root, "ranks");
    if (!json_is_array(ranks)) {
        st = fail(&p, "ranks: missing or not an array");
        goto out;
    }
    m->nranks = (int)json_array_size(ranks);
    if (json_array_size(ranks) > (size_t)m->world_size ||
        (mode == HCRT__MANIFEST_FULL && m->nranks != m->world_size)) {
        st = fail(&p, "ranks: %zu entries for world_size %d", json_array_size(ranks), m->world_size);
        goto out;
    }
    m->ranks = calloc((size_t)m->nranks + 1, sizeof(*m->ranks));
    if (m->ranks == NULL) {
        st = HCRT_ERR_NO_MEMORY;
        goto out;
    }
    for (int i = 0; i < m->nranks; i++)
        if ((st = parse_rank(&p, json_array_get(ranks, (size_t)i), i, m, mode)) != HCRT_OK)
            goto out;

    json_t *tensors = json_object_get(root, "tensors");
    if (!json_is_array(tensors)) {
        st = fail(&p, "tensors: missing or not an array");
        goto out;
    }
    if (json_array_size(tensors) > 1000000) {
        st = fail(&p, "tensors: %zu entries (at most 1000000)", json_array_size(tensors));
        goto out;
    }
    m->tensors = calloc(json_array_size(tensors) + 1, sizeof(*m->tensors));
    if (m->tensors == NULL) {
        st = HCRT_ERR_NO_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(tensors); i++) {
        m->ntensors = (int)i + 1;
        if ((st = parse_tensor(&p, json_array_get(tensors, i), (int)i, m, mode, &m->tensors[i])) != HCRT_OK)
            goto out;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(m->tensors[k].name, m->tensors[i].name) == 0) {
                st = fail(&p, "tensors[%zu].name: '%s' appears twice", i, m->tensors[i].name);
                goto out;
            }
        }
    }
    if ((st = get_str(&p, root, "manifest", "metadata", HCRT__CKPT_META_MAX / 3 * 4 + 4, &s)) != HCRT_OK)
        goto out;
    st = hcrt__b64_decode(s, &m->meta, &m->meta_len);
    if (st == HCRT_ERR_CORRUPT)
        st = fail(&p, "metadata: not valid base64");
    if (st == HCRT_OK && m->meta_len > HCRT__CKPT_META_MAX)
        st = fail(&p, "metadata: %zu bytes (at most %zu)", m->meta_len, HCRT__CKPT_META_MAX);

out:
    json_decref(root);
    if (st != HCRT_OK)
        hcrt__manifest_free(m);
    return st;
}

hcrt_status_t hcrt__manifest_load(const char *stepdir, hcrt__ckpt_manifest_t *m, char *err, size_t errlen)
{
    char path[4096];
    struct stat sb;
    hcrt_status_t st;
    char *buf = NULL;

    memset(m, 0, sizeof(*m));
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", stepdir, HCRT__CKPT_MANIFEST) >= sizeof(path)) {
        snprintf(err, errlen, "path too long: %s", stepdir);
        return HCRT_ERR_INVALID_ARG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return errno == ENOENT ? HCRT_ERR_NOT_FOUND : HCRT_ERR_IO;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > HCRT__CKPT_MANIFEST_MAX) {
        snprintf(err, errlen, "manifest %s: not a regular file of at most %zu bytes", path,
                 HCRT__CKPT_MANIFEST_MAX);
        close(fd);
        return HCRT_ERR_CORRUPT;
    }
    buf = malloc((size_t)sb.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return HCRT_ERR_NO_MEMORY;
    }
    ssize_t n = hcrt__pread_full(fd, buf, (size_t)sb.st_size, 0);
    close(fd);
    if (n != (ssize_t)sb.st_size) {
        snprintf(err, errlen, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "short read");
        free(buf);
        return HCRT_ERR_IO;
    }
    st = hcrt__manifest_parse(buf, (size_t)n, path, HCRT__MANIFEST_FULL, m, err, errlen);
    free(buf);
    return st;
}

const hcrt__ckpt_tensor_t *hcrt__manifest_find(const hcrt__ckpt_manifest_t *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* ---- serialising --------------------------------------------------------------------------------- */

static json_t *shard_json(const hcrt__ckpt_shard_t *s, const char *file)
{
    json_t *sums = json_array();
    for (uint64_t c = 0; sums && c < s->nchunks; c++) {
        char hx[17];
        snprintf(hx, sizeof(hx), "%016llx", (unsigned long long)s->sums[c]);
        json_array_append_new(sums, json_string(hx));
    }
    return json_pack("{s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:o*}", "rank", s->rank, "file", file, "offset",
                     (json_int_t)s->offset, "row_offset", (json_int_t)s->row_offset, "rows",
                     (json_int_t)s->rows, "bytes", (json_int_t)s->bytes, "chunk_size",
                     (json_int_t)s->chunk_size, "checksums", sums);
}

char *hcrt__manifest_serialize(const hcrt__ckpt_manifest_t *m)
{
    char *out = NULL, *meta = NULL;
    json_t *root = NULL, *ranks = json_array(), *tensors = json_array();

    if (ranks == NULL || tensors == NULL)
        goto done;
    for (int i = 0; i < m->nranks; i++) {
        const hcrt__ckpt_rank_t *r = &m->ranks[i];
        if (json_array_append_new(ranks, json_pack("{s:i, s:s, s:s, s:s, s:I, s:i}", "rank", r->rank, "host",
                                                   r->host, "backends", r->backends, "file", r->file, "bytes",
                                                   (json_int_t)r->bytes, "partner", r->partner)) != 0)
            goto done;
    }
    for (int i = 0; i < m->ntensors; i++) {
        const hcrt__ckpt_tensor_t *t = &m->tensors[i];
        json_t *shape = json_array(), *shards = json_array();
        for (int d = 0; shape && d < t->ndims; d++)
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
        for (int k = 0; shards && k < t->nshards; k++) {
            char file[HCRT__CKPT_FILE_MAX + 1];
            hcrt__ckpt_file_name(file, sizeof(file), t->shards[k].rank);
            json_array_append_new(shards, shard_json(&t->shards[k], file));
        }
        if (json_array_append_new(tensors, json_pack("{s:s, s:s, s:o*, s:b, s:o*}", "name", t->name, "dtype",
                                                     hcrt__ckpt_dtype_name(t->dtype), "shape", shape,
                                                     "replicated", (int)t->replicated, "shards", shards)) != 0)
            goto done;
    }
    meta = hcrt__b64_encode(m->meta ? m->meta : (const unsigned char *)"", m->meta_len);
    if (meta == NULL)
        goto done;
    root = json_pack("{s:s, s:i, s:I, s:i, s:s, s:I, s:s, s:O, s:O, s:s}", "format", HCRT__CKPT_FORMAT_NAME,
                     "version", HCRT__CKPT_FORMAT_VERSION, "step", (json_int_t)m->step, "world_size",
                     m->world_size, "time", m->time, "time_unix", (json_int_t)m->time_unix, "partner_mode",
                     m->partner_mode, "ranks", ranks, "tensors", tensors, "metadata", meta);
    if (root != NULL)
        out = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
done:
    free(meta);
    json_decref(root);
    json_decref(ranks);
    json_decref(tensors);
    return out;
}
