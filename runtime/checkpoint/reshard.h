/*
 * runtime/checkpoint/reshard.h - reading rows of a checkpointed tensor from the shards that hold them,
 * verifying every chunk, level by level (reshard.c). Used by restore.c.
 */
#ifndef HCRT_CKPT_RESHARD_H
#define HCRT_CKPT_RESHARD_H

#include "runtime/checkpoint/ckpt_internal.h"

/* The levels a chunk is read from, in the order they are tried. */
typedef enum hcrt__ckpt_level {
    HCRT__LVL_LOCAL = 0, /* the node-local copy (LOCAL/step-N/rank-K.bin) */
    HCRT__LVL_MEMORY,    /* this rank's snapshot pool or a partner copy it keeps in memory */
    HCRT__LVL_PARTNER,   /* a partner copy in this node's node-local storage (LOCAL/step-N/partner/) */
    HCRT__LVL_REMOTE,    /* an image received from the rank whose node or memory holds a copy */
    HCRT__LVL_SHARED,    /* the shared directory */
    HCRT__LVL_COUNT
} hcrt__ckpt_level_t;

typedef struct hcrt__ckpt_sources {
    const hcrt_ckpt_t *ck;
    const hcrt__ckpt_manifest_t *m;
    int nw;                      /* writers: the manifest's world size */
    char local_dir[4096];        /* node-local step directory, "" when off */
    char partner_dir[4096 + 16]; /* its partner/ subdirectory, "" when off */
    char shared_dir[4096];
    int *fd[HCRT__LVL_COUNT];    /* per file level and writer: -2 not opened yet, -1 absent */
    unsigned char **map[HCRT__LVL_COUNT]; /* per file level and writer: the file mapped read-only, or NULL */
    bool use_memory;             /* the rank's own pool and partner copies may serve chunks */
    bool use_shared;             /* the shared directory may serve chunks */
    unsigned char **remote;      /* per writer: file image fetched from the rank that keeps it (mmap'd) */
    uint64_t *remote_bytes;      /* its size, the file's */
    int *remote_from;            /* per writer: the rank that sent it */
    unsigned char *remote_kind;  /* per writer: what it was there (HCRT__LVL_LOCAL, _MEMORY, _PARTNER) */
    unsigned char *failed;       /* per writer: some chunk of it could not be read from any level */
    unsigned char *local_bad;    /* per writer: the node-local copy was missing or wrong somewhere */
    unsigned char *used;         /* per writer: bit (1 << level) for each level that served a chunk */
    unsigned char *warned;       /* per writer: bit for each level already reported failing a checksum */
    unsigned char *bounce;
    bool ok;                     /* allocation succeeded */
    char msg[1024];              /* first unrecoverable chunk */
    uint64_t done;               /* bytes verified so far */
    void (*progress)(struct hcrt__ckpt_sources *rs, uint64_t done);
} hcrt__ckpt_sources_t;

void hcrt__ckpt_sources_init(hcrt__ckpt_sources_t *rs, const hcrt_ckpt_t *ck, const hcrt__ckpt_manifest_t *m);
void hcrt__ckpt_sources_fini(hcrt__ckpt_sources_t *rs);

/* Reads rows [a, b) of tensor t into dst (host memory of (b - a) rows), from the shards of writers with
 * only[w] set (only NULL: all). Returns the number of shards that failed (their writers are marked in
 * rs->failed and the first failure is described in rs->msg). */
int hcrt__ckpt_read_rows(hcrt__ckpt_sources_t *rs, const hcrt__ckpt_tensor_t *t, uint64_t a, uint64_t b,
                         unsigned char *dst, const unsigned char *only);

/* Whether writer w's file is at a file level (LOCAL, PARTNER or SHARED) with the manifest's size; a
 * stat, nothing is read. */
bool hcrt__ckpt_level_has(hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w);

/* Writer w's whole file at a file level, mapped (a zero-length file gives a non-NULL pointer), or NULL
 * when absent, of the wrong size or not mappable. `where` receives its path. */
const unsigned char *hcrt__ckpt_level_image(hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level, int w,
                                            char *where, size_t cap);

/* Checks every chunk of every shard writer w wrote against the manifest in an image of its file of
 * `bytes` bytes. False with the first mismatch described in `why`. */
bool hcrt__ckpt_image_verify(const hcrt__ckpt_sources_t *rs, int w, const unsigned char *img, uint64_t bytes,
                             char *why, size_t cap);

/* Writer w's whole image from one of this rank's copies: `level` HCRT__LVL_MEMORY (the snapshot pool
 * or a partner copy kept in memory) or a file level. NULL when absent or of the wrong size. (fetch.c) */
const unsigned char *hcrt__ckpt_copy_image(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, hcrt__ckpt_level_t level,
                                           int w, char *where, size_t cap);

/* Fetches, for every rank, the images of the writers it failed (all_failed: size x nw flags, the same on
 * every rank) from a rank holding a verified copy in memory or on its node's node-local storage; the
 * receivers find them in rs->remote. Collective. (fetch.c) */
hcrt_status_t hcrt__ckpt_fetch_images(hcrt_ckpt_t *ck, hcrt__ckpt_sources_t *rs, const unsigned char *all_failed);

#endif /* HCRT_CKPT_RESHARD_H */
