/*
 * runtime/checkpoint/format.h - the on-disk checkpoint format (docs/checkpoint-format.md), version 1.
 *
 * Everything here is free of MPI and of the runtime context, so that hcrt-ckpt, the libFuzzer target
 * and the unit tests can use the same parser and checks as the library. Errors are written into a
 * caller's buffer (err, errlen) naming the file and the field; callers turn them into hcrt__error().
 *
 * Files and manifests are untrusted input: every size, offset, count and name read from them is
 * bounds-checked before use.
 */
#ifndef HCRT_CKPT_FORMAT_H
#define HCRT_CKPT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hcrt/status.h"
#include "hcrt/types.h"

#define HCRT__CKPT_FORMAT_NAME "hcrt-checkpoint"
#define HCRT__CKPT_FORMAT_VERSION 1
#define HCRT__CKPT_MANIFEST "manifest.json"
#define HCRT__CKPT_MANIFEST_TMP "manifest.json.tmp"
/* Checksum granularity of shard data; also the unit of a restore's reads. */
#define HCRT__CKPT_CHUNK ((uint64_t)4 << 20)
/* Offsets of tensors in a data file are aligned to this (page size: lets a restore map or read
 * page-aligned ranges). */
#define HCRT__CKPT_ALIGN ((uint64_t)4096)
#define HCRT__CKPT_META_MAX ((size_t)64 << 20)
/* A manifest larger than this is refused before it is read. */
#define HCRT__CKPT_MANIFEST_MAX ((size_t)256 << 20)
#define HCRT__CKPT_MAX_RANKS (1 << 20)
#define HCRT__CKPT_MAX_DIMS 8
#define HCRT__CKPT_NAME_MAX 255
#define HCRT__CKPT_FILE_MAX 63
#define HCRT__CKPT_HOST_MAX 255

typedef struct hcrt__ckpt_shard {
    int rank;             /* writer */
    uint64_t offset;      /* in the writer's file */
    uint64_t row_offset;  /* global row of its first row */
    uint64_t rows;
    uint64_t bytes;       /* rows * row_bytes */
    uint64_t chunk_size;
    uint64_t nchunks;     /* ceil(bytes / chunk_size) */
    uint64_t *sums;       /* XXH3-64 of each chunk */
} hcrt__ckpt_shard_t;

typedef struct hcrt__ckpt_tensor {
    char *name;
    hcrt_dtype_t dtype;
    int ndims;
    uint64_t shape[HCRT__CKPT_MAX_DIMS];
    bool replicated;
    uint64_t row_bytes;   /* bytes of one row: product of shape[1..] times the dtype size */
    int nshards;
    hcrt__ckpt_shard_t *shards; /* sorted by row_offset once validated */
} hcrt__ckpt_tensor_t;

typedef struct hcrt__ckpt_rank {
    int rank;
    char host[HCRT__CKPT_HOST_MAX + 1];
    char backends[128];  /* comma-separated backends of the rank's tensors */
    char file[HCRT__CKPT_FILE_MAX + 1];
    uint64_t bytes;      /* size of the file */
    int partner;         /* rank holding the in-memory copy, -1 when none */
} hcrt__ckpt_rank_t;

typedef struct hcrt__ckpt_manifest {
    int version;
    int64_t step;
    int world_size;
    int64_t time_unix;
    char time[40];            /* ISO 8601 UTC */
    char partner_mode[16];    /* "other-host", "same-host" or "none" */
    int nranks;
    hcrt__ckpt_rank_t *ranks; /* indexed by rank once validated */
    int ntensors;
    hcrt__ckpt_tensor_t *tensors;
    unsigned char *meta;
    size_t meta_len;
} hcrt__ckpt_manifest_t;

/* Parse modes. A full manifest is checked for consistency across ranks (every rank present, shards
 * tiling each tensor); a partial one (one rank's contribution during a save) only for local sanity. */
#define HCRT__MANIFEST_FULL 0
#define HCRT__MANIFEST_PARTIAL 1

/*
 * Parses and validates a manifest held in text[0..len) (not necessarily NUL-terminated). `what` names
 * the source in messages (a path). On failure returns HCRT_ERR_CORRUPT (or NO_MEMORY) with the reason,
 * naming the field (e.g. "tensors[1].shards[0].offset"), in err; *m is then empty. Never crashes on
 * any input. Free a parsed manifest with hcrt__manifest_free().
 */
hcrt_status_t hcrt__manifest_parse(const char *text, size_t len, const char *what, int mode,
                                   hcrt__ckpt_manifest_t *m, char *err, size_t errlen);

/* Reads DIR/manifest.json (bounded by HCRT__CKPT_MANIFEST_MAX) and parses it in full mode.
 * HCRT_ERR_NOT_FOUND when it does not exist. */
hcrt_status_t hcrt__manifest_load(const char *stepdir, hcrt__ckpt_manifest_t *m, char *err, size_t errlen);

/* Serialises a manifest as JSON text (malloc'd, NUL-terminated), or NULL when out of memory. */
char *hcrt__manifest_serialize(const hcrt__ckpt_manifest_t *m);

void hcrt__manifest_free(hcrt__ckpt_manifest_t *m);

/* The tensor called `name`, or NULL. */
const hcrt__ckpt_tensor_t *hcrt__manifest_find(const hcrt__ckpt_manifest_t *m, const char *name);

/* Whether `name` is acceptable as a tensor name (1..255 printable bytes, no '/', not "." or ".."). */
bool hcrt__ckpt_name_ok(const char *name);

/* Element size of a dtype, 0 when invalid (the format does not depend on libhcrt for it). */
size_t hcrt__ckpt_dtype_size(int dtype);
const char *hcrt__ckpt_dtype_name(int dtype);
int hcrt__ckpt_dtype_parse(const char *name); /* -1 when unknown */

/* Base64 (RFC 4648, with padding). encode returns a malloc'd string; decode checks every character. */
char *hcrt__b64_encode(const unsigned char *data, size_t len);
hcrt_status_t hcrt__b64_decode(const char *text, unsigned char **out, size_t *len);

/* ---- files (fsutil.c) ----------------------------------------------------------------------- */

/* "DIR/step-NNNNNNNN" into out; false when it does not fit. */
bool hcrt__ckpt_step_path(char *out, size_t cap, const char *dir, int64_t step);
/* "rank-NNNNN.bin". */
void hcrt__ckpt_file_name(char *out, size_t cap, int rank);

/* mkdir -p; HCRT_ERR_IO with the path in err. */
hcrt_status_t hcrt__mkdir_p(const char *path, char *err, size_t errlen);
/* fsyncs a directory (makes renames and new entries in it durable). */
hcrt_status_t hcrt__fsync_dir(const char *path, char *err, size_t errlen);
/* write() and pread() of exactly len bytes, retrying short transfers and EINTR. -1 with errno set on
 * failure; pread_full returns the bytes read (less than len only at end of file). */
int hcrt__write_full(int fd, const void *buf, size_t len);
ssize_t hcrt__pread_full(int fd, void *buf, size_t len, uint64_t offset);
/* Writes a whole file atomically: path.tmp, fsync, rename, fsync dir. */
hcrt_status_t hcrt__write_file_atomic(const char *dir, const char *name, const char *tmpname,
                                      const void *data, size_t len, char *err, size_t errlen);

typedef struct hcrt__ckpt_step_entry {
    int64_t step;
    bool committed; /* manifest.json present */
} hcrt__ckpt_step_entry_t;

/* Lists DIR/step-* directories, newest first (malloc'd array in *entries, count in *n). A missing DIR
 * gives 0 entries. Names not of the form step-NNNNNNNN are ignored. */
hcrt_status_t hcrt__ckpt_scan(const char *dir, hcrt__ckpt_step_entry_t **entries, size_t *n, char *err,
                              size_t errlen);

/* Directory (inside a checkpoint directory) where removed data files wait to be reused. */
#define HCRT__CKPT_SPARE ".spare"
/* Subdirectory of a node-local step directory holding the partner copies this node keeps of other
 * nodes' data files, under the writers' file names (step-N/partner/rank-K.bin). */
#define HCRT__CKPT_PARTNER_DIR "partner"

/* Removes a step directory: the manifest first (fsync'd) so that a step half removed is never taken
 * for committed, then every file (those of its partner/ subdirectory too), then the directory.
 * `fault_ctx` (may be NULL) is handed to the HCRT_FAULT check of phase "gc" between those two stages.
 * With `recycle`, data files (rank-N.bin) are moved to DIR/.spare/ (partner copies to
 * DIR/.spare/partner/) instead of deleted, for hcrt__ckpt_take_spare(). */
hcrt_status_t hcrt__ckpt_remove_step(const char *dir, int64_t step, const void *fault_ctx, bool recycle,
                                     char *err, size_t errlen);

/* Moves DIR/.spare/NAME to PATH when there is one (true), so that a save overwrites pages the file
 * system already holds instead of allocating new ones. NAME may be "partner/rank-K.bin". */
bool hcrt__ckpt_take_spare(const char *dir, const char *name, const char *path);

/* Writes `bytes` at `data` as STEPDIR/NAME (NAME may be "partner/rank-K.bin": the subdirectory is
 * created), reusing a spare file of LEVEL_DIR, then fsyncs the file and its directory. */
hcrt_status_t hcrt__ckpt_write_copy(const char *level_dir, const char *stepdir, const char *name,
                                    const unsigned char *data, uint64_t bytes, char *err, size_t errlen);

/* Garbage collection of one directory: removes every committed step beyond the newest `keep` and every
 * uncommitted step older than the newest committed one (a newer uncommitted step may be a save in
 * flight), never `in_flight` (-1 for none). *removed counts the steps removed (may be NULL). */
hcrt_status_t hcrt__ckpt_gc_dir(const char *dir, int keep, int64_t in_flight, const void *fault_ctx,
                                bool recycle, int *removed, char *err, size_t errlen);

/* Hook called between the two stages of a removal (set by the library to its HCRT_FAULT check; NULL
 * in tools). */
extern void (*hcrt__ckpt_gc_hook)(const void *fault_ctx, int64_t step);

/* ---- partners (partner_map.c) ------------------------------------------------------------------ */

/* Fills partner_of[n] (the rank keeping each rank's in-memory copy) from the ranks' host names (n
 * strings, `stride` bytes apart). Returns "other-host" (every partner on another host), "same-host"
 * (one host: the next rank), "none" (one rank), or NULL when out of memory. */
const char *hcrt__ckpt_partner_map(int n, const char *hosts, size_t stride, int *partner_of);

/* ---- verification (verify.c) ---------------------------------------------------------------- */

/* XXH3-64 of a buffer (AVX2 code when the CPU has it); _generic always uses libxxhash (for tests). */
uint64_t hcrt__ckpt_hash(const void *data, size_t len);
uint64_t hcrt__ckpt_hash_generic(const void *data, size_t len);

/*
 * Verifies one step directory completely: manifest, every data file's size, every chunk's checksum.
 * Reports each problem (file, tensor, chunk) through `report` (may be NULL) and the first one in err.
 * `progress` (may be NULL) is called with bytes done and total. Returns HCRT_OK, HCRT_ERR_CORRUPT or
 * HCRT_ERR_NOT_FOUND (no manifest).
 */
hcrt_status_t hcrt__ckpt_verify_step(const char *stepdir, void (*report)(void *arg, const char *msg),
                                     void (*progress)(void *arg, uint64_t done, uint64_t total), void *arg,
                                     char *err, size_t errlen);

#endif /* HCRT_CKPT_FORMAT_H */
