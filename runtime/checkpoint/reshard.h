/*
 * runtime/checkpoint/reshard.h - reading rows of a checkpointed tensor from the shards that hold them,
 * verifying every chunk, level by level (reshard.c). Used by restore.c.
 */
#ifndef HCRT_CKPT_RESHARD_H
#define HCRT_CKPT_RESHARD_H

#include "runtime/checkpoint/ckpt_internal.h"

typedef struct hcrt__ckpt_sources {
    const hcrt_ckpt_t *ck;
    const hcrt__ckpt_manifest_t *m;
    int nw;                      /* writers: the manifest's world size */
    char local_dir[4096];        /* node-local step directory, "" when off */
    char shared_dir[4096];
    int *local_fd, *shared_fd;   /* per writer: -2 not opened yet, -1 absent */
    unsigned char **local_map, **shared_map; /* per writer: the file mapped read-only, or NULL */
    bool use_memory;             /* the rank's own pool and partner copies may serve chunks */
    unsigned char **remote;      /* per writer: file image fetched from the rank that keeps it */
    uint64_t *remote_bytes;
    unsigned char *failed;       /* per writer: some chunk of it could not be read from any level */
    unsigned char *local_bad;    /* per writer: the node-local copy was missing or wrong somewhere */
    unsigned char *bounce;
    bool ok;                     /* allocation succeeded */
    char msg[1024];              /* first unrecoverable chunk */
    char msg_level[512];         /* first chunk served by a slower level */
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

#endif /* HCRT_CKPT_RESHARD_H */
