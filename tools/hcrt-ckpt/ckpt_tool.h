/*
 * tools/hcrt-ckpt/ckpt_tool.h - shared parts of hcrt-ckpt's commands.
 */
#ifndef HCRT_CKPT_TOOL_H
#define HCRT_CKPT_TOOL_H

#include <stdint.h>

#include "runtime/checkpoint/format.h"

/* Exit statuses (documented in --help and docs/checkpoint-format.md). */
#define EXIT_OK 0        /* success; verify: every checksum matched; diff: no difference */
#define EXIT_BAD 1       /* verify: a mismatch, a missing or truncated file, a bad manifest; diff: differences */
#define EXIT_USAGE 2     /* bad command line */
#define EXIT_NOT_FOUND 3 /* no such directory or committed step */
#define EXIT_IO 4        /* an I/O error or out of memory */

typedef struct tool_step {
    char path[4096];
    hcrt__ckpt_manifest_t m;
    int *fds; /* per writer, -1 when the file is missing */
} tool_step_t;

int tool_step_open(tool_step_t *s, const char *dir, int64_t step, char *err, size_t errlen);
void tool_step_close(tool_step_t *s);
/* Rows [a, b) of t into dst, every chunk verified. */
int tool_read_rows(tool_step_t *s, const hcrt__ckpt_tensor_t *t, uint64_t a, uint64_t b, unsigned char *dst,
                   char *err, size_t errlen);
/* One element as a double, for differences. */
double tool_element(const unsigned char *p, int dtype);

#endif /* HCRT_CKPT_TOOL_H */
