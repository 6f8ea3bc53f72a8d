/*
 * backends/common/hostreg.h - the host ranges a backend's kernels may address (host_register).
 *
 * A backend whose kernels run on the host (cpu, sim) can read and write registered host memory as it
 * is: the registry only remembers the ranges, so that overlapping registrations, unregistering an
 * unknown pointer and kernel arguments outside every range are clean HCRT_ERR_INVALID_ARG errors, as
 * on a GPU runtime. Every range belongs to one device index. Thread-safe.
 */
#ifndef HCRT_BACKENDS_HOSTREG_H
#define HCRT_BACKENDS_HOSTREG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "hcrt/status.h"

typedef struct hcrt__hostreg_range {
    const char *base;
    size_t bytes;
    int dev;
} hcrt__hostreg_range_t;

typedef struct hcrt__hostreg {
    pthread_mutex_t mu;
    hcrt__hostreg_range_t *ranges;
    size_t n, cap;
} hcrt__hostreg_t;

void hcrt__hostreg_init(hcrt__hostreg_t *r);
void hcrt__hostreg_fini(hcrt__hostreg_t *r);
/* HCRT_ERR_INVALID_ARG when [ptr, ptr+bytes) overlaps a registered range or wraps around; NO_MEMORY. */
hcrt_status_t hcrt__hostreg_add(hcrt__hostreg_t *r, int dev, const void *ptr, size_t bytes);
/* HCRT_ERR_INVALID_ARG unless ptr starts a range registered on dev. */
hcrt_status_t hcrt__hostreg_remove(hcrt__hostreg_t *r, int dev, const void *ptr);
/* Whether [ptr, ptr+bytes) lies inside one range registered on dev. */
bool hcrt__hostreg_contains(hcrt__hostreg_t *r, int dev, const void *ptr, size_t bytes);

#endif /* HCRT_BACKENDS_HOSTREG_H */
